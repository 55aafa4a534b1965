"""Images: names that point at a target descriptor (an OCI index or manifest).

``ImageStore`` is containerd's ``images.Store``: a per-namespace map from a
normalised reference (``docker.io/library/busybox:latest``) to an ``Image``.
The bytes the target points at live in the content store; the functions in
``ctl.images.manifests`` walk from a target to its platform manifest, config
and layers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from ctl.oci import Descriptor

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from ctl.errdefs import DataCorrupted

RECORD_VERSION = 1
# The platform a pull chose from an index (``linux/arm64``): the image stands
# for that platform's manifest. Only an index needs it; an image without it
# (loaded, or pulled before the label) stands for the host's platform.
LABEL_PLATFORM = "ctl.image.platform"


class Image(NamedTuple):
    """Image names a target descriptor, with labels and timestamps."""

    name: str
    target: Descriptor
    # A default shared by every instance: records are never changed in place.
    labels: dict[str, str] = {}
    created_at: float = 0.0
    updated_at: float = 0.0

    def to_record(self) -> dict[str, Any]:
        return {
            "version": RECORD_VERSION,
            "name": self.name,
            "target": self.target.to_json(),
            "labels": dict(self.labels),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Image:
        return cls(
            name=str(record["name"]),
            target=Descriptor.from_json(record["target"]),
            labels={str(k): str(v) for k, v in (record.get("labels") or {}).items()},
            created_at=float(record.get("created_at", 0.0)),
            updated_at=float(record.get("updated_at", 0.0)),
        )


class ImageStore(Protocol):
    """ImageStore keeps the images of one namespace.

    Names are unique: ``create`` of an existing name raises AlreadyExists,
    ``get``/``update``/``delete`` of a missing one raise NotFound. Each call
    is atomic on its own; a reader never sees a half-written record.
    """

    def get(self, name: str) -> Image: ...

    def list(self, on_error: Callable[[DataCorrupted], None] | None = None) -> Iterator[Image]:
        """list yields every image of the namespace, in no particular order.

        A damaged record is skipped: handed to ``on_error``, or by default
        named in a warning on stderr; it never ends the listing.
        """
        ...

    def create(self, image: Image) -> Image:
        """create records a new image, setting created_at/updated_at."""
        ...

    def update(self, image: Image, fieldpaths: Sequence[str] | None = None) -> Image:
        """update changes ``target`` and/or ``labels`` (all when fieldpaths is None)."""
        ...

    def delete(self, name: str) -> None: ...
