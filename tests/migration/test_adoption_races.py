"""Two adoptions of one model at once: what the second writes follows the model as the first
recorded it while the second read the cloud's bytes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from test_adoption import write_legacy

from mintaka import ManualClock, Platform
from mintaka.domain.registry import RiskTier
from mintaka.errors import Conflict, PolicyViolation


@pytest.fixture
def alice_and_bob(
    home: Path, clock: ManualClock, tmp_path: Path
) -> Iterator[tuple[Platform, Platform]]:
    with (
        Platform(home, clock=clock, actor="alice") as alice,
        Platform(home, clock=clock, actor="bob") as bob,
    ):
        write_legacy(alice, tmp_path)
        yield alice, bob


def _meanwhile(bob: Platform, tier: str) -> Callable[..., None]:
    """An ``on_fetch`` during which bob adopts version 2 of ``churn`` as ``tier``, once."""

    def adopt(*_: object) -> None:
        if not bob.list_models():
            bob.migration.adopt_model("churn", reason="bob", versions=[2], tier=tier)

    return adopt


def test_a_model_recorded_meanwhile_gives_its_tier_to_an_adoption_that_named_none(
    alice_and_bob: tuple[Platform, Platform],
) -> None:
    alice, bob = alice_and_bob
    adoption = alice.migration.adopt_model(
        "churn", reason="alice", versions=[1], on_fetch=_meanwhile(bob, "high")
    )
    assert [v.risk_tier for v in adoption.adopted] == [RiskTier.HIGH]
    assert alice.get_model("churn").risk_tier is RiskTier.HIGH
    assert alice.get_model_version("churn", 1).risk_tier is RiskTier.HIGH


def test_a_tier_below_that_of_a_model_recorded_meanwhile_is_refused(
    alice_and_bob: tuple[Platform, Platform],
) -> None:
    alice, bob = alice_and_bob
    with pytest.raises(PolicyViolation, match="tier-not-below-model"):
        alice.migration.adopt_model(
            "churn", reason="alice", versions=[1], tier="medium", on_fetch=_meanwhile(bob, "high")
        )
    assert [v.version for v in alice.list_versions("churn")] == [2]
    denied = [e for e in alice.audit.events() if e.action == "policy.deny"]
    assert [e.subject for e in denied] == ["churn"]


def test_a_model_recorded_meanwhile_for_another_backend_is_refused(
    alice_and_bob: tuple[Platform, Platform],
) -> None:
    alice, bob = alice_and_bob

    def switched(*args: object) -> None:
        _meanwhile(bob, "medium")(*args)
        with bob.store.write() as conn:  # as a home switched from SageMaker holds it
            conn.exec_driver_sql("UPDATE models SET backend = 'sagemaker'")

    with pytest.raises(Conflict, match="recorded for backend 'sagemaker', not 'local'"):
        alice.migration.adopt_model("churn", reason="alice", versions=[1], on_fetch=switched)
    assert [v.version for v in alice.list_versions("churn")] == [2]


def test_a_model_recorded_meanwhile_gives_its_owner_to_an_adoption_that_named_none(
    alice_and_bob: tuple[Platform, Platform],
) -> None:
    alice, bob = alice_and_bob

    def adopt(*_: object) -> None:
        if not bob.list_models():
            bob.migration.adopt_model("churn", reason="bob", versions=[2], owner="risk-team")

    adoption = alice.migration.adopt_model("churn", reason="alice", versions=[1], on_fetch=adopt)
    assert [v.owner for v in adoption.adopted] == ["risk-team"]
    assert alice.get_model("churn").owner == "risk-team"
