"""Atomic writes and file locks: the only way ctl changes records on disk.

``atomic_write`` writes a temporary file in the target's directory, fsyncs it,
renames it over the target and fsyncs the directory, so a reader sees the old
or the new content and never a torn write, even across a crash. ``FileLock``
is an ``flock`` on a lock file: it is released by the kernel when its holder
dies, so a ``kill -9`` never leaves a lock behind.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import os
import time

from ctl.closing import Closing
from ctl.errdefs import Unavailable, WriteFailed

# typing is not imported at run time, and json only where used: start-up
# time is a feature, and a listing of an empty root needs neither.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path
    from typing import Any, BinaryIO

    from _typeshed import ReadableBuffer, StrPath

FILE_MODE = 0o644
DIR_MODE = 0o755


def fsync_dir(path: StrPath) -> None:
    """fsync_dir makes a rename or unlink inside ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_temp_dir(parent: StrPath, prefix: str) -> Path:
    """make_temp_dir creates ``parent/<prefix><random>`` (mode 0700) and returns it.

    tempfile.mkdtemp does the same, but importing tempfile (with shutil and
    random) costs ``ctl run`` 2 ms.
    """
    from pathlib import Path

    while True:
        path = Path(parent, prefix + os.urandom(6).hex())
        try:
            os.mkdir(path, 0o700)
            return path
        except FileExistsError:
            continue


def atomic_write(
    target: StrPath,
    data: bytes,
    mode: int = FILE_MODE,
    durable: bool = True,
    what: str | None = None,
) -> None:
    """atomic_write replaces ``path`` with ``data`` in one rename.

    ``durable`` False skips the fsyncs, for files that are derived again
    before every use (a bundle's config.json, /etc/hosts): a reader still
    never sees a torn file, but a power loss may lose the new content.
    A failure (a full disk) leaves ``path`` as it was and no temporary file,
    and raises WriteFailed naming ``what`` (default: the path).
    """
    path = os.fspath(target)
    tmp = _temp_name(path)
    try:
        os.makedirs(_parent(path), DIR_MODE, exist_ok=True)
        fd, named = _open_temp(path, mode)
        try:
            write_all(fd, data)
            if durable:
                os.fsync(fd)
            _replace(fd, named, path)
        finally:
            os.close(fd)
        if durable:
            fsync_dir(_parent(path))
    except BaseException as err:
        unlink_if_present(tmp)
        if isinstance(err, OSError) and not isinstance(err, WriteFailed):
            raise WriteFailed(what or str(path), err) from err
        raise


class _TargetFile(io.FileIO):
    """_TargetFile is atomic_file's temporary file: its failed writes name what they wrote."""

    def __init__(self, fd: int, what: str) -> None:
        super().__init__(fd, "w")
        self.what = what

    def write(self, data: ReadableBuffer, /) -> int:
        try:
            return super().write(data)
        except OSError as err:
            raise WriteFailed(self.what, err) from err


@contextlib.contextmanager
def atomic_file(
    target: StrPath, mode: int = FILE_MODE, what: str | None = None
) -> Iterator[BinaryIO]:
    """atomic_file yields a file that replaces ``path`` only if the block succeeds.

    A failed write to it (a full disk) raises WriteFailed naming ``what``
    (default: the path); whatever fails, no temporary file is left.
    """
    path = os.fspath(target)
    name = what or path
    tmp = _temp_name(path)
    try:
        try:
            fd, named = _open_temp(path, mode)
        except OSError as err:
            raise WriteFailed(name, err) from err
        with io.BufferedWriter(_TargetFile(fd, name)) as f:
            yield f
            f.flush()
            try:
                os.fsync(fd)
                _replace(fd, named, path)
                fsync_dir(_parent(path))
            except OSError as err:
                raise WriteFailed(name, err) from err
    except BaseException:
        unlink_if_present(tmp)
        raise


