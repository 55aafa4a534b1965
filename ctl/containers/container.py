"""Containers: the static configuration of a container, apart from any running task.

``ContainerStore`` is containerd's ``containers.Store`` plus docker's names:
each container has a 64-hex id and a name unique in its namespace, and can
be found by either, or by a unique prefix of its id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    from ctl.errdefs import DataCorrupted
    from ctl.runtime.runopts import PortMapping, RestartPolicy

RECORD_VERSION = 1


class RunConfig(NamedTuple):
    """RunConfig is what starting a container's task needs that its spec does not carry.

    It is the record's ``config`` object. ``args`` and ``entrypoint`` are the
    command as given (``None``: the image's entrypoint), kept for inspect.
    A record written before a field existed reads it as its default.
    """

    tty: bool = False
    stdin: bool = False
    rm: bool = False
    restart: RestartPolicy | None = None
    network: str = "none"
    publish: tuple[PortMapping, ...] = ()
    # networks (issue 14)
    network_aliases: tuple[str, ...] = ()
    hostname: str | None = None
    args: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        doc = {
            "tty": self.tty,
            "stdin": self.stdin,
            "rm": self.rm,
            "restart": self.restart._asdict() if self.restart else None,
            "network": self.network,
            "publish": [p._asdict() for p in self.publish],
            "hostname": self.hostname,
            "args": list(self.args),
            "entrypoint": list(self.entrypoint) if self.entrypoint is not None else None,
        }
        if self.network_aliases:  # networks (issue 14)
            doc["network_aliases"] = list(self.network_aliases)
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> RunConfig:
        entrypoint = doc.get("entrypoint")
        config = cls(
            tty=bool(doc.get("tty")),
            stdin=bool(doc.get("stdin")),
            rm=bool(doc.get("rm")),
            network=str(doc.get("network") or "none"),
            network_aliases=tuple(str(a) for a in doc.get("network_aliases") or ()),
            hostname=doc.get("hostname"),
            args=tuple(doc.get("args") or ()),
            entrypoint=tuple(entrypoint) if entrypoint is not None else None,
        )
        restart, publish = doc.get("restart"), doc.get("publish")
        if not restart and not publish:
            return config  # without importing runopts, a millisecond of every `ctl ps`
        from ctl.runtime.runopts import PortMapping, RestartPolicy

        return config._replace(
            restart=RestartPolicy(**restart) if restart else None,
            publish=tuple(PortMapping(**p) for p in publish or ()),
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

    def updated(self, **changes: Any) -> Container:
        return self._replace(**changes)

    def to_record(self) -> dict[str, Any]:
        return {
            "version": RECORD_VERSION,
            "id": self.id,
            "name": self.name,
            "image": self.image,
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
        )


class ContainerStore(Protocol):
    """ContainerStore keeps the container records of one namespace.

    ``create`` raises AlreadyExists for a taken id or name; ``get`` takes an
    id, a name or a unique id prefix and raises NotFound, or InvalidArgument
    when a prefix is ambiguous; ``delete`` frees the name.
    """

    def get(self, ref: str) -> Container: ...

    def list(self, on_error: Callable[[DataCorrupted], None] | None = None) -> Iterator[Container]:
        """list yields every container of the namespace; a damaged record is skipped, as
        ``ImageStore.list`` says."""
        ...

    def create(self, container: Container) -> Container: ...

    def update(self, container: Container, fieldpaths: Sequence[str] | None = None) -> Container:
        """update changes ``labels``, ``spec``, ``config``, ``snapshot_key`` or ``name``.

        A new name is taken as ``create`` takes one (AlreadyExists when it is
        another container's), and the old one is freed in the same step.
        """
        ...

    def delete(self, container_id: str) -> None: ...
