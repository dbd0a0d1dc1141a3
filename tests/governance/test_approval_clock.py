"""Approvals and audit events stamped by wrong wall clocks: an approval is judged by its own
stamp, whatever a later event's stamp says (the stamps cannot tell which clock was wrong), and
``audit verify`` warns of an event stamped later than an event after it."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from artifact_kit import MakeArtifact
from cli_kit import cli
from governance_kit import APPROVERS, CARD

from mintaka import ManualClock, Platform, PolicyViolation
from mintaka.governance.evidence import build_pack, render_html
from mintaka.governance.inventory import inventory

AHEAD = timedelta(days=90)
"""How far the clock was set ahead; half of the high tier's ``revalidation_days`` (180)."""


@pytest.fixture
def home(governed_home: Callable[[str], Path]) -> Path:
    return governed_home(APPROVERS + '"sam" = ["model-risk"]\n')


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


def test_an_event_from_a_clock_behind_does_not_lapse_the_approvals_before_it(
    as_: Callable[[str], Platform], high: str, clock: ManualClock, make_artifact: MakeArtifact
) -> None:
    dana = as_("dana")
    as_("rita").governance.approve(high)
    as_("raj").governance.approve(high)
    given = clock.now()
    clock.advance(days=-200)  # a host whose clock is 200 days behind records an unrelated event
    as_("eve").register_model("other", make_artifact(b"x"), tier="low")
    clock.advance(days=200, minutes=1)
    version = dana.get_model_version(high)
    assert {a.at for a in dana.governance.approvals(version)} == {given}
    assert dana.set_alias("credit", "champion", 1).aliases == ("champion",)
    [entry] = [e for e in inventory(dana) if e.name == "credit"]
    assert (entry.approvals, entry.approved_at, entry.overdue) == (2, given, False)


def test_an_approval_stamped_ahead_counts_and_ages_from_its_own_stamp(
    as_: Callable[[str], Platform], high: str, clock: ManualClock
) -> None:
    dana = as_("dana")
    corrected = clock.now()
    _approved_ahead(as_, high, clock)
    version = dana.get_model_version(high)
    assert dana.governance.counting_approvals(version, clock.now()) == {"raj": corrected}
    with pytest.raises(PolicyViolation, match="approvals: 1 of 2"):
        dana.set_alias("credit", "champion", 1)

    clock.advance(seconds=AHEAD.total_seconds())  # its stamp comes round
    assert dana.set_alias("credit", "champion", 1).aliases == ("champion",)

    # 181 days after the correction raj's has lapsed; rita's is 91 days old by its stamp.
    clock.advance(days=181 - AHEAD.days)
    assert dana.governance.counting_approvals(version, clock.now()).keys() == {"rita", "raj"}
    [entry] = inventory(dana)
    assert (entry.approvals, entry.approved_at, entry.overdue) == (1, corrected + AHEAD, True)


def test_another_approver_approving_after_the_clock_is_fixed_counts_at_once(
    as_: Callable[[str], Platform], high: str, clock: ManualClock
) -> None:
    """What governance.md tells an operator whom ``audit verify`` warns of an approval stamped
    ahead: its approver approving again records nothing, another model-risk approver counts."""
    _approved_ahead(as_, high, clock)
    dana = as_("dana")
    assert [a.seq for a in dana.audit.stamps_ahead()]  # the warning
    rita = as_("rita")
    version = rita.get_model_version(high)
    [first] = [a for a in rita.governance.approvals(version) if a.approver.name == "rita"]
    assert rita.governance.approve(high).id == first.id
    with pytest.raises(PolicyViolation, match="approvals: 1 of 2"):
        dana.set_alias("credit", "champion", 1)
    as_("sam").governance.approve(high)
    assert dana.set_alias("credit", "champion", 1).aliases == ("champion",)


def test_an_approval_stamped_ahead_stands_until_it_lapses_by_its_own_stamp(
    as_: Callable[[str], Platform], high: str, clock: ManualClock
) -> None:
    """Approving again hands the standing approval back until it is ``revalidation_days`` older
    than its own stamp; then a new one is recorded."""
    _approved_ahead(as_, high, clock)
    rita = as_("rita")
    version = rita.get_model_version(high)
    [first] = [a for a in rita.governance.approvals(version) if a.approver.name == "rita"]
    clock.advance(days=181)
    assert rita.governance.approve(high).id == first.id  # 91 days old by its stamp
    clock.advance(days=AHEAD.days)
    again = rita.governance.approve(high)
    assert (again.id != first.id, again.at) == (True, clock.now())
    assert [e.action for e in rita.audit.events()].count("model.approve") == 3


def test_an_evidence_pack_counts_an_approval_stamped_after_its_head(
    as_: Callable[[str], Platform], high: str, clock: ManualClock
) -> None:
    """Recorded before the pack's head in chain order, rita's approval counts there though its
    stamp is later than the head's; each approval carries its own stamp."""
    corrected = clock.now()
    _approved_ahead(as_, high, clock)
    pack = build_pack(as_("dana"), high)
    by = {a["approver"]: a for a in pack["approvals"]}
    assert by["rita"]["at"] == (corrected + AHEAD).isoformat()
    assert (by["rita"]["counts"], by["raj"]["counts"]) == (True, True)
    assert all("effective_at" not in a for a in pack["approvals"])
    assert "counted from" not in render_html(pack, "")


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
