"""Issue 9, the task's part: races, broken pipes, closed stdio, full disks, damage.

Every case runs real containers through the real binary (``ctl_proc``; the
pex under ``$CTL_TEST_BINARY``) and is bounded in time: a hang fails the
test instead of the suite.
"""

from __future__ import annotations

import concurrent.futures
import errno
import json
import os
import shlex
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import clean_root, ctl_command, ctl_proc
from tests.images import CanonicalImages

pytestmark = pytest.mark.needs_root

# Each concurrent start is tried this many times: the old code lost often
# enough that a few rounds catch it.
START_RACE_ROUNDS = 4


@pytest.fixture(scope="module")
def froot(tmp_path_factory: pytest.TempPathFactory, images: CanonicalImages) -> Path:
    root = tmp_path_factory.mktemp("faults") / "root"
    ctl_proc("pull", images.busybox_ref, root=root).assert_success()
    yield root
    for cid in ctl_proc("ps", "-a", "-q", "--no-trunc", root=root).stdout.split():
        ctl_proc("rm", "-f", cid, root=root)
    clean_root(root)


@pytest.fixture
def image(images: CanonicalImages) -> str:
    return images.busybox_ref


def _wait_for(predicate, timeout: float = 30.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what or predicate}"
        time.sleep(0.05)


def _task_file(root: Path, name: str, file: str) -> Path:
    record = json.loads(ctl_proc("inspect", name, root=root).stdout)[0]
    return Path(record["LogPath"]).parent / file


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


# Races.


@pytest.mark.parametrize("round_", range(START_RACE_ROUNDS))
def test_five_concurrent_starts_start_once(froot: Path, image: str, round_: int) -> None:
    name = f"race-{round_}"
    ctl_proc("create", "--name", name, "--net", "none", image, "sleep", "60", root=froot)
    try:
        with concurrent.futures.ThreadPoolExecutor(5) as pool:
            results = list(
                pool.map(lambda _: ctl_proc("start", name, root=froot, timeout=60), range(5))
            )
        detail = [(r.code, r.stdout, r.stderr) for r in results]
        # As docker's: a start of a running container leaves it and names it.
        assert all(r.code == 0 and r.stdout == f"{name}\n" for r in results), detail
        starts = ctl_proc(
            "events",
            "--until",
            "0s",
            "--filter",
            f"container={name}",
            "--filter",
            "event=start",
            "--format",
            "{{.Action}}",
            root=froot,
        )
        assert starts.stdout.split() == ["start"], (starts.stdout, detail)
        state = json.loads(ctl_proc("inspect", name, root=froot).stdout)[0]["State"]
        assert state["Status"] == "running", state
    finally:
        ctl_proc("rm", "-f", name, root=froot).assert_success()


# Pipes and stdio.


