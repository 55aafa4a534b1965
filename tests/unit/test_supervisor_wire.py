"""The supervisor's wire: every error class crosses it as itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ctl import errdefs
from ctl.content import DamagedRecord
from ctl.errdefs import CtlError
from ctl.remotes.auth import Unauthorized
from ctl.runtime.runc import ExecFailed, RuncError
from ctl.runtime.supervisor.wire import decode_error, encode_error, error_classes


def _subclasses(cls: type[CtlError]) -> list[type[CtlError]]:
    return [cls] + [s for sub in cls.__subclasses__() for s in _subclasses(sub)]


def _example(cls: type[CtlError]) -> CtlError:
    if issubclass(cls, ExecFailed):
        return cls("exec failed: no such file", status=1, stderr="raw\n", exit_code=127)
    if issubclass(cls, DamagedRecord):
        return cls("labels of content sha256:x: malformed record", Path("/root/labels/x.json"))
    if issubclass(cls, RuncError):
        return cls("runc failed", status=2, stderr="raw\n")
    return cls(f"{cls.__name__} happened", hint="try again")


def _crossed(err: BaseException) -> CtlError:
    return decode_error(json.loads(json.dumps(encode_error(err))))


@pytest.mark.parametrize("cls", _subclasses(CtlError), ids=lambda cls: cls.__name__)
def test_every_error_class_round_trips(cls: type[CtlError]) -> None:
    sent = _example(cls)
    received = _crossed(sent)
    assert type(received) is cls
    assert str(received) == str(sent)
    assert vars(received) == vars(sent)
    assert received.hint == sent.hint and received.exit_code == sent.exit_code


def test_every_errdefs_class_is_known() -> None:
    """A class added to errdefs is decoded as itself without being listed anywhere."""
    defined = {
        obj for obj in vars(errdefs).values() if isinstance(obj, type) and issubclass(obj, CtlError)
    }
    assert defined <= set(error_classes().values())
    assert Unauthorized in error_classes().values()


def test_other_exceptions_arrive_as_ctl_errors() -> None:
    received = _crossed(KeyError("pid"))
    assert type(received) is CtlError
    assert str(received) == "supervisor: KeyError: 'pid'"
    assert type(decode_error({"class": "NoSuchClass", "message": "m"})) is CtlError
