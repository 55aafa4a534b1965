"""Which images an ``images --filter`` keeps: docker's reference, label, dangling, before, since."""

from __future__ import annotations

import re

from ctl.filters import Filters, boolean

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from ctl.images.summary import ImageSummary

IMAGE_FILTERS = ("reference", "label", "dangling", "before", "since")


class ImageFilter:
    """ImageFilter tests image summaries against ``images --filter`` values.

    ``created`` gives the creation time of the image a reference or ID names
    (raising NotFound), for ``before`` and ``since``.
    """

    def __init__(self, values: Iterable[str], created: Callable[[str], float]) -> None:
        self.filters = Filters(values, IMAGE_FILTERS)
        self._dangling = [boolean("dangling", value) for value in self.filters.get("dangling")]
        self._references = [_glob(pattern) for pattern in self.filters.get("reference")]
        self._before = [created(ref) for ref in self.filters.get("before")]
        self._since = [created(ref) for ref in self.filters.get("since")]

    def keep(self, summary: ImageSummary, created: float | None) -> bool:
        from ctl.reference import familiar_name, parse

        name = summary.image.name
        dangling = name.startswith("sha256:")
        if self._dangling and dangling not in self._dangling:
            return False
        if self._references:
            if dangling:
                return False
            # docker's FamiliarMatch: the whole familiar reference, or its name alone.
            ref = parse(name)
            full, short = ref.familiar, familiar_name(ref.domain, ref.path)
            if not any(p.fullmatch(full) or p.fullmatch(short) for p in self._references):
                return False
        labels = summary.config.get("config", {}).get("Labels") or {}
        if not self.filters.match_labels(labels):
            return False
        if created is None:
            return not (self._before or self._since)
        return all(created < t for t in self._before) and all(created > t for t in self._since)


def _glob(pattern: str) -> re.Pattern[str]:
    """_glob is Go's path.Match ``pattern`` as a regular expression (``*`` stops at ``/``)."""
    out = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                out.append(re.escape(char))
            else:
                body = pattern[i + 1 : end]
                out.append("[" + ("^" + body[1:] if body.startswith("^") else body) + "]")
                i = end
        elif char == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(char))
        i += 1
    return re.compile("".join(out))
