"""The AWS calls each backend operation makes, counted on the backend's own boto3 clients.

Each test states the exact sequence of operations an adapter method sends (one entry per API
call, retries not counted), so an extra existence check, read-back or wait shows up as a failure
here; docs/performance.md explains why each call beyond the minimal one is there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from mintaka_conformance.fakes.sagemaker import Fault, FaultInjector, SageMakerFake, make_client
from mintaka_sagemaker.backend import SageMakerBackend
from mintaka_sagemaker.settings import SageMakerSettings
from sagemaker_testkit import BUCKET, SETTINGS, Calls

from mintaka import Conflict, IdFactory, NotFound
from mintaka.domain.monitoring import CaptureConfig
from mintaka.domain.registry import ApprovalStatus, VersionRequest
from mintaka.domain.serving import RolloutStrategy, Route, TrafficMap, TrafficPlan, TrafficStep
from mintaka.interfaces import BackendContext

BLUE = Route(name="blue", model="churn", version=1)
GREEN = Route(name="green", model="churn", version=2)
ALL_BLUE = TrafficMap(weights={"blue": 100, "green": 0})


def new_backend(home: Path) -> SageMakerBackend:
    return SageMakerBackend(
        SageMakerSettings(**SETTINGS), BackendContext(home=home, ids=IdFactory(seed=5))
    )


@pytest.fixture
def backend(fake: SageMakerFake, tmp_path: Path) -> Iterator[SageMakerBackend]:
    """A backend of its own over conftest's ``fake`` (no Platform: only the adapter's calls)."""
    made = new_backend(tmp_path / "home")
    made.whoami()  # the account, for ARNs, is asked once per backend; not part of any count
    made._arn("")
    yield made
    made.close()


def request(tmp_path: Path, content: bytes, n: int, name: str = "churn") -> VersionRequest:
    folder = tmp_path / f"artifact-{hashlib.sha256(content).hexdigest()[:8]}"
    folder.mkdir(exist_ok=True)
    (folder / "model.bin").write_bytes(content)
    return VersionRequest(
        name=name,
        artifact_path=str(folder),
        artifact_digest="sha256:" + hashlib.sha256(content).hexdigest(),
        tags={"team": "risk"},
        mintaka_id=f"mv-{n}",
        idempotency_key=f"key-{n}",
    )


@pytest.fixture
def versions(backend: SageMakerBackend, tmp_path: Path) -> str:
    backend.ensure_model("churn")
    backend.create_version(request(tmp_path, b"v1", 1))
    backend.create_version(request(tmp_path, b"v2", 2))
    return "churn"


@pytest.fixture
def live(backend: SageMakerBackend, versions: str) -> str:
    backend.create_endpoint("churn-live", [BLUE, GREEN], ALL_BLUE)
    return "churn-live"


# -- registry -------------------------------------------------------------------------------------


def test_create_version_uploads_then_creates_and_reads_nothing_back(
    backend: SageMakerBackend, tmp_path: Path
) -> None:
    backend.ensure_model("churn")
    with Calls(backend) as sent:
        first = backend.create_version(request(tmp_path, b"weights", 1))
    assert sent == ["HeadObject", "PutObject", "CreateModelPackage"]
    with Calls(backend) as sent:
        backend.create_version(request(tmp_path, b"weights", 2))  # the same bytes: no upload
    assert sent == ["HeadObject", "CreateModelPackage"]
    read_back = backend.get_version("churn", 1)
    fields = {"extra"}
    assert first.model_dump(exclude=fields) == read_back.model_dump(exclude=fields)
    assert first.approval is ApprovalStatus.PENDING
    assert first.tags == {"team": "risk"}


def test_retried_create_version_answers_the_first_version(
    backend: SageMakerBackend, tmp_path: Path
) -> None:
    backend.ensure_model("churn")
    first = backend.create_version(request(tmp_path, b"weights", 1))
    with Calls(backend) as sent:
        again = backend.create_version(request(tmp_path, b"weights", 1))
    assert sent == ["HeadObject", "CreateModelPackage"]
    assert again == first
    assert [v.version for v in backend.list_versions("churn")] == [1]


def test_an_idempotency_key_used_for_another_model_conflicts(
    backend: SageMakerBackend, tmp_path: Path
) -> None:
    backend.ensure_model("churn")
    backend.ensure_model("fraud")
    backend.create_version(request(tmp_path, b"weights", 1))
    with pytest.raises(Conflict, match="not a version of 'fraud'"):
        backend.create_version(request(tmp_path, b"other weights", 1, name="fraud"))
    assert backend.list_versions("fraud") == []
    assert make_client("s3").list_objects_v2(Bucket=BUCKET)["KeyCount"] == 1  # churn's artifact


def test_create_version_of_a_missing_model_is_not_found_and_leaves_no_artifact(
    backend: SageMakerBackend, tmp_path: Path
) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        backend.create_version(request(tmp_path, b"weights", 1, name="ghost"))
    assert make_client("s3").list_objects_v2(Bucket=BUCKET).get("KeyCount", 0) == 0


def test_get_version_reads_the_package_and_two_tag_sets(
    backend: SageMakerBackend, versions: str
) -> None:
    backend.set_alias("churn", "champion", 2)
    with Calls(backend) as sent:
        seen = backend.get_version("churn", 2)
    assert sent == ["DescribeModelPackage", "ListTags", "ListTags"]
    assert seen.aliases == ("champion",)
    assert seen.tags == {"team": "risk"}


def test_missing_version_and_missing_model_are_told_apart(
    backend: SageMakerBackend, versions: str
) -> None:
    with pytest.raises(NotFound, match="version churn:9 not found"):
        backend.get_version("churn", 9)
    with pytest.raises(NotFound, match="model 'ghost'"):
        backend.get_version("ghost", 1)


def test_set_alias_checks_the_version_then_writes_one_tag(
    backend: SageMakerBackend, versions: str
) -> None:
    with Calls(backend) as sent:
        backend.set_alias("churn", "champion", 1)
    assert sent == ["DescribeModelPackage", "AddTags"]
    with Calls(backend) as sent, pytest.raises(NotFound):
        backend.set_alias("churn", "ghost", 9)
    assert sent[-1] != "AddTags"
    assert backend.get_aliases("churn") == {"champion": 1}


# -- serving --------------------------------------------------------------------------------------


def test_create_endpoint_makes_models_config_endpoint_and_waits_once(
    backend: SageMakerBackend, versions: str, tmp_path: Path
) -> None:
    with Calls(backend) as sent:
        created = backend.create_endpoint("churn-live", [BLUE, GREEN], ALL_BLUE)
    assert sent == [
        "DescribeModelPackage",
        "CreateModel",
        "DescribeModelPackage",
        "CreateModel",
        "CreateEndpointConfig",
        "CreateEndpoint",
        "DescribeEndpoint",
    ]
    cold = new_backend(tmp_path / "other-home")  # reads the routes from the config's tags
    assert created == cold.get_endpoint("churn-live")
    assert created.routes == (BLUE, GREEN)
    assert created.traffic == ALL_BLUE


def test_creating_a_taken_endpoint_name_conflicts_and_removes_what_it_made(
    backend: SageMakerBackend, live: str
) -> None:
    sm = make_client("sagemaker")
    models = sm.list_models()["Models"]
    configs = sm.list_endpoint_configs()["EndpointConfigs"]
    red = GREEN.model_copy(update={"name": "red"})
    with pytest.raises(Conflict, match="already exists"):
        backend.create_endpoint(live, [red], TrafficMap(weights={"red": 100}))
    assert sm.list_models()["Models"] == models
    assert sm.list_endpoint_configs()["EndpointConfigs"] == configs
    with pytest.raises(Conflict, match="already exists"):  # the same routes again: still taken
        backend.create_endpoint(live, [BLUE, GREEN], ALL_BLUE)
    assert backend.get_endpoint(live).routes == (BLUE, GREEN)


def test_throttled_create_of_a_taken_name_is_not_taken_for_a_lost_response(
    backend: SageMakerBackend, live: str
) -> None:
    faults = FaultInjector(script=[Fault.THROTTLING], operations={"CreateEndpoint"})
    faults.attach(backend.clients.sagemaker)
    red = GREEN.model_copy(update={"name": "red"})
    with pytest.raises(Conflict, match="already exists"):
        backend.create_endpoint(live, [red], TrafficMap(weights={"red": 100}))
    attempts = [(a.attempt, a.fault) for a in faults.history if a.operation == "CreateEndpoint"]
    assert attempts == [(1, Fault.THROTTLING), (2, None)]  # retried, then "already exists"
    assert backend.get_endpoint(live).routes == (BLUE, GREEN)
    configs = make_client("sagemaker").list_endpoint_configs()["EndpointConfigs"]
    assert len(configs) == 1


def test_get_endpoint_reads_the_config_tags_once_per_config(
    backend: SageMakerBackend, live: str, tmp_path: Path
) -> None:
    with Calls(backend) as sent:
        backend.get_endpoint(live)
    assert sent == ["DescribeEndpoint"]
    cold = new_backend(tmp_path / "cold-home")
    cold._arn("")
    with Calls(cold) as sent:
        first = cold.get_endpoint(live)
        second = cold.get_endpoint(live)
    assert sent == ["DescribeEndpoint", "ListTags", "DescribeEndpoint"]
    assert first == second == backend.get_endpoint(live)


def test_routes_changed_out_of_band_are_read_from_the_new_config(
    backend: SageMakerBackend, live: str, tmp_path: Path
) -> None:
    cold = new_backend(tmp_path / "cold-home")
    assert cold.get_endpoint(live).routes == (BLUE, GREEN)
    backend.update_routes(live, [BLUE], TrafficMap(weights={"blue": 100}))  # another process
    assert cold.get_endpoint(live).routes == (BLUE,)


def test_set_traffic_describes_before_and_after_the_weight_change(
    backend: SageMakerBackend, live: str
) -> None:
    half = TrafficMap(weights={"blue": 50, "green": 50})
    with Calls(backend) as sent:
        answer = backend.set_traffic(live, half)
    assert sent == ["DescribeEndpoint", "UpdateEndpointWeightsAndCapacities", "DescribeEndpoint"]
    assert answer.traffic == half
    assert answer == backend.get_endpoint(live)
    with Calls(backend) as sent:
        assert backend.set_traffic(live, half) == answer
    assert sent == ["DescribeEndpoint"]  # nothing to change


def test_set_traffic_answers_the_endpoint_once_the_update_is_done(
    backend: SageMakerBackend, fake: SageMakerFake, live: str
) -> None:
    fake.script_endpoint(live, ["Updating", "Updating", "InService"])
    answer = backend.set_traffic(live, TrafficMap(weights={"blue": 25, "green": 75}))
    assert answer.status.value == "in_service"
    assert answer.traffic.weights == {"blue": 25, "green": 75}


def test_new_shadow_switches_config_and_answers_from_the_wait(
    backend: SageMakerBackend, live: str
) -> None:
    shadowed = TrafficMap(weights={"blue": 100, "green": 0}, shadow="green", shadow_percent=20)
    with Calls(backend) as sent:
        answer = backend.set_traffic(live, shadowed)
    assert sent.count("DescribeEndpoint") == 2
    assert "ListTags" not in sent
    assert answer.traffic == shadowed
    assert answer == backend.get_endpoint(live)


def test_update_routes_switches_config_retires_the_old_one_and_answers_from_the_wait(
    backend: SageMakerBackend, live: str
) -> None:
    with Calls(backend) as sent:
        answer = backend.update_routes(live, [BLUE], TrafficMap(weights={"blue": 100}))
    assert sent == [
        "DescribeEndpoint",
        "DescribeEndpointConfig",  # capture, names and compute to carry over, models to retire
        "CreateEndpointConfig",  # blue keeps the Model it serves: none is made
        "UpdateEndpoint",
        "DescribeEndpoint",
        "ListEndpoints",  # no other endpoint may serve the config retired
        "DeleteEndpointConfig",
        "DeleteModel",  # green's
    ]
    assert answer.routes == (BLUE,)
    assert answer == backend.get_endpoint(live)
    assert len(make_client("sagemaker").list_models()["Models"]) == 1


def test_configure_capture_reads_the_config_once_and_asking_again_changes_nothing(
    backend: SageMakerBackend, live: str
) -> None:
    capture = CaptureConfig(sample_percent=50)
    with Calls(backend) as sent:
        backend.configure_capture(live, capture)
    assert sent == [
        "DescribeEndpoint",
        "DescribeEndpointConfig",  # the capture in place, names and compute to carry over
        "CreateEndpointConfig",
        "UpdateEndpoint",
        "DescribeEndpoint",
        "ListEndpoints",
        "DeleteEndpointConfig",
    ]
    with Calls(backend) as again:
        backend.configure_capture(live, capture)
    assert again == ["DescribeEndpoint", "DescribeEndpointConfig"]


def test_invoke_is_one_call(backend: SageMakerBackend, live: str) -> None:
    with Calls(backend) as sent:
        answer = backend.invoke(live, {"inputs": [{"a": 1.0}]})
    assert sent == ["InvokeEndpoint"]
    assert answer["route"] == "blue"


def test_a_new_route_reads_the_busiest_model_once_for_its_network_settings(
    backend: SageMakerBackend, live: str
) -> None:
    red = Route(name="red", model=BLUE.model, version=BLUE.version)
    with Calls(backend) as sent:
        backend.update_routes(
            live, [BLUE, GREEN, red], TrafficMap(weights={"blue": 50, "green": 50})
        )
    assert sent == [
        "DescribeEndpoint",
        "DescribeEndpointConfig",
        "DescribeModel",  # blue's or green's: its VpcConfig and network isolation, if any
        "DescribeModelPackage",
        "CreateModel",  # red's; blue and green keep theirs
        "CreateEndpointConfig",
        "UpdateEndpoint",
        "DescribeEndpoint",
        "ListEndpoints",
        "DeleteEndpointConfig",
    ]


def test_a_native_rollout_sets_its_sla_alarms_to_ok_before_it_starts(
    backend: SageMakerBackend, live: str
) -> None:
    plan = TrafficPlan(
        endpoint=live,
        strategy=RolloutStrategy.CANARY,
        steps=[
            TrafficStep(weights={"blue": 90, "green": 10}, bake_seconds=60),
            TrafficStep(weights={"blue": 0, "green": 100}, bake_seconds=60),
        ],
        sla={"p99_latency_ms": 250, "max_error_rate": 0.01},
    )
    calls = Calls(backend)
    calls.clients.append(backend.clients.get("cloudwatch"))
    with calls as sent:
        backend.start_rollout(plan)
    alarms = [c for c in sent if "Alarm" in c or c == "UpdateEndpoint"]
    assert alarms == [
        "PutMetricAlarm",
        "PutMetricAlarm",
        "SetAlarmState",  # CloudWatch keeps an updated alarm's state: a stale ALARM is cleared
        "SetAlarmState",
        "DescribeAlarms",  # alarms made under earlier names (none here: nothing is deleted)
        "UpdateEndpoint",
    ]
