from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from monitoring_kit import LogPredictions, drift_signal, log_on, scoring_monitor
from sklearn.linear_model import LogisticRegression

from mintaka import ManualClock, Platform
from mintaka.domain.registry import Signature
from mintaka.flavors import sklearn as sklearn_flavor
from mintaka.monitoring.service import NO_SCORES
from mintaka.monitoring.training_data import sample_rows

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
    _serve_on_blue(platform, tmp_path, model, [dataset.id])
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


def test_a_canary_s_prediction_drift_is_judged_against_its_own_training_scores(
    platform: Platform, clock: ManualClock, tmp_path: Path
) -> None:
    rng = np.random.default_rng(7)
    train = _data(rng, 2000)

    def register(version_dir: str, labels: np.ndarray) -> LogisticRegression:
        source = tmp_path / f"{version_dir}.csv"
        with source.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow([*FEATURES, "label"])
            writer.writerows([[*row, label] for row, label in zip(train, labels, strict=True)])
        dataset = platform.register_dataset(version_dir, source, categorical=["label"])
        model = LogisticRegression().fit(train, labels)
        platform.register_model(
            "credit",
            sklearn_flavor.save(model, tmp_path / version_dir),
            flavor="sklearn",
            signature=Signature(inputs=dict.fromkeys(FEATURES, "float")),
            dataset_ids=[dataset.id],
        )
        return model

    v1 = register("v1", (train[:, 0] - train[:, 1] > 0).astype(int))
    v2 = register("v2", (train[:, 0] + train[:, 1] > 1.5).astype(int))  # a rarer positive class
    platform.serving.create_endpoint("scoring", "credit:1", route="blue")
    platform.serving.deploy("scoring", "credit:2", route="green", weights={"blue": 50, "green": 50})
    platform.monitoring.add_monitor(
        scoring_monitor(drift_signal(name="score-drift", metric="psi:prediction", window="1h"))
    )

    def serve(route: str, version: int, model: LogisticRegression, values: np.ndarray) -> None:
        scores = model.predict_proba(values)[:, 1]
        rows = [dict(zip(FEATURES, map(float, row), strict=True)) for row in values]
        log_on(platform, route, version, rows, [float(score) for score in scores])

    # each version answers traffic drawn exactly as its training data was: no drift anywhere
    serve("blue", 1, v1, _data(rng, 1000))
    serve("green", 2, v2, _data(rng, 1000))
    clock.advance(minutes=5)
    report = platform.monitoring.run_once()
    assert (report.evaluated, report.alerts, report.failed) == (1, (), ())

    v3 = LogisticRegression().fit(train, (train[:, 0] > 0).astype(int))
    platform.register_model("credit", sklearn_flavor.save(v3, tmp_path / "v3"), flavor="sklearn")
    platform.serving.deploy("scoring", "credit:3", route="red", weights={"blue": 50, "red": 50})
    serve("red", 3, v3, _data(rng, 1000))  # no training data named
    clock.advance(minutes=5)
    [failure] = platform.monitoring.run_once().failed
    assert failure.error == ("drift signal 'score-drift': route 'red' (credit:3): " + NO_SCORES)


def _write_training(source: Path, train: np.ndarray, labels: np.ndarray) -> None:
    with source.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*FEATURES, "label"])
        writer.writerows([[*row, label] for row, label in zip(train, labels, strict=True)])


def _register(
    platform: Platform, source: Path, train: np.ndarray, labels: np.ndarray
) -> LogisticRegression:
    """Write ``train`` to ``source``, register it, and register a model trained on it as the
    next version of ``credit``."""
    _write_training(source, train, labels)
    dataset = platform.register_dataset(source.stem, source, categorical=["label"])
    model = LogisticRegression().fit(train, labels)
    platform.register_model(
        "credit",
        sklearn_flavor.save(model, source.with_name(f"model-{source.stem}")),
        flavor="sklearn",
        signature=Signature(inputs=dict.fromkeys(FEATURES, "float")),
        dataset_ids=[dataset.id],
    )
    return model


