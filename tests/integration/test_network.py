"""Issue 5: containers on CNI bridge networks, at the NetworkManager level.

Real plugins, real namespaces, veths, bridges and iptables rules on this
machine; the "containers" are busybox processes started in the namespaces
with nsenter, so no runc is needed. Traffic stays on this host: loopback,
the bridges and a veth into a namespace made here.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import json
import os
import re
import secrets
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ctl.containers.container import PortMapping
from ctl.errdefs import AlreadyExists, CtlError, FailedPrecondition, NotFound
from ctl.network import Attachment, bridges, netns
from ctl.network.config import DEFAULT_NETWORK
from ctl.network.manager import NetworkManager
from ctl.paths import Paths
from tests.helpers import clean_root, free_port, free_subnet, host_leftovers, run_ctl

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.needs_root

BUSYBOX = "/bin/busybox"
CNI_DIR = "/usr/lib/cni"


@pytest.fixture(scope="module")
def nroot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("network") / "root"
    yield root
    clean_root(root)


def _no_names(namespace: str, container_id: str) -> str:
    raise NotFound(f"container {container_id}: no records here")


def _manager(root: Path, namespace: str) -> NetworkManager:
    """_manager is a manager of its own, as each ctl run is a process of its own."""
    return NetworkManager(Paths(root), namespace, _no_names)


@pytest.fixture(scope="module")
def manager(nroot: Path) -> NetworkManager:
    return _manager(nroot, "default")


@pytest.fixture
def cid(manager: NetworkManager) -> Iterator[str]:
    """cid is a fresh container id, detached after the test whatever happened."""
    container_id = secrets.token_hex(32)
    yield container_id
    manager.detach(container_id)


def _new_id() -> str:
    return secrets.token_hex(32)


def in_netns(path: Path, *argv: str, timeout: float = 15) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nsenter", f"--net={path}", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _ip_json(path: Path, *argv: str) -> list[dict[str, object]]:
    proc = in_netns(path, "ip", "-j", *argv)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


class Httpd:
    """Httpd is busybox httpd serving ``hello from NAME`` inside a namespace."""

    def __init__(self, path: Path, docroot: Path, name: str) -> None:
        docroot.mkdir(parents=True, exist_ok=True)
        (docroot / "index.html").write_text(f"hello from {name}\n")
        self.proc = subprocess.Popen(
            ["nsenter", f"--net={path}", BUSYBOX, "httpd", "-f", "-p", "80", "-h", str(docroot)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def _get(url: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read().decode()  # type: ignore[no-any-return]
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# Attaching.


def test_attach_gives_an_address_a_default_route_and_lo(manager: NetworkManager, cid: str) -> None:
    att = manager.attach(cid, "bridge", [], "web")
    try:
        info = manager.get(DEFAULT_NETWORK)
        assert att.network == DEFAULT_NETWORK and att.interface == "eth0"
        assert att.netns_path == manager.netns_path(cid) and netns.is_netns(att.netns_path)
        assert ipaddress.IPv4Address(att.address) in ipaddress.IPv4Network(info.subnet)
        assert att.gateway == info.gateway
        routes = _ip_json(att.netns_path, "route")
        assert {"dst": "default", "gateway": info.gateway} in [
            {"dst": r["dst"], "gateway": r.get("gateway")} for r in routes
        ]
        links = {link["ifname"]: link for link in _ip_json(att.netns_path, "link")}
        assert set(links) == {"lo", "eth0"}
        assert "UP" in links["lo"]["flags"]  # type: ignore[operator]
        addrs = _ip_json(att.netns_path, "-4", "addr", "show", "eth0")
        assert addrs[0]["addr_info"][0]["local"] == att.address  # type: ignore[index]
        assert manager.attachment(cid) == att
        # The gateway (the host's end of the bridge) answers.
        ping = in_netns(att.netns_path, BUSYBOX, "ping", "-c", "1", "-W", "2", att.gateway)
        assert ping.returncode == 0, ping.stdout + ping.stderr
    finally:
        manager.detach(cid)
    assert manager.attachment(cid) is None
    assert not att.netns_path.exists()


def _host_routes() -> set[tuple[str, str]]:
    """_host_routes is the host's routes but the default one, as (destination, device)."""
    routes = subprocess.run(["ip", "-j", "route"], capture_output=True, text=True, check=True)
    found = json.loads(routes.stdout)
    return {(r["dst"], r.get("dev", "")) for r in found if r["dst"] != "default"}


