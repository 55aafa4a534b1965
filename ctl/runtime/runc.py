"""Runc drives the ``runc`` binary through its command line.

Option records (``CreateOpts``, ``ExecOpts``) build their part of the argv
in a pure ``args()``; ``Runc`` methods only execute. Every call runs with
``--log-format json --log /proc/self/fd/N`` on an anonymous memfd, so runc's
error reaches us as one JSON record even when runc's stderr belongs to the
container (``create``, ``run``, ``exec``). A non-zero exit becomes a
``RuncError`` whose message is runc's last error record, cleaned to one line.

runc keeps its own state under ``Runc.root`` (one directory per container id):
ctl points it inside its root, never at ``/run/runc``.

Processes are started with ``os.posix_spawn`` rather than ``subprocess``:
it costs no import and no extra copy of the interpreter, and this module is on
the path of every ``ctl run``.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import sys
from typing import TYPE_CHECKING, Any, NamedTuple

from ctl.errdefs import (
    EXIT_CANNOT_INVOKE,
    EXIT_COMMAND_NOT_FOUND,
    AlreadyExists,
    CtlError,
    NotFound,
)

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from _typeshed import StrPath


class RuncError(CtlError):
    """RuncError is a runc invocation that exited non-zero.

    ``status`` is runc's exit status and ``stderr`` what runc logged, raw; the
    message is runc's error in one clean line.
    """

    def __init__(self, message: str, *, status: int, stderr: str) -> None:
        super().__init__(message)
        self.status = status
        self.stderr = stderr


class RuncNotFound(RuncError, NotFound):
    """RuncNotFound is runc's "container does not exist"."""


class RuncAlreadyExists(RuncError, AlreadyExists):
    """RuncAlreadyExists is runc's "container with id exists"."""


class ExecFailed(RuncError):
    """ExecFailed means the container's command could not be started.

    ``exit_code`` is docker's convention: 127 when the command is not found,
    126 when it exists but cannot be invoked (permission denied, a directory,
    not an executable format).
    """

    def __init__(self, message: str, *, status: int, stderr: str, exit_code: int) -> None:
        super().__init__(message, status=status, stderr=stderr)
        self.exit_code = exit_code


class Stdio(NamedTuple):
    """Stdio names the file descriptors a process gets as 0, 1 and 2.

    None means the calling process's own descriptor is inherited.
    """

    stdin: int | None = None
    stdout: int | None = None
    stderr: int | None = None


class CreateOpts(NamedTuple):
    """CreateOpts are the flags of ``runc create`` (and of ``runc run``).

    ``detach`` applies to ``run`` only: ``create`` always returns once the
    container's init waits for ``start``.
    """

    pid_file: Path | None = None
    console_socket: Path | None = None
    no_pivot: bool = False
    no_new_keyring: bool = False
    detach: bool = True

    def args(self) -> list[str]:
        out: list[str] = []
        if self.pid_file is not None:
            out += ["--pid-file", str(self.pid_file)]
        if self.console_socket is not None:
            out += ["--console-socket", str(self.console_socket)]
        if self.no_pivot:
            out.append("--no-pivot")
        if self.no_new_keyring:
            out.append("--no-new-keyring")
        return out

    def run_args(self) -> list[str]:
        return [*self.args(), *(["--detach"] if self.detach else [])]


class ExecOpts(NamedTuple):
    """ExecOpts are the flags of ``runc exec`` besides ``--process``.

    Whether the process gets a terminal is ``process["terminal"]``; with a
    terminal and ``detach`` runc needs ``console_socket``.
    """

    detach: bool = False
    pid_file: Path | None = None
    console_socket: Path | None = None

    def args(self) -> list[str]:
        out: list[str] = []
        if self.detach:
            out.append("--detach")
        if self.pid_file is not None:
            out += ["--pid-file", str(self.pid_file)]
        if self.console_socket is not None:
            out += ["--console-socket", str(self.console_socket)]
        return out


# runc's messages for a command that cannot be started, and docker's exit codes
# for them (daemon/start.go translateContainerdStartErr).
# Compiled on first use (re keeps them): only a failure reads runc's message.
_EXEC_ERROR = r'exec: "[^"]*": (?P<why>.*)$'
_NOT_FOUND_WHY = ("executable file not found", "no such file or directory")
_CANNOT_INVOKE_WHY = ("permission denied", "is a directory", "exec format error")
_FAILED_PREFIX = r"^(?:runc )?\w+ failed: "


def clean_message(text: str) -> str:
    """clean_message drops runc's "runc create failed: " prefix and joins lines."""
    return re.sub(_FAILED_PREFIX, "", " ".join(text.split()))


