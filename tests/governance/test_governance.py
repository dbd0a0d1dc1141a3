from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from artifact_kit import MakeArtifact
from governance_kit import APPROVERS, CARD

from mintaka import ManualClock, Platform, PolicyViolation, ValidationError
from mintaka.domain.governance import IdentitySource
from mintaka.errors import ConfigurationError
from mintaka.governance.policy import load_policy

ROLES = APPROVERS + '"lee" = ["ml-lead"]\n"ivy" = ["incident-commander"]\n'


@pytest.fixture
def home(governed_home: Callable[[str], Path]) -> Path:
    return governed_home(ROLES)


@pytest.fixture
def high(as_: Callable[[str], Platform], make_servable: MakeArtifact) -> str:
    dana = as_("dana")
    version = dana.register_model(
        "credit", make_servable(b"v1"), flavor="pyfunc", tier="high", metrics={"auc": 0.91}
    )
    return version.ref


def test_default_policy_ships_and_is_recorded_by_digest(home: Path) -> None:
    policy = load_policy(home)
    assert policy.digest.startswith("sha256:")
    assert policy.controls("high").approvals == 2  # type: ignore[arg-type]
    assert policy.roles_of("rita") == ("model-risk",)


def _activations(plat: Platform) -> list[tuple[str, object]]:
    return [
        (e.subject, e.details["production_aliases"])
        for e in plat.audit.events()
        if e.action == "policy.activate"
    ]


def test_a_policy_activation_is_announced_to_observers_once_committed(
    tmp_path: Path, make_servable: MakeArtifact
) -> None:
    """An activation is appended on the store's own account inside the caller's transaction;
    observers hear of it with the caller's event, and not at all when that transaction fails."""
    from mintaka import IdFactory, ManualClock, hookimpl
    from mintaka.domain.audit import AuditEvent
    from mintaka.plugins import PluginManager

    heard: list[str] = []

    class Observer:
        @hookimpl
        def mintaka_audit_event(self, event: AuditEvent) -> None:
            heard.append(event.action)

    plugins = PluginManager(extra=[Observer()])
    with Platform(tmp_path / "h", clock=ManualClock(), ids=IdFactory(3), plugins=plugins) as plat:
        decision = plat.governance.evaluate("model.register", "m", [])

        def fails_after_its_decision() -> None:
            with plat.store.write() as conn:
                plat.governance.record(conn, decision)
                raise RuntimeError("the change fails after its decision")

        with pytest.raises(RuntimeError):
            fails_after_its_decision()
        plat.register_model("m", make_servable(b"m"), flavor="pyfunc")
        plat.register_model("m", make_servable(b"n"), flavor="pyfunc")
    assert heard == ["policy.activate", "model.register", "model.register"]


