"""Issue 11, group 6: lifecycle and I/O flags of run/create, checked with real containers."""

from __future__ import annotations

import os
import pty
import select
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.helpers import REPO_ROOT, clean_root, ctl_command, ctl_proc, inspect_one
from tests.images import CanonicalImages

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.needs_root

# Traps the signal named by $1 and exits 7 once it arrives; busybox runs the
# trap between two sleeps.
TRAP = 'trap "echo got $0; exit 7" $0; echo ready; while :; do sleep 0.1; done'


@pytest.fixture(scope="module")
def lroot(tmp_path_factory: pytest.TempPathFactory, images: CanonicalImages):
    root = tmp_path_factory.mktemp("lifecycle") / "root"
    yield root
    clean_root(root)


@pytest.fixture(scope="module")
def stopsignal_image(images: CanonicalImages) -> str:
    image = images.factory.image(extra_config={"StopSignal": "SIGUSR2"})
    return images.factory.push(image, "test/netl-stopsignal")


def _names(root: Path) -> list[str]:
    out = ctl_proc("ps", "-a", "--format", "{{.Names}}", root=root).assert_success().stdout
    return out.split()


def _wait_for_log(root: Path, name: str, text: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        out = ctl_proc("logs", name, root=root).stdout
        if text in out or time.monotonic() > deadline:
            return out
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("flags", "trapped"),
    [(["--stop-signal", "USR1"], "USR1"), (["--stop-signal", "10"], "USR1"), ([], "USR2")],
)
def test_stop_sends_the_stop_signal(
    lroot: Path, stopsignal_image: str, flags: list[str], trapped: str
) -> None:
    """--stop-signal, else the image's StopSignal (USR2 here), is what stop sends first."""
    ctl_proc(
        "run", "-d", "--name", "trap", *flags, stopsignal_image, "sh", "-c", TRAP, trapped,
        root=lroot,
    ).assert_success()  # fmt: skip
    try:
        assert "ready" in _wait_for_log(lroot, "trap", "ready")
        ctl_proc("stop", "trap", root=lroot).assert_success()
        assert f"got {trapped}" in ctl_proc("logs", "trap", root=lroot).stdout
        assert inspect_one(lroot, "trap")["State"]["ExitCode"] == 7
    finally:
        ctl_proc("rm", "-f", "trap", root=lroot).assert_success()


def test_stop_timeout_bounds_the_wait_before_sigkill(lroot: Path, images: CanonicalImages) -> None:
    # PID 1 without a TERM handler ignores SIGTERM: only SIGKILL ends it.
    ctl_proc(
        "run", "-d", "--name", "slow", "--stop-timeout", "1", images.busybox_ref, "sleep", "300",
        root=lroot,
    ).assert_success()  # fmt: skip
    try:
        assert inspect_one(lroot, "slow")["Config"]["StopTimeout"] == 1
        started = time.monotonic()
        ctl_proc("stop", "slow", root=lroot).assert_success()
        assert time.monotonic() - started < 6  # not the default 10 seconds
        ctl_proc("start", "slow", root=lroot).assert_success()
        started = time.monotonic()
        ctl_proc("restart", "-t", "0", "slow", root=lroot).assert_success()
        assert time.monotonic() - started < 5
    finally:
        ctl_proc("rm", "-f", "slow", root=lroot).assert_success()


def test_cidfile_gets_the_id_and_is_never_overwritten(
    lroot: Path, images: CanonicalImages, tmp_path: Path
) -> None:
    cidfile = tmp_path / "cid"
    created = ctl_proc("create", "--cidfile", str(cidfile), images.busybox_ref, root=lroot)
    container_id = created.assert_success().stdout.strip()
    try:
        assert cidfile.read_text() == container_id
        before = _names(lroot)
        again = ctl_proc(
            "run", "--rm", "--cidfile", str(cidfile), images.busybox_ref, "true", root=lroot
        )
        again.assert_failure(125, stderr_re="--cidfile")
        assert cidfile.read_text() == container_id
        assert _names(lroot) == before
    finally:
        ctl_proc("rm", "-f", container_id, root=lroot).assert_success()
    # A create that fails leaves no cidfile behind.
    failed = tmp_path / "failed"
    ctl_proc(
        "run", "--cidfile", str(failed), "--net", "nosuchnet", images.busybox_ref, root=lroot
    ).assert_failure(125)
    assert not failed.exists()


def test_attach_only_the_named_streams(lroot: Path, images: CanonicalImages) -> None:
    script = "echo to-out; echo to-err >&2"
    out = ctl_proc(
        "run", "--rm", "-a", "stdout", images.busybox_ref, "sh", "-c", script, root=lroot
    ).assert_success()  # fmt: skip
    assert out.stdout == "to-out\n"
    assert out.stderr == ""
    err = ctl_proc(
        "run", "--rm", "-a", "STDERR", images.busybox_ref, "sh", "-c", script, root=lroot
    ).assert_success()  # fmt: skip
    assert (err.stdout, err.stderr) == ("", "to-err\n")
    stdin = ctl_proc(
        "run", "--rm", "-i", "-a", "stdin", "-a", "stdout", images.busybox_ref, "cat",
        root=lroot, input="from-stdin\n",
    ).assert_success()  # fmt: skip
    assert stdin.stdout == "from-stdin\n"


