"""The restart policy of a task whose supervisor runs, as ``update --restart`` changes it.

A supervisor holds the policy it was spawned with (``TaskSpec.restart``).
``update`` writes a new one to ``restart.json`` in the task directory, under
the task's lifecycle lock, whenever it changes the record's: so the file,
when there is one, says what the record says. The supervisor reads it at
each exit of the task: one small read, and only then.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ctl import fsutil

if TYPE_CHECKING:
    from ctl.containers.container import RestartPolicy
    from ctl.runtime.taskdir import TaskDir

RESTART_FILE: Final = "restart.json"


def write_restart_policy(task: TaskDir, policy: RestartPolicy) -> None:
    """write_restart_policy hands ``policy`` to the task's supervisor, if it has a directory."""
    if task.path.is_dir():
        fsutil.atomic_write_json(
            task.path / RESTART_FILE,
            policy._asdict(),
            durable=False,
            what=f"{task.path.name}/{RESTART_FILE}",
        )


def restart_policy(task: TaskDir, spawned_with: RestartPolicy | None) -> RestartPolicy | None:
    """restart_policy is the task's policy now: ``update``'s, else the one it was spawned with.

    A file that cannot be read (damage) leaves the spawned one.
    """
    try:
        doc = fsutil.read_json(task.path / RESTART_FILE)
    except (OSError, ValueError):
        return spawned_with
    # Imported only once update wrote a policy (a run without one spares every
    # start the import), by the supervisor after its fork, from ctl's own files.
    from ctl.containers.container import RestartPolicy

    try:
        return RestartPolicy(str(doc["name"]), int(doc.get("max_retries", 0)))
    except (TypeError, KeyError, AttributeError, ValueError):
        return spawned_with
