"""User and group lookup in a container's root filesystem.

The rootfs comes from an image, so it is untrusted: /etc/passwd may be a
symlink to ``/../../etc/shadow`` of the host, a FIFO that blocks forever, a
device node or a gigabyte of text. ``read_in_root`` resolves a path the way
the kernel would inside a chroot at ``root`` (absolute symlinks and ``..``
stop at the root), opens every component with ``O_NOFOLLOW`` so a concurrent
swap cannot slip a symlink past it, refuses anything but a regular file and
reads at most a bounded number of bytes.

``resolve_user`` then turns a ``UserSpec`` (``-u`` or the image's User) into
numeric ids as runc's and containerd's lookups do: a name must exist in
/etc/passwd; a uid that is not there runs with gid 0; the supplementary groups
are the /etc/group entries that list the user's name, after the primary gid.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import TYPE_CHECKING, NamedTuple

from ctl.errdefs import InvalidArgument, NotFound
from ctl.runtime.runopts import MAX_ID

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from ctl.runtime.runopts import UserSpec

# /etc/passwd and /etc/group of real images are a few kB; 4 MiB leaves room
# for directory-sized ones and still bounds what a hostile image can make us read.
MAX_FILE_SIZE = 4 << 20
# Linux gives up after 40 symlinks in one lookup; so do we.
MAX_SYMLINKS = 40


class PasswdEntry(NamedTuple):
    """PasswdEntry is one line of /etc/passwd."""

    name: str
    uid: int
    gid: int
    home: str


class GroupEntry(NamedTuple):
    """GroupEntry is one line of /etc/group."""

    name: str
    gid: int
    members: tuple[str, ...]


class ExecUser(NamedTuple):
    """ExecUser is what the OCI spec's process.user needs: numeric ids only."""

    uid: int
    gid: int
    additional_gids: tuple[int, ...]


def read_in_root(
    root: Path, path: str, max_size: int = MAX_FILE_SIZE, *, head: bool = False
) -> bytes:
    """read_in_root returns the bytes of ``path`` as seen from inside ``root``.

    Raises NotFound when the file (or a directory on the way) does not exist,
    InvalidArgument when it is not a regular file, is larger than ``max_size``
    (with ``head``, its first ``max_size`` bytes are returned instead)
    or takes more than MAX_SYMLINKS symlinks to reach.
    """
    parts = [p for p in path.split("/") if p]
    try:
        stack = [os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)]
    except OSError as err:
        raise NotFound(f"root filesystem {root}: {err.strerror}") from err
    symlinks = 0
    try:
        while parts:
            name = parts.pop(0)
            if name == ".":
                continue
            if name == "..":
                # Our own stack, not the kernel's "..": it cannot climb above root.
                if len(stack) > 1:
                    os.close(stack.pop())
                continue
            try:
                fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=stack[-1])
            except OSError as err:
                raise _lookup_error(root, path, err) from err
            mode = os.fstat(fd).st_mode
            if stat.S_ISLNK(mode):
                target = os.readlink("", dir_fd=fd)
                os.close(fd)
                symlinks += 1
                if symlinks > MAX_SYMLINKS:
                    raise InvalidArgument(f"{path} in {root}: too many levels of symbolic links")
                if target.startswith("/"):
                    while len(stack) > 1:
                        os.close(stack.pop())
                parts[:0] = [p for p in target.split("/") if p]
                continue
            stack.append(fd)
            if parts and not stat.S_ISDIR(mode):
                raise NotFound(f"{path} in {root}: {name} is not a directory")
        if len(stack) == 1 or not stat.S_ISREG(os.fstat(stack[-1]).st_mode):
            raise InvalidArgument(f"{path} in {root}: not a regular file")
        # Reopening the O_PATH descriptor reads the very inode that was checked.
        with open(f"/proc/self/fd/{stack[-1]}", "rb") as f:
            data = f.read(max_size + 1)
        if len(data) > max_size:
            if head:
                return data[:max_size]
            raise InvalidArgument(f"{path} in {root}: larger than {max_size} bytes")
        return data
    finally:
        for fd in stack:
            os.close(fd)


def _lookup_error(root: Path, path: str, err: OSError) -> Exception:
    if err.errno in (errno.ENOENT, errno.ENOTDIR):
        return NotFound(f"{path} in {root}: {err.strerror}")
    return InvalidArgument(f"{path} in {root}: {err.strerror}")


def parse_passwd(data: bytes) -> list[PasswdEntry]:
    """parse_passwd reads /etc/passwd; malformed lines are skipped, as libc does."""
    entries = []
    for fields in _records(data):
        uid, gid = (_numeric(f) for f in fields[2:4]) if len(fields) >= 4 else (None, None)
        if uid is not None and gid is not None:
            home = fields[5] if len(fields) > 5 else ""
            entries.append(PasswdEntry(fields[0], uid, gid, home))
    return entries


def parse_group(data: bytes) -> list[GroupEntry]:
    """parse_group reads /etc/group; malformed lines are skipped, as libc does."""
    entries = []
    for fields in _records(data):
        gid = _numeric(fields[2]) if len(fields) >= 3 else None
        if gid is not None:
            members = tuple(m for m in fields[3].split(",") if m) if len(fields) > 3 else ()
            entries.append(GroupEntry(fields[0], gid, members))
    return entries


def _records(data: bytes) -> list[list[str]]:
    text = data.decode("utf-8", errors="replace")
    return [
        line.split(":") for line in text.splitlines() if line.strip() and not line.startswith("#")
    ]


def _numeric(value: str) -> int | None:
    """_numeric is the id ``value`` spells in ASCII digits, or None (a name, or out of range)."""
    if value.isascii() and value.isdigit() and int(value) <= MAX_ID:
        return int(value)
    return None


def _read_optional(root: Path, path: str) -> bytes:
    """_read_optional is read_in_root where a missing file reads as empty."""
    try:
        return read_in_root(root, path)
    except NotFound:
        return b""


def resolve_user(root: Path, spec: UserSpec) -> ExecUser:
    """resolve_user turns ``spec`` into numeric ids using ``root``'s /etc/passwd and /etc/group.

    Raises NotFound for a user or group name the files do not have.
    """
    passwd = parse_passwd(_read_optional(root, "/etc/passwd"))
    groups = parse_group(_read_optional(root, "/etc/group"))
    uid = _numeric(spec.user)
    if uid is None:
        entry = next((e for e in passwd if e.name == spec.user), None)
        if entry is None:
            raise NotFound(f"user {spec.user!r}: no such user in the container's /etc/passwd")
        uid = entry.uid
    else:
        entry = next((e for e in passwd if e.uid == uid), None)
    gid = entry.gid if entry is not None else 0
    if spec.group is not None:
        gid = _group_id(groups, spec.group)
    additional = [gid]
    if entry is not None:
        for group in groups:
            if entry.name in group.members and group.gid not in additional:
                additional.append(group.gid)
    return ExecUser(uid, gid, tuple(additional))


def _group_id(groups: list[GroupEntry], group: str) -> int:
    gid = _numeric(group)
    if gid is not None:
        return gid
    match = next((g for g in groups if g.name == group), None)
    if match is None:
        raise NotFound(f"group {group!r}: no such group in the container's /etc/group")
    return match.gid


def resolve_group_ids(root: Path, groups: Sequence[str]) -> list[int]:
    """resolve_group_ids turns gids and group names (``root``'s /etc/group) into gids."""
    entries = parse_group(_read_optional(root, "/etc/group"))
    return [_group_id(entries, group) for group in groups]
