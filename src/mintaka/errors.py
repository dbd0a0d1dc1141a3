"""The one error tree of Mintaka.

Every error Mintaka raises derives from :class:`MintakaError`; where a builtin says the same thing,
the error derives from it too, so ``except LookupError`` keeps working for callers who know nothing
of Mintaka. Backends translate their SDK's exceptions into this tree and keep the original as
``__cause__``.
"""

from __future__ import annotations

from typing import Any


class MintakaError(Exception):
    """Root of every error Mintaka raises."""


class ValidationError(MintakaError, ValueError):
    """Input was refused before anything was written or any backend was called."""


_PREFIXES = ("Value error, ", "Assertion failed, ")


def invalid_fields(exc: Exception) -> str:
    """What made a pydantic model refuse its input, on one line: ``loc: msg`` per error, joined
    by ``; ``, without pydantic's dump of the input or its documentation URL (the input may be
    long or secret, and the text is for the person who wrote it). Any other exception (a
    ``ValueError`` raised before pydantic) is its own text, on one line."""
    from pydantic import ValidationError as PydanticValidationError

    if not isinstance(exc, PydanticValidationError):
        return " ".join(str(exc).split())
    parts: list[str] = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        message = str(error["msg"])
        for prefix in _PREFIXES:
            message = message.removeprefix(prefix)
        where = ".".join(str(part) for part in error["loc"])
        part = " ".join((f"{where}: {message}" if where else message).split())
        if part not in parts:
            parts.append(part)
    return "; ".join(parts)


class InvalidName(ValidationError):
    """A name breaks the naming rules shared by every cloud Mintaka targets."""

    def __init__(self, kind: str, value: object, rule: str) -> None:
        self.kind = kind
        self.value = value
        self.rule = rule
        super().__init__(f"invalid {kind} {value!r}: {rule}")


class NotFound(MintakaError, LookupError):
    """The named object does not exist."""


class Conflict(MintakaError):
    """The object already exists, or the change clashes with the current state."""


class PolicyViolation(MintakaError, PermissionError):
    """Governance policy refused the operation; ``unmet`` lists every unmet control."""

    def __init__(self, message: str, unmet: list[str] | None = None) -> None:
        self.unmet = list(unmet or [])
        detail = "" if not self.unmet else ": " + "; ".join(self.unmet)
        super().__init__(message + detail)


class UnsupportedCapability(MintakaError, NotImplementedError):
    """The selected backend lacks a capability that the operation needs."""

    def __init__(self, backend: str, capability: str, hint: str = "") -> None:
        self.backend = backend
        self.capability = capability
        message = f"backend {backend!r} lacks capability {capability!r}"
        super().__init__(message + (f" ({hint})" if hint else ""))


class BackendError(MintakaError):
    """A backend call failed; ``backend`` names it and ``__cause__`` holds the SDK error."""

    def __init__(self, message: str, backend: str) -> None:
        self.backend = backend
        super().__init__(f"[{backend}] {message}")


class Throttled(BackendError):
    """The cloud asked us to slow down."""


class RetryExhausted(BackendError):
    """A call kept failing until its retry budget ran out; no partial state was kept."""


class IntegrityError(MintakaError):
    """Stored data does not match its recorded digest or hash chain."""


class StoreError(MintakaError):
    """The control-plane store (or the artifact store beside it) cannot be opened, migrated
    or written."""


class PluginError(MintakaError):
    """A plugin failed to load, or registered something invalid."""


class ConfigurationError(MintakaError):
    """Configuration is missing or inconsistent."""


class NotALockFile(MintakaError, OSError):
    """What is at a lock file's path is not a plain file (a symbolic link, which is never
    followed, a directory, a named pipe, a socket): no lock is taken through it."""


__all__ = [
    "BackendError",
    "ConfigurationError",
    "Conflict",
    "IntegrityError",
    "InvalidName",
    "MintakaError",
    "NotALockFile",
    "NotFound",
    "PluginError",
    "PolicyViolation",
    "RetryExhausted",
    "StoreError",
    "Throttled",
    "UnsupportedCapability",
    "ValidationError",
    "invalid_fields",
]


class GateFailed(MintakaError):
    """A pipeline gate did not pass: ``.gate`` is the step, ``.kind`` its gate kind, ``.checks``
    the failed checks with their numbers."""

    def __init__(
        self, gate: str, kind: str, checks: list[Any], *, run_id: str | None = None
    ) -> None:
        self.gate = gate
        self.kind = kind
        self.checks = list(checks)
        self.run_id = run_id
        described = "; ".join(c.describe() if hasattr(c, "describe") else str(c) for c in checks)
        super().__init__(f"gate {gate!r} ({kind}) failed: {described or 'no check passed'}")
