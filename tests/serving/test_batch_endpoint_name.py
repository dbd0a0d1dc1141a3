"""Batch scoring's predictions are kept apart from those of an endpoint named ``batch``: each
prediction's decision hangs under what made it (the endpoint's deployment, or the scored batch),
and the endpoint's metrics count only its own requests."""

from __future__ import annotations

import csv
from datetime import timedelta
from pathlib import Path

from serving_kit import FEATURES, row
from sqlalchemy import update

from mintaka import Platform
from mintaka.local.server import InferenceServer
from mintaka.store.schema import predictions

Served = tuple[Platform, InferenceServer]


def _fed_by(plat: Platform, prediction_id: str) -> list[str]:
    """The nodes a prediction hangs under in lineage."""
    graph = plat.lineage.walk(f"prediction:{prediction_id}", "up")
    return [e.src for e in graph.edges if e.dst == f"prediction:{prediction_id}"]


def _deployment(plat: Platform, endpoint: str) -> str:
    """The lineage node of the deployment of ``credit:1`` on ``endpoint``'s only route."""
    route = plat.serving.get_endpoint(endpoint).routes[0].name
    version = plat.get_model_version("credit:1")
    return f"deployment:{endpoint}/{route}/{version.id}"


def _score(plat: Platform, tmp_path: Path, rows: int) -> tuple[str, list[str]]:
    """Score ``rows`` rows with ``credit:1``: the batch id and the rows' prediction ids."""
    source, target = tmp_path / "in.csv", tmp_path / "out.csv"
    with source.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=FEATURES)
        writer.writeheader()
        writer.writerows(row(i) for i in range(rows))
    result = plat.serving.score_batch("credit:1", source, target)
    with target.open() as handle:
        return result["batch_id"], [r["prediction_id"] for r in csv.DictReader(handle)]


def test_a_decision_on_an_endpoint_named_batch_hangs_under_its_deployment(
    served: Served,
) -> None:
    plat, server = served
    plat.serving.create_endpoint("batch", "credit:1")
    plat.serving.create_endpoint("online", "credit:1")
    server.reload()
    on_batch = plat.serving.invoke("batch", row(0))["predictions"][0]["id"]
    on_online = plat.serving.invoke("online", row(1))["predictions"][0]["id"]
    server.predlog.flush()

    plat.serving.record_decision(on_batch, "declined")
    plat.serving.record_decision(on_online, "approved")

    assert _fed_by(plat, on_online) == [_deployment(plat, "online")]
    assert _fed_by(plat, on_batch) == [_deployment(plat, "batch")]
    below = plat.lineage_downstream(_deployment(plat, "batch"))
    assert f"prediction:{on_batch}" in {n.id for n in below.nodes}


def test_batch_scoring_stays_apart_from_an_endpoint_named_batch(
    served: Served, tmp_path: Path
) -> None:
    plat, server = served
    plat.serving.create_endpoint("batch", "credit:1")
    server.reload()
    start = plat.clock.now()
    on_endpoint = plat.serving.invoke("batch", row(0))["predictions"][0]["id"]
    server.predlog.flush()
    batch_id, scored = _score(plat, tmp_path, 3)

    plat.serving.record_decision(scored[0], "declined")
    plat.serving.record_decision(on_endpoint, "approved")

    assert _fed_by(plat, scored[0]) == [f"prediction_batch:{batch_id}"]
    assert _fed_by(plat, on_endpoint) == [_deployment(plat, "batch")]
    metrics = plat.serving.endpoint_metrics("batch", start, start + timedelta(hours=1))
    assert sum(metrics.requests.values()) == 1


def test_a_batch_prediction_an_earlier_release_logged_as_batch_hangs_under_its_batch(
    served: Served, tmp_path: Path
) -> None:
    """Rows batch scoring logged under the endpoint ``batch`` (as Mintaka did before an endpoint
    could be named so) are still read as batch-scored, an endpoint named ``batch`` or not."""
    plat, _ = served
    batch_id, scored = _score(plat, tmp_path, 2)
    with plat.store.write() as conn:
        conn.execute(
            update(predictions).where(predictions.c.route == batch_id).values(endpoint="batch")
        )
    plat.serving.create_endpoint("batch", "credit:1")

    plat.serving.record_decision(scored[1], "declined")

    assert _fed_by(plat, scored[1]) == [f"prediction_batch:{batch_id}"]
