"""Network definitions: the CNI conflists ``ctl.network.networks`` keeps, and how they are made.

Every ctl network is a bridge network, one conflist file each::

    <root>/networks/<name>.conflist

    {"cniVersion": "1.0.0", "name": "ctl",
     "ctl": {"id": "<64 hex>", "created": "<RFC 3339>", "subnet": ..., "gateway": ...,
             "bridge": "ctl0"},
     "plugins": [
       {"type": "bridge", "bridge": "ctl0", "isGateway": true, "ipMasq": true,
        "hairpinMode": true,
        "ipam": {"type": "host-local", "dataDir": "<root>/cni/ipam",
                 "ranges": [[{"subnet": "10.90.0.0/16", "gateway": "10.90.0.1"}]],
                 "routes": [{"dst": "0.0.0.0/0"}]}},
       {"type": "portmap", "snat": true, "capabilities": {"portMappings": true}},
       {"type": "firewall", "backend": "iptables"}]}

The ``ctl`` key is ours (CNI ignores keys it does not know, and plugins only
ever see their own entry of ``plugins``). ``portmap`` with ``snat`` marks
the bridge ``route_localnet`` so that published ports answer on 127.0.0.1;
``firewall`` lets the container's traffic through the host's FORWARD chain.
Networks are isolated from each other by ctl's own chains
(``ctl.network.isolation``), which the firewall plugin reaches as its admin
chain; its ``ingressPolicy: same-bridge`` would too, but leaves rules behind
for every bridge that ever existed. Networks made by ``network create`` carry
``"dns": true`` in the ``ctl`` key: their containers resolve each other's
names (``ctl.network.dns``); ``--ipv6`` adds a second range, ``--internal``
drops the default route and the masquerade.

The default network ``ctl`` is written on first use. Its bridge is ``ctl0``
in the default root; every other network's bridge is named after the
network's id (``bridge_name``). A subnet not given is the first /16 of
``CANDIDATE_SUBNETS``, counted from a place the network's id picks
(``candidate_subnets``), that overlaps none of the host's routes and
addresses, other CNI configurations' subnets (in /etc/cni/net.d) and ctl's
other networks. A network's bridge, and so its route, exists only while
containers use it (``ctl.network.bridges``), so the host's routes do not
show the subnets of other roots' idle networks: starting each search
elsewhere keeps two roots from picking the same /16 but by chance, and an
attach that finds its subnet routed elsewhere refuses to make the bridge.
"""

from __future__ import annotations

import ipaddress
import json
import os

from ctl import identifiers
from ctl.errdefs import AlreadyExists, DataCorrupted, InvalidArgument
from ctl.network import NetworkInfo, _Value

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any

    IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
    IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_NETWORK = "ctl"
# What docker calls its default network, and so what ctl shows for DEFAULT_NETWORK.
DOCKER_DEFAULT_NETWORK = "bridge"
DEFAULT_BRIDGE = "ctl0"
DRIVER = "bridge"
# ``--net`` modes that are no CNI network, which docker lists as networks: name, driver.
PSEUDO_NETWORKS = (("host", "host"), ("none", "null"))
# ``--net`` words that are not network names.
RESERVED_NAMES = frozenset({"bridge", "host", "none", "default", "container"})
# 10.88.0.0/16 is podman's default network and 10.89.0.0/16 the pool of its other networks;
# they have no route while podman runs no container, so the host's routes cannot tell.
CANDIDATE_SUBNETS = tuple(ipaddress.IPv4Network(f"10.{n}.0.0/16") for n in range(90, 255))
# Where other CNI users keep their networks; their subnets are taken.
SYSTEM_CNI_DIRS = ("/etc/cni/net.d",)
LOOPBACK_NAME = "ctl-loopback"
SUFFIX = ".conflist"
IFNAMSIZ = 15
# docker's bridge driver options (``network create -o``) that ctl applies.
OPT_MTU = "com.docker.network.driver.mtu"
OPT_MASQUERADE = "com.docker.network.bridge.enable_ip_masquerade"
OPT_BRIDGE_NAME = "com.docker.network.bridge.name"


