"""Issue 11, devices and identity: --device, CDI devices, --device-cgroup-rule, --group-add.

CDI specs are written into a directory of the test's own, named by
CTL_CDI_SPEC_DIRS, so that no other test (or program) sees them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.helpers import ctl_proc, pulled_root
from tests.images import CanonicalImages

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.needs_root


@pytest.fixture(scope="module")
def droot(tmp_path_factory: pytest.TempPathFactory, images: CanonicalImages) -> Iterator[Path]:
    yield from pulled_root(tmp_path_factory.mktemp("devices"), images.busybox_ref)


@pytest.fixture
def image(images: CanonicalImages) -> str:
    return images.busybox_ref


def run(root: Path, *argv: str, env: dict[str, str] | None = None) -> str:
    result = ctl_proc("run", "--rm", "--net", "none", *argv, root=root, env=env)
    return result.assert_success().stdout


def test_device_is_in_dev_and_usable(droot: Path, image: str) -> None:
    out = run(
        droot, "--device", "/dev/loop0", "--device", "/dev/null:/dev/mynull:rw", image,
        "sh", "-c", "ls -l /dev/loop0 /dev/mynull && echo hi > /dev/mynull && echo written",
    )  # fmt: skip
    assert "brw-------" in out and "7,   0" in out
    assert "crw-rw-rw-" in out and "1,   3" in out
    assert out.endswith("written\n")


def test_device_mode_r_refuses_writes(droot: Path, image: str) -> None:
    out = run(
        droot, "--device", "/dev/loop0:r", image,
        "sh", "-c", "dd if=/dev/loop0 of=/dev/null count=0 && echo read;"
        " echo x 2>/dev/null > /dev/loop0 || echo refused",
    )  # fmt: skip
    assert out.split() == ["read", "refused"]


def test_device_directory_adds_its_devices(droot: Path, image: str) -> None:
    out = run(droot, "--device", "/dev/net", image, "ls", "/dev/net")
    assert "tun" in out.split()


def test_device_cgroup_rule(droot: Path, image: str) -> None:
    script = "mknod /dev/x b 7 0 2>/dev/null; head -c0 /dev/x 2>/dev/null && echo opened || echo no"
    assert run(droot, image, "sh", "-c", script).strip() == "no"
    rule = run(droot, "--device-cgroup-rule", "b 7:* rwm", image, "sh", "-c", script)
    assert rule.strip() == "opened"


def test_group_add(droot: Path, image: str) -> None:
    out = run(droot, "--group-add", "nobody", "--group-add", "4242", "-u", "user", image, "id")
    assert "65534(nobody)" in out and "4242" in out


def test_group_add_unknown_name(droot: Path, image: str) -> None:
    result = ctl_proc("create", "--group-add", "no-such-group", image, root=droot)
    result.assert_failure(125, "no-such-group")
    assert ctl_proc("ps", "-aq", root=droot).stdout == ""


def write_cdi_spec(directory: Path) -> None:
    directory.mkdir(exist_ok=True)
    spec = {
        "cdiVersion": "0.6.0",
        "kind": "vendor.com/dev",
        "containerEdits": {"env": ["CDI_FILE=yes"]},
        "devices": [
            {
                "name": "null",
                "containerEdits": {
                    "deviceNodes": [{"path": "/dev/cdi-null", "hostPath": "/dev/null"}],
                    "env": ["CDI_DEVICE=null"],
                    "mounts": [
                        {
                            "hostPath": str(directory),
                            "containerPath": "/cdi",
                            "options": ["rbind", "ro"],
                        }
                    ],
                },
            },
        ],
    }
    (directory / "vendor.json").write_text(json.dumps(spec))


def test_cdi_device(droot: Path, image: str, tmp_path: Path) -> None:
    write_cdi_spec(tmp_path / "cdi")
    env = {"CTL_CDI_SPEC_DIRS": str(tmp_path / "cdi")}
    out = run(
        droot, "--device", "vendor.com/dev=null", image,
        "sh", "-c", "ls -l /dev/cdi-null; echo x > /dev/cdi-null && echo $CDI_FILE $CDI_DEVICE;"
        " ls /cdi",
        env=env,
    )  # fmt: skip
    assert "1,   3" in out
    assert "yes null" in out
    assert "vendor.json" in out


def test_cdi_unknown_device(droot: Path, image: str, tmp_path: Path) -> None:
    write_cdi_spec(tmp_path / "cdi")
    env = {"CTL_CDI_SPEC_DIRS": str(tmp_path / "cdi")}
    for flags in (["--device", "vendor.com/dev=nope"], ["--gpus", "all"]):
        result = ctl_proc("create", *flags, image, root=droot, env=env)
        result.assert_failure(125, r"CDI device .*(nope|nvidia\.com/gpu=all)")
    assert ctl_proc("ps", "-aq", root=droot).stdout == ""


def test_gpus_are_cdi_devices(droot: Path, image: str, tmp_path: Path) -> None:
    directory = tmp_path / "cdi"
    directory.mkdir()
    spec = {
        "cdiVersion": "0.6.0",
        "kind": "nvidia.com/gpu",
        "devices": [
            {"name": name, "containerEdits": {"env": [f"GPU_{name.upper()}=1"]}}
            for name in ("0", "1", "all")
        ],
    }
    (directory / "nvidia.json").write_text(json.dumps(spec))
    env = {"CTL_CDI_SPEC_DIRS": str(directory)}
    out = run(droot, "--gpus", "2", image, "env", env=env)
    assert "GPU_0=1" in out and "GPU_1=1" in out and "GPU_ALL" not in out
    out = run(droot, "--gpus", "all", image, "env", env=env)
    assert "GPU_ALL=1" in out


BAD = {
    "device-missing": ["--device", "/nonexistent"],
    "device-bad-mode": ["--device", "/dev/null:/dev/x:rwx"],
    "device-relative": ["--device", "dev/null"],
    "device-not-a-device": ["--device", "/etc/passwd"],
    "device-cgroup-rule": ["--device-cgroup-rule", "c 1:3"],
    "gpus": ["--gpus", "bogus=1"],
    "group-add": ["--group-add", "a:b"],
}


@pytest.mark.parametrize("flags", BAD.values(), ids=BAD.keys())
def test_bad_values_create_nothing(droot: Path, image: str, flags: list[str]) -> None:
    result = ctl_proc("create", "--name", "bad", *flags, image, root=droot)
    result.assert_failure(125, f"ctl: .*{flags[0]}")
    assert ctl_proc("ps", "-aq", root=droot).assert_success().stdout == ""
