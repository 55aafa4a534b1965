"""A container's cgroup resources: one value, its checks, and its OCI ``linux.resources``.

``Resources`` holds what the resource flags of ``create``/``run`` (and of a
later ``update``) ask for; ``None`` means "not asked", so that an update
changes only what it names. ``linux_resources()`` is the OCI document runc
takes, in ``config.json`` and in ``runc update --resources``: runc writes it to
cgroup v1 files, or converts it for cgroup v2 (shares to cpu.weight, swap to
memory.swap.max = swap - memory, blkio weight to io.bfq.weight or io.weight).
On v2 runc silently ignores swappiness, OOM-killer disabling and real-time
CPU limits; ``unsupported`` says so first, as docker's daemon warns and
discards what the host's cgroups cannot do (``verifyPlatformContainerResources``).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, NamedTuple

from ctl.errdefs import InvalidArgument
from ctl.runtime.cgroups import CGROUP_ROOT

if TYPE_CHECKING:
    from pathlib import Path

# docker's minimum: below this a container is OOM-killed before its command runs.
MIN_MEMORY_LIMIT = 6 << 20
CPU_PERIOD = 100_000
# The kernel's CFS bounds for cpu.cfs_period_us, and the least quota docker takes.
MIN_CPU_PERIOD, MAX_CPU_PERIOD, MIN_CPU_QUOTA = 1000, 1_000_000, 1000
MIN_BLKIO_WEIGHT, MAX_BLKIO_WEIGHT = 10, 1000


class DeviceRate(NamedTuple):
    """DeviceRate is a block device's weight or throttle: ``/dev/sda:200``, ``/dev/sda:1mb``."""

    path: str
    major: int
    minor: int
    rate: int

    def oci(self, key: str) -> dict[str, int]:
        return {"major": self.major, "minor": self.minor, key: self.rate}


