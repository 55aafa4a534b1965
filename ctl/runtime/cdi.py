"""CDI, the Container Device Interface: devices by name, ``vendor.com/class=name``.

A vendor describes its devices in spec files (the CDI spec, cncf-tags/
container-device-interface SPEC.md): a ``kind`` (``vendor.com/class``), a
list of ``devices``, each with a ``name`` and ``containerEdits``, and
``containerEdits`` for the whole file, applied once when any of its devices
is asked for. The edits are device nodes, environment variables, mounts,
hooks and additional gids; ctl applies them to the OCI spec as podman and
docker do.

Spec files are read from CDI's directories, /etc/cdi then /var/run/cdi (a
later directory wins for the same kind and name), or from the
colon-separated list in CTL_CDI_SPEC_DIRS. ctl reads JSON specs only: a YAML
file (``nvidia-ctk cdi generate`` writes YAML unless given ``--format json``)
is read when it happens to be JSON, and named in the error otherwise.
"""

from __future__ import annotations

import json
import os
import posixpath
from typing import TYPE_CHECKING, Any, NamedTuple

from ctl.errdefs import InvalidArgument, NotFound

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ctl.runtime.spec import Spec, SpecOpt

SPEC_DIRS = ("/etc/cdi", "/var/run/cdi")
SPEC_DIRS_ENV = "CTL_CDI_SPEC_DIRS"
# OCI hook lists a CDI hookName may name.
HOOKS = frozenset(
    ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
)


class CdiDevice(NamedTuple):
    """CdiDevice is one device of a spec file: its edits, and those of its file."""

    name: str
    spec_file: str
    edits: dict[str, Any]
    file_edits: dict[str, Any]


def spec_dirs() -> list[str]:
    """spec_dirs are the directories read, lowest priority first."""
    override = os.environ.get(SPEC_DIRS_ENV)
    return [d for d in override.split(":") if d] if override is not None else list(SPEC_DIRS)


def _load(path: str) -> dict[str, Any] | None:
    """_load reads a spec file; None for one that is not JSON (a YAML one, say)."""
    try:
        with open(path, "rb") as f:
            doc = json.loads(f.read())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def registry() -> tuple[dict[str, CdiDevice], list[str]]:
    """registry is every device by qualified name, and the spec files ctl could not read."""
    devices: dict[str, CdiDevice] = {}
    unread: list[str] = []
    for directory in spec_dirs():
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            if not name.endswith((".json", ".yaml", ".yml")):
                continue
            path = os.path.join(directory, name)
            doc = _load(path)
            kind = doc.get("kind") if doc is not None else None
            entries = doc.get("devices") if doc is not None else None
            if doc is None or not isinstance(kind, str) or not isinstance(entries, list):
                unread.append(path)
                continue
            file_edits = _edits(doc.get("containerEdits"), path)
            for entry in entries:
                if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                    qualified = f"{kind}={entry['name']}"
                    edits = _edits(entry.get("containerEdits"), path)
                    devices[qualified] = CdiDevice(qualified, path, edits, file_edits)
    return devices, unread


