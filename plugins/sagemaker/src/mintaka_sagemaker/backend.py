"""The SageMaker backend class: what it declares, and discovery, sync and identity."""

from __future__ import annotations

import threading
from typing import Any, ClassVar

from mintaka.capabilities import Capability
from mintaka.domain.discovery import (
    DiscoveredResource,
    ObservedEndpoint,
    ObservedModel,
    ResourceKind,
)
from mintaka.domain.governance import Identity, IdentitySource
from mintaka.domain.serving import EndpointStatus
from mintaka.errors import NotFound
from mintaka.interfaces import (
    ApprovalProjection,
    ArtifactFetch,
    Backend,
    BackendContext,
    BackendSettings,
    CallerIdentity,
    CaptureSource,
    Discovery,
    Emulation,
    KillSwitch,
    LineageMetadata,
    MetricsSource,
    ModelAliases,
    ModelRegistry,
    ModelStages,
    ModelTags,
    NativeRollout,
    PipelineExecution,
    ServedRegistration,
    Serving,
    ShadowTraffic,
    StateObserver,
    TrafficSplit,
    VersionDeletion,
)
from mintaka_sagemaker.clients import ClientFactory
from mintaka_sagemaker.lineage import SageMakerLineage
from mintaka_sagemaker.monitoring import SageMakerMonitoring
from mintaka_sagemaker.pipelines import SageMakerPipelines
from mintaka_sagemaker.registry import MANAGED_TAG, META_ID
from mintaka_sagemaker.settings import SageMakerSettings


