"""table.py prints every row of issue 15's table in one interleaved run, with podman and ctr.

Usage (as root, after scripts/setup.sh; ~5 minutes at 7 rounds)::

    python3 bench/table.py [--rounds 7] [--containers 100] [--ctl PEX ...]

Rows (each against a floor timed in the same run):

- ``run --rm --net none IMAGE true``: floor bare ``runc run`` of the same bundle; the
  contestants of ``run.py`` (ctl, podman, ctr against a private containerd).
- ``ps -a``, empty root: floor ``/usr/bin/python3 -c pass``; ``podman ps -a`` on an empty
  store, ``ctr containers ls`` in an empty namespace.
- ``ps -a``, ``--containers`` created: the same against each contestant's own empty listing;
  ctl and podman ``create``, ctr ``containers create``, all outside the timings.
- ``pull`` of a 1 MB one-layer image (busybox) and of a ~48 MB / 6.7k-file image (busybox
  plus a layer of seeded files) from Debian's docker-registry on loopback, each into an
  empty root: floor ``skopeo copy`` to an OCI directory plus ``tar -xzf`` of each layer;
  ``ctl pull``, ``podman pull`` (fresh ``--root``), ``ctr images pull --plain-http`` (fresh
  namespace; the bench's containerd isolates content by namespace, so every pull downloads).
  Roots are removed between turns, outside the timings.

Beside the contestants, some rows time parts that bound any ctl, marked "(a part)" or named
for runc: runc on ctl's spec (and on that spec with docker's seccomp profile cut to the native
architecture: what the profile's x86 and x32 filters cost), ctl's interpreter started as the
pex starts it, and that interpreter importing requests (the pull rows).

Every round runs every row, and within a row the contestants' order rotates from round to
round, so that the load of other jobs spreads over all alike; round 0 warms and is not
counted. ``--ctl`` (repeatable) times other builds beside dist/ctl.pex. The table gives
medians, p10-p90 and ratios; the last line says how noisy the run was (the floors' spread).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from run import (
    FLOOR,
    IMAGE,
    PEX,
    Contestant,
    build_image,
    clean_env,
    containerd,
    need,
    setup_ctl,
    setup_ctr,
    setup_podman,
    setup_runc,
    setup_runc_changed_spec,
    setup_runc_ctl_spec,
    unmount_under,
    workspace,
)
from timing import REPO, RunFailed, run, timed

sys.path.insert(0, str(REPO))

from tests.helpers import RegistryServer
from tests.images import ImageBuilder, LayerBuilder, OCILayout

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.images import Layer


class Row(NamedTuple):
    title: str
    floor: str
    """floor is the label of the row's floor contestant."""
    contestants: list[Contestant]
    after: Callable[[Contestant, int], None] | None = None
    """after(contestant, n) cleans up after run ``n``, outside the timing."""


# --- ps ------------------------------------------------------------------------------


