"""pex_build.py: the parts of scripts/build_pex.sh that are easier in Python than in bash.

    python3 scripts/pex_build.py requirements LOCK DIR   write DIR/{pure,sdists,pins}.txt
    python3 scripts/pex_build.py verify LOCK WHEELHOUSE  check the pure wheels against LOCK
    python3 scripts/pex_build.py platforms DIR MACHINE   write DIR/cp3XX.json for each target
    python3 scripts/pex_build.py sh-boot PEX             replace PEX's sh-boot header with ours
    python3 scripts/pex_build.py pythons                 print the supported versions (3.13 ...)
    python3 scripts/pex_build.py constraint              print them as an interpreter constraint

The pex carries one wheel of each dependency for every Python it supports: a pure
(py3-none-any) wheel where the project publishes one, else a wheel per interpreter built from
the locked sdist by scripts/build_wheels.sh. stdlib only: it runs before the venv is trusted.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path

# The CPython minor versions the pex supports, newest first: the order the boot header tries
# them in. Debian 12 has 3.11, Ubuntu 24.04 3.12, Debian 13 3.13.
PYTHONS = ("3.13", "3.12", "3.11")
RUNTIME_PEX_ROOT = "/var/cache/ctl/pex"


def _locked_requirements(lock: Path) -> list[dict[str, object]]:
    data = json.loads(lock.read_text())
    resolves = data["locked_resolves"]
    if len(resolves) != 1:
        raise SystemExit(f"{lock}: expected one universal resolve, found {len(resolves)}")
    requirements: list[dict[str, object]] = resolves[0]["locked_requirements"]
    return requirements


def _artifact_name(artifact: dict[str, str]) -> str:
    return artifact["url"].rsplit("/", 1)[1]


def _pure_wheel(requirement: dict[str, object]) -> dict[str, str] | None:
    artifacts: list[dict[str, str]] = requirement["artifacts"]  # type: ignore[assignment]
    for artifact in artifacts:
        if re.search(r"-py3(\.py\d+)?-none-any\.whl$|-py2\.py3-none-any\.whl$", artifact["url"]):
            return artifact
    return None


def _sdist(requirement: dict[str, object]) -> dict[str, str]:
    artifacts: list[dict[str, str]] = requirement["artifacts"]  # type: ignore[assignment]
    for artifact in artifacts:
        if artifact["url"].endswith((".tar.gz", ".zip")):
            return artifact
    raise SystemExit(f"{requirement['project_name']}: no pure wheel and no sdist in the lock")


def _pin(requirement: dict[str, object], artifact: dict[str, str] | None = None) -> str:
    pin = f"{requirement['project_name']}=={requirement['version']}"
    if artifact is None:
        return pin
    return f"{pin} --hash={artifact['algorithm']}:{artifact['hash']}"


def write_requirements(lock: Path, out: Path) -> None:
    """Split the lock into pure wheels and sdists to compile, each pinned with its hash."""
    pure, sdists, pins = [], [], []
    for requirement in _locked_requirements(lock):
        wheel = _pure_wheel(requirement)
        if wheel is not None:
            pure.append(_pin(requirement, wheel))
        else:
            sdists.append(_pin(requirement, _sdist(requirement)))
        pins.append(_pin(requirement))
    out.mkdir(parents=True, exist_ok=True)
    for name, lines in (("pure", pure), ("sdists", sdists), ("pins", pins)):
        (out / f"{name}.txt").write_text("".join(f"{line}\n" for line in lines))


def verify(lock: Path, wheelhouse: Path) -> None:
    """Fail unless every pure wheel in WHEELHOUSE has the bytes the lock names."""
    for requirement in _locked_requirements(lock):
        wheel = _pure_wheel(requirement)
        if wheel is None:
            continue
        path = wheelhouse / _artifact_name(wheel)
        digest = hashlib.new(wheel["algorithm"], path.read_bytes()).hexdigest()
        if digest != wheel["hash"]:
            raise SystemExit(
                f"{path}: {wheel['algorithm']} {digest}, the lock says {wheel['hash']}"
            )


def write_platforms(out: Path, machine: str) -> None:
    """Write a complete platform per target Python, with only the tags the wheelhouse holds.

    Written here rather than inspected from the interpreters, so that building the pex needs
    none of them and the files carry nothing of the build machine (kernel release, patch level).
    """
    out.mkdir(parents=True, exist_ok=True)
    for version in PYTHONS:
        nodot = version.replace(".", "")
        platform = {
            "marker_environment": {
                "implementation_name": "cpython",
                "implementation_version": f"{version}.0",
                "os_name": "posix",
                "platform_machine": machine,
                "platform_python_implementation": "CPython",
                "platform_release": "",
                "platform_system": "Linux",
                "platform_version": "",
                "python_full_version": f"{version}.0",
                "python_version": version,
                "sys_platform": "linux",
            },
            "compatible_tags": [
                f"cp{nodot}-cp{nodot}-linux_{machine}",
                f"cp{nodot}-abi3-linux_{machine}",
                f"cp{nodot}-none-linux_{machine}",
                f"cp{nodot}-none-any",
                f"py{nodot}-none-any",
                "py3-none-any",
            ],
        }
        (out / f"cp{nodot}.json").write_text(json.dumps(platform, indent=2) + "\n")


# What the fast path runs: ctl's __main__ with site-packages on sys.path, and argv as pex gives it.
DIRECT = 'import sys; sys.path.append(sys.argv.pop(1)); sys.argv[0] = "ctl"; import ctl.__main__'

BOOT = """\
#!/bin/sh
# ctl's boot header (scripts/pex_build.py writes it in place of pex's --sh-boot header).
# POSIX sh and builtins only on the fast path: it runs before every ctl command.
set -eu
PEX_ROOT="${{PEX_ROOT:-{pex_root}}}"
INSTALLED_PEX="${{PEX_ROOT}}/{installed}"
# Fast path: the venv the pex laid out on its first run. The pex has interpreter constraints,
# so that path is the same whichever supported Python made it; its bin/python links to that
# Python, so one removed since (a Debian 12 to 13 upgrade) fails -x and the venv is remade.
# The PEX_* variables that change which venv or interpreter pex uses (as pex's own header).
pex_vars="${{PEX_IGNORE_RCFILES:-}}${{PEX_VENV:-}}${{PEX_PYTHON:-}}"
pex_vars="${{pex_vars}}${{PEX_PYTHON_PATH:-}}${{PEX_PATH:-}}${{PEX_TOOLS:-}}"
if [ -z "${{pex_vars}}" ]; then
    if [ -x "${{INSTALLED_PEX}}/bin/python" ]; then
        export PEX="$0"
        # Straight into ctl, past pex's boot code and Python's site module (-S): about two
        # milliseconds of every call. The venv holds one Python's site-packages, which is then
        # all of sys.path beyond the standard library, as in the venv.
        for site_packages in "${{INSTALLED_PEX}}"/lib/python3.*/site-packages; do
            if [ -d "${{site_packages}}" ]; then
                exec "${{INSTALLED_PEX}}/bin/python" {venv_python_args} -S -c '{direct}' \\
                    "${{site_packages}}" "$@"
            fi
        done
        exec "${{INSTALLED_PEX}}/bin/python" {venv_python_args} "${{INSTALLED_PEX}}" "$@"
    fi
    if [ -d "${{INSTALLED_PEX}}" ]; then
        mv "${{INSTALLED_PEX}}" "${{INSTALLED_PEX}}.stale.$$" 2>/dev/null &&
            rm -rf "${{INSTALLED_PEX}}.stale.$$" || :
    fi
