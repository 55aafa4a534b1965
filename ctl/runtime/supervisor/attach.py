"""Attaching to a running task's stdio later (``attach``), through its supervisor.

The supervisor listens on ``attach.sock`` in the task directory (mode 0700),
out of reach of the containers (an abstract socket would be reachable from
any container sharing the host's network namespace), and only a peer of its
own uid is taken. Both ends name it through ``/proc/self/fd/N/`` of the
directory, so that a deep root cannot exceed the 108 bytes of a socket
address. The listener is one descriptor in the supervisor's poll loop:
nothing runs while nobody attaches. A supervisor that is gone leaves a file
that refuses connections.

The socket is SOCK_SEQPACKET, so each message keeps its bounds: one kind
byte, then the payload.

- client to supervisor: ``h`` + JSON (the hello: ``{"stdin": bool, "size":
  [rows, cols] | null}``), ``i`` + bytes for the container's stdin (when the
  hello asked for it and the task was started with ``-i``), ``w`` + a
  ``struct winsize`` (the client's terminal was resized; tty only);
- supervisor to client: ``o`` + stdout, ``e`` + stderr (a tty's output is all
  ``o``), and ``x`` + ``wire.exit_message`` JSON when the task exits; then the
  supervisor closes the connection, as a restart starts a new run.

A client that leaves (detach keys, Ctrl-C) just closes its end. A client too
slow to take output for SEND_TIMEOUT seconds is let go, so that it cannot
stall the container and its log. Every client gets all output; the input of
all goes to the one stdin, as with docker.

``Attachments`` is the supervisor's side, ``Attached`` the client's.
``DetachKeys`` is docker's escape sequence, shared by both ends.
"""

from __future__ import annotations

# The C module: ``socket`` costs every ``ctl run`` milliseconds of enum building.
import _socket
import contextlib
import errno
import fcntl
import json
import os
import select
import signal
import struct
import termios
from typing import TYPE_CHECKING, Any, Final

from ctl.errdefs import FailedPrecondition
from ctl.fsutil import write_all
from ctl.runtime.state import ExitStatus
from ctl.runtime.supervisor.wire import exit_message

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

# How long the supervisor blocks on one client's full socket before letting it go.
SEND_TIMEOUT = 1.0
_MESSAGE = 65536 + 1
_SEQPACKET = _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC
_STREAM_KINDS = {"stdout": b"o", "stderr": b"e"}


SOCKET: Final = "attach.sock"


@contextlib.contextmanager
def _address(directory: Path) -> Iterator[str]:
    """_address is the socket's address in ``directory``, short whatever the path."""
    fd = os.open(directory, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}/{SOCKET}"
    finally:
        os.close(fd)


class DetachKeys:
    """DetachKeys passes typed bytes on, holding back a start of the detach keys.

    ``scan`` returns what the container gets now, and whether the whole
    sequence was typed. Keys that turn out not to be the sequence are passed
    on, as docker's escape proxy does.
    """

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = b""

    def scan(self, data: bytes) -> tuple[bytes, bool]:
        passed = bytearray()
        for byte in data:
            if byte != self.keys[len(self.held)]:
                passed += self.held
                self.held = b""
                if byte != self.keys[0]:
                    passed.append(byte)
                    continue
            self.held += bytes((byte,))
            if self.held == self.keys:
                self.held = b""
                return bytes(passed), True
        return bytes(passed), False


class _Client:
    def __init__(self, conn: _socket.socket) -> None:
        self.conn = conn
        self.stdin = False
        self.greeted = False


