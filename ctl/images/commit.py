"""New images from a container (``commit``) or from a tar (``import``): one new layer each.

The layer is gzip-compressed into the content store with its diff_id; the
config follows docker's: the base image's config (none for ``import``) with
the container's command and environment, ``--change`` instructions applied,
``rootfs.diff_ids`` and ``history`` extended by the new layer, ``created``,
``author`` and ``comment`` set. The manifest is OCI's, or docker's when
the base image's is. An image without a name is recorded under its manifest
digest and listed as ``<none>``, as ``load`` does.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shlex
import time
from typing import TYPE_CHECKING, Any

from ctl import oci
from ctl.errdefs import InvalidArgument

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import BinaryIO

    from ctl.client import Client
    from ctl.images.image import Image
    from ctl.images.manifests import Manifest
    from ctl.oci import Descriptor

# docker's list (docs/reference/commandline/container_commit.md), and STOPSIGNAL.
CHANGE_INSTRUCTIONS = (
    "CMD",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "LABEL",
    "ONBUILD",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
)
_GZIP_LEVEL = 6
# A tar's first header says "ustar" at offset 257 (POSIX, GNU and pax alike).
_TAR_MAGIC_END = 262


def apply_change(config: dict[str, Any], change: str) -> None:
    """apply_change applies one Dockerfile instruction to an image's ``config`` object.

    InvalidArgument for an instruction docker does not allow there, or a malformed one.
    """
    word, _, rest = change.strip().partition(" ")
    instruction, rest = word.upper(), rest.strip()
    if instruction not in CHANGE_INSTRUCTIONS:
        raise InvalidArgument(f"--change: {word!r} is not one of {', '.join(CHANGE_INSTRUCTIONS)}")
    if not rest:
        raise InvalidArgument(f"--change: {instruction} needs an argument")
    if instruction in ("CMD", "ENTRYPOINT"):
        key = "Cmd" if instruction == "CMD" else "Entrypoint"
        config[key] = _command(rest)
    elif instruction == "ENV":
        env = [e for e in config.get("Env") or []]
        for key, value in _pairs(rest, instruction).items():
            env = [e for e in env if e.partition("=")[0] != key] + [f"{key}={value}"]
        config["Env"] = env
    elif instruction == "LABEL":
        config["Labels"] = {**(config.get("Labels") or {}), **_pairs(rest, instruction)}
    elif instruction == "EXPOSE":
        ports = dict(config.get("ExposedPorts") or {})
        for port in rest.split():
            ports[port if "/" in port else f"{port}/tcp"] = {}
        config["ExposedPorts"] = ports
    elif instruction == "VOLUME":
        paths = _json_list(rest) if rest.startswith("[") else rest.split()
        config["Volumes"] = {**(config.get("Volumes") or {}), **{p: {} for p in paths}}
    elif instruction == "ONBUILD":
        config["OnBuild"] = [*(config.get("OnBuild") or []), rest]
    else:
        key = {"USER": "User", "WORKDIR": "WorkingDir", "STOPSIGNAL": "StopSignal"}[instruction]
        config[key] = rest


def _command(text: str) -> list[str]:
    """_command reads exec form (a JSON array) or shell form (run by /bin/sh -c)."""
    if text.startswith("["):
        return _json_list(text)
    return ["/bin/sh", "-c", text]


def _json_list(text: str) -> list[str]:
    try:
        value = json.loads(text)
    except ValueError:
        raise InvalidArgument(f"--change: {text!r} is not a JSON array") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"--change: {text!r} is not a JSON array of strings")
    return value


def _pairs(text: str, instruction: str) -> dict[str, str]:
    """_pairs reads ``k=v k2="v 2"``, or the old one-pair form ``k v``."""
    try:
        words = shlex.split(text)
    except ValueError as err:
        raise InvalidArgument(f"--change: {instruction} {text!r}: {err}") from None
    if "=" not in words[0]:
        if len(words) < 2 and instruction == "ENV":
            raise InvalidArgument(f"--change: ENV {text!r} has no value")
        return {words[0]: text.partition(" ")[2].strip()}
    pairs = {}
    for word in words:
        key, eq, value = word.partition("=")
        if not eq or not key:
            raise InvalidArgument(f"--change: {instruction} {word!r} is not KEY=VALUE")
        pairs[key] = value
    return pairs


def now_rfc3339() -> str:
    """now_rfc3339 is the time in docker's form, with nanoseconds and Z."""
    ns = time.time_ns()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + (
        f".{ns % 1_000_000_000:09d}Z"
    )


