"""Issue 12: volumes against real containers (runc on overlayfs)."""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import stat
from pathlib import Path

import pytest

from tests.helpers import CtlResult, ctl_proc, pulled_root
from tests.images import CanonicalImages, LayerBuilder

pytestmark = pytest.mark.needs_root

ANONYMOUS = re.compile(r"[0-9a-f]{64}")


@pytest.fixture
def vroot(tmp_path: Path, images: CanonicalImages):
    yield from pulled_root(tmp_path, images.busybox_ref)


@pytest.fixture(scope="module")
def seeded_image(images: CanonicalImages) -> str:
    """seeded_image has /srv/app (1000:1001, 0750) with files and declares it a VOLUME."""
    layer = (
        LayerBuilder()
        .dir("srv", mode=0o755)
        .dir("srv/app", mode=0o750, uid=1000, gid=1001)
        .file("srv/app/conf", "secret\n", mode=0o600, uid=1000, gid=1001)
        .file("srv/app/run.sh", "#!/bin/sh\n", mode=0o4755)
        .symlink("srv/app/link", "/etc/passwd")
        .dir("srv/app/sub", mode=0o1777, uid=7, gid=8)
        .hardlink("srv/app/conf2", "srv/app/conf")
        .fifo("srv/app/pipe", mode=0o640)
        .symlink("evil", "/etc")
        .build("gzip")
    )
    image = images.factory.image(layer, cmd=["sh"], extra_config={"Volumes": {"/srv/app": {}}})
    return images.factory.push(image, "test/volumes")


def ctl(root: Path, *argv: str) -> CtlResult:
    return ctl_proc(*argv, root=root)


def run(root: Path, *argv: str) -> CtlResult:
    return ctl(root, "run", "--rm", "--net", "none", *argv)


def volume_names(root: Path, *flags: str) -> list[str]:
    return ctl(root, "volume", "ls", "-q", *flags).assert_success().stdout.split()


def inspect(root: Path, name: str) -> dict[str, object]:
    docs = json.loads(ctl(root, "volume", "inspect", name).assert_success().stdout)
    assert isinstance(docs, list) and len(docs) == 1
    return docs[0]


def test_a_named_volume_outlives_its_containers(vroot: Path, images: CanonicalImages) -> None:
    image = images.busybox_ref
    run(vroot, "-v", "data:/d", image, "sh", "-c", "echo kept > /d/f").assert_success()
    assert volume_names(vroot) == ["data"]
    doc = inspect(vroot, "data")
    assert doc["Name"] == "data" and doc["Driver"] == "local" and doc["Scope"] == "local"
    assert doc["Mountpoint"] == str(vroot / "volumes" / "data" / "_data")
    assert (vroot / "volumes" / "data" / "_data" / "f").read_text() == "kept\n"
    run(vroot, "--mount", "src=data,dst=/e", image, "cat", "/e/f").assert_success("^kept$")
    # Read-only, as -v :ro and --mount readonly say.
    run(vroot, "-v", "data:/d:ro", image, "touch", "/d/g").assert_failure(1)
    run(vroot, "--mount", "src=data,dst=/d,readonly", image, "touch", "/d/g").assert_failure(1)
    # The spec binds the volume's data directory: a plain bind, for cp to follow.
    ctl(vroot, "create", "--name", "c", "--net", "none", "-v", "data:/d", image).assert_success()
    doc = json.loads(ctl(vroot, "inspect", "c").assert_success().stdout)[0]
    (mount,) = [m for m in doc["Spec"]["mounts"] if m["destination"] == "/d"]
    assert mount["type"] == "bind" and mount["source"] == doc_mountpoint(vroot, "data")
    (mount,) = doc["Mounts"]
    assert (mount["Type"], mount["Name"], mount["Destination"]) == ("volume", "data", "/d")
    assert mount["Source"] == doc_mountpoint(vroot, "data")


def doc_mountpoint(root: Path, name: str) -> str:
    return str(root / "volumes" / name / "_data")


