"""The flags of ``create`` and ``run``, in docker's groups, and their ContainerOptions.

Each group is a pair: ``_<group>_flags`` declares the flags, and
``_<group>_options`` turns their values into ContainerOptions fields. A bad
value is one InvalidArgument that names the flag.
"""

from __future__ import annotations

import os
import sys

from ctl.commands._base import add_platform, complete, complete_images, complete_networks
from ctl.errdefs import InvalidArgument

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from typing import Any

    from ctl.commands._base import Context
    from ctl.containers.container import Container
    from ctl.containers.create import ContainerOptions
    from ctl.runtime.resources import Resources
    from ctl.runtime.runopts import NamespaceMode


def create_flags(parser: argparse.ArgumentParser) -> None:
    _general_flags(parser)
    _storage_flags(parser)
    _network_flags(parser)
    _resource_flags(parser)
    _security_flags(parser)
    _lifecycle_flags(parser)
    _refused_flags(parser)
    _device_flags(parser)
    _namespace_flags(parser)
    _logging_flags(parser)
    _health_flags(parser)
    add = parser.add_argument
    complete(add("image", metavar="IMAGE"), complete_images)
    add("command", nargs="...", metavar="COMMAND")


def container_options(args: argparse.Namespace, ctx: Context) -> ContainerOptions:
    """container_options turns create/run flags into ContainerOptions."""
    from ctl.containers.create import ContainerOptions

    return ContainerOptions(
        **_general_options(args),
        **_storage_options(args),
        **_network_options(args, ctx),
        **_resource_options(args),
        **_security_options(args),
        **_lifecycle_options(args),
        **_device_options(args),
        **_namespace_options(args, ctx),
        **_logging_options(args),
        **_health_options(args),
    )


def _flag(flag: str, parse: Any, value: Any) -> Any:
    """_flag parses one flag's value, naming the flag in the error."""
    try:
        return parse(value)
    except InvalidArgument as err:
        raise InvalidArgument(f"{flag}: {err}", hint=err.hint) from None


# General: identity, the command, its environment and lifecycle.


def _general_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--name", help="container name")
    add("--rm", action="store_true", help="remove the container when it exits")
    add("-i", "--interactive", action="store_true", help="keep stdin open")
    add("-t", "--tty", action="store_true", help="allocate a terminal")
    add("-e", "--env", action="append", default=[], metavar="K=V", help="set an variable")
    add("--env-file", action="append", default=[], metavar="FILE", help="read K=V lines")
    add("-w", "--workdir", type=_workdir, help="working directory inside the container")
    add("-u", "--user", help="user[:group] (name or id)")
    add("--entrypoint", help="override the image's entrypoint")
    add("-l", "--label", action="append", default=[], metavar="K=V", help="set a label")
    add("--init", action="store_true", help="run an init that reaps zombies as PID 1")
    add("--restart", default="no", help="no, on-failure[:N], always, unless-stopped")
    add_platform(parser, "os/arch[/variant] of the image")
    add("--pull", default="missing", help="missing, always or never")
    add("--label-file", action="append", default=[], metavar="FILE", help="read K=V label lines")


def _general_options(args: argparse.Namespace) -> dict[str, Any]:
    from ctl.containers.create import PULL_POLICIES
    from ctl.runtime import runopts

    if args.pull not in PULL_POLICIES:
        raise InvalidArgument(f"invalid --pull {args.pull!r}: use missing, always or never")
    env: list[str] = []
    for path in args.env_file:
        env += _flag("--env-file", runopts.parse_env_file, path)
    env += _flag("-e", runopts.parse_env, args.env)
    restart = _flag("--restart", runopts.parse_restart, args.restart)
    if restart.name != "no" and args.rm:
        raise InvalidArgument("--restart and --rm cannot be used together")
    if args.platform:
        from ctl.reference import parse_platform

        platform = parse_platform(args.platform)
    else:
        platform = None
    return {
        "name": args.name,
        "args": tuple(args.command),
        "entrypoint": (tuple(args.entrypoint.split()) if args.entrypoint else ())
        if args.entrypoint is not None
        else None,
        "env": tuple(env),
        "workdir": args.workdir,
        "user": args.user,
        "labels": _labels(args),
        "init": args.init,
        "restart": restart if restart.name != "no" else None,
        "tty": args.tty,
        "stdin": args.interactive,
        "rm": args.rm,
        "platform": platform,
        "pull": args.pull,
    }


