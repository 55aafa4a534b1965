"""Image references and platforms, normalised the way docker and containerd do.

A reference names an image in a registry: ``[domain/]path[:tag][@digest]``.
``parse`` applies docker's normalisation (distribution/reference
``ParseDockerRef``): a bare name lives on Docker Hub (``nginx`` is
``docker.io/library/nginx:latest``), and the first path component is a
registry domain only if it contains ``.`` or ``:``, is ``localhost``, or has
uppercase letters (repository paths are lowercase, so such a component cannot
be one). A reference with a digest has no default tag; with both, the tag is
kept for display and the digest is what gets fetched.

Nothing beyond the standard library is imported here: every pull, run and
rmi parses references, and start-up time counts.
"""

from __future__ import annotations

import os
import re
from typing import NamedTuple

from ctl.errdefs import InvalidArgument
from ctl.oci import Platform

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

# The grammar of distribution/reference (regexp.go), anchored piecewise so that
# each kind of mistake gets its own message. Patterns, compiled on first use (re
# keeps them): most references need a few, and compiling all costs run 0.5 ms.
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN_NAME = (
    r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
    r"(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*"
)
_IPV6 = r"\[[a-fA-F0-9:]+\]"
_PORT = r"[0-9]+"
_TAG = r"(?a)[\w][\w.-]{0,127}"
_DIGEST_SYNTAX = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-zA-Z=_-]+"
_SHA256 = r"sha256:[a-f0-9]{64}"
_HEX64 = r"[a-f0-9]{64}"


class Reference(NamedTuple):
    """Reference is a normalised image reference.

    ``domain`` is the registry (``docker.io``, ``localhost:5000``), ``path`` the
    repository inside it (``library/nginx``). At least one of ``tag`` and
    ``digest`` is set by ``parse``.
    """

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """name is ``domain/path``, the repository without tag or digest."""
        return f"{self.domain}/{self.path}"

    @property
    def object(self) -> str:
        """object is what to ask the registry for: the digest if there is one, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    @property
    def familiar(self) -> str:
        """familiar is docker's short form: ``nginx:latest``, ``user/app:1``, ``quay.io/x/y:z``."""
        return _with_suffix(familiar_name(self.domain, self.path), self.tag, self.digest)

    def __str__(self) -> str:
        return _with_suffix(self.name, self.tag, self.digest)

    def with_tag(self, tag: str) -> Reference:
        """with_tag returns this repository with ``tag`` and no digest."""
        _check_tag(tag)
        return Reference(self.domain, self.path, tag, None)

    def with_digest(self, digest: str) -> Reference:
        """with_digest returns this reference pinned to ``digest``, keeping the tag."""
        _check_digest(digest)
        return Reference(self.domain, self.path, self.tag, digest)


def _with_suffix(name: str, tag: str | None, digest: str | None) -> str:
    out = name
    if tag:
        out += ":" + tag
    if digest:
        out += "@" + digest
    return out


def familiar_name(domain: str, path: str) -> str:
    """familiar_name drops ``docker.io/`` and, for official images, ``library/``."""
    if domain != DEFAULT_DOMAIN:
        return f"{domain}/{path}"
    rest = path.removeprefix(OFFICIAL_REPO_PREFIX)
    # "library/" is only dropped for one-level names: docker.io/library/a/b keeps it.
    return rest if rest != path and "/" not in rest else path


def parse(text: str) -> Reference:
    """parse normalises ``text`` into a Reference; malformed input is InvalidArgument.

    The default tag ``latest`` is added when there is neither tag nor digest.
    """
    ref = parse_named(text)
    if ref.tag is None and ref.digest is None:
        return Reference(ref.domain, ref.path, DEFAULT_TAG, None)
    return ref


def parse_named(text: str) -> Reference:
    """parse_named normalises like ``parse`` but adds no default tag."""
    if not text:
        raise InvalidArgument("invalid reference format: reference is empty")
    if re.fullmatch(_HEX64, text):
        raise InvalidArgument(
            f"invalid reference {text!r}: 64 hexadecimal digits are an image ID, "
            "not a repository name"
        )
    remainder, digest = text, None
    if "@" in text:
        remainder, _, digest = text.rpartition("@")
        _check_digest(digest, text)
    name, tag = remainder, None
    colon = remainder.rfind(":")
    if colon > remainder.rfind("/"):
        name, tag = remainder[:colon], remainder[colon + 1 :]
        _check_tag(tag, text)
    domain, path = _split_domain(name)
    validate_domain(domain, text)
    validate_repository(path, text)
    if len(domain) + 1 + len(path) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidArgument(
            f"invalid reference {text[:40]!r}...: repository name must not be more than "
            f"{NAME_TOTAL_LENGTH_MAX} characters"
        )
    return Reference(domain, path, tag, digest)


