"""Issue 12: what cp, commit, import and the prunes read from their command lines (no root)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from ctl.archive.tree import copy_extents
from ctl.commands import build_parser
from ctl.commands.transfer import parse_prune_filters, split_cp_arg
from ctl.errdefs import InvalidArgument
from ctl.images.commit import apply_change


@pytest.mark.parametrize(
    ("arg", "want"),
    [
        ("web:/etc/hosts", ("web", "/etc/hosts")),
        ("web:relative", ("web", "relative")),
        ("/abs/with:colon", ("", "/abs/with:colon")),
        ("./local:file", ("", "./local:file")),
        ("plain", ("", "plain")),
        ("-", ("", "-")),
    ],
)
def test_split_cp_arg_is_dockers(arg: str, want: tuple[str, str]) -> None:
    assert split_cp_arg(arg) == want


def test_change_instructions() -> None:
    config: dict[str, object] = {"Env": ["PATH=/bin", "FOO=old"]}
    for change in (
        "ENV FOO=new BAR=two",
        "ENV OLD style value",
        'CMD ["a", "b"]',
        "ENTRYPOINT echo hi",
        'LABEL a=b "c d"=e',
        "EXPOSE 80 53/udp",
        "USER nobody",
        "WORKDIR /srv",
        'VOLUME ["/data"]',
        "STOPSIGNAL SIGINT",
        "onbuild RUN true",
    ):
        apply_change(config, change)
    assert config["Env"] == ["PATH=/bin", "FOO=new", "BAR=two", "OLD=style value"]
    assert config["Cmd"] == ["a", "b"]
    assert config["Entrypoint"] == ["/bin/sh", "-c", "echo hi"]
    assert config["Labels"] == {"a": "b", "c d": "e"}
    assert config["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert (config["User"], config["WorkingDir"], config["StopSignal"]) == (
        "nobody",
        "/srv",
        "SIGINT",
    )
    assert config["Volumes"] == {"/data": {}}
    assert config["OnBuild"] == ["RUN true"]


@pytest.mark.parametrize("change", ["RUN echo", "COPY a b", "CMD", 'CMD ["unclosed"', "ENV A"])
def test_bad_change_is_refused(change: str) -> None:
    with pytest.raises(InvalidArgument):
        apply_change({}, change)


def test_prune_filters() -> None:
    until, labels = parse_prune_filters(["until=1h30m", "label=a", "label!=b=c"])
    assert until is not None and abs(time.time() - 5400 - until) < 5
    assert labels == ["a", "!b=c"]
    assert parse_prune_filters(["until=1700000000"])[0] == 1700000000.0
    assert parse_prune_filters(["until=2023-11-14T22:13:20Z"])[0] == 1700000000.0
    for bad in ("until=soon", "dangling=true", "label="):
        with pytest.raises(InvalidArgument):
            parse_prune_filters([bad])


def test_docker_boolean_flags_never_take_the_next_word() -> None:
    parser = build_parser("commit")
    assert parser.parse_args(["commit", "-p", "c1", "r"]).pause is True
    assert parser.parse_args(["commit", "--pause=false", "c1"]).pause is False
    history = build_parser("history")
    assert history.parse_args(["history", "-H", "img"]).human is True
    assert history.parse_args(["history", "-H=false", "img"]).human is False


def test_copy_extents_keeps_holes_and_bytes(tmp_path: Path) -> None:
    src = tmp_path / "src"
    with src.open("wb") as f:
        f.write(b"a" * 5000)
        f.seek(64 << 20)
        f.write(b"b" * 100)
        f.truncate(128 << 20)
    dst = tmp_path / "dst"
    with src.open("rb") as fin, dst.open("wb") as fout:
        copy_extents(fin.fileno(), fout.fileno(), os.path.getsize(src))
    assert dst.read_bytes() == src.read_bytes()
    assert dst.stat().st_blocks * 512 < 8 << 20
