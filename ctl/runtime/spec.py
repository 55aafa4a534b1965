"""OCI runtime spec generation: a hardened default, refined by small options.

This is containerd's ``pkg/oci`` in Python. A ``Spec`` is runc's config.json as
a dict; a ``SpecOpt`` is a function that changes one aspect of it;
``generate_spec(*opts)`` is ``default_spec()`` with the options applied in
order. Everything here is pure (a few options read the rootfs or stat a host
path they are given, none writes), so the whole of it is unit-tested without
root.

The default follows containerd's ``populateDefaultUnixSpec`` as of 1.7 (and
docker's defaults): the 14 default capabilities, masked and read-only /proc
paths, own pid/ipc/uts/mount/network namespaces, a deny-all device cgroup
with the usual character devices allowed, RLIMIT_NOFILE 1024, and /proc,
/dev, /dev/pts, /dev/shm, /dev/mqueue, /sys (read-only) and /run mounted.
Unlike containerd, and like docker, ``noNewPrivileges`` is off unless asked
for (``with_no_new_privileges``): set-uid programs such as ``su`` and
``ping`` keep working in images that expect them to.

As in docker, ``/sys/fs/cgroup`` is mounted read-only and shows the
container's own cgroups (runc mounts each hierarchy's container path on v1,
a cgroup2 mount in the container's cgroup namespace on v2), and
``with_security`` adds docker's default seccomp profile (``ctl.runtime.seccomp``)
and, where the host has AppArmor, ctl's default AppArmor profile.

Order matters, as in containerd: ``with_image_config`` comes first (it sets
the command, environment, working directory and user from the image), then
the options from flags, each refining what came before it. Options that add
an environment variable only when it is missing (``with_tty``'s TERM,
``with_hostname``'s HOSTNAME) and ``with_hosts_files`` (which leaves a user's
own mount of /etc/hosts alone) give the same result in any position.

Example, what ``ctl run -t -v /data:/data:ro --memory 512m IMAGE sh`` builds::

    spec = generate_spec(
        with_image_config(image_config, rootfs, args=["sh"]),
        with_hostname(container_id[:12]),
        with_tty,
        with_mounts([parse_volume("/data:/data:ro")]),
        with_memory_limit(parse_memory("512m")),
        with_cgroups_path(f"/ctl/{namespace}/{container_id}"),
    )
"""

from __future__ import annotations

import functools
import os
import posixpath
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ctl.errdefs import FailedPrecondition, InvalidArgument, NotFound
from ctl.runtime.runopts import parse_signal, parse_user
from ctl.runtime.users import resolve_user

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from ctl.containers.container import MountSpec
    from ctl.runtime.resources import Resources
    from ctl.runtime.runopts import (
        DeviceMapping,
        DeviceRule,
        NamespaceMode,
        SecurityOptions,
    )

Spec = dict[str, Any]
SpecOpt = Callable[[Spec], None]

# runc 1.1 implements runtime-spec 1.0.2.
OCI_VERSION = "1.0.2"
DEFAULT_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# OCI image-spec's conversion.md keeps an image's StopSignal under this annotation.
ANNOTATION_STOP_SIGNAL = "org.opencontainers.image.stopSignal"
# with_init bind-mounts the init binary here, as docker does with /sbin/docker-init.
INIT_PATH = "/sbin/ctl-init"
# Static init binaries that take ``-- PROG ARGS``: podman's catatonit, then tini.
INIT_BINARIES = ("/usr/bin/catatonit", "/usr/libexec/podman/catatonit", "/usr/bin/tini-static")

# Every capability Linux defines, in number order: ALL_CAPABILITIES[n] is capability n.
# fmt: off
ALL_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT", "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT", "CAP_SYS_NICE", "CAP_SYS_RESOURCE", "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE", "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
    "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)
# fmt: on
# containerd 1.x's and docker's default set (containerd 2.0 dropped five of them;
# docker users expect ping, chroot and mknod to work, so ctl keeps the 14).
# fmt: off
DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
    "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)
