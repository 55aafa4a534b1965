"""Issue 11: parsing of the resource, device and namespace flags, and the spec they make."""

from __future__ import annotations

import json
import resource
from pathlib import Path

import pytest

from ctl.errdefs import FailedPrecondition, InvalidArgument, NotFound
from ctl.runtime import cdi
from ctl.runtime.namespaces import join_containers
from ctl.runtime.resources import DeviceRate, Resources, parse_cpuset, unsupported
from ctl.runtime.runopts import (
    RLIM_INFINITY,
    DeviceMapping,
    DeviceRule,
    NamespaceMode,
    Ulimit,
    is_cdi_name,
    parse_cgroup_parent,
    parse_device,
    parse_device_cgroup_rule,
    parse_gpus,
    parse_int,
    parse_memory_swap,
    parse_namespace_mode,
    parse_sysctls,
    parse_ulimit,
)
from ctl.runtime.spec import (
    generate_spec,
    with_cgroup_parent,
    with_cgroups_path,
    with_cpus,
    with_device_cgroup_rules,
    with_devices,
    with_group_add,
    with_host_uts,
    with_hostname,
    with_ipc_mode,
    with_pid_mode,
    with_resources,
    with_shm_size,
    with_sysctls,
)


def test_resources_document() -> None:
    wanted = Resources(
        memory=64 << 20,
        memory_swap=-1,
        memory_reservation=32 << 20,
        memory_swappiness=0,
        oom_kill_disable=True,
        cpu_shares=512,
        cpu_period=50000,
        cpu_quota=25000,
        cpuset_cpus="0-1",
        pids_limit=-1,
        blkio_weight=300,
        device_read_bps=(DeviceRate("/dev/sda", 8, 0, 1 << 20),),
    )
    assert wanted.validate().linux_resources() == {
        "memory": {
            "limit": 64 << 20,
            "swap": -1,
            "reservation": 32 << 20,
            "swappiness": 0,
            "disableOOMKiller": True,
        },
        "cpu": {"shares": 512, "period": 50000, "quota": 25000, "cpus": "0-1"},
        "blockIO": {
            "weight": 300,
            "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1 << 20}],
        },
        "pids": {"limit": -1},
    }
    assert Resources().linux_resources() == {}
    assert Resources().is_empty()


def test_with_resources_merges_with_cpus() -> None:
    spec = generate_spec(with_cpus(1.5), with_resources(Resources(cpu_shares=100)))
    assert spec["linux"]["resources"]["cpu"] == {"quota": 150000, "period": 100000, "shares": 100}