def _labels(args: argparse.Namespace) -> dict[str, str]:
    from ctl.runtime import runopts

    lines: list[str] = []
    for path in args.label_file:
        lines += _flag("--label-file", runopts.parse_label_file, path)
    # --label comes last: it wins over --label-file, as in docker.
    return _flag("--label", runopts.parse_labels, lines + args.label)  # type: ignore[no-any-return]


# Values the spec checks, checked while parsing as well: create validates them
# only once it has prepared the container's snapshot.


def _workdir(text: str) -> str:
    # docker's: an empty one is the image's (create leaves the spec's cwd as it is).
    if text:
        from ctl.runtime.spec import with_cwd

        with_cwd(text)
    return text


def _hostname(text: str) -> str:
    from ctl.runtime.spec import with_hostname

    with_hostname(text)
    return text


def network_alias(text: str) -> str:
    """network_alias accepts a name on a network (``--network-alias``, ``connect --alias``)."""
    return _flag("--network-alias", _hostname, text)  # type: ignore[no-any-return]


def _capability(text: str) -> str:
    from ctl.runtime.spec import normalize_capability

    normalize_capability(text)
    return text


# Storage: bind mounts, tmpfs, volumes.


def _storage_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add(
        "-v",
        "--volume",
        action="append",
        default=[],
        metavar="[SRC:]DST[:OPTS]",
        help="bind mount a host path, or mount a volume (made if missing)",
    )
    add("--mount", action="append", default=[], metavar="SPEC", help="type=volume|bind|tmpfs,...")
    add(
        "--volumes-from",
        action="append",
        default=[],
        metavar="CONTAINER[:ro|rw]",
        help="mount the volumes and bind mounts of a container",
    )
    add("--volume-driver", default="local", help="driver of the volumes -v makes (local only)")
    add("--storage-opt", action="append", default=[], metavar="K=V", help="storage driver options")


def _storage_options(args: argparse.Namespace) -> dict[str, Any]:
    from ctl.runtime import runopts

    if args.volume_driver != "local":
        raise InvalidArgument(
            f"--volume-driver {args.volume_driver!r}: ctl has only the local volume driver"
        )
    if args.storage_opt:
        # docker's overlay2 takes only size=, and only over xfs with project quotas.
        raise InvalidArgument(
            f"--storage-opt {args.storage_opt[0]!r}: ctl's snapshotters take no options",
            hint="limit a container's disk with a volume on a sized filesystem",
        )
    mounts = [_flag("-v", runopts.parse_volume, v) for v in args.volume]
    mounts += [_flag("--mount", runopts.parse_mount, m) for m in args.mount]
    volumes_from = [runopts.parse_volumes_from(v) for v in args.volumes_from]
    return {"mounts": tuple(mounts), "volumes_from": tuple(volumes_from)}


# Network: the container's network, name and ports.


