"""The supervisor: one small process per task, like podman's conmon.

``spawn`` forks the supervisor from the calling ctl process *without exec*
(about 8x faster than starting a new interpreter, and independent of how ctl
was packaged; see the pex study). Everything it needs is imported by this
module before the fork, and ``spawn`` must be called while the process has
no other threads. Through a double fork and ``setsid`` the supervisor ends up
in a session of its own, re-parented to init (or the nearest subreaper), and
then:

1. resets signal handlers and the signal mask, makes itself child subreaper
   and names itself ``ctl-sup-<id7>`` (python-prctl);
2. is moved into its own cgroup (``cgroups.enter_supervisor_cgroup``, by the
   first child, while the supervisor goes on), so that stopping the shell,
   job or service that ran ``ctl run -d`` leaves it be;
3. points every inherited descriptor at /dev/null, except the caller's
   stdio when attached, so ``x=$(ctl run -d ...)`` returns at once; its own
   stderr goes to ``<task_dir>/supervisor.log``;
4. runs ``prepare()`` (the caller's closure), then ``runc run --detach``
   (``runc create`` [+ ``runc start``] with ``--console-socket`` for a tty,
   or when ``start`` is False), the container's stdio being pipes it holds,
   or the pty master runc sends over the socket;
5. writes ``state.json`` and reports the init pid to ``spawn``, which
   returns; or reports runc's error, which ``spawn`` raises (``ExecFailed``
   with exit code 126/127 when the command cannot be run);
6. copies the container's output to the json-file log, and to the caller's
   descriptors while attached (and the caller's stdin to the container);
7. reaps the init (and orphans), drains the output, reads the OOM counter,
   runs ``runc delete``, writes ``exit.json`` and tells an attached caller;
8. restarts the task if the policy says so and nobody marked it
   ``stopping`` (backoff 100 ms, doubling, capped at a minute, reset after
   10 s of running); otherwise calls ``on_exit(status)`` (the caller's
   closure: ``--rm``, network teardown) and leaves with ``os._exit``.

Losing the supervisor: the container's init is *not* tied to the supervisor
(runc has no parent-death signal for it, and a container should not die with
its babysitter). A supervisor killed with SIGKILL therefore leaves a
container that nobody watches, logs or reaps; ``state.load_task`` reports
the task STOPPED with an unknown exit code, and removing it must go through
``runc delete --force`` (``delete_task``), which kills what is left.

Example (what ``ctl run --rm -it IMAGE sh`` does)::

    spawned = spawn(runc, TaskSpec(runc_id, bundle, task_dir, log_path, tty=True,
                                   stdin=True, attach=Stdio(0, 1, 2)),
                    on_exit=remove_container)
    with spawned, spawned.forwarding_signals():
        status = spawned.wait()
    return status.exit_code
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import select
import signal
import struct
import sys
import termios
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

from ctl import errdefs
from ctl.closing import Closing
from ctl.errdefs import EXIT_CTL_FAILURE, CtlError, InvalidArgument
from ctl.runtime import cgroups, prctl, state
from ctl.runtime.logs import DEFAULT_MAX_FILES, DEFAULT_MAX_SIZE, LogWriter
from ctl.runtime.runc import (
    CreateOpts,
    ExecFailed,
    RuncAlreadyExists,
    RuncError,
    RuncNotFound,
    Stdio,
)
from ctl.runtime.state import ExitStatus, Status

if TYPE_CHECKING:
    import socket
    from collections.abc import Callable, Iterator

    from ctl.runtime.runc import Runc
    from ctl.runtime.runopts import RestartPolicy

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
# After the init exits, output still buffered in the pipes is read for at most
# this long (only processes outside the container's pid namespace can hold
# the pipes open that long).
DRAIN_TIMEOUT = 2.0
RESTART_BACKOFF = 0.1
RESTART_BACKOFF_MAX = 60.0
# A task that ran this long restarts after the first backoff again.
RESTART_RESET_AFTER = 10.0
_CHUNK = 65536
# How long a new task, or a deletion, waits for a supervisor to finish.
SUPERVISOR_EXIT_TIMEOUT = 30.0
# How often a deletion that waits for a supervisor deletes the runc container again.
RUNC_DELETE_AGAIN = 1.0


class TaskSpec(NamedTuple):
    """TaskSpec is what to run and how to hold its stdio.

    ``tty`` and ``stdin`` are ``-t`` and ``-i``; ``tty`` must match the
    bundle's ``process.terminal``. ``attach`` are the caller's descriptors
    the supervisor copies the container's output to (and its stdin from)
    until the first exit; None is detached. A None field of ``attach`` is
    not copied. ``start`` False is ``runc create`` only: the caller later
    runs ``runc start`` itself (and ``state.set_status(task_dir, "start")``).
    """

    runc_id: str
    bundle: Path
    task_dir: Path
    log_path: Path
    tty: bool = False
    stdin: bool = False
    attach: Stdio | None = None
    restart: RestartPolicy | None = None
    start: bool = True
    log_max_size: int = DEFAULT_MAX_SIZE
    log_max_files: int = DEFAULT_MAX_FILES


def should_restart(
    policy: RestartPolicy | None, status: ExitStatus, restart_count: int, stopping: bool
) -> bool:
    """should_restart applies ``--restart`` to an exit, docker's way.

    A stop or kill by the user (the ``stopping`` marker) never restarts.
    ``on-failure:N`` allows N restarts (N 0: no bound).
    """
    if policy is None or stopping or policy.name == "no":
        return False
    if policy.name == "on-failure":
        failed = status.exit_code != 0
        return failed and (policy.max_retries == 0 or restart_count < policy.max_retries)
    return True


def supervisor_name(runc_id: str) -> str:
    """supervisor_name is what ps shows for the supervisor: 15 bytes, the kernel's limit."""
    return f"ctl-sup-{runc_id}"[: prctl.MAX_NAME]


