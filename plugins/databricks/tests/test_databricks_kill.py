"""The Databricks kill switch: an endpoint-wide AI Gateway rate limit of 0 calls per minute, the
endpoint's own endpoint-wide limit kept in its ``mintaka-killed`` tag and restored on release."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from databricks_support import (
    databricks_backend,
    no_real_sleep,  # noqa: F401  (an autouse fixture)
    settings_for,
)
from mintaka_conformance.fakes.databricks import FakeDatabricks, Fault, FaultSchedule
from mintaka_databricks.backend import DatabricksBackend

from mintaka import BackendError, Conflict, IdFactory, ManualClock, Platform
from mintaka.domain.registry import VersionRequest
from mintaka.domain.serving import EndpointStatus, Route, TrafficMap
from mintaka.governance.policy import OPEN_POLICY, POLICY_FILE

pytest_plugins = ["mintaka_conformance.fakes.databricks_fixtures"]

GATEWAY = "/serving-endpoints/churn-ep/ai-gateway"
TAGS = "/serving-endpoints/churn-ep/tags"
KILL_TAG = "mintaka-killed"
PER_USER = {"calls": 5, "key": "user", "renewal_period": "minute"}
PER_ENDPOINT = {"calls": 100, "key": "endpoint", "renewal_period": "minute"}


@pytest.fixture
def cloud(
    databricks_fake: FakeDatabricks, databricks_environment: Path, tmp_path: Path
) -> Iterator[DatabricksBackend]:
    backend = databricks_backend(DatabricksBackend, databricks_fake, tmp_path, seed=5)
    backend.ensure_model("churn")
    artifact = tmp_path / "churn.bin"
    artifact.write_bytes(b"churn")
    backend.create_version(
        VersionRequest(
            name="churn",
            artifact_path=str(artifact),
            artifact_digest="sha256:" + "ab" * 32,
            mintaka_id="mv-churn-1",
            idempotency_key="mv-churn-1",
        )
    )
    backend.create_endpoint(
        "churn-ep",
        [Route(name="blue", model="churn", version=1)],
        TrafficMap(weights={"blue": 100}),
    )
    yield backend
    backend.close()


def status_of_a_request(fake: FakeDatabricks) -> int:
    """What any caller of the endpoint gets, outside Mintaka and without the SDK's retries."""
    answer = requests.post(
        f"{fake.host}/serving-endpoints/churn-ep/invocations",
        json={"inputs": [{"x": 1}]},
        headers={"Authorization": f"Bearer {fake.token}"},
        timeout=5,
    )
    return answer.status_code


def gateway(fake: FakeDatabricks) -> dict[str, Any]:
    return fake.state.serving.endpoint("churn-ep").ai_gateway or {}


def writes(fake: FakeDatabricks) -> list[str]:
    return [f"{r.method} {r.path}" for r in fake.requests if r.method in ("PUT", "PATCH")]


def test_a_killed_endpoint_refuses_every_caller_and_keeps_its_config(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend
) -> None:
    before = databricks_fake.state.serving.endpoint("churn-ep")
    config_version = before.config.version if before.config else None
    killed = cloud.kill("churn-ep")
    assert killed.status is EndpointStatus.KILLED
    assert killed.extra["killed_at"]
    assert [r.name for r in killed.routes] == ["blue"]
    assert killed.traffic.weights == {"blue": 100}
    assert status_of_a_request(databricks_fake) == 429
    with pytest.raises(BackendError, match="killed"):
        cloud.invoke("churn-ep", {"inputs": [{"x": 1}]})
    after = databricks_fake.state.serving.endpoint("churn-ep")
    assert after.config is not None
    assert after.config.version == config_version
    assert gateway(databricks_fake)["rate_limits"] == [
        {"calls": 0, "key": "endpoint", "renewal_period": "minute"}
    ]

    released = cloud.unkill("churn-ep")
    assert released.status is EndpointStatus.IN_SERVICE
    assert "killed_at" not in released.extra
    assert status_of_a_request(databricks_fake) == 200
    assert cloud.invoke("churn-ep", {"inputs": [{"x": 1}]})["route"] == "blue"
    assert gateway(databricks_fake)["rate_limits"] == []
    assert KILL_TAG not in databricks_fake.state.serving.endpoint("churn-ep").tags


