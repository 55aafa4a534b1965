"""The runtime layer with real runc and real processes: Runc, the supervisor, task state.

Bundles are written by hand from ``runc spec`` (ctl's own spec generation is
tested elsewhere) over a read-only busybox rootfs shared by the session.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import termios
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ctl.containers.container import RestartPolicy
from ctl.errdefs import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from ctl.runtime import cgroups, state
from ctl.runtime.logs import read_logs
from ctl.runtime.runc import CreateOpts, ExecFailed, ExecOpts, Runc, RuncNotFound, Stdio
from ctl.runtime.state import ExitStatus, Status
from ctl.runtime.supervisor import Spawned, TaskSpec, spawn
from ctl.runtime.supervisor.process import restart_delay, should_restart, supervisor_name
from ctl.runtime.taskdir import TaskDir

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

pytestmark = pytest.mark.needs_root

REPO_ROOT = Path(__file__).resolve().parents[2]
APPLETS = ("sh", "sleep", "echo", "cat", "true", "tty", "stty", "head", "yes")
# The bound of every wait for something that will happen: long enough for a CI host that
# other jobs keep busy; a passing test never waits it out.
WAIT = 30.0


def wait_until(predicate: Callable[[], object], timeout: float = WAIT, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.01)


def alive(pid: int) -> bool:
    return state.process_start_time(pid) is not None


@pytest.fixture(scope="session")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("rootfs")
    for d in ("bin", "proc", "dev", "sys", "tmp", "etc"):
        (root / d).mkdir()
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    for applet in APPLETS:
        (root / "bin" / applet).symlink_to("busybox")
    (root / "bin" / "noexec").write_text("#!/bin/sh\necho never\n")
    (root / "bin" / "noexec").chmod(0o644)
    return root


@pytest.fixture(scope="session")
def base_config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    spec_dir = tmp_path_factory.mktemp("spec")
    subprocess.run(["runc", "spec", "--bundle", str(spec_dir)], check=True)
    config: dict[str, Any] = json.loads((spec_dir / "config.json").read_text())
    return config


@dataclass
class Env:
    """Env makes bundles and task specs for one test, under its own runc root."""

    runc: Runc
    tmp: Path
    rootfs: Path
    base_config: dict[str, Any]

    def __post_init__(self) -> None:
        self.ids: list[str] = []

    def bundle(
        self,
        *args: str,
        tty: bool = False,
        edit: Callable[[dict[str, Any]], None] | None = None,
    ) -> tuple[str, Path]:
        runc_id = f"t{uuid.uuid4().hex[:12]}"
        self.ids.append(runc_id)
        bundle = self.task_dir(runc_id).bundle
        bundle.mkdir(parents=True)
        config = json.loads(json.dumps(self.base_config))
        config["process"]["args"] = list(args)
        config["process"]["terminal"] = tty
        config["root"] = {"path": str(self.rootfs), "readonly": True}
        config["linux"]["cgroupsPath"] = f"/ctl-test/{runc_id}"
        if edit is not None:
            edit(config)
        (bundle / "config.json").write_text(json.dumps(config))
        return runc_id, bundle

    def task_dir(self, runc_id: str) -> TaskDir:
        return TaskDir(self.tmp / "tasks" / runc_id)

    def task(self, *args: str, tty: bool = False, **kwargs: Any) -> TaskSpec:
        edit = kwargs.pop("edit", None)
        runc_id, _ = self.bundle(*args, tty=tty, edit=edit)
        return TaskSpec(self.task_dir(runc_id), tty=tty, **kwargs)

    def logs(self, spec: TaskSpec) -> list[tuple[str, str]]:
        return [(e.stream, e.text) for e in read_logs(spec.task.log)]

    def wait_gone(self, spec: TaskSpec, timeout: float = WAIT) -> state.TaskState:
        """wait_gone waits until the task stopped and its supervisor finished."""

        def done() -> bool:
            task = spec.task.load()
            return task is not None and not alive(task.supervisor_pid)

        wait_until(done, timeout, f"supervisor of {spec.task.id} to finish")
        task = spec.task.load()
        assert task is not None
        return task


@pytest.fixture
def env(tmp_path: Path, rootfs: Path, base_config: dict[str, Any]) -> Iterator[Env]:
    e = Env(Runc(tmp_path / "runc"), tmp_path, rootfs, base_config)
    yield e
    for runc_id in e.ids:
        e.task_dir(runc_id).cleanup_lost(e.runc)


# --- pure parts of the runtime -------------------------------------------------


def test_transitions() -> None:
    assert state.transition(Status.RUNNING, "pause") is Status.PAUSED
    assert state.transition(Status.PAUSED, "resume") is Status.RUNNING
    assert state.transition(Status.CREATED, "start") is Status.RUNNING
    with pytest.raises(FailedPrecondition, match="cannot pause task in created state"):
        state.transition(Status.CREATED, "pause")
    with pytest.raises(FailedPrecondition):
        state.transition(Status.STOPPED, "kill")
    with pytest.raises(FailedPrecondition):
        state.transition(Status.PAUSED, "exec")


@pytest.mark.parametrize(
    ("policy", "code", "count", "stopping", "want"),
    [
        (None, 1, 0, False, False),
        (RestartPolicy("no"), 1, 0, False, False),
        (RestartPolicy("always"), 0, 50, False, True),
        (RestartPolicy("always"), 0, 0, True, False),
        (RestartPolicy("unless-stopped"), 3, 0, False, True),
        (RestartPolicy("on-failure"), 0, 0, False, False),
        (RestartPolicy("on-failure"), 1, 99, False, True),
        (RestartPolicy("on-failure", 2), 1, 1, False, True),
        (RestartPolicy("on-failure", 2), 1, 2, False, False),
        (RestartPolicy("on-failure", 2), 137, 0, True, False),
    ],
)
def test_should_restart(
    policy: RestartPolicy | None, code: int, count: int, stopping: bool, want: bool
) -> None:
    assert should_restart(policy, ExitStatus(code), count, stopping) is want


def test_restart_delay_doubles_and_is_capped() -> None:
    assert [restart_delay(n) for n in range(3)] == [0.1, 0.2, 0.4]
    assert restart_delay(100) == 60.0


def test_load_task_never_raises_on_missing_or_broken_files(tmp_path: Path) -> None:
    task_dir = TaskDir(tmp_path / "task")
    assert task_dir.load() is None
    task_dir.path.mkdir()
    (task_dir.path / "state.json").write_text('{"id": "x", "pid"')
    assert task_dir.load() is None

    record = state.new_record("x", 1234, Status.RUNNING, tmp_path, tmp_path / "log")
    task_dir.write_record(record)
    task = task_dir.load()
    assert task is not None and task.status is Status.RUNNING and task.exit is None

    (task_dir.path / "exit.json").write_text("{")
    assert task_dir.load().status is Status.RUNNING  # type: ignore[union-attr]

    task_dir.write_exit(ExitStatus(3, finished_at=1.0))
    task = task_dir.load()
    assert task is not None and task.status is Status.STOPPED
    assert task.exit == ExitStatus(3, None, 1.0, False)


def test_load_task_after_reboot_or_pid_reuse(tmp_path: Path) -> None:
    task_dir = TaskDir(tmp_path)
    record = state.new_record("x", 1234, Status.RUNNING, tmp_path, tmp_path / "log")
    task_dir.write_record({**record, "boot_id": "another-boot"})
    task = task_dir.load()
    assert task is not None and task.status is Status.STOPPED
    assert task.exit == ExitStatus(None) and task.exit.describe() == "Exited (unknown)"

    task_dir.write_record({**record, "supervisor_start_time": 1})
    assert task_dir.load().status is Status.STOPPED  # type: ignore[union-attr]

    task_dir.write_record({**record, "version": 99})
    assert task_dir.load().status is Status.UNKNOWN  # type: ignore[union-attr]


# --- Runc ----------------------------------------------------------------------


def test_runc_verbs(env: Env) -> None:
    assert env.runc.version()["runc"]
    runc_id, bundle = env.bundle("sleep", "30")
    pid_file = env.tmp / "init.pid"
    with open(os.devnull, "rb") as null:
        env.runc.create(runc_id, bundle, CreateOpts(pid_file=pid_file), Stdio(null.fileno()))
    assert env.runc.state(runc_id)["status"] == "created"
    env.runc.start(runc_id)
    st = env.runc.state(runc_id)
    assert st["status"] == "running" and st["pid"] == int(pid_file.read_text())
    assert env.runc.ps(runc_id) == [st["pid"]]

    process = dict(env.base_config["process"], args=["sh", "-c", "exit 7"], terminal=False)
    assert env.runc.exec(runc_id, process) == 7
    process["args"] = ["sleep", "30"]
    exec_pid = env.tmp / "exec.pid"
    assert env.runc.exec(runc_id, process, ExecOpts(detach=True, pid_file=exec_pid)) == 0
    assert sorted(env.runc.ps(runc_id)) == sorted([st["pid"], int(exec_pid.read_text())])
    process["args"] = ["nope"]
    with pytest.raises(ExecFailed) as caught:
        env.runc.exec(runc_id, process, stdio=Stdio(stderr=os.open(os.devnull, os.O_WRONLY)))
    assert caught.value.exit_code == 127

    env.runc.kill(runc_id, signal.SIGKILL, all=True)
    wait_until(lambda: env.runc.state(runc_id)["status"] == "stopped", what="stopped")
    env.runc.delete(runc_id)
    with pytest.raises(RuncNotFound, match="container does not exist"):
        env.runc.state(runc_id)
    with pytest.raises(NotFound):
        env.runc.delete(runc_id)


# --- the supervisor: exit codes ------------------------------------------------


@pytest.mark.parametrize("code", [0, 3])
def test_exit_code(env: Env, code: int) -> None:
    spec = env.task("sh", "-c", f"exit {code}")
    with spawn(env.runc, spec) as spawned:
        status = spawned.wait(timeout=WAIT)
    assert status.exit_code == code and status.signal is None
    task = env.wait_gone(spec)
    assert task.status is Status.STOPPED and task.exit is not None
    assert task.exit.exit_code == code and task.exit.finished_at
    # The supervisor deleted the runc container.
    with pytest.raises(RuncNotFound):
        env.runc.state(spec.task.id)


def test_killed_by_signal_is_128_plus_n(env: Env) -> None:
    spec = env.task("sleep", "30")
    with spawn(env.runc, spec) as spawned:
        assert spec.task.load().status is Status.RUNNING  # type: ignore[union-attr]
        spawned.signal(signal.SIGKILL)
        status = spawned.wait(timeout=WAIT)
    assert (status.exit_code, status.signal) == (137, signal.SIGKILL)
    assert spec.task.read_exit() == status


@pytest.mark.parametrize(("command", "code"), [("nope", 127), ("/bin/noexec", 126), ("/bin", 126)])
def test_command_that_cannot_run(env: Env, command: str, code: int) -> None:
    spec = env.task(command)
    with pytest.raises(ExecFailed) as caught:
        spawn(env.runc, spec)
    assert caught.value.exit_code == code
    assert command in str(caught.value) and "\n" not in str(caught.value)
    assert spec.task.load() is None
    with pytest.raises(RuncNotFound):
        env.runc.state(spec.task.id)


def test_foreground_signals_are_forwarded(env: Env) -> None:
    spec = env.task("sh", "-c", 'trap "exit 42" INT; echo ready; sleep 30 & wait')
    # Python's default_int_handler, or SIG_IGN where the suite runs as a background job.
    callers = signal.getsignal(signal.SIGINT)
    with spawn(env.runc, spec) as spawned:
        wait_until(lambda: env.logs(spec), what="the trap to be set")
        with spawned.forwarding_signals():
            os.kill(os.getpid(), signal.SIGINT)
            status = spawned.wait(timeout=WAIT)
    assert status.exit_code == 42
    # The caller's own handler is back.
    assert signal.getsignal(signal.SIGINT) is callers


def test_on_exit_runs_in_the_supervisor(env: Env) -> None:
    marker = env.tmp / "on_exit"

    def on_exit(status: ExitStatus) -> None:
        marker.write_text(f"{os.getpid()} {status.exit_code}")

    spec = env.task("true")
    with spawn(env.runc, spec, on_exit=on_exit) as spawned:
        spawned.wait(timeout=WAIT)
        supervisor_pid = spawned.supervisor_pid
    assert marker.read_text() == f"{supervisor_pid} 0"

    def broken(status: ExitStatus) -> None:
        raise RuntimeError("teardown exploded")

    spec = env.task("true")
    with spawn(env.runc, spec, on_exit=broken) as spawned:
        assert spawned.wait(timeout=WAIT).exit_code == 0
    # The supervisor's own failures land in its log, not on anyone's terminal.
    assert "RuntimeError: teardown exploded" in spec.task.supervisor_log.read_text()


def test_spawn_refuses_a_task_dir_with_a_live_task(env: Env) -> None:
    spec = env.task("sleep", "30")
    with spawn(env.runc, spec) as spawned:
        with pytest.raises(AlreadyExists, match="is running"):
            spawn(env.runc, spec)
        spawned.signal(signal.SIGKILL)
        spawned.wait(timeout=WAIT)


# --- the supervisor: stdio and logs --------------------------------------------


def test_output_is_logged_per_stream(env: Env) -> None:
    spec = env.task("sh", "-c", "echo out; echo err >&2; echo -n partial")
    with spawn(env.runc, spec) as spawned:
        spawned.wait(timeout=WAIT)
    assert env.logs(spec) == [("stdout", "out\n"), ("stderr", "err\n"), ("stdout", "partial")]


def test_attached_output_goes_to_caller_and_log(env: Env) -> None:
    spec_args = ("sh", "-c", "echo out; echo err >&2; exit 5")
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    spec = env.task(*spec_args, attach=Stdio(None, out_w, err_w))
    with spawn(env.runc, spec) as spawned:
        os.close(out_w)
        os.close(err_w)
        # The supervisor lets go of the caller's pipes when the container exits:
        # reading to EOF must not hang.
        with os.fdopen(out_r, "rb") as out, os.fdopen(err_r, "rb") as err:
            assert out.read() == b"out\n"
            assert err.read() == b"err\n"
        assert spawned.wait(timeout=WAIT).exit_code == 5
    assert env.logs(spec) == [("stdout", "out\n"), ("stderr", "err\n")]


def test_attached_stdin_reaches_the_container(env: Env) -> None:
    in_r, in_w = os.pipe()
    out_r, out_w = os.pipe()
    spec = env.task("cat", stdin=True, attach=Stdio(in_r, out_w, None))
    with spawn(env.runc, spec) as spawned:
        os.close(in_r)
        os.close(out_w)
        os.write(in_w, b"hello\nworld\n")
        os.close(in_w)
        with os.fdopen(out_r, "rb") as out:
            assert out.read() == b"hello\nworld\n"
        assert spawned.wait(timeout=WAIT).exit_code == 0
    assert env.logs(spec) == [("stdout", "hello\n"), ("stdout", "world\n")]


def test_tty_with_a_pty_caller(env: Env) -> None:
    master, slave = os.openpty()
    termios.tcsetwinsize(slave, (33, 101))
    before = termios.tcgetattr(slave)
    spec = env.task(
        "sh",
        "-c",
        "tty; stty size; read line; echo got $line; stty size",
        tty=True,
        stdin=True,
        attach=Stdio(slave, slave, slave),
    )
    with spawn(env.runc, spec) as spawned:
        # The caller's terminal is raw while attached.
        assert termios.tcgetattr(slave)[3] & termios.ICANON == 0
        output = b""

        def saw(text: bytes) -> bool:
            nonlocal output
            output += os.read(master, 4096)
            return text in output

        wait_until(lambda: saw(b"33 101"), what="first stty size")
        termios.tcsetwinsize(slave, (40, 120))
        with spawned.forwarding_signals():
            os.kill(os.getpid(), signal.SIGWINCH)
        time.sleep(0.1)
        os.write(master, b"hi\r")
        wait_until(lambda: saw(b"40 120"), what="stty size after SIGWINCH")
        assert spawned.wait(timeout=WAIT).exit_code == 0
    assert termios.tcgetattr(slave) == before
    lines = output.decode().splitlines()
    assert lines[0].startswith("/dev/pts/")
    assert "got hi" in lines
    logged = "".join(text for _, text in env.logs(spec))
    assert "/dev/pts/" in logged and "got hi" in logged
    os.close(master)
    os.close(slave)


def test_detached_tty_task(env: Env) -> None:
    spec = env.task("sh", "-c", "tty", tty=True)
    with spawn(env.runc, spec) as spawned:
        assert spawned.wait(timeout=WAIT).exit_code == 0
    assert env.logs(spec)[0][1].startswith("/dev/pts/")


def test_created_task_starts_later(env: Env) -> None:
    # The pause gives set_status time to record the start before the exit (see
    # TaskService.start_created for a process that exits at once).
    spec = env.task("sh", "-c", "sleep 1; echo started", start=False)
    with spawn(env.runc, spec) as spawned:
        task = spec.task.load()
        assert task is not None and task.status is Status.CREATED and task.pid == spawned.init_pid
        assert env.runc.state(spec.task.id)["status"] == "created"
        env.runc.start(spec.task.id)
        assert spec.task.set_status("start").status is Status.RUNNING
        assert spawned.wait(timeout=WAIT).exit_code == 0
    assert env.logs(spec) == [("stdout", "started\n")]


def test_removing_a_created_task(env: Env) -> None:
    spec = env.task("true", start=False)
    with spawn(env.runc, spec) as spawned:
        env.runc.delete(spec.task.id, force=True)
        assert spawned.wait(timeout=WAIT).exit_code == 137


# --- the supervisor: detaching and surviving -----------------------------------

SPAWNER = """
import json, sys, time
sys.path.insert(0, {repo!r})
from pathlib import Path
from ctl.runtime.runc import Runc
from ctl.runtime.supervisor import TaskSpec, spawn
args = json.loads(sys.argv[1])
from ctl.runtime.taskdir import TaskDir
spec = TaskSpec(TaskDir(Path(args["task_dir"])))
spawned = spawn(Runc(Path(args["root"])), spec)
print(spawned.init_pid, spawned.supervisor_pid, flush=True)
if args["linger"]:
    time.sleep(60)
