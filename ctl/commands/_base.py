"""What every command module shares: the handler type and the parser class."""

from __future__ import annotations

import argparse
import os
import re
import sys

from ctl.errdefs import EXIT_CTL_FAILURE, CtlError, InvalidArgument

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, NoReturn

    from ctl.main import Context

    Handler = Callable[[argparse.Namespace, Context], int]
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]


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


class Parser(argparse.ArgumentParser):
    """Parser reports bad usage as an InvalidArgument (one line, exit 125)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        choice = re.match(r"argument COMMAND: invalid choice: '([^']*)'", message)
        if choice:
            message = f"{choice.group(1)!r} is not a {self.prog} command"
        command = self.prog.removeprefix("ctl").strip()
        where = f"{command}: " if command else ""
        raise InvalidArgument(f"{where}{message}", hint=f"see '{self.prog} --help'")


class CommandSubParsers(argparse._SubParsersAction):  # type: ignore[type-arg]
    """CommandSubParsers holds the top-level commands, or only the one this call runs.

    Building every command's parser costs more than a listing itself (argparse
    makes a help formatter per argument), so ``build_parser`` sets ``only``
    to the command word and the others get a ``_Skipped`` stand-in that
    records nothing.
    """

    only: str | None = None

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        if self.only is not None and name != self.only:
            return _Skipped()
        return super().add_parser(name, **kwargs)


class _Skipped(Parser):
    """_Skipped stands in for the parser of a command this call does not run."""

    def __init__(self) -> None:
        pass  # nothing to build: every method below discards what it is given

    def add_argument(self, *args: Any, **kwargs: Any) -> Any:
        return None

    def set_defaults(self, **kwargs: Any) -> None:
        pass

    def add_subparsers(self, **kwargs: Any) -> Any:
        return _SkippedSubParsers()


class _SkippedSubParsers:
    def add_parser(self, name: str, **kwargs: Any) -> _Skipped:
        return _Skipped()


def add_command(
    subparsers: SubParsers,
    name: str,
    handler: Handler,
    help: str,
    aliases: tuple[str, ...] = (),
    **kwargs: Any,
) -> argparse.ArgumentParser:
    """add_command adds a leaf command whose handler is ``handler``."""
    parser = subparsers.add_parser(
        name, help=help, description=help, aliases=list(aliases), **kwargs
    )
    parser.set_defaults(func=handler)
    return parser


def add_group(
    subparsers: SubParsers, name: str, help: str, aliases: tuple[str, ...] = ()
) -> SubParsers:
    """add_group adds a command with subcommands and returns their subparsers."""
    parser = subparsers.add_parser(name, help=help, description=help, aliases=list(aliases))
    parser.set_defaults(func=None, group_parser=parser)
    return parser.add_subparsers(title="commands", metavar="COMMAND")


def add_format(parser: argparse.ArgumentParser, *, quiet: bool = True) -> None:
    """add_format adds the listing flags ``--format table|json`` and ``-q``."""
    parser.add_argument(
        "--format",
        default="table",
        help="output format: table, or json (one object a line)",
    )
    if quiet:
        parser.add_argument("-q", "--quiet", action="store_true", help="print only IDs")


def add_inspect_format(parser: argparse.ArgumentParser) -> None:
    """add_inspect_format adds inspect's ``-f/--format TEMPLATE`` (default: a JSON array)."""
    parser.add_argument(
        "-f",
        "--format",
        default=None,
        help="a template for each object, e.g. '{{.State.Status}}' or '{{json .Config}}'",
    )


def each(refs: list[str], action: Any) -> int:
    """each applies ``action`` to every name and prints it; errors are reported, the rest go on."""
    failed = False
    for ref in refs:
        try:
            action(ref)
            print(ref)
        except CtlError as err:
            if len(refs) == 1:
                raise
            hint = f" ({err.hint})" if err.hint else ""
            sys.stderr.write(f"ctl: {err}{hint}\n")
            failed = True
    return EXIT_CTL_FAILURE if failed else 0
