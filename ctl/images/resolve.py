"""Finding images as users name them, and docker's rule for removing them.

A user names an image by reference (``busybox``, normalised to
``docker.io/library/busybox:latest``) or by a prefix of its ID (the config
digest that listings show) or of its target digest.
"""

from __future__ import annotations

import contextlib

from ctl.errdefs import FailedPrecondition, InvalidArgument, NotFound

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import NamedTuple

    from ctl.containers.container import Container
    from ctl.content import Provider
    from ctl.images.image import Image, ImageStore
else:
    from ctl.typeshim import NamedTuple


def get_image(images: ImageStore, content: Provider, ref: str) -> Image:
    """get_image finds an image by name, by short name, or by a unique ID prefix."""
    from ctl.reference import parse

    try:
        name = str(parse(ref))
    except InvalidArgument:
        name = None
    if name is not None:
        with contextlib.suppress(NotFound):
            return images.get(name)
    matches = images_by_id(images, content, ref)
    if len(matches) == 1 or (matches and len({m.target.digest for m in matches}) == 1):
        return matches[0]
    if matches:
        raise FailedPrecondition(f"image ID {ref!r} is ambiguous: it matches several images")
    raise NotFound(f"image {name or ref!r}: not found")


def images_by_id(images: ImageStore, content: Provider, prefix: str) -> list[Image]:
    """images_by_id are the images whose ID or target digest starts with ``prefix``.

    A prefix shorter than 3 hex digits matches nothing.
    """
    from ctl.images.summary import summarize

    hex_prefix = prefix.removeprefix("sha256:")
    if len(hex_prefix) < 3 or not all(c in "0123456789abcdef" for c in hex_prefix):
        return []
    out = []
    for image in images.list():
        summary = summarize(content, image)
        if summary.id.removeprefix("sha256:").startswith(hex_prefix) or (
            image.target.digest.removeprefix("sha256:").startswith(hex_prefix)
        ):
            out.append(image)
    return out


def ensure_image(
    images: ImageStore,
    content: Provider,
    ref: str,
    policy: str,
    pull: Callable[[str], Image],
) -> Image:
    """ensure_image finds ``ref`` locally or calls ``pull``, as the ``--pull`` policy says."""
    if policy == "always":
        return pull(ref)
    try:
        return get_image(images, content, ref)
    except NotFound:
        if policy == "never":
            raise NotFound(
                f"image {ref!r}: not found locally", hint="pull it, or use --pull missing"
            ) from None
    return pull(ref)


class Removal(NamedTuple):
    """Removal is what removing an image did, as docker's rmi prints it.

    ``untagged`` are the names removed (an unnamed image's is its digest);
    ``deleted`` is the image's ID if they were its last names, else "".
    """

    untagged: list[str]
    deleted: str


def remove_image(
    images: ImageStore,
    content: Provider,
    containers: Callable[[], Iterable[Container]],
    ref: str,
    *,
    force: bool = False,
) -> Removal:
    """remove_image deletes image records.

    A reference by ID that several names share needs ``force``, and so does
    the last name of an image one of ``containers`` was created from
    (docker's rule: the container would be left with a dangling image). The
    content stays until ``prune`` collects what nothing references.
    """
    from ctl.reference import parse

    with contextlib.suppress(InvalidArgument):
        name = str(parse(ref))
        with contextlib.suppress(NotFound):
            image = images.get(name)
            if not force:
                check_unused(images, containers(), image)
            images.delete(name)
            return Removal([name], _deleted_id(images, content, image))
    matches = images_by_id(images, content, ref)
    if not matches:
        raise NotFound(f"image {ref!r}: not found")
    if len(matches) > 1 and not force:
        names = ", ".join(m.name for m in matches)
        raise FailedPrecondition(
            f"image {ref!r} is referenced by several names ({names})",
            hint="remove them by name, or use -f",
        )
    if not force:
        check_unused(images, containers(), matches[0])
    for image in matches:
        images.delete(image.name)
    return Removal([m.name for m in matches], _deleted_id(images, content, matches[0]))


def _deleted_id(images: ImageStore, content: Provider, removed: Image) -> str:
    """_deleted_id is the ID of ``removed`` if no name is left on its target, else ""."""
    from ctl.images.summary import summarize

    if any(i.target.digest == removed.target.digest for i in images.list()):
        return ""
    return summarize(content, removed).id


def check_unused(images: ImageStore, containers: Iterable[Container], image: Image) -> None:
    """check_unused refuses to remove the last name of an image a container uses."""
    named = list(images.list())
    digest = image.target.digest
    if any(i.name != image.name and i.target.digest == digest for i in named):
        return  # another name keeps the image
    user = user_of(named, containers, image)
    if user is not None:
        raise FailedPrecondition(
            f"image {image.name} is used by container {user.name} ({user.id[:12]})",
            hint="remove the container first, or use rmi -f",
        )


def user_of(
    images: Iterable[Image], containers: Iterable[Container], image: Image
) -> Container | None:
    """user_of is a container created from ``image`` (its target digest), if there is one.

    A container's record keeps its image's digest; one written before it did names
    the image only, which says which image it is while the name exists.
    """
    digests = {i.name: i.target.digest for i in images}
    for container in containers:
        if (container.image_digest or digests.get(container.image)) == image.target.digest:
            return container
    return None
