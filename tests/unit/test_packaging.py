"""The start-up cost of the commands scripts call most: what they import.

tests/integration/test_pex.py checks the shipped artefact, dist/ctl.pex, itself.

Start-up time is a feature (SPEC section 8). On this class of machine the interpreter floor
is about 10 ms, while ``requests`` costs about 85 ms to import and ``tabulate`` 0.10 about
45 ms (it imports ``importlib.metadata`` only to set ``__version__``), so a listing command
or ``--help`` that imports one of them is several times slower than it needs to be.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.helpers import imported_modules

if TYPE_CHECKING:
    from pathlib import Path

SLOW_IMPORTS = ("requests", "urllib3", "tabulate", "argcomplete", "importlib.metadata")


@pytest.mark.parametrize("argv", [("images",), ("--help",)], ids=["images", "help"])
def test_command_does_not_import_slow_modules(root: Path, argv: tuple[str, ...]) -> None:
    modules = imported_modules("--root", str(root), *argv)
    assert "ctl.main" in modules, "no import trace: was -X importtime honoured?"
    slow = sorted(m for m in modules if any(m == s or m.startswith(f"{s}.") for s in SLOW_IMPORTS))
    assert slow == [], f"ctl {' '.join(argv)} imports {slow}: import them where they are used"


@pytest.mark.parametrize(
    ("argv", "module"),
    [(("ps",), "containers"), (("images",), "images"), (("ns", "ls"), "namespaces")],
    ids=["ps", "images", "ns-alias"],
)
def test_command_imports_only_its_own_command_module(
    root: Path, argv: tuple[str, ...], module: str
) -> None:
    modules = imported_modules("--root", str(root), *argv)
    commands = sorted(m for m in modules if m.startswith("ctl.commands."))
    assert commands == ["ctl.commands._base", "ctl.commands._index", f"ctl.commands.{module}"]


# What `ps` and `run` must leave alone (issue 15): a listing reads records and task
# directories; it drives no runc, snapshotter or network, and renders without tabulate.
# Nor does it import the flag parsers (their parts of a record live with the record),
# typing (~2 ms: the records it reads take ctl.typeshim's NamedTuple), pathlib (~2 ms with
# urllib.parse and ipaddress: ctl.paths joins strings), signal (an enum of every signal) or
# locale (argparse's translations, see _base).
PS_NEEDS_NONE_OF = (
    *SLOW_IMPORTS,
    "ctl.runtime.runopts",
    "typing",
    "pathlib",
    "urllib",
    "signal",
    "locale",
    "dataclasses",
    "ctl.tasks",
    "ctl.runtime.runc",
    "ctl.snapshots",
    "ctl.network",
    "ctl.remotes",
    "socket",
)
# An empty root has no record to decode and no task to read.
EMPTY_PS_NEEDS_NONE_OF = (
    *PS_NEEDS_NONE_OF,
    "json",
    "ctl.runtime.state",
    "ctl.containers.container",
)
# `run --pull never`: no registry client; no tabulate, no argcomplete; no dataclasses
# (with inspect and ast, ~13 ms), no threading (~1 ms) and none of what its modules
# import only where used.
RUN_NEEDS_NONE_OF = (
    *SLOW_IMPORTS,
    "dataclasses",
    "ctl.remotes",
    "tempfile",
    "bz2",
    "lzma",
    "threading",
    "locale",
)


def _unwanted(modules: set[str], unwanted: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == u or m.startswith(f"{u}.") for u in unwanted))


def _write_container(root: Path) -> None:
    """_write_container puts one container record where `ps` finds it, without runc or images:
    with a port, a restart policy and a bind mount, the parts of a record flags make."""
    from ctl.client import Client
    from ctl.containers.container import (
        Container,
        MountSpec,
        PortMapping,
        RestartPolicy,
        RunConfig,
    )

    container = Container(
        id="ab" * 32,
        name="listed",
        image="busybox",
        snapshotter="overlayfs",
        snapshot_key="k",
        spec={
            "process": {"args": ["true"]},
            "mounts": [{"source": "/srv", "destination": "/data", "type": "bind"}],
        },
        config=RunConfig(
            publish=(PortMapping("", 8080, 80, "tcp"),),
            restart=RestartPolicy("always"),
            mounts=(MountSpec("bind", "/data", "/srv"),),
        ),
    )
    Client(root).containers.create(container)


def test_ps_on_an_empty_root_imports_no_record_code(root: Path) -> None:
    modules = imported_modules("--root", str(root), "ps", "-a")
    assert "ctl.main" in modules, "no import trace: was -X importtime honoured?"
    unwanted = _unwanted(modules, EMPTY_PS_NEEDS_NONE_OF)
    assert unwanted == [], f"ctl ps -a on an empty root imports {unwanted}"


def test_ps_of_a_container_reads_only_records(root: Path) -> None:
    _write_container(root)
    modules = imported_modules("--root", str(root), "ps", "-a")
    assert "ctl.containers.container" in modules, "the container was not listed"
    # Nor json (~1 ms): a created container's summary comes from the index (marshal),
    # and it has no task records yet.
    unwanted = _unwanted(modules, (*PS_NEEDS_NONE_OF, "json"))
    assert unwanted == [], f"ctl ps -a imports {unwanted}: import them where they are used"


RUN_PATH = (
    "ctl.main",
    "ctl.commands.containers",
    "ctl.commands._run_flags",
    "ctl.client",
    "ctl.containers.lifecycle",
    "ctl.containers.create",
    "ctl.containers.store",
    "ctl.images.store",
    "ctl.tasks",
    "ctl.runtime.supervisor",
    "ctl.runtime.taskdir",
    "ctl.snapshots.overlay",
    "ctl.snapshots.namespaced",
)
# `pull` needs requests; dataclasses (inspect, ast: ~5-8 ms) it does not.
PULL_PATH = (
    "ctl.main",
    "ctl.commands.images",
    "ctl.client",
    "ctl.images.pull",
    "ctl.images.unpack",
    "ctl.remotes.registry",
    "ctl.archive",
)
PULL_NEEDS_NONE_OF = ("dataclasses", "tabulate", "argcomplete")


@pytest.mark.parametrize(
    ("path", "unwanted"),
    [(RUN_PATH, RUN_NEEDS_NONE_OF), (PULL_PATH, PULL_NEEDS_NONE_OF)],
    ids=["run", "pull"],
)
def test_path_modules_import_nothing_the_path_does_not_need(
    path: tuple[str, ...], unwanted: tuple[str, ...]
) -> None:
    # Without root there is no task to start nor registry to ask: the path's modules are
    # imported as the command imports them; what they import at their top, it always pays.
    import subprocess
    import sys

    from tests.helpers import REPO_ROOT

    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "; ".join(f"import {m}" for m in path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    modules = {
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert "ctl.client" in modules, "no import trace: was -X importtime honoured?"
    found = _unwanted(modules, unwanted)
    assert found == [], f"{path[1]} imports {found}: import them where they are used"
