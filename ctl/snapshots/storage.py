"""The metadata store of a snapshotter root, and the logic both snapshotters share.

A snapshotter root looks like this (update the drawing when it changes)::

    <root>/
      metadata.json        every snapshot's record, replaced atomically (below)
      lock                 flock held while metadata.json is read-modified-written
      snapshots/           mode 0700
        <id>/              one directory per snapshot, named by its numeric id
        new-XXXXXXXX/      a snapshot being created, flocked by its creator
        rm-XXXXXXXX/       a directory being deleted
      overlay-check.json   (overlayfs) cached answer of ``overlay.supported``

``metadata.json`` holds, under ``"snapshots"``, one ``SnapshotRecord`` per key,
and ``"next_id"``, the counter ids come from; ids are never re-used, so a
directory name never refers to two snapshots. Keys never become paths.

Crash safety: a snapshot's directory is built under ``new-*`` (flocked, so a
sweep leaves it alone while its creator lives), then renamed to ``<id>`` in
the same locked step that records it. A crash leaves either the old record
set or the new one, and at worst a directory no record names. ``remove`` and
``cleanup`` sweep those, as containerd does: under the lock they are renamed
to ``rm-*``, and then deleted without the lock held.

Readers take no lock: ``metadata.json`` is only ever replaced by rename, so a
read sees one complete version.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import time
from abc import ABC, abstractmethod
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict, cast

from ctl import fsutil
from ctl.errdefs import (
    AlreadyExists,
    DataCorrupted,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
    Unimplemented,
)
from ctl.snapshots import ApplyTarget, Info, Kind, Usage

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from ctl.snapshots import Mount, WhiteoutStyle

METADATA_VERSION = 1
# How long a change waits for another process's change; each holds the lock
# only for a read, a few renames and one small atomic write.
LOCK_TIMEOUT = 60.0
# containerd's limit on one label (key and value together).
MAX_LABEL_SIZE = 4096


class SnapshotRecord(TypedDict):
    """SnapshotRecord is one snapshot in ``metadata.json``.

    ``inodes`` and ``size`` are recorded at commit and stay 0 before.
    """

    id: int
    kind: str
    parent: str
    labels: dict[str, str]
    created_at: float
    updated_at: float
    inodes: int
    size: int


class MetadataFile(TypedDict):
    version: int
    next_id: int
    snapshots: dict[str, SnapshotRecord]


def _empty() -> MetadataFile:
    return {"version": METADATA_VERSION, "next_id": 1, "snapshots": {}}


def check_key(what: str, key: str) -> str:
    if not isinstance(key, str) or not key:
        raise InvalidArgument(f"snapshot {what} must be a non-empty string")
    if "\0" in key:
        raise InvalidArgument(f"snapshot {what} {key!r} contains a NUL byte")
    return key


def check_labels(labels: dict[str, str] | None) -> dict[str, str]:
    """check_labels validates labels and drops empty values, which mean "no label"."""
    out: dict[str, str] = {}
    for k, v in (labels or {}).items():
        if not isinstance(k, str) or not isinstance(v, str) or not k:
            raise InvalidArgument(f"label {k!r}: keys and values must be strings")
        if len(k) + len(v) > MAX_LABEL_SIZE:
            raise InvalidArgument(f"label {k!r}: longer than {MAX_LABEL_SIZE} bytes")
        if v:
            out[k] = v
    return out


class Metadata:
    """Metadata is one consistent read of ``metadata.json``, changed in memory.

    Inside ``MetaStore.transaction`` the changes are written back on exit.
    """

    def __init__(self, data: MetadataFile) -> None:
        self.data = data
        self.dirty = False

    @property
    def snapshots(self) -> dict[str, SnapshotRecord]:
        return self.data["snapshots"]

    def record(self, key: str) -> SnapshotRecord:
        try:
            return self.snapshots[key]
        except KeyError:
            raise NotFound(f"snapshot {key!r}: not found") from None

    def info(self, key: str) -> Info:
        return _info(key, self.record(key))

    def parent_ids(self, parent: str) -> list[int]:
        """parent_ids lists the ids of ``parent`` and its ancestors, nearest first.

        NotFound if ``parent`` is absent; FailedPrecondition if it is not committed.
        """
        if not parent:
            return []
        rec = self.record(parent)
        if rec["kind"] != Kind.COMMITTED:
            raise FailedPrecondition(f"parent {parent!r} is not a committed snapshot")
        ids = [rec["id"]]
        while rec["parent"]:
            rec = self.record(rec["parent"])
            ids.append(rec["id"])
        return ids

    def chain_for_new(self, key: str, parent: str) -> list[int]:
        """chain_for_new checks that ``key`` is free and returns ``parent_ids(parent)``."""
        if key in self.snapshots:
            raise AlreadyExists(f"snapshot {key!r}: already exists")
        return self.parent_ids(parent)

    def has_children(self, key: str) -> bool:
        return any(rec["parent"] == key for rec in self.snapshots.values())

    def create(self, kind: Kind, key: str, parent: str, labels: dict[str, str]) -> int:
        sid = self.data["next_id"]
        now = time.time()
        self.snapshots[key] = {
            "id": sid,
            "kind": kind.value,
            "parent": parent,
            "labels": labels,
            "created_at": now,
            "updated_at": now,
            "inodes": 0,
            "size": 0,
        }
        self.data["next_id"] = sid + 1
        self.dirty = True
        return sid

    def check_commit(self, name: str, key: str) -> SnapshotRecord:
        rec = self.record(key)
        if name in self.snapshots:
            raise AlreadyExists(f"snapshot {name!r}: already exists")
        if rec["kind"] != Kind.ACTIVE:
            raise FailedPrecondition(f"snapshot {key!r} is {rec['kind']}, only active ones commit")
        return rec

    def commit(self, name: str, key: str, usage: Usage, labels: dict[str, str]) -> int:
        rec = self.check_commit(name, key)
        now = time.time()
        self.snapshots[name] = {
            "id": rec["id"],
            "kind": Kind.COMMITTED.value,
            "parent": rec["parent"],
            "labels": labels,
            "created_at": now,
            "updated_at": now,
            "inodes": usage.inodes,
            "size": usage.size,
        }
        del self.snapshots[key]
        self.dirty = True
        return rec["id"]

    def remove(self, key: str) -> SnapshotRecord:
        rec = self.record(key)
        if self.has_children(key):
            raise FailedPrecondition(f"cannot remove snapshot {key!r}: other snapshots use it")
        del self.snapshots[key]
        self.dirty = True
        return rec

    def update(self, info: Info, fieldpaths: Sequence[str] | None) -> Info:
        rec = self.record(info.name)
        labels = dict(rec["labels"])
        for path in fieldpaths or ("labels",):
            if path == "labels":
                labels = dict(info.labels)
            elif path.startswith("labels."):
                label = path[len("labels.") :]
                labels[label] = info.labels.get(label, "")
            else:
                raise InvalidArgument(f"cannot update {path!r} of snapshot {info.name!r}")
        rec["labels"] = check_labels(labels)
        rec["updated_at"] = time.time()
        self.dirty = True
        return _info(info.name, rec)

    def ids(self) -> set[int]:
        return {rec["id"] for rec in self.snapshots.values()}


def _info(key: str, rec: SnapshotRecord) -> Info:
    return Info(
        kind=Kind(rec["kind"]),
        name=key,
        parent=rec["parent"],
        labels=dict(rec["labels"]),
        created_at=rec["created_at"],
        updated_at=rec["updated_at"],
    )


class NewDir:
    """NewDir is a snapshot directory being built under ``snapshots/new-*``.

    Its creator holds an flock on it, so a concurrent sweep keeps it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.claimed = False


