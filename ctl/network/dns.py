"""Name resolution on user networks: aardvark-dns, run while a network has containers.

Containers on a network made with ``network create`` resolve each other by
container name, by ``--network-alias`` and by short id; other names go to
the host's resolvers. The default network has no resolver, as docker's
default bridge has none.

The server is aardvark-dns (podman's, Debian's ``aardvark-dns`` package),
one process per ctl root for all its networks. It reads a directory with a
file per network::

    <root>/cni/dns/<network>         10.91.0.1,fd12:3456:789a::1
                                     <container id> <IPv4s> <IPv6s> <name>,<alias>,<short id>
    <root>/cni/dns/aardvark.pid      its pid, written by aardvark-dns itself

and listens on port 53 of each network's gateway addresses, answering a
query with the names of the network whose address it came to (so networks
stay apart) and forwarding the rest to the host's /etc/resolv.conf. It
detaches itself (``run`` returns once it serves), so it is no daemon of
ctl's and outlives any ctl process; it reloads the files on SIGHUP.

``sync`` makes the directory say what the attachment records say, under
its own lock, and then starts the server if a file is left and it is not
running (a ``kill -9`` of it, or a reboot), signals it to reload if it is,
or stops it if no network has a container. Every attach and detach calls
it, so the next ``run`` repairs a dead server; ``system check`` reports it
(``problems``) and ``--repair`` calls ``sync``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess

from ctl import fsutil
from ctl.errdefs import CtlError, NotFound

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from pathlib import Path
    from typing import Any

    from ctl.paths import Paths

# Debian installs it for podman outside PATH.
AARDVARK_DIRS = ("/usr/lib/podman", "/usr/libexec/podman", "/usr/local/bin", "/usr/bin")
AARDVARK_ENV = "CTL_AARDVARK_DNS"
PORT = 53
PID_FILE = "aardvark.pid"
_START_TIMEOUT = 30


def config_dir(paths: Paths) -> Path:
    from pathlib import Path

    return Path(paths.dns)


def executable() -> str:
    """executable is aardvark-dns: ``$CTL_AARDVARK_DNS`` or the first found in AARDVARK_DIRS."""
    configured = os.environ.get(AARDVARK_ENV)
    candidates = [configured] if configured else [f"{d}/aardvark-dns" for d in AARDVARK_DIRS]
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    raise NotFound(
        "aardvark-dns not found: containers on user networks cannot resolve names",
        hint=f"install the aardvark-dns package, or set {AARDVARK_ENV}",
    )


def entry_line(container_id: str, addresses: Iterable[str], names: Iterable[str]) -> str:
    """entry_line is one container's line: id, IPv4s, IPv6s, names (each comma-separated)."""
    ips = [a.split("/")[0] for a in addresses]
    v4 = ",".join(a for a in ips if ":" not in a)
    v6 = ",".join(a for a in ips if ":" in a)
    unique = list(dict.fromkeys(n for n in names if n))
    return f"{container_id} {v4} {v6} {','.join(unique)}"


def network_file(listen: Iterable[str], lines: Iterable[str]) -> str:
    return "\n".join([",".join(listen), *sorted(lines)]) + "\n"


def _lock(paths: Paths) -> fsutil.FileLock:
    return fsutil.FileLock(paths.lock("dns"), timeout=300, what="the network resolver")


def running_pid(directory: Path) -> int | None:
    """running_pid is the pid of the aardvark-dns serving ``directory``, or None."""
    try:
        pid = int((directory / PID_FILE).read_text().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except (OSError, ValueError):
        return None
    if any(a.endswith(b"aardvark-dns") for a in argv) and str(directory).encode() in argv:
        return pid
    return None


def _start(directory: Path) -> None:
    try:
        done = subprocess.run(
            [executable(), "--config", str(directory), "-p", str(PORT), "run"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=_START_TIMEOUT,
            start_new_session=True,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as err:
        raise CtlError(f"aardvark-dns: cannot start: {err}") from err
    if done.returncode != 0 or running_pid(directory) is None:
        lines = [
            line
            for line in done.stderr.decode(errors="replace").splitlines()
            if "syslog" not in line
        ]
        why = lines[-1] if lines else f"exit status {done.returncode}"
        raise CtlError(f"aardvark-dns: did not start: {why}")


def sync(paths: Paths, wanted: Mapping[str, str]) -> None:
    """sync writes ``wanted`` (network name: file text) as the only files, then runs the server.

    The server runs if and only if a file is left, and serves what the
    files say once this returns.
    """
    directory = config_dir(paths)
    with _lock(paths):
        directory.mkdir(parents=True, exist_ok=True)
        changed = False
        for name in os.listdir(directory):
            if name != PID_FILE and not name.startswith(".") and name not in wanted:
                fsutil.unlink_if_present(directory / name)
                changed = True
        for name, text in wanted.items():
            try:
                same = (directory / name).read_text() == text
            except OSError:
                same = False
            if not same:
                what = f"the resolver's names on network {name}"
                fsutil.atomic_write(directory / name, text.encode(), durable=False, what=what)
                changed = True
        pid = running_pid(directory)
        if not wanted:
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            fsutil.unlink_if_present(directory / PID_FILE)
        elif pid is None:
            _start(directory)
        elif changed:
            os.kill(pid, signal.SIGHUP)


def problems(paths: Paths, wanted: Mapping[str, str]) -> list[str]:
    """problems says how the resolver differs from ``wanted`` (``system check``); empty if not."""
    directory = config_dir(paths)
    found = []
    pid = running_pid(directory)
    if wanted and pid is None:
        found.append(f"not running, though networks {', '.join(sorted(wanted))} have containers")
    if not wanted and pid is not None:
        found.append(f"running (pid {pid}), though no network has a container")
    try:
        present = {n for n in os.listdir(directory) if n != PID_FILE and not n.startswith(".")}
    except OSError:
        present = set()
    for name in sorted(present - set(wanted)):
        found.append(f"names kept for network {name}, which has no container")
    for name in sorted(set(wanted)):
        try:
            same = (directory / name).read_text() == wanted[name]
        except OSError:
            same = False
        if not same:
            found.append(f"names of network {name} out of date")
    return found


def wanted_files(
    records: Iterable[dict[str, Any]],
    conflist_of: Mapping[str, dict[str, Any]],
    names_of: Callable[[dict[str, Any]], Iterable[str]],
    addresses_of: Callable[[dict[str, Any]], Iterable[str]],
) -> dict[str, str]:
    """wanted_files is the file text of each DNS network that has a container with an address.

    ``names_of(record)`` and ``addresses_of(record)`` read a record's names
    and addresses (CIDR); ``conflist_of`` holds the networks by name.
    """
    from ctl.network import config

    lines: dict[str, list[str]] = {}
    for record in records:
        conflist = conflist_of.get(record["network"])
        if conflist is None or not config.has_dns(conflist):
            continue
        addresses = list(addresses_of(record))
        if not addresses:
            continue
        line = entry_line(record["container_id"], addresses, names_of(record))
        lines.setdefault(record["network"], []).append(line)
    wanted = {}
    for network, entries in lines.items():
        info = config.info_of(conflist_of[network])
        listen = [info.gateway] + ([info.gateway6] if info.gateway6 else [])
        wanted[network] = network_file(listen, entries)
    return wanted
