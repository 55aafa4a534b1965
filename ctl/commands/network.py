"""Network commands, as in docker: network ls|inspect|create|rm|connect|disconnect|prune."""

from __future__ import annotations

import sys

from ctl.commands._base import (
    Command,
    Group,
    add_format,
    add_inspect_format,
    complete,
    complete_containers,
    complete_networks,
    each,
    refuse,
)
from ctl.errdefs import InvalidArgument

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from typing import Any

    from ctl.commands._base import Context
    from ctl.network import NetworkInfo
    from ctl.output import Listing


def commands() -> tuple[Command | Group, ...]:
    return (
        Group(
            "network",
            "Manage networks",
            (
                Command("ls", _ls, "List networks", _ls_flags, ("list",)),
                Command("inspect", _inspect, "Show networks as JSON", _inspect_flags),
                Command("create", _create, "Create a bridge network", _create_flags),
                Command("rm", _rm, "Remove networks", _rm_flags, ("remove", "delete")),
                Command("connect", _connect, "Connect a container to a network", _connect_flags),
                Command(
                    "disconnect",
                    _disconnect,
                    "Disconnect a container from a network",
                    _disconnect_flags,
                ),
                Command("prune", _prune, "Remove the networks no container uses", _prune_flags),
            ),
        ),
    )


def _networks_arg(parser: argparse.ArgumentParser) -> None:
    complete(parser.add_argument("networks", nargs="+", metavar="NETWORK"), complete_networks)


def _ls_flags(parser: argparse.ArgumentParser) -> None:
    add_format(parser)
    parser.add_argument("--no-trunc", action="store_true", help="show full network IDs")
    parser.add_argument(
        "-f",
        "--filter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="filter: name, id, label, driver, type (custom|builtin), dangling, scope",
    )


def _inspect_flags(parser: argparse.ArgumentParser) -> None:
    _networks_arg(parser)
    add_inspect_format(parser)
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="accepted for docker; shows nothing more"
    )


def _key_values(flag: str, values: list[str]) -> dict[str, str]:
    found = {}
    for value in values:
        key, _, val = value.partition("=")
        if not key:
            raise InvalidArgument(f"invalid {flag} {value!r}: use KEY=VALUE")
        found[key] = val
    return found


def _create_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("name", metavar="NAME")
    add("--subnet", action="append", default=[], help="subnet in CIDR form, one per family")
    add("--gateway", action="append", default=[], help="gateway of the subnet given as often")
    add("--ip-range", action="append", default=[], help="allocate container addresses from it")
    add(
        "--aux-address",
        action="append",
        default=[],
        metavar="NAME=IP",
        help="an address no container gets",
    )
    add("--ipv6", action="store_true", help="dual-stack: an IPv6 subnet too")
    add("--internal", action="store_true", help="no route out of the network")
    add("--label", action="append", default=[], metavar="KEY=VALUE", help="set metadata")
    add("-o", "--opt", action="append", default=[], metavar="KEY=VALUE", help="driver options")
    add("-d", "--driver", default="bridge", help="network driver (only bridge is supported)")
    add("--ipam-driver", default="default", help="IPAM driver (only default: host-local)")
    refuse(parser, "--ipam-opt", why="ctl's IPAM (host-local) takes no options")
    add(
        "--ipv4",
        type=_ipv4,
        default=True,
        nargs="?",
        const=True,
        metavar="true",
        help="IPv4 addresses (always on: ctl networks have IPv4)",
    )


def _row(info: NetworkInfo, no_trunc: bool) -> dict[str, Any]:
    """_row is docker's network ls placeholders, and ctl's Subnet, Gateway and Bridge."""
    from ctl.network.config import docker_name
    from ctl.output import label_method
    from ctl.timefmt import go_time_string, parse_rfc3339

    created = parse_rfc3339(info.created)
    return {
        "ID": info.id if no_trunc else info.id[:12],
        "Name": docker_name(info.name),
        "Driver": info.driver,
        "Scope": "local",
        "IPv4": str(bool(info.subnet)).lower(),
        "IPv6": str(bool(info.subnet6)).lower(),
        "Internal": str(info.internal).lower(),
        "Labels": ",".join(f"{k}={v}" for k, v in info.labels),
        "Label": label_method(dict(info.labels)),
        "CreatedAt": "" if created is None else go_time_string(created),
        "Subnet": info.subnet,
        "Gateway": info.gateway,
        "Bridge": info.bridge,
    }


def network_filter(values: list[str], used: set[str]) -> Callable[[NetworkInfo], bool]:
    """network_filter is docker's ``network ls --filter``, by the names docker shows.

    The default network and the pseudo-networks (``host``, ``none``) are
    builtin, never dangling.
    """
    from ctl.filters import Filters, boolean, name_matches
    from ctl.network.config import DEFAULT_NETWORK, PSEUDO_NETWORKS, docker_name

    keys = ("name", "id", "label", "driver", "type", "dangling", "scope")
    filters = Filters(values, keys)
    types = filters.one_of("type", ("custom", "builtin"))
    dangling = [boolean("dangling", v) for v in filters.get("dangling")]
    builtins = {DEFAULT_NETWORK, *dict(PSEUDO_NETWORKS)}

    def match(network: NetworkInfo) -> bool:
        name = docker_name(network.name)
        builtin = network.name in builtins
        unused = not builtin and network.name not in used
        return (
            filters.match("name", lambda v: name_matches(v, name))
            and filters.match("id", lambda v: network.id.startswith(v) and v != "")
            and filters.match("driver", lambda v: v == network.driver)
            and filters.match("scope", lambda v: v == "local")
            and filters.match_labels(dict(network.labels))
            and (not types or ("builtin" if builtin else "custom") in types)
            and (not dangling or unused in dangling)
        )

    return match


