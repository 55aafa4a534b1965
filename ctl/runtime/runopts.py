"""Parsing of the values of ``run`` and ``create`` flags into typed values.

Each ``parse_*`` function takes the string a user typed (as docker accepts it)
and returns a typed value, or raises one ``InvalidArgument`` that names the flag
value and says what is wrong with it. Nothing here touches the container or the
store; the only things read are the ones the flag itself names (``--env-file``)
and the caller's environment for ``-e KEY``.
"""

from __future__ import annotations

import math
import os
import re
import signal
from typing import TYPE_CHECKING, Literal, NamedTuple

from ctl.errdefs import InvalidArgument

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

# runc refuses ids above MaxInt32 (containerd follows it), so do we.
MAX_ID = 2**31 - 1
PROPAGATIONS = frozenset({"private", "rprivate", "shared", "rshared", "slave", "rslave"})
RESTART_POLICIES = frozenset({"no", "always", "on-failure", "unless-stopped"})

_MEMORY = re.compile(r"(\d+(?:\.\d+)?) ?([bkmgtp])?(?:i?b)?", re.IGNORECASE)
_MEMORY_UNITS = {
    "": 1,
    "b": 1,
    "k": 1 << 10,
    "m": 1 << 20,
    "g": 1 << 30,
    "t": 1 << 40,
    "p": 1 << 50,
}


class MountSpec(NamedTuple):
    """MountSpec is one ``-v`` or ``--mount`` value: a bind mount, a tmpfs or a volume.

    A volume's ``source`` is its name ("" for a new anonymous one);
    ``ctl.volumes.mounts`` turns it into a bind or tmpfs before the spec is
    made. ``volume_nocopy`` skips the copy-up; ``volume_options`` are the
    options of a volume the mount creates.
    """

    type: Literal["bind", "tmpfs", "volume"]
    destination: str
    source: str = ""
    readonly: bool = False
    propagation: str = ""
    tmpfs_size: int | None = None
    tmpfs_mode: int | None = None
    volume_nocopy: bool = False
    # A default shared by every instance: records are never changed in place.
    volume_options: dict[str, str] = {}


class PortMapping(NamedTuple):
    """PortMapping is one ``-p``: host_ip "" means every address of the host."""

    host_ip: str
    host_port: int
    container_port: int
    protocol: str


class RestartPolicy(NamedTuple):
    """RestartPolicy is ``--restart``: max_retries is 0 (no bound) except for on-failure:N."""

    name: str
    max_retries: int = 0


class SecurityOptions(NamedTuple):
    """SecurityOptions is what the ``--security-opt`` values asked for, together."""

    no_new_privileges: bool = False
    seccomp_unconfined: bool = False


class UserSpec(NamedTuple):
    """UserSpec is ``-u`` or an image's User: a name or decimal uid, and optionally a group."""

    user: str
    group: str | None = None

    def __str__(self) -> str:
        return self.user if self.group is None else f"{self.user}:{self.group}"


def parse_memory(value: str) -> int:
    """parse_memory reads a size as docker does: ``512m``, ``1.5g``, ``2GiB``, ``100`` bytes.

    Units are binary (k = 1024) and case-insensitive.
    """
    match = _MEMORY.fullmatch(value.strip())
    if match is None:
        raise InvalidArgument(f"invalid size {value!r}: want a number with b, k, m, g, t or p")
    number, unit = match.groups()
    return int(float(number) * _MEMORY_UNITS[(unit or "").lower()])


def parse_cpus(value: str) -> float:
    """parse_cpus reads ``--cpus``: from 0.01 to the number of CPUs this process may use."""
    available = len(os.sched_getaffinity(0))
    try:
        cpus = float(value)
    except ValueError:
        cpus = math.nan
    if not math.isfinite(cpus) or not 0.01 <= cpus <= available:
        raise InvalidArgument(f"invalid --cpus {value!r}: want a number from 0.01 to {available}")
    return cpus


def parse_env(values: Sequence[str], environ: Mapping[str, str] | None = None) -> list[str]:
    """parse_env reads ``-e`` values: ``KEY=VALUE``, or ``KEY`` alone to pass the caller's value.

    As in docker, ``KEY`` alone is dropped when the caller's environment has no
    such variable.
    """
    env = os.environ if environ is None else environ
    out: list[str] = []
    for value in values:
        key, sep, _ = value.partition("=")
        _check_env_key(key, f"invalid environment variable {value!r}")
        if sep:
            out.append(value)
        elif key in env:
            out.append(f"{key}={env[key]}")
    return out


