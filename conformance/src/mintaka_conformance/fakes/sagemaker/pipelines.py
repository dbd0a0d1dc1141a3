"""SageMaker Pipelines: validated definitions, and executions that run their steps.

moto 5.2.5 stores pipelines and marks every execution ``Succeeded`` at once, without steps. With the
extension, ``CreatePipeline`` / ``UpdatePipeline`` check the definition
(:mod:`.pipeline_definition`), ``StartPipelineExecution`` checks the parameters against it, and an
execution walks its steps in dependency order:

* a Processing, Training, Model, ... step succeeds unless the script fails it; a Processing step's
  property files hold the JSON the script gives them (and are written to the step's S3 output,
  where that output's ``S3Uri`` resolves to a bucket in moto's S3);
* a Condition step evaluates its ``Conditions`` for real (``Parameters``, ``Execution`` variables,
  ``Std:JsonGet`` on property files, ``Std:Join``) and runs its ``IfSteps`` or ``ElseSteps``;
  an expression that cannot be evaluated (a property file the script left empty) fails it;
* a Fail step fails with its ``ErrorMessage`` and ends the execution: no further step starts;
* a RegisterModel step creates a model package version in its group (``Metadata.RegisterModel``);
* after a failed step no further step starts, and the execution ends ``Failed`` with
  ``FailureReason`` "Step failure: One or multiple steps failed.", as AWS reports it.

By default an execution runs to its end inside ``StartPipelineExecution``. Scripted with
:meth:`~.patching.SageMakerFake.script_pipeline_execution` (``paced=True``), it starts
``Executing`` and each ``DescribePipelineExecution`` (or every ``reads_per_step``-th) finishes the
running step and starts the next: the one-step-per-describe pacing the extension uses for
endpoint statuses.
``StopPipelineExecution`` moves a running execution to ``Stopping``; the next describe stops the
running step and ends it ``Stopped``.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
from typing import Any

from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.sagemaker.models import FakePipeline, SageMakerModelBackend
from moto.sagemaker.responses import SageMakerResponse
from moto.sagemaker.utils import arn_formatter

from . import registry
from .errors import ConflictException, ResourceNotFound, ValidationError
from .originals import call_original, original_body
from .pipeline_definition import Definition, StepDef, parse_definition
from .state import ExecutionScript, ExecutionState, StepExecution, state_of

TERMINAL = frozenset({"Succeeded", "Failed", "Stopped"})
STEP_FAILURE = "Step failure: One or multiple steps failed."
_INDEX = re.compile(r"^(?P<key>[^\[\]]*)((?:\[\d+\])*)$")


class Unresolvable(Exception):
    """An expression the execution cannot evaluate (the step that needs it fails)."""


# --- definitions ---------------------------------------------------------------------------------


def _definition_text(value: Any) -> str | dict[str, Any]:
    return value if isinstance(value, dict | str) else str(value)


def create_pipeline(self: SageMakerResponse) -> ActionResult:
    backend = self.sagemaker_backend
    body = self._get_param("PipelineDefinition")
    if body is not None:
        parse_definition(body)
    result = call_original(self, "create_pipeline")
    if body is None:  # read from S3 by moto: check what it read, and undo the create if bad
        name = self._get_param("PipelineName")
        try:
            parse_definition(_definition_text(backend.pipelines[name].pipeline_definition))
        except ValidationError:
            del backend.pipelines[name]
            raise
    return result


def update_pipeline(self: SageMakerResponse) -> ActionResult:
    backend = self.sagemaker_backend
    name = self._get_param("PipelineName")
    body = self._get_param("PipelineDefinition")
    if body is not None:
        parse_definition(body)
    before = backend.pipelines[name].pipeline_definition if name in backend.pipelines else None
    result = call_original(self, "update_pipeline")
    if body is None and self._get_param("PipelineDefinitionS3Location") is not None:
        try:
            parse_definition(_definition_text(backend.pipelines[name].pipeline_definition))
        except ValidationError:
            backend.pipelines[name].pipeline_definition = before  # type: ignore[assignment]
            raise
    return result


# --- starting -----------------------------------------------------------------------------------


# The text a run value of a typed parameter is taken in: what the SageMaker Python SDK writes
# (``str()`` of an int, a finite float or a bool). Python's int() and float() read more (digit
# separators, blanks around, a leading plus, nan, inf, non-ASCII digits), which is refused.
_PLAIN = {
    "Integer": re.compile(r"-?[0-9]+"),
    "Float": re.compile(r"-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?"),
    "Boolean": re.compile(r"true|false", re.IGNORECASE),
}


def _typed_value(kind: str, raw: str) -> Any:
    """The value of a parameter of type ``kind`` given as ``raw``; ValueError when the text is
    not one of that type (an Integer or a finite Float written plainly, a Boolean ``true`` or
    ``false`` in any case, any String)."""
    plain = _PLAIN.get(kind)
    if plain is None:
        return raw
    if plain.fullmatch(raw) is None:
        raise ValueError(raw)
    if kind == "Integer":
        return int(raw)
    if kind == "Boolean":
        return raw.lower() == "true"
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError(raw)
    return value


def _typed(definition: Definition, given: list[dict[str, Any]]) -> dict[str, Any]:
    values = {name: p.default for name, p in definition.parameters.items()}
    for item in given:
        name, raw = item.get("Name"), item.get("Value")
        parameter = definition.parameters.get(str(name))
        if parameter is None:
            raise ValidationError(
                f"Parameter {name!r} is not declared in the pipeline definition; it declares "
                f"{sorted(definition.parameters)}."
            )
        try:
            values[parameter.name] = _typed_value(parameter.type, str(raw))
        except ValueError:
            raise ValidationError(
                f"Parameter {parameter.name!r} is of type {parameter.type}; {raw!r} is not."
            ) from None
    return values


def _pipeline(backend: SageMakerModelBackend, name: str) -> FakePipeline:
    pipeline = backend.pipelines.get(name)
    if pipeline is None:
        raise ResourceNotFound(f"Pipeline {name} does not exist.")
    return pipeline


def start_pipeline_execution(self: SageMakerResponse) -> ActionResult:
    backend = self.sagemaker_backend
    state = state_of(backend)
    name = self._get_param("PipelineName")
    pipeline = _pipeline(backend, name)
    definition = parse_definition(_definition_text(pipeline.pipeline_definition))
    parameters = _typed(definition, self._get_param("PipelineParameters") or [])
    with state.lock:
        result = call_original(self, "start_pipeline_execution")
        arn = str(result.result["PipelineExecutionArn"])  # type: ignore[index]
        queued = state.execution_scripts.get(name)
        script = queued.popleft() if queued else ExecutionScript(paced=False)
        execution = ExecutionState(
            arn=arn,
            pipeline=name,
            execution_id=arn.rsplit("/", 1)[-1],
            definition=definition,
            parameters=parameters,
            script=script,
            started=utcnow(),
        )
        state.executions[arn] = execution
        _tick(backend, execution)
        while not script.paced and execution.status not in TERMINAL:
            _tick(backend, execution)
        _sync_moto(backend, execution)
    return result


# --- running ------------------------------------------------------------------------------------


def _step_state(execution: ExecutionState, name: str) -> StepExecution | None:
    return next((s for s in execution.steps if s.name == name), None)


def _ready(execution: ExecutionState) -> StepDef | None:
    definition: Definition = execution.definition
    started = {s.name for s in execution.steps}
    for step in definition.steps.values():
        if step.name in started:
            continue
        ok = True
        for upstream in definition.upstream(step):
            found = _step_state(execution, upstream)
            if found is None or found.status != "Succeeded":
                ok = False
                break
        if ok and step.branch is not None:
            condition = _step_state(execution, step.branch[0])
            outcome = ((condition.metadata if condition else {}).get("Condition") or {}).get(
                "Outcome"
            )
            ok = outcome == ("True" if step.branch[1] else "False")
        if ok:
            return step
    return None


def _tick(backend: SageMakerModelBackend, execution: ExecutionState) -> None:
    """One step of progress: finish the running step, then start the next ready one (or end)."""
    if execution.status in TERMINAL:
        return
    now = utcnow()
    running = [s for s in execution.steps if s.status in ("Executing", "Starting")]
    if execution.status == "Stopping":
        for step in running:
            step.status, step.end = "Stopped", now
        execution.status = "Stopped"
        return
    for step in running:
        _finish(backend, execution, step)
    failed = [s for s in execution.steps if s.status == "Failed"]
    if failed:
        execution.status = "Failed"
        execution.failure_reason = STEP_FAILURE
        return
    nxt = _ready(execution)
    if nxt is None:
        execution.status = "Succeeded"
        return
    execution.steps.append(
        StepExecution(
            name=nxt.name,
            type=nxt.type,
            status="Executing",
            start=now,
            display_name=nxt.raw.get("DisplayName"),
            description=nxt.raw.get("Description"),
        )
    )


def _fail(step: StepExecution, reason: str) -> None:
    step.status, step.failure_reason, step.end = "Failed", reason, utcnow()


def _finish(backend: SageMakerModelBackend, execution: ExecutionState, step: StepExecution) -> None:
    definition: Definition = execution.definition
    spec = definition.steps[step.name]
    arguments = spec.raw.get("Arguments") or {}
    try:
        if step.type == "Condition":
            outcome = all(_condition(execution, c) for c in arguments.get("Conditions", []))
            step.metadata = {"Condition": {"Outcome": "True" if outcome else "False"}}
        elif step.type == "Fail":
            message = _resolve(execution, arguments.get("ErrorMessage", ""))
            step.metadata = {"Fail": {"ErrorMessage": str(message)}}
            _fail(step, str(message))
            return
        else:
            step.arguments = _resolve(execution, arguments)
    except Unresolvable as exc:
        _fail(step, f"Unable to evaluate the step's expressions: {exc}")
        return
    reason = execution.script.failures.get(step.name)
    if reason is not None:
        _fail(step, reason)
        return
    if step.type == "RegisterModel":
        try:
            arn = registry.register_from_pipeline(backend, step.arguments)
        except ValidationError as exc:
            _fail(step, exc.message)
            return
        step.metadata = {"RegisterModel": {"Arn": arn}}
    elif step.type != "Condition":
        step.metadata = _job_metadata(backend, execution, step)
        if step.type == "Processing":
            _write_property_files(backend, execution, spec, step)
    step.status, step.end = "Succeeded", utcnow()


_JOB_KINDS = {
    "Processing": ("ProcessingJob", "processing-job"),
    "Training": ("TrainingJob", "training-job"),
    "Transform": ("TransformJob", "transform-job"),
    "Tuning": ("TuningJob", "hyper-parameter-tuning-job"),
    "Model": ("Model", "model"),
}


def _job_metadata(
    backend: SageMakerModelBackend, execution: ExecutionState, step: StepExecution
) -> dict[str, Any]:
    kind = _JOB_KINDS.get(step.type)
    if kind is None:
        return {}
    job = f"pipelines-{execution.execution_id}-{step.name}"[:63]
    return {kind[0]: {"Arn": arn_formatter(kind[1], job, backend.account_id, backend.region_name)}}


def _property_file(execution: ExecutionState, step: str, name: str) -> Any:
    found = _step_state(execution, step)
    if found is None or found.status != "Succeeded":
        raise Unresolvable(f"step {step!r} has not succeeded, so its property files are empty")
    files = execution.script.property_files.get(step, {})
    if name not in files:
        raise Unresolvable(f"property file {step}.{name} holds no JSON")
    return files[name]


def _write_property_files(
    backend: SageMakerModelBackend, execution: ExecutionState, spec: StepDef, step: StepExecution
) -> None:
    """Upload the scripted property files to the step's S3 output, as the job itself would."""
    outputs = ((step.arguments or {}).get("ProcessingOutputConfig") or {}).get("Outputs") or []
    by_name = {o.get("OutputName"): o for o in outputs if isinstance(o, dict)}
    from moto.s3.models import s3_backends

    for file_name, declared in spec.property_files.items():
        content = execution.script.property_files.get(spec.name, {}).get(file_name)
        uri = ((by_name.get(declared["OutputName"]) or {}).get("S3Output") or {}).get("S3Uri")
        if content is None or not isinstance(uri, str) or not uri.startswith("s3://"):
            continue
        bucket, _, prefix = uri.removeprefix("s3://").partition("/")
        key = "/".join(p for p in (prefix.strip("/"), declared["FilePath"].strip("/")) if p)
        with contextlib.suppress(Exception):  # no bucket: the upload is lost, as on AWS
            s3_backends[backend.account_id]["aws"].put_object(
                bucket, key, json.dumps(content).encode()
            )


