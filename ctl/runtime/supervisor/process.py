"""The supervisor process: what runs after ``spawn``'s fork, until ``os._exit``.

Nothing here returns to the spawner's code. The steps are the package
docstring's; ``_Supervisor.run`` is the whole life of one supervisor.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import signal
import struct
import sys
import termios
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from ctl.errdefs import EXIT_CTL_FAILURE, CtlError
from ctl.fsutil import write_all
from ctl.runtime import cgroups, prctl, state
from ctl.runtime.logs import container_log_writer
from ctl.runtime.runc import CreateOpts, RuncError, RuncNotFound, Stdio
from ctl.runtime.state import ExitStatus, Status
from ctl.runtime.supervisor.attach import Attachments, DetachKeys, winsize
from ctl.runtime.supervisor.policy import restart_policy
from ctl.runtime.supervisor.wire import encode_error, exit_message, send

if TYPE_CHECKING:
    import socket
    from collections.abc import Callable

    from ctl.containers.container import RestartPolicy
    from ctl.runtime.health import HealthMonitor
    from ctl.runtime.runc import Runc
    from ctl.runtime.supervisor.spawn import TaskSpec

# After the init exits, output still buffered in the pipes is read for at most
# this long (only processes outside the container's pid namespace can hold
# the pipes open that long).
DRAIN_TIMEOUT = 2.0
RESTART_BACKOFF = 0.1
RESTART_BACKOFF_MAX = 60.0
# A task that ran this long restarts after the first backoff again.
RESTART_RESET_AFTER = 10.0
# How often a record the disk had no room for is tried again (exit.json), and
# how often the count of dropped log lines is written to state.json at most.
WRITE_RETRY = 0.5
_CHUNK = 65536


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


def detach_and_supervise(
    runc: Runc,
    spec: TaskSpec,
    config: dict[str, Any],
    status_fd: int,
    on_exit: Callable[[ExitStatus], None] | None,
) -> NoReturn:
    """detach_and_supervise runs in the first child: it never returns to the caller's code."""
    code = EXIT_CTL_FAILURE
    try:
        os.setsid()
        # The second fork leaves the supervisor without a parent to reap it
        # (init adopts it), and, not being a session leader, it can never
        # acquire a controlling terminal.
        supervisor = os.fork()
        if supervisor == 0:
            _Supervisor(runc, spec, config, status_fd, on_exit).run()
        # Moving a process between cgroups takes milliseconds (the kernel waits
        # for an RCU grace period): done from here, it overlaps with the
        # supervisor's runc call instead of delaying it.
        cgroups.enter_supervisor_cgroup(spec.task.id, supervisor)
        code = 0
    finally:
        os._exit(code)


