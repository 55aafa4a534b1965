"""A container's changes to its image: ``diff``, ``export`` and the layer of ``commit``.

The changes are docker's: ``A`` added, ``C`` changed, ``D`` deleted, one
path a line, sorted. They are found against a read-only view of the
container's parent snapshot (the image's top layer):

- overlayfs: only the upper directory is walked. A character device 0/0 is
  a deletion; an opaque directory hides every lower child it does not
  hold again, each a deletion; anything else is added when the parent view
  lacks it and changed when it has it.
- native: the container's tree and the parent's are compared, entry by
  entry (type, mode, owner, size, mtime, device, link target).

Either way a directory is changed when something below it is reported, or
its mode or owner differ; its mtime alone is not a change, since runc's
mount points and ctl's host files touch it. Mount destinations of the spec
(``/proc``, ``/etc/hosts``, volumes...) and what is below them are not the
container's changes and are left out, as docker leaves out its init layer.

``write_layer`` writes the changes as a layer tar: added and changed paths
as they are in the container, deletions as OCI whiteouts (``.wh.NAME``).
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import stat
from typing import TYPE_CHECKING, NamedTuple

from ctl.errdefs import FailedPrecondition

if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import BinaryIO

    from ctl.archive.tree import Entry
    from ctl.client import Client
    from ctl.containers.container import Container
    from ctl.containers.copy import Side
    from ctl.snapshots import Mount

_WHITEOUT_DEVICE = os.makedev(0, 0)
_OPAQUE_XATTR = "trusted.overlay.opaque"


class Change(NamedTuple):
    """Change is one line of ``diff``: its kind (A, C or D) and the path in the container."""

    kind: str
    path: str

    def __str__(self) -> str:
        return f"{self.kind} {self.path}"


@contextlib.contextmanager
def container_changes(client: Client, container: Container) -> Iterator[tuple[list[Change], Side]]:
    """container_changes finds the changes, with the container's root mounted for the block."""
    from ctl.containers.copy import container_side
    from ctl.snapshots.mount import mounted

    snapshotter = client.snapshotter
    parent = snapshotter.stat(container.snapshot_key).parent
    view_key = f"ctl-diff-{os.urandom(8).hex()}"
    # The lease keeps a concurrent prune from sweeping the view, which no record names.
    with client.lease(), container_side(client, container) as side, contextlib.ExitStack() as stack:
        if parent:
            view_mounts = snapshotter.view(view_key, parent)
            stack.callback(snapshotter.remove, view_key)
            lower = str(stack.enter_context(mounted(view_mounts)))
        else:
            lower = ""
        excluded = _mount_destinations(container.spec)
        upper = _upper_dir(snapshotter.mounts(container.snapshot_key))
        root = f"/proc/self/fd/{side.root_fd}"
        if upper is not None:
            found = _Overlay(upper, lower, excluded).changes()
        else:
            found = _Compare(root, lower, excluded).changes()
        yield sorted(found, key=lambda c: c.path), side


def _mount_destinations(spec: dict[str, object]) -> frozenset[str]:
    mounts = spec.get("mounts")
    return frozenset(
        posixpath.normpath("/" + str(m.get("destination", "")).lstrip("/"))
        for m in (mounts if isinstance(mounts, list) else [])
        if isinstance(m, dict)
    )


def _upper_dir(mounts: list[Mount]) -> str | None:
    """_upper_dir is the overlay upper directory of an active snapshot's mounts, if any."""
    for m in mounts:
        for option in m.options:
            if option.startswith("upperdir="):
                return option.removeprefix("upperdir=")
    return None


def _excluded(path: str, excluded: frozenset[str]) -> bool:
    while path != "/":
        if path in excluded:
            return True
        path = posixpath.dirname(path)
    return False


def _lstat(path: str) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _children(path: str) -> list[str]:
    with os.scandir(path) as entries:
        return sorted(e.name for e in entries)


def _same_dir(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_mode, a.st_uid, a.st_gid) == (b.st_mode, b.st_uid, b.st_gid)


class _Overlay:
    """_Overlay reads the changes from an overlayfs upper directory."""

    def __init__(self, upper: str, lower: str, excluded: frozenset[str]) -> None:
        self.upper = upper
        self.lower = lower
        self.excluded = excluded

    def _lower(self, path: str) -> os.stat_result | None:
        return _lstat(self.lower + path) if self.lower else None

    def changes(self) -> list[Change]:
        found: list[Change] = []
        self._dir("/", found)
        return found

    def _dir(self, path: str, found: list[Change]) -> None:
        directory = self.upper + path
        names = _children(directory)
        if path != "/" and _is_opaque(directory) and self.lower:
            lower_dir = self.lower + path
            with contextlib.suppress(OSError):
                for name in _children(lower_dir):
                    child = posixpath.join(path, name)
                    if name not in names and not _excluded(child, self.excluded):
                        found.append(Change("D", child))
        for name in names:
            child = posixpath.join(path, name)
            if _excluded(child, self.excluded):
                continue
            st = os.lstat(self.upper + child)
            lower = self._lower(child)
            if stat.S_ISCHR(st.st_mode) and st.st_rdev == _WHITEOUT_DEVICE:
                if lower is not None:
                    found.append(Change("D", child))
                continue
            if not stat.S_ISDIR(st.st_mode):
                found.append(Change("A" if lower is None else "C", child))
                continue
            mark = len(found)
            self._dir(child, found)
            if lower is None or not stat.S_ISDIR(lower.st_mode):
                found.insert(mark, Change("A", child))
            elif len(found) > mark or not _same_dir(st, lower):
                found.insert(mark, Change("C", child))


