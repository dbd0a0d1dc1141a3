"""Pipelines compiled to Databricks Jobs 2.2: one task per step, ``depends_on`` for the edges.

Each task runs ``settings.step_runner`` (a Python file in the workspace) on serverless compute
with the ``mintaka`` package installed, passing the step's entry point and the pipeline's
parameters, which become job parameters. A pipeline is one job named ``mintaka/<pipeline>``
(created, or reset to the compiled definition, on submit); a submit is a ``run-now`` with an
idempotency token, so a retried request whose answer was lost starts no second run. The job runs
one run at a time (``max_concurrent_runs: 1``, no queue): Databricks skips a run started while
another is active, and a submit then fails with ``Conflict`` naming the active run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mintaka.domain.pipelines import (
    NativePipeline,
    PipelineRun,
    PipelineSpec,
    PipelineStatus,
    StepRun,
)
from mintaka.errors import BackendError, Conflict, NotFound
from mintaka.interfaces import PipelineExecution
from mintaka.pipelines.contract import refuse_controller_step
from mintaka_databricks.errors import BACKEND
from mintaka_databricks.workspace import WorkspaceAccess

FORMAT = "databricks-jobs-2.2"
JOB_PREFIX = "mintaka/"
PIPELINE_TAG = "mintaka-pipeline"
ENVIRONMENT = "mintaka"

_ACTIVE = {"PENDING", "QUEUED", "BLOCKED", "WAITING_FOR_RETRY"}
_RUNNING = {"RUNNING", "TERMINATING"}


def _status(life_cycle: str | None, result: str | None) -> PipelineStatus:
    if life_cycle in _ACTIVE or life_cycle is None:
        return PipelineStatus.PENDING
    if life_cycle in _RUNNING:
        return PipelineStatus.RUNNING
    if result == "SUCCESS":
        return PipelineStatus.SUCCEEDED
    if result in ("CANCELED", "UPSTREAM_CANCELED"):
        return PipelineStatus.STOPPED
    return PipelineStatus.FAILED


_NOT_STARTED = {"UPSTREAM_FAILED", "EXCLUDED", "SKIPPED"}
_LIMIT_REACHED = "MAXIMUM_CONCURRENT_RUNS_REACHED"


def _never_ran(life_cycle: str | None, result: str | None) -> bool:
    """Whether a task was skipped (its upstream failed, or ``run_if`` left it out): it never
    started, so it is no step of the run, neither failed nor pending."""
    return life_cycle == "SKIPPED" or result in _NOT_STARTED


def _skipped_at_limit(raw: dict[str, Any]) -> bool:
    """Whether Databricks skipped run ``raw`` because its job had its maximum of runs active
    (a run's own ``SKIPPED`` life cycle means nothing else)."""
    state = raw.get("state") or {}
    return state.get("life_cycle_state") == "SKIPPED" or state.get("result_state") == _LIMIT_REACHED


def _time(ms: int | None) -> datetime | None:
    return None if not ms else datetime.fromtimestamp(ms / 1000, tz=UTC)


class JobsPipelines(WorkspaceAccess, PipelineExecution):
    """``Capability.PIPELINES`` over Databricks Jobs."""

    def compile(self, spec: PipelineSpec) -> NativePipeline:
        for step in spec.steps:
            refuse_controller_step(step, "databricks", "Databricks")
        tasks = []
        for step in spec.steps:
            arguments = [
                "--pipeline",
                spec.name,
                "--step",
                step.name,
                "--entrypoint",
                step.entrypoint,
            ]
            for key in spec.parameters:
                arguments.append(f"--param={key}={{{{job.parameters.{key}}}}}")
            # Wired inputs as dynamic value references: a parameter, or a value an upstream task
            # set with dbutils.jobs.taskValues.
            for field, (source, name) in step.references().items():
                reference = (
                    f"job.parameters.{name}"
                    if source == "params"
                    else f"tasks.{source}.values.{name}"
                )
                arguments.append(f"--input={field}={{{{{reference}}}}}")
            task: dict[str, Any] = {
                "task_key": step.name,
                "depends_on": [{"task_key": upstream} for upstream in step.upstream()],
                "spark_python_task": {
                    "python_file": self.settings.step_runner,
                    "parameters": arguments,
                },
                "environment_key": ENVIRONMENT,
            }
            if step.gate is not None:
                task["description"] = f"gate: {step.gate.value}"
            tasks.append(task)
        definition: dict[str, Any] = {
            "name": JOB_PREFIX + spec.name,
            "tags": {PIPELINE_TAG: spec.name},
            "tasks": tasks,
            "parameters": [
                {"name": key, "default": str(value)} for key, value in spec.parameters.items()
            ],
            "environments": [
                {
                    "environment_key": ENVIRONMENT,
                    "spec": {"client": "2", "dependencies": ["mintaka"]},
                }
            ],
            "max_concurrent_runs": 1,
        }
        return NativePipeline(pipeline=spec.name, format=FORMAT, definition=definition)

    def _job_ids(self, name: str) -> list[int]:
        jobs = self._call(f"finding job {name}", lambda: list(self.client.jobs.list(name=name)))
        return sorted(int(j.job_id) for j in jobs if j.job_id is not None)

    def _ensure_job(self, pipeline: NativePipeline) -> int:
        """The pipeline's job, created or reset to ``pipeline``; duplicates (a create retried
        after its answer was lost) are deleted, keeping the oldest."""
        from databricks.sdk.service.jobs import JobSettings

        settings = JobSettings.from_dict(dict(pipeline.definition))
        name = str(pipeline.definition["name"])
        found = self._job_ids(name)
        if found:
            job_id = found[0]
            self._call(
                f"updating job {name}",
                lambda: self.client.jobs.reset(job_id, new_settings=settings),
            )
        else:
            self._call(
                f"creating job {name}",
                lambda: self.client.jobs.create(
                    name=settings.name,
                    tags=settings.tags,
                    tasks=settings.tasks,
                    parameters=settings.parameters,
                    environments=settings.environments,
                    max_concurrent_runs=settings.max_concurrent_runs,
                ),
            )
            found = self._job_ids(name)
            if not found:
                raise BackendError(f"job {name!r} was created but is not listed", BACKEND)
            job_id = found[0]
        for duplicate in found[1:]:
            self._call(
                f"deleting duplicate job {duplicate}",
                lambda duplicate=duplicate: self.client.jobs.delete(duplicate),  # type: ignore[misc]
            )
        return job_id

    def submit(self, pipeline: NativePipeline, parameters: dict[str, str]) -> PipelineRun:
        if pipeline.format != FORMAT:
            raise BackendError(f"cannot run a {pipeline.format!r} pipeline on Databricks", BACKEND)
        job_id = self._ensure_job(pipeline)
        token = self.context.ids.new("run")[:64]
        waiter = self._call(
            f"starting job {job_id}",
            lambda: self.client.jobs.run_now(
                job_id,
                job_parameters={k: str(v) for k, v in parameters.items()},
                idempotency_token=token,
            ),
        )
        raw = self._raw_run(int(waiter.run_id))
        if _skipped_at_limit(raw):
            raise Conflict(self._busy(pipeline.pipeline, job_id))
        return self._pipeline_run(raw)

    def _busy(self, pipeline: str, job_id: int) -> str:
        """Why a run of ``pipeline`` was not started: the job's active runs."""
        active = self._call(
            f"listing active runs of job {job_id}",
            lambda: list(self.client.jobs.list_runs(job_id=job_id, active_only=True)),
        )
        running = ", ".join(sorted(str(r.run_id) for r in active)) or "one that has just ended"
        return (
            f"pipeline {pipeline!r} is already running (run {running}) and its job runs one at "
            "a time: wait for that run to end or stop it, then submit again"
        )

    @staticmethod
    def _run_number(run_id: str) -> int:
        if not run_id.isdigit():
            raise NotFound(f"pipeline run {run_id!r} not found: Databricks run ids are numbers")
        return int(run_id)

    def _raw_run(self, number: int) -> dict[str, Any]:
        run = self._call(f"reading run {number}", lambda: self.client.jobs.get_run(number))
        return run.as_dict()

    def get_pipeline_run(self, run_id: str) -> PipelineRun:
        return self._pipeline_run(self._raw_run(self._run_number(run_id)))

    def _pipeline_run(self, raw: dict[str, Any]) -> PipelineRun:
        """The pipeline run that Jobs run ``raw`` (as ``runs/get`` answers) is."""
        state = raw.get("state") or {}
        steps = []
        for task in raw.get("tasks") or []:
            task_state = task.get("state") or {}
            life_cycle, result = task_state.get("life_cycle_state"), task_state.get("result_state")
            if _never_ran(life_cycle, result):
                continue
            status = _status(life_cycle, result)
            steps.append(
                StepRun(
                    name=task["task_key"],
                    status=status,
                    started_at=_time(task.get("start_time")),
                    ended_at=_time(task.get("end_time")),
                    failure_reason=task_state.get("state_message") or None
                    if status is PipelineStatus.FAILED
                    else None,
                )
            )
        name = str(raw.get("run_name") or "")
        started = _time(raw.get("start_time")) or self.context.clock.now()
        status = _status(state.get("life_cycle_state"), state.get("result_state"))
        return PipelineRun(
            id=str(raw["run_id"]),
            pipeline=name.removeprefix(JOB_PREFIX),
            status=status,
            steps=tuple(steps),
            started_at=started,
            ended_at=_time(raw.get("end_time")),
            backend=BACKEND,
            backend_ids={"run_id": str(raw["run_id"]), "job_id": str(raw.get("job_id", ""))},
            # The values the run used: what it was given, else the job's defaults.
            parameters={
                str(p["name"]): str(p.get("value", p.get("default", "")))
                for p in raw.get("job_parameters") or []
            },
            failure_reason=(state.get("state_message") or None)
            if status is PipelineStatus.FAILED
            else None,
        )

    def wait_for_pipeline_run(self, run_id: str, timeout_seconds: float = 3600) -> PipelineRun:
        """Poll the run on the backend's clock until it has ended."""
        clock = self._elapsed_clock()
        deadline = clock.time() + timeout_seconds
        while True:
            run = self.get_pipeline_run(run_id)
            if run.status not in (PipelineStatus.PENDING, PipelineStatus.RUNNING):
                return run
            if clock.time() >= deadline:
                raise BackendError(
                    f"run {run_id} still {run.status.value} after {timeout_seconds}s", BACKEND
                )
            clock.sleep(self.settings.poll_seconds)

    def stop_pipeline_run(self, run_id: str) -> None:
        number = self._run_number(run_id)
        self._call(f"cancelling run {run_id}", lambda: self.client.jobs.cancel_run(number))
