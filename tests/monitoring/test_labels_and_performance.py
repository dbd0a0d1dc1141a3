from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from artifact_kit import MakeArtifact
from monitoring_kit import LogPredictions, log_on, scoring_monitor
from sqlalchemy import func, select, update

from mintaka import ManualClock, NotFound, Platform, ValidationError, hookimpl
from mintaka.capabilities import Capability
from mintaka.cli.app import main
from mintaka.domain.monitoring import (
    Alert,
    Escalation,
    MonitorSpec,
    Signal,
    SignalKind,
    Ticket,
    TicketStatus,
)
from mintaka.domain.registry import Signature
from mintaka.errors import UnsupportedCapability
from mintaka.monitoring.service import (
    PERFORMANCE_METRICS,
    Unmeasured,
    _failing_signals,
    _unmeasured_signals,
    breaches,
)
from mintaka.store.schema import endpoints, labels, monitors, predictions, tickets


def performance_signal(**overrides: Any) -> Signal:
    values: dict[str, Any] = {
        "name": "accuracy",
        "kind": SignalKind.PERFORMANCE,
        "metric": "accuracy",
        "threshold": 0.8,
        "window": "1d",
        "owner": "oncall",
    }
    values.update(overrides)
    return Signal(**values)


def watch(platform: Platform, *signals: Signal) -> None:
    platform.monitoring.add_monitor(scoring_monitor(*signals))


