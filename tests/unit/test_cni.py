"""CNI plumbing without namespaces: configs, errors, subnets, ports, plugin invocation.

Plugin calls run small shell-script plugins written here (the way a real
plugin fails or hangs cannot be arranged otherwise) and the real plugins'
VERSION command, which needs no privileges.
"""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path

import pytest

from ctl.containers.container import PortMapping
from ctl.errdefs import (
    AlreadyExists,
    CtlError,
    InvalidArgument,
    NotFound,
    Unavailable,
    Unimplemented,
)
from ctl.network import config
from ctl.network.cni import CNI, RuntimeConf, plugin_config, plugin_dirs, plugin_error
from ctl.network.manager import (
    attachment_of,
    check_publish,
    container_ips,
    ports_clash,
)
from ctl.network.networks import Networks, resolve_network
from ctl.paths import Paths

# A routing table as /proc/net/route prints it: default via 192.0.2.1 on eth0,
# 192.0.2.0/24 on eth0, 10.88.0.0/16 on a bridge, 10.90.0.0/24 on another.
ROUTES = """\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
cni0\t0000580A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0
br1\t00005A0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
"""

CONFLIST = {
    "cniVersion": "1.0.0",
    "name": "net1",
    "plugins": [
        {"type": "bridge", "bridge": "br9"},
        {"type": "portmap", "capabilities": {"portMappings": True}},
        {"type": "firewall"},
    ],
}


def _net(cidr: str) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(cidr)


# Configurations.


def test_bridge_conflist_has_the_plugins_the_issue_asks_for(tmp_path: Path) -> None:
    conf = config.bridge_conflist(
        "web",
        "ab" * 32,
        "ctl-ababababab",
        _net("10.91.0.0/16"),
        ipaddress.IPv4Address("10.91.0.1"),
        str(tmp_path / "ipam"),
        "1.0.0",
        "2024-01-01T00:00:00Z",
    )
    assert conf["name"] == "web" and conf["cniVersion"] == "1.0.0"
    bridge, portmap, firewall = conf["plugins"]
    assert bridge["type"] == "bridge" and bridge["bridge"] == "ctl-ababababab"
    assert bridge["isGateway"] and bridge["ipMasq"] and bridge["hairpinMode"]
    ipam = bridge["ipam"]
    assert ipam["type"] == "host-local"
    assert ipam["dataDir"] == str(tmp_path / "ipam")
    assert ipam["ranges"] == [[{"subnet": "10.91.0.0/16", "gateway": "10.91.0.1"}]]
    assert ipam["routes"] == [{"dst": "0.0.0.0/0"}]
    assert portmap == {"type": "portmap", "snat": True, "capabilities": {"portMappings": True}}
    assert firewall["type"] == "firewall" and firewall["backend"] == "iptables"
    info = config.info_of(conf)
    assert (info.id, info.subnet, info.gateway, info.bridge) == (
        "ab" * 32,
        "10.91.0.0/16",
        "10.91.0.1",
        "ctl-ababababab",
    )
    # The stored file is plain JSON, as CNI tools read it.
    json.loads(json.dumps(conf))


def test_a_container_that_publishes_nothing_goes_without_portmap(tmp_path: Path) -> None:
    conf = config.bridge_conflist(
        "n", "0" * 64, "b", _net("10.91.0.0/16"), ipaddress.IPv4Address("10.91.0.1"), tmp_path,
        "1.0.0", "",
    )  # fmt: skip
    assert config.for_container(conf, publishes=True) is conf
    without = config.for_container(conf, publishes=False)
    assert [p["type"] for p in without["plugins"]] == ["bridge", "firewall"]
    assert [p["type"] for p in conf["plugins"]] == ["bridge", "portmap", "firewall"]


def test_bridge_names_fit_ifnamsiz() -> None:
    assert config.bridge_name("f" * 64, default_bridge=True) == "ctl0"
    name = config.bridge_name("0123456789abcdef" * 4, default_bridge=False)
    assert name == "ctl-0123456789a"
    assert len(name) <= 15


def test_loopback_config() -> None:
    assert config.loopback_config("1.0.0") == {
        "cniVersion": "1.0.0",
        "name": config.LOOPBACK_NAME,
        "type": "loopback",
    }


