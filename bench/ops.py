"""ops.py measures what scripts call often besides ps: ``stats --no-stream`` and
``events --until now``, each against ``ps -a`` on the same root (issue 13).

Usage (as root, after scripts/setup.sh)::

    python3 bench/ops.py [--rounds 8] [--batch 5] [--containers 5] [--ctl PEX]

One private root gets the busybox image of bench/run.py and ``--containers``
running containers (``sleep``), whose create and start fill the event log. The
three commands take turns round by round; the table gives medians, p10-p90 and
the ratio to ``ps -a`` on that root.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from ps import container_ids, run_quietly
from run import IMAGE, build_image, clean_env, unmount_under
from timing import RunFailed, run, timed

REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=8, help="rounds of turns (default 8)")
    parser.add_argument("--batch", type=int, default=5, help="runs per row a round (5)")
    parser.add_argument("--containers", type=int, default=5, help="running containers (5)")
    parser.add_argument("--ctl", default=str(REPO / "dist" / "ctl.pex"), help="a ctl binary")
    args = parser.parse_args()
    env = clean_env()
    ctl = args.ctl
    with tempfile.TemporaryDirectory(prefix="ctl-bench-ops-") as name:
        tmp = Path(name)
        root = tmp / "root"
        base = [ctl, "--root", str(root)]
        try:
            archive, _ = build_image(tmp)
            run([*base, "load", "-q", "-i", str(archive)], env)
            for _ in range(args.containers):
                run([*base, "run", "-d", "--net", "none", IMAGE, "sleep", "600"], env)
            rows = {
                "ps -a": [*base, "ps", "-a"],
                "stats --no-stream": [*base, "stats", "--no-stream"],
                "events --since 1h --until now": [
                    *base,
                    "events",
                    "--since",
                    "1h",
                    "--until",
                    "now",
                ],
            }
            for argv in rows.values():
                run(argv, env)  # warm
            samples: dict[str, list[float]] = {label: [] for label in rows}
            for _ in range(args.rounds):
                for label, argv in rows.items():
                    samples[label] += [timed(argv, env) for _ in range(args.batch)]
        except RunFailed as err:
            print(f"ops bench failed: {err}", file=sys.stderr)
            return 1
        finally:
            if root.exists():
                run_quietly([*base, "rm", "-f", *container_ids(ctl, root)])
            unmount_under(tmp)
    print(f"{args.containers} running containers, {args.rounds} rounds x {args.batch} runs")
    floor = statistics.median(samples["ps -a"])
    print(f"{'command':<34} {'median ms':>10} {'p10-p90 ms':>14} {'x ps -a':>8}")
    for label, times in samples.items():
        deciles = statistics.quantiles(times, n=10)
        median = statistics.median(times)
        spread = f"{deciles[0] * 1e3:.1f}-{deciles[8] * 1e3:.1f}"
        print(f"{label:<34} {median * 1e3:>10.1f} {spread:>14} {median / floor:>8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
