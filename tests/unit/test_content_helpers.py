"""Tests of ctl.content.helpers on a real LocalStore; a fake Provider only for short reads."""

from __future__ import annotations

import hashlib
import io
import os
from typing import TYPE_CHECKING, BinaryIO, cast

import pytest

from ctl.content.helpers import (
    VerifyingReader,
    copy_from,
    exists,
    read_blob,
    verify_blob,
    write_blob,
)
from ctl.content.local import LocalStore
from ctl.errdefs import (
    AlreadyExists,
    DataCorrupted,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from ctl.oci import MEDIA_TYPE_OCI_LAYER, Descriptor

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from pathlib import Path

DATA = bytes(range(256)) * 64


def describe(data: bytes) -> Descriptor:
    return Descriptor(MEDIA_TYPE_OCI_LAYER, f"sha256:{hashlib.sha256(data).hexdigest()}", len(data))


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "content")


def leave_partial(store: LocalStore, ref: str, desc: Descriptor, data: bytes) -> None:
    """leave_partial leaves ``data`` in the ingest of ``ref``, as a cut-off download does."""
    with store.writer(ref, desc) as w:
        w.write(data)


class CountingReader(io.BytesIO):
    """CountingReader is a seekable file that counts the bytes read from it."""

    bytes_read = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.bytes_read += len(data)
        return data


# write_blob


def test_write_blob_from_chunks_and_file(store: LocalStore) -> None:
    one, two, empty = describe(b"one"), describe(DATA), describe(b"")
    write_blob(store, "a", [b"o", b"ne"], one)
    write_blob(store, "b", io.BytesIO(DATA), two)
    write_blob(store, "c", [], empty)
    assert read_blob(store, one) == b"one"
    assert read_blob(store, two) == DATA
    assert read_blob(store, empty) == b""


def test_write_blob_existing_is_success(store: LocalStore) -> None:
    desc = describe(DATA)
    write_blob(store, "a", [DATA], desc)
    write_blob(store, "b", [b"never read"], desc)
    assert store.list_statuses() == []


def test_write_blob_rejects_wrong_bytes(store: LocalStore) -> None:
    desc = describe(DATA)
    with pytest.raises(FailedPrecondition):
        write_blob(store, "a", [DATA[:-1], b"?"], desc)
    assert not exists(store, desc.digest)
    assert store.list_statuses() == []


def test_write_blob_resumes_seekable_file(store: LocalStore) -> None:
    desc = describe(DATA)
    leave_partial(store, "a", desc, DATA[:1000])
    source = CountingReader(DATA)
    write_blob(store, "a", source, desc)
    assert source.bytes_read == len(DATA) - 1000
    assert read_blob(store, desc) == DATA


def test_write_blob_restarts_for_plain_iterable(store: LocalStore) -> None:
    desc = describe(DATA)
    leave_partial(store, "a", desc, b"X" * 1000)  # not even the right bytes
    write_blob(store, "a", iter([DATA[:10], DATA[10:]]), desc)
    assert read_blob(store, desc) == DATA


# read_blob, verify_blob and exists


@pytest.mark.parametrize("read", [read_blob, verify_blob])
def test_read_and_verify_blob_detect_tampering(
    store: LocalStore, tmp_path: Path, read: Callable[[LocalStore, Descriptor], object]
) -> None:
    desc = describe(DATA)
    write_blob(store, "a", [DATA], desc)
    read(store, desc)
    blob = tmp_path / "content" / "blobs" / "sha256" / desc.digest.removeprefix("sha256:")
    os.chmod(blob, 0o644)
    blob.write_bytes(DATA[:-1] + b"!")
    with pytest.raises(DataCorrupted):
        read(store, desc)
    blob.write_bytes(DATA + b"more")
    with pytest.raises(DataCorrupted):
        read(store, desc)
    blob.unlink()
    with pytest.raises(NotFound):
        read(store, desc)


