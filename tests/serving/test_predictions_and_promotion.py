from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from serving_kit import FEATURES, X, Y, pyfunc_artifact, row, sklearn_artifact
from sklearn.linear_model import LogisticRegression

from mintaka import NotFound, Platform, PolicyViolation, ValidationError
from mintaka.domain.registry import Signature
from mintaka.flavors import sklearn as sklearn_flavor
from mintaka.local.server import InferenceServer
from mintaka.rollout.challenger import CostMatrix, auc

Served = tuple[Platform, InferenceServer]


def test_prediction_traces_back_to_training_data_and_forward_to_the_decision(
    served: Served, tmp_path: Path
) -> None:
    plat, server = served
    answer = plat.serving.invoke("scoring", row(0))
    prediction_id = answer["predictions"][0]["id"]
    server.predlog.flush()

    decision_id = plat.serving.record_decision(prediction_id, "loan approved")
    trace = plat.serving.trace(prediction_id)

    assert trace.version.ref == "credit:1"
    assert trace.prediction["endpoint"] == "scoring"
    assert [d["decision"] for d in trace.decisions] == ["loan approved"]
    assert {n.kind.value for n in trace.upstream.nodes} >= {"model_version"}
    downstream = plat.lineage_downstream("credit:1")
    assert f"decision:{decision_id}" in {n.id for n in downstream.nodes}
    assert plat.audit.events()[-1].action == "prediction.decision"


def test_trace_of_training_data_through_a_run(tmp_path: Path) -> None:
    data = tmp_path / "train.csv"
    data.write_text("a,b\n1,2\n")
    with Platform(tmp_path / "h") as plat:
        dataset = plat.register_dataset("applications", data)
        run = plat.start_run("exp", dataset_ids=[dataset.id])
        model = LogisticRegression().fit(X, Y)
        plat.register_model(
            "credit",
            sklearn_flavor.save(model, tmp_path / "m"),
            run_id=run.id,
            flavor="sklearn",
            signature=Signature(inputs=dict.fromkeys(FEATURES, "float")),
        )
        source = tmp_path / "in.csv"
        with source.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["customer", *FEATURES])
            writer.writeheader()
            for i in range(5):
                writer.writerow({"customer": f"c{i}", **row(i)})
        result = plat.serving.score_batch("credit:1", source, tmp_path / "out.csv")
        with (tmp_path / "out.csv").open() as handle:
            scored = list(csv.DictReader(handle))
        assert result["rows"] == "5"
        assert [r["customer"] for r in scored] == [f"c{i}" for i in range(5)]
        trace = plat.serving.trace(scored[0]["prediction_id"])
        datasets = [n for n in trace.upstream.nodes if n.kind.value == "dataset"]
        assert [n.key for n in datasets] == [dataset.id]
        assert plat.lineage.descendants(f"dataset:{dataset.id}")


def test_batch_scoring_reads_and_writes_parquet(served: Served, tmp_path: Path) -> None:
    plat, _ = served
    source = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist([row(i) for i in range(7)]), source)
    out = tmp_path / "out.parquet"
    plat.serving.score_batch("credit:1", source, out)
    table = pq.read_table(out).to_pylist()
    assert len(table) == 7
    assert all(0.0 <= r["prediction"] <= 1.0 for r in table)
    assert len({r["prediction_id"] for r in table}) == 7


