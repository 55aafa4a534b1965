"""Conformance of VolumeStore implementations (ctl.volumes.VolumeStore)."""

from __future__ import annotations

import multiprocessing
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ctl.errdefs import (
    AlreadyExists,
    DataCorrupted,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from ctl.paths import Paths
from ctl.volumes import ANONYMOUS_LABEL, VolumeStore
from ctl.volumes.local import LocalVolumeStore

# Each factory takes a root directory and the users map the store consults.
FACTORIES: dict[str, Callable[[Path, dict[str, list[str]]], VolumeStore]] = {
    "local": lambda root, users: LocalVolumeStore(Paths(root), lambda n: users.get(n, [])),
}


@pytest.fixture(params=sorted(FACTORIES))
def factory(request: pytest.FixtureRequest) -> Callable[[Path, dict[str, list[str]]], VolumeStore]:
    return FACTORIES[request.param]


@pytest.fixture
def users() -> dict[str, list[str]]:
    return {}


@pytest.fixture
def store(
    factory: Callable[[Path, dict[str, list[str]]], VolumeStore],
    tmp_path: Path,
    users: dict[str, list[str]],
) -> VolumeStore:
    return factory(tmp_path / "root", users)


def test_create_get_list(store: VolumeStore) -> None:
    volume = store.create("data", labels={"a": "b"})
    assert volume.name == "data" and volume.driver == "local"
    assert volume.labels == {"a": "b"} and not volume.anonymous
    assert volume.created_at > 0
    assert Path(volume.mountpoint).is_dir()
    assert store.get("data") == volume
    assert [v.name for v in store.list()] == ["data"]
    inspect = volume.inspect()
    assert sorted(inspect) == [
        "CreatedAt",
        "Driver",
        "Labels",
        "Mountpoint",
        "Name",
        "Options",
        "Scope",
    ]
    assert inspect["Scope"] == "local"


def test_anonymous_volumes(store: VolumeStore) -> None:
    volume = store.create()
    assert re.fullmatch(r"[0-9a-f]{64}", volume.name)
    assert volume.anonymous and ANONYMOUS_LABEL in volume.labels
    assert store.create().name != volume.name


def test_names_are_unique(store: VolumeStore) -> None:
    store.create("data")
    with pytest.raises(AlreadyExists):
        store.create("data")


@pytest.mark.parametrize("name", ["a/b", "../x", "a", "-x", ".hidden", "a b", ""])
def test_invalid_names_touch_nothing(store: VolumeStore, name: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument):
        store.create(name)
    for call in (store.get, store.remove):
        with pytest.raises(InvalidArgument):
            call(name)
    assert list(store.list()) == []
    assert not (tmp_path / "x").exists()


def test_bad_driver_and_options_create_nothing(store: VolumeStore) -> None:
    with pytest.raises(InvalidArgument):
        store.create("data", driver="nfs")
    with pytest.raises(InvalidArgument):
        store.create("data", options={"type": "ext4"})
    assert list(store.list()) == []


def test_options_are_kept(store: VolumeStore) -> None:
    options = {"type": "tmpfs", "o": "size=1m"}
    assert store.create("tm", options=options).options == options
    assert store.get("tm").options == options


def test_remove(store: VolumeStore) -> None:
    volume = store.create("data")
    (Path(volume.mountpoint) / "file").write_text("x")
    assert store.remove("data").name == "data"
    with pytest.raises(NotFound):
        store.get("data")
    with pytest.raises(NotFound):
        store.remove("data")
    assert not Path(volume.mountpoint).exists()
    # The name is free, and a new volume starts empty.
    assert os.listdir(store.create("data").mountpoint) == []


def test_a_volume_in_use_stays(store: VolumeStore, users: dict[str, list[str]]) -> None:
    store.create("data")
    users["data"] = ["web", "db"]
    with pytest.raises(FailedPrecondition, match="db, web"):
        store.remove("data")
    assert store.get("data").name == "data"
    users.clear()
    store.remove("data")


def test_ensure_creates_once_and_fills_empty(store: VolumeStore) -> None:
    filled: list[str] = []

    def fill(data: str) -> None:
        filled.append(data)
        Path(data, "seed").write_text("seed")

    volume, created = store.ensure("data", fill=fill)
    assert created and filled == [volume.mountpoint]
    again, created = store.ensure("data", fill=fill)
    assert again == volume and not created and len(filled) == 1  # not empty any more
    assert (Path(volume.mountpoint) / "seed").read_text() == "seed"


def test_ensure_makes_a_lost_data_directory_again(store: VolumeStore) -> None:
    volume = store.create("data")
    Path(volume.mountpoint).rmdir()
    store.ensure("data")
    assert Path(volume.mountpoint).is_dir()


def test_ensure_does_not_fill_tmpfs_or_bind_volumes(store: VolumeStore, tmp_path: Path) -> None:
    def fill(data: str) -> None:
        raise AssertionError("filled")

    store.ensure("tm", options={"type": "tmpfs"}, fill=fill)
    device = {"type": "none", "device": str(tmp_path), "o": "bind"}
    store.ensure("bd", options=device, fill=fill)
    assert store.get("bd").options == device


def test_hold(store: VolumeStore) -> None:
    with pytest.raises(NotFound), store.hold("data"):
        pass
    store.create("data")
    with store.hold("data") as held, store.hold("data"):
        assert held.name == "data"
    store.remove("data")


def test_a_damaged_record_is_skipped(store: VolumeStore, tmp_path: Path) -> None:
    store.create("good")
    bad = store.create("bad")
    (Path(bad.mountpoint).parent / "volume.json").write_text("{not json")
    warnings: list[str] = []
    assert [v.name for v in store.list(on_error=lambda err: warnings.append(str(err)))] == ["good"]
    assert len(warnings) == 1 and "bad" in warnings[0]
    with pytest.raises(DataCorrupted, match=r"volume\.json"):
        store.get("bad")
    store.remove("bad")
    assert not Path(bad.mountpoint).exists()


def test_usage(store: VolumeStore) -> None:
    volume = store.create("data")
    (Path(volume.mountpoint) / "f").write_bytes(b"x" * 1000)
    os.link(Path(volume.mountpoint) / "f", Path(volume.mountpoint) / "g")
    assert store.usage("data") >= 1000
    assert store.usage("data") < 2000


def _ensure_in_child(
    factory: Callable[[Path, dict[str, list[str]]], VolumeStore], root: Path, out: Path
) -> None:
    def fill(data: str) -> None:
        with open(out, "a") as f:
            f.write(f"{os.getpid()}\n")
        Path(data, "seed").write_text("x")

    _, created = factory(root, {}).ensure("shared", fill=fill)
    with open(out.with_suffix(".created"), "a") as f:
        f.write(f"{int(created)}\n")


def test_concurrent_ensure_creates_once(
    factory: Callable[[Path, dict[str, list[str]]], VolumeStore], tmp_path: Path
) -> None:
    root, out = tmp_path / "root", tmp_path / "fills"
    context = multiprocessing.get_context("fork")
    children = [
        context.Process(target=_ensure_in_child, args=(factory, root, out)) for _ in range(6)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(60)
        assert child.exitcode == 0
    assert len(out.read_text().split()) == 1
    assert sorted(out.with_suffix(".created").read_text().split()) == ["0"] * 5 + ["1"]
    assert [v.name for v in factory(root, {}).list()] == ["shared"]


def _remove_in_child(
    factory: Callable[[Path, dict[str, list[str]]], VolumeStore],
    root: Path,
    out: Path,
    held: Any,
) -> None:
    held.wait(60)
    factory(root, {}).remove("held")
    out.write_text(str(time.monotonic()))


def test_remove_waits_for_a_hold(
    factory: Callable[[Path, dict[str, list[str]]], VolumeStore], tmp_path: Path
) -> None:
    root, out = tmp_path / "root", tmp_path / "removed"
    store = factory(root, {})
    store.create("held")
    context = multiprocessing.get_context("fork")
    held = context.Event()
    # Forked before the hold: a child forked during it would share the hold's lock.
    child = context.Process(target=_remove_in_child, args=(factory, root, out, held))
    child.start()
    with store.hold("held"):
        held.set()
        time.sleep(0.5)
        assert not out.exists() and store.get("held").name == "held"
        released = time.monotonic()
    child.join(60)
    assert child.exitcode == 0 and float(out.read_text()) >= released
    with pytest.raises(NotFound):
        store.get("held")
