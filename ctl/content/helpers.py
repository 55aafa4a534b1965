"""Helpers over the content protocols; each takes the narrowest protocol it needs.

``read_blob`` and ``verify_blob`` take a ``Provider`` and ``exists`` an
``InfoProvider``, so code that only reads cannot delete or write blobs by
accident; ``write_blob`` takes an ``Ingester`` and ``copy_from`` a single
``Writer``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from collections.abc import Callable, Iterable
from typing import IO, TYPE_CHECKING, BinaryIO

from ctl.errdefs import AlreadyExists, DataCorrupted, InvalidArgument, NotFound
from ctl.oci import sha256_digest

if TYPE_CHECKING:
    from ctl.content import InfoProvider, Ingester, Provider, Writer
    from ctl.oci import Descriptor

# Manifests, indexes and configs are read whole into memory; registries cap
# manifests at 4 MiB, and configs of real images are far smaller than this.
MAX_SMALL_BLOB = 16 << 20
CHUNK_SIZE = 1 << 20

OpenAt = Callable[[int], tuple[int, Iterable[bytes]]]
"""OpenAt starts a blob's bytes at an offset; see ``copy_from``."""


def exists(provider: InfoProvider, digest: str) -> bool:
    """exists says whether the blob ``digest`` is committed."""
    try:
        provider.info(digest)
    except NotFound:
        return False
    return True


def read_blob(provider: Provider, desc: Descriptor, max_size: int = MAX_SMALL_BLOB) -> bytes:
    """read_blob returns a small blob's bytes after checking them against ``desc``.

    The store verified them at commit, but files on disk can be changed behind
    its back; a size or digest mismatch is DataCorrupted. A descriptor larger
    than ``max_size`` is InvalidArgument, before anything is read.
    """
    if desc.size > max_size:
        raise InvalidArgument(
            f"content {desc.digest}: {desc.size} bytes is over the {max_size}-byte limit"
        )
    with provider.reader_at(desc) as f:
        # One byte more than expected reveals a blob that grew.
        data = _read_up_to(f, desc.size + 1)
    _check_stored(desc, len(data), sha256_digest(data))
    return data


def verify_blob(provider: Provider, desc: Descriptor) -> None:
    """verify_blob reads the whole blob ``desc`` through ``provider`` and checks it.

    It holds one chunk at a time, so it suits blobs of any size (layers). A
    size or digest other than ``desc`` says is DataCorrupted; NotFound if the
    blob is absent; OSError if it cannot be read.
    """
    with provider.reader_at(desc) as f:
        reader = VerifyingReader(f, desc)
        while reader.read(CHUNK_SIZE):
            pass
        reader.verify()


class VerifyingReader:
    """VerifyingReader hashes what is read through it from a stored blob.

    Reads are whole, as a buffered file's: one that meets the end of the
    blob before ``desc.size`` bytes is DataCorrupted, so that a consumer
    that wants exactly ``desc.size`` bytes (tarfile) fails naming the blob;
    ``verify`` checks, once the consumer is done, that nothing follows and
    that the digest matches.
    """

    def __init__(self, reader: BinaryIO, desc: Descriptor) -> None:
        self._reader = reader
        self._desc = desc
        self._hash = hashlib.sha256()
        self._size = 0

    def read(self, size: int = -1) -> bytes:
        """read returns ``size`` bytes (all, if negative), fewer only at the end of the blob."""
        data = self._reader.read() if size < 0 else _read_up_to(self._reader, size)
        self._hash.update(data)
        self._size += len(data)
        if (size < 0 or len(data) < size) and self._size < self._desc.size:
            self._check()
        return data

    def verify(self) -> None:
        """verify raises DataCorrupted unless the blob ends here and matches its digest."""
        # One byte more than expected reveals a blob that grew.
        self._size += len(self._reader.read(1))
        self._check()

    def _check(self) -> None:
        _check_stored(self._desc, self._size, f"sha256:{self._hash.hexdigest()}")


