"""Containers: the static configuration of a container, apart from any running task.

The store's protocol, ``ContainerStore``, is in ``ctl.containers.protocol``.
"""

from __future__ import annotations

# typing is not imported at run time: `ps` reads these records (see ctl.typeshim).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any, Literal, NamedTuple

    from ctl.runtime.health import HealthConfig
    from ctl.runtime.logs import LogConfig
else:
    from ctl.typeshim import NamedTuple

RECORD_VERSION = 1


# The record's parts that flags make (ctl.runtime.runopts parses them): here, with the record,
# so that reading one (ps of containers with ports or volumes) needs no flag parsing.
class MountSpec(NamedTuple):
    """MountSpec is one ``-v`` or ``--mount`` value: a bind mount, a tmpfs or a volume.

    A volume's ``source`` is its name ("" for a new anonymous one);
    ``ctl.volumes.mounts`` turns it into a bind or tmpfs before the spec is
    made. ``volume_nocopy`` skips the copy-up; ``volume_options`` are the
    options of a volume the mount creates.
    """

    type: Literal["bind", "tmpfs", "volume"]
    destination: str
    source: str = ""
    readonly: bool = False
    propagation: str = ""
    tmpfs_size: int | None = None
    tmpfs_mode: int | None = None
    volume_nocopy: bool = False
    # A default shared by every instance: records are never changed in place.
    volume_options: dict[str, str] = {}


class PortMapping(NamedTuple):
    """PortMapping is one ``-p``: host_ip "" means every address of the host."""

    host_ip: str
    host_port: int
    container_port: int
    protocol: str


class NetworkConnection(NamedTuple):
    """NetworkConnection is a ``network connect`` that the container keeps, as docker's
    endpoint settings: it is made again at every start, after the network it was created on.
    """

    network: str
    aliases: tuple[str, ...] = ()
    ip: str | None = None
    ip6: str | None = None


class RestartPolicy(NamedTuple):
    """RestartPolicy is ``--restart``: max_retries is 0 (no bound) except for on-failure:N."""

    name: str
    max_retries: int = 0


class RunConfig(NamedTuple):
    """RunConfig is what starting a container's task needs that its spec does not carry.

    It is the record's ``config`` object. ``args`` and ``entrypoint`` are the
    command as given (``None``: the image's entrypoint), kept for inspect.
    A record written before a field existed reads it as its default.
    """

    tty: bool = False
    # The OCI runtime (name or path) that runs the task all its life; None: runc.
    runtime: str | None = None
    stdin: bool = False
    rm: bool = False
    # logging and health checks
    log: LogConfig | None = None
    health: HealthConfig | None = None
    restart: RestartPolicy | None = None
    network: str = "none"
    publish: tuple[PortMapping, ...] = ()
    # network and lifecycle (netl): /etc/hosts, /etc/resolv.conf, CNI and stop
    publish_all: bool = False
    add_hosts: tuple[tuple[str, str], ...] = ()
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()
    domainname: str | None = None
    mac_address: str | None = None
    ip: str | None = None
    ip6: str | None = None
    stop_timeout: int | None = None
    detach_keys: str | None = None
    # networks (issue 14)
    network_aliases: tuple[str, ...] = ()
    hostname: str | None = None
    args: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    # storage: the bind and volume mounts, a volume's by name (its users, --volumes-from).
    mounts: tuple[MountSpec, ...] = ()
    # the networks joined by `network connect`, beyond `network`
    connections: tuple[NetworkConnection, ...] = ()

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "tty": self.tty,
            # Only when set: a record of a runc container keeps its shape of before.
            **({"runtime": self.runtime} if self.runtime else {}),
            "stdin": self.stdin,
            "rm": self.rm,
            # Left out when unset: a record keeps its shape from before they existed.
            **({"log": self.log.to_json()} if self.log else {}),
            **({"health": self.health.to_json()} if self.health else {}),
            "restart": self.restart._asdict() if self.restart else None,
            "network": self.network,
            "publish": [p._asdict() for p in self.publish],
            "hostname": self.hostname,
            "args": list(self.args),
            "entrypoint": list(self.entrypoint) if self.entrypoint is not None else None,
            # Left out when empty: records of containers without mounts keep their shape.
            **({"mounts": [m._asdict() for m in self.mounts]} if self.mounts else {}),
            **(
                {"connections": [c._asdict() for c in self.connections]} if self.connections else {}
            ),
        }
        # Written only when given, so that records keep their shape for containers without.
        netl: dict[str, Any] = {
            "publish_all": self.publish_all,
            "add_hosts": [list(h) for h in self.add_hosts],
            "dns": list(self.dns),
            "dns_search": list(self.dns_search),
            "dns_options": list(self.dns_options),
            "domainname": self.domainname,
            "mac_address": self.mac_address,
            "ip": self.ip,
            "ip6": self.ip6,
            "stop_timeout": self.stop_timeout,
            "detach_keys": self.detach_keys,
            "network_aliases": list(self.network_aliases),
        }
        doc.update((k, v) for k, v in netl.items() if v is not None and v is not False and v != [])
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> RunConfig:
        entrypoint = doc.get("entrypoint")
        config = cls(
            tty=bool(doc.get("tty")),
            runtime=doc.get("runtime") or None,
            stdin=bool(doc.get("stdin")),
            rm=bool(doc.get("rm")),
            network=str(doc.get("network") or "none"),
            publish_all=bool(doc.get("publish_all")),
            add_hosts=tuple((str(h[0]), str(h[1])) for h in doc.get("add_hosts") or ()),
            dns=tuple(doc.get("dns") or ()),
            dns_search=tuple(doc.get("dns_search") or ()),
            dns_options=tuple(doc.get("dns_options") or ()),
            domainname=doc.get("domainname"),
            mac_address=doc.get("mac_address"),
            ip=doc.get("ip"),
            ip6=doc.get("ip6"),
            stop_timeout=doc.get("stop_timeout"),
            detach_keys=doc.get("detach_keys"),
            network_aliases=tuple(str(a) for a in doc.get("network_aliases") or ()),
            hostname=doc.get("hostname"),
            args=tuple(doc.get("args") or ()),
            entrypoint=tuple(entrypoint) if entrypoint is not None else None,
        )
        log, health = doc.get("log"), doc.get("health")
        if isinstance(log, dict):
            from ctl.runtime.logs import LogConfig

            config = config._replace(log=LogConfig.from_json(log))
        if isinstance(health, dict):
            from ctl.runtime.health import HealthConfig

            config = config._replace(health=HealthConfig.from_json(health))
        if doc.get("mounts"):
            config = config._replace(mounts=_mounts(doc["mounts"]))
        if doc.get("connections"):
            config = config._replace(connections=_connections(doc["connections"]))
        restart, publish = doc.get("restart"), doc.get("publish")
        if not restart and not publish:
            return config
        return config._replace(
            restart=RestartPolicy(**restart) if restart else None,
            publish=tuple(PortMapping(**p) for p in publish or ()),
        )


