"""A container's volumes: from ``-v``, ``--mount``, ``--volumes-from`` and the image's VOLUMEs.

``resolve`` runs in ``lifecycle.create`` once the container's rootfs is
mounted. It gathers the mounts in docker's order of precedence (the flags,
then ``--volumes-from``, then the image's ``VOLUME`` paths no mount covers
yet, each an anonymous volume), makes the volumes that are missing and fills
the empty ones from the image (``copyup``), and holds every one of them
until the container's record is written: a ``volume rm`` meanwhile waits,
then finds the record and refuses.

Volumes are made (each under its own lock, one at a time) before any is
held: a hold is shared and never waits for another, so two creates that
name the same volumes in any order cannot deadlock.
"""

from __future__ import annotations

import contextlib
import posixpath
from typing import TYPE_CHECKING, Any

from ctl.errdefs import FailedPrecondition, NotFound
from ctl.volumes import check_options

if TYPE_CHECKING:
    from pathlib import Path

    from ctl.client import Client
    from ctl.containers.container import MountSpec
    from ctl.containers.create import ContainerOptions
    from ctl.volumes import Volume


def image_volumes(image_config: dict[str, Any]) -> list[str]:
    """image_volumes are the ``VOLUME`` paths of an image config."""
    config = image_config.get("config")
    volumes = config.get("Volumes") if isinstance(config, dict) else None
    return sorted(str(path) for path in volumes) if isinstance(volumes, dict) else []


def resolve(
    client: Client,
    options: ContainerOptions,
    image_config: dict[str, Any],
    rootfs: Path,
    rollback: contextlib.ExitStack,
    holds: contextlib.ExitStack,
) -> tuple[tuple[MountSpec, ...], tuple[MountSpec, ...]]:
    """resolve returns the mounts for the spec and the mounts for the record.

    The spec's mount volumes as binds of their data (or as a tmpfs, or a
    bind of their device, as their options say); the record's keep each
    volume by name. Anonymous volumes made here are removed by ``rollback``;
    ``holds`` keeps every volume until it closes.
    """
    from ctl.containers.container import MountSpec

    mounts = list(options.mounts)
    covered = {posixpath.normpath(m.destination) for m in mounts}
    for ref, mode in options.volumes_from:
        for mount in client.containers.get(ref).config.mounts:
            destination = posixpath.normpath(mount.destination)
            if destination not in covered:
                covered.add(destination)
                readonly = mode == "ro" if mode else mount.readonly
                mounts.append(mount._replace(readonly=readonly, volume_nocopy=True))
    for path in image_volumes(image_config):
        destination = posixpath.normpath(path)
        if destination.startswith("/") and destination != "/" and destination not in covered:
            covered.add(destination)
            mounts.append(MountSpec("volume", destination))

    volumes: dict[str, Volume] = {}
    recorded: list[MountSpec] = []
    for index, mount in enumerate(mounts):
        if mount.type != "volume":
            if mount.type == "bind":
                recorded.append(mount)
            continue
        volume = _make(client, mount, rootfs, rollback)
        volumes[volume.name] = volume
        mounts[index] = named = mount._replace(source=volume.name)
        recorded.append(named._replace(volume_options={}))
    for name in sorted(volumes):
        volumes[name] = holds.enter_context(client.volumes.hold(name))
    spec_mounts = tuple(
        _spec_mount(m, volumes[m.source]) if m.type == "volume" else m for m in mounts
    )
    return spec_mounts, tuple(recorded)


def _make(client: Client, mount: MountSpec, rootfs: Path, rollback: contextlib.ExitStack) -> Volume:
    from ctl.volumes.copyup import copy_up

    store = client.volumes
    name = mount.source
    if not name:
        name = store.create(None, options=mount.volume_options).name
        rollback.callback(_drop, client, name)

    def fill(data: str) -> None:
        copy_up(rootfs, mount.destination, data)

    volume, _ = store.ensure(
        name, options=mount.volume_options, fill=None if mount.volume_nocopy else fill
    )
    return volume


def _drop(client: Client, name: str) -> None:
    with contextlib.suppress(NotFound, FailedPrecondition):
        client.volumes.remove(name)


def _spec_mount(mount: MountSpec, volume: Volume) -> MountSpec:
    how = check_options(volume.options)
    if how.type == "tmpfs":
        return mount._replace(
            type="tmpfs", source="", tmpfs_size=how.tmpfs_size, tmpfs_mode=how.tmpfs_mode
        )
    return mount._replace(type="bind", source=how.source or volume.mountpoint)


def remove_anonymous(client: Client, mounts: tuple[MountSpec, ...]) -> None:
    """remove_anonymous removes the anonymous volumes among a removed container's mounts.

    One another container still uses (``--volumes-from``) stays, as in docker.
    """
    for mount in mounts:
        if mount.type != "volume":
            continue
        with contextlib.suppress(NotFound, FailedPrecondition):
            if client.volumes.get(mount.source).anonymous:
                client.volumes.remove(mount.source)