# fmt: on
MASKED_PATHS: tuple[str, ...] = (
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    "/proc/scsi",
)
READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)
# (major, minor) of the character devices every container may use; minor None is any.
DEFAULT_DEVICES: tuple[tuple[int, int | None], ...] = (
    (1, 3),  # null
    (1, 8),  # random
    (1, 7),  # full
    (5, 0),  # tty
    (1, 5),  # zero
    (1, 9),  # urandom
    (5, 1),  # console
    (136, None),  # pts/*
    (5, 2),  # ptmx
)
# fmt: off
RLIMITS = frozenset((
    "RLIMIT_AS", "RLIMIT_CORE", "RLIMIT_CPU", "RLIMIT_DATA", "RLIMIT_FSIZE",
    "RLIMIT_LOCKS", "RLIMIT_MEMLOCK", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_NOFILE",
    "RLIMIT_NPROC", "RLIMIT_RSS", "RLIMIT_RTPRIO", "RLIMIT_RTTIME", "RLIMIT_SIGPENDING",
    "RLIMIT_STACK",
))
# fmt: on
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOSTNAME = rf"{_LABEL}(?:\.{_LABEL})*"  # compiled on first use: most runs set none


def default_spec() -> Spec:
    """default_spec returns a new hardened spec with no command: see the module docstring."""
    caps = list(DEFAULT_CAPABILITIES)
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": [],
            "env": [DEFAULT_PATH_ENV],
            "cwd": "/",
            "capabilities": {
                "bounding": list(caps),
                "effective": list(caps),
                "permitted": list(caps),
                "inheritable": [],
                "ambient": [],
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": False,
        },
        "root": {"path": "rootfs", "readonly": False},
        "mounts": [
            _mount("/proc", "proc", "proc", "nosuid", "noexec", "nodev"),
            _mount("/dev", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k"),
            _mount(
                "/dev/pts",
                "devpts",
                "devpts",
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ),
            _mount(
                "/dev/shm", "tmpfs", "shm", "nosuid", "noexec", "nodev", "mode=1777", "size=65536k"
            ),
            _mount("/dev/mqueue", "mqueue", "mqueue", "nosuid", "noexec", "nodev"),
            _mount("/sys", "sysfs", "sysfs", "nosuid", "noexec", "nodev", "ro"),
            _mount("/sys/fs/cgroup", "cgroup", "cgroup", "nosuid", "noexec", "nodev", "ro"),
            _mount("/run", "tmpfs", "tmpfs", "nosuid", "strictatime", "mode=755", "size=65536k"),
        ],
        "linux": {
            "resources": {
                "devices": [{"allow": False, "access": "rwm"}]
                + [
                    {"allow": True, "type": "c", "major": major, "access": "rwm"}
                    | ({} if minor is None else {"minor": minor})
                    for major, minor in DEFAULT_DEVICES
                ]
            },
            "namespaces": [{"type": t} for t in ("pid", "ipc", "uts", "mount", "network")],
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
        },
    }


def _mount(destination: str, type_: str, source: str, *options: str) -> dict[str, Any]:
    return {"destination": destination, "type": type_, "source": source, "options": list(options)}


def generate_spec(*opts: SpecOpt) -> Spec:
    """generate_spec returns ``default_spec()`` with ``opts`` applied in order."""
    spec = default_spec()
    for opt in opts:
        opt(spec)
    return spec


def _process(spec: Spec) -> dict[str, Any]:
    process: dict[str, Any] = spec.setdefault("process", {})
    return process


def _linux(spec: Spec) -> dict[str, Any]:
    linux: dict[str, Any] = spec.setdefault("linux", {})
    return linux


def _resources(spec: Spec) -> dict[str, Any]:
    resources: dict[str, Any] = _linux(spec).setdefault("resources", {})
    return resources


def merge_env(base: Sequence[str], overrides: Sequence[str]) -> list[str]:
    """merge_env returns ``base`` with each KEY=VALUE of ``overrides`` replacing or appended."""
    merged = {entry.partition("=")[0]: entry for entry in base}
    for entry in overrides:
        key, sep, _ = entry.partition("=")
        if not key or not sep:
            raise InvalidArgument(f"invalid environment variable {entry!r}: want KEY=VALUE")
        merged[key] = entry
    return list(merged.values())


def _set_env_default(spec: Spec, entry: str) -> None:
    process = _process(spec)
    env: list[str] = process.setdefault("env", [])
    key = entry.partition("=")[0] + "="
    if not any(e.startswith(key) for e in env):
        env.append(entry)


