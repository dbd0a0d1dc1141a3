from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from artifact_kit import MakeArtifact
from monitoring_kit import LogPredictions, log_on, scoring_monitor

from mintaka import ManualClock, Platform
from mintaka.domain.monitoring import Signal, SignalKind

N = 2000  # per group: a fair model's difference sits more than 6 standard errors below 0.1


@pytest.fixture
def watched(platform: Platform, make_servable: MakeArtifact) -> Platform:
    platform.register_model("credit", make_servable(b"v1"), flavor="pyfunc")
    platform.serving.create_endpoint("scoring", "credit:1", route="blue")
    platform.monitoring.add_monitor(
        scoring_monitor(
            *(
                Signal(
                    name=name,
                    kind=SignalKind.FAIRNESS,
                    metric=f"{name}:group",
                    threshold=0.1,
                    window="1d",
                    owner="fairness-lead",
                )
                for name in ("demographic_parity", "equalized_odds")
            )
        )
    )
    return platform


def replay(platform: Platform, log_predictions: LogPredictions, *, biased: bool, seed: int) -> None:
    """Log approvals for two groups with equal true repayment rates; a biased model flips 40% of
    group b's answers to a refusal, a fair one errs 10% of the time in both groups."""
    rng = np.random.default_rng(seed)
    truth: list[int] = []
    pairs: list[tuple[dict[str, Any], Any]] = []
    for group in ("a", "b"):
        y = rng.random(N) < 0.5
        wrong = rng.random(N) < 0.1
        predicted = y ^ wrong
        if biased and group == "b":
            predicted &= rng.random(N) >= 0.4
        truth += y.astype(int).tolist()
        pairs += [({"group": group, "income": 1.0}, int(p)) for p in predicted]
    ids = log_predictions(pairs)
    platform.monitoring.record_labels(dict(zip(ids, truth, strict=True)))


