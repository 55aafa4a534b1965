"""Generates the ctl(1) man page from the argument parser, so the two cannot drift."""

from __future__ import annotations

import argparse

from ctl import __version__
from ctl.commands import build_parser

HEADER = """\
.TH CTL 1 "" "ctl {version}" "User Commands"
.SH NAME
ctl \\- a daemonless container manager for Linux servers
.SH SYNOPSIS
.B ctl
[\\fIGLOBAL OPTIONS\\fR] \\fICOMMAND\\fR [\\fIOPTIONS\\fR] [\\fIARGS\\fR]
.SH DESCRIPTION
ctl pulls, stores and runs OCI containers with containerd's architecture
(content store, images, snapshotter, containers, tasks, runc) but no daemon:
every invocation is a short process over the state under one root directory.
"""

FOOTER = """\
.SH ENVIRONMENT
.TP
.B CTL_ROOT
root directory (default /var/lib/ctl)
.TP
.B CTL_NAMESPACE
namespace (default default)
.TP
.B CTL_SNAPSHOTTER
snapshotter (overlayfs, or native)
.TP
.B CTL_DEBUG
1 prints tracebacks and runc command lines
.TP
.B DOCKER_CONFIG
directory of the config.json that holds registry credentials (default ~/.docker)
.SH EXIT STATUS
The container's exit code for run, start \\-a, wait and exec (128+N for signal N);
125 when ctl itself fails; 126 when the command cannot be invoked; 127 when it is not found.
.SH FILES
.TP
.I /var/lib/ctl
all persistent state; see the README for the layout
"""


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("-", "\\-").replace("'", "\\(aq")


def _options(parser: argparse.ArgumentParser) -> list[str]:
    lines = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) or action.help == argparse.SUPPRESS:
            continue
        if not action.option_strings or action.dest == "help":
            continue
        flags = ", ".join(action.option_strings)
        if action.nargs != 0:
            flags += f" {action.metavar or action.dest.upper()}"
        lines += [".TP", f".B {_escape(flags)}", _escape(action.help or "")]
    return lines


def _commands(parser: argparse.ArgumentParser, path: str) -> list[str]:
    lines: list[str] = []
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {a.dest: a.help for a in action._choices_actions}
        seen: set[int] = set()
        for name, sub in action.choices.items():
            if id(sub) in seen:
                continue  # an alias
            seen.add(id(sub))
            full = f"{path} {name}"
            children = _commands(sub, full)
            if children:
                lines += children
                continue
            usage = sub.format_usage().removeprefix("usage: ").strip()
            lines += [".SS " + _escape(full), _escape(helps.get(name) or ""), ".PP"]
            lines += [".nf", _escape(" ".join(usage.split())), ".fi"]
            lines += _options(sub)
    return lines


def render() -> str:
    parser = build_parser()
    lines = [HEADER.format(version=__version__).rstrip("\n"), ".SH GLOBAL OPTIONS"]
    lines += _options(parser)
    lines += [".SH COMMANDS"]
    lines += _commands(parser, "ctl")
    return "\n".join(lines) + "\n" + FOOTER
