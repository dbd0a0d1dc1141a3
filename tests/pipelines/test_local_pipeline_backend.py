"""The local backend's pipelines: a submitted run carried out by a detached worker process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mintaka import Platform
from mintaka.domain.pipelines import NativePipeline, PipelineRun, PipelineSpec, PipelineStatus
from mintaka.domain.pipelines import StepSpec as Step
from mintaka.errors import NotFound, ValidationError
from mintaka.local.backend import LocalBackend
from mintaka.local.pipelines import WorkerProcess, alive, start_marker

ENDED = {PipelineStatus.SUCCEEDED, PipelineStatus.FAILED, PipelineStatus.STOPPED}


def waiting_pipeline() -> PipelineSpec:
    return PipelineSpec(
        name="wait-once",
        parameters={"folder": ""},
        steps=[
            Step(
                name="wait",
                entrypoint="detached_steps:wait_for_release",
                inputs={"folder": "params.folder"},
            )
        ],
    )


def until(condition: Callable[[], bool], what: str) -> None:
    """Poll ``condition`` (a worker takes about a second to start) with tiny sleeps."""
    deadline = time.monotonic() + 60
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.fixture
def local(platform: Platform) -> Iterator[LocalBackend]:
    backend = platform.backend
    assert isinstance(backend, LocalBackend)
    yield backend
    for run in backend.list_pipeline_runs():  # no worker outlives the test
        backend.stop_pipeline_run(run.id)


def ended(local: LocalBackend, run_id: str) -> PipelineRun:
    found: list[PipelineRun] = []

    def check() -> bool:
        found[:] = [local.get_pipeline_run(run_id)]
        return found[0].status in ENDED

    until(check, f"run {run_id} to end")
    return found[0]


def test_a_held_run_runs_when_released_and_reads_back_succeeded(
    platform: Platform, local: LocalBackend, tmp_path: Path
) -> None:
    local.hold_next_run("wait-once")
    run = platform.pipelines.submit(waiting_pipeline(), {"folder": str(tmp_path)})
    assert run.status is PipelineStatus.PENDING
    assert run.parameters == {"folder": str(tmp_path)}
    assert run.started_at == platform.clock.now()  # not started yet: the submission time
    until(lambda: local.get_pipeline_run(run.id).status is PipelineStatus.RUNNING, "the worker")
    assert [s.status for s in local.get_pipeline_run(run.id).steps] == [PipelineStatus.PENDING]
    assert not (tmp_path / "started").exists()  # held before its first step

    local.release_pipeline_run(run.id)
    until((tmp_path / "started").exists, "the step to start")
    (tmp_path / "release").write_text("")
    done = ended(local, run.id)
    assert done.status is PipelineStatus.SUCCEEDED, done.failure_reason
    assert done.parameters == {"folder": str(tmp_path)}
    assert done.ended_at is not None
    assert done.ended_at >= done.started_at
    assert [(s.name, s.status, s.outputs) for s in done.steps] == [
        ("wait", PipelineStatus.SUCCEEDED, {"waited": True})
    ]
    # The worker ran the local executor under the submitted id, with its lineage and audit.
    assert platform.pipelines.get(run.id).run.status is PipelineStatus.SUCCEEDED
    actions = [e.action for e in platform.audit.events() if e.subject == run.id]
    assert actions == ["pipeline.submit", "pipeline.start", "pipeline.link", "pipeline.succeeded"]
    assert {e.actor for e in platform.audit.events() if e.subject == run.id} == {"alice"}
    assert platform.lineage.node(f"pipeline_run:{run.id}").attrs["pipeline"] == "wait-once"

    local.stop_pipeline_run(run.id)  # an ended run: nothing changes
    assert local.get_pipeline_run(run.id) == done


def test_stopping_a_run_in_a_step_ends_the_step_and_records_it_stopped(
    platform: Platform, local: LocalBackend, tmp_path: Path
) -> None:
    run = platform.pipelines.submit(waiting_pipeline(), {"folder": str(tmp_path)})
    until((tmp_path / "started").exists, "the step to start")
    step_process = WorkerProcess(pid=int((tmp_path / "started").read_text()))
    local.stop_pipeline_run(run.id)
    stopped = local.get_pipeline_run(run.id)
    assert stopped.status is PipelineStatus.STOPPED
    assert [s.status for s in stopped.steps] == [PipelineStatus.STOPPED]
    assert not alive(step_process)
    assert platform.pipelines.get(run.id).run.status is PipelineStatus.STOPPED
    assert "pipeline.stopped" in [e.action for e in platform.audit.events() if e.subject == run.id]


def test_a_worker_that_died_without_recording_an_end_reads_back_failed(
    local: LocalBackend,
) -> None:
    spec = waiting_pipeline()
    local.hold_next_run(spec.name)
    run = local.submit(local.compile(spec), {})
    os.killpg(int(run.backend_ids["pid"]), signal.SIGKILL)
    failed = ended(local, run.id)
    assert failed.status is PipelineStatus.FAILED
    assert failed.failure_reason is not None
    assert "ended without recording how the run ended" in failed.failure_reason
    assert local.get_pipeline_run(run.id) == failed  # settled once, not re-decided per read


def test_a_killed_workers_run_reads_back_failed_in_mintaka_too_and_resumes(
    platform: Platform, local: LocalBackend, tmp_path: Path
) -> None:
    from mintaka.errors import Conflict

    run = platform.pipelines.submit(waiting_pipeline(), {"folder": str(tmp_path)})
    until((tmp_path / "started").exists, "the step to start")
    with pytest.raises(Conflict, match="is running in process"):
        platform.pipelines.resume(run.id)  # never two processes on one run
    os.killpg(int(run.backend_ids["pid"]), signal.SIGKILL)
    ended(local, run.id)
    # Two readers that both loaded the stale "running" state: both see it failed, one records it.
    from mintaka.pipelines.local import RunState

    stale = (platform.home / "pipelines" / "runs" / f"{run.id}.json").read_text()
    executor = platform.pipelines.executor()
    readers = [executor._settled(RunState.model_validate_json(stale)) for _ in range(2)]
    assert [r.run.status for r in readers] == [PipelineStatus.FAILED] * 2
    state = platform.pipelines.get(run.id)
    assert state.run.status is PipelineStatus.FAILED
    assert state.run.failure_reason is not None
    assert "interrupted: the process running it" in state.run.failure_reason
    assert [s.status for s in state.run.steps] == [PipelineStatus.FAILED]
    listed = {r.id: r.status for r in platform.pipelines.runs()}
    assert listed[run.id] is PipelineStatus.FAILED
    failed = [e for e in platform.audit.events() if e.subject == run.id]
    assert [e.action for e in failed].count("pipeline.failed") == 1  # recorded once, by one reader

    (tmp_path / "release").write_text("")
    resumed = platform.pipelines.resume(run.id)  # in this process, from the interrupted step
    assert resumed.status is PipelineStatus.SUCCEEDED
    assert platform.pipelines.get(run.id).run.status is PipelineStatus.SUCCEEDED


def test_a_worker_killed_after_a_stop_request_reads_back_stopped_in_mintaka_too(
    platform: Platform, local: LocalBackend, tmp_path: Path
) -> None:
    """What stop_pipeline_run does when the worker outlives SIGTERM: the request, then
    SIGKILL; the run then reads back stopped in the backend and in Mintaka's own state."""
    from mintaka.local.pipelines import STOP

    run = platform.pipelines.submit(waiting_pipeline(), {"folder": str(tmp_path)})
    until((tmp_path / "started").exists, "the step to start")
    folder = local._folder(run.id)
    (folder / STOP).write_text("{}")  # the request, as stop_pipeline_run records it
    os.killpg(int(run.backend_ids["pid"]), signal.SIGKILL)
    assert ended(local, run.id).status is PipelineStatus.STOPPED
    state = platform.pipelines.get(run.id)
    assert (state.run.status, state.run.failure_reason) == (
        PipelineStatus.STOPPED,
        "stopped on request",
    )
    assert [s.status for s in state.run.steps] == [PipelineStatus.STOPPED]
    actions = [e.action for e in platform.audit.events() if e.subject == run.id]
    assert actions.count("pipeline.stopped") == 1