def _serve(
    platform: Platform, route: str, version: int, model: LogisticRegression, values: np.ndarray
) -> None:
    """Log ``model``'s scores of ``values`` as answered by ``route`` (``credit:<version>``)."""
    scores = model.predict_proba(values)[:, 1]
    log_on(
        platform,
        route,
        version,
        [dict(zip(FEATURES, map(float, row), strict=True)) for row in values],
        outputs=[float(score) for score in scores],
    )


def _watch_scores(platform: Platform) -> None:
    platform.monitoring.add_monitor(
        scoring_monitor(drift_signal(name="score-drift", metric="psi:prediction", window="1h"))
    )


def test_a_training_file_rewritten_at_its_path_fails_the_signal_naming_the_dataset_version(
    platform: Platform, clock: ManualClock, tmp_path: Path
) -> None:
    rng = np.random.default_rng(43)
    source = tmp_path / "train.csv"
    train = _data(rng, 2000)
    labels = (train[:, 0] - train[:, 1] > 0).astype(int)
    model = _register(platform, source, train, labels)
    [dataset_id] = platform.get_model_version("credit", 1).dataset_ids
    platform.serving.create_endpoint("scoring", "credit:1", route="blue")
    _watch_scores(platform)
    _serve(platform, "blue", 1, model, _data(rng, 1000))
    clock.advance(minutes=5)
    assert platform.monitoring.run_once().failed == ()
    # next month's data lands at the same path: credit:1 was not trained on it
    _write_training(source, _data(rng, 2000, shift=2.0), labels)
    clock.advance(minutes=61)
    _serve(platform, "blue", 1, model, _data(rng, 1000))
    clock.advance(minutes=5)
    report = platform.monitoring.run_once()
    assert report.alerts == ()
    [failure] = report.failed
    assert dataset_id in failure.error
    assert "route 'blue' (credit:1)" in failure.error
    assert "no longer holds" in failure.error
    source.unlink()
    clock.advance(minutes=61)
    _serve(platform, "blue", 1, model, _data(rng, 1000))
    clock.advance(minutes=5)
    [failure] = platform.monitoring.run_once().failed
    assert dataset_id in failure.error
    assert "is gone" in failure.error


def test_the_scores_reference_samples_the_whole_training_file_not_its_first_rows(
    platform: Platform, clock: ManualClock, tmp_path: Path
) -> None:
    rng = np.random.default_rng(41)
    train = _data(rng, 30_000)
    train = train[np.argsort(train[:, 0])]  # a file sorted by a column (a time, an id)
    labels = (train[:, 0] - train[:, 1] > 0).astype(int)
    model = _register(platform, tmp_path / "sorted.csv", train, labels)
    platform.serving.create_endpoint("scoring", "credit:1", route="blue")
    _watch_scores(platform)
    _serve(platform, "blue", 1, model, train[rng.choice(len(train), 2000)])  # the training data
    clock.advance(minutes=5)
    report = platform.monitoring.run_once()
    assert (report.evaluated, report.alerts, report.failed) == (1, (), ())


def test_a_training_sample_is_uniform_over_the_file_and_the_same_on_every_read(
    tmp_path: Path,
) -> None:
    source = tmp_path / "rows.csv"
    with source.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["n"])
        writer.writerows([[n] for n in range(20_000)])
    sample = sample_rows(source, size=1000)
    again = sample_rows(source, size=1000)
    numbers = [int(row["n"]) for row in sample]
    assert sample == again
    assert numbers == sorted(set(numbers))
    assert len(numbers) == 1000
    assert 9000 < sum(numbers) / len(numbers) < 11_000  # the first rows would average 500
    assert numbers[-1] > 19_000
    assert sample_rows(source, size=30_000) == [{"n": str(n)} for n in range(20_000)]


def _serve_on_blue(
    platform: Platform, tmp_path: Path, model: LogisticRegression, dataset_ids: list[str]
) -> None:
    """Register ``model`` as ``credit:1`` trained on ``dataset_ids`` and serve it on ``scoring``'s
    route blue."""
    platform.register_model(
        "credit",
        sklearn_flavor.save(model, tmp_path / "model"),
        flavor="sklearn",
        signature=Signature(inputs=dict.fromkeys(FEATURES, "float")),
        dataset_ids=dataset_ids,
    )
    platform.serving.create_endpoint("scoring", "credit:1", route="blue")


