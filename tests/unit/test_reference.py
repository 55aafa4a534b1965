"""Reference normalisation (docker's rules) and platform parsing and matching."""

from __future__ import annotations

import os

import pytest

from ctl.errdefs import InvalidArgument
from ctl.oci import Platform
from ctl.reference import (
    KNOWN_ARCHITECTURES,
    KNOWN_OS,
    Reference,
    host_platform,
    parse,
    parse_named,
    parse_platform,
    platform_matches,
)

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "domain", "path", "tag", "digest"),
    [
        ("nginx", "docker.io", "library/nginx", "latest", None),
        ("nginx:1.25", "docker.io", "library/nginx", "1.25", None),
        ("user/repo", "docker.io", "user/repo", "latest", None),
        ("docker.io/nginx", "docker.io", "library/nginx", "latest", None),
        ("index.docker.io/user/repo:v1", "docker.io", "user/repo", "v1", None),
        ("docker.io/library/a/b", "docker.io", "library/a/b", "latest", None),
        ("quay.io/coreos/etcd:v3", "quay.io", "coreos/etcd", "v3", None),
        ("localhost/app", "localhost", "app", "latest", None),
        ("localhost:5000/app:dev", "localhost:5000", "app", "dev", None),
        ("myhost:5000/a/b/c", "myhost:5000", "a/b/c", "latest", None),
        ("127.0.0.1:5000/app", "127.0.0.1:5000", "app", "latest", None),
        ("[::1]:5000/app", "[::1]:5000", "app", "latest", None),
        # An uppercase first component cannot be a repository, so it is a domain.
        ("Registry/app", "Registry", "app", "latest", None),
        (f"nginx@{DIGEST}", "docker.io", "library/nginx", None, DIGEST),
        (f"host:5000/app:1@{DIGEST}", "host:5000", "app", "1", DIGEST),
        ("a__b/c-d.e---f", "docker.io", "a__b/c-d.e---f", "latest", None),
        # A bare "host:port" without a slash is docker's name:tag.
        ("localhost:5000", "docker.io", "library/localhost", "5000", None),
    ],
)
def test_parse_normalises(
    text: str, domain: str, path: str, tag: str | None, digest: str | None
) -> None:
    assert parse(text) == Reference(domain, path, tag, digest)


def test_str_name_and_familiar() -> None:
    ref = parse("nginx")
    assert str(ref) == "docker.io/library/nginx:latest"
    assert ref.name == "docker.io/library/nginx"
    assert ref.familiar == "nginx:latest"
    assert parse("user/repo:1").familiar == "user/repo:1"
    assert parse("docker.io/library/a/b").familiar == "library/a/b:latest"
    assert parse("quay.io/x/y:z").familiar == "quay.io/x/y:z"
    both = parse(f"nginx:1@{DIGEST}")
    assert str(both) == f"docker.io/library/nginx:1@{DIGEST}"
    assert both.familiar == f"nginx:1@{DIGEST}"
    assert str(parse(f"nginx@{DIGEST}")) == f"docker.io/library/nginx@{DIGEST}"


def test_digest_wins_for_fetching() -> None:
    assert parse("nginx").object == "latest"
    assert parse(f"nginx:1@{DIGEST}").object == DIGEST


def test_parse_named_adds_no_tag() -> None:
    assert parse_named("nginx") == Reference("docker.io", "library/nginx")
    assert parse_named("nginx").object == "latest"