def restart_delay(consecutive: int) -> float:
    return min(RESTART_BACKOFF * 2.0**consecutive, RESTART_BACKOFF_MAX)


# --- the wire between supervisor and caller: one JSON object a line -----------

_ERROR_CLASSES: dict[str, type[CtlError]] = {
    cls.__name__: cls
    for cls in (
        CtlError,
        errdefs.NotFound,
        errdefs.AlreadyExists,
        errdefs.InvalidArgument,
        errdefs.FailedPrecondition,
        errdefs.Unavailable,
        errdefs.Unimplemented,
        errdefs.DataCorrupted,
    )
}
_RUNC_ERROR_CLASSES: dict[str, type[RuncError]] = {
    cls.__name__: cls for cls in (RuncError, RuncNotFound, RuncAlreadyExists)
}


def _encode_error(err: BaseException) -> dict[str, Any]:
    if not isinstance(err, CtlError):
        return {"class": "CtlError", "message": f"supervisor: {type(err).__name__}: {err}"}
    out: dict[str, Any] = {"class": type(err).__name__, "message": str(err), "hint": err.hint}
    if isinstance(err, RuncError):
        out.update(status=err.status, stderr=err.stderr)
    if isinstance(err, ExecFailed):
        out["exit_code"] = err.exit_code
    return out


def _decode_error(data: dict[str, Any]) -> CtlError:
    name, message = str(data.get("class")), str(data.get("message"))
    if name == "ExecFailed":
        return ExecFailed(
            message,
            status=int(data.get("status", 1)),
            stderr=str(data.get("stderr", "")),
            exit_code=int(data["exit_code"]),
        )
    if name in _RUNC_ERROR_CLASSES:
        return _RUNC_ERROR_CLASSES[name](
            message, status=int(data.get("status", 1)), stderr=str(data.get("stderr", ""))
        )
    return _ERROR_CLASSES.get(name, CtlError)(message, hint=data.get("hint"))


def _exit_to_wire(status: ExitStatus) -> dict[str, Any]:
    return {
        "exit_code": status.exit_code,
        "signal": status.signal,
        "finished_at": status.finished_at,
        "oom": status.oom,
    }


class _Messages:
    """_Messages reads the JSON lines the supervisor writes; None at EOF."""

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