def test_a_small_version_with_nothing_to_score_fails_the_signal_beside_a_larger_one(
    platform: Platform, clock: ManualClock, tmp_path: Path
) -> None:
    rng = np.random.default_rng(44)
    train = _data(rng, 2000)
    labels = (train[:, 0] > 0).astype(int)
    v1 = _register(platform, tmp_path / "d1.csv", train, labels)
    v2 = LogisticRegression().fit(train, 1 - labels)
    platform.register_model("credit", sklearn_flavor.save(v2, tmp_path / "v2"), flavor="sklearn")
    platform.serving.create_endpoint("scoring", "credit:1", route="blue")
    platform.serving.deploy("scoring", "credit:2", route="red", weights={"blue": 95, "red": 5})
    _watch_scores(platform)
    _serve(platform, "blue", 1, v1, _data(rng, 900))
    _serve(platform, "red", 2, v2, _data(rng, 45))
    clock.advance(minutes=5)
    report = platform.monitoring.run_once()
    assert (report.evaluated, report.alerts) == (1, ())
    [failure] = report.failed
    assert failure.error == ("drift signal 'score-drift': route 'red' (credit:2): " + NO_SCORES)


def test_prediction_drift_scores_the_training_dataset_input_drift_measures_against(
    platform: Platform, clock: ManualClock, tmp_path: Path
) -> None:
    rng = np.random.default_rng(45)
    train = _data(rng, 2000)
    labels = (train[:, 0] - train[:, 1] > 0).astype(int)
    holdout = tmp_path / "holdout.csv"
    _write_training(holdout, _data(rng, 2000, shift=2.0), labels)
    unprofiled = platform.register_dataset("holdout", holdout, profile=False)
    source = tmp_path / "train.csv"
    _write_training(source, train, labels)
    profiled = platform.register_dataset("train", source, categorical=["label"])
    model = LogisticRegression().fit(train, labels)
    _serve_on_blue(platform, tmp_path, model, [unprofiled.id, profiled.id])
    reference = platform.monitoring.reference("scoring")
    assert reference is not None
    assert reference.dataset_id == profiled.id
    _watch_scores(platform)
    _serve(platform, "blue", 1, model, _data(rng, 1000))  # as the model was trained
    clock.advance(minutes=5)
    report = platform.monitoring.run_once()
    assert (report.evaluated, report.alerts, report.failed) == (1, (), ())


def test_a_training_row_missing_a_model_input_is_left_out_of_the_scores_and_noted(
    platform: Platform, clock: ManualClock, tmp_path: Path
) -> None:
    rng = np.random.default_rng(46)
    train = _data(rng, 2000)
    labels = (train[:, 0] - train[:, 1] > 0).astype(int)
    source = tmp_path / "train.csv"
    with source.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*FEATURES, "label"])
        for i, (row, label) in enumerate(zip(train, labels, strict=True)):
            debt = {0: "", 1: "n/a"}.get(i, row[1])  # an empty cell and one that is no number
            writer.writerow([row[0], debt, label])
    dataset = platform.register_dataset("applications", source, categorical=["label"])
    model = LogisticRegression().fit(train, labels)
    _serve_on_blue(platform, tmp_path, model, [dataset.id])
    _watch_scores(platform)
    _serve(platform, "blue", 1, model, _data(rng, 1000))
    clock.advance(minutes=5)
    report = platform.monitoring.run_once()
    assert (report.evaluated, report.alerts, report.failed) == (1, (), ())
    [note] = report.notes
    assert note.note.startswith("route 'blue' (credit:1): 2 of the 2000 rows of dataset ")
    assert dataset.id in note.note


