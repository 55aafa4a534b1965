"""Cgroups: where supervisors live, and the container cgroup files ctl reads.

A supervisor moves itself into its own cgroup, ``ctl/sup-<key>``, so that
stopping the service, session or Makefile job that ran ``ctl run -d`` (which
kills every process of *its* cgroup) leaves the supervisor, and through it the
container, alone. On cgroup v2 that is ``/sys/fs/cgroup/ctl/sup-<key>``; on
v1 it is the same path in every hierarchy mounted under ``/sys/fs/cgroup``:
not only those a service manager tracks processes by (``name=systemd``, and
the ``unified`` v2 mount of hybrid systems) but each controller's too, or
killing every process of the caller's pids, memory or freezer cgroup would
kill the supervisor as well. conmon under podman leaves every hierarchy the
same way (into ``<cgroup-parent>/conmon``). The new cgroups set no limits: a
supervisor uses next to nothing. It removes them when it exits.

Everything here is best effort. A supervisor that cannot move keeps running
where it is, in the hierarchies it could not leave; the only cost is that it
shares its starter's fate there.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
SUPERVISOR_PARENT = "ctl"
# A new cpuset cgroup starts with no CPUs and no memory nodes, and takes no
# process until it has some (cgroup v1): they are copied from the parent.
_CPUSET_FILES = ("cpuset.cpus", "cpuset.mems")


def is_v2(root: Path = CGROUP_ROOT) -> bool:
    """is_v2 is whether ``root`` is a pure cgroup v2 (unified) mount."""
    return (root / "cgroup.controllers").exists()


def hierarchies(root: Path = CGROUP_ROOT) -> list[Path]:
    """hierarchies are the cgroup mounts under ``root``: itself on v2, each v1 one once.

    A v1 hierarchy of several controllers appears once, by its real name
    (``cpu,cpuacct``), not by its symlinks (``cpu``, ``cpuacct``).
    """
    if is_v2(root):
        return [root]
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []
    return [e for e in entries if not e.is_symlink() and (e / "cgroup.procs").exists()]


def supervisor_cgroups(key: str, root: Path = CGROUP_ROOT) -> list[Path]:
    """supervisor_cgroups are the directories of the supervisor of ``key``, one per hierarchy."""
    return [h / SUPERVISOR_PARENT / f"sup-{key}" for h in hierarchies(root)]


def _move(pid: int, cgroup: Path) -> None:
    with open(cgroup / "cgroup.procs", "w") as f:
        f.write(str(pid))


def _make(cgroup: Path) -> None:
    """_make creates ``cgroup`` and its missing parents, with CPUs and memory nodes in cpuset."""
    if cgroup.is_dir():
        return
    _make(cgroup.parent)
    with contextlib.suppress(FileExistsError):
        cgroup.mkdir()
    for name in _CPUSET_FILES:
        if (cgroup / name).exists() and not (cgroup / name).read_text().strip():
            (cgroup / name).write_text((cgroup.parent / name).read_text())


def enter_supervisor_cgroup(key: str, pid: int, root: Path = CGROUP_ROOT) -> list[Path]:
    """enter_supervisor_cgroup moves the supervisor ``pid`` into its own cgroups.

    It returns the cgroups it joined (possibly none). One it could not join
    is removed again.
    """
    joined = []
    for cgroup in supervisor_cgroups(key, root):
        try:
            _make(cgroup)
            _move(pid, cgroup)
        except OSError:
            with contextlib.suppress(OSError):
                cgroup.rmdir()
            continue
        joined.append(cgroup)
    return joined


def leave_supervisor_cgroup(key: str, root: Path = CGROUP_ROOT) -> None:
    """leave_supervisor_cgroup moves the caller to the hierarchy's root and removes its cgroup.

    The root, not ``ctl/``: on cgroup v2, once runc has enabled controllers
    in ``ctl/`` for the containers below it, ``ctl/`` may hold no process
    (the no-internal-processes rule), while the root always may.
    """
    for cgroup in supervisor_cgroups(key, root):
        with contextlib.suppress(OSError):
            _move(os.getpid(), cgroup.parent.parent)
            cgroup.rmdir()


def supervisor_pids(key: str, root: Path = CGROUP_ROOT) -> list[int]:
    """supervisor_pids are the processes in the supervisor cgroups of ``key`` (it, or none)."""
    pids: list[int] = []
    for cgroup in supervisor_cgroups(key, root):
        with contextlib.suppress(OSError):
            pids += [int(line) for line in (cgroup / "cgroup.procs").read_text().split()]
    return pids


def remove_supervisor_cgroup(key: str, root: Path = CGROUP_ROOT) -> None:
    """remove_supervisor_cgroup removes what a supervisor killed by SIGKILL left behind.

    A cgroup that still has processes is not removed (the kernel refuses).
    """
    for cgroup in supervisor_cgroups(key, root):
        with contextlib.suppress(OSError):
            cgroup.rmdir()


def _own_cgroup(controller: str) -> str:
    """_own_cgroup is the caller's cgroup path in the hierarchy of ``controller``."""
    with contextlib.suppress(OSError), open("/proc/self/cgroup") as f:
        for line in f:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            if controller in controllers.split(","):
                return path
    return "/"


def container_cgroup(cgroups_path: str, controller: str, root: Path = CGROUP_ROOT) -> Path | None:
    """container_cgroup is the directory of a container's cgroup in one hierarchy.

    ``cgroups_path`` is the spec's ``linux.cgroupsPath``; as for runc, a
    relative path is relative to the caller's own cgroup. systemd-style
    ``slice:prefix:name`` paths are not resolved (None).
    """
    if not cgroups_path or ":" in cgroups_path:
        return None
    if is_v2(root):
        base, own = root, _own_cgroup("")
    else:
        base, own = root / controller, _own_cgroup(controller)
    path = cgroups_path if cgroups_path.startswith("/") else f"{own}/{cgroups_path}"
    return base / path.lstrip("/")


def oom_killed(cgroups_path: str, root: Path = CGROUP_ROOT) -> bool:
    """oom_killed is whether the kernel's OOM killer killed a process of the container.

    Read it after the container exited and before ``runc delete`` removes the cgroup.
    """
    cgroup = container_cgroup(cgroups_path, "memory", root)
    if cgroup is None:
        return False
    name = "memory.events" if is_v2(root) else "memory.oom_control"
    try:
        text = (cgroup / name).read_text()
    except OSError:
        return False
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "oom_kill":
            return value.strip() not in ("", "0")
    return False


def container_pids(cgroups_path: str, root: Path = CGROUP_ROOT) -> list[int]:
    """container_pids are the processes in a container's cgroup; none if it is gone.

    This is how a container is found once runc's state was deleted
    underneath it (the ``pids`` hierarchy on v1).
    """
    cgroup = container_cgroup(cgroups_path, "pids", root)
    if cgroup is None:
        return []
    try:
        text = (cgroup / "cgroup.procs").read_text()
    except OSError:
        return []
    return [int(line) for line in text.split()]


def remove_container_cgroup(cgroups_path: str, root: Path = CGROUP_ROOT) -> None:
    """remove_container_cgroup removes an empty container cgroup that runc did not (best effort)."""
    hierarchies = [""] if is_v2(root) else [p.name for p in root.iterdir() if p.is_dir()]
    for controller in hierarchies:
        cgroup = container_cgroup(cgroups_path, controller, root)
        if cgroup is not None:
            with contextlib.suppress(OSError):
                cgroup.rmdir()
