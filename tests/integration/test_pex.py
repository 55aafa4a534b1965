"""The shipped artefact, dist/ctl.pex: it starts, names its version, and boots on the fast path."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from ctl import __version__
from tests.helpers import REPO_ROOT

PEX = REPO_ROOT / "dist" / "ctl.pex"


@pytest.fixture(scope="session")
def pex() -> Path:
    """pex is dist/ctl.pex built from the tree as it is now.

    build_pex.sh does nothing when its inputs are unchanged, as they are right after
    scripts/test.sh has built it; after an edit it rebuilds, so a test never runs stale code.
    """
    proc = subprocess.run(
        ["bash", "scripts/build_pex.sh"],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, f"scripts/build_pex.sh failed:\n{proc.stdout}{proc.stderr}"
    return PEX


def _env_without_home() -> dict[str, str]:
    # Scripts and services often start ctl with HOME unset; the pex must not need it, and a
    # PEX_* variable from the caller would change how the pex boots.
    return {k: v for k, v in os.environ.items() if k != "HOME" and not k.startswith("PEX_")}


@pytest.mark.needs_root
def test_pex_prints_its_version(pex: Path) -> None:
    proc = subprocess.run(
        [str(pex), "--version"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=_env_without_home(),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert __version__ in proc.stdout
    assert "PEXWarning" not in proc.stderr


@pytest.mark.needs_root
def test_pex_finds_its_venv_on_the_fast_path(pex: Path) -> None:
    """The sh-boot header execs the venv directly only if it exists where the build said.

    It is keyed by the interpreter the pex was built for: if the pex laid itself out with
    another python (a pyenv shim first on PATH, say), every call would take the slow path.
    """
    header = pex.read_bytes()[:2048].decode("utf-8", errors="replace")
    pex_root = re.search(r'^DEFAULT_PEX_ROOT="\$\(echo (.+)\)"$', header, re.MULTILINE)
    installed = re.search(r'^INSTALLED_PEX="\$\{PEX_ROOT\}/(.+)"$', header, re.MULTILINE)
    assert pex_root and installed, f"not an sh-boot pex:\n{header}"
    assert pex_root[1] == "/var/cache/ctl/pex"
    proc = subprocess.run(
        [str(pex), "--version"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=_env_without_home(),
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    venv_python = f"{pex_root[1]}/{installed[1]}/bin/python"
    assert os.access(venv_python, os.X_OK), f"{venv_python} missing: the fast path never matches"
