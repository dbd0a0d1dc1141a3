"""The lifecycle demo, end to end on the local backend (one run shared by the assertions)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mintaka import IdFactory, ManualClock, Platform
from mintaka.artifacts import manifest_of
from mintaka.demo import DemoResult, run_demo, write_dataset
from mintaka.domain.pipelines import PipelineStatus
from mintaka.files import file_path


def test_dataset_generation_is_deterministic(tmp_path: Path) -> None:
    a = write_dataset(tmp_path / "a.csv").read_bytes()
    b = write_dataset(tmp_path / "b.csv").read_bytes()
    assert a == b


def test_a_home_with_records_of_its_own_is_refused_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mintaka.errors import Conflict
    from mintaka.governance.policy import POLICY_FILE

    monkeypatch.delenv("MINTAKA_POLICY", raising=False)
    home = tmp_path / ".mintaka"
    with Platform(home, clock=ManualClock(), actor="ann") as plat:
        plat.create_model("credit-default", tier="low", owner="ann")
        with pytest.raises(Conflict, match="run the demo in a fresh --home"):
            run_demo(plat)
        assert not (home / POLICY_FILE).exists()
        assert not (home / "demo").exists()
        assert [v.ref for v in plat.list_versions("credit-default")] == []


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Platform, DemoResult]]:
    home = tmp_path_factory.mktemp("demo") / ".mintaka"
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MINTAKA_POLICY", raising=False)  # the default policy, with the demo roles
        with Platform(home, clock=ManualClock(), ids=IdFactory(3), actor="dana.developer") as plat:
            steps: list[str] = []
            result = run_demo(plat, steps.append)
            assert steps[0].startswith("generating")
            yield plat, result


@pytest.mark.timeout(180)
def test_the_first_version_is_refused_at_the_deployment_gate_until_signed_off(
    demo: tuple[Platform, DemoResult],
) -> None:
    plat, result = demo
    refused = {c.name: c.describe() for c in result.refused}
    assert refused["approvals"].startswith("approvals: 0 of 2")
    assert "model card lacks" in refused["documentation"]
    first = result.first
    assert first.risk_tier.value == "high"
    assert first.flavor.value == "sklearn"
    assert {a.approver.name for a in plat.governance.approvals(first)} == {"rita.risk", "raj.risk"}
    initial = result.runs[0]
    assert (initial.trigger, initial.reason) == ("event", "initial training")
    assert initial.run.status is PipelineStatus.SUCCEEDED
    assert initial.code_commit is not None
    assert [e.status for e in result.events if e.step == "approvals"][:2] == ["started", "failed"]


def test_drift_from_the_monitoring_runner_retrains_a_challenger_that_wins(
    demo: tuple[Platform, DemoResult],
) -> None:
    plat, result = demo
    assert result.calm_alerts == 0
    [alert] = result.drift_alerts
    assert alert.value > 0.2
    [ticket] = result.tickets
    assert (ticket.owner, ticket.signal) == ("credit-oncall", "credit-scoring:income-drift")
    [request] = plat.pipelines.requests()
    assert (request.trigger, request.alert) == ("drift", alert.id)
    assert (request.status, request.outcome) == ("done", "succeeded after resuming")
    retrain = result.runs[1]
    assert retrain.trigger == "drift"
    assert retrain.run.id == request.pipeline_run
    assert retrain.run.status is PipelineStatus.SUCCEEDED
    [challenge] = result.challenge
    assert challenge.passed
    assert float(challenge.value) < float(challenge.limit)  # type: ignore[arg-type]
    assert [c.name for c in result.canary] == ["step 1 (10%)", "step 2 (50%)", "step 3 (100%)"]
    assert all(c.passed for c in result.canary)
    assert result.champion.version == 2
    assert result.champion.aliases == ("champion",)
    assert result.retired_routes == ("credit-default-v1",)
    endpoint = plat.serving.get_endpoint("credit-scoring")
    assert endpoint.traffic.weights == {"credit-default-v2": 100}


def test_lineage_audit_and_evidence(demo: tuple[Platform, DemoResult]) -> None:
    _plat, result = demo
    assert result.production_from_source == ("credit-default:2",)
    kinds = {node.kind.value for node in result.lineage.nodes}
    assert {"dataset", "run", "model_version", "pipeline_run", "gate"} <= kinds
    assert result.traced is not None
    assert result.traced.version.version == 1
    assert result.audit.ok
    assert result.artifacts is not None
    assert result.artifacts.ok
    # The two registered versions' bytes and the adopted one's, re-hashed.
    assert result.artifacts.checked == 3
    assert result.differences == ()  # the local backend holds what the store records
    assert result.evidence is not None
    assert result.evidence.is_file()
    assert result.served > 1000


def test_the_kill_switch_stops_the_endpoint_until_a_model_risk_approver_releases_it(
    demo: tuple[Platform, DemoResult],
) -> None:
    plat, result = demo
    drill = result.drill
    assert drill is not None
    assert "answered 503" in drill.refused
    assert "unkill-role" in drill.release_refused
    assert "dana.developer holds no role" in drill.release_refused
    assert (drill.released_by, drill.answered_after) == ("rita.risk", True)
    switched = [
        (e.action, e.actor)
        for e in plat.audit.events()
        if e.action in ("endpoint.kill", "endpoint.unkill")
    ]
    assert switched == [("endpoint.kill", "dana.developer"), ("endpoint.unkill", "rita.risk")]
    assert plat.serving.get_endpoint("credit-scoring").status.value == "in_service"


def test_a_model_that_predates_mintaka_is_discovered_adopted_and_served(
    demo: tuple[Platform, DemoResult],
) -> None:
    plat, result = demo
    adoption = result.adoption
    assert adoption is not None
    assert set(adoption.discovered) == {
        "model collections-priority",
        "model_version collections-priority:1",
        "endpoint collections-api",
    }
    [version] = adoption.versions
    assert (version.ref, version.flavor.value, version.owner, version.risk_tier.value) == (
        "collections-priority:1",
        "sklearn",
        "colin.collections",
        "medium",
    )
    assert not adoption.known_good  # no approval or model card yet: listed as findings
    assert any(f.startswith("approvals:") for f in adoption.findings)
    assert adoption.traced is not None
    assert adoption.traced.version.ref == "collections-priority:1"
    assert not [c for c in plat.migration.discover() if not c.recorded]


def test_a_second_demo_run_in_the_same_home_reports_what_is_there(
    demo: tuple[Platform, DemoResult],
) -> None:
    plat, result = demo
    plat.monitoring.raise_alert("latency", "collections-api", owner="colin.collections")
    again = run_demo(plat)
    assert again.already_ran
    assert [t.signal for t in again.tickets] == ["credit-scoring:income-drift"]
    assert again.champion.ref == result.champion.ref
    assert again.audit.ok


def test_the_demo_model_loads_back(demo: tuple[Platform, DemoResult]) -> None:
    from mintaka.flavors import sklearn as sklearn_flavor

    plat, result = demo
    content = plat.artifacts.verify(result.champion.artifact_digest).content
    model = sklearn_flavor.load(content)
    assert model.predict([[0.0] * 6]).shape == (1,)


@pytest.mark.timeout(180)
def test_each_versions_training_data_still_holds_its_registered_bytes(
    demo: tuple[Platform, DemoResult],
) -> None:
    plat, result = demo
    first, second = result.first.dataset_ids, result.champion.dataset_ids
    assert first
    assert second
    assert set(first).isdisjoint(second)
    for dataset_id in (*first, *second):
        dataset = plat.get_dataset(dataset_id)
        path = file_path(dataset.uri) or Path(dataset.uri)
        assert manifest_of(path).digest == dataset.digest, (dataset.id, str(path))
