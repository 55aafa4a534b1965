"""The flags of ``create`` and ``run``, in docker's groups, and their ContainerOptions.

Each group is a pair: ``_<group>_flags`` declares the flags, and
``_<group>_options`` turns their values into ContainerOptions fields. A bad
value is one InvalidArgument that names the flag.
"""

from __future__ import annotations

import sys

from ctl.commands._base import add_platform, complete, complete_images, complete_networks
from ctl.errdefs import InvalidArgument

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    import argparse
    from typing import Any

    from ctl.commands._base import Context
    from ctl.containers.create import ContainerOptions


def create_flags(parser: argparse.ArgumentParser) -> None:
    _general_flags(parser)
    _storage_flags(parser)
    _network_flags(parser)
    _resource_flags(parser)
    _security_flags(parser)
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
        "labels": _flag("--label", runopts.parse_labels, args.label),
        "init": args.init,
        "restart": restart if restart.name != "no" else None,
        "tty": args.tty,
        "stdin": args.interactive,
        "rm": args.rm,
        "platform": platform,
        "pull": args.pull,
    }


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
    add("--hostname", type=_hostname, help="container host name")
    network = add(
        "--net",
        "--network",
        dest="network",
        action=_once_action(),
        help="bridge (default where the CNI plugins are installed), none, host, or a name",
    )
    complete(network, complete_networks)
    add("-p", "--publish", action="append", default=[], metavar="[IP:]HOST:CTR[/proto]")
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
    if args.publish and args.network in ("none", "host"):
        raise InvalidArgument(f"-p needs a bridge network, not --net {args.network}")
    return {
        "hostname": args.hostname,
        "network": args.network,
        "publish": tuple(_flag("-p", runopts.parse_publish, p) for p in args.publish),
        **_network_names(args),
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
    add("--security-opt", action="append", default=[], help="no-new-privileges, seccomp=...")


def _security_options(args: argparse.Namespace) -> dict[str, Any]:
    from ctl.runtime import runopts

    return {
        "read_only": args.read_only,
        "cap_add": tuple(args.cap_add),
        "cap_drop": tuple(args.cap_drop),
        "privileged": args.privileged,
        "security": _flag("--security-opt", runopts.parse_security_opt, args.security_opt),
    }
