"""Malicious layers: nothing is ever written outside the target (SPEC §6, issue 3).

Each layer is applied into ``<tmp>/l1/l2/l3/target`` next to a sentinel
``<tmp>/outside``; the target is deep enough that every relative escape lands
inside ``<tmp>``. The whole of ``<tmp>`` except the target, and a few host
files, are snapshotted before and after: each case must raise InvalidArgument
(refused) or finish contained, and the snapshots must be equal. Escapes aim
at the sentinel, never at a host file, so that a regression can only damage
``<tmp>``; the one host path named, ``HOST_PROBE``, does not exist.

The last test checks the overlay whiteouts against the real overlayfs: a
stack of layers applied to separate upper dirs and mounted shows the same
tree as the stack applied naively onto one directory.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import subprocess
import tarfile
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pytest

from ctl.archive import apply_layer
from ctl.errdefs import InvalidArgument

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.needs_root

Member = tuple[tarfile.TarInfo, bytes | None]
HOST_FILES = ("/etc/passwd", "/etc/hostname")
# A host path no case may create.
HOST_PROBE = f"/tmp/ctl-escape-{uuid.uuid4().hex}"


def member(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", **attrs: Any) -> Member:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = 0o777 if kind == tarfile.DIRTYPE else 0o666
    for key, value in attrs.items():
        setattr(info, key, value)
    if kind == tarfile.REGTYPE:
        info.size = len(data)
        return info, data
    return info, None


def file(name: str, data: bytes = b"pwned") -> Member:
    return member(name, data=data)


def symlink(name: str, target: str) -> Member:
    return member(name, tarfile.SYMTYPE, linkname=target)


def hardlink(name: str, target: str) -> Member:
    return member(name, tarfile.LNKTYPE, linkname=target)


def directory(name: str) -> Member:
    return member(name, tarfile.DIRTYPE)


def layer(*members: Member, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def snapshot(top: Path, skip: Path) -> dict[str, tuple[Any, ...]]:
    """snapshot records type, mode, owner, mtime and content of everything but ``skip``."""
    seen: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) != str(skip)]
        for name in [*dirnames, *filenames, "."]:
            path = os.path.normpath(os.path.join(dirpath, name))
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    body: Any = hashlib.sha256(f.read()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                body = os.readlink(path)
            else:
                body = None
            seen[path] = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_nlink, body)
    for host in HOST_FILES:
        if os.path.exists(host):
            st = os.lstat(host)
            with open(host, "rb") as f:
                seen[host] = (st.st_mode, st.st_nlink, st.st_mtime_ns, f.read())
    seen[HOST_PROBE] = (os.path.lexists(HOST_PROBE),)
    return seen


class Box:
    """Box is a target with a sentinel ``outside`` directory beside it."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.target = tmp / "l1/l2/l3/target"
        self.target.mkdir(parents=True)
        self.outside = tmp / "outside"
        self.outside_rel = str(self.outside).lstrip("/")
        (self.outside / "sub").mkdir(parents=True)
        (self.outside / "secret").write_bytes(b"secret")
        (self.outside / "sub/file").write_bytes(b"file")
        for level in ("l1", "l1/l2", "l1/l2/l3"):
            (tmp / level / "marker").write_bytes(level.encode())

    def apply(self, blob: bytes, whiteouts: str) -> None:
        apply_layer(io.BytesIO(blob), self.target, whiteouts=whiteouts)  # type: ignore[arg-type]


@pytest.fixture(params=["naive", "overlay"])
def whiteouts(request: pytest.FixtureRequest) -> str:
    return str(request.param)


Case = Callable[[Box], bytes]

