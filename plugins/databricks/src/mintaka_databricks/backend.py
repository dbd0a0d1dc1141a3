"""The Databricks backend: Unity Catalog registry, serving endpoints, MLflow runs, Jobs.

What Databricks lacks and is stood in for is declared in ``emulated``: stages and approval are
tags on the model version, shadow traffic is mirrored by core, rollouts are walked by core.
"""

from __future__ import annotations

from typing import Any, ClassVar

from mintaka.capabilities import Capability
from mintaka.domain.discovery import (
    DiscoveredResource,
    ObservedEndpoint,
    ObservedModel,
    ResourceKind,
)
from mintaka.errors import ConfigurationError
from mintaka.interfaces import (
    Backend,
    BackendContext,
    BackendSettings,
    Discovery,
    Emulation,
    StateObserver,
)
from mintaka_databricks.lineage import ExternalLineage
from mintaka_databricks.names import mintaka_name
from mintaka_databricks.pipelines import JobsPipelines
from mintaka_databricks.registry import UnityCatalogRegistry
from mintaka_databricks.runs import MlflowRuns
from mintaka_databricks.serving import MANAGED_TAG, EndpointServing
from mintaka_databricks.settings import DatabricksSettings
from mintaka_databricks.workspace import ID_TAG


class DatabricksBackend(
    UnityCatalogRegistry,
    EndpointServing,
    MlflowRuns,
    JobsPipelines,
    ExternalLineage,
    Backend,
    Discovery,
    StateObserver,
):
    name = "databricks"
    description = (
        "Databricks: Unity Catalog models and aliases, Model Serving endpoints with traffic "
        "routes, MLflow runs, Jobs, inference tables, endpoint metrics and external lineage."
    )
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.REGISTRY,
            Capability.REGISTRY_ALIASES,
            Capability.REGISTRY_TAGS,
            Capability.REGISTRY_STAGES,
            Capability.REGISTRY_APPROVAL,
            Capability.REGISTRY_DELETE,
            Capability.RUNS,
            Capability.DISCOVERY,
            Capability.SYNC,
            Capability.SERVING,
            Capability.SERVING_TRAFFIC_SPLIT,
            Capability.SERVING_SHADOW,
            Capability.SERVING_NATIVE_ROLLOUT,
            Capability.MONITORING_CAPTURE,
            Capability.MONITORING_METRICS,
            Capability.PIPELINES,
            Capability.LINEAGE_METADATA,
        }
    )
    emulated: ClassVar[dict[Capability, Emulation]] = {
        Capability.REGISTRY_STAGES: Emulation(
            how="the stage is a 'mintaka.stage' tag on the Unity Catalog model version",
            limits="Unity Catalog has no stages: nothing in Databricks enforces or reacts to the "
            "tag, and anyone with APPLY TAG can change it (sync reports that)",
        ),
        Capability.REGISTRY_APPROVAL: Emulation(
            how="the approval is a 'mintaka.approval' tag on the model version, beside the "
            "'mintaka.digest' tag it was granted for",
            limits="a tag is informative only: Databricks serves an unapproved version if asked "
            "directly; core's traffic gate is what refuses it",
        ),
        Capability.SERVING_SHADOW: Emulation(
            how="core mirrors the shadow share of requests made through platform.serving.invoke "
            "to the shadow route's served-model invocation path; the endpoint only ever gets live "
            "weights",
            limits="requests sent to the endpoint without Mintaka are not mirrored; mirrored "
            "requests count in the endpoint's metrics and inference table",
        ),
        Capability.SERVING_NATIVE_ROLLOUT: Emulation(
            how="core walks the plan's steps with update_config route changes and rolls back "
            "from the endpoint metrics it reads",
            limits="no rollout runs while Mintaka is not running; Databricks has no alarm-driven "
            "rollback of its own",
        ),
    }
    settings_model = DatabricksSettings

    def __init__(self, settings: BackendSettings, context: BackendContext) -> None:
        super().__init__(settings, context)
        assert isinstance(settings, DatabricksSettings)
        if settings.registry != "uc":
            raise ConfigurationError(
                "the Databricks backend keeps models in Unity Catalog only; the workspace model "
                "registry (registry = 'workspace') is not implemented"
            )
        self.settings: DatabricksSettings = settings
        self._client = None
        self._runs = {}
        self._experiments = set()

    def describe(self) -> dict[str, Any]:
        return {
            "host": self.settings.host,
            "catalog": self.settings.catalog,
            "schema": self.settings.schema_name,
            "registry": self.settings.registry,
            "experiment_root": self.settings.experiment_root,
        }

    def close(self) -> None:
        self._client = None

    # -- discovery and sync ---------------------------------------------------------------------

    def discover(self) -> list[DiscoveredResource]:
        found: list[DiscoveredResource] = []
        models = self._call(
            "listing models",
            lambda: list(
                self.client.registered_models.list(
                    catalog_name=self.settings.catalog, schema_name=self.settings.schema_name
                )
            ),
        )
        for model in sorted(models, key=lambda m: m.full_name or ""):
            full = str(model.full_name)
            name = mintaka_name(model.name or "")
            versions = list(self._search_versions(full))
            managed = [bool(_tag(v, ID_TAG)) for v in versions]
            found.append(
                DiscoveredResource(
                    kind=ResourceKind.MODEL,
                    name=name or full,
                    backend_id=full,
                    managed=name is not None and any(managed),
                )
            )
            for raw, is_managed in sorted(
                zip(versions, managed, strict=True), key=lambda p: int(p[0]["version"])
            ):
                found.append(
                    DiscoveredResource(
                        kind=ResourceKind.MODEL_VERSION,
                        name=f"{name or full}:{raw['version']}",
                        backend_id=f"{full}/{raw['version']}",
                        managed=is_managed and name is not None,
                        extra={"mintaka_id": _tag(raw, ID_TAG)} if is_managed else {},
                    )
                )
        endpoints = self._call(
            "listing serving endpoints", lambda: list(self.client.serving_endpoints.list())
        )
        for endpoint in endpoints:
            tags = {t.key: t.value for t in endpoint.tags or []}
            found.append(
                DiscoveredResource(
                    kind=ResourceKind.ENDPOINT,
                    name=str(endpoint.name),
                    backend_id=str(endpoint.id or endpoint.name),
                    managed=MANAGED_TAG in tags,
                    extra={"creator": endpoint.creator},
                )
            )
        return found

    def observe_model(self, name: str) -> ObservedModel:
        return ObservedModel(
            name=name, versions=tuple(self.list_versions(name)), aliases=self.get_aliases(name)
        )

    def observe_endpoint(self, name: str) -> ObservedEndpoint:
        endpoint = self.get_endpoint(name)
        return ObservedEndpoint(
            name=name,
            traffic=endpoint.traffic,
            extra={
                "routes": [r.model_dump(mode="json") for r in endpoint.routes],
                **endpoint.extra,
            },
        )


def _tag(raw: dict[str, Any], key: str) -> str | None:
    for tag in raw.get("tags") or []:
        if tag.get("key") == key:
            return str(tag.get("value", ""))
    return None
