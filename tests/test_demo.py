from __future__ import annotations

from pathlib import Path

import pytest

from mintaka import IdFactory, ManualClock, Platform
from mintaka.demo import run_demo, write_dataset


def test_dataset_generation_is_deterministic(tmp_path: Path) -> None:
    a = write_dataset(tmp_path / "a.csv").read_bytes()
    b = write_dataset(tmp_path / "b.csv").read_bytes()
    assert a == b


def test_demo_registers_a_real_model_with_lineage_and_a_verified_audit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MINTAKA_POLICY")  # the demo runs under the default policy, with roles
    steps: list[str] = []
    with Platform(tmp_path / "h", clock=ManualClock(), ids=IdFactory(3), actor="demo") as plat:
        result = run_demo(plat, steps.append)
        again = run_demo(plat)  # re-running reuses the identical version
    assert len(steps) == 9
    assert result.served == 400
    assert result.calm_alerts == 0
    assert len(result.drift_alerts) == 1
    assert result.drift_alerts[0].value > 0.2
    [ticket] = result.tickets
    assert (ticket.owner, ticket.signal) == ("credit-oncall", "credit-scoring:income-drift")
    assert result.traced is not None
    assert result.traced.version.ref == result.version.ref
    assert any(u.startswith("approvals: 0 of 2") for u in result.refused)
    assert any(u.startswith("documentation:") for u in result.refused)
    assert again.refused == ()
    assert result.version.aliases == ("champion",)
    approvers = {a.approver.name for a in plat.governance.approvals(result.version)}
    assert approvers == {"rita.risk", "raj.risk"}
    assert result.version.risk_tier.value == "high"
    assert result.version.flavor.value == "sklearn"
    assert result.metrics["auc"] > 0.8
    kinds = {node.kind.value for node in result.lineage.nodes}
    assert kinds == {"dataset", "run", "model_version"}
    assert result.audit.ok
    assert again.version.version == result.version.version
    assert again.version.artifact_digest == result.version.artifact_digest


def test_demo_model_loads_back_with_trusted_types(tmp_path: Path) -> None:
    from mintaka.flavors import sklearn as sklearn_flavor

    with Platform(tmp_path / "h", clock=ManualClock(), ids=IdFactory(3)) as plat:
        version = run_demo(plat).version
        content = plat.artifacts.verify(version.artifact_digest).content
    model = sklearn_flavor.load(content)
    assert model.predict([[0.0] * 6]).shape == (1,)
