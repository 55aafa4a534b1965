"""Conformance of ImageStore implementations (containerd's images.Store semantics)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from ctl.errdefs import AlreadyExists, CtlError, InvalidArgument, NotFound
from ctl.images.image import Image, ImageStore
from ctl.images.store import LocalImageStore
from ctl.oci import MEDIA_TYPE_OCI_MANIFEST, Descriptor

FACTORIES: dict[str, Callable[[Path], ImageStore]] = {
    "local": lambda root: LocalImageStore(root / "images", root / "images.lock"),
}

A = Descriptor(MEDIA_TYPE_OCI_MANIFEST, "sha256:" + "a" * 64, 10)
B = Descriptor(MEDIA_TYPE_OCI_MANIFEST, "sha256:" + "b" * 64, 20)
NAME = "docker.io/library/busybox:latest"


@pytest.fixture(params=sorted(FACTORIES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ImageStore:
    return FACTORIES[request.param](tmp_path)


def test_create_get_list(store: ImageStore) -> None:
    created = store.create(Image(NAME, A, {"k": "v"}))
    assert created.created_at > 0 and created.updated_at == created.created_at
    got = store.get(NAME)
    assert got.target == A and got.labels == {"k": "v"}
    assert [i.name for i in store.list()] == [NAME]


def test_create_twice_is_already_exists(store: ImageStore) -> None:
    store.create(Image(NAME, A))
    with pytest.raises(AlreadyExists):
        store.create(Image(NAME, B))
    assert store.get(NAME).target == A


def test_missing_is_not_found(store: ImageStore) -> None:
    with pytest.raises(NotFound):
        store.get(NAME)
    with pytest.raises(NotFound):
        store.delete(NAME)
    with pytest.raises(NotFound):
        store.update(Image(NAME, A))
    assert list(store.list()) == []


def test_update_target_and_labels(store: ImageStore) -> None:
    store.create(Image(NAME, A, {"keep": "1", "drop": "2"}))
    store.update(Image(NAME, B), ["target"])
    assert store.get(NAME).target == B
    assert store.get(NAME).labels == {"keep": "1", "drop": "2"}
    store.update(Image(NAME, B, {"drop": "", "new": "3"}), ["labels.drop", "labels.new"])
    assert store.get(NAME).labels == {"keep": "1", "new": "3"}
    with pytest.raises(InvalidArgument):
        store.update(Image(NAME, B), ["name"])


def test_delete(store: ImageStore) -> None:
    store.create(Image(NAME, A))
    store.create(Image("example.com/x:1", B))
    store.delete(NAME)
    assert [i.name for i in store.list()] == ["example.com/x:1"]


def test_empty_name_is_invalid(store: ImageStore) -> None:
    with pytest.raises(InvalidArgument):
        store.create(Image("", A))


def test_concurrent_creates_one_wins(store: ImageStore) -> None:
    pids = []
    for target in (A, B, A, B):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                store.create(Image(NAME, target))
            except AlreadyExists:
                code = 3
            os._exit(code)
        pids.append(pid)
    codes = sorted(os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in pids)
    assert codes == [0, 3, 3, 3]
    assert store.get(NAME).target in (A, B)


# Records come from disk: each way a file can be damaged, written over one
# image's record, must leave the other images readable.
DAMAGE = {
    "empty": b"",
    "half": b'{"name": "docker.io/library/busybox:latest", "tar',
    "null": b"null",
    "list": b'["not", "an", "image"]',
    "no target": b'{"name": "docker.io/library/busybox:latest"}',
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_record(
    store: ImageStore, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    store.create(Image(NAME, A))
    (record,) = tmp_path.rglob("*.json")
    record.write_bytes(DAMAGE[damage])
    store.create(Image("example.com/x:1", B))
    assert [i.name for i in store.list()] == ["example.com/x:1"]
    assert capsys.readouterr().err.startswith(f"ctl: warning: {record}: ")
    with pytest.raises(CtlError, match=re.escape(str(record))):
        store.get(NAME)
    assert store.get("example.com/x:1").target == B
