"""Governance rules that must hold however their input is spelled: expiries in any UTC offset,
the controls an exception may waive, a version's tier against its model's, revalidation as the
gate counts it, approvals only as the audit chain records them."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from artifact_kit import MakeArtifact
from cli_kit import cli
from forgery_kit import forge_approval
from governance_kit import APPROVERS, CARD
from sqlalchemy import event, select, update

from mintaka import IdFactory, ManualClock, Platform, PolicyViolation, ValidationError
from mintaka.domain.governance import Approval
from mintaka.domain.registry import ModelVersion
from mintaka.governance.evidence import build_pack, export_evidence
from mintaka.governance.inventory import inventory
from mintaka.governance.records import check_records
from mintaka.governance.service import GovernanceService
from mintaka.store.schema import approvals, audit_events, policy_exceptions

TOKYO = timezone(timedelta(hours=9))
NEW_YORK = timezone(timedelta(hours=-5))


@pytest.fixture
def home(governed_home: Callable[[str], Path]) -> Path:
    return governed_home(APPROVERS)


@pytest.fixture
def high(as_: Callable[[str], Platform], make_artifact: MakeArtifact) -> str:
    dana = as_("dana")
    version = dana.register_model(
        "credit", make_artifact(b"v1"), tier="high", metrics={"auc": 0.91}
    )
    dana.governance.set_model_card(version.ref, **CARD)
    return version.ref


def _grant(plat: Platform, ref: str, expires_in: timedelta, zone: timezone) -> None:
    plat.governance.grant_exception(
        ref,
        "approvals",
        requester="dana",
        justification="pilot RISK-12",
        expires_at=(plat.clock.now() + expires_in).astimezone(zone),
    )


def test_an_expiry_east_of_utc_ends_at_its_instant(
    as_: Callable[[str], Platform], high: str, clock: ManualClock
) -> None:
    """As text, an expired ``…+09:00`` expiry still sorts after the current UTC time."""
    _grant(as_("rita"), high, timedelta(minutes=15), TOKYO)
    clock.advance(minutes=20)
    assert (
        as_("dana").governance.exceptions(
            as_("dana").get_model_version(high), active_at=clock.now()
        )
        == []
    )
    with pytest.raises(PolicyViolation, match="approvals: 0 of 2"):
        as_("dana").set_alias("credit", "champion", 1)


def test_an_expiry_west_of_utc_is_in_force_until_its_instant(
    as_: Callable[[str], Platform], high: str, clock: ManualClock
) -> None:
    """As text, a ``…-05:00`` expiry two hours ahead sorts before the current UTC time."""
    _grant(as_("rita"), high, timedelta(hours=2), NEW_YORK)
    assert as_("dana").set_alias("credit", "champion", 1).aliases == ("champion",)


@pytest.mark.parametrize(
    ("control", "requester", "says"),
    [
        ("aproovals", "dana", "cannot waive 'aproovals'"),
        ("not-archived", "dana", "cannot waive 'not-archived'"),
        ("approvals", " ", "needs the identity that requested it"),
    ],
)
def test_an_exception_names_a_waivable_control_and_its_requester(
    as_: Callable[[str], Platform],
    high: str,
    clock: ManualClock,
    control: str,
    requester: str,
    says: str,
) -> None:
    rita = as_("rita")
    with pytest.raises(ValidationError, match=says):
        rita.governance.grant_exception(
            high,
            control,
            requester=requester,
            justification="x",
            expires_at=clock.now() + timedelta(days=1),
        )
    assert rita.governance.exceptions(rita.get_model_version(high)) == []


def test_a_version_cannot_be_registered_below_its_models_tier(
    as_: Callable[[str], Platform], high: str, make_artifact: MakeArtifact
) -> None:
    dana = as_("dana")
    with pytest.raises(PolicyViolation, match="tier-not-below-model"):
        dana.register_model("credit", make_artifact(b"v2"), tier="low")
    assert [v.version for v in dana.list_versions("credit")] == [1]
    assert dana.audit.events()[-1].action == "policy.deny"
    # the model's tier, or a higher one, is fine
    assert dana.register_model("credit", make_artifact(b"v3")).risk_tier.value == "high"


def test_revalidation_falls_due_when_the_older_required_approval_lapses(
    as_: Callable[[str], Platform], high: str, clock: ManualClock
) -> None:
    """The high tier needs two approvals no older than 180 days: one from day 0 and one from
    day 170 leave the version approved until day 180, not day 350."""
    as_("rita").governance.approve(high)
    clock.advance(days=170)
    as_("raj").governance.approve(high)
    as_("dana").set_alias("credit", "champion", 1)
    [entry] = inventory(as_("dana"))
    assert not entry.overdue
    assert entry.revalidation_due == clock.now() + timedelta(days=10)
    clock.advance(days=15)
    [entry] = inventory(as_("dana"), overdue=True)
    assert entry.ref == high
    controls = as_("dana").governance.production_controls(as_("dana").get_model_version(high))
    [unmet] = [c.describe() for c in controls if not c.met]
    assert "approvals: 1 of 2" in unmet


def test_an_approval_stops_counting_when_its_approver_loses_the_role(
    as_: Callable[[str], Platform], high: str, home: Path
) -> None:
    """The gate, the inventory and the evidence pack count an approval only while its
    approver holds, under the policy in force, the approver role it was given in."""
    for approver in ("rita", "raj"):
        as_(approver).governance.approve(high)
    as_("dana").set_alias("credit", "champion", 1)
    policy = home / "policy.toml"
    policy.write_text(policy.read_text().replace('"raj" = ["model-risk"]\n', "", 1))
    dana = as_("dana")
    with pytest.raises(PolicyViolation, match="approvals: 1 of 2"):
        dana.set_alias("credit", "production", 1)
    [entry] = inventory(dana)
    assert entry.overdue
    counts = {a["approver"]: a["counts"] for a in build_pack(dana, high)["approvals"]}
    assert counts == {"rita": True, "raj": False}
    with pytest.raises(PolicyViolation, match="approver-holds-role"):
        as_("raj").governance.approve(high)
    assert len(dana.governance.approvals(dana.get_model_version(high))) == 2


def test_a_model_named_like_a_lineage_kind_is_found_by_its_reference(
    as_: Callable[[str], Platform], make_artifact: MakeArtifact
) -> None:
    dana = as_("dana")
    version = dana.register_model("run", make_artifact(b"r"), tier="low")
    graph = dana.lineage_upstream("run:1")
    assert f"model_version:{version.id}" in {n.id for n in graph.nodes}


def test_an_approval_row_without_its_audit_event_never_counts(
    as_: Callable[[str], Platform], high: str, tmp_path: Path
) -> None:
    dana = as_("dana")
    dana.governance.set_model_card(high, **CARD)
    real = as_("rita").governance.approve(high)
    version = dana.get_model_version(high)
    forge_approval(dana, version, "apr-forged", real.at)  # raj's, straight into the table
    assert [a.id for a in dana.governance.approvals(version)] == [real.id]
    assert [a.id for a in dana.governance.unrecorded_approvals(version)] == ["apr-forged"]
    with pytest.raises(PolicyViolation, match="approvals: 1 of 2"):
        dana.set_alias("credit", "champion", 1)
    [entry] = inventory(dana)
    assert (entry.approvals, entry.approvals_total) == (1, 1)
    listed = {a["id"]: a for a in build_pack(dana, high)["approvals"]}
    assert (listed[real.id]["counts"], listed[real.id]["recorded"]) == (True, True)
    forged = listed["apr-forged"]
    assert (forged["counts"], forged["recorded"]) == (False, False)
    assert "no model.approve audit event" in forged["reason"]
    html = export_evidence(dana, high, tmp_path / "pack").html_path.read_text()
    assert "no: no model.approve audit event" in html


def test_an_approval_row_changed_after_its_event_stops_counting(
    as_: Callable[[str], Platform], high: str
) -> None:
    dana = as_("dana")
    given = as_("rita").governance.approve(high)
    version = dana.get_model_version(high)
    with dana.store.write() as conn:  # rita's approval moved forward to escape revalidation
        later = (given.at + timedelta(days=90)).isoformat()
        conn.execute(update(approvals).where(approvals.c.id == given.id).values(at=later))
    assert dana.governance.approvals(version) == []
    assert [a.id for a in dana.governance.unrecorded_approvals(version)] == [given.id]


def test_an_exception_row_without_its_audit_event_waives_nothing(
    as_: Callable[[str], Platform], high: str, clock: ManualClock, tmp_path: Path
) -> None:
    dana = as_("dana")
    version = dana.get_model_version(high)
    with dana.store.write() as conn:  # a waiver of approvals written straight into the table
        conn.execute(
            policy_exceptions.insert().values(
                id="exc-forged",
                version_id=version.id,
                control="approvals",
                justification="pilot",
                requester="dana",
                approver="rita",
                expires_at=(clock.now() + timedelta(days=7)).isoformat(),
                created_at=clock.now().isoformat(),
            )
        )
    assert dana.governance.exceptions(version) == []
    assert [e.id for e in dana.governance.unrecorded_exceptions(version)] == ["exc-forged"]
    with pytest.raises(PolicyViolation, match="approvals: 0 of 2"):
        dana.set_alias("credit", "champion", 1)
    [listed] = build_pack(dana, high)["exceptions"]
    assert (listed["id"], listed["recorded"], listed["in_force_at_as_of"]) == (
        "exc-forged",
        False,
        False,
    )
    html = export_evidence(dana, high, tmp_path / "pack").html_path.read_text()
    assert "waives nothing: no policy.exception audit event" in html


def test_an_exception_extended_in_the_table_lapses_when_its_event_says(
    as_: Callable[[str], Platform], high: str, clock: ManualClock
) -> None:
    _grant(as_("rita"), high, timedelta(days=1), TOKYO)
    dana = as_("dana")
    version = dana.get_model_version(high)
    [granted] = build_pack(dana, high)["exceptions"]
    assert granted["recorded"] is True
    assert dana.set_alias("credit", "champion", 1).aliases == ("champion",)
    dana.delete_alias("credit", "champion")
    later = (clock.now() + timedelta(days=30)).isoformat()
    with dana.store.write() as conn:
        conn.execute(update(policy_exceptions).values(expires_at=later))
    assert dana.governance.exceptions(version) == []
    with pytest.raises(PolicyViolation, match="approvals: 0 of 2"):
        dana.set_alias("credit", "champion", 1)


class _SteppingBack:
    """A wall clock stepped back a millisecond at every reading (NTP steps, a resumed VM)."""

    def __init__(self) -> None:
        self.t = datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        self.t -= timedelta(milliseconds=1)
        return self.t


def test_an_approval_counts_when_the_clock_steps_back_while_it_is_given(
    home: Path, make_artifact: MakeArtifact
) -> None:
    clock = _SteppingBack()
    dana = Platform(home, actor="dana", clock=clock, ids=IdFactory(1))
    rita = Platform(home, actor="rita", clock=clock, ids=IdFactory(2))
    version = dana.register_model("credit", make_artifact(b"v1"), tier="high")
    given = rita.governance.approve(version.ref)
    assert [a.id for a in dana.governance.approvals(version)] == [given.id]
    assert dana.governance.unrecorded_approvals(version) == []
    [event] = [e for e in dana.audit.events() if e.action == "model.approve"]
    assert event.at == given.at


def _edit_first(plat: Platform, action: str, change: Callable[[dict[str, Any]], None]) -> None:
    """Rewrite, by hand, the first ``action`` event's stored bytes as ``change`` says."""
    with plat.store.write() as conn:
        seq, canonical = conn.execute(
            select(audit_events.c.seq, audit_events.c.canonical)
            .where(audit_events.c.action == action)
            .order_by(audit_events.c.seq)
        ).first()
        body = json.loads(bytes(canonical))
        change(body)
        edited = json.dumps(body).encode()
        conn.execute(update(audit_events).where(audit_events.c.seq == seq).values(canonical=edited))


