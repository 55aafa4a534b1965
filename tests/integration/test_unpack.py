"""Issue 3: a pulled image becomes layered root filesystems, exactly and safely.

Each image is pulled into both snapshotters and its top chain mounted as a
view; what the mount shows is compared with an independent extraction of the
same layers (Python's tarfile plus the OCI whiteout rules, written here).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest

from ctl.snapshots import Mount
from ctl.snapshots.mount import mounted
from tests.helpers import run_ctl
from tests.images import CanonicalImages, ImageBuilder, Layer, LayerBuilder

pytestmark = pytest.mark.needs_root

SNAPSHOTTERS = ["overlayfs", "native"]


def _three_layers() -> list[Layer]:
    base = (
        LayerBuilder()
        .dir("etc")
        .file("etc/keep", "keep\n")
        .file("etc/gone", "gone\n")
        .dir("var/cache", mode=0o700, uid=5, gid=6)
        .file("var/cache/a", "a")
        .file("var/cache/b", "b", mode=0o600)
        .dir("opt/old")
        .file("opt/old/file", "old")
        .file("bin/tool", "#!/bin/sh\n", mode=0o4755)
        .symlink("bin/link", "tool")
        .build("gzip")
    )
    middle = (
        LayerBuilder()
        .whiteout("etc/gone")
        .whiteout("opt/old")
        # Image builders always write a directory's own entry beside its opaque marker.
        .dir("var/cache", mode=0o700, uid=5, gid=6)
        .opaque("var/cache")
        .file("var/cache/c", "c")
        .file("etc/new", "new\n", uid=1000, gid=1000)
        .hardlink("etc/new-link", "etc/new")
        .build("none")
    )
    top = (
        LayerBuilder()
        .file("etc/keep", "changed\n", mode=0o640)
        .dir("opt/old")
        .file("opt/old/again", "again")
        .build("gzip")
    )
    return [base, middle, top]


def _extract_independently(layers: list[Layer], dest: Path) -> None:
    """The OCI image spec's rules, applied with tarfile and shutil."""
    dest.mkdir()
    for layer in layers:
        with layer.open_tar() as tar:
            members = []
            for member in tar:
                members.append(member)
        for member in members:
            parent, base = os.path.split(member.name)
            if base == ".wh..wh..opq":
                for child in (dest / parent).iterdir():
                    _remove(child)
            elif base.startswith(".wh."):
                _remove(dest / parent / base.removeprefix(".wh."))
        with layer.open_tar() as tar:
            for member in tar:
                if os.path.basename(member.name).startswith(".wh."):
                    continue
                target = dest / member.name
                if target.is_symlink() or (target.exists() and not target.is_dir()):
                    target.unlink()
                if member.islnk():
                    # tarfile would chown the shared inode to the link entry's owner.
                    os.link(dest / member.linkname, target)
                else:
                    tar.extract(member, dest, numeric_owner=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _tree(root: Path) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISREG(st.st_mode):
                content = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(path)
            else:
                content = ""
            out[rel] = (
                stat.S_IFMT(st.st_mode),
                stat.S_IMODE(st.st_mode),
                st.st_uid,
                st.st_gid,
                content,
            )
    return out


def _view(root: Path, snapshotter: str, name: str, key: str) -> list[Mount]:
    run_ctl(
        "--snapshotter", snapshotter, "snapshots", "view", key, name, root=root
    ).assert_success()
    info = run_ctl("--snapshotter", snapshotter, "snapshots", "mounts", "/x", key, root=root)
    words = info.assert_success().stdout.split()
    options = tuple(words[words.index("-o") + 1].split(",")) if "-o" in words else ()
    return [Mount(type=words[2], source=words[3], options=options)]


def _top_chain(root: Path, snapshotter: str) -> str:
    listing = run_ctl(
        "--snapshotter", snapshotter, "snapshots", "ls", "--format", "json", root=root
    )
    rows = listing.assert_success().json_lines()
    parents = {r["Parent"] for r in rows}
    tops = [r["Key"] for r in rows if r["Key"] not in parents and r["Kind"] == "committed"]
    assert len(tops) == 1, rows
    return tops[0]


@pytest.mark.parametrize("snapshotter", SNAPSHOTTERS)
def test_three_layers_with_whiteouts_match_an_independent_extraction(
    root: Path, images: CanonicalImages, tmp_path: Path, snapshotter: str
) -> None:
    layers = _three_layers()
    image = ImageBuilder(layers).build()
    ref = images.factory.push(image, f"test/whiteouts-{snapshotter}")
    run_ctl("--snapshotter", snapshotter, "pull", ref, root=root).assert_success()
    expected = tmp_path / "expected"
    _extract_independently(layers, expected)
    mounts = _view(root, snapshotter, _top_chain(root, snapshotter), "check")
    with mounted(mounts) as target:
        got = _tree(target)
    want = _tree(expected)
    assert got == want
    assert "etc/gone" not in got and "opt/old/file" not in got
    assert sorted(k for k in got if k.startswith("var/cache/")) == ["var/cache/c"]


@pytest.mark.parametrize("snapshotter", SNAPSHOTTERS)
def test_second_image_on_the_same_base_unpacks_only_its_layer(
    root: Path, images: CanonicalImages, snapshotter: str
) -> None:
    run_ctl("--snapshotter", snapshotter, "pull", images.busybox_ref, root=root).assert_success()
    extra = LayerBuilder().file("hello", "hi").build("gzip")
    ref = images.factory.push(images.factory.image(extra), f"test/extra-{snapshotter}")
    run_ctl("--snapshotter", snapshotter, "pull", ref, root=root).assert_success()
    listing = run_ctl("--snapshotter", snapshotter, "snapshots", "ls", "-q", root=root)
    assert len(listing.stdout.split()) == 2


class _Recorder:
    """_Recorder keeps the progress events a pull reports."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, object]] = []

    def started(self, desc: Any, kind: str, offset: int) -> None:
        self.events.append(("started", desc.digest, kind))

    def advanced(self, desc: Any, nbytes: int) -> None:
        self.events.append(("advanced", desc.digest, nbytes))

    def finished(self, desc: Any, status: str) -> None:
        self.events.append(("finished", desc.digest, status))

    def close(self) -> None:
        pass


def test_pull_reports_unpack_progress_per_layer(root: Path, images: CanonicalImages) -> None:
    import ctl

    recorder = _Recorder()
    ctl.Client(root=root).pull(images.busybox_ref, progress=recorder)
    layer = images.busybox.layers[0]
    mine = [e for e in recorder.events if e[1] == layer.digest]
    unpack_start = mine.index(("started", layer.digest, "unpack"))
    read = sum(int(n) for kind, _, n in mine[unpack_start:] if kind == "advanced")
    assert read == layer.size
    assert mine[-1] == ("finished", layer.digest, "unpacked")


def test_many_layers_on_overlayfs(root: Path, images: CanonicalImages, tmp_path: Path) -> None:
    layers = [LayerBuilder().file(f"layer/{i:03d}", str(i)).build("gzip") for i in range(120)]
    ref = images.factory.push(ImageBuilder(layers).build(), "test/many-layers")
    run_ctl("--snapshotter", "overlayfs", "pull", ref, root=root).assert_success()
    mounts = _view(root, "overlayfs", _top_chain(root, "overlayfs"), "many")
    with mounted(mounts) as target:
        names = sorted(os.listdir(target / "layer"))
    assert names == [f"{i:03d}" for i in range(120)]


def _outside_state(base: Path) -> dict[str, tuple]:
    return {
        str(p): (p.lstat().st_mtime_ns, p.lstat().st_size)
        for p in base.rglob("*")
        if "root" not in p.relative_to(base).parts[:1]
    }


ESCAPES = {
    "dotdot": lambda b: b.file("../escaped", "x"),
    "absolute": lambda b: b.file("/tmp/ctl-absolute-escape", "x"),
    "symlink-parent": lambda b: b.symlink("link", "/tmp").file("link/ctl-through-link", "x"),
    "relative-symlink": lambda b: b.symlink("up", "../../../..").file("up/ctl-up", "x"),
    "hardlink-out": lambda b: b.hardlink("passwd", "../../../../etc/passwd"),
    "whiteout-out": lambda b: b.whiteout("../sentinel"),
}


@pytest.mark.parametrize("case", sorted(ESCAPES))
@pytest.mark.parametrize("snapshotter", SNAPSHOTTERS)
def test_escaping_layers_are_refused_or_contained(
    tmp_path: Path, images: CanonicalImages, case: str, snapshotter: str
) -> None:
    root = tmp_path / "root"
    sentinel = tmp_path / "sentinel"
    sentinel.write_text("keep")
    layer = ESCAPES[case](LayerBuilder()).build("gzip")
    ref = images.factory.push(ImageBuilder([layer]).build(), f"test/escape-{case}")
    before = _outside_state(tmp_path)
    result = run_ctl("--snapshotter", snapshotter, "pull", ref, root=root)
    if result.code != 0:
        result.assert_failure(125)
    assert _outside_state(tmp_path) == before
    assert sentinel.read_text() == "keep"
    assert not Path("/tmp/ctl-absolute-escape").exists()
    assert not Path("/tmp/ctl-through-link").exists()
    assert not Path("/ctl-up").exists()