def with_image_config(
    config: Mapping[str, Any],
    rootfs: Path,
    *,
    args: Sequence[str] = (),
    entrypoint: Sequence[str] | None = None,
    user: str = "",
) -> SpecOpt:
    """with_image_config applies an image config document (the blob, with its "config" key).

    As docker does: the image's Env over the default PATH; the command is
    Entrypoint + Cmd, where ``args`` replace Cmd and ``entrypoint`` (--entrypoint,
    ``[]`` for an empty one) replaces Entrypoint and drops Cmd; WorkingDir (or /);
    ``user`` (-u), or else the image's User, looked up in ``rootfs`` (which must
    be mounted); StopSignal kept in the ANNOTATION_STOP_SIGNAL annotation.
    An image config with the wrong types, or no command at all, is InvalidArgument.
    """
    raw = config.get("config")
    cfg: Mapping[str, Any] = raw if isinstance(raw, dict) else {}

    def opt(spec: Spec) -> None:
        process = _process(spec)
        process["env"] = merge_env(process.get("env", []), _strings(cfg, "Env"))
        command = list(entrypoint) if entrypoint is not None else _strings(cfg, "Entrypoint")
        if args:
            command += args
        elif entrypoint is None:
            command += _strings(cfg, "Cmd")
        if not command:
            raise InvalidArgument(
                "no command specified: the image has no Entrypoint or Cmd",
                hint="give a command after the image name",
            )
        process["args"] = command
        workdir = _string(cfg, "WorkingDir")
        process["cwd"] = posixpath.normpath(posixpath.join("/", workdir))
        with_user(user or _string(cfg, "User") or "0", rootfs)(spec)
        stop = _string(cfg, "StopSignal")
        if stop:
            parse_signal(stop)
            spec.setdefault("annotations", {})[ANNOTATION_STOP_SIGNAL] = stop

    return opt


def _strings(cfg: Mapping[str, Any], key: str) -> list[str]:
    value = cfg.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"invalid image config: {key} is not a list of strings")
    return list(value)


def _string(cfg: Mapping[str, Any], key: str) -> str:
    value = cfg.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidArgument(f"invalid image config: {key} is not a string")
    return value


def stop_signal(spec: Spec) -> int:
    """stop_signal is the signal ``stop`` sends first: the image's StopSignal, else SIGTERM."""
    value = spec.get("annotations", {}).get(ANNOTATION_STOP_SIGNAL)
    return parse_signal(value) if value else int(signal.SIGTERM)


def with_process_args(args: Sequence[str]) -> SpecOpt:
    """with_process_args replaces the whole command line, Entrypoint included."""
    if not args:
        raise InvalidArgument("no command specified")

    def opt(spec: Spec) -> None:
        _process(spec)["args"] = list(args)

    return opt


def with_user(user: str, rootfs: Path) -> SpecOpt:
    """with_user sets uid, gid and additional gids from ``user`` (name|uid[:group|gid]).

    Names are looked up in ``rootfs``'s /etc/passwd and /etc/group
    (``ctl.runtime.users``); the additional gids are the primary gid and the
    groups that list the user as a member.
    """
    parsed = parse_user(user)

    def opt(spec: Spec) -> None:
        resolved = resolve_user(rootfs, parsed)
        _process(spec)["user"] = {
            "uid": resolved.uid,
            "gid": resolved.gid,
            "additionalGids": list(resolved.additional_gids),
        }

    return opt


def with_env(env: Sequence[str]) -> SpecOpt:
    """with_env sets KEY=VALUE variables (``parse_env`` output), replacing earlier values."""

    def opt(spec: Spec) -> None:
        process = _process(spec)
        process["env"] = merge_env(process.get("env", []), env)

    return opt


def with_cwd(cwd: str) -> SpecOpt:
    """with_cwd sets the working directory; it must be absolute, as docker requires."""
    if not cwd.startswith("/"):
        raise InvalidArgument(f"invalid working directory {cwd!r}: must be an absolute path")

    def opt(spec: Spec) -> None:
        _process(spec)["cwd"] = posixpath.normpath(cwd)

    return opt


def with_hostname(hostname: str) -> SpecOpt:
    """with_hostname sets the UTS hostname and, unless set already, HOSTNAME as docker does."""
    if len(hostname) > 64 or not re.fullmatch(_HOSTNAME, hostname):
        raise InvalidArgument(
            f"invalid hostname {hostname!r}: want letters, digits, - and . (at most 64)"
        )

    def opt(spec: Spec) -> None:
        spec["hostname"] = hostname
        _set_env_default(spec, f"HOSTNAME={hostname}")

    return opt


def with_tty(spec: Spec) -> None:
    """with_tty gives the process a terminal, and TERM=xterm unless TERM is set."""
    _process(spec)["terminal"] = True
    _set_env_default(spec, "TERM=xterm")