@pytest.mark.parametrize(
    "change",
    [lambda b: b.__setitem__("at", "yesterday"), lambda b: b.__setitem__("details", ["x"])],
    ids=["at-not-an-instant", "details-not-an-object"],
)
def test_an_approve_event_edited_out_of_shape_records_nothing(
    as_: Callable[[str], Platform], high: str, change: Callable[[dict[str, Any]], None]
) -> None:
    dana = as_("dana")
    given = as_("rita").governance.approve(high)
    kept = as_("raj").governance.approve(high)
    _edit_first(dana, "model.approve", change)
    version = dana.get_model_version(high)
    assert [a.id for a in dana.governance.approvals(version)] == [kept.id]
    assert [a.id for a in dana.governance.unrecorded_approvals(version)] == [given.id]
    with pytest.raises(PolicyViolation, match="approvals: 1 of 2"):
        dana.set_alias("credit", "champion", 1)
    [entry] = inventory(dana)
    assert (entry.approvals, entry.approvals_total) == (1, 1)
    listed = {a["id"]: a["recorded"] for a in build_pack(dana, high)["approvals"]}
    assert listed == {kept.id: True, given.id: False}


@pytest.mark.parametrize(
    "change",
    [
        lambda b: b.__setitem__("details", ["x"]),
        lambda b: b.__setitem__("details", {"exception": 1}),
    ],
    ids=["details-not-an-object", "exception-not-an-object"],
)
def test_an_exception_event_edited_out_of_shape_waives_nothing(
    as_: Callable[[str], Platform], high: str, change: Callable[[dict[str, Any]], None]
) -> None:
    _grant(as_("rita"), high, timedelta(days=3), TOKYO)
    dana = as_("dana")
    _edit_first(dana, "policy.exception", change)
    version = dana.get_model_version(high)
    assert dana.governance.exceptions(version) == []
    assert len(dana.governance.unrecorded_exceptions(version)) == 1
    with pytest.raises(PolicyViolation, match="approvals: 0 of 2"):
        dana.set_alias("credit", "champion", 1)
    [entry] = inventory(dana)
    assert entry.exceptions == ()
    [listed] = build_pack(dana, high)["exceptions"]
    assert listed["recorded"] is False


