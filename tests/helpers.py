"""Runners for ctl (in-process and as a subprocess), ports, and a real registry server.

``run_ctl`` calls ``ctl.main.cli`` in this process: fast, and a failing test
shows ctl's own frames. ``ctl_proc`` runs ctl as a separate program, the built
``dist/ctl.pex`` when ``CTL_TEST_BINARY`` names it, else ``python -m ctl``;
use it for anything that forks, detaches, reads a terminal or must see real
file descriptors. Both return a ``CtlResult`` and always pass ``--root``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tests.images import push_layout

if TYPE_CHECKING:
    from collections.abc import Mapping

    from tests.images import OCILayout

REPO_ROOT = Path(__file__).resolve().parent.parent
DOCKER_REGISTRY = "/usr/bin/docker-registry"
_CTL_ERROR_CODES = (125, 126, 127)


@dataclass(frozen=True)
class CtlResult:
    """CtlResult is what one ctl invocation returned and printed."""

    argv: tuple[str, ...]
    code: int
    stdout: str
    stderr: str

    def _explain(self, want: str) -> str:
        return (
            f"ctl {' '.join(self.argv)}: {want}, got exit {self.code}\n"
            f"--- stdout ---\n{self.stdout}--- stderr ---\n{self.stderr}"
        )

    def assert_success(self, stdout_re: str | None = None) -> CtlResult:
        """assert_success checks exit 0, no traceback, and ``re.search(stdout_re, stdout)``."""
        assert self.code == 0, self._explain("want exit 0")
        assert "Traceback" not in self.stderr, self._explain("want no traceback")
        if stdout_re is not None:
            assert re.search(stdout_re, self.stdout, re.MULTILINE), self._explain(
                f"want stdout matching {stdout_re!r}"
            )
        return self

    def assert_failure(self, code: int = 125, stderr_re: str | None = None) -> CtlResult:
        """assert_failure checks the exit code, that no traceback was printed, and the message.

        For ctl's own failures (125, 126, 127) stderr must be exactly one line
        starting ``ctl: `` (SPEC §4). Other codes are a container's exit status,
        whose stderr is the container's own and is not checked for form.
        """
        assert self.code == code, self._explain(f"want exit {code}")
        assert "Traceback" not in self.stderr, self._explain("want no traceback")
        if code in _CTL_ERROR_CODES:
            lines = self.stderr.splitlines()
            assert len(lines) == 1 and lines[0].startswith("ctl: "), self._explain(
                "want stderr to be one line starting 'ctl: '"
            )
        if stderr_re is not None:
            assert re.search(stderr_re, self.stderr, re.MULTILINE), self._explain(
                f"want stderr matching {stderr_re!r}"
            )
        return self

    def json_lines(self) -> list[object]:
        """json_lines parses stdout as ``--format json`` prints it: one object a line."""
        return [json.loads(line) for line in self.stdout.splitlines() if line.strip()]


def _argv(root: Path | str | None, argv: tuple[str, ...]) -> list[str]:
    return ["--root", str(root), *argv] if root is not None else list(argv)


def run_ctl(*argv: str, root: Path | str | None, input: str | bytes | None = None) -> CtlResult:
    """run_ctl runs ``ctl --root ROOT ARGV...`` in this process.

    stdout and stderr are text wrappers over byte buffers, so code that writes
    to ``sys.stdout.buffer`` is captured too. ``root=None`` leaves out
    ``--root``, for tests that set ``CTL_ROOT`` themselves.
    """
    from ctl.main import cli

    full = _argv(root, argv)
    raw_in = input.encode() if isinstance(input, str) else (input or b"")
    stdin = io.TextIOWrapper(io.BytesIO(raw_in), encoding="utf-8")
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
    stderr = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
    saved_stdin = sys.stdin
    sys.stdin = stdin
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                code = cli(full)
            except SystemExit as exc:
                # argparse's --help, and anything else that exits, as a process would.
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.stdin = saved_stdin
    stdout.flush()
    stderr.flush()
    return CtlResult(
        argv=tuple(full),
        code=code,
        stdout=_decode(stdout),
        stderr=_decode(stderr),
    )


def _decode(stream: io.TextIOWrapper) -> str:
    buffer = stream.buffer
    assert isinstance(buffer, io.BytesIO)
    return buffer.getvalue().decode("utf-8", errors="replace")


def ctl_command() -> list[str]:
    """ctl_command is the argv prefix that runs ctl: ``$CTL_TEST_BINARY`` or ``python -m ctl``."""
    binary = os.environ.get("CTL_TEST_BINARY")
    return [binary] if binary else [sys.executable, "-m", "ctl"]


def ctl_proc(
    *argv: str,
    root: Path | str | None,
    input: str | bytes | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> CtlResult:
    """ctl_proc runs ``ctl --root ROOT ARGV...`` as a subprocess from the repository root.

    ``env`` entries are added to this process's environment.
    """
    full = _argv(root, argv)
    proc = subprocess.run(
        [*ctl_command(), *full],
        cwd=REPO_ROOT,
        input=input.encode() if isinstance(input, str) else input,
        stdin=subprocess.DEVNULL if input is None else None,
        capture_output=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )
    return CtlResult(
        argv=tuple(full),
        code=proc.returncode,
        stdout=proc.stdout.decode("utf-8", errors="replace"),
        stderr=proc.stderr.decode("utf-8", errors="replace"),
    )


def free_port() -> int:
    """free_port is a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 10.0) -> None:
    """wait_for_port returns once ``host:port`` accepts connections, or raises TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError as err:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s") from err
            time.sleep(0.02)


class RegistryServer:
    """RegistryServer runs Debian's docker-registry (distribution 2.x) on 127.0.0.1.

    Storage is a directory under ``workdir``, deletes are enabled and there is
    no auth or TLS, so clients reach it as an insecure localhost registry.
    """

    def __init__(self, workdir: Path, binary: str = DOCKER_REGISTRY) -> None:
        self.workdir = workdir
        self.binary = binary
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "registry.log"

    def start(self, timeout: float = 15.0) -> RegistryServer:
        """start runs the server and returns once ``GET /v2/`` answers 200."""
        import requests

        config = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {
                "filesystem": {"rootdirectory": str(self.workdir / "data")},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": self.host, "secret": "ctl-tests"},
        }
        # JSON is YAML, which saves a YAML dependency.
        config_path = self.workdir / "config.yml"
        config_path.write_text(json.dumps(config, indent=2))
        # REGISTRY_* variables override the config file; keep the caller's out.
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                [self.binary, "serve", str(config_path)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                raise RuntimeError(f"docker-registry exited {self._proc.returncode}: {self._log()}")
            with contextlib.suppress(requests.ConnectionError):
                if requests.get(f"{self.url}/v2/", timeout=2).status_code == 200:
                    return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"docker-registry did not answer in {timeout}s: {self._log()}")
            time.sleep(0.05)

    def _log(self) -> str:
        return self.log_path.read_text(errors="replace")[-2000:]

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None

    def push(
        self, layout: OCILayout, repo: str, tag: str = "latest", *, ref_name: str | None = None
    ) -> str:
        """push uploads image ``ref_name`` of ``layout`` as ``repo:tag``; returns its reference."""
        push_layout(self.url, layout, repo, tag, ref_name=ref_name)
        return f"{self.host}/{repo}:{tag}"


def remove_containers(root: Path) -> None:
    """remove_containers removes every container of the default namespace, running or not.

    A created container keeps its rootfs mounted, which a test's temporary root must not.
    """
    ids = ctl_proc("ps", "-a", "-q", "--no-trunc", root=root).stdout.split()
    if ids:
        ctl_proc("rm", "-f", *ids, root=root)


def remove_bridges(root: Path) -> None:
    """remove_bridges detaches what a root left attached and deletes its networks' bridges.

    Bridges outlive a root (the bridge plugin never deletes them), so a
    test root must take its own with it.
    """
    attachments = root / "cni" / "attachments"
    for ns_dir in sorted(attachments.glob("*")):
        from ctl.network.manager import NetworkManager

        manager = NetworkManager(root, ns_dir.name)
        for record in sorted(ns_dir.glob("*.json")):
            manager.detach(record.stem)
    for conflist in sorted((root / "networks").glob("*.conflist")):
        bridge = json.loads(conflist.read_text())["ctl"]["bridge"]
        subprocess.run(["ip", "link", "delete", bridge], capture_output=True, check=False)


def imported_modules(*argv: str) -> set[str]:
    """imported_modules runs ``python -m ctl ARGV`` and names every module it imported."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "ctl", *argv],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, f"ctl {' '.join(argv)} failed:\n{proc.stdout}{proc.stderr}"
    # Lines read "import time: <self us> | <cumulative us> | <indent><module>".
    return {
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
