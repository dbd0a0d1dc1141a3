from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import faulty_models
import httpx
import numpy as np
import pytest
from serving_kit import FEATURES, X, Y, pyfunc_artifact, row, stop_polling, wait_for
from sklearn.linear_model import LogisticRegression
from sqlalchemy import select

from mintaka import Conflict, MintakaError, Platform, PolicyViolation, ValidationError
from mintaka.domain.registry import Signature
from mintaka.domain.serving import (
    SLA,
    EndpointMetrics,
    RolloutStrategy,
    TrafficMap,
    TrafficPlan,
    TrafficStep,
)
from mintaka.flavors import sklearn as sklearn_flavor
from mintaka.local.server import InferenceServer, serve_forever
from mintaka.local.serving import running_servers
from mintaka.rollout.controller import (
    Refusals,
    RolloutController,
    baseline_routes,
    plan_steps,
    refusals_of,
    sla_breaches,
)
from mintaka.store.schema import predictions

Served = tuple[Platform, InferenceServer]
HTTP = httpx.Client(timeout=10)  # one client: building one per request costs tens of ms


def post(server: InferenceServer, body: object, route: str | None = None) -> httpx.Response:
    headers = {"X-Mintaka-Route": route} if route else {}
    return HTTP.post(f"{server.url}/endpoints/scoring/invocations", json=body, headers=headers)


def logged(plat: Platform, server: InferenceServer) -> list[dict[str, object]]:
    server.predlog.flush()
    with plat.store.read() as conn:
        return [dict(r._mapping) for r in conn.execute(select(predictions)).all()]


def test_prediction_carries_ids_version_and_is_logged(served: Served) -> None:
    plat, server = served
    answer = post(server, {"inputs": [row(0), row(1)]})
    assert answer.status_code == 200
    body = answer.json()
    assert (body["model"], body["version"], body["route"]) == ("credit", 1, "blue")
    ids = [p["id"] for p in body["predictions"]]
    assert len(set(ids)) == 2
    assert all(0.0 <= p["output"] <= 1.0 for p in body["predictions"])
    records = {r["id"]: r for r in logged(plat, server)}
    assert set(records) == set(ids)
    version = plat.get_model_version("credit", 1)
    assert {r["version_id"] for r in records.values()} == {version.id}
    assert all(str(r["input_digest"]).startswith("sha256:") for r in records.values())


def test_single_row_and_bad_requests(served: Served) -> None:
    _, server = served
    assert len(post(server, {"inputs": row(3)}).json()["predictions"]) == 1
    assert post(server, {"rows": []}).status_code == 400
    assert post(server, {"inputs": [{"a": 1.0}]}).status_code == 400
    assert post(server, {"inputs": row(0)}, route="nope").status_code == 404
    missing = HTTP.post(f"{server.url}/endpoints/ghost/invocations", json={"inputs": row(0)})
    assert missing.status_code == 404
    unknown_path = HTTP.get(f"{server.url}/nowhere")
    assert (unknown_path.status_code, unknown_path.json()) == (404, {"error": "Not Found"})
    wrong_method = HTTP.get(f"{server.url}/endpoints/scoring/invocations")
    assert wrong_method.status_code == 405
    assert wrong_method.json() == {"error": "Method Not Allowed"}
    assert wrong_method.headers["allow"] == "POST"


def test_weights_are_followed_exactly(served: Served) -> None:
    plat, server = served
    plat.serving.deploy("scoring", "credit:2", route="green")
    plat.serving.set_traffic("scoring", {"blue": 70, "green": 30})
    server.reload()
    routes = Counter(post(server, {"inputs": row(i)}).json()["route"] for i in range(100))
    assert routes == {"blue": 70, "green": 30}


def test_shadow_answers_are_never_returned(served: Served) -> None:
    plat, server = served
    plat.serving.deploy("scoring", "credit:2", route="shadowy")
    plat.serving.set_traffic("scoring", {"blue": 100}, shadow="shadowy", shadow_percent=50)
    server.reload()
    answers = [post(server, {"inputs": row(i)}).json() for i in range(40)]
    assert {a["route"] for a in answers} == {"blue"}
    server._shadow_pool.shutdown(wait=True)  # let mirrored copies finish before counting
    records = logged(plat, server)
    shadow_rows = [r for r in records if r["shadow"]]
    assert {r["route"] for r in shadow_rows} == {"shadowy"}
    assert len(shadow_rows) == 20
    returned_ids = {p["id"] for a in answers for p in a["predictions"]}
    assert returned_ids.isdisjoint({r["id"] for r in shadow_rows})


def _shadowed_by_a_held_model(plat: Platform, tmp_path: Path) -> None:
    """Copy every request to ``scoring`` to a shadow route whose model answers only once the
    test releases it (``faulty_models.RELEASE``), each call signalling ``PREDICTING``."""
    faulty_models.PREDICTING = threading.Semaphore(0)
    faulty_models.RELEASE.clear()
    artifact = pyfunc_artifact(tmp_path, "faulty_models:waits_for_release")
    slow = plat.register_model("credit", artifact, flavor="pyfunc")
    plat.serving.deploy("scoring", slow.ref, route="slow")
    plat.serving.set_traffic("scoring", {"blue": 100}, shadow="slow", shadow_percent=100)


def _made_again(plat: Platform) -> None:
    plat.serving.delete_endpoint("scoring")
    plat.serving.create_endpoint("scoring", "credit:1", route="blue")


@pytest.mark.parametrize(
    "stop_shadowing",
    [
        lambda plat: plat.serving.kill("scoring"),
        _made_again,
        lambda plat: plat.serving.set_traffic("scoring", {"blue": 100}),  # no shadow any more
    ],
    ids=["killed", "deleted-and-made-again", "shadow-removed"],
)
def test_shadow_copies_waiting_when_the_endpoint_stops_shadowing_are_dropped(
    served: Served, tmp_path: Path, stop_shadowing: Callable[[Platform], object]
) -> None:
    plat, server = served
    _shadowed_by_a_held_model(plat, tmp_path)
    server.reload()
    try:
        for i in range(3):  # two shadow copies hold both shadow workers, the third waits
            assert post(server, {"inputs": row(i)}).status_code == 200
        for _ in range(2):
            assert faulty_models.PREDICTING.acquire(timeout=5), "the shadow was never called"
        stop_shadowing(plat)
    finally:
        faulty_models.RELEASE.set()
    server._shadow_pool.shutdown(wait=True)
    assert not faulty_models.PREDICTING.acquire(timeout=0)  # the waiting copy's model: never
    shadow_rows = [r for r in logged(plat, server) if r["shadow"]]
    assert len(shadow_rows) == 2  # the copies under way when the endpoint stopped shadowing
    assert (
        'mintaka_shadow_dropped_total{endpoint="scoring"} 1.0'
        in HTTP.get(f"{server.url}/metrics").text
    )


