"""Networks: the network definitions of a root, one conflist each.

A network is ``<root>/networks/<name>.conflist`` (its shape: ``ctl.network.config``).
Networks are shared by all namespaces, like docker's, and every change holds
the root's network lock (``network_lock``), which attachments hold too: a
network is never removed or created while a container is attached beside it.
"""

from __future__ import annotations

import ipaddress
import time
from pathlib import Path

from ctl import fsutil, identifiers
from ctl.errdefs import AlreadyExists, DataCorrupted, FailedPrecondition, InvalidArgument, NotFound
from ctl.network import NetworkInfo, bridges, config
from ctl.paths import DEFAULT_ROOT
from ctl.records import RecordDir

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from ctl.paths import Paths
    from ctl.records import UnreadableRecord

LOCK_TIMEOUT = 300.0
# The holder written in the lease of an --aux-address (``Networks._reserve_aux``).
AUX_LEASE_PREFIX = "ctl-aux-address:"
# --net words that mean the default network.
DEFAULT_ALIASES = ("bridge", "default")


def refuse_predefined(name: str) -> None:
    """refuse_predefined refuses to remove the networks docker predefines, in moby's words."""
    predefined = {config.DEFAULT_NETWORK, *DEFAULT_ALIASES, *(n for n, _ in config.PSEUDO_NETWORKS)}
    if name in predefined:
        shown = config.docker_name(resolve_network(name))
        raise FailedPrecondition(f"{shown} is a pre-defined network and cannot be removed")


def resolve_network(network: str) -> str:
    """resolve_network maps ``--net bridge`` to the default network; other names stay."""
    return config.DEFAULT_NETWORK if network in DEFAULT_ALIASES else network


class CreateRequest:
    """CreateRequest holds ``network create``'s flags beyond the IPv4 subnet and gateway."""

    def __init__(
        self,
        *,
        subnets: Sequence[str] = (),
        gateways: Sequence[str] = (),
        ip_ranges: Sequence[str] = (),
        aux_addresses: Sequence[str] = (),
        ipv6: bool = False,
        internal: bool = False,
        labels: dict[str, str] | None = None,
        options: dict[str, str] | None = None,
    ) -> None:
        self.subnets = list(subnets)
        self.gateways = list(gateways)
        self.ip_ranges = list(ip_ranges)
        self.aux_addresses = list(aux_addresses)
        self.ipv6 = ipv6
        self.internal = internal
        self.labels = dict(labels or {})
        self.options = dict(options or {})


def network_lock(paths: Paths, shared: bool = False) -> fsutil.FileLock:
    """network_lock is the root's network lock: ADD and network changes exclusive, DEL shared."""
    return fsutil.FileLock(
        paths.lock("network"), shared=shared, timeout=LOCK_TIMEOUT, what="the network state"
    )


def _conflist(value: Any) -> dict[str, Any]:
    """_conflist accepts a stored conflist: an object with a name and ctl's summary."""
    if not isinstance(value, dict):
        raise TypeError(f"a conflist is an object, not {type(value).__name__}")
    config.info_of(value)
    return value


