"""The Python API under the CLI, after containerd's Go client.

    client = ctl.Client(root="/var/lib/ctl", namespace="default")
    image = client.pull("busybox")
    for image in client.list_images(): ...

Each call is a short operation over the state on disk; there is no daemon.
Stores are built lazily, so a call touches only what it uses. The client is
a facade: a container's creation, start and removal are ordered in
``ctl.containers.lifecycle``, image resolution and the rmi policy live in
``ctl.images.resolve``, and commands call only the client.
"""

from __future__ import annotations

import contextlib
import os
from functools import cached_property

from ctl import fsutil
from ctl.errdefs import (
    AlreadyExists,
    CtlError,
    DataCorrupted,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from ctl.paths import DEFAULT_NAMESPACE, DEFAULT_ROOT, Paths

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence
    from pathlib import Path
    from typing import Any, BinaryIO

    from ctl.containers.changes import Change
    from ctl.containers.container import Container, RestartPolicy
    from ctl.containers.create import ContainerOptions
    from ctl.containers.filter import ContainerFilter
    from ctl.containers.store import LocalContainerStore
    from ctl.content.local import LocalStore
    from ctl.gc import Collected
    from ctl.images.image import Image
    from ctl.images.resolve import Removal
    from ctl.images.store import LocalImageStore
    from ctl.images.summary import ImageSummary
    from ctl.network import Attachment, NetworkInfo
    from ctl.network.manager import NetworkManager
    from ctl.network.networks import CreateRequest
    from ctl.oci import Descriptor, Platform
    from ctl.progress import Progress
    from ctl.reference import Reference
    from ctl.remotes.auth import CredentialStore
    from ctl.remotes.registry import Registry
    from ctl.runtime.resources import Resources
    from ctl.runtime.runc import Stdio
    from ctl.runtime.state import ExitStatus, TaskState
    from ctl.runtime.supervisor import Spawned
    from ctl.runtime.supervisor.attach import Attached
    from ctl.snapshots.namespaced import NamespacedSnapshotter
    from ctl.system import Finding
    from ctl.tasks import TaskService
    from ctl.volumes import Volume
    from ctl.volumes.local import LocalVolumeStore

# A pull waits this long for a running prune to finish, and a prune for pulls.
GC_LOCK_TIMEOUT = 600.0
DOCKER_CERTS_DIR = "/etc/docker/certs.d"
# Seconds stop waits before SIGKILL, unless -t or the container's --stop-timeout says.
DEFAULT_STOP_TIMEOUT = 10.0


class Client:
    """Client is one namespace of one ctl root."""

    def __init__(
        self,
        root: str | os.PathLike[str] = DEFAULT_ROOT,
        namespace: str = DEFAULT_NAMESPACE,
        snapshotter: str | None = None,
        debug: bool = False,
    ) -> None:
        self.paths = Paths(os.path.abspath(root))
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
            self.paths.lock("images", self.namespace),
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

    def lease(self) -> fsutil.FileLock:
        """lease protects content being written from a concurrent prune.

        Every writer holds the GC lock shared; prune takes it exclusively, so
        it never sweeps a blob whose image record is not written yet. The
        kernel drops the lock when its holder dies, so a killed pull leaves
        no lease behind.
        """
        return fsutil.FileLock(
            self.paths.lock("gc"), shared=True, timeout=GC_LOCK_TIMEOUT, what="gc"
        )

    # Images.

    def registry(
        self, ref: Reference, insecure: bool = False, credentials: CredentialStore | None = None
    ) -> Registry:
        from ctl.remotes.registry import Registry

        return Registry(
            ref.domain,
            insecure=insecure,
            certs_dirs=(self.paths.certs, DOCKER_CERTS_DIR),
            credentials=credentials,
        )

    def login(self, server: str, username: str, password: str, insecure: bool = False) -> str:
        """login checks the credentials against ``server``, then stores them; it says where."""
        from ctl.reference import Reference, validate_domain
        from ctl.remotes.auth import Credentials, CredentialStore, GivenCredentials

        domain = validate_domain(registry_domain(server))
        creds = Credentials(username=username, password=password)
        # Any repository will do: only the domain is asked.
        ref = Reference(domain=domain, path="library/login", tag="latest")
        with self.registry(ref, insecure, GivenCredentials(creds)) as registry:
            registry.check_login()
        return CredentialStore().store(domain, creds)

    def logout(self, server: str) -> bool:
        """logout forgets the credentials for ``server``; False if there were none."""
        from ctl.remotes.auth import CredentialStore

        return CredentialStore().erase(registry_domain(server))

    def fetch(
        self,
        ref: str,
        *,
        platform: Platform | None = None,
        insecure: bool = False,
        progress: Progress | None = None,
    ) -> tuple[Reference, Descriptor]:
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
        """pull fetches an image, records it under its normalised name and unpacks it.

        An index is recorded with the platform chosen from it (LABEL_PLATFORM),
        which is the one the name then stands for.
        """
        from concurrent.futures import ThreadPoolExecutor

        from ctl.images import manifests
        from ctl.images.image import LABEL_PLATFORM
        from ctl.reference import host_platform

        with self.lease(), ThreadPoolExecutor(1) as background:
            # A root's first unpack checks with a real mount that overlayfs works there
            # (ctl.snapshots.overlay.supported), some milliseconds: done while the registry
            # answers. Leaving the block waits for it, whatever happened meanwhile. The root is
            # made first, here: both threads would write its version file.
            self.paths.ensure()
            snapshotter = background.submit(lambda: self.snapshotter) if unpack else None
            parsed, target = self.fetch(
                ref, platform=platform, insecure=insecure, progress=progress
            )
            labels = {}
            if manifests.is_index(target):
                labels[LABEL_PLATFORM] = str(platform or host_platform())
            image = self._put_image(str(parsed), target, labels)
            if snapshotter is not None:
                snapshotter.result()
                self.unpack(image, platform, progress)
        self.emit("image", "pull", image.name, name=image.name)
        return image

    def unpack(
        self, image: Image, platform: Platform | None = None, progress: Progress | None = None
    ) -> str:
        """unpack applies the image's layers as snapshots; returns the top chain ID."""
        from ctl.images import manifests
        from ctl.images.unpack import unpack

        manifest = manifests.image_manifest(self.content, image, platform)
        with self.lease():
            return unpack(self.content, self.snapshotter, manifest, progress)

    def _put_image(self, name: str, target: Descriptor, labels: dict[str, str]) -> Image:
        """_put_image names ``target``; ``labels`` says the platform it stands for, or not."""
        from ctl.images.image import LABEL_PLATFORM, Image

        image = Image(name=name, target=target, labels=labels)
        try:
            return self.images.create(image)
        except AlreadyExists:
            return self.images.update(image, ["target", f"labels.{LABEL_PLATFORM}"])

    def push(
        self, ref: str, *, insecure: bool = False, progress: Progress | None = None
    ) -> Descriptor:
        """push uploads an image's content and manifest to its registry; returns what it pushed."""
        from ctl.images.push import push_image
        from ctl.progress import NoProgress
        from ctl.reference import parse

        parsed = parse(ref)
        image = self.get_image(ref)
        pushed = push_image(
            self.content,
            self.registry(parsed, insecure),
            parsed,
            image,
            progress or NoProgress(),
        )
        self.emit("image", "push", str(parsed), name=str(parsed))
        return pushed

    def repository_tags(self, repository: str, insecure: bool = False) -> list[str]:
        """repository_tags are the tags the registry of ``repository`` lists for it (pull -a)."""
        from ctl.reference import parse

        parsed = parse(repository)
        with self.registry(parsed, insecure) as registry:
            return registry.list_tags(parsed.path)

    def local_tags(self, repository: str) -> list[str]:
        """local_tags are the names of local images in the repository ``repository`` (push -a)."""
        from ctl.reference import parse

        want = parse(repository)
        names = []
        for image in self.list_images():
            if image.name.startswith("sha256:"):
                continue
            have = parse(image.name)
            if (have.domain, have.path) == (want.domain, want.path) and have.tag:
                names.append(image.name)
        return names

    def get_image(self, ref: str) -> Image:
        """get_image finds an image by name, by short name, or by a unique ID prefix."""
        from ctl.images.resolve import get_image

        return get_image(self.images, self.content, ref)

    def ensure_image(
        self,
        ref: str,
        policy: str = "missing",
        platform: Platform | None = None,
        progress: Progress | None = None,
    ) -> Image:
        """ensure_image finds ``ref`` locally or pulls it, as ``--pull`` says."""
        from ctl.images.resolve import ensure_image

        return ensure_image(
            self.images,
            self.content,
            ref,
            policy,
            lambda name: self.pull(name, platform=platform, progress=progress),
        )

    def image_names(self, ref: str) -> set[str]:
        """image_names are every name of the image ``ref`` names; none if there is no such image."""
        try:
            image = self.get_image(ref)
        except NotFound:
            return set()
        return {i.name for i in self.images.list() if i.target.digest == image.target.digest}

    def container_size(self, container: Container) -> tuple[int, int]:
        """container_size is the bytes of the container's writable layer, and of its image."""
        from ctl.errdefs import CtlError

        try:
            own = self.snapshotter.usage(container.snapshot_key).size
        except CtlError:
            own = 0
        try:
            image = self.summarize(self.get_image(container.image)).size
        except CtlError:
            image = 0
        return own, image

    def container_filter(self, values: list[str], containers: list[Container]) -> ContainerFilter:
        """container_filter is ``ps --filter``'s test, over ``containers`` (every one)."""
        from ctl.containers.filter import ContainerFilter

        return ContainerFilter(values, containers, self.image_names)

    def list_images(self) -> list[Image]:
        return sorted(self.images.list(), key=lambda i: i.name)

    def summarize(self, image: Image) -> ImageSummary:
        """summarize reads what listings show of an image: ID, created, size, platform."""
        from ctl.images.summary import summarize

        return summarize(self.content, image)

    def tag(self, source: str, target: str) -> Image:
        """tag makes ``target`` name the same content as ``source``."""
        from ctl.images.image import LABEL_PLATFORM
        from ctl.reference import parse

        image = self.get_image(source)
        name = str(parse(target))
        platform = {k: v for k, v in image.labels.items() if k == LABEL_PLATFORM}
        tagged = self._put_image(name, image.target, platform)
        self.emit("image", "tag", image.target.digest, name=name)
        return tagged

    def remove_image(self, ref: str, *, force: bool = False) -> Removal:
        """remove_image deletes image records; returns the names removed and the ID deleted.

        A reference by ID that several names share needs ``force``, and so
        does the last name of an image a container was created from. The
        content stays until ``prune`` collects what nothing references.
        """
        from ctl.images.resolve import remove_image

        removal = remove_image(self.images, self.content, self.containers.list, ref, force=force)
        for name in removal.untagged:
            self.emit("image", "untag", name, name=name)
        if removal.deleted:
            self.emit("image", "delete", removal.deleted, name=ref)
        return removal

    def prune_images(
        self,
        *,
        unused: bool = False,
        until: float | None = None,
        labels: list[str] | None = None,
    ) -> tuple[list[tuple[str, str]], int]:
        """prune_images removes dangling image records (``unused``: every one no container uses).

        ``until`` keeps images created after it; ``labels`` (as
        ``prune_containers`` takes them) keep those whose config does not
        match. The content goes in a collection after. Returns each removed
        name with its image ID, and the bytes reclaimed.
        """
        from ctl.images.resolve import user_of
        from ctl.timefmt import parse_rfc3339

        containers = list(self.containers.list())
        named = self.list_images()
        removed = []
        for image in named:
            dangling = image.name.startswith("sha256:")
            if not (dangling or unused):
                continue
            if user_of(named, containers, image):
                continue
            summary = self.summarize(image)
            created = parse_rfc3339(summary.created)
            if until is not None and (created is None or created >= until):
                continue
            image_labels = (summary.config.get("config") or {}).get("Labels") or {}
            if labels and not _labels_match(image_labels, labels):
                continue
            with contextlib.suppress(NotFound):
                self.images.delete(image.name)
                removed.append((image.name, summary.id))
        reclaimed = self.prune().reclaimed if removed else 0
        return removed, reclaimed

    def save(self, refs: list[str], out: BinaryIO) -> None:
        """save writes the images as one OCI archive (with docker's manifest.json)."""
        from ctl.images.archive import export_archive

        images = [self.get_image(ref) for ref in refs]
        export_archive(self.content, images, out)
        for image in images:
            self.emit("image", "save", image.name, name=image.name)

    def load(self, source: BinaryIO, platform: Platform | None = None) -> list[Image]:
        """load reads an OCI layout tar or a docker save tar, verifying every blob.

        With ``platform`` each name stands for that platform of its index (as
        ``pull --platform`` records it), which the archive must hold.
        """
        from ctl.images import manifests
        from ctl.images.archive import import_archive
        from ctl.images.image import LABEL_PLATFORM, Image
        from ctl.reference import platform_matches

        with self.lease():
            loaded = import_archive(self.content, source)
            labels = {LABEL_PLATFORM: str(platform)} if platform else {}
            for name, target in loaded:
                if platform is not None:
                    # NotFound, naming the platform, before any name changes.
                    manifest = manifests.image_manifest(self.content, Image(name, target), platform)
                    config = manifests.read_config(self.content, manifest)
                    have = manifests.config_platform(config)
                    if not platform_matches(platform, have):
                        raise NotFound(f"load: {name} in the archive is {have}, not {platform}")
            images = [
                self._put_image(name, target, labels if manifests.is_index(target) else {})
                for name, target in loaded
            ]
        for image in images:
            self.emit("image", "load", image.name, name=image.name)
        return images

    # Containers and tasks.

    @cached_property
    def containers(self) -> LocalContainerStore:
        from ctl.containers.store import LocalContainerStore

        self.paths.ensure()
        return LocalContainerStore(
            self.paths.containers(self.namespace),
            self.paths.lock("containers", self.namespace),
        )

    @cached_property
    def networks(self) -> NetworkManager:
        from ctl.network.manager import NetworkManager

        self.paths.ensure()

        def container_name(namespace: str, container_id: str) -> str:
            return Client(self.paths.root, namespace).containers.get(container_id).name

        return NetworkManager(self.paths, self.namespace, container_name)

    @cached_property
    def tasks(self) -> TaskService:
        from ctl.runtime.runc import Runc
        from ctl.tasks import TaskService

        return TaskService(
            self.paths,
            self.namespace,
            Runc(self.paths.runc(self.namespace), debug=self.debug),
            self.snapshotter,
            self.networks,
            lambda container_id: self.containers.get(container_id).config,
        )

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
        from ctl.containers import lifecycle

        container = lifecycle.create(self, image_ref, options, progress, snapshot)
        self.emit_container(container, "create")
        return container

    def get_container(self, ref: str) -> Container:
        return self.containers.get(ref)

    def list_containers(self) -> list[Container]:
        return sorted(self.containers.list(), key=lambda c: c.created_at, reverse=True)

    def start_task(
        self, container: Container, attach: Stdio | None = None, start: bool = True
    ) -> Spawned:
        """start_task runs the container's task; a ``--rm`` container goes when it exits.

        A ``--rm`` container whose task fails to start is removed at once.
        """
        from ctl.containers import lifecycle

        spawned = lifecycle.start(self, container, attach, start)
        self.emit_container(container, "start")
        return spawned

    def remove_container(
        self, ref: str, force: bool = False, volumes: bool = False
    ) -> Container | None:
        """remove_container deletes the task, snapshot, files and record of a container.

        ``volumes`` removes its anonymous volumes too (``rm -v``). A
        container whose record is damaged is removed all the same
        (``lifecycle.remove_unreadable``); None is returned for it.
        """
        from ctl.containers import lifecycle

        try:
            container = self.containers.get(ref)
        except DataCorrupted:
            container_id = self.containers.resolve(ref)
            lifecycle.remove_unreadable(self, container_id, force)
            self.emit("container", "destroy", container_id)
            return None
        lifecycle.remove(self, container, force, volumes)
        self.emit_container(container, "destroy")
        return container

    def rename(self, ref: str, new_name: str) -> Container:
        """rename gives the container ``new_name``; the old name is free at the same moment."""
        container = self.containers.get(ref)
        if container.name == new_name:
            raise InvalidArgument(
                f"container {ref!r}: renaming a container with the same name as its current name"
            )
        renamed = self.containers.update(container._replace(name=new_name), ["name"])
        self.emit_container(renamed, "rename", oldName=container.name)
        return renamed

    def stop_container(
        self, ref: str, timeout: float | None = None, sig: int | None = None
    ) -> Container:
        """stop_container sends ``sig`` (default: --stop-signal, the image's, SIGTERM), then
        SIGKILL after ``timeout`` seconds (default: --stop-timeout, else 10; -1: never)."""
        from ctl.runtime.spec import stop_signal

        container = self.containers.get(ref)
        if timeout is None:
            timeout = container.config.stop_timeout
        seconds = DEFAULT_STOP_TIMEOUT if timeout is None else timeout
        if sig is None:
            sig = stop_signal(container.spec)
        self.tasks.stop(container, seconds if seconds >= 0 else float("inf"), sig)
        self.emit_container(container, "stop")
        return container

    def restart_container(
        self, ref: str, timeout: float | None = None, sig: int | None = None
    ) -> Container:
        """restart_container stops the container if it runs, then starts it (docker's restart)."""
        if self.containers.get(ref).config.rm:
            # Its supervisor removes it as soon as it stops.
            raise FailedPrecondition(
                f"container {ref!r} was run with --rm: stopping it removes it, so it cannot restart"
            )
        container = self.stop_container(ref, timeout, sig)
        with self.start_task(container):
            pass
        return container

    def update_container(
        self, ref: str, resources: Resources, restart: RestartPolicy | None = None
    ) -> Container:
        """update_container changes a container's limits and restart policy (docker's update).

        A live task takes the new limits at once (``Task.update``); the record
        keeps them, and ``restart``, for every later start.
        """
        container = self.containers.get(ref)
        if restart is not None and container.config.rm and restart.name != "no":
            raise InvalidArgument(
                f"container {container.name}: its restart policy cannot be updated "
                "because it was run with --rm"
            )
        config = container.config if restart is None else container.config._replace(restart=restart)

        def save(updated: Container) -> None:
            self.containers.update(updated._replace(config=config), ["spec", "config"])

        updated = self.tasks.update(container, resources, save, restart)
        self.emit("container", "update", container.id, name=container.name)
        return updated._replace(config=config)

    def attach(self, ref: str, stdin: bool = True) -> tuple[Container, Attached]:
        """attach connects to a running container's stdio (``Task.attach``); a tty gets
        the size of this process's terminal."""
        container = self.containers.get(ref)
        attached = self.tasks.attach(container, stdin, size_of=0)
        self.emit("container", "attach", container.id, name=container.name)
        return container, attached

    # Tasks, by container reference, as containerd's Task has them.

    def task_state(self, container: Container) -> TaskState | None:
        """task_state is the container's task as its records show it; None before any start."""
        # The task directory alone: ``ps`` calls this for every container, and the
        # TaskService would load runc, the snapshotter and the networks it never uses.
        from ctl.runtime.taskdir import TaskDir

        return TaskDir(self.paths.task_dir(self.namespace, container.id)).load()

    def kill(self, ref: str, sig: int) -> Container:
        """kill signals the container's init; a fatal signal also cancels restarts."""
        container = self.containers.get(ref)
        self.tasks.kill(container, sig)
        self.emit_container(container, "kill", signal=str(sig))
        return container

    def pause(self, ref: str) -> Container:
        container = self.containers.get(ref)
        self.tasks.pause(container)
        self.emit_container(container, "pause")
        return container

    def resume(self, ref: str) -> Container:
        container = self.containers.get(ref)
        self.tasks.resume(container)
        self.emit_container(container, "unpause")
        return container

    def wait(self, ref: str, timeout: float | None = None) -> ExitStatus:
        """wait blocks until the container's task has stopped and returns how it exited.

        A container never started has met docker's default condition (not
        running) already: it exits 0 at once, as docker's does.
        """
        from ctl.runtime.state import ExitStatus

        container = self.containers.get(ref)
        try:
            return self.tasks.wait(container.id, timeout)
        except NotFound:
            # No task: never started (docker's condition, not running, is met), or
            # removed since the lookup, after a run its die event tells of.
            return self.tasks.logged_exit(container.id) or ExitStatus(0)

    def pids(self, ref: str) -> list[int]:
        """pids are the processes of the container's running task."""
        return self.tasks.pids(self.containers.get(ref))

    def metrics(self, ref: str) -> dict[str, Any]:
        """metrics are the counters of the container's running task (``ctl.runtime.stats``)."""
        return self.tasks.metrics(self.containers.get(ref))

    def stats(
        self, refs: list[str], all: bool = False
    ) -> list[tuple[Container, TaskState | None, dict[str, Any] | None]]:
        """stats samples the named containers, or the running ones (``all``: every one).

        A container that is not running, or stops while it is read, has no sample.
        """
        from ctl.runtime.state import is_live

        chosen = [self.containers.get(ref) for ref in refs] or self.list_containers()
        samples = []
        for container in chosen:
            task = self.task_state(container)
            running = is_live(task)
            if not (running or all or refs):
                continue
            data = None
            if running:
                try:
                    data = self.tasks.metrics(container)
                except (FailedPrecondition, NotFound):
                    data = None
            samples.append((container, task, data))
        return samples

    def exec(
        self,
        ref: str,
        args: list[str],
        *,
        tty: bool = False,
        detach: bool = False,
        env: list[str] | None = None,
        workdir: str | None = None,
        user: str | None = None,
        stdio: Stdio | None = None,
        privileged: bool = False,
    ) -> int:
        """exec runs ``args`` in the running container; returns its exit code.

        ``privileged`` is docker's exec --privileged: the process gets every
        capability ctl holds and no AppArmor profile; the container is unchanged.
        """
        from ctl.runtime.runc import Stdio
        from ctl.runtime.state import Status

        container = self.containers.get(ref)
        if privileged:
            from ctl.runtime.spec import host_capabilities

            every = list(host_capabilities())
            process = dict(container.spec.get("process", {}))
            process["capabilities"] = {k: every for k in ("bounding", "effective", "permitted")}
            process.pop("apparmorProfile", None)
            container = container.updated(spec={**container.spec, "process": process})
        task = self.tasks.load(container.id)
        if task is not None and task.status is Status.RUNNING:
            process = container.spec.get("process", {})
            self.check_runnable(
                container,
                {
                    "args": args,
                    "env": [*process.get("env", []), *(env or [])],
                    "cwd": workdir or process.get("cwd", "/"),
                },
                f"/proc/{task.pid}/root",
            )
            import shlex

            self.emit_container(container, f"exec_start: {shlex.join(args)}")
        code = self.tasks.exec(
            container,
            args,
            tty=tty,
            detach=detach,
            env=env or [],
            workdir=workdir,
            user=user,
            stdio=stdio or Stdio(),
        )
        if not detach:
            self.emit_container(container, "exec_die", exitCode=str(code))
        return code

    def check_runnable(
        self,
        container: Container,
        process: dict[str, Any] | None = None,
        root: Path | str | None = None,
    ) -> None:
        """check_runnable refuses a program of another architecture than this host's.

        It raises ForeignExecutable (exit code 126) naming the image's platform
        and the host's. ``process`` is a spec's (default: the container's own),
        ``root`` the container's root filesystem (default: its mounted rootfs).
        A rootfs not mounted yet (a stopped container's: the start mounts it)
        is not checked; runc then reports its ``exec format error`` as it comes.
        """
        from ctl.runtime.binfmt import ForeignExecutable, foreign_architecture
        from ctl.snapshots.mount import is_mount_point

        if root is None:
            root = self.tasks.task_dir(container.id).rootfs
            if not is_mount_point(root):
                return
        process = process or container.spec.get("process", {})
        architecture = foreign_architecture(
            root, process.get("args", []), process.get("env", []), process.get("cwd", "/")
        )
        if architecture is None:
            return
        from ctl.reference import host_platform

        host = str(host_platform())
        platform = f"linux/{architecture}"
        with contextlib.suppress(CtlError):
            # The image's own word, unless it claims the host's (mislabelled,
            # or an unlabelled index that stands for the host's platform).
            claimed = self.summarize(self.images.get(container.image)).platform
            platform = claimed if claimed not in ("", host) else platform
        raise ForeignExecutable(f"{container.name}: image is {platform}, this host is {host}")

    def logs(
        self, ref: str, *, follow: bool = False, tail: int | None = None
    ) -> Iterator[tuple[str, str, str, int]]:
        """logs yields (stream, text, time, skipped) from the container's json-file log.

        ``skipped`` is how many records right before this one were rotated
        away before they could be read (a follower slower than the writer).
        """
        return self.tasks.logs(self.containers.get(ref), follow=follow, tail=tail)

    def log_path(self, container: Container) -> Path:
        return self.tasks.task_dir(container.id).log

    # Copying files in and out, and a container's changes.

    def copy_from_container(
        self,
        ref: str,
        path: str,
        dest: str | BinaryIO,
        *,
        follow: bool = False,
        archive: bool = False,
    ) -> None:
        """copy_from_container copies ``path`` of a container to the host path ``dest``.

        ``dest`` may be a file object instead, which gets a tar of ``path``.
        ``follow`` follows a symlink ``path``; ``archive`` keeps uid and gid.
        The rules are docker's (see ctl.containers.copy).
        """
        from ctl.containers import copy

        container = self.containers.get(ref)
        with copy.container_side(self, container) as side:
            if isinstance(dest, str):
                with copy.host_side() as host:
                    copy.copy(side, path, host, _host_path(dest), follow=follow, archive=archive)
            else:
                copy.copy_to_tar(side, path, dest, follow=follow)

    def copy_to_container(
        self,
        source: str | BinaryIO,
        ref: str,
        path: str,
        *,
        follow: bool = False,
        archive: bool = False,
    ) -> None:
        """copy_to_container copies the host path ``source`` to ``path`` in a container.

        ``source`` may be a file object instead: a tar extracted into the
        directory ``path``. A running container's cooperation is not needed.
        """
        from ctl.containers import copy

        container = self.containers.get(ref)
        if isinstance(source, str):
            with copy.host_side() as host, copy.container_side(self, container) as side:
                copy.copy(host, _host_path(source), side, path, follow=follow, archive=archive)
        else:
            with copy.container_side(self, container) as side:
                copy.copy_from_tar(source, side, path, archive=archive)

    def diff(self, ref: str) -> list[Change]:
        """diff lists the container's changes to its image: docker's A, C and D lines."""
        from ctl.containers.changes import container_changes

        with container_changes(self, self.containers.get(ref)) as (found, _):
            return found

    def export(self, ref: str, out: BinaryIO) -> None:
        """export writes the container's root filesystem, without its mounts, as a tar."""
        from ctl.containers import changes, copy

        with copy.container_side(self, self.containers.get(ref)) as side:
            changes.export(side, out)

    def commit(
        self,
        ref: str,
        name: str | None = None,
        *,
        author: str = "",
        message: str = "",
        changes: list[str] | None = None,
        pause: bool = True,
    ) -> str:
        """commit makes an image of the container's changes (ctl.images.commit); returns its ID.

        ``changes`` are Dockerfile instructions for the new config; ``pause``
        freezes a running container while its changes are read.
        """
        from ctl.images.commit import commit

        image_id = commit(
            self, ref, name, author=author, message=message, changes=changes, pause=pause
        )
        self.emit_container(self.containers.get(ref), "commit", comment=message)
        return image_id

    def import_image(
        self,
        source: BinaryIO,
        name: str | None = None,
        *,
        message: str = "",
        changes: list[str] | None = None,
        platform: str | None = None,
        origin: str = "-",
    ) -> str:
        """import_image makes a one-layer image of a filesystem tar; returns its ID.

        ``origin`` names where the tar came from, for the history's comment.
        """
        from ctl.images.commit import import_image

        image_id = import_image(
            self,
            source,
            name,
            message=message,
            changes=changes,
            platform=platform,
            origin=origin,
        )
        self.emit("image", "import", image_id, name=name or image_id)
        return image_id

    def prune_containers(
        self, until: float | None = None, labels: list[str] | None = None
    ) -> list[tuple[str, int]]:
        """prune_containers removes the containers not running; returns their IDs and sizes.

        ``until`` keeps those created after it; ``labels`` (``k``, ``k=v``,
        and ``!k=v`` for docker's ``label!=``) keep those that do not match.
        The size is what the container's snapshot held by itself.
        """
        from ctl.runtime.state import Status

        removed = []
        for container in self.list_containers():
            if until is not None and container.created_at >= until:
                continue
            if labels and not _labels_match(container.labels, labels):
                continue
            if self.tasks.status(container.id) in (Status.RUNNING, Status.PAUSED):
                continue
            size = 0
            with contextlib.suppress(CtlError, OSError):
                size = self.snapshotter.usage(container.snapshot_key).size
            with contextlib.suppress(NotFound, FailedPrecondition):
                self.remove_container(container.id)
                removed.append((container.id, size))
        return removed

    # Networks.

    def default_network(self) -> tuple[str, NotFound | None]:
        """default_network is bridge, or none on a server without the CNI plugins, and why.

        SPEC §8 promises ctl runs where only Python 3 and runc are installed; a
        container without a network beats one that cannot start. Asked for by
        name, bridge still fails with the plugins' install hint.
        """
        from ctl.network.cni import CNI

        try:
            CNI().find("bridge")
        except NotFound as err:
            return "none", err
        return "bridge", None

    def list_networks(self) -> list[NetworkInfo]:
        return self.networks.list_networks()

    def inspect_network(self, name: str) -> dict[str, object]:
        return self.networks.inspect(name)

    def create_network(
        self,
        name: str,
        *,
        subnet: str | None = None,
        gateway: str | None = None,
        request: CreateRequest | None = None,
    ) -> NetworkInfo:
        """create_network makes a bridge network; without ``subnet``, a free private /16.

        ``request`` holds ``network create``'s other flags (``--ipv6``,
        ``--internal``, ``--label``, ``--opt``, ``--ip-range``, ...).
        """
        info = self.networks.networks.create(name, subnet, gateway, request)
        self.emit("network", "create", info.id, name=info.name, driver=info.driver)
        return info

    def remove_network(self, name: str) -> None:
        info = self.networks.get(name)
        self.networks.remove(name)
        self.emit("network", "destroy", info.id, name=info.name, driver=info.driver)

    def network_attachment(self, container: Container) -> Attachment | None:
        """network_attachment is the container's place on its network while its task runs."""
        return self.networks.attachment(container.id)

    # Volumes: shared by every namespace of the root, as networks are (ctl.volumes).

    @cached_property
    def volumes(self) -> LocalVolumeStore:
        from ctl.volumes.local import LocalVolumeStore

        return LocalVolumeStore(
            self.paths, lambda name: self.volume_users(strict=True).get(name, [])
        )

    def volume_users(self, strict: bool = False) -> dict[str, list[str]]:
        """volume_users maps each volume some container mounts to those containers' names.

        Containers of other namespaces are named ``<namespace>/<name>``. A
        damaged container record is skipped with a warning; with ``strict``
        (before a volume is removed) it raises FailedPrecondition instead:
        that container may use any volume.
        """
        users: dict[str, list[str]] = {}
        damaged: list[DataCorrupted] = []
        for namespace in self.list_namespaces():
            client = self if namespace == self.namespace else Client(self.paths.root, namespace)
            for container in client.containers.list(damaged.append if strict else None):
                name = container.name if client is self else f"{namespace}/{container.name}"
                for mount in container.config.mounts:
                    if mount.type == "volume" and name not in users.setdefault(mount.source, []):
                        users[mount.source].append(name)
        if damaged:
            raise FailedPrecondition(
                f"{damaged[0]}: it may use the volume", hint="see 'ctl system check --repair'"
            )
        return users

    def create_volume(
        self,
        name: str | None = None,
        *,
        driver: str = "local",
        options: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
    ) -> Volume:
        """create_volume makes a volume; a name taken already is that volume, as in docker."""
        try:
            volume = self.volumes.create(name, driver=driver, options=options, labels=labels)
        except AlreadyExists:
            assert name is not None
            return self.volumes.get(name)
        self.emit("volume", "create", volume.name, driver=volume.driver)
        return volume

    def list_volumes(self) -> list[Volume]:
        return list(self.volumes.list())

    def remove_volume(self, name: str, force: bool = False) -> Volume | None:
        """remove_volume removes a volume no container uses; ``force`` allows a missing one."""
        try:
            removed = self.volumes.remove(name)
        except NotFound:
            if force:
                return None
            raise
        self.emit("volume", "destroy", name, driver="local")
        return removed

    def prune_volumes(
        self, *, all_volumes: bool = False, filters: dict[str, list[str]] | None = None
    ) -> tuple[list[str], int]:
        """prune_volumes removes unused volumes: anonymous ones, or with ``all_volumes``
        every one; ``filters`` are ``volume prune --filter``'s. It returns the names
        removed and the bytes reclaimed."""
        from ctl.volumes.filters import matches

        users = self.volume_users()
        removed: list[str] = []
        reclaimed = 0
        for volume in self.list_volumes():
            if volume.name in users or not (all_volumes or volume.anonymous):
                continue
            if not matches(volume, filters or {}, in_use=False):
                continue
            size = self.volumes.usage(volume.name)
            with contextlib.suppress(NotFound, FailedPrecondition):  # used or gone meanwhile
                self.volumes.remove(volume.name)
                removed.append(volume.name)
                reclaimed += size
                self.emit("volume", "destroy", volume.name, driver=volume.driver)
        return removed, reclaimed

    def network_attachments(self, container: Container) -> list[Attachment]:
        """network_attachments are the container's places on every network while its task runs.

        The network it started on comes first, then those of ``network connect``.
        """
        from ctl.network.connect import attachments

        return attachments(self.networks, container.id)

    def connect_network(
        self,
        network: str,
        ref: str,
        *,
        aliases: Sequence[str] = (),
        ip: str | None = None,
        ip6: str | None = None,
    ) -> Attachment | None:
        """connect_network puts the container ``ref`` on one more network and keeps it there:
        live if it runs (the attachment is returned), and at every start after."""
        from ctl.containers import lifecycle

        container_id = self.containers.resolve(ref)
        info = self.networks.get(network)
        attachment = lifecycle.connect_network(self, container_id, info.name, aliases, ip, ip6)
        self.emit("network", "connect", info.id, name=info.name, container=container_id)
        return attachment

    def disconnect_network(self, network: str, ref: str, *, force: bool = False) -> None:
        """disconnect_network takes the container ``ref`` off a network it was connected to."""
        from ctl.containers import lifecycle

        container_id = self.containers.resolve(ref)
        info = self.networks.get(network)
        lifecycle.disconnect_network(self, container_id, info.name, force)
        self.emit("network", "disconnect", info.id, name=info.name, container=container_id)

    def prune_networks(self, keep: Callable[[NetworkInfo], bool] | None = None) -> list[str]:
        """prune_networks removes the user networks no container is on; returns their names.

        ``keep`` spares a network (``network prune --filter``).
        """
        from ctl.network import config, connect

        removed = []
        used = connect.networks_in_use(self.networks)
        for info in self.networks.list_networks():
            if info.name == config.DEFAULT_NETWORK or info.name in used:
                continue
            if keep is not None and keep(info):
                continue
            try:
                self.remove_network(info.name)
            except FailedPrecondition:
                continue  # a container came meanwhile
            removed.append(info.name)
        return removed

    # The root as a whole: these cover every namespace (ctl.gc, ctl.system).

    def prune(self, *, unused_images: bool = False, volumes: bool = False) -> Collected:
        """prune removes what nothing references; with ``unused_images`` first the image
        records no container uses, with ``volumes`` the anonymous volumes none uses.
        It fails closed (see ``ctl.gc.collect``)."""
        from ctl.gc import collect

        return collect(self, unused_images=unused_images, volumes=volumes)

    def check(self) -> Iterator[Finding]:
        """check verifies the whole root, a finding per object (see ``ctl.system.check``)."""
        from ctl.system import check

        return check(self)

    def events(self, follow: bool) -> Iterator[dict[str, Any] | None]:
        """events are the logged events of every namespace, oldest first (``ctl.events.stream``)."""
        from ctl import events

        return events.stream(self.paths.events, follow)

    def emit(self, type: str, action: str, actor_id: str, **attributes: str) -> None:
        """emit logs an event of this namespace; it never fails the caller."""
        from ctl import events

        events.emit(self.paths.events, type, action, actor_id, attributes, self.namespace)

    def emit_container(self, container: Container, action: str, **attributes: str) -> None:
        """emit_container logs a container event with docker's attributes: labels, image, name."""
        from ctl import events

        events.container_event(self.paths.events, self.namespace, container, action, **attributes)

    def disk_usage(self) -> list[dict[str, object]]:
        """disk_usage is ``system df``'s rows: images, containers, volumes, content, snapshots."""
        from ctl.system import disk_usage

        return disk_usage(self)

    def boot(self) -> tuple[list[str], list[str]]:
        """boot starts what the restart policies ask for after a reboot (see ``system.boot``)."""
        from ctl.system import boot

        return boot(self)

    def systemd_unit(self, ref: str | None = None) -> str:
        """systemd_unit is a unit that runs container ``ref``, or without it ``system boot``."""
        from ctl.system import boot_unit, systemd_unit

        return boot_unit(self) if ref is None else systemd_unit(self, ref)

    # Namespaces.

    def list_namespaces(self) -> list[str]:
        try:
            return sorted(e for e in os.listdir(self.paths.namespaces) if not e.startswith("."))
        except FileNotFoundError:
            return []

    def create_namespace(self, name: str) -> None:
        path = self.paths.namespace(name)
        self.paths.ensure()
        os.makedirs(self.paths.namespaces, 0o755, exist_ok=True)
        try:
            os.mkdir(path, 0o755)
        except FileExistsError:
            raise AlreadyExists(f"namespace {name!r}: already exists") from None

    def remove_namespace(self, name: str) -> None:
        """remove_namespace removes a namespace that holds nothing, as containerd does."""
        import shutil

        from ctl.records import RecordDir

        path = self.paths.namespace(name)
        if not os.path.isdir(path):
            raise NotFound(f"namespace {name!r}: not found")
        with fsutil.FileLock(self.paths.lock("images", name), what="the image store"):
            for kind, directory in (
                ("images", self.paths.images(name)),
                ("containers", self.paths.containers(name)),
            ):
                # Records only: the containers' name index and ps index are not containers.
                entries = RecordDir(directory).all_keys()
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

    def wait(self, timeout: float | None = None) -> ExitStatus:
        """wait returns the ExitStatus once the task has stopped."""
        return self.client.tasks.wait(self.record.id, timeout)

    def delete(self) -> ExitStatus:
        """delete removes a stopped task's records and releases its rootfs; returns its exit."""
        status = self.wait(0)
        if self.spawned is not None:
            self.spawned.close()
        self.client.tasks.forget(self.record.id)
        return status


def _labels_match(labels: dict[str, str], filters: list[str]) -> bool:
    """_labels_match applies docker's ``label=k``, ``label=k=v`` and ``label!=...`` filters."""
    for spec in filters:
        negate = spec.startswith("!")
        key, eq, value = spec.removeprefix("!").partition("=")
        hit = key in labels and (not eq or labels[key] == value)
        if hit == negate:
            return False
    return True


def _host_path(path: str) -> str:
    """_host_path makes a host path absolute, keeping the trailing "/" or "/." that cp reads."""
    return path if path.startswith("/") else os.path.join(os.getcwd(), path)


def registry_domain(server: str) -> str:
    """registry_domain is the host of a ``login`` server, given as docker takes it (a URL too)."""
    return server.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
