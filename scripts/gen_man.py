"""Writes man/ctl.1 from the parser: python3 scripts/gen_man.py"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ctl.manpage import render

target = Path(__file__).resolve().parent.parent / "man" / "ctl.1"
target.write_text(render())
print(f"wrote {target}")