class Attachments:
    """Attachments is the supervisor's listener and its attached clients.

    The supervisor calls ``register`` with each run's poller, ``owns`` and
    ``handle`` for a ready descriptor, ``output`` for what the container
    writes, and ``exited`` once a run has ended.
    """

    def __init__(self, directory: Path) -> None:
        self.path = directory / SOCKET
        self.listener = _socket.socket(
            _socket.AF_UNIX, _socket.SOCK_SEQPACKET | _socket.SOCK_CLOEXEC
        )
        self.path.unlink(missing_ok=True)  # an earlier supervisor's
        with _address(directory) as address:
            self.listener.bind(address)
        self.listener.listen(8)
        self.listener.setblocking(False)
        self.clients: dict[int, _Client] = {}
        self._poller: Any = None

    def register(self, poller: Any) -> None:
        """register adds the listener and the clients to a run's poller."""
        self._poller = poller
        poller.register(self.listener.fileno(), select.POLLIN)
        for fd in self.clients:
            poller.register(fd, select.POLLIN)

    def owns(self, fd: int) -> bool:
        return fd == self.listener.fileno() or fd in self.clients

    def handle(self, fd: int, stdin: int | None, master: int | None) -> None:
        """handle serves a ready descriptor: a new client, or a client's message.

        ``stdin`` is the container's stdin now (None once closed), ``master``
        its pty (None without a tty).
        """
        if fd == self.listener.fileno():
            self._accept()
            return
        client = self.clients[fd]
        try:
            message = client.conn.recv(_MESSAGE)
        except OSError:
            message = b""
        if not message:
            self._drop(fd)
            return
        kind, payload = message[:1], message[1:]
        if kind == b"h" and not client.greeted:
            client.greeted = True
            with contextlib.suppress(ValueError, TypeError):
                hello = json.loads(payload)
                client.stdin = bool(hello.get("stdin"))
                size = hello.get("size")
                if size and master is not None:
                    _resize(master, struct.pack("HHHH", int(size[0]), int(size[1]), 0, 0))
        elif kind == b"i" and client.stdin and stdin is not None:
            with contextlib.suppress(OSError):
                write_all(stdin, payload)
        elif kind == b"w" and master is not None and len(payload) == 8:
            _resize(master, payload)

    def _accept(self) -> None:
        try:
            fd, _ = self.listener._accept()  # type: ignore[attr-defined]  # accept4, CLOEXEC
        except OSError:
            return
        conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_SEQPACKET, 0, fd)
        creds = conn.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, struct.calcsize("3i"))
        if struct.unpack("3i", creds)[1] != os.getuid():
            conn.close()
            return
        conn.settimeout(SEND_TIMEOUT)
        self.clients[conn.fileno()] = _Client(conn)
        if self._poller is not None:
            self._poller.register(conn.fileno(), select.POLLIN)

    def _drop(self, fd: int) -> None:
        client = self.clients.pop(fd)
        if self._poller is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._poller.unregister(fd)
        client.conn.close()

    def output(self, stream: str, data: bytes) -> None:
        """output copies what the container wrote to every client."""
        message = _STREAM_KINDS[stream] + data
        for fd, client in list(self.clients.items()):
            try:
                client.conn.send(message)
            except OSError:  # gone, or too slow (TimeoutError)
                self._drop(fd)

    def exited(self, status: ExitStatus, restarting: bool) -> None:
        """exited tells every client how the run ended, and lets them go.

        Without a restart to come, the listener closes too: an attach from
        now on is refused rather than left waiting.
        """
        message = b"x" + json.dumps(exit_message(status, restarting)).encode()
        for fd, client in list(self.clients.items()):
            with contextlib.suppress(OSError):
                client.conn.send(message)
            self._drop(fd)
        self._poller = None
        if not restarting:
            self.listener.close()
            with contextlib.suppress(OSError):
                self.path.unlink()


def _resize(master: int, winsize: bytes) -> None:
    with contextlib.suppress(OSError):
        fcntl.ioctl(master, termios.TIOCSWINSZ, winsize)


def winsize(fd: int) -> bytes | None:
    """winsize is the size of the terminal ``fd`` (a ``struct winsize``), or None."""
    try:
        return fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return None


