"""apply_layer: entry types, metadata, compression, diff_id and whiteouts.

Layers are built here with ``tarfile`` (or GNU tar, as an independent writer),
applied into ``tmp_path`` and read back with ``os.lstat``. Escapes are tested
in tests/integration/test_apply_security.py.
"""

from __future__ import annotations

import ctypes
import gzip
import hashlib
import io
import os
import stat
import subprocess
import tarfile
import threading
from typing import TYPE_CHECKING, Any

import pytest

from ctl.archive import apply_layer
from ctl.archive.apply import OVERLAY_OPAQUE_XATTR
from ctl.errdefs import DataCorrupted, InvalidArgument, Unimplemented

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.needs_root

MTIME = 1_600_000_000
# A valid security.capability (v2, effective) granting cap_net_bind_service.
CAP_NET_BIND = bytes.fromhex("0100000200040000000000000000000000000000")

Member = tuple[tarfile.TarInfo, bytes | None]


def entry(
    name: str, kind: bytes = tarfile.REGTYPE, data: bytes | None = None, **attrs: Any
) -> Member:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mtime = attrs.pop("mtime", MTIME)
    info.mode = attrs.pop("mode", 0o755 if kind == tarfile.DIRTYPE else 0o644)
    xattrs: dict[str, str] = attrs.pop("xattrs", {})
    info.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
    for key, value in attrs.items():
        setattr(info, key, value)
    if data is not None:
        info.size = len(data)
    return info, data


def file(name: str, data: bytes = b"", **attrs: Any) -> Member:
    return entry(name, tarfile.REGTYPE, data, **attrs)


def directory(name: str, **attrs: Any) -> Member:
    return entry(name, tarfile.DIRTYPE, **attrs)


def symlink(name: str, target: str, **attrs: Any) -> Member:
    return entry(name, tarfile.SYMTYPE, linkname=target, **attrs)


def hardlink(name: str, target: str, **attrs: Any) -> Member:
    return entry(name, tarfile.LNKTYPE, linkname=target, **attrs)


