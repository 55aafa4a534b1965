"""Data in and out of containers: cp, diff, export, commit and container prune."""

from __future__ import annotations

import sys

from ctl.commands._base import Command, complete, complete_containers
from ctl.errdefs import InvalidArgument

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    import argparse

    from ctl.commands._base import Context, Group


def commands() -> tuple[Command | Group, ...]:
    return (
        Command(
            "cp",
            _cp,
            "Copy files/folders between a container and the local filesystem",
            _cp_flags,
        ),
    )


def _cp_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-a", "--archive", action="store_true", help="archive mode (copy all uid/gid information)"
    )
    parser.add_argument(
        "-L", "--follow-link", action="store_true", help="always follow symbol link in SRC_PATH"
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="suppress progress output (there is none)"
    )
    complete(parser.add_argument("source", metavar="SRC"), complete_containers)
    complete(parser.add_argument("dest", metavar="DEST"), complete_containers)


def split_cp_arg(arg: str) -> tuple[str, str]:
    """split_cp_arg splits ``CONTAINER:PATH``; a local path gives container "" (docker's rule).

    An absolute path is local, and so is one whose part before ``:`` starts
    with ``.`` (``./a:b``).
    """
    if arg.startswith("/"):
        return "", arg
    container, colon, path = arg.partition(":")
    if not colon or container.startswith("."):
        return "", arg
    return container, path


def _cp(args: argparse.Namespace, ctx: Context) -> int:
    src_container, src_path = split_cp_arg(args.source)
    dst_container, dst_path = split_cp_arg(args.dest)
    if src_container and dst_container:
        raise InvalidArgument("copying between containers is not supported")
    if not src_container and not dst_container:
        raise InvalidArgument("must specify at least one container source")
    if not src_path or not dst_path:
        raise InvalidArgument("cp: a path must not be empty")
    flags = {"follow": args.follow_link, "archive": args.archive}
    if src_container:
        if dst_path == "-":
            if sys.stdout.isatty():
                raise InvalidArgument("refusing to write a tar archive to a terminal")
            ctx.client.copy_from_container(
                src_container, src_path, sys.stdout.buffer, follow=args.follow_link
            )
        else:
            ctx.client.copy_from_container(src_container, src_path, dst_path, **flags)
    elif src_path == "-":
        ctx.client.copy_to_container(sys.stdin.buffer, dst_container, dst_path, **flags)
    else:
        ctx.client.copy_to_container(src_path, dst_container, dst_path, **flags)
    return 0
