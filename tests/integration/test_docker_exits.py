"""docker's exit behaviour that scripts depend on, and rename and port (SPEC sections 4 and 9)."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

import pytest

from tests.helpers import ctl_proc, run_ctl

if TYPE_CHECKING:
    from pathlib import Path

    from tests.images import CanonicalImages

pytestmark = pytest.mark.needs_root


def test_wait_prints_codes_and_exits_0(root: Path, images: CanonicalImages) -> None:
    ctl_proc("run", "--name", "three", images.busybox_ref, "sh", "-c", "exit 3", root=root)
    ctl_proc("create", "--name", "fresh", images.busybox_ref, "true", root=root).assert_success()
    started = time.monotonic()
    result = run_ctl("wait", "three", "fresh", root=root).assert_success()
    assert result.stdout == "3\n0\n"
    assert time.monotonic() - started < 5, "a created container has met not-running already"
    failed = run_ctl("wait", "three", "nope", root=root)
    assert failed.code == 125 and failed.stdout == "3\n" and "nope" in failed.stderr


def test_rm_force_of_a_missing_container_succeeds_silently(root: Path) -> None:
    result = run_ctl("rm", "-f", "no-such-container", root=root).assert_success()
    assert result.stdout == "" and result.stderr == ""
    run_ctl("rm", "no-such-container", root=root).assert_failure(125, stderr_re="no such")


def test_rename(root: Path, images: CanonicalImages) -> None:
    ctl_proc("run", "-d", "--name", "old", images.busybox_ref, "sleep", "60", root=root)
    ctl_proc("create", "--name", "other", images.busybox_ref, "true", root=root).assert_success()
    run_ctl("rename", "old", "other", root=root).assert_failure(125, stderr_re="already")
    run_ctl("rename", "old", "bad/name", root=root).assert_failure(125)
    run_ctl("rename", "old", "old", root=root).assert_failure(125, stderr_re="same name")
    run_ctl("rename", "old", "new", root=root).assert_success()
    inspected = run_ctl("inspect", "-f", "{{.Name}} {{.State.Running}}", "new", root=root)
    assert inspected.assert_success().stdout == "/new true\n"
    run_ctl("inspect", "old", root=root).assert_failure(125, stderr_re="no such")
    ctl_proc("create", "--name", "old", images.busybox_ref, "true", root=root).assert_success()
    run_ctl("system", "check", root=root).assert_success()


def test_rename_races_create_fairly(root: Path, images: CanonicalImages) -> None:
    """Of a rename to X and a create --name X at once, exactly one wins."""
    ctl_proc("create", "--name", "a", images.busybox_ref, "true", root=root).assert_success()
    codes: dict[str, int] = {}

    def rename() -> None:
        codes["rename"] = ctl_proc("rename", "a", "x", root=root).code

    thread = threading.Thread(target=rename)
    thread.start()
    codes["create"] = ctl_proc("create", "--name", "x", images.busybox_ref, "true", root=root).code
    thread.join()
    assert sorted(codes.values()) == [0, 125]
    names = ctl_proc("ps", "-a", "--format", "{{.Names}}", root=root).stdout.split()
    assert names.count("x") == 1


def test_port(root: Path, images: CanonicalImages) -> None:
    ctl_proc(
        "create",
        "--name",
        "web",
        "-p",
        "127.0.0.1:18080:80",
        "-p",
        "18053:53/udp",
        images.busybox_ref,
        "true",
        root=root,
    ).assert_success()
    out = run_ctl("port", "web", root=root).assert_success().stdout.splitlines()
    assert out == ["80/tcp -> 127.0.0.1:18080", "53/udp -> 0.0.0.0:18053"]
    assert run_ctl("port", "web", "80", root=root).stdout == "127.0.0.1:18080\n"
    assert run_ctl("port", "web", "53/udp", root=root).stdout == "0.0.0.0:18053\n"
    run_ctl("port", "web", "81", root=root).assert_failure(
        125, stderr_re="No public port|no public"
    )
