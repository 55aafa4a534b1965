"""LocalStore keeps content as plain files under one directory, as containerd's local store does.

Layout under ``Paths(...).content``::

    blobs/sha256/<hex>          a committed blob, mode 0444; appears by one rename, whole
    ingest/<key>.lock           flock held by the ref's writer; key = paths.ref_key(ref)
    ingest/<key>/               the ref's in-progress write; appears by one rename, complete
      ingest.json  data         its record (ref, total, expected, startedat) and the bytes
    ingest/.<key>.new  .old     the ref's ingest being built or removed; readers skip them
    labels/sha256/<hex>.json    the blob's labels (absent = none)
    labels/.lock                serialises label changes against ``delete``

Crash safety: every name a reader looks at appears or disappears by one
``rename`` or ``unlink``, so a ``kill -9`` at any point leaves either the old
or the new state plus, at worst, dot-named leftovers that the next writer of
the same ref removes. The lock file lives beside the ingest directory, not in
it, so it outlives the directory while ``commit`` removes it.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from typing import TYPE_CHECKING, BinaryIO, TypedDict

from ctl.closing import Closing
from ctl.content import DamagedRecord, Info, Status
from ctl.errdefs import (
    AlreadyExists,
    CtlError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unimplemented,
    WriteFailed,
)
from ctl.fsutil import (
    DIR_MODE,
    FILE_MODE,
    FileLock,
    atomic_write_json,
    fsync_dir,
    read_json,
    unlink_if_present,
)
from ctl.oci import blob_kind, validate_digest
from ctl.paths import ref_key

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from _typeshed import StrPath

    from ctl.content import Writer
    from ctl.oci import Descriptor

BLOB_MODE = 0o444
LABELS_VERSION = 1
_HEX = re.compile(r"[a-f0-9]{64}")
_INGEST_RECORD = "ingest.json"
_READ_CHUNK = 1 << 20


class _LabelsRecord(TypedDict):
    """_LabelsRecord is the JSON shape of ``labels/sha256/<hex>.json``."""

    version: int
    labels: dict[str, str]


class _RefLock(FileLock):
    """_RefLock is a FileLock whose holder may unlink the lock file when the ref is done.

    A process waiting on the old file then wakes holding an unlinked inode
    while a newcomer may have locked a fresh file at the same path; so after
    each acquire it checks that the path still names the file it locked, and
    otherwise tries again within what is left of the timeout.
    """

    def acquire(self) -> None:
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        while True:
            super().acquire()
            if self._holds_path():
                return
            self.release()
            if deadline is not None:
                self.timeout = max(0.0, deadline - time.monotonic())

    def _holds_path(self) -> bool:
        assert self._fd is not None
        held = os.fstat(self._fd)
        try:
            current = os.stat(self.path)
        except FileNotFoundError:
            return False
        return (held.st_dev, held.st_ino) == (current.st_dev, current.st_ino)

    def unlink(self) -> None:
        """unlink removes the lock file; only the holder may call it, just before release."""
        unlink_if_present(self.path)


class LocalStore:
    """LocalStore is the on-disk ContentStore; see the module docstring for the layout.

    Constructing it does no I/O; directories appear with the first write.
    """

    def __init__(self, root: StrPath) -> None:
        from pathlib import Path

        self.root = Path(root)

    # Provider

    def reader_at(self, desc: Descriptor) -> BinaryIO:
        path = self._blob_path(desc.digest)
        try:
            return open(path, "rb")
        except FileNotFoundError as err:
            raise NotFound(f"content {desc.digest}: not found") from err

    # InfoProvider and Manager

    def info(self, digest: str) -> Info:
        path = self._blob_path(digest)
        try:
            st = path.stat()
        except FileNotFoundError as err:
            raise NotFound(f"content {digest}: not found") from err
        labels, labels_mtime = self._read_labels(digest)
        # The rename at commit sets ctime; nothing touches a blob's inode after that.
        return Info(
            digest=digest,
            size=st.st_size,
            created_at=st.st_ctime,
            updated_at=max(st.st_ctime, labels_mtime),
            labels=labels,
        )

    def update(self, info: Info, fieldpaths: list[str] | None = None) -> Info:
        digest = info.digest
        self.info(digest)  # NotFound before the lock creates any directory
        with FileLock(self._labels_lock_path(), what="content labels"):
            current = self.info(digest)
            self._write_labels(digest, _updated_labels(current, info, fieldpaths))
        return self.info(digest)

    def walk(self, on_error: Callable[[CtlError], None] | None = None) -> Iterator[Info]:
        try:
            names = sorted(os.listdir(self.root / "blobs" / "sha256"))
        except FileNotFoundError:
            return
        for name in names:
            if not _HEX.fullmatch(name):
                continue
            try:
                info = self.info(f"sha256:{name}")
            except NotFound:
                continue  # deleted since the listing
            except DamagedRecord as err:
                _pass_on(err, on_error)
                continue
            yield info

    def delete(self, digest: str) -> None:
        path = self._blob_path(digest)
        if not path.exists():
            raise NotFound(f"content {digest}: not found")
        # Under the labels lock so that a concurrent update cannot leave labels behind.
        with FileLock(self._labels_lock_path(), what="content labels"):
            try:
                path.unlink()
            except FileNotFoundError as err:
                raise NotFound(f"content {digest}: not found") from err
            except IsADirectoryError:
                _rmtree(path)  # damage: nothing ctl writes puts a directory there
            self._labels_path(digest).unlink(missing_ok=True)

    def remove_damaged(self, damaged: DamagedRecord) -> None:
        path = self.root.joinpath(damaged.path)  # absolute: the path itself
        if path.parent == self.root / "ingest":
            lock = _RefLock(path.with_name(f"{path.name}.lock"), timeout=0, what=f"ingest {path}")
            lock.acquire()
            try:
                if not os.path.lexists(path):
                    raise NotFound(f"ingest {path}: not found")
                if not path.is_dir():
                    path.unlink()
                _discard(path, lock)
            finally:
                lock.release()
        elif path.parent == self.root / "labels" / "sha256":
            with FileLock(self._labels_lock_path(), what="content labels"):
                try:
                    path.unlink()
                except FileNotFoundError as err:
                    raise NotFound(f"labels record {path}: not found") from err
        else:
            raise InvalidArgument(f"{path} is no record of the content store at {self.root}")

    # Ingester

    def writer(
        self,
        ref: str,
        desc: Descriptor | None = None,
        *,
        timeout: float | None = None,
    ) -> Writer:
        if not ref:
            raise InvalidArgument("invalid ingest ref: must not be empty")
        if desc is not None and self._blob_path(desc.digest).exists():
            raise AlreadyExists(f"content {desc.digest}")
        lock = self._ref_lock(ref, timeout)
        lock.acquire()
        try:
            ingest = self._ingest_dir(ref)
            _sweep(ingest)
            if desc is not None and self._blob_path(desc.digest).exists():
                # Another process committed it while we waited: nothing to write.
                _discard(ingest, lock)
                raise AlreadyExists(f"content {desc.digest}")
            if ingest.is_dir() and desc is not None and not _resumable(ingest, desc):
                _remove_dir(ingest)
            what = _blob_name(ref, desc)
            try:
                if not ingest.is_dir():
                    _create_ingest(ingest, ref, desc)
                return _LocalWriter(self, ref, ingest, lock, what)
            except OSError as err:
                _sweep(ingest)  # a full disk must leave no half-built ingest behind
                raise WriteFailed(what, err) from err
        except BaseException:
            lock.release()
            raise

    # IngestManager

    def status(self, ref: str) -> Status:
        try:
            return _ingest_status(self._ingest_dir(ref))
        except (FileNotFoundError, NotADirectoryError) as err:
            raise NotFound(f"ingest {ref!r}: not found") from err

    def list_statuses(self, on_error: Callable[[CtlError], None] | None = None) -> list[Status]:
        directory = self.root / "ingest"
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            return []
        statuses = []
        for name in names:
            if not _HEX.fullmatch(name):
                continue  # lock files and dot-named leftovers
            try:
                statuses.append(_ingest_status(directory / name))
            except (FileNotFoundError, NotADirectoryError):
                continue  # committed or aborted since the listing
            except DamagedRecord as err:
                _pass_on(err, on_error)
        return sorted(statuses, key=lambda s: s.ref)

    def abort(self, ref: str) -> None:
        ingest = self._ingest_dir(ref)
        if not ingest.is_dir():
            raise NotFound(f"ingest {ref!r}: not found")  # before the lock creates any file
        lock = self._ref_lock(ref, 0)
        lock.acquire()
        try:
            found = ingest.is_dir()
            _discard(ingest, lock)
        finally:
            lock.release()
        if not found:
            raise NotFound(f"ingest {ref!r}: not found")

    # Paths. Digests are validated before any join.

    def _blob_path(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / _hex(digest)

    def _labels_path(self, digest: str) -> Path:
        return self.root / "labels" / "sha256" / f"{_hex(digest)}.json"

    def _labels_lock_path(self) -> Path:
        return self.root / "labels" / ".lock"

    def _ingest_dir(self, ref: str) -> Path:
        return self.root / "ingest" / ref_key(ref)

    def _ref_lock(self, ref: str, timeout: float | None) -> _RefLock:
        path = self.root / "ingest" / f"{ref_key(ref)}.lock"
        return _RefLock(path, timeout=timeout, what=f"ingest {ref!r}")

    # Labels

    def _read_labels(self, digest: str) -> tuple[dict[str, str], float]:
        path = self._labels_path(digest)
        try:
            record = read_json(path)
            mtime = path.stat().st_mtime
        except FileNotFoundError:
            return {}, 0.0
        except (OSError, ValueError) as err:  # bad JSON, or not a readable file
            raise DamagedRecord(f"labels of content {digest}: unreadable {path}", path) from err
        labels = record.get("labels") if isinstance(record, dict) else None
        if not isinstance(labels, dict):
            raise DamagedRecord(f"labels of content {digest}: malformed record {path}", path)
        return {str(k): str(v) for k, v in labels.items()}, mtime

    def _write_labels(self, digest: str, labels: dict[str, str]) -> None:
        path = self._labels_path(digest)
        if not labels:
            path.unlink(missing_ok=True)
            return
        record: _LabelsRecord = {"version": LABELS_VERSION, "labels": labels}
        atomic_write_json(path, record)


class _LocalWriter(Closing):
    """_LocalWriter appends to ``ingest/<key>/data`` and hashes as it writes."""

    def __init__(
        self, store: LocalStore, ref: str, ingest: Path, lock: _RefLock, what: str
    ) -> None:
        self._store = store
        self._ref = ref
        self._what = what
        self._ingest = ingest
        self._lock = lock
        self._hash = hashlib.sha256()
        self._offset = 0
        self._fd: int | None = os.open(
            ingest / "data", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE
        )
        try:
            # Resuming: the hash state is not saved, so rebuild it from the bytes on disk.
            while chunk := os.read(self._fd, _READ_CHUNK):
                self._hash.update(chunk)
                self._offset += len(chunk)
        except BaseException:
            os.close(self._fd)
            raise

    def write(self, data: bytes) -> int:
        fd = self._open_fd()
        view = memoryview(data)
        while view:
            # Hash what actually reached the file, so a failed write leaves both in step.
            try:
                n = os.write(fd, view)
            except OSError as err:
                raise WriteFailed(self._what, err) from err
            self._hash.update(view[:n])
            self._offset += n
            view = view[n:]
        return len(data)

    def digest(self) -> str:
        return f"sha256:{self._hash.hexdigest()}"

    def status(self) -> Status:
        self._open_fd()
        return _ingest_status(self._ingest)

    def truncate(self, size: int) -> None:
        fd = self._open_fd()
        if size != 0:
            raise Unimplemented(f"truncate ingest {self._ref!r} to {size}: only 0 is supported")
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        self._hash = hashlib.sha256()
        self._offset = 0

    def commit(self, size: int, expected: str, labels: dict[str, str] | None = None) -> None:
        fd = self._open_fd()
        try:
            self._commit(fd, size, expected, labels)
        except OSError as err:
            if isinstance(err, WriteFailed):
                raise
            raise WriteFailed(self._what, err) from err
        finally:
            self.close()

    def _commit(self, fd: int, size: int, expected: str, labels: dict[str, str] | None) -> None:
        if expected:
            validate_digest(expected)
        actual = self.digest()
        if size > 0 and size != self._offset:
            _discard(self._ingest, self._lock)
            raise FailedPrecondition(
                f"commit of ingest {self._ref!r} ({expected or actual}): "
                f"got {self._offset} bytes, expected {size}"
            )
        if expected and expected != actual:
            _discard(self._ingest, self._lock)
            raise FailedPrecondition(
                f"commit of ingest {self._ref!r}: got digest {actual}, expected {expected}"
            )
        blob = self._store._blob_path(actual)
        if blob.exists():
            _discard(self._ingest, self._lock)
            raise AlreadyExists(f"content {actual}")
        if labels:
            # Labels first: a blob is never visible without the labels its committer gave it.
            self._store._write_labels(actual, labels)
        os.fchmod(fd, BLOB_MODE)
        os.fsync(fd)
        blob.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.rename(self._ingest / "data", blob)
        fsync_dir(blob.parent)
        _discard(self._ingest, self._lock)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
            self._lock.release()

    def _open_fd(self) -> int:
        if self._fd is None:
            raise FailedPrecondition(f"writer of ingest {self._ref!r} is closed")
        return self._fd


def _hex(digest: str) -> str:
    return validate_digest(digest).removeprefix("sha256:")


def _updated_labels(current: Info, new: Info, fieldpaths: list[str] | None) -> dict[str, str]:
    """_updated_labels applies containerd's fieldpaths: none or ``labels`` replace all."""
    labels = dict(current.labels)
    for path in fieldpaths or ["labels"]:
        if path == "labels":
            labels = dict(new.labels)
        elif path.startswith("labels."):
            key = path.removeprefix("labels.")
            labels[key] = new.labels.get(key, "")
        else:
            raise InvalidArgument(f"update of content {current.digest}: cannot update {path!r}")
    return {k: v for k, v in labels.items() if v}


