"""Whether this kernel can run a container's program, asked before runc is.

runc reports an executable built for another architecture only after the
container started: ``exec /bin/sh: exec format error`` on the container's
stderr and exit status 1, which says nothing of the cause. Reading the
program's ELF header first, as the kernel's binfmt handlers would, lets ctl
say it in one line instead (``image is linux/arm64, this host is linux/amd64``).

The lookup follows what runc's ``exec`` does inside the container: ``PATH``
for a bare name, the working directory for a relative path, symlinks resolved
within the root (``read_in_root``), and ``#!`` interpreters. Anything it
cannot read or tell (not ELF, not found) is left for runc to report.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

from ctl.errdefs import EXIT_CANNOT_INVOKE, CtlError, FailedPrecondition

BINFMT_MISC = Path("/proc/sys/fs/binfmt_misc")
HEADER_SIZE = 256
# The kernel follows at most this many #! interpreters.
MAX_INTERPRETERS = 4
# ELF e_machine values, named as image platforms name architectures.
_ARCHITECTURES = {
    3: "386",
    8: "mips",
    20: "ppc",
    21: "ppc64",
    22: "s390x",
    40: "arm",
    62: "amd64",
    183: "arm64",
    243: "riscv64",
    258: "loong64",
}
# Machines a kernel of the key's machine runs natively besides its own.
_COMPAT = {62: {3}, 183: {40}}
_ELF_MAGIC = b"\x7fELF"


class ForeignExecutable(FailedPrecondition):
    """ForeignExecutable is a program this host's kernel cannot run (exit code 126).

    126 is docker's code for a command that exists but cannot be invoked,
    which is what runc's ``exec format error`` maps to elsewhere in ctl.
    """

    exit_code = EXIT_CANNOT_INVOKE


def foreign_architecture(
    root: Path | str, args: list[str], env: list[str], cwd: str, binfmt: Path = BINFMT_MISC
) -> str | None:
    """foreign_architecture is the architecture of the program ``args`` runs in ``root``.

    It is None unless the program is an ELF binary (or a script whose
    interpreter is) that neither this kernel nor a binfmt_misc handler runs.
    """
    if not args:
        return None
    root = Path(root)
    header = _find_program(root, args[0], env, cwd or "/")
    for _ in range(MAX_INTERPRETERS + 1):
        if header is None:
            return None
        if header.startswith(b"#!"):
            words = header[2:].split(b"\n", 1)[0].split()
            header = _read_header(root, os.fsdecode(words[0])) if words else None
            continue
        machine = elf_machine(header)
        if machine is None or machine in host_machines() or _binfmt_handles(header, binfmt):
            return None
        architecture = _ARCHITECTURES.get(machine, f"ELF machine {machine}")
        little_endian = header[5] == 1
        return "ppc64le" if architecture == "ppc64" and little_endian else architecture
    return None


def elf_machine(header: bytes) -> int | None:
    """elf_machine is the e_machine field of an ELF header, or None if it is not one."""
    if len(header) < 20 or not header.startswith(_ELF_MAGIC):
        return None
    return int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")


def host_machines() -> set[int]:
    """host_machines are the ELF machines this kernel runs: its own (this Python's) and kin."""
    try:
        with open("/proc/self/exe", "rb") as f:
            own = elf_machine(f.read(64))
    except OSError:
        own = None
    if own is None:
        return set()
    return {own, *_COMPAT.get(own, ())}


def _binfmt_handles(header: bytes, binfmt: Path) -> bool:
    """_binfmt_handles is whether an enabled binfmt_misc magic entry matches ``header``."""
    try:
        entries = [e for e in binfmt.iterdir() if e.name not in ("register", "status")]
        if (binfmt / "status").read_text().strip() != "enabled":
            return False
    except OSError:
        return False
    for entry in entries:
        try:
            fields = entry.read_text().splitlines()
        except OSError:
            continue
        if "enabled" not in fields:
            continue
        values = dict(line.partition(" ")[::2] for line in fields)
        try:
            magic = bytes.fromhex(values["magic"])
            mask = bytes.fromhex(values.get("mask", "ff" * len(magic)))
            offset = int(values.get("offset", "0"))
        except (KeyError, ValueError):
            continue
        seen = header[offset : offset + len(magic)]
        if len(seen) == len(magic) and all(
            s & m == g & m for s, m, g in zip(seen, mask, magic, strict=False)
        ):
            return True
    return False


def _find_program(root: Path, name: str, env: list[str], cwd: str) -> bytes | None:
    """_find_program is the header of the program ``name`` names, as execvp finds it."""
    if "/" in name:
        return _read_header(root, posixpath.join(cwd, name))
    search = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    for entry in env:
        if entry.startswith("PATH="):
            search = entry.removeprefix("PATH=")
    for directory in search.split(":"):
        header = _read_header(root, posixpath.join(cwd, directory or ".", name))
        if header is not None:
            return header
    return None


def _read_header(root: Path, path: str) -> bytes | None:
    from ctl.runtime.users import read_in_root

    try:
        return read_in_root(root, path, HEADER_SIZE, head=True)
    except CtlError:
        return None
