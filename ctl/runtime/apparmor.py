"""AppArmor: ctl's default profile for containers, loaded where the host has AppArmor.

Where the kernel has AppArmor on and ``apparmor_parser`` is installed, every
container that asks for nothing else runs under ``ctl-default``, a profile
with the rules of docker's ``docker-default`` (moby's
``profiles/apparmor/template.go``): the container may use the network,
capabilities it holds and files, but may not mount, write to most of /proc
and /sys, touch /proc/sysrq-trigger or /proc/kcore, or read firmware and
security files; its processes may signal and trace only each other, and be
signalled by unconfined processes and the runtime. The profile is loaded once
(``apparmor_parser -Kr``), the first time a container is created or started
under it after a boot.

On a host without AppArmor nothing here does anything: a container gets no
profile, and ``--security-opt apparmor=...`` is accepted and has no effect,
as with docker.
"""

from __future__ import annotations

import os

from ctl.errdefs import FailedPrecondition

DEFAULT_PROFILE = "ctl-default"
UNCONFINED = "unconfined"
ENABLED_PARAMETER = "/sys/module/apparmor/parameters/enabled"
SECURITYFS = "/sys/kernel/security/apparmor"
PROFILE_DIRECTORY = "/etc/apparmor.d"
PARSER_DIRS = ("/sbin", "/usr/sbin", "/usr/bin", "/bin")


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def find_parser() -> str | None:
    for directory in PARSER_DIRS:
        candidate = os.path.join(directory, "apparmor_parser")
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def host_supports(parameter: str = ENABLED_PARAMETER, securityfs: str = SECURITYFS) -> bool:
    """host_supports is whether the kernel has AppArmor on and its policy can be loaded."""
    if _read(parameter).strip() != "Y":
        return False  # the common case costs one failed open
    return os.path.isdir(securityfs) and find_parser() is not None


def profile_text(name: str = DEFAULT_PROFILE, directory: str = PROFILE_DIRECTORY) -> str:
    """profile_text is the source of the default profile, ``name`` for its own peers.

    It uses the system's tunables and base abstraction where ``directory``
    has them; ABI 3.0, where known, keeps ``network`` covering unix sockets
    on AppArmor 4.
    """

    def exists(macro: str) -> bool:
        return os.path.exists(os.path.join(directory, macro))

    head = ["# ctl's default container profile (after docker's docker-default)."]
    if exists("abi/3.0"):
        head.append("abi <abi/3.0>,")
    head.append("#include <tunables/global>" if exists("tunables/global") else "@{PROC}=/proc/")
    base = ["  #include <abstractions/base>", ""] if exists("abstractions/base") else []
    daemon = _read("/proc/self/attr/current").strip().split(" (", 1)[0] or UNCONFINED
    rules = [
        "  network,",
        "  deny network alg,",
        "  capability,",
        "  file,",
        "  umount,",
        "  signal (receive) peer=unconfined,",
        "  signal (receive) peer=runc,",
        "  signal (receive) peer=crun,",
        f'  signal (receive) peer="{daemon}",',
        f'  signal (send,receive) peer="{name}",',
        "",
        # Writes in /proc only under /proc/<pid>/ and /proc/sys/kernel/shm*.
        "  deny @{PROC}/* w,",
        "  deny @{PROC}/{[^1-9/],[^1-9/][^0-9/],[^1-9s/][^0-9y/][^0-9s/],"
        "[^1-9/][^0-9/][^0-9/][^0-9/]*}/** w,",
        "  deny @{PROC}/sys/[^k]** w,",
        "  deny @{PROC}/sys/kernel/{?,??,[^s][^h][^m]**} w,",
        "  deny @{PROC}/sysrq-trigger rwklx,",
        "  deny @{PROC}/kcore rwklx,",
        "",
        "  deny mount,",
        "",
        # No writes in /sys but under /sys/fs/cgroup (read-only anyway, unless privileged).
        "  deny /sys/[^f]*/** wklx,",
        "  deny /sys/f[^s]*/** wklx,",
        "  deny /sys/fs/[^c]*/** wklx,",
        "  deny /sys/fs/c[^g]*/** wklx,",
        "  deny /sys/fs/cg[^r]*/** wklx,",
        "  deny /sys/firmware/** rwklx,",
        "  deny /sys/devices/virtual/powercap/** rwklx,",
        "  deny /sys/kernel/security/** rwklx,",
        "",
        f'  ptrace (trace,tracedby,read,readby) peer="{name}",',
    ]
    body = [f'profile "{name}" flags=(attach_disconnected,mediate_deleted) {{', *base, *rules, "}"]
    return "\n".join([*head, "", *body]) + "\n"


def is_loaded(name: str, securityfs: str = SECURITYFS) -> bool:
    """is_loaded is whether the kernel has a profile ``name`` ("NAME (MODE)" lines)."""
    profiles = _read(os.path.join(securityfs, "profiles"))
    return any(line.rsplit(" (", 1)[0] == name for line in profiles.splitlines())


def load_default(name: str = DEFAULT_PROFILE) -> None:
    """load_default loads (or replaces) the default profile; -K: no cache written to /etc."""
    import subprocess

    parser = find_parser() or "apparmor_parser"
    done = subprocess.run(
        [parser, "-Kr"], input=profile_text(name).encode(), capture_output=True, check=False
    )
    if done.returncode != 0:
        why = " ".join(done.stderr.decode(errors="replace").split()) or f"status {done.returncode}"
        raise FailedPrecondition(f"cannot load AppArmor profile {name}: {why}")


def ensure_loaded(profile: str | None) -> None:
    """ensure_loaded loads ctl's default profile if a task about to start runs under it.

    The kernel forgets loaded profiles at a reboot, but a container created
    before it still names ``ctl-default`` in its spec: without this, runc
    fails to start it (``write /proc/self/attr/apparmor/exec: no such file``).
    """
    # is_loaded first: where the profile is in, that one read is all a start pays.
    if profile == DEFAULT_PROFILE and not is_loaded(profile) and host_supports():
        load_default(profile)


def container_profile(requested: str | None, privileged: bool) -> str | None:
    """container_profile is the profile a container runs under: None where AppArmor is off.

    ``requested`` is ``--security-opt apparmor=``'s value; a privileged
    container is unconfined unless it asks otherwise, as in docker. The
    default profile is loaded here the first time it is needed.
    """
    if not host_supports():
        return None
    if requested:
        return requested
    if privileged:
        return UNCONFINED
    ensure_loaded(DEFAULT_PROFILE)
    return DEFAULT_PROFILE
