"""The SageMaker moto extension behaves as the AWS reference describes, in-process and served."""

from __future__ import annotations

import pytest

pytest.importorskip("moto")

import json
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import moto
from botocore.exceptions import ClientError, ReadTimeoutError
from mintaka_conformance.fakes.sagemaker import (
    EXPECTED_MOTO_VERSION,
    Fault,
    FaultInjector,
    SageMakerFake,
    SageMakerServer,
    compatibility_problems,
    install,
    installed,
    is_installed,
    make_client,
    mock_sagemaker,
    sagemaker_server,
    uninstall,
)

ROLE = "arn:aws:iam::123456789012:role/sagemaker"
INFERENCE = {
    "Containers": [{"Image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/model:1"}],
    "SupportedContentTypes": ["application/json"],
    "SupportedResponseMIMETypes": ["application/json"],
}


# --- fixtures and helpers -----------------------------------------------------------------------


@pytest.fixture
def fake() -> Iterator[SageMakerFake]:
    with mock_sagemaker() as handle:
        yield handle


@pytest.fixture
def sm(fake: SageMakerFake) -> Any:
    return make_client("sagemaker")


@pytest.fixture
def rt(fake: SageMakerFake) -> Any:
    return make_client("sagemaker-runtime")


@pytest.fixture
def cw(fake: SageMakerFake) -> Any:
    return make_client("cloudwatch")


@pytest.fixture(scope="module")
def running_server() -> Iterator[SageMakerServer]:
    with sagemaker_server() as server:
        yield server


@pytest.fixture
def server(running_server: SageMakerServer) -> Iterator[SageMakerServer]:
    running_server.reset()
    yield running_server
    running_server.reset()


def _error_code(info: pytest.ExceptionInfo[ClientError]) -> str:
    return str(info.value.response["Error"]["Code"])


def _variant(name: str, weight: float | None = 1.0, count: int = 2) -> dict[str, Any]:
    variant: dict[str, Any] = {
        "VariantName": name,
        "ModelName": name,
        "InstanceType": "ml.m5.large",
        "InitialInstanceCount": count,
    }
    if weight is not None:
        variant["InitialVariantWeight"] = weight
    return variant


def _serving(name: str, *, model: str, count: int = 2) -> dict[str, Any]:
    """Production variant ``name`` serving ``model``: a blue/green update keeps the variant names
    and changes what they serve."""
    return {**_variant(name, count=count), "ModelName": model}


def _models(sm: Any, *names: str) -> None:
    for name in names:
        sm.create_model(ModelName=name, ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "img"})


def _endpoint(
    sm: Any,
    name: str,
    variants: list[dict[str, Any]],
    *,
    config: str | None = None,
    shadow: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> None:
    _models(sm, *[v["ModelName"] for v in [*variants, *(shadow or [])]])
    config = config or f"{name}-config"
    extra = {"ShadowProductionVariants": shadow} if shadow else {}
    sm.create_endpoint_config(
        EndpointConfigName=config, ProductionVariants=variants, **extra, **fields
    )
    sm.create_endpoint(EndpointName=name, EndpointConfigName=config)


def _package(sm: Any, group: str = "churn", **kwargs: Any) -> str:
    existing = sm.list_model_package_groups(NameContains=group)["ModelPackageGroupSummaryList"]
    if not any(g["ModelPackageGroupName"] == group for g in existing):
        sm.create_model_package_group(ModelPackageGroupName=group)
    arn = sm.create_model_package(
        ModelPackageGroupName=group, InferenceSpecification=INFERENCE, **kwargs
    )["ModelPackageArn"]
    return str(arn)


def _alarm(cw: Any, name: str) -> None:
    cw.put_metric_alarm(
        AlarmName=name,
        MetricName="Invocation5XXErrors",
        Namespace="AWS/SageMaker",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanOrEqualToThreshold",
    )


def _blue_green(kind: str = "ALL_AT_ONCE", **routing: Any) -> dict[str, Any]:
    return {"TrafficRoutingConfiguration": {"Type": kind, "WaitIntervalInSeconds": 0, **routing}}


def _invoke(rt: Any, endpoint: str, **kwargs: Any) -> tuple[str, dict[str, Any]]:
    response = rt.invoke_endpoint(
        EndpointName=endpoint, Body=b'{"rows": [[1, 2]]}', ContentType="application/json", **kwargs
    )
    return response["InvokedProductionVariant"], json.loads(response["Body"].read())


# --- pin: the moto this extension was written for -----------------------------------------------


def test_installed_moto_is_the_one_the_extension_was_written_for() -> None:
    """MUST fail, naming the internal, when an upstream moto change breaks the extension."""
    assert moto.__version__ == EXPECTED_MOTO_VERSION, compatibility_problems()[0]
    assert compatibility_problems() == []
    from mintaka_conformance.fakes.sagemaker import _compat, patching

    checked = {*_compat.WRAPPED_SAGEMAKER_OPERATIONS, *_compat.ADDED_SAGEMAKER_OPERATIONS}
    assert set(patching.SAGEMAKER_PATCHES) == checked, "every patched operation is checked"
    assert set(patching.RUNTIME_PATCHES) == set(_compat.WRAPPED_RUNTIME_OPERATIONS)


def test_compatibility_check_names_what_moved(monkeypatch: pytest.MonkeyPatch) -> None:
    from moto.sagemaker.responses import SageMakerResponse

    monkeypatch.setattr(moto, "__version__", "9.9.9")
    monkeypatch.delattr(SageMakerResponse, "create_endpoint_config")
    problems = compatibility_problems()
    assert any("moto 9.9.9 is installed" in p and EXPECTED_MOTO_VERSION in p for p in problems)
    assert any("'create_endpoint_config'" in p for p in problems)


def test_the_extension_is_installed_only_where_asked() -> None:
    from moto.sagemaker.responses import SageMakerResponse

    before = is_installed()
    with installed():
        with installed():
            assert hasattr(SageMakerResponse, "update_endpoint")
        assert is_installed()
    assert is_installed() == before
    if before:
        return
    assert not hasattr(SageMakerResponse, "update_endpoint")
    install()
    install()
    assert is_installed()
    with installed():
        pass
    assert is_installed(), "a scoped use leaves a permanent install() alone"
    uninstall()
    assert not hasattr(SageMakerResponse, "update_endpoint")


def test_moto_reset_clears_the_extension_state() -> None:
    with mock_sagemaker() as fake:
        fake.script_endpoint("ep", ["Creating", "InService"])
        assert fake.backend.__dict__.get("mintaka_sagemaker_state") is not None
    with mock_sagemaker() as fake:
        sm = make_client("sagemaker")
        _endpoint(sm, "ep", [_variant("blue")])
        assert sm.describe_endpoint(EndpointName="ep")["EndpointStatus"] == "InService"


# --- model registry -----------------------------------------------------------------------------


def test_update_model_package_changes_only_the_fields_given(sm: Any) -> None:
    arn = _package(sm, CustomerMetadataProperties={"team": "risk", "tier": "1"})
    sm.update_model_package(
        ModelPackageArn=arn, ModelApprovalStatus="Approved", ApprovalDescription="ok by ana"
    )
    sm.update_model_package(
        ModelPackageArn=arn,
        CustomerMetadataProperties={"stage": "prod"},
        CustomerMetadataPropertiesToRemove=["tier"],
    )
    described = sm.describe_model_package(ModelPackageName=arn)
    assert described["ModelApprovalStatus"] == "Approved"
    assert described["ApprovalDescription"] == "ok by ana"
    assert described["CustomerMetadataProperties"] == {"team": "risk", "stage": "prod"}
    assert described["InferenceSpecification"]["Containers"][0]["Image"].endswith("model:1")
    assert "LastModifiedTime" in described


def test_describe_model_package_includes_name_and_new_versions_await_approval(sm: Any) -> None:
    first = _package(sm)
    second = _package(sm)
    described = sm.describe_model_package(ModelPackageName=second)
    assert described["ModelPackageName"] == "churn"
    assert described["ModelPackageGroupName"] == "churn"
    assert described["ModelPackageVersion"] == 2
    assert described["ModelApprovalStatus"] == "PendingManualApproval"
    assert described["ModelPackageStatus"] == "Completed"
    listed = sm.list_model_packages(ModelPackageGroupName="churn")["ModelPackageSummaryList"]
    assert [(p["ModelPackageArn"], p["ModelPackageName"]) for p in listed] == [
        (first, "churn"),
        (second, "churn"),
    ]


def test_tags_work_on_a_versioned_package_arn(sm: Any) -> None:
    arn = _package(sm, Tags=[{"Key": "owner", "Value": "ana"}])
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": "stage", "Value": "staging"}])
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": "stage", "Value": "prod"}])
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [
        {"Key": "owner", "Value": "ana"},
        {"Key": "stage", "Value": "prod"},
    ]
    sm.delete_tags(ResourceArn=arn, TagKeys=["owner"])
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "stage", "Value": "prod"}]
    with pytest.raises(ClientError) as missing:
        sm.list_tags(ResourceArn=arn.replace("/1", "/9"))
    assert _error_code(missing) == "ValidationException"


