"""The CLI surface as a whole: every command has a handler, the static table is true."""

from __future__ import annotations

import argparse

import pytest

from ctl import commands
from ctl.main import build_parser, cli


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _leaves(parser: argparse.ArgumentParser, path: str = "ctl"):
    children = _subparsers(parser)
    if not children:
        yield path, parser
    for name, child in children.items():
        yield from _leaves(child, f"{path} {name}")


def test_every_leaf_command_has_a_handler() -> None:
    parser = build_parser()
    missing = [path for path, leaf in _leaves(parser) if leaf.get_default("func") is None]
    assert not missing, f"commands without a handler: {missing}"


def test_static_table_names_what_the_modules_register() -> None:
    registered = set(_subparsers(build_parser()))
    assert set(commands.TOP_LEVEL) <= registered
    # Aliases aside, nothing is registered that the table does not name.
    primary = {
        name for name, sub in _subparsers(build_parser()).items() if sub.prog.split()[-1] == name
    }
    assert primary == set(commands.TOP_LEVEL)


@pytest.mark.parametrize("word", sorted(commands.TOP_LEVEL))
def test_lazy_parser_registers_the_command_it_runs(word: str) -> None:
    parser = build_parser(word)
    module = commands.TOP_LEVEL[word][0]
    registered = _subparsers(parser)[word]
    assert registered.get_default("func") is not None or _subparsers(registered), module


@pytest.mark.parametrize(
    "argv",
    [["no-such-command"], ["images", "--no-such-flag"], ["pull"], ["--root"]],
)
def test_bad_usage_is_one_line_and_125(
    argv: list[str], capsys: pytest.CaptureFixture[str], tmp_path
) -> None:
    code = cli(["--root", str(tmp_path), *argv] if argv != ["--root"] else argv)
    captured = capsys.readouterr()
    assert code == 125
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ctl: "), captured.err
    assert "Traceback" not in captured.err


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["--help"]) == 0
    out = capsys.readouterr().out
    for name in commands.TOP_LEVEL:
        assert name in out


def test_manpage_matches_parser() -> None:
    from pathlib import Path

    from ctl.manpage import render

    committed = (Path(__file__).parents[2] / "man" / "ctl.1").read_text()
    assert committed == render(), "man/ctl.1 is stale: run python3 scripts/gen_man.py"
