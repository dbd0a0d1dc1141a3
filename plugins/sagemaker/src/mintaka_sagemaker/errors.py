"""The one table that turns AWS SDK errors into Mintaka's error tree.

Every boto3 call of the backend runs inside :func:`translated`; nothing from botocore escapes it.
SageMaker reports most missing resources and name clashes as ``ValidationException`` with a
message ("... does not exist", "Could not find ...", "... already exists"), so the table matches
the error code first and then, for those codes, the message. A call that failed after its whole
retry budget (``MaxAttemptsReached``, or a timeout / connection error botocore already retried)
is a :class:`~mintaka.errors.RetryExhausted`, whatever the last error was.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mintaka.errors import (
    BackendError,
    ConfigurationError,
    Conflict,
    MintakaError,
    NotFound,
    RetryExhausted,
    Throttled,
    ValidationError,
)

BACKEND = "sagemaker"

# Error code -> Mintaka error, before any message rule.
CODES: dict[str, type[MintakaError]] = {
    "ResourceNotFound": NotFound,
    "ResourceNotFoundException": NotFound,
    "NoSuchKey": NotFound,
    "NoSuchBucket": NotFound,
    "404": NotFound,
    "NotFound": NotFound,
    "ResourceInUse": Conflict,
    "ConflictException": Conflict,
    "ResourceLimitExceeded": BackendError,
    "ValidationException": ValidationError,
    "ValidationError": ValidationError,
    "InvalidParameterValue": ValidationError,
    "InvalidParameterCombination": ValidationError,
    "ModelError": BackendError,
    "ModelNotReadyException": BackendError,
    "ThrottlingException": Throttled,
    "Throttling": Throttled,
    "TooManyRequestsException": Throttled,
    "RequestLimitExceeded": Throttled,
    "SlowDown": Throttled,
    "ServiceUnavailable": BackendError,
    "InternalFailure": BackendError,
    "AccessDeniedException": BackendError,
    "AccessDenied": BackendError,
}

# For codes whose meaning depends on the message (SageMaker's ValidationException).
MESSAGES: tuple[tuple[re.Pattern[str], type[MintakaError]], ...] = (
    (re.compile(r"does not exist|not found|could not find|cannot find", re.I), NotFound),
    (re.compile(r"already exist", re.I), Conflict),
    # a change sent while the endpoint is Creating/Updating: the resource's state, not the request
    (re.compile(r"cannot update in-progress", re.I), Conflict),
)
MESSAGE_CODES = frozenset({"ValidationException", "ValidationError", "ResourceNotFound"})


def is_already_exists(error: BaseException) -> bool:
    """Whether a translated error says the resource exists (a create to reconcile)."""
    return isinstance(error, Conflict) and bool(MESSAGES[1][0].search(str(error)))


def was_retried(error: BaseException) -> bool:
    """Whether the SDK call behind a translated error was sent more than once.

    botocore counts the attempts of one call in ``ResponseMetadata.RetryAttempts``. A create that
    fails with "already exists" on its first attempt met a resource that was there before the
    call; on a later attempt, the resource may be this call's own, made by an attempt whose
    response was lost.
    """
    cause = error.__cause__
    response = getattr(cause, "response", None)
    if not isinstance(response, dict):
        return False
    return int(response.get("ResponseMetadata", {}).get("RetryAttempts", 0) or 0) > 0


def _make(kind: type[MintakaError], message: str) -> MintakaError:
    if issubclass(kind, BackendError):
        return kind(message, BACKEND)
    return kind(f"[{BACKEND}] {message}")


def translate(exc: BaseException, action: str) -> MintakaError:
    """The Mintaka error for one SDK exception (the caller raises it ``from exc``)."""
    from botocore import exceptions as bx

    if isinstance(exc, bx.ClientError):
        error: dict[str, Any] = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = str(error.get("Message", "")) or str(exc)
        text = f"{action}: {code}: {message}"
        if exc.response.get("ResponseMetadata", {}).get("MaxAttemptsReached"):
            attempts = exc.response["ResponseMetadata"].get("RetryAttempts", 0) + 1
            return RetryExhausted(f"{text} (gave up after {attempts} attempts)", BACKEND)
        kind = CODES.get(code, BackendError)
        if code in MESSAGE_CODES:
            for pattern, matched in MESSAGES:
                if pattern.search(message):
                    kind = matched
                    break
        return _make(kind, text)
    if isinstance(exc, bx.ParamValidationError):
        return ValidationError(f"[{BACKEND}] {action}: {exc}")
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError | bx.NoRegionError):
        return ConfigurationError(f"[{BACKEND}] {action}: {exc}")
    if isinstance(exc, bx.ProfileNotFound):
        return ConfigurationError(f"[{BACKEND}] {action}: {exc}")
    if isinstance(exc, bx.ConnectionError | bx.HTTPClientError):
        # botocore retried these up to the attempt budget before raising.
        return RetryExhausted(f"{action}: {type(exc).__name__}: {exc}", BACKEND)
    return BackendError(f"{action}: {type(exc).__name__}: {exc}", BACKEND)


def sdk_error(exc: Exception, action: str) -> MintakaError | None:
    """The Mintaka error for a botocore exception; None for anything else (raised as it is)."""
    if isinstance(exc, MintakaError):
        return None
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, BotoCoreError | ClientError):
        return translate(exc, action)
    return None


@contextmanager
def translated(action: str) -> Iterator[None]:
    """Run SDK calls; re-raise any botocore error as a Mintaka error with it as ``__cause__``."""
    try:
        yield
    except Exception as exc:
        error = sdk_error(exc, action)
        if error is None:
            raise
        raise error from exc
