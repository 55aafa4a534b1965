"""Tests of ctl.containers: the run configuration record and how flags become spec options."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctl.containers.container import Container, PortMapping, RestartPolicy, RunConfig
from ctl.containers.create import FLAG_OPTS, ContainerOptions, container_spec, flag_opts
from ctl.errdefs import InvalidArgument
from ctl.runtime import spec as oci
from ctl.runtime.runopts import SecurityOptions

IMAGE_CONFIG = {"config": {"Cmd": ["sh"], "Env": [oci.DEFAULT_PATH_ENV]}}


def test_run_config_round_trips_through_json() -> None:
    config = RunConfig(
        tty=True,
        stdin=True,
        rm=False,
        restart=RestartPolicy("on-failure", 3),
        network="bridge",
        publish=(PortMapping("", 8080, 80, "tcp"),),
        hostname="web",
        args=("sh", "-c", "true"),
        entrypoint=(),
    )
    assert RunConfig.from_json(config.to_json()) == config


def test_a_record_keeps_the_json_shape_of_before() -> None:
    """Records written before RunConfig have this ``config`` object: it loads, and is kept."""
    old = {
        "tty": False,
        "stdin": True,
        "rm": True,
        "restart": None,
        "network": "bridge",
        "publish": [{"host_ip": "", "host_port": 8080, "container_port": 80, "protocol": "tcp"}],
        "hostname": None,
        "args": ["sleep", "60"],
        "entrypoint": None,
    }
    record = {"id": "a" * 64, "name": "web", "spec": {}, "config": old}
    container = Container.from_record(record)
    assert container.config.stdin and container.config.rm
    assert container.config.publish == (PortMapping("", 8080, 80, "tcp"),)
    assert container.config.entrypoint is None
    assert container.to_record()["config"] == old


def test_a_record_without_config_fields_reads_defaults() -> None:
    container = Container.from_record({"id": "a" * 64, "name": "web", "config": {"tty": True}})
    assert container.config == RunConfig(tty=True, network="none")
    assert Container.from_record({"id": "a" * 64, "name": "web"}).config == RunConfig()


def test_every_flag_opt_reads_option_fields() -> None:
    for fields, _ in FLAG_OPTS:
        assert set(fields) <= set(ContainerOptions._fields)


def test_default_options_add_no_spec_option() -> None:
    assert flag_opts(ContainerOptions()) == []
    assert flag_opts(ContainerOptions(cgroupns="private", workdir="")) != []


def test_flags_become_spec_options(tmp_path: Path) -> None:
    options = ContainerOptions(
        args=("sleep", "1"),
        env=("A=1",),
        workdir="/srv",
        tty=True,
        read_only=True,
        cap_drop=("ALL",),
        cap_add=("NET_ADMIN",),
        security=SecurityOptions(no_new_privileges=True),
        memory=64 << 20,
        pids_limit=100,
        network="host",
        labels={"k": "v"},
    )
    spec = container_spec(options, IMAGE_CONFIG, tmp_path, "c" * 64, "default", tmp_path)
    process, linux = spec["process"], spec["linux"]
    assert process["args"] == ["sleep", "1"] and "A=1" in process["env"]
    assert process["cwd"] == "/srv" and process["terminal"] is True
    assert process["noNewPrivileges"] is True
    assert process["capabilities"]["bounding"] == ["CAP_NET_ADMIN"]
    assert spec["root"]["readonly"] is True
    assert linux["resources"]["memory"]["limit"] == 64 << 20
    assert linux["resources"]["pids"]["limit"] == 100
    assert "network" not in {n["type"] for n in linux["namespaces"]}
    assert spec["annotations"]["k"] == "v"
    assert linux["cgroupsPath"] == f"/ctl/default/{'c' * 64}"


def test_bridge_network_keeps_its_own_namespace(tmp_path: Path) -> None:
    spec = container_spec(ContainerOptions(), IMAGE_CONFIG, tmp_path, "c" * 64, "ns", tmp_path)
    assert "network" in {n["type"] for n in spec["linux"]["namespaces"]}


@pytest.mark.parametrize("memory", [0, 1 << 20])
def test_a_memory_limit_below_the_minimum_is_refused(tmp_path: Path, memory: int) -> None:
    with pytest.raises(InvalidArgument, match="below the minimum"):
        container_spec(
            ContainerOptions(memory=memory), IMAGE_CONFIG, tmp_path, "c" * 64, "ns", tmp_path
        )