def ps_rows(
    tmp: Path,
    archive: Path,
    binaries: list[str],
    socket: Path | None,
    count: int,
    env: dict[str, str],
) -> tuple[Row, Row, dict[str, str]]:
    """ps_rows builds the empty and full listings; returns both rows and full -> empty labels."""
    empty: list[Contestant] = [
        Contestant("python3 -c pass (floor)", lambda n: ["/usr/bin/python3", "-c", "pass"], env)
    ]
    full: list[Contestant] = []
    own_empty: dict[str, str] = {}

    def add(label: str, empty_argv: list[str], full_argv: list[str], e: dict[str, str]) -> None:
        empty.append(Contestant(f"{label} (empty)", lambda n: empty_argv, e))
        full.append(Contestant(f"{label} ({count})", lambda n: full_argv, e))
        own_empty[f"{label} ({count})"] = f"{label} (empty)"

    for k, ctl in enumerate(binaries):
        full_root, empty_root = tmp / f"ps-full-{k}", tmp / f"ps-empty-{k}"
        run([ctl, "--root", str(full_root), "load", "-q", "-i", str(archive)], env)
        for _ in range(count):
            run(
                [
                    ctl,
                    "--root",
                    str(full_root),
                    "create",
                    "--net",
                    "none",
                    "--pull",
                    "never",
                    IMAGE,
                ],
                env,
            )
        label = f"{label_of(ctl, binaries)} ps -a"
        add(
            label,
            [ctl, "--root", str(empty_root), "ps", "-a"],
            [ctl, "--root", str(full_root), "ps", "-a"],
            env,
        )
    with contextlib.suppress(RunFailed):
        podman = need("podman")
        base = tmp / "podman-ps"
        conf = base / "containers.conf"
        base.mkdir()
        engine = f'cgroup_manager = "cgroupfs"\nevents_logger = "file"\ntmp_dir = "{base}/tmp"\n'
        conf.write_text(f"[engine]\n{engine}")
        penv = {**env, "CONTAINERS_CONF": str(conf)}

        def store(name: str) -> list[str]:
            return [
                podman,
                "--root",
                str(base / name / "root"),
                "--runroot",
                str(base / name / "run"),
                "--storage-driver",
                "overlay",
            ]

        run([*store("full"), "load", "-q", "-i", str(archive)], penv)
        for _ in range(count):
            run([*store("full"), "create", "--net", "none", IMAGE, "true"], penv)
        run([*store("empty"), "ps", "-a"], penv)
        add("podman ps -a", [*store("empty"), "ps", "-a"], [*store("full"), "ps", "-a"], penv)
    if socket is not None:
        ctr = [need("ctr"), "--address", str(socket)]
        for i in range(count):
            run(
                [
                    *ctr,
                    "containers",
                    "create",
                    "--snapshotter",
                    "overlayfs",
                    IMAGE,
                    f"ps-{i}",
                    "true",
                ],
                env,
            )
        add(
            "ctr containers ls",
            [*ctr, "-n", "bench-empty", "containers", "ls"],
            [*ctr, "containers", "ls"],
            env,
        )
    return (
        Row("ps -a, empty root", empty[0].label, empty),
        Row(f"ps -a, {count} created containers", "", full),
        own_empty,
    )


# --- pull ----------------------------------------------------------------------------


def files_layer(dest: Path, files: int = 6700, total_mb: int = 47, seed: int = 15) -> Layer:
    """files_layer is a layer of ``files`` seeded files in 67 directories, ``total_mb`` MB of noise.

    Sizes follow a log-uniform spread (most files small, a few large), like an
    interpreter's or a distribution's tree; noise, so that gzip keeps the size.
    """
    rng = random.Random(seed)
    weights = [rng.lognormvariate(0, 1.6) for _ in range(files)]
    scale = total_mb * 1_000_000 / sum(weights)
    builder = LayerBuilder().dir("usr").dir("usr/share")
    for d in range(67):
        builder.dir(f"usr/share/d{d:02}")
    for i, weight in enumerate(weights):
        builder.file(f"usr/share/d{i % 67:02}/f{i:05}", rng.randbytes(max(1, int(weight * scale))))
    return builder.build(dest=dest, gzip_level=1)


