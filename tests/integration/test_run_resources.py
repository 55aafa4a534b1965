"""Issue 11, resources: each limit as the container's cgroup, /proc and /dev/shm show it.

The cgroup values are read on the host side, in the container's own cgroup
(``linux.cgroupsPath`` under each hierarchy), on cgroup v1 and v2 alike.
"""

from __future__ import annotations

import contextlib
import json
import resource
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ctl.runtime import cgroups
from ctl.runtime.runopts import CAP_SYS_RESOURCE
from tests.helpers import ctl_proc, pulled_root
from tests.images import CanonicalImages

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.needs_root


@pytest.fixture(scope="module")
def rroot(tmp_path_factory: pytest.TempPathFactory, images: CanonicalImages) -> Iterator[Path]:
    yield from pulled_root(tmp_path_factory.mktemp("resources"), images.busybox_ref)


@pytest.fixture
def image(images: CanonicalImages) -> str:
    return images.busybox_ref


def run(root: Path, *argv: str) -> str:
    """run runs a --rm container without a network and returns what it printed."""
    result = ctl_proc("run", "--rm", "--net", "none", *argv, root=root)
    return result.assert_success().stdout


def cgroup_file(root: Path, name: str, v1: str, v2: str) -> str:
    """cgroup_file reads one file of a running container's cgroup: v1 is controller/file."""
    spec = json.loads(ctl_proc("inspect", name, root=root).assert_success().stdout)[0]["Spec"]
    path = spec["linux"]["cgroupsPath"]
    if cgroups.is_v2():
        directory = cgroups.container_cgroup(path, "")
        filename = v2
    else:
        controller, filename = v1.split("/")
        directory = cgroups.container_cgroup(path, controller)
    assert directory is not None
    return (directory / filename).read_text().strip()


def test_limits_are_in_the_cgroup(rroot: Path, image: str) -> None:
    ctl_proc(
        "run", "-d", "--name", "limited", "--net", "none",
        "-c", "512", "--cpu-period", "50000", "--cpu-quota", "25000", "--cpuset-cpus", "0",
        "--memory", "64m", "--memory-swap", "96m", "--memory-reservation", "32m",
        "--pids-limit", "50",
        "--device-read-bps", "/dev/loop0:1mb", "--device-write-iops", "/dev/loop0:100",
        image, "sleep", "60",
        root=rroot,
    ).assert_success()  # fmt: skip
    try:
        read = lambda v1, v2: cgroup_file(rroot, "limited", v1, v2)  # noqa: E731
        assert read("cpu/cpu.cfs_quota_us", "cpu.max").split() in (["25000"], ["25000", "50000"])
        if cgroups.is_v2():
            # runc's conversion of shares to weight: 1 + (512 - 2) * 9999 / 262142.
            assert read("", "cpu.weight") == "20"
            assert read("", "memory.swap.max") == str(32 << 20)
            assert read("", "memory.low") == str(32 << 20)
            assert "rbps=1048576" in read("", "io.max")
        else:
            assert read("cpu/cpu.shares", "") == "512"
            assert read("cpu/cpu.cfs_period_us", "") == "50000"
            assert read("memory/memory.memsw.limit_in_bytes", "") == str(96 << 20)
            assert read("memory/memory.soft_limit_in_bytes", "") == str(32 << 20)
            assert read("blkio/blkio.throttle.read_bps_device", "") == "7:0 1048576"
            assert read("blkio/blkio.throttle.write_iops_device", "") == "7:0 100"
        assert read("cpuset/cpuset.cpus", "cpuset.cpus") == "0"
        assert read("memory/memory.limit_in_bytes", "memory.max") == str(64 << 20)
        assert read("pids/pids.max", "pids.max") == "50"
    finally:
        ctl_proc("rm", "-f", "limited", root=rroot)


