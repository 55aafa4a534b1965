"""Paths derives every location under the ctl root from one place.

The layout (version 1). Update this drawing, and the README's copy of it, when
the layout changes::

    <root>/                          mode 0700
      version                        layout version ("1")
      content/                       shared by all namespaces, as in containerd
        blobs/sha256/<hex>           committed blobs, read-only (0444)
        ingest/<sha256(ref)>/        one in-progress write per ref
          ingest.json  data          its record (ref, total, expected, startedat), the bytes
        ingest/<sha256(ref)>.lock    the ref's writer lock (flock)
        labels/sha256/<hex>.json     labels of a blob (absent = none)
      namespaces/<ns>/
        images/<sha256(name)>.json   image record: name, target descriptor, labels
        containers/<id>.json         container record: spec, snapshot key, run config
        containers/names/<name>      the id a container name belongs to
        containers/ps.index          what ps shows of each container, a cache
                                     (ctl.containers.store)
        tasks/<id>/                  the container's task, kept until rm:
          bundle/config.json         OCI runtime spec handed to runc
          bundle/rootfs/             mount point of the container's snapshot
          hosts hostname resolv.conf bound over the container's /etc files
          <id>-json.log[.N[.gz]]     output, docker's json-file format, rotated
          <id>-local.log[.N[.gz]]    output with --log-driver local (ctl.runtime.logs)
          state.json exit.json       supervisor's records (ctl.runtime.taskdir)
          health.json                .State.Health, with a health check (ctl.runtime.health)
          stopping supervisor.log    stop marker; the supervisor's own errors
      snapshots/<snapshotter>/       each snapshotter's store (ctl.snapshots.storage)
      quarantine/                    what `system check --repair` moved aside, for a human
      volumes/<name>/                a volume, shared by all namespaces (ctl.volumes):
        volume.json                  its record: driver, options, labels, created
        _data/                       its data, docker's layout: bound into containers
      runc/<ns>/                     runc's own state (runc --root)
      networks/<name>.conflist       a network's CNI configuration (ctl.network)
      netns/<ns>/<id>                a container's named network namespace
      cni/attachments/<ns>/<id>.json what ADD set up, for DEL after a crash
      cni/ipam/<network>/            host-local address leases
      cni/dns/                       the network resolver's (aardvark-dns) configuration
      certs.d/<host:port>/ca.crt     a registry's own CA
      events/events.log[.1]          the event log, JSON lines (ctl.events)
      locks/                         flock files (Paths.lock): gc.lock (pulls
                                     shared, prune exclusive), network.lock (ADD
                                     exclusive, DEL shared), images-<ns>.lock and
                                     containers-<ns>.lock (the stores' changes),
                                     container-<ns>-<id>.lock (rm),
                                     task-<ns>-<id>.lock (start, stop, rm)
                                     network-<ns>-<id>.lock (detach) and
                                     volume-<sha256(name)>.lock (a volume's
                                     create and rm exclusive, users shared)

Nothing else joins paths under the root by hand.
"""

from __future__ import annotations

import os

from ctl import identifiers

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from _typeshed import StrPath

LAYOUT_VERSION = "1"
DEFAULT_ROOT = "/var/lib/ctl"
DEFAULT_NAMESPACE = "default"


def check_root(root: str) -> str:
    """check_root accepts an absolute root; a relative one would follow the working directory.

    An empty one too, and ``--root ''`` made the working directory a root.
    """
    if not os.path.isabs(root):
        from ctl.errdefs import InvalidArgument

        raise InvalidArgument(
            f"invalid root {root!r}: it must be an absolute path (from --root or CTL_ROOT)"
        )
    return root


def ref_key(ref: str) -> str:
    """ref_key maps an arbitrary string to a fixed-length safe file name."""
    import hashlib

    return hashlib.sha256(ref.encode()).hexdigest()