# Each case returns the layer; ``refused`` says whether apply_layer must raise.
CASES: dict[str, tuple[Case, bool]] = {
    "dotdot": (lambda b: layer(file("../x")), True),
    "dotdot-deep": (lambda b: layer(file("../../etc/x")), True),
    "dotdot-middle": (lambda b: layer(file("a/../../x")), True),
    "dotdot-far": (lambda b: layer(file("../../../../outside/secret")), True),
    "dotdot-dir": (lambda b: layer(directory("../../../../outside")), True),
    "dotdot-symlink": (lambda b: layer(symlink("../../../../outside/secret", "/x")), True),
    "dotdot-device": (lambda b: layer(member("../dev", tarfile.CHRTYPE, devmajor=1)), True),
    "dotdot-pax-path": (lambda b: layer(file("p" * 120 + "/../../x")), True),
    "dotdot-gnu-longname": (
        lambda b: layer(file("../" + "g" * 120), fmt=tarfile.GNU_FORMAT),
        True,
    ),
    "absolute-tmp": (lambda b: layer(file(HOST_PROBE)), False),
    "absolute-outside": (lambda b: layer(file(f"{b.outside}/secret")), False),
    "absolute-dir": (lambda b: layer(directory(str(b.outside))), False),
    "symlink-absolute-parent": (
        lambda b: layer(symlink("a", str(b.outside)), file("a/secret"), file("a/new")),
        False,
    ),
    # Re-rooted, the link's target is the link itself: a loop.
    "symlink-to-itself": (
        lambda b: layer(symlink(b.outside_rel, str(b.outside)), file(f"{b.outside_rel}/secret")),
        True,
    ),
    "symlink-to-host-root": (
        lambda b: layer(symlink("host", "/"), file(f"host{b.outside}/secret")),
        False,
    ),
    "symlink-dotdot-parent": (
        lambda b: layer(symlink("up", "../../../.."), file("up/outside/secret")),
        False,
    ),
    "symlink-dotdot-nested": (
        lambda b: layer(directory("d"), symlink("d/up", "../../../../.."), file("d/up/x")),
        False,
    ),
    "symlink-chain": (
        lambda b: layer(
            symlink("a", "b"),
            symlink("b", "c/d"),
            directory("c"),
            symlink("c/d", "../../../../.."),
            file("a/outside/secret"),
            directory("a/outside/sub"),
        ),
        False,
    ),
    "symlink-loop": (lambda b: layer(symlink("x", "y"), symlink("y", "x"), file("x/f")), True),
    "symlink-then-file": (
        lambda b: layer(symlink("f", f"{b.outside}/secret"), file("f", b"over")),
        False,
    ),
    "symlink-then-dir": (
        lambda b: layer(symlink("d", str(b.outside)), directory("d"), file("d/x")),
        False,
    ),
    "symlink-then-hardlink": (
        lambda b: layer(symlink("h", f"{b.outside}/secret"), file("f"), hardlink("h", "f")),
        False,
    ),
    "hardlink-etc-passwd": (lambda b: layer(hardlink("p", "/etc/passwd")), True),
    "hardlink-dotdot": (lambda b: layer(hardlink("p", "../../../../outside/secret")), True),
    "hardlink-absolute-outside": (lambda b: layer(hardlink("p", f"{b.outside}/secret")), True),
    "hardlink-through-symlink": (
        lambda b: layer(symlink("s", str(b.outside)), hardlink("p", "s/secret")),
        True,
    ),
    "hardlink-through-dotdot-symlink": (
        lambda b: layer(symlink("s", "../../../.."), hardlink("p", "s/outside/secret")),
        True,
    ),
    "hardlink-to-outside-symlink": (
        # Links the symlink itself: another symlink, never the file it names.
        lambda b: layer(symlink("s", f"{b.outside}/secret"), hardlink("p", "s"), file("p", b"x")),
        False,
    ),
    "whiteout-dotdot-name": (lambda b: layer(file(".wh..."), file("d/.wh...")), True),
    "whiteout-in-parent": (lambda b: layer(file("../.wh.target")), True),
    "whiteout-far": (lambda b: layer(file("../../../../outside/.wh.secret")), True),
    "whiteout-opaque-parent": (lambda b: layer(file("../.wh..wh..opq")), True),
    "whiteout-through-symlink": (
        lambda b: layer(symlink("s", str(b.outside)), file("s/.wh.secret"), file("s/.wh.sub")),
        False,
    ),
    "whiteout-through-dotdot-symlink": (
        lambda b: layer(symlink("s", "../../../../outside"), file("s/.wh.secret")),
        False,
    ),
    "opaque-through-symlink": (
        lambda b: layer(symlink("s", str(b.outside)), file("s/.wh..wh..opq")),
        False,
    ),
    "opaque-through-dotdot-symlink": (
        lambda b: layer(symlink("s", "../../../.."), file("s/.wh..wh..opq")),
        False,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malicious_layer_writes_nothing_outside(tmp_path: Path, whiteouts: str, case: str) -> None:
    box = Box(tmp_path)
    make, refused = CASES[case]
    blob = make(box)
    before = snapshot(tmp_path, box.target)
    if refused:
        with pytest.raises(InvalidArgument):
            box.apply(blob, whiteouts)
    else:
        box.apply(blob, whiteouts)
    after = snapshot(tmp_path, box.target)
    if os.path.lexists(HOST_PROBE):
        os.unlink(HOST_PROBE)
    assert after == before


def test_contained_names_land_inside_the_target(tmp_path: Path) -> None:
    box = Box(tmp_path)
    box.apply(
        layer(
            file(f"{box.outside}/secret", b"abs"),
            symlink("a", str(box.outside)),
            file("a/new", b"through a"),
            symlink("up", "../../../.."),
            file("up/top", b"through up"),
        ),
        "naive",
    )
    inner = box.target / str(box.outside).lstrip("/")
    assert (inner / "secret").read_bytes() == b"abs"
    assert (inner / "new").read_bytes() == b"through a"
    assert (box.target / "top").read_bytes() == b"through up"


def test_whiteout_through_symlink_deletes_inside_only(tmp_path: Path) -> None:
    box = Box(tmp_path)
    inner = box.target / str(box.outside).lstrip("/")
    inner.mkdir(parents=True)
    (inner / "secret").write_bytes(b"inner")
    box.apply(layer(symlink("s", str(box.outside)), file("s/.wh.secret")), "naive")
    assert not (inner / "secret").exists()
    assert (box.outside / "secret").read_bytes() == b"secret"


# --- overlay whiteouts seen through a real overlayfs mount ---

STACK = [
    [
        directory("etc"),
        file("etc/a.conf", b"a1"),
        file("etc/b.conf", b"b1"),
        directory("usr"),
        directory("usr/bin"),
        file("usr/bin/tool", b"t1"),
        directory("var"),
        directory("var/cache"),
        directory("var/cache/sub"),
        file("var/cache/x", b"x1"),
        file("var/cache/sub/y", b"y1"),
        directory("data"),
        file("data/old", b"o1"),
        directory("opt"),
        file("opt/keep", b"k1"),
    ],
    [
        file("etc/.wh.b.conf"),
        file("etc/c.conf", b"c2"),
        directory("var/cache"),
        file("var/cache/.wh..wh..opq"),
        file("var/cache/new", b"n2"),
        file("usr/bin/tool", b"t2"),
        file(".wh.data"),
    ],
    [
        directory("var/cache"),
        file("var/cache/third", b"3"),
        file("var/cache/.wh..wh..opq"),
        file("usr/bin/.wh.tool"),
        file(".wh.data"),
        directory("data"),
        file("data/fresh", b"f3"),
        symlink("etc/a.conf", "c.conf"),
        directory("opt"),
        file("opt/keep", b"k3"),
        file("opt/.wh.keep"),
    ],
]


def listing(top: Path) -> dict[str, tuple[Any, ...]]:
    out: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    out[os.path.relpath(path, top)] = ("file", f.read())
            elif stat.S_ISLNK(st.st_mode):
                out[os.path.relpath(path, top)] = ("link", os.readlink(path))
            else:
                out[os.path.relpath(path, top)] = (stat.S_IFMT(st.st_mode),)
    return out


def test_overlay_whiteouts_match_naive_application(tmp_path: Path) -> None:
    naive = tmp_path / "naive"
    naive.mkdir()
    uppers = []
    for i, members in enumerate(STACK):
        blob = layer(*members)
        apply_layer(io.BytesIO(blob), naive, whiteouts="naive")
        upper = tmp_path / f"upper{i}"
        upper.mkdir()
        apply_layer(io.BytesIO(blob), upper, whiteouts="overlay")
        uppers.append(str(upper))
    merged = tmp_path / "merged"
    merged.mkdir()
    lowerdir = ":".join(reversed(uppers))
    subprocess.run(
        ["mount", "-t", "overlay", "overlay", "-o", f"ro,lowerdir={lowerdir}", str(merged)],
        check=True,
    )
    try:
        seen = listing(merged)
    finally:
        subprocess.run(["umount", str(merged)], check=True)
    assert seen == listing(naive)
    assert seen["var/cache/third"] == ("file", b"3")
    assert "var/cache/new" not in seen
    assert "usr/bin/tool" not in seen
    assert seen["opt/keep"] == ("file", b"k3")
