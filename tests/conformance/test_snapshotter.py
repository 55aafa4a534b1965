"""Conformance of every Snapshotter, ported from containerd's snapshotter test suite.

Each test runs against every implementation (``SNAPSHOTTERS``): each backend,
and each backend through ``NamespacedSnapshotter``, the wrapper the client
uses (as containerd runs its suite through its metadata store). A test gets
a fresh backend ``root/`` and a separate ``work/`` for mount points and the
flat reference directories. Mounts are real (overlayfs, binds): these tests need
root, and fail rather than skip without it. Everything still mounted under
the test's directory is unmounted at teardown, pass or fail.

Names follow containerd's ``core/snapshots/testsuite`` (``Basic``,
``StatActive``... ``128LayersMount``); the tests after those cover usage,
errors, concurrency, crash recovery and what the mounts show of modes,
owners, xattrs, devices, hard links and whiteouts.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ctl.errdefs import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from ctl.snapshots import Info, Kind, Mount, Snapshotter, Usage
from ctl.snapshots.mount import compact_lowerdir, mount_all, mounted, unmount
from ctl.snapshots.namespaced import NamespacedSnapshotter
from ctl.snapshots.native import NativeSnapshotter
from ctl.snapshots.overlay import OverlaySnapshotter, supported
from ctl.snapshots.storage import StoreSnapshotter

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

# Real mounts need root; conftest fails (never skips) these tests without it.
pytestmark = pytest.mark.needs_root

REPO = Path(__file__).resolve().parents[2]
BACKENDS: dict[str, Callable[[Path], StoreSnapshotter]] = {
    "overlayfs": OverlaySnapshotter,
    "native": NativeSnapshotter,
}
# The namespace the wrapped implementations use; "" runs the backend bare.
WRAPPED_NAMESPACE = "conformance"
SNAPSHOTTERS: dict[str, tuple[str, str]] = {
    **{name: (name, "") for name in BACKENDS},
    **{f"namespaced-{name}": (name, WRAPPED_NAMESPACE) for name in BACKENDS},
}
# containerd's tests label everything so that its GC leaves it alone; kept to
# check that labels pass through every call.
GC_ROOT = {"containerd.io/gc.root": "2026-01-01T00:00:00Z"}


# ---- fixture ----


@dataclasses.dataclass
class Env:
    """Env is one test's snapshotter ``sn``, over ``backend`` (the same object when bare)."""

    backend_name: str
    namespace: str
    backend: StoreSnapshotter
    sn: Snapshotter
    root: Path
    work: Path
    counter: int = 0

    def mount(self, mounts: list[Mount], target: Path | None = None) -> Path:
        """mount mounts on ``target`` (default: a new directory in work)."""
        if target is None:
            self.counter += 1
            target = self.work / f"mnt-{self.counter}"
        target.mkdir(parents=True, exist_ok=True)
        mount_all(mounts, target)
        return target

    def tmpdir(self, prefix: str) -> Path:
        self.counter += 1
        path = self.work / f"{prefix}-{self.counter}"
        path.mkdir()
        return path

    def snapshot_dirs(self) -> set[str]:
        return set(os.listdir(self.root / "snapshots"))

    def recorded_ids(self) -> set[str]:
        data = json.loads((self.root / "metadata.json").read_text())
        return {str(rec["id"]) for rec in data["snapshots"].values()}


def _mount_points_under(path: Path) -> list[str]:
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].encode().decode("unicode_escape")
            if point == str(path) or point.startswith(f"{path}/"):
                points.append(point)
    return points


@pytest.fixture(params=list(SNAPSHOTTERS))
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    root = tmp_path / "root"
    work = tmp_path / "work"
    work.mkdir()
    backend_name, namespace = SNAPSHOTTERS[request.param]
    backend = BACKENDS[backend_name](root)
    sn = NamespacedSnapshotter(backend, namespace) if namespace else backend
    e = Env(backend_name, namespace, backend, sn, root, work)
    try:
        yield e
    finally:
        for point in sorted(_mount_points_under(tmp_path), key=len, reverse=True):
            unmount(point, detach=True)


# ---- appliers: small filesystem changes, applied alike to mounts and flat dirs ----


def apply(*appliers: Callable[[Path], None]) -> Callable[[Path], None]:
    def run(root: Path) -> None:
        for a in appliers:
            a(root)

    return run


def create_file(name: str, data: bytes, mode: int) -> Callable[[Path], None]:
    def run(root: Path) -> None:
        path = root / name.lstrip("/")
        path.write_bytes(data)
        os.chmod(path, mode)

    return run


def create_dir(name: str, mode: int) -> Callable[[Path], None]:
    def run(root: Path) -> None:
        path = root / name.lstrip("/")
        path.mkdir()
        os.chmod(path, mode)

    return run


def remove_all(name: str) -> Callable[[Path], None]:
    def run(root: Path) -> None:
        path = root / name.lstrip("/")
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif os.path.lexists(path):
            path.unlink()

    return run


def chown(name: str, uid: int, gid: int) -> Callable[[Path], None]:
    return lambda root: os.lchown(root / name.lstrip("/"), uid, gid)


def chmod(name: str, mode: int) -> Callable[[Path], None]:
    return lambda root: os.chmod(root / name.lstrip("/"), mode)


