"""The SageMaker Pipelines definition checked against the shape of the published JSON schema.

``CreatePipeline`` and ``UpdatePipeline`` parse the definition here; a definition that does not fit
is refused with ``ValidationException`` ("Unable to parse pipeline definition. ..."), as AWS does,
before anything is stored. Checked, after the published schema
(``aws-sagemaker-mlops/sagemaker-model-building-pipeline-definition-JSON-schema``) and the API
reference:

* the document is a JSON object with ``Version`` (``2020-12-01``), ``Metadata`` (string values),
  ``Parameters``, ``Steps`` and ``PipelineExperimentConfig`` only;
* each parameter has a ``Name`` (``[A-Za-z0-9_-]{1,64}``, unique), a ``Type`` of ``String``,
  ``Integer``, ``Float`` or ``Boolean`` and a ``DefaultValue`` of that type;
* each step (top level, or nested in a condition's ``IfSteps`` / ``ElseSteps``) has a unique
  ``Name`` (``[A-Za-z0-9_-]{1,64}``), a known ``Type``, the ``Arguments`` its type requires
  (a processing step's image, cluster and role; a condition's ``Conditions``; a registration's
  group and containers; ...), ``DependsOn`` naming other steps of the definition, and
  ``PropertyFiles`` that name one of the step's processing outputs;
* every ``{"Get": "Parameters.X"}`` names a declared parameter, every ``{"Get": "Steps.S..."}``
  an existing step (``Steps.S.PropertyFiles.F`` one of its property files), every
  ``{"Get": "Execution.X"}`` an execution variable, and ``Std:JsonGet`` reads a property file;
* the steps, with their ``DependsOn`` and data dependencies, form no cycle.

The detail after the prefix is worded by the fake.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import ValidationError

VERSION = "2020-12-01"
NAME_RULE = re.compile(r"^[A-Za-z0-9\-_]{1,64}$")
METADATA_KEY = re.compile(r"^[A-Za-z0-9\-_]{1,128}$")
PARAMETER_TYPES: dict[str, tuple[type, ...]] = {
    "String": (str,),
    "Integer": (int,),
    "Float": (int, float),
    "Boolean": (bool,),
}
EXECUTION_VARIABLES = frozenset(
    {
        "PipelineExecutionId",
        "PipelineExecutionArn",
        "PipelineName",
        "PipelineArn",
        "StartDateTime",
        "CurrentDateTime",
        "TrainingJobName",
        "ProcessingJobName",
    }
)
# Each step type and the Arguments paths it requires ("" for types that take no Arguments).
STEP_TYPES: dict[str, tuple[str, ...]] = {
    "Processing": (
        "AppSpecification.ImageUri",
        "ProcessingResources.ClusterConfig.InstanceType",
        "ProcessingResources.ClusterConfig.InstanceCount",
        "ProcessingResources.ClusterConfig.VolumeSizeInGB",
        "RoleArn",
    ),
    "Training": (
        "AlgorithmSpecification",
        "OutputDataConfig",
        "ResourceConfig",
        "RoleArn",
        "StoppingCondition",
    ),
    "Transform": ("ModelName", "TransformInput", "TransformOutput", "TransformResources"),
    "Tuning": ("HyperParameterTuningJobConfig",),
    "Condition": ("Conditions",),
    "Fail": (),
    "RegisterModel": ("ModelPackageGroupName", "InferenceSpecification.Containers"),
    "Model": ("ExecutionRoleArn",),
    "Lambda": (),
    "Callback": (),
    "QualityCheck": (),
    "ClarifyCheck": (),
    "EMR": (),
    "AutoML": (),
}
STEP_KEYS = frozenset(
    {
        "Name",
        "Type",
        "Arguments",
        "DependsOn",
        "DisplayName",
        "Description",
        "PropertyFiles",
        "RetryPolicies",
        "CacheConfig",
        "FunctionArn",
        "SqsQueueUrl",
        "OutputParameters",
    }
)
TOP_KEYS = frozenset({"Version", "Metadata", "Parameters", "Steps", "PipelineExperimentConfig"})
CONDITION_TYPES = frozenset(
    {
        "Equals",
        "NotEquals",
        "GreaterThan",
        "GreaterThanOrEqualTo",
        "LessThan",
        "LessThanOrEqualTo",
        "In",
        "NotIn",
        "Not",
        "Or",
    }
)


def refuse(detail: str) -> ValidationError:
    return ValidationError(f"Unable to parse pipeline definition. {detail}")


@dataclass(frozen=True)
class ParameterDef:
    name: str
    type: str
    default: Any


@dataclass
class StepDef:
    name: str
    type: str
    raw: dict[str, Any]
    depends_on: list[str]
    # (condition step, True for IfSteps / False for ElseSteps) for a step inside a branch.
    branch: tuple[str, bool] | None
    property_files: dict[str, dict[str, Any]] = field(default_factory=dict)
    reads: set[str] = field(default_factory=set)  # steps whose properties it reads


@dataclass
class Definition:
    parameters: dict[str, ParameterDef]
    steps: dict[str, StepDef]  # in document order, branch steps after their condition

    def upstream(self, step: StepDef) -> set[str]:
        """Steps that must have succeeded before ``step`` starts."""
        found = set(step.depends_on) | step.reads
        if step.branch is not None:
            found.add(step.branch[0])
        return found


def _dig(value: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def parse_definition(document: str | dict[str, Any]) -> Definition:
    """The definition, checked; :class:`ValidationError` names the first problem found."""
    if isinstance(document, str):
        try:
            parsed = json.loads(document)
        except ValueError as exc:
            raise refuse(f"The definition is not valid JSON: {exc}.") from None
    else:
        parsed = document
    if not isinstance(parsed, dict):
        raise refuse("The definition must be a JSON object.")
    unknown = sorted(set(parsed) - TOP_KEYS)
    if unknown:
        raise refuse(f"Unknown top-level fields {unknown}.")
    if "Version" in parsed and parsed["Version"] != VERSION:
        raise refuse(f"Version must be {VERSION!r}; got {parsed['Version']!r}.")
    metadata = parsed.get("Metadata", {})
    if not isinstance(metadata, dict):
        raise refuse("Metadata must be an object.")
    for key, value in metadata.items():
        if not METADATA_KEY.match(str(key)) or not isinstance(value, str) or len(value) > 1024:
            raise refuse(
                f"Metadata entry {key!r} must have a key matching {METADATA_KEY.pattern} and a "
                "string value of at most 1024 characters."
            )
    parameters = _parameters(parsed.get("Parameters", []))
    raw_steps = parsed.get("Steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise refuse("Steps must be a non-empty list of steps.")
    steps: dict[str, StepDef] = {}
    _collect(raw_steps, None, steps)
    definition = Definition(parameters=parameters, steps=steps)
    for step in steps.values():
        _check_step(definition, step)
    _check_references(definition, parsed.get("PipelineExperimentConfig"), None)
    _check_acyclic(definition)
    return definition


def _parameters(raw: Any) -> dict[str, ParameterDef]:
    if not isinstance(raw, list):
        raise refuse("Parameters must be a list.")
    found: dict[str, ParameterDef] = {}
    for item in raw:
        if not isinstance(item, dict):
            raise refuse("Each parameter must be an object.")
        unknown = sorted(set(item) - {"Name", "Type", "DefaultValue", "Description", "EnumValues"})
        if unknown:
            raise refuse(f"Parameter fields {unknown} are not part of a parameter.")
        name = item.get("Name")
        if not isinstance(name, str) or not NAME_RULE.match(name):
            raise refuse(f"Parameter name {name!r} must match {NAME_RULE.pattern}.")
        if name in found:
            raise refuse(f"Parameter {name!r} is declared twice.")
        kind = item.get("Type", "String")
        if kind not in PARAMETER_TYPES:
            raise refuse(
                f"Parameter {name!r} has Type {kind!r}; use one of {list(PARAMETER_TYPES)}."
            )
        default = item.get("DefaultValue")
        if default is not None and (
            not isinstance(default, PARAMETER_TYPES[kind])
            or (kind != "Boolean" and isinstance(default, bool))
        ):
            raise refuse(
                f"Parameter {name!r} of Type {kind} has DefaultValue {default!r} of another type."
            )
        found[name] = ParameterDef(name=name, type=kind, default=default)
    return found


def _collect(raw: Any, branch: tuple[str, bool] | None, steps: dict[str, StepDef]) -> None:
    if not isinstance(raw, list):
        raise refuse("A list of steps was expected.")
    for item in raw:
        if not isinstance(item, dict):
            raise refuse("Each step must be an object.")
        name, kind = item.get("Name"), item.get("Type")
        if not isinstance(name, str) or not NAME_RULE.match(name):
            raise refuse(f"Step name {name!r} must match {NAME_RULE.pattern}.")
        if name in steps:
            raise refuse(f"Step names must be unique; {name!r} is used twice.")
        if kind not in STEP_TYPES:
            raise refuse(f"Step {name!r} has Type {kind!r}; use one of {sorted(STEP_TYPES)}.")
        unknown = sorted(set(item) - STEP_KEYS)
        if unknown:
            raise refuse(f"Step {name!r} has unknown fields {unknown}.")
        depends_on = item.get("DependsOn", [])
        if not isinstance(depends_on, list) or not all(isinstance(d, str) for d in depends_on):
            raise refuse(f"Step {name!r}: DependsOn must be a list of step names.")
        steps[name] = StepDef(
            name=name, type=kind, raw=item, depends_on=list(depends_on), branch=branch
        )
        if kind == "Condition":
            arguments = item.get("Arguments") or {}
            _collect(arguments.get("IfSteps", []), (name, True), steps)
            _collect(arguments.get("ElseSteps", []), (name, False), steps)


def _check_step(definition: Definition, step: StepDef) -> None:
    raw = step.raw
    arguments = raw.get("Arguments")
    required = STEP_TYPES[step.type]
    if arguments is None and step.type not in ("Lambda", "Callback", "Fail"):
        raise refuse(f"Step {step.name!r} of Type {step.type} needs Arguments.")
    if arguments is not None and not isinstance(arguments, dict):
        raise refuse(f"Step {step.name!r}: Arguments must be an object.")
    for path in required:
        if _dig(arguments, path) in (None, "", []):
            raise refuse(f"Step {step.name!r} of Type {step.type} needs Arguments.{path}.")
    for upstream in step.depends_on:
        if upstream == step.name:
            raise refuse(f"Step {step.name!r} cannot depend on itself.")
        if upstream not in definition.steps:
            raise refuse(f"Step {step.name!r} DependsOn {upstream!r}, which no step is named.")
    if step.type == "Condition":
        conditions = arguments.get("Conditions") if arguments else None
        if not isinstance(conditions, list) or not conditions:
            raise refuse(f"Condition step {step.name!r} needs a non-empty Conditions list.")
        for condition in conditions:
            _check_condition(step.name, condition)
    if step.type == "Fail" and arguments is not None:
        unknown = sorted(set(arguments) - {"ErrorMessage"})
        if unknown:
            raise refuse(f"Fail step {step.name!r} takes only ErrorMessage, not {unknown}.")
    if step.type == "RegisterModel":
        containers = _dig(arguments, "InferenceSpecification.Containers")
        if not isinstance(containers, list) or not all(
            isinstance(c, dict) and c.get("Image") for c in containers
        ):
            raise refuse(f"RegisterModel step {step.name!r}: every container needs an Image.")
    _property_files(step, arguments)
    own = {k: v for k, v in raw.items() if k != "Arguments"}
    if step.type == "Condition":
        own["Arguments"] = {"Conditions": (arguments or {}).get("Conditions")}
    else:
        own["Arguments"] = arguments
    _check_references(definition, own, step)


def _property_files(step: StepDef, arguments: dict[str, Any] | None) -> None:
    files = step.raw.get("PropertyFiles", [])
    if not isinstance(files, list):
        raise refuse(f"Step {step.name!r}: PropertyFiles must be a list.")
    outputs = {
        o.get("OutputName")
        for o in (_dig(arguments, "ProcessingOutputConfig.Outputs") or [])
        if isinstance(o, dict)
    }
    for item in files:
        if not isinstance(item, dict) or not all(
            isinstance(item.get(k), str) and item.get(k)
            for k in ("PropertyFileName", "OutputName", "FilePath")
        ):
            raise refuse(
                f"Step {step.name!r}: each property file needs PropertyFileName, OutputName "
                "and FilePath."
            )
        if step.type != "Processing":
            raise refuse(f"Step {step.name!r}: only Processing steps declare PropertyFiles.")
        if item["OutputName"] not in outputs:
            raise refuse(
                f"Step {step.name!r}: property file {item['PropertyFileName']!r} reads output "
                f"{item['OutputName']!r}, which the step's ProcessingOutputConfig does not declare."
            )
        step.property_files[item["PropertyFileName"]] = dict(item)


def _check_condition(step: str, condition: Any) -> None:
    if not isinstance(condition, dict) or condition.get("Type") not in CONDITION_TYPES:
        kind = condition.get("Type") if isinstance(condition, dict) else condition
        raise refuse(
            f"Condition step {step!r}: condition type {kind!r} is not one of "
            f"{sorted(CONDITION_TYPES)}."
        )
    kind = condition["Type"]
    if kind == "Not":
        _check_condition(step, condition.get("Expression"))
    elif kind == "Or":
        inner = condition.get("Conditions")
        if not isinstance(inner, list) or not inner:
            raise refuse(f"Condition step {step!r}: an Or condition needs Conditions.")
        for each in inner:
            _check_condition(step, each)
    elif kind in ("In", "NotIn"):
        if "QueryValue" not in condition and "Value" not in condition:
            raise refuse(f"Condition step {step!r}: an {kind} condition needs a QueryValue.")
    elif "LeftValue" not in condition or "RightValue" not in condition:
        raise refuse(f"Condition step {step!r}: a {kind} condition needs LeftValue and RightValue.")


_STEP_REFERENCE = re.compile(r"^Steps\.([A-Za-z0-9\-_]{1,64})(?:\.(.+))?$")


def _check_references(definition: Definition, value: Any, owner: StepDef | None) -> None:
    """Every expression inside ``value`` refers to something the definition has."""
    if isinstance(value, list):
        for item in value:
            _check_references(definition, item, owner)
        return
    if not isinstance(value, dict):
        return
    if "Get" in value and len(value) == 1:
        _check_get(definition, value["Get"], owner)
        return
    if "Std:JsonGet" in value:
        spec = value["Std:JsonGet"]
        if not isinstance(spec, dict) or not isinstance(spec.get("Path"), str):
            raise refuse("Std:JsonGet needs a PropertyFile and a Path.")
        source = spec.get("PropertyFile")
        target = source.get("Get") if isinstance(source, dict) else None
        match = _STEP_REFERENCE.match(str(target or ""))
        if match is None or not str(match.group(2) or "").startswith("PropertyFiles."):
            raise refuse(
                f"Std:JsonGet must read a property file ({{'Get': "
                f"'Steps.STEP.PropertyFiles.FILE'}}); got {source!r}."
            )
        _check_get(definition, target, owner)
        return
    if "Std:Join" in value:
        spec = value["Std:Join"]
        if not isinstance(spec, dict) or not isinstance(spec.get("Values"), list):
            raise refuse("Std:Join needs a list of Values.")
    for item in value.values():
        _check_references(definition, item, owner)


def _check_get(definition: Definition, target: Any, owner: StepDef | None) -> None:
    if not isinstance(target, str):
        raise refuse(f"A Get expression needs a string; got {target!r}.")
    head, _, rest = target.partition(".")
    if head == "Parameters":
        if rest not in definition.parameters:
            raise refuse(f"Parameter reference {target!r} is undefined.")
    elif head == "Execution":
        if rest not in EXECUTION_VARIABLES:
            raise refuse(
                f"Execution variable {target!r} is undefined; use one of "
                f"{sorted(EXECUTION_VARIABLES)}."
            )
    elif head == "Steps":
        match = _STEP_REFERENCE.match(target)
        if match is None or match.group(1) not in definition.steps or not match.group(2):
            raise refuse(f"Step property reference {target!r} names no step of the definition.")
        name, path = match.group(1), match.group(2)
        if path.startswith("PropertyFiles."):
            referenced = definition.steps[name]
            file_name = path.removeprefix("PropertyFiles.")
            declared = {
                f.get("PropertyFileName")
                for f in referenced.raw.get("PropertyFiles", [])
                if isinstance(f, dict)
            }
            if file_name not in declared:
                raise refuse(
                    f"Property file reference {target!r} is undefined: step {name!r} declares "
                    f"{sorted(str(d) for d in declared)}."
                )
        if owner is not None:
            if name == owner.name:
                raise refuse(f"Step {owner.name!r} cannot read its own properties ({target!r}).")
            owner.reads.add(name)
    else:
        raise refuse(f"Reference {target!r} must start with Parameters., Steps. or Execution.")


def _check_acyclic(definition: Definition) -> None:
    done: set[str] = set()
    pending = dict(definition.steps)
    while pending:
        ready = [n for n, s in pending.items() if definition.upstream(s) <= done]
        if not ready:
            raise refuse(f"The steps {sorted(pending)} depend on each other in a cycle.")
        for name in ready:
            done.add(name)
            del pending[name]
