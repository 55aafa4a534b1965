"""Small OCI images for tests, built from the host's static busybox.

The pieces, smallest first:

- ``LayerBuilder`` collects tar members (files, dirs, links, devices, whiteouts,
  and raw members with any name at all, for the malicious-layer tests) and
  ``build``\\s a ``Layer``: the compressed blob with its ``digest`` and ``size``,
  and the ``diff_id`` of the uncompressed tar.
- ``ImageBuilder`` turns layers plus config fields into an ``Image`` (config and
  manifest blobs, OCI or docker schema2 media types); ``make_index`` joins
  images into a multi-platform ``Index``.
- ``OCILayout`` writes either to an OCI image layout directory, and tars it.
- ``push_layout`` uploads a layout to a registry with plain distribution-API
  requests. It is our own so that skopeo stays an independent witness in the
  interop tests.

A worked example, the way the ``images`` fixture makes its multi-arch image::

    base = busybox_rootfs_layer()
    amd64 = ImageBuilder([base, platform_layer("linux/amd64")], platform="linux/amd64")
    arm64 = ImageBuilder([base, platform_layer("linux/arm64")], platform="linux/arm64")
    index = make_index([amd64.build(), arm64.build()])
    layout = OCILayout.write(tmp_path / "layout", index, ref_name="latest")
    push_layout(registry.url, layout, "test/multi", "latest")

Everything is deterministic (fixed mtimes, gzip headers without time or name),
so building the same spec twice gives the same digests.
"""

from __future__ import annotations

import contextlib
import copy
import gzip
import hashlib
import io
import json
import platform as _platform
import random
import shutil
import subprocess
import tarfile
import tempfile
import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal
from urllib.parse import urljoin

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from tests.helpers import RegistryServer

# Media types, spelled out here rather than imported from ctl so that a wrong
# constant in ctl cannot hide behind the same wrong constant in its tests.
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"

Compression = Literal["none", "gzip", "zstd"]
_LAYER_TYPES: dict[Compression, tuple[str, str | None]] = {
    # compression: (OCI media type, docker media type)
    "none": (OCI_LAYER, DOCKER_LAYER),
    "gzip": (OCI_LAYER_GZIP, DOCKER_LAYER_GZIP),
    "zstd": (OCI_LAYER_ZSTD, None),
}

BUSYBOX = Path("/bin/busybox")
DEFAULT_MTIME = 1_700_000_000
DEFAULT_CREATED = "2023-11-14T22:13:20Z"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PLATFORM_MARKER = "etc/ctl-test-platform"
"""PLATFORM_MARKER is the file whose content names the platform an image was built for."""

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
user:x:1000:1000:user:/home/user:/bin/sh
"""
GROUP = """\
root:x:0:
nobody:x:65534:
user:x:1000:
"""


class ZstdUnavailable(RuntimeError):
    """ZstdUnavailable means a zstd layer was asked for but the zstd CLI is missing."""


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


# --- platforms -----------------------------------------------------------------

_MACHINE_TO_PLATFORM = {
    "x86_64": "linux/amd64",
    "amd64": "linux/amd64",
    "aarch64": "linux/arm64",
    "arm64": "linux/arm64",
    "armv7l": "linux/arm/v7",
    "armv6l": "linux/arm/v6",
    "i686": "linux/386",
    "ppc64le": "linux/ppc64le",
    "s390x": "linux/s390x",
    "riscv64": "linux/riscv64",
}


def host_platform() -> str:
    """host_platform is this machine's platform as ``os/arch[/variant]``."""
    machine = _platform.machine()
    try:
        return _MACHINE_TO_PLATFORM[machine]
    except KeyError:
        raise RuntimeError(f"no OCI platform known for machine {machine!r}") from None


def other_platform() -> str:
    """other_platform is a platform that is not the host's: arm64, or amd64 on arm64 hosts."""
    return "linux/amd64" if host_platform() == "linux/arm64" else "linux/arm64"


def platform_json(platform: str) -> dict[str, str]:
    """platform_json splits ``os/arch[/variant]`` into an OCI platform object."""
    os_name, arch, *rest = platform.split("/")
    out = {"architecture": arch, "os": os_name}
    if rest:
        out["variant"] = rest[0]
    return out


