"""Where a registry domain is served and how far it is trusted.

A reference's domain (``docker.io``, ``localhost:5000``) is not always the host
to talk to: Docker Hub's API lives on ``registry-1.docker.io``. Plain HTTP is
allowed only for loopback registries or when the user asked for ``--insecure``,
as docker and containerd allow it; a registry's own CA is looked up in
``certs.d/<host:port>/ca.crt`` directories.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from ctl.reference import DEFAULT_DOMAIN, split_host_port

if TYPE_CHECKING:
    from collections.abc import Sequence

    from _typeshed import StrPath

DOCKER_HUB_API_HOST = "registry-1.docker.io"
DOCKER_HUB_CREDENTIALS_KEY = "https://index.docker.io/v1/"
DOCKER_HUB_ALIASES = frozenset(
    {DEFAULT_DOMAIN, "index.docker.io", DOCKER_HUB_API_HOST, "registry.hub.docker.com"}
)


def api_host(domain: str) -> str:
    """api_host is the ``host[:port]`` that serves the registry API of ``domain``."""
    return DOCKER_HUB_API_HOST if domain in DOCKER_HUB_ALIASES else domain


def is_loopback(domain: str) -> bool:
    """is_loopback tells whether ``host[:port]`` is this machine: localhost, 127/8 or ::1."""
    host = split_host_port(domain)[0].lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def plain_http_allowed(domain: str, insecure: bool) -> bool:
    """plain_http_allowed tells whether HTTP may be tried after HTTPS fails to connect."""
    return insecure or is_loopback(domain)


def ca_file(domain: str, certs_dirs: Sequence[StrPath]) -> str | None:
    """ca_file finds ``<dir>/<host:port>/ca.crt`` in the first of ``certs_dirs`` that has it."""
    import os

    for directory in certs_dirs:
        candidate = os.path.join(directory, domain, "ca.crt")
        if os.path.isfile(candidate):
            return candidate
    return None
