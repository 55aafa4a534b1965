"""Garbage collection: remove what nothing references, as containerd's mark and sweep.

Roots are the image records and the container records of every namespace.
An image keeps its target and everything reachable from it (the present
part of an index, manifests, configs, layers) and the snapshot of each of
its layer chains; a container keeps its own snapshot; a kept snapshot keeps
its parents. Everything else goes: unreferenced blobs, snapshots left by
removed images or a crashed unpack, ingests older than a day, the task
directory (with its mounted rootfs) of a create killed before its record,
and the root's network bridges no container uses (a detach killed between
CNI DEL and the bridge's delete).
Everything is marked before anything is removed, and marking fails closed:
what a kept image references but cannot be read stops the collection, and
so does a record the sweep would walk (a blob's labels, an ingest, a
snapshotter's store). Something removed by another process meanwhile (an
``rmi``) is as good as removed.

A pull, load or unpack holds the GC lock shared for its whole run (the
client's ``lease``); collection takes it exclusively, so it never sweeps
content whose image record is not written yet.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn

from ctl import fsutil
from ctl.errdefs import CtlError, FailedPrecondition, NotFound
from ctl.images import manifests
from ctl.oci import MANIFEST_TYPES

if TYPE_CHECKING:
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
    bridges: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    reclaimed: int = 0


def collect(
    client: Client,
    *,
    unused_images: bool = False,
    volumes: bool = False,
    timeout: float = 600.0,
) -> Collected:
    """collect sweeps the whole root; with ``unused_images`` it first removes the image
    records no container of their namespace uses, with ``volumes`` it also removes the
    anonymous volumes no container uses (docker's ``system prune --volumes``).

    Marking comes first and fails closed, as containerd's does: an index,
    manifest or config that a kept image references but that cannot be read
    (missing, unreadable, malformed, or not matching its digest) raises
    FailedPrecondition naming it, before anything is removed. Without it the
    sweep would take that image's layers and snapshots.
    """
    paths = client.paths
    with fsutil.FileLock(paths.lock("gc"), timeout=timeout, what="a pull in progress"):
        marked = _mark(client, unused_images)
        result = _sweep(client, marked)
    # A bridge is not content: the network lock guards it, not the GC lock.
    for unused in client.networks.unused_bridges():
        with contextlib.suppress(FailedPrecondition):  # a container came meanwhile
            unused.repair()
            result.bridges.append(unused.bridge)
    # Volumes are not content either: each has its own lock (ctl.volumes.local).
    for leftover in client.volumes.leftovers():
        shutil.rmtree(leftover, ignore_errors=True)
    if volumes:
        result.volumes, reclaimed = client.prune_volumes()
        result.reclaimed += reclaimed
    return result


@dataclass
class _Marked:
    """_Marked is what marking found: what to keep, and what to remove before the sweep."""

    blobs: set[str] = field(default_factory=set)
    snapshots: set[str] = field(default_factory=set)
    # Image records no container uses (with ``unused_images``), by namespace client.
    unused_images: list[tuple[Client, str]] = field(default_factory=list)
    # Task directories of no container record, by namespace client.
    leftovers: list[tuple[Client, str]] = field(default_factory=list)


def _mark(client: Client, unused_images: bool) -> _Marked:
    from ctl.client import Client as ClientType

    _check_records(client)
    marked = _Marked()
    for namespace in client.list_namespaces():
        ns = ClientType(client.paths.root, namespace, debug=client.debug)
        # A damaged record could be what keeps an image or a snapshot: stop, do not skip it.
        containers = list(ns.containers.list(on_error=_refuse))
        used = {c.image for c in containers}
        # Per namespace: a manifest shared with another namespace still keeps
        # this namespace's snapshots.
        visited: set[str] = set()
        for image in list(ns.images.list(on_error=_refuse)):
            if unused_images and image.name not in used:
                # It goes anyway and nothing else needs what only it
                # references, so it is not read: damage to it does not block.
                marked.unused_images.append((ns, image.name))
                continue
            owner = f"image {namespace}/{image.name}"
            _mark_image(ns.content, image.target, owner, namespace, visited, marked)
        marked.snapshots.update(f"{namespace}/{c.snapshot_key}" for c in containers)
        for container_id in ns.tasks.leftovers({c.id for c in containers}):
            marked.leftovers.append((ns, container_id))
    return marked


def _mark_image(
    store: ContentStore,
    desc: Descriptor,
    owner: str,
    namespace: str,
    visited: set[str],
    marked: _Marked,
    *,
    in_index: bool = False,
) -> None:
    """_mark_image marks ``desc``, what it references and its layers' snapshots.

    Only a manifest listed in an index may be absent (a platform that was
    never pulled); any other index, manifest or config that cannot be read
    is FailedPrecondition naming it and ``owner``. Layers are not read.
    """
    if desc.digest in visited:
        return
    is_index = manifests.is_index(desc)
    if not is_index and desc.media_type not in MANIFEST_TYPES:
        visited.add(desc.digest)
        marked.blobs.add(desc.digest)
        return
    kind = "index" if is_index else "manifest"
    try:
        data = manifests.read_document(store, desc)
        listed = manifests.index_manifests(desc, data) if is_index else []
        manifest = None if is_index else manifests.Manifest.parse(desc, data)
    except (CtlError, OSError) as err:
        if in_index and isinstance(err, NotFound):
            return
        raise _unreadable(kind, desc, owner, err) from err
    # Visited only once read: a manifest absent from one index may be the
    # target of another image, which must not find it skipped.
    visited.add(desc.digest)
    marked.blobs.add(desc.digest)
    for child in listed:
        _mark_image(store, child, owner, namespace, visited, marked, in_index=True)
    if manifest is None:
        return
    try:
        chains = manifests.chain_ids(manifests.diff_ids(manifests.read_config(store, manifest)))
    except (CtlError, OSError) as err:
        raise _unreadable("config", manifest.config, owner, err) from err
    marked.blobs.add(manifest.config.digest)
    marked.blobs.update(layer.digest for layer in manifest.layers)
    marked.snapshots.update(f"{namespace}/{chain}" for chain in chains)


def _check_records(client: Client) -> None:
    """_check_records fails if the sweep would meet a record it cannot read.

    The sweep walks the blobs' labels, the ingests and the snapshotters'
    stores; without this it would stop at the damage with part of the
    garbage removed. Labels do not keep anything here (ctl keeps no GC
    references in them), but going on past one would skip it silently.
    """
    from ctl.snapshots import NAMES

    damaged: list[CtlError] = []
    for _ in client.content.walk(on_error=damaged.append):
        pass
    client.content.list_statuses(on_error=damaged.append)
    for name in NAMES:
        root = client.paths.snapshotter(name)
        if os.path.isdir(root):
            try:
                _snapshotter(name, root).walk()
            except CtlError as err:
                damaged.append(err)
    if damaged:
        _refuse(damaged[0])


def _refuse(damaged: CtlError) -> NoReturn:
    """_refuse stops a collection at a record it cannot read: GC fails closed."""
    raise FailedPrecondition(
        f"cannot read {damaged}; nothing was removed",
        hint="'ctl system check --repair' removes or rebuilds it",
    )


def _snapshotter(name: str, root: str) -> Snapshotter:
    from ctl.snapshots import new_snapshotter

    return new_snapshotter(name, root)


def _unreadable(kind: str, desc: Descriptor, owner: str, err: Exception) -> FailedPrecondition:
    if isinstance(err, OSError) and err.strerror:
        reason = err.strerror
    else:  # the content store's errors name the digest already
        reason = str(err).removeprefix(f"content {desc.digest}: ")
    return FailedPrecondition(
        f"cannot read {kind} {desc.digest} of {owner} ({reason}); nothing was removed",
        hint="'ctl system check' shows the damage; remove the image or pull it again",
    )


def _sweep(client: Client, marked: _Marked) -> Collected:
    from ctl.snapshots import NAMES

    result = Collected()
    for ns, name in marked.unused_images:
        with contextlib.suppress(NotFound):  # removed meanwhile: as good
            ns.images.delete(name)
            result.images.append(f"{ns.namespace}/{name}")
    for ns, container_id in marked.leftovers:
        # A create killed before its record: nothing runs there (a task
        # starts only once the record is written), and no create is
        # half-way while the GC lock is held.
        ns.tasks.task_dir(container_id).remove()
        result.leftovers.append(f"{ns.namespace}/{container_id}")
    _sweep_blobs(client.content, marked.blobs, result)
    for name in NAMES:
        root = client.paths.snapshotter(name)
        if os.path.isdir(root):
            _sweep_snapshots(name, root, marked.snapshots, result)
    return result


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


def _sweep_snapshots(name: str, root: str, live: set[str], result: Collected) -> None:
    from ctl.snapshots import Cleaner

    snapshotter = _snapshotter(name, root)
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
    # Cleaner is optional, as containerd's is (its GC type-asserts the same
    # way): a snapshotter that leaves no crash debris need not implement it.
    if isinstance(snapshotter, Cleaner):
        snapshotter.cleanup()
