"""Namespace commands, as in ctr: namespaces ls|create|rm."""

from __future__ import annotations

from ctl.commands._base import Command, Group, add_format

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    import argparse

    from ctl.commands._base import Context
    from ctl.output import Listing


def commands() -> tuple[Command | Group, ...]:
    return (
        Group(
            "namespaces",
            "Manage namespaces",
            (
                Command("ls", _ls, "List namespaces", add_format, ("list",)),
                Command("create", _create, "Create a namespace", _create_flags),
                Command("rm", _rm, "Remove empty namespaces", _rm_flags, ("remove", "delete")),
            ),
            ("namespace", "ns"),
        ),
    )


def _create_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME")


def _rm_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="+", metavar="NAME")


def _ls(args: argparse.Namespace, ctx: Context) -> Listing:
    from ctl.output import Column, Listing

    names = ctx.client.list_namespaces()
    return Listing((Column("NAME", "Name", id=True),), [{"Name": n} for n in names])


def _create(args: argparse.Namespace, ctx: Context) -> int:
    ctx.client.create_namespace(args.name)
    return 0


def _rm(args: argparse.Namespace, ctx: Context) -> int:
    for name in args.names:
        ctx.client.remove_namespace(name)
        print(name)
    return 0
