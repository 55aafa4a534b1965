"""Fixtures every test directory shares: a private root, a registry, the test images.

Import the helpers as ``tests.helpers`` and ``tests.images``; the repository
root is put on ``sys.path`` here so that works however pytest was started.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

# ctl is not installed into the venv: the repository root must be importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers import DOCKER_REGISTRY, RegistryServer, clean_root
from tests.images import CanonicalImages, ImageFactory, push_canonical

if TYPE_CHECKING:
    from collections.abc import Iterator


# Every test has a time limit, so that a hung supervisor or a lost wakeup fails one test
# instead of running into CI's 90 minutes. The slowest tests take about 30 s.
DEFAULT_TIMEOUT = 180.0


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak",
        action="store_true",
        help="run the soak tests (also CTL_SOAK=1): the kill-9 storm's many rounds",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "needs_root: needs euid 0 (mounts, runc); fails, never skips, without it"
    )
    config.addinivalue_line("markers", "slow: takes more than a few seconds (throughput, soak)")
    config.addinivalue_line(
        "markers", f"timeout(seconds): this test's time limit (default {DEFAULT_TIMEOUT:.0f} s)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # tests/unit is the lane that runs anywhere, quickly: root, runc and mounts live elsewhere.
    unit = Path(__file__).parent / "unit"
    misplaced = [
        item.nodeid
        for item in items
        if item.get_closest_marker("needs_root") is not None and unit in item.path.parents
    ]
    if misplaced:
        raise pytest.UsageError(f"needs_root tests belong outside tests/unit: {misplaced}")


class TimeLimitExceeded(Exception):
    """TimeLimitExceeded is raised in a test that ran past its time limit."""


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    """Each test's setup, call and teardown together get its time limit.

    SIGALRM raises in the main thread, where pytest runs the test, so the failure
    carries the stack of wherever the test hung; faulthandler is the backstop for a hang
    that Python code cannot interrupt (a blocking C call), and ends the run with every
    thread's stack.
    """
    import faulthandler
    import signal

    marker = item.get_closest_marker("timeout")
    limit = float(marker.args[0]) if marker is not None else DEFAULT_TIMEOUT

    def expired(signum: int, frame: object) -> None:
        raise TimeLimitExceeded(f"{item.nodeid} ran longer than {limit:.0f} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, limit)
    faulthandler.dump_traceback_later(limit + 60, exit=True)
    try:
        return (yield)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        faulthandler.cancel_dump_traceback_later()


def pytest_runtest_setup(item: pytest.Item) -> None:
    # The brief is that root-only tests run, always: a skip would hide that
    # the suite was started the wrong way.
    if item.get_closest_marker("needs_root") is not None and os.geteuid() != 0:
        pytest.fail(f"{item.nodeid} needs root: run the test suite as root", pytrace=False)


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    """root is a ``--root`` for ctl that does not exist yet (ctl creates it, mode 0700).

    A test that fails half-way leaves its containers attached, and their
    networks on the host (veths, rules, bridges): they go with the root.
    """
    yield tmp_path / "root"
    clean_root(tmp_path / "root")


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """registry is a docker-registry on 127.0.0.1, shared by the whole session.

    Tests that delete or overwrite what they find there push their own repositories.
    """
    if not Path(DOCKER_REGISTRY).exists():
        pytest.fail(f"{DOCKER_REGISTRY} is missing: apt-get install docker-registry", pytrace=False)
    server = RegistryServer(tmp_path_factory.mktemp("registry")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def images(registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory) -> CanonicalImages:
    """images are ``test/busybox`` and ``test/multi``, pushed once, plus a factory for more."""
    try:
        factory = ImageFactory(tmp_path_factory.mktemp("images"), registry)
        return push_canonical(factory)
    except RuntimeError as err:
        pytest.fail(f"cannot build the test images: {err}", pytrace=False)