class MetaStore:
    """MetaStore is the ``metadata.json`` of one snapshotter root and its directories."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.snapshots_dir = root / "snapshots"
        self._file = root / "metadata.json"
        self._lock_path = root / "lock"
        root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.snapshots_dir.mkdir(mode=0o700, exist_ok=True)

    def lock(self) -> fsutil.FileLock:
        return fsutil.FileLock(
            self._lock_path, timeout=LOCK_TIMEOUT, what=f"snapshotter {self.root}"
        )

    def read(self) -> Metadata:
        try:
            data = fsutil.read_json(self._file)
        except FileNotFoundError:
            return Metadata(_empty())
        except (ValueError, UnicodeDecodeError) as err:
            raise DataCorrupted(f"snapshot metadata {self._file}: {err}") from err
        except OSError as err:  # not a readable file: a directory, an I/O error
            raise DataCorrupted(f"snapshot metadata {self._file}: {err.strerror}") from err
        if not isinstance(data, dict) or not isinstance(data.get("snapshots"), dict):
            raise DataCorrupted(f"snapshot metadata {self._file}: not a metadata record")
        version = data.get("version")
        if version != METADATA_VERSION:
            raise Unimplemented(
                f"snapshot metadata {self._file} has version {version!r};"
                f" this ctl reads version {METADATA_VERSION}"
            )
        return Metadata(cast("MetadataFile", data))

    def write(self, md: Metadata) -> None:
        """write replaces metadata.json with ``md`` if it changed; hold the lock."""
        if md.dirty:
            fsutil.atomic_write_json(self._file, md.data, what="snapshot metadata")
            md.dirty = False

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Metadata]:
        """transaction yields the metadata under the lock and writes it back if changed."""
        with self.lock():
            md = self.read()
            yield md
            self.write(md)

    def snapshot_dir(self, sid: int) -> Path:
        return self.snapshots_dir / str(sid)

    def rebuild(self, quarantine: str) -> str:
        """rebuild replaces a metadata.json that cannot be read; hold the lock.

        See ``StoreSnapshotter.rebuild``; returns what it did, "" if the file was sound.
        """
        try:
            self.read()
            return ""
        except DataCorrupted:
            pass
        count = sum(1 for entry in os.listdir(self.snapshots_dir) if entry.isdigit())
        os.makedirs(quarantine, 0o700, exist_ok=True)
        aside = fsutil.make_temp_dir(quarantine, f"snapshots-{self.root.name}-")
        os.rename(self._file, aside / self._file.name)
        if count:
            os.rename(self.snapshots_dir, aside / self.snapshots_dir.name)
            self.snapshots_dir.mkdir(mode=0o700)
            what = "directory" if count == 1 else "directories"
            done = f"moved {count} snapshot {what} and the damaged {self._file} to {aside}"
        else:
            done = (
                f"rebuilt {self._file}: there are no snapshot directories, so no snapshots"
                f" (the damaged file is in {aside})"
            )
        fsutil.atomic_write_json(self._file, _empty())
        return done

    @contextlib.contextmanager
    def new_dir(self) -> Iterator[NewDir]:
        """new_dir yields a fresh flocked ``new-*`` directory (mode 0700).

        Unless ``claim`` moved it into place, it is deleted when the block ends.
        """
        # Created and locked under the store lock, so that no sweep can see
        # it in between and take it for a crash leftover.
        with self.lock():
            path = fsutil.make_temp_dir(self.snapshots_dir, "new-")
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            fcntl.flock(fd, fcntl.LOCK_EX)
        new = NewDir(path)
        try:
            yield new
        except BaseException:
            if not new.claimed:
                import shutil

                shutil.rmtree(path, ignore_errors=True)
            raise
        finally:
            os.close(fd)

    def claim(self, new: NewDir, sid: int) -> None:
        """claim renames ``new`` to ``snapshots/<sid>``; call it inside ``transaction``."""
        target = self.snapshot_dir(sid)
        if os.path.lexists(target):
            # Left by a crash after the rename but before the record was
            # written, which also lost the id counter's increment.
            self._trash(target)
        os.rename(new.path, target)
        new.claimed = True

    def _trash(self, path: Path) -> Path:
        trash = fsutil.make_temp_dir(self.snapshots_dir, "rm-")
        os.rename(path, trash / "d")
        return trash

    def sweep(self, md: Metadata) -> list[Path]:
        """sweep moves every directory no record owns to ``rm-*`` and returns them.

        Call it holding the lock, with ``md`` as read or written under that
        lock (never with changes not yet written: a crash would then leave
        records whose directories are gone); ``purge`` the result after.
        """
        ids = md.ids()
        garbage: list[Path] = []
        for entry in os.listdir(self.snapshots_dir):
            path = self.snapshots_dir / entry
            if entry.isdigit() and int(entry) in ids:
                continue
            if entry.startswith("rm-"):
                garbage.append(path)  # an earlier purge that did not finish
            elif not entry.startswith("new-") or not _locked(path):
                garbage.append(self._trash(path))
        for entry in os.listdir(self.root):
            if entry.startswith(f".{self._file.name}.") and entry.endswith(".tmp"):
                # atomic_write's temporary file of a writer killed mid-write;
                # no writer is active while we hold the lock.
                (self.root / entry).unlink(missing_ok=True)
        return garbage

    @staticmethod
    def purge(paths: list[Path]) -> None:
        import shutil  # not at the top: with bz2 and lzma, 1 ms of every `ctl run`

        for path in paths:
            # Errors are a concurrent sweep deleting the same tree, or a mount
            # still inside; what is left stays an rm-* that later sweeps retry.
            shutil.rmtree(path, ignore_errors=True)


def _locked(path: Path) -> bool:
    """_locked tells whether a live process holds the flock on ``path``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return True  # gone already: nothing to sweep
    except NotADirectoryError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno in (errno.EWOULDBLOCK, errno.EACCES):
            return True
        raise
    finally:
        os.close(fd)
    return False


