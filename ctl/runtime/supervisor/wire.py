"""The wire between a supervisor and its spawner: one JSON object a line, on a pipe.

The supervisor writes, in order:

- ``{"pid": N, "supervisor_pid": M}`` once the task runs (or is created), or
  ``{"error": ...}`` if it could not get there, and then exits;
- ``{"exit": {...}, "restarting": bool}`` at each exit while the caller listens;
- ``{"debug": "runc ..."}`` with ``--debug``, for each runc command line.

EOF means the supervisor is done (or lost). An error travels as its class
name, its message and its attributes (``hint``; ``status``, ``stderr`` and
``exit_code`` of a runc error), and comes back as the same class: any
subclass of ``CtlError`` loaded in the spawner round-trips.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import sys
import time
from typing import TYPE_CHECKING, Any

from ctl.errdefs import CtlError

if TYPE_CHECKING:
    from ctl.runtime.state import ExitStatus


def send(fd: int, message: dict[str, Any]) -> None:
    """send writes one message; a caller that went away is not the supervisor's problem."""
    with contextlib.suppress(OSError):
        os.write(fd, json.dumps(message).encode() + b"\n")


def encode_error(err: BaseException) -> dict[str, Any]:
    """encode_error is ``err`` as a message; anything but a CtlError becomes one."""
    if not isinstance(err, CtlError):
        return {"class": "CtlError", "message": f"supervisor: {type(err).__name__}: {err}"}
    attrs = {k: v for k, v in vars(err).items() if isinstance(v, str | int | float | None)}
    return {"class": type(err).__name__, "message": str(err), "attrs": attrs}


def decode_error(data: dict[str, Any]) -> CtlError:
    """decode_error rebuilds the error ``encode_error`` sent; an unknown class is a CtlError."""
    cls = error_classes().get(str(data.get("class")), CtlError)
    # Not through __init__: each class has its own keywords, and the sent
    # attributes are exactly what __init__ set.
    err = cls.__new__(cls)
    Exception.__init__(err, str(data.get("message")))
    attrs = data.get("attrs")
    if isinstance(attrs, dict):
        vars(err).update(attrs)
    return err


def error_classes() -> dict[str, type[CtlError]]:
    """error_classes are CtlError and every subclass loaded now, by name."""
    found: dict[str, type[CtlError]] = {}
    pending: list[type[CtlError]] = [CtlError]
    while pending:
        cls = pending.pop()
        found.setdefault(cls.__name__, cls)
        pending.extend(cls.__subclasses__())
    return found


def exit_message(status: ExitStatus, restarting: bool) -> dict[str, Any]:
    return {
        "exit": {
            "exit_code": status.exit_code,
            "signal": status.signal,
            "finished_at": status.finished_at,
            "oom": status.oom,
        },
        "restarting": restarting,
    }


class Messages:
    """Messages reads the JSON lines the supervisor writes; None at EOF."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buf = b""

    def next(self, deadline: float | None = None) -> dict[str, Any] | None:
        """next returns the next message; TimeoutError once ``deadline`` (monotonic) passed.

        The supervisor's runc command lines (``--debug``) are printed, not returned.
        """
        while True:
            while b"\n" not in self._buf:
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                        raise TimeoutError("no message from the supervisor in time")
                chunk = os.read(self.fd, 4096)
                if not chunk:
                    return None
                self._buf += chunk
            line, _, self._buf = self._buf.partition(b"\n")
            message: dict[str, Any] = json.loads(line)
            if "debug" not in message:
                return message
            print(message["debug"], file=sys.stderr, flush=True)