def pull_row(
    title: str,
    tmp: Path,
    registry: RegistryServer,
    layers: list[Layer],
    repo: str,
    binaries: list[str],
    socket: Path | None,
    env: dict[str, str],
) -> Row:
    image = ImageBuilder(layers).build()
    layout = OCILayout.write(tmp / f"layout-{repo}", image, ref_name="latest")
    ref = registry.push(layout, f"bench/{repo}")
    work = tmp / f"pull-{repo}"
    work.mkdir()
    untar = " && ".join(
        f"tar -xzf {work}/oci-$1/blobs/sha256/{layer.digest.split(':')[1]} -C {work}/fs-$1"
        for layer in layers
    )
    floor_sh = (
        f"skopeo copy -q --src-tls-verify=false docker://{ref} oci:{work}/oci-$1:latest"
        f" && mkdir {work}/fs-$1 && {untar}"
    )
    floor = Contestant(
        "skopeo copy + tar -xzf (floor)", lambda n: ["sh", "-c", floor_sh, "sh", str(n)], env
    )
    contestants = [floor]
    with contextlib.suppress(RunFailed):
        contestants.append(pex_import(binaries[-1], "requests", env))
    for ctl in binaries:
        contestants.append(
            Contestant(
                f"{label_of(ctl, binaries)} pull",
                lambda n, ctl=ctl: [ctl, "--root", f"{work}/ctl-{n}", "pull", "-q", ref],
                env,
            )
        )
    with contextlib.suppress(RunFailed):
        podman = need("podman")
        contestants.append(
            Contestant(
                "podman pull",
                lambda n: [
                    # podman refuses a runroot path over 50 characters.
                    podman,
                    "--root",
                    f"{work}/podman-{n}/root",
                    "--runroot",
                    f"/run/ctlb{os.getpid()}-{n}",
                    "--storage-driver",
                    "overlay",
                    "pull",
                    "-q",
                    "--tls-verify=false",
                    ref,
                ],
                env,
            )
        )
    if socket is not None:
        ctr = [need("ctr"), "--address", str(socket)]
        contestants.append(
            Contestant(
                "ctr images pull",
                lambda n: [*ctr, "-n", f"pull-{n}", "images", "pull", "--plain-http", ref],
                env,
            )
        )

    def after(contestant: Contestant, n: int) -> None:
        if contestant.label == "ctr images pull":
            with contextlib.suppress(RunFailed):
                remove_ctr_namespace(socket, f"pull-{n}", ref, env)
        unmount_under(work)
        for entry in work.iterdir():
            shutil.rmtree(entry, ignore_errors=True)
        shutil.rmtree(f"/run/ctlb{os.getpid()}-{n}", ignore_errors=True)

    return Row(title, floor.label, contestants, after)


def remove_ctr_namespace(
    socket: Path | None, namespace: str, ref: str, env: dict[str, str]
) -> None:
    ctr = [need("ctr"), "--address", str(socket), "-n", namespace]
    run([*ctr, "images", "rm", "--sync", ref], env)
    proc = subprocess.run([*ctr, "snapshots", "ls"], capture_output=True, text=True, check=False)
    keys = [line.split()[0] for line in proc.stdout.splitlines()[1:] if line.split()]
    # Children before parents: remove repeatedly until nothing more goes.
    while keys:
        left = [
            k
            for k in keys
            if subprocess.run([*ctr, "snapshots", "rm", k], capture_output=True).returncode
        ]
        if len(left) == len(keys):
            break
        keys = left
    subprocess.run([*ctr, "content", "prune", "references"], capture_output=True, check=False)
    subprocess.run(
        [need("ctr"), "--address", str(socket), "namespaces", "rm", namespace],
        capture_output=True,
        check=False,
    )


# --- the parts that bound ctl's time ------------------------------------------------
# Not contestants: what a command must spend on parts ctl cannot change, timed in the same
# run, so that the table shows how close to a row's goal any ctl could come.

NATIVE_SECCOMP = "runc run of ctl's spec, 1-arch seccomp"


def native_seccomp(spec: dict[str, Any]) -> None:
    # Docker's profile names three architectures on amd64 (x86_64, x86, x32); libseccomp
    # builds the filter for each.
    seccomp = spec["linux"]["seccomp"]
    seccomp["architectures"] = seccomp["architectures"][:1]


