"""Host ports for ``-P/--publish-all`` and ``-p CTR``: each gets a free one.

An exposed port is the image's (``ExposedPorts``, ``"80/tcp"``) or an
``--expose``; one that ``-p`` publishes already keeps its mapping. The host
port is one the kernel picks from its ephemeral range (binding port 0), as
docker's allocator does, free of listening sockets when the container is
created; ``NetworkManager.attach`` refuses one that another container
publishes meanwhile.
"""

from __future__ import annotations

import socket

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from typing import Any

    from ctl.containers.container import PortMapping


def exposed_ports(image_config: Mapping[str, Any], expose: Iterable[str]) -> list[str]:
    """exposed_ports are the image's exposed ports, then ``expose``, without repeats."""
    config = image_config.get("config") or {}
    image_ports = config.get("ExposedPorts") or {}
    ports = [p if "/" in p else f"{p}/tcp" for p in image_ports if isinstance(p, str)]
    return list(dict.fromkeys([*ports, *expose]))


def publish_all(exposed: Iterable[str], publish: Sequence[PortMapping]) -> tuple[PortMapping, ...]:
    """publish_all maps each exposed port that ``publish`` leaves out to a free host port."""
    from ctl.containers.container import PortMapping
    from ctl.runtime.runopts import parse_expose

    published = {(p.container_port, p.protocol) for p in publish}
    added = []
    for text in exposed:
        for port_text in parse_expose(text):
            port, _, protocol = port_text.partition("/")
            if (int(port), protocol) not in published:
                published.add((int(port), protocol))
                added.append(PortMapping("", free_port(protocol), int(port), protocol))
    return tuple(added)


def assign_free(publish: Sequence[PortMapping]) -> tuple[PortMapping, ...]:
    """assign_free gives each mapping without a host port (``-p 80``) a free one."""
    return tuple(
        p._replace(host_port=free_port(p.protocol)) if p.host_port == 0 else p for p in publish
    )


def free_port(protocol: str) -> int:
    """free_port is a host port no socket of ``protocol`` uses now, from the ephemeral range."""
    kind = socket.SOCK_DGRAM if protocol == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("0.0.0.0", 0))
        return int(probe.getsockname()[1])