fi
# Slow path (first run): the first supported CPython on PATH runs the pex, which lays out the
# venv with it.
if [ -n "${{PEX_PYTHON:-}}" ]; then
    exec "${{PEX_PYTHON}}" "$0" "$@"
fi
found=""
for python in {pythons} python3; do
    if path="$(command -v "${{python}}")"; then
        if "${{path}}" -I -S -c '{version_check}' 2>/dev/null; then
            exec "${{path}}" "$0" "$@"
        fi
        found="${{found:+${{found}}, }}${{path}}"
    fi
done
# One line, exit 125 as for any ctl failure: 126 and 127 are the container command's.
need="CPython {versions} as {names} or python3 on PATH"
echo >&2 "ctl: no usable Python: ctl needs ${{need}} (${{found:+unusable: }}${{found:-none found}})"
exit 125
"""


def rewrite_sh_boot(pex: Path) -> None:
    """Replace the sh-boot header pex wrote with BOOT, keeping the zip after it unchanged.

    pex's own header tries only the build's interpreter on its fast path and otherwise
    searches from python3.11 up to 3.16 and down to 2.7, running pex under whatever it finds.
    Zip readers locate the archive from its end, so the zip itself needs no change.
    """
    data = pex.read_bytes()
    start = data.index(b"PK\x03\x04")
    header = data[:start].decode()
    installed = re.search(r'^INSTALLED_PEX="\$\{PEX_ROOT\}/(.+)"$', header, re.MULTILINE)
    venv_args = re.search(r'^VENV_PYTHON_ARGS="(.*)"$', header, re.MULTILINE)
    pex_root = re.search(r'^DEFAULT_PEX_ROOT="\$\(echo (.+)\)"$', header, re.MULTILINE)
    if not (installed and venv_args and pex_root) or pex_root[1] != RUNTIME_PEX_ROOT:
        raise SystemExit(f"{pex}: not the sh-boot --venv header this script knows:\n{header}")
    names = [f"python{version}" for version in PYTHONS]
    oldest, newest = PYTHONS[-1].split("."), PYTHONS[0].split(".")
    version_check = (
        'import sys; sys.exit(sys.implementation.name != "cpython" or not '
        f"({oldest[0]}, {oldest[1]}) <= sys.version_info[:2] <= ({newest[0]}, {newest[1]}))"
    )
    boot = BOOT.format(
        pex_root=RUNTIME_PEX_ROOT,
        installed=installed[1],
        venv_python_args=venv_args[1],
        direct=DIRECT,
        pythons=" ".join(names),
        version_check=version_check,
        versions=", ".join(reversed(PYTHONS[1:])) + f" or {PYTHONS[0]}",
        names=", ".join(names),
    )
    # zipfile copes with any prefix, but zipimport (what runs the pex) only with one at least as
    # long as the offsets pex wrote assume; sh never reads past the exit above.
    new_header = boot.encode()
    padding = start - len(new_header)
    if padding > 0:
        new_header += (b"#" * (padding - 1) + b"\n")[-padding:]
    tmp = pex.with_name(pex.name + ".boot")
    tmp.write_bytes(new_header + data[start:])
    tmp.chmod(0o755)
    tmp.replace(pex)


def interpreter_constraint() -> str:
    newest_major, newest_minor = PYTHONS[0].split(".")
    return f"CPython>={PYTHONS[-1]},<{newest_major}.{int(newest_minor) + 1}"


def main(argv: list[str]) -> None:
    match argv:
        case ["pythons"]:
            print(" ".join(PYTHONS))
        case ["constraint"]:
            print(interpreter_constraint())
        case ["requirements", lock, out]:
            write_requirements(Path(lock), Path(out))
        case ["verify", lock, wheelhouse]:
            verify(Path(lock), Path(wheelhouse))
        case ["platforms", out, machine]:
            write_platforms(Path(out), machine)
        case ["sh-boot", pex]:
            rewrite_sh_boot(Path(pex))
        case _:
            raise SystemExit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
