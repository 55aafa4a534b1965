"""network.py measures what a container's network costs: CNI attach+detach, and ``run --rm``.

Usage (as root, from anywhere)::

    python3 bench/network.py [--rounds 10] [--cli-rounds 8]

Two parts, each with contestants taking turns round by round, so that noise from other jobs
on the machine spreads over all of them alike:

1. In this process, on a private root: ``netns`` (create and remove a named network
   namespace: the floor any own-namespace container pays), ``attach+detach`` (CNI ADD and DEL
   of the default network, no ports) and ``attach+detach -p`` (one published port, so the
   portmap plugin runs too).
2. Whole containers, when ``ctl run --net bridge`` gives a container a default route (the
   CNI wiring is there): ``ctl run --rm --net none IMAGE true`` against ``--net bridge``
   (from the dev venv) and against a user network ``--net NET``, where names resolve
   (issue 14): alone on it (the run starts the resolver and its exit stops it) and beside
   a running container (the resolver is only told); and podman's ``run --rm --net none``
   against its default network, in the same run. The image, the private stores and
   podman's containers.conf (cgroupfs, ulimits this host allows) are bench/run.py's. What
   is not installed or fails is reported and left out.

The tables give medians, p10-p90 and ratios: networking's cost is ``bridge / none``. There
are no pass/fail thresholds: these are numbers to read and to compare across changes.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.run import (  # noqa: E402
    VENV_PYTHON,
    Contestant,
    RunFailed,
    build_image,
    clean_env,
    setup_ctl,
    setup_podman,
    timed,
    unmount_under,
)
from ctl.network import netns  # noqa: E402
from ctl.network.manager import NetworkManager  # noqa: E402
from ctl.paths import Paths  # noqa: E402
from ctl.runtime.runopts import PortMapping  # noqa: E402
from tests.helpers import clean_root  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable

FLOOR = "netns create+remove (floor)"
CTL_NONE, CTL_BRIDGE = "ctl run --rm --net none true", "ctl run --rm --net bridge true"
# A user network: names resolve, so the resolver (aardvark-dns) is told of each container.
CTL_USER_ALONE = "ctl run --rm --net NET true (alone)"
CTL_USER_SHARED = "ctl run --rm --net NET true (+1)"
PODMAN_NONE, PODMAN_DEFAULT = "podman run --rm --net none true", "podman run --rm true"


def interleave(contestants: dict[str, Callable[[], None]], rounds: int) -> dict[str, list[float]]:
    """interleave times each contestant once a round, in turns that rotate, after a warm-up."""
    samples: dict[str, list[float]] = {}
    live: list[tuple[str, Callable[[], None]]] = []
    for label, call in contestants.items():
        try:
            call()
        except RunFailed as err:
            print(f"  {label}: FAILED {err}")
            continue
        samples[label] = []
        live.append((label, call))
    for r in range(rounds):
        turn = live[r % len(live) :] + live[: r % len(live)] if live else []
        for label, call in turn:
            if label not in samples:
                continue
            start = time.perf_counter()
            try:
                call()
            except RunFailed as err:
                print(f"  {label}: FAILED later: {err}")
                del samples[label]
                continue
            samples[label].append(time.perf_counter() - start)
    return samples


def table(title: str, samples: dict[str, list[float]], base: dict[str, str]) -> None:
    """table prints medians and, for rows named in ``base``, the ratio to that row's median."""
    print(f"\n{title}")
    print(f"{'contestant':<36} {'median ms':>10} {'p10-p90 ms':>14} {'ratio (extra ms)':>18}")
    medians = {label: statistics.median(times) for label, times in samples.items()}
    for label, times in samples.items():
        spread = "-"
        if len(times) > 1:
            deciles = statistics.quantiles(times, n=10)
            spread = f"{deciles[0] * 1e3:.1f}-{deciles[8] * 1e3:.1f}"
        ratio = ""
        if base.get(label) in medians:
            floor = medians[base[label]]
            ratio = f"{medians[label] / floor:.2f}x ({(medians[label] - floor) * 1e3:+.0f})"
        print(f"{label:<36} {medians[label] * 1e3:>10.1f} {spread:>14} {ratio:>18}")


# Part 1: the manager alone.


def manager_contestants(root: Path) -> dict[str, Callable[[], None]]:
    manager = NetworkManager(Paths(root), "bench", lambda namespace, container_id: container_id)
    manager.list_networks()  # writes the default network outside the timings
    port = 20000 + secrets.randbelow(20000)

    def bare_netns() -> None:
        path = root / "bare-netns"
        netns.create(path)
        netns.remove(path)

    def cycle(publish: list[PortMapping]) -> Callable[[], None]:
        def call() -> None:
            container_id = secrets.token_hex(32)
            manager.attach(container_id, "bridge", publish, "bench")
            manager.detach(container_id)

        return call

    return {
        FLOOR: bare_netns,
        "attach+detach": cycle([]),
        "attach+detach -p (portmap)": cycle([PortMapping("", port, 80, "tcp")]),
    }


