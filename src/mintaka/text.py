"""Text that records can hold (no imports beyond the error tree: the CLI checks its arguments
with it before any command runs)."""

from __future__ import annotations

import os

from mintaka.errors import ValidationError


def require_utf8(value: str, what: str) -> str:
    """``value``, unless it holds bytes that are not UTF-8 (which Python passes on from argv,
    the environment or file names as lone surrogates, and which no record, the audit trail's
    JSON least of all, can keep): then ``ValidationError`` naming ``what`` and the bytes."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(f"{what} {_shown(value)!r} is not valid UTF-8 text") from None
    return value


def _shown(value: str) -> bytes:
    """The bytes ``value`` was decoded from; a surrogate that stands for no undecodable byte
    (one written in Python, not read from the system) is shown as its escape."""
    try:
        return os.fsencode(value)
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace")
