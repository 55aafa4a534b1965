"""Issue 11, group 5: the networking flags of one container, checked inside it."""

from __future__ import annotations

import ipaddress
import json
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import clean_root, ctl_proc, free_port
from tests.images import CanonicalImages, LayerBuilder

pytestmark = pytest.mark.needs_root

NETWORK = "netl-flags"


@pytest.fixture(scope="module")
def nroot(tmp_path_factory: pytest.TempPathFactory, images: CanonicalImages):
    root = tmp_path_factory.mktemp("netflags") / "root"
    yield root
    clean_root(root)


@pytest.fixture(scope="module")
def web_image(images: CanonicalImages) -> str:
    """web_image serves a page on port 80, which its config exposes."""
    page = LayerBuilder().dir("www").file("www/index.html", "hello from -P\n").build("gzip")
    image = images.factory.image(
        page,
        cmd=["httpd", "-f", "-p", "80", "-h", "/www"],
        extra_config={"ExposedPorts": {"80/tcp": {}}},
    )
    return images.factory.push(image, "test/netl-web")


@pytest.fixture(scope="module")
def subnet(nroot: Path) -> ipaddress.IPv4Network:
    ctl_proc("network", "create", NETWORK, root=nroot).assert_success()
    doc = json.loads(ctl_proc("network", "inspect", NETWORK, root=nroot).stdout)[0]
    return ipaddress.IPv4Network(doc["IPAM"]["Config"][0]["Subnet"])


def _names(root: Path) -> list[str]:
    out = ctl_proc("ps", "-a", "--format", "{{.Names}}", root=root).assert_success().stdout
    return out.split()


def _run_out(root: Path, *argv: str) -> str:
    return ctl_proc("run", "--rm", *argv, root=root).assert_success().stdout


def test_hosts_resolv_and_domain_inside(
    nroot: Path, subnet: ipaddress.IPv4Network, images: CanonicalImages
) -> None:
    script = (
        "cat /etc/hosts; echo ---; cat /etc/resolv.conf; echo ---; "
        "hostname -d; cat /proc/sys/kernel/domainname"
    )
    out = _run_out(
        nroot,
        "--net", NETWORK, "--hostname", "web", "--domainname", "example.org",
        "--add-host", "db:10.9.8.7", "--add-host", "v6=[2001:db8::1]",
        "--add-host", "gw:host-gateway",
        "--dns", "192.0.2.53", "--dns-search", "corp.example", "--dns-opt", "ndots:3",
        "--dns-option", "timeout:1",
        images.busybox_ref, "sh", "-c", script,
    )  # fmt: skip
    hosts, resolv, domain = out.split("---\n")
    lines = [line.split() for line in hosts.splitlines()]
    assert ["10.9.8.7", "db"] in lines
    assert ["2001:db8::1", "v6"] in lines
    gateway = str(next(iter(subnet.hosts())))
    assert [gateway, "gw"] in lines  # the host's address on the container's bridge
    own = next(line for line in lines if line[1:] == ["web.example.org", "web"])
    assert ipaddress.IPv4Address(own[0]) in subnet
    words = [line.split() for line in resolv.splitlines()]
    # A user network's resolver comes first (names of its containers), then --dns.
    gateway = str(next(subnet.hosts()))
    servers = [w for w in words if w[0] == "nameserver"]
    assert servers == [["nameserver", gateway], ["nameserver", "192.0.2.53"]]
    assert ["search", "corp.example"] in words
    assert ["options", "ndots:3", "timeout:1"] in words
    assert domain.split() == ["example.org", "example.org"]


def test_without_flags_the_files_are_as_before(nroot: Path, images: CanonicalImages) -> None:
    out = _run_out(nroot, images.busybox_ref, "cat", "/etc/hosts", "/etc/resolv.conf")
    assert "host-gateway" not in out
    assert "nameserver" in out
    assert out.count("search") <= 1


def test_host_gateway_outside_a_bridge_is_a_host_address(
    nroot: Path, images: CanonicalImages
) -> None:
    out = _run_out(
        nroot, "--net", "none", "--add-host", "h:host-gateway",
        images.busybox_ref, "cat", "/etc/hosts",
    )  # fmt: skip
    address = next(line.split()[0] for line in out.splitlines() if line.split()[1:] == ["h"])
    assert ipaddress.ip_address(address)