def disk_usage(path: Path) -> Usage:
    """disk_usage counts the inodes under ``path`` and the bytes they occupy.

    Hard links count once; sizes are allocated blocks, as ``du`` reports.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError as err:
        raise NotFound(f"snapshot directory {path}: not found") from err
    seen = {st.st_ino}
    size = st.st_blocks * 512
    stack = [os.fspath(path)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                est = entry.stat(follow_symlinks=False)
                if est.st_ino in seen:
                    continue
                seen.add(est.st_ino)
                size += est.st_blocks * 512
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return Usage(inodes=len(seen), size=size)


# ---- walk filters (containerd's filter syntax, the subset snapshots use) ----

_QUOTED = r'"(?:[^"\\]|\\.)*"'
_FIELD = rf'(?:{_QUOTED}|[^".,=!~\s]+)'
# Compiled on first use (re keeps them): run never filters, and compiling costs it 0.6 ms.
_SELECTOR = (
    rf"\s*(?P<path>{_FIELD}(?:\.{_FIELD})*)\s*"
    rf"(?:(?P<op>==|!=|~=)\s*(?P<value>{_QUOTED}|/(?:[^/\\]|\\.)*/|[^\",]*?))?"
    r"\s*(?:,|$)"
)


def _unquote(text: str) -> str:
    if text.startswith('"'):
        value = json.loads(text)
        assert isinstance(value, str)
        return value
    if text.startswith("/") and len(text) >= 2 and text.endswith("/"):
        return text[1:-1].replace("\\/", "/")
    return text


def _field(info: Info, path: list[str]) -> str | None:
    head = path[0]
    if head == "name" and len(path) == 1:
        return info.name
    if head == "parent" and len(path) == 1:
        return info.parent
    if head == "kind" and len(path) == 1:
        return info.kind.value
    if head == "labels" and len(path) > 1:
        return info.labels.get(".".join(path[1:]))
    return None


def _selector(path: list[str], op: str | None, value: str) -> Callable[[Info], bool]:
    if op is None:
        return lambda info: _field(info, path) is not None
    if op == "==":
        return lambda info: _field(info, path) == value
    if op == "!=":
        return lambda info: (_field(info, path) or "") != value
    try:
        pattern = re.compile(value)
    except re.error as err:
        raise InvalidArgument(f"bad regular expression {value!r} in filter: {err}") from err
    return lambda info: pattern.search(_field(info, path) or "") is not None


def _parse_filter(text: str) -> list[Callable[[Info], bool]]:
    selectors: list[Callable[[Info], bool]] = []
    pos = 0
    while pos < len(text):
        m = re.compile(_SELECTOR).match(text, pos)
        if m is None or m.end() == pos:
            raise InvalidArgument(f"malformed filter {text!r} at offset {pos}")
        path = [_unquote(f.group()) for f in re.finditer(_FIELD, m.group("path"))]
        value = _unquote(m.group("value") or "")
        selectors.append(_selector(path, m.group("op"), value))
        pos = m.end()
    return selectors


def filter_infos(infos: Iterator[Info], filters: Sequence[str]) -> list[Info]:
    """filter_infos keeps the infos that match any filter (all, without filters)."""
    parsed = [_parse_filter(f) for f in filters]
    if not parsed:
        return list(infos)
    return [info for info in infos if any(all(s(info) for s in sel) for sel in parsed)]


# ---- the shared snapshotter ----


class StoreSnapshotter(ABC):
    """StoreSnapshotter implements ``Snapshotter`` over a ``MetaStore``.

    A subclass decides what a snapshot's directory holds and how it mounts.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root).absolute()
        self._store = MetaStore(self.root)

    # -- what subclasses provide --

    @abstractmethod
    def _populate(self, directory: Path, kind: Kind, parent_ids: list[int]) -> None:
        """_populate fills a new snapshot's directory (mode 0700, empty)."""

    @abstractmethod
    def _mounts(self, sid: int, kind: Kind, parent_ids: list[int]) -> list[Mount]: ...

    @abstractmethod
    def _data_dir(self, sid: int) -> Path:
        """_data_dir is the directory holding snapshot ``sid``'s own changes."""

    @abstractmethod
    def _whiteout_style(self, parent_ids: list[int]) -> WhiteoutStyle: ...

    # -- the Snapshotter protocol --

    def stat(self, key: str) -> Info:
        return self._store.read().info(key)

    def update(self, info: Info, fieldpaths: Sequence[str] | None = None) -> Info:
        with self._store.transaction() as md:
            return md.update(info, fieldpaths)

    def usage(self, key: str) -> Usage:
        rec = self._store.read().record(key)
        if rec["kind"] == Kind.ACTIVE:
            return disk_usage(self._data_dir(rec["id"]))
        return Usage(inodes=rec["inodes"], size=rec["size"])

    def mounts(self, key: str) -> list[Mount]:
        md = self._store.read()
        rec = md.record(key)
        if rec["kind"] == Kind.COMMITTED:
            raise FailedPrecondition(f"snapshot {key!r} is committed: only active ones mount")
        return self._mounts(rec["id"], Kind(rec["kind"]), md.parent_ids(rec["parent"]))

    def prepare(
        self, key: str, parent: str = "", labels: dict[str, str] | None = None
    ) -> list[Mount]:
        return self._create(Kind.ACTIVE, key, parent, labels)

    def view(self, key: str, parent: str = "", labels: dict[str, str] | None = None) -> list[Mount]:
        return self._create(Kind.VIEW, key, parent, labels)

    def _create(
        self, kind: Kind, key: str, parent: str, labels: dict[str, str] | None
    ) -> list[Mount]:
        check_key("key", key)
        checked = check_labels(labels)
        # Checked before the (for native, slow) populate to fail fast, and
        # again under the lock, where it counts.
        chain = self._store.read().chain_for_new(key, parent)
        with self._store.new_dir() as new:
            self._populate(new.path, kind, chain)
            with self._store.transaction() as md:
                if md.chain_for_new(key, parent) != chain:
                    raise Unavailable(f"parent {parent!r} changed while preparing {key!r}")
                sid = md.create(kind, key, parent, checked)
                self._store.claim(new, sid)
        return self._mounts(sid, kind, chain)

    def commit(self, name: str, key: str, labels: dict[str, str] | None = None) -> None:
        check_key("name", name)
        checked = check_labels(labels)
        rec = self._store.read().check_commit(name, key)
        # Measured before taking the lock: it walks the whole upper directory.
        usage = disk_usage(self._data_dir(rec["id"]))
        with self._store.transaction() as md:
            if md.check_commit(name, key)["id"] != rec["id"]:
                raise Unavailable(f"snapshot {key!r} was replaced while committing")
            md.commit(name, key, usage, checked)

    def remove(self, key: str) -> None:
        with self._store.lock():
            md = self._store.read()
            md.remove(key)
            self._store.write(md)
            garbage = self._store.sweep(md)
        self._store.purge(garbage)

    def rebuild(self, quarantine: str) -> str:
        """rebuild replaces a ``metadata.json`` that cannot be read; returns what it did.

        A snapshot's key and parent live only in ``metadata.json`` (its
        directory has a number), so the file is rebuilt from the directories
        only when there are none. Otherwise the directories move with the
        damaged file (which moves anyway) to a new directory under
        ``quarantine``, for a human to look at, and the store starts empty:
        images unpack again on their next use. A sound file is left alone
        ("" is returned); one of another version is Unimplemented, as for
        every read.
        """
        with self._store.lock():
            return self._store.rebuild(quarantine)

    def cleanup(self) -> None:
        with self._store.lock():
            garbage = self._store.sweep(self._store.read())
        self._store.purge(garbage)

    def walk(self, filters: Sequence[str] = ()) -> Iterator[Info]:
        # A list, not a generator: a bad filter raises here, and the caller
        # iterates over one consistent read while it changes the store.
        md = self._store.read()
        infos = (_info(key, rec) for key, rec in md.snapshots.items())
        return iter(filter_infos(infos, filters))

    def apply_target(self, key: str) -> ApplyTarget:
        md = self._store.read()
        rec = md.record(key)
        if rec["kind"] != Kind.ACTIVE:
            raise FailedPrecondition(f"snapshot {key!r} is {rec['kind']}: layers apply to active")
        chain = md.parent_ids(rec["parent"])
        return ApplyTarget(self._data_dir(rec["id"]), self._whiteout_style(chain))

    def close(self) -> None:  # noqa: B027 - deliberately nothing to release
        """close does nothing: a StoreSnapshotter holds no files between calls."""