class Resources(NamedTuple):
    """Resources are a container's cgroup limits; None (or empty) leaves one unset.

    Sizes are bytes, times microseconds. ``memory_swap`` is docker's: memory
    plus swap together, -1 for unlimited swap. ``cpus`` is a CFS quota over
    CPU_PERIOD and excludes ``cpu_period``/``cpu_quota``. ``pids_limit`` 0 or
    less means no limit.
    """

    memory: int | None = None
    memory_swap: int | None = None
    memory_reservation: int | None = None
    memory_swappiness: int | None = None
    oom_kill_disable: bool = False
    cpus: float | None = None
    cpu_shares: int | None = None
    cpu_period: int | None = None
    cpu_quota: int | None = None
    cpu_rt_period: int | None = None
    cpu_rt_runtime: int | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    pids_limit: int | None = None
    blkio_weight: int | None = None
    blkio_weight_device: tuple[DeviceRate, ...] = ()
    device_read_bps: tuple[DeviceRate, ...] = ()
    device_write_bps: tuple[DeviceRate, ...] = ()
    device_read_iops: tuple[DeviceRate, ...] = ()
    device_write_iops: tuple[DeviceRate, ...] = ()

    def is_empty(self) -> bool:
        return self == Resources()

    def validate(self) -> Resources:
        """validate raises InvalidArgument, naming the flag, for limits docker refuses."""
        memory, swap, reservation = self.memory, self.memory_swap, self.memory_reservation
        if memory is not None and memory < MIN_MEMORY_LIMIT:
            raise InvalidArgument("--memory: below the minimum of 6 MiB (0 means no limit)")
        if swap is not None and swap not in (0, -1):
            if not memory:
                raise InvalidArgument("--memory-swap needs --memory: it is memory plus swap")
            if swap < memory:
                raise InvalidArgument(
                    "--memory-swap: it is memory plus swap, so it cannot be below --memory"
                )
        if reservation is not None and reservation != 0:
            if reservation < MIN_MEMORY_LIMIT:
                raise InvalidArgument("--memory-reservation: the minimum is 6 MiB")
            if memory and reservation > memory:
                raise InvalidArgument("--memory-reservation cannot be above --memory")
        if self.memory_swappiness is not None and not 0 <= self.memory_swappiness <= 100:
            raise InvalidArgument("--memory-swappiness: want 0 to 100")
        if self.cpus is not None and round(self.cpus * CPU_PERIOD) < MIN_CPU_QUOTA:
            raise InvalidArgument(f"--cpus {self.cpus}: the minimum is 0.01")
        if self.cpus is not None and (self.cpu_period or self.cpu_quota):
            raise InvalidArgument("--cpus cannot be used with --cpu-period or --cpu-quota")
        if self.cpu_shares is not None and self.cpu_shares < 0:
            raise InvalidArgument("--cpu-shares: want a number of 0 or more")
        if self.cpu_period and not MIN_CPU_PERIOD <= self.cpu_period <= MAX_CPU_PERIOD:
            raise InvalidArgument("--cpu-period: want 1000 to 1000000 microseconds (or 0)")
        if self.cpu_quota and self.cpu_quota != -1 and self.cpu_quota < MIN_CPU_QUOTA:
            raise InvalidArgument("--cpu-quota: want 1000 microseconds or more (or -1, 0)")
        rt = (("--cpu-rt-period", self.cpu_rt_period), ("--cpu-rt-runtime", self.cpu_rt_runtime))
        for flag, value in rt:
            if value is not None and value < 0:
                raise InvalidArgument(f"{flag}: want a number of 0 or more")
        if self.cpu_rt_period and (self.cpu_rt_runtime or 0) > self.cpu_rt_period:
            raise InvalidArgument("--cpu-rt-runtime cannot be above --cpu-rt-period")
        weight = self.blkio_weight
        if weight and not MIN_BLKIO_WEIGHT <= weight <= MAX_BLKIO_WEIGHT:
            raise InvalidArgument("--blkio-weight: want 10 to 1000, or 0")
        for rate in self.blkio_weight_device:
            if not MIN_BLKIO_WEIGHT <= rate.rate <= MAX_BLKIO_WEIGHT:
                raise InvalidArgument(f"--blkio-weight-device {rate.path}: want 10 to 1000")
        return self

    def linux_resources(self) -> dict[str, Any]:
        """linux_resources is the OCI ``linux.resources`` document of what is set (no devices)."""
        out: dict[str, Any] = {}
        memory = _present(
            limit=self.memory or None,
            swap=self.memory_swap or None,
            reservation=self.memory_reservation or None,
            swappiness=self.memory_swappiness,
            disableOOMKiller=self.oom_kill_disable or None,
        )
        cpu = _present(
            shares=self.cpu_shares or None,
            period=self.cpu_period or None,
            quota=self.cpu_quota or None,
            realtimePeriod=self.cpu_rt_period or None,
            realtimeRuntime=self.cpu_rt_runtime or None,
            cpus=self.cpuset_cpus or None,
            mems=self.cpuset_mems or None,
        )
        if self.cpus is not None:
            cpu |= {"quota": round(self.cpus * CPU_PERIOD), "period": CPU_PERIOD}
        block_io = _present(
            weight=self.blkio_weight or None,
            weightDevice=[r.oci("weight") for r in self.blkio_weight_device] or None,
            throttleReadBpsDevice=[r.oci("rate") for r in self.device_read_bps] or None,
            throttleWriteBpsDevice=[r.oci("rate") for r in self.device_write_bps] or None,
            throttleReadIOPSDevice=[r.oci("rate") for r in self.device_read_iops] or None,
            throttleWriteIOPSDevice=[r.oci("rate") for r in self.device_write_iops] or None,
        )
        for key, part in (("memory", memory), ("cpu", cpu), ("blockIO", block_io)):
            if part:
                out[key] = part
        if self.pids_limit is not None:
            out["pids"] = {"limit": self.pids_limit if self.pids_limit > 0 else -1}
        return out


def _present(**fields: Any) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


