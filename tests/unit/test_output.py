"""Templates, as docker's --format and inspect -f take them."""

from __future__ import annotations

import pytest

from ctl.errdefs import InvalidArgument
from ctl.output import check_format, render_template

DOC = {
    "Name": "web",
    "State": {"Running": True, "Pid": 42, "Error": None},
    "Config": {"Cmd": ["sleep", "30"], "Env": {"A": "1"}},
}


def test_dotted_fields_and_json() -> None:
    fmt = "{{.Name}} {{ .State.Running }} {{.State.Pid}} {{json .Config.Cmd}}"
    out = render_template(fmt, [DOC])
    assert out == 'web true 42 ["sleep", "30"]\n'


def test_values_print_as_go_templates_print_them() -> None:
    assert render_template("{{.State.Error}}|{{.Config.Env}}", [DOC]) == '|{"A": "1"}\n'


def test_one_line_per_document_and_escapes() -> None:
    docs = [{"ID": "a", "N": 1}, {"ID": "b", "N": 2}]
    assert render_template(r"{{.ID}}\t{{.N}}", docs) == "a\t1\nb\t2\n"
    table = render_template("table {{.ID}}\t{{.N}}", docs)
    assert table.splitlines()[0].split() == ["ID", "N"]


def test_an_unknown_field_is_one_error_before_any_output() -> None:
    have = r"\(have Running, Pid, Error\)"
    with pytest.raises(InvalidArgument, match=rf"no field 'State\.Nope' {have}"):
        render_template("{{.State.Nope}}", [DOC])
    with pytest.raises(InvalidArgument, match=r"no field 'Name\.x'"):
        render_template("{{.Name.x}}", [DOC])


def test_check_format() -> None:
    assert check_format("{{ json . }}") == "json"
    assert check_format("table") == "table"
    with pytest.raises(InvalidArgument, match="unknown --format 'yaml'"):
        check_format("yaml")
