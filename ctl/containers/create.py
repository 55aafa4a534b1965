"""What ``ctl create`` and ``ctl run`` turn their flags into: options, then an OCI spec."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, NamedTuple

from ctl.runtime import spec as oci_spec

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from ctl.containers.container import MountSpec, PortMapping, RestartPolicy, RunConfig
    from ctl.oci import Platform
    from ctl.runtime.health import HealthConfig
    from ctl.runtime.logs import LogConfig
    from ctl.runtime.resources import Resources
    from ctl.runtime.runopts import (
        DeviceMapping,
        DeviceRule,
        NamespaceMode,
        SecurityOptions,
        Ulimit,
    )

# --net takes these, or the name of a network made with `ctl network create`.
NETWORK_MODES = ("none", "host", "bridge")
PULL_POLICIES = ("missing", "always", "never")
# Host files ctl writes for each container and binds over the rootfs's own.
HOSTS_FILE, HOSTNAME_FILE, RESOLV_FILE = "hosts", "hostname", "resolv.conf"


class ContainerOptions(NamedTuple):
    """ContainerOptions are the parsed flags of ``create``/``run``.

    A flag that shapes the spec is a field here and a line in ``FLAG_OPTS``;
    one that shapes the task is also a field of ``RunConfig``.
    """

    name: str | None = None
    args: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] | None = None
    env: tuple[str, ...] = ()
    mounts: tuple[MountSpec, ...] = ()
    # storage: --volumes-from, as (container, "ro"|"rw"|"" for each mount's own).
    volumes_from: tuple[tuple[str, str], ...] = ()
    workdir: str | None = None
    user: str | None = None
    hostname: str | None = None
    network: str = "bridge"
    publish: tuple[PortMapping, ...] = ()
    # network and lifecycle (netl)
    publish_all: bool = False
    expose: tuple[str, ...] = ()
    add_hosts: tuple[tuple[str, str], ...] = ()
    dns: tuple[str, ...] = ()
    dns_search: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()
    domainname: str | None = None
    mac_address: str | None = None
    ip: str | None = None
    ip6: str | None = None
    stop_signal: str | None = None
    stop_timeout: int | None = None
    annotations: dict[str, str] = {}
    tmpfs: tuple[tuple[str, tuple[str, ...]], ...] = ()
    detach_keys: str | None = None
    # networks (issue 14)
    network_aliases: tuple[str, ...] = ()
    memory: int | None = None
    cpus: float | None = None
    pids_limit: int | None = None
    # resources, devices and namespaces (issue 11)
    resources: Resources | None = None
    ulimits: tuple[Ulimit, ...] = ()
    oom_score_adj: int | None = None
    shm_size: int | None = None
    sysctls: dict[str, str] = {}
    devices: tuple[DeviceMapping, ...] = ()
    cdi_devices: tuple[str, ...] = ()
    device_cgroup_rules: tuple[DeviceRule, ...] = ()
    group_add: tuple[str, ...] = ()
    pid: NamespaceMode | None = None
    ipc: NamespaceMode | None = None
    uts_host: bool = False
    cgroup_parent: str | None = None
    read_only: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    privileged: bool = False
    security: SecurityOptions | None = None
    # security (sec): None is docker's default for the host (default_cgroupns);
    # runtime is an OCI runtime's name or path, None for runc.
    cgroupns: str | None = None
    runtime: str | None = None
    # A default shared by every instance: records are never changed in place.
    labels: dict[str, str] = {}
    init: bool = False
    # logging and health checks: None is json-file's defaults, and the image's check
    log: LogConfig | None = None
    health: HealthConfig | None = None
    restart: RestartPolicy | None = None
    tty: bool = False
    stdin: bool = False
    rm: bool = False
    platform: Platform | None = None
    pull: str = "missing"

    def run_config(self, image_config: dict[str, Any] | None = None) -> RunConfig:
        """run_config is what the container record keeps for starting its task.

        The health check is the flags' over the image's (``image_config``).
        """
        from ctl.containers.container import RunConfig

        return RunConfig(
            tty=self.tty,
            runtime=self.runtime,
            stdin=self.stdin,
            rm=self.rm,
            log=self.log,
            health=_health_check(self.health, image_config),
            restart=self.restart,
            network=self.network,
            publish=self.publish,
            publish_all=self.publish_all,
            add_hosts=self.add_hosts,
            dns=self.dns,
            dns_search=self.dns_search,
            dns_options=self.dns_options,
            domainname=self.domainname,
            mac_address=self.mac_address,
            ip=self.ip,
            ip6=self.ip6,
            stop_timeout=self.stop_timeout,
            detach_keys=self.detach_keys,
            network_aliases=self.network_aliases,
            hostname=self.hostname,
            args=self.args,
            entrypoint=self.entrypoint,
        )


def _with_resources(
    memory: int | None, cpus: float | None, resources: Resources | None
) -> oci_spec.SpecOpt:
    from ctl.runtime.resources import Resources

    return oci_spec.with_resources((resources or Resources())._replace(memory=memory, cpus=cpus))


def _with_cdi_devices(names: tuple[str, ...]) -> oci_spec.SpecOpt:
    from ctl.runtime.cdi import with_cdi_devices

    return with_cdi_devices(names)


def _health_check(
    flags: HealthConfig | None, image_config: dict[str, Any] | None
) -> HealthConfig | None:
    """_health_check is the check the task runs: the flags' fields over the image's."""
    image = ((image_config or {}).get("config") or {}).get("Healthcheck")
    if flags is None and not image:
        return None  # without importing health: nothing to run
    from ctl.runtime.health import HealthConfig

    own = flags or HealthConfig()
    return own.merged(HealthConfig.from_json(image) if isinstance(image, dict) else None)


# How the flags refine the spec, after the image config, in this order: the
# fields each line reads, and the option their values make (None: no change).
# A line whose fields are all left empty (None, False, "", (), {}) adds nothing.
FLAG_OPTS: tuple[tuple[tuple[str, ...], Callable[..., oci_spec.SpecOpt | None]], ...] = (
    (("env",), oci_spec.with_env),
    (("workdir",), oci_spec.with_cwd),
    (("tty",), lambda _: oci_spec.with_tty),
    (("mounts",), oci_spec.with_mounts),
    (("read_only",), lambda _: oci_spec.with_readonly_rootfs),
    (("privileged",), lambda _: oci_spec.with_privileged),
    (("cap_add", "cap_drop"), oci_spec.with_capabilities),
    (("cgroupns",), oci_spec.with_cgroupns),
    (("memory", "cpus", "resources"), _with_resources),
    (("pids_limit",), oci_spec.with_pids_limit),
    (("ulimits",), lambda ulimits: oci_spec.with_rlimits({u.type: u[1:] for u in ulimits})),
    (("oom_score_adj",), oci_spec.with_oom_score_adj),
    (("shm_size",), oci_spec.with_shm_size),
    (("sysctls",), oci_spec.with_sysctls),
    (("devices",), oci_spec.with_devices),
    (("cdi_devices",), _with_cdi_devices),
    (("device_cgroup_rules",), oci_spec.with_device_cgroup_rules),
    (("pid",), oci_spec.with_pid_mode),
    (("ipc",), oci_spec.with_ipc_mode),
    (("uts_host",), lambda _: oci_spec.with_host_uts),
    (("cgroup_parent",), oci_spec.with_cgroup_parent),
    (("network",), lambda mode: oci_spec.with_host_network if mode == "host" else None),
    (("domainname",), oci_spec.with_domainname),
    (("stop_signal",), oci_spec.with_stop_signal),
    (("annotations",), oci_spec.with_annotations),
    (("tmpfs",), oci_spec.with_tmpfs),
    (("init",), lambda _: oci_spec.with_init(oci_spec.find_init_binary())),
    (("labels",), oci_spec.with_annotations),
)


def flag_opts(options: ContainerOptions) -> list[oci_spec.SpecOpt]:
    """flag_opts are the spec options ``options`` ask for, as ``FLAG_OPTS`` lists them."""
    opts = []
    for fields, make in FLAG_OPTS:
        values = [getattr(options, field) for field in fields]
        if all(_empty(value) for value in values):
            continue
        opt = make(*values)
        if opt is not None:
            opts.append(opt)
    return opts


def _empty(value: object) -> bool:
    if isinstance(value, (str, tuple, dict)):
        return not value
    return value is None or value is False


def hostname_for(options: ContainerOptions, container_id: str) -> str:
    if options.hostname:
        return options.hostname
    if options.network == "host" or options.uts_host:
        return os.uname().nodename  # gethostname(), without importing socket
    return container_id[:12]


def container_spec(
    options: ContainerOptions,
    image_config: dict[str, Any],
    rootfs: Path,
    container_id: str,
    namespace: str,
    files_dir: Path,
) -> oci_spec.Spec:
    """container_spec builds the OCI runtime spec; ``rootfs`` must be mounted (user lookup)."""
    return oci_spec.generate_spec(
        oci_spec.with_image_config(
            image_config,
            rootfs,
            args=options.args,
            entrypoint=options.entrypoint,
            user=options.user or "",
        ),
        oci_spec.with_hostname(hostname_for(options, container_id)),
        oci_spec.with_cgroups_path(f"/ctl/{namespace}/{container_id}"),
        oci_spec.with_hosts_files(
            hosts=files_dir / HOSTS_FILE,
            hostname=files_dir / HOSTNAME_FILE,
            resolv_conf=files_dir / RESOLV_FILE,
        ),
        *flag_opts(options),
        *([oci_spec.with_group_add(options.group_add, rootfs)] if options.group_add else []),
        # Every container is confined, and after the capabilities, which seccomp's rules follow.
        oci_spec.with_security(options.security, options.privileged),
    )


def write_host_files(
    files_dir: Path,
    config: RunConfig,
    hostname: str,
    address: str | None = None,
    gateway: str | None = None,
    nameserver: str = "",
) -> None:
    """write_host_files writes /etc/hosts, /etc/hostname and /etc/resolv.conf for a container.

    ``address`` is the container's on its network, ``gateway`` the host's
    there (what ``--add-host NAME:host-gateway`` names), ``nameserver`` the
    resolver of its network, if it has one. They are replaced by rename, so
    call it before the task starts: a running container's bind mounts keep
    the old files.
    """
    from ctl import fsutil

    if config.network == "host":
        hosts = _read_host_file("/etc/hosts") or f"127.0.0.1\tlocalhost {hostname}\n"
        hosts += _extra_hosts(config.add_hosts, gateway)
    else:
        hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        hosts += _extra_hosts(config.add_hosts, gateway)
        names = f"{hostname}.{config.domainname} {hostname}" if config.domainname else hostname
        hosts += f"{address or '127.0.1.1'}\t{names}\n"
    resolv = resolv_conf(
        config.network, config.dns, config.dns_search, config.dns_options, nameserver
    )
    # Written again before every start, so they need no fsync.
    files = {HOSTS_FILE: hosts, HOSTNAME_FILE: f"{hostname}\n", RESOLV_FILE: resolv}
    for name, text in files.items():
        what = f"the container's /etc/{name}"
        fsutil.atomic_write(files_dir / name, text.encode(), durable=False, what=what)


def _extra_hosts(add_hosts: tuple[tuple[str, str], ...], gateway: str | None) -> str:
    """_extra_hosts are the --add-host lines; host-gateway is the host's address."""
    from ctl.runtime.runopts import HOST_GATEWAY

    lines = []
    for name, address in add_hosts:
        resolved = (gateway or host_address()) if address == HOST_GATEWAY else address
        lines.append(f"{resolved}\t{name}\n")
    return "".join(lines)