"""


def run_spawner(env: Env, spec: TaskSpec, linger: bool) -> subprocess.Popen[bytes]:
    args = {
        "task_dir": str(spec.task.path),
        "root": str(env.runc.root),
        "linger": linger,
    }
    return subprocess.Popen(
        [sys.executable, "-c", SPAWNER.format(repo=str(REPO_ROOT)), json.dumps(args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def test_detached_spawner_output_ends_at_once(env: Env) -> None:
    spec = env.task("sleep", "60")
    proc = run_spawner(env, spec, linger=False)
    assert proc.stdout is not None and proc.stderr is not None
    pipes = {f"pipe:[{os.fstat(f.fileno()).st_ino}]" for f in (proc.stdout, proc.stderr)}
    started = time.monotonic()
    # As in x=$(ctl run -d ...): EOF on the spawner's stdout and stderr while the task runs.
    out, err = proc.communicate(timeout=40)
    assert time.monotonic() - started < 20
    assert proc.returncode == 0, err
    init_pid, supervisor_pid = map(int, out.split())
    assert alive(init_pid) and alive(supervisor_pid)
    # Neither the supervisor nor the container holds the spawner's stdout or stderr.
    for pid in (supervisor_pid, init_pid):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            assert os.readlink(f"/proc/{pid}/fd/{fd}") not in pipes
    comm = Path(f"/proc/{supervisor_pid}/comm").read_text().strip()
    assert comm == supervisor_name(spec.task.id) == f"ctl-sup-{spec.task.id[:7]}"
    env.runc.kill(spec.task.id, signal.SIGKILL)
    assert env.wait_gone(spec).exit == spec.task.read_exit()


def test_concurrent_spawns(env: Env) -> None:
    specs = [env.task("sh", "-c", f"echo {i}") for i in range(20)]
    procs = [run_spawner(env, spec, linger=False) for spec in specs]
    for proc in procs:
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
    for i, spec in enumerate(specs):
        task = env.wait_gone(spec)
        assert task.exit is not None and task.exit.exit_code == 0
        assert env.logs(spec) == [("stdout", f"{i}\n")]


def test_killing_the_spawners_session_leaves_the_task(env: Env) -> None:
    spec = env.task("sleep", "30")
    proc = run_spawner(env, spec, linger=True)
    assert proc.stdout is not None
    init_pid, supervisor_pid = map(int, proc.stdout.readline().split())
    assert os.getsid(proc.pid) == proc.pid != os.getsid(supervisor_pid)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.1)
    assert alive(init_pid) and alive(supervisor_pid)
    assert spec.task.load().status is Status.RUNNING  # type: ignore[union-attr]
    # The supervisor sits in its own cgroup, away from its starter's.
    own = [str(p) for p in cgroups.supervisor_cgroups(spec.task.id)]
    assert own, "no cgroup hierarchy to move into"
    cgroup_file = Path(f"/proc/{supervisor_pid}/cgroup").read_text()
    assert f"/ctl/sup-{spec.task.id}" in cgroup_file
    env.runc.kill(spec.task.id, signal.SIGKILL)
    task = env.wait_gone(spec)
    assert task.exit is not None and task.exit.exit_code == 137
    # The supervisor removed its cgroup on the way out.
    assert not any(Path(p).exists() for p in own)


def test_supervisor_killed_with_sigkill(env: Env) -> None:
    spec = env.task("sleep", "30")
    with spawn(env.runc, spec) as spawned:
        os.kill(spawned.supervisor_pid, signal.SIGKILL)
        wait_until(lambda: not alive(spawned.supervisor_pid), what="supervisor death")
        task = spec.task.load()
        assert task is not None and task.status is Status.STOPPED
        assert task.exit == ExitStatus(None)
        # The container outlives its supervisor; cleanup kills and deletes it.
        assert alive(spawned.init_pid)
        spec.task.cleanup_lost(env.runc)
        assert not alive(spawned.init_pid)
        with pytest.raises(RuncNotFound):
            env.runc.state(spec.task.id)
        assert not any(p.exists() for p in cgroups.supervisor_cgroups(spec.task.id))
        # A caller waiting on a lost supervisor gets an unknown status, not a hang.
        assert spawned.wait(timeout=WAIT) == ExitStatus(None)


def test_terminate_kills_and_forgets_a_restarting_task(env: Env) -> None:
    spec = env.task("sleep", "30", restart=RestartPolicy("always"))
    with spawn(env.runc, spec) as spawned:
        spec.task.terminate(env.runc)
        assert not alive(spawned.init_pid) and not alive(spawned.supervisor_pid)
    assert spec.task.load() is None
    with pytest.raises(RuncNotFound):
        env.runc.state(spec.task.id)
    # The log and the bundle are not the runtime's to delete; the records are.
    assert sorted(p.name for p in spec.task.path.iterdir()) == ["bundle", spec.task.log.name]
    spec.task.terminate(env.runc)


def test_on_exit_can_delete_its_own_task(env: Env) -> None:
    spec = env.task("echo", "bye")

    def remove(status: ExitStatus) -> None:
        spec.task.terminate(env.runc)

    with spawn(env.runc, spec, on_exit=remove) as spawned:
        assert spawned.wait(timeout=WAIT).exit_code == 0
    assert sorted(p.name for p in spec.task.path.iterdir()) == ["bundle", spec.task.log.name]
    assert [e.text for e in read_logs(spec.task.log)] == ["bye\n"]


def test_a_new_task_waits_for_the_last_supervisor(env: Env) -> None:
    spec = env.task("true")
    # The supervisor keeps no file descriptor of its parent's: it is told to end by a file.
    released = env.tmp / "released"

    def slow_teardown(status: ExitStatus) -> None:
        # It ends when the test says, never before the second spawn has begun: a test
        # scheduled late does not find the first supervisor already gone.
        while not released.exists():
            time.sleep(0.01)

    with spawn(env.runc, spec, on_exit=slow_teardown) as first:
        assert first.wait(cleanup=False, timeout=WAIT).exit_code == 0
        started = time.monotonic()
        release = threading.Timer(0.3, released.touch)
        release.start()
        with spawn(env.runc, spec) as second:
            assert not alive(first.supervisor_pid)
            assert time.monotonic() - started > 0.1
            assert second.wait(timeout=WAIT).exit_code == 0
        release.join()


# --- the supervisor: restart policies ------------------------------------------


def test_restart_on_failure_restarts_n_times(env: Env) -> None:
    spec = env.task("sh", "-c", "echo run; exit 1", restart=RestartPolicy("on-failure", 2))
    with spawn(env.runc, spec) as spawned:
        first = spawned.wait(timeout=WAIT)
    assert first.exit_code == 1
    task = env.wait_gone(spec)
    assert task.restart_count == 2
    assert task.exit is not None and task.exit.exit_code == 1
    assert env.logs(spec) == [("stdout", "run\n")] * 3


def test_stop_marker_prevents_restart(env: Env) -> None:
    spec = env.task("sleep", "30", restart=RestartPolicy("always"))
    with spawn(env.runc, spec):
        spec.task.mark_stopping()
        env.runc.kill(spec.task.id, signal.SIGKILL)
    task = env.wait_gone(spec)
    assert task.restart_count == 0
    assert task.exit is not None and task.exit.exit_code == 137


def test_restart_always_gets_a_new_init(env: Env) -> None:
    spec = env.task("sleep", "30", restart=RestartPolicy("always"))
    with spawn(env.runc, spec) as spawned:
        env.runc.kill(spec.task.id, signal.SIGKILL)

        def restarted() -> bool:
            task = spec.task.load()
            return task is not None and task.restart_count == 1 and task.status is Status.RUNNING

        wait_until(restarted, what="restart")
        task = spec.task.load()
        assert task is not None and task.pid != spawned.init_pid and alive(task.pid)
        assert env.runc.state(spec.task.id)["pid"] == task.pid
        spec.task.mark_stopping()
        env.runc.kill(spec.task.id, signal.SIGKILL)
    assert env.wait_gone(spec).restart_count == 1


# --- pause and resume ----------------------------------------------------------


def process_state(pid: int) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("State:"):
            return line.split()[1]
    raise AssertionError(f"no State in /proc/{pid}/status")


def _freezer_state(cgroup: Path) -> str:
    """_freezer_state is v1's freezer.state, or its v2 equivalent from cgroup.events."""
    if cgroups.is_v2():
        events = dict(line.split() for line in (cgroup / "cgroup.events").read_text().splitlines())
        return "FROZEN" if events["frozen"] == "1" else "THAWED"
    return (cgroup / "freezer.state").read_text().strip()


