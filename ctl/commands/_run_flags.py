"""The flags of ``create`` and ``run``, in docker's groups, and their ContainerOptions.

Each group is a pair: ``_<group>_flags`` declares the flags, and
``_<group>_options`` turns their values into ContainerOptions fields. A bad
value is one InvalidArgument that names the flag.
"""

from __future__ import annotations

import argparse
import os
import sys

from ctl.commands._base import add_platform, complete, complete_images, complete_networks
from ctl.errdefs import InvalidArgument

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

    from ctl.commands._base import Context
    from ctl.containers.create import ContainerOptions


def create_flags(parser: argparse.ArgumentParser) -> None:
    _general_flags(parser)
    _storage_flags(parser)
    _network_flags(parser)
    _resource_flags(parser)
    _security_flags(parser)
    _lifecycle_flags(parser)
    _refused_flags(parser)
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
    from ctl.runtime.spec import with_cwd

    with_cwd(text)
    return text


def _hostname(text: str) -> str:
    from ctl.runtime.spec import with_hostname

    with_hostname(text)
    return text


def _capability(text: str) -> str:
    from ctl.runtime.spec import normalize_capability

    normalize_capability(text)
    return text


# Storage: bind mounts, tmpfs, volumes.


def _storage_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("-v", "--volume", action="append", default=[], metavar="SRC:DST[:ro]", help="bind mount")
    add("--mount", action="append", default=[], metavar="SPEC", help="type=bind|tmpfs,...")


def _storage_options(args: argparse.Namespace) -> dict[str, Any]:
    from ctl.runtime import runopts

    mounts = [_flag("-v", runopts.parse_volume, v) for v in args.volume]
    mounts += [_flag("--mount", runopts.parse_mount, m) for m in args.mount]
    return {"mounts": tuple(mounts)}


# Network: the container's network, name and ports.


def _network_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("-h", "--hostname", type=_hostname, help="container host name")
    network = add(
        "--net",
        "--network",
        dest="network",
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
    publish = tuple(_flag("-p", runopts.parse_publish, p) for p in args.publish)
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
    }


def _network_container_options(args: argparse.Namespace) -> dict[str, Any]:
    """_network_container_options are the flags that shape one container's network."""
    from ctl.runtime import runopts

    bridged = args.network not in ("none", "host")
    for flag, value in (("--mac-address", args.mac_address), ("--ip", args.ip)):
        if value is not None and not bridged:
            raise InvalidArgument(f"{flag} needs a bridge network, not --net {args.network}")
    if args.ip6 is not None:
        _flag("--ip6", lambda value: runopts.parse_ip(value, 6), args.ip6)
        raise InvalidArgument("--ip6: ctl networks are IPv4 only")
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
    }


# Resources: cgroup limits.


def _resource_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--memory", "-m", help="memory limit (e.g. 512m)")
    add("--cpus", help="number of CPUs (e.g. 1.5)")
    add("--pids-limit", type=int, help="maximum number of processes")


def _resource_options(args: argparse.Namespace) -> dict[str, Any]:
    from ctl.runtime import runopts

    return {
        "memory": _flag("--memory", runopts.parse_memory, args.memory) if args.memory else None,
        "cpus": _flag("--cpus", runopts.parse_cpus, args.cpus) if args.cpus else None,
        "pids_limit": args.pids_limit,
    }


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
    sig_proxy = _flag("--sig-proxy", runopts.parse_bool, getattr(args, "sig_proxy", "true"))
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


class _Refused(argparse.Action):
    def __call__(self, *args: Any) -> None:
        flag = self.option_strings[0]
        raise InvalidArgument(f"{flag} is not supported: {REFUSED_FLAGS[flag]}")


def _refused_flags(parser: argparse.ArgumentParser) -> None:
    for flag in REFUSED_FLAGS:
        nargs = 0 if flag == "--use-api-socket" else None
        parser.add_argument(flag, action=_Refused, nargs=nargs, help=argparse.SUPPRESS)
