"""The Python API under the CLI, after containerd's Go client.

    client = ctl.Client(root="/var/lib/ctl", namespace="default")
    image = client.pull("busybox")
    for image in client.list_images(): ...

Each call is a short operation over the state on disk; there is no daemon.
Stores are built lazily, so a call touches only what it uses.
"""

from __future__ import annotations

import contextlib
import os
from functools import cached_property
from pathlib import Path

from ctl import fsutil
from ctl.errdefs import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from ctl.paths import DEFAULT_NAMESPACE, DEFAULT_ROOT, Paths

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

    from ctl.containers.container import Container
    from ctl.containers.create import ContainerOptions
    from ctl.containers.store import LocalContainerStore
    from ctl.content.local import LocalStore
    from ctl.images.image import Image
    from ctl.images.store import LocalImageStore
    from ctl.images.summary import ImageSummary
    from ctl.network.manager import NetworkManager
    from ctl.oci import Platform
    from ctl.progress import Progress
    from ctl.reference import Reference
    from ctl.remotes.registry import Registry
    from ctl.runtime.runc import Stdio
    from ctl.runtime.supervisor import Spawned
    from ctl.snapshots.namespaced import NamespacedSnapshotter
    from ctl.tasks import TaskService

# A pull waits this long for a running prune to finish, and a prune for pulls.
GC_LOCK_TIMEOUT = 600.0
DOCKER_CERTS_DIR = Path("/etc/docker/certs.d")


