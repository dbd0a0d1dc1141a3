"""Retraining through the bound pipeline (event, alert request, schedule), reproducible digests,
retirement of superseded versions, and the production lineage query."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from artifact_kit import MakeArtifact
from hypothesis import given, settings
from hypothesis import strategies as st

from mintaka import IdFactory, ManualClock, NotFound, Platform, ValidationError
from mintaka.demo import write_dataset
from mintaka.demo_pipeline import credit_pipeline
from mintaka.domain.pipelines import (
    GateKind,
    PipelineRun,
    PipelineSpec,
    PipelineStatus,
    StepSpec,
)
from mintaka.domain.registry import Stage
from mintaka.pipelines.service import parse_every

STEPS = "pipeline_steps"


def tiny() -> PipelineSpec:
    return PipelineSpec(
        name="tiny",
        parameters={"n": 1},
        steps=[StepSpec(name="produce", entrypoint=f"{STEPS}:produce", inputs={"n": "params.n"})],
    )


def test_the_same_inputs_give_the_same_artifact_digest(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "credit.csv", rows=600)
    full = credit_pipeline(data=str(data))
    spec = full.model_copy(
        update={
            "steps": [
                s
                for s in full.steps
                if s.name in ("ingest", "validate-data", "train", "evaluate", "register")
            ]
        }
    )
    digests, states = [], []
    for home in ("a", "b"):
        with Platform(tmp_path / home, clock=ManualClock(), ids=IdFactory(1)) as plat:
            run = plat.pipelines.run(spec)  # the training step in its own sub-process
            assert run.status is PipelineStatus.SUCCEEDED
            digests.append(run.steps[-1].outputs["digest"])
            state = plat.pipelines.get(run.id)
            states.append(state)
            experiment = plat.get_run(state.experiment_run or "")
            assert experiment.dataset_ids == tuple(state.datasets)
            assert experiment.params["seed"] == "7"
            assert experiment.code_commit == state.code_commit
            assert experiment.environment["scikit-learn"]
            version = plat.get_model_version("credit-default", 1)
            assert version.run_id == experiment.id
    assert digests[0] == digests[1]
    first, second = states
    assert first.code_commit is not None  # the pipeline's code is in this repository
    assert first.seeds == {"seed": 7}
    assert first.data_digests
    assert list(first.data_digests.values()) == list(second.data_digests.values())
    assert first.environment == second.environment
    assert first.parameters == second.parameters


def test_retrain_needs_a_bound_pipeline_and_a_reason(platform: Platform) -> None:
    with pytest.raises(NotFound, match="no training pipeline is bound to 'm'"):
        platform.pipelines.retrain("m", "because")
    platform.pipelines.bind("m", tiny())
    with pytest.raises(ValidationError, match="needs a reason"):
        platform.pipelines.retrain("m", "  ")
    with pytest.raises(ValidationError, match="declares no parameters"):
        platform.pipelines.bind("m", tiny(), {"x": 1})
    with pytest.raises(ValidationError, match="schedule"):
        platform.pipelines.bind("m", tiny(), every="weekly")


def test_an_event_retrains_through_the_bound_pipeline(platform: Platform) -> None:
    platform.pipelines.bind("m", tiny(), {"n": 5})
    run = platform.pipelines.retrain("m", "new labels arrived", isolation="inline")
    assert run.steps[0].outputs["total"] == 10
    state = platform.pipelines.get(run.id)
    assert (state.trigger, state.reason, state.model) == ("event", "new labels arrived", "m")
    [event] = [e for e in platform.audit.events() if e.action == "model.retrain"]
    assert event.details["reason"] == "new labels arrived"


def test_alert_requests_are_queued_then_run_once_per_model(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    platform.pipelines.bind("m", tiny())
    first = platform.pipelines.request_retraining("m", "psi 0.5 > 0.2", trigger="drift", alert="a1")
    platform.pipelines.request_retraining("m", "psi 0.6 > 0.2", trigger="drift", alert="a2")
    assert [r.status for r in platform.pipelines.requests()] == ["pending", "pending"]
    [(request, run)] = platform.pipelines.process_requests(isolation="inline")
    assert request.id == first.id
    assert run is not None
    assert request.pipeline_run == run.id
    assert platform.pipelines.get(run.id).trigger == "drift"
    statuses = {r.id: (r.status, r.outcome) for r in platform.pipelines.requests()}
    assert statuses[first.id] == ("done", "succeeded")
    assert [o for s, o in statuses.values() if s == "done"][1] == (
        f"merged into {first.id}: succeeded"
    )
    assert platform.pipelines.process_requests() == []
    # a failing retrain keeps the request, marked failed with the run to resume
    flag = tmp_path / "fail"
    flag.touch()
    monkeypatch.setenv("MINTAKA_TEST_FAIL_FLAG", str(flag))
    broken = PipelineSpec(
        name="broken",
        parameters={"n": 1},
        steps=[
            *tiny().steps,
            StepSpec(
                name="consume",
                entrypoint=f"{STEPS}:consume",
                inputs={"file": "produce.file", "total": "produce.total"},
            ),
        ],
    )
    platform.pipelines.bind("m", broken)
    platform.pipelines.request_retraining("m", "again", trigger="performance")
    [(failed, none)] = platform.pipelines.process_requests(isolation="inline")
    assert none is None
    assert failed.status == "failed"
    assert "asked to fail" in failed.outcome
    assert platform.pipelines.get(failed.pipeline_run or "").run.status is PipelineStatus.FAILED


def test_a_request_another_runner_holds_is_left_to_it_and_taken_over_once_it_is_gone(
    platform: Platform,
) -> None:
    import subprocess
    import sys

    from mintaka.processes import ProcessId, start_marker

    platform.pipelines.bind("m", tiny())
    request = platform.pipelines.request_retraining("m", "psi 0.5 > 0.2", trigger="drift")
    claim = platform.home / "pipelines" / "requests" / f"{request.id}.claim"
    other = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        holder = ProcessId(pid=other.pid, start=start_marker(other.pid))
        claim.write_text(holder.model_dump_json())
        assert platform.pipelines.process_requests(isolation="inline") == []  # it is theirs
        assert [r.status for r in platform.pipelines.requests()] == ["pending"]
        assert not [e for e in platform.audit.events() if e.action == "model.retrain"]
    finally:
        other.communicate(b"")  # the other runner dies without settling the request
    [(done, run)] = platform.pipelines.process_requests(isolation="inline")
    assert (done.id, done.status) == (request.id, "done")
    assert run is not None
    assert run.status is PipelineStatus.SUCCEEDED
    assert not claim.exists()  # released once settled


def test_of_two_runners_finding_a_dead_runners_claim_only_one_takes_it_over(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    import subprocess
    import sys

    from mintaka.pipelines import claims
    from mintaka.processes import ProcessId

    platform.pipelines.bind("m", tiny())
    request = platform.pipelines.request_retraining("m", "psi 0.5 > 0.2", trigger="drift")
    claim = platform.home / "pipelines" / "requests" / f"{request.id}.claim"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a runner that died holding the claim
    claim.write_text(ProcessId(pid=dead.pid, start="gone").model_dump_json())
    real = claims.running
    second: list[object] = []

    def interleaved(process: ProcessId) -> bool:
        alive = real(process)
        if not second:  # another runner reaches the same stale claim at this very moment
            second.append(None)
            second.append(platform.pipelines.process_requests(isolation="inline"))
        return alive

    monkeypatch.setattr(claims, "running", interleaved)
    [(done, run)] = platform.pipelines.process_requests(isolation="inline")
    assert second == [None, []]  # it left the claim to the runner taking it over
    assert (done.id, done.status) == (request.id, "done")
    assert run is not None
    assert len([e for e in platform.audit.events() if e.action == "model.retrain"]) == 1
    assert not claim.exists()


def held() -> PipelineSpec:
    """``tiny`` followed by a gate that holds while the fail flag exists."""
    return PipelineSpec(
        name="held",
        parameters={"n": 1},
        steps=[
            *tiny().steps,
            StepSpec(
                name="sign-off",
                entrypoint=f"{STEPS}:signed_off",
                gate=GateKind.DEPLOYMENT,
                inputs={"total": "produce.total"},
            ),
        ],
    )


@pytest.fixture
def hold(platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``m`` bound to ``held``; the sign-off gate holds while the returned file exists."""
    flag = tmp_path / "hold"
    flag.touch()
    monkeypatch.setenv("MINTAKA_TEST_FAIL_FLAG", str(flag))
    platform.pipelines.bind("m", held())
    return flag


