"""The native snapshotter: every active snapshot is a full copy of its parent.

It works on any filesystem, overlay or not. ``snapshots/<id>`` is the
snapshot's whole filesystem; ``prepare`` copies the parent's with
``cp -a --reflink=auto`` (modes, owners, xattrs, hard links, symlinks,
devices and mtimes kept; blocks shared where the filesystem has reflinks:
btrfs, xfs). A view copies nothing: it is a read-only bind of the parent,
which cannot change while the view exists. Mounts are binds, ``rw`` for an
active snapshot and ``ro`` for a view. Layers apply into the directory itself
and whiteouts are deletions (``"naive"``).
"""

from __future__ import annotations

import os
import subprocess
from typing import TYPE_CHECKING

from ctl.errdefs import CtlError
from ctl.snapshots import Kind, Mount
from ctl.snapshots.storage import StoreSnapshotter

if TYPE_CHECKING:
    from pathlib import Path

    from ctl.snapshots import WhiteoutStyle


class NativeSnapshotter(StoreSnapshotter):
    """NativeSnapshotter implements ``Snapshotter`` with directory copies (see the module doc)."""

    def _populate(self, directory: Path, kind: Kind, parent_ids: list[int]) -> None:
        if kind is Kind.VIEW or not parent_ids:
            os.chmod(directory, 0o755)
            return
        parent = self._store.snapshot_dir(parent_ids[0])
        # "src/." copies the contents and the root directory's own attributes.
        proc = subprocess.run(
            ["cp", "-a", "--reflink=auto", "--", f"{parent}/.", f"{directory}/"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
        )
        if proc.returncode != 0:
            why = proc.stderr.decode(errors="replace").strip()
            raise CtlError(f"copy snapshot {parent} to {directory}: {why}")

    def _mounts(self, sid: int, kind: Kind, parent_ids: list[int]) -> list[Mount]:
        if kind is Kind.VIEW:
            source = self._store.snapshot_dir(parent_ids[0] if parent_ids else sid)
            return [Mount("bind", str(source), ("ro", "rbind"))]
        return [Mount("bind", str(self._store.snapshot_dir(sid)), ("rw", "rbind"))]

    def _data_dir(self, sid: int) -> Path:
        return self._store.snapshot_dir(sid)

    def _whiteout_style(self, parent_ids: list[int]) -> WhiteoutStyle:
        return "naive"
