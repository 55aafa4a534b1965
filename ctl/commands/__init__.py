"""The parser of the CLI, built from the command modules, listed once.

Each module declares its commands next to their handlers, in a function
``commands()``: name, aliases, one-line help, arguments and handler. A call
imports only the module of the command it runs, found in ``MODULE_OF``
(ctl/commands/_index.py). That map is derived from the declarations by
``python3 scripts/gen_index.py``, and a test checks that it is fresh.
"""

from __future__ import annotations

import os

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    import argparse

    from ctl.commands._base import Command, Group

# In the order --help and the man page list their commands.
MODULES = (
    "images",
    "containers",
    "inspect",
    "transfer",
    "volumes",
    "content",
    "snapshots",
    "namespaces",
    "network",
    "system",
    "login",
    "stats",
    "events",
    "update",
    "attach",
)


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").lower() in ("1", "true", "yes")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """build_parser builds the parser of every command, or only of the command ``only``.

    An unknown word, ``--help`` and completion get the full parser, so that
    help and errors list every command.
    """
    from ctl.commands._base import Parser
    from ctl.commands._index import MODULE_OF
    from ctl.paths import DEFAULT_NAMESPACE, DEFAULT_ROOT, check_root

    parser = Parser(
        prog="ctl",
        description="A daemonless container manager.",
        epilog="Environment: CTL_ROOT, CTL_NAMESPACE, CTL_SNAPSHOTTER, CTL_DEBUG=1.",
    )
    parser.add_argument(
        "--root",
        # A set but empty CTL_ROOT is refused, not taken for the system's root.
        default=os.environ.get("CTL_ROOT", DEFAULT_ROOT),
        type=check_root,
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
        default=env_flag("CTL_DEBUG"),
        help="print tracebacks and runc command lines",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.set_defaults(func=None)
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    # The command being run is all this call needs: its module alone, its parser alone.
    module = MODULE_OF.get(only or "")
    for name in MODULES if module is None else (module,):
        for command in declared(name):
            if module is None or only == command.name or only in command.aliases:
                command.add_to(subparsers)
    return parser


def declared(module: str) -> tuple[Command | Group, ...]:
    """declared imports the command module ``module`` and returns its commands."""
    import sys

    name = f"ctl.commands.{module}"
    # __import__, not importlib.import_module: -X importtime reports only the former.
    __import__(name)
    commands: tuple[Command | Group, ...] = sys.modules[name].commands()
    return commands


def render_index() -> str:
    """render_index writes ctl/commands/_index.py: every top-level word and its module."""
    lines = [
        '"""Every top-level command word (aliases too) and the module that declares it.',
        "",
        "Generated from the declarations by python3 scripts/gen_index.py: do not edit.",
        '"""',
        "",
        "MODULE_OF = {",
    ]
    for module in MODULES:
        for command in declared(module):
            lines += [f'    "{word}": "{module}",' for word in (command.name, *command.aliases)]
    return "\n".join([*lines, "}"]) + "\n"
