"""What every command module shares: the context, the declarations and the parser class."""

from __future__ import annotations

import argparse
import os
import re
import sys
from itertools import islice

from ctl.errdefs import EXIT_CTL_FAILURE, CtlError, InvalidArgument

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

    from ctl.client import Client
    from ctl.output import Listing
    from ctl.paths import Paths

    # A handler returns its exit code, or a listing for ctl.output to print.
    Handler = Callable[[argparse.Namespace, "Context"], int | Listing]
    Arguments = Callable[[argparse.ArgumentParser], None]
    Completer = Callable[..., list[str]]
    SubParsers = argparse._SubParsersAction["Parser"]


# argparse asks gettext for a translation of each of its own messages, and gettext imports
# locale to find one: a millisecond of every call, for a catalog ("messages") that no Debian
# package installs. ctl speaks English only, as docker does, so argparse does too.
setattr(argparse, "_", str)  # noqa: B010
setattr(argparse, "ngettext", lambda singular, plural, n: singular if n == 1 else plural)  # noqa: B010


class _Formatter(argparse.HelpFormatter):
    """_Formatter sizes help to the terminal without ``shutil``.

    argparse builds a formatter for every ``add_argument`` and would import
    shutil (and with it bz2 and lzma) to ask for the terminal width: a few
    milliseconds of every call, for help that is rarely printed.
    """

    def __init__(
        self,
        prog: str,
        indent_increment: int = 2,
        max_help_position: int = 24,
        width: int | None = None,
    ) -> None:
        if width is None:
            try:
                columns = os.get_terminal_size(sys.__stdout__.fileno() if sys.__stdout__ else 1)
                width = columns.columns - 2
            except (OSError, ValueError):
                width = int(os.environ.get("COLUMNS", "80") or 80) - 2
        super().__init__(prog, indent_increment, max_help_position, width)


# The flags that take no value, which docker (Go's flag package) also accepts as
# ``--flag=true`` or ``--flag=false``.
_VALUELESS = (argparse._StoreTrueAction, argparse._StoreFalseAction)


def _go_bool(flag: str, value: str) -> bool:
    """_go_bool reads a flag's value as Go's strconv.ParseBool does."""
    if value in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if value in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise InvalidArgument(f"invalid argument {value!r} for {flag!r}: want true or false")