# --- the caller's side ----------------------------------------------------------


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
        messages: _Messages,
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
        """wait returns how the task exited (exit code None if the supervisor was lost).

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


def _bundle_config(spec: TaskSpec) -> dict[str, Any]:
    try:
        with open(spec.bundle / "config.json", "rb") as f:
            config: dict[str, Any] = json.load(f)
    except (OSError, ValueError) as err:
        raise InvalidArgument(f"bundle {spec.bundle}: cannot read config.json: {err}") from err
    if bool(config.get("process", {}).get("terminal", False)) != spec.tty:
        raise InvalidArgument(
            f"bundle {spec.bundle}: process.terminal does not match the task's tty={spec.tty}"
        )
    return config


def wait_for_supervisor(task_dir: Path, timeout: float = SUPERVISOR_EXIT_TIMEOUT) -> None:
    """wait_for_supervisor returns once the task's last supervisor is gone.

    A task is stopped once its exit is recorded, but its supervisor goes on
    to tear down the network and unmount the rootfs (``on_exit``): whatever
    sets them up again must wait for it. Unavailable after ``timeout``.
    """
    record = state.read_record(task_dir)
    if record is not None and not state.wait_supervisor_exit(record, timeout):
        raise errdefs.Unavailable(
            f"task {record['id']}: the supervisor of its last run is still finishing"
        )


def _reset_task_dir(task_dir: Path) -> None:
    """_reset_task_dir clears the records of an earlier task in ``task_dir``, once it is gone."""
    deadline = time.monotonic() + SUPERVISOR_EXIT_TIMEOUT
    while True:
        with state.task_lock(task_dir):
            task = state.load_task(task_dir)
            if task is not None and task.status is not Status.STOPPED:
                raise errdefs.AlreadyExists(f"task {task.id} is {task.status.value}")
            record = state.read_record(task_dir)
            if record is None or not state.supervisor_alive(record):
                for name in (state.STATE_FILE, state.EXIT_FILE, state.STOPPING_FILE):
                    (task_dir / name).unlink(missing_ok=True)
                return
        wait_for_supervisor(task_dir, deadline - time.monotonic())


def cleanup_lost_task(runc: Runc, runc_id: str) -> None:
    """cleanup_lost_task removes what a lost supervisor left: the runc container and its cgroup.

    It kills the container if it still runs. Nothing left is not an error.
    """
    with contextlib.suppress(RuncNotFound):
        runc.delete(runc_id, force=True)
    cgroups.remove_supervisor_cgroup(runc_id)


def delete_task(
    runc: Runc, runc_id: str, task_dir: Path, timeout: float = SUPERVISOR_EXIT_TIMEOUT
) -> None:
    """delete_task gets rid of a task in any state: ``rm -f``, or ``rm`` after trouble.

    It marks the task stopping (so it is not restarted), kills and deletes the
    runc container if there is one, waits for the supervisor to finish
    (unless the caller *is* the supervisor: an ``on_exit`` doing ``--rm``),
    then runs ``cleanup_lost_task`` and removes the task's records.
    Files it does not own (the log, a bundle) stay: ``task_dir`` itself is
    removed only if that leaves it empty. Nothing to delete is not an error.
    A supervisor that does not finish within ``timeout`` (stuck in a CNI
    plugin, say) is killed: what it had left to clean up is done here and
    by the caller.
    """
    record = state.read_record(task_dir)
    if record is not None and record["supervisor_pid"] == os.getpid():
        # Called by the supervisor's own on_exit (--rm): it ran runc delete
        # before exit.json and will not restart, so runc has nothing left.
        for name in state.RECORD_FILES:
            (task_dir / name).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            task_dir.rmdir()
        return
    if task_dir.is_dir():
        state.mark_stopping(task_dir)
    deadline = time.monotonic() + timeout
    while True:
        # Again while waiting: a supervisor in the middle of a restart may have
        # started a new init after the first kill.
        with contextlib.suppress(RuncNotFound):
            runc.delete(runc_id, force=True)
        if record is None:
            break
        left = deadline - time.monotonic()
        if state.wait_supervisor_exit(record, min(RUNC_DELETE_AGAIN, left), kill=left <= 0):
            break
        if left <= 0:
            raise errdefs.Unavailable(f"task {runc_id}: its supervisor does not die")
    cleanup_lost_task(runc, runc_id)
    for name in state.RECORD_FILES:
        (task_dir / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        task_dir.rmdir()


def spawn(
    runc: Runc,
    spec: TaskSpec,
    on_exit: Callable[[ExitStatus], None] | None = None,
    prepare: Callable[[], None] | None = None,
) -> Spawned:
    """spawn starts a supervisor for ``spec`` and returns once the task runs.

    It raises what went wrong before that: ``ExecFailed`` (exit code 126 or
    127) when the command cannot be run, another ``RuncError`` with runc's
    message, or what ``prepare`` raised. ``on_exit`` and ``prepare`` run in
    the supervisor process, after the fork. It raises AlreadyExists when the
    task directory holds a task that has not stopped.
    """
    prctl.load()
    if spec.tty:
        # The supervisor needs it for the console socket; import before the fork.
        import socket  # noqa: F401
    config = _bundle_config(spec)
    spec.task_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    _reset_task_dir(spec.task_dir)

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
            _detach_and_supervise(runc, spec, config, write_fd, on_exit, prepare)
        os.close(write_fd)
        messages = _Messages(read_fd)
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
                    f"task {spec.runc_id}: the supervisor exited before the task started",
                    hint=f"see {spec.task_dir / state.SUPERVISOR_LOG}",
                )
            raise _decode_error(first["error"])
        return Spawned(first["supervisor_pid"], first["pid"], messages, tty_fd, tty_attrs)
    except BaseException:
        if tty_fd is not None and tty_attrs is not None:
            termios.tcsetattr(tty_fd, termios.TCSADRAIN, tty_attrs)
        raise


# --- the supervisor's side ------------------------------------------------------


def _detach_and_supervise(
    runc: Runc,
    spec: TaskSpec,
    config: dict[str, Any],
    status_fd: int,
    on_exit: Callable[[ExitStatus], None] | None,
    prepare: Callable[[], None] | None,
) -> NoReturn:
    """_detach_and_supervise runs in the first child: it never returns to the caller's code."""
    code = EXIT_CTL_FAILURE
    try:
        os.setsid()
        # The second fork leaves the supervisor without a parent to reap it
        # (init adopts it), and, not being a session leader, it can never
        # acquire a controlling terminal.
        supervisor = os.fork()
        if supervisor == 0:
            _Supervisor(runc, spec, config, status_fd, on_exit, prepare).run()
        # Moving a process between cgroups takes milliseconds (the kernel waits
        # for an RCU grace period): done from here, it overlaps with the
        # supervisor's runc call instead of delaying it.
        cgroups.enter_supervisor_cgroup(spec.runc_id, supervisor)
        code = 0
    finally:
        os._exit(code)