def with_mounts(mounts: Sequence[MountSpec]) -> SpecOpt:
    """with_mounts adds ``-v`` and ``--mount`` mounts (``parse_volume``/``parse_mount`` output).

    A mount replaces any earlier one at the same destination (a default /run,
    say); mounts are added parents first so that ``/a`` never hides ``/a/b``.
    Two mounts at one destination are InvalidArgument; a bind source that does
    not exist is NotFound (docker's ``-v`` would create it; ctl, like podman,
    does not create host directories behind a user's back).
    """
    seen: set[str] = set()
    for mount in mounts:
        destination = posixpath.normpath(mount.destination)
        if destination in seen:
            raise InvalidArgument(f"duplicate mount point {destination}")
        seen.add(destination)
        if mount.type == "bind" and not os.path.exists(mount.source):
            raise NotFound(f"bind source path {mount.source}: no such file or directory")
    ordered = sorted(mounts, key=lambda m: posixpath.normpath(m.destination).count("/"))

    def opt(spec: Spec) -> None:
        kept = [
            m
            for m in spec.get("mounts", [])
            if posixpath.normpath(m.get("destination", "")) not in seen
        ]
        spec["mounts"] = kept + [_oci_mount(m) for m in ordered]

    return opt


def _oci_mount(mount: MountSpec) -> dict[str, Any]:
    destination = posixpath.normpath(mount.destination)
    access = "ro" if mount.readonly else "rw"
    if mount.type == "bind":
        propagation = [mount.propagation] if mount.propagation else []
        return _mount(destination, "bind", mount.source, "rbind", access, *propagation)
    options = ["nosuid", "nodev", "noexec", access]
    if mount.tmpfs_size is not None:
        options.append(f"size={mount.tmpfs_size}")
    if mount.tmpfs_mode is not None:
        options.append(f"mode={mount.tmpfs_mode:o}")
    return _mount(destination, "tmpfs", "tmpfs", *options)


def with_readonly_rootfs(spec: Spec) -> None:
    """with_readonly_rootfs mounts the container's root filesystem read-only (--read-only)."""
    spec.setdefault("root", {})["readonly"] = True


def normalize_capability(name: str) -> str:
    """normalize_capability accepts ``NET_ADMIN``, ``cap_net_admin`` or ``ALL``."""
    upper = name.strip().upper()
    if upper == "ALL":
        return upper
    cap = upper if upper.startswith("CAP_") else "CAP_" + upper
    if cap not in ALL_CAPABILITIES:
        raise InvalidArgument(f"unknown capability {name!r}")
    return cap


def with_capabilities(add: Sequence[str] = (), drop: Sequence[str] = ()) -> SpecOpt:
    """with_capabilities applies --cap-add and --cap-drop with docker's rules.

    ALL in ``add`` gives every capability ctl holds (``host_capabilities``)
    except those dropped; ALL in
    ``drop`` keeps only those added; otherwise the current set minus ``drop``
    plus ``add`` (a capability in both is kept).
    """
    adds = [normalize_capability(c) for c in add]
    drops = [normalize_capability(c) for c in drop]

    def opt(spec: Spec) -> None:
        caps = _process(spec).setdefault("capabilities", {})
        if "ALL" in adds:
            result = [c for c in host_capabilities() if c not in drops]
        else:
            kept = [] if "ALL" in drops else [c for c in caps.get("bounding", []) if c not in drops]
            result = list(dict.fromkeys(kept + adds))
        _set_capabilities(caps, result)

    return opt


def _set_capabilities(caps: dict[str, Any], result: list[str]) -> None:
    for key in ("bounding", "effective", "permitted"):
        caps[key] = list(result)
    for key in ("inheritable", "ambient"):
        caps[key] = [c for c in caps.get(key, []) if c in result]


@functools.cache
def host_capabilities() -> tuple[str, ...]:
    """host_capabilities is the bounding set of this process, the most a container can get.

    runc cannot grant a capability its caller lacks ("unable to apply caps"),
    and ctl may run in a container or a sandbox without all of them, so
    "every capability" means every one in this set, as containerd's
    WithAllCurrentCapabilities does.
    """
    with open("/proc/self/status", encoding="ascii") as f:
        line = next(line for line in f if line.startswith("CapBnd:"))
    mask = int(line.split()[1], 16)
    return tuple(cap for n, cap in enumerate(ALL_CAPABILITIES) if mask >> n & 1)


