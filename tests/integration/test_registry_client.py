"""The registry client against Debian's docker-registry and against small misbehaving servers."""

from __future__ import annotations

import base64
import io
import json
import os
import shutil
import stat
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ctl import oci
from ctl.errdefs import DataCorrupted, FailedPrecondition, InvalidArgument, NotFound, Unavailable
from ctl.reference import parse
from ctl.remotes.auth import CredentialStore, Unauthorized
from ctl.remotes.registry import Registry
from tests.fakeregistry import FakeRegistry, digest_of, self_signed_cert, tls_context
from tests.helpers import free_port

if TYPE_CHECKING:
    from tests.helpers import RegistryServer

REPO = "remotes-test/app"
LAYER = b"layer bytes: " + bytes(range(256)) * 4
CONFIG = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers"}}).encode()


def _manifest() -> bytes:
    def desc(media_type: str, data: bytes) -> dict[str, object]:
        return {"mediaType": media_type, "digest": digest_of(data), "size": len(data)}

    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": oci.MEDIA_TYPE_OCI_MANIFEST,
            "config": desc(oci.MEDIA_TYPE_OCI_CONFIG, CONFIG),
            "layers": [desc(oci.MEDIA_TYPE_OCI_LAYER, LAYER)],
        }
    ).encode()


MANIFEST = _manifest()
LAYER_DESC = oci.Descriptor(oci.MEDIA_TYPE_OCI_LAYER, digest_of(LAYER), len(LAYER))
CONFIG_DESC = oci.Descriptor(oci.MEDIA_TYPE_OCI_CONFIG, digest_of(CONFIG), len(CONFIG))
MANIFEST_DESC = oci.Descriptor(oci.MEDIA_TYPE_OCI_MANIFEST, digest_of(MANIFEST), len(MANIFEST))


def _client(domain: str, **kwargs: object) -> Registry:
    """_client is a Registry with quick retries and no credentials unless given."""
    kwargs.setdefault("credentials", CredentialStore(Path("/nonexistent/config.json")))
    return Registry(domain, backoff=0.0, timeout=(3.0, 5.0), **kwargs)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own empty DOCKER_CONFIG; the host's credentials never leak in."""
    config_dir = tmp_path / "docker-config"
    config_dir.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config_dir))
    return config_dir


def _write_config(config_dir: Path, config: object) -> CredentialStore:
    (config_dir / "config.json").write_text(json.dumps(config))
    return CredentialStore()


# The real registry.


@pytest.fixture(scope="module")
def real_registry(registry: RegistryServer) -> str:
    """real_registry is the session's docker-registry, with REPO pushed by our own client."""
    with _client(registry.host) as client:
        assert not client.blob_exists(REPO, LAYER_DESC)
        client.push_blob(REPO, LAYER_DESC, io.BytesIO(LAYER))
        client.push_blob(REPO, CONFIG_DESC, io.BytesIO(CONFIG))
        assert client.blob_exists(REPO, LAYER_DESC)
        pushed = client.push_manifest(REPO, "v1", oci.MEDIA_TYPE_OCI_MANIFEST, MANIFEST)
        assert pushed == MANIFEST_DESC
    return registry.host


def test_resolve_by_tag_and_digest(real_registry: str) -> None:
    with _client(real_registry) as registry:
        by_tag = registry.resolve(parse(f"{real_registry}/{REPO}:v1"))
        assert by_tag == MANIFEST_DESC
        assert by_tag.media_type == oci.MEDIA_TYPE_OCI_MANIFEST
        by_digest = registry.resolve(parse(f"{real_registry}/{REPO}@{MANIFEST_DESC.digest}"))
        assert by_digest == MANIFEST_DESC
        assert registry.fetch_manifest(REPO, by_tag) == MANIFEST


def test_open_blob_whole_and_from_offset(real_registry: str) -> None:
    with _client(real_registry) as registry:
        with registry.open_blob(REPO, LAYER_DESC) as stream:
            assert stream.offset == 0
            assert b"".join(stream) == LAYER
        with registry.open_blob(REPO, LAYER_DESC, offset=100) as stream:
            assert stream.offset == 100
            assert b"".join(stream) == LAYER[100:]


def test_missing_things_are_not_found(real_registry: str) -> None:
    with _client(real_registry) as registry:
        with pytest.raises(NotFound, match=f"{REPO}:nope"):
            registry.resolve(parse(f"{real_registry}/{REPO}:nope"))
        with pytest.raises(NotFound):
            registry.resolve(parse(f"{real_registry}/no/such-repo:v1"))
        missing = oci.Descriptor(oci.MEDIA_TYPE_OCI_LAYER, digest_of(b"missing"), 7)
        with pytest.raises(NotFound, match="BLOB_UNKNOWN"):
            registry.open_blob(REPO, missing)
        with pytest.raises(NotFound, match="MANIFEST_UNKNOWN"):
            registry.fetch_manifest(REPO, missing)
        assert not registry.blob_exists(REPO, missing)


