"""What a backend can do, declared up front and checked by core before every dispatch."""

from __future__ import annotations

from enum import StrEnum


class Capability(StrEnum):
    """One unit of backend functionality.

    Each member maps to exactly one interface in :mod:`mintaka.interfaces`; a backend that
    declares a capability must implement that interface (checked when the backend is registered).
    """

    # Registry (model / version, as in every cloud's registry).
    REGISTRY = "registry"
    REGISTRY_ALIASES = "registry.aliases"
    REGISTRY_TAGS = "registry.tags"
    REGISTRY_STAGES = "registry.stages"
    REGISTRY_APPROVAL = "registry.approval"
    REGISTRY_DELETE = "registry.delete"
    # A version's model bytes read back from the cloud (adopting versions Mintaka did not create).
    REGISTRY_FETCH = "registry.fetch"
    # What an endpoint serves with no registry version behind it (a model deployed straight
    # from its files), registered as a version, so the endpoint can be adopted.
    REGISTRY_FROM_SERVING = "registry.from_serving"
    # Experiment runs.
    RUNS = "runs"
    # Lineage pushed to, and read back from, the cloud's own lineage service.
    LINEAGE_METADATA = "lineage.metadata"
    # Serving and traffic.
    SERVING = "serving"
    SERVING_TRAFFIC_SPLIT = "serving.traffic_split"
    SERVING_SHADOW = "serving.shadow"
    SERVING_NATIVE_ROLLOUT = "serving.native_rollout"
    SERVING_BATCH = "serving.batch"
    SERVING_KILL = "serving.kill"
    # Monitoring inputs: request/response capture and endpoint metrics read-back.
    MONITORING_CAPTURE = "monitoring.capture"
    MONITORING_METRICS = "monitoring.metrics"
    # Pipelines compiled to the cloud's native format.
    PIPELINES = "pipelines"
    # Discovery of unmanaged resources, and observation of managed ones for sync.
    DISCOVERY = "discovery"
    SYNC = "sync"
    # The cloud can tell who the authenticated caller is.
    IDENTITY = "identity"


__all__ = ["Capability"]
