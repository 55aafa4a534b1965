"""RecordDir: typed JSON records, one file each, in one directory.

The image, container, network and CNI attachment stores keep their records
this way. Every write is atomic (``ctl.fsutil``), so reads take no lock: a
reader sees the old record or the new one. A change that reads before it
writes (create if absent, update) holds the directory's flock, ``lock``.

Records come from disk, and a disk keeps what crashes, full filesystems and
hands leave there. A record that is not JSON, or that ``decode`` rejects, is
damaged: ``get`` raises UnreadableRecord naming the file, and ``list`` skips
it with a warning on stderr, so that one bad file hides no other record.
``remove_damaged`` deletes such a file (``system check --repair``) unless it
was replaced meanwhile.
"""

from __future__ import annotations

import os
import sys

from ctl import fsutil
from ctl.errdefs import DataCorrupted

# typing is not imported at run time, and json only where a record is read:
# start-up time is a feature, and listing an empty store needs neither.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence
    from typing import Any, TypeVar

    from _typeshed import StrPath

    T = TypeVar("T")

# What a decode function raises on a record of the wrong shape: a missing
# key, a null or a list where an object belongs, a value of the wrong type,
# or its own DataCorrupted.
SHAPE_ERRORS = (KeyError, IndexError, TypeError, ValueError, AttributeError, DataCorrupted)


class UnreadableRecord(DataCorrupted):
    """UnreadableRecord is a damaged record: ``key`` and ``path`` say which.

    ``inode`` is the damaged file's: records are replaced by rename, so a
    file with another inode at ``path`` is a record written since. Plain
    values all, so that the error crosses the supervisor's wire whole.
    """

    def __init__(
        self,
        message: str,
        *,
        key: str = "",
        path: str = "",
        inode: int = 0,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.key = key
        self.path = path
        self.inode = inode


class RecordDir:
    """RecordDir keeps the records ``<directory>/<key><suffix>``.

    Keys are the caller's to make safe as file names. A key whose file is
    missing has no record; files whose name starts with ``.`` (atomic
    writes in progress) are never records. ``decode`` turns a record's
    JSON value into the caller's type and raises one of ``SHAPE_ERRORS``
    when the value is not a record of that type.
    """

    __slots__ = ("_lock_path", "_what", "directory", "suffix")

    def __init__(
        self,
        directory: StrPath,
        *,
        suffix: str = ".json",
        lock_path: StrPath | None = None,
        what: str = "record",
    ) -> None:
        self.directory = os.fspath(directory)
        self.suffix = suffix
        self._lock_path = lock_path
        self._what = what

    def path(self, key: str) -> str:
        return f"{self.directory}/{key}{self.suffix}"

    def all_keys(self) -> list[str]:
        """all_keys are the keys of the records present, sorted."""
        try:
            entries = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        cut = len(self.suffix)
        return sorted(e[:-cut] for e in entries if e.endswith(self.suffix) and e[0] != ".")

    def exists(self, key: str) -> bool:
        return os.path.exists(self.path(key))

    def stat(self, key: str) -> os.stat_result:
        """stat is the status of the record's file: FileNotFoundError if there is none."""
        return os.stat(self.path(key))

    def get(self, key: str, decode: Callable[[Any], T]) -> T | None:
        """get is the record under ``key``, or None if there is none.

        A damaged record raises UnreadableRecord naming its file.
        """
        path = self.path(key)
        try:
            with open(path, "rb") as f:
                data = f.read()
                inode = os.fstat(f.fileno()).st_ino
        except FileNotFoundError:
            return None
        import json

        try:
            value = json.loads(data)
        except ValueError as err:
            why = f"not JSON ({err})" if data else "empty"
            raise UnreadableRecord(
                f"{path}: damaged {self._what} record: {why}", key=key, path=path, inode=inode
            ) from None
        try:
            return decode(value)
        except SHAPE_ERRORS as err:
            raise UnreadableRecord(
                f"{path}: damaged {self._what} record: {type(err).__name__}: {err}",
                key=key,
                path=path,
                inode=inode,
            ) from None

    def list(
        self,
        decode: Callable[[Any], T],
        keys: Iterable[str] | None = None,
        on_error: Callable[[DataCorrupted], None] | None = None,
    ) -> Iterator[T]:
        """list yields the records of ``keys`` (default: every key) that are there.

        A damaged record is skipped: handed to ``on_error`` (``system check``
        reports it), or by default written as ``ctl: warning: <path>: <why>``
        on stderr. A record deleted meanwhile is skipped silently.
        """
        for key in self.all_keys() if keys is None else keys:
            try:
                record = self.get(key, decode)
            except DataCorrupted as err:
                if on_error is None:
                    sys.stderr.write(f"ctl: warning: {err}\n")
                else:
                    on_error(err)
                continue
            if record is not None:
                yield record

    def put(self, key: str, value: Any, name: str | None = None, durable: bool = True) -> None:
        """put writes ``value`` (JSON) as the record under ``key``, atomically.

        A failed write raises WriteFailed naming the record by ``name``
        (default: ``key``). ``durable`` False is ``fsutil.atomic_write``'s:
        for a record that no one needs after the machine crashes.
        """
        what = f"{self._what} record {name or key}"
        fsutil.atomic_write_json(self.path(key), value, durable=durable, what=what)

    def delete(self, key: str, durable: bool = True) -> bool:
        """delete removes the record under ``key``; False if there was none."""
        try:
            os.unlink(self.path(key))
        except FileNotFoundError:
            return False
        if durable:
            fsutil.fsync_dir(self.directory)
        return True

    def damaged(self, decode: Callable[[Any], object]) -> Sequence[UnreadableRecord]:
        """damaged are the records ``get`` cannot read, for ``system check``."""
        found: list[UnreadableRecord] = []
        for key in self.all_keys():
            try:
                self.get(key, decode)
            except UnreadableRecord as err:
                found.append(err)
        return found

    def remove_damaged(self, damaged: UnreadableRecord) -> str:
        """remove_damaged deletes the file ``get`` found damaged; it returns what it did.

        A record written there since (another inode) is left, and raises
        FailedPrecondition; one gone already is fine.
        """
        import contextlib

        from ctl.errdefs import FailedPrecondition

        with self.lock() if self._lock_path is not None else contextlib.nullcontext():
            try:
                inode = os.stat(damaged.path).st_ino
            except FileNotFoundError:
                return f"{damaged.path} is gone already"
            if inode != damaged.inode:
                raise FailedPrecondition(f"{damaged.path}: written again since, left as it is")
            self.delete(damaged.key)
        return f"removed {damaged.path}"

    def lock(self) -> fsutil.FileLock:
        """lock is the directory's flock, for changes that read before they write."""
        if self._lock_path is None:
            raise TypeError(f"RecordDir {self.directory}: made without a lock_path")
        return fsutil.FileLock(self._lock_path, what=f"the {self._what} store")
