"""Tests of ctl.runtime.users: safe reads inside an untrusted rootfs, and user resolution."""

from __future__ import annotations

import contextlib
import os
import threading
from typing import TYPE_CHECKING

import pytest

from ctl.errdefs import InvalidArgument, NotFound
from ctl.runtime.runopts import UserSpec, parse_user
from ctl.runtime.users import (
    ExecUser,
    GroupEntry,
    PasswdEntry,
    parse_group,
    parse_passwd,
    read_in_root,
    resolve_user,
)

if TYPE_CHECKING:
    from pathlib import Path

PASSWD = b"""\
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
# a comment
bad line without fields
alice:x:1000:1000:Alice:/home/alice:/bin/sh
bob:x:1001:100::/home/bob:/bin/sh
broken:x:notanumber:0::/:/bin/sh
huge:x:99999999999:0::/:/bin/sh
alice:x:2000:2000:second alice is ignored:/:/bin/sh
"""
GROUP = b"""\
root:x:0:
wheel:x:10:root,alice
users:x:100:
alice:x:1000:
audio:x:29:bob,alice
video:x:44:bob
broken:x:x:alice
"""


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_bytes(PASSWD)
    (root / "etc" / "group").write_bytes(GROUP)
    return root


def test_parse_passwd_skips_malformed_lines() -> None:
    assert parse_passwd(PASSWD) == [
        PasswdEntry("root", 0, 0, "/root"),
        PasswdEntry("daemon", 1, 1, "/usr/sbin"),
        PasswdEntry("alice", 1000, 1000, "/home/alice"),
        PasswdEntry("bob", 1001, 100, "/home/bob"),
        PasswdEntry("alice", 2000, 2000, "/"),
    ]


def test_parse_group_skips_malformed_lines() -> None:
    assert parse_group(GROUP) == [
        GroupEntry("root", 0, ()),
        GroupEntry("wheel", 10, ("root", "alice")),
        GroupEntry("users", 100, ()),
        GroupEntry("alice", 1000, ()),
        GroupEntry("audio", 29, ("bob", "alice")),
        GroupEntry("video", 44, ("bob",)),
    ]


@pytest.mark.parametrize(
    ("user", "want"),
    [
        ("root", ExecUser(0, 0, (0, 10))),
        ("0", ExecUser(0, 0, (0, 10))),
        ("alice", ExecUser(1000, 1000, (1000, 10, 29))),
        ("1000", ExecUser(1000, 1000, (1000, 10, 29))),
        ("bob", ExecUser(1001, 100, (100, 29, 44))),
        ("alice:audio", ExecUser(1000, 29, (29, 10))),
        ("alice:44", ExecUser(1000, 44, (44, 10, 29))),
        ("1000:1000", ExecUser(1000, 1000, (1000, 10, 29))),
        # A uid /etc/passwd does not know runs with gid 0 and no groups, as in runc.
        ("4242", ExecUser(4242, 0, (0,))),
        ("4242:4242", ExecUser(4242, 4242, (4242,))),
        ("4242:users", ExecUser(4242, 100, (100,))),
    ],
)
def test_resolve_user(rootfs: Path, user: str, want: ExecUser) -> None:
    assert resolve_user(rootfs, parse_user(user)) == want


def test_resolve_user_unknown_names(rootfs: Path) -> None:
    with pytest.raises(NotFound, match="user 'mallory'"):
        resolve_user(rootfs, UserSpec("mallory"))
    with pytest.raises(NotFound, match="group 'nope'"):
        resolve_user(rootfs, UserSpec("alice", "nope"))