def host_address() -> str:
    """host_address is the host's address on its default route, as --add-host host-gateway
    means it for a container outside a bridge network; loopback without a route.

    Connecting a UDP socket sends nothing: the kernel only picks the source address.
    """
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: routed like any outside address
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"


def resolv_conf(
    network: str,
    dns: Sequence[str] = (),
    search: Sequence[str] = (),
    options: Sequence[str] = (),
    nameserver: str = "",
) -> str:
    """resolv_conf is the host's, with loopback resolvers replaced as docker does.

    A container outside the host's network namespace cannot reach the host's
    127.0.0.x resolver (systemd-resolved, dnsmasq), so those lines give way
    to public resolvers when nothing else is left. ``--dns``, ``--dns-search``
    and ``--dns-option`` each replace the host's lines of their kind (a
    search of ``.`` means none), as docker's do. On a network with a resolver
    (``nameserver``) it comes first; it forwards other names to the host's.
    """
    text = _read_host_file("/etc/resolv.conf")
    if network == "host" and not (dns or search or options or nameserver):
        return text
    lines = []
    for line in text.splitlines():
        words = line.split()
        kind = words[0] if words else ""
        replaced = {
            "nameserver": dns or nameserver,
            "search": search,
            "domain": search,
            "options": options,
        }
        loopback = kind == "nameserver" and len(words) > 1 and _is_loopback(words[1])
        if replaced.get(kind) or (loopback and network != "host"):
            continue
        lines.append(line)
    if nameserver:
        lines.append(f"nameserver {nameserver}")
    lines += [f"nameserver {server}" for server in dns]
    if not any(line.split()[:1] == ["nameserver"] for line in lines):
        lines += ["nameserver 8.8.8.8", "nameserver 8.8.4.4"]
    domains = [domain for domain in search if domain != "."]
    if domains:
        lines.append("search " + " ".join(domains))
    if options:
        lines.append("options " + " ".join(options))
    return "\n".join(lines) + "\n"


def _is_loopback(address: str) -> bool:
    return address.startswith("127.") or address == "::1"


def _read_host_file(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""