def _network_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("-h", "--hostname", type=_hostname, help="container host name")
    network = add(
        "--net",
        "--network",
        dest="network",
        action=_once_action(),
        help="bridge (default where the CNI plugins are installed), none, host, or a name",
    )
    complete(network, complete_networks)
    add("-p", "--publish", action="append", default=[], metavar="[IP:]HOST:CTR[/proto]")
    add("-P", "--publish-all", action="store_true", help="publish every exposed port at random")
    add("--expose", action="append", default=[], metavar="PORT[/proto]", help="expose a port")
    add("--add-host", action="append", default=[], metavar="NAME:IP", help="add an /etc/hosts line")
    add("--dns", action="append", default=[], metavar="IP", help="DNS server")
    add("--dns-search", action="append", default=[], metavar="DOMAIN", help="DNS search domain")
    # docker hides --dns-opt, kept for old scripts.
    add("--dns-option", "--dns-opt", action="append", default=[], help="resolv.conf option")
    add("--domainname", help="container NIS domain name")
    add("--mac-address", help="MAC address of the container's interface")
    add("--ip", help="IPv4 address on the network")
    add("--ip6", help="IPv6 address on the network")
    # networks (issue 14)
    add("--network-alias", action="append", default=[], metavar="ALIAS", help="name on the network")
    add("--link", action="append", default=[], help="not supported: use a user network")


def _once_action() -> type[argparse.Action]:
    """_once_action stores a flag's value and refuses a second one (``--net a --net b``)."""
    import argparse

    class Once(argparse.Action):
        def __call__(
            self,
            parser: argparse.ArgumentParser,
            namespace: argparse.Namespace,
            values: Any,
            option_string: str | None = None,
        ) -> None:
            if getattr(namespace, self.dest, None) is not None:
                raise InvalidArgument(
                    f"{option_string} given twice: a container starts on one network",
                    hint="join more networks with 'ctl network connect NET CONTAINER'",
                )
            setattr(namespace, self.dest, values)

    return Once


