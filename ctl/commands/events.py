"""events: what happened under this root, from the event log, and what happens next."""

from __future__ import annotations

import sys
import time

from ctl.commands._base import Command

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    import argparse
    from typing import Any

    from ctl.commands._base import Context
    from ctl.filters import Filters

EVENT_FILTERS = ("container", "event", "image", "label", "network", "type", "volume", "scope")
TYPES = ("container", "image", "volume", "network")


def commands() -> tuple[Command, ...]:
    return (Command("events", _events, "Show events as they happen, or past ones", _flags),)


def _flags(parser: argparse.ArgumentParser) -> None:
    from ctl.output import check_format

    add = parser.add_argument
    add("--since", help="show events since this time (Unix time, RFC 3339, or a duration ago)")
    add("--until", help="stop at this time (Unix time, RFC 3339, or a duration ago)")
    add("-f", "--filter", action="append", default=[], metavar="KEY=VALUE", help="filter events")
    add("--format", type=check_format, help="json, or a Go template")


def _events(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.filters import Filters
    from ctl.timefmt import parse_timestamp

    now = time.time()
    since = parse_timestamp(args.since, now) if args.since else None
    until = parse_timestamp(args.until, now) if args.until else None
    filters = Filters(args.filter, EVENT_FILTERS)
    filters.one_of("type", TYPES)
    template = None
    if args.format not in (None, "json", "table"):
        from ctl import gotemplate

        template = gotemplate.parse(args.format.replace("\\t", "\t").replace("\\n", "\n"))
    # docker shows past events only when asked for a time span, and follows until --until.
    past = since is not None or until is not None
    start_ns = int((since or 0) * 1e9) if past else int(now * 1e9)
    out = sys.stdout
    for event in ctx.client.events(follow=until is None or until > time.time()):
        if event is None:
            if until is not None and time.time() >= until:
                return 0
            continue
        stamp = event["timeNano"]
        if stamp < start_ns:
            continue
        if until is not None and stamp > until * 1e9:
            return 0
        if not _matches(filters, event):
            continue
        out.write(_render(event, args.format, template))
        out.flush()
    return 0


def _matches(filters: Filters, event: dict[str, Any]) -> bool:
    actor = event.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    actor_id = str(actor.get("ID", ""))
    kind = event.get("Type")

    def names(value: str) -> bool:
        return actor_id.startswith(value) or attributes.get("name") == value

    return (
        filters.match("type", lambda value: value == kind)
        # "exec_start: sh -c ..." is an exec_start, as docker's filter takes it.
        and filters.match(
            "event", lambda value: value == str(event.get("Action", "")).split(":", 1)[0]
        )
        and filters.match("scope", lambda value: value == event.get("scope"))
        and filters.match("container", lambda value: kind == "container" and names(value))
        and filters.match("network", lambda value: kind == "network" and names(value))
        and filters.match("volume", lambda value: kind == "volume" and names(value))
        and filters.match(
            "image",
            lambda value: (
                value in (attributes.get("image"), actor_id) or (kind == "image" and names(value))
            ),
        )
        and filters.match_labels(attributes)
    )


def _render(event: dict[str, Any], fmt: str | None, template: Any) -> str:
    if fmt == "json":
        from ctl.gotemplate import marshal

        return marshal(event) + "\n"
    if template is not None:
        from ctl import gotemplate

        doc = {
            "Status": event.get("status", ""),
            "ID": event.get("id", ""),
            "From": event.get("from", ""),
            "Type": event.get("Type", ""),
            "Action": event.get("Action", ""),
            "Actor": event.get("Actor", {}),
            "Scope": event.get("scope", ""),
            "Time": event.get("time", 0),
            "TimeNano": event.get("timeNano", 0),
        }
        return gotemplate.execute(template, doc) + "\n"
    actor = event.get("Actor") or {}
    attributes = actor.get("Attributes") or {}
    details = ", ".join(f"{k}={v}" for k, v in sorted(attributes.items()))
    line = f"{_time(event['timeNano'])} {event.get('Type')} {event.get('Action')} {actor.get('ID')}"
    return f"{line} ({details})\n" if details else line + "\n"


def _time(nanoseconds: int) -> str:
    """_time is docker's RFC3339NanoFixed in local time: nine digits, Z for UTC."""
    seconds, fraction = divmod(nanoseconds, 1_000_000_000)
    local = time.localtime(seconds)
    offset = local.tm_gmtoff
    zone = (
        "Z"
        if offset == 0
        else f"{'+' if offset > 0 else '-'}{abs(offset) // 3600:02d}:{abs(offset) % 3600 // 60:02d}"
    )
    return time.strftime("%Y-%m-%dT%H:%M:%S", local) + f".{fraction:09d}{zone}"
