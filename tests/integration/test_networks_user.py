"""Issue 14: user networks as docker's user-defined bridges, checked from inside containers.

Names resolve on a user network (name, --network-alias, short id) and not on
the default one; two networks are isolated; a container joins and leaves a
network live; --internal has no way out; dual-stack networks; a host port a
process holds is refused; teardown leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.helpers import (
    clean_root,
    ctl_command,
    ctl_proc,
    free_port,
    free_subnet,
    host_leftovers,
)
from tests.images import CanonicalImages, LayerBuilder

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.needs_root


@pytest.fixture(scope="module")
def uroot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("usernets") / "root"
    yield root
    clean_root(root)


@pytest.fixture(scope="module")
def web(images: CanonicalImages) -> str:
    """web is busybox serving ``/www`` on port 80, the page naming the container's host name."""
    page = LayerBuilder().dir("www").file("www/index.html", "hello\n").build("gzip")
    serve = "hostname > /www/index.html; exec httpd -f -p 80 -h /www"
    image = images.factory.image(page, cmd=["sh", "-c", serve])
    return images.factory.push(image, "test/usernet-web")


def _ctl(root: Path, *argv: str) -> str:
    return ctl_proc(*argv, root=root).assert_success().stdout


def _inspect(root: Path, name: str) -> dict[str, object]:
    doc: dict[str, object] = json.loads(_ctl(root, "inspect", name))[0]
    return doc


def _networks(root: Path, name: str) -> dict[str, dict[str, str]]:
    settings = _inspect(root, name)["NetworkSettings"]
    assert isinstance(settings, dict)
    networks: dict[str, dict[str, str]] = settings["Networks"]
    return networks


def _resolved(root: Path, net: str, image: str, name: str) -> list[str]:
    """_resolved are the IPv4 addresses nslookup finds for ``name`` from a container on ``net``."""
    got = ctl_proc("run", "--rm", "--net", net, image, "nslookup", name, root=root)
    if got.code != 0:
        return []
    answer = got.stdout.split(name, 1)[-1]
    return re.findall(r"Address:\s*(\d+\.\d+\.\d+\.\d+)", answer)


def _get_script(target: str, tries: int) -> str:
    # busybox's wget crashes (a refused connection, some names): nc speaks HTTP/1.0 instead.
    request = "printf 'GET / HTTP/1.0\\r\\n\\r\\n'"
    return (
        f"for i in $(seq {tries}); do {request} | nc -w 2 {target} 80 && exit 0; "
        "sleep 0.2; done; exit 1"
    )


def _body(response: str) -> str:
    """_body is an HTTP response's body: the page, one line."""
    return response.split("\r\n\r\n", 1)[-1].strip() if "HTTP/" in response else ""


def _fetch(root: Path, net: str, image: str, target: str, tries: int = 30) -> str:
    """_fetch is the page at http://target/ from a container on ``net``; "" if none answers."""
    got = ctl_proc(
        "run", "--rm", "--net", net, image, "sh", "-c", _get_script(target, tries), root=root
    )
    return _body(got.stdout) if got.code == 0 else ""


def _exec_fetch(root: Path, container: str, target: str, tries: int = 30) -> str:
    """_exec_fetch is ``_fetch`` from inside a running container."""
    got = ctl_proc("exec", container, "sh", "-c", _get_script(target, tries), root=root)
    return _body(got.stdout) if got.code == 0 else ""


def test_names_resolve_on_a_user_network_and_not_on_the_default(uroot: Path, web: str) -> None:
    _ctl(uroot, "network", "create", "app")
    _ctl(uroot, "run", "-d", "--net", "app", "--name", "db", "--network-alias", "store", web)
    try:
        address = _networks(uroot, "db")["app"]["IPAddress"]
        short_id = str(_inspect(uroot, "db")["Id"])[:12]
        for name in ("db", "store", short_id):
            assert _resolved(uroot, "app", web, name) == [address], name
        assert _fetch(uroot, "app", web, "db") == short_id
        resolv = _ctl(uroot, "run", "--rm", "--net", "app", web, "cat", "/etc/resolv.conf")
        gateway = json.loads(_ctl(uroot, "network", "inspect", "app"))[0]["IPAM"]["Config"][0]
        assert f"nameserver {gateway['Gateway']}" in resolv
        # The default network, as docker's default bridge: no names.
        assert _resolved(uroot, "bridge", web, "db") == []
        default_resolv = _ctl(uroot, "run", "--rm", web, "cat", "/etc/resolv.conf")
        assert gateway["Gateway"] not in default_resolv
    finally:
        _ctl(uroot, "rm", "-f", "db")
    # The resolver runs only while its network has containers.
    assert not (uroot / "cni" / "dns" / "app").exists()
    _ctl(uroot, "network", "rm", "app")