def test_a_request_stopped_at_a_gate_waits_for_its_run_to_be_resumed(
    platform: Platform, hold: Path
) -> None:
    request = platform.pipelines.request_retraining("m", "psi 0.5 > 0.2", trigger="drift")
    [(waiting, none)] = platform.pipelines.process_requests(isolation="inline")
    assert none is None
    assert waiting.status == "waiting"
    assert "gate 'sign-off'" in waiting.outcome
    run_id = waiting.pipeline_run or ""
    assert platform.pipelines.get(run_id).run.status is PipelineStatus.FAILED
    # nothing changes until the run is resumed past its gate
    assert platform.pipelines.process_requests(isolation="inline") == []
    assert platform.pipelines.requests("waiting") == [waiting]

    hold.unlink()  # the sign-off arrives
    resumed = platform.pipelines.resume(run_id, isolation="inline")
    assert resumed.status is PipelineStatus.SUCCEEDED
    # Settled by the resume itself: it no longer holds off drift-triggered retraining.
    assert platform.pipelines.requests("waiting") == []
    [settled] = platform.pipelines.requests()
    assert (settled.id, settled.status) == (request.id, "done")
    assert settled.outcome == "succeeded after resuming"
    assert settled.pipeline_run == run_id
    assert platform.pipelines.process_requests(isolation="inline") == []