def test_a_training_file_without_one_whole_row_fails_naming_the_dataset_version(
    platform: Platform, clock: ManualClock, tmp_path: Path
) -> None:
    rng = np.random.default_rng(47)
    train = _data(rng, 600)
    source = tmp_path / "train.csv"
    with source.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["income", "debt"])
        writer.writerows([[row[0], "n/a"] for row in train])
    dataset = platform.register_dataset("applications", source)
    model = LogisticRegression().fit(train, (train[:, 0] > 0).astype(int))
    _serve_on_blue(platform, tmp_path, model, [dataset.id])
    _watch_scores(platform)
    _serve(platform, "blue", 1, model, _data(rng, 500))
    clock.advance(minutes=5)
    [failure] = platform.monitoring.run_once().failed
    assert f"none of the 600 rows of dataset {dataset.id} (applications)" in failure.error


_PYFUNC_MODEL = """\
import math

calls = []


def score(rows):
    calls.append(len(rows))
    return [1 / (1 + math.exp(-(row["income"] - row["debt"]))) for row in rows]


def broken(rows):
    calls.append(len(rows))
    raise RuntimeError("no scores today")


def scaled(rows):
    calls.append(len(rows))
    for row in rows:  # preprocessing in place, as many feature pipelines do
        row["income"] = row["income"] * 4
    return [1 / (1 + math.exp(-(row["income"] - row["debt"]))) for row in rows]
"""


def _pyfunc_credit(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, function: str
) -> tuple[str, list[int]]:
    """Register a pyfunc ``credit:1`` (``function`` of a module written to ``tmp_path``)
    trained on 2000 rows of numbers, serve it on ``scoring``, and return its dataset id and
    the list of batch sizes the module's functions were called with."""
    (tmp_path / "prediction_drift_pyfunc.py").write_text(_PYFUNC_MODEL)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "prediction_drift_pyfunc", raising=False)
    source = tmp_path / "train.csv"
    with source.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(FEATURES)
        writer.writerows(_data(np.random.default_rng(48), 2000).tolist())
    dataset = platform.register_dataset("applications", source)
    artifact = tmp_path / "pyfunc"
    artifact.mkdir()
    spec = {"function": f"prediction_drift_pyfunc:{function}"}
    (artifact / "pyfunc.json").write_text(json.dumps(spec))
    platform.register_model(
        "credit",
        artifact,
        flavor="pyfunc",
        signature=Signature(inputs=dict.fromkeys(FEATURES, "float")),
        dataset_ids=[dataset.id],
    )
    platform.serving.create_endpoint("scoring", "credit:1", route="blue")
    module = __import__("prediction_drift_pyfunc")
    return dataset.id, module.calls


