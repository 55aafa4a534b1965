"""NetworkManager: containers on and off CNI networks.

``attach`` gives a container its own network namespace on a network:

1. under the network lock (one flock for the whole root, as bridges, subnets
   and host ports are the host's, not a namespace's), check that no other
   attached container publishes the same host port, and, if the network's
   bridge is down, that nothing on the host routes its subnet now;
2. write the attachment record first, so that whatever happens next, a
   ``detach`` finds what to undo;
3. create the namespace file, run the ``loopback`` plugin for ``lo`` and
   the network's conflist for ``eth0`` (ADD), recording each result.

``detach`` runs DEL of the recorded conflist with the recorded result (so a
network changed or removed meanwhile is no obstacle), removes the namespace
file and forgets the record. It is idempotent and works after a crash: a
namespace file whose mount went away with a reboot is deleted, and an
interface that vanished while its iptables rules stayed gets a stand-in
(``_restore_interface``).

The plugins share iptables chains and the bridge, and some of them create
those with a check-then-act, so every ADD holds the lock exclusively:
attaches are serialized, which costs little next to the plugins' own run
time. A DEL only removes what its own container added (its veth, its
address, its rules and chains, each under the kernel's or iptables' own
locking), so detaches hold the lock shared, plus a lock of their container:
fifty containers stopping at once tear down side by side instead of in a
queue, and no ADD runs meanwhile.

A bridge lives only while containers use it (``ctl.network.bridges``): the
detach that leaves it without ports deletes it, still under the shared
lock, and the next ADD makes it again. This is safe because:

- ports are added only by ADD, which holds the lock exclusively: between a
  detach's look at the bridge and its delete, no port can appear, and no
  ADD can be half-way (bridge made, veth not yet on it);
- detaches side by side only take ports away, each its own before it looks:
  of two last containers leaving together, the later look sees no port (if
  both do, both delete, and the second delete finds nothing: harmless), so
  the bridge never outlives its last container, and never goes before it;
- a kill -9 between DEL and the delete leaves a bridge without ports: the
  next ADD on the network uses it as it is, the next detach from it deletes
  it, and ``system check`` reports it (``unused_bridges``) and ``--repair``
  deletes it (``remove_unused_bridge``), under the lock as a detach does.
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import os
import sys
import time
from pathlib import Path

from ctl import fsutil, identifiers
from ctl.errdefs import AlreadyExists, CtlError, FailedPrecondition, InvalidArgument, NotFound
from ctl.network import Attachment, NetworkInfo, bridges, config
from ctl.network.networks import (
    LOCK_TIMEOUT,
    Networks,
    network_lock,
    refuse_predefined,
    resolve_network,
)
from ctl.records import RecordDir, UnreadableRecord
from ctl.runtime.state import boot_id

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from typing import Any

    from ctl.containers.container import PortMapping
    from ctl.network.cni import CNI, RuntimeConf
    from ctl.paths import Paths

    # ContainerName is the name of container (namespace, id); it raises a
    # CtlError when it cannot tell, and the container is shown by its id.
    ContainerName = Callable[[str, str], str]

IFNAME = "eth0"
RECORD_VERSION = 1
_STAND_IN_PEER = "ctl-stand-in"


def port_json(port: PortMapping) -> dict[str, Any]:
    """port_json is one entry of portmap's ``portMappings`` runtime config."""
    entry: dict[str, Any] = {
        "hostPort": port.host_port,
        "containerPort": port.container_port,
        "protocol": port.protocol,
    }
    if port.host_ip:
        entry["hostIP"] = port.host_ip
    return entry