# --- expressions --------------------------------------------------------------------------------


def _json_path(document: Any, path: str) -> Any:
    value = document
    for part in path.split("."):
        match = _INDEX.match(part)
        if match is None:
            raise Unresolvable(f"path {path!r} is not a JSON path")
        key = match.group("key")
        if key:
            if not isinstance(value, dict) or key not in value:
                raise Unresolvable(f"the property file has no {path!r}")
            value = value[key]
        for index in re.findall(r"\[(\d+)\]", part):
            if not isinstance(value, list) or int(index) >= len(value):
                raise Unresolvable(f"the property file has no {path!r}")
            value = value[int(index)]
    return value


def _get(execution: ExecutionState, target: str) -> Any:
    head, _, rest = target.partition(".")
    if head == "Parameters":
        value = execution.parameters.get(rest)
        if value is None:
            raise Unresolvable(f"parameter {rest!r} has no value and no default")
        return value
    if head == "Execution":
        pipeline_arn = execution.arn.split("/execution/", 1)[0]
        started = (execution.started or utcnow()).isoformat()
        return {
            "PipelineExecutionId": execution.execution_id,
            "PipelineExecutionArn": execution.arn,
            "PipelineName": execution.pipeline,
            "PipelineArn": pipeline_arn,
            "StartDateTime": started,
            "CurrentDateTime": utcnow().isoformat(),
        }.get(rest, f"{execution.execution_id}-{rest}")
    step_name, _, path = rest.partition(".")
    step = _step_state(execution, step_name)
    if step is None or step.status != "Succeeded":
        raise Unresolvable(f"{target!r} reads step {step_name!r}, which has not succeeded")
    if path in ("ProcessingJobStatus", "TrainingJobStatus", "TransformJobStatus"):
        return "Completed"
    for kind, _ in _JOB_KINDS.values():
        if path == f"{kind}Arn":
            return step.metadata.get(kind, {}).get("Arn")
    output = re.match(r"^ProcessingOutputConfig\.Outputs\['([^']+)'\]\.S3Output\.S3Uri$", path)
    if output and isinstance(step.arguments, dict):
        for item in (step.arguments.get("ProcessingOutputConfig") or {}).get("Outputs") or []:
            if item.get("OutputName") == output.group(1):
                return (item.get("S3Output") or {}).get("S3Uri")
    raise Unresolvable(f"the fake cannot evaluate {target!r}")


