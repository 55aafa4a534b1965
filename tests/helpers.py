"""Runners for ctl (in-process and as a subprocess), ports, and a real registry server.

``run_ctl`` calls ``ctl.main.cli`` in this process: fast, and a failing test
shows ctl's own frames. ``ctl_proc`` runs ctl as a separate program, the built
``dist/ctl.pex`` when ``CTL_TEST_BINARY`` names it, else ``python -m ctl``;
use it for anything that forks, detaches, reads a terminal or must see real
file descriptors. Both return a ``CtlResult`` and always pass ``--root``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import ipaddress
import json
import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.images import push_layout

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping

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


def inspect_one(root: Path, name: str) -> dict[str, Any]:
    """inspect_one is the one document ``ctl inspect NAME`` prints."""
    docs: list[dict[str, Any]] = json.loads(
        ctl_proc("inspect", name, root=root).assert_success().stdout
    )
    return docs[0]


def free_port() -> int:
    """free_port is a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def free_port_pair() -> int:
    """free_port_pair is a TCP port on 127.0.0.1 that, with the next one, was free a moment
    ago (both held at once while they are checked), for a published port range."""
    while True:
        low = free_port()
        with (
            socket.socket(socket.AF_INET, socket.SOCK_STREAM) as first,
            socket.socket(socket.AF_INET, socket.SOCK_STREAM) as second,
        ):
            try:
                first.bind(("127.0.0.1", low))
                second.bind(("127.0.0.1", low + 1))
            except OSError:
                continue  # taken meanwhile, or the next one is: try another
        return low


