"""Network commands, as in docker and nerdctl: network ls|inspect|create|rm."""

from __future__ import annotations

from ctl.commands._base import (
    Command,
    Group,
    add_format,
    add_inspect_format,
    complete,
    complete_networks,
    each,
)
from ctl.errdefs import InvalidArgument

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    import argparse
    from typing import Any

    from ctl.commands._base import Context
    from ctl.network import NetworkInfo
    from ctl.output import Listing

# ``--net`` modes that are not CNI networks, listed as docker and nerdctl list them.
_PSEUDO_NETWORKS = (("host", "host"), ("none", "null"))


def commands() -> tuple[Command | Group, ...]:
    return (
        Group(
            "network",
            "Manage networks",
            (
                Command("ls", _ls, "List networks", _ls_flags, ("list",)),
                Command("inspect", _inspect, "Show networks as JSON", _inspect_flags),
                Command("create", _create, "Create a bridge network", _create_flags),
                Command("rm", _rm, "Remove networks", _networks_arg, ("remove", "delete")),
            ),
        ),
    )


def _networks_arg(parser: argparse.ArgumentParser) -> None:
    complete(parser.add_argument("networks", nargs="+", metavar="NETWORK"), complete_networks)


def _ls_flags(parser: argparse.ArgumentParser) -> None:
    add_format(parser)
    parser.add_argument("--no-trunc", action="store_true", help="show full network IDs")


def _inspect_flags(parser: argparse.ArgumentParser) -> None:
    _networks_arg(parser)
    add_inspect_format(parser)


def _create_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME")
    parser.add_argument("--subnet", help="IPv4 subnet in CIDR form (default: a free private /16)")
    parser.add_argument("--gateway", help="gateway address (default: the subnet's first)")
    parser.add_argument(
        "-d", "--driver", default="bridge", help="network driver (only bridge is supported)"
    )


def _row(info: NetworkInfo, no_trunc: bool) -> dict[str, Any]:
    return {
        "ID": info.id if no_trunc else info.id[:12],
        "Name": info.name,
        "Driver": info.driver,
        "Subnet": info.subnet,
        "Gateway": info.gateway,
        "Bridge": info.bridge,
        "CreatedAt": info.created,
    }


def _ls(args: argparse.Namespace, ctx: Context) -> Listing:
    from ctl.output import Column, Listing

    infos = ctx.client.list_networks()
    rows = [_row(i, args.no_trunc) for i in infos]
    # Without an ID, -q leaves them out.
    rows += [{"ID": "", "Name": name, "Driver": driver} for name, driver in _PSEUDO_NETWORKS]
    columns = (
        Column("NETWORK ID", "ID", id=True),
        Column("NAME", "Name"),
        Column("DRIVER", "Driver"),
        Column("SUBNET", "Subnet"),
    )
    return Listing(columns, rows)


def _inspect(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.output import print_inspect

    print_inspect([ctx.client.inspect_network(name) for name in args.networks], args.format)
    return 0


def _create(args: argparse.Namespace, ctx: Context) -> int:
    if args.driver != "bridge":
        raise InvalidArgument(f"network driver {args.driver!r} is not supported: use bridge")
    info = ctx.client.create_network(args.name, subnet=args.subnet, gateway=args.gateway)
    print(info.id)
    return 0


def _rm(args: argparse.Namespace, ctx: Context) -> int:
    return each(args.networks, ctx.client.remove_network)
