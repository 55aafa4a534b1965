"""``ctl inspect`` of a container in docker's shape: the fields scripts read, and templates."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest

from tests.helpers import ctl_proc, free_port, inspect_one, pulled_root

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.images import CanonicalImages

pytestmark = pytest.mark.needs_root

MIB = 1 << 20


@pytest.fixture(scope="module")
def iroot(tmp_path_factory: pytest.TempPathFactory, images: CanonicalImages) -> Iterator[Path]:
    yield from pulled_root(tmp_path_factory.mktemp("inspect"), images.busybox_ref)


def template(root: Path, name: str, fmt: str, *, command: str = "inspect") -> str:
    argv = ("container", "inspect") if command == "container" else ("inspect",)
    result = ctl_proc(*argv, "-f", fmt, name, root=root).assert_success()
    return result.stdout.rstrip("\n")


def test_host_config_of_run_flags_and_of_update(
    iroot: Path, images: CanonicalImages, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    ctl_proc(
        "run", "-d", "--name", "hc", "--net", "none", "--memory", "64m", "--cpus", "0.5",
        "--restart", "on-failure:3", "-v", f"{data}:/data:ro", "--cap-add", "NET_ADMIN",
        "--cap-drop", "MKNOD", "--dns", "9.9.9.9", "--add-host", "db:10.0.0.2",
        "--pids-limit", "50", "--read-only", "--ulimit", "nofile=512:1024", "--stop-timeout", "4",
        images.busybox_ref, "sleep", "60",
        root=iroot,
    ).assert_success()  # fmt: skip
    try:
        doc = inspect_one(iroot, "hc")
        assert doc["Name"] == "/hc"
        host = doc["HostConfig"]
        assert host["Memory"] == 64 * MIB
        assert host["NanoCpus"] == 500_000_000
        assert (host["CpuPeriod"], host["CpuQuota"]) == (0, 0)
        assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
        assert host["Binds"] == [f"{data}:/data:ro"]
        assert host["CapAdd"] == ["NET_ADMIN"] and host["CapDrop"] == ["MKNOD"]
        assert host["NetworkMode"] == "none" and host["PortBindings"] == {}
        assert host["Dns"] == ["9.9.9.9"] and host["ExtraHosts"] == ["db:10.0.0.2"]
        assert host["PidsLimit"] == 50 and host["ReadonlyRootfs"] is True
        assert host["Ulimits"] == [{"Name": "nofile", "Hard": 1024, "Soft": 512}]
        assert host["Privileged"] is False and host["AutoRemove"] is False
        assert host["Runtime"] == "runc" and host["ShmSize"] == 64 * MIB
        assert host["LogConfig"]["Type"] == "json-file"
        assert "restart" not in host and "memory" not in host  # ctl's record is not shown
        config = doc["Config"]
        assert config["Image"] == images.busybox_ref
        assert config["Cmd"] == ["sleep", "60"] and config["StopTimeout"] == 4
        assert doc["Platform"] == "linux" and doc["Driver"] == doc["Snapshotter"]
        assert doc["State"]["Error"] == "" and doc["State"]["Dead"] is False
        assert doc["HostsPath"].endswith("/hosts") and doc["ResolvConfPath"].endswith(
            "/resolv.conf"
        )
        assert "Spec" in doc and doc["SnapshotKey"]

        assert template(iroot, "hc", "{{.HostConfig.RestartPolicy.Name}}") == "on-failure"
        assert template(iroot, "hc", "{{.HostConfig.Memory}}") == str(64 * MIB)
        assert template(iroot, "hc", "{{.Name}}", command="container") == "/hc"

        ctl_proc("update", "--memory", "96m", "--cpus", "0.25", "hc", root=iroot).assert_success()
        host = inspect_one(iroot, "hc")["HostConfig"]
        assert host["Memory"] == 96 * MIB and host["NanoCpus"] == 250_000_000
        assert template(iroot, "hc", "{{.HostConfig.Memory}}") == str(96 * MIB)
    finally:
        ctl_proc("rm", "-f", "hc", root=iroot)


def test_privileged_and_defaults(iroot: Path, images: CanonicalImages) -> None:
    ctl_proc(
        "create", "--name", "priv", "--net", "none", "--privileged", "--rm",
        images.busybox_ref, "true",
        root=iroot,
    ).assert_success()  # fmt: skip
    try:
        doc = inspect_one(iroot, "priv")
        host = doc["HostConfig"]
        assert host["Privileged"] is True and host["AutoRemove"] is True
        assert host["CapAdd"] is None and host["CapDrop"] is None
        assert host["RestartPolicy"] == {"Name": "no", "MaximumRetryCount": 0}
        assert host["Binds"] is None and host["Memory"] == 0 and host["NanoCpus"] == 0
        assert doc["State"]["Status"] == "created" and doc["State"]["StartedAt"] == ""
        assert doc["Mounts"] == []
    finally:
        ctl_proc("rm", "-f", "priv", root=iroot)


def test_mounts_of_a_bind_a_volume_and_a_tmpfs(
    iroot: Path, images: CanonicalImages, tmp_path: Path
) -> None:
    ctl_proc(
        "create", "--name", "mnt", "--net", "none", "-v", f"{tmp_path}:/host",
        "-v", "inspvol:/vol:ro", "--tmpfs", "/scratch", images.busybox_ref, "true",
        root=iroot,
    ).assert_success()  # fmt: skip
    try:
        doc = inspect_one(iroot, "mnt")
        mounts = {m["Destination"]: m for m in doc["Mounts"]}
        assert set(mounts) == {"/host", "/vol", "/scratch"}  # not /proc, /dev, /etc/hosts
        bind = mounts["/host"]
        assert bind["Type"] == "bind" and bind["Source"] == str(tmp_path)
        assert bind["RW"] is True and bind["Propagation"] == "rprivate"
        volume = mounts["/vol"]
        assert volume["Type"] == "volume" and volume["Name"] == "inspvol"
        assert volume["Driver"] == "local" and volume["RW"] is False
        assert volume["Source"] == str(iroot / "volumes" / "inspvol" / "_data")
        assert mounts["/scratch"]["Type"] == "tmpfs"
        assert "/scratch" in doc["HostConfig"]["Tmpfs"]
        assert sorted(doc["HostConfig"]["Binds"]) == sorted(
            [f"{tmp_path}:/host", "inspvol:/vol:ro"]
        )
        assert any(m["destination"] == "/proc" for m in doc["Spec"]["mounts"])
        listed = template(iroot, "mnt", "{{range .Mounts}}{{.Source}}:{{.Destination}} {{end}}")
        assert f"{tmp_path}:/host " in listed and ":/scratch " in listed
    finally:
        ctl_proc("rm", "-f", "-v", "mnt", root=iroot)
        ctl_proc("volume", "rm", "inspvol", root=iroot)


def test_network_settings_of_a_published_port(iroot: Path, images: CanonicalImages) -> None:
    port = free_port()
    ctl_proc(
        "run", "-d", "--name", "pub", "-p", f"127.0.0.1:{port}:80",
        images.busybox_ref, "sleep", "60",
        root=iroot,
    ).assert_success()  # fmt: skip
    try:
        doc = inspect_one(iroot, "pub")
        settings = doc["NetworkSettings"]
        bridge = settings["Networks"]["bridge"]
        assert bridge["IPAddress"] and bridge["IPAddress"] == settings["IPAddress"]
        assert bridge["Gateway"] == settings["Gateway"] and bridge["IPPrefixLen"] > 0
        assert bridge["NetworkID"]
        assert settings["SandboxKey"]
        binding = [{"HostIp": "127.0.0.1", "HostPort": str(port)}]
        assert settings["Ports"] == {"80/tcp": binding}
        assert doc["HostConfig"]["PortBindings"] == {"80/tcp": binding}
        assert doc["HostConfig"]["NetworkMode"] == "bridge"
        assert doc["Config"]["ExposedPorts"] == {"80/tcp": {}}
        address = template(iroot, "pub", "{{.NetworkSettings.Networks.bridge.IPAddress}}")
        assert address == bridge["IPAddress"]
        ports = json.loads(template(iroot, "pub", "{{json .NetworkSettings.Ports}}"))
        assert ports == {"80/tcp": binding}

        ctl_proc("stop", "-t", "0", "pub", root=iroot).assert_success()
        stopped = inspect_one(iroot, "pub")["NetworkSettings"]
        assert stopped["Ports"] == {} and stopped["Networks"]["bridge"]["IPAddress"] == ""
    finally:
        ctl_proc("rm", "-f", "pub", root=iroot)
