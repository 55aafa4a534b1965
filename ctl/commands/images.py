"""Image commands: pull, push, images, rmi, tag, image inspect|history, save, load."""

from __future__ import annotations

import sys

from ctl.commands._base import (
    Command,
    Group,
    add_format,
    add_inspect_format,
    add_platform,
    bool_flag,
    complete,
    complete_images,
    each,
)
from ctl.errdefs import CtlError, InvalidArgument

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    import argparse
    from typing import Any

    from ctl.commands._base import Context
    from ctl.images.summary import ImageSummary
    from ctl.oci import Platform
    from ctl.output import Listing


def commands() -> tuple[Command | Group, ...]:
    pull = Command("pull", _pull, "Pull an image from a registry", _pull_flags)
    push = Command("push", _push, "Push an image to a registry", _push_flags)
    tag = Command("tag", _tag, "Create a tag DST that refers to SRC", _tag_flags)
    save = Command("save", _save, "Save images to an OCI archive", _save_flags)
    load = Command("load", _load, "Load images from an archive", _load_flags)
    history = Command("history", _history, "Show the history of an image", _history_flags)
    return (
        pull,
        push,
        Command("images", _images, "List images", _images_flags),
        Command("rmi", _rmi, "Remove one or more images", _rmi_flags),
        history,
        tag,
        save,
        load,
        Group(
            "image",
            "Manage images",
            (
                Command("inspect", _inspect, "Show images as JSON", _inspect_flags),
                history,
                Command("prune", _prune, "Remove unused images", _prune_flags),
                Command("ls", _images, "List images", _images_flags, ("list",)),
                Command("rm", _rmi, "Remove images", _rmi_flags, ("remove",)),
                pull,
                push,
                tag,
                save,
                load,
                Command("unpack", _unpack, "Unpack a fetched image into snapshots", _unpack_flags),
                # transfer's import, imported only when run.
                Command(
                    "import",
                    "transfer:_import",
                    "Import a tarball to create a filesystem image",
                    "transfer:_import_flags",
                ),
            ),
        ),
    )


def _image_arg(parser: argparse.ArgumentParser, dest: str, metavar: str = "REF") -> None:
    complete(parser.add_argument(dest, metavar=metavar), complete_images)


def _images_arg(parser: argparse.ArgumentParser) -> None:
    complete(parser.add_argument("refs", nargs="+", metavar="REF"), complete_images)


def _pull_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("ref", metavar="REF", help="image reference, e.g. busybox or host/repo:tag")
    add_platform(parser, "os/arch[/variant] (default: this host's)")
    parser.add_argument("--insecure", action="store_true", help="allow plain HTTP and bad TLS")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="print only the reference pulled"
    )
    parser.add_argument(
        "-a", "--all-tags", action="store_true", help="every tag of the repository REF names"
    )


def _push_flags(parser: argparse.ArgumentParser) -> None:
    _image_arg(parser, "ref")
    parser.add_argument("--insecure", action="store_true", help="allow plain HTTP and bad TLS")
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="print only the reference pushed"
    )
    parser.add_argument(
        "-a", "--all-tags", action="store_true", help="every local tag of the repository REF names"
    )
    add_platform(parser, "the image's platform: checked (ctl's images have one platform)")


def _images_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("repository", nargs="?", metavar="REPOSITORY[:TAG]", help="filter")
    add_format(parser)
    parser.add_argument("--digests", action="store_true", help="show digests")
    parser.add_argument(
        "-a", "--all", action="store_true", help="show dangling images too (<none>)"
    )
    parser.add_argument("--no-trunc", action="store_true", help="do not truncate IDs")
    parser.add_argument(
        "-f",
        "--filter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="reference=GLOB, label=K[=V], dangling=BOOL, before=IMAGE, since=IMAGE",
    )
    # docker's experimental tree view; ctl's images have no intermediate layers to show.
    parser.add_argument("--tree", action="store_true", help="the same list (no image trees)")


def _rmi_flags(parser: argparse.ArgumentParser) -> None:
    _images_arg(parser)
    parser.add_argument("-f", "--force", action="store_true", help="remove every name of an ID")
    # ctl's images have no parent images to prune: rmi never removes others.
    parser.add_argument("--no-prune", action="store_true", help="keep parents (ctl has none)")
    add_platform(parser, "the image's platform: checked (ctl's images have one platform)")


