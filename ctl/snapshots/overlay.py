"""The overlayfs snapshotter: committed snapshots are stacked as overlay lowerdirs.

Each snapshot ``<id>`` owns ``snapshots/<id>/fs``, its changes relative to
its parent (the overlay upper directory), and, when active,
``snapshots/<id>/work`` (overlay's work directory). Mounts:

- no parent: a bind of ``fs``, read-write (``ro`` for a view);
- a view of one committed parent with no parents itself: a read-only bind
  of that parent's ``fs``;
- otherwise ``overlay`` with ``lowerdir=`` the parents' ``fs``, nearest
  first, and for an active snapshot ``upperdir``/``workdir``, plus
  ``index=off`` where the kernel has the option (an index would tie a
  layer to the first overlay it was mounted in).

No ``userxattr``: ctl runs as real root, so overlay keeps its ``trusted.*``
xattrs, which is what layer apply writes. ``supported`` says no inside a user
namespace, and the native snapshotter is used there instead.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

from ctl import fsutil
from ctl.errdefs import CtlError, InvalidArgument
from ctl.snapshots import Kind, Mount
from ctl.snapshots.storage import StoreSnapshotter

if TYPE_CHECKING:
    from ctl.snapshots import WhiteoutStyle

_INDEX_PARAMETER = "/sys/module/overlay/parameters/index"
_CHECK_CACHE = "overlay-check.json"


class OverlaySnapshotter(StoreSnapshotter):
    """OverlaySnapshotter implements ``Snapshotter`` with overlayfs (see the module doc)."""

    def __init__(self, root: Path | str) -> None:
        super().__init__(root)
        # ',' separates mount options and ':' lowerdirs; overlay has no escape.
        if "," in str(self.root) or ":" in str(self.root):
            raise InvalidArgument(f"overlayfs root {self.root}: must not contain ',' or ':'")
        self._options = _index_off()

    def _fs(self, sid: int) -> Path:
        return self._store.snapshot_dir(sid) / "fs"

    def _populate(self, directory: Path, kind: Kind, parent_ids: list[int]) -> None:
        fs = directory / "fs"
        fs.mkdir()
        os.chmod(fs, 0o755)
        if kind is Kind.ACTIVE:
            (directory / "work").mkdir()
            os.chmod(directory / "work", 0o711)
        if parent_ids:
            # The root of an overlay mount takes its owner from the upper dir.
            st = os.stat(self._fs(parent_ids[0]))
            os.lchown(fs, st.st_uid, st.st_gid)

    def _mounts(self, sid: int, kind: Kind, parent_ids: list[int]) -> list[Mount]:
        if not parent_ids:
            mode = "ro" if kind is Kind.VIEW else "rw"
            return [Mount("bind", str(self._fs(sid)), (mode, "rbind"))]
        if kind is Kind.VIEW and len(parent_ids) == 1:
            return [Mount("bind", str(self._fs(parent_ids[0])), ("ro", "rbind"))]
        options: list[str] = []
        if kind is Kind.ACTIVE:
            options.append(f"workdir={self._store.snapshot_dir(sid) / 'work'}")
            options.append(f"upperdir={self._fs(sid)}")
        options.append("lowerdir=" + ":".join(str(self._fs(p)) for p in parent_ids))
        options.extend(self._options)
        return [Mount("overlay", "overlay", tuple(options))]

    def _data_dir(self, sid: int) -> Path:
        return self._fs(sid)

    def _whiteout_style(self, parent_ids: list[int]) -> WhiteoutStyle:
        # With no parent the snapshot mounts as a plain bind, where an overlay
        # whiteout would show as a device file; and there is nothing to hide.
        return "overlay" if parent_ids else "naive"


def _index_off() -> tuple[str, ...]:
    return ("index=off",) if os.path.exists(_INDEX_PARAMETER) else ()


def supported(root: str) -> bool:
    """supported tells whether overlayfs works for a snapshotter at ``root``.

    It mounts a real two-layer overlay inside ``root`` (the upper directory's
    filesystem is what matters: overlay cannot sit on overlay, for one) and
    caches the answer in ``root/overlay-check.json``, keyed by kernel release
    and device, so the next call costs one small read. Not root, or in a user
    namespace: False, not cached.
    """
    if os.geteuid() != 0 or _in_user_namespace():
        return False
    os.makedirs(root, 0o700, exist_ok=True)
    key = {"kernel": os.uname().release, "device": os.stat(root).st_dev}
    cache = os.path.join(root, _CHECK_CACHE)
    try:
        record = fsutil.read_json(cache)
        if isinstance(record, dict) and all(record.get(k) == v for k, v in key.items()):
            return bool(record.get("supported"))
    except (OSError, ValueError):
        pass  # no cache yet, or unreadable: check again
    ok = _try_overlay(root)
    # On a full disk the answer holds without its cache, which a later call writes.
    with contextlib.suppress(OSError):
        fsutil.atomic_write_json(cache, {**key, "supported": ok})
    return ok


def _try_overlay(root: str) -> bool:
    import shutil

    from ctl.snapshots.mount import mount_all, unmount

    check = fsutil.make_temp_dir(root, "overlay-check-")
    try:
        for name in ("lower1", "lower2", "upper", "work", "merged"):
            (check / name).mkdir()
        (check / "lower1" / "probe").write_bytes(b"")
        options = (
            f"lowerdir={check / 'lower2'}:{check / 'lower1'}",
            f"upperdir={check / 'upper'}",
            f"workdir={check / 'work'}",
            *_index_off(),
        )
        try:
            mount_all([Mount("overlay", "overlay", options)], check / "merged")
        except CtlError:
            return False
        try:
            return (check / "merged" / "probe").exists()
        finally:
            unmount(check / "merged")
    finally:
        shutil.rmtree(check, ignore_errors=True)


def _in_user_namespace() -> bool:
    try:
        uid_map = Path("/proc/self/uid_map").read_text()
    except OSError:
        return False
    return uid_map.split() != ["0", "0", "4294967295"]
