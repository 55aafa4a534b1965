"""The CLI boundary: parse, dispatch to one command handler, map errors to exit codes.

Everything below ``cli`` raises or returns; nothing else calls ``sys.exit``.
Only the module of the command being run is imported, and third-party
packages only where a command needs them, because scripts call ctl thousands
of times a day.
"""

# PYTHON_ARGCOMPLETE_OK
from __future__ import annotations

import os
import sys

from ctl.errdefs import EXIT_CTL_FAILURE, CtlError

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    import argparse

    from ctl.client import Client

VERSION = "0.1.0"


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


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")


def _command_word(argv: list[str]) -> str | None:
    """_command_word finds the command name after the global options."""
    takes_value = {"--root", "-n", "--namespace", "--snapshotter"}
    i = 0
    while i < len(argv):
        word = argv[i]
        if word == "--":
            return argv[i + 1] if i + 1 < len(argv) else None
        if not word.startswith("-"):
            return word
        if word in takes_value:
            i += 1
        i += 1
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """build_parser builds the full parser, or only the command ``only``.

    An unknown word, ``--help`` and completion get the full parser, so that
    help and errors list every command.
    """
    import importlib

    from ctl import commands
    from ctl.commands._base import CommandSubParsers, Parser
    from ctl.paths import DEFAULT_NAMESPACE, DEFAULT_ROOT

    parser = Parser(
        prog="ctl",
        description="A daemonless container manager.",
        epilog="Environment: CTL_ROOT, CTL_NAMESPACE, CTL_SNAPSHOTTER, CTL_DEBUG=1.",
    )
    parser.add_argument(
        "--root",
        default=os.environ.get("CTL_ROOT") or DEFAULT_ROOT,
        help=f"root directory of all persistent state (default {DEFAULT_ROOT})",
    )
    parser.add_argument(
        "-n",
        "--namespace",
        default=os.environ.get("CTL_NAMESPACE") or DEFAULT_NAMESPACE,
        help="namespace of images and containers (default default)",
    )
    parser.add_argument(
        "--snapshotter",
        default=os.environ.get("CTL_SNAPSHOTTER") or None,
        help="snapshotter: overlayfs (default where available) or native",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=_env_flag("CTL_DEBUG"),
        help="print tracebacks and runc command lines",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.set_defaults(func=None)
    subparsers = parser.add_subparsers(
        title="commands", metavar="COMMAND", action=CommandSubParsers
    )
    selected = commands.TOP_LEVEL.get(only or "")
    if selected is not None and isinstance(subparsers, CommandSubParsers):
        # The command being run is all this call needs: no other module, no stubs.
        subparsers.only = only
        importlib.import_module(f"ctl.commands.{selected[0]}").register(subparsers)
        return parser
    for module in commands.COMMAND_MODULES:
        importlib.import_module(f"ctl.commands.{module}").register(subparsers)
    return parser


def cli(argv: list[str] | None = None) -> int:
    """cli runs one ctl command and returns its exit code."""
    if argv is None:
        argv = sys.argv[1:]
    debug = "--debug" in argv or _env_flag("CTL_DEBUG")
    try:
        completing = "_ARGCOMPLETE" in os.environ
        parser = build_parser(None if completing else _command_word(argv))
        if completing:
            import argcomplete

            argcomplete.autocomplete(parser)
        args = parser.parse_args(argv)
        debug = args.debug
        if args.version:
            from ctl.commands.system import print_version

            print_version()
            return 0
        if args.func is None:
            (getattr(args, "group_parser", None) or parser).print_help()
            return 0
        ctx = Context(args.root, args.namespace, args.snapshotter, debug)
        code: int = args.func(args, ctx)
        return code
    except CtlError as err:
        if debug:
            import traceback

            traceback.print_exc()
        hint = f" ({err.hint})" if err.hint else ""
        sys.stderr.write(f"ctl: {err}{hint}\n")
        return err.exit_code
    except SystemExit as exit_:
        # argparse's --help and argcomplete end this way; keep cli() returning.
        return exit_.code if isinstance(exit_.code, int) else 0
    except KeyboardInterrupt:
        sys.stderr.write("ctl: interrupted\n")
        return 130
    except BrokenPipeError:
        # A reader such as `head` went away; say nothing, as other tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as err:
        if debug:
            raise
        where = f": {err.filename}" if err.filename else ""
        sys.stderr.write(f"ctl: {err.strerror or err}{where}\n")
        return EXIT_CTL_FAILURE
    except Exception as err:
        if debug:
            raise
        sys.stderr.write(f"ctl: internal error: {type(err).__name__}: {err} (rerun with --debug)\n")
        return EXIT_CTL_FAILURE


def main() -> None:
    code = cli()
    # Leave without the interpreter's teardown and final garbage collection:
    # ~15 ms of every call. Threads are joined and files closed by now; only
    # the standard streams need flushing.
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        pass
    os._exit(code)