def test_plugin_config_chains_results_and_passes_declared_capabilities() -> None:
    rt = RuntimeConf("c1", "/run/ns", "eth0", {"portMappings": [{"hostPort": 80}], "other": 1})
    first = plugin_config(CONFLIST, CONFLIST["plugins"][0], rt, None)
    assert first == {"type": "bridge", "bridge": "br9", "name": "net1", "cniVersion": "1.0.0"}
    prev = {"cniVersion": "1.0.0", "ips": []}
    second = plugin_config(CONFLIST, CONFLIST["plugins"][1], rt, prev)
    assert second["runtimeConfig"] == {"portMappings": [{"hostPort": 80}]}
    assert second["prevResult"] == prev
    third = plugin_config(CONFLIST, CONFLIST["plugins"][2], rt, prev)
    assert "runtimeConfig" not in third


# Errors.


def test_plugin_error_is_one_line_and_classed_by_code() -> None:
    out = json.dumps({"code": 11, "msg": "busy\nnow", "details": "the lock is held"}).encode()
    err = plugin_error("bridge", "ADD", 1, out, b"")
    assert isinstance(err, Unavailable)
    assert str(err) == "CNI plugin bridge ADD: busy now: the lock is held"
    err = plugin_error("portmap", "DEL", 1, json.dumps({"code": 7, "msg": "bad"}).encode(), b"")
    assert isinstance(err, InvalidArgument) and str(err) == "CNI plugin portmap DEL: bad"
    err = plugin_error("x", "ADD", 1, json.dumps({"code": 1, "msg": "old"}).encode(), b"")
    assert isinstance(err, Unimplemented)
    err = plugin_error("x", "ADD", 1, json.dumps({"code": 100, "msg": "m"}).encode(), b"")
    assert type(err) is CtlError


def test_plugin_error_without_json_uses_stderr_or_the_status() -> None:
    err = plugin_error("bridge", "ADD", 2, b"garbage", b"first\npanic: boom\n")
    assert str(err) == "CNI plugin bridge ADD: panic: boom"
    err = plugin_error("bridge", "ADD", 2, b"", b"")
    assert str(err) == "CNI plugin bridge ADD: exit status 2, no error message"


# Subnets.


def test_parse_route_table_reads_destinations_and_skips_the_default_route() -> None:
    assert config.parse_route_table(ROUTES) == [
        _net("192.0.2.0/24"),
        _net("10.88.0.0/16"),
        _net("10.90.0.0/24"),
    ]


def test_pick_subnet_skips_what_overlaps_the_host() -> None:
    taken = config.parse_route_table(ROUTES)
    # Never podman's 10.88 and 10.89, route or not; not 10.90, which has a route.
    assert config.pick_subnet(taken) == _net("10.91.0.0/16")
    taken.append(_net("10.91.128.0/17"))
    assert config.pick_subnet(taken) == _net("10.92.0.0/16")
    # A host route that covers every candidate leaves nothing.
    with pytest.raises(AlreadyExists):
        config.pick_subnet([_net("10.0.0.0/8")])


def test_candidate_subnets_start_where_the_network_id_says() -> None:
    # Two roots' networks, each made while the other's bridge was down, should
    # not both take 10.90: the id picks where the search starts.
    first = config.candidate_subnets("00000000" + "0" * 56)
    assert first == list(config.CANDIDATE_SUBNETS)
    later = config.candidate_subnets("0000000a" + "f" * 56)
    assert later[0] == _net("10.100.0.0/16")
    assert sorted(later) == sorted(config.CANDIDATE_SUBNETS)
    assert config.pick_subnet([_net("10.100.0.0/16")], later) == _net("10.101.0.0/16")


def test_parse_ip_addr_and_cni_subnets() -> None:
    text = json.dumps(
        [
            {
                "ifname": "lo",
                "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}],
            },
            {
                "ifname": "eth0",
                "addr_info": [
                    {"family": "inet", "local": "10.95.3.4", "prefixlen": 16},
                    {"family": "inet6", "local": "fd00::2", "prefixlen": 64},
                ],
            },
        ]
    )
    assert config.parse_ip_addr(text) == [_net("127.0.0.0/8"), _net("10.95.0.0/16")]
    podman = {
        "name": "podman",
        "plugins": [{"type": "bridge", "ipam": {"ranges": [[{"subnet": "10.88.0.0/16"}]]}}],
    }
    single = {"name": "old", "type": "bridge", "ipam": {"subnet": "172.30.0.0/16"}}
    v6 = {"name": "v6", "plugins": [{"ipam": {"ranges": [[{"subnet": "fd00::/64"}]]}}]}
    assert config.cni_subnets([podman, single, v6]) == [
        _net("10.88.0.0/16"),
        _net("172.30.0.0/16"),
    ]