def test_static_ip_and_mac_on_the_interface(
    nroot: Path, subnet: ipaddress.IPv4Network, images: CanonicalImages
) -> None:
    address = str(subnet.network_address + 77)
    mac = "02:42:0a:0b:0c:0d"
    ctl_proc(
        "run", "-d", "--name", "static", "--net", NETWORK, "--ip", address,
        "--mac-address", mac.upper(), images.busybox_ref, "sleep", "300",
        root=nroot,
    ).assert_success()  # fmt: skip
    try:
        link = ctl_proc("exec", "static", "ip", "addr", "show", "eth0", root=nroot)
        out = link.assert_success().stdout
        assert f"inet {address}/{subnet.prefixlen}" in out
        assert f"link/ether {mac}" in out
        settings = json.loads(ctl_proc("inspect", "static", root=nroot).stdout)[0]
        assert settings["NetworkSettings"]["IPAddress"] == address
        # A second container asking for the taken address is refused, and not created.
        before = _names(nroot)
        taken = ctl_proc(
            "run", "-d", "--net", NETWORK, "--ip", address, images.busybox_ref, "true",
            root=nroot,
        )  # fmt: skip
        taken.assert_failure(125, stderr_re=f"--ip {address}.*taken by container static")
        assert _names(nroot) == before
    finally:
        ctl_proc("rm", "-f", "static", root=nroot).assert_success()
    # Released with the container: the address can be taken again.
    again = _run_out(
        nroot, "--net", NETWORK, "--ip", address, images.busybox_ref, "ip", "-4", "addr"
    )
    assert f"inet {address}/" in again


def test_publish_all_maps_exposed_ports_to_random_host_ports(nroot: Path, web_image: str) -> None:
    ctl_proc(
        "run", "-d", "--name", "pub", "-P", "--expose", "7000-7001/udp", web_image, root=nroot
    ).assert_success()  # fmt: skip
    try:
        doc = json.loads(ctl_proc("inspect", "pub", root=nroot).stdout)[0]
        ports = doc["NetworkSettings"]["Ports"]
        assert set(ports) == {"80/tcp", "7000/udp", "7001/udp"}
        assert all(len(bound) == 1 for bound in ports.values())
        host_port = ports["80/tcp"][0]["HostPort"]
        ps = ctl_proc("ps", root=nroot).assert_success().stdout
        assert f"0.0.0.0:{host_port}->80/tcp" in ps
        assert _get(f"http://127.0.0.1:{host_port}/") == "hello from -P\n"
    finally:
        ctl_proc("rm", "-f", "pub", root=nroot).assert_success()


def test_publish_of_a_container_port_alone_and_of_ranges(nroot: Path, web_image: str) -> None:
    """docker's -p 80 (a random host port) and -p HOST-RANGE:CTR-RANGE."""
    from tests.helpers import free_port_pair

    low = free_port_pair()
    ctl_proc(
        "run", "-d", "--name", "ranges", "-p", "80", "-p", f"127.0.0.1:{low}-{low + 1}:80-81",
        web_image, root=nroot,
    ).assert_success()  # fmt: skip
    try:
        doc = json.loads(ctl_proc("inspect", "ranges", root=nroot).stdout)[0]
        ports = doc["NetworkSettings"]["Ports"]
        random_port = next(b["HostPort"] for b in ports["80/tcp"] if b["HostIp"] == "0.0.0.0")
        assert int(random_port) > 0
        assert {"HostIp": "127.0.0.1", "HostPort": str(low + 1)} in ports["81/tcp"]
        assert _get(f"http://127.0.0.1:{random_port}/") == "hello from -P\n"
        assert _get(f"http://127.0.0.1:{low}/") == "hello from -P\n"
    finally:
        ctl_proc("rm", "-f", "ranges", root=nroot).assert_success()


def test_publish_with_host_network_warns_and_runs(nroot: Path, images: CanonicalImages) -> None:
    result = ctl_proc(
        "run", "--rm", "--net", "host", "-p", f"{free_port()}:80", images.busybox_ref, "true",
        root=nroot,
    ).assert_success()  # fmt: skip
    assert "WARNING: Published ports are discarded when using host network mode" in result.stderr


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--add-host", "nohost"], "--add-host"),
        (["--add-host", "db:999.1.1.1"], "--add-host"),
        (["--dns", "resolver"], "--dns"),
        (["--dns-search", "bad..domain"], "--dns-search"),
        (["--dns-option", "two words"], "--dns-option"),
        (["--domainname", "-bad"], "--domainname"),
        (["--mac-address", "02:42:zz:00:00:01"], "--mac-address"),
        (["--mac-address", "01:00:5e:00:00:01"], "--mac-address"),
        (["--ip", "10.1.2"], "--ip"),
        (["--ip", "10.1.2.3", "--net", "none"], "--ip"),
        (["--ip", "192.0.2.1", "--net", NETWORK], "--ip"),
        (["--ip6", "2001:db8::5"], "--ip6"),
        (["--expose", "80/sctp"], "--expose"),
        (["--expose", "90-80"], "--expose"),
        (["-p", "80:80", "--net", "none"], "-p"),
    ],
)
def test_bad_values_create_nothing(
    nroot: Path,
    subnet: ipaddress.IPv4Network,
    images: CanonicalImages,
    flags: list[str],
    named: str,
) -> None:
    before = _names(nroot)
    result = ctl_proc("create", *flags, images.busybox_ref, "true", root=nroot)
    result.assert_failure(125, stderr_re=f"^ctl: .*{named}")
    assert _names(nroot) == before


def _get(url: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return str(response.read().decode())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
