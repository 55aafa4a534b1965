"""Go's text/template, the part docker's ``--format`` users write, over JSON-like data.

Actions: ``{{pipeline}}``, ``{{if}}``/``{{else if}}``/``{{else}}``/``{{end}}``,
``{{range}}`` (with ``$i, $v :=`` and ``{{else}}``), ``{{with}}``, comments,
variables (``$``, ``$x := ...``), ``{{-``/``-}}`` trimming, parentheses, and
pipelines with ``|``. Functions: text/template's own (``and or not eq ne lt
le gt ge index len print printf println slice``) and docker's (``json join
split title lower upper pad truncate``).

A value that is a function is a method, as in Go: ``{{.Label "key"}}`` calls it
with the command's arguments, a method anywhere else is called without any, and
``json`` marshals only those without arguments (docker's ``MarshalJSON``).

A template is parsed once (``parse``) and run for each document (``execute``).
Errors are InvalidArgument in Go's words, so a bad ``--format`` is one line.
A key missing from a map is Go's ``<no value>``, as docker's inspect prints it.
"""

from __future__ import annotations

from ctl.errdefs import InvalidArgument

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Node = tuple[Any, ...]


class _NoValue:
    """The value of a missing map key: printed ``<no value>``, false in ``if``."""

    def __repr__(self) -> str:
        return "<no value>"


NO_VALUE = _NoValue()


class TemplateError(InvalidArgument):
    pass


# Lexing ---------------------------------------------------------------------


def _split(text: str) -> list[tuple[str, str]]:
    """_split cuts a template into ("text", s) and ("action", s) parts, trimming as Go does."""
    parts: list[tuple[str, str]] = []
    pos = 0
    while True:
        start = text.find("{{", pos)
        if start == -1:
            parts.append(("text", text[pos:]))
            return parts
        end = _action_end(text, start + 2)
        inner = text[start + 2 : end]
        literal = text[pos:start]
        if inner.startswith("- ") or inner == "-":
            literal = literal.rstrip(" \t\r\n")
            inner = inner[1:]
        trim_after = inner.endswith(" -")
        if trim_after:
            inner = inner[:-1]
        parts.append(("text", literal))
        parts.append(("action", inner.strip()))
        pos = end + 2
        if trim_after:
            while pos < len(text) and text[pos] in " \t\r\n":
                pos += 1


def _action_end(text: str, pos: int) -> int:
    """_action_end finds the ``}}`` that closes an action, skipping quoted strings."""
    quote = ""
    while pos < len(text):
        char = text[pos]
        if quote:
            if char == "\\" and quote == '"':
                pos += 1
            elif char == quote:
                quote = ""
        elif char in "\"`'":
            quote = char
        elif text.startswith("}}", pos):
            return pos
        pos += 1
    raise TemplateError(f"template: unclosed action in {text!r}")


_PUNCT = "()|,="


def _tokens(action: str) -> list[str]:
    """_tokens lexes one action into words, strings, numbers and punctuation."""
    tokens: list[str] = []
    pos = 0
    while pos < len(action):
        char = action[pos]
        if char.isspace():
            pos += 1
        elif char in "\"`'":
            end = pos + 1
            while end < len(action) and action[end] != char:
                end += 2 if action[end] == "\\" and char != "`" else 1
            if end >= len(action):
                raise TemplateError(f"template: unterminated quoted string in {action!r}")
            tokens.append(action[pos : end + 1])
            pos = end + 1
        elif action.startswith(":=", pos):
            tokens.append(":=")
            pos += 2
        elif char in _PUNCT:
            tokens.append(char)
            pos += 1
        else:
            end = pos
            while end < len(action) and not action[end].isspace() and action[end] not in _PUNCT:
                end += 1
            tokens.append(action[pos:end])
            pos = end
    return tokens


# Parsing --------------------------------------------------------------------


def parse(text: str) -> list[Node]:
    """parse turns a template into a tree of nodes, or raises TemplateError."""
    parts = _split(text)
    nodes, stop = _parse_list(parts, 0, text)
    if stop < len(parts):
        raise TemplateError(f"template: unexpected {{{{{parts[stop][1]}}}}} in {text!r}")
    return nodes


