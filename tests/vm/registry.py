"""registry serves the VM lane's images from the host's loopback.

    python -m tests.vm.registry WORKDIR

It starts Debian's docker-registry on 127.0.0.1 (tests/helpers.py's RegistryServer), pushes
``test/busybox`` and ``test/multi`` as the normal tests do, prints the registry's port, and
serves until its standard input closes or it gets SIGTERM. The lane forwards that port into
the guest.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from tests.helpers import RegistryServer
from tests.images import ImageFactory, push_canonical


def main() -> None:
    # SIGTERM would end Python without its finally, and leave docker-registry running.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
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
