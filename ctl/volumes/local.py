"""LocalVolumeStore: docker's ``local`` driver, over ``<root>/volumes``.

A volume is the directory ``volumes/<name>/`` holding ``_data/`` (what
containers mount) and ``volume.json`` (its record). The record is written
last, atomically, so a directory without one is a create that did not
finish: it is no volume, and the next create of that name reuses it. A
remove first renames the directory to a dot name (never a volume name),
which takes the volume away at once, then deletes it.

Each volume has its own flock (``Paths.lock("volume", sha256(name))``):
create, fill and remove take it exclusively, ``hold`` shared.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from typing import TYPE_CHECKING

from ctl import fsutil
from ctl.errdefs import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from ctl.paths import ref_key
from ctl.records import RecordDir, UnreadableRecord
from ctl.volumes import ANONYMOUS_LABEL, DRIVER, Volume, check_name, check_options

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence
    from typing import Any

    from _typeshed import StrPath

    from ctl.errdefs import DataCorrupted
    from ctl.paths import Paths

DATA_DIR = "_data"
RECORD_KEY = "volume"
# A create or remove of a volume waits this long for another change of it.
LOCK_TIMEOUT = 300.0


class LocalVolumeStore:
    """LocalVolumeStore is the VolumeStore of one root (see ``ctl.volumes.VolumeStore``)."""

    def __init__(self, paths: Paths, users: Callable[[str], Sequence[str]]) -> None:
        self._paths = paths
        self._users = users

    def _record(self, name: str) -> RecordDir:
        return RecordDir(self._paths.volume(name), what="volume")

    def _data(self, name: str) -> str:
        return f"{self._paths.volume(name)}/{DATA_DIR}"

    def _decode(self, name: str) -> Callable[[Any], Volume]:
        def decode(record: Any) -> Volume:
            volume = Volume.from_record(record, self._data(name))
            if volume.name != name:
                raise ValueError(f"the record of volume {volume.name!r}")
            return volume

        return decode

    def _lock(self, name: str, shared: bool = False) -> fsutil.FileLock:
        return fsutil.FileLock(
            self._paths.lock("volume", ref_key(check_name(name))),
            shared=shared,
            timeout=LOCK_TIMEOUT,
            what=f"volume {name}",
        )

    def _find(self, name: str) -> Volume | None:
        return self._record(name).get(RECORD_KEY, self._decode(name))

    def get(self, name: str) -> Volume:
        volume = self._find(name)
        if volume is None:
            raise NotFound(f"volume {name!r}: no such volume", hint="see 'ctl volume ls'")
        return volume

    def list(self, on_error: Callable[[DataCorrupted], None] | None = None) -> Iterator[Volume]:
        try:
            entries = sorted(os.listdir(self._paths.volumes))
        except FileNotFoundError:
            return
        for entry in entries:
            try:
                check_name(entry)
            except InvalidArgument:
                continue  # a removal in progress, or not ctl's
            yield from self._record(entry).list(self._decode(entry), [RECORD_KEY], on_error)

    def create(
        self,
        name: str | None = None,
        *,
        driver: str = DRIVER,
        options: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Volume:
        check_driver(driver)
        check_options(options or {})
        labels = dict(labels or {})
        if name is None:
            name = os.urandom(32).hex()
            labels[ANONYMOUS_LABEL] = ""
        with self._lock(name):
            if self._find(name) is not None:
                raise AlreadyExists(f"volume {name!r}: already exists")
            return self._create_locked(name, dict(options or {}), labels)

    def _create_locked(self, name: str, options: dict[str, str], labels: dict[str, str]) -> Volume:
        self._paths.ensure()
        os.makedirs(self._paths.volumes, 0o700, exist_ok=True)
        os.makedirs(self._paths.volume(name), 0o700, exist_ok=True)
        # docker's _data is world-searchable: containers' users reach their files in it.
        os.makedirs(self._data(name), 0o755, exist_ok=True)
        volume = Volume(
            name=name,
            mountpoint=self._data(name),
            labels=labels,
            options=options,
            created_at=time.time(),
        )
        self._record(name).put(RECORD_KEY, volume.to_record(), name=name)
        return volume

    def ensure(
        self,
        name: str,
        *,
        options: Mapping[str, str] | None = None,
        fill: Callable[[str], None] | None = None,
    ) -> tuple[Volume, bool]:
        mount = check_options(options or {})
        with self._lock(name):
            volume = self._find(name)
            created = volume is None
            if volume is None:
                volume = self._create_locked(name, dict(options or {}), {})
            else:
                mount = check_options(volume.options)
            data = self._data(name)
            # Made again if a hand removed it: the container's bind needs a source.
            os.makedirs(data, 0o755, exist_ok=True)
            if fill is not None and mount.type == "bind" and not mount.source:
                with os.scandir(data) as entries:
                    empty = next(entries, None) is None
                if empty:
                    fill(data)
            return volume, created

    def remove(self, name: str) -> Volume:
        with self._lock(name):
            try:
                volume = self.get(name)
            except UnreadableRecord:
                # A damaged record is no reason to keep the volume its user removes.
                volume = Volume(name=name, mountpoint=self._data(name))
            users = self._users(name)
            if users:
                raise FailedPrecondition(
                    f"volume {name!r} is in use by container{'s' if len(users) > 1 else ''} "
                    f"{', '.join(sorted(users))}",
                    hint="remove the containers first",
                )
            directory = self._paths.volume(name)
            doomed = f"{self._paths.volumes}/.removing-{os.urandom(8).hex()}"
            os.rename(directory, doomed)
            fsutil.fsync_dir(self._paths.volumes)
            shutil.rmtree(doomed, ignore_errors=True)
            return volume

    @contextlib.contextmanager
    def hold(self, name: str) -> Iterator[Volume]:
        with self._lock(name, shared=True):
            yield self.get(name)

    def usage(self, name: str) -> int:
        return directory_size(self._data(name))

    def leftovers(self) -> Sequence[str]:
        """leftovers are removals a crash cut short: their directories can go."""
        try:
            entries = os.listdir(self._paths.volumes)
        except FileNotFoundError:
            return []
        return [f"{self._paths.volumes}/{e}" for e in entries if e.startswith(".removing-")]


def check_driver(driver: str) -> None:
    if driver != DRIVER:
        raise InvalidArgument(f"volume driver {driver!r} is not supported: use local")


def directory_size(path: StrPath) -> int:
    """directory_size is the size of the files under ``path``, a hard link counted once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for directory, dirs, files in os.walk(path):
        for name in dirs + files:
            with contextlib.suppress(OSError):
                st = os.lstat(os.path.join(directory, name))
                if (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_size
    return total
