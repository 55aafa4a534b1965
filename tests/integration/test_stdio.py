"""Standard streams that are closed, full or gone, at the CLI boundary (issue 9, point 3).

Every command that prints is run as a program with its stdout closed
(``>&-``), on /dev/full, and into a pipe nobody reads, each with stderr open
and closed. Where a ``ctl:`` line can still be written it is the only thing
on stderr and the exit is 125; a reader that went away is no error at all;
a traceback or Python's "Exception ignored" is never printed.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import REPO_ROOT, clean_root, ctl_command, ctl_proc
from tests.images import CanonicalImages

pytestmark = pytest.mark.needs_root


@pytest.fixture(scope="module")
def sroot(tmp_path_factory: pytest.TempPathFactory, images: CanonicalImages) -> Iterator[Path]:
    """sroot holds an image, a created container and one that ran and logged."""
    root = tmp_path_factory.mktemp("stdio") / "root"
    ctl_proc("pull", images.busybox_ref, root=root).assert_success()
    ctl_proc("create", "--name", "made", "--net", "none", images.busybox_ref, root=root)
    ctl_proc(
        "run", "--name", "said", "--net", "none", images.busybox_ref, "echo", "hello", root=root
    ).assert_success("hello")
    yield root
    clean_root(root)


# Each prints something even on a root with nothing in it, or on sroot.
PRINTING = {
    "ps": ["ps", "-a"],
    "ps-json": ["ps", "-a", "--format", "json"],
    "ps-template": ["ps", "-a", "--format", "{{.Names}}"],
    "images": ["images"],
    "inspect": ["inspect", "made"],
    "inspect-f": ["inspect", "-f", "{{.Name}}", "made"],
    "image-inspect": ["image", "inspect", "IMAGE"],
    "logs": ["logs", "said"],
    "version": ["version"],
    "--version": ["--version"],
    "help": ["--help"],
    "command-help": ["ps", "--help"],
    "info": ["info"],
    "namespaces": ["namespaces", "ls"],
    "content": ["content", "ls"],
    "save": ["save", "IMAGE"],
}

# What the shell does to ctl's stdout and stderr, and what ctl must do then.
REDIRECTS = {
    "stdout-closed": (">&-", "it is closed"),
    "stdout-full": (">/dev/full", "No space left on device"),
    "both-closed": (">&- 2>&-", None),
    "stdout-full-stderr-closed": (">/dev/full 2>&-", None),
    "both-full": (">/dev/full 2>/dev/full", None),
}


def _argv(argv: list[str], images: CanonicalImages) -> list[str]:
    return [images.busybox_ref if word == "IMAGE" else word for word in argv]


def _shell(root: Path, argv: list[str], redirect: str) -> subprocess.CompletedProcess[str]:
    """_shell runs ctl under ``sh -c`` with ``redirect``, as a user's shell would."""
    return subprocess.run(
        ["sh", "-c", f'exec "$@" {redirect}', "sh", *ctl_command(), "--root", str(root), *argv],
        cwd=REPO_ROOT,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("redirect", REDIRECTS.values(), ids=REDIRECTS.keys())
@pytest.mark.parametrize("argv", PRINTING.values(), ids=PRINTING.keys())
def test_output_that_cannot_be_written_is_one_line_and_125(
    sroot: Path, images: CanonicalImages, argv: list[str], redirect: tuple[str, str | None]
) -> None:
    shell, why = redirect
    proc = _shell(sroot, _argv(argv, images), shell)
    assert proc.returncode == 125, proc.stderr
    if why is None:
        assert proc.stderr == ""
    else:
        assert proc.stderr == f"ctl: cannot write to stdout: {why}\n"


@pytest.mark.parametrize("argv", PRINTING.values(), ids=PRINTING.keys())
def test_a_reader_that_went_away_is_no_error(
    sroot: Path, images: CanonicalImages, argv: list[str]
) -> None:
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.run(
            [*ctl_command(), "--root", str(sroot), *_argv(argv, images)],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write)
    assert (proc.returncode, proc.stderr) == (0, "")


def test_a_large_listing_into_head_is_silent(sroot: Path) -> None:
    """Output larger than a pipe's buffer meets the closed pipe while ctl still writes."""
    proc = _shell(sroot, ["inspect", *["made"] * 300], "| head -c 10 >/dev/null")
    assert proc.stderr == ""


def test_an_error_with_stdout_closed_is_the_error_alone(sroot: Path) -> None:
    proc = _shell(sroot, ["container", "inspect", "no-such"], ">&-")
    assert proc.returncode == 125
    assert proc.stderr == "ctl: container 'no-such': no such container\n"


def test_a_closed_stdin_reads_as_empty(sroot: Path) -> None:
    proc = _shell(sroot, ["load"], "<&-")
    assert proc.returncode == 125
    assert proc.stderr.startswith("ctl: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "Traceback" not in proc.stderr