def test_push_blob_with_wrong_digest_is_refused(real_registry: str) -> None:
    lying = oci.Descriptor(oci.MEDIA_TYPE_OCI_LAYER, digest_of(b"other"), len(LAYER))
    with _client(real_registry) as registry, pytest.raises(DataCorrupted, match="DIGEST_INVALID"):
        registry.push_blob(REPO, lying, io.BytesIO(LAYER))


# Manifests that are not what they claim.


def test_manifest_with_wrong_digest_is_corrupted() -> None:
    with FakeRegistry() as fake, _client(fake.domain) as registry:
        fake.manifests[(REPO, MANIFEST_DESC.digest)] = (oci.MEDIA_TYPE_OCI_MANIFEST, b"{}")
        with pytest.raises(DataCorrupted):
            registry.fetch_manifest(REPO, MANIFEST_DESC)


def test_resolve_without_digest_header_reads_the_manifest() -> None:
    with FakeRegistry(digest_header=False) as fake, _client(fake.domain) as registry:
        fake.add_manifest(REPO, "v1", "application/json", MANIFEST)
        assert registry.resolve(parse(f"{fake.domain}/{REPO}:v1")) == MANIFEST_DESC
        assert [s.method for s in fake.requests_to("/manifests/")] == ["HEAD", "GET"]


def test_schema1_is_refused() -> None:
    with FakeRegistry() as fake, _client(fake.domain) as registry:
        fake.add_manifest(REPO, "old", oci.MEDIA_TYPE_DOCKER_SCHEMA1, b'{"schemaVersion": 1}')
        with pytest.raises(InvalidArgument, match="schema 1 manifests are not supported"):
            registry.resolve(parse(f"{fake.domain}/{REPO}:old"))


def test_oversized_manifest_is_refused() -> None:
    big = oci.Descriptor(oci.MEDIA_TYPE_OCI_MANIFEST, digest_of(b"x"), 5 << 20)
    with _client("127.0.0.1:1") as registry, pytest.raises(InvalidArgument, match="more than"):
        registry.fetch_manifest(REPO, big)


# Authentication.


def test_bearer_token_with_credentials_from_docker_config(docker_config: Path) -> None:
    with FakeRegistry(auth="bearer", users={"alice": "s3cret"}) as fake:
        fake.add_manifest(REPO, "v1", oci.MEDIA_TYPE_OCI_MANIFEST, MANIFEST)
        fake.add_blob(LAYER)
        auth = base64.b64encode(b"alice:s3cret").decode()
        store = _write_config(docker_config, {"auths": {f"http://{fake.domain}": {"auth": auth}}})
        with _client(fake.domain, credentials=store) as registry:
            assert registry.resolve(parse(f"{fake.domain}/{REPO}:v1")) == MANIFEST_DESC
            with registry.open_blob(REPO, LAYER_DESC) as stream:
                assert b"".join(stream) == LAYER
        token_requests = fake.requests_to("/token")
        assert len(token_requests) == 1, "one token per scope, then reused"
        assert token_requests[0].headers["Authorization"] == f"Basic {auth}"
        assert f"scope=repository%3A{REPO.replace('/', '%2F')}%3Apull" in token_requests[0].path


def test_registry_defaults_to_docker_config(docker_config: Path) -> None:
    with FakeRegistry(auth="bearer", users={"alice": "s3cret"}) as fake:
        fake.add_manifest(REPO, "v1", oci.MEDIA_TYPE_OCI_MANIFEST, MANIFEST)
        config = {"auths": {fake.domain: {"username": "alice", "password": "s3cret"}}}
        (docker_config / "config.json").write_text(json.dumps(config))
        with Registry(fake.domain, backoff=0.0) as registry:
            assert registry.resolve(parse(f"{fake.domain}/{REPO}:v1")) == MANIFEST_DESC


def test_bearer_anonymous_token() -> None:
    with FakeRegistry(auth="bearer") as fake, _client(fake.domain) as registry:
        fake.add_manifest(REPO, "v1", oci.MEDIA_TYPE_OCI_MANIFEST, MANIFEST)
        assert registry.resolve(parse(f"{fake.domain}/{REPO}:v1")) == MANIFEST_DESC
        assert "Authorization" not in fake.requests_to("/token")[0].headers