def test_default_network_is_written_on_first_use_and_stays(nroot: Path) -> None:
    before = _host_routes()
    manager = _manager(nroot, "default")
    infos = manager.list_networks()
    assert infos[0].name == DEFAULT_NETWORK and infos[0].driver == "bridge"
    subnet = ipaddress.IPv4Network(infos[0].subnet)
    assert subnet.prefixlen == 16 and subnet.is_private
    # It does not collide with the host's routes: those there all along. Other roots' networks
    # come and go meanwhile, and another root may take the same subnet at the same moment.
    for destination, device in before & _host_routes():
        if device != infos[0].bridge:
            assert not ipaddress.ip_network(destination, strict=False).overlaps(subnet)
    with pytest.raises(FailedPrecondition):
        manager.remove(DEFAULT_NETWORK)
    with pytest.raises(FailedPrecondition):
        manager.remove("bridge")
    assert (nroot / "networks" / f"{DEFAULT_NETWORK}.conflist").is_file()


def test_containers_on_a_user_network_reach_each_other(manager: NetworkManager) -> None:
    info = manager.create("talk")
    assert info.bridge.startswith("ctl-") and len(info.bridge) <= 15
    a, b = _new_id(), _new_id()
    try:
        att_a = manager.attach(a, "talk", [], "a")
        att_b = manager.attach(b, "talk", [], "b")
        subnet = ipaddress.IPv4Network(info.subnet)
        assert ipaddress.IPv4Address(att_a.address) in subnet
        assert ipaddress.IPv4Address(att_b.address) in subnet
        assert att_a.address != att_b.address
        for src, dst in ((att_a, att_b), (att_b, att_a)):
            ping = in_netns(src.netns_path, BUSYBOX, "ping", "-c", "1", "-W", "2", dst.address)
            assert ping.returncode == 0, ping.stdout + ping.stderr
        doc = manager.inspect("talk")
        assert set(doc["Containers"]) == {a, b}
        assert doc["Containers"][a]["IPv4Address"] == f"{att_a.address}/{subnet.prefixlen}"
        with pytest.raises(FailedPrecondition, match="attached containers"):
            manager.remove("talk")
    finally:
        manager.detach(a)
        manager.detach(b)
    manager.remove("talk")
    assert not Path("/sys/class/net", info.bridge).exists()
    with pytest.raises(NotFound):
        manager.inspect("talk")
    assert not os.path.exists(manager.paths.leases("talk"))


def test_published_port_answers_on_127_0_0_1_and_from_outside(
    manager: NetworkManager, cid: str, tmp_path: Path
) -> None:
    port = free_port()
    att = manager.attach(cid, "bridge", [PortMapping("", port, 80, "tcp")], "web")
    httpd = Httpd(att.netns_path, tmp_path / "www", "web")
    peer = tmp_path / "peer-netns"
    try:
        assert _get(f"http://127.0.0.1:{port}/") == "hello from web\n"
        url = f"http://198.51.100.1:{port}/"
        # Another host: a namespace joined to this one by a veth pair. Its
        # requests come in through PREROUTING, as from a real neighbour.
        netns.create(peer)
        host_if = f"ctlt{secrets.token_hex(3)}"
        made = in_netns(
            peer, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", host_if,
            "netns", str(os.getpid()),
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        subprocess.run(["ip", "addr", "add", "198.51.100.1/30", "dev", host_if], check=True)
        subprocess.run(["ip", "link", "set", host_if, "up"], check=True)
        for command in ("addr add 198.51.100.2/30 dev eth0", "link set eth0 up", "link set lo up"):
            assert in_netns(peer, "ip", *command.split()).returncode == 0
        # (busybox wget crashes on this machine; Python's client does not.)
        fetch = f"import urllib.request as u; print(u.urlopen({url!r}).read().decode(), end='')"
        fetched = in_netns(peer, sys.executable, "-c", fetch)
        assert fetched.stdout == "hello from web\n", fetched.stderr
    finally:
        httpd.stop()
        netns.remove(peer)
        manager.detach(cid)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)


def test_published_port_on_one_address(manager: NetworkManager, cid: str, tmp_path: Path) -> None:
    port = free_port()
    att = manager.attach(cid, "bridge", [PortMapping("127.0.0.1", port, 80, "tcp")], "one")
    httpd = Httpd(att.netns_path, tmp_path / "www", "one")
    try:
        assert _get(f"http://127.0.0.1:{port}/") == "hello from one\n"
    finally:
        httpd.stop()
        manager.detach(cid)


