"""Self-test of the test infrastructure: layers, images, layouts, pushes, runners."""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import tarfile
from typing import TYPE_CHECKING, Any

import pytest
import requests

from tests.helpers import CtlResult, ctl_proc, free_port, run_ctl, wait_for_port
from tests.images import (
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    OCI_INDEX,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
    PLATFORM_MARKER,
    ImageBuilder,
    LayerBuilder,
    OCILayout,
    big_layer,
    make_index,
    sha256_digest,
)

if TYPE_CHECKING:
    from pathlib import Path

    from tests.helpers import RegistryServer
    from tests.images import CanonicalImages

ACCEPT_ALL = ", ".join(
    [
        OCI_INDEX,
        OCI_MANIFEST,
        DOCKER_MANIFEST,
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _skopeo_inspect(*args: str) -> Any:
    out = subprocess.run(
        ["skopeo", "inspect", *args], capture_output=True, text=True, check=True, timeout=60
    )
    return json.loads(out.stdout)


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_layer_builder_members_and_digests(compression: Any) -> None:
    builder = (
        LayerBuilder()
        .dir("etc", mode=0o750)
        .file("etc/hosts", "127.0.0.1 localhost\n", mode=0o600, uid=1000, gid=1001, mtime=42)
        .symlink("etc/link", "hosts")
        .hardlink("etc/hard", "etc/hosts")
        .chardev("dev/null", 1, 3)
        .fifo("run/fifo")
        .whiteout("var/old")
        .opaque("opt/")
        .file("../escape", b"x")
        .file("/abs", b"y")
    )
    layer = builder.build(compression)
    blob = layer.read()
    assert layer.digest == _sha(blob) and layer.size == len(blob)
    assert layer.diff_id == _sha(layer.uncompressed())
    assert (layer.diff_id == layer.digest) == (compression == "none")
    assert builder.build(compression).digest == layer.digest, "builds are reproducible"
    with layer.open_tar() as tar:
        members = {m.name: m for m in tar.getmembers()}
        assert list(members) == [
            "etc",
            "etc/hosts",
            "etc/link",
            "etc/hard",
            "dev/null",
            "run/fifo",
            "var/.wh.old",
            "opt/.wh..wh..opq",
            "../escape",
            "/abs",
        ]
        hosts = members["etc/hosts"]
        assert (hosts.mode, hosts.uid, hosts.gid, hosts.mtime) == (0o600, 1000, 1001, 42)
        assert members["etc"].isdir() and members["etc"].mode == 0o750
        assert members["etc/link"].issym() and members["etc/link"].linkname == "hosts"
        assert members["etc/hard"].islnk() and members["etc/hard"].linkname == "etc/hosts"
        assert members["dev/null"].ischr() and members["dev/null"].devminor == 3
        assert members["run/fifo"].isfifo()
        extracted = tar.extractfile("etc/hosts")
        assert extracted is not None and extracted.read() == b"127.0.0.1 localhost\n"


def test_layer_media_types() -> None:
    zstd = LayerBuilder().file("a", "a").build("zstd")
    assert zstd.media_type == OCI_LAYER_ZSTD
    with pytest.raises(ValueError, match="docker"):
        zstd.media_type_for(docker=True)
    assert LayerBuilder().build("gzip").media_type_for(docker=True) == DOCKER_LAYER_GZIP


def test_raw_member_kept_verbatim() -> None:
    info = tarfile.TarInfo("a/../../b")
    info.type = tarfile.SYMTYPE
    info.linkname = "/etc/shadow"
    with LayerBuilder().raw(info).build("none").open_tar() as tar:
        (member,) = tar.getmembers()
    assert (member.name, member.linkname) == ("a/../../b", "/etc/shadow")


def test_busybox_layer_runs(images: CanonicalImages, tmp_path: Path) -> None:
    layer = images.factory.busybox_layer
    with layer.open_tar() as tar:
        members = {m.name: m for m in tar.getmembers()}
        busybox = tar.extractfile("bin/busybox")
        assert busybox is not None
        (tmp_path / "busybox").write_bytes(busybox.read())
        passwd = tar.extractfile("etc/passwd")
        assert passwd is not None and b"user:x:1000:1000:" in passwd.read()
    assert members["bin/busybox"].mode == 0o755
    for applet in ("sh", "ls", "cat", "echo", "sleep", "true", "false", "httpd", "env", "id"):
        assert members[f"bin/{applet}"].issym() and members[f"bin/{applet}"].linkname == "busybox"
    assert members["tmp"].mode == 0o1777 and members["root"].mode == 0o700
    assert members["home/user"].uid == 1000
    (tmp_path / "busybox").chmod(0o755)
    out = subprocess.run(
        [str(tmp_path / "busybox"), "echo", "hi"], capture_output=True, check=True
    ).stdout
    assert out == b"hi\n"


def test_image_config_and_manifest() -> None:
    layer = LayerBuilder().file("x", "x").build()
    image = ImageBuilder(
        [layer], platform="linux/arm/v7", user="1000", entrypoint=["/bin/sh", "-c"], docker=True
    ).build()
    config = image.config.json()
    assert (config["architecture"], config["os"], config["variant"]) == ("arm", "linux", "v7")
    assert config["config"]["User"] == "1000" and config["config"]["Cmd"] == ["sh"]
    assert config["rootfs"] == {"type": "layers", "diff_ids": [layer.diff_id]}
    manifest = image.manifest.json()
    assert manifest["mediaType"] == DOCKER_MANIFEST
    assert manifest["config"]["digest"] == image.config.digest == sha256_digest(image.config.read())
    assert manifest["layers"][0]["mediaType"] == DOCKER_LAYER_GZIP
    with pytest.raises(ValueError):
        make_index([ImageBuilder([layer]).build()], docker=True)


def test_pushed_images_match_raw_get(images: CanonicalImages, registry: RegistryServer) -> None:
    url = f"{registry.url}/v2/test/busybox/manifests/latest"
    response = requests.get(url, headers={"Accept": ACCEPT_ALL}, timeout=10)
    response.raise_for_status()
    assert _sha(response.content) == images.busybox.digest
    assert response.headers["Docker-Content-Digest"] == images.busybox.digest
    assert response.headers["Content-Type"] == OCI_MANIFEST

    index = requests.get(
        f"{registry.url}/v2/test/multi/manifests/latest",
        headers={"Accept": ACCEPT_ALL},
        timeout=10,
    )
    assert _sha(index.content) == images.multi.digest
    platforms = {
        m["digest"]: f"{m['platform']['os']}/{m['platform']['architecture']}"
        for m in index.json()["manifests"]
    }
    assert platforms == {
        images.multi_host.digest: images.host_platform,
        images.multi_other.digest: images.other_platform,
    }
    marker = images.multi_other.layers[-1]
    blob = requests.get(f"{registry.url}/v2/test/multi/blobs/{marker.digest}", timeout=10)
    assert _sha(blob.content) == marker.digest
    with marker.open_tar() as tar:
        content = tar.extractfile(PLATFORM_MARKER)
        assert content is not None and content.read().decode().strip() == images.other_platform


def test_skopeo_reads_pushed_images(images: CanonicalImages, registry: RegistryServer) -> None:
    info = _skopeo_inspect("--tls-verify=false", f"docker://{images.busybox_ref}")
    assert info["Digest"] == images.busybox.digest
    assert info["Layers"] == [layer.digest for layer in images.busybox.layers]
    other_arch = images.other_platform.split("/")[1]
    info = _skopeo_inspect(
        "--tls-verify=false", "--override-arch", other_arch, f"docker://{images.multi_ref}"
    )
    # skopeo reports the digest of the index it fetched, and the chosen image's layers.
    assert info["Digest"] == images.multi.digest
    assert info["Architecture"] == other_arch
    assert info["Layers"] == [layer.digest for layer in images.multi_other.layers]


def test_docker_schema2_push(images: CanonicalImages, registry: RegistryServer) -> None:
    factory = images.factory
    image = factory.image(docker=True)
    index = make_index([image], docker=True)
    ref = factory.push(index, "test/docker-list", "v1")
    assert ref == f"{registry.host}/test/docker-list:v1"
    raw = _skopeo_inspect("--tls-verify=false", "--raw", f"docker://{ref}")
    assert raw["mediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json"
    info = _skopeo_inspect("--tls-verify=false", f"docker://{ref}")
    assert info["Digest"] == index.digest
    assert info["Layers"] == [layer.digest for layer in image.layers]


def test_layout_and_archive_read_by_skopeo(images: CanonicalImages, tmp_path: Path) -> None:
    layout = OCILayout.write(tmp_path / "layout", images.multi, ref_name="multi")
    layout.add(images.busybox, ref_name="busybox")
    assert layout.top("multi")["digest"] == images.multi.digest
    assert json.loads(layout.read_blob(images.busybox.config.digest))["os"] == "linux"
    info = _skopeo_inspect(f"oci:{layout.path}:busybox")
    assert info["Digest"] == images.busybox.digest
    archive = layout.to_tar(tmp_path / "image.tar")
    info = _skopeo_inspect(f"oci-archive:{archive}:busybox")
    assert info["Digest"] == images.busybox.digest


def test_big_layer_streams_to_file(tmp_path: Path) -> None:
    layer = big_layer(tmp_path / "big.tar.gz", size_mb=2, seed=7)
    assert layer.data is None and layer.path is not None
    data = layer.path.read_bytes()
    assert layer.digest == _sha(data) and layer.size == len(data)
    assert layer.diff_id == _sha(gzip.decompress(data))
    assert layer.size > 2 << 20, "random data does not compress"
    assert big_layer(tmp_path / "again.tar.gz", size_mb=2, seed=7).digest == layer.digest


def test_ports() -> None:
    port = free_port()
    with pytest.raises(TimeoutError):
        wait_for_port(port, timeout=0.2)


def test_ctl_result_assertions() -> None:
    ok = CtlResult(("ps",), 0, "ID\n", "")
    ok.assert_success(r"^ID$")
    with pytest.raises(AssertionError):
        ok.assert_success("nope")
    CtlResult(("rm", "x"), 125, "", "ctl: container 'x': not found\n").assert_failure(
        stderr_re="not found"
    )
    CtlResult(("run", "busybox", "false"), 1, "", "").assert_failure(code=1)
    for stderr in ("", "ctl: a\nctl: b\n", "oops\n", "ctl: x\nTraceback (most recent call)\n"):
        with pytest.raises(AssertionError):
            CtlResult(("rm", "x"), 125, "", stderr).assert_failure()


def test_runners_in_process_and_subprocess(root: Path) -> None:
    run_ctl("--help", root=root).assert_success(r"usage: ctl")
    run_ctl("--no-such-flag", root=root).assert_failure(stderr_re="no-such-flag")
    ctl_proc("--no-such-flag", root=root).assert_failure(stderr_re="no-such-flag")
