"""Error classes shared by every layer of ctl.

They follow containerd's errdefs: a closed set of kinds that callers branch on
with ``except NotFound:``, never by matching message text. Raise them with the
object in the message (``NotFound(f"image {name!r}")``) and chain the cause
(``raise ... from err``). The CLI boundary (``ctl.main.cli``) turns any of them
into one ``ctl: <message>`` line and exit code 125.
"""

from __future__ import annotations

# Exit codes, as docker and podman use them (SPEC §4).
EXIT_CTL_FAILURE = 125
EXIT_CANNOT_INVOKE = 126
EXIT_COMMAND_NOT_FOUND = 127


class CtlError(Exception):
    """CtlError is the base of every error ctl reports to a user.

    ``exit_code`` is what the CLI exits with: 125, ctl's own failure, unless
    a subclass says otherwise (a command that cannot run: 126 or 127).
    """

    hint: str | None = None
    exit_code: int = EXIT_CTL_FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        if hint is not None:
            self.hint = hint


class NotFound(CtlError):
    """NotFound means the named object does not exist."""


class AlreadyExists(CtlError):
    """AlreadyExists means an object with that name or key exists already."""


class InvalidArgument(CtlError):
    """InvalidArgument means the input is malformed; nothing was changed."""


class FailedPrecondition(CtlError):
    """FailedPrecondition means the state does not allow the operation."""


class Unavailable(CtlError):
    """Unavailable means a resource is busy or unreachable; trying again may work."""


class Unimplemented(CtlError):
    """Unimplemented means the operation is not supported here."""


class DataCorrupted(CtlError):
    """DataCorrupted means stored or received bytes do not match their digest."""


class WriteFailed(CtlError, OSError):
    """WriteFailed means ctl could not write what it names (a full disk, a read-only filesystem).

    The message is ``writing <what>: <errno text>``; the CLI boundary puts the
    command's name before it. It is an OSError too, with the cause's
    ``errno``, so code that survives failed writes (the supervisor, caches)
    goes on catching it as one.
    """

    def __init__(self, what: str, err: OSError | None = None, *, hint: str | None = None) -> None:
        why = f": {err.strerror or err}" if err is not None else ""
        super().__init__(f"writing {what}{why}", hint=hint)
        self.what = what
        if err is not None:
            self.errno = err.errno
            self.strerror = err.strerror

    def __str__(self) -> str:
        return str(self.args[0])