# Part 2: whole containers.


def with_net(contestant: Contestant, net: str | None) -> list[str]:
    """with_net is the contestant's command with its ``--net none`` changed (None: dropped)."""
    argv = contestant.argv(0)
    at = argv.index("--net")
    return [*argv[:at], *(["--net", net] if net else []), *argv[at + 2 :]]


def runs(argv: list[str], env: dict[str, str]) -> Callable[[], None]:
    def call() -> None:
        timed(argv, env)

    return call


def ctl_contestants(tmp: Path, archive: Path, env: dict[str, str]) -> dict[str, Callable[[], None]]:
    """ctl_contestants are ``ctl run`` with and without a network, once the bridge is wired."""
    ctl = setup_ctl(CTL_NONE, [str(VENV_PYTHON), "-m", "ctl"], tmp / "ctl", archive, env)
    probe = [*with_net(ctl, "bridge")[:-1], "cat", "/proc/net/route"]
    proc = subprocess.run(probe, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RunFailed(f"ctl run --net bridge: {proc.stderr.strip()}")
    if not any(line.split()[1:2] == ["00000000"] for line in proc.stdout.splitlines()[1:]):
        raise RunFailed("ctl run --net bridge gives no default route: CNI is not wired in yet")
    contestants = {
        CTL_NONE: runs(ctl.argv(0), env),
        CTL_BRIDGE: runs(with_net(ctl, "bridge"), env),
    }
    # Issue 14: what DNS adds. Alone on its network, a container starts the resolver and
    # its exit stops it; beside a running one, the resolver is only told (SIGHUP).
    base = with_net(ctl, "bridge")[: with_net(ctl, "bridge").index("--net")]
    image_and_cmd = ctl.argv(0)[ctl.argv(0).index("--net") + 2 :]
    for net, label in (("benchalone", CTL_USER_ALONE), ("benchshared", CTL_USER_SHARED)):
        root_args = base[: base.index("run")]
        done = subprocess.run(
            [*root_args, "network", "create", net], cwd=REPO, env=env, capture_output=True
        )
        if done.returncode != 0:
            raise RunFailed(f"network create: {done.stderr.decode().strip()}")
        contestants[label] = runs(with_net(ctl, net), env)
    keeper = [*base[: base.index("--rm")], "-d", "--net", "benchshared", *image_and_cmd[:-1]]
    subprocess.run([*keeper, "sleep", "3600"], cwd=REPO, env=env, capture_output=True, check=False)
    return contestants


def podman_contestants(
    tmp: Path, archive: Path, env: dict[str, str]
) -> dict[str, Callable[[], None]]:
    podman = setup_podman(tmp, archive, env)
    return {
        PODMAN_NONE: runs(podman.argv(0), podman.env),
        PODMAN_DEFAULT: runs(with_net(podman, None), podman.env),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10, help="rounds of part 1 (10)")
    parser.add_argument("--cli-rounds", type=int, default=8, help="rounds of part 2 (8)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench/network.py needs root (namespaces, bridges, iptables)", file=sys.stderr)
        return 1
    env = clean_env()
    print(f"network cost: {os.cpu_count()} CPUs, rounds interleaved")

    with tempfile.TemporaryDirectory(prefix="ctl-bench-net-") as name:
        tmp = Path(name)
        try:
            samples = interleave(manager_contestants(tmp / "manager"), args.rounds)
            extra = {"attach+detach": FLOOR, "attach+detach -p (portmap)": FLOOR}
            table(f"CNI in process, {args.rounds} rounds", samples, extra)

            archive, _ = build_image(tmp)
            contestants: dict[str, Callable[[], None]] = {}
            for label, setup in (
                ("ctl", ctl_contestants),
                ("podman", podman_contestants),
            ):
                try:
                    contestants.update(setup(tmp, archive, env))
                except RunFailed as err:
                    print(f"\nleft out {label}: {err}")
            if contestants:
                samples = interleave(contestants, args.cli_rounds)
                base = {
                    CTL_BRIDGE: CTL_NONE,
                    CTL_USER_ALONE: CTL_NONE,
                    CTL_USER_SHARED: CTL_NONE,
                    PODMAN_DEFAULT: PODMAN_NONE,
                }
                table(f"run --rm IMAGE true, {args.cli_rounds} rounds", samples, base)
        finally:
            clean_root(tmp / "ctl")
            clean_root(tmp / "manager")
            unmount_under(tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
