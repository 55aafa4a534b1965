"""Copy-up: a new, empty volume starts with the image's files at its mount point.

docker copies the directory the volume will cover into it, owners, modes
and times kept, and gives the volume's top directory the owner and mode of
the image's directory. The image's tree is read below the container's
mounted rootfs through directory descriptors opened with ``O_NOFOLLOW``:
a symlink on the way to the mount point means there is nothing to copy (a
hostile image could point it anywhere on the host), and symlinks inside
the tree are copied as links, never followed.
"""

from __future__ import annotations

import contextlib
import os
import stat
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_COPY_CHUNK = 1 << 20


def copy_up(rootfs: Path, path: str, target: str) -> None:
    """copy_up copies the directory ``path`` of ``rootfs`` into the empty directory ``target``.

    Nothing is copied when ``path`` is missing, is not a directory, or is
    reached through a symlink.
    """
    fd = _open_within(rootfs, path)
    if fd is None:
        return
    try:
        _Copier().copy_dir(fd, target)
        st = os.fstat(fd)
        _set_metadata(target, st)
    finally:
        os.close(fd)


def _open_within(rootfs: Path, path: str) -> int | None:
    fd = os.open(rootfs, _DIR_FLAGS)
    for part in (p for p in path.split("/") if p and p != "."):
        try:
            child = os.open(part, _DIR_FLAGS, dir_fd=fd) if part != ".." else -1
        except OSError:
            child = -1
        os.close(fd)
        if child < 0:
            return None
        fd = child
    return fd


class _Copier:
    """_Copier copies one tree; a file's hard links stay links to one copy."""

    def __init__(self) -> None:
        self._links: dict[tuple[int, int], str] = {}

    def copy_dir(self, src_fd: int, target: str) -> None:
        for entry in os.scandir(src_fd):
            st = entry.stat(follow_symlinks=False)
            dest = os.path.join(target, entry.name)
            if stat.S_ISDIR(st.st_mode):
                os.mkdir(dest, 0o700)
                child = os.open(entry.name, _DIR_FLAGS, dir_fd=src_fd)
                try:
                    self.copy_dir(child, dest)
                finally:
                    os.close(child)
            elif st.st_nlink > 1 and (st.st_dev, st.st_ino) in self._links:
                os.link(self._links[st.st_dev, st.st_ino], dest, follow_symlinks=False)
                continue
            elif stat.S_ISREG(st.st_mode):
                self._copy_file(src_fd, entry.name, dest)
            elif stat.S_ISLNK(st.st_mode):
                os.symlink(os.readlink(entry.name, dir_fd=src_fd), dest)
            else:
                os.mknod(dest, st.st_mode, st.st_rdev)
            if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
                self._links[st.st_dev, st.st_ino] = dest
            _set_metadata(dest, st)

    def _copy_file(self, src_fd: int, name: str, dest: str) -> None:
        src = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=src_fd)
        try:
            out = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                # sendfile, not copy_file_range: that fails across filesystems.
                while os.sendfile(out, src, None, _COPY_CHUNK):
                    pass
            finally:
                os.close(out)
        finally:
            os.close(src)


def _set_metadata(path: str, st: os.stat_result) -> None:
    os.chown(path, st.st_uid, st.st_gid, follow_symlinks=False)
    if not stat.S_ISLNK(st.st_mode):
        # After chown, which clears setuid and setgid bits.
        os.chmod(path, stat.S_IMODE(st.st_mode))
    with contextlib.suppress(OSError):
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