class Paths:
    """Paths holds the root and derives each sub-directory from it, as strings.

    A plain class, not a NamedTuple, and strings, not pathlib's Paths: every
    call builds one, and importing ``typing`` or ``pathlib`` (which brings
    urllib.parse and ipaddress) costs more start-up time than a listing.
    """

    __slots__ = ("_ensured", "root")

    def __init__(self, root: StrPath) -> None:
        self.root = os.fspath(root)
        self._ensured = False

    @property
    def version_file(self) -> str:
        return f"{self.root}/version"

    @property
    def content(self) -> str:
        return f"{self.root}/content"

    @property
    def locks(self) -> str:
        return f"{self.root}/locks"

    def lock(self, name: str, *scope: str) -> str:
        """lock is the flock file ``locks/<name>[-<scope>...].lock``.

        The locks in use: ``lock("gc")``, ``lock("network")``,
        ``lock("images", ns)``, ``lock("containers", ns)`` (a namespace's
        stores), ``lock("container", ns, id)`` (a container being removed),
        ``lock("task", ns, id)`` (a task being started, stopped or removed)
        ``lock("network", ns, id)`` (a container being detached) and
        ``lock("volume", sha256(name))`` (``ctl.volumes.local``).
        """
        parts = [identifiers.validate("lock name", part) for part in (name, *scope)]
        return f"{self.locks}/{'-'.join(parts)}.lock"

    @property
    def namespaces(self) -> str:
        return f"{self.root}/namespaces"

    def namespace(self, namespace: str) -> str:
        return f"{self.namespaces}/{identifiers.validate('namespace', namespace)}"

    def images(self, namespace: str) -> str:
        return f"{self.namespace(namespace)}/images"

    def containers(self, namespace: str) -> str:
        return f"{self.namespace(namespace)}/containers"

    def tasks(self, namespace: str) -> str:
        return f"{self.namespace(namespace)}/tasks"

    def task_dir(self, namespace: str, container_id: str) -> str:
        return f"{self.tasks(namespace)}/{identifiers.validate('container id', container_id)}"

    def snapshotter(self, name: str) -> str:
        return f"{self.root}/snapshots/{identifiers.validate('snapshotter', name)}"

    def runc(self, namespace: str) -> str:
        return f"{self.root}/runc/{identifiers.validate('namespace', namespace)}"

    @property
    def networks(self) -> str:
        return f"{self.root}/networks"

    def netns(self, namespace: str) -> str:
        return f"{self.root}/netns/{identifiers.validate('namespace', namespace)}"

    @property
    def cni_attachments_root(self) -> str:
        """cni_attachments_root holds one directory of attachment records a namespace."""
        return f"{self.root}/cni/attachments"

    def cni_attachments(self, namespace: str) -> str:
        return f"{self.cni_attachments_root}/{identifiers.validate('namespace', namespace)}"

    @property
    def ipam(self) -> str:
        return f"{self.root}/cni/ipam"

    def leases(self, network: str) -> str:
        """leases holds host-local's address leases of ``network``: ``<ipam>/<network>``."""
        return f"{self.ipam}/{network}"

    @property
    def dns(self) -> str:
        """dns holds the network resolver's configuration and pid file (``ctl.network.dns``)."""
        return f"{self.root}/cni/dns"

    @property
    def volumes(self) -> str:
        return f"{self.root}/volumes"

    def volume(self, name: str) -> str:
        """volume is the directory of volume ``name``, checked by ``ctl.volumes.check_name``."""
        from ctl.volumes import check_name

        return f"{self.volumes}/{check_name(name)}"

    @property
    def certs(self) -> str:
        return f"{self.root}/certs.d"

    @property
    def events(self) -> str:
        """events holds the event log of every namespace (``ctl.events``)."""
        return f"{self.root}/events"

    @property
    def quarantine(self) -> str:
        """quarantine holds what ``system check --repair`` could not rebuild, for a human."""
        return f"{self.root}/quarantine"

    def ensure(self) -> None:
        """ensure creates the root (0700) and writes the layout version once.

        A root whose version file names another layout (or is damaged)
        raises FailedPrecondition and is left as it is: this ctl would
        misread it. The check runs once a Paths.
        """
        if self._ensured:
            return
        try:
            with open(self.version_file, "rb") as f:
                found = f.read()
        except FileNotFoundError:
            os.makedirs(self.root, mode=0o700, exist_ok=True)
            os.chmod(self.root, 0o700)
            from ctl.fsutil import atomic_write

            atomic_write(
                self.version_file, LAYOUT_VERSION.encode(), what="the root's layout version"
            )
        else:
            if found.strip() != LAYOUT_VERSION.encode():
                from ctl.errdefs import FailedPrecondition

                raise FailedPrecondition(
                    f"{self.version_file}: layout version {found[:20]!r}, "
                    f"this ctl knows only version {LAYOUT_VERSION}",
                    hint="use the ctl that made this root, or another --root",
                )
        self._ensured = True
