"""The damage matrix (issue 9): each kind of on-disk damage x each command, with the outcome.

A kind of damage is made in a root of its own, copied from one prepared
root (one pull for the whole matrix): containers ``keep`` (never touched),
``spare1``/``spare2`` (what the removing commands remove where the damage is
elsewhere), the network ``neta``, and whatever the kind damages: usually
three objects, ``victim`` and ``victim2`` for ``rm -f`` and ``containers rm``,
and ``witness``, which only ``system check --repair`` repairs.

Each cell is one test. The commands of a kind run in the order of
``COMMANDS`` on the same root, so that the reading ones see the damage as it
was made, and the ones that change the root come last. Every cell checks
that ctl printed no traceback and no more on stderr than its outcome allows,
and that every healthy object is still listed and usable. A summary line
gives kinds x commands tried, and how many held.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ctl.network.config import docker_name
from ctl.paths import ref_key
from tests.helpers import CtlResult, clean_root, ctl_proc, run_ctl
from tests.images import CanonicalImages

pytestmark = pytest.mark.needs_root

# Outcomes, as the table below writes them.
OK = "exit 0, nothing on stderr"
WARNS = "exit 0, one warning line naming each damaged file"
FAILS = "exit 125, one ctl: line naming the file, nothing removed"
FINDS = "check exits 1 naming each damaged file"
REPAIRS = "repair names and fixes each one, a second check is clean"
QUARANTINES = (
    "repair moves the store aside naming it; a second check names only the snapshots that went"
)
REFETCHES = "exit 0, and the damaged blob was fetched again: a check is clean"

COMMANDS = (
    "ps -a",
    "images",
    "network ls",
    "inspect",
    "system check",
    "pull",
    "run",
    "prune -f",
    "rm -f",
    "containers rm",
    "system check --repair",
)
# The pieces of issue 9 that other branches bring.


@dataclass(frozen=True)
class Kind:
    """Kind is one kind of damage: how it is made and what each command then does.

    ``damage`` makes it in a prepared root and returns the damaged files
    (relative to the root) by the object they belong to: outcomes must name
    them, or, for a command on one container, that container's. ``outcomes`` maps a
    command to its outcome; commands not in it are ``OK``.
    """

    name: str
    damage: Damage
    outcomes: dict[str, str]
    targets: tuple[str, str] = ("spare1", "spare2")


@dataclass
class Env:
    """Env is one kind's root, with what the prepared root holds."""

    root: Path
    image: str
    ids: dict[str, str]
    damaged: dict[str, str] = field(default_factory=dict)

    def ctl(self, *argv: str) -> CtlResult:
        return run_ctl(*argv, root=self.root)

    def create(self, name: str) -> str:
        self.ctl("create", "--name", name, self.image).assert_success()
        self.ids[name] = container_id(self, name)
        return self.ids[name]


# Damage makes one kind of damage in an Env; it returns the damaged files by object.
Damage = Callable[[Env], dict[str, str]]


def container_id(env: Env, name: str) -> str:
    out = env.ctl("inspect", "--format", "{{.Id}}", name).assert_success().stdout
    return out.strip()


