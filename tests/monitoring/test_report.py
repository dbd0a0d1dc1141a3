from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

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

from mintaka import ManualClock, Platform
from mintaka.cli.app import main
from mintaka.monitoring.service import MIN_GROUP_ROWS

if TYPE_CHECKING:
    from mintaka.monitoring.report import FeatureSection, VersionSection


def _rows(rng: np.random.Generator, n: int, shift: float = 0.0) -> list[dict[str, Any]]:
    return [
        {
            "income": float(rng.normal() + shift),
            "debt": float(rng.normal()),
            "region": str(rng.choice(["north", "south"])),
        }
        for _ in range(n)
    ]


def _features(platform: Platform, window: str = "1d") -> list[FeatureSection]:
    """The features of the report's only version section: ``scoring`` serves one version."""
    from mintaka.monitoring.report import build_report

    [only] = build_report(platform, "scoring", window).versions
    return only.features


@pytest.fixture
def served(platform: Platform, make_servable: MakeArtifact, tmp_path: Path) -> Platform:
    serve_credit(
        platform, make_servable, write_training(tmp_path, _rows(np.random.default_rng(1), 500))
    )
    return platform


def test_report_draws_every_feature_and_lists_the_tickets(
    served: Platform, clock: ManualClock, log_predictions: LogPredictions, tmp_path: Path
) -> None:
    from mintaka.monitoring.report import write_report

    log_predictions([(row, 1) for row in _rows(np.random.default_rng(2), 300, shift=1.0)])
    _, ticket = served.monitoring.raise_alert("scoring:income-drift", "scoring", owner="oncall")
    clock.advance(minutes=5)
    page = write_report(served, "scoring", tmp_path / "report").read_text()
    for feature in ("income", "debt", "region"):
        assert f"<td>{feature}</td>" in page
    assert page.count("data:image/png;base64,") == 2  # one chart per numeric feature
    assert 'alt="income: reference and current histograms"' in page
    assert ticket.id in page
    assert "300 logged predictions" in page
    income = next(f for f in _features(served) if f.name == "income")
    assert (income.statistics["psi"] or 0.0) > 0.2  # the shifted feature shows in the table


