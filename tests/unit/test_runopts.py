"""Tests of ctl.runtime.runopts: each flag value parser, good values and one error each."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING

import pytest

from ctl.containers.container import MountSpec, PortMapping, RestartPolicy
from ctl.errdefs import InvalidArgument
from ctl.runtime.runopts import (
    SecurityOptions,
    UserSpec,
    parse_cpus,
    parse_env,
    parse_env_file,
    parse_labels,
    parse_memory,
    parse_mount,
    parse_publish,
    parse_restart,
    parse_security_opt,
    parse_signal,
    parse_user,
    parse_volume,
)

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("100", 100),
        ("100b", 100),
        ("1k", 1024),
        ("512m", 512 << 20),
        ("512M", 512 << 20),
        ("1g", 1 << 30),
        ("1.5g", 3 << 29),
        ("2GiB", 2 << 30),
        ("2gb", 2 << 30),
        ("1 t", 1 << 40),
        ("0", 0),
    ],
)
def test_parse_memory(value: str, want: int) -> None:
    assert parse_memory(value) == want


@pytest.mark.parametrize("value", ["", "m", "-1m", "1x", "1.g", "1e9", "12 mb extra", "1,5g"])
def test_parse_memory_rejects(value: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid size"):
        parse_memory(value)


def test_parse_cpus() -> None:
    assert parse_cpus("0.5") == 0.5
    assert parse_cpus("1") == 1.0


@pytest.mark.parametrize("value", ["0", "0.001", "-1", "nan", "inf", "abc", "100000"])
def test_parse_cpus_rejects(value: str) -> None:
    with pytest.raises(InvalidArgument, match="--cpus"):
        parse_cpus(value)


def test_parse_env_passes_caller_values() -> None:
    environ = {"HOME": "/home/me", "EMPTY": ""}
    got = parse_env(["A=1", "B=", "C=x=y", "HOME", "EMPTY", "UNSET"], environ)
    assert got == ["A=1", "B=", "C=x=y", "HOME=/home/me", "EMPTY="]


@pytest.mark.parametrize("value", ["", "=1", "A B=1"])
def test_parse_env_rejects(value: str) -> None:
    with pytest.raises(InvalidArgument, match="environment variable"):
        parse_env([value], {})


def test_parse_env_file(tmp_path: Path) -> None:
    path = tmp_path / "env"
    path.write_text(
        "\ufeff# a comment\n"
        "\n"
        "A=1\n"
        "  B=two words  \n"
        'QUOTED="kept"\n'
        "FROM_HOST\n"
        "NOT_ON_HOST\n"
        "   # indented comment\n"
        "EMPTY=\n"
        "CRLF=1\r\n"
    )
    got = parse_env_file(str(path), {"FROM_HOST": "h"})
    assert got == ["A=1", "B=two words  ", 'QUOTED="kept"', "FROM_HOST=h", "EMPTY=", "CRLF=1"]


def test_parse_env_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="No such file"):
        parse_env_file(str(tmp_path / "missing"))
    bad = tmp_path / "bad"
    bad.write_text("A=1\nBAD KEY=2\n")
    with pytest.raises(InvalidArgument, match="line 2"):
        parse_env_file(str(bad))
    binary = tmp_path / "binary"
    binary.write_bytes(b"A=\xff\n")
    with pytest.raises(InvalidArgument, match="UTF-8"):
        parse_env_file(str(binary))


def test_parse_labels() -> None:
    assert parse_labels(["a=1", "b", "c=x=y", "a=2"]) == {"a": "2", "b": "", "c": "x=y"}
    with pytest.raises(InvalidArgument, match="label"):
        parse_labels(["=v"])


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("/src:/dst", MountSpec("bind", "/dst", "/src")),
        ("/src:/dst:ro", MountSpec("bind", "/dst", "/src", readonly=True)),
        ("/src:/dst:rw", MountSpec("bind", "/dst", "/src")),
        ("/src:/dst:ro,rshared", MountSpec("bind", "/dst", "/src", True, "rshared")),
    ],
)
def test_parse_volume(value: str, want: MountSpec) -> None:
    assert parse_volume(value) == want


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("./rel:/dst", InvalidArgument),
        ("a/b:/dst", InvalidArgument),
        ("data:/dst:rshared", InvalidArgument),
        ("/src:/dst:nocopy", InvalidArgument),
        ("rel", InvalidArgument),
        ("/src:rel", InvalidArgument),
        ("/src:/", InvalidArgument),
        ("/src:/dst:rx", InvalidArgument),
        ("/src:/dst:ro:extra", InvalidArgument),
        (":/dst", InvalidArgument),
        ("", InvalidArgument),
    ],
)
def test_parse_volume_rejects(value: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_volume(value)


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("type=bind,source=/a,target=/b", MountSpec("bind", "/b", "/a")),
        ("type=bind,src=/a,dst=/b,readonly", MountSpec("bind", "/b", "/a", readonly=True)),
        ("type=bind,src=/a,destination=/b,ro=true", MountSpec("bind", "/b", "/a", readonly=True)),
        ("type=bind,src=/a,dst=/b,readonly=0", MountSpec("bind", "/b", "/a")),
        (
            "type=bind,src=/a,dst=/b,bind-propagation=rslave",
            MountSpec("bind", "/b", "/a", propagation="rslave"),
        ),
        ('type=bind,"src=/a,b",dst=/c', MountSpec("bind", "/c", "/a,b")),
        ("type=tmpfs,dst=/t", MountSpec("tmpfs", "/t")),
        (
            "type=tmpfs,dst=/t,tmpfs-size=64m,tmpfs-mode=1777",
            MountSpec("tmpfs", "/t", tmpfs_size=64 << 20, tmpfs_mode=0o1777),
        ),
    ],
)
def test_parse_mount(value: str, want: MountSpec) -> None:
    assert parse_mount(value) == want


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("type=volume,src=a/b,dst=/b", InvalidArgument),
        ("type=volume,src=/a,dst=/b", InvalidArgument),
        ("type=volume,dst=/b,bind-propagation=shared", InvalidArgument),
        ("type=volume,dst=/b,volume-opt=type", InvalidArgument),
        ("type=volume,dst=/b,volume-opt=type=ext4", InvalidArgument),
        ("type=volume,dst=/b,volume-driver=nfs", InvalidArgument),
        ("type=bind,src=/a,dst=/b,volume-nocopy", InvalidArgument),
        ("type=npipe,src=/a,dst=/b", InvalidArgument),
        ("type=bind,src=/a", InvalidArgument),
        ("type=bind,src=rel,dst=/b", InvalidArgument),
        ("type=bind,dst=/b", InvalidArgument),
        ("type=bind,src=/a,dst=b", InvalidArgument),
        ("type=bind,src=/a,dst=/b,readonly=maybe", InvalidArgument),
        ("type=bind,src=/a,dst=/b,bind-propagation=weird", InvalidArgument),
        ("type=bind,src=/a,dst=/b,tmpfs-size=1m", InvalidArgument),
        ("type=bind,src=/a,dst=/b,colour=blue", InvalidArgument),
        ("type=bind,src=/a,dst=/b,junk", InvalidArgument),
        ("type=tmpfs,src=/a,dst=/b", InvalidArgument),
        ("type=tmpfs,dst=/b,tmpfs-mode=999", InvalidArgument),
        ("type=tmpfs,dst=/b,tmpfs-size=big", InvalidArgument),
    ],
)
def test_parse_mount_rejects(value: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        parse_mount(value)


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("8080:80", [PortMapping("", 8080, 80, "tcp")]),
        ("8080:80/udp", [PortMapping("", 8080, 80, "udp")]),
        ("8080:80/TCP", [PortMapping("", 8080, 80, "tcp")]),
        ("127.0.0.1:8080:80", [PortMapping("127.0.0.1", 8080, 80, "tcp")]),
        ("[::1]:53:53/udp", [PortMapping("::1", 53, 53, "udp")]),
        ("1:65535", [PortMapping("", 1, 65535, "tcp")]),
        # docker's random host port: 0 until the create picks one.
        ("80", [PortMapping("", 0, 80, "tcp")]),
        (":80/udp", [PortMapping("", 0, 80, "udp")]),
        ("1.2.3.4::80", [PortMapping("1.2.3.4", 0, 80, "tcp")]),
        (
            "8080-8081:80-81",
            [PortMapping("", 8080, 80, "tcp"), PortMapping("", 8081, 81, "tcp")],
        ),
        ("90-91", [PortMapping("", 0, 90, "tcp"), PortMapping("", 0, 91, "tcp")]),
    ],
)
def test_parse_publish(value: str, want: list[PortMapping]) -> None:
    assert list(parse_publish(value)) == want


@pytest.mark.parametrize(
    "value",
    [
        "0:80",
        "8080:65536",
        "8080:80/sctp",
        "8000-8010:80-81",
        "8081-8080:80-81",
        "8080-:80",
        "a:80",
        "300.0.0.1:80:80",
        "[::1:80:80",
        "8080:\uff18\uff10",  # fullwidth digits: str.isdigit says yes, int() would too
    ],
)
def test_parse_publish_rejects(value: str) -> None:
    with pytest.raises(InvalidArgument, match="port mapping"):
        parse_publish(value)


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("no", RestartPolicy("no")),
        ("always", RestartPolicy("always")),
        ("unless-stopped", RestartPolicy("unless-stopped")),
        ("on-failure", RestartPolicy("on-failure")),
        ("on-failure:5", RestartPolicy("on-failure", 5)),
    ],
)
def test_parse_restart(value: str, want: RestartPolicy) -> None:
    assert parse_restart(value) == want


@pytest.mark.parametrize("value", ["", "sometimes", "always:3", "on-failure:-1", "on-failure:x"])
def test_parse_restart_rejects(value: str) -> None:
    with pytest.raises(InvalidArgument, match="restart policy"):
        parse_restart(value)


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("SIGTERM", signal.SIGTERM),
        ("TERM", signal.SIGTERM),
        ("term", signal.SIGTERM),
        ("sigkill", signal.SIGKILL),
        ("15", 15),
        ("9", 9),
        ("RTMIN+3", signal.SIGRTMIN + 3),
        ("SIGRTMAX-1", signal.SIGRTMAX - 1),
        ("USR1", signal.SIGUSR1),
    ],
)
def test_parse_signal(value: str, want: int) -> None:
    assert parse_signal(value) == want


@pytest.mark.parametrize("value", ["", "0", "65", "NOPE", "SIG", "RTMIN+99", "RTMIN+x", "-9"])
def test_parse_signal_rejects(value: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid signal"):
        parse_signal(value)


@pytest.mark.parametrize(
    ("values", "want"),
    [
        ([], SecurityOptions()),
        (["no-new-privileges"], SecurityOptions(no_new_privileges=True)),
        (["no-new-privileges:true"], SecurityOptions(no_new_privileges=True)),
        (["no-new-privileges=false"], SecurityOptions()),
        (["seccomp=unconfined"], SecurityOptions(seccomp_unconfined=True)),
        (
            ["seccomp:unconfined", "no-new-privileges"],
            SecurityOptions(no_new_privileges=True, seccomp_unconfined=True),
        ),
    ],
)
def test_parse_security_opt(values: list[str], want: SecurityOptions) -> None:
    assert parse_security_opt(values) == want


@pytest.mark.parametrize(
    "value", ["apparmor=", "seccomp", "label=type:svirt_t", "nnp", "systempaths=x"]
)
def test_parse_security_opt_refuses_what_it_cannot_honour(value: str) -> None:
    with pytest.raises(InvalidArgument, match="unsupported --security-opt"):
        parse_security_opt([value])


def test_parse_security_opt_bad_boolean() -> None:
    with pytest.raises(InvalidArgument, match="not true or false"):
        parse_security_opt(["no-new-privileges:maybe"])


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("root", UserSpec("root")),
        ("1000", UserSpec("1000")),
        ("1000:1000", UserSpec("1000", "1000")),
        ("nobody:nogroup", UserSpec("nobody", "nogroup")),
        ("2147483647", UserSpec("2147483647")),
    ],
)
def test_parse_user(value: str, want: UserSpec) -> None:
    assert parse_user(value) == want
    assert str(want) == value


@pytest.mark.parametrize(
    "value", ["", ":0", "0:", "a:b:c", "bad user", "2147483648", "0:99999999999"]
)
def test_parse_user_rejects(value: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid user"):
        parse_user(value)
