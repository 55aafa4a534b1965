"""A container's life: create, start and remove, ``--rm`` included.

This is containerd's client-side ``NewContainer``, ``NewTask`` and
``container.Delete(WithSnapshotCleanup)``: the stores and the task service
each do one thing, and the order between them, with its undoing, is here.

- ``create`` makes the snapshot, the host files, the rootfs mount, the spec
  and the record; a failure at any step undoes the steps before it.
- ``start`` starts the task; a ``--rm`` container is removed when its task
  exits (by its supervisor), or at once when it fails to start.
  ``start_detached`` is docker's ``start``: a running container is no error.
- ``remove`` removes the task, then the snapshot, then the record, under the
  container's removal lock, which a ``--rm`` supervisor takes too.
- ``connect_network`` and ``disconnect_network`` change the networks the
  container keeps beyond the one it was created on: live if its task runs,
  in its record for every start after, under the task's lifecycle lock.
"""

from __future__ import annotations

import contextlib
import os

from ctl import fsutil
from ctl.errdefs import AlreadyExists, CtlError, FailedPrecondition, NotFound, Unavailable

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path
    from typing import Any

    from ctl.client import Client
    from ctl.containers.container import Container
    from ctl.containers.create import ContainerOptions
    from ctl.network import Attachment
    from ctl.progress import Progress
    from ctl.runtime.runc import Stdio
    from ctl.runtime.state import ExitStatus
    from ctl.runtime.supervisor import Spawned

# A container without --name gets a random one; so many clashes in a row is a bug.
NAME_ATTEMPTS = 8


def create(
    client: Client,
    image_ref: str,
    options: ContainerOptions,
    progress: Progress | None = None,
    snapshot: str | None = None,
) -> Container:
    """create makes a container: a snapshot of the image and a record with its spec.

    Its rootfs stays mounted, ready for a task to start. ``snapshot`` names
    the active snapshot (default: the container's id).
    """
    from ctl.containers.container import Container
    from ctl.containers.create import container_spec, hostname_for, write_host_files
    from ctl.containers.store import name_taken, validate_name
    from ctl.images import manifests
    from ctl.images.unpack import unpack

    name = validate_name(options.name) if options.name else None
    if options.network not in ("none", "host"):
        # A missing network fails before anything is pulled or prepared.
        client.networks.get(options.network)
        if options.ip is not None or options.ip6 is not None:
            client.networks.check_static(options.network, options.ip, options.ip6)
    if name is not None:
        with contextlib.suppress(NotFound):
            raise name_taken(name, client.containers.get(name).id)
    image = client.ensure_image(image_ref, options.pull, options.platform, progress)
    tasks = client.tasks
    # The lease lasts until the record is written: a prune meanwhile would
    # take the new snapshot for garbage. A create killed before the record
    # leaves a task directory that prune removes (ctl.gc).
    # holds keeps the container's volumes until its record names them; it
    # closes before rollback, which may remove volumes made here.
    with client.lease(), contextlib.ExitStack() as rollback, contextlib.ExitStack() as holds:
        manifest = manifests.image_manifest(client.content, image, options.platform)
        top = unpack(client.content, client.snapshotter, manifest)
        image_config = manifests.read_config(client.content, manifest)
        if options.publish_all and options.network != "none":
            from ctl.network.ports import exposed_ports, publish_all

            exposed = exposed_ports(image_config, options.expose)
            options = options._replace(
                publish=options.publish + publish_all(exposed, options.publish)
            )
        if any(p.host_port == 0 for p in options.publish):
            from ctl.network.ports import assign_free

            options = options._replace(publish=assign_free(options.publish))
        container_id = os.urandom(32).hex()
        snapshot_key = snapshot or container_id
        client.snapshotter.prepare(snapshot_key, top, labels={"ctl.container": container_id})
        rollback.callback(_remove_snapshot, client, snapshot_key)
        task_dir = tasks.task_dir(container_id)
        rollback.callback(task_dir.remove)
        files_dir = task_dir.path
        files_dir.mkdir(mode=0o700, parents=True)
        write_host_files(files_dir, options.run_config(), hostname_for(options, container_id))
        draft = Container(
            id=container_id,
            name=name or "",
            image=image.name,
            image_digest=image.target.digest,
            snapshotter=client.snapshotter_name or "",
            snapshot_key=snapshot_key,
            spec={},
            config=options.run_config(image_config),
            labels=dict(options.labels),
        )
        rootfs = tasks.mount_rootfs(draft)  # the spec reads the image's users
        options, draft = _resolve_volumes(
            client, options, draft, image_config, rootfs, rollback, holds
        )
        spec = container_spec(
            options, image_config, rootfs, container_id, client.namespace, files_dir
        )
        container = _create_record(client, draft.updated(spec=spec), named=name is not None)
        rollback.pop_all()
        return container