def test_a_merged_request_waits_on_the_same_run_and_is_settled_with_it(
    platform: Platform, hold: Path
) -> None:
    first = platform.pipelines.request_retraining("m", "psi 0.5 > 0.2", trigger="drift")
    second = platform.pipelines.request_retraining("m", "auc 0.6 < 0.7", trigger="performance")
    [(waiting, _)] = platform.pipelines.process_requests(isolation="inline")
    assert waiting.id == first.id
    merged = {r.id: r for r in platform.pipelines.requests()}[second.id]
    assert (merged.status, merged.pipeline_run) == ("waiting", waiting.pipeline_run)
    assert merged.outcome.startswith(f"merged into {first.id}: gate 'sign-off'")
    hold.unlink()
    platform.pipelines.resume(waiting.pipeline_run or "", isolation="inline")
    assert {r.status for r in platform.pipelines.requests()} == {"done"}


def test_a_request_an_evaluation_gate_refused_is_retried_by_the_next_one(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: ManualClock
) -> None:
    flag = tmp_path / "hold"
    flag.touch()
    monkeypatch.setenv("MINTAKA_TEST_FAIL_FLAG", str(flag))
    evaluated = held()
    evaluated.steps[-1].gate = GateKind.EVALUATION  # a champion not beaten, say
    platform.pipelines.bind("m", evaluated, retry_after="2h")
    first = platform.pipelines.request_retraining("m", "psi 0.5 > 0.2", trigger="drift")
    [(waiting, _)] = platform.pipelines.process_requests(isolation="inline")
    assert (waiting.gate, waiting.stopped_at) == ("evaluation", clock.now())
    assert platform.pipelines.holding("m") == waiting
    clock.advance(hours=2)
    assert platform.pipelines.holding("m") is None  # drift may ask again
    second = platform.pipelines.request_retraining("m", "psi 0.7 > 0.2", trigger="drift")
    [(again, _)] = platform.pipelines.process_requests(isolation="inline")  # refused again
    assert (again.id, again.status) == (second.id, "waiting")
    statuses = {r.id: (r.status, r.outcome) for r in platform.pipelines.requests()}
    assert statuses[first.id] == ("done", f"retried by {second.id}")


