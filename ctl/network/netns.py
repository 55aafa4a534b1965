"""Named network namespaces: an nsfs bind mount on a file, as ``ip netns add`` makes.

A network namespace lives as long as something refers to it. Binding it onto
a file under the ctl root gives it a name that outlives every process: runc
joins it by path, CNI plugins configure it by path, and a teardown after a
crash finds it at the same path. ::

    create(path)      # a new, empty namespace (only ``lo``, down) bound on path
    is_netns(path)    # True while the bind mount is there
    remove(path)      # unmount and unlink; a missing or stale file is fine

``create`` does not fork: a short-lived thread unshares its own network
namespace (unshare(2) with CLONE_NEWNET changes only the calling thread),
binds ``/proc/thread-self/ns/net`` onto the file and ends, so the process's
other threads never see the new namespace.
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading
from typing import TYPE_CHECKING

from ctl.errdefs import CtlError

if TYPE_CHECKING:
    from pathlib import Path

CLONE_NEWNET = 0x40000000
NSFS_MAGIC = 0x6E736673


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.unshare.argtypes = [ctypes.c_int]
    libc.unshare.restype = ctypes.c_int
    libc.fstatfs.argtypes = [ctypes.c_int, ctypes.c_char_p]
    libc.fstatfs.restype = ctypes.c_int
    return libc


def _new_netns_on(target: str) -> None:
    """_new_netns_on runs in a thread of its own, which it leaves in the new namespace."""
    from ctl.snapshots import Mount
    from ctl.snapshots.mount import mount

    if _libc().unshare(CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)}")
    mount(Mount(type="bind", source="/proc/thread-self/ns/net"), target)


def create(path: Path) -> None:
    """create makes a new network namespace and binds it on ``path`` (which must not exist)."""
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444))
    except FileExistsError:
        raise CtlError(f"create network namespace {path}: the file exists") from None
    failure: list[BaseException] = []

    def run() -> None:
        try:
            _new_netns_on(str(path))
        except BaseException as err:
            failure.append(err)

    thread = threading.Thread(target=run, name="ctl-netns")
    thread.start()
    thread.join()
    if failure:
        path.unlink(missing_ok=True)
        err = failure[0]
        if isinstance(err, CtlError):
            raise err
        raise CtlError(f"create network namespace {path}: {err}") from err


def is_netns(path: Path) -> bool:
    """is_netns is True if ``path`` is a network namespace (a live nsfs mount)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        return _fstatfs_type(fd) == NSFS_MAGIC
    finally:
        os.close(fd)


def _fstatfs_type(fd: int) -> int:
    # os.statvfs has no f_type; struct statfs starts with it (a long on Linux).
    buf = ctypes.create_string_buffer(256)
    if _libc().fstatfs(fd, buf) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
    return ctypes.c_long.from_buffer(buf).value


def remove(path: Path) -> None:
    """remove unmounts and deletes a namespace file; one that is gone or stale is fine.

    After a reboot the file is still there but nothing is mounted on it: it
    is simply deleted.
    """
    from ctl.snapshots.mount import unmount

    # Lazily: a process still inside the namespace keeps it alive, not the file.
    unmount(path, detach=True)
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as err:
        raise CtlError(f"remove network namespace {path}: {err.strerror}") from err
