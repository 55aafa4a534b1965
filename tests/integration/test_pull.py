"""Issue 2: pull, images, inspect, tag, rmi, save and load against real registries.

The real registry is Debian's docker-registry (the ``registry`` fixture);
faults a real registry cannot be made to produce (a tampered blob, a
dropped connection, a token server) come from ``tests.fakeregistry``.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.fakeregistry import FakeRegistry, digest_of
from tests.helpers import ctl_proc, run_ctl
from tests.images import CanonicalImages, Image

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.needs_root


def _serve(reg: FakeRegistry, image: Image, repo: str = "test/app", tag: str = "latest") -> str:
    for blob in (*image.layers, image.config):
        reg.add_blob(blob.read())
    reg.add_manifest(repo, tag, image.manifest.media_type, image.manifest.read())
    return f"{reg.domain}/{repo}:{tag}"


def _blobs(root: Path) -> set[str]:
    result = run_ctl("content", "ls", "-q", root=root).assert_success()
    return set(result.stdout.split())


def test_pull_single_platform_image(root: Path, images: CanonicalImages) -> None:
    result = run_ctl("pull", images.busybox_ref, root=root).assert_success()
    assert images.busybox.digest in result.stdout
    expected = {b.digest for b in images.busybox.blobs()}
    assert _blobs(root) == expected
    listing = run_ctl("images", "--format", "json", root=root).assert_success()
    rows = [json.loads(line) for line in listing.stdout.splitlines()]
    assert len(rows) == 1
    assert rows[0]["Repository"] == images.busybox_ref.rsplit(":", 1)[0]
    assert rows[0]["Tag"] == "latest"
    assert rows[0]["ID"] == images.busybox.config.digest[7:19]
    table = run_ctl("images", root=root).assert_success()
    assert table.stdout.splitlines()[0].split() == [
        "REPOSITORY",
        "TAG",
        "IMAGE",
        "ID",
        "CREATED",
        "SIZE",
    ]


def test_pull_quiet_prints_only_the_reference(root: Path, images: CanonicalImages) -> None:
    result = run_ctl("pull", "-q", images.busybox_ref, root=root).assert_success()
    assert result.stdout == images.busybox_ref + "\n"


def test_pull_selects_the_host_platform_of_an_index(root: Path, images: CanonicalImages) -> None:
    result = run_ctl("pull", images.multi_ref, root=root).assert_success()
    assert f"Digest: {images.multi.digest}" in result.stdout
    stored = _blobs(root)
    assert {b.digest for b in images.multi_host.blobs()} <= stored
    other_only = {b.digest for b in images.multi_other.blobs()} - {
        b.digest for b in images.multi_host.blobs()
    }
    assert not other_only & stored
    inspect = json.loads(run_ctl("image", "inspect", images.multi_ref, root=root).stdout)
    assert inspect[0]["Id"] == images.multi_host.config.digest
    assert inspect[0]["Target"]["digest"] == images.multi.digest


def test_pull_other_platform(root: Path, images: CanonicalImages) -> None:
    run_ctl(
        "pull", "--platform", images.other_platform, images.multi_ref, root=root
    ).assert_success()
    assert images.multi_other.manifest.digest in _blobs(root)


def test_pull_missing_platform_is_a_clear_error(root: Path, images: CanonicalImages) -> None:
    run_ctl("pull", "--platform", "linux/s390x", images.multi_ref, root=root).assert_failure(
        125, stderr_re="platform linux/s390x"
    )
    assert _blobs(root) == set()


def test_pull_by_digest(root: Path, images: CanonicalImages) -> None:
    name = images.busybox_ref.rsplit(":", 1)[0]
    ref = f"{name}@{images.busybox.digest}"
    run_ctl("pull", ref, root=root).assert_success()
    rows = run_ctl("images", "--format", "json", root=root).json_lines()
    assert rows[0]["Tag"] == "<none>" and rows[0]["Digest"] == images.busybox.digest


def test_second_pull_downloads_nothing(root: Path, images: CanonicalImages) -> None:
    with FakeRegistry() as reg:
        ref = _serve(reg, images.busybox)
        run_ctl("pull", ref, root=root).assert_success()
        first = len(reg.requests_to("/blobs/"))
        assert first == len(images.busybox.layers) + 1
        run_ctl("pull", ref, root=root).assert_success()
        assert len(reg.requests_to("/blobs/")) == first


def test_tampered_blob_is_refused_and_not_stored(root: Path, images: CanonicalImages) -> None:
    """The root is new: pull checks in a thread, while it downloads, that overlayfs works
    there, and a pull that fails waits for the check, which leaves its answer and no mount
    or directory."""
    with FakeRegistry() as reg:
        ref = _serve(reg, images.busybox)
        layer = images.busybox.layers[0]
        data = bytearray(layer.read())
        data[len(data) // 2] ^= 0xFF
        reg.blobs[layer.digest] = bytes(data)
        run_ctl("pull", ref, root=root).assert_failure(125, stderr_re=layer.digest[:20])
    assert layer.digest not in _blobs(root)
    assert run_ctl("images", "-q", root=root).stdout == ""
    active = run_ctl("content", "active", "--format", "json", root=root).json_lines()
    assert active == []
    snapshots = root / "snapshots" / "overlayfs"
    assert (snapshots / "overlay-check.json").is_file(), "the check ran to its end"
    assert not [p.name for p in snapshots.iterdir() if p.name.startswith("overlay-check-")]
    with open("/proc/self/mountinfo") as f:
        assert str(root) not in f.read()


def test_wrong_size_is_refused(root: Path, images: CanonicalImages) -> None:
    with FakeRegistry() as reg:
        image = images.busybox
        for blob in (*image.layers, image.config):
            reg.add_blob(blob.read())
        manifest = image.manifest.json()
        manifest["layers"][0]["size"] += 1
        body = json.dumps(manifest).encode()
        reg.add_manifest("test/app", "latest", image.manifest.media_type, body)
        run_ctl("pull", f"{reg.domain}/test/app:latest", root=root).assert_failure(125)
    assert image.layers[0].digest not in _blobs(root)


def test_cut_off_download_resumes(root: Path, images: CanonicalImages, tmp_path: Path) -> None:
    from tests.images import ImageBuilder, big_layer

    big = big_layer(tmp_path / "big.tar.gz", size_mb=2)
    # One layer: with two, the other one's failure could stop this one before its first byte.
    image = ImageBuilder([big]).build()
    with FakeRegistry() as reg:
        ref = _serve(reg, image)
        reg.drop_after = 64 * 1024
        run_ctl("pull", ref, root=root).assert_failure(125)
        active = run_ctl("content", "active", "--format", "json", root=root).json_lines()
        partial = {a["Expected"]: a["Offset"] for a in active}
        assert 0 < partial[big.digest] < big.size
        reg.drop_after = None
        run_ctl("pull", ref, root=root).assert_success()
        ranges = [s.headers.get("Range") for s in reg.requests_to(big.digest)]
        assert ranges[-1] == f"bytes={partial[big.digest]}-"
    assert big.digest in _blobs(root)


def test_a_failed_pull_leaves_no_download_running(
    root: Path, images: CanonicalImages, tmp_path: Path
) -> None:
    """Through the Python API no thread goes on writing after pull raised."""
    import time

    import ctl
    from ctl.errdefs import Unavailable
    from tests.images import big_layer

    big = big_layer(tmp_path / "big.tar.gz", size_mb=2)
    image = images.factory.image(big)
    client = ctl.Client(root=root)
    with FakeRegistry() as reg:
        ref = _serve(reg, image)
        reg.drop_after = 64 * 1024
        # busybox's layer fails its attempts while the big one still waits for its body.
        reg.slow_blobs[big.digest] = 0.5
        with pytest.raises(Unavailable):
            client.pull(ref)
        offsets = {s.ref: s.offset for s in client.content.list_statuses()}
        time.sleep(1.0)
        assert {s.ref: s.offset for s in client.content.list_statuses()} == offsets


def test_token_auth_with_docker_config(
    root: Path, images: CanonicalImages, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeRegistry(auth="bearer", users={"alice": "s3cret"}) as reg:
        ref = _serve(reg, images.busybox)
        monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path))
        (tmp_path / "config.json").write_text("{}")
        run_ctl("pull", ref, root=root).assert_failure(125, stderr_re="(?i)auth")
        auth = base64.b64encode(b"alice:s3cret").decode()
        (tmp_path / "config.json").write_text(json.dumps({"auths": {reg.domain: {"auth": auth}}}))
        run_ctl("pull", ref, root=root).assert_success()
        assert any("Bearer" in s.headers.get("Authorization", "") for s in reg.seen)


def test_tag_rmi_and_unknown_image(root: Path, images: CanonicalImages) -> None:
    run_ctl("pull", images.busybox_ref, root=root).assert_success()
    run_ctl("tag", images.busybox_ref, "example.com/mine:v1", root=root).assert_success()
    names = {r["Name"] for r in run_ctl("images", "--format", "json", root=root).json_lines()}
    assert names == {images.busybox_ref, "example.com/mine:v1"}
    run_ctl("rmi", "example.com/mine:v1", root=root).assert_success()
    run_ctl("rmi", "example.com/mine:v1", root=root).assert_failure(125, stderr_re="not found")
    run_ctl("image", "inspect", "nope", root=root).assert_failure(125, stderr_re="not found")
    run_ctl("pull", "Busybox", root=root).assert_failure(125, stderr_re="(?i)invalid")


def test_save_then_load_into_a_fresh_root(
    root: Path, images: CanonicalImages, tmp_path: Path
) -> None:
    run_ctl("pull", images.busybox_ref, root=root).assert_success()
    run_ctl("pull", images.multi_ref, root=root).assert_success()
    archive = tmp_path / "images.tar"
    run_ctl("save", "-o", str(archive), images.busybox_ref, images.multi_ref, root=root)
    fresh = tmp_path / "fresh"
    loaded = run_ctl("load", "-i", str(archive), root=fresh).assert_success()
    assert images.busybox_ref in loaded.stdout
    before = run_ctl("images", "--format", "json", root=root).json_lines()
    after = run_ctl("images", "--format", "json", root=fresh).json_lines()
    assert [(r["Name"], r["ID"]) for r in before] == [(r["Name"], r["ID"]) for r in after]
    # What ctl writes, skopeo reads as an OCI archive and as a docker archive.
    for source in (f"oci-archive:{archive}:{images.busybox_ref}", f"docker-archive:{archive}:@0"):
        subprocess.run(["skopeo", "inspect", source], check=True, capture_output=True)


def test_load_from_stdin_through_the_binary(
    root: Path, images: CanonicalImages, tmp_path: Path
) -> None:
    run_ctl("pull", images.busybox_ref, root=root).assert_success()
    archive = tmp_path / "busybox.tar"
    run_ctl("save", "-o", str(archive), images.busybox_ref, root=root).assert_success()
    result = ctl_proc("load", root=tmp_path / "other", input=archive.read_bytes())
    result.assert_success(stdout_re="Loaded image")


@pytest.mark.parametrize("transport", ["oci-archive", "docker-archive"])
def test_load_archives_made_by_skopeo(
    root: Path, images: CanonicalImages, tmp_path: Path, transport: str
) -> None:
    archive = tmp_path / f"{transport}.tar"
    subprocess.run(
        [
            "skopeo",
            "copy",
            "--src-tls-verify=false",
            f"docker://{images.busybox_ref}",
            f"{transport}:{archive}:example.com/skopeo/busybox:v1",
        ],
        check=True,
        capture_output=True,
    )
    run_ctl("load", "-i", str(archive), root=root).assert_success()
    rows = run_ctl("images", "--format", "json", root=root).json_lines()
    assert [r["Name"] for r in rows] == ["example.com/skopeo/busybox:v1"]
    assert rows[0]["ID"] == images.busybox.config.digest[7:19]


def test_load_refuses_malformed_archives(root: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"this is not a tar archive" * 100)
    run_ctl("load", "-i", str(junk), root=root).assert_failure(125)
    import tarfile

    empty = tmp_path / "empty.tar"
    with tarfile.open(empty, "w") as tar:
        info = tarfile.TarInfo("hello.txt")
        tar.addfile(info)
    run_ctl("load", "-i", str(empty), root=root).assert_failure(125, stderr_re="index.json")
    run_ctl("load", "-i", str(tmp_path / "missing.tar"), root=root).assert_failure(125)


def test_load_refuses_a_tampered_blob(root: Path, images: CanonicalImages, tmp_path: Path) -> None:
    import io
    import tarfile

    run_ctl("pull", images.busybox_ref, root=root).assert_success()
    archive = tmp_path / "a.tar"
    run_ctl("save", "-o", str(archive), images.busybox_ref, root=root).assert_success()
    bad = tmp_path / "bad.tar"
    layer = images.busybox.layers[0].digest[7:]
    with tarfile.open(archive) as src, tarfile.open(bad, "w") as dst:
        for member in src:
            data = src.extractfile(member).read() if member.isfile() else None
            if member.name.endswith(layer):
                data = b"X" + data[1:]
            dst.addfile(member, io.BytesIO(data) if data is not None else None)
    fresh = tmp_path / "fresh"
    run_ctl("load", "-i", str(bad), root=fresh).assert_failure(125, stderr_re=layer[:12])
    assert images.busybox.layers[0].digest not in _blobs(fresh)
    assert run_ctl("images", "-q", root=fresh).stdout == ""


def test_blob_digest_helper_matches() -> None:
    assert (
        digest_of(b"")
        == "sha256:" + "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )


def test_two_concurrent_pulls_download_each_blob_once(
    root: Path, images: CanonicalImages, tmp_path: Path
) -> None:
    from tests.images import big_layer

    image = images.factory.image(big_layer(tmp_path / "big.tar.gz", size_mb=4))
    with FakeRegistry() as reg:
        ref = _serve(reg, image)
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            pulls = [pool.submit(ctl_proc, "pull", ref, root=root, timeout=60) for _ in "ab"]
            for pull in pulls:
                pull.result().assert_success()
        gets = [s for s in reg.requests_to("/blobs/") if s.method == "GET"]
        assert sorted(s.path.rsplit("/", 1)[1] for s in gets) == sorted(
            b.digest for b in (*image.layers, image.config)
        )


def test_push_then_pull_back(root: Path, images: CanonicalImages, registry, tmp_path: Path) -> None:
    run_ctl("pull", images.multi_ref, root=root).assert_success()
    target = f"{registry.host}/pushed/multi:v2"
    run_ctl("tag", images.multi_ref, target, root=root).assert_success()
    run_ctl("push", target, root=root).assert_success(stdout_re="Digest: sha256:")
    fresh = tmp_path / "fresh"
    run_ctl("pull", target, root=fresh).assert_success()
    rows = run_ctl("images", "--format", "json", root=fresh).json_lines()
    assert rows[0]["ID"] == images.multi_host.config.digest[7:19]


def test_content_commands(root: Path, images: CanonicalImages) -> None:
    digest = run_ctl("content", "fetch", "-q", images.busybox_ref, root=root).assert_success()
    assert digest.stdout.strip() == images.busybox.digest
    assert run_ctl("images", "-q", root=root).stdout == ""
    config = images.busybox.config
    got = ctl_proc("content", "get", config.digest, root=root).assert_success()
    assert got.stdout.encode() == config.read()
    rows = run_ctl("content", "ls", "--format", "json", root=root).json_lines()
    assert {r["Digest"] for r in rows} == {b.digest for b in images.busybox.blobs()}
    run_ctl("content", "rm", config.digest, root=root).assert_success()
    run_ctl("content", "rm", config.digest, root=root).assert_failure(125, stderr_re="not found")
    run_ctl("content", "get", "sha256:xyz", root=root).assert_failure(125, stderr_re="digest")


def test_namespaces_keep_images_apart(root: Path, images: CanonicalImages) -> None:
    run_ctl("-n", "team", "pull", images.busybox_ref, root=root).assert_success()
    assert run_ctl("images", "-q", root=root).stdout == ""
    assert run_ctl("-n", "team", "images", "-q", root=root).stdout.strip()
    run_ctl("namespaces", "create", "empty", root=root).assert_success()
    run_ctl("namespaces", "create", "empty", root=root).assert_failure(125, stderr_re="exists")
    names = run_ctl("namespaces", "ls", "-q", root=root).stdout.split()
    assert {"team", "empty"} <= set(names)
    run_ctl("namespaces", "rm", "team", root=root).assert_failure(125, stderr_re="not empty")
    run_ctl("namespaces", "rm", "empty", root=root).assert_success()
    run_ctl("-n", "../x", "images", root=root).assert_failure(125, stderr_re="namespace")
    # Once its containers and images are gone, a namespace goes: the containers' name and
    # ps indexes, which outlive them, are not containers.
    team = ("-n", "team")
    run_ctl(*team, "create", "--net", "none", "--name", "c", images.busybox_ref, root=root)
    run_ctl(*team, "rmi", "-f", images.busybox_ref, root=root).assert_success()
    run_ctl("namespaces", "rm", "team", root=root).assert_failure(125, stderr_re="1 containers")
    run_ctl(*team, "rm", "c", root=root).assert_success()
    run_ctl("namespaces", "rm", "team", root=root).assert_success()


def test_image_history_and_version(root: Path, images: CanonicalImages) -> None:
    run_ctl("pull", images.busybox_ref, root=root).assert_success()
    history = run_ctl("image", "history", images.busybox_ref, root=root).assert_success()
    assert history.stdout.startswith("IMAGE")
    version = run_ctl("--version", root=root).assert_success()
    assert version.stdout.startswith("ctl version") and "runc version" in version.stdout


def test_listing_templates(root: Path, images: CanonicalImages) -> None:
    run_ctl("pull", images.busybox_ref, root=root).assert_success()
    line = run_ctl("images", "--format", r"{{.Tag}}\t{{.ID}}", root=root).assert_success()
    assert line.stdout == f"latest\t{images.busybox.config.digest[7:19]}\n"
    table = run_ctl("images", "--format", "table {{.Tag}}\t{{.Size}}", root=root).stdout
    assert table.splitlines()[0].split() == ["TAG", "SIZE"]
    run_ctl("images", "--format", "{{.Nope}}", root=root).assert_failure(125, stderr_re="Nope")
    run_ctl("images", "--format", "yaml", root=root).assert_failure(125, stderr_re="format")


def _stored(root: Path, digest: str) -> Path:
    return root / "content" / "blobs" / "sha256" / digest.removeprefix("sha256:")


def _rewritten(change: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def damage(path: Path) -> None:
        path.chmod(0o644)
        path.write_bytes(change(path.read_bytes()))

    return damage


BLOB_DAMAGE = {
    "same size": _rewritten(lambda data: data[:-1] + bytes([data[-1] ^ 0xFF])),
    "shorter": _rewritten(lambda data: data[:-10]),
    "longer": _rewritten(lambda data: data + b"more"),
}


def _temp_files(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("damage", list(BLOB_DAMAGE))
def test_save_refuses_a_blob_that_does_not_match_its_digest(
    root: Path, images: CanonicalImages, tmp_path: Path, damage: str
) -> None:
    run_ctl("pull", images.busybox_ref, root=root).assert_success()
    layer = images.busybox.layers[0].digest
    BLOB_DAMAGE[damage](_stored(root, layer))
    out = tmp_path / "out"
    out.mkdir()
    archive = out / "busybox.tar"
    run_ctl("save", "-o", str(archive), images.busybox_ref, root=root).assert_failure(
        125, stderr_re=f"{layer}.*does not match its digest"
    )
    assert list(out.iterdir()) == []
    # To stdout too: what was written may not be taken back, but the exit says so.
    result = ctl_proc("save", images.busybox_ref, root=root)
    result.assert_failure(125, stderr_re=f"{layer}.*does not match its digest")


@pytest.mark.parametrize(
    "kind", ["layer same size", "layer shorter", "layer longer", "config", "manifest"]
)
def test_pull_again_replaces_a_blob_that_fails_verification(
    root: Path, images: CanonicalImages, kind: str
) -> None:
    run_ctl("pull", images.busybox_ref, root=root).assert_success()
    blob = {
        "config": images.busybox.config,
        "manifest": images.busybox.manifest,
    }.get(kind, images.busybox.layers[0])
    BLOB_DAMAGE[kind.removeprefix("layer ") if kind.startswith("layer") else "same size"](
        _stored(root, blob.digest)
    )
    run_ctl("system", "check", root=root).assert_failure(1)
    run_ctl("pull", images.busybox_ref, root=root).assert_success()
    assert _stored(root, blob.digest).read_bytes() == blob.read()
    run_ctl("system", "check", root=root).assert_success(stdout_re="0 problems")


def test_save_to_a_directory_fails_naming_it_and_leaves_nothing(
    root: Path, images: CanonicalImages, tmp_path: Path
) -> None:
    run_ctl("pull", images.busybox_ref, root=root).assert_success()
    target = tmp_path / "dir"
    target.mkdir()
    result = run_ctl("save", "-o", str(target), images.busybox_ref, root=root)
    result.assert_failure(125, stderr_re=f"{target} is a directory")
    assert ".tmp" not in result.stderr
    assert _temp_files(tmp_path) == [] and list(target.iterdir()) == []


def test_save_on_a_full_disk_names_the_file_and_removes_the_temporary(
    root: Path, images: CanonicalImages, tmp_path: Path
) -> None:
    run_ctl("pull", images.busybox_ref, root=root).assert_success()
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(small)], check=True)
    try:
        archive = small / "busybox.tar"
        result = run_ctl("save", "-o", str(archive), images.busybox_ref, root=root)
        result.assert_failure(125, stderr_re=f"save: writing {archive}: No space left on device")
        assert list(small.iterdir()) == []
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_save_removes_its_temporary_file_on_sigterm(tmp_path: Path) -> None:
    import os
    import signal

    from ctl.images.archive import archive_file

    archive = tmp_path / "out.tar"
    with pytest.raises(SystemExit) as exited, archive_file(archive) as out:
        out.write(b"partial")
        assert _temp_files(tmp_path) == [f".out.tar.{os.getpid()}.tmp"]
        os.kill(os.getpid(), signal.SIGTERM)
    assert exited.value.code == 128 + signal.SIGTERM
    assert list(tmp_path.iterdir()) == []
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_save_removes_what_a_killed_save_to_the_same_file_left(
    root: Path, images: CanonicalImages, tmp_path: Path
) -> None:
    """A SIGKILL leaves the temporary file; its flock died with it, so the next save removes it."""
    import fcntl

    run_ctl("pull", images.busybox_ref, root=root).assert_success()
    stale = tmp_path / ".busybox.tar.999999.tmp"
    stale.write_bytes(b"left by a killed save")
    busy = tmp_path / ".busybox.tar.999998.tmp"
    busy.write_bytes(b"a save in progress")
    other = tmp_path / ".other.tar.999997.tmp"
    other.write_bytes(b"a save to another file")
    with busy.open("rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        archive = tmp_path / "busybox.tar"
        run_ctl("save", "-o", str(archive), images.busybox_ref, root=root).assert_success()
    assert sorted(_temp_files(tmp_path)) == sorted([busy.name, other.name])
    assert archive.stat().st_size > 0
