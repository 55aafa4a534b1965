"""`ctl logs -f` under pressure: a container writing as fast as it can through rotation."""

from __future__ import annotations

import re
import subprocess
import time
from typing import TYPE_CHECKING

import pytest

from tests.helpers import REPO_ROOT, ctl_command, ctl_proc

if TYPE_CHECKING:
    from pathlib import Path

    from tests.images import CanonicalImages

pytestmark = pytest.mark.needs_root

COUNTER = "i=0; while :; do echo $i; i=$((i+1)); done"
SKIPPED = re.compile(
    r"^ctl: logs: (\d+) lines? (?:was|were) rotated away before (?:it|they) could be read$"
)


def follow_counter(root: Path, image: str, name: str, seconds: float) -> tuple[list[int], int]:
    """follow_counter runs a counter for ``seconds`` under ``logs -f``: what it printed, skipped."""
    ctl_proc("run", "-d", "--name", name, image, "sh", "-c", COUNTER, root=root).assert_success()
    follower = subprocess.Popen(
        [*ctl_command(), "--root", str(root), "logs", "-f", name],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(seconds)
        ctl_proc("stop", "-t", "1", name, root=root).assert_success()
        out, err = follower.communicate(timeout=120)
        tail = ctl_proc("logs", "--tail", "3", name, root=root).stdout.split()
    finally:
        follower.kill()
        ctl_proc("rm", "-f", name, root=root)
    skipped = 0
    for line in err.decode().splitlines():
        match = SKIPPED.match(line)
        assert match, f"unexpected stderr line {line!r}"
        skipped += int(match.group(1))
    # Complete lines only: the container is killed, perhaps in the middle of one.
    numbers = [int(n) for n in out.decode().split("\n")[:-1]]
    assert tail == [str(n) for n in numbers[-3:]]
    return numbers, skipped


def test_logs_follow_under_pressure_loses_nothing_unsaid(
    root: Path, images: CanonicalImages
) -> None:
    ctl_proc("pull", images.busybox_ref, root=root).assert_success()
    numbers, skipped = follow_counter(root, images.busybox_ref, "pressure", 5.0)
    assert numbers, "the follower printed nothing"
    first, last = numbers[0], numbers[-1]
    assert numbers == sorted(set(numbers)), "lines reordered or repeated"
    missing = (last - first + 1) - len(numbers)
    print(
        f"written {last - first + 1}, printed {len(numbers)}, missing {missing}, reported {skipped}"
    )
    assert missing == skipped