@pytest.mark.parametrize("kind", ["model", "group", "endpoint-config", "endpoint"])
def test_creating_an_existing_name_raises_validation_exception(sm: Any, kind: str) -> None:
    _endpoint(sm, "churn", [_variant("blue")], config="churn-config")
    sm.create_model_package_group(ModelPackageGroupName="churn")
    create = {
        "model": lambda: _models(sm, "blue"),
        "group": lambda: sm.create_model_package_group(ModelPackageGroupName="churn"),
        "endpoint-config": lambda: sm.create_endpoint_config(
            EndpointConfigName="churn-config", ProductionVariants=[_variant("blue")]
        ),
        # Endpoint names are case-insensitive on create.
        "endpoint": lambda: sm.create_endpoint(
            EndpointName="CHURN", EndpointConfigName="churn-config"
        ),
    }[kind]
    with pytest.raises(ClientError) as error:
        create()
    assert _error_code(error) == "ValidationException"
    message = str(error.value)
    assert "already exist" in message
    assert "arn:aws:sagemaker:us-east-1:123456789012:" in message


def test_group_deletion_fails_while_it_has_versions(sm: Any) -> None:
    first = _package(sm)
    second = _package(sm)
    with pytest.raises(ClientError) as conflict:
        sm.delete_model_package_group(ModelPackageGroupName="churn")
    assert _error_code(conflict) == "ConflictException"
    sm.delete_model_package(ModelPackageName=second)
    with pytest.raises(ClientError) as gone:
        sm.describe_model_package(ModelPackageName=second)
    assert _error_code(gone) == "ValidationException"
    # A deleted version's number is never reused.
    third = _package(sm)
    assert third.endswith("/churn/3")
    sm.delete_model_package(ModelPackageName=first)
    sm.delete_model_package(ModelPackageName=third)
    sm.delete_model_package_group(ModelPackageGroupName="churn")
    assert sm.list_model_package_groups()["ModelPackageGroupSummaryList"] == []
    with pytest.raises(ClientError) as missing:
        sm.delete_model_package_group(ModelPackageGroupName="churn")
    assert _error_code(missing) == "ValidationException"


def test_create_model_package_is_idempotent_by_client_token(sm: Any) -> None:
    first = _package(sm, ClientToken="run-7-register")
    again = _package(sm, ClientToken="run-7-register")
    assert again == first
    assert (
        len(sm.list_model_packages(ModelPackageGroupName="churn")["ModelPackageSummaryList"]) == 1
    )


# --- endpoint configs, shadow variants ----------------------------------------------------------


def test_shadow_variant_is_kept_and_described(sm: Any) -> None:
    _endpoint(sm, "churn", [_variant("blue")], shadow=[_variant("candidate", count=1)])
    config = sm.describe_endpoint_config(EndpointConfigName="churn-config")
    assert [v["VariantName"] for v in config["ShadowProductionVariants"]] == ["candidate"]
    endpoint = sm.describe_endpoint(EndpointName="churn")
    assert [v["VariantName"] for v in endpoint["ShadowProductionVariants"]] == ["candidate"]
    assert [v["VariantName"] for v in endpoint["ProductionVariants"]] == ["blue"]