def test_an_alias_shared_by_two_containers_answers_with_both(uroot: Path, web: str) -> None:
    _ctl(uroot, "network", "create", "rr")
    try:
        for name in ("rr1", "rr2"):
            _ctl(uroot, "run", "-d", "--net", "rr", "--name", name, "--network-alias", "svc", web)
        addresses = {_networks(uroot, n)["rr"]["IPAddress"] for n in ("rr1", "rr2")}
        assert set(_resolved(uroot, "rr", web, "svc")) == addresses
        # Both serve under the shared name: wget, asked often, reaches each.
        ids = {str(_inspect(uroot, n)["Id"])[:12] for n in ("rr1", "rr2")}
        served = {_fetch(uroot, "rr", web, "svc") for _ in range(3)}
        assert served and served <= ids
    finally:
        _ctl(uroot, "rm", "-f", "rr1", "rr2")
        _ctl(uroot, "network", "rm", "rr")


def test_two_networks_are_isolated_and_connect_joins_them(uroot: Path, web: str) -> None:
    _ctl(uroot, "network", "create", "red")
    _ctl(uroot, "network", "create", "blue")
    try:
        _ctl(uroot, "run", "-d", "--net", "red", "--name", "redweb", web)
        _ctl(uroot, "run", "-d", "--net", "blue", "--name", "blueweb", web)
        red_ip = _networks(uroot, "redweb")["red"]["IPAddress"]
        blue_ip = _networks(uroot, "blueweb")["blue"]["IPAddress"]
        red_id = str(_inspect(uroot, "redweb")["Id"])[:12]
        assert _fetch(uroot, "red", web, red_ip) == red_id
        # Across networks: neither the address nor the name.
        assert _fetch(uroot, "blue", web, red_ip, tries=3) == ""
        assert _fetch(uroot, "red", web, blue_ip, tries=3) == ""
        assert _resolved(uroot, "blue", web, "redweb") == []
        # blueweb joins red live: a second interface, its name on red, both in inspect.
        _ctl(uroot, "network", "connect", "--alias", "bluealias", "red", "blueweb")
        networks = _networks(uroot, "blueweb")
        assert set(networks) == {"blue", "red"}
        assert networks["red"]["Interface"] == "eth1"
        joined = networks["red"]["IPAddress"]
        assert _resolved(uroot, "red", web, "blueweb") == [joined]
        assert _resolved(uroot, "red", web, "bluealias") == [joined]
        assert _exec_fetch(uroot, "blueweb", red_ip) == red_id
        members = json.loads(_ctl(uroot, "network", "inspect", "red"))[0]["Containers"]
        assert len(members) == 2
        ctl_proc("network", "connect", "red", "blueweb", root=uroot).assert_failure(125)
        ctl_proc("network", "rm", "red", root=uroot).assert_failure(125, stderr_re="attached")
        # ...and leaves it.
        _ctl(uroot, "network", "disconnect", "red", "blueweb")
        assert set(_networks(uroot, "blueweb")) == {"blue"}
        assert _resolved(uroot, "red", web, "blueweb") == []
        assert _exec_fetch(uroot, "blueweb", red_ip, tries=2) == ""
        ctl_proc("network", "disconnect", "red", "blueweb", root=uroot).assert_failure(125)
        _ctl(uroot, "network", "disconnect", "-f", "red", "blueweb")
    finally:
        _ctl(uroot, "rm", "-f", "redweb", "blueweb")
    removed = _ctl(uroot, "network", "prune", "-f", "--filter", "label=nothing")
    assert removed == ""
    removed = _ctl(uroot, "network", "prune", "-f")
    assert {"red", "blue"} <= set(removed.split())


