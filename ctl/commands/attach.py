"""attach: this terminal to a running container's stdio, through its supervisor (docker's)."""

from __future__ import annotations

import sys

from ctl.commands._base import Command, bool_flag, complete, complete_containers
from ctl.errdefs import EXIT_CTL_FAILURE

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    import argparse

    from ctl.commands._base import Context

# docker's detach keys, as --detach-keys spells them.
DEFAULT_DETACH_KEYS = "ctrl-p,ctrl-q"


def commands() -> tuple[Command, ...]:
    return (
        Command(
            "attach",
            _attach,
            "Attach this terminal's input and output to a running container",
            _attach_flags,
        ),
    )


def _attach_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--no-stdin", action="store_true", help="do not attach stdin")
    bool_flag(parser, "--sig-proxy", help="forward signals to the container (not with a tty)")
    add("--detach-keys", metavar="KEYS", help="keys that detach (default ctrl-p,ctrl-q)")
    complete(add("container", metavar="CONTAINER"), complete_containers)


def _attach(args: argparse.Namespace, ctx: Context) -> int:
    import contextlib

    from ctl.runtime import runopts

    sig_proxy: bool = args.sig_proxy
    # Checked before attaching; the container's own (run --detach-keys) by default.
    if args.detach_keys is not None:
        runopts.parse_detach_keys(args.detach_keys)
    container, attached = ctx.client.attach(args.container, stdin=not args.no_stdin)
    keys = runopts.parse_detach_keys(
        args.detach_keys or container.config.detach_keys or DEFAULT_DETACH_KEYS
    )
    sys.stdout.flush()
    with attached:
        proxy = attached.forwarding_signals() if sig_proxy and not container.config.tty else None
        with proxy or contextlib.nullcontext():
            status = attached.run(0, 1, 2, keys)
    if status is None:
        return 0  # detached: the container runs on
    if status.exit_code is not None:
        return status.exit_code
    # The connection ended without the exit: the supervisor went, or let go of a
    # client too slow to take the output. Its records may know more.
    from ctl.runtime.state import Status

    task = ctx.client.task_state(container)
    if task is not None and task.exit is not None and task.exit.exit_code is not None:
        return task.exit.exit_code
    why = "was lost"
    if task is not None and task.status is Status.RUNNING:
        why = "let this attach go (too slow to take the output)"
    sys.stderr.write(f"ctl: container {container.name}: its supervisor {why}\n")
    return EXIT_CTL_FAILURE
