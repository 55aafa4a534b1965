"""Mounting the ``Mount`` lists snapshotters return, with mount(2) through ctypes.

No ``mount`` process is forked: one container start or one unpack may mount
several times, and a fork costs more than the mount. ::

    with mounted(sn.mounts(key)) as path:   # a fresh temporary directory
        ...                                 # unmounted and removed after

Options follow mount(8): flag words (``ro``, ``rbind``, ``nosuid``...) become
mount flags, propagation words (``rprivate``...) a second call, the rest the
filesystem's data string. A read-only bind mount takes a bind then a
read-only remount, since the kernel ignores ``MS_RDONLY`` on the first call.

The kernel copies at most one page of data for a mount. An overlay mount of
many layers (``lowerdir=<root>/snapshots/1/fs:<root>/snapshots/2/fs:...``)
does not fit, so when the data is long the lowerdirs are made relative to
their common directory and the mount is done from there, as containerd's
``compactLowerdirOption`` does. The current directory is process-wide: the
change is held under a lock for the one mount call and undone at once.
"""

from __future__ import annotations

import _thread
import contextlib
import ctypes
import errno
import functools
import os
import re
import time
from typing import TYPE_CHECKING

from ctl import fsutil
from ctl.errdefs import CtlError, NotFound, Unavailable

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

    from ctl.snapshots import Mount

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_REC = 0x4000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000

MNT_DETACH = 0x2
UMOUNT_NOFOLLOW = 0x8

# word -> (clears the flag?, flag)
_FLAGS: dict[str, tuple[bool, int]] = {
    "async": (True, MS_SYNCHRONOUS),
    "atime": (True, MS_NOATIME),
    "bind": (False, MS_BIND),
    "defaults": (False, 0),
    "dev": (True, MS_NODEV),
    "diratime": (True, MS_NODIRATIME),
    "dirsync": (False, MS_DIRSYNC),
    "exec": (True, MS_NOEXEC),
    "mand": (False, MS_MANDLOCK),
    "noatime": (False, MS_NOATIME),
    "nodev": (False, MS_NODEV),
    "nodiratime": (False, MS_NODIRATIME),
    "noexec": (False, MS_NOEXEC),
    "nomand": (True, MS_MANDLOCK),
    "norelatime": (True, MS_RELATIME),
    "nostrictatime": (True, MS_STRICTATIME),
    "nosuid": (False, MS_NOSUID),
    "rbind": (False, MS_BIND | MS_REC),
    "relatime": (False, MS_RELATIME),
    "ro": (False, MS_RDONLY),
    "rw": (True, MS_RDONLY),
    "strictatime": (False, MS_STRICTATIME),
    "suid": (True, MS_NOSUID),
    "sync": (False, MS_SYNCHRONOUS),
}
_PROPAGATION = {
    "private": MS_PRIVATE,
    "rprivate": MS_PRIVATE | MS_REC,
    "shared": MS_SHARED,
    "rshared": MS_SHARED | MS_REC,
    "slave": MS_SLAVE,
    "rslave": MS_SLAVE | MS_REC,
    "unbindable": MS_UNBINDABLE,
    "runbindable": MS_UNBINDABLE | MS_REC,
}

# Leave room, as containerd does, for what the kernel adds to the data page.
_DATA_LIMIT = os.sysconf("SC_PAGE_SIZE") - 512
_UNMOUNT_RETRIES = 50
_UNMOUNT_DELAY = 0.02

# _thread's lock, not threading's: threading costs a millisecond of every run to import.
_cwd_lock = _thread.allocate_lock()


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_ulong,
        ctypes.c_char_p,
    ]
    libc.mount.restype = ctypes.c_int
    libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    libc.umount2.restype = ctypes.c_int
    return libc


def _encode(value: str | None) -> bytes | None:
    return None if value is None else os.fsencode(value)


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str) -> None:
    rc = _libc().mount(_encode(source), _encode(target), _encode(fstype), flags, _encode(data))
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), target)


def _umount(target: str, flags: int) -> int:
    """_umount returns 0 or the errno of umount2(2)."""
    rc = _libc().umount2(_encode(target), flags | UMOUNT_NOFOLLOW)
    return 0 if rc == 0 else ctypes.get_errno()


def parse_options(options: Sequence[str]) -> tuple[int, int, list[str]]:
    """parse_options splits mount(8) words into (flags, propagation, data words)."""
    flags = 0
    propagation = 0
    data: list[str] = []
    for option in options:
        if option in _FLAGS:
            clear, flag = _FLAGS[option]
            flags = flags & ~flag if clear else flags | flag
        elif option in _PROPAGATION:
            propagation |= _PROPAGATION[option]
        else:
            data.append(option)
    return flags, propagation, data


