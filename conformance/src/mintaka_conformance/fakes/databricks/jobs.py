"""Jobs 2.2: jobs of tasks, runs that move through their lifecycle, scripted task outcomes.

A run starts ``PENDING``; each read of it (``runs/get``, ``runs/get-output``) moves it to the
next state of ``run_states`` (``("TERMINATED",)`` by default, so ``run_now_and_wait`` returns on
its first poll; use ``("PENDING", "RUNNING", "TERMINATED")`` to watch every step). When a run
terminates, each task takes its scripted outcome (``script_task``) or ``SUCCESS``; tasks whose
upstream failed are ``UPSTREAM_FAILED`` (unless ``run_if`` says otherwise) and the run's result
follows its leaf tasks, as on Databricks. ``run-now`` and ``runs/submit`` honour
``idempotency_token``. A ``run-now`` of a job with ``max_concurrent_runs`` runs still active
creates a run that is ``SKIPPED`` at once (result ``MAXIMUM_CONCURRENT_RUNS_REACHED``, termination
code ``MAX_CONCURRENT_RUNS_EXCEEDED``), unless the job queues its runs (``queue.enabled``, which a
job created or reset without ``queue`` takes as true, as Jobs 2.2 does): then the run waits
``QUEUED`` until an active run ends, as on Databricks. A task that writes to standard streams
(``spark_python_task``, ``python_wheel_task``, ``spark_jar_task``) and ran answers
``runs/get-output`` with its scripted ``logs``, the last 5 MB of them (``logs_truncated``); a
``notebook_task`` that ran answers with ``notebook_output``, its scripted ``notebook_result`` (the
value of ``dbutils.notebook.exit``, absent unless scripted) cut to the first 5 MB (``truncated``).
A ``notebook_task`` needs a ``notebook_path`` (absolute for a ``WORKSPACE`` notebook, the default,
relative for ``GIT``) and ``base_parameters`` mapping names to strings; a ``for_each_task`` needs
``inputs`` and the one ``task`` it runs (kept as given; the fake runs no iterations). When a
notebook task runs, a ``WORKSPACE`` notebook must be in the workspace tree (else the task fails
with the service's
"Unable to access the notebook" message), and the dynamic value references in its
``base_parameters`` are resolved as Databricks resolves them (``resolved_values`` of the task in
``runs/get``): ``{{job.parameters.<name>}}``, ``{{job.id}}``, ``{{job.name}}``,
``{{job.run_id}}``, ``{{job.repair_count}}``, ``{{task.name}}``, ``{{task.run_id}}``, the older
``{{job_id}}``, ``{{run_id}}``, ``{{parent_run_id}}`` and ``{{task_key}}``, and
``{{tasks.<task>.values.<key>}}`` (the scripted ``task_values`` of an upstream task of the run,
JSON unless a string; a job parameter's value, whether its default or given to ``run-now``, has
its references to the run as a whole resolved, as Databricks resolves references in job
parameters), identifiers of anything but letters, digits and ``_`` quoted in backticks. A
reference with a syntax error or outside the namespaces Databricks knows (``{{question}}``) stays
literal text, as documented; one in a known namespace (``job``, ``task``, ``tasks``,
``workspace``, ``input``) that names nothing there (``{{job.naem}}``), or that the fake does not
model (``{{job.start_time.iso_date}}``), or a task value no upstream task set, fails the task,
naming the reference. A
failed task answers ``runs/get-output`` with ``error`` (its scripted ``error``, the exception the
notebook raised, else its state message) and its scripted ``error_trace``; a failed notebook task
that never called ``dbutils.notebook.exit`` has an empty ``notebook_output``.

Missing jobs and runs are answered with ``400 INVALID_PARAMETER_VALUE`` "Job 1 does not exist."
exactly as the service does; the SDK itself turns that into ``ResourceDoesNotExist`` for
``jobs/get`` and ``jobs/runs/get`` (and only those).
"""

from __future__ import annotations

import copy
import json
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .context import WorkspaceContext
from .routing import (
    ApiError,
    Request,
    Router,
    encode_page_token,
    invalid,
    invalid_state,
    paginate,
)
from .workspace import WorkspaceTree

_TASK_KEY = re.compile(r"^[\w\-]{1,100}$")
_LIFECYCLE = ("PENDING", "QUEUED", "RUNNING", "TERMINATING", "TERMINATED")
_ACTIVE = ("PENDING", "QUEUED", "RUNNING", "TERMINATING", "BLOCKED", "WAITING_FOR_RETRY")
_TASK_RESULTS = ("SUCCESS", "FAILED", "TIMEDOUT", "CANCELED", "EXCLUDED")
_BAD = ("FAILED", "TIMEDOUT", "UPSTREAM_FAILED", "CANCELED", "UPSTREAM_CANCELED")
_LIMIT_REACHED = "MAXIMUM_CONCURRENT_RUNS_REACHED"
# Tasks whose standard streams runs/get-output returns as ``logs``, the last 5 MB of them.
_LOGGING_TASKS = ("spark_python_task", "python_wheel_task", "spark_jar_task")
LOGS_LIMIT = 5 * 1024 * 1024
NOTEBOOK_RESULT_LIMIT = 5 * 1024 * 1024


