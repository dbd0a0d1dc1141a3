"""Monitoring inputs: captured traffic and endpoint metrics read back from the backend."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime

from mintaka.domain.monitoring import CaptureConfig, CapturedRecord
from mintaka.domain.serving import EndpointMetrics


class CaptureSource(ABC):
    """``Capability.MONITORING_CAPTURE``: request/response capture configured and read back."""

    @abstractmethod
    def configure_capture(self, endpoint: str, config: CaptureConfig) -> None: ...

    @abstractmethod
    def read_captured(
        self, endpoint: str, since: datetime | None = None, limit: int | None = None
    ) -> list[CapturedRecord]: ...


class MetricsSource(ABC):
    """``Capability.MONITORING_METRICS``: latency, error and request counts per route."""

    @abstractmethod
    def read_metrics(self, endpoint: str, start: datetime, end: datetime) -> EndpointMetrics: ...

    def reads_shadow_metrics(self) -> bool:
        """Whether ``read_metrics`` reports what a shadow route answered to the copies of
        requests apart from live traffic, in ``EndpointMetrics.shadow``. Core refuses a rollout
        whose plan shadows a route when not: it could not judge that route before promoting
        it. By default no."""
        return False

    def custom_metrics(self) -> frozenset[str] | None:
        """The names ``read_metrics`` can report in ``EndpointMetrics.custom``, or None where
        they are whatever the cloud exports for an endpoint (known only once read). Core refuses
        a rollout whose SLA names another before any traffic moves: it could never hold. By
        default none."""
        return frozenset()