def _is_opaque(directory: str) -> bool:
    try:
        return os.getxattr(directory, _OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


class _Compare:
    """_Compare finds the changes by comparing the container's tree with its parent's."""

    def __init__(self, merged: str, lower: str, excluded: frozenset[str]) -> None:
        self.merged = merged
        self.lower = lower
        self.excluded = excluded

    def changes(self) -> list[Change]:
        found: list[Change] = []
        self._dir("/", found)
        return found

    def _dir(self, path: str, found: list[Change]) -> None:
        names = _children(self.merged + path)
        lower_names: list[str] = []
        if self.lower:
            with contextlib.suppress(OSError):
                lower_names = _children(self.lower + path)
        for name in lower_names:
            child = posixpath.join(path, name)
            if name not in names and not _excluded(child, self.excluded):
                found.append(Change("D", child))
        for name in names:
            child = posixpath.join(path, name)
            if _excluded(child, self.excluded):
                continue
            st = os.lstat(self.merged + child)
            lower = _lstat(self.lower + child) if self.lower else None
            if lower is None or stat.S_IFMT(st.st_mode) != stat.S_IFMT(lower.st_mode):
                if lower is not None:
                    found.append(Change("D", child))
                found.append(Change("A", child))
                if stat.S_ISDIR(st.st_mode):
                    self._added(child, found)
                continue
            if not stat.S_ISDIR(st.st_mode):
                if self._differs(child, st, lower):
                    found.append(Change("C", child))
                continue
            mark = len(found)
            self._dir(child, found)
            if len(found) > mark or not _same_dir(st, lower):
                found.insert(mark, Change("C", child))

    def _added(self, path: str, found: list[Change]) -> None:
        for name in _children(self.merged + path):
            child = posixpath.join(path, name)
            if _excluded(child, self.excluded):
                continue
            found.append(Change("A", child))
            if stat.S_ISDIR(os.lstat(self.merged + child).st_mode):
                self._added(child, found)

    def _differs(self, path: str, a: os.stat_result, b: os.stat_result) -> bool:
        fields = ("st_mode", "st_uid", "st_gid", "st_size", "st_mtime_ns", "st_rdev")
        if any(getattr(a, f) != getattr(b, f) for f in fields):
            return True
        if stat.S_ISLNK(a.st_mode):
            return os.readlink(self.merged + path) != os.readlink(self.lower + path)
        return False


def write_layer(changes: list[Change], side: Side, out: BinaryIO) -> int:
    """write_layer writes the changes as a layer tar (OCI whiteouts); returns its size."""
    from ctl.archive.tree import write_tar

    return write_tar(_layer_entries(changes, side), out)


def _layer_entries(changes: list[Change], side: Side) -> Iterator[Entry]:
    from ctl.archive.apply import Member, resolve_dir
    from ctl.archive.tree import entry, xattrs_of

    for change in changes:
        rel = change.path.lstrip("/")
        parent, _, base = rel.rpartition("/")
        if change.kind == "D":
            whiteout = f"{parent}/.wh.{base}" if parent else f".wh.{base}"
            yield Member.new(b"0", whiteout, 0o644, 0), None, 0
            continue
        resolved = resolve_dir(side.root_fd, parent)
        if resolved is None:
            raise FailedPrecondition(f"{change.path} changed while it was read")
        pfd = resolved[0]
        try:
            st = os.lstat(base, dir_fd=pfd)
            if stat.S_ISDIR(st.st_mode):
                fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=pfd)
                try:
                    yield Member.of_stat(rel, os.fstat(fd), xattrs=xattrs_of(fd, None)), None, 0
                finally:
                    os.close(fd)
            else:
                yield from entry(pfd, base, rel, st)
        finally:
            os.close(pfd)


def export(side: Side, out: BinaryIO) -> int:
    """export writes the container's root filesystem (no mounts) as a tar; returns its size."""
    import itertools

    from ctl.archive.tree import walk, write_tar

    # The root itself is no member, as docker's export has it.
    return write_tar(itertools.islice(walk(side.root_fd, ""), 1, None), out)
