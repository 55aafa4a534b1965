"""A full disk: every command that writes says what failed, and leaves the root sound.

Issue 9, point 2: each command that writes content or records runs on a
root whose filesystem (a small tmpfs) is filled to the brim, then again with
a little more room each time, so that the failure moves through every write
it makes (a pull: its config, its layer, the layer's files as unpacked...),
until it succeeds. Each failure must be one ``ctl: <command>: writing <what>:
No space left on device`` line and exit 125, with no traceback and no
temporary file or half-unpacked snapshot left behind. Once the space is
freed, ``system check`` finds nothing wrong and the same command succeeds (a
pull resumes from what it fetched).
"""

from __future__ import annotations

import errno
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ctl.paths import Paths
from tests.helpers import clean_root, ctl_proc
from tests.images import CanonicalImages

pytestmark = pytest.mark.needs_root

# Room for a pulled busybox (layer, unpacked snapshot), a container and a save.
TMPFS_SIZE = "24m"
NOSPC = os.strerror(errno.ENOSPC)
# The bytes left free, in turn, until the command succeeds: each step moves the failure on.
# Fine where small records are written, and where a layer is unpacked.
KIB, MIB = 1 << 10, 1 << 20
ROOM = (
    *range(0, 128 * KIB, 4 * KIB),
    *(int(128 * KIB * 1.5**n) // (4 * KIB) * (4 * KIB) for n in range(14)),
)


@dataclass(frozen=True)
class Disk:
    """Disk is a tmpfs whose free space a test takes away with a filler file and gives back."""

    mount: Path

    @property
    def filler(self) -> Path:
        return self.mount / "filler"

    def fill(self, leave: int = 0) -> None:
        """fill writes the filler until not one more byte fits, then gives back ``leave`` bytes."""
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for chunk in (1 << 20, 1 << 12, 1):
                block = b"\0" * chunk
                try:
                    while True:
                        os.write(fd, block)
                except OSError as err:
                    if err.errno != errno.ENOSPC:
                        raise
        finally:
            os.close(fd)
        if leave:
            os.truncate(self.filler, max(0, self.filler.stat().st_size - leave))

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Disk]:
    mount = tmp_path_factory.mktemp("disk-full")
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0755", "ctl-disk-full", mount],
        check=True,
    )
    try:
        yield Disk(mount)
    finally:
        for root in mount.iterdir():
            if root.is_dir():
                clean_root(root)
        subprocess.run(["umount", "--lazy", mount], check=True)


@pytest.fixture
def droot(disk: Disk, request: pytest.FixtureRequest) -> Iterator[Path]:
    """droot is a fresh ``--root`` on the tmpfs; the disk is freed again after the test."""
    root = disk.mount / re.sub(r"\W", "-", request.node.name)
    yield root
    disk.free()
    _reset(root)


IMAGE = "IMAGE"  # the canonical busybox's reference
ARCHIVE = "ARCHIVE"  # a `save` of it, outside the tmpfs
SAVED = "SAVED"  # a `save -o` target on the tmpfs

# Each case: what is done while there is room, the command run on the full
# disk, and its error with no room at all (a regular expression).
CASES: dict[str, tuple[list[list[str]], list[str], str]] = {
    "pull": ([], ["pull", IMAGE], r"pull: writing config sha256:[0-9a-f]{64}"),
    "content-fetch": (
        [],
        ["content", "fetch", IMAGE],
        r"content fetch: writing config sha256:[0-9a-f]{64}",
    ),
    "load": (
        [],
        ["load", "-i", ARCHIVE],
        r"load: writing blob sha256:[0-9a-f]{64}",
    ),
    "save": ([["pull", IMAGE]], ["save", "-o", SAVED, IMAGE], r"save: writing .*/saved.tar"),
    "tag": (
        [["pull", IMAGE]],
        ["tag", IMAGE, "copy:latest"],
        r"tag: writing image record docker.io/library/copy:latest",
    ),
    "create": (
        [["pull", IMAGE]],
        ["create", "--name", "c1", "--net", "none", IMAGE],
        r"create: writing snapshot metadata",
    ),
    "run-d": (
        [["pull", IMAGE]],
        ["run", "-d", "--name", "c1", "--net", "none", IMAGE, "sleep", "30"],
        r"run: writing snapshot metadata",
    ),
    "start": (
        [["pull", IMAGE], ["create", "--name", "c1", "--net", "none", IMAGE, "sleep", "30"]],
        ["start", "c1"],
        r"start: writing config.json of task",
    ),
    "network-create": (
        [],
        ["network", "create", "full"],
        r"network create: writing network record full",
    ),
    "namespaces-create": ([], ["namespaces", "create", "other"], r"namespaces create: writing "),
    "snapshots-prepare": (
        [],
        ["snapshots", "prepare", "active1"],
        r"snapshots prepare: writing snapshot metadata",
    ),
    "fresh-root": (
        [],
        ["namespaces", "create", "other"],
        r"namespaces create: writing the root's layout version",
    ),
    "snapshots-commit": (
        [["snapshots", "prepare", "active1"]],
        ["snapshots", "commit", "done1", "active1"],
        r"snapshots commit: writing snapshot metadata",
    ),
}

