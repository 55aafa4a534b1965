"""The event log: what every ctl command and supervisor did, for ``ctl events``.

With no daemon to keep events in memory, each process appends its events
to one file under the root, ``events/events.log``, as JSON lines in docker's
event format. Each event is one ``write`` to a file opened ``O_APPEND``, so
concurrent writers never interleave within a line. When the file passes
``MAX_BYTES`` the writer that noticed renames it to ``events.log.1`` (under
the events lock, replacing the older generation): the log is bounded at
about twice ``MAX_BYTES``. Events are history, not state: they are not
fsynced, and a failure to write one (a full disk) never fails the command
that caused it.

Readers take both generations, skip a damaged line, and follow the current
file across a rotation by its inode.
"""

from __future__ import annotations

import json
import os
import time

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Iterator, Mapping
    from typing import Any

    from ctl.containers.container import Container

MAX_BYTES = 4 << 20
LOG, OLD_LOG, LOCK = "events.log", "events.log.1", ".rotate.lock"


def emit(
    directory: str,
    type: str,
    action: str,
    actor_id: str,
    attributes: Mapping[str, str] | None = None,
    namespace: str = "",
) -> None:
    """emit appends one event; it never raises (an event is not worth failing a command)."""
    now = time.time_ns()
    attrs = dict(attributes or {})
    event: dict[str, Any] = {
        "status": action,
        "id": actor_id,
        "Type": type,
        "Action": action,
        "Actor": {"ID": actor_id, "Attributes": attrs},
        "scope": "local",
        "time": now // 1_000_000_000,
        "timeNano": now,
    }
    if type == "container" and "image" in attrs:
        event["from"] = attrs["image"]
    if namespace:
        event["namespace"] = namespace
    line = (json.dumps(event, separators=(",", ":")) + "\n").encode()
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
    try:
        os.makedirs(directory, 0o700, exist_ok=True)
        fd = os.open(f"{directory}/{LOG}", flags, 0o600)
    except OSError:
        return
    try:
        os.write(fd, line)
        size = os.fstat(fd).st_size
    except OSError:
        return
    finally:
        os.close(fd)
    if size > MAX_BYTES:
        _rotate(directory)


def container_event(
    directory: str, namespace: str, container: Container, action: str, **attributes: str
) -> None:
    """container_event emits a container event with docker's attributes: labels, image, name."""
    base = {**container.labels, "image": container.image, "name": container.name}
    emit(directory, "container", action, container.id, {**base, **attributes}, namespace)


def _rotate(directory: str) -> None:
    import fcntl

    try:
        lock = os.open(f"{directory}/{LOCK}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # Another writer may have rotated while this one waited.
        if os.stat(f"{directory}/{LOG}").st_size > MAX_BYTES:
            os.replace(f"{directory}/{LOG}", f"{directory}/{OLD_LOG}")
    except OSError:
        pass
    finally:
        os.close(lock)


def stream(directory: str, follow: bool, interval: float = 0.2) -> Iterator[dict[str, Any] | None]:
    """stream yields the logged events, oldest first, and with ``follow`` the new ones.

    Following, it yields None at each idle poll, so that the caller can
    check its clock (``--until``) between events; it never ends by itself.
    The current file is read through one handle from its start, so that no
    event falls between the past and the followed ones.
    """
    try:
        with open(f"{directory}/{OLD_LOG}", "rb") as f:
            yield from _events(f.read())
    except OSError:
        pass
    handle = _open(f"{directory}/{LOG}")
    inode = os.fstat(handle.fileno()).st_ino if handle else None
    pending = b""
    try:
        while True:
            chunk = handle.read() if handle else b""
            if chunk:
                pending += chunk
                complete, _, pending = pending.rpartition(b"\n")
                if complete:
                    yield from _events(complete + b"\n")
                continue
            if not follow:
                return
            current = _inode(f"{directory}/{LOG}")
            if current is not None and current != inode:
                # Rotated: the old file was read to its end; go on in the new one.
                if handle:
                    handle.close()
                handle = _open(f"{directory}/{LOG}")
                inode = os.fstat(handle.fileno()).st_ino if handle else None
                pending = b""
                continue
            yield None
            time.sleep(interval)
    finally:
        if handle:
            handle.close()


def _open(path: str) -> Any:
    try:
        return open(path, "rb")
    except OSError:
        return None


def _inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def _events(data: bytes) -> Iterator[dict[str, Any]]:
    for line in data.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if isinstance(event, dict) and isinstance(event.get("timeNano"), int):
            yield event