def test_copy_up_keeps_owners_and_modes(vroot: Path, seeded_image: str) -> None:
    script = "stat -c '%n %u:%g %a' /srv/app /srv/app/conf /srv/app/run.sh /srv/app/sub"
    out = run(vroot, "-v", "seeded:/srv/app", seeded_image, "sh", "-c", script)
    out.assert_success()
    assert out.stdout.splitlines() == [
        "/srv/app 1000:1001 750",
        "/srv/app/conf 1000:1001 600",
        "/srv/app/run.sh 0:0 4755",
        "/srv/app/sub 7:8 1777",
    ]
    data = vroot / "volumes" / "seeded" / "_data"
    assert (data / "conf").read_text() == "secret\n"
    assert os.readlink(data / "link") == "/etc/passwd"  # a link, never followed
    assert os.stat(data / "conf").st_ino == os.stat(data / "conf2").st_ino
    assert stat.S_ISFIFO(os.lstat(data / "pipe").st_mode)
    assert stat.S_IMODE(os.lstat(data / "pipe").st_mode) == 0o640
    # Filled once: a volume that is not empty keeps what it has.
    run(vroot, "-v", "seeded:/srv/app", seeded_image, "rm", "/srv/app/conf").assert_success()
    run(vroot, "-v", "seeded:/srv/app", seeded_image, "ls", "/srv/app/conf").assert_failure(1)
    # volume-nocopy and :nocopy leave a new volume empty.
    for flag in ("--mount", "-v"):
        name = "bare" + flag.strip("-")
        spec = f"type=volume,src={name},dst=/srv/app,volume-nocopy"
        arg = spec if flag == "--mount" else f"{name}:/srv/app:nocopy"
        run(vroot, flag, arg, seeded_image, "true").assert_success()
        assert os.listdir(vroot / "volumes" / name / "_data") == []
    # z and Z (SELinux relabels) change nothing on a host without SELinux, as in docker;
    # with SELinux ctl, which applies no labels, refuses them.
    selinux = os.path.exists("/sys/fs/selinux/enforce")
    for option in ("z,ro", "Z"):
        result = run(
            vroot, "-v", f"labelled:/srv/app:{option}", seeded_image, "cat", "/srv/app/conf"
        )
        if selinux:
            result.assert_failure(125, "SELinux")
        else:
            result.assert_success("^secret$")


def test_image_volumes_are_anonymous_and_rm_v_removes_them(vroot: Path, seeded_image: str) -> None:
    ctl(vroot, "create", "--name", "av", "--net", "none", seeded_image).assert_success()
    (anonymous,) = volume_names(vroot)
    assert ANONYMOUS.fullmatch(anonymous)
    assert inspect(vroot, anonymous)["Labels"] == {"com.docker.volume.anonymous": ""}
    assert (vroot / "volumes" / anonymous / "_data" / "conf").read_text() == "secret\n"
    assert volume_names(vroot, "--filter", "dangling=false") == [anonymous]
    assert volume_names(vroot, "--filter", "dangling=true") == []
    # In use: refused with one line naming the container, -f or not.
    for flags in ((), ("-f",)):
        ctl(vroot, "volume", "rm", *flags, anonymous).assert_failure(125, "in use.*av")
    ctl(vroot, "volume", "prune", "-a", "-f").assert_success()
    assert volume_names(vroot) == [anonymous]
    # A mount at the image's VOLUME path takes its place: no anonymous volume.
    ctl(
        vroot, "create", "--name", "named", "--net", "none", "-v", "mine:/srv/app", seeded_image
    ).assert_success()
    assert sorted(volume_names(vroot)) == sorted([anonymous, "mine"])
    ctl(vroot, "rm", "-v", "av", "named").assert_success()
    assert volume_names(vroot) == ["mine"]  # a named volume stays


def test_copy_up_never_follows_a_symlink_out_of_the_image(vroot: Path, seeded_image: str) -> None:
    """The image's /evil is a symlink to /etc: its volume must not get the host's /etc."""
    run(vroot, "-v", "evil:/evil", seeded_image, "true").assert_success()
    assert os.listdir(vroot / "volumes" / "evil" / "_data") == []


