"""stats: docker's columns, read from a real container's cgroup and network namespace."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

import pytest

from tests.helpers import REPO_ROOT, ctl_command, ctl_proc, run_ctl

if TYPE_CHECKING:
    from pathlib import Path

    from tests.images import CanonicalImages

pytestmark = pytest.mark.needs_root


def test_no_stream_shows_dockers_columns_and_limits(root: Path, images: CanonicalImages) -> None:
    ctl_proc(
        "run",
        "-d",
        "--name",
        "busy",
        "--memory",
        "64m",
        "--pids-limit",
        "50",
        images.busybox_ref,
        "sh",
        "-c",
        "yes >/dev/null & sleep 60",
        root=root,
    ).assert_success()
    ctl_proc("create", "--name", "idle", images.busybox_ref, "true", root=root).assert_success()
    table = run_ctl("stats", "--no-stream", root=root).assert_success().stdout.splitlines()
    assert table[0].split("   ")[:3] == ["CONTAINER ID", "NAME", "CPU %"]
    assert "MEM USAGE / LIMIT" in table[0] and table[0].rstrip().endswith("PIDS")
    (row,) = [line for line in table[1:] if "busy" in line]
    assert "/ 64MiB" in row
    assert not any("idle" in line for line in table), "stopped containers need -a"

    (doc,) = run_ctl("stats", "--no-stream", "--format", "json", "busy", root=root).json_lines()
    assert set(doc) >= {"ID", "Name", "CPUPerc", "MemUsage", "MemPerc", "NetIO", "BlockIO", "PIDs"}
    assert int(doc["PIDs"]) >= 2  # yes and sleep (sh execs the last command)
    assert float(doc["CPUPerc"].rstrip("%")) > 5.0, "a busy loop uses CPU"
    assert doc["MemUsage"].endswith(" / 64MiB")

    every = run_ctl("stats", "-a", "--no-stream", "--format", "{{.Name}} {{.PIDs}}", root=root)
    assert "idle 0" in every.assert_success().stdout.splitlines()


def test_a_stream_in_a_pipe_prints_a_line_per_sample(root: Path, images: CanonicalImages) -> None:
    ctl_proc("run", "-d", "--name", "s", images.busybox_ref, "sleep", "60", root=root)
    proc = subprocess.Popen(
        [*ctl_command(), "--root", str(root), "stats", "s"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [proc.stdout.readline() for _ in range(3)] if proc.stdout else []
    finally:
        proc.kill()
        proc.wait()
    assert lines[0].startswith("CONTAINER ID")
    assert all(" s " in line and "\033" not in line for line in lines[1:])


def test_stats_of_a_missing_container_is_one_line(root: Path) -> None:
    run_ctl("stats", "--no-stream", "nope", root=root).assert_failure(125, stderr_re="nope")


def test_container_is_the_name_or_id_as_given(root: Path, images: CanonicalImages) -> None:
    ctl_proc(
        "run", "-d", "--net", "none", "--name", "named", images.busybox_ref, "sleep", "60",
        root=root,
    ).assert_success()  # fmt: skip
    ctl_proc("create", "--net", "none", "--name", "idle", images.busybox_ref, "true", root=root)
    ident = run_ctl("inspect", "-f", "{{.Id}}", "named", root=root).stdout.strip()
    fmt = ("--format", "{{.Container}} {{.Name}}")
    given = run_ctl("stats", "--no-stream", *fmt, "named", ident[:7], "idle", root=root)
    assert given.assert_success().stdout.splitlines() == [
        "named named",
        f"{ident[:7]} named",
        "idle idle",
    ]
    # Without names: the short ID.
    every = run_ctl("stats", "--no-stream", *fmt, root=root).assert_success().stdout
    assert every.splitlines() == [f"{ident[:12]} named"]
    table = run_ctl("stats", "--no-stream", "--format", "table {{.Container}}", root=root).stdout
    assert table.splitlines()[0] == "CONTAINER"
