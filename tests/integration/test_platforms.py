"""Issue 10: an image pulled for another platform is that platform's, everywhere.

The image under test is an index of the host's busybox image and a foreign
one (arm64 on an amd64 host): the host's busybox labelled arm64, so that its
shell runs here, plus ``FOREIGN_PROGRAM``, a bare arm64 ELF this kernel
refuses. Without binfmt_misc (qemu-user) that program cannot run, and ctl
says so in one line instead of runc's ``exec format error``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

import ctl
from ctl.images.image import LABEL_PLATFORM
from tests.helpers import clean_root, ctl_proc, run_ctl
from tests.images import (
    FOREIGN_PROGRAM,
    CanonicalImages,
    Index,
    foreign_program_layer,
    make_index,
    platform_layer,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.needs_root


class Foreign:
    """Foreign is the pushed index, its reference and the two platforms."""

    def __init__(self, index: Index, ref: str, host: str, other: str) -> None:
        self.index, self.ref, self.host, self.other = index, ref, host, other


@pytest.fixture(scope="module")
def foreign(images: CanonicalImages) -> Foreign:
    host, other = images.host_platform, images.other_platform
    factory = images.factory
    index = make_index(
        [
            factory.image(platform_layer(host), platform=host),
            factory.image(
                platform_layer(other),
                foreign_program_layer(other),
                platform=other,
                cmd=[f"/{FOREIGN_PROGRAM}"],
            ),
        ]
    )
    return Foreign(index, factory.push(index, "test/foreign"), host, other)


@pytest.fixture(scope="module")
def proot(tmp_path_factory: pytest.TempPathFactory, foreign: Foreign) -> Iterator[Path]:
    """proot is a root that pulled the foreign image for the other platform."""
    root = tmp_path_factory.mktemp("platforms") / "root"
    ctl_proc("pull", "--platform", foreign.other, foreign.ref, root=root).assert_success()
    yield root
    clean_root(root)


def _inspect(root: Path, ref: str) -> dict[str, object]:
    result = run_ctl("image", "inspect", ref, root=root).assert_success()
    doc = json.loads(result.stdout)[0]
    assert isinstance(doc, dict)
    return doc


def _assert_is_other(root: Path, foreign: Foreign) -> None:
    other = foreign.index.image_for(foreign.other)
    doc = _inspect(root, foreign.ref)
    os_name, arch = foreign.other.split("/")[:2]
    assert (doc["Os"], doc["Architecture"]) == (os_name, arch)
    assert doc["Id"] == other.config.digest
    assert doc["Config"] and doc["Config"]["Cmd"] == [f"/{FOREIGN_PROGRAM}"]  # type: ignore[index]
    rows = run_ctl("images", "--format", "json", root=root).json_lines()
    assert (
        [(r["ID"], r["Platform"]) for r in rows]
        == [  # type: ignore[index]
            (other.config.digest.removeprefix("sha256:")[:12], foreign.other)
        ]
    )
    history = run_ctl("image", "history", "--format", "json", foreign.ref, root=root)
    assert len(history.assert_success().json_lines()) == len(other.layers)


def test_inspect_images_and_history_show_the_pulled_platform(proot: Path, foreign: Foreign) -> None:
    _assert_is_other(proot, foreign)
    assert _inspect(proot, foreign.ref)["Labels"] == {LABEL_PLATFORM: foreign.other}


def test_an_image_pulled_before_the_label_resolves_to_what_is_present(
    proot: Path, foreign: Foreign
) -> None:
    """A record without the label stands for the only platform whose manifest is here."""
    client = ctl.Client(proot)
    name = client.get_image(foreign.ref).name
    image = client.images.get(name)
    client.images.update(image._replace(labels={}), ["labels"])
    try:
        _assert_is_other(proot, foreign)
    finally:
        client.images.update(image, ["labels"])


def test_tag_keeps_the_platform_and_a_host_pull_replaces_it(root: Path, foreign: Foreign) -> None:
    run_ctl("pull", "--platform", foreign.other, foreign.ref, root=root).assert_success()
    run_ctl("tag", foreign.ref, "copy:1", root=root).assert_success()
    assert _inspect(root, "copy:1")["Architecture"] == foreign.other.split("/")[1]
    # Both manifests are here now: the label, not the store, says which is meant.
    run_ctl("pull", foreign.ref, root=root).assert_success()
    assert _inspect(root, foreign.ref)["Architecture"] == foreign.host.split("/")[1]
    assert _inspect(root, "copy:1")["Architecture"] == foreign.other.split("/")[1]


def test_run_uses_the_pulled_platform(proot: Path, foreign: Foreign) -> None:
    result = ctl_proc(
        "run",
        "--rm",
        "--network",
        "none",
        foreign.ref,
        "cat",
        "/etc/ctl-test-platform",
        root=proot,
    ).assert_success()
    assert result.stdout == foreign.other + "\n"


def test_save_exports_the_pulled_platform(proot: Path, foreign: Foreign, tmp_path: Path) -> None:
    archive = tmp_path / "out.tar"
    run_ctl("save", "-o", str(archive), foreign.ref, root=proot).assert_success()
    other = foreign.index.image_for(foreign.other)
    fresh = tmp_path / "fresh"
    run_ctl("load", "-i", str(archive), root=fresh).assert_success()
    try:
        assert _inspect(fresh, foreign.ref)["Id"] == other.config.digest
    finally:
        clean_root(fresh)


def test_load_platform_chooses_what_the_names_stand_for(
    proot: Path, foreign: Foreign, tmp_path: Path
) -> None:
    archive = tmp_path / "out.tar"
    run_ctl("save", "-o", str(archive), foreign.ref, root=proot).assert_success()
    fresh = tmp_path / "fresh"
    try:
        # The archive holds the pulled platform only: the host's is refused, nothing named.
        run_ctl("load", "--platform", foreign.host, "-i", str(archive), root=fresh).assert_failure(
            125
        )
        assert run_ctl("images", "-q", root=fresh).stdout == ""
        loaded = run_ctl("load", "--platform", foreign.other, "-i", str(archive), root=fresh)
        loaded.assert_success()
        doc = _inspect(fresh, foreign.ref)
        assert f"{doc['Os']}/{doc['Architecture']}" == foreign.other.split("/v")[0].rstrip("/")
    finally:
        clean_root(fresh)


def _binfmt_runs_foreign_binaries() -> bool:
    binfmt = Path("/proc/sys/fs/binfmt_misc")
    return binfmt.is_dir() and any(e.name not in ("register", "status") for e in binfmt.iterdir())


@pytest.fixture
def no_binfmt() -> None:
    if _binfmt_runs_foreign_binaries():
        pytest.skip("binfmt_misc handlers are registered: a foreign binary may run here")


def _refused(foreign: Foreign, name: str) -> str:
    return f"^ctl: {name}: image is {foreign.other}, this host is {foreign.host}$"


@pytest.mark.usefixtures("no_binfmt")
def test_run_of_a_foreign_program_is_one_clear_line(proot: Path, foreign: Foreign) -> None:
    result = ctl_proc("run", "--rm", "--network", "none", "--name", "fr", foreign.ref, root=proot)
    result.assert_failure(126, stderr_re=_refused(foreign, "fr"))
    # --rm: the container is gone, as after any start that failed.
    ctl_proc("inspect", "fr", root=proot).assert_failure(125)
    result = ctl_proc("run", "-d", "--network", "none", "--name", "fd", foreign.ref, root=proot)
    result.assert_failure(126, stderr_re=_refused(foreign, "fd"))
    ctl_proc("rm", "fd", root=proot).assert_success()


@pytest.mark.usefixtures("no_binfmt")
def test_start_of_a_foreign_program_is_one_clear_line(proot: Path, foreign: Foreign) -> None:
    ctl_proc("create", "--network", "none", "--name", "fc", foreign.ref, root=proot)
    try:
        result = ctl_proc("start", "fc", root=proot)
        result.assert_failure(126, stderr_re=_refused(foreign, "fc"))
    finally:
        ctl_proc("rm", "-f", "fc", root=proot).assert_success()


@pytest.mark.usefixtures("no_binfmt")
def test_exec_of_a_foreign_program_is_one_clear_line(proot: Path, foreign: Foreign) -> None:
    ctl_proc(
        "run", "-d", "--network", "none", "--name", "fe", foreign.ref, "sleep", "60", root=proot
    ).assert_success()
    try:
        result = ctl_proc("exec", "fe", f"/{FOREIGN_PROGRAM}", root=proot)
        result.assert_failure(126, stderr_re=_refused(foreign, "fe"))
        # Found on PATH, through a symlink and a #! interpreter just the same.
        script = f"ln -s /{FOREIGN_PROGRAM} /bin/via-link; printf '#!/bin/via-link\\n' >/bin/s"
        ctl_proc("exec", "fe", "sh", "-c", f"{script}; chmod +x /bin/s", root=proot)
        for command in ("foreign", "via-link", "s"):
            result = ctl_proc("exec", "fe", command, root=proot)
            result.assert_failure(126, stderr_re=_refused(foreign, "fe"))
        # The container's own busybox, labelled foreign but built for this host, runs.
        assert ctl_proc("exec", "fe", "echo", "ok", root=proot).assert_success().stdout == "ok\n"
    finally:
        ctl_proc("rm", "-f", "fe", root=proot).assert_success()
