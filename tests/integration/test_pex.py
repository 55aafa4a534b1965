"""The shipped artefact, dist/ctl.pex: it starts on each supported Python, boots on the fast
path, refuses an unusable Python in one line, and builds reproducibly.

The Pythons are the ones the build compiles python-prctl with (scripts/build_wheels.sh):
Debian 12's /usr/bin/python3.11 here, the machine's CPython 3.12 build, and Debian 13's
python3.13 in the build's trixie chroot.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from ctl import __version__
from tests.helpers import REPO_ROOT
from tests.images import CanonicalImages

PEX = REPO_ROOT / "dist" / "ctl.pex"
SERVER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TRIXIE = Path(os.environ.get("CTL_BUILD_CACHE", "/var/cache/ctl-build")) / "trixie"
NO_PYTHON = "ctl: no usable Python: ctl needs CPython 3.11, 3.12 or 3.13"


def _script(*argv: str) -> str:
    """_script runs ``bash ARGV...`` from the repository root and returns what it printed."""
    proc = subprocess.run(
        ["bash", *argv],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, f"{' '.join(argv)} failed:\n{proc.stdout}{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="session")
def pex() -> Path:
    """pex is dist/ctl.pex built from the tree as it is now.

    build_pex.sh does nothing when its inputs are unchanged, as they are right after
    scripts/test.sh has built it; after an edit it rebuilds, so a test never runs stale code.
    """
    _script("scripts/build_pex.sh")
    return PEX


def _env_without_home() -> dict[str, str]:
    # Scripts and services often start ctl with HOME unset; the pex must not need it, and a
    # PEX_* variable from the caller would change how the pex boots.
    return {k: v for k, v in os.environ.items() if k != "HOME" and not k.startswith("PEX_")}


def _run(
    argv: list[str], env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.mark.needs_root
def test_pex_prints_its_version(pex: Path) -> None:
    proc = _run([str(pex), "--version"], _env_without_home())
    assert proc.returncode == 0, proc.stderr
    assert __version__ in proc.stdout
    assert "PEXWarning" not in proc.stderr


@pytest.mark.needs_root
def test_pex_finds_its_venv_on_the_fast_path(pex: Path) -> None:
    """The boot header execs the venv directly if it exists where the build said."""
    header = pex.read_bytes()[:4096].decode("utf-8", errors="replace")
    pex_root = re.search(r'^PEX_ROOT="\$\{PEX_ROOT:-(.+)\}"$', header, re.MULTILINE)
    installed = re.search(r'^INSTALLED_PEX="\$\{PEX_ROOT\}/(.+)"$', header, re.MULTILINE)
    assert pex_root and installed, f"not ctl's boot header:\n{header}"
    assert pex_root[1] == "/var/cache/ctl/pex"
    proc = _run([str(pex), "--version"], _env_without_home())
    assert proc.returncode == 0, proc.stderr
    venv_python = f"{pex_root[1]}/{installed[1]}/bin/python"
    assert os.access(venv_python, os.X_OK), f"{venv_python} missing: the fast path never matches"


def _python312() -> str:
    return _script("scripts/build_wheels.sh", "--python", "3.12").strip()


def _boot_execs(trace: str) -> list[str]:
    """_boot_execs are the exec lines of an ``sh -x`` trace of the boot header."""
    return [line for line in trace.splitlines() if line.startswith("+ exec ")]


class _Host:
    """_Host runs the pex on this machine, with a private PEX_ROOT and a server's PATH that
    has the Python under test (only through its versioned name, as servers have it)."""

    def __init__(self, pex: Path, tmp: Path, version: str) -> None:
        self.pex = pex
        self.scratch = str(tmp)
        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        python = "/usr/bin/python3.11" if version == "3.11" else _python312()
        (bin_dir / f"python{version}").symlink_to(python)
        self.env = {
            "PATH": f"{bin_dir}:{SERVER_PATH}",
            "PEX_ROOT": str(tmp / "pex-root"),
        }

    def run(self, *argv: str, shell_trace: bool = False) -> subprocess.CompletedProcess[str]:
        prefix = ["/bin/sh", "-x"] if shell_trace else []
        return _run([*prefix, str(self.pex), *argv], self.env)


class _Trixie:
    """_Trixie runs the pex in the build's Debian 13 chroot, with its /usr/bin/python3.13, in
    private mount and pid namespaces (their /proc goes with them)."""

    def __init__(self, pex: Path, tmp: Path) -> None:
        self.inside = Path("/tmp") / f"ctl-test-{tmp.name}"
        self.scratch = str(self.inside)
        shutil.rmtree(TRIXIE / self.inside.relative_to("/"), ignore_errors=True)
        (TRIXIE / self.inside.relative_to("/")).mkdir(parents=True)
        shutil.copy2(pex, TRIXIE / self.inside.relative_to("/") / "ctl.pex")
        self.env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "PEX_ROOT": f"{self.inside}/pex-root"}

    def run(self, *argv: str, shell_trace: bool = False) -> subprocess.CompletedProcess[str]:
        prefix = ["/bin/sh", "-x"] if shell_trace else []
        return _run(
            [
                "unshare", "--mount", "--pid", "--fork", f"--mount-proc={TRIXIE}/proc",
                "chroot", str(TRIXIE), "env", "-i",
                *(f"{k}={v}" for k, v in self.env.items()),
                *prefix, f"{self.inside}/ctl.pex", *argv,
            ],
            {"PATH": SERVER_PATH},
        )  # fmt: skip

    def remove(self) -> None:
        shutil.rmtree(TRIXIE / self.inside.relative_to("/"), ignore_errors=True)


@pytest.fixture(params=["3.11", "3.12", "3.13"])
def server(request: pytest.FixtureRequest, pex: Path, tmp_path: Path) -> Iterator[_Host | _Trixie]:
    """server runs the pex as a server with only that Python would, from an empty PEX_ROOT."""
    if request.param != "3.13":
        yield _Host(pex, tmp_path, request.param)
        return
    assert (TRIXIE / "usr/bin/python3.13").exists(), f"{TRIXIE}: run scripts/build_wheels.sh"
    trixie = _Trixie(pex, tmp_path)
    try:
        yield trixie
    finally:
        trixie.remove()


@pytest.mark.needs_root
def test_pex_starts_on_each_python_and_then_on_the_fast_path(
    server: _Host | _Trixie, request: pytest.FixtureRequest
) -> None:
    version = request.node.callspec.params["server"]
    first = server.run("--version")
    assert first.returncode == 0, first.stderr
    assert __version__ in first.stdout
    assert f"python version {version}." in first.stdout, first.stdout
    # Laid out now: the header execs the venv's python at once, straight into ctl, with
    # neither pex's boot code nor the site module in between.
    again = server.run("--version", shell_trace=True)
    assert again.returncode == 0, again.stderr
    execs = _boot_execs(again.stderr)
    assert len(execs) == 1 and "/venvs/" in execs[0] and "/bin/python -I -S -c " in execs[0], execs
    assert f"/lib/python{version}/site-packages " in execs[0], execs
    listing = server.run("--root", f"{server.scratch}/root", "ps", "-a")
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.split() == ["CONTAINER", "ID", "IMAGE", "COMMAND", "CREATED",
                                      "STATUS", "PORTS", "NAMES"]  # fmt: skip


@pytest.mark.needs_root
@pytest.mark.parametrize("version", ["3.11", "3.12"])
def test_pex_runs_a_container_on_the_hosts_pythons(
    pex: Path, tmp_path: Path, root: Path, images: CanonicalImages, version: str
) -> None:
    host = _Host(pex, tmp_path, version)
    pulled = host.run("--root", str(root), "pull", "-q", images.busybox_ref)
    assert pulled.returncode == 0, pulled.stderr
    ran = host.run("--root", str(root), "run", "--rm", images.busybox_ref, "echo", "hello")
    assert (ran.returncode, ran.stdout, ran.stderr) == (0, "hello\n", "")
    assert host.run("--root", str(root), "ps", "-a", "-q").stdout == ""


def _fake_old_python(directory: Path) -> Path:
    # A python3 too old for the pex: a real 3.9 is not on every machine, and all the header
    # asks of it is whether it is CPython 3.11 to 3.13, which a 3.9 would answer no to.
    directory.mkdir()
    python = directory / "python3"
    python.write_text("#!/bin/sh\nexit 1\n")
    python.chmod(0o755)
    return python


@pytest.mark.needs_root
@pytest.mark.parametrize("has_old_python", [True, False])
def test_pex_without_a_usable_python_says_so_in_one_line(
    pex: Path, tmp_path: Path, has_old_python: bool
) -> None:
    path = str(tmp_path / "empty")
    found = "none found"
    if has_old_python:
        python = _fake_old_python(tmp_path / "bin")
        path, found = str(python.parent), f"unusable: {python}"
    pex_root = tmp_path / "pex-root"
    proc = _run(["/bin/sh", str(pex), "--version"], {"PATH": path, "PEX_ROOT": str(pex_root)})
    assert proc.returncode == 125
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"{NO_PYTHON} as python3.13, python3.12, python3.11 or python3 on PATH ({found})"
    ]
    assert not pex_root.exists()


@pytest.mark.needs_root
def test_pex_lays_out_again_when_its_python_is_gone(pex: Path, tmp_path: Path) -> None:
    """A venv whose Python was removed (a Debian 12 to 13 upgrade) is made again."""
    gone = tmp_path / "gone"
    gone.mkdir()
    shutil.copy2("/usr/bin/python3.11", gone / "python3.11")
    env = {"PATH": f"{gone}:{SERVER_PATH}", "PEX_ROOT": str(tmp_path / "pex-root")}
    assert _run([str(pex), "--version"], env).returncode == 0
    shutil.rmtree(gone)
    proc = _run([str(pex), "--version"], {**env, "PATH": SERVER_PATH})
    assert proc.returncode == 0, proc.stderr
    assert __version__ in proc.stdout
    assert not list((tmp_path / "pex-root").glob("venvs/*/*/*.stale.*"))


@pytest.mark.needs_root
def test_pex_builds_reproducibly(pex: Path) -> None:
    """Two builds from empty pex caches give the same bytes as dist/ctl.pex."""
    printed = _script("scripts/build_pex.sh", "--check-reproducible")
    digests = re.findall(r"build +([0-9a-f]{64})$", printed, re.MULTILINE)
    assert digests == [hashlib.sha256(pex.read_bytes()).hexdigest()] * 2, printed
