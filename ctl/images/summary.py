"""What listings and inspect show of an image, read from its manifest and config."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from ctl.errdefs import CtlError
from ctl.images import manifests

if TYPE_CHECKING:
    from ctl.content import Provider
    from ctl.images.image import Image


class ImageSummary(NamedTuple):
    """ImageSummary is an image with its resolved platform manifest and config.

    ``id`` is the config digest, as docker and podman show it; an image whose
    platform manifest is not in the store (an index loaded with several
    platforms, none of them the host's) falls back to its target digest.
    """

    image: Image
    id: str
    created: str
    size: int
    platform: str
    manifest: manifests.Manifest | None = None
    # A default shared by every instance: records are never changed in place.
    config: dict[str, Any] = {}


def summarize(provider: Provider, image: Image) -> ImageSummary:
    """summarize reads the manifest and config of the platform ``image`` stands for."""
    try:
        manifest = manifests.image_manifest(provider, image)
        config = manifests.read_config(provider, manifest)
    except CtlError:
        return ImageSummary(image, image.target.digest, "", image.target.size, "")
    size = (
        manifest.descriptor.size
        + manifest.config.size
        + sum(layer.size for layer in manifest.layers)
    )
    return ImageSummary(
        image=image,
        id=manifest.config.digest,
        created=str(config.get("created", "")),
        size=size,
        platform=str(manifests.config_platform(config)),
        manifest=manifest,
        config=config,
    )
