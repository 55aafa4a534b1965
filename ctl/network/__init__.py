"""Container networking through the standard CNI plugins.

A container started with ``--net bridge`` (the default) or ``--net NAME``
gets a network namespace of its own, joined to a bridge network by the CNI
plugins (``bridge`` with ``host-local`` IPAM, ``portmap``, ``firewall``;
``loopback`` for ``lo``). ``ctl.network.manager.NetworkManager`` does it::

    manager = NetworkManager(paths, namespace, container_name)
    att = manager.attach(container_id, "bridge", publish, hostname)
    # runc joins att.netns_path; /etc/hosts gets att.address
    manager.detach(container_id)     # when the task exits, and on rm

On disk, under the ctl root (shared by all namespaces, like the bridges and
ports they stand for)::

    networks/<name>.conflist            a network's CNI configuration (``config``)
    netns/<ns>/<id>                     a container's namespace: an nsfs bind mount
    cni/attachments/<ns>/<id>.json      what attach did: config, ports, ADD's result
    cni/ipam/<network>/                 host-local's address leases
    cni/dns/<network>                   the resolver's names on a network (``dns``)
    locks/network.lock                  held around every change of the above

The modules: ``cni`` runs plugins per the CNI specification, ``netns`` makes
and removes named namespaces, ``config`` says what a network definition holds
and picks subnets, ``networks`` keeps the definitions, ``bridges`` handles a
network's bridge (on the host only while containers use it), ``manager``
attaches containers (and removes a network only when none is attached).
For user networks as docker's (issue 14): ``connect`` puts a running
container on more networks and keeps the resolver and the isolation rules
in step with every ADD and DEL, ``dns`` runs the resolver (aardvark-dns),
``isolation`` keeps networks apart, ``hostports`` finds host ports that a
process holds.
"""

from __future__ import annotations

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path


class _Value:
    """_Value gives a plain class a record's equality, hash and repr.

    Not a NamedTuple: ``typing`` costs more start-up time than ``network ls``
    spends on anything else.
    """

    __slots__: tuple[str, ...] = ()

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, _Value)
            and type(other) is type(self)
            and (other._values() == self._values())
        )

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"{type(self).__name__}({fields})"


class Attachment(_Value):
    """Attachment is a container's place on a network.

    ``netns_path`` is the namespace for the spec's ``linux.namespaces``;
    ``address`` (IPv4, no prefix) goes in the container's /etc/hosts;
    ``interface`` is its name inside the namespace (``eth0``);
    ``nameserver``, if set, is what the container's /etc/resolv.conf names.
    """

    __slots__ = ("address", "gateway", "interface", "nameserver", "netns_path", "network")

    def __init__(
        self,
        netns_path: Path,
        address: str,
        gateway: str,
        network: str,
        interface: str,
        nameserver: str = "",
    ) -> None:
        self.netns_path = netns_path
        self.address = address
        self.gateway = gateway
        self.network = network
        self.interface = interface
        # The network's resolver (``ctl.network.dns``); empty on the default network.
        self.nameserver = nameserver


class NetworkInfo(_Value):
    """NetworkInfo is one network as ``network ls`` shows it.

    ``subnet6`` and ``gateway6`` are empty unless the network is dual-stack
    (``--ipv6``); ``internal`` networks have no route out; ``labels`` and
    ``options`` are ``network create``'s ``--label`` and ``--opt``, as given.
    """

    __slots__ = (
        "bridge",
        "created",
        "driver",
        "gateway",
        "gateway6",
        "id",
        "internal",
        "labels",
        "name",
        "options",
        "subnet",
        "subnet6",
    )

    def __init__(
        self,
        id: str,
        name: str,
        driver: str,
        subnet: str,
        gateway: str,
        bridge: str,
        created: str,
        *,
        subnet6: str = "",
        gateway6: str = "",
        internal: bool = False,
        labels: tuple[tuple[str, str], ...] = (),
        options: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.id = id
        self.name = name
        self.driver = driver
        self.subnet = subnet
        self.gateway = gateway
        self.bridge = bridge
        self.created = created
        self.subnet6 = subnet6
        self.gateway6 = gateway6
        self.internal = internal
        self.labels = labels
        self.options = options