def _split_domain(name: str) -> tuple[str, str]:
    first, slash, rest = name.partition("/")
    if not slash:
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + name
    if first == LEGACY_DEFAULT_DOMAIN:
        domain, path = DEFAULT_DOMAIN, rest
    elif first == "localhost" or "." in first or ":" in first or first.lower() != first:
        domain, path = first, rest
    else:
        domain, path = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_REPO_PREFIX + path
    return domain, path


def _check_tag(tag: str, text: str | None = None) -> None:
    if not re.fullmatch(_TAG, tag):
        where = f" in {text!r}" if text else ""
        raise InvalidArgument(
            f"invalid tag {tag!r}{where}: a tag is up to 128 letters, digits, '_', '.' "
            "and '-', not starting with '.' or '-'"
        )


def _check_digest(digest: str, text: str | None = None) -> None:
    where = f" in {text!r}" if text else ""
    if re.fullmatch(_SHA256, digest):
        return
    algorithm = digest.partition(":")[0]
    if re.fullmatch(_DIGEST_SYNTAX, digest) and algorithm != "sha256":
        raise InvalidArgument(
            f"unsupported digest algorithm {algorithm!r}{where}: only sha256 is supported"
        )
    raise InvalidArgument(
        f"invalid digest {digest!r}{where}: want sha256:<64 lowercase hex digits>"
    )


def validate_domain(domain: str, text: str | None = None) -> str:
    """validate_domain accepts a registry ``host[:port]`` (IPv6 hosts in brackets)."""
    what = f"invalid reference {text!r}" if text else "invalid registry"
    host, port = split_host_port(domain)
    if port is not None and not re.fullmatch(_PORT, port):
        raise InvalidArgument(f"{what}: bad port {port!r} in {domain!r}")
    if not (re.fullmatch(_DOMAIN_NAME, host) or re.fullmatch(_IPV6, host)):
        raise InvalidArgument(f"{what}: bad registry domain {domain!r}")
    return domain


def split_host_port(domain: str) -> tuple[str, str | None]:
    """split_host_port splits ``host[:port]``; an IPv6 host is written ``[::1]``."""
    if domain.startswith("["):
        end = domain.find("]")
        if end == -1:
            return domain, None
        host, rest = domain[: end + 1], domain[end + 1 :]
        return host, rest[1:] if rest.startswith(":") else (rest or None)
    host, colon, port = domain.partition(":")
    return host, port if colon else None


def validate_repository(path: str, text: str | None = None) -> str:
    """validate_repository accepts a repository path such as ``library/nginx``."""
    what = f"invalid reference {text!r}" if text else f"invalid repository {path!r}"
    if "" in path.split("/"):
        raise InvalidArgument(f"{what}: repository name has an empty path component")
    if path.lower() != path:
        raise InvalidArgument(f"{what}: repository name {path!r} must be lowercase")
    for component in path.split("/"):
        if not re.fullmatch(_PATH_COMPONENT, component):
            raise InvalidArgument(
                f"{what}: repository path component {component!r} must be lowercase letters "
                "and digits separated by '.', '_', '__' or '-'"
            )
    return path


# Platforms, normalised as containerd's platforms package does.

# The OCI image spec (image-index.md, "platform") takes os and architecture
# values from Go's GOOS and GOARCH. Go keeps every value it ever knew in
# src/internal/syslist/syslist.go (KnownOS, KnownArch; go1.23), never removing
# one: these are copies of those two tables.
KNOWN_OS = frozenset(
    [
        "aix",
        "android",
        "darwin",
        "dragonfly",
        "freebsd",
        "hurd",
        "illumos",
        "ios",
        "js",
        "linux",
        "nacl",
        "netbsd",
        "openbsd",
        "plan9",
        "solaris",
        "wasip1",
        "windows",
        "zos",
    ]
)
KNOWN_ARCHITECTURES = frozenset(
    [
        "386",
        "amd64",
        "amd64p32",
        "arm",
        "armbe",
        "arm64",
        "arm64be",
        "loong64",
        "mips",
        "mipsle",
        "mips64",
        "mips64le",
        "mips64p32",
        "mips64p32le",
        "ppc",
        "ppc64",
        "ppc64le",
        "riscv",
        "riscv64",
        "s390",
        "s390x",
        "sparc",
        "sparc64",
        "wasm",
    ]
)
_PLATFORM_PART = r"[A-Za-z0-9_.-]+"

