"""The local reference backend: a registry and run tracker in SQLite, artifacts on disk.

It needs no cloud and is the default. It implements every registry capability natively, so it is
also the reference the conformance suite is checked against.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import Connection, delete, func, select, update
from sqlalchemy.dialects.sqlite import insert

from mintaka.capabilities import Capability
from mintaka.domain.discovery import (
    DiscoveredResource,
    ObservedEndpoint,
    ObservedModel,
    ResourceKind,
)
from mintaka.domain.registry import ApprovalStatus, BackendVersion, Stage, VersionRequest
from mintaka.domain.runs import Run, RunStatus
from mintaka.errors import Conflict, NotFound
from mintaka.interfaces import (
    ApprovalProjection,
    Backend,
    BackendContext,
    BackendSettings,
    Discovery,
    ModelAliases,
    ModelRegistry,
    ModelStages,
    ModelTags,
    RunTracking,
    StateObserver,
    VersionDeletion,
)
from mintaka.local.registry_db import (
    local_aliases,
    local_models,
    local_runs,
    local_tags,
    local_versions,
    metadata,
)
from mintaka.store.engine import make_engine


class LocalSettings(BackendSettings):
    """Where the local backend keeps its state; defaults to ``<home>/local``."""

    path: Path | None = None


class LocalBackend(
    Backend,
    ModelRegistry,
    ModelAliases,
    ModelTags,
    ModelStages,
    ApprovalProjection,
    VersionDeletion,
    RunTracking,
    Discovery,
    StateObserver,
):
    name = "local"
    description = "Embedded reference backend: SQLite registry, content-addressed files on disk."
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
        }
    )
    settings_model = LocalSettings

    def __init__(self, settings: BackendSettings, context: BackendContext) -> None:
        super().__init__(settings, context)
        assert isinstance(settings, LocalSettings)
        self.path = settings.path or context.home / "local"
        self.engine = make_engine(f"sqlite:///{self.path / 'registry.db'}")
        metadata.create_all(self.engine)

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path)}

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn.execution_options(mintaka_write=True)
            with conn.begin():
                yield conn

    def _now(self) -> str:
        return self.context.clock.now().isoformat()

    # -- registry -----------------------------------------------------------------------------

    def ensure_model(self, name: str, description: str = "") -> dict[str, str]:
        with self._write() as conn:
            conn.execute(
                insert(local_models)
                .values(name=name, description=description, created_at=self._now())
                .on_conflict_do_nothing()
            )
        return {"model": name}

    def _model_exists(self, conn: Connection, name: str) -> None:
        if (
            conn.execute(select(local_models.c.name).where(local_models.c.name == name)).first()
            is None
        ):
            raise NotFound(f"model {name!r} not found in the local registry")

    def create_version(self, request: VersionRequest) -> BackendVersion:
        with self._write() as conn:
            self._model_exists(conn, request.name)
            existing = conn.execute(
                select(local_versions.c.version).where(
                    local_versions.c.idempotency_key == request.idempotency_key
                )
            ).scalar()
            if existing is None:
                number = (
                    conn.execute(
                        select(func.max(local_versions.c.version)).where(
                            local_versions.c.name == request.name
                        )
                    ).scalar()
                    or 0
                ) + 1
                conn.execute(
                    local_versions.insert().values(
                        name=request.name,
                        version=number,
                        artifact_uri=Path(request.artifact_path).resolve().as_uri(),
                        artifact_digest=request.artifact_digest,
                        flavor=request.flavor.value,
                        metrics=dict(request.metrics),
                        description=request.description,
                        stage=None,
                        approval=None,
                        mintaka_id=request.mintaka_id,
                        idempotency_key=request.idempotency_key,
                        created_at=self._now(),
                    )
                )
                if request.tags:
                    conn.execute(
                        local_tags.insert(),
                        [
                            {"name": request.name, "version": number, "key": k, "value": v}
                            for k, v in request.tags.items()
                        ],
                    )
                existing = number
            return self._version(conn, request.name, int(existing))

    def _version(self, conn: Connection, name: str, version: int) -> BackendVersion:
        row = conn.execute(
            select(local_versions).where(
                local_versions.c.name == name, local_versions.c.version == version
            )
        ).one_or_none()
        if row is None:
            self._model_exists(conn, name)
            raise NotFound(f"version {name}:{version} not found in the local registry")
        tags = {
            t.key: t.value
            for t in conn.execute(
                select(local_tags.c.key, local_tags.c.value).where(
                    local_tags.c.name == name, local_tags.c.version == version
                )
            )
        }
        aliases = tuple(
            sorted(
                a
                for (a,) in conn.execute(
                    select(local_aliases.c.alias).where(
                        local_aliases.c.name == name, local_aliases.c.version == version
                    )
                )
            )
        )
        return BackendVersion(
            name=name,
            version=version,
            artifact_uri=row.artifact_uri,
            artifact_digest=row.artifact_digest,
            aliases=aliases,
            tags=tags,
            stage=Stage(row.stage) if row.stage else None,
            approval=ApprovalStatus(row.approval) if row.approval else None,
            mintaka_id=row.mintaka_id,
            backend_ids={"model": name, "version": str(version)},
        )

    def get_version(self, name: str, version: int) -> BackendVersion:
        with self.engine.connect() as conn, conn.begin():
            return self._version(conn, name, version)

    def list_versions(self, name: str) -> list[BackendVersion]:
        with self.engine.connect() as conn, conn.begin():
            self._model_exists(conn, name)
            numbers = conn.execute(
                select(local_versions.c.version)
                .where(local_versions.c.name == name)
                .order_by(local_versions.c.version)
            ).scalars()
            return [self._version(conn, name, int(n)) for n in numbers]

    def list_models(self) -> list[str]:
        with self.engine.connect() as conn, conn.begin():
            return list(
                conn.execute(select(local_models.c.name).order_by(local_models.c.name)).scalars()
            )

    def _require_version(self, conn: Connection, name: str, version: int) -> None:
        found = conn.execute(
            select(local_versions.c.version).where(
                local_versions.c.name == name, local_versions.c.version == version
            )
        ).first()
        if found is None:
            self._model_exists(conn, name)
            raise NotFound(f"version {name}:{version} not found in the local registry")

    def set_alias(self, name: str, alias: str, version: int) -> None:
        with self._write() as conn:
            self._require_version(conn, name, version)
            conn.execute(
                insert(local_aliases)
                .values(name=name, alias=alias, version=version)
                .on_conflict_do_update(index_elements=["name", "alias"], set_={"version": version})
            )

    def delete_alias(self, name: str, alias: str) -> None:
        with self._write() as conn:
            self._model_exists(conn, name)
            result = conn.execute(
                delete(local_aliases).where(
                    local_aliases.c.name == name, local_aliases.c.alias == alias
                )
            )
            if result.rowcount == 0:
                raise NotFound(f"alias {name}@{alias} not found in the local registry")

    def get_aliases(self, name: str) -> dict[str, int]:
        with self.engine.connect() as conn, conn.begin():
            self._model_exists(conn, name)
            rows = conn.execute(
                select(local_aliases.c.alias, local_aliases.c.version).where(
                    local_aliases.c.name == name
                )
            )
            return {row.alias: int(row.version) for row in rows}

    def set_tags(self, name: str, version: int, tags: Mapping[str, str]) -> None:
        with self._write() as conn:
            self._require_version(conn, name, version)
            for key, value in tags.items():
                conn.execute(
                    insert(local_tags)
                    .values(name=name, version=version, key=key, value=value)
                    .on_conflict_do_update(
                        index_elements=["name", "version", "key"], set_={"value": value}
                    )
                )

    def delete_tag(self, name: str, version: int, key: str) -> None:
        with self._write() as conn:
            self._require_version(conn, name, version)
            conn.execute(
                delete(local_tags).where(
                    local_tags.c.name == name,
                    local_tags.c.version == version,
                    local_tags.c.key == key,
                )
            )

    def _update_version(self, name: str, version: int, **values: Any) -> None:
        with self._write() as conn:
            self._require_version(conn, name, version)
            conn.execute(
                update(local_versions)
                .where(local_versions.c.name == name, local_versions.c.version == version)
                .values(**values)
            )

    def set_stage(self, name: str, version: int, stage: Stage) -> None:
        self._update_version(name, version, stage=stage.value)

    def set_approval(self, name: str, version: int, status: ApprovalStatus) -> None:
        self._update_version(name, version, approval=status.value)

    def delete_version(self, name: str, version: int) -> None:
        with self._write() as conn:
            self._require_version(conn, name, version)
            for table in (local_tags, local_aliases):
                conn.execute(delete(table).where(table.c.name == name, table.c.version == version))
            conn.execute(
                delete(local_versions).where(
                    local_versions.c.name == name, local_versions.c.version == version
                )
            )

    # -- runs -----------------------------------------------------------------------------------

    def create_run(self, run: Run) -> dict[str, str]:
        with self._write() as conn:
            conn.execute(
                insert(local_runs)
                .values(
                    id=run.id,
                    experiment=run.experiment,
                    status=run.status.value,
                    params=dict(run.params),
                    metrics=dict(run.metrics),
                    record=run.model_dump(mode="json"),
                )
                .on_conflict_do_nothing()
            )
        return {"run": run.id}

    def _run_row(self, conn: Connection, run_id: str) -> Any:
        row = conn.execute(select(local_runs).where(local_runs.c.id == run_id)).one_or_none()
        if row is None:
            raise NotFound(f"run {run_id!r} not found in the local backend")
        return row

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        with self._write() as conn:
            row = self._run_row(conn, run_id)
            clash = {k for k, v in params.items() if k in row.params and row.params[k] != v}
            if clash:
                raise Conflict(
                    f"run {run_id}: parameters already logged with other values: "
                    + ", ".join(sorted(clash))
                )
            conn.execute(
                update(local_runs)
                .where(local_runs.c.id == run_id)
                .values(params={**row.params, **params})
            )

    def log_metrics(self, run_id: str, metrics: Mapping[str, float]) -> None:
        with self._write() as conn:
            row = self._run_row(conn, run_id)
            conn.execute(
                update(local_runs)
                .where(local_runs.c.id == run_id)
                .values(metrics={**row.metrics, **metrics})
            )

    def end_run(self, run_id: str, status: RunStatus) -> None:
        with self._write() as conn:
            self._run_row(conn, run_id)
            conn.execute(
                update(local_runs).where(local_runs.c.id == run_id).values(status=status.value)
            )

    def get_run(self, run_id: str) -> Run:
        with self.engine.connect() as conn, conn.begin():
            row = self._run_row(conn, run_id)
        record = dict(row.record)
        record.update(status=row.status, params=row.params, metrics=row.metrics)
        return Run.model_validate(record)

    # -- discovery, sync and identity -------------------------------------------------------------

    def discover(self) -> list[DiscoveredResource]:
        found: list[DiscoveredResource] = []
        with self.engine.connect() as conn, conn.begin():
            for name in conn.execute(
                select(local_models.c.name).order_by(local_models.c.name)
            ).scalars():
                found.append(
                    DiscoveredResource(
                        kind=ResourceKind.MODEL, name=name, backend_id=name, managed=False
                    )
                )
            for row in conn.execute(
                select(
                    local_versions.c.name, local_versions.c.version, local_versions.c.mintaka_id
                ).order_by(local_versions.c.name, local_versions.c.version)
            ):
                found.append(
                    DiscoveredResource(
                        kind=ResourceKind.MODEL_VERSION,
                        name=f"{row.name}:{row.version}",
                        backend_id=f"{row.name}/{row.version}",
                        managed=row.mintaka_id is not None,
                        extra={"mintaka_id": row.mintaka_id} if row.mintaka_id else {},
                    )
                )
        return found

    def observe_model(self, name: str) -> ObservedModel:
        versions = self.list_versions(name)
        return ObservedModel(name=name, versions=tuple(versions), aliases=self.get_aliases(name))

    def observe_endpoint(self, name: str) -> ObservedEndpoint:
        raise NotFound(f"endpoint {name!r} not found in the local backend")