def _resolve(execution: ExecutionState, value: Any) -> Any:
    if isinstance(value, list):
        return [_resolve(execution, v) for v in value]
    if not isinstance(value, dict):
        return value
    if "Get" in value and len(value) == 1:
        return _get(execution, str(value["Get"]))
    if "Std:JsonGet" in value:
        spec = value["Std:JsonGet"]
        target = str((spec.get("PropertyFile") or {}).get("Get", ""))
        _, step, _, name = target.split(".", 3)
        return _json_path(_property_file(execution, step, name), str(spec["Path"]))
    if "Std:Join" in value:
        spec = value["Std:Join"]
        return str(spec.get("On", "")).join(
            str(_resolve(execution, v)) for v in spec.get("Values", [])
        )
    return {k: _resolve(execution, v) for k, v in value.items()}


def _condition(execution: ExecutionState, condition: dict[str, Any]) -> bool:
    kind = condition["Type"]
    if kind == "Not":
        return not _condition(execution, condition["Expression"])
    if kind == "Or":
        return any(_condition(execution, c) for c in condition["Conditions"])
    if kind in ("In", "NotIn"):
        query = _resolve(execution, condition.get("QueryValue", condition.get("Value")))
        values = [_resolve(execution, v) for v in condition.get("Values", condition.get("In", []))]
        return bool((query in values) == (kind == "In"))
    left = _resolve(execution, condition["LeftValue"])
    right = _resolve(execution, condition["RightValue"])
    if kind == "Equals":
        return bool(left == right)
    if kind == "NotEquals":
        return bool(left != right)
    try:
        return bool(
            {
                "GreaterThan": lambda: left > right,
                "GreaterThanOrEqualTo": lambda: left >= right,
                "LessThan": lambda: left < right,
                "LessThanOrEqualTo": lambda: left <= right,
            }[kind]()
        )
    except TypeError:
        raise Unresolvable(f"cannot compare {left!r} with {right!r}") from None


