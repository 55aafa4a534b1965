"""Tasks: the live side of a container, over the runtime layer.

A container's task directory (``Paths.tasks(ns)/<id>/``) lives as long as
the container and holds its bundle (``config.json`` and the ``rootfs``
mount point), the files bound over /etc/hosts, /etc/hostname and
/etc/resolv.conf, the json-file log, and the supervisor's records
(``state.json``, ``exit.json``; see ``ctl.runtime.state``).

``TaskService`` turns client calls into runc calls and supervisor spawns.
Status is read without running runc (``state.load_task``), so ``ps`` stays
cheap; commands that change a task run runc and then record the change.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from typing import TYPE_CHECKING, Any

from ctl import fsutil
from ctl.errdefs import CtlError, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from ctl.runtime import state
from ctl.runtime.state import ExitStatus, Status, TaskState

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from ctl.containers.container import Container
    from ctl.network.manager import NetworkManager
    from ctl.runtime.runc import Runc, Stdio
    from ctl.runtime.supervisor import Spawned
    from ctl.snapshots import Snapshotter

# How often waiting commands look at a task's records.
POLL_INTERVAL = 0.02
# After SIGKILL, a task this slow to exit is reported, not waited for forever.
KILL_GRACE = 10.0
# How often stop looks again for a run that a restart started meanwhile.
STOP_POLL = 0.2
LIVE = (Status.CREATED, Status.RUNNING, Status.PAUSED)


class TaskService:
    """TaskService runs and controls the tasks of one namespace."""

    def __init__(
        self,
        tasks_dir: Path,
        runc: Runc,
        snapshotter: Snapshotter,
        remove_record: Callable[[str], None],
        networks: NetworkManager,
    ) -> None:
        self._tasks_dir = tasks_dir
        self.runc = runc
        self._snapshotter = snapshotter
        self._remove_record = remove_record
        self._networks = networks

    # Paths.

    def task_dir(self, container_id: str) -> Path:
        return self._tasks_dir / container_id

    def bundle(self, container_id: str) -> Path:
        return self.task_dir(container_id) / "bundle"

    def rootfs(self, container_id: str) -> Path:
        return self.bundle(container_id) / "rootfs"

    def log_path(self, container_id: str) -> Path:
        return self.task_dir(container_id) / f"{container_id}-json.log"

    # Root filesystem.

    def mount_rootfs(self, container: Container) -> Path:
        """mount_rootfs mounts the container's snapshot on its bundle's rootfs, once."""
        from ctl.snapshots.mount import is_mount_point, mount_all

        rootfs = self.rootfs(container.id)
        rootfs.mkdir(mode=0o755, parents=True, exist_ok=True)
        if not is_mount_point(rootfs):
            mount_all(self._snapshotter.mounts(container.snapshot_key), rootfs)
        return rootfs

    def unmount_rootfs(self, container_id: str) -> None:
        """unmount_rootfs takes every mount off the bundle's rootfs; none is fine."""
        from ctl.snapshots.mount import unmount

        rootfs = self.rootfs(container_id)
        try:
            unmount(rootfs)
        except CtlError:
            unmount(rootfs, detach=True)

    def remove_task_dir(self, container_id: str) -> None:
        """remove_task_dir unmounts the rootfs and deletes the container's task directory."""
        import shutil  # not at the top: with bz2 and lzma, 1 ms of every `ctl run`

        self.unmount_rootfs(container_id)
        shutil.rmtree(self.task_dir(container_id), ignore_errors=True)

    def leftovers(self, container_ids: set[str]) -> list[str]:
        """leftovers are the task directories of no container in ``container_ids``."""
        from ctl.containers.store import is_container_id

        try:
            entries = os.listdir(self._tasks_dir)
        except FileNotFoundError:
            return []
        return sorted(e for e in entries if e not in container_ids and is_container_id(e))

    # Status.

    def load(self, container_id: str) -> TaskState | None:
        return state.load_task(self.task_dir(container_id))

    def status(self, container_id: str) -> Status | None:
        task = self.load(container_id)
        return task.status if task else None

    # Lifecycle.

    def start(
        self,
        container: Container,
        attach: Stdio | None = None,
        on_exit: Callable[[ExitStatus], None] | None = None,
        start: bool = True,
    ) -> Spawned:
        """start runs the container's task under a new supervisor and returns once it runs.

        With ``start`` False the task is only created (``runc create``) and
        ``start_created`` starts it later.
        """
        from ctl.runtime.supervisor import TaskSpec, spawn, wait_for_supervisor

        task = self.load(container.id)
        if task is not None and task.status in LIVE:
            raise FailedPrecondition(f"container {container.name} is already {task.status.value}")
        # The last run's supervisor may still be releasing the rootfs and the
        # network that this run is about to set up again.
        wait_for_supervisor(self.task_dir(container.id))
        if task is not None and task.exit is not None and task.exit.exit_code is None:
            self.delete_task(container.id)  # a lost task: runc may still hold it
        config = container.config
        task_dir = self.task_dir(container.id)
        task_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.mount_rootfs(container)
        try:
            runtime_spec = self._attach_network(container)
        except BaseException:
            self.unmount_rootfs(container.id)
            raise
        # Derived from the record at every start: no fsync needed.
        fsutil.atomic_write_json(
            self.bundle(container.id) / "config.json", runtime_spec, durable=False
        )
        spec = TaskSpec(
            runc_id=container.id,
            bundle=self.bundle(container.id),
            task_dir=task_dir,
            log_path=self.log_path(container.id),
            tty=config.tty,
            stdin=config.stdin,
            attach=attach,
            restart=config.restart,
            start=start,
        )

        def exited(status: ExitStatus) -> None:
            # Runs in the supervisor, after runc delete and when no restart
            # follows: release the network and the rootfs, then what the
            # caller asked (--rm).
            self._networks.detach(container.id)
            self.unmount_rootfs(container.id)
            if on_exit is not None:
                on_exit(status)

        try:
            return spawn(self.runc, spec, on_exit=exited)
        except BaseException:
            if self.status(container.id) not in LIVE:
                self._networks.detach(container.id)
                self.unmount_rootfs(container.id)
            raise

    def _attach_network(self, container: Container) -> dict[str, Any]:
        """_attach_network joins the task to its network; returns the spec to run.

        A bridge network gets a named network namespace, set up by the CNI
        plugins before runc runs, and /etc/hosts names the container's address.
        """
        from ctl.containers.create import write_host_files

        network = container.config.network
        if network in ("none", "host"):
            return container.spec
        hostname = str(container.spec.get("hostname") or container.id[:12])
        attachment = self._networks.attach(
            container.id, network, container.config.publish, hostname
        )
        try:
            write_host_files(self.task_dir(container.id), network, hostname, attachment.address)
        except BaseException:
            self._networks.detach(container.id)
            raise
        spec = dict(container.spec)
        linux = dict(spec.get("linux", {}))
        namespaces = [n for n in linux.get("namespaces", []) if n.get("type") != "network"]
        namespaces.append({"type": "network", "path": str(attachment.netns_path)})
        linux["namespaces"] = namespaces
        spec["linux"] = linux
        return spec

    def start_created(self, container: Container) -> None:
        """start_created starts a task that ``start(start=False)`` created."""
        from ctl.runtime.runc import RuncError

        task = self._require_live(container, "start")
        state.transition(task.status, "start")
        try:
            self.runc.start(container.id)
        except RuncError:
            # A process that exits at once can be reaped, and its runc container
            # deleted by the supervisor, before runc start has removed its
            # exec.fifo: runc then fails, though the process ran.
            if self.status(container.id) is not Status.STOPPED:
                raise
        state.set_status(self.task_dir(container.id), "start")

    def _require_live(self, container: Container, op: str) -> TaskState:
        task = self.load(container.id)
        if task is None or task.status not in LIVE:
            raise FailedPrecondition(f"cannot {op} container {container.name}: it is not running")
        return task

    def kill(self, container: Container, sig: int) -> None:
        """kill signals the container's init; a fatal signal also cancels restarts."""
        task = self._require_live(container, "kill")
        if sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
            state.mark_stopping(self.task_dir(container.id))
        self.runc.kill(container.id, sig)
        if task.status is Status.PAUSED and sig == signal.SIGKILL:
            # A frozen process cannot die until it is thawed.
            with contextlib.suppress(Exception):
                self.runc.resume(container.id)

    def pause(self, container: Container) -> None:
        task = self._require_live(container, "pause")
        state.transition(task.status, "pause")
        self.runc.pause(container.id)
        state.set_status(self.task_dir(container.id), "pause")

    def resume(self, container: Container) -> None:
        task = self._require_live(container, "resume")
        state.transition(task.status, "resume")
        self.runc.resume(container.id)
        state.set_status(self.task_dir(container.id), "resume")

    def wait(self, container_id: str, timeout: float | None = None) -> ExitStatus:
        """wait blocks until the task has stopped and returns how it exited."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            task = self.load(container_id)
            if task is None:
                raise NotFound(f"container {container_id[:12]} has no task")
            if task.status is Status.STOPPED:
                return task.exit or ExitStatus(exit_code=None)
            if deadline is not None and time.monotonic() >= deadline:
                raise Unavailable(f"container {container_id[:12]} did not stop in time")
            time.sleep(POLL_INTERVAL)

    def stop(self, container: Container, timeout: float, stop_signal: int) -> None:
        """stop sends the stop signal, then SIGKILL after ``timeout`` seconds.

        A container between two runs of its restart policy is stopped too: no
        run follows. It returns once the supervisor has released the network
        and the rootfs as well (as docker's stop does), or has not within a
        grace time.
        """
        from ctl.runtime.supervisor import wait_for_supervisor

        task_dir = self.task_dir(container.id)
        record = state.read_record(task_dir)
        if record is None or not state.supervisor_alive(record):
            return  # never started, or stopped for good
        state.mark_stopping(task_dir)
        deadline = time.monotonic() + KILL_GRACE
        while True:
            # Again after each wait: a restart that passed its last look at the
            # marker just before it was written makes one more run to stop.
            task = self.load(container.id)
            if task is not None and task.status in LIVE:
                self._stop_run(container, task, timeout, stop_signal)
                deadline = time.monotonic() + KILL_GRACE
            try:
                wait_for_supervisor(task_dir, STOP_POLL)
                return
            except Unavailable:
                if time.monotonic() > deadline:
                    return

    def _stop_run(self, container: Container, task: TaskState, timeout: float, sig: int) -> None:
        with contextlib.suppress(NotFound):
            self.runc.kill(container.id, sig)
            if task.status is Status.PAUSED:
                self.runc.resume(container.id)
        try:
            self.wait(container.id, timeout)
        except Unavailable:
            self._kill_after_timeout(container)

    def _kill_after_timeout(self, container: Container) -> None:
        from ctl.runtime.runc import RuncError

        try:
            self.runc.kill(container.id, signal.SIGKILL, all=True)
        except RuncError:
            # The task may have died between the wait and the kill (runc then
            # fails on the vanished cgroup): only a live task is an error.
            if self.status(container.id) in LIVE:
                raise
        self.wait(container.id, KILL_GRACE)

    def delete_task(self, container_id: str) -> None:
        """delete_task forgets a stopped task and releases its rootfs; the container stays."""
        from ctl.runtime.supervisor import cleanup_lost_task

        task = self.load(container_id)
        if task is not None and task.status in LIVE:
            raise FailedPrecondition(f"task {container_id[:12]} is {task.status.value}")
        if task is not None and (task.exit is None or task.exit.exit_code is None):
            # Nobody saw it end (a lost supervisor, a reboot): runc may still
            # hold the container, or even run it.
            cleanup_lost_task(self.runc, container_id)
        self._networks.detach(container_id)
        self.unmount_rootfs(container_id)
        for name in (state.STATE_FILE, state.EXIT_FILE, state.STOPPING_FILE):
            (self.task_dir(container_id) / name).unlink(missing_ok=True)

    def delete(self, container: Container, force: bool) -> None:
        """delete removes the task and what the container owns: network, mount, snapshot, files.

        A live task needs ``force`` (it is killed first). It waits for the
        supervisor to finish its own clean-up, and a task whose supervisor
        was lost is cleaned through ``runc delete --force``.
        """
        from ctl.runtime.supervisor import delete_task

        task_dir = self.task_dir(container.id)
        task = self.load(container.id)
        if task is not None and task.status in LIVE and not force:
            raise FailedPrecondition(
                f"container {container.name} is {task.status.value}",
                hint="stop it first, or use rm -f",
            )
        delete_task(self.runc, container.id, task_dir)
        self._networks.detach(container.id)
        self.remove_task_dir(container.id)
        with contextlib.suppress(NotFound):
            self._snapshotter.remove(container.snapshot_key)
        with contextlib.suppress(NotFound):
            self._remove_record(container.id)

    # Inside a running task.

    def exec(
        self,
        container: Container,
        args: list[str],
        *,
        tty: bool,
        detach: bool,
        env: list[str],
        workdir: str | None,
        user: str | None,
        stdio: Stdio,
    ) -> int:
        """exec runs ``args`` in the running container; returns its exit code."""
        from pathlib import Path

        from ctl.runtime.runc import ExecOpts, Stdio
        from ctl.runtime.runopts import parse_user
        from ctl.runtime.spec import merge_env
        from ctl.runtime.users import resolve_user

        task = self._require_live(container, "exec in")
        if task.status is Status.PAUSED:
            raise FailedPrecondition(f"container {container.name} is paused: resume it first")
        if not args:
            raise InvalidArgument("exec needs a command")
        process: dict[str, Any] = dict(container.spec.get("process", {}))
        process["args"] = list(args)
        process["terminal"] = tty
        process["env"] = merge_env(process.get("env", []), env)
        if workdir:
            process["cwd"] = workdir
        if user:
            who = resolve_user(Path(f"/proc/{task.pid}/root"), parse_user(user))
            process["user"] = {
                "uid": who.uid,
                "gid": who.gid,
                "additionalGids": list(who.additional_gids),
            }
        # A Ctrl-C reaches runc too, which passes it to the process: ctl waits
        # for the exit code rather than dying first. A handler, unlike SIG_IGN,
        # is not inherited by runc.
        previous = signal.signal(signal.SIGINT, lambda sig, frame: None)
        try:
            if tty or detach:
                return self.runc.exec(container.id, process, ExecOpts(detach=detach), stdio)
            with _RuncErrorFilter(stdio.stderr if stdio.stderr is not None else 2) as stderr:
                filtered = Stdio(stdin=stdio.stdin, stdout=stdio.stdout, stderr=stderr.fd)
                return self.runc.exec(container.id, process, ExecOpts(), filtered)
        finally:
            signal.signal(signal.SIGINT, previous)

    def pids(self, container: Container) -> list[int]:
        self._require_live(container, "list the processes of")
        return self.runc.ps(container.id)

    def metrics(self, container: Container) -> dict[str, Any]:
        self._require_live(container, "read the metrics of")
        return self.runc.events_stats(container.id)

    def logs(
        self, container: Container, *, follow: bool, tail: int | None
    ) -> Iterator[tuple[str, str, str, int]]:
        """logs yields (stream, text, time, skipped) from the container's json-file log."""
        from ctl.runtime.logs import read_logs

        def stopped() -> bool:
            task = self.load(container.id)
            return task is None or task.status is Status.STOPPED

        for entry in read_logs(self.log_path(container.id), tail=tail, follow=follow, stop=stopped):
            yield entry.stream, entry.text, entry.time, entry.skipped


class _RuncErrorFilter:
    """_RuncErrorFilter passes a process's stderr through, without runc's own error line.

    When ``runc exec`` cannot start the command it prints ``exec failed: ...``
    on the stderr it shares with the process, besides the error ctl reports
    (and maps to exit code 126 or 127). The process never ran then, so a
    stream that begins with that line holds nothing else worth showing.
    """

    PREFIX = b"exec failed:"

    def __init__(self, target: int) -> None:
        self._target = target
        self._read_fd, self.fd = os.pipe()
        self._thread: Any = None

    def __enter__(self) -> _RuncErrorFilter:
        import threading

        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # runc and the process are gone: this is the last writer
        self._thread.join()
        os.close(self._read_fd)

    def _pump(self) -> None:
        held = b""
        passing = False
        while chunk := os.read(self._read_fd, 65536):
            if not passing:
                held += chunk
                if len(held) < len(self.PREFIX) and b"\n" not in held:
                    continue
                if held.startswith(self.PREFIX):
                    continue  # runc's error: dropped, ctl reports it
                passing, chunk, held = True, held, b""
            _write_all(self._target, chunk)
        if held and not held.startswith(self.PREFIX):
            _write_all(self._target, held)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
