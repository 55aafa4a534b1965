"""Parsing of the network and lifecycle flags of run/create (issue 11, groups 5 and 6)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctl.containers.container import PortMapping, RunConfig
from ctl.containers.create import ContainerOptions, flag_opts, resolv_conf
from ctl.errdefs import InvalidArgument
from ctl.network.cni import RuntimeConf, cni_args, plugin_config
from ctl.network.ports import exposed_ports, publish_all
from ctl.runtime import runopts
from ctl.runtime.spec import ANNOTATION_STOP_SIGNAL, generate_spec, stop_signal


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("db:10.0.0.1", ("db", "10.0.0.1")),
        ("db=10.0.0.1", ("db", "10.0.0.1")),
        ("v6:::1", ("v6", "::1")),
        ("v6:[2001:db8::1]", ("v6", "2001:db8::1")),
        ("v6=2001:db8::1", ("v6", "2001:db8::1")),
        ("gw:host-gateway", ("gw", "host-gateway")),
    ],
)
def test_add_host(value: str, want: tuple[str, str]) -> None:
    assert runopts.parse_add_host(value) == want


@pytest.mark.parametrize("value", ["db", ":10.0.0.1", "db:", "db:300.0.0.1", "a b:10.0.0.1"])
def test_add_host_refuses(value: str) -> None:
    with pytest.raises(InvalidArgument):
        runopts.parse_add_host(value)


def test_ip_versions() -> None:
    assert runopts.parse_ip("10.0.0.1", 4) == "10.0.0.1"
    assert runopts.parse_ip("2001:DB8::1") == "2001:db8::1"
    with pytest.raises(InvalidArgument, match="not an IPv4"):
        runopts.parse_ip("::1", 4)
    with pytest.raises(InvalidArgument, match="not an IPv6"):
        runopts.parse_ip("10.0.0.1", 6)


def test_dns_search_and_options() -> None:
    assert runopts.parse_dns_search("example.com.") == "example.com"
    assert runopts.parse_dns_search(".") == "."
    for bad in ("", "a..b", "-a.com", "a" * 64 + ".com"):
        with pytest.raises(InvalidArgument):
            runopts.parse_dns_search(bad)
    assert runopts.parse_dns_option("ndots:2") == "ndots:2"
    with pytest.raises(InvalidArgument):
        runopts.parse_dns_option("ndots: 2")


def test_mac_address() -> None:
    assert runopts.parse_mac_address("02-42-AC-11-00-02") == "02:42:ac:11:00:02"
    for bad in ("02:42:ac:11:00", "02:42:ac:11:00:0g", "02:42-ac:11:00:02", "01:00:5e:00:00:01"):
        with pytest.raises(InvalidArgument):
            runopts.parse_mac_address(bad)


def test_expose_ports_and_ranges() -> None:
    assert runopts.parse_expose("80") == ["80/tcp"]
    assert runopts.parse_expose("53/UDP") == ["53/udp"]
    assert runopts.parse_expose("8000-8002") == ["8000/tcp", "8001/tcp", "8002/tcp"]
    for bad in ("0", "80/sctp", "9-8", "http", "70000"):
        with pytest.raises(InvalidArgument):
            runopts.parse_expose(bad)


def test_stop_timeout() -> None:
    assert runopts.parse_stop_timeout("0") == 0
    assert runopts.parse_stop_timeout("-1") == -1
    for bad in ("-2", "1.5", "10s"):
        with pytest.raises(InvalidArgument):
            runopts.parse_stop_timeout(bad)


def test_tmpfs_options_merge_over_docker_defaults() -> None:
    assert runopts.parse_tmpfs("/run") == ("/run", ("rw", "noexec", "nosuid", "nodev"))
    path, options = runopts.parse_tmpfs("/scratch/:exec,size=64m,mode=1777,ro")
    assert path == "/scratch"
    assert options == ("nosuid", "nodev", "exec", "size=64m", "mode=1777", "ro")
    for bad in ("run", "/", "/x:size=lots"):
        with pytest.raises(InvalidArgument):
            runopts.parse_tmpfs(bad)


def test_attach_and_detach_keys() -> None:
    assert runopts.parse_attach(["STDOUT", "stderr"]) == {"stdout", "stderr"}
    with pytest.raises(InvalidArgument):
        runopts.parse_attach(["stdlog"])
    assert runopts.parse_detach_keys("ctrl-p,ctrl-q") == b"\x10\x11"
    assert runopts.parse_detach_keys("a,ctrl-@,ctrl-_") == b"a\x00\x1f"
    for bad in ("ctrl-1", "ctrl-", "esc", ""):
        with pytest.raises(InvalidArgument):
            runopts.parse_detach_keys(bad)


def test_label_file(tmp_path: Path) -> None:
    path = tmp_path / "labels"
    path.write_text("# a comment\n\na=1\r\nb\n")
    assert runopts.parse_label_file(str(path)) == ["a=1", "b"]
    with pytest.raises(InvalidArgument, match="label file"):
        runopts.parse_label_file(str(tmp_path / "missing"))


def test_annotations() -> None:
    assert runopts.parse_annotations(["a.b=c=d", "e="]) == {"a.b": "c=d", "e": ""}
    with pytest.raises(InvalidArgument):
        runopts.parse_annotations(["novalue"])


def test_spec_options() -> None:
    options = ContainerOptions(
        domainname="example.org",
        stop_signal="SIGUSR1",
        annotations={"org.example/a": "b"},
        tmpfs=(("/dev/shm", ("rw", "size=1m")), ("/run/x", ("rw",))),
    )
    spec = generate_spec(*flag_opts(options))
    assert spec["domainname"] == "example.org"
    assert spec["linux"]["sysctl"]["kernel.domainname"] == "example.org"
    assert spec["annotations"][ANNOTATION_STOP_SIGNAL] == "SIGUSR1"
    assert stop_signal(spec) == 10
    assert spec["annotations"]["org.example/a"] == "b"
    shm = [m for m in spec["mounts"] if m["destination"] == "/dev/shm"]
    assert shm == [{"destination": "/dev/shm", "type": "tmpfs", "source": "tmpfs",
                    "options": ["rw", "size=1m"]}]  # fmt: skip
    depths = [m["destination"].count("/") for m in spec["mounts"]]
    assert depths == sorted(depths)


def test_resolv_conf_flags_replace_their_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    host = "nameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch lan\noptions edns0\n"
    monkeypatch.setattr("ctl.containers.create._read_host_file", lambda path: host)
    assert resolv_conf("bridge") == "nameserver 10.0.0.2\nsearch lan\noptions edns0\n"
    assert resolv_conf("host") == host
    got = resolv_conf("bridge", ["1.1.1.1"], ["."], ["ndots:2"])
    assert got == "nameserver 1.1.1.1\noptions ndots:2\n"
    got = resolv_conf("host", (), ["a.example", "b.example"])
    assert (
        got
        == "nameserver 127.0.0.53\nnameserver 10.0.0.2\noptions edns0\nsearch a.example b.example\n"
    )


def test_run_config_keeps_the_flags() -> None:
    config = RunConfig(
        network="bridge",
        add_hosts=(("db", "10.0.0.1"),),
        dns=("1.1.1.1",),
        dns_search=("example.com",),
        dns_options=("ndots:2",),
        domainname="example.org",
        mac_address="02:42:ac:11:00:02",
        ip="10.88.0.5",
        stop_timeout=0,
        publish_all=True,
    )
    assert RunConfig.from_json(config.to_json()) == config
    assert "dns" not in RunConfig(network="bridge").to_json()


def test_cni_args_reach_every_plugin_with_ignore_unknown() -> None:
    assert cni_args({"IP": "10.0.0.5", "MAC": "02:00:00:00:00:01"}) == (
        "IgnoreUnknown=1;IP=10.0.0.5;MAC=02:00:00:00:00:01"
    )
    with pytest.raises(InvalidArgument):
        cni_args({"IP": "10.0.0.5;X=1"})
    rt = RuntimeConf("c", "/ns", "eth0", args={"IP": "10.0.0.5"})
    config = plugin_config({"name": "n", "cniVersion": "1.0.0"}, {"type": "bridge"}, rt, None)
    assert "runtimeConfig" not in config  # CNI_ARGS travel in the environment


def test_publish_all_skips_published_ports() -> None:
    image = {"config": {"ExposedPorts": {"80/tcp": {}, "53/udp": {}, "8080": {}}}}
    exposed = exposed_ports(image, ["53/udp", "9000/tcp"])
    assert exposed == ["80/tcp", "53/udp", "8080/tcp", "9000/tcp"]
    added = publish_all(exposed, (PortMapping("", 8081, 8080, "tcp"),))
    assert [(p.container_port, p.protocol) for p in added] == [
        (80, "tcp"),
        (53, "udp"),
        (9000, "tcp"),
    ]
    assert all(1024 <= p.host_port <= 65535 and p.host_ip == "" for p in added)