def _check_stored(desc: Descriptor, size: int, digest: str) -> None:
    """_check_stored raises DataCorrupted unless a stored blob matches ``desc``."""
    if size != desc.size or digest != desc.digest:
        raise DataCorrupted(
            f"content {desc.digest}: stored blob does not match its digest: {size} bytes "
            f"with digest {digest}, descriptor says {desc.size} bytes"
        )


def write_blob(
    ingester: Ingester, ref: str, stream: IO[bytes] | Iterable[bytes], desc: Descriptor
) -> None:
    """write_blob stores the bytes of ``stream`` as the blob ``desc`` describes.

    A blob that is already committed is success. ``stream`` is a file object
    positioned at the blob's start, or any iterable of byte chunks. When an
    earlier, cut-off write of ``ref`` left bytes behind, a seekable file is
    continued after them and anything else is written again from the start.
    Errors are those of ``copy_from``.
    """
    try:
        writer = ingester.writer(ref, desc)
    except AlreadyExists:
        return
    with writer:
        copy_from(writer, lambda offset: _open_stream(stream, offset), desc)


def copy_from(writer: Writer, open_at: OpenAt, desc: Descriptor) -> None:
    """copy_from fills ``writer`` with the rest of the blob ``desc`` and commits it.

    ``open_at(offset)`` starts the source at byte ``offset`` (an HTTP Range
    request, a seek) and returns ``(start, chunks)``: ``start`` is where
    ``chunks`` actually begin, ``offset`` if the source honoured it or 0 if it
    sends the whole blob anyway (a registry that ignores Range); any other
    start is InvalidArgument. If ``chunks`` has a ``close`` method (a
    generator, an HTTP response) it is called when copying ends.

    Bytes already in the ingest are kept and only the rest is asked for; when
    they already make up the whole blob the source is not opened at all, and
    when they cannot be part of it they are dropped first. Copying stops as
    soon as the source sends more than ``desc.size`` bytes. ``commit``
    verifies size and digest (FailedPrecondition, and the ingest is
    discarded); AlreadyExists at commit, another ref having committed the same
    blob meanwhile, is success. If the source fails, the writer stays open
    with what it got, for the caller to retry or close for a later resume.
    """
    offset = writer.status().offset
    if offset > desc.size or (offset == desc.size and writer.digest() != desc.digest):
        writer.truncate(0)
        offset = 0
    if offset < desc.size:
        _copy_chunks(writer, open_at, desc, offset)
    with contextlib.suppress(AlreadyExists):
        writer.commit(desc.size, desc.digest)


def _copy_chunks(writer: Writer, open_at: OpenAt, desc: Descriptor, offset: int) -> None:
    start, chunks = open_at(offset)
    try:
        if start != offset:
            if start != 0:
                raise InvalidArgument(
                    f"source of {desc.digest} starts at byte {start}, asked for {offset} or 0"
                )
            writer.truncate(0)
            offset = 0
        for chunk in chunks:
            writer.write(chunk)
            offset += len(chunk)
            if offset > desc.size:
                break  # commit rejects it; no need to take the rest of a wrong stream
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


def _open_stream(stream: IO[bytes] | Iterable[bytes], offset: int) -> tuple[int, Iterable[bytes]]:
    """_open_stream is write_blob's OpenAt: it seeks a seekable file, else starts at 0."""
    if not isinstance(stream, io.IOBase):
        return 0, stream
    if offset and stream.seekable():
        stream.seek(offset, io.SEEK_CUR)
        start = offset
    else:
        start = 0
    return start, iter(lambda: stream.read(CHUNK_SIZE), b"")


def _read_up_to(f: BinaryIO, limit: int) -> bytes:
    """_read_up_to reads until EOF or ``limit`` bytes; one read() may return fewer."""
    parts = []
    remaining = limit
    while remaining > 0 and (part := f.read(remaining)):
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)
