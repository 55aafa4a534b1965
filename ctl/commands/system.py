"""System commands: version, info."""

from __future__ import annotations

import platform
import sys

from ctl import __version__
from ctl.commands._base import (
    Command,
    Group,
    add_format,
    add_format_only,
    complete,
    complete_containers,
)
from ctl.errdefs import CtlError, InvalidArgument

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    import argparse

    from ctl.commands._base import Context
    from ctl.output import Listing


# The Engine API version whose documents and behaviour ctl follows: that of docker/cli
# 29.7 (its client's MaxAPIVersion), whose reference tests/data/docker_cli.json is from.
DOCKER_API_VERSION = "1.55"


def commands() -> tuple[Command | Group, ...]:
    info = Command("info", _info, "Show system-wide information", _info_flags)
    return (
        Command("version", _version, "Show the ctl and runc versions", _version_flags),
        info,
        Command("prune", _prune, "Remove what nothing references", _prune_flags),
        Group(
            "system",
            "Manage the ctl root as a whole",
            (
                Command(
                    "prune",
                    _system_prune,
                    "Remove stopped containers, dangling images and what nothing references",
                    _system_prune_flags,
                ),
                Command("df", _df, "Show disk usage", _df_flags),
                Command("check", _check, "Verify every blob, snapshot and record", _check_flags),
                Command("boot", _boot, "Start the containers whose restart policy says so"),
                info,
                # events' own command, imported only when run.
                Command("events", "events:_events", "Show events", "events:_flags"),
            ),
        ),
        Command("completion", _completion, "Print a shell completion script", _completion_flags),
        Group(
            "generate",
            "Generate files for other tools",
            (Command("systemd", _systemd, "Print a systemd unit for a container", _systemd_flags),),
        ),
    )


def _check_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repair",
        action="store_true",
        help="remove or rebuild what cannot be read, and say what was done",
    )


def _completion_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shell", choices=("bash", "zsh", "fish"), metavar="SHELL")


def _systemd_flags(parser: argparse.ArgumentParser) -> None:
    complete(parser.add_argument("container", metavar="NAME", nargs="?"), complete_containers)
    parser.add_argument(
        "--boot",
        action="store_true",
        help="instead, the unit that runs 'ctl system boot' once a boot",
    )


def _version_flags(parser: argparse.ArgumentParser) -> None:
    from ctl.output import check_template

    parser.add_argument(
        "-f",
        "--format",
        type=check_template,
        metavar="TEMPLATE",
        help="a template, e.g. '{{.Client.Version}}' or '{{json .}}'",
    )


def _info_flags(parser: argparse.ArgumentParser) -> None:
    add_format(parser, quiet=False, short=True)


def _df_flags(parser: argparse.ArgumentParser) -> None:
    add_format_only(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="every image and container")


def _system_prune_flags(parser: argparse.ArgumentParser) -> None:
    _prune_flags(parser)
    parser.add_argument(
        "--filter", action="append", default=[], metavar="KEY=VALUE", help="until=, label=, label!="
    )


def _prune_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-a", "--all", action="store_true", help="also remove images no container uses"
    )
    parser.add_argument("-f", "--force", action="store_true", help="do not ask for confirmation")
    parser.add_argument(
        "--volumes", action="store_true", help="also remove anonymous volumes no container uses"
    )


def runc_version() -> str:
    """runc_version is runc's own version, or why there is none."""
    from pathlib import Path

    from ctl.errdefs import CtlError
    from ctl.paths import DEFAULT_ROOT
    from ctl.runtime.runc import Runc, RuncError

    try:
        # runc --version reads no state, so any root does.
        return Runc(Path(DEFAULT_ROOT) / "runc").version().get("runc") or "unknown"
    except RuncError:
        return "unknown"
    except CtlError:  # runc cannot be run at all
        return "not found"


def print_version() -> None:
    print(f"ctl version {__version__}")
    print(f"runc version {runc_version()}")
    print(f"python version {platform.python_version()}")


def _version(args: argparse.Namespace, ctx: Context) -> int:
    if args.format is None:
        print_version()
        return 0
    from ctl.output import render_template
    from ctl.reference import host_platform

    # Daemonless: the "server" is ctl itself, as scripts asking {{.Server.Version}} expect one.
    engine = {
        "Platform": {"Name": "ctl"},
        "Version": __version__,
        # Go's field is APIVersion (templates), its JSON key ApiVersion: scripts use both.
        "APIVersion": DOCKER_API_VERSION,
        "ApiVersion": DOCKER_API_VERSION,
        # Empty, docker's value when unknown: a Python version there would read as Go's.
        "GoVersion": "",
        "PythonVersion": platform.python_version(),
        "Os": "linux",
        "Arch": host_platform().architecture,
    }
    runc = {"Name": "runc", "Version": runc_version()}
    server = {**engine, "KernelVersion": platform.release(), "Components": [runc]}
    document = {"Client": engine, "Server": server}
    # docker's --format json is {{json .}}.
    template = "{{json .}}" if args.format == "json" else args.format
    sys.stdout.write(render_template(template, [document]))
    return 0