def test_a_run_whose_steps_do_not_fit_reads_back_failed_with_the_reason(
    local: LocalBackend,
) -> None:
    spec = PipelineSpec(
        name="untyped", steps=[Step(name="loose", entrypoint="pipeline_steps:untyped")]
    )
    failed = ended(local, local.submit(local.compile(spec), {}).id)
    assert failed.status is PipelineStatus.FAILED
    assert failed.failure_reason is not None
    assert "must be annotated" in failed.failure_reason


def test_bad_input_is_refused_before_any_worker_starts(local: LocalBackend) -> None:
    spec = waiting_pipeline()
    native = local.compile(spec)
    with pytest.raises(ValidationError, match="declares no parameters"):
        local.submit(native, {"nope": "1"})
    with pytest.raises(ValidationError, match="not strings"):
        local.submit(native, {"folder": 3})  # type: ignore[dict-item]
    with pytest.raises(ValidationError, match="format"):
        local.submit(native.model_copy(update={"format": "sagemaker-pipeline/1"}), {})
    with pytest.raises(ValidationError, match="carries the definition"):
        local.submit(native.model_copy(update={"pipeline": "other"}), {})
    with pytest.raises(ValidationError):
        local.submit(NativePipeline(pipeline="x", format=native.format, definition={}), {})
    assert local.list_pipeline_runs() == []
    with pytest.raises(NotFound):
        local.get_pipeline_run("../../etc")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="start markers come from /proc")
