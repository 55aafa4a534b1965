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
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from ctl.containers.container import MountSpec, PortMapping, RestartPolicy
from ctl.errdefs import InvalidArgument

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

# runc refuses ids above MaxInt32 (containerd follows it), so do we.
MAX_ID = 2**31 - 1
# Where the kernel shows SELinux when it has it on.
SELINUX_ENFORCE = "/sys/fs/selinux/enforce"
PROPAGATIONS = frozenset({"private", "rprivate", "shared", "rshared", "slave", "rslave"})
RESTART_POLICIES = frozenset({"no", "always", "on-failure", "unless-stopped"})

# Patterns of flag values, compiled on first use (re keeps them): compiling them all
# cost every run 0.6 ms, for flags that most runs do not give.
_MEMORY = r"(?i)(\d+(?:\.\d+)?) ?([bkmgtp])?(?:i?b)?"
_MEMORY_UNITS = {
    "": 1,
    "b": 1,
    "k": 1 << 10,
    "m": 1 << 20,
    "g": 1 << 30,
    "t": 1 << 40,
    "p": 1 << 50,
}


class SecurityOptions(NamedTuple):
    """SecurityOptions is what the ``--security-opt`` values asked for, together."""

    no_new_privileges: bool = False
    seccomp_unconfined: bool = False
    # A docker-format profile from seccomp=FILE (``ctl.runtime.seccomp``); None: the default.
    seccomp_profile: dict[str, Any] | None = None
    # apparmor=PROFILE or unconfined; None: ctl's default profile where AppArmor is on.
    apparmor: str | None = None
    # systempaths=unconfined: no masked or read-only paths under /proc and /sys.
    systempaths_unconfined: bool = False


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
    match = re.fullmatch(_MEMORY, value.strip())
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
    list of ro, rw, nocopy (volumes), a propagation (binds) and z or Z
    (``check_relabel``).
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
        elif option in ("z", "Z"):
            check_relabel(f"{what}: option {option!r}")
        else:
            want = "a propagation" if kind == "bind" else "nocopy"
            raise InvalidArgument(f"{what}: option {option!r}: want ro, rw, z, Z or {want}")
    return MountSpec(kind, destination, source, readonly, propagation, volume_nocopy=nocopy)


def check_relabel(what: str) -> None:
    """check_relabel accepts ``-v``'s z and Z (relabel the source for SELinux) where they
    change nothing, as in docker: on a host without SELinux. With SELinux on they would
    need the container's label, and ctl applies none (see ``parse_security_opt``), so
    they are refused rather than ignored."""
    if os.path.exists(SELINUX_ENFORCE):
        raise InvalidArgument(
            f"{what}: ctl applies no SELinux labels, so it cannot relabel the source",
            hint="label the source yourself (chcon -Rt container_file_t PATH)",
        )


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