# Plain ``info``: docker's label for each key it shows, then ctl's own keys as they are.
_INFO_LINES = (
    ("Containers", "Containers"),
    (" Running", "ContainersRunning"),
    (" Paused", "ContainersPaused"),
    (" Stopped", "ContainersStopped"),
    ("Images", "Images"),
    ("Server Version", "ServerVersion"),
    ("Storage Driver", "Driver"),
    ("Cgroup Driver", "CgroupDriver"),
    ("Cgroup Version", "CgroupVersion"),
    ("Kernel Version", "KernelVersion"),
    ("Operating System", "OperatingSystem"),
    ("OSType", "OSType"),
    ("Architecture", "Architecture"),
    ("CPUs", "NCPU"),
    ("Total Memory", "MemTotal"),
    ("Name", "Name"),
    ("Docker Root Dir", "DockerRootDir"),
    ("Root", "Root"),
    ("Namespace", "Namespace"),
    ("Platform", "Platform"),
    ("RuncVersion", "RuncVersion"),
    ("Python", "Python"),
)


def _info(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.system import info

    document = info(ctx.client, runc_version)
    if "{{" in args.format:
        from ctl.output import render_template

        sys.stdout.write(render_template(args.format, [document]))
        return 0
    if args.format == "json":
        from ctl.gotemplate import marshal

        print(marshal(document))
        return 0
    values = {key: value() if callable(value) else value for key, value in document.items()}
    values["MemTotal"] = _binary_size(values["MemTotal"])
    for label, key in _INFO_LINES:
        print(f"{label}: {values[key]}")
    return 0


def _binary_size(size: float) -> str:
    """_binary_size is docker's units.BytesSize: 1024-based units, four digits."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            break
        size /= 1024
    return f"{size:.4g}{unit}"


def _prune(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.errdefs import FailedPrecondition
    from ctl.progress import human_size

    if not args.force and sys.stdin is not None and sys.stdin.isatty():
        what = "images no container uses and all" if args.all else "all"
        what = f"anonymous volumes no container uses, {what}" if args.volumes else what
        answer = input(f"This removes {what} unreferenced content and snapshots. Continue? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            raise FailedPrecondition("prune cancelled")
    result = ctx.client.prune(unused_images=args.all, volumes=args.volumes)
    for name in result.images:
        print(f"Untagged: {name}")
    for digest in result.blobs:
        print(f"Deleted: {digest}")
    for key in result.snapshots:
        print(f"Deleted snapshot: {key}")
    for container in result.leftovers:
        print(f"Deleted leftovers of unfinished container: {container}")
    for bridge in result.bridges:
        print(f"Deleted unused bridge: {bridge}")
    if result.volumes:
        print("Deleted Volumes:")
        for name in result.volumes:
            print(name)
    print(f"Total reclaimed space: {human_size(result.reclaimed)}")
    return 0


# docker's question before a system prune, one line a kind of object, in docker's order.
_SYSTEM_PRUNE_WHAT = (
    ":\n  - all stopped containers\n  - all networks not used by at least one container\n"
    "{volumes}  - all {images}\n  - all unreferenced content\n"
    "  - the leftovers of unfinished containers\n"
)


def _system_prune(args: argparse.Namespace, ctx: Context) -> int:
    """_system_prune is docker's: stopped containers, unused networks, (--volumes) unused
    anonymous volumes, dangling (-a: unused) images, then ctl's collection of the content
    and snapshots nothing references."""
    from ctl.commands.images import print_pruned_images
    from ctl.commands.network import prune_filter
    from ctl.commands.transfer import confirm, parse_prune_filters
    from ctl.progress import human_size

    until, labels = parse_prune_filters(args.filter)
    keep_networks = prune_filter(args.filter) if args.filter else None
    if not args.force:
        unused = "images without at least one container associated to them"
        kind = unused if args.all else "dangling images"
        volumes = "  - all anonymous volumes not used by at least one container\n"
        what = _SYSTEM_PRUNE_WHAT.format(images=kind, volumes=volumes if args.volumes else "")
        confirm(what.rstrip("\n"), "system prune")
    client = ctx.client
    containers = client.prune_containers(until=until, labels=labels)
    if containers:
        print("Deleted Containers:")
        print("".join(f"{container_id}\n" for container_id, _ in containers))
    networks = client.prune_networks(keep_networks)
    if networks:
        print("Deleted Networks:")
        print("".join(f"{name}\n" for name in networks))
    volumes_reclaimed = 0
    if args.volumes:
        pruned, volumes_reclaimed = client.prune_volumes()
        if pruned:
            print("Deleted Volumes:")
            print("".join(f"{name}\n" for name in pruned))
    images, images_reclaimed = client.prune_images(unused=args.all, until=until, labels=labels)
    print_pruned_images(images)
    # What the removed containers left (and anything else unreferenced) goes too.
    collected = client.prune()
    reclaimed = (
        sum(size for _, size in containers)
        + images_reclaimed
        + volumes_reclaimed
        + collected.reclaimed
    )
    print(f"Total reclaimed space: {human_size(reclaimed)}")
    return 0


def _df(args: argparse.Namespace, ctx: Context) -> Listing | int:
    from ctl.output import Column, Listing

    if args.verbose:
        return _df_verbose(args, ctx)

    columns = (
        Column("TYPE", "Type"),
        Column("TOTAL", "TotalCount"),
        Column("ACTIVE", "Active"),
        Column("SIZE", "Size"),
        Column("RECLAIMABLE", "Reclaimable"),
    )
    return Listing(columns, ctx.client.disk_usage())


def _df_verbose(args: argparse.Namespace, ctx: Context) -> int:
    """_df_verbose prints docker's ``system df -v``: images, containers, volumes, build cache.

    It covers the namespace ctl works in, as images and ps do; ctl builds no
    images, so it has no build cache.
    """
    from ctl.commands.containers import ps_row
    from ctl.output import Column, Listing, print_listing
    from ctl.progress import human_size
    from ctl.system import image_usage, volume_usage

    client = ctx.client
    images = image_usage(client)
    containers = []
    for container in client.list_containers():
        row = ps_row(container, client.task_state(container), no_trunc=False)
        row["Size"] = human_size(client.container_size(container)[0])
        containers.append(row)
    volumes = [
        {"Name": name, "Links": str(links), "Size": human_size(size)}
        for name, links, size in volume_usage(client)
    ]
    if args.format != "table":
        from ctl.gotemplate import marshal

        # docker's {{json .}} of its verbose document: one line, each row a sorted map.
        found = {"Images": images, "Containers": containers, "Volumes": volumes}
        document = {key: [dict(sorted(r.items())) for r in rows] for key, rows in found.items()}
        print(marshal({**document, "BuildCache": []}))
        return 0
    sections = (
        (
            "Images space usage:",
            Listing(
                (
                    Column("REPOSITORY", "Repository"),
                    Column("TAG", "Tag"),
                    Column("IMAGE ID", "ID"),
                    Column("CREATED", "CreatedSince"),
                    Column("SIZE", "Size"),
                    Column("SHARED SIZE", "SharedSize"),
                    Column("UNIQUE SIZE", "UniqueSize"),
                    Column("CONTAINERS", "Containers"),
                ),
                images,
            ),
        ),
        (
            "Containers space usage:",
            Listing(
                (
                    Column("CONTAINER ID", "ID"),
                    Column("IMAGE", "Image"),
                    Column("COMMAND", "Command"),
                    Column("LOCAL VOLUMES", "LocalVolumes"),
                    Column("SIZE", "Size"),
                    Column("CREATED", "RunningFor"),
                    Column("STATUS", "Status"),
                    Column("NAMES", "Names"),
                ),
                containers,
            ),
        ),
        (
            "Local Volumes space usage:",
            Listing(
                (Column("VOLUME NAME", "Name"), Column("LINKS", "Links"), Column("SIZE", "Size")),
                volumes,
            ),
        ),
    )
    for title, listing in sections:
        print(f"{title}\n")
        print_listing(listing, "table", quiet=False)
        print()
    print("Build cache usage: 0B")
    return 0


def _check(args: argparse.Namespace, ctx: Context) -> int:
    problems = repaired = checked = 0
    for finding in ctx.client.check():
        checked += 1
        if not finding.problem:
            continue
        problems += 1
        print(f"{finding.what}: {finding.problem}")
        if args.repair and finding.repair is not None:
            # Before the next finding: later checks then see the repaired root.
            try:
                print(f"  repaired: {finding.repair()}")
                repaired += 1
            except (CtlError, OSError) as err:
                print(f"  not repaired: {err}")
    summary = f"checked {checked} objects: {problems} problem{'s' if problems != 1 else ''}"
    print(f"{summary}, {repaired} repaired" if args.repair else summary)
    # fsck's convention: non-zero when something is wrong (with --repair: still wrong).
    return 1 if problems > repaired else 0


def _boot(args: argparse.Namespace, ctx: Context) -> int:
    started, failed = ctx.client.boot()
    for name in started:
        print(name)
    # Non-zero, so that the boot unit shows as failed in systemctl.
    return 1 if failed else 0


def _completion(args: argparse.Namespace, ctx: Context) -> int:
    from argcomplete.shell_integration import shellcode

    sys.stdout.write(shellcode(["ctl"], shell=args.shell))
    return 0


def _systemd(args: argparse.Namespace, ctx: Context) -> int:
    if args.boot == (args.container is not None):
        raise InvalidArgument("generate systemd takes a container NAME or --boot")
    sys.stdout.write(ctx.client.systemd_unit(args.container))
    return 0
