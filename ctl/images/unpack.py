"""Unpacking an image's layers into committed snapshots keyed by chain ID.

Each layer is applied onto a fresh active snapshot whose parent is the
previous layer's chain, then committed under its own chain ID. A chain that
is already committed is skipped, so a second image on the same base unpacks
only its new layers; a concurrent unpack of the same chain that commits
first simply wins (AlreadyExists at commit is success), as in containerd.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ctl.errdefs import AlreadyExists, InvalidArgument, NotFound
from ctl.images import manifests

if TYPE_CHECKING:
    from ctl.content import Provider
    from ctl.snapshots import Snapshotter

LABEL_SNAPSHOT_REF = "containerd.io/snapshot.ref"
LABEL_UNCOMPRESSED = "containerd.io/uncompressed"


def unpack(provider: Provider, snapshotter: Snapshotter, manifest: manifests.Manifest) -> str:
    """unpack makes sure every layer of ``manifest`` is a committed snapshot.

    Returns the chain ID of the top layer: the parent for a container's
    snapshot ("" for an image without layers).
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
        try:
            target = snapshotter.apply_target(key)
            with provider.reader_at(layer) as stream:
                apply_layer(
                    stream,
                    target.path,
                    whiteouts=target.whiteout_style,
                    media_type=layer.media_type,
                    expected_diff_id=diff_id,
                )
            try:
                snapshotter.commit(chain, key)
            except AlreadyExists:
                snapshotter.remove(key)
        except BaseException:
            snapshotter.remove(key)
            raise
        parent = chain
    return parent


def _committed(snapshotter: Snapshotter, name: str) -> bool:
    try:
        snapshotter.stat(name)
    except NotFound:
        return False
    return True
