"""Whole-root operations: disk usage, the fsck-like check, boot-time restarts, systemd units."""

from __future__ import annotations

import contextlib
import functools
import os
import shlex
import shutil
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from ctl.errdefs import CtlError, DataCorrupted, NotFound

if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterable, Iterator

    from ctl.client import Client
    from ctl.content import ContentStore
    from ctl.oci import Descriptor
    from ctl.records import UnreadableRecord
    from ctl.snapshots import Info as SnapshotInfo
    from ctl.snapshots import Snapshotter


def _namespaces(client: Client) -> Iterator[Client]:
    from ctl.client import Client as ClientType

    for namespace in client.list_namespaces():
        yield ClientType(client.paths.root, namespace, debug=client.debug)


def disk_usage(client: Client) -> list[dict[str, Any]]:
    """disk_usage is ``system df``: images, containers, volumes, content and snapshots."""
    from ctl.progress import human_size
    from ctl.runtime.state import Status

    images = containers = running = 0
    used_images: set[str] = set()
    for ns in _namespaces(client):
        ns_images = list(ns.images.list())
        images += len(ns_images)
        for container in ns.containers.list():
            containers += 1
            used_images.add(container.image)
            if ns.tasks.status(container.id) in (Status.RUNNING, Status.PAUSED):
                running += 1
    blobs = list(client.content.walk())
    content_size = sum(b.size for b in blobs)
    snapshot_size = 0
    snapshot_count = 0
    with contextlib.suppress(CtlError):
        backend = client.snapshotter.backend
        for info in backend.walk():
            snapshot_count += 1
            with contextlib.suppress(CtlError):
                snapshot_size += backend.usage(info.name).size

    def row(kind: str, total: int, active: int, size: int, reclaimable: str) -> dict[str, Any]:
        return {
            "Type": kind,
            "TotalCount": total,
            "Active": active,
            "Size": human_size(size),
            "Reclaimable": reclaimable,
        }

    volumes, volumes_used, volume_size, volume_unused_size = _volume_usage(client)
    return [
        row("Images", images, len(used_images), content_size, "-"),
        row("Containers", containers, running, 0, "-"),
        row(
            "Local Volumes",
            volumes,
            volumes_used,
            volume_size,
            human_size(volume_unused_size),
        ),
        row("Content", len(blobs), len(blobs), content_size, "-"),
        row("Snapshots", snapshot_count, snapshot_count, snapshot_size, "-"),
    ]


def _volume_usage(client: Client) -> tuple[int, int, int, int]:
    """_volume_usage is the volumes' count, how many are used, their size, the unused ones' size."""
    volumes = volume_usage(client)
    used = [size for _, links, size in volumes if links]
    size = sum(size for _, _, size in volumes)
    return len(volumes), len(used), size, size - sum(used)


def volume_usage(client: Client) -> list[tuple[str, int, int]]:
    """volume_usage is each volume's name, how many containers (of any namespace) mount
    it, and its size in bytes, by name."""
    users = client.volume_users()
    return [
        (volume.name, len(users.get(volume.name, ())), client.volumes.usage(volume.name))
        for volume in client.list_volumes()
    ]


def info(client: Client, runc_version: Callable[[], str]) -> dict[str, Any]:
    """info is ``info``'s document: docker's fields that one host without a daemon has
    (its namespace's containers and images), then ctl's own.

    ``RuncVersion`` (runc runs) and ``Driver`` (the first choice of a snapshotter mounts
    an overlay) are functions, which a template calls only when it names them.
    """
    import platform

    from ctl import __version__
    from ctl.reference import host_platform
    from ctl.runtime.cgroups import is_v2
    from ctl.runtime.state import Status

    tasks = [client.task_state(c) for c in client.list_containers()]
    statuses = [task.status if task is not None else None for task in tasks]
    running = statuses.count(Status.RUNNING)
    paused = statuses.count(Status.PAUSED)
    return {
        "Containers": len(statuses),
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": len(statuses) - running - paused,
        "Images": len(client.list_images()),
        # ctl's snapshotter, as docker's containerd image store shows its own (overlayfs).
        "Driver": lambda: client.snapshotter_name or client.default_snapshotter(),
        "CgroupDriver": "cgroupfs",  # ctl gives runc cgroup paths, not systemd slices
        "CgroupVersion": "2" if is_v2() else "1",
        "KernelVersion": platform.release(),
        "OperatingSystem": _os_release().get("PRETTY_NAME", "Linux"),
        "OSType": "linux",
        "Architecture": os.uname().machine,
        "NCPU": len(os.sched_getaffinity(0)),
        "MemTotal": _mem_total(),
        "Name": os.uname().nodename,
        "DockerRootDir": str(client.paths.root),
        "ServerVersion": __version__,
        "Version": __version__,
        "RuncVersion": runc_version,
        "Root": str(client.paths.root),
        "Namespace": client.namespace,
        "Platform": str(host_platform()),
        "Kernel": platform.release(),
        "Python": platform.python_version(),
    }