def with_privileged(spec: Spec) -> None:
    """with_privileged lifts the hardening: --privileged.

    Every capability ctl holds (``host_capabilities``), no masked or read-only
    paths, a writable /sys and /sys/fs/cgroup, every device allowed by the
    device cgroup, the host's /dev bind-mounted in place of the private one,
    and no seccomp profile.
    """
    _set_capabilities(_process(spec).setdefault("capabilities", {}), list(host_capabilities()))
    linux = _linux(spec)
    linux["maskedPaths"] = []
    linux["readonlyPaths"] = []
    linux.pop("seccomp", None)
    _resources(spec)["devices"] = [{"allow": True, "access": "rwm"}]
    for mount in spec.get("mounts", []):
        if mount.get("type") in ("sysfs", "cgroup"):
            mount["options"] = ["rw" if o == "ro" else o for o in mount.get("options", [])]
        elif mount.get("destination") == "/dev" and mount.get("type") == "tmpfs":
            mount.update(_mount("/dev", "bind", "/dev", "rbind", "nosuid", "rw"))


def with_no_new_privileges(spec: Spec) -> None:
    """with_no_new_privileges keeps set-uid programs and file capabilities from adding any."""
    _process(spec)["noNewPrivileges"] = True


def with_seccomp_unconfined(spec: Spec) -> None:
    """with_seccomp_unconfined removes any seccomp profile (--security-opt seccomp=unconfined)."""
    _linux(spec).pop("seccomp", None)


def with_security(security: SecurityOptions | None, privileged: bool = False) -> SpecOpt:
    """with_security confines the container as ``--security-opt`` and ``--privileged`` say.

    Every container gets docker's default seccomp profile, or the one given,
    unless privileged (a given profile applies even then) or unconfined; apply
    it after the capabilities, which the profile's rules depend on. Where the
    host has AppArmor, it gets the profile asked for, else ``ctl-default``
    (unconfined if privileged); building this option loads ``ctl-default``
    into the kernel the first time (``ctl.runtime.apparmor``), the one thing
    in this module that touches the host.
    """
    from ctl.runtime import apparmor
    from ctl.runtime.runopts import SecurityOptions

    security = security or SecurityOptions()
    profile = apparmor.container_profile(security.apparmor, privileged)

    def opt(spec: Spec) -> None:
        if security.no_new_privileges:
            with_no_new_privileges(spec)
        if security.seccomp_unconfined or (privileged and security.seccomp_profile is None):
            with_seccomp_unconfined(spec)
        else:
            with_seccomp(security.seccomp_profile)(spec)
        if profile is not None:
            _process(spec)["apparmorProfile"] = profile
        if security.systempaths_unconfined:
            _linux(spec).update(maskedPaths=[], readonlyPaths=[])

    return opt


def with_memory_limit(limit: int) -> SpecOpt:
    """with_memory_limit sets the memory cgroup limit in bytes (--memory); swap is left alone."""
    from ctl.runtime.resources import Resources

    return with_resources(Resources(memory=limit))


def with_cpus(cpus: float) -> SpecOpt:
    """with_cpus sets a CFS quota of ``cpus`` CPUs over a 100 ms period (--cpus)."""
    from ctl.runtime.resources import Resources

    return with_resources(Resources(cpus=cpus))


def with_pids_limit(limit: int) -> SpecOpt:
    """with_pids_limit caps the number of processes; 0 or less means no limit, as in docker."""

    def opt(spec: Spec) -> None:
        if limit > 0:
            _resources(spec)["pids"] = {"limit": limit}
        else:
            _resources(spec).pop("pids", None)

    return opt


def with_cgroups_path(path: str) -> SpecOpt:
    """with_cgroups_path places the container's cgroup (``/ctl/<namespace>/<id>`` by convention)."""

    def opt(spec: Spec) -> None:
        _linux(spec)["cgroupsPath"] = path

    return opt


def with_host_network(spec: Spec) -> None:
    """with_host_network leaves the container in the host's network namespace (--net host)."""
    linux = _linux(spec)
    linux["namespaces"] = [n for n in linux.get("namespaces", []) if n.get("type") != "network"]


def with_rlimits(rlimits: Mapping[str, tuple[int, int]]) -> SpecOpt:
    """with_rlimits sets (soft, hard) per resource: ``NOFILE`` or ``RLIMIT_NOFILE``."""
    entries = []
    for name, (soft, hard) in rlimits.items():
        kind = name.upper() if name.upper().startswith("RLIMIT_") else "RLIMIT_" + name.upper()
        if kind not in RLIMITS:
            raise InvalidArgument(f"unknown rlimit {name!r}")
        if not 0 <= soft <= hard:
            raise InvalidArgument(
                f"invalid rlimit {name}: want 0 <= soft ({soft}) <= hard ({hard})"
            )
        entries.append({"type": kind, "hard": hard, "soft": soft})

    def opt(spec: Spec) -> None:
        process = _process(spec)
        replaced = {e["type"] for e in entries}
        kept = [r for r in process.get("rlimits", []) if r.get("type") not in replaced]
        process["rlimits"] = kept + entries

    return opt


