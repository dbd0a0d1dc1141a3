"""Run a test's work as a plain user sees the file system: in a forked child that, when this
process is root, drops the capabilities that bypass file permissions (``CAP_DAC_OVERRIDE``,
``CAP_DAC_READ_SEARCH``, ``CAP_FOWNER``), so a test about permissions really runs under them."""

from __future__ import annotations

import ctypes
import os
import pickle
import traceback
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

_CAPABILITY_VERSION_3 = 0x20080522
_BYPASSING = (1 << 1) | (1 << 2) | (1 << 3)  # DAC_OVERRIDE, DAC_READ_SEARCH, FOWNER


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _drop_bypassing_capabilities() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    header = _Header(_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget")
    for field in ("effective", "permitted", "inheritable"):
        setattr(data[0], field, getattr(data[0], field) & ~_BYPASSING)
    if libc.capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset")


def as_a_user(work: Callable[[], T]) -> T:
    """``work()``'s result (pickled back), run without permission-bypassing capabilities; an
    error it raises is raised here (as an ``AssertionError`` naming it, when it cannot be
    pickled). What it writes to the file system stays; what it changes in memory does not."""
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        status = 0
        try:
            os.close(reading)
            try:
                if os.geteuid() == 0:
                    _drop_bypassing_capabilities()
                outcome: tuple[bool, object] = (True, work())
            except BaseException as exc:
                outcome = (False, exc)
            try:
                payload = pickle.dumps(outcome)
            except Exception:
                payload = pickle.dumps(
                    (False, AssertionError("".join(traceback.format_exception(outcome[1]))))
                )
            with os.fdopen(writing, "wb") as pipe:
                pipe.write(payload)
        except BaseException:
            status = 1
        finally:
            os._exit(status)
    os.close(writing)
    with os.fdopen(reading, "rb") as pipe:
        payload = pipe.read()
    os.waitpid(child, 0)
    if not payload:
        raise AssertionError("the unprivileged child died without an answer")
    succeeded, value = pickle.loads(payload)
    if not succeeded:
        raise value  # type: ignore[misc]
    return value  # type: ignore[no-any-return]
