"""Mount points as ctl sees them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ctl.snapshots import Mount
from ctl.snapshots.mount import is_mount_point, mount_all, unmount

pytestmark = pytest.mark.needs_root


def test_a_bind_mount_from_the_same_filesystem_is_a_mount_point(tmp_path: Path) -> None:
    source = tmp_path / "source dir"  # the kernel escapes the space in mountinfo
    target = tmp_path / "target\tdir"
    source.mkdir()
    target.mkdir()
    assert not is_mount_point(target)
    mount_all([Mount(type="bind", source=str(source), options=("rbind",))], target)
    try:
        assert is_mount_point(target)
        assert not os.path.ismount(target)  # why is_mount_point exists
        mount_all([Mount(type="bind", source=str(source), options=("rbind",))], target)
    finally:
        unmount(target)  # both stacked mounts
    assert not is_mount_point(target)
    unmount(target)  # nothing mounted is fine
