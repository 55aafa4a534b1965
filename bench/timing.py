"""What every bench shares: running a command, timing it, and saying why it failed."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


class RunFailed(Exception):
    """RunFailed says why a command failed; the contestant is then reported, not timed."""


def why(argv: list[str], code: int, stderr: bytes) -> str:
    lines = stderr.decode(errors="replace").strip().splitlines()
    return f"{Path(argv[0]).name} exit {code}: {lines[-1] if lines else '(no stderr)'}"


def run(argv: list[str], env: dict[str, str] | None = None, cwd: Path = REPO) -> str:
    """run runs a command once (a setup step, or a warm-up) and returns its standard output;
    RunFailed if it fails."""
    try:
        proc = subprocess.run(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, check=False
        )
    except OSError as err:
        raise RunFailed(f"{argv[0]}: {err}") from err
    if proc.returncode != 0:
        raise RunFailed(why(argv, proc.returncode, proc.stderr))
    return proc.stdout.decode(errors="replace")


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    """timed runs argv once and returns its wall time in seconds."""
    start = time.perf_counter()
    proc = subprocess.run(
        argv,
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RunFailed(why(argv, proc.returncode, proc.stderr))
    return elapsed