def parse_env_file(path: str, environ: Mapping[str, str] | None = None) -> list[str]:
    """parse_env_file reads ``--env-file``: docker's format, one variable a line.

    Blank lines and lines starting with ``#`` are skipped; ``KEY=VALUE`` takes
    VALUE literally (no quotes are removed); ``KEY`` alone is passed from the
    caller's environment as in ``parse_env``.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise InvalidArgument(f"env file {path}: {err.strerror}") from err
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as err:
        raise InvalidArgument(f"env file {path}: not UTF-8 text") from err
    lines: list[str] = []
    for number, raw in enumerate(text.split("\n"), 1):
        line = raw.removesuffix("\r").lstrip()
        if not line or line.startswith("#"):
            continue
        key, sep, _ = line.partition("=")
        _check_env_key(key, f"env file {path}, line {number}: invalid variable {key!r}")
        lines.append(line if sep else key)
    return parse_env(lines, environ)


def _check_env_key(key: str, what: str) -> None:
    if not key or any(c.isspace() for c in key):
        raise InvalidArgument(f"{what}: the name must be non-empty, without whitespace")


def parse_labels(values: Sequence[str]) -> dict[str, str]:
    """parse_labels reads ``--label KEY=VALUE`` values; ``KEY`` alone means an empty value."""
    labels: dict[str, str] = {}
    for value in values:
        key, _, val = value.partition("=")
        if not key.strip():
            raise InvalidArgument(f"invalid label {value!r}: want KEY=VALUE")
        labels[key] = val
    return labels


def parse_volume(value: str) -> MountSpec:
    """parse_volume reads ``-v [SRC:]DST[:OPTS]`` as docker does.

    SRC is an absolute host path (a bind mount) or a volume name (created if
    missing); without SRC, DST gets a new anonymous volume. OPTS is a comma
    list of ro, rw, nocopy (volumes) and a propagation (binds).
    """
    what = f"invalid volume {value!r}"
    parts = value.split(":")
    if len(parts) == 1:
        _check_destination(parts[0], f"volume {value!r}")
        return MountSpec("volume", parts[0])
    if not 2 <= len(parts) <= 3 or not all(parts[:2]):
        raise InvalidArgument(f"{what}: want [SRC:]DST[:ro|rw]")
    source, destination = parts[0], parts[1]
    kind: Literal["bind", "volume"] = "bind" if source.startswith("/") else "volume"
    if kind == "volume":
        _check_volume_name(source, what)
    _check_destination(destination, f"volume {value!r}")
    readonly, propagation, nocopy = False, "", False
    for option in parts[2].split(",") if len(parts) == 3 else ():
        if option in ("ro", "rw"):
            readonly = option == "ro"
        elif option in PROPAGATIONS and kind == "bind":
            propagation = option
        elif option == "nocopy" and kind == "volume":
            nocopy = True
        else:
            want = "a propagation" if kind == "bind" else "nocopy"
            raise InvalidArgument(f"{what}: option {option!r}: want ro, rw or {want}")
    return MountSpec(kind, destination, source, readonly, propagation, volume_nocopy=nocopy)


def _check_volume_name(name: str, what: str) -> None:
    from ctl.volumes import check_name

    try:
        check_name(name)
    except InvalidArgument as err:
        raise InvalidArgument(
            f"{what}: {err} (a bind mount's source is an absolute path)"
        ) from None


def parse_mount(value: str) -> MountSpec:
    """parse_mount reads ``--mount`` as docker does: comma-separated key=value fields.

    Keys: type (volume, the default, bind or tmpfs), source|src (a volume's
    name, none for an anonymous one; a bind's absolute host path),
    destination|dst|target, readonly|ro (alone or =true/false),
    bind-propagation, volume-nocopy (alone or =true/false), volume-opt=K=V
    (repeated; the options of a volume it creates), volume-driver (local),
    tmpfs-size (a size as ``parse_memory`` reads it), tmpfs-mode (octal).
    """
    import csv

    what = f"invalid --mount {value!r}"
    try:
        fields = next(csv.reader([value]), [])
    except csv.Error as err:
        raise InvalidArgument(f"{what}: {err}") from err
    kind, source, destination, readonly, propagation = "volume", "", "", False, ""
    size: int | None = None
    mode: int | None = None
    nocopy = False
    volume_options: dict[str, str] = {}
    for field in fields:
        key, sep, val = field.partition("=")
        key = key.strip().lower()
        if key in ("readonly", "ro"):
            readonly = _parse_bool(val, what) if sep else True
        elif key == "volume-nocopy":
            nocopy = _parse_bool(val, what) if sep else True
        elif not sep:
            raise InvalidArgument(f"{what}: field {field!r} must be key=value")
        elif key == "type":
            kind = val
        elif key in ("source", "src"):
            source = val
        elif key in ("destination", "dst", "target"):
            destination = val
        elif key == "bind-propagation":
            if val not in PROPAGATIONS:
                raise InvalidArgument(f"{what}: unknown bind-propagation {val!r}")
            propagation = val
        elif key == "tmpfs-size":
            size = parse_memory(val)
        elif key == "tmpfs-mode":
            if not re.fullmatch(r"[0-7]{1,4}", val):
                raise InvalidArgument(f"{what}: tmpfs-mode {val!r} is not an octal mode")
            mode = int(val, 8)
        elif key == "volume-opt":
            option, eq, option_value = val.partition("=")
            if not option or not eq:
                raise InvalidArgument(f"{what}: volume-opt {val!r} must be KEY=VALUE")
            volume_options[option] = option_value
        elif key == "volume-driver":
            if val != "local":
                raise InvalidArgument(f"{what}: volume-driver {val!r}: only local is supported")
        else:
            raise InvalidArgument(f"{what}: unknown key {key!r}")
    if kind not in ("bind", "tmpfs", "volume"):
        raise InvalidArgument(f"{what}: unknown type {kind!r} (want volume, bind or tmpfs)")
    _check_destination(destination, f"--mount {value!r}")
    if kind != "volume" and (nocopy or volume_options):
        raise InvalidArgument(f"{what}: volume-nocopy and volume-opt are for type=volume")
    if kind != "tmpfs" and (size is not None or mode is not None):
        raise InvalidArgument(f"{what}: tmpfs-size and tmpfs-mode are for type=tmpfs")
    if kind != "bind" and propagation:
        raise InvalidArgument(f"{what}: bind-propagation is for type=bind")
    if kind == "volume":
        if source:
            _check_volume_name(source, what)
        if volume_options:
            from ctl.volumes import check_options

            check_options(volume_options)
        return MountSpec(
            "volume",
            destination,
            source,
            readonly,
            volume_nocopy=nocopy,
            volume_options=volume_options,
        )
    if kind == "bind":
        if not source.startswith("/"):
            raise InvalidArgument(f"{what}: a bind mount needs an absolute source path")
        return MountSpec("bind", destination, source, readonly, propagation)
    if source:
        raise InvalidArgument(f"{what}: a tmpfs mount takes no source")
    return MountSpec("tmpfs", destination, readonly=readonly, tmpfs_size=size, tmpfs_mode=mode)


def _parse_bool(value: str, what: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true"):
        return True
    if lowered in ("0", "false"):
        return False
    raise InvalidArgument(f"{what}: {value!r} is not true or false")


def _check_destination(destination: str, what: str) -> None:
    if not destination.startswith("/"):
        raise InvalidArgument(f"invalid {what}: the destination must be an absolute path")
    if os.path.normpath(destination) == "/":
        raise InvalidArgument(f"invalid {what}: the destination cannot be /")


def parse_publish(value: str) -> PortMapping:
    """parse_publish reads ``-p [IP:]HOST:CTR[/PROTO]``; IPv6 addresses go in brackets.

    Ports are 1 to 65535, PROTO is tcp (the default) or udp. Port ranges and
    a missing host port (docker's random port) are not supported.
    """
    import ipaddress

    what = f"invalid port mapping {value!r}"
    rest, _, protocol = value.partition("/")
    protocol = protocol.lower() or "tcp"
    if protocol not in ("tcp", "udp"):
        raise InvalidArgument(f"{what}: protocol must be tcp or udp")
    host_ip = ""
    if rest.startswith("["):
        host_ip, sep, rest = rest[1:].partition("]:")
        if not sep:
            raise InvalidArgument(f"{what}: want [IPv6]:HOST:CTR")
    elif rest.count(":") == 2:
        host_ip, rest = rest.split(":", 1)
    host, sep, container = rest.partition(":")
    if not sep:
        raise InvalidArgument(f"{what}: want [IP:]HOST:CTR[/tcp|udp]")
    if host_ip:
        try:
            host_ip = str(ipaddress.ip_address(host_ip))
        except ValueError as err:
            raise InvalidArgument(f"{what}: {host_ip!r} is not an IP address") from err
    return PortMapping(host_ip, _port(host, what), _port(container, what), protocol)


def _is_number(value: str) -> bool:
    """_is_number is True for ASCII decimal digits only (str.isdigit also takes "²")."""
    return value.isascii() and value.isdigit()


def _port(value: str, what: str) -> int:
    if not _is_number(value) or not 1 <= int(value) <= 65535:
        raise InvalidArgument(f"{what}: port {value!r} is not a number from 1 to 65535")
    return int(value)


def parse_restart(value: str) -> RestartPolicy:
    """parse_restart reads ``--restart no|always|on-failure[:N]|unless-stopped``."""
    name, sep, retries = value.partition(":")
    if name not in RESTART_POLICIES:
        raise InvalidArgument(
            f"invalid restart policy {value!r}: want no, always, on-failure[:N] or unless-stopped"
        )
    if not sep:
        return RestartPolicy(name)
    if name != "on-failure" or not _is_number(retries):
        raise InvalidArgument(
            f"invalid restart policy {value!r}: only on-failure takes a count, as on-failure:N"
        )
    return RestartPolicy("on-failure", int(retries))


def parse_signal(value: str) -> int:
    """parse_signal reads a signal as ``SIGTERM``, ``term``, ``15`` or ``RTMIN+3``."""
    what = f"invalid signal {value!r}"
    if _is_number(value):
        number = int(value)
    else:
        name = value.upper().removeprefix("SIG")
        base, sign, offset = name.partition("+") if "+" in name else name.partition("-")
        if base in ("RTMIN", "RTMAX") and sign:
            if not _is_number(offset):
                raise InvalidArgument(what)
            start = signal.SIGRTMIN if base == "RTMIN" else signal.SIGRTMAX
            number = start + int(offset) if sign == "+" else start - int(offset)
            if not signal.SIGRTMIN <= number <= signal.SIGRTMAX:
                raise InvalidArgument(f"{what}: outside SIGRTMIN..SIGRTMAX")
        else:
            try:
                number = signal.Signals["SIG" + name].value
            except KeyError as err:
                raise InvalidArgument(what) from err
    if not 1 <= number <= signal.SIGRTMAX:
        raise InvalidArgument(f"{what}: want a number from 1 to {int(signal.SIGRTMAX)}")
    return number


def parse_security_opt(values: Sequence[str]) -> SecurityOptions:
    """parse_security_opt reads ``--security-opt`` values.

    Supported: ``no-new-privileges`` (alone, or ``:true``/``=false`` and the
    like) and ``seccomp=unconfined``. Any other option is refused rather than
    silently ignored, since a user who asks for a restriction must not go
    without it.
    """
    no_new_privileges = seccomp_unconfined = False
    for value in values:
        key, sep, val = value.partition("=") if "=" in value else value.partition(":")
        if key == "no-new-privileges":
            what = f"invalid --security-opt {value!r}"
            no_new_privileges = _parse_bool(val, what) if sep else True
        elif key == "seccomp" and val == "unconfined":
            seccomp_unconfined = True
        else:
            raise InvalidArgument(
                f"unsupported --security-opt {value!r}: "
                "want no-new-privileges[:true|false] or seccomp=unconfined"
            )
    return SecurityOptions(no_new_privileges, seccomp_unconfined)


def parse_user(value: str) -> UserSpec:
    """parse_user reads ``-u`` and an image's User: ``name``, ``uid``, ``name:group``, ``uid:gid``.

    Names are looked up later in the container's /etc/passwd and /etc/group
    (``ctl.runtime.users``); numbers must be 0 to 2**31-1.
    """
    user, sep, group = value.partition(":")
    for part in (user, group) if sep else (user,):
        if not part or ":" in part or any(c.isspace() or not c.isprintable() for c in part):
            raise InvalidArgument(f"invalid user {value!r}: want name|uid[:group|gid]")
        if _is_number(part) and int(part) > MAX_ID:
            raise InvalidArgument(f"invalid user {value!r}: {part} is above {MAX_ID}")
    return UserSpec(user, group if sep else None)


# Storage: volumes.


def parse_volumes_from(value: str) -> tuple[str, str]:
    """parse_volumes_from reads ``--volumes-from CONTAINER[:ro|rw]``: (container, mode).

    The mode "" keeps each mount's own; ro or rw sets every one.
    """
    container, sep, mode = value.partition(":")
    if not container or (sep and mode not in ("ro", "rw")):
        raise InvalidArgument(f"invalid --volumes-from {value!r}: want CONTAINER[:ro|rw]")
    return container, mode