@pytest.mark.parametrize("proxy", [True, False])
def test_sig_proxy(lroot: Path, images: CanonicalImages, proxy: bool) -> None:
    """A foreground run passes SIGTERM on to the container, unless --sig-proxy=false."""
    name = f"proxy-{proxy}".lower()
    proc = subprocess.Popen(
        [*ctl_command(), "--root", str(lroot), "run", "--name", name,
         f"--sig-proxy={str(proxy).lower()}", images.busybox_ref, "sh", "-c", TRAP, "TERM"],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        if proxy:
            # The container may print before ctl's handlers are in place.
            _wait_until(lambda: _catches(proc.pid, signal.SIGTERM))
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
        state = inspect_one(lroot, name)["State"]
        if proxy:
            assert proc.returncode == 7
            assert state["Status"] == "exited"
        else:
            assert proc.returncode != 0
            assert state["Status"] == "running"  # ctl went, the container did not
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        ctl_proc("rm", "-f", name, root=lroot).assert_success()


def _catches(pid: int, sig: int) -> bool:
    """_catches is whether process ``pid`` has a handler for ``sig`` (/proc's SigCgt)."""
    status = Path(f"/proc/{pid}/status").read_text()
    caught = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught, 16) & (1 << (sig - 1)))


def _wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _read_until(fd: int, want: bytes, timeout: float = 20.0) -> bytes:
    out = b""
    deadline = time.monotonic() + timeout
    while want not in out and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.5)[0]:
            try:
                chunk = os.read(fd, 1024)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
    return out


@pytest.mark.parametrize(
    ("flags", "keys"), [([], b"\x10\x11"), (["--detach-keys", "ctrl-x,e"], b"\x18e")]
)
def test_detach_keys_leave_the_container_running(
    lroot: Path, images: CanonicalImages, flags: list[str], keys: bytes
) -> None:
    name = f"detach{len(flags)}"
    argv = [*ctl_command(), "--root", str(lroot), "run", "-it", "--name", name, *flags]
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(argv[0], [*argv, images.busybox_ref, "sh"])
    try:
        os.write(fd, b"echo up-$((6*7))\n")
        assert b"up-42" in _read_until(fd, b"up-42")
        # A start of the keys that goes on otherwise is typed through.
        os.write(fd, keys[:1] + b"\x15echo still-$((2*3))\n")
        assert b"still-6" in _read_until(fd, b"still-6")
        os.write(fd, keys)
        _, wait_status = os.waitpid(pid, 0)
        pid = 0
        assert os.waitstatus_to_exitcode(wait_status) == 0
        assert inspect_one(lroot, name)["State"]["Status"] == "running"
        out = ctl_proc("exec", name, "echo", "alive", root=lroot).assert_success().stdout
        assert out == "alive\n"
    finally:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(fd)
        ctl_proc("rm", "-f", name, root=lroot).assert_success()


def test_labels_annotations_and_tmpfs_inside(
    lroot: Path, images: CanonicalImages, tmp_path: Path
) -> None:
    labels = tmp_path / "labels"
    labels.write_text("# team labels\ntier=web\nowner=ops\n")
    script = "grep -E ' /(scratch|run/fast) ' /proc/mounts; touch /scratch/x && echo wrote"
    ctl_proc(
        "run", "--name", "misc", "-q", "--label-file", str(labels), "--label", "owner=dev",
        "--annotation", "org.example.note=hello",
        "--tmpfs", "/scratch:size=1m,mode=1770", "--tmpfs", "/run/fast:exec",
        images.busybox_ref, "sh", "-c", script,
        root=lroot,
    ).assert_success()  # fmt: skip
    try:
        doc = inspect_one(lroot, "misc")
        assert doc["Config"]["Labels"] == {"tier": "web", "owner": "dev"}
        assert doc["Spec"]["annotations"]["org.example.note"] == "hello"
        out = ctl_proc("logs", "misc", root=lroot).stdout
        mounts = {line.split()[1]: line.split()[3].split(",") for line in out.splitlines()[:2]}
        assert {"nosuid", "nodev", "noexec", "size=1024k", "mode=1770"} <= set(mounts["/scratch"])
        assert "noexec" not in mounts["/run/fast"]
        assert "wrote" in out
    finally:
        ctl_proc("rm", "-f", "misc", root=lroot).assert_success()


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--stop-signal", "SIGNOPE"], "--stop-signal"),
        (["--stop-timeout", "soon"], "--stop-timeout"),
        (["--annotation", "novalue"], "--annotation"),
        (["--label-file", "/nonexistent/labels"], "--label-file"),
        (["--tmpfs", "relative"], "--tmpfs"),
        (["--tmpfs", "/x:size=huge"], "--tmpfs"),
        (["-a", "stdlog"], "-a"),
        (["-a", "stdout", "-d"], "-a"),
        (["--sig-proxy=maybe"], "--sig-proxy"),
        (["--detach-keys", "ctrl-1"], "--detach-keys"),
    ],
)
def test_bad_values_create_nothing(
    lroot: Path, images: CanonicalImages, flags: list[str], named: str
) -> None:
    before = _names(lroot)
    result = ctl_proc("run", *flags, images.busybox_ref, "true", root=lroot)
    result.assert_failure(125, stderr_re=f"^ctl: .*{named}")
    assert _names(lroot) == before


def test_an_empty_workdir_is_the_image_s(lroot: Path, images: CanonicalImages) -> None:
    factory = images.factory
    image = factory.push(factory.image(working_dir="/etc"), "test/netl-workdir")
    for flag in (["-w", ""], ["--workdir="]):
        run = ctl_proc("run", "--rm", "--net", "none", *flag, image, "pwd", root=lroot)
        assert run.assert_success().stdout == "/etc\n", flag
    # docker refuses only a relative one.
    ctl_proc("run", "--rm", "--net", "none", "-w", "etc", image, "pwd", root=lroot).assert_failure(
        125, stderr_re="absolute"
    )
