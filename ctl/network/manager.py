"""NetworkManager: containers on and off CNI networks, and the networks themselves.

``attach`` gives a container its own network namespace on a network:

1. under the network lock (one flock for the whole root, as bridges, subnets
   and host ports are the host's, not a namespace's), check that no other
   attached container publishes the same host port;
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
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import time
from pathlib import Path

from ctl import fsutil, identifiers
from ctl.errdefs import (
    AlreadyExists,
    CtlError,
    DataCorrupted,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from ctl.network import Attachment, NetworkInfo, config
from ctl.paths import DEFAULT_ROOT, Paths
from ctl.runtime.state import boot_id

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from typing import Any

    from ctl.network.cni import CNI, RuntimeConf
    from ctl.runtime.runopts import PortMapping

IFNAME = "eth0"
RECORD_VERSION = 1
LOCK_TIMEOUT = 300.0
# --net words that mean the default network.
DEFAULT_ALIASES = ("bridge", "default")
_STAND_IN_PEER = "ctl-stand-in"


def resolve_network(network: str) -> str:
    """resolve_network maps ``--net bridge`` to the default network; other names stay."""
    return config.DEFAULT_NETWORK if network in DEFAULT_ALIASES else network


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


class NetworkManager:
    """NetworkManager attaches the containers of one namespace to networks.

    Networks themselves are shared by all namespaces, like docker's.
    ``root`` is the ctl root directory.
    """

    def __init__(self, root: Path, namespace: str) -> None:
        self.root = Path(root).absolute()
        self.namespace = identifiers.validate("namespace", namespace)
        self.store = config.NetworkStore(self.root / "networks")
        self._netns_dir = self.root / "netns"
        self._attachments = self.root / "cni" / "attachments"
        self._ipam_dir = self.root / "cni" / "ipam"
        self._lock_path = self.root / "locks" / "network.lock"
        self._cni: CNI | None = None

    @property
    def cni(self) -> CNI:
        # Imported here, as netns is: listing networks needs neither.
        if self._cni is None:
            from ctl.network.cni import CNI

            self._cni = CNI()
        return self._cni

    def netns_path(self, container_id: str) -> Path:
        """netns_path is where the container's namespace is bound, attached or not."""
        return self._netns_dir / self.namespace / identifiers.validate("container id", container_id)

    def _record_path(self, container_id: str) -> Path:
        return self._attachments / self.namespace / f"{container_id}.json"

    def _lock(self, shared: bool = False) -> fsutil.FileLock:
        return fsutil.FileLock(
            self._lock_path, shared=shared, timeout=LOCK_TIMEOUT, what="the network state"
        )

    def _container_lock(self, container_id: str) -> fsutil.FileLock:
        return fsutil.FileLock(
            self._lock_path.parent / f"network-{self.namespace}-{container_id}.lock",
            timeout=LOCK_TIMEOUT,
            what=f"the network of container {container_id}",
            remove=True,
        )

    def _ensure_root(self) -> None:
        Paths(self.root).ensure()

    # Attachments.

    def attach(
        self, container_id: str, network: str, publish: Sequence[PortMapping], hostname: str
    ) -> Attachment:
        """attach puts the container on ``network`` (``bridge`` is the default network).

        A host port in ``publish`` that another attached container publishes
        (in any namespace) raises AlreadyExists before anything is set up. A
        record this container left behind (a crash) is detached first: call
        this only while the container has no running task. On failure
        nothing is left attached.
        """
        from ctl.network import netns
        from ctl.network.cni import RuntimeConf

        path = self.netns_path(container_id)
        name = resolve_network(network)
        ports = check_publish(publish)
        self._ensure_root()
        with self._lock():
            self._detach_locked(container_id)
            conflist = config.for_container(self._network_locked(name), bool(ports))
            self._check_ports(ports)
            cni_version = conflist["cniVersion"]
            record: dict[str, Any] = {
                "version": RECORD_VERSION,
                "container_id": container_id,
                "namespace": self.namespace,
                "network": name,
                "netns": str(path),
                "ifname": IFNAME,
                "hostname": hostname,
                "publish": ports,
                "config": conflist,
                "loopback": config.loopback_config(cni_version),
                "result": None,
                "boot_id": boot_id(),
                "created": time.time(),
            }
            self._write(record)

            def recorded(result: dict[str, Any]) -> None:
                record["result"] = result
                self._write(record)

            try:
                netns.create(path)
                self.cni.add(record["loopback"], RuntimeConf(container_id, str(path), "lo"))
                self.cni.add_list(conflist, self._runtime_conf(record), on_result=recorded)
                return attachment_of(record)
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
        if not self._record_path(container_id).exists() and not os.path.lexists(path):
            return  # never attached, or detached already: no lock needed
        with self._lock(shared=True), self._container_lock(container_id):
            self._detach_locked(container_id)

    def check(self, container_id: str) -> bool:
        """check asks the plugins whether the container's network is still as ADD left it.

        It raises the first plugin's complaint; False means there is nothing
        to check (not attached, or the network opts out of CHECK).
        """
        from ctl.network import netns

        path = self.netns_path(container_id)
        with self._lock(shared=True), self._container_lock(container_id):
            record = self._read(self._record_path(container_id))
            if record is None or not record.get("result"):
                return False
            if not netns.is_netns(path):
                raise NotFound(f"network namespace {path} is gone")
            return self.cni.check_list(
                record["config"], self._runtime_conf(record), record["result"]
            )

    def attachment(self, container_id: str) -> Attachment | None:
        """attachment is where the container is attached, or None."""
        self.netns_path(container_id)
        record = self._read(self._record_path(container_id))
        if record is None or not record.get("result"):
            return None
        return attachment_of(record)

    def _detach_locked(self, container_id: str) -> None:
        from ctl.network import netns

        path = self.netns_path(container_id)
        record_path = self._record_path(container_id)
        record = self._read(record_path)
        if record is not None:
            self._delete(record, path)
        netns.remove(path)
        with contextlib.suppress(FileNotFoundError):
            record_path.unlink()
            fsutil.fsync_dir(record_path.parent)

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

    def _runtime_conf(self, record: dict[str, Any]) -> RuntimeConf:
        from ctl.network.cni import RuntimeConf

        return RuntimeConf(
            container_id=record["container_id"],
            netns=record["netns"],
            ifname=record["ifname"],
            capability_args={"portMappings": record["publish"]},
        )

    def _write(self, record: dict[str, Any]) -> None:
        fsutil.atomic_write_json(self._record_path(record["container_id"]), record)

    @staticmethod
    def _read(path: Path) -> dict[str, Any] | None:
        try:
            record = fsutil.read_json(path)
        except FileNotFoundError:
            return None
        except ValueError as err:
            raise DataCorrupted(f"network attachment record {path} is not valid JSON") from err
        if not isinstance(record, dict) or record.get("version") != RECORD_VERSION:
            raise DataCorrupted(f"network attachment record {path}: unknown version")
        return record

    def _records(self) -> Iterator[dict[str, Any]]:
        """_records yields the attachment records of every namespace."""
        try:
            namespaces = sorted(os.listdir(self._attachments))
        except FileNotFoundError:
            return
        for namespace in namespaces:
            directory = self._attachments / namespace
            try:
                entries = sorted(os.listdir(directory))
            except (FileNotFoundError, NotADirectoryError):
                continue
            for entry in entries:
                if entry.endswith(".json") and not entry.startswith("."):
                    with contextlib.suppress(DataCorrupted):
                        record = self._read(directory / entry)
                        if record is not None:
                            yield record

    def _check_ports(self, ports: list[dict[str, Any]]) -> None:
        if not ports:
            return
        boot = boot_id()
        for record in self._records():
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
        from ctl.containers.store import LocalContainerStore

        paths = Paths(self.root)
        store = LocalContainerStore(
            paths.containers(namespace), paths.locks / f"containers-{namespace}.lock"
        )
        try:
            name = store.get(container_id).name
        except CtlError:
            name = container_id[:12]
        return name if namespace == self.namespace else f"{name} (namespace {namespace})"

    # Networks.

    def _network_locked(self, name: str) -> dict[str, Any]:
        """_network_locked is the network's conflist; the default one is written on first use."""
        try:
            return self.store.get(name)
        except NotFound:
            if name != config.DEFAULT_NETWORK:
                raise NotFound(
                    f"network {name!r}: no such network", hint="see 'ctl network ls'"
                ) from None
        return self._create_locked(name, None, None)

    def _create_locked(self, name: str, subnet: str | None, gateway: str | None) -> dict[str, Any]:
        import secrets

        from ctl.timefmt import format_rfc3339

        existing = self.store.list()
        ours = [ipaddress.IPv4Network(config.info_of(c).subnet) for c in existing]
        if subnet is None:
            taken = ours + config.host_networks()
            taken += config.cni_subnets(config.system_cni_conflists())
            chosen = config.pick_subnet(taken)
        else:
            chosen = config.parse_subnet(subnet)
            for other in existing:
                if ipaddress.IPv4Network(config.info_of(other).subnet).overlaps(chosen):
                    raise FailedPrecondition(
                        f"subnet {chosen} overlaps network {other['name']!r} "
                        f"({config.info_of(other).subnet})"
                    )
            for route in config.host_networks():
                if route.overlaps(chosen):
                    raise FailedPrecondition(f"subnet {chosen} overlaps the host's {route}")
        network_id = secrets.token_hex(32)
        default_bridge = name == config.DEFAULT_NETWORK and self.root == Path(DEFAULT_ROOT)
        conflist = config.bridge_conflist(
            name,
            network_id,
            config.bridge_name(network_id, default_bridge),
            chosen,
            config.parse_gateway(gateway, chosen),
            self._ipam_dir,
            self.cni.best_version("bridge"),
            format_rfc3339(time.time()),
        )
        self.store.put(conflist)
        return conflist

    def list_networks(self) -> list[NetworkInfo]:
        """list_networks lists every network, the default one (written now if new) first."""
        self.ensure_default()
        infos = [config.info_of(c) for c in self.store.list()]
        return sorted(infos, key=lambda i: (i.name != config.DEFAULT_NETWORK, i.name))

    def ensure_default(self) -> None:
        """ensure_default writes the default network's conflist if there is none yet."""
        if self.store.path(config.DEFAULT_NETWORK).exists():
            return
        self._ensure_root()
        with self._lock():
            self._network_locked(config.DEFAULT_NETWORK)

    def get(self, name: str) -> NetworkInfo:
        name = resolve_network(name)
        if name == config.DEFAULT_NETWORK:
            self.ensure_default()
        return config.info_of(self.store.get(name))

    def inspect(self, name: str) -> dict[str, Any]:
        """inspect shows a network in docker's shape, with its containers and its conflist."""
        info = self.get(name)
        conflist = self.store.get(info.name)
        containers: dict[str, Any] = {}
        for record in self._records():
            if record["network"] != info.name:
                continue
            result = record.get("result") or {}
            interfaces = result.get("interfaces") or []
            mac = next(
                (i.get("mac", "") for i in interfaces if i.get("sandbox")),
                "",
            )
            ips = container_ips(result, record["ifname"])
            containers[record["container_id"]] = {
                "Name": self._container_name(record["namespace"], record["container_id"]),
                "Namespace": record["namespace"],
                "IPv4Address": ips[0] if ips else "",
                "MacAddress": mac,
                "NetNS": record["netns"],
            }
        return {
            "Name": info.name,
            "Id": info.id,
            "Created": info.created,
            "Driver": info.driver,
            "Scope": "local",
            "IPAM": {
                "Driver": "host-local",
                "Config": [{"Subnet": info.subnet, "Gateway": info.gateway}],
            },
            "Options": {"bridge": info.bridge},
            "Containers": containers,
            "CNI": conflist,
        }

    def create(
        self, name: str, subnet: str | None = None, gateway: str | None = None
    ) -> NetworkInfo:
        """create adds a bridge network with its own bridge and subnet.

        Without ``subnet`` it takes a free private /16. Creating the default
        network (``ctl``) before its first use chooses its subnet.
        """
        config.validate_name(name)
        if gateway is not None and subnet is None:
            raise InvalidArgument("--gateway needs --subnet")
        self._ensure_root()
        with self._lock():
            if self.store.path(name).exists():
                raise AlreadyExists(f"network {name!r}: already exists")
            return config.info_of(self._create_locked(name, subnet, gateway))

    def remove(self, name: str) -> None:
        """remove deletes a network, its address leases and its bridge.

        The default network and a network with attached containers raise
        FailedPrecondition.
        """
        import shutil
        import subprocess

        name = resolve_network(name)
        if name == config.DEFAULT_NETWORK:
            raise FailedPrecondition(
                f"network {name!r} is the default network and cannot be removed"
            )
        with self._lock():
            info = config.info_of(self.store.get(name))
            attached = [
                self._container_name(r["namespace"], r["container_id"])
                for r in self._records()
                if r["network"] == name
            ]
            if attached:
                raise FailedPrecondition(
                    f"network {name!r} has attached containers: {', '.join(attached)}",
                    hint="remove those containers first",
                )
            self.store.delete(name)
            shutil.rmtree(self._ipam_dir / name, ignore_errors=True)
            # The bridge plugin creates bridges but never deletes them.
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(
                    ["ip", "link", "delete", info.bridge, "type", "bridge"],
                    capture_output=True,
                    timeout=30,
                    check=False,
                )
