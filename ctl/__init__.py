"""ctl: a daemonless container manager for Linux servers.

``ctl.Client`` is the Python API under the CLI; it is imported lazily so that
``import ctl`` stays cheap for the CLI's own start-up.
"""

from __future__ import annotations

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from typing import Any

    from ctl.client import Client

__all__ = ["Client", "__version__"]

# The one place the version is written: pyproject.toml, the registry client's
# User-Agent and ``ctl version`` read it from here.
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name == "Client":
        from ctl.client import Client

        return Client
    raise AttributeError(f"module 'ctl' has no attribute {name!r}")
