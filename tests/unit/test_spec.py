"""Tests of ctl.runtime.spec: the default spec and each option, pure (no root, no runc).

tests/integration/test_spec_runc.py hands generated specs to the real runc.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from ctl.containers.container import MountSpec
from ctl.errdefs import FailedPrecondition, InvalidArgument, NotFound
from ctl.runtime import spec as oci
from ctl.runtime.runopts import parse_mount, parse_volume
from ctl.runtime.spec import (
    ALL_CAPABILITIES,
    ANNOTATION_STOP_SIGNAL,
    DEFAULT_CAPABILITIES,
    DEFAULT_PATH_ENV,
    INIT_PATH,
    Spec,
    default_spec,
    generate_spec,
    host_capabilities,
    merge_env,
    normalize_capability,
    stop_signal,
    with_annotations,
    with_capabilities,
    with_cgroups_path,
    with_cpus,
    with_cwd,
    with_env,
    with_host_network,
    with_hostname,
    with_hosts_files,
    with_image_config,
    with_init,
    with_memory_limit,
    with_mounts,
    with_no_new_privileges,
    with_pids_limit,
    with_privileged,
    with_process_args,
    with_readonly_rootfs,
    with_rlimits,
    with_seccomp_unconfined,
    with_tty,
    with_user,
)

PASSWD = "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n"
GROUP = "root:x:0:\nwheel:x:10:root,alice\nalice:x:1000:\n"


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    return root


def image_config(**config: Any) -> dict[str, Any]:
    return {"architecture": "amd64", "os": "linux", "config": config}


def mounts_at(spec: Spec, destination: str) -> list[dict[str, Any]]:
    return [m for m in spec["mounts"] if m["destination"] == destination]


# --- the default -------------------------------------------------------------------------


def test_default_spec_is_containerds_hardened_default() -> None:
    spec = default_spec()
    assert spec["ociVersion"] == "1.0.2"
    assert spec["root"] == {"path": "rootfs", "readonly": False}
    process = spec["process"]
    assert process["cwd"] == "/"
    assert process["user"] == {"uid": 0, "gid": 0}
    assert process["env"] == [DEFAULT_PATH_ENV]
    assert process["noNewPrivileges"] is False
    assert process["rlimits"] == [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]
    caps = process["capabilities"]
    assert len(DEFAULT_CAPABILITIES) == 14
    for key in ("bounding", "effective", "permitted"):
        assert caps[key] == list(DEFAULT_CAPABILITIES)
    assert caps["inheritable"] == [] and caps["ambient"] == []
    linux = spec["linux"]
    assert [n["type"] for n in linux["namespaces"]] == ["pid", "ipc", "uts", "mount", "network"]
    assert "/proc/kcore" in linux["maskedPaths"] and "/sys/firmware" in linux["maskedPaths"]
    assert "/proc/sys" in linux["readonlyPaths"]
    devices = linux["resources"]["devices"]
    assert devices[0] == {"allow": False, "access": "rwm"}
    allowed = {(d["major"], d.get("minor")) for d in devices[1:] if d["allow"]}
    assert {(1, 3), (1, 5), (1, 8), (1, 9), (5, 0), (5, 2), (136, None)} <= allowed
    assert [m["destination"] for m in spec["mounts"]] == [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
        "/sys/fs/cgroup",
        "/run",
    ]
    assert "ro" in mounts_at(spec, "/sys")[0]["options"]
    assert mounts_at(spec, "/sys/fs/cgroup")[0]["type"] == "cgroup"
    assert "ro" in mounts_at(spec, "/sys/fs/cgroup")[0]["options"]
    assert "hostname" not in spec and "cgroupsPath" not in linux


def test_default_spec_is_fresh_each_time_and_json() -> None:
    first = default_spec()
    first["process"]["capabilities"]["bounding"].clear()
    first["mounts"].clear()
    second = default_spec()
    assert second["process"]["capabilities"]["bounding"] == list(DEFAULT_CAPABILITIES)
    assert second["process"]["capabilities"]["effective"] == list(DEFAULT_CAPABILITIES)
    assert len(second["mounts"]) == 8
    assert json.loads(json.dumps(second)) == second


def test_all_capabilities_are_in_kernel_number_order() -> None:
    assert ALL_CAPABILITIES.index("CAP_CHOWN") == 0
    assert ALL_CAPABILITIES.index("CAP_SYS_ADMIN") == 21
    assert ALL_CAPABILITIES.index("CAP_AUDIT_READ") == 37
    assert ALL_CAPABILITIES.index("CAP_CHECKPOINT_RESTORE") == 40
    assert set(DEFAULT_CAPABILITIES) <= set(ALL_CAPABILITIES)


def test_generate_spec_applies_options_in_order() -> None:
    spec = generate_spec(with_cwd("/a"), with_cwd("/b"))
    assert spec["process"]["cwd"] == "/b"


# --- image config ------------------------------------------------------------------------


def test_with_image_config(rootfs: Path) -> None:
    config = image_config(
        Env=["PATH=/image/bin", "LANG=C.UTF-8"],
        Entrypoint=["/entry.sh"],
        Cmd=["serve", "--port", "80"],
        WorkingDir="/srv",
        User="alice",
        StopSignal="SIGQUIT",
    )
    spec = generate_spec(with_image_config(config, rootfs))
    process = spec["process"]
    assert process["env"] == ["PATH=/image/bin", "LANG=C.UTF-8"]
    assert process["args"] == ["/entry.sh", "serve", "--port", "80"]
    assert process["cwd"] == "/srv"
    assert process["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [1000, 10]}
    assert spec["annotations"][ANNOTATION_STOP_SIGNAL] == "SIGQUIT"
    assert stop_signal(spec) == signal.SIGQUIT


def test_with_image_config_defaults(rootfs: Path) -> None:
    spec = generate_spec(with_image_config(image_config(Cmd=["sh"], Env=["A=1"]), rootfs))
    process = spec["process"]
    # An image without PATH gets the default one, as docker gives it.
    assert process["env"] == [DEFAULT_PATH_ENV, "A=1"]
    assert process["cwd"] == "/"
    assert process["user"] == {"uid": 0, "gid": 0, "additionalGids": [0, 10]}
    assert stop_signal(spec) == signal.SIGTERM
    assert "annotations" not in spec


@pytest.mark.parametrize(
    ("args", "entrypoint", "want"),
    [
        ((), None, ["/ep", "cmd"]),
        (("run", "x"), None, ["/ep", "run", "x"]),
        ((), ["/other"], ["/other"]),
        (("a",), ["/other"], ["/other", "a"]),
        (("sh",), [], ["sh"]),
    ],
)
def test_with_image_config_command_as_docker_builds_it(
    rootfs: Path, args: tuple[str, ...], entrypoint: list[str] | None, want: list[str]
) -> None:
    config = image_config(Entrypoint=["/ep"], Cmd=["cmd"])
    spec = generate_spec(with_image_config(config, rootfs, args=args, entrypoint=entrypoint))
    assert spec["process"]["args"] == want


def test_with_image_config_user_flag_overrides_image_user(rootfs: Path) -> None:
    # The image's user does not exist; -u replaces it, so it is never looked up.
    config = image_config(Cmd=["sh"], User="ghost")
    spec = generate_spec(with_image_config(config, rootfs, user="1000:10"))
    assert spec["process"]["user"] == {"uid": 1000, "gid": 10, "additionalGids": [10]}
    with pytest.raises(NotFound, match="ghost"):
        generate_spec(with_image_config(config, rootfs))


def test_with_image_config_relative_workdir_is_made_absolute(rootfs: Path) -> None:
    spec = generate_spec(with_image_config(image_config(Cmd=["x"], WorkingDir="app/"), rootfs))
    assert spec["process"]["cwd"] == "/app"


@pytest.mark.parametrize(
    "config",
    [
        image_config(),
        image_config(Cmd=[]),
        {"config": None},
        {},
        image_config(Entrypoint=["/ep"], Cmd=["c"]) | {"_entrypoint": []},
    ],
)
def test_with_image_config_without_command(rootfs: Path, config: dict[str, Any]) -> None:
    entrypoint: list[str] | None = [] if "_entrypoint" in config else None
    opt = with_image_config(config, rootfs, entrypoint=entrypoint)
    with pytest.raises(InvalidArgument, match="no command"):
        generate_spec(opt)


@pytest.mark.parametrize(
    "config",
    [
        image_config(Cmd="sh -c true"),
        image_config(Cmd=["sh", 1]),
        image_config(Cmd=["sh"], Env={"A": "1"}),
        image_config(Cmd=["sh"], WorkingDir=["/"]),
        image_config(Cmd=["sh"], User=0),
        image_config(Cmd=["sh"], StopSignal="SIGNOPE"),
    ],
)
def test_with_image_config_rejects_malformed_configs(rootfs: Path, config: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument):
        generate_spec(with_image_config(config, rootfs))


def test_flags_after_image_config_win(rootfs: Path) -> None:
    config = image_config(Cmd=["sh"], Env=["A=image", "TERM=vt100", "B=image"], WorkingDir="/i")
    spec = generate_spec(
        with_image_config(config, rootfs),
        with_env(["A=flag", "C=flag"]),
        with_cwd("/flag"),
        with_tty,
        with_hostname("box"),
    )
    process = spec["process"]
    assert process["env"] == [
        DEFAULT_PATH_ENV,
        "A=flag",
        "TERM=vt100",
        "B=image",
        "C=flag",
        "HOSTNAME=box",
    ]
    assert process["cwd"] == "/flag"
    assert process["terminal"] is True


# --- process -----------------------------------------------------------------------------


def test_with_process_args() -> None:
    assert generate_spec(with_process_args(["a", "b"]))["process"]["args"] == ["a", "b"]
    with pytest.raises(InvalidArgument):
        with_process_args([])


def test_with_user(rootfs: Path) -> None:
    spec = generate_spec(with_user("alice", rootfs))
    assert spec["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [1000, 10]}
    with pytest.raises(InvalidArgument):
        with_user("a:b:c", rootfs)
    with pytest.raises(NotFound):
        generate_spec(with_user("nobody", rootfs))


def test_merge_env() -> None:
    assert merge_env(["A=1", "B=2"], ["B=3", "C=4", "A="]) == ["A=", "B=3", "C=4"]
    with pytest.raises(InvalidArgument):
        merge_env([], ["NOVALUE"])
    with pytest.raises(InvalidArgument):
        generate_spec(with_env(["=x"]))


def test_with_tty_keeps_a_term_the_user_set() -> None:
    assert "TERM=xterm" in generate_spec(with_tty)["process"]["env"]
    spec = generate_spec(with_env(["TERM=dumb"]), with_tty)
    assert [e for e in spec["process"]["env"] if e.startswith("TERM=")] == ["TERM=dumb"]


def test_with_cwd() -> None:
    assert generate_spec(with_cwd("/a/../b/"))["process"]["cwd"] == "/b"
    with pytest.raises(InvalidArgument, match="absolute"):
        with_cwd("relative")


def test_with_hostname() -> None:
    spec = generate_spec(with_hostname("web-1.example"))
    assert spec["hostname"] == "web-1.example"
    assert "HOSTNAME=web-1.example" in spec["process"]["env"]
    for bad in ("", "-x", "a_b", "a b", "x" * 65, "a..b"):
        with pytest.raises(InvalidArgument, match="hostname"):
            with_hostname(bad)


def test_with_rlimits() -> None:
    spec = generate_spec(with_rlimits({"NOFILE": (100, 200), "rlimit_nproc": (5, 5)}))
    assert spec["process"]["rlimits"] == [
        {"type": "RLIMIT_NOFILE", "hard": 200, "soft": 100},
        {"type": "RLIMIT_NPROC", "hard": 5, "soft": 5},
    ]
    with pytest.raises(InvalidArgument, match="unknown rlimit"):
        with_rlimits({"FILES": (1, 1)})
    with pytest.raises(InvalidArgument, match="soft"):
        with_rlimits({"NOFILE": (2, 1)})


def test_with_annotations() -> None:
    spec = generate_spec(with_annotations({"a": "1"}), with_annotations({"a": "2", "b": "3"}))
    assert spec["annotations"] == {"a": "2", "b": "3"}


# --- capabilities and privileges ---------------------------------------------------------


def caps(spec: Spec) -> list[str]:
    c = spec["process"]["capabilities"]
    assert c["bounding"] == c["effective"] == c["permitted"]
    return list(c["bounding"])


def test_normalize_capability() -> None:
    assert normalize_capability("net_admin") == "CAP_NET_ADMIN"
    assert normalize_capability("CAP_NET_ADMIN") == "CAP_NET_ADMIN"
    assert normalize_capability("all") == "ALL"
    with pytest.raises(InvalidArgument, match="unknown capability"):
        normalize_capability("CAP_FLY")


def test_with_capabilities_docker_rules() -> None:
    spec = generate_spec(with_capabilities(add=["NET_ADMIN"], drop=["CAP_CHOWN", "mknod"]))
    got = caps(spec)
    assert "CAP_NET_ADMIN" in got and "CAP_CHOWN" not in got and "CAP_MKNOD" not in got
    assert len(got) == 13
    # A capability both added and dropped is kept, as in docker.
    assert "CAP_KILL" in caps(generate_spec(with_capabilities(add=["KILL"], drop=["KILL"])))
    assert caps(generate_spec(with_capabilities(add=["KILL"], drop=["ALL"]))) == ["CAP_KILL"]
    assert caps(generate_spec(with_capabilities(drop=["ALL"]))) == []
    every = caps(generate_spec(with_capabilities(add=["ALL"], drop=["SYS_ADMIN"])))
    assert every == [c for c in host_capabilities() if c != "CAP_SYS_ADMIN"]
    with pytest.raises(InvalidArgument):
        with_capabilities(add=["NOPE"])


def test_with_capabilities_filters_inheritable_and_ambient() -> None:
    spec = default_spec()
    spec["process"]["capabilities"]["ambient"] = ["CAP_KILL", "CAP_CHOWN"]
    with_capabilities(drop=["KILL"])(spec)
    assert spec["process"]["capabilities"]["ambient"] == ["CAP_CHOWN"]


def test_host_capabilities_match_this_process() -> None:
    with open("/proc/self/status") as f:
        mask = int(next(line for line in f if line.startswith("CapBnd:")).split()[1], 16)
    assert sum(1 << ALL_CAPABILITIES.index(c) for c in host_capabilities()) == mask & (
        (1 << len(ALL_CAPABILITIES)) - 1
    )


def test_with_privileged() -> None:
    spec = generate_spec(with_privileged)
    assert caps(spec) == list(host_capabilities())
    assert spec["linux"]["maskedPaths"] == [] and spec["linux"]["readonlyPaths"] == []
    assert spec["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    assert "ro" not in mounts_at(spec, "/sys")[0]["options"]
    dev = mounts_at(spec, "/dev")
    assert dev == [
        {
            "destination": "/dev",
            "type": "bind",
            "source": "/dev",
            "options": ["rbind", "nosuid", "rw"],
        }
    ]


def test_with_no_new_privileges_and_seccomp_unconfined() -> None:
    assert generate_spec(with_no_new_privileges)["process"]["noNewPrivileges"] is True
    spec = default_spec()
    spec["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ERRNO"}
    with_seccomp_unconfined(spec)
    assert "seccomp" not in spec["linux"]
    with_seccomp_unconfined(spec)  # nothing to remove is fine


def test_with_readonly_rootfs() -> None:
    assert generate_spec(with_readonly_rootfs)["root"] == {"path": "rootfs", "readonly": True}


# --- mounts ------------------------------------------------------------------------------


def test_with_mounts(tmp_path: Path) -> None:
    src = str(tmp_path)
    spec = generate_spec(
        with_mounts(
            [
                parse_volume(f"{src}:/data/sub:ro"),
                parse_mount(f"type=bind,src={src},dst=/data,bind-propagation=rslave"),
                parse_mount("type=tmpfs,dst=/scratch,tmpfs-size=1m,tmpfs-mode=1777"),
            ]
        )
    )
    added = spec["mounts"][8:]
    # Parents before children, whatever order the flags came in.
    assert added == [
        {
            "destination": "/data",
            "type": "bind",
            "source": src,
            "options": ["rbind", "rw", "rslave"],
        },
        {
            "destination": "/scratch",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "nodev", "noexec", "rw", "size=1048576", "mode=1777"],
        },
        {"destination": "/data/sub", "type": "bind", "source": src, "options": ["rbind", "ro"]},
    ]


def test_with_mounts_replaces_a_default_mount(tmp_path: Path) -> None:
    spec = generate_spec(with_mounts([MountSpec("tmpfs", "/run/", tmpfs_size=1 << 20)]))
    run = mounts_at(spec, "/run")
    assert len(run) == 1 and "size=1048576" in run[0]["options"]


def test_with_mounts_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="duplicate mount point /x"):
        with_mounts([MountSpec("tmpfs", "/x"), MountSpec("tmpfs", "/x/")])
    with pytest.raises(NotFound, match="bind source"):
        with_mounts([MountSpec("bind", "/x", str(tmp_path / "missing"))])


def test_with_hosts_files_leave_user_mounts_alone(tmp_path: Path) -> None:
    hosts, hostname, resolv = tmp_path / "hosts", tmp_path / "hostname", tmp_path / "resolv.conf"
    files = with_hosts_files(hosts=hosts, hostname=hostname, resolv_conf=resolv)
    spec = generate_spec(with_mounts([MountSpec("bind", "/etc/hosts", str(tmp_path))]), files)
    assert mounts_at(spec, "/etc/hosts")[0]["source"] == str(tmp_path)
    assert mounts_at(spec, "/etc/hostname") == [
        {
            "destination": "/etc/hostname",
            "type": "bind",
            "source": str(hostname),
            "options": ["rbind", "rw"],
        }
    ]
    assert mounts_at(spec, "/etc/resolv.conf")[0]["source"] == str(resolv)


def test_with_init() -> None:
    spec = generate_spec(with_process_args(["sh", "-c", "x"]), with_init(Path("/usr/bin/init")))
    assert spec["process"]["args"] == [INIT_PATH, "--", "sh", "-c", "x"]
    assert mounts_at(spec, INIT_PATH) == [
        {
            "destination": INIT_PATH,
            "type": "bind",
            "source": "/usr/bin/init",
            "options": ["bind", "ro", "nosuid", "nodev"],
        }
    ]
    with pytest.raises(InvalidArgument, match="no command"):
        generate_spec(with_init(Path("/usr/bin/init")))


def test_find_init_binary(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert oci.find_init_binary().is_file()  # catatonit comes with podman
    monkeypatch.setattr(oci, "INIT_BINARIES", (str(tmp_path / "none"),))
    with pytest.raises(FailedPrecondition) as info:
        oci.find_init_binary()
    assert info.value.hint == "apt-get install catatonit"


# --- resources, namespaces ---------------------------------------------------------------


def test_resource_limits() -> None:
    spec = generate_spec(
        with_memory_limit(512 << 20),
        with_cpus(1.5),
        with_pids_limit(100),
        with_cgroups_path("/ctl/default/abc"),
    )
    resources = spec["linux"]["resources"]
    assert resources["memory"] == {"limit": 512 << 20}
    assert resources["cpu"] == {"quota": 150000, "period": 100000}
    assert resources["pids"] == {"limit": 100}
    assert spec["linux"]["cgroupsPath"] == "/ctl/default/abc"
    assert (
        "pids" not in generate_spec(with_pids_limit(100), with_pids_limit(-1))["linux"]["resources"]
    )
    with pytest.raises(InvalidArgument, match="6 MiB"):
        with_memory_limit(1 << 20)
    with pytest.raises(InvalidArgument, match="cpus"):
        with_cpus(0.001)


def test_with_host_network() -> None:
    spec = generate_spec(with_host_network)
    assert [n["type"] for n in spec["linux"]["namespaces"]] == ["pid", "ipc", "uts", "mount"]