def parse_publish(value: str) -> tuple[PortMapping, ...]:
    """parse_publish reads docker's ``-p [[IP:][HOST]:]CTR[/PROTO]``; IPv6 addresses go in
    brackets. HOST and CTR may be ranges of one length (``8080-8081:80-81``).

    Ports are 1 to 65535, PROTO is tcp (the default) or udp. A HOST left out
    (``-p 80``, ``-p 127.0.0.1::80``) is 0: docker's random host port, which
    the create picks (``ctl.network.ports.assign_free``). A HOST range for one
    CTR port (docker lets the daemon pick in it) is not supported.
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
    host, sep, container = rest.rpartition(":")
    if host_ip:
        try:
            host_ip = str(ipaddress.ip_address(host_ip))
        except ValueError as err:
            raise InvalidArgument(f"{what}: {host_ip!r} is not an IP address") from err
    containers = _port_range(container, what)
    hosts = _port_range(host, what) if host else [0] * len(containers)
    if len(hosts) != len(containers):
        raise InvalidArgument(f"{what}: the host and container ranges must be of one length")
    return tuple(
        PortMapping(host_ip, h, c, protocol) for h, c in zip(hosts, containers, strict=True)
    )


def _port_range(value: str, what: str) -> list[int]:
    """_port_range reads ``PORT`` or ``FIRST-LAST``."""
    first, sep, last = value.partition("-")
    if not sep:
        return [_port(value, what)]
    low, high = _port(first, what), _port(last, what)
    if low > high:
        raise InvalidArgument(f"{what}: the range {value!r} ends before it starts")
    return list(range(low, high + 1))


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
    like), ``seccomp=unconfined|builtin|FILE.json`` (a profile in docker's
    format, read now), ``apparmor=PROFILE|unconfined``,
    ``systempaths=unconfined`` and ``label=disable`` (ctl applies no SELinux
    label: nothing to disable). Any other option is refused rather than
    silently ignored, since a user who asks for a restriction (an SELinux
    ``label=type:...``, say) must not go without it.
    """
    options = SecurityOptions()
    for value in values:
        key, sep, val = value.partition("=") if "=" in value else value.partition(":")
        if key == "no-new-privileges":
            what = f"invalid --security-opt {value!r}"
            options = options._replace(no_new_privileges=_parse_bool(val, what) if sep else True)
        elif key == "seccomp" and val:
            options = options._replace(**_seccomp_option(val))
        elif key == "apparmor" and val:
            options = options._replace(apparmor=val)
        elif key == "systempaths" and val == "unconfined":
            options = options._replace(systempaths_unconfined=True)
        elif not (key == "label" and val == "disable"):
            raise InvalidArgument(
                f"unsupported --security-opt {value!r}: want no-new-privileges[:true|false], "
                "seccomp=unconfined|FILE.json, apparmor=PROFILE|unconfined, "
                "systempaths=unconfined or label=disable"
            )
    return options


def _seccomp_option(value: str) -> dict[str, Any]:
    if value == "unconfined":
        return {"seccomp_unconfined": True, "seccomp_profile": None}
    if value == "builtin":
        return {"seccomp_unconfined": False, "seccomp_profile": None}
    from ctl.runtime.seccomp import load_profile

    return {"seccomp_unconfined": False, "seccomp_profile": load_profile(value)}


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


# Network and lifecycle flags of one container (netl): --add-host, --dns*, --mac-address,
# --ip, --expose, --stop-timeout, --label-file, --annotation, --tmpfs, -a, --detach-keys.

# --add-host NAME:host-gateway stands for the host's address, as in docker.
HOST_GATEWAY = "host-gateway"
# docker's --tmpfs options, before the user's: a user's "exec" overrides "noexec".
TMPFS_DEFAULT_OPTIONS = ("rw", "noexec", "nosuid", "nodev")
ATTACH_STREAMS = ("stdin", "stdout", "stderr")
_DOMAIN_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_MAC = r"[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}"


def parse_ip(value: str, version: int | None = None) -> str:
    """parse_ip reads an IP address (only IPv4 or IPv6 with ``version``), as canonical text."""
    import ipaddress

    try:
        address = ipaddress.ip_address(value.removeprefix("[").removesuffix("]"))
    except ValueError:
        address = None
    if address is None or version not in (None, address.version):
        kind = f"an IPv{version}" if version else "an IP"
        raise InvalidArgument(f"{value!r} is not {kind} address")
    return str(address)


def parse_add_host(value: str) -> tuple[str, str]:
    """parse_add_host reads ``--add-host NAME:IP`` (or ``NAME=IP``) as docker does.

    IP is an IPv4 or IPv6 address (in brackets or not) or ``host-gateway``.
    """
    import ipaddress

    name, sep, address = value.partition("=")
    if not sep:
        name, sep, address = value.partition(":")
    what = f"invalid host {value!r}: want NAME:IP"
    if not sep or not name or any(c.isspace() for c in name):
        raise InvalidArgument(what)
    if address == HOST_GATEWAY:
        return name, address
    try:
        return name, str(ipaddress.ip_address(address.removeprefix("[").removesuffix("]")))
    except ValueError:
        raise InvalidArgument(f"{what}: {address!r} is not an IP address or host-gateway") from None