def link(old: str, new: str) -> Callable[[Path], None]:
    return lambda root: os.link(root / old.lstrip("/"), root / new.lstrip("/"))


def symlink(target: str, name: str) -> Callable[[Path], None]:
    return lambda root: os.symlink(target, root / name.lstrip("/"))


def rename(old: str, new: str) -> Callable[[Path], None]:
    return lambda root: os.rename(root / old.lstrip("/"), root / new.lstrip("/"))


def setxattr(name: str, key: str, value: bytes) -> Callable[[Path], None]:
    return lambda root: os.setxattr(root / name.lstrip("/"), key, value, follow_symlinks=False)


def mknod(name: str, mode: int, major: int = 0, minor: int = 0) -> Callable[[Path], None]:
    return lambda root: os.mknod(root / name.lstrip("/"), mode, os.makedev(major, minor))


# ---- comparing trees ----


def manifest(root: Path) -> tuple[dict[str, tuple[Any, ...]], list[list[str]]]:
    """manifest describes every entry under ``root`` (not root itself) and its hard links."""
    entries: dict[str, tuple[Any, ...]] = {}
    inodes: dict[int, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            st = os.lstat(path)
            content: Any = None
            if stat.S_ISREG(st.st_mode):
                content = path.read_bytes()
                inodes.setdefault(st.st_ino, []).append(rel)
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(path)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                content = st.st_rdev
            xattrs = {
                k: os.getxattr(path, k, follow_symlinks=False)
                for k in sorted(os.listxattr(path, follow_symlinks=False))
                if not k.startswith("security.selinux")
            }
            entries[rel] = (st.st_mode, st.st_uid, st.st_gid, content, xattrs)
    links = sorted(sorted(paths) for paths in inodes.values() if len(paths) > 1)
    return entries, links


def assert_same_tree(expected: Path, actual: Path) -> None:
    want, want_links = manifest(expected)
    got, got_links = manifest(actual)
    assert sorted(got) == sorted(want), f"{actual} has other entries than {expected}"
    for rel, entry in want.items():
        assert got[rel] == entry, f"{rel}: {got[rel]} != {entry}"
    assert got_links == want_links


# ---- containerd's helpers: chains of snapshots checked against a flat dir ----


def create_snapshot(
    e: Env, parent: str, applier: Callable[[Path], None], name: str | None = None
) -> str:
    e.counter += 1
    name = name or f"snapshot {e.counter} sha256:{e.counter:064x}"
    key = f"extract-{e.counter} {name}"
    target = e.mount(e.sn.prepare(key, parent, labels=GC_ROOT))
    try:
        applier(target)
    finally:
        unmount(target)
    e.sn.commit(name, key, labels=GC_ROOT)
    return name


def check_snapshot(e: Env, name: str, expected: Path) -> None:
    view = f"{name}-view"
    target = e.mount(e.sn.view(view, name, labels=GC_ROOT))
    try:
        assert_same_tree(expected, target)
    finally:
        unmount(target)
        e.sn.remove(view)


def check_snapshots(e: Env, *appliers: Callable[[Path], None]) -> list[str]:
    flat = e.tmpdir("flat")
    parent = ""
    names = []
    for applier in appliers:
        parent = create_snapshot(e, parent, applier)
        applier(flat)
        check_snapshot(e, parent, flat)
        names.append(parent)
    return names


def prepare_mount(e: Env, key: str, parent: str = "") -> Path:
    return e.mount(e.sn.prepare(key, parent, labels=GC_ROOT))


# ---- containerd's checklist ----


def test_basic(env: Env) -> None:
    initial = apply(
        create_file("/foo", b"foo\n", 0o777),
        create_dir("/a", 0o755),
        create_dir("/a/b", 0o755),
        create_dir("/a/b/c", 0o755),
    )
    diff = apply(
        create_file("/bar", b"bar\n", 0o777),
        create_file("/foo", b"bar\n", 0o777),
        remove_all("/a/b"),
    )
    sn, work = env.sn, env.work
    preparing = str(work / "preparing")
    target = prepare_mount(env, preparing)
    initial(target)
    unmount(target)

    committed = str(work / "committed")
    sn.commit(committed, preparing, labels=GC_ROOT)
    si = sn.stat(committed)
    assert si.parent == ""
    assert si.kind is Kind.COMMITTED
    with pytest.raises(NotFound):
        sn.stat(preparing)

    nxt = str(work / "nextlayer")
    target = prepare_mount(env, nxt, committed)
    flat = env.tmpdir("flat")
    initial(flat)
    assert_same_tree(flat, target)
    diff(target)
    unmount(target)

    ni = sn.stat(nxt)
    assert ni.parent == committed
    assert ni.kind is Kind.ACTIVE

    next_committed = str(work / "committed-next")
    sn.commit(next_committed, nxt, labels=GC_ROOT)
    si2 = sn.stat(next_committed)
    assert si2.parent == committed
    assert si2.kind is Kind.COMMITTED
    with pytest.raises(NotFound):
        sn.stat(nxt)

    walked = {info.name: info for info in sn.walk()}
    assert walked == {si.name: si, si2.name: si2}

    nextnext = str(work / "nextnextlayer")
    target = env.mount(sn.view(nextnext, next_committed, labels=GC_ROOT))
    diff(flat)
    assert_same_tree(flat, target)
    unmount(target)
    sn.remove(nextnext)

    with pytest.raises(FailedPrecondition):
        sn.remove(committed)
    sn.remove(next_committed)
    sn.remove(committed)
    assert list(sn.walk()) == []


def test_stat_active(env: Env) -> None:
    preparing = str(env.work / "preparing")
    target = prepare_mount(env, preparing)
    (target / "foo").write_bytes(b"foo\n")
    si = env.sn.stat(preparing)
    assert (si.name, si.kind, si.parent) == (preparing, Kind.ACTIVE, "")
    assert si.labels == GC_ROOT


def test_stat_committed(env: Env) -> None:
    preparing = str(env.work / "preparing")
    target = prepare_mount(env, preparing)
    (target / "foo").write_bytes(b"foo\n")
    committed = str(env.work / "committed")
    env.sn.commit(committed, preparing, labels=GC_ROOT)
    si = env.sn.stat(committed)
    assert (si.name, si.kind, si.parent) == (committed, Kind.COMMITTED, "")
    assert json.loads(json.dumps(si.to_json()))["kind"] == "committed"


def test_transitivity(env: Env) -> None:
    sn, work = env.sn, env.work
    target = prepare_mount(env, "preparing")
    (target / "foo").write_bytes(b"foo\n")
    unmount(target)
    snap_a = str(work / "snapA")
    sn.commit(snap_a, "preparing")

    target = prepare_mount(env, "next", snap_a)
    (target / "foo").write_bytes(b"foo bar\n")
    unmount(target)
    snap_b = str(work / "snapB")
    sn.commit(snap_b, "next")

    si_a, si_b = sn.stat(snap_a), sn.stat(snap_b)
    assert si_a.parent == ""
    assert si_b.parent == snap_a
    assert sn.stat(si_b.parent).parent == ""


def test_prepare_view_failing(env: Env) -> None:
    sn = env.sn
    sn.prepare("preparing", "")
    sn.commit("snapA", "preparing")

    sn.prepare("newlayer", "snapA")
    with pytest.raises(AlreadyExists):
        sn.view("newlayer", "snapA")
    sn.prepare("prepLayer", "snapA")
    with pytest.raises(AlreadyExists):
        sn.prepare("prepLayer", "snapA")
    sn.view("viewLayer", "snapA")
    with pytest.raises(AlreadyExists):
        sn.view("viewLayer", "snapA")
    # a committed name is taken too: keys and names share one key space
    with pytest.raises(AlreadyExists):
        sn.prepare("snapA", "")


def _base_test_snapshots(sn: Snapshotter) -> None:
    sn.prepare("c1-a", "", labels=GC_ROOT)
    sn.commit("c1", "c1-a", labels=GC_ROOT)
    sn.prepare("c2-a", "c1", labels=GC_ROOT)
    sn.commit("c2", "c2-a", labels=GC_ROOT)
    sn.prepare("a1", "c2", labels=GC_ROOT)
    sn.prepare("a2", "", labels=GC_ROOT)
    sn.view("v1", "c2", labels=GC_ROOT)
    sn.view("v2", "", labels=GC_ROOT)


def test_update(env: Env) -> None:
    sn = env.sn
    t1 = time.time()
    _base_test_snapshots(sn)
    t2 = time.time()
    cases = [
        ("c1", Kind.COMMITTED, ""),
        ("c2", Kind.COMMITTED, "c1"),
        ("a1", Kind.ACTIVE, "c2"),
        ("a2", Kind.ACTIVE, ""),
        ("v1", Kind.VIEW, "c2"),
        ("v2", Kind.VIEW, ""),
    ]
    for name, kind, parent in cases:
        st = sn.stat(name)
        assert t1 <= st.created_at <= t2
        assert st.updated_at == st.created_at
        assert (st.kind, st.parent, st.name) == (kind, parent, name)

        created = st.created_at
        root_time = str(time.time())
        expected = {"l1": "v1", "l2": "v2", "l3": "v3", "containerd.io/gc.root": root_time}
        u1 = time.time()
        st = sn.update(st._replace(parent="doesnotexist", labels=expected))
        u2 = time.time()
        assert st.created_at == created
        assert u1 <= st.updated_at <= u2
        assert (st.kind, st.parent, st.name) == (kind, parent, name)
        assert st.labels == expected
        assert sn.stat(name) == st

        st = sn.update(
            st._replace(labels={"l1": "updated", "l4": "v4"}),
            ["labels.l1", "labels.l2"],
        )
        assert st.labels == {"l1": "updated", "l3": "v3", "containerd.io/gc.root": root_time}

        expected = {"l4": "v4", "containerd.io/gc.root": root_time}
        st = sn.update(st._replace(labels=expected), ["labels"])
        assert st.labels == expected

        with pytest.raises(InvalidArgument):
            sn.update(st._replace(parent="doesnotexist"), ["parent"])
        assert sn.stat(name) == st


def test_remove(env: Env) -> None:
    sn = env.sn
    sn.prepare("committed-a", "")
    sn.commit("committed-1", "committed-a")
    sn.prepare("reuse-1", "committed-1")
    sn.remove("reuse-1")
    sn.view("reuse-1", "committed-1")
    sn.remove("reuse-1")
    sn.prepare("reuse-1", "")
    sn.remove("committed-1")
    sn.commit("committed-1", "reuse-1")
    assert sn.stat("committed-1").kind is Kind.COMMITTED
    with pytest.raises(NotFound):
        sn.remove("reuse-1")


def test_walk(env: Env) -> None:
    sn = env.sn
    root = {"containerd.io/gc.root": "check-walk"}
    sn.prepare("a-np", "", labels=root)
    sn.prepare("p-tmp", "", labels=root)
    sn.commit("p", "p-tmp", labels=root)
    sn.prepare("a", "p", labels=root)
    sn.view("v", "p", labels=root)
    sn.prepare("p-wl-tmp", "", labels=root)
    sn.commit("p-wl", "p-wl-tmp", labels={"l": "1", **root})
    sn.prepare("a-wl", "p-wl", labels={"l": "2", **root})
    sn.view("v-wl", "p-wl", labels={"l": "3", **root})
    sn.prepare("a-np-wl", "", labels={"l": "2", **root})

    cases: list[tuple[list[str], list[str]]] = [
        (
            ["a-np", "p", "a", "v", "p-wl", "a-wl", "v-wl", "a-np-wl"],
            ['labels."containerd.io/gc.root"==check-walk'],
        ),
        (
            ["a-np", "a", "a-wl", "a-np-wl"],
            ['kind==active,labels."containerd.io/gc.root"==check-walk'],
        ),
        (["v", "v-wl"], ['kind==view,labels."containerd.io/gc.root"==check-walk']),
        (["p", "p-wl"], ['kind==committed,labels."containerd.io/gc.root"==check-walk']),
        (["p", "a-np-wl"], ["name==p", "name==a-np-wl"]),
        (["a-wl"], ["name==a-wl,labels.l"]),
        (["a", "v"], ["parent==p"]),
        (["a", "v", "a-wl", "v-wl"], ['parent!="",labels."containerd.io/gc.root"==check-walk']),
        (["p-wl", "a-wl", "v-wl", "a-np-wl"], ["labels.l"]),
        (["a-wl", "a-np-wl"], ["labels.l==2"]),
        (["a-wl", "a-np-wl", "a-np"], ["name~=/^a-np|-wl$/,kind==active"]),
        (["p", "p-wl"], ["name~=^p"]),
    ]
    for matches, filters in cases:
        assert sorted(i.name for i in sn.walk(filters)) == sorted(matches), filters
    assert len(list(sn.walk())) == 8  # 8 snapshots, the -tmp keys are gone
    for bad in ('name=="unterminated', "kind==active,,name==x", "name~=("):
        with pytest.raises(InvalidArgument):
            sn.walk([bad])


def test_layer_file_update(env: Env) -> None:
    l1 = apply(
        create_dir("/etc", 0o700),
        create_file("/etc/hosts", b"mydomain 10.0.0.1", 0o644),
        create_file("/etc/profile", b"PATH=/usr/bin", 0o644),
    )
    l2 = apply(
        create_file("/etc/hosts", b"mydomain 10.0.0.2", 0o644),
        create_file("/etc/profile", b"PATH=/usr/bin", 0o666),
        create_dir("/root", 0o700),
        create_file("/root/.bashrc", b"PATH=/usr/sbin:/usr/bin", 0o644),
    )
    # containerd runs this 5 times across second boundaries (a tar mtime bug);
    # snapshots do not go through tar, twice is enough to show independence.
    for _ in range(2):
        check_snapshots(env, l1, l2)


def test_remove_directory_in_lower_layer(env: Env) -> None:
    check_snapshots(
        env,
        apply(create_dir("/lib", 0o700), create_file("/lib/hidden", b"", 0o644)),
        apply(
            remove_all("/lib"),
            create_dir("/lib", 0o700),
            create_file("/lib/not-hidden", b"", 0o644),
        ),
        apply(create_file("/lib/newfile", b"", 0o644)),
    )


def test_chown(env: Env) -> None:
    check_snapshots(
        env,
        apply(
            create_dir("/opt", 0o700),
            create_dir("/opt/a", 0o700),
            create_dir("/opt/a/b", 0o700),
            create_file("/opt/a/b/file.txt", b"hello", 0o644),
        ),
        apply(
            chown("/opt", 1, 1),
            chown("/opt/a", 1, 1),
            chown("/opt/a/b", 1, 1),
            chown("/opt/a/b/file.txt", 1, 1),
        ),
    )


def test_directory_permission_on_commit(env: Env) -> None:
    check_snapshots(
        env,
        apply(
            create_dir("/dir1", 0o700),
            create_dir("/dir2", 0o700),
            create_dir("/dir3", 0o700),
            create_dir("/dir4", 0o700),
            create_file("/dir4/f1", b"...", 0o644),
            create_dir("/dir5", 0o700),
            create_file("/dir5/f1", b"...", 0o644),
            chown("/dir1", 1, 1),
            chown("/dir2", 1, 1),
            chown("/dir3", 1, 1),
            chown("/dir5", 1, 1),
            chown("/dir5/f1", 1, 1),
        ),
        apply(
            chown("/dir2", 0, 0),
            remove_all("/dir3"),
            chown("/dir4", 1, 1),
            chown("/dir4/f1", 1, 1),
        ),
        apply(
            create_dir("/dir3", 0o700),
            chown("/dir3", 1, 1),
            remove_all("/dir5"),
            create_dir("/dir5", 0o700),
            chown("/dir5", 1, 1),
        ),
    )


def test_remove_intermediate_snapshot(env: Env) -> None:
    sn = env.sn
    target = prepare_mount(env, "base")
    unmount(target)
    sn.commit("committed-base", "base")
    sn.prepare("intermediate", "committed-base")
    sn.commit("committed-inter", "intermediate")
    sn.prepare("toplayer", "committed-inter")

    with pytest.raises(FailedPrecondition):
        sn.remove("committed-inter")
    sn.remove("toplayer")
    sn.remove("committed-inter")
    sn.remove("committed-base")


def test_deleted_files_in_child_snapshot(env: Env) -> None:
    check_snapshots(
        env,
        apply(create_file("/foo", b"foo\n", 0o777), create_file("/foobar", b"foobar\n", 0o777)),
        apply(remove_all("/foobar")),
        apply(),
    )


def test_move_file_from_lower_layer(env: Env) -> None:
    check_snapshots(
        env,
        apply(
            create_dir("/dir1", 0o700),
            create_file("/dir1/f1", b"Hello", 0o644),
            create_dir("dir2", 0o700),
            create_file("dir2/f2", b"...", 0o644),
        ),
        apply(
            create_dir("/dir3", 0o700),
            create_file("/dir3/f1", b"Hello", 0o644),
            remove_all("/dir1"),
            link("dir2/f2", "dir3/f2"),
            remove_all("dir2/f2"),
        ),
    )


def test_view_readonly(env: Env) -> None:
    sn = env.sn
    sn.prepare("preparing", "")
    sn.commit("committed", "preparing")
    target = env.mount(sn.view("view", "committed"))
    with pytest.raises(OSError) as exc:
        (target / "testfile").write_bytes(b"testcontent")
    assert exc.value.errno == errno.EROFS
    unmount(target)
    sn.remove("view")
    sn.remove("committed")


def test_stat_in_walk(env: Env) -> None:
    sn, prefix = env.sn, "stats-in-walk-"
    sn.prepare(f"{prefix}c1-a", "")
    sn.commit(f"{prefix}c1", f"{prefix}c1-a")
    sn.prepare(f"{prefix}c2-a", f"{prefix}c1")
    sn.commit(f"{prefix}c2", f"{prefix}c2-a")
    sn.prepare(f"{prefix}a1", f"{prefix}c2")
    sn.view(f"{prefix}v1", f"{prefix}c2")
    seen = 0
    for info in sn.walk():
        assert sn.stat(info.name) == info
        # changing the store while walking is allowed too
        sn.update(info._replace(labels={"walked": "yes"}))
        seen += 1
    assert seen == 4


def test_close_twice(env: Env) -> None:
    sn = env.sn
    sn.prepare("closeTwice-prepare", "")
    sn.commit("closeTwice", "closeTwice-prepare")
    sn.remove("closeTwice")
    sn.close()
    sn.close()


def test_root_permission(env: Env) -> None:
    target = prepare_mount(env, "preparing")
    st = os.stat(target)
    assert stat.S_IMODE(st.st_mode) == 0o755
    assert (st.st_uid, st.st_gid) == (0, 0)


def test_128_layers_mount(env: Env) -> None:
    sn = env.sn
    appliers = [
        apply(
            create_file("/bottom", b"way at the bottom\n", 0o777),
            create_file("/overwriteme", b"FIRST!\n", 0o777),
            create_dir("/addhere", 0o755),
            create_dir("/onlyme", 0o755),
            create_file("/onlyme/bottom", b"bye!\n", 0o777),
        )
    ]
    for i in range(1, 128):
        appliers.append(
            apply(
                create_file("/overwriteme", f"{i} WAS HERE!\n".encode(), 0o777),
                create_file(f"/addhere/file-{i}", b"same\n", 0o755),
                remove_all("/onlyme"),
                create_dir("/onlyme", 0o755),
                create_file(f"/onlyme/file-{i}", b"only me!\n", 0o777),
            )
        )
    flat = env.tmpdir("flat")
    parent = ""
    for i, applier in enumerate(appliers):
        key = f"prepare-layer-{i}"
        mounts = sn.prepare(key, parent, labels=GC_ROOT)
        target = env.mount(mounts)
        if i in (0, 1, 64, 127):  # comparing every layer costs more than it shows
            assert_same_tree(flat, target)
        applier(flat)
        applier(target)
        assert_same_tree(flat, target)
        unmount(target)
        parent = f"committed-{i}"
        sn.commit(parent, key, labels=GC_ROOT)

    mounts = sn.view("fullview", parent, labels=GC_ROOT)
    if env.backend_name == "overlayfs":
        # the options are far over the kernel's one-page limit: mounting works
        # only because the mount helper shortens them
        assert len(",".join(mounts[0].options)) > os.sysconf("SC_PAGE_SIZE")
    target = env.mount(mounts)
    assert_same_tree(flat, target)


# ---- beyond containerd's checklist ----


def test_errors(env: Env) -> None:
    sn = env.sn
    with pytest.raises(NotFound):
        sn.stat("missing")
    with pytest.raises(NotFound):
        sn.usage("missing")
    with pytest.raises(NotFound):
        sn.mounts("missing")
    with pytest.raises(NotFound):
        sn.remove("missing")
    with pytest.raises(NotFound):
        sn.update(Info(kind=Kind.ACTIVE, name="missing"))
    with pytest.raises(NotFound):
        sn.prepare("child", "missing-parent")
    with pytest.raises(NotFound):
        sn.view("child", "missing-parent")
    with pytest.raises(NotFound):
        sn.commit("name", "missing")
    with pytest.raises(InvalidArgument):
        sn.prepare("", "")

    sn.prepare("active", "")
    sn.view("view", "")
    with pytest.raises(FailedPrecondition):
        sn.prepare("child", "active")  # the parent must be committed
    with pytest.raises(FailedPrecondition):
        sn.view("child", "view")
    with pytest.raises(FailedPrecondition):
        sn.commit("from-view", "view")
    with pytest.raises(FailedPrecondition):
        sn.apply_target("view")

    sn.commit("committed", "active")
    with pytest.raises(FailedPrecondition):
        sn.commit("again", "committed")
    with pytest.raises(FailedPrecondition):
        sn.mounts("committed")
    with pytest.raises(FailedPrecondition):
        sn.apply_target("committed")

    sn.prepare("active2", "committed")
    with pytest.raises(AlreadyExists):
        sn.commit("committed", "active2")
    with pytest.raises(AlreadyExists):
        sn.commit("view", "active2")
    # failed calls changed nothing
    assert sorted(i.name for i in sn.walk()) == ["active2", "committed", "view"]
    assert env.snapshot_dirs() == env.recorded_ids()


def test_mounts_recovers_prepare_mounts(env: Env) -> None:
    sn = env.sn
    sn.prepare("a", "")
    sn.commit("A", "a")
    sn.prepare("b", "A")
    sn.commit("B", "b")
    for key, parent in (("x", ""), ("y", "A"), ("z", "B")):
        assert sn.prepare(key, parent) == sn.mounts(key)
        assert sn.view(f"v{key}", parent) == sn.mounts(f"v{key}")
        assert all(m.to_json()["options"] == list(m.options) for m in sn.mounts(key))
        for m in sn.mounts(key):
            assert Mount.from_json(json.loads(json.dumps(m.to_json()))) == m


def test_keys_are_never_paths(env: Env) -> None:
    sn = env.sn
    keys = ["../../../escape", "/etc/passwd", "default/extract-1 sha256:" + "a" * 64, "x" * 600]
    parent = ""
    for i, key in enumerate(keys):
        sn.prepare(key, parent)
        parent = f"sha256:{i:064x}"
        sn.commit(parent, key)
    assert all(entry.isdigit() for entry in env.snapshot_dirs())
    assert not (env.root.parent.parent / "escape").exists()
    assert sn.stat(parent).parent == "sha256:" + f"{2:064x}"


def test_usage(env: Env) -> None:
    sn = env.sn
    target = prepare_mount(env, "a")
    empty = sn.usage("a")
    assert empty.inodes >= 1
    (target / "big").write_bytes(os.urandom(1 << 20))
    (target / "d").mkdir()
    (target / "d" / "small").write_bytes(b"x")
    os.link(target / "big", target / "big-link")  # counted once
    grown = sn.usage("a")
    assert grown.inodes == empty.inodes + 3
    assert grown.size >= empty.size + (1 << 20)
    assert grown.size < empty.size + (1 << 20) + (1 << 16)
    unmount(target)
    sn.commit("A", "a")
    assert sn.usage("A") == grown  # recorded at commit

    target = prepare_mount(env, "b", "A")
    (target / "d" / "small").write_bytes(b"y")
    unmount(target)
    sn.commit("B", "b")
    sn.view("v", "B")
    assert sn.usage("v") == Usage()
    if env.backend_name == "overlayfs":
        # only the layer's own changes; native copies hold everything
        assert sn.usage("B").size < (1 << 16)


def _rich_layer(root: Path) -> None:
    apply(
        create_dir("/bin", 0o755),
        create_file("/bin/su", b"#!/bin/sh\n", 0o4755),
        create_file("/bin/wall", b"#!/bin/sh\n", 0o2755),
        chown("/bin/wall", 0, 5),
        create_dir("/tmp", 0o1777),
        create_dir("/home", 0o755),
        create_dir("/home/user", 0o750),
        chown("/home/user", 1000, 1000),
        create_file("/home/user/.profile", b"export A=1\n", 0o600),
        chown("/home/user/.profile", 1000, 1000),
        create_file("/xattrs", b"x", 0o644),
        setxattr("/xattrs", "user.comment", b"hello"),
        setxattr("/xattrs", "trusted.ctl", b"\x00\x01binary"),
        setxattr("/xattrs", "security.capability", bytes.fromhex("0100000200200000" + "00" * 12)),
        create_dir("/xdir", 0o755),
        setxattr("/xdir", "user.dir", b"on a dir"),
        create_file("/hard1", b"linked", 0o644),
        link("/hard1", "/hard2"),
        symlink("../etc/target", "/rel-link"),
        symlink("/absolute/target", "/abs-link"),
        mknod("/fifo", stat.S_IFIFO | 0o600),
        mknod("/null", stat.S_IFCHR | 0o666, 1, 3),
        mknod("/loop", stat.S_IFBLK | 0o660, 7, 0),
        create_dir("/lib", 0o755),
        create_file("/lib/keep", b"k", 0o644),
        create_file("/lib/drop", b"d", 0o644),
        create_dir("/lib/sub", 0o755),
        create_file("/lib/sub/deep", b"deep", 0o644),
        create_dir("/opaque", 0o755),
        create_file("/opaque/old", b"old", 0o644),
    )(root)


def test_modes_owners_xattrs_devices_links_through_mounts(env: Env) -> None:
    check_snapshots(
        env,
        _rich_layer,
        apply(
            remove_all("/lib/drop"),
            remove_all("/lib/sub"),
            create_file("/lib/sub", b"now a file", 0o640),
            remove_all("/opaque"),
            create_dir("/opaque", 0o700),
            create_file("/opaque/new", b"new", 0o644),
            chmod("/bin/su", 0o755),
            chown("/xdir", 7, 7),
            setxattr("/xdir", "user.dir", b"changed"),
            remove_all("/abs-link"),
            symlink("/other", "/abs-link"),
        ),
        apply(remove_all("/null"), create_dir("/null", 0o711)),
    )


def _apply_layer(e: Env, key: str, changes: dict[str, bytes | None], opaque: list[str]) -> None:
    """_apply_layer writes files through ``apply_target`` as a layer apply would.

    ``changes`` maps paths to contents, None for a deletion (a whiteout).
    ``opaque`` names directories whose lower content is hidden.
    """
    target = e.sn.apply_target(key)
    for name in opaque:
        path = target.path / name
        if target.whiteout_style == "overlay":
            path.mkdir(exist_ok=True)
            os.setxattr(path, "trusted.overlay.opaque", b"y")
        else:
            shutil.rmtree(path, ignore_errors=True)
            path.mkdir()
    for name, data in changes.items():
        path = target.path / name
        if data is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        elif target.whiteout_style == "overlay":
            os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))
        elif path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()