def _ls(args: argparse.Namespace, ctx: Context) -> Listing:
    from ctl.output import Column, Listing, natural_key

    infos = [*ctx.client.list_networks(), *ctx.client.networks.pseudo_networks()]
    if args.filter:
        from ctl.network.connect import networks_in_use

        match = network_filter(args.filter, networks_in_use(ctx.client.networks))
        infos = [i for i in infos if match(i)]
    rows = sorted((_row(i, args.no_trunc) for i in infos), key=lambda r: natural_key(r["Name"]))
    columns = (
        Column("NETWORK ID", "ID", id=True),
        Column("NAME", "Name"),
        Column("DRIVER", "Driver"),
        Column("SCOPE", "Scope"),
    )
    return Listing(columns, rows)


def _inspect(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.commands.inspect import inspect_each, network_document

    return inspect_each(args.networks, lambda ref: network_document(ctx, ref), args.format)


def _create(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.network.networks import CreateRequest

    if args.driver != "bridge":
        raise InvalidArgument(f"network driver {args.driver!r} is not supported: use bridge")
    if args.ipam_driver not in ("default", "host-local"):
        raise InvalidArgument(
            f"--ipam-driver {args.ipam_driver!r} is not supported: ctl's is host-local (default)"
        )
    request = CreateRequest(
        subnets=args.subnet,
        gateways=args.gateway,
        ip_ranges=args.ip_range,
        aux_addresses=args.aux_address,
        ipv6=args.ipv6,
        internal=args.internal,
        labels=_key_values("--label", args.label),
        options=_key_values("--opt", args.opt),
    )
    info = ctx.client.create_network(args.name, request=request)
    print(info.id)
    return 0


def _rm_flags(parser: argparse.ArgumentParser) -> None:
    _networks_arg(parser)
    parser.add_argument("-f", "--force", action="store_true", help="succeed if it is not there")


def _rm(args: argparse.Namespace, ctx: Context) -> int:
    if not args.force:
        return each(args.networks, ctx.client.remove_network)

    def remove(name: str) -> None:
        from ctl.errdefs import NotFound

        try:
            ctx.client.remove_network(name)
            print(name)
        except NotFound:
            pass  # docker's -f: a network that is not there is not an error

    return each(args.networks, remove, echo=False)


def _connect_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    complete(add("network", metavar="NETWORK"), complete_networks)
    complete(add("container", metavar="CONTAINER"), complete_containers)
    add("--alias", action="append", default=[], help="a name of the container on the network")
    add("--ip", help="IPv4 address on the network")
    add("--ip6", help="IPv6 address on the network")
    add("--gw-priority", type=int, default=0, help="default gateway priority (only 0)")
    refuse(parser, "--driver-opt", why="the bridge plugin takes no per-endpoint options")
    refuse(parser, "--link", why="ctl has no legacy links: names resolve on user networks")
    refuse(parser, "--link-local-ip", why="ctl gives containers no link-local addresses")


def _ipv4(text: str) -> bool:
    if text.lower() not in ("true", "1"):
        raise InvalidArgument("--ipv4=false is not supported: ctl networks always have IPv4")
    return True


def _connect(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.commands._run_flags import network_alias

    if args.gw_priority != 0:
        raise InvalidArgument(
            "--gw-priority is not supported: the network a container starts on is its gateway"
        )
    aliases = [network_alias(a) for a in args.alias]
    ctx.client.connect_network(
        args.network, args.container, aliases=aliases, ip=args.ip, ip6=args.ip6
    )
    return 0


def _disconnect_flags(parser: argparse.ArgumentParser) -> None:
    complete(parser.add_argument("network", metavar="NETWORK"), complete_networks)
    complete(parser.add_argument("container", metavar="CONTAINER"), complete_containers)
    parser.add_argument("-f", "--force", action="store_true", help="succeed if it is not connected")


def _disconnect(args: argparse.Namespace, ctx: Context) -> int:
    ctx.client.disconnect_network(args.network, args.container, force=args.force)
    return 0


def _prune_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    parser.add_argument(
        "--filter", action="append", default=[], metavar="KEY=VALUE", help="label=, until="
    )


def _prune(args: argparse.Namespace, ctx: Context) -> int:
    keep = prune_filter(args.filter) if args.filter else None
    if not args.force:
        sys.stderr.write(
            "WARNING! This will remove all custom networks not used by at least one container.\n"
            "Are you sure you want to continue? [y/N] "
        )
        sys.stderr.flush()
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    removed = ctx.client.prune_networks(keep)
    if removed:
        print("Deleted Networks:")
        print("\n".join(removed))
    return 0


def prune_filter(values: list[str]) -> Callable[[NetworkInfo], bool]:
    """prune_filter is docker's ``network prune --filter`` (and ``system prune``'s, for
    networks): ``label``, ``label!``, ``until``; it says which networks to keep."""
    from ctl.filters import Filters
    from ctl.timefmt import parse_rfc3339, parse_timestamp

    filters = Filters(values, ("label", "label!", "until"))
    until = [parse_timestamp(v) for v in filters.get("until")]

    def keep(info: NetworkInfo) -> bool:
        labels = dict(info.labels)
        if not filters.match_labels(labels):
            return True
        for value in filters.get("label!"):
            key, equals, want = value.partition("=")
            if key in labels and (not equals or labels[key] == want):
                return True
        created = parse_rfc3339(info.created) or 0.0
        return any(created >= limit for limit in until)

    return keep