@pytest.mark.parametrize(
    ("production", "shadow"),
    [
        pytest.param(["blue"], ["s1", "s2"], id="two-shadow-variants"),
        pytest.param(["blue", "green"], ["s1"], id="shadow-beside-two-production-variants"),
        pytest.param(["blue"], ["blue"], id="shadow-reuses-a-production-name"),
        pytest.param(["blue"], ["unknown-model"], id="shadow-model-missing"),
    ],
)
def test_invalid_shadow_configurations_are_refused(
    sm: Any, production: list[str], shadow: list[str]
) -> None:
    _models(sm, "blue", "green", "s1", "s2")
    with pytest.raises(ClientError) as error:
        sm.create_endpoint_config(
            EndpointConfigName="bad",
            ProductionVariants=[_variant(n) for n in production],
            ShadowProductionVariants=[_variant(n) for n in shadow],
        )
    assert _error_code(error) == "ValidationException"
    with pytest.raises(ClientError):
        sm.describe_endpoint_config(EndpointConfigName="bad")


# --- scripted statuses --------------------------------------------------------------------------


def test_unscripted_resources_reach_their_final_status_on_the_first_describe(sm: Any) -> None:
    _endpoint(sm, "churn", [_variant("blue")])
    arn = _package(sm)
    assert sm.describe_endpoint(EndpointName="churn")["EndpointStatus"] == "InService"
    assert sm.describe_model_package(ModelPackageName=arn)["ModelPackageStatus"] == "Completed"


def test_scripted_endpoint_advances_one_step_per_describe(
    sm: Any, rt: Any, fake: SageMakerFake
) -> None:
    fake.script_endpoint("churn", ["Creating", "Creating", "InService"])
    _endpoint(sm, "churn", [_variant("blue")])
    listed = sm.list_endpoints()["Endpoints"]
    assert [e["EndpointStatus"] for e in listed] == ["Creating"]
    with pytest.raises(ClientError) as not_ready:
        _invoke(rt, "churn")
    assert _error_code(not_ready) == "ValidationError"
    seen = [sm.describe_endpoint(EndpointName="churn")["EndpointStatus"] for _ in range(4)]
    assert seen == ["Creating", "Creating", "InService", "InService"]
    assert _invoke(rt, "churn")[0] == "blue"


def test_scripted_endpoint_failure_reports_its_reason(sm: Any, fake: SageMakerFake) -> None:
    fake.script_endpoint(
        "churn", ["Creating", "Failed"], failure_reason="Image does not exist in ECR."
    )
    _endpoint(sm, "churn", [_variant("blue")])
    first = sm.describe_endpoint(EndpointName="churn")
    assert first["EndpointStatus"] == "Creating"
    assert "FailureReason" not in first
    failed = sm.describe_endpoint(EndpointName="churn")
    assert failed["EndpointStatus"] == "Failed"
    assert failed["FailureReason"] == "Image does not exist in ECR."
    with pytest.raises(ClientError) as refused:
        sm.update_endpoint(EndpointName="churn", EndpointConfigName="churn-config")
    assert _error_code(refused) == "ValidationException"


def test_scripted_model_package_statuses(sm: Any, fake: SageMakerFake) -> None:
    fake.script_model_package("churn", ["Pending", "InProgress", "Completed"])
    fake.script_model_package("churn", ["InProgress", "Failed"], failure_reason="bad image")
    ok = _package(sm)
    bad = _package(sm)
    assert [
        sm.describe_model_package(ModelPackageName=ok)["ModelPackageStatus"] for _ in range(4)
    ] == ["Pending", "InProgress", "Completed", "Completed"]
    sm.describe_model_package(ModelPackageName=bad)
    failed = sm.describe_model_package(ModelPackageName=bad)
    assert failed["ModelPackageStatus"] == "Failed"
    assert failed["ModelPackageStatusDetails"]["ValidationStatuses"][0]["FailureReason"] == (
        "bad image"
    )


def test_an_existing_package_can_be_scripted_by_arn(sm: Any, fake: SageMakerFake) -> None:
    arn = _package(sm)
    fake.script_model_package(arn, ["Deleting", "Completed"])
    assert [
        sm.describe_model_package(ModelPackageName=arn)["ModelPackageStatus"] for _ in range(3)
    ] == ["Deleting", "Completed", "Completed"]


def test_status_scripts_must_use_documented_statuses(fake: SageMakerFake) -> None:
    with pytest.raises(ValueError, match="Booting"):
        fake.script_endpoint("churn", ["Booting", "InService"])
    with pytest.raises(ValueError, match="at least one"):
        fake.script_model_package("churn", [])


# --- UpdateEndpoint -----------------------------------------------------------------------------


def test_update_endpoint_applies_the_new_config_and_reports_the_deployment(
    sm: Any, rt: Any, cw: Any
) -> None:
    _endpoint(sm, "churn", [_variant("blue")])
    _models(sm, "green")
    sm.create_endpoint_config(
        EndpointConfigName="churn-v2", ProductionVariants=[_serving("blue", model="green")]
    )
    _alarm(cw, "churn-5xx")
    deployment = {
        "BlueGreenUpdatePolicy": _blue_green(
            "LINEAR", LinearStepSize={"Type": "CAPACITY_PERCENT", "Value": 25}
        ),
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "churn-5xx"}]},
    }
    sm.update_endpoint(
        EndpointName="churn", EndpointConfigName="churn-v2", DeploymentConfig=deployment
    )
    described = sm.describe_endpoint(EndpointName="churn")
    assert described["EndpointStatus"] == "InService"
    assert described["EndpointConfigName"] == "churn-v2"
    assert [v["VariantName"] for v in described["ProductionVariants"]] == ["blue"]
    assert described["LastDeploymentConfig"] == deployment
    assert "FailureReason" not in described
    assert _invoke(rt, "churn")[0] == "blue"


def test_a_guardrail_update_must_keep_the_production_variant_names(sm: Any) -> None:
    """SageMaker refuses a blue/green update to a config naming other production variants; a
    plain update (no deployment config) may rename them."""
    _endpoint(sm, "churn", [_variant("blue")])
    _models(sm, "green")
    sm.create_endpoint_config(EndpointConfigName="churn-v2", ProductionVariants=[_variant("green")])
    with pytest.raises(ClientError) as refused:
        sm.update_endpoint(
            EndpointName="churn",
            EndpointConfigName="churn-v2",
            DeploymentConfig={"BlueGreenUpdatePolicy": _blue_green()},
        )
    assert _error_code(refused) == "ValidationException"
    assert "['blue'], got ['green']" in str(refused.value)
    assert sm.describe_endpoint(EndpointName="churn")["EndpointConfigName"] == "churn-config"
    sm.update_endpoint(EndpointName="churn", EndpointConfigName="churn-v2")
    assert sm.describe_endpoint(EndpointName="churn")["EndpointConfigName"] == "churn-v2"