class Attached:
    """Attached is a client's connection to a task's supervisor (``attach``).

    ``run`` copies the container's output to ``stdout``/``stderr`` and, with
    ``stdin``, what is typed to the container, until the task exits (its
    ExitStatus), the caller types the detach keys (None; ``detached`` is
    True), or the supervisor goes (ExitStatus with exit code None). With a
    tty and a terminal on ``stdin`` the terminal is raw meanwhile, and its
    resizes are passed on.
    """

    def __init__(self, conn: _socket.socket, tty: bool, stdin: bool, init_pid: int) -> None:
        self.conn = conn
        self.tty = tty
        self.stdin = stdin
        self.detached = False
        try:
            self._init_fd: int | None = os.pidfd_open(init_pid)
        except ProcessLookupError:
            self._init_fd = None

    @classmethod
    def connect(
        cls, directory: Path, init_pid: int, tty: bool, stdin: bool, size_of: int
    ) -> Attached:
        """connect says hello to the supervisor of the task in ``directory``.

        FailedPrecondition if it takes no attaches. ``size_of`` is the
        terminal whose size a tty gets (when it is one).
        """
        conn = _socket.socket(_socket.AF_UNIX, _SEQPACKET)
        try:
            with _address(directory) as address:
                conn.connect(address)
        except OSError as err:
            conn.close()
            raise FailedPrecondition(
                f"the supervisor of task {directory.name[:12]} takes no attaches: {err.strerror}",
                hint="it is exiting, or was started by an older ctl: restart the container",
            ) from None
        size = winsize(size_of) if tty else None
        rows_cols = list(struct.unpack("HHHH", size)[:2]) if size else None
        conn.send(b"h" + json.dumps({"stdin": stdin, "size": rows_cols}).encode())
        return cls(conn, tty, stdin, init_pid)

    def close(self) -> None:
        self.conn.close()
        if self._init_fd is not None:
            os.close(self._init_fd)
            self._init_fd = None

    def __enter__(self) -> Attached:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def signal(self, sig: int, frame: object = None) -> None:
        """signal sends ``sig`` to the container's init (``--sig-proxy``); a gone one is fine."""
        if self._init_fd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._init_fd, sig)

    @contextlib.contextmanager
    def forwarding_signals(self) -> Iterator[None]:
        """forwarding_signals passes the signals ``run`` forwards on to the container."""
        from ctl.runtime.supervisor.spawn import FORWARDED_SIGNALS

        forwarded = [sig for sig in FORWARDED_SIGNALS if sig != signal.SIGWINCH]
        previous = {sig: signal.signal(sig, self.signal) for sig in forwarded}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def run(self, stdin: int, stdout: int, stderr: int, detach_keys: bytes) -> ExitStatus | None:
        with self._terminal(stdin):
            return self._copy(stdin, stdout, stderr, DetachKeys(detach_keys))

    @contextlib.contextmanager
    def _terminal(self, stdin: int) -> Iterator[None]:
        """_terminal makes a tty's terminal raw, and passes its resizes on, while entered."""
        if not (self.tty and self.stdin and os.isatty(stdin)):
            yield
            return
        import tty

        saved = termios.tcgetattr(stdin)
        tty.setraw(stdin, termios.TCSANOW)

        def resized(sig: int, frame: object) -> None:
            size = winsize(stdin)
            if size is not None:
                with contextlib.suppress(OSError):
                    self.conn.send(b"w" + size)

        previous = signal.signal(signal.SIGWINCH, resized)
        try:
            yield
        finally:
            signal.signal(signal.SIGWINCH, previous)
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)

    def _copy(self, stdin: int, stdout: int, stderr: int, keys: DetachKeys) -> ExitStatus | None:
        poller = select.poll()
        poller.register(self.conn.fileno(), select.POLLIN)
        if self.stdin:
            poller.register(stdin, select.POLLIN)
        sinks = {b"o": stdout, b"e": stderr}
        while True:
            try:
                ready = poller.poll()
            except InterruptedError:
                continue
            for fd, _ in ready:
                if fd != self.conn.fileno():
                    data = _read(stdin)
                    if not data:
                        poller.unregister(stdin)  # the container's stdin stays open, as docker's
                        continue
                    if self.tty:
                        data, detached = keys.scan(data)
                        if detached:
                            self.detached = True
                            return None
                    if data:
                        self.conn.sendall(b"i" + data)
                    continue
                message = self.conn.recv(_MESSAGE)
                if not message:
                    return ExitStatus(exit_code=None)
                kind, payload = message[:1], message[1:]
                if kind == b"x":
                    return ExitStatus(**json.loads(payload)["exit"])
                sink = sinks.get(kind)
                if sink is not None:
                    with contextlib.suppress(BrokenPipeError):
                        write_all(sink, payload)


def _read(fd: int) -> bytes:
    try:
        return os.read(fd, _MESSAGE - 1)
    except OSError as err:
        if err.errno in (errno.EIO, errno.EBADF):
            return b""
        raise