def test_a_pid_another_process_took_is_not_the_worker() -> None:
    me = os.getpid()
    assert alive(WorkerProcess(pid=me, start=start_marker(me)))
    assert not alive(WorkerProcess(pid=me, start="a-process-started-at-another-time"))


def test_the_conformance_pipeline_runs_to_the_end(local: LocalBackend) -> None:
    from mintaka_conformance.suite.pipelines import two_step_pipeline

    run = local.submit(local.compile(two_step_pipeline()), {"max_depth": "7"})
    done = ended(local, run.id)
    assert done.status is PipelineStatus.SUCCEEDED, done.failure_reason
    assert [(s.name, s.status) for s in done.steps] == [
        ("train", PipelineStatus.SUCCEEDED),
        ("evaluate", PipelineStatus.SUCCEEDED),
    ]


def _credit_up_to_evaluation(data: Path) -> PipelineSpec:
    from mintaka.demo_pipeline import credit_pipeline

    full = credit_pipeline(data=str(data), max_expected_cost=0.0)
    names = ("ingest", "validate-data", "train", "evaluate")
    return full.model_copy(update={"steps": [s for s in full.steps if s.name in names]})


@pytest.mark.parametrize("recorded_by_an_older_release", [True, False])
def test_a_zero_limit_of_a_submission_reads_as_the_release_that_queued_it_meant(
    platform: Platform, local: LocalBackend, tmp_path: Path, recorded_by_an_older_release: bool
) -> None:
    """A submission queued by a release that read a 0 limit as none keeps that meaning when a
    newer worker carries it out; one queued now holds the model to the limit of 0."""
    import json

    from mintaka import GateFailed
    from mintaka.demo import COSTS, write_dataset
    from mintaka.local.pipeline_worker import _run
    from mintaka.local.pipelines import SUBMISSION, Submission

    platform.create_model("credit-default", tier="high")
    platform.serving.declare_business_metric("credit-default", COSTS)
    spec = _credit_up_to_evaluation(write_dataset(tmp_path / "credit.csv", rows=600))
    local.hold_next_run(spec.name)
    held = platform.pipelines.submit(spec)  # held, then stopped: only its submission is read
    folder = local.path / "pipelines" / "runs" / held.id
    record = json.loads((folder / SUBMISSION).read_text())
    assert record["explicit_limits"] is True
    local.stop_pipeline_run(held.id)
    ended(local, held.id)
    if recorded_by_an_older_release:
        del record["explicit_limits"]
    record["id"] = "prun-queued"
    queued = tmp_path / "queued"
    queued.mkdir()
    (queued / SUBMISSION).write_text(json.dumps(record))
    submission = Submission.model_validate_json((queued / SUBMISSION).read_text())
    if not recorded_by_an_older_release:
        with pytest.raises(GateFailed, match="expected_cost"):
            _run(queued, submission)
        return
    _run(queued, submission)
    evaluate = next(
        s for s in platform.pipelines.get("prun-queued").run.steps if s.name == "evaluate"
    )
    assert evaluate.gate is not None
    assert not [c for c in evaluate.gate.checks if c.name.startswith("expected_cost")]


def _stopped_in_its_step(platform: Platform, local: LocalBackend, folder: Path) -> str:
    """A submitted run stopped in its step, its step ready to be let go when resumed."""
    run = platform.pipelines.submit(waiting_pipeline(), {"folder": str(folder)})
    until((folder / "started").exists, "the step to start")
    local.stop_pipeline_run(run.id)
    assert local.get_pipeline_run(run.id).status is PipelineStatus.STOPPED
    (folder / "started").unlink()
    return run.id