@dataclass(frozen=True)
class TaskOutcome:
    result: str = "SUCCESS"
    message: str = ""
    notebook_result: str | None = None
    error_trace: str | None = None
    logs: str = ""
    error: str | None = None
    task_values: dict[str, Any] = field(default_factory=dict)


@dataclass
class Job:
    job_id: int
    settings: dict[str, Any]
    created: int
    creator: str


@dataclass
class TaskRun:
    task_key: str
    run_id: int
    spec: dict[str, Any]
    life_cycle: str = "PENDING"
    result_state: str | None = None
    message: str = ""
    start_time: int = 0
    end_time: int = 0
    outcome: TaskOutcome | None = None
    resolved: dict[str, str] | None = None

    @property
    def depends_on(self) -> list[str]:
        return [d["task_key"] for d in self.spec.get("depends_on") or []]


@dataclass
class JobRun:
    run_id: int
    job_id: int | None
    run_name: str
    run_type: str
    creator: str
    start_time: int
    tasks: list[TaskRun]
    number_in_job: int
    life_cycle: str = "PENDING"
    result_state: str | None = None
    state_message: str = ""
    end_time: int = 0
    reads: int = 0
    cancel_requested: bool = False
    job_parameters: list[dict[str, Any]] = field(default_factory=list)
    overriding_parameters: dict[str, Any] = field(default_factory=dict)
    idempotency_token: str | None = None
    queue_reason: str = ""

    @property
    def active(self) -> bool:
        return self.life_cycle in _ACTIVE