def exec_exit_code(message: str) -> int | None:
    """exec_exit_code is 127 or 126 when ``message`` says the command could not start."""
    m = re.search(_EXEC_ERROR, message)
    if m is None:
        return None
    why = m.group("why")
    if any(s in why for s in _NOT_FOUND_WHY):
        return EXIT_COMMAND_NOT_FOUND
    if any(s in why for s in _CANNOT_INVOKE_WHY):
        return EXIT_CANNOT_INVOKE
    return None


def error_from_log(log: bytes) -> str | None:
    """error_from_log is the last error record in runc's JSON log, if any."""
    found = None
    for line in log.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("level") in ("error", "fatal"):
            found = str(record.get("msg", ""))
    return found


def runc_error(what: str, status: int, log: bytes, stderr: bytes = b"") -> RuncError:
    """runc_error turns a failed invocation into the matching RuncError subclass."""
    raw = (log + stderr).decode(errors="replace").strip()
    found = error_from_log(log)
    if found is None:
        lines = stderr.decode(errors="replace").strip().splitlines()
        found = lines[-1] if lines else f"runc exited with status {status}"
    why = clean_message(found)
    message = f"{what}: {why}"
    code = exec_exit_code(why)
    if code is not None:
        return ExecFailed(message, status=status, stderr=raw, exit_code=code)
    if why.startswith("container does not exist"):
        return RuncNotFound(message, status=status, stderr=raw)
    if why.startswith("container with id exists"):
        return RuncAlreadyExists(message, status=status, stderr=raw)
    return RuncError(message, status=status, stderr=raw)


def find_runtime(runtime: str) -> str:
    """find_runtime is the absolute path of an OCI runtime given by name (on PATH) or path.

    A runtime that is not there, or not executable, is NotFound (``--runtime``).
    """
    if "/" in runtime:
        path = os.path.abspath(runtime)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    else:
        import shutil

        found = shutil.which(runtime)
        if found is not None:
            return os.path.abspath(found)
    raise NotFound(
        f"OCI runtime {runtime!r}: no such executable", hint="give a name on PATH or a path"
    )


def _memfd(name: str) -> int:
    fd = os.memfd_create(name, os.MFD_CLOEXEC)
    if fd < 3:
        # A caller with a closed stdio slot: keep clear of the numbers runc's
        # stdio is dup'ed onto.
        fd, old = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3), fd
        os.close(old)
    return fd


