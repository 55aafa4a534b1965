"""Conformance of every ContentStore implementation (after containerd's content testsuite).

Add an implementation to FACTORIES and every test here runs against it. The
tests at the end, under "LocalStore specifics", check its on-disk promises.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import stat
import time
import traceback
from typing import TYPE_CHECKING

import pytest

from ctl.content import ContentStore, Info
from ctl.content.local import LocalStore
from ctl.errdefs import (
    AlreadyExists,
    CtlError,
    DataCorrupted,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
    Unimplemented,
)
from ctl.oci import MEDIA_TYPE_OCI_LAYER, Descriptor
from ctl.paths import ref_key

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

FACTORIES: dict[str, Callable[[Path], ContentStore]] = {
    "local": LocalStore,
}


@pytest.fixture(params=sorted(FACTORIES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ContentStore:
    return FACTORIES[request.param](tmp_path / "content")


def describe(data: bytes) -> Descriptor:
    return Descriptor(MEDIA_TYPE_OCI_LAYER, f"sha256:{hashlib.sha256(data).hexdigest()}", len(data))


def commit_blob(store: ContentStore, data: bytes, ref: str = "blob") -> Descriptor:
    desc = describe(data)
    with store.writer(ref, desc) as w:
        w.write(data)
        w.commit(desc.size, desc.digest)
    return desc


def read_all(store: ContentStore, desc: Descriptor) -> bytes:
    with store.reader_at(desc) as f:
        return f.read()


def fork(fn: Callable[[], None]) -> int:
    """fork runs ``fn`` in a child process that shares the store's root; returns its pid."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fn()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    return pid


