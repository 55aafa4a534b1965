"""apply_layer: extract one image layer onto a directory, and never outside it.

The layer is read as a stream: a thread reads and decompresses it and hashes
the uncompressed tar (the layer's diff_id) while the calling thread parses
the tar and writes the entries, so both cores work as they do for
``tar -xzf``. The tar reader is ctl's own, not ``tarfile``: per entry it costs
a third of what ``tarfile`` does, and that is most of the time of a layer of
small files. It reads ustar, GNU (long names, base-256 numbers) and pax
(long names, ids, fractional times, ``SCHILY.xattr.*``) headers.

Containment. Every write goes through a directory file descriptor that was
reached from ``target`` one component at a time with ``O_NOFOLLOW``:

- Member names are cleaned lexically. A leading ``/`` is dropped, so absolute
  names are contained below ``target``; a ``..`` that climbs above the root is
  refused with InvalidArgument, as are whiteouts naming ``..``.
- The parent directories of a member are resolved inside the root, as
  ``openat2(RESOLVE_IN_ROOT)`` and containerd's securejoin do: a symlink met on
  the way is followed with its target re-rooted at ``target`` (an absolute
  target starts again at the root, ``..`` stops at the root). So ``a -> /etc``
  then ``a/passwd`` writes ``target/etc/passwd``. The same resolution serves
  the source of a hardlink, whose last component is linked as it is (a
  hardlink to a symlink is another symlink, never the file it points to).
- The last component is never followed: files are created with ``O_EXCL``,
  metadata is set through the new file's descriptor or with
  ``follow_symlinks=False``, and anything in the way is removed first (a
  directory in the way of a directory is kept and gets the new metadata).
- xattrs named ``trusted.overlay.*`` in the tar are dropped: they would steer
  overlayfs (redirects, opaque dirs, metacopy) instead of describing a file.

Whiteouts (OCI image spec, layer.md). A whiteout applies to lower layers
only; one naming a path that this layer unpacks too replaces that path's
lower contents and keeps this layer's own, like an opaque directory.
``overlay``: ``target`` is the overlayfs upper dir of the layer, with the
lower layers not visible in it; ``.wh.NAME`` becomes a 0/0 character device
NAME, ``.wh..wh..opq`` the xattr ``trusted.overlay.opaque=y`` on its directory.
``naive``: ``target`` already holds the lower layers (a copy, or a mounted
snapshot); ``.wh.NAME`` removes NAME, ``.wh..wh..opq`` removes every child of
its directory that this layer did not unpack.

Ownership is kept (numeric ids) when running as root, modes with their
setuid, setgid and sticky bits, mtimes (directories' at the end, once their
contents are written) and xattrs. apply_layer is not atomic: when it raises,
``target`` holds part of the layer and must be thrown away.

The same writer serves ``ctl cp`` (``apply_archive`` for a tar given on
stdin, ``apply_entries`` for a tree walked on the other side, see
ctl.archive.tree): there ``target`` is a container's root filesystem, member
names are placed below a directory of it, ``.wh.`` names are plain files, and
the container's bind mounts are grafted in: a directory whose real path is a
mount's destination is the mount's source, reached the same contained way.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import queue
import shutil
import stat
import struct
import threading
import zlib
from typing import TYPE_CHECKING, BinaryIO, Literal, NamedTuple, Protocol, overload

from ctl.archive import compression
from ctl.errdefs import (
    DataCorrupted,
    FailedPrecondition,
    InvalidArgument,
    Unavailable,
    Unimplemented,
    WriteFailed,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping
    from pathlib import Path

    from ctl.snapshots import WhiteoutStyle

WHITEOUT_PREFIX = ".wh."
WHITEOUT_META_PREFIX = ".wh..wh."
WHITEOUT_OPAQUE = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
_XATTR_DROPPED_PREFIX = "trusted.overlay."

_BLOCK = 512
_ZEROS = bytes(_BLOCK)
_HEADER = struct.Struct("100s8s8s8s12s12s8sc100s8s32s32s8s8s155s12x")
_USTAR = b"ustar\x00"
_NS = 1_000_000_000
# More hops than this while resolving one path is a loop (the kernel's limit is 40).
_MAX_SYMLINKS = 40
# Directory descriptors kept open between members; past this the cache starts over.
_MAX_OPEN_DIRS = 256
_QUEUE_DEPTH = 8
# pax and GNU long-name headers are read into memory: a layer gets this much for one.
_MAX_META = 1 << 20

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC

_REGULAR = frozenset({b"0", b"\0", b"7"})
# Made by mknod: character and block devices, fifos.
_NODES = {b"3": stat.S_IFCHR, b"4": stat.S_IFBLK, b"6": stat.S_IFIFO}
_APPLIED = _REGULAR | _NODES.keys() | {b"1", b"2", b"5", b"D"}
_KIND_OF_FORMAT = {
    stat.S_IFREG: b"0",
    stat.S_IFLNK: b"2",
    stat.S_IFDIR: b"5",
    stat.S_IFCHR: b"3",
    stat.S_IFBLK: b"4",
    stat.S_IFIFO: b"6",
}
# A write that fails for want of room, not because the member is refused.
_WRITE_FAILURES = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EIO})
_KNOWN_LAYER_SUFFIXES = (".tar", ".tar+gzip", ".tar+zstd", ".tar.gzip")


class FileData(Protocol):
    """FileData is where the contents of a regular file member come from."""

    def write_to(self, fd: int, n: int) -> None:
        """write_to copies the next ``n`` bytes of the file to the file ``fd``."""
        ...


# A NamedTuple: dataclasses (with inspect and ast) cost ~5-8 ms of every pull.
class ApplyResult(NamedTuple):
    """ApplyResult is what applying a layer found: its diff_id and uncompressed size."""

    diff_id: str
    size: int


def apply_layer(
    stream: BinaryIO,
    target: Path,
    *,
    whiteouts: WhiteoutStyle,
    media_type: str | None = None,
    expected_diff_id: str | None = None,
) -> ApplyResult:
    """apply_layer extracts the layer read from ``stream`` onto the directory ``target``.

    ``stream`` is the layer blob as stored (gzip, zstd or plain tar, told
    apart by its first bytes); it is read to its end, because the diff_id
    covers every byte of the tar. ``whiteouts`` says what ``target`` is (see
    the module docstring). ``media_type``, when given, must name a layer.

    Raises InvalidArgument for a malformed tar, an unknown member type or a
    member that would escape ``target``; DataCorrupted when the stream is
    damaged or its diff_id is not ``expected_diff_id``; Unimplemented for
    other media types and for sparse files; Unavailable when reading
    ``stream`` fails; WriteFailed, naming the member, when the file system
    has no room for it (full, over quota, read-only, failing);
    FailedPrecondition when it refuses a write for another reason.
    """
    if media_type is not None and not media_type.endswith(_KNOWN_LAYER_SUFFIXES):
        raise Unimplemented(f"layer media type {media_type!r}")
    if whiteouts not in ("overlay", "naive"):
        raise InvalidArgument(f"whiteout style {whiteouts!r}: want overlay or naive")
    root_fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        source = _read_tar(stream, _Applier(root_fd, whiteouts))
    finally:
        os.close(root_fd)
    result = ApplyResult(diff_id="sha256:" + source.digest.hexdigest(), size=source.size)
    if expected_diff_id is not None and result.diff_id != expected_diff_id:
        raise DataCorrupted(
            f"layer diff_id is {result.diff_id}, but the image config says {expected_diff_id}"
        )
    return result


def apply_archive(
    stream: BinaryIO,
    root_fd: int,
    *,
    under: str = "",
    mounts: Mapping[str, int] | None = None,
    owner: tuple[int, int] | None = None,
) -> None:
    """apply_archive extracts a tar (plain or compressed) below directory ``under`` of a root.

    ``root_fd`` is the root every path resolves in (see "Containment");
    ``under`` is a clean path below it, resolved there too. ``.wh.`` names
    are ordinary files. ``mounts`` maps real paths below the root (no leading
    ``/``) to descriptors of directories mounted there. ``owner`` replaces
    every member's uid and gid. Errors are apply_layer's.
    """
    _read_tar(stream, _Applier(root_fd, None, under=under, mounts=mounts, owner=owner))


def apply_entries(
    entries: Iterable[tuple[Member, FileData | None, int]],
    root_fd: int,
    *,
    under: str = "",
    mounts: Mapping[str, int] | None = None,
    owner: tuple[int, int] | None = None,
) -> None:
    """apply_entries writes members that come with their data, as apply_archive writes a tar.

    Each entry is a member, where a regular file's contents come from and
    their size. The parameters and errors are apply_archive's.
    """
    applier = _Applier(root_fd, None, under=under, mounts=mounts, owner=owner)
    try:
        for member, data, size in entries:
            applier.member(member, data, size)
        applier.finish()
    finally:
        applier.close()


def resolve_dir(
    root_fd: int, path: str, mounts: Mapping[str, int] | None = None
) -> tuple[int, str] | None:
    """resolve_dir opens directory ``path`` inside the root, as the applier resolves parents.

    It returns a new descriptor (the caller closes it) and the real path
    below the root, or None when a component is missing.
    InvalidArgument when a component is no directory or symlinks loop.
    """
    applier = _Applier(root_fd, None, mounts=mounts)
    try:
        found = applier.walk(_clean(path, repr(path)), create=False, member=path)
        return None if found is None else (os.dup(found[0]), found[1])
    finally:
        applier.close()


def _read_tar(stream: BinaryIO, applier: _Applier) -> _Source:
    source = _Source(stream)
    try:
        try:
            applier.apply(source)
        finally:
            applier.close()
        source.drain()
    finally:
        source.close()
    return source


class _Source:
    """_Source is the uncompressed tar: decompressed and hashed by a reader thread."""

    def __init__(self, stream: BinaryIO) -> None:
        self.digest = hashlib.sha256()
        self.size = 0
        self._queue: queue.Queue[bytes | BaseException | None] = queue.Queue(_QUEUE_DEPTH)
        self._stop = threading.Event()
        self._buf = b""
        self._view = memoryview(self._buf)
        self._pos = 0
        self._eof = False
        self._thread = threading.Thread(
            target=self._produce, args=(stream,), name="ctl-layer-reader", daemon=True
        )
        self._thread.start()

    def _produce(self, stream: BinaryIO) -> None:
        try:
            for chunk in compression.decompress(stream):
                self.digest.update(chunk)
                self.size += len(chunk)
                if not self._put(chunk):
                    return
            self._put(None)
        except BaseException as err:
            self._put(err)

    def _put(self, item: bytes | BaseException | None) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def close(self) -> None:
        """close stops the reader thread, also when the tar was not read to its end."""
        self._stop.set()
        self._thread.join()

    def _next(self) -> bool:
        if self._eof:
            return False
        item = self._queue.get()
        if item is None:
            self._eof = True
            return False
        if isinstance(item, BaseException):
            self._eof = True
            if isinstance(item, OSError):
                raise Unavailable(f"reading the layer: {item.strerror or item}") from item
            raise item
        self._buf = item
        self._view = memoryview(item)
        self._pos = 0
        return True

    def read(self, n: int) -> bytes:
        """read returns exactly ``n`` bytes, or b"" at the end of the stream."""
        end = self._pos + n
        if end <= len(self._buf):
            data = self._buf[self._pos : end]
            self._pos = end
            return data
        parts = [self._buf[self._pos :]]
        need = n - len(parts[0])
        self._pos = len(self._buf)
        while need > 0:
            if not self._next():
                if need == n:
                    return b""
                raise DataCorrupted("layer tar ends in the middle of an entry")
            part = self._buf[:need]
            self._pos = len(part)
            need -= len(part)
            parts.append(part)
        return b"".join(parts)

    def write_to(self, fd: int, n: int) -> None:
        """write_to copies the next ``n`` bytes to the file ``fd``."""
        while n:
            avail = len(self._buf) - self._pos
            if not avail:
                if not self._next():
                    raise DataCorrupted("layer tar ends in the middle of a file")
                continue
            end = self._pos + min(avail, n)
            written = os.write(fd, self._view[self._pos : end])
            self._pos += written
            n -= written

    def skip(self, n: int) -> None:
        while n:
            avail = len(self._buf) - self._pos
            if not avail:
                if not self._next():
                    raise DataCorrupted("layer tar ends in the middle of an entry")
                continue
            step = min(avail, n)
            self._pos += step
            n -= step

    def drain(self) -> None:
        """drain reads what follows the end of the tar, so that the digest covers all of it."""
        self._pos = len(self._buf)
        while self._next():
            pass


def _numbers(fields: tuple[bytes, ...]) -> list[int]:
    """_numbers decodes mode, uid, gid, size, mtime and checksum of a header."""
    try:
        return [int(field.split(b"\0", 1)[0], 8) for field in fields[1:7]]
    except ValueError:
        return [_num(field) for field in fields[1:7]]


def _num(field: bytes) -> int:
    """_num decodes a numeric header field: octal text, or GNU base-256."""
    if field[0] & 0x80:
        n = int.from_bytes(field[1:], "big")
        return n - 256 ** (len(field) - 1) if field[0] == 0xFF else n
    text = field.split(b"\0", 1)[0].strip()
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise InvalidArgument(f"layer tar has a malformed number {text!r}") from None


def _check_sum(header: bytes, stored: int) -> None:
    # Adler-32's low half is 1 + the byte sum mod 65521: a C-speed check for the
    # common case; only a mismatch pays for the exact (signed or unsigned) sums.
    if zlib.adler32(header[:148] + b"        " + header[156:]) & 0xFFFF == (1 + stored) % 65521:
        return
    rest = header[:148] + header[156:]
    unsigned = sum(rest) + 256
    signed = unsigned - 256 * sum(1 for b in rest if b > 127)
    if stored not in (unsigned, signed):
        raise InvalidArgument("layer is not a tar archive (bad header checksum)")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _parse_pax(data: bytes) -> dict[str, bytes]:
    records: dict[str, bytes] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        try:
            length = int(data[pos:space])
        except ValueError:
            raise InvalidArgument("layer tar has a malformed pax header") from None
        record = data[space + 1 : pos + length]
        if space < 0 or length <= 0 or not record.endswith(b"\n"):
            raise InvalidArgument("layer tar has a malformed pax header")
        key, _, value = record[:-1].partition(b"=")
        records[_text(key)] = value
        pos += length
    return records


def _pax_time_ns(value: bytes) -> int:
    text = value.decode("ascii", "replace")
    whole, _, frac = text.partition(".")
    try:
        ns = int(whole) * _NS
        if frac:
            part = int(frac[:9].ljust(9, "0"))
            ns += -part if text.startswith("-") else part
    except ValueError:
        raise InvalidArgument(f"layer tar has a malformed pax time {text!r}") from None
    return ns


def _clean(name: str, what: str) -> str:
    """_clean makes a member name relative to the root; "" is the root itself."""
    parts = name.split("/")
    if "" not in parts and "." not in parts and ".." not in parts:
        return name
    out: list[str] = []
    for part in parts:
        if part in ("", "."):
            continue
        if part == "..":
            if not out:
                raise InvalidArgument(f"{what} escapes the root: refused")
            out.pop()
        else:
            out.append(part)
    return "/".join(out)


class Member:
    """Member is one tar entry, after its pax and GNU long-name headers."""

    __slots__ = ("dev", "gid", "kind", "link", "mode", "mtime", "name", "uid", "xattrs")

    def __init__(
        self,
        kind: bytes,
        name: str,
        link: str,
        numbers: list[int],
        fields: tuple[bytes, ...],
        pax: dict[str, bytes],
    ) -> None:
        self.kind = kind
        self.name = name
        self.link = link
        self.mode = numbers[0] & 0o7777
        self.uid = numbers[1]
        self.gid = numbers[2]
        self.mtime = numbers[4] * _NS
        self.dev = (_num(fields[12]), _num(fields[13])) if kind in _NODES else (0, 0)
        self.xattrs: list[tuple[str, bytes]] = []
        if pax:
            self._apply_pax(pax)

    @classmethod
    def of_stat(
        cls,
        name: str,
        st: os.stat_result,
        link: str = "",
        xattrs: list[tuple[str, bytes]] | None = None,
    ) -> Member:
        """of_stat describes a file by its ``lstat``; "0" for a regular file, and so on."""
        kind = _KIND_OF_FORMAT.get(stat.S_IFMT(st.st_mode), b"0")
        m = cls.new(kind, name, st.st_mode & 0o7777, st.st_mtime_ns, link=link)
        m.uid, m.gid = st.st_uid, st.st_gid
        m.dev = (os.major(st.st_rdev), os.minor(st.st_rdev)) if kind in _NODES else (0, 0)
        m.xattrs = xattrs or []
        return m

    @classmethod
    def new(cls, kind: bytes, name: str, mode: int, mtime_ns: int, link: str = "") -> Member:
        """new is a member owned by 0:0, with no xattrs (a whiteout, say)."""
        m = cls.__new__(cls)
        m.kind, m.name, m.link, m.mode, m.mtime = kind, name, link, mode, mtime_ns
        m.uid = m.gid = 0
        m.dev = (0, 0)
        m.xattrs = []
        return m

    def _apply_pax(self, pax: dict[str, bytes]) -> None:
        for key, value in pax.items():
            if key.startswith("SCHILY.xattr."):
                name = key[len("SCHILY.xattr.") :]
                if not name.startswith(_XATTR_DROPPED_PREFIX):
                    self.xattrs.append((name, value))
            elif key in ("uid", "gid"):
                try:
                    setattr(self, key, int(value))
                except ValueError:
                    raise InvalidArgument(f"layer tar has a malformed pax {key}") from None
            elif key == "mtime":
                self.mtime = _pax_time_ns(value)
            elif key.startswith("GNU.sparse."):
                raise Unimplemented(f"layer member {self.name!r} is a sparse file")


class _Applier:
    """_Applier writes members below one root directory descriptor."""

    def __init__(
        self,
        root_fd: int,
        whiteouts: WhiteoutStyle | None,
        *,
        under: str = "",
        mounts: Mapping[str, int] | None = None,
        owner: tuple[int, int] | None = None,
    ) -> None:
        self._root = root_fd
        self._overlay = whiteouts == "overlay"
        self._whiteouts = whiteouts is not None
        self._under = under.strip("/")
        self._mounts = mounts or {}
        self._owner = owner
        self._chown = os.geteuid() == 0
        umask = os.umask(0o022)
        os.umask(umask)
        # Modes the creating call cannot give by itself: chown clears setuid/setgid.
        self._chmod_bits = umask | 0o7000
        # Resolved directories: clean path -> (descriptor, real path below the root).
        self._dirs: dict[str, tuple[int, str]] = {}
        self._fds: list[int] = []
        self._stale = False
        # Real paths this layer unpacked, and their ancestors.
        self._unpacked: set[str] = set()
        # Real paths this layer whited out (overlay): a directory put there later is opaque.
        self._whited_out: set[str] = set()
        self._dir_times: dict[str, tuple[int, int]] = {}

    # --- the tar stream ---

    def apply(self, source: _Source) -> None:
        self._read(source)
        self.finish()

    def finish(self) -> None:
        """finish sets the times of the directories written, now that their contents are."""
        self._set_dir_times()

    def close(self) -> None:
        self._forget_dirs()

    def _read(self, source: _Source) -> None:
        pax_global: dict[str, bytes] = {}
        pax: dict[str, bytes] = {}
        long_name = long_link = b""
        while True:
            header = source.read(_BLOCK)
            if not header or header == _ZEROS:
                return
            fields = _HEADER.unpack(header)
            numbers = _numbers(fields)
            _check_sum(header, numbers[5])
            kind = fields[7]
            size = numbers[3]
            if kind in (b"x", b"g", b"L", b"K"):
                if size > _MAX_META:
                    raise InvalidArgument(f"layer tar has a {size}-byte {kind.decode()} header")
                data = source.read(size)
                source.skip(-size % _BLOCK)
                if kind == b"x":
                    pax.update(_parse_pax(data))
                elif kind == b"g":
                    pax_global.update(_parse_pax(data))
                elif kind == b"L":
                    long_name = data.split(b"\0", 1)[0]
                else:
                    long_link = data.split(b"\0", 1)[0]
                continue
            if pax_global:
                pax = {**pax_global, **pax}
            if "path" in pax:
                raw_name = pax["path"]
            elif long_name:
                raw_name = long_name
            elif fields[9].startswith(_USTAR) and fields[14][0]:
                raw_name = fields[14].split(b"\0", 1)[0] + b"/" + fields[0].split(b"\0", 1)[0]
            else:
                raw_name = fields[0].split(b"\0", 1)[0]
            raw_link = pax.get("linkpath") or long_link or fields[8].split(b"\0", 1)[0]
            if "size" in pax:
                try:
                    size = int(pax["size"])
                except ValueError:
                    raise InvalidArgument("layer tar has a malformed pax size") from None
            name = _text(raw_name)
            if kind == b"\0" and name.endswith("/"):
                kind = b"5"
            if kind not in _APPLIED:
                if kind == b"V":  # a volume label: no file
                    source.skip(size + (-size % _BLOCK))
                    pax, long_name, long_link = {}, b"", b""
                    continue
                if kind == b"S":
                    raise Unimplemented(f"layer member {name!r} is a sparse file")
                raise InvalidArgument(f"layer member {name!r} has unknown type {kind!r}")
            member = Member(kind, name, _text(raw_link), numbers, fields, pax)
            pax = {}
            long_name = long_link = b""
            # Other types have no data, whatever their size field says (as tarfile, Go).
            if kind not in _REGULAR and kind != b"D":
                size = 0
            written = self.member(member, source, size)
            source.skip((0 if written else size) + (-size % _BLOCK))

    def member(self, m: Member, source: FileData | None, size: int) -> bool:
        """member writes one member; True when it consumed the member's data."""
        if self._stale or len(self._fds) > _MAX_OPEN_DIRS:
            self._forget_dirs()
        rel = _clean(m.name, f"layer member {m.name!r}")
        if self._under:
            rel = f"{self._under}/{rel}" if rel else self._under
        if self._owner is not None:
            m.uid, m.gid = self._owner
        try:
            if not rel:
                self._root_entry(m)
                return False
            parent, _, base = rel.rpartition("/")
            if self._whiteouts and base.startswith(WHITEOUT_PREFIX):
                self._whiteout(m, parent, base)
                return False
            pfd, preal = self._dirs.get(parent) or self.walk(parent, create=True, member=m.name)
            real = f"{preal}/{base}" if preal else base
            kind = m.kind
            if real in self._mounts and kind not in (b"5", b"D"):
                raise FailedPrecondition(f"{m.name!r} would replace the mount point /{real}")
            written = False
            if kind in _REGULAR:
                assert source is not None
                self._file(m, pfd, base, source, size)
                written = True
            elif kind in (b"5", b"D"):
                self._dir(m, pfd, base, rel, real)
            elif kind == b"2":
                self._symlink(m, pfd, base)
            elif kind == b"1":
                self._hardlink(m, pfd, base, rel)
            else:
                self._device(m, pfd, base)
            self._mark_unpacked(real)
            return written
        except OSError as err:
            if err.errno in _WRITE_FAILURES:
                raise WriteFailed(f"member {m.name!r}", err) from err
            raise FailedPrecondition(
                f"applying layer member {m.name!r}: {err.strerror or err}"
            ) from err

    # --- entries ---

    def _file(self, m: Member, pfd: int, base: str, source: FileData, size: int) -> None:
        try:
            fd = os.open(base, _NEW_FILE_FLAGS, m.mode, dir_fd=pfd)
        except FileExistsError:
            self._remove(pfd, base)
            fd = os.open(base, _NEW_FILE_FLAGS, m.mode, dir_fd=pfd)
        try:
            if size:
                source.write_to(fd, size)
            if self._chown:
                os.fchown(fd, m.uid, m.gid)
            if m.mode & self._chmod_bits:
                os.fchmod(fd, m.mode)
            for key, value in m.xattrs:
                _set_xattr(fd, key, value)
            os.utime(fd, ns=(m.mtime, m.mtime))
        finally:
            os.close(fd)

    def _dir(self, m: Member, pfd: int, base: str, rel: str, real: str) -> None:
        try:
            os.mkdir(base, 0o700, dir_fd=pfd)
        except FileExistsError:
            if not stat.S_ISDIR(os.stat(base, dir_fd=pfd, follow_symlinks=False).st_mode):
                self._remove(pfd, base)
                os.mkdir(base, 0o700, dir_fd=pfd)
        hit = self._dirs.get(real)
        if hit is not None and hit[1] == real:
            fd = hit[0]
        elif real in self._mounts:
            fd = self._mounts[real]
            self._dirs[real] = (fd, real)
        else:
            fd = self._keep_dir(os.open(base, _DIR_FLAGS, dir_fd=pfd), rel, real)
        self._dir_metadata(m, fd, real)
        if real in self._whited_out:
            os.setxattr(fd, OVERLAY_OPAQUE_XATTR, b"y")

    def _root_entry(self, m: Member) -> None:
        if m.kind not in (b"5", b"D"):
            raise InvalidArgument(f"layer member {m.name!r} would replace the root: refused")
        self._dir_metadata(m, self._root, "")

    def _dir_metadata(self, m: Member, fd: int, real: str) -> None:
        if self._chown:
            os.fchown(fd, m.uid, m.gid)
        os.fchmod(fd, m.mode)
        for key, value in m.xattrs:
            _set_xattr(fd, key, value)
        self._dir_times[real] = (m.mtime, m.mtime)

    def _symlink(self, m: Member, pfd: int, base: str) -> None:
        try:
            os.symlink(m.link, base, dir_fd=pfd)
        except FileExistsError:
            self._remove(pfd, base)
            os.symlink(m.link, base, dir_fd=pfd)
        self._path_metadata(m, pfd, base, chmod=False)

    def _device(self, m: Member, pfd: int, base: str) -> None:
        mode = _NODES[m.kind] | m.mode
        device = os.makedev(*m.dev)
        try:
            os.mknod(base, mode, device, dir_fd=pfd)
        except FileExistsError:
            self._remove(pfd, base)
            os.mknod(base, mode, device, dir_fd=pfd)
        self._path_metadata(m, pfd, base, chmod=True)

    def _path_metadata(self, m: Member, pfd: int, base: str, *, chmod: bool) -> None:
        """_path_metadata sets the metadata of a symlink or special file, never following it."""
        if self._chown:
            os.chown(base, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
        if chmod:
            # ``base`` was just made by mknod, so it is no symlink: following it is safe.
            os.chmod(base, m.mode, dir_fd=pfd)
        for key, value in m.xattrs:
            # No descriptor of a symlink or device takes xattrs; name it via the parent's.
            _set_xattr(f"/proc/self/fd/{pfd}/{base}", key, value)
        os.utime(base, ns=(m.mtime, m.mtime), dir_fd=pfd, follow_symlinks=False)

    def _hardlink(self, m: Member, pfd: int, base: str, rel: str) -> None:
        source = _clean(m.link, f"layer member {m.name!r} (a link to {m.link!r})")
        if not source:
            raise InvalidArgument(f"layer member {m.name!r} links to the root: refused")
        if self._under:
            source = f"{self._under}/{source}"  # link targets name members of the same tar
        if source == rel:
            return
        sparent, _, sbase = source.rpartition("/")
        resolved = self._dirs.get(sparent) or self.walk(sparent, create=False, member=m.name)
        if resolved is None:
            raise InvalidArgument(f"layer member {m.name!r} links to missing {m.link!r}")
        sfd = resolved[0]
        try:
            os.link(sbase, base, src_dir_fd=sfd, dst_dir_fd=pfd, follow_symlinks=False)
        except FileExistsError:
            self._remove(pfd, base)
            os.link(sbase, base, src_dir_fd=sfd, dst_dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            raise InvalidArgument(f"layer member {m.name!r} links to missing {m.link!r}") from None

    # --- whiteouts ---

    def _whiteout(self, m: Member, parent: str, base: str) -> None:
        if base == WHITEOUT_OPAQUE:
            self._opaque(m, parent)
            return
        if base.startswith(WHITEOUT_META_PREFIX):
            return  # aufs bookkeeping (.wh..wh.plnk and the like): nothing to apply
        name = base[len(WHITEOUT_PREFIX) :]
        if name in ("", ".", ".."):
            raise InvalidArgument(f"layer whiteout {m.name!r} names {name!r}: refused")
        resolved = self._dirs.get(parent) or self.walk(parent, create=self._overlay, member=m.name)
        if resolved is None:
            return
        pfd, preal = resolved
        real = f"{preal}/{name}" if preal else name
        if real in self._unpacked:
            # This layer made the path: a whiteout only hides lower layers' files.
            self._hide_lower_children(pfd, name, real)
            return
        if self._overlay:
            try:
                os.mknod(name, stat.S_IFCHR, os.makedev(0, 0), dir_fd=pfd)
            except FileExistsError:
                self._remove(pfd, name)
                os.mknod(name, stat.S_IFCHR, os.makedev(0, 0), dir_fd=pfd)
            if self._chown:
                os.chown(name, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)
            self._whited_out.add(real)
        else:
            with contextlib.suppress(FileNotFoundError):
                self._remove(pfd, name)

    def _opaque(self, m: Member, parent: str) -> None:
        if self._overlay:
            fd, _ = self._dirs.get(parent) or self.walk(parent, create=True, member=m.name)
            os.setxattr(fd, OVERLAY_OPAQUE_XATTR, b"y")
            return
        resolved = self._dirs.get(parent) or self.walk(parent, create=False, member=m.name)
        if resolved is not None:
            self._remove_lower(*resolved)

    def _hide_lower_children(self, pfd: int, name: str, real: str) -> None:
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=pfd)
        except OSError:
            return  # not a directory: this layer's file hides the lower one by itself
        try:
            if self._overlay:
                os.setxattr(fd, OVERLAY_OPAQUE_XATTR, b"y")
            else:
                self._remove_lower(fd, real)
        finally:
            os.close(fd)

    def _remove_lower(self, fd: int, real: str) -> None:
        """_remove_lower removes what lower layers left below directory ``fd``."""
        with os.scandir(fd) as entries:
            children = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
        for name, is_dir in children:
            child = f"{real}/{name}" if real else name
            if child not in self._unpacked:
                self._remove(fd, name)
            elif is_dir:
                cfd = os.open(name, _DIR_FLAGS, dir_fd=fd)
                try:
                    self._remove_lower(cfd, child)
                finally:
                    os.close(cfd)

    # --- paths ---

    def _mark_unpacked(self, real: str) -> None:
        unpacked = self._unpacked
        while real and real not in unpacked:
            unpacked.add(real)
            real = real.rpartition("/")[0]

    def _remove(self, pfd: int, name: str) -> None:
        """_remove deletes ``name`` in ``pfd`` without following it; a directory with its tree."""
        st = os.stat(name, dir_fd=pfd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            shutil.rmtree(name, dir_fd=pfd)
            self._stale = True
        else:
            os.unlink(name, dir_fd=pfd)
            if stat.S_ISLNK(st.st_mode):
                self._stale = True

    def _keep_dir(self, fd: int, rel: str, real: str) -> int:
        self._fds.append(fd)
        self._dirs[real] = (fd, real)
        if rel != real:
            self._dirs[rel] = (fd, real)
        return fd

    def _forget_dirs(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()
        self._dirs.clear()
        self._stale = False

    @overload
    def walk(self, rel: str, *, create: Literal[True], member: str) -> tuple[int, str]: ...
    @overload
    def walk(self, rel: str, *, create: bool, member: str) -> tuple[int, str] | None: ...
    def walk(self, rel: str, *, create: bool, member: str) -> tuple[int, str] | None:
        """walk resolves directory ``rel`` inside the root, as RESOLVE_IN_ROOT does.

        Symlinks on the way are followed with their targets re-rooted at the
        root, and ``..`` stops at the root. Missing directories are made when
        ``create`` is true; otherwise the result is None.
        """
        if not rel:
            return (self._root, "")
        todo = rel.split("/")
        todo.reverse()
        stack: list[tuple[int, str]] = [(self._root, "")]
        links = 0
        while todo:
            part = todo.pop()
            if part in ("", "."):
                continue
            if part == "..":
                if len(stack) > 1:
                    stack.pop()
                continue
            fd, real = stack[-1]
            key = f"{real}/{part}" if real else part
            hit = self._dirs.get(key)
            if hit is not None and hit[1] == key:
                stack.append(hit)
                continue
            mounted = self._mounts.get(key)
            if mounted is not None:
                stack.append((mounted, key))
                continue
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                if not create:
                    return None
                os.mkdir(part, 0o755, dir_fd=fd)
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except OSError as err:
                if create and key in self._whited_out:
                    stack.append((self._reopen_whiteout(fd, part, key), key))
                    continue
                try:
                    target = os.readlink(part, dir_fd=fd)
                except OSError:
                    raise InvalidArgument(
                        f"layer member {member!r}: {key!r} is not a directory"
                    ) from err
                links += 1
                if links > _MAX_SYMLINKS:
                    raise InvalidArgument(
                        f"layer member {member!r}: too many levels of symlinks"
                    ) from None
                if target.startswith("/"):
                    del stack[1:]
                todo.extend(reversed(target.split("/")))
                continue
            stack.append((self._keep_dir(child, key, key), key))
        result = stack[-1]
        self._dirs[rel] = result
        return result

    def _reopen_whiteout(self, pfd: int, name: str, real: str) -> int:
        """_reopen_whiteout turns this layer's whiteout into an opaque directory for new files."""
        os.unlink(name, dir_fd=pfd)
        os.mkdir(name, 0o755, dir_fd=pfd)
        fd = self._keep_dir(os.open(name, _DIR_FLAGS, dir_fd=pfd), real, real)
        os.setxattr(fd, OVERLAY_OPAQUE_XATTR, b"y")
        return fd

    def _set_dir_times(self) -> None:
        if self._stale:
            self._forget_dirs()
        for real, times in sorted(
            self._dir_times.items(), key=lambda item: item[0].count("/"), reverse=True
        ):
            hit = self._dirs.get(real)
            if not real:
                os.utime(self._root, ns=times)
            elif hit is not None and hit[1] == real:
                os.utime(hit[0], ns=times)
            else:
                fd = self._open_real(real)
                if fd is not None:
                    try:
                        os.utime(fd, ns=times)
                    finally:
                        os.close(fd)

    def _open_real(self, real: str) -> int | None:
        """_open_real opens directory ``real`` with no symlink on the way, or returns None."""
        fd = self._root
        parts = real.split("/")
        for i, part in enumerate(parts):
            mounted = self._mounts.get("/".join(parts[: i + 1]))
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd) if mounted is None else os.dup(mounted)
            except OSError:
                child = -1
            if fd != self._root:
                os.close(fd)
            if child < 0:
                return None
            fd = child
        return fd


def _set_xattr(where: int | str, key: str, value: bytes) -> None:
    try:
        if isinstance(where, int):
            os.setxattr(where, key, value)
        else:
            os.setxattr(where, key, value, follow_symlinks=False)
    except OSError as err:
        # As containerd: a file system without xattrs (of that namespace) is no reason to fail.
        if err.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