def test_batch_scoring_refuses_bad_files_and_archived_versions(
    served: Served, tmp_path: Path
) -> None:
    plat, _ = served
    with pytest.raises(ValidationError, match="unknown format"):
        plat.serving.score_batch("credit:1", tmp_path / "in.json", tmp_path / "out.csv")
    with pytest.raises(ValidationError, match="does not exist"):
        plat.serving.score_batch("credit:1", tmp_path / "in.csv", tmp_path / "out.csv")
    source = tmp_path / "in.csv"
    source.write_text("a,b,c\n1,2,3\n")
    plat.archive_version("credit", 2)
    with pytest.raises(PolicyViolation):
        plat.serving.score_batch("credit:2", source, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("ragged.csv", b"a,b,c\n1,2,3\n1,2,3,4\n", "line 3: more fields than the header"),
        ("latin1.csv", b"a,b,c\n1,2,\xe9\n", "not UTF-8"),
        ("nan.csv", b"a,b,c\n1,2,nan\n", "finite numbers"),
        ("huge.csv", b"a,b,c\n1,2,1e999\n", "finite numbers"),
        ("torn.parquet", b"PAR1 not really parquet", "not a readable Parquet file"),
        ("taken.csv", b"a,b,c,prediction\n1,2,3,x\n", "already has column"),
        ("twice.csv", b"a,b,a\n1,2,3\n", "column 'a' named twice"),
        ("empty.csv", b"", "holds no rows"),
        ("header_only.csv", ",".join(FEATURES).encode() + b"\n", "holds no rows"),
    ],
)
def test_a_malformed_input_file_is_refused_and_writes_nothing(
    served: Served, tmp_path: Path, name: str, content: bytes, says: str
) -> None:
    plat, _ = served
    source = tmp_path / name
    source.write_bytes(content)
    out = tmp_path / "out.csv"
    with pytest.raises(ValidationError, match=says):
        plat.serving.score_batch("credit:1", source, out)
    assert not out.exists()


def test_a_pyfunc_that_cannot_load_is_refused(served: Served, tmp_path: Path) -> None:
    plat, _ = served
    missing = plat.register_model(
        "broken", pyfunc_artifact(tmp_path, "no_such_module_xyz:predict"), flavor="pyfunc"
    )
    source = tmp_path / "in.csv"
    source.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(ValidationError, match="cannot be loaded: ModuleNotFoundError"):
        plat.serving.score_batch(missing.ref, source, tmp_path / "out.csv")


def test_decision_on_unknown_prediction_is_not_found(served: Served) -> None:
    plat, _ = served
    with pytest.raises(NotFound):
        plat.serving.record_decision("pred-missing", "approved")


def test_auc_matches_scikit_learn() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 200).tolist()
    scores = rng.random(200).tolist()
    assert auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_challenger_that_wins_on_auc_but_loses_on_cost_is_not_promoted(
    served: Served, tmp_path: Path
) -> None:
    plat, _ = served
    # Holdout where the champion (C=1) is well calibrated around 0.5, and a challenger whose
    # ranking is slightly better but whose scores sit above the threshold for most negatives.
    rng = np.random.default_rng(11)
    holdout_x = rng.normal(size=(400, 3))
    holdout_y = (holdout_x[:, 0] - holdout_x[:, 2] > 0).astype(int)
    shifted = LogisticRegression(C=1.0, fit_intercept=True).fit(X, Y)
    shifted.intercept_ = shifted.intercept_ + 4.0  # same ranking, almost always "positive"
    plat.register_model(
        "credit",
        sklearn_flavor.save(shifted, tmp_path / "shifted"),
        flavor="sklearn",
        signature=Signature(inputs=dict.fromkeys(FEATURES, "float")),
    )
    plat.set_alias("credit", "champion", 1)
    plat.serving.declare_business_metric(
        "credit", CostMatrix(false_positive=10.0, false_negative=1.0)
    )
    rows = [dict(zip(FEATURES, map(float, r), strict=True)) for r in holdout_x]
    labels = holdout_y.tolist()

    comparison = plat.serving.promote_if_better("credit", 4, rows, labels)

    assert comparison.challenger_auc is not None
    assert comparison.champion_auc is not None
    assert comparison.challenger_auc >= comparison.champion_auc - 1e-12
    assert comparison.challenger_cost > comparison.champion_cost
    assert not comparison.challenger_wins
    assert plat.get_model_version("credit@champion").version == 1
    evidence = [e for e in plat.audit.events() if e.action == "model.comparison"]
    assert evidence[-1].details["challenger_wins"] is False


