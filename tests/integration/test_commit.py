"""Issue 12: diff, commit, export, import, history and the prunes, against real containers."""

from __future__ import annotations

import functools
import http.server
import json
import os
import pty
import subprocess
import tarfile
import threading
from pathlib import Path

import pytest

from tests.helpers import clean_root, ctl_command, ctl_proc, pulled_root
from tests.images import CanonicalImages

pytestmark = pytest.mark.needs_root


@pytest.fixture(scope="module")
def croot(tmp_path_factory: pytest.TempPathFactory, images: CanonicalImages) -> Path:
    yield from pulled_root(tmp_path_factory.mktemp("commit"), images.busybox_ref)


def _ctl(root: Path, *argv: str, input: bytes | str | None = None) -> str:
    return ctl_proc(*argv, root=root, input=input).assert_success().stdout


def _changed_container(root: Path, image: str, name: str, snapshotter: str) -> None:
    _ctl(root, "--snapshotter", snapshotter, "run", "-d", "--name", name, image, "sleep", "600")
    script = (
        "echo hi > /tmp/new && rm /bin/ls && mkdir -p /var/x && echo z > /var/x/y"
        " && chmod 751 /root && rm -rf /home && mkdir /home && touch /home/only"
    )
    _ctl(root, "exec", name, "sh", "-c", script)


@pytest.mark.parametrize("snapshotter", ["overlayfs", "native"])
def test_diff_lists_docker_changes(
    tmp_path: Path, images: CanonicalImages, snapshotter: str
) -> None:
    root = tmp_path / "root"
    try:
        _ctl(root, "pull", images.busybox_ref)
        _changed_container(root, images.busybox_ref, "d1", snapshotter)
        lines = _ctl(root, "--snapshotter", snapshotter, "diff", "d1").splitlines()
        for want in ("C /bin", "D /bin/ls", "A /tmp/new", "A /var/x", "A /var/x/y", "C /root"):
            assert want in lines, lines
        assert "A /home/only" in lines
        # Mount points (runc's, ctl's host files) are not the container's changes.
        assert not [line for line in lines if line.endswith(("/etc/hosts", "/proc", "/dev"))]
        assert lines == sorted(lines, key=lambda line: line[2:])
        assert "D /home/user" in lines  # /home was removed and made again: opaque in overlay
        # The committed layer replays exactly that on the image.
        _ctl(root, "--snapshotter", snapshotter, "commit", "d1", "diffed:1")
        script = "cat /tmp/new; test -e /bin/ls || echo no-ls; echo /home/*; stat -c %a /root"
        out = _ctl(
            root, "--snapshotter", snapshotter, "run", "--rm", "diffed:1", "sh", "-c", script
        )
        assert out == "hi\nno-ls\n/home/only\n751\n"
    finally:
        clean_root(root)


def test_commit_round_trip_through_save_and_load(
    croot: Path, images: CanonicalImages, tmp_path: Path
) -> None:
    _changed_container(croot, images.busybox_ref, "c1", "overlayfs")
    image_id = _ctl(
        croot,
        "commit",
        "-a",
        "Jo <jo@example.com>",
        "-m",
        "the change",
        "-c",
        "ENV FOO=bar",
        "-c",
        'CMD ["cat", "/tmp/new"]',
        "-c",
        "LABEL a=b",
        "-c",
        "EXPOSE 8080",
        "c1",
        "round/trip:v1",
    ).strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    inspect = json.loads(_ctl(croot, "image", "inspect", "round/trip:v1"))[0]
    assert inspect["Id"] == image_id
    assert inspect["Comment"] == "the change"
    config = inspect["Config"]
    assert "FOO=bar" in config["Env"]
    assert config["Cmd"] == ["cat", "/tmp/new"]
    assert config["Labels"] == {"a": "b"}
    history = _ctl(croot, "history", "--no-trunc", "round/trip:v1").splitlines()
    assert history[0].split()[:5] == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE"]
    assert history[1].startswith(image_id) and "the change" in history[1]
    assert _ctl(croot, "history", "-q", "round/trip:v1").splitlines()[0] == image_id[7:19]
    archive = tmp_path / "img.tar"
    _ctl(croot, "save", "-o", str(archive), "round/trip:v1")
    other = tmp_path / "other-root"
    try:
        _ctl(other, "load", "-i", str(archive))
        assert _ctl(other, "run", "--rm", "round/trip:v1") == "hi\n"
        out = _ctl(other, "run", "--rm", "round/trip:v1", "sh", "-c", "ls /bin/ls; cat /var/x/y")
        assert out == "z\n"
        mode = _ctl(other, "run", "--rm", "round/trip:v1", "stat", "-c", "%a", "/root")
        assert mode == "751\n"
        assert (
            _ctl(other, "run", "--rm", "round/trip:v1", "sh", "-c", "echo /home/*")
            == "/home/only\n"
        )
    finally:
        clean_root(other)
    _ctl(croot, "rm", "-f", "c1")


