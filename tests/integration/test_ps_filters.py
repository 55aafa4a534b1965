"""ps --filter, -n, -l and -s, with docker's keys and semantics, over real containers."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import pytest

from tests.helpers import ctl_proc, run_ctl

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.images import CanonicalImages

pytestmark = pytest.mark.needs_root


@pytest.fixture(scope="module")
def proot(tmp_path_factory: pytest.TempPathFactory, images: CanonicalImages) -> Iterator[Path]:
    from tests.helpers import clean_root

    root = tmp_path_factory.mktemp("ps-filters") / "root"
    image = images.busybox_ref
    ctl_proc(
        "create", "--name", "first", "-l", "tier=db", image, "true", root=root
    ).assert_success()
    ctl_proc("run", "--name", "failed", "-l", "tier=web", image, "sh", "-c", "exit 3", root=root)
    ctl_proc("run", "--name", "ok", "--net", "none", image, "true", root=root).assert_success()
    ctl_proc(
        "run",
        "-d",
        "--name",
        "live",
        "-l",
        "tier=web",
        "-l",
        "team=a",
        image,
        "sleep",
        "60",
        root=root,
    ).assert_success()
    yield root
    clean_root(root)


def names(root: Path, *args: str) -> list[str]:
    result = run_ctl("ps", "--format", "{{.Names}}", *args, root=root).assert_success()
    return result.stdout.split()


def test_filters(proot: Path, images: CanonicalImages) -> None:
    assert names(proot) == ["live"]
    assert names(proot, "-a") == ["live", "ok", "failed", "first"]
    assert names(proot, "-a", "-f", "label=tier=web") == ["live", "failed"]
    assert names(proot, "-a", "-f", "label=tier", "-f", "label=team") == ["live"]
    assert names(proot, "-f", "status=exited") == ["ok", "failed"], "status implies -a"
    assert names(proot, "-f", "status=created", "-f", "status=running") == ["live", "first"]
    assert names(proot, "-f", "exited=3") == ["failed"]
    assert names(proot, "-a", "-f", "name=^f") == ["failed", "first"]
    assert names(proot, "-a", "-f", "network=none") == ["ok"]
    assert names(proot, "-a", "-f", "before=ok") == ["failed", "first"]
    assert names(proot, "-a", "-f", "since=failed") == ["live", "ok"]
    ancestor = images.busybox_ref.rsplit(":", 1)[0]
    assert len(names(proot, "-a", "-f", f"ancestor={ancestor}")) == 4
    assert names(proot, "-a", "-f", "ancestor=other/image") == []
    first_id = run_ctl("inspect", "-f", "{{.Id}}", "first", root=proot).stdout.strip()
    assert names(proot, "-a", "-f", f"id={first_id[:8]}") == ["first"]


def test_last_latest_and_size(proot: Path) -> None:
    assert names(proot, "-n", "2") == ["live", "ok"]
    assert names(proot, "-l") == ["live"]
    table = run_ctl("ps", "-a", "-s", root=proot).assert_success().stdout.splitlines()
    assert table[0].rstrip().endswith("SIZE")
    assert all("(virtual " in line for line in table[1:])


@pytest.mark.parametrize(
    ("flt", "why"),
    [
        ("nope=1", "invalid filter 'nope'"),
        ("status=sleeping", "invalid filter 'status=sleeping'"),
        ("exited=x", "invalid filter 'exited=x'"),
        ("label", "bad format of filter"),
        ("before=no-such", "no such container"),
    ],
)
def test_bad_filters_are_one_line(proot: Path, flt: str, why: str) -> None:
    run_ctl("ps", "-a", "-f", flt, root=proot).assert_failure(125, stderr_re=why)


FIELDS = (
    '{{.Mounts}}|{{.LocalVolumes}}|{{.Networks}}|{{.Label "tier"}}|{{.Label "no"}}|{{.CreatedAt}}'
)


def test_format_has_docker_s_fields(proot: Path, images: CanonicalImages, tmp_path: Path) -> None:
    bind = tmp_path / "a-rather-long-host-directory"
    bind.mkdir()
    run_ctl(
        "create", "--name", "mounted", "--net", "none", "-l", "tier=cache",
        "-v", "cachevol:/cache", "-v", f"{bind}:/host", "-v", "/anon",
        images.busybox_ref, "true", root=proot,
    ).assert_success()  # fmt: skip
    try:
        ps = ("ps", "-a", "-f", "name=^mounted$", "--format")
        row = run_ctl(*ps, FIELDS, "--no-trunc", root=proot).assert_success().stdout
        mounts, local, networks, tier, no_label, created = row.rstrip("\n").split("|")
        named, source, anonymous = mounts.split(",")
        assert (named, source, len(anonymous)) == ("cachevol", str(bind), 64)
        assert (local, networks, tier, no_label) == ("2", "none", "cache", "")
        # Go's time.String(): 2026-12-07 18:00:49 +0000 UTC
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} \S+", created), created
        # Truncated as docker does: 15 characters at most.
        short = run_ctl(*ps, "{{.Mounts}}", root=proot).stdout.strip().split(",")
        assert short[0] == "cachevol" and short[1] == str(bind)[:14] + "…", short
        # The default network is docker's bridge; .Size computes sizes without -s.
        other = run_ctl(
            "ps", "-a", "-f", "name=^first$", "--format", "{{.Networks}} {{.Size}}", root=proot
        ).stdout
        assert re.fullmatch(r"bridge \S+ \(virtual \S+\)\n", other), other
        table = run_ctl(
            *ps, "table {{.CreatedAt}}\t{{.LocalVolumes}}\t{{.Networks}}\t{{.Mounts}}", root=proot
        ).stdout.splitlines()
        assert table[0].split() == ["CREATED", "AT", "LOCAL", "VOLUMES", "NETWORKS", "MOUNTS"]
        doc = json.loads(run_ctl(*ps, "json", root=proot).stdout)
        assert (doc["Mounts"].split(",")[0], doc["LocalVolumes"], doc["Networks"]) == (
            "cachevol",
            "2",
            "none",
        )
        assert "Size" not in doc and "Label" not in doc
        assert doc["CreatedAt"] == created
    finally:
        run_ctl("rm", "-v", "mounted", root=proot).assert_success()
