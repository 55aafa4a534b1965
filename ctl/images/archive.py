"""Image archives: ``save`` writes an OCI image layout tar, ``load`` reads one or docker's.

The written tar is an OCI image layout (``oci-layout``, ``index.json``,
``blobs/sha256/…``) that also carries docker's ``manifest.json``, so
``docker load``, ``podman load`` and ``skopeo copy oci-archive:`` all read it.

``load`` streams the tar once (it may come from a pipe) and stores every blob
through the content store's verified ingest: a blob named by its digest must
match it, and a docker archive's layers must match the config's diff_ids. The
small JSON documents are kept in memory until the end, when the images are
assembled and checked for completeness. Nothing is named until all of an
image's content is committed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import posixpath
import tarfile
from typing import IO, TYPE_CHECKING, Any, BinaryIO

from ctl import oci
from ctl.content.helpers import VerifyingReader, exists
from ctl.errdefs import AlreadyExists, CtlError, DataCorrupted, InvalidArgument, NotFound
from ctl.images import manifests
from ctl.oci import Descriptor

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from ctl.content import ContentStore, Provider
    from ctl.images.image import Image

CHUNK = 1 << 20
# JSON documents of an archive are held in memory; larger ones are refused.
MAX_DOCUMENT = 16 << 20
OCTET_STREAM = "application/octet-stream"
BLOB_PREFIX = "blobs/sha256/"


# Save.


@contextlib.contextmanager
def archive_file(path: Path) -> Iterator[BinaryIO]:
    """archive_file yields a file that becomes ``path`` only if the block succeeds.

    The archive is written beside ``path`` as ``.<name>.<pid>.tmp``, flocked
    while it is written, and renamed over ``path`` at the end. Any failure,
    SIGINT and SIGTERM included, removes it; one left by a SIGKILL is not
    locked any more and its process is gone, and the next save to the same
    ``path`` removes it.
    Errors name ``path``, never the temporary file.
    """
    import fcntl
    import signal
    import threading

    from ctl.fsutil import fsync_dir

    if path.is_dir():
        raise InvalidArgument(f"save: {path} is a directory: name a file to write")
    _remove_stale_archives(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # Only the main thread may set handlers; a library caller's thread keeps the default.
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm) if in_main else None
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            with os.fdopen(fd, "wb") as out:
                fcntl.flock(out.fileno(), fcntl.LOCK_EX)
                yield out
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
            fsync_dir(path.parent)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as err:
        if err.filename not in (None, os.fspath(tmp)):
            raise  # not the archive's own: a blob that cannot be read
        raise CtlError(f"save: writing {path}: {err.strerror or err}") from err
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # EPERM: it exists
    return True


def _exit_on_sigterm(signum: int, frame: object) -> None:
    # Unwinds like Ctrl-C, so that the temporary archive is removed; 143 = 128 + SIGTERM.
    raise SystemExit(128 + signum)


def _remove_stale_archives(path: Path) -> None:
    """_remove_stale_archives removes the temporary archives of saves to ``path`` that died."""
    import fcntl

    prefix, suffix = f".{path.name}.", ".tmp"
    try:
        names = os.listdir(path.parent)
    except FileNotFoundError:
        return  # the open names the missing directory
    for name in names:
        middle = name[len(prefix) : -len(suffix)]
        if not (name.startswith(prefix) and name.endswith(suffix) and middle.isdigit()):
            continue
        if _process_exists(int(middle)):
            continue  # its save may be between creating the file and locking it
        stale = path.parent / name
        try:
            fd = os.open(stale, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a save in progress holds it
        else:
            stale.unlink(missing_ok=True)
        finally:
            os.close(fd)


def export_archive(provider: Provider, images: list[Image], out: BinaryIO) -> None:
    """export_archive writes ``images`` as one OCI layout tar to ``out``."""
    from ctl.reference import parse

    index_entries: list[dict[str, Any]] = []
    docker_entries: dict[str, dict[str, Any]] = {}
    blobs: dict[str, Descriptor] = {}
    for image in images:
        manifest = manifests.image_manifest(provider, image)
        top = _exportable_target(provider, image.target, manifest)
        _collect(provider, top, blobs)
        repo_tag = None
        entry = top.to_json()
        # An unnamed image (named by its digest, listed as <none>) leaves without a name.
        if not image.name.startswith("sha256:"):
            ref = parse(image.name)
            # The full name, not just the tag, so that one archive can hold
            # several images skopeo can tell apart (oci-archive:FILE:NAME).
            names = {oci.ANNOTATION_IMAGE_NAME: image.name, oci.ANNOTATION_REF_NAME: image.name}
            entry["annotations"] = {**entry.get("annotations", {}), **names}
            if ref.tag:
                repo_tag = ref.familiar
        index_entries.append(entry)
        docker = docker_entries.setdefault(
            manifest.descriptor.digest,
            {
                "Config": BLOB_PREFIX + manifest.config.digest[7:],
                "RepoTags": [],
                "Layers": [BLOB_PREFIX + layer.digest[7:] for layer in manifest.layers],
            },
        )
        if repo_tag and repo_tag not in docker["RepoTags"]:
            docker["RepoTags"].append(repo_tag)

    index = {"schemaVersion": 2, "mediaType": oci.MEDIA_TYPE_OCI_INDEX, "manifests": index_entries}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        _add_bytes(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        _add_dir(tar, "blobs")
        _add_dir(tar, "blobs/sha256")
        for desc in blobs.values():
            info = tarfile.TarInfo(BLOB_PREFIX + desc.digest[7:])
            info.size = desc.size
            info.mode = 0o444
            with provider.reader_at(desc) as stored:
                # Verified as it is copied: a damaged blob must not leave in an archive.
                reader = VerifyingReader(stored, desc)
                tar.addfile(info, reader)
                reader.verify()
        _add_bytes(tar, "index.json", json.dumps(index).encode())
        _add_bytes(tar, "manifest.json", json.dumps(list(docker_entries.values())).encode())


def _exportable_target(
    provider: Provider, target: Descriptor, manifest: manifests.Manifest
) -> Descriptor:
    """An index is exported whole if all its manifests are here, else as ``manifest`` alone."""
    if not manifests.is_index(target):
        return target
    listed = manifests.index_manifests(target, manifests.read_document(provider, target))
    if all(_tree_present(provider, m) for m in listed):
        return target
    return manifest.descriptor


def _tree_present(provider: Provider, desc: Descriptor) -> bool:
    try:
        return all(_tree_present(provider, c) for c in manifests.children(provider, desc))
    except NotFound:
        return False


def _collect(provider: Provider, desc: Descriptor, into: dict[str, Descriptor]) -> None:
    if desc.digest in into:
        return
    into[desc.digest] = desc
    for child in manifests.children(provider, desc):
        _collect(provider, child, into)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o444
    tar.addfile(info, io.BytesIO(data))


def _add_dir(tar: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    info.mode = 0o755
    tar.addfile(info)


# Load.


class _ArchiveReader:
    """_ArchiveReader takes one pass over the tar and stores what it finds."""

    def __init__(self, store: ContentStore) -> None:
        self.store = store
        self.documents: dict[str, bytes] = {}
        # Files not named by digest (a legacy docker archive's layer.tar): name -> descriptor.
        self.files: dict[str, Descriptor] = {}
        self.aliases: dict[str, str] = {}

    def read(self, source: BinaryIO) -> None:
        try:
            with tarfile.open(fileobj=source, mode="r|*") as tar:
                for member in tar:
                    self._member(tar, member)
        except tarfile.TarError as err:
            raise InvalidArgument(f"not a readable tar archive: {err}") from err
        except EOFError as err:
            raise InvalidArgument("the archive ends early: it is truncated") from err

    def _member(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        name = _clean(member.name)
        if member.issym() or member.islnk():
            # docker save links repeated layers to their first copy.
            base = posixpath.dirname(name) if member.issym() else ""
            self.aliases[name] = _clean(posixpath.join(base, member.linkname))
            return
        if not member.isfile():
            return
        stream = tar.extractfile(member)
        if stream is None:
            return
        if name.startswith(BLOB_PREFIX):
            digest = "sha256:" + name.removeprefix(BLOB_PREFIX)
            try:
                oci.validate_digest(digest)
            except InvalidArgument as err:
                raise InvalidArgument(f"archive member {name!r}: {err}") from None
            self._store_blob(name, stream, Descriptor(OCTET_STREAM, digest, member.size))
        elif name.endswith(".json") or name in ("oci-layout", "repositories"):
            if member.size > MAX_DOCUMENT:
                raise InvalidArgument(f"archive member {name!r} is too large for a document")
            self.documents[name] = stream.read()
        else:
            self.files[name] = self._store_unnamed(name, stream)

    def _store_blob(self, name: str, stream: IO[bytes], desc: Descriptor) -> None:
        try:
            writer = self.store.writer(f"load-{desc.digest}", desc)
        except AlreadyExists:
            return
        with writer:
            writer.truncate(0)
            _copy(stream, writer)
            try:
                writer.commit(desc.size, desc.digest)
            except AlreadyExists:
                pass
            except CtlError as err:
                raise DataCorrupted(
                    f"archive blob {name}: content does not match its digest"
                ) from err

    def _store_unnamed(self, name: str, stream: IO[bytes]) -> Descriptor:
        ref = f"load-{os.getpid()}-{hashlib.sha256(name.encode()).hexdigest()}"
        with self.store.writer(ref) as writer:
            writer.truncate(0)
            size = _copy(stream, writer)
            digest = writer.digest()
            with contextlib.suppress(AlreadyExists):
                writer.commit(size, digest)
        return Descriptor(OCTET_STREAM, digest, size)

    def resolve(self, path: str) -> Descriptor:
        """resolve maps a path inside the archive to the stored blob's descriptor."""
        path = _clean(path)
        for _ in range(16):
            if path not in self.aliases:
                break
            path = self.aliases[path]
        if path in self.files:
            return self.files[path]
        if path.startswith(BLOB_PREFIX):
            digest = oci.validate_digest("sha256:" + path.removeprefix(BLOB_PREFIX))
            return Descriptor(OCTET_STREAM, digest, self.store.info(digest).size)
        raise InvalidArgument(f"the archive has no file {path!r}")

    def document(self, path: str) -> bytes:
        path = _clean(path)
        data = self.documents.get(path)
        if data is not None:
            return data
        desc = self.resolve(path)
        if desc.size > MAX_DOCUMENT:
            raise InvalidArgument(f"archive member {path!r} is too large for a document")
        with self.store.reader_at(desc) as reader:
            return reader.read()


