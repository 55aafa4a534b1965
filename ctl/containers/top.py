"""top: the host's ps, cut down to one container's processes, as docker's daemon does it."""

from __future__ import annotations

import subprocess

from ctl.errdefs import CtlError, InvalidArgument


def top(pids: list[int], ps_options: list[str]) -> str:
    """top is ``ps PS_OPTIONS``'s header and the lines of ``pids``, found by its PID column.

    As docker's, ps is asked for those pids alone (``-q``) where the options
    allow it, and for everything otherwise (``ps f`` refuses ``-q``); either
    way the lines are kept by their PID. A container without processes has
    the header alone.
    """
    asked = ["ps", *ps_options]
    try:
        done = None
        if pids:
            pid_list = ",".join(map(str, pids))
            only = [*asked, "-q", pid_list]
            done = subprocess.run(only, capture_output=True, text=True, check=False)
        if done is None or done.returncode != 0:
            done = subprocess.run(asked, capture_output=True, text=True, check=False)
    except OSError as err:
        raise CtlError(f"top: cannot run ps: {err.strerror}") from None
    if done.returncode != 0:
        why = done.stderr.strip().splitlines()
        raise InvalidArgument(f"ps {' '.join(ps_options)}: {why[0] if why else 'failed'}")
    lines = done.stdout.splitlines()
    if not lines:
        return ""
    header = lines[0].split()
    if "PID" not in header:
        raise InvalidArgument(f"ps {' '.join(ps_options)}: no PID column in its output")
    column = header.index("PID")
    wanted = set(map(str, pids))
    kept = [
        line for line in lines[1:] if (fields := line.split())[column:] and fields[column] in wanted
    ]
    return "".join(f"{line}\n" for line in [lines[0], *kept])
