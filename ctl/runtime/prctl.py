"""The few prctl(2) calls the supervisor makes, through python-prctl.

python-prctl is a C extension linked against libcap. It is imported on first
use, so that commands that never start a supervisor (``ctl ps``) neither pay
for it nor fail when libcap is broken. The supervisor is forked without
exec, so ``load`` must run before the fork: after it, the module is already
in ``sys.modules`` and nothing is read from disk.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ctl.errdefs import Unavailable

if TYPE_CHECKING:
    from types import ModuleType

# The kernel keeps at most 15 bytes of a task's comm.
MAX_NAME = 15


def load() -> ModuleType:
    """load imports python-prctl, or raises Unavailable saying why it cannot."""
    try:
        import prctl
    except ImportError as err:
        raise Unavailable(
            f"cannot load python-prctl: {err}",
            hint="the supervisor needs python-prctl and libcap2 (apt-get install libcap2)",
        ) from err
    module: ModuleType = prctl
    return module


def set_child_subreaper() -> None:
    """set_child_subreaper makes orphaned descendants (the container's init) our children."""
    load().set_child_subreaper(True)


def set_name(name: str) -> None:
    """set_name sets the comm that ps and top show (truncated to 15 bytes)."""
    load().set_name(name[:MAX_NAME])