def docker_name(name: str) -> str:
    """docker_name is the name docker gives the network ``name``: the default one is ``bridge``.

    It is what ctl shows (``network ls``, ``inspect``, filters); the records,
    conflists and bridges keep the network's own name.
    """
    return DOCKER_DEFAULT_NETWORK if name == DEFAULT_NETWORK else name


def info_of(conflist: dict[str, Any]) -> NetworkInfo:
    """info_of reads our summary of a stored conflist."""
    meta = conflist.get("ctl") or {}
    try:
        return NetworkInfo(
            id=str(meta["id"]),
            name=str(conflist["name"]),
            driver=DRIVER,
            subnet=str(meta["subnet"]),
            gateway=str(meta["gateway"]),
            bridge=str(meta["bridge"]),
            created=str(meta.get("created", "")),
            subnet6=str(meta.get("subnet6") or ""),
            gateway6=str(meta.get("gateway6") or ""),
            internal=bool(meta.get("internal")),
            labels=tuple(sorted((str(k), str(v)) for k, v in (meta.get("labels") or {}).items())),
            options=tuple(sorted((str(k), str(v)) for k, v in (meta.get("options") or {}).items())),
        )
    except (KeyError, AttributeError) as err:
        raise DataCorrupted(
            f"network {conflist.get('name')!r}: conflist lacks ctl.{err.args[0]}"
        ) from err


def has_dns(conflist: dict[str, Any]) -> bool:
    """has_dns is whether the network's containers resolve each other's names (not the default)."""
    return bool((conflist.get("ctl") or {}).get("dns"))


class Addressing(_Value):
    """Addressing is one address family of a network: ``--subnet``, ``--gateway``, ``--ip-range``.

    ``aux`` are ``--aux-address`` entries (name, address) inside the subnet,
    which no container gets.
    """

    __slots__ = ("aux", "gateway", "ip_range", "subnet")

    def __init__(
        self,
        subnet: IPNetwork,
        gateway: IPAddress,
        ip_range: IPNetwork | None = None,
        aux: tuple[tuple[str, IPAddress], ...] = (),
    ) -> None:
        self.subnet = subnet
        self.gateway = gateway
        self.ip_range = ip_range
        self.aux = aux

    def ipam_range(self) -> dict[str, str]:
        """ipam_range is host-local's range: the subnet, narrowed to ``ip_range`` if given."""
        entry = {"subnet": str(self.subnet), "gateway": str(self.gateway)}
        if self.ip_range is not None:
            first = max(self.ip_range.network_address, self.subnet.network_address + 1)
            last = self.ip_range.broadcast_address
            if self.subnet.version == 4:
                last = min(last, self.subnet.broadcast_address - 1)
            entry["rangeStart"], entry["rangeEnd"] = str(first), str(last)
        return entry


