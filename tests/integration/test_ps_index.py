"""ps's listing index (containers/ps.index): kept by create, rename and rm, and never trusted.

A kill -9 between a record's write and the index's is simulated by putting back
the index of before the change; damage by writing over it. In every case ps
lists what the records say, system check reports the index, and --repair
rebuilds it.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest

from ctl.containers.store import INDEX_MAGIC, decode_index, encode_index
from tests.helpers import clean_root, run_ctl

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.images import CanonicalImages

pytestmark = pytest.mark.needs_root

# Every column ps shows, but the ages, which move while the test runs.
ROW = "{{.ID}}|{{.Image}}|{{.Command}}|{{.CreatedAt}}|{{.Status}}|{{.Ports}}|{{.Names}}|{{.Labels}}"


@pytest.fixture
def root(tmp_path: Path, images: CanonicalImages) -> Iterator[Path]:
    root = tmp_path / "root"
    for name in ("alpha", "beta", "gamma"):
        run_ctl(
            "create", "--net", "none", "--name", name, "-l", f"who={name}", "-v", "/data",
            images.busybox_ref, "echo", name, root=root,
        ).assert_success()  # fmt: skip
    yield root
    clean_root(root)


def index_path(root: Path) -> Path:
    return root / "namespaces" / "default" / "containers" / "ps.index"


def read_entries(root: Path) -> dict[str, Any]:
    return decode_index(index_path(root).read_bytes())


def write_entries(root: Path, entries: dict[str, Any]) -> None:
    index_path(root).write_bytes(encode_index(entries))


def listing(root: Path, *args: str) -> list[str]:
    result = run_ctl("ps", "-a", "--no-trunc", "--format", ROW, *args, root=root)
    return result.assert_success().stdout.splitlines()


def from_records(root: Path, *args: str) -> list[str]:
    """from_records is the listing without the index: it is taken away, then put back."""
    path = index_path(root)
    saved = path.read_bytes()
    path.unlink()
    try:
        return listing(root, *args)
    finally:
        path.write_bytes(saved)


def check(root: Path, *args: str) -> str:
    result = run_ctl("system", "check", *args, root=root)
    return result.stdout + result.stderr


def test_index_follows_create_rename_rm(root: Path) -> None:
    entries = read_entries(root)
    assert sorted(e["summary"]["name"] for e in entries.values()) == ["alpha", "beta", "gamma"]
    assert all("linux" not in e["summary"]["spec"] for e in entries.values()), "no OCI spec"
    run_ctl("rename", "beta", "delta", root=root).assert_success()
    run_ctl("rm", "gamma", root=root).assert_success()
    names = [row.split("|")[6] for row in listing(root)]
    assert names == ["delta", "alpha"]
    assert listing(root) == from_records(root)
    assert listing(root, "-f", "volume=/data", "-f", "label=who=beta") == listing(
        root, "-f", "name=delta"
    )
    assert "0 problems" in check(root)


def test_killed_between_record_and_index(root: Path, images: CanonicalImages) -> None:
    """The record changed and the index did not: a stale entry, then a missing one.

    Neither is a problem: ps reads those records, and the next change heals the index.
    """
    path = index_path(root)
    before = path.read_bytes()
    run_ctl("rename", "alpha", "omega", root=root).assert_success()
    expected = listing(root)
    path.write_bytes(before)  # as if killed before the index was written
    assert listing(root) == expected
    assert "0 problems" in check(root)

    run_ctl("create", "--net", "none", "--name", "late", images.busybox_ref, root=root)
    path.write_bytes(before)
    rows = listing(root)
    assert rows[0].split("|")[6] == "late"
    assert rows == from_records(root)
    assert "0 problems" in check(root)
    run_ctl("rename", "beta", "delta", root=root).assert_success()
    entries = read_entries(root)
    names = sorted(e["summary"]["name"] for e in entries.values())
    assert names == ["delta", "gamma", "late", "omega"], "healed by the next change"
    assert listing(root) == from_records(root)


def test_index_written_record_not(root: Path) -> None:
    """An entry whose record is gone (rm killed after the index write) lists nothing."""
    rows = listing(root)
    entries = read_entries(root)
    ghost = "f" * 64
    entries[ghost] = next(iter(entries.values()))
    write_entries(root, entries)
    assert listing(root) == rows
    assert "0 problems" in check(root)


# marshal's codes: "[" a list, ")" a small tuple, "{" a dict, "i" an int, "z" a short string.
@pytest.mark.parametrize(
    "damage",
    [
        b"",
        b"{",
        b"[]",
        b'{"version": 99, "containers": {}}',
        b'{"version": 1, "containers": []}',
        INDEX_MAGIC,
        INDEX_MAGIC + b"{z\x07version",
        INDEX_MAGIC + b"[\x00\x00\x00\x00",
        INDEX_MAGIC + b"\xff\xfe\x00garbage",
    ],
    ids=[
        "empty",
        "json-torn",
        "json-list",
        "json-version",
        "json-containers-list",
        "magic-alone",
        "marshal-torn",
        "marshal-list",
        "marshal-garbage",
    ],
)
def test_damaged_index(root: Path, damage: bytes) -> None:
    rows = listing(root)
    index_path(root).write_bytes(damage)
    result = run_ctl("ps", "-a", "--no-trunc", "--format", ROW, root=root).assert_success()
    assert result.stdout.splitlines() == rows
    assert str(index_path(root)) in result.stderr and "listing from the records" in result.stderr
    assert "damaged container index" in check(root)
    assert "rebuilt" in check(root, "--repair")
    assert "0 problems" in check(root)
    assert listing(root) == rows


def test_an_older_ctls_index_is_stale_not_damaged(root: Path, images: CanonicalImages) -> None:
    rows = listing(root)
    index_path(root).write_text(json.dumps({"version": 2, "containers": read_entries(root)}))
    result = run_ctl("ps", "-a", "--no-trunc", "--format", ROW, root=root).assert_success()
    assert result.stdout.splitlines() == rows and result.stderr == ""
    assert "0 problems" in check(root)
    run_ctl("create", "--net", "none", images.busybox_ref, root=root).assert_success()
    assert index_path(root).read_bytes().startswith(INDEX_MAGIC), "written again, this ctl's"
    assert len(read_entries(root)) == 4


def test_volume_filter_sees_the_users_mounts_alone(root: Path) -> None:
    """As docker's: the -v and --mount mounts, not /proc, /dev or /etc/hosts, which every
    container has; the same from the index and from the records."""
    names = {"alpha", "beta", "gamma"}
    for volume, listed in (("/data", names), ("/proc", set()), ("/etc/hosts", set())):
        by = ("-f", f"volume={volume}")
        for rows in (listing(root, *by), from_records(root, *by)):
            assert {row.split("|")[6] for row in rows} == listed, volume


def test_damaged_index_with_no_container_left(root: Path) -> None:
    run_ctl("rm", "alpha", "beta", "gamma", root=root).assert_success()
    index_path(root).write_bytes(b"{")
    assert "damaged container index" in check(root)
    assert "rebuilt" in check(root, "--repair")
    assert "0 problems" in check(root)


@pytest.mark.parametrize("damage", ["wrong shape", "another container's"])
def test_damaged_entry(root: Path, damage: str) -> None:
    """An entry with a fresh stamp but a summary of the wrong shape, or one that names another
    container than its key: the record speaks."""
    rows = listing(root)
    entries = read_entries(root)
    container_id, other = list(entries)[:2]
    entries[container_id]["summary"] = (
        "not a record" if damage == "wrong shape" else entries[other]["summary"]
    )
    write_entries(root, entries)
    result = run_ctl("ps", "-a", "--no-trunc", "--format", ROW, root=root).assert_success()
    assert result.stdout.splitlines() == rows
    assert container_id in result.stderr and str(index_path(root)) in result.stderr
    if damage != "wrong shape":
        assert "names container" in result.stderr
    assert "is damaged" in check(root)
    assert "rebuilt" in check(root, "--repair")
    assert listing(root) == rows


def test_damaged_record_with_fresh_index(root: Path) -> None:
    """A record damaged by hand changes its stamp: ps warns of the record, as without an index."""
    rows = listing(root)
    container_id = next(iter(read_entries(root)))
    record = root / "namespaces" / "default" / "containers" / f"{container_id}.json"
    record.write_bytes(b"{")
    result = run_ctl("ps", "-a", "--no-trunc", "--format", ROW, root=root).assert_success()
    assert result.stdout.splitlines() == [row for row in rows if not row.startswith(container_id)]
    assert str(record) in result.stderr