def make_tar(*members: Member, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def apply(blob: bytes, target: Path, whiteouts: str = "naive", **kw: Any) -> Any:
    target.mkdir(parents=True, exist_ok=True)
    return apply_layer(io.BytesIO(blob), target, whiteouts=whiteouts, **kw)  # type: ignore[arg-type]


def zstd_compress(data: bytes, frames: int = 1) -> bytes:
    """zstd_compress uses libzstd's one-shot API: no zstd command needed."""
    lib = ctypes.CDLL("libzstd.so.1")
    lib.ZSTD_compressBound.restype = ctypes.c_size_t
    lib.ZSTD_compressBound.argtypes = [ctypes.c_size_t]
    lib.ZSTD_compress.restype = ctypes.c_size_t
    lib.ZSTD_compress.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_char_p,
        ctypes.c_size_t,
        ctypes.c_int,
    ]
    step = -(-len(data) // frames)
    out = b""
    for start in range(0, len(data), step):
        piece = data[start : start + step]
        buf = ctypes.create_string_buffer(lib.ZSTD_compressBound(len(piece)))
        n = lib.ZSTD_compress(buf, len(buf), piece, len(piece), 3)
        out += buf.raw[:n]
    return out


def tree(root: Path) -> dict[str, tuple[Any, ...]]:
    """tree describes every path below ``root``: type, content or target, mode."""
    out: dict[str, tuple[Any, ...]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir", stat.S_IMODE(st.st_mode))
            elif stat.S_ISREG(st.st_mode):
                with open(path, "rb") as f:
                    out[rel] = ("file", f.read(), stat.S_IMODE(st.st_mode))
            else:
                out[rel] = ("special", stat.S_IFMT(st.st_mode), st.st_rdev)
    return out


# --- entry types and metadata ---


def test_every_entry_type_with_its_metadata(tmp_path: Path) -> None:
    blob = make_tar(
        directory("bin", uid=0, gid=0, mode=0o755, mtime=MTIME + 1),
        file("bin/su", b"#!su", mode=0o4755, uid=0, gid=0),
        file("bin/wall", b"wall", mode=0o2755, uid=0, gid=5),
        file(
            "bin/ping", b"ping", mode=0o755, xattrs={"security.capability": CAP_NET_BIND.decode()}
        ),
        directory("tmp", mode=0o1777, mtime=MTIME + 2),
        directory("srv", mode=0o2770, uid=1000, gid=1001, xattrs={"user.dir": "d"}),
        file("srv/data", b"data", mode=0o640, uid=1000, gid=1001, xattrs={"user.k": "v"}),
        symlink("srv/link", "data", uid=1000, gid=1001, mtime=MTIME + 3, xattrs={"trusted.t": "l"}),
        symlink("dangling", "/nowhere/at/all"),
        hardlink("srv/hard", "srv/data"),
        entry("dev/null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3),
        entry("dev/loop0", tarfile.BLKTYPE, mode=0o660, gid=6, devmajor=7, devminor=0),
        entry("run/fifo", tarfile.FIFOTYPE, mode=0o600, uid=7),
        file("empty", b"", mode=0o600),
    )
    target = tmp_path / "t"
    apply(blob, target)

    def st(rel: str) -> os.stat_result:
        return os.lstat(target / rel)

    assert stat.S_IMODE(st("bin/su").st_mode) == 0o4755
    assert stat.S_IMODE(st("bin/wall").st_mode) == 0o2755
    assert (st("bin/wall").st_uid, st("bin/wall").st_gid) == (0, 5)
    assert os.getxattr(target / "bin/ping", "security.capability") == CAP_NET_BIND
    assert stat.S_IMODE(st("tmp").st_mode) == 0o1777
    assert stat.S_IMODE(st("srv").st_mode) == 0o2770
    assert (st("srv").st_uid, st("srv").st_gid) == (1000, 1001)
    assert os.getxattr(target / "srv", "user.dir") == b"d"
    assert (target / "srv/data").read_bytes() == b"data"
    assert stat.S_IMODE(st("srv/data").st_mode) == 0o640
    assert os.getxattr(target / "srv/data", "user.k") == b"v"
    assert os.readlink(target / "srv/link") == "data"
    assert (st("srv/link").st_uid, st("srv/link").st_gid) == (1000, 1001)
    assert st("srv/link").st_mtime == MTIME + 3
    assert os.getxattr(target / "srv/link", "trusted.t", follow_symlinks=False) == b"l"
    assert os.readlink(target / "dangling") == "/nowhere/at/all"
    assert st("srv/hard").st_ino == st("srv/data").st_ino
    assert st("srv/data").st_nlink == 2
    assert stat.S_ISCHR(st("dev/null").st_mode) and st("dev/null").st_rdev == os.makedev(1, 3)
    assert stat.S_IMODE(st("dev/null").st_mode) == 0o666
    assert stat.S_ISBLK(st("dev/loop0").st_mode)
    assert st("dev/loop0").st_rdev == os.makedev(7, 0)
    assert st("dev/loop0").st_gid == 6
    assert stat.S_ISFIFO(st("run/fifo").st_mode) and st("run/fifo").st_uid == 7
    assert (target / "empty").read_bytes() == b""
    # Directory mtimes survive the files written into them afterwards.
    assert st("bin").st_mtime == MTIME + 1
    assert st("tmp").st_mtime == MTIME + 2
    assert st("srv").st_mtime == MTIME
    assert st("bin/su").st_mtime == MTIME


def test_pax_times_ids_and_dropped_overlay_xattrs(tmp_path: Path) -> None:
    info, data = file("f", b"x", xattrs={"user.ok": "1", "trusted.overlay.redirect": "/x"})
    info.pax_headers = {
        **info.pax_headers,
        **{"mtime": "1600000000.123456789", "uid": "3000000", "gid": "4000000"},
    }
    target = tmp_path / "t"
    apply(make_tar((info, data)), target)
    st = os.lstat(target / "f")
    assert st.st_mtime_ns == 1_600_000_000_123_456_789
    assert (st.st_uid, st.st_gid) == (3_000_000, 4_000_000)
    assert os.listxattr(target / "f") == ["user.ok"]


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT])
def test_long_names_in_every_format(tmp_path: Path, fmt: int) -> None:
    deep = "/".join(["d" * 60] * 2) + "/" + "f" * 90  # > 100 bytes, splits into ustar's prefix
    members = [file(deep, b"deep")]
    if fmt != tarfile.USTAR_FORMAT:
        longer = "l" * 200 + "/" + "n" * 120
        members += [file(longer, b"long"), hardlink("hl", longer), symlink("sl", "t" * 150)]
    target = tmp_path / "t"
    apply(make_tar(*members, fmt=fmt), target)
    assert (target / deep).read_bytes() == b"deep"
    if fmt != tarfile.USTAR_FORMAT:
        assert (target / "hl").read_bytes() == b"long"
        assert os.readlink(target / "sl") == "t" * 150


def test_gnu_base256_numbers(tmp_path: Path) -> None:
    # GNU format writes ids above 0o7777777 in base-256.
    target = tmp_path / "t"
    apply(make_tar(file("f", b"1", uid=10_000_000, gid=20_000_000), fmt=tarfile.GNU_FORMAT), target)
    st = os.lstat(target / "f")
    assert (st.st_uid, st.st_gid) == (10_000_000, 20_000_000)


def test_names_are_cleaned(tmp_path: Path) -> None:
    target = tmp_path / "t"
    apply(
        make_tar(
            directory("./"),
            directory("./a/", mode=0o700),
            file("./a//b/./c", b"c"),
            file("a/x/../y", b"y"),
        ),
        target,
    )
    assert (target / "a/b/c").read_bytes() == b"c"
    assert (target / "a/y").read_bytes() == b"y"
    assert not (target / "a/x").exists()
    assert stat.S_IMODE(os.lstat(target / "a").st_mode) == 0o700


def test_root_entry_sets_the_roots_metadata(tmp_path: Path) -> None:
    target = tmp_path / "t"
    apply(make_tar(directory(".", mode=0o750, uid=12, mtime=MTIME + 9), file("f")), target)
    st = os.lstat(target)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_mtime) == (0o750, 12, MTIME + 9)


