"""Isolation: containers on different ctl networks cannot reach each other.

As docker does, in iptables chains of ctl's own, two stages (filter table,
for IPv4 and, on dual-stack networks, IPv6)::

    CTL-ISOLATION     -i <bridge> ! -o <bridge> -j CTL-ISOLATION-2   one per bridge
                      -i <bridge> ! -o <bridge> -j DROP              internal networks:
                      -o <bridge> ! -i <bridge> -j DROP              no way in or out
    CTL-ISOLATION-2   -o <bridge> -j DROP                            one per bridge

A packet leaving one bridge for another is dropped; one leaving for the
host's uplink passes (the masquerade is the bridge plugin's). The chains are
reached through the ``firewall`` CNI plugin: ``CTL-ISOLATION`` is its
``iptablesAdminChainName``, which it jumps to from ``CNI-FORWARD`` before
the rules that accept the container's traffic, and into which it never
writes. So no rule of ours sits in the host's own chains.

A bridge's rules live as long as the bridge: ``ensure`` adds what is
missing after every ADD (one ``iptables -S`` when nothing is), and
``ctl.network.bridges.delete`` calls ``remove`` (and a detach that finds
its bridge gone, as after a reboot). ``leftovers`` finds the rules of a
root's bridges that are gone (a ``kill -9`` between the two), for
``system check``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

ADMIN_CHAIN = "CTL-ISOLATION"
STAGE_2 = "CTL-ISOLATION-2"
_TIMEOUT = 60
# -w: wait for the xtables lock rather than fail when a plugin holds it.
_WAIT = ("-w", "30")


def _run(tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool, *_WAIT, *args], capture_output=True, text=True, timeout=_TIMEOUT, check=False
    )


def _tools(ipv6: bool) -> tuple[str, ...]:
    return ("iptables", "ip6tables") if ipv6 else ("iptables",)


def rules_for(bridge: str, internal: bool) -> list[tuple[str, ...]]:
    """rules_for are the rules (chain first, as ``iptables -A`` takes them) of one bridge."""
    if internal:
        return [
            (ADMIN_CHAIN, "-i", bridge, "!", "-o", bridge, "-j", "DROP"),
            (ADMIN_CHAIN, "-o", bridge, "!", "-i", bridge, "-j", "DROP"),
        ]
    return [
        (ADMIN_CHAIN, "-i", bridge, "!", "-o", bridge, "-j", STAGE_2),
        (STAGE_2, "-o", bridge, "-j", "DROP"),
    ]


def _listed(tool: str) -> list[tuple[str, ...]]:
    """_listed are the rules in ctl's two chains as ``-S`` prints them, less the ``-A``."""
    found = []
    for chain in (ADMIN_CHAIN, STAGE_2):
        out = _run(tool, "-S", chain).stdout
        found += [tuple(line.split()[1:]) for line in out.splitlines() if line.startswith("-A ")]
    return found


def ensure(bridge: str, internal: bool, ipv6: bool) -> None:
    """ensure adds the bridge's rules that are missing (chains made on first use)."""
    for tool in _tools(ipv6):
        present = _listed(tool)
        wanted = [r for r in rules_for(bridge, internal) if r not in present]
        if not wanted:
            continue
        for chain in (ADMIN_CHAIN, STAGE_2):
            _run(tool, "-N", chain)  # fails harmlessly if it exists
        for rule in wanted:
            done = _run(tool, "-A", *rule)
            if done.returncode != 0:
                from ctl.errdefs import CtlError

                raise CtlError(f"{tool} -A {' '.join(rule)}: {done.stderr.strip()}")


def _bridge_of(rule: tuple[str, ...]) -> str:
    """_bridge_of is the bridge a rule of ours is about (its ``-o`` in stage 2, else ``-i``)."""
    words = list(rule)
    flag = "-o" if rule[0] == STAGE_2 or "-i" not in words else "-i"
    index = words.index(flag)
    return words[index + 1]


def remove(bridge: str, tools: tuple[str, ...] = ("iptables", "ip6tables")) -> None:
    """remove deletes every rule of ctl's chains about ``bridge``; none is fine."""
    for tool in tools:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            for rule in _listed(tool):
                if _bridge_of(rule) == bridge:
                    _run(tool, "-D", *rule)


def leftovers(bridges: Iterable[str]) -> list[tuple[str, str]]:
    """leftovers are (tool, bridge) whose rules outlive the bridge, one of ``bridges``.

    Only a root's own bridges are asked about: another root's may be gone
    for a moment, between its delete and the removal of its rules.
    """
    ours = set(bridges)
    found: list[tuple[str, str]] = []
    for tool in ("iptables", "ip6tables"):
        try:
            rules = _listed(tool)
        except (OSError, subprocess.SubprocessError):
            continue
        for rule in rules:
            bridge = _bridge_of(rule)
            gone = not os.path.exists(f"/sys/class/net/{bridge}")
            if bridge in ours and gone and (tool, bridge) not in found:
                found.append((tool, bridge))
    return found
