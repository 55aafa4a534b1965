"""Issue 5 through the CLI: bridge networks, published ports, teardown."""

from __future__ import annotations

import concurrent.futures
import json
import re
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.helpers import CtlResult, clean_root, ctl_proc, free_port, host_leftovers
from tests.images import CanonicalImages, LayerBuilder

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.needs_root


@pytest.fixture(scope="module")
def nroot(tmp_path_factory: pytest.TempPathFactory, images: CanonicalImages):
    root = tmp_path_factory.mktemp("netrun") / "root"
    yield root
    clean_root(root)


@pytest.fixture(scope="module")
def httpd_image(images: CanonicalImages) -> str:
    page = LayerBuilder().dir("www").file("www/index.html", "hello from ctl\n").build("gzip")
    image = images.factory.image(page, cmd=["httpd", "-f", "-v", "-p", "80", "-h", "/www"])
    return images.factory.push(image, "test/httpd")


def _port() -> int:
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", 8080)) != 0:
            return 8080
    return free_port()


def _get(url: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _address(root: Path, name: str) -> str:
    doc = json.loads(ctl_proc("inspect", name, root=root).assert_success().stdout)[0]
    return doc["NetworkSettings"]["IPAddress"]


def test_published_port_answers_on_localhost(nroot: Path, httpd_image: str) -> None:
    port = _port()
    ctl_proc(
        "run", "-d", "--name", "web", "-p", f"{port}:80", httpd_image, root=nroot
    ).assert_success()
    assert _get(f"http://127.0.0.1:{port}/") == "hello from ctl\n"
    ps = ctl_proc("ps", root=nroot).stdout
    assert f"0.0.0.0:{port}->80/tcp" in ps
    clash = ctl_proc("run", "-d", "-p", f"{port}:80", httpd_image, root=nroot)
    clash.assert_failure(125, stderr_re=str(port))
    ctl_proc("rm", "-f", "web", root=nroot).assert_success()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)


def test_containers_on_a_user_network_reach_each_other(nroot: Path, httpd_image: str) -> None:
    ctl_proc("network", "create", "backend", root=nroot).assert_success()
    ctl_proc(
        "run", "-d", "--net", "backend", "--name", "server", httpd_image, root=nroot
    ).assert_success()
    address = _address(nroot, "server")
    assert address
    # busybox's wget crashes on a refused connection; nc retried until the server listens.
    fetch = (
        "for i in $(seq 50); do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | "
        f"nc {address} 80 && exit 0; sleep 0.1; done; exit 1"
    )
    got = ctl_proc("run", "--rm", "--net", "backend", httpd_image, "sh", "-c", fetch, root=nroot)
    assert got.assert_success().stdout.endswith("hello from ctl\n")
    hosts = ctl_proc("exec", "server", "cat", "/etc/hosts", root=nroot).stdout
    assert address in hosts
    ctl_proc("network", "rm", "backend", root=nroot).assert_failure(125, stderr_re="attached")
    ctl_proc("rm", "-f", "server", root=nroot).assert_success()
    ctl_proc("network", "rm", "backend", root=nroot).assert_success()
    ctl_proc("run", "--rm", "--net", "backend", httpd_image, "true", root=nroot).assert_failure(
        125, stderr_re="backend"
    )


def test_system_check_runs_cni_check_on_running_containers(nroot: Path, httpd_image: str) -> None:
    port = free_port()
    ctl_proc(
        "run", "-d", "--name", "checked", "-p", f"{port}:80", httpd_image, root=nroot
    ).assert_success()
    try:
        sound = ctl_proc("system", "check", root=nroot).assert_success().stdout
        assert "problem" in sound and "0 problems" in sound
        # Remove the container's interface behind ctl's back: bridge's CHECK notices.
        netns = json.loads(ctl_proc("inspect", "checked", root=nroot).stdout)[0]
        path = netns["NetworkSettings"]["SandboxKey"]
        subprocess.run(["nsenter", f"--net={path}", "ip", "link", "del", "eth0"], check=True)
        broken = ctl_proc("system", "check", root=nroot)
        assert broken.code == 1, broken.stdout + broken.stderr
        assert "network of container default/checked" in broken.stdout
    finally:
        ctl_proc("rm", "-f", "checked", root=nroot).assert_success()


def test_net_none_has_only_loopback(nroot: Path, httpd_image: str) -> None:
    out = (
        ctl_proc("run", "--rm", "--net", "none", httpd_image, "cat", "/proc/net/dev", root=nroot)
        .assert_success()
        .stdout
    )
    interfaces = {line.split(":")[0].strip() for line in out.splitlines()[2:]}
    assert interfaces == {"lo"}


