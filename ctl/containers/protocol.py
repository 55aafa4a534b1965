"""ContainerStore: containerd's ``containers.Store`` plus docker's names.

Each container has a 64-hex id and a name unique in its namespace, and can be
found by either, or by a unique prefix of its id. The protocol is apart from
the record (``ctl.containers.container``) because it needs typing at run time,
which ``ps`` does not import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from ctl.containers.container import Container
    from ctl.errdefs import DataCorrupted


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
