"""Container logs in docker's json-file format, with size-based rotation.

Each line of the file is one JSON object::

    {"log":"hello\\n","stream":"stdout","time":"2024-05-01T12:00:00.123456789Z"}

``log`` ends with ``\\n`` for a complete line; a line longer than
``PARTIAL_SIZE`` is cut into records without one, as docker does. When the
file would grow past ``max_size`` it is rotated: ``path`` becomes
``path.1``, ``path.1`` becomes ``path.2`` and so on up to ``max_files - 1``,
and the oldest is dropped (renames and unlinks, never truncation, so a
reader holding a file keeps reading it to its end).

The writer numbers its records from 0, across rotations: the first record
of every file but the log's very first carries its number as ``seq``::

    {"log":"hello\\n","stream":"stdout","time":"...","seq":120517}

Readers that do not know it (docker's among them) ignore the key. A
follower that finishes one file and next finds a file starting at a
higher number than it has counted knows how many records were rotated away
before it could read them. A file whose first record has no ``seq``
counts as starting at 0 (the first file, or one written before ``seq``).

One process writes a log (the task's supervisor); any number read it.

The ``local`` driver (``LOCAL``) keeps the same files, rotation and
``seq`` in a compact framing of its own, one line per record::

    O1714564800123456789 hello
    o1714564800123456790,120517 a partial line

The first character is the stream (``O`` stdout, ``E`` stderr; lower case:
a partial record, without the newline that ends the others), then the time
in nanoseconds, ``,seq`` on a file's first record, a space and the text with
``\\`` and newlines escaped. It is about a third of json-file's size for
short lines. With ``compress`` the rotated files are gzipped
(``path.1.gz``); readers take either name.
"""

from __future__ import annotations

import codecs
import collections
import contextlib
import itertools
import json
import os
import time
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from ctl.errdefs import FailedPrecondition
from ctl.fsutil import unlink_if_present, write_all

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator
    from pathlib import Path

DEFAULT_MAX_SIZE = 10 * 1024 * 1024
DEFAULT_MAX_FILES = 3
# docker's local driver's defaults.
LOCAL_MAX_SIZE = 20 * 1024 * 1024
LOCAL_MAX_FILES = 5
DRIVERS = ("json-file", "local", "none")
# docker's log copier buffer: a longer line is emitted in pieces of this size.
PARTIAL_SIZE = 16 * 1024
STREAMS = ("stdout", "stderr")
_LOG_MODE = 0o640


def rfc3339_nano(ns: int) -> str:
    """rfc3339_nano formats nanoseconds since the epoch as docker's log timestamps."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


def rotated_files(path: Path, max_files: int = DEFAULT_MAX_FILES) -> list[Path]:
    """rotated_files is every file of the log, oldest first (``path`` itself last).

    A rotated file may be stored gzipped, under its name plus ``.gz``.
    """
    return [path.with_name(f"{path.name}.{i}") for i in range(max_files - 1, 0, -1)] + [path]


class LogConfig(NamedTuple):
    """LogConfig is ``--log-driver`` and ``--log-opt``: max-size, max-file, compress."""

    driver: str = "json-file"
    max_size: int = DEFAULT_MAX_SIZE
    max_files: int = DEFAULT_MAX_FILES
    compress: bool = False

    def to_json(self) -> dict[str, Any]:
        return self._asdict()

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> LogConfig:
        driver = str(doc.get("driver", "json-file"))
        return cls(
            driver=driver if driver in DRIVERS else "json-file",
            max_size=int(doc.get("max_size") or DEFAULT_MAX_SIZE),
            max_files=int(doc.get("max_files") or DEFAULT_MAX_FILES),
            compress=bool(doc.get("compress")),
        )

    def path(self, json_log: Path) -> Path:
        """path is the log's file, next to where json-file keeps it (``<id>-json.log``)."""
        if self.driver == "local":
            return json_log.with_name(json_log.name.replace("-json.log", "-local.log"))
        return json_log

    def format(self) -> LogFormat:
        return LOCAL if self.driver == "local" else JSON_FILE


class LogFormat(Protocol):
    """LogFormat is how a driver frames a record as one line of its files.

    ``record`` frames ``text`` (a whole line ends with ``\\n``) with its
    stream, time in nanoseconds and, on a file's first record, ``seq``
    (0: none). ``parse`` reads a line back, None if it is damaged;
    ``seq_of`` is a line's ``seq``, 0 if it has none.
    """

    def record(self, text: str, stream: str, ns: int, seq: int) -> bytes: ...

    def parse(self, line: bytes, skipped: int) -> LogEntry | None: ...

    def seq_of(self, line: bytes) -> int: ...


