"""Running CNI plugins as the CNI specification's runtime side does (libcni's job).

A plugin is an executable named after its ``type``, found in the plugin
search path. One call is one process: the operation and the container in
environment variables, the plugin's network configuration on stdin, a result
(ADD) or an error as JSON on stdout::

    CNI_COMMAND=ADD CNI_CONTAINERID=<id> CNI_NETNS=<path> CNI_IFNAME=eth0 \\
    CNI_PATH=/usr/lib/cni:/opt/cni/bin  /usr/lib/cni/bridge  < config.json

A network configuration list (a "conflist") names several plugins that act
as one network. ``add_list`` runs them in order, each receiving the previous
plugin's result as ``prevResult`` and returning it amended; ``del_list`` runs
them in reverse with the result ADD returned. (CHECK is left out: the
portmap plugin of containernetworking-plugins 1.1 fails it for every
IPv4-only container that publishes a port.) Each plugin's configuration is its own entry of the
list plus the list's ``name`` and ``cniVersion``, and ``runtimeConfig`` with
the runtime's values (``capability_args``) for the capabilities it declares,
such as ``portMappings`` for ``portmap``.

A failing plugin becomes one ``CtlError`` line (``CNI plugin bridge ADD:
<msg>: <details>``); its error code picks the class (11, "try again later",
is ``Unavailable``). Every plugin call is bounded by a timeout.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import TYPE_CHECKING, Any, NamedTuple

from ctl.errdefs import CtlError, InvalidArgument, NotFound, Unavailable, Unimplemented

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

PATH_ENV = "CTL_CNI_PATH"
# Debian's containernetworking-plugins, then the upstream release's location.
DEFAULT_PLUGIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin", "/usr/libexec/cni")
# The result formats this module reads, best first.
SPOKEN_VERSIONS = ("1.0.0", "0.4.0")
PLUGIN_TIMEOUT = 60.0
# Plugins run iptables and ip; a service's PATH may lack the sbin directories.
_SBIN = "/usr/local/sbin:/usr/sbin:/sbin"

# Error codes of the CNI specification that say more than "it failed".
_ERROR_CLASSES: dict[int, type[CtlError]] = {
    1: Unimplemented,  # incompatible CNI version
    2: InvalidArgument,  # unsupported field in the network configuration
    4: InvalidArgument,  # invalid necessary environment variables
    6: InvalidArgument,  # failed to decode content
    7: InvalidArgument,  # invalid network configuration
    11: Unavailable,  # try again later
}


def plugin_dirs() -> list[str]:
    """plugin_dirs is the search path: ``$CTL_CNI_PATH`` (colon-separated) or the defaults."""
    configured = os.environ.get(PATH_ENV, "")
    dirs = [d for d in configured.split(":") if d]
    return dirs or list(DEFAULT_PLUGIN_DIRS)


class RuntimeConf(NamedTuple):
    """RuntimeConf is the container side of one call: which namespace, which interface.

    ``capability_args`` holds the runtime's values for plugin capabilities
    (``{"portMappings": [...]}``); a plugin receives those it declares.
    ``args`` are CNI_ARGS, read by the plugins that know them: ``IP`` (a
    static address, host-local) and ``MAC`` (bridge); the others ignore them.
    """

    container_id: str
    netns: str
    ifname: str
    # Defaults shared by every instance: records are never changed in place.
    capability_args: Mapping[str, Any] = {}
    args: Mapping[str, str] = {}


def plugin_config(
    conflist: Mapping[str, Any],
    plugin: Mapping[str, Any],
    rt: RuntimeConf,
    prev_result: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """plugin_config is what one plugin of ``conflist`` reads on stdin."""
    config = dict(plugin)
    config["name"] = conflist["name"]
    config["cniVersion"] = conflist["cniVersion"]
    capabilities = plugin.get("capabilities") or {}
    runtime = {k: v for k, v in rt.capability_args.items() if capabilities.get(k)}
    if runtime:
        config["runtimeConfig"] = runtime
    if prev_result is not None:
        config["prevResult"] = prev_result
    return config


def cni_args(args: Mapping[str, str]) -> str:
    """cni_args is CNI_ARGS for ``args``: a plugin that meets a key it does not know fails,
    unless IgnoreUnknown is set (the specification's convention)."""
    for key, value in args.items():
        if not key or any(c in key + value for c in ";=") or not (key + value).isprintable():
            raise InvalidArgument(f"invalid CNI argument {key}={value!r}")
    return ";".join(["IgnoreUnknown=1", *(f"{k}={v}" for k, v in args.items())])


def plugin_error(plugin: str, command: str, code: int, stdout: bytes, stderr: bytes) -> CtlError:
    """plugin_error turns a failed plugin call into one error line, classed by its CNI code."""
    what = f"CNI plugin {plugin} {command}"
    try:
        error = json.loads(stdout)
        msg = str(error["msg"]).strip()
        details = str(error.get("details") or "").strip()
        cni_code = int(error.get("code", 0))
    except (ValueError, KeyError, TypeError):
        lines = stderr.decode(errors="replace").strip().splitlines()
        why = lines[-1] if lines else f"exit status {code}, no error message"
        return CtlError(_one_line(f"{what}: {why}"))
    text = f"{what}: {msg}: {details}" if details and details not in msg else f"{what}: {msg}"
    return _ERROR_CLASSES.get(cni_code, CtlError)(_one_line(text))


def _one_line(text: str) -> str:
    return " ".join(text.split())


class CNI:
    """CNI runs plugins from ``path`` (default: ``plugin_dirs()``)."""

    def __init__(self, path: Sequence[str] | None = None, timeout: float = PLUGIN_TIMEOUT) -> None:
        self.path = list(path) if path is not None else plugin_dirs()
        self.timeout = timeout

    def find(self, plugin: str) -> str:
        """find returns the executable of plugin ``type``; NotFound names the search path."""
        if "/" in plugin or plugin in ("", ".", ".."):
            raise InvalidArgument(f"invalid CNI plugin type {plugin!r}")
        for directory in self.path:
            candidate = os.path.join(directory, plugin)
            if os.access(candidate, os.X_OK) and os.path.isfile(candidate):
                return candidate
        raise NotFound(
            f"CNI plugin {plugin!r} not found in {':'.join(self.path)}",
            hint=f"install containernetworking-plugins, or set {PATH_ENV}",
        )

    def _exec(
        self, plugin: str, command: str, config: Mapping[str, Any], env: Mapping[str, str]
    ) -> dict[str, Any] | None:
        executable = self.find(plugin)
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("CNI_")}
        full_env["PATH"] = f"{full_env.get('PATH', '/usr/bin:/bin')}:{_SBIN}"
        full_env.update(env, CNI_COMMAND=command, CNI_PATH=":".join(self.path))
        try:
            proc = subprocess.run(
                [executable],
                input=json.dumps(config).encode(),
                capture_output=True,
                env=full_env,
                timeout=self.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as err:
            raise Unavailable(
                f"CNI plugin {plugin} {command}: no answer within {self.timeout:g}s"
            ) from err
        except OSError as err:
            raise CtlError(f"CNI plugin {plugin} {command}: {err.strerror}") from err
        if proc.returncode != 0:
            raise plugin_error(plugin, command, proc.returncode, proc.stdout, proc.stderr)
        if not proc.stdout.strip():
            return None
        try:
            result = json.loads(proc.stdout)
        except ValueError as err:
            raise CtlError(f"CNI plugin {plugin} {command}: output is not JSON") from err
        if not isinstance(result, dict):
            raise CtlError(f"CNI plugin {plugin} {command}: output is not a JSON object")
        return result

    def _call(
        self,
        command: str,
        conflist: Mapping[str, Any],
        plugin: Mapping[str, Any],
        rt: RuntimeConf,
        prev_result: Mapping[str, Any] | None,
    ) -> dict[str, Any] | None:
        env = {
            "CNI_CONTAINERID": rt.container_id,
            "CNI_NETNS": rt.netns,
            "CNI_IFNAME": rt.ifname,
        }
        if rt.args:
            env["CNI_ARGS"] = cni_args(rt.args)
        config = plugin_config(conflist, plugin, rt, prev_result)
        return self._exec(str(plugin["type"]), command, config, env)

    def supported_versions(self, plugin: str) -> list[str]:
        """supported_versions asks a plugin which specification versions it speaks."""
        answer = self._exec(plugin, "VERSION", {"cniVersion": SPOKEN_VERSIONS[0]}, {})
        versions = (answer or {}).get("supportedVersions")
        if not isinstance(versions, list):
            raise CtlError(f"CNI plugin {plugin} VERSION: no supportedVersions in its answer")
        return [str(v) for v in versions]

    def best_version(self, plugin: str) -> str:
        """best_version is the newest version both this module and ``plugin`` speak."""
        supported = set(self.supported_versions(plugin))
        for version in SPOKEN_VERSIONS:
            if version in supported:
                return version
        raise Unimplemented(
            f"CNI plugin {plugin} speaks {', '.join(sorted(supported))}; "
            f"ctl needs one of {', '.join(SPOKEN_VERSIONS)}"
        )

    def add(self, config: Mapping[str, Any], rt: RuntimeConf) -> dict[str, Any]:
        """add runs ADD of a single-plugin configuration and returns its result."""
        return self.add_list(_as_list(config), rt)

    def add_list(
        self,
        conflist: Mapping[str, Any],
        rt: RuntimeConf,
        on_result: Callable[[dict[str, Any]], None] | None = None,
    ) -> dict[str, Any]:
        """add_list runs ADD of every plugin in order and returns the last result.

        ``on_result`` sees the result after each plugin: a runtime records it
        so that a DEL after a failure or a crash half-way releases what the
        plugins so far set up (``firewall`` finds its rules only through it).
        """
        result: dict[str, Any] | None = None
        for plugin in conflist["plugins"]:
            result = self._call("ADD", conflist, plugin, rt, result)
            if result is None:
                raise CtlError(f"CNI plugin {plugin['type']} ADD: returned no result")
            if on_result is not None:
                on_result(result)
        if result is None:
            raise InvalidArgument(f"CNI network {conflist['name']!r} has no plugins")
        return result

    def check_list(
        self, conflist: Mapping[str, Any], rt: RuntimeConf, prev_result: Mapping[str, Any]
    ) -> bool:
        """check_list runs CHECK of every plugin in order with ADD's result.

        Each plugin verifies that what it set up is still there (the
        interface and its addresses, the lease, the iptables rules) and the
        first that finds otherwise raises. False when the configuration
        opts out (``disableCheck``) or predates CHECK (before 0.4.0).
        """
        version = str(conflist.get("cniVersion", ""))
        if conflist.get("disableCheck") or _version_tuple(version) < (0, 4, 0):
            return False
        for plugin in conflist["plugins"]:
            try:
                self._call("CHECK", conflist, plugin, rt, prev_result)
            except CtlError as err:
                if not _portmap_ipv6_false_alarm(plugin, err, prev_result):
                    raise
        return True

    def del_list(
        self, conflist: Mapping[str, Any], rt: RuntimeConf, prev_result: Mapping[str, Any] | None
    ) -> None:
        """del_list runs DEL of every plugin in reverse order with ADD's result.

        ``prev_result`` is None when ADD never finished; plugins then release
        what they can find from the container id and the namespace.
        A plugin whose binary is gone is skipped: it has nothing left to
        undo that ctl could reach, and a container must stay removable. The
        other plugins still run; the first real failure is raised after them.
        """
        failure: CtlError | None = None
        for plugin in reversed(conflist["plugins"]):
            try:
                self._call("DEL", conflist, plugin, rt, prev_result)
            except NotFound:
                continue
            except CtlError as err:
                failure = failure or err
        if failure is not None:
            raise failure


def _as_list(config: Mapping[str, Any]) -> dict[str, Any]:
    plugin = {k: v for k, v in config.items() if k not in ("name", "cniVersion")}
    return {"cniVersion": config["cniVersion"], "name": config["name"], "plugins": [plugin]}


def _portmap_ipv6_false_alarm(
    plugin: Mapping[str, Any], err: CtlError, prev_result: Mapping[str, Any]
) -> bool:
    """_portmap_ipv6_false_alarm spots a known portmap bug (plugins before 1.2.0, Debian 12's).

    Its CHECK looks for IPv6 DNAT rules even for a container with no IPv6
    address (containernetworking/plugins#819). It checks the IPv4 rules
    first, so a complaint about IPv6 for an IPv4-only container means the
    rules that exist were found.
    """
    addresses = [str(ip.get("address", "")) for ip in prev_result.get("ips") or []]
    return (
        plugin.get("type") == "portmap"
        and "ipv6" in str(err).lower()
        and not any(":" in address for address in addresses)
    )


def _version_tuple(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return ()
