"""Issue 11, groups 7 and 8: durations, --log-opt and --health-* parsing, the local format."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

import pytest

from ctl.errdefs import FailedPrecondition, InvalidArgument
from ctl.runtime.health import HealthConfig, go_duration
from ctl.runtime.logs import (
    LOCAL,
    LOCAL_MAX_FILES,
    LOCAL_MAX_SIZE,
    LogConfig,
    LogEntry,
    LogWriter,
    read_container_logs,
    read_logs,
)
from ctl.runtime.runopts import parse_duration, parse_health, parse_log_driver, parse_log_opts

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("30s", 30.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("1.5h", 5400.0),
        ("2h45m", 9900.0),
        ("100us", 1e-4),
        ("10µs", 1e-5),
        (".5s", 0.5),
        ("-1s", -1.0),
    ],
)
def test_durations_are_gos(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["5", "", "s", "1x", "1s2", "1 s", "ms", "1.2.3s"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid duration"):
        parse_duration(text)


def test_a_number_without_unit_says_so() -> None:
    with pytest.raises(InvalidArgument, match="missing unit"):
        parse_duration("5")


@pytest.mark.parametrize(
    ("seconds", "text"), [(30.0, "30s"), (90.0, "1m30s"), (0.5, "500ms"), (3600.0, "1h0m0s")]
)
def test_durations_print_as_go_prints_them(seconds: float, text: str) -> None:
    assert go_duration(seconds) == text


def test_log_drivers_are_dockers_three() -> None:
    assert [parse_log_driver(name) for name in ("json-file", "local", "none")]
    with pytest.raises(InvalidArgument, match="unsupported logging driver 'syslog'"):
        parse_log_driver("syslog")


def test_log_opts_have_defaults_that_bound_the_disk() -> None:
    assert parse_log_opts("json-file", []) == LogConfig("json-file", 10 << 20, 3, False)
    assert parse_log_opts("local", []) == LogConfig("local", LOCAL_MAX_SIZE, LOCAL_MAX_FILES, True)
    got = parse_log_opts("local", ["max-size=10m", "max-file=2", "compress=false"])
    assert got == LogConfig("local", 10 << 20, 2, False)


@pytest.mark.parametrize(
    ("driver", "opt", "message"),
    [
        ("json-file", "max-size=x", "invalid size"),
        ("json-file", "max-size=0", "must be above 0"),
        ("json-file", "max-file=0", "invalid max-file"),
        ("json-file", "max-file=two", "invalid max-file"),
        ("local", "compress=yes", "not true or false"),
        ("json-file", "labels=a", "unknown log opt"),
        ("json-file", "max-size", "unknown log opt"),
        ("none", "max-size=1m", "unknown log opt"),
        ("json-file", "max-size=10m,max-file=3", "invalid log opt"),
    ],
)
def test_bad_log_opts_are_refused(driver: str, opt: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_log_opts(driver, [opt])


def test_log_config_round_trips_and_names_its_file(tmp_path: Path) -> None:
    config = LogConfig("local", 1000, 2, True)
    assert LogConfig.from_json(config.to_json()) == config
    json_log = tmp_path / "abc-json.log"
    assert config.path(json_log) == tmp_path / "abc-local.log"
    assert LogConfig().path(json_log) == json_log


def _durations(**given: str) -> dict[str, str | None]:
    fields = ("interval", "timeout", "start_period", "start_interval")
    return {field: given.get(field) for field in fields}


def test_health_flags_parse_to_dockers_healthcheck() -> None:
    assert parse_health(None, _durations(), None, False) is None
    assert parse_health(None, _durations(), None, True) == HealthConfig(test=("NONE",))
    got = parse_health("curl -f x", _durations(interval="1m30s", start_period="5s"), 2, False)
    assert got == HealthConfig(("CMD-SHELL", "curl -f x"), 90.0, 0.0, 5.0, 0.0, 2)
    assert got is not None
    assert got.to_json()["Interval"] == 90_000_000_000
    assert HealthConfig.from_json(got.to_json()) == got


@pytest.mark.parametrize(
    ("cmd", "durations", "retries", "disabled", "message"),
    [
        (None, _durations(interval="5"), None, False, "--health-interval: invalid duration"),
        (None, _durations(timeout="-1s"), None, False, "--health-timeout cannot be negative"),
        (None, _durations(start_interval="1ns"), None, False, "less than 1ms"),
        (None, _durations(), -1, False, "--health-retries cannot be negative"),
        ("true", _durations(), None, True, "--no-healthcheck conflicts"),
    ],
)
def test_bad_health_flags_are_refused(
    cmd: str | None,
    durations: dict[str, str | None],
    retries: int | None,
    disabled: bool,
    message: str,
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_health(cmd, durations, retries, disabled)


def test_flags_fill_in_over_the_images_healthcheck() -> None:
    image = HealthConfig(("CMD", "check"), interval=10.0, retries=5)
    assert HealthConfig(retries=2).merged(image) == image._replace(retries=2)
    assert HealthConfig(("CMD-SHELL", "x")).merged(image) == image._replace(test=("CMD-SHELL", "x"))
    assert HealthConfig(("NONE",)).merged(image) is None
    assert HealthConfig(interval=1.0).merged(HealthConfig(("NONE",))) is None
    assert HealthConfig(interval=1.0).merged(None) is None


def test_health_check_commands_and_intervals() -> None:
    assert HealthConfig(("CMD", "a", "b c")).argv() == ["a", "b c"]
    assert HealthConfig(("CMD-SHELL", "a && b")).argv() == ["/bin/sh", "-c", "a && b"]
    config = HealthConfig(("CMD", "x"), start_period=10.0)
    assert config.every(True, 1.0) == 5.0  # docker's start interval, within the start period
    assert config.every(True, 11.0) == 30.0
    assert config.every(False, 1.0) == 30.0


@pytest.mark.parametrize(
    "text", ["plain\n", "partial", "back\\slash\\n\n", "new\nline\n", "\\\\n", "", "é ✓\r\n"]
)
def test_local_records_read_back(text: str) -> None:
    for seq in (0, 7):
        record = LOCAL.record(text, "stderr", 1_714_564_800_123_456_789, seq)
        assert record.count(b"\n") == 1 and record.endswith(b"\n")
        line = record[:-1]
        entry = LOCAL.parse(line, 3)
        assert entry == LogEntry("stderr", text, "2024-05-01T12:00:00.123456789Z", 3)
        assert LOCAL.seq_of(line) == seq


@pytest.mark.parametrize("line", [b"", b"X1 a", b"O12", b"Oabc x", b" O1 x"])
def test_damaged_local_records_are_skipped(line: bytes) -> None:
    assert LOCAL.parse(line, 0) is None


def test_local_is_smaller_than_json_file(tmp_path: Path) -> None:
    for name, fmt in (("json", None), ("local", LOCAL)):
        log = LogWriter(tmp_path / name, fmt=fmt) if fmt else LogWriter(tmp_path / name)
        for i in range(100):
            log.write("stdout", f"line {i}\n".encode())
        log.close()
    assert (tmp_path / "local").stat().st_size * 2 < (tmp_path / "json").stat().st_size


def _write_compressed(path: Path, count: int, max_files: int) -> list[int]:
    """_write_compressed logs 0 to count - 1, compressed; returns the numbers read back."""
    log = LogWriter(path, max_size=2000, max_files=max_files, fmt=LOCAL, compress=True)
    for i in range(count):
        log.write("stdout", f"{i}\n".encode())
    log.close()
    return [int(entry.text) for entry in read_logs(path, max_files=max_files, fmt=LOCAL)]


def test_compressed_rotation_reads_back_in_order(tmp_path: Path) -> None:
    path = tmp_path / "c-local.log"
    numbers = _write_compressed(path, 1000, max_files=4)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["c-local.log", "c-local.log.1.gz", "c-local.log.2.gz", "c-local.log.3.gz"]
    assert numbers == list(range(numbers[0], 1000))
    assert [e.text for e in read_logs(path, tail=2, max_files=4, fmt=LOCAL)] == ["998\n", "999\n"]


def test_a_damaged_gzipped_file_is_left_out(tmp_path: Path) -> None:
    path = tmp_path / "d-local.log"
    _write_compressed(path, 600, max_files=3)
    (tmp_path / "d-local.log.2.gz").write_bytes(b"not gzip")
    numbers = [int(e.text) for e in read_logs(path, max_files=3, fmt=LOCAL)]
    assert numbers == list(range(numbers[0], 600))


def test_a_follower_of_compressed_rotation_reads_or_counts_every_line(tmp_path: Path) -> None:
    path = tmp_path / "f-local.log"
    log = LogWriter(path, max_size=4096, max_files=3, fmt=LOCAL, compress=True)
    written = 30_000
    done = threading.Event()

    def write() -> None:
        for start in range(0, written, 64):
            log.write("stdout", b"".join(f"{i}\n".encode() for i in range(start, start + 64)))
        log.close()
        done.set()

    thread = threading.Thread(target=write)
    thread.start()
    entries = list(
        read_logs(path, follow=True, stop=done.is_set, max_files=3, fmt=LOCAL, poll_interval=0.001)
    )
    thread.join()
    expected = int(entries[0].text)
    for entry in entries:
        expected += entry.skipped
        assert entry.text == f"{expected}\n"
        expected += 1
    assert expected == written + (64 - written % 64) % 64


def test_the_none_driver_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(FailedPrecondition, match="does not support reading"):
        read_container_logs(tmp_path / "x-json.log", LogConfig("none"))
