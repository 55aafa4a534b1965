"""cp.py measures ``ctl cp FILE CONTAINER:/PATH`` against ``cp FILE DIR`` on the host (issue 12).

Usage (as root, from anywhere; after scripts/setup.sh)::

    python3 bench/cp.py [--rounds 5] [--size-mb 1024] [--dir DIR]

A file of ``--size-mb`` random bytes (from a seeded generator, so every run copies the
same bytes) is written under ``--dir`` (default: the system's temp dir), and the busybox
image of bench/run.py is loaded into a ctl root there. One container runs
``sleep`` for the whole bench, so ``ctl cp`` writes into the root filesystem of a running
task (overlayfs where the root allows it), as a user would.

Each round copies the file twice, the contestants taking turns:

- ``cp FILE DIR/copy`` on the host, into a directory on the same file system as ctl's
  root (the floor: coreutils ``cp``, which uses copy_file_range and keeps holes);
- ``ctl cp FILE CONTAINER:/copy`` from the dev venv (``python -m ctl``), so its time
  includes the interpreter's start, ctl's imports, the container lookup and the lock.

The page cache is written back (``sync``) before each timed copy and the copies are
removed outside the timings. The table gives medians, the spread (min-max) and the ratio
of ctl's median to the host ``cp``'s. No thresholds: numbers to compare across changes.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from run import IMAGE, build_image
from timing import run, timed

REPO = Path(__file__).resolve().parent.parent
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
CONTAINER = "ctl-bench-cp"
_CHUNK = 1 << 20


def write_file(path: Path, size_mb: int) -> None:
    rng = random.Random(12)
    with path.open("wb") as f:
        for _ in range(size_mb):
            f.write(rng.randbytes(_CHUNK))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--dir", default=None, help="where the file and the root go")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ctl-bench-cp-", dir=args.dir))
    ctl = [str(VENV_PYTHON), "-m", "ctl", "--root", str(tmp / "root")]
    try:
        archive, _ = build_image(tmp)
        run([*ctl, "load", "-q", "-i", str(archive)])
        run([*ctl, "run", "-d", "--name", CONTAINER, "--net", "none", IMAGE, "sleep", "3600"])
        source = tmp / "file"
        write_file(source, args.size_mb)
        host_dir = tmp / "host"
        host_dir.mkdir()
        contestants = {
            "cp (host)": (["cp", str(source), str(host_dir / "copy")], host_dir / "copy"),
            "ctl cp": ([*ctl, "cp", str(source), f"{CONTAINER}:/copy"], None),
        }
        times: dict[str, list[float]] = {label: [] for label in contestants}
        for n in range(args.rounds):
            order = list(contestants)
            if n % 2:
                order.reverse()
            for label in order:
                argv, leftover = contestants[label]
                subprocess.run(["sync"], check=True)
                times[label].append(timed(argv))
                if leftover is not None:
                    leftover.unlink()
                else:
                    run([*ctl, "exec", CONTAINER, "rm", "/copy"])
        floor = statistics.median(times["cp (host)"])
        print(f"{args.size_mb} MiB file, {args.rounds} rounds")
        print(f"{'contestant':<12} {'median':>9} {'min-max':>17} {'ratio':>6}")
        for label, samples in times.items():
            median = statistics.median(samples)
            spread = f"{min(samples):.3f}-{max(samples):.3f}s"
            print(f"{label:<12} {median:>8.3f}s {spread:>17} {median / floor:>6.2f}")
        return 0
    finally:
        subprocess.run([*ctl, "rm", "-f", CONTAINER], capture_output=True, check=False)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
