"""The Databricks backends: Model Serving endpoints, MLflow runs, Jobs and inference tables, with
models in Unity Catalog (``databricks``) or in the workspace model registry
(``databricks_workspace``, for workspaces without Unity Catalog).

The two registries differ in what is native: Unity Catalog has aliases and no stages, the
workspace registry has stages and no aliases. Capabilities and their emulations are declared per
backend class, so each registry is its own backend name rather than a setting that would make one
class's declarations wrong in the other mode. What Databricks lacks and is stood in for is
declared in ``emulated``.
"""

from __future__ import annotations

import logging
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
from mintaka.errors import ConfigurationError, ValidationError
from mintaka.interfaces import (
    Backend,
    BackendContext,
    BackendSettings,
    CallerIdentity,
    Discovery,
    Emulation,
    ModelAliases,
    ModelRegistry,
    StateObserver,
)
from mintaka_databricks.lineage import ExternalLineage
from mintaka_databricks.pipelines import JobsPipelines
from mintaka_databricks.registry import UnityCatalogRegistry
from mintaka_databricks.runs import MlflowRuns
from mintaka_databricks.serving import MANAGED_TAG, EndpointServing
from mintaka_databricks.settings import DatabricksSettings, DatabricksWorkspaceSettings
from mintaka_databricks.versions import is_ready, tag_map
from mintaka_databricks.workspace import ID_TAG
from mintaka_databricks.workspace_registry import WorkspaceModelRegistry

log = logging.getLogger(__name__)

_CAPABILITIES = frozenset(
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
        Capability.SERVING_KILL,
        Capability.MONITORING_CAPTURE,
        Capability.MONITORING_METRICS,
        Capability.PIPELINES,
        Capability.LINEAGE_METADATA,
        Capability.IDENTITY,
    }
)

_SHARED_EMULATED: dict[Capability, Emulation] = {
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
    Capability.SERVING_KILL: Emulation(
        how="an endpoint-wide AI Gateway rate limit of 0 calls per minute refuses every request "
        "while the endpoint keeps its config and compute; the endpoint-wide limit it had is kept "
        "in its 'mintaka-killed' tag and restored on release",
        limits="Databricks applies a rate-limit change within about a minute, so requests may "
        "still be answered for that long; callers get 429 REQUEST_LIMIT_EXCEEDED, which the "
        "Databricks SDK retries until its retry timeout; a workspace without AI Gateway rate "
        "limits for the endpoint's type refuses the kill (BackendError)",
    ),
}