def docker_network_name(network: str) -> str:
    """docker_network_name is a network of a record by docker's name: ``bridge`` for the
    default one, however ``--net`` gave it (``bridge``, ``default``, or its own name)."""
    from ctl.network.config import docker_name
    from ctl.network.networks import resolve_network

    return docker_name(resolve_network(network))


def _mounts(docs: Sequence[Mapping[str, Any]]) -> tuple[MountSpec, ...]:
    return tuple(MountSpec(**doc) for doc in docs)


def _connections(docs: Sequence[Mapping[str, Any]]) -> tuple[NetworkConnection, ...]:
    return tuple(
        NetworkConnection(
            network=str(doc["network"]),
            aliases=tuple(str(a) for a in doc.get("aliases") or ()),
            ip=doc.get("ip"),
            ip6=doc.get("ip6"),
        )
        for doc in docs
    )


class Container(NamedTuple):
    """Container is one container record.

    ``spec`` is the OCI runtime spec (config.json) generated at create time;
    ``config`` holds what starting its task needs besides (``RunConfig``);
    ``snapshot_key`` names its active snapshot in ``snapshotter``.
    """

    id: str
    name: str
    image: str
    snapshotter: str
    snapshot_key: str
    spec: dict[str, Any]
    config: RunConfig = RunConfig()
    # A default shared by every instance: records are never changed in place.
    labels: dict[str, str] = {}
    created_at: float = 0.0
    updated_at: float = 0.0
    # The target digest of the image it was created from: its name may go (rmi, tag).
    image_digest: str = ""

    def updated(self, **changes: Any) -> Container:
        return self._replace(**changes)

    def user_mounts(self) -> list[dict[str, Any]]:
        """user_mounts are the spec's mounts of the user's -v and --mount (and the image's
        VOLUMEs): docker's MountPoints, without what every container gets (/proc, /dev,
        /etc/hosts and the rest)."""
        wanted = {m.destination for m in self.config.mounts}
        mounts = self.spec.get("mounts") or []
        return [m for m in mounts if isinstance(m, dict) and m.get("destination") in wanted]

    def network_names(self) -> list[str]:
        """network_names are the networks the container is on, by docker's names: the one it
        was created on, then those ``network connect`` added."""
        config = self.config
        return [
            docker_network_name(n)
            for n in (config.network, *(c.network for c in config.connections))
        ]

    def to_record(self) -> dict[str, Any]:
        return {
            "version": RECORD_VERSION,
            "id": self.id,
            "name": self.name,
            "image": self.image,
            "image_digest": self.image_digest,
            "snapshotter": self.snapshotter,
            "snapshot_key": self.snapshot_key,
            "spec": self.spec,
            "config": self.config.to_json(),
            "labels": self.labels,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Container:
        return cls(
            id=str(record["id"]),
            name=str(record["name"]),
            image=str(record.get("image", "")),
            snapshotter=str(record.get("snapshotter", "")),
            snapshot_key=str(record.get("snapshot_key", "")),
            spec=dict(record.get("spec") or {}),
            config=RunConfig.from_json(record.get("config") or {}),
            labels={str(k): str(v) for k, v in (record.get("labels") or {}).items()},
            created_at=float(record.get("created_at", 0.0)),
            updated_at=float(record.get("updated_at", 0.0)),
            image_digest=str(record.get("image_digest", "")),
        )