def test_resolve_user_without_etc_files(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert resolve_user(tmp_path / "empty", UserSpec("0")) == ExecUser(0, 0, (0,))
    assert resolve_user(tmp_path / "empty", UserSpec("5", "6")) == ExecUser(5, 6, (6,))
    with pytest.raises(NotFound):
        resolve_user(tmp_path / "empty", UserSpec("root"))


def test_read_in_root_follows_symlinks_inside_root(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "usr" / "lib").mkdir(parents=True)
    (root / "usr" / "lib" / "passwd").write_text("inside")
    (root / "etc").symlink_to("usr/lib")
    (root / "abs").symlink_to("/etc/passwd")
    (root / "dots").symlink_to("../../../../usr/./lib/passwd")
    assert read_in_root(root, "/etc/passwd") == b"inside"
    assert read_in_root(root, "abs") == b"inside"
    assert read_in_root(root, "/../../dots") == b"inside"


def test_read_in_root_never_leaves_root(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("host secret")
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").symlink_to(secret)  # absolute: resolves to root/<tmp>/secret
    (root / "etc" / "group").symlink_to("../../secret")  # ".." stops at root
    (root / "dir").symlink_to(tmp_path)
    for path in ("/etc/passwd", "/etc/group", "/dir/secret", "/../secret"):
        with pytest.raises(NotFound):
            read_in_root(root, path)
    # The host files never reach the user lookup either.
    with pytest.raises(NotFound):
        resolve_user(root, UserSpec("root"))


def test_read_in_root_refuses_special_files(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    os.mkfifo(root / "etc" / "passwd")  # opening a FIFO for reading would block forever
    (root / "etc" / "group").mkdir()
    for name in ("passwd", "group"):
        with pytest.raises(InvalidArgument, match="not a regular file"):
            read_in_root(root, f"/etc/{name}")
    with pytest.raises(InvalidArgument, match="not a regular file"):
        read_in_root(root, "/")


def test_read_in_root_errors(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    root.mkdir()
    (root / "big").write_bytes(b"x" * 101)
    (root / "file").write_text("x")
    (root / "loop").symlink_to("loop")
    with pytest.raises(InvalidArgument, match="larger than 100 bytes"):
        read_in_root(root, "big", max_size=100)
    assert read_in_root(root, "big", max_size=101) == b"x" * 101
    with pytest.raises(InvalidArgument, match="symbolic links"):
        read_in_root(root, "loop")
    with pytest.raises(NotFound, match="not a directory"):
        read_in_root(root, "file/passwd")
    with pytest.raises(NotFound):
        read_in_root(root, "missing/passwd")
    with pytest.raises(NotFound, match="root filesystem"):
        read_in_root(tmp_path / "no-rootfs", "/etc/passwd")


def test_read_in_root_closes_every_descriptor(rootfs: Path) -> None:
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(50):
        read_in_root(rootfs, "/etc/passwd")
        with pytest.raises(NotFound):
            read_in_root(rootfs, "/etc/missing")
    assert len(os.listdir("/proc/self/fd")) == before


def test_read_in_root_survives_a_racing_symlink_swap(tmp_path: Path) -> None:
    """A container swapping /etc for a symlink to the host's /etc never gets host data read."""
    secret = tmp_path / "host-etc"
    secret.mkdir()
    (secret / "passwd").write_text("HOST")
    root = tmp_path / "rootfs"
    (root / "real").mkdir(parents=True)
    (root / "real" / "passwd").write_text("CONTAINER")
    (root / "etc").symlink_to("real")
    stop = threading.Event()

    def swap() -> None:
        # rename() over the symlink keeps some /etc in place at every moment.
        while not stop.is_set():
            for target in (str(secret), "real"):
                tmp = root / "etc.tmp"
                tmp.unlink(missing_ok=True)
                tmp.symlink_to(target)
                tmp.replace(root / "etc")

    thread = threading.Thread(target=swap)
    thread.start()
    reads = 0
    try:
        for _ in range(2000):
            # While /etc is the absolute link, resolved inside root, nothing is found.
            with contextlib.suppress(NotFound):
                assert read_in_root(root, "/etc/passwd") == b"CONTAINER"
                reads += 1
    finally:
        stop.set()
        thread.join()
    assert reads > 0
