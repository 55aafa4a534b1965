"""Conformance of ContainerStore implementations."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Callable
from pathlib import Path

import pytest

from ctl.containers.container import Container, RunConfig
from ctl.containers.protocol import ContainerStore
from ctl.containers.store import LocalContainerStore
from ctl.errdefs import AlreadyExists, CtlError, InvalidArgument, NotFound

FACTORIES: dict[str, Callable[[Path], ContainerStore]] = {
    "local": lambda root: LocalContainerStore(root / "containers", root / "containers.lock"),
}


@pytest.fixture(params=sorted(FACTORIES))
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ContainerStore:
    return FACTORIES[request.param](tmp_path)


def _container(name: str, container_id: str | None = None) -> Container:
    return Container(
        id=container_id or secrets.token_hex(32),
        name=name,
        image="docker.io/library/busybox:latest",
        snapshotter="overlayfs",
        snapshot_key="k",
        spec={"ociVersion": "1.0.2"},
        config=RunConfig(tty=False),
        labels={"a": "b"},
    )


def test_create_and_get_by_id_name_and_prefix(store: ContainerStore) -> None:
    created = store.create(_container("web"))
    assert created.created_at > 0
    assert store.get(created.id) == created
    assert store.get("web") == created
    assert store.get(created.id[:12]) == created
    assert [c.id for c in store.list()] == [created.id]


def test_names_and_ids_are_unique(store: ContainerStore) -> None:
    first = store.create(_container("web"))
    with pytest.raises(AlreadyExists):
        store.create(_container("web"))
    with pytest.raises(AlreadyExists):
        store.create(_container("other", first.id))


def test_delete_frees_the_name(store: ContainerStore) -> None:
    first = store.create(_container("web"))
    store.delete(first.id)
    with pytest.raises(NotFound):
        store.get("web")
    with pytest.raises(NotFound):
        store.delete(first.id)
    store.create(_container("web"))


def test_missing_and_ambiguous(store: ContainerStore) -> None:
    with pytest.raises(NotFound):
        store.get("nothing")
    a = _container("a", "ab" + "0" * 62)
    b = _container("b", "ab" + "1" * 62)
    store.create(a)
    store.create(b)
    with pytest.raises(InvalidArgument):
        store.get("ab")
    assert store.get("ab0").id == a.id


def test_invalid_names_and_ids(store: ContainerStore) -> None:
    with pytest.raises(InvalidArgument):
        store.create(_container("../x"))
    with pytest.raises(InvalidArgument):
        store.create(_container("ok", "not-hex"))


def test_update(store: ContainerStore) -> None:
    created = store.create(_container("web"))
    store.update(created.updated(labels={"x": "y"}, config=RunConfig(rm=True)), ["labels"])
    got = store.get("web")
    assert got.labels == {"x": "y"} and got.config == RunConfig(tty=False)
    with pytest.raises(InvalidArgument):
        store.update(created, ["image"])


def test_update_renames(store: ContainerStore) -> None:
    web = store.create(_container("web"))
    store.create(_container("db", "b" * 64))
    with pytest.raises(AlreadyExists):
        store.update(web._replace(name="db"), ["name"])
    with pytest.raises(InvalidArgument):
        store.update(web._replace(name="../x"), ["name"])
    store.update(web._replace(name="front"), ["name"])
    assert store.get("front").id == web.id
    with pytest.raises(NotFound):
        store.get("web")
    store.create(_container("web", "c" * 64))  # the old name is free


def test_concurrent_creates_get_distinct_names(store: ContainerStore) -> None:
    pids = []
    for i in range(20):
        pid = os.fork()
        if pid == 0:
            try:
                store.create(_container(f"c{i % 10}"))
                os._exit(0)
            except AlreadyExists:
                os._exit(3)
        pids.append(pid)
    codes = sorted(os.waitstatus_to_exitcode(os.waitpid(p, 0)[1]) for p in pids)
    assert codes == [0] * 10 + [3] * 10
    assert sorted(c.name for c in store.list()) == sorted(f"c{i}" for i in range(10))


# Records come from disk: each way a file can be damaged, written over one
# container's record, must leave the other containers readable.
DAMAGE = {
    "empty": b"",
    "half": b'{"id": "0123", "na',
    "null": b"null",
    "list": b'["not", "a", "container"]',
    "no name": b'{"id": "0123"}',
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_record(
    store: ContainerStore, tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    damaged = store.create(_container("web"))
    (record,) = tmp_path.rglob("*.json")
    record.write_bytes(DAMAGE[damage])
    other = store.create(_container("db"))
    assert [c.id for c in store.list()] == [other.id]
    assert capsys.readouterr().err.startswith(f"ctl: warning: {record}: ")
    for ref in (damaged.id, "web", damaged.id[:12]):
        with pytest.raises(CtlError, match=re.escape(str(record))):
            store.get(ref)
    assert store.get("db") == other