class Client:
    """Client is one namespace of one ctl root."""

    def __init__(
        self,
        root: str | os.PathLike[str] = DEFAULT_ROOT,
        namespace: str = DEFAULT_NAMESPACE,
        snapshotter: str | None = None,
        debug: bool = False,
    ) -> None:
        self.paths = Paths(Path(root).absolute())
        self.paths.namespace(namespace)  # validates the name before any use
        self.namespace = namespace
        self.snapshotter_name = snapshotter
        self.debug = debug

    # Stores.

    @cached_property
    def content(self) -> LocalStore:
        from ctl.content.local import LocalStore

        self.paths.ensure()
        return LocalStore(self.paths.content)

    @cached_property
    def images(self) -> LocalImageStore:
        from ctl.images.store import LocalImageStore

        self.paths.ensure()
        return LocalImageStore(
            self.paths.images(self.namespace),
            self.paths.locks / f"images-{self.namespace}.lock",
        )

    @cached_property
    def snapshotter(self) -> NamespacedSnapshotter:
        """snapshotter is this namespace's view of the chosen snapshotter."""
        from ctl.snapshots import new_snapshotter
        from ctl.snapshots.namespaced import NamespacedSnapshotter

        self.paths.ensure()
        name = self.snapshotter_name = self.snapshotter_name or self.default_snapshotter()
        return NamespacedSnapshotter(
            new_snapshotter(name, self.paths.snapshotter(name)), self.namespace
        )

    def default_snapshotter(self) -> str:
        """default_snapshotter is overlayfs where the root's filesystem can mount it."""
        from ctl.snapshots import overlay

        self.paths.ensure()
        return "overlayfs" if overlay.supported(self.paths.snapshotter("overlayfs")) else "native"

    def lease(self) -> contextlib.AbstractContextManager[Any]:
        """lease protects content being written from a concurrent prune.

        Every writer holds the GC lock shared; prune takes it exclusively, so
        it never sweeps a blob whose image record is not written yet. The
        kernel drops the lock when its holder dies, so a killed pull leaves
        no lease behind.
        """
        return fsutil.FileLock(
            self.paths.locks / "gc.lock", shared=True, timeout=GC_LOCK_TIMEOUT, what="gc"
        )

    # Images.

    def registry(self, ref: Reference, insecure: bool = False) -> Registry:
        from ctl.remotes.registry import Registry

        return Registry(
            ref.domain,
            insecure=insecure,
            certs_dirs=(self.paths.root / "certs.d", DOCKER_CERTS_DIR),
        )

    def fetch(
        self,
        ref: str,
        *,
        platform: Platform | None = None,
        insecure: bool = False,
        progress: Progress | None = None,
    ) -> tuple[Reference, Any]:
        """fetch copies an image's content into the store without naming it."""
        from ctl.images.pull import Fetcher
        from ctl.progress import NoProgress
        from ctl.reference import host_platform, parse

        parsed = parse(ref)
        progress = progress or NoProgress()
        with self.lease():
            fetcher = Fetcher(
                self.content,
                self.registry(parsed, insecure),
                parsed,
                platform or host_platform(),
                progress,
            )
            try:
                target = fetcher.fetch()
            finally:
                progress.close()
        return parsed, target

    def pull(
        self,
        ref: str,
        *,
        platform: Platform | None = None,
        insecure: bool = False,
        progress: Progress | None = None,
        unpack: bool = True,
    ) -> Image:
        """pull fetches an image, records it under its normalised name and unpacks it."""
        with self.lease():
            parsed, target = self.fetch(
                ref, platform=platform, insecure=insecure, progress=progress
            )
            image = self._put_image(str(parsed), target)
            if unpack:
                self.unpack(image, platform, progress)
            return image

    def unpack(
        self, image: Image, platform: Platform | None = None, progress: Progress | None = None
    ) -> str:
        """unpack applies the image's layers as snapshots; returns the top chain ID."""
        from ctl.images import manifests
        from ctl.images.unpack import unpack
        from ctl.reference import host_platform

        manifest = manifests.platform_manifest(
            self.content, image.target, platform or host_platform()
        )
        with self.lease():
            return unpack(self.content, self.snapshotter, manifest, progress)

    def _put_image(self, name: str, target: Any) -> Image:
        from ctl.images.image import Image

        try:
            return self.images.create(Image(name=name, target=target))
        except AlreadyExists:
            return self.images.update(Image(name=name, target=target), ["target"])

    def push(self, ref: str, *, insecure: bool = False, progress: Progress | None = None) -> Any:
        """push uploads an image's content and manifest to its registry."""
        from ctl.images.push import push_image
        from ctl.progress import NoProgress
        from ctl.reference import host_platform, parse

        parsed = parse(ref)
        image = self.get_image(ref)
        return push_image(
            self.content,
            self.registry(parsed, insecure),
            parsed,
            image.target,
            host_platform(),
            progress or NoProgress(),
        )

    def get_image(self, ref: str) -> Image:
        """get_image finds an image by name, by short name, or by a unique ID prefix."""
        from ctl.reference import parse

        try:
            name = str(parse(ref))
        except InvalidArgument:
            name = None
        if name is not None:
            with contextlib.suppress(NotFound):
                return self.images.get(name)
        matches = self._images_by_id(ref)
        if len(matches) == 1 or (matches and len({m.target.digest for m in matches}) == 1):
            return matches[0]
        if matches:
            raise FailedPrecondition(f"image ID {ref!r} is ambiguous: it matches several images")
        raise NotFound(f"image {name or ref!r}: not found")

    def _images_by_id(self, prefix: str) -> list[Image]:
        hex_prefix = prefix.removeprefix("sha256:")
        if len(hex_prefix) < 3 or not all(c in "0123456789abcdef" for c in hex_prefix):
            return []
        out = []
        for image in self.images.list():
            summary = self.summarize(image)
            if summary.id.removeprefix("sha256:").startswith(hex_prefix) or (
                image.target.digest.removeprefix("sha256:").startswith(hex_prefix)
            ):
                out.append(image)
        return out

    def list_images(self) -> list[Image]:
        return sorted(self.images.list(), key=lambda i: i.name)

    def summarize(self, image: Image) -> ImageSummary:
        """summarize reads what listings show of an image: ID, created, size, platform."""
        from ctl.images.summary import summarize
        from ctl.reference import host_platform

        return summarize(self.content, image, host_platform())

    def tag(self, source: str, target: str) -> Image:
        """tag makes ``target`` name the same content as ``source``."""
        from ctl.reference import parse

        image = self.get_image(source)
        name = str(parse(target))
        return self._put_image(name, image.target)

    def remove_image(self, ref: str, *, force: bool = False) -> list[str]:
        """remove_image deletes image records; returns the names removed.

        A reference by ID that several names share needs ``force``, and so
        does the last name of an image a container was created from (docker's
        rule: the container would be left with a dangling image). The content
        stays until ``prune`` collects what nothing references.
        """
        from ctl.reference import parse

        with contextlib.suppress(InvalidArgument):
            name = str(parse(ref))
            with contextlib.suppress(NotFound):
                image = self.images.get(name)
                if not force:
                    self._check_unused(image)
                self.images.delete(name)
                return [name]
        matches = self._images_by_id(ref)
        if not matches:
            raise NotFound(f"image {ref!r}: not found")
        if len(matches) > 1 and not force:
            names = ", ".join(m.name for m in matches)
            raise FailedPrecondition(
                f"image {ref!r} is referenced by several names ({names})",
                hint="remove them by name, or use -f",
            )
        if not force:
            self._check_unused(matches[0])
        for image in matches:
            self.images.delete(image.name)
        return [m.name for m in matches]

    def _check_unused(self, image: Image) -> None:
        """_check_unused refuses to remove the last name of an image a container uses."""
        digest = image.target.digest
        if any(i.name != image.name and i.target.digest == digest for i in self.images.list()):
            return  # another name keeps the image
        for container in self.containers.list():
            if container.image == image.name:
                raise FailedPrecondition(
                    f"image {image.name} is used by container {container.name} "
                    f"({container.id[:12]})",
                    hint="remove the container first, or use rmi -f",
                )

    def save(self, refs: list[str], out: BinaryIO) -> None:
        """save writes the images as one OCI archive (with docker's manifest.json)."""
        from ctl.images.archive import export_archive
        from ctl.reference import host_platform

        images = [self.get_image(ref) for ref in refs]
        export_archive(self.content, images, host_platform(), out)

    def load(self, source: BinaryIO) -> list[Image]:
        """load reads an OCI layout tar or a docker save tar, verifying every blob."""
        from ctl.images.archive import import_archive

        with self.lease():
            loaded = import_archive(self.content, source)
            return [self._put_image(name, target) for name, target in loaded]

    # Containers and tasks.

    @cached_property
    def containers(self) -> LocalContainerStore:
        from ctl.containers.store import LocalContainerStore

        self.paths.ensure()
        return LocalContainerStore(
            self.paths.containers(self.namespace),
            self.paths.locks / f"containers-{self.namespace}.lock",
        )

    @cached_property
    def networks(self) -> NetworkManager:
        from ctl.network.manager import NetworkManager

        self.paths.ensure()
        return NetworkManager(self.paths.root, self.namespace)

    @cached_property
    def tasks(self) -> TaskService:
        from ctl.runtime.runc import Runc
        from ctl.tasks import TaskService

        return TaskService(
            self.paths.tasks(self.namespace),
            Runc(self.paths.root / "runc" / self.namespace, debug=self.debug),
            self.snapshotter,
            self.networks,
        )

    def ensure_image(
        self,
        ref: str,
        policy: str = "missing",
        platform: Platform | None = None,
        progress: Progress | None = None,
    ) -> Image:
        """ensure_image finds ``ref`` locally or pulls it, as ``--pull`` says."""
        if policy == "always":
            return self.pull(ref, platform=platform, progress=progress)
        try:
            return self.get_image(ref)
        except NotFound:
            if policy == "never":
                raise NotFound(
                    f"image {ref!r}: not found locally", hint="pull it, or use --pull missing"
                ) from None
        return self.pull(ref, platform=platform, progress=progress)

    def new_container(
        self,
        name: str,
        image: Image | str,
        snapshot: str | None = None,
        options: ContainerOptions | None = None,
    ) -> ContainerHandle:
        """new_container is containerd's NewContainer: a container whose task is started apart."""
        from ctl.containers.create import ContainerOptions

        ref = image if isinstance(image, str) else image.name
        options = (options or ContainerOptions())._replace(name=name)
        return ContainerHandle(self, self.create_container(ref, options, snapshot=snapshot))

    def create_container(
        self,
        image_ref: str,
        options: ContainerOptions,
        progress: Progress | None = None,
        snapshot: str | None = None,
    ) -> Container:
        """create_container makes a container: a snapshot of the image and a record with its spec.

        Its rootfs stays mounted, ready for a task to start.
        """
        from ctl.containers.container import Container
        from ctl.containers.create import container_spec, hostname_for, write_host_files
        from ctl.containers.names import random_name
        from ctl.containers.store import name_taken, validate_name
        from ctl.images import manifests
        from ctl.images.unpack import unpack
        from ctl.reference import host_platform

        name = validate_name(options.name) if options.name else None
        if options.network not in ("none", "host"):
            # A missing network fails before anything is pulled or prepared.
            self.networks.get(options.network)
        if name is not None:
            with contextlib.suppress(NotFound):
                raise name_taken(name, self.containers.get(name).id)
        image = self.ensure_image(image_ref, options.pull, options.platform, progress)
        platform = options.platform or host_platform()
        # The lease lasts until the record is written: a prune meanwhile would
        # take the new snapshot for garbage. A create killed before the record
        # leaves a task directory that prune removes (ctl.gc).
        with self.lease():
            manifest = manifests.platform_manifest(self.content, image.target, platform)
            top = unpack(self.content, self.snapshotter, manifest)
            image_config = manifests.read_config(self.content, manifest)
            container_id = os.urandom(32).hex()
            snapshot_key = snapshot or container_id
            self.snapshotter.prepare(snapshot_key, top, labels={"ctl.container": container_id})
            tasks = self.tasks
            files_dir = tasks.task_dir(container_id).path
            try:
                files_dir.mkdir(mode=0o700, parents=True)
                write_host_files(files_dir, options.network, hostname_for(options, container_id))
                draft = Container(
                    id=container_id,
                    name=name or "",
                    image=image.name,
                    snapshotter=self.snapshotter_name or "",
                    snapshot_key=snapshot_key,
                    spec={},
                    config=options.runtime_config(),
                    labels=dict(options.labels),
                )
                rootfs = tasks.mount_rootfs(draft)
                spec = container_spec(
                    options, image_config, rootfs, container_id, self.namespace, files_dir
                )
                for attempt in range(8):
                    try:
                        return self.containers.create(
                            draft.updated(name=name or random_name(), spec=spec)
                        )
                    except AlreadyExists:
                        if name is not None or attempt == 7:
                            raise
                raise AssertionError("unreachable")
            except BaseException:
                tasks.task_dir(container_id).remove()
                with contextlib.suppress(NotFound):
                    self.snapshotter.remove(snapshot_key)
                raise

    def get_container(self, ref: str) -> Container:
        return self.containers.get(ref)

    def list_containers(self) -> list[Container]:
        return sorted(self.containers.list(), key=lambda c: c.created_at, reverse=True)

    def start_task(
        self, container: Container, attach: Stdio | None = None, start: bool = True
    ) -> Spawned:
        """start_task runs the container's task; a ``--rm`` container goes when it exits."""
        on_exit = None
        if container.config.get("rm"):

            def on_exit(status: Any) -> None:
                lock = self._removal_lock(container, timeout=0)
                try:
                    lock.acquire()
                except Unavailable:
                    return  # 'rm' holds it, waiting for us to finish: it removes the container
                try:
                    self._remove(container, force=True)
                finally:
                    lock.release()

        return self.tasks.start(container, attach=attach, on_exit=on_exit, start=start)

    def remove_container(self, ref: str, force: bool = False) -> Container:
        """remove_container deletes the task, snapshot, files and record of a container."""
        container = self.containers.get(ref)
        with self._removal_lock(container):
            self._remove(container, force)
        return container

    def _remove(self, container: Container, force: bool) -> None:
        self.tasks.remove(container, force)
        with contextlib.suppress(NotFound):
            self.snapshotter.remove(container.snapshot_key)
        with contextlib.suppress(NotFound):
            self.containers.delete(container.id)

    def _removal_lock(self, container: Container, timeout: float | None = None) -> fsutil.FileLock:
        lock = self.paths.locks / f"container-{self.namespace}-{container.id}.lock"
        return fsutil.FileLock(
            lock, what=f"container {container.name}", remove=True, timeout=timeout
        )

    def stop_container(self, ref: str, timeout: float = 10.0) -> Container:
        from ctl.runtime.spec import stop_signal

        container = self.containers.get(ref)
        self.tasks.stop(container, timeout, stop_signal(container.spec))
        return container

    def restart_container(self, ref: str, timeout: float = 10.0) -> Container:
        """restart_container stops the container if it runs, then starts it (docker's restart)."""
        if self.containers.get(ref).config.get("rm"):
            # Its supervisor removes it as soon as it stops.
            raise FailedPrecondition(
                f"container {ref!r} was run with --rm: stopping it removes it, so it cannot restart"
            )
        container = self.stop_container(ref, timeout)
        with self.start_task(container):
            pass
        return container

    # Namespaces.

    def list_namespaces(self) -> list[str]:
        try:
            return sorted(e for e in os.listdir(self.paths.namespaces) if not e.startswith("."))
        except FileNotFoundError:
            return []

    def create_namespace(self, name: str) -> None:
        path = self.paths.namespace(name)
        self.paths.ensure()
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        try:
            path.mkdir(mode=0o755)
        except FileExistsError:
            raise AlreadyExists(f"namespace {name!r}: already exists") from None

    def remove_namespace(self, name: str) -> None:
        """remove_namespace removes a namespace that holds nothing, as containerd does."""
        import shutil

        path = self.paths.namespace(name)
        if not path.is_dir():
            raise NotFound(f"namespace {name!r}: not found")
        with fsutil.FileLock(self.paths.locks / f"images-{name}.lock", what="the image store"):
            for kind in ("images", "containers"):
                entries = [e for e in _listdir(path / kind) if not e.startswith(".")]
                if entries:
                    raise FailedPrecondition(
                        f"namespace {name!r} is not empty: it has {len(entries)} {kind}"
                    )
            shutil.rmtree(path)