class _JsonFile:
    def record(self, text: str, stream: str, ns: int, seq: int) -> bytes:
        fields: dict[str, object] = {"log": text, "stream": stream, "time": rfc3339_nano(ns)}
        if seq:
            fields["seq"] = seq
        return json.dumps(fields, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"

    def parse(self, line: bytes, skipped: int) -> LogEntry | None:
        try:
            record = json.loads(line)
        except ValueError:
            return None
        if not isinstance(record, dict):
            return None
        return LogEntry(
            str(record.get("stream", "stdout")),
            str(record.get("log", "")),
            str(record.get("time", "")),
            skipped,
        )

    def seq_of(self, line: bytes) -> int:
        try:
            record = json.loads(line)
        except ValueError:
            return 0
        seq = record.get("seq", 0) if isinstance(record, dict) else 0
        return seq if isinstance(seq, int) and seq > 0 else 0


class _Local:
    _STREAM_CODES = {"stdout": "O", "stderr": "E"}
    _CODE_STREAMS = {"O": "stdout", "E": "stderr"}

    def record(self, text: str, stream: str, ns: int, seq: int) -> bytes:
        code = self._STREAM_CODES.get(stream, "O")
        if text.endswith("\n"):
            text = text[:-1]
        else:
            code = code.lower()
        escaped = text.replace("\\", "\\\\").replace("\n", "\\n")
        head = f"{code}{ns},{seq}" if seq else f"{code}{ns}"
        return f"{head} {escaped}\n".encode()

    def _head(self, line: bytes) -> tuple[str, int, int, bytes] | None:
        head, space, body = line.partition(b" ")
        if not space or not head:
            return None
        code = chr(head[0])
        stamp, _, seq = head[1:].partition(b",")
        if code.upper() not in self._CODE_STREAMS or not stamp.isdigit():
            return None
        return code, int(stamp), int(seq) if seq.isdigit() else 0, body

    def parse(self, line: bytes, skipped: int) -> LogEntry | None:
        head = self._head(line)
        if head is None:
            return None
        code, ns, _, body = head
        text = "\\".join(
            part.replace("\\n", "\n") for part in body.decode(errors="replace").split("\\\\")
        )
        if code.isupper():
            text += "\n"
        return LogEntry(self._CODE_STREAMS[code.upper()], text, rfc3339_nano(ns), skipped)

    def seq_of(self, line: bytes) -> int:
        head = self._head(line)
        return head[2] if head is not None else 0


JSON_FILE: LogFormat = _JsonFile()
LOCAL: LogFormat = _Local()


class LogWriter:
    """LogWriter appends a container's output to a log (json-file's format, or ``fmt``).

    ``write`` takes raw bytes as they come from a pipe or pty; complete lines
    become records at once, the rest waits for its newline (or for
    ``PARTIAL_SIZE`` bytes, or ``flush``). With ``compress`` rotated files
    are gzipped (the caller imports ``gzip`` beforehand, as the supervisor
    must: see ``ctl.runtime.supervisor``).
    """

    def __init__(
        self,
        path: Path,
        max_size: int = DEFAULT_MAX_SIZE,
        max_files: int = DEFAULT_MAX_FILES,
        *,
        fmt: LogFormat = JSON_FILE,
        compress: bool = False,
    ) -> None:
        self.path = path
        self.max_size = max_size
        self.max_files = max(1, max_files)
        self.fmt = fmt
        self.compress = compress
        self._fd = self._open()
        self._size = os.fstat(self._fd).st_size
        # The number of the next record. Finding it in a log that was there
        # before means counting its newest file: put off until a rotation needs it.
        self._seq: int | None = (
            None if self._size else _next_seq(rotated_files(path, self.max_files), fmt)
        )
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
        stamp = time.time_ns()
        batch: list[bytes] = []
        size = 0
        for text in texts:
            record = self._record(text, stream, stamp, first=self._size + size == 0)
            if self._size + size + len(record) > self.max_size and self._size + size > 0:
                self._write(b"".join(batch))
                batch, size = [], 0
                self._rotate()
                record = self._record(text, stream, stamp, first=True)
            batch.append(record)
            size += len(record)
            if self._seq is not None:
                self._seq += 1
        self._write(b"".join(batch))

    def _record(self, text: str, stream: str, stamp: int, *, first: bool) -> bytes:
        return self.fmt.record(text, stream, stamp, (self._seq or 0) if first else 0)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]
        self._size += len(data)

    def _rotate(self) -> None:
        os.close(self._fd)
        if self._seq is None:
            self._seq = _next_seq([self.path], self.fmt)
        files = rotated_files(self.path, self.max_files)
        if len(files) == 1:
            # Unlinked, not truncated: a reader holding the file reads it to its end.
            unlink_if_present(self.path)
        elif self.compress:
            self._rotate_compressed(files)
        else:
            for older, newer in itertools.pairwise(files):
                with contextlib.suppress(FileNotFoundError):
                    os.rename(newer, older)
        self._fd = self._open(truncate=True)
        self._size = 0

    def _rotate_compressed(self, files: list[Path]) -> None:
        """_rotate_compressed moves the files along as ``.gz``, the newest gzipped on the way.

        The newest is compressed first, under a temporary name, and unlinked
        last: a reader sees its records in one of the two files at every moment.
        """
        import gzip  # imported by the supervisor's spawner when compress is on

        staged = files[-2].with_name(f".{files[-2].name}.gz")
        with (
            open(self.path, "rb") as plain,
            open(staged, "wb") as packed,
            gzip.GzipFile(fileobj=packed, mode="wb", compresslevel=1, mtime=0) as gz,
        ):
            while chunk := plain.read(1 << 20):
                gz.write(chunk)
        zipped = [file.with_name(f"{file.name}.gz") for file in files[:-1]]
        for older, newer in itertools.pairwise(zipped):
            with contextlib.suppress(FileNotFoundError):
                os.rename(newer, older)
        os.rename(staged, zipped[-1])
        os.unlink(self.path)

    def close(self) -> None:
        if self._fd >= 0:
            self.flush()
            os.close(self._fd)
            self._fd = -1


