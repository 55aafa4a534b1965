"""Listings and templates, as docker prints them and its --format and inspect -f take them."""

from __future__ import annotations

import pytest
import tabulate

from ctl.errdefs import InvalidArgument
from ctl.output import (
    Column,
    Listing,
    check_format,
    check_template,
    label_method,
    natural_key,
    print_listing,
    render_template,
)

DOC = {
    "Name": "web",
    "State": {"Running": True, "Pid": 42, "Error": None},
    "Config": {"Cmd": ["sleep", "30"], "Env": {"A": "1"}},
}


def test_dotted_fields_and_json() -> None:
    fmt = "{{.Name}} {{ .State.Running }} {{.State.Pid}} {{json .Config.Cmd}}"
    out = render_template(fmt, [DOC])
    assert out == 'web true 42 ["sleep","30"]\n'


def test_values_print_as_go_templates_print_them() -> None:
    assert render_template("{{.State.Error}}|{{.Config.Env}}", [DOC]) == "|map[A:1]\n"
    assert render_template("{{.Config.Cmd}} {{.State.Nope}}", [DOC]) == "[sleep 30] <no value>\n"


def test_one_line_per_document_and_escapes() -> None:
    docs = [{"ID": "a", "N": 1}, {"ID": "b", "N": 2}]
    assert render_template(r"{{.ID}}\t{{.N}}", docs) == "a\t1\nb\t2\n"
    table = render_template("table {{.ID}}\t{{.N}}", docs, {"ID": "ID", "N": "N"})
    assert table.splitlines()[0].split() == ["ID", "N"]


def test_an_unknown_field_of_a_listing_row_is_one_error() -> None:
    # A listing's rows are docker's typed structs: a missing field fails, as there.
    headers = {"Name": "NAME"}
    with pytest.raises(InvalidArgument, match=r"can't evaluate field Nope \(have Running, Pid"):
        render_template("{{.State.Nope}}", [DOC], headers)
    with pytest.raises(InvalidArgument, match=r"can't evaluate field x in type string"):
        render_template("{{.Name.x}}", [DOC])


def test_check_format() -> None:
    assert check_format("{{ json . }}") == "json"
    assert check_format("table") == "table"
    with pytest.raises(InvalidArgument, match="unknown --format 'yaml'"):
        check_format("yaml")


@pytest.mark.parametrize(
    "fmt", ["{{.ID}}", "table {{.ID}}\t{{ .Names }}", "{{json .Config}} x", "{{.}}", "plain }}"]
)
def test_check_template_accepts_what_render_template_fills(fmt: str) -> None:
    assert check_template(fmt) == fmt


@pytest.mark.parametrize(
    ("fmt", "why"),
    [
        ("{{", "unclosed action"),
        ("{{.ID", "unclosed action"),
        ("{{.ID}} {{", "unclosed action"),
        ("{{}}", "missing value for command"),
        ("{{nosuch .Names}}", 'function "nosuch" not defined'),
        ("{{range .}}{{.ID}}", "has no {{end}}"),
        ("{{.ID}}{{end}}", "unexpected {{end}}"),
        ("{{.Names | }}", "missing command"),
    ],
)
def test_a_malformed_template_is_refused_whole(fmt: str, why: str) -> None:
    with pytest.raises(InvalidArgument, match=why):
        check_template(fmt)
    with pytest.raises(InvalidArgument, match=why):
        check_format(fmt)


LISTING = Listing(
    (Column("NETWORK ID", "ID", id=True), Column("NAME", "Name")),
    [{"ID": "0123", "Name": "backend", "Extra": 1}, {"ID": "", "Name": "host"}],
)


def test_a_table_is_docker_style(capsys: pytest.CaptureFixture[str]) -> None:
    print_listing(LISTING, "table", quiet=False)
    assert capsys.readouterr().out == "NETWORK ID   NAME\n0123         backend\n             host\n"
    assert tabulate.MIN_PADDING == 2, "tabulate's global padding was changed"


def test_an_empty_table_is_its_headers(capsys: pytest.CaptureFixture[str]) -> None:
    print_listing(Listing(LISTING.columns, []), "table", quiet=False)
    assert capsys.readouterr().out == "NETWORK ID   NAME\n"


def test_quiet_prints_the_ids_rows_have(capsys: pytest.CaptureFixture[str]) -> None:
    print_listing(LISTING, "table", quiet=True)
    assert capsys.readouterr().out == "0123\n"
    print_listing(Listing(LISTING.columns, LISTING.rows, ids=["a", "b"]), "json", quiet=True)
    assert capsys.readouterr().out == "a\nb\n"


def test_json_lines_and_templates_see_every_field(capsys: pytest.CaptureFixture[str]) -> None:
    # Go's json.Marshal of docker's row: compact, keys sorted.
    print_listing(LISTING, "json", quiet=False)
    assert capsys.readouterr().out == (
        '{"Extra":1,"ID":"0123","Name":"backend"}\n{"ID":"","Name":"host"}\n'
    )
    print_listing(Listing(LISTING.columns, LISTING.rows[:1]), "{{.Name}} {{.Extra}}", quiet=False)
    assert capsys.readouterr().out == "backend 1\n"


LABELLED = Listing(
    (Column("NAME", "Name", id=True),),
    [
        {"Name": "a", "Labels": "k=<v>", "Label": label_method({"k": "<v>", "é": "ü"})},
        {"Name": "b", "Labels": "", "Label": label_method({})},
    ],
)


def test_a_rows_label_method_takes_its_key(capsys: pytest.CaptureFixture[str]) -> None:
    print_listing(LABELLED, '{{.Name}}={{.Label "k"}}|{{.Label "é"}}', quiet=False)
    assert capsys.readouterr().out == "a=<v>|ü\nb=|\n"
    # docker's header row has no methods: the column has no header.
    print_listing(LABELLED, 'table {{.Name}}\t{{.Label "k"}}\t{{.Labels}}', quiet=False)
    assert capsys.readouterr().out.splitlines()[0].split() == ["NAME", "LABELS"]
    # A method that takes arguments is not in docker's JSON; Go escapes <, > and &.
    print_listing(LABELLED, "json", quiet=False)
    assert capsys.readouterr().out.splitlines()[0] == '{"Labels":"k=\\u003cv\\u003e","Name":"a"}'
    with pytest.raises(InvalidArgument, match="error calling Label"):
        print_listing(LABELLED, "{{.Label}}", quiet=False)


def test_names_sort_as_docker_sorts_them() -> None:
    names = ["net10", "bridge", "net2", "host", "a1b10", "a1b9"]
    assert sorted(names, key=natural_key) == ["a1b9", "a1b10", "bridge", "host", "net2", "net10"]