def test_pause_freezes_the_task(env: Env) -> None:
    spec = env.task("sleep", "30")
    with spawn(env.runc, spec) as spawned:
        freezer = cgroups.container_cgroup(f"/ctl-test/{spec.task.id}", "freezer")
        assert freezer is not None
        env.runc.pause(spec.task.id)
        spec.task.set_status("pause")
        assert env.runc.state(spec.task.id)["status"] == "paused"
        assert _freezer_state(freezer) == "FROZEN"
        # A frozen task shows as uninterruptible sleep on v1; v2's freezer traps it in an
        # interruptible one.
        assert process_state(spawned.init_pid) == ("S" if cgroups.is_v2() else "D")
        assert spec.task.load().status is Status.PAUSED  # type: ignore[union-attr]
        with pytest.raises(FailedPrecondition, match="cannot pause task in paused state"):
            spec.task.set_status("pause")

        env.runc.resume(spec.task.id)
        spec.task.set_status("resume")
        assert _freezer_state(freezer) == "THAWED"
        assert process_state(spawned.init_pid) in ("S", "R")
        assert spec.task.load().status is Status.RUNNING  # type: ignore[union-attr]
        spawned.signal(signal.SIGKILL)
        assert spawned.wait(timeout=WAIT).exit_code == 137