def _resolve_volumes(
    client: Client,
    options: ContainerOptions,
    draft: Container,
    image_config: dict[str, Any],
    rootfs: Path,
    rollback: contextlib.ExitStack,
    holds: contextlib.ExitStack,
) -> tuple[ContainerOptions, Container]:
    """_resolve_volumes makes and fills the container's volumes (``ctl.volumes.mounts``).

    The options come back with volumes as the spec mounts them, the draft
    with the mounts its record keeps.
    """
    config = image_config.get("config")
    image_volumes = config.get("Volumes") if isinstance(config, dict) else None
    if not (
        options.volumes_from or image_volumes or any(m.type == "volume" for m in options.mounts)
    ):
        # Without importing ctl.volumes: most containers have no volume.
        binds = tuple(m for m in options.mounts if m.type == "bind")
        return options, draft.updated(config=draft.config._replace(mounts=binds))
    from ctl.volumes import mounts

    spec_mounts, recorded = mounts.resolve(client, options, image_config, rootfs, rollback, holds)
    run_config = draft.config._replace(mounts=recorded)
    return options._replace(mounts=spec_mounts), draft.updated(config=run_config)


def _create_record(client: Client, container: Container, named: bool) -> Container:
    """_create_record writes the record; an unnamed one takes random names until one is free."""
    from ctl.containers.names import random_name

    for attempt in range(NAME_ATTEMPTS):
        try:
            return client.containers.create(
                container if named else container.updated(name=random_name())
            )
        except AlreadyExists:
            if named or attempt == NAME_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


def start(
    client: Client, container: Container, attach: Stdio | None = None, start: bool = True
) -> Spawned:
    """start runs the container's task (with ``start`` False, only creates it).

    A ``--rm`` container goes when its task exits, and at once if the task
    fails to start; the error goes on to the caller.
    """
    on_exit = None
    if container.config.rm:

        def on_exit(status: ExitStatus) -> None:
            lock = removal_lock(client, container, timeout=0)
            try:
                lock.acquire()
            except Unavailable:
                return  # 'rm' holds it, waiting for us to finish: it removes the container
            try:
                _remove(client, container, force=True, volumes=True)
            finally:
                lock.release()
            client.emit_container(container, "destroy")

    try:
        client.check_runnable(container)
        return client.tasks.start(container, attach=attach, on_exit=on_exit, start=start)
    except CtlError:
        if container.config.rm:
            with contextlib.suppress(CtlError):
                remove(client, container, force=True, volumes=True)
        raise


def start_detached(client: Client, container: Container) -> bool:
    """start_detached starts the container's task and leaves it running (``start`` without -a).

    A container that runs already is left as it is and False returned: the
    docker daemon answers such a start 304 Not Modified, which its CLI
    takes for success.
    """
    from ctl.runtime.state import Status

    try:
        with client.start_task(container):
            return True
    except FailedPrecondition:
        # Looked at after the refusal, not before: of concurrent starts, the
        # losers find the winner's task running.
        task = client.task_state(container)
        if task is None or task.status is not Status.RUNNING:
            raise
        return False


def remove(
    client: Client, container: Container, force: bool = False, volumes: bool = False
) -> None:
    """remove deletes the container's task, snapshot, files and record.

    A live task needs ``force`` (it is killed first); otherwise that is
    FailedPrecondition and nothing is removed. ``volumes`` (``rm -v``)
    removes its anonymous volumes too.
    """
    with removal_lock(client, container):
        _remove(client, container, force, volumes)


def remove_unreadable(client: Client, container_id: str, force: bool = False) -> None:
    """remove_unreadable removes a container whose record is damaged, as ``remove`` does.

    Its id is known (``LocalContainerStore.resolve``), its record is not:
    the task is torn down from what its task directory shows, the snapshot
    is found by the default key (the id) or by its ``ctl.container`` label.
    """
    with _removal_lock(client, container_id, container_id[:12]):
        client.tasks.remove_unreadable(container_id, force)
        for key in _snapshots_of(client, container_id):
            _remove_snapshot(client, key)
        with contextlib.suppress(NotFound):
            client.containers.delete(container_id)


