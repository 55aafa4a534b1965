"""run.py measures ``ctl run --rm IMAGE true`` against bare runc, podman and ctr (issue 4).

Usage (as root, from anywhere; after scripts/setup.sh)::

    python3 bench/run.py [--rounds 20]
    python3 bench/run.py --profile [--rounds 20]

One image, a busybox root filesystem around the host's static /bin/busybox (built by
``tests/images.py``), goes once into a private store per contestant, outside the timings:

- ``runc run`` (the floor): a bundle whose rootfs is the image's layer extracted to a
  directory and whose config.json is ``runc spec``'s with args ``true``, cgroupsPath under
  ``/ctl-bench`` and NOFILE within this host's hard limit; a fresh id each run, state under
  the temporary dir. In the foreground runc deletes the container itself.
- ctl: ``ctl load`` into a root in the temporary dir, then ``ctl run --rm --net none
  --pull never``, once from dist/ctl.pex and once from the dev venv (``python -m ctl``).
- podman: ``podman load`` into a private store (``--root``/``--runroot`` in the temporary
  dir; overlay, else vfs), with a containers.conf of its own: cgroupfs, events in a file,
  and ulimits this host allows (podman's default NOFILE is above its hard limit).
- ctr: a containerd the bench starts with a temporary config (root, state and socket in the
  temporary dir, CRI off), ``ctr images import``, then ``ctr run --rm --snapshotter
  overlayfs`` with a fresh id each run; containerd is stopped at the end.

Each round runs every contestant once, in an order that rotates from round to round, so
that noise from other jobs (and any after-effect of one contestant on the next) spreads
over all of them alike. Times come from a ``subprocess`` loop (hyperfine cannot give each
run a fresh container id while taking turns). The table gives medians, p10-p90 and each
median's ratio to the floor's. A contestant whose tool is missing or whose setup fails is
reported, not timed. There are no thresholds: these are numbers to compare across changes.
The pex row runs whatever dist/ctl.pex holds: after changing ctl/, rebuild it first
(``bash scripts/build_pex.sh``, a no-op when it is up to date).

``--profile`` times the steps of ``ctl run --rm IMAGE true`` instead: it runs ctl from the
dev venv through a small driver that wraps ctl's functions with timers. ctl forks its
supervisor without exec, so the wrappers time the supervisor's steps too, on the same
monotonic clock. It prints the median of each step over the rounds, with the fsyncs inside
it, and what ``python -X importtime`` says about imports.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from timing import RunFailed, run, timed, why

REPO = Path(__file__).resolve().parent.parent
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
PEX = REPO / "dist" / "ctl.pex"
IMAGE = "localhost/ctl-bench/busybox:latest"
CGROUP_PARENT = "ctl-bench"
FLOOR = "runc run (floor)"

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from tests.images import Layer


class Contestant(NamedTuple):
    label: str
    argv: Callable[[int], list[str]]
    """argv is the command line of run number ``n`` (unique within one bench run)."""
    env: dict[str, str]


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise RunFailed(f"{tool} is not installed")
    return path


# --- the image and the contestants ------------------------------------------------


def build_image(tmp: Path) -> tuple[Path, Layer]:
    """build_image writes the busybox image as an OCI archive; returns it and its one layer."""
    sys.path.insert(0, str(REPO))
    from tests.images import ImageBuilder, OCILayout, busybox_rootfs_layer

    layer = busybox_rootfs_layer()
    image = ImageBuilder([layer]).build()
    layout = OCILayout.write(tmp / "layout", image, ref_name=IMAGE)
    return layout.to_tar(tmp / "image.tar"), layer


def setup_runc(tmp: Path, layer: Layer, env: dict[str, str]) -> Contestant:
    runc = need("runc")
    bundle = tmp / "bundle"
    (bundle / "rootfs").mkdir(parents=True)
    with layer.open_tar() as tar:
        tar.extractall(bundle / "rootfs")
    run([runc, "spec"], env, cwd=bundle)
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["args"] = ["true"]
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for rlimit in config["process"].get("rlimits", []):
        if rlimit["type"] == "RLIMIT_NOFILE" and hard != resource.RLIM_INFINITY:
            rlimit["hard"] = min(rlimit["hard"], hard)
            rlimit["soft"] = min(rlimit["soft"], rlimit["hard"])
    return runc_contestant(FLOOR, "floor", tmp, bundle, config, env)


def runc_contestant(
    label: str, name: str, tmp: Path, bundle: Path, config: dict[str, Any], env: dict[str, str]
) -> Contestant:
    """runc_contestant writes ``config`` into ``bundle``, without a terminal and in the bench's
    cgroup ``name``, and runs it with bare ``runc run``, a fresh id each run."""
    runc = need("runc")
    config["process"]["terminal"] = False
    config["linux"]["cgroupsPath"] = f"/{CGROUP_PARENT}/{name}"
    (bundle / "config.json").write_text(json.dumps(config, indent=2))
    state = tmp / "runc"
    return Contestant(
        label,
        lambda n: [runc, "--root", str(state), "run", "--bundle", str(bundle), f"{name}-{n}"],
        env,
    )


CTL_SPEC = "runc run of ctl's spec"


def setup_runc_ctl_spec(
    tmp: Path, prefix: list[str], archive: Path, env: dict[str, str]
) -> Contestant:
    """setup_runc_ctl_spec is bare ``runc run`` of the spec ctl makes for the image (docker's
    seccomp profile, capabilities, masked paths and namespaces), around the floor's rootfs.

    Not the floor, which is ``runc spec``'s bundle: this row tells what runc spends on the
    container ctl asks for from what ctl spends around it. Call it after ``setup_runc``.
    """
    root = tmp / "ctl-spec"
    run([*prefix, "--root", str(root), "load", "-q", "-i", str(archive)], env)
    created = [*prefix, "--root", str(root), "create", "--net", "none", "--pull", "never"]
    container = run([*created, IMAGE, "true"], env).strip()
    spec = json.loads(run([*prefix, "--root", str(root), "inspect", container], env))[0]["Spec"]
    bundle = tmp / "ctl-spec-bundle"
    bundle.mkdir()
    for mount in spec["mounts"]:
        source = Path(mount["source"])
        if source.is_file():  # the task's /etc/hosts, /etc/hostname and /etc/resolv.conf
            copy = bundle / source.name
            shutil.copyfile(source, copy)
            mount["source"] = str(copy)
    run([*prefix, "--root", str(root), "rm", container], env)
    spec["root"] = {"path": str(tmp / "bundle" / "rootfs"), "readonly": False}
    return runc_contestant(CTL_SPEC, "ctl-spec", tmp, bundle, spec, env)


def setup_runc_changed_spec(
    tmp: Path, label: str, change: Callable[[dict[str, Any]], None], env: dict[str, str]
) -> Contestant:
    """setup_runc_changed_spec is bare ``runc run`` of ctl's spec as ``change`` leaves it: what
    one part of the spec costs runc. Call it after ``setup_runc_ctl_spec``."""
    bundle, changed = tmp / "ctl-spec-bundle", tmp / "ctl-spec-changed"
    shutil.copytree(bundle, changed)
    spec = json.loads((changed / "config.json").read_text())
    for mount in spec["mounts"]:
        if mount["source"].startswith(f"{bundle}/"):
            mount["source"] = str(changed / Path(mount["source"]).name)
    change(spec)
    return runc_contestant(label, "ctl-spec-changed", tmp, changed, spec, env)


def setup_ctl(
    label: str, prefix: list[str], root: Path, archive: Path, env: dict[str, str]
) -> Contestant:
    """setup_ctl loads the image into ``root`` with the ctl that ``prefix`` starts."""
    if not Path(prefix[0]).exists():
        raise RunFailed(f"no {prefix[0]}: run scripts/setup.sh")
    run([*prefix, "--root", str(root), "load", "-q", "-i", str(archive)], env)
    argv = [*prefix, "--root", str(root), "run", "--rm", "--net", "none", "--pull", "never"]
    return Contestant(label, lambda n: [*argv, IMAGE, "true"], env)


PODMAN_CONF = """\
[containers]
default_ulimits = ["nofile={nofile}:{nofile}", "nproc=32768:32768"]