def test_a_published_host_port_is_taken(nroot: Path, manager: NetworkManager) -> None:
    port = free_port()
    first = _new_id()
    manager.attach(first, "bridge", [PortMapping("", port, 80, "tcp")], "first")
    other_ns = _manager(nroot, "other")
    second = _new_id()
    try:
        with pytest.raises(AlreadyExists, match=rf"host port {port}/tcp .* container {first[:12]}"):
            manager.attach(second, "bridge", [PortMapping("", port, 8080, "tcp")], "x")
        with pytest.raises(AlreadyExists, match="namespace default"):
            other_ns.attach(second, "bridge", [PortMapping("127.0.0.1", port, 80, "tcp")], "x")
        # Nothing was set up for the refused container.
        assert not manager.netns_path(second).exists()
        assert not other_ns.netns_path(second).exists()
        # Another protocol is another socket.
        other_ns.attach(second, "bridge", [PortMapping("", port, 80, "udp")], "x")
    finally:
        other_ns.detach(second)
        manager.detach(first)
    manager.attach(second, "bridge", [PortMapping("", port, 80, "tcp")], "x")
    manager.detach(second)


def test_concurrent_attaches_get_distinct_addresses_and_one_port_owner(
    nroot: Path, manager: NetworkManager
) -> None:
    ids = [_new_id() for _ in range(10)]
    port = free_port()

    def attach(i: int) -> str:
        # Each thread a manager of its own, as each ctl run is a process of its own.
        mine = _manager(nroot, "default")
        publish = [PortMapping("", port, 80, "tcp")] if i % 2 else []
        try:
            return mine.attach(ids[i], "bridge", publish, f"c{i}").address
        except AlreadyExists:
            return "port taken"

    try:
        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            results = list(pool.map(attach, range(10)))
        addresses = [r for r in results if r != "port taken"]
        # Five wanted the port: one got it.
        assert results.count("port taken") == 4
        assert len(addresses) == 6 and len(set(addresses)) == 6
        subnet = ipaddress.IPv4Network(manager.get(DEFAULT_NETWORK).subnet)
        assert all(ipaddress.IPv4Address(a) in subnet for a in addresses)
    finally:
        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            list(pool.map(_manager(nroot, "default").detach, ids))


@pytest.mark.slow
def test_100_cycles_leave_nothing_behind(tmp_path: Path) -> None:
    root = tmp_path / "root"
    manager = _manager(root, "default")
    try:
        manager.create("cycles")
        port = free_port()
        publish = [PortMapping("", port, 80, "tcp")]
        ids = {_new_id() for _ in range(100)}
        addresses = set()
        for container_id in ids:
            addresses.add(manager.attach(container_id, "cycles", publish, "c").address)
            manager.detach(container_id)
        assert host_leftovers(root, ids, addresses) == {}
    finally:
        clean_root(root)


def test_detach_after_the_namespace_is_gone(nroot: Path, manager: NetworkManager) -> None:
    gone, stale = _new_id(), _new_id()
    port = free_port()
    tcp, udp = PortMapping("", port, 80, "tcp"), PortMapping("127.0.0.1", port, 53, "udp")
    addresses = {
        manager.attach(gone, "bridge", [tcp], "gone").address,
        manager.attach(stale, "bridge", [udp], "stale").address,
    }
    # One namespace unmounted and deleted by hand; the other only unmounted,
    # as a reboot leaves it.
    netns.remove(manager.netns_path(gone))
    subprocess.run(["umount", str(manager.netns_path(stale))], check=True)
    assert manager.netns_path(stale).exists()
    manager.detach(gone)
    manager.detach(stale)
    manager.detach(stale)  # again: nothing left to do
    assert host_leftovers(nroot, {gone, stale}, addresses) == {}