def _send(fd: int, message: dict[str, Any]) -> None:
    # The caller may be gone (detached, or killed): that is not the supervisor's problem.
    with contextlib.suppress(OSError):
        os.write(fd, json.dumps(message).encode() + b"\n")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _winsize(fd: int) -> bytes | None:
    try:
        return fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return None


class _Supervisor:
    """_Supervisor is the supervisor process's state; ``run`` never returns."""

    def __init__(
        self,
        runc: Runc,
        spec: TaskSpec,
        config: dict[str, Any],
        status_fd: int,
        on_exit: Callable[[ExitStatus], None] | None,
        prepare: Callable[[], None] | None,
    ) -> None:
        self.runc = runc
        self.spec = spec
        self.cgroups_path = str(config.get("linux", {}).get("cgroupsPath", ""))
        self.status_fd = status_fd
        self.reported = False
        self.master: int | None = None
        self.on_exit = on_exit
        self.prepare = prepare
        self.caller: dict[str, int] = {}
        self.restart_count = 0
        self.init_pid = 0
        self.exit: ExitStatus | None = None

    # setup

    def _reset_signals(self) -> None:
        for sig in signal.valid_signals():
            if sig in (signal.SIGKILL, signal.SIGSTOP):
                continue
            with contextlib.suppress(OSError, ValueError):
                signal.signal(sig, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, ())
        # A caller that stopped reading must not kill us: EPIPE drops that sink.
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)

    def _take_fds(self) -> None:
        """_take_fds keeps what the supervisor needs and points every other descriptor at /dev/null.

        Overwriting instead of closing keeps the caller's descriptor numbers
        taken, so a Python file object of the caller that the garbage collector
        finalizes later closes a /dev/null copy, never a descriptor of ours.
        """
        attach = self.spec.attach
        if attach is not None:
            wanted = {"stdin": attach.stdin if self.spec.stdin else None}
            wanted |= {"stdout": attach.stdout, "stderr": attach.stderr}
            self.caller = {name: os.dup(fd) for name, fd in wanted.items() if fd is not None}
        log_fd = os.open(
            self.spec.task_dir / state.SUPERVISOR_LOG,
            os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
            0o640,
        )
        keep = {self.status_fd, *self.caller.values(), log_fd}
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd not in keep and fd != null:
                with contextlib.suppress(OSError):
                    os.dup2(null, fd, inheritable=fd < 3)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        self.null = null
        # The caller's sys.stdout and sys.stderr may be anything (a test runner's
        # capture buffer): the supervisor's own messages go to its log.
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115

    def _setup(self) -> None:
        self._reset_signals()
        self._take_fds()
        # A caller that never reads must not block us: messages are small, and dropped.
        os.set_blocking(self.status_fd, False)
        if self.runc.debug:
            self.runc.trace = self._trace
        prctl.set_child_subreaper()
        prctl.set_name(supervisor_name(self.spec.runc_id))
        self.wakeup_r, self.wakeup_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self.wakeup_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda sig, frame: None)
        if self.spec.tty and self._caller_tty() is not None:
            signal.signal(signal.SIGWINCH, lambda sig, frame: None)
        self.log = LogWriter(self.spec.log_path, self.spec.log_max_size, self.spec.log_max_files)

    def _caller_tty(self) -> int | None:
        for name in ("stdin", "stdout"):
            fd = self.caller.get(name)
            if fd is not None and os.isatty(fd):
                return fd
        return None

    # one run of the container

    def _start(self) -> tuple[dict[int, str], int | None]:
        """_start creates (and starts) the container; returns its output fds and its stdin."""
        spec = self.spec
        pid_file = spec.task_dir / state.PID_FILE
        pid_file.unlink(missing_ok=True)
        if spec.tty:
            master = self._start_with_console(CreateOpts(pid_file=pid_file))
            outputs, stdin = {master: "stdout"}, master if spec.stdin else None
        else:
            stdin_r, stdin = os.pipe() if spec.stdin else (self.null, None)
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            stdio = Stdio(stdin_r, out_w, err_w)
            opts = CreateOpts(pid_file=pid_file)
            try:
                if spec.start:
                    self.runc.run(spec.runc_id, spec.bundle, opts, stdio)
                else:
                    self.runc.create(spec.runc_id, spec.bundle, opts, stdio)
            except BaseException:
                for fd in (out_r, err_r, *([stdin_r, stdin] if stdin is not None else [])):
                    os.close(fd)
                raise
            finally:
                os.close(out_w)
                os.close(err_w)
            if stdin is not None:
                os.close(stdin_r)
            outputs = {out_r: "stdout", err_r: "stderr"}
        self.init_pid = int(pid_file.read_text())
        return outputs, stdin

    def _start_with_console(self, opts: CreateOpts) -> int:
        import socket  # loaded by spawn before the fork

        name = f"ctl-console-{os.getpid()}-{self.spec.runc_id[:16]}"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            listener.bind("\0" + name)
            listener.listen(1)
            # A name in the abstract namespace (runc dials "@name" as such): no
            # file to clean up and no 108-byte path limit to respect.
            console = CreateOpts(pid_file=opts.pid_file, console_socket=Path(f"@{name}"))
            self.runc.create(
                self.spec.runc_id, self.spec.bundle, console, Stdio(self.null, self.null, self.null)
            )
            master = self._receive_master(listener)
        finally:
            listener.close()
        tty_fd = self._caller_tty()
        size = _winsize(tty_fd) if tty_fd is not None else None
        if size is not None:
            fcntl.ioctl(master, termios.TIOCSWINSZ, size)
        if self.spec.start:
            try:
                self.runc.start(self.spec.runc_id)
            except BaseException:
                os.close(master)
                with contextlib.suppress(RuncError):
                    self.runc.delete(self.spec.runc_id, force=True)
                raise
        return master

    def _receive_master(self, listener: socket.socket) -> int:
        import socket  # loaded by spawn before the fork

        # runc has exited successfully: its connection and message are queued.
        listener.settimeout(5)
        conn, _ = listener.accept()
        with conn:
            creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            _, uid, _ = struct.unpack("3i", creds)
            if uid != os.getuid():
                raise CtlError(f"console socket: connection from uid {uid}, not from runc")
            _, fds, _, _ = socket.recv_fds(conn, 4096, 1)
        if not fds:
            raise CtlError("console socket: runc sent no terminal")
        os.set_blocking(fds[0], True)
        return fds[0]

    def _reap(self) -> None:
        while True:
            try:
                pid, wait_status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.init_pid and self.exit is None:
                self.exit = ExitStatus.from_wait_status(wait_status)

    def _pump(self, outputs: dict[int, str], stdin: int | None) -> None:
        """_pump copies stdio until the init has exited and its output is drained.

        With a tty, ``stdin`` is the pty master, which is also the one output.
        """
        poller = select.poll()
        poller.register(self.wakeup_r, select.POLLIN)
        for fd in outputs:
            poller.register(fd, select.POLLIN)
        caller_in = self.caller.get("stdin") if stdin is not None else None
        if caller_in is not None:
            poller.register(caller_in, select.POLLIN)
        deadline = None
        self._reap()
        while outputs or self.exit is None:
            if self.exit is not None and deadline is None:
                deadline = time.monotonic() + DRAIN_TIMEOUT
            timeout = None if deadline is None else int((deadline - time.monotonic()) * 1000)
            if timeout is not None and timeout <= 0:
                break
            for fd, _ in poller.poll(timeout):
                if fd == self.wakeup_r:
                    self._on_signals()
                elif fd in outputs:
                    data = self._read(fd)
                    if data:
                        self._output(outputs.get(fd, "stdout"), data)
                        continue
                    poller.unregister(fd)
                    os.close(fd)
                    del outputs[fd]
                    if fd == stdin:
                        stdin = None
                        if caller_in is not None:
                            poller.unregister(caller_in)
                            caller_in = None
                elif fd == caller_in and stdin is not None:
                    data = self._read(fd)
                    if data and self._input(stdin, data):
                        continue
                    poller.unregister(fd)
                    caller_in = None
                    if not self.spec.tty:
                        # EOF from the caller is EOF for the container.
                        os.close(stdin)
                        stdin = None
        for fd in outputs:
            os.close(fd)
        if stdin is not None and stdin not in outputs:
            os.close(stdin)

    def _on_signals(self) -> None:
        with contextlib.suppress(BlockingIOError):
            received = os.read(self.wakeup_r, 512)
            if signal.SIGWINCH in received:
                self._resize()
        self._reap()

    def _resize(self) -> None:
        tty_fd = self._caller_tty()
        size = _winsize(tty_fd) if tty_fd is not None else None
        if size is not None and self.master is not None:
            with contextlib.suppress(OSError):
                fcntl.ioctl(self.master, termios.TIOCSWINSZ, size)

    @staticmethod
    def _read(fd: int) -> bytes:
        try:
            return os.read(fd, _CHUNK)
        except OSError as err:
            # A pty master reads EIO once every slave is closed: that is its EOF.
            if err.errno in (errno.EIO, errno.EBADF):
                return b""
            raise

    def _output(self, stream: str, data: bytes) -> None:
        self.log.write(stream, data)
        fd = self.caller.get(stream)
        if fd is None:
            return
        try:
            _write_all(fd, data)
        except OSError:
            # The caller's reader went away: keep logging, stop copying.
            os.close(self.caller.pop(stream))

    def _input(self, stdin: int, data: bytes) -> bool:
        try:
            _write_all(stdin, data)
        except OSError:
            return False
        return True

    def _trace(self, line: str) -> None:
        """_trace logs a runc command line and hands it to the caller (``--debug``)."""
        print(line, file=sys.stderr, flush=True)
        if self.status_fd >= 0:
            _send(self.status_fd, {"debug": line})

    def _release_caller(self) -> None:
        """_release_caller closes the caller's descriptors: ``$(ctl run ...)`` sees EOF."""
        for fd in self.caller.values():
            os.close(fd)
        self.caller = {}

    # the whole life

    def _run_once(self) -> None:
        outputs, stdin = self._start()
        self.master = next(iter(outputs)) if self.spec.tty else None
        if self.restart_count == 0:
            status = Status.RUNNING if self.spec.start else Status.CREATED
            record = state.new_record(
                self.spec.runc_id, self.init_pid, status, self.spec.bundle, self.spec.log_path
            )
            with state.task_lock(self.spec.task_dir):
                state.write_record(self.spec.task_dir, record)
            _send(self.status_fd, {"pid": self.init_pid, "supervisor_pid": os.getpid()})
            self.reported = True
        else:
            state.update_record(
                self.spec.task_dir,
                pid=self.init_pid,
                status=Status.RUNNING.value,
                started_at=time.time(),
                restart_count=self.restart_count,
            )
        self._pump(outputs, stdin)
        self.master = None

    def _finish_run(self) -> ExitStatus:
        """_finish_run records the exit: delete the runc container, write exit.json."""
        self.log.flush()
        exit_status = self.exit
        # The init is our child (we are its subreaper): _pump returns once it is reaped.
        assert exit_status is not None
        if cgroups.oom_killed(self.cgroups_path):
            exit_status = ExitStatus(
                exit_status.exit_code, exit_status.signal, exit_status.finished_at, oom=True
            )
        try:
            self.runc.delete(self.spec.runc_id)
        except RuncNotFound:
            pass
        except RuncError:
            with contextlib.suppress(RuncError):
                self.runc.delete(self.spec.runc_id, force=True)
        state.write_exit(self.spec.task_dir, exit_status)
        return exit_status

    def _backoff(self, consecutive: int) -> bool:
        """_backoff sleeps before a restart; False if a stop came meanwhile."""
        deadline = time.monotonic() + restart_delay(consecutive)
        while (left := deadline - time.monotonic()) > 0:
            if state.is_stopping(self.spec.task_dir):
                return False
            time.sleep(min(left, 0.05))
        return not state.is_stopping(self.spec.task_dir)

    def run(self) -> NoReturn:
        code = 0
        try:
            self._setup()
            if self.prepare is not None:
                self.prepare()
            self._supervise()
        except BaseException as err:
            code = 1
            if not self.reported:
                _send(self.status_fd, {"error": _encode_error(err)})
                if self.init_pid:
                    # Started, but not handed over: nobody would ever watch it.
                    with contextlib.suppress(BaseException):
                        self.runc.delete(self.spec.runc_id, force=True)
            if not isinstance(err, CtlError):
                import traceback

                traceback.print_exc()
            else:
                print(f"ctl-sup {self.spec.runc_id}: {err}", file=sys.stderr)
        finally:
            sys.stderr.flush()
            # EOF for a waiting caller now; leaving the cgroup is slow and ours alone.
            os.close(self.status_fd)
            self.status_fd = -1
            with contextlib.suppress(Exception):
                cgroups.leave_supervisor_cgroup(self.spec.runc_id)
            os._exit(code)

    def _supervise(self) -> None:
        consecutive = 0
        while True:
            started = time.monotonic()
            self.exit = None
            try:
                self._run_once()
                exit_status = self._finish_run()
            except RuncError as err:
                if self.restart_count == 0:
                    raise
                # A restart that cannot start ends the task, as a failed first start would.
                print(f"ctl-sup {self.spec.runc_id}: restart: {err}", file=sys.stderr)
                exit_status = ExitStatus(err.exit_code, finished_at=time.time())
                state.write_exit(self.spec.task_dir, exit_status)
                restarting = False
            else:
                restarting = should_restart(
                    self.spec.restart,
                    exit_status,
                    self.restart_count,
                    state.is_stopping(self.spec.task_dir),
                )
            _send(self.status_fd, {"exit": _exit_to_wire(exit_status), "restarting": restarting})
            # An attached caller is attached to the first run only.
            self._release_caller()
            if restarting:
                consecutive = 0 if time.monotonic() - started > RESTART_RESET_AFTER else consecutive
                if self._backoff(consecutive):
                    consecutive += 1
                    self.restart_count += 1
                    state.clear_exit(self.spec.task_dir)
                    continue
            break
        self.log.close()
        if self.on_exit is not None:
            try:
                self.on_exit(exit_status)
            except Exception:
                print(f"ctl-sup {self.spec.runc_id}: on_exit failed:", file=sys.stderr)
                import traceback

                traceback.print_exc()
