"""The on-disk image store: one JSON record a name, under the namespace."""

from __future__ import annotations

import os
import time

from ctl import fsutil
from ctl.errdefs import AlreadyExists, InvalidArgument, NotFound
from ctl.paths import ref_key

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

    from ctl.images.image import Image


# The record classes are imported where used, not at the top: a listing of an
# empty root then never imports typing, which costs more than the listing.
class LocalImageStore:
    """LocalImageStore keeps records at ``<dir>/<sha256(name)>.json``.

    The file name is a hash because a name (``host:port/a/b:tag``) is neither
    a safe path component nor of bounded length. Changes that read before they
    write (create, update) hold the store's lock.
    """

    def __init__(self, directory: Path, lock_path: Path) -> None:
        self._dir = directory
        self._lock_path = lock_path

    def _path(self, name: str) -> Path:
        return self._dir / f"{ref_key(name)}.json"

    def _lock(self) -> fsutil.FileLock:
        return fsutil.FileLock(self._lock_path, what="the image store")

    def get(self, name: str) -> Image:
        from ctl.images.image import Image

        try:
            return Image.from_record(fsutil.read_json(self._path(name)))
        except FileNotFoundError:
            raise NotFound(f"image {name!r}: not found") from None

    def list(self) -> Iterator[Image]:
        try:
            entries = os.listdir(self._dir)
        except FileNotFoundError:
            return
        from ctl.images.image import Image

        for entry in sorted(entries):
            if entry.startswith(".") or not entry.endswith(".json"):
                continue
            try:
                yield Image.from_record(fsutil.read_json(self._dir / entry))
            except FileNotFoundError:
                continue  # deleted by a concurrent rmi

    def create(self, image: Image) -> Image:
        if not image.name:
            raise InvalidArgument("image name must not be empty")
        now = time.time()
        created = image._replace(created_at=now, updated_at=now)
        with self._lock():
            path = self._path(image.name)
            if path.exists():
                raise AlreadyExists(f"image {image.name!r}: already exists")
            fsutil.atomic_write_json(path, created.to_record())
        return created

    def update(self, image: Image, fieldpaths: Sequence[str] | None = None) -> Image:
        with self._lock():
            current = self.get(image.name)
            target = current.target
            labels = dict(current.labels)
            for path in fieldpaths or ["target", "labels"]:
                if path == "target":
                    target = image.target
                elif path == "labels":
                    labels = dict(image.labels)
                elif path.startswith("labels."):
                    key = path.removeprefix("labels.")
                    if image.labels.get(key):
                        labels[key] = image.labels[key]
                    else:
                        labels.pop(key, None)
                else:
                    raise InvalidArgument(f"cannot update field {path!r} of an image")
            updated = current._replace(target=target, labels=labels, updated_at=time.time())
            fsutil.atomic_write_json(self._path(image.name), updated.to_record())
        return updated

    def delete(self, name: str) -> None:
        path = self._path(name)
        try:
            path.unlink()
        except FileNotFoundError:
            raise NotFound(f"image {name!r}: not found") from None
        fsutil.fsync_dir(path.parent)
