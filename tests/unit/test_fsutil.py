"""fsutil's writes and locks take strings and Paths, and a bare name means the working directory."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ctl import fsutil

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def test_atomic_write_of_a_bare_name_writes_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    fsutil.atomic_write("out.json", b"1")
    with fsutil.atomic_file("out.tar") as f:
        f.write(b"tar")
    assert (tmp_path / "out.json").read_bytes() == b"1"
    assert (tmp_path / "out.tar").read_bytes() == b"tar"
    assert sorted(os.listdir(tmp_path)) == ["out.json", "out.tar"], "no temporary file left"


def test_string_and_path_targets_are_the_same_file(tmp_path: Path) -> None:
    fsutil.atomic_write_json(str(tmp_path / "a" / "r.json"), {"n": 1})
    fsutil.atomic_write_json(tmp_path / "a" / "r.json", {"n": 2})
    assert fsutil.read_json(tmp_path / "a" / "r.json") == {"n": 2}
    with fsutil.FileLock(str(tmp_path / "locks" / "x.lock"), remove=True):
        assert (tmp_path / "locks" / "x.lock").exists()
    assert not (tmp_path / "locks" / "x.lock").exists()
    fsutil.unlink_if_present(tmp_path / "a" / "r.json")
    fsutil.unlink_if_present(tmp_path / "a" / "r.json")
    assert os.listdir(tmp_path / "a") == []