def pex_import(ctl: str, module: str | None, env: dict[str, str]) -> Contestant:
    """pex_import is ctl's interpreter, started as the pex's header starts it, importing
    ``module`` (if any) and nothing of ctl: the part of a command that no change to ctl's code
    removes. RunFailed if ``ctl`` is not a pex with ctl's header."""
    run([ctl, "--version"], env)  # lays out the pex's venv
    with open(ctl, "rb") as f:
        header = f.read(8192).decode(errors="replace")
    installed = re.search(r'^INSTALLED_PEX="\$\{PEX_ROOT\}/(.+)"$', header, re.MULTILINE)
    if installed is None:
        raise RunFailed(f"{ctl}: not a pex with ctl's boot header")
    venv = Path(env.get("PEX_ROOT", "/var/cache/ctl/pex"), installed.group(1))
    site_packages = next(venv.glob("lib/python3.*/site-packages"), None)
    if site_packages is None:
        raise RunFailed(f"{venv}: no site-packages")
    code = f"import sys; sys.path.append({str(site_packages)!r})"
    if module is not None:
        code += f"; import {module}"
    return Contestant(
        f"ctl's python + import {module} (a part)" if module else "ctl's python alone (a part)",
        lambda n: [str(venv / "bin" / "python"), "-I", "-S", "-c", code],
        env,
    )


# --- the run -------------------------------------------------------------------------


def label_of(ctl: str, binaries: list[str]) -> str:
    return "ctl" if binaries == [str(PEX)] else ctl


@contextlib.contextmanager
def registry_server(tmp: Path) -> Iterator[RegistryServer]:
    (tmp / "registry").mkdir()
    server = RegistryServer(tmp / "registry")
    server.start()
    try:
        yield server
    finally:
        server.stop()


Samples = dict[str, dict[str, list[float]]]


def measure(rows: list[Row], rounds: int) -> tuple[Samples, Samples, dict[str, str]]:
    """measure returns wall times, CPU times and failures, by row and contestant.

    CPU is user + system of the processes the command waits for (its reaped
    children): on a loaded machine it moves less than wall time, but it misses
    a daemon's work (containerd's, for ctr) and a detached supervisor's.
    """
    walls: Samples = {row.title: {c.label: [] for c in row.contestants} for row in rows}
    cpus: Samples = {row.title: {c.label: [] for c in row.contestants} for row in rows}
    failed: dict[str, str] = {}
    n = 0
    for r in range(rounds + 1):
        for row in rows:
            k = r % len(row.contestants)
            for contestant in row.contestants[k:] + row.contestants[:k]:
                key = f"{row.title}: {contestant.label}"
                if key in failed:
                    continue
                n += 1
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                try:
                    elapsed = timed(contestant.argv(n), contestant.env)
                except RunFailed as err:
                    failed[key] = f"run {n}: {err}"
                    walls[row.title].pop(contestant.label, None)
                    cpus[row.title].pop(contestant.label, None)
                    continue
                finally:
                    after = resource.getrusage(resource.RUSAGE_CHILDREN)
                    if row.after is not None:
                        row.after(contestant, n)
                if r > 0:
                    walls[row.title][contestant.label].append(elapsed)
                    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
                    cpus[row.title][contestant.label].append(cpu)
        print(f"round {r}/{rounds} done", file=sys.stderr)
    return walls, cpus, failed


def spread(times: list[float]) -> str:
    if len(times) < 2:
        return "-"
    deciles = statistics.quantiles(times, n=10)
    return f"{deciles[0] * 1e3:.0f}-{deciles[8] * 1e3:.0f}"


