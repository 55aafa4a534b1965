"""Issue 13 part 5, attach: a later process on a running container's stdio, via its supervisor."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ctl.paths import Paths
from tests.helpers import REPO_ROOT, _argv, ctl_command, ctl_proc, pulled_root

if TYPE_CHECKING:
    from collections.abc import Iterator

    from tests.images import CanonicalImages

pytestmark = pytest.mark.needs_root

TIMEOUT = 15.0


@pytest.fixture(scope="module")
def aroot(tmp_path_factory: pytest.TempPathFactory, images: CanonicalImages) -> Iterator[Path]:
    yield from pulled_root(tmp_path_factory.mktemp("attach"), images.busybox_ref)


@pytest.fixture
def image(images: CanonicalImages) -> str:
    return images.busybox_ref


def attach(root: Path, *argv: str, **popen: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*ctl_command(), *_argv(root, ("attach", *argv))], cwd=REPO_ROOT, **popen
    )


def read_until(fd: int, wanted: bytes, timeout: float = TIMEOUT) -> bytes:
    """read_until reads ``fd`` until ``wanted`` has come (or fails after ``timeout``)."""
    got = b""
    deadline = time.monotonic() + timeout
    while wanted not in got:
        left = deadline - time.monotonic()
        assert left > 0, f"no {wanted!r} in {got!r}"
        if select.select([fd], [], [], left)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # a pty master with its slave gone
                chunk = b""
            assert chunk, f"EOF before {wanted!r} in {got!r}"
            got += chunk
    return got


def state(root: Path, name: str) -> str:
    docs: list[dict[str, Any]] = json.loads(ctl_proc("inspect", name, root=root).stdout)
    status: str = docs[0]["State"]["Status"]
    return status


def run_d(root: Path, name: str, *argv: str) -> None:
    ctl_proc("run", "-d", "--name", name, "--net", "none", *argv, root=root).assert_success()


def test_attach_reads_the_output_and_leaves_the_container_running(aroot: Path, image: str) -> None:
    name = "att-loop"
    run_d(aroot, name, image, "sh", "-c", "while :; do echo x; sleep 0.2; done")
    try:
        proc = attach(aroot, "--sig-proxy=false", name, stdout=subprocess.PIPE)
        try:
            assert proc.stdout is not None
            assert read_until(proc.stdout.fileno(), b"x\nx\nx\n").strip(b"x\n") == b""
        finally:
            proc.kill()
            proc.wait()
        assert state(aroot, name) == "running"
        # Two more at once, after that one went: each gets the output.
        procs = [attach(aroot, "--no-stdin", name, stdout=subprocess.PIPE) for _ in range(2)]
        try:
            for proc in procs:
                assert proc.stdout is not None
                read_until(proc.stdout.fileno(), b"x\nx\n")
        finally:
            for proc in procs:
                proc.kill()
                proc.wait()
    finally:
        ctl_proc("rm", "-f", name, root=aroot)


def test_stdout_and_stderr_stay_apart(aroot: Path, image: str) -> None:
    name = "att-streams"
    run_d(aroot, name, image, "sh", "-c", "while :; do echo out; echo err >&2; sleep 0.2; done")
    try:
        proc = attach(aroot, name, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert proc.stdout is not None and proc.stderr is not None
            assert set(read_until(proc.stdout.fileno(), b"out\nout\n").split()) == {b"out"}
            assert set(read_until(proc.stderr.fileno(), b"err\nerr\n").split()) == {b"err"}
        finally:
            proc.kill()
            proc.wait()
    finally:
        ctl_proc("rm", "-f", name, root=aroot)


def test_stdin_reaches_an_interactive_container_and_its_exit_code_comes_back(
    aroot: Path, image: str
) -> None:
    name = "att-stdin"
    script = "while read line; do [ $line = bye ] && exit 7; echo got $line; done"
    run_d(aroot, name, "-i", image, "sh", "-c", script)
    try:
        proc = attach(aroot, name, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(b"hello\n")
        proc.stdin.flush()
        read_until(proc.stdout.fileno(), b"got hello\n")
        proc.stdin.write(b"bye\n")
        proc.stdin.flush()
        assert proc.wait(TIMEOUT) == 7
        ctl_proc("wait", name, root=aroot).assert_success("7\n")
        logged = [json.loads(line) for line in (aroot / "events" / "events.log").open()]
        assert {"Action": "attach", "name": name} in [
            {"Action": e["Action"], "name": e["Actor"]["Attributes"].get("name")} for e in logged
        ]
    finally:
        ctl_proc("rm", "-f", name, root=aroot)


def test_signals_are_proxied_without_a_tty(aroot: Path, image: str) -> None:
    name = "att-signal"
    script = "trap 'exit 42' TERM; while :; do echo tick; sleep 0.1; done"
    run_d(aroot, name, image, "sh", "-c", script)
    try:
        proc = attach(aroot, name, stdout=subprocess.PIPE)
        assert proc.stdout is not None
        read_until(proc.stdout.fileno(), b"tick\n")  # attached, and proxying
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(TIMEOUT) == 42
    finally:
        ctl_proc("rm", "-f", name, root=aroot)


def test_a_tty_container_through_a_pty_detaches_with_ctrl_p_ctrl_q(aroot: Path, image: str) -> None:
    name = "att-tty"
    run_d(aroot, name, "-it", image, "sh")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 111, 0, 0))
    try:
        # The pty is attach's controlling terminal: a resize signals it, as a terminal's does.
        proc = attach(
            aroot, name, stdin=slave, stdout=slave, stderr=slave,
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
        )  # fmt: skip
        os.close(slave)
        try:
            os.write(master, b"stty size; echo done-$((40+2))\r")
            got = read_until(master, b"done-42")
            assert b"33 111" in got
            fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 44, 122, 0, 0))
            # The SIGWINCH is passed on as it comes: asked until the new size shows.
            for attempt in range(50):
                os.write(master, f"stty size; echo size-{attempt}-$((1))\r".encode())
                if b"44 122" in read_until(master, f"size-{attempt}-1".encode()):
                    break
            else:
                raise AssertionError("the container's terminal was not resized")
            assert not termios.tcgetattr(master)[3] & termios.ICANON  # raw meanwhile
            os.write(master, b"\x10\x11")
            assert proc.wait(TIMEOUT) == 0
        finally:
            proc.kill()
            proc.wait()
        assert state(aroot, name) == "running"
        # The terminal came back as it was: canonical mode, with echo.
        lflag = termios.tcgetattr(master)[3]
        assert lflag & termios.ICANON and lflag & termios.ECHO
    finally:
        os.close(master)
        ctl_proc("rm", "-f", name, root=aroot)


def test_attach_to_a_container_that_does_not_run_fails(aroot: Path, image: str) -> None:
    name = "att-stopped"
    ctl_proc("create", "--name", name, "--net", "none", image, "true", root=aroot)
    try:
        ctl_proc("attach", name, root=aroot).assert_failure(125, stderr_re="start it first")
        ctl_proc("attach", "att-none", root=aroot).assert_failure(125)
        ctl_proc("attach", "--detach-keys", "ctrl-1", name, root=aroot).assert_failure(125)
    finally:
        ctl_proc("rm", "-f", name, root=aroot)


def test_a_supervisor_without_the_socket_is_refused(aroot: Path, image: str) -> None:
    """As one started by a ctl before attach: its task directory has no attach.sock."""
    name = "att-old"
    run_d(aroot, name, image, "sleep", "600")
    try:
        container_id = json.loads(ctl_proc("inspect", name, root=aroot).stdout)[0]["Id"]
        socket = Path(Paths(aroot).task_dir("default", container_id), "attach.sock")
        assert socket.is_socket()
        assert socket.stat().st_mode & 0o777 and socket.parent.stat().st_mode & 0o077 == 0
        socket.unlink()
        ctl_proc("attach", name, root=aroot).assert_failure(125, stderr_re="takes no attaches")
        assert state(aroot, name) == "running"
    finally:
        ctl_proc("rm", "-f", name, root=aroot)
