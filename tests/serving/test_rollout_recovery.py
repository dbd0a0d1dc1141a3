"""A rollout starts only from verified traffic, checks its whole plan before changing anything,
and never takes another actor's change (made while it reads metrics, or after a rollout that
stopped mid-way) for its own or for known-good traffic."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pydantic
import pytest
from artifact_kit import MakeArtifact

from mintaka import Platform
from mintaka.domain.serving import (
    SLA,
    Endpoint,
    EndpointMetrics,
    RolloutStrategy,
    TrafficMap,
    TrafficPlan,
    TrafficStep,
)
from mintaka.errors import Conflict, PolicyViolation, UnsupportedCapability, ValidationError
from mintaka.interfaces import NativeRollout
from mintaka.rollout import controller as rollout_controller
from mintaka.rollout import native
from mintaka.rollout.controller import RolloutController, RolloutInterrupted

CANARY = ({"blue": 90, "green": 10}, {"blue": 50, "green": 50}, {"green": 100})
BEFORE = {"blue": 100, "green": 0, "red": 0}


@pytest.fixture
def three(platform: Platform, make_servable: MakeArtifact) -> Platform:
    """``scoring`` serving credit:1 on blue, with credit:2 (green) and credit:3 (red) idle."""
    for content in (b"v1", b"v2", b"v3"):
        platform.register_model("credit", make_servable(content), flavor="pyfunc")
    platform.serving.create_endpoint("scoring", "credit:1", route="blue")
    platform.serving.deploy("scoring", "credit:2", route="green")
    platform.serving.deploy("scoring", "credit:3", route="red")
    return platform


@pytest.fixture
def oncall(three: Platform) -> Iterator[Platform]:
    with Platform(three.home, actor="oncall", clock=three.clock) as other:
        yield other


def _plan(*steps: dict[str, int], min_requests: int = 0, **fields: object) -> TrafficPlan:
    return TrafficPlan(
        endpoint="scoring",
        strategy=RolloutStrategy.CANARY,
        steps=[TrafficStep(weights=w, bake_seconds=30) for w in steps],
        sla=SLA(min_requests=min_requests),
        **fields,  # type: ignore[arg-type]
    )


def _baking(plat: Platform, baked: list[float] | None = None) -> Callable[[float], None]:
    def wait(seconds: float) -> None:
        if baked is not None:
            baked.append(seconds)
        plat.clock.advance(seconds)  # type: ignore[attr-defined]

    return wait


class _Cloud(NativeRollout):
    """A cloud with a deployment policy of its own, which starts every rollout it is handed."""

    def __init__(self) -> None:
        self.started: list[TrafficPlan] = []

    def start_rollout(self, plan: TrafficPlan) -> str:
        self.started.append(plan)
        return "r-7"

    def rollout_status(self, name: str, rollout_id: str) -> str:
        return "in_progress"


def _unchanged(plat: Platform) -> tuple[list[object], int]:
    """The endpoint's deployment history and the length of the audit trail."""
    return plat.serving.deployment_history("scoring"), len(plat.audit.events())


# -- another rollout's unfinished steps are not known-good --------------------------------------


def _stopped_mid_way(plat: Platform) -> None:
    """What a rollout whose process died while baking step 2 leaves behind."""
    plat.serving.mark_known_good("scoring")
    for index, weights in enumerate(CANARY[:2], start=1):
        plat.serving._set_traffic(
            "scoring", weights, strategy=RolloutStrategy.CANARY, reason=f"rollout step {index}/3"
        )


def test_a_rollout_after_one_that_stopped_mid_way_is_refused_until_rolled_back(
    three: Platform,
) -> None:
    _stopped_mid_way(three)
    before = _unchanged(three)
    with pytest.raises(Conflict, match=r"middle of a rollout.*mintaka rollback scoring"):
        RolloutController(three, wait=_baking(three)).run(_plan(*CANARY, min_requests=1))
    assert _unchanged(three) == before  # the half-finished split is not marked known-good
    three.serving.rollback("scoring")
    assert three.serving.get_endpoint("scoring").traffic.weights == BEFORE
    result = RolloutController(three, wait=_baking(three)).run(_plan(*CANARY, min_requests=1))
    assert result.breaches  # an idle step 1 breaches: back to the traffic verified before
    assert result.rolled_back_to == BEFORE
    assert three.serving.get_endpoint("scoring").traffic.weights == BEFORE


