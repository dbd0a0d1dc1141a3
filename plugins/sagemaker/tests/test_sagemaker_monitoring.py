"""Model Monitor schedules someone else set up on SageMaker are read back (schedules, their runs)
and reported by discovery on the endpoints they watch; Mintaka never creates them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from mintaka_conformance.fakes.sagemaker import SageMakerFake, make_client
from mintaka_sagemaker.backend import SageMakerBackend
from mintaka_sagemaker.monitoring import parse_capture_line
from sagemaker_testkit import BUCKET, SETTINGS, model_artifact

from mintaka import Platform
from mintaka.domain.discovery import ResourceKind

T0 = datetime(2026, 11, 2, 8, tzinfo=UTC)


@pytest.fixture
def live(platform: Platform, tmp_path: Path) -> str:
    platform.register_model("churn", model_artifact(tmp_path, b"weights"))
    platform.serving.create_endpoint("churn-live", "churn:1", route="blue")
    return "churn-live"


def _schedule(name: str, endpoint: str) -> None:
    make_client("sagemaker").create_monitoring_schedule(
        MonitoringScheduleName=name,
        MonitoringScheduleConfig={
            "ScheduleConfig": {"ScheduleExpression": "cron(0 * ? * * *)"},
            "MonitoringJobDefinition": {
                "MonitoringInputs": [
                    {
                        "EndpointInput": {
                            "EndpointName": endpoint,
                            "LocalPath": "/opt/ml/processing/input",
                        }
                    }
                ],
                "MonitoringOutputConfig": {
                    "MonitoringOutputs": [
                        {
                            "S3Output": {
                                "S3Uri": f"s3://{BUCKET}/monitoring",
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
                "RoleArn": SETTINGS["role_arn"],
            },
        },
    )


def test_schedules_on_an_endpoint_are_read_back(
    cloud: SageMakerBackend, fake: SageMakerFake, live: str
) -> None:
    _schedule("churn-drift", live)
    _schedule("churn-quality", live)
    assert sorted(cloud.monitoring_schedules(live), key=lambda s: s["name"]) == [
        {"name": n, "status": "Scheduled", "type": "DataQuality", "endpoint": live}
        for n in ("churn-drift", "churn-quality")
    ]
    assert cloud.monitoring_schedules("elsewhere") == []


def test_a_schedules_runs_are_read_oldest_first(
    cloud: SageMakerBackend, fake: SageMakerFake, live: str
) -> None:
    _schedule("churn-drift", live)
    fake.add_monitoring_execution("churn-drift", "CompletedWithViolations", scheduled=T0)
    fake.add_monitoring_execution(
        "churn-drift", "Failed", scheduled=T0 - timedelta(hours=1), failure_reason="no capture"
    )
    runs = cloud.monitoring_executions("churn-drift")
    assert [(r["scheduled"], r["status"], r["failure_reason"]) for r in runs] == [
        (T0 - timedelta(hours=1), "Failed", "no capture"),
        (T0, "CompletedWithViolations", None),
    ]
    assert [r["status"] for r in cloud.monitoring_executions("churn-drift", since=T0)] == []
    later = cloud.monitoring_executions("churn-drift", since=T0 - timedelta(minutes=1))
    assert [r["status"] for r in later] == ["CompletedWithViolations"]


def test_discovery_names_the_monitors_watching_each_endpoint(
    cloud: SageMakerBackend, sm_endpoint: str, live: str
) -> None:
    _schedule("legacy-drift", sm_endpoint)
    endpoints = {r.name: r for r in cloud.discover() if r.kind is ResourceKind.ENDPOINT}
    assert endpoints[sm_endpoint].extra["monitoring_schedules"] == ["legacy-drift"]
    assert not endpoints[sm_endpoint].managed
    assert "monitoring_schedules" not in endpoints[live].extra


@pytest.fixture
def sm_endpoint(fake: SageMakerFake) -> str:
    """An endpoint made with plain boto3, outside Mintaka."""
    sm: Any = make_client("sagemaker")
    sm.create_model(
        ModelName="legacy",
        ExecutionRoleArn=SETTINGS["role_arn"],
        PrimaryContainer={"Image": SETTINGS["image_uri"]},
    )
    sm.create_endpoint_config(
        EndpointConfigName="legacy-config",
        ProductionVariants=[
            {
                "VariantName": "main",
                "ModelName": "legacy",
                "InstanceType": "ml.m5.large",
                "InitialInstanceCount": 1,
            }
        ],
    )
    sm.create_endpoint(EndpointName="legacy", EndpointConfigName="legacy-config")
    return "legacy"


def test_a_captured_record_names_the_variants_route() -> None:
    line = json.dumps(
        {
            "captureData": {
                "endpointInput": {"mode": "INPUT", "encoding": "JSON", "data": '{"x": 1}'},
                "endpointOutput": {"mode": "OUTPUT", "encoding": "JSON", "data": "[0.5]"},
            },
            "eventMetadata": {"eventId": "e-1", "inferenceTime": "2026-01-01T00:00:00Z"},
            "eventVersion": "0",
        }
    )
    record = parse_capture_line("churn-api", "AllTraffic", line)
    assert record is not None
    assert record.route == "alltraffic"
