"""Directory trees as streams of tar members, for ``cp``, ``export`` and ``commit``.

``walk`` reads a tree below a directory descriptor the way ``apply_entries``
writes one: one component at a time, never following a symlink (a symlink
is a member of its own), with a map of mounts grafted in by real path.
``write_tar`` turns such a stream into a pax tar. Regular files are copied
by extents (SEEK_DATA/SEEK_HOLE, then copy_file_range, or sendfile across
file systems that refuse it), so holes stay holes and the bytes never pass
through Python.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import TYPE_CHECKING, BinaryIO

from ctl.archive.apply import Member

if TYPE_CHECKING:
    import tarfile
    from collections.abc import Iterator, Mapping

    from ctl.archive.apply import FileData

    Entry = tuple[Member, FileData | None, int]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_CHUNK = 1 << 30
# copy_file_range refuses these between some pairs of file systems; sendfile does not.
_NO_COPY_RANGE = frozenset({errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP})


class FdData:
    """FdData is a regular file's contents, read from an open descriptor by extents."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def write_to(self, fd: int, n: int) -> None:
        copy_extents(self.fd, fd, n)


def copy_extents(src: int, dst: int, size: int) -> None:
    """copy_extents copies the first ``size`` bytes of ``src`` to the empty file ``dst``.

    Only data extents are copied and ``dst`` is then cut to ``size``, so the
    holes of ``src`` are holes in ``dst``; a file that shrank meanwhile ends
    in zeros.
    """
    pos = 0
    use_range = True
    while pos < size:
        try:
            data = os.lseek(src, pos, os.SEEK_DATA)
        except OSError as err:
            if err.errno != errno.ENXIO:
                raise
            break  # only a hole is left
        if data >= size:
            break
        end = min(os.lseek(src, data, os.SEEK_HOLE), size)
        offset = data
        while offset < end:
            count = min(end - offset, _CHUNK)
            if use_range:
                try:
                    n = os.copy_file_range(src, dst, count, offset, offset)
                except OSError as err:
                    if err.errno not in _NO_COPY_RANGE:
                        raise
                    use_range = False
                    continue
            else:
                os.lseek(dst, offset, os.SEEK_SET)
                n = os.sendfile(dst, src, offset, count)
            if n == 0:
                break  # the file shrank: the rest is zeros
            offset += n
        if offset < end:
            break
        pos = end
    os.ftruncate(dst, size)


def xattrs_of(dir_fd: int, name: str | None) -> list[tuple[str, bytes]]:
    """xattrs_of reads the xattrs of ``name`` in ``dir_fd`` (of ``dir_fd`` itself for None)."""
    path: int | str = dir_fd if name is None else f"/proc/self/fd/{dir_fd}/{name}"
    # A descriptor is never followed; a path is, unless told (it names no symlink here).
    follow = name is None
    try:
        keys = os.listxattr(path, follow_symlinks=follow)
    except OSError:
        return []
    found = []
    for key in keys:
        if key.startswith("trusted.overlay."):
            continue  # overlayfs's own bookkeeping, not the file's
        try:
            found.append((key, os.getxattr(path, key, follow_symlinks=follow)))
        except OSError:
            continue
    return found