class _DroppingWriter:
    """_DroppingWriter is the supervisor's stderr: what cannot be written (a full disk) is dropped.

    The supervisor must outlive any write error; its own log is the least of them.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def write(self, text: str) -> int:
        with contextlib.suppress(OSError):
            write_all(self._fd, text.encode(errors="replace"))
        return len(text)

    def flush(self) -> None:
        pass


class _Supervisor:
    """_Supervisor is the supervisor process's state; ``run`` never returns."""

    def __init__(
        self,
        runc: Runc,
        spec: TaskSpec,
        config: dict[str, Any],
        status_fd: int,
        on_exit: Callable[[ExitStatus], None] | None,
    ) -> None:
        self.runc = runc
        self.spec = spec
        self.task = spec.task
        self.config = config
        self.cgroups_path = str(config.get("linux", {}).get("cgroupsPath", ""))
        self.status_fd = status_fd
        self.reported = False
        self.master: int | None = None
        self.on_exit = on_exit
        self.caller: dict[str, int] = {}
        self.restart_count = 0
        self.init_pid = 0
        self.exit: ExitStatus | None = None
        # Log lines lost to write errors, and the count state.json last got.
        self.dropped = 0
        self.dropped_recorded = 0
        self.dropped_recorded_at = 0.0
        # The detach keys typed so far are held back from the container.
        self.detach_keys = DetachKeys(spec.detach_keys)
        # Clients attached later (``attach``): a listener in the poll loop.
        self.attachments: Attachments | None = None
        self.health: HealthMonitor | None = None

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
        try:
            log_fd = os.open(
                self.task.supervisor_log,
                os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                0o640,
            )
        except OSError:
            log_fd = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)  # a full disk: no post-mortem
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
        sys.stdout = _DroppingWriter(1)
        sys.stderr = _DroppingWriter(2)

    def _setup(self) -> None:
        self._reset_signals()
        self._take_fds()
        # A caller that never reads must not block us: messages are small, and dropped.
        os.set_blocking(self.status_fd, False)
        if self.runc.debug:
            self.runc.trace = self._trace
        prctl.set_child_subreaper()
        prctl.set_name(supervisor_name(self.task.id))
        self.wakeup_r, self.wakeup_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self.wakeup_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda sig, frame: None)
        if self.spec.tty and self._caller_tty() is not None:
            signal.signal(signal.SIGWINCH, lambda sig, frame: None)
        self.log = container_log_writer(self.task.log, self.spec.log)
        try:
            self.attachments = Attachments(self.task.path)
        except OSError as err:  # the task runs on, without attaches
            print(f"ctl-sup {self.task.id}: attach: {err}", file=sys.stderr)
        if self.spec.health is not None:
            from ctl.runtime.health import HealthMonitor  # imported by spawn

            self.health = HealthMonitor(
                self.spec.health,
                self.task.path,
                self.runc.argv,
                self.task.id,
                self.config.get("process", {}),
                self._running,
                on_status=self._health_status,
            )

    def _running(self) -> bool:
        record = self.task.read_record()
        return record is not None and record.get("status") == Status.RUNNING.value

    def _health_status(self, status: str) -> None:
        self._event(f"health_status: {status}")

    def _event(self, action: str, **attributes: str) -> None:
        if self.spec.on_event is not None:
            self.spec.on_event(action, **attributes)

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
        pid_file = spec.task.pid_file
        spec.task.clear_pid_file()
        try:
            outputs, stdin = self._create(pid_file)
        except BaseException:
            spec.task.clear_pid_file()
            raise
        self.init_pid = int(pid_file.read_text())
        return outputs, stdin

    def _create(self, pid_file: Path) -> tuple[dict[int, str], int | None]:
        spec = self.spec
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
                    self.runc.run(spec.task.id, spec.task.bundle, opts, stdio)
                else:
                    self.runc.create(spec.task.id, spec.task.bundle, opts, stdio)
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
        return outputs, stdin

    def _start_with_console(self, opts: CreateOpts) -> int:
        import socket  # loaded by spawn before the fork

        name = f"ctl-console-{os.getpid()}-{self.task.id[:16]}"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            listener.bind("\0" + name)
            listener.listen(1)
            # A name in the abstract namespace (runc dials "@name" as such): no
            # file to clean up and no 108-byte path limit to respect.
            console = CreateOpts(pid_file=opts.pid_file, console_socket=Path(f"@{name}"))
            self.runc.create(
                self.task.id, self.task.bundle, console, Stdio(self.null, self.null, self.null)
            )
            master = self._receive_master(listener)
        finally:
            listener.close()
        tty_fd = self._caller_tty()
        size = winsize(tty_fd) if tty_fd is not None else None
        if size is not None:
            fcntl.ioctl(master, termios.TIOCSWINSZ, size)
        if self.spec.start:
            try:
                self.runc.start(self.task.id)
            except BaseException:
                os.close(master)
                with contextlib.suppress(RuncError):
                    self.runc.delete(self.task.id, force=True)
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
            elif self.health is not None:
                self.health.reaped(pid, wait_status)

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
        attachments = self.attachments
        if attachments is not None:
            attachments.register(poller)
        deadline = None
        health = self.health
        health_fd: int | None = None
        if health is not None:
            health.begin()
        self._reap()
        while outputs or self.exit is None:
            if self.exit is not None and deadline is None:
                deadline = time.monotonic() + DRAIN_TIMEOUT
                if health is not None:
                    health.end()
                    health = None
                    if health_fd is not None:
                        poller.unregister(health_fd)
                        health_fd = None
            timeout = None if deadline is None else int((deadline - time.monotonic()) * 1000)
            if timeout is not None and timeout <= 0:
                break
            if health is not None:
                health_fd = self._watch_health(health, poller, health_fd)
                wait = health.timeout(time.monotonic())
                if wait is not None:
                    # Rounded up: a poll that wakes early would only spin.
                    timeout = int(wait * 1000) + 1
            for fd, _ in poller.poll(timeout):
                if fd == health_fd and health is not None:
                    health.read_output()
                elif fd == self.wakeup_r:
                    self._on_signals()
                elif attachments is not None and attachments.owns(fd):
                    attachments.handle(fd, stdin, self.master)
                elif fd in outputs:
                    data = self._read(fd)
                    if data and self._output(outputs.get(fd, "stdout"), data):
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
                    if data and self.spec.tty and self.spec.detach_keys:
                        data, detached = self.detach_keys.scan(data)
                        if detached:
                            self._input(stdin, data)
                            self._detach_caller()
                            poller.unregister(fd)
                            caller_in = None
                            continue
                        if not data:
                            continue  # held back: not EOF
                    if data and self._input(stdin, data):
                        continue
                    poller.unregister(fd)
                    caller_in = None
                    if not self.spec.tty:
                        # EOF from the caller is EOF for the container.
                        os.close(stdin)
                        stdin = None
        if health is not None:
            health.end()
        for fd in outputs:
            os.close(fd)
        if stdin is not None and stdin not in outputs:
            os.close(stdin)

    @staticmethod
    def _watch_health(
        health: HealthMonitor, poller: select.poll, watched: int | None
    ) -> int | None:
        """_watch_health runs the check's due work and polls the output of the one running."""
        health.tick(time.monotonic())
        fd = health.output_fd()
        if fd != watched:
            if watched is not None:
                with contextlib.suppress(KeyError, ValueError):
                    poller.unregister(watched)
            if fd is not None:
                poller.register(fd, select.POLLIN)
        return fd

    def _on_signals(self) -> None:
        with contextlib.suppress(BlockingIOError):
            received = os.read(self.wakeup_r, 512)
            if signal.SIGWINCH in received:
                self._resize()
        self._reap()

    def _resize(self) -> None:
        tty_fd = self._caller_tty()
        size = winsize(tty_fd) if tty_fd is not None else None
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

    def _output(self, stream: str, data: bytes) -> bool:
        """_output logs ``data`` and copies it to the caller; False closes the container's stream.

        A caller whose reader went away (``ctl run IMAGE yes | head -1``)
        passes that on, as a pipe would: the container's own stream is
        closed, so its next write gets SIGPIPE (or EPIPE).
        """
        self._log(lambda: self.log.write(stream, data), data.count(b"\n") or 1)
        if self.attachments is not None:
            self.attachments.output(stream, data)
        fd = self.caller.get(stream)
        if fd is None:
            return True
        try:
            write_all(fd, data)
        except OSError as err:
            # Stop copying; keep logging unless the reader is gone.
            os.close(self.caller.pop(stream))
            return err.errno != errno.EPIPE
        return True

    def _log(self, write: Callable[[], None], lines: int) -> None:
        """_log runs a write to the container's log; what fails is counted as dropped lines.

        The count goes to ``state.json`` (``log_lines_dropped``) once it can,
        at most every WRITE_RETRY seconds: ``inspect`` and ``logs`` report it.
        """
        try:
            write()
        except OSError:
            self.dropped += lines
        self._record_dropped(force=False)

    def _record_dropped(self, force: bool) -> None:
        if self.dropped == self.dropped_recorded or not self.reported:
            return
        now = time.monotonic()
        if not force and now - self.dropped_recorded_at < WRITE_RETRY:
            return
        self.dropped_recorded_at = now
        count = self.dropped
        with contextlib.suppress(OSError, CtlError):
            self.task.update_record(log_lines_dropped=count)
            self.dropped_recorded = count

    def _write_exit(self, exit_status: ExitStatus) -> None:
        """_write_exit records the exit, retrying while the disk is full.

        The status stays in this process's memory until it is written: the
        task reads as running meanwhile (its process is gone, which ``stop``
        checks by its cgroup).
        """
        while True:
            try:
                self.task.write_exit(exit_status)
                return
            except (OSError, CtlError) as err:
                print(f"ctl-sup {self.task.id}: {err}", file=sys.stderr)
            time.sleep(WRITE_RETRY)

    def _input(self, stdin: int, data: bytes) -> bool:
        try:
            write_all(stdin, data)
        except OSError:
            return False
        return True

    def _trace(self, line: str) -> None:
        """_trace logs a runc command line and hands it to the caller (``--debug``)."""
        print(line, file=sys.stderr, flush=True)
        if self.status_fd >= 0:
            send(self.status_fd, {"debug": line})

    def _detach_caller(self) -> None:
        """_detach_caller lets an attached caller go; the container runs on, logged."""
        send(self.status_fd, {"detached": True})
        self._release_caller()

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
                self.task.id, self.init_pid, status, self.task.bundle, self.task.log
            )
            with self.task.lock():
                self.task.write_record(record)
            send(self.status_fd, {"pid": self.init_pid, "supervisor_pid": os.getpid()})
            self.reported = True
        else:
            try:
                self.task.update_record(
                    pid=self.init_pid,
                    init_start_time=state.process_start_time(self.init_pid),
                    status=Status.RUNNING.value,
                    started_at=time.time(),
                    restart_count=self.restart_count,
                )
            except (OSError, CtlError) as err:
                # The new run goes on; its record shows the last run until the disk has room.
                print(f"ctl-sup {self.task.id}: restart: {err}", file=sys.stderr)
            self._event("start")
        self._pump(outputs, stdin)
        self.master = None

    def _finish_run(self) -> ExitStatus:
        """_finish_run records the exit: delete the runc container, write exit.json."""
        self._log(self.log.flush, 1)
        exit_status = self.exit
        # The init is our child (we are its subreaper): _pump returns once it is reaped.
        assert exit_status is not None
        if cgroups.oom_killed(self.cgroups_path):
            exit_status = ExitStatus(
                exit_status.exit_code, exit_status.signal, exit_status.finished_at, oom=True
            )
            self._event("oom")
        try:
            self.runc.delete(self.task.id)
        except RuncNotFound:
            pass
        except RuncError:
            with contextlib.suppress(RuncError):
                self.runc.delete(self.task.id, force=True)
        self._write_exit(exit_status)
        self._record_dropped(force=True)
        code = exit_status.exit_code
        self._event("die", exitCode=str(code if code is not None else -1))
        return exit_status

    def _backoff(self, consecutive: int) -> bool:
        """_backoff sleeps before a restart; False if a stop came meanwhile."""
        deadline = time.monotonic() + restart_delay(consecutive)
        while (left := deadline - time.monotonic()) > 0:
            if self.task.is_stopping():
                return False
            time.sleep(min(left, 0.05))
        return not self.task.is_stopping()

    def run(self) -> NoReturn:
        code = 0
        try:
            self._setup()
            self._supervise()
        except BaseException as err:
            code = 1
            if not self.reported:
                send(self.status_fd, {"error": encode_error(err)})
                if self.init_pid:
                    # Started, but not handed over: nobody would ever watch it.
                    with contextlib.suppress(BaseException):
                        self.runc.delete(self.task.id, force=True)
            if not isinstance(err, CtlError):
                import traceback

                traceback.print_exc()
            else:
                print(f"ctl-sup {self.task.id}: {err}", file=sys.stderr)
        finally:
            sys.stderr.flush()
            # EOF for a waiting caller now; leaving the cgroup is slow and ours alone.
            os.close(self.status_fd)
            self.status_fd = -1
            with contextlib.suppress(Exception):
                cgroups.leave_supervisor_cgroup(self.task.id)
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
                print(f"ctl-sup {self.task.id}: restart: {err}", file=sys.stderr)
                exit_status = ExitStatus(err.exit_code, finished_at=time.time())
                self._write_exit(exit_status)
                restarting = False
            else:
                restarting = should_restart(
                    restart_policy(self.task, self.spec.restart),
                    exit_status,
                    self.restart_count,
                    self.task.is_stopping(),
                )
            send(self.status_fd, exit_message(exit_status, restarting))
            if self.attachments is not None:
                self.attachments.exited(exit_status, restarting)
            # An attached caller is attached to the first run only.
            self._release_caller()
            if restarting:
                consecutive = 0 if time.monotonic() - started > RESTART_RESET_AFTER else consecutive
                if self._backoff(consecutive):
                    consecutive += 1
                    self.restart_count += 1
                    self.task.clear_exit()
                    continue
            break
        self._log(self.log.close, 1)
        if self.on_exit is not None:
            try:
                self.on_exit(exit_status)
            except Exception:
                print(f"ctl-sup {self.task.id}: on_exit failed:", file=sys.stderr)
                import traceback

                traceback.print_exc()
