"""The command walk: every command, alias and flag of docker's reference is in ctl's parser.

tests/data/docker_cli.json lists docker's in-scope commands, their aliases and the
spellings of their flags (scripts/gen_docker_cli.py wrote it from docker/cli's
reference). Parsing only: the command path exists and knows each spelling.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ctl.commands import build_parser
from ctl.commands._base import Parser

if TYPE_CHECKING:
    import argparse
    from typing import Any

CLI_FILE = Path(__file__).parent.parent / "data" / "docker_cli.json"

# In-scope commands and flags not accepted yet: other helpers add them now. Each is a
# strict xfail, so one that lands fails the walk until it is taken off this list (lead:
# empty it as the branches merge). A command path alone stands for all its flags.
NOT_YET = frozenset(
    {
    }
)  # fmt: skip

# The commands whose flags are another's (run's are create's); a NOT_YET entry names one.
SAME_FLAGS = {"create": "run", "container create": "run", "container run": "run"}


def docker_commands() -> dict[str, dict[str, list[Any]]]:
    commands: dict[str, dict[str, list[Any]]] = json.loads(CLI_FILE.read_text())["commands"]
    return commands


def _subparser(parser: argparse.ArgumentParser, word: str) -> argparse.ArgumentParser | None:
    for action in parser._actions:
        choices = getattr(action, "choices", None)
        if isinstance(choices, dict) and word in choices:
            sub: argparse.ArgumentParser = choices[word]
            if isinstance(sub, Parser):
                sub.add_deferred_arguments()
            return sub
    return None


def command_parser(path: str) -> argparse.ArgumentParser | None:
    """command_parser is the parser of ``path`` (``container ls``), or None if there is none."""
    words = path.split()
    parser: argparse.ArgumentParser | None = build_parser(words[0])
    for word in words:
        parser = _subparser(parser, word) if parser is not None else None
    return parser


def _short(command: str) -> str:
    """_short is the name NOT_YET knows docker's ``command`` by: without ``container``."""
    return SAME_FLAGS.get(command, command.removeprefix("container "))


def _missing(command: str) -> bool:
    return _short(command) in NOT_YET


def _command_cases() -> list[object]:
    cases: list[object] = []
    for command, entry in docker_commands().items():
        for spelling in (command, *entry["aliases"]):
            marks = [pytest.mark.xfail(strict=True)] if _missing(command) else []
            cases.append(pytest.param(spelling, marks=marks, id=spelling))
    return cases


def _flag_cases() -> list[object]:
    cases: list[object] = []
    for command, entry in docker_commands().items():
        for spelling in (command, *entry["aliases"]):
            for names in entry["flags"]:
                for flag in names:
                    gap = _missing(command) or f"{_short(command)} {flag}" in NOT_YET
                    marks = [pytest.mark.xfail(strict=True)] if gap else []
                    cases.append(pytest.param(spelling, flag, marks=marks, id=f"{spelling} {flag}"))
    return cases


def test_the_list_is_docker_reference() -> None:
    commands = docker_commands()
    assert "docker/cli" in json.loads(CLI_FILE.read_text())["source"]
    assert commands["container ls"]["aliases"] == ["container list", "container ps", "ps"]
    assert ["-s", "--signal"] in commands["container stop"]["flags"]
    known = {_short(command) for command in commands} | {"attach", "update"}
    flags = {
        f"{_short(command)} {flag}"
        for command, entry in commands.items()
        for names in entry["flags"]
        for flag in names
    }
    assert {gap for gap in NOT_YET if gap not in known and gap not in flags} == set()


@pytest.mark.parametrize("path", _command_cases())
def test_command_exists(path: str) -> None:
    assert command_parser(path) is not None, f"ctl has no {path!r}"


@pytest.mark.parametrize(("path", "flag"), _flag_cases())
def test_flag_is_accepted(path: str, flag: str) -> None:
    parser = command_parser(path)
    assert parser is not None, f"ctl has no {path!r}"
    assert flag in parser._option_string_actions, f"ctl {path} lacks {flag}"


def test_a_group_does_not_import_its_siblings_modules() -> None:
    """container cp is transfer's: building the container group must not import transfer."""
    import subprocess
    import sys

    code = (
        "import sys; from ctl.commands import build_parser; build_parser('container');"
        "print(sorted(m for m in sys.modules if m.startswith('ctl.commands.')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "ctl.commands.transfer" not in out and "ctl.commands.stats" not in out


def test_inspect_and_lazy_commands_complete(tmp_path: Path) -> None:
    """inspect offers every kind of name; container cp (transfer's) completes its flags."""
    from tests.unit.test_cli import _complete, named_root

    root = named_root.__wrapped__(tmp_path)  # type: ignore[attr-defined]
    words = _complete(f"ctl --root {root} inspect ", tmp_path)
    assert words == ["backend", "bridge", "example.com/app:1", "web"]
    from ctl.commands.inspect import DOCUMENTS

    assert _complete(f"ctl --root {root} inspect --type ", tmp_path) == sorted(DOCUMENTS)
    assert _complete(f"ctl --root {root} container cp ", tmp_path) == ["web"]
