"""Health checks: docker's HEALTHCHECK, run inside the container by its task's supervisor.

A ``HealthConfig`` is docker's ``Config.Healthcheck``: the test
(``("CMD", arg...)``, ``("CMD-SHELL", command)`` or ``("NONE",)``), the
times between checks and how many failures in a row make a container
unhealthy. A zero field means docker's default (``merged`` fills it from
the image's first).

``HealthMonitor`` is the supervisor's part. While the task runs it starts
the check every interval (``start_interval`` during the start period, until
a check passes) with ``runc exec``, in the container's process settings
(env, user, cwd), reads up to ``MAX_OUTPUT`` bytes of its output, kills it
after ``timeout``, and keeps docker's ``.State.Health`` in the task
directory's ``health.json`` (``ctl.runtime.state.HealthRecord``), replaced
atomically after every check::

    {"Status": "healthy", "FailingStreak": 0,
     "Log": [{"Start": "...", "End": "...", "ExitCode": 0, "Output": "..."}]}

Status is ``starting`` until the first check passes or ``retries`` checks
fail in a row (those within the start period do not count), then
``healthy`` or ``unhealthy``. No check runs while the task is not running
(created, paused). The
monitor never blocks: the supervisor's poll loop asks it when it is next
due (``timeout``), hands it the output it reads and the exits it reaps.
A container without a health check has no monitor and no ``health.json``.

Everything here is imported by the supervisor's spawner before the fork:
keep it to the standard library's small modules.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from typing import TYPE_CHECKING, Any, NamedTuple

from ctl import fsutil
from ctl.errdefs import CtlError
from ctl.runtime.state import HEALTH_FILE

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

# docker's defaults (api/types/container/config.go, daemon/health.go).
DEFAULT_INTERVAL = 30.0
DEFAULT_TIMEOUT = 30.0
DEFAULT_START_PERIOD = 0.0
DEFAULT_START_INTERVAL = 5.0
DEFAULT_RETRIES = 3
MAX_LOG_ENTRIES = 5
MAX_OUTPUT = 4096
STARTING, HEALTHY, UNHEALTHY = "starting", "healthy", "unhealthy"
# How often a created task is looked at, until it is started.
START_POLL = 0.5
_NS = 1_000_000_000
_DURATIONS = ("interval", "timeout", "start_period", "start_interval")


class HealthConfig(NamedTuple):
    """HealthConfig is docker's Healthcheck; durations in seconds, 0 meaning the default."""

    test: tuple[str, ...] = ()
    interval: float = 0.0
    timeout: float = 0.0
    start_period: float = 0.0
    start_interval: float = 0.0
    retries: int = 0

    def to_json(self) -> dict[str, Any]:
        """to_json is docker's ``Config.Healthcheck``: durations in nanoseconds."""
        return {
            "Test": list(self.test),
            "Interval": round(self.interval * _NS),
            "Timeout": round(self.timeout * _NS),
            "StartPeriod": round(self.start_period * _NS),
            "StartInterval": round(self.start_interval * _NS),
            "Retries": self.retries,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> HealthConfig:
        """from_json reads docker's Healthcheck (an image config's, or ``to_json``'s)."""

        def seconds(key: str) -> float:
            value = doc.get(key)
            return value / _NS if isinstance(value, int) and value > 0 else 0.0

        retries = doc.get("Retries")
        return cls(
            test=tuple(str(word) for word in doc.get("Test") or ()),
            interval=seconds("Interval"),
            timeout=seconds("Timeout"),
            start_period=seconds("StartPeriod"),
            start_interval=seconds("StartInterval"),
            retries=retries if isinstance(retries, int) and retries > 0 else 0,
        )

    def merged(self, image: HealthConfig | None) -> HealthConfig | None:
        """merged fills what the flags left empty from the image's, as docker does;
        None when there is no check (none given, or ``NONE``)."""
        if image is not None:
            fields = {
                name: getattr(image, name)
                for name in (*_DURATIONS, "retries")
                if not getattr(self, name)
            }
            own = self._replace(**fields)
            if not own.test:
                own = own._replace(test=image.test)
        else:
            own = self
        if not own.test or own.test[0] == "NONE":
            return None
        return own

    def argv(self) -> list[str]:
        """argv is the command of the check (``test`` with its CMD or CMD-SHELL)."""
        kind, *rest = self.test
        if kind == "CMD-SHELL":
            return ["/bin/sh", "-c", " ".join(rest)]
        return rest

    def every(self, starting: bool, since_start: float) -> float:
        """every is the time until the next check: start_interval within the start period."""
        if starting and since_start < (self.start_period or DEFAULT_START_PERIOD):
            return self.start_interval or DEFAULT_START_INTERVAL
        return self.interval or DEFAULT_INTERVAL


def go_duration(seconds: float) -> str:
    """go_duration writes a duration as Go's time.Duration.String does: 1m30s, 500ms, 0s."""
    if seconds <= 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:g}s"
    if hours or minutes:
        text = f"{int(minutes)}m{text}"
    if hours:
        text = f"{int(hours)}h{text}"
    return text


