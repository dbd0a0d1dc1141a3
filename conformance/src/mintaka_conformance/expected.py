"""What each backend's cloud can do, written down once, so a backend cannot quietly declare less.

The cloud entries follow the shared reference on how the clouds express Mintaka's operations
(CLOUDS.md): ``native`` where the cloud has the feature, ``emulated`` where it lacks it and the
backend or core stands in for it (an alias kept in tags, shadow traffic mirrored by core, a rollout
driven by core). Capabilities that reference does not establish for a cloud are not required.
The local entry is what the reference backend implements and must keep implementing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from mintaka.capabilities import Capability as C
from mintaka.interfaces import Backend, Support


@dataclass(frozen=True)
class Expectation:
    native: frozenset[C]
    emulated: frozenset[C] = frozenset()

    def support(self, capability: C) -> Support | None:
        if capability in self.native:
            return Support.NATIVE
        if capability in self.emulated:
            return Support.EMULATED
        return None

    @property
    def all(self) -> frozenset[C]:
        return self.native | self.emulated


_REGISTRY_BASICS = frozenset({C.REGISTRY, C.REGISTRY_TAGS, C.DISCOVERY, C.SYNC})
_SERVING_BASICS = frozenset({C.SERVING, C.SERVING_TRAFFIC_SPLIT, C.PIPELINES})

EXPECTED: Mapping[str, Expectation] = {
    "local": Expectation(
        native=frozenset(
            {
                C.REGISTRY,
                C.REGISTRY_ALIASES,
                C.REGISTRY_TAGS,
                C.REGISTRY_STAGES,
                C.REGISTRY_APPROVAL,
                C.REGISTRY_DELETE,
                C.REGISTRY_FETCH,
                C.RUNS,
                C.DISCOVERY,
                C.SYNC,
                C.SERVING,
                C.SERVING_TRAFFIC_SPLIT,
                C.SERVING_SHADOW,
                C.SERVING_KILL,
                C.SERVING_BATCH,
                C.MONITORING_CAPTURE,
                C.MONITORING_METRICS,
                C.PIPELINES,
            }
        ),
        # Core's rollout controller walks the plan on the inference server's routes.
        emulated=frozenset({C.SERVING_NATIVE_ROLLOUT}),
    ),
    # Model package groups / packages; ModelApprovalStatus; production and shadow variants;
    # BlueGreenUpdatePolicy with alarm rollback; data capture, Model Monitor, CloudWatch; Pipelines;
    # lineage entities; model data in S3 (read back to adopt a package, and registered as a
    # package where a Model serves it without one). No aliases or stages: kept in tags /
    # CustomerMetadataProperties.
    "sagemaker": Expectation(
        native=_REGISTRY_BASICS
        | _SERVING_BASICS
        | {
            C.REGISTRY_APPROVAL,
            C.REGISTRY_DELETE,
            C.REGISTRY_FETCH,
            C.REGISTRY_FROM_SERVING,
            C.SERVING_SHADOW,
            C.SERVING_NATIVE_ROLLOUT,
            C.MONITORING_CAPTURE,
            C.MONITORING_METRICS,
            C.LINEAGE_METADATA,
        },
        emulated=frozenset({C.REGISTRY_ALIASES, C.REGISTRY_STAGES}),
    ),
    # Model version_id and version aliases; Endpoint.traffic_split; PipelineJob; Model Monitoring;
    # ML Metadata. No shadow, rollback or approval: core drives or tags them.
    "vertex": Expectation(
        native=_REGISTRY_BASICS
        | _SERVING_BASICS
        | {C.REGISTRY_ALIASES, C.REGISTRY_DELETE, C.MONITORING_CAPTURE, C.LINEAGE_METADATA},
        emulated=frozenset(
            {C.REGISTRY_STAGES, C.REGISTRY_APPROVAL, C.SERVING_SHADOW, C.SERVING_NATIVE_ROLLOUT}
        ),
    ),
    # Model name / version; endpoint.traffic and mirror_traffic; pipeline jobs; monitor schedules.
    # Only the label "latest": aliases, stages and approval live in tags / properties.
    "azureml": Expectation(
        native=_REGISTRY_BASICS | _SERVING_BASICS | {C.SERVING_SHADOW, C.MONITORING_CAPTURE},
        emulated=frozenset(
            {
                C.REGISTRY_ALIASES,
                C.REGISTRY_STAGES,
                C.REGISTRY_APPROVAL,
                C.SERVING_NATIVE_ROLLOUT,
            }
        ),
    ),
    # Unity Catalog models with aliases; traffic_config routes; Jobs; inference tables and quality
    # monitors; UC lineage. Approval by tags; shadow and rollback driven by core.
    "databricks": Expectation(
        native=_REGISTRY_BASICS
        | _SERVING_BASICS
        | {C.REGISTRY_ALIASES, C.REGISTRY_DELETE, C.MONITORING_CAPTURE, C.LINEAGE_METADATA},
        emulated=frozenset(
            {C.REGISTRY_STAGES, C.REGISTRY_APPROVAL, C.SERVING_SHADOW, C.SERVING_NATIVE_ROLLOUT}
        ),
    ),
}


def shortfall(backend: type[Backend]) -> list[str]:
    """What ``backend`` declares less of than its cloud can do; empty when it lives up to it."""
    expected = EXPECTED.get(backend.name)
    if expected is None:
        return []
    problems = [
        f"{capability.value}: the cloud can do it, the backend does not declare it"
        for capability in sorted(expected.all - backend.capabilities)
    ]
    problems += [
        f"{capability.value}: native in the cloud, declared as emulated"
        for capability in sorted(expected.native & backend.capabilities)
        if capability in backend.emulated
    ]
    return problems