def bridge_conflist(
    name: str,
    network_id: str,
    bridge: str,
    subnet: ipaddress.IPv4Network,
    gateway: ipaddress.IPv4Address,
    ipam_dir: str,
    cni_version: str,
    created: str,
    *,
    ipv4: Addressing | None = None,
    ipv6: Addressing | None = None,
    internal: bool = False,
    dns: bool = False,
    labels: dict[str, str] | None = None,
    options: dict[str, str] | None = None,
) -> dict[str, Any]:
    """bridge_conflist is the CNI configuration of one ctl bridge network.

    ``ipv4`` (default: ``subnet`` and ``gateway`` alone) and ``ipv6`` are
    the host-local ranges; an ``internal`` network has no default route and
    no masquerade; ``dns`` networks get a resolver (``ctl.network.dns``).
    ``options`` are docker's bridge driver options: ``mtu`` and
    ``enable_ip_masquerade`` are applied, the others kept for ``inspect``.
    """
    families = [ipv4 or Addressing(subnet, gateway)] + ([ipv6] if ipv6 else [])
    meta: dict[str, Any] = {
        "id": network_id,
        "created": created,
        "subnet": str(subnet),
        "gateway": str(gateway),
        "bridge": bridge,
    }
    if ipv6 is not None:
        meta["subnet6"], meta["gateway6"] = str(ipv6.subnet), str(ipv6.gateway)
    for key, value in (
        ("internal", internal),
        ("dns", dns),
        ("labels", labels),
        ("options", options),
    ):
        if value:
            meta[key] = value
    routes = [] if internal else [{"dst": "0.0.0.0/0"}] + ([{"dst": "::/0"}] if ipv6 else [])
    bridge_plugin: dict[str, Any] = {
        "type": "bridge",
        "bridge": bridge,
        "isGateway": True,
        "ipMasq": not internal,
        "hairpinMode": True,
        "ipam": {
            "type": "host-local",
            "dataDir": ipam_dir,
            "ranges": [[family.ipam_range()] for family in families],
            "routes": routes,
        },
    }
    opts = options or {}
    if opts.get(OPT_MASQUERADE, "true").lower() == "false":
        bridge_plugin["ipMasq"] = False
    if OPT_MTU in opts:
        bridge_plugin["mtu"] = int(opts[OPT_MTU])
    return {
        "cniVersion": cni_version,
        "name": name,
        "ctl": meta,
        "plugins": [
            bridge_plugin,
            {"type": "portmap", "snat": True, "capabilities": {"portMappings": True}},
            {"type": "firewall", "backend": "iptables"},
        ],
    }


def bridge_of(conflist: dict[str, Any]) -> str:
    """bridge_of is the bridge the conflist's bridge plugin attaches containers to."""
    for plugin in conflist["plugins"]:
        if plugin.get("type") == "bridge":
            return str(plugin["bridge"])
    raise DataCorrupted(f"network {conflist.get('name')!r}: conflist has no bridge plugin")


def for_container(conflist: dict[str, Any], publishes: bool) -> dict[str, Any]:
    """for_container is the conflist that one container's ADD and DEL run.

    A container that publishes no port goes without ``portmap``: its ADD
    would do nothing, and its DEL still spends longer than any other plugin
    looking for the container's chains. DEL runs the recorded conflist, so
    it matches what ADD did.
    """
    if publishes:
        return conflist
    plugins = [p for p in conflist["plugins"] if p.get("type") != "portmap"]
    return {**conflist, "plugins": plugins}


def loopback_config(cni_version: str) -> dict[str, Any]:
    """loopback_config brings up ``lo`` in a container's namespace."""
    return {"cniVersion": cni_version, "name": LOOPBACK_NAME, "type": "loopback"}


# Subnets.


def parse_route_table(text: str) -> list[ipaddress.IPv4Network]:
    """parse_route_table reads /proc/net/route: the destinations, default route left out.

    Addresses there are hexadecimal in host byte order (little-endian on the
    machines ctl runs on).
    """
    networks = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        try:
            destination = int(fields[1], 16).to_bytes(4, "little")
            mask = int(fields[7], 16).to_bytes(4, "little")
        except ValueError:
            continue
        network = ipaddress.IPv4Network(
            (ipaddress.IPv4Address(destination), str(ipaddress.IPv4Address(mask))), strict=False
        )
        if network.prefixlen > 0:
            networks.append(network)
    return networks


def parse_ip_addr(text: str) -> list[ipaddress.IPv4Network]:
    """parse_ip_addr reads the IPv4 networks of ``ip -j addr``'s output."""
    networks = []
    for link in json.loads(text or "[]"):
        for addr in link.get("addr_info", []):
            if addr.get("family") == "inet":
                networks.append(
                    ipaddress.IPv4Network(f"{addr['local']}/{addr['prefixlen']}", strict=False)
                )
    return networks