def _parse_list(parts: list[tuple[str, str]], index: int, source: str) -> tuple[list[Node], int]:
    """_parse_list parses nodes until an ``else``/``end`` (whose index it returns) or the end."""
    nodes: list[Node] = []
    while index < len(parts):
        kind, body = parts[index]
        if kind == "text":
            if body:
                nodes.append(("text", body))
            index += 1
            continue
        if body.startswith("/*"):
            index += 1
            continue
        word = body.split(None, 1)[0] if body else ""
        if word in ("else", "end"):
            return nodes, index
        if word in ("if", "range", "with"):
            node, index = _parse_block(word, body[len(word) :], parts, index + 1, source)
            nodes.append(node)
            continue
        nodes.append(("action", _parse_pipeline(_tokens(body), body)))
        index += 1
    return nodes, index


def _parse_block(
    word: str, head: str, parts: list[tuple[str, str]], index: int, source: str
) -> tuple[Node, int]:
    tokens = _tokens(head)
    variables: list[str] = []
    if word == "range" and ":=" in tokens:
        split = tokens.index(":=")
        variables = [t for t in tokens[:split] if t != ","]
        tokens = tokens[split + 1 :]
    pipeline = _parse_pipeline(tokens, head)
    body, index = _parse_list(parts, index, source)
    if index >= len(parts):
        raise TemplateError(f"template: unexpected EOF: {{{{{word}}}}} has no {{{{end}}}}")
    otherwise: list[Node] = []
    closer = parts[index][1]
    if closer.startswith("else"):
        rest = closer[4:].strip()
        if rest.split(None, 1)[:1] in (["if"], ["with"]):
            # {{else if X}} is {{else}}{{if X}}...{{end}} sharing the outer {{end}}.
            inner_word = rest.split(None, 1)[0]
            head = rest[len(inner_word) :]
            node, index = _parse_block(inner_word, head, parts, index + 1, source)
            return (word, pipeline, variables, body, [node]), index
        otherwise, index = _parse_list(parts, index + 1, source)
        if index >= len(parts) or parts[index][1] != "end":
            raise TemplateError(f"template: unexpected EOF: {{{{{word}}}}} has no {{{{end}}}}")
    return (word, pipeline, variables, body, otherwise), index + 1


def _parse_pipeline(tokens: list[str], source: str) -> Node:
    """A pipeline: an optional ``$x :=``, then commands separated by ``|``."""
    declare = None
    if len(tokens) >= 2 and tokens[0].startswith("$") and tokens[1] in (":=", "="):
        declare, tokens = tokens[0], tokens[2:]
    if not tokens:
        raise TemplateError(f"template: missing value for command in {{{{{source}}}}}")
    commands: list[list[Node]] = [[]]
    depth = 0
    index = 0
    while index < len(tokens):
        token = tokens[index]
        if token == "|" and depth == 0:
            commands.append([])
            index += 1
            continue
        if token == "(":
            end = _matching(tokens, index, source)
            inner = _parse_pipeline(tokens[index + 1 : end], source)
            # A field chain may follow the parentheses: (index .A 0).Name
            fields: list[str] = []
            if end + 1 < len(tokens) and tokens[end + 1].startswith("."):
                fields = [f for f in tokens[end + 1].split(".") if f]
                end += 1
            commands[-1].append(("sub", inner, fields))
            index = end + 1
            continue
        if token == ")":
            raise TemplateError(f"template: unexpected ')' in {{{{{source}}}}}")
        commands[-1].append(_operand(token, source))
        index += 1
    if any(not command for command in commands):
        raise TemplateError(f"template: missing command in {{{{{source}}}}}")
    return ("pipeline", declare, commands)


def _matching(tokens: list[str], index: int, source: str) -> int:
    depth = 0
    for at in range(index, len(tokens)):
        if tokens[at] == "(":
            depth += 1
        elif tokens[at] == ")":
            depth -= 1
            if depth == 0:
                return at
    raise TemplateError(f"template: unclosed '(' in {{{{{source}}}}}")


def _operand(token: str, source: str) -> Node:
    if token.startswith("."):
        return ("field", None, [f for f in token.split(".") if f])
    if token.startswith("$"):
        name, _, rest = token.partition(".")
        return ("field", name, [f for f in rest.split(".") if f])
    if token[0] in "\"`'":
        return ("const", _unquote(token, source))
    if token in ("true", "false"):
        return ("const", token == "true")
    if token == "nil":
        return ("const", None)
    if token[0].isdigit() or (token[0] in "+-" and token[1:2].isdigit()):
        try:
            return ("const", int(token, 0))
        except ValueError:
            try:
                return ("const", float(token))
            except ValueError:
                raise TemplateError(f"template: bad number {token!r}") from None
    if token in FUNCTIONS:
        return ("func", token)
    raise TemplateError(f'template: function "{token}" not defined')


