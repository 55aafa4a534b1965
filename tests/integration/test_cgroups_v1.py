"""Issue 10: on cgroup v1 a supervisor outlives its caller's cgroups, all of them.

A service manager (or a user) stops what ran ``ctl run -d`` by killing every
process of its cgroup, in whichever hierarchy it tracks them: pids, memory,
freezer. The supervisor must have left them all, so that the container still
runs and can be stopped, and its own cgroups must be gone after ``rm``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ctl.runtime import cgroups
from tests.helpers import REPO_ROOT, ctl_command, ctl_proc, pulled_root
from tests.images import CanonicalImages

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = [
    pytest.mark.needs_root,
    pytest.mark.skipif(cgroups.is_v2(), reason="cgroup v1 only (v2 is the VM lane's)"),
]

CALLER_CONTROLLERS = ("pids", "memory", "freezer")


def _procs(cgroup: Path) -> list[int]:
    return [int(pid) for pid in (cgroup / "cgroup.procs").read_text().split()]


def _kill_everything(cgroup_dirs: list[Path], timeout: float = 10.0) -> None:
    """_kill_everything SIGKILLs every process of the cgroups until none is left."""
    deadline = time.monotonic() + timeout
    while any(_procs(c) for c in cgroup_dirs):
        assert time.monotonic() < deadline, {str(c): _procs(c) for c in cgroup_dirs}
        for cgroup in cgroup_dirs:
            for pid in _procs(cgroup):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)


@pytest.fixture
def caller_cgroups() -> Iterator[list[Path]]:
    """caller_cgroups are fresh cgroups in the pids, memory and freezer hierarchies."""
    name = f"ctl-test-caller-{uuid.uuid4().hex[:12]}"
    made = []
    try:
        for controller in CALLER_CONTROLLERS:
            cgroup = cgroups.CGROUP_ROOT / controller / name
            cgroup.mkdir()
            made.append(cgroup)
        yield made
    finally:
        _kill_everything(made)
        for cgroup in made:
            cgroup.rmdir()


@pytest.fixture
def v1root(tmp_path: Path, images: CanonicalImages) -> Iterator[Path]:
    yield from pulled_root(tmp_path, images.busybox_ref)


def _wait_running(root: Path, name: str, timeout: float = 20.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        result = ctl_proc("inspect", name, root=root)
        if result.code == 0:
            doc = json.loads(result.stdout)[0]
            if doc["State"]["Running"]:
                assert isinstance(doc, dict)
                return doc
        assert time.monotonic() < deadline, result
        time.sleep(0.1)


def _leftovers(container_id: str) -> list[Path]:
    """_leftovers are the container's and its supervisor's cgroups still on the host."""
    found = []
    for hierarchy in cgroups.hierarchies():
        parent = hierarchy / cgroups.SUPERVISOR_PARENT
        found += [parent / f"sup-{container_id}", parent / "default" / container_id]
    return [p for p in found if p.exists()]


def test_killing_the_callers_cgroups_leaves_the_container_running(
    v1root: Path, images: CanonicalImages, caller_cgroups: list[Path]
) -> None:
    join = " ".join(f'echo $$ > "{c}/cgroup.procs";' for c in caller_cgroups)
    # The caller stays, as a service's main process would, after run -d returns.
    caller = subprocess.Popen(
        [
            "sh",
            "-c",
            f'{join} "$@" && exec sleep 300',
            "sh",
            *ctl_command(),
            "--root",
            str(v1root),
            "run",
            "-d",
            "--name",
            "survivor",
            "--network",
            "none",
            images.busybox_ref,
            "sleep",
            "300",
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
    )
    try:
        doc = _wait_running(v1root, "survivor")
        container_id = str(doc["Id"])
        for hierarchy in cgroups.hierarchies():
            sup = hierarchy / cgroups.SUPERVISOR_PARENT / f"sup-{container_id}"
            assert _procs(sup), f"the supervisor did not leave {hierarchy.name}"
        _kill_everything(caller_cgroups)
        caller.wait(timeout=10)
        time.sleep(0.5)  # a supervisor killed along with them would be gone by now
        assert _wait_running(v1root, "survivor")["State"]["Pid"] == doc["State"]["Pid"]
        assert ctl_proc("exec", "survivor", "echo", "ok", root=v1root).stdout == "ok\n"
        ctl_proc("stop", "-t", "1", "survivor", root=v1root).assert_success()
        state = json.loads(ctl_proc("inspect", "survivor", root=v1root).stdout)[0]["State"]
        assert state["Status"] == "exited" and state["ExitCode"] == 137
        ctl_proc("rm", "survivor", root=v1root).assert_success()
        assert _leftovers(container_id) == []
    finally:
        with contextlib.suppress(ProcessLookupError):
            caller.kill()
        caller.wait()