class SageMakerBackend(
    SageMakerMonitoring,
    SageMakerPipelines,
    SageMakerLineage,
    Backend,
    ModelRegistry,
    ModelAliases,
    ModelTags,
    ModelStages,
    ApprovalProjection,
    VersionDeletion,
    ArtifactFetch,
    ServedRegistration,
    Serving,
    TrafficSplit,
    ShadowTraffic,
    NativeRollout,
    KillSwitch,
    CaptureSource,
    MetricsSource,
    PipelineExecution,
    Discovery,
    StateObserver,
    CallerIdentity,
    LineageMetadata,
):
    name = "sagemaker"
    description = "Amazon SageMaker: model package groups, endpoints with variants, CloudWatch."
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.REGISTRY,
            Capability.REGISTRY_ALIASES,
            Capability.REGISTRY_TAGS,
            Capability.REGISTRY_STAGES,
            Capability.REGISTRY_FETCH,
            Capability.REGISTRY_FROM_SERVING,
            Capability.REGISTRY_APPROVAL,
            Capability.REGISTRY_DELETE,
            Capability.SERVING,
            Capability.SERVING_TRAFFIC_SPLIT,
            Capability.SERVING_SHADOW,
            Capability.SERVING_NATIVE_ROLLOUT,
            Capability.SERVING_KILL,
            Capability.MONITORING_CAPTURE,
            Capability.MONITORING_METRICS,
            Capability.PIPELINES,
            Capability.LINEAGE_METADATA,
            Capability.DISCOVERY,
            Capability.SYNC,
            Capability.IDENTITY,
        }
    )
    emulated: ClassVar[dict[Capability, Emulation]] = {
        Capability.REGISTRY_ALIASES: Emulation(
            how="tags on the model package group, mintaka:alias:<alias> = version number",
            limits="invisible to SageMaker's own tools as aliases; an alias is not resolvable "
            "in a SageMaker API call, only through Mintaka",
        ),
        Capability.SERVING_KILL: Emulation(
            how="the endpoint is deleted, its config and Models kept, with a kill record (config "
            "and traffic) in the artifact bucket; releasing re-creates it from that config and "
            "restores its weights",
            limits="a request to a killed endpoint fails as to a missing one; releasing takes as "
            "long as creating the endpoint (minutes); discovery does not list a killed endpoint; "
            "autoscaling targets on its variants are left as they are",
        ),
        Capability.REGISTRY_STAGES: Emulation(
            how="CustomerMetadataProperties mintaka_stage on the model package",
            limits="SageMaker's own ModelLifeCycle stages are not set; the stage only means "
            "something to Mintaka",
        ),
    }
    settings_model = SageMakerSettings

    def __init__(self, settings: BackendSettings, context: BackendContext) -> None:
        super().__init__(settings, context)
        assert isinstance(settings, SageMakerSettings)
        self.settings: SageMakerSettings = settings
        self.clients = ClientFactory(settings)
        self._arn_lock = threading.Lock()
        self._arn_base = None

    def describe(self) -> dict[str, Any]:
        s = self.settings
        return {
            "region": s.region,
            "bucket": s.bucket,
            "prefix": s.key_prefix,
            "endpoint_url": s.endpoint_url,
            "retries": f"{s.retry_mode}, {s.max_attempts} attempts",
        }

    def close(self) -> None:
        self.clients.close()

    # -- discovery and sync -----------------------------------------------------------------------

    def discover(self) -> list[DiscoveredResource]:
        found: list[DiscoveredResource] = []
        for name in self.list_models():
            group = self._group_arn(name)
            found.append(
                DiscoveredResource(
                    kind=ResourceKind.MODEL,
                    name=name,
                    backend_id=group,
                    managed=self._tags(group).get(MANAGED_TAG) == "true",
                )
            )
            for number in self._version_numbers(name):
                try:
                    described = self._describe_package(name, number)
                except NotFound:
                    continue
                mintaka_id = (described.get("CustomerMetadataProperties") or {}).get(META_ID)
                found.append(
                    DiscoveredResource(
                        kind=ResourceKind.MODEL_VERSION,
                        name=f"{name}:{number}",
                        backend_id=str(described["ModelPackageArn"]),
                        managed=mintaka_id is not None,
                        extra={"mintaka_id": mintaka_id} if mintaka_id else {},
                    )
                )
        monitors: dict[str, list[str]] = {}
        for schedule in self.monitoring_schedules():
            monitors.setdefault(str(schedule["endpoint"]), []).append(schedule["name"])
        for page in self._pages("sagemaker", "list_endpoints"):
            for summary in page.get("Endpoints", []):
                arn = str(summary["EndpointArn"])
                name = self.settings.endpoint_name_of(str(summary["EndpointName"]))
                extra: dict[str, Any] = {"status": str(summary.get("EndpointStatus", ""))}
                if name in monitors:
                    extra["monitoring_schedules"] = sorted(monitors[name])
                found.append(
                    DiscoveredResource(
                        kind=ResourceKind.ENDPOINT,
                        name=name,
                        backend_id=arn,
                        managed=self._tags(arn).get(MANAGED_TAG) == "true",
                        extra=extra,
                    )
                )
        return found

    def observe_model(self, name: str) -> ObservedModel:
        return ObservedModel(
            name=name, versions=tuple(self.list_versions(name)), aliases=self.get_aliases(name)
        )

    def observe_endpoint(self, name: str) -> ObservedEndpoint:
        endpoint = self.get_endpoint(name)
        routes = [r.model_dump(mode="json") for r in endpoint.routes]
        return ObservedEndpoint(
            name=name,
            traffic=endpoint.traffic,
            extra={
                # routes that cannot be read (the config was deleted) are not reported as none
                **({"routes": routes} if endpoint.extra.get("routes_known", True) else {}),
                **endpoint.extra,
                "endpoint_config": endpoint.backend_ids.get("endpoint_config", ""),
                # the kill record read back, or an endpoint serving under its name again
                "killed": endpoint.status is EndpointStatus.KILLED,
            },
        )

    # -- identity ---------------------------------------------------------------------------------

    def whoami(self) -> Identity:
        caller = self._call("sts", "get_caller_identity")
        return Identity(
            name=str(caller["Arn"]),
            source=IdentitySource.BACKEND,
            detail={"account": str(caller["Account"]), "user_id": str(caller["UserId"])},
        )
