"""A terminal for ``runc exec -t`` when ctl has none (CI jobs, pipes, cron).

runc's foreground ``-t`` gives the process a terminal of its own and relays
it to a terminal of runc's: one of its stdin, stdout or stderr, else
``/dev/tty``. Without any, it fails with ``open /dev/tty``, where docker's
``exec -t`` works, since its daemon holds the terminal. ctl then does the
same: runc gets a pseudo-terminal as its stdio, and threads copy between its
other end and ctl's own descriptors.
"""

from __future__ import annotations

import os
import threading

from ctl.fsutil import write_all

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from ctl.runtime.runc import Stdio

# How long the output may go on once runc has returned: a process the command left
# in the background may hold the terminal open for ever.
DRAIN_SECONDS = 1.0
_CHUNK = 65536


def has_terminal(stdio: Stdio) -> bool:
    """has_terminal: runc, given ``stdio`` (None: ctl's own), finds a terminal to relay to."""
    fds = [fd if fd is not None else own for fd, own in zip(stdio, (0, 1, 2), strict=True)]
    if any(os.isatty(fd) for fd in fds):
        return True
    try:
        os.close(os.open("/dev/tty", os.O_RDWR | os.O_NOCTTY))
    except OSError:
        return False
    return True


def run_on_pty(run: Callable[[int], int], stdio: Stdio) -> int:
    """run_on_pty calls ``run`` with a pseudo-terminal for runc's stdio and copies it to
    ``stdio``'s stdout (and from its stdin, if any); returns what ``run`` returns."""
    master, slave = os.openpty()
    out = stdio.stdout if stdio.stdout is not None else 1
    output = threading.Thread(target=_copy_out, args=(master, out), daemon=True)
    output.start()
    source = stdio.stdin if stdio.stdin is not None else 0
    threading.Thread(target=_copy_in, args=(source, master), daemon=True).start()
    try:
        return run(slave)
    finally:
        os.close(slave)
        output.join(DRAIN_SECONDS)
        os.close(master)


def _copy_out(master: int, out: int) -> None:
    while True:
        try:
            data = os.read(master, _CHUNK)
        except OSError:
            return  # EIO: every end of the terminal is closed; EBADF: given up on
        if not data:
            return
        try:
            write_all(out, data)
        except OSError:
            return  # the reader went away: the command runs on, as without -t


def _copy_in(fd: int, master: int) -> None:
    while True:
        try:
            data = os.read(fd, _CHUNK)
            if not data:
                return
            write_all(master, data)
        except OSError:
            return
