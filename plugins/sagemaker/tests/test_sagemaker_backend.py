"""What the SageMaker backend does beyond the shared suite: how Mintaka's objects are laid out in
SageMaker, native shadow and rollouts, capture read-back, CloudWatch metrics, identity, discovery
and out-of-band changes."""

from __future__ import annotations

import io
import json
import logging
import re
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from mintaka_conformance.fakes.sagemaker import SageMakerFake, make_client
from mintaka_sagemaker import serving as serving_module
from mintaka_sagemaker.artifacts import write_tarball
from mintaka_sagemaker.aws import short_hash
from mintaka_sagemaker.backend import SageMakerBackend
from mintaka_sagemaker.registry import client_token
from mintaka_sagemaker.serving import percentages, rollout_alarm_name
from mintaka_sagemaker.settings import SageMakerSettings
from sagemaker_testkit import BUCKET, SETTINGS, deploy_without_registry, sagemaker_platform
from sqlalchemy import Connection

from mintaka import (
    BackendError,
    ConfigurationError,
    Conflict,
    NotFound,
    Platform,
    PolicyViolation,
    Throttled,
    ValidationError,
)
from mintaka.domain.discovery import Difference, ResourceKind
from mintaka.domain.governance import IdentitySource
from mintaka.domain.monitoring import CaptureConfig
from mintaka.domain.pipelines import PipelineSpec, StepSpec
from mintaka.domain.registry import ApprovalStatus, Stage
from mintaka.domain.serving import (
    EndpointStatus,
    RolloutStrategy,
    Route,
    TrafficMap,
    TrafficPlan,
    TrafficStep,
)
from mintaka.rollout import native
from mintaka.rollout.controller import plan_steps
from mintaka.sync import ENDPOINT_SUBJECT, DifferenceKind


def artifact(tmp_path: Path, content: bytes) -> Path:
    root = tmp_path / f"artifact-{len(list(tmp_path.iterdir()))}"
    (root / "sub").mkdir(parents=True)
    (root / "model.bin").write_bytes(content)
    (root / "sub" / "meta.json").write_text("{}")
    return root


@pytest.fixture
def two_versions(platform: Platform, tmp_path: Path) -> str:
    platform.register_model("churn", artifact(tmp_path, b"v1"))
    platform.register_model("churn", artifact(tmp_path, b"v2"))
    return "churn"


@pytest.fixture
def live(platform: Platform, two_versions: str) -> str:
    platform.serving.create_endpoint("churn-live", "churn:1", route="blue")
    platform.serving.deploy("churn-live", "churn:2", route="green")
    return "churn-live"


# -- registry layout ------------------------------------------------------------------------------


def test_version_is_a_model_package_with_mintaka_metadata(
    platform: Platform, sm: Any, tmp_path: Path
) -> None:
    version = platform.register_model("churn", artifact(tmp_path, b"weights"), tags={"t": "1"})
    arn = version.backend_ids["model_package"]
    described = sm.describe_model_package(ModelPackageName=arn)
    assert described["ModelPackageGroupName"] == "churn"
    assert described["CustomerMetadataProperties"] == {
        "mintaka_id": version.id,
        "mintaka_digest": version.artifact_digest,
        "mintaka_flavor": "opaque",
    }
    assert described["ModelApprovalStatus"] == "PendingManualApproval"
    container = described["InferenceSpecification"]["Containers"][0]
    assert container["Image"] == SETTINGS["image_uri"]
    hex_digest = version.artifact_digest.removeprefix("sha256:")
    assert container["ModelDataUrl"] == (
        f"s3://{BUCKET}/mintaka/artifacts/{hex_digest}/model.tar.gz"
    )
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "t", "Value": "1"}]


def test_artifact_tarball_is_reproducible_and_complete(tmp_path: Path) -> None:
    root = artifact(tmp_path, b"weights")
    first, second = io.BytesIO(), io.BytesIO()
    write_tarball(root, first)
    (root / "model.bin").touch()  # a new mtime changes nothing
    write_tarball(root, second)
    assert first.getvalue() == second.getvalue()
    with tarfile.open(fileobj=io.BytesIO(first.getvalue()), mode="r:gz") as tar:
        assert tar.getnames() == ["model.bin", "sub/meta.json"]


def test_client_token_makes_a_retried_create_return_the_first_package(
    cloud: SageMakerBackend, platform: Platform, sm: Any, tmp_path: Path
) -> None:
    from mintaka.domain.registry import VersionRequest

    stored = platform.artifacts.ingest(artifact(tmp_path, b"weights"))
    cloud.ensure_model("churn")
    request = VersionRequest(
        name="churn",
        artifact_path=str(stored.content),
        artifact_digest=stored.digest,
        mintaka_id="mv-1",
        idempotency_key="a key with spaces that is far longer than thirty-six characters",
    )
    assert cloud.create_version(request).version == cloud.create_version(request).version == 1
    assert (
        len(sm.list_model_packages(ModelPackageGroupName="churn")["ModelPackageSummaryList"]) == 1
    )


def test_client_tokens_of_keys_whose_short_hashes_collide_differ() -> None:
    """Two creates whose keys hash alike would be answered with one package: a token is made
    from 128 bits of the key's sha256, not eight hex characters."""
    one, two = "served:churn:8240", "served:churn:91436"
    assert short_hash(one) == short_hash(two)  # a collision of eight hex characters
    tokens = {client_token(one), client_token(two)}
    assert len(tokens) == 2
    assert all(re.fullmatch(r"[a-zA-Z0-9-]{1,36}", token) for token in tokens)
    assert client_token(one) == client_token(one)


def test_aliases_are_group_tags_and_stage_and_approval_are_native_fields(
    cloud: SageMakerBackend, platform: Platform, two_versions: str, sm: Any
) -> None:
    platform.set_alias("churn", "champion", 2)
    platform.set_stage("churn", 2, Stage.STAGING)
    cloud.set_approval("churn", 2, ApprovalStatus.APPROVED)
    group = sm.describe_model_package_group(ModelPackageGroupName="churn")
    tags = {
        t["Key"]: t["Value"]
        for t in sm.list_tags(ResourceArn=group["ModelPackageGroupArn"])["Tags"]
    }
    assert tags["mintaka:alias:champion"] == "2"
    package = sm.describe_model_package(
        ModelPackageName=cloud.get_version("churn", 2).backend_ids["model_package"]
    )
    assert package["ModelApprovalStatus"] == "Approved"
    assert package["CustomerMetadataProperties"]["mintaka_stage"] == "staging"
    platform.set_stage("churn", 2, Stage.NONE)
    assert cloud.get_version("churn", 2).stage is None


# -- serving -------------------------------------------------------------------------------------


def test_routes_are_variants_and_weights_change_in_place(
    platform: Platform, cloud: SageMakerBackend, live: str, sm: Any
) -> None:
    config = sm.describe_endpoint(EndpointName=live)["EndpointConfigName"]
    assert config.startswith(f"{live}-c2-")
    assert sm.list_endpoint_configs()["EndpointConfigs"][0]["EndpointConfigName"] == config
    platform.serving.set_traffic(live, {"blue": 75, "green": 25})
    described = sm.describe_endpoint(EndpointName=live)
    assert described["EndpointConfigName"] == config  # weights changed without a new config
    assert {v["VariantName"]: v["CurrentWeight"] for v in described["ProductionVariants"]} == {
        "blue": 75.0,
        "green": 25.0,
    }
    assert len(sm.list_models()["Models"]) == 2


def test_shadow_is_a_native_shadow_variant(
    platform: Platform, fake: SageMakerFake, live: str, sm: Any
) -> None:
    platform.serving.set_traffic(live, {"blue": 100, "green": 0}, shadow="green", shadow_percent=50)
    described = sm.describe_endpoint(EndpointName=live)
    assert [v["VariantName"] for v in described["ProductionVariants"]] == ["blue"]
    assert [v["VariantName"] for v in described["ShadowProductionVariants"]] == ["green"]
    seen = platform.backend.get_endpoint(live)  # type: ignore[attr-defined]
    assert seen.traffic == TrafficMap(
        weights={"blue": 100, "green": 0}, shadow="green", shadow_percent=50
    )
    for i in range(4):
        assert platform.serving.invoke(live, {"a": float(i)})["route"] == "blue"
    assert [i.variant for i in fake.invocations(live, shadow=True)] == ["green"] * 4


def test_shadow_needs_all_live_traffic_on_one_route(
    platform: Platform, cloud: SageMakerBackend, live: str
) -> None:
    platform.serving.deploy(live, "churn:1", route="red")
    with pytest.raises(ValidationError, match="exactly one production variant"):
        cloud.set_traffic(
            live, TrafficMap(weights={"blue": 50, "green": 50}, shadow="red", shadow_percent=10)
        )


def test_a_create_that_ends_failed_leaves_nothing_behind_and_can_be_retried(
    platform: Platform, fake: SageMakerFake, two_versions: str, sm: Any
) -> None:
    fake.script_endpoint("churn-live", ["Creating", "Failed"], failure_reason="image pull failed")
    with pytest.raises(BackendError, match="Failed: image pull failed; the endpoint was deleted"):
        platform.serving.create_endpoint("churn-live", "churn:1", route="blue")
    assert sm.list_endpoints()["Endpoints"] == []
    assert sm.list_endpoint_configs()["EndpointConfigs"] == []
    assert sm.list_models()["Models"] == []
    assert platform.serving.list_endpoints() == []
    endpoint = platform.serving.create_endpoint("churn-live", "churn:1", route="blue")
    assert endpoint.status is EndpointStatus.IN_SERVICE
    assert platform.sync() == []


