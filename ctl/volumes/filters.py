"""``volume ls --filter`` and ``volume prune --filter``, as docker reads them.

Values of one key are alternatives, keys are all required: ``--filter
label=a --filter label=b`` wants both labels (docker's rule for labels), and
``--filter name=x --filter name=y`` either name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ctl.errdefs import InvalidArgument

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ctl.volumes import Volume

LS_KEYS = ("dangling", "name", "label", "driver")
PRUNE_KEYS = ("label", "label!", "all")


def parse_filters(values: Sequence[str], keys: Sequence[str]) -> dict[str, list[str]]:
    """parse_filters reads ``--filter KEY=VALUE`` values; a key outside ``keys`` is refused."""
    filters: dict[str, list[str]] = {}
    for value in values:
        key, sep, wanted = value.partition("=")
        if not sep or key not in keys:
            raise InvalidArgument(
                f"invalid filter {value!r}: want one of {', '.join(k + '=' for k in keys)}"
            )
        if key in ("dangling", "all") and wanted.lower() not in ("true", "false", "1", "0"):
            raise InvalidArgument(f"invalid filter {value!r}: {key} is true or false")
        filters.setdefault(key, []).append(wanted)
    return filters


def is_true(value: str) -> bool:
    return value.lower() in ("true", "1")


def _has_label(volume: Volume, wanted: str) -> bool:
    key, sep, value = wanted.partition("=")
    return key in volume.labels and (not sep or volume.labels[key] == value)


def matches(volume: Volume, filters: dict[str, list[str]], in_use: bool) -> bool:
    """matches says whether ``volume`` passes every filter; ``in_use``: a container mounts it."""
    for key, values in filters.items():
        if key == "dangling":
            if not any(is_true(v) != in_use for v in values):
                return False
        elif key == "name":
            if not any(v in volume.name for v in values):
                return False
        elif key == "driver":
            if volume.driver not in values:
                return False
        elif key == "label":
            if not all(_has_label(volume, v) for v in values):
                return False
        elif key == "label!" and any(_has_label(volume, v) for v in values):
            return False
    return True