def test_release_restores_the_endpoint_wide_limit_and_keeps_the_rest_of_the_gateway(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend
) -> None:
    own = {
        "rate_limits": [PER_USER, PER_ENDPOINT],
        "usage_tracking_config": {"enabled": True},
        "inference_table_config": {"catalog_name": "main", "schema_name": "logs", "enabled": True},
    }
    cloud.client.api_client.do("PUT", f"/api/2.0{GATEWAY}", body=own)

    cloud.kill("churn-ep")
    killed = gateway(databricks_fake)
    assert killed["rate_limits"] == [
        PER_USER,
        {"calls": 0, "key": "endpoint", "renewal_period": "minute"},
    ]
    assert killed["usage_tracking_config"] == own["usage_tracking_config"]
    assert killed["inference_table_config"] == own["inference_table_config"]
    record = json.loads(databricks_fake.state.serving.endpoint("churn-ep").tags[KILL_TAG])
    assert record["endpoint_limits"] == [PER_ENDPOINT]

    cloud.unkill("churn-ep")
    assert gateway(databricks_fake) == own


def test_kill_and_release_are_idempotent(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend
) -> None:
    databricks_fake.requests.clear()
    cloud.kill("churn-ep")
    assert writes(databricks_fake) == [f"PATCH /api/2.0{TAGS}", f"PUT /api/2.0{GATEWAY}"]
    databricks_fake.requests.clear()
    assert cloud.kill("churn-ep").status is EndpointStatus.KILLED
    assert writes(databricks_fake) == []  # killing a killed endpoint changes nothing

    cloud.unkill("churn-ep")
    databricks_fake.requests.clear()
    assert cloud.unkill("churn-ep").status is EndpointStatus.IN_SERVICE
    assert writes(databricks_fake) == []  # releasing a serving endpoint changes nothing


def test_an_interrupted_kill_keeps_the_first_record_and_can_be_run_again(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend
) -> None:
    cloud.client.api_client.do("PUT", f"/api/2.0{GATEWAY}", body={"rate_limits": [PER_ENDPOINT]})
    databricks_fake.faults = FaultSchedule(seed=0)
    databricks_fake.faults.script(Fault.INTERNAL, method="PUT", path="/ai-gateway$")
    with pytest.raises(BackendError):
        cloud.kill("churn-ep")  # recorded, but the limit was never set
    assert cloud.get_endpoint("churn-ep").status is EndpointStatus.IN_SERVICE  # it still serves
    assert status_of_a_request(databricks_fake) == 200

    assert cloud.kill("churn-ep").status is EndpointStatus.KILLED
    record = json.loads(databricks_fake.state.serving.endpoint("churn-ep").tags[KILL_TAG])
    assert record["endpoint_limits"] == [PER_ENDPOINT]  # not the zero limit of the retry
    cloud.unkill("churn-ep")
    assert gateway(databricks_fake)["rate_limits"] == [PER_ENDPOINT]


def test_an_interrupted_release_can_be_run_again(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend
) -> None:
    cloud.kill("churn-ep")
    databricks_fake.faults = FaultSchedule(seed=0)
    databricks_fake.faults.script(Fault.INTERNAL, method="PATCH", path="/tags$")
    with pytest.raises(BackendError):
        cloud.unkill("churn-ep")  # the limit is lifted, the record is still there
    assert status_of_a_request(databricks_fake) == 200
    assert cloud.unkill("churn-ep").status is EndpointStatus.IN_SERVICE
    assert KILL_TAG not in databricks_fake.state.serving.endpoint("churn-ep").tags
    assert gateway(databricks_fake)["rate_limits"] == []


def test_a_tag_that_is_not_a_kill_record_is_refused_before_any_change(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend
) -> None:
    databricks_fake.state.serving.endpoint("churn-ep").tags[KILL_TAG] = "yes"
    databricks_fake.requests.clear()
    for switch in (cloud.kill, cloud.unkill):
        with pytest.raises(Conflict, match="not a kill record"):
            switch("churn-ep")
    assert writes(databricks_fake) == []
    assert cloud.get_endpoint("churn-ep").status is EndpointStatus.IN_SERVICE