class Parser(argparse.ArgumentParser):
    """Parser reports bad usage as an InvalidArgument (one line, exit 125).

    Flags match exactly, never by prefix: with argparse's abbreviations a
    flag ctl lacks (``--pid``) would be taken for one it has (``--pids-limit``).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        # A lazily declared command's arguments ("module:function", see Command): added
        # when the parser is first used, so that building it imports nothing.
        self.deferred: str | None = None

    def add_deferred_arguments(self) -> None:
        if self.deferred is not None:
            deferred, self.deferred = self.deferred, None
            resolve(deferred)(self)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        self.add_deferred_arguments()
        if args is not None:
            args = self._explicit_booleans(list(args))
        return super().parse_known_args(args, namespace)

    def _explicit_booleans(self, args: list[str]) -> list[str]:
        """_explicit_booleans rewrites docker's ``--rm=false`` and ``-d=true`` for the flags that
        take no value (argparse refuses any value for them): the bare flag, or its negation.

        Only options before the first positional argument are read: what follows a
        command's IMAGE is the container's command line. An option's value is passed over,
        so in ``-e --x=false`` it stays the value of ``-e``.
        """
        out: list[str] = []
        rest = iter(args)
        for token in rest:
            if token in ("--", "-") or not token.startswith("-"):
                return [*out, token, *rest]
            name, equals, value = token.partition("=")
            action = self._option_string_actions.get(name)
            if equals and isinstance(action, _VALUELESS):
                out.append(
                    name if _go_bool(name, value) == action.const else self._negation(action)
                )
                continue
            out.append(token)
            if self._wants_next(token, action, bool(equals)):
                out.extend(islice(rest, 1))
        return out

    def _negation(self, action: argparse.Action) -> str:
        """_negation is a hidden option that stores the opposite of ``action``'s flag: what
        ``--rm=false`` becomes, so that the last of ``--rm ... --rm=false`` wins, as in docker."""
        option = f"{action.option_strings[-1]}=false"
        if option not in self._option_string_actions:
            self.add_argument(
                option,
                dest=action.dest,
                action="store_const",
                const=not action.const,
                default=action.default,
                help=argparse.SUPPRESS,
            )
        return option

    def _wants_next(self, token: str, action: argparse.Action | None, has_value: bool) -> bool:
        """_wants_next says whether ``token`` takes the next word as its value: ``-e``, ``-it``
        ending in a flag that takes one (``-ie``), but not ``-p80:80`` or ``--env=X``."""
        if action is not None:
            return not has_value and action.nargs != 0
        if token.startswith("--"):
            return False  # unknown: argparse reports it
        for at, letter in enumerate(token[1:], start=2):
            short = self._option_string_actions.get(f"-{letter}")
            if short is None:
                return False
            if short.nargs != 0:
                return at == len(token)  # its value is the rest of the word, or the next
        return False

    def format_help(self) -> str:
        self.add_deferred_arguments()
        return super().format_help()

    def format_usage(self) -> str:
        self.add_deferred_arguments()
        return super().format_usage()

    def error(self, message: str) -> NoReturn:
        choice = re.match(r"argument COMMAND: invalid choice: '([^']*)'", message)
        if choice:
            message = f"{choice.group(1)!r} is not a {self.prog} command"
        command = self.prog.removeprefix("ctl").strip()
        where = f"{command}: " if command else ""
        raise InvalidArgument(f"{where}{message}", hint=f"see '{self.prog} --help'")


class Context:
    """Context is the resolved global options and the client built from them.

    A plain class rather than a record (a NamedTuple): ``typing`` costs more
    start-up time than this whole CLI layer.
    """

    __slots__ = ("_client", "debug", "namespace", "root", "snapshotter")

    def __init__(self, root: str, namespace: str, snapshotter: str | None, debug: bool) -> None:
        self.root = root
        self.namespace = namespace
        self.snapshotter = snapshotter
        self.debug = debug
        self._client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            from ctl.client import Client

            self._client = Client(
                root=self.root,
                namespace=self.namespace,
                snapshotter=self.snapshotter,
                debug=self.debug,
            )
        return self._client


class Command:
    """Command declares a leaf command: its names, its one-line help, its arguments, its handler.

    Declaring costs nothing: the parser is built by ``add_to``, and only for the
    commands a call needs. A command that another module implements (``container
    cp`` is transfer's ``cp``) names its handler and arguments as strings,
    ``"module:function"`` within ctl.commands: that module is imported only when
    the command is parsed, so a group never imports the modules of its siblings.
    """

    __slots__ = ("aliases", "arguments", "handler", "help", "name", "short_help")

    def __init__(
        self,
        name: str,
        handler: Handler | str,
        help: str,
        arguments: Arguments | str | None = None,
        aliases: tuple[str, ...] = (),
        short_help: bool = True,
    ) -> None:
        self.name = name
        self.handler = handler
        self.help = help
        self.arguments = arguments
        self.aliases = aliases
        # False: -h is the command's own flag (run -h is --hostname), help is --help only.
        self.short_help = short_help

    def add_to(self, subparsers: SubParsers) -> None:
        parser = subparsers.add_parser(
            self.name,
            help=self.help,
            description=self.help,
            aliases=list(self.aliases),
            add_help=self.short_help,
        )
        if not self.short_help:
            parser.add_argument("--help", action="help", help="show this help message and exit")
        handler = self.handler
        parser.set_defaults(
            func=handler if not isinstance(handler, str) else _DeferredHandler(handler),
            command_name=parser.prog.removeprefix("ctl "),
        )
        if isinstance(self.arguments, str) and "_ARGCOMPLETE" not in os.environ:
            parser.deferred = self.arguments
        elif self.arguments is not None:
            # argcomplete instruments every action before parsing: none may come later.
            resolve(self.arguments)(parser)


class _DeferredHandler:
    """_DeferredHandler runs the handler a ``"module:function"`` string names, imported then."""

    __slots__ = ("target",)

    def __init__(self, target: str) -> None:
        self.target = target

    def __call__(self, args: argparse.Namespace, ctx: Context) -> int | Listing:
        handler: Handler = resolve(self.target)
        return handler(args, ctx)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _DeferredHandler) and other.target == self.target

    def __hash__(self) -> int:
        return hash(self.target)


def resolve(target: Any) -> Any:
    """resolve returns ``target``, or the function a ``"module:function"`` string names."""
    if not isinstance(target, str):
        return target
    module, _, function = target.partition(":")
    name = f"ctl.commands.{module}"
    __import__(name)
    return getattr(sys.modules[name], function)


class Group:
    """Group declares a command with subcommands (``image ls``, ``network rm``)."""

    __slots__ = ("aliases", "commands", "help", "name")

    def __init__(
        self, name: str, help: str, commands: tuple[Command, ...], aliases: tuple[str, ...] = ()
    ) -> None:
        self.name = name
        self.help = help
        self.commands = commands
        self.aliases = aliases

    def add_to(self, subparsers: SubParsers) -> None:
        parser = subparsers.add_parser(
            self.name, help=self.help, description=self.help, aliases=list(self.aliases)
        )
        parser.set_defaults(func=None, group_parser=parser)
        children = parser.add_subparsers(title="commands", metavar="COMMAND")
        for command in self.commands:
            command.add_to(children)


def add_format(parser: argparse.ArgumentParser, *, quiet: bool = True, short: bool = False) -> None:
    """add_format adds the listing flags ``--format table|json`` (``short``: also ``-f``)
    and ``-q``."""
    from ctl.output import check_format

    # Checked while parsing, so that a bad --format fails before any work is done.
    parser.add_argument(
        *(("-f",) if short else ()),
        "--format",
        type=check_format,
        default="table",
        help="output format: table, or json (one object a line)",
    )
    if quiet:
        parser.add_argument("-q", "--quiet", action="store_true", help="print only IDs")
    else:
        parser.set_defaults(quiet=False)


def add_format_only(parser: argparse.ArgumentParser) -> None:
    """add_format_only adds ``--format`` to a listing without IDs for ``-q`` to print."""
    add_format(parser, quiet=False)


def add_inspect_format(parser: argparse.ArgumentParser) -> None:
    """add_inspect_format adds inspect's ``-f/--format TEMPLATE`` (default: a JSON array)."""
    from ctl.output import check_template

    parser.add_argument(
        "-f",
        "--format",
        type=check_template,
        default=None,
        help="a template for each object, e.g. '{{.State.Status}}' or '{{json .Config}}'",
    )


def add_platform(parser: argparse.ArgumentParser, help: str) -> None:
    """add_platform adds ``--platform os/arch[/variant]``, refused while parsing if unknown."""
    parser.add_argument("--platform", type=_check_platform, metavar="PLATFORM", help=help)


def _check_platform(text: str) -> str:
    from ctl.reference import parse_platform

    parse_platform(text)
    return text


def bool_flag(parser: argparse.ArgumentParser, *flags: str, help: str) -> None:
    """bool_flag adds a docker boolean flag that defaults to true: ``-p``, ``--pause=false``
    (Parser reads the ``=false``; the flag alone never takes the next word for a value)."""
    parser.add_argument(
        *flags,
        action="store_true",
        default=True,
        help=f"{help} (default true; {flags[-1]}=false turns it off)",
    )


class _Refused(argparse.Action):
    """_Refused fails as soon as its flag is parsed: one line naming it, and why."""

    def __init__(self, *args: Any, why: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.why = why

    def __call__(self, *args: Any) -> None:
        raise InvalidArgument(f"{self.option_strings[-1]} is not supported: {self.why}")


def refuse(
    parser: argparse.ArgumentParser, *flags: str, why: str, takes_value: bool = True
) -> None:
    """refuse declares a docker flag that ctl refuses by name (exit 125), never silently."""
    parser.add_argument(
        *flags, action=_Refused, why=why, nargs=None if takes_value else 0, help=argparse.SUPPRESS
    )


def parse_flag(flag: str, parse: Callable[[Any], Any], value: Any) -> Any:
    """parse_flag parses one flag's value, naming the flag in the error."""
    try:
        return parse(value)
    except InvalidArgument as err:
        raise InvalidArgument(f"{flag}: {err}", hint=err.hint) from None


def each(refs: list[str], action: Any, *, echo: bool = True) -> int:
    """each applies ``action`` to every name and, if ``echo``, prints it.

    Errors are reported and the rest go on; one name alone raises its error.
    """
    failed = False
    for ref in refs:
        try:
            action(ref)
            if echo:
                print(ref)
        except CtlError as err:
            if len(refs) == 1:
                raise
            hint = f" ({err.hint})" if err.hint else ""
            sys.stderr.write(f"ctl: {err}{hint}\n")
            failed = True
    return EXIT_CTL_FAILURE if failed else 0


# Completion: argcomplete calls these with the options parsed so far, so the
# names come from the root and namespace on the command line (or CTL_ROOT).


def complete(action: argparse.Action, completer: Completer) -> None:
    """complete makes argcomplete offer ``completer``'s names for ``action``."""
    action.completer = completer  # type: ignore[attr-defined]  # argcomplete reads it


def complete_containers(prefix: str, parsed_args: argparse.Namespace, **kwargs: Any) -> list[str]:
    def names(paths: Paths, namespace: str) -> list[str]:
        from ctl.containers.store import LocalContainerStore

        store = LocalContainerStore(
            paths.containers(namespace), paths.lock("containers", namespace)
        )
        return [container.name for container in store.list()]

    return _names(names, parsed_args)


def complete_images(prefix: str, parsed_args: argparse.Namespace, **kwargs: Any) -> list[str]:
    def names(paths: Paths, namespace: str) -> list[str]:
        from ctl.images.store import LocalImageStore

        store = LocalImageStore(paths.images(namespace), paths.lock("images", namespace))
        return [image.name for image in store.list()]

    return _names(names, parsed_args)


def complete_networks(prefix: str, parsed_args: argparse.Namespace, **kwargs: Any) -> list[str]:
    def names(paths: Paths, namespace: str) -> list[str]:
        from ctl.network.config import docker_name
        from ctl.network.networks import Networks

        return [docker_name(name) for name in Networks(paths).names()]

    return _names(names, parsed_args)


def _names(
    list_names: Callable[[Paths, str], list[str]], parsed_args: argparse.Namespace
) -> list[str]:
    """_names reads names without writing anything; a missing or damaged root offers none."""
    from ctl.paths import Paths

    try:
        return list_names(Paths(os.path.abspath(parsed_args.root)), parsed_args.namespace)
    except Exception:  # whatever is wrong with the root, a Tab must not traceback
        return []
