"""Content store commands, as in ctr: content ls|get|rm|fetch|active."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING

from ctl.commands._base import add_command, add_format, add_group

if TYPE_CHECKING:
    import argparse

    from ctl.commands._base import SubParsers
    from ctl.main import Context


def register(subparsers: SubParsers) -> None:
    group = add_group(subparsers, "content", "Manage the content store")
    ls = add_command(group, "ls", _ls, "List blobs", aliases=("list",))
    add_format(ls)
    get = add_command(group, "get", _get, "Write a blob to stdout")
    get.add_argument("digest", metavar="DIGEST")
    rm = add_command(group, "rm", _rm, "Remove blobs", aliases=("delete", "remove"))
    rm.add_argument("digests", nargs="+", metavar="DIGEST")
    fetch = add_command(group, "fetch", _fetch, "Fetch an image's content without naming it")
    fetch.add_argument("ref", metavar="REF")
    fetch.add_argument("--platform", help="os/arch[/variant] (default: this host's)")
    fetch.add_argument("--insecure", action="store_true", help="allow plain HTTP and bad TLS")
    fetch.add_argument("-q", "--quiet", action="store_true", help="print only the digest")
    active = add_command(group, "active", _active, "List in-progress ingests")
    add_format(active, quiet=False)


def _ls(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.output import check_format, print_ids, print_listing
    from ctl.progress import human_size
    from ctl.timefmt import ago

    fmt = check_format(args.format)
    infos = sorted(ctx.client.content.walk(), key=lambda i: i.digest)
    if args.quiet:
        print_ids(i.digest for i in infos)
        return 0
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
    print_listing(
        fmt,
        ["DIGEST", "SIZE", "AGE", "LABELS"],
        rows,
        columns=["Digest", "HumanSize", "Age", "Labels"],
    )
    return 0


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


def _active(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.output import print_listing
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
    print_listing(
        args.format, ["REF", "SIZE", "STARTED"], rows, columns=["Ref", "Progress", "Started"]
    )
    return 0