def test_a_zero_limit_set_outside_mintaka_reads_as_killed_and_is_not_lifted_by_release(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend
) -> None:
    zero = {"calls": 0, "key": "endpoint", "renewal_period": "minute"}
    cloud.client.api_client.do("PUT", f"/api/2.0{GATEWAY}", body={"rate_limits": [zero]})
    assert cloud.get_endpoint("churn-ep").status is EndpointStatus.KILLED
    with pytest.raises(Conflict, match="did not set"):
        cloud.unkill("churn-ep")
    assert gateway(databricks_fake)["rate_limits"] == [zero]


@pytest.fixture
def serving_platform(
    databricks_fake: FakeDatabricks, databricks_environment: Path, tmp_path: Path
) -> Iterator[Platform]:
    """A platform on the fake workspace serving ``churn:1`` on ``churn-ep``, route ``blue``."""
    home = tmp_path / "home"
    home.mkdir()
    (home / POLICY_FILE).write_bytes(OPEN_POLICY.read_bytes())  # no approvals needed to deploy
    platform = Platform(
        home,
        backend="databricks",
        backend_settings=settings_for(databricks_fake),
        clock=ManualClock(),
        ids=IdFactory(seed=3),
    )
    try:
        artifact = tmp_path / "model.bin"
        artifact.write_bytes(b"model")
        platform.register_model("churn", artifact)
        platform.serving.create_endpoint("churn-ep", "churn:1", route="blue")
        yield platform
    finally:
        platform.close()


def test_the_platform_kills_and_releases_a_databricks_endpoint_with_an_audit_trail(
    databricks_fake: FakeDatabricks, serving_platform: Platform
) -> None:
    platform = serving_platform
    # No earlier traffic to go back to: the switch stops the endpoint.
    killed = platform.serving.kill("churn-ep", reason="bad predictions")
    assert killed.status is EndpointStatus.KILLED
    assert status_of_a_request(databricks_fake) == 429
    with pytest.raises(BackendError, match="is killed"):
        platform.serving.invoke("churn-ep", [{"x": 1.0}])
    assert platform.sync() == []
    platform.serving.unkill("churn-ep", reason="fixed")
    assert status_of_a_request(databricks_fake) == 200
    assert platform.serving.invoke("churn-ep", [{"x": 1.0}])["route"] == "blue"
    assert platform.sync() == []
    actions = [e.action for e in platform.audit.events(subject="churn-ep")]
    assert actions[-2:] == ["endpoint.kill", "endpoint.unkill"]


def test_a_kill_switch_released_in_databricks_only_is_reported_by_sync(
    databricks_fake: FakeDatabricks, serving_platform: Platform
) -> None:
    platform = serving_platform
    platform.serving.kill("churn-ep", reason="bad predictions")
    # The zero limit is lifted in the Databricks UI: traffic flows again.
    rate_limits_set_outside_mintaka(platform, [])
    assert platform.serving.get_endpoint("churn-ep").status is EndpointStatus.KILLED
    assert status_of_a_request(databricks_fake) == 200
    [difference] = platform.sync()
    assert difference.kind == "endpoint.killed"
    assert (difference.recorded, difference.observed) == ({"killed": True}, {"killed": False})


def test_a_kill_switch_pulled_in_databricks_only_is_reported_by_sync(
    databricks_fake: FakeDatabricks, serving_platform: Platform
) -> None:
    platform = serving_platform
    rate_limits_set_outside_mintaka(
        platform, [{"calls": 0, "key": "endpoint", "renewal_period": "minute"}]
    )
    assert status_of_a_request(databricks_fake) == 429
    [difference] = platform.sync()
    assert difference.kind == "endpoint.killed"
    assert (difference.recorded, difference.observed) == ({"killed": False}, {"killed": True})


def rate_limits_set_outside_mintaka(platform: Platform, rate_limits: list[dict[str, Any]]) -> None:
    """Set the endpoint's AI Gateway rate limits as the Databricks UI does, outside Mintaka."""
    backend = platform.backend
    assert isinstance(backend, DatabricksBackend)
    backend.client.api_client.do("PUT", f"/api/2.0{GATEWAY}", body={"rate_limits": rate_limits})
