"""Which traffic a rollback or a kill puts back, and what they refuse."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from artifact_kit import MakeArtifact
from cli_kit import cli, init_home

from mintaka import Platform
from mintaka.domain.serving import Endpoint, TrafficMap
from mintaka.errors import Conflict, StoreError, ValidationError


@pytest.fixture
def three(platform: Platform, make_servable: MakeArtifact) -> Platform:
    """m:1, m:2 and m:3, and endpoint ``scoring`` serving m:1 on route blue."""
    for content in (b"v1", b"v2", b"v3"):
        platform.register_model("m", make_servable(content), flavor="pyfunc")
    platform.serving.create_endpoint("scoring", "m:1", route="blue")
    return platform


def test_a_kill_restores_known_good_traffic_that_named_a_route_since_retired(
    three: Platform,
) -> None:
    serving = three.serving
    serving.deploy("scoring", "m:2", route="green")
    serving.mark_known_good("scoring")  # {blue: 100, green: 0}
    serving.retire_route("scoring", "green")
    serving.deploy("scoring", "m:3", route="purple")
    serving.set_traffic("scoring", {"blue": 0, "purple": 100}, reason="hotfix")
    assert serving.rollback("scoring").traffic.weights == {"blue": 100, "purple": 0}
    serving.set_traffic("scoring", {"blue": 0, "purple": 100}, reason="hotfix again")
    killed = serving.kill("scoring", reason="purple is bad")
    assert (killed.status.value, killed.traffic.weights) == (
        "in_service",
        {"blue": 100, "purple": 0},
    )


def _three_maps(three: Platform) -> None:
    """blue (m:1, known good at creation), then green (m:2, marked known good), then purple."""
    serving = three.serving
    serving.deploy("scoring", "m:2", route="green")
    serving.set_traffic("scoring", {"blue": 0, "green": 100})
    serving.mark_known_good("scoring")
    serving.deploy("scoring", "m:3", route="purple")
    serving.set_traffic("scoring", {"blue": 0, "green": 0, "purple": 100})


def test_pulling_the_switch_again_walks_back_then_refuses_every_request(
    three: Platform,
) -> None:
    _three_maps(three)
    serving = three.serving
    live = [serving.kill("scoring", reason=f"press {n}") for n in (1, 2, 3)]
    assert [(e.status.value, e.traffic.weights) for e in live] == [
        ("in_service", {"blue": 0, "green": 100, "purple": 0}),
        ("in_service", {"blue": 100, "green": 0, "purple": 0}),
        ("killed", {"blue": 100, "green": 0, "purple": 0}),  # nowhere further back: stopped
    ]


def test_rolling_back_again_walks_further_back_instead_of_flipping(three: Platform) -> None:
    _three_maps(three)
    serving = three.serving
    assert serving.rollback("scoring").traffic.weights == {"blue": 0, "green": 100, "purple": 0}
    assert serving.rollback("scoring").traffic.weights == {"blue": 100, "green": 0, "purple": 0}
    with pytest.raises(Conflict, match="no earlier known-good traffic"):
        serving.rollback("scoring")
    # a change made by hand starts the walk afresh
    serving.set_traffic("scoring", {"blue": 0, "green": 0, "purple": 100})
    assert serving.rollback("scoring").traffic.weights == {"blue": 100, "green": 0, "purple": 0}


def test_a_reused_route_name_restores_nothing_that_was_not_known_good(three: Platform) -> None:
    serving = three.serving
    serving.deploy("scoring", "m:2", route="green")
    serving.set_traffic("scoring", {"blue": 0, "green": 100})
    serving.retire_route("scoring", "blue")
    serving.deploy("scoring", "m:3", route="blue")  # blue now serves m:3, never known good
    with pytest.raises(Conflict, match="no earlier known-good traffic"):
        serving.rollback("scoring")
    killed = serving.kill("scoring")
    assert killed.status.value == "killed"  # the switch: nothing known good to go back to
    assert killed.traffic.weights == {"green": 100, "blue": 0}


def test_an_endpoint_made_again_does_not_inherit_known_good_traffic(three: Platform) -> None:
    serving = three.serving
    serving.delete_endpoint("scoring")
    serving.create_endpoint("scoring", "m:2", route="green")
    serving.deploy("scoring", "m:1", route="blue")
    assert len(serving.deployment_history("scoring")) == 3  # the history is kept
    with pytest.raises(Conflict, match="no earlier known-good traffic"):
        serving.rollback("scoring")
    assert serving.kill("scoring").status.value == "killed"


def test_a_rollback_to_the_live_traffic_in_force_is_refused(three: Platform) -> None:
    three.serving.deploy("scoring", "m:2", route="green")  # 0%: live traffic unchanged
    with pytest.raises(Conflict, match="no earlier known-good traffic"):
        three.serving.rollback("scoring")


def test_a_kill_whose_restore_fails_pulls_the_switch(
    three: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    serving = three.serving
    serving.deploy("scoring", "m:2", route="green")
    serving.set_traffic("scoring", {"blue": 0, "green": 100})

    def failing(*_: object) -> None:
        raise StoreError("the backend is unreachable")

    monkeypatch.setattr(three.backend, "set_traffic", failing)
    killed = serving.kill("scoring", reason="green is bad")
    assert killed.status.value == "killed"
    [event] = [e for e in three.audit.events() if e.action == "endpoint.kill"]
    assert "restoring known-good traffic failed" in event.details["reason"]


def test_traffic_moves_go_through_the_gate_and_name_a_route(three: Platform) -> None:
    serving = three.serving
    with pytest.raises(TypeError):
        serving.set_traffic("scoring", {"blue": 100}, action="endpoint.kill")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        serving.set_traffic("scoring", {"blue": 100}, strategy="canary")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="at least one route"):
        serving.set_traffic("scoring", {})
    assert serving.get_endpoint("scoring").traffic.weights == {"blue": 100}


def test_pulling_the_switch_twice_changes_and_records_nothing_the_second_time(
    three: Platform,
) -> None:
    killed = three.serving.kill("scoring", reason="bad answers")
    assert killed.status.value == "killed"
    before = len(three.audit.events())
    assert three.serving.kill("scoring", reason="again") == killed
    assert len(three.audit.events()) == before


def test_releasing_an_endpoint_that_is_not_killed_is_refused(three: Platform) -> None:
    before = len(three.audit.events())
    with pytest.raises(Conflict, match="is not killed"):
        three.serving.unkill("scoring")
    assert len(three.audit.events()) == before


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["endpoints", "traffic", "api", "blue=²"], "expected ROUTE=PERCENT"),
        (["endpoints", "traffic", "api", "blue=100", "blue=0"], "given twice"),
        (["rollout", "api", "--to", "blue", "--bake", "inf"], "--bake"),
    ],
)
def test_bad_traffic_input_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], said: str
) -> None:
    home = init_home(capsys, tmp_path / "h")
    code, out, err = cli(capsys, "--home", str(home), *args)
    assert code == 2
    assert said in " ".join(err.replace("│", " ").split())
    assert "Traceback" not in out + err


def test_a_change_the_store_fails_to_record_is_undone_in_the_backend(
    platform: Platform, make_servable: MakeArtifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    for content in (b"v1", b"v2"):
        platform.register_model("m", make_servable(content), flavor="pyfunc")
    serving = platform.serving
    add = platform.lineage.add

    def disk_full(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(platform.lineage, "add", disk_full)
    with pytest.raises(OSError, match="disk full"):
        serving.create_endpoint("scoring", "m:1", route="blue")
    assert platform.backend.list_endpoints() == []  # type: ignore[attr-defined]
    monkeypatch.setattr(platform.lineage, "add", add)
    serving.create_endpoint("scoring", "m:1", route="blue")  # the retry starts clean

    monkeypatch.setattr(platform.lineage, "add", disk_full)
    with pytest.raises(OSError, match="disk full"):
        serving.deploy("scoring", "m:2", route="green")
    [route] = platform.backend.get_endpoint("scoring").routes  # type: ignore[attr-defined]
    assert route.name == "blue"
    monkeypatch.setattr(platform.lineage, "add", add)
    serving.deploy("scoring", "m:2", route="green")

    monkeypatch.setattr(platform.lineage, "add", disk_full)
    with pytest.raises(OSError, match="disk full"):
        serving.set_traffic("scoring", {"blue": 0, "green": 100})
    backend_traffic = platform.backend.get_endpoint("scoring").traffic  # type: ignore[attr-defined]
    assert backend_traffic.weights == {"blue": 100, "green": 0}
    assert serving.get_endpoint("scoring").traffic.weights == {"blue": 100, "green": 0}


def test_a_breaching_step_whose_rollback_is_refused_pulls_the_kill_switch(
    three: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mintaka.domain.serving import SLA, RolloutStrategy, TrafficPlan, TrafficStep
    from mintaka.governance.policy import OPEN_POLICY
    from mintaka.rollout.controller import RolloutController

    three.serving.deploy("scoring", "m:2", route="green")
    strict = tmp_path / "strict.toml"
    strict.write_text(
        OPEN_POLICY.read_text().replace(
            "[tiers.medium]", '[tiers.medium]\napprovals = 1\napprover_roles = ["model-risk"]'
        )
    )

    def bake(_: float) -> None:  # m:1 needs an approval it lacks from now on
        monkeypatch.setenv("MINTAKA_POLICY", str(strict))
        three.governance.reload_policy()

    plan = TrafficPlan(
        endpoint="scoring",
        strategy=RolloutStrategy.CANARY,
        steps=[TrafficStep(weights={"blue": 90, "green": 10})],
        sla=SLA(min_requests=1),  # no traffic at all: the step breaches
    )
    result = RolloutController(three, wait=bake).run(plan)
    assert not result.promoted
    assert result.killed_because is not None
    assert "the rollback was refused" in result.killed_because
    endpoint = three.serving.get_endpoint("scoring")
    assert endpoint.status.value == "killed"
    [ticket] = three.monitoring.tickets("open")
    assert (ticket.signal, ticket.severity.value) == ("rollout-sla", "critical")


def test_a_rollback_the_cloud_made_is_recorded_even_where_the_gate_would_refuse_it(
    three: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mintaka.governance.policy import OPEN_POLICY
    from mintaka.rollout.native import NativeRolloutStatus, _record_undone

    strict = tmp_path / "strict.toml"
    strict.write_text(
        OPEN_POLICY.read_text().replace(
            "[tiers.medium]", '[tiers.medium]\napprovals = 1\napprover_roles = ["model-risk"]'
        )
    )
    monkeypatch.setenv("MINTAKA_POLICY", str(strict))
    three.governance.reload_policy()  # m:1, serving now, lacks the approval it needs
    start = three.serving.deployment_history("scoring")[-1].id
    _record_undone(three, "scoring", start, "rollout-1", NativeRolloutStatus.ROLLED_BACK)
    last = three.serving.deployment_history("scoring")[-1]
    assert "rolled back" in last.reason
    assert not last.known_good  # recorded as it is, not as a safe target
    [event] = [e for e in three.audit.events() if e.action == "endpoint.rollback"]
    assert event.details["decision"]["allowed"] is False
    assert [t.signal for t in three.monitoring.tickets("open")] == ["rollout-native"]


def _kill_while_applying(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> list[Endpoint]:
    """Pull the kill switch on ``scoring`` once the next change has reached the backend and
    before it is recorded (while the inference server is being told of it); the list returned
    then holds the endpoint as the kill left it."""
    notify = platform.backend._notify_server  # type: ignore[attr-defined]
    pulled: list[Endpoint] = []
    pressed: list[bool] = []

    def kill_meanwhile(path: str = "/-/reload") -> None:
        notify(path)
        if not pressed:
            pressed.append(True)
            pulled.append(platform.serving.kill("scoring", reason="pulled meanwhile"))

    monkeypatch.setattr(platform.backend, "_notify_server", kill_meanwhile)
    return pulled


def _backend_matches_store(platform: Platform) -> None:
    recorded = platform.serving.get_endpoint("scoring")
    held = platform.backend.get_endpoint("scoring")  # type: ignore[attr-defined]
    assert (held.routes, held.traffic, held.status) == (
        recorded.routes,
        recorded.traffic,
        recorded.status,
    )


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s.deploy(
            "scoring", "m:3", route="purple", weights={"blue": 0, "green": 0, "purple": 100}
        ),
        lambda s: s.set_traffic("scoring", {"blue": 50, "green": 50}),
        lambda s: s._set_traffic(
            "scoring", {"blue": 10, "green": 90}, strategy="canary", reason="step 1/2"
        ),
        lambda s: s.rollback("scoring"),
        lambda s: s.retire_route("scoring", "spare"),
    ],
    ids=["deploy", "traffic", "rollout-step", "rollback", "retire"],
)
def test_a_kill_committed_while_a_change_is_applied_wins(
    three: Platform, monkeypatch: pytest.MonkeyPatch, change: Callable[[Any], object]
) -> None:
    serving = three.serving
    serving.deploy("scoring", "m:2", route="green")
    serving.deploy("scoring", "m:3", route="spare")
    serving.set_traffic("scoring", {"blue": 0, "green": 100, "spare": 0}, reason="green live")
    pulled = _kill_while_applying(three, monkeypatch)
    with pytest.raises(Conflict, match="killed while"):
        change(serving)
    [killed] = pulled
    assert serving.get_endpoint("scoring") == killed
    assert killed.status.value == "killed" or killed.traffic.weights["green"] == 0
    _backend_matches_store(three)


def test_a_kill_whose_restore_a_change_overtook_pulls_the_switch(
    three: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    serving = three.serving
    serving.deploy("scoring", "m:2", route="green")
    serving.set_traffic("scoring", {"blue": 0, "green": 100})
    notify = three.backend._notify_server  # type: ignore[attr-defined]
    changed: list[bool] = []

    def deploy_meanwhile(path: str = "/-/reload") -> None:
        notify(path)
        if not changed:
            changed.append(True)
            serving.deploy("scoring", "m:3", route="purple", weights={"purple": 100})

    monkeypatch.setattr(three.backend, "_notify_server", deploy_meanwhile)
    killed = serving.kill("scoring", reason="green is bad")
    assert killed.status.value == "killed"
    assert [r.name for r in killed.routes] == ["blue", "green", "purple"]
    _backend_matches_store(three)


def _canary(*steps: dict[str, int]) -> Any:
    from mintaka.domain.serving import SLA, RolloutStrategy, TrafficPlan, TrafficStep

    return TrafficPlan(
        endpoint="scoring",
        strategy=RolloutStrategy.CANARY,
        steps=[TrafficStep(weights=weights, bake_seconds=0) for weights in steps],
        sla=SLA(min_requests=0),
    )


def _kill_around_step_1(
    platform: Platform, monkeypatch: pytest.MonkeyPatch, *, after: bool
) -> tuple[list[Endpoint], list[dict[str, int]]]:
    """Pull the kill switch (as another process would) just before or just after the rollout's
    step 1 is applied; returns the endpoint as the kill left it and every traffic map the
    backend was sent."""
    serving = platform.serving
    original = serving._set_traffic
    backend_set = platform.backend.set_traffic  # type: ignore[attr-defined]
    sent: list[dict[str, int]] = []
    killed: list[Endpoint] = []

    def recorded_send(name: str, traffic: Any) -> object:
        sent.append(dict(traffic.weights))
        return backend_set(name, traffic)

    def step_with_kill(*args: Any, **kwargs: Any) -> object:
        step = str(kwargs.get("reason", "")).startswith("rollout step 1") and not killed
        if step and not after:
            killed.append(serving.kill("scoring", reason="green is bad"))
        result = original(*args, **kwargs)
        if step and after:
            killed.append(serving.kill("scoring", reason="green is bad"))
        return result

    monkeypatch.setattr(platform.backend, "set_traffic", recorded_send)
    monkeypatch.setattr(serving, "_set_traffic", step_with_kill)
    return killed, sent


@pytest.mark.parametrize("after", [True, False], ids=["after-the-step", "before-the-step"])
def test_a_kill_around_a_rollout_step_stops_the_rollout_and_stays_in_force(
    three: Platform, monkeypatch: pytest.MonkeyPatch, after: bool
) -> None:
    from mintaka.rollout.controller import RolloutController, RolloutInterrupted

    serving = three.serving
    serving.deploy("scoring", "m:2", route="green")
    serving.set_traffic("scoring", {"blue": 50, "green": 50})
    serving.mark_known_good("scoring")
    serving.set_traffic("scoring", {"blue": 100, "green": 0})  # known good too (creation)
    killed, sent = _kill_around_step_1(three, monkeypatch, after=after)
    plan = _canary({"blue": 90, "green": 10}, {"blue": 0, "green": 100})
    with pytest.raises(RolloutInterrupted, match="green is bad"):
        RolloutController(three, wait=lambda _: None).run(plan)
    [kill] = killed
    assert serving.get_endpoint("scoring") == kill
    assert serving.deployment_history("scoring")[-1].reason == "green is bad"
    assert sent[-1] == kill.traffic.weights  # the backend ends on what the kill put back
    assert sent.count({"blue": 90, "green": 10}) == (1 if after else 0)
    _backend_matches_store(three)


@pytest.mark.parametrize("when", ["while-judged", "before-the-rollback"])
def test_a_kill_pulled_before_a_breach_is_rolled_back_stays_in_force(
    three: Platform, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    from mintaka.domain.serving import SLA
    from mintaka.rollout import controller
    from mintaka.rollout.controller import RolloutController, RolloutInterrupted

    serving = three.serving
    serving.deploy("scoring", "m:2", route="green")  # {blue: 100, green: 0}
    killed: list[Endpoint] = []

    def pull() -> None:
        if not killed:
            killed.append(serving.kill("scoring", reason="green is bad"))

    judged = controller.sla_breaches
    restore = serving._set_traffic

    def kill_while_judging(*args: Any, **kwargs: Any) -> list[str]:
        pull()
        return judged(*args, **kwargs)

    def kill_before_rollback(*args: Any, **kwargs: Any) -> object:
        if kwargs.get("action") == "endpoint.rollback":
            pull()
        return restore(*args, **kwargs)

    if when == "while-judged":
        monkeypatch.setattr(controller, "sla_breaches", kill_while_judging)
    else:
        monkeypatch.setattr(serving, "_set_traffic", kill_before_rollback)
    plan = _canary({"blue": 90, "green": 10}).model_copy(
        update={
            "sla": SLA(min_requests=1),  # no requests in the window: a breach
            "rollback_to": TrafficMap(weights={"blue": 50, "green": 50}),
        }
    )
    with pytest.raises(RolloutInterrupted, match="green is bad"):
        RolloutController(three, wait=lambda _: None).run(plan)
    [kill] = killed
    assert serving.get_endpoint("scoring") == kill
    assert serving.deployment_history("scoring")[-1].reason == "green is bad"
    _backend_matches_store(three)


def test_a_kill_pulled_while_a_release_is_applied_wins(
    three: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    serving = three.serving
    serving.kill("scoring", reason="first")  # nothing known good elsewhere: the switch
    pulled = _kill_while_applying(three, monkeypatch)
    with pytest.raises(Conflict, match=r"killed while endpoint\.unkill"):
        serving.unkill("scoring", reason="release")
    [killed] = pulled
    assert killed.status.value == "killed"
    assert serving.get_endpoint("scoring").status.value == "killed"
    _backend_matches_store(three)
    kills = [e for e in three.audit.events() if e.action == "endpoint.kill"]
    assert [e.details["reason"] for e in kills] == ["first", "pulled meanwhile"]
    assert not [e for e in three.audit.events() if e.action == "endpoint.unkill"]
    assert serving.unkill("scoring").status.value == "in_service"  # released once alone
    _backend_matches_store(three)


def _released_after_the_backend_kill(
    platform: Platform, monkeypatch: pytest.MonkeyPatch, meanwhile: Callable[[], object]
) -> list[str]:
    """Run ``meanwhile`` (a release recorded elsewhere) right after the next kill reaches the
    backend and before it is recorded; the list returned names every kill the backend got."""
    backend_kill = platform.backend.kill  # type: ignore[attr-defined]
    sent: list[str] = []

    def kill_then_release(name: str) -> object:
        answer = backend_kill(name)
        sent.append(name)
        if len(sent) == 1:
            meanwhile()
        return answer

    monkeypatch.setattr(platform.backend, "kill", kill_then_release)
    return sent


def test_a_kill_sent_again_before_a_release_recorded_meanwhile_stays_in_force(
    three: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    serving = three.serving
    serving.kill("scoring", reason="first")  # nothing known good elsewhere: the switch
    sent = _released_after_the_backend_kill(
        three, monkeypatch, lambda: serving.unkill("scoring", reason="released meanwhile")
    )
    assert serving.kill("scoring", reason="again").status.value == "killed"
    assert sent == ["scoring", "scoring"]  # the release undid the first: sent again
    _backend_matches_store(three)
    actions = [e.action for e in three.audit.events() if e.subject == "scoring"]
    assert actions[-3:] == ["endpoint.kill", "endpoint.unkill", "endpoint.kill"]


def test_a_first_kill_sent_before_a_kill_and_release_recorded_meanwhile_stays_in_force(
    three: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    serving = three.serving

    def kill_and_release() -> None:
        serving.kill("scoring", reason="another operator")
        serving.unkill("scoring", reason="released meanwhile")

    sent = _released_after_the_backend_kill(three, monkeypatch, kill_and_release)
    assert serving.kill("scoring", reason="mine").status.value == "killed"
    assert len(sent) == 3  # mine, the other operator's, and mine again
    _backend_matches_store(three)


def test_a_kill_with_no_release_meanwhile_is_sent_once(
    three: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    serving = three.serving
    sent = _released_after_the_backend_kill(three, monkeypatch, lambda: None)
    serving.kill("scoring")
    serving.kill("scoring", reason="again")
    assert sent == ["scoring", "scoring"]  # once per pull, never repeated
    _backend_matches_store(three)


def test_a_release_the_backend_refuses_leaves_the_endpoint_killed_as_before(
    three: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    serving = three.serving
    serving.kill("scoring", reason="first")

    def failing(name: str) -> None:
        raise StoreError("the backend is unreachable")

    monkeypatch.setattr(three.backend, "unkill", failing)
    with pytest.raises(StoreError):
        serving.unkill("scoring")
    before = len(three.audit.events())
    assert serving.kill("scoring", reason="again").status.value == "killed"
    assert len(three.audit.events()) == before  # still plainly killed: nothing recorded


def test_a_release_puts_back_the_recorded_traffic_the_backend_lost_while_killed(
    three: Platform,
) -> None:
    serving = three.serving
    serving.deploy("scoring", "m:2", route="green")  # {blue: 100, green: 0}
    serving.kill("scoring", reason="incident")  # nothing known good elsewhere: the switch
    three.backend.set_traffic("scoring", TrafficMap(weights={"blue": 20, "green": 80}))  # type: ignore[attr-defined]
    released = serving.unkill("scoring", reason="fixed")
    assert released.traffic.weights == {"blue": 100, "green": 0}
    _backend_matches_store(three)


def test_a_release_whose_traffic_cannot_be_put_back_leaves_the_endpoint_killed(
    three: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    serving = three.serving
    serving.deploy("scoring", "m:2", route="green")
    serving.kill("scoring", reason="incident")
    three.backend.set_traffic("scoring", TrafficMap(weights={"blue": 20, "green": 80}))  # type: ignore[attr-defined]

    def failing(name: str, traffic: TrafficMap) -> None:
        raise StoreError("the backend is unreachable")

    monkeypatch.setattr(three.backend, "set_traffic", failing)
    with pytest.raises(StoreError):
        serving.unkill("scoring")
    assert serving.get_endpoint("scoring").status.value == "killed"
    assert three.backend.get_endpoint("scoring").status.value == "killed"  # type: ignore[attr-defined]
    before = len(three.audit.events())
    serving.kill("scoring", reason="again")
    assert len(three.audit.events()) == before  # plainly killed again: nothing recorded


def test_a_change_overtaken_by_a_delete_puts_nothing_back_and_logs_no_error(
    three: Platform, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    serving = three.serving
    notify = three.backend._notify_server  # type: ignore[attr-defined]
    deleted: list[bool] = []
    sent: list[str] = []
    update_routes = three.backend.update_routes  # type: ignore[attr-defined]

    def counted(name: str, *args: Any) -> object:
        sent.append(name)
        return update_routes(name, *args)

    def delete_meanwhile(path: str = "/-/reload") -> None:
        notify(path)
        if not deleted:
            deleted.append(True)
            serving.delete_endpoint("scoring", reason="gone meanwhile")

    monkeypatch.setattr(three.backend, "update_routes", counted)
    monkeypatch.setattr(three.backend, "_notify_server", delete_meanwhile)
    with caplog.at_level("INFO"), pytest.raises(Conflict, match="deleted while"):
        serving.deploy("scoring", "m:2", route="green")
    assert sent == ["scoring"]  # the deploy itself; nothing re-applied to the deleted endpoint
    assert not [r for r in caplog.records if r.levelname == "ERROR" or r.exc_info]
    assert [e.action for e in three.audit.events()][-1] == "endpoint.delete"


def test_changes_lock_the_endpoint_row_they_check_before_recording(three: Platform) -> None:
    """The re-check in the recording transaction reads the endpoint's row FOR UPDATE: what
    serialises two changes on PostgreSQL (READ COMMITTED takes no lock of its own)."""
    from sqlalchemy import Select, event
    from sqlalchemy.dialects import postgresql

    from mintaka.store.schema import endpoints

    locked: list[str] = []

    def seen(conn: Any, clause: Any, *args: Any) -> None:
        if isinstance(clause, Select) and endpoints in clause.get_final_froms():
            sql = str(clause.compile(dialect=postgresql.dialect()))  # type: ignore[no-untyped-call]
            if sql.endswith("FOR UPDATE"):
                locked.append(sql)

    engine = three.store.engine
    serving = three.serving
    serving.deploy("scoring", "m:2", route="green")
    event.listen(engine, "before_execute", seen)
    try:
        changes: list[Callable[[], object]] = [
            lambda: serving.set_traffic("scoring", {"blue": 50, "green": 50}),
            lambda: serving.mark_known_good(
                "scoring", expected=serving.deployment_history("scoring")[-1].id
            ),
            lambda: serving.kill("scoring"),
            lambda: serving.kill("scoring"),
            lambda: serving.unkill("scoring"),
        ]
        counts = []
        for change in changes:
            before = len(locked)
            change()
            counts.append(len(locked) - before)
    finally:
        event.remove(engine, "before_execute", seen)
    assert all(counts), counts


def _release_interrupted(platform: Platform, *, backend_released: bool) -> None:
    """Kill ``scoring``, then leave it as a process that stopped mid-release does: its row
    marked as being released, the release never recorded (and, with ``backend_released``, the
    backend released already)."""
    from sqlalchemy import update

    from mintaka.store.schema import endpoints

    platform.serving.kill("scoring", reason="incident")  # nothing known good elsewhere
    if backend_released:
        platform.backend.unkill("scoring")  # type: ignore[attr-defined]
    with platform.store.write() as conn:
        conn.execute(update(endpoints).where(endpoints.c.name == "scoring").values(killed=2))


@pytest.mark.parametrize("backend_released", [False, True])
def test_an_interrupted_release_reads_as_killed_and_says_so(
    three: Platform,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    backend_released: bool,
) -> None:
    _release_interrupted(three, backend_released=backend_released)
    shown = three.serving.get_endpoint("scoring")
    assert shown.status.value == "killed"
    assert shown.extra == {"release": "unrecorded"}
    code, out, err = cli(capsys, "--home", str(three.home), "endpoints", "show", "scoring")
    assert code == 0, err
    assert "release is under way, or was interrupted" in " ".join(out.split())


@pytest.mark.parametrize("backend_released", [False, True])
def test_a_release_after_an_interrupted_one_completes_it(
    three: Platform, backend_released: bool
) -> None:
    _release_interrupted(three, backend_released=backend_released)
    released = three.serving.unkill("scoring", reason="completing it")
    assert (released.status.value, released.extra) == ("in_service", {})
    _backend_matches_store(three)
    [event] = [e for e in three.audit.events() if e.action == "endpoint.unkill"]
    assert event.details["reason"] == "completing it"


@pytest.mark.parametrize("backend_released", [False, True])
def test_a_kill_after_an_interrupted_release_holds_and_is_recorded(
    three: Platform, backend_released: bool
) -> None:
    _release_interrupted(three, backend_released=backend_released)
    killed = three.serving.kill("scoring", reason="again")
    assert (killed.status.value, killed.extra) == ("killed", {})
    _backend_matches_store(three)
    kills = [e for e in three.audit.events() if e.action == "endpoint.kill"]
    assert [e.details["reason"] for e in kills] == ["incident", "again"]
    before = len(three.audit.events())
    three.serving.kill("scoring", reason="once more")
    assert len(three.audit.events()) == before  # plainly killed now: nothing recorded


@pytest.mark.parametrize("lost", ["nothing", "traffic", "shadow", "routes"])
def test_a_release_puts_back_the_shadow_the_endpoint_had_when_killed(
    three: Platform, lost: str
) -> None:
    serving = three.serving
    backend: Any = three.backend
    serving.deploy("scoring", "m:2", route="green")
    serving.deploy("scoring", "m:3", route="red")
    serving.set_traffic(
        "scoring", {"blue": 100, "green": 0, "red": 0}, shadow="green", shadow_percent=20
    )
    before = serving.get_endpoint("scoring")
    serving.kill("scoring", reason="incident")  # nothing known good elsewhere: the switch
    if lost == "traffic":
        backend.set_traffic(
            "scoring", before.traffic.model_copy(update={"weights": {"blue": 50, "red": 50}})
        )
    elif lost == "shadow":
        backend.set_traffic("scoring", TrafficMap(weights=before.traffic.weights))
    elif lost == "routes":
        backend.update_routes("scoring", before.routes[:2], TrafficMap(weights={"blue": 100}))
    released = serving.unkill("scoring", reason="fixed")
    assert (released.routes, released.traffic) == (before.routes, before.traffic)
    _backend_matches_store(three)


def test_a_kill_racing_a_failed_release_returns_the_endpoint_as_the_store_now_holds_it(
    platform: Platform, make_servable: MakeArtifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sqlalchemy import update

    from mintaka.serving import ops
    from mintaka.store.schema import endpoints

    platform.register_model("m", make_servable(b"v1"), flavor="pyfunc")
    platform.serving.create_endpoint("scoring", "m:1", route="blue")
    platform.serving.kill("scoring", reason="incident")
    with platform.store.write() as conn:  # another process marks its release
        conn.execute(update(endpoints).where(endpoints.c.name == "scoring").values(killed=2))
    backend = platform.backend
    real_kill = type(backend).kill

    def kill_while_the_release_fails(self: Any, name: str) -> Endpoint:
        with platform.store.write() as conn:  # its backend release failed: the mark is undone
            ops._mark_killed(conn, name, ops._KILLED, only=ops._RELEASING)
        return real_kill(self, name)

    monkeypatch.setattr(type(backend), "kill", kill_while_the_release_fails)
    returned = platform.serving.kill("scoring", reason="again")
    assert returned.extra == {}
    assert returned == platform.serving.get_endpoint("scoring")
