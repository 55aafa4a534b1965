"""Walking an image from its target: index -> platform manifest -> config and layers."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, NamedTuple

from ctl import oci
from ctl.content.helpers import read_blob
from ctl.errdefs import InvalidArgument, NotFound
from ctl.oci import Descriptor, Platform

if TYPE_CHECKING:
    from ctl.content import Provider
    from ctl.images.image import Image

# Above this, a manifest, index or config is refused: they are small JSON documents.
MAX_METADATA_SIZE = 8 << 20
ATTESTATION_ANNOTATION = "vnd.docker.reference.type"


def parse_document(data: bytes, what: str) -> dict[str, Any]:
    """parse_document decodes a JSON object, or raises InvalidArgument naming ``what``."""
    try:
        doc = json.loads(data)
    except ValueError as err:
        raise InvalidArgument(f"malformed {what}: {err}") from err
    if not isinstance(doc, dict):
        raise InvalidArgument(f"malformed {what}: not a JSON object")
    return doc


def document_media_type(doc: dict[str, Any], declared: str) -> str:
    """document_media_type is the media type of a manifest or index body.

    Some writers omit ``mediaType`` in the body; its shape tells then.
    """
    media_type = doc.get("mediaType") or declared
    if media_type in oci.INDEX_TYPES | oci.MANIFEST_TYPES:
        return str(media_type)
    if media_type == oci.MEDIA_TYPE_DOCKER_SCHEMA1 or doc.get("schemaVersion") == 1:
        raise InvalidArgument("docker schema 1 manifests are not supported")
    if "manifests" in doc:
        return oci.MEDIA_TYPE_OCI_INDEX
    if "config" in doc and "layers" in doc:
        return oci.MEDIA_TYPE_OCI_MANIFEST
    raise InvalidArgument(f"unsupported manifest media type {media_type!r}")


def descriptors(doc: dict[str, Any], key: str, what: str) -> list[Descriptor]:
    items = doc.get(key)
    if not isinstance(items, list):
        raise InvalidArgument(f"malformed {what}: {key!r} is not a list")
    return [Descriptor.from_json(item) for item in items]


class Manifest(NamedTuple):
    """Manifest is a parsed image manifest with its own descriptor."""

    descriptor: Descriptor
    config: Descriptor
    layers: tuple[Descriptor, ...]

    @classmethod
    def parse(cls, desc: Descriptor, data: bytes) -> Manifest:
        doc = parse_document(data, f"manifest {desc.digest}")
        document_media_type(doc, desc.media_type)
        config = doc.get("config")
        return cls(
            descriptor=desc,
            config=Descriptor.from_json(config),
            layers=tuple(descriptors(doc, "layers", f"manifest {desc.digest}")),
        )


def is_index(desc: Descriptor) -> bool:
    return desc.media_type in oci.INDEX_TYPES


def is_attestation(desc: Descriptor) -> bool:
    if ATTESTATION_ANNOTATION in desc.annotations:
        return True
    return desc.platform is not None and desc.platform.os == "unknown"


def index_manifests(desc: Descriptor, data: bytes) -> list[Descriptor]:
    doc = parse_document(data, f"index {desc.digest}")
    document_media_type(doc, desc.media_type)
    return descriptors(doc, "manifests", f"index {desc.digest}")


def select_platform(manifests: list[Descriptor], platform: Platform) -> Descriptor:
    """select_platform picks the manifest for ``platform`` from an index's list."""
    from ctl.reference import platform_matches

    runnable = [m for m in manifests if not is_attestation(m)]
    for m in runnable:
        if m.platform is not None and platform_matches(platform, m.platform):
            return m
    # An index whose only entry says no platform is taken as-is, as containerd does.
    unlabelled = [m for m in runnable if m.platform is None]
    if len(unlabelled) == 1 and len(runnable) == 1:
        return unlabelled[0]
    have = ", ".join(str(m.platform) for m in runnable if m.platform) or "none"
    raise NotFound(f"no image for platform {platform} (the image has: {have})")


def read_document(provider: Provider, desc: Descriptor) -> bytes:
    if desc.size > MAX_METADATA_SIZE:
        raise InvalidArgument(f"{desc.media_type} {desc.digest} is too large ({desc.size} bytes)")
    return read_blob(provider, desc)


def platform_manifest(provider: Provider, target: Descriptor, platform: Platform) -> Manifest:
    """platform_manifest resolves ``target`` to the manifest of ``platform``."""
    if is_index(target):
        chosen = select_platform(index_manifests(target, read_document(provider, target)), platform)
        return platform_manifest(provider, chosen, platform)
    if target.media_type not in oci.MANIFEST_TYPES:
        raise InvalidArgument(f"unsupported image media type {target.media_type!r}")
    return Manifest.parse(target, read_document(provider, target))


def image_manifest(provider: Provider, image: Image, platform: Platform | None = None) -> Manifest:
    """image_manifest resolves an image to the manifest it stands for.

    That is ``platform``'s when given, else the one its pull chose (the
    image's LABEL_PLATFORM), else the host's. An image without the label (one
    pulled before it existed, or loaded from an archive) whose index has no
    manifest of the host's in the store stands for the only one that is.
    """
    from ctl.images.image import LABEL_PLATFORM
    from ctl.reference import host_platform, parse_platform

    recorded = image.labels.get(LABEL_PLATFORM)
    if platform is None and recorded:
        platform = parse_platform(recorded)
    if platform is not None:
        return platform_manifest(provider, image.target, platform)
    try:
        return platform_manifest(provider, image.target, host_platform())
    except NotFound:
        if not is_index(image.target):
            raise
        present = _present_manifests(provider, image.target)
        if len(present) != 1:
            raise
        return present[0]


def _present_manifests(provider: Provider, index: Descriptor) -> list[Manifest]:
    """_present_manifests are the runnable manifests of ``index`` that are in the store."""
    present = []
    for desc in index_manifests(index, read_document(provider, index)):
        if is_attestation(desc) or is_index(desc):
            continue
        try:
            present.append(Manifest.parse(desc, read_document(provider, desc)))
        except NotFound:
            continue
    return present


def children(provider: Provider, desc: Descriptor) -> list[Descriptor]:
    """children lists the descriptors ``desc`` refers to (none for configs and layers)."""
    if is_index(desc):
        return index_manifests(desc, read_document(provider, desc))
    if desc.media_type in oci.MANIFEST_TYPES:
        manifest = Manifest.parse(desc, read_document(provider, desc))
        return [manifest.config, *manifest.layers]
    return []


def read_config(provider: Provider, manifest: Manifest) -> dict[str, Any]:
    return parse_document(read_document(provider, manifest.config), "image config")


def diff_ids(config: dict[str, Any]) -> list[str]:
    rootfs = config.get("rootfs")
    ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(ids, list):
        raise InvalidArgument("malformed image config: no rootfs.diff_ids")
    return [oci.validate_digest(str(d)) for d in ids]


def chain_ids(ids: list[str]) -> list[str]:
    """chain_ids computes the OCI ChainID of each layer prefix."""
    chain: list[str] = []
    for diff_id in ids:
        if not chain:
            chain.append(diff_id)
        else:
            chain.append(oci.sha256_digest(f"{chain[-1]} {diff_id}".encode()))
    return chain


def config_platform(config: dict[str, Any]) -> Platform:
    return Platform(
        os=str(config.get("os", "")),
        architecture=str(config.get("architecture", "")),
        variant=str(config.get("variant", "") or ""),
    )