# What each resource needs of the host's cgroups, and docker's word for what is
# dropped without it: (field, v1 controller and file, works on v2, what).
_NEEDS: tuple[tuple[str, str, bool, str], ...] = (
    ("memory_swap", "memory/memory.memsw.limit_in_bytes", True, "swap limit"),
    ("memory_reservation", "memory/memory.soft_limit_in_bytes", True, "memory reservation"),
    ("memory_swappiness", "memory/memory.swappiness", False, "memory swappiness"),
    ("oom_kill_disable", "memory/memory.oom_control", False, "OOM killer disabling"),
    ("cpu_shares", "cpu/cpu.shares", True, "CPU shares"),
    ("cpu_period", "cpu/cpu.cfs_period_us", True, "CPU CFS period"),
    ("cpu_quota", "cpu/cpu.cfs_quota_us", True, "CPU CFS quota"),
    ("cpu_rt_period", "cpu/cpu.rt_period_us", False, "CPU real-time period"),
    ("cpu_rt_runtime", "cpu/cpu.rt_runtime_us", False, "CPU real-time runtime"),
    ("blkio_weight", "blkio/blkio.weight", True, "block I/O weight"),
    ("blkio_weight_device", "blkio/blkio.weight_device", True, "block I/O weight per device"),
    ("device_read_bps", "blkio/blkio.throttle.read_bps_device", True, "read bps throttling"),
    ("device_write_bps", "blkio/blkio.throttle.write_bps_device", True, "write bps throttling"),
    ("device_read_iops", "blkio/blkio.throttle.read_iops_device", True, "read IOPS throttling"),
    ("device_write_iops", "blkio/blkio.throttle.write_iops_device", True, "write IOPS throttling"),
)
_V2_CONTROLLERS = {"memory": "memory", "cpu": "cpu", "blkio": "io"}


def unsupported(resources: Resources, root: Path = CGROUP_ROOT) -> tuple[Resources, list[str]]:
    """unsupported drops what this host's cgroups cannot do, with one warning for each.

    On cgroup v1 a limit needs its controller's file at the hierarchy's root
    (no ``blkio.weight`` without the CFQ/BFQ scheduler, say); on v2 it needs
    its controller, and swappiness, OOM-killer disabling and real-time limits
    have no v2 file at all (runc would ignore them without a word).
    """
    v2 = (root / "cgroup.controllers").exists()
    controllers = set(_read(root / "cgroup.controllers").split()) if v2 else set()
    dropped: dict[str, Any] = {}
    warnings = []
    for field, path, on_v2, what in _NEEDS:
        if not getattr(resources, field):
            continue
        v2_controller = _V2_CONTROLLERS[path.split("/")[0]]
        if not (on_v2 and v2_controller in controllers if v2 else (root / path).exists()):
            dropped[field] = Resources._field_defaults[field]
            version = "v2" if v2 else "v1"
            warnings.append(f"this host's cgroups ({version}) do not support {what}: discarded")
    return resources._replace(**dropped), warnings


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def available_cpuset(kind: str, root: Path = CGROUP_ROOT) -> set[int]:
    """available_cpuset is the CPUs (``cpus``) or memory nodes (``mems``) containers may use."""
    if kind == "cpus":
        return set(os.sched_getaffinity(0))
    for name in ("cpuset/cpuset.effective_mems", "cpuset/cpuset.mems", "cpuset.mems.effective"):
        text = _read(root / name).strip()
        if text:
            return parse_cpuset(text, "cpuset")
    return {0}


def parse_cpuset(value: str, flag: str) -> set[int]:
    """parse_cpuset reads a list of numbers and ranges, ``0-3,5``, as the kernel writes it."""
    numbers: set[int] = set()
    for part in value.split(","):
        low, sep, high = part.strip().partition("-")
        if not (low.isascii() and low.isdigit()) or (
            sep and not (high.isascii() and high.isdigit())
        ):
            raise InvalidArgument(f"{flag}: invalid list {value!r}: want numbers and ranges, 0-3,5")
        first, last = int(low), int(high) if sep else int(low)
        if last < first:
            raise InvalidArgument(f"{flag}: invalid range {part!r}")
        numbers.update(range(first, last + 1))
    return numbers
