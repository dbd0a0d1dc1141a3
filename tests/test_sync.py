"""Sync compares the approval status core projects with the one the registry reports: an
approval changed behind Mintaka's back is reported and audited, never overwritten, and resolved
when undone."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from artifact_kit import MakeArtifact
from forgery_kit import forge_approval

from mintaka import ManualClock, Platform
from mintaka.domain.registry import ApprovalStatus
from mintaka.domain.serving import TrafficMap
from mintaka.sync import DIFFERENCE_ACTION, RESOLVED_ACTION, traffic_views


@pytest.fixture
def home(governed_home: Callable[[str], Path]) -> Path:
    return governed_home('[roles]\n"rita" = ["model-risk"]\n"raj" = ["model-risk"]\n')


@pytest.fixture
def dana(as_: Callable[[str], Platform], make_artifact: MakeArtifact) -> Platform:
    plat = as_("dana")
    plat.register_model("credit", make_artifact(b"v1"), tier="high")
    plat.register_model("credit", make_artifact(b"v2"), tier="high")
    return plat


def _audited(platform: Platform, action: str) -> list[tuple[str, dict[str, Any]]]:
    return [(e.subject, e.details) for e in platform.audit.events() if e.action == action]


def _approved(as_: Callable[[str], Platform], ref: str) -> None:
    as_("rita").governance.approve(ref, role="model-risk")
    as_("raj").governance.approve(ref, role="model-risk")


def test_an_approval_changed_behind_mintakas_back_is_reported_not_overwritten(
    as_: Callable[[str], Platform], dana: Platform
) -> None:
    _approved(as_, "credit:1")
    assert dana.backend.get_version("credit", 1).approval is ApprovalStatus.APPROVED
    assert dana.sync() == []
    dana.backend.set_approval("credit", 1, ApprovalStatus.REJECTED)  # type: ignore[attr-defined]
    differences = dana.sync()
    assert [(d.kind, d.subject, d.recorded, d.observed) for d in differences] == [
        ("version.approval", "credit:1", "approved", "rejected")
    ]
    assert _audited(dana, DIFFERENCE_ACTION) == [
        ("credit:1", {"kind": "version.approval", "recorded": "approved", "observed": "rejected"})
    ]
    assert dana.backend.get_version("credit", 1).approval is ApprovalStatus.REJECTED
    assert len(dana.governance.approvals(dana.get_model_version("credit:1"))) == 2
    dana.backend.set_approval("credit", 1, ApprovalStatus.APPROVED)  # type: ignore[attr-defined]
    assert dana.sync() == []
    assert [s for s, _ in _audited(dana, RESOLVED_ACTION)] == ["credit:1"]


def test_a_version_approved_out_of_band_is_reported_as_pending_in_core(
    as_: Callable[[str], Platform], dana: Platform
) -> None:
    as_("rita").governance.approve("credit:2", role="model-risk")  # 1 of the 2 approvals
    assert dana.backend.get_version("credit", 2).approval is ApprovalStatus.PENDING
    assert dana.sync() == []
    dana.backend.set_approval("credit", 2, ApprovalStatus.APPROVED)  # type: ignore[attr-defined]
    assert [(d.kind, d.subject, d.recorded, d.observed) for d in dana.sync()] == [
        ("version.approval", "credit:2", "pending", "approved")
    ]


def test_a_version_the_registry_shows_no_approval_for_is_not_compared(dana: Platform) -> None:
    assert dana.backend.get_version("credit", 1).approval is None
    assert dana.sync() == []


def test_an_approval_past_revalidation_is_a_difference_until_renewed(
    as_: Callable[[str], Platform], dana: Platform, clock: ManualClock
) -> None:
    _approved(as_, "credit:1")
    clock.advance(days=181)
    assert [(d.kind, d.recorded, d.observed) for d in dana.sync()] == [
        ("version.approval", "pending", "approved")
    ]


def test_an_approval_row_no_audit_event_records_does_not_change_the_projection(
    home: Path, as_: Callable[[str], Platform], make_artifact: MakeArtifact
) -> None:
    policy = home / "policy.toml"  # a tier anyone in model-risk may approve, needing none
    low = '[tiers.low]\napprover_roles = ["model-risk"]\n'
    policy.write_text(policy.read_text().replace("[tiers.low]\n", low, 1))
    dana = as_("dana")
    version = dana.register_model("scoring", make_artifact(b"v1"), tier="low")
    dana.backend.set_approval("scoring", 1, ApprovalStatus.PENDING)  # type: ignore[attr-defined]
    assert dana.sync() == []
    forge_approval(dana, version, "apr-forged", version.created_at)
    assert dana.sync() == []
    as_("rita").governance.approve("scoring:1", role="model-risk")
    assert dana.backend.get_version("scoring", 1).approval is ApprovalStatus.APPROVED
    assert dana.sync() == []


def test_traffic_views_compare_the_shadow_only_where_the_cloud_mirrors_it() -> None:
    plain = TrafficMap(weights={"blue": 100, "green": 0})
    shadowed = TrafficMap(weights={"blue": 100, "green": 0}, shadow="green", shadow_percent=20)
    less = TrafficMap(weights={"blue": 100, "green": 0}, shadow="green", shadow_percent=10)
    assert traffic_views(plain, shadowed, False) == ({"weights": {"blue": 100}},) * 2
    assert traffic_views(plain, plain, True) == ({"weights": {"blue": 100}, "shadow": None},) * 2
    was, now = traffic_views(plain, shadowed, True)
    assert (was["shadow"], was["shadow_percent"]) == (None, 0)
    assert (now["shadow"], now["shadow_percent"]) == ("green", 20)
    was, now = traffic_views(shadowed, less, True)
    assert was != now
    assert now == {"weights": {"blue": 100}, "shadow": "green", "shadow_percent": 10}
