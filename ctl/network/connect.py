"""A running container on more networks: ``network connect`` and ``disconnect``.

The network a container starts on is its attachment (``ctl.network.manager``,
interface ``eth0``). ``connect`` adds another network live, as docker does:
CNI ADD of that network's conflist on the container's namespace, with the
next free interface (``eth1``, ``eth2``...), and the resolver told. Each
connection is a record beside the attachment's, in the same directory and of
the same shape, keyed ``<container id>@<network>``: whatever lists the
attachments (a network's containers, ``network rm``'s refusal, the resolver's
names) sees it too. ``disconnect`` runs its DEL. Connections end with the
task: the detach of the container's attachment releases them first
(``release_all``), so a stopped container is on its start network only.

Also here, because attach, connect and detach all need them after their
CNI calls: the resolver's update (``sync_resolver``) and the isolation rules
(``after_add``).

Static addresses (``--ip``, ``--ip6``) are host-local's ``ips`` capability:
the conflist's bridge plugin declares it and the runtime config names the
addresses. host-local refuses an address it has leased; ``connect`` checks
the lease first to name the container holding it.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import time

from ctl import identifiers
from ctl.errdefs import AlreadyExists, CtlError, FailedPrecondition, InvalidArgument, NotFound
from ctl.network import Attachment, bridges, config, dns, isolation
from ctl.network.networks import network_lock, resolve_network
from ctl.runtime.state import boot_id

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from typing import Any

    from ctl.network.cni import RuntimeConf
    from ctl.network.manager import NetworkManager

KEY_SEPARATOR = "@"


def connection_key(container_id: str, network: str) -> str:
    return f"{container_id}{KEY_SEPARATOR}{network}"


def is_connection(record: dict[str, Any]) -> bool:
    return bool(record.get("connected"))


# Resolver and isolation: after every ADD and DEL.


def names_of(manager: NetworkManager, record: dict[str, Any]) -> list[str]:
    """names_of are the names a container answers to on a network: name, aliases, short id."""
    names = []
    with contextlib.suppress(CtlError):
        names.append(manager._container_name_of(record["namespace"], record["container_id"]))
    names += [str(a) for a in record.get("aliases") or []]
    names.append(record["container_id"][:12])
    return names


def running_records(manager: NetworkManager) -> Iterator[dict[str, Any]]:
    """running_records are the attachments and connections of this boot with an address."""
    boot = boot_id()
    for record in manager._all_records():
        if record.get("result") and record.get("boot_id") == boot:
            yield record


def wanted_resolver_files(manager: NetworkManager) -> dict[str, str]:
    from ctl.network.manager import container_ips

    conflists = {}
    for name in manager.networks.names():
        with contextlib.suppress(CtlError):
            conflists[name] = manager.networks.conflist(name)
    return dns.wanted_files(
        running_records(manager),
        conflists,
        lambda record: names_of(manager, record),
        lambda record: container_ips(record.get("result"), record["ifname"]),
    )


def sync_resolver(manager: NetworkManager) -> None:
    """sync_resolver gives the resolver the names of every container on a DNS network now."""
    dns.sync(manager.paths, wanted_resolver_files(manager))


def for_container(conflist: dict[str, Any], publishes: bool, static: bool) -> dict[str, Any]:
    """for_container is ``config.for_container`` with isolation, and static addresses if asked.

    The firewall plugin is told to jump to ctl's isolation chain first.
    """
    chosen = config.for_container(conflist, publishes)
    plugins = []
    for plugin in chosen["plugins"]:
        changed = dict(plugin)
        if plugin.get("type") == "firewall":
            changed["iptablesAdminChainName"] = isolation.ADMIN_CHAIN
        if static and plugin.get("type") == "bridge":
            # A static address may lie outside --ip-range (as in docker): the whole subnet.
            changed["capabilities"] = {**plugin.get("capabilities", {}), "ips": True}
            ipam = dict(plugin["ipam"])
            ipam["ranges"] = [
                [{k: v for k, v in r.items() if k not in ("rangeStart", "rangeEnd")} for r in rs]
                for rs in ipam["ranges"]
            ]
            changed["ipam"] = ipam
        plugins.append(changed)
    return {**chosen, "plugins": plugins}


def before_add(conflist: dict[str, Any]) -> None:
    """before_add makes a dual-stack network's bridge, if it is down, without IPv6 DAD.

    The bridge plugin would make it and give it the gateway's IPv6 address
    at once, which then stays "tentative" (unusable: no resolver, no route
    for the host's traffic) for the second duplicate address detection
    takes. No other host can hold an address on a bridge just made.
    """
    import subprocess

    info = config.info_of(conflist)
    if not info.subnet6 or bridges.exists(info.bridge):
        return
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        subprocess.run(
            ["ip", "link", "add", info.bridge, "type", "bridge"],
            capture_output=True,
            timeout=30,
            check=False,
        )
    with (
        contextlib.suppress(OSError),
        open(f"/proc/sys/net/ipv6/conf/{info.bridge}/accept_dad", "w") as f,
    ):
        f.write("0")


def after_add(manager: NetworkManager, conflist: dict[str, Any]) -> None:
    """after_add sets up what a network's bridge needs once ADD made it: isolation, names."""
    info = config.info_of(conflist)
    isolation.ensure(info.bridge, info.internal, bool(info.subnet6))
    bridges.claim(info.bridge, str(manager.paths.root))
    if config.has_dns(conflist):
        sync_resolver(manager)


def with_resolver(attachment: Attachment, conflist: dict[str, Any]) -> Attachment:
    """with_resolver names the network's resolver in an attachment on a DNS network."""
    if not config.has_dns(conflist):
        return attachment
    return Attachment(
        attachment.netns_path,
        attachment.address,
        attachment.gateway,
        attachment.network,
        attachment.interface,
        nameserver=config.info_of(conflist).gateway,
    )


# Connections.


def _runtime_conf(record: dict[str, Any]) -> RuntimeConf:
    from ctl.network.cni import RuntimeConf

    args: dict[str, Any] = {"portMappings": []}
    if record.get("ips"):
        args["ips"] = record["ips"]
    return RuntimeConf(record["container_id"], record["netns"], record["ifname"], args)


def records_of(manager: NetworkManager, container_id: str) -> list[dict[str, Any]]:
    """records_of are the container's attachment and connections, readable ones, this namespace."""
    from ctl.network.manager import _attachment_record

    found = []
    prefix = connection_key(container_id, "")
    for key in manager._records.all_keys():
        if key != container_id and not key.startswith(prefix):
            continue
        with contextlib.suppress(CtlError):
            record = manager._records.get(key, _attachment_record)
            if record is not None:
                found.append(record)
    return found


def _next_ifname(records: Sequence[dict[str, Any]]) -> str:
    taken = {r["ifname"] for r in records}
    index = 1
    while f"eth{index}" in taken:
        index += 1
    return f"eth{index}"


def static_addresses(
    manager: NetworkManager, network: str, conflist: dict[str, Any], ip: str | None, ip6: str | None
) -> list[str]:
    """static_addresses checks ``--ip``/``--ip6`` against the network; returns them as CIDRs.

    An address outside the subnet, the gateway, or leased already (to a
    container, named, or to an ``--aux-address``) is refused.
    """
    info = config.info_of(conflist)
    chosen = []
    for flag, value, subnet, gateway in (
        ("--ip", ip, info.subnet, info.gateway),
        ("--ip6", ip6, info.subnet6, info.gateway6),
    ):
        if value is None:
            continue
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            raise InvalidArgument(f"invalid {flag} {value!r}: not an IP address") from None
        if not subnet or address not in ipaddress.ip_network(subnet):
            where = subnet or f"no IPv{address.version} subnet"
            raise InvalidArgument(f"invalid {flag} {value}: network {network!r} has {where}")
        if str(address) == gateway:
            raise InvalidArgument(f"invalid {flag} {value}: the gateway of network {network!r}")
        who = manager.lease_holder(network, str(address))
        if who:
            if len(who) == 64 and all(c in "0123456789abcdef" for c in who):
                who = f"container {manager._container_name(manager.namespace, who)}"
            raise AlreadyExists(f"{flag} {address}: on network {network!r} it is taken by {who}")
        chosen.append(f"{address}/{ipaddress.ip_network(subnet).prefixlen}")
    return chosen


def connect(
    manager: NetworkManager,
    container_id: str,
    network: str,
    aliases: Sequence[str] = (),
    ip: str | None = None,
    ip6: str | None = None,
) -> Attachment:
    """connect puts a running container on one more network; it returns its place there.

    The container must have its own namespace on a ctl network (not
    ``--net none`` or ``host``). AlreadyExists if it is on ``network``
    already. On failure nothing is left connected.
    """
    from ctl.network import netns
    from ctl.network.manager import RECORD_VERSION, attachment_of

    identifiers.validate("container id", container_id)
    name = resolve_network(network)
    manager.paths.ensure()
    with network_lock(manager.paths):
        records = records_of(manager, container_id)
        primary = next((r for r in records if not is_connection(r)), None)
        path = manager.netns_path(container_id)
        if primary is None or not primary.get("result") or not netns.is_netns(path):
            raise FailedPrecondition(
                "the container is not running on a ctl network: only a running container "
                "started with --net bridge or --net NAME can be connected",
                hint="start it first",
            )
        if any(r["network"] == name for r in records):
            raise AlreadyExists(f"the container is already on network {name!r}")
        stored = manager.networks.conflist_locked(name)
        static = static_addresses(manager, name, stored, ip, ip6)
        conflist = for_container(stored, False, bool(static))
        bridge = config.bridge_of(conflist)
        if not bridges.exists(bridge):
            manager._check_subnet(name, conflist)
        record = {
            "version": RECORD_VERSION,
            "container_id": container_id,
            "namespace": manager.namespace,
            "network": name,
            "netns": str(path),
            "ifname": _next_ifname(records),
            "hostname": primary.get("hostname", ""),
            "publish": [],
            "config": conflist,
            "loopback": primary["loopback"],
            "result": None,
            "boot_id": boot_id(),
            "created": time.time(),
            "connected": True,
            "aliases": list(aliases),
            "ips": static,
        }
        key = connection_key(container_id, name)
        manager._records.put(key, record)

        def recorded(result: dict[str, Any]) -> None:
            record["result"] = result
            manager._records.put(key, record)

        try:
            before_add(stored)
            manager.cni.add_list(conflist, _runtime_conf(record), on_result=recorded)
            after_add(manager, stored)
            return with_resolver(attachment_of(record), stored)
        except BaseException:
            with contextlib.suppress(Exception):
                _release_locked(manager, record)
            raise


def _release_locked(manager: NetworkManager, record: dict[str, Any]) -> None:
    """_release_locked runs a connection's DEL and forgets it (under the network lock)."""
    manager.cni.del_list(record["config"], _runtime_conf(record), record.get("result"))
    manager._records.delete(connection_key(record["container_id"], record["network"]))
    bridges.remove_if_unused(config.bridge_of(record["config"]))


def disconnect(manager: NetworkManager, container_id: str, network: str, force: bool) -> None:
    """disconnect takes a container off a network it was connected to.

    NotFound if it is not on ``network`` (nothing, with ``force``); the
    network a container started on stays until its task ends.
    """
    name = resolve_network(network)
    with network_lock(manager.paths, shared=True), manager._container_lock(container_id):
        records = records_of(manager, container_id)
        found = next((r for r in records if r["network"] == name), None)
        if found is None:
            if force:
                return
            raise NotFound(f"the container is not connected to network {name!r}")
        if not is_connection(found):
            raise FailedPrecondition(
                f"network {name!r} is the one the container was started on: it stays while "
                "the container runs",
                hint="stop the container, or run it on another network",
            )
        _release_locked(manager, found)
    sync_resolver(manager)


def release_all(manager: NetworkManager, container_id: str) -> None:
    """release_all disconnects the container from every connected network (its task ended).

    The caller holds the network lock and the container's lock.
    """
    failure: CtlError | None = None
    for record in records_of(manager, container_id):
        if not is_connection(record):
            continue
        try:
            _release_locked(manager, record)
        except CtlError as err:
            failure = failure or err
    if failure is not None:
        raise failure


def attachments(manager: NetworkManager, container_id: str) -> list[Attachment]:
    """attachments are the container's places on its networks: its start network first."""
    from ctl.network.manager import attachment_of

    found = []
    records = sorted(records_of(manager, container_id), key=lambda r: r["ifname"])
    for record in records:
        if not record.get("result"):
            continue
        with contextlib.suppress(CtlError):
            found.append(attachment_of(record))
    return found


def networks_in_use(manager: NetworkManager) -> set[str]:
    """networks_in_use are the networks a container (of any namespace) is attached to."""
    return {record["network"] for record in manager._all_records()}


# system check.


class Leftover:
    """Leftover is something a killed ctl left of networking, as ``system check`` shows it."""

    def __init__(self, what: str, problem: str, repair: Callable[[], str]) -> None:
        self.what = what
        self.problem = problem
        self.repair = repair


def leftovers(manager: NetworkManager, running: Callable[[str, str], bool]) -> list[Leftover]:
    """leftovers are half-made connections, stray isolation rules, leases and veths, and a
    resolver gone wrong.

    ``running(namespace, container_id)`` says whether the container's task
    runs: a connection of a container that does not, or one whose ADD never
    finished (a ``kill -9`` of ``network connect``), is released.
    """
    found: list[Leftover] = []
    for record in list(manager._all_records()):
        if not is_connection(record):
            continue
        finished = bool(record.get("result")) and record.get("boot_id") == boot_id()
        alive = running(record["namespace"], record["container_id"])
        if finished and alive:
            continue
        what = f"connection of container {record['container_id'][:12]} to {record['network']}"
        problem = "its ADD never finished" if alive else "the container is not running"
        found.append(Leftover(what, problem, _repairer(manager, record)))
    ours = set()
    for name in manager.networks.names():
        with contextlib.suppress(CtlError):
            ours.add(config.bridge_of(manager.networks.conflist(name)))
    for tool, bridge in isolation.leftovers(ours):
        found.append(
            Leftover(
                f"{tool} rules of bridge {bridge}",
                "the bridge is gone",
                _rule_remover(tool, bridge),
            )
        )
    found += stray_leases(manager) + stray_veths(manager)
    for problem in dns.problems(manager.paths, wanted_resolver_files(manager)):
        found.append(Leftover("network resolver", problem, lambda: _repair_resolver(manager)))
    return found


def _lease_holders(manager: NetworkManager) -> dict[tuple[str, str], str]:
    """_lease_holders maps (network, address) to the holder host-local wrote, for every lease."""
    return {
        (network, address): holder
        for network in manager.networks.names()
        for address, holder in manager.leases(network).items()
    }


def _stray_lease(manager: NetworkManager, network: str, address: str, holder: str) -> bool:
    from ctl.network.networks import AUX_LEASE_PREFIX

    if holder.startswith(AUX_LEASE_PREFIX):
        return False
    return not any(r["container_id"] == holder for r in manager._all_records())


def stray_leases(manager: NetworkManager) -> list[Leftover]:
    """stray_leases are address leases whose container has no attachment: DEL never ran."""
    found = []
    for (network, address), holder in _lease_holders(manager).items():
        if _stray_lease(manager, network, address, holder):
            what = f"address lease {address} on network {network}"
            problem = f"held by {holder[:12] or 'no one'}, which is on no network"
            found.append(Leftover(what, problem, _lease_remover(manager, network, address)))
    return found


def _lease_remover(manager: NetworkManager, network: str, address: str) -> Callable[[], str]:
    def repair() -> str:
        with network_lock(manager.paths):
            holder = _lease_holders(manager).get((network, address))
            if holder is None or not _stray_lease(manager, network, address, holder):
                raise FailedPrecondition(f"lease {address}: in use again, left as it is")
            os.unlink(f"{manager.paths.leases(network)}/{address}")
        return f"released address {address} on network {network}"

    return repair


def _recorded_veths(manager: NetworkManager) -> set[str]:
    """_recorded_veths are the host sides of every attachment's veth, as named now.

    Both the name ADD recorded and the current name of the container's peer
    count: udev may have renamed the veth since (see ``host_side_now``).
    """
    from ctl.network.manager import host_side_now

    names = set()
    for record in manager._all_records():
        result = record.get("result") or {}
        now = host_side_now(record) if result and record.get("netns") else {}
        for found in (result, now):
            for interface in found.get("interfaces") or []:
                if not interface.get("sandbox"):
                    names.add(str(interface.get("name", "")))
    return names


def _stray_veths_of(manager: NetworkManager) -> list[tuple[str, str]]:
    """_stray_veths_of are (bridge, veth): ports of this root's bridges no attachment made."""
    recorded = _recorded_veths(manager)
    found = []
    for name in manager.networks.names():
        with contextlib.suppress(CtlError):
            bridge = config.bridge_of(manager.networks.conflist(name))
            found += [(bridge, port) for port in bridges.ports(bridge) if port not in recorded]
    return found


def stray_veths(manager: NetworkManager) -> list[Leftover]:
    """stray_veths are veths on the root's bridges that no attachment record knows."""
    found = []
    for bridge, veth in _stray_veths_of(manager):
        what = f"interface {veth} on bridge {bridge}"
        found.append(Leftover(what, "no container's", _veth_remover(manager, bridge, veth)))
    return found


def _veth_remover(manager: NetworkManager, bridge: str, veth: str) -> Callable[[], str]:
    def repair() -> str:
        import subprocess

        # Exclusive: no ADD is half-way, with a veth made and its result not yet recorded.
        with network_lock(manager.paths):
            if (bridge, veth) not in _stray_veths_of(manager):
                raise FailedPrecondition(f"interface {veth}: in use again, left as it is")
            subprocess.run(["ip", "link", "delete", veth], capture_output=True, check=False)
            bridges.remove_if_unused(bridge)
        return f"deleted interface {veth}"

    return repair


def _repairer(manager: NetworkManager, record: dict[str, Any]) -> Callable[[], str]:
    def repair() -> str:
        from ctl.network.manager import NetworkManager

        owner = NetworkManager(manager.paths, record["namespace"], manager._container_name_of)
        with network_lock(manager.paths):
            _release_locked(owner, record)
        sync_resolver(manager)
        return f"ran DEL of network {record['network']} and forgot the connection"

    return repair


def _rule_remover(tool: str, bridge: str) -> Callable[[], str]:
    def repair() -> str:
        isolation.remove(bridge, (tool,))
        return f"deleted the {tool} isolation rules of bridge {bridge}"

    return repair


def _repair_resolver(manager: NetworkManager) -> str:
    sync_resolver(manager)
    pid = dns.running_pid(dns.config_dir(manager.paths))
    return f"resolver running as pid {pid}" if pid else "resolver stopped: no network needs it"
