"""Issue 14's pure parts, without root: address flags, socket tables, resolver files, filters."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from ctl.errdefs import InvalidArgument
from ctl.network import NetworkInfo, config, dns, hostports, isolation


def test_addressing_pairs_flags_with_subnets_as_docker_does() -> None:
    v4, v6 = config.parse_addressing(
        ["10.5.0.0/16", "fd00:1::/64"],
        ["10.5.0.254"],
        ["10.5.1.0/24"],
        ["router=10.5.0.9", "six=fd00:1::9"],
    )
    assert v4.gateway == ipaddress.ip_address("10.5.0.254")
    assert v4.ipam_range() == {
        "subnet": "10.5.0.0/16",
        "gateway": "10.5.0.254",
        "rangeStart": "10.5.1.0",
        "rangeEnd": "10.5.1.255",
    }
    assert v6.gateway == ipaddress.ip_address("fd00:1::1")
    assert v4.aux == (("router", ipaddress.ip_address("10.5.0.9")),)
    assert v6.aux == (("six", ipaddress.ip_address("fd00:1::9")),)


@pytest.mark.parametrize(
    ("subnets", "gateways", "ranges", "aux", "message"),
    [
        ([], ["10.0.0.1"], [], [], "--gateway needs a --subnet"),
        (["10.5.0.0/16"], ["10.6.0.1"], [], [], "not in subnet"),
        (["10.5.0.0/16", "10.6.0.0/16"], [], [], [], "one --subnet of each family"),
        (["10.5.0.0/16"], [], ["10.7.0.0/24"], [], "not inside subnet"),
        (["10.5.0.0/16"], [], [], ["x=10.9.0.1"], "in no --subnet"),
        (["10.5.0.0/16"], [], [], ["10.5.0.3"], "NAME=IP"),
        (["10.5.0.1/16"], [], [], [], "--subnet"),
    ],
)
def test_bad_address_flags_are_refused(
    subnets: list[str], gateways: list[str], ranges: list[str], aux: list[str], message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        config.parse_addressing(subnets, gateways, ranges, aux)


def test_an_internal_dual_stack_conflist() -> None:
    v6 = config.Addressing(ipaddress.IPv6Network("fd00:2::/64"), ipaddress.IPv6Address("fd00:2::1"))
    conflist = config.bridge_conflist(
        "n",
        "ab" * 32,
        "ctl-x",
        ipaddress.IPv4Network("10.8.0.0/16"),
        ipaddress.IPv4Address("10.8.0.1"),
        Path("/ipam"),
        "1.0.0",
        "now",
        ipv6=v6,
        internal=True,
        dns=True,
        labels={"a": "b"},
    )
    bridge = conflist["plugins"][0]
    assert bridge["ipMasq"] is False and bridge["ipam"]["routes"] == []
    assert [r[0]["subnet"] for r in bridge["ipam"]["ranges"]] == ["10.8.0.0/16", "fd00:2::/64"]
    info = config.info_of(conflist)
    assert (info.subnet6, info.internal, info.labels) == ("fd00:2::/64", True, (("a", "b"),))
    assert config.has_dns(conflist)


def test_socket_table_addresses() -> None:
    assert hostports.parse_address("0100007F:1F90") == ("127.0.0.1", 8080)
    assert hostports.parse_address("00000000000000000000000000000000:0050") == ("::", 80)
    mapped = "0000000000000000FFFF00000100007F:0016"
    assert hostports.parse_address(mapped) == ("127.0.0.1", 22)


def test_resolver_lines() -> None:
    line = dns.entry_line("c" * 64, ["10.1.0.2/16", "fd00::2/64"], ["db", "store", "db", ""])
    assert line == f"{'c' * 64} 10.1.0.2 fd00::2 db,store"
    assert dns.network_file(["10.1.0.1"], ["b x", "a y"]) == "10.1.0.1\na y\nb x\n"


def test_isolation_rules_name_their_bridge() -> None:
    for internal in (False, True):
        for rule in isolation.rules_for("ctl-abc", internal):
            assert isolation._bridge_of(rule) == "ctl-abc"


def test_network_ls_filters() -> None:
    from ctl.commands.network import network_filter

    info = NetworkInfo(
        "f00d" * 16, "app", "bridge", "10.1.0.0/16", "10.1.0.1", "b", "", labels=(("tier", "db"),)
    )
    default = NetworkInfo(
        "beef" * 16, config.DEFAULT_NETWORK, "bridge", "10.2.0.0/16", "10.2.0.1", "b", ""
    )
    assert network_filter(["dangling=true"], set())(info)
    assert not network_filter(["dangling=true"], {"app"})(info)
    assert not network_filter(["dangling=true"], set())(default)
    assert network_filter(["type=builtin"], set())(default)
    host, none = (NetworkInfo("0" * 64, n, d, "", "", "", "") for n, d in config.PSEUDO_NETWORKS)
    assert network_filter(["type=builtin"], set())(host)
    assert not network_filter(["type=custom"], set())(none)
    # By docker's name of the default network.
    assert network_filter(["name=bridge"], set())(default)
    assert not network_filter([f"name={config.DEFAULT_NETWORK}"], set())(default)
    assert network_filter(["label=tier=db", "id=f00d", "name=ap"], set())(info)
    assert not network_filter(["label=tier=web"], set())(info)
    with pytest.raises(InvalidArgument):
        network_filter(["colour=red"], set())
