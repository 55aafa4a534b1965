"""OCI image-spec vocabulary: media types, descriptors, platforms, digests."""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from ctl.errdefs import InvalidArgument

# Manifests and indexes.
MEDIA_TYPE_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_TYPE_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_TYPE_DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MEDIA_TYPE_DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
MEDIA_TYPE_DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+prettyjws"
# Configs.
MEDIA_TYPE_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_TYPE_DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
# Layers.
MEDIA_TYPE_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MEDIA_TYPE_OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_TYPE_OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MEDIA_TYPE_DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
MEDIA_TYPE_DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
MEDIA_TYPE_DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

INDEX_TYPES = frozenset({MEDIA_TYPE_OCI_INDEX, MEDIA_TYPE_DOCKER_LIST})
MANIFEST_TYPES = frozenset({MEDIA_TYPE_OCI_MANIFEST, MEDIA_TYPE_DOCKER_MANIFEST})
CONFIG_TYPES = frozenset({MEDIA_TYPE_OCI_CONFIG, MEDIA_TYPE_DOCKER_CONFIG})


def blob_kind(media_type: str) -> str:
    """blob_kind names a blob of ``media_type`` for messages: index, manifest, config, layer."""
    if media_type in INDEX_TYPES:
        return "index"
    if media_type in MANIFEST_TYPES:
        return "manifest"
    if media_type in CONFIG_TYPES:
        return "config"
    return "layer" if ".layer." in media_type or ".rootfs." in media_type else "blob"


# Annotations.
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_IMAGE_NAME = "io.containerd.image.name"

_DIGEST = re.compile(r"sha256:[a-f0-9]{64}")


def validate_digest(digest: str) -> str:
    """validate_digest accepts only ``sha256:<64 lowercase hex>``."""
    if not _DIGEST.fullmatch(digest):
        raise InvalidArgument(f"invalid digest {digest!r}: want sha256:<64 hex digits>")
    return digest


def sha256_digest(data: bytes) -> str:
    import hashlib  # only here: loading OpenSSL costs 2 ms that listings do not need

    return "sha256:" + hashlib.sha256(data).hexdigest()


class Platform(NamedTuple):
    """Platform is an os/architecture[/variant] as in the OCI image index."""

    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""
    os_features: tuple[str, ...] = ()

    def __str__(self) -> str:
        base = f"{self.os}/{self.architecture}"
        return f"{base}/{self.variant}" if self.variant else base

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        if self.os_version:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Platform:
        return cls(
            os=str(data.get("os", "")),
            architecture=str(data.get("architecture", "")),
            variant=str(data.get("variant", "") or ""),
            os_version=str(data.get("os.version", "") or ""),
            os_features=tuple(data.get("os.features") or ()),
        )


class Descriptor(NamedTuple):
    """Descriptor points at a blob by media type, digest and size (OCI descriptor).

    Two descriptors of the same blob are equal whatever their annotations,
    platform and urls say: those describe where it was found, not what it is.
    """

    media_type: str
    digest: str
    size: int
    annotations: dict[str, str] = {}  # never changed in place: instances share it
    platform: Platform | None = None
    urls: tuple[str, ...] = ()

    def _identity(self) -> tuple[str, str, int]:
        return (self.media_type, self.digest, self.size)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Descriptor) and self._identity() == other._identity()

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(self._identity())

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        if self.urls:
            out["urls"] = list(self.urls)
        return out

    @classmethod
    def from_json(cls, data: Any) -> Descriptor:
        """from_json validates and converts a descriptor object; malformed is InvalidArgument."""
        if not isinstance(data, dict):
            raise InvalidArgument("malformed descriptor: not an object")
        digest = data.get("digest")
        size = data.get("size")
        media_type = data.get("mediaType", "")
        if not isinstance(digest, str) or not isinstance(media_type, str):
            raise InvalidArgument("malformed descriptor: digest and mediaType must be strings")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidArgument(f"malformed descriptor {digest}: bad size {size!r}")
        platform = data.get("platform")
        annotations = data.get("annotations") or {}
        if not isinstance(annotations, dict):
            raise InvalidArgument(f"malformed descriptor {digest}: bad annotations")
        return cls(
            media_type=media_type,
            digest=validate_digest(digest),
            size=size,
            annotations={str(k): str(v) for k, v in annotations.items()},
            platform=Platform.from_json(platform) if isinstance(platform, dict) else None,
            urls=tuple(str(u) for u in data.get("urls") or ()),
        )
