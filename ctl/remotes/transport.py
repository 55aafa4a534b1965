"""HTTP to one registry: scheme choice, TLS trust, authentication, redirects and retries.

``Transport.request`` sends one registry API request and returns the response
of the last attempt; ``Transport.error`` turns an unwanted response into a
CtlError. On the way:

* **Scheme.** HTTPS first. Plain HTTP is tried only when HTTPS could not
  connect at all (connection refused, or the TLS handshake met a plain-HTTP
  server) and the registry is on loopback or ``insecure`` was asked for; never
  after a certificate verification failure. The scheme that worked is kept.
  Where plain HTTP is allowed, a handshake that checks no certificate first
  asks whether the server speaks TLS at all, so that a plain-HTTP registry
  costs no loading of CAs.
* **Trust.** ``certs.d/<host:port>/ca.crt`` replaces the system CAs for the
  registry host; ``insecure`` turns verification off for it. Other hosts (token
  realms, blob stores) are always verified against the system CAs.
* **Authentication.** A 401 carries ``WWW-Authenticate``. For ``Bearer`` a token
  is fetched from the realm for the request's scope (with the user's
  credentials if there are any) and cached per scope until it expires; for
  ``Basic`` the credentials are sent. The request is retried once; later
  requests authenticate up front.
* **Redirects** are followed by hand (at most 10), and ``Authorization`` goes
  only to the origin it was made for, never to a blob store elsewhere.
* **Retries** with exponential backoff on 408, 429, 5xx, dropped connections
  and timeouts; a request with a body is retried only if the body can be
  rewound.

A Transport may be shared by threads.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
import threading
import time
from typing import TYPE_CHECKING, BinaryIO, NamedTuple
from urllib.parse import urljoin, urlsplit

import requests
import urllib3

from ctl.errdefs import (
    CtlError,
    DataCorrupted,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
    Unimplemented,
)
from ctl.remotes.auth import Challenge, Credentials, CredentialStore, Unauthorized, parse_challenges
from ctl.remotes.hosts import api_host, ca_file, is_loopback, plain_http_allowed

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from _typeshed import StrPath

MAX_REDIRECTS = 10
MAX_BACKOFF = 10.0
MAX_ERROR_BODY = 64 << 10
DEFAULT_TOKEN_TTL = 60
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_NOT_FOUND_CODES = frozenset({"MANIFEST_UNKNOWN", "NAME_UNKNOWN", "BLOB_UNKNOWN"})
# OpenSSL's names for "the peer answered the ClientHello with something that is not TLS".
_NOT_TLS_REASONS = frozenset(
    {
        "WRONG_VERSION_NUMBER",
        "RECORD_LAYER_FAILURE",
        "UNKNOWN_PROTOCOL",
        "PACKET_LENGTH_TOO_LONG",
        "HTTP_REQUEST",
    }
)

Body = bytes | BinaryIO | None
# A token request may post a form.
_Payload = Body | dict[str, str]


def pull_scope(repo: str) -> str:
    return f"repository:{repo}:pull"


def push_scope(repo: str) -> str:
    return f"repository:{repo}:pull,push"


def _retryable_status(status: int) -> bool:
    return status in (408, 429) or (status >= 500 and status not in (501, 505))


def _causes(err: BaseException) -> Iterator[BaseException]:
    """_causes walks an exception and everything requests and urllib3 wrapped inside it."""
    seen: set[int] = set()
    stack = [err]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        inner = (current.__cause__, current.__context__, getattr(current, "reason", None))
        stack.extend(e for e in (*inner, *current.args) if isinstance(e, BaseException))


def _certificate_error(err: BaseException) -> ssl.SSLCertVerificationError | None:
    for cause in _causes(err):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return cause
    return None


def _not_tls(err: BaseException) -> bool:
    return any(isinstance(c, ssl.SSLError) and c.reason in _NOT_TLS_REASONS for c in _causes(err))


def _refused(err: BaseException) -> bool:
    return any(isinstance(c, ConnectionRefusedError) for c in _causes(err))


def reason(err: BaseException) -> str:
    """reason is the most telling short description of a network failure."""
    for cause in _causes(err):
        if isinstance(cause, http.client.IncompleteRead):
            return "the connection closed mid-transfer"
        if isinstance(cause, ssl.SSLError) and cause.reason:
            return f"TLS error: {cause.reason}"
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror.lower()
        if isinstance(cause, TimeoutError | requests.Timeout):
            return "timed out"
    return str(err) or type(err).__name__


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.lower()}"


class _Token(NamedTuple):
    value: str
    expires_at: float


def _answers_plain_http(host: str, timeout: float) -> bool:
    """_answers_plain_http tells whether ``host`` answers a TLS handshake in plain HTTP.

    The handshake checks no certificate: it only asks whether the server
    speaks TLS, without the ~20-50 ms that requests' context spends loading
    the system CAs before it can find out. Any other failure is False, and
    left to the real request to report.
    """
    import socket

    parts = urlsplit(f"https://{host}")
    name = parts.hostname or host
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((name, parts.port or 443), timeout=timeout) as sock,
            context.wrap_socket(sock, server_hostname=name),
        ):
            return False
    except ssl.SSLError as err:
        return err.reason in _NOT_TLS_REASONS
    except (OSError, ValueError):
        return False


class Transport:
    """Transport sends registry API requests to the API host of ``domain``."""

    def __init__(
        self,
        domain: str,
        *,
        insecure: bool,
        certs_dirs: Sequence[StrPath],
        credentials: CredentialStore | None,
        user_agent: str,
        retries: int,
        backoff: float,
        timeout: tuple[float, float],
    ) -> None:
        self.domain = domain
        self.host = api_host(domain)
        self.insecure = insecure
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.certs_dirs = tuple(certs_dirs)
        self._plain_allowed = plain_http_allowed(domain, insecure)
        ca = ca_file(domain, certs_dirs)
        self._registry_verify: bool | str = False if insecure else (ca or True)
        if insecure:
            # The user chose this for this registry; a warning per request would be noise.
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        self._store = credentials
        self._credentials: Credentials | None = None
        self._credentials_loaded = False
        self._scheme: str | None = None
        self._challenge: Challenge | None = None
        self._tokens: dict[str, _Token] = {}
        self._lock = threading.Lock()
        self._session = requests.Session()
        self._session.headers["User-Agent"] = user_agent
        # A non-empty session auth stops requests from adding ~/.netrc credentials,
        # which would replace the Authorization header chosen here.
        self._session.auth = _keep_headers

    def close(self) -> None:
        self._session.close()

    @property
    def base_url(self) -> str:
        """base_url is ``<scheme>://<host>`` once a request has found the scheme."""
        return f"{self._scheme or 'https'}://{self.host}"

    # Requests.

    def request(
        self,
        method: str,
        target: str,
        *,
        scope: str,
        what: str,
        headers: Mapping[str, str] | None = None,
        data: Body = None,
        stream: bool = False,
    ) -> requests.Response:
        """request sends ``method`` to ``target`` (an API path, or a URL the registry gave).

        It returns the last response, whatever its status; ``what`` names the
        operation in error messages ("resolving docker.io/library/nginx:latest").
        """
        rewind = _rewinder(data)

        def send() -> requests.Response:
            return self._send(
                method, target, dict(headers or {}), self._authorization(scope, what), data, stream
            )

        response = self._retrying(what, send, rewind)
        if response.status_code != 401:
            return response
        with response:
            challenged = self._on_unauthorized(response, scope, what)
            if not challenged or rewind is None:
                raise self._unauthorized(what, error_detail(response)[0])
        return self._retrying(what, send, rewind)

    def _send(
        self,
        method: str,
        target: str,
        headers: dict[str, str],
        authorization: str | None,
        data: Body,
        stream: bool,
    ) -> requests.Response:
        if not target.startswith("/"):
            return self._http(method, target, headers, authorization, self.base_url, data, stream)
        scheme = self._scheme
        if scheme is not None:
            url = f"{scheme}://{self.host}{target}"
            return self._http(method, url, headers, authorization, self.base_url, data, stream)
        if self._plain_allowed and _answers_plain_http(self.host, self.timeout[0]):
            # Found once a Transport: blobs then go straight to the scheme that works.
            self._scheme = "http"
            http = f"http://{self.host}"
            return self._http(method, http + target, headers, authorization, http, data, stream)
        https = f"https://{self.host}"
        try:
            response = self._http(
                method, https + target, headers, authorization, https, data, stream
            )
        except requests.ConnectionError as err:
            if not (_refused(err) or _not_tls(err)):
                raise
            if not self._plain_allowed:
                if _not_tls(err):
                    raise FailedPrecondition(
                        f"registry {self.host} does not speak HTTPS (TLS handshake: {reason(err)})",
                        hint="use --insecure to allow plain HTTP to this registry",
                    ) from err
                raise
            http = f"http://{self.host}"
            response = self._http(method, http + target, headers, authorization, http, data, stream)
            self._scheme = "http"
            return response
        self._scheme = "https"
        return response

    def _http(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        authorization: str | None,
        auth_origin: str,
        data: _Payload,
        stream: bool,
        params: list[tuple[str, str]] | None = None,
    ) -> requests.Response:
        """_http sends one request and follows redirects, keeping credentials at home."""
        for _ in range(MAX_REDIRECTS + 1):
            origin = _origin(url)
            sent = dict(headers)
            if authorization is not None and origin == auth_origin.lower():
                sent["Authorization"] = authorization
            response = self._session.request(
                method,
                url,
                headers=sent,
                params=params,
                data=data,
                stream=stream,
                allow_redirects=False,
                timeout=self.timeout,
                verify=self._verify(origin),
            )
            location = response.headers.get("Location")
            if response.status_code not in _REDIRECT_STATUSES or not location:
                return response
            response.close()
            url, params = urljoin(response.url, location), None
            if response.status_code == 303 and method != "HEAD":
                method, data = "GET", None
        raise Unavailable(
            f"registry {self.host}: more than {MAX_REDIRECTS} redirects, last to {url}"
        )

    def _verify(self, origin: str) -> bool | str:
        """_verify is the TLS trust for ``origin``: insecure and ca.crt are the registry's alone."""
        return self._registry_verify if origin == _origin(f"https://{self.host}") else True

    def _retrying(
        self,
        what: str,
        send: Callable[[], requests.Response],
        rewind: Callable[[], None] | None,
    ) -> requests.Response:
        attempts = 1 + self.retries if rewind is not None else 1
        attempt = 0
        while True:
            attempt += 1
            last = attempt >= attempts
            if rewind is not None:
                rewind()
            try:
                response = send()
            except requests.RequestException as err:
                certificate = _certificate_error(err)
                if certificate is not None:
                    raise self._certificate_failed(what, err, certificate) from err
                retryable = isinstance(
                    err,
                    requests.ConnectionError
                    | requests.Timeout
                    | requests.exceptions.ChunkedEncodingError,
                )
                if last or not retryable:
                    raise Unavailable(
                        f"{what}: cannot reach registry {self.host}: {reason(err)}"
                    ) from err
                self._sleep(attempt, None)
                continue
            if last or not _retryable_status(response.status_code):
                return response
            retry_after = response.headers.get("Retry-After", "")
            response.close()
            self._sleep(attempt, float(retry_after) if retry_after.isdigit() else None)

    def _sleep(self, attempt: int, retry_after: float | None) -> None:
        delay = self.backoff * 2 ** (attempt - 1)
        if retry_after is not None:
            delay = max(delay, retry_after)
        time.sleep(min(delay, MAX_BACKOFF))

    def _certificate_failed(
        self, what: str, err: requests.RequestException, cert: ssl.SSLCertVerificationError
    ) -> CtlError:
        url = err.request.url if err.request is not None and err.request.url else self.base_url
        host = urlsplit(url).netloc
        why = cert.verify_message or cert.reason or str(cert)
        where = (
            f"{os.path.join(self.certs_dirs[0], self.domain, 'ca.crt')}"
            if self.certs_dirs
            else f"certs.d/{self.domain}/ca.crt"
        )
        return FailedPrecondition(
            f"{what}: TLS certificate verification failed for {host}: {why}",
            hint=f"if the registry uses its own CA, put its certificate in {where}, "
            "or use --insecure",
        )

    # Authentication.

    def credentials(self) -> Credentials | None:
        """credentials looks up this registry's credentials once."""
        with self._lock:
            if not self._credentials_loaded:
                self._credentials = self._store.get(self.domain) if self._store else None
                self._credentials_loaded = True
            return self._credentials

    def _authorization(self, scope: str, what: str) -> str | None:
        with self._lock:
            challenge = self._challenge
        if challenge is None:
            return None
        if challenge.scheme == "basic":
            creds = self.credentials()
            return creds.basic_authorization() if creds is not None else None
        return "Bearer " + self._token(challenge, scope, what, refresh=False)

    def _on_unauthorized(self, response: requests.Response, scope: str, what: str) -> bool:
        """_on_unauthorized learns the 401's challenge; True if the request is worth retrying."""
        challenges = parse_challenges(response.headers.get("WWW-Authenticate", ""))
        for challenge in challenges:
            if challenge.scheme == "bearer" and challenge.params.get("realm"):
                with self._lock:
                    self._challenge = challenge
                self._token(challenge, scope, what, refresh=True)
                return True
        for challenge in challenges:
            if challenge.scheme == "basic":
                creds = self.credentials()
                with self._lock:
                    already_sent = self._challenge is not None and self._challenge.scheme == "basic"
                    self._challenge = challenge
                return creds is not None and creds.password != "" and not already_sent
        if challenges:
            schemes = ", ".join(c.scheme for c in challenges)
            raise Unimplemented(
                f"{what}: registry {self.host} asks for unsupported authentication ({schemes})"
            )
        return False

    def _token(self, challenge: Challenge, scope: str, what: str, *, refresh: bool) -> str:
        with self._lock:
            cached = self._tokens.get(scope)
        if cached is not None and not refresh and cached.expires_at > time.monotonic():
            return cached.value
        scopes = [scope] if scope else []
        offered = challenge.params.get("scope", "")
        if offered and offered != scope:
            scopes.append(offered)
        value, ttl = self._fetch_token(challenge, scopes, what)
        with self._lock:
            self._tokens[scope] = _Token(value, time.monotonic() + max(ttl - 5, 1))
        return value

    def _fetch_token(self, challenge: Challenge, scopes: list[str], what: str) -> tuple[str, int]:
        realm = challenge.params["realm"]
        parts = urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise Unavailable(f"{what}: registry {self.host} gave a bad token realm {realm!r}")
        creds = self.credentials()
        if (
            creds is not None
            and parts.scheme == "http"
            and not (self.insecure or is_loopback(parts.netloc))
        ):
            raise FailedPrecondition(
                f"{what}: refusing to send credentials for {self.domain} over plain HTTP to {realm}"
            )
        service = challenge.params.get("service", "")
        what = f"{what}: getting a token from {realm}"
        origin = _origin(realm)

        def send() -> requests.Response:
            if creds is not None and creds.identity_token:
                form = {
                    "grant_type": "refresh_token",
                    "refresh_token": creds.identity_token,
                    "service": service,
                    "scope": " ".join(scopes),
                    "client_id": "ctl",
                }
                return self._http("POST", realm, {}, None, origin, form, False)
            params = [("service", service)] if service else []
            params += [("scope", s) for s in scopes]
            authorization = creds.basic_authorization() if creds is not None else None
            return self._http("GET", realm, {}, authorization, origin, None, False, params)

        response = self._retrying(what, send, _no_rewind)
        with response:
            if response.status_code in (401, 403):
                raise self._unauthorized(what, error_detail(response)[0])
            if response.status_code != 200:
                raise self.error(response, what)
            try:
                answer = response.json()
                token = answer.get("token") or answer.get("access_token")
                ttl = int(answer.get("expires_in") or DEFAULT_TOKEN_TTL)
            except (ValueError, AttributeError, TypeError) as err:
                raise Unavailable(f"{what}: malformed token response") from err
        if not isinstance(token, str) or not token:
            raise Unavailable(f"{what}: the token response holds no token")
        return token, max(ttl, DEFAULT_TOKEN_TTL)

    def _unauthorized(self, what: str, detail: str) -> Unauthorized:
        creds = self.credentials()
        if creds is None:
            where = self._store.config_path if self._store else "~/.docker/config.json"
            return Unauthorized(
                f"{what}: unauthorized: authentication required for {self.domain} ({detail})",
                hint=f"if the repository exists, run 'ctl login {self.domain}' "
                f"or add credentials to {where}",
            )
        who = creds.username or "the identity token"
        return Unauthorized(
            f"{what}: access denied to {who} by {self.domain} ({detail})",
            hint="check the credentials, and that the repository exists",
        )

    # Errors.

    def error(self, response: requests.Response, what: str) -> CtlError:
        """error maps an unwanted response to a CtlError naming ``what`` and the registry's why."""
        detail, codes = error_detail(response)
        status = response.status_code
        if status == 404 or codes & _NOT_FOUND_CODES:
            return NotFound(f"{what}: not found ({detail})")
        if status in (401, 403) or codes & {"UNAUTHORIZED", "DENIED"}:
            return self._unauthorized(what, detail)
        if status == 429 or "TOOMANYREQUESTS" in codes:
            return Unavailable(
                f"{what}: registry {self.domain} is rate-limiting requests ({detail})",
                hint="wait, or log in to get a higher limit",
            )
        if status >= 500:
            return Unavailable(f"{what}: registry {self.domain} failed ({detail})")
        if codes & {"DIGEST_INVALID", "SIZE_INVALID"}:
            return DataCorrupted(f"{what}: registry {self.domain} refused the content ({detail})")
        if status in (405, 501) or "UNSUPPORTED" in codes:
            return Unimplemented(f"{what}: registry {self.domain} does not support this ({detail})")
        return InvalidArgument(f"{what}: registry {self.domain} refused the request ({detail})")


