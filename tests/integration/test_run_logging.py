"""Issue 11, group 7: log drivers and their options, with real containers."""

from __future__ import annotations

import gzip
import json
from typing import TYPE_CHECKING

import pytest

from tests.helpers import ctl_proc, pulled_root

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.images import CanonicalImages

pytestmark = pytest.mark.needs_root

# Writes N numbered lines of about 100 bytes each.
_WRITE_LINES = (
    'i=0; while [ $i -lt {n} ]; do echo "line $i'
    ' ..............................................................................";'
    " i=$((i+1)); done"
)


@pytest.fixture(scope="module")
def lroot(tmp_path_factory: pytest.TempPathFactory, images: CanonicalImages) -> Iterator[Path]:
    yield from pulled_root(tmp_path_factory.mktemp("logging"), images.busybox_ref)


def _container_id(root: Path, name: str) -> str:
    doc = json.loads(ctl_proc("inspect", name, root=root).assert_success().stdout)[0]
    return str(doc["Id"])


def _log_files(root: Path, name: str) -> dict[str, int]:
    """_log_files are the files of a container's log, with their sizes."""
    container_id = _container_id(root, name)
    return {
        path.name.removeprefix(container_id): path.stat().st_size
        for path in root.rglob(f"{container_id}-*.log*")
    }


def test_json_file_is_the_default(lroot: Path, images: CanonicalImages) -> None:
    ctl_proc(
        "run", "--name", "plain", images.busybox_ref, "sh", "-c", "echo out; echo err >&2",
        root=lroot,
    ).assert_success()  # fmt: skip
    ctl_proc("logs", "plain", root=lroot).assert_success("^out$")
    doc = json.loads(ctl_proc("inspect", "plain", root=lroot).stdout)[0]
    assert doc["LogPath"].endswith("-json.log")
    assert doc["HostConfig"]["LogConfig"] == {
        "Type": "json-file",
        "Config": {"max-size": "10m", "max-file": "3", "compress": "false"},
    }
    assert list(_log_files(lroot, "plain")) == ["-json.log"]
    ctl_proc("rm", "plain", root=lroot).assert_success()


def test_local_reads_back_streams_partial_lines_and_times(
    lroot: Path, images: CanonicalImages
) -> None:
    script = r"echo out; echo err >&2; printf 'back\\slash\n'; printf partial"
    ctl_proc(
        "run", "--name", "loc", "--log-driver", "local", images.busybox_ref, "sh", "-c", script,
        root=lroot,
    ).assert_success()  # fmt: skip
    logs = ctl_proc("logs", "loc", root=lroot).assert_success()
    assert logs.stdout == "out\nback\\slash\npartial"
    assert logs.stderr == "err\n"
    stamped = ctl_proc("logs", "-t", "--tail", "1", "loc", root=lroot).assert_success()
    assert stamped.stdout.endswith("Z partial") and stamped.stdout[:2] == "20"
    assert list(_log_files(lroot, "loc")) == ["-local.log"]
    doc = json.loads(ctl_proc("inspect", "loc", root=lroot).stdout)[0]
    assert doc["LogPath"] == ""
    assert doc["HostConfig"]["LogConfig"] == {
        "Type": "local",
        "Config": {"max-size": "20m", "max-file": "5", "compress": "true"},
    }
    ctl_proc("rm", "loc", root=lroot).assert_success()


def test_local_follows_a_running_container(lroot: Path, images: CanonicalImages) -> None:
    ctl_proc(
        "run", "-d", "--name", "follow", "--log-driver", "local", images.busybox_ref,
        "sh", "-c", "for i in 1 2 3; do echo $i; sleep 0.3; done",
        root=lroot,
    ).assert_success()  # fmt: skip
    ctl_proc("logs", "-f", "follow", root=lroot).assert_success()
    assert ctl_proc("logs", "-f", "follow", root=lroot).stdout == "1\n2\n3\n"
    ctl_proc("rm", "follow", root=lroot).assert_success()