def test_what_the_host_cannot_do_is_dropped_with_a_warning(rroot: Path, image: str) -> None:
    """Swappiness and OOM-killer disabling exist on v1 only; blkio weight needs BFQ/CFQ."""
    result = ctl_proc(
        "run", "-d", "--name", "v1only", "--net", "none", "-m", "64m",
        "--memory-swappiness", "10", "--oom-kill-disable", "--blkio-weight", "300",
        image, "sleep", "60",
        root=rroot,
    ).assert_success()  # fmt: skip
    try:
        read = lambda v1: cgroup_file(rroot, "v1only", v1, "cgroup.procs")  # noqa: E731
        if cgroups.is_v2():
            assert "swappiness: discarded" in result.stderr
            assert "OOM killer disabling: discarded" in result.stderr
            return
        assert read("memory/memory.swappiness") == "10"
        assert "oom_kill_disable 1" in read("memory/memory.oom_control")
        weight = cgroups.CGROUP_ROOT / "blkio" / "blkio.weight"
        if weight.exists():
            assert read("blkio/blkio.weight") == "300"
        else:
            assert "block I/O weight: discarded" in result.stderr
    finally:
        ctl_proc("rm", "-f", "v1only", root=rroot)


def test_memory_alone_gets_as_much_swap_as_docker_gives(rroot: Path, image: str) -> None:
    ctl_proc(
        "run", "-d", "--name", "swap", "--net", "none", "-m", "64m", image, "sleep", "60",
        root=rroot,
    ).assert_success()  # fmt: skip
    try:
        swap = cgroup_file(rroot, "swap", "memory/memory.memsw.limit_in_bytes", "memory.swap.max")
        assert swap == str((128 if not cgroups.is_v2() else 64) << 20)
    finally:
        ctl_proc("rm", "-f", "swap", root=rroot)


def test_memory_zero_is_no_limit(rroot: Path, image: str) -> None:
    ctl_proc("create", "--name", "nolimit", "-m", "0", image, root=rroot).assert_success()
    spec = json.loads(ctl_proc("inspect", "nolimit", root=rroot).stdout)[0]["Spec"]
    assert "memory" not in spec["linux"]["resources"]
    ctl_proc("rm", "nolimit", root=rroot).assert_success()


def test_ulimit_is_in_proc_limits(rroot: Path, image: str) -> None:
    out = run(
        rroot, "--ulimit", "nofile=1000:2000", "--ulimit", "core=0", image,
        "cat", "/proc/self/limits",
    )  # fmt: skip
    lines = {line[:26].strip(): line[26:].split() for line in out.splitlines()[1:]}
    assert lines["Max open files"][:2] == ["1000", "2000"]
    assert lines["Max core file size"][:2] == ["0", "0"]


def test_ulimit_above_the_callers_hard_limit(rroot: Path, image: str) -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    argv = ("create", "--name", "toohigh", "--ulimit", f"nofile={hard + 1}", image)
    result = ctl_proc(*argv, root=rroot)
    with open("/proc/self/status") as f:
        caps = int(next(line for line in f if line.startswith("CapEff:")).split()[1], 16)
    if caps >> CAP_SYS_RESOURCE & 1:
        result.assert_success()
        ctl_proc("rm", "toohigh", root=rroot).assert_success()
    else:
        result.assert_failure(125, rf"--ulimit.*hard limit of {hard}")


def test_shm_size(rroot: Path, image: str) -> None:
    assert run(rroot, image, "df", "-k", "/dev/shm").split()[-5] == "65536"
    assert run(rroot, "--shm-size", "128m", image, "df", "-k", "/dev/shm").split()[-5] == "131072"


def test_sysctls_inside(rroot: Path, image: str) -> None:
    out = run(
        rroot, "--sysctl", "net.ipv4.ip_forward=1", "--sysctl", "kernel.shmmax=1048576",
        "--sysctl", "fs.mqueue.msg_max=20", image,
        "cat", "/proc/sys/net/ipv4/ip_forward", "/proc/sys/kernel/shmmax",
        "/proc/sys/fs/mqueue/msg_max",
    )  # fmt: skip
    assert out.split() == ["1", "1048576", "20"]


