"""Progress of blob transfers: a live line per blob on a terminal, nothing elsewhere."""

from __future__ import annotations

import sys
import time

# typing and threading are not imported at run time: `run` reaches this module
# for NoProgress alone, and start-up time is a feature (see ctl.main).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Protocol, TextIO

    from ctl.oci import Descriptor

    class Progress(Protocol):
        """Progress receives transfer events; implementations must be thread-safe."""

        def started(self, desc: Descriptor, kind: str, offset: int) -> None: ...

        def advanced(self, desc: Descriptor, nbytes: int) -> None: ...

        def finished(self, desc: Descriptor, status: str) -> None:
            """finished reports ``done``, ``exists``, ``unpacked`` or ``failed``."""
            ...

        def close(self) -> None: ...


class NoProgress:
    """NoProgress ignores every event (pipes, ``-q``, the Python API)."""

    def started(self, desc: Descriptor, kind: str, offset: int) -> None:
        pass

    def advanced(self, desc: Descriptor, nbytes: int) -> None:
        pass

    def finished(self, desc: Descriptor, status: str) -> None:
        pass

    def close(self) -> None:
        pass


def human_size(n: float) -> str:
    """human_size prints a byte count the way docker does (decimal units, 3 digits)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.3g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1000
    raise AssertionError("unreachable")


class _Row:
    __slots__ = ("done", "kind", "offset", "start", "start_offset", "status", "total")

    def __init__(self, kind: str, total: int, offset: int) -> None:
        self.kind = kind
        self.total = total
        self.offset = offset
        self.start_offset = offset
        self.start = time.monotonic()
        self.status = "downloading"
        self.done = False


class TerminalProgress:
    """TerminalProgress redraws one line per blob and a total, at most 10 times a second."""

    def __init__(self, out: TextIO | None = None) -> None:
        import threading

        self._out = out or sys.stderr
        self._rows: dict[str, _Row] = {}
        self._lock = threading.Lock()
        self._drawn = 0
        self._last = 0.0
        self._start = time.monotonic()

    def started(self, desc: Descriptor, kind: str, offset: int) -> None:
        with self._lock:
            self._rows[desc.digest] = _Row(kind, desc.size, offset)
            self._draw(force=True)

    def advanced(self, desc: Descriptor, nbytes: int) -> None:
        with self._lock:
            self._rows[desc.digest].offset += nbytes
            self._draw()

    def finished(self, desc: Descriptor, status: str) -> None:
        with self._lock:
            row = self._rows.setdefault(desc.digest, _Row("blob", desc.size, desc.size))
            row.status = status
            row.done = True
            if status != "failed":
                row.offset = row.total
            self._draw(force=True)

    def close(self) -> None:
        with self._lock:
            self._draw(force=True)

    def _draw(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        lines = []
        total = done = fetched = 0
        for digest, row in self._rows.items():
            total += row.total
            done += row.offset
            fetched += row.offset - row.start_offset
            elapsed = max(now - row.start, 1e-3)
            if row.done:
                state = {"done": "done", "exists": "already exists"}.get(row.status, row.status)
            else:
                rate = (row.offset - row.start_offset) / elapsed
                state = f"{human_size(row.offset)}/{human_size(row.total)} {human_size(rate)}/s"
            lines.append(f"{row.kind:<8} {digest[7:19]}  {state}")
        elapsed = max(now - self._start, 1e-3)
        lines.append(
            f"total    {human_size(done)}/{human_size(total)}  "
            f"{human_size(fetched / elapsed)}/s  {elapsed:.1f}s"
        )
        up = f"\x1b[{self._drawn}F" if self._drawn else ""
        self._out.write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
        self._out.flush()
        self._drawn = len(lines)


def for_stream(quiet: bool, stream: TextIO | None = None) -> Progress:
    """for_stream picks live progress on a terminal and none in pipes or with ``-q``."""
    out = stream or sys.stderr
    if quiet or not out.isatty():
        return NoProgress()
    return TerminalProgress(out)