# --- reading and stopping -----------------------------------------------------------------------


def _execution(backend: SageMakerModelBackend, arn: str) -> ExecutionState:
    found = state_of(backend).executions.get(arn or "")
    if found is None:
        raise ResourceNotFound(f"Pipeline execution {arn} does not exist.")
    return found


def _sync_moto(backend: SageMakerModelBackend, execution: ExecutionState) -> None:
    pipeline = backend.pipelines.get(execution.pipeline)
    fake = pipeline.pipeline_executions.get(execution.arn) if pipeline else None
    if fake is None:
        return
    fake.pipeline_execution_status = execution.status
    fake.pipeline_execution_failure_reason = execution.failure_reason  # type: ignore[assignment]
    fake.last_modified_time = utcnow()


def describe_pipeline_execution(self: SageMakerResponse) -> ActionResult:
    backend = self.sagemaker_backend
    state = state_of(backend)
    arn = self._get_param("PipelineExecutionArn")
    with state.lock:
        execution = _execution(backend, arn)
        execution.reads += 1
        if execution.status == "Stopping" or execution.reads % execution.script.reads_per_step == 0:
            _tick(backend, execution)
        _sync_moto(backend, execution)
        body = original_body(self, "describe_pipeline_execution")
        body["PipelineExecutionStatus"] = execution.status
        body.pop("FailureReason", None)
        if execution.failure_reason:
            body["FailureReason"] = execution.failure_reason
        if not body.get("PipelineExperimentConfig"):
            body.pop("PipelineExperimentConfig", None)
    return ActionResult(body)


