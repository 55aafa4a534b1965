"""Writes ctl/commands/_index.py from the command declarations: python3 scripts/gen_index.py"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ctl.commands import render_index

target = Path(__file__).resolve().parent.parent / "ctl" / "commands" / "_index.py"
target.write_text(render_index())
print(f"wrote {target}")
