"""update: change the limits and restart policy of containers, running or not (docker's)."""

from __future__ import annotations

from ctl.commands._base import Command, complete, complete_containers, each
from ctl.errdefs import InvalidArgument

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    import argparse

    from ctl.commands._base import Context

# The flags update takes, by dest: docker's ``container update``.
_FLAGS = (
    "memory", "memory_swap", "memory_reservation", "cpus", "cpu_shares", "cpu_period",
    "cpu_quota", "cpu_rt_period", "cpu_rt_runtime", "cpuset_cpus", "cpuset_mems",
    "pids_limit", "blkio_weight", "restart",
)  # fmt: skip


def commands() -> tuple[Command, ...]:
    return (Command("update", _update, "Update the configuration of containers", _update_flags),)


def _update_flags(parser: argparse.ArgumentParser) -> None:
    from ctl.commands._run_flags import limit_flags

    limit_flags(parser)
    add = parser.add_argument
    add("--restart", help="restart policy: no, always, on-failure[:N], unless-stopped")
    complete(add("containers", nargs="+", metavar="CONTAINER"), complete_containers)


def _update(args: argparse.Namespace, ctx: Context) -> int:
    import sys

    from ctl.commands._run_flags import parsed_resources
    from ctl.runtime import resources, runopts

    if all(getattr(args, name) is None for name in _FLAGS):
        raise InvalidArgument("you must provide one or more flags when using this command")
    # Everything is parsed before the first container changes.
    wanted = parsed_resources(args)
    if args.pids_limit is not None:
        wanted = wanted._replace(pids_limit=args.pids_limit)
    # Checked before what this host cannot do is dropped; swap and reservation
    # are checked against the container's memory limit (Task.update).
    wanted._replace(memory_swap=None, memory_reservation=None).validate()
    wanted, warnings = resources.unsupported(wanted)
    for warning in warnings:
        sys.stderr.write(f"ctl: warning: {warning}\n")
    restart = runopts.parse_restart(args.restart) if args.restart is not None else None
    return each(args.containers, lambda ref: ctx.client.update_container(ref, wanted, restart))
