"""Monitoring capture: request/response capture configured on an endpoint and read back."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from mintaka import Capability, ManualClock, NotFound
from mintaka.domain.monitoring import CaptureConfig
from mintaka_conformance.fixtures import AbstractBackendFixtures
from mintaka_conformance.scenarios import Names


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
