"""ps.py measures what ``ctl ps -a`` costs on an empty root and on a root of 100 containers.

Usage (as root, after scripts/setup.sh)::

    python3 bench/ps.py [--rounds 8] [--batch 5] [--containers 100] [--ctl PEX ...]

``--ctl`` may be given several times (an older build next to the current one, say); the
default is dist/ctl.pex. Each ctl gets two private roots: one empty, and one where the
busybox image of bench/run.py was loaded and ``--containers`` containers were created
(``ctl create``, never started, so the root holds records and mounted snapshots only). The
rows take turns round by round, so that noise from other jobs spreads over all of them
alike, and the table gives medians, p10-p90 and two ratios: to the interpreter floor
(``/usr/bin/python3 -c pass``) and, for a full root, to the same ctl's empty root (issue
15's "flat in the number of containers").
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

from run import IMAGE, build_image, clean_env, unmount_under
from timing import RunFailed, run, timed

REPO = Path(__file__).resolve().parent.parent
FLOOR = "python3 -c pass (floor)"


def fill(ctl: str, root: Path, archive: Path, count: int, env: dict[str, str]) -> None:
    """fill loads the image into ``root`` and creates ``count`` containers from it."""
    run([ctl, "--root", str(root), "load", "-q", "-i", str(archive)], env)
    for _ in range(count):
        run([ctl, "--root", str(root), "create", "--net", "none", "--pull", "never", IMAGE], env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8, help="rounds of turns (default 8)")
    parser.add_argument("--batch", type=int, default=5, help="runs per row a round (5)")
    parser.add_argument("--containers", type=int, default=100, help="containers (100)")
    parser.add_argument("--ctl", action="append", default=[], help="a ctl binary (repeatable)")
    args = parser.parse_args()
    binaries = args.ctl or [str(REPO / "dist" / "ctl.pex")]
    env = clean_env()

    with tempfile.TemporaryDirectory(prefix="ctl-bench-ps-") as name:
        tmp = Path(name)
        try:
            archive, _ = build_image(tmp)
            rows: dict[str, list[str]] = {FLOOR: ["/usr/bin/python3", "-c", "pass"]}
            empty_of: dict[str, str] = {}
            for n, ctl in enumerate(binaries):
                empty, full = tmp / f"empty-{n}", tmp / f"full-{n}"
                fill(ctl, full, archive, args.containers, env)
                label = ctl if len(binaries) > 1 else Path(ctl).name
                rows[f"{label}: ps -a, empty"] = [ctl, "--root", str(empty), "ps", "-a"]
                full_label = f"{label}: ps -a, {args.containers} created"
                rows[full_label] = [ctl, "--root", str(full), "ps", "-a"]
                empty_of[full_label] = f"{label}: ps -a, empty"
            for argv in rows.values():
                run(argv, env)  # warm: caches, the pex's venv, each root's layout
            samples: dict[str, list[float]] = {label: [] for label in rows}
            for _ in range(args.rounds):
                for label, argv in rows.items():
                    samples[label] += [timed(argv, env) for _ in range(args.batch)]
        except RunFailed as err:
            print(f"ps bench failed: {err}", file=sys.stderr)
            return 1
        finally:
            for n, ctl in enumerate(binaries):
                full = tmp / f"full-{n}"
                if full.exists():
                    run_quietly([ctl, "--root", str(full), "rm", "-f", *container_ids(ctl, full)])
            unmount_under(tmp)

    cpus = os.cpu_count()
    print(f"ctl ps -a: {args.rounds} rounds x {args.batch} runs, interleaved, {cpus} CPUs")
    floor = statistics.median(samples[FLOOR])
    print(f"{'command':<58} {'median ms':>10} {'p10-p90 ms':>14} {'x floor':>8} {'x empty':>8}")
    for label, times in samples.items():
        deciles = statistics.quantiles(times, n=10)
        median = statistics.median(times)
        spread = f"{deciles[0] * 1e3:.1f}-{deciles[8] * 1e3:.1f}"
        empty = empty_of.get(label)
        to_empty = f"{median / statistics.median(samples[empty]):.2f}" if empty else "-"
        ratio = median / floor
        print(f"{label:<58} {median * 1e3:>10.1f} {spread:>14} {ratio:>8.1f} {to_empty:>8}")
    return 0


def container_ids(ctl: str, root: Path) -> list[str]:
    import subprocess

    proc = subprocess.run(
        [ctl, "--root", str(root), "ps", "-aq"], capture_output=True, text=True, check=False
    )
    return proc.stdout.split()


def run_quietly(argv: list[str]) -> None:
    # Clean-up after the timings: a failure here must not hide the table.
    try:
        run(argv)
    except RunFailed as err:
        print(f"clean-up: {err}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
