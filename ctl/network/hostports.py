"""Host ports held by any process: what ``-p`` must not take.

portmap publishes a port with DNAT rules, not a socket, so a port that a
process on the host listens on would be silently shadowed (the rules win).
``check_free`` refuses such a port before anything is set up, naming the
process that holds it: the kernel's socket tables (``/proc/net/tcp``,
``tcp6``, ``udp``, ``udp6``) say which sockets are bound where, by inode,
and ``/proc/<pid>/fd`` says which process has each inode open. Sockets of
other network namespaces are not listed there, and are no obstacle.
"""

from __future__ import annotations

import ipaddress
import os

from ctl.errdefs import AlreadyExists

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

# The states of a socket that holds its port for others: TCP LISTEN, UDP bound (CLOSE).
_HOLDING_STATE = {"tcp": "0A", "udp": "07"}


def parse_address(text: str) -> tuple[str, int]:
    """parse_address reads ``/proc/net/tcp``'s ``ADDR:PORT``: hex, each 32-bit word host-endian."""
    hex_ip, _, hex_port = text.partition(":")
    raw = bytes.fromhex(hex_ip)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    address = ipaddress.ip_address(words)
    # An IPv6 socket bound to an IPv4-mapped address holds that IPv4 address.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped), int(hex_port, 16)
    return str(address), int(hex_port, 16)


def bound(protocol: str, tables: Iterable[str] | None = None) -> list[tuple[str, int, str]]:
    """bound are the (address, port, inode) of sockets holding a port of ``protocol``."""
    found = []
    for table in tables or (f"/proc/net/{protocol}", f"/proc/net/{protocol}6"):
        try:
            with open(table) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != _HOLDING_STATE[protocol]:
                continue
            address, port = parse_address(fields[1])
            found.append((address, port, fields[9]))
    return found


def holder(inode: str) -> str:
    """holder names the process that has socket ``inode`` open: ``pid 123 (python3)``."""
    target = f"socket:[{inode}]"
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") != target:
                    continue
                with open(f"/proc/{pid}/comm") as f:
                    return f"pid {pid} ({f.read().strip()})"
            except OSError:
                continue
    return "a process this host does not show"


def _overlaps(wanted: str, held: str) -> bool:
    wildcard = ("", "0.0.0.0", "::")
    return (
        wanted in wildcard
        or held in wildcard
        or ipaddress.ip_address(wanted) == ipaddress.ip_address(held)
    )


def check_free(ports: Iterable[dict[str, Any]]) -> None:
    """check_free raises AlreadyExists for a published port (portmap's entry) a process holds."""
    tables: dict[str, list[tuple[str, int, str]]] = {}
    for entry in ports:
        protocol = str(entry["protocol"])
        if protocol not in _HOLDING_STATE:
            continue
        if protocol not in tables:
            tables[protocol] = bound(protocol)
        wanted = str(entry.get("hostIP", ""))
        for address, port, inode in tables[protocol]:
            if port == entry["hostPort"] and _overlaps(wanted, address):
                where = f"{wanted}:" if wanted else ""
                raise AlreadyExists(
                    f"host port {where}{port}/{protocol} is in use by {holder(inode)}, "
                    f"listening on {address}",
                    hint="publish another host port, or stop that process",
                )
