"""The flag walk: each flag of docker's run/create reference is accepted, or refused by name.

tests/data/docker_run_flags.txt lists docker's flags (with its source). Parsing
only: the option strings of ctl's run and create parsers, and the error an
out-of-scope flag gives.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ctl.commands import build_parser
from ctl.errdefs import InvalidArgument

if TYPE_CHECKING:
    import argparse

FLAGS_FILE = Path(__file__).parent.parent / "data" / "docker_run_flags.txt"

# In-scope flags not accepted yet: the other issue-11 groups add them. Each is a strict
# xfail, so a flag that lands fails the walk until it is taken off this list (lead: empty
# it as the branches merge).
NOT_YET = frozenset(
    {
    }
)  # fmt: skip


def docker_flags() -> list[tuple[str, str, tuple[str, ...]]]:
    """docker_flags is (command, scope, spellings) for each command a listed flag belongs to."""
    found = []
    for line in FLAGS_FILE.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        commands, scope, *names = line.split()
        found += [(command, scope, tuple(names)) for command in commands.split(",")]
    return found


def command_parser(command: str) -> argparse.ArgumentParser:
    parser = build_parser(command)
    for action in parser._actions:
        choices = getattr(action, "choices", None)
        if isinstance(choices, dict) and command in choices:
            sub: argparse.ArgumentParser = choices[command]
            return sub
    raise AssertionError(f"no {command} parser")


def _cases(scope: str) -> list[object]:
    cases: list[object] = []
    for command, flag_scope, names in docker_flags():
        if flag_scope != scope:
            continue
        marks = [pytest.mark.xfail(strict=True)] if names[-1] in NOT_YET else []
        cases.append(pytest.param(command, names, marks=marks, id=f"{command} {names[-1]}"))
    return cases


def test_the_list_is_docker_reference() -> None:
    flags = docker_flags()
    assert len({names[-1] for _, _, names in flags}) == 101  # as the issue counts them
    assert ("run", "in", ("-h", "--hostname")) in flags
    assert {names[-1] for _, _, names in flags} >= NOT_YET


@pytest.mark.parametrize(("command", "names"), _cases("in"))
def test_in_scope_flag_is_accepted(command: str, names: tuple[str, ...]) -> None:
    accepted = command_parser(command)._option_string_actions
    assert [n for n in names if n not in accepted] == []


@pytest.mark.parametrize(("command", "names"), _cases("out"))
def test_out_of_scope_flag_is_refused_by_name(command: str, names: tuple[str, ...]) -> None:
    flag = names[-1]
    with pytest.raises(InvalidArgument, match=f"^{flag} is not supported"):
        command_parser(command).parse_args([flag, "1", "IMAGE"])


@pytest.mark.parametrize("command", ["run", "create"])
def test_no_abbreviations(command: str) -> None:
    # --pid=host must never be taken for --pids-limit, nor --nam for --name.
    parser = command_parser(command)
    for argv in (["--pid=host", "IMAGE"], ["--nam", "x", "IMAGE"], ["--priv", "IMAGE"]):
        try:
            args = parser.parse_args(argv)
        except InvalidArgument as err:
            assert "unrecognized" in str(err) or "--pid" in str(err)
        else:
            assert getattr(args, "pids_limit", None) is None and args.name is None
            assert not args.privileged and getattr(args, "pid", None) == "host"


@pytest.mark.parametrize("command", ["run", "create"])
def test_short_h_is_hostname(command: str) -> None:
    args = command_parser(command).parse_args(["-h", "box", "IMAGE"])
    assert args.hostname == "box"
    with pytest.raises(SystemExit):
        command_parser(command).parse_args(["--help"])


def test_other_commands_keep_short_h_for_help() -> None:
    with pytest.raises(SystemExit):
        command_parser("ps").parse_args(["-h"])


def test_no_abbreviations_anywhere() -> None:
    # --ro is not --root: /tmp/x is then taken for the command.
    with pytest.raises(InvalidArgument, match="'/tmp/x' is not a ctl command"):
        build_parser("ps").parse_args(["--ro", "/tmp/x", "ps"])
    with pytest.raises(InvalidArgument, match="unrecognized"):
        command_parser("ps").parse_args(["--no-tr"])  # not --no-trunc