def test_apply_target_whiteouts(env: Env) -> None:
    sn = env.sn
    sn.prepare("l1", "")
    base = sn.apply_target("l1")
    assert base.whiteout_style == "naive"  # nothing below to hide
    _apply_layer(
        env, "l1", {"a": b"a", "gone": b"g", "dir/x": b"x", "opq/old": b"o", "opq/sub/y": b"y"}, []
    )
    sn.commit("L1", "l1")

    sn.prepare("l2", "L1")
    expected_style = "overlay" if env.backend_name == "overlayfs" else "naive"
    assert sn.apply_target("l2").whiteout_style == expected_style
    _apply_layer(env, "l2", {"gone": None, "dir": None, "opq/new": b"n", "b": b"b"}, ["opq"])
    sn.commit("L2", "l2")

    sn.prepare("l3", "L2")
    _apply_layer(env, "l3", {"dir/back": b"again"}, [])
    sn.commit("L3", "l3")

    with mounted(sn.view("v", "L3")) as target:
        files = sorted(str(p.relative_to(target)) for p in target.rglob("*"))
        assert files == ["a", "b", "dir", "dir/back", "opq", "opq/new"]
        assert (target / "dir" / "back").read_bytes() == b"again"
    assert not target.exists()  # unmounted, and the temporary mount point removed