class Jobs:
    def __init__(self, ctx: WorkspaceContext, workspace: WorkspaceTree) -> None:
        self.ctx = ctx
        self.workspace = workspace
        self.jobs: dict[int, Job] = {}
        self.runs: dict[int, JobRun] = {}
        self.run_states: tuple[str, ...] = ("TERMINATED",)
        self._task_runs: dict[int, tuple[JobRun, TaskRun]] = {}
        self._scripted: dict[str, TaskOutcome] = {}
        self._scripted_once: dict[str, deque[TaskOutcome]] = {}

    # Out-of-band API.

    def script_task(
        self,
        task_key: str,
        result: str = "FAILED",
        message: str = "",
        *,
        notebook_result: str | None = None,
        error_trace: str | None = None,
        logs: str = "",
        error: str | None = None,
        task_values: dict[str, Any] | None = None,
        once: bool = False,
    ) -> None:
        """Decide how ``task_key`` ends in every later run (or only the next one, ``once``);
        ``logs`` is what a task writing to standard streams printed, ``error`` what a failed
        task's output says went wrong (``runs/get-output``), ``task_values`` the values it set
        for the tasks after it."""
        if result not in _TASK_RESULTS:
            raise ValueError(f"result must be one of {_TASK_RESULTS}, got {result!r}")
        outcome = TaskOutcome(
            result, message, notebook_result, error_trace, logs, error, dict(task_values or {})
        )
        with self.ctx.lock:
            if once:
                self._scripted_once.setdefault(task_key, deque()).append(outcome)
            else:
                self._scripted[task_key] = outcome

    def clear_scripts(self) -> None:
        with self.ctx.lock:
            self._scripted.clear()
            self._scripted_once.clear()

    def run(self, run_id: int) -> JobRun:
        with self.ctx.lock:
            return self._run(run_id)

    def finish(self, run_id: int) -> JobRun:
        """Terminate the run now with its scripted outcomes."""
        with self.ctx.lock:
            run = self._run(run_id)
            if run.active:
                self._terminate(run)
            return run

    # Helpers.

    def _job(self, job_id: Any) -> Job:
        try:
            number = int(job_id)
        except (TypeError, ValueError):
            raise invalid(f"Invalid job_id: {job_id!r}") from None
        job = self.jobs.get(number)
        if job is None:
            raise invalid(f"Job {number} does not exist.")
        return job

    def _run(self, run_id: Any) -> JobRun:
        try:
            number = int(run_id)
        except (TypeError, ValueError):
            raise invalid(f"Invalid run_id: {run_id!r}") from None
        run = self.runs.get(number)
        if run is None:
            raise invalid(f"Run {number} does not exist.")
        return run

    def _validate_tasks(self, tasks: list[dict[str, Any]], required: bool) -> None:
        if required and not tasks:
            raise invalid("At least one task is required.")
        keys: list[str] = []
        for task in tasks:
            key = task.get("task_key")
            if not key or not _TASK_KEY.match(str(key)):
                raise invalid(f"Invalid task_key {key!r}: use 1-100 letters, digits, '_' or '-'.")
            if key in keys:
                raise invalid(f"Task key '{key}' is used by more than one task.")
            if not any(name.endswith("_task") and task[name] for name in task):
                raise invalid(
                    f"Task '{key}' must define exactly one task type (e.g. notebook_task)."
                )
            if "notebook_task" in task:
                _validate_notebook_task(str(key), task["notebook_task"])
            if "for_each_task" in task:
                _validate_for_each_task(str(key), task["for_each_task"])
            keys.append(key)
        for task in tasks:
            for dependency in task.get("depends_on") or []:
                if dependency.get("task_key") not in keys:
                    raise invalid(
                        f"Task '{task['task_key']}' depends on '{dependency.get('task_key')}', "
                        "which is not a task of this job."
                    )
        _topological(tasks)

    def _new_run(
        self,
        job: Job | None,
        run_name: str,
        tasks: list[dict[str, Any]],
        run_type: str,
        token: str | None,
    ) -> JobRun:
        run_id = self.ctx.next_number("run", start=1001)
        task_runs = [
            TaskRun(
                task_key=t["task_key"],
                run_id=self.ctx.next_number("run", start=1001),
                spec=copy.deepcopy(t),
            )
            for t in _topological(tasks)
        ]
        number = 1 + sum(1 for r in self.runs.values() if job and r.job_id == job.job_id)
        run = JobRun(
            run_id=run_id,
            job_id=job.job_id if job else None,
            run_name=run_name,
            run_type=run_type,
            creator=self.ctx.user,
            start_time=self.ctx.now_ms(),
            tasks=task_runs,
            number_in_job=number if job else run_id,
            idempotency_token=token,
        )
        self.runs[run_id] = run
        for task in task_runs:
            self._task_runs[task.run_id] = (run, task)
        return run

    def _by_token(self, token: str | None) -> JobRun | None:
        if not token:
            return None
        if len(token) > 64:
            raise invalid("idempotency_token must be at most 64 characters.")
        return next((r for r in self.runs.values() if r.idempotency_token == token), None)

    def _observe(self, run: JobRun) -> None:
        if not run.active:
            return
        if run.cancel_requested:
            self._terminate(run)
            return
        if run.life_cycle == "QUEUED":
            if self._at_limit(run.job_id, before=run):
                return
            run.life_cycle = "PENDING"
        run.reads += 1
        states = self.run_states or ("TERMINATED",)
        target = states[min(run.reads, len(states)) - 1]
        if target not in _LIFECYCLE:
            raise ValueError(f"run_states may only contain {_LIFECYCLE}, got {target!r}")
        if target == "TERMINATED":
            self._terminate(run)
            return
        run.life_cycle = target
        if target == "RUNNING":
            for task in run.tasks:
                if not task.depends_on and task.life_cycle == "PENDING":
                    task.life_cycle = "RUNNING"
                    task.start_time = self.ctx.now_ms()

    def _at_limit(self, job_id: int | None, before: JobRun | None = None) -> bool:
        """Whether job ``job_id`` has its ``max_concurrent_runs`` runs going (queued runs, and
        runs started after ``before``, not counted)."""
        job = self.jobs.get(job_id) if job_id is not None else None
        if job is None:
            return False
        going = [
            r
            for r in self.runs.values()
            if r.job_id == job_id
            and r.active
            and r.life_cycle != "QUEUED"
            and (before is None or r.run_id < before.run_id)
        ]
        return len(going) >= int(job.settings.get("max_concurrent_runs", 1))

    def _hold(self, job: Job, run: JobRun) -> None:
        """A new run of ``job`` while it is at its concurrency limit: queued, or skipped."""
        limit = int(job.settings.get("max_concurrent_runs", 1))
        if (job.settings.get("queue") or {}).get("enabled"):
            run.life_cycle = "QUEUED"
            run.queue_reason = f"Queued due to reaching maximum concurrent runs of {limit}."
            return
        run.life_cycle, run.result_state = "SKIPPED", _LIMIT_REACHED
        run.state_message = (
            f"Skipping this run because the limit of {limit} maximum concurrent runs has been "
            "reached."
        )
        run.end_time = run.start_time
        for task in run.tasks:
            task.life_cycle, task.result_state = "SKIPPED", _LIMIT_REACHED

    def _outcome(self, task_key: str) -> TaskOutcome:
        queued = self._scripted_once.get(task_key)
        if queued:
            return queued.popleft()
        return self._scripted.get(task_key, TaskOutcome())

    def _terminate(self, run: JobRun) -> None:
        now = self.ctx.now_ms()
        results: dict[str, str] = {}
        values: dict[str, dict[str, Any]] = {}
        for task in run.tasks:
            task.start_time = task.start_time or now
            task.end_time = now
            upstream = [results[key] for key in task.depends_on]
            if run.cancel_requested:
                task.life_cycle, task.result_state = "TERMINATED", "CANCELED"
                task.message = "Run cancelled."
            elif not _should_run(task.spec.get("run_if") or "ALL_SUCCESS", upstream):
                upstream_failed = any(
                    r in ("FAILED", "TIMEDOUT", "UPSTREAM_FAILED") for r in upstream
                )
                task.life_cycle = "SKIPPED"
                task.result_state = "UPSTREAM_FAILED" if upstream_failed else "EXCLUDED"
                task.message = (
                    "Upstream task(s) failed." if upstream_failed else "Skipped by run_if."
                )
            else:
                self._start(run, task, values)
            results[task.task_key] = task.result_state or "SUCCESS"
        run.life_cycle = "TERMINATED"
        run.end_time = now
        if run.cancel_requested:
            run.result_state, run.state_message = "CANCELED", "Run cancelled."
            return
        dependents = {key for task in run.tasks for key in task.depends_on}
        leaves = [task for task in run.tasks if task.task_key not in dependents]
        failed = [task for task in run.tasks if task.result_state in _BAD]
        if any(task.result_state in _BAD for task in leaves):
            hard = [t for t in run.tasks if t.result_state in ("FAILED", "TIMEDOUT")]
            first = (hard or failed)[0]
            run.result_state = "FAILED"
            run.state_message = f"Task {first.task_key} failed with message: {first.message}"
        elif failed:
            run.result_state, run.state_message = "SUCCESS_WITH_FAILURES", ""
        else:
            run.result_state, run.state_message = "SUCCESS", ""

    def _start(self, run: JobRun, task: TaskRun, values: dict[str, dict[str, Any]]) -> None:
        """Run ``task``: a notebook it cannot open fails it; else its references are resolved
        and it takes its scripted outcome, whose task values the tasks after it can read."""
        notebook = task.spec.get("notebook_task")
        if notebook is not None:
            path = str(notebook.get("notebook_path"))
            if (notebook.get("source") or "WORKSPACE") == "WORKSPACE" and (
                not self.workspace.has_notebook(path)
            ):
                task.life_cycle, task.result_state = "TERMINATED", "FAILED"
                task.message = (
                    f'Unable to access the notebook "{path}". Either it does not exist, or the '
                    f"identity used to run this job, {self.ctx.user}, lacks the required "
                    "permissions."
                )
                return
            context = _ReferenceContext(run, task, values)
            try:
                task.resolved = {
                    str(k): context.resolve(str(v))
                    for k, v in (notebook.get("base_parameters") or {}).items()
                }
            except _Unresolved as exc:
                task.life_cycle, task.result_state = "TERMINATED", "FAILED"
                task.message = str(exc)
                return
        outcome = self._outcome(task.task_key)
        task.outcome = outcome
        task.life_cycle, task.result_state = "TERMINATED", outcome.result
        task.message = outcome.message
        values[task.task_key] = dict(outcome.task_values)

    # Rendering.

    def _state(
        self, life_cycle: str, result: str | None, message: str, cancelled: bool
    ) -> dict[str, Any]:
        state: dict[str, Any] = {
            "life_cycle_state": life_cycle,
            "state_message": message,
            "user_cancelled_or_timedout": cancelled,
        }
        if result is not None:
            state["result_state"] = result
        return state

    def _status(self, life_cycle: str, result: str | None, message: str) -> dict[str, Any]:
        v2 = {"SKIPPED": "TERMINATED", "INTERNAL_ERROR": "TERMINATED"}.get(life_cycle, life_cycle)
        status: dict[str, Any] = {"state": v2}
        if v2 == "TERMINATED":
            code, kind = {
                "SUCCESS": ("SUCCESS", "SUCCESS"),
                "SUCCESS_WITH_FAILURES": ("SUCCESS_WITH_FAILURES", "SUCCESS"),
                "CANCELED": ("USER_CANCELED", "SUCCESS"),
                "EXCLUDED": ("SKIPPED", "SUCCESS"),
                "UPSTREAM_FAILED": ("RUN_EXECUTION_ERROR", "CLIENT_ERROR"),
                _LIMIT_REACHED: ("MAX_CONCURRENT_RUNS_EXCEEDED", "CLIENT_ERROR"),
            }.get(result or "", ("RUN_EXECUTION_ERROR", "CLIENT_ERROR"))
            status["termination_details"] = {"code": code, "type": kind, "message": message}
        return status

    def _render_task(self, run: JobRun, task: TaskRun) -> dict[str, Any]:
        body = copy.deepcopy(task.spec)
        body.update(
            {
                "run_id": task.run_id,
                "attempt_number": 0,
                "state": self._state(
                    task.life_cycle, task.result_state, task.message, run.cancel_requested
                ),
                "status": self._status(task.life_cycle, task.result_state, task.message),
                "start_time": task.start_time,
                "end_time": task.end_time,
                "setup_duration": 0,
                "execution_duration": max(0, task.end_time - task.start_time)
                if task.end_time
                else 0,
                "cleanup_duration": 0,
                "run_page_url": f"{self.ctx.host}/#job/{run.job_id}/run/{task.run_id}",
            }
        )
        if task.resolved is not None:
            body["resolved_values"] = {"notebook_task": {"base_parameters": task.resolved}}
        return body

    def _render_run(self, run: JobRun, with_tasks: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "run_id": run.run_id,
            "number_in_job": run.number_in_job,
            "original_attempt_run_id": run.run_id,
            "creator_user_name": run.creator,
            "run_name": run.run_name,
            "run_type": run.run_type,
            "attempt_number": 0,
            "state": self._state(
                run.life_cycle, run.result_state, run.state_message, run.cancel_requested
            )
            | ({"queue_reason": run.queue_reason} if run.life_cycle == "QUEUED" else {}),
            "status": self._status(run.life_cycle, run.result_state, run.state_message),
            "start_time": run.start_time,
            "end_time": run.end_time,
            "setup_duration": 0,
            "execution_duration": max(0, run.end_time - run.start_time) if run.end_time else 0,
            "cleanup_duration": 0,
            "run_duration": max(0, run.end_time - run.start_time) if run.end_time else 0,
            "trigger": "ONE_TIME",
            "run_page_url": f"{self.ctx.host}/#job/{run.job_id}/run/{run.run_id}",
            "has_more": False,
        }
        if run.job_id is not None:
            body["job_id"] = run.job_id
            body["job_run_id"] = run.run_id
        if run.job_parameters:
            body["job_parameters"] = run.job_parameters
        if run.overriding_parameters:
            body["overriding_parameters"] = run.overriding_parameters
        if with_tasks:
            body["tasks"] = [self._render_task(run, task) for task in run.tasks]
        return body

    def _render_job(self, job: Job, with_tasks: bool = True) -> dict[str, Any]:
        settings = copy.deepcopy(job.settings)
        if not with_tasks:
            settings.pop("tasks", None)
            settings.pop("job_clusters", None)
        return {
            "job_id": job.job_id,
            "creator_user_name": job.creator,
            "run_as_user_name": job.creator,
            "created_time": job.created,
            "settings": settings,
            "has_more": False,
        }

    # Routes.

    def register(self, router: Router) -> None:
        base = "/api/2.2/jobs"
        router.add("POST", base + "/create", self.create)
        router.add("GET", base + "/get", self.get)
        router.add("GET", base + "/list", self.list)
        router.add("POST", base + "/delete", self.delete)
        router.add("POST", base + "/reset", self.reset)
        router.add("POST", base + "/update", self.update)
        router.add("POST", base + "/run-now", self.run_now)
        router.add("POST", base + "/runs/submit", self.submit)
        router.add("GET", base + "/runs/get", self.get_run)
        router.add("GET", base + "/runs/get-output", self.get_output)
        router.add("GET", base + "/runs/list", self.list_runs)
        router.add("POST", base + "/runs/cancel", self.cancel)
        router.add("POST", base + "/runs/cancel-all", self.cancel_all)
        router.add("POST", base + "/runs/delete", self.delete_run)

    _SETTINGS_EXCLUDED = ("access_control_list",)

    def create(self, req: Request) -> dict[str, Any]:
        settings = {k: v for k, v in req.body.items() if k not in self._SETTINGS_EXCLUDED}
        settings.setdefault("name", "Untitled")
        settings.setdefault("max_concurrent_runs", 1)
        settings.setdefault("format", "MULTI_TASK")
        settings.setdefault("queue", {"enabled": True})
        self._validate_tasks(settings.get("tasks") or [], required=False)
        job_id = self.ctx.next_number("job", start=101)
        self.jobs[job_id] = Job(job_id, settings, self.ctx.now_ms(), self.ctx.user)
        return {"job_id": job_id}

    def get(self, req: Request) -> dict[str, Any]:
        return self._render_job(self._job(req.require("job_id")))

    def list(self, req: Request) -> dict[str, Any]:
        limit = req.int_arg("limit", 20) or 20
        if not 1 <= limit <= 100:
            raise invalid(f"limit must be between 1 and 100, got {limit}.")
        name = req.arg("name")
        jobs = [
            self.jobs[job_id]
            for job_id in sorted(self.jobs, reverse=True)
            if not name or str(self.jobs[job_id].settings.get("name", "")).lower() == name.lower()
        ]
        expand = req.bool_arg("expand_tasks")
        return _listing(req, "jobs", jobs, limit, lambda j: self._render_job(j, with_tasks=expand))

    def delete(self, req: Request) -> None:
        job = self._job(req.require("job_id"))
        for run in self.runs.values():
            if run.job_id == job.job_id and run.active:
                run.cancel_requested = True
                self._terminate(run)
        del self.jobs[job.job_id]

    def reset(self, req: Request) -> None:
        job = self._job(req.require("job_id"))
        settings = dict(req.require("new_settings"))
        settings.setdefault("queue", {"enabled": True})
        self._validate_tasks(settings.get("tasks") or [], required=False)
        job.settings = settings

    def update(self, req: Request) -> None:
        job = self._job(req.require("job_id"))
        settings = copy.deepcopy(job.settings)
        for name in req.arg("fields_to_remove") or []:
            settings.pop(name, None)
        for name, value in (req.arg("new_settings") or {}).items():
            if name == "tasks":
                by_key = {t["task_key"]: t for t in settings.get("tasks") or []}
                by_key.update({t["task_key"]: t for t in value})
                settings["tasks"] = list(by_key.values())
            else:
                settings[name] = value
        self._validate_tasks(settings.get("tasks") or [], required=False)
        job.settings = settings

    def run_now(self, req: Request) -> dict[str, Any]:
        job = self._job(req.require("job_id"))
        token = req.arg("idempotency_token")
        existing = self._by_token(token)
        if existing is not None:
            return {"run_id": existing.run_id, "number_in_job": existing.number_in_job}
        tasks = job.settings.get("tasks") or []
        only = req.arg("only")
        if only:
            tasks = [t for t in tasks if t["task_key"] in only]
        if not tasks:
            raise invalid(f"Job {job.job_id} has no tasks to run.")
        defined = {p["name"]: p.get("default", "") for p in job.settings.get("parameters") or []}
        given = req.arg("job_parameters") or {}
        unknown = sorted(set(given) - set(defined))
        if unknown:
            raise invalid(f"Job parameter(s) {', '.join(unknown)} are not defined for this job.")
        at_limit = self._at_limit(job.job_id)
        run = self._new_run(job, job.settings.get("name", ""), tasks, "JOB_RUN", token)
        if at_limit:
            self._hold(job, run)
        run.job_parameters = [
            {"name": name, "default": default, "value": str(given.get(name, default))}
            for name, default in defined.items()
        ]
        run.overriding_parameters = {
            key: req.body[key]
            for key in ("notebook_params", "python_params", "python_named_params", "jar_params")
            if key in req.body
        }
        return {"run_id": run.run_id, "number_in_job": run.number_in_job}

    def submit(self, req: Request) -> dict[str, Any]:
        token = req.arg("idempotency_token")
        existing = self._by_token(token)
        if existing is not None:
            return {"run_id": existing.run_id}
        tasks = req.arg("tasks") or []
        self._validate_tasks(tasks, required=True)
        run = self._new_run(None, req.arg("run_name") or "Untitled", tasks, "SUBMIT_RUN", token)
        return {"run_id": run.run_id}

    def get_run(self, req: Request) -> dict[str, Any]:
        run = self._run(req.require("run_id"))
        self._observe(run)
        return self._render_run(run)

    def get_output(self, req: Request) -> dict[str, Any]:
        run_id = int(req.require("run_id"))
        if run_id in self._task_runs:
            run, task = self._task_runs[run_id]
        else:
            run = self._run(run_id)
            if len(run.tasks) != 1:
                raise invalid(
                    "Retrieving the output of runs with multiple tasks is not supported. "
                    "Please retrieve the output of each individual task run instead."
                )
            task = run.tasks[0]
        self._observe(run)
        metadata = self._render_task(run, task)
        metadata.update({"job_id": run.job_id, "run_name": run.run_name, "run_type": run.run_type})
        body: dict[str, Any] = {"metadata": metadata}
        outcome = task.outcome
        if outcome is not None and "notebook_task" in task.spec:
            body["notebook_output"] = _notebook_output(outcome.notebook_result)
        if outcome is not None and any(kind in task.spec for kind in _LOGGING_TASKS):
            logs = outcome.logs
            kept = logs.encode("utf-8")[-LOGS_LIMIT:].decode("utf-8", "ignore")
            body["logs"], body["logs_truncated"] = kept, len(kept) < len(logs)
        if task.result_state in ("FAILED", "TIMEDOUT"):
            body["error"] = task.message
            if outcome is not None and outcome.error is not None:
                body["error"] = outcome.error
            if outcome is not None and outcome.error_trace:
                body["error_trace"] = outcome.error_trace
        return body

    def list_runs(self, req: Request) -> dict[str, Any]:
        active_only = req.bool_arg("active_only")
        completed_only = req.bool_arg("completed_only")
        if active_only and completed_only:
            raise invalid("active_only and completed_only cannot both be true.")
        limit = req.int_arg("limit", 20)
        limit = 25 if limit == 0 else limit
        if limit is None or not 1 <= limit <= 25:
            raise invalid(f"limit must be between 1 and 25, got {limit}.")
        job_id = req.int_arg("job_id")
        run_type = req.arg("run_type")
        runs = [
            run
            for run in sorted(self.runs.values(), key=lambda r: (-r.start_time, -r.run_id))
            if (job_id is None or run.job_id == job_id)
            and (not active_only or run.active)
            and (not completed_only or not run.active)
            and (not run_type or run.run_type == run_type)
        ]
        expand = req.bool_arg("expand_tasks")
        return _listing(req, "runs", runs, limit, lambda r: self._render_run(r, with_tasks=expand))

    def cancel(self, req: Request) -> None:
        run = self._run(req.require("run_id"))
        if run.active:
            run.cancel_requested = True
            run.life_cycle = "TERMINATING"

    def cancel_all(self, req: Request) -> None:
        job_id = req.int_arg("job_id")
        if job_id is None and not req.bool_arg("all_queued_runs"):
            raise invalid("Either job_id or all_queued_runs must be given.")
        if job_id is not None:
            self._job(job_id)
        for run in self.runs.values():
            if run.active and (job_id is None or run.job_id == job_id):
                run.cancel_requested = True
                run.life_cycle = "TERMINATING"

    def delete_run(self, req: Request) -> None:
        run = self._run(req.require("run_id"))
        if run.active:
            raise invalid_state(f"Run {run.run_id} is active and cannot be deleted.")
        for task in run.tasks:
            self._task_runs.pop(task.run_id, None)
        del self.runs[run.run_id]