def _tag_flags(parser: argparse.ArgumentParser) -> None:
    _image_arg(parser, "source", "SRC")
    parser.add_argument("target", metavar="DST")


def _save_flags(parser: argparse.ArgumentParser) -> None:
    _images_arg(parser)
    parser.add_argument("-o", "--output", metavar="FILE", help="write to FILE (default stdout)")
    add_platform(parser, "the images' platform: checked (ctl's images have one platform)")


def _load_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input", metavar="FILE", default="-", help="archive (- = stdin)")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only image names")
    add_platform(parser, "the platform the loaded names stand for (an archive of several)")


def _inspect_flags(parser: argparse.ArgumentParser) -> None:
    _images_arg(parser)
    add_inspect_format(parser)
    add_platform(parser, "the image's platform: checked (ctl's images have one platform)")


def _history_flags(parser: argparse.ArgumentParser) -> None:
    _image_arg(parser, "ref")
    add_format(parser)
    parser.add_argument("--no-trunc", action="store_true", help="do not truncate output")
    bool_flag(parser, "-H", "--human", help="print sizes and dates in human-readable form")
    add_platform(parser, "the image's platform: checked (ctl's images have one platform)")


def _prune_flags(parser: argparse.ArgumentParser) -> None:
    from ctl.commands.transfer import container_prune_flags

    parser.add_argument(
        "-a", "--all", action="store_true", help="remove all unused images, not just dangling ones"
    )
    container_prune_flags(parser)


def _unpack_flags(parser: argparse.ArgumentParser) -> None:
    _image_arg(parser, "ref")
    add_platform(parser, "os/arch[/variant] (default: this host's)")


# Handlers.


def _platform(text: str | None) -> Platform | None:
    if not text:
        return None
    from ctl.reference import parse_platform

    return parse_platform(text)


def _target_of(ctx: Context, ref: str) -> str | None:
    """_target_of is the digest the name ``ref`` stands for now, for pull's Status line: None
    for a new name, and for one whose record cannot be read (pull writes it again)."""
    from ctl.reference import parse

    name = str(parse(ref))
    try:
        return ctx.client.images.get(name).target.digest
    except CtlError:
        return None


def _has_tag(ref: str) -> bool:
    """_has_tag: ``ref`` names a tag or a digest, not a repository alone."""
    return "@" in ref or ":" in ref.rsplit("/", 1)[-1]


def _repository(ref: str) -> str:
    """_repository is ``ref`` for -a/--all-tags, which takes a repository without a tag."""
    if _has_tag(ref):
        raise InvalidArgument("tag can't be used with --all-tags/-a")
    return ref


def _quiet_line(ref: str, all_tags: bool) -> str:
    """_quiet_line is what docker's pull -q and push -q print: the normalised reference
    (``docker.io/library/busybox:latest``), a repository alone with -a/--all-tags."""
    from ctl.reference import parse, parse_named

    return str(parse_named(ref) if all_tags else parse(ref))


