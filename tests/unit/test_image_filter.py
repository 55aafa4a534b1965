"""images --filter reference: Go's path.Match globs, as docker's FamiliarMatch uses them."""

from __future__ import annotations

import pytest

from ctl.errdefs import InvalidArgument
from ctl.images.filter import ImageFilter, _glob


@pytest.mark.parametrize(
    ("pattern", "text", "matches"),
    [
        ("busybox", "busybox", True),
        ("busy*", "busybox", True),
        ("*", "user/app", False),  # * stops at /
        ("*/*", "user/app", True),
        ("user/app:?", "user/app:1", True),
        ("user/app:[0-9]", "user/app:7", True),
        ("user/app:[^0-9]", "user/app:7", False),
        ("a.b", "axb", False),  # a dot is a dot
        ("a\\*", "a*", True),
    ],
)
def test_glob_is_go_path_match(pattern: str, text: str, matches: bool) -> None:
    assert bool(_glob(pattern).fullmatch(text)) is matches


def test_bad_filters_are_refused_before_any_lookup() -> None:
    def created(ref: str) -> float:
        raise AssertionError("no lookup for a bad filter")

    with pytest.raises(InvalidArgument, match="invalid filter 'tag'"):
        ImageFilter(["tag=1"], created)
    with pytest.raises(InvalidArgument, match="dangling"):
        ImageFilter(["dangling=perhaps"], created)
