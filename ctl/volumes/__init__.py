"""Volumes: named directories that outlive the containers that mount them.

``VolumeStore`` is the interface; ``local.LocalVolumeStore`` keeps the
volumes of a root as docker's ``local`` driver does (``<root>/volumes/<name>/
_data``), and passes the conformance module ``tests/conformance/
test_volume_store.py``. ``mounts`` turns a container's ``-v``, ``--mount``,
``--volumes-from`` and its image's ``VOLUME`` list into mounts of volumes,
creating and filling them (docker's copy-up, ``copyup``).

Volumes belong to the root, not to a namespace, as networks do: a volume
is in use while any container of any namespace has it among its mounts.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from ctl.errdefs import InvalidArgument

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping
    from contextlib import AbstractContextManager

    from ctl.errdefs import DataCorrupted

RECORD_VERSION = 1
DRIVER = "local"
# docker (23.0 and later) marks the volumes it makes without a name so, and
# `volume prune` without --all removes only those.
ANONYMOUS_LABEL = "com.docker.volume.anonymous"
# docker's rule for a local volume's name; the length keeps it one file name.
_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]+")
MAX_NAME = 255
# The local driver's options (``-o``): what `type` takes, and the mount
# options of a tmpfs that ctl's tmpfs mounts carry.
OPTION_KEYS = ("type", "device", "o")
VOLUME_TYPES = ("tmpfs", "none")
TMPFS_OPTIONS = ("size", "mode")


def check_name(name: str) -> str:
    """check_name returns ``name`` if it is a valid volume name; InvalidArgument otherwise."""
    if len(name) > MAX_NAME or not _NAME.fullmatch(name):
        raise InvalidArgument(
            f"invalid volume name {name[:80]!r}: want [a-zA-Z0-9][a-zA-Z0-9_.-]+, "
            f"at most {MAX_NAME} characters"
        )
    return name


class VolumeMount(NamedTuple):
    """VolumeMount is how a volume's options mount it: a bind of ``source`` or a tmpfs.

    ``source`` "" means the volume's own data directory.
    """

    type: str
    source: str = ""
    tmpfs_size: int | None = None
    tmpfs_mode: int | None = None


def check_options(options: Mapping[str, str]) -> VolumeMount:
    """check_options reads the local driver's ``-o`` options into how the volume mounts.

    None: a directory under the root. ``type=tmpfs[,o=size=N,mode=M]``: a
    new tmpfs at each mount. ``type=none,device=/abs/path,o=bind``: a bind
    of that host path. Anything else is InvalidArgument.
    """
    unknown = sorted(set(options) - set(OPTION_KEYS))
    if unknown:
        raise InvalidArgument(
            f"invalid volume option {unknown[0]!r}: the local driver takes type, device and o"
        )
    if not options:
        return VolumeMount("bind")
    kind = options.get("type", "")
    words = [w for w in options.get("o", "").split(",") if w]
    if kind == "tmpfs":
        return _tmpfs_mount(words)
    if kind == "none":
        device = options.get("device", "")
        if not device.startswith("/") or words not in (["bind"], ["rbind"]):
            raise InvalidArgument(
                "invalid volume options: type=none takes device=/absolute/path and o=bind"
            )
        return VolumeMount("bind", device)
    raise InvalidArgument(
        f"invalid volume option type={kind!r}: the local driver takes tmpfs or none"
    )


def _tmpfs_mount(words: list[str]) -> VolumeMount:
    from ctl.runtime.runopts import parse_memory

    size: int | None = None
    mode: int | None = None
    for word in words:
        key, _, value = word.partition("=")
        if key == "size":
            size = parse_memory(value)
        elif key == "mode" and re.fullmatch(r"[0-7]{1,4}", value):
            mode = int(value, 8)
        else:
            raise InvalidArgument(
                f"invalid tmpfs volume option {word!r}: want size=SIZE or mode=OCTAL"
            )
    return VolumeMount("tmpfs", tmpfs_size=size, tmpfs_mode=mode)


class Volume(NamedTuple):
    """Volume is one volume's record; ``mountpoint`` is where its data lives on the host."""

    name: str
    mountpoint: str
    driver: str = DRIVER
    # Defaults shared by every instance: records are never changed in place.
    labels: dict[str, str] = {}
    options: dict[str, str] = {}
    created_at: float = 0.0

    @property
    def anonymous(self) -> bool:
        return ANONYMOUS_LABEL in self.labels

    def to_record(self) -> dict[str, Any]:
        return {
            "version": RECORD_VERSION,
            "name": self.name,
            "driver": self.driver,
            "labels": self.labels,
            "options": self.options,
            "created_at": self.created_at,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any], mountpoint: str) -> Volume:
        return cls(
            name=check_name(str(record["name"])),
            mountpoint=mountpoint,
            driver=str(record.get("driver") or DRIVER),
            labels={str(k): str(v) for k, v in (record.get("labels") or {}).items()},
            options={str(k): str(v) for k, v in (record.get("options") or {}).items()},
            created_at=float(record.get("created_at", 0.0)),
        )

    def inspect(self) -> dict[str, Any]:
        """inspect is docker's ``volume inspect`` object."""
        from ctl.timefmt import format_rfc3339

        return {
            "CreatedAt": format_rfc3339(self.created_at),
            "Driver": self.driver,
            "Labels": dict(self.labels),
            "Mountpoint": self.mountpoint,
            "Name": self.name,
            "Options": dict(self.options),
            "Scope": "local",
        }