def report(
    rows: list[Row],
    walls: Samples,
    cpus: Samples,
    own_empty: dict[str, str],
    failed: dict[str, str],
    rounds: int,
) -> None:
    print(
        f"issue 15's table: {rounds} rounds, interleaved, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f} at the end"
    )
    print(
        f"{'row / command':<44} {'median ms':>9} {'p10-p90 ms':>11} {'x floor':>7}"
        f" {'CPU ms':>7} {'CPU x':>6}"
    )
    noise = []
    for row in rows:
        print(f"{row.title}")
        wall_of, cpu_of = walls[row.title], cpus[row.title]
        for label, times in wall_of.items():
            # A full ps row compares with the same tool's empty listing; the others with the floor.
            base = row.floor or own_empty.get(label, "")
            base_row = row.title if row.floor else "ps -a, empty root"
            base_wall = walls.get(base_row, {}).get(base)
            base_cpu = cpus.get(base_row, {}).get(base)
            median, cpu = statistics.median(times), statistics.median(cpu_of[label])
            ratio = f"{median / statistics.median(base_wall):.2f}" if base_wall else "-"
            cpu_ratio = f"{cpu / statistics.median(base_cpu):.2f}" if base_cpu else "-"
            print(
                f"  {label:<42} {median * 1e3:>9.1f} {spread(times):>11} {ratio:>7}"
                f" {cpu * 1e3:>7.1f} {cpu_ratio:>6}"
            )
        if row.floor in wall_of and len(wall_of[row.floor]) > 1:
            deciles = statistics.quantiles(wall_of[row.floor], n=10)
            noise.append(f"{row.floor} p90/p10 {deciles[8] / deciles[0]:.2f}")
    for label, reason in failed.items():
        print(f"{label} FAILED: {reason}")
    print("noise (wall): " + "; ".join(noise))
    print("full-root ps rows: ratios to the same tool's empty listing. CPU: reaped children only")
    print("(ctr's work is containerd's and not counted; ctl run's supervisor detaches).")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="counted rounds (default 7)")
    parser.add_argument("--containers", type=int, default=100, help="for the full ps row (100)")
    parser.add_argument("--ctl", action="append", default=[], help="a ctl binary (repeatable)")
    parser.add_argument("--rows", default="run,ps,pull1,pull49", help="which rows (all)")
    args = parser.parse_args()
    binaries = args.ctl or [str(PEX)]
    wanted = set(args.rows.split(","))
    env = clean_env()
    with workspace() as tmp, contextlib.ExitStack() as stack:
        archive, busybox = build_image(tmp)
        socket: Path | None = None
        try:
            socket = stack.enter_context(containerd(tmp, env))
            run([need("ctr"), "--address", str(socket), "images", "import", str(archive)], env)
        except RunFailed as err:
            print(f"ctr rows left out: {err}", file=sys.stderr)
        rows: list[Row] = []
        own_empty: dict[str, str] = {}
        if "run" in wanted:
            contestants = [setup_runc(tmp, busybox, env)]
            with contextlib.suppress(RunFailed):
                contestants.append(setup_runc_ctl_spec(tmp, [binaries[-1]], archive, env))
                contestants.append(
                    setup_runc_changed_spec(tmp, NATIVE_SECCOMP, native_seccomp, env)
                )
            with contextlib.suppress(RunFailed):
                contestants.append(pex_import(binaries[-1], None, env))
            for k, ctl in enumerate(binaries):
                label = f"{label_of(ctl, binaries)} run --rm"
                contestants.append(setup_ctl(label, [ctl], tmp / f"run-{k}", archive, env))
            with contextlib.suppress(RunFailed):
                contestants.append(setup_podman(tmp, archive, env))
            if socket is not None:
                contestants.append(setup_ctr(socket, archive, env))
            rows.append(Row("run --rm --net none IMAGE true", FLOOR, contestants))
        if "ps" in wanted:
            empty_row, full_row, own_empty = ps_rows(
                tmp, archive, binaries, socket, args.containers, env
            )
            rows += [empty_row, full_row]
        if wanted & {"pull1", "pull49"}:
            registry = stack.enter_context(registry_server(tmp))
            if "pull1" in wanted:
                rows.append(
                    pull_row(
                        "pull, 1 MB one-layer image",
                        tmp,
                        registry,
                        [busybox],
                        "small",
                        binaries,
                        socket,
                        env,
                    )
                )
            if "pull49" in wanted:
                files = files_layer(tmp / "files.tar.gz")
                rows.append(
                    pull_row(
                        f"pull, {(busybox.size + files.size) / 1e6:.0f} MB / 6.7k-file image",
                        tmp,
                        registry,
                        [busybox, files],
                        "files",
                        binaries,
                        socket,
                        env,
                    )
                )
        walls, cpus, failed = measure(rows, args.rounds)
    report(rows, walls, cpus, own_empty, failed, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
