"""startup.py measures what one ``ctl images`` call costs, next to the interpreter floor and podman.

Usage (as root, from anywhere; after scripts/setup.sh)::

    python3 bench/startup.py [--rounds 8] [--batch 5]

Each command runs ``batch`` times per round and the commands take turns round by round, so
that noise from other jobs on the machine spreads over all of them alike. Times come from
hyperfine when it is installed (no shell between it and the command), else from a
``subprocess`` loop. The table gives medians, p10-p90 and the ratio of each median to the
floor, ``/usr/bin/python3 -c pass``. A command that fails is reported, not timed. There are
no pass/fail thresholds: these are numbers to read and to compare across changes.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from timing import RunFailed, run, timed, why

REPO = Path(__file__).resolve().parent.parent
FLOOR = "python3 -c pass (floor)"


def commands(tmp: Path, others: list[str]) -> dict[str, list[str]]:
    """commands names each contestant; every ctl and podman gets its own empty root in tmp."""
    found = {
        FLOOR: ["/usr/bin/python3", "-c", "pass"],
        "dist/ctl.pex images": [
            str(REPO / "dist" / "ctl.pex"),
            "--root",
            str(tmp / "ctl"),
            "images",
        ],
        "venv: python -m ctl images": [
            str(REPO / ".venv" / "bin" / "python"),
            "-m",
            "ctl",
            "--root",
            str(tmp / "ctl"),
            "images",
        ],
    }
    for n, other in enumerate(others):
        found[f"{other} images"] = [other, "--root", str(tmp / f"other-{n}"), "images"]
    podman = shutil.which("podman")
    if podman:
        found["podman images (vfs)"] = [
            podman,
            "--root",
            str(tmp / "podman" / "root"),
            "--runroot",
            str(tmp / "podman" / "run"),
            "--storage-driver",
            "vfs",
            "--cgroup-manager",
            "cgroupfs",
            "--events-backend",
            "file",
            "images",
        ]
    return found


def time_with_hyperfine(argv: list[str], runs: int, env: dict[str, str], tmp: Path) -> list[float]:
    out = tmp / "hyperfine.json"
    options = ["-N", "--style", "none", "--runs", str(runs), "--export-json", str(out)]
    proc = subprocess.run(
        ["hyperfine", *options, "--", shlex.join(argv)],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RunFailed(f"later, under hyperfine: {why(argv, proc.returncode, proc.stderr)}")
    times: list[float] = json.loads(out.read_text())["results"][0]["times"]
    return times


def time_with_subprocess(argv: list[str], runs: int, env: dict[str, str]) -> list[float]:
    try:
        return [timed(argv, env) for _ in range(runs)]
    except RunFailed as err:
        raise RunFailed(f"later: {err}") from None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8, help="rounds of turns (default 8)")
    parser.add_argument("--batch", type=int, default=5, help="runs per command a round (5)")
    parser.add_argument(
        "--ctl", action="append", default=[], help="another ctl binary to time (an older build)"
    )
    args = parser.parse_args()
    # PEX_* variables change how the pex boots. PYTHON* ones (PYTHONDONTWRITEBYTECODE, say,
    # which makes every `python -m ctl` compile ctl from source) reach the venv row but not the
    # pex, whose venv python runs with -I; dropping both keeps the rows comparable.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PEX_", "PYTHON"))}
    hyperfine = shutil.which("hyperfine") is not None

    with tempfile.TemporaryDirectory(prefix="ctl-bench-") as name:
        tmp = Path(name)
        timed = commands(tmp, args.ctl)
        failed: dict[str, str] = {}
        for label, argv in list(timed.items()):
            try:
                run(argv, env)
            except RunFailed as err:
                failed[label] = str(err)
                del timed[label]
        samples: dict[str, list[float]] = {label: [] for label in timed}
        for _ in range(args.rounds):
            for label, argv in list(timed.items()):
                try:
                    if hyperfine:
                        samples[label] += time_with_hyperfine(argv, args.batch, env, tmp)
                    else:
                        samples[label] += time_with_subprocess(argv, args.batch, env)
                except RunFailed as err:
                    failed[label] = str(err)
                    del timed[label], samples[label]

    method = "hyperfine -N" if hyperfine else "subprocess loop"
    print(
        f"ctl start-up: {args.rounds} rounds x {args.batch} runs, interleaved, {method}, "
        f"{os.cpu_count()} CPUs"
    )
    floor = statistics.median(samples[FLOOR]) if FLOOR in samples else None
    print(f"{'command':<30} {'median ms':>10} {'p10-p90 ms':>14} {'x floor':>8}")
    for label, times in samples.items():
        deciles = statistics.quantiles(times, n=10)
        median = statistics.median(times)
        spread = f"{deciles[0] * 1e3:.1f}-{deciles[8] * 1e3:.1f}"
        ratio = f"{median / floor:.1f}" if floor else "-"
        print(f"{label:<30} {median * 1e3:>10.1f} {spread:>14} {ratio:>8}")
    for label, reason in failed.items():
        print(f"{label:<30} {'FAILED':>10}  {reason}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