def _os_release() -> dict[str, str]:
    """_os_release is /etc/os-release (else /usr/lib/os-release) as a dict, quotes removed."""
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        with contextlib.suppress(OSError, ValueError), open(path, encoding="utf-8") as file:
            pairs = (line.partition("=") for line in file if "=" in line)
            return {k.strip(): "".join(shlex.split(v)) for k, _, v in pairs}
    return {}


def _mem_total() -> int:
    """_mem_total is the host's memory in bytes (/proc/meminfo's MemTotal), 0 if unknown."""
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo", encoding="ascii") as file:
        for line in file:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return 0


def image_usage(client: Client) -> list[dict[str, Any]]:
    """image_usage is ``system df -v``'s images of the client's namespace, one row a name.

    SharedSize is the bytes of the layers the image shares with another image
    (another ID), UniqueSize the rest; Containers counts the containers made
    from that name.
    """
    from collections import Counter

    from ctl.progress import human_size
    from ctl.reference import parse
    from ctl.timefmt import ago, parse_rfc3339

    summaries = [client.summarize(image) for image in client.list_images()]
    layers_of = {
        s.id: {layer.digest: layer.size for layer in (s.manifest.layers if s.manifest else ())}
        for s in summaries
    }
    images_with = Counter(digest for layers in layers_of.values() for digest in layers)
    containers = Counter(container.image for container in client.list_containers())
    rows = []
    for summary in summaries:
        shared = sum(size for d, size in layers_of[summary.id].items() if images_with[d] > 1)
        name = summary.image.name
        repo, tag = "<none>", "<none>"
        if not name.startswith("sha256:"):
            ref = parse(name)
            repo, tag = ref.name, ref.tag or "<none>"
        rows.append(
            {
                "Repository": repo,
                "Tag": tag,
                "ID": summary.id.removeprefix("sha256:")[:12],
                "CreatedSince": ago(parse_rfc3339(summary.created)),
                "Size": human_size(summary.size),
                "SharedSize": human_size(shared),
                "UniqueSize": human_size(max(0, summary.size - shared)),
                "Containers": containers[name],
            }
        )
    return rows


@dataclass(frozen=True)
class Finding:
    """Finding is one checked object; ``problem`` is empty when it is sound.

    ``repair``, when the check knows how, removes or rebuilds what cannot be
    read and returns a line saying what it did (``system check --repair``).
    """

    what: str
    problem: str = ""
    repair: Callable[[], str] | None = field(default=None, compare=False)


# What reading a damaged JSON record raises, besides the store's own errors:
# bad JSON (ValueError), a missing field (KeyError), a field of another type.
_DAMAGED_RECORD = (CtlError, OSError, ValueError, KeyError, TypeError)
R = TypeVar("R")


