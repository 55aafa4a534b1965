"""Container logs in docker's json-file format, with size-based rotation.

Each line of the file is one JSON object::

    {"log":"hello\\n","stream":"stdout","time":"2024-05-01T12:00:00.123456789Z"}

``log`` ends with ``\\n`` for a complete line; a line longer than
``PARTIAL_SIZE`` is cut into records without one, as docker does. When the
file would grow past ``max_size`` it is rotated: ``path`` becomes
``path.1``, ``path.1`` becomes ``path.2`` and so on up to ``max_files - 1``
(renames, so a reader holding the old file keeps reading it to its end).
With ``max_files`` 1 the file is truncated instead.

One process writes a log (the task's supervisor); any number read it.
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import itertools
import json
import os
import time
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

DEFAULT_MAX_SIZE = 10 * 1024 * 1024
DEFAULT_MAX_FILES = 3
# docker's log copier buffer: a longer line is emitted in pieces of this size.
PARTIAL_SIZE = 16 * 1024
STREAMS = ("stdout", "stderr")
_LOG_MODE = 0o640


def rfc3339_nano(ns: int) -> str:
    """rfc3339_nano formats nanoseconds since the epoch as docker's log timestamps."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


def rotated_files(path: Path, max_files: int = DEFAULT_MAX_FILES) -> list[Path]:
    """rotated_files is every file of the log, oldest first (``path`` itself last)."""
    return [path.with_name(f"{path.name}.{i}") for i in range(max_files - 1, 0, -1)] + [path]


class LogWriter:
    """LogWriter appends a container's output to a json-file log.

    ``write`` takes raw bytes as they come from a pipe or pty; complete lines
    become records at once, the rest waits for its newline (or for
    ``PARTIAL_SIZE`` bytes, or ``flush``).
    """

    def __init__(
        self, path: Path, max_size: int = DEFAULT_MAX_SIZE, max_files: int = DEFAULT_MAX_FILES
    ) -> None:
        self.path = path
        self.max_size = max_size
        self.max_files = max(1, max_files)
        self._fd = self._open()
        self._size = os.fstat(self._fd).st_size
        self._pending = {s: "" for s in STREAMS}
        self._decoders = {s: codecs.getincrementaldecoder("utf-8")("replace") for s in STREAMS}

    def _open(self, truncate: bool = False) -> int:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
        return os.open(self.path, flags | (os.O_TRUNC if truncate else 0), _LOG_MODE)

    def write(self, stream: str, data: bytes) -> None:
        text = self._pending[stream] + self._decoders[stream].decode(data)
        lines = text.splitlines(keepends=True)
        rest = lines.pop() if lines and not lines[-1].endswith("\n") else ""
        while len(rest) >= PARTIAL_SIZE:
            lines.append(rest[:PARTIAL_SIZE])
            rest = rest[PARTIAL_SIZE:]
        self._pending[stream] = rest
        self._emit(stream, lines)

    def flush(self) -> None:
        """flush writes out partial lines, as at the end of the output."""
        for stream in STREAMS:
            rest = self._pending[stream] + self._decoders[stream].decode(b"", final=True)
            self._pending[stream] = ""
            if rest:
                self._emit(stream, [rest])

    def _emit(self, stream: str, texts: list[str]) -> None:
        if not texts:
            return
        stamp = rfc3339_nano(time.time_ns())
        batch: list[bytes] = []
        size = 0
        for text in texts:
            record = (
                json.dumps(
                    {"log": text, "stream": stream, "time": stamp},
                    ensure_ascii=False,
                    separators=(",", ":"),
                ).encode()
                + b"\n"
            )
            if self._size + size + len(record) > self.max_size and self._size + size > 0:
                self._write(b"".join(batch))
                batch, size = [], 0
                self._rotate()
            batch.append(record)
            size += len(record)
        self._write(b"".join(batch))

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        self._size += len(data)

    def _rotate(self) -> None:
        os.close(self._fd)
        files = rotated_files(self.path, self.max_files)
        for older, newer in itertools.pairwise(files):
            with contextlib.suppress(FileNotFoundError):
                os.rename(newer, older)
        self._fd = self._open(truncate=True)
        self._size = 0

    def close(self) -> None:
        if self._fd >= 0:
            self.flush()
            os.close(self._fd)
            self._fd = -1


class LogEntry(NamedTuple):
    """LogEntry is one record of a log: ``text`` keeps its newline (absent if partial)."""

    stream: str
    text: str
    time: str


def _parse(line: bytes) -> LogEntry | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    return LogEntry(
        str(record.get("stream", "stdout")), str(record.get("log", "")), str(record.get("time", ""))
    )