# --- blobs and layers ------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Blob:
    """Blob is content with its descriptor fields, held in memory or in a file."""

    media_type: str
    digest: str
    size: int
    data: bytes | None = field(default=None, repr=False)
    path: Path | None = None

    @classmethod
    def of_json(cls, obj: Any, media_type: str) -> Blob:
        data = json.dumps(obj, separators=(",", ":")).encode()
        return cls(media_type=media_type, digest=sha256_digest(data), size=len(data), data=data)

    def open(self) -> IO[bytes]:
        if self.data is not None:
            return io.BytesIO(self.data)
        assert self.path is not None
        return self.path.open("rb")

    def read(self) -> bytes:
        with self.open() as f:
            return f.read()

    def json(self) -> Any:
        return json.loads(self.read())

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        """descriptor is the OCI descriptor of the blob, with ``extra`` fields added."""
        return {"mediaType": self.media_type, "digest": self.digest, "size": self.size, **extra}


@dataclass(frozen=True, kw_only=True)
class Layer(Blob):
    """Layer is a (possibly compressed) layer tar; ``media_type`` is the OCI one."""

    diff_id: str
    compression: Compression

    def media_type_for(self, docker: bool) -> str:
        oci, docker_type = _LAYER_TYPES[self.compression]
        if not docker:
            return oci
        if docker_type is None:
            raise ValueError(f"docker schema2 has no media type for {self.compression} layers")
        return docker_type

    def uncompressed(self) -> bytes:
        data = self.read()
        if self.compression == "gzip":
            return gzip.decompress(data)
        if self.compression == "zstd":
            return subprocess.run(
                [_zstd(), "-d", "-q", "-c"], input=data, capture_output=True, check=True
            ).stdout
        return data

    def open_tar(self) -> tarfile.TarFile:
        """open_tar opens the uncompressed layer for reading (listing, extractfile)."""
        return tarfile.open(fileobj=io.BytesIO(self.uncompressed()), mode="r:")


class _HashingWriter:
    """_HashingWriter passes writes through to ``sink`` and hashes and counts them."""

    def __init__(self, sink: IO[bytes]) -> None:
        self.sink = sink
        self.size = 0
        self._sha = hashlib.sha256()

    def write(self, data: bytes) -> int:
        self._sha.update(data)
        self.size += len(data)
        self.sink.write(data)
        return len(data)

    def flush(self) -> None:
        self.sink.flush()

    @property
    def digest(self) -> str:
        return "sha256:" + self._sha.hexdigest()


def _zstd() -> str:
    path = shutil.which("zstd")
    if path is None:
        raise ZstdUnavailable("zstd layers need the zstd CLI: apt-get install zstd")
    return path


