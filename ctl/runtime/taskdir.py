"""A container's task directory: every file of its task, and every operation on them.

A task directory (``Paths.tasks(ns)/<id>/``, ``<id>`` being the container's
and runc's id) lives as long as the container::

    <id>/
      bundle/config.json  the runtime spec, written at every start
      bundle/rootfs/      mount point of the container's snapshot
      hosts hostname resolv.conf
                          bound over /etc/... (ctl.containers.create writes them)
      <id>-json.log       the container's output (ctl.runtime.logs; <id>-local.log
                          with --log-driver local)
      health.json         .State.Health, with a health check (ctl.runtime.health)
      state.json          TaskRecord: pids, supervisor identity, status, restart count,
                          log lines dropped
      exit.json           ExitRecord: exit code or signal, finish time (once exited)
      stopping            marker: a user stopped or killed the task; do not restart it
      init.pid            written by runc (--pid-file)
      supervisor.log      the supervisor's own stderr, for post-mortems
      lock                flock guarding read-modify-write of state.json

The supervisor writes ``state.json`` once the init runs, and ``exit.json``
when it has exited; ``pause``/``resume``/``start`` update the status in
``state.json`` under the lock. Every write is atomic, so a ``kill -9`` at any
moment leaves either the old or the new record. What the records mean, and
which operation a status allows, is ``ctl.runtime.state``'s.

``TaskDir.load`` never runs runc: ``ps`` calls it for every container.
"""

from __future__ import annotations

import contextlib
import os
import time
from functools import cached_property

from ctl import fsutil
from ctl.errdefs import AlreadyExists, CtlError, FailedPrecondition, InvalidArgument, Unavailable
from ctl.runtime import state
from ctl.runtime.state import ExitStatus, Status, TaskState

# typing is not imported at run time: `ps` reads task states (see ctl.typeshim).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any, Final, cast

    from _typeshed import StrPath

    from ctl.runtime.runc import Runc
    from ctl.runtime.state import ExitRecord, TaskRecord
else:
    from ctl.typeshim import cast

_STATE: Final = "state.json"
_EXIT: Final = "exit.json"
_STOPPING: Final = "stopping"
_LOCK: Final = "lock"
_PID: Final = "init.pid"
_SUPERVISOR_LOG: Final = "supervisor.log"
# The runtime's own files: what remains once they go belongs to the container.
_RUNTIME_FILES: Final = (_STATE, _EXIT, _STOPPING, _PID, _SUPERVISOR_LOG, _LOCK)
# How long a new task, or a deletion, waits for a supervisor to finish.
SUPERVISOR_EXIT_TIMEOUT: Final = 30.0
# How often a deletion that waits for a supervisor deletes the runc container again.
RUNC_DELETE_AGAIN: Final = 1.0


