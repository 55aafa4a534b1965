"""Go's text/template as docker's --format users write it (docs/config/formatting.md)."""

from __future__ import annotations

import contextlib

import pytest

from ctl.errdefs import InvalidArgument
from ctl.gotemplate import FUNCTIONS, execute, parse

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


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("{{upper 5}}", "expected string; got int"),
        ("{{lower .Count}}", "expected string; got int"),
        ("{{title .Labels}}", "expected string; got map"),
        ("{{.Cpus | upper}}", "expected string; got float64"),
        ('{{split .Args ","}}', r"expected string; got \[\]interface"),
        ('{{join .Name ","}}', r"expected \[\]string; got string"),
        ('{{pad .Name "1" 1}}', "expected int; got string"),
        ("{{truncate true 1}}", "expected string; got bool"),
        ("{{upper .Missing}}", "invalid value; expected string"),
    ],
)
def test_a_wrong_type_is_a_template_error(template: str, why: str) -> None:
    with pytest.raises(InvalidArgument, match=f"^template: .*{why}"):
        fill(template)


OPERANDS = ("5", "1.5", "true", "nil", '"x"', ".Labels", ".Args", ".Missing")


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_no_function_fails_but_as_a_template_error(name: str) -> None:
    """Whatever a function is given, it answers or says why in one line: no internal error."""
    arities = [FUNCTIONS[name][1]] if FUNCTIONS[name][1] >= 0 else [1, 2, 3]
    for arity in arities:
        for first in OPERANDS:
            for other in OPERANDS:
                args = " ".join([first, *[other] * (arity - 1)])
                with contextlib.suppress(InvalidArgument):
                    fill(f"{{{{{name} {args}}}}}")


@pytest.mark.parametrize(
    ("template", "out"),
    [
        ('{{printf "%t|%t" true .Count}}', "true|%!t(int=0)"),
        (
            '{{printf "%v|%v|%v|%v" 1.5 .Args .Labels 1e6}}',
            "1.5|[-g daemon off;]|map[com.example:x tier:front]|1e+06",
        ),
        ('{{printf "%q|%q|%q" "a\\"b\\n" 65 .Args}}', '"a\\"b\\n"|\'A\'|["-g" "daemon off;"]'),
        ('{{printf "%q" "é\\a"}}', '"é\\a"'),
        ('{{printf "%d|%5d|%-3d|%x|%X|%o" 42 7 1 255 255 8}}', "42|    7|1  |ff|FF|10"),
        ('{{printf "%d|%d" "x" 1.5}}', "%!d(string=x)|%!d(float64=1.5)"),
        ('{{printf "%s|%s|%s" .Name 5 .Args}}', "web|%!s(int=5)|[-g daemon off;]"),
        ('{{printf "%s|%v|%d" .Missing .Missing .Missing}}', "%!s(<nil>)|<nil>|%!d(<nil>)"),
        ('{{printf "%s %s" "a"}}', "a %!s(MISSING)"),
        ('{{printf "%s" "a" 1 "b"}}', "a%!(EXTRA int=1, string=b)"),
        (
            '{{printf "%5t|%-6s|%6.2f|%g|%.3g" true "ab" 2.5 1e21 1234.5}}',
            " true|ab    |  2.50|1e+21|1.23e+03",
        ),
        (
            '{{printf "%T %T %T %T" .Cpus .Labels .Args .Name}}',
            "float64 map[string]interface {} []interface {} string",
        ),
        ('{{printf "%c%x%%" 65 "hi"}}', "A6869%"),
    ],
)
def test_printf_is_gos(template: str, out: str) -> None:
    assert fill(template) == out


METHODS = {
    "Name": "web",
    "Label": lambda key: {"tier": "front"}.get(key, ""),
    "Lazy": lambda: {"Inner": "deep"},
}


@pytest.mark.parametrize(
    ("template", "out"),
    [
        ('{{.Label "tier"}}|{{.Label "nope"}}', "front|"),
        ('{{"tier" | .Label}}', "front"),
        ('{{upper (.Label "tier")}}', "FRONT"),
        ('{{if .Label "tier"}}yes{{end}}', "yes"),
        ("{{.Lazy.Inner}} {{len .Lazy}}", "deep 1"),
        # A method takes arguments only at the head of a command; json leaves it out.
        ("{{json .}}", '{"Name":"web","Lazy":{"Inner":"deep"}}'),
    ],
)
def test_a_callable_field_is_a_method(template: str, out: str) -> None:
    assert fill(template, METHODS) == out


def test_a_method_called_wrongly_is_a_template_error() -> None:
    with pytest.raises(InvalidArgument, match="error calling Label"):
        fill("{{.Label}}", METHODS)
    with pytest.raises(InvalidArgument, match="error calling Label"):
        fill('{{.Label "a" "b"}}', METHODS)
    with pytest.raises(InvalidArgument, match=r"can't give argument to non-function \.Name"):
        fill('{{.Name "a"}}', METHODS)


def test_json_is_gos_json_marshal() -> None:
    doc = {"html": "<a&b>", "text": "é\u2028", "n": [1, 2.5, None, True]}
    assert fill("{{json .}}", doc) == (
        '{"html":"\\u003ca\\u0026b\\u003e","text":"é\\u2028","n":[1,2.5,null,true]}'
    )
