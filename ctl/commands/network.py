"""Network commands, as in docker and nerdctl: network ls|inspect|create|rm."""

from __future__ import annotations

from ctl.commands._base import add_command, add_format, add_group, add_inspect_format, each
from ctl.errdefs import InvalidArgument

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    import argparse
    from typing import Any

    from ctl.commands._base import SubParsers
    from ctl.main import Context
    from ctl.network import NetworkInfo

# ``--net`` modes that are not CNI networks, listed as docker and nerdctl list them.
_PSEUDO_NETWORKS = (("host", "host"), ("none", "null"))


def register(subparsers: SubParsers) -> None:
    group = add_group(subparsers, "network", "Manage networks")
    ls = add_command(group, "ls", _ls, "List networks", aliases=("list",))
    add_format(ls)
    ls.add_argument("--no-trunc", action="store_true", help="show full network IDs")
    inspect = add_command(group, "inspect", _inspect, "Show networks as JSON")
    inspect.add_argument("networks", nargs="+", metavar="NETWORK")
    add_inspect_format(inspect)
    create = add_command(group, "create", _create, "Create a bridge network")
    create.add_argument("name", metavar="NAME")
    create.add_argument("--subnet", help="IPv4 subnet in CIDR form (default: a free private /16)")
    create.add_argument("--gateway", help="gateway address (default: the subnet's first)")
    create.add_argument(
        "-d", "--driver", default="bridge", help="network driver (only bridge is supported)"
    )
    rm = add_command(group, "rm", _rm, "Remove networks", aliases=("remove", "delete"))
    rm.add_argument("networks", nargs="+", metavar="NETWORK")


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


def _ls(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.output import check_format, print_ids, print_listing

    fmt = check_format(args.format)
    infos = ctx.client.list_networks()
    if args.quiet:
        print_ids(i.id if args.no_trunc else i.id[:12] for i in infos)
        return 0
    rows = [_row(i, args.no_trunc) for i in infos]
    rows += [{"ID": "", "Name": name, "Driver": driver} for name, driver in _PSEUDO_NETWORKS]
    print_listing(
        fmt,
        ["NETWORK ID", "NAME", "DRIVER", "SUBNET"],
        rows,
        columns=["ID", "Name", "Driver", "Subnet"],
    )
    return 0


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
