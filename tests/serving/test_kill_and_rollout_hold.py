"""The kill switch wins over everything else that moves an endpoint's traffic: a configuration
the server cannot load, a rollout walking its steps, an archived shadow; and client input that
a model cannot take is the caller's error, never the route's."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from serving_kit import pyfunc_artifact, row
from sqlalchemy import select

from mintaka import Platform
from mintaka.domain.serving import (
    SLA,
    RolloutStrategy,
    Route,
    TrafficMap,
    TrafficPlan,
    TrafficStep,
)
from mintaka.errors import PolicyViolation
from mintaka.local.backend import LocalBackend
from mintaka.local.server import InferenceServer
from mintaka.rollout.controller import RolloutController, RolloutInterrupted
from mintaka.store.schema import predictions

Served = tuple[Platform, InferenceServer]
HTTP = httpx.Client(timeout=10)


def post(server: InferenceServer, body: object, endpoint: str = "scoring") -> httpx.Response:
    return HTTP.post(f"{server.url}/endpoints/{endpoint}/invocations", json=body)


def post_raw(server: InferenceServer, body: bytes) -> httpx.Response:
    return HTTP.post(f"{server.url}/endpoints/scoring/invocations", content=body)


def unloadable(plat: Platform, tmp_path: Path) -> str:
    """A registered pyfunc version whose function's module does not exist."""
    version = plat.register_model(
        "broken", pyfunc_artifact(tmp_path, "no_such_module_xyz:predict"), flavor="pyfunc"
    )
    return version.ref


# -- a kill does not wait for models to load ----------------------------------------------------


def test_a_kill_holds_while_the_endpoints_new_configuration_cannot_load(
    served: Served, tmp_path: Path
) -> None:
    plat, server = served
    plat.serving.deploy("scoring", unloadable(plat, tmp_path), route="broken")
    server.reload()
    assert post(server, {"inputs": row(0)}).status_code == 200  # the old configuration serves
    plat.serving.kill("scoring")
    server.reload()
    assert post(server, {"inputs": row(0)}).status_code == 503
    plat.serving.unkill("scoring")
    server.reload()
    assert post(server, {"inputs": row(0)}).status_code == 200


def test_a_kill_pulled_before_a_change_that_cannot_load_holds_until_released(
    served: Served, tmp_path: Path
) -> None:
    """Kill, then a route change made in the backend that cannot load, then unkill: the
    endpoint stays killed until released, and the release serves its previous routes, as an
    unkill through Mintaka does (traffic changes are refused while it is killed)."""
    plat, server = served
    plat.serving.kill("scoring")
    server.reload()
    unloadable(plat, tmp_path)
    backend: LocalBackend = plat.backend  # type: ignore[assignment]
    broken = Route(name="broken", model="broken", version=1)
    backend.update_routes("scoring", [broken], TrafficMap(weights={"broken": 100}))
    server.reload()
    assert post(server, {"inputs": row(0)}).status_code == 503
    backend.unkill("scoring")
    server.reload()
    answer = post(server, {"inputs": row(0)})
    assert answer.status_code == 200
    assert answer.json()["route"] == "blue"


# -- an endpoint made again is never served by the one it replaces ------------------------------


def _invoked(server: InferenceServer) -> int:
    status, _ = server._answer("scoring", json.dumps({"inputs": row(0)}).encode(), None)
    return status


def test_an_endpoint_made_again_that_cannot_load_is_not_served_by_the_one_deleted(
    served: Served, tmp_path: Path
) -> None:
    plat, _ = served
    with InferenceServer(plat, poll_interval=60) as other:  # sees changes at reload() only
        plat.serving.delete_endpoint("scoring")
        plat.serving.create_endpoint("scoring", unloadable(plat, tmp_path), route="new")
        other.reload()
        assert "scoring" not in other.endpoints
        assert _invoked(other) == 404
        plat.serving.create_endpoint("side", "credit:1", route="only")
        other.reload()  # the failed configuration is not read again, nor the old one served
        assert sorted(other.endpoints) == ["side"]


