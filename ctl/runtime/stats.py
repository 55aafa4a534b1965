"""A running container's resource use, read from its cgroup and its network namespace.

One reader for ``stats`` and ``tasks metrics``, on cgroup v1 and v2, with no
runc call: ``stats`` of many containers costs a few small file reads each.
The sample keeps the shape of runc's ``events --stats`` for what it holds.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from ctl.runtime.cgroups import CGROUP_ROOT, container_cgroup, is_v2

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

# A v1 memory limit at or above this is "no limit" (the kernel's page-rounded LONG_MAX).
_V1_UNLIMITED = 1 << 62


def sample(cgroups_path: str, pid: int | None, root: Path = CGROUP_ROOT) -> dict[str, Any]:
    """sample reads the container's counters now; missing files read as 0.

    ``cpu.usage.total`` is in nanoseconds; memory, block I/O and network in
    bytes. ``memory.usage.limit`` is the host's memory when there is no limit.
    """
    v2 = is_v2(root)

    def cgroup(controller: str) -> Path:
        return container_cgroup(cgroups_path, "" if v2 else controller, root) or Path(
            "/nonexistent"
        )

    memory = cgroup("memory")
    if v2:
        cpu_total = _keyed(memory / "cpu.stat").get("usage_usec", 0) * 1000
        usage = _number(memory / "memory.current")
        cache = _keyed(memory / "memory.stat").get("inactive_file", 0)
        limit = _number(memory / "memory.max")
        read, write = _io_stat(memory / "io.stat")
        pids = cgroup("pids")
        pids_limit = _number(pids / "pids.max")
    else:
        cpu_total = _number(cgroup("cpuacct") / "cpuacct.usage")
        usage = _number(memory / "memory.usage_in_bytes")
        cache = _keyed(memory / "memory.stat").get("total_inactive_file", 0)
        limit = _number(memory / "memory.limit_in_bytes")
        if limit >= _V1_UNLIMITED:
            limit = 0
        read, write = _blkio(cgroup("blkio") / "blkio.throttle.io_service_bytes")
        pids = cgroup("pids")
        pids_limit = _number(pids / "pids.max")
    rx, tx = _network(pid)
    return {
        "read": time.time(),
        "cpu": {"usage": {"total": cpu_total}, "online": _online_cpus()},
        "memory": {
            "usage": {"usage": usage, "limit": limit or _host_memory()},
            "cache": cache,
        },
        "pids": {"current": _number(pids / "pids.current"), "limit": pids_limit},
        "blkio": {"read": read, "write": write},
        "network": {"rx_bytes": rx, "tx_bytes": tx},
    }


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return ""


def _number(path: Path) -> int:
    """_number is a one-number file; "max" and unreadable ones are 0."""
    text = _read(path).strip()
    return int(text) if text.isdigit() else 0


def _keyed(path: Path) -> dict[str, int]:
    """_keyed reads ``key value`` lines (memory.stat, cpu.stat)."""
    values = {}
    for line in _read(path).splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            values[key] = int(value)
    return values


def _io_stat(path: Path) -> tuple[int, int]:
    """_io_stat sums v2's ``MAJ:MIN rbytes=N wbytes=N ...`` lines over devices."""
    read = write = 0
    for line in _read(path).splitlines():
        for field in line.split()[1:]:
            key, _, value = field.partition("=")
            if value.isdigit():
                if key == "rbytes":
                    read += int(value)
                elif key == "wbytes":
                    write += int(value)
    return read, write


def _blkio(path: Path) -> tuple[int, int]:
    """_blkio sums v1's ``MAJ:MIN Read N`` / ``Write N`` lines over devices."""
    read = write = 0
    for line in _read(path).splitlines():
        words = line.split()
        if len(words) == 3 and words[2].isdigit():
            if words[1] == "Read":
                read += int(words[2])
            elif words[1] == "Write":
                write += int(words[2])
    return read, write


def _network(pid: int | None) -> tuple[int, int]:
    """_network sums received and sent bytes over the namespace's interfaces but ``lo``.

    /proc/PID/net/dev shows the network namespace of PID, so no setns is needed.
    """
    if not pid:
        return 0, 0
    rx = tx = 0
    for line in _read(Path(f"/proc/{pid}/net/dev")).splitlines()[2:]:
        name, _, counters = line.partition(":")
        fields = counters.split()
        if name.strip() != "lo" and len(fields) >= 9:
            rx += int(fields[0])
            tx += int(fields[8])
    return rx, tx


def _online_cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) or os.cpu_count() or 1


def _host_memory() -> int:
    with contextlib.suppress(ValueError):
        for line in _read(Path("/proc/meminfo")).splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def cpu_percent(before: dict[str, Any], after: dict[str, Any]) -> float:
    """cpu_percent is CPU time over wall time between two samples, 100% a CPU, as docker's."""
    used = after["cpu"]["usage"]["total"] - before["cpu"]["usage"]["total"]
    wall = after["read"] - before["read"]
    return max(used / 1e9 / wall * 100.0, 0.0) if wall > 0 else 0.0


def memory_used(data: dict[str, Any]) -> int:
    """memory_used is usage less the inactive page cache, as docker's CLI shows it."""
    usage: int = data["memory"]["usage"]["usage"]
    cache: int = data["memory"]["cache"]
    return usage - cache if cache < usage else usage
