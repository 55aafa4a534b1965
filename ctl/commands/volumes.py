"""Volume commands, as in docker: volume create|ls|inspect|rm|prune."""

from __future__ import annotations

import sys

from ctl.commands._base import (
    Command,
    Group,
    _names,
    add_format,
    add_inspect_format,
    complete,
    each,
)
from ctl.errdefs import InvalidArgument

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    import argparse

    from ctl.commands._base import Context
    from ctl.output import Listing
    from ctl.paths import Paths


def commands() -> tuple[Command | Group, ...]:
    return (
        Group(
            "volume",
            "Manage volumes",
            (
                Command("create", _create, "Create a volume", _create_flags),
                Command("ls", _ls, "List volumes", _ls_flags, ("list",)),
                Command("inspect", _inspect, "Show volumes as JSON", _inspect_flags),
                Command("rm", _rm, "Remove volumes", _rm_flags, ("remove",)),
                Command("prune", _prune, "Remove unused volumes", _prune_flags),
            ),
            ("volumes",),
        ),
    )


def complete_volumes(prefix: str, parsed_args: argparse.Namespace, **_: object) -> list[str]:
    def names(paths: Paths, namespace: str) -> list[str]:
        from ctl.volumes.local import LocalVolumeStore

        return [v.name for v in LocalVolumeStore(paths, lambda _: ()).list()]

    return _names(names, parsed_args)


def _volumes_arg(parser: argparse.ArgumentParser) -> None:
    complete(parser.add_argument("volumes", nargs="+", metavar="VOLUME"), complete_volumes)


def _create_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("name", nargs="?", metavar="NAME", help="the volume's name (default: a random one)")
    add("--name", dest="name_flag", metavar="NAME", help="the volume's name")
    add("-d", "--driver", default="local", help="volume driver (only local is supported)")
    add(
        "-o",
        "--opt",
        action="append",
        default=[],
        metavar="K=V",
        help="driver options: type=tmpfs|none, device=PATH, o=bind|size=SIZE",
    )
    add("--label", action="append", default=[], metavar="K=V", help="set a label")


def _ls_flags(parser: argparse.ArgumentParser) -> None:
    add_format(parser)
    parser.add_argument(
        "-f",
        "--filter",
        action="append",
        default=[],
        metavar="K=V",
        help="dangling=true|false, name=..., label=K[=V], driver=local",
    )


def _inspect_flags(parser: argparse.ArgumentParser) -> None:
    _volumes_arg(parser)
    add_inspect_format(parser)


def _rm_flags(parser: argparse.ArgumentParser) -> None:
    _volumes_arg(parser)
    parser.add_argument(
        "-f", "--force", action="store_true", help="do not fail on a volume that does not exist"
    )


def _prune_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("-a", "--all", action="store_true", help="remove every unused volume, not only anonymous")
    add("-f", "--force", action="store_true", help="do not ask for confirmation")
    add(
        "--filter",
        action="append",
        default=[],
        metavar="K=V",
        help="label=K[=V], label!=K[=V], all=true",
    )


def _create(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.runtime.runopts import parse_labels

    if args.name and args.name_flag and args.name != args.name_flag:
        raise InvalidArgument(
            f"volume create: two names, {args.name!r} and --name {args.name_flag!r}"
        )
    options: dict[str, str] = {}
    for option in args.opt:
        key, sep, value = option.partition("=")
        if not key or not sep:
            raise InvalidArgument(f"invalid -o {option!r}: want KEY=VALUE")
        options[key] = value
    volume = ctx.client.create_volume(
        args.name or args.name_flag,
        driver=args.driver,
        options=options,
        labels=parse_labels(args.label),
    )
    print(volume.name)
    return 0


def _ls(args: argparse.Namespace, ctx: Context) -> Listing:
    from ctl.output import Column, Listing, label_method, natural_key
    from ctl.volumes.filters import LS_KEYS, matches, parse_filters

    filters = parse_filters(args.filter, LS_KEYS)
    client = ctx.client
    users = client.volume_users() if "dangling" in filters else {}
    volumes = [v for v in client.list_volumes() if matches(v, filters, in_use=v.name in users)]
    # docker's placeholders; Links and Size are N/A as in docker's ls, which does not
    # count them, and Group, Availability and Status are for swarm's cluster volumes.
    rows = [
        {
            "Driver": v.driver,
            "Name": v.name,
            "Mountpoint": v.mountpoint,
            "Labels": ",".join(f"{k}={val}" for k, val in sorted(v.labels.items())),
            "Label": label_method(v.labels),
            "Scope": "local",
            "Links": "N/A",
            "Size": "N/A",
            "Group": "N/A",
            "Availability": "N/A",
            "Status": "N/A",
            "CreatedAt": v.inspect()["CreatedAt"],
        }
        for v in sorted(volumes, key=lambda v: natural_key(v.name))
    ]
    columns = (Column("DRIVER", "Driver"), Column("VOLUME NAME", "Name", id=True))
    return Listing(columns, rows)


def _inspect(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.commands.inspect import inspect_each, volume_document

    return inspect_each(args.volumes, lambda ref: volume_document(ctx, ref), args.format)


def _rm(args: argparse.Namespace, ctx: Context) -> int:
    return each(args.volumes, lambda name: ctx.client.remove_volume(name, args.force))


def _prune(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.errdefs import FailedPrecondition
    from ctl.progress import human_size
    from ctl.volumes.filters import PRUNE_KEYS, is_true, parse_filters

    filters = parse_filters(args.filter, PRUNE_KEYS)
    # docker's --filter all=true is -a.
    args.all = args.all or any(is_true(v) for v in filters.pop("all", []))
    if not args.force:
        what = "all" if args.all else "all anonymous"
        sys.stdout.write(
            f"WARNING! This will remove {what} local volumes not used by at least one container.\n"
            "Are you sure you want to continue? [y/N] "
        )
        sys.stdout.flush()
        answer = sys.stdin.readline() if sys.stdin is not None else ""
        if answer.strip().lower() not in ("y", "yes"):
            raise FailedPrecondition("volume prune cancelled")
    removed, reclaimed = ctx.client.prune_volumes(all_volumes=args.all, filters=filters)
    if removed:
        print("Deleted Volumes:")
        for name in removed:
            print(name)
        print()
    print(f"Total reclaimed space: {human_size(reclaimed)}")
    return 0
