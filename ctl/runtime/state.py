"""The task state machine, and what a task's records mean.

A task is one run of a container's process, watched by one supervisor. Its
records live in its task directory (``ctl.runtime.taskdir``, which reads and
writes them); this module holds what is pure: the statuses, the transition
table every task operation goes through, the record types, and how a live
status is derived from the records without running runc (``task_state``): an
exit record means STOPPED with its code; a supervisor that is gone (dead, or
its pid now belongs to another process, or the machine rebooted since) means
STOPPED with an unknown exit code; otherwise the recorded status holds.
"""

from __future__ import annotations

import os
import time
from enum import Enum

from ctl.errdefs import FailedPrecondition

# typing is not imported at run time: `ps` reads task states (see ctl.typeshim).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Final, NamedTuple, NotRequired, TypedDict, cast
else:
    from ctl.typeshim import NamedTuple, cast

RECORD_VERSION: Final = 1
# How long a killed supervisor may take to be gone (it cannot block SIGKILL).
KILL_WAIT_MS: Final = 5000


class Status(Enum):
    """Status is where a task is in its life (runc's container statuses)."""

    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    # UNKNOWN is a record this ctl cannot read (written by a newer version).
    UNKNOWN = "unknown"


# TRANSITIONS is the one gate of every task operation: for each status, the
# operations it allows and the status each one leads to. Everything not listed
# raises FailedPrecondition. The operations are ctl.tasks.Task's:
#   run, create  a new run from a stopped task (or none): runc run, or runc create
#   start        runc start of a created task
#   kill         signal the init; the status it gives is the one right after
#                (the exit, if it comes, is the supervisor's to record)
#   stop         the stop signal, then SIGKILL; waits for the exit
#   exec, pids, metrics
#                need a process to run in or to read (exec: an unpaused one)
#   attach       connect to the stdio of a running task, through its supervisor
#   update       change the cgroup limits: of the live task through runc,
#                of a stopped one in the record alone (the next run's)
#   delete       forget the task (its records; no task reads as stopped):
#                only once it stopped, as in containerd, or when its record
#                is unreadable (UNKNOWN), where ``runc delete --force`` is the
#                one way out. A live task is deleted by killing it first
#                (``rm -f``); kill is refused from UNKNOWN, as ctl cannot
#                tell what such a task is.
# Like containerd (and unlike runc, which deletes a created container), a
# created task is live: it has a process waiting to be started.
TRANSITIONS: Final[dict[Status, dict[str, Status]]] = {
    Status.CREATED: {
        "start": Status.RUNNING,
        "kill": Status.CREATED,
        "stop": Status.STOPPED,
        "pids": Status.CREATED,
        "metrics": Status.CREATED,
        "update": Status.CREATED,
    },
    Status.RUNNING: {
        "pause": Status.PAUSED,
        "kill": Status.RUNNING,
        "exec": Status.RUNNING,
        "stop": Status.STOPPED,
        "pids": Status.RUNNING,
        "metrics": Status.RUNNING,
        "update": Status.RUNNING,
        "attach": Status.RUNNING,
    },
    Status.PAUSED: {
        "resume": Status.RUNNING,
        "kill": Status.PAUSED,
        "stop": Status.STOPPED,
        "pids": Status.PAUSED,
        "metrics": Status.PAUSED,
        "update": Status.PAUSED,
    },
    Status.STOPPED: {
        "run": Status.RUNNING,
        "create": Status.CREATED,
        "stop": Status.STOPPED,
        "delete": Status.STOPPED,
        "update": Status.STOPPED,
    },
    Status.UNKNOWN: {"delete": Status.STOPPED},
}


def transition(status: Status, op: str) -> Status:
    """transition is the status after ``op``, or FailedPrecondition if ``status`` forbids it."""
    target = TRANSITIONS[status].get(op)
    if target is None:
        raise FailedPrecondition(f"cannot {op} task in {status.value} state")
    return target


# The records' shapes are for the type checker: at run time they are plain dicts.
if TYPE_CHECKING:

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
        # The init's start time (process_start_time), to tell it from a process
        # that reused its pid once nobody watches it; absent in older records.
        init_start_time: NotRequired[int | None]
        # Log lines the supervisor could not write (a full disk), once it could say so.
        log_lines_dropped: NotRequired[int]


if TYPE_CHECKING:

    class HealthRecord(TypedDict):
        """HealthRecord is ``health.json``: docker's ``.State.Health``, written by the supervisor
        of a task with a health check (ctl.runtime.health) and by nothing else."""

        Status: str
        FailingStreak: int
        Log: list[dict[str, object]]


HEALTH_FILE: Final = "health.json"


def read_health(task_dir: Path) -> HealthRecord | None:
    """read_health is a task's HealthRecord; None if it has none, or it cannot be read.

    Here rather than in ctl.runtime.health so that ``ps`` reads it without importing that.
    """
    import json

    try:
        with open(task_dir / HEALTH_FILE, "rb") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("Status"), str):
        return None
    return cast("HealthRecord", doc)


def task_health(task: TaskState) -> HealthRecord | None:
    """task_health is the health record the task's supervisor keeps, if it runs a check."""
    from pathlib import Path

    return read_health(Path(task.bundle).parent) if task.bundle else None


if TYPE_CHECKING:

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
    """TaskState is a task's record with its live status derived (see ``TaskDir.load``)."""

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
    log_lines_dropped: int = 0


def is_live(task: TaskState | None) -> bool:
    """is_live: the task has a process, running or paused (docker's Running)."""
    return task is not None and task.status in (Status.RUNNING, Status.PAUSED)


def docker_state(task: TaskState | None) -> str:
    """docker_state is docker's State of a container: created, running, paused or exited."""
    if task is None:
        return "created"
    return "exited" if task.status is Status.STOPPED else task.status.value


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
    record: TaskRecord = {
        "version": RECORD_VERSION,
        "id": id,
        "pid": pid,
        "supervisor_pid": me,
        "supervisor_start_time": process_start_time(me) or 0,
        "boot_id": boot_id(),
        "status": status.value,
        "created_at": now,
        "started_at": now if status is Status.RUNNING else None,
        "bundle": str(bundle),
        "log_path": str(log_path),
        "restart_count": restart_count,
        "init_start_time": process_start_time(pid),
    }
    return record


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


def task_state(record: TaskRecord, exit_status: ExitStatus | None) -> TaskState:
    """task_state is a task's live status, derived from its records and /proc (no runc)."""
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
        log_lines_dropped=int(record.get("log_lines_dropped") or 0),
    )
