"""An in-memory backend: a registry, run tracking, lineage metadata, discovery and sync.

State lives in one ``MemoryCloud`` per ``namespace`` setting, shared by every backend instance in
the process, so that several Platforms (or a test acting behind Mintaka's back) see one "cloud".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from mintaka import Backend, BackendContext, BackendSettings, Capability, Conflict, NotFound
from mintaka.domain.discovery import (
    DiscoveredResource,
    ObservedEndpoint,
    ObservedModel,
    ResourceKind,
)
from mintaka.domain.lineage import LineageEdge, LineageNode
from mintaka.domain.registry import ApprovalStatus, BackendVersion, Stage, VersionRequest
from mintaka.domain.runs import Run, RunStatus
from mintaka.interfaces import (
    ApprovalProjection,
    Discovery,
    LineageMetadata,
    ModelAliases,
    ModelRegistry,
    ModelStages,
    ModelTags,
    RunTracking,
    StateObserver,
    VersionDeletion,
)


class MemorySettings(BackendSettings):
    namespace: str = "default"


@dataclass
class MemoryCloud:
    models: dict[str, dict[int, BackendVersion]] = field(default_factory=dict)
    next_version: dict[str, int] = field(default_factory=dict)
    aliases: dict[str, dict[str, int]] = field(default_factory=dict)
    keys: dict[str, tuple[str, int]] = field(default_factory=dict)
    runs: dict[str, Run] = field(default_factory=dict)
    edges: set[LineageEdge] = field(default_factory=set)


CLOUDS: dict[str, MemoryCloud] = {}


class MemoryBackend(
    Backend,
    ModelRegistry,
    ModelAliases,
    ModelTags,
    ModelStages,
    ApprovalProjection,
    VersionDeletion,
    RunTracking,
    LineageMetadata,
    Discovery,
    StateObserver,
):
    name = "memory"
    description = "Example plugin: an in-memory registry (docs/writing-a-backend.md)."
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.REGISTRY,
            Capability.REGISTRY_ALIASES,
            Capability.REGISTRY_TAGS,
            Capability.REGISTRY_STAGES,
            Capability.REGISTRY_APPROVAL,
            Capability.REGISTRY_DELETE,
            Capability.RUNS,
            Capability.LINEAGE_METADATA,
            Capability.DISCOVERY,
            Capability.SYNC,
        }
    )
    settings_model = MemorySettings

    def __init__(self, settings: BackendSettings, context: BackendContext) -> None:
        super().__init__(settings, context)
        assert isinstance(settings, MemorySettings)
        self.cloud = CLOUDS.setdefault(settings.namespace, MemoryCloud())

    # -- registry -------------------------------------------------------------------------------

    def _model(self, name: str) -> dict[int, BackendVersion]:
        try:
            return self.cloud.models[name]
        except KeyError:
            raise NotFound(f"model {name!r} not found in memory") from None

    def _version(self, name: str, version: int) -> BackendVersion:
        try:
            found = self._model(name)[version]
        except KeyError:
            raise NotFound(f"version {name}:{version} not found in memory") from None
        aliases = tuple(sorted(a for a, v in self.cloud.aliases[name].items() if v == version))
        return found.model_copy(update={"aliases": aliases})

    def _replace(self, name: str, version: int, **changes: Any) -> None:
        self._model(name)[version] = self._version(name, version).model_copy(update=changes)

    def ensure_model(self, name: str, description: str = "") -> dict[str, str]:
        self.cloud.models.setdefault(name, {})
        self.cloud.aliases.setdefault(name, {})
        return {"model": name}

    def create_version(self, request: VersionRequest) -> BackendVersion:
        versions = self._model(request.name)
        if request.idempotency_key in self.cloud.keys:
            return self._version(*self.cloud.keys[request.idempotency_key])
        number = self.cloud.next_version.get(request.name, 0) + 1
        self.cloud.next_version[request.name] = number
        versions[number] = BackendVersion(
            name=request.name,
            version=number,
            artifact_uri=request.artifact_path,
            artifact_digest=request.artifact_digest,
            tags=dict(request.tags),
            mintaka_id=request.mintaka_id,
            backend_ids={"version": f"{request.name}/{number}"},
        )
        self.cloud.keys[request.idempotency_key] = (request.name, number)
        return self._version(request.name, number)

    def get_version(self, name: str, version: int) -> BackendVersion:
        return self._version(name, version)

    def list_versions(self, name: str) -> list[BackendVersion]:
        return [self._version(name, v) for v in sorted(self._model(name))]

    def list_models(self) -> list[str]:
        return sorted(self.cloud.models)

    def set_alias(self, name: str, alias: str, version: int) -> None:
        self._version(name, version)
        self.cloud.aliases[name][alias] = version

    def delete_alias(self, name: str, alias: str) -> None:
        if self.cloud.aliases.get(name, {}).pop(alias, None) is None:
            raise NotFound(f"alias {name}@{alias} not found in memory")

    def get_aliases(self, name: str) -> dict[str, int]:
        self._model(name)
        return dict(self.cloud.aliases[name])

    def set_tags(self, name: str, version: int, tags: Mapping[str, str]) -> None:
        self._replace(name, version, tags={**self._version(name, version).tags, **tags})

    def delete_tag(self, name: str, version: int, key: str) -> None:
        remaining = {k: v for k, v in self._version(name, version).tags.items() if k != key}
        self._replace(name, version, tags=remaining)

    def set_stage(self, name: str, version: int, stage: Stage) -> None:
        self._replace(name, version, stage=stage)

    def set_approval(self, name: str, version: int, status: ApprovalStatus) -> None:
        self._replace(name, version, approval=status)

    def delete_version(self, name: str, version: int) -> None:
        self._version(name, version)
        del self.cloud.models[name][version]
        self.cloud.aliases[name] = {
            a: v for a, v in self.cloud.aliases[name].items() if v != version
        }

    # -- runs -----------------------------------------------------------------------------------

    def _run(self, run_id: str) -> Run:
        try:
            return self.cloud.runs[run_id]
        except KeyError:
            raise NotFound(f"run {run_id!r} not found in memory") from None

    def create_run(self, run: Run) -> dict[str, str]:
        self.cloud.runs.setdefault(run.id, run)
        return {"run": run.id}

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        run = self._run(run_id)
        clash = sorted(k for k, v in params.items() if run.params.get(k, v) != v)
        if clash:
            raise Conflict(f"run {run_id}: parameters already logged: {clash}")
        self.cloud.runs[run_id] = run.model_copy(update={"params": {**run.params, **params}})

    def log_metrics(self, run_id: str, metrics: Mapping[str, float]) -> None:
        run = self._run(run_id)
        self.cloud.runs[run_id] = run.model_copy(update={"metrics": {**run.metrics, **metrics}})

    def end_run(self, run_id: str, status: RunStatus) -> None:
        self.cloud.runs[run_id] = self._run(run_id).model_copy(update={"status": status})

    def get_run(self, run_id: str) -> Run:
        return self._run(run_id)

    # -- lineage, discovery, sync ---------------------------------------------------------------

    def push_lineage(self, nodes: Sequence[LineageNode], edges: Sequence[LineageEdge]) -> None:
        self.cloud.edges.update(edges)

    def read_lineage(self, node_id: str) -> list[LineageEdge]:
        return sorted(
            (e for e in self.cloud.edges if node_id in (e.src, e.dst)),
            key=lambda e: (e.src, e.dst, e.kind.value),
        )

    def discover(self) -> list[DiscoveredResource]:
        found = []
        for name in sorted(self.cloud.models):
            found.append(
                DiscoveredResource(
                    kind=ResourceKind.MODEL, name=name, backend_id=name, managed=False
                )
            )
            for version in self.list_versions(name):
                found.append(
                    DiscoveredResource(
                        kind=ResourceKind.MODEL_VERSION,
                        name=f"{name}:{version.version}",
                        backend_id=version.backend_ids["version"],
                        managed=version.mintaka_id is not None,
                    )
                )
        return found

    def observe_model(self, name: str) -> ObservedModel:
        return ObservedModel(
            name=name, versions=tuple(self.list_versions(name)), aliases=self.get_aliases(name)
        )

    def observe_endpoint(self, name: str) -> ObservedEndpoint:
        raise NotFound(f"endpoint {name!r} not found in memory")
