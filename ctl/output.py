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


# One template action: {{.Field}}, {{.A.B}} or {{json .A}} (docker's most used).
_ACTION = r"{{\s*(json\s+)?\.([\w.]*)\s*}}"


def check_format(fmt: str) -> str:
    """check_format accepts ``table``, ``json``, ``{{json .}}`` and ``{{.Field}}`` templates."""
    if fmt.replace(" ", "") == "{{json.}}":
        return "json"
    if fmt not in FORMATS and "{{" not in fmt:
        raise InvalidArgument(
            f"unknown --format {fmt!r}: use table, json or a template such as '{{{{.ID}}}}'"
        )
    return check_template(fmt)


def check_template(fmt: str) -> str:
    """check_template accepts a template whose every action is one ``render_template`` fills.

    Go's text/template would fail on the rest too: an action left open, or a
    function, pipeline or keyword (``{{upper .Name}}``, ``{{range .}}``) that
    ctl does not implement.
    """
    import re

    end = 0
    while (start := fmt.find("{{", end)) != -1:
        end = fmt.find("}}", start + 2)
        if end == -1:
            raise InvalidArgument(f"template {fmt!r}: unclosed action {fmt[start:]!r}")
        end += 2
        if not re.fullmatch(_ACTION, fmt[start:end]):
            raise InvalidArgument(
                f"template {fmt!r}: {fmt[start:end]!r} is not supported: "
                "use '{{.Field}}', '{{.A.B}}' or '{{json .Field}}'"
            )
    return fmt


def _lookup(doc: Any, path: str) -> Any:
    """_lookup follows a dotted path (``State.Running``) into nested mappings."""
    value = doc
    for key in path.split(".") if path else ():
        if not isinstance(value, dict) or key not in value:
            have = ", ".join(value) if isinstance(value, dict) else type(value).__name__
            raise InvalidArgument(f"--format: no field {path!r} (have {have})")
        value = value[key]
    return value


def _text(value: Any) -> str:
    """_text prints a value as Go templates do: true/false, maps and lists as JSON."""
    import json

    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def render_template(fmt: str, docs: Iterable[Mapping[str, Any]]) -> str:
    """render_template fills the template once for each document, a line each.

    A ``table`` prefix makes a table whose headers are the field names.
    """
    import json
    import re

    docs = list(docs)
    actions = re.findall(_ACTION, fmt)
    for doc in docs[:1]:
        for _, path in actions:
            _lookup(doc, path)  # an unknown field fails before anything is printed
    if fmt.startswith("table"):
        table = [[_text(_lookup(doc, path)) for _, path in actions] for doc in docs]
        return render_table([path.upper() for _, path in actions], table)
    body = fmt.replace("\\t", "\t").replace("\\n", "\n")

    def fill(doc: Mapping[str, Any]) -> str:
        return re.sub(
            _ACTION,
            lambda m: json.dumps(_lookup(doc, m[2])) if m[1] else _text(_lookup(doc, m[2])),
            body,
        )

    return "".join(fill(doc) + "\n" for doc in docs)


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
        out.write(render_template(fmt, listing.rows))
    elif fmt == "json":
        import json

        out.write("".join(json.dumps(row) + "\n" for row in listing.rows))
    else:
        table = [[_cell(row.get(c.field)) for c in listing.columns] for row in listing.rows]
        out.write(render_table([c.header for c in listing.columns], table))


def render_table(headers: Sequence[str], table: Sequence[Sequence[str]]) -> str:
    """render_table aligns columns docker-style (three spaces between)."""
    if not table:
        return "   ".join(headers).rstrip() + "\n"
    # An empty listing is the common case in scripts; it skips tabulate's import.
    from tabulate import DataRow, TableFormat, tabulate

    row = DataRow("", "   ", "")
    docker_style = TableFormat(None, None, None, None, row, row, padding=0, with_header_hide=None)
    # The headers go in as the first row: tabulate pads headers (and only them) by
    # MIN_PADDING more than the widest cell, and docker does not.
    text = tabulate([list(headers), *table], tablefmt=docker_style, disable_numparse=True)
    return "".join(line.rstrip() + "\n" for line in text.splitlines())


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
