from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from artifact_kit import MakeArtifact
from monitoring_kit import LogPredictions, drift_signal, scoring_monitor

from mintaka import ManualClock, Platform
from mintaka.cli.app import main


def _rows(rng: np.random.Generator, n: int, shift: float = 0.0) -> list[dict[str, Any]]:
    return [
        {
            "income": float(rng.normal() + shift),
            "debt": float(rng.normal()),
            "region": str(rng.choice(["north", "south"])),
        }
        for _ in range(n)
    ]


@pytest.fixture
def served(platform: Platform, make_artifact: MakeArtifact, tmp_path: Path) -> Platform:
    train = tmp_path / "train.csv"
    with train.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["income", "debt", "region"])
        writer.writeheader()
        writer.writerows(_rows(np.random.default_rng(1), 500))
    dataset = platform.register_dataset("applications", train)
    platform.register_model("credit", make_artifact(b"v1"), dataset_ids=[dataset.id])
    platform.serving.create_endpoint("scoring", "credit:1", route="blue")
    return platform


def test_report_draws_every_feature_and_lists_the_tickets(
    served: Platform, clock: ManualClock, log_predictions: LogPredictions, tmp_path: Path
) -> None:
    from mintaka.monitoring.report import build_report, write_report

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
    income = next(f for f in build_report(served, "scoring").features if f.name == "income")
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
    from mintaka.monitoring.report import build_report, write_report

    report = build_report(served, "scoring")
    assert [f.name for f in report.features] == ["income", "debt", "region"]
    assert all(v is None for f in report.features for v in f.statistics.values())
    page = write_report(served, "scoring", tmp_path).read_text()
    assert "<p>No tickets.</p>" in page


def test_report_draws_a_logged_integer_beyond_the_float_range(
    served: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    from mintaka.monitoring.report import build_report

    rows = _rows(np.random.default_rng(4), 50)
    rows[0]["income"] = 10**400
    log_predictions([(row, 1) for row in rows])
    clock.advance(minutes=5)
    income = next(f for f in build_report(served, "scoring").features if f.name == "income")
    assert income.chart_png is not None
    assert income.statistics["psi"] is not None


def test_a_feature_logged_as_numeric_strings_is_charted_as_its_numbers(
    served: Platform, clock: ManualClock, log_predictions: LogPredictions
) -> None:
    from mintaka.monitoring.report import build_report

    def income_chart() -> str | None:
        report = build_report(served, "scoring", window="1h")
        return next(f for f in report.features if f.name == "income").chart_png

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
    from mintaka.monitoring.report import build_report, write_report

    rows = _rows(np.random.default_rng(7), 50)
    log_predictions([({**row, "debt": None}, 1) for row in rows])
    clock.advance(minutes=5)
    found = {f.name: f for f in build_report(served, "scoring").features}
    assert found["income"].unmeasured == {}
    assert set(found["debt"].unmeasured) == {"psi", "jensen_shannon", "ks_statistic", "wasserstein"}
    assert found["debt"].unmeasured["psi"].startswith("no current values")
    page = write_report(served, "scoring", tmp_path).read_text()
    assert page.count("<td>unmeasured</td>") == 4
    named = "debt: psi, jensen_shannon, ks_statistic, wasserstein unmeasured (no current values"
    assert named in page


def test_a_feature_no_row_logs_reads_unmeasured_as_the_runner_names_it(
    served: Platform, clock: ManualClock, log_predictions: LogPredictions, tmp_path: Path
) -> None:
    from mintaka.monitoring.report import build_report, write_report

    rows = _rows(np.random.default_rng(8), 50)
    log_predictions([({"income": row["income"], "region": row["region"]}, 1) for row in rows])
    clock.advance(minutes=5)
    # no inputs declared: like the runner, the page shows the profiled features the window logs
    assert [f.name for f in build_report(served, "scoring").features] == ["income", "region"]
    served.set_features("credit", 1, ("income", "debt", "region"))
    found = {f.name: f for f in build_report(served, "scoring").features}
    assert set(found["debt"].unmeasured.values()) == {"not logged in the window"}
    page = write_report(served, "scoring", tmp_path).read_text()
    assert "wasserstein unmeasured (not logged in the window)" in page


def test_report_shows_the_features_the_runner_watches_not_the_label_column(
    platform: Platform,
    make_artifact: MakeArtifact,
    tmp_path: Path,
    clock: ManualClock,
    log_predictions: LogPredictions,
) -> None:
    from mintaka.domain.registry import features_signature
    from mintaka.monitoring.report import build_report

    rng = np.random.default_rng(1)
    train = tmp_path / "train.csv"
    with train.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["income", "debt", "region", "default"])
        writer.writeheader()
        for row in _rows(rng, 500):
            writer.writerow({**row, "default": int(row["income"] > 0)})
    dataset = platform.register_dataset("applications", train)
    platform.register_model(
        "credit",
        make_artifact(b"v1"),
        dataset_ids=[dataset.id],
        signature=features_signature("income,debt"),
    )
    platform.serving.create_endpoint("scoring", "credit:1", route="blue")
    platform.monitoring.add_monitor(scoring_monitor(drift_signal(name="any", metric="psi")))
    log_predictions([({"income": r["income"], "debt": r["debt"]}, 0.5) for r in _rows(rng, 300)])
    clock.advance(minutes=5)
    run = platform.monitoring.run_once()
    assert (run.evaluated, run.failed) == (1, ())
    page = build_report(platform, "scoring")
    assert [(f.name, f.unmeasured) for f in page.features] == [("income", {}), ("debt", {})]
    platform.monitoring.add_monitor(
        scoring_monitor(drift_signal(name="regions", metric="chi2_statistic:region"))
    )
    assert [f.name for f in build_report(platform, "scoring").features] == [
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