def test_detach_after_a_reboot(tmp_path: Path) -> None:
    # A reboot takes the namespace's mount, the veth and the iptables rules
    # and leaves the files: the namespace file, the record, host-local's lease.
    # Here the rules go by DEL as usual, except the bridge plugin's masquerade
    # rules, which it finds only on the interface: the network has none.
    root = tmp_path / "root"
    manager = _manager(root, "default")
    try:
        info = manager.create("rebooted")
        conflist_path = root / "networks" / "rebooted.conflist"
        conflist = json.loads(conflist_path.read_text())
        conflist["plugins"][0]["ipMasq"] = False
        conflist_path.write_text(json.dumps(conflist))
        container_id = _new_id()
        att = manager.attach(
            container_id, "rebooted", [PortMapping("", free_port(), 80, "tcp")], "x"
        )
        record_path = root / "cni" / "attachments" / "default" / f"{container_id}.json"
        record = json.loads(record_path.read_text())
        record["boot_id"] = "a boot before this one"
        record_path.write_text(json.dumps(record))
        subprocess.run(["umount", str(att.netns_path)], check=True)
        subprocess.run(["ip", "link", "delete", f"{info.bridge}"], check=True)
        manager.detach(container_id)
        assert host_leftovers(root, {container_id}, {att.address}) == {}
    finally:
        clean_root(root)


def test_detach_of_a_container_never_attached(manager: NetworkManager) -> None:
    manager.detach(_new_id())


def test_detach_after_the_interface_is_gone(nroot: Path, manager: NetworkManager, cid: str) -> None:
    port = free_port()
    att = manager.attach(cid, "bridge", [PortMapping("", port, 80, "tcp")], "x")
    # What a privileged container can do to itself.
    assert in_netns(att.netns_path, "ip", "link", "delete", "eth0").returncode == 0
    manager.detach(cid)
    assert host_leftovers(nroot, {cid}, {att.address}) == {}


def test_a_failing_plugin_leaves_nothing_attached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The firewall plugin fails ADD (after bridge and portmap did their part)
    # and passes DEL on to the real one.
    plugins = tmp_path / "cni"
    plugins.mkdir()
    for name in os.listdir(CNI_DIR):
        (plugins / name).symlink_to(Path(CNI_DIR, name))
    (plugins / "firewall").unlink()
    (plugins / "firewall").write_text(
        "#!/bin/sh\n"
        'if [ "$CNI_COMMAND" = ADD ]; then\n'
        "  cat >/dev/null\n"
        """  echo '{"code": 100, "msg": "firewall says no", "details": "by design"}'\n"""
        "  exit 1\n"
        "fi\n"
        f"exec {CNI_DIR}/firewall\n"
    )
    (plugins / "firewall").chmod(0o755)
    monkeypatch.setenv("CTL_CNI_PATH", str(plugins))
    root = tmp_path / "root"
    manager = _manager(root, "default")
    try:
        manager.create("failing")
        container_id = _new_id()
        port = free_port()
        with pytest.raises(CtlError, match="CNI plugin firewall ADD: firewall says no: by design"):
            manager.attach(container_id, "failing", [PortMapping("", port, 80, "tcp")], "x")
        assert host_leftovers(root, {container_id}) == {}
    finally:
        monkeypatch.setenv("CTL_CNI_PATH", CNI_DIR)
        clean_root(root)


# A bridge lives only while containers use it (issue 9).


def _bridge_up(bridge: str) -> bool:
    return Path("/sys/class/net", bridge).exists()


def _ping(att: Attachment, address: str) -> None:
    ping = in_netns(att.netns_path, BUSYBOX, "ping", "-c", "1", "-W", "2", address)
    assert ping.returncode == 0, ping.stdout + ping.stderr


def test_the_last_container_takes_the_bridge_and_the_next_makes_it(tmp_path: Path) -> None:
    root = tmp_path / "root"
    manager = _manager(root, "default")
    try:
        info = manager.create("shared")
        assert not _bridge_up(info.bridge)
        a, b = _new_id(), _new_id()
        att_a = manager.attach(a, "shared", [], "a")
        att_b = manager.attach(b, "shared", [PortMapping("", free_port(), 80, "tcp")], "b")
        assert bridges.alias(info.bridge) == f"ctl {root}"
        manager.detach(a)
        # The other container keeps its network.
        assert _bridge_up(info.bridge)
        _ping(att_b, att_b.gateway)
        manager.detach(b)
        assert host_leftovers(root, {a, b}, {att_a.address, att_b.address}) == {}
        # The next container makes it again, with the network's subnet.
        c = _new_id()
        att_c = manager.attach(c, "shared", [], "c")
        assert ipaddress.IPv4Address(att_c.address) in ipaddress.IPv4Network(info.subnet)
        _ping(att_c, att_c.gateway)
        manager.detach(c)
        assert host_leftovers(root, {c}, {att_c.address}) == {}
    finally:
        clean_root(root)