def check(client: Client) -> Iterator[Finding]:
    """check verifies every blob's digest, every record, and what records point at.

    A bad blob or record is a finding that names it, and the check goes on.
    The network of a running container is checked by its CNI plugins (CHECK),
    and a bridge of the root that no container uses is reported. A caller
    that runs each finding's ``repair`` before it asks for the next one sees
    the later checks run on the repaired root: the snapshotters' stores are
    checked, and rebuilt, before the namespaces' snapshots.
    """
    # Network records first: the checks of running containers' networks read them.
    yield from (Finding(d.what, d.problem, d.repair) for d in client.networks.damaged_records())
    yield from _check_content(client.content)
    yield from _check_snapshotters(client)
    for ns in _namespaces(client):
        yield from _check_images(ns)
        yield from _check_containers(ns)
        yield from _check_snapshots(ns)
    yield from _check_network_leftovers(client)
    yield from (Finding(b.what, b.problem, b.repair) for b in client.networks.unused_bridges())


def _check_network_leftovers(client: Client) -> Iterator[Finding]:
    """_check_network_leftovers: connections half made or outliving their task, isolation
    rules outliving their bridge, and a resolver dead or astray (``ctl.network.connect``)."""
    from ctl.client import Client as ClientType
    from ctl.network.connect import leftovers
    from ctl.runtime.state import Status

    def running(namespace: str, container_id: str) -> bool:
        try:
            tasks = ClientType(client.paths.root, namespace, debug=client.debug).tasks
            return tasks.status(container_id) in (Status.RUNNING, Status.PAUSED)
        except CtlError:
            return False

    for found in leftovers(client.networks, running):
        yield Finding(found.what, found.problem, found.repair)


def _check_content(store: ContentStore) -> Iterator[Finding]:
    """_check_content verifies each blob through the store, and reads each ingest."""
    from ctl.content.helpers import verify_blob
    from ctl.oci import Descriptor

    damaged: list[CtlError] = []
    for info in store.walk(on_error=damaged.append):
        what = f"blob {info.digest}"
        # The store keeps no media types, and verifying needs none.
        desc = Descriptor("", info.digest, info.size)
        try:
            verify_blob(store, desc)
            yield Finding(what)
        except OSError as err:
            yield Finding(what, f"unreadable: {err.strerror}", _blob_remover(store, info.digest))
        except DataCorrupted as err:
            problem = str(err).removeprefix(f"content {info.digest}: ")
            yield Finding(what, problem, _blob_remover(store, info.digest))
        except CtlError as err:
            yield Finding(what, str(err))
    for status in store.list_statuses(on_error=damaged.append):
        yield Finding(f"ingest {status.ref}")
    for error in damaged:
        yield Finding("content record", str(error), _record_remover(store, error))


def _blob_remover(store: ContentStore, digest: str) -> Callable[[], str]:
    def remove() -> str:
        store.delete(digest)
        return f"removed blob {digest}; pulling its image again fetches it"

    return remove


def _record_remover(store: ContentStore, error: CtlError) -> Callable[[], str] | None:
    from ctl.content import DamagedRecord

    if not isinstance(error, DamagedRecord):
        return None

    def remove() -> str:
        store.remove_damaged(error)
        return f"removed {error.path}"

    return remove


def _check_snapshotters(client: Client) -> Iterator[Finding]:
    """_check_snapshotters reads each snapshotter's store, which all namespaces share."""
    from ctl.snapshots import NAMES, new_snapshotter
    from ctl.snapshots.storage import StoreSnapshotter

    for name in NAMES:
        root = client.paths.snapshotter(name)
        if not os.path.isdir(root):
            continue
        what = f"snapshotter {name}"
        backend = new_snapshotter(name, root)
        try:
            backend.walk()
            yield Finding(what)
        except DataCorrupted as err:
            repair = None
            if isinstance(backend, StoreSnapshotter):
                repair = functools.partial(backend.rebuild, client.paths.quarantine)
            yield Finding(what, str(err), repair)
        except CtlError as err:
            yield Finding(what, str(err))


def _listed(what: str, listing: Callable[[], Iterable[R]]) -> Generator[Finding, None, list[R]]:
    """_listed returns what ``listing`` lists, or yields one finding if its records are damaged."""
    try:
        return list(listing())
    except _DAMAGED_RECORD as err:
        yield Finding(what, f"unreadable record: {err}")
        return []