def test_concurrent_prepares_from_processes(env: Env) -> None:
    sn = env.sn
    sn.prepare("base-a", "")
    sn.commit("base", "base-a")
    worker = """
import sys
from pathlib import Path
from ctl.errdefs import AlreadyExists
from ctl.snapshots import new_snapshotter
from ctl.snapshots.namespaced import NamespacedSnapshotter
sn = new_snapshotter(sys.argv[1], Path(sys.argv[2]))
if sys.argv[4]:
    sn = NamespacedSnapshotter(sn, sys.argv[4])
me = sys.argv[3]
for i in range(16):
    sn.prepare(f"{me}/active-{i}", "base")
    if i % 2:
        sn.commit(f"{me}/committed-{i}", f"{me}/active-{i}")
    try:
        sn.prepare(f"contended-{i}", "base")
        print(f"won contended-{i}")
    except AlreadyExists:
        pass
"""
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                worker,
                env.backend_name,
                str(env.root),
                f"p{n}",
                env.namespace,
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    wins: list[str] = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        wins.extend(out.split("\n"))
    assert sorted(w for w in wins if w) == sorted(f"won contended-{i}" for i in range(16))

    names = {info.name for info in sn.walk()}
    for n in range(4):
        for i in range(16):
            assert (f"p{n}/committed-{i}" if i % 2 else f"p{n}/active-{i}") in names
    assert len(names) == 1 + 4 * 16 + 16
    assert env.snapshot_dirs() == env.recorded_ids()
    assert sn.stat("contended-3").parent == "base"


