"""Registrations refused up front: what the store already records refuses a version before the
backend is asked for one, so that a backend outside the store (a cloud) is left holding nothing
of a refused registration."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from artifact_kit import MakeArtifact

from mintaka import Conflict, Platform, PolicyViolation, RiskTier
from mintaka.migration import _tier_below
from mintaka.platform import BytesHeld


def _calls(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The backend's registry calls from now on, its registry taken as one outside the store
    (whose ``create_version`` then makes a version in a transaction of its own)."""
    monkeypatch.setattr(platform.backend, "resides_in", lambda _url: False)
    calls: list[str] = []
    for method in ("create_version", "ensure_model"):
        real: Callable[..., Any] = getattr(platform.backend, method)

        def counted(*args: Any, _real: Callable[..., Any] = real, _name: str = method) -> Any:
            calls.append(_name)
            return _real(*args)

        monkeypatch.setattr(platform.backend, method, counted)
    return calls


def test_the_calls_are_counted_and_a_registration_makes_one_version(
    platform: Platform, make_artifact: MakeArtifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform.create_model("churn")
    calls = _calls(platform, monkeypatch)
    platform.register_model("churn", make_artifact(b"one"))
    assert calls == ["create_version"]


def test_bytes_a_version_holds_are_refused_before_the_backend_makes_a_version(
    platform: Platform, make_artifact: MakeArtifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    same = make_artifact(b"same")
    platform.register_model("churn", same)
    calls = _calls(platform, monkeypatch)
    with pytest.raises(BytesHeld, match=r"churn:1 already holds artifact sha256:\w+$") as refused:
        platform.register_model("churn", same)
    assert (refused.value.version, refused.value.unrecorded) == (1, None)
    assert calls == []
    assert [v.version for v in platform.backend.list_versions("churn")] == [1]


def test_a_tier_below_the_models_is_refused_before_the_backend_makes_a_version(
    platform: Platform, make_artifact: MakeArtifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform.create_model("fraud", tier="high")
    calls = _calls(platform, monkeypatch)
    with pytest.raises(PolicyViolation, match="fraud is a high-tier model"):
        platform.register_model("fraud", make_artifact(b"w"), tier="low")
    assert calls == []
    assert platform.backend.list_versions("fraud") == []


def test_a_version_of_a_model_recorded_for_another_backend_is_refused_before_any_backend_call(
    platform: Platform, make_artifact: MakeArtifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform.register_model("churn", make_artifact(b"one"))
    with platform.store.write() as conn:  # as a home switched from SageMaker holds it
        conn.exec_driver_sql("UPDATE models SET backend = 'sagemaker'")
    calls = _calls(platform, monkeypatch)
    events = len(platform.audit.events())
    with pytest.raises(Conflict, match="model 'churn' is recorded for backend 'sagemaker', not"):
        platform.register_model("churn", make_artifact(b"two"))
    assert calls == []
    assert len(platform.audit.events()) == events
    assert [v.version for v in platform.list_versions("churn")] == [1]


@pytest.mark.parametrize(
    ("tier", "model_tier", "below"),
    [
        (None, RiskTier.HIGH, False),
        (RiskTier.LOW, RiskTier.MEDIUM, True),
        (RiskTier.MEDIUM, RiskTier.HIGH, True),
        (RiskTier.MEDIUM, RiskTier.MEDIUM, False),
        (RiskTier.HIGH, RiskTier.LOW, False),
    ],
)
def test_a_tier_is_below_a_models_only_when_it_is_less_risky(
    tier: RiskTier | None, model_tier: RiskTier, below: bool
) -> None:
    assert _tier_below(tier, model_tier) is below