def _shell(script: str, root: Path, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    """_shell runs ``script`` under sh, ``$CTL`` being the ctl command with ``--root``."""
    ctl = shlex.join([*ctl_command(), "--root", str(root)])
    return subprocess.run(
        ["sh", "-c", script],
        env={**os.environ, "CTL": ctl},
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize("tty", [False, True], ids=["pipe", "tty"])
def test_run_into_a_pipe_that_closes_ends_and_rm_removes(
    froot: Path, image: str, tty: bool
) -> None:
    name = f"yes-{'tty' if tty else 'pipe'}"
    flags = "-t" if tty else ""
    done = _shell(f"$CTL run --rm {flags} --net none --name {name} {image} yes | head -1", froot)
    assert done.stdout.strip() == b"y", done
    _wait_for(lambda: name not in ctl_proc("ps", "-a", root=froot).stdout, what="--rm")


@pytest.mark.parametrize("stdin", ["<&-", "</dev/null"])
def test_run_interactive_with_no_stdin_reads_it_empty(froot: Path, image: str, stdin: str) -> None:
    # With fd 0 closed, the supervisor's status pipe could take its number and
    # be handed over as the container's stdin: the handshake then went to
    # cat (and to stdout) instead of to ctl, which hung. A race: tried thrice.
    for _ in range(3):
        done = _shell(f"$CTL run -i --rm --net none {image} cat {stdin}; echo rc=$?", froot)
        assert (done.stdout, done.stderr) == (b"rc=0\n", b"")


# Lost supervisors, lost runc state, full disks.


def _task(root: Path, name: str) -> dict:
    return json.loads(_task_file(root, name, "state.json").read_text())


def _container_id(root: Path, name: str) -> str:
    return json.loads(ctl_proc("inspect", name, root=root).stdout)[0]["Id"]


def test_stop_after_a_lost_supervisor_still_stops(froot: Path, image: str) -> None:
    ctl_proc("run", "-d", "--net", "none", "--name", "lost-stop", image, "sleep", "600", root=froot)
    task = _task(froot, "lost-stop")
    os.kill(task["supervisor_pid"], signal.SIGKILL)
    _wait_for(lambda: not _alive(task["supervisor_pid"]), what="the supervisor to die")
    assert _alive(task["pid"])
    stopped = ctl_proc("stop", "-t", "1", "lost-stop", root=froot, timeout=60)
    stopped.assert_success()
    assert "supervisor was lost" in stopped.stderr
    assert not _alive(task["pid"])
    ctl_proc("rm", "lost-stop", root=froot).assert_success()


def test_rm_f_kills_a_container_whose_runc_state_was_deleted(froot: Path, image: str) -> None:
    ctl_proc("run", "-d", "--net", "none", "--name", "no-runc", image, "sleep", "600", root=froot)
    task = _task(froot, "no-runc")
    shutil.rmtree(froot / "runc" / "default" / _container_id(froot, "no-runc"))
    started = time.monotonic()
    ctl_proc("rm", "-f", "no-runc", root=froot, timeout=60).assert_success()
    # Not by killing the supervisor after its 30 s grace: the container is found by its cgroup.
    assert time.monotonic() - started < 10
    _wait_for(lambda: not _alive(task["pid"]), what="the container's process to die")
    assert not _alive(task["supervisor_pid"])


@pytest.fixture
def small_root(tmp_path: Path, images: CanonicalImages) -> Path:
    """small_root is a ctl root on an 8 MiB tmpfs, with busybox pulled."""
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mountpoint)], check=True)
    root = mountpoint / "root"
    try:
        ctl_proc("pull", images.busybox_ref, root=root).assert_success()
        yield root
    finally:
        (mountpoint / "filler").unlink(missing_ok=True)
        for cid in ctl_proc("ps", "-a", "-q", "--no-trunc", root=root).stdout.split():
            ctl_proc("rm", "-f", cid, root=root)
        clean_root(root)
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def _fill(path: Path) -> None:
    """_fill appends to ``path`` until its filesystem has not a byte of room left."""
    with open(path, "ab", buffering=0) as f:
        for chunk in (65536, 4096, 1):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError as err:
                assert err.errno == errno.ENOSPC


def test_a_full_disk_orphans_no_container(small_root: Path, image: str) -> None:
    chatty = "while true; do echo chatty; done"
    ctl_proc(
        "run", "-d", "--net", "none", "--name", "chatty", image, "sh", "-c", chatty, root=small_root
    ).assert_success()
    task = _task(small_root, "chatty")
    filler = small_root.parent / "filler"
    _fill(filler)
    time.sleep(1)
    # The supervisor drops what it cannot log; the container runs on, watched.
    assert _alive(task["supervisor_pid"]) and _alive(task["pid"])
    state = json.loads(ctl_proc("inspect", "chatty", root=small_root).stdout)[0]["State"]
    assert state["Status"] == "running", state

    # runc's state, on this disk too, frees room for exit.json as the task
    # ends: test_runtime holds the exit on a disk that stays full.
    stopped = ctl_proc("stop", "-t", "1", "chatty", root=small_root, timeout=60)
    stopped.assert_success()
    assert not _alive(task["pid"])

    # Its exit is recorded once there is room again, with the lines it dropped.
    filler.unlink()

    def exited() -> dict:
        doc = json.loads(ctl_proc("inspect", "chatty", root=small_root).stdout)[0]["State"]
        return doc if doc["Status"] == "exited" else {}

    _wait_for(exited, what="the exit record")
    state = exited()
    assert state["ExitCode"] in (137, 143), state
    assert state["LogLinesDropped"] > 0, state
    logs = ctl_proc("logs", "--tail", "1", "chatty", root=small_root)
    assert "log lines were dropped" in logs.stderr
    ctl_proc("rm", "chatty", root=small_root).assert_success()


