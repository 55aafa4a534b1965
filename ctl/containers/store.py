"""The on-disk container store: ``<dir>/<id>.json`` records and a ``names/`` index."""

from __future__ import annotations

import re
import time

from ctl import fsutil
from ctl.errdefs import AlreadyExists, InvalidArgument, NotFound
from ctl.records import RecordDir

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from pathlib import Path

    from ctl.containers.container import Container
    from ctl.errdefs import DataCorrupted

_ID = re.compile(r"[0-9a-f]{64}")


def name_taken(name: str, holder: str) -> AlreadyExists:
    """name_taken is the error for a container name that container ``holder`` has."""
    return AlreadyExists(
        f"container {name!r}: already exists",
        hint=f"the name is in use by container {holder[:12]}: remove it or choose another --name",
    )


def is_container_id(text: str) -> bool:
    """is_container_id tells a full container id (64 lowercase hex digits)."""
    return _ID.fullmatch(text) is not None


def _check_id(container_id: str) -> str:
    if not is_container_id(container_id):
        raise InvalidArgument(f"invalid container id {container_id!r}")
    return container_id


# docker's rule for container names.
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}")
UPDATABLE = ("labels", "spec", "config", "snapshot_key")


def validate_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidArgument(
            f"invalid container name {name!r}: must match [a-zA-Z0-9][a-zA-Z0-9_.-]*"
        )
    return name


# The record classes are imported where used, not at the top: a listing of an
# empty root then never imports typing, which costs more than the listing.
class LocalContainerStore:
    """LocalContainerStore keeps one JSON record a container and one name file a name.

    Every change holds the store's lock, so that 50 concurrent creates get
    distinct names; reads take no lock, as records are replaced atomically.
    A name file whose record is gone (a crash between the two writes) counts
    as free.
    """

    def __init__(self, directory: Path, lock_path: Path) -> None:
        self._records = RecordDir(directory, lock_path=lock_path, what="container")
        self._names = directory / "names"

    def _load(self, container_id: str) -> Container:
        from ctl.containers.container import Container

        container = self._records.get(_check_id(container_id), Container.from_record)
        if container is None:
            raise NotFound(f"container {container_id!r}: no such container")
        return container

    def _ids(self) -> list[str]:
        return [key for key in self._records.all_keys() if is_container_id(key)]

    def _id_for_name(self, name: str) -> str | None:
        if not _NAME.fullmatch(name):
            return None
        try:
            container_id = (self._names / name).read_text().strip()
        except FileNotFoundError:
            return None
        return container_id if self._records.exists(container_id) else None

    def get(self, ref: str) -> Container:
        if is_container_id(ref):
            return self._load(ref)
        by_name = self._id_for_name(ref)
        if by_name is not None:
            return self._load(by_name)
        if re.fullmatch(r"[0-9a-f]+", ref):
            matches = [i for i in self._ids() if i.startswith(ref)]
            if len(matches) == 1:
                return self._load(matches[0])
            if len(matches) > 1:
                raise InvalidArgument(f"container id prefix {ref!r} is ambiguous")
        raise NotFound(f"container {ref!r}: no such container")

    def list(self, on_error: Callable[[DataCorrupted], None] | None = None) -> Iterator[Container]:
        ids = self._ids()
        if not ids:
            return
        from ctl.containers.container import Container

        yield from self._records.list(Container.from_record, ids, on_error)

    def create(self, container: Container) -> Container:
        validate_name(container.name)
        _check_id(container.id)
        now = time.time()
        created = container._replace(created_at=now, updated_at=now)
        with self._records.lock():
            if self._records.exists(container.id):
                raise AlreadyExists(f"container id {container.id}: already exists")
            holder = self._id_for_name(container.name)
            if holder is not None:
                raise name_taken(container.name, holder)
            name_index = self._names / container.name
            fsutil.atomic_write(
                name_index, container.id.encode(), what=f"container name {container.name!r}"
            )
            try:
                self._records.put(container.id, created.to_record(), name=container.name)
            except BaseException:
                # A full disk must not leave the name taken by no container.
                name_index.unlink(missing_ok=True)
                raise
        return created

    def update(self, container: Container, fieldpaths: Sequence[str] | None = None) -> Container:
        paths = fieldpaths or list(UPDATABLE)
        for fieldpath in paths:
            if fieldpath not in UPDATABLE:
                raise InvalidArgument(f"cannot update field {fieldpath!r} of a container")
        with self._records.lock():
            current = self._load(container.id)
            changes = {p: getattr(container, p) for p in paths}
            updated = current._replace(**changes, updated_at=time.time())
            self._records.put(container.id, updated.to_record())
        return updated

    def delete(self, container_id: str) -> None:
        with self._records.lock():
            current = self._load(container_id)
            self._records.delete(container_id)
            name_file = self._names / current.name
            try:
                if name_file.read_text().strip() == container_id:
                    name_file.unlink()
            except FileNotFoundError:
                pass