def test_a_merged_request_refused_by_an_evaluation_gate_holds_only_for_the_retry_time(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: ManualClock
) -> None:
    flag = tmp_path / "hold"
    flag.touch()
    monkeypatch.setenv("MINTAKA_TEST_FAIL_FLAG", str(flag))
    evaluated = held()
    evaluated.steps[-1].gate = GateKind.EVALUATION
    platform.pipelines.bind("m", evaluated, retry_after="2h")
    platform.pipelines.request_retraining("m", "psi 0.5 > 0.2", trigger="drift")
    second = platform.pipelines.request_retraining("m", "psi 0.6 > 0.2", trigger="drift")
    [(waiting, _)] = platform.pipelines.process_requests(isolation="inline")
    merged = {r.id: r for r in platform.pipelines.requests()}[second.id]
    assert (merged.gate, merged.stopped_at) == ("evaluation", waiting.stopped_at)
    clock.advance(hours=3)
    assert platform.pipelines.holding("m") is None  # neither holds drift off any longer
    third = platform.pipelines.request_retraining("m", "psi 0.7 > 0.2", trigger="drift")
    platform.pipelines.process_requests(isolation="inline")
    statuses = {r.id: (r.status, r.outcome) for r in platform.pipelines.requests()}
    assert statuses[second.id] == ("done", f"retried by {third.id}")


def test_a_request_waiting_for_a_sign_off_holds_until_it_is_settled(
    platform: Platform, hold: Path, clock: ManualClock
) -> None:
    platform.pipelines.request_retraining("m", "psi 0.5 > 0.2", trigger="drift")
    [(waiting, _)] = platform.pipelines.process_requests(isolation="inline")
    assert waiting.gate == "deployment"
    clock.advance(days=30)
    assert platform.pipelines.holding("m") == waiting


def test_a_retry_time_is_a_span(platform: Platform) -> None:
    with pytest.raises(ValidationError, match="retry_after: 'soon': use a number and m, h or d"):
        platform.pipelines.bind("m", tiny(), retry_after="soon")
    with pytest.raises(ValidationError, match="retry_after: '0h' must be positive"):
        platform.pipelines.bind("m", tiny(), retry_after="0h")


def test_a_request_whose_run_succeeded_unsettled_is_settled_by_the_next_pass(
    platform: Platform, hold: Path
) -> None:
    platform.pipelines.request_retraining("m", "psi 0.5 > 0.2", trigger="drift")
    [(waiting, _)] = platform.pipelines.process_requests(isolation="inline")
    hold.unlink()
    run_id = waiting.pipeline_run or ""
    platform.pipelines.executor(isolation="inline").resume(run_id)  # e.g. a process that died
    assert platform.pipelines.requests("waiting") == [waiting]
    [(settled, run)] = platform.pipelines.process_requests(isolation="inline")
    assert (settled.status, settled.outcome) == ("done", "succeeded after resuming")
    assert run is not None
    assert run.id == run_id


def test_a_later_retraining_supersedes_a_waiting_request(platform: Platform, hold: Path) -> None:
    first = platform.pipelines.request_retraining("m", "psi 0.5 > 0.2", trigger="drift")
    platform.pipelines.process_requests(isolation="inline")
    hold.unlink()
    second = platform.pipelines.request_retraining("m", "psi 0.7 > 0.2", trigger="drift")
    [(done, run)] = platform.pipelines.process_requests(isolation="inline")
    assert (done.id, done.status) == (second.id, "done")
    assert run is not None
    assert run.status is PipelineStatus.SUCCEEDED
    statuses = {r.id: (r.status, r.outcome) for r in platform.pipelines.requests()}
    assert statuses[first.id] == ("done", f"superseded by run {run.id}")


