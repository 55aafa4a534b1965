"""prune, system df, system check, completion and generate systemd."""

from __future__ import annotations

from pathlib import Path

import pytest

import ctl
from ctl.errdefs import Unavailable
from ctl.gc import collect
from tests.helpers import run_ctl
from tests.images import CanonicalImages

pytestmark = pytest.mark.needs_root


def _blobs(root: Path) -> set[str]:
    return set(run_ctl("content", "ls", "-q", root=root).assert_success().stdout.split())


def test_prune_removes_only_what_nothing_references(root: Path, images: CanonicalImages) -> None:
    run_ctl("pull", images.busybox_ref, root=root).assert_success()
    run_ctl("pull", images.multi_ref, root=root).assert_success()
    before = _blobs(root)
    run_ctl("prune", "-f", root=root).assert_success()
    assert _blobs(root) == before
    run_ctl("rmi", images.multi_ref, root=root).assert_success()
    result = run_ctl("prune", "-f", root=root).assert_success()
    assert "Total reclaimed space" in result.stdout
    kept = {b.digest for b in images.busybox.blobs()}
    assert _blobs(root) == kept
    snapshots = run_ctl("snapshots", "ls", "-q", root=root).stdout.split()
    assert len(snapshots) == len(images.busybox.layers)
    run_ctl("system", "check", root=root).assert_success(stdout_re="0 problems")


def test_prune_all_removes_unused_images(root: Path, images: CanonicalImages) -> None:
    run_ctl("pull", images.busybox_ref, root=root).assert_success()
    run_ctl("prune", "-a", "-f", root=root).assert_success()
    assert run_ctl("images", "-q", root=root).stdout == ""
    assert _blobs(root) == set()


def test_prune_removes_what_a_killed_create_left(root: Path, images: CanonicalImages) -> None:
    """A create killed between mounting the rootfs and writing the record leaves no container.

    What it leaves is built here as create builds it, up to the record.
    """
    import os

    from ctl.containers.container import Container

    run_ctl("pull", images.busybox_ref, root=root).assert_success()
    client = ctl.Client(root=root)
    chain = run_ctl("snapshots", "ls", "-q", root=root).stdout.split()[0]
    orphan = os.urandom(32).hex()
    client.snapshotter.prepare(orphan, chain)
    draft = Container(orphan, "", images.busybox_ref, "overlayfs", orphan, {})
    rootfs = client.tasks.mount_rootfs(draft)
    assert os.listdir(rootfs)
    result = run_ctl("prune", "-f", root=root).assert_success()
    assert f"unfinished container: default/{orphan}" in result.stdout
    assert not client.tasks.task_dir(orphan).path.exists()
    assert orphan not in run_ctl("snapshots", "ls", "-q", root=root).stdout
    assert str(root) not in Path("/proc/self/mountinfo").read_text()


def test_prune_waits_for_a_pull_lease(root: Path, images: CanonicalImages) -> None:
    client = ctl.Client(root=root)
    run_ctl("pull", images.busybox_ref, root=root).assert_success()
    with client.lease(), pytest.raises(Unavailable):
        collect(client, unused_images=True, timeout=0.2)
    assert _blobs(root)


def test_system_check_finds_a_corrupted_blob(root: Path, images: CanonicalImages) -> None:
    run_ctl("pull", images.busybox_ref, root=root).assert_success()
    config = images.busybox.config.digest
    path = root / "content" / "blobs" / "sha256" / config.removeprefix("sha256:")
    path.chmod(0o644)
    path.write_bytes(b"{}")
    result = run_ctl("system", "check", root=root)
    assert result.code == 1
    assert config in result.stdout and "does not match" in result.stdout


def test_system_df_and_info(root: Path, images: CanonicalImages) -> None:
    run_ctl("pull", images.busybox_ref, root=root).assert_success()
    rows = run_ctl("system", "df", "--format", "json", root=root).assert_success().json_lines()
    assert {r["Type"] for r in rows} == {"Images", "Containers", "Content", "Snapshots"}
    run_ctl("info", root=root).assert_success(stdout_re="Images: 1")


def test_completion_scripts(root: Path) -> None:
    for shell in ("bash", "zsh", "fish"):
        assert "ctl" in run_ctl("completion", shell, root=root).assert_success().stdout


def test_generate_systemd(root: Path, images: CanonicalImages) -> None:
    from tests.helpers import ctl_proc

    ctl_proc("create", "--name", "unit", images.busybox_ref, "sleep", "1", root=root)
    unit = ctl_proc("generate", "systemd", "unit", root=root).assert_success().stdout
    assert "[Service]" in unit and "start -a unit" in unit
    ctl_proc("rm", "unit", root=root).assert_success()
    boot = ctl_proc("generate", "systemd", "--boot", root=root).assert_success().stdout
    assert "Type=oneshot" in boot and f"--root {root} -n default system boot" in boot
    ctl_proc("generate", "systemd", root=root).assert_failure(125, stderr_re="NAME or --boot")