@contextlib.contextmanager
def _compressor(compression: Compression, sink: IO[bytes], gzip_level: int) -> Iterator[Any]:
    """_compressor yields a writer whose input reaches ``sink`` compressed."""
    if compression == "none":
        yield sink
    elif compression == "gzip":
        # mtime=0 and no file name keep the gzip header, and so the digest, reproducible.
        with gzip.GzipFile(
            filename="", mode="wb", fileobj=sink, compresslevel=gzip_level, mtime=0
        ) as gz:
            yield gz
    elif compression == "zstd":
        proc = subprocess.Popen(
            [_zstd(), "-q", "-c", "-3"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert proc.stdin is not None and proc.stdout is not None
        stdout = proc.stdout
        # A thread drains zstd's output while we feed it, so neither pipe fills up.
        pump = threading.Thread(target=shutil.copyfileobj, args=(stdout, sink))
        pump.start()
        try:
            yield proc.stdin
        finally:
            proc.stdin.close()
            pump.join()
            code = proc.wait()
        if code != 0:
            raise RuntimeError(f"zstd exited with status {code}")
    else:
        raise ValueError(f"unknown compression {compression!r}")


class LayerBuilder:
    """LayerBuilder collects tar members in order and builds a ``Layer`` from them.

    Names are written verbatim: conventional layers use relative names such as
    ``etc/passwd``, and nothing stops ``../x``, ``/etc/x`` or a file written
    through an earlier symlink, which is what the extraction-safety tests need.
    Parent directories are not added implicitly. Every method returns the
    builder, so calls chain.
    """

    def __init__(self, *, mtime: int = DEFAULT_MTIME) -> None:
        self.mtime = mtime
        self._entries: list[tuple[tarfile.TarInfo, bytes | Path | IO[bytes] | None]] = []

    def _info(
        self, name: str, kind: bytes, mode: int, uid: int, gid: int, mtime: int | None
    ) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.uid = uid
        info.gid = gid
        info.mtime = self.mtime if mtime is None else mtime
        return info

    def file(
        self,
        name: str,
        content: bytes | str | Path = b"",
        *,
        mode: int = 0o644,
        uid: int = 0,
        gid: int = 0,
        mtime: int | None = None,
    ) -> LayerBuilder:
        """file adds a regular file; a ``Path`` content is read from the host at build time."""
        info = self._info(name, tarfile.REGTYPE, mode, uid, gid, mtime)
        if isinstance(content, Path):
            info.size = content.stat().st_size
            self._entries.append((info, content))
            return self
        data = content.encode() if isinstance(content, str) else content
        info.size = len(data)
        self._entries.append((info, data))
        return self

    def dir(
        self, name: str, *, mode: int = 0o755, uid: int = 0, gid: int = 0, mtime: int | None = None
    ) -> LayerBuilder:
        self._entries.append((self._info(name, tarfile.DIRTYPE, mode, uid, gid, mtime), None))
        return self

    def symlink(self, name: str, target: str, *, uid: int = 0, gid: int = 0) -> LayerBuilder:
        info = self._info(name, tarfile.SYMTYPE, 0o777, uid, gid, None)
        info.linkname = target
        self._entries.append((info, None))
        return self

    def hardlink(self, name: str, target: str) -> LayerBuilder:
        """hardlink adds ``name`` as a hard link to the member named ``target``."""
        info = self._info(name, tarfile.LNKTYPE, 0o644, 0, 0, None)
        info.linkname = target
        self._entries.append((info, None))
        return self

    def chardev(self, name: str, major: int, minor: int, *, mode: int = 0o666) -> LayerBuilder:
        info = self._info(name, tarfile.CHRTYPE, mode, 0, 0, None)
        info.devmajor = major
        info.devminor = minor
        self._entries.append((info, None))
        return self

    def fifo(self, name: str, *, mode: int = 0o644) -> LayerBuilder:
        self._entries.append((self._info(name, tarfile.FIFOTYPE, mode, 0, 0, None), None))
        return self

    def whiteout(self, path: str) -> LayerBuilder:
        """whiteout hides ``path`` of the lower layers (an empty ``.wh.NAME`` file)."""
        parent, _, base = path.rstrip("/").rpartition("/")
        return self.file(f"{parent}/.wh.{base}" if parent else f".wh.{base}")

    def opaque(self, directory: str) -> LayerBuilder:
        """opaque hides everything the lower layers have under ``directory``."""
        return self.file(f"{directory.rstrip('/')}/.wh..wh..opq")

    def raw(self, info: tarfile.TarInfo, data: bytes | IO[bytes] | None = None) -> LayerBuilder:
        """raw adds ``info`` exactly as given; ``info.size`` bytes are read from ``data``."""
        self._entries.append((info, data))
        return self

    def build(
        self, compression: Compression = "gzip", *, dest: Path | None = None, gzip_level: int = 6
    ) -> Layer:
        """build writes the layer to ``dest``, or keeps it in memory when ``dest`` is None.

        The tar streams through the compressor into the destination, hashed on
        both sides, so a large layer is never held in memory.
        """
        buffer = io.BytesIO()
        out_cm = dest.open("wb") if dest is not None else contextlib.nullcontext(buffer)
        with out_cm as out:
            compressed = _HashingWriter(out)
            with _compressor(compression, compressed, gzip_level) as comp:
                plain = _HashingWriter(comp)
                with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                    for info, data in self._entries:
                        with _reader(data) as reader:
                            tar.addfile(copy.copy(info), reader)
        oci_type, _ = _LAYER_TYPES[compression]
        return Layer(
            media_type=oci_type,
            digest=compressed.digest,
            size=compressed.size,
            data=None if dest is not None else buffer.getvalue(),
            path=dest,
            diff_id=plain.digest,
            compression=compression,
        )


@contextlib.contextmanager
def _reader(data: bytes | Path | IO[bytes] | None) -> Iterator[IO[bytes] | None]:
    if isinstance(data, Path):
        with data.open("rb") as f:
            yield f
    elif isinstance(data, bytes):
        yield io.BytesIO(data)
    else:
        yield data


def _is_static_elf(path: Path) -> bool:
    """_is_static_elf tells whether an ELF file has no PT_INTERP (dynamic loader) header."""
    with path.open("rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF":
            return False
        order: Literal["little", "big"] = "little" if head[5] == 1 else "big"
        wide = head[4] == 2
        phoff = int.from_bytes(head[0x20:0x28] if wide else head[0x1C:0x20], order)
        entsize = int.from_bytes(head[0x36:0x38] if wide else head[0x2A:0x2C], order)
        count = int.from_bytes(head[0x38:0x3A] if wide else head[0x2C:0x2E], order)
        for i in range(count):
            f.seek(phoff + i * entsize)
            if int.from_bytes(f.read(4), order) == 3:  # PT_INTERP
                return False
    return True


def busybox_rootfs_layer(compression: Compression = "gzip", busybox: Path = BUSYBOX) -> Layer:
    """busybox_rootfs_layer is a minimal root filesystem around the host's static busybox.

    Every applet of ``busybox --list`` is a symlink ``/bin/NAME -> busybox``;
    ``/etc/passwd`` has root, nobody and ``user`` (uid 1000, home /home/user).
    """
    if not busybox.exists() or not _is_static_elf(busybox):
        raise RuntimeError(
            f"{busybox} is missing or not statically linked: apt-get install busybox-static"
        )
    listing = subprocess.run(
        [str(busybox), "--list"], capture_output=True, text=True, check=True
    ).stdout
    builder = LayerBuilder()
    for name in ("bin", "dev", "etc", "home", "proc", "sys", "usr", "usr/bin", "var"):
        builder.dir(name)
    builder.dir("root", mode=0o700)
    builder.dir("tmp", mode=0o1777)
    builder.dir("home/user", mode=0o755, uid=1000, gid=1000)
    builder.file("bin/busybox", busybox, mode=0o755)
    for applet in sorted(set(listing.split()) - {"busybox"}):
        builder.symlink(f"bin/{applet}", "busybox")
    # For `#!/usr/bin/env` scripts.
    builder.symlink("usr/bin/env", "../../bin/busybox")
    builder.file("etc/passwd", PASSWD)
    builder.file("etc/group", GROUP)
    return builder.build(compression)


def platform_layer(platform: str, compression: Compression = "gzip") -> Layer:
    """platform_layer holds only ``PLATFORM_MARKER``, whose content is ``platform``."""
    return LayerBuilder().file(PLATFORM_MARKER, platform + "\n").build(compression)


FOREIGN_PROGRAM = "bin/foreign"
"""FOREIGN_PROGRAM is where ``foreign_program_layer`` puts its executable."""

_ELF_MACHINES = {"386": 3, "amd64": 62, "arm": 40, "arm64": 183, "riscv64": 243, "s390x": 22}


def elf_header(platform: str) -> bytes:
    """elf_header is a bare 64-bit ELF executable header for ``platform``'s machine.

    A kernel of any other machine refuses to exec it (ENOEXEC: runc's "exec
    format error"), unless a binfmt_misc handler (qemu-user) takes it.
    """
    machine = _ELF_MACHINES[platform.split("/")[1]]
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)  # 64-bit, little-endian, version 1
    # e_type EXEC, e_machine, e_version, e_entry, e_phoff, e_shoff, e_flags,
    # e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx.
    fields = [(2, 2), (machine, 2), (1, 4), (0x400000, 8), (64, 8), (0, 8), (0, 4)]
    fields += [(64, 2), (56, 2), (0, 2), (64, 2), (0, 2), (0, 2)]
    return ident + b"".join(value.to_bytes(size, "little") for value, size in fields)


def foreign_program_layer(platform: str, compression: Compression = "gzip") -> Layer:
    """foreign_program_layer holds ``FOREIGN_PROGRAM``, an executable for ``platform`` only."""
    return LayerBuilder().file(FOREIGN_PROGRAM, elf_header(platform), mode=0o755).build(compression)


class _RandomReader:
    """_RandomReader reads ``size`` seeded pseudo-random (incompressible) bytes."""

    def __init__(self, seed: int, size: int) -> None:
        self._rng = random.Random(seed)
        self._left = size

    def read(self, n: int = -1) -> bytes:
        n = self._left if n < 0 else min(n, self._left)
        self._left -= n
        return self._rng.randbytes(n)


def big_layer(
    dest: Path, size_mb: int = 100, *, seed: int = 0, compression: Compression = "gzip"
) -> Layer:
    """big_layer writes a layer holding ``random.bin`` of ``size_mb`` MiB of seeded noise.

    It streams into ``dest``; gzip runs at level 1 because noise does not
    compress anyway.
    """
    size = size_mb << 20
    info = tarfile.TarInfo("random.bin")
    info.size = size
    info.mode = 0o644
    info.mtime = DEFAULT_MTIME
    builder = LayerBuilder().raw(info, _RandomReader(seed, size))
    return builder.build(compression, dest=dest, gzip_level=1)


# --- images and indexes -------------------------------------------------------


@dataclass(frozen=True)
class Image:
    """Image is one platform's manifest, config and layers."""

    manifest: Blob
    config: Blob
    layers: tuple[Layer, ...]
    platform: str

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def diff_ids(self) -> list[str]:
        return [layer.diff_id for layer in self.layers]

    def descriptor(self) -> dict[str, Any]:
        """descriptor is the manifest's descriptor with its platform, as an index lists it."""
        return self.manifest.descriptor(platform=platform_json(self.platform))

    def blobs(self) -> list[Blob]:
        return [*self.layers, self.config, self.manifest]


@dataclass(frozen=True)
class Index:
    """Index is a multi-platform image index (or docker manifest list) and its images."""

    index: Blob
    images: tuple[Image, ...]

    @property
    def digest(self) -> str:
        return self.index.digest

    def image_for(self, platform: str) -> Image:
        for image in self.images:
            if image.platform == platform:
                return image
        raise KeyError(f"no image for {platform} in index {self.digest}")

    def blobs(self) -> list[Blob]:
        return [blob for image in self.images for blob in image.blobs()] + [self.index]


@dataclass
class ImageBuilder:
    """ImageBuilder holds the fields of one image; ``build`` makes its config and manifest.

    ``extra_config`` is merged into the config's ``config`` object (for
    ExposedPorts, StopSignal, Volumes, ...); empty fields are left out, as
    docker leaves them out.
    """

    layers: Sequence[Layer]
    platform: str = field(default_factory=host_platform)
    env: list[str] = field(default_factory=lambda: [DEFAULT_PATH])
    cmd: list[str] | None = field(default_factory=lambda: ["sh"])
    entrypoint: list[str] | None = None
    working_dir: str = "/"
    user: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    extra_config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] | None = None
    created: str = DEFAULT_CREATED
    annotations: dict[str, str] = field(default_factory=dict)
    docker: bool = False

    def config_json(self) -> dict[str, Any]:
        config: dict[str, Any] = {"Env": list(self.env)}
        if self.entrypoint is not None:
            config["Entrypoint"] = list(self.entrypoint)
        if self.cmd is not None:
            config["Cmd"] = list(self.cmd)
        if self.working_dir:
            config["WorkingDir"] = self.working_dir
        if self.user:
            config["User"] = self.user
        if self.labels:
            config["Labels"] = dict(self.labels)
        config.update(self.extra_config)
        history = self.history
        if history is None:
            history = [
                {"created": self.created, "created_by": f"ctl tests: layer {i}"}
                for i in range(len(self.layers))
            ]
        return {
            "created": self.created,
            **platform_json(self.platform),
            "config": config,
            "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in self.layers]},
            "history": history,
        }

    def build(self) -> Image:
        config = Blob.of_json(self.config_json(), DOCKER_CONFIG if self.docker else OCI_CONFIG)
        manifest: dict[str, Any] = {
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST if self.docker else OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": [
                layer.descriptor(mediaType=layer.media_type_for(self.docker))
                for layer in self.layers
            ],
        }
        if self.annotations:
            manifest["annotations"] = dict(self.annotations)
        return Image(
            manifest=Blob.of_json(manifest, manifest["mediaType"]),
            config=config,
            layers=tuple(self.layers),
            platform=self.platform,
        )


def make_index(
    images: Sequence[Image], *, docker: bool = False, annotations: dict[str, str] | None = None
) -> Index:
    """make_index lists ``images`` with their platforms in an OCI index or docker list."""
    want = DOCKER_MANIFEST if docker else OCI_MANIFEST
    for image in images:
        if image.manifest.media_type != want:
            raise ValueError(f"a {'docker list' if docker else 'OCI index'} needs {want} images")
    media_type = DOCKER_LIST if docker else OCI_INDEX
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [image.descriptor() for image in images],
    }
    if annotations:
        doc["annotations"] = dict(annotations)
    return Index(index=Blob.of_json(doc, media_type), images=tuple(images))


# --- OCI image layout ----------------------------------------------------------


class OCILayout:
    """OCILayout is an OCI image layout directory: oci-layout, index.json, blobs/sha256/."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def write(
        cls, path: Path, target: Image | Index, *, ref_name: str | None = "latest"
    ) -> OCILayout:
        """write creates the layout at ``path`` if needed and adds ``target`` to it."""
        return cls(path).add(target, ref_name=ref_name)

    def add(self, target: Image | Index, *, ref_name: str | None = "latest") -> OCILayout:
        """add stores ``target``'s blobs and lists it in index.json under ``ref_name``.

        An entry with the same ref name is replaced, as ``skopeo copy`` does.
        """
        blobs_dir = self.path / "blobs" / "sha256"
        blobs_dir.mkdir(parents=True, exist_ok=True)
        (self.path / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
        for blob in target.blobs():
            dest = self.blob_path(blob.digest)
            if not dest.exists():
                with blob.open() as src, dest.open("wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
        top = target.index if isinstance(target, Index) else target.manifest
        entry = top.descriptor()
        if ref_name is not None:
            entry["annotations"] = {ANNOTATION_REF_NAME: ref_name}
        manifests = [
            m
            for m in self.index_json().get("manifests", [])
            if ref_name is None or m.get("annotations", {}).get(ANNOTATION_REF_NAME) != ref_name
        ]
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [*manifests, entry]}
        (self.path / "index.json").write_text(json.dumps(index, indent=2))
        return self

    def index_json(self) -> dict[str, Any]:
        path = self.path / "index.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def top(self, ref_name: str | None = None) -> dict[str, Any]:
        """top is the index.json descriptor named ``ref_name``, or the only one there is."""
        manifests: list[dict[str, Any]] = self.index_json().get("manifests", [])
        if ref_name is None:
            if len(manifests) != 1:
                raise KeyError(f"{self.path} holds {len(manifests)} images: name one")
            return manifests[0]
        for desc in manifests:
            if desc.get("annotations", {}).get(ANNOTATION_REF_NAME) == ref_name:
                return desc
        raise KeyError(f"no image named {ref_name!r} in {self.path}")

    def blob_path(self, digest: str) -> Path:
        algorithm, _, hexdigest = digest.partition(":")
        return self.path / "blobs" / algorithm / hexdigest

    def read_blob(self, digest: str) -> bytes:
        return self.blob_path(digest).read_bytes()

    def to_tar(self, dest: Path) -> Path:
        """to_tar writes the layout as an OCI archive (the tar ``skopeo oci-archive:`` reads)."""
        with tarfile.open(dest, "w", format=tarfile.PAX_FORMAT) as tar:
            for path in sorted(self.path.rglob("*")):
                tar.add(path, arcname=str(path.relative_to(self.path)), recursive=False)
        return dest


# --- pushing ------------------------------------------------------------------


class PushError(RuntimeError):
    """PushError means the registry refused part of a push."""


def push_layout(
    base_url: str, layout: OCILayout, repo: str, tag: str, *, ref_name: str | None = None
) -> str:
    """push_layout uploads image ``ref_name`` of ``layout`` as ``repo:tag``; returns its digest.

    Blobs go up monolithically (POST an upload, PUT it with ``?digest=``),
    skipped when HEAD finds them; the children of an index go up by digest
    before the index itself goes up by tag.
    """
    import requests

    top = layout.top(ref_name)
    with requests.Session() as session:
        _Pusher(session, base_url.rstrip("/"), layout, repo).manifest(top, tag)
    return str(top["digest"])


class _Pusher:
    def __init__(self, session: Any, base: str, layout: OCILayout, repo: str) -> None:
        self.session = session
        self.base = f"{base}/v2/{repo}"
        self.layout = layout

    def manifest(self, desc: dict[str, Any], reference: str) -> None:
        raw = self.layout.read_blob(desc["digest"])
        doc = json.loads(raw)
        media_type = doc.get("mediaType") or desc["mediaType"]
        if media_type in INDEX_TYPES:
            for child in doc["manifests"]:
                self.manifest(child, child["digest"])
        else:
            for blob in [doc["config"], *doc["layers"]]:
                self.blob(blob["digest"], blob["size"])
        response = self.session.put(
            f"{self.base}/manifests/{reference}", data=raw, headers={"Content-Type": media_type}
        )
        _expect(response, 201)
        got = response.headers.get("Docker-Content-Digest")
        if got and got != desc["digest"]:
            raise PushError(f"registry stored manifest {desc['digest']} as {got}")

    def blob(self, digest: str, size: int) -> None:
        if self.session.head(f"{self.base}/blobs/{digest}").status_code == 200:
            return
        response = self.session.post(f"{self.base}/blobs/uploads/")
        _expect(response, 202)
        location = urljoin(self.base, response.headers["Location"])
        with self.layout.blob_path(digest).open("rb") as body:
            response = self.session.put(
                location,
                params={"digest": digest},
                data=body,
                headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            )
        _expect(response, 201)


def _expect(response: Any, status: int) -> None:
    if response.status_code != status:
        raise PushError(
            f"{response.request.method} {response.url}: want HTTP {status}, "
            f"got {response.status_code}: {response.text[:500]}"
        )


# --- the session's images ----------------------------------------------------------


class ImageFactory:
    """ImageFactory builds images over the cached busybox rootfs, lays them out, pushes them."""

    def __init__(self, workdir: Path, registry: RegistryServer | None = None) -> None:
        self.workdir = workdir
        self.registry = registry

    @cached_property
    def busybox_layer(self) -> Layer:
        return busybox_rootfs_layer()

    def image(self, *layers: Layer, **fields: Any) -> Image:
        """image is busybox plus ``layers``; ``fields`` are ImageBuilder's (cmd, user, ...)."""
        return ImageBuilder([self.busybox_layer, *layers], **fields).build()

    def layout(self, target: Image | Index, *, ref_name: str | None = "latest") -> OCILayout:
        """layout writes ``target`` into a new layout directory under the work dir."""
        path = Path(tempfile.mkdtemp(prefix="layout-", dir=self.workdir))
        return OCILayout.write(path, target, ref_name=ref_name)

    def push(self, target: Image | Index, repo: str, tag: str = "latest") -> str:
        """push pushes ``target`` to the registry and returns its reference ``host/repo:tag``."""
        if self.registry is None:
            raise RuntimeError("this ImageFactory has no registry")
        return self.registry.push(self.layout(target), repo, tag)


@dataclass(frozen=True)
class CanonicalImages:
    """CanonicalImages are the images every session pushes once, with what tests assert on.

    ``busybox`` is single-platform (the host's); ``multi`` is an index of the
    host platform and ``other_platform``, whose images differ in the
    ``PLATFORM_MARKER`` layer.
    """

    factory: ImageFactory
    busybox: Image
    busybox_ref: str
    multi: Index
    multi_ref: str
    host_platform: str
    other_platform: str

    @property
    def multi_host(self) -> Image:
        return self.multi.image_for(self.host_platform)

    @property
    def multi_other(self) -> Image:
        return self.multi.image_for(self.other_platform)


def push_canonical(factory: ImageFactory) -> CanonicalImages:
    """push_canonical builds and pushes ``test/busybox:latest`` and ``test/multi:latest``."""
    host, other = host_platform(), other_platform()
    busybox = factory.image()
    multi = make_index(
        [factory.image(platform_layer(platform), platform=platform) for platform in (host, other)]
    )
    return CanonicalImages(
        factory=factory,
        busybox=busybox,
        busybox_ref=factory.push(busybox, "test/busybox"),
        multi=multi,
        multi_ref=factory.push(multi, "test/multi"),
        host_platform=host,
        other_platform=other,
    )