def test_a_retraining_by_hand_settles_the_waiting_request(platform: Platform, hold: Path) -> None:
    platform.pipelines.request_retraining("m", "psi 0.5 > 0.2", trigger="drift")
    [(waiting, _)] = platform.pipelines.process_requests(isolation="inline")
    hold.unlink()
    run = platform.pipelines.retrain("m", "fresh labels", isolation="inline")
    assert platform.pipelines.requests("waiting") == []
    [settled] = platform.pipelines.requests()
    assert (settled.id, settled.status) == (waiting.id, "done")
    assert settled.outcome == f"superseded by run {run.id}"
    # so a drift alert can queue a retraining again
    again = platform.pipelines.request_retraining("m", "psi 0.6 > 0.2", trigger="drift")
    [(done, _)] = platform.pipelines.process_requests(isolation="inline")
    assert (done.id, done.status) == (again.id, "done")


def test_a_binding_holding_a_number_for_a_text_parameter_still_retrains(
    platform: Platform,
) -> None:
    """A binding stored before values were coerced holds a number as given for a parameter
    declared as text: it retrains with that number's text, which is what is audited."""
    spec = PipelineSpec(
        name="loose",
        parameters={"value": "x"},
        steps=[
            StepSpec(name="kind", entrypoint=f"{STEPS}:kind_of", inputs={"value": "params.value"})
        ],
    )
    platform.pipelines.bind("m", spec)
    path = platform.pipelines.root / "training" / "m.json"
    stored = json.loads(path.read_text())
    stored["parameters"] = {"value": 2024}
    path.write_text(json.dumps(stored))
    run = platform.pipelines.retrain("m", "because", isolation="inline")
    assert (run.status, run.steps[0].outputs) == (PipelineStatus.SUCCEEDED, {"kind": "str"})
    assert run.parameters == {"value": "2024"}
    [event] = [e for e in platform.audit.events() if e.action == "model.retrain"]
    assert event.details["parameters"] == {"value": "2024"}


@pytest.mark.parametrize(
    ("stored", "meant"),
    [(1, True), (0, False), ("yes", True), ("On", True), ("f", False), ("0", False)],
)
def test_a_binding_holding_a_bool_as_given_before_coercion_still_retrains(
    platform: Platform, stored: object, meant: bool
) -> None:
    """A binding stored before values were coerced holds a bool parameter's value as given, in
    any spelling pydantic's lax bool took: it retrains with the bool it meant. A value given
    now still takes only ``true`` or ``false``."""
    spec = PipelineSpec(
        name="loose",
        parameters={"value": 3, "early": False},
        steps=[
            StepSpec(name="kind", entrypoint=f"{STEPS}:kind_of", inputs={"value": "params.value"})
        ],
    )
    platform.pipelines.bind("m", spec)
    path = platform.pipelines.root / "training" / "m.json"
    binding = json.loads(path.read_text())
    binding["parameters"] = {"early": stored}
    path.write_text(json.dumps(binding))
    run = platform.pipelines.retrain("m", "drift alert", isolation="inline")
    assert (run.status, run.parameters["early"]) == (PipelineStatus.SUCCEEDED, meant)
    with pytest.raises(ValidationError, match="parameter 'early' is declared as bool"):
        platform.pipelines.retrain("m", "again", parameters={"early": stored})


def test_a_binding_holding_no_bool_for_a_bool_parameter_is_refused(platform: Platform) -> None:
    spec = PipelineSpec(
        name="loose",
        parameters={"value": 3, "early": False},
        steps=[
            StepSpec(name="kind", entrypoint=f"{STEPS}:kind_of", inputs={"value": "params.value"})
        ],
    )
    platform.pipelines.bind("m", spec)
    path = platform.pipelines.root / "training" / "m.json"
    binding = json.loads(path.read_text())
    binding["parameters"] = {"early": 2}
    path.write_text(json.dumps(binding))
    with pytest.raises(ValidationError, match="parameter 'early' is declared as bool"):
        platform.pipelines.retrain("m", "drift alert", isolation="inline")


def test_a_refused_retraining_records_nothing(platform: Platform) -> None:
    platform.pipelines.bind("m", tiny())
    before = len(platform.audit.events())
    with pytest.raises(ValidationError, match="declares no parameters"):
        platform.pipelines.retrain("m", "because", parameters={"x": 1})
    assert len(platform.audit.events()) == before
    assert platform.pipelines.runs() == []


