"""stats: a live view of containers' resource use, with docker's columns."""

from __future__ import annotations

import sys
import time

from ctl.commands._base import Command, add_format_only, complete, complete_containers

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    import argparse
    from typing import Any

    from ctl.commands._base import Context
    from ctl.containers.container import Container
    from ctl.output import Listing
    from ctl.runtime.state import TaskState

# How often a stream is refreshed, as docker's daemon sends its samples.
INTERVAL = 1.0
# A terminal is cleared and redrawn, as docker does.
CLEAR = "\033[2J\033[H"


def commands() -> tuple[Command, ...]:
    return (Command("stats", _stats, "Show containers' resource use", _stats_flags),)


def _stats_flags(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("-a", "--all", action="store_true", help="show every container (default: running)")
    add("--no-stream", action="store_true", help="print one sample and exit")
    add("--no-trunc", action="store_true", help="do not truncate output")
    add_format_only(parser)
    complete(add("containers", nargs="*", metavar="CONTAINER"), complete_containers)


def _stats(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.output import print_listing

    previous: dict[str, dict[str, Any]] = {}
    terminal = sys.stdout.isatty() and args.format == "table"
    first = True
    while True:
        samples = ctx.client.stats(args.containers, args.all)
        listing = _listing(samples, previous, args)
        if terminal:
            sys.stdout.write(CLEAR)
        if first or terminal or args.format != "table":
            print_listing(listing, args.format, quiet=False)
        else:
            # In a pipe, a stream is the header once, then one line a container a sample.
            from ctl.output import print_rows

            print_rows(listing)
        sys.stdout.flush()
        if args.no_stream:
            return 0
        first = False
        previous = {container.id: data for container, _, data in samples if data is not None}
        time.sleep(INTERVAL)


def _listing(
    samples: list[tuple[Container, TaskState | None, dict[str, Any] | None]],
    previous: dict[str, dict[str, Any]],
    args: argparse.Namespace,
) -> Listing:
    from ctl.output import Column, Listing

    # docker's .Container is the container as the user named it; samples follow the names.
    named = args.containers or [None] * len(samples)
    rows = [
        _row(container, task, data, previous.get(container.id), args, given)
        for (container, task, data), given in zip(samples, named, strict=True)
    ]
    columns = (
        Column("CONTAINER ID", "ID", id=True),
        Column("NAME", "Name"),
        Column("CPU %", "CPUPerc"),
        Column("MEM USAGE / LIMIT", "MemUsage"),
        Column("MEM %", "MemPerc"),
        Column("NET I/O", "NetIO"),
        Column("BLOCK I/O", "BlockIO"),
        Column("PIDS", "PIDs"),
    )
    return Listing(columns, rows)


def _row(
    container: Container,
    task: TaskState | None,
    data: dict[str, Any] | None,
    before: dict[str, Any] | None,
    args: argparse.Namespace,
    given: str | None,
) -> dict[str, Any]:
    """_row is one container's sample; ``given`` is the name or ID it was asked for by."""
    from ctl.runtime import stats

    ident = container.id if args.no_trunc else container.id[:12]
    row = {"ID": ident, "Container": given or ident, "Name": container.name}
    if data is None:
        zero = {"CPUPerc": "0.00%", "MemUsage": "0B / 0B", "MemPerc": "0.00%"}
        return row | zero | {"NetIO": "0B / 0B", "BlockIO": "0B / 0B", "PIDs": "0"}
    if before is None:
        # The first sample of a container: its average since its task started.
        started = task.started_at if task is not None and task.started_at else data["read"]
        before = {"read": started, "cpu": {"usage": {"total": 0}}}
    used = stats.memory_used(data)
    limit = data["memory"]["usage"]["limit"]
    network, blkio = data["network"], data["blkio"]
    return row | {
        "CPUPerc": f"{stats.cpu_percent(before, data):.2f}%",
        "MemUsage": f"{_binary(used)} / {_binary(limit)}",
        "MemPerc": f"{used / limit * 100 if limit else 0.0:.2f}%",
        "NetIO": f"{_decimal(network['rx_bytes'])} / {_decimal(network['tx_bytes'])}",
        "BlockIO": f"{_decimal(blkio['read'])} / {_decimal(blkio['write'])}",
        "PIDs": str(data["pids"]["current"]),
    }


def _scaled(size: float, base: float, units: tuple[str, ...], precision: int) -> str:
    """_scaled is docker's go-units CustomSize: ``%.<precision>g`` of the largest unit."""
    index = 0
    while size >= base and index < len(units) - 1:
        size /= base
        index += 1
    return f"{size:.{precision}g}{units[index]}"


def _binary(size: float) -> str:
    return _scaled(size, 1024.0, ("B", "KiB", "MiB", "GiB", "TiB", "PiB"), 4)


def _decimal(size: float) -> str:
    return _scaled(size, 1000.0, ("B", "kB", "MB", "GB", "TB", "PB"), 3)