[engine]
cgroup_manager = "cgroupfs"
runtime = "runc"
events_logger = "file"
tmp_dir = "{tmp_dir}"
"""


def setup_podman(tmp: Path, archive: Path, env: dict[str, str]) -> Contestant:
    podman = need("podman")
    base = tmp / "podman"
    base.mkdir()
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    nofile = 20000 if hard == resource.RLIM_INFINITY else min(hard, 20000)
    conf = base / "containers.conf"
    # tmp_dir too: podman's default (/run/libpod) is shared with any other podman's.
    conf.write_text(PODMAN_CONF.format(nofile=nofile, tmp_dir=base / "tmp"))
    env = {**env, "CONTAINERS_CONF": str(conf)}
    errors = []
    for driver in ("overlay", "vfs"):
        store = [
            podman,
            "--root",
            str(base / driver / "root"),
            "--runroot",
            str(base / driver / "run"),
            "--storage-driver",
            driver,
        ]
        argv = [*store, "run", "--rm", "--net", "none", IMAGE, "true"]

        def same(n: int, argv: list[str] = argv) -> list[str]:
            return argv

        try:
            run([*store, "load", "-q", "-i", str(archive)], env)
            run(argv, env)
        except RunFailed as err:
            errors.append(f"{driver}: {err}")
            continue
        return Contestant(f"podman run --rm ({driver})", same, env)
    raise RunFailed("; ".join(errors))


CONTAINERD_CONF = """\
version = 2
root = "{base}/root"
state = "{base}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = "{socket}"