def test_containers_coming_and_going_on_one_network_keep_theirs(tmp_path: Path) -> None:
    # Each detach may be the last and take the bridge, while attaches make it
    # again: a container that is attached must always reach its gateway.
    root = tmp_path / "root"
    _manager(root, "default").create("busy")

    def cycles(worker: int) -> list[str]:
        mine = _manager(root, "default")
        ids = [_new_id() for _ in range(5)]
        for container_id in ids:
            att = mine.attach(container_id, "busy", [], f"w{worker}")
            time.sleep(0.05 * (worker % 3))
            _ping(att, att.gateway)
            mine.detach(container_id)
        return ids

    try:
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            ids = [i for batch in pool.map(cycles, range(6)) for i in batch]
        assert host_leftovers(root, ids) == {}
    finally:
        clean_root(root)


def test_an_idle_network_leaves_its_subnet_to_others(tmp_path: Path) -> None:
    first = _manager(tmp_path / "first", "default")
    second = _manager(tmp_path / "second", "default")
    try:
        info = first.create("idle")
        cid = _new_id()
        first.attach(cid, "idle", [], "x")
        with pytest.raises(FailedPrecondition, match="overlaps the host"):
            second.create("same", subnet=info.subnet)
        first.detach(cid)
        # The subnet is free again: nothing holds it while no container uses it.
        second.create("same", subnet=info.subnet)
        other = _new_id()
        second.attach(other, "same", [], "y")
        try:
            # The idle network does not take it back from under the other.
            with pytest.raises(FailedPrecondition, match=f"subnet {info.subnet} is in use"):
                first.attach(cid, "idle", [], "x")
            assert first.attachment(cid) is None
        finally:
            second.detach(other)
        first.attach(cid, "idle", [], "x")
        first.detach(cid)
        assert host_leftovers(tmp_path / "first", {cid}) == {}
        assert host_leftovers(tmp_path / "second", {other}) == {}
    finally:
        clean_root(tmp_path / "first")
        clean_root(tmp_path / "second")


def test_system_check_reports_and_repairs_only_its_roots_unused_bridges(tmp_path: Path) -> None:
    root = tmp_path / "root"
    manager = _manager(root, "default")
    info = manager.create("left")
    # What a kill -9 between the last DEL and the bridge's delete leaves, a
    # bridge of a network this root removed, and another root's.
    ours, theirs = f"ctl-t{secrets.token_hex(5)}", f"ctl-t{secrets.token_hex(5)}"
    made = [info.bridge, ours, theirs]
    try:
        for bridge in made:
            subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True)
        bridges.claim(ours, str(root))
        bridges.claim(theirs, str(tmp_path / "other"))
        checked = run_ctl("system", "check", root=root)
        assert checked.code == 1, checked.stdout + checked.stderr
        assert f"bridge {info.bridge}: up, but no container uses network 'left'" in checked.stdout
        assert f"bridge {ours}: left by a network this root no longer has" in checked.stdout
        assert theirs not in checked.stdout
        unused = manager.unused_bridges()
        assert sorted(u.bridge for u in unused) == sorted([info.bridge, ours])
        assert [u.repair() for u in unused] == [f"deleted bridge {u.bridge}" for u in unused]
        run_ctl("system", "check", root=root).assert_success()
        assert [_bridge_up(b) for b in made] == [False, False, True]
        # One that is used again meanwhile is left as it is.
        cid = _new_id()
        subprocess.run(["ip", "link", "add", info.bridge, "type", "bridge"], check=True)
        (stale,) = manager.unused_bridges()
        manager.attach(cid, "left", [], "x")
        with pytest.raises(FailedPrecondition, match="in use again"):
            stale.repair()
        manager.detach(cid)
        assert host_leftovers(root, {cid}) == {}
    finally:
        for bridge in made:
            subprocess.run(["ip", "link", "delete", bridge], capture_output=True, check=False)
        clean_root(root)


# The CLI.