def _open_ro(path: Path) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None


def _lines(fd: int, buf: bytearray) -> Iterator[bytes]:
    """_lines reads ``fd`` to its current end and yields complete lines; the rest stays in buf."""
    while chunk := os.read(fd, 65536):
        buf += chunk
        end = buf.rfind(b"\n")
        if end < 0:
            continue
        complete = bytes(buf[: end + 1])
        del buf[: end + 1]
        yield from complete.splitlines()


def read_logs(
    path: Path,
    tail: int | None = None,
    follow: bool = False,
    stop: Callable[[], bool] | None = None,
    *,
    max_files: int = DEFAULT_MAX_FILES,
    poll_interval: float = 0.1,
) -> Iterator[LogEntry]:
    """read_logs yields the records of a log, oldest first, rotated files included.

    ``tail`` N yields only the last N records. With ``follow`` it then waits
    for new records, across rotation (a new inode at ``path``) and truncation,
    until ``stop()`` returns True and the file is drained; without ``stop`` it
    follows until the caller stops iterating. Formatting (``--timestamps``)
    is the caller's: every entry carries its time.
    """
    # Open every file before reading any, so a rotation meanwhile cannot make
    # us skip one.
    older = [fd for p in rotated_files(path, max_files)[:-1] if (fd := _open_ro(p)) is not None]
    current = _open_ro(path)
    buf = bytearray()
    try:
        if tail is not None:
            last: collections.deque[bytes] = collections.deque(maxlen=max(tail, 0))
            for fd in older:
                last.extend(_lines(fd, bytearray()))
            if current is not None:
                last.extend(_lines(current, buf))
            yield from filter(None, map(_parse, last))
        else:
            for fd in older:
                yield from filter(None, map(_parse, _lines(fd, bytearray())))
            if current is not None:
                yield from filter(None, map(_parse, _lines(current, buf)))
        if follow:
            # _follow owns the descriptor from here on, and closes it.
            handed, current = current, None
            yield from _follow(path, handed, buf, stop, poll_interval, max_files)
    finally:
        for fd in older:
            os.close(fd)
        if current is not None:
            os.close(current)


def _files_after(path: Path, max_files: int, ino: int) -> list[int]:
    """_files_after opens the log files newer than the one with inode ``ino``, oldest first.

    The last is ``path`` itself. All are opened before any is read, so no
    rotation meanwhile can take one away. When ``ino`` is gone (rotated out),
    every file left is newer than it.
    """
    opened = [fd for p in rotated_files(path, max_files) if (fd := _open_ro(p)) is not None]
    inodes = [os.fstat(fd).st_ino for fd in opened]
    start = inodes.index(ino) + 1 if ino in inodes else 0
    for fd in opened[:start]:
        os.close(fd)
    newer = opened[start:]
    if not newer or inodes[-1] != _ino(path):
        # path itself is missing or was replaced again: follow it by name.
        current = _open_ro(path)
        if current is not None:
            newer.append(current)
    return newer


def _ino(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def _follow(
    path: Path,
    fd: int | None,
    buf: bytearray,
    stop: Callable[[], bool] | None,
    poll_interval: float,
    max_files: int,
) -> Iterator[LogEntry]:
    stopping = False
    try:
        while True:
            if fd is not None:
                got = False
                for line in _lines(fd, buf):
                    got = True
                    entry = _parse(line)
                    if entry is not None:
                        yield entry
                if got:
                    continue
                ino = _ino(path)
                if ino is not None and ino != os.fstat(fd).st_ino:
                    # Rotated: read what the writer added before renaming, then
                    # the files that came after this one (more than one if the
                    # writer rotated again meanwhile), then go on with the new one.
                    yield from filter(None, map(_parse, _lines(fd, buf)))
                    done = os.fstat(fd).st_ino
                    os.close(fd)
                    newer = _files_after(path, max_files, done)
                    fd, buf = (newer.pop() if newer else None), bytearray()
                    try:
                        for older in newer:
                            yield from filter(None, map(_parse, _lines(older, bytearray())))
                    finally:
                        for older in newer:
                            os.close(older)
                    continue
                if os.fstat(fd).st_size < os.lseek(fd, 0, os.SEEK_CUR):
                    os.lseek(fd, 0, os.SEEK_SET)
                    buf.clear()
                    continue
            else:
                fd = _open_ro(path)
                if fd is not None:
                    continue
            if stopping:
                return
            if stop is not None and stop():
                # One more pass: what was written before stop() turned true is still unread.
                stopping = True
                continue
            time.sleep(poll_interval)
    finally:
        if fd is not None:
            os.close(fd)