def test_an_endpoint_made_again_and_changed_past_the_deleted_ones_version_is_not_served_by_it(
    served: Served, tmp_path: Path
) -> None:
    plat, _ = served
    backend: LocalBackend = plat.backend  # type: ignore[assignment]
    with InferenceServer(plat, poll_interval=60) as other:
        plat.serving.kill("scoring")  # config version 2
        other.reload()
        plat.serving.delete_endpoint("scoring")
        plat.serving.create_endpoint("scoring", unloadable(plat, tmp_path), route="new")
        for _ in range(2):  # config version 3: past the deleted endpoint's
            backend.set_traffic("scoring", TrafficMap(weights={"new": 100}))
        other.reload()
        assert other.endpoints.get("scoring") is None
        assert _invoked(other) == 404


def test_a_killed_endpoint_deleted_is_not_revived_by_one_made_again_that_cannot_load(
    served: Served, tmp_path: Path
) -> None:
    plat, _ = served
    with InferenceServer(plat, poll_interval=60) as other:
        plat.serving.kill("scoring")
        plat.serving.delete_endpoint("scoring")
        plat.serving.create_endpoint("scoring", unloadable(plat, tmp_path), route="new")
        other.reload()
        assert other.endpoints.get("scoring") is None
        assert _invoked(other) == 404


def test_kill_switches_of_an_endpoint_made_again_release_nothing_of_the_one_deleted(
    served: Served, tmp_path: Path
) -> None:
    plat, _ = served
    with InferenceServer(plat, poll_interval=60) as other:
        plat.serving.kill("scoring")
        other._apply_kill_switches()
        assert other.endpoints["scoring"].killed
        plat.serving.delete_endpoint("scoring")
        plat.serving.create_endpoint("scoring", unloadable(plat, tmp_path), route="new")
        other._apply_kill_switches()  # as while a reload loads models
        assert "scoring" not in other.endpoints  # the one deleted goes, killed as it was
        assert _invoked(other) == 404
        other.reload()
        assert _invoked(other) == 404


def test_a_model_that_fails_to_import_stops_no_other_endpoint(
    served: Served, tmp_path: Path
) -> None:
    plat, server = served
    plat.serving.create_endpoint("side", unloadable(plat, tmp_path), route="only")
    assert HTTP.post(f"{server.url}/-/reload").status_code == 200
    plat.serving.kill("scoring")
    server.reload()
    assert post(server, {"inputs": row(0)}).status_code == 503
    assert post(server, {"inputs": row(0)}, endpoint="side").status_code == 404
    with InferenceServer(plat) as another:  # a server starting on this home serves what it can
        assert sorted(another.endpoints) == ["scoring"]
        assert another.endpoints["scoring"].killed


# -- what a model cannot take is the caller's error ---------------------------------------------


@pytest.mark.parametrize("value", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"1" + b"0" * 400])
def test_numbers_a_model_cannot_take_are_refused_and_not_counted_as_errors(
    served: Served, value: bytes
) -> None:
    plat, server = served
    body = b'{"inputs": {"a": %s, "b": 0.5, "c": 0.1}}' % value
    answer = post_raw(server, body)
    assert answer.status_code == 400, answer.text
    metrics = HTTP.get(f"{server.url}/metrics").text
    assert 'status="500"' not in metrics
    server.predlog.flush()
    with plat.store.read() as conn:
        states = {r.status for r in conn.execute(select(predictions.c.status)).all()}
    assert states <= {"invalid"}


# -- a rollout owns the traffic only while nobody else touches it -------------------------------


def _plan(*steps: dict[str, int], min_requests: int = 0) -> TrafficPlan:
    return TrafficPlan(
        endpoint="scoring",
        strategy=RolloutStrategy.CANARY,
        steps=[TrafficStep(weights=w, bake_seconds=30) for w in steps],
        sla=SLA(min_requests=min_requests),
    )


