"""Tasks: the live side of a container, over the runtime layer.

``Task`` is the interface and its docstring the spec; ``TaskService``
implements it over runc and one supervisor per run
(``ctl.runtime.supervisor``). A container's files live in its task directory
(``ctl.runtime.taskdir.TaskDir``) as long as the container. Status is read
without running runc (``TaskDir.load``), so ``ps`` stays cheap; operations that
change a task run runc and then record the change. Every operation is gated by
the one transition table, ``ctl.runtime.state.TRANSITIONS``, and checked
against it by ``tests/conformance/test_tasks.py``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Any, Protocol

from ctl.errdefs import CtlError, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from ctl.fsutil import FileLock, write_all
from ctl.runtime.namespaces import join_containers
from ctl.runtime.state import (
    TRANSITIONS,
    ExitStatus,
    Status,
    TaskState,
    is_live,
    supervisor_alive,
)
from ctl.runtime.taskdir import TaskDir

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from ctl.containers.container import Container, RestartPolicy, RunConfig
    from ctl.network.manager import NetworkManager
    from ctl.paths import Paths
    from ctl.runtime.resources import Resources
    from ctl.runtime.runc import Runc, Stdio
    from ctl.runtime.supervisor import Spawned
    from ctl.runtime.supervisor.attach import Attached
    from ctl.snapshots import Snapshotter

# How often waiting commands look at a task's records.
POLL_INTERVAL = 0.02
# After SIGKILL, a task this slow to exit is reported, not waited for forever.
KILL_GRACE = 10.0
# How often stop looks again for a run that a restart started meanwhile.
STOP_POLL = 0.2
# How an operation reads in "cannot OP container NAME: it is STATUS".
_VERBS = {
    "run": "start",
    "exec": "exec in",
    "pids": "list the processes of",
    "metrics": "read the metrics of",
    "delete": "remove",
    "update": "update",
    "attach": "attach to",
}


class Task(Protocol):
    """Task runs and controls the tasks of one namespace's containers.

    A container has at most one task at a time: one run of its process,
    watched by one supervisor. A task's **status** is one of:

    - **created**: runc created it; its process waits to be started;
    - **running**;
    - **paused**: its processes are frozen;
    - **stopped**: its process exited (with a code, or unknown if nobody saw
      it end: a lost supervisor, a reboot). A container whose restart policy
      is about to run it again is stopped meanwhile;
    - **unknown**: its record was written by another version of ctl.

    A container without a task is treated as stopped. ``TRANSITIONS`` in
    ``ctl.runtime.state`` is the one gate: each operation below names its
    entry there, and one that the status does not allow raises
    FailedPrecondition ("cannot pause container NAME: it is stopped"),
    having changed nothing. The lifecycle::

        (none), stopped --run--> running     (start; create: --create--> created)
        created --start--> running
        running --pause--> paused --resume--> running
        created, running, paused --stop--> stopped (and kill, once the process dies)
        stopped, unknown --delete--> (none)  (forget, remove)

    ``kill``, ``exec``, ``pids``, ``metrics``, ``update`` and ``attach`` leave the
    status as it was.
    A container named ``NAME`` below is a ``Container`` record; methods that
    take ``container_id`` take the full id.

    Concurrent callers: ``start``, ``start_created``, ``stop``, ``update`` and
    ``remove`` of one container run one at a time, under the task's lifecycle lock
    (``Paths.lock("task", ns, id)``), so that of five concurrent starts one
    starts the task and four find it running. The locks, always taken in
    this order (never the other way round):

    1. the container's removal lock (``ctl.containers.lifecycle``);
    2. the task's lifecycle lock (here);
    3. the task directory's record lock (``TaskDir.lock``: read-modify-write
       of ``state.json``, taken by the supervisor too);
    4. a store's lock (the container store's, the network's).

    The supervisor never takes the lifecycle lock while a caller waits for
    it: its ``on_exit`` (``--rm``) removes the task without it, as ``stop``
    may hold it while waiting for that very supervisor to finish.
    """

    def task_dir(self, container_id: str) -> TaskDir:
        """task_dir is the container's task directory; it may not exist."""
        ...

    def mount_rootfs(self, container: Container) -> Path:
        """mount_rootfs mounts the container's snapshot on its bundle's rootfs, once."""
        ...

    def leftovers(self, container_ids: set[str]) -> list[str]:
        """leftovers are the ids of task directories of no container in ``container_ids``."""
        ...

    def load(self, container_id: str) -> TaskState | None:
        """load is the task with its live status, or None; it never runs runc."""
        ...

    def status(self, container_id: str) -> Status | None:
        """status is ``load``'s status, or None without a task."""
        ...

    def problems(self, container_id: str) -> list[str]:
        """problems are what is wrong with the task, for ``system check``; none is healthy.

        It finds a damaged ``state.json`` or ``exit.json``, a supervisor lost
        while the container's processes run on, and runc's state missing
        under a live task. Only the last runs runc.
        """
        ...

    def start(
        self,
        container: Container,
        attach: Stdio | None = None,
        on_exit: Callable[[ExitStatus], None] | None = None,
        start: bool = True,
    ) -> Spawned:
        """start runs a new task (``run``; with ``start`` False, ``create``).

        It returns once the task runs (or is created). ``attach`` are the
        caller's descriptors for the container's stdio; ``on_exit`` runs in
        the supervisor once the task stopped for good and released its network
        and rootfs. A task whose supervisor was lost is forgotten first, and
        the last run's supervisor is waited for. Errors: FailedPrecondition
        (the status), ExecFailed (exit code 126/127: the command cannot run),
        RuncError, and the network's errors (a host port taken:
        AlreadyExists); nothing stays set up after an error.
        """
        ...

    def start_created(self, container: Container) -> None:
        """start_created starts a created task (``start``): FailedPrecondition if not created."""
        ...

    def kill(self, container: Container, sig: int) -> None:
        """kill signals the task's init (``kill``).

        SIGKILL, SIGTERM and SIGINT also cancel the restart policy, and
        SIGKILL thaws a paused task so that it can die.
        """
        ...

    def pause(self, container: Container) -> None:
        """pause freezes a running task (``pause``)."""
        ...

    def resume(self, container: Container) -> None:
        """resume thaws a paused task (``resume``)."""
        ...

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
        """exec runs ``args`` in the running task (``exec``); returns its exit code.

        InvalidArgument without ``args``; ExecFailed (126/127) when they
        cannot run; 0 at once with ``detach``.
        """
        ...

    def attach(self, container: Container, stdin: bool, size_of: int = 0) -> Attached:
        """attach connects to the running task's stdio through its supervisor (``attach``).

        The connection gets all the output from now on, and takes input
        when ``stdin`` and the task was started with ``-i``; a tty gets the
        size of the terminal ``size_of``. A supervisor that takes no
        attaches (one of an older ctl) is FailedPrecondition.
        """
        ...

    def pids(self, container: Container) -> list[int]:
        """pids are the task's processes, as host pids (``pids``)."""
        ...

    def update(
        self,
        container: Container,
        resources: Resources,
        save: Callable[[Container], None] | None = None,
        restart: RestartPolicy | None = None,
    ) -> Container:
        """update changes the container's cgroup limits (``update``); returns it with them.

        What ``resources`` sets replaces the spec's value, the rest stays:
        ``linux.resources`` of the container's spec is merged part by part
        (memory, cpu, blockIO, pids), and the whole is checked as ``create``
        checks it (InvalidArgument, naming the flag). A live task (created,
        running, paused) takes the change through its OCI runtime first (a
        RuncError, such as a memory limit below what the container uses,
        changes nothing), then in its bundle, so that a restart by the policy
        keeps it; a stopped task, or none, changes in the record only.
        ``save`` records the changed container, under the lifecycle lock; if
        it fails, the task gets its old limits back. A new ``restart`` policy
        (the record's is ``save``'s) reaches the supervisor of a running
        task, for its next exit.
        """
        ...

    def metrics(self, container: Container) -> dict[str, Any]:
        """metrics are the task's counters (``ctl.runtime.stats.sample``): cgroup and network."""
        ...

    def wait(self, container_id: str, timeout: float | None = None) -> ExitStatus:
        """wait blocks until the task has stopped and returns how it exited.

        A task removed while it is waited for (``--rm``, ``rm -f``) ended as
        ``logged_exit`` says. NotFound without a task; Unavailable after
        ``timeout`` seconds.
        """
        ...

    def logged_exit(self, container_id: str, since: float = 0.0) -> ExitStatus | None:
        """logged_exit is how the container's last run since ``since`` (a Unix time) ended,
        by its ``die`` event.

        It outlives the task's records: a supervisor logs the event after
        writing ``exit.json`` and before it removes a ``--rm`` container, and a
        remover waits for the supervisor. None if no such run was logged.
        """
        ...

    def stop(self, container: Container, timeout: float, stop_signal: int) -> None:
        """stop sends ``stop_signal``, then SIGKILL after ``timeout`` seconds (``stop``).

        No restart follows, also for a task stopped between two runs of its
        restart policy. It returns once the supervisor released the network
        and the rootfs as well, or has not within a grace time. Stopping a
        stopped task does nothing.

        It never returns while the task's processes run: besides the
        records it goes by the container's cgroup and its recorded init. A
        task whose supervisor was lost is stopped through runc, or through
        its cgroup if runc lost its state, with a warning on stderr; one
        whose exit the supervisor cannot record yet (a full disk) is stopped
        once its processes are gone. Unavailable if SIGKILL does not end it.
        """
        ...

    def forget(self, container_id: str) -> None:
        """forget deletes a stopped task (``delete``): its records, network and rootfs mount.

        The container and its task directory stay, ready for another start.
        A task whose supervisor was lost is cleaned up through runc first.
        Nothing to forget is not an error.
        """
        ...

    def repair(self, container_id: str) -> str:
        """repair ends a task whose records cannot be trusted (``system check --repair``).

        For what ``problems`` finds: whatever still runs (found through runc,
        the cgroup or the recorded init) is killed, the network and the
        rootfs are released and the task's records removed; the container
        stays, and can be started again. It returns what it did.
        """
        ...

    def remove_unreadable(self, container_id: str, force: bool) -> None:
        """remove_unreadable is ``remove`` for a container whose record is damaged.

        What its task directory shows is torn down: a live task (found
        through runc, its cgroup or its recorded init, even with a damaged
        ``state.json``), its supervisor, the network and the rootfs mount.
        """
        ...

    def remove(self, container: Container, force: bool) -> None:
        """remove deletes the task and its task directory for good (``delete``).

        With ``force`` a live task is killed first (``kill``); without it, it
        raises FailedPrecondition. It waits for the supervisor to finish
        (killing one that does not, after a while: Unavailable if it will not
        die), deletes the runc container, detaches the network and unmounts
        the rootfs. The container's record and snapshot are the caller's.
        """
        ...

    def logs(
        self, container: Container, *, follow: bool, tail: int | None
    ) -> Iterator[tuple[str, str, str, int]]:
        """logs yields (stream, text, time, skipped) from the task's json-file log, ``follow``ing
        it; ``skipped`` counts the records rotated away just before this one, unread.
        Lines the supervisor could not write at all (a full disk) are counted in
        the task's ``log_lines_dropped``.
        """
        ...


