"""Issue 11's security group without a container: profiles, options and flags as data."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

import pytest

from ctl.containers.container import RunConfig
from ctl.errdefs import InvalidArgument, NotFound
from ctl.runtime import apparmor
from ctl.runtime.runc import Runc, find_runtime
from ctl.runtime.runopts import SecurityOptions, parse_security_opt
from ctl.runtime.seccomp import DEFAULT_PROFILE, oci_seccomp
from ctl.runtime.spec import (
    DEFAULT_CAPABILITIES,
    default_spec,
    generate_spec,
    with_capabilities,
    with_cgroupns,
    with_privileged,
    with_security,
)

if TYPE_CHECKING:
    from pathlib import Path


def allowed(seccomp: dict[str, Any]) -> set[str]:
    return {
        name
        for rule in seccomp["syscalls"]
        if rule["action"] == "SCMP_ACT_ALLOW"
        for name in rule["names"]
    }


def test_default_profile_for_default_capabilities() -> None:
    seccomp = oci_seccomp(DEFAULT_PROFILE, DEFAULT_CAPABILITIES, arch="amd64", kernel="6.1.0")
    assert seccomp is not None
    assert seccomp["defaultAction"] == "SCMP_ACT_ERRNO" and seccomp["defaultErrnoRet"] == 1
    assert seccomp["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    names = allowed(seccomp)
    assert {"read", "execve", "clone", "chroot", "arch_prctl", "ptrace"} <= names
    assert not {"unshare", "mount", "setns", "keyctl", "add_key", "reboot", "bpf"} & names
    # clone3 fails with ENOSYS, so that libc falls back to clone.
    assert any(r["names"] == ["clone3"] and r.get("errnoRet") == 38 for r in seccomp["syscalls"])
    assert all(set(rule) <= {"names", "action", "errnoRet", "args"} for rule in seccomp["syscalls"])


def test_default_profile_follows_capabilities_arch_and_kernel() -> None:
    caps = [*DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"]
    admin = oci_seccomp(DEFAULT_PROFILE, caps, arch="amd64", kernel="6.1.0")
    assert admin is not None and {"unshare", "mount", "setns", "clone3"} <= allowed(admin)
    assert not any(r.get("errnoRet") == 38 for r in admin["syscalls"])
    arm = oci_seccomp(DEFAULT_PROFILE, DEFAULT_CAPABILITIES, arch="arm64", kernel="6.1.0")
    assert arm is not None and arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]
    assert "arch_prctl" not in allowed(arm)
    old = oci_seccomp(DEFAULT_PROFILE, DEFAULT_CAPABILITIES, arch="amd64", kernel="4.4.0-1-amd64")
    assert old is not None and "ptrace" not in allowed(old)


@pytest.mark.parametrize(
    ("profile", "match"),
    [
        ({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["A"], "archMap": [{}]}, "either"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "a", "names": ["b"]}]}, "both"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["a"]}]}, "needs names"),
        ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": "read"}, "not a list"),
        ([], "not a JSON object"),
    ],
)
def test_malformed_profiles(profile: Any, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        oci_seccomp(profile, ())


def test_profile_without_rules_is_no_filter() -> None:
    assert oci_seccomp({}, ()) is None
    one = oci_seccomp(
        {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"name": "a", "action": "X"}]}, ()
    )
    assert one is not None and one["syscalls"] == [{"names": ["a"], "action": "X"}]


def test_parse_security_opt_profiles(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    profile = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": []}
    path.write_text(json.dumps(profile))
    assert parse_security_opt([f"seccomp={path}"]).seccomp_profile == profile
    assert parse_security_opt([f"seccomp={path}", "seccomp=builtin"]) == SecurityOptions()
    both = parse_security_opt(["apparmor=unconfined", "seccomp=unconfined", "label=disable"])
    assert both == SecurityOptions(seccomp_unconfined=True, apparmor="unconfined")
    paths = parse_security_opt(["systempaths=unconfined"])
    assert paths == SecurityOptions(systempaths_unconfined=True)
    opened = generate_spec(with_security(paths))["linux"]
    assert opened["maskedPaths"] == [] and opened["readonlyPaths"] == []
    (tmp_path / "bad.json").write_text("{")
    for bad in (tmp_path / "bad.json", tmp_path / "missing.json"):
        with pytest.raises(InvalidArgument, match=str(bad)):
            parse_security_opt([f"seccomp={bad}"])


def test_with_security_confines_unless_unconfined_or_privileged() -> None:
    assert "seccomp" not in default_spec()["linux"]
    confined = generate_spec(with_security(None))
    assert "unshare" not in allowed(confined["linux"]["seccomp"])
    admin = generate_spec(with_capabilities(add=["SYS_ADMIN"]), with_security(None))
    assert "unshare" in allowed(admin["linux"]["seccomp"])
    unconfined = generate_spec(with_security(SecurityOptions(seccomp_unconfined=True)))
    assert "seccomp" not in unconfined["linux"]
    privileged = generate_spec(with_privileged, with_security(None, privileged=True))
    assert "seccomp" not in privileged["linux"]
    profile = {"defaultAction": "SCMP_ACT_LOG"}
    given = generate_spec(
        with_privileged, with_security(SecurityOptions(seccomp_profile=profile), privileged=True)
    )
    assert given["linux"]["seccomp"]["defaultAction"] == "SCMP_ACT_LOG"
    # An empty profile is no filter, as docker reads it, not the default.
    empty = generate_spec(with_security(SecurityOptions(seccomp_profile={})))
    assert "seccomp" not in empty["linux"]
    nnp = generate_spec(with_security(SecurityOptions(no_new_privileges=True)))
    assert nnp["process"]["noNewPrivileges"] is True
    if not apparmor.host_supports():
        assert "apparmorProfile" not in nnp["process"]


def test_cgroup_mount_read_only_and_rw_when_privileged() -> None:
    def cgroup_mount(spec: dict[str, Any]) -> dict[str, Any]:
        return next(m for m in spec["mounts"] if m["destination"] == "/sys/fs/cgroup")

    assert cgroup_mount(default_spec())["type"] == "cgroup"
    assert "ro" in cgroup_mount(default_spec())["options"]
    assert "rw" in cgroup_mount(generate_spec(with_privileged))["options"]


def test_with_cgroupns() -> None:
    private = generate_spec(with_cgroupns("private"))
    assert {"type": "cgroup"} in private["linux"]["namespaces"]
    host = generate_spec(with_cgroupns("private"), with_cgroupns("host"))
    assert all(n["type"] != "cgroup" for n in host["linux"]["namespaces"])
    with pytest.raises(InvalidArgument, match="want host or private"):
        with_cgroupns("shared")


def test_apparmor_profile_text(tmp_path: Path) -> None:
    bare = apparmor.profile_text("p1", directory=str(tmp_path))
    assert bare.splitlines()[1] == "@{PROC}=/proc/" and "#include" not in bare
    assert 'profile "p1" flags=(attach_disconnected,mediate_deleted) {' in bare
    assert "  deny mount," in bare and 'peer="p1"' in bare and bare.endswith("}\n")
    for macro in ("abi/3.0", "tunables/global", "abstractions/base"):
        (tmp_path / macro).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / macro).write_text("")
    full = apparmor.profile_text("p1", directory=str(tmp_path))
    assert "abi <abi/3.0>," in full and "#include <tunables/global>" in full
    assert "  #include <abstractions/base>" in full


def test_apparmor_host_detection(tmp_path: Path) -> None:
    parameter = tmp_path / "enabled"
    assert not apparmor.host_supports(str(parameter), str(tmp_path))
    parameter.write_text("N\n")
    assert not apparmor.host_supports(str(parameter), str(tmp_path))
    (tmp_path / "profiles").write_text("ctl-default (enforce)\nmy profile (complain)\n")
    assert apparmor.is_loaded("ctl-default", str(tmp_path))
    assert apparmor.is_loaded("my profile", str(tmp_path))
    assert not apparmor.is_loaded("ctl", str(tmp_path))


def test_find_runtime(tmp_path: Path) -> None:
    assert os.path.isabs(find_runtime("sh"))
    script = tmp_path / "rt"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(NotFound, match="no such executable"):
        find_runtime(str(script))  # not executable
    script.chmod(0o755)
    assert find_runtime(str(script)) == str(script)
    with pytest.raises(NotFound):
        find_runtime("no-such-runtime-anywhere")


def test_runtime_in_the_record_and_the_driver(tmp_path: Path) -> None:
    config = RunConfig(runtime="/usr/bin/crun")
    assert RunConfig.from_json(config.to_json()) == config
    assert "runtime" not in RunConfig().to_json()
    crun = Runc(tmp_path, debug=True).with_binary("/usr/bin/crun")
    assert crun.argv("state", "x")[:3] == ["/usr/bin/crun", "--root", str(tmp_path)]