def test_shadow_copies_still_waiting_when_the_server_stops_are_dropped(
    served: Served, tmp_path: Path
) -> None:
    plat, _ = served
    _shadowed_by_a_held_model(plat, tmp_path)
    server = InferenceServer(plat, poll_interval=0.02, shadow_workers=1, stop_grace=0.05)
    server.start()
    try:
        for i in range(3):  # one shadow copy holds the shadow worker, two wait
            assert post(server, {"inputs": row(i)}).status_code == 200
        assert faulty_models.PREDICTING.acquire(timeout=5), "the shadow was never called"
        server.stop()  # leaves the copy under way behind after its grace
    finally:
        faulty_models.RELEASE.set()
    assert server._shadow_pool.join(5)
    assert not faulty_models.PREDICTING.acquire(timeout=0)  # the waiting copies' model: never
    dropped = server.registry.get_sample_value(
        "mintaka_shadow_dropped_total", {"endpoint": "scoring"}
    )
    assert dropped == 2


def test_models_no_endpoint_uses_any_more_are_let_go(served: Served) -> None:
    plat, server = served
    stop_polling(server)
    one = server.endpoints["scoring"].routes["blue"].predictor
    plat.serving.deploy("scoring", "credit:2", route="green")
    plat.serving.set_traffic("scoring", {"green": 100})
    plat.serving.create_endpoint("side", "credit:1", route="only")
    server.reload()
    assert len(server._predictors) == 2
    plat.serving.delete_endpoint("side")
    plat.backend.update_routes(  # type: ignore[attr-defined]
        "scoring",
        [server.endpoints["scoring"].routes["green"].route],
        TrafficMap(weights={"green": 100}),
    )
    server.reload()
    (kept,) = server._predictors.values()
    assert kept is server.endpoints["scoring"].routes["green"].predictor
    assert kept is not one
    plat.serving.delete_endpoint("scoring")
    server.reload()
    assert server._predictors == {}


def test_failing_shadow_never_fails_the_caller(served: Served) -> None:
    plat, server = served
    plat.serving.deploy("scoring", "credit:3", route="broken")
    plat.serving.set_traffic("scoring", {"blue": 100}, shadow="broken", shadow_percent=100)
    server.reload()
    assert all(post(server, {"inputs": row(i)}).status_code == 200 for i in range(10))