class _DatabricksWorkspace(
    EndpointServing,
    MlflowRuns,
    JobsPipelines,
    ExternalLineage,
    Backend,
    Discovery,
    StateObserver,
    CallerIdentity,
    ModelRegistry,
    ModelAliases,
):
    """What both Databricks backends share; a registry mixin comes first in each subclass."""

    registry_mode: ClassVar[str]
    settings_model = DatabricksSettings

    def __init__(self, settings: BackendSettings, context: BackendContext) -> None:
        super().__init__(settings, context)
        assert isinstance(settings, DatabricksSettings)
        if settings.registry != self.registry_mode:
            other = "databricks_workspace" if settings.registry == "workspace" else "databricks"
            raise ConfigurationError(
                f"the Databricks backend {self.name!r} keeps models in the "
                f"{_REGISTRIES[self.registry_mode]}; registry = {settings.registry!r} is the "
                f"backend {other!r}"
            )
        self.settings: DatabricksSettings = settings
        self._client = None
        self._runs = {}
        self._experiments = set()

    # The registry mixin provides these; declared here for discovery.
    def _listed_models(self) -> list[tuple[str, str]]:
        raise NotImplementedError

    def _listed_versions(self, full: str) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _mintaka_model(self, full: str, leaf: str) -> str | None:
        raise NotImplementedError

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
        """Every model and its ready versions, and every serving endpoint; a version still
        registering or whose registration failed is left out, as in ``observe_model``. A model
        whose versions no search can name (both kinds of quote in its name) is listed without
        them, saying why in ``extra["versions_unread"]``, so it does not hide the others."""
        found: list[DiscoveredResource] = []
        for full, leaf in sorted(self._listed_models()):
            name = self._mintaka_model(full, leaf)
            unread: dict[str, str] = {}
            try:
                versions = [v for v in self._listed_versions(full) if is_ready(v)]
            except ValidationError as exc:
                log.warning("the versions of model %r were not read: %s", full, exc)
                versions, unread = [], {"versions_unread": str(exc)}
            managed = [bool(tag_map(v).get(ID_TAG)) for v in versions]
            found.append(
                DiscoveredResource(
                    kind=ResourceKind.MODEL,
                    name=name or full,
                    backend_id=full,
                    managed=name is not None and any(managed),
                    extra=unread,
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
                        extra={"mintaka_id": tag_map(raw).get(ID_TAG)} if is_managed else {},
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
                    name=self.settings.endpoint_name_of(str(endpoint.name)),
                    backend_id=str(endpoint.id or endpoint.name),
                    managed=MANAGED_TAG in tags,
                    extra={"creator": endpoint.creator},
                )
            )
        return found

    def observe_model(self, name: str) -> ObservedModel:
        """The model's ``READY`` versions and its aliases, for adoption and sync: a version
        ``PENDING_REGISTRATION`` is one a create has not finished (registering it again does),
        one ``FAILED_REGISTRATION`` holds no model, so neither is one to adopt or record."""
        versions = (v for v in self.list_versions(name) if is_ready(v.extra))
        return ObservedModel(name=name, versions=tuple(versions), aliases=self.get_aliases(name))

    def whoami(self) -> Identity:
        """The workspace's own answer to "who is calling" (SCIM Me): an authenticated identity."""
        me = self._call("reading the calling user", self.client.current_user.me)
        return Identity(
            name=str(me.user_name or me.id),
            source=IdentitySource.BACKEND,
            detail={"id": str(me.id), "host": self.describe().get("host", "")},
        )

    def observe_endpoint(self, name: str) -> ObservedEndpoint:
        endpoint = self.get_endpoint(name)
        return ObservedEndpoint(
            name=name,
            traffic=endpoint.traffic,
            extra={
                "routes": [r.model_dump(mode="json") for r in endpoint.routes],
                **endpoint.extra,
                # a zero endpoint-wide rate limit, set or lifted in the workspace too
                "killed": endpoint.status is EndpointStatus.KILLED,
            },
        )


_REGISTRIES = {"uc": "Unity Catalog", "workspace": "workspace model registry"}


class DatabricksBackend(UnityCatalogRegistry, _DatabricksWorkspace):
    name = "databricks"
    description = (
        "Databricks: Unity Catalog models and aliases, Model Serving endpoints with traffic "
        "routes, MLflow runs, Jobs, inference tables, endpoint metrics and external lineage."
    )
    registry_mode = "uc"
    capabilities: ClassVar[frozenset[Capability]] = _CAPABILITIES | {Capability.REGISTRY_FETCH}
    emulated: ClassVar[dict[Capability, Emulation]] = {
        Capability.REGISTRY_STAGES: Emulation(
            how="the stage is a 'mintaka.stage' tag on the Unity Catalog model version",
            limits="Unity Catalog has no stages: nothing in Databricks enforces or reacts to the "
            "tag, and anyone with APPLY TAG can change it (sync reports that)",
        ),
        **_SHARED_EMULATED,
    }


class DatabricksWorkspaceBackend(WorkspaceModelRegistry, _DatabricksWorkspace):
    name = "databricks_workspace"
    description = (
        "Databricks without Unity Catalog: workspace model registry with native stages, Model "
        "Serving endpoints with traffic routes, MLflow runs, Jobs, inference tables, endpoint "
        "metrics and external lineage."
    )
    registry_mode = "workspace"
    settings_model = DatabricksWorkspaceSettings
    capabilities: ClassVar[frozenset[Capability]] = _CAPABILITIES
    emulated: ClassVar[dict[Capability, Emulation]] = {
        Capability.REGISTRY_ALIASES: Emulation(
            how="each alias is a 'mintaka.alias.<alias>' tag on the workspace registered model "
            "whose value is the version number",
            limits="the workspace registry has no aliases: Databricks cannot resolve one (a "
            "served entity names a version), and anyone who can edit the model's tags can move "
            "it (sync reports that)",
        ),
        **_SHARED_EMULATED,
    }
