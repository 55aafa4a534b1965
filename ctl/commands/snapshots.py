"""Snapshot commands, as in ctr: snapshots ls|prepare|view|commit|rm|mounts|tree|usage|info."""

from __future__ import annotations

from ctl.commands._base import Command, Group, add_format, add_format_only

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    import argparse
    from typing import Any

    from ctl.commands._base import Context
    from ctl.output import Listing
    from ctl.snapshots import Mount


def commands() -> tuple[Command | Group, ...]:
    return (
        Group(
            "snapshots",
            "Manage snapshots",
            (
                Command("ls", _ls, "List snapshots", add_format, ("list",)),
                Command("prepare", _prepare, "Create an active snapshot", _prepare_flags),
                Command("view", _view, "Create a read-only view of a snapshot", _view_flags),
                Command("commit", _commit, "Commit an active snapshot", _commit_flags),
                Command("rm", _rm, "Remove snapshots", _rm_flags, ("delete", "remove")),
                Command("mounts", _mounts, "Print the mount commands of a snapshot", _mounts_flags),
                Command("tree", _tree, "Show snapshots as a tree"),
                Command("usage", _usage, "Show the disk usage of snapshots", _usage_flags),
                Command("info", _info, "Show a snapshot as JSON", _info_flags),
            ),
            ("snapshot",),
        ),
    )


def _prepare_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("key", metavar="KEY")
    parser.add_argument("parent", nargs="?", default="", metavar="PARENT")
    parser.add_argument("--target", help="print the mount commands for TARGET")


def _view_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("key", metavar="KEY")
    parser.add_argument("parent", metavar="PARENT")
    parser.add_argument("--target", help="print the mount commands for TARGET")


def _commit_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", metavar="NAME")
    parser.add_argument("key", metavar="KEY")


def _rm_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("keys", nargs="+", metavar="KEY")


def _mounts_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="TARGET")
    parser.add_argument("key", metavar="KEY")


def _usage_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("keys", nargs="*", metavar="KEY")
    add_format_only(parser)


def _info_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("key", metavar="KEY")


def _ls(args: argparse.Namespace, ctx: Context) -> Listing:
    from ctl.output import Column, Listing

    infos = sorted(ctx.client.snapshotter.walk(), key=lambda i: i.name)
    rows = [{"Key": i.name, "Parent": i.parent, "Kind": i.kind.value} for i in infos]
    columns = (Column("KEY", "Key", id=True), Column("PARENT", "Parent"), Column("KIND", "Kind"))
    return Listing(columns, rows)


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


def _usage(args: argparse.Namespace, ctx: Context) -> Listing:
    from ctl.output import Column, Listing
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
    columns = (Column("KEY", "Key"), Column("SIZE", "HumanSize"), Column("INODES", "Inodes"))
    return Listing(columns, rows)


def _info(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.output import print_json

    print_json(ctx.client.snapshotter.stat(args.key).to_json())
    return 0
