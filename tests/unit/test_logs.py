"""The json-file log: record format, partial lines, rotation, and reading (tail, follow)."""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

import pytest

from ctl.runtime.logs import (
    PARTIAL_SIZE,
    LogEntry,
    LogWriter,
    read_logs,
    rfc3339_nano,
    rotated_files,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path


def records(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def write_numbered(path: Path, count: int, max_size: int, max_files: int) -> None:
    """write_numbered writes lines ``line 00`` to ``line {count - 1}`` with a new LogWriter."""
    log = LogWriter(path, max_size=max_size, max_files=max_files)
    for i in range(count):
        log.write("stdout", f"line {i:02}\n".encode())
    log.close()


def texts(path: Path, **kwargs: object) -> list[str]:
    return [entry.text for entry in read_logs(path, **kwargs)]  # type: ignore[arg-type]


def test_records_are_docker_json_file_lines(tmp_path: Path) -> None:
    log = LogWriter(tmp_path / "log.json")
    log.write("stdout", b"one\ntwo\n")
    log.write("stderr", b"oops\n")
    log.close()
    got = records(tmp_path / "log.json")
    assert [(r["stream"], r["log"]) for r in got] == [
        ("stdout", "one\n"),
        ("stdout", "two\n"),
        ("stderr", "oops\n"),
    ]
    assert set(got[0]) == {"log", "stream", "time"}
    assert got[0]["time"].endswith("Z") and len(got[0]["time"].split(".")[1]) == 10


def test_rfc3339_nano() -> None:
    assert rfc3339_nano(1_700_000_000_000_000_123) == "2023-11-14T22:13:20.000000123Z"


def test_partial_lines_wait_for_their_newline_per_stream(tmp_path: Path) -> None:
    log = LogWriter(tmp_path / "log.json")
    log.write("stdout", b"hel")
    log.write("stderr", b"E")
    log.write("stdout", b"lo\nwor")
    assert [r["log"] for r in records(tmp_path / "log.json")] == ["hello\n"]
    log.write("stderr", b"\n")
    log.close()
    assert [(r["stream"], r["log"]) for r in records(tmp_path / "log.json")] == [
        ("stdout", "hello\n"),
        ("stderr", "E\n"),
        ("stdout", "wor"),
    ]


def test_long_line_is_cut_at_the_buffer_size(tmp_path: Path) -> None:
    log = LogWriter(tmp_path / "log.json")
    log.write("stdout", b"x" * (PARTIAL_SIZE * 2 + 5))
    assert [len(r["log"]) for r in records(tmp_path / "log.json")] == [PARTIAL_SIZE] * 2
    log.write("stdout", b"\n")
    log.close()
    assert records(tmp_path / "log.json")[-1]["log"] == "xxxxx\n"


def test_utf8_split_across_writes_and_invalid_bytes(tmp_path: Path) -> None:
    log = LogWriter(tmp_path / "log.json")
    snowman = "☃\n".encode()
    log.write("stdout", snowman[:1])
    log.write("stdout", snowman[1:])
    log.write("stdout", b"\xff\n")
    log.close()
    assert [r["log"] for r in records(tmp_path / "log.json")] == ["☃\n", "\ufffd\n"]


def test_rotation_keeps_max_files(tmp_path: Path) -> None:
    path = tmp_path / "log.json"
    write_numbered(path, 30, max_size=200, max_files=3)
    files = rotated_files(path, 3)
    assert all(f.exists() for f in files)
    assert not path.with_name("log.json.3").exists()
    assert all(f.stat().st_size <= 200 for f in files)
    got = texts(path)
    # The oldest lines are gone; what is left is in order and ends with the last line.
    assert got == sorted(got)
    assert got[-1] == "line 29\n"
    assert len(got) < 30


def test_rotation_with_one_file_truncates(tmp_path: Path) -> None:
    path = tmp_path / "log.json"
    log = LogWriter(path, max_size=100, max_files=1)
    for i in range(10):
        log.write("stdout", f"line {i}\n".encode())
    log.close()
    assert not path.with_name("log.json.1").exists()
    assert texts(path, max_files=1)[-1] == "line 9\n"
    assert path.stat().st_size <= 100


def test_writer_appends_to_an_existing_log(tmp_path: Path) -> None:
    path = tmp_path / "log.json"
    for word in (b"first\n", b"second\n"):
        log = LogWriter(path)
        log.write("stdout", word)
        log.close()
    assert texts(path) == ["first\n", "second\n"]


def test_tail_spans_rotated_files(tmp_path: Path) -> None:
    path = tmp_path / "log.json"
    log = LogWriter(path, max_size=250, max_files=5)
    for i in range(12):
        log.write("stdout", f"{i}\n".encode())
    log.close()
    assert path.with_name("log.json.1").exists()
    assert texts(path, max_files=5, tail=4) == ["8\n", "9\n", "10\n", "11\n"]
    assert texts(path, max_files=5, tail=0) == []
    assert len(texts(path, max_files=5, tail=1000)) == 12


def test_missing_log_reads_empty(tmp_path: Path) -> None:
    assert texts(tmp_path / "none.json") == []


def _follow_while(path: Path, write: Callable[[], None], **options: Any) -> list[LogEntry]:
    """_follow_while follows ``path`` while ``write`` runs in a thread; returns what it read."""
    done = threading.Event()

    def writer() -> None:
        write()
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    entries = list(read_logs(path, follow=True, stop=done.is_set, **options))
    thread.join()
    return entries


def test_follow_across_rotation_until_stopped(tmp_path: Path) -> None:
    path = tmp_path / "log.json"
    # Files enough that a follower slowed by a loaded machine finds each one.
    log = LogWriter(path, max_size=300, max_files=20)
    log.write("stdout", b"before\n")

    def write() -> None:
        for i in range(40):
            log.write("stdout", f"line {i:02}\n".encode())
            time.sleep(0.002)
        log.close()

    got = _follow_while(path, write, max_files=20, poll_interval=0.005)
    # Every line reaches a follower, across several rotations, in order.
    assert [e.text for e in got] == ["before\n"] + [f"line {i:02}\n" for i in range(40)]


def test_follow_keeps_up_with_two_rotations_between_polls(tmp_path: Path) -> None:
    """A slow follower still reads a file that was rotated twice while it slept."""
    path = tmp_path / "log.json"
    log = LogWriter(path, max_size=300, max_files=2)
    log.write("stdout", b"before\n")

    def write() -> None:
        time.sleep(0.1)
        for burst in range(5):
            # 5 records of ~75 bytes, 4 to a file: up to two rotations while the follower sleeps.
            for i in range(5):
                log.write("stdout", f"line {burst}.{i}\n".encode())
            time.sleep(0.6)
        log.close()

    got = _follow_while(path, write, max_files=2, poll_interval=0.3)
    want = ["before\n"] + [f"line {b}.{i}\n" for b in range(5) for i in range(5)]
    assert [e.text for e in got] == want


def test_follow_waits_for_the_file_to_appear(tmp_path: Path) -> None:
    path = tmp_path / "log.json"

    def write() -> None:
        time.sleep(0.05)
        log = LogWriter(path)
        log.write("stderr", b"late\n")
        log.close()

    entries = _follow_while(path, write, poll_interval=0.005)
    assert [(e.stream, e.text) for e in entries] == [("stderr", "late\n")]


def test_follow_after_truncation(tmp_path: Path) -> None:
    path = tmp_path / "log.json"
    # Each record is about 75 bytes: four fit, the fifth truncates the file.
    log = LogWriter(path, max_size=320, max_files=1)
    log.write("stdout", b"a\n")

    def write() -> None:
        time.sleep(0.03)
        for i in range(6):
            log.write("stdout", f"{i}\n".encode())
            time.sleep(0.03)
        log.close()

    got = _follow_while(path, write, max_files=1, poll_interval=0.005)
    assert [e.text for e in got] == ["a\n", "0\n", "1\n", "2\n", "3\n", "4\n", "5\n"]


def test_rotated_files_start_with_their_record_number(tmp_path: Path) -> None:
    path = tmp_path / "log.json"
    write_numbered(path, 12, max_size=200, max_files=3)
    # Docker's keys on every record; the first of each file but the log's first
    # also says where in the whole log it starts.
    seen = 0
    for file in rotated_files(path, 3):
        got = records(file)
        assert all({"log", "stream", "time"} <= set(r) for r in got)
        assert all("seq" not in r for r in got[1:])
        assert got[0]["seq"] == int(got[0]["log"].split()[1])
        seen += len(got)
    assert seen < 12


def test_writer_reopening_a_log_goes_on_counting(tmp_path: Path) -> None:
    path = tmp_path / "log.json"
    for _ in range(2):
        write_numbered(path, 5, max_size=200, max_files=2)
    # Two records to a file: 0-1, 2-3, then 4 and, from the second writer, 5; 6-7; 8-9.
    assert records(path.with_name("log.json.1"))[0]["seq"] == 6
    assert records(path)[0]["seq"] == 8
    assert texts(path, max_files=2) == [f"line {i:02}\n" for i in (1, 2, 3, 4)]


def _burst(count: int) -> list[bytes]:
    """_burst is ``count`` numbered lines in writes of 64, as a pipe hands them over."""
    lines = [f"{i}\n".encode() for i in range(count)]
    return [b"".join(lines[i : i + 64]) for i in range(0, count, 64)]


def _assert_all_accounted(entries: list[LogEntry], written: int) -> int:
    """_assert_all_accounted checks that each line written was read or counted as skipped,
    once and in order; returns how many were skipped."""
    assert entries, "the follower read nothing"
    expected = int(entries[0].text)  # rotated away before the follower started: not its to tell
    skipped = 0
    for entry in entries:
        expected += entry.skipped
        skipped += entry.skipped
        assert entry.text == f"{expected}\n"
        expected += 1
    assert expected == written
    return skipped


def _follow_full_speed(path: Path, lines: int, max_size: int, max_files: int) -> int:
    log = LogWriter(path, max_size=max_size, max_files=max_files)

    def write() -> None:
        for data in _burst(lines):
            log.write("stdout", data)
        log.close()

    got = _follow_while(path, write, max_files=max_files, poll_interval=0.001)
    return _assert_all_accounted(got, lines)


def test_follower_of_a_full_speed_writer_reads_or_counts_every_line(tmp_path: Path) -> None:
    # About 60 records to a file, so thousands of rotations; the follower shares the GIL
    # with the writer and falls behind by whole files.
    skipped = _follow_full_speed(tmp_path / "log.json", 200_000, max_size=4096, max_files=3)
    assert skipped > 0, "the follower never fell behind: the test proves nothing"


def test_follower_skips_nothing_that_stays_on_disk(tmp_path: Path) -> None:
    # Files enough for every line: nothing is rotated away, so nothing may be skipped.
    skipped = _follow_full_speed(tmp_path / "log.json", 50_000, max_size=65536, max_files=100)
    assert skipped == 0


def test_follower_of_a_single_file_log_reads_or_counts_every_line(tmp_path: Path) -> None:
    _follow_full_speed(tmp_path / "log.json", 50_000, max_size=4096, max_files=1)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_follower_soak(tmp_path: Path) -> None:
    """The full-speed follower, longer and over more shapes of log (about 30 s)."""
    for max_files in (1, 2, 3, 5):
        for max_size in (4096, 65536):
            log = tmp_path / f"log-{max_files}-{max_size}.json"
            _follow_full_speed(log, 500_000, max_size, max_files)


def test_follower_of_a_file_filled_and_rotated_while_it_looks_for_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race a loaded machine makes: the follower opens the newest file while it is still
    empty, finds nothing in it, and before it looks for a newer file the writer fills that
    one and rotates it. The follower must then read on from that file, not from older ones."""
    from ctl.runtime import logs

    path = tmp_path / "log.json"
    # Each record is about 75 bytes: two to a file.
    log = LogWriter(path, max_size=160, max_files=10)
    for i in range(4):
        log.write("stdout", f"{i}\n".encode())
    log._rotate()  # the writer between creating the newest file and writing to it
    real_ino = logs._ino
    to_write = [b"4\n5\n6\n"]

    def ino_after_the_writer_ran(file: Path) -> int | None:
        if to_write:
            log.write("stdout", to_write.pop())
        return real_ino(file)

    monkeypatch.setattr(logs, "_ino", ino_after_the_writer_ran)
    got = list(read_logs(path, follow=True, stop=lambda: not to_write, max_files=10))
    log.close()
    assert [e.text for e in got] == [f"{i}\n" for i in range(7)]
