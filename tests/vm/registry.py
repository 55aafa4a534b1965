"""registry serves the VM lane's images from the host's loopback.

    python -m tests.vm.registry WORKDIR

It starts Debian's docker-registry on 127.0.0.1 (tests/helpers.py's RegistryServer), pushes
``test/busybox`` and ``test/multi`` as the normal tests do, prints the registry's port, and
serves until its standard input closes. The lane forwards that port into the guest.
"""

from __future__ import annotations

import sys
from pathlib import Path

from tests.helpers import RegistryServer
from tests.images import ImageFactory, push_canonical


def main() -> None:
    workdir = Path(sys.argv[1])
    server = RegistryServer(workdir).start()
    try:
        (workdir / "images").mkdir()
        push_canonical(ImageFactory(workdir / "images", server))
        print(server.port, flush=True)
        sys.stdin.read()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
