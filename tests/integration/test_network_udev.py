"""Issue 10: the host side of a container's veth changed behind ctl's back, as udev does.

On servers with systemd-udevd, ``MACAddressPolicy=persistent`` gives a new veth
another MAC address after the bridge plugin has recorded it, and a ``.link`` file
may rename it. Neither is a fault: ``system check`` stays clean and ``rm`` still
undoes everything. This host has no udev, so the test does what udev would.
"""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest

from tests.helpers import clean_root, ctl_proc, free_port, host_leftovers
from tests.images import CanonicalImages

pytestmark = pytest.mark.needs_root


@pytest.fixture
def uroot(tmp_path: Path):
    root = tmp_path / "root"
    yield root
    clean_root(root)


def _host_veth(sandbox: str) -> str:
    """_host_veth is the host-side name of the container's eth0, found by its peer's index."""
    shown = subprocess.run(
        ["nsenter", f"--net={sandbox}", "ip", "-j", "link", "show", "dev", "eth0"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return socket.if_indextoname(json.loads(shown)[0]["link_index"])


@pytest.mark.parametrize("change", ["address", "address and name"])
def test_a_host_veth_that_udev_changed_is_still_sound(
    uroot: Path, images: CanonicalImages, change: str
) -> None:
    port = free_port()
    ctl_proc(
        "run",
        "-d",
        "--name",
        "udev",
        "-p",
        f"{port}:80",
        images.busybox_ref,
        "sleep",
        "600",
        root=uroot,
    ).assert_success()
    doc = json.loads(ctl_proc("inspect", "udev", root=uroot).assert_success().stdout)[0]
    container_id = doc["Id"]
    address = doc["NetworkSettings"]["IPAddress"]
    veth = _host_veth(doc["NetworkSettings"]["SandboxKey"])
    before = Path("/sys/class/net", veth, "address").read_text().strip()
    # A locally administered unicast address, unlike the random one the plugin chose.
    subprocess.run(["ip", "link", "set", veth, "address", "02:c7:10:00:00:01"], check=True)
    assert before != "02:c7:10:00:00:01"
    if change == "address and name":
        renamed = f"udev{container_id[:8]}"
        subprocess.run(["ip", "link", "set", veth, "down"], check=True)
        subprocess.run(["ip", "link", "set", veth, "name", renamed], check=True)
        subprocess.run(["ip", "link", "set", renamed, "up"], check=True)
        veth = renamed
    try:
        check = ctl_proc("system", "check", root=uroot)
        assert check.code == 0, check.stdout + check.stderr
        assert "0 problems" in check.stdout
    finally:
        ctl_proc("rm", "-f", "udev", root=uroot).assert_success()
    assert not Path("/sys/class/net", veth).exists()
    assert host_leftovers(uroot, ids=[container_id], addresses=[address]) == {}