def test_challenger_that_wins_on_cost_is_promoted(served: Served, tmp_path: Path) -> None:
    plat, _ = served
    biased = LogisticRegression().fit(X, Y)
    biased.intercept_ = biased.intercept_ + 4.0  # calls almost everyone positive
    plat.register_model(
        "credit",
        sklearn_flavor.save(biased, tmp_path / "biased"),
        flavor="sklearn",
        signature=Signature(inputs=dict.fromkeys(FEATURES, "float")),
    )
    plat.set_alias("credit", "champion", 4)
    plat.serving.declare_business_metric(
        "credit", CostMatrix(false_positive=1.0, false_negative=1.0)
    )
    comparison = plat.serving.promote_if_better(
        "credit", 1, [row(i) for i in range(300)], Y.tolist()
    )
    assert comparison.challenger_wins
    assert comparison.challenger_cost < 0.1 < comparison.champion_cost
    assert plat.get_model_version("credit@champion").version == 1


@pytest.mark.parametrize(
    ("function", "says"),
    [("answers_nan", "not a finite number"), ("one_answer_short", "299 outputs for 300 rows")],
)
def test_a_challenger_without_one_finite_score_per_row_is_refused_before_anything_changes(
    served: Served, tmp_path: Path, function: str, says: str
) -> None:
    """NaN is "negative" at every threshold: with false positives costly, an all-NaN challenger
    would win on cost."""
    plat, _ = served
    plat.register_model(
        "credit", pyfunc_artifact(tmp_path, f"faulty_models:{function}"), flavor="pyfunc"
    )
    plat.set_alias("credit", "champion", 1)
    plat.serving.declare_business_metric(
        "credit", CostMatrix(false_positive=5.0, false_negative=1.0)
    )
    rows = [row(i) for i in range(300)]
    labels = (np.random.default_rng(1).random(300) < 0.2).astype(int).tolist()
    with pytest.raises(ValidationError, match=says):
        plat.serving.promote_if_better("credit", 4, rows, labels)
    assert plat.get_model_version("credit@champion").version == 1
    assert [e for e in plat.audit.events() if e.action == "model.comparison"] == []
    plat.set_alias("credit", "champion", 4)  # a champion that scores so is no yardstick either
    with pytest.raises(ValidationError, match=says):
        plat.serving.promote_if_better("credit", 1, rows, labels)
    assert plat.get_model_version("credit@champion").version == 4


@pytest.mark.parametrize("score", [float("nan"), float("inf"), float("-inf")])
def test_expected_cost_refuses_a_score_that_is_not_finite(score: float) -> None:
    with pytest.raises(ValueError, match="finite"):
        CostMatrix(false_positive=1.0, false_negative=1.0).expected_cost([1, 0], [0.9, score])


def test_missing_business_metric_is_not_found(served: Served) -> None:
    plat, _ = served
    with pytest.raises(NotFound, match="no business metric"):
        plat.serving.compare("credit", 1, 2, [row(0)], [1])