def test_bearer_with_wrong_password_is_unauthorized(docker_config: Path) -> None:
    with FakeRegistry(auth="bearer", users={"alice": "s3cret"}) as fake:
        fake.add_manifest(REPO, "v1", oci.MEDIA_TYPE_OCI_MANIFEST, MANIFEST)
        config = {"auths": {fake.domain: {"username": "alice", "password": "wrong"}}}
        store = _write_config(docker_config, config)
        with (
            _client(fake.domain, credentials=store) as registry,
            pytest.raises(Unauthorized, match="access denied to alice"),
        ):
            registry.resolve(parse(f"{fake.domain}/{REPO}:v1"))


def test_bearer_with_identity_token(docker_config: Path) -> None:
    with FakeRegistry(auth="bearer", users={"nobody": "x"}, refresh_tokens={"idtok"}) as fake:
        fake.add_manifest(REPO, "v1", oci.MEDIA_TYPE_OCI_MANIFEST, MANIFEST)
        config = {"auths": {fake.domain: {"identitytoken": "idtok"}}}
        store = _write_config(docker_config, config)
        with _client(fake.domain, credentials=store) as registry:
            assert registry.resolve(parse(f"{fake.domain}/{REPO}:v1")) == MANIFEST_DESC
        assert [s.method for s in fake.requests_to("/token")] == ["POST"]


def test_basic_auth(docker_config: Path) -> None:
    with FakeRegistry(auth="basic", users={"bob": "pw"}) as fake:
        fake.add_manifest(REPO, "v1", oci.MEDIA_TYPE_OCI_MANIFEST, MANIFEST)
        store = _write_config(
            docker_config, {"auths": {f"https://{fake.domain}/v1/": {"auth": "Ym9iOnB3"}}}
        )
        with _client(fake.domain, credentials=store) as registry:
            assert registry.resolve(parse(f"{fake.domain}/{REPO}:v1")) == MANIFEST_DESC
            registry.push_blob(REPO, LAYER_DESC, io.BytesIO(LAYER))
        assert fake.blobs[LAYER_DESC.digest] == LAYER
        # Once challenged, later requests authenticate up front.
        assert [s.headers.get("Authorization") is not None for s in fake.seen] == [
            False,
            True,
            True,
            True,
        ]


def test_basic_auth_without_credentials_says_how_to_log_in() -> None:
    with FakeRegistry(auth="basic", users={"bob": "pw"}) as fake, _client(fake.domain) as registry:
        with pytest.raises(Unauthorized) as caught:
            registry.resolve(parse(f"{fake.domain}/{REPO}:v1"))
        assert f"authentication required for {fake.domain}" in str(caught.value)
        assert caught.value.hint is not None
        assert "ctl login" in caught.value.hint
        assert "config.json" in caught.value.hint


