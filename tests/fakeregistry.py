"""A small in-memory registry on loopback that can be told to misbehave.

The real registry (``docker-registry``) covers the well-behaved paths; this one
produces the faults it cannot: auth challenges with checked credentials,
failures that go away, dropped connections, ignored ``Range``, redirects to
another host, TLS with a self-signed certificate. It serves just enough of the
distribution API for ``ctl.remotes``, and records every request it gets.
"""

from __future__ import annotations

import base64
import hashlib
import http.server
import json
import re
import socket
import ssl
import subprocess
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

if TYPE_CHECKING:
    from pathlib import Path
    from types import TracebackType

_MANIFEST = re.compile(r"/v2/(?P<repo>.+)/manifests/(?P<ref>[^/]+)")
_BLOB = re.compile(r"/v2/(?P<repo>.+)/blobs/(?P<digest>sha256:[a-f0-9]{64})")
_UPLOADS = re.compile(r"/v2/(?P<repo>.+)/blobs/uploads/(?P<id>[^/]*)")


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Seen:
    """Seen is one request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]


@dataclass
class FakeRegistry:
    """FakeRegistry serves blobs and manifests from memory on 127.0.0.1.

    Knobs (set before or between requests):
      auth            None, "basic" or "bearer"
      users           accepted user -> password (bearer: checked at the token endpoint)
      fail            statuses to answer, one per request, before behaving
      drop_after      send only this many bytes of a blob body, then hang up
      slow_blobs      digest -> seconds to wait before sending that blob's body
      ignore_range    answer Range requests with the whole blob (200)
      redirect_blobs  base URL that blob GETs are redirected to
      digest_header   send Docker-Content-Digest on manifest responses
      refresh_tokens  identity tokens accepted by a POST to the token endpoint

    ``connections`` counts the TCP connections accepted, TLS handshakes or not.
    """

    tls: ssl.SSLContext | None = None
    auth: str | None = None
    users: dict[str, str] = field(default_factory=dict)
    fail: list[int] = field(default_factory=list)
    drop_after: int | None = None
    slow_blobs: dict[str, float] = field(default_factory=dict)
    ignore_range: bool = False
    redirect_blobs: str | None = None
    digest_header: bool = True
    refresh_tokens: set[str] = field(default_factory=set)
    connections: int = 0
    blobs: dict[str, bytes] = field(default_factory=dict)
    manifests: dict[tuple[str, str], tuple[str, bytes]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    tokens: set[str] = field(default_factory=set)
    _server: http.server.ThreadingHTTPServer | None = None

    def __enter__(self) -> FakeRegistry:
        handler = type("Handler", (_Handler,), {"registry": self})
        server = _Server(("127.0.0.1", 0), handler)
        server.registry = self
        threading.Thread(target=server.serve_forever, args=(0.01,), daemon=True).start()
        self._server = server
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def domain(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.domain}"

    def add_blob(self, data: bytes) -> str:
        digest = digest_of(data)
        self.blobs[digest] = data
        return digest

    def add_manifest(self, repo: str, tag: str, media_type: str, body: bytes) -> str:
        digest = digest_of(body)
        self.manifests[(repo, tag)] = (media_type, body)
        self.manifests[(repo, digest)] = (media_type, body)
        return digest

    def requests_to(self, path_part: str) -> list[Seen]:
        return [s for s in self.seen if path_part in s.path]


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    registry: FakeRegistry

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, address = self.socket.accept()
        self.registry.connections += 1
        if self.registry.tls is not None:
            # A failed handshake raises OSError here, which the server drops quietly.
            conn = self.registry.tls.wrap_socket(conn, server_side=True)
        return conn, address


class _Handler(http.server.BaseHTTPRequestHandler):
    registry: FakeRegistry
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        reg = self.registry
        url = urlsplit(self.path)
        body = self._body()
        reg.seen.append(Seen(self.command, self.path, dict(self.headers.items())))
        if url.path == "/token":
            self._token(parse_qs(url.query), parse_qs(body.decode()))
            return
        if reg.fail:
            self._reply(reg.fail.pop(0), _errors("INTERNAL", "injected failure"))
            return
        if not self._authorized():
            return
        if url.path == "/v2/":
            self._reply(200, b"{}")
        elif m := _UPLOADS.fullmatch(url.path):
            self._upload(m["repo"], m["id"], parse_qs(url.query), body)
        elif m := _BLOB.fullmatch(url.path):
            self._blob(m["digest"])
        elif m := _MANIFEST.fullmatch(url.path):
            self._manifest(m["repo"], m["ref"], body)
        else:
            self._reply(404, _errors("NOT_FOUND", "no such endpoint"))

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _authorized(self) -> bool:
        reg = self.registry
        given = self.headers.get("Authorization", "")
        if reg.auth is None:
            return True
        if reg.auth == "basic":
            if _basic_user(given, reg.users):
                return True
            challenge = 'Basic realm="fake"'
        else:
            if given.removeprefix("Bearer ") in reg.tokens:
                return True
            named = re.match(r"/v2/(.+?)/(?:manifests|blobs)/", self.path)
            repo = named[1] if named else ""
            challenge = (
                f'Bearer realm="http://{reg.domain}/token",service="fake",'
                f'scope="repository:{repo}:pull"'
            )
        self._reply(401, _errors("UNAUTHORIZED", "authentication required"), challenge=challenge)
        return False

    def _token(self, query: dict[str, list[str]], form: dict[str, list[str]]) -> None:
        reg = self.registry
        given = self.headers.get("Authorization", "")
        if self.command == "POST":
            refresh = form.get("refresh_token", [""])[0]
            if form.get("grant_type") != ["refresh_token"] or refresh not in reg.refresh_tokens:
                self._reply(401, _errors("UNAUTHORIZED", "bad refresh token"))
                return
            query = form
        elif reg.users and not _basic_user(given, reg.users):
            self._reply(401, _errors("UNAUTHORIZED", "bad credentials"))
            return
        token = f"tok-{uuid.uuid4().hex}"
        reg.tokens.add(token)
        answer = {"access_token": token, "expires_in": 300, "scope": query.get("scope", [])}
        self._reply(200, json.dumps(answer).encode(), content_type="application/json")

    def _blob(self, digest: str) -> None:
        reg = self.registry
        data = reg.blobs.get(digest)
        if data is None:
            self._reply(404, _errors("BLOB_UNKNOWN", "blob unknown to registry"))
            return
        if reg.redirect_blobs and self.command == "GET":
            self._reply(307, b"", location=f"{reg.redirect_blobs}{self.path}")
            return
        status, start = 200, 0
        wanted = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        if wanted and not reg.ignore_range:
            status, start = 206, int(wanted[1])
        part = data[start:]
        self.send_response(status)
        self.send_header("Content-Length", str(len(part)))
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Docker-Content-Digest", digest)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if self.command == "HEAD":
            return
        time.sleep(reg.slow_blobs.get(digest, 0.0))
        if reg.drop_after is not None:
            self.wfile.write(part[: reg.drop_after])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.wfile.write(part)

    def _manifest(self, repo: str, ref: str, body: bytes) -> None:
        reg = self.registry
        if self.command == "PUT":
            digest = reg.add_manifest(repo, ref, self.headers.get("Content-Type", ""), body)
            self._reply(201, b"", headers={"Docker-Content-Digest": digest})
            return
        found = reg.manifests.get((repo, ref))
        if found is None:
            self._reply(404, _errors("MANIFEST_UNKNOWN", "manifest unknown"))
            return
        media_type, manifest = found
        headers = {"Docker-Content-Digest": digest_of(manifest)} if reg.digest_header else {}
        self._reply(200, manifest, content_type=media_type, headers=headers)

    def _upload(self, repo: str, upload: str, query: dict[str, list[str]], body: bytes) -> None:
        reg = self.registry
        if self.command == "POST":
            self._reply(202, b"", location=f"/v2/{repo}/blobs/uploads/{uuid.uuid4().hex}")
            return
        digest = query.get("digest", [""])[0]
        if digest_of(body) != digest:
            self._reply(400, _errors("DIGEST_INVALID", "provided digest did not match"))
            return
        reg.blobs[digest] = body
        self._reply(201, b"", location=f"/v2/{repo}/blobs/{digest}")

    def _reply(
        self,
        status: int,
        body: bytes,
        *,
        content_type: str = "application/json",
        challenge: str | None = None,
        location: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if challenge:
            self.send_header("WWW-Authenticate", challenge)
        if location:
            self.send_header("Location", location)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def _errors(code: str, message: str) -> bytes:
    return json.dumps({"errors": [{"code": code, "message": message}]}).encode()


def _basic_user(header: str, users: dict[str, str]) -> str | None:
    if not header.startswith("Basic "):
        return None
    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    return user if users.get(user) == password else None


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """self_signed_cert makes a certificate and key for 127.0.0.1 with the openssl CLI."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
            "-addext", "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context