def test_kill_9_leaves_a_readable_store(env: Env) -> None:
    sn = env.sn
    target = prepare_mount(env, "base-a")
    (target / "f").write_bytes(b"f")
    unmount(target)
    sn.commit("base", "base-a")
    looper = """
import sys
from pathlib import Path
from ctl.snapshots import new_snapshotter
from ctl.snapshots.namespaced import NamespacedSnapshotter
sn = new_snapshotter(sys.argv[1], Path(sys.argv[2]))
if sys.argv[4]:
    sn = NamespacedSnapshotter(sn, sys.argv[4])
me, i = sys.argv[3], 0
while True:
    sn.prepare(f"{me}-{i}", "base")
    sn.commit(f"{me}-c{i}", f"{me}-{i}")
    if i % 3:
        sn.remove(f"{me}-c{i}")
    i += 1
"""
    rng = random.Random(3)
    for round_ in range(3):
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    looper,
                    env.backend_name,
                    str(env.root),
                    f"r{round_}p{n}",
                    env.namespace,
                ],
                cwd=REPO,
            )
            for n in range(3)
        ]
        time.sleep(0.4 + rng.random() * 0.3)
        for proc in procs:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        assert sn.stat("base").kind is Kind.COMMITTED
        infos = list(sn.walk())
        assert len(infos) > 1
        sn.prepare(f"after-{round_}", "base")  # the lock was released by the kernel
        sn.remove(f"after-{round_}")  # and the sweep reclaimed every leftover
        assert env.snapshot_dirs() == env.recorded_ids()
        assert not [f for f in os.listdir(env.root) if f.endswith(".tmp")]