def _read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _exit_status(wait_status: int) -> int:
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Runc:
    """Runc runs one runc binary against one state directory (``root``).

    With ``debug`` every command line goes to ``trace`` (stderr by default)
    before it runs.
    """

    def __init__(self, root: StrPath, binary: str = "runc", debug: bool = False) -> None:
        self.root = os.fspath(root)
        self.binary = binary
        self.debug = debug
        self.trace: Callable[[str], None] = _to_stderr

    def with_binary(self, binary: str | None) -> Runc:
        """with_binary is a Runc for another OCI runtime (crun, ...) over the same root.

        None is this one.
        """
        if binary is None:
            return self
        other = Runc(self.root, binary, self.debug)
        other.trace = self.trace
        return other

    def argv(self, *args: str) -> list[str]:
        """argv is the full command line of ``runc ARGS`` for this root."""
        return [self.binary, "--root", self.root, "--log-format", "json", *args]

    def _spawn(
        self, args: list[str], stdio: Stdio, keep: tuple[int, ...] = ()
    ) -> tuple[int, bytes]:
        """_spawn runs runc and returns (exit status, its JSON log)."""
        log_fd = _memfd("runc-log")
        argv = self.argv("--log", f"/proc/self/fd/{log_fd}", *args)
        # A source that is itself 0, 1 or 2 could be overwritten by an earlier
        # dup2 of the file actions: duplicate those out of the way first.
        moved: list[int] = []

        def source(fd: int | None, target: int) -> int:
            if fd is None:
                return target
            if fd < 3:
                fd = os.dup(fd)
                moved.append(fd)
            return fd

        sources = [source(stdio.stdin, 0), source(stdio.stdout, 1), source(stdio.stderr, 2)]
        actions: list[tuple[Any, ...]] = [
            (os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(sources) if fd != target
        ]
        # dup2 of a descriptor onto itself clears close-on-exec in the child only.
        actions += [(os.POSIX_SPAWN_DUP2, fd, fd) for fd in (log_fd, *keep)]
        if self.debug:
            self.trace(f"+ {' '.join(argv)}")
        try:
            pid = os.posix_spawnp(
                argv[0],
                argv,
                os.environ,
                file_actions=actions,
                # Python ignores SIGPIPE and SIGXFSZ; runc and the container must not.
                setsigdef=(signal.SIGPIPE, signal.SIGXFSZ),
            )
            _, wait_status = os.waitpid(pid, 0)
            return _exit_status(wait_status), _read_all(log_fd)
        except FileNotFoundError as err:
            raise CtlError(
                f"cannot run {self.binary!r}: {err.strerror}", hint="install runc"
            ) from err
        finally:
            os.close(log_fd)
            for fd in moved:
                os.close(fd)

    def _call(self, what: str, args: list[str], keep: tuple[int, ...] = ()) -> bytes:
        """_call runs runc with no container stdio and returns its stdout.

        ``keep`` are descriptors runc inherits (files it reads by /proc/self/fd).
        """
        out_fd, err_fd = _memfd("runc-out"), _memfd("runc-err")
        try:
            with open(os.devnull, "rb") as null:
                status, log = self._spawn(args, Stdio(null.fileno(), out_fd, err_fd), keep)
            if status != 0:
                raise runc_error(what, status, log, _read_all(err_fd))
            return _read_all(out_fd)
        finally:
            os.close(out_fd)
            os.close(err_fd)

    def _check(self, what: str, status: int, log: bytes) -> None:
        if status != 0:
            raise runc_error(what, status, log)

    def create(
        self, id: str, bundle: Path, opts: CreateOpts | None = None, stdio: Stdio | None = None
    ) -> None:
        """create runs ``runc create``: the container's init waits for ``start``.

        The init gets ``stdio`` (unless the spec asks for a terminal, which
        goes to ``opts.console_socket``).
        """
        opts = opts or CreateOpts()
        status, log = self._spawn(
            ["create", "--bundle", str(bundle), *opts.args(), id], stdio or Stdio()
        )
        self._check(f"create {id}", status, log)

    def run(
        self, id: str, bundle: Path, opts: CreateOpts | None = None, stdio: Stdio | None = None
    ) -> int:
        """run runs ``runc run``: create and start in one invocation.

        Detached (the default) it returns 0 once the command runs; in the
        foreground it returns the container's exit code and runc deletes it.
        """
        opts = opts or CreateOpts()
        status, log = self._spawn(
            ["run", "--bundle", str(bundle), *opts.run_args(), id], stdio or Stdio()
        )
        if status != 0 and (opts.detach or error_from_log(log) is not None):
            raise runc_error(f"run {id}", status, log)
        return status

    def start(self, id: str) -> None:
        self._call(f"start {id}", ["start", id])

    def kill(self, id: str, sig: int, all: bool = False) -> None:
        """kill sends ``sig`` to the init (with ``all``, to every process of the container)."""
        self._call(f"kill {id}", ["kill", *(["--all"] if all else []), id, str(int(sig))])

    def pause(self, id: str) -> None:
        self._call(f"pause {id}", ["pause", id])

    def resume(self, id: str) -> None:
        self._call(f"resume {id}", ["resume", id])

    def delete(self, id: str, force: bool = False) -> None:
        """delete removes a stopped container; ``force`` kills a running one first."""
        self._call(f"delete {id}", ["delete", *(["--force"] if force else []), id])

    def state(self, id: str) -> dict[str, Any]:
        """state is ``runc state``: id, pid, status, bundle, created, ..."""
        result: dict[str, Any] = json.loads(self._call(f"state {id}", ["state", id]))
        return result

    def ps(self, id: str) -> list[int]:
        """ps is the host pids of every process in the container."""
        pids = json.loads(self._call(f"ps {id}", ["ps", "--format", "json", id]))
        return [int(p) for p in pids or []]

    def exec(
        self,
        id: str,
        process: dict[str, Any],
        opts: ExecOpts | None = None,
        stdio: Stdio | None = None,
    ) -> int:
        """exec runs ``process`` (an OCI process object) in the container.

        In the foreground it returns the process's exit code (128+N for
        signal N); detached it returns 0 once the process runs.
        """
        opts = opts or ExecOpts()
        process_fd = _memfd("runc-process")
        try:
            os.write(process_fd, json.dumps(process).encode())
            args = ["exec", "--process", f"/proc/self/fd/{process_fd}", *opts.args(), id]
            status, log = self._spawn(args, stdio or Stdio(), keep=(process_fd,))
        finally:
            os.close(process_fd)
        if status != 0 and (opts.detach or error_from_log(log) is not None):
            raise runc_error(f"exec {id}", status, log)
        return status

    def update(self, id: str, resources: dict[str, Any]) -> None:
        """update is ``runc update --resources``: ``resources`` (OCI ``linux.resources``)
        become the container's cgroup limits; what it leaves out stays as it is."""
        resources_fd = _memfd("runc-resources")
        try:
            os.write(resources_fd, json.dumps(resources).encode())
            args = ["update", "--resources", f"/proc/self/fd/{resources_fd}", id]
            self._call(f"update {id}", args, keep=(resources_fd,))
        finally:
            os.close(resources_fd)

    def version(self) -> dict[str, str]:
        """version is ``runc --version`` as {"runc": ..., "commit": ..., "spec": ...}."""
        out = self._call("version", ["--version"]).decode()
        result: dict[str, str] = {}
        for line in out.splitlines():
            if line.startswith("runc version "):
                result["runc"] = line.removeprefix("runc version ").strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                result[key.strip()] = value.strip()
        return result