def test_a_process_stops_checking_its_policy_once_the_chain_holds_it(
    platform: Platform, make_servable: MakeArtifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first decision records the activation, the next (a later transaction, on the same
    pooled connection) finds it committed; later decisions do not ask again."""
    from mintaka.governance import service

    found: list[bool] = []
    real = service.record_activation

    def counted(*args: Any, **kwargs: Any) -> Any:
        event = real(*args, **kwargs)
        found.append(event is not None)
        return event

    monkeypatch.setattr(service, "record_activation", counted)
    for n in range(4):
        platform.register_model("m", make_servable(bytes([n])))
    assert found == [True, False]
    assert len(_activations(platform)) == 1


def test_a_policy_activation_rolled_back_with_its_decision_is_recorded_again(
    platform: Platform, make_servable: MakeArtifact
) -> None:
    """A process checks its policy against the chain once it is settled there; an activation
    its own transaction appended is not settled, since that transaction may still roll back."""
    decision = platform.governance.evaluate("model.register", "m", [])

    def fails_after_its_decisions() -> None:
        with platform.store.write() as conn:
            platform.governance.record(conn, decision)
            platform.governance.record(conn, decision.model_copy(update={"id": "pd-second"}))
            raise RuntimeError("the change fails after its decisions")

    with pytest.raises(RuntimeError):
        fails_after_its_decisions()
    assert _activations(platform) == []
    platform.register_model("m", make_servable(b"m"), flavor="pyfunc")
    assert _activations(platform) == [
        (platform.governance.policy.digest, ["champion", "production"])
    ]


def test_a_policy_is_recorded_once_when_mintaka_first_acts_under_it(
    as_: Callable[[str], Platform],
    high: str,
    home: Path,
    clock: ManualClock,
    make_servable: MakeArtifact,
) -> None:
    dana = as_("dana")
    original = dana.governance.policy
    [event] = [e for e in dana.audit.events() if e.action == "policy.activate"]
    assert event.subject == event.details["digest"] == original.digest
    assert event.details["source"] == original.source
    assert event.details["production_aliases"] == ["champion", "production"]
    assert event.details["policy"]["tiers"]["high"]["approvals"] == 2
    assert event.details["policy"]["roles"]["rita"] == ["model-risk"]
    register = next(e for e in dana.audit.events() if e.action == "model.register")
    assert event.seq < register.seq  # in the transaction of the first decision, before it
    with pytest.raises(PolicyViolation):
        as_("lee").governance.approve(high)  # a deny is a decision too
    dana.governance.set_model_card(high, **CARD)
    as_("rita").governance.approve(high)
    assert _activations(dana) == [(original.digest, ["champion", "production"])]

    clock.advance(days=1)
    policy = home / "policy.toml"
    text = policy.read_text()
    policy.write_text(text.replace('["champion", "production"]', '["champion"]', 1))
    changed = as_("raj")
    changed.governance.approve(high)
    changed_digest = changed.governance.policy.digest
    activated = [(original.digest, ["champion", "production"]), (changed_digest, ["champion"])]
    assert _activations(dana) == activated

    clock.advance(days=1)
    dana.register_model(
        "churn", make_servable(b"c1"), flavor="pyfunc"
    )  # read its policy before the change
    assert _activations(dana) == activated

    policy.write_text(text)  # back to the original policy: recorded again
    as_("dana").register_model("churn", make_servable(b"c2"), flavor="pyfunc")
    assert _activations(dana) == [*activated, (original.digest, ["champion", "production"])]
    assert {d.policy_digest for d in dana.governance.decisions()} == {
        original.digest,
        changed_digest,
    }
    assert dana.verify_audit().ok


def test_unapproved_high_tier_promotion_lists_every_unmet_control(
    as_: Callable[[str], Platform], high: str
) -> None:
    dana = as_("dana")
    with pytest.raises(PolicyViolation) as refused:
        dana.set_alias("credit", "champion", 1)
    unmet = refused.value.unmet
    assert any(u.startswith("approvals: 0 of 2") for u in unmet)
    assert any(u.startswith("documentation: model card lacks intended_use") for u in unmet)
    decision = dana.governance.decisions(high)[-1]
    assert not decision.allowed
    assert decision.policy_digest == dana.governance.policy.digest
    assert dana.audit.events()[-1].action == "policy.deny"


def test_unapproved_high_tier_deploy_is_refused_before_the_backend_is_called(
    as_: Callable[[str], Platform], high: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    dana = as_("dana")
    calls: list[object] = []
    monkeypatch.setattr(dana.backend, "create_endpoint", lambda *a: calls.append(a))
    with pytest.raises(PolicyViolation, match="approvals: credit-v1: 0 of 2"):
        dana.serving.create_endpoint("scoring", high)
    assert calls == []


def test_self_approval_is_refused(as_: Callable[[str], Platform], high: str) -> None:
    dana = as_("dana")
    with pytest.raises(PolicyViolation, match="approver-is-not-developer"):
        dana.governance.approve(high)


def test_approver_without_the_role_is_refused(as_: Callable[[str], Platform], high: str) -> None:
    with pytest.raises(PolicyViolation, match="approver-holds-role"):
        as_("lee").governance.approve(high)  # ml-lead cannot sign off a high-tier model


def test_two_distinct_approvers_let_it_through(as_: Callable[[str], Platform], high: str) -> None:
    as_("dana").governance.set_model_card(high, **CARD)
    first = as_("rita").governance.approve(high, comment="ok")
    with pytest.raises(PolicyViolation, match="approvals: 1 of 2"):
        as_("dana").set_alias("credit", "champion", 1)
    assert as_("rita").governance.approve(high) == first  # one approval per person
    with pytest.raises(PolicyViolation, match="approvals: 1 of 2"):
        as_("dana").set_alias("credit", "champion", 1)
    as_("raj").governance.approve(high)
    promoted = as_("dana").set_alias("credit", "champion", 1)
    assert promoted.aliases == ("champion",)
    approvals = as_("dana").governance.approvals(promoted)
    assert {a.approver.source for a in approvals} == {IdentitySource.FLAG}


def test_changed_bytes_are_unapproved_bytes(
    as_: Callable[[str], Platform], high: str, make_servable: MakeArtifact
) -> None:
    for approver in ("rita", "raj"):
        as_(approver).governance.approve(high)
    dana = as_("dana")
    v2 = dana.register_model("credit", make_servable(b"v2"), flavor="pyfunc", metrics={"auc": 0.95})
    dana.governance.set_model_card(v2.ref, **CARD)
    with pytest.raises(PolicyViolation, match="approvals: 0 of 2"):
        dana.set_alias("credit", "champion", 2)


def test_evaluation_threshold_is_enforced(
    as_: Callable[[str], Platform], make_servable: MakeArtifact
) -> None:
    dana = as_("dana")
    weak = dana.register_model(
        "weak", make_servable(b"w"), flavor="pyfunc", tier="high", metrics={"auc": 0.55}
    )
    with pytest.raises(PolicyViolation, match=r"evaluation: auc 0.55 < 0.7"):
        dana.set_stage("weak", weak.version, "production")


def test_exception_lets_exactly_one_control_pass_until_it_expires(
    as_: Callable[[str], Platform], high: str, clock: ManualClock
) -> None:
    dana = as_("dana")
    dana.governance.set_model_card(high, **CARD)
    with pytest.raises(PolicyViolation, match="approver-is-not-requester"):
        dana.governance.grant_exception(
            high,
            "approvals",
            requester="dana",
            justification="x",
            expires_at=clock.now() + timedelta(days=1),
        )
    granted = as_("rita").governance.grant_exception(
        high,
        "approvals",
        requester="dana",
        justification="regulator-approved pilot, ticket RISK-12",
        expires_at=clock.now() + timedelta(days=7),
    )
    promoted = dana.set_alias("credit", "champion", 1)
    assert promoted.aliases == ("champion",)
    decision = [d for d in dana.governance.decisions(high) if d.action == "model.promote"][-1]
    assert decision.allowed
    assert decision.exceptions_applied[0].startswith(granted.id)
    dana.delete_alias("credit", "champion")
    clock.advance(days=8)
    with pytest.raises(PolicyViolation, match="approvals: 0 of 2"):
        dana.set_alias("credit", "champion", 1)


def test_exception_needs_a_future_expiry_and_a_reason(
    as_: Callable[[str], Platform], high: str, clock: ManualClock
) -> None:
    rita = as_("rita")
    with pytest.raises(ValidationError):
        rita.governance.grant_exception(
            high, "approvals", requester="dana", justification="", expires_at=clock.now()
        )


def test_approval_expires_with_the_revalidation_interval(
    as_: Callable[[str], Platform], high: str, clock: ManualClock
) -> None:
    as_("dana").governance.set_model_card(high, **CARD)
    for approver in ("rita", "raj"):
        as_(approver).governance.approve(high)
    clock.advance(days=181)
    with pytest.raises(PolicyViolation, match="approvals: 0 of 2"):
        as_("dana").set_alias("credit", "champion", 1)


def test_retiring_a_version_that_serves_traffic_is_refused(
    as_: Callable[[str], Platform], high: str
) -> None:
    as_("dana").governance.set_model_card(high, **CARD)
    for approver in ("rita", "raj"):
        as_(approver).governance.approve(high)
    dana = as_("dana")
    dana.serving.create_endpoint("scoring", high)
    with pytest.raises(PolicyViolation, match="not-serving"):
        dana.archive_version("credit", 1)


def _serve_approved(as_: Callable[[str], Platform], ref: str) -> None:
    """``ref`` documented, signed off by both model-risk approvers and serving on ``scoring``."""
    as_("dana").governance.set_model_card(ref, **CARD)
    for approver in ("rita", "raj"):
        as_(approver).governance.approve(ref)
    as_("dana").serving.create_endpoint("scoring", ref)


def test_kill_needs_no_approval_but_unkill_needs_the_role(
    as_: Callable[[str], Platform], high: str
) -> None:
    _serve_approved(as_, high)
    killed = as_("dana").serving.kill("scoring", reason="bad outputs")
    assert killed.status.value == "killed"
    with pytest.raises(PolicyViolation, match="unkill-role"):
        as_("dana").serving.unkill("scoring")
    assert as_("ivy").serving.unkill("scoring").status.value == "in_service"
    actions = [e.action for e in as_("ivy").audit.events()]
    assert "endpoint.kill" in actions
    assert actions[-1] == "endpoint.unkill"


def test_a_killed_endpoint_is_deleted_only_by_whoever_may_release_it(
    as_: Callable[[str], Platform], high: str
) -> None:
    """Else deleting and re-creating it would release the switch without the policy's role."""
    _serve_approved(as_, high)
    as_("dana").serving.kill("scoring")
    with pytest.raises(PolicyViolation, match="unkill-role"):
        as_("dana").serving.delete_endpoint("scoring")
    assert as_("dana").serving.get_endpoint("scoring").status.value == "killed"
    as_("ivy").serving.delete_endpoint("scoring", reason="decommissioned")
    [deleted] = [e for e in as_("ivy").audit.events() if e.action == "endpoint.delete"]
    assert deleted.actor == "ivy"
    assert deleted.details["decision"]


def test_an_endpoint_in_service_is_deleted_without_the_role(
    as_: Callable[[str], Platform], high: str
) -> None:
    _serve_approved(as_, high)
    as_("dana").serving.delete_endpoint("scoring")
    assert as_("dana").serving.list_endpoints() == []


def test_identity_comes_from_the_environment_then_the_os(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINTAKA_ACTOR", "env-user")
    with Platform(home) as plat:
        assert plat.governance.identity.name == "env-user"
        assert plat.governance.identity.source is IdentitySource.ENVIRONMENT
    monkeypatch.delenv("MINTAKA_ACTOR")
    with Platform(home) as plat:
        assert plat.governance.identity.source is IdentitySource.OS_USER


@pytest.mark.parametrize(
    ("given", "refusal"),
    [
        ("", "blank"),
        ("   ", "blank"),
        ("rita\nroot", "U\\+000A"),
        ("rita\x1b[2J", "U\\+001B"),
        ("rita\u2028root", "U\\+2028"),
        ("rita\u202etoor", "U\\+202E"),
        ("rita\u2067toor", "U\\+2067"),
        ("r" * 257, "longer than 256"),
    ],
)
def test_a_blank_multi_line_or_overlong_identity_is_refused(
    home: Path, monkeypatch: pytest.MonkeyPatch, given: str, refusal: str
) -> None:
    with (
        Platform(home, actor=given) as plat,
        pytest.raises(ValidationError, match=rf"identity given \(--as or actor=\).*{refusal}"),
    ):
        _ = plat.actor
    monkeypatch.setenv("MINTAKA_ACTOR", given)
    with Platform(home) as plat, pytest.raises(ValidationError, match=f"MINTAKA_ACTOR.*{refusal}"):
        _ = plat.actor


@pytest.mark.parametrize(
    "name",
    [
        "Alireza \u0639\u0644\u06cc\u200c\u0631\u0636\u0627",  # ZWNJ is part of the spelling
        "\u5c71\u7530\u3000\u592a\u90ce",  # a full name with an ideographic space
        "Ana\u00a0Lima",  # a no-break space pasted from a directory listing
        "\u0915\u094d\u200d\u0937",  # ZWJ
    ],
)
def test_real_names_are_valid_identities(
    home: Path, monkeypatch: pytest.MonkeyPatch, make_servable: MakeArtifact, name: str
) -> None:
    with Platform(home, actor=name) as plat:
        assert plat.register_model("churn", make_servable(b"x"), flavor="pyfunc").owner == name
    monkeypatch.setenv("MINTAKA_ACTOR", name)
    with Platform(home) as plat:
        assert plat.actor == name


@pytest.mark.parametrize("failure", [KeyError("getpwuid(): uid not found: 1000770000"), OSError()])
def test_no_os_user_name_is_a_configuration_error_naming_the_other_ways(
    home: Path, monkeypatch: pytest.MonkeyPatch, make_servable: MakeArtifact, failure: Exception
) -> None:
    import getpass

    def no_user() -> str:
        raise failure

    monkeypatch.delenv("MINTAKA_ACTOR", raising=False)
    monkeypatch.setattr(getpass, "getuser", no_user)
    with Platform(home) as plat, pytest.raises(ConfigurationError, match=r"MINTAKA_ACTOR.*--as"):
        plat.register_model("churn", make_servable(b"x"), flavor="pyfunc")
    with Platform(home, actor="rita") as plat:
        assert plat.list_models() == []


def test_an_identity_is_recorded_without_surrounding_blanks(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Platform(home, actor="  rita smith ") as plat:
        assert plat.actor == "rita smith"
    monkeypatch.setenv("MINTAKA_ACTOR", " env-user\t")
    with Platform(home) as plat:
        assert plat.actor == "env-user"


def test_authenticated_approvers_can_be_required(
    home: Path, as_: Callable[[str], Platform], make_servable: MakeArtifact
) -> None:
    text = (
        (home / "policy.toml")
        .read_text()
        .replace(
            "[tiers.high]\napprovals = 2",
            "[tiers.high]\napprovals = 2\nrequire_authenticated_approvers = true",
        )
    )
    (home / "policy.toml").write_text(text)
    version = as_("dana").register_model("m", make_servable(b"x"), flavor="pyfunc", tier="high")
    with pytest.raises(PolicyViolation, match="approver-authenticated"):
        as_("rita").governance.approve(version.ref)


def test_an_invalid_policy_is_a_configuration_error(home: Path) -> None:
    from mintaka.errors import ConfigurationError

    (home / "policy.toml").write_text('version = "x"\n[tiers.low]\napprovals = 1\n')
    with pytest.raises(ConfigurationError):
        load_policy(home)


def test_staging_a_route_needs_no_rollout_but_moving_live_traffic_directly_is_refused(
    as_: Callable[[str], Platform], high: str, make_servable: MakeArtifact
) -> None:
    dana = as_("dana")
    v2 = dana.register_model("credit", make_servable(b"v2"), flavor="pyfunc", metrics={"auc": 0.93})
    for ref in (high, v2.ref):
        dana.governance.set_model_card(ref, **CARD)
        for approver in ("rita", "raj"):
            as_(approver).governance.approve(ref)
    dana.serving.create_endpoint("scoring", high, route="blue")
    staged = dana.serving.deploy("scoring", v2.ref, route="green")  # no live change
    assert staged.traffic.weights == {"blue": 100, "green": 0}
    with pytest.raises(PolicyViolation, match="rollout-strategy") as refused:
        dana.serving.set_traffic("scoring", {"green": 100})  # a direct switch on a high tier
    said = str(refused.value)
    assert "credit:2 is high tier" in said
    assert "roll it out with `mintaka rollout scoring --to ROUTE`" in said
    # A rollout step, as the controller applies it.
    moved = dana.serving._set_traffic("scoring", {"blue": 90, "green": 10}, strategy="canary")
    assert moved.traffic.weights == {"blue": 90, "green": 10}


def test_a_direct_split_names_the_refused_strategy_once_with_the_rollout_hint(
    as_: Callable[[str], Platform], make_servable: MakeArtifact, clock: ManualClock
) -> None:
    """Moving two medium-tier versions' traffic directly is one unmet control, naming both
    versions and the rollout command once; it is waived only by an exception for each."""
    dana = as_("dana")
    refs = []
    for content in (b"c1", b"c2"):
        version = dana.register_model(
            "churn", make_servable(content), flavor="pyfunc", tier="medium"
        )
        dana.governance.set_model_card(version.ref, **CARD)
        as_("lee").governance.approve(version.ref)
        refs.append(version.ref)
    dana.serving.create_endpoint("scoring", refs[0], route="blue")
    dana.serving.deploy("scoring", refs[1], route="green")
    with pytest.raises(PolicyViolation) as refused:
        dana.serving.set_traffic("scoring", {"blue": 50, "green": 50})
    [unmet] = refused.value.unmet
    assert unmet.startswith("rollout-strategy: churn:1 and churn:2 are medium tier")
    assert unmet.count("mintaka rollout scoring --to ROUTE") == 1

    def waive(ref: str) -> None:
        as_("rita").governance.grant_exception(
            ref,
            "rollout-strategy",
            requester="dana",
            justification="emergency split, ticket OPS-7",
            expires_at=clock.now() + timedelta(days=1),
        )

    waive(refs[0])
    with pytest.raises(PolicyViolation, match="rollout-strategy"):
        dana.serving.set_traffic("scoring", {"blue": 50, "green": 50})
    waive(refs[1])
    moved = dana.serving.set_traffic("scoring", {"blue": 50, "green": 50})
    assert moved.traffic.weights == {"blue": 50, "green": 50}


def test_a_recorded_policy_this_mintaka_cannot_parse_lends_only_its_production_aliases(
    platform: Platform, make_servable: MakeArtifact
) -> None:
    from mintaka.governance.policy_history import activations, policy_at, production_aliases_at

    platform.register_model("m", make_servable(b"m"), flavor="pyfunc")
    current = platform.governance.policy
    with platform.store.write() as conn:  # a policy with a setting this Mintaka does not know
        platform.audit.append(
            conn,
            at=platform._now(),
            actor="mintaka",
            action="policy.activate",
            subject="sha256:later",
            details={
                "digest": "sha256:later",
                "source": "policy.toml",
                "version": "later/1",
                "production_aliases": ["live"],
                "policy": {"version": "later/1", "tiers": {}, "unknown": True},
            },
        )
    recorded = activations(platform)
    assert recorded[0].policy == current
    assert recorded[1].policy is None
    assert recorded[1].unreadable.startswith("this Mintaka cannot read it (unknown: ")
    assert policy_at(recorded, platform._now(), current) is current
    assert production_aliases_at(recorded, platform._now(), current) == (
        "sha256:later",
        ("live",),
    )


def test_a_process_that_switched_policies_records_its_return_to_the_first(
    as_: Callable[[str], Platform], home: Path, make_servable: MakeArtifact
) -> None:
    """A process that settled policy A, then activated B, has made the chain's latest
    activation B: reading A again (even at the same instant) and acting under it records A
    again, so history does not say B is still in force."""
    dana = as_("dana")
    original = dana.governance.policy.digest
    dana.register_model("m", make_servable(b"1"), flavor="pyfunc")
    dana.register_model("m", make_servable(b"2"), flavor="pyfunc")  # finds A committed: settled
    policy = home / "policy.toml"
    text = policy.read_text()
    policy.write_text(text.replace('["champion", "production"]', '["champion"]', 1))
    changed = dana.governance.reload_policy().digest
    dana.register_model("m", make_servable(b"3"), flavor="pyfunc")
    dana.register_model("m", make_servable(b"4"), flavor="pyfunc")
    policy.write_text(text)
    dana.governance.reload_policy()
    dana.register_model("m", make_servable(b"5"), flavor="pyfunc")
    assert [digest for digest, _ in _activations(dana)] == [original, changed, original]


def test_a_return_to_a_policy_is_recorded_though_the_host_clock_lags(
    home: Path, make_servable: MakeArtifact
) -> None:
    """Whether another policy was activated after a process read its own is decided by chain
    position: a process reading policy A after B was activated, on a host whose clock lags the
    one that activated B, records A again."""
    from mintaka import IdFactory

    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    slow, fast = ManualClock(start), ManualClock(start + timedelta(minutes=10))
    policy = home / "policy.toml"
    text = policy.read_text()
    with Platform(home, actor="dana", clock=slow, ids=IdFactory(1)) as first:
        first.register_model("credit", make_servable(b"v1"), flavor="pyfunc", tier="low")
        original = first.governance.policy.digest
    policy.write_text(text.replace('["champion", "production"]', '["champion"]', 1))
    with Platform(home, actor="ops", clock=fast, ids=IdFactory(2)) as ops:
        ops.register_model("churn", make_servable(b"c1"), flavor="pyfunc", tier="low")
        changed = ops.governance.policy.digest
    policy.write_text(text)
    slow.advance(minutes=1)
    with Platform(home, actor="dana", clock=slow, ids=IdFactory(3)) as back:
        back.register_model("credit", make_servable(b"v2"), flavor="pyfunc", tier="low")
        assert back.governance.decisions("credit:2")[-1].policy_digest == original
        assert [digest for digest, _ in _activations(back)] == [original, changed, original]


@pytest.mark.parametrize(
    "change",
    [
        lambda b: b.__setitem__("details", ["x"]),
        lambda b: b["details"].__setitem__("production_aliases", "live"),
        lambda b: b["details"].__setitem__("production_aliases", 7),
        lambda b: b["details"].__setitem__("digest", {"sha": 1}),
        lambda b: b.__setitem__("at", "yesterday"),
    ],
    ids=[
        "details-not-an-object",
        "aliases-a-string",
        "aliases-a-number",
        "digest-not-text",
        "at-not-an-instant",
    ],
)
def test_a_policy_activation_edited_out_of_shape_records_nothing(
    platform: Platform, make_servable: MakeArtifact, change: Callable[[dict[str, Any]], None]
) -> None:
    import json

    from sqlalchemy import select, update

    from mintaka.governance.inventory import inventory
    from mintaka.governance.policy_history import activations
    from mintaka.store.schema import audit_events

    platform.register_model("m", make_servable(b"m"), flavor="pyfunc")
    [first] = activations(platform)
    with platform.store.write() as conn:
        seq, canonical = conn.execute(
            select(audit_events.c.seq, audit_events.c.canonical).where(
                audit_events.c.action == "policy.activate"
            )
        ).one()
        body = json.loads(bytes(canonical))
        change(body)
        edited = json.dumps(body).encode()
        conn.execute(update(audit_events).where(audit_events.c.seq == seq).values(canonical=edited))
    assert activations(platform) == []
    [entry] = inventory(platform, now=platform._now())
    assert entry.ref == "m:1"
    assert first.seq == seq