def _waiting(plat: Platform, at_step: int, act: Callable[[], object]) -> Callable[[float], None]:
    """A bake that advances the clock, and runs ``act`` during step ``at_step``."""
    steps = iter(range(1, 100))

    def wait(seconds: float) -> None:
        if next(steps) == at_step:
            act()
        plat.clock.advance(seconds)  # type: ignore[attr-defined]

    return wait


CANARY = ({"blue": 90, "green": 10}, {"blue": 50, "green": 50}, {"green": 100})


def test_a_kill_during_a_rollout_stops_it_where_the_kill_left_the_traffic(
    served: Served,
) -> None:
    plat, _ = served
    plat.serving.deploy("scoring", "credit:2", route="green")
    with Platform(plat.home, actor="oncall", clock=plat.clock) as other:
        wait = _waiting(plat, 1, lambda: other.serving.kill("scoring", reason="incident"))
        with pytest.raises(RolloutInterrupted, match="oncall changed its traffic"):
            RolloutController(plat, wait=wait).run(_plan(*CANARY))
    # the kill went back to the known-good traffic the rollout started from, and stays there
    assert plat.serving.get_endpoint("scoring").traffic.weights == {"blue": 100, "green": 0}
    actions = [e.action for e in plat.audit.events()]
    assert actions.count("endpoint.traffic") == 1  # step 1 only
    assert actions[-1] == "endpoint.kill"


def test_a_hard_kill_during_a_rollout_stops_it(served: Served) -> None:
    plat, _ = served
    plat.serving.deploy("scoring", "credit:2", route="green")
    # no earlier known-good traffic: the kill is the switch itself
    with Platform(plat.home, actor="oncall", clock=plat.clock) as other:
        wait = _waiting(plat, 2, lambda: other.serving._switch("scoring", True, "incident"))
        with pytest.raises(RolloutInterrupted, match="was killed"):
            RolloutController(plat, wait=wait).run(_plan(*CANARY))
    endpoint = plat.serving.get_endpoint("scoring")
    assert endpoint.status.value == "killed"
    assert endpoint.traffic.weights == {"blue": 50, "green": 50}