def test_connections_last_across_restarts_and_stopped_containers_connect(
    uroot: Path, web: str
) -> None:
    """As docker's: a container keeps its `network connect`s. A running one joins at once and
    again after a restart; a stopped one is connected, or disconnected, in its record alone,
    and joins at its next start."""
    _ctl(uroot, "network", "create", "front")
    _ctl(uroot, "network", "create", "back")
    try:
        _ctl(uroot, "run", "-d", "--net", "front", "--name", "api", web)
        _ctl(uroot, "network", "connect", "--alias", "apialias", "back", "api")
        _ctl(uroot, "restart", "-t", "1", "api")
        networks = _networks(uroot, "api")
        assert set(networks) == {"front", "back"}
        assert _resolved(uroot, "back", web, "apialias") == [networks["back"]["IPAddress"]]

        _ctl(uroot, "create", "--net", "front", "--name", "worker", web)
        _ctl(uroot, "network", "connect", "back", "worker")
        stopped = _networks(uroot, "worker")
        assert set(stopped) == {"front", "back"} and stopped["back"]["IPAddress"] == ""
        on_back = _ctl(uroot, "ps", "-a", "--filter", "network=back", "--format", "{{.Names}}")
        assert sorted(on_back.split()) == ["api", "worker"]
        # The default network by docker's name, whether run on or connected to.
        _ctl(uroot, "network", "connect", "bridge", "worker")
        on_default = _ctl(uroot, "ps", "-a", "-f", "network=bridge", "--format", "{{.Names}}")
        assert "worker" in on_default.split() and "api" not in on_default.split()
        _ctl(uroot, "network", "disconnect", "bridge", "worker")
        ctl_proc("network", "connect", "back", "worker", root=uroot).assert_failure(125)
        _ctl(uroot, "start", "worker")
        joined = _networks(uroot, "worker")["back"]["IPAddress"]
        assert joined and _resolved(uroot, "back", web, "worker") == [joined]

        _ctl(uroot, "stop", "-t", "1", "worker")
        _ctl(uroot, "network", "disconnect", "back", "worker")
        ctl_proc("network", "disconnect", "back", "worker", root=uroot).assert_failure(125)
        ctl_proc("network", "disconnect", "front", "worker", root=uroot).assert_failure(
            125, stderr_re="created on"
        )
        _ctl(uroot, "start", "worker")
        assert set(_networks(uroot, "worker")) == {"front"}

        _ctl(uroot, "create", "--net", "none", "--name", "loner", web)
        ctl_proc("network", "connect", "back", "loner", root=uroot).assert_failure(
            125, stderr_re="--net none"
        )
    finally:
        _ctl(uroot, "rm", "-f", "api", "worker", "loner")
    _ctl(uroot, "network", "rm", "front", "back")


def test_an_internal_network_has_no_way_out(uroot: Path, web: str) -> None:
    _ctl(uroot, "network", "create", "--internal", "--label", "tier=back", "vault")
    _ctl(uroot, "network", "create", "open")
    try:
        _ctl(uroot, "run", "-d", "--net", "open", "--name", "outside", web)
        outside = _networks(uroot, "outside")["open"]["IPAddress"]
        routes = _ctl(uroot, "run", "--rm", "--net", "vault", web, "ip", "route")
        assert "default" not in routes
        _ctl(uroot, "run", "-d", "--net", "vault", "--name", "inside", web)
        assert _fetch(uroot, "vault", web, "inside") == str(_inspect(uroot, "inside")["Id"])[:12]
        assert _fetch(uroot, "vault", web, outside, tries=3) == ""
        listed = _ctl(uroot, "network", "ls", "-q", "--no-trunc", "--filter", "label=tier=back")
        vault = json.loads(_ctl(uroot, "network", "inspect", "vault"))[0]
        assert listed.split() == [vault["Id"]] and vault["Internal"] is True
        dangling = _ctl(
            uroot, "network", "ls", "--filter", "dangling=true", "--format", "{{.Name}}"
        )
        assert "vault" not in dangling.split() and "open" not in dangling.split()
    finally:
        _ctl(uroot, "rm", "-f", "outside", "inside")
        _ctl(uroot, "network", "rm", "vault", "open")


