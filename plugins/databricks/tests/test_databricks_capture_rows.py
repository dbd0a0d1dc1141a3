"""Rows of an inference table read back: one that is not JSON is skipped, the others kept, each
with the time the endpoint took to answer."""

from __future__ import annotations

from mintaka_conformance.fakes.databricks import FakeDatabricks
from mintaka_databricks.backend import DatabricksBackend
from test_databricks_backend import cloud, endpoint, register  # noqa: F401

from mintaka.domain.monitoring import CaptureConfig

pytest_plugins = ["mintaka_conformance.fakes.databricks_fixtures"]


def test_a_row_that_is_not_json_is_skipped_and_latency_is_kept(
    databricks_fake: FakeDatabricks,
    cloud: DatabricksBackend,  # noqa: F811
    endpoint: str,  # noqa: F811
) -> None:
    cloud.configure_capture(endpoint, CaptureConfig())
    cloud.invoke(endpoint, {"inputs": [{"f0": 1.0}]})
    cloud.invoke(endpoint, {"inputs": [{"f0": 2.0}]})
    rows = databricks_fake.state.serving.endpoint(endpoint).captured
    rows[0]["request"] = '{"dataframe_records": [{"f0"'  # cut short
    rows[1]["execution_time_ms"] = 42
    [record] = cloud.read_captured(endpoint)
    assert record.inputs == [{"f0": 2.0}]
    assert record.extra["latency_ms"] == 42.0