# How a file is damaged: its old bytes in, the damaged bytes out.
FORMS: dict[str, Callable[[bytes], bytes]] = {
    "empty": lambda data: b"",
    "cut in half": lambda data: data[: len(data) // 2],
    "not JSON": lambda data: b"{not json",
    "null": lambda data: b"null",
    "wrong shape": lambda data: b'{"unexpected": true}',
}


def _spoil(root: Path, relative: str, form: Callable[[bytes], bytes]) -> str:
    path = root / relative
    data = path.read_bytes() if path.exists() else b"{}"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(form(data))
    return relative


def _per_container(template: str, form: Callable[[bytes], bytes]) -> Damage:
    """_per_container damages the file ``template.format(id=...)`` of three new containers."""

    def damage(env: Env) -> dict[str, str]:
        return {
            name: _spoil(env.root, template.format(id=env.create(name)), form)
            for name in ("victim", "victim2", "witness")
        }

    return damage


# A container's record, and an attachment record as a crash during attach leaves it: no network.
CONTAINER_RECORD = "namespaces/default/containers/{id}.json"
ATTACHMENT_RECORD = "cni/attachments/default/{id}.json"


def _image_record(form: Callable[[bytes], bytes]) -> Damage:
    def damage(env: Env) -> dict[str, str]:
        relative = f"namespaces/default/images/{ref_key(VICTIM_IMAGE)}.json"
        return {VICTIM_IMAGE: _spoil(env.root, relative, form)}

    return damage


def _conflist(network: str, form: Callable[[bytes], bytes]) -> Damage:
    def damage(env: Env) -> dict[str, str]:
        return {network: _spoil(env.root, f"networks/{network}.conflist", form)}

    return damage


def _running_attachment(env: Env) -> dict[str, str]:
    """_running_attachment damages the attachment records of two running containers."""
    damaged = {}
    for name in ("victim", "witness"):
        ctl_proc("run", "-d", "--name", name, env.image, "sleep", "60", root=env.root)
        env.ids[name] = container_id(env, name)
        relative = f"cni/attachments/default/{env.ids[name]}.json"
        damaged[name] = _spoil(env.root, relative, FORMS["not JSON"])
    return damaged


def _dangling_name(env: Env) -> dict[str, str]:
    names = env.root / "namespaces/default/containers/names"
    (names / "ghost").write_text(os.urandom(32).hex())
    return {"ghost": "ghost"}


def _misdirected_name(env: Env) -> dict[str, str]:
    env.create("witness")
    names = env.root / "namespaces/default/containers/names"
    (names / "witness").write_text(env.ids["keep"])
    return {"witness": "witness"}


def _task_record(record: str) -> Damage:
    def damage(env: Env) -> dict[str, str]:
        damaged = {}
        for name in ("victim", "victim2", "witness"):
            ctl_proc("run", "--name", name, env.image, "true", root=env.root).assert_success()
            env.ids[name] = container_id(env, name)
            relative = f"namespaces/default/tasks/{env.ids[name]}/{record}"
            damaged[name] = _spoil(env.root, relative, FORMS["cut in half"])
        return damaged

    return damage


def _snapshot_metadata(env: Env) -> dict[str, str]:
    relative = "snapshots/overlayfs/metadata.json"
    return {"snapshots": _spoil(env.root, relative, FORMS["cut in half"])}


def _blob(env: Env) -> dict[str, str]:
    blobs = env.root / "content/blobs/sha256"
    largest = max(blobs.iterdir(), key=lambda p: p.stat().st_size)
    os.chmod(largest, 0o644)
    with open(largest, "r+b") as f:
        f.seek(100)
        f.write(b"damaged")
    os.chmod(largest, 0o444)
    return {"blob": f"sha256:{largest.name}"}


def _ingest(env: Env) -> dict[str, str]:
    ingest = env.root / "content/ingest" / ref_key("damaged-ingest")
    ingest.mkdir(parents=True)
    (ingest / "ingest.json").write_text('{"ref": "damaged-ingest", "total": "not a number"}')
    (ingest / "data").write_bytes(b"partial")
    return {"ingest": f"content/ingest/{ingest.name}"}


def _layout_version(env: Env) -> dict[str, str]:
    return {"version": _spoil(env.root, "version", lambda data: b"99\n")}


VICTIM_IMAGE = "localhost/victim:1"
REMOVERS = ("rm -f", "containers rm")


def _record_kinds() -> Iterator[Kind]:
    for form_name, form in FORMS.items():
        yield Kind(
            f"container record {form_name}",
            _per_container(CONTAINER_RECORD, form),
            {
                "ps -a": WARNS,
                "inspect": FAILS,
                "system check": FINDS,
                "prune -f": FAILS,
                "system check --repair": REPAIRS,
            },
            targets=("victim", "victim2"),
        )
        yield Kind(
            f"image record {form_name}",
            _image_record(form),
            {
                "images": WARNS,
                "system check": FINDS,
                "prune -f": FAILS,
                "system check --repair": REPAIRS,
            },
        )
        yield Kind(
            f"network conflist {form_name}",
            _conflist("neta", form),
            {"network ls": WARNS, "system check": FINDS, "system check --repair": REPAIRS},
        )
        yield Kind(
            f"attachment record {form_name}",
            _per_container(ATTACHMENT_RECORD, form),
            {
                "inspect": WARNS,
                "rm -f": WARNS,
                "containers rm": WARNS,
                "system check": FINDS,
                "system check --repair": REPAIRS,
            },
            targets=("victim", "victim2"),
        )


KINDS = (
    *_record_kinds(),
    Kind(
        "default network conflist not JSON",
        _conflist("ctl", FORMS["not JSON"]),
        {
            "network ls": WARNS,
            "run": FAILS,
            "system check": FINDS,
            "system check --repair": REPAIRS,
        },
    ),
    Kind(
        "attachment record of a running container",
        _running_attachment,
        {
            "inspect": WARNS,
            "system check": FINDS,
            "system check --repair": REPAIRS,
        },
        targets=("victim", "spare2"),
    ),
    Kind(
        "dangling container name",
        _dangling_name,
        {"system check": FINDS, "system check --repair": REPAIRS},
    ),
    Kind(
        "container name naming another container",
        _misdirected_name,
        {"system check": FINDS, "system check --repair": REPAIRS},
    ),
    *(
        Kind(
            f"task {record} cut in half",
            _task_record(record),
            {"system check": FINDS, "system check --repair": REPAIRS},
            targets=("victim", "victim2"),
        )
        for record in ("state.json", "exit.json")
    ),
    Kind(
        "snapshots metadata.json cut in half",
        _snapshot_metadata,
        {
            "pull": FAILS,
            "run": FAILS,
            "prune -f": FAILS,
            "rm -f": FAILS,
            "containers rm": FAILS,
            "system check": FINDS,
            "system check --repair": QUARANTINES,
        },
    ),
    Kind(
        "blob whose digest no longer matches",
        _blob,
        # The pull before the repair fetches the blob again: nothing is left to repair.
        {"system check": FINDS, "pull": REFETCHES},
    ),
    Kind(
        "malformed ingest",
        _ingest,
        {"prune -f": FAILS, "system check": FINDS, "system check --repair": REPAIRS},
    ),
    Kind(
        "bad layout version",
        _layout_version,
        dict.fromkeys(COMMANDS, FAILS),
    ),
)

# (kind, command) -> whether the cell held; printed by the summary.
RESULTS: dict[tuple[str, str], bool] = {}


@pytest.fixture(scope="module")
def prepared(images: CanonicalImages, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """prepared is a root with the image pulled and tagged, and nothing running."""
    root = tmp_path_factory.mktemp("prepared") / "root"
    run_ctl("pull", images.busybox_ref, root=root).assert_success()
    run_ctl("tag", images.busybox_ref, VICTIM_IMAGE, root=root).assert_success()
    yield root
    clean_root(root)


class _Summary:
    """_Summary prints the matrix's figures in pytest's terminal summary (a plugin object)."""

    def pytest_terminal_summary(self, terminalreporter: pytest.TerminalReporter) -> None:
        if not RESULTS:
            return
        kinds = len({kind for kind, _ in RESULTS})
        commands = len({command for _, command in RESULTS})
        terminalreporter.write_line(
            f"damage matrix: {kinds} kinds x {commands} commands, "
            f"{len(RESULTS)} cells tried, {sum(RESULTS.values())} held"
        )
        for (kind, command), held in RESULTS.items():
            if not held:
                terminalreporter.write_line(f"  did not hold: {kind} x {command}")


@pytest.fixture(scope="module")
def summary(request: pytest.FixtureRequest) -> None:
    plugins = request.config.pluginmanager
    if not plugins.has_plugin("damage-matrix-summary"):
        plugins.register(_Summary(), "damage-matrix-summary")


@pytest.fixture(scope="module")
def env(
    request: pytest.FixtureRequest,
    prepared: Path,
    images: CanonicalImages,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Env]:
    kind: Kind = request.param
    root = tmp_path_factory.mktemp("damage") / "root"
    subprocess.run(["cp", "-a", str(prepared), str(root)], check=True)
    env = Env(root, images.busybox_ref, {})
    for name in ("keep", "spare1", "spare2"):
        env.create(name)
    env.ctl("network", "create", "neta").assert_success()
    env.damaged = kind.damage(env)
    yield env
    _spoil(root, "version", lambda data: b"1")
    clean_root(root)
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("env", KINDS, ids=lambda kind: kind.name, indirect=True, scope="module")
def test_cell(env: Env, command: str, request: pytest.FixtureRequest, summary: None) -> None:
    kind: Kind = request.node.callspec.params["env"]
    RESULTS[(kind.name, command)] = False
    outcome = kind.outcomes.get(command, OK)
    _run_cell(env, kind, command, outcome)
    if kind.name != "bad layout version":  # where nothing can be used
        _healthy(env)
    RESULTS[(kind.name, command)] = True


def _argv(env: Env, kind: Kind, command: str) -> list[str]:
    first, second = kind.targets
    return {
        "inspect": ["inspect", first],
        "rm -f": ["rm", "-f", first],
        "containers rm": ["containers", "rm", second],
        "pull": ["pull", env.image],
        "run": ["run", "--rm", env.image, "true"],
    }.get(command, command.split())


def _run_cell(env: Env, kind: Kind, command: str, outcome: str) -> None:
    argv = _argv(env, kind, command)
    before = _files(env.root)
    result = ctl_proc(*argv, root=env.root) if command == "run" else env.ctl(*argv)
    explain = f"{kind.name} x {command}: want {outcome}\n{result._explain('')}"
    assert "Traceback" not in result.stderr, explain
    named = env.damaged
    if command in ("inspect", "rm -f", "containers rm") and argv[-1] in env.damaged:
        named = {argv[-1]: env.damaged[argv[-1]]}
    names = list(named.values())
    if outcome == OK:
        assert result.code == 0 and result.stderr == "", explain
    elif outcome == WARNS:
        assert result.code == 0, explain
        lines = result.stderr.splitlines()
        assert all(line.startswith("ctl: warning: ") for line in lines), explain
        assert len(lines) == len(names), explain
        assert all(name in result.stderr for name in names), explain
    elif outcome == FAILS:
        result.assert_failure(125)
        assert any(name in result.stderr for name in names), explain
        assert _files(env.root) >= before, f"{explain}\nremoved: {before - _files(env.root)}"
    elif outcome == FINDS:
        assert result.code == 1, explain
        assert all(_names(result.stdout, obj, file) for obj, file in named.items()), explain
    elif outcome == REPAIRS:
        # The removing cells before this one may have removed some damaged files with their object.
        left = {o: f for o, f in named.items() if "/" not in f or (env.root / f).exists()}
        assert all(_names(result.stdout, obj, file) for obj, file in left.items()), explain
        assert "not repaired" not in result.stdout, explain
        again = env.ctl("system", "check")
        assert again.code == 0 and "Traceback" not in again.stderr, (
            f"{explain}\nsecond check:\n{again._explain('exit 0')}"
        )
    elif outcome == QUARANTINES:
        assert result.code == 1 and "quarantine" in result.stdout, explain
        assert all(name in result.stdout for name in names), explain
        again = env.ctl("system", "check")
        problems = again.stdout.splitlines()[:-1]
        assert all("snapshot" in line and "missing" in line for line in problems), (
            f"{explain}\nsecond check:\n{again._explain('only missing snapshots')}"
        )
    elif outcome == REFETCHES:
        assert result.code == 0, explain
        again = env.ctl("system", "check")
        assert again.code == 0, f"{explain}\ncheck after:\n{again._explain('exit 0')}"
    else:
        raise AssertionError(f"unknown outcome {outcome!r}")


def _names(output: str, obj: str, file: str) -> bool:
    """_names tells whether ``output`` names a damaged file: by its path, or on a line of its own.

    A line of its own gives the file's name and its object's (``container
    default/victim: damaged state.json``).
    """
    if file in output:
        return True
    return any(f"/{obj}:" in line and Path(file).name in line for line in output.splitlines())


def _files(root: Path) -> set[str]:
    """_files are the root's files and directories, locks and temporary files left out."""
    found = set()
    for directory, dirs, files in os.walk(root):
        relative = os.path.relpath(directory, root)
        if relative.startswith(("locks", "namespaces/default/tasks")):
            continue
        found |= {os.path.join(relative, n) for n in files + dirs if not n.startswith(".")}
    return found


def _healthy(env: Env) -> None:
    """_healthy checks that the objects nobody damaged are listed and usable."""
    ps = env.ctl("ps", "-a", "--format", "{{.Names}}")
    assert ps.code == 0 and "keep" in ps.stdout.split(), ps._explain("keep listed")
    listed = env.ctl("images", "--format", "{{.Repository}}:{{.Tag}}")
    assert listed.code == 0 and env.image in listed.stdout, listed._explain("image listed")
    networks = env.ctl("network", "ls", "--format", "{{.Name}}")
    assert networks.code == 0, networks._explain("network ls")
    for network in {"ctl", "neta"} - set(env.damaged):
        shown = docker_name(network)
        listed_network = re.search(rf"^{shown}$", networks.stdout, re.M)
        assert listed_network, networks._explain(f"{network} listed")
    json.loads(env.ctl("inspect", "keep").assert_success().stdout)


def test_a_running_container_survives_damage_around_it(
    prepared: Path, images: CanonicalImages, tmp_path: Path
) -> None:
    """Damage of every record kind at once: a healthy running container still stops and goes."""
    root = tmp_path / "root"
    subprocess.run(["cp", "-a", str(prepared), str(root)], check=True)
    env = Env(root, images.busybox_ref, {})
    try:
        ctl_proc("run", "-d", "--name", "up", env.image, "sleep", "60", root=root).assert_success()
        env.ctl("network", "create", "neta").assert_success()
        for damage in (
            _per_container(CONTAINER_RECORD, FORMS["not JSON"]),
            _image_record(FORMS["null"]),
            _conflist("neta", FORMS["empty"]),
        ):
            damage(env)
        env.ctl("stop", "-t", "1", "up").assert_success()
        env.ctl("rm", "up").assert_success()
        ps = env.ctl("ps", "-a", "--format", "{{.Names}}")
        assert "up" not in ps.stdout.split(), ps._explain("up removed")
    finally:
        clean_root(root)


def test_pull_again_replaces_a_damaged_image_record(prepared: Path, tmp_path: Path) -> None:
    """A pull of the image whose record is damaged writes the record again."""
    root = tmp_path / "root"
    subprocess.run(["cp", "-a", str(prepared), str(root)], check=True)
    env = Env(root, VICTIM_IMAGE, {})
    listed = env.ctl("images", "--format", "{{.Repository}}:{{.Tag}}").assert_success().stdout
    image = next(line for line in listed.split() if line != VICTIM_IMAGE)
    _spoil(root, f"namespaces/default/images/{ref_key(image)}.json", FORMS["cut in half"])
    env.ctl("pull", image).assert_success()
    again = env.ctl("images", "--format", "{{.Repository}}:{{.Tag}}")
    assert again.code == 0 and again.stderr == "" and image in again.stdout, again._explain("")
