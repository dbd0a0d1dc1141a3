"""Monitoring capture: request/response capture configured on an endpoint and read back."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from mintaka import Capability, ManualClock, MintakaError, NotFound, Platform
from mintaka.domain.monitoring import CaptureConfig
from mintaka_conformance.fixtures import AbstractBackendFixtures, SendTraffic, Traffic
from mintaka_conformance.scenarios import Names, ServableModel

CAPTURE_LAG_SECONDS = 10.0  # how long captured traffic may take to become readable


class AbstractMonitoringTests(AbstractBackendFixtures):
    area = "monitoring"

    @pytest.mark.requires(Capability.MONITORING_CAPTURE)
    def test_capture_on_a_missing_endpoint_is_not_found(self, cloud: Any, names: Names) -> None:
        """The backend MUST raise NotFound when capture is configured or read on a missing
        endpoint."""
        missing = names.endpoint("missing")
        with pytest.raises(NotFound):
            cloud.configure_capture(missing, CaptureConfig(sample_percent=10))
        with pytest.raises(NotFound):
            cloud.read_captured(missing)

    @pytest.mark.requires(Capability.MONITORING_METRICS)
    def test_metrics_of_a_missing_endpoint_are_not_found(
        self, cloud: Any, names: Names, clock: ManualClock
    ) -> None:
        """The backend MUST raise NotFound when metrics are read for a missing endpoint."""
        end = clock.now()
        with pytest.raises(NotFound):
            cloud.read_metrics(names.endpoint("missing"), end - timedelta(hours=1), end)

    @pytest.fixture
    def captured_endpoint(
        self, platform: Platform, servable: ServableModel, names: Names, data_plane: None
    ) -> Iterator[str]:
        """A live endpoint created through core, serving v1 on route ``blue``."""
        name = names.endpoint("captured")
        platform.serving.create_endpoint(name, f"{servable.name}:1", route="blue")
        yield name
        with contextlib.suppress(MintakaError):
            platform.serving.delete_endpoint(name)

    @pytest.mark.requires(Capability.SERVING, Capability.MONITORING_METRICS)
    def test_server_errors_and_refused_requests_read_back_apart(
        self,
        platform: Platform,
        captured_endpoint: str,
        send_traffic: SendTraffic,
    ) -> None:
        """The backend MUST read back every request a route took in ``requests``, those it
        failed on (HTTP 5xx) in ``errors`` and those it refused as invalid (HTTP 4xx) in
        ``invalid``, so that the same traffic gives the same telemetry on every backend."""
        start = platform.clock.now()
        send_traffic(captured_endpoint, "blue", Traffic(answered=5, failed=2, refused=3))
        metrics = platform.serving.endpoint_metrics(
            captured_endpoint, start, start + timedelta(minutes=5)
        )
        assert metrics.requests.get("blue", 0) == 10
        assert metrics.errors.get("blue", 0) == 2
        assert metrics.invalid.get("blue", 0) == 3

    @pytest.mark.requires(Capability.MONITORING_CAPTURE, Capability.SERVING)
    def test_captured_invocations_are_read_back(
        self, platform: Platform, cloud: Any, servable: ServableModel, captured_endpoint: str
    ) -> None:
        """The backend MUST return the invocations made after capture is configured on an
        endpoint as captured records of that endpoint (capture may lag by a few seconds)."""
        cloud.configure_capture(captured_endpoint, CaptureConfig(sample_percent=100))
        for i in range(3):
            platform.serving.invoke(captured_endpoint, servable.row(i))
        deadline = time.monotonic() + CAPTURE_LAG_SECONDS
        records = cloud.read_captured(captured_endpoint)
        while len(records) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
            records = cloud.read_captured(captured_endpoint)
        assert len(records) >= 3
        assert {r.endpoint for r in records} == {captured_endpoint}
        assert len({r.event_id for r in records}) == len(records)
        assert all(r.inputs is not None for r in records)
