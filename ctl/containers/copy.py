"""``cp``: copying between a container's filesystem and the host, by docker's rules.

Both ends are a ``Side``: a root directory descriptor every path resolves
in, and the directories mounted below it. The container's side is its root
filesystem with its bind mounts (volumes included) grafted in by
destination; the host's is ``/`` with none. Paths resolve with the layer
applier's resolver (``ctl.archive.apply.resolve_dir``): a symlink in the
container, absolute or ``..``, is followed inside the container's root and
never reaches the host. Files are written by the applier as well, reading a
tree walked on the other side (``ctl.archive.tree``), or a tar.

The container's root filesystem is the one its task runs on while it is
mounted (a created or running container); otherwise the snapshot is
mounted for the copy. Either way the task's lifecycle lock is held, so a
start, stop or removal of the task waits for the copy to end. No process
runs in the container: an image without ``tar`` works as well.

docker's rules (docs/reference/commandline/container_cp.md): a file goes to
DEST when DEST is a file or missing (its parent must exist; a DEST ending
in ``/`` must be a directory), into DEST (with its base name) when DEST is
a directory. A directory becomes DEST when DEST is missing, goes into DEST
when DEST is a directory, and only its contents do when SRC ends in
``/.``. Ownership: with ``archive`` the source's uid and gid are kept;
otherwise files in the container are root's and files on the host the
caller's.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import stat
from typing import TYPE_CHECKING, NamedTuple

from ctl.errdefs import FailedPrecondition, InvalidArgument, NotFound

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import BinaryIO

    from ctl.archive.tree import Entry
    from ctl.client import Client
    from ctl.containers.container import Container

    # Walks the source as members whose top is named by the argument.
    _EntriesOf = Callable[[str], Iterator[Entry]]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
# More symlinks than this on one path is a loop, as the kernel counts.
_MAX_SYMLINKS = 40


class Side(NamedTuple):
    """Side is one end of a copy: a root, its mounts, and what may not be written."""

    root_fd: int
    # Real path below the root (no leading "/") -> descriptor of the directory mounted there.
    mounts: dict[str, int]
    # Real paths below which writes are refused ("" is the whole root).
    readonly: frozenset[str]
    # How messages name it: "container NAME", or "" for the host.
    where: str
    # Files bind-mounted (/etc/hosts, a file volume): real path -> (host parent fd, base name).
    files: dict[str, tuple[int, str]] = {}

    def in_(self, path: str) -> str:
        return f"{path} in {self.where}" if self.where else path


class _Found(NamedTuple):
    """_Found is a resolved path: its parent directory, base name, real path and lstat."""

    parent_fd: int
    base: str
    real: str
    st: os.stat_result


@contextlib.contextmanager
def host_side() -> Iterator[Side]:
    fd = os.open("/", _DIR_FLAGS)
    try:
        yield Side(fd, {}, frozenset(), "")
    finally:
        os.close(fd)


@contextlib.contextmanager
def container_side(client: Client, container: Container) -> Iterator[Side]:
    """container_side is the container's root filesystem, mounted for the block.

    The task's lifecycle lock is held meanwhile (see the module docstring).
    """
    from ctl.fsutil import FileLock
    from ctl.runtime.taskdir import TaskDir
    from ctl.snapshots.mount import is_mount_point, mounted

    lock = FileLock(
        client.paths.lock("task", client.namespace, container.id),
        what=f"task {container.id[:12]}",
        remove=True,
    )
    with lock, contextlib.ExitStack() as stack:
        # TaskDir alone, not client.tasks: the task service would import runc and networking.
        rootfs = TaskDir(client.paths.task_dir(client.namespace, container.id)).rootfs
        if not is_mount_point(rootfs):
            rootfs = stack.enter_context(mounted(client.snapshotter.mounts(container.snapshot_key)))
        root_fd = os.open(rootfs, _DIR_FLAGS)
        stack.callback(os.close, root_fd)
        mounts, files, readonly = _mounts(container.spec, stack)
        if (container.spec.get("root") or {}).get("readonly"):
            readonly.add("")
        where = f"container {container.name}"
        yield Side(root_fd, mounts, frozenset(readonly), where, files)


def _mounts(
    spec: dict[str, object], stack: contextlib.ExitStack
) -> tuple[dict[str, int], dict[str, tuple[int, str]], set[str]]:
    """_mounts opens what is bind-mounted into the container, by destination.

    A directory is opened itself; a file by its parent directory and name,
    as the kernel found it at mount time (symlinks of the host path followed).
    """
    mounts: dict[str, int] = {}
    files: dict[str, tuple[int, str]] = {}
    readonly: set[str] = set()
    entries = spec.get("mounts")
    for m in entries if isinstance(entries, list) else []:
        if not isinstance(m, dict):
            continue
        options = m.get("options") or []
        if m.get("type") != "bind" and "bind" not in options and "rbind" not in options:
            continue  # proc, tmpfs and the like live only in the container's mount namespace
        destination = posixpath.normpath("/" + str(m.get("destination", ""))).lstrip("/")
        source = os.path.realpath(str(m.get("source", "")))
        try:
            if os.path.isdir(source):
                mounts[destination] = fd = os.open(source, _DIR_FLAGS)
            else:
                fd = os.open(os.path.dirname(source), _DIR_FLAGS)
                files[destination] = (fd, os.path.basename(source))
        except OSError:
            continue  # the source is gone: the rootfs's mount point is all there is
        stack.callback(os.close, fd)
        if "ro" in options:
            readonly.add(destination)
    return mounts, files, readonly


def copy(
    src: Side, src_path: str, dst: Side, dst_path: str, *, follow: bool, archive: bool
) -> None:
    """copy copies ``src_path`` of ``src`` to ``dst_path`` of ``dst`` (see the module docstring).

    NotFound when the source or the destination's parent is missing;
    InvalidArgument for a directory onto a file or a path that is no
    directory; FailedPrecondition for a read-only destination.
    """
    from ctl.archive.apply import apply_entries

    contents = _names_contents(src_path)
    with _source(src, src_path, follow=follow) as (found, entries_of):
        is_dir = stat.S_ISDIR(found.st.st_mode)
        state, real = _destination(dst, dst_path)
        if is_dir:
            if state == "file":
                raise InvalidArgument(
                    f"cannot copy a directory to a file: {dst.in_(_display(dst_path))}"
                )
            under = real if state == "missing" or contents else _join(real, _base(src_path))
        else:
            if state == "missing" and dst_path.endswith("/"):
                raise NotFound(
                    f"the destination directory {dst.in_(_display(dst_path))} must exist"
                )
            under = _join(real, _base(src_path)) if state == "dir" else real
        _check_writable(dst, under)
        owner = None if archive else _owner(dst)
        apply_entries(entries_of(""), dst.root_fd, under=under, mounts=dst.mounts, owner=owner)


def copy_to_tar(src: Side, src_path: str, out: BinaryIO, *, follow: bool) -> None:
    """copy_to_tar writes ``src_path`` of ``src`` as a tar whose top is its base name."""
    from ctl.archive.tree import write_tar

    with _source(src, src_path, follow=follow) as (_, entries_of):
        write_tar(entries_of(_base(src_path)), out)
        out.flush()


def copy_from_tar(stream: BinaryIO, dst: Side, dst_path: str, *, archive: bool) -> None:
    """copy_from_tar extracts a tar into the directory ``dst_path`` of ``dst``."""
    from ctl.archive.apply import apply_archive

    state, real = _destination(dst, dst_path)
    if state != "dir":
        raise NotFound(f"the destination {dst.in_(_display(dst_path))} must be a directory")
    _check_writable(dst, real)
    owner = None if archive else _owner(dst)
    apply_archive(stream, dst.root_fd, under=real, mounts=dst.mounts, owner=owner)


@contextlib.contextmanager
def _source(side: Side, path: str, *, follow: bool) -> Iterator[tuple[_Found, _EntriesOf]]:
    """_source resolves the source; with a function walking it as members below a name."""
    from ctl.archive.tree import entry, walk

    # A trailing "/" or "/." means the directory a symlink names, as docker has it.
    found = _locate(side, _rel(path), follow=follow or path.endswith(("/", "/.")))
    try:
        if path.endswith(("/", "/.")) and not stat.S_ISDIR(found.st.st_mode):
            raise InvalidArgument(f"{side.in_(_display(path))} is not a directory")
        if stat.S_ISDIR(found.st.st_mode):
            fd = _open_dir(side, found)
            try:

                def entries_of(name: str) -> Iterator[Entry]:
                    return walk(fd, name, real=found.real, mounts=side.mounts, files=side.files)

                yield found, entries_of
            finally:
                os.close(fd)
        else:

            def entries_of(name: str) -> Iterator[Entry]:
                return entry(found.parent_fd, found.base, name, found.st)

            yield found, entries_of
    finally:
        os.close(found.parent_fd)


def _open_dir(side: Side, found: _Found) -> int:
    mounted = side.mounts.get(found.real)
    if mounted is not None:
        return os.dup(mounted)
    if not found.base:
        return os.dup(found.parent_fd)
    return os.open(found.base, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=found.parent_fd)


def _locate(side: Side, rel: str, *, follow: bool) -> _Found:
    """_locate resolves ``rel`` inside the side's root; its last symlink only if ``follow``."""

    display = "/" + rel
    for _ in range(_MAX_SYMLINKS):
        parent, _, base = rel.rpartition("/")
        pfd, preal = _parent(side, parent, f"could not find the file {side.in_(display)}")
        if not base:
            return _Found(pfd, "", preal, os.fstat(pfd))
        real = _join(preal, base)
        if real in side.files:
            os.close(pfd)
            host_fd, host_base = side.files[real]
            pfd, base = os.dup(host_fd), host_base
        try:
            mounted = side.mounts.get(real)
            st = os.fstat(mounted) if mounted is not None else os.lstat(base, dir_fd=pfd)
        except FileNotFoundError:
            os.close(pfd)
            raise NotFound(f"could not find the file {side.in_(display)}") from None
        except BaseException:
            os.close(pfd)
            raise
        if not (follow and stat.S_ISLNK(st.st_mode)):
            return _Found(pfd, base, real, st)
        target = os.readlink(base, dir_fd=pfd)
        os.close(pfd)
        rel = _rel(target if target.startswith("/") else f"/{preal}/{target}")
    raise InvalidArgument(f"{side.in_(display)}: too many levels of symbolic links")