class ShortReadProvider:
    """ShortReadProvider serves bytes a few at a time, as a pipe or socket may."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def reader_at(self, desc: Descriptor) -> BinaryIO:
        return io.BufferedReader(_Trickle(self.data), buffer_size=3)


class _Trickle(io.RawIOBase):
    def __init__(self, data: bytes) -> None:
        self.rest = data

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(3, len(buffer), len(self.rest))
        buffer[:n] = self.rest[:n]
        self.rest = self.rest[n:]
        return n


def test_read_blob_short_reads_and_limits() -> None:
    desc = describe(b"a small manifest")
    assert read_blob(ShortReadProvider(b"a small manifest"), desc) == b"a small manifest"
    with pytest.raises(DataCorrupted):
        read_blob(ShortReadProvider(b"a small manifesT"), desc)
    with pytest.raises(InvalidArgument):
        read_blob(ShortReadProvider(b""), describe(DATA), max_size=100)
    verify_blob(ShortReadProvider(b"a small manifest"), desc)
    with pytest.raises(DataCorrupted):
        verify_blob(ShortReadProvider(b"a small manifesT"), desc)


def test_verifying_reader_fails_naming_the_blob_at_a_short_or_long_one() -> None:
    desc = describe(b"a small manifest")
    trickle = cast("BinaryIO", _Trickle(b"a small manifest"))  # 3 bytes a read
    exact = VerifyingReader(trickle, desc)
    assert exact.read(10) == b"a small ma"  # whole, though the source trickles
    assert exact.read(100) == b"nifest"
    exact.verify()
    short = VerifyingReader(ShortReadProvider(b"a small").reader_at(desc), desc)
    with pytest.raises(DataCorrupted, match=desc.digest):
        short.read(100)
    long = VerifyingReader(ShortReadProvider(b"a small manifest!").reader_at(desc), desc)
    assert long.read(len(b"a small manifest")) == b"a small manifest"
    with pytest.raises(DataCorrupted, match=desc.digest):
        long.verify()


def test_exists(store: LocalStore) -> None:
    desc = describe(b"x")
    assert not exists(store, desc.digest)
    write_blob(store, "x", [b"x"], desc)
    assert exists(store, desc.digest)


# copy_from


class Source:
    """Source is a blob server whose Range support can be switched off; it records requests."""

    def __init__(self, data: bytes, *, honours_range: bool = True, start: int | None = None):
        self.data = data
        self.honours_range = honours_range
        self.start = start
        self.requests: list[int] = []
        self.closed = 0

    def open_at(self, offset: int) -> tuple[int, Iterable[bytes]]:
        self.requests.append(offset)
        start = self.start if self.start is not None else offset if self.honours_range else 0
        return start, self._chunks(start)

    def _chunks(self, start: int) -> Iterator[bytes]:
        try:
            for i in range(start, len(self.data), 1000):
                yield self.data[i : i + 1000]
        finally:
            self.closed += 1


def test_copy_from_resumes_with_range(store: LocalStore) -> None:
    desc = describe(DATA)
    leave_partial(store, "a", desc, DATA[:5000])
    source = Source(DATA)
    with store.writer("a", desc) as w:
        copy_from(w, source.open_at, desc)
    assert source.requests == [5000]
    assert source.closed == 1
    assert read_blob(store, desc) == DATA


def test_copy_from_restarts_when_range_is_ignored(store: LocalStore) -> None:
    desc = describe(DATA)
    leave_partial(store, "a", desc, DATA[:5000])
    source = Source(DATA, honours_range=False)
    with store.writer("a", desc) as w:
        copy_from(w, source.open_at, desc)
    assert source.requests == [5000]
    assert read_blob(store, desc) == DATA


def test_copy_from_rejects_odd_start(store: LocalStore) -> None:
    desc = describe(DATA)
    leave_partial(store, "a", desc, DATA[:5000])
    source = Source(DATA, start=17)
    with store.writer("a", desc) as w, pytest.raises(InvalidArgument):
        copy_from(w, source.open_at, desc)
    assert store.status("a").offset == 5000  # kept for the next try


def test_copy_from_complete_ingest_does_not_open(store: LocalStore) -> None:
    desc = describe(DATA)
    leave_partial(store, "a", desc, DATA)
    source = Source(DATA)
    with store.writer("a", desc) as w:
        copy_from(w, source.open_at, desc)
    assert source.requests == []
    assert exists(store, desc.digest)


def test_copy_from_refetches_wrong_complete_ingest(store: LocalStore) -> None:
    desc = describe(DATA)
    leave_partial(store, "a", desc, b"\0" * len(DATA))
    source = Source(DATA)
    with store.writer("a", desc) as w:
        copy_from(w, source.open_at, desc)
    assert source.requests == [0]
    assert read_blob(store, desc) == DATA


def test_copy_from_stops_on_oversized_source(store: LocalStore) -> None:
    desc = describe(DATA[:3000])
    source = Source(DATA)
    with store.writer("a", desc) as w, pytest.raises(FailedPrecondition):
        copy_from(w, source.open_at, desc)
    assert source.closed == 1
    assert store.list_statuses() == []  # a bad download is not kept


def test_copy_from_source_failure_keeps_bytes(store: LocalStore) -> None:
    desc = describe(DATA)

    def flaky(offset: int) -> tuple[int, Iterable[bytes]]:
        def chunks() -> Iterator[bytes]:
            yield DATA[offset : offset + 2000]
            raise ConnectionResetError("link dropped")

        return offset, chunks()

    with store.writer("a", desc) as w, pytest.raises(ConnectionResetError):
        copy_from(w, flaky, desc)
    assert store.status("a").offset == 2000
    with store.writer("a", desc) as w:
        copy_from(w, Source(DATA).open_at, desc)
    assert read_blob(store, desc) == DATA


def test_copy_from_already_committed_by_other_ref(store: LocalStore) -> None:
    desc = describe(DATA)
    with store.writer("a", desc) as w:
        write_blob(store, "b", [DATA], desc)
        copy_from(w, Source(DATA).open_at, desc)  # AlreadyExists at commit is success
    assert store.list_statuses() == []
    with pytest.raises(AlreadyExists):
        store.writer("a", desc)