@pytest.mark.parametrize(
    ("function", "says"), [("always_fails", "challenger is broken"), ("answers_nan", "not JSON")]
)
def test_a_batch_whose_model_fails_writes_and_logs_nothing(
    served: Served, tmp_path: Path, function: str, says: str
) -> None:
    from sqlalchemy import func, select

    from mintaka.errors import BackendError
    from mintaka.store.schema import predictions

    plat, _ = served
    artifact = pyfunc_artifact(tmp_path / "batch", f"faulty_models:{function}")
    plat.register_model("faulty", artifact, flavor="pyfunc")
    source = tmp_path / "in.csv"
    source.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(BackendError, match=says):
        plat.serving.score_batch("faulty:1", source, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()
    with plat.store.read() as conn:
        assert conn.execute(select(func.count()).select_from(predictions)).scalar() == 0


def test_a_batch_with_columns_json_has_no_type_for_is_logged_as_text(
    served: Served, tmp_path: Path
) -> None:
    from datetime import datetime

    from sqlalchemy import select

    from mintaka.store.schema import predictions

    plat, _ = served
    source = tmp_path / "in.parquet"
    stamped = [{**row(i), "at": datetime(2024, 1, i + 1)} for i in range(2)]
    pq.write_table(pa.Table.from_pylist(stamped), source)
    plat.serving.score_batch("credit:1", source, tmp_path / "out.parquet")
    scored = pq.read_table(tmp_path / "out.parquet").to_pylist()
    with plat.store.read() as conn:
        logged = {
            r.id: r.inputs for r in conn.execute(select(predictions.c.id, predictions.c.inputs))
        }
    assert {r["prediction_id"] for r in scored} <= set(logged)
    assert logged[scored[0]["prediction_id"]]["at"] == "2024-01-01 00:00:00"


def test_a_csv_written_with_a_byte_order_mark_scores_by_its_column_names(
    served: Served, tmp_path: Path
) -> None:
    plat, _ = served
    source = tmp_path / "excel.csv"
    body = "a,b,c\n" + "".join(f"{r['a']},{r['b']},{r['c']}\n" for r in (row(0), row(1)))
    source.write_bytes(b"\xef\xbb\xbf" + body.encode())
    result = plat.serving.score_batch("credit:1", source, tmp_path / "out.csv")
    assert result["rows"] == "2"
    with (tmp_path / "out.csv").open(encoding="utf-8") as handle:
        assert next(csv.reader(handle))[:3] == ["a", "b", "c"]


def test_an_adopted_version_scores_as_mintaka_recorded_it(tmp_path: Path) -> None:
    """Another tool's row says 'opaque' and points at its own copy of the bytes; Mintaka
    recorded the version as sklearn, with the bytes verified into its artifact store."""
    import shutil

    from sqlalchemy import select

    from mintaka import IdFactory, ManualClock
    from mintaka.artifacts import manifest_of
    from mintaka.domain.registry import Flavor, VersionRequest
    from mintaka.store.schema import predictions

    legacy = sklearn_artifact(tmp_path, 1.0)
    with Platform(tmp_path / "h", clock=ManualClock(), ids=IdFactory(7), actor="ops") as plat:
        plat.backend.ensure_model("churn")  # type: ignore[attr-defined]
        plat.backend.create_version(  # type: ignore[attr-defined]
            VersionRequest(
                name="churn",
                artifact_path=str(legacy),
                artifact_digest=manifest_of(legacy).digest,
                mintaka_id="",
                idempotency_key="legacy-1",
            )
        )
        adoption = plat.migration.adopt_model("churn", reason="inherited", features=FEATURES)
        [version] = adoption.adopted
        assert version.flavor is Flavor.SKLEARN
        shutil.rmtree(legacy)  # the other tool's copy is gone; Mintaka's is not
        source = tmp_path / "in.csv"
        source.write_text(",".join(FEATURES) + "\n1,0,-1\n0,1,1\n")
        result = plat.serving.score_batch("churn:1", source, tmp_path / "out.csv")
        assert result["rows"] == "2"
        with plat.store.read() as conn:
            logged = conn.execute(select(predictions.c.version_id)).scalars().all()
        assert logged == [version.id, version.id]


def test_a_csv_batch_is_written_and_logged_with_typed_feature_columns(
    served: Served, tmp_path: Path
) -> None:
    """The model's feature columns in a CSV are scored, written and logged as numbers (the
    signature's declared float inputs as floats); other columns pass through as written."""
    from sqlalchemy import select

    from mintaka.store.schema import predictions

    plat, _ = served
    source = tmp_path / "in.csv"
    lines = ["a,b,c,customer,segment"]
    lines += [f"{r['a']},{r['b']},1,{100 + i},retail" for i, r in enumerate(map(row, range(3)))]
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.parquet"
    plat.serving.score_batch("credit:1", source, out)
    schema = pq.read_schema(out)
    assert {name: str(schema.field(name).type) for name in schema.names} == {
        "a": "double",
        "b": "double",
        "c": "double",
        "customer": "string",
        "segment": "string",
        "prediction_id": "string",
        "prediction": "double",
    }
    first = pq.read_table(out).to_pylist()[0]
    with plat.store.read() as conn:
        logged = conn.execute(
            select(predictions.c.inputs).where(predictions.c.id == first["prediction_id"])
        ).scalar_one()
    assert logged == {
        "a": row(0)["a"],
        "b": row(0)["b"],
        "c": 1.0,
        "customer": "100",
        "segment": "retail",
    }


def test_a_csv_batch_writes_the_columns_it_passes_through_as_they_were_written(
    served: Served, tmp_path: Path
) -> None:
    """An account id such as ``007`` is what the output file is joined back on."""
    plat, _ = served
    source = tmp_path / "in.csv"
    accounts = ["007", "010", "12345678901234567890123", "+5"]
    lines = ["account,a,b,c,ratio"]
    lines += [
        f"{a},{r['a']},{r['b']},{r['c']},0.50"
        for a, r in zip(accounts, map(row, range(4)), strict=True)
    ]
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.csv"
    plat.serving.score_batch("credit:1", source, out)
    with out.open() as handle:
        written = list(csv.DictReader(handle))
    assert [r["account"] for r in written] == accounts
    assert {r["ratio"] for r in written} == {"0.50"}
    assert [float(r["a"]) for r in written] == [row(i)["a"] for i in range(4)]


def test_a_csv_batch_for_a_model_knowing_no_features_writes_every_column_as_fed(
    served: Served, tmp_path: Path
) -> None:
    """Without a signature or feature names every column is fed to the model, converted."""
    plat, _ = served
    plat.register_model(
        "summer", pyfunc_artifact(tmp_path, "faulty_models:echo_sum"), flavor="pyfunc"
    )
    source = tmp_path / "in.csv"
    source.write_text("a,b\n1.5,2\n3,4\n")
    out = tmp_path / "out.parquet"
    plat.serving.score_batch("summer:1", source, out)
    schema = pq.read_schema(out)
    assert (str(schema.field("a").type), str(schema.field("b").type)) == ("double", "int64")
    assert [r["prediction"] for r in pq.read_table(out).to_pylist()] == [3.5, 7.0]


def test_a_version_only_the_backend_holds_is_scored_from_a_path_with_a_space(
    platform: Platform, tmp_path: Path
) -> None:
    """The local backend records a version's bytes as a ``file:`` URI (a space is ``%20``)."""
    from mintaka.artifacts.store import manifest_of
    from mintaka.domain.registry import VersionRequest
    from mintaka.domain.serving import Route

    source = sklearn_artifact(tmp_path / "legacy models", 1.0)
    platform.backend.ensure_model("churn")  # type: ignore[attr-defined]
    platform.backend.create_version(  # type: ignore[attr-defined]
        VersionRequest(
            name="churn",
            artifact_path=str(source),
            artifact_digest=manifest_of(source).digest,
            flavor="sklearn",
            mintaka_id="",
            idempotency_key="legacy-churn-1",
        )
    )
    data = tmp_path / "in.csv"
    with data.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FEATURES)
        writer.writeheader()
        writer.writerows(row(i) for i in range(3))
    result = platform.backend.score_batch(  # type: ignore[attr-defined]
        Route(name="legacy", model="churn", version=1),
        data,
        tmp_path / "out.csv",
        batch_id="b1",
        features=FEATURES,
    )
    assert result["rows"] == "3"