def test_a_pyfunc_model_scores_its_training_rows_as_numbers_not_csv_text(
    platform: Platform, clock: ManualClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _pyfunc_credit(platform, tmp_path, monkeypatch, "score")
    _watch_scores(platform)
    live = _data(np.random.default_rng(49), 1000).tolist()
    log_on(
        platform,
        "blue",
        1,
        [{"income": a, "debt": b} for a, b in live],
        outputs=[1 / (1 + math.exp(-(a - b))) for a, b in live],
    )
    clock.advance(minutes=5)
    report = platform.monitoring.run_once()
    assert (report.evaluated, report.alerts, report.failed) == (1, (), ())


def test_a_model_failing_on_its_training_rows_fails_the_signal_once_a_run_naming_the_dataset(
    platform: Platform, clock: ManualClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset_id, calls = _pyfunc_credit(platform, tmp_path, monkeypatch, "broken")
    platform.monitoring.add_monitor(
        scoring_monitor(
            drift_signal(name="score-psi", metric="psi:prediction", window="1h"),
            drift_signal(name="score-ks", metric="ks_statistic:prediction", window="1h"),
        )
    )
    log_on(platform, "blue", 1, [{"income": 0.0, "debt": 0.0}] * 100, outputs=[0.5] * 100)
    clock.advance(minutes=5)
    report = platform.monitoring.run_once()
    assert [f.signal for f in report.failed] == ["score-psi", "score-ks"]
    for failure in report.failed:
        assert f"credit:1 could not score dataset {dataset_id} (applications)" in failure.error
        assert "no scores today" in failure.error
    assert calls == [2000]


def test_versions_sharing_a_training_file_check_and_sample_it_once_a_pass(
    platform: Platform, clock: ManualClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mintaka.artifacts import digest
    from mintaka.monitoring import training_data

    rng = np.random.default_rng(61)
    train = _data(rng, 1000)
    labels = (train[:, 0] > 0).astype(int)
    v1 = _register(platform, tmp_path / "shared.csv", train, labels)
    v2 = LogisticRegression(C=0.5).fit(train, labels)  # retrained on the same file
    platform.register_model(
        "credit",
        sklearn_flavor.save(v2, tmp_path / "model-v2"),
        flavor="sklearn",
        signature=Signature(inputs=dict.fromkeys(FEATURES, "float")),
        dataset_ids=platform.get_model_version("credit", 1).dataset_ids,
    )
    platform.serving.create_endpoint("scoring", "credit:1", route="blue")
    platform.serving.deploy("scoring", "credit:2", route="green", weights={"blue": 50, "green": 50})
    platform.monitoring.add_monitor(
        scoring_monitor(
            drift_signal(name="score-psi", metric="psi:prediction", window="1h"),
            drift_signal(name="score-js", metric="jensen_shannon:prediction", window="1h"),
        )
    )
    _serve(platform, "blue", 1, v1, _data(rng, 300))
    _serve(platform, "green", 2, v2, _data(rng, 300))
    reads: list[Path] = []
    checks: list[Path] = []
    stream, copy = training_data._stream_rows, digest.copy_hashed
    monkeypatch.setattr(training_data, "_stream_rows", lambda p: reads.append(p) or stream(p))
    monkeypatch.setattr(
        digest, "copy_hashed", lambda p, to, **kw: checks.append(p) or copy(p, to, **kw)
    )
    clock.advance(minutes=5)
    report = platform.monitoring.run_once()
    assert (report.evaluated, report.failed) == (2, ())
    assert checks == [tmp_path / "shared.csv"]
    assert [path.name for path in reads] == ["shared.csv"]  # the checked copy
    assert not reads[0].exists()  # removed at the end of the pass
    platform.monitoring.run_once()  # a new pass checks the file again: it may be rewritten
    assert len(reads) == len(checks) == 2


def test_a_model_editing_its_rows_in_place_leaves_the_pass_s_shared_sample_as_read(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mintaka.monitoring.service import PREDICTION
    from mintaka.monitoring.training_data import SampleCache

    _pyfunc_credit(platform, tmp_path, monkeypatch, "scaled")
    version = platform.get_model_version("credit", 1)
    alone = platform.monitoring.version_scores(version)
    shared = SampleCache(platform.home)
    passes = [platform.monitoring.version_scores(version, shared) for _ in range(3)]
    assert alone is not None
    means = {scores.profile.features[PREDICTION].mean if scores else None for scores in passes}
    assert means == {alone.profile.features[PREDICTION].mean}


def test_a_pass_holds_one_training_file_copy_at_a_time_not_every_file_it_judges(
    platform: Platform, clock: ManualClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mintaka.monitoring import training_data

    rng = np.random.default_rng(62)
    train = _data(rng, 1000)
    labels = (train[:, 0] > 0).astype(int)
    v1 = _register(platform, tmp_path / "first.csv", train, labels)
    v2 = _register(platform, tmp_path / "second.csv", train, 1 - labels)
    platform.serving.create_endpoint("scoring", "credit:1", route="blue")
    platform.serving.deploy("scoring", "credit:2", route="green", weights={"blue": 50, "green": 50})
    platform.monitoring.add_monitor(
        scoring_monitor(drift_signal(name="score-psi", metric="psi:prediction", window="1h"))
    )
    _serve(platform, "blue", 1, v1, _data(rng, 300))
    _serve(platform, "green", 2, v2, _data(rng, 300))
    copies = platform.home / training_data.COPIES
    held: list[list[str]] = []
    sample = training_data.feature_sample

    def drawn(path: Path, *args: object) -> training_data.FeatureSample:
        held.append(sorted(p.name for c in copies.iterdir() for p in c.iterdir()))
        return sample(path, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(training_data, "feature_sample", drawn)
    clock.advance(minutes=5)
    report = platform.monitoring.run_once()
    assert (report.evaluated, report.failed) == (1, ())
    assert held == [[".held", "first.csv"], [".held", "second.csv"]]
    assert list(copies.iterdir()) == []