def _edits(value: Any, path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidArgument(f"CDI spec {path}: containerEdits is not an object")
    return value


def resolve(names: Sequence[str]) -> list[CdiDevice]:
    """resolve finds each named device, or raises NotFound naming where ctl looked."""
    devices, unread = registry()
    found = []
    for name in names:
        device = devices.get(name)
        if device is None:
            where = " or ".join(spec_dirs()) or "no directory"
            hint = f"not read (not JSON CDI specs): {', '.join(unread)}" if unread else None
            raise NotFound(f"CDI device {name}: no CDI spec in {where} defines it", hint=hint)
        found.append(device)
    return found


def with_cdi_devices(names: Sequence[str]) -> SpecOpt:
    """with_cdi_devices applies the edits of the named CDI devices (and of their files, once)."""
    devices = resolve(names)
    edits: list[dict[str, Any]] = []
    seen_files: set[str] = set()
    for device in devices:
        if device.spec_file not in seen_files:
            seen_files.add(device.spec_file)
            edits.append(device.file_edits)
        edits.append(device.edits)
    for edit in edits:
        _check(edit)

    def opt(spec: Spec) -> None:
        for edit in edits:
            _apply(spec, edit)

    return opt


def _check(edit: dict[str, Any]) -> None:
    """_check refuses edits ctl could not apply, naming the part of the spec at fault."""
    lists = ("env", "deviceNodes", "mounts", "hooks", "additionalGids", "additionalGIDs")
    for key in lists:
        if not isinstance(edit.get(key, []), list):
            raise InvalidArgument(f"CDI containerEdits: {key} is not a list")
    if not all(isinstance(e, str) for e in edit.get("env", [])):
        raise InvalidArgument("CDI containerEdits: env is not a list of strings")
    for node in edit.get("deviceNodes", []):
        if not isinstance(node, dict) or not str(node.get("path", "")).startswith("/"):
            raise InvalidArgument(f"CDI device node {node!r}: want an absolute path")
        if any(not isinstance(node.get(k, 0), int) for k in ("major", "minor", "uid", "gid")):
            raise InvalidArgument(f"CDI device node {node!r}: major, minor, uid, gid are numbers")
    for mount in edit.get("mounts", []):
        if not isinstance(mount, dict) or not all(
            isinstance(mount.get(k), str) for k in ("hostPath", "containerPath")
        ):
            raise InvalidArgument(f"CDI mount {mount!r}: want hostPath and containerPath")
    for hook in edit.get("hooks", []):
        if not isinstance(hook, dict) or hook.get("hookName") not in HOOKS:
            raise InvalidArgument(f"CDI hook {hook!r}: unknown hookName")
        if not str(hook.get("path", "")).startswith("/"):
            raise InvalidArgument(f"CDI hook {hook!r}: want an absolute path")
    for gid in edit.get("additionalGids", []) + edit.get("additionalGIDs", []):
        if not isinstance(gid, int) or gid < 0:
            raise InvalidArgument(f"CDI additionalGids: {gid!r} is not a group id")


def _apply(spec: Spec, edit: dict[str, Any]) -> None:
    from ctl.runtime.spec import merge_env

    process = spec.setdefault("process", {})
    linux = spec.setdefault("linux", {})
    if edit.get("env"):
        process["env"] = merge_env(process.get("env", []), edit["env"])
    for node in edit.get("deviceNodes", []):
        _add_node(linux, node)
    for mount in edit.get("mounts", []):
        spec.setdefault("mounts", []).append(
            {
                "destination": posixpath.normpath(mount["containerPath"]),
                "type": str(mount.get("type") or "bind"),
                "source": mount["hostPath"],
                "options": [str(o) for o in mount.get("options") or ["rbind", "rw"]],
            }
        )
    for hook in edit.get("hooks", []):
        entry = {k: hook[k] for k in ("path", "args", "env", "timeout") if k in hook}
        spec.setdefault("hooks", {}).setdefault(hook["hookName"], []).append(entry)
    gids = edit.get("additionalGids") or edit.get("additionalGIDs") or []
    if gids:
        user = process.setdefault("user", {"uid": 0, "gid": 0})
        user.setdefault("additionalGids", []).extend(gids)


def _add_node(linux: dict[str, Any], node: dict[str, Any]) -> None:
    """_add_node adds a device node; what the CDI spec leaves out is read from the host's."""
    import stat

    path = posixpath.normpath(str(node["path"]))
    host = str(node.get("hostPath") or path)
    entry: dict[str, Any] = {"path": path}
    if "major" in node and "minor" in node and node.get("type"):
        entry |= {"type": node["type"], "major": node["major"], "minor": node["minor"]}
        mode = node.get("fileMode")
    else:
        try:
            st = os.stat(host)
        except OSError as err:
            raise InvalidArgument(f"CDI device node {host}: {err.strerror}") from None
        if not (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)):
            raise InvalidArgument(f"CDI device node {host}: not a device")
        kind = "c" if stat.S_ISCHR(st.st_mode) else "b"
        entry |= {"type": kind, "major": os.major(st.st_rdev), "minor": os.minor(st.st_rdev)}
        mode = node.get("fileMode", stat.S_IMODE(st.st_mode))
    if mode is not None:
        entry["fileMode"] = mode
    for key in ("uid", "gid"):
        if key in node:
            entry[key] = node[key]
    linux["devices"] = [d for d in linux.get("devices", []) if d.get("path") != path] + [entry]
    allowed = linux.setdefault("resources", {}).setdefault("devices", [])
    allowed.append(
        {
            "allow": True,
            "type": entry["type"],
            "major": entry["major"],
            "minor": entry["minor"],
            "access": str(node.get("permissions") or "rwm"),
        }
    )