def test_oom_kill_is_recorded(env: Env) -> None:
    def limit(config: dict[str, Any]) -> None:
        config["linux"]["resources"]["memory"] = {"limit": 8 << 20, "swap": 8 << 20}

    # The shell's variable grows until the cgroup's OOM killer ends it (64 MB at
    # most, should the limit not hold).
    spec = env.task("sh", "-c", "x=$(yes | head -c 64000000)", edit=limit)
    with spawn(env.runc, spec) as spawned:
        status = spawned.wait(timeout=WAIT)
    assert status.exit_code == 137 and status.oom
    assert spec.task.read_exit() == status


def test_spawn_checks_the_bundle(env: Env) -> None:
    spec = env.task("true")
    with pytest.raises(InvalidArgument, match=r"process\.terminal"):
        spawn(env.runc, spec._replace(tty=True))


def test_wait_on_spawned_from_the_pipe(env: Env) -> None:
    spec = env.task("sh", "-c", "sleep 0.2; exit 4")
    spawned: Spawned = spawn(env.runc, spec)
    try:
        assert spawned.wait(cleanup=False).exit_code == 4
    finally:
        spawned.close()


def test_a_full_disk_leaves_the_supervisor_watching_and_the_exit_kept(env: Env) -> None:
    """Log lines that cannot be written are dropped and counted; the exit waits for room."""
    tasks = env.tmp / "tasks"
    tasks.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(tasks)], check=True)
    try:
        spec = env.task("sh", "-c", "while true; do echo chatty; done")
        with spawn(env.runc, spec) as spawned:
            filler = tasks / "filler"
            with open(filler, "ab", buffering=0) as f:
                for chunk in (65536, 4096, 1):
                    with contextlib.suppress(OSError):
                        while True:
                            f.write(b"\0" * chunk)
            time.sleep(0.5)
            assert alive(spawned.supervisor_pid) and alive(spawned.init_pid)
            os.kill(spawned.init_pid, signal.SIGKILL)
            wait_until(lambda: not alive(spawned.init_pid), what="the init to die")
            time.sleep(1)
            # No room for exit.json: the supervisor holds the exit and tries again.
            assert alive(spawned.supervisor_pid)
            assert spec.task.read_exit() is None
            filler.unlink()
            task = env.wait_gone(spec)
        assert task.exit is not None and task.exit.exit_code == 137
        assert task.log_lines_dropped > 0
    finally:
        subprocess.run(["umount", "-l", str(tasks)], check=False)