def _records(
    listing: Callable[[Callable[[DataCorrupted], None]], Iterable[R]],
    remove: Callable[[UnreadableRecord], str],
) -> Generator[Finding, None, list[R]]:
    """_records lists a store's records; each damaged one becomes a finding naming its file.

    Its repair is ``remove``, which gets the damaged record.
    """
    from ctl.records import UnreadableRecord

    damaged: list[DataCorrupted] = []
    records = list(listing(damaged.append))
    for err in damaged:
        repair = functools.partial(remove, err) if isinstance(err, UnreadableRecord) else None
        yield Finding("record", str(err), repair)
    return records


def _remove_container(client: Client, damaged: UnreadableRecord) -> str:
    """_remove_container removes a container whose record is damaged, as ``rm -f`` does."""
    client.remove_container(damaged.key, force=True)
    return f"removed container {damaged.key[:12]}, its task, snapshot and network"


def _check_names(client: Client) -> Iterator[Finding]:
    """_check_names checks the container name index; its repair rebuilds a name from the records."""
    for name, problem in client.containers.misnamed().items():
        repair = functools.partial(client.containers.reindex, name)
        yield Finding(f"container name {client.namespace}/{name}", problem, repair)


def _check_listing_index(client: Client) -> Iterator[Finding]:
    """_check_listing_index checks ``ps``'s index; its repair rebuilds it from the records."""
    problems = client.containers.damaged_index()
    if problems:
        what = f"container index {client.namespace}"
        more = f"; and {len(problems) - 3} more" if len(problems) > 3 else ""
        yield Finding(what, "; ".join(problems[:3]) + more, client.containers.rebuild_index)


def _check_images(client: Client) -> Iterator[Finding]:
    images = yield from _records(client.images.list, client.images.remove_damaged)
    for image in images:
        what = f"image {client.namespace}/{image.name}"
        try:
            missing = _missing(client, image.target)
            yield Finding(what, f"missing content {', '.join(missing)}" if missing else "")
        except (CtlError, OSError) as err:
            yield Finding(what, str(err))


def _check_containers(client: Client) -> Iterator[Finding]:
    from ctl.runtime.state import Status

    containers = yield from _records(
        client.containers.list, functools.partial(_remove_container, client)
    )
    yield from _check_names(client)
    yield from _check_listing_index(client)
    for container in containers:
        what = f"container {client.namespace}/{container.name}"
        try:
            client.snapshotter.stat(container.snapshot_key)
            yield Finding(what)
        except NotFound:
            yield Finding(what, f"its snapshot {container.snapshot_key!r} is missing")
        except CtlError as err:
            yield Finding(what, str(err))
        yield from _check_task(client, what, container.id)
        try:
            status = client.tasks.status(container.id)
        except _DAMAGED_RECORD as err:
            yield Finding(f"task of {what}", f"unreadable record: {err}")
            continue
        if status in (Status.RUNNING, Status.PAUSED):
            yield from _check_network(
                client, f"network of container {client.namespace}/{container.name}", container.id
            )


def _check_task(client: Client, what: str, container_id: str) -> Iterator[Finding]:
    """_check_task reports damaged task records, lost supervisors and lost runc state."""
    problems = client.tasks.problems(container_id)
    if problems:
        # One repair ends the task for every problem it has: records, runc, cgroup.
        yield Finding(
            f"task of {what}", "; ".join(problems), lambda: client.tasks.repair(container_id)
        )


def _check_snapshots(client: Client) -> Iterator[Finding]:
    snapshotter = client.snapshotter
    snapshots = yield from _listed(f"snapshots of namespace {client.namespace}", snapshotter.walk)
    for snap in snapshots:
        yield _check_snapshot(snapshotter, f"snapshot {client.namespace}/{snap.name}", snap)


def _check_network(client: Client, what: str, container_id: str) -> Iterator[Finding]:
    """_check_network runs CNI CHECK on a running container's network, if it has one."""
    try:
        if client.networks.check(container_id):
            yield Finding(what)
    except CtlError as err:
        yield Finding(what, str(err))


