"""The fewest values a feature's drift is judged on: enough that traffic which has not drifted
crosses the documented thresholds (PSI 0.2, Jensen-Shannon 0.2, a KS statistic of 0.15) only
rarely, whatever the bins of the feature's profile."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from artifact_kit import MakeArtifact
from monitoring_kit import (
    LogPredictions,
    drift_signal,
    scoring_monitor,
    serve_credit,
    write_training,
)

from mintaka import ManualClock, Platform
from mintaka.monitoring.profiles import CategoricalProfile, DatasetProfile, profile
from mintaka.monitoring.statistics import drift, min_values

Draw = Callable[[np.random.Generator, int], npt.NDArray[Any]]
REFERENCE_ROWS = 10_000
PASSES = 300
THRESHOLDS = {"psi": 0.2, "jensen_shannon": 0.2, "ks_statistic": 0.15}  # as docs/monitoring.md
LEVELS = [f"r{k:02d}" for k in range(30)]


def _normal(rng: np.random.Generator, n: int) -> npt.NDArray[Any]:
    return rng.normal(size=n)


def _zero_inflated(rng: np.random.Generator, n: int) -> npt.NDArray[Any]:
    return np.where(rng.random(n) < 0.6, 0.0, rng.exponential(size=n))


def _thirty_levels(rng: np.random.Generator, n: int) -> npt.NDArray[Any]:
    return np.asarray(LEVELS, dtype=object)[rng.integers(0, len(LEVELS), n)]


def _skewed(rng: np.random.Generator, n: int) -> npt.NDArray[Any]:
    """Five categories, the rarest 5 %: a pass without it reads as a PSI of 0.3 on its own."""
    return rng.choice(np.array(list("abcde"), dtype=object), n, p=[0.4, 0.3, 0.15, 0.1, 0.05])


SHAPES: dict[str, tuple[Draw, bool]] = {  # name: (draw, categorical)
    "normal": (_normal, False),
    "zero_inflated": (_zero_inflated, False),
    "thirty_levels": (_thirty_levels, True),
    "skewed": (_skewed, True),
}


def _reference(name: str) -> DatasetProfile:
    draw, categorical = SHAPES[name]
    data = {name: draw(np.random.default_rng(1), REFERENCE_ROWS)}
    return profile(data, categorical=[name] if categorical else [])


def _floor(reference: DatasetProfile, name: str) -> int:
    return drift(reference, {name: [None]}, features=[name]).features[name].min_values


def _healthy_passes(name: str, values: int) -> dict[str, npt.NDArray[np.float64]]:
    """The statistics of ``PASSES`` seeded passes of ``values`` fresh values from the
    reference's own distribution: traffic that has not drifted."""
    draw, _ = SHAPES[name]
    reference = _reference(name)
    rng = np.random.default_rng(2)
    found: dict[str, list[float]] = {"psi": [], "jensen_shannon": [], "ks_statistic": []}
    for _ in range(PASSES):
        report = drift(
            reference, {name: draw(rng, values)}, features=[name], ks_method="asymp", workers=1
        )
        for metric, seen in found.items():
            seen.append(report.value(name, metric) or 0.0)
    return {metric: np.asarray(seen) for metric, seen in found.items()}


def test_the_floor_grows_with_the_bins_a_feature_s_reference_fills() -> None:
    assert _floor(_reference("normal"), "normal") == 200  # ten quantile bins, twenty values each
    assert _floor(_reference("zero_inflated"), "zero_inflated") > 200  # and a bin of the zeros
    assert _floor(_reference("thirty_levels"), "thirty_levels") == 600
    skewed = _reference("skewed")
    rarest = skewed.features["skewed"]
    assert isinstance(rarest, CategoricalProfile)
    share = rarest.frequencies["e"] / REFERENCE_ROWS  # about 5 %: ten of it expected, not 100
    assert _floor(skewed, "skewed") == math.ceil(10 / share) > 150
    assert min_values([500, 500]) == 100  # never fewer than MIN_VALUES
    assert min_values([]) == 100


@pytest.mark.parametrize("name", list(SHAPES))
def test_healthy_traffic_at_the_floor_rarely_crosses_the_documented_thresholds(name: str) -> None:
    found = _healthy_passes(name, _floor(_reference(name), name))
    for metric, threshold in THRESHOLDS.items():
        # none of the 300 passes alerts, and 99 in 100 stay a fifth below the threshold
        assert found[metric].max() < threshold, metric
        assert np.quantile(found[metric], 0.99) < threshold * 0.8, metric


@pytest.mark.parametrize("name", ["normal", "thirty_levels"])
def test_at_fifty_values_the_same_traffic_crosses_them_often(name: str) -> None:
    """What the floor is for: on fifty values (the former floor of every feature) healthy
    traffic alerts on a large share of passes."""
    found = _healthy_passes(name, 50)
    assert np.mean(found["psi"] > 0.2) > 0.25


def _training(rng: np.random.Generator, n: int, region_share: float = 1.0) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for region in _thirty_levels(rng, n).tolist():
        logged = rng.random() < region_share
        rows.append({"income": float(rng.normal()), "region": region if logged else None})
    return rows


@pytest.fixture
def regions(platform: Platform, make_servable: MakeArtifact, tmp_path: Path) -> Platform:
    train = write_training(tmp_path, _training(np.random.default_rng(1), 6000))
    serve_credit(platform, make_servable, train)
    return platform


def test_a_categorical_feature_of_many_levels_is_not_judged_on_a_window_too_small_for_it(
    regions: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    regions.monitoring.add_monitor(scoring_monitor(drift_signal(metric="psi:region")))
    log_predictions([(row, 0.5) for row in _training(np.random.default_rng(3), 150)])
    clock.advance(minutes=5)
    report = regions.monitoring.run_once()
    assert (report.evaluated, report.alerts, report.failed) == (0, (), ())
    [note] = report.notes
    assert note.note == (
        "too few values to judge: 'region' (150 values, fewer than the 600 its 30 reference "
        "bins need); a longer window measures them"
    )
    assert regions.monitoring.tickets() == []


def test_a_feature_logged_in_few_rows_is_judged_on_its_values_not_the_rows(
    regions: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    """A window of enough rows holds only a tenth as many values of a feature most requests
    leave out: that feature is noted, the others are judged."""
    regions.monitoring.add_monitor(
        scoring_monitor(
            drift_signal(name="region-drift", metric="psi:region"),
            drift_signal(name="all-drift", metric="psi"),
        )
    )
    rows = _training(np.random.default_rng(4), 700, region_share=0.1)
    log_predictions([(row, 0.5) for row in rows])
    clock.advance(minutes=5)
    report = regions.monitoring.run_once()
    assert (report.alerts, report.failed) == ((), ())
    assert report.evaluated == 1  # all-drift, on income
    logged = sum(row["region"] is not None for row in rows)
    assert [(n.signal, n.note) for n in report.notes] == [
        (
            signal,
            f"too few values to judge: 'region' ({logged} values, fewer than the 600 its 30 "
            "reference bins need); a longer window measures them",
        )
        for signal in ("region-drift", "all-drift")
    ]