@pytest.mark.parametrize("driver", ["json-file", "local"])
def test_rotation_is_bounded_by_max_size_and_max_file(
    lroot: Path, images: CanonicalImages, driver: str
) -> None:
    name = f"rot-{driver}"
    ctl_proc(
        "run", "--name", name, "--log-driver", driver, "--log-opt", "max-size=64k",
        "--log-opt", "max-file=3", "--log-opt", "compress=false", images.busybox_ref,
        "sh", "-c", _WRITE_LINES.format(n=20000),
        root=lroot,
    ).assert_success()  # fmt: skip
    files = _log_files(lroot, name)
    suffix = "-json.log" if driver == "json-file" else "-local.log"
    assert sorted(files) == [suffix, f"{suffix}.1", f"{suffix}.2"]
    assert all(size <= 64 * 1024 for size in files.values())
    lines = ctl_proc("logs", name, root=lroot).assert_success().stdout.splitlines()
    assert lines[-1].startswith("line 19999 ")
    numbers = [int(line.split()[1]) for line in lines]
    assert numbers == list(range(numbers[0], 20000))
    tail = ctl_proc("logs", "--tail", "2", name, root=lroot).assert_success().stdout
    assert [line.split()[1] for line in tail.splitlines()] == ["19998", "19999"]
    ctl_proc("rm", name, root=lroot).assert_success()


@pytest.mark.parametrize(
    ("driver", "opts"),
    [
        # local compresses by default, and keeps 5 files, as docker's does.
        ("local", ()),
        ("json-file", ("--log-opt", "compress=true", "--log-opt", "max-file=5")),
    ],
)
def test_compress_gzips_the_rotated_files(
    lroot: Path, images: CanonicalImages, driver: str, opts: tuple[str, ...]
) -> None:
    name = f"gz-{driver}"
    ctl_proc(
        "run", "--name", name, "--log-driver", driver, "--log-opt", "max-size=64k", *opts,
        images.busybox_ref, "sh", "-c", _WRITE_LINES.format(n=20000),
        root=lroot,
    ).assert_success()  # fmt: skip
    suffix = "-json.log" if driver == "json-file" else "-local.log"
    files = _log_files(lroot, name)
    assert sorted(files) == [suffix, *(f"{suffix}.{i}.gz" for i in (1, 2, 3, 4))]
    container_id = _container_id(lroot, name)
    packed = next(lroot.rglob(f"{container_id}{suffix}.1.gz"))
    assert len(gzip.decompress(packed.read_bytes())) <= 64 * 1024
    lines = ctl_proc("logs", name, root=lroot).assert_success().stdout.splitlines()
    numbers = [int(line.split()[1]) for line in lines]
    assert numbers == list(range(numbers[0], 20000))
    assert len(numbers) > 4 * 300  # the four rotated files were read
    ctl_proc("rm", name, root=lroot).assert_success()


def test_none_keeps_no_log_and_logs_refuses(lroot: Path, images: CanonicalImages) -> None:
    result = ctl_proc(
        "run", "--name", "quiet", "--log-driver", "none", images.busybox_ref, "echo", "hi",
        root=lroot,
    ).assert_success()  # fmt: skip
    assert result.stdout == "hi\n"  # attached: the output still reaches the caller
    assert _log_files(lroot, "quiet") == {}
    ctl_proc("logs", "quiet", root=lroot).assert_failure(
        125, stderr_re="configured logging driver does not support reading"
    )
    ctl_proc("rm", "quiet", root=lroot).assert_success()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--log-driver", "syslog"), "--log-driver: unsupported logging driver 'syslog'"),
        (("--log-opt", "max-size=x"), "--log-opt: invalid size 'x'"),
        (("--log-opt", "max-file=0"), "--log-opt: invalid max-file '0'"),
        (("--log-opt", "compress=maybe"), "--log-opt: compress: 'maybe' is not true or false"),
        (("--log-opt", "tag=x"), "--log-opt: unknown log opt 'tag=x' for the json-file"),
        (("--log-driver", "none", "--log-opt", "max-size=1m"), "unknown log opt"),
    ],
)
def test_bad_log_flags_create_nothing(
    lroot: Path, images: CanonicalImages, flags: tuple[str, ...], message: str
) -> None:
    before = ctl_proc("ps", "-aq", root=lroot).assert_success().stdout
    result = ctl_proc("run", *flags, images.busybox_ref, "true", root=lroot)
    result.assert_failure(125, stderr_re=message)
    assert ctl_proc("ps", "-aq", root=lroot).assert_success().stdout == before
