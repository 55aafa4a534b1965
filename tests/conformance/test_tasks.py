"""Task conformance: every operation from every status, against real runc.

Each case brings a fresh container's task to a status, runs one operation of
``ctl.tasks.Task`` and checks the outcome against ``TRANSITIONS``: the status
the table names, or FailedPrecondition with nothing changed. An UNKNOWN task
is a record written by another version of ctl (another record version).
"""

from __future__ import annotations

import os
import signal
import subprocess
from typing import TYPE_CHECKING

import pytest

import ctl
from ctl.containers.create import ContainerOptions
from ctl.errdefs import FailedPrecondition
from ctl.runtime import state
from ctl.runtime.resources import Resources
from ctl.runtime.runc import Stdio
from ctl.runtime.state import TRANSITIONS, Status
from tests.helpers import clean_root

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from ctl.containers.container import Container
    from ctl.tasks import TaskService
    from tests.images import CanonicalImages

pytestmark = [pytest.mark.needs_root, pytest.mark.timeout(60)]


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, images: CanonicalImages
) -> Iterator[ctl.Client]:
    root = tmp_path_factory.mktemp("tasks") / "root"
    client = ctl.Client(root=root)
    client.pull(images.busybox_ref)
    yield client
    clean_root(root)


@pytest.fixture
def container(client: ctl.Client, images: CanonicalImages) -> Iterator[Container]:
    options = ContainerOptions(args=("sleep", "60"), network="none", pull="never")
    created = client.create_container(images.busybox_ref, options)
    yield created
    client.remove_container(created.id, force=True)


def _make_unknown(tasks: TaskService, container: Container) -> None:
    """_make_unknown leaves the record a newer ctl would: another version, its supervisor gone."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    task_dir = tasks.task_dir(container.id)
    record = state.new_record(container.id, gone.pid, Status.RUNNING, task_dir.bundle, task_dir.log)
    task_dir.write_record(
        {**record, "version": state.RECORD_VERSION + 1, "supervisor_pid": gone.pid}
    )


def _bring(tasks: TaskService, container: Container, status: Status) -> None:
    """_bring takes the container's task to ``status``."""
    if status is Status.UNKNOWN:
        _make_unknown(tasks, container)
    elif status is Status.CREATED:
        tasks.start(container, start=False).close()
    else:
        tasks.start(container).close()
        if status is Status.PAUSED:
            tasks.pause(container)
        elif status is Status.STOPPED:
            tasks.kill(container, signal.SIGKILL)
            tasks.wait(container.id, 10)
            tasks.task_dir(container.id).wait_for_supervisor()
    assert _status(tasks, container) is status


def _status(tasks: TaskService, container: Container) -> Status | None:
    task = tasks.load(container.id)
    return task.status if task is not None else None


def _exec(tasks: TaskService, container: Container) -> None:
    null = os.open(os.devnull, os.O_RDWR)
    try:
        stdio = Stdio(null, null, null)
        code = tasks.exec(
            container,
            ["true"],
            tty=False,
            detach=False,
            env=[],
            workdir=None,
            user=None,
            stdio=stdio,
        )
    finally:
        os.close(null)
    assert code == 0


# ACTIONS are the Task methods, each with the TRANSITIONS operation that gates it.
ACTIONS: dict[str, tuple[str, Callable[[TaskService, Container], object]]] = {
    "start": ("run", lambda t, c: t.start(c).close()),
    "start(start=False)": ("create", lambda t, c: t.start(c, start=False).close()),
    "start_created": ("start", lambda t, c: t.start_created(c)),
    # SIGWINCH: a signal the container's init ignores, so the status stays.
    "kill": ("kill", lambda t, c: t.kill(c, signal.SIGWINCH)),
    "stop": ("stop", lambda t, c: t.stop(c, 5.0, signal.SIGKILL)),
    "pause": ("pause", lambda t, c: t.pause(c)),
    "resume": ("resume", lambda t, c: t.resume(c)),
    "exec": ("exec", _exec),
    "pids": ("pids", lambda t, c: t.pids(c)),
    "metrics": ("metrics", lambda t, c: t.metrics(c)),
    "update": ("update", lambda t, c: t.update(c, Resources(pids_limit=64))),
    "attach": ("attach", lambda t, c: t.attach(c, stdin=False).close()),
    "forget": ("delete", lambda t, c: t.forget(c.id)),
    "remove": ("delete", lambda t, c: t.remove(c, force=False)),
}


def test_every_table_operation_has_an_action() -> None:
    assert {op for op, _ in ACTIONS.values()} == {op for ops in TRANSITIONS.values() for op in ops}


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("status", list(Status), ids=lambda s: s.value)
def test_operation_follows_the_table(
    client: ctl.Client, container: Container, status: Status, action: str
) -> None:
    tasks = client.tasks
    op, run = ACTIONS[action]
    _bring(tasks, container, status)
    target = TRANSITIONS[status].get(op)
    if target is None:
        with pytest.raises(
            FailedPrecondition, match=rf"^cannot .* container \S+: it is {status.value}$"
        ):
            run(tasks, container)
        assert _status(tasks, container) is status
        return
    run(tasks, container)
    if op == "delete":
        assert tasks.load(container.id) is None
        assert tasks.task_dir(container.id).path.exists() is (action == "forget")
    else:
        assert _status(tasks, container) is target


@pytest.mark.parametrize("status", list(Status), ids=lambda s: s.value)
def test_forced_remove_takes_any_status(
    client: ctl.Client, container: Container, status: Status
) -> None:
    """remove(force=True) kills a live task first: it is allowed where kill or delete is."""
    tasks = client.tasks
    _bring(tasks, container, status)
    assert "kill" in TRANSITIONS[status] or "delete" in TRANSITIONS[status]
    tasks.remove(container, force=True)
    assert tasks.load(container.id) is None
    assert not tasks.task_dir(container.id).path.exists()


@pytest.mark.parametrize("status", list(Status), ids=lambda s: s.value)
def test_a_sound_task_has_no_problems(
    client: ctl.Client, container: Container, status: Status
) -> None:
    """problems (system check) finds nothing wrong with a task in any status ctl left it in."""
    tasks = client.tasks
    _bring(tasks, container, status)
    assert tasks.problems(container.id) == []


def test_remove_unreadable_takes_a_live_task(client: ctl.Client, container: Container) -> None:
    """remove_unreadable, for a damaged container record, needs force for a live task too."""
    tasks = client.tasks
    _bring(tasks, container, Status.RUNNING)
    with pytest.raises(FailedPrecondition):
        tasks.remove_unreadable(container.id, force=False)
    pid = tasks.load(container.id).pid  # type: ignore[union-attr]
    tasks.remove_unreadable(container.id, force=True)
    assert state.process_start_time(pid) is None
    assert not tasks.task_dir(container.id).path.exists()