def test_a_volume_in_use_in_another_namespace_stays(vroot: Path, images: CanonicalImages) -> None:
    image = images.busybox_ref
    other = ("--namespace", "other")
    ctl(vroot, *other, "pull", image).assert_success()
    ctl(
        vroot, *other, "create", "--name", "far", "--net", "none", "-v", "ns:/d", image
    ).assert_success()
    ctl(vroot, "volume", "rm", "ns").assert_failure(125, "in use by container other/far")
    ctl(vroot, "volume", "prune", "-a", "-f").assert_success()
    assert volume_names(vroot) == ["ns"]
    ctl(vroot, *other, "rm", "far").assert_success()
    ctl(vroot, "volume", "rm", "ns").assert_success()


def test_a_damaged_container_record_keeps_every_volume(
    vroot: Path, images: CanonicalImages
) -> None:
    """A container whose record cannot be read may use any volume: removal fails closed."""
    image = images.busybox_ref
    ctl(vroot, "create", "--name", "hurt", "--net", "none", "-v", "v1:/d", image).assert_success()
    ctl(vroot, "volume", "create", "v2").assert_success()
    (record,) = (vroot / "namespaces" / "default" / "containers").glob("*.json")
    record.write_text("{damaged")
    ctl(vroot, "volume", "rm", "v2").assert_failure(125, "damaged container record")
    assert volume_names(vroot) == ["v1", "v2"]
    ctl(vroot, "rm", "-f", "hurt").assert_success()
    ctl(vroot, "volume", "rm", "v1", "v2").assert_success()


def test_run_rm_removes_anonymous_volumes(vroot: Path, images: CanonicalImages) -> None:
    image = images.busybox_ref
    run(vroot, "-v", "/anon", "-v", "keep:/k", image, "touch", "/anon/x").assert_success()
    assert volume_names(vroot) == ["keep"]
    # Without --rm, rm alone keeps the anonymous volume, as docker does.
    ctl(vroot, "run", "--name", "k", "--net", "none", "-v", "/anon", image, "true").assert_success()
    ctl(vroot, "rm", "k").assert_success()
    assert len(volume_names(vroot)) == 2


def test_volumes_from(vroot: Path, images: CanonicalImages, tmp_path: Path) -> None:
    image = images.busybox_ref
    host = tmp_path / "host"
    host.mkdir()
    (host / "h").write_text("from the host\n")
    ctl(
        vroot,
        "create",
        "--name",
        "src",
        "--net",
        "none",
        "-v",
        "shared:/d",
        "-v",
        f"{host}:/h",
        "-v",
        "/anon",
        image,
    ).assert_success()
    run(vroot, "-v", "shared:/d", image, "sh", "-c", "echo hi > /d/f").assert_success()
    out = run(vroot, "--volumes-from", "src", image, "sh", "-c", "cat /d/f /h/h; touch /anon/y")
    out.assert_success()
    assert out.stdout == "hi\nfrom the host\n"
    run(vroot, "--volumes-from", "src:ro", image, "touch", "/d/g").assert_failure(1)
    # The anonymous volume src shares stays while src uses it.
    assert len(volume_names(vroot)) == 2
    run(vroot, "--volumes-from", "nope", image, "true").assert_failure(125, "nope")


def test_tmpfs_and_bind_volumes(vroot: Path, images: CanonicalImages, tmp_path: Path) -> None:
    image = images.busybox_ref
    ctl(vroot, "volume", "create", "-o", "type=tmpfs", "-o", "o=size=1m", "tv").assert_success()
    out = run(vroot, "-v", "tv:/t", image, "sh", "-c", "grep ' /t ' /proc/mounts")
    out.assert_success("^tmpfs /t tmpfs .*size=1024k")
    device = tmp_path / "device"
    device.mkdir()
    ctl(
        vroot,
        "volume",
        "create",
        "--name",
        "bv",
        "-o",
        "type=none",
        "-o",
        f"device={device}",
        "-o",
        "o=bind",
    ).assert_success()
    run(vroot, "-v", "bv:/b", image, "sh", "-c", "echo via > /b/f").assert_success()
    assert (device / "f").read_text() == "via\n"
    doc = inspect(vroot, "bv")
    assert doc["Options"] == {"type": "none", "device": str(device), "o": "bind"}