class Networks:
    """Networks creates, reads and removes the networks of one root.

    ``conflist_locked`` and ``remove_locked`` expect the caller to hold
    ``network_lock``; every other change takes it.
    """

    def __init__(self, paths: Paths) -> None:
        self._paths = paths
        self._records = RecordDir(paths.networks, suffix=config.SUFFIX, what="network")

    def _key(self, name: str) -> str:
        return identifiers.validate("network name", name)

    def exists(self, name: str) -> bool:
        return self._records.exists(self._key(name))

    def conflist(self, name: str) -> dict[str, Any]:
        """conflist is the network's stored CNI configuration; NotFound if there is none."""
        found = self._records.get(self._key(name), _conflist)
        if found is None:
            raise NotFound(f"network {name!r}: no such network", hint="see 'ctl network ls'")
        if found["name"] != name:
            raise DataCorrupted(f"{self._records.path(name)}: the conflist of {found['name']!r}")
        return found

    def names(self) -> list[str]:
        """names are the networks on disk, read without writing (the default may be absent)."""
        names = []
        for key in self._records.all_keys():
            try:
                names.append(self._key(key))
            except InvalidArgument:
                continue
        return names

    def damaged(self) -> Sequence[UnreadableRecord]:
        """damaged are the conflists that cannot be read (``system check``)."""
        return self._records.damaged(_conflist)

    def _conflists(self) -> list[dict[str, Any]]:
        return list(self._records.list(_conflist, self.names()))

    def list(self) -> list[NetworkInfo]:
        """list lists every network, the default one (written now if new) first."""
        self.ensure_default()
        infos = [config.info_of(c) for c in self._conflists()]
        return sorted(infos, key=lambda i: (i.name != config.DEFAULT_NETWORK, i.name))

    def pseudo_networks(self) -> tuple[NetworkInfo, ...]:
        """pseudo_networks are ``host`` and ``none`` as docker lists them, with ids made from
        the root's path and their name: each root's stay the same, and differ from another's."""
        import hashlib

        return tuple(
            NetworkInfo(
                id=hashlib.sha256(f"{self._paths.root}\0{name}".encode()).hexdigest(),
                name=name,
                driver=driver,
                subnet="",
                gateway="",
                bridge="",
                created="",
            )
            for name, driver in config.PSEUDO_NETWORKS
        )

    def get(self, name: str) -> NetworkInfo:
        """get is the network ``name`` (``bridge`` is the default network; ``host`` and
        ``none`` are pseudo-networks, which have no conflist)."""
        for pseudo in self.pseudo_networks():
            if pseudo.name == name:
                return pseudo
        name = resolve_network(name)
        if name == config.DEFAULT_NETWORK:
            self.ensure_default()
        return config.info_of(self.conflist(name))

    def ensure_default(self) -> None:
        """ensure_default writes the default network's conflist if there is none yet."""
        if self.exists(config.DEFAULT_NETWORK):
            return
        self._paths.ensure()
        with network_lock(self._paths):
            self.conflist_locked(config.DEFAULT_NETWORK)

    def conflist_locked(self, name: str) -> dict[str, Any]:
        """conflist_locked is the network's conflist; the default one is written on first use."""
        try:
            return self.conflist(name)
        except NotFound:
            if name != config.DEFAULT_NETWORK:
                raise
        return self._create_locked(name, [], None)

    def create(
        self,
        name: str,
        subnet: str | None = None,
        gateway: str | None = None,
        request: CreateRequest | None = None,
    ) -> NetworkInfo:
        """create adds a bridge network with its own bridge and subnet.

        Without a subnet it takes a free private /16 (and, with ``--ipv6``,
        a unique local /64). Creating the default network (``ctl``) before
        its first use chooses its subnet. ``request`` carries the other flags
        of ``network create``; ``subnet`` and ``gateway`` are the IPv4 ones.
        """
        config.validate_name(name)
        request = request or CreateRequest()
        if subnet is not None:
            request.subnets = [subnet, *request.subnets]
        if gateway is not None:
            if not request.subnets:
                raise InvalidArgument("--gateway needs --subnet")
            request.gateways = [gateway, *request.gateways]
        families = config.parse_addressing(
            request.subnets, request.gateways, request.ip_ranges, request.aux_addresses
        )
        bridge = request.options.get(config.OPT_BRIDGE_NAME)
        if bridge is not None:
            identifiers.validate("bridge name", bridge)
            if len(bridge) > config.IFNAMSIZ or bridges.exists(bridge):
                raise InvalidArgument(f"bridge name {bridge!r}: too long, or in use on the host")
        mtu = request.options.get(config.OPT_MTU)
        if mtu is not None and not (mtu.isdigit() and 68 <= int(mtu) <= 65535):
            raise InvalidArgument(f"invalid {config.OPT_MTU} {mtu!r}: a number from 68 to 65535")
        self._paths.ensure()
        with network_lock(self._paths):
            if self.exists(name):
                raise AlreadyExists(f"network {name!r}: already exists")
            return config.info_of(self._create_locked(name, families, request))

    def _create_locked(
        self, name: str, families: Sequence[config.Addressing], request: CreateRequest | None
    ) -> dict[str, Any]:
        import secrets

        from ctl.network.cni import CNI
        from ctl.timefmt import format_rfc3339

        network_id = secrets.token_hex(32)
        existing = self._conflists()
        given = {a.subnet.version: a for a in families}
        if 4 not in given:
            ours = [ipaddress.IPv4Network(config.info_of(c).subnet) for c in existing]
            taken = ours + config.host_networks()
            taken += config.cni_subnets(config.system_cni_conflists())
            chosen = config.pick_subnet(taken, config.candidate_subnets(network_id))
            given[4] = config.Addressing(chosen, chosen.network_address + 1)
        else:
            self._check_overlaps(given[4].subnet, existing)
        if request is not None and request.ipv6 and 6 not in given:
            ula = config.ula_subnet(network_id)
            given[6] = config.Addressing(ula, ula.network_address + 1)
        if 6 in given and not (request is not None and request.ipv6):
            raise InvalidArgument("an IPv6 --subnet needs --ipv6")
        if 6 in given:
            self._check_overlaps(given[6].subnet, existing)
        ipv4 = given[4]
        options = dict(request.options) if request is not None else {}
        default_bridge = name == config.DEFAULT_NETWORK and self._paths.root == DEFAULT_ROOT
        bridge = options.get(config.OPT_BRIDGE_NAME) or config.bridge_name(
            network_id, default_bridge
        )
        conflist = config.bridge_conflist(
            name,
            network_id,
            bridge,
            ipaddress.IPv4Network(ipv4.subnet),
            ipaddress.IPv4Address(ipv4.gateway),
            self._paths.ipam,
            CNI().best_version("bridge"),
            format_rfc3339(time.time()),
            ipv4=ipv4,
            ipv6=given.get(6),
            internal=request is not None and request.internal,
            dns=name != config.DEFAULT_NETWORK,
            labels=dict(request.labels) if request is not None else None,
            options=options,
        )
        self._reserve_aux(name, [*ipv4.aux, *(given[6].aux if 6 in given else ())])
        self._records.put(name, conflist)
        return conflist

    def _reserve_aux(self, name: str, aux: Sequence[tuple[str, Any]]) -> None:
        """_reserve_aux keeps ``--aux-address`` addresses from containers: host-local's leases.

        host-local takes an address whose lease file exists as taken; the
        files go with the network's other leases (``remove_locked``).
        """
        if not aux:
            return
        leases = Path(self._paths.leases(name))
        leases.mkdir(parents=True, exist_ok=True)
        for aux_name, address in aux:
            what = f"the lease of --aux-address {aux_name}"
            text = f"{AUX_LEASE_PREFIX}{aux_name}\n"
            fsutil.atomic_write(leases / str(address), text.encode(), what=what)

    @staticmethod
    def _check_overlaps(chosen: config.IPNetwork, existing: Sequence[dict[str, Any]]) -> None:
        for other in existing:
            info = config.info_of(other)
            for theirs in filter(None, (info.subnet, info.subnet6)):
                if ipaddress.ip_network(theirs).overlaps(chosen):
                    raise FailedPrecondition(
                        f"subnet {chosen} overlaps network {other['name']!r} ({theirs})"
                    )
        if chosen.version == 4:
            for route in config.host_networks():
                if route.overlaps(chosen):
                    raise FailedPrecondition(f"subnet {chosen} overlaps the host's {route}")

    def remove_damaged(self, damaged: UnreadableRecord) -> str:
        """remove_damaged deletes a conflist that cannot be read, and its address leases.

        The caller holds ``network_lock`` and has made sure that no
        attachment record names the network. Its bridge, whose name was in
        the conflist, is left to ``system check``'s unused bridges.
        """
        import shutil

        message = self._records.remove_damaged(damaged)
        shutil.rmtree(self._paths.leases(damaged.key), ignore_errors=True)
        return message

    def rebuild(self, damaged: UnreadableRecord, info: NetworkInfo, cni_version: str) -> None:
        """rebuild writes a damaged conflist again from ``info``, its summary kept elsewhere.

        The caller holds ``network_lock``.
        """
        subnet = ipaddress.IPv4Network(info.subnet)
        conflist = config.bridge_conflist(
            damaged.key,
            info.id,
            info.bridge,
            subnet,
            ipaddress.IPv4Address(info.gateway),
            self._paths.ipam,
            cni_version,
            info.created,
            ipv6=config.Addressing(
                ipaddress.IPv6Network(info.subnet6), ipaddress.IPv6Address(info.gateway6)
            )
            if info.subnet6
            else None,
            internal=info.internal,
            dns=damaged.key != config.DEFAULT_NETWORK,
            labels=dict(info.labels),
            options=dict(info.options),
        )
        self._records.put(damaged.key, conflist)

    def remove_locked(self, name: str) -> None:
        """remove_locked deletes a network, its address leases and its bridge.

        The caller has made sure that no container is attached to it.
        """
        import shutil

        from ctl.network import bridges

        info = config.info_of(self.conflist(name))
        # The bridge first: while the conflist is there, this root knows the bridge is its own.
        bridges.delete(info.bridge)
        self._records.delete(name)
        # host-local keeps a network's leases in <dataDir>/<network name>.
        shutil.rmtree(self._paths.leases(name), ignore_errors=True)