def write_layer_blob(
    client: Client, write_tar: Callable[[BinaryIO], object]
) -> tuple[Descriptor, str]:
    """write_layer_blob stores what ``write_tar`` writes, gzipped; returns it and its diff_id."""
    from ctl import fsutil
    from ctl.content.helpers import write_blob
    from ctl.oci import Descriptor

    tmp = fsutil.make_temp_dir(client.paths.root, "tmp-layer-")
    try:
        path = tmp / "layer.tar.gz"
        with path.open("wb") as raw:
            compressed = _Hashing(raw)
            with gzip.GzipFile(
                fileobj=compressed, mode="wb", compresslevel=_GZIP_LEVEL, mtime=0
            ) as gz:
                plain = _Hashing(gz)
                write_tar(plain)  # type: ignore[arg-type]  # a writer is all it needs
        desc = Descriptor(
            oci.MEDIA_TYPE_OCI_LAYER_GZIP,
            "sha256:" + compressed.digest.hexdigest(),
            compressed.size,
        )
        with path.open("rb") as f:
            write_blob(client.content, f"layer-{desc.digest}", f, desc)
        return desc, "sha256:" + plain.digest.hexdigest()
    finally:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


class _Hashing:
    """_Hashing passes writes on to ``out`` and hashes and counts them."""

    def __init__(self, out: Any) -> None:
        self._out = out
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self._out.write(data)
        self.digest.update(data)
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        self._out.flush()


def new_image(
    client: Client,
    *,
    base: tuple[dict[str, Any], Manifest] | None,
    layer: tuple[Descriptor, str],
    config: dict[str, Any],
    history: dict[str, Any],
    name: str | None,
    platform: dict[str, str] | None = None,
) -> tuple[Image, str]:
    """new_image writes config and manifest of ``base`` plus ``layer``, and names the image.

    ``config`` is the new config's ``config`` object; ``history`` the new
    entry (``created`` is filled in). Returns the image and its ID. The
    caller holds a lease (``Client.lease``) from before the layer was
    written, so that no prune takes the blobs before the image names them.
    """
    from ctl.content.helpers import write_blob
    from ctl.oci import Descriptor
    from ctl.reference import parse

    layer_desc, diff_id = layer
    created = history.setdefault("created", now_rfc3339())
    base_config, base_manifest = base if base is not None else ({}, None)
    docker = (
        base_manifest is not None
        and base_manifest.descriptor.media_type == oci.MEDIA_TYPE_DOCKER_MANIFEST
    )
    image_config: dict[str, Any] = {
        **{k: v for k, v in base_config.items() if k not in ("container", "container_config")},
        "created": created,
        "config": config,
        "rootfs": {
            "type": "layers",
            "diff_ids": [*(base_config.get("rootfs") or {}).get("diff_ids", []), diff_id],
        },
        "history": [*(base_config.get("history") or []), history],
    }
    if history.get("author"):
        image_config["author"] = history["author"]
    for key, value in (platform or {}).items():
        image_config[key] = value
    layer_type = oci.MEDIA_TYPE_DOCKER_LAYER_GZIP if docker else oci.MEDIA_TYPE_OCI_LAYER_GZIP
    config_bytes = json.dumps(image_config, separators=(",", ":")).encode()
    config_desc = Descriptor(
        oci.MEDIA_TYPE_DOCKER_CONFIG if docker else oci.MEDIA_TYPE_OCI_CONFIG,
        "sha256:" + hashlib.sha256(config_bytes).hexdigest(),
        len(config_bytes),
    )
    layers = [*(base_manifest.layers if base_manifest else ()), layer_desc]
    manifest_type = oci.MEDIA_TYPE_DOCKER_MANIFEST if docker else oci.MEDIA_TYPE_OCI_MANIFEST
    manifest = {
        "schemaVersion": 2,
        "mediaType": manifest_type,
        "config": _descriptor_json(config_desc),
        "layers": [
            _descriptor_json(d._replace(media_type=layer_type) if d is layer_desc else d)
            for d in layers
        ],
    }
    manifest_bytes = json.dumps(manifest, separators=(",", ":")).encode()
    manifest_desc = Descriptor(
        manifest_type,
        "sha256:" + hashlib.sha256(manifest_bytes).hexdigest(),
        len(manifest_bytes),
    )
    write_blob(client.content, f"config-{config_desc.digest}", [config_bytes], config_desc)
    write_blob(client.content, f"manifest-{manifest_desc.digest}", [manifest_bytes], manifest_desc)
    image = client._put_image(str(parse(name)) if name else manifest_desc.digest, manifest_desc, {})
    return image, config_desc.digest


