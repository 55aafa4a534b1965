"""The CLI boundary: parse, dispatch to one command handler, map errors to exit codes.

Everything below ``cli`` raises or returns; nothing else calls ``sys.exit``.
Only the module of the command being run is imported, and third-party
packages only where a command needs them, because scripts call ctl thousands
of times a day.
"""

# PYTHON_ARGCOMPLETE_OK
from __future__ import annotations

import errno
import gc
import io
import os
import sys

from ctl.commands import build_parser, env_flag
from ctl.errdefs import EXIT_CTL_FAILURE, CtlError, WriteFailed

# typing is not imported at run time: start-up time is a feature.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer


class StdoutError(Exception):
    """StdoutError is a write to standard output that failed for a reason other than its reader.

    Not a CtlError, nor an OSError: code that goes on past those (one name of
    many failed; a file was missing) must not go on writing into nothing.
    """


class _Stdout(io.FileIO):
    """_Stdout is fd 1, whose failed writes become StdoutError; a closed pipe stays itself."""

    def write(self, data: ReadableBuffer, /) -> int:
        try:
            return super().write(data)
        except BrokenPipeError:
            raise
        except OSError as err:
            why = "it is closed" if err.errno == errno.EBADF else err.strerror or str(err)
            raise StdoutError(f"cannot write to stdout: {why}") from err


class _Stderr(io.FileIO):
    """_Stderr is fd 2, whose failed writes are dropped: nobody is there to tell."""

    def write(self, data: ReadableBuffer, /) -> int:
        try:
            return super().write(data)
        except OSError:
            return memoryview(data).nbytes


def _take_standard_streams() -> None:
    """_take_standard_streams gives fds 0, 1 and 2 to ctl's own stream objects.

    A standard fd that was closed gets /dev/null, so that no file ctl opens
    later takes its number, to be written by a print or handed to a child as
    its stdio: read-only on 1, where writes then fail as on a closed fd, and
    write-only on 2, where they are lost.
    """
    for fd, flags in ((0, os.O_RDONLY), (1, os.O_RDONLY), (2, os.O_WRONLY)):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, flags)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
    if sys.stdin is None:
        sys.stdin = open(0, closefd=False)  # noqa: SIM115
    old = sys.stdout
    sys.stdout = io.TextIOWrapper(
        io.BufferedWriter(_Stdout(1, "w", closefd=False)),
        encoding=old.encoding if old else "utf-8",
        errors=old.errors if old else "strict",
        line_buffering=bool(old and old.line_buffering),
    )
    sys.stderr = io.TextIOWrapper(
        io.BufferedWriter(_Stderr(2, "w", closefd=False)),
        encoding=sys.stderr.encoding if sys.stderr else "utf-8",
        errors="backslashreplace",
        line_buffering=True,
    )


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
    # What failed writes are prefixed with: "pull", "network create".
    command: str | None = None
    try:
        completing = "_ARGCOMPLETE" in os.environ
        parser = build_parser(None if completing else _command_word(argv))
        if completing:
            import argcomplete

            argcomplete.autocomplete(parser)
        args = parser.parse_args(argv)
        if not gc.isenabled():
            # Off since ctl.__main__; on again, for commands that live long (a supervisor,
            # logs -f), with what start-up made kept out of every later collection.
            gc.freeze()
            gc.enable()
        debug = args.debug
        command = getattr(args, "command_name", None)
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
        doing = f"{command}: " if command and isinstance(err, WriteFailed) else ""
        sys.stderr.write(f"ctl: {doing}{err}{hint}\n")
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
    except StdoutError as err:
        if debug:
            raise
        sys.stderr.write(f"ctl: {err}\n")
        return EXIT_CTL_FAILURE
    except OSError as err:
        if debug:
            raise
        doing = f"{command}: " if command else ""
        where = f": {err.filename}" if err.filename else ""
        sys.stderr.write(f"ctl: {doing}{err.strerror or err}{where}\n")
        return EXIT_CTL_FAILURE
    except Exception as err:
        if debug:
            raise
        sys.stderr.write(f"ctl: internal error: {type(err).__name__}: {err} (rerun with --debug)\n")
        return EXIT_CTL_FAILURE


def main() -> None:
    _take_standard_streams()
    code = cli()
    # Leave without the interpreter's teardown and final garbage collection:
    # ~15 ms of every call, and its own flush of stdout, which would report a
    # failure as "Exception ignored". Threads are joined and files closed by
    # now; only the standard streams need flushing.
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    except StdoutError as err:
        # The output was all the command had left to do; an error it reported already stands.
        if code == 0:
            sys.stderr.write(f"ctl: {err}\n")
            code = EXIT_CTL_FAILURE
    sys.stderr.flush()
    os._exit(code)
