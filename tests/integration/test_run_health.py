"""Issue 11, group 8: health checks, run by the supervisor inside real containers."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import pytest

from tests.helpers import ctl_proc, pulled_root

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.images import CanonicalImages

pytestmark = pytest.mark.needs_root


@pytest.fixture(scope="module")
def hroot(tmp_path_factory: pytest.TempPathFactory, images: CanonicalImages) -> Iterator[Path]:
    yield from pulled_root(tmp_path_factory.mktemp("health"), images.busybox_ref)


@pytest.fixture(scope="module")
def healthcheck_image(images: CanonicalImages) -> str:
    """healthcheck_image is busybox with a HEALTHCHECK that passes once /tmp/ready exists."""
    image = images.factory.image(
        extra_config={
            "Healthcheck": {
                "Test": ["CMD-SHELL", "test -e /tmp/ready && echo ready"],
                "Interval": 300_000_000,
                "Retries": 2,
            }
        }
    )
    return images.factory.push(image, "test/healthcheck")


def _health(root: Path, name: str) -> dict[str, Any] | None:
    doc = ctl_proc("inspect", name, root=root).assert_success().stdout
    health: dict[str, Any] | None = json.loads(doc)[0]["State"].get("Health")
    return health


def _wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _status_is(root: Path, name: str, status: str) -> Callable[[], bool]:
    def check() -> bool:
        health = _health(root, name)
        return health is not None and health["Status"] == status

    return check


def _ps_status(root: Path, name: str) -> str:
    rows = ctl_proc("ps", "--format", "json", root=root).assert_success().json_lines()
    return next(str(r["Status"]) for r in rows if isinstance(r, dict) and r["Names"] == name)


def test_a_passing_check_makes_the_container_healthy(hroot: Path, images: CanonicalImages) -> None:
    ctl_proc(
        "run", "-d", "--name", "ok", "--health-cmd", "echo fine; true",
        "--health-interval", "1s", images.busybox_ref, "sleep", "60",
        root=hroot,
    ).assert_success()  # fmt: skip
    assert _health(hroot, "ok") == {"Status": "starting", "FailingStreak": 0, "Log": []}
    assert "(health: starting)" in _ps_status(hroot, "ok")
    _wait_for(_status_is(hroot, "ok", "healthy"))
    assert _ps_status(hroot, "ok").endswith("(healthy)")
    # Five results at most, the newest last.
    _wait_for(lambda: len((_health(hroot, "ok") or {})["Log"]) == 5, timeout=30)
    time.sleep(1.5)
    health = _health(hroot, "ok")
    assert health is not None and len(health["Log"]) == 5
    last = health["Log"][-1]
    assert last["ExitCode"] == 0 and last["Output"] == "fine\n"
    assert last["Start"] <= last["End"]
    config = json.loads(ctl_proc("inspect", "ok", root=hroot).stdout)[0]["Config"]["Healthcheck"]
    assert config["Test"] == ["CMD-SHELL", "echo fine; true"]
    assert config["Interval"] == 1_000_000_000
    ctl_proc("rm", "-f", "ok", root=hroot).assert_success()


def test_the_check_runs_as_the_containers_process(hroot: Path, images: CanonicalImages) -> None:
    ctl_proc(
        "run", "-dt", "--name", "who", "-u", "1000", "-w", "/tmp", "-e", "MARK=x",
        "--health-cmd", "id -u; pwd; echo $MARK", "--health-interval", "300ms",
        images.busybox_ref, "sleep", "60",
        root=hroot,
    ).assert_success()  # fmt: skip
    _wait_for(_status_is(hroot, "who", "healthy"))
    assert (_health(hroot, "who") or {})["Log"][-1]["Output"] == "1000\n/tmp\nx\n"
    ctl_proc("rm", "-f", "who", root=hroot).assert_success()


def test_failing_checks_make_it_unhealthy_after_retries(
    hroot: Path, images: CanonicalImages
) -> None:
    ctl_proc(
        "run", "-d", "--name", "bad", "--health-cmd", "false", "--health-interval", "500ms",
        "--health-retries", "2", images.busybox_ref, "sleep", "60",
        root=hroot,
    ).assert_success()  # fmt: skip
    _wait_for(_status_is(hroot, "bad", "unhealthy"))
    health = _health(hroot, "bad")
    assert health is not None and health["FailingStreak"] >= 2
    assert all(entry["ExitCode"] == 1 for entry in health["Log"])
    assert _ps_status(hroot, "bad").endswith("(unhealthy)")
    # Not health-driven, as in docker: the container keeps running.
    assert ctl_proc("inspect", "bad", root=hroot).assert_success().stdout.count('"running"') >= 1
    ctl_proc("rm", "-f", "bad", root=hroot).assert_success()


def test_a_check_past_its_timeout_is_killed(hroot: Path, images: CanonicalImages) -> None:
    ctl_proc(
        "run", "-d", "--name", "slow", "--health-cmd", "sleep 30", "--health-interval", "200ms",
        "--health-timeout", "300ms", "--health-retries", "1", images.busybox_ref, "sleep", "60",
        root=hroot,
    ).assert_success()  # fmt: skip
    _wait_for(_status_is(hroot, "slow", "unhealthy"))
    entry = (_health(hroot, "slow") or {})["Log"][0]
    assert entry["ExitCode"] == -1
    assert entry["Output"] == "Health check exceeded timeout (300ms)"
    # Killed checks are gone from the container: only the one running now is left.
    time.sleep(1)
    top = ctl_proc("exec", "slow", "ps", root=hroot).assert_success().stdout
    assert top.count("sleep 30") <= 1
    ctl_proc("rm", "-f", "slow", root=hroot).assert_success()


def test_the_images_healthcheck_is_honoured_and_flags_override_it(
    hroot: Path, healthcheck_image: str
) -> None:
    ctl_proc("run", "-d", "--name", "img", healthcheck_image, "sleep", "60", root=hroot)
    _wait_for(_status_is(hroot, "img", "unhealthy"))
    ctl_proc("exec", "img", "touch", "/tmp/ready", root=hroot).assert_success()
    _wait_for(_status_is(hroot, "img", "healthy"))
    assert (_health(hroot, "img") or {})["Log"][-1]["Output"] == "ready\n"
    ctl_proc("rm", "-f", "img", root=hroot).assert_success()
    # A flag replaces one field; the image's command stays.
    ctl_proc(
        "run", "-d", "--name", "img2", "--health-retries", "7", healthcheck_image, "sleep", "60",
        root=hroot,
    ).assert_success()  # fmt: skip
    config = json.loads(ctl_proc("inspect", "img2", root=hroot).stdout)[0]["Config"]
    assert config["Healthcheck"]["Retries"] == 7
    assert config["Healthcheck"]["Test"][0] == "CMD-SHELL"
    assert config["Healthcheck"]["Interval"] == 300_000_000
    ctl_proc("rm", "-f", "img2", root=hroot).assert_success()


def test_a_check_that_cannot_start_fails_with_runcs_message(
    hroot: Path, images: CanonicalImages
) -> None:
    image = images.factory.image(
        extra_config={"Healthcheck": {"Test": ["CMD", "/nonexistent"], "Interval": 200_000_000}}
    )
    ref = images.factory.push(image, "test/healthcheck-missing")
    ctl_proc("run", "-d", "--name", "nocmd", ref, "sleep", "60", root=hroot).assert_success()
    _wait_for(_status_is(hroot, "nocmd", "unhealthy"))
    entry = (_health(hroot, "nocmd") or {})["Log"][-1]
    assert entry["ExitCode"] == -1
    assert entry["Output"].startswith("OCI runtime exec failed: ")
    assert "/nonexistent" in entry["Output"] and "{" not in entry["Output"]
    ctl_proc("rm", "-f", "nocmd", root=hroot).assert_success()


def test_no_healthcheck_disables_the_images(hroot: Path, healthcheck_image: str) -> None:
    ctl_proc(
        "run", "-d", "--name", "off", "--no-healthcheck", healthcheck_image, "sleep", "60",
        root=hroot,
    ).assert_success()  # fmt: skip
    time.sleep(1)
    assert _health(hroot, "off") is None
    status = _ps_status(hroot, "off")
    assert status.startswith("Up") and "health" not in status
    ctl_proc("rm", "-f", "off", root=hroot).assert_success()


def test_no_check_runs_while_paused(hroot: Path, images: CanonicalImages) -> None:
    ctl_proc(
        "run", "-d", "--name", "pz", "--health-cmd", "true", "--health-interval", "300ms",
        images.busybox_ref, "sleep", "60",
        root=hroot,
    ).assert_success()  # fmt: skip
    _wait_for(_status_is(hroot, "pz", "healthy"))
    ctl_proc("pause", "pz", root=hroot).assert_success()
    time.sleep(0.5)
    before = (_health(hroot, "pz") or {})["Log"]
    time.sleep(1.5)
    assert (_health(hroot, "pz") or {})["Log"] == before
    assert _ps_status(hroot, "pz").endswith("(Paused)")
    ctl_proc("unpause", "pz", root=hroot).assert_success()
    _wait_for(lambda: (_health(hroot, "pz") or {})["Log"] != before)
    ctl_proc("rm", "-f", "pz", root=hroot).assert_success()


def test_a_created_container_is_checked_once_started(hroot: Path, images: CanonicalImages) -> None:
    ctl_proc(
        "create", "--name", "later", "--health-cmd", "true", "--health-interval", "300ms",
        images.busybox_ref, "sleep", "60",
        root=hroot,
    ).assert_success()  # fmt: skip
    time.sleep(1)
    assert (_health(hroot, "later") or {})["Log"] == []
    ctl_proc("start", "later", root=hroot).assert_success()
    _wait_for(_status_is(hroot, "later", "healthy"))
    ctl_proc("rm", "-f", "later", root=hroot).assert_success()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--health-interval", "5"), "--health-interval: invalid duration '5': missing unit"),
        (("--health-timeout=-1s",), "--health-timeout cannot be negative"),
        (("--health-retries", "-1"), "--health-retries cannot be negative"),
        (("--no-healthcheck", "--health-cmd", "true"), "--no-healthcheck conflicts"),
    ],
)
def test_bad_health_flags_create_nothing(
    hroot: Path, images: CanonicalImages, flags: tuple[str, ...], message: str
) -> None:
    before = ctl_proc("ps", "-aq", root=hroot).assert_success().stdout
    result = ctl_proc("run", "-d", *flags, images.busybox_ref, "true", root=hroot)
    result.assert_failure(125, stderr_re=message)
    assert ctl_proc("ps", "-aq", root=hroot).assert_success().stdout == before
