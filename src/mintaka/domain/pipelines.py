"""Pipelines of typed steps with gates, and their runs.

A step is a Python callable named by ``module:function``. It takes one pydantic model (its typed
inputs) and returns another (its typed outputs). ``StepSpec.inputs`` wires each input field to
where its value comes from: ``params.NAME`` (a pipeline parameter) or ``STEP.FIELD`` (an output
field of an upstream step). A gate step returns a :class:`GateOutcome`; a gate that does not pass
stops the run with :class:`~mintaka.errors.GateFailed` naming the gate and its numbers.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any, Self

from pydantic import Field, model_validator

from mintaka.domain.base import AwareDatetime, JSONDict, Record, Spec
from mintaka.errors import ValidationError

STEP_NAME = r"^[a-z][a-z0-9_-]{0,62}$"
_REFERENCE = re.compile(r"^(params|[a-z][a-z0-9_-]{0,62})\.([A-Za-z_][A-Za-z0-9_]*)$")


class GateKind(StrEnum):
    DATA_VALIDATION = "data_validation"
    EVALUATION = "evaluation"
    DEPLOYMENT = "deployment"


class StepSpec(Spec):
    """One step: a callable by import path, its input wiring, its upstream steps, its gate kind."""

    name: str = Field(pattern=STEP_NAME)
    entrypoint: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    inputs: dict[str, str] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)
    gate: GateKind | None = None
    image: str | None = None
    cache: bool = True

    def references(self) -> dict[str, tuple[str, str]]:
        """Each input field's source as ``(step or "params", field)``."""
        found = {}
        for field_name, source in self.inputs.items():
            match = _REFERENCE.match(source)
            if match is None:
                raise ValidationError(
                    f"step {self.name!r}: input {field_name!r} comes from {source!r}; "
                    "use params.NAME or STEP.FIELD"
                )
            found[field_name] = (match.group(1), match.group(2))
        return found

    def upstream(self) -> list[str]:
        """Steps this one waits for: ``depends_on`` plus every step its inputs read from."""
        named = [step for step, _ in self.references().values() if step != "params"]
        return list(dict.fromkeys([*self.depends_on, *named]))


class PipelineSpec(Spec):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,62}$")
    parameters: dict[str, str | int | float | bool] = Field(default_factory=dict)
    steps: list[StepSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _wiring(self) -> Self:
        names = [s.name for s in self.steps]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValidationError(f"pipeline {self.name!r}: duplicate step names {duplicates}")
        known = set(names)
        for step in self.steps:
            for field_name, (source, value) in step.references().items():
                if source == "params" and value not in self.parameters:
                    raise ValidationError(
                        f"step {step.name!r}: input {field_name!r} reads parameter {value!r}, "
                        f"which the pipeline does not declare"
                    )
            unknown = sorted(set(step.upstream()) - known)
            if unknown:
                raise ValidationError(f"step {step.name!r} depends on unknown steps {unknown}")
            if step.name in step.upstream():
                raise ValidationError(f"step {step.name!r} depends on itself")
        self.order()
        return self

    def step(self, name: str) -> StepSpec:
        for step in self.steps:
            if step.name == name:
                return step
        raise ValidationError(f"pipeline {self.name!r} has no step {name!r}")

    def order(self) -> list[StepSpec]:
        """The steps in a dependency order (declaration order where free); refuses cycles."""
        done: list[str] = []
        pending = list(self.steps)
        while pending:
            ready = [s for s in pending if set(s.upstream()) <= set(done)]
            if not ready:
                cycle = sorted(s.name for s in pending)
                raise ValidationError(f"pipeline {self.name!r}: steps {cycle} form a cycle")
            done.append(ready[0].name)
            pending.remove(ready[0])
        return [self.step(name) for name in done]


class GateCheck(Record):
    """One check of a gate: the measured value, the limit it was held to, and the verdict."""

    name: str
    passed: bool
    value: float | int | str | None = None
    limit: float | int | str | None = None
    detail: str = ""

    def describe(self) -> str:
        if self.value is None:
            return f"{self.name}: {self.detail}" if self.detail else self.name
        text = f"{self.name}: {_fmt(self.value)}"
        if self.limit is not None:
            text += f" (limit {_fmt(self.limit)})"
        return f"{text} - {self.detail}" if self.detail else text


def _fmt(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class GateOutcome(Record):
    """What a gate step returns; subclass it to carry more outputs."""

    passed: bool
    checks: tuple[GateCheck, ...] = ()

    def failures(self) -> list[GateCheck]:
        return [c for c in self.checks if not c.passed]


class PipelineStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"


STOPPED_ON_REQUEST = "stopped on request"  # why a run that was asked to stop ended

# A step that registered a model version in the cloud names it in its outputs under these keys,
# so core can adopt the version (``platform.pipelines.status``).
REGISTERED_MODEL = "registered_model"
REGISTERED_VERSION = "registered_version"


class StepRun(Record):
    """One step of a pipeline run; ``outputs`` are what the step reported (a step that registered
    a model version in the cloud gives ``registered_model`` and ``registered_version``)."""

    name: str
    status: PipelineStatus
    started_at: AwareDatetime | None = None
    ended_at: AwareDatetime | None = None
    failure_reason: str | None = None
    cached: bool = False
    cache_key: str | None = None
    outputs: JSONDict = Field(default_factory=dict)
    gate: GateOutcome | None = None


class PipelineRun(Record):
    id: str
    pipeline: str
    status: PipelineStatus
    steps: tuple[StepRun, ...] = ()
    started_at: AwareDatetime
    ended_at: AwareDatetime | None = None
    backend: str
    backend_ids: dict[str, str] = Field(default_factory=dict)
    parameters: JSONDict = Field(default_factory=dict)
    failure_reason: str | None = None


class NativePipeline(Record):
    """A PipelineSpec compiled to the backend's own format (definition JSON, a job spec, ...)."""

    pipeline: str
    format: str
    definition: JSONDict