def test_scripted_update_shows_the_pending_deployment_and_serves_the_old_config(
    sm: Any, rt: Any, fake: SageMakerFake
) -> None:
    _endpoint(sm, "churn", [_variant("blue")])
    _models(sm, "green")
    sm.create_endpoint_config(EndpointConfigName="churn-v2", ProductionVariants=[_variant("green")])
    fake.script_endpoint("churn", ["Updating", "Updating", "InService"])
    sm.update_endpoint(EndpointName="churn", EndpointConfigName="churn-v2")
    updating = sm.describe_endpoint(EndpointName="churn")
    assert updating["EndpointStatus"] == "Updating"
    assert updating["EndpointConfigName"] == "churn-config"
    assert updating["PendingDeploymentSummary"]["EndpointConfigName"] == "churn-v2"
    assert _invoke(rt, "churn")[0] == "blue"
    with pytest.raises(ClientError) as in_progress:
        sm.update_endpoint(EndpointName="churn", EndpointConfigName="churn-v2")
    assert "in-progress" in str(in_progress.value)
    sm.describe_endpoint(EndpointName="churn")
    done = sm.describe_endpoint(EndpointName="churn")
    assert (done["EndpointStatus"], done["EndpointConfigName"]) == ("InService", "churn-v2")
    assert "PendingDeploymentSummary" not in done


def test_update_rolls_back_when_a_rollback_alarm_fires_during_the_deployment(
    sm: Any, rt: Any, cw: Any, fake: SageMakerFake
) -> None:
    _endpoint(sm, "churn", [_variant("blue", count=4)])
    _models(sm, "green")
    sm.create_endpoint_config(
        EndpointConfigName="churn-v2", ProductionVariants=[_serving("blue", model="green", count=4)]
    )
    _alarm(cw, "churn-5xx")
    _alarm(cw, "churn-latency")
    deployment = {
        "BlueGreenUpdatePolicy": {
            **_blue_green("CANARY", CanarySize={"Type": "INSTANCE_COUNT", "Value": 1}),
            "TerminationWaitInSeconds": 60,
            "MaximumExecutionTimeoutInSeconds": 1800,
        },
        "AutoRollbackConfiguration": {
            "Alarms": [{"AlarmName": "churn-5xx"}, {"AlarmName": "churn-latency"}]
        },
    }
    fake.script_endpoint("churn", ["Updating", "InService"])
    sm.update_endpoint(
        EndpointName="churn", EndpointConfigName="churn-v2", DeploymentConfig=deployment
    )
    assert sm.describe_endpoint(EndpointName="churn")["EndpointStatus"] == "Updating"
    cw.set_alarm_state(AlarmName="churn-latency", StateValue="ALARM", StateReason="p99 > 2s")
    rolled_back = sm.describe_endpoint(EndpointName="churn")
    assert rolled_back["EndpointStatus"] == "InService"
    assert rolled_back["EndpointConfigName"] == "churn-config"
    assert "churn-latency" in rolled_back["FailureReason"]
    assert rolled_back["LastDeploymentConfig"] == deployment
    assert _invoke(rt, "churn")[0] == "blue"
    # With the alarm cleared, the same deployment (retained) goes through.
    cw.set_alarm_state(AlarmName="churn-latency", StateValue="OK", StateReason="recovered")
    sm.update_endpoint(
        EndpointName="churn", EndpointConfigName="churn-v2", RetainDeploymentConfig=True
    )
    done = sm.describe_endpoint(EndpointName="churn")
    assert (done["EndpointConfigName"], done.get("FailureReason")) == ("churn-v2", None)


