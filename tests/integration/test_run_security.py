"""Issue 11, docker's defaults inside every container and the security flags, seen from inside.

/sys/fs/cgroup shows the container's own limits, read-only (rw when
privileged); docker's seccomp profile is on unless unconfined or privileged,
a profile file loads, and capability-conditional rules follow --cap-add;
--cgroupns and --runtime are kept, and bad values create nothing.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING

import pytest

from ctl.runtime import apparmor
from ctl.runtime.cgroups import is_v2
from tests.helpers import ctl_proc

if TYPE_CHECKING:
    from pathlib import Path

    from tests.helpers import CtlResult
    from tests.images import CanonicalImages

pytestmark = pytest.mark.needs_root


# The container's memory and pids limits, as its /sys/fs/cgroup shows them on v2 and v1.
MEMORY_MAX = (
    "/sys/fs/cgroup/memory.max" if is_v2() else "/sys/fs/cgroup/memory/memory.limit_in_bytes"
)
PIDS_MAX = "/sys/fs/cgroup/pids.max" if is_v2() else "/sys/fs/cgroup/pids/pids.max"
CGROUP_MOUNT = "/sys/fs/cgroup" if is_v2() else "/sys/fs/cgroup/memory"


def run(root: Path, image: str, *argv: str) -> CtlResult:
    return ctl_proc(
        "run", "--rm", "--net", "none", *argv[:-1], image, "sh", "-c", argv[-1], root=root
    )


def test_sys_fs_cgroup_shows_the_container_limit_read_only(
    root: Path, images: CanonicalImages
) -> None:
    script = f"cat {MEMORY_MAX}; touch {CGROUP_MOUNT}/x"
    result = run(root, images.busybox_ref, "--memory", "64m", script)
    assert result.stdout.split()[0] == str(64 << 20), result
    assert "Read-only file system" in result.stderr
    pids = run(root, images.busybox_ref, "--pids-limit", "42", f"cat {PIDS_MAX}")
    assert pids.assert_success().stdout.strip() == "42"


def test_privileged_gets_a_writable_cgroup_mount(root: Path, images: CanonicalImages) -> None:
    result = run(root, images.busybox_ref, "--privileged", f"grep ' {CGROUP_MOUNT} ' /proc/mounts")
    assert " rw," in result.assert_success().stdout


def test_cgroupns_private_and_host(root: Path, images: CanonicalImages) -> None:
    host_ns = os.readlink("/proc/self/ns/cgroup")
    private = run(
        root, images.busybox_ref, "--cgroupns", "private", "readlink /proc/self/ns/cgroup"
    )
    assert private.assert_success().stdout.strip() != host_ns
    limit = run(
        root,
        images.busybox_ref,
        "--cgroupns",
        "private",
        "--memory",
        "64m",
        f"cat {MEMORY_MAX}",
    )
    assert limit.assert_success().stdout.strip() == str(64 << 20)
    shared = run(root, images.busybox_ref, "--cgroupns", "host", "readlink /proc/self/ns/cgroup")
    assert shared.assert_success().stdout.strip() == host_ns
    # docker's default: private on cgroup v2, the host's on v1.
    default = run(root, images.busybox_ref, "readlink /proc/self/ns/cgroup").assert_success()
    assert (default.stdout.strip() != host_ns) == is_v2()


def test_default_seccomp_profile_filters_and_blocks(root: Path, images: CanonicalImages) -> None:
    status = run(root, images.busybox_ref, "grep Seccomp: /proc/self/status")
    assert status.assert_success().stdout.split() == ["Seccomp:", "2"]
    blocked = run(root, images.busybox_ref, "unshare -U true")
    assert blocked.code != 0 and "Operation not permitted" in blocked.stderr, blocked


def test_seccomp_follows_cap_add_as_docker(root: Path, images: CanonicalImages) -> None:
    # unshare is allowed only with CAP_SYS_ADMIN in docker's profile.
    run(root, images.busybox_ref, "--cap-add", "SYS_ADMIN", "unshare -U true").assert_success()


@pytest.mark.parametrize("flags", [("--security-opt", "seccomp=unconfined"), ("--privileged",)])
def test_unconfined_and_privileged_have_no_filter(
    root: Path, images: CanonicalImages, flags: tuple[str, ...]
) -> None:
    status = run(
        root, images.busybox_ref, *flags, "grep Seccomp: /proc/self/status; unshare -U true"
    )
    assert status.assert_success().stdout.split() == ["Seccomp:", "0"]


def test_seccomp_profile_file(root: Path, images: CanonicalImages, tmp_path: Path) -> None:
    profile = tmp_path / "profile.json"
    # Everything allowed but mkdir/mkdirat, which fail with EACCES (13).
    profile.write_text(
        json.dumps(
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "archMap": [
                    {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]}
                ],
                "syscalls": [
                    {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}
                ],
            }
        )
    )
    result = run(root, images.busybox_ref, "--security-opt", f"seccomp={profile}", "mkdir /tmp/x")
    assert result.code != 0 and "Permission denied" in result.stderr, result


def test_apparmor_profile_only_where_the_host_has_apparmor(
    root: Path, images: CanonicalImages
) -> None:
    ctl_proc("create", "--name", "aa", images.busybox_ref, "true", root=root).assert_success()
    doc = json.loads(ctl_proc("inspect", "aa", root=root).assert_success().stdout)[0]
    label = "cat /proc/self/attr/current"
    if apparmor.host_supports():
        # The VM lane: the profile is loaded, and the container runs under it.
        assert doc["Spec"]["process"]["apparmorProfile"] == apparmor.DEFAULT_PROFILE
        assert apparmor.is_loaded(apparmor.DEFAULT_PROFILE)
        confined = run(root, images.busybox_ref, label).assert_success()
        assert confined.stdout.strip() == f"{apparmor.DEFAULT_PROFILE} (enforce)"
        denied = run(root, images.busybox_ref, "echo x > /proc/sysrq-trigger")
        assert denied.code != 0, denied
        unconfined = run(root, images.busybox_ref, "--security-opt", "apparmor=unconfined", label)
        assert unconfined.assert_success().stdout.strip() == "unconfined"
    else:
        assert "apparmorProfile" not in doc["Spec"]["process"]
        # Accepted and without effect, as with docker.
        run(
            root, images.busybox_ref, "--security-opt", "apparmor=unconfined", "true"
        ).assert_success()


def test_runtime_is_kept_and_used(root: Path, images: CanonicalImages, tmp_path: Path) -> None:
    # A wrapper that logs each call and runs runc: the container's task uses it all its life.
    log = tmp_path / "calls"
    wrapper = tmp_path / "my-runtime"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec runc "$@"\n')
    wrapper.chmod(0o755)
    ctl_proc(
        "run",
        "-d",
        "--name",
        "w",
        "--net",
        "none",
        "--runtime",
        str(wrapper),
        images.busybox_ref,
        "sleep",
        "60",
        root=root,
    ).assert_success()
    ctl_proc("exec", "w", "true", root=root).assert_success()
    doc = json.loads(ctl_proc("inspect", "w", root=root).assert_success().stdout)[0]
    assert doc["HostConfig"]["Runtime"] == str(wrapper)
    ctl_proc("system", "check", root=root).assert_success()  # runs `state` through it
    ctl_proc("rm", "-f", "w", root=root).assert_success()
    calls = log.read_text()
    assert " run " in calls or " create " in calls
    assert " exec " in calls and " state " in calls and " delete " in calls


def test_runtime_from_ctl_runtime_env(root: Path, images: CanonicalImages) -> None:
    result = ctl_proc(
        "create", images.busybox_ref, "true", root=root, env={"CTL_RUNTIME": "no-such-runtime"}
    )
    assert result.code == 125 and result.stderr.count("\n") == 1
    assert "--runtime: OCI runtime 'no-such-runtime'" in result.stderr


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (("--runtime", "/nonexistent/crun"), "--runtime"),
        (("--cgroupns", "shared"), "--cgroupns"),
        (("--security-opt", "seccomp=/nonexistent.json"), "--security-opt"),
        (("--security-opt", "label=type:svirt_t"), "--security-opt"),
        (("--isolation", "hyperv"), "--isolation"),
        (("--cpu-count", "2"), "--cpu-count"),
        (("--use-api-socket",), "--use-api-socket"),
    ],
)
def test_bad_values_create_nothing(
    root: Path, images: CanonicalImages, flags: tuple[str, ...], named: str
) -> None:
    result = ctl_proc("run", *flags, images.busybox_ref, "true", root=root)
    assert result.code == 125, result
    assert result.stderr.startswith("ctl: ") and result.stderr.count("\n") == 1, result
    assert named in result.stderr
    assert ctl_proc("ps", "-a", "-q", root=root).assert_success().stdout == ""


def test_runtime_crun(root: Path, images: CanonicalImages) -> None:
    # crun runs containers on cgroup v2 (the VM lane) and refuses hybrid v1 hosts.
    result = run(root, images.busybox_ref, "--runtime", "crun", "--memory", "64m", "echo hi")
    if is_v2():
        assert result.assert_success().stdout == "hi\n"
    else:
        assert result.code == 125 and result.stderr.count("\n") == 1, result
        assert result.stderr.startswith("ctl: ") and "hybrid" in result.stderr
    assert ctl_proc("ps", "-a", "-q", root=root).assert_success().stdout == ""


def test_systempaths_unconfined_and_label_disable(root: Path, images: CanonicalImages) -> None:
    # /proc/keys is masked (a file bound over it) and /proc/sys read-only, unless unconfined.
    script = "grep -cE ' /proc/(keys|sys) ' /proc/mounts || true"
    masked = run(root, images.busybox_ref, script).assert_success()
    assert masked.stdout.strip() == "2"
    opened = run(
        root,
        images.busybox_ref,
        "--security-opt",
        "systempaths=unconfined",
        "--security-opt",
        "label=disable",
        script,
    )
    assert opened.assert_success().stdout.strip() == "0"
