"""Registry credentials from docker's config file, and HTTP authentication challenges.

Credentials come from ``$DOCKER_CONFIG/config.json`` (default
``~/.docker/config.json``), looked up for a registry domain in this order:

1. ``credHelpers[<host>]``: run ``docker-credential-<helper> get``;
2. ``credsStore``: the same protocol, for every registry;
3. ``auths[<host>]``: ``auth`` (base64 of ``user:password``), or ``username`` and
   ``password``, or ``identitytoken``.

A helper that answers "credentials not found" passes on to the next source.
``store`` and ``erase`` (``ctl login``/``logout``) write where docker does: the
registry's ``credHelpers`` entry, else ``credsStore``, else ``auths`` in the
file, which keeps its other keys and mode 0600.
Keys may be written as URLs (``https://host:port/v1/``); Docker Hub is known as
``https://index.docker.io/v1/``, ``index.docker.io`` or ``docker.io``. The
credential-helper protocol: the server URL on stdin, JSON
``{"Username": ..., "Secret": ...}`` on stdout; the user name ``<token>`` marks
the secret as an identity (refresh) token.

Only the standard library is used here.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, NamedTuple

from ctl.errdefs import FailedPrecondition, InvalidArgument, Unavailable
from ctl.remotes.hosts import DOCKER_HUB_ALIASES, DOCKER_HUB_CREDENTIALS_KEY

HELPER_TIMEOUT = 60.0
_HELPER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class Unauthorized(FailedPrecondition):
    """Unauthorized means the registry wants credentials we lack, or refused the ones we sent."""


# NamedTuples, not dataclasses: importing dataclasses (inspect, ast) costs ~5 ms of every pull.
class Credentials(NamedTuple):
    """Credentials for one registry: a user and password, or an identity token."""

    username: str = ""
    password: str = ""
    identity_token: str = ""

    def __repr__(self) -> str:
        # The secrets stay out of tracebacks and --debug output.
        return f"Credentials(username={self.username!r})"

    def basic_authorization(self) -> str:
        """basic_authorization is the value of an ``Authorization: Basic`` header."""
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def default_config_path() -> Path:
    """default_config_path is docker's client config file, honouring ``$DOCKER_CONFIG``."""
    directory = os.environ.get("DOCKER_CONFIG")
    base = Path(directory) if directory else Path.home() / ".docker"
    return base / "config.json"


def _host_key(key: str) -> str:
    """_host_key reduces a config key or domain to a host, Docker Hub's aliases to one name."""
    host = key.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    return "docker.io" if host in DOCKER_HUB_ALIASES else host