def test_bridge_gets_a_default_route_and_dns(nroot: Path, httpd_image: str) -> None:
    out = (
        ctl_proc(
            "run", "--rm", httpd_image, "sh", "-c", "ip route; cat /etc/resolv.conf", root=nroot
        )
        .assert_success()
        .stdout
    )
    assert "default via" in out
    assert "nameserver" in out and "nameserver 127." not in out


def test_ten_concurrent_runs_get_distinct_addresses(nroot: Path, httpd_image: str) -> None:
    def one(i: int) -> str:
        result = ctl_proc(
            "run",
            "--rm",
            httpd_image,
            "sh",
            "-c",
            "ip -4 -o addr show eth0",
            root=nroot,
            timeout=120,
        )
        result.assert_success()
        return result.stdout.split()[3]

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        addresses = list(pool.map(one, range(10)))
    assert len(set(addresses)) == 10, addresses


def _runs_side_by_side(
    root: Path, count: int, workers: int, argv: Callable[[int], list[str]]
) -> list[CtlResult]:
    """_runs_side_by_side runs ``ctl ARGV(i)`` for i < count, ``workers`` at once; all must pass."""

    def one(i: int) -> CtlResult:
        return ctl_proc(*argv(i), root=root, timeout=120)

    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        results = list(pool.map(one, range(count)))
    for result in results:
        result.assert_success()
    return results


def test_no_leftovers_after_100_run_rm_cycles(nroot: Path, httpd_image: str) -> None:
    # Each container says who it is (its cgroup is /ctl/<namespace>/<id>) and its address.
    report = ["sh", "-c", "cat /proc/self/cgroup; ip -4 -o addr show eth0"]
    results = _runs_side_by_side(
        nroot, 100, 4, lambda i: ["run", "--rm", "-p", f"{20000 + i}:80", httpd_image, *report]
    )
    output = "".join(r.stdout for r in results)
    ids = set(re.findall(r"/ctl/[^/]+/([0-9a-f]{64})$", output, re.MULTILINE))
    addresses = set(re.findall(r"inet (\d+\.\d+\.\d+\.\d+)/", output))
    assert len(ids) == 100 and addresses, output
    assert host_leftovers(nroot, ids, addresses) == {}


def _bridge_of(root: Path, network: str) -> Path:
    doc = json.loads(ctl_proc("network", "inspect", network, root=root).assert_success().stdout)
    return Path("/sys/class/net", doc[0]["Options"]["bridge"])


def test_the_bridge_goes_with_the_last_container(nroot: Path, httpd_image: str) -> None:
    ctl_proc("network", "create", "short", root=nroot).assert_success()
    bridge = _bridge_of(nroot, "short")
    assert not bridge.exists()
    for name in ("one", "two"):
        ctl_proc(
            "run", "-d", "--net", "short", "--name", name, httpd_image, root=nroot
        ).assert_success()
    assert bridge.exists()
    ctl_proc("rm", "-f", "one", root=nroot).assert_success()
    # The other container still answers, through the bridge.
    assert _get(f"http://{_address(nroot, 'two')}/") == "hello from ctl\n"
    ctl_proc("rm", "-f", "two", root=nroot).assert_success()
    assert not bridge.exists()
    ctl_proc("system", "check", root=nroot).assert_success()
    ctl_proc("network", "rm", "short", root=nroot).assert_success()


def test_parallel_runs_on_one_network_never_fail(nroot: Path, httpd_image: str) -> None:
    # Containers come and go side by side: whichever leaves last takes the
    # bridge, and the next makes it again. Each must reach its gateway.
    ctl_proc("network", "create", "crowd", root=nroot).assert_success()
    script = "sleep 0.$((RANDOM % 5)); ping -c 1 -W 2 $(ip route | awk '/default/ {print $3}')"
    argv = ["run", "--rm", "--net", "crowd", httpd_image, "sh", "-c", script]
    _runs_side_by_side(nroot, 24, 8, lambda i: argv)
    assert not _bridge_of(nroot, "crowd").exists()
    ctl_proc("network", "rm", "crowd", root=nroot).assert_success()


def test_without_cni_plugins_the_default_is_no_network(nroot: Path, httpd_image: str) -> None:
    env = {"CTL_CNI_PATH": "/nonexistent"}
    result = ctl_proc("run", "--rm", httpd_image, "cat", "/proc/net/dev", root=nroot, env=env)
    assert result.code == 0 and "warning" in result.stderr
    assert "eth0" not in result.stdout
    asked = ctl_proc("run", "--rm", "--net", "bridge", httpd_image, "true", root=nroot, env=env)
    asked.assert_failure(125, stderr_re="CNI plugin")