# uname -m -> (GOARCH, variant).
_MACHINES = {
    "x86_64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "i386": ("386", ""),
    "i486": ("386", ""),
    "i586": ("386", ""),
    "i686": ("386", ""),
    "aarch64": ("arm64", "v8"),
    "arm64": ("arm64", "v8"),
    "armv8l": ("arm", "v8"),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "armv5tel": ("arm", "v5"),
    "armv5tejl": ("arm", "v5"),
    "ppc64le": ("ppc64le", ""),
    "ppc64": ("ppc64", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
    "loongarch64": ("loong64", ""),
    "mips64": ("mips64", ""),
    "mips": ("mips", ""),
}


def _normalize_arch(arch: str, variant: str) -> tuple[str, str]:
    """_normalize_arch maps aliases to GOARCH names and spells variants as ``vN``."""
    arch, variant = arch.lower(), variant.lower()
    if arch in ("x86_64", "x86-64"):
        arch = "amd64"
    elif arch == "i386":
        arch, variant = "386", ""
    elif arch == "aarch64":
        arch = "arm64"
    elif arch == "armhf":
        arch, variant = "arm", "v7"
    elif arch == "armel":
        arch, variant = "arm", "v6"
    if arch in ("arm", "arm64") and variant.isdigit():
        variant = "v" + variant
    return arch, variant


def parse_platform(text: str) -> Platform:
    """parse_platform parses ``os``, ``arch`` or ``os/arch[/variant]`` (containerd's specifier).

    A lone OS takes the host's architecture; a lone architecture means Linux.
    Architecture aliases are normalised (``x86_64`` is ``amd64``, ``aarch64`` is ``arm64``).
    """
    parts = text.split("/")
    if not text or len(parts) > 3 or not all(re.fullmatch(_PLATFORM_PART, p) for p in parts):
        raise InvalidArgument(
            f"invalid platform {text!r}: want os/arch[/variant], such as linux/arm64/v8"
        )
    if len(parts) == 1:
        word = parts[0].lower()
        if word in KNOWN_OS:
            host = host_platform()
            return Platform(word, host.architecture, host.variant)
        arch, variant = _normalize_arch(word, "")
        return _known(text, Platform("linux", arch, variant))
    os_name = parts[0].lower()
    if os_name == "macos":
        os_name = "darwin"
    arch, variant = _normalize_arch(parts[1], parts[2] if len(parts) == 3 else "")
    return _known(text, Platform(os_name, arch, variant))


def _known(text: str, platform: Platform) -> Platform:
    """_known refuses an OS or architecture that no image index can name."""
    if platform.os not in KNOWN_OS:
        raise InvalidArgument(
            f"invalid platform {text!r}: unknown operating system {platform.os!r} "
            f"(known: {', '.join(sorted(KNOWN_OS))})"
        )
    if platform.architecture not in KNOWN_ARCHITECTURES:
        raise InvalidArgument(
            f"invalid platform {text!r}: unknown architecture {platform.architecture!r} "
            f"(known: {', '.join(sorted(KNOWN_ARCHITECTURES))})"
        )
    return platform


def host_platform() -> Platform:
    """host_platform is this machine's platform, as image indexes spell it."""
    machine = os.uname().machine
    arch, variant = _MACHINES.get(machine, (machine.lower(), ""))
    return Platform("linux", arch, variant)


def _match_key(platform: Platform) -> tuple[str, str, str]:
    arch, variant = _normalize_arch(platform.architecture, platform.variant)
    # containerd treats these spellings as the same platform.
    if arch == "arm64" and variant in ("v8", "v8.0"):
        variant = ""
    elif arch == "arm64" and variant == "v9.0":
        variant = "v9"
    elif arch == "arm" and variant == "":
        variant = "v7"
    elif arch == "amd64" and variant == "v1":
        variant = ""
    return platform.os.lower(), arch, variant


def platform_matches(want: Platform, have: Platform) -> bool:
    """platform_matches tells whether ``have`` (an index entry) is the platform ``want``.

    Both are normalised first, so ``linux/arm64/v8`` matches ``linux/arm64``.
    """
    return _match_key(want) == _match_key(have)
