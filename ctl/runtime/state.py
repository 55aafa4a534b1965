"""Task state on disk, and the task state machine.

A task is one run of a container's process, watched by one supervisor. Its
records live in a directory the caller chooses (``Paths.tasks(ns)/<id>``)::

    <task_dir>/
      state.json       TaskRecord: pids, supervisor identity, status, restart count
      exit.json        ExitRecord: exit code or signal, finish time (once exited)
      stopping         marker: a user stopped or killed the task; do not restart it
      init.pid         written by runc (--pid-file)
      supervisor.log   the supervisor's own stderr, for post-mortems
      lock             flock guarding read-modify-write of state.json

The supervisor writes ``state.json`` once the init runs, and ``exit.json``
when it has exited; ``pause``/``resume``/``start`` update the status in
``state.json`` under the lock. Every write is atomic, so a ``kill -9`` at any
moment leaves either the old or the new record.

``load_task`` derives the live status without running runc: an ``exit.json``
means STOPPED with its code; a supervisor that is gone (dead, or its pid now
belongs to another process, or the machine rebooted since) means STOPPED with
an unknown exit code; otherwise the recorded status holds.
"""

from __future__ import annotations

import os
import time
from enum import Enum
from typing import TYPE_CHECKING, Any, Final, NamedTuple, TypedDict, cast

from ctl import fsutil
from ctl.errdefs import FailedPrecondition

if TYPE_CHECKING:
    from pathlib import Path

RECORD_VERSION: Final = 1
# How long a killed supervisor may take to be gone (it cannot block SIGKILL).
KILL_WAIT_MS: Final = 5000
STATE_FILE: Final = "state.json"
EXIT_FILE: Final = "exit.json"
STOPPING_FILE: Final = "stopping"
LOCK_FILE: Final = "lock"
PID_FILE: Final = "init.pid"
SUPERVISOR_LOG: Final = "supervisor.log"
# RECORD_FILES are what the runtime keeps in a task directory (delete_task removes them).
RECORD_FILES: Final = (STATE_FILE, EXIT_FILE, STOPPING_FILE, PID_FILE, SUPERVISOR_LOG, LOCK_FILE)


class Status(Enum):
    """Status is where a task is in its life (runc's container statuses)."""

    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    # UNKNOWN is a record this ctl cannot read (written by a newer version).
    UNKNOWN = "unknown"


# TRANSITIONS lists, for each status, the operations it allows and the status
# each one leads to. Everything not listed raises FailedPrecondition.
TRANSITIONS: Final[dict[Status, dict[str, Status]]] = {
    Status.CREATED: {"start": Status.RUNNING, "kill": Status.CREATED, "delete": Status.STOPPED},
    Status.RUNNING: {
        "pause": Status.PAUSED,
        "kill": Status.RUNNING,
        "exec": Status.RUNNING,
        "stop": Status.STOPPED,
    },
    Status.PAUSED: {
        "resume": Status.RUNNING,
        "kill": Status.PAUSED,
        "stop": Status.STOPPED,
    },
    Status.STOPPED: {"delete": Status.STOPPED},
    Status.UNKNOWN: {"kill": Status.UNKNOWN, "delete": Status.STOPPED},
}


def transition(status: Status, op: str) -> Status:
    """transition is the status after ``op``, or FailedPrecondition if ``status`` forbids it."""
    target = TRANSITIONS[status].get(op)
    if target is None:
        raise FailedPrecondition(f"cannot {op} task in {status.value} state")
    return target


class TaskRecord(TypedDict):
    """TaskRecord is ``state.json``."""

    version: int
    id: str
    pid: int
    supervisor_pid: int
    supervisor_start_time: int
    boot_id: str
    status: str
    created_at: float
    started_at: float | None
    bundle: str
    log_path: str
    restart_count: int


class ExitRecord(TypedDict):
    """ExitRecord is ``exit.json``: ``signal`` is set when a signal ended the process."""

    version: int
    exit_code: int
    signal: int | None
    finished_at: float
    oom: bool


