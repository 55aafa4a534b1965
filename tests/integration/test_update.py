"""Issue 13 part 4, update: a running container's cgroup, its record, and a restart.

The cgroup values are read on the host side, in the container's own cgroup
(v1 or v2), and from inside the container through /sys/fs/cgroup.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import pytest

from ctl.runtime import cgroups
from tests.helpers import ctl_proc, inspect_one, pulled_root
from tests.integration.test_run_resources import cgroup_file

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.images import CanonicalImages

pytestmark = pytest.mark.needs_root

MIB = 1 << 20


@pytest.fixture(scope="module")
def uroot(tmp_path_factory: pytest.TempPathFactory, images: CanonicalImages) -> Iterator[Path]:
    yield from pulled_root(tmp_path_factory.mktemp("update"), images.busybox_ref)


@pytest.fixture
def image(images: CanonicalImages) -> str:
    return images.busybox_ref


def resources(root: Path, name: str) -> dict[str, Any]:
    found: dict[str, Any] = inspect_one(root, name)["Spec"]["linux"].get("resources", {})
    return found


def memory_limit(root: Path, name: str) -> int:
    text = cgroup_file(root, name, "memory/memory.limit_in_bytes", "memory.max")
    return -1 if text == "max" else int(text)


def inside(root: Path, name: str, v1: str, v2: str) -> str:
    """inside reads a cgroup file as the container sees it, under its /sys/fs/cgroup."""
    path = f"/sys/fs/cgroup/{v2 if cgroups.is_v2() else v1}"
    return ctl_proc("exec", name, "cat", path, root=root).assert_success().stdout.strip()


def test_update_changes_a_running_container_and_a_restart_keeps_it(uroot: Path, image: str) -> None:
    name = "upd-live"
    ctl_proc(
        "run", "-d", "--name", name, "--net", "none", "-m", "64m", image, "sleep", "600",
        root=uroot,
    ).assert_success()  # fmt: skip
    try:
        result = ctl_proc(
            "update", "-m", "96m", "--memory-swap", "-1", "--cpus", "0.5", "-c", "512",
            "--pids-limit", "40", "--restart", "on-failure:3", name,
            root=uroot,
        ).assert_success()  # fmt: skip
        assert result.stdout == f"{name}\n"
        logged = [json.loads(line) for line in (uroot / "events" / "events.log").open()]
        assert ("update", name) in [(e["Action"], e["Actor"]["Attributes"]["name"]) for e in logged]

        def check() -> None:
            assert memory_limit(uroot, name) == 96 * MIB
            quota = cgroup_file(uroot, name, "cpu/cpu.cfs_quota_us", "cpu.max").split()[0]
            assert quota == "50000"
            assert cgroup_file(uroot, name, "pids/pids.max", "pids.max") == "40"
            if not cgroups.is_v2():
                assert cgroup_file(uroot, name, "cpu/cpu.shares", "") == "512"
            limit = inside(uroot, name, "memory/memory.limit_in_bytes", "memory.max")
            assert int(limit) == 96 * MIB

        check()
        spec = resources(uroot, name)
        assert spec["memory"]["limit"] == 96 * MIB
        assert spec["cpu"] == {**spec["cpu"], "quota": 50000, "period": 100000, "shares": 512}
        assert spec["pids"] == {"limit": 40}
        config = inspect_one(uroot, name)["HostConfig"]
        assert config["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}

        ctl_proc("stop", "-t", "0", name, root=uroot).assert_success()
        ctl_proc("start", name, root=uroot).assert_success()
        check()
    finally:
        ctl_proc("rm", "-f", name, root=uroot)


def test_memory_below_usage_fails_and_changes_nothing(uroot: Path, image: str) -> None:
    name = "upd-busy"
    # 32 MiB in a tmpfs is charged to the container's memory cgroup, and the
    # host has no swap to put it in (memory plus swap is limited as well).
    ctl_proc(
        "run", "-d", "--name", name, "--net", "none", "-m", "96m", "--memory-swap", "96m",
        "--tmpfs", "/fill", image,
        "sh", "-c", "dd if=/dev/zero of=/fill/f bs=1M count=32 && touch /fill/done && sleep 600",
        root=uroot,
    ).assert_success()  # fmt: skip
    try:
        ctl_proc(
            "exec", name, "sh", "-c", "while [ ! -e /fill/done ]; do sleep 0.1; done", root=uroot
        ).assert_success()
        before = resources(uroot, name)
        result = ctl_proc(
            "update", "-m", "8m", "--memory-swap", "8m", name, root=uroot
        ).assert_failure(125)
        assert len(result.stderr.splitlines()) == 1
        assert result.stderr.startswith("ctl: ")
        assert "Traceback" not in result.stderr
        assert resources(uroot, name) == before
        assert memory_limit(uroot, name) == 96 * MIB
        assert ctl_proc("ps", "-q", "--filter", f"name={name}", root=uroot).stdout.strip()
    finally:
        ctl_proc("rm", "-f", name, root=uroot)


@pytest.mark.parametrize(
    "flags",
    [
        ("-m", "1k"),
        ("-m", "lots"),
        ("--cpus", "0.001"),
        ("--cpus", "1", "--cpu-quota", "50000"),
        ("--cpu-period", "10"),
        ("--blkio-weight", "5"),
        ("--memory-swap", "32m"),  # below the memory limit the container has
        ("--memory-reservation", "128m"),  # above it
        ("-m", "256m"),  # above the memory plus swap already set: docker wants both
        ("--pids-limit", "many"),
        ("--cpuset-cpus", "9999"),
        ("--restart", "sometimes"),
        (),
    ],
    ids=lambda flags: " ".join(flags) or "no flags",
)
def test_bad_values_change_nothing(uroot: Path, image: str, flags: tuple[str, ...]) -> None:
    name = "upd-bad"
    ctl_proc(
        "create", "--name", name, "--net", "none", "-m", "64m", "--memory-swap", "128m",
        image, "true",
        root=uroot,
    ).assert_success()  # fmt: skip
    try:
        before = inspect_one(uroot, name)
        result = ctl_proc("update", *flags, name, root=uroot).assert_failure(125)
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("ctl: ")
        assert "Traceback" not in result.stderr
        after = inspect_one(uroot, name)
        assert (after["Spec"], after["HostConfig"]) == (before["Spec"], before["HostConfig"])
    finally:
        ctl_proc("rm", "-f", name, root=uroot)


def test_a_created_container_changes_in_its_record_and_starts_with_it(
    uroot: Path, image: str
) -> None:
    name = "upd-created"
    ctl_proc(
        "create", "--name", name, "--net", "none", image, "sleep", "600", root=uroot
    ).assert_success()
    try:
        ctl_proc("update", "-m", "48m", "--pids-limit", "30", name, root=uroot).assert_success()
        assert resources(uroot, name)["memory"]["limit"] == 48 * MIB
        ctl_proc("start", name, root=uroot).assert_success()
        assert memory_limit(uroot, name) == 48 * MIB
        assert cgroup_file(uroot, name, "pids/pids.max", "pids.max") == "30"
    finally:
        ctl_proc("rm", "-f", name, root=uroot)


def test_update_of_several_and_a_missing_one(uroot: Path, image: str) -> None:
    names = ["upd-a", "upd-b"]
    for name in names:
        ctl_proc("create", "--name", name, "--net", "none", image, "true", root=uroot)
    try:
        result = ctl_proc("update", "--cpus", "1.5", *names, "upd-none", root=uroot)
        assert result.code == 125
        assert result.stdout.split() == names
        assert "upd-none" in result.stderr
        for name in names:
            assert resources(uroot, name)["cpu"]["quota"] == 150000
    finally:
        ctl_proc("rm", "-f", *names, root=uroot)


def test_restart_policy_of_an_rm_container_is_refused(uroot: Path, image: str) -> None:
    name = "upd-rm"
    ctl_proc(
        "create", "--rm", "--name", name, "--net", "none", image, "true", root=uroot
    ).assert_success()
    try:
        ctl_proc("update", "--restart", "always", name, root=uroot).assert_failure(
            125, stderr_re="--rm"
        )
    finally:
        ctl_proc("rm", "-f", name, root=uroot)


def test_a_new_restart_policy_reaches_the_running_task(uroot: Path, image: str) -> None:
    name = "upd-policy"
    script = "while [ ! -e /go ]; do sleep 0.1; done; exit 3"
    ctl_proc(
        "run", "-d", "--name", name, "--net", "none", image, "sh", "-c", script, root=uroot
    ).assert_success()
    try:
        ctl_proc("update", "--restart", "on-failure:2", name, root=uroot).assert_success()
        ctl_proc("exec", name, "touch", "/go", root=uroot).assert_success()
        # Each exit is a stop for wait: the restarts are counted instead.
        deadline = time.monotonic() + 15
        while inspect_one(uroot, name)["RestartCount"] < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert inspect_one(uroot, name)["RestartCount"] == 2
        ctl_proc("wait", name, root=uroot).assert_success("3\n")
    finally:
        ctl_proc("rm", "-f", name, root=uroot)


def test_a_paused_container_stays_frozen(uroot: Path, image: str) -> None:
    name = "upd-paused"
    ctl_proc(
        "run", "-d", "--name", name, "--net", "none", image, "sleep", "600", root=uroot
    ).assert_success()
    try:
        ctl_proc("pause", name, root=uroot).assert_success()
        ctl_proc("update", "--pids-limit", "20", name, root=uroot).assert_success()
        assert cgroup_file(uroot, name, "pids/pids.max", "pids.max") == "20"
        frozen = cgroup_file(uroot, name, "freezer/freezer.state", "cgroup.freeze")
        assert frozen in ("FROZEN", "1")
        assert inspect_one(uroot, name)["State"]["Status"] == "paused"
    finally:
        ctl_proc("rm", "-f", name, root=uroot)
