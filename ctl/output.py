"""One renderer for every listing: a table for people, JSON for programs.

``--format json`` prints one JSON object a line, as docker does; ``inspect``
commands print one JSON array. Tables are plain, column-aligned text in
docker's style, aligned by hand.
Scripts written for docker also get the simple Go templates they use most:
``{{.Names}}``, ``{{.ID}}\t{{.Status}}``, ``table {{.ID}}\t{{.Image}}``.
"""

from __future__ import annotations

import sys

from ctl.errdefs import InvalidArgument

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence
    from typing import Any

FORMATS = ("table", "json")


def check_format(fmt: str) -> str:
    """check_format accepts ``table``, ``json``, ``{{json .}}`` and Go templates."""
    if fmt.replace(" ", "") == "{{json.}}":
        return "json"
    if fmt not in FORMATS and "{{" not in fmt:
        raise InvalidArgument(
            f"unknown --format {fmt!r}: use table, json or a template such as '{{{{.ID}}}}'"
        )
    return check_template(fmt)


def check_template(fmt: str) -> str:
    """check_template accepts a template that parses as Go's text/template would."""
    if "{{" in fmt:
        from ctl import gotemplate

        gotemplate.parse(_template_body(fmt)[1])
    return fmt


def _template_body(fmt: str) -> tuple[bool, str]:
    """_template_body splits docker's ``table`` prefix off, and unescapes ``\\t``/``\\n``."""
    table = fmt.startswith("table")
    body = fmt[len("table") :].lstrip(" ") if table else fmt
    return table, body.replace("\\t", "\t").replace("\\n", "\n")


def render_template(
    fmt: str,
    docs: Iterable[Mapping[str, Any]],
    headers: Mapping[str, str] | None = None,
) -> str:
    """render_template fills the template once for each document, a line each.

    With ``headers`` (a listing's field -> column header) a field missing from
    a row is an error, and a ``table`` prefix makes a table whose header row
    is the template filled with the headers; without, a missing key is
    ``<no value>``, as in docker's inspect.
    """
    from ctl import gotemplate

    table, body = _template_body(fmt)
    nodes = gotemplate.parse(body)
    strict = headers is not None
    lines = [gotemplate.execute(nodes, doc, strict=strict) for doc in docs]
    if not table or headers is None:
        return "".join(line + "\n" for line in lines)
    header = gotemplate.execute(nodes, headers)
    cells = [line.split("\t") for line in [header, *lines]]
    return render_table(cells[0], cells[1:])


class Column:
    """Column is one column of a listing.

    ``header`` heads it in a table; ``field`` is its key in each row, so its
    name in JSON and in templates; the ``id`` column is what ``-q`` prints.
    """

    __slots__ = ("field", "header", "id")

    def __init__(self, header: str, field: str, *, id: bool = False) -> None:
        self.header = header
        self.field = field
        self.id = id


class Listing:
    """Listing is what a listing command returns: columns, and rows that carry every field.

    A table shows the columns; JSON lines and templates see every key of a row.
    ``ids`` is what ``-q`` prints when it is not the id column of every row.
    """

    __slots__ = ("columns", "ids", "rows")

    def __init__(
        self,
        columns: Sequence[Column],
        rows: Sequence[Mapping[str, Any]],
        ids: Iterable[Any] | None = None,
    ) -> None:
        self.columns = columns
        self.rows = rows
        self.ids = ids


def print_listing(listing: Listing, fmt: str, quiet: bool) -> None:
    """print_listing prints the ids (``-q``), JSON lines, a template or a table.

    ``fmt`` has passed ``check_format``.
    """
    out = sys.stdout
    if quiet:
        ids = listing.ids
        if ids is None:
            field = next(c.field for c in listing.columns if c.id)
            ids = (row[field] for row in listing.rows if row[field] != "")
        out.write("".join(f"{i}\n" for i in ids))
    elif "{{" in fmt:
        headers: dict[str, Any] = {
            key: _no_header if callable(value) else key.upper()
            for row in listing.rows[:1]
            for key, value in row.items()
        }
        headers.update((c.field, c.header) for c in listing.columns)
        out.write(render_template(fmt, listing.rows, headers))
    elif fmt == "json":
        out.write("".join(_json_line(row) for row in listing.rows))
    else:
        table = [[_cell(row.get(c.field)) for c in listing.columns] for row in listing.rows]
        out.write(render_table([c.header for c in listing.columns], table))


def _json_line(row: Mapping[str, Any]) -> str:
    """_json_line is a listing's row as docker's ``--format json`` prints it: Go's json.Marshal
    of a map, so compact, its keys sorted and its methods (``Label``) left out."""
    from ctl.gotemplate import marshal

    return marshal(dict(sorted(row.items()))) + "\n"


def label_method(labels: Mapping[str, str]) -> Callable[[str], str]:
    """label_method is a listing row's ``Label``: ``{{.Label "KEY"}}`` is the label's value,
    empty when the object has no such label, as in docker's listings."""

    def label(key: str) -> str:
        return labels.get(key, "")

    return label


def natural_key(name: str) -> list[Any]:
    """natural_key sorts names as docker's listings do (sortorder.NaturalLess): ``net2``
    before ``net10``."""
    import re

    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _no_header(*args: Any) -> str:
    """_no_header heads a template's method column (``{{.Label "KEY"}}``): docker prints no
    header there (its header map has no methods)."""
    return ""


def print_rows(listing: Listing) -> None:
    """print_rows prints a table's rows without its header, aligned to the headers' widths."""
    widths = [len(c.header) for c in listing.columns]
    for row in listing.rows:
        cells = [_cell(row.get(c.field)) for c in listing.columns]
        line = "   ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
        sys.stdout.write(line.rstrip() + "\n")


def render_table(headers: Sequence[str], table: Sequence[Sequence[str]]) -> str:
    """render_table aligns columns docker-style (three spaces between)."""
    # By hand: tabulate's import costs ~19 ms (importlib.metadata, dataclasses),
    # more than rendering a hundred rows, and ``ps`` pays it on every call.
    rows = [headers, *table]
    # A template's row may have more cells than its header (a value with a tab) or fewer.
    widths = [
        max(len(row[i]) for row in rows if i < len(row))
        for i in range(max(len(row) for row in rows))
    ]
    return "".join(
        "   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)).rstrip()
        + "\n"
        for row in rows
    )


def print_json(value: Any) -> None:
    """print_json prints one indented JSON document (for inspect)."""
    import json

    sys.stdout.write(json.dumps(value, indent=4) + "\n")


def print_inspect(docs: list[dict[str, Any]], fmt: str | None) -> None:
    """print_inspect prints inspect's JSON array, or each document through ``-f`` template."""
    if fmt is None:
        print_json(docs)
    else:
        sys.stdout.write(render_template(check_template(fmt), docs))


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return str(value)
