"""Generated specs handed to the real runc with a busybox rootfs.

A spec that is only checked against our own expectations could still be one runc
refuses, so each option here runs for real.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from ctl.runtime import spec as oci
from ctl.runtime.runopts import parse_mount, parse_volume
from ctl.runtime.spec import (
    ALL_CAPABILITIES,
    DEFAULT_CAPABILITIES,
    INIT_PATH,
    generate_spec,
    host_capabilities,
    with_cgroups_path,
    with_cpus,
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
)
from tests.unit.test_spec import image_config

PASSWD = "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\n"
GROUP = "root:x:0:\nwheel:x:10:root,alice\nalice:x:1000:\n"


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """bundle is an OCI bundle directory whose rootfs holds a static busybox as /bin/sh."""
    rootfs = tmp_path / "bundle" / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", rootfs / "bin" / "busybox")
    (rootfs / "bin" / "sh").symlink_to("busybox")
    return rootfs.parent


def runc_run(bundle: Path, *opts: oci.SpecOpt) -> subprocess.CompletedProcess[str]:
    """runc_run writes the generated spec into ``bundle`` and runs it in the foreground."""
    container_id = f"ctl-test-{uuid.uuid4().hex[:12]}"
    spec = generate_spec(*opts, with_cgroups_path(f"/ctl-test/{container_id}"))
    (bundle / "config.json").write_text(json.dumps(spec))
    state = bundle.parent / "runc-state"
    try:
        return subprocess.run(
            ["runc", "--root", str(state), "run", "--bundle", str(bundle), container_id],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        subprocess.run(
            ["runc", "--root", str(state), "delete", "--force", container_id],
            capture_output=True,
            check=False,
        )
        for controller in Path("/sys/fs/cgroup").iterdir():
            # Not empty (another test's container) or not a cgroup v1 hierarchy: leave it.
            with contextlib.suppress(OSError):
                (controller / "ctl-test").rmdir()


def status_field(output: str, name: str) -> int:
    line = next(line for line in output.splitlines() if line.startswith(f"{name}:"))
    return int(line.split()[1], 16)


def mask(capabilities: tuple[str, ...] | list[str]) -> int:
    return sum(1 << ALL_CAPABILITIES.index(c) for c in capabilities)


@pytest.mark.needs_root
def test_runc_runs_the_spec_and_returns_the_exit_code(bundle: Path) -> None:
    result = runc_run(bundle, with_process_args(["sh", "-c", "exit 3"]))
    assert result.returncode == 3, result.stderr


@pytest.mark.needs_root
def test_runc_default_capabilities_inside(bundle: Path) -> None:
    result = runc_run(bundle, with_process_args(["sh", "-c", "cat /proc/self/status"]))
    assert result.returncode == 0, result.stderr
    assert status_field(result.stdout, "CapBnd") == mask(DEFAULT_CAPABILITIES) == 0xA80425FB
    assert status_field(result.stdout, "CapEff") == mask(DEFAULT_CAPABILITIES)
    assert status_field(result.stdout, "CapInh") == 0
    assert status_field(result.stdout, "CapAmb") == 0
    assert status_field(result.stdout, "NoNewPrivs") == 0


@pytest.mark.needs_root
def test_runc_privileged(bundle: Path) -> None:
    script = "cat /proc/self/status; grep ' /sys ' /proc/mounts; ls /dev"
    result = runc_run(bundle, with_process_args(["sh", "-c", script]), with_privileged)
    assert result.returncode == 0, result.stderr
    assert status_field(result.stdout, "CapBnd") == mask(host_capabilities())
    assert " /sys sysfs rw," in result.stdout
    assert "kmsg" in result.stdout.split()  # a host device the private /dev does not have


@pytest.mark.needs_root
def test_runc_full_run_options(bundle: Path, tmp_path: Path) -> None:
    rootfs = bundle / "rootfs"
    (rootfs / "etc").mkdir()
    (rootfs / "etc" / "passwd").write_text(PASSWD)
    (rootfs / "etc" / "group").write_text(GROUP)
    (rootfs / "work").mkdir()
    data = tmp_path / "data"
    data.mkdir()
    (data / "greeting").write_text("hello from the host\n")
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "hosts").write_text("127.0.0.1 localhost box\n")
    (etc / "hostname").write_text("box\n")
    (etc / "resolv.conf").write_text("nameserver 192.0.2.1\n")
    script = "; ".join(
        [
            "id -u; id -g; id -G",
            "pwd",
            'echo "FOO=$FOO HOSTNAME=$HOSTNAME"',
            "hostname",
            "cat /data/greeting /etc/hosts /etc/resolv.conf",
            "touch /data/x 2>/dev/null || echo data-ro",
            "touch /rootfile 2>/dev/null || echo root-ro",
            "echo ok > /scratch/f && cat /scratch/f",
            "grep ' /scratch ' /proc/mounts",
            "cat /proc/1/cmdline | tr '\\0' ' '; echo",
            "grep -c memory:/ctl-test/ /proc/self/cgroup",
            "cat /proc/self/status",
            "exit 7",
        ]
    )
    result = runc_run(
        bundle,
        with_image_config(
            image_config(
                Entrypoint=["sh", "-c"], Env=["FOO=image"], WorkingDir="/work", User="alice"
            ),
            rootfs,
            args=[script],
        ),
        with_env(["FOO=flag"]),
        with_hostname("box"),
        with_mounts(
            [parse_volume(f"{data}:/data:ro"), parse_mount("type=tmpfs,dst=/scratch,tmpfs-size=2m")]
        ),
        with_hosts_files(
            hosts=etc / "hosts", hostname=etc / "hostname", resolv_conf=etc / "resolv.conf"
        ),
        with_readonly_rootfs,
        with_no_new_privileges,
        with_memory_limit(64 << 20),
        with_cpus(0.5),
        with_pids_limit(32),
        with_init(oci.find_init_binary()),
    )
    assert result.returncode == 7, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:9] == [
        "1000",
        "1000",
        "1000 10",
        "/work",
        "FOO=flag HOSTNAME=box",
        "box",
        "hello from the host",
        "127.0.0.1 localhost box",
        "nameserver 192.0.2.1",
    ]
    assert lines[9:12] == ["data-ro", "root-ro", "ok"]
    assert "size=2048k" in lines[12] and "noexec" in lines[12]
    assert lines[13].startswith(f"{INIT_PATH} -- sh -c ")
    assert lines[14] == "1"
    assert status_field(result.stdout, "NoNewPrivs") == 1
    # A non-root user keeps the bounding set but, without ambient caps, no effective ones.
    assert status_field(result.stdout, "CapEff") == 0


@pytest.mark.needs_root
def test_runc_host_network(bundle: Path) -> None:
    script = "readlink /proc/self/ns/net"
    result = runc_run(bundle, with_process_args(["sh", "-c", script]), with_host_network)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == os.readlink("/proc/self/ns/net")
