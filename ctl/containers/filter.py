"""Which containers a ``ps --filter`` keeps: docker's keys, over records and task states."""

from __future__ import annotations

from ctl.filters import Filters, boolean, name_matches
from ctl.runtime.state import docker_state

# typing is not imported at run time: start-up time is a feature (see ctl.main).
TYPE_CHECKING = False

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from ctl.containers.container import Container
    from ctl.runtime.state import TaskState

PS_FILTERS = (
    "id",
    "name",
    "label",
    "status",
    "exited",
    "ancestor",
    "network",
    "volume",
    "before",
    "since",
    "health",
    "is-task",
)
STATUSES = ("created", "restarting", "running", "removing", "paused", "exited", "dead")
HEALTH = ("starting", "healthy", "unhealthy", "none")


class ContainerFilter:
    """ContainerFilter tests containers against ``ps --filter`` values.

    ``containers`` are every container of the namespace, for ``before`` and
    ``since``, which name a container; ``image_names`` are the names of the
    image a reference or ID names (none if there is no such image), for
    ``ancestor``.
    """

    def __init__(
        self,
        values: Iterable[str],
        containers: list[Container],
        image_names: Callable[[str], set[str]],
    ) -> None:
        self.filters = Filters(values, PS_FILTERS)
        self.filters.one_of("status", STATUSES)
        self.filters.one_of("health", HEALTH)
        for value in self.filters.get("exited"):
            if not value.lstrip("-").isdigit():
                raise_exited(value)
        for value in self.filters.get("is-task"):
            boolean("is-task", value)
        self._before = [self._created(ref, containers) for ref in self.filters.get("before")]
        self._since = [self._created(ref, containers) for ref in self.filters.get("since")]
        self._ancestors = {ref: image_names(ref) for ref in self.filters.get("ancestor")}

    @property
    def wants_stopped(self) -> bool:
        """wants_stopped: a status or exited filter looks at stopped containers, as docker's."""
        return "status" in self.filters or "exited" in self.filters

    @staticmethod
    def _created(ref: str, containers: list[Container]) -> float:
        from ctl.errdefs import NotFound

        for container in containers:
            if ref in (container.id, container.name) or (
                len(ref) >= 3 and container.id.startswith(ref)
            ):
                return container.created_at
        raise NotFound(f"container {ref!r}: no such container")

    def keep(self, container: Container, task: TaskState | None, health: str = "none") -> bool:
        f = self.filters
        if not f:
            return True
        exit_code = task.exit.exit_code if task is not None and task.exit is not None else None
        return (
            f.match("id", container.id.startswith)
            and f.match("name", lambda pattern: name_matches(pattern, container.name))
            and f.match_labels(container.labels)
            and f.match("status", lambda status: status == docker_state(task))
            and f.match(
                "exited",
                lambda code: docker_state(task) == "exited" and exit_code == int(code),
            )
            and f.match("ancestor", lambda ref: _is_ancestor(ref, self._ancestors[ref], container))
            and f.match("network", lambda network: _on_network(network, container))
            and f.match("volume", lambda volume: _uses_volume(volume, container))
            and all(container.created_at < created for created in self._before)
            and all(container.created_at > created for created in self._since)
            and f.match("health", lambda status: status == health)
            and f.match("is-task", lambda value: not boolean("is-task", value))
        )


def raise_exited(value: str) -> None:
    from ctl.errdefs import InvalidArgument

    raise InvalidArgument(f"invalid filter 'exited={value}': want an exit code")


def _is_ancestor(ref: str, names: set[str], container: Container) -> bool:
    """_is_ancestor: the container's image is the one ``ref`` names, or a tag of ``ref``."""
    from ctl.errdefs import CtlError
    from ctl.reference import parse

    if container.image in names:
        return True
    try:
        want, have = parse(ref), parse(container.image)
    except CtlError:
        return False
    last = ref.rsplit("/", 1)[-1]
    return want.name == have.name and ":" not in last and "@" not in ref


def _on_network(network: str, container: Container) -> bool:
    """_on_network: ``network`` is the container's own or one it was connected to, by name
    (``bridge`` and ``default`` are the default network's, as in ``--net``)."""
    from ctl.network.networks import resolve_network

    config = container.config
    names = (config.network, *(c.network for c in config.connections))
    return resolve_network(network) in {resolve_network(name) for name in names}


def _uses_volume(volume: str, container: Container) -> bool:
    for mount in container.user_mounts():
        source = str(mount.get("source", ""))
        if volume in (source, mount.get("destination")) or source.endswith(f"/{volume}/_data"):
            return True
    return False