def test_a_request_another_runner_settled_after_this_one_listed_it_is_not_run_again(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mintaka.pipelines.service import PipelineService

    platform.pipelines.bind("m", tiny())
    platform.pipelines.request_retraining("m", "psi 0.5 > 0.2", trigger="drift")
    platform.pipelines.request_retraining("m", "psi 0.6 > 0.2", trigger="drift")
    stale = platform.pipelines.requests("pending")
    platform.pipelines.process_requests(isolation="inline")  # the other runner, finished
    settled = platform.pipelines.requests()
    listed = PipelineService.requests

    def listing(self: PipelineService, status: str | None = None) -> list[object]:
        return list(stale) if status == "pending" else listed(self, status)

    monkeypatch.setattr(PipelineService, "requests", listing)
    assert platform.pipelines.process_requests(isolation="inline") == []
    monkeypatch.undo()
    assert platform.pipelines.requests() == settled
    assert len([e for e in platform.audit.events() if e.action == "model.retrain"]) == 1


def test_a_schedule_makes_a_model_due(platform: Platform, clock: ManualClock) -> None:
    platform.pipelines.bind("m", tiny(), every="7d")
    platform.pipelines.bind("unscheduled", tiny())
    assert platform.pipelines.due() == []
    clock.advance(days=7)
    assert platform.pipelines.due() == ["m"]
    [scheduled] = platform.pipelines.run_due(isolation="inline")
    assert (scheduled.model, scheduled.error) == ("m", "")
    assert scheduled.run is not None
    assert platform.pipelines.get(scheduled.run.id).trigger == "schedule"
    assert platform.pipelines.due() == []
    clock.advance(days=6)
    assert platform.pipelines.due() == []


def test_a_model_held_at_a_gate_does_not_stop_the_other_due_models(
    platform: Platform, clock: ManualClock, hold: Path
) -> None:
    platform.pipelines.bind("m", held(), every="1d")  # held at its sign-off gate
    platform.pipelines.bind("n", tiny(), every="1d")
    clock.advance(days=1)
    held_one, ran = platform.pipelines.run_due(isolation="inline")
    assert (held_one.model, held_one.run) == ("m", None)
    assert "gate 'sign-off'" in held_one.error
    assert ran.model == "n"
    assert ran.run is not None
    assert ran.run.status is PipelineStatus.SUCCEEDED


def test_an_unexpected_error_in_one_model_does_not_stop_the_others(
    platform: Platform, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = platform.pipelines.run

    def run(spec: PipelineSpec, parameters: Any = None, **options: Any) -> PipelineRun:
        if options.get("model") == "a":  # a full disk, say, or a bug in a's own code
            raise OSError("No space left on device")
        return real(spec, parameters, **options)

    monkeypatch.setattr(platform.pipelines, "run", run)
    platform.pipelines.bind("a", tiny(), every="1d")
    platform.pipelines.bind("b", tiny(), every="1d")
    clock.advance(days=1)
    broken, ran = platform.pipelines.run_due(isolation="inline")
    assert (broken.model, broken.run, broken.error) == (
        "a",
        None,
        "OSError: No space left on device",
    )
    assert ran.model == "b"
    assert ran.run is not None
    assert ran.run.status is PipelineStatus.SUCCEEDED
    platform.pipelines.request_retraining("a", "psi 0.5 > 0.2", trigger="drift")
    platform.pipelines.request_retraining("b", "psi 0.5 > 0.2", trigger="drift")
    (failed, none), (done, after) = platform.pipelines.process_requests(isolation="inline")
    assert (failed.model, failed.status, none) == ("a", "failed", None)
    assert failed.outcome == "OSError: No space left on device"
    assert (done.model, done.status) == ("b", "done")
    assert after is not None


def test_a_schedule_too_long_for_a_time_span_is_refused(platform: Platform) -> None:
    with pytest.raises(ValidationError, match="too long"):
        platform.pipelines.bind("m", tiny(), every="99999999999999999999d")
    with pytest.raises(ValidationError, match="too long"):
        parse_every("9" * 5000 + "m")  # more digits than int() reads from text
    assert parse_every(f"{timedelta.max.days}d") == timedelta(days=timedelta.max.days)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30) | st.from_regex(r"\A[0-9]{1,30}[mhd]\Z"))