@pytest.mark.parametrize(
    ("wanted", "message"),
    [
        (Resources(memory_swap=1 << 30), "--memory-swap needs --memory"),
        (Resources(memory=64 << 20, memory_swap=32 << 20), "--memory-swap"),
        (Resources(memory=64 << 20, memory_reservation=128 << 20), "--memory-reservation"),
        (Resources(memory_swappiness=101), "--memory-swappiness"),
        (Resources(cpus=1.0, cpu_quota=50000), "--cpus"),
        (Resources(cpu_period=10), "--cpu-period"),
        (Resources(cpu_quota=10), "--cpu-quota"),
        (Resources(cpu_shares=-1), "--cpu-shares"),
        (Resources(cpu_rt_period=1000, cpu_rt_runtime=2000), "--cpu-rt-runtime"),
        (Resources(blkio_weight=5), "--blkio-weight"),
        (Resources(blkio_weight_device=(DeviceRate("/dev/sda", 8, 0, 2000),)), "weight-device"),
    ],
)
def test_resources_docker_refuses(wanted: Resources, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        wanted.validate()


def test_unsupported_on_v1_and_v2(tmp_path: Path) -> None:
    v1 = tmp_path / "v1"
    (v1 / "memory").mkdir(parents=True)
    (v1 / "memory" / "memory.swappiness").write_text("60")
    wanted = Resources(memory_swappiness=10, blkio_weight=300)
    kept, warnings = unsupported(wanted, v1)
    assert kept == Resources(memory_swappiness=10)
    assert warnings == ["this host's cgroups (v1) do not support block I/O weight: discarded"]
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cgroup.controllers").write_text("cpu io memory pids\n")
    kept, warnings = unsupported(wanted._replace(cpu_shares=10), v2)
    assert kept == Resources(blkio_weight=300, cpu_shares=10)
    assert len(warnings) == 1 and "swappiness" in warnings[0]


def test_cpuset() -> None:
    assert parse_cpuset("0-2,5", "--cpuset-cpus") == {0, 1, 2, 5}
    for bad in ("", "a", "3-1", "1-", "0,,1"):
        with pytest.raises(InvalidArgument, match="--cpuset-cpus"):
            parse_cpuset(bad, "--cpuset-cpus")


def test_int_and_swap() -> None:
    assert parse_int("-5", "--x") == -5
    with pytest.raises(InvalidArgument, match="--cpu-shares 'abc'"):
        parse_int("abc", "--cpu-shares")
    assert parse_memory_swap("-1") == -1
    assert parse_memory_swap("1g") == 1 << 30


def test_ulimit() -> None:
    assert parse_ulimit("nofile=100:200") == Ulimit("RLIMIT_NOFILE", 100, 200)
    assert parse_ulimit("core=0") == Ulimit("RLIMIT_CORE", 0, 0)
    hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
    if hard == resource.RLIM_INFINITY:
        assert parse_ulimit("cpu=-1") == Ulimit("RLIMIT_CPU", RLIM_INFINITY, RLIM_INFINITY)
    for bad in ("nofile=x", "files=1", "nofile", "nofile=", "nofile=2:1", "nofile=-2"):
        with pytest.raises(InvalidArgument, match="--ulimit"):
            parse_ulimit(bad)


def test_sysctls() -> None:
    values = ["net.ipv4.ip_forward=1", "kernel.shmmax=1", "fs.mqueue.msg_max=20"]
    assert parse_sysctls(values, "bridge", "") == {
        "net.ipv4.ip_forward": "1",
        "kernel.shmmax": "1",
        "fs.mqueue.msg_max": "20",
    }
    for value, network, ipc in [
        ("kernel.panic=1", "bridge", ""),
        ("vm.swappiness=1", "bridge", ""),
        ("net.ipv4.ip_forward=1", "host", ""),
        ("kernel.sem=1", "bridge", "host"),
        ("kernel.msgmax=1", "bridge", "container:abc"),
        ("net.ipv4.ip_forward", "bridge", ""),
    ]:
        with pytest.raises(InvalidArgument, match="--sysctl"):
            parse_sysctls([value], network, ipc)
    assert generate_spec(with_sysctls({"kernel.sem": "1"}))["linux"]["sysctl"] == {
        "kernel.sem": "1"
    }


def test_device_syntax() -> None:
    assert parse_device("/dev/null") == DeviceMapping("/dev/null", "/dev/null", "rwm")
    assert parse_device("/dev/null:r") == DeviceMapping("/dev/null", "/dev/null", "r")
    assert parse_device("/dev/null:/dev/x") == DeviceMapping("/dev/null", "/dev/x", "rwm")
    assert parse_device("/dev/null:/dev/x:rw") == DeviceMapping("/dev/null", "/dev/x", "rw")
    for bad in ("/nonexistent", "/dev/null:/dev/x:rwx", "dev/null", "/dev/null:x", "a:b:c:d"):
        with pytest.raises(InvalidArgument, match="--device"):
            parse_device(bad)
    assert is_cdi_name("vendor.com/class=name")
    assert not is_cdi_name("/dev/null") and not is_cdi_name("vendor.com/class")


def test_with_devices() -> None:
    spec = generate_spec(with_devices([DeviceMapping("/dev/null", "/dev/mynull", "rw")]))
    node = spec["linux"]["devices"][0]
    assert node["path"] == "/dev/mynull"
    assert (node["type"], node["major"], node["minor"]) == ("c", 1, 3)
    rule = spec["linux"]["resources"]["devices"][-1]
    assert rule == {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}
    with pytest.raises(InvalidArgument, match="not a device"):
        with_devices([DeviceMapping("/etc/passwd", "/x")])


def test_device_cgroup_rule() -> None:
    assert parse_device_cgroup_rule("c 1:3 mr") == DeviceRule("c", 1, 3, "mr")
    assert parse_device_cgroup_rule("a *:* rwm") == DeviceRule("a", None, None, "rwm")
    for bad in ("c 1:3", "x 1:3 r", "c 1:3 rr", "c a:3 r"):
        with pytest.raises(InvalidArgument, match="--device-cgroup-rule"):
            parse_device_cgroup_rule(bad)
    spec = generate_spec(with_device_cgroup_rules([DeviceRule("c", 42, None, "rwm")]))
    assert spec["linux"]["resources"]["devices"][-1] == {
        "allow": True,
        "type": "c",
        "major": 42,
        "access": "rwm",
    }


def test_gpus() -> None:
    assert parse_gpus("all") == ["nvidia.com/gpu=all"]
    assert parse_gpus("2") == ["nvidia.com/gpu=0", "nvidia.com/gpu=1"]
    assert parse_gpus('"device=0,2"') == ["nvidia.com/gpu=0", "nvidia.com/gpu=2"]
    assert parse_gpus("count=1,capabilities=utility") == ["nvidia.com/gpu=0"]
    with pytest.raises(InvalidArgument, match="--gpus"):
        parse_gpus("bogus=1")


def test_group_add(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "group").write_text("root:x:0:\nvideo:x:44:\n")
    spec = generate_spec(with_group_add(["video", "1234"], tmp_path))
    assert spec["process"]["user"]["additionalGids"] == [44, 1234]
    with pytest.raises(NotFound, match="nope"):
        generate_spec(with_group_add(["nope"], tmp_path))


def test_namespace_modes() -> None:
    modes = ("host", "container")
    assert parse_namespace_mode("--pid", "", modes) == NamespaceMode("")
    assert parse_namespace_mode("--pid", "host", modes) == NamespaceMode("host")
    assert parse_namespace_mode("--pid", "container:db", modes) == NamespaceMode("container", "db")
    for bad in ("private", "container:", "host:x"):
        with pytest.raises(InvalidArgument, match="--pid"):
            parse_namespace_mode("--pid", bad, modes)
    with pytest.raises(InvalidArgument, match="--uts"):
        parse_namespace_mode("--uts", "container:x", ("host",))


def _namespaces(spec: dict[str, object]) -> dict[str, str | None]:
    linux = spec["linux"]
    assert isinstance(linux, dict)
    return {n["type"]: n.get("path") for n in linux["namespaces"]}


def test_namespace_specs() -> None:
    spec = generate_spec(
        with_hostname("box"),
        with_pid_mode(NamespaceMode("host")),
        with_ipc_mode(NamespaceMode("host")),
        with_host_uts,
    )
    assert set(_namespaces(spec)) == {"mount", "network"}
    assert "hostname" not in spec
    shm = next(m for m in spec["mounts"] if m["destination"] == "/dev/shm")
    assert (shm["type"], shm["source"]) == ("bind", "/dev/shm")
    none = generate_spec(with_ipc_mode(NamespaceMode("none")))
    assert all(m["destination"] != "/dev/shm" for m in none["mounts"])


def test_joining_another_container() -> None:
    spec = generate_spec(
        with_pid_mode(NamespaceMode("container", "a" * 64)),
        with_ipc_mode(NamespaceMode("container", "b" * 64)),
    )
    assert _namespaces(spec)["pid"] == "container:" + "a" * 64
    joined = join_containers(spec, {"a" * 64: 10, "b" * 64: 20}.get)
    assert _namespaces(joined)["pid"] == "/proc/10/ns/pid"
    assert _namespaces(joined)["ipc"] == "/proc/20/ns/ipc"
    assert _namespaces(spec)["pid"] == "container:" + "a" * 64  # the record is left alone
    with pytest.raises(FailedPrecondition, match="not running"):
        join_containers(spec, lambda _: None)
    plain = generate_spec()
    assert join_containers(plain, lambda _: None) is plain


def test_shm_size() -> None:
    spec = generate_spec(with_shm_size(1 << 30))
    shm = next(m for m in spec["mounts"] if m["destination"] == "/dev/shm")
    assert f"size={1 << 30}" in shm["options"]
    assert sum(o.startswith("size=") for o in shm["options"]) == 1


def test_cgroup_parent() -> None:
    assert parse_cgroup_parent("foo.slice") == "/foo.slice"
    assert parse_cgroup_parent("/a/b/") == "/a/b"
    for bad in ("", "/", "../x", "a:b:c"):
        with pytest.raises(InvalidArgument, match="--cgroup-parent"):
            parse_cgroup_parent(bad)
    spec = generate_spec(with_cgroups_path("/ctl/default/abc"), with_cgroup_parent("/my"))
    assert spec["linux"]["cgroupsPath"] == "/my/abc"


def test_cdi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(cdi.SPEC_DIRS_ENV, f"{tmp_path / 'a'}:{tmp_path / 'b'}")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    doc = {
        "cdiVersion": "0.6.0",
        "kind": "vendor.com/dev",
        "containerEdits": {"env": ["FILE=1"]},
        "devices": [
            {
                "name": "null",
                "containerEdits": {
                    "deviceNodes": [
                        {"path": "/dev/n", "hostPath": "/dev/null", "permissions": "r"}
                    ],
                    "hooks": [{"hookName": "createContainer", "path": "/bin/true"}],
                    "mounts": [{"hostPath": "/tmp", "containerPath": "/t"}],
                    "additionalGids": [7],
                },
            },
            {"name": "other", "containerEdits": {"env": ["OTHER=1"]}},
        ],
    }
    (tmp_path / "a" / "v.json").write_text(json.dumps(doc))
    (tmp_path / "b" / "broken.yaml").write_text("kind: vendor.com/x\n")
    spec = generate_spec(cdi.with_cdi_devices(["vendor.com/dev=null", "vendor.com/dev=other"]))
    assert spec["process"]["env"].count("FILE=1") == 1
    assert "OTHER=1" in spec["process"]["env"]
    assert spec["linux"]["devices"][-1]["major"] == 1
    assert spec["linux"]["resources"]["devices"][-1]["access"] == "r"
    assert spec["hooks"] == {"createContainer": [{"path": "/bin/true"}]}
    assert spec["mounts"][-1]["destination"] == "/t"
    assert 7 in spec["process"]["user"]["additionalGids"]
    with pytest.raises(NotFound, match=r"vendor\.com/dev=nope") as err:
        cdi.resolve(["vendor.com/dev=nope"])
    assert "broken.yaml" in str(err.value.hint)


@pytest.mark.parametrize(
    "edits",
    [
        {"env": "A=1"},
        {"mounts": [{"hostPath": "/tmp"}]},
        {"hooks": [{"hookName": "sometime", "path": "/bin/true"}]},
        {"deviceNodes": [{"path": "dev/x"}]},
        {"deviceNodes": [{"path": "/dev/x", "major": "1"}]},
        {"additionalGids": ["wheel"]},
    ],
)
def test_cdi_refuses_edits_it_cannot_apply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edits: dict[str, object]
) -> None:
    monkeypatch.setenv(cdi.SPEC_DIRS_ENV, str(tmp_path))
    doc = {"kind": "vendor.com/dev", "devices": [{"name": "x", "containerEdits": edits}]}
    (tmp_path / "v.json").write_text(json.dumps(doc))
    with pytest.raises(InvalidArgument, match="CDI"):
        cdi.with_cdi_devices(["vendor.com/dev=x"])
