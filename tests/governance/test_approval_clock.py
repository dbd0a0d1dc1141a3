"""Approvals given while the wall clock was set far ahead, then corrected: the audit chain's
order, not the stamp, says when they were given. An approval is judged from the earliest stamp
of any event recorded after it, and ``audit verify`` warns of such stamps."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from artifact_kit import MakeArtifact
from cli_kit import cli
from governance_kit import APPROVERS, CARD

from mintaka import ManualClock, Platform, PolicyViolation
from mintaka.domain.registry import ApprovalStatus
from mintaka.governance.evidence import build_pack, render_html
from mintaka.governance.inventory import inventory

AHEAD = timedelta(days=90)
"""How far the clock was set ahead; half of the high tier's ``revalidation_days`` (180)."""


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


def _approved_ahead(as_: Callable[[str], Platform], ref: str, clock: ManualClock) -> None:
    """rita approves with the clock set ``AHEAD``; the clock is corrected and raj approves."""
    clock.advance(seconds=AHEAD.total_seconds())
    as_("rita").governance.approve(ref)
    clock.advance(seconds=-AHEAD.total_seconds())
    as_("raj").governance.approve(ref)


def test_an_approval_stamped_ahead_counts_and_ages_from_the_correction(
    as_: Callable[[str], Platform], high: str, clock: ManualClock
) -> None:
    dana = as_("dana")
    corrected = clock.now()
    _approved_ahead(as_, high, clock)
    # Both count now: rita's is not kept out until its stamp comes round.
    assert dana.set_alias("credit", "champion", 1).aliases == ("champion",)
    version = dana.get_model_version(high)
    by = {a.approver.name: a for a in dana.governance.approvals(version)}
    assert by["rita"].at == corrected + AHEAD
    assert by["rita"].effective_at == by["raj"].at == corrected
    assert by["raj"].effective_at == corrected
    assert [e.approved_at for e in inventory(dana)] == [corrected]

    # 181 days on both are older than the 180 days revalidation allows: rita's is not 91 days
    # old, as its stamp says.
    clock.advance(days=181)
    dana.delete_alias("credit", "champion")
    with pytest.raises(PolicyViolation, match="approvals: 0 of 2"):
        dana.set_alias("credit", "champion", 1)
    assert dana.governance.counting_approvals(version, clock.now()) == {
        "rita": corrected,
        "raj": corrected,
    }
    [entry] = inventory(dana)
    assert (entry.approvals, entry.approved_at, entry.overdue) == (0, corrected, False)
    assert entry.revalidation_due == corrected + timedelta(days=180)


def test_an_approval_stamped_ahead_stops_blocking_its_approver_from_the_correction(
    as_: Callable[[str], Platform], high: str, clock: ManualClock
) -> None:
    """Aged out from the correction, rita's approval no longer stands: approving again records
    a new one instead of handing back the old one until its future stamp is 180 days old."""
    _approved_ahead(as_, high, clock)
    rita = as_("rita")
    version = rita.get_model_version(high)
    [first] = [a for a in rita.governance.approvals(version) if a.approver.name == "rita"]
    assert rita.governance.approve(high).id == first.id  # still stands, nothing new
    clock.advance(days=181)
    again = rita.governance.approve(high)
    assert again.id != first.id
    assert again.at == again.effective_at == clock.now()
    assert [e.action for e in rita.audit.events()].count("model.approve") == 3


def test_an_approval_stamped_ahead_stands_until_an_event_follows_it(
    as_: Callable[[str], Platform], high: str, clock: ManualClock
) -> None:
    """With nothing recorded after it, the chain cannot tell its stamp is ahead: it stands at
    its own time, so approving again hands it back rather than record a second one."""
    rita = as_("rita")
    clock.advance(seconds=AHEAD.total_seconds())
    given = rita.governance.approve(high)
    clock.advance(seconds=-AHEAD.total_seconds())
    assert rita.governance.approve(high).id == given.id
    assert given.effective_at == given.at