@pytest.mark.parametrize(
    "value",
    ["10.1.2.3/16", "fd00::/64", "10.0.0.0/31", "nonsense", "10.0.0.0/33"],
)
def test_bad_subnets(value: str) -> None:
    with pytest.raises(InvalidArgument):
        config.parse_subnet(value)


def test_gateway_defaults_to_the_first_address_and_must_be_a_host_of_the_subnet() -> None:
    subnet = config.parse_subnet("10.200.0.0/24")
    assert str(config.parse_gateway(None, subnet)) == "10.200.0.1"
    assert str(config.parse_gateway("10.200.0.254", subnet)) == "10.200.0.254"
    for bad in ("10.200.1.1", "10.200.0.0", "10.200.0.255", "x"):
        with pytest.raises(InvalidArgument):
            config.parse_gateway(bad, subnet)


def test_network_names() -> None:
    assert config.validate_name("web-1") == "web-1"
    for bad in ("host", "none", "bridge", "a/b", "", "-x"):
        with pytest.raises(InvalidArgument):
            config.validate_name(bad)
    assert resolve_network("bridge") == config.DEFAULT_NETWORK
    assert resolve_network("web") == "web"


def test_networks_read_the_stored_conflists(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = Paths(tmp_path)
    networks = Networks(paths)
    with pytest.raises(NotFound):
        networks.conflist("web")
    directory = Path(paths.networks)
    directory.mkdir()
    stored = {}
    for n, name in enumerate((config.DEFAULT_NETWORK, "web")):
        subnet = ipaddress.IPv4Network(f"10.{200 + n}.0.0/16")
        stored[name] = config.bridge_conflist(
            name, f"{n}" * 64, f"ctl-{n}", subnet, subnet[1], paths.ipam, "1.0.0", ""
        )
        (directory / f"{name}.conflist").write_text(json.dumps(stored[name]))
    (directory / ".web.conflist.1.tmp").write_text("{")  # a crashed write
    (directory / "db.conflist").write_text('{"name": "db"}')  # not a ctl network
    assert networks.conflist("web") == stored["web"]
    assert networks.exists("web") and not networks.exists("other")
    with pytest.raises(CtlError, match=r"db\.conflist"):
        networks.conflist("db")
    assert [i.name for i in networks.list()] == [config.DEFAULT_NETWORK, "web"]
    assert capsys.readouterr().err.startswith(f"ctl: warning: {directory / 'db.conflist'}: ")


# Ports.


def _entry(host_port: int, protocol: str = "tcp", host_ip: str = "") -> dict[str, object]:
    entry: dict[str, object] = {"hostPort": host_port, "containerPort": 80, "protocol": protocol}
    if host_ip:
        entry["hostIP"] = host_ip
    return entry


def test_ports_clash_on_the_same_socket_only() -> None:
    assert ports_clash(_entry(8080), _entry(8080))
    assert ports_clash(_entry(8080), _entry(8080, host_ip="127.0.0.1"))
    assert ports_clash(_entry(8080, host_ip="0.0.0.0"), _entry(8080, host_ip="10.0.0.1"))
    assert ports_clash(_entry(8080, host_ip="127.0.0.1"), _entry(8080, host_ip="127.0.0.1"))
    assert not ports_clash(_entry(8080, host_ip="127.0.0.1"), _entry(8080, host_ip="127.0.0.2"))
    assert not ports_clash(_entry(8080), _entry(8080, "udp"))
    assert not ports_clash(_entry(8080), _entry(8081))


def test_check_publish_builds_portmap_entries_and_refuses_duplicates() -> None:
    ports = check_publish(
        [PortMapping("", 8080, 80, "tcp"), PortMapping("127.0.0.1", 53, 53, "udp")]
    )
    assert ports == [
        {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
        {"hostPort": 53, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"},
    ]
    with pytest.raises(InvalidArgument, match="8080/tcp is published twice"):
        check_publish([PortMapping("", 8080, 80, "tcp"), PortMapping("", 8080, 81, "tcp")])
    with pytest.raises(InvalidArgument, match="IPv4 only"):
        check_publish([PortMapping("::1", 8080, 80, "tcp")])


# Results.

RESULT = {
    "cniVersion": "1.0.0",
    "interfaces": [
        {"name": "ctl0", "mac": "aa:aa:aa:aa:aa:aa"},
        {"name": "veth1", "mac": "bb:bb:bb:bb:bb:bb"},
        {"name": "eth0", "mac": "cc:cc:cc:cc:cc:cc", "sandbox": "/ns"},
    ],
    "ips": [{"interface": 2, "address": "10.89.0.7/16", "gateway": "10.89.0.1"}],
    "routes": [{"dst": "0.0.0.0/0"}],
}


def test_attachment_from_a_result() -> None:
    assert container_ips(RESULT) == ["10.89.0.7/16"]
    assert container_ips(None) == []
    record = {"result": RESULT, "ifname": "eth0", "netns": "/ns", "network": "ctl"}
    att = attachment_of(record)
    assert (att.address, att.gateway, att.interface, att.network) == (
        "10.89.0.7",
        "10.89.0.1",
        "eth0",
        "ctl",
    )
    with pytest.raises(CtlError, match="no IPv4 address"):
        attachment_of({**record, "result": {**RESULT, "ips": []}})


# Invoking plugins.


def _plugin(directory: Path, name: str, body: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def test_plugins_get_the_cni_environment_and_their_config_on_stdin(tmp_path: Path) -> None:
    # The plugin answers with what it was given: its environment and stdin.
    _plugin(
        tmp_path / "bin",
        "echo-env",
        'conf=$(cat)\nprintf \'{"cniVersion":"1.0.0","env":"%s","conf":%s}\' '
        '"$CNI_COMMAND $CNI_CONTAINERID $CNI_NETNS $CNI_IFNAME $CNI_PATH" "$conf"\n',
    )
    cni = CNI([str(tmp_path / "bin"), "/nowhere"])
    rt = RuntimeConf("c1", "/run/ns1", "eth0", {"portMappings": [{"hostPort": 1}]})
    conflist = {
        "cniVersion": "1.0.0",
        "name": "n",
        "plugins": [
            {"type": "echo-env", "capabilities": {"portMappings": True}},
            {"type": "echo-env", "x": 1},
        ],
    }
    seen: list[dict[str, object]] = []
    result = cni.add_list(conflist, rt, on_result=seen.append)
    assert result["env"] == f"ADD c1 /run/ns1 eth0 {tmp_path / 'bin'}:/nowhere"
    assert result["conf"]["x"] == 1
    # The second plugin got the first one's result, with its runtimeConfig.
    prev = result["conf"]["prevResult"]
    assert prev["conf"]["runtimeConfig"] == {"portMappings": [{"hostPort": 1}]}
    assert len(seen) == 2 and seen[-1] == result


def test_del_runs_plugins_in_reverse_with_the_add_result(tmp_path: Path) -> None:
    log = tmp_path / "log"
    for name in ("first", "second"):
        _plugin(tmp_path / "bin", name, f'echo "{name} $CNI_COMMAND $(cat)" >> {log}\n')
    cni = CNI([str(tmp_path / "bin")])
    conflist = {
        "cniVersion": "1.0.0",
        "name": "n",
        "plugins": [{"type": "first"}, {"type": "second"}],
    }
    cni.del_list(conflist, RuntimeConf("c1", "/ns", "eth0"), {"ips": ["x"]})
    lines = log.read_text().splitlines()
    assert [line.split()[:2] for line in lines] == [["second", "DEL"], ["first", "DEL"]]
    assert all(json.loads(line.split(" ", 2)[2])["prevResult"] == {"ips": ["x"]} for line in lines)


def _failing_check(directory: Path, name: str, msg: str) -> None:
    _plugin(
        directory,
        name,
        'cat >/dev/null\n[ "$CNI_COMMAND" = CHECK ] || exit 0\n'
        f"""echo '{{"code": 999, "msg": "{msg}"}}'\nexit 1\n""",
    )


def test_check_runs_plugins_in_order_and_raises_the_first_complaint(tmp_path: Path) -> None:
    log = tmp_path / "log"
    _plugin(tmp_path / "bin", "fine", f'echo "fine $CNI_COMMAND" >> {log}; cat >/dev/null\n')
    _failing_check(tmp_path / "bin", "bridge", "eth0 is gone")
    cni = CNI([str(tmp_path / "bin")])
    conflist = {"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "fine"}]}
    assert cni.check_list(conflist, RuntimeConf("c", "/n", "eth0"), {})
    assert log.read_text() == "fine CHECK\n"
    conflist["plugins"] = [{"type": "fine"}, {"type": "bridge"}, {"type": "fine"}]
    with pytest.raises(CtlError, match="CNI plugin bridge CHECK: eth0 is gone"):
        cni.check_list(conflist, RuntimeConf("c", "/n", "eth0"), {})
    # CHECK came with 0.4.0, and a configuration may opt out of it.
    assert not cni.check_list({**conflist, "cniVersion": "0.3.1"}, RuntimeConf("c", "/n", "e"), {})
    assert not cni.check_list({**conflist, "disableCheck": True}, RuntimeConf("c", "/n", "e"), {})


def test_check_forgives_portmaps_ipv6_complaint_for_an_ipv4_only_container(
    tmp_path: Path,
) -> None:
    _failing_check(tmp_path / "bin", "portmap", "could not check ipv6 dnat: chain not found")
    cni = CNI([str(tmp_path / "bin")])
    conflist = {"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "portmap"}]}
    rt = RuntimeConf("c", "/n", "eth0")
    assert cni.check_list(conflist, rt, {"ips": [{"address": "10.90.0.2/16"}]})
    with pytest.raises(CtlError, match="ipv6"):
        cni.check_list(conflist, rt, {"ips": [{"address": "fd00::2/64"}]})


def test_a_failing_plugin_is_one_error_line(tmp_path: Path) -> None:
    _plugin(
        tmp_path / "bin",
        "failing",
        "cat >/dev/null\n"
        """echo '{"code": 11, "msg": "address pool exhausted", "details": "10.0.0.0/30"}'\n"""
        "exit 1\n",
    )
    cni = CNI([str(tmp_path / "bin")])
    with pytest.raises(Unavailable) as caught:
        cni.add(
            {"cniVersion": "1.0.0", "name": "n", "type": "failing"}, RuntimeConf("c", "/n", "e")
        )
    assert str(caught.value) == "CNI plugin failing ADD: address pool exhausted: 10.0.0.0/30"


def test_a_hanging_plugin_times_out(tmp_path: Path) -> None:
    _plugin(tmp_path / "bin", "hanging", "exec sleep 30\n")
    cni = CNI([str(tmp_path / "bin")], timeout=0.3)
    with pytest.raises(Unavailable, match=r"no answer within 0\.3s"):
        cni.add(
            {"cniVersion": "1.0.0", "name": "n", "type": "hanging"}, RuntimeConf("c", "/n", "e")
        )


def test_a_missing_plugin_names_the_search_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CTL_CNI_PATH", f"{tmp_path}/a:{tmp_path}/b")
    assert plugin_dirs() == [f"{tmp_path}/a", f"{tmp_path}/b"]
    with pytest.raises(NotFound, match=f"not found in {tmp_path}/a:{tmp_path}/b") as caught:
        CNI().find("bridge")
    assert caught.value.hint and "CTL_CNI_PATH" in caught.value.hint
    with pytest.raises(InvalidArgument):
        CNI().find("../bin/sh")
    monkeypatch.delenv("CTL_CNI_PATH")
    assert plugin_dirs()[:2] == ["/usr/lib/cni", "/opt/cni/bin"]


def test_installed_plugins_speak_a_version_we_read() -> None:
    cni = CNI()
    assert os.access(cni.find("bridge"), os.X_OK)
    assert cni.best_version("bridge") in ("1.0.0", "0.4.0")
    for plugin in ("host-local", "portmap", "firewall", "loopback"):
        cni.find(plugin)
