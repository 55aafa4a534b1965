"""The on-disk container store: ``<dir>/<id>.json`` records, a ``names/`` index, and
``ps.index``, the listing index: what ``ps`` shows of each container."""

from __future__ import annotations

import contextlib
import os
import re
import time

from ctl import fsutil
from ctl.errdefs import AlreadyExists, CtlError, FailedPrecondition, InvalidArgument, NotFound
from ctl.records import RecordDir

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from typing import Any

    from ctl.containers.container import Container
    from ctl.errdefs import DataCorrupted

# Patterns compiled on first use (re keeps them), as ctl.timefmt's: ps of an empty root uses none.
_ID = r"[0-9a-f]{64}"
LISTING_INDEX = "ps.index"
# 2: a summary's mounts are the user's alone (Container.user_mounts), with config.mounts.
# 3: marshal after INDEX_MAGIC, not JSON: json's import costs a listing of created
#    containers (which have no task records to read) more than the listing itself.
INDEX_VERSION = 3
INDEX_MAGIC = b"ctl ps.index 3\n"


def summary_of(container: Container) -> dict[str, Any]:
    """summary_of is the record of what ``ps`` shows and filters on (see ``summaries``)."""
    record = container.to_record()
    config = record["config"]
    process = container.spec.get("process") or {}
    mounts = [
        {k: m[k] for k in ("source", "destination") if k in m} for m in container.user_mounts()
    ]
    record["spec"] = {"process": {"args": process.get("args", [])}, "mounts": mounts}
    kept = ("network", "publish", "mounts", "connections")
    record["config"] = {k: config[k] for k in kept if k in config}
    return record


def _summary_of(entries: dict[str, Any], container_id: str) -> Container:
    """_summary_of is the index's summary of ``container_id``: SHAPE_ERRORS if it is damaged.

    An entry that names another container than its key is damaged too: its
    stamp may be fresh, but it would list the wrong container.
    """
    from ctl.containers.container import Container

    summary = Container.from_record(entries[container_id]["summary"])
    if summary.id != container_id:
        raise ValueError(f"the entry names container {summary.id!r}")
    return summary


class _OlderIndex(Exception):
    """_OlderIndex is an index an older ctl wrote: stale, not damaged."""


def encode_index(entries: dict[str, Any]) -> bytes:
    """encode_index is the listing index's file: INDEX_MAGIC, then marshal's encoding.

    marshal, not JSON: it is built in, where json's import costs a listing of
    created containers more than the listing itself. The index is a cache of
    the records, in the root that only root writes, and read by this Python.
    """
    import marshal

    return INDEX_MAGIC + marshal.dumps({"version": INDEX_VERSION, "containers": entries})


def decode_index(data: bytes) -> dict[str, Any]:
    """decode_index is the entries of an index file; ValueError (or EOFError, KeyError,
    TypeError) if it is damaged, _OlderIndex if an older ctl wrote it."""
    import marshal

    if not data.startswith(INDEX_MAGIC):
        _check_older_index(data)
    doc = marshal.loads(data[len(INDEX_MAGIC) :])
    entries, version = doc["containers"], doc["version"]
    if not isinstance(entries, dict) or version != INDEX_VERSION:
        raise ValueError(f"version {version!r}")
    return entries


def _check_older_index(data: bytes) -> None:
    """_check_older_index raises _OlderIndex for an older ctl's JSON index, else ValueError."""
    import json

    doc = json.loads(data)
    version = doc["version"] if isinstance(doc, dict) else None
    if isinstance(version, int) and version < INDEX_VERSION and isinstance(doc["containers"], dict):
        raise _OlderIndex
    raise ValueError(f"not a version {INDEX_VERSION} index: version {version!r}")


def _warn(message: str) -> None:
    import sys

    sys.stderr.write(f"ctl: warning: {message}\n")


def name_taken(name: str, holder: str) -> AlreadyExists:
    """name_taken is the error for a container name that container ``holder`` has."""
    return AlreadyExists(
        f"container {name!r}: already exists",
        hint=f"the name is in use by container {holder[:12]}: remove it or choose another --name",
    )


def is_container_id(text: str) -> bool:
    """is_container_id tells a full container id (64 lowercase hex digits)."""
    return re.fullmatch(_ID, text) is not None