def test_a_weight_change_while_the_endpoint_updates_is_a_conflict(
    cloud: SageMakerBackend, fake: SageMakerFake, live: str, sm: Any
) -> None:
    fake.script_endpoint(live, ["Updating"] * 5 + ["InService"])
    sm.update_endpoint_weights_and_capacities(  # someone else's change, still under way
        EndpointName=live,
        DesiredWeightsAndCapacities=[{"VariantName": "green", "DesiredWeight": 10.0}],
    )
    with pytest.raises(Conflict, match="wait for it to be InService"):
        cloud.set_traffic(live, TrafficMap(weights={"blue": 50, "green": 50}))


def test_percentages_sum_to_100() -> None:
    assert percentages({"a": 1.0, "b": 1.0, "c": 1.0}) == {"a": 34, "b": 33, "c": 33}
    assert percentages({"a": 0.0}) == {}
    assert percentages({"a": 3.0, "b": 1.0}) == {"a": 75, "b": 25}


def test_native_rollout_completes_or_rolls_back_on_its_alarm(
    cloud: SageMakerBackend, fake: SageMakerFake, live: str
) -> None:
    plan = TrafficPlan(
        endpoint=live,
        strategy=RolloutStrategy.CANARY,
        steps=[
            TrafficStep(weights={"blue": 90, "green": 10}, bake_seconds=300),
            TrafficStep(weights={"blue": 0, "green": 100}),
        ],
    )
    first = cloud.start_rollout(plan)
    assert cloud.rollout_status(live, first) == "succeeded"
    assert cloud.get_endpoint(live).traffic.weights == {"blue": 0, "green": 100}
    deployed = make_client("sagemaker").describe_endpoint(EndpointName=live)["LastDeploymentConfig"]
    routing = deployed["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]
    assert routing == {
        "Type": "CANARY",
        "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
        "WaitIntervalInSeconds": 300,
    }

    back = TrafficPlan(
        endpoint=live,
        strategy=RolloutStrategy.LINEAR,
        steps=[
            TrafficStep(weights={"blue": 50, "green": 50}, bake_seconds=120),
            TrafficStep(weights={"blue": 100, "green": 0}, bake_seconds=120),
        ],
        sla={"p99_latency_ms": 250, "max_error_rate": 0.01},
    )
    cw = make_client("cloudwatch")
    fake.script_endpoint(live, ["Updating", "InService"])
    second = cloud.start_rollout(back)
    assert cloud.rollout_status(live, second) == "in_progress"
    alarms = {a["AlarmName"] for a in cw.describe_alarms()["MetricAlarms"]}
    latency = rollout_alarm_name(live, "blue", "p99-latency")
    assert alarms == {latency, rollout_alarm_name(live, "blue", "error-rate")}
    cw.set_alarm_state(AlarmName=latency, StateValue="ALARM", StateReason="slow")
    assert cloud.rollout_status(live, second) == "rolled_back"
    assert cloud.get_endpoint(live).traffic.weights == {"blue": 0, "green": 100}
    assert "ALARM" in cloud.get_endpoint(live).extra["failure_reason"]
    deployed = make_client("sagemaker").describe_endpoint(EndpointName=live)["LastDeploymentConfig"]
    assert deployed["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"] == {
        "Type": "LINEAR",
        "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 50},
        "WaitIntervalInSeconds": 120,
    }


def test_rollout_alarms_of_endpoints_whose_names_read_alike_are_apart(
    platform: Platform, two_versions: str, fake: SageMakerFake
) -> None:
    serving = platform.serving
    for endpoint, route in (("churn-live", "green"), ("churn", "live-green")):
        serving.create_endpoint(endpoint, "churn:1", route="blue")
        serving.deploy(endpoint, "churn:2", route=route)
    fake.script_endpoint("churn-live", ["Updating", "InService"])
    sla = {"p99_latency_ms": 250}
    slow = native.start(platform, _canary("churn-live", "green", "blue", sla=sla))
    native.start(platform, _canary("churn", "live-green", "blue", sla=sla))
    cw = make_client("cloudwatch")
    watched = {
        a["AlarmName"]: {d["Name"]: d["Value"] for d in a["Dimensions"]}
        for a in cw.describe_alarms()["MetricAlarms"]
    }
    mine = rollout_alarm_name("churn-live", "green", "p99-latency")
    theirs = rollout_alarm_name("churn", "live-green", "p99-latency")
    assert watched == {
        mine: {"EndpointName": "churn-live", "VariantName": "green"},
        theirs: {"EndpointName": "churn", "VariantName": "live-green"},
    }
    cw.set_alarm_state(AlarmName=theirs, StateValue="ALARM", StateReason="churn/live-green slow")
    assert native.status(platform, "churn-live", slow) is native.NativeRolloutStatus.IN_PROGRESS
    assert native.status(platform, "churn-live", slow) is native.NativeRolloutStatus.SUCCEEDED


def test_rollout_alarms_are_named_after_the_sagemaker_endpoint_they_watch(
    fake: SageMakerFake, tmp_path: Path
) -> None:
    cw = make_client("cloudwatch")
    for home, (model, cloud_name) in enumerate((("churn", "ChurnA"), ("fraud", "ChurnB"))):
        settings = {**SETTINGS, "endpoint_names": {"churn-api": cloud_name}}
        with sagemaker_platform(tmp_path / f"home-{home}", settings, seed=home) as platform:
            platform.register_model(model, artifact(tmp_path, model.encode() + b"1"))
            platform.register_model(model, artifact(tmp_path, model.encode() + b"2"))
            platform.serving.create_endpoint("churn-api", f"{model}:1", route="blue")
            platform.serving.deploy("churn-api", f"{model}:2", route="green")
            sla = {"p99_latency_ms": 250}
            native.start(platform, _canary("churn-api", "green", "blue", sla=sla))
    watched = {
        a["AlarmName"]: {d["Name"]: d["Value"] for d in a["Dimensions"]}
        for a in cw.describe_alarms()["MetricAlarms"]
    }
    assert watched == {  # one Mintaka name on two endpoints: an alarm on each
        rollout_alarm_name(e, "green", "p99-latency"): {"EndpointName": e, "VariantName": "green"}
        for e in ("ChurnA", "ChurnB")
    }


def _old_alarm(cw: Any, name: str, description: str, endpoint: str, variant: str) -> None:
    """An alarm as earlier versions of Mintaka put on a rollout's SLA: p99 latency, or an error
    rate read from two metrics."""
    dimensions = [
        {"Name": "EndpointName", "Value": endpoint},
        {"Name": "VariantName", "Value": variant},
    ]
    if name.endswith("error-rate"):
        watched: dict[str, Any] = {
            "Metrics": [
                {
                    "Id": query,
                    "MetricStat": {
                        "Metric": {
                            "Namespace": "AWS/SageMaker",
                            "MetricName": metric,
                            "Dimensions": dimensions,
                        },
                        "Period": 60,
                        "Stat": "Sum",
                    },
                    "ReturnData": False,
                }
                for query, metric in (("errors", "Invocation5XXErrors"), ("calls", "Invocations"))
            ]
            + [{"Id": "rate", "Expression": "errors / calls", "ReturnData": True}]
        }
    else:
        watched = {
            "Namespace": "AWS/SageMaker",
            "MetricName": "ModelLatency",
            "Dimensions": dimensions,
            "ExtendedStatistic": "p99",
            "Period": 60,
        }
    cw.put_metric_alarm(
        AlarmName=name,
        AlarmDescription=description,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanThreshold",
        **watched,
    )


def test_rollout_alarms_mintaka_made_under_earlier_names_are_deleted_when_made_anew(
    fake: SageMakerFake, tmp_path: Path
) -> None:
    cw = make_client("cloudwatch")
    hashed = short_hash(["churn-api", "green"])
    old = {
        "mintaka-churn-api-green-p99-latency": (
            "Mintaka rollout SLA of churn-api/green: p99 latency"
        ),
        f"mintaka-churn-api-green-{hashed}-error-rate": (
            "Mintaka rollout SLA of churn-api/green: 5xx error rate"
        ),
    }
    kept = {
        f"mintaka-churn-api-green-{hashed}-p99-latency": "my own alarm",  # not Mintaka's
        "mintaka-churn-api-blue-p99-latency": "Mintaka rollout SLA of churn-api/blue: p99 latency",
        "mintaka-churn-api-green-error-rate": (  # watches another endpoint
            "Mintaka rollout SLA of churn-api/green: 5xx error rate"
        ),
    }
    for name, description in {**old, **kept}.items():
        cloud_name = "Other" if name == "mintaka-churn-api-green-error-rate" else "ChurnA"
        _old_alarm(cw, name, description, cloud_name, "blue" if "blue" in name else "green")
    settings = {**SETTINGS, "endpoint_names": {"churn-api": "ChurnA"}}
    with sagemaker_platform(tmp_path / "home", settings) as platform:
        platform.register_model("churn", artifact(tmp_path, b"c1"))
        platform.register_model("churn", artifact(tmp_path, b"c2"))
        platform.serving.create_endpoint("churn-api", "churn:1", route="blue")
        platform.serving.deploy("churn-api", "churn:2", route="green")
        sla = {"p99_latency_ms": 250, "max_error_rate": 0.01}
        native.start(platform, _canary("churn-api", "green", "blue", sla=sla))
    alarms = {a["AlarmName"] for a in cw.describe_alarms()["MetricAlarms"]}
    made = {rollout_alarm_name("ChurnA", "green", b) for b in ("p99-latency", "error-rate")}
    assert alarms == made | set(kept)


def test_rollout_alarms_under_earlier_names_that_cannot_be_read_are_kept_and_logged(
    cloud: SageMakerBackend,
    live: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cw = make_client("cloudwatch")
    old = "mintaka-churn-live-green-p99-latency"
    _old_alarm(cw, old, "Mintaka rollout SLA of churn-live/green: p99 latency", live, "green")
    call = cloud._call

    def throttled(service: str, operation: str, **params: Any) -> dict[str, Any]:
        if operation == "describe_alarms":
            raise Throttled("Rate exceeded", "cloudwatch")
        return call(service, operation, **params)

    monkeypatch.setattr(cloud, "_call", throttled)
    with caplog.at_level(logging.WARNING, logger="mintaka_sagemaker.serving"):
        rollout_id = cloud.start_rollout(_canary(live, "green", "blue", sla={"p99_latency_ms": 9}))
    assert "kept rollout SLA alarms made under earlier names" in caplog.text
    assert cloud.rollout_status(live, rollout_id) == "succeeded"
    alarms = {a["AlarmName"] for a in cw.describe_alarms()["MetricAlarms"]}
    assert alarms == {old, rollout_alarm_name(live, "green", "p99-latency")}


def _plan(live: str, strategy: RolloutStrategy, *steps: tuple[int, float]) -> TrafficPlan:
    """A plan moving ``green`` onto ``live`` by (share, bake) steps, the rest staying on blue."""
    return TrafficPlan(
        endpoint=live,
        strategy=strategy,
        steps=[
            TrafficStep(weights={"blue": 100 - share, "green": share}, bake_seconds=bake)
            for share, bake in steps
        ],
    )


@pytest.mark.parametrize(
    ("strategy", "steps", "why"),
    [
        (RolloutStrategy.CANARY, [(10, 60), (50, 60), (100, 60)], "a canary is one step"),
        (RolloutStrategy.CANARY, [(60, 60), (100, 60)], "a canary is one step of 1-50%"),
        (RolloutStrategy.CANARY, [(10, 7200), (100, 7200)], "7200s is not a whole number"),
        (RolloutStrategy.CANARY, [(10, 12.5), (100, 12.5)], "12.5s is not a whole number"),
        (RolloutStrategy.CANARY, [(10, 60), (100, 600)], "last step bakes longer"),
        (RolloutStrategy.LINEAR, [(20, 0), (100, 0)], "equal shares of 10-50%"),
        (
            RolloutStrategy.LINEAR,
            [(30, 60), (60, 60), (100, 60)],
            "equal shares of 10-50% onto 'green', then what is left, ending at 100%",
        ),
        (RolloutStrategy.LINEAR, [(30, 60), (60, 60), (90, 60), (95, 60), (100, 60)], "10-50%"),
        (RolloutStrategy.LINEAR, [(5, 60)] + [(s, 60) for s in range(10, 101, 5)], "10-50%"),
        (RolloutStrategy.LINEAR, [(25, 60), (50, 300), (75, 60), (100, 60)], "different times"),
        (
            RolloutStrategy.LINEAR,
            [(s, 3600) for s in range(10, 101, 10)],
            r"10 waits of 3600s \(36000s\).*MaximumExecutionTimeoutInSeconds.*28800s",
        ),
        (
            RolloutStrategy.LINEAR,
            [(s, 3200) for s in [*range(12, 100, 12), 100]],
            r"9 waits of 3200s \(28800s\)",
        ),
        (
            RolloutStrategy.LINEAR,
            [(s, 2879) for s in range(10, 101, 10)],  # would leave 10s to provision the fleet
            r"10 waits of 2879s \(28790s\) and 3600s to provision the new fleet exceed",
        ),
        (RolloutStrategy.LINEAR, [(s, 2521) for s in range(10, 101, 10)], r"\(25210s\)"),
        (RolloutStrategy.BLUE_GREEN, [(50, 60), (100, 60)], "all at once is one step"),
        (RolloutStrategy.SHADOW, [(100, 0)], "shadow is not a SageMaker deployment policy"),
    ],
)
def test_a_plan_sagemaker_cannot_walk_as_written_is_refused_with_nothing_done(
    platform: Platform,
    cloud: SageMakerBackend,
    live: str,
    sm: Any,
    strategy: RolloutStrategy,
    steps: list[tuple[int, float]],
    why: str,
) -> None:
    plan = _plan(live, strategy, *steps)
    with pytest.raises(ValidationError, match=why) as refused:
        cloud.check_native_plan(plan, platform.serving.get_endpoint(live))
    assert "SageMaker walks blue_green (one step" in str(refused.value)
    assert str(plan.steps[0].weights) in str(refused.value)
    _refused_with_nothing_done(platform, cloud, sm, plan, why)


def _refused_with_nothing_done(
    platform: Platform, cloud: SageMakerBackend, sm: Any, plan: TrafficPlan, why: str
) -> None:
    """``plan`` is refused by the native start and by the backend alike, with nothing recorded,
    audited, switched or alarmed."""
    live = plan.endpoint
    history = platform.serving.deployment_history(live)
    events = _actions(platform, live)
    before = sm.describe_endpoint(EndpointName=live)["EndpointConfigName"]
    with pytest.raises(ValidationError, match=why):
        native.start(platform, plan)
    with pytest.raises(ValidationError, match=why):
        cloud.start_rollout(plan)
    assert platform.serving.deployment_history(live) == history
    assert _actions(platform, live) == events
    assert sm.describe_endpoint(EndpointName=live)["EndpointConfigName"] == before
    assert make_client("cloudwatch").describe_alarms()["MetricAlarms"] == []


@pytest.mark.parametrize(
    ("strategy", "routing"),
    [
        (
            RolloutStrategy.CANARY,
            {"Type": "CANARY", "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10}},
        ),
        (
            RolloutStrategy.LINEAR,
            {"Type": "LINEAR", "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": 25}},
        ),
        (RolloutStrategy.BLUE_GREEN, {"Type": "ALL_AT_ONCE"}),
    ],
)
def test_the_default_native_plans_are_walked_exactly_as_written(
    platform: Platform,
    cloud: SageMakerBackend,
    live: str,
    sm: Any,
    strategy: RolloutStrategy,
    routing: dict[str, Any],
) -> None:
    plan = plan_steps(
        TrafficPlan(endpoint=live, strategy=strategy),
        challenger="green",
        champion="blue",
        bake_seconds=3600,
        native=True,
    )
    native.start(platform, plan)
    deployed = sm.describe_endpoint(EndpointName=live)["LastDeploymentConfig"]
    assert deployed["BlueGreenUpdatePolicy"] == {
        "TrafficRoutingConfiguration": {**routing, "WaitIntervalInSeconds": 3600},
        # the waits (one, two or four of an hour) plus an hour to provision
        "MaximumExecutionTimeoutInSeconds": (len(plan.steps) + 1) * 3600,
    }


@pytest.mark.parametrize(
    ("steps", "timeout"),
    [
        ([(100, 0)], 3600),  # no wait at all: the hour to provision the new fleet
        ([(10, 60), (100, 60)], 3720),
        ([(s, 2400) for s in range(10, 101, 10)], 27600),
        ([(s, 2520) for s in range(10, 101, 10)], 28800),  # the waits and the hour fill 8 hours
    ],
)
def test_a_native_rollout_times_out_after_its_waits_and_an_hour_to_provision(
    platform: Platform,
    cloud: SageMakerBackend,
    live: str,
    sm: Any,
    steps: list[tuple[int, float]],
    timeout: int,
) -> None:
    strategy = {1: RolloutStrategy.BLUE_GREEN, 2: RolloutStrategy.CANARY}.get(
        len(steps), RolloutStrategy.LINEAR
    )
    native.start(platform, _plan(live, strategy, *steps))
    deployed = sm.describe_endpoint(EndpointName=live)["LastDeploymentConfig"]
    assert deployed["BlueGreenUpdatePolicy"]["MaximumExecutionTimeoutInSeconds"] == timeout


@pytest.mark.parametrize("step", [10, 20, 25, 30, 33, 40, 45, 50])
def test_a_linear_plan_of_equal_steps_then_what_is_left_is_walked_as_written(
    platform: Platform, cloud: SageMakerBackend, live: str, sm: Any, step: int
) -> None:
    shares = [(share, 60.0) for share in [*range(step, 100, step), 100]]
    native.start(platform, _plan(live, RolloutStrategy.LINEAR, *shares))
    deployed = sm.describe_endpoint(EndpointName=live)["LastDeploymentConfig"]
    assert deployed["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"] == {
        "Type": "LINEAR",
        "LinearStepSize": {"Type": "CAPACITY_PERCENT", "Value": step},
        "WaitIntervalInSeconds": 60,
    }


def test_a_canary_onto_a_route_already_serving_is_refused_before_the_cloud_changes(
    platform: Platform, cloud: SageMakerBackend, live: str, sm: Any
) -> None:
    platform.serving.set_traffic(live, {"blue": 80, "green": 20})
    before = sm.describe_endpoint(EndpointName=live)["EndpointConfigName"]
    with pytest.raises(ValidationError, match="'green' already takes 20%"):
        cloud.start_rollout(_plan(live, RolloutStrategy.CANARY, (30, 60), (100, 60)))
    assert sm.describe_endpoint(EndpointName=live)["EndpointConfigName"] == before


def test_a_canary_onto_a_route_already_serving_marks_nothing_and_keeps_the_rollback_target(
    platform: Platform, cloud: SageMakerBackend, live: str
) -> None:
    platform.serving.set_traffic(live, {"blue": 80, "green": 20})  # never verified
    history = platform.serving.deployment_history(live)
    events = _actions(platform, live)
    plan = _plan(live, RolloutStrategy.CANARY, (30, 60), (100, 60))
    with pytest.raises(ValidationError, match="'green' already takes 20%"):
        cloud.check_native_plan(plan, platform.serving.get_endpoint(live))
    with pytest.raises(ValidationError, match="'green' already takes 20%"):
        native.start(platform, plan)
    assert platform.serving.deployment_history(live) == history
    assert _actions(platform, live) == events
    platform.serving.set_traffic(live, {"blue": 50, "green": 50})
    assert platform.serving.rollback(live).traffic.weights == {"blue": 100, "green": 0}


def _nothing_marked(platform: Platform, live: str, events: list[str]) -> None:
    """No audit event since ``events``, the latest deployment unmarked, no alarm made."""
    assert _actions(platform, live) == events
    assert not platform.serving.deployment_history(live)[-1].known_good
    assert make_client("cloudwatch").describe_alarms()["MetricAlarms"] == []


def test_a_native_plan_is_checked_against_the_cloud_traffic_before_anything_is_marked(
    platform: Platform, live: str, sm: Any
) -> None:
    platform.serving.set_traffic(live, {"blue": 100, "green": 0})  # recorded, not verified
    sm.update_endpoint_weights_and_capacities(  # changed outside Mintaka
        EndpointName=live,
        DesiredWeightsAndCapacities=[
            {"VariantName": "blue", "DesiredWeight": 80.0},
            {"VariantName": "green", "DesiredWeight": 20.0},
        ],
    )
    events = _actions(platform, live)
    plan = _plan(live, RolloutStrategy.CANARY, (10, 60), (100, 60))
    with pytest.raises(ValidationError, match="'green' already takes 20%"):
        native.start(platform, plan)
    _nothing_marked(platform, live, events)


def test_a_native_rollout_on_an_updating_endpoint_is_a_conflict_with_nothing_marked(
    platform: Platform, live: str, fake: SageMakerFake, sm: Any
) -> None:
    platform.serving.set_traffic(live, {"blue": 100, "green": 0})
    events = _actions(platform, live)
    fake.script_endpoint(live, ["Updating", "Updating", "InService"])
    sm.update_endpoint_weights_and_capacities(  # an update outside Mintaka, under way
        EndpointName=live,
        DesiredWeightsAndCapacities=[{"VariantName": "blue", "DesiredWeight": 100.0}],
    )
    with pytest.raises(Conflict, match="is updating in the cloud"):
        native.start(platform, _canary(live, "green", "blue"))
    _nothing_marked(platform, live, events)


def test_more_rollback_alarms_than_sagemaker_takes_are_refused_before_anything(
    tmp_path: Path, fake: SageMakerFake
) -> None:
    settings = {**SETTINGS, "rollback_alarms": tuple(f"ops-{i}" for i in range(9))}
    with sagemaker_platform(tmp_path / "home", settings, seed=7) as platform:
        platform.register_model("churn", artifact(tmp_path, b"v1"))
        platform.register_model("churn", artifact(tmp_path, b"v2"))
        platform.serving.create_endpoint("churn-live", "churn:1", route="blue")
        platform.serving.deploy("churn-live", "churn:2", route="green")
        events = _actions(platform, "churn-live")
        sla = {"p99_latency_ms": 250, "max_error_rate": 0.01}
        with pytest.raises(ValidationError, match="would need 11 CloudWatch alarms"):
            native.start(platform, _canary("churn-live", "green", "blue", sla=sla))
        _nothing_marked(platform, "churn-live", events)
    with pytest.raises(ValueError, match="at most 10"):
        SageMakerSettings(**{**SETTINGS, "rollback_alarms": [f"ops-{i}" for i in range(11)]})


def _ops_alarm(name: str) -> None:
    make_client("cloudwatch").put_metric_alarm(
        AlarmName=name,
        Namespace="AWS/SageMaker",
        MetricName="Invocation5XXErrors",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1.0,
        ComparisonOperator="GreaterThanThreshold",
    )


def test_a_rollback_alarm_that_does_not_exist_is_refused_before_anything(
    tmp_path: Path, fake: SageMakerFake
) -> None:
    _ops_alarm("ops-errors")
    settings = {**SETTINGS, "rollback_alarms": ("ops-errors", "ops-latency")}
    with sagemaker_platform(tmp_path / "home", settings, seed=7) as platform:
        platform.register_model("churn", artifact(tmp_path, b"v1"))
        platform.register_model("churn", artifact(tmp_path, b"v2"))
        platform.serving.create_endpoint("churn-live", "churn:1", route="blue")
        platform.serving.deploy("churn-live", "churn:2", route="green")
        events = _actions(platform, "churn-live")
        with pytest.raises(ConfigurationError, match=r"us-east-1: \['ops-latency'\]"):
            native.start(platform, _canary("churn-live", "green", "blue"))
        assert _actions(platform, "churn-live") == events
        assert not platform.serving.deployment_history("churn-live")[-1].known_good
        _ops_alarm("ops-latency")
        native.start(platform, _canary("churn-live", "green", "blue"))
        deployed = make_client("sagemaker").describe_endpoint(EndpointName="churn-live")
        alarms = deployed["LastDeploymentConfig"]["AutoRollbackConfiguration"]["Alarms"]
        assert alarms == [{"AlarmName": "ops-errors"}, {"AlarmName": "ops-latency"}]


@pytest.mark.parametrize(
    ("first", "accepted"),
    [
        ({"blue": 50, "red": 40, "green": 10}, False),  # moves 40% off blue onto red
        ({"blue": 63, "red": 27, "green": 10}, True),  # blue 70 / red 30, scaled to 90%
        ({"blue": 61, "red": 29, "green": 10}, False),
    ],
)
def test_a_canary_step_must_keep_the_other_routes_current_split(
    platform: Platform,
    cloud: SageMakerBackend,
    live: str,
    tmp_path: Path,
    first: dict[str, int],
    accepted: bool,
) -> None:
    platform.register_model("churn", artifact(tmp_path, b"v3"))
    platform.serving.deploy(live, "churn:3", route="red")
    platform.serving.set_traffic(live, {"blue": 70, "green": 0, "red": 30})
    plan = TrafficPlan(
        endpoint=live,
        strategy=RolloutStrategy.CANARY,
        steps=[
            TrafficStep(weights=first, bake_seconds=60),
            TrafficStep(weights={"blue": 0, "red": 0, "green": 100}, bake_seconds=60),
        ],
    )
    current = platform.serving.get_endpoint(live)
    if accepted:
        cloud.check_native_plan(plan, current)
        return
    history = platform.serving.deployment_history(live)
    with pytest.raises(ValidationError, match="step 1 splits the other 90%"):
        cloud.check_native_plan(plan, current)
    with pytest.raises(ValidationError, match="step 1 splits the other 90%"):
        native.start(platform, plan)
    assert platform.serving.deployment_history(live) == history


def test_a_linear_plan_with_rounded_shares_of_the_other_routes_is_accepted(
    platform: Platform, cloud: SageMakerBackend, live: str, tmp_path: Path
) -> None:
    platform.register_model("churn", artifact(tmp_path, b"v3"))
    platform.serving.deploy(live, "churn:3", route="red")
    platform.serving.set_traffic(live, {"blue": 33, "green": 0, "red": 67})
    shares = (25, 50, 75)
    steps = [
        TrafficStep(weights={"blue": b, "red": 100 - share - b, "green": share}, bake_seconds=60)
        for share, b in zip(shares, (25, 16, 8), strict=True)  # 24.75, 16.5, 8.25 rounded
    ]
    plan = TrafficPlan(
        endpoint=live,
        strategy=RolloutStrategy.LINEAR,
        steps=[*steps, TrafficStep(weights={"green": 100}, bake_seconds=60)],
    )
    cloud.check_native_plan(plan, platform.serving.get_endpoint(live))


def _shadowed_by_red(platform: Platform, live: str, tmp_path: Path) -> None:
    """``live`` all on blue, mirrored to a new route ``red`` (churn:3) at 20%."""
    platform.register_model("churn", artifact(tmp_path, b"v3"))
    platform.serving.deploy(live, "churn:3", route="red")
    platform.serving.set_traffic(
        live, {"blue": 100, "green": 0, "red": 0}, shadow="red", shadow_percent=20
    )


def test_a_native_rollout_that_would_rename_the_production_variant_is_refused(
    platform: Platform,
    cloud: SageMakerBackend,
    live: str,
    sm: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _shadowed_by_red(platform, live, tmp_path)
    plan = _plan(live, RolloutStrategy.CANARY, (10, 60), (100, 60))
    why = r"production variants for \['green'\] where churn-live has them for \['blue'\]"
    with pytest.raises(ValidationError, match=why):
        cloud.check_native_plan(plan, platform.serving.get_endpoint(live))
    _refused_with_nothing_done(platform, cloud, sm, plan, why)
    monkeypatch.setattr(serving_module, "_require_same_variants", lambda *args: None)
    with pytest.raises(ValidationError, match=r"keep the production variant names.*\['blue'\]"):
        cloud.start_rollout(plan)  # SageMaker refuses it too


def test_a_native_rollout_onto_a_new_shadow_is_refused(
    platform: Platform, cloud: SageMakerBackend, live: str, tmp_path: Path
) -> None:
    platform.register_model("churn", artifact(tmp_path, b"v3"))
    platform.serving.deploy(live, "churn:3", route="red")
    plan = TrafficPlan(
        endpoint=live,
        strategy=RolloutStrategy.CANARY,
        steps=_plan(live, RolloutStrategy.CANARY, (10, 60), (100, 60)).steps,
        shadow="red",
        shadow_percent=20,
    )
    with pytest.raises(ValidationError, match=r"for \['green'\] where churn-live has them for"):
        cloud.check_native_plan(plan, platform.serving.get_endpoint(live))


def test_a_native_rollout_that_keeps_the_shadow_and_the_production_variant_keeps_both(
    platform: Platform, live: str, sm: Any, tmp_path: Path
) -> None:
    _shadowed_by_red(platform, live, tmp_path)
    native.start(platform, _plan(live, RolloutStrategy.BLUE_GREEN, (0, 60)))
    config = sm.describe_endpoint_config(
        EndpointConfigName=sm.describe_endpoint(EndpointName=live)["EndpointConfigName"]
    )
    assert [v["VariantName"] for v in config["ProductionVariants"]] == ["blue"]
    assert [v["VariantName"] for v in config["ShadowProductionVariants"]] == ["red"]


def test_an_all_at_once_plan_that_would_drop_the_shadow_is_refused(
    platform: Platform, cloud: SageMakerBackend, live: str, tmp_path: Path
) -> None:
    _shadowed_by_red(platform, live, tmp_path)
    history = platform.serving.deployment_history(live)
    events = _actions(platform, live)
    plan = _plan(live, RolloutStrategy.BLUE_GREEN, (50, 60))
    with pytest.raises(ValidationError, match="with the shadow 'red' kept"):
        native.start(platform, plan)
    with pytest.raises(ValidationError, match="with the shadow 'red' kept"):
        cloud.start_rollout(plan)
    assert platform.serving.deployment_history(live) == history
    assert _actions(platform, live) == events


def _canary(live: str, to: str, keep: str, **extra: Any) -> TrafficPlan:
    return TrafficPlan(
        endpoint=live,
        strategy=RolloutStrategy.CANARY,
        steps=[
            TrafficStep(weights={keep: 90, to: 10}, bake_seconds=300),
            TrafficStep(weights={keep: 0, to: 100}),
        ],
        **extra,
    )


def _actions(platform: Platform, endpoint: str) -> list[str]:
    return [e.action for e in platform.audit.events(subject=endpoint)]


def _traffic_differences(platform: Platform, endpoint: str) -> list[Difference]:
    return [
        d
        for d in platform.sync()
        if d.kind == DifferenceKind.TRAFFIC.value and d.subject == ENDPOINT_SUBJECT + endpoint
    ]


def test_a_native_rollout_is_gated_recorded_and_marked_known_good_when_it_succeeds(
    platform: Platform, live: str
) -> None:
    rollout_id = native.start(platform, _canary(live, "green", "blue"))
    latest = platform.serving.deployment_history(live)[-1]
    assert latest.traffic.weights == {"blue": 0, "green": 100}
    assert latest.reason == f"native rollout {rollout_id}"
    assert not latest.known_good
    assert _actions(platform, live)[-2:] == ["endpoint.known_good", "endpoint.rollout"]
    assert native.status(platform, live, rollout_id) is native.NativeRolloutStatus.SUCCEEDED
    assert platform.serving.deployment_history(live)[-1].known_good
    events = len(_actions(platform, live))
    assert native.status(platform, live, rollout_id) is native.NativeRolloutStatus.SUCCEEDED
    assert len(_actions(platform, live)) == events  # recorded once
    assert _traffic_differences(platform, live) == []
    with pytest.raises(NotFound, match="no native rollout"):
        native.status(platform, live, "endpoint-config-never-started")
    with pytest.raises(NotFound, match="no native rollout"):
        native.status(platform, live, rollout_id[:-1])  # a prefix of one names no rollout


def test_a_succeeded_native_rollout_stays_succeeded_once_the_endpoint_moves_on(
    platform: Platform, live: str, tmp_path: Path
) -> None:
    rollout_id = native.start(platform, _canary(live, "green", "blue"))
    assert native.status(platform, live, rollout_id) is native.NativeRolloutStatus.SUCCEEDED
    platform.register_model("churn", artifact(tmp_path, b"v3"))
    platform.serving.deploy(live, "churn:3", route="red")
    events = _actions(platform, live)
    assert native.status(platform, live, rollout_id) is native.NativeRolloutStatus.SUCCEEDED
    assert _actions(platform, live) == events


def test_changes_wait_until_a_native_rollouts_end_is_recorded(
    platform: Platform, live: str, sm: Any, tmp_path: Path
) -> None:
    rollout_id = native.start(platform, _canary(live, "green", "blue"))
    platform.register_model("churn", artifact(tmp_path, b"v3"))
    events = _actions(platform, live)
    with pytest.raises(Conflict, match=f"rollout-status {live} {rollout_id}"):
        platform.serving.deploy(live, "churn:3", route="red")
    with pytest.raises(Conflict, match="native rollout under way"):
        platform.serving.set_traffic(live, {"blue": 100, "green": 0})
    assert _actions(platform, live) == events
    assert native.status(platform, live, rollout_id) is native.NativeRolloutStatus.SUCCEEDED
    assert platform.serving.deployment_history(live)[-1].known_good
    assert _configs(sm) == [rollout_id]
    platform.serving.deploy(live, "churn:3", route="red")
    assert native.status(platform, live, rollout_id) is native.NativeRolloutStatus.SUCCEEDED


def test_a_capture_asked_for_waits_until_a_native_rollouts_end_is_recorded(
    platform: Platform, live: str, sm: Any
) -> None:
    """The rollout has ended in the cloud, its status not asked yet: a capture (a new config
    on SageMaker) would read as the cloud rolling it back."""
    rollout_id = native.start(platform, _canary(live, "green", "blue"))
    events = _actions(platform, live)
    capture = CaptureConfig(sample_percent=20)
    with pytest.raises(Conflict, match=f"rollout-status {live} {rollout_id}"):
        platform.migration.adopt_endpoint(live, reason="monitor it", capture=capture)
    assert _actions(platform, live) == events
    assert sm.describe_endpoint(EndpointName=live)["EndpointConfigName"] == rollout_id
    assert native.status(platform, live, rollout_id) is native.NativeRolloutStatus.SUCCEEDED
    platform.migration.adopt_endpoint(live, reason="monitor it", capture=capture)
    assert _actions(platform, live)[-1] == "endpoint.capture"
    assert native.status(platform, live, rollout_id) is native.NativeRolloutStatus.SUCCEEDED
    assert platform.monitoring.tickets() == []


def test_adopting_again_waits_until_a_native_rollouts_end_is_recorded(
    platform: Platform, live: str, sm: Any
) -> None:
    """The endpoint's weights changed in the console after the rollout ended: adopting that
    before its end is recorded would leave the end unknowable."""
    rollout_id = native.start(platform, _canary(live, "green", "blue"))
    sm.update_endpoint_weights_and_capacities(
        EndpointName=live,
        DesiredWeightsAndCapacities=[
            {"VariantName": "blue", "DesiredWeight": 1.0},
            {"VariantName": "green", "DesiredWeight": 1.0},
        ],
    )
    history = platform.serving.deployment_history(live)
    with pytest.raises(Conflict, match=f"rollout-status {live} {rollout_id}"):
        platform.migration.adopt_endpoint(live, reason="changed in the console")
    assert platform.serving.deployment_history(live) == history
    assert native.status(platform, live, rollout_id) is native.NativeRolloutStatus.SUCCEEDED
    assert platform.migration.adopt_endpoint(live, reason="changed in the console").adopted


def test_a_kill_during_a_native_rollout_leaves_its_end_unknown_and_unalerted(
    platform: Platform, live: str, fake: SageMakerFake
) -> None:
    platform.serving.set_traffic(live, {"blue": 0, "green": 100})
    fake.script_endpoint(live, ["Updating"] * 3 + ["InService"])
    rollout_id = native.start(platform, _canary(live, "blue", "green"))
    assert platform.serving.kill(live, reason="incident").status is EndpointStatus.KILLED
    assert native.status(platform, live, rollout_id) is native.NativeRolloutStatus.UNKNOWN
    platform.serving.unkill(live)
    assert native.status(platform, live, rollout_id) is native.NativeRolloutStatus.UNKNOWN
    assert platform.monitoring.tickets() == []
    assert "endpoint.rollback" not in _actions(platform, live)
    platform.serving.set_traffic(live, {"blue": 0, "green": 100})


def _configs(sm: Any) -> list[str]:
    return sorted(c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"])


def test_a_native_rollout_that_ends_retires_the_config_the_endpoint_left(
    platform: Platform, live: str, sm: Any, fake: SageMakerFake
) -> None:
    rollout_id = native.start(platform, _canary(live, "green", "blue"))
    assert len(_configs(sm)) == 2  # the one served before, and the rollout's
    assert native.status(platform, live, rollout_id) is native.NativeRolloutStatus.SUCCEEDED
    assert _configs(sm) == [rollout_id]
    assert native.status(platform, live, rollout_id) is native.NativeRolloutStatus.SUCCEEDED
    assert _configs(sm) == [rollout_id]
    models = sorted(m["ModelName"] for m in sm.list_models()["Models"])

    fake.script_endpoint(live, ["Updating", "InService"])
    plan = _canary(live, "blue", "green", sla={"p99_latency_ms": 250})
    back = native.start(platform, plan)
    make_client("cloudwatch").set_alarm_state(
        AlarmName=rollout_alarm_name(live, "blue", "p99-latency"),
        StateValue="ALARM",
        StateReason="slow",
    )
    assert native.status(platform, live, back) is native.NativeRolloutStatus.IN_PROGRESS
    assert native.status(platform, live, back) is native.NativeRolloutStatus.ROLLED_BACK
    assert _configs(sm) == [rollout_id]  # the rolled-back rollout's config is gone
    assert sorted(m["ModelName"] for m in sm.list_models()["Models"]) == models


def _throttled(cloud: SageMakerBackend, monkeypatch: pytest.MonkeyPatch, *operations: str) -> None:
    """Every call of ``operations`` the backend sends is throttled past its retries."""
    call = cloud._sm

    def throttled(name: str, **params: Any) -> dict[str, Any]:
        if name in operations:
            raise Throttled("Rate exceeded", "sagemaker")
        return call(name, **params)

    monkeypatch.setattr(cloud, "_sm", throttled)


def test_a_retirement_that_failed_is_retried_by_the_next_status_but_never_by_sync(
    platform: Platform, cloud: SageMakerBackend, live: str, sm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rollout_id = native.start(platform, _canary(live, "green", "blue"))
    left = _configs(sm)
    _throttled(cloud, monkeypatch, "delete_endpoint_config")
    assert native.status(platform, live, rollout_id) is native.NativeRolloutStatus.SUCCEEDED
    assert _configs(sm) == left
    monkeypatch.undo()
    platform.sync()
    assert _configs(sm) == left  # a read: nothing deleted
    assert native.status(platform, live, rollout_id) is native.NativeRolloutStatus.SUCCEEDED
    assert _configs(sm) == [rollout_id]
    assert native.status(platform, live, rollout_id) is native.NativeRolloutStatus.SUCCEEDED


def test_a_recorded_end_is_answered_when_retiring_what_it_left_fails(
    platform: Platform,
    cloud: SageMakerBackend,
    live: str,
    sm: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    rollout_id = native.start(platform, _canary(live, "green", "blue"))
    left = _configs(sm)
    warning = (
        f"native rollout {rollout_id} on {live}: retiring what it left in the cloud failed "
        "([sagemaker] Rate exceeded); the next `mintaka rollout-status` of it, or the next "
        "rollout on the endpoint, retries it"
    )
    with caplog.at_level(logging.WARNING, logger=native.__name__):
        _throttled(cloud, monkeypatch, "list_tags")  # the clean-up right after the end is recorded
        assert native.status(platform, live, rollout_id) is native.NativeRolloutStatus.SUCCEEDED
        assert platform.serving.deployment_history(live)[-1].known_good
        _throttled(cloud, monkeypatch, "describe_endpoint")  # the clean-up of a recorded end
        assert native.status(platform, live, rollout_id) is native.NativeRolloutStatus.SUCCEEDED
    assert [r.getMessage() for r in caplog.records] == [warning] * 2
    assert _configs(sm) == left
    monkeypatch.undo()
    assert native.status(platform, live, rollout_id) is native.NativeRolloutStatus.SUCCEEDED
    assert _configs(sm) == [rollout_id]


def test_a_retirement_that_failed_is_retried_by_the_next_rollout(
    platform: Platform, cloud: SageMakerBackend, live: str, sm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = native.start(platform, _canary(live, "green", "blue"))
    _throttled(cloud, monkeypatch, "delete_endpoint_config")
    assert native.status(platform, live, first) is native.NativeRolloutStatus.SUCCEEDED
    assert len(_configs(sm)) == 2
    monkeypatch.undo()
    second = native.start(platform, _canary(live, "blue", "green"))
    assert _configs(sm) == sorted([first, second])  # the config before the first is gone


def test_a_native_rollout_killed_before_its_status_is_retired_once_the_endpoint_serves(
    platform: Platform, live: str, sm: Any, fake: SageMakerFake
) -> None:
    fake.script_endpoint(live, ["Updating"] * 3 + ["InService"])
    rollout_id = native.start(platform, _canary(live, "green", "blue"))
    left = _configs(sm)
    assert len(left) == 2
    platform.serving.kill(live, reason="incident")
    assert native.status(platform, live, rollout_id) is native.NativeRolloutStatus.UNKNOWN
    assert _configs(sm) == left  # killed: the config its release re-creates it from is kept
    platform.serving.unkill(live)
    serving = sm.describe_endpoint(EndpointName=live)["EndpointConfigName"]
    assert native.status(platform, live, rollout_id) is native.NativeRolloutStatus.UNKNOWN
    assert _configs(sm) == [serving]
    assert platform.monitoring.tickets() == []


def test_a_native_rollout_whose_endpoint_failed_retires_only_what_it_does_not_serve(
    platform: Platform, live: str, sm: Any, fake: SageMakerFake
) -> None:
    before = sm.describe_endpoint(EndpointName=live)["EndpointConfigName"]
    fake.script_endpoint(live, ["Updating", "Failed"], failure_reason="capacity")
    rollout_id = native.start(platform, _canary(live, "green", "blue"))
    assert native.status(platform, live, rollout_id) is native.NativeRolloutStatus.IN_PROGRESS
    assert native.status(platform, live, rollout_id) is native.NativeRolloutStatus.FAILED
    described = sm.describe_endpoint(EndpointName=live)
    assert described["EndpointStatus"] == "Failed"
    assert described["EndpointConfigName"] == before  # the update did not take
    assert _configs(sm) == [before]  # the config it names is kept, the rollout's retired
    latest = platform.serving.deployment_history(live)[-1]
    assert latest.reason == f"the cloud failed native rollout {rollout_id}"
    [ticket] = platform.monitoring.tickets()
    assert ticket.signal == native.ALERT_SIGNAL
    assert native.status(platform, live, rollout_id) is native.NativeRolloutStatus.FAILED
    assert _configs(sm) == [before]


def test_sync_retires_nothing_a_native_rollout_left(platform: Platform, live: str, sm: Any) -> None:
    rollout_id = native.start(platform, _canary(live, "green", "blue"))
    left = _configs(sm)
    assert len(left) == 2
    platform.sync()
    assert native.in_flight(platform, live) is None
    assert _configs(sm) == left  # a read: nothing deleted
    assert native.status(platform, live, rollout_id) is native.NativeRolloutStatus.SUCCEEDED
    assert _configs(sm) == [rollout_id]


def test_a_config_another_endpoint_serves_is_never_retired(
    platform: Platform, live: str, sm: Any, tmp_path: Path
) -> None:
    platform.serving.set_traffic(live, {"blue": 100, "green": 0})
    shared = sm.describe_endpoint(EndpointName=live)["EndpointConfigName"]
    sm.create_endpoint(EndpointName="churn-copy", EndpointConfigName=shared)  # outside Mintaka
    rollout_id = native.start(platform, _canary(live, "green", "blue"))
    assert native.status(platform, live, rollout_id) is native.NativeRolloutStatus.SUCCEEDED
    assert shared in _configs(sm)
    models = sorted(m["ModelName"] for m in sm.list_models()["Models"])

    platform.register_model("churn", artifact(tmp_path, b"v3"))
    sm.update_endpoint(EndpointName="churn-copy", EndpointConfigName=rollout_id)
    platform.serving.deploy(live, "churn:3", route="red")  # a new config: the rollout's is left
    assert {shared, rollout_id} <= set(_configs(sm))
    assert set(models) <= {m["ModelName"] for m in sm.list_models()["Models"]}


def test_retiring_a_config_describes_only_the_endpoints_changed_since_it_was_made(
    platform: Platform, cloud: SageMakerBackend, live: str, sm: Any, fake: SageMakerFake
) -> None:
    """An endpoint can serve a config only once it was made: an endpoint unchanged since before
    then is not described to find out, so the calls do not grow with the account."""
    left = sm.describe_endpoint(EndpointName=live)["EndpointConfigName"]
    [variant, *_] = sm.describe_endpoint_config(EndpointConfigName=left)["ProductionVariants"]
    sm.create_endpoint_config(
        EndpointConfigName="unrelated-config",
        ProductionVariants=[{**variant, "VariantName": "AllTraffic"}],
    )
    for n in range(3):
        sm.create_endpoint(EndpointName=f"unrelated-{n}", EndpointConfigName="unrelated-config")
        fake.backend.endpoints[f"unrelated-{n}"].last_modified_time -= timedelta(days=1)
    sm.create_endpoint(EndpointName="unrelated-new", EndpointConfigName="unrelated-config")
    rollout_id = native.start(platform, _canary(live, "green", "blue"))
    described: list[str] = []

    def record(params: dict[str, Any], **_: Any) -> None:
        described.append(params["EndpointName"])

    events = cloud.clients.sagemaker.meta.events
    events.register("provide-client-params.sagemaker.DescribeEndpoint", record, "described")
    try:
        assert native.status(platform, live, rollout_id) is native.NativeRolloutStatus.SUCCEEDED
    finally:
        events.unregister("provide-client-params.sagemaker.DescribeEndpoint", unique_id="described")
    assert left not in _configs(sm)
    assert sorted(set(described) - {live}) == ["unrelated-new"]


def test_a_plan_started_again_after_a_rollback_is_another_rollout(
    platform: Platform, live: str, fake: SageMakerFake
) -> None:
    platform.serving.set_traffic(live, {"blue": 0, "green": 100})
    plan = _canary(live, "blue", "green", sla={"p99_latency_ms": 250})
    fake.script_endpoint(live, ["Updating", "InService"])
    first = native.start(platform, plan)
    cw = make_client("cloudwatch")
    alarm = rollout_alarm_name(live, "blue", "p99-latency")
    cw.set_alarm_state(AlarmName=alarm, StateValue="ALARM", StateReason="slow")
    assert native.status(platform, live, first) is native.NativeRolloutStatus.IN_PROGRESS
    assert native.status(platform, live, first) is native.NativeRolloutStatus.ROLLED_BACK
    cw.set_alarm_state(AlarmName=alarm, StateValue="OK", StateReason="fixed")
    again = native.start(platform, plan)
    assert again != first
    assert native.status(platform, live, again) is native.NativeRolloutStatus.SUCCEEDED
    assert native.status(platform, live, first) is native.NativeRolloutStatus.ROLLED_BACK


def test_native_starts_are_read_in_the_order_they_were_recorded(
    platform: Platform, live: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's ``reverse_unordered_selects`` returns rows of a query without ``ORDER BY`` in
    reverse: the starts still read oldest first."""
    started = []
    for to, keep in (("green", "blue"), ("blue", "green"), ("green", "blue")):
        started.append(native.start(platform, _canary(live, to, keep)))
        assert native.status(platform, live, started[-1]) is native.NativeRolloutStatus.SUCCEEDED
    read = platform.store.read

    @contextmanager
    def reversing() -> Iterator[Connection]:
        with read() as conn:
            conn.exec_driver_sql("PRAGMA reverse_unordered_selects=ON")
            try:
                yield conn
            finally:
                conn.exec_driver_sql("PRAGMA reverse_unordered_selects=OFF")

    monkeypatch.setattr(platform.store, "read", reversing)
    assert list(platform.serving.native_starts(live).values()) == started


def test_a_native_rollout_the_cloud_rolls_back_is_recorded_once_and_alerts(
    platform: Platform,
    cloud: SageMakerBackend,
    fake: SageMakerFake,
    live: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    platform.serving.set_traffic(live, {"blue": 0, "green": 100})
    fake.script_endpoint(live, ["Updating"] * 4 + ["InService"])  # a slow blue/green update
    plan = _canary(live, "blue", "green", sla={"p99_latency_ms": 250, "max_error_rate": 0.01})
    rollout_id = native.start(platform, plan, reason="blue back")
    assert native.status(platform, live, rollout_id) is native.NativeRolloutStatus.IN_PROGRESS
    # SageMaker reports the old variant weights until a blue/green update ends (the fake applies
    # them at once): while the cloud walks the plan its traffic differs from the recorded end.
    observe = cloud.observe_endpoint
    monkeypatch.setattr(
        cloud,
        "observe_endpoint",
        lambda name: observe(name).model_copy(
            update={"traffic": TrafficMap(weights={"blue": 0, "green": 100})}
        ),
    )
    assert native.in_flight(platform, live) == rollout_id
    assert _traffic_differences(platform, live) == []  # in flight: not a difference
    started = platform.serving.deployment_history(live)[-1]
    assert started.reason == f"native rollout {rollout_id}: blue back"
    make_client("cloudwatch").set_alarm_state(
        AlarmName=rollout_alarm_name(live, "blue", "error-rate"),
        StateValue="ALARM",
        StateReason="errors",
    )
    assert native.status(platform, live, rollout_id) is native.NativeRolloutStatus.ROLLED_BACK
    latest = platform.serving.deployment_history(live)[-1]
    assert latest.traffic.weights == {"blue": 0, "green": 100}  # what the cloud went back to
    assert latest.known_good
    assert latest.reason == f"the cloud rolled back native rollout {rollout_id}"
    [ticket] = platform.monitoring.tickets()
    assert ticket.signal == native.ALERT_SIGNAL
    events = len(_actions(platform, live))
    assert native.status(platform, live, rollout_id) is native.NativeRolloutStatus.ROLLED_BACK
    assert len(_actions(platform, live)) == events
    assert len(platform.monitoring.tickets()) == 1
    assert _traffic_differences(platform, live) == []
    assert native.in_flight(platform, live) is None
    monkeypatch.undo()
    make_client("sagemaker").update_endpoint_weights_and_capacities(
        EndpointName=live,
        DesiredWeightsAndCapacities=[
            {"VariantName": "blue", "DesiredWeight": 1.0},
            {"VariantName": "green", "DesiredWeight": 1.0},
        ],
    )
    [moved] = _traffic_differences(platform, live)  # no rollout in flight: a real difference
    assert moved.observed is not None
    assert moved.observed["weights"] == {"blue": 50, "green": 50}
    assert platform.verify_audit().ok


def test_a_rollback_asked_about_by_two_processes_at_once_is_recorded_and_alerted_once(
    platform: Platform,
    cloud: SageMakerBackend,
    live: str,
    tmp_path: Path,
    fake: SageMakerFake,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    platform.serving.set_traffic(live, {"blue": 0, "green": 100})
    fake.script_endpoint(live, ["Updating", "InService"])
    plan = _canary(live, "blue", "green", sla={"p99_latency_ms": 250})
    rollout_id = native.start(platform, plan)
    make_client("cloudwatch").set_alarm_state(
        AlarmName=rollout_alarm_name(live, "blue", "p99-latency"),
        StateValue="ALARM",
        StateReason="slow",
    )
    make_client("sagemaker").describe_endpoint(EndpointName=live)  # the cloud rolls back
    alerted: list[str] = []
    with sagemaker_platform(tmp_path / "home", seed=99) as other:
        monkeypatch.setattr(
            other.monitoring, "raise_alert", lambda signal, *a, **k: alerted.append(signal)
        )
        monkeypatch.setattr(
            platform.monitoring, "raise_alert", lambda signal, *a, **k: alerted.append(signal)
        )
        said = cloud.rollout_status

        def meanwhile(name: str, asked: str) -> str:
            answer = said(name, asked)
            native.status(other, live, rollout_id)  # the other process asks in between
            return answer

        monkeypatch.setattr(cloud, "rollout_status", meanwhile)
        assert native.status(platform, live, rollout_id) is native.NativeRolloutStatus.ROLLED_BACK
    undone = f"the cloud rolled back native rollout {rollout_id}"
    assert [d.reason for d in platform.serving.deployment_history(live)].count(undone) == 1
    assert alerted == [native.ALERT_SIGNAL]


def test_a_native_rollout_the_gate_refuses_never_reaches_the_cloud(
    platform: Platform, cloud: SageMakerBackend, live: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: list[TrafficPlan] = []
    monkeypatch.setattr(cloud, "start_rollout", started.append)
    gated: list[tuple[Any, ...]] = []

    def refuse(*args: Any, **kwargs: Any) -> None:
        gated.append(args)
        raise PolicyViolation("green's version is not approved")

    monkeypatch.setattr(platform.serving, "_gate", refuse)
    with pytest.raises(PolicyViolation, match="not approved"):
        native.start(platform, _canary(live, "green", "blue"))
    [(action, endpoint, _routes, traffic, *_rest)] = gated
    assert (action, endpoint) == ("endpoint.rollout", live)
    assert traffic.weights == {"blue": 0, "green": 100}  # the plan's final traffic
    with pytest.raises(ValidationError, match="not on"):
        native.start(platform, _canary(live, "purple", "blue"))
    assert started == []


def test_a_native_rollback_target_must_be_the_traffic_in_force_and_pass_the_gate(
    platform: Platform, live: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform.serving.set_traffic(live, {"blue": 100, "green": 0})
    events = _actions(platform, live)
    elsewhere = _canary(live, "green", "blue", rollback_to=TrafficMap(weights={"green": 100}))
    with pytest.raises(ValidationError, match="rolls back to the traffic in force"):
        native.start(platform, elsewhere)
    _nothing_marked(platform, live, events)
    gate = platform.serving._gate

    def refuse_rollback(action: str, *args: Any, **kwargs: Any) -> Any:
        if action == "endpoint.rollback":
            raise PolicyViolation("blue may not serve again")
        return gate(action, *args, **kwargs)

    monkeypatch.setattr(platform.serving, "_gate", refuse_rollback)
    in_force = TrafficMap(weights={"blue": 100, "green": 0})
    with pytest.raises(PolicyViolation, match="blue may not serve again"):
        native.start(platform, _canary(live, "green", "blue", rollback_to=in_force))
    _nothing_marked(platform, live, events)
    monkeypatch.undo()
    native.start(platform, _canary(live, "green", "blue", rollback_to=in_force))
    assert _actions(platform, live)[-2:] == ["endpoint.known_good", "endpoint.rollout"]


def test_a_native_rollback_target_is_checked_against_the_traffic_the_cloud_serves(
    platform: Platform, live: str, sm: Any
) -> None:
    platform.serving.set_traffic(live, {"blue": 100, "green": 0})
    sm.update_endpoint_weights_and_capacities(  # changed outside Mintaka
        EndpointName=live,
        DesiredWeightsAndCapacities=[
            {"VariantName": "blue", "DesiredWeight": 50.0},
            {"VariantName": "green", "DesiredWeight": 50.0},
        ],
    )
    events = _actions(platform, live)
    recorded = TrafficMap(weights={"blue": 100, "green": 0})
    plan = TrafficPlan(
        endpoint=live,
        strategy=RolloutStrategy.BLUE_GREEN,
        steps=[TrafficStep(weights={"blue": 0, "green": 100}, bake_seconds=60)],
        rollback_to=recorded,
    )
    with pytest.raises(ValidationError, match=r"rolls back to the traffic in force"):
        native.start(platform, plan)
    _nothing_marked(platform, live, events)


# -- monitoring ---------------------------------------------------------------------------------


def test_capture_is_configured_and_read_back_from_s3(
    cloud: SageMakerBackend, live: str, sm: Any
) -> None:
    cloud.configure_capture(live, CaptureConfig(sample_percent=20))
    config = sm.describe_endpoint_config(
        EndpointConfigName=sm.describe_endpoint(EndpointName=live)["EndpointConfigName"]
    )
    capture = config["DataCaptureConfig"]
    assert capture["InitialSamplingPercentage"] == 20
    assert capture["DestinationS3Uri"] == f"s3://{BUCKET}/mintaka/capture"
    lines = [
        {
            "captureData": {
                "endpointInput": {
                    "observedContentType": "application/json",
                    "mode": "INPUT",
                    "data": json.dumps({"inputs": {"a": i}}),
                    "encoding": "JSON",
                },
                "endpointOutput": {
                    "observedContentType": "application/json",
                    "mode": "OUTPUT",
                    "data": json.dumps({"predictions": [i]}),
                    "encoding": "JSON",
                },
            },
            "eventMetadata": {"eventId": f"ev-{i}", "inferenceTime": f"2026-01-01T00:0{i}:00Z"},
            "eventVersion": "0",
        }
        for i in range(3)
    ]
    make_client("s3").put_object(
        Bucket=BUCKET,
        Key=f"mintaka/capture/{live}/blue/2026/01/01/00/batch-1.jsonl",
        Body="\n".join(json.dumps(line) for line in lines).encode(),
    )
    records = cloud.read_captured(live)
    assert [(r.event_id, r.route, r.inputs, r.outputs) for r in records] == [
        (f"ev-{i}", "blue", {"inputs": {"a": i}}, {"predictions": [i]}) for i in range(3)
    ]
    since = datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
    assert [r.event_id for r in cloud.read_captured(live, since=since, limit=1)] == ["ev-1"]
    # the next config keeps capture on
    cloud.set_traffic(
        live, TrafficMap(weights={"green": 100, "blue": 0}, shadow="blue", shadow_percent=5)
    )
    current = sm.describe_endpoint(EndpointName=live)["EndpointConfigName"]
    kept = sm.describe_endpoint_config(EndpointConfigName=current)["DataCaptureConfig"]
    assert kept["EnableCapture"] is True


def test_metrics_are_read_from_cloudwatch_per_variant(cloud: SageMakerBackend, live: str) -> None:
    start = datetime.now(UTC) - timedelta(minutes=10)
    cw = make_client("cloudwatch")
    for variant, calls, errors, refused in (("blue", 40, 2, 5), ("green", 10, 0, 0)):
        dimensions = [
            {"Name": "EndpointName", "Value": live},
            {"Name": "VariantName", "Value": variant},
        ]
        cw.put_metric_data(
            Namespace="AWS/SageMaker",
            MetricData=[
                {
                    "MetricName": "Invocations",
                    "Dimensions": dimensions,
                    "Value": calls,
                    "Timestamp": start + timedelta(minutes=1),
                },
                {
                    "MetricName": "Invocation5XXErrors",
                    "Dimensions": dimensions,
                    "Value": errors,
                    "Timestamp": start + timedelta(minutes=1),
                },
                {
                    "MetricName": "Invocation4XXErrors",
                    "Dimensions": dimensions,
                    "Value": refused,
                    "Timestamp": start + timedelta(minutes=1),
                },
            ],
        )
    metrics = cloud.read_metrics(live, start, start + timedelta(minutes=10))
    assert metrics.requests == {"blue": 40, "green": 10}
    assert metrics.errors == {"blue": 2, "green": 0}  # the 4xx are no server errors
    assert metrics.invalid == {"blue": 5, "green": 0}


# -- identity, discovery, sync, pipelines --------------------------------------------------------


def test_whoami_is_an_authenticated_backend_identity(cloud: SageMakerBackend) -> None:
    me = cloud.whoami()
    assert me.source is IdentitySource.BACKEND
    assert me.authenticated
    assert me.detail["account"] == "123456789012"


def test_discovery_tells_unmanaged_resources_apart(
    cloud: SageMakerBackend, two_versions: str, sm: Any
) -> None:
    sm.create_model_package_group(ModelPackageGroupName="legacy")
    sm.create_model_package(ModelPackageGroupName="legacy", SourceUri="s3://elsewhere/model.tar.gz")
    found = {(r.kind, r.name): r.managed for r in cloud.discover()}
    assert found[(ResourceKind.MODEL, "legacy")] is False
    assert found[(ResourceKind.MODEL_VERSION, "legacy:1")] is False
    assert found[(ResourceKind.MODEL, "churn")] is True
    assert found[(ResourceKind.MODEL_VERSION, "churn:2")] is True


def test_out_of_band_approval_and_weights_are_observed(
    platform: Platform, cloud: SageMakerBackend, live: str, sm: Any
) -> None:
    arn = cloud.get_version("churn", 1).backend_ids["model_package"]
    sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Rejected")
    sm.update_endpoint_weights_and_capacities(
        EndpointName=live,
        DesiredWeightsAndCapacities=[
            {"VariantName": "blue", "DesiredWeight": 1.0},
            {"VariantName": "green", "DesiredWeight": 3.0},
        ],
    )
    observed = cloud.observe_model("churn")
    assert observed.versions[0].approval is ApprovalStatus.REJECTED
    assert cloud.observe_endpoint(live).traffic.weights == {"blue": 25, "green": 75}
    sm.delete_model_package(ModelPackageName=arn)
    assert ("version.missing", "churn:1") in {(d.kind, d.subject) for d in platform.sync()}


def test_pipeline_compiles_to_a_sagemaker_pipelines_definition(
    cloud: SageMakerBackend, sm: Any
) -> None:
    spec = PipelineSpec(
        name="train",
        parameters={"depth": 4},
        steps=[
            StepSpec(name="fit", entrypoint="pkg.steps:fit"),
            StepSpec(name="score", entrypoint="pkg.steps:score", depends_on=["fit"]),
        ],
    )
    native = cloud.compile(spec)
    run = cloud.submit(native, {"depth": "5"})
    stored = json.loads(sm.describe_pipeline(PipelineName="train")["PipelineDefinition"])
    assert [(s["Name"], s["Type"], s["DependsOn"]) for s in stored["Steps"]] == [
        ("fit", "Processing", []),
        ("score", "Processing", ["fit"]),
    ]
    assert stored["Parameters"] == [{"Name": "depth", "Type": "Integer", "DefaultValue": 4}]
    assert cloud.get_pipeline_run(run.id).pipeline == "train"


def test_lineage_is_contexts_and_associations(
    platform: Platform, cloud: SageMakerBackend, sm: Any, tmp_path: Path
) -> None:
    from mintaka_sagemaker.lineage import context_name

    from mintaka.domain.lineage import EdgeKind

    data = tmp_path / "train.csv"
    data.write_text("a,b\n1,2\n")
    dataset = platform.register_dataset("train", data)
    run = platform.start_run("exp", dataset_ids=[dataset.id])
    platform.end_run(run.id)
    version = platform.register_model("churn", artifact(tmp_path, b"w"), run_id=run.id)
    graph = platform.lineage_upstream("churn:1")
    cloud.push_lineage(list(graph.nodes), list(graph.edges))
    run_context = sm.describe_context(ContextName=context_name(f"run:{run.id}"))
    assert run_context["ContextType"] == "run"
    assert run_context["Source"]["SourceUri"] == f"mintaka:run:{run.id}"
    produced = sm.list_associations(SourceArn=run_context["ContextArn"])["AssociationSummaries"]
    assert [a["AssociationType"] for a in produced] == ["Produced"]
    assert cloud.read_lineage(f"model_version:{version.id}") == [
        e for e in graph.edges if e.kind is EdgeKind.PRODUCED
    ]


def test_a_change_that_never_settles_times_out_on_the_backends_clock(
    fake: SageMakerFake, tmp_path: Path
) -> None:
    """Waits are paced and bounded by the backend's clock, so a stuck update ends in a
    BackendError after ``wait_timeout_seconds`` of that clock, with no real waiting."""
    settings = {**SETTINGS, "poll_seconds": 5.0, "wait_timeout_seconds": 30.0}
    with sagemaker_platform(tmp_path / "home", settings) as platform:
        platform.register_model("churn", artifact(tmp_path, b"v1"))
        platform.register_model("churn", artifact(tmp_path, b"v2"))
        platform.serving.create_endpoint("churn-live", "churn:1", route="blue")
        cloud = platform.backend
        assert isinstance(cloud, SageMakerBackend)
        started = platform.clock.now()
        fake.script_endpoint("churn-live", ["Updating"] * 50)
        with pytest.raises(BackendError, match="still Updating after 30 s"):
            cloud.update_routes(
                "churn-live",
                [
                    *cloud.get_endpoint("churn-live").routes,
                    Route(name="green", model="churn", version=2),
                ],
                TrafficMap(weights={"blue": 100, "green": 0}),
            )
        assert platform.clock.now() - started == timedelta(seconds=30)


def test_endpoints_named_outside_mintaka_are_left_out_of_the_listing(
    live: str, cloud: SageMakerBackend, sm: Any
) -> None:
    deploy_without_registry(
        sm,
        "TeamChatApi",
        {"PrimaryContainer": {"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/chat:1"}},
    )
    assert [e.name for e in cloud.list_endpoints()] == [live]
    assert "TeamChatApi" in {r.name for r in cloud.discover()}


def test_a_reason_reading_like_a_native_rollout_is_no_rollout(
    platform: Platform, live: str
) -> None:
    """A caller's reason that starts as a native rollout's does neither hold the endpoint nor
    answer for a rollout: only a recorded start does."""
    platform.serving.set_traffic(
        live, {"blue": 50, "green": 50}, reason="native rollout canceled: done by hand"
    )
    platform.serving.set_traffic(live, {"blue": 100, "green": 0})
    with pytest.raises(NotFound, match="no native rollout 'canceled'"):
        native.status(platform, live, "canceled")
    assert platform.monitoring.tickets() == []


def test_a_native_rollout_on_an_endpoint_deleted_outside_says_how_to_end_it(
    platform: Platform, live: str, fake: SageMakerFake
) -> None:
    fake.script_endpoint(live, ["Updating"] * 3 + ["InService"])
    rollout_id = native.start(platform, _canary(live, "green", "blue"))
    make_client("sagemaker").delete_endpoint(EndpointName=live)
    with pytest.raises(NotFound, match=f"mintaka endpoints delete {live}"):
        native.status(platform, live, rollout_id)
    with pytest.raises(Conflict, match=f"mintaka endpoints delete {live}"):
        platform.serving.set_traffic(live, {"blue": 100, "green": 0})
    platform.serving.delete_endpoint(live)
    assert live not in [e.name for e in platform.serving.list_endpoints()]