def parse_dns_search(value: str) -> str:
    """parse_dns_search reads one ``--dns-search`` domain; ``.`` means no search domain."""
    if value == ".":
        return value
    domain = value.removesuffix(".")
    labels = domain.split(".")
    if len(domain) > 253 or not all(re.fullmatch(_DOMAIN_LABEL, label) for label in labels):
        raise InvalidArgument(f"{value!r} is not a valid domain")
    return domain


def parse_dns_option(value: str) -> str:
    """parse_dns_option reads one ``--dns-option`` (resolv.conf's ``options``: ndots:2, ...)."""
    if not value or any(c.isspace() or not c.isprintable() for c in value):
        raise InvalidArgument(f"invalid DNS option {value!r}: want one word, as ndots:2")
    return value


def parse_domainname(value: str) -> str:
    """parse_domainname reads ``--domainname``: a domain, as the kernel takes (64 bytes)."""
    if len(value.encode()) > 64 or not all(
        re.fullmatch(_DOMAIN_LABEL, p) for p in value.split(".")
    ):
        raise InvalidArgument(f"{value!r} is not a valid domain name")
    return value


def parse_mac_address(value: str) -> str:
    """parse_mac_address reads ``--mac-address``: a unicast Ethernet address, 6 hex pairs."""
    if not re.fullmatch(_MAC, value):
        raise InvalidArgument(f"{value!r} is not a MAC address (want 02:42:ac:11:00:02)")
    mac = value.replace("-", ":").lower()
    if int(mac[:2], 16) & 1:
        raise InvalidArgument(f"{value!r} is a multicast address: a container needs a unicast one")
    return mac


def parse_expose(value: str) -> list[str]:
    """parse_expose reads ``--expose PORT[/PROTO]`` or ``START-END[/PROTO]``: ``["80/tcp"]``."""
    ports, _, protocol = value.partition("/")
    protocol = protocol.lower() or "tcp"
    what = f"invalid port {value!r}"
    if protocol not in ("tcp", "udp"):
        raise InvalidArgument(f"{what}: protocol must be tcp or udp")
    first, sep, last = ports.partition("-")
    start = _port(first, what)
    end = _port(last, what) if sep else start
    if end < start:
        raise InvalidArgument(f"{what}: the range ends before it starts")
    return [f"{port}/{protocol}" for port in range(start, end + 1)]


def parse_stop_timeout(value: str) -> int:
    """parse_stop_timeout reads ``--stop-timeout`` seconds; -1 waits for ever, as docker's."""
    try:
        seconds = int(value)
    except ValueError:
        seconds = -2
    if seconds < -1:
        raise InvalidArgument(f"invalid --stop-timeout {value!r}: want seconds (-1: no limit)")
    return seconds


def parse_label_file(path: str) -> list[str]:
    """parse_label_file reads ``--label-file``: KEY=VALUE lines; blank and # lines are skipped."""
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8").removeprefix("\ufeff")
    except OSError as err:
        raise InvalidArgument(f"label file {path}: {err.strerror}") from err
    except UnicodeDecodeError as err:
        raise InvalidArgument(f"label file {path}: not UTF-8 text") from err
    lines = [line.removesuffix("\r").strip() for line in text.split("\n")]
    return [line for line in lines if line and not line.startswith("#")]


def parse_annotations(values: Sequence[str]) -> dict[str, str]:
    """parse_annotations reads ``--annotation KEY=VALUE`` values (OCI annotations)."""
    annotations: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key or any(c.isspace() for c in key):
            raise InvalidArgument(f"invalid annotation {value!r}: want KEY=VALUE")
        annotations[key] = val
    return annotations


def parse_tmpfs(value: str) -> tuple[str, tuple[str, ...]]:
    """parse_tmpfs reads ``--tmpfs PATH[:OPTIONS]``: the destination and its mount options.

    Options are mount(8)'s, comma-separated, after docker's defaults
    (TMPFS_DEFAULT_OPTIONS), which a later option overrides (``exec``).
    """
    destination, _, options = value.partition(":")
    _check_destination(destination, f"--tmpfs {value!r}")
    given = [o for o in options.split(",") if o] if options else []
    for option in given:
        if any(c.isspace() or not c.isprintable() for c in option):
            raise InvalidArgument(f"invalid --tmpfs {value!r}: bad option {option!r}")
        key, sep, size = option.partition("=")
        if key == "size" and sep:
            parse_memory(size)
    return os.path.normpath(destination), _merge_mount_options(TMPFS_DEFAULT_OPTIONS, given)


