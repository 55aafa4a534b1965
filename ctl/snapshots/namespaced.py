"""NamespacedSnapshotter: one namespace's view of a shared snapshotter.

As containerd's metadata layer does, it prefixes every key, name and parent
with ``<namespace>/`` on the way in and strips it on the way out, so two
namespaces can use the same keys, and a walk shows only its own namespace.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from ctl.snapshots import ApplyTarget, Info, Mount, Snapshotter, Usage


class NamespacedSnapshotter:
    """NamespacedSnapshotter wraps ``backend`` for ``namespace``; it is itself a Snapshotter."""

    def __init__(self, backend: Snapshotter, namespace: str) -> None:
        self.backend = backend
        self._prefix = f"{namespace}/"

    def _in(self, key: str) -> str:
        return self._prefix + key if key else ""

    def _out(self, info: Info) -> Info:
        return info._replace(
            name=info.name.removeprefix(self._prefix),
            parent=info.parent.removeprefix(self._prefix),
        )

    def stat(self, key: str) -> Info:
        return self._out(self.backend.stat(self._in(key)))

    def update(self, info: Info, fieldpaths: Sequence[str] | None = None) -> Info:
        inner = info._replace(name=self._in(info.name), parent=self._in(info.parent))
        return self._out(self.backend.update(inner, fieldpaths))

    def usage(self, key: str) -> Usage:
        return self.backend.usage(self._in(key))

    def mounts(self, key: str) -> list[Mount]:
        return self.backend.mounts(self._in(key))

    def prepare(
        self, key: str, parent: str = "", labels: dict[str, str] | None = None
    ) -> list[Mount]:
        return self.backend.prepare(self._in(key), self._in(parent), labels)

    def view(self, key: str, parent: str = "", labels: dict[str, str] | None = None) -> list[Mount]:
        return self.backend.view(self._in(key), self._in(parent), labels)

    def commit(self, name: str, key: str, labels: dict[str, str] | None = None) -> None:
        self.backend.commit(self._in(name), self._in(key), labels)

    def remove(self, key: str) -> None:
        self.backend.remove(self._in(key))

    def walk(self, filters: Sequence[str] = ()) -> Iterator[Info]:
        from ctl.snapshots.storage import filter_infos

        # Filters speak of this namespace's names, so they apply after the
        # prefix is stripped; a list, so that a bad filter raises here.
        own = (self._out(i) for i in self.backend.walk() if i.name.startswith(self._prefix))
        return iter(filter_infos(own, filters))

    def apply_target(self, key: str) -> ApplyTarget:
        return self.backend.apply_target(self._in(key))

    def close(self) -> None:
        self.backend.close()
