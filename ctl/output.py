"""One renderer for every listing: a table for people, JSON for programs.

``--format json`` prints one JSON object a line, as docker does; ``inspect``
commands print one JSON array. Tables are plain, column-aligned text in
docker's style, rendered by tabulate (imported only when a table is printed).
Scripts written for docker also get the simple Go templates they use most:
``{{.Names}}``, ``{{.ID}}\t{{.Status}}``, ``table {{.ID}}\t{{.Image}}``.
"""

from __future__ import annotations

import sys

from ctl.errdefs import InvalidArgument

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any

FORMATS = ("table", "json")


_FIELD = r"{{\s*\.(\w+)\s*}}"


def check_format(fmt: str) -> str:
    """check_format accepts ``table``, ``json``, ``{{json .}}`` and ``{{.Field}}`` templates."""
    if fmt.replace(" ", "") == "{{json.}}":
        return "json"
    if fmt not in FORMATS and "{{" not in fmt:
        raise InvalidArgument(
            f"unknown --format {fmt!r}: use table, json or a template such as '{{{{.ID}}}}'"
        )
    return fmt


def _template(fmt: str, rows: Iterable[Mapping[str, Any]]) -> str:
    """_template renders ``{{.Field}}`` templates; a ``table`` prefix makes a table of them."""
    import re

    rows = list(rows)
    fields = re.findall(_FIELD, fmt)
    unknown = [f for f in fields if rows and f not in rows[0]]
    if unknown:
        raise InvalidArgument(f"--format: no field {unknown[0]!r} (have {', '.join(rows[0])})")
    if fmt.startswith("table"):
        table = [[_cell(row.get(f)) for f in fields] for row in rows]
        return render_table([f.upper() for f in fields], table)
    # re.split with a group alternates literal text (even) and field names (odd).
    parts = re.split(_FIELD, fmt.replace("\\t", "\t").replace("\\n", "\n"))
    return "".join(
        "".join(_cell(row.get(p)) if i % 2 else p for i, p in enumerate(parts)) + "\n"
        for row in rows
    )


def print_listing(
    fmt: str,
    headers: Sequence[str],
    rows: Iterable[Mapping[str, Any]],
    *,
    columns: Sequence[str] | None = None,
) -> None:
    """print_listing prints ``rows`` as a table or as JSON lines.

    ``columns`` names the keys shown under ``headers`` in the table; JSON lines
    carry every key of each row.
    """
    fmt = check_format(fmt)
    out = sys.stdout
    if "{{" in fmt:
        out.write(_template(fmt, rows))
        return
    if fmt == "json":
        import json

        for row in rows:
            out.write(json.dumps(row, sort_keys=False) + "\n")
        return
    keys = columns or headers
    table = [[_cell(row.get(k)) for k in keys] for row in rows]
    out.write(render_table(headers, table))


def render_table(headers: Sequence[str], table: Sequence[Sequence[str]]) -> str:
    """render_table aligns columns docker-style (three spaces between)."""
    if not table:
        return "   ".join(headers).rstrip() + "\n"
    # An empty listing is the common case in scripts; it skips tabulate's import.
    import tabulate as tabulate_module
    from tabulate import DataRow, TableFormat, tabulate

    # tabulate pads headers by two more spaces than the widest cell; docker does not.
    tabulate_module.MIN_PADDING = 0

    row = DataRow("", "   ", "")
    docker_style = TableFormat(None, None, None, None, row, row, padding=0, with_header_hide=None)
    text = tabulate(table, headers=list(headers), tablefmt=docker_style, disable_numparse=True)
    return "".join(line.rstrip() + "\n" for line in text.splitlines())


def print_json(value: Any) -> None:
    """print_json prints one indented JSON document (for inspect)."""
    import json

    sys.stdout.write(json.dumps(value, indent=4) + "\n")


def print_ids(ids: Iterable[str]) -> None:
    sys.stdout.write("".join(f"{i}\n" for i in ids))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return str(value)