def _network_options(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    from ctl.containers.create import NETWORK_MODES
    from ctl.runtime import runopts

    if args.network is None:
        args.network, missing = ctx.client.default_network()
        if missing is not None:
            sys.stderr.write(
                f"ctl: warning: {missing}: running with --net {args.network} ({missing.hint})\n"
            )
    if args.network not in NETWORK_MODES:
        from ctl import identifiers

        _flag("--net", lambda name: identifiers.validate("network name", name), args.network)
    publish = tuple(m for p in args.publish for m in _flag("-p", runopts.parse_publish, p))
    if (publish or args.publish_all) and args.network == "host":
        sys.stderr.write("WARNING: Published ports are discarded when using host network mode\n")
        publish, args.publish_all = (), False
    if publish and args.network == "none":
        raise InvalidArgument("-p needs a bridge network, not --net none")
    return {
        "hostname": args.hostname,
        "network": args.network,
        "publish": publish,
        **_network_container_options(args),
        **_network_names(args),
    }


def _network_container_options(args: argparse.Namespace) -> dict[str, Any]:
    """_network_container_options are the flags that shape one container's network."""
    from ctl.runtime import runopts

    bridged = args.network not in ("none", "host")
    for flag, value in (
        ("--mac-address", args.mac_address),
        ("--ip", args.ip),
        ("--ip6", args.ip6),
    ):
        if value is not None and not bridged:
            raise InvalidArgument(f"{flag} needs a bridge network, not --net {args.network}")
    expose = [
        port for value in args.expose for port in _flag("--expose", runopts.parse_expose, value)
    ]
    return {
        "publish_all": args.publish_all,
        "expose": tuple(dict.fromkeys(expose)),
        "add_hosts": tuple(_flag("--add-host", runopts.parse_add_host, h) for h in args.add_host),
        "dns": tuple(_flag("--dns", runopts.parse_ip, d) for d in args.dns),
        "dns_search": tuple(
            _flag("--dns-search", runopts.parse_dns_search, d) for d in args.dns_search
        ),
        "dns_options": tuple(
            _flag("--dns-option", runopts.parse_dns_option, o) for o in args.dns_option
        ),
        "domainname": _flag("--domainname", runopts.parse_domainname, args.domainname)
        if args.domainname
        else None,
        "mac_address": _flag("--mac-address", runopts.parse_mac_address, args.mac_address)
        if args.mac_address is not None
        else None,
        "ip": _flag("--ip", lambda value: runopts.parse_ip(value, 4), args.ip)
        if args.ip is not None
        else None,
        "ip6": _flag("--ip6", lambda value: runopts.parse_ip(value, 6), args.ip6)
        if args.ip6 is not None
        else None,
    }


def _network_names(args: argparse.Namespace) -> dict[str, Any]:
    """_network_names reads --network-alias, and refuses --link (networks (issue 14))."""
    if args.link:
        raise InvalidArgument(
            "--link is not supported: containers on the default network do not resolve names",
            hint="ctl network create NET, then run both containers with --net NET: "
            "they resolve each other by name and --network-alias",
        )
    if args.network_alias and args.network in ("none", "host", "bridge", "default"):
        raise InvalidArgument(
            f"--network-alias needs a user network, not --net {args.network}",
            hint="ctl network create NET, then --net NET",
        )
    aliases = tuple(network_alias(a) for a in args.network_alias)
    return {"network_aliases": aliases}


# Resources: cgroup limits.


def _resource_flags(parser: argparse.ArgumentParser) -> None:
    from argparse import SUPPRESS

    limit_flags(parser)
    add = parser.add_argument
    add("--memory-swappiness", help="0 to 100 (cgroup v1 only)")
    add("--kernel-memory", help=SUPPRESS)  # docker: deprecated, ignored with a warning
    add("--oom-kill-disable", action="store_true", help="do not OOM-kill the container")
    add("--oom-score-adj", help="the OOM score adjustment of its processes, -1000 to 1000")
    add("--blkio-weight-device", **_many("DEV:WEIGHT"), help="block I/O weight of a device")
    for way in ("read", "write"):
        add(f"--device-{way}-bps", **_many("DEV:RATE"), help=f"{way} bytes a second (1mb)")
        add(f"--device-{way}-iops", **_many("DEV:RATE"), help=f"{way} operations a second")
    add("--ulimit", **_many("NAME=SOFT[:HARD]"), help="a resource limit (nofile=1024:2048)")
    add("--shm-size", help="size of /dev/shm (default 64m)")
    add("--sysctl", **_many("KEY=VALUE"), help="a namespaced kernel parameter")


def limit_flags(parser: argparse.ArgumentParser) -> None:
    """limit_flags declares the limits a running container can change: run's, and update's."""
    add = parser.add_argument
    add("--memory", "-m", help="memory limit (e.g. 512m; 0: no limit)")
    add("--memory-swap", help="memory plus swap (e.g. 1g; -1: unlimited swap)")
    add("--memory-reservation", help="memory soft limit")
    add("--cpus", help="number of CPUs (e.g. 1.5)")
    add("-c", "--cpu-shares", help="CPU shares (relative weight)")
    add("--cpu-period", help="CFS period in microseconds")
    add("--cpu-quota", help="CFS quota in microseconds")
    add("--cpu-rt-period", help="real-time period in microseconds")
    add("--cpu-rt-runtime", help="real-time runtime in microseconds")
    add("--cpuset-cpus", help="CPUs the container may use (0-3, 0,1)")
    add("--cpuset-mems", help="memory nodes the container may use (0-3, 0,1)")
    add("--pids-limit", type=int, help="maximum number of processes (0 or -1: no limit)")
    add("--blkio-weight", help="block I/O weight, 10 to 1000 (0: none)")


def _many(metavar: str) -> dict[str, Any]:
    return {"action": "append", "default": [], "metavar": metavar}


# The flags of Resources besides --memory and --cpus: parsed only when one is given.
_CGROUP_FLAGS = (
    "memory_swap", "memory_reservation", "memory_swappiness", "oom_kill_disable",
    "cpu_shares", "cpu_period", "cpu_quota", "cpu_rt_period", "cpu_rt_runtime",
    "cpuset_cpus", "cpuset_mems", "blkio_weight", "blkio_weight_device",
    "device_read_bps", "device_write_bps", "device_read_iops", "device_write_iops",
)  # fmt: skip


def _resource_options(args: argparse.Namespace) -> dict[str, Any]:
    from ctl.runtime import runopts

    if args.kernel_memory is not None:
        _warn("--kernel-memory is deprecated and no longer supported by the kernel: ignored")
    memory = _size("--memory", args.memory) or None
    cpus = _flag("--cpus", runopts.parse_cpus, args.cpus) if args.cpus else None
    wanted = None
    if memory or cpus or any(getattr(args, name) for name in _CGROUP_FLAGS):
        wanted = _cgroup_resources(args, memory)
    oom_score_adj = None
    if args.oom_score_adj is not None:
        oom_score_adj = runopts.parse_oom_score_adj(args.oom_score_adj)
    return {
        "memory": memory,
        "cpus": cpus,
        "pids_limit": args.pids_limit,
        "resources": wanted,
        "ulimits": tuple(runopts.parse_ulimit(u) for u in args.ulimit),
        "oom_score_adj": oom_score_adj,
        "shm_size": _size("--shm-size", args.shm_size) or None,
        "sysctls": runopts.parse_sysctls(args.sysctl, args.network or "", args.ipc or "")
        if args.sysctl
        else {},
    }


def _size(flag: str, value: str | None) -> int | None:
    from ctl.runtime.runopts import parse_memory

    return _flag(flag, parse_memory, value) if value is not None else None


def _cgroup_resources(args: argparse.Namespace, memory: int | None) -> Resources | None:
    """_cgroup_resources are the limits of Resources besides memory and cpus (their own fields)."""
    from ctl.runtime import resources

    given = parsed_resources(args)
    given.validate()
    swap = given.memory_swap
    wanted = given._replace(memory=None, cpus=None)
    if memory and not swap and not resources.unsupported(wanted._replace(memory_swap=-1))[1]:
        wanted = wanted._replace(memory_swap=2 * memory)  # docker's default: as much swap
    if args.oom_kill_disable and not memory:
        _warn("the OOM killer is disabled but no --memory is set: the host may run out of memory")
    wanted, warnings = resources.unsupported(wanted)
    for warning in warnings:
        _warn(warning)
    return None if wanted.is_empty() else wanted


def parsed_resources(args: argparse.Namespace) -> Resources:
    """parsed_resources reads the cgroup flags given, each on its own: no defaults.

    ``run``'s resource group and ``update``'s subset of it (a flag its
    parser lacks reads as not given).
    """
    from ctl.runtime import resources, runopts

    def given(flag: str) -> Any:
        return getattr(args, flag.removeprefix("--").replace("-", "_"), None)

    def number(flag: str) -> int | None:
        value = given(flag)
        return runopts.parse_int(value, flag) if value is not None else None

    def rates(flag: str) -> tuple[resources.DeviceRate, ...]:
        values = given(flag) or ()
        return tuple(resources.DeviceRate(*runopts.parse_device_rate(v, flag)) for v in values)

    swap, cpus = given("--memory-swap"), given("--cpus")
    if swap is not None:
        swap = _flag("--memory-swap", runopts.parse_memory_swap, swap)
    return resources.Resources(
        memory=_size("--memory", given("--memory")) or None,
        memory_swap=swap,
        memory_reservation=_size("--memory-reservation", given("--memory-reservation")),
        memory_swappiness=number("--memory-swappiness"),
        oom_kill_disable=bool(given("--oom-kill-disable")),
        cpus=_flag("--cpus", runopts.parse_cpus, cpus) if cpus else None,
        cpu_shares=number("--cpu-shares"),
        cpu_period=number("--cpu-period"),
        cpu_quota=number("--cpu-quota"),
        cpu_rt_period=number("--cpu-rt-period"),
        cpu_rt_runtime=number("--cpu-rt-runtime"),
        cpuset_cpus=_cpuset("--cpuset-cpus", given("--cpuset-cpus"), "cpus"),
        cpuset_mems=_cpuset("--cpuset-mems", given("--cpuset-mems"), "mems"),
        blkio_weight=number("--blkio-weight"),
        blkio_weight_device=rates("--blkio-weight-device"),
        device_read_bps=rates("--device-read-bps"),
        device_write_bps=rates("--device-write-bps"),
        device_read_iops=rates("--device-read-iops"),
        device_write_iops=rates("--device-write-iops"),
    )


def _cpuset(flag: str, value: str | None, kind: str) -> str | None:
    """_cpuset checks a --cpuset-* list against the CPUs or memory nodes this host has."""
    if value is None or not value.strip():
        return None
    from ctl.runtime.resources import available_cpuset, parse_cpuset

    available = available_cpuset(kind)
    missing = sorted(parse_cpuset(value, flag) - available)
    if missing:
        have = ",".join(str(n) for n in sorted(available))
        raise InvalidArgument(
            f"{flag} {value!r}: {','.join(map(str, missing))} not available (this host has {have})"
        )
    return value.strip()


def _warn(message: str) -> None:
    sys.stderr.write(f"ctl: warning: {message}\n")


# Security: privileges, capabilities, confinement.


def _security_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--read-only", action="store_true", help="mount the root filesystem read-only")
    add("--cap-add", action="append", default=[], type=_capability, help="add a capability")
    add("--cap-drop", action="append", default=[], type=_capability, help="drop a capability")
    add("--privileged", action="store_true", help="give the container every capability")
    add(
        "--security-opt",
        action="append",
        default=[],
        help="no-new-privileges, seccomp=unconfined|FILE.json, apparmor=PROFILE|unconfined",
    )
    add("--cgroupns", help="cgroup namespace: private (default on cgroup v2) or host (v1)")
    add("--runtime", help="OCI runtime to run the container with: a name or path (default runc)")


def _security_options(args: argparse.Namespace) -> dict[str, Any]:
    from ctl.runtime import runopts
    from ctl.runtime.spec import default_cgroupns, with_cgroupns

    cgroupns = args.cgroupns or default_cgroupns()
    _flag("--cgroupns", with_cgroupns, cgroupns)
    runtime = args.runtime or os.environ.get("CTL_RUNTIME") or None
    return {
        "read_only": args.read_only,
        "cap_add": tuple(args.cap_add),
        "cap_drop": tuple(args.cap_drop),
        "privileged": args.privileged,
        "security": _flag("--security-opt", runopts.parse_security_opt, args.security_opt),
        "cgroupns": cgroupns,
        "runtime": _runtime(runtime) if runtime else None,
    }


# Lifecycle and I/O (docker's general group): stopping, annotations, tmpfs, and
# how a foreground run holds the terminal (read by the command: ``run_io``).


def _lifecycle_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--stop-signal", help="signal that stops the container (default: the image's, SIGTERM)")
    add("--stop-timeout", help="seconds stop waits before SIGKILL (default 10)")
    add("--cidfile", metavar="FILE", help="write the container's id to FILE")
    add("--annotation", action="append", default=[], metavar="K=V", help="add an OCI annotation")
    add("--tmpfs", action="append", default=[], metavar="PATH[:OPTS]", help="mount a tmpfs")
    add("-q", "--quiet", action="store_true", help="do not show the pull's progress")
    add("-a", "--attach", action="append", default=[], metavar="STREAM", help="stdin|stdout|stderr")


def _lifecycle_options(args: argparse.Namespace) -> dict[str, Any]:
    from ctl.runtime import runopts

    if args.stop_signal is not None:
        _flag("--stop-signal", runopts.parse_signal, args.stop_signal)
    return {
        "stop_signal": args.stop_signal,
        "stop_timeout": _flag("--stop-timeout", runopts.parse_stop_timeout, args.stop_timeout)
        if args.stop_timeout is not None
        else None,
        "annotations": _flag("--annotation", runopts.parse_annotations, args.annotation),
        "tmpfs": tuple(_flag("--tmpfs", runopts.parse_tmpfs, t) for t in args.tmpfs),
        "detach_keys": _detach_keys(getattr(args, "detach_keys", None)),
    }


def _detach_keys(text: str | None) -> str | None:
    """_detach_keys checks run's --detach-keys; kept as typed, for the task (None: docker's)."""
    from ctl.runtime import runopts

    if text:
        _flag("--detach-keys", runopts.parse_detach_keys, text)
    return text or None


def foreground(args: argparse.Namespace) -> tuple[frozenset[str], bool]:
    """foreground is how ``run`` holds the terminal: ``-a``'s streams (none: all) and
    ``--sig-proxy`` (run's own flag; ``create`` has only ``-a``)."""
    from ctl.runtime import runopts

    streams = _flag("-a", runopts.parse_attach, args.attach)
    if streams and getattr(args, "detach", False):
        raise InvalidArgument("conflicting options: -a and -d")
    sig_proxy: bool = getattr(args, "sig_proxy", True)
    return streams, sig_proxy


def _runtime(runtime: str) -> str:
    from ctl.errdefs import NotFound
    from ctl.runtime.runc import find_runtime

    try:
        return find_runtime(runtime)
    except NotFound as err:
        raise NotFound(f"--runtime: {err}", hint=err.hint) from None


# Refused (sec): flags docker has only for Windows or for its daemon (SPEC section 9),
# declared so that each is refused by name rather than as an unknown flag.

# flag -> why ctl refuses it.
REFUSED_FLAGS = {
    "--isolation": "Windows only",
    "--cpu-count": "Windows only",
    "--cpu-percent": "Windows only",
    "--io-maxbandwidth": "Windows only",
    "--io-maxiops": "Windows only",
    "--use-api-socket": "for the docker daemon's API socket; ctl has no daemon",
}


def _refused_flags(parser: argparse.ArgumentParser) -> None:
    from ctl.commands._base import refuse

    for flag, why in REFUSED_FLAGS.items():
        refuse(parser, flag, why=why, takes_value=flag != "--use-api-socket")
    refuse(parser, "--link-local-ip", why="ctl gives containers no link-local addresses")


# Devices: host devices, CDI devices and GPUs, the device cgroup, groups.


def _device_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--device", **_many("HOST[:CTR][:rwm]"), help="add a host device, or a CDI device")
    add("--device-cgroup-rule", **_many("'c 1:3 rwm'"), help="allow devices in the cgroup")
    add("--gpus", help="GPUs as CDI devices of nvidia.com/gpu: all, N or device=ID")
    add("--group-add", **_many("GROUP"), help="an additional group (name or gid)")


def _device_options(args: argparse.Namespace) -> dict[str, Any]:
    from ctl.runtime import runopts

    devices = [d for d in args.device if not runopts.is_cdi_name(d)]
    cdi_devices = [d for d in args.device if runopts.is_cdi_name(d)]
    gpus = runopts.parse_gpus(args.gpus) if args.gpus is not None else []
    for flag, names in (("--device", cdi_devices), ("--gpus", gpus)):
        if names:
            from ctl.runtime import cdi

            _named(flag, cdi.resolve, names)
    cdi_names = cdi_devices + gpus
    return {
        "devices": tuple(runopts.parse_device(d) for d in devices),
        "cdi_devices": tuple(cdi_names),
        "device_cgroup_rules": tuple(
            runopts.parse_device_cgroup_rule(r) for r in args.device_cgroup_rule
        ),
        "group_add": tuple(_group(g) for g in args.group_add),
    }


def _group(value: str) -> str:
    if not value or ":" in value or any(c.isspace() for c in value):
        raise InvalidArgument(f"invalid --group-add {value!r}: want a group name or gid")
    return value


# Namespaces: sharing the host's or another container's, and the cgroup's place.


def _namespace_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--pid", default="", help="PID namespace: host or container:NAME")
    add("--ipc", default="", help="IPC namespace: private, shareable, none, host or container:NAME")
    add("--uts", default="", help="UTS namespace: host")
    add("--userns", default="", help="user namespace: host (the only one ctl has)")
    add("--cgroup-parent", help="parent cgroup of the container's cgroup")


def _namespace_options(args: argparse.Namespace, ctx: Context) -> dict[str, Any]:
    from ctl.runtime.runopts import parse_cgroup_parent, parse_namespace_mode

    pid = parse_namespace_mode("--pid", args.pid, ("host", "container"))
    ipc = parse_namespace_mode(
        "--ipc", args.ipc, ("private", "shareable", "none", "host", "container")
    )
    uts = parse_namespace_mode("--uts", args.uts, ("host",))
    parse_namespace_mode("--userns", args.userns, ("host",))
    if uts.mode == "host" and args.hostname:
        raise InvalidArgument("--hostname cannot be used with --uts host")
    joining = [flag for flag, mode in (("--pid", pid), ("--ipc", ipc)) if mode.mode == "container"]
    if joining and args.restart != "no":
        # The supervisor restarts from the same config.json, whose /proc/PID
        # path may by then name another process: refused rather than risked.
        raise InvalidArgument(f"--restart cannot be used with {joining[0]} container:NAME")
    pid = _joined_container("--pid", pid, ctx)
    ipc = _joined_container("--ipc", ipc, ctx)
    return {
        "pid": pid if pid.mode else None,
        "ipc": ipc if ipc.mode not in ("", "private", "shareable") else None,
        "uts_host": uts.mode == "host",
        "cgroup_parent": parse_cgroup_parent(args.cgroup_parent)
        if args.cgroup_parent is not None
        else None,
    }


def _joined_container(flag: str, mode: NamespaceMode, ctx: Context) -> NamespaceMode:
    """_joined_container keeps the other container's id: its name may go to another one later."""
    if mode.mode != "container":
        return mode
    container: Container = _named(flag, ctx.client.get_container, mode.container)
    return mode._replace(container=container.id)


def _named(flag: str, find: Callable[[Any], Any], value: Any) -> Any:
    """_named is ``find(value)`` with the flag named in its NotFound (where the name came from)."""
    from ctl.errdefs import NotFound

    try:
        return find(value)
    except NotFound as err:
        raise NotFound(f"{flag}: {err}", hint=err.hint) from None


# Logging (logh): the log driver and its options.


def _logging_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--log-driver", metavar="DRIVER", help="json-file (the default), local or none")
    add(
        "--log-opt",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="max-size=SIZE, max-file=N, compress=true|false",
    )


def _logging_options(args: argparse.Namespace) -> dict[str, Any]:
    from ctl.runtime import runopts

    if args.log_driver is None and not args.log_opt:
        return {}
    driver = _flag("--log-driver", runopts.parse_log_driver, args.log_driver or "json-file")
    return {
        "log": _flag("--log-opt", lambda opts: runopts.parse_log_opts(driver, opts), args.log_opt)
    }


# Health checks (logh): docker's HEALTHCHECK, from the flags and the image.

_HEALTH_DURATIONS = ("interval", "timeout", "start_period", "start_interval")


def _health_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--health-cmd", metavar="COMMAND", help="command to run to check health (sh -c)")
    add("--health-interval", metavar="DURATION", help="time between checks (default 30s)")
    add("--health-timeout", metavar="DURATION", help="time a check may run (default 30s)")
    add("--health-retries", type=int, metavar="N", help="failures in a row for unhealthy (3)")
    add("--health-start-period", metavar="DURATION", help="time to start before failures count")
    add("--health-start-interval", metavar="DURATION", help="time between checks while starting")
    add("--no-healthcheck", action="store_true", help="disable the image's HEALTHCHECK")


def _health_options(args: argparse.Namespace) -> dict[str, Any]:
    from ctl.runtime import runopts

    durations = {field: getattr(args, f"health_{field}") for field in _HEALTH_DURATIONS}
    given = args.health_cmd, args.health_retries, *durations.values()
    if all(value is None for value in given) and not args.no_healthcheck:
        return {}
    health = runopts.parse_health(
        args.health_cmd, durations, args.health_retries, args.no_healthcheck
    )
    return {"health": health}
