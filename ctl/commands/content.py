"""Content store commands, as in ctr: content ls|get|rm|fetch|active."""

from __future__ import annotations

import sys
import time

from ctl.commands._base import Command, Group, add_format, add_format_only, add_platform

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    import argparse

    from ctl.commands._base import Context
    from ctl.output import Listing


def commands() -> tuple[Command | Group, ...]:
    return (
        Group(
            "content",
            "Manage the content store",
            (
                Command("ls", _ls, "List blobs", add_format, ("list",)),
                Command("get", _get, "Write a blob to stdout", _get_flags),
                Command("rm", _rm, "Remove blobs", _rm_flags, ("delete", "remove")),
                Command(
                    "fetch", _fetch, "Fetch an image's content without naming it", _fetch_flags
                ),
                Command("active", _active, "List in-progress ingests", add_format_only),
            ),
        ),
    )


def _get_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("digest", metavar="DIGEST")


def _rm_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("digests", nargs="+", metavar="DIGEST")


def _fetch_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ref", metavar="REF")
    add_platform(parser, "os/arch[/variant] (default: this host's)")
    parser.add_argument("--insecure", action="store_true", help="allow plain HTTP and bad TLS")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the digest")


def _ls(args: argparse.Namespace, ctx: Context) -> Listing:
    from ctl.output import Column, Listing
    from ctl.progress import human_size
    from ctl.timefmt import ago

    infos = sorted(ctx.client.content.walk(), key=lambda i: i.digest)
    rows = [
        {
            "Digest": i.digest,
            "Size": i.size,
            "HumanSize": human_size(i.size),
            "Age": ago(i.created_at),
            "CreatedAt": i.created_at,
            "Labels": ",".join(f"{k}={v}" for k, v in sorted(i.labels.items())) or "-",
        }
        for i in infos
    ]
    columns = (
        Column("DIGEST", "Digest", id=True),
        Column("SIZE", "HumanSize"),
        Column("AGE", "Age"),
        Column("LABELS", "Labels"),
    )
    return Listing(columns, rows)


def _get(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.oci import Descriptor, validate_digest

    store = ctx.client.content
    info = store.info(validate_digest(args.digest))
    sys.stdout.flush()
    out = sys.stdout.buffer
    with store.reader_at(Descriptor("application/octet-stream", info.digest, info.size)) as f:
        while chunk := f.read(1 << 20):
            out.write(chunk)
    out.flush()
    return 0


def _rm(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.oci import validate_digest

    store = ctx.client.content
    digests = [validate_digest(d) for d in args.digests]
    for digest in digests:
        store.delete(digest)
        print(digest)
    return 0


def _fetch(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.commands.images import _platform
    from ctl.progress import for_stream

    _, target = ctx.client.fetch(
        args.ref,
        platform=_platform(args.platform),
        insecure=args.insecure,
        progress=for_stream(args.quiet),
    )
    print(target.digest)
    return 0


def _active(args: argparse.Namespace, ctx: Context) -> Listing:
    from ctl.output import Column, Listing
    from ctl.progress import human_size
    from ctl.timefmt import human_duration

    now = time.time()
    rows = [
        {
            "Ref": s.ref,
            "Offset": s.offset,
            "Total": s.total,
            "Progress": f"{human_size(s.offset)}/{human_size(s.total)}",
            "Started": human_duration(now - s.started_at) + " ago",
            "Expected": s.expected,
        }
        for s in ctx.client.content.list_statuses()
    ]
    columns = (Column("REF", "Ref"), Column("SIZE", "Progress"), Column("STARTED", "Started"))
    return Listing(columns, rows)