def test_an_alarm_already_firing_rolls_back_an_unscripted_update(sm: Any, cw: Any) -> None:
    _endpoint(sm, "churn", [_variant("blue")])
    _models(sm, "green")
    sm.create_endpoint_config(EndpointConfigName="churn-v2", ProductionVariants=[_variant("green")])
    _alarm(cw, "churn-5xx")
    cw.set_alarm_state(AlarmName="churn-5xx", StateValue="ALARM", StateReason="errors")
    sm.update_endpoint(
        EndpointName="churn",
        EndpointConfigName="churn-v2",
        DeploymentConfig={"AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "churn-5xx"}]}},
    )
    described = sm.describe_endpoint(EndpointName="churn")
    assert described["EndpointConfigName"] == "churn-config"
    assert "churn-5xx" in described["FailureReason"]


@pytest.mark.parametrize(
    "deployment",
    [
        pytest.param(
            {
                "BlueGreenUpdatePolicy": _blue_green(
                    "CANARY", CanarySize={"Type": "CAPACITY_PERCENT", "Value": 60}
                )
            },
            id="canary-over-half",
        ),
        pytest.param(
            {
                "BlueGreenUpdatePolicy": _blue_green(
                    "CANARY", CanarySize={"Type": "INSTANCE_COUNT", "Value": 3}
                )
            },
            id="canary-instances-over-half",
        ),
        pytest.param({"BlueGreenUpdatePolicy": _blue_green("CANARY")}, id="canary-without-size"),
        pytest.param(
            {
                "BlueGreenUpdatePolicy": _blue_green(
                    "LINEAR", LinearStepSize={"Type": "CAPACITY_PERCENT", "Value": 5}
                )
            },
            id="linear-step-under-10-percent",
        ),
        pytest.param(
            {
                "BlueGreenUpdatePolicy": _blue_green(
                    "ALL_AT_ONCE", CanarySize={"Type": "CAPACITY_PERCENT", "Value": 10}
                )
            },
            id="all-at-once-with-canary-size",
        ),
        pytest.param(
            {
                "BlueGreenUpdatePolicy": _blue_green(),
                "RollingUpdatePolicy": {
                    "MaximumBatchSize": {"Type": "CAPACITY_PERCENT", "Value": 50},
                    "WaitIntervalInSeconds": 0,
                },
            },
            id="two-update-policies",
        ),
        pytest.param(
            {
                "BlueGreenUpdatePolicy": {
                    **_blue_green(),
                    "TerminationWaitInSeconds": 600,
                    "MaximumExecutionTimeoutInSeconds": 600,
                }
            },
            id="timeout-not-above-waits",
        ),
        pytest.param(
            {"AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "no-such-alarm"}]}},
            id="unknown-alarm",
        ),
    ],
)
def test_invalid_deployment_configs_are_refused(sm: Any, deployment: dict[str, Any]) -> None:
    _endpoint(sm, "churn", [_variant("blue")])
    _models(sm, "green")
    sm.create_endpoint_config(
        EndpointConfigName="churn-v2", ProductionVariants=[_variant("green", count=4)]
    )
    with pytest.raises(ClientError) as error:
        sm.update_endpoint(
            EndpointName="churn", EndpointConfigName="churn-v2", DeploymentConfig=deployment
        )
    assert _error_code(error) == "ValidationException"
    assert sm.describe_endpoint(EndpointName="churn")["EndpointConfigName"] == "churn-config"


def test_update_can_retain_the_running_variant_properties(sm: Any) -> None:
    _endpoint(sm, "churn", [_variant("blue", weight=1, count=2)])
    sm.update_endpoint_weights_and_capacities(
        EndpointName="churn",
        DesiredWeightsAndCapacities=[{"VariantName": "blue", "DesiredInstanceCount": 5}],
    )
    sm.create_endpoint_config(
        EndpointConfigName="churn-v2", ProductionVariants=[_variant("blue", weight=1, count=1)]
    )
    sm.update_endpoint(
        EndpointName="churn", EndpointConfigName="churn-v2", RetainAllVariantProperties=True
    )
    variant = sm.describe_endpoint(EndpointName="churn")["ProductionVariants"][0]
    assert variant["CurrentInstanceCount"] == 5


def test_update_of_a_missing_endpoint_or_config_fails(sm: Any) -> None:
    _endpoint(sm, "churn", [_variant("blue")])
    with pytest.raises(ClientError) as no_endpoint:
        sm.update_endpoint(EndpointName="nope", EndpointConfigName="churn-config")
    with pytest.raises(ClientError) as no_config:
        sm.update_endpoint(EndpointName="churn", EndpointConfigName="nope")
    assert _error_code(no_endpoint) == _error_code(no_config) == "ValidationException"


# --- UpdateEndpointWeightsAndCapacities ---------------------------------------------------------


def test_weights_and_capacities_change_only_what_each_variant_names(
    sm: Any, fake: SageMakerFake
) -> None:
    _endpoint(sm, "churn", [_variant("blue", weight=9, count=3), _variant("green", weight=1)])
    fake.script_endpoint("churn", ["Updating", "InService"])
    sm.update_endpoint_weights_and_capacities(
        EndpointName="churn",
        DesiredWeightsAndCapacities=[
            {"VariantName": "blue", "DesiredWeight": 5},
            {"VariantName": "green", "DesiredInstanceCount": 4},
        ],
    )
    updating = {
        v["VariantName"]: v
        for v in sm.describe_endpoint(EndpointName="churn")["ProductionVariants"]
    }
    assert (updating["blue"]["CurrentWeight"], updating["blue"]["DesiredWeight"]) == (9.0, 5.0)
    done = sm.describe_endpoint(EndpointName="churn")
    variants = {v["VariantName"]: v for v in done["ProductionVariants"]}
    assert done["EndpointStatus"] == "InService"
    assert (variants["blue"]["CurrentWeight"], variants["blue"]["CurrentInstanceCount"]) == (5.0, 3)
    assert (variants["green"]["CurrentWeight"], variants["green"]["CurrentInstanceCount"]) == (
        1.0,
        4,
    )
    with pytest.raises(ClientError) as unknown:
        sm.update_endpoint_weights_and_capacities(
            EndpointName="churn",
            DesiredWeightsAndCapacities=[{"VariantName": "red", "DesiredWeight": 1}],
        )
    assert _error_code(unknown) == "ValidationException"


# --- InvokeEndpoint -----------------------------------------------------------------------------


def test_invocations_follow_the_variant_weights(sm: Any, rt: Any, fake: SageMakerFake) -> None:
    _endpoint(sm, "churn", [_variant("blue", weight=3), _variant("green", weight=1)])
    answers = [_invoke(rt, "churn") for _ in range(8)]
    assert Counter(header for header, _ in answers) == {"blue": 6, "green": 2}
    for header, body in answers:
        assert body["variant"] == header
        assert body["model"] == header
        assert body["endpoint"] == "churn"
        assert body["predictions"] == {"rows": [[1, 2]]}
    assert [i.variant for i in fake.invocations("churn")] == [h for h, _ in answers]
    sm.update_endpoint_weights_and_capacities(
        EndpointName="churn",
        DesiredWeightsAndCapacities=[{"VariantName": "blue", "DesiredWeight": 0}],
    )
    assert {_invoke(rt, "churn")[0] for _ in range(4)} == {"green"}
    assert _invoke(rt, "churn", TargetVariant="blue")[0] == "blue"


def test_target_variant_and_model_handlers_answer_per_variant(
    sm: Any, rt: Any, fake: SageMakerFake
) -> None:
    _endpoint(sm, "churn", [_variant("blue"), _variant("green")])
    fake.set_invoke_handler("green", lambda body, variant: [0.9])
    assert _invoke(rt, "churn", TargetVariant="green") == (
        "green",
        {"endpoint": "churn", "variant": "green", "model": "green", "predictions": [0.9]},
    )
    assert all(i.targeted for i in fake.invocations("churn")), (
        "a TargetVariant call is recorded as targeted"
    )


def test_shadow_variants_receive_a_mirrored_copy(sm: Any, rt: Any, fake: SageMakerFake) -> None:
    _endpoint(sm, "churn", [_variant("blue")], shadow=[_variant("candidate", count=1)])
    assert {_invoke(rt, "churn")[0] for _ in range(3)} == {"blue"}
    mirrored = fake.invocations("churn", shadow=True)
    assert [i.variant for i in mirrored] == ["candidate"] * 3


def test_unknown_endpoint_or_variant_is_a_validation_error(sm: Any, rt: Any) -> None:
    _endpoint(sm, "churn", [_variant("blue")])
    with pytest.raises(ClientError) as no_endpoint:
        _invoke(rt, "nope")
    with pytest.raises(ClientError) as no_variant:
        _invoke(rt, "churn", TargetVariant="green")
    assert _error_code(no_endpoint) == _error_code(no_variant) == "ValidationError"
    assert no_endpoint.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "nope" in str(no_endpoint.value)


# --- InvokeEndpointAsync ------------------------------------------------------------------------

BUCKET = "async-io"
OUTPUTS = {"S3OutputPath": f"s3://{BUCKET}/outputs/", "S3FailurePath": f"s3://{BUCKET}/failures"}


def _async_endpoint(
    sm: Any, name: str, variants: list[dict[str, Any]], outputs: dict[str, str] = OUTPUTS
) -> Any:
    """An asynchronous endpoint writing to ``outputs``, and an S3 client with its bucket made."""
    s3 = make_client("s3")
    s3.create_bucket(Bucket=BUCKET)
    _endpoint(sm, name, variants, AsyncInferenceConfig={"OutputConfig": outputs})
    return s3


def _object(s3: Any, uri: str) -> bytes | None:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    try:
        return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    except s3.exceptions.NoSuchKey:
        return None


def _invoke_async(rt: Any, s3: Any, endpoint: str, request: bytes, key: str) -> dict[str, Any]:
    s3.put_object(Bucket=BUCKET, Key=key, Body=request)
    return dict(
        rt.invoke_endpoint_async(
            EndpointName=endpoint,
            InputLocation=f"s3://{BUCKET}/{key}",
            ContentType="application/json",
            InferenceId=f"id-{key}",
        )
    )


def test_async_invocations_read_s3_route_by_weight_and_write_the_output(
    sm: Any, rt: Any, fake: SageMakerFake
) -> None:
    s3 = _async_endpoint(sm, "batchy", [_variant("blue", weight=1), _variant("green", weight=1)])
    answers = [_invoke_async(rt, s3, "batchy", b'{"rows": [%d]}' % n, f"in/{n}") for n in (1, 2)]
    assert [a["ResponseMetadata"]["HTTPStatusCode"] for a in answers] == [202, 202]
    assert [a["InferenceId"] for a in answers] == ["id-in/1", "id-in/2"]
    outputs = [json.loads(_object(s3, a["OutputLocation"]) or b"null") for a in answers]
    assert outputs == [
        {"endpoint": "batchy", "variant": "blue", "model": "blue", "predictions": {"rows": [1]}},
        {"endpoint": "batchy", "variant": "green", "model": "green", "predictions": {"rows": [2]}},
    ]
    for answer in answers:
        assert answer["OutputLocation"].startswith(f"s3://{BUCKET}/outputs/")
        assert answer["OutputLocation"].endswith(".out")
        assert answer["FailureLocation"].startswith(f"s3://{BUCKET}/failures/")
        assert _object(s3, answer["FailureLocation"]) is None
    assert [(i.variant, i.body) for i in fake.invocations("batchy")] == [
        ("blue", b'{"rows": [1]}'),
        ("green", b'{"rows": [2]}'),
    ]


def test_a_failing_model_writes_its_failure_and_no_output(
    sm: Any, rt: Any, fake: SageMakerFake
) -> None:
    s3 = _async_endpoint(sm, "batchy", [_variant("blue")])

    def fails(body: bytes, variant: str) -> Any:
        raise RuntimeError("the model ran out of memory")

    fake.set_invoke_handler("blue", fails)
    answer = _invoke_async(rt, s3, "batchy", b"{}", "in/1")
    assert _object(s3, answer["FailureLocation"]) == b"the model ran out of memory"
    assert _object(s3, answer["OutputLocation"]) is None


def test_without_a_failure_path_no_failure_location_is_answered(sm: Any, rt: Any) -> None:
    outputs = {"S3OutputPath": f"s3://{BUCKET}/outputs"}
    s3 = _async_endpoint(sm, "batchy", [_variant("blue")], outputs)
    answer = _invoke_async(rt, s3, "batchy", b"{}", "in/1")
    assert "FailureLocation" not in answer
    assert _object(s3, answer["OutputLocation"]) is not None


def test_async_and_real_time_endpoints_refuse_each_others_calls(sm: Any, rt: Any) -> None:
    s3 = _async_endpoint(sm, "batchy", [_variant("blue")])
    _endpoint(sm, "live", [_variant("green")])
    s3.put_object(Bucket=BUCKET, Key="in/1", Body=b"{}")
    refused = []
    for call in (
        lambda: _invoke(rt, "batchy"),
        lambda: rt.invoke_endpoint_async(EndpointName="live", InputLocation=f"s3://{BUCKET}/in/1"),
        lambda: rt.invoke_endpoint_async(
            EndpointName="batchy", InputLocation=f"s3://{BUCKET}/missing"
        ),
        lambda: rt.invoke_endpoint_async(EndpointName="nope", InputLocation=f"s3://{BUCKET}/in/1"),
        lambda: rt.invoke_endpoint_async(
            EndpointName="batchy", InputLocation=f"s3://{BUCKET}/in/1", Body=b"{}"
        ),
    ):
        with pytest.raises(ClientError) as error:
            call()
        assert error.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        refused.append((_error_code(error), str(error.value)))
    assert {code for code, _ in refused} == {"ValidationError"}
    messages = [message for _, message in refused]
    assert "InvokeEndpointAsync" in messages[0]
    assert "InvokeEndpoint." in messages[1]
    assert f"s3://{BUCKET}/missing" in messages[2]
    assert "nope" in messages[3]
    assert "mutually exclusive" in messages[4]


def test_an_inline_body_is_served_without_an_input_object(sm: Any, rt: Any) -> None:
    s3 = _async_endpoint(sm, "batchy", [_variant("blue")])
    answer = rt.invoke_endpoint_async(EndpointName="batchy", Body=b'{"rows": [3]}')
    assert json.loads(_object(s3, answer["OutputLocation"]) or b"{}")["predictions"] == {
        "rows": [3]
    }
    with pytest.raises(ClientError, match="128000"):
        rt.invoke_endpoint_async(EndpointName="batchy", Body=b"x" * 128_001)


def test_held_async_results_are_written_when_released(
    sm: Any, rt: Any, fake: SageMakerFake
) -> None:
    s3 = _async_endpoint(sm, "batchy", [_variant("blue")])
    fake.hold_async_results()
    answers = [_invoke_async(rt, s3, "batchy", b"{}", f"in/{n}") for n in (1, 2)]
    assert [_object(s3, a["OutputLocation"]) for a in answers] == [None, None]
    assert fake.release_async_results() == 2
    assert all(_object(s3, a["OutputLocation"]) for a in answers)
    later = _invoke_async(rt, s3, "batchy", b"{}", "in/3")  # no longer held
    assert _object(s3, later["OutputLocation"]) is not None
    assert fake.release_async_results() == 0


def test_moto_reset_drops_held_async_requests() -> None:
    with mock_sagemaker() as fake:
        fake.hold_async_results()
    with mock_sagemaker() as fake:
        s3 = _async_endpoint(make_client("sagemaker"), "batchy", [_variant("blue")])
        answer = _invoke_async(make_client("sagemaker-runtime"), s3, "batchy", b"{}", "in/1")
        assert _object(s3, answer["OutputLocation"]) is not None
        assert fake.release_async_results() == 0


# --- faults and retries -------------------------------------------------------------------------


def test_thirty_percent_throttling_completes_within_the_retry_budget(fake: SageMakerFake) -> None:
    budget = 4
    faults = FaultInjector(seed=20261127, throttling=0.3, max_consecutive=budget - 1)
    sm = make_client("sagemaker", max_attempts=budget, faults=faults)
    started = time.perf_counter()
    group = sm.create_model_package_group(ModelPackageGroupName="churn")
    arns, retries = [], group["ResponseMetadata"]["RetryAttempts"]
    for _ in range(60):
        response = sm.create_model_package(
            ModelPackageGroupName="churn", InferenceSpecification=INFERENCE
        )
        retries += response["ResponseMetadata"]["RetryAttempts"]
        arns.append(response["ModelPackageArn"])
        described = sm.describe_model_package(ModelPackageName=response["ModelPackageArn"])
        retries += described["ResponseMetadata"]["RetryAttempts"]
    elapsed = time.perf_counter() - started
    throttled = faults.faults(Fault.THROTTLING)
    assert 0.2 < len(throttled) / len(faults.history) < 0.4
    assert retries == len(throttled), "every throttled attempt was retried, and only those"
    # A throttled attempt never reached moto: exactly one version per call, numbered 1..60.
    assert [a.rsplit("/", 1)[1] for a in arns] == [str(n) for n in range(1, 61)]
    assert elapsed < 5, "zero backoff: retries do not sleep"


def test_the_same_seed_gives_the_same_fault_schedule(fake: SageMakerFake) -> None:
    histories = []
    for _ in range(2):
        faults = FaultInjector(seed=7, throttling=0.3, server_errors=0.2, max_consecutive=2)
        sm = make_client("sagemaker", faults=faults)
        for _ in range(20):
            sm.list_model_package_groups()
        histories.append(faults.history)
    assert histories[0] == histories[1]
    assert {a.fault for a in histories[0]} >= {
        None,
        Fault.THROTTLING,
    }


def test_server_errors_are_retried_as_transient(fake: SageMakerFake) -> None:
    faults = FaultInjector(script=[Fault.SERVICE_UNAVAILABLE, Fault.INTERNAL_FAILURE])
    sm = make_client("sagemaker", max_attempts=3, faults=faults)
    response = sm.create_model_package_group(ModelPackageGroupName="churn")
    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    assert len(sm.list_model_package_groups()["ModelPackageGroupSummaryList"]) == 1


def test_a_throttled_invocation_never_reaches_the_endpoint(sm: Any, fake: SageMakerFake) -> None:
    _endpoint(sm, "churn", [_variant("blue")])
    faults = FaultInjector(script=[Fault.THROTTLING, Fault.SERVICE_UNAVAILABLE])
    rt = make_client("sagemaker-runtime", faults=faults)
    response = rt.invoke_endpoint(EndpointName="churn", Body=b"[1]")
    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    assert len(fake.invocations("churn")) == 1


def test_an_exhausted_budget_raises_a_clean_botocore_error(fake: SageMakerFake) -> None:
    faults = FaultInjector(script=[Fault.THROTTLING] * 3, operations={"CreateModelPackageGroup"})
    sm = make_client("sagemaker", max_attempts=3, faults=faults)
    with pytest.raises(ClientError) as throttled:
        sm.create_model_package_group(ModelPackageGroupName="churn")
    assert _error_code(throttled) == "ThrottlingException"
    assert throttled.value.response["ResponseMetadata"]["RetryAttempts"] == 2
    assert throttled.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "reached max retries: 2" in str(throttled.value)
    assert sm.list_model_package_groups()["ModelPackageGroupSummaryList"] == []


def test_a_lost_response_is_retried_and_the_client_token_keeps_one_version(
    fake: SageMakerFake,
) -> None:
    faults = FaultInjector(script=[Fault.LOST_RESPONSE], operations={"CreateModelPackage"})
    sm = make_client("sagemaker", faults=faults)
    sm.create_model_package_group(ModelPackageGroupName="churn")
    # boto3 fills CreateModelPackage's ClientToken once per call, so the retry reuses it.
    response = sm.create_model_package(
        ModelPackageGroupName="churn", InferenceSpecification=INFERENCE
    )
    assert response["ResponseMetadata"]["RetryAttempts"] == 1
    assert response["ModelPackageArn"].endswith("/churn/1")
    listed = sm.list_model_packages(ModelPackageGroupName="churn")["ModelPackageSummaryList"]
    assert len(listed) == 1


def test_a_lost_response_without_idempotency_surfaces_already_exists(fake: SageMakerFake) -> None:
    faults = FaultInjector(script=[Fault.LOST_RESPONSE], operations={"CreateModelPackageGroup"})
    sm = make_client("sagemaker", faults=faults)
    with pytest.raises(ClientError) as exists:
        sm.create_model_package_group(ModelPackageGroupName="churn")
    # The first attempt created the group; the retry is told it exists: reconcile, do not fail.
    assert "already exists" in str(exists.value)
    assert exists.value.response["ResponseMetadata"]["RetryAttempts"] == 1
    assert sm.describe_model_package_group(ModelPackageGroupName="churn")


def test_responses_lost_on_every_attempt_raise_read_timeout(fake: SageMakerFake) -> None:
    faults = FaultInjector(lost_responses=1.0, operations={"CreateModelPackageGroup"})
    sm = make_client("sagemaker", max_attempts=2, faults=faults)
    with pytest.raises(ReadTimeoutError):
        sm.create_model_package_group(ModelPackageGroupName="churn")
    assert [a.fault for a in faults.history] == [Fault.LOST_RESPONSE] * 2
    assert len(sm.list_model_package_groups()["ModelPackageGroupSummaryList"]) == 1


def test_make_client_refuses_to_reach_aws_without_a_mock() -> None:
    with pytest.raises(RuntimeError, match="refusing"):
        make_client("sagemaker")


def test_make_client_sets_the_retry_policy_and_timeouts(fake: SageMakerFake) -> None:
    client = make_client("sagemaker", max_attempts=7, connect_timeout=0.5, read_timeout=2)
    config = client.meta.config
    assert config.retries == {"mode": "standard", "total_max_attempts": 7}
    assert (config.connect_timeout, config.read_timeout) == (0.5, 2)


# --- moto's server mode -------------------------------------------------------------------------


def test_server_binds_loopback(server: SageMakerServer) -> None:
    assert server.endpoint_url.startswith("http://127.0.0.1:")


def test_server_fixes_the_registry_gaps(server: SageMakerServer) -> None:
    sm = make_client("sagemaker", endpoint_url=server.endpoint_url)
    arn = _package(sm)
    sm.update_model_package(ModelPackageArn=arn, ModelApprovalStatus="Approved")
    sm.update_model_package(ModelPackageArn=arn, CustomerMetadataProperties={"k": "v"})
    described = sm.describe_model_package(ModelPackageName=arn)
    assert (described["ModelPackageName"], described["ModelApprovalStatus"]) == (
        "churn",
        "Approved",
    )
    sm.add_tags(ResourceArn=arn, Tags=[{"Key": "stage", "Value": "prod"}])
    assert sm.list_tags(ResourceArn=arn)["Tags"] == [{"Key": "stage", "Value": "prod"}]
    with pytest.raises(ClientError) as duplicate:
        sm.create_model_package_group(ModelPackageGroupName="churn")
    assert _error_code(duplicate) == "ValidationException"
    with pytest.raises(ClientError) as conflict:
        sm.delete_model_package_group(ModelPackageGroupName="churn")
    assert _error_code(conflict) == "ConflictException"


def test_server_scripted_update_rolls_back_on_alarm(server: SageMakerServer) -> None:
    url = server.endpoint_url
    sm, cw = make_client("sagemaker", endpoint_url=url), make_client("cloudwatch", endpoint_url=url)
    rt = make_client("sagemaker-runtime", endpoint_url=url)
    server.fake.script_endpoint("churn", ["Creating", "InService"])
    _endpoint(sm, "churn", [_variant("blue")], shadow=[_variant("candidate", count=1)])
    assert [sm.describe_endpoint(EndpointName="churn")["EndpointStatus"] for _ in range(2)] == [
        "Creating",
        "InService",
    ]
    _models(sm, "green")
    sm.create_endpoint_config(
        EndpointConfigName="churn-v2", ProductionVariants=[_serving("blue", model="green")]
    )
    _alarm(cw, "churn-5xx")
    server.fake.script_endpoint("churn", ["Updating", "InService"])
    sm.update_endpoint(
        EndpointName="churn",
        EndpointConfigName="churn-v2",
        DeploymentConfig={
            "BlueGreenUpdatePolicy": _blue_green(),
            "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "churn-5xx"}]},
        },
    )
    assert sm.describe_endpoint(EndpointName="churn")["EndpointStatus"] == "Updating"
    cw.set_alarm_state(AlarmName="churn-5xx", StateValue="ALARM", StateReason="errors")
    rolled_back = sm.describe_endpoint(EndpointName="churn")
    assert rolled_back["EndpointConfigName"] == "churn-config"
    assert "churn-5xx" in rolled_back["FailureReason"]
    assert [v["VariantName"] for v in rolled_back["ShadowProductionVariants"]] == ["candidate"]
    assert _invoke(rt, "churn")[0] == "blue"


def test_server_invocations_route_per_variant(server: SageMakerServer) -> None:
    sm = make_client("sagemaker", endpoint_url=server.endpoint_url)
    rt = make_client("sagemaker-runtime", endpoint_url=server.endpoint_url)
    _endpoint(sm, "churn", [_variant("blue", weight=1), _variant("green", weight=1)])
    assert [_invoke(rt, "churn")[0] for _ in range(4)] == ["blue", "green", "blue", "green"]
    assert _invoke(rt, "churn", TargetVariant="green")[1]["variant"] == "green"
    with pytest.raises(ClientError) as missing:
        _invoke(rt, "nope")
    assert _error_code(missing) == "ValidationError"


def test_server_async_invocations_write_their_output(server: SageMakerServer) -> None:
    sm = make_client("sagemaker", endpoint_url=server.endpoint_url)
    rt = make_client("sagemaker-runtime", endpoint_url=server.endpoint_url)
    s3 = make_client("s3", endpoint_url=server.endpoint_url)
    s3.create_bucket(Bucket=BUCKET)
    _endpoint(sm, "batchy", [_variant("blue")], AsyncInferenceConfig={"OutputConfig": OUTPUTS})
    answer = _invoke_async(rt, s3, "batchy", b'{"rows": [1]}', "in/1")
    assert json.loads(_object(s3, answer["OutputLocation"]) or b"{}")["variant"] == "blue"
    with pytest.raises(ClientError) as refused:
        _invoke(rt, "batchy")
    assert _error_code(refused) == "ValidationError"


def test_server_faults_throttle_and_lose_responses(server: SageMakerServer) -> None:
    faults = FaultInjector(
        script=[Fault.THROTTLING, Fault.LOST_RESPONSE], operations={"CreateModelPackage"}
    )
    sm = make_client("sagemaker", endpoint_url=server.endpoint_url, faults=faults)
    sm.create_model_package_group(ModelPackageGroupName="churn")
    response = sm.create_model_package(
        ModelPackageGroupName="churn", InferenceSpecification=INFERENCE
    )
    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    listed = sm.list_model_packages(ModelPackageGroupName="churn")["ModelPackageSummaryList"]
    assert [p["ModelPackageArn"] for p in listed] == [response["ModelPackageArn"]]
    exhausted = FaultInjector(throttling=1.0)
    throttled = make_client(
        "sagemaker", endpoint_url=server.endpoint_url, max_attempts=2, faults=exhausted
    )
    with pytest.raises(ClientError) as error:
        throttled.list_model_package_groups()
    assert _error_code(error) == "ThrottlingException"