def test_sweep_reclaims_crash_leftovers_but_not_live_creations(env: Env) -> None:
    sn = env.sn
    sn.prepare("keep", "")
    snapshots = env.root / "snapshots"
    (snapshots / "new-deadbeef").mkdir()  # a creator killed before recording
    (snapshots / "new-deadbeef" / "fs").mkdir()
    (snapshots / "9999").mkdir()  # renamed, then killed before the record
    (snapshots / "rm-half").mkdir()  # a deletion cut short
    (env.root / ".metadata.json.12345.tmp").write_bytes(b"{")
    live = snapshots / "new-live"
    live.mkdir()
    fd = os.open(live, os.O_RDONLY | os.O_DIRECTORY)
    try:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX)
        env.backend.cleanup()
        assert env.snapshot_dirs() == env.recorded_ids() | {"new-live"}
        assert not (env.root / ".metadata.json.12345.tmp").exists()
    finally:
        os.close(fd)
    sn.remove("keep")
    assert env.snapshot_dirs() == set()


def test_id_of_a_crash_leftover_is_reused_safely(env: Env) -> None:
    sn = env.sn
    sn.prepare("first", "")
    leftover = env.root / "snapshots" / "2"  # what a crash after the rename leaves
    leftover.mkdir()
    (leftover / "junk").write_bytes(b"junk")
    target = prepare_mount(env, "second")
    assert os.listdir(target) == []  # not the leftover's junk
    env.backend.cleanup()
    assert env.snapshot_dirs() == env.recorded_ids() == {"1", "2"}