def with_annotations(annotations: Mapping[str, str]) -> SpecOpt:
    """with_annotations adds or replaces OCI annotations."""

    def opt(spec: Spec) -> None:
        spec.setdefault("annotations", {}).update(annotations)

    return opt


def find_init_binary() -> Path:
    """find_init_binary returns the first of INIT_BINARIES on this host (for --init)."""
    for candidate in INIT_BINARIES:
        if os.path.isfile(candidate):
            return Path(candidate)
    raise FailedPrecondition(
        "--init needs a static init binary: none of " + ", ".join(INIT_BINARIES) + " exists",
        hint="apt-get install catatonit",
    )


def with_init(init_binary: Path) -> SpecOpt:
    """with_init runs the command under a small init as PID 1 (--init), as docker does.

    ``init_binary`` (see ``find_init_binary``) is bind-mounted read-only at
    INIT_PATH and the command becomes ``INIT_PATH -- ARGS``: the init reaps
    zombies and forwards signals. Apply it after the command is set.
    """

    def opt(spec: Spec) -> None:
        process = _process(spec)
        if not process.get("args"):
            raise InvalidArgument("--init: no command to run under the init")
        process["args"] = [INIT_PATH, "--", *process["args"]]
        spec.setdefault("mounts", []).append(
            _mount(INIT_PATH, "bind", str(init_binary), "bind", "ro", "nosuid", "nodev")
        )

    return opt


def with_hosts_files(*, hosts: Path, hostname: Path, resolv_conf: Path) -> SpecOpt:
    """with_hosts_files bind-mounts ctl's files over /etc/hosts, /etc/hostname, /etc/resolv.conf.

    They are writable, as in docker. A destination the user mounted already is left alone.
    """
    files = {"/etc/hosts": hosts, "/etc/hostname": hostname, "/etc/resolv.conf": resolv_conf}

    def opt(spec: Spec) -> None:
        mounts = spec.setdefault("mounts", [])
        taken = {posixpath.normpath(m.get("destination", "")) for m in mounts}
        for destination, source in files.items():
            if destination not in taken:
                mounts.append(_mount(destination, "bind", str(source), "rbind", "rw"))

    return opt


# Network and lifecycle flags of one container (netl).


def with_domainname(domainname: str) -> SpecOpt:
    """with_domainname sets the UTS namespace's NIS domain name (--domainname).

    runc before 1.2 ignores the spec's ``domainname``; the namespaced sysctl
    ``kernel.domainname``, which runc writes inside the container, sets it on every
    version.
    """

    def opt(spec: Spec) -> None:
        spec["domainname"] = domainname
        _linux(spec).setdefault("sysctl", {})["kernel.domainname"] = domainname

    return opt


def with_stop_signal(value: str) -> SpecOpt:
    """with_stop_signal replaces the image's StopSignal (--stop-signal); ``stop`` reads it back."""
    parse_signal(value)
    return with_annotations({ANNOTATION_STOP_SIGNAL: value})


def with_tmpfs(tmpfs: Sequence[tuple[str, Sequence[str]]]) -> SpecOpt:
    """with_tmpfs mounts a tmpfs at each destination with its options (``parse_tmpfs``).

    It replaces any earlier mount at the same destination (the default /dev/shm,
    say), and mounts stay ordered parents first.
    """

    def opt(spec: Spec) -> None:
        destinations = {destination for destination, _ in tmpfs}
        mounts = [
            m
            for m in spec.get("mounts", [])
            if posixpath.normpath(m.get("destination", "")) not in destinations
        ]
        mounts += [_mount(d, "tmpfs", "tmpfs", *options) for d, options in tmpfs]
        spec["mounts"] = sorted(mounts, key=lambda m: m["destination"].rstrip("/").count("/"))

    return opt


# Security (sec): seccomp and the cgroup namespace.


def with_seccomp(profile: Mapping[str, Any] | None = None) -> SpecOpt:
    """with_seccomp sets a docker-format seccomp profile, docker's default if None.

    Its rules are chosen for the bounding capabilities the spec has when the
    option runs (``ctl.runtime.seccomp.oci_seccomp``).
    """

    def opt(spec: Spec) -> None:
        from ctl.runtime import seccomp

        capabilities = _process(spec).get("capabilities", {}).get("bounding", [])
        chosen = seccomp.DEFAULT_PROFILE if profile is None else profile
        converted = seccomp.oci_seccomp(chosen, capabilities)
        if converted is None:
            with_seccomp_unconfined(spec)
        else:
            _linux(spec)["seccomp"] = converted

    return opt