# Writes the sweep must have seen fail, so that the room steps stay fine enough.
STAGES = {
    "pull": ("writing config", "writing layer", "writing member 'bin/busybox' of layer"),
    "load": ("writing blob",),  # load does not unpack: create does
    "create": ("snapshot metadata", "/etc/hostname", "container name", "container record"),
    "run-d": ("snapshot metadata", "/etc/hostname", "container record", "config.json"),
    "start": ("config.json", "state.json"),
}

# runc's own writes that failed (its state, its pid file): the message is runc's, as the
# runtime reports it.
RUNC_FAILED = re.compile(r"ctl: run [0-9a-f]{64}: ")

# Directories only, which take no data block on tmpfs (they do on ext4): may succeed.
WRITES_NO_DATA = {"namespaces-create"}

# runc writes its --pid-file as this temporary first, and leaves it when that write fails.
RUNC_PID_TEMP = ".init.pid"


def _temp_files(root: Path) -> list[str]:
    """_temp_files are the temporaries of atomic writes (ctl's, runc's) left under ``root``."""
    return sorted(
        str(Path(top, name).relative_to(root))
        for top, dirs, files in os.walk(root)
        for name in files + dirs
        if (name.startswith(".") and name.endswith((".tmp", ".new", ".old")))
        or name == RUNC_PID_TEMP
    )


def _reset(root: Path) -> None:
    clean_root(root)
    subprocess.run(["rm", "-rf", "--one-file-system", root], check=True)


@pytest.mark.parametrize("case", CASES)
def test_full_disk(
    case: str, disk: Disk, droot: Path, images: CanonicalImages, tmp_path: Path
) -> None:
    """The command runs with less room each time it fails, until it succeeds.

    With no room at all its first write fails, and the message names it
    exactly; with more room the failure moves on to later writes (a layer,
    its unpacking, the image record), each of which must fail as cleanly.
    """
    setup, argv, first_write = CASES[case]
    archive = tmp_path / "busybox.tar"
    saved = disk.mount / "saved.tar"
    words = {IMAGE: images.busybox_ref, ARCHIVE: str(archive), SAVED: str(saved)}
    if case == "load":
        staging = tmp_path / "staging"
        ctl_proc("pull", images.busybox_ref, root=staging).assert_success()
        ctl_proc("save", "-o", str(archive), images.busybox_ref, root=staging).assert_success()
        clean_root(staging)
    command = [words.get(w, w) for w in argv]
    name = first_write.split(":")[0]
    seen: list[str] = []
    for room in ROOM:
        _reset(droot)
        saved.unlink(missing_ok=True)
        if case != "fresh-root":
            # The root has its layout before the disk fills: the command is what is tested.
            Paths(droot).ensure()
        for step in setup:
            ctl_proc(*[words.get(w, w) for w in step], root=droot).assert_success()

        disk.fill(leave=room)
        result = ctl_proc(*command, root=droot)
        if result.code == 0:
            assert room or case in WRITES_NO_DATA, f"{case} needs no room at all"
            disk.free()
            ctl_proc("system", "check", root=droot).assert_success(stdout_re="0 problems")
            break
        if room == 0:
            result.assert_failure(125, rf"^ctl: {first_write}.*: {NOSPC}$")
        elif RUNC_FAILED.match(result.stderr) and case in ("run-d", "start"):
            result.assert_failure(125)
        else:
            result.assert_failure(125, rf"^ctl: {name}: writing .*: {NOSPC}$")
        seen.append(f"{room:>9} {result.stderr}")
        assert _temp_files(droot) == [], result.stderr
        assert "extract-" not in ctl_proc("snapshots", "ls", root=droot).stdout, result.stderr
        assert not any(p.name.startswith(".saved.tar") for p in disk.mount.iterdir())

        disk.free()
        ctl_proc("system", "check", root=droot).assert_success(stdout_re="0 problems")
        if case in ("run-d", "start") and ctl_proc("inspect", "c1", root=droot).code == 0:
            # Created, then its start failed: as docker does, run leaves it created.
            ctl_proc("start", "c1", root=droot).assert_success()
        else:
            ctl_proc(*command, root=droot).assert_success()
        ctl_proc("system", "check", root=droot).assert_success(stdout_re="0 problems")
    else:
        pytest.fail(f"{case} did not succeed with {ROOM[-1]} bytes free")
    print(f"\n{case}:", *seen, sep="\n", end="")
    missed = [stage for stage in STAGES.get(case, ()) if not any(stage in m for m in seen)]
    assert not missed, f"no failure while {missed}: the steps of ROOM skipped them"


def test_prune_on_full_disk_frees_or_fails_cleanly(
    disk: Disk, droot: Path, images: CanonicalImages
) -> None:
    ctl_proc("pull", images.busybox_ref, root=droot).assert_success()
    ctl_proc("create", "--name", "gone", "--net", "none", images.busybox_ref, root=droot)
    ctl_proc("rm", "gone", root=droot).assert_success()
    disk.fill()
    pruned = ctl_proc("prune", "-a", "-f", root=droot)
    if pruned.code != 0:
        pruned.assert_failure(125, rf"^ctl: prune: writing .*: {NOSPC}$")
    assert _temp_files(droot) == []
    disk.free()
    ctl_proc("system", "check", root=droot).assert_success(stdout_re="0 problems")
    ctl_proc("prune", "-a", "-f", root=droot).assert_success()
    ctl_proc("system", "check", root=droot).assert_success(stdout_re="0 problems")
