"""Parsing of the storage flags: -v, --mount and --volumes-from with volumes (issue 12)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from ctl.containers.container import MountSpec
from ctl.errdefs import InvalidArgument
from ctl.runtime import runopts
from ctl.runtime.runopts import parse_mount, parse_volume, parse_volumes_from
from ctl.volumes import VolumeMount, check_name, check_options

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("/data", MountSpec("volume", "/data")),
        ("data:/d", MountSpec("volume", "/d", "data")),
        ("my_vol.1-x:/d:ro", MountSpec("volume", "/d", "my_vol.1-x", readonly=True)),
        ("data:/d:nocopy,rw", MountSpec("volume", "/d", "data", volume_nocopy=True)),
        ("/host:/d:ro,rslave", MountSpec("bind", "/d", "/host", True, "rslave")),
    ],
)
def test_parse_volume(value: str, want: MountSpec) -> None:
    assert parse_volume(value) == want


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("data:/d:z", MountSpec("volume", "/d", "data")),
        ("/host:/d:ro,Z", MountSpec("bind", "/d", "/host", readonly=True)),
        ("data:/d:Z,nocopy", MountSpec("volume", "/d", "data", volume_nocopy=True)),
    ],
)
def test_relabel_changes_nothing_without_selinux(
    value: str, want: MountSpec, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(runopts, "SELINUX_ENFORCE", str(tmp_path / "enforce"))
    assert parse_volume(value) == want


def test_relabel_is_refused_with_selinux(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # ctl applies no SELinux labels: a relabel it cannot do is not silently skipped.
    (tmp_path / "enforce").write_text("1")
    monkeypatch.setattr(runopts, "SELINUX_ENFORCE", str(tmp_path / "enforce"))
    with pytest.raises(InvalidArgument, match="option 'z': ctl applies no SELinux labels"):
        parse_volume("/host:/d:z")


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("dst=/d", MountSpec("volume", "/d")),
        ("type=volume,src=data,dst=/d,readonly", MountSpec("volume", "/d", "data", True)),
        (
            "type=volume,source=data,target=/d,volume-nocopy",
            MountSpec("volume", "/d", "data", volume_nocopy=True),
        ),
        (
            'type=volume,dst=/d,volume-opt=type=tmpfs,"volume-opt=o=size=1m,mode=700"',
            MountSpec("volume", "/d", volume_options={"type": "tmpfs", "o": "size=1m,mode=700"}),
        ),
        ("type=volume,src=data,dst=/d,volume-driver=local", MountSpec("volume", "/d", "data")),
    ],
)
def test_parse_mount_volumes(value: str, want: MountSpec) -> None:
    assert parse_mount(value) == want


def test_bad_volume_names_name_the_rule() -> None:
    for name in ("a", "a/b", "-a", ".a", "a b", "x" * 256):
        with pytest.raises(InvalidArgument, match="invalid volume name"):
            check_name(name)
    with pytest.raises(InvalidArgument, match="absolute path"):
        parse_volume("data/x:/d")


@pytest.mark.parametrize(
    ("options", "want"),
    [
        ({}, VolumeMount("bind")),
        ({"type": "tmpfs"}, VolumeMount("tmpfs")),
        ({"type": "tmpfs", "o": "size=1k,mode=1777"}, VolumeMount("tmpfs", "", 1024, 0o1777)),
        ({"type": "none", "device": "/srv", "o": "bind"}, VolumeMount("bind", "/srv")),
    ],
)
def test_volume_options(options: dict[str, str], want: VolumeMount) -> None:
    assert check_options(options) == want


@pytest.mark.parametrize(
    "options",
    [
        {"size": "1g"},
        {"type": "ext4", "device": "/dev/sda1"},
        {"type": "none", "device": "rel", "o": "bind"},
        {"type": "none", "device": "/srv"},
        {"type": "tmpfs", "o": "uid=5"},
        {"type": "tmpfs", "o": "size=big"},
    ],
)
def test_volume_options_rejected(options: dict[str, str]) -> None:
    with pytest.raises(InvalidArgument):
        check_options(options)


def test_parse_volumes_from() -> None:
    assert parse_volumes_from("web") == ("web", "")
    assert parse_volumes_from("web:ro") == ("web", "ro")
    for bad in ("", ":ro", "web:rx", "web:"):
        with pytest.raises(InvalidArgument, match="--volumes-from"):
            parse_volumes_from(bad)


def test_volume_filters() -> None:
    from ctl.volumes import Volume
    from ctl.volumes.filters import LS_KEYS, PRUNE_KEYS, matches, parse_filters

    volume = Volume("data", "/x", labels={"env": "prod", "tier": ""})
    assert matches(volume, parse_filters(["name=at", "name=zz"], LS_KEYS), in_use=False)
    assert not matches(volume, parse_filters(["name=zz"], LS_KEYS), in_use=False)
    both = parse_filters(["label=env=prod", "label=tier"], LS_KEYS)
    assert matches(volume, both, in_use=False)
    assert not matches(volume, parse_filters(["label=env=dev"], LS_KEYS), in_use=False)
    assert matches(volume, parse_filters(["dangling=true"], LS_KEYS), in_use=False)
    assert not matches(volume, parse_filters(["dangling=1"], LS_KEYS), in_use=True)
    assert matches(volume, parse_filters(["driver=local"], LS_KEYS), in_use=True)
    assert not matches(volume, parse_filters(["label!=env"], PRUNE_KEYS), in_use=False)
    for bad, keys in (("colour=red", LS_KEYS), ("dangling=maybe", LS_KEYS), ("name", LS_KEYS)):
        with pytest.raises(InvalidArgument, match="invalid filter"):
            parse_filters([bad], keys)
    with pytest.raises(InvalidArgument):
        parse_filters(["name=x"], PRUNE_KEYS)