def test_a_schedule_is_a_positive_span_or_a_validation_error(text: str) -> None:
    try:
        span = parse_every(text)
    except ValidationError:
        return
    assert span > timedelta(0)


def test_superseded_versions_retire_after_the_policy_grace_period(
    platform: Platform, clock: ManualClock, make_artifact: MakeArtifact
) -> None:
    for content in (b"v1", b"v2", b"v3", b"v4"):
        platform.register_model("m", make_artifact(content), tier="low")
    platform.set_alias("m", "stable", 2)
    platform.set_alias("m", "champion", 4)
    assert platform.pipelines.retire_superseded("m") == []  # 30-day grace (default policy)
    clock.advance(days=31)
    retired = platform.pipelines.retire_superseded("m")
    assert [v.version for v in retired] == [1, 3]
    assert all(v.stage is Stage.ARCHIVED for v in retired)
    kept = {v.version: v.stage for v in platform.list_versions("m")}
    assert kept[2] is not Stage.ARCHIVED
    assert kept[4] is not Stage.ARCHIVED
    reasons = [
        e.details.get("reason", "") for e in platform.audit.events() if e.action == "model.archive"
    ]
    assert len(reasons) == 2
    assert all("superseded by m:4 (champion)" in r and "30-day grace" in r for r in reasons)
    assert platform.pipelines.retire_superseded("m") == []


def test_the_grace_period_runs_from_when_the_alias_moved_not_from_the_registration(
    platform: Platform, clock: ManualClock, make_artifact: MakeArtifact
) -> None:
    for content in (b"v1", b"v2"):
        platform.register_model("m", make_artifact(content), tier="low")
    platform.set_alias("m", "champion", 1)
    clock.advance(days=60)  # v2 waited two months as a challenger
    platform.set_alias("m", "champion", 2)
    assert platform.pipelines.retire_superseded("m") == []  # v1 was champion until just now
    clock.advance(days=29)
    assert platform.pipelines.retire_superseded("m") == []
    clock.advance(days=2)
    assert [v.version for v in platform.pipelines.retire_superseded("m")] == [1]


def test_which_production_models_used_a_data_source(
    platform: Platform, tmp_path: Path, make_artifact: MakeArtifact, clock: ManualClock
) -> None:
    first = tmp_path / "x1.csv"
    first.write_text("a,b\n1,2\n")
    second = tmp_path / "x2.csv"
    second.write_text("a,b\n3,4\n")
    d1 = platform.register_dataset("source-x", first)
    clock.advance(minutes=1)
    d2 = platform.register_dataset("source-x", second)

    def trained(name: str, dataset: str, content: bytes) -> int:
        run = platform.start_run(name, dataset_ids=[dataset])
        platform.end_run(run.id)
        return platform.register_model(name, make_artifact(content), run_id=run.id).version

    trained("a", d1.id, b"a1")
    trained("a", d2.id, b"a2")
    trained("b", d1.id, b"b1")
    trained("c", d2.id, b"c1")
    platform.set_alias("a", "champion", 1)
    platform.set_stage("c", 1, "production")
    graph = platform.lineage_downstream("source-x", stage="production")
    labels = sorted(n.label for n in graph.nodes if n.kind.value == "model_version")
    assert labels == ["a:1", "c:1"]
    from_first = platform.lineage_downstream(d1.id)
    assert sorted(n.label for n in from_first.nodes if n.kind.value == "model_version") == [
        "a:1",
        "b:1",
    ]
    with pytest.raises(ValidationError):
        platform.lineage_downstream("source-x", stage="live")
    # By name, without a stage, from every version of the dataset too.
    every = platform.lineage_downstream("source-x")
    assert sorted(n.label for n in every.nodes if n.kind.value == "model_version") == [
        "a:1",
        "a:2",
        "b:1",
        "c:1",
    ]
    assert every.root == f"dataset:{d2.id}"
