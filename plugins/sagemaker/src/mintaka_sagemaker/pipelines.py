"""Pipelines on SageMaker: a PipelineSpec compiled to a SageMaker Pipelines definition and run.

Compilation (the definition follows the published pipeline-definition schema, version
``2020-12-01``):

* each parameter becomes a typed pipeline parameter (``String``, ``Integer``, ``Float``,
  ``Boolean``) with the spec's value as its default;
* each step becomes a ``Processing`` step running the step's image (or ``image_uri``) with
  ``python -m mintaka.pipelines.step ENTRYPOINT --outputs /opt/ml/processing/output/outputs.json
  --FIELD VALUE ...``. An input wired to ``params.NAME`` is ``{"Get": "Parameters.NAME"}``; one
  wired to ``STEP.FIELD`` is ``Std:JsonGet`` on ``STEP``'s property file ``outputs`` (its
  ``outputs.json``, uploaded under
  ``s3://<bucket>/<prefix>/pipelines/<pipeline>/<execution id>/<step>/``). ``DependsOn`` is the
  step's ``upstream()``;
* a gate step is followed by a ``Condition`` step (``<step>-gate``): ``Equals`` of
  ``Std:JsonGet(outputs, "passed")`` and ``true``, whose ``ElseSteps`` is a ``Fail`` step
  (``<step>-gate-failed``) whose ``ErrorMessage`` names the gate. Steps downstream of the gate
  depend on the condition step, so they start only once the gate has passed;
* a step whose entry point is ``mintaka.pipelines.builtins:register_model`` becomes a
  ``RegisterModel`` step: a version in the model package group named by its ``name`` input, with
  the inference image and, as model data, the ``model.tar.gz`` that the step producing its
  ``model`` input left in its outputs folder (or the S3 URI a parameter gives), always
  ``PendingManualApproval``: approval stays core's. SageMaker creates that version, not core:
  until Mintaka records it, ``mintaka sync`` reports it as a version the store never saw.

``submit`` checks each run parameter against its type, in a plain form (an ``Integer`` as optional
``-`` and ASCII digits, a ``Float`` as a finite decimal with an optional exponent, a ``Boolean``
as ``true`` or ``false``), since SageMaker checks only when the execution starts, after the
definition has changed; it then creates (or updates) the pipeline and starts an
execution; the run id is the execution ARN. ``get_pipeline_run`` reads the execution and its
steps back: each Mintaka step as a :class:`StepRun`, a gate's verdict folded into the gate step
(a failed gate's step fails with the Fail step's message), and the outputs each step uploaded.
``stop_pipeline_run`` stops a running execution; stopping one that has ended changes nothing.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from typing import Any

from mintaka.domain.pipelines import (
    REGISTERED_MODEL,
    REGISTERED_VERSION,
    GateOutcome,
    NativePipeline,
    PipelineRun,
    PipelineSpec,
    PipelineStatus,
    StepRun,
    StepSpec,
)
from mintaka.errors import ConfigurationError, Conflict, NotFound, ValidationError
from mintaka.interfaces import BackendContext
from mintaka.pipelines.contract import refuse_controller_step
from mintaka_sagemaker.aws import AwsCalls, request_token, short_hash
from mintaka_sagemaker.errors import is_already_exists
from mintaka_sagemaker.registry import package_version

FORMAT = "sagemaker-pipelines/2020-12-01"
BUILTINS = "mintaka.pipelines.builtins"
REGISTER_ENTRYPOINT = f"{BUILTINS}:register_model"
STEP_RUNNER = ["python", "-m", "mintaka.pipelines.step"]
OUTPUT_DIR = "/opt/ml/processing/output"
OUTPUTS_FILE = "outputs.json"
PROPERTY_FILE = "outputs"
GATE_SUFFIX = "-gate"
# Options of the step runner itself, which no input field may be named.
RUNNER_OPTIONS = frozenset({"inputs", "outputs", "workdir", "run-id", "run_id", "pipeline", "step"})
# The model artifact a producing step leaves in its outputs folder for a RegisterModel step.
MODEL_TARBALL = "model.tar.gz"
NAME_RULE = re.compile(r"^[A-Za-z0-9\-_]{1,64}$")
GROUP_PARAMETERS = "mintaka_group_parameters"
STATUSES = {
    "Executing": PipelineStatus.RUNNING,
    "Stopping": PipelineStatus.RUNNING,
    "Stopped": PipelineStatus.STOPPED,
    "Failed": PipelineStatus.FAILED,
    "Succeeded": PipelineStatus.SUCCEEDED,
}
STEP_STATUSES = {
    "Starting": PipelineStatus.PENDING,
    "Executing": PipelineStatus.RUNNING,
    "Stopping": PipelineStatus.RUNNING,
    "Stopped": PipelineStatus.STOPPED,
    "Failed": PipelineStatus.FAILED,
    "Succeeded": PipelineStatus.SUCCEEDED,
}
TERMINAL = frozenset({PipelineStatus.SUCCEEDED, PipelineStatus.FAILED, PipelineStatus.STOPPED})


def _parameter_type(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Integer"
    if isinstance(value, float):
        return "Float"
    return "String"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_ARTICLES = {"Integer": "an", "Float": "a", "Boolean": "a", "String": "a"}


# The plain forms a run value of a typed parameter is given in. Python's int() and float() read
# more (digit separators, blanks around, a leading plus, nan, inf, non-ASCII digits), which
# SageMaker need not take: such a value is refused before the definition is replaced.
_PLAIN = {
    "Integer": re.compile(r"-?[0-9]+"),
    "Float": re.compile(r"-?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?"),
    "Boolean": re.compile(r"true|false"),
}


def _fits(kind: str, text: str) -> bool:
    """Whether SageMaker takes ``text`` as the value of a parameter of type ``kind``: an
    integer or a finite decimal number written plainly, ``true`` or ``false``, or any string."""
    plain = _PLAIN.get(kind)
    if plain is None:
        return True
    return plain.fullmatch(text) is not None and (kind != "Float" or math.isfinite(float(text)))


def _outputs_of(step: str) -> dict[str, Any]:
    return {"Get": f"Steps.{step}.PropertyFiles.{PROPERTY_FILE}"}


def _groups_of(definition: dict[str, Any]) -> dict[str, str]:
    """The hidden group parameters of a definition (``_group_parameters``) -> their sources."""
    raw = (definition.get("Metadata") or {}).get(GROUP_PARAMETERS)
    return dict(json.loads(raw)) if raw else {}


def _token(*request: str) -> str:
    """The ``ClientRequestToken`` of the request made of ``request``'s parts (the operation and
    what it names and sends)."""
    return request_token(json.dumps(request, separators=(",", ":")))


def _unique(base: str, taken: set[str]) -> str:
    """A SageMaker step name from ``base``: at most 64 characters, not among ``taken``."""
    name = base if len(base) <= 64 else base[:55].rstrip("-_") + "-" + short_hash(base)
    if name in taken:
        name = name[:55].rstrip("-_") + "-" + short_hash([base, sorted(taken)])
    taken.add(name)
    return name


class SageMakerPipelines(AwsCalls):
    """``Capability.PIPELINES`` through SageMaker Pipelines."""

    context: BackendContext

    def _pipeline_role(self) -> str:
        if not self.settings.role_arn:
            raise ConfigurationError("[sagemaker] pipelines need role_arn in [backend_settings]")
        return self.settings.role_arn

    # -- compile ----------------------------------------------------------------------------------

    def compile(self, spec: PipelineSpec) -> NativePipeline:
        role = self._pipeline_role()
        for parameter in spec.parameters:
            if not NAME_RULE.match(parameter):
                raise ValidationError(
                    f"[sagemaker] parameter {parameter!r} of pipeline {spec.name!r}: SageMaker "
                    f"pipeline parameters match {NAME_RULE.pattern}"
                )
        taken = {s.name for s in spec.steps}
        gates = {
            s.name: (
                _unique(s.name + GATE_SUFFIX, taken),
                _unique(s.name + GATE_SUFFIX + "-failed", taken),
            )
            for s in spec.order()
            if s.gate is not None
        }
        for step in spec.steps:
            refuse_controller_step(step, "sagemaker", "SageMaker", frozenset({REGISTER_ENTRYPOINT}))
        kinds = {s.name: s.entrypoint == REGISTER_ENTRYPOINT for s in spec.steps}
        steps: list[dict[str, Any]] = []
        for step in spec.order():
            depends_on = [gates[u][0] if u in gates else u for u in step.upstream()]
            if kinds[step.name]:
                steps.append(self._register_step(spec, step, depends_on, kinds))
            else:
                steps.append(self._processing_step(spec, step, depends_on, role, kinds))
            if step.name in gates:
                condition, fail = gates[step.name]
                steps.append(self._gate_steps(step, condition, fail))
        metadata: dict[str, Any] = {"mintaka_pipeline": spec.name}
        parameters = [
            {"Name": name, "Type": _parameter_type(value), "DefaultValue": value}
            for name, value in spec.parameters.items()
        ]
        groups = self._group_parameters(steps) if self.settings.model_names else {}
        if groups:
            metadata[GROUP_PARAMETERS] = json.dumps(groups, sort_keys=True)  # strings only
            parameters += [
                {
                    "Name": hidden,
                    "Type": "String",
                    "DefaultValue": self.settings.group_of(str(spec.parameters.get(source, ""))),
                }
                for hidden, source in groups.items()
            ]
        definition = {
            "Version": "2020-12-01",
            "Metadata": metadata,
            "Parameters": parameters,
            "Steps": steps,
        }
        return NativePipeline(pipeline=spec.name, format=FORMAT, definition=definition)

    @staticmethod
    def _group_parameters(steps: list[dict[str, Any]]) -> dict[str, str]:
        """Point each RegisterModel step that takes its group from a parameter at a parameter of
        its own, which ``submit`` sets to the group ``model_names`` maps the model name to (a
        pipeline cannot look a name up); hidden parameter -> the parameter naming the model."""
        groups: dict[str, str] = {}
        for step in steps:
            arguments = step.get("Arguments") or {}
            named = arguments.get("ModelPackageGroupName")
            if step.get("Type") != "RegisterModel" or not isinstance(named, dict):
                continue
            source = str(named.get("Get", "")).removeprefix("Parameters.")
            if not source or source == named.get("Get"):
                continue
            hidden = f"MintakaGroupOf-{source}"[:64]
            groups[hidden] = source
            arguments["ModelPackageGroupName"] = {"Get": f"Parameters.{hidden}"}
        return groups

    def _value(
        self, spec: PipelineSpec, step: StepSpec, source: tuple[str, str], kinds: dict[str, bool]
    ) -> Any:
        origin, name = source
        if origin == "params":
            return {"Get": f"Parameters.{name}"}
        if kinds[origin]:
            raise ValidationError(
                f"[sagemaker] step {step.name!r} reads {origin}.{name}, an output of a "
                "register_model step; on SageMaker that step is a RegisterModel step, whose "
                "outputs Mintaka reads back from the run rather than wiring them into steps"
            )
        return {"Std:JsonGet": {"PropertyFile": _outputs_of(origin), "Path": name}}

    def _processing_step(
        self,
        spec: PipelineSpec,
        step: StepSpec,
        depends_on: list[str],
        role: str,
        kinds: dict[str, bool],
    ) -> dict[str, Any]:
        image = step.image or self.settings.image_uri
        if not image:
            raise ConfigurationError(
                f"[sagemaker] step {step.name!r} names no image and image_uri is not set"
            )
        arguments: list[Any] = [
            step.entrypoint,
            "--outputs",
            f"{OUTPUT_DIR}/{OUTPUTS_FILE}",
            "--workdir",
            "/opt/ml/processing/work",
            "--pipeline",
            spec.name,
            "--step",
            step.name,
            "--run-id",
            {"Get": "Execution.PipelineExecutionId"},
        ]
        for field, source in step.references().items():
            if field in RUNNER_OPTIONS:
                raise ValidationError(
                    f"[sagemaker] step {step.name!r}: input {field!r} has the name of a step "
                    "runner option; rename the field"
                )
            arguments += [f"--{field}", self._value(spec, step, source, kinds)]
        output_uri = {
            "Std:Join": {
                "On": "/",
                "Values": [
                    self.settings.s3_uri("pipelines", spec.name),
                    {"Get": "Execution.PipelineExecutionId"},
                    step.name,
                ],
            }
        }
        return {
            "Name": step.name,
            "Type": "Processing",
            "DependsOn": depends_on,
            "Arguments": {
                "ProcessingResources": {
                    "ClusterConfig": {
                        "InstanceType": self.settings.instance_type,
                        "InstanceCount": 1,
                        "VolumeSizeInGB": 30,
                    }
                },
                "AppSpecification": {
                    "ImageUri": image,
                    "ContainerEntrypoint": list(STEP_RUNNER),
                    "ContainerArguments": arguments,
                },
                "RoleArn": role,
                "Environment": {"MINTAKA_PIPELINE": spec.name, "MINTAKA_STEP": step.name},
                "ProcessingOutputConfig": {
                    "Outputs": [
                        {
                            "OutputName": PROPERTY_FILE,
                            "S3Output": {
                                "S3Uri": output_uri,
                                "LocalPath": OUTPUT_DIR,
                                "S3UploadMode": "EndOfJob",
                            },
                        }
                    ]
                },
            },
            "PropertyFiles": [
                {
                    "PropertyFileName": PROPERTY_FILE,
                    "OutputName": PROPERTY_FILE,
                    "FilePath": OUTPUTS_FILE,
                }
            ],
        }

    def _register_step(
        self,
        spec: PipelineSpec,
        step: StepSpec,
        depends_on: list[str],
        kinds: dict[str, bool],
    ) -> dict[str, Any]:
        """``register_model``'s ``name`` is the model package group; its ``model`` is the model
        data: a parameter holding an S3 URI, or the ``model.tar.gz`` the producing step left in
        its outputs folder (a path inside that step's container means nothing to SageMaker)."""
        references = step.references()
        for required in ("name", "model"):
            if required not in references:
                raise ValidationError(
                    f"[sagemaker] register_model step {step.name!r} needs its {required!r} "
                    "input wired (params.NAME or STEP.FIELD)"
                )
        origin, _ = references["model"]
        if origin == "params":
            model_data: Any = self._value(spec, step, references["model"], kinds)
        elif kinds[origin]:
            raise ValidationError(
                f"[sagemaker] register_model step {step.name!r} reads its model from another "
                "register_model step"
            )
        else:
            model_data = {
                "Std:Join": {
                    "On": "/",
                    "Values": [
                        {
                            "Get": f"Steps.{origin}.ProcessingOutputConfig.Outputs"
                            f"['{PROPERTY_FILE}'].S3Output.S3Uri"
                        },
                        MODEL_TARBALL,
                    ],
                }
            }
        image = step.image or self.settings.image_uri
        if not image:
            raise ConfigurationError(
                f"[sagemaker] step {step.name!r} names no image and image_uri is not set"
            )
        arguments: dict[str, Any] = {
            "ModelPackageGroupName": self._value(spec, step, references["name"], kinds),
            "InferenceSpecification": {
                "Containers": [{"Image": image, "ModelDataUrl": model_data}],
                "SupportedContentTypes": ["application/json"],
                "SupportedResponseMIMETypes": ["application/json"],
            },
            "ModelApprovalStatus": "PendingManualApproval",
            "CustomerMetadataProperties": {
                "mintaka_pipeline": spec.name,
                "mintaka_step": step.name,
            },
        }
        if "description" in references:
            arguments["ModelPackageDescription"] = self._value(
                spec, step, references["description"], kinds
            )
        return {
            "Name": step.name,
            "Type": "RegisterModel",
            "DependsOn": depends_on,
            "Arguments": arguments,
        }

    @staticmethod
    def _gate_steps(step: StepSpec, condition: str, fail: str) -> dict[str, Any]:
        assert step.gate is not None
        return {
            "Name": condition,
            "Type": "Condition",
            "DependsOn": [step.name],
            "Arguments": {
                "Conditions": [
                    {
                        "Type": "Equals",
                        "LeftValue": {
                            "Std:JsonGet": {
                                "PropertyFile": _outputs_of(step.name),
                                "Path": "passed",
                            }
                        },
                        "RightValue": True,
                    }
                ],
                "IfSteps": [],
                "ElseSteps": [
                    {
                        "Name": fail,
                        "Type": "Fail",
                        "Arguments": {
                            "ErrorMessage": (
                                f"gate {step.name!r} ({step.gate.value}) did not pass; its checks "
                                f"are in the step's {OUTPUTS_FILE}"
                            )
                        },
                    }
                ],
            },
        }

    # -- submit, read back, stop ------------------------------------------------------------------

    def submit(self, pipeline: NativePipeline, parameters: dict[str, str]) -> PipelineRun:
        if pipeline.format != FORMAT:
            raise ValidationError(f"[sagemaker] cannot run a {pipeline.format!r} pipeline")
        role = self._pipeline_role()
        values = self._parameter_values(pipeline, parameters)
        body = json.dumps(pipeline.definition, sort_keys=True)
        try:
            self._sm(
                "create_pipeline",
                PipelineName=pipeline.pipeline,
                PipelineDefinition=body,
                RoleArn=role,
                ClientRequestToken=_token("create", pipeline.pipeline, role, body),
            )
        except Conflict as exc:
            if not is_already_exists(exc):
                raise
            self._sm(
                "update_pipeline",
                PipelineName=pipeline.pipeline,
                PipelineDefinition=body,
                RoleArn=role,
            )
        started = self._sm(
            "start_pipeline_execution",
            PipelineName=pipeline.pipeline,
            PipelineParameters=values,
        )
        return self.get_pipeline_run(str(started["PipelineExecutionArn"]))

    def _parameter_values(
        self, pipeline: NativePipeline, parameters: dict[str, str]
    ) -> list[dict[str, str]]:
        """``PipelineParameters`` for a run of ``pipeline``, each value checked against its
        parameter's type first: SageMaker only checks when the run starts, after the pipeline
        definition has been updated."""
        types = {
            str(p.get("Name")): str(p.get("Type"))
            for p in pipeline.definition.get("Parameters", [])
        }
        values: list[dict[str, str]] = []
        for name, value in parameters.items():
            if name not in types:
                raise ValidationError(
                    f"[sagemaker] pipeline {pipeline.pipeline!r} declares no parameter {name!r}"
                )
            text = _text(value)
            # a Boolean parameter takes true / false, whatever case Python gave it
            text = text.lower() if types[name] == "Boolean" else text
            if not _fits(types[name], text):
                raise ValidationError(
                    f"[sagemaker] parameter {name!r} is {_ARTICLES[types[name]]} "
                    f"{types[name]} in pipeline {pipeline.pipeline!r}; {value!r} is not"
                )
            values.append({"Name": name, "Value": text})
        # The group each registration goes to, from the model name it is given (model_names).
        for hidden, source in _groups_of(pipeline.definition).items():
            if source in parameters:
                group = self.settings.group_of(_text(parameters[source]))
                values = [v for v in values if v["Name"] != hidden]
                values.append({"Name": hidden, "Value": group})
        return values

    def get_pipeline_run(self, run_id: str) -> PipelineRun:
        if ":pipeline/" not in run_id or "/execution/" not in run_id:
            raise NotFound(f"[sagemaker] pipeline run {run_id!r} not found (not an execution ARN)")
        found = self._sm("describe_pipeline_execution", PipelineExecutionArn=run_id)
        status = STATUSES.get(str(found.get("PipelineExecutionStatus")), PipelineStatus.PENDING)
        definition = json.loads(
            self._sm("describe_pipeline_definition_for_execution", PipelineExecutionArn=run_id)[
                "PipelineDefinition"
            ]
        )
        listed: list[dict[str, Any]] = []
        for page in self._pages(
            "sagemaker",
            "list_pipeline_execution_steps",
            PipelineExecutionArn=run_id,
            SortOrder="Ascending",
        ):
            listed.extend(page.get("PipelineExecutionSteps", []))
        steps, backend_ids, gate_message = self._step_runs(run_id, definition, listed)
        hidden = _groups_of(definition)
        parameters = {
            str(p["Name"]): p["Value"]
            for p in self._sm(
                "list_pipeline_parameters_for_execution", PipelineExecutionArn=run_id
            ).get("PipelineParameters", [])
            or []
            if str(p["Name"]) not in hidden
        }
        created = found.get("CreationTime")
        modified = found.get("LastModifiedTime")
        reason = gate_message or found.get("FailureReason") or None
        return PipelineRun(
            id=run_id,
            pipeline=run_id.split(":pipeline/", 1)[1].split("/", 1)[0],
            status=status,
            steps=tuple(steps),
            started_at=created if isinstance(created, datetime) else self.context.clock.now(),
            ended_at=modified if status in TERMINAL and isinstance(modified, datetime) else None,
            backend="sagemaker",
            backend_ids={
                "pipeline_execution": run_id,
                "pipeline": str(found.get("PipelineArn")),
                **backend_ids,
            },
            parameters=parameters,
            failure_reason=str(reason) if status is PipelineStatus.FAILED and reason else None,
        )

    @staticmethod
    def _gate_of(definition: dict[str, Any]) -> dict[str, str]:
        """SageMaker step name -> the gate step it belongs to (its condition and Fail steps)."""
        found: dict[str, str] = {}
        for step in definition.get("Steps", []):
            if step.get("Type") != "Condition":
                continue
            for condition in (step.get("Arguments") or {}).get("Conditions", []):
                left = condition.get("LeftValue")
                target = (
                    ((left or {}).get("Std:JsonGet") or {}).get("PropertyFile") or {}
                    if isinstance(left, dict)
                    else {}
                )
                match = re.match(r"^Steps\.(.+)\.PropertyFiles\.", str(target.get("Get", "")))
                if match:
                    gate = match.group(1)
                    found[step["Name"]] = gate
                    for fail in (step.get("Arguments") or {}).get("ElseSteps", []):
                        found[fail["Name"]] = gate
        return found

    def _step_runs(
        self, run_id: str, definition: dict[str, Any], listed: list[dict[str, Any]]
    ) -> tuple[list[StepRun], dict[str, str], str | None]:
        gate_of = self._gate_of(definition)
        runs: dict[str, dict[str, Any]] = {}
        backend_ids: dict[str, str] = {}
        gate_message: str | None = None
        execution = run_id.rsplit("/", 1)[-1]
        pipeline = run_id.split(":pipeline/", 1)[1].split("/", 1)[0]
        for item in listed:
            name = str(item["StepName"])
            status = STEP_STATUSES.get(str(item.get("StepStatus")), PipelineStatus.PENDING)
            metadata = item.get("Metadata") or {}
            gate = gate_of.get(name)
            if gate is not None:
                run = runs.get(gate)
                if run is None:
                    continue
                outcome = (metadata.get("Condition") or {}).get("Outcome")
                if outcome is not None:
                    run["gate"] = self._gate_outcome(run, outcome == "True")
                    if outcome == "False":
                        run["status"] = PipelineStatus.FAILED
                if status in (PipelineStatus.FAILED, PipelineStatus.STOPPED):
                    message = (metadata.get("Fail") or {}).get("ErrorMessage") or item.get(
                        "FailureReason"
                    )
                    run["status"] = status
                    run["failure_reason"] = message
                    if metadata.get("Fail"):
                        gate_message = str(message)
                continue
            run = {
                "name": name,
                "status": status,
                "started_at": item.get("StartTime"),
                "ended_at": item.get("EndTime"),
                "failure_reason": item.get("FailureReason"),
                "outputs": {},
            }
            for kind in ("ProcessingJob", "RegisterModel", "TrainingJob", "Model"):
                arn = (metadata.get(kind) or {}).get("Arn")
                if arn:
                    backend_ids[f"step:{name}"] = str(arn)
            registered = (metadata.get("RegisterModel") or {}).get("Arn")
            if registered:
                run["outputs"] = {"model_package_arn": str(registered)}
                made = package_version(str(registered))
                if made is not None:  # the version, under its Mintaka name (model_names)
                    run["outputs"][REGISTERED_MODEL] = self.settings.name_of(made[0])
                    run["outputs"][REGISTERED_VERSION] = made[1]
            elif status is PipelineStatus.SUCCEEDED and metadata.get("ProcessingJob"):
                run["outputs"] = self._uploaded_outputs(pipeline, execution, name)
            runs[name] = run
        return [StepRun(**run) for run in runs.values()], backend_ids, gate_message

    @staticmethod
    def _gate_outcome(run: dict[str, Any], passed: bool) -> GateOutcome:
        """The gate's verdict as SageMaker's condition decided it, with the checks the gate step
        reported in its outputs where they could be read."""
        checks = (run.get("outputs") or {}).get("checks") or []
        try:
            return GateOutcome.model_validate({"passed": passed, "checks": checks})
        except ValueError:
            return GateOutcome(passed=passed)

    def _uploaded_outputs(self, pipeline: str, execution: str, step: str) -> dict[str, Any]:
        """The outputs.json a Processing step uploaded ({} when it is not there to read)."""
        uri = self.settings.s3_uri("pipelines", pipeline, execution, step, OUTPUTS_FILE)
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        try:
            body = self._call("s3", "get_object", Bucket=bucket, Key=key)["Body"].read()
            loaded = json.loads(body)
        except (NotFound, ValueError):
            return {}
        return loaded if isinstance(loaded, dict) else {"value": loaded}

    def _run_status(self, run_id: str) -> PipelineStatus:
        if ":pipeline/" not in run_id or "/execution/" not in run_id:
            raise NotFound(f"[sagemaker] pipeline run {run_id!r} not found (not an execution ARN)")
        found = self._sm("describe_pipeline_execution", PipelineExecutionArn=run_id)
        return STATUSES.get(str(found.get("PipelineExecutionStatus")), PipelineStatus.PENDING)

    def stop_pipeline_run(self, run_id: str) -> None:
        if self._run_status(run_id) in TERMINAL:
            return
        try:
            self._sm(
                "stop_pipeline_execution",
                PipelineExecutionArn=run_id,
                ClientRequestToken=_token("stop", run_id),
            )
        except Conflict:
            if self._run_status(run_id) not in TERMINAL:
                raise
