"""The on-disk image store: one JSON record a name, under the namespace."""

from __future__ import annotations

import time

from ctl.errdefs import AlreadyExists, InvalidArgument, NotFound
from ctl.paths import ref_key
from ctl.records import RecordDir

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from ctl.errdefs import DataCorrupted
    from ctl.images.image import Image
    from ctl.records import UnreadableRecord


# The record classes are imported where used, not at the top: a listing of an
# empty root then never imports typing, which costs more than the listing.
class LocalImageStore:
    """LocalImageStore keeps records at ``<dir>/<sha256(name)>.json``.

    The file name is a hash because a name (``host:port/a/b:tag``) is neither
    a safe path component nor of bounded length. Changes that read before they
    write (create, update) hold the store's lock.
    """

    def __init__(self, directory: str, lock_path: str) -> None:
        self._records = RecordDir(directory, lock_path=lock_path, what="image")

    def get(self, name: str) -> Image:
        from ctl.images.image import Image

        image = self._records.get(ref_key(name), Image.from_record)
        if image is None:
            raise NotFound(f"image {name!r}: not found")
        return image

    def list(self, on_error: Callable[[DataCorrupted], None] | None = None) -> Iterator[Image]:
        keys = self._records.all_keys()
        if not keys:
            return
        from ctl.images.image import Image

        yield from self._records.list(Image.from_record, keys, on_error)

    def create(self, image: Image) -> Image:
        if not image.name:
            raise InvalidArgument("image name must not be empty")
        now = time.time()
        created = image._replace(created_at=now, updated_at=now)
        key = ref_key(image.name)
        with self._records.lock():
            if self._records.exists(key):
                raise AlreadyExists(f"image {image.name!r}: already exists")
            self._records.put(key, created.to_record(), name=image.name)
        return created

    def update(self, image: Image, fieldpaths: Sequence[str] | None = None) -> Image:
        """update changes the fields ``fieldpaths`` names (default: target and labels).

        An update that sets the target replaces a damaged record (a pull
        again repairs it): the target is what makes an image, and the old
        labels cannot be read anyway.
        """
        from ctl.records import UnreadableRecord

        paths = fieldpaths or ["target", "labels"]
        with self._records.lock():
            try:
                current = self.get(image.name)
            except UnreadableRecord:
                if "target" not in paths:
                    raise
                current = image._replace(labels={}, created_at=time.time())
            target = current.target
            labels = dict(current.labels)
            for path in paths:
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
            self._records.put(ref_key(image.name), updated.to_record(), name=image.name)
        return updated

    def remove_damaged(self, damaged: UnreadableRecord) -> str:
        """remove_damaged deletes an image record that ``list`` found damaged (see RecordDir)."""
        return self._records.remove_damaged(damaged) + ": pull the image again"

    def delete(self, name: str) -> None:
        if not self._records.delete(ref_key(name)):
            raise NotFound(f"image {name!r}: not found")