def _check_snapshot(snapshotter: Snapshotter, what: str, snap: SnapshotInfo) -> Finding:
    """_check_snapshot checks that the directories a snapshot stands on exist."""
    from ctl.snapshots import Kind

    try:
        if snap.kind is Kind.COMMITTED:
            # Committed snapshots do not mount; their usage walk reads their directory.
            snapshotter.usage(snap.name)
            return Finding(what)
        mounts = snapshotter.mounts(snap.name)
    except (CtlError, OSError) as err:
        return Finding(what, str(err))
    dirs = [m.source for m in mounts if m.type == "bind"]
    for m in mounts:
        for opt in m.options:
            if opt.startswith(("lowerdir=", "upperdir=")):
                dirs += opt.split("=", 1)[1].split(":")
    gone = [d for d in dirs if d and not os.path.isdir(d)]
    return Finding(what, f"missing directory {gone[0]}" if gone else "")


def _missing(client: Client, desc: Descriptor) -> list[str]:
    from ctl.images import manifests

    try:
        client.content.info(desc.digest)
    except NotFound:
        return [desc.digest]
    if manifests.is_index(desc):
        # An index needs only the platforms that were pulled: at least one manifest.
        children = manifests.children(client.content, desc)
        present = [c for c in children if not _missing(client, c)]
        return [] if present else [desc.digest + " (no platform manifest)"]
    out: list[str] = []
    for child in manifests.children(client.content, desc):
        out += _missing(client, child)
    return out


def boot(client: Client) -> tuple[list[str], list[str]]:
    """boot starts, once after a reboot, every container whose restart policy asks for it.

    A task recorded before this boot has no process any more; containers with
    ``--restart always`` (or ``unless-stopped`` and ``on-failure`` that were
    not stopped by the user) are started again, in every namespace. It
    returns the names started and the names that failed to start, whose
    errors are on stderr: one failure does not keep the others down.
    """
    from ctl.runtime.state import boot_id

    started, failed = [], []
    for ns in _namespaces(client):
        for container in ns.containers.list():
            restart = container.config.restart
            policy = restart.name if restart else None
            if policy not in ("always", "unless-stopped", "on-failure"):
                continue
            task_dir = ns.tasks.task_dir(container.id)
            record = task_dir.read_record()
            if record is None or record.get("boot_id") == boot_id():
                continue
            if policy != "always" and task_dir.is_stopping():
                continue
            try:
                ns.tasks.forget(container.id)
                with ns.start_task(container):
                    pass
                started.append(f"{ns.namespace}/{container.name}")
            except CtlError as err:
                sys.stderr.write(f"ctl: boot: {container.name}: {err}\n")
                failed.append(f"{ns.namespace}/{container.name}")
    return started, failed


def _ctl_command(client: Client) -> list[str]:
    """_ctl_command is how a unit calls this ctl, with this root and namespace."""
    binary = os.environ.get("PEX") or shutil.which("ctl") or "ctl"
    return [binary, "--root", str(client.paths.root), "-n", client.namespace]


def boot_unit(client: Client) -> str:
    """boot_unit is the oneshot unit that runs ``ctl system boot`` once a boot."""
    boot = shlex.join([*_ctl_command(client), "system", "boot"])
    return f"""# Generated by ctl: restarts the containers of {client.paths.root} after a reboot.
[Unit]
Description=ctl: start containers whose restart policy asks for it
Wants=network-online.target
After=network-online.target

[Service]
Type=oneshot
ExecStart={boot}

[Install]
WantedBy=multi-user.target
"""


def systemd_unit(client: Client, ref: str) -> str:
    """systemd_unit is a unit that runs the container under the server's init."""
    container = client.get_container(ref)
    base = _ctl_command(client)
    start = shlex.join([*base, "start", "-a", container.name])
    stop = shlex.join([*base, "stop", "-t", "10", container.name])
    return f"""# Generated by ctl for container {container.name} ({container.id[:12]}).
[Unit]
Description=ctl container {container.name}
Wants=network-online.target
After=network-online.target

[Service]
Restart=on-failure
ExecStart={start}
ExecStop={stop}
KillMode=process
TimeoutStopSec=20

[Install]
WantedBy=multi-user.target
"""
