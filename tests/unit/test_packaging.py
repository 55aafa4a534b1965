"""The start-up cost of the commands scripts call most: what they import.

tests/integration/test_pex.py checks the shipped artefact, dist/ctl.pex, itself.

Start-up time is a feature (SPEC section 8). On this class of machine the interpreter floor
is about 10 ms, while ``requests`` costs about 85 ms to import and ``tabulate`` 0.10 about
45 ms (it imports ``importlib.metadata`` only to set ``__version__``), so a listing command
or ``--help`` that imports one of them is several times slower than it needs to be.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.helpers import imported_modules

if TYPE_CHECKING:
    from pathlib import Path

SLOW_IMPORTS = ("requests", "urllib3", "tabulate", "argcomplete", "importlib.metadata")


@pytest.mark.parametrize("argv", [("images",), ("--help",)], ids=["images", "help"])
def test_command_does_not_import_slow_modules(root: Path, argv: tuple[str, ...]) -> None:
    modules = imported_modules("--root", str(root), *argv)
    assert "ctl.main" in modules, "no import trace: was -X importtime honoured?"
    slow = sorted(m for m in modules if any(m == s or m.startswith(f"{s}.") for s in SLOW_IMPORTS))
    assert slow == [], f"ctl {' '.join(argv)} imports {slow}: import them where they are used"


@pytest.mark.parametrize(
    ("argv", "module"),
    [(("ps",), "containers"), (("images",), "images"), (("ns", "ls"), "namespaces")],
    ids=["ps", "images", "ns-alias"],
)
def test_command_imports_only_its_own_command_module(
    root: Path, argv: tuple[str, ...], module: str
) -> None:
    modules = imported_modules("--root", str(root), *argv)
    commands = sorted(m for m in modules if m.startswith("ctl.commands."))
    assert commands == ["ctl.commands._base", "ctl.commands._index", f"ctl.commands.{module}"]