def cni_subnets(conflists: Iterable[dict[str, Any]]) -> list[ipaddress.IPv4Network]:
    """cni_subnets finds every IPv4 subnet in host-local ranges (or ``subnet``) of conflists."""
    found = []
    for conflist in conflists:
        plugins = conflist.get("plugins") or [conflist]
        for plugin in plugins:
            ipam = plugin.get("ipam") if isinstance(plugin, dict) else None
            if not isinstance(ipam, dict):
                continue
            ranges = [r for rs in ipam.get("ranges", []) for r in rs]
            subnets = [r.get("subnet") for r in ranges] + [ipam.get("subnet")]
            for subnet in subnets:
                try:
                    network = ipaddress.ip_network(str(subnet), strict=False)
                except ValueError:
                    continue
                if isinstance(network, ipaddress.IPv4Network):
                    found.append(network)
    return found


def host_networks() -> list[ipaddress.IPv4Network]:
    """host_networks are the IPv4 networks the host routes to or has addresses in."""
    import subprocess

    taken: list[ipaddress.IPv4Network] = []
    try:
        with open("/proc/net/route") as f:
            taken += parse_route_table(f.read())
    except OSError:
        pass
    try:
        out = subprocess.run(
            ["ip", "-j", "addr"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
        taken += parse_ip_addr(out)
    except (OSError, subprocess.SubprocessError, ValueError):
        pass
    return taken


def system_cni_conflists(dirs: Iterable[str] = SYSTEM_CNI_DIRS) -> Iterator[dict[str, Any]]:
    for directory in dirs:
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            if not name.endswith((".conflist", ".conf", ".json")):
                continue
            try:
                with open(os.path.join(directory, name)) as f:
                    value = json.load(f)
            except (OSError, ValueError):
                continue
            if isinstance(value, dict):
                yield value


def candidate_subnets(network_id: str) -> list[ipaddress.IPv4Network]:
    """candidate_subnets is ``CANDIDATE_SUBNETS`` rotated to start where the (hex) id says."""
    start = int(network_id[:8], 16) % len(CANDIDATE_SUBNETS)
    return [*CANDIDATE_SUBNETS[start:], *CANDIDATE_SUBNETS[:start]]


def pick_subnet(
    taken: Iterable[ipaddress.IPv4Network],
    candidates: Iterable[ipaddress.IPv4Network] = CANDIDATE_SUBNETS,
) -> ipaddress.IPv4Network:
    """pick_subnet is the first candidate that overlaps nothing in ``taken``."""
    busy = list(taken)
    for candidate in candidates:
        if not any(candidate.overlaps(t) for t in busy):
            return candidate
    raise AlreadyExists(
        "no free private subnet left for a network", hint="give one with --subnet CIDR"
    )


def parse_subnet(value: str) -> ipaddress.IPv4Network:
    """parse_subnet reads ``--subnet``: an IPv4 CIDR with room for a gateway and containers."""
    try:
        subnet = ipaddress.ip_network(value, strict=True)
    except ValueError as err:
        raise InvalidArgument(f"invalid subnet {value!r}: {err}") from None
    if not isinstance(subnet, ipaddress.IPv4Network):
        raise InvalidArgument(f"invalid subnet {value!r}: only IPv4 networks are supported")
    if subnet.prefixlen > 30:
        raise InvalidArgument(f"invalid subnet {value!r}: /30 or larger is needed")
    return subnet


def parse_gateway(value: str | None, subnet: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    """parse_gateway reads ``--gateway`` (default: the subnet's first address)."""
    if value is None:
        return subnet.network_address + 1
    try:
        gateway = ipaddress.IPv4Address(value)
    except ValueError as err:
        raise InvalidArgument(f"invalid gateway {value!r}: {err}") from None
    if gateway not in subnet or gateway in (subnet.network_address, subnet.broadcast_address):
        raise InvalidArgument(f"invalid gateway {value}: not a host address of {subnet}")
    return gateway


def _parse_address(flag: str, value: str) -> IPAddress:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise InvalidArgument(f"invalid {flag} {value!r}: not an IP address") from None


def _parse_network(flag: str, value: str) -> IPNetwork:
    try:
        network = ipaddress.ip_network(value, strict=True)
    except ValueError as err:
        raise InvalidArgument(f"invalid {flag} {value!r}: {err}") from None
    if network.num_addresses < 4:
        raise InvalidArgument(f"invalid {flag} {value!r}: too small for a gateway and containers")
    return network


def ula_subnet(network_id: str) -> ipaddress.IPv6Network:
    """ula_subnet is a unique local /64 (RFC 4193) whose global id comes from the network's id."""
    return ipaddress.IPv6Network(f"fd{network_id[:2]}:{network_id[2:6]}:{network_id[6:10]}::/64")


def parse_addressing(
    subnets: Iterable[str],
    gateways: Iterable[str],
    ip_ranges: Iterable[str],
    aux_addresses: Iterable[str],
) -> list[Addressing]:
    """parse_addressing reads ``network create``'s address flags, one Addressing per ``--subnet``.

    As in docker, the n-th ``--gateway`` and ``--ip-range`` go with the n-th
    ``--subnet``, and an ``--aux-address name=IP`` with the subnet that holds
    it. At most one subnet of each family.
    """
    nets = [_parse_network("--subnet", s) for s in subnets]
    gws = [_parse_address("--gateway", g) for g in gateways]
    ranges = [_parse_network("--ip-range", r) for r in ip_ranges]
    for flag, values in (("--gateway", gws), ("--ip-range", ranges)):
        if len(values) > len(nets):
            raise InvalidArgument(f"{flag} needs a --subnet for each")
    if len({n.version for n in nets}) != len(nets):
        raise InvalidArgument("give at most one --subnet of each family (IPv4, IPv6)")
    found = []
    for index, subnet in enumerate(nets):
        gateway = gws[index] if index < len(gws) else subnet.network_address + 1
        if gateway.version != subnet.version or gateway not in subnet:
            raise InvalidArgument(f"invalid --gateway {gateway}: not in subnet {subnet}")
        if gateway == subnet.network_address or (
            subnet.version == 4 and gateway == subnet.broadcast_address
        ):
            raise InvalidArgument(f"invalid --gateway {gateway}: not a host address of {subnet}")
        ip_range = ranges[index] if index < len(ranges) else None
        if ip_range is not None and (
            ip_range.version != subnet.version or not ip_range.subnet_of(subnet)  # type: ignore[arg-type]
        ):
            raise InvalidArgument(f"invalid --ip-range {ip_range}: not inside subnet {subnet}")
        found.append(Addressing(subnet, gateway, ip_range))
    for entry in aux_addresses:
        name, sep, value = entry.partition("=")
        if not sep or not name:
            raise InvalidArgument(f"invalid --aux-address {entry!r}: use NAME=IP")
        address = _parse_address("--aux-address", value)
        holders = [a for a in found if address in a.subnet]
        if not holders:
            raise InvalidArgument(f"invalid --aux-address {entry!r}: {address} is in no --subnet")
        if address == holders[0].gateway:
            raise InvalidArgument(f"invalid --aux-address {entry!r}: {address} is the gateway")
        holders[0].aux = (*holders[0].aux, (name, address))
    return found


# Names.


def validate_name(name: str) -> str:
    """validate_name accepts a network name: an identifier, not a ``--net`` keyword."""
    identifiers.validate("network name", name)
    if name in RESERVED_NAMES:
        raise InvalidArgument(f"network name {name!r} is reserved")
    return name


def bridge_name(network_id: str, default_bridge: bool) -> str:
    """bridge_name is ``ctl0`` for the default root's default network, else ``ctl-<id>``.

    Bridges are the host's, while networks belong to a root: a name taken
    from the network's random id keeps two roots (a test's and the
    system's, say) from claiming one bridge with two subnets.
    """
    if default_bridge:
        return DEFAULT_BRIDGE
    return f"ctl-{network_id[: IFNAMSIZ - 4]}"