def _next_seq(files: list[Path], fmt: LogFormat) -> int:
    """_next_seq is the number of the next record of a log: after the last in its newest file."""
    for path in reversed(files):
        fd = _open_ro(path)
        if fd is None:
            continue
        try:
            first = _first_seq(fd, fmt)
            if first is not None:
                return first + _count_lines(fd)
        finally:
            os.close(fd)
    return 0


class LogEntry(NamedTuple):
    """LogEntry is one record of a log: ``text`` keeps its newline (absent if partial).

    ``skipped`` is how many records came between this one and the one read
    before it and were rotated away before the reader got to them.
    """

    stream: str
    text: str
    time: str
    skipped: int = 0


def _entries(lines: Iterable[bytes], fmt: LogFormat, skipped: int = 0) -> Iterator[LogEntry]:
    """_entries parses records; the first that parses carries ``skipped``."""
    for line in lines:
        entry = fmt.parse(line, skipped)
        if entry is not None:
            skipped = 0
            yield entry


def _first_seq(fd: int, fmt: LogFormat) -> int | None:
    """_first_seq is the number of a file's first record; None while it has no complete line."""
    head = bytearray()
    while (end := head.find(b"\n")) < 0:
        chunk = os.pread(fd, 65536, len(head))
        if not chunk:
            return None
        head += chunk
    return fmt.seq_of(bytes(head[:end]))


def _count_lines(fd: int) -> int:
    count = offset = 0
    while chunk := os.pread(fd, 1 << 20, offset):
        count += chunk.count(b"\n")
        offset += len(chunk)
    return count


def _open_ro(path: Path) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None


def _open_unpacked(path: Path) -> int | None:
    """_open_unpacked is a rotated file stored gzipped (``path.gz``), unpacked into memory.

    A damaged one counts as missing: its records are lost, not the listing.
    """
    import gzip

    try:
        with gzip.open(path.with_name(f"{path.name}.gz"), "rb") as packed:
            fd = os.memfd_create(path.name, os.MFD_CLOEXEC)
            try:
                while chunk := packed.read(1 << 20):
                    write_all(fd, chunk)
            except BaseException:
                os.close(fd)
                raise
    except (OSError, EOFError):
        return None
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


