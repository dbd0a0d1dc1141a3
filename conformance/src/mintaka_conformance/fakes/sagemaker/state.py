"""What the extension remembers beyond moto's own objects, kept on moto's SageMaker backend.

The state object lives in the backend instance's ``__dict__``; moto's reset replaces that dict, so
a reset (``mock_aws`` exit, ``/moto-api/reset``) clears the extension's state with moto's.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from moto.sagemaker.models import SageMakerModelBackend

STATE_ATTRIBUTE = "mintaka_sagemaker_state"

# One handler per model name: it receives the request body and the variant name and returns the
# JSON-serialisable predictions the fake endpoint answers with.
InvokeHandler = Callable[[bytes, str], Any]


@dataclass
class StatusScript:
    """A queued status sequence for the next transition of one resource."""

    statuses: list[str]
    failure_reason: str | None = None


@dataclass
class VariantState:
    """One production or shadow variant as the endpoint is running it."""

    name: str
    model_name: str | None
    weight: float
    desired_weight: float
    instance_count: int | None
    desired_instance_count: int | None
    instance_type: str | None = None
    serverless: dict[str, Any] | None = None

    @classmethod
    def from_config(cls, variant: dict[str, Any]) -> VariantState:
        weight = variant.get("InitialVariantWeight")
        weight = 1.0 if weight is None else float(weight)
        count = variant.get("InitialInstanceCount")
        return cls(
            name=variant["VariantName"],
            model_name=variant.get("ModelName"),
            weight=weight,
            desired_weight=weight,
            instance_count=count,
            desired_instance_count=count,
            instance_type=variant.get("InstanceType"),
            serverless=variant.get("ServerlessConfig"),
        )

    def summary(self) -> dict[str, Any]:
        """The ``ProductionVariantSummary`` DescribeEndpoint returns."""
        out: dict[str, Any] = {
            "VariantName": self.name,
            "CurrentWeight": self.weight,
            "DesiredWeight": self.desired_weight,
        }
        if self.instance_count is not None:
            out["CurrentInstanceCount"] = self.instance_count
            out["DesiredInstanceCount"] = self.desired_instance_count
        if self.serverless is not None:
            out["CurrentServerlessConfig"] = self.serverless
            out["DesiredServerlessConfig"] = self.serverless
        return out

    def pending_summary(self) -> dict[str, Any]:
        """The ``PendingProductionVariantSummary`` shown while a deployment is in progress."""
        out: dict[str, Any] = {"VariantName": self.name, "DesiredWeight": self.desired_weight}
        if self.desired_instance_count is not None:
            out["DesiredInstanceCount"] = self.desired_instance_count
        if self.instance_type is not None:
            out["InstanceType"] = self.instance_type
        if self.serverless is not None:
            out["DesiredServerlessConfig"] = self.serverless
        out["VariantStatus"] = [{"Status": "Creating"}]
        return out


@dataclass
class PendingDeployment:
    """An UpdateEndpoint that has started and not yet finished."""

    config_name: str
    variants: list[VariantState]
    shadow_variants: list[VariantState]
    deployment_config: dict[str, Any] | None
    start_time: datetime


@dataclass
class Transition:
    """A lifecycle step (create, update, weights) that finishes when its script runs out."""

    kind: str
    script: deque[str]
    failure_reason: str | None
    on_success: Callable[[], None]


@dataclass
class EndpointState:
    name: str
    config_name: str
    variants: list[VariantState]
    shadow_variants: list[VariantState]
    status: str = "InService"
    failure_reason: str | None = None
    last_deployment_config: dict[str, Any] | None = None
    pending: PendingDeployment | None = None
    transition: Transition | None = None
    # Smooth weighted round-robin scores, one per production variant name.
    scores: dict[str, float] = field(default_factory=dict)


@dataclass
class PackageState:
    status: str = "Completed"
    script: deque[str] = field(default_factory=deque)
    failure_reason: str | None = None
    # Request fields moto drops on create/update (SourceUri, ModelCard, ModelLifeCycle, ...).
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Invocation:
    """One request the fake endpoint served (``shadow=True``: a mirrored copy, not returned)."""

    endpoint: str
    variant: str
    model: str | None
    targeted: bool
    shadow: bool
    body: bytes


@dataclass
class LineageEntity:
    """An artifact, context or action of SageMaker ML Lineage."""

    kind: str  # Artifact | Context | Action
    name: str | None
    arn: str
    type: str
    source: dict[str, Any]
    description: str | None
    status: str | None
    properties: dict[str, str]
    created: datetime
    modified: datetime


@dataclass
class LineageState:
    lock: threading.RLock = field(default_factory=threading.RLock)
    entities: dict[str, LineageEntity] = field(default_factory=dict)  # by ARN
    associations: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    issued: int = 0  # artifacts created, for their generated ids


@dataclass
class ExecutionScript:
    """What the next execution of a pipeline meets: the JSON its steps' property files hold,
    the steps that fail (with their reasons), and whether it runs one step per describe (or per
    ``reads_per_step`` describes)."""

    property_files: dict[str, dict[str, Any]] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    paced: bool = True
    reads_per_step: int = 1


@dataclass
class StepExecution:
    """One started step of a pipeline execution, as ListPipelineExecutionSteps reports it."""

    name: str
    type: str
    status: str
    start: datetime
    end: datetime | None = None
    failure_reason: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    arguments: Any = None  # the step's arguments with every expression resolved
    display_name: str | None = None
    description: str | None = None


@dataclass
class ExecutionState:
    arn: str
    pipeline: str
    execution_id: str
    definition: Any  # pipeline_definition.Definition
    parameters: dict[str, Any]
    script: ExecutionScript
    status: str = "Executing"
    failure_reason: str | None = None
    steps: list[StepExecution] = field(default_factory=list)
    started: datetime | None = None
    reads: int = 0  # DescribePipelineExecution calls so far (paced progress)


@dataclass
class ScheduleState:
    """A monitoring schedule; its status follows its script like an endpoint's."""

    name: str
    arn: str
    config: dict[str, Any]
    endpoint: str | None
    monitoring_type: str
    status: str
    created: datetime
    modified: datetime
    script: deque[str] = field(default_factory=deque)
    failure_reason: str | None = None
    tags: list[dict[str, str]] = field(default_factory=list)