def test_changes_from_another_process_reach_the_server_within_a_second(
    served: Served, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    plat, server = served
    plat.serving.deploy("scoring", "credit:2", route="green")
    with Platform(plat.home, actor="cli-user") as other:  # another process's view of the store
        other.serving.set_traffic("scoring", {"green": 100})
        wait_for(lambda: server.endpoints["scoring"].traffic.weights == {"green": 100})
        assert post(server, {"inputs": row(0)}).json()["route"] == "green"
        other.serving.kill("scoring", reason="incident 42")  # back to the approved blue
        wait_for(lambda: post(server, {"inputs": row(0)}).json()["route"] == "blue")
    kill = [e for e in plat.audit.events() if e.action == "endpoint.kill"][-1]
    assert kill.actor == "cli-user"
    assert kill.details["reason"] == "incident 42"


def test_kill_without_an_approved_fallback_refuses_every_request(served: Served) -> None:
    plat, server = served
    with Platform(plat.home, actor="cli-user") as other:
        other.serving.kill("scoring", reason="incident 43")
        wait_for(lambda: post(server, {"inputs": row(0)}).status_code == 503)
        other.serving.unkill("scoring")
        wait_for(lambda: post(server, {"inputs": row(0)}).status_code == 200)
    actions = [e.action for e in plat.audit.events()]
    assert actions[-2:] == ["endpoint.kill", "endpoint.unkill"]


def test_metrics_endpoint_counts_requests_and_latency(served: Served) -> None:
    _, server = served
    for i in range(3):
        post(server, {"inputs": row(i)})
    text = HTTP.get(f"{server.url}/metrics").text
    assert 'mintaka_requests_total{endpoint="scoring",route="blue",status="200"} 3.0' in text
    assert "mintaka_request_latency_seconds_bucket" in text
    assert HTTP.get(f"{server.url}/health").json()["endpoints"] == ["scoring"]


def _bake(plat: Platform, server: InferenceServer, requests: int):  # type: ignore[no-untyped-def]
    def wait(seconds: float) -> None:
        server.reload()
        for i in range(requests):
            post(server, {"inputs": row(i)})
        server.predlog.flush()
        plat.clock.advance(seconds)  # type: ignore[attr-defined]

    return wait


def _to_green(first: dict[str, int]) -> TrafficPlan:
    """A canary plan: ``first``, then all traffic to green, each held to a 1% error rate."""
    return TrafficPlan(
        endpoint="scoring",
        strategy=RolloutStrategy.CANARY,
        steps=[
            TrafficStep(weights=first, bake_seconds=60),
            TrafficStep(weights={"green": 100}, bake_seconds=60),
        ],
        sla=SLA(max_error_rate=0.01, min_requests=5),
    )


def test_faulty_challenger_is_rolled_back_automatically(served: Served) -> None:
    plat, server = served
    plat.serving.deploy("scoring", "credit:3", route="green")
    plan = _to_green({"blue": 90, "green": 10})
    result = RolloutController(plat, wait=_bake(plat, server, 100)).run(plan)
    assert not result.promoted
    assert len(result.steps) == 1
    assert "green: error rate 1.0000 > 0.01" in result.breaches
    assert result.rolled_back_to == {"blue": 100, "green": 0}
    assert plat.serving.get_endpoint("scoring").traffic.weights == {"blue": 100, "green": 0}
    server.reload()
    rollback_time = plat.clock.now().isoformat()
    answers = [post(server, {"inputs": row(i)}).json() for i in range(50)]
    assert {a["route"] for a in answers} == {"blue"}
    after = [r for r in logged(plat, server) if str(r["at"]) >= rollback_time]
    assert len(after) == 50
    assert {r["route"] for r in after} == {"blue"}
    actions = [e.action for e in plat.audit.events()]
    assert "endpoint.rollback" in actions
    assert actions[-1] == "alert.raise"
    [ticket] = plat.monitoring.tickets("open")
    assert (ticket.signal, ticket.severity.value) == ("rollout-sla", "critical")


def _register_needing_a_feature_clients_do_not_send(plat: Platform, root: Path) -> None:
    """credit:4, whose signature needs a fourth feature ``d``: it refuses (400) every row."""
    plat.register_model(
        "credit",
        sklearn_flavor.save(LogisticRegression().fit(np.hstack([X, X[:, :1]]), Y), root / "sk4"),
        flavor="sklearn",
        signature=Signature(inputs=dict.fromkeys([*FEATURES, "d"], "float")),
    )


def test_metrics_count_refused_requests_as_invalid_not_as_errors(served: Served) -> None:
    plat, server = served
    start = plat.clock.now()
    assert post(server, {"inputs": row(0)}).status_code == 200
    assert post(server, {"inputs": {"a": 1.0}}).status_code == 400
    assert post(server, {"inputs": {"a": 1.0}}).status_code == 400
    server.predlog.flush()
    plat.clock.advance(1)  # type: ignore[attr-defined]
    metrics = plat.serving.endpoint_metrics("scoring", start, plat.clock.now())
    assert metrics.requests == {"blue": 3}
    assert metrics.invalid == {"blue": 2}
    assert metrics.errors == {}


def test_rollout_does_not_promote_a_challenger_that_refuses_every_request(
    served: Served, tmp_path: Path
) -> None:
    plat, server = served
    _register_needing_a_feature_clients_do_not_send(plat, tmp_path)
    plat.serving.deploy("scoring", "credit:4", route="green")
    plan = _to_green({"blue": 90, "green": 10})
    result = RolloutController(plat, wait=_bake(plat, server, 100)).run(plan)
    assert not result.promoted
    assert len(result.steps) == 1
    [breach] = result.breaches
    assert breach.startswith("green: error rate 1.0000 > 0.01 (counting 10 requests refused")
    assert plat.serving.get_endpoint("scoring").traffic.weights == {"blue": 100, "green": 0}


@pytest.mark.parametrize(
    ("strategy", "steps"),
    [
        (RolloutStrategy.BLUE_GREEN, [{"green": 100}]),
        (RolloutStrategy.CANARY, [{"blue": 50, "green": 50}, {"green": 100}]),
    ],
)
def test_a_challenger_already_taking_some_traffic_is_no_baseline_for_its_own_refusals(
    served: Served, tmp_path: Path, strategy: RolloutStrategy, steps: list[dict[str, int]]
) -> None:
    plat, server = served
    _register_needing_a_feature_clients_do_not_send(plat, tmp_path)
    plat.serving.deploy("scoring", "credit:4", route="green")
    plat.serving.set_traffic("scoring", {"blue": 90, "green": 10}, reason="a little first")
    plan = TrafficPlan(
        endpoint="scoring",
        strategy=strategy,
        steps=[TrafficStep(weights=weights, bake_seconds=60) for weights in steps],
        sla=SLA(max_error_rate=0.01, min_requests=5),
    )
    result = RolloutController(plat, wait=_bake(plat, server, 100)).run(plan)
    assert not result.promoted
    assert len(result.steps) == 1
    assert any(b.startswith("green: error rate 1.0000 > 0.01") for b in result.breaches)
    assert plat.serving.get_endpoint("scoring").traffic.weights == {"blue": 90, "green": 10}


def _bad_quarter(plat: Platform, server: InferenceServer) -> Callable[[float], None]:
    """Bake a step: 100 requests, a quarter of which lack a feature (the clients' fault)."""

    def wait(seconds: float) -> None:
        server.reload()
        for i in range(100):
            post(server, {"inputs": row(i) if i % 4 else {"a": 1.0}})
        server.predlog.flush()
        plat.clock.advance(seconds)  # type: ignore[attr-defined]

    return wait


def test_a_champion_whose_weight_rises_on_the_way_stays_the_baseline(served: Served) -> None:
    plat, server = served
    plat.serving.deploy("scoring", "credit:2", route="green")  # healthy
    plat.serving.set_traffic("scoring", {"blue": 50, "green": 50}, reason="half")
    plan = _to_green({"blue": 90, "green": 10})
    result = RolloutController(plat, wait=_bad_quarter(plat, server)).run(plan)
    assert result.breaches == ()  # both refuse exactly the clients' own bad requests
    assert result.promoted


def test_the_baseline_is_every_live_route_but_the_one_the_plan_moves_toward(
    served: Served,
) -> None:
    plat, _ = served
    plat.serving.deploy("scoring", "credit:2", route="green")
    plat.serving.set_traffic("scoring", {"blue": 50, "green": 50}, reason="half")
    endpoint = plat.serving.get_endpoint("scoring")
    plan = plan_steps(  # canary 10/50/100: blue takes 90% in its first step
        TrafficPlan(endpoint="scoring", strategy=RolloutStrategy.CANARY), "green", "blue"
    )
    assert baseline_routes(plan, endpoint.traffic, endpoint) == {"blue"}


@pytest.mark.parametrize(
    "limits",
    [
        {"p99_latency_ms": float("inf")},
        {"p99_latency_ms": float("nan")},
        {"max_error_rate": float("nan")},
        {"custom": {"cost": float("nan")}},
        {"custom": {"cost": float("inf")}},
        {"custom": {"cost": -float("inf")}},
    ],
)
def test_an_sla_limit_that_is_no_finite_number_is_refused(limits: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="finite number"):
        SLA(**limits)


def test_a_p99_sla_is_breached_by_a_latency_never_read_back() -> None:
    """Requests counted but no p99 read back (an export with no latency, a histogram counting
    nothing) is no 0 ms latency: the SLA is not shown to hold. A route with no request has no
    latency to hold it to."""
    at = datetime(2026, 1, 1, tzinfo=UTC)
    metrics = EndpointMetrics(
        endpoint="scoring",
        start=at,
        end=at + timedelta(minutes=1),
        requests={"blue": 500, "green": 0},
        p99_latency_ms={"blue": 40.0},
    )
    sla = SLA(p99_latency_ms=100.0, min_requests=0)
    assert sla_breaches(sla, metrics, ["blue", "green"]) == []
    unread = metrics.model_copy(update={"p99_latency_ms": {}})
    assert sla_breaches(sla, unread, ["blue", "green"]) == [
        "blue: no p99 latency read back for its 500 answered requests"
    ]
    # requests the route refused or failed carry no latency: the error rate judges those
    refused = unread.model_copy(update={"invalid": {"blue": 300}, "errors": {"blue": 200}})
    assert sla_breaches(sla, refused, ["blue", "green"]) == []


@pytest.mark.parametrize(
    ("refused", "breaches"), [(k, False) for k in range(7)] + [(7, True), (20, True)]
)
def test_refusals_within_chance_of_the_baseline_share_do_not_breach(
    refused: int, breaches: bool
) -> None:
    """At the CLI's SLA (1% errors, 20 requests), with 5% of the clients' requests bad, a 10%
    canary refusing as the baseline does holds it however its 20 requests happen to fall: the
    baseline's 180 requests are a sample too."""
    at = datetime(2026, 1, 1, tzinfo=UTC)
    metrics = EndpointMetrics(
        endpoint="scoring",
        start=at,
        end=at + timedelta(minutes=1),
        requests={"blue": 180, "green": 20},
        invalid={"blue": 9, "green": refused},
    )
    found = sla_breaches(
        SLA(max_error_rate=0.01, min_requests=20),
        metrics,
        ["blue", "green"],
        refusals=refusals_of(metrics, ["blue"]),
        baseline={"blue"},
    )
    assert bool(found) is breaches
    if refused == 20:
        assert found == [
            "green: error rate 0.9500 > 0.01 (counting 19 requests refused as invalid beyond "
            "the share 0.0500 the baseline refused)"
        ]


@pytest.mark.parametrize(
    ("refusals", "breaches"),
    [
        (Refusals(refused=0, answered=180), []),  # by chance at a 1% share, 18% of the time
        (
            0.0,  # a share taken as exact (no baseline): every refusal counts
            [
                "green: error rate 0.0500 > 0.01 (counting 1 requests refused as invalid beyond "
                "the share 0.0000 the baseline refused)"
            ],
        ),
    ],
)
def test_one_refusal_against_a_baseline_that_refused_none_is_within_chance(
    refusals: Refusals | float, breaches: list[str]
) -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    metrics = EndpointMetrics(
        endpoint="scoring",
        start=at,
        end=at + timedelta(minutes=1),
        requests={"blue": 180, "green": 20},
        invalid={"blue": 0, "green": 1},
    )
    sla = SLA(max_error_rate=0.01, min_requests=20)
    found = sla_breaches(sla, metrics, ["blue", "green"], refusals=refusals, baseline={"blue"})
    assert found == breaches


def test_requests_every_route_refuses_do_not_roll_a_rollout_back(served: Served) -> None:
    plat, server = served
    plat.serving.deploy("scoring", "credit:2", route="green")
    plan = _to_green({"blue": 50, "green": 50})

    def wait(seconds: float) -> None:  # half the clients' requests lack a feature
        server.reload()
        for i in range(40):
            post(server, {"inputs": row(i) if i % 4 > 1 else {"a": 1.0}})
        server.predlog.flush()
        plat.clock.advance(seconds)  # type: ignore[attr-defined]

    result = RolloutController(plat, wait=wait).run(plan)
    assert result.breaches == ()
    assert result.promoted
    assert result.steps[0].metrics.invalid == {"blue": 10, "green": 10}


def _blue_green(plat: Platform, server: InferenceServer, challenger: str) -> TrafficPlan:
    """``challenger`` on green, and blue answering the clients (a quarter of whose requests lack
    a feature) in the minute before a blue-green plan switches all traffic to green."""
    plat.serving.deploy("scoring", challenger, route="green")
    for i in range(100):
        post(server, {"inputs": row(i) if i % 4 else {"a": 1.0}})
    server.predlog.flush()
    plat.clock.advance(1)  # type: ignore[attr-defined]
    return TrafficPlan(
        endpoint="scoring",
        strategy=RolloutStrategy.BLUE_GREEN,
        steps=[TrafficStep(weights={"green": 100}, bake_seconds=60)],
        sla=SLA(max_error_rate=0.01, min_requests=5),
    )


def test_a_blue_green_switch_judges_refusals_by_the_baseline_before_the_switch(
    served: Served,
) -> None:
    """The baseline takes no traffic in the plan's only step: the clients' own bad requests are
    measured on it in the same time before the switch, not taken as none."""
    plat, server = served
    plan = _blue_green(plat, server, "credit:2")  # healthy
    result = RolloutController(plat, wait=_bad_quarter(plat, server)).run(plan)
    assert result.breaches == ()
    assert result.promoted
    assert result.steps[0].metrics.invalid == {"green": 25}


def test_a_blue_green_challenger_refusing_what_the_baseline_answered_is_rolled_back(
    served: Served, tmp_path: Path
) -> None:
    plat, server = served
    _register_needing_a_feature_clients_do_not_send(plat, tmp_path)
    plan = _blue_green(plat, server, "credit:4")
    result = RolloutController(plat, wait=_bad_quarter(plat, server)).run(plan)
    assert not result.promoted
    assert result.breaches == (
        "green: error rate 0.7500 > 0.01 (counting 75 requests refused as invalid beyond the "
        "share 0.2500 the baseline refused)",
    )
    assert plat.serving.get_endpoint("scoring").traffic.weights == {"blue": 100, "green": 0}


@pytest.mark.parametrize(
    "before",
    [
        [],
        [{"a": 1.0}],  # one request, refused: a share of 1.0
        [{"a": 1.0}, row(0)],  # two, one refused: a share of 0.5
    ],
)
def test_a_blue_green_challenger_refusing_all_is_rolled_back_after_a_small_sample_before(
    served: Served, tmp_path: Path, before: list[dict[str, float]]
) -> None:
    """The baseline answered fewer requests before the switch than the SLA's ``min_requests``:
    that sample is no measure of the clients' bad requests, and every refusal of the new route
    counts."""
    plat, server = served
    _register_needing_a_feature_clients_do_not_send(plat, tmp_path)
    plat.serving.deploy("scoring", "credit:4", route="green")
    for inputs in before:
        post(server, {"inputs": inputs})
    server.predlog.flush()
    plat.clock.advance(1)  # type: ignore[attr-defined]
    plan = TrafficPlan(
        endpoint="scoring",
        strategy=RolloutStrategy.BLUE_GREEN,
        steps=[TrafficStep(weights={"green": 100}, bake_seconds=60)],
        sla=SLA(max_error_rate=0.01, min_requests=5),
    )

    def wait(seconds: float) -> None:  # every request well-formed for the clients
        server.reload()
        for i in range(100):
            post(server, {"inputs": row(i)})
        server.predlog.flush()
        plat.clock.advance(seconds)  # type: ignore[attr-defined]

    result = RolloutController(plat, wait=wait).run(plan)
    assert not result.promoted
    assert result.breaches == (
        "green: error rate 1.0000 > 0.01 (counting 100 requests refused as invalid beyond the "
        "share 0.0000 the baseline refused)",
    )
    assert plat.serving.get_endpoint("scoring").traffic.weights == {"blue": 100, "green": 0}


def _shadow_plan(sla: SLA) -> TrafficPlan:
    return TrafficPlan(
        endpoint="scoring",
        strategy=RolloutStrategy.SHADOW,
        shadow="green",
        shadow_percent=100,
        steps=[TrafficStep(weights={"blue": 100}, bake_seconds=60)],
        sla=sla,
    )


def _bake_shadowed(plat: Platform, server: InferenceServer, requests: int, copies: int = 0):  # type: ignore[no-untyped-def]
    """Bake a step: ``requests`` live requests, each copied to the shadow route (or ``copies``
    of them), whose copies (answered off the request path) are all logged before the window
    ends."""

    def wait(seconds: float) -> None:
        server.reload()
        for i in range(requests):
            post(server, {"inputs": row(i)})
        copied = copies or requests
        wait_for(lambda: sum(1 for r in logged(plat, server) if r["shadow"]) == copied, timeout=5)
        plat.clock.advance(seconds)  # type: ignore[attr-defined]

    return wait


def test_a_shadow_rollout_judges_the_shadowed_route(served: Served) -> None:
    plat, server = served
    plat.serving.deploy("scoring", "credit:3", route="green")  # fails every request
    plan = _shadow_plan(SLA(max_error_rate=0.01, min_requests=5))
    result = RolloutController(plat, wait=_bake_shadowed(plat, server, 20)).run(plan)
    assert not result.promoted
    assert result.breaches == ("shadow green: error rate 1.0000 > 0.01",)
    metrics = result.steps[0].metrics
    assert metrics.requests == {"blue": 20}
    assert metrics.shadow is not None
    assert metrics.shadow.errors == {"green": 20}
    latest = plat.serving.deployment_history("scoring")[-1]
    assert latest.reason.startswith("automatic rollback at step 1")
    assert latest.traffic.shadow is None


def test_a_shadow_rollout_judges_the_shadow_the_endpoint_already_had(served: Served) -> None:
    plat, server = served
    plat.serving.deploy("scoring", "credit:3", route="green")  # fails every request
    plat.serving.set_traffic("scoring", {"blue": 100}, shadow="green", shadow_percent=100)
    plan = _shadow_plan(SLA(max_error_rate=0.01, min_requests=5)).model_copy(
        update={"shadow": None, "shadow_percent": 0}
    )
    result = RolloutController(plat, wait=_bake_shadowed(plat, server, 20)).run(plan)
    assert not result.promoted
    assert result.breaches == ("shadow green: error rate 1.0000 > 0.01",)


def test_a_shadow_rollout_of_a_healthy_route_is_promoted(served: Served) -> None:
    plat, server = served
    plat.serving.deploy("scoring", "credit:2", route="green")
    plan = _shadow_plan(SLA(max_error_rate=0.0, min_requests=5))
    result = RolloutController(plat, wait=_bake_shadowed(plat, server, 20)).run(plan)
    assert result.breaches == ()
    assert result.promoted
    shadowed = result.steps[0].metrics.shadow
    assert shadowed is not None
    assert shadowed.requests == {"green": 20}


def test_the_endpoints_own_small_shadow_needs_no_minimum_of_copies(served: Served) -> None:
    plat, server = served
    plat.serving.deploy("scoring", "credit:2", route="exp")  # a healthy experiment
    plat.serving.set_traffic("scoring", {"blue": 100}, shadow="exp", shadow_percent=10)
    plat.serving.deploy("scoring", "credit:2", route="green")
    plan = _to_green({"blue": 50, "green": 50}).model_copy(
        update={"sla": SLA(max_error_rate=0.01, min_requests=20)}
    )

    def wait(seconds: float) -> None:  # 100 requests, 10 copied to exp, all logged
        copied = sum(1 for r in logged(plat, server) if r["shadow"])
        server.reload()
        for i in range(100):
            post(server, {"inputs": row(i)})
        wait_for(
            lambda: sum(1 for r in logged(plat, server) if r["shadow"]) == copied + 10, timeout=5
        )
        plat.clock.advance(seconds)  # type: ignore[attr-defined]

    result = RolloutController(plat, wait=wait).run(plan)
    assert result.breaches == ()
    assert result.promoted
    shadowed = result.steps[0].metrics.shadow
    assert shadowed is not None
    assert shadowed.requests == {"exp": 10}


def test_a_shadow_the_plan_names_needs_its_minimum_of_copies(served: Served) -> None:
    plat, server = served
    plat.serving.deploy("scoring", "credit:2", route="green")
    plan = _shadow_plan(SLA(max_error_rate=0.01, min_requests=30))
    plan = plan.model_copy(update={"shadow_percent": 50})
    result = RolloutController(plat, wait=_bake_shadowed(plat, server, 40, copies=20)).run(plan)
    assert not result.promoted
    assert result.breaches == (
        "shadow green: 20 requests in the window, fewer than the 30 needed to verify the SLA",
    )


def test_healthy_canary_is_promoted_and_becomes_known_good(served: Served) -> None:
    plat, server = served
    plat.serving.deploy("scoring", "credit:2", route="green")
    plan = TrafficPlan(
        endpoint="scoring",
        strategy=RolloutStrategy.CANARY,
        steps=[
            TrafficStep(weights={"blue": 90, "green": 10}, bake_seconds=30),
            TrafficStep(weights={"blue": 50, "green": 50}, bake_seconds=30),
            TrafficStep(weights={"green": 100}, bake_seconds=30),
        ],
        sla=SLA(max_error_rate=0.0, p99_latency_ms=5000, min_requests=5),
    )
    result = RolloutController(plat, wait=_bake(plat, server, 60)).run(plan)
    assert result.promoted
    assert result.breaches == ()
    assert plat.serving.get_endpoint("scoring").traffic.weights == {"green": 100}
    history = plat.serving.deployment_history("scoring")
    assert history[-1].known_good
    rolled = plat.serving.rollback("scoring", reason="manual")
    assert rolled.traffic.weights == {"blue": 100, "green": 0}


def test_step_without_traffic_cannot_verify_the_sla(served: Served) -> None:
    plat, server = served
    plat.serving.deploy("scoring", "credit:2", route="green")
    plan = TrafficPlan(
        endpoint="scoring",
        strategy=RolloutStrategy.BLUE_GREEN,
        steps=[TrafficStep(weights={"green": 100}, bake_seconds=10)],
        sla=SLA(min_requests=1),
    )
    result = RolloutController(plat, wait=_bake(plat, server, 0)).run(plan)
    assert not result.promoted
    assert plat.serving.get_endpoint("scoring").traffic.weights == {"blue": 100, "green": 0}


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"blue": 60, "green": 30}, "sum to 100"),
        ({"blue": 100, "ghost": 0}, "no route"),
        ({"blue": 101, "green": -1}, "between 0 and 100"),
    ],
)
def test_invalid_traffic_is_refused_before_any_backend_call(
    served: Served, weights: dict[str, int], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    plat, _ = served
    plat.serving.deploy("scoring", "credit:2", route="green")
    calls: list[object] = []
    monkeypatch.setattr(plat.backend, "set_traffic", lambda *a: calls.append(a))
    with pytest.raises(ValidationError, match=message):
        plat.serving.set_traffic("scoring", weights)
    assert calls == []


def test_archived_version_takes_no_traffic(served: Served) -> None:
    plat, _ = served
    plat.serving.deploy("scoring", "credit:2", route="green")
    plat.archive_version("credit", 2, reason="superseded")
    with pytest.raises(PolicyViolation, match="credit:2 is archived"):
        plat.serving.set_traffic("scoring", {"blue": 50, "green": 50})
    assert plat.audit.events()[-1].action == "policy.deny"


def test_killed_endpoint_refuses_traffic_changes_until_unkilled(served: Served) -> None:
    plat, _ = served
    plat.serving.kill("scoring")
    with pytest.raises(PolicyViolation, match="is killed"):
        plat.serving.set_traffic("scoring", {"blue": 100})
    plat.serving.unkill("scoring")
    assert plat.serving.set_traffic("scoring", {"blue": 100}).status.value == "in_service"


def test_deployments_are_lineage_downstream_of_the_model(served: Served) -> None:
    plat, _ = served
    graph = plat.lineage_downstream("credit:1")
    assert [n.label for n in graph.nodes if n.kind.value == "deployment"] == [
        "scoring/blue (credit:1)"
    ]


def test_a_traffic_change_is_in_force_when_the_call_returns(served: Served) -> None:
    plat, server = served
    stop_polling(server)  # no help from polling: the backend notifies the server
    plat.serving.deploy("scoring", "credit:2", route="green")
    plat.serving.set_traffic("scoring", {"green": 100})
    assert post(server, {"inputs": row(0)}).json()["route"] == "green"


def test_an_endpoint_made_outside_mintaka_is_served_once_adopted(
    served: Served, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:  # type: ignore[no-untyped-def]
    import logging

    from serving_kit import sklearn_artifact

    from mintaka.artifacts import manifest_of
    from mintaka.domain.registry import Flavor, VersionRequest
    from mintaka.domain.serving import Route, TrafficMap

    plat, server = served
    legacy = sklearn_artifact(tmp_path, 0.5)
    backend = plat.backend
    backend.ensure_model("legacy", "")  # type: ignore[attr-defined]
    backend.create_version(  # type: ignore[attr-defined]
        VersionRequest(
            name="legacy",
            artifact_path=str(legacy),
            artifact_digest=manifest_of(legacy).digest,
            flavor=Flavor.SKLEARN,
            mintaka_id="",
            idempotency_key="legacy-1",
        )
    )
    url = f"{server.url}/endpoints/legacy-api/invocations"
    with caplog.at_level(logging.WARNING, logger="mintaka.local.server"):
        backend.create_endpoint(  # type: ignore[attr-defined]
            "legacy-api",
            [Route(name="live", model="legacy", version=1)],
            TrafficMap(weights={"live": 100}),
        )
        for _ in range(3):  # the server serves nothing Mintaka does not record
            assert HTTP.post(url, json={"inputs": row(0)}).status_code == 404
        time.sleep(0.05)  # a few polls of the server, which retry the endpoint
    warned = [r.getMessage() for r in caplog.records if "legacy-api" in r.getMessage()]
    assert len(warned) == 1  # said once, not at every retry
    assert "mintaka adopt" in warned[0]
    # the legacy model names no features: adoption says in which order it takes them
    plat.migration.adopt_model("legacy", reason="served before Mintaka", features=list(row(0)))
    plat.migration.adopt_endpoint("legacy-api", reason="served before Mintaka")
    answer = HTTP.post(url, json={"inputs": row(0)})  # no reload asked: the request retries it
    assert answer.status_code == 200
    assert (answer.json()["model"], answer.json()["version"]) == ("legacy", 1)


def test_an_endpoint_whose_bytes_fail_is_not_read_again_until_it_changes(
    served: Served, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from mintaka.domain.serving import Route, TrafficMap
    from mintaka.errors import IntegrityError

    plat, server = served
    loads: list[str] = []
    real = server._runtime

    def runtime(row):  # type: ignore[no-untyped-def]
        if row.name == "broken-api":
            loads.append(row.name)
            raise IntegrityError("credit:1 bytes do not match their digest")
        return real(row)

    monkeypatch.setattr(server, "_runtime", runtime)
    with caplog.at_level(logging.ERROR, logger="mintaka.local.server"):
        plat.backend.create_endpoint(  # type: ignore[attr-defined]
            "broken-api",
            [Route(name="broken", model="credit", version=1)],
            TrafficMap(weights={"broken": 100}),
        )
        wait_for(lambda: bool(loads))
        time.sleep(0.1)  # five polls of the server
        assert (
            HTTP.post(f"{server.url}/endpoints/broken-api/invocations", json={}).status_code == 404
        )
    assert loads == ["broken-api"]  # hashing a large model every poll would burn the CPU
    assert len([r for r in caplog.records if "broken-api" in r.getMessage()]) == 1
    plat.backend.set_traffic("broken-api", TrafficMap(weights={"broken": 100}))  # type: ignore[attr-defined]
    wait_for(lambda: len(loads) == 2)  # a change to the endpoint is tried again


def test_a_failed_invocation_names_the_records_it_left(served: Served) -> None:
    """A 400 or 500 still logs each row (error telemetry reads them): the caller gets their ids."""
    plat, server = served
    plat.serving.deploy("scoring", "credit:3", route="faulty")
    failed = post(server, {"inputs": [row(0), row(1)]}, route="faulty")
    assert failed.status_code == 500
    ids = failed.json()["prediction_ids"]
    invalid = post(server, {"inputs": [{"a": 1.0}]})
    assert invalid.status_code == 400
    ids += invalid.json()["prediction_ids"]
    states = {r["id"]: r["status"] for r in logged(plat, server)}
    assert len(ids) == 3
    assert [states[i] for i in ids] == ["error", "error", "invalid"]


def test_an_output_json_cannot_carry_is_the_models_failure(served: Served, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """NaN from the model: a 500 counted as the route's error, its records marked error."""
    from serving_kit import pyfunc_artifact

    plat, server = served
    plat.register_model(
        "credit", pyfunc_artifact(tmp_path, "faulty_models:answers_nan"), flavor="pyfunc"
    )
    plat.serving.deploy("scoring", "credit:4", route="nan")
    answer = post(server, {"inputs": [row(0)]}, route="nan")
    assert answer.status_code == 500
    assert "model output is not JSON" in answer.json()["error"]
    [pid] = answer.json()["prediction_ids"]
    assert {r["id"]: r["status"] for r in logged(plat, server)}[pid] == "error"
    labels = {"endpoint": "scoring", "route": "nan"}
    assert server.registry.get_sample_value("mintaka_errors_total", labels) == 1
    ok = {**labels, "status": "200"}
    assert server.registry.get_sample_value("mintaka_requests_total", ok) is None


def test_a_model_answering_too_few_rows_is_a_500_not_the_callers_error(
    served: Served,
    tmp_path,  # type: ignore[no-untyped-def]
) -> None:
    from serving_kit import pyfunc_artifact

    plat, server = served
    plat.register_model(
        "credit", pyfunc_artifact(tmp_path, "faulty_models:one_answer_short"), flavor="pyfunc"
    )
    plat.serving.deploy("scoring", "credit:4", route="short")
    answer = post(server, {"inputs": [row(0), row(1)]}, route="short")
    assert answer.status_code == 500
    assert "model returned 1 outputs for 2 rows" in answer.json()["error"]
    labels = {"endpoint": "scoring", "route": "short"}
    assert server.registry.get_sample_value("mintaka_errors_total", labels) == 1


def test_a_pinned_request_to_an_archived_version_is_refused(served: Served) -> None:
    plat, server = served
    plat.serving.deploy("scoring", "credit:2", route="green")  # 0%: it may be archived
    assert post(server, {"inputs": row(0)}, route="green").status_code == 200
    plat.archive_version("credit", 2, reason="superseded")
    answer = post(server, {"inputs": row(0)}, route="green")
    assert answer.status_code == 409
    assert "archived" in answer.json()["error"]
    assert post(server, {"inputs": row(0)}).json()["route"] == "blue"


def test_an_endpoint_made_again_with_another_version_is_served_as_made(served: Served) -> None:
    plat, server = served
    server.stop()  # a server that misses the change notice sees it at its next look
    with Platform(plat.home, clock=plat.clock, actor="other") as other:
        other.serving.delete_endpoint("scoring")
        other.serving.create_endpoint("scoring", "credit:2", route="blue")
    server.reload()
    [loaded] = server.endpoints["scoring"].routes.values()
    assert (loaded.route.model, loaded.route.version) == ("credit", 2)


def test_a_shadow_that_changes_its_rows_leaves_the_live_record_alone(
    served: Served, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from serving_kit import pyfunc_artifact

    plat, server = served
    plat.register_model(
        "credit", pyfunc_artifact(tmp_path, "faulty_models:scribbles"), flavor="pyfunc"
    )
    plat.serving.deploy("scoring", "credit:4", route="scribbler")
    plat.serving.set_traffic("scoring", {"blue": 100}, shadow="scribbler", shadow_percent=100)
    server.reload()
    sent = row(0)
    live = post(server, {"inputs": sent}).json()["predictions"][0]["id"]
    server._shadow_pool.shutdown(wait=True)
    records = {r["id"]: r for r in logged(plat, server)}
    assert records[live]["inputs"] == sent


def test_json_nested_too_deep_is_a_400(served: Served) -> None:
    _, server = served
    body = b'{"inputs":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    answer = HTTP.post(f"{server.url}/endpoints/scoring/invocations", content=body)
    assert answer.status_code == 400
    assert "nested too deep" in answer.json()["error"]


@pytest.mark.parametrize("number", [b"1e999", b"-1e999", b"[1.5, 1e400]"])
def test_a_number_beyond_a_floats_range_is_a_400_before_any_model_sees_it(
    served: Served, tmp_path: Path, number: bytes
) -> None:
    """Python reads ``1e999`` as infinity: a model taking it would have it logged, and no JSON
    store takes infinity back."""
    plat, server = served
    plat.register_model(
        "credit", pyfunc_artifact(tmp_path, "faulty_models:echo_sum"), flavor="pyfunc"
    )
    plat.serving.deploy("scoring", "credit:4", route="echo")
    body = b'{"inputs": {"a": %s, "b": 0, "c": 0}}' % number
    answer = HTTP.post(
        f"{server.url}/endpoints/scoring/invocations",
        content=body,
        headers={"X-Mintaka-Route": "echo"},
    )
    assert answer.status_code == 400
    assert "beyond the range of a number" in answer.json()["error"]
    assert logged(plat, server) == []


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {1, 2}, b"raw"])
def test_invoking_with_a_value_json_cannot_carry_is_a_validation_error(
    served: Served, value: object
) -> None:
    plat, server = served
    with pytest.raises(ValidationError, match="JSON"):
        plat.serving.invoke("scoring", {"a": value, "b": 0.0, "c": 0.0})
    assert logged(plat, server) == []


def test_invoking_a_route_whose_version_is_archived_is_a_conflict(served: Served) -> None:
    plat, _ = served
    plat.serving.deploy("scoring", "credit:2", route="green")  # 0%: it may be archived
    plat.archive_version("credit", 2, reason="superseded")
    with pytest.raises(Conflict, match="archived"):
        plat.serving.invoke("scoring", row(0), route="green")


def test_invoking_with_a_body_over_the_servers_limit_is_a_validation_error(served: Served) -> None:
    plat, server = served
    server.max_body_bytes = 200
    with pytest.raises(ValidationError, match="over the limit of 200 bytes"):
        plat.serving.invoke("scoring", [row(i) for i in range(10)])
    assert plat.serving.invoke("scoring", row(0))["route"] == "blue"


def test_a_pinned_unknown_route_is_counted_as_404_without_a_series_of_its_own(
    served: Served,
) -> None:
    _, server = served
    for i in range(3):
        assert post(server, {"inputs": row(0)}, route=f"ghost-{i}").status_code == 404
    text = HTTP.get(f"{server.url}/metrics").text
    assert "ghost" not in text
    assert 'route="-",status="404"} 3.0' in text


@pytest.mark.parametrize("port", ["99999", "-5"])
def test_serve_refuses_a_port_out_of_range(
    capsys: pytest.CaptureFixture[str], tmp_path, port: str
) -> None:  # type: ignore[no-untyped-def]
    from cli_kit import cli, init_home

    home = init_home(capsys, tmp_path / "h")
    code, _, err = cli(capsys, "--home", str(home), "serve", "--port", port)
    assert code == 2
    assert "--port" in err


def test_serve_refuses_fewer_than_one_prediction_worker(
    capsys: pytest.CaptureFixture[str], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    from cli_kit import cli, init_home

    home = init_home(capsys, tmp_path / "h")
    code, _, err = cli(capsys, "--home", str(home), "serve", "--predict-workers", "0")
    assert code == 2
    assert "Invalid value for '--predict-workers'" in err  # the option exists, with a floor


LOAD_STARTS = 10.0
"""Seconds a change may take to reach the server's reload on a loaded machine (the waits end as
soon as it does)."""


def test_a_kill_takes_effect_while_another_reload_is_loading_a_model(
    served: Served, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    plat, server = served
    hold = tmp_path / "hold"
    hold.touch()
    monkeypatch.setenv("MINTAKA_TEST_HOLD", str(hold))
    plat.register_model("credit", pyfunc_artifact(tmp_path, "held_model:answer"), flavor="pyfunc")
    refused: list[BaseException] = []

    def deploy() -> None:
        try:
            plat.serving.deploy("scoring", "credit:4")
        except Conflict as exc:  # the kill overtook it: refused, the kill stays in force
            refused.append(exc)

    loading = threading.Thread(target=deploy)
    loading.start()  # the server starts loading the held model, under its reload lock
    try:
        wait_for(server._reload_lock.locked, timeout=LOAD_STARTS)
        killed = threading.Thread(target=plat.serving.kill, args=("scoring",))
        killed.start()
        # in force on the server at once, not once the model has loaded
        wait_for(lambda: post(server, {"inputs": row(0)}).status_code == 503)
    finally:
        hold.unlink()
        loading.join()
    killed.join()
    assert all("was killed while endpoint.deploy" in str(exc) for exc in refused)
    assert plat.serving.get_endpoint("scoring").status.value == "killed"
    assert post(server, {"inputs": row(0)}).status_code == 503


def test_a_kill_restoring_known_good_traffic_is_in_force_while_a_reload_loads_a_model(
    served: Served, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    plat, server = served
    plat.serving.deploy("scoring", "credit:2", route="green")
    plat.serving.set_traffic("scoring", {"blue": 0, "green": 100})
    assert post(server, {"inputs": row(0)}).json()["route"] == "green"
    hold = tmp_path / "hold"
    hold.touch()
    monkeypatch.setenv("MINTAKA_TEST_HOLD", str(hold))
    plat.register_model("credit", pyfunc_artifact(tmp_path, "held_model:answer"), flavor="pyfunc")
    loading = threading.Thread(target=plat.serving.create_endpoint, args=("other", "credit:4"))
    loading.start()  # the server starts loading the held model, under its reload lock
    try:
        wait_for(server._reload_lock.locked, timeout=LOAD_STARTS)
        killed = threading.Thread(target=plat.serving.kill, args=("scoring",))
        killed.start()  # back to the known-good blue, which the server has loaded
        wait_for(lambda: post(server, {"inputs": row(0)}).json()["route"] == "blue")
        assert hold.exists()  # in force while the model still loads
    finally:
        hold.unlink(missing_ok=True)
        loading.join()
    killed.join()
    assert plat.serving.get_endpoint("scoring").traffic.weights == {"blue": 100, "green": 0}
    assert post(server, {"inputs": row(0)}).json()["route"] == "blue"


class _HeldLock:
    """A reload lock held by a reload loading models; records each caller that waits for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self.waiters: list[str] = []

    def acquire(self, blocking: bool = True) -> bool:
        if blocking:
            self.waiters.append(threading.current_thread().name)
        return self._lock.acquire(blocking)

    def release(self) -> None:
        self._lock.release()

    def locked(self) -> bool:
        return self._lock.locked()


def test_a_kill_returns_in_force_without_waiting_for_a_reload_loading_models(
    served: Served,
) -> None:
    plat, server = served
    stop_polling(server)  # no polling: only the kill's own notice reaches the server
    held = _HeldLock()
    server._reload_lock = held  # type: ignore[assignment]
    try:
        plat.serving.kill("scoring")
        assert held.waiters == []  # the kill's notice did not queue behind the reload
        assert post(server, {"inputs": row(0)}).status_code == 503
    finally:
        held.release()
    assert plat.serving.get_endpoint("scoring").status.value == "killed"


def test_a_host_naming_two_addresses_is_served_on_both_on_one_port(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    resolve = socket.getaddrinfo

    def both_loopbacks(host: object, *args: Any, **kwargs: Any) -> Any:
        if host != "localhost":
            return resolve(host, *args, **kwargs)  # type: ignore[arg-type]
        port = args[0] if args else kwargs.get("port", 0)
        stream, tcp = socket.SOCK_STREAM, socket.IPPROTO_TCP
        return [
            (socket.AF_INET6, stream, tcp, "", ("::1", port, 0, 0)),
            (socket.AF_INET, stream, tcp, "", ("127.0.0.1", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", both_loopbacks)
    plat, _ = served
    dual = InferenceServer(plat, poll_interval=3600)
    told: list[Sequence[str]] = []
    serving = threading.Thread(
        target=serve_forever, args=(dual, "localhost", 0, told.append), daemon=True
    )
    serving.start()
    try:
        wait_for(lambda: told, timeout=10)
        port = dual.urls[0].rsplit(":", 1)[1]
        both = [f"http://[::1]:{port}", f"http://127.0.0.1:{port}"]
        assert told == [both]  # what `mintaka serve` prints
        (announced,) = [s for s in running_servers(plat.backend.path) if s.url == both[0]]
        assert list(announced.urls) == both  # what clients read
        for url in both:
            assert HTTP.get(f"{url}/health").status_code == 200
    finally:
        dual._stop.set()
        serving.join(10)


def test_the_listening_sockets_are_not_inherited_by_processes_models_start(
    served: Served,
) -> None:
    import os

    _, server = served
    assert server._server is not None
    listening = [sock for s in server._server.servers for sock in s.sockets]
    assert listening
    assert not any(os.get_inheritable(sock.fileno()) for sock in listening)


def test_a_server_that_does_not_start_closes_its_sockets(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    import uvicorn

    import mintaka.local.server as server_module

    plat, _ = served
    bound: list[socket.socket] = []
    listening = server_module._listening_sockets

    def spied(host: str, port: int) -> list[socket.socket]:
        bound.extend(listening(host, port))
        return bound

    monkeypatch.setattr(server_module, "_listening_sockets", spied)
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets=None: None)  # dies at once
    failed = InferenceServer(plat)
    with pytest.raises(MintakaError, match="did not start"):
        failed.start()
    failed.stop()
    assert bound
    assert all(sock.fileno() == -1 for sock in bound)


def test_a_version_the_server_cannot_load_gets_no_traffic(served: Served, tmp_path: Path) -> None:
    """An 'opaque' version (stored without serving) is refused live or shadow traffic before
    the backend is called: the record never says an endpoint serves what it cannot."""
    plat, _ = served
    (tmp_path / "blob").mkdir()
    (tmp_path / "blob" / "weights.bin").write_bytes(b"\x00\x01")
    plat.register_model("credit", tmp_path / "blob")
    with pytest.raises(ValidationError, match=r"credit:4 .*flavor 'opaque'.*--flavor sklearn"):
        plat.serving.create_endpoint("stored", "credit:4")
    assert [e.name for e in plat.serving.list_endpoints()] == ["scoring"]
    before = plat.serving.deployment_history("scoring")
    with pytest.raises(ValidationError, match="flavor 'opaque'"):
        plat.serving.deploy("scoring", "credit:4", route="stored", weights={"stored": 100})
    plat.serving.deploy("scoring", "credit:4", route="stored")  # a route with no traffic is fine
    with pytest.raises(ValidationError, match="flavor 'opaque'"):
        plat.serving.set_traffic("scoring", {"blue": 50, "stored": 50})
    with pytest.raises(ValidationError, match="flavor 'opaque'"):
        plat.serving.set_traffic("scoring", {"blue": 100}, shadow="stored", shadow_percent=10)
    endpoint = plat.serving.get_endpoint("scoring")
    assert endpoint.traffic == TrafficMap(weights={"blue": 100, "stored": 0})
    assert len(plat.serving.deployment_history("scoring")) == len(before) + 1


def test_the_listening_sockets_say_they_are_tcp_so_answers_are_not_held_back() -> None:
    """asyncio turns Nagle's algorithm off only on connections whose socket names TCP as its
    protocol; without that, an answer written as headers then body waited ~40 ms for the
    client's acknowledgement of the headers."""
    import socket

    from mintaka.local.server import _listening_sockets

    sockets = _listening_sockets("127.0.0.1", 0)
    try:
        assert [sock.proto for sock in sockets] == [socket.IPPROTO_TCP] * len(sockets)
    finally:
        for sock in sockets:
            sock.close()