def _host_ipv6() -> str:
    """_host_ipv6 is a global IPv6 address of the host on a link that is not ctl's; "" if none."""
    out = subprocess.run(["ip", "-6", "-j", "addr"], capture_output=True, text=True).stdout
    for link in json.loads(out or "[]"):
        if str(link.get("ifname", "")).startswith("ctl"):
            continue
        for addr in link.get("addr_info", []):
            if addr.get("scope") == "global":
                return str(addr["local"])
    return ""


def test_a_dual_stack_network(uroot: Path, web: str) -> None:
    subnet = "fd42:7c7c:1::/64"
    _ctl(uroot, "network", "create", "--ipv6", "--subnet", subnet, "dual")
    port = free_port()
    try:
        _ctl(uroot, "run", "-d", "--net", "dual", "--name", "six", "-p", f"{port}:80", web)
        doc = json.loads(_ctl(uroot, "network", "inspect", "dual"))[0]
        assert doc["EnableIPv6"] is True
        member = next(iter(doc["Containers"].values()))
        address6 = member["IPv6Address"].split("/")[0]
        assert address6.startswith("fd42:7c7c:1:")
        six = str(_inspect(uroot, "six")["Id"])[:12]
        assert _fetch(uroot, "dual", web, address6) == six
        names = ctl_proc(
            "run", "--rm", "--net", "dual", web, "nslookup", "-type=AAAA", "six", root=uroot
        )
        assert address6 in names.stdout
        # The published port, from the host over IPv4 and IPv6.
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
            assert response.read().decode().strip() == six
        host6 = _host_ipv6() or doc["IPAM"]["Config"][1]["Gateway"]
        with urllib.request.urlopen(f"http://[{host6}]:{port}/", timeout=10) as response:
            assert response.read().decode().strip() == six
    finally:
        _ctl(uroot, "rm", "-f", "six")
        _ctl(uroot, "network", "rm", "dual")


def test_run_with_static_ipv4_and_ipv6_addresses(uroot: Path, web: str) -> None:
    _ctl(uroot, "network", "create", "--ipv6", "--subnet", "fd42:7c7c:2::/64", "dual2")
    try:
        _ctl(
            uroot,
            "run",
            "-d",
            "--net",
            "dual2",
            "--name",
            "fixed6",
            "--ip6",
            "fd42:7c7c:2::55",
            web,
        )
        addresses = _ctl(uroot, "exec", "fixed6", "ip", "-6", "addr", "show", "eth0")
        assert "fd42:7c7c:2::55/64" in addresses
        taken = ctl_proc("run", "-d", "--net", "dual2", "--ip6", "fd42:7c7c:2::55", web, root=uroot)
        taken.assert_failure(125, stderr_re="fd42:7c7c:2::55.*taken by container fixed6")
        subnet = json.loads(_ctl(uroot, "network", "inspect", "dual2"))[0]["IPAM"]["Config"][0]
        base = subnet["Subnet"].split("/")[0].rsplit(".", 1)[0]
        _ctl(uroot, "run", "-d", "--net", "dual2", "--name", "fixed4", "--ip", f"{base}.77", web)
        assert f"{base}.77/" in _ctl(uroot, "exec", "fixed4", "ip", "-4", "addr", "show", "eth0")
    finally:
        _ctl(uroot, "rm", "-f", "fixed6", "fixed4")
        _ctl(uroot, "network", "rm", "dual2")