def free_subnet() -> ipaddress.IPv4Network:
    """free_subnet is a /24 that none of the host's routes and addresses overlapped a moment ago.

    It is drawn from 10.20-89.*, outside the /16s that ctl picks for a network without
    --subnet (ctl.network.config.CANDIDATE_SUBNETS): a ctl of another job on this host does not
    take it meanwhile, as it could take a subnet named in a test.
    """
    import random

    from ctl.network.config import host_networks

    taken = host_networks()
    for _ in range(1000):
        subnet = ipaddress.IPv4Network(f"10.{random.randint(20, 89)}.{random.randint(0, 255)}.0/24")
        if not any(subnet.overlaps(t) for t in taken):
            return subnet
    raise RuntimeError("no free /24 in 10.20.0.0-10.89.255.255 on this host")


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
    no TLS, so clients reach it as an insecure localhost registry. ``users``
    (name -> password) turn on the registry's htpasswd (basic) auth.
    """

    def __init__(
        self, workdir: Path, binary: str = DOCKER_REGISTRY, users: dict[str, str] | None = None
    ) -> None:
        self.workdir = workdir
        self.binary = binary
        self.users = users or {}
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
        ready = 200
        if self.users:
            htpasswd = self.workdir / "htpasswd"
            lines = [
                subprocess.run(
                    ["htpasswd", "-nbB", user, password], capture_output=True, check=True, text=True
                ).stdout.strip()
                for user, password in self.users.items()
            ]
            htpasswd.write_text("\n".join(lines) + "\n")
            config["auth"] = {"htpasswd": {"realm": "ctl-tests", "path": str(htpasswd)}}
            ready = 401
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
                if requests.get(f"{self.url}/v2/", timeout=2).status_code == ready:
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


# CNI plugins name a container's iptables chains after its network and id
# (containernetworking/plugins pkg/utils FormatChainNameWithPrefix).
_CNI_CHAIN_PREFIXES = ("CNI-", "CNI-DN-")
_CNI_CHAIN_LENGTH = 28


def cni_chains(network: str, container_id: str) -> set[str]:
    """cni_chains are the chains bridge (masquerade) and portmap (DNAT) make for a container."""
    digest = hashlib.sha512(f"{network}{container_id}".encode()).hexdigest()
    return {f"{prefix}{digest}"[:_CNI_CHAIN_LENGTH] for prefix in _CNI_CHAIN_PREFIXES}


def host_leftovers(
    root: Path, ids: Iterable[str] = (), addresses: Iterable[str] = ()
) -> dict[str, list[str]]:
    """host_leftovers is what root ``root`` left on the host, by kind; empty when nothing.

    It looks only at what it can tell is this root's, so that other roots
    working at the same moment (other tests, other jobs) never count: the
    bridges of its networks and those marked as made by it (a bridge lives
    only while containers use it), and the interfaces on them; iptables
    rules that name those bridges, a container of ``ids``, one of the
    chains CNI makes for them, or one of their ``addresses`` (IPv4, given
    by the test, as two roots can have alike subnets); mounts under the
    root; the cgroups of ``ids``; and, under the root, network namespaces,
    attachment records and address leases.
    """
    from ctl.network import bridges as host_bridges

    ids, addresses = set(ids), set(addresses)
    networks = [json.loads(p.read_text()) for p in sorted((root / "networks").glob("*.conflist"))]
    mark = host_bridges.alias_for(str(root))
    bridges = {str(n["ctl"]["bridge"]) for n in networks}
    bridges |= {b for b in host_bridges.ctl_named() if host_bridges.alias(b) == mark}
    chains = {c for n in networks for cid in ids for c in cni_chains(n["name"], cid)}
    words = bridges | ids | chains | addresses
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    left = {
        "bridges": sorted(b for b in bridges if host_bridges.exists(b)),
        "interfaces on the root's bridges": sorted(
            f"{bridge}: {port}"
            for bridge in bridges
            for port in _listdir(Path("/sys/class/net", bridge, "brif"))
        ),
        "iptables rules": [
            line
            for line in rules.splitlines()
            if line.startswith("-A") and any(_names(line, word) for word in words)
        ],
        "iptables chains": sorted(
            line.split()[0][1:] for line in rules.splitlines() if line.split()[0][1:] in chains
        ),
        "mounts": [
            point for point in _mount_points() if point == str(root) or point.startswith(f"{root}/")
        ],
        "cgroups": sorted(
            str(path)
            for cid in ids
            for pattern in (f"ctl/*/{cid}", f"*/ctl/*/{cid}")
            for path in Path("/sys/fs/cgroup").glob(pattern)
        ),
        "network namespaces": _files(root / "netns"),
        "attachment records": _files(root / "cni" / "attachments"),
        # host-local's address files, not its lock and last-reserved bookkeeping.
        "address leases": [
            f
            for f in _files(root / "cni" / "ipam")
            if not f.endswith("/lock") and "/last_reserved_ip" not in f
        ],
    }
    return {kind: found for kind, found in left.items() if found}


def _names(line: str, word: str) -> bool:
    """_names is True if ``word`` stands in ``line`` as a whole token (not part of a longer one)."""
    return re.search(rf"(?<![\w.-]){re.escape(word)}(?![\w-])", line) is not None


def _listdir(directory: Path) -> list[str]:
    try:
        return os.listdir(directory)
    except OSError:
        return []


def _files(directory: Path) -> list[str]:
    if not directory.exists():
        return []
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


def _mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4].encode().decode("unicode_escape") for line in f]


def pulled_root(parent: Path, image: str) -> Iterator[Path]:
    """pulled_root yields a root under ``parent`` holding ``image``, and cleans it afterwards:
    the body of every fixture that gives its tests a root with an image pulled."""
    root = parent / "root"
    ctl_proc("pull", image, root=root).assert_success()
    yield root
    clean_root(root)


def clean_root(root: Path) -> None:
    """clean_root removes what a test's root left on the host: containers, networks, bridges.

    A safety net for a test that failed half-way. Its containers keep their
    rootfs mounted under pytest's temporary directory (which then cannot be
    deleted) and their supervisors running; each is removed, in every
    namespace, those whose record a test damaged too. Attachment records
    left without a container keep their veths, rules and bridges on the
    host, as a detach after a crash would find them. The last detach from a
    network takes its bridge; a bridge that nothing uses any more (a kill -9
    between DEL and the bridge's delete) goes as ``system check --repair``
    deletes it. Whatever is still mounted under the root last goes lazily.
    """
    from ctl.client import Client
    from ctl.errdefs import CtlError, DataCorrupted
    from ctl.network.manager import NetworkManager
    from ctl.paths import Paths
    from ctl.records import UnreadableRecord

    if not root.exists():
        return
    for namespace in Client(root).list_namespaces():
        client = Client(root, namespace)
        damaged: list[DataCorrupted] = []
        found = [c.id for c in client.containers.list(on_error=damaged.append)]
        found += [e.key for e in damaged if isinstance(e, UnreadableRecord) and e.key]
        for container_id in found:
            with contextlib.suppress(CtlError):
                client.remove_container(container_id, force=True)
    paths = Paths(root)
    for ns_dir in sorted((root / "cni" / "attachments").glob("*")):
        manager = NetworkManager(paths, ns_dir.name, lambda ns, cid: cid)
        for record in sorted(ns_dir.glob("*.json")):
            manager.detach(record.stem)
    for unused in NetworkManager(paths, "default", lambda ns, cid: cid).unused_bridges():
        unused.repair()
    for point in sorted(_mount_points(), reverse=True):
        if point.startswith(f"{root}/"):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)


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
