"""Snapshotters: layered filesystems built from chains of committed snapshots.

``Snapshotter`` is the interface, with containerd's method set and semantics;
``overlay.OverlaySnapshotter`` and ``native.NativeSnapshotter`` implement it
over one shared metadata store (``storage``), and ``mount`` turns the
``Mount`` lists they return into real mounts. Both pass the one conformance
module, ``tests/conformance/test_snapshotter.py``, bare and through
``namespaced.NamespacedSnapshotter``, the per-namespace view the client uses.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol, runtime_checkable

from ctl.errdefs import InvalidArgument

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

# NAMES lists the snapshotters, preferred first: overlayfs where the kernel
# and the root's filesystem allow it (``overlay.supported``), native elsewhere.
NAMES = ("overlayfs", "native")


class Kind(enum.StrEnum):
    """Kind is the kind of a snapshot; its value is containerd's lower-case name."""

    VIEW = "view"
    ACTIVE = "active"
    COMMITTED = "committed"


class Info(NamedTuple):
    """Info describes one snapshot.

    ``name`` is the key of an active or view snapshot, or the name of a
    committed one; ``parent`` is the name of its committed parent ("" for none).
    Times are seconds since the epoch. ``updated_at`` equals ``created_at``
    until labels are changed with ``update``.
    """

    kind: Kind
    name: str
    parent: str = ""
    # A default shared by every instance: records are never changed in place.
    labels: dict[str, str] = {}
    created_at: float = 0.0
    updated_at: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "name": self.name,
            "parent": self.parent,
            "labels": dict(self.labels),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


class Usage(NamedTuple):
    """Usage is the disk a snapshot uses by itself, without its parents."""

    inodes: int = 0
    size: int = 0


class Mount(NamedTuple):
    """Mount is one mount(2) call: what to mount (``source``, ``type``) and how.

    ``options`` are mount(8)-style words (``ro``, ``rbind``, ``lowerdir=...``):
    flag words become mount flags and the rest the filesystem's data string.
    Paths in options are absolute; ``ctl.snapshots.mount`` shortens them when
    they would not fit the kernel's one-page limit.
    """

    type: str
    source: str
    options: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """to_json gives the OCI runtime-spec shape (``type``, ``source``, ``options``)."""
        return {"type": self.type, "source": self.source, "options": list(self.options)}

    @classmethod
    def from_json(cls, data: Any) -> Mount:
        """from_json reads what ``to_json`` wrote; malformed input is InvalidArgument."""
        if not isinstance(data, dict):
            raise InvalidArgument("malformed mount: not an object")
        kind, source, options = data.get("type"), data.get("source"), data.get("options", [])
        if not isinstance(kind, str) or not isinstance(source, str):
            raise InvalidArgument("malformed mount: type and source must be strings")
        if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
            raise InvalidArgument(f"malformed mount of {source!r}: options must be strings")
        return cls(type=kind, source=source, options=tuple(options))


WhiteoutStyle = Literal["overlay", "naive"]


class ApplyTarget(NamedTuple):
    """ApplyTarget is where a layer is written into an active snapshot, and how.

    ``whiteout_style`` says what a layer's whiteouts become there:

    ``"overlay"``
        ``path`` is an overlayfs upper directory, written directly, with no
        mount. ``.wh.NAME`` becomes a character device 0/0 named ``NAME``
        (owned 0:0), and ``.wh..wh..opq`` sets ``trusted.overlay.opaque=y`` on
        its directory. Lower layers are not visible under ``path``.
    ``"naive"``
        ``path`` holds the snapshot's whole filesystem (the parents' content
        included). ``.wh.NAME`` deletes ``NAME``; ``.wh..wh..opq`` deletes every
        entry of its directory that this layer did not itself write.
    """

    path: Path
    whiteout_style: WhiteoutStyle


