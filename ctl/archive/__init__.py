"""Image layer archives: applying a layer's tar onto a snapshot directory.

``apply_layer`` is the one entry point; ``ctl.archive.apply`` documents how it
keeps every write inside the target and how whiteouts are turned into
overlayfs whiteouts or deletions.
"""

from __future__ import annotations

from ctl.archive.apply import ApplyResult, apply_layer

__all__ = ["ApplyResult", "apply_layer"]
