from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from monitoring_kit import LogPredictions, drift_signal, scoring_monitor
from sklearn.linear_model import LogisticRegression

from mintaka import ManualClock, Platform
from mintaka.domain.registry import Signature
from mintaka.flavors import sklearn as sklearn_flavor

FEATURES = ("income", "debt")


def _data(rng: np.random.Generator, n: int, shift: float = 0.0) -> np.ndarray:
    values = rng.normal(size=(n, 2))
    values[:, 0] += shift
    return values


def test_drift_of_the_prediction_itself_is_judged_against_the_models_own_training_scores(
    platform: Platform, clock: ManualClock, log_predictions: LogPredictions, tmp_path: Path
) -> None:
    rng = np.random.default_rng(7)
    train = _data(rng, 2000)
    labels = (train[:, 0] - train[:, 1] > 0).astype(int)
    source = tmp_path / "train.csv"
    with source.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*FEATURES, "label"])
        writer.writerows([[*row, label] for row, label in zip(train, labels, strict=True)])
    dataset = platform.register_dataset("applications", source, categorical=["label"])
    model = LogisticRegression().fit(train, labels)
    platform.register_model(
        "credit",
        sklearn_flavor.save(model, tmp_path / "model"),
        flavor="sklearn",
        signature=Signature(inputs=dict.fromkeys(FEATURES, "float")),
        dataset_ids=[dataset.id],
    )
    platform.serving.create_endpoint("scoring", "credit:1", route="blue")
    platform.monitoring.add_monitor(
        scoring_monitor(drift_signal(name="score-drift", metric="psi:prediction", window="1h"))
    )

    def serve(values: np.ndarray) -> None:
        scores = model.predict_proba(values)[:, 1]
        log_predictions(
            [
                (dict(zip(FEATURES, map(float, row), strict=True)), float(score))
                for row, score in zip(values, scores, strict=True)
            ]
        )

    serve(_data(rng, 2000))
    clock.advance(minutes=5)
    calm = platform.monitoring.run_once()
    assert (calm.evaluated, calm.alerts) == (1, ())
    clock.advance(minutes=61)
    serve(_data(rng, 2000, shift=2.0))
    clock.advance(minutes=5)
    shifted = platform.monitoring.run_once()
    assert [a.signal for a in shifted.alerts] == ["scoring:score-drift"]
    assert shifted.alerts[0].value > 0.2
