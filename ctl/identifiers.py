"""Validation of identifiers that become path components.

``validate`` accepts what containerd's ``identifiers.Validate`` accepts: an
alphanumeric start, then letters, digits, ``.``, ``_`` and ``-``, at most 76
characters. A valid identifier contains no ``/``, is never ``.`` or ``..`` and
is therefore safe to join onto a directory. Every namespace, container id and
snapshot key passes through here at the client boundary before any path join.
"""

from __future__ import annotations

import re

from ctl.errdefs import InvalidArgument

MAX_LENGTH = 76
_IDENTIFIER = re.compile(r"[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*")


def validate(kind: str, value: str) -> str:
    """validate returns ``value`` if it is a valid identifier of ``kind``."""
    if not value:
        raise InvalidArgument(f"invalid {kind}: must not be empty")
    if len(value) > MAX_LENGTH:
        raise InvalidArgument(
            f"invalid {kind} {value[:20]!r}...: longer than {MAX_LENGTH} characters"
        )
    if not _IDENTIFIER.fullmatch(value):
        raise InvalidArgument(
            f"invalid {kind} {value!r}: must match [A-Za-z0-9]+([._-][A-Za-z0-9]+)*"
        )
    return value
