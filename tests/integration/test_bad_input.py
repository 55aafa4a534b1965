"""Bad input gets one ``ctl:`` line on stderr and exit 125, and leaves the root as it was.

SPEC §4 and issue 9 ("Nothing bricks a root"): each command line below is
wrong in one way (an unknown flag, a bad value, a missing argument, a missing
object, a bad name, template or platform). Each runs through the real
program against a root that holds an image and a created container, and
must print nothing on stdout, exactly one line on stderr, starting ``ctl:``,
no traceback, exit 125, and change no file of the root.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import clean_root, ctl_proc
from tests.images import CanonicalImages

pytestmark = pytest.mark.needs_root

IMAGE = "IMAGE"  # replaced by the pulled image's reference
DIGEST = "sha256:" + "0" * 64

BAD = {
    # Usage: unknown commands and flags, missing arguments, values argparse refuses.
    "unknown-command": ["no-such-command"],
    "unknown-subcommand": ["network", "no-such"],
    "unknown-flag": ["ps", "--no-such-flag"],
    "unknown-global-flag": ["--no-such-flag", "ps"],
    "flag-of-another-command": ["images", "--no-trunc-x"],
    "missing-image": ["run"],
    "missing-ref": ["pull"],
    "missing-tag-target": ["tag", IMAGE],
    "missing-container": ["rm"],
    "missing-flag-value": ["ps", "--format"],
    "not-a-number": ["stop", "-t", "soon", "c1"],
    "bad-pids-limit": ["create", "--pids-limit", "x", IMAGE],
    # Global options.
    "empty-root": ["--root", "", "ps"],
    "relative-root": ["--root", "relative/root", "ps"],
    "bad-namespace": ["-n", "Bad/NS", "ps"],
    "empty-namespace": ["-n", "", "images"],
    "dotdot-namespace": ["-n", "..", "ps", "-a"],
    "bad-snapshotter": ["--snapshotter", "no-such", "create", IMAGE],
    # Objects that do not exist.
    "no-such-container-inspect": ["inspect", "no-such"],
    "no-such-container-rm": ["rm", "no-such"],
    "no-such-container-start": ["start", "no-such"],
    "no-such-container-logs": ["logs", "no-such"],
    "no-such-container-kill": ["kill", "no-such"],
    "no-such-image-rmi": ["rmi", "no-such:latest"],
    "no-such-image-tag": ["tag", "no-such:latest", "other:latest"],
    "no-such-image-inspect": ["image", "inspect", "no-such"],
    "no-such-image-save": ["save", "-o", "/dev/null", "no-such:latest"],
    "no-such-network": ["network", "rm", "no-such"],
    "no-such-blob": ["content", "rm", DIGEST],
    "no-such-snapshot": ["snapshots", "rm", "no-such"],
    "no-such-namespace-rm": ["namespaces", "rm", "no-such"],
    # Names and references.
    "bad-container-name": ["create", "--name", "bad name!", IMAGE],
    "taken-container-name": ["create", "--name", "c1", IMAGE],
    "uppercase-reference": ["pull", "Busybox"],
    "bad-tag": ["tag", IMAGE, "busybox:-bad"],
    "bad-digest": ["pull", "busybox@sha256:abc"],
    "bad-network-name": ["network", "create", "bad name"],
    "bad-label": ["create", "-l", "=x", IMAGE],
    "bad-env": ["create", "-e", "=x", IMAGE],
    "missing-env-file": ["create", "--env-file", "/no/such/file", IMAGE],
    # Listing formats and templates.
    "unknown-format": ["ps", "--format", "yaml"],
    "unclosed-template": ["ps", "--format", "{{"],
    "unclosed-action": ["images", "--format", "{{.ID"],
    "template-function": ["ps", "--format", "{{nosuch .Names}}"],
    "template-pipeline": ["network", "ls", "--format", "{{.Name | }}"],
    "template-range": ["content", "ls", "--format", "{{range .}}x"],
    "template-unknown-field": ["ps", "-a", "--format", "{{.Nope}}"],
    "inspect-unclosed": ["inspect", "-f", "{{", "c1"],
    "inspect-function": ["image", "inspect", "-f", "{{nosuch .Name}}", IMAGE],
    "inspect-field-of-a-string": ["inspect", "-f", "{{.Name.x}}", "c1"],
    # Platforms.
    "platform-unknown-arch": ["pull", "--platform", "linux/amd65", IMAGE],
    "platform-unknown-os": ["pull", "--platform", "linus/amd64", IMAGE],
    "platform-empty": ["pull", "--platform", "", IMAGE],
    "platform-too-long": ["pull", "--platform", "linux/arm/v7/x", IMAGE],
    "platform-create": ["create", "--platform", "linux/bogus", IMAGE],
    "platform-run": ["run", "--platform", "plan10/amd64", IMAGE, "true"],
    "platform-content-fetch": ["content", "fetch", "--platform", "x/y", IMAGE],
    # run and create values.
    "publish-not-a-port": ["create", "-p", "notaport", IMAGE],
    "publish-port-too-big": ["create", "-p", "70000:80", IMAGE],
    "publish-bad-proto": ["create", "-p", "8080:80/sctpx", IMAGE],
    "publish-without-bridge": ["create", "--net", "none", "-p", "8080:80", IMAGE],
    "volume-bad-name": ["create", "-v", "a/b:/x", IMAGE],
    "volume-relative-destination": ["create", "-v", "/tmp:relative", IMAGE],
    "volume-bad-mode": ["create", "-v", "/tmp:/x:rx", IMAGE],
    "mount-bad-type": ["create", "--mount", "type=bogus,dst=/x", IMAGE],
    "mount-no-target": ["create", "--mount", "type=tmpfs", IMAGE],
    "mount-unknown-key": ["create", "--mount", "type=tmpfs,dst=/x,colour=red", IMAGE],
    "restart-unknown": ["create", "--restart", "sometimes", IMAGE],
    "restart-bad-count": ["create", "--restart", "on-failure:x", IMAGE],
    "restart-with-rm": ["run", "--rm", "--restart", "always", IMAGE, "true"],
    "memory-word": ["create", "--memory", "lots", IMAGE],
    "memory-negative": ["create", "--memory", "-1", IMAGE],
    "memory-unit": ["create", "-m", "12q", IMAGE],
    "cpus-word": ["create", "--cpus", "many", IMAGE],
    "pull-policy": ["create", "--pull", "sometimes", IMAGE],
    "cpus-negative": ["create", "--cpus", "-1", IMAGE],
    "security-opt": ["create", "--security-opt", "bogus", IMAGE],
    "cap-add": ["create", "--cap-add", "NOPE", IMAGE],
    "relative-workdir": ["create", "-w", "relative", IMAGE],
    "bad-hostname": ["create", "--hostname", "bad host", IMAGE],
    "no-such-network-create": ["create", "--net", "no-such", IMAGE],
    "kill-signal": ["kill", "-s", "SIGNOPE", "c1"],
    "kill-signal-number": ["kill", "-s", "99", "c1"],
    "stop-negative-timeout": ["stop", "-t", "-1", "c1"],
    # Other commands' values and states.
    "exec-not-running": ["exec", "c1", "true"],
    "top-not-running": ["top", "c1"],
    "pause-not-running": ["pause", "c1"],
    "wait-no-such": ["wait", "no-such"],
    "empty-tag": ["tag", IMAGE, ""],
    "bad-subnet": ["network", "create", "--subnet", "10.0.0.0/33", "n1"],
    "bad-blob-digest": ["content", "get", "sha256:zz"],
    "load-missing-file": ["load", "-i", "/no/such/file"],
    "namespace-not-empty": ["namespaces", "rm", "default"],
    "completion-shell": ["completion", "nosh"],
    "generate-no-such": ["generate", "systemd", "no-such"],
}


def _snapshot(root: Path) -> dict[str, str]:
    """_snapshot is every file and directory of the root, with a digest of each file's bytes.

    Lock files are left out: a command that takes a lock creates its file.
    """
    listing: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        if path.suffix == ".lock" or "locks" in path.relative_to(root).parts:
            continue
        if path.is_symlink():
            listing[name] = f"-> {path.readlink()}"
        elif path.is_file():
            listing[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            listing[name] = "dir"
    return listing


@pytest.fixture(scope="module")
def broot(tmp_path_factory: pytest.TempPathFactory, images: CanonicalImages) -> Iterator[Path]:
    """broot holds an image and a created container, c1.

    The default network's conflist is written on its first use, by any
    command, a listing too: it is made here, so that no case is the first.
    """
    root = tmp_path_factory.mktemp("bad-input") / "root"
    ctl_proc("pull", images.busybox_ref, root=root).assert_success()
    ctl_proc("create", "--name", "c1", "--net", "none", images.busybox_ref, root=root)
    ctl_proc("network", "ls", root=root).assert_success()
    yield root
    clean_root(root)


@pytest.mark.parametrize("argv", BAD.values(), ids=BAD.keys())
def test_bad_input_is_one_line_125_and_changes_nothing(
    broot: Path, images: CanonicalImages, argv: list[str]
) -> None:
    argv = [images.busybox_ref if word == IMAGE else word for word in argv]
    before = _snapshot(broot)
    result = ctl_proc(*argv, root=broot, timeout=60)
    result.assert_failure(125)
    assert result.stdout == "", result._explain("want nothing on stdout")
    assert _snapshot(broot) == before, result._explain("want the root unchanged")