def test_with_tag_and_with_digest() -> None:
    ref = parse(f"nginx:1@{DIGEST}")
    assert ref.with_tag("2") == Reference("docker.io", "library/nginx", "2", None)
    assert parse("nginx:1").with_digest(DIGEST) == ref
    with pytest.raises(InvalidArgument, match="invalid tag"):
        ref.with_tag("-bad")
    with pytest.raises(InvalidArgument, match="invalid digest"):
        ref.with_digest("sha256:123")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "reference is empty"),
        ("Nginx", "must be lowercase"),
        ("user/Repo", "must be lowercase"),
        ("nginx:", "invalid tag"),
        ("nginx:-x", "invalid tag"),
        ("nginx:" + "a" * 129, "invalid tag"),
        ("nginx:a/b", "bad port"),
        ("nginx@", "invalid digest"),
        ("nginx@sha256:abc", "invalid digest"),
        ("nginx@sha256:" + "AB" * 32, "invalid digest"),
        ("nginx@sha512:" + "ab" * 64, "unsupported digest algorithm 'sha512'"),
        ("nginx@md5:" + "ab" * 16, "unsupported digest algorithm"),
        ("host:port/app", "bad port"),
        ("host:/app", "bad port"),
        ("-host.com/app", "bad registry domain"),
        ("my_host.com/app", "bad registry domain"),
        ("docker.io/", "empty path component"),
        ("a//b", "empty path component"),
        ("/nginx", "empty path component"),
        ("nginx!", "path component 'nginx!'"),
        ("a/b_-c", "path component 'b_-c'"),
        ("a/.b", "path component '.b'"),
        ("ab" * 32, "64 hexadecimal digits are an image ID"),
        ("example.com/" + "a" * 250, "not be more than 255 characters"),
    ],
)
def test_parse_rejects(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse(text)


def test_name_length_limit_counts_the_domain() -> None:
    path = "a" * (255 - len("example.com/"))
    assert parse(f"example.com/{path}").path == path


@pytest.mark.parametrize(
    ("text", "platform"),
    [
        ("linux/amd64", Platform("linux", "amd64")),
        ("linux/arm64/v8", Platform("linux", "arm64", "v8")),
        ("linux/aarch64", Platform("linux", "arm64")),
        ("Linux/X86_64", Platform("linux", "amd64")),
        ("linux/arm/7", Platform("linux", "arm", "v7")),
        ("linux/armhf", Platform("linux", "arm", "v7")),
        ("linux/armel", Platform("linux", "arm", "v6")),
        ("linux/i386", Platform("linux", "386")),
        ("arm64", Platform("linux", "arm64")),
        ("s390x", Platform("linux", "s390x")),
    ],
)
def test_parse_platform(text: str, platform: Platform) -> None:
    assert parse_platform(text) == platform


def test_parse_platform_os_only_takes_host_arch() -> None:
    host = host_platform()
    assert parse_platform("linux") == Platform("linux", host.architecture, host.variant)


@pytest.mark.parametrize(
    "text",
    ["", "linux/", "a/b/c/d", "linux/amd 64", "/amd64", "linux/amd65", "linus/amd64", "amd65"],
)
def test_parse_platform_rejects(text: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid platform"):
        parse_platform(text)


@pytest.mark.parametrize(
    ("text", "why"),
    [("linux/amd65", "unknown architecture 'amd65'"), ("linus/amd64", "unknown operating system")],
)
def test_parse_platform_names_the_unknown_part(text: str, why: str) -> None:
    with pytest.raises(InvalidArgument, match=why):
        parse_platform(text)


def test_every_platform_of_the_go_tables_parses() -> None:
    for os_name in KNOWN_OS:
        for arch in KNOWN_ARCHITECTURES:
            assert parse_platform(f"{os_name}/{arch}") == Platform(os_name, arch)


def test_host_platform() -> None:
    machine = os.uname().machine
    expected = {
        "x86_64": Platform("linux", "amd64"),
        "aarch64": Platform("linux", "arm64", "v8"),
        "armv7l": Platform("linux", "arm", "v7"),
    }
    assert host_platform() == expected.get(machine, host_platform())
    assert host_platform().os == "linux"


@pytest.mark.parametrize(
    ("want", "have", "matches"),
    [
        (Platform("linux", "amd64"), Platform("linux", "amd64"), True),
        (Platform("linux", "arm64", "v8"), Platform("linux", "arm64"), True),
        (Platform("linux", "arm64"), Platform("linux", "arm64", "v8"), True),
        (Platform("linux", "arm"), Platform("linux", "arm", "v7"), True),
        (Platform("linux", "amd64"), Platform("linux", "x86_64"), True),
        (Platform("linux", "amd64", "v1"), Platform("linux", "amd64"), True),
        (Platform("linux", "arm", "v7"), Platform("linux", "arm", "v6"), False),
        (Platform("linux", "amd64"), Platform("linux", "arm64"), False),
        (Platform("linux", "amd64"), Platform("windows", "amd64"), False),
        (Platform("linux", "amd64"), Platform("unknown", "unknown"), False),
    ],
)
def test_platform_matches(want: Platform, have: Platform, matches: bool) -> None:
    assert platform_matches(want, have) is matches