CGROUPNS_MODES = ("host", "private")


def default_cgroupns() -> str:
    """default_cgroupns is docker's: private on cgroup v2, the host's on v1."""
    from ctl.runtime.cgroups import is_v2

    return "private" if is_v2() else "host"


def with_cgroupns(mode: str) -> SpecOpt:
    """with_cgroupns gives the container its own cgroup namespace (private) or the host's."""
    if mode not in CGROUPNS_MODES:
        raise InvalidArgument(f"invalid cgroup namespace mode {mode!r}: want host or private")

    def opt(spec: Spec) -> None:
        linux = _linux(spec)
        namespaces = [n for n in linux.get("namespaces", []) if n.get("type") != "cgroup"]
        if mode == "private":
            namespaces.append({"type": "cgroup"})
        linux["namespaces"] = namespaces

    return opt


# Resources, devices and namespaces (issue 11, groups 2 to 4).


def with_resources(resources: Resources) -> SpecOpt:
    """with_resources sets the cgroup limits of ``resources``, leaving the others as they are.

    Each part (memory, cpu, blockIO, pids) is merged key by key into what an
    earlier option set (``with_cpus``'s quota, say).
    """
    wanted = resources.validate().linux_resources()

    def opt(spec: Spec) -> None:
        current = _resources(spec)
        for key, part in wanted.items():
            current[key] = {**current.get(key, {}), **part}

    return opt


def with_oom_score_adj(score: int) -> SpecOpt:
    """with_oom_score_adj sets the process's OOM score adjustment (--oom-score-adj)."""

    def opt(spec: Spec) -> None:
        _process(spec)["oomScoreAdj"] = score

    return opt


def _shm_mount(spec: Spec) -> dict[str, Any] | None:
    return next((m for m in spec.get("mounts", []) if m.get("destination") == "/dev/shm"), None)


def with_shm_size(size: int) -> SpecOpt:
    """with_shm_size sets the size of the container's own /dev/shm tmpfs (--shm-size)."""
    if size <= 0:
        raise InvalidArgument(f"invalid shm size {size}: want more than 0 bytes")

    def opt(spec: Spec) -> None:
        mount = _shm_mount(spec)
        if mount is not None and mount.get("type") == "tmpfs":
            options = [o for o in mount.get("options", []) if not o.startswith("size=")]
            mount["options"] = [*options, f"size={size}"]

    return opt


def with_sysctls(sysctls: Mapping[str, str]) -> SpecOpt:
    """with_sysctls sets namespaced sysctls (``parse_sysctls`` checked them)."""

    def opt(spec: Spec) -> None:
        _linux(spec).setdefault("sysctl", {}).update(sysctls)

    return opt


def with_devices(mappings: Sequence[DeviceMapping]) -> SpecOpt:
    """with_devices adds host devices (--device): the node, and the device cgroup's leave.

    A directory adds every device below it, as docker does (``/dev/snd``).
    Each node keeps the host's major, minor, mode, uid and gid.
    """
    nodes: list[tuple[dict[str, Any], str]] = []
    for mapping in mappings:
        found = _host_devices(mapping.host_path, mapping.container_path)
        if not found:
            raise InvalidArgument(f"--device {mapping.host_path}: no device found there")
        nodes += [(node, mapping.permissions) for node in found]

    def opt(spec: Spec) -> None:
        linux = _linux(spec)
        taken = {node["path"] for node, _ in nodes}
        devices = [d for d in linux.get("devices", []) if d.get("path") not in taken]
        linux["devices"] = devices + [node for node, _ in nodes]
        allowed = _resources(spec).setdefault("devices", [])
        for node, access in nodes:
            allowed.append(
                {
                    "allow": True,
                    "type": node["type"],
                    "major": node["major"],
                    "minor": node["minor"],
                    "access": access,
                }
            )

    return opt


def _host_devices(host_path: str, container_path: str) -> list[dict[str, Any]]:
    """_host_devices are the OCI device nodes at ``host_path``, a device or a directory."""
    import stat

    resolved = os.path.realpath(host_path)
    if not os.path.isdir(resolved):
        node = _device_node(resolved, container_path)
        if node is None:
            raise InvalidArgument(f"--device {host_path}: not a device")
        return [node]
    found = []
    for directory, _, names in os.walk(resolved):
        for name in sorted(names):
            path = os.path.join(directory, name)
            if stat.S_ISLNK(os.lstat(path).st_mode):
                continue
            inside = posixpath.join(container_path, os.path.relpath(path, resolved))
            node = _device_node(path, inside)
            if node is not None:
                found.append(node)
    return found