def test_an_evidence_pack_counts_an_approval_stamped_ahead_from_the_correction(
    as_: Callable[[str], Platform], high: str, clock: ManualClock
) -> None:
    corrected = clock.now()
    _approved_ahead(as_, high, clock)
    dana = as_("dana")
    pack = build_pack(dana, high)
    by = {a["approver"]: a for a in pack["approvals"]}
    assert by["rita"]["at"] == (corrected + AHEAD).isoformat()
    assert by["rita"]["effective_at"] == corrected.isoformat()
    assert (by["rita"]["counts"], by["raj"]["counts"]) == (True, True)
    assert datetime.fromisoformat(pack["inventory"]["approved_at"]) == corrected
    report = render_html(pack, "")
    assert f"(counted from {corrected.isoformat()}, the stamp of a later audit event" in report
    assert report.count("(counted from") == 1  # raj's stamp is believed

    clock.advance(days=181)
    dana.governance.set_model_card(high, limitations="none known")  # the pack's new head
    later = build_pack(dana, high)
    assert [a["counts"] for a in later["approvals"]] == [False, False]


def test_sync_projects_an_approval_stamped_ahead_as_counting_from_the_correction(
    as_: Callable[[str], Platform], high: str, clock: ManualClock
) -> None:
    _approved_ahead(as_, high, clock)
    dana = as_("dana")
    assert dana.backend.get_version("credit", 1).approval is ApprovalStatus.APPROVED
    assert dana.sync() == []
    clock.advance(days=181)
    assert [(d.kind, d.recorded, d.observed) for d in dana.sync()] == [
        ("version.approval", "pending", "approved")
    ]


def test_verify_warns_of_a_stamp_ahead_of_a_later_event(
    as_: Callable[[str], Platform],
    high: str,
    clock: ManualClock,
    home: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _approved_ahead(as_, high, clock)
    dana = as_("dana")
    events = dana.audit.events()
    [rita_seq] = [e.seq for e in events if e.action == "model.approve" and e.actor == "rita"]
    [raj_seq] = [e.seq for e in events if e.action == "model.approve" and e.actor == "raj"]
    [ahead] = dana.audit.stamps_ahead()
    assert (ahead.seq, ahead.later_seq, ahead.ahead) == (rita_seq, raj_seq, AHEAD)
    assert dana.verify_audit().ok

    code, out, _ = cli(capsys, "--home", str(home), "audit", "verify")
    assert code == 0
    assert "audit chain verified" in out
    assert "warning: 1 event(s) stamped more than 5 minutes later" in " ".join(out.split())
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in out.splitlines()]
    assert [r for r in rows if r] == [
        [str(rita_seq), "2026-04-01 00:00:00", str(raj_seq), "2026-01-01 00:00:00", "90d"]
    ]

    code, out, _ = cli(capsys, "--home", str(home), "audit", "verify", "--json")
    assert code == 0
    report = json.loads(out)
    assert report["ok"] is True
    assert report["clock_tolerance_seconds"] == 300
    assert [(a["seq"], a["later_seq"]) for a in report["stamps_ahead"]] == [(rita_seq, raj_seq)]


def test_verify_does_not_warn_of_a_skew_within_the_tolerance(
    as_: Callable[[str], Platform],
    high: str,
    clock: ManualClock,
    home: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rita = as_("rita")
    rita.governance.approve(high)
    clock.advance(minutes=-4)  # hosts whose clocks differ a little
    as_("raj").governance.approve(high)
    assert rita.audit.stamps_ahead() == []
    [raj_seq] = [e.seq for e in rita.audit.events() if e.actor == "raj"]
    named = rita.audit.stamps_ahead(timedelta(minutes=3))
    assert [a.seq for a in named] == list(range(1, raj_seq))  # every event before raj's
    assert {(a.later_seq, a.ahead) for a in named} == {(raj_seq, timedelta(minutes=4))}

    code, out, _ = cli(capsys, "--home", str(home), "audit", "verify")
    assert code == 0
    assert "warning" not in out
    code, out, _ = cli(capsys, "--home", str(home), "audit", "verify", "--clock-tolerance", "60")
    assert code == 0
    assert f"{raj_seq - 1} event(s) stamped more than 1 minute later" in " ".join(out.split())