def test_network_commands(tmp_path: Path) -> None:
    root = tmp_path / "root"
    subnet = free_subnet()
    gateway = str(subnet[254])
    try:
        # docker's columns, and its name of the default network; host and none have ids.
        listing = run_ctl("network", "ls", root=root).assert_success()
        header, *rows = listing.stdout.splitlines()
        assert header.split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
        assert [row.split()[1:] for row in rows] == [
            ["bridge", "bridge", "local"],
            ["host", "host", "local"],
            ["none", "null", "local"],
        ]
        assert all(re.fullmatch(r"[0-9a-f]{12}", row.split()[0]) for row in rows)
        ids = run_ctl("network", "ls", "-q", root=root).assert_success().stdout.split()
        assert ids == [row.split()[0] for row in rows]
        named = run_ctl(
            "network", "ls", "--filter", "name=bridge", "--format", "{{.Name}}", root=root
        )
        assert named.assert_success().stdout == "bridge\n"

        created = run_ctl(
            "network", "create", "web", "--subnet", str(subnet), "--gateway", gateway,
            root=root,
        ).assert_success()  # fmt: skip
        network_id = created.stdout.strip()
        assert re.fullmatch(r"[0-9a-f]{64}", network_id)
        run_ctl("network", "create", "--label", "tier=db", "db", root=root).assert_success()
        run_ctl("network", "create", "web", root=root).assert_failure(
            code=125, stderr_re="already exists"
        )
        run_ctl("network", "create", "host", root=root).assert_failure(
            code=125, stderr_re="reserved"
        )
        json_out = run_ctl("network", "ls", "--format", "json", root=root).assert_success()
        assert ", " not in json_out.stdout and '": ' not in json_out.stdout  # compact, as Go's
        rows = json_out.json_lines()
        assert [r["Name"] for r in rows] == ["bridge", "db", "host", "none", "web"]
        web = rows[-1]
        assert (web["ID"], web["Subnet"], web["Gateway"]) == (
            network_id[:12],
            str(subnet),
            gateway,
        )
        placeholders = {"ID", "Name", "Driver", "Scope", "IPv6", "Internal", "Labels", "CreatedAt"}
        assert placeholders <= web.keys() and "Label" not in web
        assert (web["Scope"], web["IPv6"], web["Internal"], web["Labels"]) == (
            "local",
            "false",
            "false",
            "",
        )
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4} \w+", web["CreatedAt"])
        labelled = run_ctl(
            "network", "ls", "--format", '{{.Name}}:{{.Label "tier"}}:{{.Labels}}', root=root
        ).assert_success()
        assert "db:db:tier=db" in labelled.stdout.split()
        assert "web::" in labelled.stdout.split()
        quiet = run_ctl("network", "ls", "-q", "--no-trunc", root=root).assert_success()
        assert network_id in quiet.stdout.split()

        doc = json.loads(run_ctl("network", "inspect", "web", "ctl", "bridge", root=root).stdout)
        assert [d["Name"] for d in doc] == ["web", "bridge", "bridge"]
        assert doc[0]["IPAM"]["Config"] == [{"Subnet": str(subnet), "Gateway": gateway}]
        assert doc[0]["CNI"]["plugins"][0]["type"] == "bridge"
        assert doc[1]["CNI"]["name"] == DEFAULT_NETWORK  # the records keep ctl's name
        pseudo = json.loads(run_ctl("network", "inspect", "host", "none", root=root).stdout)
        assert [(d["Name"], d["Driver"], d["Id"][:12]) for d in pseudo] == [
            ("host", "host", ids[1]),
            ("none", "null", ids[2]),
        ]
        run_ctl("network", "inspect", "nope", root=root).assert_failure(
            code=125, stderr_re="network 'nope': no such network"
        )
        # What is found is printed, then what is not is reported, as docker's inspect does.
        partial = run_ctl("network", "inspect", "web", "nope", "-f", "{{.Name}}", root=root)
        assert (partial.code, partial.stdout) == (125, "web\n")
        assert (
            partial.stderr.strip() == "ctl: network 'nope': no such network (see 'ctl network ls')"
        )

        removed = run_ctl("network", "rm", "web", "ctl", root=root)
        assert removed.code == 125 and removed.stdout == "web\n"
        assert removed.stderr == "ctl: bridge is a pre-defined network and cannot be removed\n"
        for name, shown in (("bridge", "bridge"), ("default", "bridge"), ("host", "host")):
            run_ctl("network", "rm", name, root=root).assert_failure(
                code=125, stderr_re=f"^ctl: {shown} is a pre-defined network and cannot be removed$"
            )
        run_ctl("network", "rm", "web", root=root).assert_failure(code=125, stderr_re="no such")
    finally:
        clean_root(root)