def _check_id(container_id: str) -> str:
    if not is_container_id(container_id):
        raise InvalidArgument(f"invalid container id {container_id!r}")
    return container_id


# docker's rule for container names.
_NAME = r"[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}"
UPDATABLE = ("labels", "spec", "config", "snapshot_key", "name")


def validate_name(name: str) -> str:
    if not re.fullmatch(_NAME, name):
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

    def __init__(self, directory: str, lock_path: str) -> None:
        self._records = RecordDir(directory, lock_path=lock_path, what="container")
        self._names = f"{directory}/names"
        self._index = f"{directory}/{LISTING_INDEX}"

    def _name_file(self, name: str) -> str:
        return f"{self._names}/{name}"

    def _read_name(self, name: str) -> str:
        """_read_name is the id in name file ``name``: FileNotFoundError if there is none."""
        with open(self._name_file(name), encoding="utf-8") as f:
            return f.read().strip()

    def _load(self, container_id: str) -> Container:
        from ctl.containers.container import Container

        container = self._records.get(_check_id(container_id), Container.from_record)
        if container is None:
            raise NotFound(f"container {container_id!r}: no such container")
        return container

    def _ids(self) -> list[str]:
        return [key for key in self._records.all_keys() if is_container_id(key)]

    def _id_for_name(self, name: str) -> str | None:
        if not re.fullmatch(_NAME, name):
            return None
        try:
            container_id = self._read_name(name)
        except FileNotFoundError:
            return None
        return container_id if self._records.exists(container_id) else None

    def get(self, ref: str) -> Container:
        """get is the container ``ref`` names (id, name or id prefix).

        NotFound if none; DataCorrupted, naming the file, if its record is
        damaged (``resolve`` still finds its id).
        """
        return self._load(self.resolve(ref))

    def resolve(self, ref: str) -> str:
        """resolve is the id of the container ``ref`` names, without reading its record."""
        if is_container_id(ref):
            if not self._records.exists(ref):
                raise NotFound(f"container {ref!r}: no such container")
            return ref
        by_name = self._id_for_name(ref)
        if by_name is not None:
            return by_name
        if re.fullmatch(r"[0-9a-f]+", ref):
            matches = [i for i in self._ids() if i.startswith(ref)]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise InvalidArgument(f"container id prefix {ref!r} is ambiguous")
        raise NotFound(f"container {ref!r}: no such container")

    def list(self, on_error: Callable[[DataCorrupted], None] | None = None) -> Iterator[Container]:
        ids = self._ids()
        if not ids:
            return
        from ctl.containers.container import Container

        yield from self._records.list(Container.from_record, ids, on_error)

    def summaries(self) -> Iterator[Container]:
        """summaries yields every container as ``ps`` sees it, from the listing index.

        Their ``spec`` holds only the process args and the mounts' sources and
        destinations, their ``config`` only the networks and the published
        ports: enough to show and filter a listing, not to run a task. An
        index entry is used only while its record's stamp (inode, mtime, size)
        is the one it was made from; a container without a fresh, sound
        entry (a kill -9 between the record and the index, an edit by hand, a
        damaged index) is read from its record instead.
        """
        ids = self._ids()
        if not ids:
            return
        from ctl.containers.container import Container
        from ctl.records import SHAPE_ERRORS

        entries, damage = self._read_index()
        if damage:
            _warn(f"{damage}: listing from the records")
        for container_id in ids:
            entry = entries.get(container_id)
            if self._fresh(entry, container_id):
                try:
                    summary = _summary_of(entries, container_id)
                except SHAPE_ERRORS as err:
                    _warn(f"{self._index}: damaged entry of container {container_id}: {err!r}")
                else:
                    yield summary
                    continue
            yield from self._records.list(Container.from_record, [container_id])

    # The listing index. It is a cache of the records, checked against each
    # record's stamp when read, so it is written without fsyncs, and a write
    # that fails leaves the record to speak for itself.

    def _stamp(self, container_id: str) -> Sequence[int] | None:
        """_stamp tells one version of a record from another: records are replaced by rename."""
        try:
            st = self._records.stat(container_id)
        except OSError:
            return None
        return [st.st_ino, st.st_mtime_ns, st.st_size]

    def _read_index(self) -> tuple[dict[str, Any], str]:
        """_read_index is the index's entries by id, and what is wrong with the file, if anything.

        A missing index has no entries and nothing wrong; a damaged one has no entries.
        """
        try:
            with open(self._index, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return {}, ""
        except OSError as err:
            return {}, f"{self._index}: unreadable container index ({err})"
        try:
            return decode_index(data), ""
        except _OlderIndex:
            # An older ctl's index: every entry is stale, and the next change rewrites them.
            return {}, ""
        except (ValueError, EOFError, KeyError, TypeError) as err:
            problem = f"{type(err).__name__}: {err}"
        return {}, f"{self._index}: damaged container index ({problem})"

    def _index_entry(self, container: Container) -> dict[str, Any] | None:
        stamp = self._stamp(container.id)
        return None if stamp is None else {"stamp": stamp, "summary": summary_of(container)}

    def _write_index(self, entries: dict[str, Any], what: str | None = None) -> None:
        fsutil.atomic_write(self._index, encode_index(entries), durable=False, what=what)

    def _fresh(self, entry: object, container_id: str) -> bool:
        return isinstance(entry, dict) and entry.get("stamp") == self._stamp(container_id)

    def _index_change(self, container_id: str, container: Container | None) -> None:
        """_index_change sets (or, with None, drops) one container's entry; under the lock.

        On the way, entries of containers whose record is gone are dropped, and
        stale or missing ones (a kill -9 between a record and the index, a
        full disk) are made again from their records: the index heals itself.
        """
        from ctl.containers.container import Container

        entries = self._read_index()[0]
        fresh: dict[str, Any] = {}
        stale = []
        for present in self._ids():
            if present == container_id:
                continue
            if self._fresh(entries.get(present), present):
                fresh[present] = entries[present]
            else:
                stale.append(present)
        for found in self._records.list(Container.from_record, stale, lambda err: None):
            entry = self._index_entry(found)
            if entry is not None:
                fresh[found.id] = entry
        entry = None if container is None else self._index_entry(container)
        if entry is not None:
            fresh[container_id] = entry
        # A failed write leaves a stale entry, which readers tell by its stamp.
        with contextlib.suppress(OSError, CtlError):
            self._write_index(fresh)

    def damaged_index(self) -> Sequence[str]:
        """damaged_index says what is damaged in the listing index, for ``system check``.

        A damaged file is one line, and so is each fresh entry of the wrong
        shape: ``ps`` warns of them. A stale or missing entry is not a
        problem: ``ps`` reads that container's record, and the next change of
        any container writes its entry again.
        """
        from ctl.records import SHAPE_ERRORS

        entries, damage = self._read_index()
        problems = [damage] if damage else []
        for container_id in self._ids():
            entry = entries.get(container_id)
            if self._fresh(entry, container_id):
                try:
                    _summary_of(entries, container_id)
                except SHAPE_ERRORS as err:
                    short = container_id[:12]
                    problems.append(f"the entry of container {short} is damaged: {err}")
        return problems

    def rebuild_index(self) -> str:
        """rebuild_index writes the listing index again from the records (``--repair``)."""
        with self._records.lock():
            entries: dict[str, Any] = {}
            for container in self.list(on_error=lambda err: None):
                entry = self._index_entry(container)
                if entry is not None:
                    entries[container.id] = entry
            self._write_index(entries, what="container index")
        return f"rebuilt {self._index} from {len(entries)} container records"

    # The name index: ``system check`` and ``--repair``.

    def misnamed(self) -> dict[str, str]:
        """misnamed maps each name the index gets wrong to what is wrong with it.

        A name file may name a container that has no record, or one whose
        record says another name; a container's own name file may be
        missing. A damaged record's name is unknown, so its name file stands.
        """
        import os

        from ctl.records import UnreadableRecord

        wrong: dict[str, str] = {}
        owners: dict[str, str] = {}
        for container in self.list(on_error=lambda err: None):
            owners[container.name] = container.id
            if self._id_for_name(container.name) != container.id:
                wrong[container.name] = f"its index file does not name container {container.id}"
        try:
            names = sorted(os.listdir(self._names))
        except FileNotFoundError:
            names = []
        for name in names:
            if name.startswith(".") or name in wrong:
                continue
            try:
                container_id = self._read_name(name)
                named = self._load(container_id).name
            except NotFound:
                wrong[name] = f"names container {container_id[:12]}, which has no record"
                continue
            except (InvalidArgument, OSError) as err:
                wrong[name] = f"its index file cannot be read: {err}"
                continue
            except UnreadableRecord:
                continue
            if named != name:
                wrong[name] = f"names container {container_id[:12]}, whose name is {named!r}"
        return dict(sorted(wrong.items()))

    def reindex(self, name: str) -> str:
        """reindex points ``name`` at the one container whose record has it, or removes it."""
        with self._records.lock():
            ids = [c.id for c in self.list(on_error=lambda err: None) if c.name == name]
            if len(ids) > 1:
                raise FailedPrecondition(f"containers {', '.join(ids)} all have name {name!r}")
            if ids:
                fsutil.atomic_write(self._name_file(name), ids[0].encode())
                return f"container name {name!r} names container {ids[0][:12]} again"
            fsutil.unlink_if_present(self._name_file(name))
        return f"removed container name {name!r}: no container has it"

    def create(self, container: Container) -> Container:
        validate_name(container.name)
        _check_id(container.id)
        now = time.time()
        created = container._replace(created_at=now, updated_at=now)
        # A --rm container cannot outlive a crash of the machine (its task is
        # gone, and it with it), so its record and name skip the fsyncs: a
        # kill -9 still leaves the old file or the new one, never a torn one.
        durable = not container.config.rm
        with self._records.lock():
            if self._records.exists(container.id):
                raise AlreadyExists(f"container id {container.id}: already exists")
            holder = self._id_for_name(container.name)
            if holder is not None:
                raise name_taken(container.name, holder)
            name_index = self._name_file(container.name)
            fsutil.atomic_write(
                name_index,
                container.id.encode(),
                durable=durable,
                what=f"container name {container.name!r}",
            )
            try:
                self._records.put(
                    container.id, created.to_record(), name=container.name, durable=durable
                )
            except BaseException:
                # A full disk must not leave the name taken by no container.
                fsutil.unlink_if_present(name_index)
                raise
            self._index_change(container.id, created)
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
            if updated.name == current.name:
                self._records.put(container.id, updated.to_record())
            else:
                self._rename(current, updated)
            self._index_change(container.id, updated)
        return updated

    def _rename(self, current: Container, updated: Container) -> None:
        """_rename moves the name under the lock: the new name file, the record, the old file.

        A crash between the steps leaves both names on the container, which
        ``misnamed`` reports and ``reindex`` mends; never a name on no one.
        """
        validate_name(updated.name)
        holder = self._id_for_name(updated.name)
        if holder is not None:
            raise name_taken(updated.name, holder)
        new_index = self._name_file(updated.name)
        fsutil.atomic_write(new_index, updated.id.encode(), what=f"container name {updated.name!r}")
        try:
            self._records.put(updated.id, updated.to_record(), name=updated.name)
        except BaseException:
            fsutil.unlink_if_present(new_index)
            raise
        if self._points_at(current.name, current.id):
            fsutil.unlink_if_present(self._name_file(current.name))

    def delete(self, container_id: str) -> None:
        """delete removes the record and its name; a damaged record goes too.

        The name of a damaged record is unknown: every name file that points
        at the id is removed.
        """
        from ctl.errdefs import DataCorrupted

        with self._records.lock():
            durable = True
            try:
                container = self._load(container_id)
                names: Sequence[str] = [container.name]
                durable = not container.config.rm
            except DataCorrupted:
                names = self._names_of(container_id)
            if not self._records.delete(_check_id(container_id), durable=durable):
                raise NotFound(f"container {container_id!r}: no such container")
            self._index_change(container_id, None)
            for name in names:
                if self._points_at(name, container_id):
                    fsutil.unlink_if_present(self._name_file(name))

    def _names_of(self, container_id: str) -> Sequence[str]:
        try:
            names = os.listdir(self._names)
        except FileNotFoundError:
            return []
        return [name for name in names if self._points_at(name, container_id)]

    def _points_at(self, name: str, container_id: str) -> bool:
        try:
            return self._read_name(name) == container_id
        except OSError:
            return False
