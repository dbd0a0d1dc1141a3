"""A throwaway third-party backend plugin, installed by the plugin tests through an entry point."""

from __future__ import annotations

from typing import ClassVar

from mintaka import Backend, Capability, NotFound, hookimpl
from mintaka.domain.registry import BackendVersion, VersionRequest
from mintaka.interfaces import ModelRegistry


class HelloBackend(Backend, ModelRegistry):
    name = "hello"
    description = "In-memory registry from a third-party plugin."
    capabilities: ClassVar[frozenset[Capability]] = frozenset({Capability.REGISTRY})
    _models: ClassVar[dict[str, list[BackendVersion]]] = {}

    def ensure_model(self, name: str, description: str = "") -> dict[str, str]:
        self._models.setdefault(name, [])
        return {"model": name}

    def create_version(self, request: VersionRequest) -> BackendVersion:
        versions = self._models[request.name]
        for existing in versions:
            if existing.mintaka_id == request.idempotency_key:
                return existing
        created = BackendVersion(
            name=request.name,
            version=len(versions) + 1,
            artifact_uri=request.artifact_path,
            artifact_digest=request.artifact_digest,
            mintaka_id=request.idempotency_key,
        )
        versions.append(created)
        return created

    def get_version(self, name: str, version: int) -> BackendVersion:
        for existing in self.list_versions(name):
            if existing.version == version:
                return existing
        raise NotFound(f"{name}:{version}")

    def list_versions(self, name: str) -> list[BackendVersion]:
        if name not in self._models:
            raise NotFound(name)
        return list(self._models[name])

    def list_models(self) -> list[str]:
        return sorted(self._models)


@hookimpl
def mintaka_register_backends(registry) -> None:  # type: ignore[no-untyped-def]
    registry.add(HelloBackend)
