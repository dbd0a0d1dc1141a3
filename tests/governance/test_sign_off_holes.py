"""Separation of duties holds for exceptions as for approvals, a lapsed approval can be renewed,
registration decisions and evidence stay with their version, and out-of-range dates are typed
errors."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from artifact_kit import MakeArtifact
from governance_kit import APPROVERS, CARD
from sqlalchemy import update

from mintaka import ConfigurationError, ManualClock, Platform, PolicyViolation, ValidationError
from mintaka.governance.evidence import build_pack
from mintaka.governance.inventory import inventory, parse_instant
from mintaka.store.schema import model_versions

# dana develops and also holds the approver role
ROLES = APPROVERS + '"dana" = ["model-risk"]\n'


@pytest.fixture
def home(governed_home: Callable[[str], Path]) -> Path:
    return governed_home(ROLES)


def _high(plat: Platform, make_servable: MakeArtifact) -> str:
    version = plat.register_model(
        "credit", make_servable(b"v1"), flavor="pyfunc", tier="high", metrics={"auc": 0.9}
    )
    plat.governance.set_model_card(version.ref, **CARD)
    return version.ref


def _waive(plat: Platform, ref: str, clock: ManualClock, **extra: object) -> None:
    plat.governance.grant_exception(
        ref,
        "approvals",
        requester=str(extra.get("requester", "nobody")),
        justification="pilot RISK-12",
        expires_at=extra.get("expires_at", clock.now() + timedelta(days=30)),  # type: ignore[arg-type]
    )


def test_the_developer_cannot_waive_the_approvals_of_their_own_version(
    as_: Callable[[str], Platform], make_servable: MakeArtifact, clock: ManualClock
) -> None:
    dana = as_("dana")
    ref = _high(dana, make_servable)
    with pytest.raises(PolicyViolation, match="approver-is-not-developer"):
        dana.governance.approve(ref)
    with pytest.raises(PolicyViolation, match="exception-approver-is-not-developer"):
        _waive(dana, ref, clock)
    assert dana.governance.exceptions(dana.get_model_version(ref)) == []
    with pytest.raises(PolicyViolation):
        dana.set_alias("credit", "champion", 1)


def test_an_exception_needs_an_authenticated_approver_where_approvals_do(
    as_: Callable[[str], Platform], make_servable: MakeArtifact, clock: ManualClock, home: Path
) -> None:
    policy = home / "policy.toml"
    policy.write_text(
        policy.read_text().replace(
            "[tiers.high]\n", "[tiers.high]\nrequire_authenticated_approvers = true\n", 1
        )
    )
    ref = _high(as_("sam"), make_servable)
    rita = as_("rita")  # named by --as / actor=: not established by the backend
    with pytest.raises(PolicyViolation, match="approver-authenticated"):
        rita.governance.approve(ref)
    with pytest.raises(PolicyViolation, match="approver-authenticated"):
        _waive(rita, ref, clock, requester="sam")


def test_an_approver_renews_an_approval_that_lapsed(
    as_: Callable[[str], Platform], make_servable: MakeArtifact, clock: ManualClock
) -> None:
    ref = _high(as_("sam"), make_servable)
    first = as_("rita").governance.approve(ref)
    as_("raj").governance.approve(ref)
    rita = as_("rita")
    events = len(rita.audit.events())
    assert rita.governance.approve(ref) == first  # it still counts: nothing new is recorded
    assert len(rita.audit.events()) == events
    assert len(rita.governance.approvals(rita.get_model_version(ref))) == 2
    clock.advance(days=181)  # past revalidation_days (180): neither counts
    as_("rita").governance.approve(ref)
    as_("raj").governance.approve(ref)
    sam = as_("sam")
    assert sam.set_alias("credit", "champion", 1).aliases == ("champion",)


def test_a_registration_decision_is_filed_under_its_version_and_in_its_pack(
    as_: Callable[[str], Platform], make_servable: MakeArtifact
) -> None:
    dana = as_("dana")
    version = dana.register_model("credit", make_servable(b"c"), flavor="pyfunc", tier="low")
    [decision] = [d for d in dana.governance.decisions() if d.action == "model.register"]
    assert decision.subject == version.ref
    pack = build_pack(dana, version.ref)
    assert [d["id"] for d in pack["policy_decisions"]] == [decision.id]


def test_a_pack_leaves_out_an_endpoint_that_only_shares_the_models_name(
    as_: Callable[[str], Platform], make_servable: MakeArtifact
) -> None:
    dana = as_("dana")
    credit = dana.register_model("credit", make_servable(b"c"), flavor="pyfunc", tier="low")
    fraud = dana.register_model("fraud", make_servable(b"f"), flavor="pyfunc", tier="low")
    dana.governance.set_model_card(fraud.ref, **CARD)
    dana.serving.create_endpoint("credit", fraud.ref)  # named "credit", serves fraud:1
    dana.serving.kill("credit")
    pack = build_pack(dana, credit.ref)
    assert pack["deployments"] == []
    actions = [e["action"] for e in pack["audit"]["events"]]
    assert "model.register" in actions
    assert not [a for a in actions if a.startswith("endpoint.")]


def test_an_expiry_out_of_range_in_utc_is_a_validation_error(
    as_: Callable[[str], Platform], make_servable: MakeArtifact, clock: ManualClock
) -> None:
    ref = _high(as_("sam"), make_servable)
    far = datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5)))
    with pytest.raises(ValidationError, match="out of range in UTC"):
        _waive(as_("rita"), ref, clock, requester="sam", expires_at=far)


@pytest.mark.parametrize("field", ["revalidation_days", "superseded_grace_days"])
def test_a_policy_with_a_day_count_past_a_century_is_refused(
    as_: Callable[[str], Platform], home: Path, field: str
) -> None:
    policy = home / "policy.toml"
    text = policy.read_text().replace("revalidation_days = 730", "", 1)  # the low tier's
    policy.write_text(text.replace("[tiers.low]\n", f"[tiers.low]\n{field} = 3000000\n", 1))
    with pytest.raises(ConfigurationError, match=field):
        _ = as_("dana").governance.policy


@pytest.mark.parametrize(
    ("aliases", "refused"),
    [
        ('["Champion", "Production"]', "['Champion', 'Production']"),
        ('["champion", "prod live"]', "['prod live']"),
        ('["latest", "production"]', "['latest']"),
    ],
)
def test_a_policy_naming_production_aliases_no_alias_can_have_is_refused(
    as_: Callable[[str], Platform], home: Path, aliases: str, refused: str
) -> None:
    """Such a production alias would never match a real one and would silently take promotion
    gating away: an unapproved version would take ``production`` with no decision."""
    policy = home / "policy.toml"
    policy.write_text(policy.read_text().replace('["champion", "production"]', aliases, 1))
    with pytest.raises(ConfigurationError, match=re.escape(f"production_aliases {refused}")):
        _ = as_("dana").governance.policy


@pytest.mark.parametrize("spelled", ["20260331", "2026-03-31", "2026-W14-2"])
def test_every_bare_date_form_means_the_end_of_that_day(spelled: str) -> None:
    assert parse_instant(spelled) == datetime(2026, 3, 31, 23, 59, 59, 999999, tzinfo=UTC)


def test_a_pack_cites_only_approvals_that_still_count(
    as_: Callable[[str], Platform], make_servable: MakeArtifact, clock: ManualClock
) -> None:
    sam = as_("sam")
    ref = _high(sam, make_servable)
    as_("rita").governance.approve(ref)
    as_("raj").governance.approve(ref)

    def art_14() -> dict[str, object]:
        pack = build_pack(sam, ref)
        [result] = [r for r in pack["controls"]["results"] if r["control"] == "Art. 14"]
        return result

    assert art_14()["status"] == "met"
    clock.advance(days=200)  # past revalidation_days (180)
    sam.set_tags("credit", 1, {"reviewed": "no"})  # the pack is as of its newest event
    lapsed = art_14()
    assert lapsed["status"] == "gap"
    assert lapsed["evidence"] == []


def test_one_counting_approval_is_no_evidence_for_a_tier_that_requires_two(
    as_: Callable[[str], Platform], make_servable: MakeArtifact
) -> None:
    sam = as_("sam")
    ref = _high(sam, make_servable)  # the high tier requires two approvals
    as_("rita").governance.approve(ref)
    pack = build_pack(sam, ref)
    assert [a["counts"] for a in pack["approvals"]] == [True]
    [result] = [r for r in pack["controls"]["results"] if r["control"] == "Art. 14"]
    assert result["status"] == "gap"
    assert result["evidence"] == []

    as_("raj").governance.approve(ref)
    pack = build_pack(sam, ref)
    [result] = [r for r in pack["controls"]["results"] if r["control"] == "Art. 14"]
    assert result["status"] == "met"
    assert result["evidence"] == sorted(a["id"] for a in pack["approvals"])


def test_approving_again_settles_an_approval_status_changed_in_the_cloud(
    as_: Callable[[str], Platform], make_servable: MakeArtifact
) -> None:
    from mintaka.cli.migration import _next_step
    from mintaka.domain.registry import ApprovalStatus

    ref = _high(as_("sam"), make_servable)
    as_("rita").governance.approve(ref)
    as_("raj").governance.approve(ref)
    sam = as_("sam")
    assert sam.backend.get_version("credit", 1).approval is ApprovalStatus.APPROVED  # type: ignore[attr-defined]
    sam.backend.set_approval("credit", 1, ApprovalStatus.REJECTED)  # type: ignore[attr-defined]
    [difference] = sam.sync()
    assert _next_step(difference) == f"mintaka approve {ref}"
    rita = as_("rita")
    events = len(rita.audit.events())
    rita.governance.approve(ref)  # as the advice says: no second approval, the status re-sent
    assert len(rita.governance.approvals(rita.get_model_version(ref))) == 2
    assert [e.action for e in rita.audit.events()[events:]] == []
    assert rita.sync() == []


@pytest.mark.parametrize("padded", ["dana ", "dana\n", " dana\t"])
def test_an_owner_is_stored_trimmed_and_cannot_approve_their_own_version(
    as_: Callable[[str], Platform], make_servable: MakeArtifact, padded: str
) -> None:
    alice = as_("alice")
    version = alice.register_model(
        "credit", make_servable(b"v1"), flavor="pyfunc", tier="high", owner=padded
    )
    alice.governance.set_model_card(version.ref, **CARD)
    assert version.owner == "dana"
    assert alice.get_model("credit").owner == "dana"
    with pytest.raises(PolicyViolation, match="approver-is-not-developer"):
        as_("dana").governance.approve(version.ref)
    assert [e.ref for e in inventory(alice, owner="dana")] == [version.ref]


@pytest.mark.parametrize("forged", ["da\u202ena", "dana\nFORGED", "  ", "dana\udcff"])
def test_an_owner_that_is_no_identity_is_refused_before_anything_is_stored(
    as_: Callable[[str], Platform], make_servable: MakeArtifact, forged: str
) -> None:
    alice = as_("alice")
    with pytest.raises(ValidationError, match="owner"):
        alice.register_model("credit", make_servable(b"v1"), flavor="pyfunc", owner=forged)
    with pytest.raises(ValidationError, match="owner"):
        alice.create_model("credit", owner=forged)
    assert alice.list_models() == []


def test_a_padded_owner_already_stored_still_cannot_approve(
    as_: Callable[[str], Platform], make_servable: MakeArtifact
) -> None:
    alice = as_("alice")
    ref = _high(alice, make_servable)
    with alice.store.write() as conn:
        conn.execute(update(model_versions).values(owner="dana "))
    with pytest.raises(PolicyViolation, match="approver-is-not-developer"):
        as_("dana").governance.approve(ref)


@pytest.mark.parametrize("padded", ["rita ", " rita", "rita\t"])
def test_an_approver_cannot_waive_a_control_they_requested_under_a_padded_name(
    as_: Callable[[str], Platform], make_servable: MakeArtifact, clock: ManualClock, padded: str
) -> None:
    ref = _high(as_("sam"), make_servable)
    rita = as_("rita")
    with pytest.raises(PolicyViolation, match="exception-approver-is-not-requester"):
        _waive(rita, ref, clock, requester=padded)
    assert rita.governance.exceptions(rita.get_model_version(ref)) == []
    with pytest.raises(PolicyViolation, match="approvals: 0 of 2"):
        as_("sam").set_alias("credit", "champion", 1)


@pytest.mark.parametrize("forged", ["ri\u202eta", "sam\nFORGED", "sam\udcff"])
def test_a_requester_that_is_no_identity_is_refused_before_anything_is_stored(
    as_: Callable[[str], Platform], make_servable: MakeArtifact, clock: ManualClock, forged: str
) -> None:
    ref = _high(as_("sam"), make_servable)
    rita = as_("rita")
    events = len(rita.audit.events())
    with pytest.raises(ValidationError, match="requester"):
        _waive(rita, ref, clock, requester=forged)
    assert rita.governance.exceptions(rita.get_model_version(ref)) == []
    assert len(rita.audit.events()) == events


def test_an_exception_stores_its_requester_trimmed(
    as_: Callable[[str], Platform], make_servable: MakeArtifact, clock: ManualClock
) -> None:
    ref = _high(as_("sam"), make_servable)
    rita = as_("rita")
    _waive(rita, ref, clock, requester="  sam ")
    [granted] = rita.governance.exceptions(rita.get_model_version(ref))
    assert granted.requester == "sam"
    assert rita.audit.events()[-1].details["exception"]["requester"] == "sam"