def _parent(side: Side, parent: str, missing: str) -> tuple[int, str]:
    """_parent opens directory ``parent``; NotFound(``missing``) when it is no directory."""
    from ctl.archive.apply import resolve_dir

    try:
        resolved = resolve_dir(side.root_fd, parent, side.mounts)
    except InvalidArgument:
        resolved = None
    if resolved is None:
        raise NotFound(missing)
    return resolved


def _destination(side: Side, path: str) -> tuple[str, str]:
    """_destination says what ``path`` is ("dir", "file" or "missing") and its real path.

    A symlink to a directory is that directory; the parent must exist.
    """
    from ctl.archive.apply import resolve_dir

    rel = _rel(path)
    with contextlib.suppress(InvalidArgument):
        resolved = resolve_dir(side.root_fd, rel, side.mounts)
        if resolved is not None:
            os.close(resolved[0])
            return "dir", resolved[1]
    parent, _, base = rel.rpartition("/")
    pfd, preal = _parent(side, parent, f"no such directory: {side.in_('/' + parent)}")
    try:
        os.lstat(base, dir_fd=pfd)
        state = "file"
    except FileNotFoundError:
        state = "missing"
    finally:
        os.close(pfd)
    return state, _join(preal, base)


def _check_writable(side: Side, real: str) -> None:
    """_check_writable refuses a write below a read-only mount or root filesystem."""
    covering = max(
        (m for m in [*side.mounts, ""] if m in ("", real) or real.startswith(m + "/")),
        key=len,
    )
    if real in side.files:
        raise FailedPrecondition(
            f"cannot copy onto {side.in_('/' + real)}: it is a file mounted from the host"
        )
    if covering in side.readonly:
        what = f"the mount at /{covering}" if covering else "the root filesystem"
        raise FailedPrecondition(f"cannot copy to {side.in_('/' + real)}: {what} is read-only")


def _owner(side: Side) -> tuple[int, int]:
    return (0, 0) if side.where else (os.getuid(), os.getgid())


def _rel(path: str) -> str:
    """_rel is ``path`` cleaned and made relative to the root ("" for the root)."""
    return posixpath.normpath("/" + path).lstrip("/")


def _base(path: str) -> str:
    return posixpath.basename(_rel(path))


def _join(real: str, base: str) -> str:
    return f"{real}/{base}" if real else base


def _names_contents(path: str) -> bool:
    return path == "." or path.endswith("/.")


def _display(path: str) -> str:
    return path if path.startswith("/") else "/" + path