def test_static_addresses_on_connect_and_a_taken_one_refused(uroot: Path, web: str) -> None:
    subnet = free_subnet()
    static, router = str(subnet[10]), str(subnet[200])
    _ctl(
        uroot,
        "network",
        "create",
        "--subnet",
        str(subnet),
        "--ip-range",
        f"{subnet[128]}/25",
        "--aux-address",
        f"router={router}",
        "fixed",
    )
    _ctl(uroot, "network", "create", "home")
    try:
        for name in ("one", "two"):
            _ctl(uroot, "run", "-d", "--net", "home", "--name", name, web)
        _ctl(uroot, "network", "connect", "--ip", static, "fixed", "one")
        assert _networks(uroot, "one")["fixed"]["IPAddress"] == static
        taken = ctl_proc("network", "connect", "--ip", static, "fixed", "two", root=uroot)
        taken.assert_failure(125, stderr_re="taken by container one")
        aux = ctl_proc("network", "connect", "--ip", router, "fixed", "two", root=uroot)
        aux.assert_failure(125, stderr_re="router")
        _ctl(uroot, "network", "connect", "fixed", "two")
        dynamic = _networks(uroot, "two")["fixed"]["IPAddress"]
        assert int(dynamic.rsplit(".", 1)[1]) >= 128
    finally:
        _ctl(uroot, "rm", "-f", "one", "two")
        _ctl(uroot, "network", "rm", "fixed", "home")


def test_a_port_held_by_a_process_is_refused(uroot: Path, web: str, tmp_path: Path) -> None:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "0.0.0.0"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while f":{port:04X} " not in Path("/proc/net/tcp").read_text():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        got = ctl_proc("run", "-d", "--name", "held", "-p", f"{port}:80", web, root=uroot)
        got.assert_failure(125, stderr_re=rf"{port}/tcp is in use by pid {server.pid} \(python")
        assert ctl_proc("inspect", "held", root=uroot).code != 0 or "running" not in _ctl(
            uroot, "ps", "--filter", "name=held"
        )
    finally:
        server.kill()
        server.wait()
        ctl_proc("rm", "-f", "held", root=uroot)


def test_run_refuses_two_nets_and_link(uroot: Path, web: str) -> None:
    twice = ctl_proc("run", "--rm", "--net", "a", "--net", "b", web, "true", root=uroot)
    twice.assert_failure(125, stderr_re="network connect")
    link = ctl_proc("run", "--rm", "--link", "db:db", web, "true", root=uroot)
    link.assert_failure(125, stderr_re="--link")