def test_traffic_set_by_hand_after_a_rollout_that_stopped_lets_the_next_one_start(
    three: Platform,
) -> None:
    _stopped_mid_way(three)
    with pytest.raises(Conflict, match=r"mintaka endpoints traffic scoring"):
        RolloutController(three, wait=_baking(three)).run(_plan({"red": 100}))
    three.serving.set_traffic("scoring", {"blue": 100}, reason="back to blue by hand")
    assert (
        RolloutController(three, wait=_baking(three)).run(_plan({"blue": 50, "red": 50})).promoted
    )


def test_a_rollout_started_while_another_bakes_is_refused_and_changes_nothing(
    three: Platform,
) -> None:
    refused: list[Exception] = []
    seen: list[object] = []

    def second_rollout(seconds: float) -> None:
        if not refused:
            seen.append(_unchanged(three))
            try:
                RolloutController(three, wait=_baking(three)).run(_plan({"red": 100}))
            except Conflict as exc:
                refused.append(exc)
            seen.append(_unchanged(three))
        three.clock.advance(seconds)  # type: ignore[attr-defined]

    result = RolloutController(three, wait=second_rollout).run(_plan(*CANARY))
    assert "rollout step 1/3" in str(refused[0])
    assert seen[0] == seen[1]
    assert result.promoted
    assert three.serving.get_endpoint("scoring").traffic.weights == {"green": 100}


