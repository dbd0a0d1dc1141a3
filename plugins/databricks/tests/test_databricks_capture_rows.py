"""Rows of an inference table read back: one that is not JSON is skipped, the others kept, each
with the time the endpoint took to answer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mintaka_conformance.fakes.databricks import FakeDatabricks
from mintaka_databricks.backend import DatabricksBackend
from sqlalchemy import select
from test_databricks_backend import cloud, endpoint, platform_on, register  # noqa: F401

from mintaka import Platform
from mintaka.domain.monitoring import CaptureConfig
from mintaka.store.schema import predictions

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


def _imported_ids(plat: Platform, name: str) -> list[str]:
    with plat.store.read() as conn:
        found = conn.execute(select(predictions.c.id).where(predictions.c.endpoint == name))
        return sorted(str(row[0]) for row in found)


@contextmanager
def _capturing(fake: FakeDatabricks, tmp_path: Path) -> Iterator[Platform]:
    """A platform whose endpoint ``churn-ep`` serves ``churn:1`` with its inference table on."""
    from mintaka.governance.policy import OPEN_POLICY, POLICY_FILE

    (tmp_path / "home").mkdir()
    (tmp_path / "home" / POLICY_FILE).write_bytes(OPEN_POLICY.read_bytes())
    artifact = tmp_path / "model.bin"
    artifact.write_bytes(b"w")
    with platform_on(fake, tmp_path) as plat:
        plat.register_model("churn", artifact)
        plat.serving.create_endpoint("churn-ep", "churn:1", route="blue")
        plat.backend.configure_capture("churn-ep", CaptureConfig())
        yield plat


def test_every_row_of_a_request_with_a_long_id_is_imported_under_its_own_id(
    databricks_fake: FakeDatabricks, databricks_environment: Path, tmp_path: Path
) -> None:
    """A prediction id holds 64 characters: a request id too long to take ``-<row>`` after it
    gives its rows ids of a digest of it, one per row, rather than one id cut short for all."""
    with _capturing(databricks_fake, tmp_path) as plat:
        plat.backend.invoke("churn-ep", {"inputs": [{"f0": 1.0}, {"f0": 2.0}, {"f0": 3.0}]})
        plat.backend.invoke("churn-ep", {"inputs": [{"f0": 4.0}]})
        long_id, short_id = "r" * 63, "r" * 61
        rows = databricks_fake.state.serving.endpoint("churn-ep").captured
        rows[0]["databricks_request_id"], rows[1]["databricks_request_id"] = long_id, short_id
        assert plat.monitoring.import_captured("churn-ep") == 4
        ids = _imported_ids(plat, "churn-ep")
        assert f"{short_id}-0" in ids  # an id that fits keeps its form
        assert len(set(ids)) == 4
        assert all(len(i) <= 64 for i in ids)
        assert plat.monitoring.import_captured("churn-ep") == 0


def test_alike_requests_without_a_request_id_in_one_millisecond_are_each_imported(
    databricks_fake: FakeDatabricks, databricks_environment: Path, tmp_path: Path
) -> None:
    """The same body scored twice in one millisecond (two clients, a retry), neither with an id:
    two predictions, and none again on the next import."""
    with _capturing(databricks_fake, tmp_path) as plat:
        for _ in range(2):
            plat.backend.invoke("churn-ep", {"inputs": [{"f0": 1.0}]})
        rows = databricks_fake.state.serving.endpoint("churn-ep").captured
        for row in rows:
            row["databricks_request_id"] = row["client_request_id"] = None
            row["timestamp_ms"] = rows[0]["timestamp_ms"]
            row["request"] = '{"dataframe_records": [{"f0": 1.0}]}'
            row["response"] = '{"predictions": [0]}'
        assert plat.monitoring.import_captured("churn-ep") == 2
        assert plat.monitoring.import_captured("churn-ep") == 0


def test_requests_sharing_a_callers_id_without_a_request_id_are_each_imported(
    databricks_fake: FakeDatabricks, databricks_environment: Path, tmp_path: Path
) -> None:
    """A caller's ``client_request_id`` may tag a session or a batch, not one request."""
    with _capturing(databricks_fake, tmp_path) as plat:
        plat.backend.invoke("churn-ep", {"inputs": [{"f0": 1.0}]})
        plat.backend.invoke("churn-ep", {"inputs": [{"f0": 2.0}]})
        for row in databricks_fake.state.serving.endpoint("churn-ep").captured:
            row["databricks_request_id"], row["client_request_id"] = None, "session-42"
        assert plat.monitoring.import_captured("churn-ep") == 2
        assert all(i.startswith("dbx-") for i in _imported_ids(plat, "churn-ep"))
        assert plat.monitoring.import_captured("churn-ep") == 0
