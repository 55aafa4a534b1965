"""Issue 12: ``cp`` between real containers and the host, with docker's rules and containment."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.helpers import clean_root, ctl_command, ctl_proc, run_ctl
from tests.images import CanonicalImages, LayerBuilder

pytestmark = pytest.mark.needs_root


@pytest.fixture(scope="module")
def hostile_ref(images: CanonicalImages) -> str:
    """hostile_ref is busybox plus symlinks that try to steer cp out of the container."""
    layer = (
        LayerBuilder()
        .dir("trap")
        .symlink("trap/shadow", "/etc/shadow")
        .symlink("trap/up", "../../../../../../../..")
        .symlink("trap/abs", "/")
        .symlink("trap/etc", "/etc")
        .file("etc/shadow", "container shadow\n", mode=0o600)
        .build()
    )
    return images.factory.push(images.factory.image(layer, cmd=["sleep", "600"]), "test/hostile")


@pytest.fixture(scope="module")
def croot(tmp_path_factory: pytest.TempPathFactory, hostile_ref: str) -> Path:
    root = tmp_path_factory.mktemp("cp") / "root"
    ctl_proc("pull", hostile_ref, root=root).assert_success()
    yield root
    clean_root(root)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _ctl(root: Path, *argv: str, input: bytes | None = None) -> str:
    return ctl_proc(*argv, root=root, input=input).assert_success().stdout


def _bad(root: Path, *argv: str) -> str:
    return run_ctl(*argv, root=root).assert_failure(125).stderr


def _tar_out(root: Path, *argv: str) -> bytes:
    proc = subprocess.run(
        [*ctl_command(), "--root", str(root), *argv], capture_output=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("state", ["created", "running", "stopped"])
def test_cp_in_and_out_in_every_state(
    croot: Path, hostile_ref: str, tmp_path: Path, state: str
) -> None:
    name = f"cp-{state}"
    verb = "create" if state == "created" else "run"
    flags = ["-d"] if state != "created" else []
    _ctl(croot, verb, *flags, "--name", name, hostile_ref)
    if state == "stopped":
        _ctl(croot, "stop", "-t", "0", name)
    src = tmp_path / "hello.txt"
    src.write_text("hello\n")
    src.chmod(0o751)
    _ctl(croot, "cp", str(src), f"{name}:/tmp/")
    _ctl(croot, "cp", f"{name}:/tmp/hello.txt", str(tmp_path / "back.txt"))
    back = tmp_path / "back.txt"
    assert back.read_text() == "hello\n"
    assert back.stat().st_mode & 0o7777 == 0o751
    if state == "running":
        out = _ctl(croot, "exec", name, "stat", "-c", "%u:%g %a", "/tmp/hello.txt")
        assert out.split() == ["0:0", "751"]
    _ctl(croot, "rm", "-f", name)


def test_docker_path_rules(croot: Path, hostile_ref: str, tmp_path: Path) -> None:
    name = "cp-rules"
    _ctl(croot, "create", "--name", name, hostile_ref)
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "f").write_text("f")
    (tree / "g").write_text("g")
    # A directory to a missing path becomes that path.
    _ctl(croot, "cp", str(tree), f"{name}:/new")
    # Into an existing directory: as a child; with /. only the contents.
    _ctl(croot, "cp", str(tree), f"{name}:/new")
    _ctl(croot, "cp", f"{tree}/.", f"{name}:/tmp")
    out = tmp_path / "out"
    out.mkdir()
    _ctl(croot, "cp", f"{name}:/new", str(out))
    assert (out / "new" / "sub" / "f").read_text() == "f"
    assert (out / "new" / "tree" / "g").read_text() == "g"
    _ctl(croot, "cp", f"{name}:/tmp/g", str(out / "g2"))
    assert (out / "g2").read_text() == "g"
    # A file onto a missing "dir/" is an error; a directory onto a file too.
    _bad(croot, "cp", str(tree / "g"), f"{name}:/nonexistent/")
    _bad(croot, "cp", str(tree), f"{name}:/new/tree/g")
    _bad(croot, "cp", f"{name}:/tmp/g/", str(out))
    # Tar streams both ways.
    tar = _tar_out(croot, "cp", f"{name}:/new/sub", "-")
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        assert sorted(archive.getnames()) == ["sub", "sub/f"]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as archive:
        info = tarfile.TarInfo("from-tar/x")
        info.size = 3
        info.uid = 1234
        archive.addfile(info, io.BytesIO(b"xyz"))
    _ctl(croot, "cp", "-a", "-", f"{name}:/tmp", input=buf.getvalue())
    _ctl(croot, "cp", "-a", f"{name}:/tmp/from-tar/x", str(out / "x"))
    assert (out / "x").read_bytes() == b"xyz"
    assert (out / "x").stat().st_uid == 1234
    _ctl(croot, "rm", "-f", name)


def test_symlinks_never_reach_the_host(croot: Path, hostile_ref: str, tmp_path: Path) -> None:
    name = "cp-hostile"
    _ctl(croot, "run", "-d", "--name", name, hostile_ref)
    host_shadow = _sha256(Path("/etc/shadow"))
    canary = tmp_path / "canary"
    canary.write_text("host file\n")
    # Reading through the links gets the container's files.
    _ctl(croot, "cp", "-L", f"{name}:/trap/shadow", str(tmp_path / "s1"))
    assert (tmp_path / "s1").read_text() == "container shadow\n"
    _ctl(croot, "cp", f"{name}:/trap/etc/shadow", str(tmp_path / "s2"))
    assert (tmp_path / "s2").read_text() == "container shadow\n"
    _ctl(croot, "cp", f"{name}:/trap/up/etc/shadow", str(tmp_path / "s3"))
    assert (tmp_path / "s3").read_text() == "container shadow\n"
    # Without -L the link itself is copied.
    _ctl(croot, "cp", f"{name}:/trap/shadow", str(tmp_path / "link"))
    assert os.readlink(tmp_path / "link") == "/etc/shadow"
    # Writing through them stays inside the container too.
    evil = tmp_path / "shadow"
    evil.write_text("owned\n")
    _ctl(croot, "cp", str(evil), f"{name}:/trap/etc/")
    _ctl(croot, "cp", str(evil), f"{name}:/trap/up/etc/")
    # The host's directory is not the container's: it is missing there.
    assert "no such directory" in _bad(croot, "cp", str(evil), f"{name}:/trap/abs{tmp_path}/canary")
    assert _sha256(Path("/etc/shadow")) == host_shadow
    assert canary.read_text() == "host file\n"
    out = _ctl(croot, "exec", name, "cat", "/etc/shadow")
    assert out == "owned\n"
    _ctl(croot, "rm", "-f", name)


def test_large_and_sparse_files_bit_for_bit(croot: Path, hostile_ref: str, tmp_path: Path) -> None:
    name = "cp-large"
    _ctl(croot, "run", "-d", "--name", name, hostile_ref)
    big = tmp_path / "big"
    with big.open("wb") as f:
        for _ in range(110):
            f.write(os.urandom(1 << 20))
    sparse = tmp_path / "sparse"
    with sparse.open("wb") as f:
        f.write(b"head")
        f.seek(512 << 20)
        f.write(b"middle")
        f.truncate(1 << 30)
    sparse.chmod(0o4755)
    _ctl(croot, "cp", str(big), f"{name}:/big")
    _ctl(croot, "cp", str(sparse), f"{name}:/sparse")
    _ctl(croot, "cp", f"{name}:/big", str(tmp_path / "big.out"))
    _ctl(croot, "cp", f"{name}:/sparse", str(tmp_path / "sparse.out"))
    assert _sha256(tmp_path / "big.out") == _sha256(big)
    assert _sha256(tmp_path / "sparse.out") == _sha256(sparse)
    out = tmp_path / "sparse.out"
    assert out.stat().st_mode & 0o7777 == 0o4755
    assert out.stat().st_blocks * 512 < 16 << 20, "holes were filled"
    digest = _ctl(croot, "exec", name, "sha256sum", "/big").split()[0]
    assert digest == _sha256(big)
    _ctl(croot, "rm", "-f", name)


def test_bad_input(croot: Path, hostile_ref: str, tmp_path: Path) -> None:
    name = "cp-bad"
    _ctl(croot, "create", "--name", name, hostile_ref)
    assert "could not find" in _bad(croot, "cp", f"{name}:/missing", str(tmp_path))
    _bad(croot, "cp", str(tmp_path / "missing"), f"{name}:/tmp")
    _bad(croot, "cp", str(tmp_path), "no-such-container:/tmp")
    _bad(croot, "cp", f"{name}:/a", f"{name}:/b")
    _bad(croot, "cp", str(tmp_path), str(tmp_path))
    _bad(croot, "cp", str(tmp_path), f"{name}:/missing/dir/x")
    _ctl(croot, "rm", "-f", name)


def test_bind_mounts_are_part_of_the_container(
    croot: Path, hostile_ref: str, tmp_path: Path
) -> None:
    """A path under a bind mount goes to the mount's source; a read-only one refuses writes."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "inside").write_text("from the mount\n")
    ro = tmp_path / "ro"
    ro.mkdir()
    name = "cp-mounts"
    _ctl(croot, "create", "--name", name, "-v", f"{data}:/data", "-v", f"{ro}:/ro:ro", hostile_ref)
    src = tmp_path / "f"
    src.write_text("f\n")
    _ctl(croot, "cp", str(src), f"{name}:/data/f")
    assert (data / "f").read_text() == "f\n"
    assert (data / "f").stat().st_uid == 0
    _ctl(croot, "cp", f"{name}:/data/inside", str(tmp_path / "inside"))
    assert (tmp_path / "inside").read_text() == "from the mount\n"
    # A symlink in the container to the mount's destination reaches the mount, not the host path.
    _ctl(croot, "cp", str(src), f"{name}:/trap/up/data/g")
    assert (data / "g").read_text() == "f\n"
    out = tmp_path / "out"
    _ctl(croot, "cp", f"{name}:/data", str(out))
    assert sorted(p.name for p in out.iterdir()) == ["f", "g", "inside"]
    assert "read-only" in _bad(croot, "cp", str(src), f"{name}:/ro/")
    assert not (ro / "f").exists()
    # A file mounted from the host is read from the host (ctl's /etc/hosts here).
    _ctl(croot, "start", name)
    _ctl(croot, "cp", f"{name}:/etc/hosts", str(tmp_path / "hosts"))
    hosts = _ctl(croot, "exec", name, "cat", "/etc/hosts")
    assert (tmp_path / "hosts").read_text() == hosts and "localhost" in hosts
    _ctl(croot, "cp", f"{name}:/etc", str(tmp_path / "etc"))
    assert (tmp_path / "etc" / "hosts").read_text() == hosts
    assert "mounted from the host" in _bad(croot, "cp", str(src), f"{name}:/etc/hosts")
    _ctl(croot, "rm", "-f", name)


