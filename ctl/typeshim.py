"""typing's ``NamedTuple`` and ``cast`` at run time, without importing typing.

typing takes about 2 ms to import: more than ``ps`` spends on a hundred containers. The
modules that ``ps`` reads records with (``ctl.containers.container``, ``ctl.runtime.state``,
``ctl.runtime.taskdir``) take these at run time and typing's when type-checked::

    if TYPE_CHECKING:
        from typing import NamedTuple
    else:
        from ctl.typeshim import NamedTuple

As typing's does, a ``NamedTuple`` class statement makes a ``collections.namedtuple`` of
the annotated fields, in order, with their defaults, and keeps the rest of the class body
(methods, docstring). The annotations are kept as written (strings, with postponed
evaluation), not checked.
"""

from __future__ import annotations

import collections

# typing is not imported at run time: that is the point of this module.
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

# Called through a name that type checkers take as any function: they check only
# namedtuple() calls with literal fields.
_namedtuple: Callable[..., type] = collections.namedtuple

# What the class body says that the namedtuple has its own of.
_NOT_COPIED = frozenset(("__module__", "__name__", "__annotations__"))


class _RecordClass(type):
    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> type:
        if not bases:
            return super().__new__(mcs, name, bases, namespace)
        annotations = namespace.get("__annotations__", {})
        fields = list(annotations)
        defaults = [namespace[field] for field in fields if field in namespace]
        record = _namedtuple(name, fields, defaults=defaults, module=namespace["__module__"])
        record.__annotations__ = annotations
        for key, value in namespace.items():
            if key not in _NOT_COPIED and key not in annotations:
                setattr(record, key, value)
        return record


class NamedTuple(metaclass=_RecordClass):
    """NamedTuple is the run-time base of a record class: see the module's docstring."""


def cast(_type: object, value: Any) -> Any:
    """cast is typing.cast: the value, unchanged; the type is for the type checker."""
    return value
