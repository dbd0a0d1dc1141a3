"""Monitors and signals shared by the monitoring tests (a uniquely named module: every test
folder's ``conftest`` is imported as ``conftest``, so helpers imported by name live here)."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from artifact_kit import MakeArtifact

from mintaka import Platform
from mintaka.domain.monitoring import MonitorSpec, Signal, SignalKind
from mintaka.store.schema import predictions

LogPredictions = Callable[[Sequence[tuple[dict[str, Any], Any]]], list[str]]


def scoring_monitor(*signals: Signal) -> MonitorSpec:
    """A monitor of model ``credit`` on endpoint ``scoring``, where ``log_predictions`` writes."""
    return MonitorSpec(endpoint="scoring", model="credit", signals=list(signals))


def drift_signal(**overrides: Any) -> Signal:
    """A PSI drift signal on ``income`` above 0.2, owned by ``oncall``; ``overrides`` set the
    other fields or replace these."""
    values: dict[str, Any] = {
        "name": "income-drift",
        "kind": SignalKind.DRIFT,
        "metric": "psi:income",
        "threshold": 0.2,
        "owner": "oncall",
    }
    values.update(overrides)
    return Signal(**values)


def log_on(
    platform: Platform,
    route: str,
    version: int,
    rows: Sequence[dict[str, Any]],
    outputs: Sequence[Any] | None = None,
) -> None:
    """Log ``rows`` as answered by ``route`` of ``scoring``, serving ``credit:<version>``, with
    ``outputs`` (one a row; 0.5 each when not given)."""
    answers = [0.5] * len(rows) if outputs is None else list(outputs)
    found = platform.get_model_version("credit", version)
    at = platform.clock.now().isoformat()
    with platform.store.write() as conn:
        conn.execute(
            predictions.insert(),
            [
                {
                    "id": platform.ids.new("pred"),
                    "endpoint": "scoring",
                    "route": route,
                    "model": "credit",
                    "version": version,
                    "version_id": found.id,
                    "input_digest": "sha256:" + "0" * 64,
                    "inputs": row,
                    "output": output,
                    "status": "ok",
                    "shadow": 0,
                    "latency_ms": 1.0,
                    "at": at,
                }
                for row, output in zip(rows, answers, strict=True)
            ],
        )


def write_training(
    directory: Path, rows: Sequence[dict[str, Any]], name: str = "train.csv"
) -> Path:
    """A training CSV ``name`` of ``rows`` in ``directory`` (made when missing), its columns
    those of the first row."""
    directory.mkdir(parents=True, exist_ok=True)
    train = directory / name
    with train.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return train


def register_trained_credit(
    platform: Platform,
    make_servable: MakeArtifact,
    train: Path,
    *,
    dataset: str = "applications",
    artifact: bytes = b"v1",
    **options: Any,
) -> str:
    """Register ``train`` as ``dataset`` and the next version of ``credit`` (a servable made of
    ``artifact``) trained on it, with ``options``; the dataset id, which drift compares with."""
    found = platform.register_dataset(dataset, train)
    platform.register_model(
        "credit", make_servable(artifact), flavor="pyfunc", dataset_ids=[found.id], **options
    )
    return found.id


def serve_credit(
    platform: Platform, make_servable: MakeArtifact, train: Path, **options: Any
) -> str:
    """``credit:1``, trained on ``train`` (dataset ``applications``), served on ``scoring``
    (route ``blue``); the dataset id."""
    dataset_id = register_trained_credit(platform, make_servable, train, **options)
    platform.serving.create_endpoint("scoring", "credit:1", route="blue")
    return dataset_id