def _clean(name: str) -> str:
    return posixpath.normpath("/" + name).lstrip("/")


def _copy(stream: IO[bytes], writer: Any) -> int:
    total = 0
    while chunk := stream.read(CHUNK):
        writer.write(chunk)
        total += len(chunk)
    return total


def import_archive(store: ContentStore, source: BinaryIO) -> list[tuple[str, Descriptor]]:
    """import_archive stores an archive's content and returns (name, target) pairs."""
    reader = _ArchiveReader(store)
    reader.read(source)
    if "index.json" in reader.documents:
        return _import_oci(store, reader)
    if "manifest.json" in reader.documents:
        return _import_docker(store, reader)
    raise InvalidArgument(
        "not an image archive: it has neither index.json (OCI layout) nor manifest.json (docker)"
    )


def _import_oci(store: ContentStore, reader: _ArchiveReader) -> list[tuple[str, Descriptor]]:
    index = manifests.parse_document(reader.document("index.json"), "index.json")
    entries = manifests.descriptors(index, "manifests", "index.json")
    names_by_config = _docker_names(reader)
    out: list[tuple[str, Descriptor]] = []
    for entry in entries:
        desc = _with_document_type(store, entry)
        _check_complete(store, desc)
        names = _oci_names(desc)
        if not names:
            names = names_by_config.get(_config_digest(store, desc), [])
        # An image without a name is recorded under its target digest and listed as <none>.
        out.extend((name, desc) for name in names or [desc.digest])
    return out