class VolumeStore(Protocol):
    """VolumeStore keeps the volumes of one root.

    Names are docker's: ``[a-zA-Z0-9][a-zA-Z0-9_.-]+``; every method raises
    InvalidArgument for another name (one with ``/``, say) before it touches
    anything. Only the ``local`` driver exists; its options are those
    ``check_options`` accepts.

    A volume is whole or absent: ``get`` and ``list`` never see one half
    made or half removed, and a create or remove that fails or is killed
    leaves no volume that ``get`` finds half-way. Changes to one volume
    (create, fill, remove) are serialised between processes; two callers
    that ``ensure`` one name at once both get the same volume, made once.

    A volume is in use while the store's ``users`` function (given at
    construction: volume name to the names of the containers that mount it)
    names any container; ``hold`` keeps a volume from being removed while
    a container that will use it is being recorded.
    """

    def create(
        self,
        name: str | None = None,
        *,
        driver: str = DRIVER,
        options: Mapping[str, str] | None = None,
        labels: Mapping[str, str] | None = None,
    ) -> Volume:
        """create makes a new, empty volume and returns it.

        ``name`` None makes an anonymous volume: a random 64-hex name and the
        label ``ANONYMOUS_LABEL``. A taken name is AlreadyExists; a driver
        other than ``local`` or options ``check_options`` refuses are
        InvalidArgument, and nothing is created.
        """
        ...

    def ensure(
        self,
        name: str,
        *,
        options: Mapping[str, str] | None = None,
        fill: Callable[[str], None] | None = None,
    ) -> tuple[Volume, bool]:
        """ensure is the volume ``name``, created (with ``options``) if it is missing.

        The boolean says whether this call created it; the options of an
        existing volume stay as they are. ``fill``, when given, is called
        with the data directory of a volume whose data directory is empty
        and is a directory under the root (not a tmpfs or a host bind),
        while no other change of that volume runs: docker's copy-up.
        """
        ...

    def get(self, name: str) -> Volume:
        """get is the volume ``name``; NotFound if there is none."""
        ...

    def list(self, on_error: Callable[[DataCorrupted], None] | None = None) -> Iterator[Volume]:
        """list yields every volume, sorted by name; a damaged record is skipped
        (handed to ``on_error``, by default a warning on stderr)."""
        ...

    def remove(self, name: str) -> Volume:
        """remove deletes the volume and its data, and returns what it removed.

        NotFound if there is none; one whose record is damaged is removed all
        the same. FailedPrecondition, naming the containers,
        while ``users`` names any (``force`` does not change that, in docker
        either); a volume ``hold`` keeps is waited for.
        """
        ...

    def hold(self, name: str) -> AbstractContextManager[Volume]:
        """hold keeps the volume from being removed while the context is open.

        NotFound if the volume does not exist. Holds are shared: any number
        of them, in any processes, at once.
        """
        ...

    def usage(self, name: str) -> int:
        """usage is the size in bytes of the volume's files (0 for a tmpfs or bind volume)."""
        ...