def error_detail(response: requests.Response) -> tuple[str, frozenset[str]]:
    """error_detail reads a registry error body (``{"errors": [{code, message}]}``), if any."""
    fallback = f"HTTP {response.status_code} {response.reason or ''}".strip()
    body = b""
    if response.request is None or response.request.method != "HEAD":
        try:
            for chunk in response.iter_content(8192):
                body += chunk
                if len(body) >= MAX_ERROR_BODY:
                    break
        except requests.RequestException:
            pass
    try:
        errors = json.loads(body)["errors"]
        parts = []
        codes = set()
        for entry in errors:
            code, message = str(entry.get("code") or ""), str(entry.get("message") or "")
            codes.add(code.upper())
            parts.append(f"{code}: {message}" if code and message else code or message)
    except (ValueError, KeyError, TypeError, AttributeError):
        return fallback, frozenset()
    return "; ".join(p for p in parts if p) or fallback, frozenset(codes - {""})


def _keep_headers(request: requests.PreparedRequest) -> requests.PreparedRequest:
    return request


def _no_rewind() -> None:
    """_no_rewind marks a request without a body as safe to repeat."""


def _rewinder(data: Body) -> Callable[[], None] | None:
    """_rewinder returns how to reset ``data`` before a repeat, or None if it cannot be repeated."""
    if data is None or isinstance(data, bytes):
        return _no_rewind
    if not data.seekable():
        return None
    start = data.tell()

    def rewind() -> None:
        data.seek(start)

    return rewind
