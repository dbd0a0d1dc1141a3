"""What a home keeps from the backend it used before ``mintaka init --switch-backend``: adoption
and sync on the new backend leave those records alone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_adoption import legacy_endpoint, write_legacy

from mintaka import Platform
from mintaka.domain.monitoring import CaptureConfig
from mintaka.domain.serving import TrafficMap
from mintaka.errors import Conflict


def _adopted(platform: Platform, tmp_path: Path) -> None:
    write_legacy(platform, tmp_path)
    platform.migration.adopt_model("churn", reason="inherited")
    legacy_endpoint(platform)
    platform.migration.adopt_endpoint("churn-api", reason="inherited")


def _switched(platform: Platform, *tables: str) -> None:
    """The rows of ``tables`` as the store holds them after the home switched to this backend
    from SageMaker."""
    with platform.store.write() as conn:
        for table in tables:
            conn.exec_driver_sql(f"UPDATE {table} SET backend = 'sagemaker'")


def _local_capture(platform: Platform) -> object:
    with platform.backend.transactions.read() as conn:  # type: ignore[attr-defined]
        stored = conn.exec_driver_sql(
            "SELECT capture FROM local_endpoints WHERE name = 'churn-api'"
        ).scalar()
    return json.loads(stored) if stored else None


@pytest.mark.parametrize("changed_in_cloud", [True, False])
def test_an_endpoint_recorded_for_another_backend_is_refused_before_any_cloud_change(
    platform: Platform, tmp_path: Path, changed_in_cloud: bool
) -> None:
    _adopted(platform, tmp_path)
    _switched(platform, "endpoints")
    if changed_in_cloud:  # the new cloud's endpoint of that name serves other traffic
        platform.backend.set_traffic("churn-api", TrafficMap(weights={"old": 10, "new": 90}))
    [found] = [c for c in platform.migration.discover() if c.name == "churn-api"]
    assert not found.recorded
    capture = _local_capture(platform)
    events = len(platform.audit.events())
    with pytest.raises(Conflict, match="recorded for backend 'sagemaker', not 'local'"):
        platform.migration.adopt_endpoint("churn-api", reason="again", capture=CaptureConfig())
    assert len(platform.audit.events()) == events
    assert _local_capture(platform) == capture  # no capture was turned on in the new cloud
    [deployment] = platform.serving.deployment_history("churn-api")
    assert deployment.traffic.weights == {"old": 80, "new": 20}


def test_sync_leaves_another_backends_open_endpoint_difference_open(
    platform: Platform, tmp_path: Path
) -> None:
    from mintaka.sync import open_differences

    _adopted(platform, tmp_path)
    platform.backend.set_traffic("churn-api", TrafficMap(weights={"old": 10, "new": 90}))
    assert [d.kind for d in platform.sync()] == ["endpoint.traffic"]
    _switched(platform, "endpoints", "models", "model_versions")
    assert platform.sync() == []  # nothing recorded for this backend to compare
    assert [e for e in platform.audit.events() if e.action == "sync.resolved"] == []
    with platform.store.read() as conn:
        assert set(open_differences(conn)) == {("endpoint.traffic", "endpoint churn-api")}