def test_a_stopped_run_resumed_reads_back_as_its_resume_ended(
    platform: Platform, local: LocalBackend, tmp_path: Path
) -> None:
    run_id = _stopped_in_its_step(platform, local, tmp_path)
    (tmp_path / "release").write_text("")
    assert platform.pipelines.resume(run_id).status is PipelineStatus.SUCCEEDED
    found = local.get_pipeline_run(run_id)
    assert (found.status, found.failure_reason) == (PipelineStatus.SUCCEEDED, None)
    assert platform.pipelines.status(run_id).run.status is PipelineStatus.SUCCEEDED


def _resuming(platform: Platform, run_id: str) -> subprocess.Popen[bytes]:
    """Another process resuming ``run_id``, as ``mintaka pipeline resume`` does."""
    code = (
        "import sys\nfrom mintaka import Platform\n"
        "with Platform(sys.argv[1], actor='alice') as platform:\n"
        "    platform.pipelines.resume(sys.argv[2])\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    return subprocess.Popen(
        [sys.executable, "-c", code, str(platform.home), run_id],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def test_a_stop_of_a_resumed_run_stops_the_process_resuming_it(
    platform: Platform, local: LocalBackend, tmp_path: Path
) -> None:
    run_id = _stopped_in_its_step(platform, local, tmp_path)
    resuming = _resuming(platform, run_id)
    try:
        until((tmp_path / "started").exists, "the resumed step to start")
        assert local.get_pipeline_run(run_id).status is PipelineStatus.RUNNING
        local.stop_pipeline_run(run_id)
        assert resuming.wait(10) != 0
    finally:
        resuming.kill()
        resuming.wait()
    stopped = local.get_pipeline_run(run_id)
    assert (stopped.status, stopped.failure_reason) == (
        PipelineStatus.STOPPED,
        "stopped on request",
    )
    assert platform.pipelines.get(run_id).run.status is PipelineStatus.STOPPED


PAUSING_AT_THE_STOP_REQUEST = """
import pathlib, sys, time
from mintaka import Platform
folder, when = pathlib.Path(sys.argv[3]), sys.argv[4]
clear = pathlib.Path.unlink
def unlink(path, missing_ok=False):
    if path.name != "stop.json":
        return clear(path, missing_ok=missing_ok)
    if when == "after":
        clear(path, missing_ok=missing_ok)
    (folder / "paused").write_text("")
    while not (folder / "go").exists():
        time.sleep(0.01)
    if when == "before":
        clear(path, missing_ok=missing_ok)
pathlib.Path.unlink = unlink
with Platform(sys.argv[1], actor="alice") as platform:
    platform.pipelines.resume(sys.argv[2])
"""


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_stop_while_a_resume_clears_the_earlier_stop_request_stops_the_resumed_run(
    platform: Platform, local: LocalBackend, tmp_path: Path, when: str
) -> None:
    """The process resuming a stopped run is held just before (or after) it clears the stop
    that was carried out; a stop asked for then stops the resumed run as any later one does."""
    run_id = _stopped_in_its_step(platform, local, tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    resuming = subprocess.Popen(
        [
            sys.executable,
            "-c",
            PAUSING_AT_THE_STOP_REQUEST,
            str(platform.home),
            run_id,
            str(tmp_path),
            when,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        until((tmp_path / "paused").exists, "the resume to clear the stop request")
        local.stop_pipeline_run(run_id)
        (tmp_path / "go").write_text("")
        (tmp_path / "release").write_text("")  # a resume the stop missed runs to its end
        resuming.wait(60)
    finally:
        resuming.kill()
        resuming.wait()
    assert local.get_pipeline_run(run_id).status is PipelineStatus.STOPPED
    assert platform.pipelines.get(run_id).run.status is PipelineStatus.STOPPED


def test_a_resumed_run_whose_process_died_reads_back_failed_not_stopped(
    platform: Platform, local: LocalBackend, tmp_path: Path
) -> None:
    run_id = _stopped_in_its_step(platform, local, tmp_path)
    resuming = _resuming(platform, run_id)
    try:
        until((tmp_path / "started").exists, "the resumed step to start")
    finally:
        resuming.kill()
        resuming.wait()
        (tmp_path / "release").write_text("")  # whatever of it outlived it ends too
    state = platform.pipelines.get(run_id)
    assert state.run.status is PipelineStatus.FAILED
    assert "interrupted: the process running it" in (state.run.failure_reason or "")
    found = local.get_pipeline_run(run_id)
    assert found.status is PipelineStatus.FAILED
    assert "interrupted" in (found.failure_reason or "")
