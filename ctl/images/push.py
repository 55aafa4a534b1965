"""Uploading an image to a registry: blobs first, then manifests, then the tag."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ctl.errdefs import NotFound
from ctl.images import manifests

if TYPE_CHECKING:
    from ctl.content import ContentStore
    from ctl.images.image import Image
    from ctl.oci import Descriptor
    from ctl.progress import Progress
    from ctl.reference import Reference
    from ctl.remotes.registry import Registry


def push_image(
    store: ContentStore,
    registry: Registry,
    ref: Reference,
    image: Image,
    progress: Progress,
) -> Descriptor:
    """push_image pushes ``image`` under ``ref``'s tag (or digest); returns what was pushed.

    An index whose platform manifests are not all in the store (a pull takes
    only one) is pushed as the manifest of the platform the image stands for
    alone, rather than failing the way containerd does.
    """
    repo = ref.path
    target = top = image.target
    if manifests.is_index(target):
        listed = manifests.index_manifests(target, manifests.read_document(store, target))
        present = [m for m in listed if _present(store, m)]
        if len(present) == len(listed):
            for child in listed:
                _push_manifest_tree(store, registry, repo, child, progress)
        else:
            top = manifests.image_manifest(store, image).descriptor
    try:
        _push_manifest_tree(store, registry, repo, top, progress, tag=ref.tag or ref.digest)
    finally:
        progress.close()
    return top


def _present(store: ContentStore, desc: Descriptor) -> bool:
    try:
        store.info(desc.digest)
    except NotFound:
        return False
    return True


def _push_manifest_tree(
    store: ContentStore,
    registry: Registry,
    repo: str,
    desc: Descriptor,
    progress: Progress,
    tag: str | None = None,
) -> None:
    if not manifests.is_index(desc):
        manifest = manifests.Manifest.parse(desc, manifests.read_document(store, desc))
        for blob in (manifest.config, *manifest.layers):
            if registry.blob_exists(repo, blob):
                progress.finished(blob, "exists")
                continue
            progress.started(blob, "blob", 0)
            with store.reader_at(blob) as reader:
                registry.push_blob(repo, blob, reader)
            progress.finished(blob, "done")
    body = manifests.read_document(store, desc)
    registry.push_manifest(repo, tag or desc.digest, desc.media_type, body)