def test_a_change_slipped_in_just_before_a_step_refuses_the_step(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Between the controller's check and its step another actor changes the traffic: the step
    no longer follows the rollout's last change, so it is not applied and the rollout stops."""
    plat, _ = served
    plat.serving.deploy("scoring", "credit:2", route="green")
    original = plat.serving._set_traffic
    other = Platform(plat.home, actor="oncall", clock=plat.clock)

    def racing(endpoint: str, weights: dict[str, int], **kwargs: object) -> object:
        if str(kwargs.get("reason", "")).startswith("rollout step 2"):
            other.serving.set_traffic("scoring", {"blue": 100}, reason="manual hold")
        return original(endpoint, weights, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(plat.serving, "_set_traffic", racing)
    try:
        with pytest.raises(RolloutInterrupted, match="manual hold"):
            RolloutController(plat, wait=_waiting(plat, 0, lambda: None)).run(_plan(*CANARY))
    finally:
        other.close()
    assert plat.serving.get_endpoint("scoring").traffic.weights == {"blue": 100}  # as they set it
    assert plat.serving.deployment_history("scoring")[-1].reason == "manual hold"


def test_a_failure_mid_rollout_restores_the_starting_traffic(served: Served) -> None:
    plat, _ = served
    plat.serving.deploy("scoring", "credit:2", route="green")

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        RolloutController(plat, wait=_waiting(plat, 2, interrupted)).run(_plan(*CANARY))
    assert plat.serving.get_endpoint("scoring").traffic.weights == {"blue": 100, "green": 0}
    assert plat.serving.deployment_history("scoring")[-1].reason == (
        "rollout stopped by KeyboardInterrupt"
    )


def test_a_rollout_without_a_request_minimum_verifies_an_idle_step(served: Served) -> None:
    plat, _ = served
    plat.serving.deploy("scoring", "credit:2", route="green")
    plan = _plan({"green": 100}).model_copy(update={"sla": SLA(max_error_rate=0.0, min_requests=0)})
    result = RolloutController(plat, wait=_waiting(plat, 0, lambda: None)).run(plan)
    assert result.promoted
    assert plat.serving.get_endpoint("scoring").traffic.weights == {"green": 100}


def test_a_rollout_keeps_the_endpoints_shadow_unless_it_goes_live(served: Served) -> None:
    plat, _ = served
    plat.serving.deploy("scoring", "credit:2", route="green")
    plat.serving.deploy("scoring", "credit:1", route="red")
    plat.serving.set_traffic("scoring", {"blue": 100}, shadow="red", shadow_percent=50)
    RolloutController(plat, wait=_waiting(plat, 0, lambda: None)).run(_plan(*CANARY))
    traffic = plat.serving.get_endpoint("scoring").traffic
    assert (traffic.weights, traffic.shadow, traffic.shadow_percent) == (
        {"green": 100},
        "red",
        50,
    )
    RolloutController(plat, wait=_waiting(plat, 0, lambda: None)).run(_plan({"red": 100}))
    traffic = plat.serving.get_endpoint("scoring").traffic
    assert (traffic.weights, traffic.shadow) == ({"red": 100}, None)


# -- archived shadows ---------------------------------------------------------------------------


def test_an_archived_shadow_does_not_block_the_kill_switch(served: Served) -> None:
    plat, _ = served
    plat.serving.deploy("scoring", "credit:2", route="old")
    plat.serving.set_traffic("scoring", {"blue": 100}, shadow="old", shadow_percent=50)
    with pytest.raises(PolicyViolation, match="credit:2 takes traffic on scoring/old \\(shadow\\)"):
        plat.archive_version("credit", 2)
    # archived by a path that predates the shadow check: the switch must still work
    with plat.store.write() as conn:
        from mintaka.store.schema import model_versions

        conn.execute(
            model_versions.update()
            .where(model_versions.c.name == "credit", model_versions.c.version == 2)
            .values(stage="archived")
        )
    assert plat.serving.kill("scoring").status.value == "killed"


def _interrupt_after_step_2(
    plat: Platform, monkeypatch: pytest.MonkeyPatch, then: Callable[[], None] = lambda: None
) -> None:
    """Ctrl-C right after step 2's traffic change commits, before the controller reads it back."""
    original = plat.serving._set_traffic

    def committed_then_interrupted(
        endpoint: str, weights: dict[str, int], **kwargs: object
    ) -> object:
        changed = original(endpoint, weights, **kwargs)  # type: ignore[arg-type]
        if str(kwargs.get("reason", "")).startswith("rollout step 2"):
            then()
            raise KeyboardInterrupt
        return changed

    monkeypatch.setattr(plat.serving, "_set_traffic", committed_then_interrupted)


def test_ctrl_c_just_after_a_step_commits_restores_the_starting_traffic(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    plat, _ = served
    plat.serving.deploy("scoring", "credit:2", route="green")
    _interrupt_after_step_2(plat, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        RolloutController(plat, wait=_waiting(plat, 0, lambda: None)).run(_plan(*CANARY))
    assert plat.serving.get_endpoint("scoring").traffic.weights == {"blue": 100, "green": 0}
    history = plat.serving.deployment_history("scoring")
    assert history[-2].reason == "rollout step 2/3"
    assert history[-1].reason == "rollout stopped by KeyboardInterrupt"


def test_ctrl_c_after_someone_else_changed_the_traffic_leaves_their_change(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    plat, _ = served
    plat.serving.deploy("scoring", "credit:2", route="green")
    other = Platform(plat.home, actor="oncall", clock=plat.clock)
    hold = lambda: other.serving.set_traffic("scoring", {"blue": 100}, reason="manual hold")  # noqa: E731
    _interrupt_after_step_2(plat, monkeypatch, hold)
    try:
        with pytest.raises(KeyboardInterrupt):
            RolloutController(plat, wait=_waiting(plat, 0, lambda: None)).run(_plan(*CANARY))
    finally:
        other.close()
    assert plat.serving.deployment_history("scoring")[-1].reason == "manual hold"
    assert plat.serving.get_endpoint("scoring").traffic.weights == {"blue": 100}
