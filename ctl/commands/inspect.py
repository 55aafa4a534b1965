"""Top-level inspect: any object by name or ID, looked up as docker does."""

from __future__ import annotations

import sys

from ctl.commands._base import (
    Command,
    add_inspect_format,
    complete,
    complete_containers,
    complete_images,
    complete_networks,
    each,
    resolve,
)
from ctl.errdefs import InvalidArgument, NotFound

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from typing import Any

    from ctl.commands._base import Context

# Each type of object inspect finds, in docker's order of lookup (a container shadows an
# image of the same name), and its inspect document: "module:function" in ctl.commands,
# called as function(ctx, ref) -> dict, raising NotFound when ``ref`` names no such object.
# Only the command that finds the object imports its module. A new type is one line here.
DOCUMENTS = {
    "container": "containers:inspect_document",
    "image": "images:inspect_document",
    "network": "inspect:network_document",
    "volume": "inspect:volume_document",
}
# The types whose document takes size=True (-s): SizeRw and SizeRootFs.
SIZED = frozenset({"container"})


def commands() -> tuple[Command, ...]:
    return (Command("inspect", _inspect, "Show any objects as JSON", _flags),)


def _flags(parser: argparse.ArgumentParser) -> None:
    add_inspect_format(parser)
    kind = parser.add_argument(
        "--type", type=_check_type, metavar="TYPE", help=f"only this type: {', '.join(DOCUMENTS)}"
    )
    complete(kind, _complete_types)
    parser.add_argument(
        "-s", "--size", action="store_true", help="add the sizes of a container's files"
    )
    complete(parser.add_argument("refs", nargs="+", metavar="NAME|ID"), _complete_objects)


def _complete_types(**kwargs: Any) -> list[str]:
    return list(DOCUMENTS)


def _complete_objects(prefix: str, parsed_args: argparse.Namespace, **kwargs: Any) -> list[str]:
    completers = (complete_containers, complete_images, complete_networks)
    return [name for names in completers for name in names(prefix, parsed_args, **kwargs)]


def _check_type(kind: str) -> str:
    if kind not in DOCUMENTS:
        wanted = '", "'.join(DOCUMENTS)
        raise InvalidArgument(f'unknown type: "{kind}": must be one of "{wanted}"')
    return kind


def network_document(ctx: Context, ref: str) -> dict[str, Any]:
    return dict(ctx.client.inspect_network(ref))


def volume_document(ctx: Context, ref: str) -> dict[str, Any]:
    return ctx.client.volumes.get(ref).inspect()


def _find(ctx: Context, ref: str, only: str | None, size: bool) -> dict[str, Any]:
    """_find is the document of the first type with an object ``ref`` names."""
    for kind, target in DOCUMENTS.items():
        if only not in (None, kind):
            continue
        document = resolve(target)
        sized = kind in SIZED
        try:
            found: dict[str, Any] = document(ctx, ref, size) if sized else document(ctx, ref)
        except (NotFound, InvalidArgument):
            # Not this type (a name that is no valid image reference may name a network).
            if only is not None:
                raise
            continue
        if size and not sized:
            sys.stderr.write(f"WARNING: --size ignored for {kind}\n")
        return found
    raise NotFound(f"no such object: {ref}")


def inspect_each(
    refs: list[str], document: Callable[[str], dict[str, Any]], fmt: str | None
) -> int:
    """inspect_each prints the documents of the objects ``refs`` name, as docker's inspect
    commands do: what is found is printed, then each name that is not is reported (exit 125)."""
    from ctl.output import print_inspect

    docs: list[dict[str, Any]] = []
    code = each(refs, lambda ref: docs.append(document(ref)), echo=False)
    print_inspect(docs, fmt)
    return code


def _inspect(args: argparse.Namespace, ctx: Context) -> int:
    return inspect_each(args.refs, lambda ref: _find(ctx, ref, args.type, args.size), args.format)