def _with_document_type(store: ContentStore, desc: Descriptor) -> Descriptor:
    """index.json entries of some writers omit or generalise the media type; the body says."""
    if desc.media_type in oci.INDEX_TYPES | oci.MANIFEST_TYPES:
        return desc
    doc = manifests.parse_document(manifests.read_document(store, desc), desc.digest)
    media_type = manifests.document_media_type(doc, desc.media_type)
    return Descriptor(media_type, desc.digest, desc.size, desc.annotations, desc.platform)


def _check_complete(store: ContentStore, desc: Descriptor) -> None:
    if not exists(store, desc.digest):
        raise InvalidArgument(f"the archive is missing blob {desc.digest}")
    info = store.info(desc.digest)
    if info.size != desc.size:
        raise DataCorrupted(
            f"blob {desc.digest}: size {info.size}, but its descriptor says {desc.size}"
        )
    for child in manifests.children(store, desc):
        _check_complete(store, child)


def _oci_names(desc: Descriptor) -> list[str]:
    from ctl.reference import parse

    for key in (oci.ANNOTATION_IMAGE_NAME, oci.ANNOTATION_REF_NAME):
        value = desc.annotations.get(key, "")
        # ctl's saves of before named an unnamed image by its digest: that is no name.
        if value.startswith("sha256:"):
            continue
        # A bare tag ("latest") names no repository; it cannot be an image name alone.
        if value and ("/" in value or ":" in value or key == oci.ANNOTATION_IMAGE_NAME):
            try:
                return [str(parse(value))]
            except InvalidArgument:
                continue
    return []


