from __future__ import annotations

import json
import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from artifact_kit import MakeArtifact
from monitoring_kit import (
    LogPredictions,
    drift_signal,
    log_on,
    register_trained_credit,
    scoring_monitor,
    serve_credit,
    write_training,
)

from mintaka import Conflict, ManualClock, NotFound, Platform, ValidationError
from mintaka.cli.app import main
from mintaka.domain.monitoring import Escalation, MonitorSpec, Signal, SignalKind, TicketStatus
from mintaka.monitoring.service import MIN_GROUP_ROWS
from mintaka.store.schema import monitors

FEATURES = ("income", "debt")
# The fewest values of income (ten bins of its profile, twenty values each) its drift is judged on.
INCOME_VALUES = 200


def _rows(rng: np.random.Generator, n: int, shift: float = 0.0) -> list[dict[str, float]]:
    values = rng.normal(size=(n, len(FEATURES)))
    values[:, 0] += shift
    return [dict(zip(FEATURES, map(float, row), strict=True)) for row in values]


def _unprofiled(route: str, version: int) -> str:
    """How ``income-drift`` fails on ``route`` serving ``credit:<version>``, a version that
    names no training data to compare with."""
    return (
        f"drift signal 'income-drift': route {route!r} (credit:{version}): the version names no "
        "training dataset with a profile to compare with, so its drift cannot be measured"
    )


@pytest.fixture
def watched(platform: Platform, make_servable: MakeArtifact, tmp_path: Path) -> Platform:
    train = write_training(tmp_path, _rows(np.random.default_rng(1), 3000))
    profile = platform.get_dataset(serve_credit(platform, make_servable, train)).profile
    assert profile is not None
    assert set(profile["features"]) == set(FEATURES)
    platform.monitoring.add_monitor(
        scoring_monitor(
            drift_signal(
                window="1h",
                escalation=[Escalation(after_minutes=30, to="lead")],
                runbook_url="https://runbooks.example/drift",
            )
        )
    )
    return platform


