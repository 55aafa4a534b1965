"""docker's ``--filter key=value`` for listings: parsing once, and the matchers they share.

As in docker, values of one key are alternatives (any may match), and
different keys must all match; ``label`` is the exception, where every
value must match. A key the listing does not know is refused, as docker's
``invalid filter 'key'``.
"""

from __future__ import annotations

from ctl.errdefs import InvalidArgument

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping


class Filters:
    """Filters are the parsed ``--filter`` values of one listing."""

    def __init__(self, values: Iterable[str], accepted: Iterable[str]) -> None:
        self._values: dict[str, list[str]] = {}
        known = set(accepted)
        for text in values:
            key, equals, value = text.partition("=")
            key = key.strip().lower()
            if not equals:
                raise InvalidArgument(f"bad format of filter (expected name=value): {text!r}")
            if key not in known:
                raise InvalidArgument(
                    f"invalid filter {key!r}", hint=f"filters here: {', '.join(sorted(known))}"
                )
            self._values.setdefault(key, []).append(value)

    def __bool__(self) -> bool:
        return bool(self._values)

    def __contains__(self, key: str) -> bool:
        return key in self._values

    def get(self, key: str) -> list[str]:
        return self._values.get(key, [])

    def one_of(self, key: str, allowed: Iterable[str]) -> list[str]:
        """one_of is ``get``, with each value checked against ``allowed``."""
        choices = set(allowed)
        for value in self.get(key):
            if value not in choices:
                raise InvalidArgument(
                    f"invalid filter '{key}={value}'",
                    hint=f"use one of {', '.join(sorted(choices))}",
                )
        return self.get(key)

    def match(self, key: str, test: Callable[[str], bool]) -> bool:
        """match is True when ``key`` is not given, or any of its values passes ``test``."""
        values = self._values.get(key)
        return values is None or any(test(value) for value in values)

    def match_labels(self, labels: Mapping[str, str]) -> bool:
        """match_labels: every ``label=KEY`` or ``label=KEY=VALUE`` holds for ``labels``."""
        for value in self.get("label"):
            key, equals, want = value.partition("=")
            if key not in labels or (equals and labels[key] != want):
                return False
        return True


def name_matches(pattern: str, name: str) -> bool:
    """name_matches is docker's name filter: a regular expression searched in the name."""
    import re

    try:
        return re.search(pattern, name) is not None
    except re.error as err:
        raise InvalidArgument(f"invalid filter 'name={pattern}': {err}") from None


def boolean(key: str, value: str) -> bool:
    """boolean reads a filter value such as ``dangling=true`` the way docker accepts it."""
    lowered = value.lower()
    if lowered in ("true", "1"):
        return True
    if lowered in ("false", "0"):
        return False
    raise InvalidArgument(f"invalid filter '{key}={value}': want true or false")
