"""Namespace commands, as in ctr: namespaces ls|create|rm."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ctl.commands._base import add_command, add_format, add_group

if TYPE_CHECKING:
    import argparse

    from ctl.commands._base import SubParsers
    from ctl.main import Context


def register(subparsers: SubParsers) -> None:
    group = add_group(subparsers, "namespaces", "Manage namespaces", aliases=("namespace", "ns"))
    ls = add_command(group, "ls", _ls, "List namespaces", aliases=("list",))
    add_format(ls)
    create = add_command(group, "create", _create, "Create a namespace")
    create.add_argument("name", metavar="NAME")
    rm = add_command(group, "rm", _rm, "Remove empty namespaces", aliases=("remove", "delete"))
    rm.add_argument("names", nargs="+", metavar="NAME")


def _ls(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.output import print_ids, print_listing

    names = ctx.client.list_namespaces()
    if args.quiet:
        print_ids(names)
        return 0
    print_listing(args.format, ["NAME"], [{"Name": n} for n in names], columns=["Name"])
    return 0


def _create(args: argparse.Namespace, ctx: Context) -> int:
    ctx.client.create_namespace(args.name)
    return 0


def _rm(args: argparse.Namespace, ctx: Context) -> int:
    for name in args.names:
        ctx.client.remove_namespace(name)
        print(name)
    return 0