class ExitStatus(NamedTuple):
    """ExitStatus is how a task ended; exit_code None means nobody saw it end."""

    exit_code: int | None
    signal: int | None = None
    finished_at: float | None = None
    oom: bool = False

    @classmethod
    def from_wait_status(cls, wait_status: int, finished_at: float | None = None) -> ExitStatus:
        """from_wait_status reads a waitpid status: signal N gives exit code 128+N."""
        finished = time.time() if finished_at is None else finished_at
        if os.WIFSIGNALED(wait_status):
            sig = os.WTERMSIG(wait_status)
            return cls(128 + sig, signal=sig, finished_at=finished)
        return cls(os.waitstatus_to_exitcode(wait_status), finished_at=finished)

    def describe(self) -> str:
        """describe is docker's "Exited (0)" or "Exited (unknown)"."""
        return f"Exited ({'unknown' if self.exit_code is None else self.exit_code})"


class TaskState(NamedTuple):
    """TaskState is a task's record with its live status derived (see ``load_task``)."""

    id: str
    status: Status
    pid: int
    supervisor_pid: int
    bundle: str
    log_path: str
    created_at: float
    started_at: float | None
    restart_count: int
    exit: ExitStatus | None


def boot_id() -> str:
    """boot_id changes at every boot: a record from an earlier boot has no live process."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def process_start_time(pid: int) -> int | None:
    """process_start_time is field 22 of /proc/<pid>/stat; None if no live process has ``pid``.

    A pid with another start time than recorded is another process that
    reused the number. A zombie counts as dead.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # comm (field 2) may contain spaces and parentheses: split after the last ")".
    fields = stat[stat.rfind(b")") + 2 :].split()
    if not fields or fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def new_record(
    id: str,
    pid: int,
    status: Status,
    bundle: Path,
    log_path: Path,
    restart_count: int = 0,
) -> TaskRecord:
    """new_record describes a task whose supervisor is the calling process."""
    now = time.time()
    me = os.getpid()
    return TaskRecord(
        version=RECORD_VERSION,
        id=id,
        pid=pid,
        supervisor_pid=me,
        supervisor_start_time=process_start_time(me) or 0,
        boot_id=boot_id(),
        status=status.value,
        created_at=now,
        started_at=now if status is Status.RUNNING else None,
        bundle=str(bundle),
        log_path=str(log_path),
        restart_count=restart_count,
    )


def _read(path: Path) -> dict[str, Any] | None:
    # Atomic writes mean a record is whole or absent; anything else (a disk
    # error, an edit by hand) is treated as absent rather than raised.
    try:
        record = fsutil.read_json(path)
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def read_record(task_dir: Path) -> TaskRecord | None:
    """read_record is ``state.json`` as written, or None if there is none."""
    record = _read(task_dir / STATE_FILE)
    if record is None or not isinstance(record.get("id"), str):
        return None
    return cast("TaskRecord", record)


def write_record(task_dir: Path, record: TaskRecord) -> None:
    fsutil.atomic_write_json(task_dir / STATE_FILE, record)


def task_lock(task_dir: Path) -> fsutil.FileLock:
    """task_lock guards read-modify-write of the task's records."""
    return fsutil.FileLock(task_dir / LOCK_FILE, what=f"task {task_dir.name}")


def update_record(task_dir: Path, **changes: Any) -> TaskRecord:
    """update_record changes fields of ``state.json`` under the task's lock."""
    with task_lock(task_dir):
        record = read_record(task_dir)
        if record is None:
            raise FailedPrecondition(f"task {task_dir.name} has no state record")
        updated: TaskRecord = {**record, **changes}  # type: ignore[typeddict-item]
        write_record(task_dir, updated)
        return updated


def set_status(task_dir: Path, op: str) -> TaskState:
    """set_status applies ``op`` (start, pause, resume) to the recorded status.

    Call it after runc did the operation. It raises FailedPrecondition if the
    live status does not allow ``op``.
    """
    with task_lock(task_dir):
        task = load_task(task_dir)
        if task is None:
            raise FailedPrecondition(f"task {task_dir.name} has no state record")
        record = read_record(task_dir)
        assert record is not None
        if op == "start" and task.status is Status.STOPPED and record["started_at"] is None:
            # A process that exits at once is reaped and recorded by its
            # supervisor before runc start returns: it did start.
            status = Status.STOPPED
        else:
            status = transition(task.status, op)
        record["status"] = status.value
        if op == "start":
            record["started_at"] = time.time()
        write_record(task_dir, record)
        return task._replace(status=status, started_at=record["started_at"])