def _pull(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.progress import for_stream

    platform = _platform(args.platform)
    refs = [args.ref]
    if args.all_tags:
        repository = _repository(args.ref)
        refs = [f"{repository}:{tag}" for tag in ctx.client.repository_tags(repository)]
    befores = {ref: _target_of(ctx, ref) for ref in refs}  # bad input fails before any output
    if not args.quiet and not args.all_tags and not _has_tag(args.ref):
        print("Using default tag: latest", flush=True)
    for ref in refs:
        before = befores[ref]
        image = ctx.client.pull(
            ref, platform=platform, insecure=args.insecure, progress=for_stream(args.quiet)
        )
        if not args.quiet:
            same = before == image.target.digest
            news = "Image is up to date" if same else "Downloaded newer image"
            print(f"Digest: {image.target.digest}")
            print(f"Status: {news} for {_familiar(image.name)}")
            print(image.name)
    if args.quiet:
        print(_quiet_line(args.ref, args.all_tags))
    return 0


def _unpack(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.progress import for_stream

    client = ctx.client
    image = client.get_image(args.ref)
    progress = for_stream(quiet=False)
    try:
        top = client.unpack(image, _platform(args.platform), progress)
    finally:
        progress.close()
    print(f"unpacked {image.name} into {client.snapshotter_name}: {top}")
    return 0


def _push(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.errdefs import NotFound
    from ctl.progress import for_stream

    refs = [args.ref]
    if args.all_tags:
        refs = ctx.client.local_tags(_repository(args.ref))
        if not refs:
            raise NotFound(f"no local image is tagged in the repository {args.ref!r}")
    for ref in refs:
        _check_platform(ctx, ref, args.platform)
        pushed = ctx.client.push(ref, insecure=args.insecure, progress=for_stream(args.quiet))
        if not args.quiet:
            print(
                f"{ref}: Digest: {pushed.digest}" if args.all_tags else f"Digest: {pushed.digest}"
            )
    if args.quiet:
        print(_quiet_line(args.ref, args.all_tags))
    return 0


def _check_platform(ctx: Context, ref: str, platform: str | None) -> None:
    """_check_platform refuses an image of another platform than ``--platform`` names.

    docker's --platform picks one platform of a multi-platform image; ctl's
    image names stand for one platform each, so it can only be that one.
    """
    if platform is None:
        return
    from ctl.errdefs import NotFound
    from ctl.reference import parse_platform, platform_matches

    have = ctx.client.summarize(ctx.client.get_image(ref)).platform
    try:
        matches = platform_matches(parse_platform(platform), parse_platform(have))
    except InvalidArgument:  # an image whose config names no platform ctl knows
        matches = False
    if not matches:
        raise NotFound(
            f"image {ref!r} was found but does not provide the specified platform ({platform})",
            hint=f"its platform is {have}",
        )


def _unnamed(name: str) -> bool:
    """_unnamed: an image of no name is recorded under its digest and listed as <none>."""
    return name.startswith("sha256:")


def _split_name(name: str) -> tuple[str, str, str]:
    """_split_name gives the REPOSITORY (familiar: ``busybox``), TAG and digest of a name."""
    if _unnamed(name):
        return "<none>", "<none>", name
    from ctl.reference import familiar_name, parse

    ref = parse(name)
    return familiar_name(ref.domain, ref.path), ref.tag or "<none>", ref.digest or ""


def _familiar(name: str) -> str:
    """_familiar is docker's short form of an image name: ``busybox:latest``."""
    from ctl.reference import parse

    return parse(name).familiar


def _short_id(digest: str, no_trunc: bool) -> str:
    return digest if no_trunc else digest.removeprefix("sha256:")[:12]


def _image_row(summary: ImageSummary, no_trunc: bool) -> dict[str, Any]:
    from ctl.progress import human_size
    from ctl.timefmt import ago, go_time_string, parse_rfc3339

    repo, tag, digest = _split_name(summary.image.name)
    created = parse_rfc3339(summary.created)
    return {
        "Repository": repo,
        "Tag": tag,
        "ID": _short_id(summary.id, no_trunc),
        "Digest": digest or summary.image.target.digest,
        # docker's image without a creation time has Created 0: the epoch.
        "CreatedAt": go_time_string(created or 0.0),
        "CreatedSince": ago(created),
        "Size": human_size(summary.size),
        # docker's listing has these; its daemon fills them only for system df.
        "VirtualSize": human_size(summary.size),
        "Containers": "N/A",
        "SharedSize": "N/A",
        "UniqueSize": "N/A",
        "Platform": summary.platform,
        "Name": summary.image.name,
    }


def _images(args: argparse.Namespace, ctx: Context) -> Listing:
    from ctl.output import Column, Listing
    from ctl.timefmt import parse_rfc3339

    client = ctx.client
    images = client.list_images()
    # docker hides dangling images unless -a, or a dangling filter, asks for them.
    if not args.all and not any(f.partition("=")[0] == "dangling" for f in args.filter):
        images = [i for i in images if not _unnamed(i.name)]
    if args.repository:
        images = [i for i in images if _matches(i.name, args.repository)]
    summaries = [client.summarize(i) for i in images]
    if args.filter:
        from ctl.images.filter import ImageFilter

        def created(ref: str) -> float:
            return parse_rfc3339(client.summarize(client.get_image(ref)).created) or 0.0

        test = ImageFilter(args.filter, created)
        summaries = [s for s in summaries if test.keep(s, parse_rfc3339(s.created))]
    # docker's daemon lists the newest images first; names of one age stay in order.
    summaries.sort(key=lambda s: parse_rfc3339(s.created) or 0.0, reverse=True)
    rows = [_image_row(s, args.no_trunc) for s in summaries]
    columns = [
        Column("REPOSITORY", "Repository"),
        Column("TAG", "Tag"),
        Column("IMAGE ID", "ID", id=True),
        Column("CREATED", "CreatedSince"),
        Column("SIZE", "Size"),
    ]
    if args.digests:
        columns.insert(2, Column("DIGEST", "Digest"))
    # One line an image ID, however many names it has.
    return Listing(columns, rows, ids=dict.fromkeys(row["ID"] for row in rows))


def _matches(name: str, pattern: str) -> bool:
    from ctl.reference import parse

    if _unnamed(name):
        return False
    try:
        want = parse(pattern)
    except CtlError:
        return False
    have = parse(name)
    if have.name != want.name:
        return False
    return ":" not in pattern.rsplit("/", 1)[-1] or have.tag == want.tag


def _rmi(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.errdefs import NotFound

    missing: list[NotFound] = []

    def remove(ref: str) -> None:
        try:
            _check_platform(ctx, ref, args.platform)
            removal = ctx.client.remove_image(ref, force=args.force)
        except NotFound as err:
            if not args.force:
                raise
            missing.append(err)
            return
        for name in removal.untagged:
            if not _unnamed(name):
                print(f"Untagged: {_familiar(name)}")
        if removal.deleted:
            print(f"Deleted: {removal.deleted}")

    code = each(args.refs, remove, echo=False)
    # docker's rmi -f reports an image that is not there, after the others, and goes on.
    sys.stdout.flush()
    for err in missing:
        sys.stderr.write(f"ctl: {err}\n")
    return code


def _tag(args: argparse.Namespace, ctx: Context) -> int:
    ctx.client.tag(args.source, args.target)
    return 0


def _save(args: argparse.Namespace, ctx: Context) -> int:
    from pathlib import Path

    from ctl.images.archive import archive_file

    for ref in args.refs:
        _check_platform(ctx, ref, args.platform)
    if args.output in (None, "-"):
        if sys.stdout.isatty():
            raise InvalidArgument("refusing to write an archive to a terminal: use -o FILE")
        sys.stdout.flush()
        ctx.client.save(args.refs, sys.stdout.buffer)
        return 0
    with archive_file(Path(args.output)) as out:
        ctx.client.save(args.refs, out)
    return 0


def _load(args: argparse.Namespace, ctx: Context) -> int:
    if args.input == "-":
        if sys.stdin is None or sys.stdin.isatty():
            raise InvalidArgument("no archive on stdin: use -i FILE or pipe one in")
        images = ctx.client.load(sys.stdin.buffer, _platform(args.platform))
    else:
        try:
            source = open(args.input, "rb")  # noqa: SIM115 - closed below
        except OSError as err:
            raise InvalidArgument(f"load: cannot open {args.input}: {err.strerror}") from err
        with source:
            images = ctx.client.load(source, _platform(args.platform))
    # -q only hides progress, which ctl's load has none of: docker prints these lines anyway.
    for image in images:
        if _unnamed(image.name):
            print(f"Loaded image ID: {ctx.client.summarize(image).id}")
        else:
            print(f"Loaded image: {_familiar(image.name)}")
    return 0


def _inspect(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.output import print_inspect

    # As docker's: the images found are printed, then an error for each that is not
    # (if none is found, nothing is printed on stdout: bad input changes nothing there).
    docs: list[dict[str, Any]] = []
    errors: list[CtlError] = []
    for ref in args.refs:
        try:
            docs.append(_inspect_checked(ctx, ref, args.platform))
        except CtlError as err:
            errors.append(err)
    if docs:
        print_inspect(docs, args.format)
    if not errors:
        return 0
    sys.stdout.flush()
    for error in errors[:-1]:
        hint = f" ({error.hint})" if error.hint else ""
        sys.stderr.write(f"ctl: {error}{hint}\n")
    raise errors[-1]


def inspect_document(ctx: Context, ref: str) -> dict[str, Any]:
    """inspect_document is ``image inspect``'s document of the image ``ref`` names."""
    return _inspect_doc(ctx.client.summarize(ctx.client.get_image(ref)))


def _inspect_checked(ctx: Context, ref: str, platform: str | None) -> dict[str, Any]:
    _check_platform(ctx, ref, platform)
    return inspect_document(ctx, ref)


def _inspect_doc(summary: ImageSummary) -> dict[str, Any]:
    image = summary.image
    repo, tag, _ = _split_name(image.name)
    config = summary.config
    rootfs = config.get("rootfs") or {}
    history = config.get("history") or []
    return {
        "Id": summary.id,
        "Name": image.name,
        "RepoTags": [f"{repo}:{tag}"] if tag != "<none>" else [],
        "RepoDigests": [f"{repo}@{image.target.digest}"] if repo != "<none>" else [],
        # ctl's images have no parent images, nor a docker daemon that built them.
        "Parent": "",
        # docker's containerd store reads the comment of commit -m and import from the history.
        "Comment": str(history[-1].get("comment", "")) if history else "",
        "Created": summary.created,
        "DockerVersion": "",
        "Architecture": config.get("architecture", ""),
        "Os": config.get("os", ""),
        "Variant": config.get("variant", ""),
        "Size": summary.size,
        "Author": config.get("author", ""),
        "Config": config.get("config", {}),
        "RootFS": {"Type": rootfs.get("type", ""), "Layers": rootfs.get("diff_ids") or []},
        "History": history,
        "Target": image.target.to_json(),
        "Manifest": summary.manifest.descriptor.to_json() if summary.manifest else None,
        "Labels": image.labels,
    }


def _history(args: argparse.Namespace, ctx: Context) -> Listing:
    from ctl.output import Column, Listing
    from ctl.progress import human_size
    from ctl.timefmt import ago, parse_rfc3339

    client = ctx.client
    _check_platform(ctx, args.ref, args.platform)
    summary = client.summarize(client.get_image(args.ref))
    layers = list(summary.manifest.layers) if summary.manifest else []
    rows: list[dict[str, Any]] = []
    index = len(layers)
    for entry in reversed(summary.config.get("history") or []):
        empty = bool(entry.get("empty_layer"))
        size = 0
        if not empty and index > 0:
            index -= 1
            size = layers[index].size
        created_by = str(entry.get("created_by", ""))
        if not args.no_trunc and len(created_by) > 45:
            created_by = created_by[:44] + "…"
        created = str(entry.get("created", ""))
        rows.append(
            {
                "ID": _short_id(summary.id, args.no_trunc) if not rows else "<missing>",
                "CreatedAt": created,
                "CreatedSince": ago(parse_rfc3339(created)) if args.human else created,
                "CreatedBy": created_by,
                "Size": human_size(size) if args.human else str(size),
                "Comment": entry.get("comment", ""),
            }
        )
    columns = (
        Column("IMAGE", "ID", id=True),
        Column("CREATED", "CreatedSince"),
        Column("CREATED BY", "CreatedBy"),
        Column("SIZE", "Size"),
        Column("COMMENT", "Comment"),
    )
    return Listing(columns, rows)


def _prune(args: argparse.Namespace, ctx: Context) -> int:
    from ctl.commands.transfer import confirm, parse_prune_filters
    from ctl.progress import human_size

    until, labels = parse_prune_filters(args.filter)
    if not args.force:
        what = "all images without at least one container associated to them"
        confirm(what if args.all else "all dangling images", "image prune")
    removed, reclaimed = ctx.client.prune_images(unused=args.all, until=until, labels=labels)
    print_pruned_images(removed)
    print(f"Total reclaimed space: {human_size(reclaimed)}")
    return 0


def print_pruned_images(removed: list[tuple[str, str]]) -> None:
    """print_pruned_images is docker's "Deleted Images:" section of image and system prune:
    each removed name, then each image ID that went, once."""
    if not removed:
        return
    print("Deleted Images:")
    for name, _ in removed:
        if not _unnamed(name):
            print(f"untagged: {_familiar(name)}")
    for image_id in dict.fromkeys(image_id for _, image_id in removed):
        print(f"deleted: {image_id}")
    print()
