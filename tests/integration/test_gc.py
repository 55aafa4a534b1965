"""prune fails closed: content it cannot read stops it before it removes anything."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import ctl
from tests.helpers import ctl_proc, run_ctl

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.images import CanonicalImages

pytestmark = pytest.mark.needs_root


def _blob_path(root: Path, digest: str) -> Path:
    return root / "content" / "blobs" / "sha256" / digest.removeprefix("sha256:")


def _blobs(root: Path) -> set[str]:
    return set(run_ctl("content", "ls", "-q", root=root).assert_success().stdout.split())


def _snapshots(root: Path, namespace: str = "default") -> set[str]:
    result = run_ctl("-n", namespace, "snapshots", "ls", "-q", root=root).assert_success()
    return set(result.stdout.split())


def _images(root: Path) -> list[str]:
    # Not ``ctl images``: it reads the manifests this file damages.
    return [image.name for image in ctl.Client(root=root).images.list()]


def _replace(data: bytes) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        path.chmod(0o644)
        path.write_bytes(data)

    return damage


def _to_directory(path: Path) -> None:
    path.unlink()
    path.mkdir()


DAMAGE: dict[str, Callable[[Path], None]] = {
    "missing": Path.unlink,
    "malformed": _replace(b"{not json"),
    "digest mismatch": _replace(b'{"schemaVersion": 2}'),
    "unreadable": _to_directory,  # open() fails with EISDIR, even as root
}


def _assert_aborted(root: Path, argv: tuple[str, ...], digest: str, kind: str) -> None:
    """_assert_aborted runs a prune that must fail naming ``digest`` and remove nothing."""
    blobs, snapshots, images = _blobs(root), _snapshots(root), _images(root)
    result = run_ctl(*argv, root=root).assert_failure(125, stderr_re=f"{kind} {digest}")
    assert result.stdout == ""
    assert _blobs(root) == blobs
    assert _snapshots(root) == snapshots
    assert _images(root) == images


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_prune_stops_at_a_manifest_it_cannot_read(
    root: Path, images: CanonicalImages, damage: str
) -> None:
    run_ctl("pull", images.busybox_ref, root=root).assert_success()
    manifest = images.busybox.manifest.digest
    DAMAGE[damage](_blob_path(root, manifest))
    _assert_aborted(root, ("prune", "-f"), manifest, "manifest")


def test_prune_stops_at_a_config_or_index_it_cannot_read(
    root: Path, images: CanonicalImages
) -> None:
    run_ctl("pull", images.busybox_ref, root=root).assert_success()
    run_ctl("pull", images.multi_ref, root=root).assert_success()
    config = images.busybox.config.digest
    DAMAGE["digest mismatch"](_blob_path(root, config))
    _assert_aborted(root, ("prune", "-f"), config, "config")

    run_ctl("rmi", images.busybox_ref, root=root).assert_success()
    index = images.multi.digest
    DAMAGE["malformed"](_blob_path(root, index))
    _assert_aborted(root, ("prune", "-f"), index, "index")


def test_prune_all_stops_at_an_image_a_container_uses(root: Path, images: CanonicalImages) -> None:
    run_ctl("pull", images.busybox_ref, root=root).assert_success()
    ctl_proc("create", "--name", "user", images.busybox_ref, "true", root=root).assert_success()
    try:
        manifest = images.busybox.manifest.digest
        DAMAGE["malformed"](_blob_path(root, manifest))
        _assert_aborted(root, ("prune", "-a", "-f"), manifest, "manifest")
    finally:
        ctl_proc("rm", "user", root=root).assert_success()


def test_prune_all_removes_a_damaged_image_no_container_uses(
    root: Path, images: CanonicalImages
) -> None:
    """An image prune -a removes anyway is not read, so its damage does not block."""
    run_ctl("pull", images.busybox_ref, root=root).assert_success()
    DAMAGE["missing"](_blob_path(root, images.busybox.manifest.digest))
    run_ctl("prune", "-a", "-f", root=root).assert_success()
    assert _images(root) == []
    assert _blobs(root) == set()
    assert _snapshots(root) == set()


def test_prune_keeps_the_snapshots_of_an_image_in_two_namespaces(
    root: Path, images: CanonicalImages
) -> None:
    for namespace in ("default", "other"):
        run_ctl("-n", namespace, "pull", images.busybox_ref, root=root).assert_success()
    before = {ns: _snapshots(root, ns) for ns in ("default", "other")}
    assert before["default"] and before["default"] == before["other"]
    run_ctl("prune", "-f", root=root).assert_success()
    assert {ns: _snapshots(root, ns) for ns in ("default", "other")} == before


def test_prune_stops_at_a_target_that_an_index_may_lack(
    root: Path, images: CanonicalImages
) -> None:
    """A manifest an index lists may be absent; the same manifest as an image's target may not."""
    from ctl.images.image import Image
    from ctl.oci import Descriptor
    from ctl.paths import ref_key

    run_ctl("pull", images.multi_ref, root=root).assert_success()
    other = images.multi_other.manifest  # listed by the index, never pulled
    target = Descriptor(other.media_type, other.digest, other.size)
    # Named so that its record is listed after the index's: the index is marked first. The
    # index's name has the registry's port in it, a new one each session: a name is searched
    # for as long as it takes (a hundred tries failed about one session in a hundred).
    name = next(
        n
        for n in (f"other-{i}" for i in itertools.count())
        if ref_key(n) > ref_key(images.multi_ref)
    )
    ctl.Client(root=root).images.create(Image(name=name, target=target))
    _assert_aborted(root, ("prune", "-f"), other.digest, "manifest")