def _validate_notebook_task(key: str, notebook: Any) -> None:
    """A ``notebook_task`` as the service accepts it."""
    if not isinstance(notebook, dict):
        raise invalid(f"Task '{key}': notebook_task must be an object.")
    path = notebook.get("notebook_path")
    if not isinstance(path, str) or not path:
        raise invalid(f"Task '{key}': notebook_task.notebook_path is required.")
    source = notebook.get("source") or "WORKSPACE"
    if source not in ("WORKSPACE", "GIT"):
        raise invalid(f"Task '{key}': invalid notebook_task.source {source!r}.")
    if source == "WORKSPACE" and not path.startswith("/"):
        raise invalid(
            f"Task '{key}': the notebook_path of a WORKSPACE notebook must be absolute, got "
            f"{path!r}."
        )
    if source == "GIT" and path.startswith("/"):
        raise invalid(
            f"Task '{key}': the notebook_path of a GIT notebook must be relative, got {path!r}."
        )
    parameters = notebook.get("base_parameters") or {}
    if not isinstance(parameters, dict) or not all(
        isinstance(value, str) for value in parameters.values()
    ):
        raise invalid(f"Task '{key}': notebook_task.base_parameters must map names to strings.")


def _validate_for_each_task(key: str, for_each: Any) -> None:
    """A ``for_each_task`` as the service accepts it: ``inputs`` (a JSON array or a reference
    to one, as text), an optional ``concurrency``, and the one ``task`` it runs per input, a task
    of its own key and one task type, itself no ``for_each_task``."""
    if not isinstance(for_each, dict):
        raise invalid(f"Task '{key}': for_each_task must be an object.")
    if not isinstance(for_each.get("inputs"), str) or not for_each["inputs"]:
        raise invalid(f"Task '{key}': for_each_task.inputs is required.")
    inner = for_each.get("task")
    if not isinstance(inner, dict) or not _TASK_KEY.match(str(inner.get("task_key") or "")):
        raise invalid(f"Task '{key}': for_each_task.task needs a valid task_key.")
    kinds = [name for name in inner if name.endswith("_task") and inner[name]]
    if len(kinds) != 1 or kinds == ["for_each_task"]:
        raise invalid(
            f"Task '{key}': for_each_task.task must define exactly one task type, not a "
            "for_each_task."
        )
    if "notebook_task" in inner:
        _validate_notebook_task(str(inner["task_key"]), inner["notebook_task"])


