"""Go's text/template as docker's --format users write it (docs/config/formatting.md)."""

from __future__ import annotations

import pytest

from ctl.errdefs import InvalidArgument
from ctl.gotemplate import execute, parse

DOC = {
    "Name": "web",
    "Names": "web,db",
    "Status": "up",
    "Labels": {"com.example": "x", "tier": "front"},
    "Ports": [{"PrivatePort": 80, "Type": "tcp"}, {"PrivatePort": 53, "Type": "udp"}],
    "Args": ["-g", "daemon off;"],
    "Count": 0,
    "Cpus": 1.5,
    "Health": None,
}


def fill(template: str, data: object = DOC) -> str:
    return execute(parse(template), data)


@pytest.mark.parametrize(
    ("template", "out"),
    [
        ("{{upper .Name}} {{lower .Status}} {{title .Status}}", "WEB up Up"),
        ('{{join .Args ", "}}', "-g, daemon off;"),
        ('{{split .Names ","}}', "[web db]"),
        ('{{index .Labels "tier"}}', "front"),
        ("{{index .Args 1}}", "daemon off;"),
        ("{{len .Args}} {{len .Labels}} {{len .Name}}", "2 2 3"),
        ("{{json .Labels}}", '{"com.example":"x","tier":"front"}'),
        ("{{println .Name}}", "web\n"),
        ('{{printf "%s:%d" .Name 80}}', "web:80"),
        ('{{printf "%-5s|" .Name}}', "web  |"),
        ("{{.Name | upper}}", "WEB"),
        ('{{split .Names "," | len}}', "2"),
        ("{{(index .Ports 0).PrivatePort}}", "80"),
        ("{{truncate .Name 2}}{{pad .Name 1 1}}", "we web "),
        ("{{.Cpus}} {{.Count}}", "1.5 0"),
    ],
)
def test_functions(template: str, out: str) -> None:
    assert fill(template) == out


@pytest.mark.parametrize(
    ("template", "out"),
    [
        ("{{range .Args}}[{{.}}]{{end}}", "[-g][daemon off;]"),
        (
            "{{range $i, $p := .Ports}}{{$i}}={{$p.PrivatePort}}/{{$p.Type}} {{end}}",
            "0=80/tcp 1=53/udp ",
        ),
        ("{{range $k, $v := .Labels}}{{$k}}={{$v}};{{end}}", "com.example=x;tier=front;"),
        ("{{range .Health}}x{{else}}none{{end}}", "none"),
        ("{{if .Health}}h{{else if .Count}}c{{else}}neither{{end}}", "neither"),
        ('{{if eq .Status "up" "running"}}yes{{end}}', "yes"),
        ("{{if and .Name (not .Count)}}ok{{end}}", "ok"),
        ("{{if or .Count .Health}}x{{else}}y{{end}}", "y"),
        ("{{if gt (len .Args) 1}}many{{end}}", "many"),
        ("{{with .Labels}}{{.tier}}{{end}}", "front"),
        ("{{with .Health}}x{{else}}no health{{end}}", "no health"),
        ("{{$n := .Name}}{{range .Args}}{{$n}}{{end}}", "webweb"),
        ("{{range .Args}}{{$.Name}}{{end}}", "webweb"),
        ("a {{- /* a comment */ -}} b", "ab"),
        ("{{.Name -}}\n  {{.Status}}", "webup"),
        ("{{.Missing}}|{{.Labels.nope}}", "<no value>|<no value>"),
        (
            "{{.}}",
            "map[Args:[-g daemon off;] Count:0 Cpus:1.5 Health: Labels:map[com.example:x "
            "tier:front] Name:web Names:web,db Ports:[map[PrivatePort:80 Type:tcp] "
            "map[PrivatePort:53 Type:udp]] Status:up]",
        ),
    ],
)
def test_actions(template: str, out: str) -> None:
    assert fill(template) == out


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("{{.Name 1}}", "can't give argument to non-function"),
        ("{{index .Args 5}}", "index out of range"),
        ("{{len 3}}", "len of type int"),
        ("{{range .Name}}{{end}}", "range can't iterate over web"),
        ("{{upper}}", "wrong number of args for upper"),
        ("{{$x}}", "undefined variable"),
        ('{{"unterminated}}', "unterminated quoted string|unclosed action"),
    ],
)
def test_errors_are_one_line(template: str, why: str) -> None:
    with pytest.raises(InvalidArgument, match=why):
        fill(template)