def _unquote(token: str, source: str) -> str | int:
    if token[0] == "`":
        return token[1:-1]
    import ast

    try:
        value = ast.literal_eval(token)
    except (ValueError, SyntaxError):
        raise TemplateError(f"template: bad string {token} in {{{{{source}}}}}") from None
    if token[0] == "'":
        return ord(value) if isinstance(value, str) and len(value) == 1 else 0
    return str(value)


# Executing ------------------------------------------------------------------


def execute(nodes: list[Node], data: Any, *, strict: bool = False) -> str:
    """execute runs parsed nodes with ``data`` as ``.`` and ``$``.

    ``strict`` makes a key missing from a map an error, as a missing field of
    the Go structs behind docker's listings is, instead of ``<no value>``.
    """
    out: list[str] = []
    _run(nodes, data, {"$": data, _STRICT: strict}, out)
    return "".join(out)


def _run(nodes: list[Node], dot: Any, scope: dict[str, Any], out: list[str]) -> None:
    for node in nodes:
        kind = node[0]
        if kind == "text":
            out.append(node[1])
        elif kind == "action":
            value = _pipeline(node[1], dot, scope)
            if node[1][1] is None:
                out.append(text(value))
        elif kind == "if":
            _, pipeline, _, body, otherwise = node
            branch = body if truth(_pipeline(pipeline, dot, dict(scope))) else otherwise
            _run(branch, dot, dict(scope), out)
        elif kind == "with":
            _, pipeline, _, body, otherwise = node
            value = _pipeline(pipeline, dot, dict(scope))
            if truth(value):
                _run(body, value, dict(scope), out)
            else:
                _run(otherwise, dot, dict(scope), out)
        else:
            _range(node, dot, scope, out)


def _range(node: Node, dot: Any, scope: dict[str, Any], out: list[str]) -> None:
    _, pipeline, variables, body, otherwise = node
    value = _pipeline(pipeline, dot, dict(scope))
    if isinstance(value, dict):
        items = [(key, value[key]) for key in sorted(value)]
    elif isinstance(value, (list, tuple)):
        items = list(enumerate(value))
    elif isinstance(value, int) and not isinstance(value, bool):
        items = [(i, i) for i in range(value)]
    elif value is None or value is NO_VALUE:
        items = []
    else:
        raise TemplateError(f"template: range can't iterate over {text(value)}")
    if not items:
        _run(otherwise, dot, dict(scope), out)
    for key, item in items:
        inner = dict(scope)
        if len(variables) == 1:
            inner[variables[0]] = item
        elif len(variables) == 2:
            inner[variables[0]], inner[variables[1]] = key, item
        _run(body, item, inner, out)


def _pipeline(pipeline: Node, dot: Any, scope: dict[str, Any]) -> Any:
    _, declare, commands = pipeline
    value: Any = None
    for number, command in enumerate(commands):
        final = (value,) if number else ()
        value = _command(command, dot, scope, final)
    if declare is not None:
        scope[declare] = value
    return value


def _command(command: list[Node], dot: Any, scope: dict[str, Any], final: tuple[Any, ...]) -> Any:
    head = command[0]
    args = [*(_operand_value(arg, dot, scope) for arg in command[1:]), *final]
    if head[0] == "func":
        return _call(head[1], args)
    value = _target(head, dot, scope)
    if callable(value):
        return _call_method(_method_name(head), value, args)
    if args:
        raise TemplateError(f"template: can't give argument to non-function {_describe(head)}")
    return value


# A scope key no template variable can be: variables start with "$".
_STRICT = " strict"


def _operand_value(node: Node, dot: Any, scope: dict[str, Any]) -> Any:
    """_operand_value is an argument's value: a method there is called without arguments."""
    value = _target(node, dot, scope)
    return _call_method(_method_name(node), value, []) if callable(value) else value