def test_a_stationary_replay_raises_no_alert(
    watched: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    rng = np.random.default_rng(2)
    for _ in range(3):
        log_predictions([(row, 0.5) for row in _rows(rng, 2000)])
        clock.advance(minutes=5)
        report = watched.monitoring.run_once()
        assert report.evaluated == 1
        assert report.alerts == ()
        clock.advance(minutes=61)  # the next replay falls in a fresh window
    assert watched.monitoring.tickets() == []


@pytest.mark.parametrize("rows", [1, 10])
def test_a_window_of_a_few_ordinary_rows_is_not_measured(
    watched: Platform, clock: ManualClock, log_predictions: LogPredictions, rows: int
) -> None:
    watched.monitoring.add_monitor(
        scoring_monitor(drift_signal(name="debt-drift", metric="psi:debt", retrain=True))
    )
    log_predictions([(row, 0.5) for row in _rows(np.random.default_rng(40), rows)])
    clock.advance(minutes=5)
    report = watched.monitoring.run_once()
    assert (report.evaluated, report.alerts, report.failed) == (0, (), ())
    expected = (
        f"{rows} rows of route 'blue' (credit:1), fewer than the {MIN_GROUP_ROWS} drift needs; "
        "a longer window measures it"
    )
    assert [(n.signal, n.note) for n in report.notes] == [
        ("income-drift", expected),
        ("debt-drift", expected),
    ]
    assert watched.monitoring.tickets() == []
    assert watched.pipelines.requests() == []


def test_an_injected_shift_opens_one_ticket_that_escalates(
    watched: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    rng = np.random.default_rng(3)
    log_predictions([(row, 0.5) for row in _rows(rng, 2000)])
    clock.advance(minutes=5)
    calm = watched.monitoring.run_once()
    assert (calm.evaluated, calm.alerts) == (1, ())
    clock.advance(minutes=61)
    log_predictions([(row, 0.5) for row in _rows(rng, 2000, shift=1.5)])
    clock.advance(minutes=5)
    first = watched.monitoring.run_once()
    assert len(first.alerts) == 1
    assert first.alerts[0].value > 0.2
    [ticket] = watched.monitoring.tickets(TicketStatus.OPEN)
    assert (ticket.owner, ticket.runbook_url) == ("oncall", "https://runbooks.example/drift")
    clock.advance(minutes=5)
    watched.monitoring.run_once()  # still drifting: the same ticket, not a second one
    assert [t.id for t in watched.monitoring.tickets()] == [ticket.id]
    clock.advance(timedelta(minutes=30).total_seconds())
    assert watched.monitoring.run_once().escalated == (ticket.id,)
    assert watched.monitoring.ticket(ticket.id).owner == "lead"


def test_a_drift_signal_must_name_a_statistic(watched: Platform) -> None:
    from mintaka import ValidationError

    with pytest.raises(ValidationError, match="drift signal"):
        watched.monitoring.add_monitor(
            scoring_monitor(
                Signal(name="bad", kind=SignalKind.DRIFT, metric="vibes", threshold=1, owner="x")
            )
        )


def test_a_drift_signal_must_watch_a_profiled_feature(watched: Platform) -> None:
    from mintaka import ValidationError

    with pytest.raises(ValidationError, match=r"watches 'nosuchfeature'.*\['debt', 'income'\]"):
        watched.monitoring.add_monitor(
            scoring_monitor(drift_signal(name="ghost", metric="psi:nosuchfeature"))
        )
    watched.monitoring.add_monitor(  # the model's own output needs no training-data column
        scoring_monitor(drift_signal(name="output", metric="psi:prediction"))
    )


def test_a_drift_signal_s_count_window_holds_at_least_the_rows_drift_needs(
    watched: Platform,
) -> None:
    from mintaka import ValidationError

    for metric in ("psi:income", "psi:prediction"):
        with pytest.raises(ValidationError, match=f"at least {MIN_GROUP_ROWS} records"):
            watched.monitoring.add_monitor(
                scoring_monitor(
                    drift_signal(name="recent", metric=metric, window=f"{MIN_GROUP_ROWS - 1}n")
                )
            )
    watched.monitoring.add_monitor(
        scoring_monitor(drift_signal(name="recent", window=f"{MIN_GROUP_ROWS}n"))
    )


@pytest.mark.parametrize("threshold", [math.nan, math.inf, -math.inf])
def test_a_signal_threshold_must_be_finite(watched: Platform, threshold: float) -> None:
    from mintaka import ValidationError

    with pytest.raises(ValidationError, match="needs a finite threshold"):
        watched.monitoring.add_monitor(scoring_monitor(drift_signal(threshold=threshold)))


def test_a_drift_alert_on_a_retrain_signal_asks_for_retraining(
    watched: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    from mintaka import hookimpl
    from mintaka.domain.monitoring import Alert

    requests: list[tuple[str, str, Alert]] = []

    class Retrainer:
        @hookimpl
        def mintaka_retraining_requested(self, model: str, reason: str, alert: Alert) -> None:
            requests.append((model, reason, alert))

    watched.plugins.register(Retrainer())
    watched.monitoring.add_monitor(
        scoring_monitor(drift_signal(name="debt-drift", metric="psi:debt", retrain=True))
    )
    rng = np.random.default_rng(4)
    shifted = [{k: v + 1.5 for k, v in row.items()} for row in _rows(rng, 2000)]
    log_predictions([(row, 0.5) for row in shifted])
    clock.advance(minutes=5)
    report = watched.monitoring.run_once()
    assert {a.signal for a in report.alerts} == {"scoring:income-drift", "scoring:debt-drift"}
    [(model, reason, alert)] = requests  # only the signal marked retrain asks
    assert (model, alert.signal) == ("credit", "scoring:debt-drift")
    assert reason.startswith("drift signal 'debt-drift' on scoring: psi:debt =")


def _drifting_debt(watched: Platform, log_predictions: LogPredictions, seed: int) -> None:
    """A retrain signal on ``debt`` and logged traffic shifted far from its profile."""
    watched.monitoring.add_monitor(
        scoring_monitor(drift_signal(name="debt-drift", metric="psi:debt", retrain=True))
    )
    _log_shifted_traffic(log_predictions, seed)


def _log_shifted_traffic(log_predictions: LogPredictions, seed: int) -> None:
    """Log 2000 rows with every feature shifted by 1.5 from its profile."""
    rng = np.random.default_rng(seed)
    shifted = [{k: v + 1.5 for k, v in row.items()} for row in _rows(rng, 2000)]
    log_predictions([(row, 0.5) for row in shifted])


def _the_request_waits(watched: Platform, **stopped: Any) -> None:
    """Mark the only retraining request as waiting in pipeline run ``run-1``, with ``stopped``
    naming where its run stopped."""
    [request] = watched.pipelines.requests()
    update = {"status": "waiting", "pipeline_run": "run-1", **stopped}
    watched.pipelines._save_request(request.model_copy(update=update))


def _passes_alerting(watched: Platform, clock: ManualClock, passes: int = 3) -> None:
    for _ in range(passes):  # the drift persists: an alert on every pass
        clock.advance(minutes=5)
        assert "scoring:debt-drift" in {a.signal for a in watched.monitoring.run_once().alerts}


def test_persistent_drift_queues_one_retraining_while_it_is_pending(
    watched: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    _drifting_debt(watched, log_predictions, seed=7)
    _passes_alerting(watched, clock)
    assert [r.status for r in watched.pipelines.requests()] == ["pending"]
    [(settled, _)] = watched.pipelines.process_requests()  # no pipeline bound: it fails
    assert settled.status == "failed"
    clock.advance(minutes=5)
    watched.monitoring.run_once()  # still drifting, nothing pending: asked for again
    assert [r.status for r in watched.pipelines.requests()] == ["failed", "pending"]


def test_persistent_drift_queues_no_retraining_while_one_waits_at_a_gate(
    watched: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    _drifting_debt(watched, log_predictions, seed=8)
    _passes_alerting(watched, clock, passes=1)
    _the_request_waits(watched)  # its run stopped at a gate (approvals to collect)
    _passes_alerting(watched, clock)
    assert [r.status for r in watched.pipelines.requests()] == ["waiting"]


def test_drift_asks_again_a_day_after_a_retraining_an_evaluation_gate_refused(
    watched: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    _drifting_debt(watched, log_predictions, seed=9)
    _passes_alerting(watched, clock, passes=1)
    # Its run met the champion gate and lost: resuming it would meet the same gate again.
    _the_request_waits(watched, gate="evaluation", stopped_at=clock.now())
    _passes_alerting(watched, clock)
    assert [r.status for r in watched.pipelines.requests()] == ["waiting"]
    clock.advance(days=1)
    _log_shifted_traffic(log_predictions, seed=10)
    _passes_alerting(watched, clock)  # still drifting a day later: a fresh retraining
    assert [r.status for r in watched.pipelines.requests()] == ["waiting", "pending"]


def test_a_count_window_judges_the_latest_records(
    watched: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    watched.monitoring.add_monitor(scoring_monitor(drift_signal(name="last-500", window="500n")))
    rng = np.random.default_rng(4)
    log_predictions([(row, 0.5) for row in _rows(rng, 2000, shift=1.5)])  # old drifted traffic
    clock.advance(minutes=1)
    log_predictions([(row, 0.5) for row in _rows(rng, 500)])  # the latest 500: ordinary again
    report = watched.monitoring.run_once()
    # The hour-wide signal still sees the drift; the count window judges only the latest 500.
    assert [a.signal for a in report.alerts] == ["scoring:income-drift"]


def test_an_all_features_signal_sees_a_feature_the_oldest_row_lacks(
    watched: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    watched.monitoring.add_monitor(scoring_monitor(drift_signal(name="any-drift", metric="psi")))
    rng = np.random.default_rng(5)
    log_predictions([({"debt": 0.0}, 0.5)])  # the oldest prediction logged no income
    clock.advance(minutes=1)
    log_predictions([(row, 0.5) for row in _rows(rng, 2000, shift=1.5)])
    report = watched.monitoring.run_once()
    found = {a.signal: a.value for a in report.alerts}
    assert found["scoring:any-drift"] == pytest.approx(found["scoring:income-drift"])


def test_a_logged_feature_whose_drift_cannot_be_measured_fails_its_signals(
    watched: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    watched.monitoring.add_monitor(
        scoring_monitor(
            drift_signal(name="any-drift", metric="psi"),
            drift_signal(name="debt-drift", metric="psi:debt"),
        )
    )
    rng = np.random.default_rng(6)
    log_predictions([({**row, "debt": "n/a"}, 0.5) for row in _rows(rng, 2000, shift=1.5)])
    clock.advance(minutes=5)
    report = watched.monitoring.run_once()
    # The measured feature still alerts; the unmeasured one is named instead of passing as calm.
    assert {a.signal for a in report.alerts} == {"scoring:income-drift", "scoring:any-drift"}
    assert {f.signal: f.error.split(" against ")[0] for f in report.failed} == {
        "any-drift": "drift signal 'any-drift': no psi",
        "debt-drift": "drift signal 'debt-drift': no psi",
    }
    assert all("for 'debt' (no current values" in f.error for f in report.failed)
    clock.advance(minutes=61)
    log_predictions([(row, 0.5) for row in _rows(rng, 2000)])
    clock.advance(minutes=5)
    calm = watched.monitoring.run_once()
    assert (calm.evaluated, calm.alerts, calm.failed) == (3, (), ())


def test_telemetry_signals_need_a_time_window(watched: Platform) -> None:
    from mintaka import ValidationError

    with pytest.raises(ValidationError, match="time window"):
        watched.monitoring.add_monitor(
            MonitorSpec(
                endpoint="scoring",
                model="credit",
                signals=[
                    Signal(
                        name="errors",
                        kind=SignalKind.TELEMETRY,
                        metric="error_rate",
                        threshold=0.1,
                        window="100n",
                        owner="x",
                    )
                ],
            )
        )


def test_one_logged_integer_beyond_the_float_range_leaves_the_drift_signal_working(
    watched: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    rows: list[dict[str, Any]] = list(_rows(np.random.default_rng(3), 2000, shift=3.0))
    rows[0]["income"] = 10**400
    log_predictions([(row, 0.5) for row in rows])
    clock.advance(minutes=5)
    report = watched.monitoring.run_once()
    assert report.failed == ()
    assert [a.signal for a in report.alerts] == ["scoring:income-drift"]


def test_a_drift_signal_with_nothing_to_compare_with_fails_once_there_is_traffic(
    served: Platform, log_predictions: LogPredictions, clock: ManualClock
) -> None:
    served.monitoring.add_monitor(scoring_monitor(drift_signal()))
    assert served.monitoring.run_once().failed == ()  # no traffic yet: nothing to measure
    log_predictions([({"income": float(i)}, 0.5) for i in range(50)])
    clock.advance(minutes=5)
    report = served.monitoring.run_once()
    assert report.evaluated == 0
    [failure] = report.failed
    assert failure.error == _unprofiled("blue", 1)


def test_a_declared_input_no_row_logs_fails_an_all_features_signal(
    watched: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    watched.set_features("credit", 1, FEATURES)
    watched.monitoring.add_monitor(
        scoring_monitor(
            drift_signal(name="any-drift", metric="psi"),
            drift_signal(name="debt-drift", metric="psi:debt"),
        )
    )
    rng = np.random.default_rng(7)
    # the caller stopped sending debt: a schema change, not a feature without drift
    log_predictions([({"income": row["income"]}, 0.5) for row in _rows(rng, 2000)])
    clock.advance(minutes=5)
    report = watched.monitoring.run_once()
    [dataset] = watched.get_model_version("credit", 1).dataset_ids
    assert (report.evaluated, report.alerts) == (2, ())
    assert {f.signal: f.error for f in report.failed} == {
        name: f"drift signal {name!r}: no psi against {dataset} for 'debt' (not logged "
        "in the window)"
        for name in ("any-drift", "debt-drift")
    }


@pytest.mark.parametrize(
    ("metric", "refused"),
    [
        ("chi2_statistic", r"\(ds-\w+\) profiles no categorical feature \(only \['numeric'\]\)"),
        ("chi2_statistic:income", r"'income' of the training data .* is a numeric feature"),
        ("chi2_statistic:prediction", r"'prediction' of the model's own scores is a numeric"),
    ],
)
def test_a_drift_statistic_no_watched_feature_has_is_refused_when_the_monitor_is_added(
    watched: Platform, metric: str, refused: str
) -> None:
    from mintaka import ValidationError

    signal = drift_signal(name="categories", metric=metric)
    with pytest.raises(ValidationError, match="measures chi2_statistic, which only categorical"):
        watched.monitoring.check_monitor(scoring_monitor(signal))
    with pytest.raises(ValidationError, match=refused):
        watched.monitoring.add_monitor(scoring_monitor(signal))
    watched.monitoring.add_monitor(scoring_monitor(drift_signal(name="ks", metric="ks_statistic")))


def test_a_drift_statistic_the_serving_profile_lacks_fails_the_signal_instead_of_passing(
    served: Platform,
    clock: ManualClock,
    make_servable: MakeArtifact,
    tmp_path: Path,
) -> None:
    served.monitoring.add_monitor(
        scoring_monitor(drift_signal(name="categories", metric="chi2_statistic"))
    )
    train = write_training(tmp_path, _rows(np.random.default_rng(1), 200))
    dataset_id = register_trained_credit(served, make_servable, train, artifact=b"v2")
    served.serving.deploy("scoring", "credit:2", route="green", weights={"blue": 0, "green": 100})
    log_on(served, "green", 2, _rows(np.random.default_rng(8), 200, shift=3.0))
    clock.advance(minutes=5)
    report = served.monitoring.run_once()
    assert (report.evaluated, report.alerts) == (0, ())
    [failure] = report.failed
    assert failure.error == (
        "drift signal 'categories' measures chi2_statistic, which only categorical features "
        f"have, and the training data {dataset_id} profiles no categorical feature (only "
        "['numeric']): nothing could be measured"
    )


def _label_and_segment_training(tmp_path: Path) -> Path:
    """Training data with the label (``default``) and a column that is no model input
    (``segment``, always empty) beside the inputs ``income`` and ``debt``."""
    rng = np.random.default_rng(1)
    rows = [
        {"income": a, "debt": b, "default": int(a > 0), "segment": ""}
        for a, b in rng.normal(size=(3000, 2))
    ]
    return write_training(tmp_path, rows)


def _applications(seed: int, n: int = 2000) -> list[tuple[dict[str, Any], Any]]:
    rng = np.random.default_rng(seed)
    return [({"income": float(a), "debt": float(b)}, 0.5) for a, b in rng.normal(size=(n, 2))]


def test_an_all_features_signal_watches_the_declared_inputs_not_the_label_column(
    platform: Platform,
    make_servable: MakeArtifact,
    tmp_path: Path,
    clock: ManualClock,
    log_predictions: LogPredictions,
) -> None:
    from mintaka.domain.registry import features_signature

    train = _label_and_segment_training(tmp_path)
    dataset = serve_credit(
        platform, make_servable, train, signature=features_signature("income,debt")
    )
    platform.monitoring.add_monitor(scoring_monitor(drift_signal(name="any", metric="psi")))
    log_predictions(_applications(2))
    clock.advance(minutes=5)
    healthy = platform.monitoring.run_once()
    assert (healthy.evaluated, healthy.alerts, healthy.failed) == (1, (), ())
    clock.advance(minutes=61)
    log_predictions([({"income": row["income"]}, 0.5) for row, _ in _applications(3)])
    clock.advance(minutes=5)
    [failure] = platform.monitoring.run_once().failed  # a declared input the caller dropped
    assert failure.error == (
        f"drift signal 'any': no psi against {dataset} for 'debt' (not logged in the window)"
    )


def test_without_a_signature_an_all_features_signal_watches_the_profiled_features_logged(
    platform: Platform,
    make_servable: MakeArtifact,
    tmp_path: Path,
    clock: ManualClock,
    log_predictions: LogPredictions,
) -> None:
    serve_credit(platform, make_servable, _label_and_segment_training(tmp_path))
    platform.monitoring.add_monitor(scoring_monitor(drift_signal(name="any", metric="psi")))
    log_predictions(_applications(2))
    clock.advance(minutes=5)
    report = platform.monitoring.run_once()
    assert (report.evaluated, report.alerts, report.failed) == (1, (), ())


def test_without_a_signature_a_window_logging_no_profiled_feature_fails_the_signal(
    platform: Platform,
    make_servable: MakeArtifact,
    tmp_path: Path,
    clock: ManualClock,
    log_predictions: LogPredictions,
) -> None:
    dataset = serve_credit(platform, make_servable, _label_and_segment_training(tmp_path))
    platform.monitoring.add_monitor(scoring_monitor(drift_signal(name="any", metric="psi")))
    renamed = [
        ({"salary": row["income"], "loans": row["debt"]}, out) for row, out in _applications(2)
    ]
    log_predictions(renamed)  # the callers renamed every input
    clock.advance(minutes=5)
    report = platform.monitoring.run_once()
    assert (report.evaluated, report.alerts) == (0, ())
    [failure] = report.failed
    assert failure.error.startswith(
        "drift signal 'any': no prediction in the window logs any of the features "
        f"['debt', 'default', 'income'] that the training data {dataset} profiles"
    )


def test_without_a_signature_a_statistic_no_logged_feature_has_fails_the_signal(
    platform: Platform,
    make_servable: MakeArtifact,
    tmp_path: Path,
    clock: ManualClock,
    log_predictions: LogPredictions,
) -> None:
    rng = np.random.default_rng(1)
    train = write_training(
        tmp_path,
        [{**r, "outcome": "approve" if r["income"] > 0 else "deny"} for r in _rows(rng, 3000)],
    )
    dataset = serve_credit(platform, make_servable, train)
    # accepted: the training data profiles a categorical column, the label, never logged
    platform.monitoring.add_monitor(
        scoring_monitor(drift_signal(name="categories", metric="chi2_statistic", threshold=10))
    )
    log_predictions([(row, 0.5) for row in _rows(rng, 500, shift=5.0)])
    clock.advance(minutes=5)
    report = platform.monitoring.run_once()
    assert (report.evaluated, report.alerts) == (0, ())
    [failure] = report.failed
    assert failure.error == (
        "drift signal 'categories' measures chi2_statistic, which only categorical features "
        f"have, and the training data {dataset} (among the features the window logs) profiles "
        "no categorical feature (only ['numeric']): nothing could be measured"
    )


def test_a_training_column_without_values_is_no_feature_a_drift_signal_can_watch(
    platform: Platform, make_servable: MakeArtifact, tmp_path: Path
) -> None:
    from mintaka import ValidationError
    from mintaka.domain.registry import features_signature

    train = _label_and_segment_training(tmp_path)
    dataset = serve_credit(platform, make_servable, train, signature=features_signature("segment"))
    with pytest.raises(ValidationError, match=rf"'segment', which has no values in .*{dataset}"):
        platform.monitoring.add_monitor(
            scoring_monitor(drift_signal(name="segment", metric="psi:segment"))
        )
    with pytest.raises(ValidationError, match=r"none of the inputs \['segment'\] of credit:1"):
        platform.monitoring.add_monitor(scoring_monitor(drift_signal(name="any", metric="psi")))
    assert platform.monitoring.monitors() == []


def test_a_quiet_window_is_no_recovery_of_a_failing_signal(
    watched: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    watched.monitoring.add_monitor(
        scoring_monitor(drift_signal(name="debt-drift", metric="psi:debt"))
    )
    rng = np.random.default_rng(9)
    for _ in range(2):
        log_predictions([({"income": row["income"]}, 0.5) for row in _rows(rng, 500)])
        clock.advance(minutes=5)
        assert [f.signal for f in watched.monitoring.run_once().failed] == ["debt-drift"]
        clock.advance(hours=2)  # nothing logged: nothing measured, nothing recovered
        assert watched.monitoring.run_once().failed == ()
    gaps = ("monitor.signal.failed", "monitor.signal.recovered")
    actions = [e.action for e in watched.audit.events() if e.action in gaps]
    assert actions == ["monitor.signal.failed"]


def test_a_failure_naming_another_feature_is_audited_though_only_a_number_differs(
    platform: Platform,
    make_servable: MakeArtifact,
    tmp_path: Path,
    clock: ManualClock,
    log_predictions: LogPredictions,
) -> None:
    from mintaka.domain.registry import features_signature

    rng = np.random.default_rng(1)
    train = write_training(
        tmp_path, [{"2023": a, "2024": b} for a, b in rng.normal(size=(3000, 2))]
    )
    serve_credit(platform, make_servable, train, signature=features_signature("2023,2024"))
    platform.monitoring.add_monitor(scoring_monitor(drift_signal(name="any", metric="psi")))
    for logged, dropped in (("2024", "2023"), ("2023", "2024")):
        for _ in range(2):  # the same failure twice: audited once
            log_predictions([({logged: float(v)}, 0.5) for v in rng.normal(size=500)])
            clock.advance(minutes=5)
            [failure] = platform.monitoring.run_once().failed
            assert f"for {dropped!r} (not logged in the window)" in failure.error
        clock.advance(hours=2)
    audited = [
        e.details["error"] for e in platform.audit.events() if e.action == "monitor.signal.failed"
    ]
    assert [error.split(" for ")[-1] for error in audited] == [
        "'2023' (not logged in the window)",
        "'2024' (not logged in the window)",
    ]


def _shifted_version(platform: Platform, make_servable: MakeArtifact, tmp_path: Path) -> None:
    """Register ``credit:2``, trained on data whose income is shifted by 1.5."""
    train = write_training(tmp_path / "shifted", _rows(np.random.default_rng(11), 3000, shift=1.5))
    register_trained_credit(
        platform, make_servable, train, dataset="applications-2", artifact=b"v2"
    )


def test_a_canary_measures_each_route_against_the_profile_of_its_own_version(
    watched: Platform, clock: ManualClock, make_servable: MakeArtifact, tmp_path: Path
) -> None:
    _shifted_version(watched, make_servable, tmp_path)
    watched.serving.deploy("scoring", "credit:2", route="green", weights={"blue": 80, "green": 20})
    rng = np.random.default_rng(12)
    log_on(watched, "blue", 1, _rows(rng, 1600))
    log_on(watched, "green", 2, _rows(rng, 400, shift=1.5))  # as credit:2 was trained
    clock.advance(minutes=5)
    report = watched.monitoring.run_once()
    assert (report.evaluated, report.alerts, report.failed) == (1, (), ())

    watched.register_model(
        "credit", make_servable(b"v3"), flavor="pyfunc"
    )  # no training data named
    watched.serving.deploy(
        "scoring", "credit:3", route="red", weights={"blue": 80, "green": 0, "red": 20}
    )
    log_on(watched, "red", 3, _rows(rng, 400, shift=1.5))
    clock.advance(minutes=5)
    report = watched.monitoring.run_once()
    assert report.alerts == ()  # red's rows are never compared with another version's data
    [failure] = report.failed
    assert failure.error == _unprofiled("red", 3)


def test_after_a_redeploy_each_version_s_rows_are_measured_against_its_own_training_data(
    watched: Platform, clock: ManualClock, make_servable: MakeArtifact, tmp_path: Path
) -> None:
    _shifted_version(watched, make_servable, tmp_path)
    rng = np.random.default_rng(13)
    log_on(watched, "blue", 1, _rows(rng, 1600))  # answered before the redeploy
    watched.serving.deploy("scoring", "credit:2", route="green", weights={"blue": 0, "green": 100})
    clock.advance(minutes=5)
    log_on(watched, "green", 2, _rows(rng, 400, shift=1.5))  # as credit:2 was trained
    clock.advance(minutes=5)
    report = watched.monitoring.run_once()
    # credit:1's rows are no drift from credit:2's training data, nor the reverse
    assert (report.evaluated, report.alerts, report.failed) == (1, (), ())

    watched.register_model(
        "credit", make_servable(b"v3"), flavor="pyfunc"
    )  # no training data named
    watched.serving.deploy("scoring", "credit:3", route="red", weights={"green": 0, "red": 100})
    log_on(watched, "red", 3, _rows(rng, 400, shift=1.5))
    clock.advance(minutes=5)
    report = watched.monitoring.run_once()
    assert report.alerts == ()
    [failure] = report.failed
    assert failure.error == _unprofiled("red", 3)


def test_a_redeploy_of_a_version_trained_on_the_same_data_raises_no_drift_alert(
    watched: Platform, clock: ManualClock, make_servable: MakeArtifact
) -> None:
    [dataset_id] = watched.get_model_version("credit", 1).dataset_ids
    watched.register_model(
        "credit", make_servable(b"v2"), flavor="pyfunc", dataset_ids=[dataset_id]
    )
    rng = np.random.default_rng(21)
    log_on(watched, "blue", 1, _rows(rng, 5))  # the last answers before the redeploy
    watched.serving.deploy("scoring", "credit:2", route="green", weights={"blue": 0, "green": 100})
    clock.advance(minutes=1)
    log_on(watched, "green", 2, _rows(rng, 1995))
    clock.advance(minutes=5)
    report = watched.monitoring.run_once()
    assert (report.evaluated, report.alerts, report.failed) == (1, (), ())


def test_a_few_rows_of_another_version_are_named_as_too_few_not_measured(
    watched: Platform, clock: ManualClock, make_servable: MakeArtifact, tmp_path: Path
) -> None:
    _shifted_version(watched, make_servable, tmp_path)
    rng = np.random.default_rng(22)
    log_on(watched, "blue", 1, _rows(rng, 5, shift=3.0))  # drifted, but only five rows
    watched.serving.deploy("scoring", "credit:2", route="green", weights={"blue": 0, "green": 100})
    clock.advance(minutes=1)
    log_on(watched, "green", 2, _rows(rng, 1995, shift=4.0))  # drifted from credit:2's data
    clock.advance(minutes=5)
    report = watched.monitoring.run_once()
    assert report.failed == ()
    [alert] = report.alerts
    assert alert.details["note"] == (
        f"5 rows of route 'blue' (credit:1), fewer than the {MIN_GROUP_ROWS} drift needs; a "
        "longer window measures it"
    )
    clock.advance(minutes=61)
    log_on(watched, "blue", 1, _rows(rng, 5, shift=3.0))  # a window of five rows only
    clock.advance(minutes=1)
    alone = watched.monitoring.run_once()
    assert (alone.evaluated, alone.alerts, alone.failed) == (0, (), ())
    assert [n.note for n in alone.notes] == [alert.details["note"]]


def test_a_canary_of_a_few_rows_raises_no_drift_alert_on_healthy_traffic(
    watched: Platform, clock: ManualClock, make_servable: MakeArtifact, tmp_path: Path
) -> None:
    _shifted_version(watched, make_servable, tmp_path)
    watched.serving.deploy("scoring", "credit:2", route="green", weights={"blue": 99, "green": 1})
    rng = np.random.default_rng(23)
    log_on(watched, "blue", 1, _rows(rng, 1980))
    log_on(watched, "green", 2, _rows(rng, 20, shift=1.5))  # as trained, but 20 rows only
    clock.advance(minutes=5)
    report = watched.monitoring.run_once()
    assert (report.evaluated, report.alerts, report.failed) == (1, (), ())


def test_a_small_group_without_a_profile_fails_the_signal_beside_a_larger_one(
    watched: Platform, clock: ManualClock, make_servable: MakeArtifact
) -> None:
    watched.register_model(
        "credit", make_servable(b"v2"), flavor="pyfunc"
    )  # no training data named
    watched.serving.deploy("scoring", "credit:2", route="red", weights={"blue": 95, "red": 5})
    rng = np.random.default_rng(32)
    log_on(watched, "blue", 1, _rows(rng, 900))
    log_on(watched, "red", 2, _rows(rng, 45))
    clock.advance(minutes=5)
    report = watched.monitoring.run_once()
    assert (report.evaluated, report.alerts) == (1, ())
    [failure] = report.failed
    assert failure.error.startswith("drift signal 'income-drift': route 'red' (credit:2): ")


def test_when_no_group_has_enough_rows_none_is_measured(
    watched: Platform, clock: ManualClock, make_servable: MakeArtifact, tmp_path: Path
) -> None:
    _shifted_version(watched, make_servable, tmp_path)
    rng = np.random.default_rng(33)
    log_on(watched, "blue", 1, _rows(rng, 1))  # the last answer before the redeploy
    watched.serving.deploy("scoring", "credit:2", route="green", weights={"blue": 0, "green": 100})
    clock.advance(minutes=1)
    log_on(watched, "green", 2, _rows(rng, 49, shift=6.0))  # drifted from credit:2's data
    clock.advance(minutes=5)
    report = watched.monitoring.run_once()
    assert (report.evaluated, report.alerts, report.failed) == (0, (), ())
    [note] = report.notes
    assert note.note.startswith("1 rows of route 'blue' (credit:1), fewer than")
    assert "; 49 rows of route 'green' (credit:2), fewer than" in note.note
    clock.advance(minutes=61)
    log_on(watched, "green", 2, _rows(rng, INCOME_VALUES, shift=6.0))
    clock.advance(minutes=5)
    [alert] = watched.monitoring.run_once().alerts  # enough rows: the same drift alerts
    assert "note" not in alert.details


def test_a_group_left_out_for_too_few_rows_is_reported_without_an_alert(
    watched: Platform,
    clock: ManualClock,
    make_servable: MakeArtifact,
    tmp_path: Path,
    home: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _shifted_version(watched, make_servable, tmp_path)
    watched.serving.deploy("scoring", "credit:2", route="green", weights={"blue": 95, "green": 5})
    rng = np.random.default_rng(31)
    log_on(watched, "blue", 1, _rows(rng, 900))
    log_on(watched, "green", 2, _rows(rng, 45, shift=8.0))  # a 5 % canary in 945 rows
    clock.advance(minutes=5)
    report = watched.monitoring.run_once()
    assert (report.evaluated, report.alerts, report.failed) == (1, (), ())
    expected = (
        f"45 rows of route 'green' (credit:2), fewer than the {MIN_GROUP_ROWS} drift needs; a "
        "longer window measures it"
    )
    assert [(n.endpoint, n.signal, n.note) for n in report.notes] == [
        ("scoring", "income-drift", expected)
    ]
    watched.monitoring.add_monitor(scoring_monitor(drift_signal(name="recent", window="1000n")))
    watched.close()
    main(["--home", str(home), "monitor", "run", "--once"])
    out = " ".join(capsys.readouterr().out.split())
    assert f"signal 'recent' on scoring left out: {expected}" in out
    main(["--home", str(home), "monitor", "run", "--once", "--json"])
    printed = json.loads(capsys.readouterr().out)
    assert printed["notes"] == [{"endpoint": "scoring", "signal": "recent", "note": expected}]


@pytest.mark.parametrize("retired", [{}, {"unmeasured_runs": 3}])
def test_a_monitor_stored_with_a_too_small_count_window_fails_clearly_when_run(
    watched: Platform,
    clock: ManualClock,
    log_predictions: LogPredictions,
    retired: dict[str, Any],
) -> None:
    _store_narrow_monitor(watched, clock, **retired)
    log_predictions([(row, 0.5) for row in _rows(np.random.default_rng(2), INCOME_VALUES)])
    clock.advance(minutes=5)
    report = watched.monitoring.run_once()
    assert report.evaluated == 1  # the other monitor still runs
    [failure] = report.failed
    assert failure.signal == "narrow"
    assert "monitor mon-old of scoring (model credit) was stored before" in failure.error
    assert f"window of 20 records, fewer than the {MIN_GROUP_ROWS}" in failure.error
    assert "remove it (mintaka monitor remove mon-old --reason TEXT)" in failure.error
    assert [s.name for m in watched.monitoring.monitors() for s in m.signals] == [
        "income-drift",
        "narrow",
    ]


def _store_narrow_monitor(platform: Platform, clock: ManualClock, **retired: Any) -> MonitorSpec:
    """A monitor of ``scoring`` (id ``mon-old``) with a drift signal ``narrow`` of a 20-record
    window, as stored before such windows were refused (with the ``retired`` fields stored
    beside it, as older versions stored them)."""
    old = scoring_monitor(drift_signal(name="narrow", window="20n"))
    with platform.store.write() as conn:
        conn.execute(
            monitors.insert().values(
                id="mon-old",
                endpoint="scoring",
                model="credit",
                spec={**old.model_dump(mode="json"), **retired},
                created_at=clock.now().isoformat(),
                created_by="dana",
            )
        )
    return old


def test_removing_a_stored_monitor_the_runner_fails_on_lets_monitor_run_pass_again(
    watched: Platform,
    clock: ManualClock,
    log_predictions: LogPredictions,
    home: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    old = _store_narrow_monitor(watched, clock)
    log_predictions([(row, 0.5) for row in _rows(np.random.default_rng(2), 100)])
    clock.advance(minutes=5)
    watched.close()
    with pytest.raises(SystemExit) as exited:
        main(["--home", str(home), "monitor", "run", "--once"])
    assert exited.value.code == 1
    capsys.readouterr()
    main(["--home", str(home), "monitor", "remove", "mon-old", "--reason", "window too narrow"])
    assert "removed monitor mon-old of scoring (signals: narrow)" in capsys.readouterr().out
    main(["--home", str(home), "monitor", "run", "--once"])
    with Platform(home, clock=clock) as reopened:
        assert [m.signals[0].name for m in reopened.monitoring.monitors()] == ["income-drift"]
        [event] = [e for e in reopened.audit.events() if e.action == "monitor.remove"]
    assert (event.subject, event.details) == (
        "scoring",
        {"monitor": "mon-old", "spec": old.model_dump(mode="json"), "reason": "window too narrow"},
    )


def test_a_removed_monitor_no_longer_covers_its_endpoint_and_leaves_its_tickets_open(
    watched: Platform, clock: ManualClock, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    [monitor_id] = [
        e.details["monitor"] for e in watched.audit.events() if e.action == "monitor.add"
    ]
    watched.monitoring.raise_alert("income-drift", "scoring", value=0.5, threshold=0.2)
    watched.close()
    main(["--home", str(home), "monitor", "remove", monitor_id, "--reason", "retired", "--json"])
    printed = json.loads(capsys.readouterr().out)
    assert (printed["monitor"], printed["spec"]["endpoint"]) == (monitor_id, "scoring")
    with pytest.raises(SystemExit) as exited:
        main(["--home", str(home), "monitor", "coverage"])
    assert exited.value.code == 1
    with Platform(home, clock=clock) as reopened:
        assert [c.monitored for c in reopened.monitoring.coverage()] == [False]
        assert [t.status for t in reopened.monitoring.tickets()] == [TicketStatus.OPEN]


def test_removing_a_monitor_refuses_an_unknown_id_or_an_empty_reason_changing_nothing(
    watched: Platform,
) -> None:
    [monitor_id] = [
        e.details["monitor"] for e in watched.audit.events() if e.action == "monitor.add"
    ]
    with pytest.raises(NotFound, match="no monitor mon-nope"):
        watched.monitoring.remove_monitor("mon-nope", reason="gone")
    with pytest.raises(ValidationError, match="needs a reason"):
        watched.monitoring.remove_monitor(monitor_id, reason="  ")
    assert len(watched.monitoring.monitors()) == 1
    assert "monitor.remove" not in [e.action for e in watched.audit.events()]


def test_a_removed_monitor_stays_on_record_off_duty_and_cannot_be_removed_twice(
    watched: Platform, clock: ManualClock
) -> None:
    [spec] = watched.monitoring.monitors()
    [monitor_id] = [
        e.details["monitor"] for e in watched.audit.events() if e.action == "monitor.add"
    ]
    clock.advance(minutes=5)
    watched.monitoring.remove_monitor(monitor_id, reason="retired")
    with watched.store.read() as conn:
        row = conn.execute(monitors.select().where(monitors.c.id == monitor_id)).one()
    assert (row.removed_at, row.removed_by) == (clock.now().isoformat(), watched.actor)
    assert watched.monitoring.monitors() == []
    assert watched.monitoring.run_once().evaluated == 0
    with pytest.raises(NotFound, match=f"monitor {monitor_id} was already removed at"):
        watched.monitoring.remove_monitor(monitor_id, reason="again")
    assert [e.action for e in watched.audit.events()].count("monitor.remove") == 1
    assert watched.monitoring.add_monitor(spec) != monitor_id  # a new monitor, not the removed


def test_a_removed_monitors_signal_name_waits_for_its_open_tickets_to_be_resolved(
    watched: Platform,
) -> None:
    [spec] = watched.monitoring.monitors()
    [monitor_id] = [
        e.details["monitor"] for e in watched.audit.events() if e.action == "monitor.add"
    ]
    _, ticket = watched.monitoring.raise_alert("scoring:income-drift", "scoring", value=0.5)
    watched.monitoring.remove_monitor(monitor_id, reason="replaced")
    with pytest.raises(Conflict, match=rf"open ticket\(s\) \['{ticket.id}'\]: resolve them"):
        watched.monitoring.add_monitor(spec)
    assert watched.monitoring.monitors() == []
    watched.monitoring.resolve(ticket.id, note="the old monitor is gone")
    assert watched.monitoring.add_monitor(spec) != monitor_id


def test_monitor_list_shows_the_id_monitor_remove_takes_and_leaves_removed_ones_out(
    watched: Platform, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    [monitor_id] = [
        e.details["monitor"] for e in watched.audit.events() if e.action == "monitor.add"
    ]
    watched.close()
    main(["--home", str(home), "monitor", "list", "--json"])
    [listed] = json.loads(capsys.readouterr().out)
    assert (listed["id"], listed["endpoint"]) == (monitor_id, "scoring")
    main(["--home", str(home), "monitor", "list"])
    assert monitor_id in capsys.readouterr().out
    main(["--home", str(home), "monitor", "remove", listed["id"], "--reason", "retired"])
    capsys.readouterr()
    main(["--home", str(home), "monitor", "list", "--json"])
    assert json.loads(capsys.readouterr().out) == []