def walk(
    dir_fd: int,
    name: str,
    *,
    real: str = "",
    mounts: Mapping[str, int] | None = None,
    files: Mapping[str, tuple[int, str]] | None = None,
    links: dict[tuple[int, int], str] | None = None,
) -> Iterator[Entry]:
    """walk yields the directory ``dir_fd`` as member ``name`` and then its tree, sorted.

    ``real`` is the directory's path below the root that ``mounts`` (real
    path -> descriptor of the directory mounted there) and ``files`` (real
    path -> a file mounted there, as its directory's descriptor and its
    name) are keyed by. A file met again under another name is a hardlink
    member to its first name. A file's data is readable only until the next
    entry is asked for.
    """
    mounts = mounts or {}
    files = files or {}
    links = {} if links is None else links
    yield Member.of_stat(name, os.fstat(dir_fd), xattrs=xattrs_of(dir_fd, None)), None, 0
    with os.scandir(dir_fd) as entries:
        children = sorted(e.name for e in entries)
    for child in children:
        child_real = f"{real}/{child}" if real else child
        child_name = f"{name}/{child}" if name else child
        mounted = mounts.get(child_real)
        mounted_file = files.get(child_real)
        if mounted_file is not None:
            host_fd, host_base = mounted_file
            try:
                st = os.stat(host_base, dir_fd=host_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # the mounted file is gone from the host
            yield from entry(host_fd, host_base, child_name, st)
            continue
        if mounted is not None:
            fd = os.dup(mounted)
        else:
            try:
                st = os.stat(child, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed while we walk
            if not stat.S_ISDIR(st.st_mode):
                first = _first_name(links, st, child_name)
                if first is None:
                    yield from entry(dir_fd, child, child_name, st)
                else:
                    mode = st.st_mode & 0o7777
                    yield Member.new(b"1", child_name, mode, st.st_mtime_ns, link=first), None, 0
                continue
            fd = os.open(child, _DIR_FLAGS, dir_fd=dir_fd)
        try:
            yield from walk(
                fd, child_name, real=child_real, mounts=mounts, files=files, links=links
            )
        finally:
            os.close(fd)


def _first_name(links: dict[tuple[int, int], str], st: os.stat_result, name: str) -> str | None:
    """_first_name is the name a file with several links was first walked under, if any."""
    if st.st_nlink < 2 or not stat.S_ISREG(st.st_mode):
        return None
    key = (st.st_dev, st.st_ino)
    first = links.get(key)
    if first is None:
        links[key] = name
    return first


def entry(dir_fd: int, base: str, name: str, st: os.stat_result) -> Iterator[Entry]:
    """entry yields the non-directory ``base`` of ``dir_fd`` as member ``name``; not a socket."""
    mode = st.st_mode
    if stat.S_ISSOCK(mode):
        return
    if stat.S_ISLNK(mode):
        link = os.readlink(base, dir_fd=dir_fd)
        yield Member.of_stat(name, st, link=link), None, 0
        return
    if not stat.S_ISREG(mode):
        yield Member.of_stat(name, st, xattrs=xattrs_of(dir_fd, base)), None, 0
        return
    fd = os.open(base, _FILE_FLAGS, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        member = Member.of_stat(name, st, xattrs=xattrs_of(dir_fd, base))
        yield member, FdData(fd), st.st_size
    finally:
        os.close(fd)


def write_tar(entries: Iterator[Entry], out: BinaryIO) -> int:
    """write_tar writes the entries as a pax tar to ``out``; returns the bytes written."""
    import tarfile

    counted = _Counting(out)
    with tarfile.open(
        fileobj=counted,  # type: ignore[call-overload]  # a writer is all "w|" needs
        mode="w|",
        format=tarfile.PAX_FORMAT,
    ) as tar:
        for member, data, size in entries:
            info = _tar_info(member, size)
            if data is None:
                tar.addfile(info)
                continue
            assert isinstance(data, FdData)
            with os.fdopen(os.dup(data.fd), "rb", closefd=True) as f:
                f.seek(0)
                tar.addfile(info, f)
    return counted.written


_TAR_TYPE = {b"0": b"0", b"2": b"2", b"5": b"5", b"3": b"3", b"4": b"4", b"6": b"6", b"1": b"1"}


def _tar_info(member: Member, size: int) -> tarfile.TarInfo:
    import tarfile

    name = member.name or "."
    info = tarfile.TarInfo(name + "/" if member.kind == b"5" and name != "." else name)
    info.type = _TAR_TYPE[member.kind]
    info.mode = member.mode
    info.uid, info.gid = member.uid, member.gid
    info.mtime = member.mtime // 1_000_000_000
    info.linkname = member.link
    info.size = size if member.kind == b"0" else 0
    info.devmajor, info.devminor = member.dev
    if member.xattrs:
        info.pax_headers = {
            f"SCHILY.xattr.{key}": value.decode("utf-8", "surrogateescape")
            for key, value in member.xattrs
        }
    return info


class _Counting:
    """_Counting is a write-only file that counts what passes to ``out``."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.written = 0

    def write(self, data: bytes) -> int:
        self._out.write(data)
        self.written += len(data)
        return len(data)

    def flush(self) -> None:
        self._out.flush()
