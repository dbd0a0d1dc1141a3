"""The ``WorkspaceClient`` a backend talks through, and the clock its retries wait on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mintaka.clock import Clock
from mintaka.errors import ConfigurationError
from mintaka_databricks.errors import INSTALL_HINT, sdk_errors
from mintaka_databricks.settings import DatabricksSettings

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient


class SimulatedWait:
    """A ``databricks.sdk.clock.Clock`` over a Mintaka clock that moves only when told to.

    With a :class:`~mintaka.ManualClock` (tests, simulations) the SDK's retry pauses and the
    backend's polls advance that clock instead of sleeping, so nothing waits in real time.
    """

    def __init__(self, clock: Any) -> None:
        self.clock = clock

    def time(self) -> float:
        return float(self.clock.now().timestamp())

    def sleep(self, seconds: float) -> None:
        self.clock.advance(max(0.0, seconds))


def sdk_clock(clock: Clock) -> Any:
    """The SDK clock for ``clock``: simulated for an advanceable clock, else the real one."""
    from databricks.sdk.clock import RealClock

    return SimulatedWait(clock) if callable(getattr(clock, "advance", None)) else RealClock()


def build_client(settings: DatabricksSettings, clock: Clock) -> WorkspaceClient:
    """A ``WorkspaceClient`` with the settings' host, token and explicit retry/HTTP timeouts."""
    try:
        from databricks.sdk import WorkspaceClient
        from databricks.sdk.config import Config
    except ImportError as exc:
        raise ConfigurationError(
            f"the Databricks backend needs databricks-sdk: {INSTALL_HINT}"
        ) from exc
    options: dict[str, Any] = {
        "host": settings.host,
        "retry_timeout_seconds": settings.retry_timeout_seconds,
        "http_timeout_seconds": settings.http_timeout_seconds,
        "clock": sdk_clock(clock),
    }
    if settings.token is not None:
        options.update(token=settings.token.get_secret_value(), auth_type="pat")
    with sdk_errors(f"connecting to {settings.host}"):
        try:
            config = Config(**options)
        except ValueError as exc:  # the SDK reports unusable credentials as ValueError
            raise ConfigurationError(f"cannot configure the Databricks client: {exc}") from exc
        return WorkspaceClient(config=config)