def _config_digest(store: ContentStore, desc: Descriptor) -> str:
    if manifests.is_index(desc):
        return ""
    return manifests.Manifest.parse(desc, manifests.read_document(store, desc)).config.digest


def _docker_names(reader: _ArchiveReader) -> dict[str, list[str]]:
    """_docker_names maps config digests to the names manifest.json gives them."""
    from ctl.reference import parse

    if "manifest.json" not in reader.documents:
        return {}
    out: dict[str, list[str]] = {}
    for entry in _docker_manifest(reader):
        config = reader.resolve(str(entry["Config"]))
        names = out.setdefault(config.digest, [])
        for tag in entry.get("RepoTags") or []:
            names.append(str(parse(str(tag))))
    return out


def _docker_manifest(reader: _ArchiveReader) -> list[dict[str, Any]]:
    try:
        entries = json.loads(reader.document("manifest.json"))
    except ValueError as err:
        raise InvalidArgument(f"malformed manifest.json: {err}") from err
    if not isinstance(entries, list) or not all(
        isinstance(e, dict)
        and isinstance(e.get("Config"), str)
        and isinstance(e.get("Layers"), list)
        for e in entries
    ):
        raise InvalidArgument("malformed manifest.json: want a list of {Config, Layers, RepoTags}")
    return entries


def _import_docker(store: ContentStore, reader: _ArchiveReader) -> list[tuple[str, Descriptor]]:
    from ctl.content.helpers import write_blob
    from ctl.reference import parse

    out: list[tuple[str, Descriptor]] = []
    for entry in _docker_manifest(reader):
        config_bytes = reader.document(str(entry["Config"]))
        config_desc = Descriptor(
            oci.MEDIA_TYPE_DOCKER_CONFIG, oci.sha256_digest(config_bytes), len(config_bytes)
        )
        write_blob(store, f"load-{config_desc.digest}", [config_bytes], config_desc)
        config = manifests.parse_document(config_bytes, f"config {entry['Config']}")
        diff_ids = manifests.diff_ids(config)
        layers = [reader.resolve(str(path)) for path in entry["Layers"]]
        if len(layers) != len(diff_ids):
            raise InvalidArgument(
                f"image {entry['Config']}: {len(layers)} layers but {len(diff_ids)} diff_ids"
            )
        layer_descs = []
        for layer, diff_id in zip(layers, diff_ids, strict=True):
            media_type = _layer_media_type(store, layer)
            if media_type == oci.MEDIA_TYPE_DOCKER_LAYER and layer.digest != diff_id:
                raise DataCorrupted(
                    f"layer {layer.digest} does not match the config's diff_id {diff_id}"
                )
            layer_descs.append(Descriptor(media_type, layer.digest, layer.size))
        manifest = {
            "schemaVersion": 2,
            "mediaType": oci.MEDIA_TYPE_DOCKER_MANIFEST,
            "config": config_desc.to_json(),
            "layers": [d.to_json() for d in layer_descs],
        }
        body = json.dumps(manifest, separators=(",", ":")).encode()
        target = Descriptor(oci.MEDIA_TYPE_DOCKER_MANIFEST, oci.sha256_digest(body), len(body))
        write_blob(store, f"load-{target.digest}", [body], target)
        names = [str(parse(str(tag))) for tag in entry.get("RepoTags") or []]
        out.extend((name, target) for name in names or [target.digest])
    return out


def _layer_media_type(store: ContentStore, layer: Descriptor) -> str:
    with store.reader_at(layer) as reader:
        magic = reader.read(4)
    if magic[:2] == b"\x1f\x8b":
        return oci.MEDIA_TYPE_DOCKER_LAYER_GZIP
    if magic == b"\x28\xb5\x2f\xfd":
        return oci.MEDIA_TYPE_OCI_LAYER_ZSTD
    return oci.MEDIA_TYPE_DOCKER_LAYER
