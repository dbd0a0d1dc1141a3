"""Pipelines of typed steps with gates, and their runs."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from mintaka.domain.base import AwareDatetime, JSONDict, Record, Spec


class GateKind(StrEnum):
    DATA_VALIDATION = "data_validation"
    EVALUATION = "evaluation"
    DEPLOYMENT = "deployment"


class StepSpec(Spec):
    """One step: a callable by import path, with typed inputs and outputs (pydantic model paths)."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,62}$")
    entrypoint: str
    inputs: dict[str, str] = Field(default_factory=dict)
    outputs: dict[str, str] = Field(default_factory=dict)
    depends_on: list[str] = Field(default_factory=list)
    gate: GateKind | None = None
    image: str | None = None


class PipelineSpec(Spec):
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,62}$")
    parameters: dict[str, str | int | float | bool] = Field(default_factory=dict)
    steps: list[StepSpec]


class PipelineStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    STOPPED = "stopped"


class StepRun(Record):
    name: str
    status: PipelineStatus
    started_at: AwareDatetime | None = None
    ended_at: AwareDatetime | None = None
    failure_reason: str | None = None


class PipelineRun(Record):
    id: str
    pipeline: str
    status: PipelineStatus
    steps: tuple[StepRun, ...] = ()
    started_at: AwareDatetime
    ended_at: AwareDatetime | None = None
    backend: str
    backend_ids: dict[str, str] = Field(default_factory=dict)


class NativePipeline(Record):
    """A PipelineSpec compiled to the backend's own format (definition JSON, a job spec, ...)."""

    pipeline: str
    format: str
    definition: JSONDict