# Pairs of mount options that cancel each other: the later one wins.
_OPPOSITE_OPTIONS = {
    "ro": "rw",
    "exec": "noexec",
    "suid": "nosuid",
    "dev": "nodev",
    "atime": "noatime",
}
_OPPOSITE_OPTIONS |= {b: a for a, b in _OPPOSITE_OPTIONS.items()}


def _merge_mount_options(defaults: Sequence[str], given: Sequence[str]) -> tuple[str, ...]:
    merged: list[str] = []
    for option in (*defaults, *given):
        key = option.partition("=")[0]
        opposite = _OPPOSITE_OPTIONS.get(option)
        merged = [o for o in merged if o not in (opposite, option) and o.partition("=")[0] != key]
        merged.append(option)
    return tuple(merged)


def parse_attach(values: Sequence[str]) -> frozenset[str]:
    """parse_attach reads ``-a STDIN|STDOUT|STDERR`` values (any case)."""
    streams = {value.lower() for value in values}
    unknown = sorted(streams - set(ATTACH_STREAMS))
    if unknown:
        raise InvalidArgument(f"invalid stream {unknown[0]!r}: want stdin, stdout or stderr")
    return frozenset(streams)


def parse_detach_keys(value: str) -> bytes:
    """parse_detach_keys reads docker's ``--detach-keys``: ``ctrl-p,ctrl-q``, ``a``, ``ctrl-@``.

    A key is one ASCII letter or punctuation, or ``ctrl-X`` for X a letter
    or one of ``@[\\]^_``; the result is the bytes the terminal sends.
    """
    keys = bytearray()
    for key in value.split(","):
        lowered = key.lower()
        if len(key) == 1 and key.isascii() and key.isprintable() and key != ",":
            keys.append(ord(key))
        elif lowered.startswith("ctrl-") and len(key) == 6:
            char = lowered[5]
            if "a" <= char <= "z":
                keys.append(ord(char) - ord("a") + 1)
            elif char in "@[\\]^_":
                keys.append(ord(char) - ord("@"))
            else:
                raise InvalidArgument(
                    f"invalid detach key {key!r}: ctrl- takes a-z, @, [, \\, ], ^ or _"
                )
        else:
            raise InvalidArgument(f"invalid detach key {key!r}: want a character or ctrl-X")
    return bytes(keys)


# Resources, devices and namespaces (issue 11, groups 2 to 4).

# docker's --ulimit names (go-units), each an RLIMIT_ of the same name in capitals.
# fmt: off
ULIMITS = frozenset((
    "as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile",
    "nproc", "rss", "rtprio", "rttime", "sigpending", "stack",
))
# fmt: on
# Namespaced sysctls docker allows (opts.ValidateSysctl): these IPC ones, and prefixes.
IPC_SYSCTLS = frozenset(
    (
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    )
)  # fmt: skip
IPC_SYSCTL_PREFIX, NET_SYSCTL_PREFIX = "fs.mqueue.", "net."
CAP_SYS_RESOURCE = 24
# RLIM_INFINITY: docker's -1.
RLIM_INFINITY = 2**64 - 1
# Patterns compiled (and cached by re) when first used: each costs start-up time.
_DEVICE_MODE = r"(?!.*(.).*\1)[rwm]{1,3}"
_DEVICE_RULE = r"([acb]) (\d+|\*):(\d+|\*) ([rwm]{1,3})"
# A CDI device name: vendor.com/class=name (the CDI spec's qualified name).
_CDI_NAME = r"[A-Za-z0-9][A-Za-z0-9.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*=[A-Za-z0-9][A-Za-z0-9_.:-]*"


