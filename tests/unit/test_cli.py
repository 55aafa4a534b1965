"""The CLI surface as a whole: every command has a handler, a call builds only its own."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ctl.commands import MODULES, build_parser, render_index
from ctl.commands._index import MODULE_OF
from ctl.main import cli
from tests.helpers import REPO_ROOT


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


def _described(parser: argparse.ArgumentParser) -> dict[str, Any]:
    """_described is everything a parser shows or does: help, handler, subcommands."""
    return {
        "help": parser.format_help(),
        "defaults": {
            key: value.prog if isinstance(value, argparse.ArgumentParser) else value
            for key, value in parser._defaults.items()
        },
        "completers": [getattr(a, "completer", None) for a in parser._actions],
        "commands": {name: _described(sub) for name, sub in _subparsers(parser).items()},
    }


def test_every_leaf_command_has_a_handler() -> None:
    parser = build_parser()
    missing = [path for path, leaf in _leaves(parser) if leaf.get_default("func") is None]
    assert not missing, f"commands without a handler: {missing}"


def test_index_is_derived_from_the_declarations() -> None:
    committed = (REPO_ROOT / "ctl" / "commands" / "_index.py").read_text()
    assert committed == render_index(), "stale: run python3 scripts/gen_index.py"
    assert set(MODULE_OF) == set(_subparsers(build_parser()))
    assert set(MODULE_OF.values()) == set(MODULES)


@pytest.mark.parametrize("word", sorted(MODULE_OF))
def test_lazy_parser_is_the_full_parser_of_its_command(word: str) -> None:
    lazy = _subparsers(build_parser(word))
    assert len({id(sub) for sub in lazy.values()}) == 1, f"{word} built {sorted(lazy)}"
    assert _described(lazy[word]) == _described(_subparsers(build_parser())[word])


@pytest.mark.parametrize(
    "argv",
    [["no-such-command"], ["images", "--no-such-flag"], ["pull"], ["--root"]],
)
def test_bad_usage_is_one_line_and_125(
    argv: list[str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = cli(["--root", str(tmp_path), *argv] if argv != ["--root"] else argv)
    captured = capsys.readouterr()
    assert code == 125
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("ctl: "), captured.err
    assert "Traceback" not in captured.err


def test_a_bad_format_fails_before_any_work(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert cli(["--root", str(tmp_path / "root"), "network", "ls", "--format", "yaml"]) == 125
    assert "unknown --format 'yaml'" in capsys.readouterr().err
    assert not (tmp_path / "root").exists()


@pytest.mark.parametrize(
    ("argv", "env"),
    [
        (["--root", ""], {}),
        (["--root", "rel"], {}),
        ([], {"CTL_ROOT": ""}),
        ([], {"CTL_ROOT": "rel"}),
    ],
)
def test_an_empty_or_relative_root_is_refused(
    argv: list[str],
    env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert cli([*argv, "ps", "-a"]) == 125
    err = capsys.readouterr().err
    assert err.startswith("ctl: invalid root ") and err.count("\n") == 1, err
    assert "must be an absolute path" in err
    assert list(tmp_path.iterdir()) == []


def test_help_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["--help"]) == 0
    out = capsys.readouterr().out
    for name in MODULE_OF:
        assert name in out


def test_manpage_matches_parser() -> None:
    from ctl.manpage import render

    committed = (REPO_ROOT / "man" / "ctl.1").read_text()
    assert committed == render(), "man/ctl.1 is stale: run python3 scripts/gen_man.py"


# Completion, driven as bash drives it: argcomplete reads the line from the
# environment and exits the process, so each completion is a ctl process.

SLOW_FOR_COMPLETION = ("requests", "tabulate", "ctl.client", "ctl.runtime")


def _complete(line: str, tmp_path: Path, **env: str) -> list[str]:
    out = tmp_path / "completions"
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "ctl"],
        cwd=REPO_ROOT,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("CTL_")},
            "_ARGCOMPLETE": "1",
            "_ARGCOMPLETE_IFS": "\n",
            "_ARGCOMPLETE_STDOUT_FILENAME": str(out),
            "COMP_LINE": line,
            "COMP_POINT": str(len(line)),
            **env,
        },
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    imported = {
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
    slow = sorted(m for m in imported if m.startswith(SLOW_FOR_COMPLETION))
    assert slow == [], f"completing {line!r} imports {slow}"
    # Options are offered too, with an empty prefix; the names are what is tested here.
    return sorted(word for word in out.read_text().split() if not word.startswith("-"))


@pytest.fixture
def named_root(tmp_path: Path) -> Path:
    """named_root holds a container 'web', an image 'example.com/app:1', a network 'backend'
    and the default network."""
    from ctl.client import Client
    from ctl.containers.container import Container
    from ctl.images.image import Image
    from ctl.oci import Descriptor

    root = tmp_path / "root"
    client = Client(root=str(root))
    client.containers.create(Container("a" * 64, "web", "example.com/app:1", "native", "k", {}))
    target = Descriptor("application/vnd.oci.image.manifest.v1+json", "sha256:" + "b" * 64, 2)
    client.images.create(Image("example.com/app:1", target))
    (root / "networks").mkdir()
    (root / "networks" / "backend.conflist").write_text('{"name": "backend"}')
    (root / "networks" / "ctl.conflist").write_text('{"name": "ctl"}')  # shown as bridge
    return root


@pytest.mark.parametrize(
    ("words", "want"),
    [
        ("rm ", ["web"]),
        ("logs w", ["web"]),
        ("exec ", ["web"]),
        ("run --rm ", ["example.com/app:1"]),
        ("rmi ex", ["example.com/app:1"]),
        ("image inspect ", ["example.com/app:1"]),
        ("network rm ", ["backend", "bridge"]),
        ("run --net b", ["backend", "bridge"]),
    ],
)
def test_names_complete_from_the_root_on_the_line(
    named_root: Path, tmp_path: Path, words: str, want: list[str]
) -> None:
    assert _complete(f"ctl --root {named_root} {words}", tmp_path) == want


def test_names_complete_from_ctl_root(named_root: Path, tmp_path: Path) -> None:
    assert _complete("ctl stop ", tmp_path, CTL_ROOT=str(named_root)) == ["web"]
    assert _complete("ctl -n other stop ", tmp_path, CTL_ROOT=str(named_root)) == []


def test_a_missing_or_damaged_root_completes_nothing(named_root: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    assert _complete(f"ctl --root {missing} rm ", tmp_path) == []
    assert not missing.exists(), "completing created the root"
    for record in (named_root / "namespaces" / "default" / "containers").glob("*.json"):
        record.write_text("{not json")
    assert _complete(f"ctl --root {named_root} rm ", tmp_path) == []
    assert _complete(f"ctl --root {named_root} -n ../x rm ", tmp_path) == []


def test_commands_complete(tmp_path: Path) -> None:
    assert _complete("ctl ne", tmp_path) == ["network"]
    assert "ls" in _complete("ctl network ", tmp_path)


def test_garbage_collection_is_back_on_once_the_command_is_parsed(tmp_path: Path) -> None:
    """ctl.__main__ starts without the collector; a command that lives long (a supervisor,
    logs -f) must not run without it."""
    import gc

    gc.disable()
    try:
        assert cli(["--root", str(tmp_path / "root"), "ps"]) == 0
        assert gc.isenabled()
    finally:
        gc.unfreeze()
        gc.enable()


@pytest.mark.parametrize(
    ("argv", "rm", "detach"),
    [
        (["--rm=true"], True, False),
        (["--rm=false"], False, False),
        (["--rm=1", "-d=True"], True, True),
        (["--rm", "--rm=f"], False, False),  # the last one wins, as in docker
        (["--rm=FALSE", "--rm"], True, False),
        (["-d=0", "--detach=t"], False, True),
    ],
)
def test_flags_without_a_value_take_docker_true_and_false(
    argv: list[str], rm: bool, detach: bool
) -> None:
    """docker's flags are Go's: ``--rm=false`` and ``-d=true`` are how scripts spell them."""
    args = build_parser("run").parse_args(["run", *argv, "IMG", "sh", "--rm=true", "-d=1"])
    assert (args.rm, args.detach) == (rm, detach)
    # After the image, words are the container's command line, untouched.
    assert args.command == ["sh", "--rm=true", "-d=1"]


def test_a_flag_value_is_not_read_as_a_flag_and_a_bad_boolean_is_refused() -> None:
    args = build_parser("run").parse_args(["run", "--name", "x", "-it", "IMG"])
    assert (args.name, args.interactive, args.tty) == ("x", True, True)
    args = build_parser("ps").parse_args(["ps", "--no-trunc=true", "-a=false"])
    assert (args.no_trunc, args.all) == (True, False)
    code = subprocess.run(
        [sys.executable, "-m", "ctl", "run", "--rm=maybe", "IMG"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert code.returncode == 125
    assert code.stderr == "ctl: invalid argument 'maybe' for '--rm': want true or false\n"


def test_a_flag_that_defaults_to_true_never_takes_the_next_word() -> None:
    """``--sig-proxy IMAGE`` once read IMAGE as the flag's value."""
    args = build_parser("run").parse_args(["run", "--sig-proxy", "IMG", "true"])
    assert (args.sig_proxy, args.image, args.command) == (True, "IMG", ["true"])
    args = build_parser("run").parse_args(["run", "--sig-proxy=false", "IMG"])
    assert (args.sig_proxy, args.image) == (False, "IMG")
    args = build_parser("attach").parse_args(["attach", "--sig-proxy", "web"])
    assert (args.sig_proxy, args.container) == (True, "web")
    args = build_parser("commit").parse_args(["commit", "-p=0", "web", "img:1"])
    assert (args.pause, args.container, args.ref) == (False, "web", "img:1")