def test_oom_score_adj(rroot: Path, image: str) -> None:
    assert run(rroot, "--oom-score-adj", "500", image, "cat", "/proc/self/oom_score_adj") == "500\n"


def test_kernel_memory_is_ignored_with_a_warning(rroot: Path, image: str) -> None:
    result = ctl_proc(
        "run", "--rm", "--net", "none", "--kernel-memory", "64m", image, "true", root=rroot
    ).assert_success()
    assert "--kernel-memory is deprecated" in result.stderr


BAD = {
    "ulimit-word": ["--ulimit", "nofile=x"],
    "ulimit-name": ["--ulimit", "files=10"],
    "ulimit-soft-above-hard": ["--ulimit", "nofile=20:10"],
    "cpuset-missing-cpu": ["--cpuset-cpus", "99"],
    "cpuset-garbage": ["--cpuset-mems", "0-x"],
    "cpu-shares-word": ["--cpu-shares", "abc"],
    "cpu-period-too-small": ["--cpu-period", "10"],
    "cpus-and-quota": ["--cpus", "1", "--cpu-quota", "50000"],
    "sysctl-host-wide": ["--sysctl", "kernel.panic=1"],
    "sysctl-net-on-host": ["--net", "host", "--sysctl", "net.ipv4.ip_forward=1"],
    "sysctl-ipc-on-host": ["--ipc", "host", "--sysctl", "kernel.shmmax=1"],
    "swap-without-memory": ["--memory-swap", "1g"],
    "swap-below-memory": ["-m", "64m", "--memory-swap", "32m"],
    "reservation-above-memory": ["-m", "64m", "--memory-reservation", "128m"],
    "swappiness": ["--memory-swappiness", "101"],
    "oom-score-adj": ["--oom-score-adj", "2000"],
    "blkio-weight": ["--blkio-weight", "5"],
    "bps-not-a-device": ["--device-read-bps", "/etc/passwd:1mb"],
    "bps-no-rate": ["--device-write-bps", "/dev/loop0"],
    "shm-size": ["--shm-size", "lots"],
}


@pytest.mark.parametrize("flags", BAD.values(), ids=BAD.keys())
def test_bad_values_create_nothing(rroot: Path, image: str, flags: list[str]) -> None:
    result = ctl_proc("create", "--name", "bad", *flags, image, root=rroot)
    result.assert_failure(125, f"ctl: .*{flags[-2]}")
    assert ctl_proc("ps", "-aq", root=rroot).assert_success().stdout == ""


def test_cpu_rt_runtime_under_a_parent_with_a_budget(rroot: Path, image: str) -> None:
    """As with docker, a real-time budget comes from a --cgroup-parent that has one (v1)."""
    flags = ["--cpu-rt-period", "1000000", "--cpu-rt-runtime", "10000"]
    if cgroups.is_v2():
        result = ctl_proc("run", "--rm", "--net", "none", *flags, image, "true", root=rroot)
        assert "real-time" in result.assert_success().stderr
        return
    parent = f"ctl-test-rt-{uuid.uuid4().hex[:8]}"
    budget = cgroups.CGROUP_ROOT / "cpu" / parent
    budget.mkdir()
    try:
        (budget / "cpu.rt_runtime_us").write_text("20000")
        out = run(
            rroot, "--cgroup-parent", parent, *flags, image,
            "sh", "-c", "cat /proc/self/cgroup | grep ':cpu:'",
        )  # fmt: skip
        cgroup = out.strip().split(":", 2)[2]
        assert cgroup.startswith(f"/{parent}/")
    finally:
        for hierarchy in cgroups.hierarchies():
            with contextlib.suppress(OSError):
                (hierarchy / parent).rmdir()
