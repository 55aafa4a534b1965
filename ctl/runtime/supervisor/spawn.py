"""The spawner's side of a supervisor: ``spawn`` forks one, ``Spawned`` is what it hands back.

Everything the supervisor runs is imported here, before the fork (see the
package docstring): ``ctl.runtime.supervisor.process`` at the top, python-prctl
and the modules a tty needs in ``spawn``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import termios
import time
from typing import TYPE_CHECKING, Any, NamedTuple

from ctl.closing import Closing
from ctl.errdefs import CtlError, InvalidArgument
from ctl.runtime import prctl
from ctl.runtime.state import ExitStatus
from ctl.runtime.supervisor import process
from ctl.runtime.supervisor.wire import Messages, decode_error

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from ctl.containers.container import RestartPolicy
    from ctl.runtime.health import HealthConfig
    from ctl.runtime.logs import LogConfig
    from ctl.runtime.runc import Runc, Stdio
    from ctl.runtime.taskdir import TaskDir

# docker's detach keys, ctrl-p ctrl-q (``run --detach-keys`` changes them).
DEFAULT_DETACH_KEYS = b"\x10\x11"
# Signals a foreground caller passes on to the container (SIGWINCH: resize).
FORWARDED_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGWINCH,
)


class TaskSpec(NamedTuple):
    """TaskSpec is what to run and how to hold its stdio.

    ``task`` is the task directory: its name is the runc id, its bundle what
    runs. ``tty`` and ``stdin`` are ``-t`` and ``-i``; ``tty`` must match the
    bundle's ``process.terminal``. ``attach`` are the caller's descriptors
    the supervisor copies the container's output to (and its stdin from)
    until the first exit; None is detached. A None field of ``attach`` is
    not copied. With a tty, typing ``detach_keys`` on the attached stdin
    lets the caller go while the task runs on (docker's ctrl-p ctrl-q).
    ``start`` False is ``runc create`` only: the caller later runs ``runc
    start`` itself (and ``task.set_status("start")``). ``log`` is the log
    driver and its options (None: json-file's defaults); ``health`` the
    health check the supervisor runs (None: none). ``on_event`` logs an
    event of the container (an action and attributes: die, oom, start,
    health_status) from the supervisor.
    """

    task: TaskDir
    tty: bool = False
    stdin: bool = False
    attach: Stdio | None = None
    restart: RestartPolicy | None = None
    start: bool = True
    log: LogConfig | None = None
    health: HealthConfig | None = None
    detach_keys: bytes = DEFAULT_DETACH_KEYS
    on_event: Callable[..., None] | None = None


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return None


class Spawned(Closing):
    """Spawned is a running task as its spawner sees it.

    ``wait`` blocks until the task exits; ``signal`` signals its init.
    Close it (or use it as a context manager) to release the descriptors and
    restore the caller's terminal if ``spawn`` put it in raw mode.
    """

    def __init__(
        self,
        supervisor_pid: int,
        init_pid: int,
        messages: Messages,
        tty_fd: int | None,
        tty_attrs: list[Any] | None,
    ) -> None:
        self.supervisor_pid = supervisor_pid
        self.init_pid = init_pid
        self._messages = messages
        self._tty_fd = tty_fd
        self._tty_attrs = tty_attrs
        self._init_fd = _pidfd(init_pid)
        self._supervisor_fd = _pidfd(supervisor_pid)
        self.exit_status: ExitStatus | None = None
        # The caller typed the detach keys: the task runs on without it.
        self.detached = False

    def signal(self, sig: int) -> None:
        """signal sends ``sig`` to the container's init; a gone init is not an error."""
        if self._init_fd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._init_fd, sig)

    def _forward(self, sig: int, frame: object) -> None:
        if sig == signal.SIGWINCH:
            # The supervisor holds the pty master: it copies the new size over.
            if self._tty_fd is not None and self._supervisor_fd is not None:
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(self._supervisor_fd, sig)
            return
        self.signal(sig)

    @contextlib.contextmanager
    def forwarding_signals(self) -> Iterator[None]:
        """forwarding_signals passes FORWARDED_SIGNALS on to the container while entered."""
        previous = {sig: signal.signal(sig, self._forward) for sig in FORWARDED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def wait(self, cleanup: bool = True, timeout: float | None = None) -> ExitStatus:
        """wait returns how the task exited (exit code None if the supervisor was lost,
        or if the caller detached: then ``detached`` is True and the task runs on).

        With ``cleanup`` it also waits until the supervisor finished its
        work after the exit (``runc delete``, ``on_exit``), unless the task
        is going to restart. After ``timeout`` seconds it raises TimeoutError.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            while self.exit_status is None:
                message = self._messages.next(deadline)
                if message is None:
                    self.exit_status = ExitStatus(exit_code=None)
                    return self.exit_status
                if message.get("detached"):
                    self.detached = True
                    return ExitStatus(exit_code=None)
                if "exit" in message:
                    self.exit_status = ExitStatus(**message["exit"])
                    if message.get("restarting"):
                        return self.exit_status
            if cleanup:
                while self._messages.next(deadline) is not None:
                    pass
            return self.exit_status
        finally:
            self._restore_terminal()

    def _restore_terminal(self) -> None:
        if self._tty_fd is not None and self._tty_attrs is not None:
            with contextlib.suppress(termios.error):
                termios.tcsetattr(self._tty_fd, termios.TCSADRAIN, self._tty_attrs)
            self._tty_attrs = None

    def close(self) -> None:
        self._restore_terminal()
        for fd in (self._messages.fd, self._init_fd, self._supervisor_fd):
            if fd is not None and fd >= 0:
                os.close(fd)
        self._messages.fd = self._init_fd = self._supervisor_fd = -1


def spawn(
    runc: Runc, spec: TaskSpec, on_exit: Callable[[ExitStatus], None] | None = None
) -> Spawned:
    """spawn starts a supervisor for ``spec`` and returns once the task runs.

    It raises what went wrong before that: ``ExecFailed`` (exit code 126 or
    127) when the command cannot be run, or another ``RuncError`` with runc's
    message. ``on_exit`` runs in the supervisor process, after the fork. It
    raises AlreadyExists when the task directory holds a task that has not
    stopped.
    """
    prctl.load()
    if spec.tty:
        # The supervisor needs it for the console socket; import before the fork.
        import socket  # noqa: F401
    if spec.log is not None and spec.log.compress:
        import gzip  # noqa: F401  (rotation compresses)
    if spec.health is not None:
        import ctl.runtime.health  # noqa: F401
    config = spec.task.read_config()
    if bool(config.get("process", {}).get("terminal", False)) != spec.tty:
        raise InvalidArgument(
            f"bundle {spec.task.bundle}: process.terminal does not match the task's tty={spec.tty}"
        )
    spec.task.path.mkdir(mode=0o700, parents=True, exist_ok=True)
    spec.task.reset()

    tty_fd, tty_attrs = None, None
    caller_stdin = (
        spec.attach.stdin if spec.attach is not None and spec.tty and spec.stdin else None
    )
    if caller_stdin is not None and os.isatty(caller_stdin):
        import tty

        tty_fd = caller_stdin
        tty_attrs = termios.tcgetattr(tty_fd)
        tty.setraw(tty_fd, termios.TCSANOW)
    try:
        read_fd, write_fd = os.pipe()
        child = os.fork()
        if child == 0:
            process.detach_and_supervise(runc, spec, config, write_fd, on_exit)
        os.close(write_fd)
        messages = Messages(read_fd)
        try:
            first = messages.next()
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            # After the first message, so that its cgroup move overlaps with runc.
            # (A caller that ignores SIGCHLD, or reaps every child, has no child to wait.)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(child, 0)
        if first is None or "error" in first:
            os.close(read_fd)
            if first is None:
                raise CtlError(
                    f"task {spec.task.id}: the supervisor exited before the task started",
                    hint=f"see {spec.task.supervisor_log}",
                )
            raise decode_error(first["error"])
        return Spawned(first["supervisor_pid"], first["pid"], messages, tty_fd, tty_attrs)
    except BaseException:
        if tty_fd is not None and tty_attrs is not None:
            termios.tcsetattr(tty_fd, termios.TCSADRAIN, tty_attrs)
        raise