def _notebook_output(result: str | None) -> dict[str, Any]:
    """A notebook task's ``notebook_output``: the first 5 MB of what it passed to
    ``dbutils.notebook.exit`` (nothing when it never called it)."""
    if result is None:
        return {}
    kept = result.encode("utf-8")[:NOTEBOOK_RESULT_LIMIT].decode("utf-8", "ignore")
    return {"result": kept, "truncated": len(kept) < len(result)}


def _should_run(run_if: str, upstream: list[str]) -> bool:
    if not upstream:
        return True
    succeeded = [r in ("SUCCESS", "SUCCESS_WITH_FAILURES", "EXCLUDED") for r in upstream]
    failed = [r in ("FAILED", "TIMEDOUT", "UPSTREAM_FAILED") for r in upstream]
    rules = {
        "ALL_SUCCESS": all(succeeded),
        "ALL_DONE": True,
        "NONE_FAILED": not any(failed),
        "AT_LEAST_ONE_SUCCESS": any(succeeded),
        "ALL_FAILED": all(failed),
        "AT_LEAST_ONE_FAILED": any(failed),
    }
    if run_if not in rules:
        raise ApiError(400, "INVALID_PARAMETER_VALUE", f"Invalid run_if condition: {run_if}")
    return rules[run_if]