def _snapshots_of(client: Client, container_id: str) -> list[str]:
    keys = {container_id}
    with contextlib.suppress(CtlError, OSError):
        keys |= {
            info.name
            for info in client.snapshotter.walk()
            if info.labels.get("ctl.container") == container_id
        }
    return sorted(keys)


def _remove(client: Client, container: Container, force: bool, volumes: bool = False) -> None:
    # The task goes first: it holds the rootfs mounted on the snapshot.
    client.tasks.remove(container, force)
    _remove_snapshot(client, container.snapshot_key)
    with contextlib.suppress(NotFound):
        client.containers.delete(container.id)
    if volumes and container.config.mounts:
        from ctl.volumes.mounts import remove_anonymous

        remove_anonymous(client, container.config.mounts)


def _remove_snapshot(client: Client, key: str) -> None:
    with contextlib.suppress(NotFound):
        client.snapshotter.remove(key)


def removal_lock(
    client: Client, container: Container, timeout: float | None = None
) -> fsutil.FileLock:
    """removal_lock is held while a container is removed, so that only one remover runs."""
    return _removal_lock(client, container.id, container.name, timeout)


def _removal_lock(
    client: Client, container_id: str, name: str, timeout: float | None = None
) -> fsutil.FileLock:
    lock = client.paths.lock("container", client.namespace, container_id)
    return fsutil.FileLock(lock, what=f"container {name}", remove=True, timeout=timeout)


def connect_network(
    client: Client,
    container_id: str,
    name: str,
    aliases: Sequence[str] = (),
    ip: str | None = None,
    ip6: str | None = None,
) -> Attachment | None:
    """connect_network puts the container on network ``name`` (as ``networks.get`` names it)
    and keeps it there, as docker's ``network connect``: at once if its task runs (the
    attachment is returned), and at every start after. AlreadyExists if it is on it already."""
    from ctl.containers.container import NetworkConnection
    from ctl.network.connect import connect, disconnect
    from ctl.network.networks import resolve_network
    from ctl.runtime.state import is_live

    with client.tasks.lifecycle_lock(container_id):
        container = client.containers.get(container_id)
        config = container.config
        if config.network in ("none", "host"):
            raise FailedPrecondition(
                f"container {container.name} runs with --net {config.network}: "
                "it cannot be connected to a network"
            )
        if name in (resolve_network(config.network), *(c.network for c in config.connections)):
            raise AlreadyExists(f"the container is already on network {name!r}")
        attachment = None
        if is_live(client.task_state(container)):
            attachment = connect(client.networks, container.id, name, aliases, ip, ip6)
        else:
            client.networks.check_static(name, ip, ip6)
        kept = (*config.connections, NetworkConnection(name, tuple(aliases), ip, ip6))
        try:
            client.containers.update(
                container.updated(config=config._replace(connections=kept)), ["config"]
            )
        except BaseException:
            if attachment is not None:
                with contextlib.suppress(CtlError):
                    disconnect(client.networks, container.id, name, force=True)
            raise
        return attachment


def disconnect_network(client: Client, container_id: str, name: str, force: bool = False) -> None:
    """disconnect_network takes the container off network ``name`` (as ``networks.get`` names
    it), which it was connected to: from its record, and live if its task runs. NotFound if
    it is not on it (nothing, with ``force``); FailedPrecondition for the network it was
    created on, which stays."""
    from ctl.network.connect import disconnect
    from ctl.network.networks import resolve_network
    from ctl.runtime.state import is_live

    with client.tasks.lifecycle_lock(container_id):
        container = client.containers.get(container_id)
        config = container.config
        if name == resolve_network(config.network):
            raise FailedPrecondition(
                f"network {name!r} is the one the container was created on: it stays",
                hint="run the container on another network",
            )
        kept = tuple(c for c in config.connections if c.network != name)
        recorded = len(kept) < len(config.connections)
        if recorded:
            client.containers.update(
                container.updated(config=config._replace(connections=kept)), ["config"]
            )
        if is_live(client.task_state(container)):
            # A connection the record had may be gone live already (a failed start's).
            disconnect(client.networks, container.id, name, force or recorded)
        elif not recorded and not force:
            raise NotFound(f"the container is not connected to network {name!r}")