def wait_exit(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


DATA = b"hello, content store\n" * 100


# Writing and committing


def test_write_commit_info_read(store: ContentStore) -> None:
    desc = describe(DATA)
    before = time.time()
    with store.writer("layer-1", desc) as w:
        assert w.status().offset == 0
        assert w.status().total == desc.size
        assert w.status().expected == desc.digest
        assert w.write(DATA[:100]) == 100
        w.write(DATA[100:])
        assert w.status().offset == len(DATA)
        assert w.digest() == desc.digest
        w.commit(desc.size, desc.digest)
    info = store.info(desc.digest)
    assert (info.digest, info.size, info.labels) == (desc.digest, desc.size, {})
    assert info.created_at >= before - 1
    assert read_all(store, desc) == DATA
    with pytest.raises(NotFound):
        store.status("layer-1")


def test_commit_without_expected_uses_what_was_written(store: ContentStore) -> None:
    with store.writer("unnamed") as w:
        w.write(DATA)
        digest = w.digest()
        w.commit(0, "")
    assert store.info(digest).size == len(DATA)


def test_empty_blob(store: ContentStore) -> None:
    desc = commit_blob(store, b"")
    assert store.info(desc.digest).size == 0
    assert read_all(store, desc) == b""


def test_commit_wrong_digest_discards(store: ContentStore) -> None:
    desc = describe(DATA)
    with store.writer("bad", desc) as w:
        w.write(DATA[:-1] + b"!")
        with pytest.raises(FailedPrecondition, match=desc.digest):
            w.commit(desc.size, desc.digest)
    assert list(store.walk()) == []
    with pytest.raises(NotFound):
        store.status("bad")  # a bad download is never resumed
    with pytest.raises(NotFound):
        store.info(desc.digest)


def test_commit_wrong_size_discards(store: ContentStore) -> None:
    desc = describe(DATA)
    with store.writer("short", desc) as w:
        w.write(DATA[:10])
        with pytest.raises(FailedPrecondition):
            w.commit(desc.size, desc.digest)
    assert list(store.walk()) == []
    assert store.list_statuses() == []


def test_commit_closes_writer(store: ContentStore) -> None:
    desc = describe(DATA)
    w = store.writer("once", desc)
    w.write(DATA)
    w.commit(desc.size, desc.digest)
    with pytest.raises(FailedPrecondition):
        w.write(b"more")
    w.close()  # closing twice is harmless
    # The ref is free again.
    with store.writer("once") as again:
        assert again.status().offset == 0


def test_commit_invalid_expected(store: ContentStore) -> None:
    with store.writer("x") as w:
        w.write(DATA)
        with pytest.raises(InvalidArgument):
            w.commit(len(DATA), "md5:abc")


def test_writer_already_exists(store: ContentStore) -> None:
    desc = commit_blob(store, DATA)
    with pytest.raises(AlreadyExists):
        store.writer("other-ref", desc)
    assert store.list_statuses() == []


def test_commit_exists(store: ContentStore) -> None:
    """Two refs write the same bytes; the second commit finds the blob there."""
    desc = describe(DATA)
    first = store.writer("a", desc)
    second = store.writer("b", desc)
    for w in (first, second):
        w.write(DATA)
    first.commit(desc.size, desc.digest)
    with pytest.raises(AlreadyExists):
        second.commit(desc.size, desc.digest)
    assert store.list_statuses() == []
    assert read_all(store, desc) == DATA


# Resuming


def test_resume_after_close(store: ContentStore) -> None:
    desc = describe(DATA)
    with store.writer("resume", desc) as w:
        w.write(DATA[:300])
    assert store.status("resume").offset == 300
    with store.writer("resume", desc) as w:
        assert w.status().offset == 300
        assert w.digest() == f"sha256:{hashlib.sha256(DATA[:300]).hexdigest()}"
        w.write(DATA[300:])
        w.commit(desc.size, desc.digest)
    assert read_all(store, desc) == DATA


def test_resume_without_desc(store: ContentStore) -> None:
    desc = describe(DATA)
    with store.writer("resume", desc) as w:
        w.write(DATA[:5])
    with store.writer("resume") as w:
        assert w.status().offset == 5
        assert w.status().expected == desc.digest


def test_resume_with_different_expected_restarts(store: ContentStore) -> None:
    old, new = describe(DATA), describe(DATA + b"v2")
    with store.writer("changing", old) as w:
        w.write(DATA[:50])
    with store.writer("changing", new) as w:
        status = w.status()
        assert (status.offset, status.total, status.expected) == (0, new.size, new.digest)
        w.write(DATA + b"v2")
        w.commit(new.size, new.digest)
    assert read_all(store, new) == DATA + b"v2"


def test_truncate(store: ContentStore) -> None:
    desc = describe(DATA)
    with store.writer("t", desc) as w:
        w.write(b"garbage")
        w.truncate(0)
        assert w.status().offset == 0
        assert w.digest() == describe(b"").digest
        with pytest.raises(Unimplemented):
            w.truncate(3)
        w.write(DATA)
        w.commit(desc.size, desc.digest)
    assert read_all(store, desc) == DATA


def test_truncate_persists_for_resume(store: ContentStore) -> None:
    with store.writer("t") as w:
        w.write(b"garbage")
        w.truncate(0)
        w.write(b"ok")
    assert store.status("t").offset == 2


# Ingest management


def test_status_and_list_statuses(store: ContentStore) -> None:
    assert store.list_statuses() == []
    with pytest.raises(NotFound):
        store.status("nothing")
    desc = describe(DATA)
    before = time.time()
    with store.writer("s1", desc) as w:
        w.write(DATA[:7])
    with store.writer("s2") as w:
        w.write(b"abc")
    s1 = store.status("s1")
    assert (s1.ref, s1.offset, s1.total, s1.expected) == ("s1", 7, desc.size, desc.digest)
    assert before - 1 <= s1.started_at <= s1.updated_at <= time.time() + 1
    assert [(s.ref, s.offset) for s in store.list_statuses()] == [("s1", 7), ("s2", 3)]


def test_abort(store: ContentStore) -> None:
    with pytest.raises(NotFound):
        store.abort("nothing")
    with store.writer("ab") as w:
        w.write(b"partial")
        with pytest.raises(Unavailable):
            store.abort("ab")  # its writer holds it
    store.abort("ab")
    with pytest.raises(NotFound):
        store.status("ab")
    with pytest.raises(NotFound):
        store.abort("ab")
    with store.writer("ab") as w:
        assert w.status().offset == 0


def test_ref_is_locked_by_writer(store: ContentStore) -> None:
    with store.writer("busy") as w:
        w.write(b"x")
        start = time.monotonic()
        with pytest.raises(Unavailable):
            store.writer("busy", timeout=0.1)
        assert time.monotonic() - start >= 0.1
    with store.writer("busy", timeout=0) as w:
        assert w.status().offset == 1


def test_invalid_arguments(store: ContentStore) -> None:
    with pytest.raises(InvalidArgument):
        store.writer("")
    bad = Descriptor(MEDIA_TYPE_OCI_LAYER, "sha256:../../etc/passwd", 1)
    with pytest.raises(InvalidArgument):
        store.writer("r", bad)
    with pytest.raises(InvalidArgument):
        store.info("sha256:../x")
    with pytest.raises(InvalidArgument):
        store.reader_at(bad)
    with pytest.raises(InvalidArgument):
        store.delete("sha512:" + "0" * 128)


# Manager: labels, walk, delete


def test_labels(store: ContentStore) -> None:
    desc = describe(DATA)
    with store.writer("l", desc) as w:
        w.write(DATA)
        w.commit(desc.size, desc.digest, labels={"a": "1", "b": "2"})
    assert store.info(desc.digest).labels == {"a": "1", "b": "2"}

    def update(labels: dict[str, str], *paths: str) -> Info:
        info = Info(desc.digest, desc.size, 0.0, 0.0, labels)
        return store.update(info, list(paths) or None)

    assert update({"b": "3", "c": "4"}, "labels.b").labels == {"a": "1", "b": "3"}
    assert update({}, "labels.a").labels == {"b": "3"}  # absent or empty deletes one
    assert update({"x": "y", "z": ""}).labels == {"x": "y"}  # no paths replace all
    assert update({"q": "r"}, "labels").labels == {"q": "r"}
    assert store.info(desc.digest).labels == {"q": "r"}
    with pytest.raises(InvalidArgument):
        update({}, "size")
    assert update({}).labels == {}
    assert store.info(desc.digest).labels == {}
    missing = Info(describe(b"none").digest, 4, 0.0, 0.0, {"a": "b"})
    with pytest.raises(NotFound):
        store.update(missing)


def test_walk(store: ContentStore) -> None:
    assert list(store.walk()) == []
    blobs = [commit_blob(store, f"blob {i}".encode(), ref=f"r{i}") for i in range(3)]
    with store.writer("pending") as w:
        w.write(b"not committed")
    walked = {info.digest: info.size for info in store.walk()}
    assert walked == {d.digest: d.size for d in blobs}


def test_delete(store: ContentStore) -> None:
    desc = describe(DATA)
    with store.writer("d", desc) as w:
        w.write(DATA)
        w.commit(desc.size, desc.digest, labels={"k": "v"})
    store.delete(desc.digest)
    with pytest.raises(NotFound):
        store.info(desc.digest)
    with pytest.raises(NotFound):
        store.reader_at(desc)
    with pytest.raises(NotFound):
        store.delete(desc.digest)
    # Labels went with it: a re-committed blob starts without them.
    commit_blob(store, DATA)
    assert store.info(desc.digest).labels == {}


# Concurrency and crashes


def test_concurrent_writers_download_once(store: ContentStore) -> None:
    """Two processes pull the same blob: the second waits, then finds it committed."""
    desc = describe(DATA)
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()

    def first() -> None:
        with store.writer("pull", desc) as w:
            w.write(DATA[:100])
            os.write(ready_w, b"1")
            # It holds the ref until told, and some time after: however late the second
            # comes to wait, it finds the ref held, and waits.
            os.read(go_r, 1)
            time.sleep(0.2)
            w.write(DATA[100:])
            w.commit(desc.size, desc.digest)

    pid = fork(first)
    assert os.read(ready_r, 1) == b"1"
    with pytest.raises(Unavailable):
        store.writer("pull", desc, timeout=0)
    start = time.monotonic()
    os.write(go_w, b"1")
    with pytest.raises(AlreadyExists):
        store.writer("pull", desc, timeout=10)
    assert time.monotonic() - start > 0.05
    assert wait_exit(pid) == 0
    assert read_all(store, desc) == DATA
    assert store.list_statuses() == []


def test_waiter_gets_a_fresh_ingest_after_commit(store: ContentStore) -> None:
    """A waiter without a descriptor gets the ref, and holds it, after the holder commits."""
    ready_r, ready_w = os.pipe()

    def holder() -> None:
        with store.writer("shared") as w:
            w.write(b"first")
            os.write(ready_w, b"1")
            time.sleep(0.2)
            w.commit(0, "")

    pid = fork(holder)
    assert os.read(ready_r, 1) == b"1"
    with store.writer("shared", timeout=10) as w:
        assert w.status().offset == 0
        with pytest.raises(Unavailable):
            store.writer("shared", timeout=0)
    assert wait_exit(pid) == 0
    assert store.info(describe(b"first").digest).size == 5


def test_kill_mid_write_then_resume(store: ContentStore) -> None:
    desc = describe(DATA)
    ready_r, ready_w = os.pipe()

    def victim() -> None:
        w = store.writer("killed", desc)
        w.write(DATA[:500])
        os.write(ready_w, b"1")
        time.sleep(60)

    pid = fork(victim)
    assert os.read(ready_r, 1) == b"1"
    os.kill(pid, signal.SIGKILL)
    assert wait_exit(pid) == -signal.SIGKILL
    assert [(s.ref, s.offset) for s in store.list_statuses()] == [("killed", 500)]
    with store.writer("killed", desc, timeout=0) as w:
        assert w.status().offset == 500
        w.write(DATA[500:])
        w.commit(desc.size, desc.digest)
    assert read_all(store, desc) == DATA


def churn(store: ContentStore, seed: int) -> None:
    """churn writes, commits, aborts, labels and deletes blobs until killed."""
    rng = random.Random(seed)
    for i in range(10_000):
        data = rng.randbytes(rng.randrange(1, 64 << 10))
        desc = describe(data)
        ref = f"ref-{i % 4}"
        with store.writer(ref, desc) as w:
            for start in range(0, len(data), 4096):
                w.write(data[start : start + 4096])
            if rng.random() < 0.2:
                continue  # left for resume
            w.commit(desc.size, desc.digest, labels={"i": str(i)})
        if rng.random() < 0.3:
            store.update(Info(desc.digest, desc.size, 0.0, 0.0, {"n": str(i)}), ["labels.n"])
        if rng.random() < 0.3:
            store.delete(desc.digest)


@pytest.mark.parametrize("delay_ms", [3, 10, 25, 50, 90, 150])
def test_kill_at_any_moment_leaves_a_readable_store(store: ContentStore, delay_ms: int) -> None:
    pid = fork(lambda: churn(store, delay_ms))
    time.sleep(delay_ms / 1000)
    os.kill(pid, signal.SIGKILL)
    wait_exit(pid)
    for info in store.walk():
        assert set(info.labels) <= {"i", "n"}
        data = read_all(store, Descriptor(MEDIA_TYPE_OCI_LAYER, info.digest, info.size))
        assert describe(data).digest == info.digest  # never a half-written blob
    for status in store.list_statuses():
        with store.writer(status.ref, timeout=0) as w:
            assert w.status().offset == status.offset
        store.abort(status.ref)
    assert store.list_statuses() == []
    commit_blob(store, DATA, ref="ref-0")  # and it takes new writes


# LocalStore specifics


def test_local_creation_is_lazy(tmp_path: Path) -> None:
    root = tmp_path / "content"
    store = LocalStore(root)
    assert list(store.walk()) == []
    assert store.list_statuses() == []
    for call in (
        lambda: store.info(describe(b"").digest),
        lambda: store.status("r"),
        lambda: store.abort("r"),
        lambda: store.delete(describe(b"").digest),
    ):
        with pytest.raises(NotFound):
            call()
    assert not root.exists()


def test_local_blob_is_read_only(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    desc = commit_blob(store, DATA)
    blob = tmp_path / "blobs" / "sha256" / desc.digest.removeprefix("sha256:")
    assert stat.S_IMODE(blob.stat().st_mode) == 0o444


def test_local_layout(tmp_path: Path) -> None:
    store = LocalStore(tmp_path)
    desc = describe(DATA)
    with store.writer("a ref/with odd:chars", desc) as w:
        w.write(DATA[:3])
    (key,) = [p.name for p in (tmp_path / "ingest").iterdir() if p.is_dir()]
    assert len(key) == 64
    record = json.loads((tmp_path / "ingest" / key / "ingest.json").read_text())
    assert record["ref"] == "a ref/with odd:chars" and record["total"] == desc.size
    assert record["expected"] == desc.digest
    assert sorted(os.listdir(tmp_path / "ingest" / key)) == ["data", "ingest.json"]
    assert (tmp_path / "ingest" / f"{key}.lock").exists()
    with store.writer("a ref/with odd:chars", desc) as w:
        w.write(DATA[3:])
        w.commit(desc.size, desc.digest, labels={"x": "y"})
    assert os.listdir(tmp_path / "ingest") == []  # the lock file goes with the ingest
    assert (tmp_path / "labels" / "sha256" / f"{desc.digest[7:]}.json").exists()


def test_local_skips_leftovers(tmp_path: Path) -> None:
    """Dot-named leftovers of a crash are invisible, and the ref's next writer removes them."""
    store = LocalStore(tmp_path)
    commit_blob(store, DATA)
    (tmp_path / "blobs" / "sha256" / ".tmp-123").write_bytes(b"stray")
    with store.writer("r") as w:
        w.write(b"x")
    (key,) = [p.name for p in (tmp_path / "ingest").iterdir() if p.is_dir()]
    for suffix in ("new", "old"):
        leftover = tmp_path / "ingest" / f".{key}.{suffix}"
        leftover.mkdir()
        (leftover / "data").write_bytes(b"half")
    assert [i.digest for i in store.walk()] == [describe(DATA).digest]
    assert [s.ref for s in store.list_statuses()] == ["r"]
    with store.writer("r") as w:
        assert w.status().offset == 1
    assert sorted(os.listdir(tmp_path / "ingest")) == [key, f"{key}.lock"]


def test_local_commit_cut_off_after_rename(tmp_path: Path) -> None:
    """A commit killed between publishing the blob and removing the ingest is cleaned up."""
    store = LocalStore(tmp_path)
    desc = describe(DATA)
    with store.writer("r", desc) as w:
        w.write(DATA)
    ingest = next(p for p in (tmp_path / "ingest").iterdir() if p.is_dir())
    blobs = tmp_path / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    (ingest / "data").rename(blobs / desc.digest.removeprefix("sha256:"))
    assert store.status("r").offset == 0
    with pytest.raises(AlreadyExists):
        store.writer("r", desc)
    assert read_all(store, desc) == DATA
    store.abort("r")
    assert os.listdir(tmp_path / "ingest") == []


def test_local_damaged_records(tmp_path: Path) -> None:
    """Records changed behind the store's back are DataCorrupted, and a writer starts over."""
    store = LocalStore(tmp_path)
    desc = describe(DATA)
    with store.writer("r", desc) as w:
        w.write(DATA[:10])
        w.commit(0, "", labels={"a": "b"})
    ingest = tmp_path / "ingest" / ref_key("r")
    with store.writer("r", desc) as w:
        w.write(DATA[:10])
    (ingest / "ingest.json").write_text('{"ref": "r", "total": "many"}')
    with pytest.raises(DataCorrupted):
        store.status("r")
    with store.writer("r", desc) as w:
        assert w.status().offset == 0
    (tmp_path / "labels" / "sha256" / f"{describe(DATA[:10]).digest[7:]}.json").write_text("{")
    with pytest.raises(DataCorrupted):
        store.info(describe(DATA[:10]).digest)


def test_local_walk_and_list_statuses_go_on_past_damaged_records(tmp_path: Path) -> None:
    """Without on_error a damaged record ends the listing; with it, the rest is listed."""
    store = LocalStore(tmp_path)
    blobs = [commit_blob(store, bytes([n]) * 10, ref=f"b{n}") for n in range(3)]
    damaged = blobs[1].digest
    (tmp_path / "labels" / "sha256").mkdir(parents=True)
    (tmp_path / "labels" / "sha256" / f"{damaged[7:]}.json").write_text("{")
    with pytest.raises(DataCorrupted):
        list(store.walk())
    errors: list[CtlError] = []
    walked = [info.digest for info in store.walk(on_error=errors.append)]
    assert sorted(walked) == sorted(b.digest for b in blobs if b.digest != damaged)
    assert len(errors) == 1 and isinstance(errors[0], DataCorrupted)
    assert damaged in str(errors[0])

    for ref in ("r1", "r2", "r3"):
        with store.writer(ref) as w:
            w.write(b"x")
    (tmp_path / "ingest" / ref_key("r2") / "ingest.json").write_text("{")
    with pytest.raises(DataCorrupted):
        store.list_statuses()
    errors.clear()
    assert [s.ref for s in store.list_statuses(on_error=errors.append)] == ["r1", "r3"]
    assert len(errors) == 1 and isinstance(errors[0], DataCorrupted)