def test_run_and_start_on_a_full_disk_say_what_they_could_not_write(
    small_root: Path, image: str
) -> None:
    ctl_proc("create", "--net", "none", "--name", "later", image, "true", root=small_root)
    _fill(small_root.parent / "filler")
    for argv in (("run", "--net", "none", image, "true"), ("start", "later")):
        failed = ctl_proc(*argv, root=small_root, timeout=60)
        assert failed.code == 125, failed
        assert failed.stderr.startswith("ctl: "), failed
        assert ": writing " in failed.stderr, failed
        assert failed.stderr.endswith(": No space left on device\n"), failed
        assert failed.stderr.count("\n") == 1, failed


# Damaged records.

DAMAGE = {
    "empty": b"",
    "cut": None,  # the first half of the record
    "not-json": b"{not json",
    "null": b"null",
    "wrong-shape": b'{"id": 5, "spec": []}',
}


@pytest.mark.parametrize(
    "command", [("rm", "-f"), ("containers", "rm")], ids=["rm-f", "containers-rm"]
)
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_container_with_a_damaged_record_is_removed(
    froot: Path, image: str, damage: str, command: tuple[str, ...]
) -> None:
    name = f"damaged-{damage}-{command[0]}"
    argv = ("run", "-d", "--name", name, image, "sleep", "600")
    if command[0] == "containers":
        argv = ("create", "--name", name, image, "sleep", "600")
    ctl_proc(*argv, root=froot).assert_success()
    cid = _container_id(froot, name)
    task_dir = froot / "namespaces" / "default" / "tasks" / cid
    task = json.loads((task_dir / "state.json").read_text()) if command[0] == "rm" else None
    record = froot / "namespaces" / "default" / "containers" / f"{cid}.json"
    text = record.read_bytes()
    record.write_bytes(text[: len(text) // 2] if DAMAGE[damage] is None else DAMAGE[damage])

    removed = ctl_proc(*command, name, root=froot, timeout=60)
    removed.assert_success()
    assert not record.exists()
    assert not task_dir.exists()
    assert not (froot / "runc" / "default" / cid).exists()
    assert cid not in Path("/proc/self/mountinfo").read_text()
    if task is not None:
        assert not _alive(task["pid"]) and not _alive(task["supervisor_pid"])
    listing = ctl_proc("ps", "-a", root=froot)
    assert (name not in listing.stdout, listing.stderr) == (True, "")


def test_system_check_finds_what_went_wrong_under_a_task(froot: Path, image: str) -> None:
    def run(name: str, *command: str) -> tuple[Path, dict]:
        ctl_proc("run", "-d", "--net", "none", "--name", name, image, *command, root=froot)
        return _task_file(froot, name, "state.json").parent, _task(froot, name)

    _, lost = run("check-lost", "sleep", "600")
    os.kill(lost["supervisor_pid"], signal.SIGKILL)
    _, no_runc = run("check-no-runc", "sleep", "600")
    shutil.rmtree(froot / "runc" / "default" / no_runc["id"])
    bad_state, _ = run("check-bad-state", "sleep", "600")
    (bad_state / "state.json").write_bytes(b'{"id": ')
    bad_exit, _ = run("check-bad-exit", "true")
    _wait_for(lambda: (bad_exit / "exit.json").exists(), what="the exit record")
    (bad_exit / "exit.json").write_bytes(b"null")
    try:
        checked = ctl_proc("system", "check", root=froot, timeout=120)
        assert checked.code == 1, checked
        found = checked.stdout
        assert "default/check-lost: its supervisor was lost while the container runs" in found
        assert "default/check-no-runc: runc's state of the live container is missing" in found
        assert "default/check-bad-state: damaged state.json" in found
        assert "default/check-bad-exit: damaged exit.json" in found
    finally:
        for name in ("check-lost", "check-no-runc", "check-bad-state", "check-bad-exit"):
            ctl_proc("rm", "-f", name, root=froot, timeout=60).assert_success()
    for pid in (lost["pid"], no_runc["pid"]):
        assert not _alive(pid)
    assert "check-" not in ctl_proc("system", "check", root=froot).stdout
