"""Joining another container's namespaces (``--pid``/``--ipc container:NAME``).

The other container's process is known only while it runs, and a pid taken at
create time could belong to another process by the time the task starts, so
the spec names the container (``container:<id>`` as the namespace's path)
and ``join_containers`` puts in its live pid when the task starts. Unlike
docker, joining its IPC namespace shares System V IPC and POSIX message
queues but not its /dev/shm: that is a tmpfs of the other container's mount
namespace, which the kernel does not let another namespace bind.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ctl.errdefs import FailedPrecondition

if TYPE_CHECKING:
    from collections.abc import Callable

PREFIX = "container:"


def container_path(container_id: str) -> str:
    """container_path is what the spec keeps, as a namespace's path, until the task starts."""
    return PREFIX + container_id


def join_containers(
    spec: dict[str, Any], running_pid: Callable[[str], int | None]
) -> dict[str, Any]:
    """join_containers returns ``spec`` with ``container:<id>`` paths made /proc/PID/ns/KIND.

    ``running_pid`` gives the init pid of a running container (None when it
    does not run): joining one that does not run is FailedPrecondition. The
    spec is returned as it is when it joins none.
    """
    linux = spec.get("linux", {})
    namespaces = linux.get("namespaces", [])
    if not any(str(n.get("path", "")).startswith(PREFIX) for n in namespaces):
        return spec
    joined = []
    for namespace in namespaces:
        path = str(namespace.get("path", ""))
        if not path.startswith(PREFIX):
            joined.append(namespace)
            continue
        kind, container_id = namespace["type"], path.removeprefix(PREFIX)
        pid = running_pid(container_id)
        if pid is None:
            raise FailedPrecondition(
                f"cannot join the {kind} namespace of container {container_id[:12]}: "
                "it is not running",
                hint=f"start it first, or drop --{kind} container:...",
            )
        joined.append({"type": kind, "path": f"/proc/{pid}/ns/{kind}"})
    return {**spec, "linux": {**linux, "namespaces": joined}}