def test_two_runs_at_once_share_one_volume(vroot: Path, seeded_image: str) -> None:
    script = "echo $$ >> /srv/app/log"

    def one(_: int) -> CtlResult:
        return run(vroot, "-v", "conc:/srv/app", seeded_image, "sh", "-c", script)

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        results = list(pool.map(one, range(3)))
    for result in results:
        result.assert_success()
    assert volume_names(vroot) == ["conc"]
    data = vroot / "volumes" / "conc" / "_data"
    assert len((data / "log").read_text().split()) == 3
    assert (data / "conf").read_text() == "secret\n"  # filled once, not clobbered


def test_prune_and_system_df(vroot: Path, images: CanonicalImages) -> None:
    image = images.busybox_ref
    anonymous = ctl(vroot, "volume", "create").assert_success().stdout.strip()
    ctl(vroot, "volume", "create", "--label", "keep=yes", "labelled").assert_success()
    ctl(vroot, "volume", "create", "plain").assert_success()
    ctl(vroot, "create", "--name", "user", "--net", "none", "-v", "used:/u", image).assert_success()
    (vroot / "volumes" / anonymous / "_data" / "blob").write_bytes(b"x" * 5000)
    df = ctl(vroot, "system", "df", "--format", "json").assert_success().json_lines()
    (volumes,) = [row for row in df if row["Type"] == "Local Volumes"]
    assert volumes["TotalCount"] == 4 and volumes["Active"] == 1
    assert volumes["Size"] == "5kB" and volumes["Reclaimable"] == "5kB"
    # Without -f it asks; no answer is no.
    ctl(vroot, "volume", "prune").assert_failure(125, "cancelled")
    out = ctl(vroot, "volume", "prune", "-f").assert_success()
    assert out.stdout == f"Deleted Volumes:\n{anonymous}\n\nTotal reclaimed space: 5kB\n"
    out = ctl(vroot, "volume", "prune", "-a", "-f", "--filter", "label!=keep")
    assert out.assert_success().stdout.splitlines()[:2] == ["Deleted Volumes:", "plain"]
    assert sorted(volume_names(vroot)) == ["labelled", "used"]
    ctl(vroot, "rm", "user").assert_success()
    anonymous = ctl(vroot, "volume", "create").assert_success().stdout.strip()
    ctl(vroot, "system", "prune", "--volumes", "-f").assert_success(f"^{anonymous}$")
    assert sorted(volume_names(vroot)) == ["labelled", "used"]
    assert volume_names(vroot, "--filter", "label=keep=yes") == ["labelled"]
    assert volume_names(vroot, "--filter", "name=us") == ["used"]
    assert not [e for e in os.listdir(vroot / "volumes") if e.startswith(".")]


@pytest.mark.parametrize(
    "argv",
    [
        ("volume", "create", "a/b"),
        ("volume", "create", "--name", "x", "y"),
        ("volume", "create", "-d", "nfs", "x1"),
        ("volume", "create", "-o", "type=ext4", "x1"),
        ("volume", "rm", "missing"),
        ("volume", "inspect", "missing"),
        ("volume", "ls", "--filter", "colour=red"),
        ("run", "--rm", "--net", "none", "-v", "a/b:/x", "IMAGE", "true"),
        ("run", "--rm", "--net", "none", "--mount", "type=volume,src=../x,dst=/x", "IMAGE"),
        ("run", "--rm", "--net", "none", "--volumes-from", "c:rx", "IMAGE"),
    ],
)
def test_bad_input_is_one_line_and_creates_nothing(
    vroot: Path, images: CanonicalImages, argv: tuple[str, ...]
) -> None:
    argv = tuple(images.busybox_ref if a == "IMAGE" else a for a in argv)
    ctl(vroot, *argv).assert_failure(125)
    assert volume_names(vroot) == []
    assert ctl(vroot, "ps", "-a", "-q").assert_success().stdout == ""


