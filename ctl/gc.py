"""Garbage collection: remove what nothing references, as containerd's mark and sweep.

Roots are the image records and the container records of every namespace.
An image keeps its target and everything reachable from it (the present
part of an index, manifests, configs, layers) and the snapshot of each of
its layer chains; a container keeps its own snapshot; a kept snapshot keeps
its parents. Everything else goes: unreferenced blobs, snapshots left by
removed images or a crashed unpack, ingests older than a day, and the task
directory (with its mounted rootfs) of a create killed before its record.

A pull, load or unpack holds the GC lock shared for its whole run (the
client's ``lease``); collection takes it exclusively, so it never sweeps
content whose image record is not written yet.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ctl import fsutil
from ctl.errdefs import CtlError, NotFound
from ctl.images import manifests
from ctl.oci import MANIFEST_TYPES

if TYPE_CHECKING:
    import os

    from ctl.client import Client
    from ctl.content import ContentStore
    from ctl.oci import Descriptor
    from ctl.snapshots import Snapshotter

STALE_INGEST_AGE = 24 * 3600.0


@dataclass
class Collected:
    """Collected is what a collection removed."""

    images: list[str] = field(default_factory=list)
    blobs: list[str] = field(default_factory=list)
    snapshots: list[str] = field(default_factory=list)
    ingests: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    reclaimed: int = 0


def collect(client: Client, *, unused_images: bool = False, timeout: float = 600.0) -> Collected:
    """collect sweeps the whole root; with ``unused_images`` it first removes the image
    records no container of their namespace uses."""
    from ctl.client import Client as ClientType
    from ctl.snapshots import NAMES

    paths = client.paths
    result = Collected()
    with fsutil.FileLock(paths.locks / "gc.lock", timeout=timeout, what="a pull in progress"):
        live_blobs: set[str] = set()
        live_snapshots: set[str] = set()
        for namespace in client.list_namespaces():
            ns = ClientType(paths.root, namespace, debug=client.debug)
            containers = list(ns.containers.list())
            used = {c.image for c in containers}
            for image in list(ns.images.list()):
                if unused_images and image.name not in used:
                    ns.images.delete(image.name)
                    result.images.append(f"{namespace}/{image.name}")
                    continue
                _mark_image(ns.content, image.target, namespace, live_blobs, live_snapshots)
            live_snapshots.update(f"{namespace}/{c.snapshot_key}" for c in containers)
            for container_id in ns.tasks.leftovers({c.id for c in containers}):
                # A create killed before its record: nothing runs there (a task
                # starts only once the record is written), and no create is
                # half-way while the GC lock is held.
                ns.tasks.task_dir(container_id).remove()
                result.leftovers.append(f"{namespace}/{container_id}")
        _sweep_blobs(client.content, live_blobs, result)
        for name in NAMES:
            root = paths.snapshotter(name)
            if root.is_dir():
                _sweep_snapshots(name, root, live_snapshots, result)
    return result


def _mark_image(
    store: ContentStore,
    desc: Descriptor,
    namespace: str,
    blobs: set[str],
    snapshots: set[str],
) -> None:
    if desc.digest in blobs:
        return
    try:
        store.info(desc.digest)
    except NotFound:
        return  # a platform that was never pulled
    blobs.add(desc.digest)
    try:
        children = manifests.children(store, desc)
    except CtlError:
        return
    for child in children:
        _mark_image(store, child, namespace, blobs, snapshots)
    if desc.media_type in MANIFEST_TYPES:
        with contextlib.suppress(CtlError):
            manifest = manifests.Manifest.parse(desc, manifests.read_document(store, desc))
            config = manifests.read_config(store, manifest)
            chains = manifests.chain_ids(manifests.diff_ids(config))
            snapshots.update(f"{namespace}/{chain}" for chain in chains)


def _sweep_blobs(store: ContentStore, live: set[str], result: Collected) -> None:
    for info in list(store.walk()):
        if info.digest in live:
            continue
        with contextlib.suppress(NotFound):
            store.delete(info.digest)
            result.blobs.append(info.digest)
            result.reclaimed += info.size
    now = time.time()
    for status in store.list_statuses():
        if now - status.updated_at > STALE_INGEST_AGE:
            with contextlib.suppress(CtlError):
                store.abort(status.ref)
                result.ingests.append(status.ref)
                result.reclaimed += status.offset


def _sweep_snapshots(name: str, root: os.PathLike[str], live: set[str], result: Collected) -> None:
    from pathlib import Path

    from ctl.snapshots import new_snapshotter

    snapshotter: Snapshotter = new_snapshotter(name, Path(root))
    infos = {info.name: info for info in snapshotter.walk()}
    keep: set[str] = set()
    for root_key in live:
        key = root_key
        while key and key in infos and key not in keep:
            keep.add(key)
            key = infos[key].parent
    doomed = {key for key in infos if key not in keep}
    # Children before parents: a snapshot with children cannot be removed.
    while doomed:
        parents = {infos[k].parent for k in doomed}
        leaves = [k for k in doomed if k not in parents]
        if not leaves:
            break
        for key in leaves:
            with contextlib.suppress(CtlError):
                usage = snapshotter.usage(key)
                snapshotter.remove(key)
                result.snapshots.append(f"{name}/{key}")
                result.reclaimed += usage.size
            doomed.discard(key)
    cleanup = getattr(snapshotter, "cleanup", None)
    if cleanup is not None:
        cleanup()
