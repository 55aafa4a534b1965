"""System commands: version, info."""

from __future__ import annotations

import platform
import sys
from typing import TYPE_CHECKING

from ctl.commands._base import add_command, add_format

if TYPE_CHECKING:
    import argparse

    from ctl.commands._base import SubParsers
    from ctl.main import Context


def register(subparsers: SubParsers) -> None:
    add_command(subparsers, "version", _version, "Show the ctl and runc versions")
    info = add_command(subparsers, "info", _info, "Show system-wide information")
    add_format(info, quiet=False)


def runc_version() -> str:
    import subprocess

    try:
        out = subprocess.run(
            ["runc", "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except OSError:
        return "not found"
    first = out.splitlines()[0] if out else ""
    return first.removeprefix("runc version ").strip() or "unknown"


def print_version() -> None:
    from ctl.main import VERSION

    print(f"ctl version {VERSION}")
    print(f"runc version {runc_version()}")
    print(f"python version {platform.python_version()}")


def _version(args: argparse.Namespace, ctx: Context) -> int:
    print_version()
    return 0


def _info(args: argparse.Namespace, ctx: Context) -> int:
    import json

    from ctl.main import VERSION
    from ctl.reference import host_platform

    client = ctx.client
    info = {
        "Version": VERSION,
        "RuncVersion": runc_version(),
        "Root": str(client.paths.root),
        "Namespace": client.namespace,
        "Platform": str(host_platform()),
        "Kernel": platform.release(),
        "Python": sys.version.split()[0],
        "Images": sum(1 for _ in client.images.list()),
    }
    if args.format == "json":
        print(json.dumps(info))
    else:
        for key, value in info.items():
            print(f"{key}: {value}")
    return 0
