"""Issue 11, namespaces: --pid, --ipc, --uts, --userns and --cgroup-parent, in real containers."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ctl.runtime import cgroups
from tests.helpers import ctl_proc, pulled_root
from tests.images import CanonicalImages

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.needs_root


@pytest.fixture(scope="module")
def nroot(tmp_path_factory: pytest.TempPathFactory, images: CanonicalImages) -> Iterator[Path]:
    yield from pulled_root(tmp_path_factory.mktemp("namespaces"), images.busybox_ref)


@pytest.fixture
def image(images: CanonicalImages) -> str:
    return images.busybox_ref


def run(root: Path, *argv: str) -> str:
    result = ctl_proc("run", "--rm", "--net", "none", *argv, root=root)
    return result.assert_success().stdout


def _ns(kind: str) -> str:
    return os.readlink(f"/proc/self/ns/{kind}")


def test_pid_host_sees_the_hosts_processes(nroot: Path, image: str) -> None:
    out = run(nroot, "--pid", "host", image, "sh", "-c", "readlink /proc/self/ns/pid; echo $$")
    ns, pid = out.split()
    assert ns == _ns("pid")
    assert int(pid) > 1


def test_ipc_uts_host(nroot: Path, image: str) -> None:
    out = run(
        nroot, "--ipc", "host", "--uts", "host", image,
        "sh", "-c", "readlink /proc/self/ns/ipc; readlink /proc/self/ns/uts; hostname",
    )  # fmt: skip
    assert out.split() == [_ns("ipc"), _ns("uts"), os.uname().nodename]


def test_private_namespaces_by_default(nroot: Path, image: str) -> None:
    out = run(nroot, "--ipc", "shareable", image, "readlink", "/proc/self/ns/ipc")
    assert out.strip() != _ns("ipc")


def test_ipc_none_has_no_dev_shm(nroot: Path, image: str) -> None:
    assert "/dev/shm" not in run(nroot, "--ipc", "none", image, "cat", "/proc/mounts")


def test_join_another_containers_pid_and_ipc(nroot: Path, image: str) -> None:
    ctl_proc(
        "run", "-d", "--name", "donor", "--net", "none", "--ipc", "shareable", image,
        "sh", "-c", "touch /dev/mqueue/marker; sleep 60",
        root=nroot,
    ).assert_success()  # fmt: skip
    try:
        out = run(
            nroot, "--pid", "container:donor", "--ipc", "container:donor", image,
            "sh", "-c", "cat /proc/1/cmdline | tr '\\0' ' '; echo; ls /dev/mqueue",
        )  # fmt: skip
        # The donor's POSIX message queue: /dev/mqueue shows the IPC namespace's.
        # busybox sh runs its last command in its place: PID 1 is the donor's sleep.
        assert out.splitlines() == ["sleep 60 ", "marker"]
    finally:
        ctl_proc("rm", "-f", "donor", root=nroot)


def test_join_a_stopped_container_fails_at_start(nroot: Path, image: str) -> None:
    ctl_proc("create", "--name", "asleep", image, "true", root=nroot).assert_success()
    try:
        result = ctl_proc(
            "run", "--rm", "--pid", "container:asleep", image, "true", root=nroot
        ).assert_failure(125, "not running")
        assert "asleep" not in result.stdout
        assert ctl_proc("ps", "-aq", root=nroot).stdout.split() == [
            json.loads(ctl_proc("inspect", "asleep", root=nroot).stdout)[0]["Id"][:12]
        ]
    finally:
        ctl_proc("rm", "-f", "asleep", root=nroot)


def test_userns_host_is_accepted(nroot: Path, image: str) -> None:
    assert run(nroot, "--userns", "host", image, "id", "-u") == "0\n"


@pytest.mark.parametrize("parent", ["/ctl-test-parent-{}", "ctl-test-{}.slice"])
def test_cgroup_parent(nroot: Path, image: str, parent: str) -> None:
    parent = parent.format(uuid.uuid4().hex[:8])
    out = run(nroot, "--cgroup-parent", parent, image, "cat", "/proc/self/cgroup")
    name = "/" + parent.lstrip("/")
    lines = [line.split(":", 2) for line in out.splitlines()]
    wanted = [path for _, controllers, path in lines if controllers in ("memory", "")]
    assert wanted and all(path.startswith(name + "/") for path in wanted), out
    for hierarchy in cgroups.hierarchies():
        with contextlib.suppress(OSError):
            (hierarchy / name.lstrip("/")).rmdir()


BAD = {
    "pid-word": ["--pid", "bogus"],
    "pid-no-such-container": ["--pid", "container:no-such"],
    "pid-container-restart": ["--restart", "always", "--pid", "container:x"],
    "ipc-word": ["--ipc", "bogus"],
    "uts-private": ["--uts", "private"],
    "uts-host-with-hostname": ["--uts", "host", "--hostname", "x"],
    "userns-remap": ["--userns", "keep-id"],
    "cgroup-parent-dotdot": ["--cgroup-parent", "../x"],
}


@pytest.mark.parametrize("flags", BAD.values(), ids=BAD.keys())
def test_bad_values_create_nothing(nroot: Path, image: str, flags: list[str]) -> None:
    result = ctl_proc("create", "--name", "bad", *flags, image, root=nroot)
    result.assert_failure(125, f"ctl: .*{flags[0]}")
    assert ctl_proc("ps", "-aq", root=nroot).assert_success().stdout == ""