def test_a_biased_model_raises_both_fairness_alerts(
    watched: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    replay(watched, log_predictions, biased=True, seed=11)
    clock.advance(minutes=5)
    report = watched.monitoring.run_once()
    assert report.evaluated == 2
    found = {a.signal: a.value for a in report.alerts}
    assert set(found) == {"scoring:demographic_parity", "scoring:equalized_odds"}
    assert all(a.threshold == 0.1 for a in report.alerts)
    assert {t.owner for t in watched.monitoring.tickets()} == {"fairness-lead"}


def test_a_fair_model_raises_none(
    watched: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    replay(watched, log_predictions, biased=False, seed=12)
    clock.advance(minutes=5)
    report = watched.monitoring.run_once()
    assert (report.evaluated, report.alerts) == (2, ())


def test_demographic_parity_needs_no_labels_but_equalized_odds_does(
    watched: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    log_predictions([({"group": "a"}, 1), ({"group": "b"}, 0)])
    clock.advance(minutes=5)
    report = watched.monitoring.run_once()
    assert report.evaluated == 1
    assert [a.signal for a in report.alerts] == ["scoring:demographic_parity"]


def string_class_signals(**overrides: Any) -> list[Signal]:
    return [
        Signal(
            name=name,
            kind=SignalKind.FAIRNESS,
            metric=f"{metric}:group",
            threshold=0.1,
            window="1d",
            owner="fairness-lead",
            **overrides,
        )
        for name, metric in (("dp", "demographic_parity"), ("eo", "equalized_odds"))
    ]


def approve_a_deny_b(platform: Platform, log_predictions: LogPredictions) -> None:
    """Group a is always approved and group b always refused; every applicant deserved it."""
    ids = log_predictions([({"group": "a"}, "approve")] * 50 + [({"group": "b"}, "deny")] * 50)
    platform.monitoring.record_labels(dict.fromkeys(ids, "approve"))


def test_string_classes_without_a_declared_positive_class_fail_instead_of_reporting_zero(
    served: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    served.monitoring.add_monitor(scoring_monitor(*string_class_signals()))
    approve_a_deny_b(served, log_predictions)
    clock.advance(minutes=5)
    report = served.monitoring.run_once()
    assert (report.evaluated, report.alerts) == (0, ())
    assert {f.signal for f in report.failed} == {"dp", "eo"}
    assert all("declare which class is the positive one" in f.error for f in report.failed)


def test_a_declared_positive_class_measures_string_classes(
    served: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    served.monitoring.add_monitor(scoring_monitor(*string_class_signals(positive="approve")))
    approve_a_deny_b(served, log_predictions)
    clock.advance(minutes=5)
    report = served.monitoring.run_once()
    assert (report.evaluated, report.failed) == (2, ())
    assert {a.signal: a.value for a in report.alerts} == {"scoring:dp": 1.0, "scoring:eo": 1.0}


def test_a_positive_class_no_prediction_or_label_has_is_refused(
    served: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    served.monitoring.add_monitor(scoring_monitor(*string_class_signals(positive="Approve")))
    approve_a_deny_b(served, log_predictions)
    clock.advance(minutes=5)
    report = served.monitoring.run_once()
    assert (report.evaluated, report.alerts) == (0, ())
    assert all(
        "no prediction or label is the positive class 'Approve'" in f.error for f in report.failed
    )


def test_a_window_without_the_declared_positive_class_is_measured(
    served: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    served.monitoring.add_monitor(scoring_monitor(*string_class_signals(positive="approve")))
    ids = log_predictions([({"group": "a"}, "deny")] * 50 + [({"group": "b"}, "deny")] * 50)
    served.monitoring.record_labels(dict.fromkeys(ids, "deny"))
    clock.advance(minutes=5)
    report = served.monitoring.run_once()
    assert (report.evaluated, report.alerts, report.failed) == (2, (), ())


def test_a_positive_class_of_another_type_than_the_classes_fails_the_signals(
    served: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    served.monitoring.add_monitor(scoring_monitor(*string_class_signals(positive=1)))
    ids = log_predictions([({"group": "a"}, "deny")] * 50 + [({"group": "b"}, "deny")] * 50)
    served.monitoring.record_labels(dict.fromkeys(ids, "deny"))
    clock.advance(minutes=5)
    report = served.monitoring.run_once()
    assert (report.evaluated, report.alerts) == (0, ())
    assert {f.signal for f in report.failed} == {"dp", "eo"}
    assert all("no prediction or label is the positive class 1" in f.error for f in report.failed)


@pytest.mark.parametrize("positive", ["1", 2])
def test_a_positive_class_no_0_1_prediction_equals_fails_the_signals(
    served: Platform, clock: ManualClock, log_predictions: LogPredictions, positive: Any
) -> None:
    served.monitoring.add_monitor(scoring_monitor(*string_class_signals(positive=positive)))
    ids = log_predictions([({"group": "a"}, 1)] * 50 + [({"group": "b"}, 0)] * 50)
    served.monitoring.record_labels(dict.fromkeys(ids, 1))
    clock.advance(minutes=5)
    report = served.monitoring.run_once()
    assert (report.evaluated, report.alerts) == (0, ())
    assert all("the positive class is 0 or 1" in f.error for f in report.failed)
    assert len(report.failed) == 2


def test_a_missing_predicted_class_fails_the_signals_instead_of_counting_as_a_class(
    served: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    served.monitoring.add_monitor(scoring_monitor(*string_class_signals()))
    ids = log_predictions([({"group": "a"}, 1)] * 50 + [({"group": "b"}, {"score": 0.9})] * 50)
    served.monitoring.record_labels(dict.fromkeys(ids, 1))
    clock.advance(minutes=5)
    report = served.monitoring.run_once()
    assert (report.evaluated, report.alerts) == (0, ())
    assert {f.signal for f in report.failed} == {"dp", "eo"}
    assert all("50 of 100 predicted classes are missing" in f.error for f in report.failed)


@pytest.mark.parametrize("missing", [None, float("nan")], ids=["none", "nan"])
def test_a_prediction_without_the_attribute_is_in_no_group(
    watched: Platform, clock: ManualClock, log_predictions: LogPredictions, missing: Any
) -> None:
    """Logged as None or NaN, the attribute is missing as if not logged: such predictions are
    left out, neither a group of their own (which would breach parity here) nor a failure."""
    log_predictions(
        [({"group": "a"}, 1), ({"group": "b"}, 1), ({"group": missing}, 0), ({"income": 1.0}, 0)]
    )
    clock.advance(minutes=5)
    report = watched.monitoring.run_once()
    assert (report.evaluated, report.alerts, report.failed) == (1, (), ())


@pytest.mark.parametrize(
    "collections", [(["a"], ["b"]), ({"country": "a"}, {"country": "b"})], ids=["list", "dict"]
)
def test_an_attribute_logged_as_a_collection_fails_the_signals_naming_it(
    watched: Platform,
    clock: ManualClock,
    log_predictions: LogPredictions,
    collections: tuple[Any, Any],
) -> None:
    first, second = collections
    ids = log_predictions([({"group": first}, 1)] * 20 + [({"group": second}, 0)] * 20)
    watched.monitoring.record_labels(dict.fromkeys(ids, 1))
    clock.advance(minutes=5)
    report = watched.monitoring.run_once()
    assert (report.evaluated, report.alerts) == (0, ())
    assert {f.signal for f in report.failed} == {"demographic_parity", "equalized_odds"}
    for failure in report.failed:
        assert "the attribute 'group'" in failure.error
        assert f"not collections: got {first!r}" in failure.error


def test_a_canary_with_string_classes_is_judged_apart_and_a_few_of_its_rows_are_noted(
    watched: Platform,
    clock: ManualClock,
    make_servable: MakeArtifact,
    log_predictions: LogPredictions,
) -> None:
    replay(watched, log_predictions, biased=False, seed=41)
    watched.register_model("credit", make_servable(b"v2"), flavor="pyfunc")
    watched.serving.deploy("scoring", "credit:2", route="green", weights={"blue": 99, "green": 1})
    log_on(watched, "green", 2, [{"group": "b"}] * 20, ["no"] * 20)  # its classes are strings
    clock.advance(minutes=5)
    report = watched.monitoring.run_once()
    assert (report.evaluated, report.alerts, report.failed) == (2, (), ())
    assert [n.note.split(",")[0] for n in report.notes] == [
        "20 predictions carrying 'group' of route 'green' (credit:2)",  # none are labelled
    ]


def test_a_canary_with_few_rows_carrying_the_attribute_is_noted_not_judged_on_them(
    watched: Platform,
    clock: ManualClock,
    make_servable: MakeArtifact,
    log_predictions: LogPredictions,
) -> None:
    from sqlalchemy import select

    from mintaka.store.schema import predictions

    replay(watched, log_predictions, biased=False, seed=41)
    watched.register_model("credit", make_servable(b"v2"), flavor="pyfunc")
    watched.serving.deploy("scoring", "credit:2", route="green", weights={"blue": 95, "green": 5})
    rows = [{"income": 1.0}] * 196 + [{"group": "a"}] * 2 + [{"group": "b"}] * 2
    log_on(watched, "green", 2, rows, [1] * 198 + [0] * 2)  # a approved, b refused
    with watched.store.read() as conn:
        canary = [
            pid
            for (pid,) in conn.execute(select(predictions.c.id).where(predictions.c.version == 2))
        ]
    watched.monitoring.record_labels(dict.fromkeys(canary, 1))
    clock.advance(minutes=5)
    report = watched.monitoring.run_once()
    assert (report.evaluated, report.alerts, report.failed) == (2, (), ())
    assert [n.note.split(",")[0] for n in report.notes] == [
        "4 predictions carrying 'group' of route 'green' (credit:2)",
        "4 labelled predictions carrying 'group' of route 'green' (credit:2)",
    ]


def test_a_window_of_one_group_is_noted_as_not_measured_instead_of_fair(
    watched: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    """With only group a in the window there is no difference to measure: neither signal reads
    0 (fair), each is noted as not measured, the way drift of too few values is."""
    ids = log_predictions([({"group": "a"}, 1)] * 30 + [({"group": "a"}, 0)] * 30)
    watched.monitoring.record_labels(dict.fromkeys(ids, 1))
    clock.advance(minutes=5)
    report = watched.monitoring.run_once()
    assert (report.evaluated, report.alerts, report.failed) == (0, (), ())
    assert {n.signal for n in report.notes} == {"demographic_parity", "equalized_odds"}
    for note in report.notes:
        assert "only one group of the attribute 'group'" in note.note
        assert "cannot be measured" in note.note
