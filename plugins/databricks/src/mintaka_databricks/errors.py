"""The one table that turns a databricks-sdk error into Mintaka's error tree.

Every call into the SDK runs inside :func:`sdk_errors`, so no SDK exception escapes the backend:
each one becomes a :class:`~mintaka.errors.MintakaError` with the original as ``__cause__``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

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

BACKEND = "databricks"
INSTALL_HINT = "pip install 'mintaka[databricks]'"

Make = Callable[[str], MintakaError]


def _backend(kind: type[BackendError]) -> Make:
    return lambda message: kind(message, BACKEND)


def _table() -> list[tuple[type[BaseException], Make]]:
    """(SDK exception class, Mintaka error maker), most specific first."""
    import requests
    from databricks.sdk import errors as sdk
    from databricks.sdk.errors.base import DatabricksError

    return [
        (sdk.NotFound, NotFound),  # ResourceDoesNotExist and every 404
        (sdk.ResourceConflict, Conflict),  # ResourceAlreadyExists, AlreadyExists, Aborted, 409
        (sdk.InvalidState, Conflict),  # the resource is in a state that refuses the change
        (sdk.BadRequest, ValidationError),  # InvalidParameterValue and every other 400
        (sdk.TooManyRequests, _backend(Throttled)),  # only when raised without a retry
        (sdk.Unauthenticated, _backend(BackendError)),
        (sdk.PermissionDenied, _backend(BackendError)),
        (DatabricksError, _backend(BackendError)),  # 500, 503 ... (500 is not retried)
        (TimeoutError, _backend(RetryExhausted)),  # the SDK's retry budget ran out
        (requests.RequestException, _backend(BackendError)),
    ]


def translate(error: BaseException, what: str) -> MintakaError:
    """The Mintaka error for ``error`` raised while doing ``what`` (the caller chains it)."""
    if isinstance(error, MintakaError):
        return error
    for kind, make in _table():
        if isinstance(error, kind):
            return make(f"{what}: {error}")
    return BackendError(f"{what}: {type(error).__name__}: {error}", BACKEND)


@contextmanager
def sdk_errors(what: str) -> Iterator[None]:
    """Run SDK calls, re-raising whatever they raise as a translated Mintaka error."""
    try:
        yield
    except MintakaError:
        raise
    except ImportError as error:
        raise ConfigurationError(
            f"the Databricks backend needs databricks-sdk: {INSTALL_HINT} ({error})"
        ) from error
    except Exception as error:
        raise translate(error, what) from error