# ---- namespaces over one backend ----


@pytest.mark.parametrize("backend_name", list(BACKENDS))
def test_namespaces_do_not_see_each_other(backend_name: str, tmp_path: Path) -> None:
    backend = BACKENDS[backend_name](tmp_path / "root")
    a = NamespacedSnapshotter(backend, "a")
    b = NamespacedSnapshotter(backend, "b")
    for sn in (a, b):  # the same keys in both
        sn.prepare("base-a", "")
        sn.commit("base", "base-a")
        sn.prepare("child", "base")
    a.prepare("only-a", "base")

    assert sorted(i.name for i in a.walk()) == ["base", "child", "only-a"]
    assert sorted(i.name for i in b.walk()) == ["base", "child"]
    assert [i.name for i in b.walk(["name==only-a"])] == []
    assert [(i.name, i.parent) for i in b.walk(["parent==base"])] == [("child", "base")]
    with pytest.raises(NotFound):
        b.stat("only-a")
    with pytest.raises(NotFound):
        b.remove("only-a")
    with pytest.raises(NotFound):
        b.prepare("x", "a/base")  # another namespace's name is not a parent here

    b.remove("child")
    b.remove("base")
    assert a.stat("child").parent == "base"
    assert sorted(i.name for i in backend.walk()) == ["a/base", "a/child", "a/only-a"]


