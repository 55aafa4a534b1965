"""Data in and out of containers: cp, diff, export, commit, import and container prune."""

from __future__ import annotations

import sys

from ctl.commands._base import Command, bool_flag, complete, complete_containers, parse_flag
from ctl.errdefs import InvalidArgument

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterator
    from typing import Any, BinaryIO

    from ctl.commands._base import Context, Group


def commands() -> tuple[Command | Group, ...]:
    return (
        Command(
            "cp",
            _cp,
            "Copy files/folders between a container and the local filesystem",
            _cp_flags,
        ),
        Command("diff", _diff, "Inspect changes to files on a container's filesystem", _one),
        Command(
            "export", _export, "Export a container's filesystem as a tar archive", _export_flags
        ),
        Command("commit", _commit, "Create a new image from a container's changes", _commit_flags),
        Command("import", _import, "Import a tarball to create a filesystem image", _import_flags),
    )


def _one(parser: argparse.ArgumentParser) -> None:
    complete(parser.add_argument("container", metavar="CONTAINER"), complete_containers)


def _export_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", metavar="FILE", help="write to a file, not stdout")
    _one(parser)


def _change_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c",
        "--change",
        action="append",
        default=[],
        metavar="INSTRUCTION",
        help="apply a Dockerfile instruction to the image (CMD, ENV, LABEL, ...)",
    )
    parser.add_argument("-m", "--message", default="", help="commit message")


def _commit_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-a", "--author", default="", help='author (e.g. "Jo <jo@example.com>")')
    _change_flag(parser)
    bool_flag(parser, "-p", "--pause", help="pause the container during the commit")
    parser.add_argument(
        "--no-pause", dest="pause", action="store_false", help="do not pause the container"
    )
    _one(parser)
    parser.add_argument("ref", nargs="?", metavar="REPOSITORY[:TAG]")


def _import_flags(parser: argparse.ArgumentParser) -> None:
    from ctl.commands._base import add_platform

    _change_flag(parser)
    add_platform(parser, "the image's os/arch[/variant] (default: this host's)")
    parser.add_argument("source", metavar="file|URL|-")
    parser.add_argument("ref", nargs="?", metavar="REPOSITORY[:TAG]")


def container_prune_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--force", action="store_true", help="do not prompt for confirmation")
    parser.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="FILTER",
        help="'until=<timestamp|duration>', 'label=<key>[=<value>]' or 'label!=...'",
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


def _diff(args: argparse.Namespace, ctx: Context) -> int:
    for change in ctx.client.diff(args.container):
        print(change)
    return 0


def _export(args: argparse.Namespace, ctx: Context) -> int:
    from pathlib import Path

    from ctl.images.archive import archive_file

    if args.output in (None, "-"):
        if sys.stdout.isatty():
            raise InvalidArgument(
                "cowardly refusing to save to a terminal: use the -o flag or redirect"
            )
        sys.stdout.flush()
        ctx.client.export(args.container, sys.stdout.buffer)
        return 0
    with archive_file(Path(args.output)) as out:
        ctx.client.export(args.container, out)
    return 0


def _commit(args: argparse.Namespace, ctx: Context) -> int:
    image_id = ctx.client.commit(
        args.container,
        args.ref,
        author=args.author,
        message=args.message,
        changes=args.change,
        pause=args.pause,
    )
    print(image_id)
    return 0


def _import(args: argparse.Namespace, ctx: Context) -> int:
    import contextlib

    with contextlib.ExitStack() as stack:
        if args.source == "-":
            if sys.stdin is None or sys.stdin.isatty():
                raise InvalidArgument("import: no tar on stdin: pipe one in, or give a file or URL")
            source = sys.stdin.buffer
        elif args.source.startswith(("http://", "https://")):
            source = stack.enter_context(_download(args.source))
        else:
            try:
                source = stack.enter_context(open(args.source, "rb"))
            except OSError as err:
                raise InvalidArgument(f"import: cannot open {args.source}: {err.strerror}") from err
        image_id = ctx.client.import_image(
            source,
            args.ref,
            message=args.message,
            changes=args.change,
            platform=args.platform,
            origin=args.source,
        )
    print(image_id)
    return 0


def _download(url: str) -> Any:
    """_download opens ``url`` for reading (requests, imported only for a URL)."""
    import contextlib

    import requests

    from ctl.errdefs import Unavailable

    @contextlib.contextmanager
    def opened() -> Iterator[BinaryIO]:
        try:
            response = requests.get(url, stream=True, timeout=60)
            response.raise_for_status()
        except requests.RequestException as err:
            raise Unavailable(f"import: cannot fetch {url}: {err}") from err
        with response:
            response.raw.decode_content = True
            yield response.raw  # type: ignore[misc]  # urllib3's response reads as a file

    return opened()


def confirm(what: str, command: str) -> None:
    """confirm asks docker's question on stdout and reads the answer from stdin, a terminal or not.

    Anything but y or yes (an empty stdin too) cancels: FailedPrecondition.
    """
    from ctl.errdefs import FailedPrecondition

    sys.stdout.write(
        f"WARNING! This will remove {what}.\nAre you sure you want to continue? [y/N] "
    )
    sys.stdout.flush()
    answer = sys.stdin.readline() if sys.stdin is not None else ""
    if answer.strip().lower() not in ("y", "yes"):
        raise FailedPrecondition(f"{command} has been cancelled")


def container_prune(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.progress import human_size

    until, labels = parse_prune_filters(args.filter)
    if not args.force:
        confirm("all stopped containers", "container prune")
    removed = ctx.client.prune_containers(until=until, labels=labels)
    if removed:
        print("Deleted Containers:")
        for container_id, _ in removed:
            print(container_id)
        print()
    print(f"Total reclaimed space: {human_size(sum(size for _, size in removed))}")
    return 0


def parse_prune_filters(filters: list[str]) -> tuple[float | None, list[str]]:
    """parse_prune_filters reads docker's ``until=`` and ``label=``/``label!=`` filters.

    ``until`` is a Unix time, an RFC 3339 time or date or a duration before
    now (``24h``, ``1h30m``); labels come back as ``k``, ``k=v`` or ``!k=v``.
    """
    from ctl.timefmt import parse_timestamp

    until: float | None = None
    labels: list[str] = []
    for spec in filters:
        key, eq, value = spec.partition("=")
        if key == "label!" and eq:
            labels.append("!" + value)
        elif key == "label" and eq and value:
            labels.append(value)
        elif key == "until" and eq and value:
            # As logs --since reads its times: docker's container_prune.md lists the same forms.
            until = parse_flag("until filter", parse_timestamp, value)
        else:
            raise InvalidArgument(f"invalid filter {spec!r}: want until=, label= or label!=")
    return until, labels
