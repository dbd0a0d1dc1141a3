"""Core monitors run on SageMaker traffic: the runner imports what data capture wrote to S3 into
the prediction log, once, and the drift signal sees it."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from mintaka_sagemaker.backend import SageMakerBackend
from sagemaker_testkit import model_artifact
from sqlalchemy import select

from mintaka import ManualClock, Platform
from mintaka.domain.monitoring import CaptureConfig, MonitorSpec, Signal, SignalKind
from mintaka.store.schema import predictions


def _training_data(path: Path, rows: int = 400) -> Path:
    rng = np.random.default_rng(3)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["income", "age"])
        for income, age in rng.normal(size=(rows, 2)):
            writer.writerow([f"{income:.5f}", f"{age:.5f}"])
    return path


def test_captured_traffic_feeds_the_drift_monitor(
    platform: Platform, cloud: SageMakerBackend, tmp_path: Path
) -> None:
    data = platform.register_dataset("applicants", _training_data(tmp_path / "train.csv"))
    run = platform.start_run("churn", dataset_ids=[data.id])
    platform.register_model("churn", model_artifact(tmp_path, b"weights"), run_id=run.id)
    platform.serving.create_endpoint("churn-live", "churn:1", route="blue")
    cloud.configure_capture("churn-live", CaptureConfig(sample_percent=100))
    platform.monitoring.add_monitor(
        MonitorSpec(
            endpoint="churn-live",
            model="churn",
            signals=[
                Signal(
                    name="income-drift",
                    kind=SignalKind.DRIFT,
                    metric="psi:income",
                    threshold=0.2,
                    window="1h",
                    owner="oncall",
                )
            ],
        )
    )
    rng = np.random.default_rng(4)
    for _ in range(4):
        rows = [{"income": float(i) + 3.0, "age": float(a)} for i, a in rng.normal(size=(50, 2))]
        platform.serving.invoke("churn-live", rows)
    # the fake stamps captures with the wall clock; bring the platform's clock past them
    clock = platform.clock
    assert isinstance(clock, ManualClock)
    clock.advance((datetime.now(UTC) - clock.now()).total_seconds() + 60)
    report = platform.monitoring.run_once()
    [alert] = report.alerts
    assert alert.value > 0.2
    with platform.store.read() as conn:
        imported = conn.execute(
            select(predictions.c.route, predictions.c.version, predictions.c.inputs).where(
                predictions.c.endpoint == "churn-live"
            )
        ).all()
    assert len(imported) == 200
    assert {(r.route, r.version) for r in imported} == {("blue", 1)}
    assert set(imported[0].inputs) == {"income", "age"}
    assert platform.monitoring.import_captured("churn-live") == 0  # nothing twice
    actions = [e.action for e in platform.audit.events()]
    assert actions.count("monitor.capture.import") == 1


def test_asking_again_for_the_capture_an_endpoint_has_leaves_it_on_its_config(
    platform: Platform, cloud: SageMakerBackend, sm: Any, tmp_path: Path
) -> None:
    platform.register_model("churn", model_artifact(tmp_path, b"weights"))
    platform.serving.create_endpoint("churn-live", "churn:1", route="blue")

    def config() -> str:
        return str(sm.describe_endpoint(EndpointName="churn-live")["EndpointConfigName"])

    cloud.configure_capture("churn-live", CaptureConfig(enabled=False))
    assert "DataCaptureConfig" not in sm.describe_endpoint_config(EndpointConfigName=config())
    cloud.configure_capture("churn-live", CaptureConfig(sample_percent=50))
    captured = config()
    cloud.configure_capture("churn-live", CaptureConfig(sample_percent=50))
    assert config() == captured
    for changed in (
        CaptureConfig(sample_percent=20),
        CaptureConfig(sample_percent=20, capture_outputs=False),
        CaptureConfig(sample_percent=20, capture_outputs=False, destination="s3://other/cap"),
        CaptureConfig(enabled=False),
    ):
        before = config()
        cloud.configure_capture("churn-live", changed)
        assert config() != before
        capture = sm.describe_endpoint_config(EndpointConfigName=config())["DataCaptureConfig"]
        assert capture["EnableCapture"] is changed.enabled
    off = config()
    cloud.configure_capture("churn-live", CaptureConfig(enabled=False, sample_percent=5))
    assert config() == off  # capture off is off, whatever else it says