class Snapshotter(Protocol):
    """Snapshotter allocates, snapshots and mounts filesystem changesets.

    A snapshot is a filesystem state. Each has a parent (``""`` is the empty
    directory), and the difference between a snapshot and its parent is a
    classic image layer. Snapshots are best understood by their lifecycle:

    - ``prepare(key, parent)`` creates an **active** snapshot: a writable
      filesystem that starts as a copy of ``parent``. Mount it, change it.
    - ``view(key, parent)`` creates a **view**: a read-only active snapshot of
      ``parent``. It cannot be committed.
    - ``commit(name, key)`` turns the active snapshot ``key`` into the
      **committed** snapshot ``name``, with the same parent; ``key`` is gone
      afterwards. Only committed snapshots can be parents.
    - ``remove(key)`` deletes any snapshot that is nobody's parent.

    Active snapshots never become committed ones in place, nor the reverse:
    commit creates a new name (re-using the directory underneath).

    Glossary, used for every parameter below:

    ``key``
        an active or view snapshot (``stat``, ``usage``, ``update`` and
        ``remove`` also take a committed ``name`` here).
    ``name``
        a committed snapshot.
    ``parent``
        the committed snapshot a snapshot descends from; ``""`` for none.

    Keys and names share one key space: an active snapshot cannot have the key
    of a committed one. They are arbitrary strings (chain IDs such as
    ``sha256:<hex>``, ``extract-<n> sha256:<hex>``); a snapshotter never uses
    them as path components. Keys are unique per snapshotter root; callers that
    need namespaces put the namespace in the key (``default/<key>``).

    Labels are free-form ``str -> str`` pairs for callers (GC references,
    unpack bookkeeping). The snapshotter stores them and never interprets them.

    Errors (``ctl.errdefs``): a missing snapshot is ``NotFound``; a second
    ``prepare`` or ``view`` with a key in use, or a ``commit`` to a name in
    use, is ``AlreadyExists``; a missing ``parent`` is ``NotFound``; a parent
    that is not committed, a ``commit`` of a view or of a committed snapshot,
    ``mounts`` of a committed snapshot and ``remove`` of a parent are
    ``FailedPrecondition``; a bad field path or label is ``InvalidArgument``.

    Every method is safe to call from several processes at once on the same
    root; a ``kill -9`` at any moment leaves a store the next call reads.

    Importing a layer (what unpack does)::

        key = f"extract-{uuid} {chain_id}"
        sn.prepare(key, parent_chain_id)
        target = sn.apply_target(key)           # no mount needed
        diff_id = apply_layer(target, tar)      # whiteouts as target.whiteout_style says
        if diff_id != expected_diff_id:         # verify before committing
            sn.remove(key)
            raise DataCorrupted(...)
        sn.commit(chain_id, key)                # AlreadyExists: a parallel unpack won;
                                                # then remove(key) and use chain_id

    The next layer is the same with ``parent=chain_id``. To run a container,
    ``prepare(container_key, top_chain_id)`` and hand its mounts to the runtime
    (``ctl.snapshots.mount.mount_all``); ``remove(container_key)`` discards the
    changes, or ``commit`` keeps them as a new image layer. To look at an image
    read-only, ``view`` it and ``with mounted(sn.mounts(key)) as path: ...``.
    """

    def stat(self, key: str) -> Info:
        """stat returns the Info of an active, view or committed snapshot.

        It is how callers resolve parents, test for existence and learn the
        kind. NotFound if there is no snapshot ``key``.
        """
        ...

    def update(self, info: Info, fieldpaths: Sequence[str] | None = None) -> Info:
        """update changes the labels of snapshot ``info.name`` and returns the new Info.

        Without ``fieldpaths`` (or with ``labels``) the labels become
        ``info.labels``; ``labels.<key>`` sets or, when ``info.labels`` lacks
        or empties it, removes one label. Labels with empty values are never
        stored. Only labels are mutable: any other field path is
        InvalidArgument. ``updated_at`` becomes now. NotFound if absent.
        """
        ...

    def usage(self, key: str) -> Usage:
        """usage returns the disk used by snapshot ``key`` without its parents.

        For a committed snapshot it was recorded at commit; for an active one
        it is measured now, in time proportional to its size. NotFound if absent.
        """
        ...

    def mounts(self, key: str) -> list[Mount]:
        """mounts returns again the mounts that ``prepare`` or ``view`` returned for ``key``.

        NotFound if absent; FailedPrecondition if ``key`` is committed.
        """
        ...

    def prepare(
        self, key: str, parent: str = "", labels: dict[str, str] | None = None
    ) -> list[Mount]:
        """prepare creates the active snapshot ``key`` on top of ``parent`` and returns its mounts.

        Mounted, it shows ``parent``'s content (nothing for ``""``) and
        captures changes relative to it, for ``commit``; ``remove`` discards
        them. The root of a snapshot with no parent is a 0755 directory owned
        by root. AlreadyExists if ``key`` is in use, NotFound if ``parent`` is
        absent, FailedPrecondition if it is not committed.
        """
        ...

    def view(self, key: str, parent: str = "", labels: dict[str, str] | None = None) -> list[Mount]:
        """view creates the read-only snapshot ``key`` of ``parent`` and returns its mounts.

        The mounts are read-only: writes through them fail (EROFS). A view
        cannot be committed; ``remove(key)`` releases it. Errors as ``prepare``.
        """
        ...

    def commit(self, name: str, key: str, labels: dict[str, str] | None = None) -> None:
        """commit makes the active snapshot ``key`` the committed snapshot ``name``.

        ``name`` gets ``key``'s parent, its content as it is now (unmount
        first), ``labels`` (not ``key``'s labels) and a new ``created_at``;
        its usage is measured and recorded. ``key`` no longer exists after.
        NotFound if ``key`` is absent, AlreadyExists if ``name`` is in use,
        FailedPrecondition if ``key`` is a view or committed.
        """
        ...

    def remove(self, key: str) -> None:
        """remove deletes snapshot ``key`` (any kind) and its files.

        The key is free for re-use at once. NotFound if absent;
        FailedPrecondition if another snapshot has ``key`` as its parent
        (remove the children first).
        """
        ...

    def walk(self, filters: Sequence[str] = ()) -> Iterator[Info]:
        """walk yields the Info of every snapshot matching any of ``filters``.

        A filter is containerd's syntax: comma-separated selectors that must
        all match, each ``<fieldpath>`` (present), ``<fieldpath>==<value>``,
        ``!=`` or ``~=`` (regular expression). Field paths are ``name``,
        ``parent``, ``kind`` (``active``, ``view``, ``committed``) and
        ``labels.<key>``; quote keys or values with dots, commas or spaces
        (``labels."ctl.io/gc.root"==x``, ``parent!=""``). No filters: all.
        The results are a consistent snapshot of the store taken at the call;
        the caller may stat, create or remove snapshots while iterating.
        A malformed filter is InvalidArgument. Order is unspecified.
        """
        ...

    def apply_target(self, key: str) -> ApplyTarget:
        """apply_target says where to write a layer into the active snapshot ``key``.

        See ``ApplyTarget`` for the two whiteout styles. The caller writes
        while nothing has ``key`` mounted, then commits. NotFound if absent,
        FailedPrecondition unless ``key`` is active.
        """
        ...

    def close(self) -> None:
        """close releases what the snapshotter holds; closing twice is fine."""
        ...


@runtime_checkable
class Cleaner(Protocol):
    """Cleaner is a snapshotter that can reclaim disk left by crashes.

    It is optional, as containerd's is: callers test ``isinstance(sn, Cleaner)``.
    """

    def cleanup(self) -> None:
        """cleanup deletes directories no snapshot owns: the leftovers of a crash
        between creating a directory and recording it, or of a failed removal.

        ``remove`` does the same sweep; prune calls this on its own.
        """
        ...


def new_snapshotter(name: str, root: Path | str) -> Snapshotter:
    """new_snapshotter opens the snapshotter ``name`` (one of NAMES) at ``root``."""
    if name == "overlayfs":
        from ctl.snapshots.overlay import OverlaySnapshotter

        return OverlaySnapshotter(root)
    if name == "native":
        from ctl.snapshots.native import NativeSnapshotter

        return NativeSnapshotter(root)
    raise InvalidArgument(f"unknown snapshotter {name!r}: use one of {', '.join(NAMES)}")
