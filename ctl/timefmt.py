"""Times as people and programs read them: docker's "2 days ago" and RFC 3339."""

from __future__ import annotations

import re
import time

# A pattern, compiled on first use (re keeps it): compiling it costs a quarter of a
# millisecond, which a listing that parses no time would pay on every call.
_RFC3339 = r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(\.\d+)?(Z|z|[+-]\d\d:\d\d)?"


def parse_rfc3339(text: str) -> float | None:
    """parse_rfc3339 reads an image config's ``created``; None if absent or malformed."""
    import calendar

    m = re.match(_RFC3339, text or "")
    if not m:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    fraction = float(m.group(7) or 0)
    offset = m.group(8) or "Z"
    if offset not in ("Z", "z"):
        sign = 1 if offset[0] == "+" else -1
        seconds -= sign * (int(offset[1:3]) * 3600 + int(offset[4:6]) * 60)
    return seconds + fraction


def format_rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def human_duration(seconds: float) -> str:
    """human_duration follows docker's go-units HumanDuration."""
    if seconds < 1:
        return "Less than a second"
    if seconds < 2:
        return "1 second"
    if seconds < 60:
        return f"{int(seconds)} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(seconds / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{hours // 24 // 365} years"


def ago(ts: float | None, now: float | None = None) -> str:
    if ts is None:
        return "N/A"
    return human_duration(max(0.0, (now or time.time()) - ts)) + " ago"


def parse_timestamp(text: str, now: float | None = None) -> float:
    """parse_timestamp reads ``--since``/``--until`` as docker does: a Unix time
    (``1700000000.5``), an RFC 3339 time or date (``2026-12-07T06:00:00Z``,
    ``2026-12-07``), a Go duration before now (``10m``, ``1h30m``), or ``now``.
    """
    from ctl.errdefs import InvalidArgument

    current = time.time() if now is None else now
    value = text.strip()
    if value == "now":
        return current
    if re.fullmatch(r"\d+(\.\d+)?", value):
        return float(value)
    if re.fullmatch(r"\d{4}-\d\d-\d\d", value):
        value += "T00:00:00Z"
    parsed = parse_rfc3339(value)
    if parsed is not None and re.fullmatch(_RFC3339, value):
        return parsed
    from ctl.runtime.runopts import parse_duration

    try:
        return current - parse_duration(value)
    except InvalidArgument:
        raise InvalidArgument(
            f"invalid time {text!r}: want a Unix time, an RFC 3339 time, or a duration such as 10m"
        ) from None


def go_time_string(seconds: float) -> str:
    """go_time_string is Go's ``time.Unix(s, 0).String()``, docker's ``.CreatedAt`` of
    ``images`` and ``ps``: ``2023-11-14 22:13:20 +0000 UTC``.

    docker builds it from whole seconds in the local time zone (TZ), so the
    fraction is dropped and the zone is the host's.
    """
    local = time.localtime(int(seconds))
    return time.strftime("%Y-%m-%d %H:%M:%S %z %Z", local)