def _rfc3339(seconds: float) -> str:
    whole = int(seconds)
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        + f".{int((seconds - whole) * 1e9):09d}Z"
    )


def _runc_error(log_fd: int) -> str | None:
    """_runc_error is runc's error in its log, if it failed itself (the check never started)."""
    from ctl.runtime.runc import error_from_log  # loaded with the supervisor

    chunks = []
    offset = 0
    while chunk := os.pread(log_fd, 65536, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return error_from_log(b"".join(chunks))


class _Check:
    """_Check is one run of the check: runc exec, its output pipe, runc's log, its deadline."""

    def __init__(
        self, pid: int, output: int, runc_log: int, started: float, deadline: float
    ) -> None:
        self.pid = pid
        self.output = output
        self.runc_log = runc_log
        self.started = started
        self.deadline = deadline
        self.text = bytearray()
        self.exit_code: int | None = None
        self.timed_out = False


class HealthMonitor:
    """HealthMonitor runs one task's health check (see the module docstring).

    ``runc_argv`` makes runc's command line from its arguments (``Runc.argv``),
    ``process`` is the container's OCI process, ``running``
    whether the task runs now (not paused, nor only created), ``on_status``
    what runs when the status changes (the place for a ``health_status`` event).
    """

    def __init__(
        self,
        config: HealthConfig,
        task_dir: Path,
        runc_argv: Callable[..., list[str]],
        container_id: str,
        process: Mapping[str, Any],
        running: Callable[[], bool],
        on_status: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.path = task_dir / HEALTH_FILE
        self.pid_file = task_dir / "health.pid"
        self.runc_argv = runc_argv
        self.container_id = container_id
        self.process = {**process, "args": config.argv(), "terminal": False}
        self.running = running
        self.on_status = on_status
        self.status = STARTING
        self.failing_streak = 0
        self.log: list[dict[str, Any]] = []
        # When the task was first seen running: the start period counts from there.
        self.started: float | None = None
        self.due: float | None = None
        self.check: _Check | None = None

    # The poll loop's side.

    def begin(self) -> None:
        """begin starts watching a new run of the task: starting, the first check one
        interval after it is seen running."""
        self.started = None
        self.status, self.failing_streak = STARTING, 0
        self._write()
        self.due = time.monotonic()

    def end(self) -> None:
        """end stops watching: a running check is killed (its exit is reaped as any orphan)."""
        self.due = None
        check, self.check = self.check, None
        if check is not None:
            self._kill(check)
            os.close(check.runc_log)
            if check.output >= 0:
                os.close(check.output)

    def timeout(self, now: float) -> float | None:
        """timeout is how long the poll loop may sleep before ``tick`` is due; None: forever."""
        check = self.check
        if check is not None:
            if check.timed_out and check.exit_code is None:
                return None  # killed: its exit wakes the loop
            return max(0.0, check.deadline - now)
        return None if self.due is None else max(0.0, self.due - now)

    def output_fd(self) -> int | None:
        check = self.check
        return check.output if check is not None and check.output >= 0 else None

    def read_output(self) -> None:
        """read_output reads what the check wrote; at EOF its pipe is closed."""
        check = self.check
        if check is None or check.output < 0:
            return
        try:
            data = os.read(check.output, 65536)
        except BlockingIOError:
            return
        if data:
            check.text += data[: max(0, MAX_OUTPUT - len(check.text))]
            return
        os.close(check.output)
        check.output = -1
        self._finish()

    def reaped(self, pid: int, wait_status: int) -> bool:
        """reaped takes the exit of a check's runc; False if ``pid`` is not one."""
        check = self.check
        if check is None or pid != check.pid:
            return False
        code = os.waitstatus_to_exitcode(wait_status)
        check.exit_code = code if code >= 0 else 128 - code
        self._finish()
        return True

    def tick(self, now: float) -> None:
        """tick kills a check past its timeout, and starts one that is due.

        A check that exited while something it left behind holds its output
        open is recorded at its deadline with what it wrote until then.
        """
        check = self.check
        if check is not None:
            if now < check.deadline:
                return
            if check.exit_code is None and not check.timed_out:
                check.timed_out = True
                self._kill(check)
            elif check.exit_code is not None:
                os.close(check.output)
                check.output = -1
                self._finish()
            return
        if self.due is None or now < self.due:
            return
        if not self.running():
            if self.started is None:
                self.due = now + START_POLL  # created: started by another process
            else:
                # docker checks nothing while paused; it looks again one interval on.
                self.due = now + self.config.every(False, now - self.started)
            return
        if self.started is None:
            self.started = now
            self.due = now + self.config.every(True, 0.0)
            return
        self._start(now)

    # The check.

    def _start(self, now: float) -> None:
        """_start runs the check; the supervisor's own 0, 1 and 2 are taken, so every
        descriptor made here is above them."""
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        process_fd = os.memfd_create("health-process", os.MFD_CLOEXEC)
        log_fd = os.memfd_create("health-runc-log", os.MFD_CLOEXEC)
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.write(process_fd, json.dumps(self.process).encode())
            with contextlib.suppress(FileNotFoundError):
                self.pid_file.unlink()
            argv = self.runc_argv(
                "--log",
                f"/proc/self/fd/{log_fd}",
                "exec",
                "--process",
                f"/proc/self/fd/{process_fd}",
                "--pid-file",
                str(self.pid_file),
                self.container_id,
            )
            # dup2 of a descriptor onto itself clears close-on-exec in the child only.
            actions = [
                (os.POSIX_SPAWN_DUP2, null, 0),
                (os.POSIX_SPAWN_DUP2, write_fd, 1),
                (os.POSIX_SPAWN_DUP2, write_fd, 2),
                (os.POSIX_SPAWN_DUP2, process_fd, process_fd),
                (os.POSIX_SPAWN_DUP2, log_fd, log_fd),
            ]
            try:
                pid = os.posix_spawnp(
                    argv[0],
                    argv,
                    os.environ,
                    file_actions=actions,
                    setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
                )
            except OSError as err:
                os.close(read_fd)
                os.close(log_fd)
                self._record(now, time.time(), -1, f"cannot run the health check: {err}")
                return
        finally:
            for fd in (write_fd, process_fd, null):
                os.close(fd)
        os.set_blocking(read_fd, False)
        timeout = self.config.timeout or DEFAULT_TIMEOUT
        self.check = _Check(pid, read_fd, log_fd, time.time(), now + timeout)

    def _kill(self, check: _Check) -> None:
        """_kill ends the check: its process in the container (runc then exits), or runc."""
        try:
            with open(self.pid_file) as f:
                target = int(f.read().strip() or 0)
        except (OSError, ValueError):
            target = 0
        for pid in (target, check.pid):
            if pid > 0:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    def _finish(self) -> None:
        """_finish records a check once its runc has exited and its output is drained."""
        check = self.check
        if check is None or check.exit_code is None or check.output >= 0:
            return
        self.check = None
        output = check.text.decode(errors="replace")
        failed = _runc_error(check.runc_log) if check.exit_code != 0 else None
        os.close(check.runc_log)
        if check.timed_out:
            timeout = self.config.timeout or DEFAULT_TIMEOUT
            exit_code, output = -1, f"Health check exceeded timeout ({go_duration(timeout)})"
        elif failed is not None:
            # The check never ran: docker's result for a probe that cannot start.
            exit_code, output = -1, f"OCI runtime exec failed: {failed}"
        else:
            exit_code = check.exit_code
        self._record(time.monotonic(), check.started, exit_code, output)

    def _record(self, now: float, started: float, exit_code: int, output: str) -> None:
        """_record applies one result as docker's handleProbeResult does, and writes it."""
        self.log = [
            *self.log[-(MAX_LOG_ENTRIES - 1) :],
            {
                "Start": _rfc3339(started),
                "End": _rfc3339(time.time()),
                "ExitCode": exit_code,
                "Output": output,
            },
        ]
        since_start = now - (self.started or now)
        if exit_code == 0:
            self.failing_streak = 0
            status = HEALTHY
        else:
            status = self.status
            start_period = self.config.start_period or DEFAULT_START_PERIOD
            # Failures within the start period count only once a check has passed.
            if self.status != STARTING or since_start >= start_period:
                self.failing_streak += 1
                if self.failing_streak >= (self.config.retries or DEFAULT_RETRIES):
                    status = UNHEALTHY
        changed, self.status = status != self.status, status
        self._write()
        if changed and self.on_status is not None:
            self.on_status(status)
        if self.due is not None:
            self.due = now + self.config.every(self.status == STARTING, since_start)

    def _write(self) -> None:
        """_write replaces health.json; a full disk costs this result, never the supervisor."""
        doc = {"Status": self.status, "FailingStreak": self.failing_streak, "Log": self.log}
        with contextlib.suppress(OSError, CtlError):
            fsutil.atomic_write_json(self.path, doc, durable=False, what=str(self.path))
