"""ctl.typeshim's NamedTuple makes the same classes as typing's (the record classes use it)."""

from __future__ import annotations

import typing

import pytest

from ctl import typeshim


def _point(base: type) -> type:
    class Point(base):  # type: ignore[misc,valid-type]
        """Point is a point."""

        x: int
        y: int = 0
        label: str = "origin"

        def norm1(self) -> int:
            return abs(self.x) + abs(self.y)

        @classmethod
        def parse(cls, text: str) -> Point:
            x, y = text.split(",")
            return cls(int(x), int(y))

    return Point


@pytest.mark.parametrize("base", [typeshim.NamedTuple, typing.NamedTuple], ids=["shim", "typing"])
def test_a_record_class_behaves_as_typings(base: type) -> None:
    point = _point(base)
    p = point(3, -4)
    assert p == (3, -4, "origin") and isinstance(p, tuple)
    assert point._fields == ("x", "y", "label")
    assert point._field_defaults == {"y": 0, "label": "origin"}
    assert p.norm1() == 7 and point.parse("1,2") == point(1, 2)
    assert p._replace(label="p")._asdict() == {"x": 3, "y": -4, "label": "p"}
    assert point.__doc__ == "Point is a point."
    assert point.__module__ == __name__ and point.__name__ == "Point"
    assert list(point.__annotations__) == ["x", "y", "label"]
    assert repr(p) == "Point(x=3, y=-4, label='origin')"
    with pytest.raises(TypeError):
        point()


def test_cast_returns_its_value() -> None:
    value = {"a": 1}
    assert typeshim.cast("dict[str, int]", value) is value