def test_volume_ls_placeholders_and_inspect_of_a_missing_one(vroot: Path) -> None:
    ctl(vroot, "volume", "create", "--label", "tier=db", "--label", "a=b", "vol10").assert_success()
    ctl(vroot, "volume", "create", "vol9").assert_success()
    # docker's placeholders (volume_ls.md); ls computes no usage: Links and Size are N/A.
    template = '{{.Name}} {{.Label "tier"}}|{{.Labels}}|{{.Driver}} {{.Scope}} {{.Links}} '
    out = ctl(vroot, "volume", "ls", "--format", template + "{{.Size}} {{.Mountpoint}}")
    assert out.assert_success().stdout.splitlines() == [
        f"vol9 ||local local N/A N/A {vroot}/volumes/vol9/_data",
        f"vol10 db|a=b,tier=db|local local N/A N/A {vroot}/volumes/vol10/_data",
    ]
    lines = ctl(vroot, "volume", "ls", "--format", "json").assert_success().stdout.splitlines()
    created = inspect(vroot, "vol9")["CreatedAt"]
    assert lines[0] == (
        f'{{"Availability":"N/A","CreatedAt":"{created}","Driver":"local","Group":"N/A",'
        f'"Labels":"","Links":"N/A","Mountpoint":"{vroot}/volumes/vol9/_data","Name":"vol9",'
        '"Scope":"local","Size":"N/A","Status":"N/A"}'
    )
    # What is found is printed, then the missing one is reported (exit 125), as docker does.
    found = ctl(vroot, "volume", "inspect", "vol9", "nosuch", "vol10")
    found.assert_failure(125, "^ctl: volume 'nosuch': no such volume")
    assert [doc["Name"] for doc in json.loads(found.stdout)] == ["vol9", "vol10"]


def test_system_df_verbose_lists_volumes(vroot: Path, images: CanonicalImages) -> None:
    image = images.busybox_ref
    ctl(vroot, "volume", "create", "idle").assert_success()
    mounts = ("-v", "data:/d", "-v", "logs:/l", "-v", "/tmp:/t", "--tmpfs", "/x")
    ctl(vroot, "create", "--name", "two", "--net", "none", *mounts, image).assert_success()
    ctl(vroot, "create", "--name", "one", "--net", "none", "-v", "data:/d", image).assert_success()
    (vroot / "volumes" / "data" / "_data" / "blob").write_bytes(b"x" * 3000)
    out = ctl(vroot, "system", "df", "-v").assert_success().stdout
    volumes = out.split("Local Volumes space usage:\n\n", 1)[1].split("\n\n", 1)[0]
    assert [line.split() for line in volumes.splitlines()] == [
        ["VOLUME", "NAME", "LINKS", "SIZE"],
        ["data", "2", "3kB"],
        ["idle", "0", "0B"],
        ["logs", "1", "0B"],
    ]
    containers = out.split("Containers space usage:\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    column = containers[0].index("LOCAL VOLUMES")
    counts = {line.split()[-1]: line[column:].split()[0] for line in containers[1:]}
    assert counts == {"one": "1", "two": "2"}
    document = json.loads(ctl(vroot, "system", "df", "-v", "--format", "json").stdout)
    assert document["Volumes"][0] == {"Links": "2", "Name": "data", "Size": "3kB"}
    assert sorted(c["LocalVolumes"] for c in document["Containers"]) == ["1", "2"]
    rows = ctl(vroot, "system", "df", "--format", "json").assert_success().json_lines()
    assert {"Type": "Local Volumes", "TotalCount": 3, "Active": 2}.items() <= next(
        r for r in rows if isinstance(r, dict) and r["Type"] == "Local Volumes"
    ).items()