class CredentialStore:
    """CredentialStore answers "which credentials for this registry?" from docker's config.

    The file is read on the first lookup, not at construction; a missing file
    means no credentials, a malformed one is InvalidArgument naming the file.
    """

    def __init__(self, config_path: Path | None = None) -> None:
        self.config_path = config_path if config_path is not None else default_config_path()
        self._config: dict[str, Any] | None = None

    def get(self, domain: str) -> Credentials | None:
        """get returns the credentials for registry ``domain``, or None for anonymous access."""
        config = self._load()
        host = _host_key(domain)
        server = DOCKER_HUB_CREDENTIALS_KEY if host == "docker.io" else host
        for key, helper in self._section(config, "credHelpers").items():
            if _host_key(key) == host:
                creds = self._run_helper(self._helper_name(helper, "credHelpers"), server)
                if creds is not None:
                    return creds
        store = config.get("credsStore")
        if store:
            creds = self._run_helper(self._helper_name(store, "credsStore"), server)
            if creds is not None:
                return creds
        for key, entry in self._section(config, "auths").items():
            if _host_key(key) == host:
                return self._from_auths_entry(key, entry)
        return None

    def _load(self) -> dict[str, Any]:
        if self._config is None:
            try:
                data = json.loads(self.config_path.read_bytes())
            except FileNotFoundError:
                data = {}
            except (OSError, ValueError) as err:
                raise InvalidArgument(
                    f"cannot read docker config {self.config_path}: {err}"
                ) from err
            if not isinstance(data, dict):
                raise InvalidArgument(f"malformed docker config {self.config_path}: not an object")
            self._config = data
        return self._config

    def _section(self, config: dict[str, Any], name: str) -> dict[str, Any]:
        section = config.get(name, {})
        if not isinstance(section, dict):
            raise InvalidArgument(
                f"malformed docker config {self.config_path}: {name} not an object"
            )
        return section

    def _helper_name(self, name: Any, where: str) -> str:
        if not isinstance(name, str) or not _HELPER_NAME.fullmatch(name):
            raise InvalidArgument(
                f"malformed docker config {self.config_path}: bad credential helper {name!r} "
                f"in {where}"
            )
        return name

    def _from_auths_entry(self, key: str, entry: Any) -> Credentials | None:
        where = f"docker config {self.config_path}: auths[{key!r}]"
        if not isinstance(entry, dict):
            raise InvalidArgument(f"malformed {where}: not an object")
        username = entry.get("username") or ""
        password = entry.get("password") or ""
        identity_token = entry.get("identitytoken") or ""
        encoded = entry.get("auth") or ""
        if not all(isinstance(v, str) for v in (username, password, identity_token, encoded)):
            raise InvalidArgument(f"malformed {where}: values must be strings")
        if encoded:
            try:
                decoded = base64.b64decode(encoded, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError) as err:
                raise InvalidArgument(f"malformed {where}.auth: not base64: {err}") from err
            username, colon, password = decoded.partition(":")
            if not colon:
                raise InvalidArgument(f"malformed {where}.auth: want base64 of user:password")
        if identity_token:
            return Credentials(username=username, identity_token=identity_token)
        if username or password:
            return Credentials(username=username, password=password)
        return None

    def _run_helper(self, helper: str, server: str) -> Credentials | None:
        program = f"docker-credential-{helper}"
        done = self._call_helper(program, "get", server.encode(), server)
        output = (done.stdout + done.stderr).decode(errors="replace").strip()
        if done.returncode != 0:
            if "credentials not found" in output.lower():
                return None
            raise FailedPrecondition(
                f"credential helper {program} failed for {server}: "
                f"{output or f'exit status {done.returncode}'}"
            )
        try:
            answer = json.loads(done.stdout)
            username, secret = answer["Username"], answer["Secret"]
        except (ValueError, KeyError, TypeError) as err:
            raise FailedPrecondition(
                f"credential helper {program} gave malformed output for {server}"
            ) from err
        if not isinstance(username, str) or not isinstance(secret, str):
            raise FailedPrecondition(f"credential helper {program} gave non-string credentials")
        if not secret:
            return None
        if username == "<token>":
            return Credentials(identity_token=secret)
        return Credentials(username=username, password=secret)

    def _call_helper(
        self, program: str, action: str, stdin: bytes, server: str
    ) -> subprocess.CompletedProcess[bytes]:
        path = shutil.which(program)
        if path is None:
            raise FailedPrecondition(
                f"credential helper {program} (configured in {self.config_path}) is not "
                "installed or not on PATH"
            )
        try:
            return subprocess.run(
                [path, action],
                input=stdin,
                capture_output=True,
                timeout=HELPER_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired as err:
            raise Unavailable(
                f"credential helper {program} did not answer for {server} within "
                f"{HELPER_TIMEOUT:.0f}s"
            ) from err
        except OSError as err:
            raise FailedPrecondition(f"cannot run credential helper {program}: {err}") from err

    # Writing, for login and logout.

    def _helper_for(self, config: dict[str, Any], host: str) -> str | None:
        for key, helper in self._section(config, "credHelpers").items():
            if _host_key(key) == host:
                return self._helper_name(helper, "credHelpers")
        store = config.get("credsStore")
        return self._helper_name(store, "credsStore") if store else None

    def store(self, domain: str, creds: Credentials) -> str:
        """store saves ``creds`` for ``domain``; it returns where (a file or a helper)."""
        config = dict(self._load())
        host = _host_key(domain)
        server = DOCKER_HUB_CREDENTIALS_KEY if host == "docker.io" else host
        helper = self._helper_for(config, host)
        if helper is not None:
            program = f"docker-credential-{helper}"
            username = creds.username if not creds.identity_token else "<token>"
            secret = creds.identity_token or creds.password
            payload = {"ServerURL": server, "Username": username, "Secret": secret}
            done = self._call_helper(program, "store", json.dumps(payload).encode(), server)
            if done.returncode != 0:
                output = (done.stdout + done.stderr).decode(errors="replace").strip()
                raise FailedPrecondition(
                    f"credential helper {program} could not store credentials for {server}: "
                    f"{output or f'exit status {done.returncode}'}"
                )
            return program
        auths = {
            key: entry
            for key, entry in self._section(config, "auths").items()
            if _host_key(key) != host
        }
        raw = f"{creds.username}:{creds.password}".encode()
        auths[server] = {"auth": base64.b64encode(raw).decode()}
        config["auths"] = auths
        self._write(config)
        return str(self.config_path)

    def erase(self, domain: str) -> bool:
        """erase forgets ``domain``'s credentials; False if there were none."""
        config = dict(self._load())
        host = _host_key(domain)
        server = DOCKER_HUB_CREDENTIALS_KEY if host == "docker.io" else host
        erased = False
        helper = self._helper_for(config, host)
        if helper is not None:
            program = f"docker-credential-{helper}"
            done = self._call_helper(program, "erase", server.encode(), server)
            erased = done.returncode == 0
        auths = self._section(config, "auths")
        kept = {key: entry for key, entry in auths.items() if _host_key(key) != host}
        if len(kept) != len(auths):
            config["auths"] = kept
            self._write(config)
            erased = True
        return erased

    def _write(self, config: dict[str, Any]) -> None:
        from ctl import fsutil

        self.config_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        data = (json.dumps(config, indent="\t") + "\n").encode()
        fsutil.atomic_write(self.config_path, data, mode=0o600, what=str(self.config_path))
        self._config = config


class GivenCredentials(CredentialStore):
    """GivenCredentials answers every lookup with one set of credentials (``ctl login``)."""

    def __init__(self, creds: Credentials) -> None:
        super().__init__()
        self._given = creds

    def get(self, domain: str) -> Credentials | None:
        return self._given


class Challenge(NamedTuple):
    """Challenge is one ``WWW-Authenticate`` challenge: a lowercase scheme and its parameters."""

    scheme: str
    params: dict[str, str]


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_EQUALS = re.compile(r"\s*=\s*")


def parse_challenges(header: str) -> list[Challenge]:
    """parse_challenges parses ``WWW-Authenticate`` (RFC 9110), which may hold several challenges.

    ``Bearer realm="https://auth.example/token",service="registry",scope="repository:a:pull"``
    gives ``Challenge("bearer", {"realm": ..., "service": ..., "scope": ...})``.
    """
    challenges: list[Challenge] = []
    pos = 0
    while True:
        while pos < len(header) and header[pos] in " \t,":
            pos += 1
        word = _TOKEN.match(header, pos)
        if word is None:
            return challenges
        pos = word.end()
        equals = _EQUALS.match(header, pos)
        if challenges and equals is not None:
            pos = equals.end()
            quoted = _QUOTED.match(header, pos)
            if quoted is not None:
                value = re.sub(r"\\(.)", r"\1", quoted.group(1))
                pos = quoted.end()
            else:
                bare = _TOKEN.match(header, pos)
                value = bare.group() if bare else ""
                pos = bare.end() if bare else pos
            challenges[-1].params[word.group().lower()] = value
        else:
            challenges.append(Challenge(word.group().lower(), {}))