class Ulimit(NamedTuple):
    """Ulimit is one ``--ulimit``: an RLIMIT_ name and its soft and hard values."""

    type: str
    soft: int
    hard: int


class DeviceMapping(NamedTuple):
    """DeviceMapping is one ``--device HOST[:CTR][:rwm]``."""

    host_path: str
    container_path: str
    permissions: str = "rwm"


class DeviceRule(NamedTuple):
    """DeviceRule is one ``--device-cgroup-rule 'c 1:3 mr'``; None is ``*`` (any)."""

    type: str
    major: int | None
    minor: int | None
    access: str


class NamespaceMode(NamedTuple):
    """NamespaceMode is ``--pid``, ``--ipc``, ``--uts``: ``host``, ``container`` or private.

    ``container`` is the container's id (resolved from ``container:NAME``).
    """

    mode: str
    container: str = ""


def parse_int(value: str, flag: str) -> int:
    """parse_int reads a decimal integer, optionally negative, as docker's int flags do."""
    digits = value.strip().removeprefix("-")
    if not (digits.isascii() and digits.isdigit()):
        raise InvalidArgument(f"invalid {flag} {value!r}: want a whole number")
    return int(value)


def parse_memory_swap(value: str) -> int:
    """parse_memory_swap reads ``--memory-swap``: a size (memory plus swap), or -1 for unlimited."""
    return -1 if value.strip() == "-1" else parse_memory(value)


def parse_device_rate(value: str, flag: str) -> tuple[str, int, int, int]:
    """parse_device_rate reads ``PATH:RATE`` for the blkio flags: (path, major, minor, rate).

    RATE is a size (``1mb``) for the -bps flags and a whole number for the
    others; PATH must be a block device of this host.
    """
    import stat

    path, sep, rate_text = value.rpartition(":")
    if not sep or not path.startswith("/"):
        raise InvalidArgument(f"invalid {flag} {value!r}: want /dev/DEVICE:RATE")
    rate = parse_memory(rate_text) if flag.endswith("-bps") else parse_int(rate_text, flag)
    if rate < 0:
        raise InvalidArgument(f"invalid {flag} {value!r}: the rate cannot be negative")
    try:
        st = os.stat(path)
    except OSError as err:
        raise InvalidArgument(f"invalid {flag} {value!r}: {path}: {err.strerror}") from None
    if not stat.S_ISBLK(st.st_mode):
        raise InvalidArgument(f"invalid {flag} {value!r}: {path} is not a block device")
    return path, os.major(st.st_rdev), os.minor(st.st_rdev), rate


def parse_ulimit(value: str) -> Ulimit:
    """parse_ulimit reads ``--ulimit NAME=SOFT[:HARD]`` (docker's names; -1 is unlimited).

    A limit above this process's own hard limit is refused unless it holds
    CAP_SYS_RESOURCE: runc could not raise it, and the container would not start.
    """
    import resource

    what = f"invalid --ulimit {value!r}"
    name, sep, limits = value.partition("=")
    if name not in ULIMITS:
        raise InvalidArgument(f"{what}: unknown limit {name!r}", hint="see `ulimit -a`")
    soft_text, _, hard_text = limits.partition(":")
    if not sep or not soft_text:
        raise InvalidArgument(f"{what}: want NAME=SOFT[:HARD]")
    soft = _rlimit(soft_text, what)
    hard = _rlimit(hard_text, what) if hard_text else soft
    if soft > hard:
        raise InvalidArgument(f"{what}: the soft limit is above the hard limit")
    kind = "RLIMIT_" + name.upper()
    number = getattr(resource, kind, None)
    if number is not None and not _holds_capability(CAP_SYS_RESOURCE):
        own = resource.getrlimit(number)[1]
        if own != resource.RLIM_INFINITY and hard > own:
            raise InvalidArgument(
                f"{what}: above this process's hard limit of {own}",
                hint="raising it needs CAP_SYS_RESOURCE; see `ulimit -H`",
            )
    return Ulimit(kind, soft, hard)


def _rlimit(text: str, what: str) -> int:
    if text == "-1":
        return RLIM_INFINITY
    if not (text.isascii() and text.isdigit()):
        raise InvalidArgument(f"{what}: want a number of 0 or more, or -1 for unlimited")
    return int(text)


