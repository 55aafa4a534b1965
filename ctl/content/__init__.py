"""The content store: content-addressed blobs with verified ingest.

Glossary (containerd's):
  digest   ``sha256:<hex>``, the address of a blob.
  ref      a client-chosen name for one in-progress write, such as
           ``layer-sha256:<hex>``; one writer per ref at a time.
  ingest   the area where a ref's bytes accumulate before ``commit``.

Lifecycle of a write::

    with store.writer("layer-" + desc.digest, desc) as w:   # AlreadyExists if committed
        w.status().offset        # bytes already on disk from an earlier, cut-off try
        w.write(chunk) ...       # hashes while it writes
        w.commit(desc.size, desc.digest)   # verify size + digest, rename into blobs/

The store is split into narrow protocols, as containerd's is, so that helpers
take only what they use (``read_blob`` a ``Provider``; image code cannot
delete blobs by accident). ``ContentStore`` combines them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, BinaryIO, NamedTuple, Protocol

from ctl.errdefs import DataCorrupted

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path
    from types import TracebackType

    from ctl.errdefs import CtlError
    from ctl.oci import Descriptor


class DamagedRecord(DataCorrupted):
    """DamagedRecord is a blob's labels record or an ingest that cannot be read.

    ``path`` is the damaged file or directory, for ``Manager.remove_damaged``;
    a string, so that the error crosses the supervisor's wire as itself.
    """

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = str(path)


class Info(NamedTuple):
    """Info describes a committed blob."""

    digest: str
    size: int
    created_at: float
    updated_at: float
    # A default shared by every instance: records are never changed in place.
    labels: dict[str, str] = {}


class Status(NamedTuple):
    """Status describes an in-progress ingest."""

    ref: str
    offset: int
    total: int
    expected: str
    started_at: float
    updated_at: float


class Provider(Protocol):
    def reader_at(self, desc: Descriptor) -> BinaryIO:
        """reader_at opens the committed blob of ``desc``; NotFound if absent."""
        ...


class InfoProvider(Protocol):
    def info(self, digest: str) -> Info:
        """info returns the blob's Info; NotFound if absent."""
        ...


class Manager(InfoProvider, Protocol):
    def update(self, info: Info, fieldpaths: list[str] | None = None) -> Info:
        """update replaces the labels of a blob (``labels`` or ``labels.<key>`` paths).

        An empty label value removes that label. NotFound if the blob is absent.
        """
        ...

    def walk(self, on_error: Callable[[CtlError], None] | None = None) -> Iterator[Info]:
        """walk yields the Info of every committed blob.

        A blob whose Info cannot be read (a damaged labels record) raises
        DamagedRecord, which ends the walk; with ``on_error`` the error is
        passed to it instead and the walk goes on (as ``os.walk``'s
        ``onerror``), so that a checker sees every other blob.
        """
        ...

    def delete(self, digest: str) -> None:
        """delete removes a committed blob; NotFound if absent."""
        ...

    def remove_damaged(self, damaged: DamagedRecord) -> None:
        """remove_damaged removes the record ``walk`` or ``list_statuses`` reported damaged.

        A labels record goes and its blob stays, without labels; a damaged
        ingest goes whole. Unavailable if a writer holds that ingest; NotFound
        if the record is gone already.
        """
        ...


class Writer(Protocol):
    """Writer appends to one ref's ingest and commits it into a blob.

    It holds the ref's lock until ``commit`` or ``close``; a cut-off writer
    leaves its bytes for the next writer of the same ref to resume.
    """

    def write(self, data: bytes) -> int: ...

    def digest(self) -> str:
        """digest is the sha256 of the bytes written so far."""
        ...

    def status(self) -> Status: ...

    def truncate(self, size: int) -> None:
        """truncate cuts the ingest back to ``size`` bytes (only 0 is supported)."""
        ...

    def commit(self, size: int, expected: str, labels: dict[str, str] | None = None) -> None:
        """commit verifies and publishes the blob, then closes the writer.

        ``size`` (when > 0) and ``expected`` (when non-empty) must match what
        was written, else FailedPrecondition and the ingest is discarded, so a
        bad download is never resumed. AlreadyExists if the blob appeared meanwhile.
        """
        ...

    def close(self) -> None:
        """close releases the lock and keeps the ingest for a later resume."""
        ...

    def __enter__(self) -> Writer: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


class Ingester(Protocol):
    def writer(
        self,
        ref: str,
        desc: Descriptor | None = None,
        *,
        timeout: float | None = None,
    ) -> Writer:
        """writer opens (or resumes) the ingest of ``ref``.

        Raises AlreadyExists when ``desc`` names a committed blob, checked
        before and after the ref lock is taken, so that two processes pulling
        the same blob download it once. Waits up to ``timeout`` seconds (None:
        forever) for another process holding the ref, then Unavailable.
        A resumed ingest whose recorded total or expected digest differs from
        ``desc`` is restarted from zero.
        """
        ...


class IngestManager(Protocol):
    def status(self, ref: str) -> Status:
        """status of an in-progress ingest; NotFound if there is none."""
        ...

    def list_statuses(self, on_error: Callable[[CtlError], None] | None = None) -> list[Status]:
        """list_statuses returns the Status of every ingest.

        An ingest whose records are damaged (a file in it missing or
        malformed) raises DamagedRecord; with
        ``on_error`` the error is passed to it and that ingest left out.
        """
        ...

    def abort(self, ref: str) -> None:
        """abort discards an ingest; NotFound if there is none."""
        ...


class ContentStore(Provider, Manager, Ingester, IngestManager, Protocol):
    """ContentStore is the whole content store."""