def test_root_cannot_be_replaced(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="root"):
        apply(make_tar(symlink("./", "elsewhere")), tmp_path / "t")


def test_gnu_tar_archives_round_trip(tmp_path: Path) -> None:
    """GNU tar is an independent writer: what it archives comes back the same."""
    src = tmp_path / "src"
    (src / "d/sub").mkdir(parents=True)
    (src / "d/f").write_bytes(b"f" * 5000)
    os.chmod(src / "d/f", 0o4711)
    os.chown(src / "d/f", 123, 456)
    os.setxattr(src / "d/f", "user.note", b"n")
    (src / ("long" * 40)).write_bytes(b"long")
    os.symlink("d/f", src / "ln")
    os.link(src / "d/f", src / "hard")
    os.mknod(src / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mkfifo(src / "fifo", 0o640)
    os.utime(src / "d/sub", (MTIME, MTIME))
    # GNU tar stores xattrs in pax headers only.
    for fmt, xattrs in (("gnu", []), ("posix", ["--xattrs", "--xattrs-include=*"])):
        blob = subprocess.run(
            ["tar", f"--format={fmt}", *xattrs, "--numeric-owner", "-C", str(src), "-cf", "-", "."],
            check=True,
            capture_output=True,
        ).stdout
        target = tmp_path / fmt
        apply(blob, target)
        assert tree(target) == tree(src)
        for rel in ("d/f", "d/sub", "ln", "null", "fifo"):
            a, b = os.lstat(src / rel), os.lstat(target / rel)
            assert (a.st_uid, a.st_gid) == (b.st_uid, b.st_gid), rel
            # GNU headers hold whole seconds; pax keeps the nanoseconds.
            assert b.st_mtime_ns == (a.st_mtime_ns if xattrs else int(a.st_mtime) * 10**9), rel
        if xattrs:
            assert os.getxattr(target / "d/f", "user.note") == b"n"
        assert os.lstat(target / "hard").st_ino == os.lstat(target / "d/f").st_ino


# --- existing entries ---


def test_entries_replace_what_is_in_the_way(tmp_path: Path) -> None:
    target = tmp_path / "t"
    (target / "was-dir/deep").mkdir(parents=True)
    (target / "was-file").write_bytes(b"old")
    (target / "kept-dir").mkdir(mode=0o700)
    (target / "kept-dir/lower").write_bytes(b"lower")
    (target / "was-link-target").write_bytes(b"must stay")
    os.symlink("was-link-target", target / "was-link")
    apply(
        make_tar(
            file("was-dir", b"now a file"),
            directory("was-file"),
            directory("kept-dir", mode=0o755),
            file("was-link", b"replaces the link"),
        ),
        target,
    )
    assert (target / "was-dir").read_bytes() == b"now a file"
    assert (target / "was-file").is_dir()
    assert (target / "kept-dir/lower").read_bytes() == b"lower"
    assert stat.S_IMODE(os.lstat(target / "kept-dir").st_mode) == 0o755
    assert not (target / "was-link").is_symlink()
    assert (target / "was-link").read_bytes() == b"replaces the link"
    assert (target / "was-link-target").read_bytes() == b"must stay"


def test_existing_hardlinked_file_is_replaced_not_rewritten(tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.mkdir()
    (target / "a").write_bytes(b"shared")
    os.link(target / "a", target / "b")
    apply(make_tar(file("a", b"new")), target)
    assert (target / "a").read_bytes() == b"new"
    assert (target / "b").read_bytes() == b"shared"


def test_parents_through_symlinks_stay_in_the_root(tmp_path: Path) -> None:
    # The absolute link names a path under tmp_path, so that a regression
    # following it on the host writes there and nowhere else.
    host_side = tmp_path / "host-side"
    host_side.mkdir()
    target = tmp_path / "t"
    apply(
        make_tar(
            directory("usr/lib"),
            symlink("lib", "usr/lib"),
            symlink("lib64", str(host_side)),
            file("lib/a.so", b"a"),
            file("lib64/b.so", b"b"),
            hardlink("lib/c.so", "lib64/b.so"),
        ),
        target,
    )
    assert (target / "usr/lib/a.so").read_bytes() == b"a"
    assert (target / "usr/lib/c.so").read_bytes() == b"b"
    assert (target / str(host_side).lstrip("/") / "b.so").read_bytes() == b"b"
    assert os.readlink(target / "lib") == "usr/lib"
    assert not os.listdir(host_side)


def test_hardlink_to_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="missing"):
        apply(make_tar(hardlink("h", "not/there")), tmp_path / "t")


# --- compression and diff_id ---


def _sample() -> bytes:
    big = bytes(range(256)) * 8000  # spans reader chunks
    return make_tar(directory("d"), file("d/big", big), file("d/small", b"s"), symlink("l", "d"))


@pytest.mark.parametrize(
    "compress",
    [
        pytest.param(lambda raw: raw, id="plain"),
        pytest.param(lambda raw: gzip.compress(raw, 6), id="gzip"),
        pytest.param(
            lambda raw: gzip.compress(raw[:7000]) + gzip.compress(raw[7000:]), id="gzip-2"
        ),
        pytest.param(lambda raw: gzip.compress(raw) + bytes(100), id="gzip-padded"),
        pytest.param(zstd_compress, id="zstd"),
        pytest.param(lambda raw: zstd_compress(raw, frames=3), id="zstd-3"),
    ],
)
def test_compressions_and_diff_id(tmp_path: Path, compress: Any) -> None:
    raw = _sample()
    target = tmp_path / "t"
    result = apply(compress(raw), target)
    assert result.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert result.size == len(raw)
    assert (target / "d/big").read_bytes() == bytes(range(256)) * 8000
    assert os.readlink(target / "l") == "d"


def test_diff_id_covers_bytes_after_the_end_of_the_tar(tmp_path: Path) -> None:
    raw = _sample() + bytes(4096)
    result = apply(gzip.compress(raw), tmp_path / "t")
    assert result.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()


def test_expected_diff_id_is_checked(tmp_path: Path) -> None:
    raw = _sample()
    good = "sha256:" + hashlib.sha256(raw).hexdigest()
    assert apply(raw, tmp_path / "a", expected_diff_id=good).diff_id == good
    with pytest.raises(DataCorrupted, match="diff_id"):
        apply(raw, tmp_path / "b", expected_diff_id="sha256:" + "0" * 64)


@pytest.mark.parametrize(
    ("blob", "error"),
    [
        pytest.param(gzip.compress(_sample())[:-20], DataCorrupted, id="truncated-gzip"),
        pytest.param(zstd_compress(_sample())[:-20], DataCorrupted, id="truncated-zstd"),
        pytest.param(b"\x1f\x8b" + b"junk" * 100, DataCorrupted, id="bad-gzip"),
        pytest.param(_sample()[:3000], DataCorrupted, id="truncated-tar"),
        pytest.param(b"not a tar" * 100, InvalidArgument, id="not-a-tar"),
    ],
)
def test_damaged_layers_are_refused(tmp_path: Path, blob: bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        apply(blob, tmp_path / "t")


def test_unsupported_media_type_and_sparse_files(tmp_path: Path) -> None:
    with pytest.raises(Unimplemented):
        apply(_sample(), tmp_path / "a", media_type="application/vnd.oci.image.layer.v1.tar+enc")
    info, data = file("s", b"x")
    info.pax_headers = {"GNU.sparse.major": "1", "GNU.sparse.minor": "0"}
    with pytest.raises(Unimplemented, match="sparse"):
        apply(make_tar((info, data)), tmp_path / "b")


def test_unknown_types_volume_labels_and_gnu_sparse(tmp_path: Path) -> None:
    label = entry("LABEL", b"V")
    apply(make_tar(label, file("f", b"f"), fmt=tarfile.GNU_FORMAT), tmp_path / "a")
    assert os.listdir(tmp_path / "a") == ["f"]
    with pytest.raises(InvalidArgument, match="unknown type"):
        apply(make_tar(entry("odd/z", b"Z")), tmp_path / "b")
    assert not (tmp_path / "b/odd").exists()
    with pytest.raises(Unimplemented, match="sparse"):
        apply(make_tar(entry("s", tarfile.GNUTYPE_SPARSE), fmt=tarfile.GNU_FORMAT), tmp_path / "c")


def test_a_refused_layer_stops_the_reader_thread(tmp_path: Path) -> None:
    # The reader would block on its full queue if nobody stopped it.
    blob = make_tar(file("../escape", b"x"), file("big", os.urandom(24 << 20)))
    with pytest.raises(InvalidArgument):
        apply(blob, tmp_path / "t")
    assert not [t for t in threading.enumerate() if t.name == "ctl-layer-reader"]


# --- whiteouts ---


def test_overlay_whiteouts(tmp_path: Path) -> None:
    target = tmp_path / "upper"
    apply(
        make_tar(
            directory("etc"),
            file("etc/.wh.passwd", uid=1000, gid=1001),
            file("gone/.wh.deep"),
            file("opaque/.wh..wh..opq"),
            directory("opaque"),
            file("opaque/new", b"n"),
            file("var/.wh..wh..opq"),
            file(".wh.re"),
            directory("re"),
            file(".wh..wh.plnk"),
        ),
        target,
        whiteouts="overlay",
    )
    st = os.lstat(target / "etc/passwd")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == 0
    assert (st.st_uid, st.st_gid) == (1000, 1001)
    assert stat.S_ISCHR(os.lstat(target / "gone/deep").st_mode)
    assert os.getxattr(target / "opaque", OVERLAY_OPAQUE_XATTR) == b"y"
    assert (target / "opaque/new").read_bytes() == b"n"
    assert os.getxattr(target / "var", OVERLAY_OPAQUE_XATTR) == b"y"
    # A directory put where this layer whited out hides the lower one's contents.
    assert os.getxattr(target / "re", OVERLAY_OPAQUE_XATTR) == b"y"
    assert sorted(os.listdir(target)) == ["etc", "gone", "opaque", "re", "var"]


def test_overlay_whiteout_of_this_layers_own_directory_makes_it_opaque(tmp_path: Path) -> None:
    target = tmp_path / "upper"
    apply(
        make_tar(directory("d"), file("d/f", b"f"), file(".wh.d"), file("x", b"x"), file(".wh.x")),
        target,
        whiteouts="overlay",
    )
    assert os.getxattr(target / "d", OVERLAY_OPAQUE_XATTR) == b"y"
    assert (target / "d/f").read_bytes() == b"f"
    assert (target / "x").read_bytes() == b"x"


def test_overlay_files_below_a_whiteout_of_this_layer(tmp_path: Path) -> None:
    target = tmp_path / "upper"
    apply(make_tar(file(".wh.d"), file("d/new", b"n")), target, whiteouts="overlay")
    assert os.getxattr(target / "d", OVERLAY_OPAQUE_XATTR) == b"y"
    assert (target / "d/new").read_bytes() == b"n"


def _lower(target: Path) -> None:
    (target / "etc").mkdir(parents=True)
    (target / "etc/passwd").write_bytes(b"root")
    (target / "etc/group").write_bytes(b"root")
    (target / "var/cache/sub").mkdir(parents=True)
    (target / "var/cache/a").write_bytes(b"a")
    (target / "var/cache/sub/b").write_bytes(b"b")
    (target / "outside-ish").mkdir()
    (target / "outside-ish/keep").write_bytes(b"keep")
    os.symlink("outside-ish", target / "link")


def test_naive_whiteouts_delete(tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.mkdir()
    _lower(target)
    apply(
        make_tar(file("etc/.wh.passwd"), file(".wh.var"), file(".wh.link"), file(".wh.missing")),
        target,
    )
    assert sorted(os.listdir(target)) == ["etc", "outside-ish"]
    assert os.listdir(target / "etc") == ["group"]
    assert (target / "outside-ish/keep").read_bytes() == b"keep"


@pytest.mark.parametrize("marker_first", [True, False])
def test_naive_opaque_keeps_this_layers_entries(tmp_path: Path, marker_first: bool) -> None:
    target = tmp_path / "t"
    target.mkdir()
    _lower(target)
    marker = [file("var/cache/.wh..wh..opq")]
    own = [directory("var/cache"), file("var/cache/new", b"n"), file("var/cache/sub/c", b"c")]
    apply(make_tar(*(marker + own if marker_first else own + marker)), target)
    assert os.lstat(target / "var/cache").st_mtime == MTIME
    assert tree(target / "var/cache") == {
        "new": ("file", b"n", 0o644),
        "sub": ("dir", 0o755),
        "sub/c": ("file", b"c", 0o644),
    }
    assert (target / "etc/passwd").exists()


def test_naive_whiteout_only_hides_lower_layers(tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.mkdir()
    _lower(target)
    apply(
        make_tar(
            file("etc/passwd", b"mine"),
            file("etc/.wh.passwd"),
            directory("var"),
            file("var/mine", b"m"),
            file(".wh.var"),
        ),
        target,
    )
    assert (target / "etc/passwd").read_bytes() == b"mine"
    assert tree(target / "var") == {"mine": ("file", b"m", 0o644)}


# --- a stack of layers ---

LAYERS = [
    [
        directory("etc"),
        file("etc/a.conf", b"a1"),
        file("etc/b.conf", b"b1"),
        directory("usr/bin"),
        file("usr/bin/tool", b"t1", mode=0o755),
        directory("var/cache/sub"),
        file("var/cache/x", b"x1"),
        file("var/cache/sub/y", b"y1"),
        directory("opt"),
        file("opt/keep", b"k1"),
        directory("data"),
        file("data/old", b"o1"),
        symlink("bin", "usr/bin"),
    ],
    [
        file("etc/.wh.b.conf"),
        file("etc/c.conf", b"c2"),
        directory("var/cache"),
        file("var/cache/.wh..wh..opq"),
        file("var/cache/new", b"n2"),
        file("usr/bin/tool", b"t2", mode=0o700),
        file(".wh.data"),
    ],
    [
        directory("var/cache"),
        file("var/cache/third", b"3"),
        file("var/cache/.wh..wh..opq"),
        file("usr/bin/.wh.tool"),
        directory("data", mode=0o700),
        file("data/fresh", b"f3"),
        symlink("etc/a.conf", "c.conf"),
        file("opt/keep", b"k3"),
        file("opt/.wh.keep"),
    ],
]

EXPECTED = {
    "bin": ("link", "usr/bin"),
    "data": ("dir", 0o700),
    "data/fresh": ("file", b"f3", 0o644),
    "etc": ("dir", 0o755),
    "etc/a.conf": ("link", "c.conf"),
    "etc/c.conf": ("file", b"c2", 0o644),
    "opt": ("dir", 0o755),
    "opt/keep": ("file", b"k3", 0o644),
    "usr": ("dir", 0o755),
    "usr/bin": ("dir", 0o755),
    "var": ("dir", 0o755),
    "var/cache": ("dir", 0o755),
    "var/cache/third": ("file", b"3", 0o644),
}


def test_three_layers_applied_naive(tmp_path: Path) -> None:
    target = tmp_path / "t"
    for layer in LAYERS:
        apply(make_tar(*layer), target)
    assert tree(target) == EXPECTED
