"""The image commands' output and rules as docker's: rmi, images, load, save, inspect, pull -q."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from tests.helpers import RegistryServer, clean_root, ctl_proc, run_ctl
from tests.images import CanonicalImages


def _import_unnamed(root: Path, tmp_path: Path) -> str:
    """_import_unnamed makes an image of no name (``import`` without REF); returns its ID."""
    source = tmp_path / "fs.tar"
    with tarfile.open(source, "w") as tar:
        data = b"hello\n"
        info = tarfile.TarInfo("hello.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return run_ctl("import", "-m", "made here", str(source), root=root).assert_success().stdout


@pytest.mark.needs_root
def test_rmi_refuses_the_last_name_of_an_image_in_use_under_another_name(
    root: Path, images: CanonicalImages
) -> None:
    """The container was created from sa:1: the image is in use by its digest, not by name."""
    try:
        run_ctl("pull", images.busybox_ref, root=root).assert_success()
        for name in ("sa:1", "sb:1"):
            run_ctl("tag", images.busybox_ref, name, root=root).assert_success()
        # The test registry's names are familiar as they are: a domain other than docker.io stays.
        out = run_ctl("rmi", images.busybox_ref, root=root).assert_success().stdout
        assert out == f"Untagged: {images.busybox_ref}\n"
        create = ("create", "--name", "c", "--net", "none", "sa:1", "true")
        ctl_proc(*create, root=root).assert_success()
        run_ctl("rmi", "sa:1", root=root).assert_success()
        run_ctl("rmi", "sb:1", root=root).assert_failure(125, "used by container c ")
        run_ctl("image", "prune", "-a", "-f", root=root).assert_success()
        listed = run_ctl("images", "--format", "{{.Repository}}:{{.Tag}}", root=root).stdout
        assert listed == "sb:1\n", "prune -a keeps an image in use by its digest too"
        # An image of other layers is no container's: the last name goes.
        run_ctl("pull", images.multi_ref, root=root).assert_success()
        out = run_ctl("rmi", images.multi_ref, root=root).assert_success().stdout
        multi_id = images.multi_host.config.digest
        assert out == f"Untagged: {images.multi_ref}\nDeleted: {multi_id}\n"
        forced = run_ctl("rmi", "-f", "sb:1", root=root).assert_success().stdout
        assert forced == f"Untagged: sb:1\nDeleted: {images.busybox.config.digest}\n"
    finally:
        clean_root(root)


def test_rmi_prints_dockers_lines(root: Path, images: CanonicalImages, tmp_path: Path) -> None:
    run_ctl("pull", images.busybox_ref, root=root).assert_success()
    run_ctl("tag", images.busybox_ref, "busybox", root=root).assert_success()
    run_ctl("tag", images.busybox_ref, "quay.io/x/y:2", root=root).assert_success()
    assert run_ctl("rmi", "busybox", root=root).stdout == "Untagged: busybox:latest\n"
    both = run_ctl("rmi", "quay.io/x/y:2", images.busybox_ref, root=root).assert_success()
    assert both.stdout == (
        "Untagged: quay.io/x/y:2\n"
        f"Untagged: {images.busybox_ref}\n"
        f"Deleted: {images.busybox.config.digest}\n"
    )
    image_id = _import_unnamed(root, tmp_path).strip()
    by_id = run_ctl("rmi", image_id[7:19], root=root).assert_success()
    assert by_id.stdout == f"Deleted: {image_id}\n"


def test_rmi_force_of_a_missing_image_is_reported_but_not_fatal(
    root: Path, images: CanonicalImages
) -> None:
    run_ctl("pull", images.busybox_ref, root=root).assert_success()
    missing = run_ctl("rmi", "-f", "nosuch", root=root)
    assert (missing.code, missing.stdout) == (0, "")
    assert missing.stderr.startswith("ctl: ") and "nosuch" in missing.stderr
    mixed = run_ctl("rmi", "-f", "nosuch", images.busybox_ref, root=root)
    assert mixed.code == 0 and mixed.stdout.startswith("Untagged: ")
    assert len(mixed.stderr.splitlines()) == 1 and "nosuch" in mixed.stderr
    run_ctl("rmi", "nosuch", root=root).assert_failure(125, "not found")


def test_images_lists_familiar_names_and_hides_dangling_ones(
    root: Path, images: CanonicalImages, tmp_path: Path
) -> None:
    run_ctl("pull", images.busybox_ref, root=root).assert_success()
    run_ctl("tag", images.busybox_ref, "app:1", root=root).assert_success()
    image_id = _import_unnamed(root, tmp_path).strip()

    def listed(*flags: str) -> list[str]:
        fmt = "{{.Repository}} {{.Tag}} {{.Name}}"
        return sorted(run_ctl("images", "--format", fmt, *flags, root=root).stdout.splitlines())

    repository = images.busybox_ref.rsplit(":", 1)[0]
    named = [
        f"{repository} latest {images.busybox_ref}",
        "app 1 docker.io/library/app:1",
    ]
    assert listed() == sorted(named)
    unnamed = [line for line in listed("-a") if line.startswith("<none> <none> sha256:")]
    assert len(unnamed) == 1 and len(listed("-a")) == 3
    assert listed("-f", "dangling=true") == unnamed
    assert image_id[7:19] in run_ctl("images", "-a", "-q", root=root).stdout
    assert image_id[7:19] not in run_ctl("images", "-q", root=root).stdout
    fields = run_ctl("images", "--format", "json", root=root).json_lines()[0]
    assert {"Containers", "SharedSize", "UniqueSize", "VirtualSize"} <= set(fields), fields
    # Newest first, as docker's daemon lists them: the import is younger than busybox.
    order = run_ctl("images", "-a", "--format", "{{.Repository}}", root=root).stdout.split()
    assert order[0] == "<none>", order


def test_images_created_at_is_gos_time_string(
    root: Path, images: CanonicalImages, tmp_path: Path
) -> None:
    from ctl.timefmt import go_time_string, parse_rfc3339

    run_ctl("pull", images.busybox_ref, root=root).assert_success()
    created = run_ctl("image", "inspect", "-f", "{{.Created}}", images.busybox_ref, root=root)
    seconds = parse_rfc3339(created.stdout.strip())
    assert seconds is not None
    shown = ctl_proc("images", "--format", "{{.CreatedAt}}", root=root, env={"TZ": "UTC"})
    assert shown.assert_success().stdout == go_time_string(seconds) + "\n"
    assert shown.stdout.endswith(" +0000 UTC\n")


@pytest.mark.parametrize(
    ("seconds", "tz", "want"),
    [
        (1700000000, "UTC", "2023-11-14 22:13:20 +0000 UTC"),
        (1700000000.9, "UTC", "2023-11-14 22:13:20 +0000 UTC"),
        (1700000000, "Europe/Paris", "2023-11-14 23:13:20 +0100 CET"),
    ],
)
def test_go_time_string(
    monkeypatch: pytest.MonkeyPatch, seconds: float, tz: str, want: str
) -> None:
    import time

    from ctl.timefmt import go_time_string

    monkeypatch.setenv("TZ", tz)
    time.tzset()
    try:
        assert go_time_string(seconds) == want
    finally:
        monkeypatch.undo()
        time.tzset()


def test_save_and_load_keep_an_unnamed_image_unnamed(
    root: Path, images: CanonicalImages, tmp_path: Path
) -> None:
    image_id = _import_unnamed(root, tmp_path).strip()
    archive = tmp_path / "unnamed.tar"
    run_ctl("save", "-o", str(archive), image_id[7:19], root=root).assert_success()
    with tarfile.open(archive) as tar:
        member = tar.extractfile("index.json")
        assert member is not None
        index = json.loads(member.read())
    (entry,) = index["manifests"]
    assert "io.containerd.image.name" not in entry.get("annotations", {})
    fresh = tmp_path / "fresh"
    loaded = run_ctl("load", "-i", str(archive), root=fresh).assert_success()
    assert loaded.stdout == f"Loaded image ID: {image_id}\n"
    rows = run_ctl("images", "-a", "--format", "json", root=fresh).json_lines()
    assert [(r["Repository"], r["Tag"]) for r in rows] == [("<none>", "<none>")]  # type: ignore[index]
    # An archive of ctl's before, which named the image by its digest, loads it unnamed too.
    entry["annotations"] = {"io.containerd.image.name": entry["digest"]}
    old = tmp_path / "old.tar"
    body = json.dumps(index).encode()
    with tarfile.open(archive) as src, tarfile.open(old, "w") as dst:
        for member_info in src:
            data = src.extractfile(member_info) if member_info.isfile() else None
            if member_info.name == "index.json":
                member_info.size = len(body)
                data = io.BytesIO(body)
            dst.addfile(member_info, data)
    again = tmp_path / "again"
    assert run_ctl("load", "-i", str(old), root=again).stdout == f"Loaded image ID: {image_id}\n"
    names = run_ctl("images", "-a", "--format", "{{.Name}}", root=again).stdout
    assert names.startswith("sha256:"), names


def test_load_prints_familiar_names(root: Path, images: CanonicalImages, tmp_path: Path) -> None:
    run_ctl("pull", images.busybox_ref, root=root).assert_success()
    run_ctl("tag", images.busybox_ref, "busybox:1", root=root).assert_success()
    archive = tmp_path / "named.tar"
    run_ctl("save", "-o", str(archive), "busybox:1", root=root).assert_success()
    loaded = run_ctl("load", "-i", str(archive), root=tmp_path / "fresh").assert_success()
    assert loaded.stdout == "Loaded image: busybox:1\n"


def test_image_inspect_is_dockers_document(
    root: Path, images: CanonicalImages, tmp_path: Path
) -> None:
    run_ctl("pull", images.busybox_ref, root=root).assert_success()
    run_ctl("tag", images.busybox_ref, "busybox", root=root).assert_success()
    (doc,) = json.loads(run_ctl("image", "inspect", "busybox", root=root).stdout)
    assert doc["RepoTags"] == ["busybox:latest"]
    assert doc["RepoDigests"] == [f"busybox@{images.busybox.digest}"]
    assert doc["Name"] == "docker.io/library/busybox:latest"
    diff_ids = json.loads(images.busybox.config.read())["rootfs"]["diff_ids"]
    assert doc["RootFS"] == {"Type": "layers", "Layers": diff_ids}
    assert (doc["Parent"], doc["DockerVersion"], doc["Comment"]) == ("", "", "")
    image_id = _import_unnamed(root, tmp_path).strip()
    (imported,) = json.loads(run_ctl("image", "inspect", image_id, root=root).stdout)
    assert imported["Comment"] == "made here"
    assert (imported["RepoTags"], imported["RepoDigests"]) == ([], [])


def test_image_inspect_prints_what_it_finds_then_the_error(
    root: Path, images: CanonicalImages
) -> None:
    run_ctl("pull", images.busybox_ref, root=root).assert_success()
    both = run_ctl("image", "inspect", "-f", "{{.Id}}", images.busybox_ref, "nosuch", root=root)
    both.assert_failure(125, "nosuch")
    assert both.stdout == images.busybox.config.digest + "\n"
    alone = run_ctl("image", "inspect", "nosuch", root=root).assert_failure(125, "nosuch")
    assert alone.stdout == ""


def test_pull_prints_dockers_lines(root: Path, images: CanonicalImages) -> None:
    """docker's pull output, which scripts grep: the Status line says whether it changed."""
    repository = images.busybox_ref.rsplit(":", 1)[0]
    first = run_ctl("pull", repository, root=root).assert_success().stdout.splitlines()
    short = f"{repository}:latest"  # a registry on 127.0.0.1 keeps its host in short names
    assert first[0] == "Using default tag: latest", first
    assert first[-2:] == [f"Status: Downloaded newer image for {short}", short], first
    again = run_ctl("pull", f"{repository}:latest", root=root).assert_success().stdout
    assert again.splitlines()[-2:] == [f"Status: Image is up to date for {short}", short]
    assert "Using default tag" not in again


def test_pull_and_push_quiet_print_the_reference(
    root: Path, images: CanonicalImages, registry: RegistryServer
) -> None:
    pulled = run_ctl("pull", "-q", images.busybox_ref, root=root).assert_success()
    assert pulled.stdout == images.busybox_ref + "\n"
    repository = images.busybox_ref.rsplit(":", 1)[0]
    untagged = run_ctl("pull", "-q", repository, root=root).assert_success()
    assert untagged.stdout == f"{repository}:latest\n"
    target = f"{registry.host}/quiet/pushed"
    run_ctl("tag", images.busybox_ref, target, root=root).assert_success()
    pushed = run_ctl("push", "-q", target, root=root).assert_success()
    assert pushed.stdout == f"{target}:latest\n"
    everything = run_ctl("push", "-q", "-a", target, root=root).assert_success()
    assert everything.stdout == f"{target}\n"
