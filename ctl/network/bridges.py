"""Bridges: the host's side of a network, there only while a container uses it.

The bridge plugin makes a network's bridge on the first ADD (with the
gateway address, hence the subnet's route, and portmap's ``route_localnet``)
and never deletes it. Left alone, every network that ever had a container
would keep its /16 routed forever, and ``network create`` would run out of
subnets. So, as netavark does, the container that leaves a bridge without
ports deletes it (``remove_if_unused``), and the next ADD makes it again.
The isolation rules of a bridge (``ctl.network.isolation``) go with it:
the other iptables rules and chains the plugins make are each a
container's, and its DEL removes them.

A bridge says which root made it: attach writes ``ctl <root>`` in its
alias (``/sys/class/net/<bridge>/ifalias``, the ``alias`` of ``ip link``),
so that a root can tell its own leftovers from another root's, whose
bridges are ``ctl-`` named too.
"""

from __future__ import annotations

import os

SYSFS_NET = "/sys/class/net"
PREFIX = "ctl"
ALIAS_PREFIX = "ctl "
# IFALIASZ: the kernel's limit for an alias, its terminating NUL included.
_ALIAS_SIZE = 256


def exists(bridge: str) -> bool:
    return os.path.isdir(os.path.join(SYSFS_NET, bridge, "bridge"))


def ports(bridge: str) -> list[str]:
    """ports are the interfaces enslaved to ``bridge``; none if there is no such bridge."""
    try:
        return sorted(os.listdir(os.path.join(SYSFS_NET, bridge, "brif")))
    except OSError:
        return []


def ctl_named() -> list[str]:
    """ctl_named are the host's bridges named as ctl names them (``ctl0``, ``ctl-<id>``)."""
    try:
        names = os.listdir(SYSFS_NET)
    except OSError:
        return []
    return sorted(n for n in names if n.startswith(PREFIX) and exists(n))


def alias_for(root: str) -> str | None:
    """alias_for is the alias that marks a bridge as made by ``root``; None if it cannot fit."""
    alias = f"{ALIAS_PREFIX}{root}"
    return alias if len(alias.encode()) < _ALIAS_SIZE else None


def alias(bridge: str) -> str:
    try:
        with open(os.path.join(SYSFS_NET, bridge, "ifalias")) as f:
            return f.read().rstrip("\n")
    except OSError:
        return ""


def claim(bridge: str, root: str) -> None:
    """claim marks ``bridge`` as ``root``'s, unless it is marked already.

    A bridge without the mark is still its network's (see ``orphans`` in
    ``ctl.network.manager``): the mark matters only once the network is gone.
    """
    wanted = alias_for(root)
    if wanted is None or alias(bridge):
        return
    try:
        with open(os.path.join(SYSFS_NET, bridge, "ifalias"), "w") as f:
            f.write(wanted)
    except OSError:
        pass  # gone meanwhile, or a kernel without aliases: unmarked


def delete(bridge: str) -> None:
    """delete deletes ``bridge``, with its address, route and isolation rules; one gone is fine."""
    import contextlib
    import subprocess

    from ctl.network import isolation

    # A bridge that is gone, or was never one, makes ip fail: nothing to do either way.
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(
            ["ip", "link", "delete", bridge, "type", "bridge"],
            capture_output=True,
            timeout=30,
            check=False,
        )
    isolation.remove(bridge)


def remove_if_unused(bridge: str) -> bool:
    """remove_if_unused deletes ``bridge`` if it has no port left; True if it did.

    The caller holds the network lock (shared is enough): no ADD, the only
    thing that adds ports, runs meanwhile.
    """
    if not exists(bridge):
        # Deleted behind ctl's back (or a reboot): its isolation rules may be left.
        from ctl.network import isolation

        isolation.remove(bridge)
        return False
    if ports(bridge):
        return False
    delete(bridge)
    return True