# Ingest directories. Each function below is called with the ref's lock held.


def _blob_name(ref: str, desc: Descriptor | None) -> str:
    """_blob_name is what a writer's errors say it was writing: ``layer sha256:…``."""
    if desc is None:
        return f"ingest {ref!r}"
    return f"{blob_kind(desc.media_type)} {desc.digest}"


def _create_ingest(ingest: Path, ref: str, desc: Descriptor | None) -> None:
    """_create_ingest builds the directory aside and renames it in, so it appears complete.

    Its record is one file, made durable before the rename publishes it: one fsync where a
    file a field took four, on every blob of every pull. The rename itself is not waited
    for: a crash that loses it loses an ingest with no data yet (its ``.new`` leftover is
    swept by the ref's next writer), and a commit's own fsyncs make the blob durable.
    """
    import json

    building = ingest.with_name(f".{ingest.name}.new")
    building.mkdir(mode=DIR_MODE, parents=True)
    record = {
        "ref": ref,
        "total": desc.size if desc else 0,
        "expected": desc.digest if desc else "",
        "startedat": time.time(),
    }
    fd = os.open(building / _INGEST_RECORD, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC)
    try:
        os.write(fd, json.dumps(record).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    fsync_dir(building)
    os.rename(building, ingest)


def _pass_on(err: DamagedRecord, on_error: Callable[[CtlError], None] | None) -> None:
    """_pass_on hands the error of one damaged record to ``on_error``, or raises it."""
    if on_error is None:
        raise err
    on_error(err)


def _ingest_status(ingest: Path) -> Status:
    """_ingest_status reads an ingest directory; FileNotFoundError if it has gone."""
    try:
        record = read_json(ingest / _INGEST_RECORD)
        ref, expected = record["ref"], record["expected"]
        total, started_at = record["total"], float(record["startedat"])
        if not (isinstance(ref, str) and isinstance(expected, str) and type(total) is int):
            raise TypeError("a field of the wrong type")
    except (ValueError, KeyError, TypeError) as err:
        raise DamagedRecord(f"ingest {ingest}: malformed record", ingest) from err
    except (FileNotFoundError, NotADirectoryError):
        if not os.path.lexists(ingest):
            raise
        # An ingest appears whole by one rename: one without its records was damaged.
        raise DamagedRecord(f"ingest {ingest}: malformed record", ingest) from None
    try:
        st = (ingest / "data").stat()
    except FileNotFoundError:
        # Nothing written yet, or a commit moved the data out just before it was cut off.
        return Status(ref, 0, total, expected, started_at, started_at)
    # File times come from a coarser clock than time.time(): never an update before the start.
    return Status(ref, st.st_size, total, expected, started_at, max(started_at, st.st_mtime))


def _resumable(ingest: Path, desc: Descriptor) -> bool:
    """_resumable says whether an ingest was started for ``desc`` and can still match it."""
    try:
        recorded = _ingest_status(ingest)
    except (FileNotFoundError, DamagedRecord):
        return False  # damaged behind our back: start over rather than fail every pull
    return (
        recorded.total == desc.size
        and recorded.expected == desc.digest
        and recorded.offset <= desc.size
    )


def _sweep(ingest: Path) -> None:
    """_sweep removes what a cut-off build or removal of this ingest left behind."""
    for suffix in ("new", "old"):
        _rmtree(ingest.with_name(f".{ingest.name}.{suffix}"), ignore_errors=True)


def _rmtree(path: Path, ignore_errors: bool = False) -> None:
    import shutil  # not at the top: it drags in bz2 and lzma, which reading content never needs

    shutil.rmtree(path, ignore_errors=ignore_errors)


def _remove_dir(ingest: Path) -> None:
    """_remove_dir renames the ingest out of sight first, so no half-removed one is ever read."""
    _sweep(ingest)
    removing = ingest.with_name(f".{ingest.name}.old")
    os.rename(ingest, removing)
    _rmtree(removing)


def _discard(ingest: Path, lock: _RefLock) -> None:
    """_discard removes a finished or failed ingest and its lock file."""
    if ingest.is_dir():
        _remove_dir(ingest)
    lock.unlink()