def _allows(task: TaskState | None, op: str) -> bool:
    return op in TRANSITIONS[task.status if task is not None else Status.STOPPED]


def _gate(task: TaskState | None, op: str, name: str, hint: str | None = None) -> None:
    """_gate raises FailedPrecondition unless the task's status allows ``op``."""
    if not _allows(task, op):
        status = task.status if task is not None else Status.STOPPED
        raise FailedPrecondition(
            f"cannot {_VERBS.get(op, op)} container {name}: it is {status.value}", hint=hint
        )


class TaskService:
    """TaskService is the Task of one namespace, over runc and the supervisor."""

    def __init__(
        self,
        paths: Paths,
        namespace: str,
        runc: Runc,
        snapshotter: Snapshotter,
        networks: NetworkManager,
        config_of: Callable[[str], RunConfig] | None = None,
    ) -> None:
        self._paths = paths
        self._namespace = namespace
        self.runc = runc
        self._snapshotter = snapshotter
        self._networks = networks
        # A container's run config as its record has it now: its --runtime, for what is done
        # by id, and its network connections, read again under the lock at every start.
        self._config_of = config_of

    def _runc(self, container: Container) -> Runc:
        """_runc drives the OCI runtime the container was created with (``--runtime``)."""
        return self.runc.with_binary(container.config.runtime)

    def _runc_by_id(self, container_id: str) -> Runc:
        """_runc_by_id is ``_runc`` by container id: runc if the record is unreadable."""
        runtime = None
        if self._config_of is not None:
            with contextlib.suppress(CtlError):
                runtime = self._config_of(container_id).runtime
        return self.runc.with_binary(runtime)

    def task_dir(self, container_id: str) -> TaskDir:
        return TaskDir(self._paths.task_dir(self._namespace, container_id))

    def mount_rootfs(self, container: Container) -> Path:
        from ctl.snapshots.mount import is_mount_point, mount_all

        rootfs = self.task_dir(container.id).rootfs
        rootfs.mkdir(mode=0o755, parents=True, exist_ok=True)
        if not is_mount_point(rootfs):
            mount_all(self._snapshotter.mounts(container.snapshot_key), rootfs)
        return rootfs

    def leftovers(self, container_ids: set[str]) -> list[str]:
        from ctl.containers.store import is_container_id

        try:
            entries = os.listdir(self._paths.tasks(self._namespace))
        except FileNotFoundError:
            return []
        return sorted(e for e in entries if e not in container_ids and is_container_id(e))

    # Status.

    def load(self, container_id: str) -> TaskState | None:
        return self.task_dir(container_id).load()

    def status(self, container_id: str) -> Status | None:
        task = self.load(container_id)
        return task.status if task else None

    def problems(self, container_id: str) -> list[str]:
        from ctl.runtime.runc import RuncNotFound

        task_dir = self.task_dir(container_id)
        found = [f"damaged {name}" for name in task_dir.damaged_records()]
        task = task_dir.load()
        if task is None or task.status in (Status.STOPPED, Status.UNKNOWN):
            if task is not None and task.exit is not None and task.exit.exit_code is None:
                pids = task_dir.remaining_pids()
                if pids:
                    found.append(f"its supervisor was lost while the container runs (pids {pids})")
            return found
        try:
            self._runc_by_id(container_id).state(container_id)
        except RuncNotFound:
            # Unless it exited meanwhile: the supervisor deletes runc's state first.
            if _allows(task_dir.load(), "kill") and task_dir.remaining_pids():
                found.append("runc's state of the live container is missing")
        return found

    # Lifecycle.

    def start(
        self,
        container: Container,
        attach: Stdio | None = None,
        on_exit: Callable[[ExitStatus], None] | None = None,
        start: bool = True,
    ) -> Spawned:
        with self.lifecycle_lock(container.id):
            return self._start(container, attach, on_exit, start)

    def lifecycle_lock(self, container_id: str) -> FileLock:
        """lifecycle_lock serializes start, stop and remove of one task (see ``Task``), and the
        changes of what a start reads afresh: the container's network connections."""
        return FileLock(
            self._paths.lock("task", self._namespace, container_id),
            what=f"task {container_id[:12]}",
            remove=True,
        )

    def _start(
        self,
        container: Container,
        attach: Stdio | None,
        on_exit: Callable[[ExitStatus], None] | None,
        start: bool,
    ) -> Spawned:
        import functools

        from ctl import events
        from ctl.runtime import apparmor
        from ctl.runtime.supervisor import TaskSpec, spawn

        task_dir = self.task_dir(container.id)
        task = task_dir.load()
        _gate(task, "run" if start else "create", container.name)
        # The last run's supervisor may still be releasing the rootfs and the
        # network that this run is about to set up again.
        task_dir.wait_for_supervisor()
        if task is not None and task.exit is not None and task.exit.exit_code is None:
            self.forget(container.id)  # a lost task: runc may still hold it
        options = container.config
        # --pid/--ipc container:NAME: the other container's live pid (issue 11).
        container = container.updated(spec=join_containers(container.spec, self._running_pid))
        apparmor.ensure_loaded((container.spec.get("process") or {}).get("apparmorProfile"))
        task_dir.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.mount_rootfs(container)
        try:
            runtime_spec = self._attach_network(container, options)
        except BaseException:
            task_dir.unmount_rootfs()
            raise
        task_dir.write_config(runtime_spec)
        spec = TaskSpec(
            task=TaskDir(task_dir.path, durable=not options.rm),
            tty=options.tty,
            stdin=options.stdin,
            attach=attach,
            restart=options.restart,
            start=start,
            log=options.log,
            health=options.health,
            on_event=functools.partial(
                events.container_event, self._paths.events, self._namespace, container
            ),
        )
        if options.detach_keys:
            from ctl.runtime.runopts import parse_detach_keys

            spec = spec._replace(detach_keys=parse_detach_keys(options.detach_keys))

        def exited(status: ExitStatus) -> None:
            # Runs in the supervisor, after runc delete and when no restart
            # follows: release the network and the rootfs, then what the
            # caller asked (--rm).
            self._networks.detach(container.id)
            task_dir.unmount_rootfs()
            if on_exit is not None:
                on_exit(status)

        try:
            return spawn(self._runc(container), spec, on_exit=exited)
        except BaseException:
            if _allows(task_dir.load(), "run"):
                self._networks.detach(container.id)
                task_dir.unmount_rootfs()
            raise

    def _running_pid(self, container_id: str) -> int | None:
        task = self.load(container_id)
        return task.pid if task is not None and is_live(task) else None

    def _attach_network(self, container: Container, options: RunConfig) -> dict[str, Any]:
        """_attach_network joins the task to its network; returns the spec to run.

        A bridge network gets a named network namespace, set up by the CNI
        plugins before runc runs, and /etc/hosts names the container's address.
        """
        from ctl.containers.create import write_host_files

        if options.network in ("none", "host"):
            return container.spec
        hostname = str(container.spec.get("hostname") or container.id[:12])
        attachment = self._networks.attach(
            container.id,
            options.network,
            options.publish,
            hostname,
            {"MAC": options.mac_address} if options.mac_address else None,
            options.network_aliases,
            (options.ip, options.ip6),
        )
        try:
            write_host_files(
                self.task_dir(container.id).path,
                options,
                hostname,
                attachment.address,
                attachment.gateway,
                nameserver=attachment.nameserver,
            )
            self._connect_again(container)
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

    def _connect_again(self, container: Container) -> None:
        """_connect_again joins the networks the container was connected to (docker keeps a
        ``network connect`` across restarts), as its record has them now: a connect or a
        disconnect holds the lifecycle lock, as the start does."""
        from ctl.network.connect import connect

        config = container.config if self._config_of is None else self._config_of(container.id)
        for connection in config.connections:
            connect(
                self._networks,
                container.id,
                connection.network,
                connection.aliases,
                connection.ip,
                connection.ip6,
            )

    def start_created(self, container: Container) -> None:
        from ctl.runtime.runc import RuncError

        with self.lifecycle_lock(container.id):
            task_dir = self._gated(container, "start")
            try:
                self._runc(container).start(container.id)
            except RuncError:
                if not self._exited_at_once(container):
                    raise
            task_dir.set_status("start")

    def _exited_at_once(self, container: Container) -> bool:
        """_exited_at_once is whether a failed ``runc start`` lost a race with the process.

        A process that exits at once can be reaped, and its runc container
        deleted by the supervisor, before runc start has removed its
        exec.fifo: runc then fails, though the process ran. The supervisor
        writes the exit record once it has reaped the process and run runc
        delete: it is waited for here.
        """
        from ctl.runtime.runc import RuncNotFound

        try:
            runc_status = self._runc(container).state(container.id).get("status")
        except RuncNotFound:
            runc_status = "stopped"  # deleted by the supervisor, after the exit
        if runc_status != "stopped":
            return False
        with contextlib.suppress(Unavailable):
            self.wait(container.id, KILL_GRACE)
            return True
        return False

    def _gated(self, container: Container, op: str) -> TaskDir:
        """_gated is the container's task directory, once its status allows ``op``."""
        task_dir = self.task_dir(container.id)
        _gate(task_dir.load(), op, container.name)
        return task_dir

    def kill(self, container: Container, sig: int) -> None:
        task_dir = self.task_dir(container.id)
        task = task_dir.load()
        _gate(task, "kill", container.name)
        if sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGINT):
            task_dir.mark_stopping()
        self._runc(container).kill(container.id, sig)
        if task is not None and task.status is Status.PAUSED and sig == signal.SIGKILL:
            self._thaw(container)

    def _thaw(self, container: Container) -> None:
        """_thaw resumes a paused task that was signalled: frozen, it cannot die.

        runc itself thaws a task it sends SIGKILL, and then refuses to resume it.
        """
        from ctl.runtime.runc import RuncError

        with contextlib.suppress(RuncError):
            self._runc(container).resume(container.id)

    def pause(self, container: Container) -> None:
        task_dir = self._gated(container, "pause")
        self._runc(container).pause(container.id)
        task_dir.set_status("pause")

    def resume(self, container: Container) -> None:
        task_dir = self._gated(container, "resume")
        self._runc(container).resume(container.id)
        task_dir.set_status("resume")

    def wait(self, container_id: str, timeout: float | None = None) -> ExitStatus:
        task_dir = self.task_dir(container_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        task = task_dir.load()
        if task is None:
            raise NotFound(f"container {container_id[:12]} has no task")
        while task.status is not Status.STOPPED:
            if deadline is not None and time.monotonic() >= deadline:
                raise Unavailable(f"container {container_id[:12]} did not stop in time")
            time.sleep(POLL_INTERVAL)
            seen, task = task, task_dir.load()
            if task is None:
                # Removed between two looks, after the run last seen had its exit recorded;
                # an earlier run's event must not stand for it (a supervisor killed unlogged).
                ran = seen.started_at or seen.created_at
                return self.logged_exit(container_id, ran) or ExitStatus(exit_code=None)
        return task.exit or ExitStatus(exit_code=None)

    def logged_exit(self, container_id: str, since: float = 0.0) -> ExitStatus | None:
        from ctl import events

        last = None
        for event in events.stream(self._paths.events, follow=False):
            if (
                event is not None
                and event.get("id") == container_id
                and event.get("Action") == "die"
                and event.get("namespace") == self._namespace
                and event["timeNano"] >= since * 1e9
            ):
                last = event
        if last is None:
            return None
        # -1: the supervisor logged a run nobody saw end.
        code = str((last.get("Actor") or {}).get("Attributes", {}).get("exitCode", "-1"))
        exit_code = int(code) if code.isdigit() else None
        return ExitStatus(exit_code=exit_code, finished_at=last["timeNano"] / 1e9)

    def stop(self, container: Container, timeout: float, stop_signal: int) -> None:
        with self.lifecycle_lock(container.id):
            self._stop(container, timeout, stop_signal)

    def _stop(self, container: Container, timeout: float, stop_signal: int) -> None:
        task_dir = self._gated(container, "stop")
        record = task_dir.read_record()
        if record is None:
            return  # never started
        if not supervisor_alive(record):
            self._stop_unwatched(container, task_dir, timeout, stop_signal)
            return
        task_dir.mark_stopping()
        deadline = time.monotonic() + KILL_GRACE
        while True:
            # Again after each wait: a restart that passed its last look at the
            # marker just before it was written makes one more run to stop.
            task = task_dir.load()
            if task is not None and _allows(task, "kill") and task_dir.remaining_pids():
                self._stop_run(container, task, timeout, stop_signal)
                deadline = time.monotonic() + KILL_GRACE
            try:
                task_dir.wait_for_supervisor(STOP_POLL)
                return
            except Unavailable:
                if time.monotonic() > deadline:
                    return

    def _stop_run(self, container: Container, task: TaskState, timeout: float, sig: int) -> None:
        with contextlib.suppress(NotFound):
            self._runc(container).kill(container.id, sig)
        if task.status is Status.PAUSED:
            self._thaw(container)
        if not self._wait_gone(container, timeout):
            self._kill_after_timeout(container)

    def _wait_gone(self, container: Container, timeout: float) -> bool:
        """_wait_gone waits until the task's exit is recorded, or its processes are gone.

        The second is enough for a stop: a supervisor that has no room on
        the disk for the exit record keeps it until it has.
        """
        task_dir = self.task_dir(container.id)
        deadline = time.monotonic() + timeout
        while True:
            task = task_dir.load()
            recorded = task is None or (task.exit is not None and task.exit.exit_code is not None)
            if recorded or not task_dir.remaining_pids():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(POLL_INTERVAL)

    def _kill_after_timeout(self, container: Container) -> None:
        from ctl.runtime.runc import RuncError

        try:
            self._runc(container).kill(container.id, signal.SIGKILL, all=True)
        except RuncError:
            # The task may have died between the wait and the kill (runc then
            # fails on the vanished cgroup), or runc lost its state: what is
            # left is killed through its cgroup.
            self.task_dir(container.id).kill_remaining(signal.SIGKILL)
        if not self._wait_gone(container, KILL_GRACE):
            raise Unavailable(f"container {container.name} is still running after SIGKILL")

    def _stop_unwatched(
        self, container: Container, task_dir: TaskDir, timeout: float, stop_signal: int
    ) -> None:
        """_stop_unwatched stops a task whose supervisor is gone, through runc or its cgroup.

        Nobody will record its exit (it stays unknown); ``stop`` says so on
        stderr when there was something to stop.
        """
        from ctl.runtime.runc import RuncError

        task = task_dir.load()
        if task is None or (task.exit is not None and task.exit.exit_code is not None):
            return  # stopped for good
        if not task_dir.remaining_pids():
            return
        sys.stderr.write(
            f"ctl: warning: container {container.name}: its supervisor was lost; "
            "stopping it through runc and its cgroup\n"
        )
        try:
            self._runc(container).kill(container.id, stop_signal)
        except RuncError:
            task_dir.kill_remaining(stop_signal)
        if task.status is Status.PAUSED:
            self._thaw(container)
        if not self._wait_gone(container, timeout):
            self._kill_after_timeout(container)

    def forget(self, container_id: str) -> None:
        task_dir = self.task_dir(container_id)
        task = task_dir.load()
        _gate(task, "delete", container_id[:12])
        if task is not None and (task.exit is None or task.exit.exit_code is None):
            # Nobody saw it end (a lost supervisor, a reboot, a record of
            # another version): runc may still hold the container, or even run it.
            task_dir.cleanup_lost(self._runc_by_id(container_id))
        self._networks.detach(container_id)
        task_dir.unmount_rootfs()
        task_dir.forget()

    def remove(self, container: Container, force: bool) -> None:
        self._remove(container.id, container.name, force, self._runc(container))

    def repair(self, container_id: str) -> str:
        task_dir = self.task_dir(container_id)
        with self.lifecycle_lock(container_id):
            task_dir.terminate(self._runc_by_id(container_id))
            self._networks.detach(container_id)
            task_dir.unmount_rootfs()
        return f"ended the task of container {container_id[:12]} and removed its records"

    def remove_unreadable(self, container_id: str, force: bool) -> None:
        # Without its record the container's --runtime is unknown: runc it is.
        self._remove(container_id, container_id[:12], force, self.runc)

    def _remove(self, container_id: str, name: str, force: bool, runc: Runc) -> None:
        record = self.task_dir(container_id).read_record()
        if record is not None and record["supervisor_pid"] == os.getpid():
            # The task's own supervisor (--rm): a stop may hold the lock while
            # it waits for this very process to finish.
            self._remove_task(container_id, name, force, runc)
            return
        with self.lifecycle_lock(container_id):
            self._remove_task(container_id, name, force, runc)

    def _remove_task(self, container_id: str, name: str, force: bool, runc: Runc) -> None:
        task_dir = self.task_dir(container_id)
        task = task_dir.load()
        if not (force and _allows(task, "kill")):
            _gate(task, "delete", name, hint="stop it first, or use rm -f")
        task_dir.terminate(runc)
        self._networks.detach(container_id)
        task_dir.remove()

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
        from pathlib import Path

        from ctl.runtime.runc import ExecOpts, Stdio
        from ctl.runtime.runopts import parse_user
        from ctl.runtime.spec import merge_env
        from ctl.runtime.users import resolve_user

        task = self.load(container.id)
        hint = "resume it first" if task is not None and task.status is Status.PAUSED else None
        _gate(task, "exec", container.name, hint=hint)
        assert task is not None  # a running task
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
            runc = self._runc(container)
            if tty and not detach:
                from ctl.runtime.ptyrelay import has_terminal, run_on_pty

                if not has_terminal(stdio):
                    return run_on_pty(
                        lambda pty: runc.exec(
                            container.id, process, ExecOpts(), Stdio(pty, pty, pty)
                        ),
                        stdio,
                    )
            if tty or detach:
                return runc.exec(container.id, process, ExecOpts(detach=detach), stdio)
            with _RuncErrorFilter(stdio.stderr if stdio.stderr is not None else 2) as stderr:
                filtered = Stdio(stdin=stdio.stdin, stdout=stdio.stdout, stderr=stderr.fd)
                return runc.exec(container.id, process, ExecOpts(), filtered)
        finally:
            signal.signal(signal.SIGINT, previous)

    def update(
        self,
        container: Container,
        resources: Resources,
        save: Callable[[Container], None] | None = None,
        restart: RestartPolicy | None = None,
    ) -> Container:
        with self.lifecycle_lock(container.id):
            task_dir = self._gated(container, "update")
            current = dict(container.spec.get("linux", {}).get("resources", {}))
            wanted = merged_resources(current, resources)
            linux = {**container.spec.get("linux", {}), "resources": wanted}
            updated = container.updated(spec={**container.spec, "linux": linux})
            live = task_dir.read_record() is not None and _allows(task_dir.load(), "kill")
            runc = self._runc(container)
            if live:
                runc.update(container.id, wanted)
            try:
                if save is not None:
                    save(updated)
                if restart is not None:
                    from ctl.runtime.supervisor.policy import write_restart_policy

                    write_restart_policy(task_dir, restart)
                if live:
                    bundle = task_dir.read_config()
                    linux = {**bundle.get("linux", {}), "resources": wanted}
                    task_dir.write_config({**bundle, "linux": linux})
            except BaseException:
                if live:
                    with contextlib.suppress(CtlError):
                        runc.update(container.id, current)
                raise
            return updated

    def attach(self, container: Container, stdin: bool, size_of: int = 0) -> Attached:
        from ctl.runtime.supervisor.attach import Attached

        task = self.load(container.id)
        hint = "resume it first" if task is not None and task.status is Status.PAUSED else None
        _gate(task, "attach", container.name, hint=hint or "start it first")
        assert task is not None  # a running task
        config = container.config
        return Attached.connect(
            self.task_dir(container.id).path, task.pid, config.tty, stdin and config.stdin, size_of
        )

    def pids(self, container: Container) -> list[int]:
        self._gated(container, "pids")
        return self._runc(container).ps(container.id)

    def metrics(self, container: Container) -> dict[str, Any]:
        from ctl.runtime.stats import sample

        task = self.task_dir(container.id).load()
        _gate(task, "metrics", container.name)
        cgroups_path = str(container.spec.get("linux", {}).get("cgroupsPath", ""))
        return sample(cgroups_path, task.pid if task else None)

    def logs(
        self, container: Container, *, follow: bool, tail: int | None
    ) -> Iterator[tuple[str, str, str, int]]:
        from ctl.runtime.logs import read_container_logs

        def stopped() -> bool:
            task = self.load(container.id)
            return task is None or task.status is Status.STOPPED

        log = self.task_dir(container.id).log
        entries = read_container_logs(log, container.config.log, tail, follow, stopped)
        for entry in entries:
            yield entry.stream, entry.text, entry.time, entry.skipped


def merged_resources(current: dict[str, Any], change: Resources) -> dict[str, Any]:
    """merged_resources is the OCI ``linux.resources`` ``current`` with ``change`` applied.

    Each part is merged key by key, as ``create`` merges its flags; memory
    plus swap is checked against the memory limit the container will have,
    as docker's daemon checks an update.
    """
    from ctl.runtime.resources import Resources

    change.validate()
    memory = dict(current.get("memory", {}))
    if change.memory and change.memory_swap is None and 0 < memory.get("swap", 0) < change.memory:
        raise InvalidArgument(
            "--memory: above the memory plus swap limit already set; "
            "set --memory-swap at the same time"
        )
    merged = {key: dict(part) if isinstance(part, dict) else part for key, part in current.items()}
    for key, part in change.linux_resources().items():
        merged[key] = {**merged.get(key, {}), **part}
    memory = merged.get("memory", {})
    Resources(
        memory=memory.get("limit"),
        memory_swap=memory.get("swap"),
        memory_reservation=memory.get("reservation"),
    ).validate()
    return merged


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
            write_all(self._target, chunk)
        if held and not held.startswith(self.PREFIX):
            write_all(self._target, held)