def _holds_capability(number: int) -> bool:
    with open("/proc/self/status", encoding="ascii") as f:
        line = next(line for line in f if line.startswith("CapEff:"))
    return bool(int(line.split()[1], 16) >> number & 1)


def parse_oom_score_adj(value: str) -> int:
    """parse_oom_score_adj reads -1000 to 1000; below our own it needs CAP_SYS_RESOURCE."""
    score = parse_int(value, "--oom-score-adj")
    if not -1000 <= score <= 1000:
        raise InvalidArgument(f"invalid --oom-score-adj {value!r}: want -1000 to 1000")
    with open("/proc/self/oom_score_adj", encoding="ascii") as f:
        own = int(f.read())
    if score < own and not _holds_capability(CAP_SYS_RESOURCE):
        raise InvalidArgument(
            f"invalid --oom-score-adj {value!r}: below this process's own ({own})",
            hint="lowering it needs CAP_SYS_RESOURCE",
        )
    return score


def parse_sysctls(values: Sequence[str], network: str, ipc: str) -> dict[str, str]:
    """parse_sysctls reads ``--sysctl KEY=VALUE``: only namespaced sysctls, as docker allows.

    IPC ones (IPC_SYSCTLS, ``fs.mqueue.*``) need the container's own IPC
    namespace, ``net.*`` its own network namespace.
    """
    sysctls: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        what = f"invalid --sysctl {value!r}"
        if not sep or not key:
            raise InvalidArgument(f"{what}: want KEY=VALUE")
        if key in IPC_SYSCTLS or key.startswith(IPC_SYSCTL_PREFIX):
            if ipc == "host" or ipc.startswith("container:"):
                raise InvalidArgument(f"{what}: not allowed with --ipc {ipc}")
        elif key.startswith(NET_SYSCTL_PREFIX):
            if network == "host":
                raise InvalidArgument(f"{what}: not allowed with --net host")
        else:
            raise InvalidArgument(
                f"{what}: not a namespaced sysctl",
                hint="allowed: kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*, net.*",
            )
        sysctls[key] = val
    return sysctls


def is_cdi_name(value: str) -> bool:
    """is_cdi_name is whether ``value`` is a CDI device name, ``vendor.com/class=name``."""
    return re.fullmatch(_CDI_NAME, value) is not None


def parse_device(value: str) -> DeviceMapping:
    """parse_device reads ``--device HOST[:CTR][:rwm]`` as docker does; HOST must exist.

    A second field that is a mode (``r``, ``rw``, ``rwm``...) is the mode, not CTR.
    """
    what = f"invalid --device {value!r}"
    parts = value.split(":")
    if not 1 <= len(parts) <= 3 or not parts[0]:
        raise InvalidArgument(f"{what}: want HOST[:CTR][:rwm]")
    host, container, permissions = parts[0], "", "rwm"
    if len(parts) == 3:
        container, permissions = parts[1], parts[2]
    elif len(parts) == 2:
        if re.fullmatch(_DEVICE_MODE, parts[1]):
            permissions = parts[1]
        else:
            container = parts[1]
    if not re.fullmatch(_DEVICE_MODE, permissions):
        raise InvalidArgument(f"{what}: the mode {permissions!r} is not made of r, w and m")
    container = container or host
    for path in (host, container):
        if not path.startswith("/"):
            raise InvalidArgument(f"{what}: {path!r} is not an absolute path")
    if not os.path.exists(host):
        raise InvalidArgument(f"{what}: {host}: no such file or directory")
    return DeviceMapping(host, container, permissions)


def parse_device_cgroup_rule(value: str) -> DeviceRule:
    """parse_device_cgroup_rule reads ``TYPE MAJOR:MINOR ACCESS``: ``c 42:* rmw``, ``a *:* r``."""
    match = re.fullmatch(_DEVICE_RULE, value.strip())
    if match is None or not re.fullmatch(_DEVICE_MODE, match[4]):
        raise InvalidArgument(
            f"invalid --device-cgroup-rule {value!r}: want TYPE MAJOR:MINOR ACCESS, c 1:3 rwm"
        )
    kind, major, minor, access = match.groups()
    return DeviceRule(
        kind,
        None if major == "*" else int(major),
        None if minor == "*" else int(minor),
        access,
    )


