"""What ``ctl create`` and ``ctl run`` turn their flags into: options, then an OCI spec."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, NamedTuple

from ctl.runtime import spec as oci_spec

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from ctl.containers.container import RunConfig
    from ctl.oci import Platform
    from ctl.runtime.runopts import MountSpec, PortMapping, RestartPolicy, SecurityOptions

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
    workdir: str | None = None
    user: str | None = None
    hostname: str | None = None
    network: str = "bridge"
    publish: tuple[PortMapping, ...] = ()
    # networks (issue 14)
    network_aliases: tuple[str, ...] = ()
    memory: int | None = None
    cpus: float | None = None
    pids_limit: int | None = None
    read_only: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    privileged: bool = False
    security: SecurityOptions | None = None
    # A default shared by every instance: records are never changed in place.
    labels: dict[str, str] = {}
    init: bool = False
    restart: RestartPolicy | None = None
    tty: bool = False
    stdin: bool = False
    rm: bool = False
    platform: Platform | None = None
    pull: str = "missing"

    def run_config(self) -> RunConfig:
        """run_config is what the container record keeps for starting its task."""
        from ctl.containers.container import RunConfig

        return RunConfig(
            tty=self.tty,
            stdin=self.stdin,
            rm=self.rm,
            restart=self.restart,
            network=self.network,
            publish=self.publish,
            network_aliases=self.network_aliases,
            hostname=self.hostname,
            args=self.args,
            entrypoint=self.entrypoint,
        )


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
    (("security",), oci_spec.with_security),
    (("memory",), oci_spec.with_memory_limit),
    (("cpus",), oci_spec.with_cpus),
    (("pids_limit",), oci_spec.with_pids_limit),
    (("network",), lambda mode: oci_spec.with_host_network if mode == "host" else None),
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
    if options.network == "host":
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
    )


def write_host_files(
    files_dir: Path, network: str, hostname: str, address: str | None = None, nameserver: str = ""
) -> None:
    """write_host_files writes /etc/hosts, /etc/hostname and /etc/resolv.conf for a container.

    ``nameserver`` is the resolver of the container's network, if it has one.

    They are replaced by rename, so call it before the task starts: a running
    container's bind mounts keep the old files.
    """
    from ctl import fsutil

    if network == "host":
        hosts = _read_host_file("/etc/hosts") or f"127.0.0.1\tlocalhost {hostname}\n"
    else:
        hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        hosts += f"{address or '127.0.1.1'}\t{hostname}\n"
    # Written again before every start, so they need no fsync.
    resolv = resolv_conf(network, nameserver)
    files = {HOSTS_FILE: hosts, HOSTNAME_FILE: f"{hostname}\n", RESOLV_FILE: resolv}
    for name, text in files.items():
        what = f"the container's /etc/{name}"
        fsutil.atomic_write(files_dir / name, text.encode(), durable=False, what=what)


def resolv_conf(network: str, nameserver: str = "") -> str:
    """resolv_conf is the host's, with loopback resolvers replaced as docker does.

    A container outside the host's network namespace cannot reach the host's
    127.0.0.x resolver (systemd-resolved, dnsmasq), so those lines give way
    to public resolvers when nothing else is left. On a network with a
    resolver (``nameserver``), it is the only one: it forwards the rest to
    the host's.
    """
    text = _read_host_file("/etc/resolv.conf")
    if network == "host":
        return text
    lines = []
    for line in text.splitlines():
        words = line.split()
        if (
            words[:1] == ["nameserver"]
            and len(words) > 1
            and (nameserver or _is_loopback(words[1]))
        ):
            continue
        lines.append(line)
    if nameserver:
        lines.append(f"nameserver {nameserver}")
    if not any(line.split()[:1] == ["nameserver"] for line in lines):
        lines += ["nameserver 8.8.8.8", "nameserver 8.8.4.4"]
    return "\n".join(lines) + "\n"


def _is_loopback(address: str) -> bool:
    return address.startswith("127.") or address == "::1"


def _read_host_file(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""
