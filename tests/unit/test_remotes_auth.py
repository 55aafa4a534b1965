"""Credentials from docker's config, WWW-Authenticate parsing, and host trust decisions."""

from __future__ import annotations

import base64
import json
import os
import stat
from typing import TYPE_CHECKING

import pytest

from ctl.errdefs import FailedPrecondition, InvalidArgument
from ctl.remotes.auth import Challenge, Credentials, CredentialStore, parse_challenges
from ctl.remotes.hosts import api_host, ca_file, is_loopback, plain_http_allowed

if TYPE_CHECKING:
    from pathlib import Path


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _store(tmp_path: Path, config: object) -> CredentialStore:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return CredentialStore(path)


@pytest.fixture
def helper_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """helper_dir is a directory on PATH for fake docker-credential-* programs."""
    directory = tmp_path / "bin"
    directory.mkdir()
    monkeypatch.setenv("PATH", f"{directory}{os.pathsep}{os.environ['PATH']}")
    return directory


def _helper(directory: Path, name: str, script: str) -> None:
    path = directory / f"docker-credential-{name}"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_missing_config_means_anonymous(tmp_path: Path) -> None:
    assert CredentialStore(tmp_path / "absent.json").get("example.com") is None


def test_default_config_path_follows_docker_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
    assert CredentialStore().config_path == tmp_path / "config.json"


def test_auths_entry_forms(tmp_path: Path) -> None:
    store = _store(
        tmp_path,
        {
            "auths": {
                "https://reg.example.com:5000/v1/": {"auth": _b64("alice:pa:ss")},
                "plain.example.com": {"username": "bob", "password": "pw"},
                "sso.example.com": {"auth": _b64("carol:"), "identitytoken": "refresh"},
                "empty.example.com": {},
            }
        },
    )
    assert store.get("reg.example.com:5000") == Credentials("alice", "pa:ss")
    assert store.get("plain.example.com") == Credentials("bob", "pw")
    assert store.get("sso.example.com") == Credentials("carol", identity_token="refresh")
    assert store.get("empty.example.com") is None
    assert store.get("reg.example.com") is None, "the port is part of the key"


@pytest.mark.parametrize(
    "key", ["https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io"]
)
def test_docker_hub_keys(tmp_path: Path, key: str) -> None:
    store = _store(tmp_path, {"auths": {key: {"auth": _b64("hub:pw")}}})
    assert store.get("docker.io") == Credentials("hub", "pw")


def test_credentials_repr_hides_secrets() -> None:
    assert "pw" not in repr(Credentials("user", "pw", "tok"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "cannot read docker config"),
        ("[]", "not an object"),
        ('{"auths": []}', "auths not an object"),
        ('{"auths": {"h": "x"}}', r"auths\['h'\]: not an object"),
        ('{"auths": {"h": {"auth": "%%%"}}}', "not base64"),
        ('{"auths": {"h": {"auth": "' + _b64("nocolon") + '"}}}', "user:password"),
        ('{"credsStore": "../evil"}', "bad credential helper"),
    ],
)
def test_malformed_config_names_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "config.json"
    path.write_text(content)
    with pytest.raises(InvalidArgument, match=message) as caught:
        CredentialStore(path).get("h")
    assert str(path) in str(caught.value)


def test_cred_helper_wins_over_auths(tmp_path: Path, helper_dir: Path) -> None:
    _helper(
        helper_dir,
        "good",
        f'read server; echo "$1 $server" > {tmp_path / "asked"}\n'
        'echo \'{"Username": "helped", "Secret": "s"}\'\n',
    )
    store = _store(
        tmp_path,
        {
            "credHelpers": {"reg.example.com": "good"},
            "auths": {"reg.example.com": {"auth": _b64("file:pw")}},
        },
    )
    assert store.get("reg.example.com") == Credentials("helped", "s")
    assert (tmp_path / "asked").read_text() == "get reg.example.com\n"


def test_creds_store_not_found_falls_back_to_auths(tmp_path: Path, helper_dir: Path) -> None:
    _helper(helper_dir, "empty", "echo 'credentials not found in native keychain'; exit 1\n")
    store = _store(
        tmp_path,
        {"credsStore": "empty", "auths": {"reg.example.com": {"auth": _b64("file:pw")}}},
    )
    assert store.get("reg.example.com") == Credentials("file", "pw")


def test_creds_store_for_docker_hub_gets_the_index_url(tmp_path: Path, helper_dir: Path) -> None:
    _helper(
        helper_dir,
        "tok",
        f'read server; echo "$server" > {tmp_path / "asked"}\n'
        'echo \'{"Username": "<token>", "Secret": "refresh"}\'\n',
    )
    store = _store(tmp_path, {"credsStore": "tok"})
    assert store.get("docker.io") == Credentials(identity_token="refresh")
    assert (tmp_path / "asked").read_text() == "https://index.docker.io/v1/\n"


def test_failing_helper_is_a_clear_error(tmp_path: Path, helper_dir: Path) -> None:
    _helper(helper_dir, "broken", "echo 'gpg: decryption failed' >&2; exit 1\n")
    store = _store(tmp_path, {"credsStore": "broken"})
    with pytest.raises(FailedPrecondition, match=r"docker-credential-broken failed.*gpg"):
        store.get("reg.example.com")


def test_missing_helper_is_a_clear_error(tmp_path: Path) -> None:
    store = _store(tmp_path, {"credHelpers": {"reg.example.com": "absent-xyz"}})
    with pytest.raises(FailedPrecondition, match=r"docker-credential-absent-xyz .* not on PATH"):
        store.get("reg.example.com")


def test_parse_challenges() -> None:
    header = (
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:samalba/my-app:pull,push", Basic realm="a \\"quoted\\" realm"'
    )
    assert parse_challenges(header) == [
        Challenge(
            "bearer",
            {
                "realm": "https://auth.docker.io/token",
                "service": "registry.docker.io",
                "scope": "repository:samalba/my-app:pull,push",
            },
        ),
        Challenge("basic", {"realm": 'a "quoted" realm'}),
    ]
    assert parse_challenges("") == []
    assert parse_challenges("BASIC realm=fake") == [Challenge("basic", {"realm": "fake"})]


def test_api_host() -> None:
    assert api_host("docker.io") == "registry-1.docker.io"
    assert api_host("quay.io") == "quay.io"
    assert api_host("localhost:5000") == "localhost:5000"


@pytest.mark.parametrize(
    ("domain", "loopback"),
    [
        ("localhost", True),
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("127.4.5.6", True),
        ("[::1]:5000", True),
        ("10.0.0.1:5000", False),
        ("registry.example.com", False),
        ("localhost.example.com", False),
    ],
)
def test_plain_http_only_for_loopback_or_insecure(domain: str, loopback: bool) -> None:
    assert is_loopback(domain) is loopback
    assert plain_http_allowed(domain, insecure=False) is loopback
    assert plain_http_allowed(domain, insecure=True)


def test_ca_file_searches_dirs_in_order(tmp_path: Path) -> None:
    first, second = tmp_path / "ctl-certs.d", tmp_path / "docker-certs.d"
    (second / "reg:5000").mkdir(parents=True)
    (second / "reg:5000" / "ca.crt").write_text("ca")
    assert ca_file("reg:5000", [first, second]) == str(second / "reg:5000" / "ca.crt")
    (first / "reg:5000").mkdir(parents=True)
    (first / "reg:5000" / "ca.crt").write_text("ca")
    assert ca_file("reg:5000", [first, second]) == str(first / "reg:5000" / "ca.crt")
    assert ca_file("other", [first, second]) is None