class _LogFile:
    """_LogFile is one file of a log, read from its start, its records counted.

    ``packed`` is a rotated file that was stored gzipped.
    """

    __slots__ = ("buf", "count", "fd", "fmt", "ino", "packed", "seq")

    def __init__(self, fd: int, fmt: LogFormat, packed: bool = False) -> None:
        self.fd = fd
        self.fmt = fmt
        self.packed = packed
        self.ino = os.fstat(fd).st_ino
        self.seq: int | None = None
        self.count = 0
        self.buf = bytearray()

    def chunks(self) -> Iterator[list[bytes]]:
        """chunks reads to the file's current end, in lists of complete lines.

        A partial last line waits in ``buf`` for the rest of it.
        """
        while chunk := os.read(self.fd, 65536):
            self.buf += chunk
            end = self.buf.rfind(b"\n")
            if end < 0:
                continue
            lines = bytes(self.buf[:end]).split(b"\n")
            del self.buf[: end + 1]
            if self.count == 0 and self.seq is None:
                self.seq = self.fmt.seq_of(lines[0])
            self.count += len(lines)
            yield lines

    def rewound(self) -> bool:
        """rewound is whether the file was cut shorter than what was read (by hand:
        the writer never truncates); then reading starts again from its beginning."""
        if os.fstat(self.fd).st_size >= os.lseek(self.fd, 0, os.SEEK_CUR):
            return False
        os.lseek(self.fd, 0, os.SEEK_SET)
        self.buf.clear()
        self.count, self.seq = 0, None
        return True

    def close(self) -> None:
        os.close(self.fd)


class _Chain:
    """_Chain reads the files of a log one after another, counting the records
    between them that it never saw: after a file whose records it counted up
    to N, a file whose first record is N + k means k were rotated away."""

    def __init__(self, fmt: LogFormat) -> None:
        self.fmt = fmt
        self.expected: int | None = None

    def lines(self, log: _LogFile) -> Iterator[tuple[int, list[bytes]]]:
        """lines reads ``log`` to its current end: (records skipped before them, lines)."""
        for lines in log.chunks():
            skipped = 0
            if log.seq is not None:
                if log.count == len(lines) and self.expected is not None:
                    skipped = max(0, log.seq - self.expected)
                self.expected = log.seq + log.count
            yield skipped, lines

    def read(self, log: _LogFile) -> Iterator[LogEntry]:
        for skipped, lines in self.lines(log):
            yield from _entries(lines, self.fmt, skipped)

    def read_all(self, logs: list[_LogFile]) -> Iterator[LogEntry]:
        """read_all reads each of ``logs`` to its end, and closes them all."""
        try:
            for log in logs:
                yield from self.read(log)
        finally:
            for log in logs:
                log.close()


def _open_files(
    path: Path, max_files: int, fmt: LogFormat, after: _LogFile | None = None
) -> list[_LogFile]:
    """_open_files opens the files of a log, oldest first; with ``after``, those newer than it.

    They are opened newest first: a rotation meanwhile can then show one
    file under two names (the second is closed, by inode), never hide one
    that stays on disk. They are ordered by their first record's ``seq``,
    read once all are open: a file still empty then is the newest, since a
    file is rotated only once written to. Files without ``seq`` keep the
    order of their names. ``after`` stays open, so its inode cannot be
    reused meanwhile. A gzipped file is a copy of one that may still be
    open under its plain name, or under the name it was renamed from: the
    copy is closed, by its first ``seq``.
    """
    opened: dict[int, tuple[int, _LogFile]] = {}
    after_position = float("inf")
    for position, name in enumerate(reversed(rotated_files(path, max_files))):
        fd = _open_ro(name)
        packed = fd is None and name != path
        if packed:
            fd = _open_unpacked(name)
        if fd is None:
            continue
        log = _LogFile(fd, fmt, packed)
        if after is not None and log.ino == after.ino:
            after_position = position
            log.close()
        elif log.ino in opened:
            log.close()
        else:
            opened[log.ino] = (position, log)
    found: list[tuple[tuple[bool, int, float], _LogFile]] = []
    for _, log in opened.values():
        log.seq = _first_seq(log.fd, fmt)
    if after is not None and after.seq is None:
        # Opened while still empty and filled since (a file is rotated only once written to):
        # without its number, every file would look newer than it.
        after.seq = _first_seq(after.fd, fmt)
    seen_seqs = {log.seq for _, log in opened.values() if not log.packed and log.seq is not None}
    if after is not None and after.seq is not None:
        seen_seqs.add(after.seq)
    for position, log in opened.values():
        if log.packed and log.seq in seen_seqs:
            log.close()
            continue
        if log.packed and log.seq is not None:
            seen_seqs.add(log.seq)  # the rename of a copy, opened under both names
        found.append(((log.seq is None, log.seq or 0, -float(position)), log))
    after_key = (False, after.seq or 0, -after_position) if after is not None else None
    ordered = sorted(found, key=lambda pair: pair[0])
    for key, log in ordered:
        if after_key is not None and key <= after_key:
            log.close()
    return [log for key, log in ordered if after_key is None or key > after_key]