def _device_node(path: str, container_path: str) -> dict[str, Any] | None:
    import stat

    try:
        st = os.stat(path)
    except OSError as err:
        raise InvalidArgument(f"--device {path}: {err.strerror}") from None
    if stat.S_ISCHR(st.st_mode):
        kind = "c"
    elif stat.S_ISBLK(st.st_mode):
        kind = "b"
    else:
        return None
    return {
        "path": posixpath.normpath(container_path),
        "type": kind,
        "major": os.major(st.st_rdev),
        "minor": os.minor(st.st_rdev),
        "fileMode": stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
    }


def with_device_cgroup_rules(rules: Sequence[DeviceRule]) -> SpecOpt:
    """with_device_cgroup_rules allows more devices in the device cgroup (--device-cgroup-rule)."""

    def opt(spec: Spec) -> None:
        allowed = _resources(spec).setdefault("devices", [])
        for rule in rules:
            entry: dict[str, Any] = {"allow": True, "type": rule.type, "access": rule.access}
            if rule.major is not None:
                entry["major"] = rule.major
            if rule.minor is not None:
                entry["minor"] = rule.minor
            allowed.append(entry)

    return opt


def with_group_add(groups: Sequence[str], rootfs: Path) -> SpecOpt:
    """with_group_add adds supplementary groups (--group-add): gids, or names in ``rootfs``."""
    from ctl.runtime.users import resolve_group_ids

    def opt(spec: Spec) -> None:
        user = _process(spec).setdefault("user", {"uid": 0, "gid": 0})
        gids: list[int] = user.setdefault("additionalGids", [])
        gids += [gid for gid in resolve_group_ids(rootfs, groups) if gid not in gids]

    return opt


def _without_namespace(spec: Spec, kind: str) -> None:
    linux = _linux(spec)
    linux["namespaces"] = [n for n in linux.get("namespaces", []) if n.get("type") != kind]


def _joining(spec: Spec, kind: str, container_id: str) -> None:
    from ctl.runtime.namespaces import container_path

    _without_namespace(spec, kind)
    entry = {"type": kind, "path": container_path(container_id)}
    _linux(spec).setdefault("namespaces", []).append(entry)


def with_pid_mode(mode: NamespaceMode) -> SpecOpt:
    """with_pid_mode is --pid: ``host`` shares the host's PID namespace, ``container`` another's.

    ``container`` is resolved when the task starts (``ctl.runtime.namespaces``).
    """

    def opt(spec: Spec) -> None:
        if mode.mode == "host":
            _without_namespace(spec, "pid")
        elif mode.mode == "container":
            _joining(spec, "pid", mode.container)

    return opt


def with_ipc_mode(mode: NamespaceMode) -> SpecOpt:
    """with_ipc_mode is --ipc, as docker has it.

    ``host``: the host's IPC namespace and its /dev/shm; ``container``: the
    other container's, joined when the task starts (its /dev/shm is not
    shared: see ``ctl.runtime.namespaces``);
    ``none``: an own namespace without /dev/shm; ``private`` and
    ``shareable``: an own namespace (any container's can be joined).
    """

    def opt(spec: Spec) -> None:
        shm = _shm_mount(spec)
        if mode.mode == "host":
            _without_namespace(spec, "ipc")
            if shm is not None:
                shm.update(_mount("/dev/shm", "bind", "/dev/shm", "rbind", "nosuid", "nodev"))
        elif mode.mode == "container":
            _joining(spec, "ipc", mode.container)
        elif mode.mode == "none" and shm is not None:
            spec["mounts"].remove(shm)

    return opt


def with_host_uts(spec: Spec) -> None:
    """with_host_uts shares the host's UTS namespace (--uts host): runc then sets no hostname."""
    _without_namespace(spec, "uts")
    spec.pop("hostname", None)


def with_cgroup_parent(parent: str) -> SpecOpt:
    """with_cgroup_parent moves the container's cgroup under ``parent`` (--cgroup-parent)."""

    def opt(spec: Spec) -> None:
        name = posixpath.basename(_linux(spec).get("cgroupsPath", "")) or "ctl"
        _linux(spec)["cgroupsPath"] = posixpath.join(parent, name)

    return opt