def test_hardlinks_and_hostile_tars(croot: Path, hostile_ref: str, tmp_path: Path) -> None:
    name = "cp-links"
    _ctl(croot, "run", "-d", "--name", name, hostile_ref)
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a").write_text("same\n")
    os.link(tree / "a", tree / "b")
    _ctl(croot, "cp", str(tree), f"{name}:/linked")
    inodes = _ctl(croot, "exec", name, "stat", "-c", "%i %h", "/linked/a", "/linked/b").split()
    assert inodes[0] == inodes[2] and inodes[1] == "2"
    tar = _tar_out(croot, "cp", f"{name}:/linked", "-")
    with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
        assert archive.getmember("linked/b").islnk()
    # A tar on stdin is contained as a layer is: .. is refused, symlinks stay inside.
    escape = io.BytesIO()
    with tarfile.open(fileobj=escape, mode="w") as archive:
        archive.addfile(tarfile.TarInfo("../../../../escape"), io.BytesIO(b""))
    result = ctl_proc("cp", "-", f"{name}:/tmp", root=croot, input=escape.getvalue())
    result.assert_failure(125, "escapes")
    steer = io.BytesIO()
    with tarfile.open(fileobj=steer, mode="w") as archive:
        link = tarfile.TarInfo("lnk")
        link.type = tarfile.SYMTYPE
        link.linkname = str(tmp_path)
        archive.addfile(link)
        info = tarfile.TarInfo("lnk/planted")
        info.size = 4
        archive.addfile(info, io.BytesIO(b"evil"))
    _ctl(croot, "cp", "-", f"{name}:/tmp", input=steer.getvalue())
    assert not (tmp_path / "planted").exists()
    assert _ctl(croot, "exec", name, "cat", f"{tmp_path}/planted") == "evil"
    _ctl(croot, "rm", "-f", name)
