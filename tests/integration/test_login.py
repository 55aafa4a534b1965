"""login and logout against Debian's docker-registry with htpasswd auth, and a credential helper."""

from __future__ import annotations

import json
import os
import stat
from typing import TYPE_CHECKING

import pytest

from tests.helpers import RegistryServer, run_ctl

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.helpers import CtlResult
    from tests.images import CanonicalImages

pytestmark = pytest.mark.needs_root


@pytest.fixture(scope="module")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    server = RegistryServer(tmp_path_factory.mktemp("auth-registry"), users={"alice": "s3cret"})
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    return tmp_path / "docker" / "config.json"


def login(registry: RegistryServer, root: Path, password: str = "s3cret") -> CtlResult:
    return run_ctl(
        "login", "-u", "alice", "--password-stdin", registry.host, root=root, input=password
    )


def test_login_checks_then_stores_keeping_other_keys(
    auth_registry: RegistryServer, root: Path, docker_config: Path
) -> None:
    docker_config.parent.mkdir()
    docker_config.write_text(json.dumps({"psFormat": "{{.ID}}", "auths": {"other.io": {}}}))
    result = run_ctl(
        "login", "-u", "alice", "--password-stdin", auth_registry.host, root=root, input="s3cret\n"
    )
    result.assert_success()
    assert "Login Succeeded" in result.stdout
    assert "stored unencrypted" in result.stderr
    config = json.loads(docker_config.read_text())
    assert config["psFormat"] == "{{.ID}}"
    assert "other.io" in config["auths"]
    assert config["auths"][auth_registry.host]["auth"] == "YWxpY2U6czNjcmV0"  # alice:s3cret
    assert stat.S_IMODE(docker_config.stat().st_mode) == 0o600

    run_ctl("logout", auth_registry.host, root=root).assert_success(
        stdout_re=f"Removing login credentials for {auth_registry.host}"
    )
    assert auth_registry.host not in json.loads(docker_config.read_text())["auths"]
    run_ctl("logout", auth_registry.host, root=root).assert_success(stdout_re="Not logged in")


def test_wrong_password_stores_nothing(
    auth_registry: RegistryServer, root: Path, docker_config: Path
) -> None:
    result = run_ctl(
        "login", "-u", "alice", "--password-stdin", auth_registry.host, root=root, input="nope"
    )
    result.assert_failure(125, stderr_re="access denied to alice")
    assert not docker_config.exists()


def test_password_flag_warns(
    auth_registry: RegistryServer, root: Path, docker_config: Path
) -> None:
    result = run_ctl("login", "-u", "alice", "-p", "s3cret", auth_registry.host, root=root)
    result.assert_success()
    assert "Using --password via the CLI is insecure" in result.stderr


def test_no_tty_and_no_password_is_one_line(root: Path, docker_config: Path) -> None:
    run_ctl("login", "127.0.0.1:1", root=root, input="").assert_failure(
        125, stderr_re="non TTY device"
    )


def test_push_and_pull_after_login_use_the_credentials(
    auth_registry: RegistryServer,
    images: CanonicalImages,
    root: Path,
    docker_config: Path,
) -> None:
    private = f"{auth_registry.host}/private/busybox:latest"
    run_ctl("pull", images.busybox_ref, root=root).assert_success()
    run_ctl("tag", images.busybox_ref, private, root=root).assert_success()
    run_ctl("push", private, root=root).assert_failure(125, stderr_re="ctl login")
    login(auth_registry, root).assert_success()
    run_ctl("push", private, root=root).assert_success()
    run_ctl("rmi", private, root=root).assert_success()
    run_ctl("pull", private, root=root).assert_success()


HELPER = """#!/bin/sh
# A docker-credential-* helper that keeps one entry per server in a directory.
dir={store}
case "$1" in
store) cat > "$dir/last.json"; echo stored >> "$dir/log" ;;
get) read server; [ -f "$dir/last.json" ] && cat "$dir/last.json" || \
  {{ echo "credentials not found in native keychain"; exit 1; }} ;;
erase) read server; rm -f "$dir/last.json"; echo "erased $server" >> "$dir/log" ;;
esac
"""


def test_login_stores_through_the_credential_helper(
    auth_registry: RegistryServer,
    root: Path,
    docker_config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bin_dir = tmp_path / "bin"
    store = tmp_path / "store"
    bin_dir.mkdir()
    store.mkdir()
    helper = bin_dir / "docker-credential-ctltest"
    helper.write_text(HELPER.format(store=store))
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    docker_config.parent.mkdir()
    docker_config.write_text(json.dumps({"credsStore": "ctltest"}))
    result = run_ctl(
        "login", "-u", "alice", "--password-stdin", auth_registry.host, root=root, input="s3cret"
    )
    result.assert_success()
    assert "stored unencrypted" not in result.stderr
    saved = json.loads((store / "last.json").read_text())
    assert saved == {"ServerURL": auth_registry.host, "Username": "alice", "Secret": "s3cret"}
    assert json.loads(docker_config.read_text()) == {"credsStore": "ctltest"}
    run_ctl("logout", auth_registry.host, root=root).assert_success(stdout_re="Removing")
    assert not (store / "last.json").exists()