def test_late_labels_turn_into_a_performance_value_and_a_replacement_is_audited(
    served: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    watch(served, performance_signal())
    ids = log_predictions([({"x": i}, i % 2) for i in range(100)])
    clock.advance(minutes=5)
    assert served.monitoring.run_once().evaluated == 0  # no labels yet: nothing to judge

    clock.advance(hours=2)  # the ground truth arrives late; 60 of 100 predictions were right
    truth = {pid: (i % 2 if i < 60 else 1 - i % 2) for i, pid in enumerate(ids)}
    assert served.monitoring.record_labels(truth) == 100
    report = served.monitoring.run_once()
    assert report.evaluated == 1
    [alert] = report.alerts
    assert (alert.value, alert.threshold) == (pytest.approx(0.6), 0.8)

    corrected = {pid: i % 2 for i, pid in enumerate(ids[60:], start=60)}
    served.monitoring.record_labels(corrected)  # corrections replace the earlier labels
    clock.advance(minutes=5)
    again = served.monitoring.run_once()
    assert (again.evaluated, again.alerts) == (1, ())
    replaced = [e for e in served.audit.events() if e.action == "label.replace"]
    assert len(replaced) == 40
    assert replaced[0].subject == ids[60]
    assert (replaced[0].details["previous"], replaced[0].details["label"]) == (1, 0)
    with served.store.read() as conn:
        assert conn.execute(select(func.count()).select_from(labels)).scalar() == 100


def test_a_label_for_an_unknown_prediction_refuses_the_whole_batch(
    served: Platform, log_predictions: LogPredictions
) -> None:
    [known] = log_predictions([({"x": 1}, 1)])
    with pytest.raises(NotFound, match="pred-nope"):
        served.monitoring.record_labels({known: 1, "pred-nope": 0})
    with served.store.read() as conn:
        assert conn.execute(select(func.count()).select_from(labels)).scalar() == 0


@pytest.mark.parametrize(
    ("metric", "threshold", "bad", "good"),
    [
        ("accuracy", 0.8, 0.7, 0.9),
        ("roc_auc", 0.75, 0.6, 0.8),
        ("rmse", 1.0, 1.5, 0.5),
        ("calibration_error", 0.05, 0.1, 0.01),
    ],
)
def test_a_threshold_marks_where_each_metric_turns_bad(
    metric: str, threshold: float, bad: float, good: float
) -> None:
    signal = performance_signal(metric=metric, threshold=threshold)
    assert breaches(signal, bad)
    assert not breaches(signal, good)
    assert PERFORMANCE_METRICS[metric] == ("below" if bad < threshold else "above")


def test_scores_and_regression_values_are_read_from_the_logged_output(
    served: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    watch(
        served,
        performance_signal(name="auc", metric="roc_auc", threshold=0.9),
        performance_signal(name="ece", metric="calibration_error", threshold=0.5),
        performance_signal(name="rmse", metric="rmse", threshold=0.4),
    )
    scores = [0.1, 0.4, 0.35, 0.8]
    truth = [0, 0, 1, 1]  # scikit-learn's example: ROC AUC 0.75
    outputs = [{"label": int(s > 0.5), "score": s} for s in scores]
    ids = log_predictions([({"x": i}, out) for i, out in enumerate(outputs)])
    served.monitoring.record_labels(dict(zip(ids, truth, strict=True)))
    clock.advance(minutes=1)
    report = served.monitoring.run_once()
    assert report.evaluated == 3
    found = {a.signal: a.value for a in report.alerts}  # calibration error 0.1375: no alert
    assert found == {"scoring:auc": pytest.approx(0.75), "scoring:rmse": pytest.approx(0.5)}


def test_a_signal_that_cannot_be_evaluated_is_reported_and_the_rest_still_run(
    served: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    watch(served, performance_signal(name="auc", metric="roc_auc", threshold=0.7))
    watch(served, performance_signal(threshold=0.99))  # a later monitor
    path = [Escalation(after_minutes=10, to="lead")]
    _, ticket = served.monitoring.raise_alert("latency", "scoring", escalation=path)
    ids = log_predictions([({"x": i}, {"label": i % 3, "score": 0.5}) for i in range(30)])
    served.monitoring.record_labels({pid: (i + 1) % 3 for i, pid in enumerate(ids)})
    clock.advance(minutes=15)
    report = served.monitoring.run_once()  # three classes: no ROC AUC to compute
    [failure] = report.failed
    assert (failure.endpoint, failure.signal) == ("scoring", "auc")
    assert "expected a binary label" in failure.error
    assert report.evaluated == 1
    assert [a.signal for a in report.alerts] == ["scoring:accuracy"]
    assert report.escalated == (ticket.id,)
    [event] = [e for e in served.audit.events() if e.action == "monitor.signal.failed"]
    assert event.subject == "scoring:auc"
    assert "expected a binary label" in event.details["error"]
    assert served.audit.verify().ok


def test_a_persisting_failure_is_audited_once_and_its_end_when_measured_again(
    served: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    watch(served, performance_signal(name="auc", metric="roc_auc", threshold=0.7))
    ids = log_predictions([({"x": i}, {"label": i % 3, "score": 0.5}) for i in range(30)])
    served.monitoring.record_labels({pid: (i + 1) % 3 for i, pid in enumerate(ids)})

    def audited() -> list[tuple[str, str]]:
        actions = ("monitor.signal.failed", "monitor.signal.recovered")
        return [(e.action, e.subject) for e in served.audit.events() if e.action in actions]

    for _ in range(3):  # the same failure on every pass: reported each time, audited once
        clock.advance(minutes=15)
        assert [f.signal for f in served.monitoring.run_once().failed] == ["auc"]
    assert audited() == [("monitor.signal.failed", "scoring:auc")]

    clock.advance(days=2)  # the three-class window has passed; binary labels arrive
    ids = log_predictions([({"x": i}, {"label": i % 2, "score": i % 2}) for i in range(20)])
    served.monitoring.record_labels({pid: i % 2 for i, pid in enumerate(ids)})
    clock.advance(minutes=1)
    report = served.monitoring.run_once()
    assert (report.failed, report.evaluated) == ((), 1)
    assert audited() == [
        ("monitor.signal.failed", "scoring:auc"),
        ("monitor.signal.recovered", "scoring:auc"),
    ]
    clock.advance(minutes=1)
    served.monitoring.run_once()
    assert len(audited()) == 2  # nothing more while it is measured
    assert served.audit.verify().ok


def test_removing_a_monitor_ends_its_open_failure_and_unmeasured_stretch(
    served: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    spec = scoring_monitor(
        performance_signal(name="auc", metric="roc_auc", threshold=0.7),
        performance_signal(name="late", window="10m"),
    )
    monitor_id = served.monitoring.add_monitor(spec)
    ids = log_predictions([({"x": i}, {"label": i % 3, "score": 0.5}) for i in range(30)])
    served.monitoring.record_labels({pid: (i + 1) % 3 for i, pid in enumerate(ids)})
    clock.advance(minutes=15)  # "auc" fails on three classes; "late" has nothing in 10 minutes
    assert [f.signal for f in served.monitoring.run_once().failed] == ["auc"]
    assert list(served.monitoring.unmeasured()) == ["scoring:late"]

    served.monitoring.remove_monitor(monitor_id, reason="replaced")
    with served.store.read() as conn:
        assert (_failing_signals(conn), _unmeasured_signals(conn)) == ({}, {})
    ended = {
        e.subject: e.details
        for e in served.audit.events()
        if e.action in ("monitor.signal.failed.ended", "monitor.signal.unmeasured.ended")
    }
    assert ended["scoring:auc"] == {"why": f"monitor {monitor_id} was removed: replaced"}
    assert ended["scoring:late"]["why"] == f"monitor {monitor_id} was removed: replaced"

    assert served.monitoring.add_monitor(spec) != monitor_id
    clock.advance(minutes=15)
    assert [f.signal for f in served.monitoring.run_once().failed] == ["auc"]
    failed = [e for e in served.audit.events() if e.action == "monitor.signal.failed"]
    assert [e.subject for e in failed] == ["scoring:auc", "scoring:auc"]  # recorded afresh
    assert served.audit.verify().ok


def test_a_failure_from_before_its_signal_went_on_duty_is_not_taken_for_its_own(
    served: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    spec = scoring_monitor(performance_signal(name="auc", metric="roc_auc", threshold=0.7))
    monitor_id = served.monitoring.add_monitor(spec)
    ids = log_predictions([({"x": i}, {"label": i % 3, "score": 0.5}) for i in range(30)])
    served.monitoring.record_labels({pid: (i + 1) % 3 for i, pid in enumerate(ids)})
    clock.advance(minutes=15)
    served.monitoring.run_once()
    with served.store.write() as conn:  # removed before a removal ended its failure
        conn.execute(
            update(monitors)
            .where(monitors.c.id == monitor_id)
            .values(removed_at=clock.now().isoformat(), removed_by="dana")
        )
    clock.advance(minutes=1)
    served.monitoring.add_monitor(spec)
    clock.advance(minutes=1)
    assert [f.signal for f in served.monitoring.run_once().failed] == ["auc"]
    failed = [e for e in served.audit.events() if e.action == "monitor.signal.failed"]
    assert [e.subject for e in failed] == ["scoring:auc", "scoring:auc"]
    clock.advance(minutes=1)
    served.monitoring.run_once()  # the new monitor's failure persisting is recorded once
    assert [e.action for e in served.audit.events()].count("monitor.signal.failed") == 2


def test_a_failure_from_before_a_release_is_ended_before_the_signal_fails_afresh(
    served: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    served.monitoring.add_monitor(
        scoring_monitor(performance_signal(name="auc", metric="roc_auc", threshold=0.7))
    )
    ids = log_predictions([({"x": i}, {"label": i % 3, "score": 0.5}) for i in range(30)])
    served.monitoring.record_labels({pid: (i + 1) % 3 for i, pid in enumerate(ids)})
    clock.advance(minutes=15)
    assert [f.signal for f in served.monitoring.run_once().failed] == ["auc"]
    served.serving.kill("scoring", reason="incident")
    clock.advance(minutes=1)
    served.serving.unkill("scoring", reason="fixed")
    clock.advance(minutes=1)

    assert [f.signal for f in served.monitoring.run_once().failed] == ["auc"]
    trail = [
        (e.action, e.subject, e.details.get("why"))
        for e in served.audit.events()
        if e.action.startswith("monitor.signal.failed")
    ]
    assert [(action, subject) for action, subject, _ in trail] == [
        ("monitor.signal.failed", "scoring:auc"),
        ("monitor.signal.failed.ended", "scoring:auc"),
        ("monitor.signal.failed", "scoring:auc"),
    ]
    assert "released from its kill switch" in str(trail[1][2])
    clock.advance(minutes=1)
    served.monitoring.run_once()  # the new failure persisting ends and records nothing more
    assert len([e for e in served.audit.events() if e.action.startswith("monitor.signal.f")]) == 3
    assert served.audit.verify().ok


def test_a_failure_to_audit_a_failed_signal_does_not_stop_the_run(
    served: Platform,
    clock: ManualClock,
    log_predictions: LogPredictions,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    watch(served, performance_signal(name="auc", metric="roc_auc", threshold=0.7))
    ids = log_predictions([({"x": i}, {"label": i % 3, "score": 0.5}) for i in range(30)])
    served.monitoring.record_labels({pid: (i + 1) % 3 for i, pid in enumerate(ids)})
    clock.advance(minutes=15)
    original = served._audit

    def refusing(conn: object, action: str, subject: str, **details: object) -> object:
        if action == "monitor.signal.failed":
            raise OSError("disk full")
        return original(conn, action, subject, **details)  # type: ignore[arg-type]

    monkeypatch.setattr(served, "_audit", refusing)
    report = served.monitoring.run_once()
    assert [f.signal for f in report.failed] == ["auc"]


def test_monitor_run_once_reports_a_failed_signal_and_exits_1(
    served: Platform,
    log_predictions: LogPredictions,
    home: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    watch(
        served,
        performance_signal(name="auc", metric="roc_auc", threshold=0.7, window="100n"),
        performance_signal(threshold=0.99, window="100n"),
    )
    ids = log_predictions([({"x": i}, {"label": i % 3, "score": 0.5}) for i in range(30)])
    served.monitoring.record_labels({pid: (i + 1) % 3 for i, pid in enumerate(ids)})
    served.close()
    code = 0
    try:
        main(["--home", str(home), "monitor", "run", "--once"])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    assert code == 1
    assert "evaluated 1 signals: 1 alerts, 0 escalations, 1 signals failed" in out
    assert "signal 'auc' on scoring failed: expected a binary label" in " ".join(err.split())


def test_performance_and_fairness_signals_name_a_known_metric(served: Platform) -> None:
    with pytest.raises(ValidationError, match="performance signal"):
        watch(served, performance_signal(metric="f1"))
    with pytest.raises(ValidationError, match="fairness signal"):
        watch(served, performance_signal(kind=SignalKind.FAIRNESS, metric="demographic_parity"))


class RetrainingRecorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, Alert]] = []

    @hookimpl
    def mintaka_retraining_requested(self, model: str, reason: str, alert: Alert) -> None:
        self.calls.append((model, reason, alert))


def test_a_performance_alert_on_a_retrain_signal_asks_for_retraining(
    served: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    recorder = RetrainingRecorder()
    served.plugins.register(recorder)
    watch(
        served,
        performance_signal(name="retrains", retrain=True),
        performance_signal(name="only-alerts", threshold=0.9),
    )
    ids = log_predictions([({"x": i}, 1) for i in range(10)])
    served.monitoring.record_labels({pid: int(i < 5) for i, pid in enumerate(ids)})
    clock.advance(minutes=1)
    report = served.monitoring.run_once()
    assert len(report.alerts) == 2
    [(model, reason, alert)] = recorder.calls
    assert model == "credit"
    assert alert.signal == "scoring:retrains"
    assert "accuracy = 0.5, below the threshold 0.8" in reason


def test_monitor_labels_reads_a_csv(
    served: Platform,
    log_predictions: LogPredictions,
    home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ids = log_predictions([({"x": 1}, 1), ({"x": 2}, "no")])
    path = tmp_path / "labels.csv"
    path.write_text(f"prediction_id,label\n{ids[0]},1\n{ids[1]},no\n")
    served.close()
    code = 0
    try:
        main(["--home", str(home), "--as", "labeller", "monitor", "labels", str(path)])
    except SystemExit as exc:
        code = int(exc.code or 0)
    assert code == 0
    assert "2 labels recorded" in capsys.readouterr().out
    with Platform(home) as plat, plat.store.read() as conn:
        stored = {p: v for p, v in conn.execute(select(labels.c.prediction_id, labels.c.label))}
        senders = set(conn.execute(select(labels.c.sent_by)).scalars())
    assert stored == {ids[0]: 1, ids[1]: "no"}
    assert senders == {"labeller"}


@pytest.mark.parametrize(("true", "false"), [("True", "False"), ("TRUE", "false")])
def test_monitor_labels_reads_booleans_as_pandas_writes_them(
    served: Platform,
    clock: ManualClock,
    log_predictions: LogPredictions,
    home: Path,
    tmp_path: Path,
    true: str,
    false: str,
) -> None:
    watch(served, performance_signal())
    ids = log_predictions([({"x": i}, i % 2 == 0) for i in range(100)])
    path = tmp_path / "labels.csv"
    rows = "".join(f"{pid},{true if i % 2 == 0 else false}\n" for i, pid in enumerate(ids))
    path.write_text("prediction_id,label\n" + rows)
    main(["--home", str(home), "monitor", "labels", str(path)])
    clock.advance(minutes=5)
    report = served.monitoring.run_once()
    assert (report.evaluated, report.alerts) == (1, ())


def test_monitor_labels_keeps_the_string_classes_of_a_model_that_predicts_strings(
    served: Platform,
    clock: ManualClock,
    log_predictions: LogPredictions,
    home: Path,
    tmp_path: Path,
) -> None:
    watch(served, performance_signal())
    names = ["True" if i % 2 == 0 else "False" for i in range(10)]
    ids = log_predictions([({"x": i}, name) for i, name in enumerate(names)])
    numeric = log_predictions([({"x": 0}, {"score": 0.5})])  # no class logged, no signature
    path = tmp_path / "labels.csv"
    rows = "".join(f"{pid},{name}\n" for pid, name in zip(ids, names, strict=True))
    path.write_text(f"prediction_id,label\n{rows}{numeric[0]},True\n")
    main(["--home", str(home), "monitor", "labels", str(path)])
    with Platform(home) as plat, plat.store.read() as conn:
        stored = dict(conn.execute(select(labels.c.prediction_id, labels.c.label)).all())
    assert [stored[pid] for pid in ids] == names
    assert stored[numeric[0]] is True
    assert served.monitoring.string_classes([numeric[0], "pred-unknown"]) == set()


def test_a_signature_of_string_outputs_keeps_labels_strings(
    platform: Platform, make_servable: MakeArtifact
) -> None:
    platform.register_model(
        "credit",
        make_servable(b"v1"),
        flavor="pyfunc",
        owner="dana",
        signature=Signature(inputs={"x": "double"}, outputs={"label": "string"}),
    )
    platform.serving.create_endpoint("scoring", "credit:1", route="blue")
    version = platform.get_model_version("credit", 1)
    with platform.store.write() as conn:
        conn.execute(
            predictions.insert().values(
                id="p1",
                endpoint="scoring",
                route="blue",
                model="credit",
                version=1,
                version_id=version.id,
                input_digest="sha256:" + "0" * 64,
                inputs={"x": 1},
                output={"score": 0.9},
                status="ok",
                shadow=0,
                latency_ms=1.0,
                at=platform.clock.now().isoformat(),
            )
        )
    assert platform.monitoring.string_classes(["p1"]) == {"p1"}


@pytest.mark.parametrize("label", ["", "  ", None, float("nan")])
def test_an_empty_label_is_refused_and_nothing_is_stored(
    served: Platform, log_predictions: LogPredictions, label: object
) -> None:
    [first, second] = log_predictions([({"x": 1}, 1), ({"x": 2}, 0)])
    with pytest.raises(ValidationError, match="must not be empty"):
        served.monitoring.record_labels({first: 1, second: label})
    with served.store.read() as conn:
        assert conn.execute(select(labels.c.prediction_id)).all() == []


@pytest.mark.parametrize(
    "body",
    [
        "prediction_id,label\n{a},1\n{b}\n",
        "prediction_id,label\n,1\n",
        "prediction_id,label\n{a},\n",
        "prediction_id,label,label\n{a},1,0\n",
    ],
)
def test_monitor_labels_names_the_bad_row_of_a_csv(
    served: Platform,
    log_predictions: LogPredictions,
    home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    body: str,
) -> None:
    a, b = log_predictions([({"x": 1}, 1), ({"x": 2}, 0)])
    path = tmp_path / "labels.csv"
    path.write_text(body.format(a=a, b=b))
    served.close()
    code = 0
    try:
        main(["--home", str(home), "monitor", "labels", str(path)])
    except SystemExit as exc:
        code = int(exc.code or 0)
    _, err = capsys.readouterr()
    assert code == 1
    assert "Traceback" not in err
    assert any(
        s in err for s in ("needs a prediction_id and a label", "must not be empty", "named twice")
    )
    with Platform(home) as plat, plat.store.read() as conn:
        assert conn.execute(select(labels.c.prediction_id)).all() == []


@pytest.mark.parametrize("every", ["-1", "0", "0.5", "nan", "inf", "1e9"])
def test_monitor_run_refuses_a_pace_it_cannot_keep_before_any_pass(
    served: Platform, home: Path, capsys: pytest.CaptureFixture[str], every: str
) -> None:
    served.close()
    code = 0
    try:
        main(["--home", str(home), "monitor", "run", "--every", every])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    assert code == 1
    assert "--every takes 1 to 86400 seconds" in " ".join(err.split())
    assert "evaluated" not in out


def test_class_metrics_refuse_outputs_that_are_scores_instead_of_reporting_a_wrong_value(
    served: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    watch(
        served,
        performance_signal(name="acc"),
        performance_signal(name="auc", metric="roc_auc", threshold=0.5),
        performance_signal(
            name="parity",
            kind=SignalKind.FAIRNESS,
            metric="demographic_parity:group",
            threshold=0.5,
        ),
    )
    ids = log_predictions([({"x": i, "group": i % 2}, 0.9 if i < 5 else 0.1) for i in range(10)])
    served.monitoring.record_labels({pid: int(i < 5) for i, pid in enumerate(ids)})
    clock.advance(minutes=1)
    report = served.monitoring.run_once()
    assert report.alerts == ()  # the scores rank perfectly: roc_auc 1.0
    assert report.evaluated == 1
    failures = {f.signal: f.error for f in report.failed}
    assert set(failures) == {"acc", "parity"}
    assert "the logged outputs are scores (e.g. 0." in failures["acc"]


def test_calibration_error_never_takes_the_single_labelled_class_for_the_positive_one(
    served: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    watch(
        served,
        performance_signal(name="ece", metric="calibration_error", threshold=0.2),
        performance_signal(
            name="ece-yes", metric="calibration_error", threshold=0.2, positive="yes"
        ),
    )
    # a well-calibrated model: P(yes) = 0.05, and every label in this window is "no"
    ids = log_predictions([({"x": i}, {"label": "no", "score": 0.05}) for i in range(100)])
    served.monitoring.record_labels(dict.fromkeys(ids, "no"))
    clock.advance(minutes=5)
    report = served.monitoring.run_once()
    assert (report.evaluated, report.alerts, report.failed) == (1, (), ())


def test_a_nan_prediction_or_score_fails_the_signal_instead_of_passing_it(
    served: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    watch(
        served,
        performance_signal(name="rmse", metric="rmse", threshold=1.0),
        performance_signal(name="auc", metric="roc_auc", threshold=0.75),
    )
    # 99 predictions 100 off and scores perfectly inverted, then one NaN output
    outputs: list[Any] = [{"label": 100.0, "score": 0.9 - 0.8 * (i % 2)} for i in range(99)]
    outputs.append({"label": math.nan, "score": math.nan})
    ids = log_predictions([({"x": i}, out) for i, out in enumerate(outputs)])
    served.monitoring.record_labels({pid: i % 2 for i, pid in enumerate(ids)})
    clock.advance(minutes=5)
    report = served.monitoring.run_once()
    assert (report.evaluated, report.alerts) == (0, ())
    assert {f.signal: "finite" in f.error for f in report.failed} == {"rmse": True, "auc": True}


def test_a_value_that_is_not_finite_is_never_taken_for_fine(
    served: Platform, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    signal = performance_signal(metric="roc_auc", threshold=0.75)
    with pytest.raises(ValidationError, match="not a finite number"):
        breaches(signal, math.nan)
    watch(served, signal)
    monkeypatch.setattr(type(served.monitoring), "_measure", lambda *_: math.nan)
    for _ in range(2):  # a failing signal, audited once, never measured nor recovered
        clock.advance(minutes=5)
        report = served.monitoring.run_once()
        assert (report.evaluated, report.alerts, len(report.failed)) == (0, (), 1)
    actions = [e.action for e in served.audit.events() if e.action.startswith("monitor.signal")]
    assert actions == ["monitor.signal.failed"]


def test_an_output_without_a_predicted_class_fails_accuracy_instead_of_counting_as_wrong(
    served: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    watch(served, performance_signal(threshold=0.5))
    # 9 right answers and one output that names no class: not a 90% accurate window
    outputs: list[Any] = [{"label": 1} for _ in range(9)] + [{"score": 0.7}]
    ids = log_predictions([({"x": i}, out) for i, out in enumerate(outputs)])
    served.monitoring.record_labels(dict.fromkeys(ids, 1))
    clock.advance(minutes=5)
    report = served.monitoring.run_once()
    assert (report.evaluated, report.alerts) == (0, ())
    [failure] = report.failed
    assert "1 of 10 predicted classes are missing (None or NaN)" in failure.error


def test_a_failure_whose_counts_grow_with_its_window_is_audited_once(
    served: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    watch(served, performance_signal(threshold=0.5))
    for passes in range(1, 4):
        outputs: list[Any] = [{"label": 1} for _ in range(9)] + [{"score": 0.7}]
        ids = log_predictions([({"x": i}, out) for i, out in enumerate(outputs)])
        served.monitoring.record_labels(dict.fromkeys(ids, 1))
        clock.advance(minutes=5)
        [failure] = served.monitoring.run_once().failed
        assert f"{passes} of {passes * 10} predicted classes are missing" in failure.error
    failed = [e for e in served.audit.events() if e.action.startswith("monitor.signal")]
    assert [e.action for e in failed] == ["monitor.signal.failed"]
    assert "1 of 10 predicted classes" in str(failed[0].details["error"])


def test_roc_auc_waits_for_both_classes_when_labels_write_one_class_two_ways(
    served: Platform,
    clock: ManualClock,
    log_predictions: LogPredictions,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mintaka.monitoring.metrics import Joined

    labelled = served.monitoring._labelled

    def as_a_server_database_returns_them(rows: Any) -> Joined:
        # A JSON column on a server database keeps a label sent as 1.0 a float; SQLite's makes
        # it the integer 1.
        found = labelled(rows)
        records = [
            r._replace(label=float(r.label)) if i % 2 else r for i, r in enumerate(found.records)
        ]
        return found._replace(records=records)

    monkeypatch.setattr(served.monitoring, "_labelled", as_a_server_database_returns_them)
    watch(served, performance_signal(name="auc", metric="roc_auc", threshold=0.7))
    ids = log_predictions([({"x": i}, {"label": 1, "score": 0.9}) for i in range(10)])
    served.monitoring.record_labels(dict.fromkeys(ids, 1))
    clock.advance(minutes=5)
    report = served.monitoring.run_once()  # one class so far: undefined, not a failure
    assert (report.evaluated, report.failed) == (0, ())
    ids = log_predictions([({"x": i}, {"label": 0, "score": 0.1}) for i in range(10)])
    served.monitoring.record_labels(dict.fromkeys(ids, 0))
    clock.advance(minutes=5)
    report = served.monitoring.run_once()
    assert (report.evaluated, report.alerts, report.failed) == (1, (), ())


def test_roc_auc_waits_for_both_classes_when_one_class_is_labelled_true_and_1(
    served: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    watch(served, performance_signal(name="auc", metric="roc_auc", threshold=0.7))
    ids = log_predictions([({"x": i}, {"label": 1, "score": 0.9}) for i in range(10)])
    # labels read from a CSV (True) and sent by an API client (1): one class
    served.monitoring.record_labels({pid: True if i % 2 else 1 for i, pid in enumerate(ids)})
    clock.advance(minutes=5)
    report = served.monitoring.run_once()  # one class so far: undefined, not a failure
    assert (report.evaluated, report.failed) == (0, ())
    ids = log_predictions([({"x": i}, {"label": 0, "score": 0.1}) for i in range(10)])
    served.monitoring.record_labels({pid: False if i % 2 else 0 for i, pid in enumerate(ids)})
    clock.advance(minutes=5)
    report = served.monitoring.run_once()
    assert (report.evaluated, report.alerts, report.failed) == (1, (), ())


def test_monitor_labels_reads_numbers_for_a_model_logging_numeric_classes_as_object(
    platform: Platform, clock: ManualClock, make_servable: MakeArtifact, home: Path, tmp_path: Path
) -> None:
    platform.register_model(
        "credit",
        make_servable(b"v1"),
        flavor="pyfunc",
        owner="dana",
        signature=Signature(inputs={"x": "double"}, outputs={"label": "object"}),
    )
    platform.serving.create_endpoint("scoring", "credit:1", route="blue")
    watch(platform, performance_signal())
    version = platform.get_model_version("credit", 1)
    with platform.store.write() as conn:
        conn.execute(
            predictions.insert(),
            [
                {
                    "id": f"p{i}",
                    "endpoint": "scoring",
                    "route": "blue",
                    "model": "credit",
                    "version": 1,
                    "version_id": version.id,
                    "input_digest": "sha256:" + "0" * 64,
                    "inputs": {"x": i},
                    "output": i % 2,  # the model logs its classes 0 and 1 as numbers
                    "status": "ok",
                    "shadow": 0,
                    "latency_ms": 1.0,
                    "at": platform.clock.now().isoformat(),
                }
                for i in range(10)
            ],
        )
    path = tmp_path / "labels.csv"
    path.write_text("prediction_id,label\n" + "".join(f"p{i},{i % 2}\n" for i in range(10)))
    main(["--home", str(home), "monitor", "labels", str(path)])
    with platform.store.read() as conn:
        stored = dict(conn.execute(select(labels.c.prediction_id, labels.c.label)).all())
    assert stored == {f"p{i}": i % 2 for i in range(10)}
    clock.advance(minutes=5)
    report = platform.monitoring.run_once()
    assert (report.evaluated, report.failed) == (1, ())


def _gap_actions(platform: Platform) -> list[str]:
    """The audited outcomes of unmeasured stretches, in order."""
    wanted = ("monitor.signal.unmeasured", "monitor.signal.measured")
    return [e.action for e in platform.audit.events() if e.action in wanted]


def test_a_signal_left_unmeasured_is_recorded_then_alerted_then_resolved_when_measured(
    served: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    watch(
        served,
        performance_signal(
            severity="critical", runbook_url="https://rb/acc", unmeasured_after="2h"
        ),
    )
    start = clock.now()
    first = served.monitoring.run_once()  # no traffic, no labels
    assert (first.alerts, first.failed) == ((), ())
    [(subject, found)] = served.monitoring.unmeasured().items()
    assert (subject, found.since) == ("scoring:accuracy", start)
    assert "nothing to measure" in found.why
    for _ in range(20):  # however many passes, none alerts before the duration is up
        clock.advance(minutes=5)
        assert served.monitoring.run_once().alerts == ()
    clock.advance(minutes=20, seconds=-1)
    assert served.monitoring.run_once().alerts == ()
    assert served.monitoring.tickets() == []

    clock.advance(seconds=1)
    [alert] = served.monitoring.run_once().alerts
    assert alert.signal == "scoring:accuracy:unmeasured"
    assert (alert.value, alert.threshold, alert.severity) == (2.0, 2.0, "critical")
    assert alert.details["kind"] == "unmeasured"
    assert alert.details["since"] == start.isoformat()
    [ticket] = served.monitoring.tickets("open")
    assert (ticket.signal, ticket.owner, ticket.runbook_url) == (
        "scoring:accuracy:unmeasured",
        "oncall",
        "https://rb/acc",
    )

    clock.advance(minutes=5)
    assert [a.signal for a in served.monitoring.run_once().alerts] == [alert.signal]
    assert served.monitoring.ticket(ticket.id).alerts == 2  # one ticket, counted again
    assert _gap_actions(served) == ["monitor.signal.unmeasured"]  # the stretch's start, once
    assert served.monitoring.unmeasured()["scoring:accuracy"].since == start

    ids = log_predictions([({"x": 1}, 1)] * 10)
    served.monitoring.record_labels(dict.fromkeys(ids, 1))
    clock.advance(minutes=5)
    report = served.monitoring.run_once()
    assert (report.evaluated, report.alerts) == (1, ())
    assert served.monitoring.ticket(ticket.id).status == "resolved"
    assert served.monitoring.unmeasured() == {}
    assert _gap_actions(served) == ["monitor.signal.unmeasured", "monitor.signal.measured"]


@pytest.mark.parametrize("pace", [1, 7, 25])
def test_an_unmeasured_signal_is_alerted_on_after_its_duration_whatever_the_runners_pace(
    served: Platform, clock: ManualClock, pace: int
) -> None:
    watch(served, performance_signal(unmeasured_after="1h"))
    start = clock.now()
    alerted = []
    while clock.now() - start < timedelta(minutes=100):
        if served.monitoring.run_once().alerts:
            alerted.append(clock.now() - start)
        clock.advance(minutes=pace)
    assert alerted
    assert min(alerted) >= timedelta(hours=1)
    assert min(alerted) < timedelta(hours=1, minutes=pace)
    assert len(served.monitoring.tickets()) == 1


def test_a_signal_measured_on_every_pass_records_no_unmeasured_outcome(
    served: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    watch(served, performance_signal())
    ids = log_predictions([({"x": 1}, 1)] * 10)
    served.monitoring.record_labels(dict.fromkeys(ids, 1))
    for _ in range(4):
        clock.advance(minutes=5)
        assert served.monitoring.run_once().evaluated == 1
    assert _gap_actions(served) == []
    assert served.monitoring.tickets() == []


def test_a_failed_pass_neither_counts_nor_ends_an_unmeasured_stretch(
    served: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    watch(served, performance_signal())
    start = clock.now()
    served.monitoring.run_once()
    clock.advance(minutes=5)
    served.monitoring.run_once()
    ids = log_predictions([({"x": 1}, 0.25)])  # a score where accuracy needs a class: fails
    served.monitoring.record_labels(dict.fromkeys(ids, 1))
    assert [f.signal for f in served.monitoring.run_once().failed] == ["accuracy"]
    assert served.monitoring.unmeasured()["scoring:accuracy"].since == start
    assert served.monitoring.tickets() == []


@pytest.mark.parametrize("after", ["59s", "367d", "5000n", "soon", "0h", ""])
def test_a_signal_refuses_an_unmeasured_after_that_is_no_sane_duration(after: str) -> None:
    with pytest.raises(ValueError, match=r"unmeasured_after\n  Value error, invalid unmeasured"):
        performance_signal(unmeasured_after=after)


def test_add_monitor_refuses_an_unmeasured_after_changed_after_validation(
    served: Platform,
) -> None:
    signal = performance_signal()
    signal.unmeasured_after = "5000n"
    with pytest.raises(ValidationError, match="invalid unmeasured_after '5000n'"):
        served.monitoring.add_monitor(scoring_monitor(signal))
    assert served.monitoring.monitors() == []


def test_a_monitor_stored_with_an_unmeasured_run_count_still_loads_and_runs(
    served: Platform, clock: ManualClock
) -> None:
    spec = scoring_monitor(performance_signal())
    monitor_id = served.monitoring.add_monitor(spec)
    with served.store.write() as conn:
        stored = {**spec.model_dump(mode="json"), "unmeasured_runs": 3}
        stored["signals"] = [
            {k: v for k, v in s.items() if k != "unmeasured_after"} for s in stored["signals"]
        ]
        conn.execute(update(monitors).where(monitors.c.id == monitor_id).values(spec=stored))
    assert served.monitoring.monitors() == [spec]
    assert served.monitoring.add_monitor(spec) == monitor_id
    assert served.monitoring.run_once().failed == ()
    assert set(served.monitoring.unmeasured()) == {"scoring:accuracy"}


def test_a_monitor_stored_with_an_unmeasured_run_count_is_removed_cleanly(
    served: Platform,
) -> None:
    spec = scoring_monitor(performance_signal())
    monitor_id = served.monitoring.add_monitor(spec)
    with served.store.write() as conn:
        stored = {**spec.model_dump(mode="json"), "unmeasured_runs": 3}
        conn.execute(update(monitors).where(monitors.c.id == monitor_id).values(spec=stored))
    assert served.monitoring.remove_monitor(monitor_id, reason="retired") == spec
    assert served.monitoring.monitors() == []
    assert [e.action for e in served.audit.events()].count("monitor.remove") == 1


def _without_metrics(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``platform``'s backend one that cannot read endpoint metrics back."""
    backend = platform.backend
    kept = backend.capabilities - {Capability.MONITORING_METRICS}
    monkeypatch.setattr(backend, "capabilities", kept)


def _telemetry_signal() -> Signal:
    return Signal(
        name="errors",
        kind=SignalKind.TELEMETRY,
        metric="error_rate",
        threshold=0.05,
        owner="oncall",
    )


def test_a_telemetry_signal_is_refused_on_a_backend_that_cannot_read_metrics_back(
    served: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    _without_metrics(served, monkeypatch)
    before = len(served.audit.events())
    spec = scoring_monitor(performance_signal(), _telemetry_signal())
    with pytest.raises(UnsupportedCapability, match=r"'monitoring\.metrics'.*'errors'"):
        served.monitoring.add_monitor(spec)
    with pytest.raises(UnsupportedCapability):  # what adoption asks before adopting anything
        served.monitoring.check_monitor(spec, endpoint_recorded=False)
    assert served.monitoring.monitors() == []
    assert len(served.audit.events()) == before
    watch(served, performance_signal())  # signals it can measure are taken


def test_a_stored_telemetry_signal_fails_where_metrics_cannot_be_read_back(
    served: Platform, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    watch(served, _telemetry_signal())
    _without_metrics(served, monkeypatch)
    [failure] = served.monitoring.run_once().failed
    assert (failure.signal, "monitoring.metrics" in failure.error) == ("errors", True)
    assert served.monitoring.unmeasured() == {}


def test_monitor_list_shows_since_when_a_signal_is_unmeasured(
    served: Platform, clock: ManualClock, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    watch(served, performance_signal(), performance_signal(name="acc-2"))
    served.monitoring.run_once()
    served.close()
    main(["--home", str(home), "monitor", "list"])
    out = " ".join(capsys.readouterr().out.split())
    assert out.count(f"not since {clock.now().isoformat()[:10]}") == 2
    assert out.count("after 24h") == 2


def _canary_of_string_classes(
    platform: Platform, make_servable: MakeArtifact, n: int, wrong: int
) -> None:
    """``credit:1`` (classes 0/1, always right) on ``blue`` with 100 answers, and a canary
    ``credit:2`` (classes "no"/"yes") on ``green`` with ``n`` answers, the first ``wrong`` of
    them wrong; each answer labelled."""
    platform.register_model("credit", make_servable(b"v2"), flavor="pyfunc")
    platform.serving.deploy("scoring", "credit:2", route="green", weights={"blue": 80, "green": 20})
    log_on(platform, "blue", 1, [{"x": i} for i in range(100)], [i % 2 for i in range(100)])
    answers = ["yes" if i % 2 else "no" for i in range(n)]
    log_on(platform, "green", 2, [{"x": i} for i in range(n)], answers)
    with platform.store.read() as conn:
        logged = conn.execute(
            select(predictions.c.id, predictions.c.output).order_by(
                predictions.c.at, predictions.c.id
            )
        ).all()
    flip = {"no": "yes", "yes": "no"}
    green = [pid for pid, out in logged if isinstance(out, str)][:wrong]
    platform.monitoring.record_labels(
        {pid: flip[out] if pid in green else out for pid, out in logged}
    )


def test_a_canary_with_string_classes_is_judged_apart_from_the_numeric_version(
    served: Platform, clock: ManualClock, make_servable: MakeArtifact
) -> None:
    watch(served, performance_signal())
    _canary_of_string_classes(served, make_servable, 60, wrong=30)
    clock.advance(minutes=5)
    report = served.monitoring.run_once()
    assert report.failed == ()
    [alert] = report.alerts
    assert (alert.signal, alert.value) == ("scoring:accuracy", 0.5)  # the canary's, the worst


def test_a_canary_of_a_few_labelled_predictions_is_noted_not_judged(
    served: Platform, clock: ManualClock, make_servable: MakeArtifact
) -> None:
    watch(served, performance_signal(threshold=0.95))
    _canary_of_string_classes(served, make_servable, 10, wrong=10)
    clock.advance(minutes=5)
    report = served.monitoring.run_once()
    assert (report.evaluated, report.alerts, report.failed) == (1, (), ())
    [note] = report.notes
    assert note.note == (
        "10 labelled predictions of route 'green' (credit:2), fewer than the 50 a performance "
        "signal judges a version on beside another; a longer window measures it"
    )


def test_a_canary_without_labels_leaves_the_main_version_judged_as_before_it_started(
    served: Platform,
    clock: ManualClock,
    make_servable: MakeArtifact,
    log_predictions: LogPredictions,
) -> None:
    watch(served, performance_signal())
    ids = log_predictions([({"x": i}, 1) for i in range(40)])
    served.monitoring.record_labels(dict.fromkeys(ids, 0))
    served.register_model("credit", make_servable(b"v2"), flavor="pyfunc")
    served.serving.deploy("scoring", "credit:2", route="green", weights={"blue": 99, "green": 1})
    log_on(served, "green", 2, [{"x": 0}], [1])
    clock.advance(minutes=5)
    report = served.monitoring.run_once()
    assert [(a.signal, a.value) for a in report.alerts] == [("scoring:accuracy", 0.0)]
    assert (report.failed, report.notes) == ((), ())


def test_versions_each_too_small_to_judge_alone_are_judged_together_and_noted(
    served: Platform, clock: ManualClock, make_servable: MakeArtifact
) -> None:
    watch(served, performance_signal())
    served.register_model("credit", make_servable(b"v2"), flavor="pyfunc")
    served.serving.deploy("scoring", "credit:2", route="green", weights={"blue": 50, "green": 50})
    log_on(served, "blue", 1, [{"x": i} for i in range(30)], [1] * 30)
    log_on(served, "green", 2, [{"x": i} for i in range(10)], [1] * 10)
    with served.store.read() as conn:
        logged = [pid for (pid,) in conn.execute(select(predictions.c.id))]
    served.monitoring.record_labels(dict.fromkeys(logged, 0))
    clock.advance(minutes=5)
    report = served.monitoring.run_once()
    assert [(a.signal, a.value) for a in report.alerts] == [("scoring:accuracy", 0.0)]
    [note] = report.notes
    assert note.note == (
        "every version has fewer than the 50 records a performance signal judges a version on "
        "(30 labelled predictions of route 'blue' (credit:1), 10 labelled predictions of route "
        "'green' (credit:2)): the window is judged whole, its versions together"
    )


def test_a_monitor_whose_endpoint_moved_on_to_another_model_fails_and_retrains_nothing(
    served: Platform, make_servable: MakeArtifact, clock: ManualClock
) -> None:
    """After a redeploy to another model the old model's monitor measures nothing of the new
    one's traffic and never retrains the old model on it: its signals fail, audited once, with
    an error naming the mismatch; adding the same monitor again returns its id."""
    spec = scoring_monitor(performance_signal(retrain=True))
    monitor_id = served.monitoring.add_monitor(spec)
    served.register_model("credit-v2", make_servable(b"v2"), flavor="pyfunc", owner="dana")
    served.serving.deploy(
        "scoring", "credit-v2:1", route="green", weights={"blue": 0, "green": 100}
    )
    served.serving.retire_route("scoring", "blue")
    v2 = served.get_model_version("credit-v2", 1)
    ids = [f"p{i}" for i in range(100)]
    with served.store.write() as conn:
        conn.execute(
            predictions.insert(),
            [
                {
                    "id": pid,
                    "endpoint": "scoring",
                    "route": "green",
                    "model": "credit-v2",
                    "version": 1,
                    "version_id": v2.id,
                    "input_digest": "sha256:" + "0" * 64,
                    "inputs": {"x": i},
                    "output": 1,
                    "status": "ok",
                    "shadow": 0,
                    "latency_ms": 1.0,
                    "at": clock.now().isoformat(),
                }
                for i, pid in enumerate(ids)
            ],
        )
    served.monitoring.record_labels(dict.fromkeys(ids, 0))
    clock.advance(minutes=5)
    first = served.monitoring.run_once()
    second = served.monitoring.run_once()
    assert (first.alerts, first.evaluated) == ((), 0)
    [failure] = first.failed
    assert failure.signal == "accuracy"
    assert f"monitor {monitor_id} watches 'credit'" in failure.error
    assert "now serves credit-v2:1" in failure.error
    assert second.failed == first.failed
    assert served.pipelines.requests() == []
    actions = [e.action for e in served.audit.events()]
    assert actions.count("monitor.signal.failed") == 1
    assert served.monitoring.add_monitor(spec) == monitor_id


def test_a_re_added_signal_starts_its_own_unmeasured_stretch(
    served: Platform, clock: ManualClock
) -> None:
    """The stretch a removed monitor left open is not the new monitor's: its first quiet pass
    starts a stretch of its own, alerted on only after its own ``unmeasured_after``."""
    spec = scoring_monitor(performance_signal(unmeasured_after="24h"))
    monitor_id = served.monitoring.add_monitor(spec)
    served.monitoring.run_once()
    served.monitoring.remove_monitor(monitor_id, reason="rework")
    clock.advance(days=3)
    served.monitoring.add_monitor(spec)
    assert served.monitoring.run_once().alerts == ()
    assert served.monitoring.unmeasured()["scoring:accuracy"].since == clock.now()
    clock.advance(hours=24)
    [alert] = served.monitoring.run_once().alerts
    assert (alert.signal, alert.value) == ("scoring:accuracy:unmeasured", 24.0)


def test_an_endpoint_created_again_starts_its_signals_unmeasured_stretch_afresh(
    served: Platform, clock: ManualClock
) -> None:
    served.monitoring.add_monitor(scoring_monitor(performance_signal(unmeasured_after="24h")))
    served.monitoring.run_once()
    served.serving.delete_endpoint("scoring")
    clock.advance(days=30)
    served.serving.create_endpoint("scoring", "credit:1", route="blue")
    assert served.monitoring.run_once().alerts == ()
    assert served.monitoring.unmeasured()["scoring:accuracy"].since == clock.now()


def test_a_killed_endpoint_s_signals_are_not_unmeasured_until_it_is_released(
    served: Platform, clock: ManualClock
) -> None:
    """A killed endpoint serves nothing: its quiet signals raise no ``unmeasured`` alert while it
    stays killed, coverage shows it killed, and after release their stretch starts afresh."""
    served.monitoring.add_monitor(scoring_monitor(performance_signal(unmeasured_after="24h")))
    served.monitoring.run_once()
    clock.advance(hours=12)
    served.serving.kill("scoring", reason="incident")
    clock.advance(hours=25)
    assert served.monitoring.run_once().alerts == ()
    [covered] = served.monitoring.coverage()
    assert (covered.endpoint, covered.monitored, covered.killed) == ("scoring", True, True)
    clock.advance(days=3)
    served.serving.unkill("scoring", reason="fixed")
    assert served.monitoring.run_once().alerts == ()
    assert served.monitoring.unmeasured()["scoring:accuracy"].since == clock.now()
    assert not served.monitoring.coverage()[0].killed
    clock.advance(hours=24)
    [alert] = served.monitoring.run_once().alerts
    assert (alert.signal, alert.value) == ("scoring:accuracy:unmeasured", 24.0)


def _redeploy_to_another_model(platform: Platform, make_servable: MakeArtifact) -> None:
    """Serve ``credit-v2:1`` on ``scoring`` and retire the route that served ``credit``."""
    platform.register_model("credit-v2", make_servable(b"v2"), flavor="pyfunc", owner="dana")
    platform.serving.deploy(
        "scoring", "credit-v2:1", route="green", weights={"blue": 0, "green": 100}
    )
    platform.serving.retire_route("scoring", "blue")


def test_a_monitor_whose_endpoint_moved_on_does_not_cover_it(
    served: Platform, make_servable: MakeArtifact
) -> None:
    """Coverage counts what the runner measures: a monitor of a model its endpoint no longer
    serves fails every pass, so the endpoint reads unmonitored and ``monitor coverage`` exits 1."""
    served.monitoring.add_monitor(scoring_monitor(performance_signal()))
    _redeploy_to_another_model(served, make_servable)
    assert served.monitoring.run_once().failed
    [covered] = served.monitoring.coverage()
    assert (covered.endpoint, covered.routes, covered.monitored) == ("scoring", ("green",), False)
    assert served.monitoring.watching("credit") == []


def test_an_unmeasured_ticket_from_before_a_kill_waits_then_is_resolved_on_release(
    served: Platform, clock: ManualClock
) -> None:
    """A killed endpoint serves nothing: the ``unmeasured`` ticket its signal had before the kill
    is not escalated while it stays killed, and its release ends that stretch and resolves the
    ticket, so the next stretch's alert opens a ticket of its own for the signal's owner."""
    signal = performance_signal(
        unmeasured_after="24h", escalation=[Escalation(after_minutes=60, to="boss")]
    )
    served.monitoring.add_monitor(scoring_monitor(signal))
    started = clock.now()
    served.monitoring.run_once()
    clock.advance(hours=25)
    served.monitoring.run_once()
    [before] = served.monitoring.tickets("open")
    assert before.owner == "oncall"
    served.serving.kill("scoring", reason="incident")
    clock.advance(days=10)
    assert served.monitoring.run_once().escalated == ()
    assert served.monitoring.ticket(before.id).owner == "oncall"
    served.serving.unkill("scoring", reason="fixed")
    served.monitoring.run_once()
    assert served.monitoring.tickets("open") == []
    [resolved] = [e for e in served.audit.events() if e.action == "ticket.resolve"]
    assert resolved.subject == before.id
    assert "released from its kill switch" in resolved.details["note"]
    [ended] = [e for e in served.audit.events() if e.action == "monitor.signal.unmeasured.ended"]
    assert (ended.subject, ended.details["since"]) == (
        "scoring:accuracy",
        started.isoformat(),
    )
    clock.advance(hours=24)
    served.monitoring.run_once()
    [after] = served.monitoring.tickets("open")
    assert (after.signal, after.owner) == ("scoring:accuracy:unmeasured", "oncall")
    assert after.id != before.id
    assert after.opened_at == clock.now()


def _unmeasured_ticket(platform: Platform, clock: ManualClock) -> Ticket:
    """The open ``unmeasured`` ticket of signal ``accuracy`` on ``scoring``, left unmeasured for
    25 hours (``unmeasured_after`` 24h), for ``oncall``, handed to ``boss`` an hour after."""
    signal = performance_signal(
        unmeasured_after="24h", escalation=[Escalation(after_minutes=60, to="boss")]
    )
    platform.monitoring.add_monitor(scoring_monitor(signal))
    platform.monitoring.run_once()
    clock.advance(hours=25)
    platform.monitoring.run_once()
    [ticket] = platform.monitoring.tickets("open")
    assert (ticket.signal, ticket.owner) == ("scoring:accuracy:unmeasured", "oncall")
    return ticket


def test_an_unmeasured_ticket_from_before_a_kill_does_not_escalate_between_release_and_a_pass(
    served: Platform, clock: ManualClock
) -> None:
    """Escalating alone, after the release and before the runner's next pass, leaves the
    ``unmeasured`` ticket from before the kill with its owner: the release ended the stretch it
    was opened for, and the next pass resolves it."""
    before = _unmeasured_ticket(served, clock)
    served.serving.kill("scoring", reason="incident")
    clock.advance(days=10)
    served.serving.unkill("scoring", reason="fixed")
    assert served.monitoring.escalate_due() == []
    assert served.monitoring.ticket(before.id).owner == "oncall"
    assert served.monitoring.run_once().escalated == ()
    assert served.monitoring.ticket(before.id).status is TicketStatus.RESOLVED
    assert not [e for e in served.audit.events() if e.action == "ticket.escalate"]


def test_an_unmeasured_ticket_resolved_by_hand_as_the_runner_resolves_it_stops_no_pass(
    served: Platform, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A person who resolves the ``unmeasured`` ticket between the runner finding it open and
    resolving it leaves it resolved with their note; the pass goes on to escalate the rest."""
    ticket = _unmeasured_ticket(served, clock)
    _, other = served.monitoring.raise_alert(
        "rollout-sla", "scoring", escalation=[Escalation(after_minutes=60, to="boss")]
    )
    by_runner = served.monitoring.resolve

    def resolved_by_hand_first(ticket_id: str, note: str = "") -> Any:
        by_runner(ticket_id, note="fixed the label feed")
        return by_runner(ticket_id, note)

    monkeypatch.setattr(served.monitoring, "resolve", resolved_by_hand_first)
    served.serving.kill("scoring", reason="incident")
    clock.advance(hours=2)
    served.serving.unkill("scoring", reason="fixed")
    assert served.monitoring.run_once().escalated == (other.id,)
    assert served.monitoring.ticket(ticket.id).status is TicketStatus.RESOLVED
    [resolved] = [e for e in served.audit.events() if e.action == "ticket.resolve"]
    assert resolved.details["note"] == "fixed the label feed"


def test_an_unmeasured_ticket_of_a_monitor_whose_endpoint_moved_on_does_not_escalate(
    served: Platform, make_servable: MakeArtifact, clock: ManualClock
) -> None:
    """Once its endpoint serves another model, the monitor's ``unmeasured`` stretch is no longer
    its signal's: escalating before the next pass ends it leaves the ticket with its owner."""
    ticket = _unmeasured_ticket(served, clock)
    _redeploy_to_another_model(served, make_servable)
    clock.advance(hours=2)
    assert served.monitoring.escalate_due() == []
    assert served.monitoring.ticket(ticket.id).owner == "oncall"


def test_a_monitor_whose_endpoint_moved_on_ends_its_unmeasured_stretch_and_ticket(
    served: Platform, make_servable: MakeArtifact, clock: ManualClock
) -> None:
    """A monitor whose endpoint moved on to another model fails every pass: its unmeasured
    stretch is ended and its ticket resolved saying so, so after removing it the signal's name
    is free for the model served."""
    monitor_id = served.monitoring.add_monitor(
        scoring_monitor(performance_signal(unmeasured_after="24h"))
    )
    served.monitoring.run_once()
    clock.advance(hours=25)
    served.monitoring.run_once()
    [ticket] = served.monitoring.tickets("open")
    _redeploy_to_another_model(served, make_servable)
    assert served.monitoring.run_once().failed
    assert served.monitoring.tickets("open") == []
    assert "scoring:accuracy" not in served.monitoring.unmeasured()
    [resolved] = [e for e in served.audit.events() if e.action == "ticket.resolve"]
    assert resolved.subject == ticket.id
    assert f"monitor {monitor_id}'s endpoint moved on" in resolved.details["note"]
    served.monitoring.remove_monitor(monitor_id, reason="credit retired")
    signal = performance_signal(unmeasured_after="24h")
    served.monitoring.add_monitor(
        MonitorSpec(endpoint="scoring", model="credit-v2", signals=[signal])
    )


def test_times_a_store_wrote_without_a_timezone_are_read_as_utc(
    served: Platform, clock: ManualClock
) -> None:
    """A creation time stored without a timezone is read as UTC, never compared as it is with
    the aware times beside it (which would stop the whole pass)."""
    served.monitoring.add_monitor(scoring_monitor(performance_signal(unmeasured_after="24h")))
    served.monitoring.run_once()
    clock.advance(hours=1)  # the monitor as if added now, after the stretch began
    naive = clock.now().replace(tzinfo=None).isoformat()
    with served.store.write() as conn:
        conn.execute(update(monitors).values(created_at=naive))
        conn.execute(update(endpoints).values(created_at=naive))
    assert served.monitoring.run_once().failed == ()
    assert served.monitoring.unmeasured()["scoring:accuracy"].since == clock.now()
    clock.advance(hours=24)
    served.monitoring.run_once()
    naive = clock.now().replace(tzinfo=None).isoformat()
    with served.store.write() as conn:
        conn.execute(update(tickets).values(opened_at=naive, updated_at=naive))
    [ticket] = served.monitoring.tickets("open")
    assert ticket.opened_at == clock.now()
    assert served.monitoring.run_once().failed == ()


class _CountingReads:
    """A connection that counts the rows its queries hand back."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.rows = 0

    def execute(self, statement: Any) -> list[Any]:
        found = list(self.conn.execute(statement))
        self.rows += len(found)
        return found


def _audit_cycles(platform: Platform, subject: str, opening: str, closing: str, n: int) -> None:
    """Append ``n`` closed stretches of ``subject``: ``opening`` then ``closing``, a minute each."""
    with platform.store.write() as conn:
        for _ in range(n):
            since = platform.clock.now().isoformat()
            platform._audit(conn, opening, subject, since=since, why="quiet", error="boom 1")
            platform.clock.advance(minutes=1)  # type: ignore[attr-defined]
            platform._audit(conn, closing, subject, since=since)


def test_open_stretches_and_failures_are_read_without_their_closed_history(
    served: Platform, clock: ManualClock
) -> None:
    """The runner reads each signal's open stretch and failure on every pass: what it reads is
    one row a signal still open, however many stretches and failures closed before."""
    ended = "monitor.signal.unmeasured.ended"
    _audit_cycles(served, "scoring:a", "monitor.signal.unmeasured", "monitor.signal.measured", 3)
    _audit_cycles(served, "scoring:b", "monitor.signal.unmeasured", ended, 3)
    _audit_cycles(served, "scoring:c", "monitor.signal.failed", "monitor.signal.recovered", 3)
    opened = clock.now()
    with served.store.write() as conn:
        served._audit(
            conn,
            "monitor.signal.unmeasured",
            "scoring:a",
            since=opened.isoformat(),
            why="no labels",
        )
        served._audit(conn, "monitor.signal.failed", "scoring:c", error="boom 2")
    reads: list[int] = []
    for _ in range(2):
        with served.store.read() as conn:
            counting = _CountingReads(conn)
            state = _unmeasured_signals(counting)  # type: ignore[arg-type]
            failing = _failing_signals(counting)  # type: ignore[arg-type]
        assert state == {"scoring:a": Unmeasured(opened, "no labels")}
        assert failing == {"scoring:c": "boom 2"}
        reads.append(counting.rows)
        _audit_cycles(served, "scoring:b", "monitor.signal.unmeasured", ended, 40)
        _audit_cycles(served, "scoring:d", "monitor.signal.failed", "monitor.signal.recovered", 40)
    assert reads == [2, 2]


def test_roc_auc_of_two_string_classes_fails_the_signal_until_the_positive_one_is_declared(
    served: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    watch(
        served,
        performance_signal(name="auc", metric="roc_auc", threshold=0.9),
        performance_signal(name="ece", metric="calibration_error", threshold=0.3),
        performance_signal(name="auc-fraud", metric="roc_auc", threshold=0.9, positive="fraud"),
    )
    # a perfect fraud model: it scores P(fraud)
    outputs = [
        {"label": "fraud" if i < 5 else "legit", "score": 0.9 if i < 5 else 0.1} for i in range(10)
    ]
    ids = log_predictions([({"x": i}, output) for i, output in enumerate(outputs)])
    served.monitoring.record_labels({pid: o["label"] for pid, o in zip(ids, outputs, strict=True)})
    clock.advance(minutes=1)
    report = served.monitoring.run_once()
    assert (report.evaluated, report.alerts) == (1, ())  # auc-fraud: 1.0
    failures = {f.signal: f.error for f in report.failed}
    assert set(failures) == {"auc", "ece"}
    assert all("declare which class is positive" in error for error in failures.values())


@pytest.mark.parametrize("metric", ["roc_auc", "calibration_error"])
def test_a_score_signal_of_a_model_declaring_string_classes_needs_its_positive_class(
    platform: Platform, make_servable: MakeArtifact, metric: str
) -> None:
    platform.register_model(
        "credit",
        make_servable(b"v1"),
        flavor="pyfunc",
        owner="dana",
        signature=Signature(inputs={"x": "double"}, outputs={"label": "string", "score": "double"}),
    )
    platform.serving.create_endpoint("scoring", "credit:1", route="blue")
    with pytest.raises(ValidationError, match="declare which class is positive"):
        watch(platform, performance_signal(name="auc", metric=metric, threshold=0.7))
    watch(platform, performance_signal(name="auc", metric=metric, threshold=0.7, positive="yes"))