def test_audit_verify_names_sign_off_rows_the_chain_does_not_record(
    as_: Callable[[str], Platform],
    high: str,
    home: Path,
    clock: ManualClock,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rita = as_("rita")
    given = rita.governance.approve(high)
    _grant(rita, high, timedelta(days=3), TOKYO)
    [granted] = rita.governance.exceptions(rita.get_model_version(high))
    assert check_records(rita.store).ok
    code, out, _ = cli(capsys, "--home", str(home), "audit", "verify")
    assert code == 0, out
    assert "verified" in out
    version = rita.get_model_version(high)
    forge_approval(rita, version, "apr-forged", given.at)
    with rita.store.write() as conn:
        conn.execute(update(policy_exceptions).values(justification="widened by hand"))
    report = check_records(rita.store)
    assert not report.ok
    assert [(r.table, r.id, r.subject) for r in report.unrecorded] == [
        ("approvals", "apr-forged", high),
        ("policy_exceptions", granted.id, high),
    ]
    assert report.missing == []
    code, out, _ = cli(capsys, "--home", str(home), "audit", "verify")
    assert code == 1
    assert "apr-forged" in out
    assert granted.id in out
    code, out, _ = cli(capsys, "--home", str(home), "audit", "verify", "--json")
    assert code == 1
    body = json.loads(out)
    assert (body["ok"], body["first_bad_seq"]) == (False, None)
    assert [r["id"] for r in body["records"]["unrecorded"]] == ["apr-forged", granted.id]


def test_audit_verify_prints_a_forged_row_id_escaped_not_as_lines_of_its_own(
    as_: Callable[[str], Platform],
    high: str,
    home: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rita = as_("rita")
    given = rita.governance.approve(high)
    version = rita.get_model_version(high)
    forged_id = "apr-x\naudit chain verified: 0 events\r\u202e\x1b[2J"
    forge_approval(rita, version, forged_id, given.at)
    code, out, _ = cli(capsys, "--home", str(home), "audit", "verify")
    assert code == 1
    lines = [line.strip(" │|") for line in out.splitlines()]
    assert not any(line.startswith("audit chain verified: 0 events") for line in lines)
    assert not any(c in out for c in "\r\x1b\u202e")
    assert "'apr-x\\naudit" in out  # quoted with its escapes (wrapped at its spaces)
    assert "\\r\\u202e\\x1b[2J'" in out


def test_audit_verify_names_sign_off_events_whose_row_is_gone(
    as_: Callable[[str], Platform], high: str
) -> None:
    rita = as_("rita")
    given = rita.governance.approve(high)
    [event] = [e for e in rita.audit.events() if e.action == "model.approve"]
    with rita.store.write() as conn:
        conn.execute(approvals.delete().where(approvals.c.id == given.id))
    report = check_records(rita.store)
    assert not report.ok
    assert report.unrecorded == []
    assert [(m.seq, m.table, m.id, m.subject) for m in report.missing] == [
        (event.seq, "approvals", given.id, high)
    ]


def test_approving_again_after_the_clock_steps_back_records_nothing(
    as_: Callable[[str], Platform], high: str, clock: ManualClock
) -> None:
    """An approval stamped after a clock that stepped back still stands: approving again gets
    it back rather than a second approval of the same bytes by the same person."""
    rita = as_("rita")
    given = rita.governance.approve(high)
    clock.advance(minutes=-30)
    again = as_("rita").governance.approve(high)
    assert again.id == given.id
    version = rita.get_model_version(high)
    assert [a.id for a in rita.governance.approvals(version)] == [given.id]
    assert [e.action for e in rita.audit.events()].count("model.approve") == 1
    clock.advance(minutes=30)
    assert rita.governance.counting_approvals(version, clock.now()) == {"rita": given.at}


def test_the_same_person_approving_from_two_processes_at_once_is_recorded_once(
    as_: Callable[[str], Platform], high: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second process finds no standing approval, the first records one, then the second
    takes the write lock: it gets the first one's approval back rather than a second row."""
    first, second = as_("rita"), as_("rita")
    given: list[Approval] = []
    standing = GovernanceService._standing

    def approve_in_between(
        self: GovernanceService, version: ModelVersion, *args: Any
    ) -> list[Approval]:
        found = standing(self, version, *args)
        if self is second.governance and not given:
            given.append(first.governance.approve(high))
        return found

    monkeypatch.setattr(GovernanceService, "_standing", approve_in_between)
    again = second.governance.approve(high)
    assert len(given) == 1
    assert again == given[0]
    version = first.get_model_version(high)
    with first.store.read() as conn:
        assert conn.execute(select(approvals.c.id)).scalars().all() == [again.id]
    assert [e.action for e in first.audit.events()].count("model.approve") == 1
    assert check_records(first.store).ok
    assert [a.id for a in first.governance.approvals(version)] == [again.id]


def test_card_fields_set_by_two_processes_at_once_are_both_kept(
    as_: Callable[[str], Platform], make_artifact: MakeArtifact
) -> None:
    """The first process reads the card, then the second sets another field (given 0.1 s, or
    until the first commits where the first holds the write lock by then): the second one's
    field is kept rather than overwritten with the card as the first read it."""
    first, second = as_("dana"), as_("dana")
    ref = first.register_model("credit", make_artifact(b"v1"), tier="high").ref
    racers: list[threading.Thread] = []

    def race_after_reading_the_card(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM model_cards" in statement and not racers:
            racers.append(
                threading.Thread(
                    target=second.governance.set_model_card,
                    args=(ref,),
                    kwargs={"limitations": CARD["limitations"]},
                )
            )
            racers[0].start()
            racers[0].join(timeout=0.1)

    event.listen(first.store.engine, "after_cursor_execute", race_after_reading_the_card)
    try:
        card = first.governance.set_model_card(ref, intended_use=CARD["intended_use"])
    finally:
        event.remove(first.store.engine, "after_cursor_execute", race_after_reading_the_card)
    racers[0].join()
    wanted = {"intended_use": CARD["intended_use"], "limitations": CARD["limitations"]}
    assert first.governance.model_card(ref) == wanted
    assert set(card) <= set(wanted)


@pytest.mark.parametrize(
    "values",
    [{"identity_source": "root"}, {"at": "yesterday"}, {"at": "2026-01-01T00:00:00"}],
    ids=["unknown-identity-source", "time-not-an-instant", "naive-time"],
)
def test_an_approval_row_edited_out_of_shape_is_unrecorded_not_fatal(
    as_: Callable[[str], Platform], high: str, values: dict[str, str]
) -> None:
    dana = as_("dana")
    given = as_("rita").governance.approve(high)
    kept = as_("raj").governance.approve(high)
    with dana.store.write() as conn:
        conn.execute(update(approvals).where(approvals.c.id == given.id).values(**values))
    version = dana.get_model_version(high)
    assert [a.id for a in dana.governance.approvals(version)] == [kept.id]
    with pytest.raises(PolicyViolation, match="approvals: 1 of 2"):
        dana.set_alias("credit", "champion", 1)
    [entry] = inventory(dana)
    assert (entry.approvals, entry.approvals_total) == (1, 1)
    assert [a["id"] for a in build_pack(dana, high)["approvals"]] == [kept.id]
    assert [(r.table, r.id) for r in check_records(dana.store).unrecorded] == [
        ("approvals", given.id)
    ]


@pytest.mark.parametrize("expiry", ["never", "2026-02-01T00:00:00"], ids=["text", "naive"])
def test_an_exception_row_edited_out_of_shape_waives_nothing_and_is_not_fatal(
    as_: Callable[[str], Platform], high: str, expiry: str
) -> None:
    _grant(as_("rita"), high, timedelta(days=3), TOKYO)
    dana = as_("dana")
    with dana.store.write() as conn:
        conn.execute(update(policy_exceptions).values(expires_at=expiry))
    version = dana.get_model_version(high)
    assert dana.governance.exceptions(version) == []
    with pytest.raises(PolicyViolation, match="approvals: 0 of 2"):
        dana.set_alias("credit", "champion", 1)
    [entry] = inventory(dana)
    assert entry.exceptions == ()
    assert build_pack(dana, high)["exceptions"] == []
    assert [r.table for r in check_records(dana.store).unrecorded] == ["policy_exceptions"]


def test_an_approval_comment_changed_in_the_table_stops_it_counting(
    as_: Callable[[str], Platform], high: str
) -> None:
    dana = as_("dana")
    given = as_("rita").governance.approve(high, comment="checked the backtest")
    version = dana.get_model_version(high)
    assert [a.id for a in dana.governance.approvals(version)] == [given.id]
    with dana.store.write() as conn:
        conn.execute(
            update(approvals).where(approvals.c.id == given.id).values(comment="all clear")
        )
    assert dana.governance.approvals(version) == []
    assert [a.id for a in dana.governance.unrecorded_approvals(version)] == [given.id]
    assert [r.id for r in check_records(dana.store).unrecorded] == [given.id]


@pytest.mark.parametrize("text", ["\ud800", "bad\udcff"], ids=["lone-surrogate", "raw-byte"])
@pytest.mark.parametrize(
    "give",
    [
        lambda rita, ref, text: rita.governance.approve(ref, comment=text),
        lambda rita, ref, text: rita.governance.approve(ref, role=text),
        lambda rita, ref, text: rita.governance.grant_exception(
            ref,
            "approvals",
            requester="dana",
            justification=text,
            expires_at=rita.clock.now() + timedelta(days=1),
        ),
        lambda rita, ref, text: rita.governance.set_model_card(ref, limitations=text),
    ],
    ids=["approval-comment", "approval-role", "exception-justification", "model-card-field"],
)
def test_text_that_is_not_utf8_is_refused_before_anything_is_stored(
    as_: Callable[[str], Platform],
    high: str,
    give: Callable[[Platform, str, str], object],
    text: str,
) -> None:
    rita = as_("rita")
    before = [e.seq for e in rita.audit.events()]
    with pytest.raises(ValidationError, match="is not valid UTF-8 text"):
        give(rita, high, text)
    assert [e.seq for e in rita.audit.events()] == before
    version = rita.get_model_version(high)
    assert rita.governance.approvals(version) == []
    assert rita.governance.exceptions(version) == []
    assert rita.governance.model_card(version) == CARD
    assert rita.verify_audit().ok