def ports_clash(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """ports_clash is True if two published ports would take the same host socket."""
    if a["hostPort"] != b["hostPort"] or a["protocol"] != b["protocol"]:
        return False
    wildcard = ("", "0.0.0.0")
    ip_a, ip_b = a.get("hostIP", ""), b.get("hostIP", "")
    return ip_a in wildcard or ip_b in wildcard or ip_a == ip_b


def check_publish(publish: Sequence[PortMapping]) -> list[dict[str, Any]]:
    """check_publish validates ``-p`` mappings for an IPv4 network; returns portmap's entries."""
    entries: list[dict[str, Any]] = []
    for port in publish:
        if port.host_ip and ipaddress.ip_address(port.host_ip).version != 4:
            raise InvalidArgument(
                f"cannot publish on {port.host_ip}: ctl networks are IPv4 only",
                hint="leave the address out to publish on every address of the host",
            )
        entry = port_json(port)
        for earlier in entries:
            if ports_clash(earlier, entry):
                raise InvalidArgument(f"host port {_port_text(entry)} is published twice")
        entries.append(entry)
    return entries


def _port_text(entry: dict[str, Any]) -> str:
    where = f"{entry['hostIP']}:" if entry.get("hostIP") else ""
    return f"{where}{entry['hostPort']}/{entry['protocol']}"


def container_ips(result: dict[str, Any] | None, ifname: str = IFNAME) -> list[str]:
    """container_ips are the addresses (CIDR) a CNI result gave the container's ``ifname``."""
    if not result:
        return []
    interfaces = result.get("interfaces") or []
    found = []
    for ip in result.get("ips") or []:
        index = ip.get("interface")
        if index is not None and 0 <= index < len(interfaces):
            iface = interfaces[index]
            if iface.get("name") != ifname or not iface.get("sandbox"):
                continue
        found.append(str(ip["address"]))
    return found


def attachment_of(record: dict[str, Any]) -> Attachment:
    """attachment_of reads an Attachment from a finished attachment record."""
    result = record.get("result") or {}
    ifname = record["ifname"]
    for ip in result.get("ips") or []:
        interface = ipaddress.ip_interface(ip["address"])
        if interface.version == 4 and ip["address"] in container_ips(result, ifname):
            return Attachment(
                netns_path=Path(record["netns"]),
                address=str(interface.ip),
                gateway=str(ip.get("gateway", "")),
                network=record["network"],
                interface=ifname,
            )
    raise CtlError(f"network {record['network']}: CNI gave container no IPv4 address")


def host_side_now(record: dict[str, Any]) -> dict[str, Any]:
    """host_side_now is the result ADD recorded, with its host interfaces as they are now.

    On servers, systemd-udevd gives a new veth another MAC address after the
    bridge plugin has recorded it (``MACAddressPolicy=persistent`` in
    99-default.link), and a ``.link`` file may rename it; a bridge's address
    follows its ports. CHECK compares the recorded names and addresses, so
    it would call a sound network broken. What identifies the host's veth is
    that it is the peer of the container's interface: it is found that way,
    the bridge by its name, and their names and addresses are read afresh.
    Everything else (the container's interface, addresses, routes, rules)
    stays as recorded, for CHECK to compare. An interface that cannot be
    found keeps its record, and CHECK reports it.
    """
    import copy

    result: dict[str, Any] = copy.deepcopy(record["result"])
    bridge = config.bridge_of(record["config"])
    veth = _peer_on_host(record["netns"], record["ifname"])
    for interface in result.get("interfaces") or []:
        if interface.get("sandbox"):
            continue
        name = bridge if interface.get("name") == bridge else veth
        try:
            with open(f"/sys/class/net/{name}/address") as file:
                address = file.read().strip()
        except (OSError, TypeError):
            continue
        interface["name"], interface["mac"] = name, address
    return result


def _peer_on_host(netns_path: str, ifname: str) -> str | None:
    """_peer_on_host is the host's name of the peer of veth ``ifname`` in the namespace, or None."""
    import json
    import socket
    import subprocess

    try:
        shown = subprocess.run(
            ["nsenter", f"--net={netns_path}", "ip", "-j", "link", "show", "dev", ifname],
            capture_output=True,
            timeout=30,
            check=True,
        ).stdout
        return socket.if_indextoname(int(json.loads(shown)[0]["link_index"]))
    except (OSError, subprocess.SubprocessError, ValueError, LookupError, TypeError):
        return None


def _attachment_record(value: Any) -> dict[str, Any]:
    """_attachment_record accepts an attachment record of the version this module writes."""
    if not isinstance(value, dict) or value.get("version") != RECORD_VERSION:
        raise ValueError(f"not an attachment record of version {RECORD_VERSION}")
    if not isinstance(value["config"], dict) or not isinstance(value["publish"], list):
        raise TypeError("an attachment record's config is an object and its publish a list")
    for key in ("container_id", "namespace", "network", "netns", "ifname"):
        if not isinstance(value[key], str):
            raise TypeError(f"an attachment record's {key} is a string")
    return value


class UnusedBridge:
    """UnusedBridge is a bridge of this root that no container uses, as ``system check`` sees it.

    ``repair`` deletes it, unless a container came meanwhile, and says so.
    """

    def __init__(self, manager: NetworkManager, bridge: str, problem: str) -> None:
        self._manager = manager
        self.bridge = bridge
        self.what = f"bridge {bridge}"
        self.problem = problem

    def repair(self) -> str:
        with network_lock(self._manager.paths, shared=True):
            if not bridges.remove_if_unused(self.bridge):
                raise FailedPrecondition(f"bridge {self.bridge}: in use again, left as it is")
        return f"deleted bridge {self.bridge}"


class DamagedNetworkRecord:
    """DamagedNetworkRecord is a conflist or attachment record that cannot be read.

    ``repair`` rebuilds it where something else still tells what it said,
    else removes it, and says which (``NetworkManager.damaged_records``).
    """

    def __init__(self, error: UnreadableRecord, repair: Callable[[], str]) -> None:
        self.what = error.path
        self.problem = str(error).removeprefix(f"{error.path}: ")
        self.repair = repair


class NetworkManager:
    """NetworkManager puts the containers of one namespace on networks and takes them off.

    ``networks`` are the network definitions, shared by all namespaces like
    docker's; ``container_name`` names the containers that attachment
    records (of any namespace) stand for, in messages and ``inspect``.
    """

    def __init__(self, paths: Paths, namespace: str, container_name: ContainerName) -> None:
        self.paths = paths
        self.namespace = identifiers.validate("namespace", namespace)
        self.networks = Networks(paths)
        self._records = self._attachments(namespace)
        self._container_name_of = container_name
        self._cni: CNI | None = None

    @property
    def cni(self) -> CNI:
        # Imported here, as netns is: listing networks needs neither.
        if self._cni is None:
            from ctl.network.cni import CNI

            self._cni = CNI()
        return self._cni

    def _attachments(self, namespace: str) -> RecordDir:
        return RecordDir(self.paths.cni_attachments(namespace), what="network attachment")

    def netns_path(self, container_id: str) -> Path:
        """netns_path is where the container's namespace is bound, attached or not."""
        return Path(
            self.paths.netns(self.namespace), identifiers.validate("container id", container_id)
        )

    def _container_lock(self, container_id: str) -> fsutil.FileLock:
        return fsutil.FileLock(
            self.paths.lock("network", self.namespace, container_id),
            timeout=LOCK_TIMEOUT,
            what=f"the network of container {container_id}",
            remove=True,
        )

    # Attachments.

    def attach(
        self,
        container_id: str,
        network: str,
        publish: Sequence[PortMapping],
        hostname: str,
        cni_args: dict[str, str] | None = None,
        aliases: Sequence[str] = (),
        static: tuple[str | None, str | None] = (None, None),
    ) -> Attachment:
        """attach puts the container on ``network`` (``bridge`` is the default network).

        ``cni_args`` are CNI_ARGS for the plugins (``MAC``: --mac-address);
        ``static`` are the --ip and --ip6 addresses asked for, given to
        host-local through the ``ips`` capability.

        A host port in ``publish`` that another attached container publishes
        (in any namespace) or a process on the host holds raises AlreadyExists
        before anything is set up. ``aliases`` are ``--network-alias``. A
        record this container left behind (a crash) is detached first: call
        this only while the container has no running task. On failure
        nothing is left attached.
        """
        from ctl.network import connect, hostports, netns
        from ctl.network.cni import RuntimeConf

        path = self.netns_path(container_id)
        name = resolve_network(network)
        ports = check_publish(publish)
        self.paths.ensure()
        with network_lock(self.paths):
            self._detach_locked(container_id)
            stored = self.networks.conflist_locked(name)
            ips = connect.static_addresses(self, name, stored, *static) if any(static) else []
            conflist = connect.for_container(stored, bool(ports), bool(ips))
            self._check_ports(ports)
            hostports.check_free(ports)
            bridge = config.bridge_of(conflist)
            if not bridges.exists(bridge):
                self._check_subnet(name, conflist)
            record = self._new_record(container_id, name, conflist, ports, hostname)
            if cni_args:
                record["cni_args"] = cni_args
            if ips:
                record["ips"] = ips

            record["aliases"] = list(aliases)
            self._write(record)

            def recorded(result: dict[str, Any]) -> None:
                record["result"] = result
                self._write(record)

            try:
                netns.create(path)
                self.cni.add(record["loopback"], RuntimeConf(container_id, str(path), "lo"))
                connect.before_add(stored)
                self.cni.add_list(conflist, self._runtime_conf(record), on_result=recorded)
                connect.after_add(self, stored)
                return connect.with_resolver(attachment_of(record), stored)
            except BaseException:
                with contextlib.suppress(Exception):
                    self._detach_locked(container_id)
                raise

    def detach(self, container_id: str) -> None:
        """detach takes the container off its network; nothing attached is fine.

        A DEL that fails raises and keeps the record, so that a later detach
        (``rm``) tries again.
        """
        path = self.netns_path(container_id)
        if not self._records.exists(container_id) and not os.path.lexists(path):
            return  # never attached, or detached already: no lock needed
        with network_lock(self.paths, shared=True), self._container_lock(container_id):
            self._detach_locked(container_id)

    def check(self, container_id: str) -> bool:
        """check asks the plugins whether the container's network is still as ADD left it.

        It raises the first plugin's complaint; False means there is nothing
        to check (not attached, or the network opts out of CHECK).
        """
        from ctl.network import netns

        path = self.netns_path(container_id)
        with network_lock(self.paths, shared=True), self._container_lock(container_id):
            record = self._read(container_id)
            if record is None or not record.get("result") or record.get("rebuilt"):
                return False
            if not netns.is_netns(path):
                raise NotFound(f"network namespace {path} is gone")
            return self.cni.check_list(
                record["config"], self._runtime_conf(record), host_side_now(record)
            )

    def attachment(self, container_id: str) -> Attachment | None:
        """attachment is where the container is attached, or None.

        A damaged record is None too, with a warning naming it: ``inspect``
        shows the rest of the container.
        """
        self.netns_path(container_id)
        try:
            record = self._read(container_id)
        except UnreadableRecord as err:
            sys.stderr.write(f"ctl: warning: {err}\n")
            return None
        if record is None or not record.get("result"):
            return None
        return attachment_of(record)

    def _detach_locked(self, container_id: str) -> None:
        from ctl.network import connect, netns

        connect.release_all(self, container_id)  # networks joined by `network connect`
        path = self.netns_path(container_id)
        try:
            record = self._read(container_id)
        except UnreadableRecord as err:
            record = self._recovered(container_id)
            how = "rebuilt from its address lease" if record else "nothing tells what to undo"
            sys.stderr.write(f"ctl: warning: {err}; {how}\n")
        if record is not None:
            self._delete(record, path)
        netns.remove(path)
        self._records.delete(container_id)
        if record is not None:
            # The last container off the network takes its bridge (see the module's docstring).
            bridges.remove_if_unused(config.bridge_of(record["config"]))
            if config.has_dns(record["config"]):
                connect.sync_resolver(self)

    def _delete(self, record: dict[str, Any], path: Path) -> None:
        from ctl.network import netns

        result = record.get("result")
        addresses = container_ips(result, record["ifname"])
        if not netns.is_netns(path):
            # Plugins take a missing namespace as "already gone"; a stale
            # file (its mount went with a reboot) would be an error to them.
            netns.remove(path)
            if addresses and record.get("boot_id") == boot_id():
                netns.create(path)  # the iptables rules are still there: see below
        if addresses and netns.is_netns(path):
            self._restore_interface(path, record["ifname"], addresses)
        self.cni.del_list(record["config"], self._runtime_conf(record), result)

    @staticmethod
    def _restore_interface(path: Path, ifname: str, addresses: list[str]) -> None:
        """_restore_interface puts the container's interface back if it has gone.

        The bridge plugin finds the addresses whose masquerade rules it must
        remove on the interface in the namespace. Without it (the namespace
        was unmounted by hand, or a privileged container deleted its eth0)
        those rules would stay forever. A veth pair inside the namespace,
        with the recorded addresses, lets the plugin clean up as usual; when
        the interface is there, each command fails harmlessly.
        """
        import subprocess

        commands = [f"link add {ifname} type veth peer name {_STAND_IN_PEER}"]
        commands += [f"addr add {address} dev {ifname}" for address in addresses]
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                ["nsenter", f"--net={path}", "ip", "-force", "-batch", "-"],
                input="\n".join(commands).encode(),
                capture_output=True,
                timeout=30,
                check=False,
            )

    def _check_subnet(self, name: str, conflist: dict[str, Any]) -> None:
        """_check_subnet refuses to make a network's bridge on a subnet the host routes elsewhere.

        A subnet is routed only while its bridge is up, so another root's
        network may have taken it while this one was idle (see
        ``ctl.network.config``). Two bridges on one subnet would each get
        the other's traffic.
        """
        subnet = ipaddress.IPv4Network(config.info_of(conflist).subnet)
        for taken in config.host_networks():
            if taken.overlaps(subnet):
                raise FailedPrecondition(
                    f"network {name!r}: its subnet {subnet} is in use on the host ({taken})",
                    hint="stop what uses it, or use a network with another --subnet",
                )

    def _runtime_conf(self, record: dict[str, Any]) -> RuntimeConf:
        from ctl.network.cni import RuntimeConf

        return RuntimeConf(
            container_id=record["container_id"],
            netns=record["netns"],
            ifname=record["ifname"],
            capability_args={
                "portMappings": record["publish"],
                **({"ips": record["ips"]} if record.get("ips") else {}),
            },
            args=record.get("cni_args") or {},
        )

    def _new_record(
        self,
        container_id: str,
        network: str,
        conflist: dict[str, Any],
        publish: list[dict[str, Any]],
        hostname: str,
    ) -> dict[str, Any]:
        """_new_record is an attachment record before ADD: no result yet."""
        return {
            "version": RECORD_VERSION,
            "container_id": container_id,
            "namespace": self.namespace,
            "network": network,
            "netns": str(self.netns_path(container_id)),
            "ifname": IFNAME,
            "hostname": hostname,
            "publish": publish,
            "config": conflist,
            "loopback": config.loopback_config(conflist["cniVersion"]),
            "result": None,
            "boot_id": boot_id(),
            "created": time.time(),
        }

    def _write(self, record: dict[str, Any]) -> None:
        self._records.put(record["container_id"], record)

    def _read(self, container_id: str) -> dict[str, Any] | None:
        return self._records.get(container_id, _attachment_record)

    def _all_records(self) -> Iterator[dict[str, Any]]:
        """_all_records yields the attachment records of every namespace."""
        try:
            namespaces = sorted(os.listdir(self.paths.cni_attachments_root))
        except FileNotFoundError:
            return
        for namespace in namespaces:
            try:
                records = self._attachments(namespace)
            except InvalidArgument:
                continue  # not a namespace's directory
            yield from records.list(_attachment_record)

    def leases(self, network: str) -> dict[str, str]:
        """leases maps each address host-local leased on ``network`` to the holder it wrote
        (a container id, an auxiliary address's name, or "" for an empty lease)."""
        directory = self.paths.leases(network)
        try:
            names = os.listdir(directory)
        except OSError:
            return {}
        found = {}
        for name in names:
            try:
                ipaddress.ip_address(name)
                holder = self.lease_holder(network, name)
            except ValueError:
                continue  # host-local's lock and last_reserved_ip files
            if holder is not None:
                found[name] = holder
        return found

    def lease_holder(self, network: str, address: str) -> str | None:
        """lease_holder is what the lease of ``address`` on ``network`` names ("" if nothing);
        None if the address has no lease that can be read."""
        try:
            with open(f"{self.paths.leases(network)}/{address}") as lease:
                holder = lease.read().split()
        except OSError:
            return None
        return holder[0] if holder else ""

    # Damaged records.

    def _recovered(self, container_id: str) -> dict[str, Any] | None:
        """_recovered rebuilds a container's attachment record from its address lease.

        host-local keeps ``<ipam>/<network>/<address>`` holding the id of
        the container it leased the address to: with the network's conflist
        that is enough for DEL to undo ADD (the whole conflist, as the
        published ports are not known). None if no lease names the container.
        """
        for network in self.networks.names():
            try:
                conflist = self.networks.conflist(network)
            except CtlError:
                continue
            leases = self.leases(network)
            for address in sorted(leases):
                if leases[address] != container_id:
                    continue
                info = config.info_of(conflist)
                prefix = ipaddress.IPv4Network(info.subnet).prefixlen
                record = self._new_record(container_id, network, conflist, [], "")
                record["result"] = {
                    "cniVersion": conflist["cniVersion"],
                    "interfaces": [{"name": IFNAME, "sandbox": record["netns"]}],
                    "ips": [{"address": f"{address}/{prefix}", "gateway": info.gateway}],
                }
                # The lease says nothing of the boot: a namespace that is still there is this one's.
                record["boot_id"] = boot_id() if os.path.exists(record["netns"]) else None
                record["rebuilt"] = True
                return record
        return None

    def damaged_records(self) -> list[DamagedNetworkRecord]:
        """damaged_records are the conflists and attachment records (of any namespace) not read.

        A conflist is rebuilt from an attachment record's copy of it, else
        removed with its leases; the default network is written again on
        first use. An attachment record is rebuilt from the container's
        address lease (``_recovered``), else removed with its namespace file.
        """
        found: list[DamagedNetworkRecord] = []
        for damaged in self.networks.damaged():
            repair = functools.partial(self._repair_conflist, damaged)
            found.append(DamagedNetworkRecord(damaged, repair))
        try:
            namespaces = sorted(os.listdir(self.paths.cni_attachments_root))
        except FileNotFoundError:
            namespaces = []
        for namespace in namespaces:
            try:
                manager = NetworkManager(self.paths, namespace, self._container_name_of)
            except InvalidArgument:
                continue  # not a namespace's directory
            for damaged in manager._records.damaged(_attachment_record):
                repair = functools.partial(manager._repair_attachment, damaged)
                found.append(DamagedNetworkRecord(damaged, repair))
        return found

    def _repair_conflist(self, damaged: UnreadableRecord) -> str:
        name = damaged.key
        with network_lock(self.paths):
            copies = [r["config"] for r in self._all_records() if r.get("network") == name]
            if not copies:
                message = self.networks.remove_damaged(damaged)
                return f"{message}; its address leases went with it"
            info = config.info_of(copies[0])
            self.networks.rebuild(damaged, info, copies[0]["cniVersion"])
        return f"rebuilt {damaged.path} from the attachment record of a container on it"

    def _repair_attachment(self, damaged: UnreadableRecord) -> str:
        from ctl.network import netns

        container_id = damaged.key
        with network_lock(self.paths):
            record = self._recovered(container_id)
            if record is not None:
                self._write(record)
                return f"rebuilt {damaged.path} from its address lease"
            message = self._records.remove_damaged(damaged)
            netns.remove(self.netns_path(container_id))
        return f"{message} and the container's network namespace file"

    def _check_ports(self, ports: list[dict[str, Any]]) -> None:
        if not ports:
            return
        boot = boot_id()
        for record in self._all_records():
            if record.get("boot_id") != boot:
                continue  # its rules went with the reboot; rm forgets it
            for theirs in record.get("publish", []):
                for ours in ports:
                    if ports_clash(theirs, ours):
                        who = self._container_name(record["namespace"], record["container_id"])
                        raise AlreadyExists(
                            f"host port {_port_text(ours)} is already published by container {who}",
                            hint="publish another host port, or stop that container",
                        )

    def _container_name(self, namespace: str, container_id: str) -> str:
        """_container_name is the container's name (and namespace if not this one)."""
        try:
            name = self._container_name_of(namespace, container_id)
        except CtlError:
            name = container_id[:12]
        return name if namespace == self.namespace else f"{name} (namespace {namespace})"

    # Bridges.

    def unused_bridges(self) -> list[UnusedBridge]:
        """unused_bridges are the bridges this root made that have no port (``system check``).

        A bridge is this root's if one of its networks names it, or if its
        alias says this root made it (``ctl.network.bridges``): the network
        was removed meanwhile. Other roots' bridges, ``ctl-`` named too, are
        never reported, nor are unmarked ones (made before bridges were
        marked) that no network of this root names: nothing tells whose
        they are.
        """
        mark = bridges.alias_for(str(self.paths.root))
        with network_lock(self.paths, shared=True):
            networks = {}
            for name in self.networks.names():
                with contextlib.suppress(CtlError):
                    networks[config.bridge_of(self.networks.conflist(name))] = name
            found = []
            for bridge in bridges.ctl_named():
                if bridges.ports(bridge):
                    continue
                if bridge in networks:
                    problem = f"up, but no container uses network {networks[bridge]!r}"
                elif mark is not None and bridges.alias(bridge) == mark:
                    problem = "left by a network this root no longer has"
                else:
                    continue
                found.append(UnusedBridge(self, bridge, problem))
        return found

    # Networks: what needs the attachments, and the definitions for callers that hold only this.

    def list_networks(self) -> list[NetworkInfo]:
        return self.networks.list()

    def pseudo_networks(self) -> tuple[NetworkInfo, ...]:
        return self.networks.pseudo_networks()

    def get(self, name: str) -> NetworkInfo:
        return self.networks.get(name)

    def create(
        self, name: str, subnet: str | None = None, gateway: str | None = None
    ) -> NetworkInfo:
        return self.networks.create(name, subnet, gateway)

    def inspect(self, name: str) -> dict[str, Any]:
        """inspect shows a network in docker's shape, with its containers and its conflist."""
        info = self.networks.get(name)
        if info.name in dict(config.PSEUDO_NETWORKS):
            return self._inspect_pseudo(info)
        conflist = self.networks.conflist(info.name)
        containers: dict[str, Any] = {}
        for record in self._all_records():
            if record["network"] != info.name:
                continue
            result = record.get("result") or {}
            interfaces = result.get("interfaces") or []
            mac = next(
                (i.get("mac", "") for i in interfaces if i.get("sandbox")),
                "",
            )
            ips = container_ips(result, record["ifname"])
            v4 = [ip for ip in ips if ":" not in ip]
            v6 = [ip for ip in ips if ":" in ip]
            containers[record["container_id"]] = {
                "Name": self._container_name(record["namespace"], record["container_id"]),
                "Namespace": record["namespace"],
                "IPv4Address": v4[0] if v4 else "",
                "IPv6Address": v6[0] if v6 else "",
                "MacAddress": mac,
                "NetNS": record["netns"],
                "Aliases": record.get("aliases") or [],
            }
        ipam = [{"Subnet": info.subnet, "Gateway": info.gateway}]
        if info.subnet6:
            ipam.append({"Subnet": info.subnet6, "Gateway": info.gateway6})
        return {
            "Name": config.docker_name(info.name),
            "Id": info.id,
            "Created": info.created,
            "Driver": info.driver,
            "Scope": "local",
            "EnableIPv6": bool(info.subnet6),
            "Internal": info.internal,
            "IPAM": {"Driver": "host-local", "Config": ipam},
            "Options": {"bridge": info.bridge, **dict(info.options)},
            "Labels": dict(info.labels),
            "Containers": containers,
            "CNI": conflist,
        }

    @staticmethod
    def _inspect_pseudo(info: NetworkInfo) -> dict[str, Any]:
        """_inspect_pseudo is ``host`` or ``none`` in docker's shape; ctl keeps no list of
        the containers that run with ``--net host`` or ``none``."""
        return {
            "Name": info.name,
            "Id": info.id,
            "Created": info.created,
            "Driver": info.driver,
            "Scope": "local",
            "EnableIPv6": False,
            "Internal": False,
            "IPAM": {"Driver": "default", "Config": []},
            "Options": {},
            "Labels": {},
            "Containers": {},
        }

    def remove(self, name: str) -> None:
        """remove deletes a network, its address leases and its bridge.

        The predefined networks (bridge, host, none) and a network with attached
        containers raise FailedPrecondition.
        """
        refuse_predefined(name)
        with network_lock(self.paths):
            self.networks.conflist(name)
            attached = [
                self._container_name(r["namespace"], r["container_id"])
                for r in self._all_records()
                if r["network"] == name
            ]
            if attached:
                raise FailedPrecondition(
                    f"network {name!r} has attached containers: {', '.join(attached)}",
                    hint="remove those containers first",
                )
            self.networks.remove_locked(name)

    # Static addresses (--ip).

    def check_static(self, network: str, ip: str | None, ip6: str | None) -> list[str]:
        """check_static refuses a static address (--ip, --ip6) outside the network's
        subnets, its gateway, or one leased already; it returns them as CIDRs."""
        from ctl.network import connect

        name = resolve_network(network)
        return connect.static_addresses(self, name, self.networks.conflist(name), ip, ip6)