def _damage_labels(root: Path, digest: str) -> Path:
    labels = root / "content" / "labels" / "sha256" / f"{digest.removeprefix('sha256:')}.json"
    labels.parent.mkdir(parents=True, exist_ok=True)
    labels.write_text("{")
    return labels


def _damage_ingest(root: Path, digest: str) -> Path:
    with ctl.Client(root=root).content.writer("half-written") as writer:
        writer.write(b"x")
    ingest = next(p for p in (root / "content" / "ingest").iterdir() if p.is_dir())
    (ingest / "ingest.json").unlink()
    return ingest


def _damage_snapshots(root: Path, digest: str) -> Path:
    (metadata,) = (root / "snapshots").glob("*/metadata.json")
    metadata.write_text('{"version": 1, "snaps')
    return metadata


RECORD_DAMAGE = {
    "labels record": _damage_labels,
    "ingest": _damage_ingest,
    "snapshot metadata": _damage_snapshots,
}


@pytest.mark.parametrize("damage", list(RECORD_DAMAGE))
def test_prune_stops_before_removing_anything_at_a_record_it_cannot_read(
    root: Path, images: CanonicalImages, damage: str
) -> None:
    run_ctl("pull", images.busybox_ref, root=root).assert_success()
    run_ctl("pull", images.multi_ref, root=root).assert_success()
    run_ctl("rmi", images.multi_ref, root=root).assert_success()  # garbage to sweep
    # The damage is to a blob that stays, so the sweep would reach it late.
    damaged = RECORD_DAMAGE[damage](root, images.busybox.manifest.digest)
    # Not ``content ls``: it stops at a damaged labels record.
    blobs = sorted((root / "content" / "blobs" / "sha256").iterdir())
    result = run_ctl("prune", "-f", root=root).assert_failure(
        125, stderr_re=f"cannot read .*{damaged}.*; nothing was removed"
    )
    assert result.stdout == ""
    assert sorted((root / "content" / "blobs" / "sha256").iterdir()) == blobs


def test_prune_all_goes_on_when_rmi_removes_an_image_first(
    root: Path, images: CanonicalImages
) -> None:
    """prune -a -f next to rmi: an image it was about to remove is gone, which is as good."""
    import subprocess

    from tests.helpers import ctl_command

    run_ctl("pull", images.busybox_ref, root=root).assert_success()
    names = [f"example.com/race/n{i}:latest" for i in range(40)]
    for name in names:
        run_ctl("tag", images.busybox_ref, name, root=root).assert_success()
    for _ in range(3):
        rmi = [
            subprocess.Popen(
                [*ctl_command(), "--root", str(root), "rmi", *names[i::4]],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for i in range(4)
        ]
        ctl_proc("prune", "-a", "-f", root=root).assert_success()
        for proc in rmi:
            proc.wait(timeout=60)
        assert _images(root) == []
        run_ctl("pull", images.busybox_ref, root=root).assert_success()
        for name in names:
            run_ctl("tag", images.busybox_ref, name, root=root).assert_success()
