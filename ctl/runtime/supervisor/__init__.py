"""The supervisor: one small process per task, like podman's conmon.

``spawn`` forks the supervisor from the calling ctl process *without exec*
(about 8x faster than starting a new interpreter, and independent of how ctl
was packaged; see the pex study). Everything it needs is imported by
``spawn``'s module before the fork, and ``spawn`` must be called while the process has
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
   stderr goes to ``TaskDir.supervisor_log``;
4. runs ``runc run --detach`` (``runc create`` [+ ``runc start``] with
   ``--console-socket`` for a tty, or when ``start`` is False), the
   container's stdio being pipes it holds, or the pty master runc sends over
   the socket;
5. writes ``state.json`` and reports the init pid to ``spawn``, which
   returns; or reports runc's error, which ``spawn`` raises (``ExecFailed``
   with exit code 126/127 when the command cannot be run);
6. copies the container's output to its log (json-file, local or none:
   ``ctl.runtime.logs``), to the caller's descriptors while attached (and
   the caller's stdin to the container), and to clients that attach later
   through its socket (``attach``); with a health check, runs it from the
   same poll loop (``ctl.runtime.health``);
7. reaps the init (and orphans), drains the output, reads the OOM counter,
   runs ``runc delete``, writes ``exit.json`` and tells an attached caller;
8. restarts the task if the policy (as ``update`` left it) says so and
   nobody marked it ``stopping`` (backoff 100 ms, doubling, capped at a
   minute, reset after 10 s of running); otherwise calls ``on_exit(status)`` (the caller's
   closure: ``--rm``, network teardown) and leaves with ``os._exit``.

Write errors (a full disk) never end the supervisor: log lines it cannot
write are dropped and counted (``state.json``'s ``log_lines_dropped``), its
own stderr is best effort, and an exit it cannot record is kept in memory
and written again every ``WRITE_RETRY`` seconds until there is room.

Losing the supervisor: the container's init is *not* tied to the supervisor
(runc has no parent-death signal for it, and a container should not die with
its babysitter). A supervisor killed with SIGKILL therefore leaves a
container that nobody watches, logs or reaps; ``TaskDir.load`` reports
the task STOPPED with an unknown exit code, and removing it must go through
``runc delete --force`` (``TaskDir.terminate``), which kills what is left.

The package has one module per side:

- ``wire``: the messages between the two, errors included;
- ``spawn``: the caller's side (``spawn``, ``Spawned``, ``TaskSpec``);
- ``process``: the supervisor process (``_Supervisor``);
- ``attach``: later clients on a running task's stdio, both ends;
- ``policy``: the restart policy ``update`` changes under a running task.

The task's files and records are ``ctl.runtime.taskdir.TaskDir``'s.

Example (what ``ctl run --rm -it IMAGE sh`` does)::

    spawned = spawn(runc, TaskSpec(TaskDir(path), tty=True, stdin=True,
                                   attach=Stdio(0, 1, 2)),
                    on_exit=remove_container)
    with spawned, spawned.forwarding_signals():
        status = spawned.wait()
    return status.exit_code
"""

from __future__ import annotations

from ctl.runtime.supervisor.spawn import Spawned, TaskSpec, spawn

__all__ = ["Spawned", "TaskSpec", "spawn"]
