"""DetachKeys: docker's escape sequence, held back while it may be starting."""

from __future__ import annotations

import pytest

from ctl.runtime.supervisor.attach import DetachKeys

CTRL_P, CTRL_Q = b"\x10", b"\x11"


@pytest.mark.parametrize(
    ("chunks", "passed", "detached"),
    [
        ([b"ls\r"], b"ls\r", False),
        ([b"ab" + CTRL_P + CTRL_Q + b"cd"], b"ab", True),
        ([b"a" + CTRL_P, CTRL_Q], b"a", True),  # split over two reads
        ([CTRL_P + b"x"], CTRL_P + b"x", False),  # not the sequence: passed on
        ([CTRL_P + CTRL_P + CTRL_Q], CTRL_P, True),  # a new start after a false one
        ([CTRL_P], b"", False),  # held back until it is known
    ],
)
def test_scan(chunks: list[bytes], passed: bytes, detached: bool) -> None:
    keys = DetachKeys(CTRL_P + CTRL_Q)
    got, done = b"", False
    for chunk in chunks:
        data, done = keys.scan(chunk)
        got += data
        if done:
            break
    assert (got, done) == (passed, detached)