def test_credential_helper(
    tmp_path: Path, docker_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-fake"
    helper.write_text(
        "#!/bin/sh\n"
        '[ "$1" = get ] || exit 2\n'
        f'read server; echo "$server" > {tmp_path / "asked"}\n'
        'echo \'{"ServerURL": "x", "Username": "carol", "Secret": "hunter2"}\'\n'
    )
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    with FakeRegistry(auth="basic", users={"carol": "hunter2"}) as fake:
        fake.add_manifest(REPO, "v1", oci.MEDIA_TYPE_OCI_MANIFEST, MANIFEST)
        store = _write_config(docker_config, {"credHelpers": {fake.domain: "fake"}})
        with _client(fake.domain, credentials=store) as registry:
            assert registry.resolve(parse(f"{fake.domain}/{REPO}:v1")) == MANIFEST_DESC
        assert (tmp_path / "asked").read_text().strip() == fake.domain


def test_missing_credential_helper_is_a_clear_error(docker_config: Path) -> None:
    with FakeRegistry(auth="basic", users={"bob": "pw"}) as fake:
        store = _write_config(docker_config, {"credsStore": "nonexistent-helper"})
        with (
            _client(fake.domain, credentials=store) as registry,
            pytest.raises(FailedPrecondition, match="docker-credential-nonexistent-helper"),
        ):
            registry.resolve(parse(f"{fake.domain}/{REPO}:v1"))


# Faults.


def test_server_errors_are_retried() -> None:
    with FakeRegistry(fail=[500, 503]) as fake, _client(fake.domain) as registry:
        fake.add_manifest(REPO, "v1", oci.MEDIA_TYPE_OCI_MANIFEST, MANIFEST)
        assert registry.resolve(parse(f"{fake.domain}/{REPO}:v1")) == MANIFEST_DESC
        assert len(fake.requests_to("/manifests/")) == 3


def test_server_errors_give_up_after_retries() -> None:
    with FakeRegistry(fail=[500] * 10) as fake, _client(fake.domain, retries=2) as registry:
        with pytest.raises(Unavailable, match=f"registry {fake.domain} failed"):
            registry.resolve(parse(f"{fake.domain}/{REPO}:v1"))
        assert len(fake.seen) == 3


def test_dropped_connection_mid_blob() -> None:
    with FakeRegistry(drop_after=100) as fake, _client(fake.domain) as registry:
        fake.add_blob(LAYER)
        stream = registry.open_blob(REPO, LAYER_DESC)
        received = b""
        with pytest.raises(Unavailable, match=f"download stopped after 100 of {len(LAYER)} bytes"):
            for chunk in stream:
                received += chunk
        stream.close()
        assert received == LAYER[:100]


def test_ignored_range_starts_at_zero() -> None:
    with FakeRegistry(ignore_range=True) as fake, _client(fake.domain) as registry:
        fake.add_blob(LAYER)
        with registry.open_blob(REPO, LAYER_DESC, offset=10) as stream:
            assert stream.offset == 0
            assert b"".join(stream) == LAYER
        assert fake.seen[0].headers["Range"] == "bytes=10-"


def test_blob_redirect_to_another_host_gets_no_authorization() -> None:
    with FakeRegistry() as cdn, FakeRegistry(auth="bearer", redirect_blobs=cdn.url) as fake:
        cdn.add_blob(LAYER)
        fake.add_blob(LAYER)
        with _client(fake.domain) as registry, registry.open_blob(REPO, LAYER_DESC) as stream:
            assert b"".join(stream) == LAYER
        assert fake.requests_to("/blobs/")[-1].headers["Authorization"].startswith("Bearer ")
        assert [s.path for s in cdn.seen] == [f"/v2/{REPO}/blobs/{LAYER_DESC.digest}"]
        assert "Authorization" not in cdn.seen[0].headers


# Transport security.


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    assert shutil.which("openssl"), "openssl is not installed (apt install openssl)"
    return self_signed_cert(tmp_path_factory.mktemp("tls"))


def test_self_signed_certificate_fails_without_http_fallback(
    certificate: tuple[Path, Path],
) -> None:
    with FakeRegistry(tls=tls_context(*certificate)) as fake, _client(fake.domain) as registry:
        fake.add_manifest(REPO, "v1", oci.MEDIA_TYPE_OCI_MANIFEST, MANIFEST)
        with pytest.raises(FailedPrecondition, match="certificate verification failed") as caught:
            registry.resolve(parse(f"{fake.domain}/{REPO}:v1"))
        assert "self-signed" in str(caught.value)
        assert caught.value.hint is not None
        assert "ca.crt" in caught.value.hint
        # The TLS probe (loopback allows plain HTTP) and the HTTPS request; no third over HTTP.
        assert fake.connections == 2, "no try over plain HTTP"


def test_ca_from_certs_dir(certificate: tuple[Path, Path], tmp_path: Path) -> None:
    with FakeRegistry(tls=tls_context(*certificate)) as fake:
        fake.add_manifest(REPO, "v1", oci.MEDIA_TYPE_OCI_MANIFEST, MANIFEST)
        certs_d = tmp_path / "certs.d"
        (certs_d / fake.domain).mkdir(parents=True)
        shutil.copy(certificate[0], certs_d / fake.domain / "ca.crt")
        with _client(fake.domain, certs_dirs=[tmp_path / "empty", certs_d]) as registry:
            assert registry.resolve(parse(f"{fake.domain}/{REPO}:v1")) == MANIFEST_DESC


def test_insecure_skips_verification(certificate: tuple[Path, Path]) -> None:
    with FakeRegistry(tls=tls_context(*certificate)) as fake:
        fake.add_manifest(REPO, "v1", oci.MEDIA_TYPE_OCI_MANIFEST, MANIFEST)
        with _client(fake.domain, insecure=True) as registry:
            assert registry.resolve(parse(f"{fake.domain}/{REPO}:v1")) == MANIFEST_DESC


def test_plain_http_on_loopback_after_https_fails() -> None:
    with FakeRegistry() as fake:
        fake.add_manifest(REPO, "v1", oci.MEDIA_TYPE_OCI_MANIFEST, MANIFEST)
        domain = f"localhost:{fake.port}"
        with _client(domain) as registry:
            assert registry.resolve(parse(f"{domain}/{REPO}:v1")) == MANIFEST_DESC
            assert registry.resolve(parse(f"{domain}/{REPO}:v1")) == MANIFEST_DESC
        # One connection for the failed TLS handshake, then plain HTTP, remembered.
        assert fake.connections == 2
        assert len(fake.seen) == 2


def test_unreachable_registry_is_unavailable() -> None:
    domain = f"127.0.0.1:{free_port()}"
    with (
        _client(domain, retries=1) as registry,
        pytest.raises(Unavailable, match=f"cannot reach registry {domain}: connection refused"),
    ):
        registry.resolve(parse(f"{domain}/{REPO}:v1"))
