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

from tests.helpers import DOCKER_REGISTRY, RegistryServer, remove_bridges
from tests.images import CanonicalImages, ImageFactory, push_canonical

if TYPE_CHECKING:
    from collections.abc import Iterator


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "needs_root: needs euid 0 (mounts, runc); fails, never skips, without it"
    )
    config.addinivalue_line("markers", "slow: takes more than a few seconds (throughput, soak)")


def pytest_runtest_setup(item: pytest.Item) -> None:
    # The brief is that root-only tests run, always: a skip would hide that
    # the suite was started the wrong way.
    if item.get_closest_marker("needs_root") is not None and os.geteuid() != 0:
        pytest.fail(f"{item.nodeid} needs root: run the test suite as root", pytrace=False)


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    """root is a ``--root`` for ctl that does not exist yet (ctl creates it, mode 0700).

    Bridges outlive a root (the CNI bridge plugin never deletes them), so the
    ones a test's root made go with it.
    """
    yield tmp_path / "root"
    remove_bridges(tmp_path / "root")


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