def test_a_native_rollout_is_not_started_over_an_unfinished_rollout_step(
    three: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    _stopped_mid_way(three)
    monkeypatch.setattr(native, "_native", lambda plat: _Cloud())
    before = _unchanged(three)
    with pytest.raises(Conflict, match="middle of a rollout"):
        native.start(three, _plan({"green": 100}))
    assert _unchanged(three) == before


def test_a_rollout_over_a_native_rollout_whose_end_is_not_recorded_is_refused(
    three: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(native, "_native", lambda plat: _Cloud())
    assert native.start(three, _plan({"blue": 50, "green": 50})) == "r-7"
    before = _unchanged(three)
    with pytest.raises(
        Conflict, match=r"native rollout under way \(r-7.*rollout-status scoring r-7"
    ):
        RolloutController(three, wait=_baking(three)).run(_plan({"red": 100}))
    with pytest.raises(Conflict, match="native rollout under way"):
        native.start(three, _plan({"red": 100}))
    assert _unchanged(three) == before  # the start's unverified target is not marked known-good


def test_changes_wait_for_a_native_rollouts_end_but_the_kill_switch_does_not(
    three: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(native, "_native", lambda plat: _Cloud())
    native.start(three, _plan({"blue": 50, "green": 50}))
    before = _unchanged(three)
    refused = r"native rollout under way \(r-7.*rollout-status scoring r-7"
    with pytest.raises(Conflict, match=refused):
        three.serving.set_traffic("scoring", {"red": 100})
    with pytest.raises(Conflict, match=refused):
        three.serving.deploy("scoring", "credit:1", route="again")
    with pytest.raises(Conflict, match=refused):
        three.serving.retire_route("scoring", "red")
    with pytest.raises(Conflict, match=refused):
        three.serving.rollback("scoring")
    assert _unchanged(three) == before
    assert three.serving.kill("scoring", reason="incident").traffic.weights == BEFORE
    assert native.status(three, "scoring", "r-7") is native.NativeRolloutStatus.UNKNOWN
    three.serving.set_traffic("scoring", {"red": 100})  # the kill stopped the rollout


@pytest.mark.parametrize("before", [BEFORE, {"blue": 50, "green": 50, "red": 0}])
def test_a_kill_pulled_while_a_native_rollout_starts_stays_in_force(
    three: Platform, monkeypatch: pytest.MonkeyPatch, before: dict[str, int]
) -> None:
    """From blue alone the kill pulls the switch; from a split it puts blue back (known good
    since the endpoint was made). Either way the start is not recorded over it, and the cloud,
    which began walking the plan after the kill, is put back to the kill."""
    if before != BEFORE:
        three.serving.set_traffic("scoring", before)
    backend: Any = three.backend

    class KilledMeanwhile(_Cloud):
        def start_rollout(self, plan: TrafficPlan) -> str:
            three.serving.kill("scoring", reason="incident")
            backend.set_traffic("scoring", TrafficMap(weights=plan.steps[0].weights))
            return super().start_rollout(plan)

    monkeypatch.setattr(native, "_native", lambda plat: KilledMeanwhile())
    with pytest.raises(Conflict, match=r"killed while endpoint\.rollout.*r-7"):
        native.start(three, _plan({"blue": 50, "green": 50}, {"green": 100}))
    recorded = three.serving.get_endpoint("scoring")
    assert recorded.status.value == ("killed" if before == BEFORE else "in_service")
    assert recorded.traffic.weights == BEFORE
    assert not [d for d in three.serving.deployment_history("scoring") if "r-7" in d.reason]
    assert [e.action for e in three.audit.events(subject="scoring")][-1] == "endpoint.kill"
    assert three.serving.unrecorded_native_rollout("scoring") is None
    held = backend.get_endpoint("scoring")
    assert held.status == recorded.status
    if recorded.status.value != "killed":  # a killed endpoint's traffic is put back on release
        assert held.traffic == recorded.traffic


def test_a_kill_whose_traffic_the_cloud_refuses_while_it_walks_the_plan_pulls_the_switch(
    three: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kill putting known-good traffic back lands while the cloud starts the rollout; the
    cloud, now walking the plan, refuses that traffic (SageMaker refuses a weight change while
    Updating): the kill is not left recorded over a cloud that keeps rolling out, the switch
    is pulled and recorded instead."""
    three.serving.set_traffic("scoring", {"blue": 50, "green": 50, "red": 0})
    backend: Any = three.backend
    walking: list[str] = []

    def refused_while_walking(name: str, traffic: TrafficMap) -> Endpoint:
        if walking:
            raise Conflict(f"[cloud] endpoint {name!r} is Updating; wait for it to be InService")
        return type(backend).set_traffic(backend, name, traffic)

    monkeypatch.setattr(backend, "set_traffic", refused_while_walking)

    class KilledMeanwhile(_Cloud):
        def start_rollout(self, plan: TrafficPlan) -> str:
            three.serving.kill("scoring", reason="incident")
            walking.append(plan.endpoint)
            return super().start_rollout(plan)

    monkeypatch.setattr(native, "_native", lambda plat: KilledMeanwhile())
    with pytest.raises(Conflict, match=r"killed while endpoint\.rollout.*r-7"):
        native.start(three, _plan({"blue": 50, "green": 50}, {"green": 100}))
    recorded = three.serving.get_endpoint("scoring")
    assert recorded.status.value == "killed"
    assert backend.get_endpoint("scoring").status.value == "killed"
    kills = [e for e in three.audit.events(subject="scoring") if e.action == "endpoint.kill"]
    assert len(kills) == 2  # the kill's traffic, then the switch
    assert "native rollout r-7" in kills[-1].details["reason"]
    assert three.serving.unrecorded_native_rollout("scoring") is None


def test_a_kill_whose_traffic_and_switch_the_cloud_refuses_mid_plan_leaves_the_rollout_shown(
    three: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As above, but the cloud refuses the switch too (SageMaker refuses DeleteEndpoint while
    Updating): the kill is not in force, so the rollout the cloud walks is recorded as started
    after it (its end not recorded), and the refusal of the start says so."""
    three.serving.set_traffic("scoring", {"blue": 50, "green": 50, "red": 0})
    backend: Any = three.backend
    walking: list[str] = []

    def refused_while_walking(name: str, traffic: TrafficMap) -> Endpoint:
        if walking:
            raise Conflict(f"[cloud] endpoint {name!r} is Updating; wait for it to be InService")
        return type(backend).set_traffic(backend, name, traffic)

    def kill_refused_while_walking(name: str) -> Endpoint:
        if walking:
            raise Conflict(f"[cloud] endpoint {name!r} is Updating; the kill is not applied")
        return type(backend).kill(backend, name)

    monkeypatch.setattr(backend, "set_traffic", refused_while_walking)
    monkeypatch.setattr(backend, "kill", kill_refused_while_walking)

    class KilledMeanwhile(_Cloud):
        def start_rollout(self, plan: TrafficPlan) -> str:
            three.serving.kill("scoring", reason="incident")
            walking.append(plan.endpoint)
            return super().start_rollout(plan)

    monkeypatch.setattr(native, "_native", lambda plat: KilledMeanwhile())
    with pytest.raises(Conflict, match=r"r-7.*kill is not applied.*recorded as started"):
        native.start(three, _plan({"blue": 50, "green": 50}, {"green": 100}))
    recorded = three.serving.get_endpoint("scoring")
    assert recorded.status.value == "in_service"
    assert recorded.traffic.live_weights == {"green": 100}
    assert three.serving.unrecorded_native_rollout("scoring") == "r-7"
    history = three.serving.deployment_history("scoring")
    assert history[-2].known_good
    assert history[-2].traffic.live_weights == {"blue": 100}  # the kill's, known good
    assert native.status(three, "scoring", "r-7") is native.NativeRolloutStatus.IN_PROGRESS


def test_a_switch_pulled_over_a_native_rollout_records_and_releases_its_starting_traffic(
    three: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cloud refuses the kill's traffic while it walks the plan, so the switch is pulled:
    the traffic the rollout started from is recorded with it, and a release puts that back,
    never the start's unverified target."""
    monkeypatch.setattr(native, "_native", lambda plat: _Cloud())
    native.start(three, _plan({"blue": 50, "green": 50}, {"green": 100}))
    backend: Any = three.backend

    def refused(name: str, traffic: TrafficMap) -> Endpoint:
        raise Conflict(f"[cloud] endpoint {name!r} is Updating; wait for it to be InService")

    monkeypatch.setattr(backend, "set_traffic", refused)
    killed = three.serving.kill("scoring", reason="incident")
    assert killed.status.value == "killed"
    assert killed.traffic.weights == BEFORE
    assert three.serving.deployment_history("scoring")[-1].traffic.weights == BEFORE
    monkeypatch.undo()
    monkeypatch.setattr(native, "_native", lambda plat: _Cloud())
    released = three.serving.unkill("scoring", reason="fixed")
    assert released.traffic.weights == BEFORE
    assert backend.get_endpoint("scoring").traffic.live_weights == {"blue": 100}
    assert native.status(three, "scoring", "r-7") is native.NativeRolloutStatus.UNKNOWN


# -- a rollout that cannot start marks nothing --------------------------------------------------


def test_a_rollout_on_a_killed_endpoint_marks_nothing_known_good(three: Platform) -> None:
    three.serving.set_traffic("scoring", {"green": 100})
    three.serving.retire_route("scoring", "blue")  # no earlier known-good traffic to go back to
    three.serving.set_traffic("scoring", {"green": 50, "red": 50}, reason="bad split")
    assert three.serving.kill("scoring", reason="incident").status.value == "killed"
    before = _unchanged(three)
    with pytest.raises(RolloutInterrupted, match="was killed"):
        RolloutController(three, wait=_baking(three)).run(_plan({"green": 100}))
    assert _unchanged(three) == before
    assert not three.serving.deployment_history("scoring")[-1].known_good


def test_a_native_plan_the_cloud_cannot_walk_as_written_is_refused_with_nothing_recorded(
    three: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    class TwoStepsOnly(_Cloud):
        def check_native_plan(self, plan: TrafficPlan, current: Endpoint) -> None:
            if len(plan.steps) != 2:
                raise ValidationError(f"this cloud walks two steps, not {len(plan.steps)}")

    cloud = TwoStepsOnly()
    monkeypatch.setattr(native, "_native", lambda plat: cloud)
    gated: list[object] = []
    gate = three.serving._gate

    def spy(*args: Any, **kwargs: Any) -> Any:
        gated.append(args)
        return gate(*args, **kwargs)

    monkeypatch.setattr(three.serving, "_gate", spy)
    before = _unchanged(three)
    with pytest.raises(ValidationError, match="two steps, not 3"):
        native.start(three, _plan(*CANARY))
    assert _unchanged(three) == before
    assert not three.serving.deployment_history("scoring")[-1].known_good
    assert cloud.started == []
    assert gated == []


@pytest.mark.parametrize(
    ("last", "shadow"),
    [({"blue": 0, "green": 100}, "red"), ({"blue": 0, "red": 100}, None)],
)
def test_a_native_rollout_keeps_the_endpoints_shadow_unless_it_goes_live(
    three: Platform,
    monkeypatch: pytest.MonkeyPatch,
    last: dict[str, int],
    shadow: str | None,
) -> None:
    monkeypatch.setattr(native, "_native", lambda plat: _Cloud())
    three.serving.set_traffic(
        "scoring", {"blue": 100, "green": 0, "red": 0}, shadow="red", shadow_percent=20
    )
    native.start(three, _plan({"blue": 90, **{r: 10 for r in last if r != "blue"}}, last))
    recorded = three.serving.deployment_history("scoring")[-1].traffic
    assert (recorded.shadow, recorded.shadow_percent) == (shadow, 20 if shadow else 0)


def test_a_known_good_mark_for_a_change_no_longer_in_force_is_refused(three: Platform) -> None:
    first = three.serving.deployment_history("scoring")[-1]
    three.serving.set_traffic("scoring", {"blue": 50, "red": 50}, reason="manual")
    with pytest.raises(Conflict, match="changed since"):
        three.serving.mark_known_good("scoring", expected=first.id)
    latest = three.serving.deployment_history("scoring")[-1]
    three.serving._switch("scoring", True, "incident")
    with pytest.raises(Conflict, match="is killed"):
        three.serving.mark_known_good("scoring", expected=latest.id)
    assert not three.serving.deployment_history("scoring")[-1].known_good


# -- the rollback target ------------------------------------------------------------------------


def test_a_step_the_gate_refuses_leaves_the_traffic_alone_whatever_the_rollback_target(
    three: Platform,
) -> None:
    three.archive_version("credit", 2)  # green takes no traffic: archiving it is allowed
    plan = _plan({"blue": 90, "green": 10}, rollback_to=TrafficMap(weights={"blue": 50, "red": 50}))
    with pytest.raises(PolicyViolation):
        RolloutController(three, wait=_baking(three)).run(plan)
    assert three.serving.get_endpoint("scoring").traffic.weights == BEFORE
    assert "endpoint.rollback" not in [e.action for e in three.audit.events()]


@pytest.mark.parametrize(
    ("rollback_to", "error", "match"),
    [
        ({"bleu": 100}, ValidationError, r"plan names routes \['bleu'\] not on scoring"),
        ({"blue": 100, "green": 0}, None, ""),  # green at 0: a target that can be put back
        ({"green": 100}, PolicyViolation, "endpoint.rollback on scoring refused"),
    ],
)
def test_a_rollback_target_that_cannot_be_put_back_is_refused_before_any_step(
    three: Platform, rollback_to: dict[str, int], error: type[Exception] | None, match: str
) -> None:
    three.archive_version("credit", 2)  # green may take no traffic
    baked: list[float] = []
    plan = _plan(
        {"blue": 90, "red": 10}, min_requests=1, rollback_to=TrafficMap(weights=rollback_to)
    )
    if error is None:
        result = RolloutController(three, wait=_baking(three, baked)).run(plan)
        assert result.rolled_back_to == rollback_to
        assert result.killed_because is None
        return
    history = three.serving.deployment_history("scoring")
    with pytest.raises(error, match=match):
        RolloutController(three, wait=_baking(three, baked)).run(plan)
    assert baked == []
    assert three.serving.deployment_history("scoring") == history
    assert "endpoint.known_good" not in [e.action for e in three.audit.events()]


# -- a change made while the rollout reads its metrics wins -------------------------------------


def _changed_during_metrics_read(
    plat: Platform, oncall: Platform, monkeypatch: pytest.MonkeyPatch, on_call: int
) -> None:
    """On-call holds the traffic while the controller reads its ``on_call``-th step's metrics."""
    original = plat.serving.endpoint_metrics
    calls = iter(range(1, 100))

    def slow_read(endpoint: str, start: object, end: object) -> EndpointMetrics:
        if next(calls) == on_call:
            oncall.serving.set_traffic("scoring", {"blue": 50, "red": 50}, reason="manual hold")
        return original(endpoint, start, end)  # type: ignore[arg-type]

    monkeypatch.setattr(plat.serving, "endpoint_metrics", slow_read)


@pytest.mark.parametrize("min_requests", [0, 1], ids=["holds", "breaches"])
def test_a_change_made_while_the_metrics_are_read_is_left_in_place(
    three: Platform, oncall: Platform, monkeypatch: pytest.MonkeyPatch, min_requests: int
) -> None:
    steps = CANARY[0], CANARY[2]
    _changed_during_metrics_read(three, oncall, monkeypatch, on_call=1 if min_requests else 2)
    with pytest.raises(RolloutInterrupted, match="manual hold"):
        RolloutController(three, wait=_baking(three)).run(_plan(*steps, min_requests=min_requests))
    latest = three.serving.deployment_history("scoring")[-1]
    assert (latest.actor, latest.reason, latest.known_good) == ("oncall", "manual hold", False)
    assert three.serving.get_endpoint("scoring").traffic.weights == {"blue": 50, "red": 50}


def test_a_change_made_just_before_the_final_mark_is_not_marked_known_good(
    three: Platform, oncall: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = rollout_controller.sla_breaches
    judged = iter(range(1, 100))

    def judging(sla: SLA, metrics: EndpointMetrics, routes: list[str], **on: Any) -> list[str]:
        if next(judged) == 2:  # the last step holds; on-call moves traffic right then
            oncall.serving.set_traffic("scoring", {"blue": 50, "red": 50}, reason="manual hold")
        return original(sla, metrics, routes, **on)

    monkeypatch.setattr(rollout_controller, "sla_breaches", judging)
    with pytest.raises(RolloutInterrupted, match="manual hold"):
        RolloutController(three, wait=_baking(three)).run(_plan(CANARY[0], CANARY[2]))
    latest = three.serving.deployment_history("scoring")[-1]
    assert (latest.reason, latest.known_good) == ("manual hold", False)


# -- the plan's shadow --------------------------------------------------------------------------


def test_a_plans_shadow_needs_its_share_and_never_goes_live() -> None:
    with pytest.raises(pydantic.ValidationError, match="set together"):
        _plan({"blue": 50, "green": 50}, shadow="red")
    with pytest.raises(pydantic.ValidationError, match="shadow route cannot also take live"):
        _plan(*CANARY[:2], {"green": 50, "red": 50}, shadow="red", shadow_percent=20)


@pytest.mark.parametrize(
    ("update", "match"),
    [
        ({"shadow": "red"}, "set together"),
        (
            {"shadow": "red", "shadow_percent": 20, "steps": [TrafficStep(weights={"red": 100})]},
            ("shadow route cannot also take live traffic"),
        ),
        ({"shadow": "purple", "shadow_percent": 20}, r"plan names routes \['purple'\]"),
    ],
)
@pytest.mark.parametrize("walker", ["controller", "native"])
def test_a_plan_whose_shadow_cannot_be_applied_is_refused_before_any_step(
    three: Platform,
    monkeypatch: pytest.MonkeyPatch,
    update: dict[str, object],
    match: str,
    walker: str,
) -> None:
    plan = _plan(*CANARY).model_copy(update=update)  # built around the plan's own validation
    baked: list[float] = []
    monkeypatch.setattr(native, "_native", lambda plat: _Cloud())
    before = _unchanged(three)
    start: Callable[[], object] = (
        (lambda: native.start(three, plan))
        if walker == "native"
        else (lambda: RolloutController(three, wait=_baking(three, baked)).run(plan))
    )
    with pytest.raises(ValidationError, match=match):
        start()
    assert baked == []
    assert _unchanged(three) == before


@pytest.mark.parametrize("named_by", ["plan", "endpoint"])
def test_a_shadow_plan_is_refused_before_any_step_where_shadow_metrics_cannot_be_read(
    three: Platform, monkeypatch: pytest.MonkeyPatch, named_by: str
) -> None:
    monkeypatch.setattr(type(three.backend), "reads_shadow_metrics", lambda self: False)
    if named_by == "endpoint":  # a shadow set earlier, which every step keeps
        three.serving.set_traffic("scoring", {"blue": 100}, shadow="green", shadow_percent=100)
    shadow = {"shadow": "green", "shadow_percent": 100} if named_by == "plan" else {}
    plan = TrafficPlan(
        endpoint="scoring",
        strategy=RolloutStrategy.SHADOW,
        steps=[TrafficStep(weights={"blue": 100}, bake_seconds=30)],
        **shadow,  # type: ignore[arg-type]
    )
    baked: list[float] = []
    before = _unchanged(three)
    with pytest.raises(
        UnsupportedCapability, match="shadow route 'green' the plan's steps keep cannot be judged"
    ):
        RolloutController(three, wait=_baking(three, baked)).run(plan)
    assert baked == []
    assert _unchanged(three) == before


def test_a_plan_whose_sla_names_a_custom_metric_the_backend_never_reports_is_refused(
    three: Platform,
) -> None:
    plan = _plan(*CANARY).model_copy(update={"sla": SLA(min_requests=0, custom={"cost": 1e9})})
    baked: list[float] = []
    before = _unchanged(three)
    with pytest.raises(ValidationError, match=r"custom metrics \['cost'\] that backend 'local'"):
        RolloutController(three, wait=_baking(three, baked)).run(plan)
    assert baked == []
    assert _unchanged(three) == before
    assert three.monitoring.tickets("open") == []