def _target(node: Node, dot: Any, scope: dict[str, Any]) -> Any:
    """_target is what a node names; a method at the end of a field chain is not called yet,
    as a command's head takes the command's arguments (Go's ``{{.Label "key"}}``)."""
    kind = node[0]
    if kind == "const":
        return node[1]
    if kind == "func":
        return _call(node[1], [])
    if kind == "sub":
        return _fields(_pipeline(node[1], dot, dict(scope)), node[2], scope[_STRICT])
    _, variable, fields = node
    if variable is None:
        base = dot
    elif variable in scope:
        base = scope[variable]
    else:
        raise TemplateError(f"template: undefined variable {variable!r}")
    return _fields(base, fields, scope[_STRICT])


def _fields(value: Any, fields: list[str], strict: bool = False) -> Any:
    for number, name in enumerate(fields):
        if number and callable(value):
            value = _call_method(fields[number - 1], value, [])
        if isinstance(value, dict):
            if strict and name not in value:
                have = ", ".join(value)
                raise TemplateError(f"template: can't evaluate field {name} (have {have})")
            value = value.get(name, NO_VALUE)
        elif value is None or value is NO_VALUE:
            return NO_VALUE
        else:
            raise TemplateError(f"template: can't evaluate field {name} in type {_type(value)}")
    return value


def _describe(node: Node) -> str:
    if node[0] == "field":
        return (node[1] or "") + "".join("." + f for f in node[2]) or "."
    return str(node[1])


def _method_name(node: Node) -> str:
    return _describe(node).rpartition(".")[2]


def _type(value: Any) -> str:
    """_type is the Go type of a JSON-decoded value, as fmt's ``%T`` prints it."""
    if value is None or value is NO_VALUE:
        return "<nil>"
    return _GO_TYPES.get(type(value), type(value).__name__)


_GO_TYPES = {
    str: "string",
    bool: "bool",
    int: "int",
    float: "float64",
    list: "[]interface {}",
    tuple: "[]interface {}",
    dict: "map[string]interface {}",
}


def truth(value: Any) -> bool:
    """truth is Go's: false, 0, nil, and empty strings, lists and maps are false."""
    if isinstance(value, (list, dict, tuple, str)):
        return bool(value)
    return not (value is None or value is NO_VALUE or value is False or value == 0)


def text(value: Any) -> str:
    """text prints a value as Go's fmt does for JSON-decoded data."""
    if value is NO_VALUE:
        return "<no value>"
    if value is None:
        # ctl's documents hold None where docker's typed structs hold an empty
        # string or a nil pointer; docker prints the former, the common case.
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _float(value)
    if isinstance(value, dict):
        return "map[" + " ".join(f"{k}:{text(value[k])}" for k in sorted(value)) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(text(item) for item in value) + "]"
    return str(value)


def _float(value: float) -> str:
    """_float is Go's %v of a float64: shortest digits, exponent below 1e-4 or from 1e+06."""
    import math

    if math.isinf(value) or math.isnan(value):
        return {"inf": "+Inf", "-inf": "-Inf"}.get(str(value), "NaN")
    if value == 0:
        return "0"
    from decimal import Decimal

    shortest = repr(value)
    parts = Decimal(shortest).as_tuple()
    digits = "".join(map(str, parts.digits)).rstrip("0") or "0"
    exp = Decimal(shortest).adjusted()
    if -4 <= exp < 6:
        return shortest[:-2] if shortest.endswith(".0") else shortest
    head = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{'-' if value < 0 else ''}{head}e{'+' if exp >= 0 else '-'}{abs(exp):02d}"


# Functions ------------------------------------------------------------------


def _call(name: str, args: list[Any]) -> Any:
    function, arity = FUNCTIONS[name]
    if arity >= 0 and len(args) != arity:
        raise TemplateError(
            f"template: wrong number of args for {name}: want {arity} got {len(args)}"
        )
    return _call_method(name, function, args)


def _call_method(name: str, method: Callable[..., Any], args: list[Any]) -> Any:
    """_call_method calls a function, or a field whose value is a function as Go calls a
    method; Python's errors in it are the template's."""
    try:
        return method(*args)
    except TemplateError:
        raise
    except (TypeError, ValueError, KeyError, IndexError) as err:
        raise TemplateError(f"template: error calling {name}: {err}") from None


