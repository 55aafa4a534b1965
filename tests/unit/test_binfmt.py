"""ctl.runtime.binfmt: which programs this kernel would refuse with ENOEXEC."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ctl.runtime.binfmt import elf_machine, foreign_architecture, host_machines
from tests.images import elf_header, host_platform, other_platform

PATH = ["PATH=/usr/bin:/bin"]
# qemu-user's registration for aarch64 ELF executables, as binfmt_misc shows it.
QEMU_AARCH64 = """enabled
interpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P
flags: POCF
offset 0
magic 7f454c460201010000000000000000000200b700
mask ffffffffffffff00fffffffffffffffffeffffff
"""


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "foreign").write_bytes(elf_header(other_platform()))
    (root / "bin" / "native").write_bytes(elf_header(host_platform()))
    (root / "bin" / "text").write_text("hello\n")
    os.symlink("/bin/foreign", root / "bin" / "link")
    (root / "bin" / "script").write_text("#!/bin/link -x\necho\n")
    for name in ("foreign", "native", "text", "script"):
        (root / "bin" / name).chmod(0o755)
    return root


@pytest.fixture
def no_binfmt(tmp_path: Path) -> Path:
    return tmp_path / "no-binfmt"


@pytest.mark.parametrize(
    ("args", "cwd"),
    [
        (["/bin/foreign"], "/"),
        (["foreign"], "/"),
        (["../bin/link"], "/bin"),
        (["script", "arg"], "/"),
    ],
)
def test_a_foreign_program_is_named(
    rootfs: Path, no_binfmt: Path, args: list[str], cwd: str
) -> None:
    arch = other_platform().split("/")[1]
    assert foreign_architecture(rootfs, args, PATH, cwd, no_binfmt) == arch


@pytest.mark.parametrize("program", ["native", "text", "missing", "/bin"])
def test_what_runs_here_or_cannot_be_told_is_left_alone(
    rootfs: Path, no_binfmt: Path, program: str
) -> None:
    assert foreign_architecture(rootfs, [program], PATH, "/", no_binfmt) is None


def test_a_binfmt_misc_handler_runs_it(rootfs: Path, tmp_path: Path) -> None:
    if other_platform() != "linux/arm64":
        pytest.skip("the handler below is qemu's for aarch64")
    binfmt = tmp_path / "binfmt_misc"
    binfmt.mkdir()
    (binfmt / "status").write_text("enabled\n")
    (binfmt / "register").write_text("")
    (binfmt / "qemu-aarch64").write_text(QEMU_AARCH64)
    assert foreign_architecture(rootfs, ["foreign"], PATH, "/", binfmt) is None
    (binfmt / "qemu-aarch64").write_text(QEMU_AARCH64.replace("enabled", "disabled"))
    assert foreign_architecture(rootfs, ["foreign"], PATH, "/", binfmt) == "arm64"


def test_the_host_runs_its_own_machine() -> None:
    assert elf_machine(elf_header(host_platform())) in host_machines()
    assert elf_machine(b"#!/bin/sh\n") is None