def test_commit_without_a_name_is_dangling_and_image_prune_takes_it(
    croot: Path, images: CanonicalImages
) -> None:
    _ctl(croot, "create", "--name", "c2", images.busybox_ref)
    image_id = _ctl(croot, "commit", "--pause=false", "c2").strip()
    listed = _ctl(croot, "images", "-a", "--no-trunc")
    assert image_id in listed and "<none>" in listed
    # A prompt answered "n" (or nothing) removes nothing.
    ctl_proc("image", "prune", root=croot, input="n\n").assert_failure(125, "cancelled")
    assert image_id in _ctl(croot, "images", "-a", "--no-trunc")
    assert image_id not in _ctl(croot, "images", "--no-trunc"), "docker hides dangling images"
    out = _ctl(croot, "image", "prune", input="y\n")
    assert "Deleted Images:" in out and f"deleted: {image_id}" in out
    assert "Total reclaimed space:" in out
    assert image_id not in _ctl(croot, "images", "-a", "--no-trunc")
    # The named image in use by c2 stays, even with -a.
    _ctl(croot, "image", "prune", "-a", "-f")
    assert images.busybox_ref.rsplit("/", 1)[-1].split(":")[0] in _ctl(croot, "images")
    _ctl(croot, "rm", "-f", "c2")


def test_export_then_import(croot: Path, images: CanonicalImages, tmp_path: Path) -> None:
    _ctl(croot, "create", "--name", "e1", images.busybox_ref)
    src = tmp_path / "marker"
    src.write_text("exported\n")
    _ctl(croot, "cp", str(src), "e1:/marker")
    out = tmp_path / "fs.tar"
    _ctl(croot, "export", "-o", str(out), "e1")
    with tarfile.open(out) as archive:
        names = archive.getnames()
    assert "marker" in names and "bin/busybox" in names and "." not in names
    image_id = _ctl(
        croot, "import", "-m", "imported", "-c", 'CMD ["cat", "/marker"]', str(out), "imp/fs"
    ).strip()
    assert image_id.startswith("sha256:")
    assert _ctl(croot, "run", "--rm", "imp/fs") == "exported\n"
    piped = _ctl(croot, "import", "-", "imp/piped", input=out.read_bytes()).strip()
    assert piped.startswith("sha256:")
    # From a URL: served here by a throwaway HTTP server.
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/fs.tar"
        _ctl(croot, "import", "-c", 'CMD ["cat", "/marker"]', url, "imp/url")
        ctl_proc("import", url + ".missing", root=croot).assert_failure(125, "404")
    finally:
        server.shutdown()
        server.server_close()
    assert _ctl(croot, "run", "--rm", "imp/url") == "exported\n"
    history = _ctl(croot, "history", "imp/fs").splitlines()
    assert len(history) == 2 and "imported" in history[1]
    _ctl(croot, "rm", "-f", "e1")


def test_container_prune(croot: Path, images: CanonicalImages) -> None:
    _ctl(croot, "create", "--name", "p-created", "--label", "keep=yes", images.busybox_ref)
    _ctl(croot, "create", "--name", "p-other", images.busybox_ref)
    _ctl(croot, "run", "-d", "--name", "p-running", images.busybox_ref, "sleep", "600")
    ctl_proc("container", "prune", root=croot).assert_failure(125, "cancelled")
    out = _ctl(croot, "container", "prune", "-f", "--filter", "label!=keep=yes")
    assert out.startswith("Deleted Containers:\n")
    names = set(_ctl(croot, "ps", "-a", "--format", "{{.Names}}").split())
    assert {"p-created", "p-running"} <= names and "p-other" not in names
    _ctl(croot, "container", "prune", "-f")
    names = set(_ctl(croot, "ps", "-a", "--format", "{{.Names}}").split())
    assert "p-running" in names and "p-created" not in names
    _ctl(croot, "rm", "-f", "p-running")


def test_bad_input(croot: Path, images: CanonicalImages, tmp_path: Path) -> None:
    for argv in (
        ("diff", "missing"),
        ("export", "-o", str(tmp_path / "x.tar"), "missing"),
        ("commit", "missing"),
        ("history", "missing"),
        ("import", str(tmp_path / "missing.tar")),
        ("container", "prune", "-f", "--filter", "bogus=1"),
    ):
        ctl_proc(*argv, root=croot).assert_failure(125)
    assert not (tmp_path / "x.tar").exists()
    _ctl(croot, "create", "--name", "b1", images.busybox_ref)
    # A tar is never written to a terminal, as docker refuses too.
    for argv in (("export", "b1"), ("cp", "b1:/bin", "-")):
        leader, follower = pty.openpty()
        try:
            proc = subprocess.run(
                [*ctl_command(), "--root", str(croot), *argv],
                stdout=follower,
                stderr=subprocess.PIPE,
                check=False,
            )
        finally:
            os.close(follower)
            os.close(leader)
        assert proc.returncode == 125 and b"terminal" in proc.stderr, proc.stderr
    ctl_proc("commit", "-c", "RUN echo", "b1", root=croot).assert_failure(125, "RUN")
    ctl_proc("commit", "b1", "Bad:Name:x", root=croot).assert_failure(125)
    not_tar = tmp_path / "not.tar"
    not_tar.write_bytes(b"hello" * 200)
    ctl_proc("import", str(not_tar), "imp/bad", root=croot).assert_failure(125, "not a tar")
    _ctl(croot, "rm", "-f", "b1")
