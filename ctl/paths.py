"""Paths derives every location under the ctl root from one place.

The layout (version 1). Update this drawing, and the README's copy of it, when
the layout changes::

    <root>/                          mode 0700
      version                        layout version ("1")
      content/                       shared by all namespaces, as in containerd
        blobs/sha256/<hex>           committed blobs, read-only (0444)
        ingest/<sha256(ref)>/        one in-progress write per ref
          ref  total  expected  startedat  data
        ingest/<sha256(ref)>.lock    the ref's writer lock (flock)
        labels/sha256/<hex>.json     labels of a blob (absent = none)
      namespaces/<ns>/
        images/<sha256(name)>.json   image record: name, target descriptor, labels
        containers/<id>.json         container record: spec, snapshot key, run config
        containers/names/<name>      the id a container name belongs to
        tasks/<id>/                  the container's task, kept until rm:
          bundle/config.json         OCI runtime spec handed to runc
          bundle/rootfs/             mount point of the container's snapshot
          hosts hostname resolv.conf bound over the container's /etc files
          <id>-json.log[.N]          output, docker's json-file format, rotated
          state.json exit.json       supervisor's records (ctl.runtime.state)
          stopping supervisor.log    stop marker; the supervisor's own errors
      snapshots/<snapshotter>/       each snapshotter's store (ctl.snapshots.storage)
      quarantine/                    what `system check --repair` moved aside, for a human
      runc/<ns>/                     runc's own state (runc --root)
      networks/<name>.conflist       a network's CNI configuration (ctl.network)
      netns/<ns>/<id>                a container's named network namespace
      cni/attachments/<ns>/<id>.json what ADD set up, for DEL after a crash
      cni/ipam/<network>/            host-local address leases
      certs.d/<host:port>/ca.crt     a registry's own CA
      locks/                         flock files: gc.lock (pulls shared, prune
                                     exclusive), network.lock (ADD exclusive,
                                     DEL shared), per-namespace store locks,
                                     per-container locks while one is removed

Nothing else joins paths under the root by hand.
"""

from __future__ import annotations

import os

from ctl import identifiers

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path

LAYOUT_VERSION = "1"
DEFAULT_ROOT = "/var/lib/ctl"
DEFAULT_NAMESPACE = "default"


def ref_key(ref: str) -> str:
    """ref_key maps an arbitrary string to a fixed-length safe file name."""
    import hashlib

    return hashlib.sha256(ref.encode()).hexdigest()


class Paths:
    """Paths holds the root and derives each sub-directory from it.

    A plain class, not a NamedTuple: every call builds one, and ``typing``
    costs more start-up time than the rest of a listing command.
    """

    __slots__ = ("root",)

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def version_file(self) -> Path:
        return self.root / "version"

    @property
    def content(self) -> Path:
        return self.root / "content"

    @property
    def locks(self) -> Path:
        return self.root / "locks"

    @property
    def namespaces(self) -> Path:
        return self.root / "namespaces"

    def namespace(self, namespace: str) -> Path:
        return self.namespaces / identifiers.validate("namespace", namespace)

    def images(self, namespace: str) -> Path:
        return self.namespace(namespace) / "images"

    def containers(self, namespace: str) -> Path:
        return self.namespace(namespace) / "containers"

    def tasks(self, namespace: str) -> Path:
        return self.namespace(namespace) / "tasks"

    def snapshotter(self, name: str) -> Path:
        return self.root / "snapshots" / identifiers.validate("snapshotter", name)

    @property
    def quarantine(self) -> Path:
        """quarantine holds what ``system check --repair`` could not rebuild, for a human."""
        return self.root / "quarantine"

    def registry_certs(self, host: str) -> Path:
        return self.root / "certs.d" / host

    def ensure(self) -> None:
        """ensure creates the root (0700) and writes the layout version once."""
        if self.version_file.exists():
            return
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.root, 0o700)
        from ctl.fsutil import atomic_write

        atomic_write(self.version_file, LAYOUT_VERSION.encode())
