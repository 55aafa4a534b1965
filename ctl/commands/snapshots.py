"""Snapshot commands, as in ctr: snapshots ls|prepare|view|commit|rm|mounts|tree|usage|info."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ctl.commands._base import add_command, add_format, add_group

if TYPE_CHECKING:
    import argparse

    from ctl.commands._base import SubParsers
    from ctl.main import Context
    from ctl.snapshots import Mount


def register(subparsers: SubParsers) -> None:
    group = add_group(subparsers, "snapshots", "Manage snapshots", aliases=("snapshot",))
    ls = add_command(group, "ls", _ls, "List snapshots", aliases=("list",))
    add_format(ls)
    prepare = add_command(group, "prepare", _prepare, "Create an active snapshot")
    prepare.add_argument("key", metavar="KEY")
    prepare.add_argument("parent", nargs="?", default="", metavar="PARENT")
    prepare.add_argument("--target", help="print the mount commands for TARGET")
    view = add_command(group, "view", _view, "Create a read-only view of a snapshot")
    view.add_argument("key", metavar="KEY")
    view.add_argument("parent", metavar="PARENT")
    view.add_argument("--target", help="print the mount commands for TARGET")
    commit = add_command(group, "commit", _commit, "Commit an active snapshot")
    commit.add_argument("name", metavar="NAME")
    commit.add_argument("key", metavar="KEY")
    rm = add_command(group, "rm", _rm, "Remove snapshots", aliases=("delete", "remove"))
    rm.add_argument("keys", nargs="+", metavar="KEY")
    mounts = add_command(group, "mounts", _mounts, "Print the mount commands of a snapshot")
    mounts.add_argument("target", metavar="TARGET")
    mounts.add_argument("key", metavar="KEY")
    add_command(group, "tree", _tree, "Show snapshots as a tree")
    usage = add_command(group, "usage", _usage, "Show the disk usage of snapshots")
    usage.add_argument("keys", nargs="*", metavar="KEY")
    add_format(usage, quiet=False)
    info = add_command(group, "info", _info, "Show a snapshot as JSON")
    info.add_argument("key", metavar="KEY")


def _ls(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.output import check_format, print_ids, print_listing

    fmt = check_format(args.format)
    infos = sorted(ctx.client.snapshotter.walk(), key=lambda i: i.name)
    if args.quiet:
        print_ids(i.name for i in infos)
        return 0
    rows = [{"Key": i.name, "Parent": i.parent, "Kind": i.kind.value} for i in infos]
    print_listing(fmt, ["KEY", "PARENT", "KIND"], rows, columns=["Key", "Parent", "Kind"])
    return 0


def mount_commands(mounts: list[Mount], target: str) -> list[str]:
    """mount_commands renders mounts as mount(8) command lines, as ctr does."""
    lines = []
    for m in mounts:
        options = f" -o {','.join(m.options)}" if m.options else ""
        lines.append(f"mount -t {m.type} {m.source} {target}{options}")
    return lines


def _print_mounts(mounts: list[Mount], target: str | None) -> None:
    if target:
        print("\n".join(mount_commands(mounts, target)))


def _prepare(args: argparse.Namespace, ctx: Context) -> int:
    _print_mounts(ctx.client.snapshotter.prepare(args.key, args.parent), args.target)
    return 0


def _view(args: argparse.Namespace, ctx: Context) -> int:
    _print_mounts(ctx.client.snapshotter.view(args.key, args.parent), args.target)
    return 0


def _commit(args: argparse.Namespace, ctx: Context) -> int:
    ctx.client.snapshotter.commit(args.name, args.key)
    return 0


def _rm(args: argparse.Namespace, ctx: Context) -> int:
    for key in args.keys:
        ctx.client.snapshotter.remove(key)
    return 0


def _mounts(args: argparse.Namespace, ctx: Context) -> int:
    _print_mounts(ctx.client.snapshotter.mounts(args.key), args.target)
    return 0


def _tree(args: argparse.Namespace, ctx: Context) -> int:
    infos = list(ctx.client.snapshotter.walk())
    children: dict[str, list[str]] = {}
    for info in infos:
        children.setdefault(info.parent, []).append(info.name)

    def show(name: str, depth: int) -> None:
        print(f"{'  ' * depth}\\_ {name}" if depth else name)
        for child in sorted(children.get(name, [])):
            show(child, depth + 1)

    for root in sorted(children.get("", [])):
        show(root, 0)
    return 0


def _usage(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.output import print_listing
    from ctl.progress import human_size

    sn = ctx.client.snapshotter
    keys = args.keys or sorted(i.name for i in sn.walk())
    rows: list[dict[str, Any]] = []
    for key in keys:
        usage = sn.usage(key)
        rows.append(
            {
                "Key": key,
                "Size": usage.size,
                "HumanSize": human_size(usage.size),
                "Inodes": usage.inodes,
            }
        )
    print_listing(
        args.format, ["KEY", "SIZE", "INODES"], rows, columns=["Key", "HumanSize", "Inodes"]
    )
    return 0


def _info(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.output import print_json

    print_json(ctx.client.snapshotter.stat(args.key).to_json())
    return 0
