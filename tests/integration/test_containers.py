"""Issue 4: real containers through runc on overlayfs, via the CLI and the Python API."""

from __future__ import annotations

import concurrent.futures
import json
import os
import pty
import select
import signal
import subprocess
import time
from pathlib import Path

import pytest

import ctl
from tests.helpers import ctl_command, ctl_proc, imported_modules, pulled_root
from tests.images import CanonicalImages

pytestmark = pytest.mark.needs_root


@pytest.fixture(scope="module")
def croot(tmp_path_factory: pytest.TempPathFactory, images: CanonicalImages) -> Path:
    yield from pulled_root(tmp_path_factory.mktemp("containers"), images.busybox_ref)


@pytest.fixture
def image(images: CanonicalImages) -> str:
    return images.busybox_ref


def _wait_for(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_lifecycle_through_the_python_api(croot: Path, image: str) -> None:
    client = ctl.Client(root=croot)
    container = client.new_container("api-life", image, options=_opts(["sleep", "60"]))
    task = container.new_task()
    assert task.status() == "created"
    task.start()
    assert task.status() == "running"
    task.pause()
    assert task.status() == "paused"
    assert _process_state(task.pid) == "frozen"
    task.resume()
    assert task.status() == "running"
    task.kill(signal.SIGKILL)
    status = task.wait(10)
    assert status.exit_code == 137
    task.delete()
    container.delete()
    assert ctl_proc("ps", "-a", "-q", root=croot).stdout.find(container.id[:12]) == -1


def test_a_created_task_that_exits_at_once_starts_cleanly(croot: Path, image: str) -> None:
    """runc start can lose a race with a process that exits at once (its supervisor
    reaps it and deletes the runc container first): start must still succeed."""
    client = ctl.Client(root=croot)
    for i in range(10):
        container = client.new_container(f"quick-{i}", image, options=_opts(["true"]))
        task = container.new_task()
        task.start()
        assert task.wait(10).exit_code == 0
        task.delete()
        container.delete()


def test_the_readme_python_api_example(croot: Path, images: CanonicalImages) -> None:
    """README's "Python API" example, one statement a line, with a test image and root."""
    sh = "trap 'exit 143' TERM; while :; do sleep 0.1; done"
    ref = images.factory.push(images.factory.image(cmd=["sh", "-c", sh]), "test/readme")

    client = ctl.Client(root=croot, namespace="default")
    image = client.pull(ref)
    container = client.new_container("web", image)
    task = container.new_task()
    task.start()
    task.pause()
    task.resume()
    task.kill(signal.SIGTERM)
    status = task.wait()
    task.delete()
    container.delete()

    assert status.exit_code == 143
    assert container.id[:12] not in ctl_proc("ps", "-a", "-q", root=croot).stdout


def _opts(args: list[str]):
    from ctl.containers.create import ContainerOptions

    return ContainerOptions(args=tuple(args))


def _process_state(pid: int) -> str:
    """_process_state reads the freezer state of the cgroup ``pid`` is in (v1 or v2)."""
    with open(f"/proc/{pid}/cgroup") as f:
        lines = f.read().splitlines()
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "freezer":
            state = Path("/sys/fs/cgroup/freezer") / path.lstrip("/") / "freezer.state"
            return "frozen" if state.read_text().strip() == "FROZEN" else "thawed"
        if controllers == "" and Path("/sys/fs/cgroup/cgroup.controllers").exists():
            state = Path("/sys/fs/cgroup") / path.lstrip("/") / "cgroup.freeze"
            return "frozen" if state.read_text().strip() == "1" else "thawed"
    return "unknown"


def test_lifecycle_through_the_cli(croot: Path, image: str) -> None:
    cid = (
        ctl_proc(
            "run",
            "-d",
            "--name",
            "cli-life",
            image,
            "sh",
            "-c",
            "while true; do echo tick; sleep 0.1; done",
            root=croot,
        )
        .assert_success()
        .stdout.strip()
    )
    assert len(cid) == 64
    assert "cli-life" in ctl_proc("ps", root=croot).assert_success().stdout
    ctl_proc("pause", "cli-life", root=croot).assert_success()
    assert "Paused" in ctl_proc("ps", root=croot).stdout
    ctl_proc("resume", "cli-life", root=croot).assert_success()
    ctl_proc("unpause", "cli-life", root=croot).assert_failure(125)
    _wait_for(lambda: "tick" in ctl_proc("logs", "cli-life", root=croot).stdout)
    ctl_proc("exec", "cli-life", "sh", "-c", "exit 4", root=croot).assert_failure(4)
    assert ctl_proc("exec", "cli-life", "echo", "hi", root=croot).stdout == "hi\n"
    ctl_proc("rm", "cli-life", root=croot).assert_failure(125, stderr_re="running")
    ctl_proc("stop", "-t", "1", "cli-life", root=croot).assert_success()
    ps = ctl_proc("ps", "-a", "--format", "json", root=croot).json_lines()
    row = next(r for r in ps if r["Names"] == "cli-life")
    assert row["Status"].startswith("Exited (137)")
    assert ctl_proc("wait", "cli-life", root=croot).assert_success().stdout == "137\n"
    ctl_proc("rm", "cli-life", root=croot).assert_success()
    ctl_proc("inspect", "cli-life", root=croot).assert_failure(125, stderr_re="no such object")


@pytest.mark.parametrize(
    ("command", "code"),
    [
        (["sh", "-c", "exit 3"], 3),
        (["/etc/passwd"], 126),
        (["no-such-command"], 127),
        (["sh", "-c", "sleep 30 & kill -9 $!; wait $!"], 137),
    ],
)
def test_exit_codes(croot: Path, image: str, command: list[str], code: int) -> None:
    result = ctl_proc("run", "--rm", image, *command, root=croot)
    assert result.code == code, result
    assert "Traceback" not in result.stderr


def test_foreground_output_is_logged_and_rm_removes(croot: Path, image: str) -> None:
    result = ctl_proc(
        "run", "--name", "fg-log", image, "sh", "-c", "echo out; echo err >&2", root=croot
    )
    assert result.code == 0 and result.stdout == "out\n" and result.stderr == "err\n"
    logs = ctl_proc("logs", "fg-log", root=croot)
    assert logs.stdout == "out\n" and logs.stderr == "err\n"
    ctl_proc("rm", "fg-log", root=croot).assert_success()
    ctl_proc("run", "--rm", "--name", "gone", image, "true", root=croot).assert_success()
    assert "gone" not in ctl_proc("ps", "-a", root=croot).stdout


@pytest.mark.parametrize("snapshotter", ["overlayfs", "native"])
def test_stop_then_start_at_once_and_no_mounts_left(
    croot: Path, image: str, snapshotter: str
) -> None:
    """stop returns after the supervisor released the rootfs and network; start waits for it.

    Before, a start right after a stop found the rootfs still mounted, skipped
    mounting it, and the old supervisor then unmounted it under the new task.
    The native snapshotter's rootfs is a bind mount from the same filesystem,
    which os.path.ismount does not see: it was mounted twice, never unmounted.
    """

    def mounts_under_root() -> list[str]:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
        return [line.split()[4] for line in lines if line.split()[4].startswith(str(croot))]

    mounts_before = mounts_under_root()  # other tests' containers may be running
    flag = ("--snapshotter", snapshotter)
    result = ctl_proc(*flag, "run", "--rm", image, "sh", "-c", "exit 3", root=croot)
    assert result.code == 3, result
    ctl_proc(*flag, "run", "-d", "--name", "again", image, "sleep", "60", root=croot)
    for _ in range(3):
        ctl_proc(*flag, "stop", "-t", "0", "again", root=croot).assert_success()
        ctl_proc(*flag, "start", "again", root=croot).assert_success()
    ctl_proc(*flag, "kill", "again", root=croot).assert_success()
    ctl_proc(*flag, "start", "again", root=croot).assert_success()
    before = json.loads(ctl_proc(*flag, "inspect", "again", root=croot).stdout)[0]["State"]
    ctl_proc(*flag, "restart", "-t", "0", "again", root=croot).assert_success()
    after = json.loads(ctl_proc(*flag, "inspect", "again", root=croot).stdout)[0]["State"]
    assert after["Running"] and after["Pid"] != before["Pid"]
    ctl_proc(*flag, "rm", "-f", "again", root=croot).assert_success()
    names = ctl_proc(*flag, "ps", "-a", "--format", "{{.Names}}", root=croot).stdout.split()
    assert "again" not in names
    assert mounts_under_root() == mounts_before


def test_detached_rm_removes_after_exit(croot: Path, image: str) -> None:
    ctl_proc(
        "run", "-d", "--rm", "--name", "drm", image, "sleep", "0.3", root=croot
    ).assert_success()
    _wait_for(lambda: "drm" not in ctl_proc("ps", "-a", root=croot).stdout)
    ctl_proc("run", "-d", "--rm", "--name", "drm2", image, "sleep", "60", root=croot)
    ctl_proc("restart", "drm2", root=croot).assert_failure(125, stderr_re="--rm")
    # rm -f and the supervisor's own --rm once waited on each other until a timeout.
    start = time.monotonic()
    ctl_proc("rm", "-f", "drm2", root=croot).assert_success()
    assert time.monotonic() - start < 20


def test_wait_reads_the_exit_of_a_container_removed_meanwhile(croot: Path, image: str) -> None:
    # --rm -d: the supervisor removes the container right after its exit.
    cid = (
        ctl_proc(
            "run", "-d", "--rm", "--net", "none", image, "sh", "-c", "sleep 1; exit 6", root=croot
        )
        .assert_success()
        .stdout.strip()
    )
    waiters = [
        subprocess.Popen(
            [*ctl_command(), "--root", str(croot), "wait", cid],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(3)
    ]
    for waiter in waiters:
        out, err = waiter.communicate(timeout=60)
        assert (waiter.returncode, out, err) == (0, b"6\n", b"")
    # Gone before wait starts: docker's "No such container". The --rm goes on after the
    # exit the waiters saw, so wait for the record to go first.
    deadline = time.monotonic() + 10
    while ctl_proc("inspect", cid, root=croot).code == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    ctl_proc("wait", cid, root=croot).assert_failure(125, stderr_re="(?i)no such container")
    # rm -f of a running container while it is waited for: killed by SIGKILL.
    ctl_proc(
        "run", "-d", "--net", "none", "--name", "rmwait", image, "sleep", "60", root=croot
    ).assert_success()
    waiter = subprocess.Popen(
        [*ctl_command(), "--root", str(croot), "wait", "rmwait"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    time.sleep(1)  # the waiter looks the container up before it is removed
    ctl_proc("rm", "-f", "rmwait", root=croot).assert_success()
    out, err = waiter.communicate(timeout=60)
    assert (waiter.returncode, out, err) == (0, b"137\n", b"")


def test_start_leaves_a_running_container_and_tries_every_one(croot: Path, image: str) -> None:
    ctl_proc("run", "-d", "--net", "none", "--name", "up", image, "sleep", "60", root=croot)
    ctl_proc("create", "--net", "none", "--name", "later", image, "sleep", "60", root=croot)
    try:
        pid = json.loads(ctl_proc("inspect", "up", root=croot).stdout)[0]["State"]["Pid"]
        # docker's daemon answers 304 Not Modified; its CLI prints the name.
        ctl_proc("start", "up", root=croot).assert_success("^up$")
        result = ctl_proc("start", "up", "nosuch", "later", root=croot)
        assert (result.code, result.stdout) == (125, "up\nlater\n"), result
        missing, summary = result.stderr.splitlines()
        assert missing.startswith("ctl: ") and "nosuch" in missing, result
        assert summary == "ctl: failed to start containers: nosuch", result
        states = json.loads(ctl_proc("inspect", "up", "later", root=croot).stdout)
        assert [s["State"]["Status"] for s in states] == ["running", "running"]
        assert states[0]["State"]["Pid"] == pid
    finally:
        ctl_proc("rm", "-f", "up", "later", root=croot).assert_success()


def test_logs_tail_that_is_not_a_count_means_all(croot: Path, image: str) -> None:
    ctl_proc(
        "run",
        "--net",
        "none",
        "--name",
        "tail3",
        image,
        "sh",
        "-c",
        "echo 1; echo 2; echo 3",
        root=croot,
    ).assert_success()
    try:
        for tail in ("-1", "=-5", "many", "1.5", "all"):
            flag = ["--tail" + tail] if tail.startswith("=") else ["--tail", tail]
            logs = ctl_proc("logs", *flag, "tail3", root=croot).assert_success()
            assert logs.stdout == "1\n2\n3\n", tail
        assert ctl_proc("logs", "-n", "2", "tail3", root=croot).stdout == "2\n3\n"
        assert ctl_proc("logs", "--tail", "0", "tail3", root=croot).stdout == ""
    finally:
        ctl_proc("rm", "tail3", root=croot).assert_success()


def test_container_prune_until_takes_a_date(croot: Path, image: str) -> None:
    ctl_proc(
        "run", "--net", "none", "--name", "old", "-l", "prunable", image, "true", root=croot
    ).assert_success()  # fmt: skip
    prune = ("container", "prune", "-f", "--filter", "label=prunable", "--filter")
    # container_prune.md's forms: a date alone is one (the container is newer: kept).
    ctl_proc(*prune, "until=2006-01-02", root=croot).assert_success()
    assert "old" in ctl_proc("ps", "-a", "--format", "{{.Names}}", root=croot).stdout.split()
    ctl_proc(*prune, "until=soon", root=croot).assert_failure(125, "until filter")
    gone = ctl_proc(*prune, "until=2999-01-02", root=croot).assert_success().stdout
    assert "Deleted Containers:" in gone
    assert "old" not in ctl_proc("ps", "-a", "--format", "{{.Names}}", root=croot).stdout.split()


def test_tty_gets_a_pty(croot: Path, image: str) -> None:
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(
            ctl_command()[0],
            [*ctl_command(), "--root", str(croot), "run", "--rm", "-t", image, "tty"],
        )
    out = b""
    while True:
        ready, _, _ = select.select([fd], [], [], 20)
        if not ready:
            break
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    _, wait_status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(wait_status) == 0, out
    assert b"/dev/pts/" in out


def test_logs_follow(croot: Path, image: str) -> None:
    ctl_proc(
        "run",
        "-d",
        "--name",
        "follow",
        image,
        "sh",
        "-c",
        "for i in 1 2 3; do echo line$i; sleep 0.2; done",
        root=croot,
    ).assert_success()
    result = ctl_proc("logs", "-f", "follow", root=croot, timeout=20)
    assert result.stdout == "line1\nline2\nline3\n"
    tail = ctl_proc("logs", "--tail", "1", "-t", "follow", root=croot).stdout
    assert tail.endswith("line3\n") and tail.count("\n") == 1 and "T" in tail.split()[0]
    ctl_proc("rm", "follow", root=croot).assert_success()


def test_stop_kills_a_process_that_ignores_sigterm(croot: Path, image: str) -> None:
    ctl_proc(
        "run",
        "-d",
        "--name",
        "stubborn",
        image,
        "sh",
        "-c",
        "trap '' TERM; while true; do sleep 0.1; done",
        root=croot,
    ).assert_success()
    start = time.monotonic()
    ctl_proc("stop", "-t", "1", "stubborn", root=croot).assert_success()
    assert 0.9 < time.monotonic() - start < 8
    assert ctl_proc("wait", "stubborn", root=croot).stdout.strip() == "137"
    ctl_proc("rm", "stubborn", root=croot).assert_success()


def test_bind_mounts_and_read_only(croot: Path, image: str, tmp_path: Path) -> None:
    (tmp_path / "in.txt").write_text("from host\n")
    result = ctl_proc(
        "run",
        "--rm",
        "-v",
        f"{tmp_path}:/data",
        image,
        "sh",
        "-c",
        "cat /data/in.txt; echo back > /data/out.txt",
        root=croot,
    )
    assert result.assert_success().stdout == "from host\n"
    assert (tmp_path / "out.txt").read_text() == "back\n"
    ro = ctl_proc(
        "run",
        "--rm",
        "-v",
        f"{tmp_path}:/data:ro",
        image,
        "sh",
        "-c",
        "echo x > /data/no.txt",
        root=croot,
    )
    assert ro.code != 0 and not (tmp_path / "no.txt").exists()
    rofs = ctl_proc("run", "--rm", "--read-only", image, "sh", "-c", "touch /x", root=croot)
    assert rofs.code != 0
    ctl_proc("run", "--rm", "--read-only", image, "sh", "-c", "touch /tmp/ok || true", root=croot)


def test_memory_limit_is_in_the_cgroup(croot: Path, image: str) -> None:
    result = ctl_proc(
        "run",
        "--rm",
        "--memory",
        "64m",
        image,
        "sh",
        "-c",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null"
        " || cat /sys/fs/cgroup/memory.max",
        root=croot,
    )
    # The container sees its own cgroup only where /sys/fs/cgroup is mounted; fall back
    # to the host's view of it through the spec's cgroupsPath otherwise.
    if result.stdout.strip():
        assert result.stdout.strip() == str(64 << 20)
    else:
        cid = ctl_proc(
            "run", "-d", "--memory", "64m", image, "sleep", "30", root=croot
        ).stdout.strip()
        spec = json.loads(ctl_proc("inspect", cid, root=croot).stdout)[0]["Spec"]
        path = spec["linux"]["cgroupsPath"]
        candidates = [
            Path("/sys/fs/cgroup/memory") / path.lstrip("/") / "memory.limit_in_bytes",
            Path("/sys/fs/cgroup") / path.lstrip("/") / "memory.max",
        ]
        value = next(p.read_text().strip() for p in candidates if p.exists())
        ctl_proc("rm", "-f", cid, root=croot).assert_success()
        assert value == str(64 << 20)


def test_default_capabilities(croot: Path, image: str) -> None:
    out = ctl_proc("run", "--rm", image, "grep", "CapBnd", "/proc/self/status", root=croot).stdout
    assert out.split()[1] == "00000000a80425fb"


def test_twenty_concurrent_runs(croot: Path, image: str) -> None:
    def one(i: int):
        return ctl_proc("run", "--rm", image, "sh", "-c", f"exit {i % 5}", root=croot, timeout=120)

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        results = list(pool.map(one, range(20)))
    assert [r.code for r in results] == [i % 5 for i in range(20)], [r.stderr for r in results]
    assert ctl_proc("ps", "-a", "-q", root=croot).stdout.strip() == ""


def test_killed_supervisor_leaves_a_task_rm_cleans(croot: Path, image: str) -> None:
    ctl_proc("run", "-d", "--name", "orphan", image, "sleep", "60", root=croot).assert_success()
    record = json.loads(ctl_proc("inspect", "orphan", root=croot).stdout)[0]
    state_file = Path(record["LogPath"]).parent / "state.json"
    supervisor = json.loads(state_file.read_text())["supervisor_pid"]
    os.kill(supervisor, signal.SIGKILL)
    _wait_for(lambda: "Exited (unknown)" in ctl_proc("ps", "-a", root=croot).stdout)
    ctl_proc("rm", "orphan", root=croot).assert_success()
    assert "orphan" not in ctl_proc("ps", "-a", root=croot).stdout


def test_rmi_keeps_the_last_name_of_an_image_a_container_uses(tmp_path: Path, image: str) -> None:
    root = tmp_path / "root"
    ctl_proc("pull", image, root=root).assert_success()
    ctl_proc("create", "--name", "user", "--net", "none", image, "true", root=root)
    # Another name for the same image is not the last one: it goes.
    ctl_proc("tag", image, "example.com/other:v1", root=root).assert_success()
    ctl_proc("rmi", "example.com/other:v1", root=root).assert_success()
    refused = ctl_proc("rmi", image, root=root)
    refused.assert_failure(125, stderr_re="used by container user")
    ctl_proc("rmi", "-f", image, root=root).assert_success()
    assert ctl_proc("images", "-q", root=root).stdout == ""
    ctl_proc("rm", "user", root=root).assert_success()


def test_top_and_the_tasks_group(croot: Path, image: str) -> None:
    ctl_proc(
        "run", "-d", "--name", "observed", "--memory", "64m", image, "sleep", "60", root=croot
    ).assert_success()
    try:
        running = ctl_proc("inspect", "-f", "{{.State.Running}} {{.Name}}", "observed", root=croot)
        assert running.assert_success().stdout == "true /observed\n"
        top = ctl_proc("top", "observed", root=croot).assert_success().stdout
        # docker's default, ps -ef, with the container's processes only.
        assert top.splitlines()[0].split() == [
            "UID",
            "PID",
            "PPID",
            "C",
            "STIME",
            "TTY",
            "TIME",
            "CMD",
        ]
        assert [line.split()[-2:] for line in top.splitlines()[1:]] == [["sleep", "60"]]
        chosen = ctl_proc("top", "observed", "-o", "pid,comm", root=croot).assert_success()
        assert [line.split()[1] for line in chosen.stdout.splitlines()] == ["COMMAND", "sleep"]
        ctl_proc("top", "observed", "-o", "comm", root=croot).assert_failure(
            125, stderr_re="no PID column"
        )
        tasks = ctl_proc("tasks", "ls", "--format", "json", root=croot).assert_success()
        mine = [t for t in tasks.json_lines() if t["Status"] == "RUNNING"]
        (pid,) = [t["Pid"] for t in mine if t["Task"] == _container_id(croot, "observed")]
        listed = ctl_proc("tasks", "ps", "--format", "json", "observed", root=croot)
        assert listed.assert_success().json_lines() == [{"Pid": pid}]
        assert ctl_proc("tasks", "ps", "-q", "observed", root=croot).stdout.split() == [str(pid)]
        metrics = json.loads(ctl_proc("tasks", "metrics", "observed", root=croot).stdout)
        assert metrics["pids"]["current"] >= 1
        assert metrics["memory"]["usage"]["limit"] == 64 << 20
    finally:
        ctl_proc("rm", "-f", "observed", root=croot).assert_success()


def _container_id(root: Path, name: str) -> str:
    return json.loads(ctl_proc("inspect", name, root=root).stdout)[0]["Id"]


def test_killed_init_exits_137(croot: Path, image: str) -> None:
    ctl_proc("run", "-d", "--name", "killed", image, "sleep", "60", root=croot).assert_success()
    ctl_proc("kill", "killed", root=croot).assert_success()
    assert ctl_proc("wait", "killed", root=croot).stdout.strip() == "137"
    ctl_proc("rm", "killed", root=croot).assert_success()


# Each costs `ctl run` 1-5 ms of start-up, and the run path has no use for it
# (bench/README.md, "Where the time goes").
RUN_PATH_NEEDLESS_IMPORTS = ("dataclasses", "inspect", "tempfile", "socket", "bz2", "lzma")


def test_run_path_imports_stay_lean(croot: Path, image: str) -> None:
    argv = ("--root", str(croot), "run", "--rm", "--net", "none", "--pull", "never", image, "true")
    modules = imported_modules(*argv)
    assert "ctl.runtime.supervisor" in modules, "no import trace: was -X importtime honoured?"
    assert sorted(modules.intersection(RUN_PATH_NEEDLESS_IMPORTS)) == []


def test_detached_run_returns_at_once_in_a_pipe(croot: Path, image: str) -> None:
    start = time.monotonic()
    proc = subprocess.run(
        [*ctl_command(), "--root", str(croot), "run", "-d", "--rm", image, "sleep", "60"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Far less than the container's minute, with room for a slow machine.
    assert proc.returncode == 0 and time.monotonic() - start < 20
    ctl_proc("rm", "-f", proc.stdout.strip(), root=croot)


def test_debug_shows_the_supervisors_runc_command_lines(croot: Path, image: str) -> None:
    """SPEC section 2: --debug prints runc command lines, also those the supervisor runs."""
    result = ctl_proc("--debug", "run", "--rm", "--net", "none", image, "true", root=croot)
    result.assert_success()
    runc_lines = [line for line in result.stderr.splitlines() if line.startswith("+ runc ")]
    assert any(" run --bundle " in line for line in runc_lines), result.stderr
    assert any(" delete " in line for line in runc_lines), result.stderr
    quiet = ctl_proc("run", "--rm", "--net", "none", image, "true", root=croot)
    assert quiet.assert_success().stderr == ""


def test_bad_input_is_one_line_and_125(croot: Path, image: str) -> None:
    ctl_proc("run", "--memory", "lots", image, root=croot).assert_failure(125, stderr_re="memory")
    ctl_proc("run", "-v", "./relative:/x", image, root=croot).assert_failure(125)
    ctl_proc("stop", "no-such", root=croot).assert_failure(125, stderr_re="no such container")
    ctl_proc("run", "--pull", "never", "example.com/none:1", root=croot).assert_failure(125)
    ctl_proc("run", "--name", "bad/name", image, root=croot).assert_failure(125)


def test_fifty_concurrent_detached_runs(croot: Path, image: str) -> None:
    """SPEC §5: 50 ``ctl run -d`` at once all succeed with distinct containers."""
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        runs = list(
            pool.map(
                lambda i: ctl_proc("run", "-d", image, "sleep", "60", root=croot, timeout=300),
                range(50),
            )
        )
    assert [r.code for r in runs] == [0] * 50, [r.stderr for r in runs if r.code]
    ids = {r.stdout.strip() for r in runs}
    assert len(ids) == 50
    assert len(ctl_proc("ps", "-q", root=croot).stdout.split()) == 50
    with concurrent.futures.ThreadPoolExecutor(50) as pool:
        removed = list(pool.map(lambda cid: ctl_proc("rm", "-f", cid, root=croot), ids))
    assert [r.code for r in removed] == [0] * 50, [r.stderr for r in removed if r.code]
    assert ctl_proc("ps", "-a", "-q", root=croot).stdout == ""


def test_restart_policies(croot: Path, image: str) -> None:
    ctl_proc(
        "run",
        "-d",
        "--name",
        "retry",
        "--restart",
        "on-failure:2",
        image,
        "sh",
        "-c",
        "echo run; exit 1",
        root=croot,
    ).assert_success()
    _wait_for(lambda: ctl_proc("logs", "retry", root=croot).stdout.count("run") == 3)
    _wait_for(lambda: "Exited (1)" in ctl_proc("ps", "-a", root=croot).stdout)
    time.sleep(0.5)
    assert ctl_proc("logs", "retry", root=croot).stdout.count("run") == 3
    assert json.loads(ctl_proc("inspect", "retry", root=croot).stdout)[0]["RestartCount"] == 2
    _run_restarting(croot, image, "again", "echo up; sleep 0.2")
    _wait_for(lambda: ctl_proc("logs", "again", root=croot).stdout.count("up") >= 3)
    _stop_for_good(croot, "again")
    ctl_proc("rm", "retry", "again", root=croot).assert_success()


def test_stop_between_restarts_cancels_the_next_run(croot: Path, image: str) -> None:
    """A stop while the restart policy waits to run the task again stops it for good."""
    _run_restarting(croot, image, "flappy", "echo up")
    # It runs for milliseconds and waits ever longer between runs: a stop lands in a wait.
    _wait_for(lambda: ctl_proc("logs", "flappy", root=croot).stdout.count("up") >= 4)
    _stop_for_good(croot, "flappy")
    ctl_proc("rm", "flappy", root=croot).assert_success()


def _run_restarting(root: Path, image: str, name: str, script: str) -> None:
    argv = ("run", "-d", "--name", name, "--restart", "always", image, "sh", "-c", script)
    ctl_proc(*argv, root=root).assert_success()


def _stop_for_good(root: Path, name: str) -> None:
    """_stop_for_good stops a restarting container and checks that it runs no more."""
    ctl_proc("stop", name, root=root).assert_success()
    count = ctl_proc("logs", name, root=root).stdout.count("up")
    time.sleep(2.0)
    assert ctl_proc("logs", name, root=root).stdout.count("up") == count


def test_start_attached_runs_an_exited_container_again(croot: Path, image: str) -> None:
    ctl_proc(
        "create", "--name", "twice", image, "sh", "-c", "echo once; exit 2", root=croot
    ).assert_success()
    assert "Created" in ctl_proc("ps", "-a", root=croot).stdout
    first = ctl_proc("start", "-a", "twice", root=croot)
    assert first.code == 2 and first.stdout == "once\n"
    second = ctl_proc("start", "-a", "twice", root=croot)
    assert second.code == 2
    assert ctl_proc("logs", "twice", root=croot).stdout == "once\nonce\n"
    ctl_proc("rm", "twice", root=croot).assert_success()


def test_exec_exit_codes_and_streams(croot: Path, image: str) -> None:
    ctl_proc("run", "-d", "--name", "ex", image, "sleep", "60", root=croot).assert_success()
    ctl_proc("exec", "ex", "no-such-command", root=croot).assert_failure(127, stderr_re="not found")
    ctl_proc("exec", "ex", "/etc/passwd", root=croot).assert_failure(126)
    both = ctl_proc("exec", "ex", "sh", "-c", "echo out; echo err >&2; exit 3", root=croot)
    assert (both.code, both.stdout, both.stderr) == (3, "out\n", "err\n")
    env = ctl_proc(
        "exec",
        "-e",
        "A=b",
        "-w",
        "/tmp",
        "-u",
        "nobody",
        "ex",
        "sh",
        "-c",
        "echo $A $(pwd) $(id -u)",
        root=croot,
    )
    assert env.assert_success().stdout == "b /tmp 65534\n"
    piped = ctl_proc("exec", "-i", "ex", "cat", root=croot, input="through stdin\n")
    assert piped.assert_success().stdout == "through stdin\n"
    # -t with no terminal anywhere (a CI job; its own session, so no /dev/tty either), as
    # docker's: the process still gets one.
    tty = subprocess.run(
        [*ctl_command(), "--root", str(croot), "exec", "-t", "ex", "sh", "-c", "tty; exit 4"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        start_new_session=True,
        check=False,
    )
    assert (tty.returncode, tty.stdout) == (4, b"/dev/pts/0\r\n"), tty
    ctl_proc("rm", "-f", "ex", root=croot).assert_success()


def test_after_a_reboot_system_boot_restarts_always_containers(croot: Path, image: str) -> None:
    ctl_proc(
        "run",
        "-d",
        "--name",
        "boot",
        "--restart",
        "always",
        "--net",
        "none",
        image,
        "sleep",
        "60",
        root=croot,
    ).assert_success()
    ctl_proc(
        "run", "-d", "--name", "noboot", "--net", "none", image, "sleep", "60", root=croot
    ).assert_success()
    for name in ("boot", "noboot"):
        record = json.loads(ctl_proc("inspect", name, root=croot).stdout)[0]
        state_file = Path(record["LogPath"]).parent / "state.json"
        state = json.loads(state_file.read_text())
        # What a reboot leaves: no processes, and records from another boot.
        os.kill(state["supervisor_pid"], signal.SIGKILL)
        os.kill(state["pid"], signal.SIGKILL)
        state_file.write_text(json.dumps({**state, "boot_id": "an-earlier-boot"}))
    _wait_for(lambda: ctl_proc("ps", "-a", root=croot).stdout.count("Exited (unknown)") == 2)
    booted = ctl_proc("system", "boot", root=croot).assert_success()
    assert booted.stdout.split() == ["default/boot"]
    ps = ctl_proc("ps", "--format", "json", root=croot).json_lines()
    assert [r["Names"] for r in ps if r["State"] == "running"] == ["boot"]
    ctl_proc("rm", "-f", "boot", "noboot", root=croot).assert_success()


def test_start_after_a_lost_supervisor(croot: Path, image: str) -> None:
    ctl_proc(
        "run", "-d", "--name", "lost", "--net", "none", image, "sleep", "60", root=croot
    ).assert_success()
    record = json.loads(ctl_proc("inspect", "lost", root=croot).stdout)[0]
    state = json.loads((Path(record["LogPath"]).parent / "state.json").read_text())
    os.kill(state["supervisor_pid"], signal.SIGKILL)
    _wait_for(lambda: "Exited (unknown)" in ctl_proc("ps", "-a", root=croot).stdout)
    ctl_proc("start", "lost", root=croot).assert_success()
    assert "Up " in ctl_proc("ps", root=croot).stdout
    ctl_proc("rm", "-f", "lost", root=croot).assert_success()