def test_kill_9_during_connect_then_system_check_repairs(uroot: Path, web: str) -> None:
    _ctl(uroot, "network", "create", "k9a")
    _ctl(uroot, "network", "create", "k9b")
    try:
        _ctl(uroot, "run", "-d", "--net", "k9a", "--name", "victim", web)
        container_id = str(_inspect(uroot, "victim")["Id"])
        record = uroot / "cni" / "attachments" / "default" / f"{container_id}@k9b.json"
        env = {**os.environ, "CTL_ROOT": str(uroot)}
        proc = subprocess.Popen(
            [*ctl_command(), "--root", str(uroot), "network", "connect", "k9b", "victim"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while not record.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        # Whether it died before, during or after ADD, check sees what is half-made...
        check = ctl_proc("system", "check", "--repair", root=uroot)
        assert check.code in (0, 1), check.stderr
        after = ctl_proc("system", "check", root=uroot)
        assert after.code == 0, after.stdout + after.stderr
        # ...and the container can join again.
        _ctl(uroot, "network", "disconnect", "-f", "k9b", "victim")
        _ctl(uroot, "network", "connect", "k9b", "victim")
        assert set(_networks(uroot, "victim")) == {"k9a", "k9b"}
    finally:
        _ctl(uroot, "rm", "-f", "victim")
        _ctl(uroot, "network", "rm", "k9a", "k9b")


def test_a_killed_resolver_comes_back_with_the_next_run_or_check(uroot: Path, web: str) -> None:
    from ctl.network import dns

    _ctl(uroot, "network", "create", "phoenix")
    try:
        _ctl(uroot, "run", "-d", "--net", "phoenix", "--name", "bird", web)
        directory = uroot / "cni" / "dns"
        pid = dns.running_pid(directory)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        broken = ctl_proc("system", "check", root=uroot)
        assert broken.code == 1 and "resolver" in broken.stdout, broken.stdout
        _ctl(uroot, "system", "check", "--repair")
        assert dns.running_pid(directory) not in (None, pid)
        os.kill(dns.running_pid(directory) or 0, signal.SIGKILL)
        # The next run on the network repairs it too.
        address = _networks(uroot, "bird")["phoenix"]["IPAddress"]
        assert _resolved(uroot, "phoenix", web, "bird") == [address]
    finally:
        _ctl(uroot, "rm", "-f", "bird")
        _ctl(uroot, "network", "rm", "phoenix")
    assert dns.running_pid(uroot / "cni" / "dns") is None


def _cycles(root: Path, web: str, cycles: int) -> None:
    from ctl.network import dns, isolation

    _ctl(root, "network", "create", "c1")
    _ctl(root, "network", "create", "c2")
    ids = []
    try:
        for i in range(cycles):
            name = f"cy{i}"
            _ctl(root, "run", "-d", "--net", "c1", "--name", name, web)
            ids.append(str(_inspect(root, name)["Id"]))
            _ctl(root, "network", "connect", "c2", name)
            if i % 2:
                _ctl(root, "network", "disconnect", "c2", name)
            _ctl(root, "rm", "-f", name)
        assert host_leftovers(root, ids) == {}
        assert not [n for n in os.listdir(root / "cni" / "dns") if not n.startswith(".")]
        assert dns.running_pid(root / "cni" / "dns") is None
        conflists = (root / "networks").glob("*.conflist")
        bridges = {json.loads(p.read_text())["ctl"]["bridge"] for p in conflists}
        assert isolation.leftovers(bridges) == []
        assert ctl_proc("system", "check", root=root).code == 0
    finally:
        clean_root(root)


def test_cycles_of_run_connect_disconnect_rm_leave_nothing(tmp_path: Path, web: str) -> None:
    _cycles(tmp_path / "root", web, 5)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_cycles_soak(tmp_path: Path, web: str, request: pytest.FixtureRequest) -> None:
    if not (os.environ.get("CTL_SOAK") == "1" or request.config.getoption("soak")):
        pytest.skip("the soak runs on demand: CTL_SOAK=1 or pytest --soak")
    _cycles(tmp_path / "root", web, 100)


def test_system_check_repairs_a_stray_lease_and_veth(uroot: Path, web: str) -> None:
    import ipaddress

    # A subnet ctl picks: one named here could be another job's on this host.
    _ctl(uroot, "network", "create", "strays")
    veth = f"vs{os.getpid() % 100000}"
    try:
        _ctl(uroot, "run", "-d", "--net", "strays", "--name", "anchor", web)
        conflist = json.loads((uroot / "networks" / "strays.conflist").read_text())
        bridge = conflist["ctl"]["bridge"]
        subnet = json.loads(_ctl(uroot, "network", "inspect", "strays"))[0]["IPAM"]["Config"][0]
        stray = str(ipaddress.ip_network(subnet["Subnet"])[77])
        lease = uroot / "cni" / "ipam" / "strays" / stray
        lease.write_text("f" * 64 + "\r\neth0")
        subprocess.run(["ip", "link", "add", veth, "type", "veth", "peer", "name", f"{veth}p"])
        subprocess.run(["ip", "link", "set", veth, "master", bridge], check=True)
        broken = ctl_proc("system", "check", root=uroot)
        assert broken.code == 1
        assert f"address lease {stray} on network strays" in broken.stdout
        assert f"interface {veth} on bridge {bridge}" in broken.stdout
        _ctl(uroot, "system", "check", "--repair")
        assert not lease.exists()
        assert not Path("/sys/class/net", veth).exists()
        assert ctl_proc("system", "check", root=uroot).code == 0
        # The container's own lease and veth were left alone.
        assert _fetch(uroot, "strays", web, "anchor") == str(_inspect(uroot, "anchor")["Id"])[:12]
    finally:
        subprocess.run(["ip", "link", "delete", veth], capture_output=True)
        _ctl(uroot, "rm", "-f", "anchor")
        _ctl(uroot, "network", "rm", "strays")
