"""events: every command logs docker's events under the root; events reads and follows them."""

from __future__ import annotations

import json
import subprocess
import time
from typing import TYPE_CHECKING

import pytest

from ctl import events
from tests.helpers import REPO_ROOT, ctl_command, ctl_proc, run_ctl

if TYPE_CHECKING:
    from pathlib import Path

    from tests.images import CanonicalImages

pytestmark = pytest.mark.needs_root


def actions(root: Path, *args: str) -> list[str]:
    result = run_ctl("events", *args, "--format", "{{.Type}} {{.Action}}", root=root)
    return result.assert_success().stdout.splitlines()


def test_a_containers_life_is_logged(root: Path, images: CanonicalImages) -> None:
    start = f"{time.time():.3f}"
    ctl_proc("pull", images.busybox_ref, root=root).assert_success()
    ctl_proc("run", "-d", "--name", "life", images.busybox_ref, "sleep", "60", root=root)
    ctl_proc("pause", "life", root=root).assert_success()
    ctl_proc("unpause", "life", root=root).assert_success()
    ctl_proc("exec", "life", "true", root=root).assert_success()
    ctl_proc("rename", "life", "renamed", root=root).assert_success()
    ctl_proc("rm", "-f", "renamed", root=root).assert_success()
    until = f"{time.time():.3f}"
    seen = actions(root, "--since", start, "--until", until)
    assert seen[0] == "image pull"
    mine = [line for line in seen if line.startswith("container")]
    assert mine[:5] == [
        "container create",
        "container start",
        "container pause",
        "container unpause",
        "container exec_start: true",
    ]
    assert "container exec_die" in mine and "container rename" in mine
    assert mine[-2:] == ["container die", "container destroy"]

    only = actions(root, "--since", start, "--until", until, "-f", "event=exec_start")
    assert only == ["container exec_start: true"]
    named = actions(root, "--since", start, "--until", until, "-f", "container=renamed")
    assert "container destroy" in named
    assert actions(root, "--since", start, "--until", until, "-f", "type=image") == ["image pull"]

    line = run_ctl("events", "--since", start, "--until", until, root=root).stdout.splitlines()[1]
    assert " container create " in line and "name=life" in line and "image=" in line
    (doc,) = [
        json.loads(text)
        for text in run_ctl(
            "events",
            "--since",
            start,
            "--until",
            until,
            "--format",
            "json",
            "-f",
            "event=create",
            root=root,
        ).stdout.splitlines()
    ]
    assert doc["Type"] == "container" and doc["Actor"]["Attributes"]["name"] == "life"


def test_run_rm_logs_die_with_the_code_then_destroy(root: Path, images: CanonicalImages) -> None:
    start = f"{time.time():.3f}"
    ctl_proc("run", "--rm", "--net", "none", images.busybox_ref, "sh", "-c", "exit 3", root=root)
    until = f"{time.time() + 1:.3f}"
    time.sleep(1)
    fmt = '{{.Action}} {{index .Actor.Attributes "exitCode"}}'
    seen = run_ctl(
        "events",
        "--since",
        start,
        "--until",
        until,
        "-f",
        "type=container",
        "--format",
        fmt,
        root=root,
    ).stdout.splitlines()
    assert seen == ["create <no value>", "start <no value>", "die 3", "destroy <no value>"]


def test_events_follows_new_ones(root: Path, images: CanonicalImages) -> None:
    ctl_proc("pull", images.busybox_ref, root=root).assert_success()
    follower = subprocess.Popen(
        [*ctl_command(), "--root", str(root), "events", "--format", "{{.Action}}"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1)
        ctl_proc("create", "--name", "later", images.busybox_ref, "true", root=root)
        assert follower.stdout is not None
        assert follower.stdout.readline() == "create\n"
    finally:
        follower.kill()
        follower.wait()


def test_until_in_the_past_returns_at_once(root: Path) -> None:
    started = time.monotonic()
    run_ctl("events", "--until", f"{time.time() - 1:.0f}", root=root).assert_success()
    assert time.monotonic() - started < 2


def test_the_log_is_bounded_and_a_damaged_line_is_skipped(tmp_path: Path) -> None:
    directory = tmp_path / "events"
    directory.mkdir()
    (directory / events.LOG).write_bytes(b'{"half": \n')
    for n in range(3):
        events.emit(directory, "container", "create", f"id{n}")
    assert [e["id"] for e in events.stream(directory, follow=False) if e] == ["id0", "id1", "id2"]
    filler = b"x" * 1000 + b"\n"
    with (directory / events.LOG).open("ab") as f:
        f.write(filler * (events.MAX_BYTES // len(filler) + 1))
    events.emit(directory, "container", "start", "rotates")
    events.emit(directory, "container", "start", "after")
    assert (directory / events.OLD_LOG).stat().st_size > events.MAX_BYTES
    assert (directory / events.LOG).stat().st_size < 1000
    listed = [e["id"] for e in events.stream(directory, follow=False) if e]
    assert listed == ["id0", "id1", "id2", "rotates", "after"]


def test_bad_times_and_filters_are_one_line(root: Path) -> None:
    run_ctl("events", "--since", "yesterday", root=root).assert_failure(
        125, stderr_re="invalid time"
    )
    run_ctl("events", "--until", "1", "-f", "nope=1", root=root).assert_failure(
        125, stderr_re="invalid filter"
    )
