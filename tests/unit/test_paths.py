"""Paths: the root's layout, and the version check that guards it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ctl.errdefs import FailedPrecondition, InvalidArgument
from ctl.paths import LAYOUT_VERSION, Paths
from tests.helpers import REPO_ROOT


def test_ensure_creates_the_root_and_its_version(tmp_path: Path) -> None:
    root = tmp_path / "root"
    Paths(root).ensure()
    assert (root / "version").read_text() == LAYOUT_VERSION
    assert root.stat().st_mode & 0o777 == 0o700
    Paths(root).ensure()


@pytest.mark.parametrize("found", [b"2", b"", b"\xff\xfe", b"1.0"])
def test_ensure_refuses_another_layout(tmp_path: Path, found: bytes) -> None:
    (tmp_path / "version").write_bytes(found)
    with pytest.raises(FailedPrecondition, match=re.escape(str(tmp_path / "version"))):
        Paths(tmp_path).ensure()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["version"]
    assert (tmp_path / "version").read_bytes() == found


def test_the_cli_refuses_another_layout(tmp_path: Path) -> None:
    (tmp_path / "version").write_text("2")
    proc = subprocess.run(
        [sys.executable, "-m", "ctl", "--root", str(tmp_path), "images"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 125
    assert str(tmp_path / "version") in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["version"]


def test_locks_are_named_after_what_they_guard(tmp_path: Path) -> None:
    paths = Paths(tmp_path)
    assert paths.lock("gc") == str(tmp_path / "locks" / "gc.lock")
    assert paths.lock("containers", "default") == str(
        tmp_path / "locks" / "containers-default.lock"
    )
    assert paths.lock("container", "ns", "ab12") == str(
        tmp_path / "locks" / "container-ns-ab12.lock"
    )
    with pytest.raises(InvalidArgument):
        paths.lock("images", "../x")