def unlink_if_present(path: StrPath) -> None:
    """unlink_if_present removes the file ``path``; one that is not there is fine."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _parent(path: str) -> str:
    """_parent is the directory ``path`` is in: "." for a bare name (``save -o out.tar``)."""
    return os.path.dirname(path) or "."


def _temp_name(path: str) -> str:
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.{os.getpid()}.tmp")


def _open_temp(path: str, mode: int) -> tuple[int, bool]:
    """_open_temp opens the file that will replace ``path``; True if it is named already.

    The file is unnamed (O_TMPFILE) where the filesystem allows, so a writer
    killed with SIGKILL while it writes leaves nothing behind (a named temp
    file would stay, as large as the write had got); only the moment between
    naming it and the rename could leave one. Elsewhere it is
    ``_temp_name(path)`` from the start.
    """
    try:
        return os.open(_parent(path), os.O_TMPFILE | os.O_WRONLY | os.O_CLOEXEC, mode), False
    except OSError as err:
        if err.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            raise
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
    return os.open(_temp_name(path), flags, mode), True


def _replace(fd: int, named: bool, path: str) -> None:
    """_replace puts the file ``fd`` from ``_open_temp`` at ``path`` in one rename.

    An unnamed file is linked to ``_temp_name(path)`` first (the caller
    removes that name if this fails): linkat cannot replace an existing
    file, and rename needs a name to move. os.link follows the /proc link
    only when given a directory descriptor.
    """
    tmp = _temp_name(path)
    if not named:
        unlink_if_present(tmp)
        directory = os.open(_parent(path), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.link(f"/proc/self/fd/{fd}", os.path.basename(tmp), dst_dir_fd=directory)
        finally:
            os.close(directory)
    os.replace(tmp, path)


def atomic_write_json(
    path: StrPath, record: Any, durable: bool = True, what: str | None = None
) -> None:
    """atomic_write_json writes ``record`` as indented JSON, atomically (see atomic_write)."""
    import json

    data = json.dumps(record, indent=2, sort_keys=True).encode() + b"\n"
    atomic_write(path, data, durable=durable, what=what)


def write_all(fd: int, data: bytes) -> None:
    """write_all writes all of ``data`` to ``fd``, however many writes a pipe takes."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def read_json(path: StrPath) -> Any:
    """read_json loads a JSON record written by ``atomic_write_json``."""
    with open(path, "rb") as f:
        import json

        return json.load(f)


class FileLock(Closing):
    """FileLock holds an exclusive (or shared) flock on ``path`` while entered.

    ``timeout`` None waits forever; 0 fails at once with ``Unavailable``.
    ``remove`` (exclusive locks only) unlinks the lock file on release, for
    locks named after something short-lived, such as one container: a waiter
    that then holds a lock on the unlinked file notices and locks the new one.
    """

    def __init__(
        self,
        path: StrPath,
        *,
        shared: bool = False,
        timeout: float | None = None,
        what: str | None = None,
        remove: bool = False,
    ) -> None:
        if remove and shared:
            raise ValueError("FileLock: only an exclusive lock may remove its file")
        self.path = os.fspath(path)
        self.shared = shared
        self.timeout = timeout
        self.what = what or self.path
        self.remove = remove
        self._fd: int | None = None

    def acquire(self) -> None:
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        os.makedirs(_parent(self.path), DIR_MODE, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                self._lock(fd, deadline)
                if not self.remove or self._still_linked(fd):
                    self._fd = fd
                    return
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)

    def _still_linked(self, fd: int) -> bool:
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            return False
        held = os.fstat(fd)
        return (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)

    def _lock(self, fd: int, deadline: float | None) -> None:
        op = fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX
        if deadline is None:
            fcntl.flock(fd, op)
            return
        delay = 0.005
        while True:
            try:
                fcntl.flock(fd, op | fcntl.LOCK_NB)
                return
            except OSError as err:
                if err.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
            if time.monotonic() >= deadline:
                raise Unavailable(f"{self.what} is locked by another ctl process")
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    def release(self) -> None:
        if self._fd is not None:
            if self.remove:
                # Unlinked while still held, so no one can lock it unnoticed.
                unlink_if_present(self.path)
            os.close(self._fd)
            self._fd = None

    close = release

    def __enter__(self) -> FileLock:
        self.acquire()
        return self