def _listing(
    req: Request, key: str, items: list[Any], limit: int, render: Callable[[Any], Any]
) -> dict[str, Any]:
    """A Jobs listing's answer: from ``page_token`` or else the older ``offset``, with
    ``has_more`` and, unless on the last page, ``next_page_token``."""
    token = req.arg("page_token")
    if not token and req.int_arg("offset"):
        token = encode_page_token(req.int_arg("offset") or 0)
    page, following = paginate(items, token, limit)
    body: dict[str, Any] = {
        key: [render(item) for item in page],
        "has_more": following is not None,
    }
    if following:
        body["next_page_token"] = following
    return body


def _topological(tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tasks ordered so that each comes after its dependencies; a cycle is refused."""
    by_key = {t["task_key"]: t for t in tasks}
    ordered: list[dict[str, Any]] = []
    state: dict[str, str] = {}

    def visit(key: str) -> None:
        if state.get(key) == "done":
            return
        if state.get(key) == "visiting":
            raise invalid(f"The task dependencies of this job contain a cycle through '{key}'.")
        state[key] = "visiting"
        for dependency in by_key[key].get("depends_on") or []:
            if dependency["task_key"] in by_key:
                visit(dependency["task_key"])
        state[key] = "done"
        ordered.append(by_key[key])

    for task in tasks:
        visit(task["task_key"])
    return ordered


_REFERENCE = re.compile(r"\{\{\s*(.*?)\s*\}\}")
_PATH = re.compile(r"(?:\w+|`[^`]+`)(?:\.(?:\w+|`[^`]+`))*", re.ASCII)
_PART = re.compile(r"\w+|`[^`]+`", re.ASCII)
# The namespaces of Databricks' dynamic value references: one of them naming nothing is refused.
_NAMESPACES = ("job", "task", "tasks", "workspace", "input")


class _Unresolved(Exception):
    """A reference in a namespace Databricks knows to a value it does not have."""


@dataclass(frozen=True)
class _ReferenceContext:
    """What the dynamic value references of one task of one run resolve to."""

    run: JobRun
    task: TaskRun
    values: dict[str, dict[str, Any]]  # task key -> task values set so far in the run

    def resolve(self, text: str) -> str:
        """``text`` with each reference Databricks can resolve replaced by its value; one to a
        task value no upstream task set raises :class:`_Unresolved`."""

        def replace(found: re.Match[str]) -> str:
            value = self._value(found[1])
            return found[0] if value is None else value

        return _REFERENCE.sub(replace, text)

    def _value(self, reference: str) -> str | None:
        if not _PATH.fullmatch(reference):
            return None  # a syntax error: Databricks leaves the reference as it is
        parts = [p.strip("`") for p in _PART.findall(reference)]
        parameters = {str(p["name"]): str(p.get("value", "")) for p in self.run.job_parameters}
        match parts:
            case ["job", "parameters", name] if name in parameters:
                return _REFERENCE.sub(self._job_value, parameters[name])
            case ["task", "name"] | ["task_key"]:
                return self.task.task_key
            case ["task", "run_id"] | ["run_id"]:
                return str(self.task.run_id)
            case ["parent_run_id"]:
                return str(self.run.run_id)
            case ["tasks", key, "values", name]:
                if key not in self._upstream() or name not in self.values.get(key, {}):
                    raise _Unresolved(
                        f"Failed to resolve the dynamic value reference {{{{{reference}}}}}: "
                        f"no upstream task {key!r} of task {self.task.task_key!r} set a "
                        f"value {name!r}."
                    )
                value = self.values[key][name]
                return value if isinstance(value, str) else json.dumps(value)
        return self._run_value(reference, parts)

    def _run_value(self, reference: str, parts: list[str]) -> str | None:
        """What a reference to the run as a whole resolves to; one in a namespace Databricks
        knows that names nothing there (``{{job.naem}}``) raises :class:`_Unresolved`, any other
        is no reference (``None``: the text stays as it is)."""
        match parts:
            case ["job", "id"] | ["job_id"] if self.run.job_id is not None:
                return str(self.run.job_id)
            case ["job", "name"]:
                return self.run.run_name
            case ["job", "run_id"]:
                return str(self.run.run_id)
            case ["job", "repair_count"]:
                return "0"
            case [namespace, *_] if namespace in _NAMESPACES:
                raise _Unresolved(
                    f"Failed to resolve the dynamic value reference {{{{{reference}}}}}: "
                    f"{namespace!r} has no such value."
                )
        return None

    def _job_value(self, found: re.Match[str]) -> str:
        """What a reference inside a job parameter's value resolves to: the run's own values (the
        job's parameters are resolved once, for the whole run, so a task's or another
        parameter's value is no value there)."""
        if not _PATH.fullmatch(found[1]):
            return found[0]
        value = self._run_value(found[1], [p.strip("`") for p in _PART.findall(found[1])])
        return found[0] if value is None else value

    def _upstream(self) -> set[str]:
        """The tasks this task waits for, directly or through others."""
        by_key = {task.task_key: task for task in self.run.tasks}
        found: set[str] = set()
        waiting = list(self.task.depends_on)
        while waiting:
            key = waiting.pop()
            if key not in found and key in by_key:
                found.add(key)
                waiting.extend(by_key[key].depends_on)
        return found