def marshal(value: Any) -> str:
    """marshal is Go's json.Marshal: compact, UTF-8 kept, ``<>&`` escaped.

    A map's methods (its callable values) are marshalled as docker's formatter
    marshals its contexts': one without arguments by its value, one that takes
    some (``Label``) not at all.
    """
    import json

    rendered = json.dumps(
        _marshalled(None if value is NO_VALUE else value), separators=(",", ":"), ensure_ascii=False
    )
    return rendered.translate(_JSON_HTML_ESCAPES)


def _marshalled(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: _marshalled(item() if callable(item) else item)
            for key, item in value.items()
            if not callable(item) or _niladic(item)
        }
    if isinstance(value, (list, tuple)):
        return [_marshalled(item) for item in value]
    return value


def _niladic(function: Callable[..., Any]) -> bool:
    code = getattr(function, "__code__", None)
    return code is not None and code.co_argcount == 0


# Go's json.Marshal escapes these inside strings (outside them no JSON text has them).
_JSON_HTML_ESCAPES = {ord(c): f"\\u{ord(c):04x}" for c in "<>&\u2028\u2029"}


def _index(value: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(value, dict):
            value = value.get(key, NO_VALUE)
        elif isinstance(value, (list, tuple, str)):
            if not isinstance(key, int) or not 0 <= key < len(value):
                raise TemplateError(f"template: error calling index: index out of range: {key}")
            value = value[key]
        else:
            raise TemplateError(f"template: can't index item of type {_type(value)}")
    return value


def _len(value: Any) -> int:
    if value is NO_VALUE or value is None:
        raise TemplateError("template: error calling len: len of nil pointer")
    if not isinstance(value, (str, list, tuple, dict)):
        raise TemplateError(f"template: error calling len: len of type {_type(value)}")
    return len(value)


def _sprint(*args: Any) -> str:
    # Go's Sprint puts spaces only between operands when neither is a string.
    out = ""
    for number, arg in enumerate(args):
        if number and not isinstance(arg, str) and not isinstance(args[number - 1], str):
            out += " "
        out += text(arg)
    return out


def _printf(fmt: str, *args: Any) -> str:
    """_printf is Go's fmt.Sprintf for the verbs templates use, wrong types shown as Go's."""
    import re

    used = 0

    def verb(match: re.Match[str]) -> str:
        nonlocal used
        if match[0] == "%%":
            return "%"
        if used == len(args):
            return f"%!{match[2]}(MISSING)"
        used += 1
        return _verb(match[1], match[2], args[used - 1])

    out = re.sub(r"%%|%([-+# 0]*\d*(?:\.\d+)?)([vTtsqdcxXobeEfFgG])", verb, fmt)
    if used < len(args):
        out += "%!(EXTRA " + ", ".join(f"{_type(a)}={text(a)}" for a in args[used:]) + ")"
    return out


def _verb(flags: str, kind: str, value: Any) -> str:
    """_verb formats one operand; lists and maps element by element, as Go's fmt does."""
    if isinstance(value, (list, tuple)) and kind not in "vT":
        return "[" + " ".join(_verb(flags, kind, item) for item in value) + "]"
    if isinstance(value, dict) and kind not in "vT":
        pairs = (f"{_verb(flags, kind, k)}:{_verb(flags, kind, value[k])}" for k in sorted(value))
        return "map[" + " ".join(pairs) + "]"
    number = isinstance(value, int) and not isinstance(value, bool)
    if (kind in "dxXo" and number) or (kind in "eEfF" and isinstance(value, float)):
        return str(("%" + flags + kind) % value)
    if kind in "gG" and isinstance(value, float):
        # Without a precision Go prints the shortest digits that read back the same.
        return ("%" + flags + kind) % value if "." in flags else ("%" + flags + "s") % _float(value)
    rendered = _verb_text(kind, value, number)
    if rendered is None:
        nil = value is None or value is NO_VALUE
        return f"%!{kind}(<nil>)" if nil else f"%!{kind}({_type(value)}={text(value)})"
    return ("%" + flags + "s") % rendered


def _verb_text(kind: str, value: Any, number: bool) -> str | None:
    """_verb_text is an operand as the verb prints it before padding; None for a wrong type."""
    if kind == "T":
        return _type(value)
    if kind == "v":
        return "<nil>" if value is NO_VALUE else text(value)
    if value is None and kind in "sq":
        # None is ctl's stand-in for docker's empty strings (see ``text``).
        return '""' if kind == "q" else ""
    if isinstance(value, str):
        hexed = value.encode().hex()
        by_verb = {"s": value, "q": _quote(value, '"'), "x": hexed, "X": hexed.upper()}
        return by_verb.get(kind)
    if number and kind in "qcb":
        return {"q": _quote(chr(value), "'"), "c": chr(value), "b": format(value, "b")}[kind]
    if kind == "t" and isinstance(value, bool):
        return text(value)
    return None


# Go's escapes in a quoted string (strconv.Quote).
_QUOTE_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def _quote(value: str, mark: str) -> str:
    """_quote is Go's strconv.Quote (``mark`` ``"``) or QuoteRune (``'``)."""
    out = [mark]
    for char in value:
        code = ord(char)
        if char in (mark, "\\"):
            out.append("\\" + char)
        elif char in _QUOTE_ESCAPES:
            out.append(_QUOTE_ESCAPES[char])
        elif char.isprintable():
            out.append(char)
        elif code < 0x80:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    out.append(mark)
    return "".join(out)


def _compare(op: str) -> Callable[..., bool]:
    def compare(left: Any, *rights: Any) -> bool:
        if op == "eq":
            return any(left == right for right in rights)
        (right,) = rights
        if op == "ne":
            return bool(left != right)
        if type(left) is not type(right) and not (
            isinstance(left, (int, float)) and isinstance(right, (int, float))
        ):
            raise TemplateError(f"template: error calling {op}: incompatible types for comparison")
        import operator

        return bool(getattr(operator, op)(left, right))

    return compare


def _and(*args: Any) -> Any:
    for arg in args:
        if not truth(arg):
            return arg
    return args[-1]


def _or(*args: Any) -> Any:
    for arg in args:
        if truth(arg):
            return arg
    return args[-1]


def _slice(value: Any, *bounds: int) -> Any:
    return value[slice(*bounds)] if len(bounds) <= 2 else value[bounds[0] : bounds[1]]


def _string(value: Any) -> str:
    """_string is a string argument of docker's functions; Go refuses other types."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""  # ctl's stand-in for docker's empty strings (see ``text``)
    if value is NO_VALUE:
        raise TemplateError("template: invalid value; expected string")
    raise TemplateError(f"template: wrong type for value; expected string; got {_type(value)}")


def _int(value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise TemplateError(f"template: wrong type for value; expected int; got {_type(value)}")


def _truncate(value: Any, length: Any) -> str:
    return _string(value)[: _int(length)]


def _pad(value: Any, before: Any, after: Any) -> str:
    return " " * _int(before) + _string(value) + " " * _int(after)


def _title(value: Any) -> str:
    # Go's strings.Title upper-cases the first letter of each word, nothing else.
    import re

    return re.sub(r"(^|\s)(\S)", lambda m: m[1] + m[2].upper(), _string(value))


def _split_string(value: Any, separator: Any) -> list[str]:
    # Go's strings.Split cuts at every character when the separator is empty.
    value, separator = _string(value), _string(separator)
    return value.split(separator) if separator else list(value)


def _join(items: Any, separator: Any) -> str:
    if not isinstance(items, (list, tuple)):
        raise TemplateError(
            f"template: wrong type for value; expected []string; got {_type(items)}"
        )
    return _string(separator).join(text(item) for item in items)


FUNCTIONS: dict[str, tuple[Callable[..., Any], int]] = {
    "and": (_and, -1),
    "or": (_or, -1),
    "not": (lambda value: not truth(value), 1),
    "eq": (_compare("eq"), -1),
    "ne": (_compare("ne"), 2),
    "lt": (_compare("lt"), 2),
    "le": (_compare("le"), 2),
    "gt": (_compare("gt"), 2),
    "ge": (_compare("ge"), 2),
    "index": (_index, -1),
    "len": (_len, 1),
    "slice": (_slice, -1),
    "print": (_sprint, -1),
    "printf": (_printf, -1),
    "println": (lambda *args: " ".join(text(arg) for arg in args) + "\n", -1),
    "json": (marshal, 1),
    "join": (_join, 2),
    "split": (_split_string, 2),
    "title": (_title, 1),
    "lower": (lambda value: _string(value).lower(), 1),
    "upper": (lambda value: _string(value).upper(), 1),
    "pad": (_pad, 3),
    "truncate": (_truncate, 2),
}
