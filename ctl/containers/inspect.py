"""``container inspect``'s document: docker's ContainerInspectResponse, from ctl's records.

Everything here is read back from what the container record holds (its
``RunConfig``, its OCI spec, which ``update`` keeps current), its task's
state and network attachments, and its image's config when the image is
still there. What ctl does not record is docker's zero value (``""``,
``false``, ``null``), never a guess. ctl's own keys stay beside docker's:
``Spec`` (the OCI runtime spec), ``Snapshotter``, ``SnapshotKey`` and
``State.LogLinesDropped``.

Only ``inspect`` imports this module: it is off the start-up path of ``run`` and ``ps``.
"""

from __future__ import annotations

import contextlib
import posixpath
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ctl.client import Client
    from ctl.containers.container import Container, MountSpec
    from ctl.runtime.logs import LogConfig
    from ctl.runtime.state import TaskState

# docker's default /dev/shm, which HostConfig.ShmSize shows when none was asked for.
DEFAULT_SHM_SIZE = 64 << 20
# What ``ctl.runtime.spec.with_privileged`` leaves in the device cgroup.
_ALL_DEVICES = [{"allow": True, "access": "rwm"}]
# ctl's default rlimit, in every spec: not a --ulimit.
_DEFAULT_RLIMIT = {"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}


def inspect_container(client: Client, container: Container) -> dict[str, Any]:
    """inspect_container is docker's inspect document of ``container``, with ctl's extras."""
    from ctl.containers.create import HOSTNAME_FILE, HOSTS_FILE, RESOLV_FILE
    from ctl.timefmt import format_rfc3339

    task = client.task_state(container)
    process = container.spec.get("process", {})
    args = list(process.get("args", []))
    log = container.config.log
    image_config = _image_config(client, container)
    files = client.paths.task_dir(client.namespace, container.id)
    return {
        "Id": container.id,
        "Created": format_rfc3339(container.created_at),
        "Path": args[0] if args else "",
        "Args": args[1:],
        "State": _state(task, container),
        "Image": container.image,
        "ResolvConfPath": f"{files}/{RESOLV_FILE}",
        "HostnamePath": f"{files}/{HOSTNAME_FILE}",
        "HostsPath": f"{files}/{HOSTS_FILE}",
        # docker's: the json-file only.
        "LogPath": str(client.log_path(container))
        if log is None or log.driver == "json-file"
        else "",
        "Name": "/" + container.name,
        "RestartCount": task.restart_count if task else 0,
        "Driver": container.snapshotter,
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": process.get("apparmorProfile", ""),
        "Snapshotter": container.snapshotter,
        "SnapshotKey": container.snapshot_key,
        "HostConfig": host_config(container),
        "Mounts": mounts(container),
        "Config": _config(container, image_config),
        "NetworkSettings": _network_settings(client, container, task, image_config),
        "Spec": container.spec,
    }


def _image_config(client: Client, container: Container) -> dict[str, Any]:
    """_image_config is the "config" of the container's image; empty once the image is gone."""
    from ctl.errdefs import CtlError
    from ctl.images import manifests

    with contextlib.suppress(CtlError, OSError, ValueError):
        image = client.get_image(container.image)
        config = manifests.read_config(
            client.content, manifests.image_manifest(client.content, image)
        )
        inner = config.get("config")
        return inner if isinstance(inner, dict) else {}
    return {}


def _state(task: TaskState | None, container: Container) -> dict[str, Any]:
    from ctl.runtime.state import Status, docker_state, task_health

    exit_ = task.exit if task else None
    status = task.status if task else None
    state: dict[str, Any] = {
        "Status": docker_state(task),
        "Running": status is Status.RUNNING,
        "Paused": status is Status.PAUSED,
        "Restarting": False,
        "OOMKilled": bool(exit_ and exit_.oom),
        "Dead": False,
        "Pid": task.pid if task and status is not Status.STOPPED else 0,
        "ExitCode": exit_.exit_code if exit_ else 0,
        "Error": "",
        "StartedAt": format_time(task.started_at if task else None),
        "FinishedAt": format_time(exit_.finished_at if exit_ else None),
        "LogLinesDropped": task.log_lines_dropped if task else 0,
    }
    if container.config.health is not None:
        record = task_health(task) if task else None
        state["Health"] = record or {"Status": "starting", "FailingStreak": 0, "Log": []}
    return state


def format_time(when: float | None) -> str:
    """format_time is docker's time of an event that has not happened yet: ""."""
    from ctl.timefmt import format_rfc3339

    return format_rfc3339(when) if when else ""


def _none_if_empty(value: Any) -> Any:
    return value if value else None


def host_config(container: Container) -> dict[str, Any]:
    """host_config is docker's HostConfig, as far as the record and the spec hold it."""
    config, spec = container.config, container.spec
    process = spec.get("process", {})
    linux = spec.get("linux", {})
    resources = linux.get("resources", {})
    memory, cpu = resources.get("memory", {}), resources.get("cpu", {})
    privileged = resources.get("devices") == _ALL_DEVICES
    restart = config.restart
    cap_add, cap_drop = _capabilities(process, privileged)
    nano_cpus, period, quota = _cpus(cpu)
    pids = resources.get("pids", {}).get("limit")
    return {
        "Binds": _none_if_empty([_bind(m) for m in config.mounts if not _anonymous(m)]),
        "ContainerIDFile": "",
        "LogConfig": log_config(config.log),
        "NetworkMode": config.network,
        "PortBindings": port_bindings(container),
        "RestartPolicy": {
            "Name": restart.name if restart else "no",
            "MaximumRetryCount": restart.max_retries if restart else 0,
        },
        "AutoRemove": config.rm,
        "VolumeDriver": "",
        "VolumesFrom": None,
        "ConsoleSize": [0, 0],
        "CapAdd": cap_add,
        "CapDrop": cap_drop,
        "CgroupnsMode": "private" if "cgroup" in _namespaces(spec) else "host",
        "Dns": list(config.dns),
        "DnsOptions": list(config.dns_options),
        "DnsSearch": list(config.dns_search),
        "ExtraHosts": _none_if_empty([f"{name}:{address}" for name, address in config.add_hosts]),
        "GroupAdd": None,
        "IpcMode": _namespace_mode(spec, "ipc"),
        "Cgroup": "",
        "Links": None,
        "OomScoreAdj": process.get("oomScoreAdj", 0),
        "PidMode": _namespace_mode(spec, "pid"),
        "Privileged": privileged,
        "PublishAllPorts": config.publish_all,
        "ReadonlyRootfs": bool(spec.get("root", {}).get("readonly")),
        "SecurityOpt": _none_if_empty(_security_opt(spec, privileged)),
        "Tmpfs": _none_if_empty({m["destination"]: ",".join(m["options"]) for m in _tmpfs(spec)}),
        "UTSMode": _namespace_mode(spec, "uts"),
        "UsernsMode": "",
        "ShmSize": _shm_size(spec),
        "Sysctls": _none_if_empty(_sysctls(linux, config.domainname)),
        "Runtime": config.runtime or "runc",
        "Isolation": "",
        "CpuShares": cpu.get("shares", 0),
        "Memory": memory.get("limit", 0),
        "NanoCpus": nano_cpus,
        "CgroupParent": _cgroup_parent(linux.get("cgroupsPath", "")),
        "BlkioWeight": resources.get("blockIO", {}).get("weight", 0),
        "CpuPeriod": period,
        "CpuQuota": quota,
        "CpuRealtimePeriod": cpu.get("realtimePeriod", 0),
        "CpuRealtimeRuntime": cpu.get("realtimeRuntime", 0),
        "CpusetCpus": cpu.get("cpus", ""),
        "CpusetMems": cpu.get("mems", ""),
        "Devices": _none_if_empty(_devices(linux, resources)),
        "MemoryReservation": memory.get("reservation", 0),
        "MemorySwap": memory.get("swap", 0),
        "MemorySwappiness": memory.get("swappiness"),
        "OomKillDisable": bool(memory.get("disableOOMKiller")),
        "PidsLimit": pids if pids and pids > 0 else None,
        "Ulimits": _none_if_empty(_ulimits(process)),
        "Init": True if _has_init(spec) else None,
        "Mounts": None,
        "MaskedPaths": linux.get("maskedPaths", []),
        "ReadonlyPaths": linux.get("readonlyPaths", []),
    }


def log_config(log: LogConfig | None) -> dict[str, Any]:
    """log_config is docker's HostConfig.LogConfig: the driver and its options in effect."""
    from ctl.runtime.logs import LogConfig

    log = log or LogConfig()
    if log.driver == "none":
        return {"Type": "none", "Config": {}}
    size = log.max_size
    units = (("g", 30), ("m", 20), ("k", 10), ("", 0))
    unit, shift = next((u, bits) for u, bits in units if size % (1 << bits) == 0)
    options = {
        "max-size": f"{size >> shift}{unit}",
        "max-file": str(log.max_files),
        "compress": str(log.compress).lower(),
    }
    return {"Type": log.driver, "Config": options}


def _anonymous(mount: MountSpec) -> bool:
    """_anonymous: a volume ctl named itself (64 hex digits, as docker names them)."""
    name = mount.source
    return mount.type == "volume" and len(name) == 64 and all(c in "0123456789abcdef" for c in name)


def _bind(mount: MountSpec) -> str:
    """_bind is the mount as a -v value: SOURCE:DESTINATION[:ro][,propagation]."""
    mode = ",".join(m for m in ("ro" if mount.readonly else "", mount.propagation) if m)
    return f"{mount.source}:{mount.destination}" + (f":{mode}" if mode else "")


def port_bindings(container: Container) -> dict[str, list[dict[str, str]]]:
    """port_bindings is docker's HostConfig.PortBindings: each -p, by container port."""
    bindings: dict[str, list[dict[str, str]]] = {}
    for p in container.config.publish:
        entry = {"HostIp": p.host_ip, "HostPort": str(p.host_port) if p.host_port else ""}
        bindings.setdefault(f"{p.container_port}/{p.protocol}", []).append(entry)
    return bindings


def _capabilities(process: dict[str, Any], privileged: bool) -> tuple[Any, Any]:
    """_capabilities are CapAdd and CapDrop: the bounding set against docker's default."""
    from ctl.runtime.spec import DEFAULT_CAPABILITIES

    if privileged:
        return None, None
    bounding = process.get("capabilities", {}).get("bounding", [])
    added = [c.removeprefix("CAP_") for c in bounding if c not in DEFAULT_CAPABILITIES]
    dropped = [c.removeprefix("CAP_") for c in DEFAULT_CAPABILITIES if c not in bounding]
    return _none_if_empty(added), _none_if_empty(dropped)


def _cpus(cpu: dict[str, Any]) -> tuple[int, int, int]:
    """_cpus is (NanoCpus, CpuPeriod, CpuQuota).

    --cpus is a quota over ctl's period of 100 ms, and the spec keeps only the
    quota: a quota over that period reads as --cpus, as it is what ``--cpus``
    and ``update --cpus`` write.
    """
    from ctl.runtime.resources import CPU_PERIOD

    period, quota = cpu.get("period", 0), cpu.get("quota", 0)
    if period == CPU_PERIOD and quota and quota > 0:
        return quota * (1_000_000_000 // CPU_PERIOD), 0, 0
    return 0, period, quota


def _namespaces(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n.get("type", ""): n for n in spec.get("linux", {}).get("namespaces", [])}


def _namespace_mode(spec: dict[str, Any], kind: str) -> str:
    """_namespace_mode is --pid, --ipc or --uts: "host", "container:ID", or docker's default."""
    from ctl.runtime.namespaces import PREFIX

    namespace = _namespaces(spec).get(kind)
    if namespace is None:
        return "host"
    path = str(namespace.get("path", ""))
    if path.startswith(PREFIX):
        return path
    if kind == "ipc":
        has_shm = any(m.get("destination") == "/dev/shm" for m in spec.get("mounts", []))
        return "private" if has_shm else "none"
    return ""


def _cgroup_parent(path: str) -> str:
    """_cgroup_parent is --cgroup-parent: "" for ctl's own /ctl/NAMESPACE."""
    parent = posixpath.dirname(path)
    return "" if parent.startswith("/ctl/") or parent == "/ctl" else parent


def _security_opt(spec: dict[str, Any], privileged: bool) -> list[str]:
    from ctl.runtime.apparmor import DEFAULT_PROFILE, UNCONFINED

    process = spec.get("process", {})
    options = []
    if process.get("noNewPrivileges"):
        options.append("no-new-privileges")
    if "seccomp" not in spec.get("linux", {}) and not privileged:
        options.append("seccomp=unconfined")
    profile = process.get("apparmorProfile")
    if profile and profile != DEFAULT_PROFILE and not (privileged and profile == UNCONFINED):
        options.append(f"apparmor={profile}")
    return options


def _tmpfs(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """_tmpfs are the user's tmpfs mounts (--tmpfs, --mount type=tmpfs), not ctl's own."""
    from ctl.runtime.spec import default_spec

    defaults = default_spec()["mounts"]
    return [
        m
        for m in spec.get("mounts", [])
        if m.get("type") == "tmpfs"
        and m.get("destination") not in ("/dev", "/dev/shm")
        and m not in defaults
    ]


def _shm_size(spec: dict[str, Any]) -> int:
    from ctl.runtime.runopts import parse_memory

    for mount in spec.get("mounts", []):
        if mount.get("destination") == "/dev/shm" and mount.get("type") == "tmpfs":
            for option in mount.get("options", []):
                if option.startswith("size="):
                    with contextlib.suppress(Exception):
                        return parse_memory(option.removeprefix("size="))
    return DEFAULT_SHM_SIZE


def _sysctls(linux: dict[str, Any], domainname: str | None) -> dict[str, str]:
    sysctls = dict(linux.get("sysctl", {}))
    if domainname and sysctls.get("kernel.domainname") == domainname:
        del sysctls["kernel.domainname"]  # --domainname's, not a --sysctl
    return sysctls


def _devices(linux: dict[str, Any], resources: dict[str, Any]) -> list[dict[str, str]]:
    """_devices are --device's nodes; ctl keeps the container's path, not the host's."""
    allowed = resources.get("devices", [])
    out = []
    for node in linux.get("devices", []):
        access = next(
            (
                rule.get("access", "rwm")
                for rule in allowed
                if rule.get("allow")
                and rule.get("major") == node.get("major")
                and rule.get("minor") == node.get("minor")
            ),
            "rwm",
        )
        out.append({"PathOnHost": "", "PathInContainer": node["path"], "CgroupPermissions": access})
    return out


def _ulimits(process: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"Name": r["type"].removeprefix("RLIMIT_").lower(), "Hard": r["hard"], "Soft": r["soft"]}
        for r in process.get("rlimits", [])
        if r != _DEFAULT_RLIMIT
    ]


def _has_init(spec: dict[str, Any]) -> bool:
    from ctl.runtime.spec import INIT_PATH

    args = spec.get("process", {}).get("args", [])
    return bool(args[:2] == [INIT_PATH, "--"])


def mounts(container: Container) -> list[dict[str, Any]]:
    """mounts is docker's Mounts: the user's binds, volumes and tmpfs mounts, not ctl's own."""
    by_destination = {
        posixpath.normpath(m.get("destination", "")): m for m in container.spec.get("mounts", [])
    }
    out: list[dict[str, Any]] = []
    recorded = set()
    for mount in container.config.mounts:
        destination = posixpath.normpath(mount.destination)
        recorded.add(destination)
        entry: dict[str, Any] = {"Type": mount.type}
        source = mount.source
        if mount.type == "volume":
            entry["Name"] = mount.source
            source = by_destination.get(destination, {}).get("source", "")
        entry |= {
            "Source": source,
            "Destination": destination,
            **({"Driver": "local"} if mount.type == "volume" else {}),
            "Mode": "ro" if mount.readonly and mount.type == "bind" else "",
            "RW": not mount.readonly,
            "Propagation": mount.propagation or ("rprivate" if mount.type == "bind" else ""),
        }
        out.append(entry)
    for tmpfs in _tmpfs(container.spec):
        if tmpfs["destination"] in recorded:
            continue
        out.append(
            {
                "Type": "tmpfs",
                "Source": "",
                "Destination": tmpfs["destination"],
                "Mode": ",".join(tmpfs.get("options", [])),
                "RW": "ro" not in tmpfs.get("options", []),
                "Propagation": "",
            }
        )
    return out


def _config(container: Container, image: dict[str, Any]) -> dict[str, Any]:
    """_config is docker's Config: the command, environment and metadata the container runs."""
    from ctl.runtime.spec import ANNOTATION_STOP_SIGNAL

    config, spec = container.config, container.spec
    process = spec.get("process", {})
    args = list(process.get("args", []))
    if _has_init(spec):
        args = args[2:]
    entrypoint, cmd = _command(container, image, args)
    user = process.get("user", {})
    uid, gid = user.get("uid", 0), user.get("gid", 0)
    volumes = {**(image.get("Volumes") or {})}
    volumes |= {m.destination: {} for m in config.mounts if _anonymous(m)}
    stop_signal = spec.get("annotations", {}).get(ANNOTATION_STOP_SIGNAL)
    return {
        "Hostname": spec.get("hostname", ""),
        "Domainname": config.domainname or "",
        "User": f"{uid}:{gid}" if (uid, gid) != (0, 0) else "",
        # ctl does not record whether a run was attached: docker's zero values.
        "AttachStdin": False,
        "AttachStdout": False,
        "AttachStderr": False,
        "ExposedPorts": _none_if_empty({port: {} for port in exposed_ports(container, image)}),
        "Tty": bool(process.get("terminal")),
        "OpenStdin": config.stdin,
        "StdinOnce": False,
        "Env": process.get("env", []),
        "Cmd": cmd,
        **({"Healthcheck": config.health.to_json()} if config.health is not None else {}),
        "Image": container.image,
        "Volumes": _none_if_empty(volumes),
        "WorkingDir": process.get("cwd", "/"),
        "Entrypoint": entrypoint,
        "OnBuild": None,
        "Labels": container.labels,
        **({"StopSignal": stop_signal} if stop_signal else {}),
        **({"StopTimeout": config.stop_timeout} if config.stop_timeout is not None else {}),
    }


def _command(
    container: Container, image: dict[str, Any], args: list[str]
) -> tuple[list[str] | None, list[str] | None]:
    """_command is (Entrypoint, Cmd) as docker keeps them: the image's, or the ones given.

    Without the image, the command as given is Cmd and the rest of what runs
    the Entrypoint; with neither, the whole command is Cmd.
    """
    config = container.config
    given = list(config.args)
    if image or config.entrypoint is not None:
        entrypoint = (
            list(config.entrypoint)
            if config.entrypoint is not None
            else list(image.get("Entrypoint") or [])
        )
        if given:
            cmd = given
        elif config.entrypoint is None:
            cmd = list(image.get("Cmd") or [])
        else:
            cmd = []
        if entrypoint + cmd == args:
            return _none_if_empty(entrypoint), _none_if_empty(cmd)
    if given and args[len(args) - len(given) :] == given:
        return _none_if_empty(args[: len(args) - len(given)]), given
    return None, _none_if_empty(args)


def exposed_ports(container: Container, image: dict[str, Any]) -> list[str]:
    """exposed_ports are the image's exposed ports and the published ones, as "80/tcp"."""
    ports = [p if "/" in p else f"{p}/tcp" for p in image.get("ExposedPorts") or {}]
    ports += [f"{p.container_port}/{p.protocol}" for p in container.config.publish]
    return list(dict.fromkeys(ports))


def _network_settings(
    client: Client, container: Container, task: TaskState | None, image: dict[str, Any]
) -> dict[str, Any]:
    """_network_settings is docker's NetworkSettings, and ctl's Network (the --net given)."""
    import ipaddress

    from ctl.containers.container import docker_network_name
    from ctl.errdefs import CtlError
    from ctl.runtime.state import is_live

    config = container.config
    network = config.network
    settings: dict[str, Any] = {
        "Network": network,
        "Bridge": "",
        "SandboxID": "",
        "SandboxKey": "",
        "Ports": {},
        "IPAddress": "",
        "IPPrefixLen": 0,
        "Gateway": "",
        "MacAddress": config.mac_address or "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPv6Gateway": "",
    }
    attachments = []
    if network not in ("none", "host"):
        # The start network's record alone warns, naming it, when it is damaged.
        client.network_attachment(container)
        attachments = client.network_attachments(container)
    networks: dict[str, dict[str, Any]] = {}
    for index, attachment in enumerate(attachments):
        prefix, network_id = 0, ""
        with contextlib.suppress(CtlError, ValueError):
            info = client.networks.get(attachment.network)
            network_id = info.id
            prefix = ipaddress.ip_network(info.subnet, strict=False).prefixlen
        own = index == 0
        networks[docker_network_name(attachment.network)] = _endpoint(
            address=attachment.address,
            gateway=attachment.gateway,
            prefix=prefix,
            network_id=network_id,
            aliases=list(config.network_aliases) if own else [],
            mac=config.mac_address or "" if own else "",
        ) | {"Interface": attachment.interface}
        if index == 0:
            settings.update(
                IPAddress=attachment.address,
                IPPrefixLen=prefix,
                Gateway=attachment.gateway,
                SandboxKey=str(attachment.netns_path),
            )
    if not networks:
        # Not running: docker lists the network with no address.
        network_id = ""
        if network not in ("none", "host"):
            from ctl.network.networks import resolve_network

            with contextlib.suppress(CtlError):
                network_id = client.networks.get(resolve_network(network)).id
        networks = {
            docker_network_name(network): _endpoint(
                network_id=network_id,
                aliases=list(config.network_aliases),
                mac=config.mac_address or "",
            ),
        }
        for connection in config.connections:
            connected_id = ""
            with contextlib.suppress(CtlError):
                connected_id = client.networks.get(connection.network).id
            networks[docker_network_name(connection.network)] = _endpoint(
                network_id=connected_id, aliases=list(connection.aliases)
            )
    settings["Networks"] = networks
    if is_live(task) and network not in ("none", "host"):
        settings["Ports"] = ports(container, image)
    return settings


def _endpoint(
    address: str = "",
    gateway: str = "",
    prefix: int = 0,
    network_id: str = "",
    aliases: list[str] | None = None,
    mac: str = "",
) -> dict[str, Any]:
    return {
        "IPAMConfig": None,
        "Links": None,
        "Aliases": aliases or None,
        "MacAddress": mac,
        "NetworkID": network_id,
        "EndpointID": "",
        "Gateway": gateway,
        "IPAddress": address,
        "IPPrefixLen": prefix,
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "DNSNames": None,
    }


def ports(container: Container, image: dict[str, Any]) -> dict[str, list[dict[str, str]] | None]:
    """ports is docker's NetworkSettings.Ports: each exposed port, its host bindings or null."""
    out: dict[str, list[dict[str, str]] | None] = dict.fromkeys(exposed_ports(container, image))
    for p in container.config.publish:
        entry = {"HostIp": p.host_ip or "0.0.0.0", "HostPort": str(p.host_port)}
        bound = out.get(f"{p.container_port}/{p.protocol}") or []
        out[f"{p.container_port}/{p.protocol}"] = [*bound, entry]
    return out