def compact_lowerdir(data: list[str]) -> tuple[str | None, list[str]]:
    """compact_lowerdir makes the lowerdirs relative to their common parent.

    Returns that parent (to chdir to while mounting) and the new data words,
    or ``None`` and the words unchanged when there is nothing to shorten.
    """
    i = next((i for i, word in enumerate(data) if word.startswith("lowerdir=")), None)
    if i is None:
        return None, data
    dirs = data[i][len("lowerdir=") :].split(":")
    common = os.path.commonpath(dirs)
    if len(dirs) < 2 or common == "/" or not all(os.path.isabs(d) for d in dirs):
        return None, data
    relative = "lowerdir=" + ":".join(os.path.relpath(d, common) for d in dirs)
    return common, [*data[:i], relative, *data[i + 1 :]]


def mount(m: Mount, target: Path | str) -> None:
    """mount performs one Mount on ``target``."""
    target = os.fspath(target)
    flags, propagation, words = parse_options(m.options)
    if m.type == "bind":
        flags |= MS_BIND
    data = ",".join(words)
    chdir_to = None
    if len(data) > _DATA_LIMIT:
        chdir_to, words = compact_lowerdir(words)
        data = ",".join(words)
    try:
        if chdir_to is None:
            _mount(m.source, target, m.type, flags, data)
        else:
            with _cwd_lock:
                saved = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                try:
                    os.chdir(chdir_to)
                    _mount(m.source, target, m.type, flags, data)
                finally:
                    os.fchdir(saved)
                    os.close(saved)
        if flags & MS_BIND and flags & ~(MS_BIND | MS_REC):
            _mount(None, target, None, MS_REMOUNT | flags, "")
        if propagation:
            _mount(None, target, None, propagation, "")
    except OSError as err:
        what = f"mount {m.type} {m.source} on {target}: {err.strerror}"
        if err.errno == errno.ENOENT:
            raise NotFound(what) from err
        raise CtlError(what) from err


def mount_all(mounts: Sequence[Mount], target: Path | str) -> None:
    """mount_all performs the mounts in order on ``target``; all or none stay mounted."""
    done = 0
    try:
        for m in mounts:
            mount(m, target)
            done += 1
    except BaseException:
        for _ in range(done):
            _umount(os.fspath(target), MNT_DETACH)
        raise


def is_mount_point(path: Path | str) -> bool:
    """is_mount_point tells whether something is mounted on ``path`` (this mount namespace).

    os.path.ismount compares device numbers, so it misses a bind mount from
    the same filesystem, which is what the native snapshotter's mounts are.
    """
    wanted = os.path.realpath(path)
    with open("/proc/self/mountinfo", "rb") as f:
        for line in f:
            # Fields: id parent major:minor root MOUNT_POINT options ...; the
            # kernel escapes space, tab, newline and backslash in octal.
            mount_point = line.split(b" ", 5)[4]
            if b"\\" in mount_point:
                mount_point = _unescape_octal(mount_point)
            if os.fsdecode(mount_point) == wanted:
                return True
    return False


def _unescape_octal(field: bytes) -> bytes:
    return re.sub(rb"\\([0-7]{3})", lambda m: bytes([int(m[1], 8)]), field)


def unmount(target: Path | str, *, detach: bool = False) -> None:
    """unmount removes every mount stacked on ``target``; none is fine.

    A busy target is retried for about a second, then Unavailable;
    ``detach`` (MNT_DETACH) unmounts lazily instead.
    """
    path = os.fspath(target)
    flags = MNT_DETACH if detach else 0
    busy = 0
    while True:
        err = _umount(path, flags)
        if err == 0:
            continue
        if err in (errno.EINVAL, errno.ENOENT):
            return  # no longer a mount point
        if err == errno.EBUSY and busy < _UNMOUNT_RETRIES:
            busy += 1
            time.sleep(_UNMOUNT_DELAY)
            continue
        what = f"unmount {path}: {os.strerror(err)}"
        if err == errno.EBUSY:
            raise Unavailable(what, hint="a process is still using it")
        raise CtlError(what)


@contextlib.contextmanager
def mounted(mounts: Sequence[Mount], target: Path | None = None) -> Iterator[Path]:
    """mounted mounts ``mounts`` for the block and unmounts them after.

    Without ``target`` it mounts on a new temporary directory, removed after.
    """
    path = target or fsutil.make_temp_dir(os.environ.get("TMPDIR") or "/tmp", "ctl-mount-")
    try:
        mount_all(mounts, path)
        try:
            yield path
        finally:
            unmount(path)
    finally:
        if target is None:
            with contextlib.suppress(OSError):  # still mounted if unmount failed
                path.rmdir()
