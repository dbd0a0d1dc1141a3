"""Model Monitor schedules and executions in the moto extension."""

from __future__ import annotations

import pytest

pytest.importorskip("moto")

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import ClientError
from mintaka_conformance.fakes.sagemaker import SageMakerFake, make_client, mock_sagemaker

ROLE = "arn:aws:iam::123456789012:role/sagemaker"
T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)


@pytest.fixture
def fake() -> Iterator[SageMakerFake]:
    with mock_sagemaker() as handle:
        yield handle


@pytest.fixture
def sm(fake: SageMakerFake) -> Any:
    client = make_client("sagemaker")
    client.create_model(ModelName="m", ExecutionRoleArn=ROLE, PrimaryContainer={"Image": "img"})
    client.create_endpoint_config(
        EndpointConfigName="churn-config",
        ProductionVariants=[
            {
                "VariantName": "blue",
                "ModelName": "m",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    client.create_endpoint(EndpointName="churn", EndpointConfigName="churn-config")
    return client


def _job(endpoint: str = "churn") -> dict[str, Any]:
    return {
        "MonitoringInputs": [
            {"EndpointInput": {"EndpointName": endpoint, "LocalPath": "/opt/ml/processing/input"}}
        ],
        "MonitoringOutputConfig": {
            "MonitoringOutputs": [
                {
                    "S3Output": {
                        "S3Uri": "s3://reports/churn",
                        "LocalPath": "/opt/ml/processing/output",
                    }
                }
            ]
        },
        "MonitoringResources": {
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "VolumeSizeInGB": 20,
            }
        },
        "MonitoringAppSpecification": {"ImageUri": "monitor-image"},
        "RoleArn": ROLE,
    }


def _schedule(sm: Any, name: str = "churn-drift", endpoint: str = "churn") -> str:
    return str(
        sm.create_monitoring_schedule(
            MonitoringScheduleName=name,
            MonitoringScheduleConfig={
                "ScheduleConfig": {"ScheduleExpression": "cron(0 * ? * * *)"},
                "MonitoringJobDefinition": _job(endpoint),
            },
        )["MonitoringScheduleArn"]
    )


def _code(info: pytest.ExceptionInfo[ClientError]) -> str:
    return str(info.value.response["Error"]["Code"])


def test_a_schedule_on_an_endpoint_is_created_and_described(sm: Any) -> None:
    arn = _schedule(sm)
    assert arn == "arn:aws:sagemaker:us-east-1:123456789012:monitoring-schedule/churn-drift"
    described = sm.describe_monitoring_schedule(MonitoringScheduleName="churn-drift")
    assert (
        described["MonitoringScheduleStatus"],
        described["EndpointName"],
        described["MonitoringType"],
    ) == ("Scheduled", "churn", "DataQuality")
    assert "LastMonitoringExecutionSummary" not in described


def test_schedule_names_are_unique_and_endpoints_must_exist(sm: Any) -> None:
    _schedule(sm)
    with pytest.raises(ClientError) as info:
        _schedule(sm)
    assert _code(info) == "ResourceInUse"
    with pytest.raises(ClientError) as info:
        _schedule(sm, "other", endpoint="nowhere")
    assert _code(info) == "ValidationException"
    with pytest.raises(ClientError) as info:
        sm.create_monitoring_schedule(
            MonitoringScheduleName="both",
            MonitoringScheduleConfig={
                "MonitoringJobDefinition": _job(),
                "MonitoringJobDefinitionName": "defined",
            },
        )
    assert _code(info) == "ValidationException"


def test_a_named_job_definition_gives_the_schedule_its_endpoint(sm: Any) -> None:
    sm.create_data_quality_job_definition(
        JobDefinitionName="churn-quality",
        DataQualityAppSpecification={"ImageUri": "monitor-image"},
        DataQualityJobInput={
            "EndpointInput": {"EndpointName": "churn", "LocalPath": "/opt/ml/processing/input"}
        },
        DataQualityJobOutputConfig={
            "MonitoringOutputs": [
                {"S3Output": {"S3Uri": "s3://r/q", "LocalPath": "/opt/ml/processing/output"}}
            ]
        },
        JobResources={
            "ClusterConfig": {
                "InstanceCount": 1,
                "InstanceType": "ml.m5.large",
                "VolumeSizeInGB": 20,
            }
        },
        RoleArn=ROLE,
    )
    sm.create_monitoring_schedule(
        MonitoringScheduleName="by-name",
        MonitoringScheduleConfig={
            "MonitoringJobDefinitionName": "churn-quality",
            "MonitoringType": "DataQuality",
        },
    )
    listed = sm.list_monitoring_schedules(EndpointName="churn")["MonitoringScheduleSummaries"]
    assert [(s["MonitoringScheduleName"], s["MonitoringJobDefinitionName"]) for s in listed] == [
        ("by-name", "churn-quality")
    ]


def test_scripted_schedule_statuses_advance_one_per_describe(sm: Any, fake: SageMakerFake) -> None:
    fake.script_monitoring_schedule(
        "churn-drift", ["Pending", "Pending", "Failed"], failure_reason="no capture"
    )
    _schedule(sm)
    seen = [sm.describe_monitoring_schedule(MonitoringScheduleName="churn-drift") for _ in range(3)]
    assert [s["MonitoringScheduleStatus"] for s in seen] == ["Pending", "Failed", "Failed"]
    assert seen[-1]["FailureReason"] == "no capture"
    with pytest.raises(ValueError, match="ScheduleStatus"):
        fake.script_monitoring_schedule("x", ["Running"])


def test_executions_are_listed_filtered_and_summarised(sm: Any, fake: SageMakerFake) -> None:
    _schedule(sm)
    _schedule(sm, "churn-quality")
    fake.add_monitoring_execution("churn-drift", scheduled=T0)
    fake.add_monitoring_execution(
        "churn-drift", "CompletedWithViolations", scheduled=T0 + timedelta(hours=1)
    )
    fake.add_monitoring_execution(
        "churn-quality", "Failed", scheduled=T0, failure_reason="capture missing"
    )
    drift = sm.list_monitoring_executions(
        MonitoringScheduleName="churn-drift", SortBy="ScheduledTime", SortOrder="Ascending"
    )["MonitoringExecutionSummaries"]
    assert [e["MonitoringExecutionStatus"] for e in drift] == [
        "Completed",
        "CompletedWithViolations",
    ]
    assert all(e["ProcessingJobArn"].split(":")[5].startswith("processing-job/") for e in drift)
    failed = sm.list_monitoring_executions(EndpointName="churn", StatusEquals="Failed")
    assert [e["FailureReason"] for e in failed["MonitoringExecutionSummaries"]] == [
        "capture missing"
    ]
    late = sm.list_monitoring_executions(ScheduledTimeAfter=T0 + timedelta(minutes=30))
    assert len(late["MonitoringExecutionSummaries"]) == 1
    last = sm.describe_monitoring_schedule(MonitoringScheduleName="churn-drift")
    assert last["LastMonitoringExecutionSummary"]["MonitoringExecutionStatus"] == (
        "CompletedWithViolations"
    )
    with pytest.raises(ValueError, match="ExecutionStatus"):
        fake.add_monitoring_execution("churn-drift", "Done")


def test_a_deleted_schedule_is_gone_and_its_history_stays(sm: Any, fake: SageMakerFake) -> None:
    _schedule(sm)
    fake.add_monitoring_execution("churn-drift", scheduled=T0)
    sm.delete_monitoring_schedule(MonitoringScheduleName="churn-drift")
    for call in (sm.describe_monitoring_schedule, sm.delete_monitoring_schedule):
        with pytest.raises(ClientError) as info:
            call(MonitoringScheduleName="churn-drift")
        assert _code(info) == "ResourceNotFound"
    assert sm.list_monitoring_schedules()["MonitoringScheduleSummaries"] == []
    history = sm.list_monitoring_executions(MonitoringScheduleName="churn-drift")
    assert len(history["MonitoringExecutionSummaries"]) == 1


def test_schedules_are_paged(sm: Any) -> None:
    for i in range(3):
        _schedule(sm, f"s{i}")
    pages = sm.get_paginator("list_monitoring_schedules").paginate(
        SortBy="Name", SortOrder="Ascending", PaginationConfig={"PageSize": 2}
    )
    names = [[s["MonitoringScheduleName"] for s in p["MonitoringScheduleSummaries"]] for p in pages]
    assert names == [["s0", "s1"], ["s2"]]