# ---- the mount helper and the overlay check ----


def test_compact_lowerdir() -> None:
    words = ["workdir=/r/s/9/work", "lowerdir=/r/s/3/fs:/r/s/2/fs:/r/s/10/fs", "index=off"]
    assert compact_lowerdir(words) == (
        "/r/s",
        ["workdir=/r/s/9/work", "lowerdir=3/fs:2/fs:10/fs", "index=off"],
    )
    assert compact_lowerdir(["lowerdir=/a/fs"]) == (None, ["lowerdir=/a/fs"])
    assert compact_lowerdir(["ro"]) == (None, ["ro"])


def test_overlay_supported_is_checked_once_and_cached(tmp_path: Path) -> None:
    root = tmp_path / "overlayfs"
    assert supported(root) is True
    cache = json.loads((root / "overlay-check.json").read_text())
    assert cache["supported"] is True
    assert not [p for p in root.iterdir() if p.name.startswith("overlay-check-")]
    (root / "overlay-check.json").write_text(json.dumps({**cache, "supported": False}))
    assert supported(root) is False  # answered from the cache, no mount


def test_overlay_is_not_supported_on_overlay(tmp_path: Path) -> None:
    lower, upper, workdir, merged = (tmp_path / n for n in ("l", "u", "w", "m"))
    for d in (lower, upper, workdir, merged):
        d.mkdir()
    opts = (f"lowerdir={lower}", f"upperdir={upper}", f"workdir={workdir}")
    mount_all([Mount("overlay", "overlay", opts)], merged)
    try:
        assert supported(merged / "root") is False
    finally:
        unmount(merged)