def _descriptor_json(desc: Descriptor) -> dict[str, Any]:
    return {"mediaType": desc.media_type, "digest": desc.digest, "size": desc.size}


def commit(
    client: Client,
    ref: str,
    name: str | None,
    *,
    author: str = "",
    message: str = "",
    changes: list[str] | None = None,
    pause: bool = True,
) -> str:
    """commit makes an image of the container ``ref``'s changes; returns its ID."""
    from ctl.containers.changes import container_changes, write_layer
    from ctl.images import manifests
    from ctl.runtime.state import Status

    container = client.containers.get(ref)
    config_changes = list(changes or [])
    image = client.get_image(container.image)
    base_manifest = manifests.image_manifest(client.content, image)
    base_config = manifests.read_config(client.content, base_manifest)
    config = _container_config(container, dict(base_config.get("config") or {}))
    for change in config_changes:
        apply_change(config, change)
    if name:
        from ctl.reference import parse

        parse(name)  # a bad name fails before the layer is written
    history = {
        "created_by": " ".join(_process_args(container)),
        **({"author": author} if author else {}),
        **({"comment": message} if message else {}),
    }
    paused = pause and client.tasks.status(container.id) == Status.RUNNING
    with client.lease():
        if paused:
            client.pause(ref)
        try:
            with container_changes(client, container) as (found, side):
                layer = write_layer_blob(client, lambda out: write_layer(found, side, out))
        finally:
            if paused:
                client.resume(ref)
        _, image_id = new_image(
            client,
            base=(base_config, base_manifest),
            layer=layer,
            config=config,
            history=history,
            name=name,
        )
    return image_id


def _process_args(container: Any) -> list[str]:
    process = container.spec.get("process") or {}
    return [str(a) for a in process.get("args") or []]


def _container_config(container: Any, config: dict[str, Any]) -> dict[str, Any]:
    """_container_config is the image config as the container ran it: its command and env."""
    run = container.config
    if run.entrypoint is not None:
        config["Entrypoint"] = list(run.entrypoint) or None
        config["Cmd"] = list(run.args) or None
    elif run.args:
        config["Cmd"] = list(run.args)
    process = container.spec.get("process") or {}
    env = [str(e) for e in process.get("env") or [] if not str(e).startswith("HOSTNAME=")]
    if env:
        config["Env"] = env
    return config


def parse_platform_fields(text: str | None) -> dict[str, str]:
    """parse_platform_fields gives the config's os, architecture and variant for ``text``."""
    from ctl.reference import host_platform, parse_platform

    platform = parse_platform(text) if text else host_platform()
    fields = {"os": platform.os, "architecture": platform.architecture}
    if platform.variant:
        fields["variant"] = platform.variant
    return fields


def import_image(
    client: Client,
    source: BinaryIO,
    name: str | None,
    *,
    message: str = "",
    changes: list[str] | None = None,
    platform: str | None = None,
    origin: str = "-",
) -> str:
    """import_image makes a one-layer image of the tar (plain or compressed) ``source``.

    ``origin`` (a file, a URL or ``-``) goes in the history's comment when
    there is no ``message``, as docker has it.
    """
    from ctl.archive import compression

    config: dict[str, Any] = {}
    for change in changes or []:
        apply_change(config, change)
    platform_fields = parse_platform_fields(platform)
    if name:
        from ctl.reference import parse

        parse(name)

    def copy(out: BinaryIO) -> None:
        head = b""
        for chunk in compression.decompress(source):
            if len(head) < _TAR_MAGIC_END:
                head += chunk[: _TAR_MAGIC_END - len(head)]
            out.write(chunk)
        if head[257:_TAR_MAGIC_END] != b"ustar":
            raise InvalidArgument("import: the input is not a tar archive")

    history = {"created_by": "", "comment": message or f"Imported from {origin}"}
    with client.lease():
        layer = write_layer_blob(client, copy)
        _, image_id = new_image(
            client,
            base=None,
            layer=layer,
            config=config,
            history=history,
            name=name,
            platform=platform_fields,
        )
    return image_id