[ttrpc]
  address = "{socket}.ttrpc"

[debug]
  address = ""

[metrics]
  address = ""

# Isolated: a pull into a fresh namespace downloads every blob (bench/table.py's pull rows).
[plugins."io.containerd.metadata.v1.bolt"]
  content_sharing_policy = "isolated"
"""


@contextlib.contextmanager
def containerd(tmp: Path, env: dict[str, str]) -> Iterator[Path]:
    """containerd runs a private containerd while entered and yields its socket."""
    binary = need("containerd")
    base = tmp / "containerd"
    base.mkdir()
    socket = base / "containerd.sock"
    config = base / "config.toml"
    config.write_text(CONTAINERD_CONF.format(base=base, socket=socket))
    with (base / "containerd.log").open("wb") as log:
        proc = subprocess.Popen(
            [binary, "--config", str(config)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 15
        while not socket.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RunFailed(f"containerd did not start: see {base / 'containerd.log'}")
            time.sleep(0.05)
        yield socket
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def setup_ctr(socket: Path, archive: Path, env: dict[str, str]) -> Contestant:
    ctr = [need("ctr"), "--address", str(socket)]
    run([*ctr, "images", "import", str(archive)], env)
    argv = [*ctr, "run", "--rm", "--snapshotter", "overlayfs", IMAGE]
    return Contestant("ctr run --rm", lambda n: [*argv, f"bench-{n}", "true"], env)


def unmount_under(tmp: Path) -> None:
    """unmount_under detaches whatever a contestant left mounted under ``tmp``."""
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    prefix = str(tmp) + "/"
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)


def remove_bench_cgroups() -> None:
    # runc removes each container's cgroup but not the /ctl-bench parent it created.
    for path in Path("/sys/fs/cgroup").glob(f"*/{CGROUP_PARENT}"):
        with contextlib.suppress(OSError):
            path.rmdir()
    with contextlib.suppress(OSError):
        (Path("/sys/fs/cgroup") / CGROUP_PARENT).rmdir()


def clean_env() -> dict[str, str]:
    # As in startup.py: PEX_* change how the pex boots and PYTHON* reach only the venv row.
    return {k: v for k, v in os.environ.items() if not k.startswith(("PEX_", "PYTHON"))}


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="ctl-bench-run-") as name:
        tmp = Path(name)
        try:
            yield tmp
        finally:
            unmount_under(tmp)
            remove_bench_cgroups()


# --- the comparison --------------------------------------------------------------


def compare(rounds: int, others: list[str]) -> int:
    env = clean_env()
    with workspace() as tmp, contextlib.ExitStack() as stack:
        archive, layer = build_image(tmp)
        failed: dict[str, str] = {}
        contestants: list[Contestant] = []

        def add(label: str, setup: Callable[[], Contestant]) -> None:
            try:
                contestants.append(setup())
            except RunFailed as err:
                failed[label] = str(err)

        def ctr() -> Contestant:
            return setup_ctr(stack.enter_context(containerd(tmp, env)), archive, env)

        venv = [str(VENV_PYTHON), "-m", "ctl"]
        pex_label, venv_label = "dist/ctl.pex run --rm", "venv: python -m ctl run --rm"
        add(FLOOR, lambda: setup_runc(tmp, layer, env))
        add(CTL_SPEC, lambda: setup_runc_ctl_spec(tmp, [str(PEX)], archive, env))
        add(pex_label, lambda: setup_ctl(pex_label, [str(PEX)], tmp / "ctl-pex", archive, env))
        add(venv_label, lambda: setup_ctl(venv_label, venv, tmp / "ctl-venv", archive, env))
        for n, other in enumerate(others):
            label, root = f"{other} run --rm", tmp / f"other-{n}"
            add(label, functools.partial(setup_ctl, label, [other], root, archive, env))
        add("podman run --rm", lambda: setup_podman(tmp, archive, env))
        add("ctr run --rm", ctr)

        samples: dict[str, list[float]] = {c.label: [] for c in contestants}
        n = 0
        # Round 0 warms caches and is not counted.
        for r in range(rounds + 1):
            turn = contestants[r % len(contestants) :] + contestants[: r % len(contestants)]
            for contestant in turn:
                if contestant.label in failed:
                    continue
                n += 1
                try:
                    elapsed = timed(contestant.argv(n), contestant.env)
                except RunFailed as err:
                    failed[contestant.label] = f"run {n}: {err}"
                    del samples[contestant.label]
                    continue
                if r > 0:
                    samples[contestant.label].append(elapsed)

    print(f"run --rm IMAGE true: {rounds} rounds, interleaved, {os.cpu_count()} CPUs")
    floor = statistics.median(samples[FLOOR]) if FLOOR in samples else None
    print(f"{'command':<32} {'median ms':>10} {'p10-p90 ms':>14} {'x floor':>8}")
    for label, times in samples.items():
        median = statistics.median(times)
        if len(times) > 1:
            deciles = statistics.quantiles(times, n=10)
            spread = f"{deciles[0] * 1e3:.1f}-{deciles[8] * 1e3:.1f}"
        else:
            spread = "-"
        ratio = f"{median / floor:.1f}" if floor else "-"
        print(f"{label:<32} {median * 1e3:>10.1f} {spread:>14} {ratio:>8}")
    for label, reason in failed.items():
        print(f"{label:<32} {'FAILED':>10}  {reason}")
    return 0


# --- the profile -------------------------------------------------------------------

# (module, attribute path, label): what the profile driver wraps with a timer.
STEPS = [
    ("ctl.main", "build_parser", "build the argument parser"),
    ("ctl.commands.containers", "_run", "ctl run"),
    ("ctl.commands.containers", "_options", "parse the run flags"),
    ("ctl.client", "Client.create_container", "create the container"),
    ("ctl.client", "Client.ensure_image", "image lookup"),
    ("ctl.images.manifests", "platform_manifest", "read the manifest"),
    ("ctl.images.manifests", "read_config", "read the image config"),
    ("ctl.images.unpack", "unpack", "unpack (layers there already: a check)"),
    ("ctl.snapshots.namespaced", "NamespacedSnapshotter.prepare", "snapshot prepare"),
    ("ctl.snapshots.namespaced", "NamespacedSnapshotter.mounts", "snapshot mounts"),
    ("ctl.snapshots.namespaced", "NamespacedSnapshotter.remove", "snapshot remove"),
    ("ctl.containers.create", "write_host_files", "write hosts, hostname, resolv.conf"),
    ("ctl.containers.create", "container_spec", "generate the OCI spec"),
    ("ctl.containers.store", "LocalContainerStore.create", "write the container record"),
    ("ctl.containers.store", "LocalContainerStore.delete", "delete the container record"),
    ("ctl.tasks", "TaskService.mount_rootfs", "mount the rootfs"),
    ("ctl.runtime.taskdir", "TaskDir.unmount_rootfs", "unmount the rootfs"),
    ("ctl.tasks", "TaskService.start", "start the task"),
    ("ctl.tasks", "TaskService.remove", "remove the task and its task dir"),
    ("ctl.client", "Client.remove_container", "--rm: remove the container"),
    ("ctl.runtime.prctl", "load", "load python-prctl"),
    ("ctl.runtime.supervisor", "spawn", "spawn: fork until the task runs"),
    ("ctl.runtime.supervisor", "Spawned.wait", "wait for the exit and the --rm"),
    ("ctl.runtime.supervisor.process", "_Supervisor._setup", "setup: signals, fds, cgroup, log"),
    ("ctl.runtime.supervisor.process", "_Supervisor._pump", "wait for the container to exit"),
    ("ctl.runtime.supervisor.process", "_Supervisor._finish_run", "after the exit: record it"),
    ("ctl.runtime.runc", "Runc.run", "runc run --detach"),
    ("ctl.runtime.runc", "Runc.delete", "runc delete"),
    ("ctl.runtime.taskdir", "TaskDir.write_record", "write state.json"),
    ("ctl.runtime.taskdir", "TaskDir.write_exit", "write exit.json"),
    ("ctl.runtime.cgroups", "enter_supervisor_cgroup", "enter the supervisor's cgroup"),
    ("ctl.runtime.cgroups", "leave_supervisor_cgroup", "leave the supervisor's cgroup"),
    ("ctl.runtime.cgroups", "oom_killed", "OOM check"),
    ("ctl.runtime.logs", "LogWriter.__init__", "open the json log"),
    ("ctl.runtime.logs", "LogWriter.close", "close the json log"),
    ("ctl.fsutil", "atomic_write", "atomic write"),
    ("shutil", "rmtree", "rmtree"),
    ("os", "fsync", "fsync"),
]
FSYNC = "fsync"
EXIT = "_exit"
SUPERVISOR_START = "fork -> supervisor runs"

# The driver runs ctl's cli() in-process with STEPS wrapped. Each timer appends a line to
# argv[1] (opened per line: the supervisor points every inherited descriptor at /dev/null).
# It imports the modules of STEPS up front, so their import time is one step of its own.
PROFILE_DRIVER = """\
import os, resource, sys, time

