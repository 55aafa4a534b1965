"""docker's remaining flags of existing commands, over real containers and the real registry:
stop -s, exec --env-file/--privileged, logs --since/--until/--details, pull/push -a,
rmi --no-prune, system prune, system df -v, inspect --type/-s, images --filter, version
and info templates, and the container/image group aliases."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import pytest

from tests.helpers import ctl_proc, run_ctl

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from tests.helpers import RegistryServer
    from tests.images import CanonicalImages

pytestmark = pytest.mark.needs_root

# The signal's name, then a loop that stops when the trap fires.
TRAP = 'trap "echo got $0; exit 7" $0; echo ready; while :; do sleep 0.1; done'


@pytest.fixture(scope="module")
def croot(tmp_path_factory: pytest.TempPathFactory, images: CanonicalImages) -> Iterator[Path]:
    """croot has busybox and a running container ``live``."""
    from tests.helpers import clean_root

    root = tmp_path_factory.mktemp("cli-flags") / "root"
    ctl_proc(
        "run", "-d", "--name", "live", "--net", "none", images.busybox_ref, "sleep", "300",
        root=root,
    ).assert_success()  # fmt: skip
    yield root
    clean_root(root)


def _wait_for_log(root: Path, name: str, text: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        out = ctl_proc("logs", name, root=root).stdout
        if text in out or time.monotonic() > deadline:
            return out
        time.sleep(0.1)


def _inspect(root: Path, *args: str) -> list[dict]:
    return json.loads(run_ctl("inspect", *args, root=root).assert_success().stdout)


def test_stop_signal_and_timeout(croot: Path, images: CanonicalImages) -> None:
    ctl_proc(
        "run", "-d", "--name", "trap", "--net", "none", images.busybox_ref,
        "sh", "-c", TRAP, "USR1", root=croot,
    ).assert_success()  # fmt: skip
    try:
        assert "ready" in _wait_for_log(croot, "trap", "ready")
        ctl_proc("stop", "-s", "USR1", "--timeout", "10", "trap", root=croot).assert_success()
        assert "got USR1" in ctl_proc("logs", "trap", root=croot).stdout
        assert _inspect(croot, "trap")[0]["State"]["ExitCode"] == 7
        # restart takes the same flags; --time is docker's deprecated spelling.
        ctl_proc("restart", "--signal", "USR1", "--time", "5", "trap", root=croot).assert_success()
        assert _inspect(croot, "trap")[0]["State"]["Running"] is True
        run_ctl("stop", "-s", "SIGNOPE", "trap", root=croot).assert_failure(125, "SIGNOPE")
    finally:
        ctl_proc("rm", "-f", "trap", root=croot).assert_success()


def test_exec_env_file_and_privileged(croot: Path, tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("# a comment\nA=1\nB=two\n")
    out = ctl_proc(
        "exec", "--env-file", str(env_file), "-e", "B=three", "--detach-keys", "ctrl-a",
        "live", "sh", "-c", "echo $A $B", root=croot,
    ).assert_success().stdout  # fmt: skip
    assert out == "1 three\n", "-e overrides --env-file, as docker's"

    def effective(*flags: str) -> int:
        status = ctl_proc("exec", *flags, "live", "cat", "/proc/self/status", root=croot)
        line = next(
            x for x in status.assert_success().stdout.splitlines() if x.startswith("CapEff")
        )
        return int(line.split()[1], 16)

    plain, privileged = effective(), effective("--privileged")
    assert plain & privileged == plain and privileged != plain
    assert privileged >> 21 & 1, "CAP_SYS_ADMIN"
    run_ctl(
        "exec", "--env-file", str(tmp_path / "none"), "live", "true", root=croot
    ).assert_failure(125, "--env-file")
    run_ctl("exec", "--detach-keys", "ctrl-1", "live", "true", root=croot).assert_failure(
        125, "--detach-keys"
    )


def test_start_flags_are_checked(croot: Path, images: CanonicalImages) -> None:
    run_ctl("create", "--name", "idle", images.busybox_ref, "true", root=croot).assert_success()
    try:
        run_ctl("start", "--checkpoint", "c1", "idle", root=croot).assert_failure(125, "CRIU")
        run_ctl("start", "--detach-keys", "ctrl-1", "idle", root=croot).assert_failure(
            125, "--detach-keys"
        )
        ctl_proc("start", "-a", "--detach-keys", "ctrl-x", "idle", root=croot).assert_success()
    finally:
        run_ctl("rm", "-f", "idle", root=croot).assert_success()


def test_logs_window_and_details(croot: Path, images: CanonicalImages) -> None:
    ctl_proc(
        "run", "--name", "talk", "--net", "none", images.busybox_ref,
        "sh", "-c", "echo one; sleep 1.2; echo two", root=croot,
    ).assert_success()  # fmt: skip
    try:
        stamped = ctl_proc("logs", "-t", "talk", root=croot).assert_success().stdout.splitlines()
        (one_at, _), (two_at, _) = (line.split(" ", 1) for line in stamped)
        assert run_ctl("logs", "--since", two_at, "talk", root=croot).stdout == "two\n"
        assert run_ctl("logs", "--until", one_at, "talk", root=croot).stdout == "one\n"
        from ctl.timefmt import parse_rfc3339

        unix = parse_rfc3339(two_at)
        assert unix is not None
        assert run_ctl("logs", "--since", f"{unix - 0.1:.3f}", "talk", root=croot).stdout == (
            "two\n"
        )
        assert run_ctl("logs", "--since", "2000-01-01", "talk", root=croot).stdout == "one\ntwo\n"
        assert run_ctl("logs", "-n", "1", "talk", root=croot).stdout == "two\n"
        assert run_ctl("logs", "--details", "talk", root=croot).stdout == " one\n two\n"
    finally:
        run_ctl("rm", "-f", "talk", root=croot).assert_success()


def test_pull_and_push_all_tags(
    root: Path, tmp_path: Path, images: CanonicalImages, registry: RegistryServer
) -> None:
    repository = f"{registry.host}/cli/alltags"
    run_ctl("pull", images.busybox_ref, root=root).assert_success()
    for tag in ("a", "b"):
        run_ctl("tag", images.busybox_ref, f"{repository}:{tag}", root=root).assert_success()
    pushed = run_ctl("push", "-a", repository, root=root).assert_success().stdout
    assert f"{repository}:a: Digest: sha256:" in pushed and f"{repository}:b: " in pushed
    run_ctl("push", "-a", f"{repository}:a", root=root).assert_failure(125, "--all-tags")

    other = tmp_path / "other"
    run_ctl("pull", "--all-tags", repository, root=other).assert_success()
    names = run_ctl("images", "--format", "{{.Repository}}:{{.Tag}}", root=other).stdout.split()
    assert sorted(names) == [f"{repository}:a", f"{repository}:b"]
    run_ctl("pull", "-a", f"{repository}:a", root=other).assert_failure(125, "--all-tags")
    run_ctl("pull", "-a", f"{registry.host}/cli/nothing-here", root=other).assert_failure(125)


def test_rmi_no_prune_removes_only_the_name(root: Path, images: CanonicalImages) -> None:
    """ctl has no parent images: --no-prune changes nothing, the other names stay."""
    run_ctl("pull", images.busybox_ref, root=root).assert_success()
    run_ctl("tag", images.busybox_ref, "cli/kept:1", root=root).assert_success()
    out = run_ctl("rmi", "--no-prune", "cli/kept:1", root=root).assert_success().stdout
    assert out == "Untagged: cli/kept:1\n"
    assert run_ctl("images", "-q", root=root).stdout.strip()
    run_ctl("image", "inspect", images.busybox_ref, root=root).assert_success()
    other = "linux/s390x" if "s390x" not in images.host_platform else "linux/riscv64"
    run_ctl("rmi", "--platform", other, images.busybox_ref, root=root).assert_failure(
        125, "platform"
    )


def test_system_prune(root: Path, images: CanonicalImages) -> None:
    run_ctl("pull", images.busybox_ref, root=root).assert_success()
    ctl_proc("run", "--name", "done", "--net", "none", images.busybox_ref, "true", root=root)
    ctl_proc("create", "--name", "keep", "-l", "keep=yes", images.busybox_ref, root=root)
    done_id = _inspect(root, "done")[0]["Id"]
    run_ctl("system", "prune", root=root, input="n\n").assert_failure(125, "cancelled")
    assert len(_inspect(root, "done", "keep")) == 2
    run_ctl("system", "prune", "-f", "--volumes", "--filter", "bad", root=root).assert_failure(
        125, "bad"
    )
    out = (
        run_ctl("system", "prune", "-f", "--filter", "label!=keep=yes", root=root)
        .assert_success()
        .stdout
    )
    assert out.startswith(f"Deleted Containers:\n{done_id}\n\n")
    assert "Total reclaimed space: " in out
    names = run_ctl("ps", "-a", "--format", "{{.Names}}", root=root).stdout.split()
    assert names == ["keep"]
    assert run_ctl("images", "-q", root=root).stdout.strip(), "not dangling: kept"
    run_ctl("rm", "keep", root=root).assert_success()
    out = run_ctl("system", "prune", "-a", "-f", root=root).assert_success().stdout
    assert "Deleted Images:\nuntagged: " in out
    assert run_ctl("images", "-q", root=root).stdout == ""


def test_system_df_verbose(croot: Path) -> None:
    out = run_ctl("system", "df", "-v", root=croot).assert_success().stdout
    sections = [
        "Images space usage:",
        "Containers space usage:",
        "Local Volumes space usage:",
        "Build cache usage: 0B",
    ]
    assert [line for line in out.splitlines() if line in sections] == sections
    images_table = out.split("Containers space usage:")[0]
    assert "SHARED SIZE   UNIQUE SIZE   CONTAINERS" in images_table
    assert images_table.splitlines()[3].rstrip().endswith("1"), "live uses busybox"
    assert " live\n" in out
    doc = json.loads(run_ctl("system", "df", "-v", "--format", "json", root=croot).stdout)
    assert [c["Names"] for c in doc["Containers"]] == ["live"]


def test_inspect_any_object(croot: Path, images: CanonicalImages) -> None:
    container, image = _inspect(croot, "live", images.busybox_ref)
    assert container["Name"] == "/live" and image["RepoTags"]
    run_ctl("inspect", "--type", "image", "live", root=croot).assert_failure(125, "live")
    run_ctl("inspect", "nosuch", root=croot).assert_failure(125, "no such object: nosuch")
    run_ctl("inspect", "--type", "bogus", "live", root=croot).assert_failure(125, "unknown type")
    (sized,) = _inspect(croot, "-s", "--type", "container", "live")
    assert sized["SizeRootFs"] >= sized["SizeRw"] >= 0
    result = run_ctl("inspect", "-s", images.busybox_ref, root=croot).assert_success()
    assert "WARNING: --size ignored for image" in result.stderr
    assert run_ctl("container", "inspect", "-s", "live", "-f", "{{.SizeRw}}", root=croot).stdout
    # Several names: what is found is printed, what is not is reported, exit 125.
    both = run_ctl("inspect", "-f", "{{.Name}}", "live", "nosuch", root=croot)
    assert both.code == 125 and both.stdout == "/live\n" and "nosuch" in both.stderr


def test_inspect_network(root: Path) -> None:
    run_ctl("network", "create", "cli-inspect-net", root=root).assert_success()
    try:
        (doc,) = _inspect(root, "cli-inspect-net")
        assert doc["Name"] == "cli-inspect-net"
        assert _inspect(root, "--type", "network", "cli-inspect-net")[0]["Name"] == doc["Name"]
    finally:
        run_ctl("network", "rm", "cli-inspect-net", root=root).assert_success()


def test_images_filter(root: Path, images: CanonicalImages) -> None:
    run_ctl("pull", images.busybox_ref, root=root).assert_success()
    for name in ("cli/a:1", "cli/b:2"):
        run_ctl("tag", images.busybox_ref, name, root=root).assert_success()

    def names(*flags: str) -> list[str]:
        out = run_ctl("images", "--format", "{{.Repository}}:{{.Tag}}", *flags, root=root)
        return sorted(out.assert_success().stdout.split())

    assert names("-f", "reference=cli/a") == ["cli/a:1"]
    assert names("--filter", "reference=cli/*:2") == ["cli/b:2"]
    assert names("-f", "reference=cli/*", "-f", "reference=nothing") == [
        "cli/a:1",
        "cli/b:2",
    ]
    assert names("-f", "reference=*") == [], "* does not cross a /, as Go's path.Match"
    assert names("-f", "dangling=true") == []
    assert len(names("-f", "dangling=false")) == 3
    assert names("-f", "label=no-such-label") == []
    assert names("-f", "before=cli/a:1") == [], "the same image: not created before itself"
    assert names("-f", "since=cli/a:1") == []
    run_ctl("images", "-f", "bogus=1", root=root).assert_failure(125, "invalid filter 'bogus'")
    run_ctl("images", "-f", "before=no/such:img", root=root).assert_failure(125)
    run_ctl("images", "-f", "dangling=maybe", root=root).assert_failure(125, "dangling")


def test_version_and_info_templates(root: Path) -> None:
    from ctl import __version__

    out = run_ctl("version", "--format", "{{.Client.Version}}", root=root).assert_success()
    assert out.stdout == f"{__version__}\n"
    server = run_ctl("version", "-f", "{{.Server.Version}}", root=root).stdout
    assert server == f"{__version__}\n"
    assert run_ctl("info", "-f", "{{.Root}}", root=root).stdout == f"{root}\n"


def test_group_aliases(croot: Path) -> None:
    """docker's container/image/system spellings, some of them another module's command."""
    listed = run_ctl("container", "ls", "--format", "{{.Names}}", root=croot).stdout.split()
    assert listed == run_ctl("ps", "--format", "{{.Names}}", root=croot).stdout.split()
    assert run_ctl("container", "ps", "-a", "-q", root=croot).assert_success().stdout
    run_ctl("container", "diff", "live", root=croot).assert_success()
    run_ctl("container", "top", "live", root=croot).assert_success(stdout_re="sleep 300")
    run_ctl("image", "ls", "-q", root=croot).assert_success()
    run_ctl("system", "info", root=croot).assert_success(stdout_re="^Root: ")
    run_ctl("containers", "ls", "-q", root=croot).assert_success()