def parse_gpus(value: str) -> list[str]:
    """parse_gpus reads ``--gpus`` as CDI names of ``nvidia.com/gpu``, as docker does with CDI.

    ``all``; a count N (the first N GPUs, 0 to N-1); or docker's CSV options,
    ``device=0,2`` (ids or UUIDs), ``count=N``, ``capabilities=...`` and
    ``driver=nvidia`` (capabilities are left to the CDI spec).
    """
    import csv

    what = f"invalid --gpus {value!r}"
    if value == "all":
        return ["nvidia.com/gpu=all"]
    if value.isascii() and value.isdigit():
        return [f"nvidia.com/gpu={n}" for n in range(int(value))]
    devices: list[str] = []
    for field in next(csv.reader([value]), []):
        key, _, val = field.partition("=")
        if key == "device":
            devices += val.split(",")
        elif key == "count":
            count = ["all"] if val == "all" else range(parse_int(val, "--gpus"))
            devices += [str(n) for n in count]
        elif key == "driver" and val not in ("", "nvidia", "cdi"):
            raise InvalidArgument(f"{what}: only the nvidia driver's CDI devices are supported")
        elif key not in ("driver", "capabilities"):
            raise InvalidArgument(f"{what}: want all, N, or '\"device=ID[,ID]\"'")
    if not devices:
        return ["nvidia.com/gpu=all"]
    return [f"nvidia.com/gpu={d}" for d in devices]


def parse_namespace_mode(flag: str, value: str, modes: Sequence[str]) -> NamespaceMode:
    """parse_namespace_mode reads ``--pid``, ``--ipc``, ``--uts``, ``--userns``.

    ``modes`` are the words the flag takes; ``container`` among them allows
    ``container:NAME`` (NAME is left to the caller to resolve). "" is the default.
    """
    mode, sep, name = value.partition(":")
    if sep and mode == "container" and "container" in modes and name:
        return NamespaceMode("container", name)
    if sep or (value and value not in modes):
        words = [f"{m}:NAME" if m == "container" else m for m in modes]
        raise InvalidArgument(f"invalid {flag} {value!r}: want {' or '.join(words)}")
    return NamespaceMode(value)


def parse_cgroup_parent(value: str) -> str:
    """parse_cgroup_parent reads ``--cgroup-parent``: a cgroup path, made absolute.

    As docker with its cgroupfs driver, ``foo.slice`` is a directory like any
    other; a relative path is taken from the hierarchy's root (runc would
    take it from the caller's cgroup, which for ctl is a supervisor's).
    """
    import posixpath

    path = posixpath.normpath("/" + value.strip().lstrip("/"))
    if not value.strip() or path == "/" or ".." in value.split("/") or ":" in value:
        raise InvalidArgument(f"invalid --cgroup-parent {value!r}: want a cgroup path, /my/group")
    return path


# Logging and health checks (logh).

_DURATION_PART = r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)"
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_LOG_OPTS = ("max-size", "max-file", "compress")

if TYPE_CHECKING:
    from ctl.runtime.health import HealthConfig
    from ctl.runtime.logs import LogConfig


def parse_duration(value: str) -> float:
    """parse_duration reads a Go duration as docker takes it (``1m30s``, ``500ms``, ``0``)
    into seconds. A number without a unit is refused, as Go refuses it."""
    text = value.strip()
    sign, body = (-1.0, text[1:]) if text[:1] == "-" else (1.0, text.removeprefix("+"))
    if body == "0":
        return 0.0
    total, position = 0.0, 0
    while position < len(body):
        match = re.compile(_DURATION_PART).match(body, position)
        if match is None:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if not body or position != len(body):
        hint = "missing unit" if _is_number(body) else "want a number with a unit"
        raise InvalidArgument(f"invalid duration {value!r}: {hint} (e.g. 30s, 1m30s, 500ms)")
    return sign * total


def parse_log_driver(name: str) -> str:
    """parse_log_driver checks ``--log-driver``: json-file, local or none."""
    from ctl.runtime.logs import DRIVERS

    if name not in DRIVERS:
        raise InvalidArgument(
            f"unsupported logging driver {name!r}: use json-file, local or none",
            hint="syslog, journald and the other drivers ship logs to a daemon: "
            "ctl keeps them on the host",
        )
    return name


def parse_log_opts(driver: str, opts: Sequence[str]) -> LogConfig:
    """parse_log_opts reads ``--log-opt KEY=VALUE``s (max-size, max-file, compress) for ``driver``.

    What is not given keeps the driver's default, each bounding the disk:
    json-file 10m x 3 files, local docker's 20m x 5, compressed.
    """
    from ctl.runtime.logs import LOCAL_MAX_FILES, LOCAL_MAX_SIZE, LogConfig

    config = LogConfig(driver=driver)
    if driver == "local":
        config = config._replace(max_size=LOCAL_MAX_SIZE, max_files=LOCAL_MAX_FILES, compress=True)
    for opt in opts:
        key, eq, value = opt.partition("=")
        if "," in value:
            raise InvalidArgument(
                f"invalid log opt {opt!r}", hint="give each KEY=VALUE its own --log-opt, as docker"
            )
        if not eq or driver == "none" or key not in _LOG_OPTS:
            raise InvalidArgument(f"unknown log opt {opt!r} for the {driver} log driver")
        if key == "max-size":
            size = parse_memory(value)
            if size <= 0:
                raise InvalidArgument(f"invalid max-size {value!r}: must be above 0")
            config = config._replace(max_size=size)
        elif key == "max-file":
            if not value.isdigit() or int(value) < 1:
                raise InvalidArgument(f"invalid max-file {value!r}: want a number of 1 or more")
            config = config._replace(max_files=int(value))
        else:
            config = config._replace(compress=_parse_bool(value, "compress"))
    return config


def parse_health(
    cmd: str | None,
    durations: Mapping[str, str | None],
    retries: int | None,
    disabled: bool,
) -> HealthConfig | None:
    """parse_health reads the ``--health-*`` flags: ``durations`` maps the
    HealthConfig field (interval, timeout, start_period, start_interval) to
    its flag's value. None when none is given; ``("NONE",)`` for
    ``--no-healthcheck``. What is left empty comes from the image
    (``HealthConfig.merged``).
    """
    from ctl.runtime.health import HealthConfig

    given = {field: value for field, value in durations.items() if value is not None}
    if disabled:
        if cmd is not None or given or retries is not None:
            raise InvalidArgument("--no-healthcheck conflicts with --health-* options")
        return HealthConfig(test=("NONE",))
    if cmd is None and not given and retries is None:
        return None
    seconds: dict[str, float] = {}
    for field, value in given.items():
        flag = "--health-" + field.replace("_", "-")
        try:
            seconds[field] = parse_duration(value)
        except InvalidArgument as err:
            raise InvalidArgument(f"{flag}: {err}") from None
        if seconds[field] < 0:
            raise InvalidArgument(f"{flag} cannot be negative")
        if 0 < seconds[field] < 1e-3:
            raise InvalidArgument(f"{flag} cannot be less than 1ms")
    if retries is not None and retries < 0:
        raise InvalidArgument("--health-retries cannot be negative")
    return HealthConfig(test=("CMD-SHELL", cmd) if cmd else (), retries=retries or 0, **seconds)


# Storage: volumes.


def parse_volumes_from(value: str) -> tuple[str, str]:
    """parse_volumes_from reads ``--volumes-from CONTAINER[:ro|rw]``: (container, mode).

    The mode "" keeps each mount's own; ro or rw sets every one.
    """
    container, sep, mode = value.partition(":")
    if not container or (sep and mode not in ("ro", "rw")):
        raise InvalidArgument(f"invalid --volumes-from {value!r}: want CONTAINER[:ro|rw]")
    return container, mode
