"""System commands: version, info."""

from __future__ import annotations

import platform
import sys

from ctl import __version__
from ctl.commands._base import Command, Group, add_format_only, complete, complete_containers
from ctl.errdefs import CtlError, InvalidArgument

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    import argparse

    from ctl.commands._base import Context
    from ctl.output import Listing


def commands() -> tuple[Command | Group, ...]:
    prune = Command("prune", _prune, "Remove what nothing references", _prune_flags)
    info = Command("info", _info, "Show system-wide information", add_format_only)
    return (
        Command("version", _version, "Show the ctl and runc versions"),
        info,
        prune,
        Group(
            "system",
            "Manage the ctl root as a whole",
            (
                prune,
                Command("df", _df, "Show disk usage", add_format_only),
                Command("check", _check, "Verify every blob, snapshot and record", _check_flags),
                Command("boot", _boot, "Start the containers whose restart policy says so"),
                info,
                # events' own command, imported only when run.
                Command("events", "events:_events", "Show events", "events:_flags"),
            ),
        ),
        Command("completion", _completion, "Print a shell completion script", _completion_flags),
        Group(
            "generate",
            "Generate files for other tools",
            (Command("systemd", _systemd, "Print a systemd unit for a container", _systemd_flags),),
        ),
    )


def _check_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repair",
        action="store_true",
        help="remove or rebuild what cannot be read, and say what was done",
    )


def _completion_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shell", choices=("bash", "zsh", "fish"), metavar="SHELL")


def _systemd_flags(parser: argparse.ArgumentParser) -> None:
    complete(parser.add_argument("container", metavar="NAME", nargs="?"), complete_containers)
    parser.add_argument(
        "--boot",
        action="store_true",
        help="instead, the unit that runs 'ctl system boot' once a boot",
    )


def _prune_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-a", "--all", action="store_true", help="also remove images no container uses"
    )
    parser.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")


def runc_version() -> str:
    """runc_version is runc's own version, or why there is none."""
    from pathlib import Path

    from ctl.errdefs import CtlError
    from ctl.paths import DEFAULT_ROOT
    from ctl.runtime.runc import Runc, RuncError

    try:
        # runc --version reads no state, so any root does.
        return Runc(Path(DEFAULT_ROOT) / "runc").version().get("runc") or "unknown"
    except RuncError:
        return "unknown"
    except CtlError:  # runc cannot be run at all
        return "not found"


def print_version() -> None:
    print(f"ctl version {__version__}")
    print(f"runc version {runc_version()}")
    print(f"python version {platform.python_version()}")


def _version(args: argparse.Namespace, ctx: Context) -> int:
    print_version()
    return 0


def _info(args: argparse.Namespace, ctx: Context) -> int:
    import json

    from ctl.reference import host_platform

    client = ctx.client
    info = {
        "Version": __version__,
        "RuncVersion": runc_version(),
        "Root": str(client.paths.root),
        "Namespace": client.namespace,
        "Platform": str(host_platform()),
        "Kernel": platform.release(),
        "Python": sys.version.split()[0],
        "Images": len(client.list_images()),
    }
    if args.format == "json":
        print(json.dumps(info))
    else:
        for key, value in info.items():
            print(f"{key}: {value}")
    return 0


def _prune(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.errdefs import FailedPrecondition
    from ctl.progress import human_size

    if not args.force and sys.stdin is not None and sys.stdin.isatty():
        what = "images no container uses and all" if args.all else "all"
        answer = input(f"This removes {what} unreferenced content and snapshots. Continue? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            raise FailedPrecondition("prune cancelled")
    result = ctx.client.prune(unused_images=args.all)
    for name in result.images:
        print(f"Untagged: {name}")
    for digest in result.blobs:
        print(f"Deleted: {digest}")
    for key in result.snapshots:
        print(f"Deleted snapshot: {key}")
    for container in result.leftovers:
        print(f"Deleted leftovers of unfinished container: {container}")
    for bridge in result.bridges:
        print(f"Deleted unused bridge: {bridge}")
    print(f"Total reclaimed space: {human_size(result.reclaimed)}")
    return 0


def _df(args: argparse.Namespace, ctx: Context) -> Listing:
    from ctl.output import Column, Listing

    columns = (
        Column("TYPE", "Type"),
        Column("TOTAL", "TotalCount"),
        Column("ACTIVE", "Active"),
        Column("SIZE", "Size"),
        Column("RECLAIMABLE", "Reclaimable"),
    )
    return Listing(columns, ctx.client.disk_usage())


def _check(args: argparse.Namespace, ctx: Context) -> int:
    problems = repaired = checked = 0
    for finding in ctx.client.check():
        checked += 1
        if not finding.problem:
            continue
        problems += 1
        print(f"{finding.what}: {finding.problem}")
        if args.repair and finding.repair is not None:
            # Before the next finding: later checks then see the repaired root.
            try:
                print(f"  repaired: {finding.repair()}")
                repaired += 1
            except (CtlError, OSError) as err:
                print(f"  not repaired: {err}")
    summary = f"checked {checked} objects: {problems} problem{'s' if problems != 1 else ''}"
    print(f"{summary}, {repaired} repaired" if args.repair else summary)
    # fsck's convention: non-zero when something is wrong (with --repair: still wrong).
    return 1 if problems > repaired else 0


def _boot(args: argparse.Namespace, ctx: Context) -> int:
    for name in ctx.client.boot():
        print(name)
    return 0


def _completion(args: argparse.Namespace, ctx: Context) -> int:
    from argcomplete.shell_integration import shellcode

    sys.stdout.write(shellcode(["ctl"], shell=args.shell))
    return 0


def _systemd(args: argparse.Namespace, ctx: Context) -> int:
    if args.boot == (args.container is not None):
        raise InvalidArgument("generate systemd takes a container NAME or --boot")
    sys.stdout.write(ctx.client.systemd_unit(args.container))
    return 0
