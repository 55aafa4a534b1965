"""runc's argv builders and error parsing: pure, no runc needed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ctl.errdefs import AlreadyExists, NotFound
from ctl.runtime.runc import (
    CreateOpts,
    ExecFailed,
    ExecOpts,
    Runc,
    RuncAlreadyExists,
    RuncError,
    RuncNotFound,
    clean_message,
    error_from_log,
    exec_exit_code,
    runc_error,
)


def log_line(msg: str, level: str = "error") -> bytes:
    return json.dumps({"level": level, "msg": msg, "time": "2024-01-01T00:00:00Z"}).encode()


def test_create_opts_args() -> None:
    assert CreateOpts().args() == []
    opts = CreateOpts(
        pid_file=Path("/t/init.pid"),
        console_socket=Path("@sock"),
        no_pivot=True,
        no_new_keyring=True,
    )
    assert opts.args() == [
        "--pid-file",
        "/t/init.pid",
        "--console-socket",
        "@sock",
        "--no-pivot",
        "--no-new-keyring",
    ]
    assert opts.run_args() == [*opts.args(), "--detach"]
    assert CreateOpts(detach=False).run_args() == []


def test_exec_opts_args() -> None:
    assert ExecOpts().args() == []
    assert ExecOpts(detach=True, pid_file=Path("/p"), console_socket=Path("/s")).args() == [
        "--detach",
        "--pid-file",
        "/p",
        "--console-socket",
        "/s",
    ]


def test_argv_puts_global_flags_first() -> None:
    runc = Runc(Path("/root/runc"), binary="/usr/sbin/runc")
    assert runc.argv("state", "x") == [
        "/usr/sbin/runc",
        "--root",
        "/root/runc",
        "--log-format",
        "json",
        "state",
        "x",
    ]


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (
            'unable to start container process: exec: "nope": executable file not found in $PATH',
            127,
        ),
        ('unable to start container process: exec: "/x": stat /x: no such file or directory', 127),
        ('unable to start container process: exec: "/bin/f": permission denied', 126),
        ('unable to start container process: exec: "/etc": is a directory', 126),
        ('unable to start container process: exec: "/bin/f": exec format error', 126),
        ("unable to start container process: error during container init: permission denied", None),
        ("container does not exist", None),
    ],
)
def test_exec_exit_code(message: str, code: int | None) -> None:
    assert exec_exit_code(message) == code


def test_clean_message() -> None:
    assert clean_message("runc create failed: unable to start\n  x") == "unable to start x"
    assert clean_message("exec failed: boom") == "boom"
    assert clean_message("container does not exist") == "container does not exist"


def test_error_from_log_takes_the_last_error() -> None:
    log = b"\n".join(
        [
            log_line("first", "error"),
            b"not json",
            log_line("just a warning", "warning"),
            log_line("runc run failed: second"),
        ]
    )
    assert error_from_log(log) == "runc run failed: second"
    assert error_from_log(log_line("w", "warning")) is None


def test_runc_error_classes() -> None:
    err = runc_error("state abc", 1, log_line("container does not exist"))
    assert isinstance(err, RuncNotFound) and isinstance(err, NotFound)
    assert str(err) == "state abc: container does not exist"
    assert err.status == 1

    err = runc_error("create abc", 1, log_line("container with id exists: abc"))
    assert isinstance(err, RuncAlreadyExists) and isinstance(err, AlreadyExists)

    err = runc_error(
        "run abc",
        1,
        log_line(
            'runc run failed: unable to start container process: exec: "x": permission denied'
        ),
    )
    assert isinstance(err, ExecFailed) and err.exit_code == 126
    assert str(err) == 'run abc: unable to start container process: exec: "x": permission denied'

    err = runc_error("kill abc", 1, log_line("container not running"))
    assert type(err) is RuncError


def test_runc_error_falls_back_to_stderr() -> None:
    err = runc_error("start abc", 2, b"", b"panic: something\nlast words\n")
    assert str(err) == "start abc: last words"
    assert "panic: something" in err.stderr
    assert str(runc_error("start abc", 2, b"")) == "start abc: runc exited with status 2"