class ContainerHandle:
    """ContainerHandle is a container as the Python API hands it out (containerd's Container)."""

    def __init__(self, client: Client, record: Container) -> None:
        self.client = client
        self.record = record
        self.id = record.id
        self.name = record.name

    def new_task(self, stdio: Stdio | None = None) -> TaskHandle:
        """new_task creates the task (runc create) under its supervisor; ``start`` runs it."""
        spawned = self.client.start_task(self.record, attach=stdio, start=False)
        return TaskHandle(self.client, self.record, spawned)

    def task(self) -> TaskHandle:
        """task is a handle on the container's existing task."""
        return TaskHandle(self.client, self.record, None)

    def delete(self) -> None:
        """delete removes the container, its snapshot and files; its task must have stopped."""
        self.client.remove_container(self.id)


class TaskHandle:
    """TaskHandle is a container's task (containerd's Task)."""

    def __init__(self, client: Client, record: Container, spawned: Spawned | None) -> None:
        self.client = client
        self.record = record
        self.spawned = spawned

    @property
    def pid(self) -> int:
        task = self.client.tasks.load(self.record.id)
        return task.pid if task else 0

    def status(self) -> str:
        """status is created, running, paused or stopped."""
        status = self.client.tasks.status(self.record.id)
        return status.value if status else "created"

    def start(self) -> None:
        self.client.tasks.start_created(self.record)

    def pause(self) -> None:
        self.client.tasks.pause(self.record)

    def resume(self) -> None:
        self.client.tasks.resume(self.record)

    def kill(self, sig: int) -> None:
        self.client.tasks.kill(self.record, sig)

    def pids(self) -> list[int]:
        return self.client.tasks.pids(self.record)

    def wait(self, timeout: float | None = None) -> Any:
        """wait returns the ExitStatus once the task has stopped."""
        return self.client.tasks.wait(self.record.id, timeout)

    def delete(self) -> Any:
        """delete removes a stopped task's records and releases its rootfs; returns its exit."""
        status = self.wait(0)
        if self.spawned is not None:
            self.spawned.close()
        self.client.tasks.forget(self.record.id)
        return status


def _listdir(path: Path) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []
