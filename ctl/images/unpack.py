"""Unpacking an image's layers into committed snapshots keyed by chain ID.

Each layer is applied onto a fresh active snapshot whose parent is the
previous layer's chain, then committed under its own chain ID. A chain that
is already committed is skipped, so a second image on the same base unpacks
only its new layers; a concurrent unpack of the same chain that commits
first simply wins (AlreadyExists at commit is success), as in containerd.
"""

from __future__ import annotations

import contextlib
import functools
import io
import os
from typing import TYPE_CHECKING, BinaryIO

from ctl.errdefs import AlreadyExists, CtlError, InvalidArgument, NotFound, WriteFailed
from ctl.images import manifests

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from _typeshed import WriteableBuffer

    from ctl.content import Provider
    from ctl.progress import Progress
    from ctl.snapshots import Snapshotter

LABEL_SNAPSHOT_REF = "containerd.io/snapshot.ref"


def unpack(
    provider: Provider,
    snapshotter: Snapshotter,
    manifest: manifests.Manifest,
    progress: Progress | None = None,
) -> str:
    """unpack makes sure every layer of ``manifest`` is a committed snapshot.

    Returns the chain ID of the top layer: the parent for a container's
    snapshot ("" for an image without layers). ``progress`` hears of each
    layer applied, by the bytes of the blob read so far.
    """
    config = manifests.read_config(provider, manifest)
    diff_ids = manifests.diff_ids(config)
    if len(diff_ids) != len(manifest.layers):
        raise InvalidArgument(
            f"image {manifest.descriptor.digest}: {len(manifest.layers)} layers "
            f"but {len(diff_ids)} diff_ids in its config"
        )
    parent = ""
    for layer, diff_id, chain in zip(
        manifest.layers, diff_ids, manifests.chain_ids(diff_ids), strict=True
    ):
        if _committed(snapshotter, chain):
            parent = chain
            continue
        key = f"extract-{os.getpid()}-{os.urandom(4).hex()} {chain}"
        from ctl.archive.apply import apply_layer

        snapshotter.prepare(key, parent, labels={LABEL_SNAPSHOT_REF: chain})
        written: Path | None = None  # where the layer's files go, once known
        try:
            target = snapshotter.apply_target(key)
            written = target.path
            with provider.reader_at(layer) as blob:
                stream: BinaryIO = blob
                if progress is not None:
                    progress.started(layer, "unpack", 0)
                    stream = _counted(blob, functools.partial(progress.advanced, layer))
                try:
                    apply_layer(
                        stream,
                        target.path,
                        whiteouts=target.whiteout_style,
                        media_type=layer.media_type,
                        expected_diff_id=diff_id,
                    )
                except WriteFailed as err:
                    raise WriteFailed(f"{err.what} of layer {layer.digest}", err) from err
            try:
                snapshotter.commit(chain, key)
            except AlreadyExists:
                snapshotter.remove(key)
        except BaseException:
            _remove_unfinished(snapshotter, key, written)
            if progress is not None:
                progress.finished(layer, "failed")
            raise
        if progress is not None:
            progress.finished(layer, "unpacked")
        parent = chain
    return parent


def _remove_unfinished(snapshotter: Snapshotter, key: str, written: Path | None) -> None:
    """_remove_unfinished removes the active snapshot of a layer that was not committed.

    The layer's files go first: on a full disk, the metadata write of
    ``remove`` needs the room they took. Should ``remove`` fail all the
    same, the error that stopped the unpack is the one to report, and the
    snapshot stays, an ``extract-*`` key that ``snapshots rm`` removes.
    """
    if written is not None:
        _empty(written)
    with contextlib.suppress(CtlError, OSError):
        snapshotter.remove(key)


def _empty(directory: Path) -> None:
    import shutil

    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


class _Counter(io.RawIOBase):
    """_Counter passes reads through and reports the size of each."""

    def __init__(self, stream: BinaryIO, advanced: Callable[[int], None]) -> None:
        self._stream = stream
        self._advanced = advanced

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self._stream.read(len(view))
        view[: len(data)] = data
        self._advanced(len(data))
        return len(data)


def _counted(stream: BinaryIO, advanced: Callable[[int], None]) -> BinaryIO:
    return io.BufferedReader(_Counter(stream, advanced))


def _committed(snapshotter: Snapshotter, name: str) -> bool:
    try:
        snapshotter.stat(name)
    except NotFound:
        return False
    return True