def read_logs(
    path: Path,
    tail: int | None = None,
    follow: bool = False,
    stop: Callable[[], bool] | None = None,
    *,
    max_files: int = DEFAULT_MAX_FILES,
    fmt: LogFormat = JSON_FILE,
    poll_interval: float = 0.1,
) -> Iterator[LogEntry]:
    """read_logs yields the records of a log, oldest first, rotated files included.

    ``tail`` N yields only the last N records. With ``follow`` it then waits
    for new records, across rotation (a new inode at ``path``), until
    ``stop()`` returns True and the file is drained; without ``stop`` it
    follows until the caller stops iterating. A follower slower than the
    writer loses the files rotated away before it reached them: the next
    entry it yields says how many records that was (``LogEntry.skipped``;
    not within ``tail``'s window, where only rotations racing the opening of
    the files could make one).
    Formatting (``--timestamps``) is the caller's: every entry carries its
    time.
    """
    chain = _Chain(fmt)
    files = _open_files(path, max_files, fmt)
    current = files.pop() if files else None
    try:
        if tail is not None:
            last: collections.deque[bytes] = collections.deque(maxlen=max(tail, 0))
            for log in [*files, *([current] if current is not None else [])]:
                for _, lines in chain.lines(log):
                    last.extend(lines)
            yield from _entries(last, fmt)
        else:
            for log in files:
                yield from chain.read(log)
            if current is not None:
                yield from chain.read(current)
        if follow:
            # _follow owns the file from here on, and closes it.
            handed, current = current, None
            yield from _follow(path, chain, handed, stop, poll_interval, max_files)
    finally:
        for log in files:
            log.close()
        if current is not None:
            current.close()


def _ino(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except FileNotFoundError:
        return None


def _newer_files(
    path: Path, max_files: int, fmt: LogFormat, current: _LogFile | None
) -> list[_LogFile]:
    """_newer_files opens the files that came after ``current``: none until it was rotated."""
    if current is None:
        return _open_files(path, max_files, fmt)
    if _ino(path) in (None, current.ino):
        return []
    return _open_files(path, max_files, fmt, after=current)


def _follow(
    path: Path,
    chain: _Chain,
    current: _LogFile | None,
    stop: Callable[[], bool] | None,
    poll_interval: float,
    max_files: int,
) -> Iterator[LogEntry]:
    stopping = False
    try:
        while True:
            progressed = False
            if current is not None:
                for entry in chain.read(current):
                    progressed = True
                    yield entry
            if not progressed:
                newer = _newer_files(path, max_files, chain.fmt, current)
                if newer:
                    done = [current] if current is not None else []
                    current = newer.pop()
                    # The writer closes a file before it renames it: this read of it is its last.
                    yield from chain.read_all([*done, *newer])
                    progressed = True
                elif current is not None:
                    progressed = current.rewound()
            if progressed:
                continue
            if stopping:
                return
            if stop is not None and stop():
                # One more pass: what was written before stop() turned true is still unread.
                stopping = True
                continue
            time.sleep(poll_interval)
    finally:
        if current is not None:
            current.close()


def read_container_logs(
    json_log: Path,
    config: LogConfig | None,
    tail: int | None = None,
    follow: bool = False,
    stop: Callable[[], bool] | None = None,
) -> Iterator[LogEntry]:
    """read_container_logs is ``read_logs`` for a container whose json-file log would be
    ``json_log``, as its driver keeps it; FailedPrecondition for the ``none`` driver."""
    config = config or LogConfig()
    if config.driver == "none":
        # docker's words.
        raise FailedPrecondition("configured logging driver does not support reading")
    return read_logs(
        config.path(json_log),
        tail,
        follow,
        stop,
        max_files=config.max_files,
        fmt=config.format(),
    )


class _Discarded:
    """_Discarded is the ``none`` driver's log: output is copied to an attached caller only."""

    def write(self, stream: str, data: bytes) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def container_log_writer(json_log: Path, config: LogConfig | None) -> LogWriter | _Discarded:
    """container_log_writer opens a container's log as its driver keeps it."""
    config = config or LogConfig()
    if config.driver == "none":
        return _Discarded()
    return LogWriter(
        config.path(json_log),
        config.max_size,
        config.max_files,
        fmt=config.format(),
        compress=config.compress,
    )
