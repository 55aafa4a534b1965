"""FileLock across processes, and waiting for a supervisor to be gone."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import time
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest

from ctl import fsutil
from ctl.errdefs import Unavailable
from ctl.runtime import state


def _hold(path: Path, held: Event, go: Event) -> None:
    with fsutil.FileLock(path, remove=True):
        held.set()
        go.wait(10)


def test_exclusive_lock_times_out_while_held(tmp_path: Path) -> None:
    path = tmp_path / "locks" / "a.lock"
    with fsutil.FileLock(path):
        with pytest.raises(Unavailable, match="the thing is locked"):
            fsutil.FileLock(path, timeout=0.05, what="the thing").acquire()
        with pytest.raises(Unavailable):
            fsutil.FileLock(path, shared=True, timeout=0).acquire()


def test_shared_locks_coexist(tmp_path: Path) -> None:
    path = tmp_path / "s.lock"
    with (
        fsutil.FileLock(path, shared=True),
        fsutil.FileLock(path, shared=True, timeout=0),
        pytest.raises(Unavailable),
    ):
        fsutil.FileLock(path, timeout=0).acquire()


def test_removing_lock_leaves_no_file_and_excludes_a_waiter(tmp_path: Path) -> None:
    """A waiter that locked the unlinked file must not share the lock with a newcomer."""
    path = tmp_path / "c.lock"
    held, go = multiprocessing.Event(), multiprocessing.Event()
    holder = multiprocessing.Process(target=_hold, args=(path, held, go))
    holder.start()
    try:
        assert held.wait(10)
        waiter = fsutil.FileLock(path, remove=True)
        go.set()
        waiter.acquire()  # the holder unlinked its file: the waiter locks a new one
        try:
            assert path.exists()
            with pytest.raises(Unavailable):
                fsutil.FileLock(path, timeout=0).acquire()
        finally:
            waiter.release()
        assert not path.exists()
    finally:
        go.set()
        holder.join(10)


def test_a_removing_lock_cannot_be_shared(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        fsutil.FileLock(tmp_path / "x.lock", shared=True, remove=True)


def _record_of(pid: int) -> state.TaskRecord:
    record = {
        "supervisor_pid": pid,
        "supervisor_start_time": state.process_start_time(pid),
        "boot_id": state.boot_id(),
    }
    return record  # type: ignore[return-value]


def test_wait_supervisor_exit_returns_when_it_exits() -> None:
    proc = subprocess.Popen(["sleep", "0.3"])
    record = _record_of(proc.pid)
    start = time.monotonic()
    # Reaped in a thread-free way: poll() after the wait saw the exit.
    assert state.wait_supervisor_exit(record, 10)
    assert time.monotonic() - start < 5
    proc.wait()


def test_wait_supervisor_exit_times_out_then_kills() -> None:
    proc = subprocess.Popen(["sleep", "60"])
    record = _record_of(proc.pid)
    try:
        assert not state.wait_supervisor_exit(record, 0.1)
        assert state.wait_supervisor_exit(record, 0.1, kill=True)
        assert proc.wait(5) == -9
    finally:
        proc.kill()
        proc.wait()


def test_wait_supervisor_exit_ignores_a_reused_pid() -> None:
    record = _record_of(os.getpid())
    record["supervisor_start_time"] = -1  # another process had this pid
    assert state.wait_supervisor_exit(record, 10, kill=True)