def clock():
    # CPU time too: on a loaded machine wall time also counts waiting for a CPU. Reaped
    # children (runc) count as well; a forked child's clocks start from zero.
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.monotonic(), time.process_time() + children.ru_utime + children.ru_stime

START = clock()
OUT = sys.argv[1]
FORKED_AT = None

def note(label, begin, end):
    fd = os.open(OUT, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    line = f"{os.getpid()}\\t{begin[0]:.6f}\\t{end[0]:.6f}\\t{end[1] - begin[1]:.6f}\\t{label}\\n"
    os.write(fd, line.encode())
    os.close(fd)

import importlib
for module in MODULES:
    importlib.import_module(module)
note("imports (all up front here)", START, clock())

def wrap(module, path, label):
    owner = sys.modules[module]
    *outer, attr = path.split(".")
    for name in outer:
        owner = getattr(owner, name)
    inner = getattr(owner, attr)
    def timer(*args, **kwargs):
        begin = clock()
        try:
            return inner(*args, **kwargs)
        finally:
            note(label, begin, clock())
    setattr(owner, attr, timer)

for module, path, label in STEPS:
    try:
        wrap(module, path, label)
    except AttributeError:
        print(f"profile: no {module}.{path} to time", file=sys.stderr)

real_fork, real_exit = os.fork, os._exit

def fork():
    global FORKED_AT
    FORKED_AT = FORKED_AT or time.monotonic()
    return real_fork()

def exit_(code):
    now = clock()
    note(EXIT, (now[0], 0.0), now)  # the process's CPU time since its fork
    real_exit(code)

os.fork, os._exit = fork, exit_
import gc
collecting = {}

def on_gc(phase, info):
    if phase == "start":
        collecting["begin"] = clock()
    else:
        note(f"gc (generation {info['generation']})", collecting["begin"], clock())

gc.callbacks.append(on_gc)
def run(self):
    note(SUPERVISOR_START, (FORKED_AT, 0.0), clock())
    real_run(self)

try:
    supervisor = sys.modules["ctl.runtime.supervisor.process"]._Supervisor
    real_run = supervisor.run
    supervisor.run = run
except AttributeError:
    print("profile: no ctl.runtime.supervisor.process._Supervisor.run to time", file=sys.stderr)
import ctl.main
begin = clock()
code = ctl.main.cli(sys.argv[2:])
note("cli() returns", begin, clock())
sys.exit(code)
"""


class Span(NamedTuple):
    pid: int
    start: float
    end: float
    cpu: float | None
    """cpu is the CPU time of the process and its reaped children, if known."""
    label: str


StepPath = tuple[str, ...]


def driver_source() -> str:
    modules = sorted({"ctl.main", *(m for m, _, _ in STEPS)})
    head = f"MODULES = {modules!r}\nSTEPS = {STEPS!r}\nEXIT = {EXIT!r}\n"
    return head + f"SUPERVISOR_START = {SUPERVISOR_START!r}\n" + PROFILE_DRIVER


def read_spans(out: Path) -> list[Span]:
    spans = []
    for line in out.read_text().splitlines():
        fields = line.split("\t")
        spans.append(
            Span(int(fields[0]), float(fields[1]), float(fields[2]), float(fields[3]), fields[4])
        )
    return spans


def profile_once(argv: list[str], env: dict[str, str], out: Path, notes: set[str]) -> list[Span]:
    """profile_once runs the driver once and returns its spans, with the caller's own.

    The driver's own complaints (a step it found nothing to time for) go to ``notes``.
    """
    out.unlink(missing_ok=True)
    start = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(
        argv,
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, stderr = proc.communicate()
    end = time.monotonic()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    # ctl and the middle child of its double fork; the supervisor is not ours to reap.
    caller_cpu = sum(getattr(after, f) - getattr(before, f) for f in ("ru_utime", "ru_stime"))
    lines = stderr.decode(errors="replace").splitlines()
    notes.update(line for line in lines if line.startswith("profile:"))
    if proc.returncode != 0:
        raise RunFailed(why(argv, proc.returncode, stderr))
    pid = proc.pid
    # The supervisor may still be finishing after the caller returned: wait for its _exit.
    deadline = time.monotonic() + 10
    while True:
        spans = read_spans(out)
        running = {s.pid for s in spans} - {pid} - {s.pid for s in spans if s.label == EXIT}
        if not running or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    first = min(s.start for s in spans if s.pid == pid)
    last = max(s.end for s in spans if s.pid == pid)
    spans += [
        Span(pid, start, end, caller_cpu, "ctl run --rm IMAGE true (the caller)"),
        Span(pid, start, first, None, "interpreter start-up"),
        Span(pid, last, end, None, "interpreter exit (after the last timer)"),
    ]
    # Each forked process gets a span from its first timer to its os._exit: the supervisor
    # (the one that ran _Supervisor.run) and the first child of the double fork.
    supervisors = {s.pid for s in spans if s.label == SUPERVISOR_START}
    for gone in [s for s in spans if s.label == EXIT and s.pid != pid]:
        forked = min(s.start for s in spans if s.pid == gone.pid)
        role = "supervisor" if gone.pid in supervisors else "first child of the double fork"
        spans.append(Span(gone.pid, forked, gone.end, gone.cpu, f"{role} (forked, no exec)"))
    return [s._replace(start=s.start - start, end=s.end - start) for s in spans if s.label != EXIT]


def nest(spans: list[Span]) -> dict[StepPath, list[Span]]:
    """nest files each span under the labels of the spans of its process that enclose it."""
    out: dict[StepPath, list[Span]] = defaultdict(list)
    by_pid: dict[int, list[Span]] = defaultdict(list)
    for span in spans:
        by_pid[span.pid].append(span)
    for group in by_pid.values():
        stack: list[tuple[Span, StepPath]] = []
        for span in sorted(group, key=lambda s: (s.start, -s.end)):
            while stack and not (stack[-1][0].start <= span.start and span.end <= stack[-1][0].end):
                stack.pop()
            path = (*(stack[-1][1] if stack else ()), span.label)
            out[path].append(span)
            stack.append((span, path))
    return out


def profile(rounds: int) -> int:
    env = clean_env()
    with workspace() as tmp:
        archive, _ = build_image(tmp)
        root = tmp / "ctl"
        try:
            contestant = setup_ctl("venv", [str(VENV_PYTHON), "-m", "ctl"], root, archive, env)
            # Warm: __pycache__, the page cache, the namespace's directories.
            timed(contestant.argv(0), env)
        except RunFailed as err:
            print(f"profile: {err}")
            return 1
        ctl_args = ["--root", str(root), "run", "--rm", "--net", "none", "--pull", "never"]
        out = tmp / "spans.tsv"
        argv = [str(VENV_PYTHON), "-c", driver_source(), str(out), *ctl_args, IMAGE, "true"]
        runs = []
        notes: set[str] = set()
        for _ in range(rounds):
            try:
                runs.append(nest(profile_once(argv, env, out, notes)))
            except RunFailed as err:
                print(f"profile: {err}")
                return 1
        imports = import_times(
            [str(VENV_PYTHON), "-X", "importtime", "-m", "ctl", *ctl_args, IMAGE, "true"], env
        )
    print_profile(runs, rounds)
    for note in sorted(notes):
        print(note)
    print_imports(imports)
    return 0


def print_profile(runs: list[dict[StepPath, list[Span]]], rounds: int) -> None:
    paths = {p for r in runs for p in r if p[-1] != FSYNC}

    def median_ms(values: list[float]) -> float:
        return statistics.median(values) * 1e3 if values else 0.0

    def at(path: StepPath) -> float:
        return median_ms([r[path][0].start for r in runs if path in r])

    def fsyncs(run: dict[StepPath, list[Span]], path: StepPath) -> list[Span]:
        n = len(path)
        return [s for p, spans in run.items() if p[-1] == FSYNC and p[:n] == path for s in spans]

    # Depth first, each step's children in the order they start.
    order = sorted(paths, key=lambda p: tuple(at(p[: i + 1]) for i in range(len(p))))
    print(f"ctl run --rm IMAGE true, step by step: medians of {rounds} runs, in ms")
    print("at: start after the caller's exec; cpu: CPU time of the process and its reaped")
    print("children (runc); fsyncs: how many inside the step, and their wall ms")
    print(f"{'step':<52} {'at':>6} {'wall':>6} {'cpu':>6} {'calls':>5} {'fsyncs':>11}")
    for path in order:
        present = [r for r in runs if path in r]
        wall = median_ms([sum(s.end - s.start for s in r[path]) for r in present])
        cpus = [sum(s.cpu for s in r[path] if s.cpu is not None) for r in present]
        known = all(s.cpu is not None for r in present for s in r[path])
        cpu = f"{median_ms(cpus):.1f}" if known else "-"
        calls = statistics.median([len(r[path]) for r in present])
        syncs = [fsyncs(r, path) for r in present]
        count = statistics.median([len(s) for s in syncs])
        sync_ms = median_ms([sum(x.end - x.start for x in s) for s in syncs])
        name = "  " * (len(path) - 1) + path[-1]
        calls_text = f"{calls:g}" if calls != 1 else ""
        sync_text = f"{count:g} ({sync_ms:.1f})" if count else ""
        print(
            f"{name:<52.52} {at(path):>6.1f} {wall:>6.1f} {cpu:>6} {calls_text:>5} {sync_text:>11}"
        )


class Import(NamedTuple):
    name: str
    self_us: int
    cumulative_us: int
    depth: int


def import_times(argv: list[str], env: dict[str, str]) -> list[Import]:
    """import_times runs argv (a ``python -X importtime`` command) and parses its report."""
    proc = subprocess.run(
        argv, cwd=REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True, check=False
    )
    imports = []
    for line in proc.stderr.decode(errors="replace").splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        self_us, cumulative_us, name = line.removeprefix("import time:").split("|")
        depth = (len(name) - len(name.lstrip()) - 1) // 2
        imports.append(Import(name.strip(), int(self_us), int(cumulative_us), depth))
    return imports


def print_imports(imports: list[Import]) -> None:
    if not imports:
        print("\nimports: python -X importtime printed nothing")
        return
    total = sum(i.self_us for i in imports) / 1e3
    ours = sum(i.self_us for i in imports if i.name.split(".")[0] == "ctl") / 1e3
    print(
        f"\nimports in the caller (one run, python -X importtime, which inflates them): "
        f"{len(imports)} modules, {total:.1f} ms, of which ctl's own modules {ours:.1f} ms"
    )
    print(f"{'top-level import':<40} {'cumulative ms':>14}")
    top = sorted((i for i in imports if i.depth == 0), key=lambda i: -i.cumulative_us)
    for item in top[:12]:
        print(f"{item.name:<40} {item.cumulative_us / 1e3:>14.1f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20, help="rounds of turns (default 20)")
    parser.add_argument("--profile", action="store_true", help="time ctl's steps instead")
    parser.add_argument(
        "--ctl", action="append", default=[], help="another ctl binary to time (an older build)"
    )
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return profile(args.rounds) if args.profile else compare(args.rounds, args.ctl)


if __name__ == "__main__":
    sys.exit(main())
