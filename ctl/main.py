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

from ctl.commands import build_parser, env_flag
from ctl.errdefs import EXIT_CTL_FAILURE, CtlError


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


def cli(argv: list[str] | None = None) -> int:
    """cli runs one ctl command and returns its exit code."""
    if argv is None:
        argv = sys.argv[1:]
    debug = "--debug" in argv or env_flag("CTL_DEBUG")
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
        from ctl.commands._base import Context

        result = args.func(args, Context(args.root, args.namespace, args.snapshotter, debug))
        if isinstance(result, int):
            return result
        from ctl.output import print_listing

        print_listing(result, args.format, args.quiet)
        return 0
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