def write_exit(task_dir: Path, status: ExitStatus) -> None:
    assert status.exit_code is not None, "an observed exit has a code"
    fsutil.atomic_write_json(
        task_dir / EXIT_FILE,
        ExitRecord(
            version=RECORD_VERSION,
            exit_code=status.exit_code,
            signal=status.signal,
            finished_at=status.finished_at or time.time(),
            oom=status.oom,
        ),
    )


def read_exit(task_dir: Path) -> ExitStatus | None:
    record = _read(task_dir / EXIT_FILE)
    if record is None or not isinstance(record.get("exit_code"), int):
        return None
    return ExitStatus(
        exit_code=record["exit_code"],
        signal=record.get("signal"),
        finished_at=record.get("finished_at"),
        oom=bool(record.get("oom", False)),
    )


def clear_exit(task_dir: Path) -> None:
    (task_dir / EXIT_FILE).unlink(missing_ok=True)


def mark_stopping(task_dir: Path) -> None:
    """mark_stopping tells the supervisor not to restart: call it before signalling a stop."""
    fsutil.atomic_write(task_dir / STOPPING_FILE, b"")


def is_stopping(task_dir: Path) -> bool:
    return (task_dir / STOPPING_FILE).exists()


def clear_stopping(task_dir: Path) -> None:
    (task_dir / STOPPING_FILE).unlink(missing_ok=True)


def supervisor_alive(record: TaskRecord) -> bool:
    """supervisor_alive is whether the recorded supervisor still runs, on this boot."""
    if record.get("boot_id") != boot_id():
        return False
    start = process_start_time(record["supervisor_pid"])
    return start is not None and start == record.get("supervisor_start_time")


def wait_supervisor_exit(record: TaskRecord, timeout: float, kill: bool = False) -> bool:
    """wait_supervisor_exit waits up to ``timeout`` for the recorded supervisor to be gone.

    It sleeps on a pidfd, so fifty waiters cost the machine nothing. True
    once the supervisor is gone; at the timeout, False, or with ``kill``
    the supervisor is sent SIGKILL and waited for.
    """
    try:
        pidfd = os.pidfd_open(record["supervisor_pid"])
    except ProcessLookupError:
        return True
    try:
        # Checked after the pidfd is open, so the pid cannot be reused meanwhile.
        if not supervisor_alive(record):
            return True
        import select

        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if poller.poll(max(0, int(timeout * 1000))):
            return True
        if not kill:
            return False
        import signal

        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        return bool(poller.poll(KILL_WAIT_MS))
    finally:
        os.close(pidfd)


def load_task(task_dir: Path) -> TaskState | None:
    """load_task reads a task and derives its live status; None if there is no task.

    It never raises on missing or unreadable files and never runs runc: it
    reads two small files and /proc/<supervisor>/stat.
    """
    record = read_record(task_dir)
    if record is None:
        return None
    exit_status = read_exit(task_dir)
    if exit_status is not None:
        status = Status.STOPPED
    elif record.get("version") != RECORD_VERSION:
        status = Status.UNKNOWN
    elif not supervisor_alive(record):
        status, exit_status = Status.STOPPED, ExitStatus(exit_code=None)
    else:
        try:
            status = Status(record.get("status"))
        except ValueError:
            status = Status.UNKNOWN
    return TaskState(
        id=record["id"],
        status=status,
        pid=int(record.get("pid") or 0),
        supervisor_pid=int(record.get("supervisor_pid") or 0),
        bundle=str(record.get("bundle", "")),
        log_path=str(record.get("log_path", "")),
        created_at=float(record.get("created_at") or 0),
        started_at=record.get("started_at"),
        restart_count=int(record.get("restart_count") or 0),
        exit=exit_status,
    )
