"""One renderer for every listing: a table for people, JSON for programs.

``--format json`` prints one JSON object a line, as docker does; ``inspect``
commands print one JSON array. Tables are plain, column-aligned text in
docker's style, rendered by tabulate (imported only when a table is printed).
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


def check_format(fmt: str) -> str:
    """check_format accepts ``table``, ``json`` and docker's ``{{json .}}``."""
    if fmt.replace(" ", "") == "{{json.}}":
        return "json"
    if fmt not in FORMATS:
        raise InvalidArgument(f"unknown --format {fmt!r}: use table or json")
    return fmt


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