class TaskDir:
    """TaskDir is the task directory at ``path``; its name is the task's (and runc's) id.

    ``durable`` False writes the records without fsyncs, for a ``--rm``
    container: after a crash of the machine it is gone anyway (a boot makes
    every task stopped), while a ``kill -9`` still finds the old record or
    the new one, whole.
    """

    def __init__(self, path: StrPath, durable: bool = True) -> None:
        # A string, and a Path only when asked for: ps loads every container's task,
        # and pathlib's import costs more than the listing.
        self.dir = os.fspath(path)
        self.id = os.path.basename(self.dir)
        self.durable = durable

    @cached_property
    def path(self) -> Path:
        from pathlib import Path

        return Path(self.dir)

    def _file(self, name: str) -> str:
        """_file names one of the task's files in an error: ``state.json of task <id>``."""
        return f"{name} of task {self.id[:12]}"

    def __repr__(self) -> str:
        return f"TaskDir({self.dir!r})"

    # Paths.

    @property
    def bundle(self) -> Path:
        return self.path / "bundle"

    @property
    def rootfs(self) -> Path:
        return self.bundle / "rootfs"

    @property
    def log(self) -> Path:
        """log is the container's json-file log."""
        return self.path / f"{self.id}-json.log"

    @property
    def pid_file(self) -> Path:
        """pid_file is where runc writes the init's pid."""
        return self.path / _PID

    def clear_pid_file(self) -> None:
        """clear_pid_file removes the pid file and runc's temporary of it.

        runc writes ``.<name>`` first and renames it; when that write fails (a
        full disk) it leaves the temporary, and every later create fails with
        "file exists".
        """
        self.pid_file.unlink(missing_ok=True)
        self.pid_file.with_name(f".{_PID}").unlink(missing_ok=True)

    @property
    def supervisor_log(self) -> Path:
        return self.path / _SUPERVISOR_LOG

    # The bundle.

    def write_config(self, spec: dict[str, Any]) -> None:
        """write_config writes the runtime spec; derived from the record at every start."""
        path = self.bundle / "config.json"
        fsutil.atomic_write_json(path, spec, durable=False, what=self._file("config.json"))

    def read_config(self) -> dict[str, Any]:
        """read_config is the bundle's runtime spec; InvalidArgument if it cannot be read."""
        try:
            config = fsutil.read_json(self.bundle / "config.json")
        except (OSError, ValueError) as err:
            raise InvalidArgument(f"bundle {self.bundle}: cannot read config.json: {err}") from err
        if not isinstance(config, dict):
            raise InvalidArgument(f"bundle {self.bundle}: config.json is not an object")
        return config

    def unmount_rootfs(self) -> None:
        """unmount_rootfs takes every mount off the bundle's rootfs; none is fine."""
        from ctl.snapshots.mount import unmount

        try:
            unmount(self.rootfs)
        except CtlError:
            unmount(self.rootfs, detach=True)

    # Records.

    def lock(self) -> fsutil.FileLock:
        """lock guards read-modify-write of the task's records."""
        return fsutil.FileLock(self.path / _LOCK, what=f"task {self.id}")

    def read_record(self) -> TaskRecord | None:
        """read_record is ``state.json`` as written, or None if there is none."""
        record = self._read(_STATE)
        if record is None or not isinstance(record.get("id"), str):
            return None
        return cast("TaskRecord", record)

    def write_record(self, record: TaskRecord) -> None:
        """write_record replaces ``state.json``: WriteFailed if there is no room."""
        fsutil.atomic_write_json(
            self.path / _STATE, record, durable=self.durable, what=self._file(_STATE)
        )

    def update_record(self, **changes: Any) -> TaskRecord:
        """update_record changes fields of ``state.json`` under the task's lock."""
        with self.lock():
            record = self.read_record()
            if record is None:
                raise FailedPrecondition(f"task {self.id} has no state record")
            updated: TaskRecord = {**record, **changes}  # type: ignore[typeddict-item]
            self.write_record(updated)
            return updated

    def set_status(self, op: str) -> TaskState:
        """set_status applies ``op`` (start, pause, resume) to the recorded status.

        Call it after runc did the operation. It raises FailedPrecondition if the
        live status does not allow ``op``.
        """
        with self.lock():
            record = self.read_record()
            if record is None:
                raise FailedPrecondition(f"task {self.id} has no state record")
            task = state.task_state(record, self.read_exit())
            if op == "start" and task.status is Status.STOPPED and record["started_at"] is None:
                # A process that exits at once is reaped and recorded by its
                # supervisor before runc start returns: it did start.
                status = Status.STOPPED
            else:
                status = state.transition(task.status, op)
            record["status"] = status.value
            if op == "start":
                record["started_at"] = time.time()
            self.write_record(record)
            return task._replace(status=status, started_at=record["started_at"])

    def write_exit(self, status: ExitStatus) -> None:
        """write_exit writes ``exit.json``: WriteFailed if there is no room."""
        assert status.exit_code is not None, "an observed exit has a code"
        record: ExitRecord = {
            "version": state.RECORD_VERSION,
            "exit_code": status.exit_code,
            "signal": status.signal,
            "finished_at": status.finished_at or time.time(),
            "oom": status.oom,
        }
        fsutil.atomic_write_json(
            self.path / _EXIT, record, durable=self.durable, what=self._file(_EXIT)
        )

    def read_exit(self) -> ExitStatus | None:
        record = self._read(_EXIT)
        if record is None or not isinstance(record.get("exit_code"), int):
            return None
        return ExitStatus(
            exit_code=record["exit_code"],
            signal=record.get("signal"),
            finished_at=record.get("finished_at"),
            oom=bool(record.get("oom", False)),
        )

    def clear_exit(self) -> None:
        (self.path / _EXIT).unlink(missing_ok=True)

    def mark_stopping(self) -> None:
        """mark_stopping tells the supervisor not to restart: call it before signalling a stop."""
        fsutil.atomic_write(self.path / _STOPPING, b"", what=self._file(_STOPPING))

    def is_stopping(self) -> bool:
        return (self.path / _STOPPING).exists()

    def damaged_records(self) -> list[str]:
        """damaged_records are the names of the records present that cannot be read."""
        damaged = []
        if (self.path / _STATE).exists() and self.read_record() is None:
            damaged.append(_STATE)
        if (self.path / _EXIT).exists() and self.read_exit() is None:
            damaged.append(_EXIT)
        return damaged

    def load(self) -> TaskState | None:
        """load reads the task and derives its live status; None if there is no task.

        It never raises on missing or unreadable files and never runs runc: it
        reads two small files and /proc/<supervisor>/stat.
        """
        record = self.read_record()
        return None if record is None else state.task_state(record, self.read_exit())

    def forget(self) -> None:
        """forget removes the records of a task that is over, so that another can start."""
        for name in (_STATE, _EXIT, _STOPPING):
            (self.path / name).unlink(missing_ok=True)

    def _read(self, name: str) -> dict[str, Any] | None:
        # Atomic writes mean a record is whole or absent; anything else (a disk
        # error, an edit by hand) is treated as absent rather than raised.
        try:
            record = fsutil.read_json(f"{self.dir}/{name}")
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None

    # The supervisor.

    def wait_for_supervisor(self, timeout: float = SUPERVISOR_EXIT_TIMEOUT) -> None:
        """wait_for_supervisor returns once the task's last supervisor is gone.

        A task is stopped once its exit is recorded, but its supervisor goes on
        to tear down the network and unmount the rootfs (``on_exit``): whatever
        sets them up again must wait for it. Unavailable after ``timeout``.
        """
        record = self.read_record()
        if record is not None and not state.wait_supervisor_exit(record, timeout):
            raise Unavailable(
                f"task {record['id']}: the supervisor of its last run is still finishing"
            )

    def reset(self) -> None:
        """reset clears the records of an earlier task, once it is gone, for a new run.

        AlreadyExists if that task has not stopped (a concurrent start won).
        """
        deadline = time.monotonic() + SUPERVISOR_EXIT_TIMEOUT
        while True:
            with self.lock():
                task = self.load()
                if task is not None and "run" not in state.TRANSITIONS[task.status]:
                    raise AlreadyExists(f"task {task.id} is {task.status.value}")
                record = self.read_record()
                if record is None or not state.supervisor_alive(record):
                    self.forget()
                    return
            self.wait_for_supervisor(deadline - time.monotonic())

    def cleanup_lost(self, runc: Runc) -> None:
        """cleanup_lost removes what a lost supervisor left: the runc container and its cgroup.

        It kills the container if it still runs. Nothing left is not an error.
        """
        from signal import SIGKILL

        from ctl.runtime import cgroups
        from ctl.runtime.runc import RuncNotFound

        with contextlib.suppress(RuncNotFound):
            runc.delete(self.id, force=True)
        self.kill_remaining(SIGKILL)
        cgroups.remove_container_cgroup(self._cgroups_path())
        cgroups.remove_supervisor_cgroup(self.id)

    def _cgroups_path(self) -> str:
        try:
            config = self.read_config()
        except InvalidArgument:
            return ""
        return str(config.get("linux", {}).get("cgroupsPath", ""))

    def kill_remaining(self, sig: int) -> None:
        """kill_remaining signals every process of ``remaining_pids``.

        runc's state may have been deleted underneath a live container: what
        is left is found through its cgroup and its recorded init.
        """
        for pid in self.remaining_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def remaining_pids(self) -> list[int]:
        """remaining_pids are the task's live processes, found without runc.

        They are the processes of the container's cgroup, and the recorded
        init if its start time still matches (so a reused pid is never taken
        for it). It never raises.
        """
        from ctl.runtime import cgroups

        pids = set(cgroups.container_pids(self._cgroups_path()))
        record = self.read_record()
        if record is not None:
            init, started = int(record.get("pid") or 0), record.get("init_start_time")
            if init > 0 and started is not None and state.process_start_time(init) == started:
                pids.add(init)
        return sorted(pids)

    def terminate(self, runc: Runc, timeout: float = SUPERVISOR_EXIT_TIMEOUT) -> None:
        """terminate ends the task in any state and removes the runtime's files.

        It marks the task stopping (so it is not restarted), kills and deletes the
        runc container if there is one, kills what its cgroup or recorded init
        still holds (runc's state may be gone), waits for the supervisor to finish
        (unless the caller *is* the supervisor: an ``on_exit`` doing ``--rm``),
        then runs ``cleanup_lost`` and removes the task's records. The
        container's files (the log, the bundle) stay: the directory itself is
        removed only if that leaves it empty. Nothing to end is not an error.
        A supervisor that does not finish within ``timeout`` (stuck in a CNI
        plugin, say) is killed: what it had left to clean up is done here and
        by the caller.
        """
        from signal import SIGKILL

        from ctl.runtime.runc import RuncNotFound

        record = self.read_record()
        if record is not None and record["supervisor_pid"] == os.getpid():
            # Called by the supervisor's own on_exit (--rm): it ran runc delete
            # before exit.json and will not restart, so runc has nothing left.
            self._remove_runtime_files()
            return
        if self.path.is_dir():
            self.mark_stopping()
        deadline = time.monotonic() + timeout
        while True:
            # Again while waiting: a supervisor in the middle of a restart may have
            # started a new init after the first kill.
            with contextlib.suppress(RuncNotFound):
                runc.delete(self.id, force=True)
            # runc delete --force succeeds on a container it has no state of.
            self.kill_remaining(SIGKILL)
            if record is None:
                self._kill_unrecorded_supervisor()
                break
            left = deadline - time.monotonic()
            if state.wait_supervisor_exit(record, min(RUNC_DELETE_AGAIN, left), kill=left <= 0):
                break
            if left <= 0:
                raise Unavailable(f"task {self.id}: its supervisor does not die")
        self.cleanup_lost(runc)
        self._remove_runtime_files()

    def _kill_unrecorded_supervisor(self) -> None:
        """_kill_unrecorded_supervisor kills a supervisor that ``state.json`` cannot name (damaged).

        It is found in its own cgroup; with no record to go by it is killed,
        not waited for.
        """
        from signal import SIGKILL

        from ctl.runtime import cgroups

        for pid in cgroups.supervisor_pids(self.id):
            if pid != os.getpid():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, SIGKILL)

    def _remove_runtime_files(self) -> None:
        for name in _RUNTIME_FILES:
            (self.path / name).unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            self.path.rmdir()

    def remove(self) -> None:
        """remove unmounts the rootfs and deletes the whole directory; a missing one is fine."""
        import shutil  # not at the top: with bz2 and lzma, 1 ms of every `ctl run`

        self.unmount_rootfs()
        shutil.rmtree(self.path, ignore_errors=True)
