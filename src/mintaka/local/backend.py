"""The local reference backend: a registry and run tracker in SQLite, artifacts on disk.

It needs no cloud and is the default. It implements every registry capability natively, so it is
also the reference the conformance suite is checked against.

Its tables (``registry_db``) live in the control-plane store's SQLite database when there is one,
beside core's tables but apart from them: they are this backend's state, which can change behind
Mintaka's back like a cloud's, and ``sync`` compares them with the store. Sharing the database lets
a registration create its version in the store transaction that records it (one commit, and no
version the store never heard of after a crash). A home whose ``local/registry.db`` predates this
has that file's rows imported into the store's database when the backend opens, and the file is
then renamed aside (``registry_db.import_registry_file``). A store on another database keeps the
tables in that separate file. Tables of an older home get the columns added to them since, in
place, when the backend opens (``registry_db.add_missing_columns``), and endpoints made before
endpoint identities were recorded each get one of their own (``registry_db.identify_endpoints``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import Connection, delete, inspect, select, update
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
    Emulation,
    ModelAliases,
    ModelRegistry,
    ModelStages,
    ModelTags,
    RunTracking,
    StateObserver,
    StoreResidentRegistry,
    VersionDeletion,
)
from mintaka.local.fetch import LocalArtifactFetch
from mintaka.local.pipelines import LocalPipelines
from mintaka.local.registry_db import (
    add_missing_columns,
    identify_endpoints,
    import_registry_file,
    local_aliases,
    local_endpoints,
    local_models,
    local_runs,
    local_tags,
    local_versions,
    metadata,
    missing_columns,
    unidentified_endpoints,
)
from mintaka.local.serving import LocalServing
from mintaka.store.engine import Sql, Transactions, make_engine, sqlite_file, sync_mode


class LocalSettings(BackendSettings):
    """Where the local backend keeps its state; defaults to ``<home>/local``."""

    path: Path | None = None


class LocalBackend(
    LocalServing,
    LocalPipelines,
    Backend,
    ModelRegistry,
    StoreResidentRegistry,
    ModelAliases,
    ModelTags,
    ModelStages,
    ApprovalProjection,
    VersionDeletion,
    LocalArtifactFetch,
    RunTracking,
    Discovery,
    StateObserver,
):
    name = "local"
    description = "Embedded reference backend: SQLite registry, content-addressed files on disk."
    computes_here = True
    capabilities: ClassVar[frozenset[Capability]] = frozenset(
        {
            Capability.REGISTRY,
            Capability.REGISTRY_ALIASES,
            Capability.REGISTRY_TAGS,
            Capability.REGISTRY_STAGES,
            Capability.REGISTRY_APPROVAL,
            Capability.REGISTRY_DELETE,
            Capability.REGISTRY_FETCH,
            Capability.RUNS,
            Capability.DISCOVERY,
            Capability.SYNC,
            Capability.SERVING,
            Capability.SERVING_TRAFFIC_SPLIT,
            Capability.SERVING_SHADOW,
            Capability.SERVING_KILL,
            Capability.SERVING_BATCH,
            Capability.MONITORING_CAPTURE,
            Capability.MONITORING_METRICS,
            Capability.PIPELINES,
            Capability.SERVING_NATIVE_ROLLOUT,
        }
    )
    emulated: ClassVar[Mapping[Capability, Emulation]] = {
        Capability.SERVING_NATIVE_ROLLOUT: Emulation(
            how="core's rollout controller walks the plan's steps on the inference server's "
            "weighted routes, checks the SLA from the prediction log after each bake, and "
            "rolls back to the known-good traffic on a breach",
            limits="the rollout runs in the process that started it (mintaka rollout); no "
            "rollout goes on while Mintaka is not running",
        ),
    }
    settings_model = LocalSettings

    def __init__(self, settings: BackendSettings, context: BackendContext) -> None:
        super().__init__(settings, context)
        assert isinstance(settings, LocalSettings)
        self.path = settings.path or context.home / "local"
        self.path.mkdir(parents=True, exist_ok=True)  # the server's address file, ...
        own = self.path / "registry.db"
        store = context.store_url
        shared = store is not None and sqlite_file(store) is not None
        self.url = store if shared and store is not None else f"sqlite:///{own}"
        # In the store's database, commit as durably as the store does.
        self.engine = make_engine(self.url, sync_mode() if shared else "NORMAL")
        self.transactions = Transactions(self.engine)
        try:
            # Read first: an opened home has its tables, and a reader must not wait behind a
            # writer for the write lock (SQLite's WAL lets it read meanwhile). Creating them is
            # done under the write lock: two processes opening the same new home must not both
            # find a table missing and then race to create it.
            with self.transactions.read() as conn:
                present = set(inspect(conn).get_table_names())
            if not set(metadata.tables) <= present:
                with self.transactions.write() as conn:
                    metadata.create_all(conn)
            with self.transactions.read() as conn:
                behind = bool(missing_columns(conn))
            if behind:  # an older home's tables: brought up to date once, under the write lock
                with self.transactions.write() as conn:
                    add_missing_columns(conn)
            if shared and own.exists():
                import_registry_file(self.transactions, own, context.clock.now())
            with self.transactions.read() as conn:
                unidentified = bool(unidentified_endpoints(conn))
            if unidentified:  # endpoints an older Mintaka made: each given an identity, once
                with self.transactions.write() as conn:
                    identify_endpoints(conn)
        except BaseException:
            self.transactions.close()
            self.engine.dispose()
            raise

    def describe(self) -> dict[str, Any]:
        return {"path": str(self.path), "registry": self.engine.url.database or ""}

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
        if self._log_store is not None:
            self._log_store.dispose()
        self.transactions.close()
        self.engine.dispose()

    def _write(self) -> AbstractContextManager[Connection]:
        return self.transactions.write()

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

    def resides_in(self, store_url: str) -> bool:
        return self.url == store_url

    def create_version(self, request: VersionRequest) -> BackendVersion:
        with self._write() as conn:
            return self.create_version_in(conn, request)

    def create_version_in(self, conn: Connection, request: VersionRequest) -> BackendVersion:
        artifact_uri = Path(os.path.abspath(request.artifact_path)).as_uri()
        sql = Sql(conn)
        known, existing, latest = sql.one(
            "SELECT (SELECT 1 FROM local_models WHERE name = :name), "
            "(SELECT version FROM local_versions WHERE idempotency_key = :key), "
            "(SELECT max(version) FROM local_versions WHERE name = :name)",
            {"name": request.name, "key": request.idempotency_key},
        ) or (None, None, None)
        if known is None:
            raise NotFound(f"model {request.name!r} not found in the local registry")
        if existing is not None:  # a retried request: report what the first one created
            return self._version(sql, request.name, int(existing))
        number = int(latest or 0) + 1
        sql.run(
            "INSERT INTO local_versions (name, version, artifact_uri, artifact_digest, "
            "flavor, metrics, description, stage, approval, mintaka_id, idempotency_key, "
            "created_at) VALUES (:name, :version, :uri, :digest, :flavor, :metrics, "
            ":description, NULL, NULL, :mintaka_id, :key, :at)",
            {
                "name": request.name,
                "version": number,
                "uri": artifact_uri,
                "digest": request.artifact_digest,
                "flavor": request.flavor.value,
                "metrics": json.dumps(dict(request.metrics)),
                "description": request.description,
                "mintaka_id": request.mintaka_id or None,  # empty: not made by Mintaka
                "key": request.idempotency_key,
                "at": self._now(),
            },
        )
        if request.tags:
            sql.run_many(
                "INSERT INTO local_tags (name, version, key, value) "
                "VALUES (:name, :version, :key, :value)",
                [
                    {"name": request.name, "version": number, "key": k, "value": v}
                    for k, v in request.tags.items()
                ],
            )
        # Aliases are read back rather than assumed empty: this registry can be changed
        # behind Mintaka's back, like any cloud's.
        return BackendVersion.model_construct(
            name=request.name,
            version=number,
            artifact_uri=artifact_uri,
            artifact_digest=request.artifact_digest,
            aliases=self._aliases(sql, request.name, number),
            tags=dict(request.tags),
            stage=None,
            approval=None,
            mintaka_id=request.mintaka_id or None,
            backend_ids={"model": request.name, "version": str(number)},
            extra={},
        )

    @staticmethod
    def _aliases(sql: Sql, name: str, version: int) -> tuple[str, ...]:
        return tuple(
            sorted(
                alias
                for (alias,) in sql.rows(
                    "SELECT alias FROM local_aliases WHERE name = :name AND version = :version",
                    {"name": name, "version": version},
                )
            )
        )

    def _version(self, sql: Sql, name: str, version: int) -> BackendVersion:
        row = sql.one(
            "SELECT artifact_uri, artifact_digest, stage, approval, mintaka_id "
            "FROM local_versions WHERE name = :name AND version = :version",
            {"name": name, "version": version},
        )
        if row is None:
            if sql.one("SELECT 1 FROM local_models WHERE name = :name", {"name": name}) is None:
                raise NotFound(f"model {name!r} not found in the local registry")
            raise NotFound(f"version {name}:{version} not found in the local registry")
        artifact_uri, artifact_digest, stage, approval, mintaka_id = row
        tags = dict(
            sql.rows(
                "SELECT key, value FROM local_tags WHERE name = :name AND version = :version",
                {"name": name, "version": version},
            )
        )
        return BackendVersion(
            name=name,
            version=version,
            artifact_uri=artifact_uri,
            artifact_digest=artifact_digest,
            aliases=self._aliases(sql, name, version),
            tags=tags,
            stage=Stage(stage) if stage else None,
            approval=ApprovalStatus(approval) if approval else None,
            mintaka_id=mintaka_id,
            backend_ids={"model": name, "version": str(version)},
        )

    def get_version(self, name: str, version: int) -> BackendVersion:
        with self.transactions.read() as conn:
            return self._version(Sql(conn), name, version)

    def list_versions(self, name: str) -> list[BackendVersion]:
        with self.transactions.read() as conn:
            self._model_exists(conn, name)
            numbers = conn.execute(
                select(local_versions.c.version)
                .where(local_versions.c.name == name)
                .order_by(local_versions.c.version)
            ).scalars()
            return [self._version(Sql(conn), name, int(n)) for n in numbers]

    def list_models(self) -> list[str]:
        with self.transactions.read() as conn:
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
        with self.transactions.read() as conn:
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
        with self.transactions.read() as conn:
            row = self._run_row(conn, run_id)
        record = dict(row.record)
        record.update(status=row.status, params=row.params, metrics=row.metrics)
        return Run.model_validate(record)

    # -- discovery, sync and identity -------------------------------------------------------------

    def discover(self) -> list[DiscoveredResource]:
        """Every model, version and endpoint, each ``managed`` where this backend's marker says
        Mintaka made it: a version's ``mintaka_id``, an endpoint's ``managed`` flag, and for a
        model, any of its versions being managed (the table of models keeps no marker)."""
        with self.transactions.read() as conn:
            versions = conn.execute(
                select(
                    local_versions.c.name, local_versions.c.version, local_versions.c.mintaka_id
                ).order_by(local_versions.c.name, local_versions.c.version)
            ).all()
            names = conn.execute(select(local_models.c.name).order_by(local_models.c.name))
            model_names = list(names.scalars())
            endpoint_rows = conn.execute(
                select(
                    local_endpoints.c.name, local_endpoints.c.routes, local_endpoints.c.managed
                ).order_by(local_endpoints.c.name)
            ).all()
        managed_models = {row.name for row in versions if row.mintaka_id is not None}
        found = [
            DiscoveredResource(
                kind=ResourceKind.MODEL, name=name, backend_id=name, managed=name in managed_models
            )
            for name in model_names
        ]
        found.extend(
            DiscoveredResource(
                kind=ResourceKind.MODEL_VERSION,
                name=f"{row.name}:{row.version}",
                backend_id=f"{row.name}/{row.version}",
                managed=row.mintaka_id is not None,
                extra={"mintaka_id": row.mintaka_id} if row.mintaka_id else {},
            )
            for row in versions
        )
        found.extend(
            DiscoveredResource(
                kind=ResourceKind.ENDPOINT,
                name=row.name,
                backend_id=row.name,
                managed=bool(row.managed),
                extra={"routes": [r["name"] for r in row.routes]},
            )
            for row in endpoint_rows
        )
        return found

    def observe_model(self, name: str) -> ObservedModel:
        versions = self.list_versions(name)
        return ObservedModel(name=name, versions=tuple(versions), aliases=self.get_aliases(name))

    def observe_endpoint(self, name: str) -> ObservedEndpoint:
        endpoint = self.get_endpoint(name)
        return ObservedEndpoint(
            name=name,
            traffic=endpoint.traffic,
            extra={
                "killed": endpoint.status.value == "killed",
                "routes": [r.model_dump(mode="json") for r in endpoint.routes],
            },
        )