def list_pipeline_executions(self: SageMakerResponse) -> ActionResult:
    backend = self.sagemaker_backend
    _pipeline(backend, self._get_param("PipelineName"))
    body = original_body(self, "list_pipeline_executions")
    executions = state_of(backend).executions
    summaries = []
    for listed in body.get("PipelineExecutionSummaries", []):
        item = dict(listed)
        found = executions.get(item["PipelineExecutionArn"])
        item.pop("PipelineExecutionFailureReason", None)
        if found is not None:
            item["PipelineExecutionStatus"] = found.status
            if found.failure_reason:
                item["PipelineExecutionFailureReason"] = found.failure_reason
        summaries.append(item)
    summaries.sort(key=lambda s: s["StartTime"], reverse=True)
    body["PipelineExecutionSummaries"] = summaries
    return ActionResult(body)


def _step_summary(step: StepExecution) -> dict[str, Any]:
    out: dict[str, Any] = {
        "StepName": step.name,
        "StartTime": step.start,
        "StepStatus": step.status,
        "AttemptCount": 1,
        "Metadata": dict(step.metadata),
    }
    if step.display_name:
        out["StepDisplayName"] = step.display_name
    if step.description:
        out["StepDescription"] = step.description
    if step.end is not None:
        out["EndTime"] = step.end
    if step.failure_reason:
        out["FailureReason"] = step.failure_reason
    return out


def list_pipeline_execution_steps(self: SageMakerResponse) -> ActionResult:
    backend = self.sagemaker_backend
    with state_of(backend).lock:
        execution = _execution(backend, self._get_param("PipelineExecutionArn"))
        steps = [_step_summary(s) for s in execution.steps]
    if self._get_param("SortOrder", "Descending") == "Descending":
        steps.reverse()
    token = self._get_param("NextToken")
    start = int(token) if token and str(token).isdigit() else 0
    size = int(self._get_param("MaxResults") or 20)
    body: dict[str, Any] = {"PipelineExecutionSteps": steps[start : start + size]}
    if start + size < len(steps):
        body["NextToken"] = str(start + size)
    return ActionResult(body)


def stop_pipeline_execution(self: SageMakerResponse) -> ActionResult:
    backend = self.sagemaker_backend
    state = state_of(backend)
    arn = self._get_param("PipelineExecutionArn")
    with state.lock:
        execution = _execution(backend, arn)
        if execution.status in TERMINAL:
            raise ConflictException(
                f"Pipeline execution {arn} has ended ({execution.status}) and cannot be stopped."
            )
        execution.status = "Stopping"
        _sync_moto(backend, execution)
    return ActionResult({"PipelineExecutionArn": arn})


OPERATIONS = {
    "create_pipeline": create_pipeline,
    "update_pipeline": update_pipeline,
    "start_pipeline_execution": start_pipeline_execution,
    "describe_pipeline_execution": describe_pipeline_execution,
    "list_pipeline_executions": list_pipeline_executions,
    "list_pipeline_execution_steps": list_pipeline_execution_steps,
    "stop_pipeline_execution": stop_pipeline_execution,
}