def test_monitor_report_command_writes_the_page(
    served: Platform, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    served.close()
    out = tmp_path / "report"
    code = 0
    try:
        main(["--home", str(home), "monitor", "report", "scoring", "--out", str(out)])
    except SystemExit as exc:
        code = int(exc.code or 0)
    assert code == 0
    assert "wrote" in capsys.readouterr().out
    page = (out / "scoring.monitor.html").read_text()
    assert all(f"<td>{feature}</td>" in page for feature in ("income", "debt", "region"))


def test_report_without_traffic_still_names_the_features(served: Platform, tmp_path: Path) -> None:
    from mintaka.monitoring.report import write_report

    features = _features(served)
    assert [f.name for f in features] == ["income", "debt", "region"]
    assert all(v is None for f in features for v in f.statistics.values())
    page = write_report(served, "scoring", tmp_path).read_text()
    assert "<p>No tickets.</p>" in page


def test_report_draws_a_logged_integer_beyond_the_float_range(
    served: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:

    rows = _rows(np.random.default_rng(4), 250)  # above income's floor of 200 values
    rows[0]["income"] = 10**400
    log_predictions([(row, 1) for row in rows])
    clock.advance(minutes=5)
    income = next(f for f in _features(served) if f.name == "income")
    assert income.chart_png is not None
    assert income.statistics["psi"] is not None


def test_a_feature_logged_as_numeric_strings_is_charted_as_its_numbers(
    served: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:

    def income_chart() -> str | None:
        return next(f for f in _features(served, window="1h") if f.name == "income").chart_png

    rows = _rows(np.random.default_rng(6), 50, shift=1.0)
    log_predictions([(row, 1) for row in rows])
    clock.advance(minutes=5)
    as_numbers = income_chart()
    clock.advance(hours=2)
    log_predictions([({**row, "income": str(row["income"])}, 1) for row in rows])
    clock.advance(minutes=5)
    assert income_chart() == as_numbers


def test_a_feature_the_window_cannot_measure_reads_unmeasured(
    served: Platform, clock: ManualClock, log_predictions: LogPredictions, tmp_path: Path
) -> None:
    from mintaka.monitoring.report import write_report

    rows = _rows(np.random.default_rng(7), 250)  # above income's floor of 200 values
    log_predictions([({**row, "debt": None}, 1) for row in rows])
    clock.advance(minutes=5)
    found = {f.name: f for f in _features(served)}
    assert found["income"].unmeasured == {}
    assert set(found["debt"].unmeasured) == {"psi", "jensen_shannon", "ks_statistic", "wasserstein"}
    assert found["debt"].unmeasured["psi"].startswith("no current values")
    page = write_report(served, "scoring", tmp_path).read_text()
    assert page.count("<td>unmeasured</td>") == 4
    named = "debt: psi, jensen_shannon, ks_statistic, wasserstein unmeasured (no current values"
    assert named in page


def test_a_feature_below_its_floor_reads_unmeasured_not_as_measured(
    served: Platform, clock: ManualClock, log_predictions: LogPredictions, tmp_path: Path
) -> None:
    """150 values: enough for region (two categories, 100), too few for income and debt (ten
    bins, 200): the runner does not judge them, and the page shows no statistic of them."""
    from mintaka.monitoring.report import write_report

    log_predictions([(row, 1) for row in _rows(np.random.default_rng(9), 150)])
    clock.advance(minutes=5)
    found = {f.name: f for f in _features(served)}
    assert found["region"].unmeasured == {}
    assert found["region"].statistics["psi"] is not None
    for name in ("income", "debt"):
        assert set(found[name].unmeasured) == {
            "psi",
            "jensen_shannon",
            "ks_statistic",
            "wasserstein",
        }
        assert all(found[name].statistics[s] is None for s in found[name].unmeasured)
        assert found[name].unmeasured["psi"] == (
            "too few values to judge: 150 values, fewer than the 200 its 10 reference bins need"
        )
    page = write_report(served, "scoring", tmp_path).read_text()
    assert page.count("<td>unmeasured</td>") == 8
    assert "income: psi, jensen_shannon, ks_statistic, wasserstein unmeasured (too few" in page


def test_a_feature_no_row_logs_reads_unmeasured_as_the_runner_names_it(
    served: Platform, clock: ManualClock, log_predictions: LogPredictions, tmp_path: Path
) -> None:
    from mintaka.monitoring.report import write_report

    rows = _rows(np.random.default_rng(8), MIN_GROUP_ROWS)  # a group measured
    log_predictions([({"income": row["income"], "region": row["region"]}, 1) for row in rows])
    clock.advance(minutes=5)
    # no inputs declared: like the runner, the page shows the profiled features the window logs
    assert [f.name for f in _features(served)] == ["income", "region"]
    served.set_features("credit", 1, ("income", "debt", "region"))
    found = {f.name: f for f in _features(served)}
    assert set(found["debt"].unmeasured.values()) == {"not logged in the window"}
    page = write_report(served, "scoring", tmp_path).read_text()
    assert "wasserstein unmeasured (not logged in the window)" in page


def test_report_shows_the_features_the_runner_watches_not_the_label_column(
    platform: Platform,
    make_servable: MakeArtifact,
    tmp_path: Path,
    clock: ManualClock,
    log_predictions: LogPredictions,
) -> None:
    from mintaka.domain.registry import features_signature

    rng = np.random.default_rng(1)
    train = write_training(
        tmp_path, [{**row, "default": int(row["income"] > 0)} for row in _rows(rng, 500)]
    )
    serve_credit(platform, make_servable, train, signature=features_signature("income,debt"))
    platform.monitoring.add_monitor(scoring_monitor(drift_signal(name="any", metric="psi")))
    log_predictions([({"income": r["income"], "debt": r["debt"]}, 0.5) for r in _rows(rng, 300)])
    clock.advance(minutes=5)
    run = platform.monitoring.run_once()
    assert (run.evaluated, run.failed) == (1, ())
    assert [(f.name, f.unmeasured) for f in _features(platform)] == [("income", {}), ("debt", {})]
    platform.monitoring.add_monitor(
        scoring_monitor(drift_signal(name="regions", metric="chi2_statistic:region"))
    )
    assert [f.name for f in _features(platform)] == [
        "income",
        "debt",
        "region",
    ]


def test_a_report_of_an_unknown_endpoint_leaves_no_directory(
    served: Platform, tmp_path: Path
) -> None:
    from mintaka.errors import NotFound
    from mintaka.monitoring.report import write_report

    with pytest.raises(NotFound):
        write_report(served, "nope", tmp_path / "report")
    assert not (tmp_path / "report").exists()


def _shifted_version(platform: Platform, make_servable: MakeArtifact, tmp_path: Path) -> str:
    """Register ``credit:2``, trained on data whose income is shifted by 3; its dataset id."""
    rows = _rows(np.random.default_rng(11), 500, shift=3.0)
    train = write_training(tmp_path, rows, name="train-shifted.csv")
    return register_trained_credit(
        platform, make_servable, train, dataset="applications-2", artifact=b"v2"
    )


def _income_psi(section: VersionSection) -> float | None:
    return next(f for f in section.features if f.name == "income").statistics["psi"]


def test_a_canary_report_compares_each_version_with_its_own_training_data(
    served: Platform,
    clock: ManualClock,
    make_servable: MakeArtifact,
    tmp_path: Path,
) -> None:
    from mintaka.monitoring.report import build_report, write_report

    shifted = _shifted_version(served, make_servable, tmp_path)
    served.register_model("credit", make_servable(b"v3"), flavor="pyfunc")  # no training data named
    served.serving.deploy("scoring", "credit:2", route="green", weights={"blue": 80, "green": 20})
    served.serving.deploy(
        "scoring", "credit:3", route="red", weights={"blue": 70, "green": 20, "red": 10}
    )
    rng = np.random.default_rng(12)
    log_on(served, "blue", 1, _rows(rng, 300))
    log_on(served, "green", 2, _rows(rng, 300, shift=3.0))  # as credit:2 was trained
    log_on(served, "red", 3, _rows(rng, 100, shift=3.0))
    clock.advance(minutes=5)
    report = build_report(served, "scoring")
    assert [(v.name, v.dataset_id, v.current_rows) for v in report.versions] == [
        ("route 'blue' (credit:1)", served.get_model_version("credit", 1).dataset_ids[0], 300),
        ("route 'green' (credit:2)", shifted, 300),
        ("route 'red' (credit:3)", None, 100),
    ]
    blue, green, red = report.versions
    for version in (blue, green):  # each as its own version was trained: no drift
        assert (_income_psi(version) or 1.0) < 0.2
    assert red.features == []
    page = write_report(served, "scoring", tmp_path / "report").read_text()
    assert "<h3>route &#39;green&#39; (credit:2)</h3>" in page
    assert (
        "100 logged predictions unmeasurable: route &#39;red&#39; (credit:3): the version names "
        "no training dataset with a profile to compare with" in page
    )


def test_after_a_redeploy_the_report_compares_each_version_with_its_own_training_data(
    served: Platform, clock: ManualClock, make_servable: MakeArtifact, tmp_path: Path
) -> None:
    from mintaka.monitoring.report import build_report

    _shifted_version(served, make_servable, tmp_path)
    rng = np.random.default_rng(13)
    log_on(served, "blue", 1, _rows(rng, 300))  # answered before the redeploy
    served.serving.deploy("scoring", "credit:2", route="green", weights={"blue": 0, "green": 100})
    log_on(served, "green", 2, _rows(rng, 300, shift=3.0))
    clock.advance(minutes=5)
    report = build_report(served, "scoring")
    assert [(v.name, v.current_rows) for v in report.versions] == [
        ("route 'blue' (credit:1)", 300),
        ("route 'green' (credit:2)", 300),
    ]
    assert all((_income_psi(v) or 1.0) < 0.2 for v in report.versions)


def test_a_group_the_runner_leaves_out_for_too_few_rows_shows_its_note_not_statistics(
    served: Platform, clock: ManualClock, make_servable: MakeArtifact, tmp_path: Path
) -> None:
    from mintaka.monitoring.report import build_report, write_report

    _shifted_version(served, make_servable, tmp_path)
    served.serving.deploy("scoring", "credit:2", route="green", weights={"blue": 95, "green": 5})
    rng = np.random.default_rng(14)
    log_on(served, "blue", 1, _rows(rng, 300))
    log_on(served, "green", 2, _rows(rng, 20, shift=8.0))
    clock.advance(minutes=5)
    blue, green = build_report(served, "scoring").versions
    expected = (
        f"20 rows of route 'green' (credit:2), fewer than the {MIN_GROUP_ROWS} drift needs; a "
        "longer window measures it"
    )
    assert (blue.left_out, green.left_out) == (None, expected)
    assert _income_psi(blue) is not None
    assert all(v is None for f in green.features for v in f.statistics.values())
    assert [f.name for f in green.features] == ["income", "debt", "region"]
    page = " ".join(write_report(served, "scoring", tmp_path / "report").read_text().split())
    assert expected.replace("'", "&#39;") in page
    clock.advance(days=2)
    log_on(served, "green", 2, _rows(rng, 10, shift=3.0))  # the window's only group
    clock.advance(minutes=5)
    idle, alone = build_report(served, "scoring").versions
    assert (idle.current_rows, idle.left_out) == (0, None)  # no rows: nothing left out
    assert (alone.left_out or "").startswith("10 rows of route 'green' (credit:2), fewer than")
    assert _income_psi(alone) is None