@dataclass
class MonitoringExecution:
    schedule: str
    endpoint: str | None
    monitoring_type: str
    job_definition: str | None
    status: str
    scheduled: datetime
    created: datetime
    modified: datetime
    processing_job_arn: str | None = None
    failure_reason: str | None = None


@dataclass
class SageMakerState:
    lock: threading.RLock = field(default_factory=threading.RLock)
    endpoints: dict[str, EndpointState] = field(default_factory=dict)
    endpoint_scripts: dict[str, deque[StatusScript]] = field(default_factory=dict)
    shadow_variants: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    packages: dict[str, PackageState] = field(default_factory=dict)
    package_scripts: dict[str, deque[StatusScript]] = field(default_factory=dict)
    group_versions: dict[str, int] = field(default_factory=dict)
    client_tokens: dict[str, str] = field(default_factory=dict)
    invoke_handlers: dict[str, InvokeHandler] = field(default_factory=dict)
    invocations: list[Invocation] = field(default_factory=list)
    # InvokeEndpointAsync requests accepted while results are held, run when released
    async_held: bool = False
    async_pending: list[Callable[[], None]] = field(default_factory=list)
    lineage: LineageState = field(default_factory=LineageState)
    executions: dict[str, ExecutionState] = field(default_factory=dict)
    execution_scripts: dict[str, deque[ExecutionScript]] = field(default_factory=dict)
    schedules: dict[str, ScheduleState] = field(default_factory=dict)
    schedule_scripts: dict[str, deque[StatusScript]] = field(default_factory=dict)
    monitoring_executions: list[MonitoringExecution] = field(default_factory=list)


_CREATE_LOCK = threading.Lock()


def state_of(backend: SageMakerModelBackend) -> SageMakerState:
    """The extension's state for one moto backend (account, region), created on first use."""
    state = backend.__dict__.get(STATE_ATTRIBUTE)
    if state is None:
        with _CREATE_LOCK:
            state = backend.__dict__.get(STATE_ATTRIBUTE)
            if state is None:
                state = SageMakerState()
                backend.__dict__[STATE_ATTRIBUTE] = state
    assert isinstance(state, SageMakerState)
    return state
