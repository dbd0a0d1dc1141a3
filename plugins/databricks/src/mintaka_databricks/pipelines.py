"""Pipelines compiled to Databricks Jobs 2.2: one task per step, ``depends_on`` for the edges.

Each task is a ``notebook_task`` running Mintaka's step runner
(:mod:`mintaka_databricks.step_runner`, uploaded by ``submit`` as a Python notebook to
``<settings.step_runner>-<digest>``, a path named by the runner's own content, so a task always
runs the runner it was compiled for, whatever another Mintaka uploads meanwhile; a submit that
uploads it deletes the other releases' runners beside it that nothing runs any more) on serverless
compute with the ``mintaka`` package installed, passing the step's entry point, the pipeline's
parameters (which become job parameters) and its wired inputs as dynamic value references in its
``base_parameters``. A notebook, because only a notebook can set task values: the runner sets
the step's outputs that later steps read as task values (told which by the task's
``mintaka_exports``), ends with all its outputs as the notebook's result, and
fails the task when a gate's outcome did not pass. ``get_pipeline_run`` reads each ended task's
outputs back from ``runs/get-output`` (the notebook's result, or a failed gate's error), with a
gate step's outcome; a failed gate's step fails with the gate's reason.

A pipeline is one job named ``mintaka/<pipeline>`` (created, or reset to the compiled definition,
on submit); a submit is a ``run-now`` with an idempotency token, so a retried request whose answer
was lost starts no second run. The job runs one run at a time (``max_concurrent_runs: 1``, and
``queue.enabled: false``, since Jobs 2.2 queues the runs of a job created or reset without it): a
submit while a run is active fails with ``Conflict`` naming that run before it resets the job or
uploads the runner, and Databricks skips a run started in between, which fails the submit the
same way, where a queue would have run both back to back.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import math
import posixpath
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mintaka.domain.pipelines import (
    GateOutcome,
    NativePipeline,
    PipelineRun,
    PipelineSpec,
    PipelineStatus,
    StepRun,
    StepSpec,
)
from mintaka.errors import BackendError, Conflict, MintakaError, NotFound, ValidationError
from mintaka.interfaces import PipelineExecution
from mintaka.numbers import as_float
from mintaka.pipelines.contract import parameter_text, refuse_controller_step
from mintaka_databricks import step_runner
from mintaka_databricks.errors import BACKEND
from mintaka_databricks.step_runner import (
    PREFIX,
    TaskArguments,
    gate_refusal,
    plain,
    read_outputs,
    read_result,
)
from mintaka_databricks.workspace import WorkspaceAccess

log = logging.getLogger(__name__)

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


_PLAIN_IDENTIFIER = re.compile(r"[A-Za-z0-9_]+")


def _reference(*path: str) -> str:
    """A dynamic value reference to ``path`` (``tasks``, a task key, ``values``, a key), which
    Databricks replaces by the value when the task starts. An identifier of anything but
    letters, digits and ``_`` (a step named ``prep-data``) is quoted in backticks: unquoted,
    Databricks takes the reference as a syntax error and hands the task its literal text."""
    return "{{" + ".".join(_identifier(part) for part in path) + "}}"


# The namespaces Databricks documents for dynamic value references (``{{input}}`` is a for-each
# task's item) and the older bare references it still replaces (``{{run_id}}``): a reference in
# one of them is replaced by its value, or refused when it names nothing there; any other
# ``{{...}}`` is a syntax error to Databricks, which hands the task its literal text.
_NAMESPACES = ("job", "task", "tasks", "workspace", "input")
_BARE_REFERENCES = (
    "job_id",
    "run_id",
    "parent_run_id",
    "start_date",
    "start_time",
    "task_key",
    "task_retry_count",
)
_HELD_REFERENCE = re.compile(
    r"\{\{\s*(`?)(?:" + "|".join((*_NAMESPACES, *_BARE_REFERENCES)) + r")\1"
    r"\s*(?:\..*?)?\}\}",
    re.DOTALL | re.IGNORECASE,
)


def _refuse_reference(pipeline: str, name: str, text: str) -> None:
    """Refuse parameter ``name`` whose value ``text`` holds a reference in a namespace of
    Databricks' dynamic value references (``{{job.id}}``, ``{{tasks.x.values.y}}``, the older
    ``{{run_id}}``): Databricks replaces it by a value, or refuses it when it names nothing there,
    and documents no escape for it, so the step would read another value than the one given.
    Other ``{{...}}`` text (a prompt's ``{{question}}``) reaches the step as it is."""
    found = _HELD_REFERENCE.search(text)
    if found:
        raise ValidationError(
            f"pipeline {pipeline!r}: parameter {name!r} holds {text!r}; Databricks takes "
            f"{found[0]!r} in a job parameter as a dynamic value reference and has no escape for "
            "it, so the step would not read this text: pass it without that reference"
        )


def _identifier(name: str) -> str:
    if _PLAIN_IDENTIFIER.fullmatch(name):
        return name
    if "`" in name or "}" in name:
        raise ValidationError(
            f"{name!r} cannot be named in a Databricks dynamic value reference (a backtick or "
            "a closing brace cannot be quoted); rename it"
        )
    return f"`{name}`"


def _read_outputs(spec: PipelineSpec) -> dict[str, tuple[str, ...]]:
    """Step -> the output fields of it that later steps read: only those become task values,
    each of which may hold no more than 48 KiB."""
    read: dict[str, set[str]] = {}
    for step in spec.steps:
        for source, name in step.references().values():
            if source != "params":
                read.setdefault(source, set()).add(name)
    return {step: tuple(sorted(names)) for step, names in read.items()}


def _json_inputs(spec: PipelineSpec, step: StepSpec) -> tuple[str, ...]:
    """The inputs of ``step`` that reach its task as JSON text: every upstream output (the step
    runner sets each as its JSON) and every parameter not declared as text (its job parameter is
    the value's JSON, as ``parameter_text`` writes it)."""
    return tuple(
        sorted(
            field
            for field, (source, name) in step.references().items()
            if source != "params" or not isinstance(spec.parameters.get(name), str)
        )
    )


def _workspace_path(path: str) -> str:
    """Where the Workspace API finds the file a task runs as ``path`` (``/Workspace/Shared/x``
    is the API's ``/Shared/x``)."""
    return path.removeprefix("/Workspace") if path.startswith("/Workspace/") else path


def runner_source() -> bytes:
    """The step runner's source, as ``submit`` uploads it."""
    return Path(step_runner.__file__).read_bytes()


def runner_path(base: str) -> str:
    """Where the tasks compiled here run the step runner: ``base`` (``settings.step_runner``)
    followed by the first 12 hex digits of the SHA-256 of the runner's source. Every pipeline of
    a workspace shares the base path, so a runner uploaded by another Mintaka release at one
    path would run the tasks of a run in flight that were compiled for this one, reading their
    parameters another way; a path per runner's content leaves each task the runner it was
    compiled for."""
    return f"{base}-{hashlib.sha256(runner_source()).hexdigest()[:12]}"


def _notebook_paths(found: Any) -> set[str]:
    """The workspace notebooks a job's settings or a run (as the API answers, ``as_dict``) name
    anywhere, as the Workspace API names them: a task's ``notebook_task``, and one nested in
    any other task shape (the task a ``for_each_task`` runs), so that no runner something
    still runs is taken for unused."""
    if isinstance(found, list):
        return set().union(*(_notebook_paths(item) for item in found))
    if not isinstance(found, dict):
        return set()
    paths = set().union(*(_notebook_paths(value) for value in found.values()))
    notebook = found.get("notebook_task")
    if isinstance(notebook, dict) and notebook.get("notebook_path"):
        paths.add(_workspace_path(str(notebook["notebook_path"])))
    return paths


def _time(ms: int | None) -> datetime | None:
    return None if not ms else datetime.fromtimestamp(ms / 1000, tz=UTC)


def _task_arguments(task: dict[str, Any]) -> TaskArguments | None:
    """What task ``task`` was told to run (``None``: no step runner's arguments)."""
    parameters = (task.get("notebook_task") or {}).get("base_parameters") or {}
    try:
        return TaskArguments.from_base_parameters({str(k): str(v) for k, v in parameters.items()})
    except ValidationError:
        return None


def _unread_gate(step: str, kind: str, error: str | None) -> str:
    """Why gate ``step`` failed when its task's output holds no outcome (the task failed before
    the gate decided, or the outcome line was cut off): the first line of the error reported."""
    lines = [line.strip() for line in plain(error).splitlines() if line.strip()]
    said = lines[0] if lines else "no error was reported"
    return f"gate {step!r} ({kind}) failed without an outcome in its task's output: {said}"


def _gate_outcome(outputs: dict[str, Any]) -> GateOutcome | None:
    """A gate step's outcome, as its outputs report it (``None`` when they do not)."""
    try:
        return GateOutcome.model_validate(
            {"passed": outputs["passed"], "checks": outputs.get("checks") or []}
        )
    except (KeyError, ValueError):
        return None


def _refuse_other_runner(pipeline: NativePipeline, base: str, runner: str) -> None:
    """Refuse a pipeline whose tasks run another Mintaka release's step runner (at ``base``,
    ``settings.step_runner``, or at ``base`` with another digest) rather than this one's
    (``runner``), or a step runner task at any other path (compiled with another
    ``step_runner``): ``submit`` uploads only its own, so those tasks would run whatever that
    path holds, which may read their parameters another way. A task of the user's own
    notebook, at a path no release uploads to (``base-custom``), is left as it is."""
    release = re.compile(re.escape(base) + r"(-[0-9a-f]{12})?")
    other = sorted(
        {
            path
            for task in pipeline.definition.get("tasks") or []
            if (path := str((task.get("notebook_task") or {}).get("notebook_path"))) != runner
            and (release.fullmatch(path) or _task_arguments(task) is not None)
        }
    )
    if other:
        raise ValidationError(
            f"pipeline {pipeline.pipeline!r} runs the step runner at {', '.join(other)}, not this "
            f"Mintaka's at {runner}: it was compiled by another Mintaka release; compile it again"
        )


def _json_parameters(definition: dict[str, Any]) -> dict[str, type]:
    """Job parameter -> the type it is declared with, for each parameter not declared as text:
    one a task names in ``mintaka_json_params`` (every such parameter, read by a step or not), or
    that a step reads as JSON (named in its task's ``mintaka_json_inputs``, all a task compiled
    before ``mintaka_json_params`` tells): the type of the JSON its default holds, which compile
    wrote as ``parameter_text`` does."""
    defaults = {
        str(p["name"]): str(p.get("default", "")) for p in definition.get("parameters") or []
    }
    references: dict[str, str] = {}
    for name in defaults:
        with contextlib.suppress(ValidationError):
            references[_reference("job", "parameters", name)] = name
    declared: dict[str, type] = {}
    for task in definition.get("tasks") or []:
        arguments = _task_arguments(task)
        if arguments is None:
            continue
        typed = {name for name in arguments.json_parameters or () if name in defaults}
        for field, reference in arguments.inputs.items():
            read = references.get(reference)
            if read is not None and field in (arguments.json_inputs or ()):
                typed.add(read)
        for name in typed:
            with contextlib.suppress(ValueError):
                declared[name] = type(json.loads(defaults[name]))
    return declared


def _is_json_of(kind: type, text: str) -> bool:
    """Whether ``text`` is the JSON of a value of ``kind`` (a float parameter takes an int, as
    the step's field does; a number is finite, a bool no number)."""
    try:
        value = json.loads(text)
    except ValueError:
        return False
    if kind is bool or isinstance(value, bool):
        return kind is bool and isinstance(value, bool)
    if kind is int:
        return isinstance(value, int)
    if kind is float:
        # an int too large for a float reads as infinite (as_float), so is no float
        return isinstance(value, int | float) and math.isfinite(as_float(value))
    return isinstance(value, kind)


def _check_parameters(pipeline: NativePipeline, parameters: dict[str, str]) -> None:
    """Refuse a parameter ``pipeline`` does not declare, or text of a parameter not declared as
    text that is not the JSON of its declared type, whether a step reads it or not. Databricks
    takes any text, so the run would start and a step fail in the cloud, or record a value of
    another type than the parameter's. A value given or
    declared that Databricks would take as a dynamic value reference is refused as well."""
    declared = {
        str(p["name"]): str(p.get("default", ""))
        for p in pipeline.definition.get("parameters") or []
    }
    typed = _json_parameters(pipeline.definition)
    for name, value in parameters.items():
        if name not in declared:
            raise ValidationError(f"pipeline {pipeline.pipeline!r} declares no parameter {name!r}")
        _refuse_reference(pipeline.pipeline, name, str(value))
        kind = typed.get(name)
        if kind is not None and not _is_json_of(kind, str(value)):
            raise ValidationError(
                f"pipeline {pipeline.pipeline!r}: parameter {name!r} is declared as "
                f"{kind.__name__}; {value!r} is not the JSON of one"
            )
    for name, default in declared.items():
        if name not in parameters:
            _refuse_reference(pipeline.pipeline, name, default)


class JobsPipelines(WorkspaceAccess, PipelineExecution):
    """``Capability.PIPELINES`` over Databricks Jobs."""

    def compile(self, spec: PipelineSpec) -> NativePipeline:
        for step in spec.steps:
            refuse_controller_step(step, "databricks", "Databricks")
        taken = sorted(key for key in spec.parameters if key.startswith(PREFIX))
        if taken:
            raise ValidationError(
                f"pipeline parameter(s) {', '.join(taken)} cannot run on Databricks: names "
                f"starting with {PREFIX!r} are the step runner's own (a job parameter would "
                "replace the task parameter of the same name)"
            )
        for key, value in spec.parameters.items():
            _refuse_reference(spec.name, key, parameter_text(value))
        read = _read_outputs(spec)
        json_parameters = tuple(
            sorted(key for key, value in spec.parameters.items() if not isinstance(value, str))
        )
        tasks = []
        for step in spec.steps:
            # Wired inputs as dynamic value references: a parameter, or a value an upstream task
            # set with dbutils.jobs.taskValues in its notebook.
            inputs = {
                field: _reference("job", "parameters", name)
                if source == "params"
                else _reference("tasks", source, "values", name)
                for field, (source, name) in step.references().items()
            }
            arguments = TaskArguments(
                pipeline=spec.name,
                step=step.name,
                entrypoint=step.entrypoint,
                gate=step.gate.value if step.gate is not None else None,
                run_id=_reference("job", "run_id"),
                parameters={key: _reference("job", "parameters", key) for key in spec.parameters},
                inputs=inputs,
                exports=read.get(step.name, ()),
                json_inputs=_json_inputs(spec, step),
                json_parameters=json_parameters,
            ).base_parameters()
            task: dict[str, Any] = {
                "task_key": step.name,
                "depends_on": [{"task_key": upstream} for upstream in step.upstream()],
                "notebook_task": {
                    "notebook_path": runner_path(self.settings.step_runner),
                    "base_parameters": arguments,
                    "source": "WORKSPACE",
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
                {"name": key, "default": parameter_text(value)}
                for key, value in spec.parameters.items()
            ],
            "environments": [
                {
                    "environment_key": ENVIRONMENT,
                    "spec": {"client": "2", "dependencies": ["mintaka"]},
                }
            ],
            "max_concurrent_runs": 1,
            "queue": {"enabled": False},
        }
        return NativePipeline(pipeline=spec.name, format=FORMAT, definition=definition)

    def _job_ids(self, name: str, pipeline: str) -> list[int]:
        """The ids, oldest first, of pipeline ``pipeline``'s jobs: named ``name`` exactly and
        tagged as that pipeline's. The Jobs name filter ignores case, so it may also list jobs
        that are someone else's (``Mintaka/Train``); those are never reset or deleted. A job
        listed without its settings leaves its owner unknown, so it fails the lookup
        (``BackendError``) before anything is changed."""
        jobs = self._call(f"finding job {name}", lambda: list(self.client.jobs.list(name=name)))
        found: list[int] = []
        for job in jobs:
            if job.job_id is None:
                continue
            if job.settings is None:
                raise BackendError(
                    f"job {job.job_id} was listed without its settings, so whether it is "
                    f"pipeline {pipeline!r}'s job {name!r} is unknown",
                    BACKEND,
                )
            if (
                job.settings.name == name
                and (job.settings.tags or {}).get(PIPELINE_TAG) == pipeline
            ):
                found.append(int(job.job_id))
        return sorted(found)

    def _ensure_job(self, pipeline: NativePipeline, runner: str) -> tuple[int, bool]:
        """The pipeline's job, created or reset to ``pipeline``, and whether the step runner had
        to be uploaded; duplicates (a create retried after its answer was lost) are deleted,
        keeping the oldest. The step runner is uploaded to ``runner`` first (after a running job
        is refused), so a failed upload leaves the job running what it ran before, never a
        notebook that is not there. A definition compiled before it said whether the job queues
        (no ``queue``) gets the queue turned off, as compile turns it off now: Jobs 2.2 would
        queue its runs, and a run started in between would wait instead of failing the submit.
        The job is found by its exact name and the pipeline's tag, which it always carries
        (``_job_ids``): a job of another name or owner is never reset or deleted."""
        from databricks.sdk.service.jobs import JobSettings

        name, owner = str(pipeline.definition["name"]), str(pipeline.pipeline)
        tags = {**(pipeline.definition.get("tags") or {}), PIPELINE_TAG: owner}
        settings = JobSettings.from_dict(
            {"queue": {"enabled": False}, **pipeline.definition, "tags": tags}
        )
        found = self._job_ids(name, owner)
        if found:
            self._refuse_while_running(owner, found[0])
        uploaded = self._upload_runner(runner)
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
                    queue=settings.queue,
                ),
            )
            found = self._job_ids(name, owner)
            if not found:
                raise BackendError(f"job {name!r} was created but is not listed", BACKEND)
            job_id = found[0]
        for duplicate in found[1:]:
            self._delete_duplicate_job(name, owner, duplicate)
        return job_id, uploaded

    def _delete_duplicate_job(self, name: str, pipeline: str, job_id: int) -> None:
        try:
            self._call(
                f"deleting duplicate job {job_id}",
                lambda: self.client.jobs.delete(job_id),
            )
        except (NotFound, ValidationError):
            # Jobs answers a job that is gone with 400 "does not exist": the SDK's retry of a
            # delete whose answer was lost. Done, unless the job is still there.
            if job_id in self._job_ids(name, pipeline):
                raise

    def submit(self, pipeline: NativePipeline, parameters: dict[str, str]) -> PipelineRun:
        if pipeline.format != FORMAT:
            raise BackendError(f"cannot run a {pipeline.format!r} pipeline on Databricks", BACKEND)
        _check_parameters(pipeline, parameters)
        runner = runner_path(self.settings.step_runner)
        _refuse_other_runner(pipeline, self.settings.step_runner, runner)
        job_id, uploaded = self._ensure_job(pipeline, runner)
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
            raise Conflict(self._busy(pipeline.pipeline, self._active_runs(job_id)))
        if uploaded and self.settings.prune_step_runners:
            self._prune_runners(runner)
        return self._pipeline_run(raw)

    def _prune_runners(self, runner: str) -> None:
        """Delete the step runners other Mintaka releases uploaded beside ``runner`` (notebooks
        named ``settings.step_runner`` followed by ``-`` and 12 hex digits) that no job's task
        and no active run's task runs, so the folder does not keep one notebook per release for
        ever. Best effort, once the run has started: a failure is logged and the submit stands.
        Any other notebook, a user's own included, is left as it is."""
        from databricks.sdk.service.workspace import ObjectType

        base = _workspace_path(self.settings.step_runner)
        release = re.compile(re.escape(base) + r"-[0-9a-f]{12}")
        current = _workspace_path(runner)
        try:
            found = self._call(
                f"listing {posixpath.dirname(current)}",
                lambda: list(self.client.workspace.list(posixpath.dirname(current))),
            )
            older = {
                str(item.path)
                for item in found
                if item.path != current
                and release.fullmatch(str(item.path))
                and item.object_type is ObjectType.NOTEBOOK
            }
            if older:
                for path in sorted(older - self._runners_in_use()):
                    self._call(
                        f"deleting the step runner {path}",
                        lambda path=path: self.client.workspace.delete(path),  # type: ignore[misc]
                    )
                    log.info("deleted the step runner %s, which no job runs any more", path)
        except MintakaError as exc:
            log.warning("older step runners beside %s were left in place: %s", current, exc)

    def _runners_in_use(self) -> set[str]:
        """The workspace notebooks a task of any job, or of any active run, runs, at any depth
        (the task of a ``for_each_task`` too). A job listed without its settings leaves what it
        runs unknown, so it fails the clean-up (``BackendError``) rather than let it delete a
        runner that job may run."""
        jobs = self._call("listing jobs", lambda: list(self.client.jobs.list(expand_tasks=True)))
        runs = self._call(
            "listing active runs",
            lambda: list(self.client.jobs.list_runs(active_only=True, expand_tasks=True)),
        )
        used: set[str] = set()
        for job in jobs:
            if job.settings is None:
                raise BackendError(
                    f"job {job.job_id} was listed without its settings, so the step runners "
                    "it runs are unknown",
                    BACKEND,
                )
            used |= _notebook_paths(job.settings.as_dict())
        for run in runs:
            used |= _notebook_paths(run.as_dict())
        return used

    def _upload_runner(self, runner: str) -> bool:
        """Put the step runner where the tasks run it (``runner``, a Python notebook), unless the
        same source is there already, so that a fresh workspace needs nothing set up by hand;
        whether it was uploaded."""
        from databricks.sdk.service.workspace import ExportFormat, ImportFormat, Language

        source = runner_source()
        path = _workspace_path(runner)
        try:
            found = self._call(
                f"reading the step runner {path}",
                lambda: self.client.workspace.export(path, format=ExportFormat.SOURCE),
            )
            if found.content and base64.b64decode(found.content) == source:
                return False
        except NotFound:
            pass
        folder = posixpath.dirname(path)
        self._call(f"creating folder {folder}", lambda: self.client.workspace.mkdirs(folder))
        self._call(
            f"uploading the step runner to {path}",
            lambda: self.client.workspace.import_(
                path,
                content=base64.b64encode(source).decode("ascii"),
                format=ImportFormat.SOURCE,
                language=Language.PYTHON,
                overwrite=True,
            ),
        )
        return True

    def _active_runs(self, job_id: int) -> list[str]:
        active = self._call(
            f"listing active runs of job {job_id}",
            lambda: list(self.client.jobs.list_runs(job_id=job_id, active_only=True)),
        )
        return sorted(str(r.run_id) for r in active)

    def _refuse_while_running(self, pipeline: str, job_id: int) -> None:
        """Refuse a submit while the pipeline's job has a run going, before its definition is
        reset: a submit that starts nothing changes nothing (``run-now`` still refuses a run
        started in between)."""
        active = self._active_runs(job_id)
        if active:
            raise Conflict(self._busy(pipeline, active))

    @staticmethod
    def _busy(pipeline: str, active: list[str]) -> str:
        """Why a run of ``pipeline`` was not started: the job's ``active`` runs."""
        running = ", ".join(active) or "one that has just ended"
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
        """The pipeline run that Jobs run ``raw`` (as ``runs/get`` answers) is, with the outputs
        and gate outcome of each step that has ended."""
        state = raw.get("state") or {}
        steps = []
        gate_failure: str | None = None
        for task in raw.get("tasks") or []:
            step = self._step_run(task)
            if step is None:
                continue
            if step.gate is not None and not step.gate.passed:
                gate_failure = gate_failure or step.failure_reason
            steps.append(step)
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
            failure_reason=(gate_failure or state.get("state_message") or None)
            if status is PipelineStatus.FAILED
            else None,
        )

    def _step_run(self, task: dict[str, Any]) -> StepRun | None:
        """The step task ``task`` ran (``None``: it never started), its outputs read back from the
        runner's output once it has ended; a gate whose outcome did not pass is a failed step."""
        task_state = task.get("state") or {}
        life_cycle, result = task_state.get("life_cycle_state"), task_state.get("result_state")
        if _never_ran(life_cycle, result):
            return None
        status = _status(life_cycle, result)
        ended = status not in (PipelineStatus.PENDING, PipelineStatus.RUNNING)
        outputs, error = self._task_outputs(task) if ended else ({}, None)
        arguments = _task_arguments(task)
        gate = _gate_outcome(outputs) if arguments is not None and arguments.gate else None
        failure = task_state.get("state_message") or None
        if gate is not None and not gate.passed and arguments is not None:
            status = PipelineStatus.FAILED
            failure = gate_refusal(arguments.step, arguments.gate, gate)
        elif gate is None and arguments is not None and arguments.gate:
            failure = _unread_gate(arguments.step, arguments.gate, error or failure)
        return StepRun(
            name=task["task_key"],
            status=status,
            started_at=_time(task.get("start_time")),
            ended_at=_time(task.get("end_time")),
            failure_reason=failure if status is PipelineStatus.FAILED else None,
            outputs=outputs,
            gate=gate,
        )

    def _task_outputs(self, task: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        """The outputs the step runner left in task ``task``'s output: its notebook's result, else
        (a gate that did not pass) the outputs line of its error trace or error (``{}`` when the
        task runs no runner, or its output holds no outputs); with the error the output reports
        (``None``: none)."""
        if "notebook_task" not in task or task.get("run_id") is None:
            return {}, None
        number = int(task["run_id"])
        output = self._call(
            f"reading the output of task run {number}",
            lambda: self.client.jobs.get_run_output(number),
        )
        if output.notebook_output is not None and output.notebook_output.result is not None:
            return read_result(output.notebook_output.result), output.error
        found = read_outputs(output.error_trace) or read_outputs(output.error)
        return found, output.error

    def wait_for_pipeline_run(self, run_id: str, timeout_seconds: float = 3600) -> PipelineRun:
        """Poll the run on the backend's clock until it has ended; the steps' outputs are read
        once it has."""
        clock = self._elapsed_clock()
        deadline = clock.time() + timeout_seconds
        number = self._run_number(run_id)
        while True:
            raw = self._raw_run(number)
            state = raw.get("state") or {}
            status = _status(state.get("life_cycle_state"), state.get("result_state"))
            if status not in (PipelineStatus.PENDING, PipelineStatus.RUNNING):
                return self._pipeline_run(raw)
            if clock.time() >= deadline:
                raise BackendError(
                    f"run {run_id} still {status.value} after {timeout_seconds}s", BACKEND
                )
            clock.sleep(self.settings.poll_seconds)

    def stop_pipeline_run(self, run_id: str) -> None:
        number = self._run_number(run_id)
        self._call(f"cancelling run {run_id}", lambda: self.client.jobs.cancel_run(number))
