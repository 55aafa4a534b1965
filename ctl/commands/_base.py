"""What every command module shares: the handler type and the parser class."""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING, Any, NoReturn

from ctl.errdefs import InvalidArgument

if TYPE_CHECKING:
    from collections.abc import Callable

    from ctl.main import Context

    Handler = Callable[[argparse.Namespace, Context], int]
    SubParsers = argparse._SubParsersAction[argparse.ArgumentParser]


class Parser(argparse.ArgumentParser):
    """Parser reports bad usage as an InvalidArgument (one line, exit 125)."""

    def error(self, message: str) -> NoReturn:
        choice = re.match(r"argument COMMAND: invalid choice: '([^']*)'", message)
        if choice:
            message = f"{choice.group(1)!r} is not a {self.prog} command"
        command = self.prog.removeprefix("ctl").strip()
        where = f"{command}: " if command else ""
        raise InvalidArgument(f"{where}{message}", hint=f"see '{self.prog} --help'")


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
