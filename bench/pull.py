"""pull.py measures pull throughput of a ~100 MB image against reading and hashing the same bytes.

Usage (as root, after scripts/setup.sh)::

    python3 bench/pull.py [--rounds 5] [--size-mb 100]

It starts Debian's docker-registry on a loopback port, pushes an image whose one big layer is
incompressible (seeded random data, gzip), and then takes turns, round by round, between:

- floor: reading the layer blob and sha256-hashing it (``sha256sum``), which every verified
  download must do at least;
- for reference, what the registry and loopback allow: ``curl`` of the big layer into a file
  and through ``sha256sum`` at once;
- ``ctl content fetch`` into an empty root: download and verify, no unpack;
- ``ctl pull`` into an empty root: download, verify and unpack into overlayfs.

It prints medians, MB/s and the ratio to the floor. No thresholds: numbers to compare.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from timing import timed  # noqa: E402

from tests.helpers import RegistryServer  # noqa: E402
from tests.images import ImageFactory, big_layer  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--size-mb", type=int, default=100)
    args = parser.parse_args()
    ctl = str(REPO / "dist" / "ctl.pex")
    with tempfile.TemporaryDirectory(prefix="ctl-bench-pull-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "registry").mkdir()
        (tmp / "work").mkdir()
        registry = RegistryServer(tmp / "registry")
        registry.start()
        try:
            layer = big_layer(tmp / "big.tar.gz", size_mb=args.size_mb)
            factory = ImageFactory(tmp / "work", registry)
            ref = factory.push(factory.image(layer), "bench/big")
            total = layer.size + factory.busybox_layer.size
            blob = tmp / "blob"
            shutil.copyfile(layer.path or tmp / "big.tar.gz", blob)
            url = f"{registry.url}/v2/bench/big/blobs/{layer.digest}"
            results: dict[str, list[float]] = {"floor": [], "curl": [], "fetch": [], "pull": []}
            for i in range(args.rounds):
                results["floor"].append(timed(["sha256sum", str(blob)]))
                results["curl"].append(
                    timed(["sh", "-c", f"curl -sf {url} | tee {tmp}/curl.out | sha256sum"])
                )
                root = tmp / f"fetch-{i}"
                results["fetch"].append(timed([ctl, "--root", str(root), "content", "fetch", ref]))
                shutil.rmtree(root)
                root = tmp / f"pull-{i}"
                results["pull"].append(timed([ctl, "--root", str(root), "pull", ref]))
                subprocess.run([ctl, "--root", str(root), "prune", "-a", "-f"], capture_output=True)
                shutil.rmtree(root, ignore_errors=True)
        finally:
            registry.stop()
    floor = statistics.median(results["floor"])
    mb = total / 1e6
    print(f"pull of a {mb:.0f} MB image ({args.rounds} rounds, interleaved)")
    print(f"{'what':<44}{'median s':>10}{'MB/s':>9}{'x floor':>9}")
    labels = {
        "floor": "floor: sha256sum of the layer blob",
        "curl": "curl | tee file | sha256sum (the big layer)",
        "fetch": "ctl content fetch (download + verify)",
        "pull": "ctl pull (download + verify + unpack)",
    }
    for key, label in labels.items():
        median = statistics.median(results[key])
        print(f"{label:<44}{median:>10.3f}{mb / median:>9.0f}{median / floor:>9.2f}")


if __name__ == "__main__":
    main()
