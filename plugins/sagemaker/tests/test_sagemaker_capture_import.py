"""Capture files read back from S3: late and out of order, with a torn line, and attributed to
the version that answered."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from mintaka_conformance.fakes.sagemaker import make_client
from mintaka_sagemaker.backend import SageMakerBackend
from sagemaker_testkit import Calls, model_artifact
from sqlalchemy import select

from mintaka import Platform
from mintaka.domain.monitoring import CaptureConfig
from mintaka.store.schema import predictions


def _line(event_id: str, at: str, row: dict[str, Any]) -> bytes:
    return (
        json.dumps(
            {
                "captureData": {
                    "endpointInput": {"data": json.dumps({"inputs": [row]}), "encoding": "JSON"},
                    "endpointOutput": {
                        "data": json.dumps({"predictions": [1]}),
                        "encoding": "JSON",
                    },
                },
                "eventMetadata": {"eventId": event_id, "inferenceTime": at},
                "eventVersion": "0",
            }
        ).encode()
        + b"\n"
    )


def _setup(platform: Platform, cloud: SageMakerBackend, sm: Any, tmp_path: Path) -> tuple[str, str]:
    platform.register_model("churn", model_artifact(tmp_path, b"weights"))
    platform.serving.create_endpoint("churn-live", "churn:1", route="blue")
    cloud.configure_capture("churn-live", CaptureConfig(sample_percent=100))
    config = sm.describe_endpoint(EndpointName="churn-live")["EndpointConfigName"]
    dest = sm.describe_endpoint_config(EndpointConfigName=config)["DataCaptureConfig"][
        "DestinationS3Uri"
    ]
    variant = sm.describe_endpoint(EndpointName="churn-live")["ProductionVariants"][0][
        "VariantName"
    ]
    bucket, _, prefix = dest.removeprefix("s3://").partition("/")
    return bucket, f"{prefix.strip('/')}/churn-live/{variant}/2030/01/01/00/"


def _count(platform: Platform) -> int:
    with platform.store.read() as conn:
        return len(
            conn.execute(
                select(predictions.c.id).where(predictions.c.endpoint == "churn-live")
            ).all()
        )


def test_a_capture_file_that_lands_late_is_still_imported(
    platform: Platform, cloud: SageMakerBackend, sm: Any, tmp_path: Path
) -> None:
    bucket, root = _setup(platform, cloud, sm, tmp_path)
    s3 = make_client("s3")
    s3.put_object(
        Bucket=bucket,
        Key=root + "b.jsonl",
        Body=_line("e-late-2", "2030-01-01T00:00:10.000000Z", {"x": 2.0}),
    )
    assert platform.monitoring.import_captured("churn-live") == 1
    # SageMaker flushes another instance's / variant's buffer later, with an earlier time
    s3.put_object(
        Bucket=bucket,
        Key=root + "a.jsonl",
        Body=_line("e-early-1", "2030-01-01T00:00:05.000000Z", {"x": 1.0}),
    )
    assert platform.monitoring.import_captured("churn-live") == 1
    assert _count(platform) == 2
    assert platform.monitoring.import_captured("churn-live") == 0  # nothing twice


def test_a_torn_capture_line_is_skipped_and_the_rest_imported(
    platform: Platform, cloud: SageMakerBackend, sm: Any, tmp_path: Path
) -> None:
    bucket, root = _setup(platform, cloud, sm, tmp_path)
    s3 = make_client("s3")
    good = _line("e-good", "2030-01-01T00:00:05.000000Z", {"x": 1.0})
    s3.put_object(
        Bucket=bucket, Key=root + "a.jsonl", Body=good + b'{"captureData": {"endpointInput"\n'
    )
    assert platform.monitoring.import_captured("churn-live") == 1


def test_captured_traffic_is_attributed_to_the_version_that_answered(
    platform: Platform, cloud: SageMakerBackend, sm: Any, tmp_path: Path
) -> None:
    bucket, root = _setup(platform, cloud, sm, tmp_path)  # churn:1 on blue
    answered = platform.clock.now() + timedelta(minutes=10)
    for weights in (b"w2", b"w3"):
        platform.register_model("churn", model_artifact(tmp_path, weights))
    platform.clock.advance(3600)  # type: ignore[attr-defined]
    # a blue/green switch before the monitoring runner imports: blue now serves churn:3
    platform.serving.deploy("churn-live", "churn:2", route="green")
    platform.serving.set_traffic("churn-live", {"blue": 0, "green": 100})
    platform.serving.retire_route("churn-live", "blue")
    platform.serving.deploy("churn-live", "churn:3", route="blue")
    stamp = answered.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    make_client("s3").put_object(
        Bucket=bucket, Key=root + "a.jsonl", Body=_line("e-blue", stamp, {"x": 1.0})
    )
    assert platform.monitoring.import_captured("churn-live") == 1
    with platform.store.read() as conn:
        got = conn.execute(
            select(predictions.c.route, predictions.c.version).where(
                predictions.c.endpoint == "churn-live"
            )
        ).all()
    assert [tuple(r) for r in got] == [("blue", 1)]


def test_a_later_import_downloads_only_the_hours_of_its_look_back_window(
    platform: Platform, cloud: SageMakerBackend, sm: Any, tmp_path: Path
) -> None:
    bucket, root = _setup(platform, cloud, sm, tmp_path)
    variant_root = root.removesuffix("2030/01/01/00/")
    s3 = make_client("s3")
    s3.put_object(
        Bucket=bucket,
        Key=variant_root + "2030/01/01/00/old.jsonl",
        Body=_line("e-old", "2030-01-01T00:00:05.000000Z", {"x": 1.0}),
    )
    s3.put_object(
        Bucket=bucket,
        Key=variant_root + "2030/01/03/00/new.jsonl",
        Body=_line("e-new", "2030-01-03T00:00:05.000000Z", {"x": 2.0}),
    )
    assert platform.monitoring.import_captured("churn-live") == 2
    s3.put_object(
        Bucket=bucket,
        Key=variant_root + "2030/01/02/23/late.jsonl",
        Body=_line("e-late", "2030-01-02T23:59:00.000000Z", {"x": 3.0}),
    )
    with Calls(cloud) as sent:
        # the newest record is 2030-01-03T00:00:05: the look-back window opens a day earlier
        assert platform.monitoring.import_captured("churn-live") == 1
    assert sent.count("GetObject") == 2  # the late file and the newest, never the old one
    assert _count(platform) == 3
