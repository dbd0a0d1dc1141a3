"""Backend interfaces: the base class and one ABC per capability.

:data:`CAPABILITY_INTERFACES` is the single table that ties a :class:`Capability` to the
interface a backend must implement to declare it.
"""

from __future__ import annotations

from mintaka.capabilities import Capability
from mintaka.interfaces.base import (
    Backend,
    BackendContext,
    BackendSettings,
    Emulation,
    Support,
)
from mintaka.interfaces.metadata import CallerIdentity, Discovery, LineageMetadata, StateObserver
from mintaka.interfaces.monitoring import CaptureSource, MetricsSource
from mintaka.interfaces.pipelines import PipelineExecution
from mintaka.interfaces.registry import (
    ApprovalProjection,
    ArtifactFetch,
    ModelAliases,
    ModelRegistry,
    ModelStages,
    ModelTags,
    ServedRegistration,
    StoreResidentRegistry,
    VersionDeletion,
)
from mintaka.interfaces.runs import RunTracking
from mintaka.interfaces.serving import (
    BatchScoring,
    KillSwitch,
    NativeRollout,
    Serving,
    ShadowTraffic,
    TrafficSplit,
)

CAPABILITY_INTERFACES: dict[Capability, type] = {
    Capability.REGISTRY: ModelRegistry,
    Capability.REGISTRY_ALIASES: ModelAliases,
    Capability.REGISTRY_TAGS: ModelTags,
    Capability.REGISTRY_STAGES: ModelStages,
    Capability.REGISTRY_APPROVAL: ApprovalProjection,
    Capability.REGISTRY_DELETE: VersionDeletion,
    Capability.REGISTRY_FETCH: ArtifactFetch,
    Capability.REGISTRY_FROM_SERVING: ServedRegistration,
    Capability.RUNS: RunTracking,
    Capability.LINEAGE_METADATA: LineageMetadata,
    Capability.SERVING: Serving,
    Capability.SERVING_TRAFFIC_SPLIT: TrafficSplit,
    Capability.SERVING_SHADOW: ShadowTraffic,
    Capability.SERVING_NATIVE_ROLLOUT: NativeRollout,
    Capability.SERVING_BATCH: BatchScoring,
    Capability.SERVING_KILL: KillSwitch,
    Capability.MONITORING_CAPTURE: CaptureSource,
    Capability.MONITORING_METRICS: MetricsSource,
    Capability.PIPELINES: PipelineExecution,
    Capability.DISCOVERY: Discovery,
    Capability.SYNC: StateObserver,
    Capability.IDENTITY: CallerIdentity,
}

__all__ = [
    "CAPABILITY_INTERFACES",
    "ApprovalProjection",
    "ArtifactFetch",
    "Backend",
    "BackendContext",
    "BackendSettings",
    "BatchScoring",
    "CallerIdentity",
    "CaptureSource",
    "Discovery",
    "Emulation",
    "KillSwitch",
    "LineageMetadata",
    "MetricsSource",
    "ModelAliases",
    "ModelRegistry",
    "ModelStages",
    "ModelTags",
    "NativeRollout",
    "PipelineExecution",
    "RunTracking",
    "ServedRegistration",
    "Serving",
    "ShadowTraffic",
    "StateObserver",
    "StoreResidentRegistry",
    "Support",
    "TrafficSplit",
    "VersionDeletion",
]
