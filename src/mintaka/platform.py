"""``Platform``: the facade that wires a backend to governance, audit, lineage and the store.

Every operation follows the same order: validate the input in core (names, tags, references),
check that the backend declares the capability, call the backend, then record the outcome in the
control-plane store, lineage and audit trail in one transaction. Bad input therefore never
reaches a cloud, and a record never points at something the cloud did not accept.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn, TypeVar, cast

from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import Connection, Select, Table, and_, delete, func, select, update
from sqlalchemy.dialects import sqlite

from mintaka.artifacts import ArtifactStore, Manifest, StoredArtifact, manifest_of
from mintaka.audit import AuditLog
from mintaka.capabilities import Capability
from mintaka.clock import Clock, IdFactory, SystemClock
from mintaka.config import MintakaConfig, load_config
from mintaka.domain.audit import AuditEvent, ChainReport
from mintaka.domain.base import parse_enum
from mintaka.domain.discovery import Difference
from mintaka.domain.governance import PolicyDecision, validate_owner
from mintaka.domain.lineage import EdgeKind, LineageEdge, LineageGraph, LineageNode, NodeKind
from mintaka.domain.names import (
    parse_model_ref,
    validate_alias,
    validate_dataset_name,
    validate_experiment_name,
    validate_model_name,
    validate_new_alias,
    validate_tag,
    validate_version,
)
from mintaka.domain.registry import (
    BackendVersion,
    Flavor,
    ModelVersion,
    RegisteredModel,
    RiskTier,
    Signature,
    Stage,
    VersionRequest,
    features_signature,
)
from mintaka.domain.runs import DatasetVersion, Run, RunStatus
from mintaka.errors import (
    Conflict,
    InvalidName,
    MintakaError,
    NotFound,
    UnsupportedCapability,
    ValidationError,
    invalid_fields,
)
from mintaka.files import file_path
from mintaka.flavors.loader import require_flavor_content
from mintaka.governance.service import (
    Control,
    GovernanceService,
    resolve_identity,
)
from mintaka.interfaces import (
    Backend,
    BackendContext,
    ModelAliases,
    ModelRegistry,
    ModelStages,
    ModelTags,
    RunTracking,
    StoreResidentRegistry,
)
from mintaka.lineage import LineageStore
from mintaka.migration import (
    MigrationService,
    _recorded_elsewhere,
    _tier_below,
    _TierBelowModel,
)
from mintaka.numbers import as_float
from mintaka.pipelines.service import PipelineService
from mintaka.plugins import PluginManager
from mintaka.provenance import code_commit, environment
from mintaka.serving.ops import ServingService
from mintaka.store import Store, default_url
from mintaka.store.engine import Sql, url_in_home
from mintaka.store.schema import (
    audit_events,
    datasets,
    lineage_nodes,
    model_aliases,
    model_tags,
    model_versions,
    models,
    runs,
)

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql

    from mintaka.monitoring.service import MonitoringService

T = TypeVar("T")
PROFILED_ACTIONS = ("dataset.register", "dataset.profile", "dataset.reingest")
"""The audit actions that place a dataset version in its dataset's profile order: the last one
of a version is where it stands (see ``Platform.datasets_in_profile_order``)."""


def _datasets_in_order(*, by_name: bool = False) -> Select[Any]:
    """Dataset rows oldest first. Versions made at one instant keep their registration order:
    a dataset's id is not ordered, but the lineage node its registration adds in the same
    transaction gets the next integer id, on every database."""
    node = and_(
        lineage_nodes.c.kind == NodeKind.DATASET.value, lineage_nodes.c.key == datasets.c.id
    )
    order = (datasets.c.created_at, lineage_nodes.c.id, datasets.c.id)
    return (
        select(datasets)
        .outerjoin(lineage_nodes, node)
        .order_by(*((datasets.c.name, *order) if by_name else order))
    )


def _parse(model: type[T], **data: Any) -> T:
    """Build a domain model, turning pydantic's error into Mintaka's ``ValidationError``."""
    try:
        return model(**data)
    except PydanticValidationError as exc:
        raise ValidationError(invalid_fields(exc)) from exc


def _finite(value: float) -> bool:
    """Whether ``value`` is a finite float; an integer too large for a float is not."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def nonfinite_metrics(metrics: Mapping[str, float]) -> list[str]:
    """The names of the metrics that are NaN, infinity or beyond a float's range, sorted: no
    measurement, so the store refuses them (:func:`finite_metrics`) and a pipeline step
    reporting them fails."""
    return sorted(k for k, v in metrics.items() if not _finite(v))


def finite_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Metrics as finite floats: NaN or infinity is no measurement (and is not valid JSON)."""
    try:
        values = {str(k): as_float(v) for k, v in metrics.items()}
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"metrics must be numbers: {exc}") from exc
    bad = nonfinite_metrics(values)
    if bad:
        raise ValidationError(f"metrics must be finite numbers, not NaN or infinity: {bad}")
    return values


def _json(value: Any) -> Any:
    """A JSON column's value: SQLite hands back its text, other drivers the parsed value."""
    return json.loads(value) if isinstance(value, str) else value


class BytesHeld(Conflict):
    """A registration refused because a version of the model holds its bytes already:
    ``version``, that version; ``unrecorded``, the version a backend outside the store made for
    the refused registration and which is left unrecorded there (``None`` when it made none)."""

    def __init__(self, message: str, *, version: int, unrecorded: int | None) -> None:
        super().__init__(message)
        self.version = version
        self.unrecorded = unrecorded


class _BackendUnread(MintakaError):
    """A put-back's read of the backend failed (its ``__cause__``): nothing was put back."""


def _read_backend(read: Callable[[], T]) -> T:
    """``read()``, a put-back's read of the backend, its failure raised as ``_BackendUnread``."""
    try:
        return read()
    except MintakaError as exc:
        raise _BackendUnread(str(exc)) from exc


class _RunInputs(NamedTuple):
    id: str
    code_commit: str | None
    dataset_ids: tuple[str, ...]
    params: dict[str, str]
    metrics: dict[str, float]


class _VersionRow(NamedTuple):
    """A ``model_versions`` row, its columns in table order."""

    id: str
    name: str
    version: int
    artifact_uri: str
    artifact_digest: str
    flavor: str
    signature: Any
    params: Any
    metrics: Any
    owner: str
    risk_tier: str
    stage: str
    description: str
    run_id: str | None
    code_commit: str | None
    dataset_ids: Any
    created_at: str
    backend: str
    backend_ids: Any


_INSERT_VERSION = (
    f"INSERT INTO model_versions ({', '.join(_VersionRow._fields)}) "
    f"VALUES ({', '.join(':' + f for f in _VersionRow._fields)}) ON CONFLICT DO NOTHING"
)
_VERSION_HOLDING = (
    "SELECT model_versions.version FROM model_versions "
    "WHERE model_versions.name = :name AND model_versions.artifact_digest = :digest"
)
_VERSION_HOLDING_BY_MODEL = (
    f"SELECT ({_VERSION_HOLDING} LIMIT 1) FROM models WHERE models.name = :name"
)
_SELECT_VERSION = f"SELECT {', '.join('v.' + f for f in _VersionRow._fields)} FROM model_versions v"
_SELECT_VERSION_BY_ALIAS = (
    _SELECT_VERSION + " JOIN model_aliases a ON a.name = v.name AND a.version = v.version"
    " WHERE a.name = :name AND a.alias = :alias"
)


def _check_categorical(source: Path, columns: Sequence[str], *, profile: bool) -> None:
    """Refuse categorical ``columns`` where they would change nothing, so that a typo does not
    profile a category column as numbers without a word: without a profile, for a file that is
    not profiled, or naming a column the file does not have (read from its header only)."""
    from mintaka.serving.batch import FORMATS, column_names

    if not profile:
        raise ValidationError(
            "categorical columns shape the profile; they cannot go with --no-profile "
            "(profile=False)"
        )
    if not source.is_file() or source.suffix.lower() not in FORMATS:
        raise ValidationError(
            f"categorical columns given, but {source} is not profiled; only a CSV or Parquet file "
            "is profiled"
        )
    missing = sorted(set(columns) - set(column_names(source)))
    if missing:
        raise ValidationError(
            f"categorical column(s) not in the data: {', '.join(map(repr, missing))}"
        )


def _profile_of(source: Path, categorical: Sequence[str]) -> dict[str, Any] | None:
    """The reference profile of a tabular file, or ``None`` for anything that is not one (or
    holds no rows)."""
    from mintaka.serving.batch import FORMATS, read_rows

    if not source.is_file() or source.suffix.lower() not in FORMATS:
        return None
    from mintaka.monitoring.profiles import profile

    rows = read_rows(source)
    if not rows:
        return None
    return profile(rows, categorical=categorical).to_json()


def _profile_positions(conn: Connection, dataset_ids: Sequence[str]) -> dict[str, int]:
    """The sequence number of the last ``PROFILED_ACTIONS`` event of each of ``dataset_ids``
    that has one, in one query."""
    if not dataset_ids:
        return {}
    rows = conn.execute(
        select(audit_events.c.subject, func.max(audit_events.c.seq))
        .where(
            audit_events.c.subject.in_(list(dataset_ids)),
            audit_events.c.action.in_(PROFILED_ACTIONS),
        )
        .group_by(audit_events.c.subject)
    ).all()
    return {subject: int(seq) for subject, seq in rows}


def _placed_behind(conn: Connection, record: DatasetVersion) -> bool:
    """Whether another profiled version of ``record``'s dataset stands after ``record`` in the
    profile order (see ``Platform.datasets_in_profile_order``). Profiles are read only for the
    versions that stand after it, which a version registered last does not have."""
    others = list(
        conn.execute(
            select(datasets.c.id).where(datasets.c.name == record.name, datasets.c.id != record.id)
        ).scalars()
    )
    placed = _profile_positions(conn, [record.id, *others])
    own = placed.get(record.id, 0)
    later = [other for other in others if placed.get(other, 0) > own]
    if not later:
        return False
    profiles = conn.execute(select(datasets.c.profile).where(datasets.c.id.in_(later))).scalars()
    return any(profile is not None for profile in profiles)


def _check_categories(record: DatasetVersion, categorical: Sequence[str]) -> None:
    """A ``Conflict`` when ``record`` (whose bytes are registered again) holds a profile that
    does not take every column of ``categorical`` as categories: that profile is what its gates
    and monitors compared with, so it is neither replaced nor returned as if it held the
    categories asked for. No categories asked for accepts the profile recorded."""
    if record.profile is None:
        return
    features = record.profile.get("features", {})
    kinds = {column: features.get(column, {}).get("kind", "unprofiled") for column in categorical}
    other = sorted((c, kind) for c, kind in kinds.items() if kind != "categorical")
    if other:
        taken = ", ".join(f"{column!r} as {kind}" for column, kind in other)
        raise Conflict(
            f"these bytes are registered already as dataset version {record.id} "
            f"({record.name}), with a profile that takes {taken}; a version's profile is fixed "
            "once recorded: register the file under another name to profile it with these "
            "categories"
        )


def _check_unchanged(source: Path, digest: str, measured: dict[str, Any] | None) -> None:
    """A ``Conflict`` when ``source`` no longer hashes to ``digest`` after it was profiled: the
    profile ``measured`` may then describe other bytes than the version's."""
    if measured is not None and manifest_of(source).digest != digest:
        raise Conflict(
            f"{source} changed while it was registered; register it again once it is written"
        )


class Platform:
    """One control plane over one backend, with its store under ``home``."""

    def __init__(
        self,
        home: str | Path | None = None,
        *,
        backend: str | None = None,
        backend_settings: dict[str, Any] | None = None,
        store_url: str | None = None,
        actor: str | None = None,
        clock: Clock | None = None,
        ids: IdFactory | None = None,
        plugins: PluginManager | None = None,
    ) -> None:
        self.config: MintakaConfig = load_config(
            home, backend=backend, store_url=store_url, backend_settings=backend_settings
        )
        self.home = self.config.home
        self.clock: Clock = clock or SystemClock()
        self.ids = ids or IdFactory()
        self._explicit_actor = actor
        self._governance: GovernanceService | None = None
        self._unannounced: list[AuditEvent] = []
        self.plugins = plugins or PluginManager()
        url = self.config.store_url
        self.store = Store(url_in_home(self.home, url) if url else default_url(self.home))
        self.artifacts = ArtifactStore(self.home / "artifacts")
        self.audit = AuditLog(self.store)
        self.lineage = LineageStore(self.store)
        try:
            self.backend: Backend = self._open_backend()
        except BaseException:
            self.store.dispose()  # a platform that failed to open holds no connections
            raise
        self.serving: ServingService = ServingService(self)
        self.pipelines: PipelineService = PipelineService(self)
        self.migration: MigrationService = MigrationService(self)
        self._insert: Callable[[Table], sqlite.Insert | postgresql.Insert] = sqlite.insert
        if self.store.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects import postgresql  # loaded for a PostgreSQL store only

            self._insert = postgresql.insert

    def _open_backend(self) -> Backend:
        entry = self.plugins.backends().get(self.config.backend)
        try:
            settings = entry.cls.settings_model(**self.config.backend_settings)
        except PydanticValidationError as exc:
            raise ValidationError(
                f"invalid settings for backend {entry.name!r}: {invalid_fields(exc)}"
            ) from exc
        return entry.cls(
            settings,
            BackendContext(
                home=self.home,
                clock=self.clock,
                ids=self.ids,
                store_url=self.store.url,
                actor=lambda: self.actor,
            ),
        )

    @cached_property
    def monitoring(self) -> MonitoringService:
        """Monitors, alerts and tickets (its drift maths loads numpy, so on first use only)."""
        from mintaka.monitoring.service import MonitoringService

        return MonitoringService(self)

    @property
    def governance(self) -> GovernanceService:
        """Policy, approvals, exceptions and decisions (the identity is resolved on first use)."""
        if self._governance is None:
            identity = resolve_identity(self, self._explicit_actor)
            self._governance = GovernanceService(self, identity)
        return self._governance

    @property
    def actor(self) -> str:
        """The acting identity's name, as recorded on every audit event."""
        return self.governance.identity.name

    def close(self) -> None:
        self.backend.close()
        self.store.dispose()

    def __enter__(self) -> Platform:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing -----------------------------------------------------------------------------

    def _area(self, capability: Capability, interface: type[T], hint: str = "") -> T:
        """The backend as ``interface``, after checking it declares ``capability`` (``hint``:
        what the refusal adds, such as what to do instead)."""
        if capability not in self.backend.capabilities or not isinstance(self.backend, interface):
            raise UnsupportedCapability(self.backend.name, capability.value, hint)
        return cast(T, self.backend)

    def supports(self, capability: Capability) -> bool:
        return capability in self.backend.capabilities

    def _now(self) -> datetime:
        return self.clock.now()

    def _audit(
        self,
        conn: Connection,
        action: str,
        subject: str,
        *,
        at: datetime | None = None,
        **details: Any,
    ) -> AuditEvent:
        """Append an event by the acting identity; ``at`` is the instant of the change it
        records when the caller stamped that change already (one reading of the clock for both)."""
        event = self.audit.append(
            conn,
            at=self._now() if at is None else at,
            actor=self.actor,
            action=action,
            subject=subject,
            details=details,
            backend=self.backend.name,
        )
        return event

    def _announce_later(self, event: AuditEvent) -> None:
        """Have the next ``_after_commit`` announce ``event`` too, if its transaction committed:
        an event appended inside a caller's transaction on the store's own account (a policy's
        activation), which that caller does not know to announce."""
        self._unannounced.append(event)

    def _committed(self, candidates: Sequence[AuditEvent]) -> list[AuditEvent]:
        """Those of ``candidates`` the chain holds (a rolled-back transaction's are not), each
        once: an event appended again after a rollback may be the very same event."""
        unique = {(e.seq, e.hash): e for e in candidates}
        with self.store.read() as conn:
            sql = Sql(conn)
            return [
                e
                for (seq, digest), e in sorted(unique.items())
                if sql.one("SELECT hash FROM audit_events WHERE seq = :seq", {"seq": seq})
                == (digest,)
            ]

    def record_backend_switch(self, previous: str) -> AuditEvent:
        """Audit that this home now uses ``self.backend`` instead of ``previous``
        (``mintaka init --switch-backend``): what the records say was served where changes."""
        with self.store.write() as conn:
            event = self._audit(conn, "home.backend.switch", str(self.home), previous=previous)
        self._after_commit([event])
        return event

    def _after_commit(self, events: Sequence[AuditEvent]) -> None:
        if self._unannounced:  # appended on the store's own account, not by the caller
            pending, self._unannounced = self._unannounced, []
            events = [*self._committed(pending), *events]
        for event in events:
            try:
                self.plugins.hook.mintaka_audit_event(event=event)
            except Exception:  # observers must not undo a committed change
                import logging

                logging.getLogger(__name__).exception("audit observer failed")

    # -- models and versions ------------------------------------------------------------------

    def create_model(
        self,
        name: str,
        *,
        owner: str | None = None,
        tier: RiskTier | str = RiskTier.MEDIUM,
        description: str = "",
    ) -> RegisteredModel:
        """Create a model; ``Conflict`` when one of that name exists."""
        name = validate_model_name(name)
        owner = validate_owner(owner)
        risk_tier = parse_enum(RiskTier, tier, "risk tier")
        registry = self._area(Capability.REGISTRY, ModelRegistry)
        with self.store.read() as conn:
            if conn.execute(select(models.c.name).where(models.c.name == name)).first():
                raise Conflict(f"model {name!r} already exists")
        registry.ensure_model(name, description)
        record = RegisteredModel(
            name=name,
            owner=owner or self.actor,
            risk_tier=risk_tier,
            description=description,
            created_at=self._now(),
            backend=self.backend.name,
        )
        with self.store.write() as conn:
            if conn.execute(select(models.c.name).where(models.c.name == name)).first():
                raise Conflict(f"model {name!r} already exists")
            self._insert_model(conn, record)
            event = self._audit(conn, "model.create", name, tier=risk_tier, owner=record.owner)
        self._after_commit([event])
        return record

    def _insert_model(self, conn: Connection, record: RegisteredModel) -> None:
        conn.execute(
            models.insert().values(
                name=record.name,
                owner=record.owner,
                risk_tier=record.risk_tier.value,
                description=record.description,
                backend=record.backend,
                created_at=record.created_at.isoformat(),
            )
        )

    def register_model(
        self,
        name: str,
        artifact: str | Path | StoredArtifact,
        *,
        run_id: str | None = None,
        dataset_ids: Sequence[str] = (),
        tier: RiskTier | str | None = None,
        flavor: Flavor | str = Flavor.OPAQUE,
        signature: Signature | None = None,
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
        owner: str | None = None,
        description: str = "",
        code_commit: str | None = None,
    ) -> ModelVersion:
        """Register a new version of ``name`` from the file or directory ``artifact``.

        The artifact's digest is computed, its bytes stored content-addressed (durably, before
        any row refers to them), the backend creates the version, and the version, its lineage
        (datasets -> run -> version) and an audit event are committed together, in one
        transaction with the backend's version when the backend's registry lives in the store.
        ``artifact`` may also be what ``platform.artifacts.ingest`` returned: bytes already
        digested and stored, which are not read again. ``run_id`` names the run that produced
        the version; a blank one is a ``ValidationError``, not "no run": an unset variable in a
        script must not register a version without its lineage.
        """
        name = validate_model_name(name)
        owner = validate_owner(owner)
        if run_id is not None and not run_id.strip():
            raise ValidationError(
                "the run id is blank: give the run that produced the version, or no run at all"
            )
        flavor = parse_enum(Flavor, flavor, "flavor")
        risk_tier = None if tier is None else parse_enum(RiskTier, tier, "risk tier")
        tags = dict(tags or {})
        for key, value in tags.items():
            validate_tag(key, value)
        params_s = {str(k): str(v) for k, v in (params or {}).items()}
        metrics_f = finite_metrics(metrics or {})
        digest_artifact, store_artifact = self._artifact_steps(artifact)
        registry = self._area(Capability.REGISTRY, ModelRegistry)
        if tags:
            self._area(Capability.REGISTRY_TAGS, ModelTags)
        decision = self.governance.decide(
            "model.register",
            name,
            [
                Control(
                    "owner-known",
                    bool(owner or self.actor),
                    "a model version needs an accountable owner",
                )
            ],
        )

        # Hashed before the read opens: a server may end a transaction left idle that long.
        manifest = digest_artifact()
        require_flavor_content(
            _content_root(artifact), [entry.path for entry in manifest.entries], flavor
        )
        digest = manifest.digest
        with self.store.read() as conn:
            sql = Sql(conn)
            model_row = sql.one(
                "SELECT owner, risk_tier, backend FROM models WHERE name = :name", {"name": name}
            )
            if model_row is not None and model_row[2] != self.backend.name:
                raise _recorded_elsewhere("model", name, model_row[2], self.backend.name)
            run = None if run_id is None else self._run_for_version(sql, run_id)
            datasets_used = list(dict.fromkeys(dataset_ids))
            if run is not None:
                datasets_used = list(dict.fromkeys([*run.dataset_ids, *datasets_used]))
                params_s = {**run.params, **params_s}
                metrics_f = {**run.metrics, **metrics_f}
            self._require_datasets(conn, datasets_used)
            clash = sql.one(_VERSION_HOLDING, {"name": name, "digest": digest})
        if clash is not None:  # refused before the backend makes a version
            raise _bytes_held(name, digest, int(clash[0]), None)
        if risk_tier is not None and model_row is not None:
            self._refuse_tier_below_model(name, risk_tier, RiskTier(model_row[1]))
        stored = store_artifact(manifest)

        if model_row is None:
            registry.ensure_model(name, description)
        version_id = self.ids.new("mv")
        # Every field is already validated (name, tags, metrics) or computed here.
        request = VersionRequest.model_construct(
            name=name,
            artifact_path=str(stored.content),
            artifact_digest=stored.digest,
            flavor=flavor,
            metrics=metrics_f,
            tags=tags,
            description=description,
            mintaka_id=version_id,
            idempotency_key=version_id,
        )
        # A registry in the store's own database creates the version in the transaction below;
        # any other is called first, never under the store's write lock.
        joined = isinstance(registry, StoreResidentRegistry) and registry.resides_in(self.store.url)
        created = None if joined else registry.create_version(request)
        with self._tier_refusal(name, risk_tier, created), self.store.write() as conn:
            # Under the write lock, where ``artifacts sweep`` also decides: the bytes are still
            # there (a sweep of orphans may have taken bytes stored long before).
            if not self.artifacts.exists(stored.digest):
                raise NotFound(f"artifact {stored.digest} left the store before it was recorded")
            sql = Sql(conn)
            now = self._now()
            if model_row is None:  # its first version, unless another process created it since
                model_row = self._model_of_first_version(
                    sql, name, owner or self.actor, risk_tier, description, now, created
                )
            _refuse_digest_held(sql, name, stored.digest, created)
            if created is None:
                created = cast(StoreResidentRegistry, registry).create_version_in(conn, request)
            record = _parse(
                ModelVersion,
                id=version_id,
                name=name,
                version=created.version,
                artifact_uri=stored.uri,
                artifact_digest=stored.digest,
                flavor=flavor,
                signature=signature or Signature(),
                params=params_s,
                metrics=metrics_f,
                tags=tags,
                owner=owner or model_row[0],
                risk_tier=risk_tier or RiskTier(model_row[1]),
                description=description,
                run_id=run.id if run is not None else None,
                code_commit=code_commit or (run.code_commit if run is not None else None),
                dataset_ids=tuple(datasets_used),
                created_at=now,
                backend=self.backend.name,
                backend_ids=created.backend_ids,
            )
            self._record_artifact(sql, stored, now)
            # A version number the store already holds (the backend's state moved behind
            # Mintaka's back) hits the (name, version) unique key and inserts nothing.
            if not sql.run(_INSERT_VERSION, self._version_row(record)):
                raise Conflict(f"{name}:{record.version} is already recorded")
            if tags:
                sql.run_many(
                    "INSERT INTO model_tags (version_id, key, value) VALUES (:id, :key, :value)",
                    [{"id": record.id, "key": k, "value": v} for k, v in tags.items()],
                )
            self._record_version_lineage(conn, record, run.dataset_ids if run is not None else ())
            event = self._audit(
                conn,
                "model.register",
                record.ref,
                id=record.id,
                digest=record.artifact_digest,
                run_id=record.run_id,
                datasets=list(record.dataset_ids),
                tier=record.risk_tier,
                # filed under the version it allowed (known only now), not the model's name
                decision=self.governance.record(
                    conn, decision.model_copy(update={"subject": record.ref})
                ),
            )
        self._after_commit([event])
        return record

    def _refuse_tier_below_model(
        self, name: str, tier: RiskTier, model_tier: RiskTier, note: str = ""
    ) -> None:
        """Refuse, as the policy's ``tier-not-below-model`` denial, a version ``tier`` below its
        model's (:func:`~mintaka.migration._tier_below`). ``note`` ends the refusal (what the
        backend was left holding)."""
        if _tier_below(tier, model_tier):
            self.governance.decide(
                "model.register",
                name,
                [
                    Control(
                        "tier-not-below-model",
                        False,
                        f"{name} is a {model_tier.value}-tier model; its versions cannot be "
                        f"registered as {tier.value}-tier{note}",
                    )
                ],
            )

    @contextlib.contextmanager
    def _tier_refusal(
        self, name: str, tier: RiskTier | None, created: BackendVersion | None
    ) -> Iterator[None]:
        """Turn ``_TierBelowModel``, raised out of a registration's transaction (undone by then),
        into the policy's refusal, recorded as ``policy.deny`` and raised as
        ``PolicyViolation``; it names ``created``, a backend's version left unrecorded."""
        try:
            yield
        except _TierBelowModel as refused:
            assert tier is not None  # raised only for a tier given
            self._refuse_tier_below_model(name, tier, refused.model_tier, _unrecorded(created))
            raise  # not reached: the refusal raises PolicyViolation once the deny is recorded

    def _model_of_first_version(
        self,
        sql: Sql,
        name: str,
        owner: str,
        tier: RiskTier | None,
        description: str,
        at: datetime,
        created: BackendVersion | None,
    ) -> tuple[Any, ...]:
        """The owner and tier of the model that a registration found missing, under the write
        lock: its ``models`` row made from the version's (``tier`` defaulting to medium), or
        the row of another process that created the model meanwhile. A ``tier`` below that
        model's then raises ``_TierBelowModel`` out of the transaction (``_tier_refusal``); a
        model recorded for another backend is a ``Conflict`` naming ``created``, the version a
        backend outside the store made for the refused registration."""
        self._record_model(sql, name, owner, tier or RiskTier.MEDIUM, description, at)
        row = sql.one(
            "SELECT owner, risk_tier, backend FROM models WHERE name = :name", {"name": name}
        )
        if row is None:
            raise NotFound(f"model {name!r} not found")
        if row[2] != self.backend.name:
            elsewhere = _recorded_elsewhere("model", name, row[2], self.backend.name)
            raise Conflict(f"{elsewhere}{_left_elsewhere(created)}")
        model_tier = RiskTier(row[1])
        if _tier_below(tier, model_tier):
            raise _TierBelowModel(model_tier)
        return row

    def _record_model(
        self, sql: Sql, name: str, owner: str, tier: RiskTier, description: str, at: datetime
    ) -> None:
        """The ``models`` row of a model its first version creates (kept if there)."""
        sql.run(
            "INSERT INTO models (name, owner, risk_tier, description, backend, created_at) "
            "VALUES (:name, :owner, :tier, :description, :backend, :at) "
            "ON CONFLICT DO NOTHING",
            {
                "name": name,
                "owner": owner,
                "tier": tier.value,
                "description": description,
                "backend": self.backend.name,
                "at": at.isoformat(),
            },
        )

    @staticmethod
    def _record_artifact(sql: Sql, stored: StoredArtifact, at: datetime) -> None:
        """The ``artifacts`` row of bytes a version is about to refer to (kept if there)."""
        sql.run(
            "INSERT INTO artifacts (digest, uri, size, files, created_at) "
            "VALUES (:digest, :uri, :size, :files, :at) ON CONFLICT DO NOTHING",
            {
                "digest": stored.digest,
                "uri": stored.uri,
                "size": stored.manifest.size,
                "files": len(stored.manifest.entries),
                "at": at.isoformat(),
            },
        )

    def _artifact_steps(
        self, artifact: str | Path | StoredArtifact
    ) -> tuple[Callable[[], Manifest], Callable[[Manifest], StoredArtifact]]:
        """How ``register_model`` digests and stores ``artifact``.

        What ``artifacts.ingest`` returned is checked to be in this store now and is not read
        again. A file or directory is digested when asked (after the cheap checks) and stored,
        durably, once the registration's checks pass.
        """
        if isinstance(artifact, StoredArtifact):
            ingested = self.artifacts.check(artifact)
            return (lambda: ingested.manifest), (lambda _manifest: ingested)
        if not str(artifact).strip():
            raise ValidationError("an artifact path is needed (a file or a directory)")
        source = Path(artifact)
        self._refuse_overlap_with_home(source)
        return (
            lambda: manifest_of(source),
            lambda manifest: self.artifacts.ingest(source, manifest),
        )

    def _refuse_overlap_with_home(self, source: Path) -> None:
        """An artifact may not hold Mintaka's home: its store and artifact store would be copied
        into themselves, growing with every registration. (Inside the home is fine: pipeline
        steps write their outputs there.)"""
        try:
            where, home = source.resolve(), self.home.resolve()
        except (OSError, RuntimeError):  # unreadable or a link loop: manifest_of says which
            return
        if home.is_relative_to(where):
            raise ValidationError(
                f"artifact {source} holds Mintaka's home {self.home}: register the model's own "
                "files, not a directory around the home"
            )

    @staticmethod
    def _run_for_version(sql: Sql, run_id: str) -> _RunInputs:
        """What a registration takes from its run (one row, no full ``Run`` to validate)."""
        row = sql.one(
            "SELECT id, code_commit, dataset_ids, params, metrics FROM runs WHERE id = :id",
            {"id": run_id},
        )
        if row is None:
            raise NotFound(f"run {run_id!r} not found")
        return _RunInputs(
            id=row[0],
            code_commit=row[1],
            dataset_ids=tuple(_json(row[2])),
            params=dict(_json(row[3])),
            metrics=dict(_json(row[4])),
        )

    @staticmethod
    def _version_row(record: ModelVersion) -> dict[str, Any]:
        """Parameters for ``_INSERT_VERSION``; JSON columns as their serialised text."""
        return {
            "id": record.id,
            "name": record.name,
            "version": record.version,
            "artifact_uri": record.artifact_uri,
            "artifact_digest": record.artifact_digest,
            "flavor": record.flavor.value,
            "signature": record.signature.model_dump_json(),
            "params": json.dumps(record.params),
            "metrics": json.dumps(record.metrics),
            "owner": record.owner,
            "risk_tier": record.risk_tier.value,
            "stage": record.stage.value,
            "description": record.description,
            "run_id": record.run_id,
            "code_commit": record.code_commit,
            "dataset_ids": json.dumps(list(record.dataset_ids)),
            "created_at": record.created_at.isoformat(),
            "backend": record.backend,
            "backend_ids": json.dumps(record.backend_ids),
        }

    def _record_version_lineage(
        self,
        conn: Connection,
        record: ModelVersion,
        run_datasets: Sequence[str],
        *,
        attrs: Mapping[str, Any] | None = None,
    ) -> None:
        """The version's node and the edges into it: run -> version, and dataset -> version for
        a dataset the run did not name (``run_datasets``), or for every dataset without a run.
        A dataset named only at registration is this version's, not the run's: another version
        registered from the same run does not descend from it.
        ``attrs`` adds to the version node's attributes (an adoption names who adopted it).

        A run's node and its dataset -> run edges were written with the run (``start_run``,
        whose row the registration read), a dataset's node with the dataset: they are not
        written again.
        """
        # The keys are ids of validated records, so the nodes and edges are built unvalidated.
        node, edge = LineageNode.model_construct, LineageEdge.model_construct
        version_node = node(
            kind=NodeKind.MODEL_VERSION,
            key=record.id,
            label=record.ref,
            attrs={"digest": record.artifact_digest, **(attrs or {})},
        )
        if record.run_id:
            upstream = f"{NodeKind.RUN.value}:{record.run_id}"
            edges = [edge(src=upstream, dst=version_node.id, kind=EdgeKind.PRODUCED)]
            new_datasets = [d for d in record.dataset_ids if d not in run_datasets]
        else:
            edges = []
            new_datasets = list(record.dataset_ids)
        edges.extend(
            edge(src=f"{NodeKind.DATASET.value}:{d}", dst=version_node.id, kind=EdgeKind.TRAINED_ON)
            for d in new_datasets
        )
        self.lineage.add(conn, [version_node], edges)

    def _version_from_row(self, conn: Connection, row: Any) -> ModelVersion:
        """A version from its ``model_versions`` row (a ``_VersionRow`` or a SQLAlchemy row).

        The row was written by ``register_model`` from a validated record, so it is rebuilt
        without validating it again.
        """
        sql = Sql(conn)
        tags = {
            key: value
            for key, value in sql.rows(
                "SELECT key, value FROM model_tags WHERE version_id = :id", {"id": row.id}
            )
        }
        aliases = tuple(
            sorted(
                alias
                for (alias,) in sql.rows(
                    "SELECT alias FROM model_aliases WHERE name = :name AND version = :version",
                    {"name": row.name, "version": row.version},
                )
            )
        )
        return ModelVersion.model_construct(
            id=row.id,
            name=row.name,
            version=int(row.version),
            artifact_uri=row.artifact_uri,
            artifact_digest=row.artifact_digest,
            flavor=Flavor(row.flavor),
            signature=Signature.model_construct(**_json(row.signature)),
            params=_json(row.params),
            metrics=_json(row.metrics),
            tags=tags,
            aliases=aliases,
            owner=row.owner,
            risk_tier=RiskTier(row.risk_tier),
            stage=Stage(row.stage),
            description=row.description,
            run_id=row.run_id,
            code_commit=row.code_commit,
            dataset_ids=tuple(_json(row.dataset_ids)),
            created_at=datetime.fromisoformat(row.created_at),
            backend=row.backend,
            backend_ids=_json(row.backend_ids),
        )

    def _version_row_for(
        self, conn: Connection, name: str, version: int | None, alias: str | None
    ) -> _VersionRow:
        sql = Sql(conn)
        if alias is not None:
            found = sql.one(
                _SELECT_VERSION_BY_ALIAS,
                {"name": name, "alias": alias},
            )
            what = f"{name}@{alias}"
        elif version is not None:
            found = sql.one(
                _SELECT_VERSION + " WHERE v.name = :name AND v.version = :version",
                {"name": name, "version": version},
            )
            what = f"{name}:{version}"
        else:
            found = sql.one(
                _SELECT_VERSION + " WHERE v.name = :name ORDER BY v.version DESC LIMIT 1",
                {"name": name},
            )
            what = name
        if found is None:
            if sql.one("SELECT name FROM models WHERE name = :name", {"name": name}) is None:
                raise NotFound(f"model {name!r} not found")
            raise NotFound(f"model version {what} not found")
        return _VersionRow(*found)

    def get_model_version(
        self, name: str, version: int | str | None = None, *, alias: str | None = None
    ) -> ModelVersion:
        """A version by number, by alias, or (neither given) the latest one.

        ``name`` may also be a reference: ``NAME:VERSION`` or ``NAME@ALIAS``.
        """
        if version is None and alias is None and (":" in name or "@" in name):
            name, number, alias = parse_model_ref(name)
        else:
            name = validate_model_name(name)
            number = None if version is None else validate_version(version)
            alias = None if alias is None else validate_alias(alias)
        with self.store.read() as conn:
            row = self._version_row_for(conn, name, number, alias)
            return self._version_from_row(conn, row)

    def get_model(self, name: str) -> RegisteredModel:
        name = validate_model_name(name)
        with self.store.read() as conn:
            row = conn.execute(select(models).where(models.c.name == name)).one_or_none()
        if row is None:
            raise NotFound(f"model {name!r} not found")
        return RegisteredModel(
            name=row.name,
            owner=row.owner,
            risk_tier=RiskTier(row.risk_tier),
            description=row.description,
            created_at=datetime.fromisoformat(row.created_at),
            backend=row.backend,
        )

    def list_models(self) -> list[RegisteredModel]:
        with self.store.read() as conn:
            names = list(conn.execute(select(models.c.name).order_by(models.c.name)).scalars())
        return [self.get_model(name) for name in names]

    def list_versions(self, name: str, *, include_archived: bool = True) -> list[ModelVersion]:
        name = validate_model_name(name)
        with self.store.read() as conn:
            if conn.execute(select(models.c.name).where(models.c.name == name)).first() is None:
                raise NotFound(f"model {name!r} not found")
            query = (
                select(model_versions)
                .where(model_versions.c.name == name)
                .order_by(model_versions.c.version)
            )
            if not include_archived:
                query = query.where(model_versions.c.stage != Stage.ARCHIVED.value)
            return [self._version_from_row(conn, row) for row in conn.execute(query).all()]

    def _existing_version(self, name: str, version: int | str) -> ModelVersion:
        return self.get_model_version(validate_model_name(name), validate_version(version))

    def set_alias(self, name: str, alias: str, version: int | str) -> ModelVersion:
        """Point ``alias`` at a version (moving it if it pointed elsewhere).

        An archived version takes no alias: archiving removed its aliases, and an alias names a
        version to use. A version archived by another process while the backend moved the alias
        is a ``Conflict`` too, and the backend's alias is put back as the store records it; so
        is an alias another process set or deleted meanwhile. Pointing an alias where the record
        already has it is sent to the backend again (which settles a cloud that moved it) and
        records nothing new. A new alias follows :func:`validate_new_alias`; one the model
        already has may be moved whatever its form.
        """
        alias = validate_alias(alias)
        current = self._existing_version(name, version)
        with self.store.read() as conn:
            before = conn.execute(
                select(model_aliases.c.version).where(
                    model_aliases.c.name == current.name, model_aliases.c.alias == alias
                )
            ).scalar()
        if before is None:
            validate_new_alias(alias)
        if current.stage is Stage.ARCHIVED:
            raise Conflict(f"{current.ref} is archived; an alias can only point at a live version")
        aliases = self._area(Capability.REGISTRY_ALIASES, ModelAliases)
        decision = None
        if alias in self.governance.policy.production_aliases:
            decision = self.governance.decide(
                "model.promote", current.ref, self.governance.production_controls(current)
            )
        aliases.set_alias(current.name, alias, current.version)
        with self.store.write() as conn:
            archived = self._stage_for_update(conn, current) is Stage.ARCHIVED
            held = conn.execute(
                select(model_aliases.c.version).where(
                    model_aliases.c.name == current.name, model_aliases.c.alias == alias
                )
            ).scalar()
            moved = held not in (before, current.version)  # by another process meanwhile
            if archived or moved or held == current.version:  # or already so
                event = None
            else:
                conn.execute(
                    self._insert(model_aliases)
                    .values(name=current.name, alias=alias, version=current.version)
                    .on_conflict_do_update(
                        index_elements=["name", "alias"], set_={"version": current.version}
                    )
                )
                if decision is None:
                    self.governance.note_policy(conn)  # which aliases count is the policy's word
                event = self._audit(
                    conn,
                    "model.alias.set",
                    f"{current.name}@{alias}",
                    version=current.version,
                    previous=held,
                    decision=None if decision is None else self.governance.record(conn, decision),
                )
        put_back = partial(self._put_alias_back, aliases, current.name, alias)
        if archived:
            self._refuse_archived_meanwhile(current.ref, put_back)
        if moved:
            self._refuse_changed_meanwhile(_alias_moved(current.name, alias, held), put_back)
        if event is None:
            return current if before == current.version else self._existing_version(name, version)
        self._after_commit([event])
        return self.get_model_version(current.name, current.version)

    @staticmethod
    def _stage_for_update(conn: Connection, current: ModelVersion) -> Stage:
        """The stage of ``current`` as it stands under the write lock (its row locked, on a
        server database, until the transaction ends): a version archived by another process
        after ``current`` was read takes no further change."""
        row = select(model_versions.c.stage).where(model_versions.c.id == current.id)
        stage = conn.execute(row.with_for_update()).scalar()
        if stage is None:
            raise NotFound(f"model version {current.ref} not found")
        return Stage(stage)

    @classmethod
    def _refuse_archived_meanwhile(cls, ref: str, put_back: Callable[[], None]) -> NoReturn:
        """Refuse a change to ``ref``, which another process archived while the backend made it,
        after ``put_back`` has returned the backend to what the store records."""
        cls._refuse_changed_meanwhile(f"{ref} is archived, and archiving is final", put_back)

    @staticmethod
    def _refuse_changed_meanwhile(refusal: str, put_back: Callable[[], None]) -> NoReturn:
        """Refuse a change that another process's change, made while the backend made this one,
        overtook in the store, after ``put_back`` has returned the backend to what the store
        records: the store is Mintaka's record, and ``sync`` compares the cloud with it. A
        put-back that could not read the backend, or write it, says which."""
        try:
            put_back()
        except _BackendUnread as exc:
            raise Conflict(
                f"{refusal}; could not read the backend to put it back: {exc}; "
                "`mintaka sync` reports any difference"
            ) from exc.__cause__
        except MintakaError as exc:
            raise Conflict(
                f"{refusal}; the backend still holds the change, putting it back failed: {exc}"
            ) from exc
        raise Conflict(refusal)

    def _put_alias_back(self, aliases: ModelAliases, name: str, alias: str) -> None:
        """Return the backend's ``alias`` of ``name`` to where the store records it now (read
        after the backend), unless the backend shows that already: whatever put it elsewhere
        (this process's refused change, or an archiving that dropped it), nothing else puts it
        back. No cloud writes conditionally, so another process's change that reaches the
        backend before this write and is recorded after the store's read is overwritten (sync
        reports it)."""
        shown = _read_backend(lambda: aliases.get_aliases(name).get(alias))
        with self.store.read() as conn:
            recorded = conn.execute(
                select(model_aliases.c.version).where(
                    model_aliases.c.name == name, model_aliases.c.alias == alias
                )
            ).scalar()
        if shown != recorded:
            _put_alias(aliases, name, alias, recorded)

    def _put_stage_back(self, stages: ModelStages, current: ModelVersion) -> None:
        """Return the backend's stage of ``current`` to the one the store records now (read
        after the backend), unless the backend shows that already. A backend with stages that
        shows none holds the NONE stage (SageMaker removes its stage metadata), as sync reads it."""
        registry = self._area(Capability.REGISTRY, ModelRegistry)
        shown = _read_backend(lambda: registry.get_version(current.name, current.version).stage)
        shown = shown or Stage.NONE
        recorded = self._existing_version(current.name, current.version).stage
        if shown is not recorded:
            stages.set_stage(current.name, current.version, recorded)

    def delete_alias(self, name: str, alias: str) -> None:
        """Delete an alias. One that another process deleted while the backend deleted it is
        ``NotFound``; one it moved meanwhile is a ``Conflict``, and the backend's alias is put
        back where the store then holds it."""
        name = validate_model_name(name)
        alias = validate_alias(alias)
        current = self.get_model_version(name, alias=alias)  # NotFound when missing
        aliases = self._area(Capability.REGISTRY_ALIASES, ModelAliases)
        _drop_alias(aliases, name, alias)
        with self.store.write() as conn:
            deleted = conn.execute(
                delete(model_aliases).where(
                    model_aliases.c.name == name,
                    model_aliases.c.alias == alias,
                    model_aliases.c.version == current.version,
                )
            ).rowcount
            if deleted:
                self.governance.note_policy(conn)  # which aliases count is the policy's word
                event = self._audit(conn, "model.alias.delete", f"{name}@{alias}")
            else:
                held = conn.execute(
                    select(model_aliases.c.version).where(
                        model_aliases.c.name == name, model_aliases.c.alias == alias
                    )
                ).scalar()
        if not deleted:
            if held is None:  # deleted by another process meanwhile
                raise NotFound(f"alias {name}@{alias} not found")
            self._refuse_changed_meanwhile(
                _alias_moved(name, alias, held),
                partial(self._put_alias_back, aliases, name, alias),
            )
        self._after_commit([event])

    def set_tags(self, name: str, version: int | str, tags: Mapping[str, str]) -> ModelVersion:
        """Set tags on a version. Tags the record already has with those values are sent to the
        backend again (which settles a cloud that changed them) and record nothing new."""
        for key, value in tags.items():
            validate_tag(key, value)
        current = self._existing_version(name, version)
        self._area(Capability.REGISTRY_TAGS, ModelTags).set_tags(
            current.name, current.version, dict(tags)
        )
        if all(current.tags.get(key) == value for key, value in tags.items()):
            return current
        with self.store.write() as conn:
            for key, value in tags.items():
                conn.execute(
                    self._insert(model_tags)
                    .values(version_id=current.id, key=key, value=value)
                    .on_conflict_do_update(
                        index_elements=["version_id", "key"], set_={"value": value}
                    )
                )
            event = self._audit(conn, "model.tags.set", current.ref, tags=dict(tags))
        self._after_commit([event])
        return self.get_model_version(current.name, current.version)

    def set_features(
        self, name: str, version: int | str, features: Sequence[str] | str
    ) -> ModelVersion:
        """Record the input columns, in training order, of a version registered or adopted
        without a signature (a scikit-learn model trained on a bare array serves only with
        them). A signature once recorded is kept: giving the same columns again changes and
        records nothing, other columns are a Conflict. A running local server picks the
        columns up when it next loads the version (a restart, or a change to the endpoint)."""
        signature = features_signature(features)
        current = self._existing_version(name, version)
        if current.signature.inputs:
            if list(current.signature.inputs) == list(signature.inputs):
                return current
            raise Conflict(
                f"{current.ref} already records its inputs {list(current.signature.inputs)}; "
                "a recorded signature is not changed"
            )
        with self.store.write() as conn:
            conn.execute(
                update(model_versions)
                .where(model_versions.c.id == current.id)
                .values(signature=signature.model_dump(mode="json"))
            )
            event = self._audit(
                conn, "model.features", current.ref, features=list(signature.inputs)
            )
        self._after_commit([event])
        return self.get_model_version(current.name, current.version)

    def set_stage(self, name: str, version: int | str, stage: Stage | str) -> ModelVersion:
        """Move a version to ``stage``; archiving goes through :meth:`archive_version`.

        An archived version moves no more: archiving is final. A version archived by another
        process while the backend moved it is a ``Conflict`` too, and the backend's stage is put
        back to archived; so is a version another process moved to another stage meanwhile,
        whose backend stage is put back to that one. A stage the record already holds is sent
        to the backend again and records nothing new.
        """
        target = parse_enum(Stage, stage, "stage")
        current = self._existing_version(name, version)
        if current.stage is Stage.ARCHIVED and target is not Stage.ARCHIVED:
            raise Conflict(f"{current.ref} is archived, and archiving is final")
        if target is Stage.ARCHIVED:
            return self.archive_version(current.name, current.version)
        stages = self._area(Capability.REGISTRY_STAGES, ModelStages)
        decision = None
        if target is Stage.PRODUCTION:
            decision = self.governance.decide(
                "model.promote", current.ref, self.governance.production_controls(current)
            )
        stages.set_stage(current.name, current.version, target)
        with self.store.write() as conn:
            previous = self._stage_for_update(conn, current)
            moved = previous not in (current.stage, target)  # by another process meanwhile
            if moved or previous is target:  # (archived, or another stage), or already so
                event = None
            else:
                conn.execute(
                    update(model_versions)
                    .where(model_versions.c.id == current.id)
                    .values(stage=target.value)
                )
                event = self._audit(
                    conn,
                    "model.stage.set",
                    current.ref,
                    stage=target,
                    previous=previous,
                    decision=None if decision is None else self.governance.record(conn, decision),
                )
        if previous is Stage.ARCHIVED:
            self._refuse_archived_meanwhile(
                current.ref,
                lambda: stages.set_stage(current.name, current.version, Stage.ARCHIVED),
            )
        if moved:
            self._refuse_changed_meanwhile(
                f"{current.ref} was moved to {previous.value} meanwhile",
                partial(self._put_stage_back, stages, current),
            )
        if event is None:  # sent again (settles a cloud that changed it); no change
            return current if current.stage is target else self._existing_version(name, version)
        self._after_commit([event])
        return self.get_model_version(current.name, current.version)

    def archive_version(self, name: str, version: int | str, *, reason: str = "") -> ModelVersion:
        """Archive a version: its aliases are removed and it can no longer be promoted.

        Refused while the version takes live or shadow traffic on any endpoint. Archiving a
        version already archived sends the stage to the backend again, and drops any backend
        alias naming it (which settles a cloud that changed them), and records nothing new. What
        another process changed between the read of the version and the record of its archiving
        is settled in the backend as the store then records it (``_settle_aliases``, and the
        archived stage sent again); settling that fails is a ``Conflict`` saying the archiving
        is recorded.
        """
        current = self._existing_version(name, version)
        if current.stage is Stage.ARCHIVED:
            self._archive_in_backend(current)
            if self.supports(Capability.REGISTRY_ALIASES):  # an archived version holds none
                aliases = self._area(Capability.REGISTRY_ALIASES, ModelAliases)
                for alias, held in aliases.get_aliases(current.name).items():
                    if held == current.version:
                        _drop_alias(aliases, current.name, alias)
            return current
        serving_on = [
            f"{e.name}/{r.name}" + (" (shadow)" if r.name == e.traffic.shadow else "")
            for e in self.serving.list_endpoints()
            for r in e.routes
            if (r.model, r.version) == (current.name, current.version)
            and (e.traffic.weights.get(r.name, 0) > 0 or r.name == e.traffic.shadow)
        ]
        decision = self.governance.decide(
            "model.retire",
            current.ref,
            [
                Control(
                    "not-serving",
                    not serving_on,
                    f"{current.ref} takes traffic on {', '.join(serving_on)}",
                )
            ],
        )
        if current.aliases:
            aliases = self._area(Capability.REGISTRY_ALIASES, ModelAliases)
            for alias in current.aliases:
                _drop_alias(aliases, current.name, alias)
        self._archive_in_backend(current)
        stage, recorded, event = self._record_archive(current, reason, decision)
        if event is not None:
            self._after_commit([event])
        try:
            self._settle_aliases(current, recorded)
            if stage is not current.stage:  # moved meanwhile: the backend may have it moved too
                self._archive_in_backend(current)
        except MintakaError as exc:
            raise Conflict(
                f"{current.ref} is archived (recorded), but the backend still differs from the "
                f"store, settling it failed: {exc}; `mintaka sync` reports what differs "
                "(archiving it again drops the backend's aliases naming it)"
            ) from exc
        return self.get_model_version(current.name, current.version)

    def _record_archive(
        self, current: ModelVersion, reason: str, decision: PolicyDecision
    ) -> tuple[Stage, dict[str, int], AuditEvent | None]:
        """Record ``current`` archived, its aliases removed, unless another process archived it
        meanwhile. Returns its stage under the write lock, the store's record of the aliases
        archiving touched (``_aliases_touched``) as it was then, and the event (``None`` when
        the other process recorded the archiving)."""
        with self.store.write() as conn:
            stage = self._stage_for_update(conn, current)
            recorded = self._aliases_touched(conn, current)
            if stage is Stage.ARCHIVED:
                return stage, recorded, None
            conn.execute(
                update(model_versions)
                .where(model_versions.c.id == current.id)
                .values(stage=Stage.ARCHIVED.value)
            )
            conn.execute(
                delete(model_aliases).where(
                    model_aliases.c.name == current.name,
                    model_aliases.c.version == current.version,
                )
            )
            event = self._audit(
                conn,
                "model.archive",
                current.ref,
                reason=reason,
                aliases=sorted(a for a, v in recorded.items() if v == current.version),
                decision=self.governance.record(conn, decision),
            )
        return stage, recorded, event

    def _archive_in_backend(self, current: ModelVersion) -> None:
        """Send the archived stage to a backend that keeps stages (others have none to send)."""
        if self.supports(Capability.REGISTRY_STAGES):
            self._area(Capability.REGISTRY_STAGES, ModelStages).set_stage(
                current.name, current.version, Stage.ARCHIVED
            )

    @staticmethod
    def _aliases_touched(conn: Connection, current: ModelVersion) -> dict[str, int]:
        """The store's record, under the write lock, of the aliases that archiving ``current``
        touches: those it held when it was read (and the backend has dropped), and those it
        holds now, each with the version it names now."""
        touched = model_aliases.c.version == current.version
        if current.aliases:
            touched = touched | model_aliases.c.alias.in_(current.aliases)
        rows = conn.execute(
            select(model_aliases.c.alias, model_aliases.c.version).where(
                model_aliases.c.name == current.name, touched
            )
        )
        return {row.alias: int(row.version) for row in rows}

    def _settle_aliases(self, current: ModelVersion, recorded: Mapping[str, int]) -> None:
        """Bring the backend's aliases in line with the store once ``current`` is archived, where
        another process moved them between the read of ``current`` and the archiving's record:
        an alias set on it meanwhile (which the backend still holds, though the store no longer
        does) is dropped, and one of it moved to another version meanwhile (which the backend
        dropped with it) is set again where the store says."""
        late = [a for a, v in recorded.items() if v == current.version and a not in current.aliases]
        moved = {a: v for a, v in recorded.items() if v != current.version}
        if not (late or moved):
            return
        aliases = self._area(Capability.REGISTRY_ALIASES, ModelAliases)
        for alias in late:
            _drop_alias(aliases, current.name, alias)
        for alias, version in moved.items():
            aliases.set_alias(current.name, alias, version)

    # -- datasets -------------------------------------------------------------------------------

    def register_dataset(
        self,
        name: str,
        path: str | Path,
        *,
        schema: Mapping[str, str] | None = None,
        rows: int | None = None,
        profile: bool = True,
        categorical: Sequence[str] = (),
    ) -> DatasetVersion:
        """Record a dataset version by the digest of its bytes; idempotent per (name, digest).

        A CSV or Parquet file is also profiled (quantiles, histograms, category frequencies,
        missing rates and a seeded sample per column): the reference that drift monitors compare
        live traffic with. ``categorical`` names the columns to treat as categories. The file is
        hashed again after profiling, so that the profile describes the bytes of the digest: a
        file rewritten meanwhile is a ``Conflict`` and nothing is recorded. Registering the
        same bytes again from another path moves the record there (``dataset.relocate``) only
        when the file it names no longer holds them; registering them again with a profile
        profiles a version registered without one (``dataset.profile``); registering the bytes
        of a profiled version again after a newer version of the dataset was profiled records
        ``dataset.reingest``, which the data gate orders versions by. A version's profile
        is fixed once recorded: registering its bytes again with ``categorical`` columns its
        profile does not take as categories is a ``Conflict``, with nothing written.
        """
        validate_dataset_name(name)
        source = Path(path)
        if categorical:
            _check_categorical(source, categorical, profile=profile)
        digest = manifest_of(source).digest
        with self.store.read() as conn:
            row = conn.execute(
                select(datasets).where(datasets.c.name == name, datasets.c.digest == digest)
            ).one_or_none()
        if row is not None:
            existing = self._dataset(row)
            if profile and existing.profile is None:
                existing = self._profiled(existing, source, categorical)
            _check_categories(existing, categorical)
            self._reingested(existing)
            return self._relocated(existing, source)
        measured = _profile_of(source, categorical) if profile else None
        _check_unchanged(source, digest, measured)
        record = _parse(
            DatasetVersion,
            id=self.ids.new("ds"),
            name=name,
            uri=source.absolute().as_uri(),
            digest=digest,
            schema=dict(schema or {}),
            rows=rows,
            profile=measured,
            created_at=self._now(),
        )
        with self.store.write() as conn:
            inserted = conn.execute(
                self._insert(datasets)
                .values(
                    id=record.id,
                    name=record.name,
                    uri=record.uri,
                    digest=record.digest,
                    schema=record.schema_,
                    rows=record.rows,
                    profile=record.profile,
                    created_at=record.created_at.isoformat(),
                )
                .on_conflict_do_nothing(index_elements=["name", "digest"])
            )
            if inserted.rowcount == 0:  # another process registered these bytes meanwhile
                stored, events = self._registered_meanwhile(conn, record, measured, categorical)
            else:
                self.lineage.add(
                    conn,
                    [
                        LineageNode(
                            kind=NodeKind.DATASET,
                            key=record.id,
                            label=f"{record.name}@{digest[7:19]}",
                            attrs={"name": record.name, "digest": digest, "uri": record.uri},
                        )
                    ],
                    [],
                )
                event = self._audit(conn, "dataset.register", record.id, name=name, digest=digest)
                stored, events = record, [event]
        self._after_commit(events)
        return stored

    def _registered_meanwhile(
        self,
        conn: Connection,
        record: DatasetVersion,
        measured: dict[str, Any] | None,
        categorical: Sequence[str],
    ) -> tuple[DatasetVersion, list[AuditEvent]]:
        """The version another process registered with ``record``'s name and digest while
        ``record`` was profiled, and the events to announce: the profile ``measured`` for it is
        stored, in ``conn``'s transaction, when that version has none (a profile asked for is
        not lost to a registration without one); a profile stored by that process is kept."""
        stored = self._dataset(
            conn.execute(
                select(datasets).where(
                    datasets.c.name == record.name, datasets.c.digest == record.digest
                )
            ).one()
        )
        _check_categories(stored, categorical)
        if measured is None or stored.profile is not None:
            return stored, []
        event = self._store_profile(conn, stored.id, measured, categorical)
        return stored.model_copy(update={"profile": measured}), [event]

    def _store_profile(
        self,
        conn: Connection,
        dataset_id: str,
        measured: dict[str, Any],
        categorical: Sequence[str],
    ) -> AuditEvent:
        """Store ``measured`` as the profile of the version ``dataset_id``, audited as
        ``dataset.profile`` in ``conn``'s transaction."""
        conn.execute(update(datasets).where(datasets.c.id == dataset_id).values(profile=measured))
        return self._audit(conn, "dataset.profile", dataset_id, categorical=list(categorical))

    def _profiled(
        self, record: DatasetVersion, source: Path, categorical: Sequence[str]
    ) -> DatasetVersion:
        """``record``, registered before without a profile, with the profile of ``source`` (which
        holds its bytes) stored and a ``dataset.profile`` event: a version asked for with a
        profile gets one, or the data gate, which fails a version without one, would refuse it
        forever. Unchanged when ``source`` is no tabular file; another process's profile, stored
        meanwhile, is kept."""
        measured = _profile_of(source, categorical)
        if measured is None:
            return record
        _check_unchanged(source, record.digest, measured)
        with self.store.write() as conn:
            current = self._dataset(
                conn.execute(select(datasets).where(datasets.c.id == record.id)).one()
            )
            if current.profile is not None:
                return current
            event = self._store_profile(conn, record.id, measured, categorical)
        self._after_commit([event])
        return record.model_copy(update={"profile": measured})

    def _reingested(self, record: DatasetVersion) -> None:
        """Record, as ``dataset.reingest``, that the profiled version ``record`` was registered
        again after another version of its dataset got its profile: the data gate holds each
        version to the one profiled last before it, so bytes ingested again after newer ones
        (data reverted to an old file) are held to the newest, not passed as the first of their
        dataset. Nothing when ``record`` is the latest already: a retraining on an unchanged
        file records nothing."""
        if record.profile is None:
            return
        with self.store.read() as conn:
            behind = _placed_behind(conn, record)
        if not behind:
            return
        with self.store.write() as conn:
            if not _placed_behind(conn, record):  # recorded by another process meanwhile
                return
            event = self._audit(conn, "dataset.reingest", record.id, name=record.name)
        self._after_commit([event])

    def _relocated(self, record: DatasetVersion, source: Path) -> DatasetVersion:
        """``record``, registered again from ``source`` (which holds its bytes): moved there,
        with a ``dataset.relocate`` event, when the file its URI names is gone or holds other
        bytes, so that the record names a file that still holds the data; else unchanged."""
        uri = source.absolute().as_uri()
        recorded = file_path(record.uri)
        if (
            uri == record.uri
            or recorded is None
            or (recorded.exists() and manifest_of(recorded).digest == record.digest)
        ):
            return record
        with self.store.write() as conn:
            moved = conn.execute(
                update(datasets)
                .where(datasets.c.id == record.id, datasets.c.uri == record.uri)
                .values(uri=uri)
            )
            if moved.rowcount == 0:  # moved by another process meanwhile
                return self._dataset(
                    conn.execute(select(datasets).where(datasets.c.id == record.id)).one()
                )
            node = lineage_nodes.c.kind == NodeKind.DATASET.value, lineage_nodes.c.key == record.id
            attrs = conn.execute(select(lineage_nodes.c.attrs).where(*node)).scalar()
            if attrs is not None:  # the node's copy of the URI follows the record
                conn.execute(update(lineage_nodes).where(*node).values(attrs={**attrs, "uri": uri}))
            event = self._audit(
                conn, "dataset.relocate", record.id, old_uri=record.uri, new_uri=uri
            )
        self._after_commit([event])
        return record.model_copy(update={"uri": uri})

    @staticmethod
    def _dataset(row: Any) -> DatasetVersion:
        return DatasetVersion(
            id=row.id,
            name=row.name,
            uri=row.uri,
            digest=row.digest,
            schema=row.schema,
            rows=row.rows,
            profile=row.profile,
            created_at=datetime.fromisoformat(row.created_at),
        )

    def get_dataset(self, dataset_id: str) -> DatasetVersion:
        with self.store.read() as conn:
            row = conn.execute(select(datasets).where(datasets.c.id == dataset_id)).one_or_none()
        if row is None:
            raise NotFound(f"dataset {dataset_id!r} not found")
        return self._dataset(row)

    def find_datasets(self, name: str) -> list[DatasetVersion]:
        """The versions of the dataset ``name``, oldest first (in registration order within one
        instant, so the last is the one registered last)."""
        with self.store.read() as conn:
            rows = conn.execute(_datasets_in_order().where(datasets.c.name == name)).all()
        return [self._dataset(row) for row in rows]

    def datasets_in_profile_order(self, versions: Sequence[DatasetVersion]) -> list[DatasetVersion]:
        """``versions`` (in the store's registration order) in the order they got their
        profiles, as the audit chain's sequence numbers tell it: a version registered with a
        profile at its ``dataset.register`` event, one profiled later at its last
        ``dataset.profile`` event, one whose bytes were ingested again after a newer version's
        at its last ``dataset.reingest`` event. The sequence orders versions of one instant
        too; one with none of these comes first. The chain is read once, whatever the number of
        versions."""
        with self.store.read() as conn:
            placed = _profile_positions(conn, [version.id for version in versions])
        return sorted(versions, key=lambda version: placed.get(version.id, 0))

    def list_datasets(self) -> list[DatasetVersion]:
        """Every recorded dataset version, by name, oldest first."""
        with self.store.read() as conn:
            rows = conn.execute(_datasets_in_order(by_name=True)).all()
        return [self._dataset(row) for row in rows]

    def _require_datasets(self, conn: Connection, dataset_ids: Sequence[str]) -> None:
        if not dataset_ids:
            return
        wanted = list(dict.fromkeys(dataset_ids))
        marks = ", ".join(f":d{i}" for i in range(len(wanted)))
        known = {
            row[0]
            for row in Sql(conn).rows(
                f"SELECT id FROM datasets WHERE id IN ({marks})",
                {f"d{i}": dataset_id for i, dataset_id in enumerate(wanted)},
            )
        }
        missing = [d for d in dataset_ids if d not in known]
        if missing:
            raise NotFound(f"dataset(s) not found: {', '.join(missing)}")

    # -- runs -----------------------------------------------------------------------------------

    def start_run(
        self,
        experiment: str,
        *,
        params: Mapping[str, Any] | None = None,
        dataset_ids: Sequence[str] = (),
        code_commit_: str | None = None,
        source_dir: Path | None = None,
    ) -> Run:
        """Start an experiment run; the code commit is read from git when not given."""
        experiment = validate_experiment_name(experiment)
        with self.store.read() as conn:
            self._require_datasets(conn, dataset_ids)
        run = _parse(
            Run,
            id=self.ids.new("run"),
            experiment=experiment,
            code_commit=code_commit_ or code_commit(source_dir),
            dataset_ids=tuple(dataset_ids),
            params={str(k): str(v) for k, v in (params or {}).items()},
            environment=environment(),
            started_at=self._now(),
            backend=self.backend.name,
        )
        backend_ids: dict[str, str] = {}
        if self.supports(Capability.RUNS):
            backend_ids = self._area(Capability.RUNS, RunTracking).create_run(run)
        run = run.model_copy(update={"backend_ids": backend_ids})
        with self.store.write() as conn:
            conn.execute(runs.insert().values(**self._run_values(run)))
            nodes = [LineageNode(kind=NodeKind.RUN, key=run.id, label=f"{experiment}/{run.id}")]
            edges = [
                LineageEdge(src=f"dataset:{d}", dst=f"run:{run.id}", kind=EdgeKind.TRAINED_ON)
                for d in run.dataset_ids
            ]
            self.lineage.add(conn, nodes, edges)
            event = self._audit(
                conn, "run.start", run.id, experiment=experiment, datasets=list(dataset_ids)
            )
        self._after_commit([event])
        return run

    @staticmethod
    def _run_values(run: Run) -> dict[str, Any]:
        return {
            "id": run.id,
            "experiment": run.experiment,
            "status": run.status.value,
            "code_commit": run.code_commit,
            "dataset_ids": list(run.dataset_ids),
            "params": run.params,
            "metrics": run.metrics,
            "environment": run.environment,
            "started_at": run.started_at.isoformat(),
            "ended_at": run.ended_at.isoformat() if run.ended_at else None,
            "backend": run.backend,
            "backend_ids": run.backend_ids,
        }

    def _run_row(self, conn: Connection, run_id: str, *, lock: bool = False) -> Run:
        """The run ``run_id``; with ``lock``, its row locked (on a server database) until the
        write transaction ``conn`` ends."""
        query = select(runs).where(runs.c.id == run_id)
        row = conn.execute(query.with_for_update() if lock else query).one_or_none()
        if row is None:
            raise NotFound(f"run {run_id!r} not found")
        return Run(
            id=row.id,
            experiment=row.experiment,
            status=RunStatus(row.status),
            code_commit=row.code_commit,
            dataset_ids=tuple(row.dataset_ids),
            params=row.params,
            metrics=row.metrics,
            environment=row.environment,
            started_at=datetime.fromisoformat(row.started_at),
            ended_at=datetime.fromisoformat(row.ended_at) if row.ended_at else None,
            backend=row.backend,
            backend_ids=row.backend_ids,
        )

    def get_run(self, run_id: str) -> Run:
        with self.store.read() as conn:
            return self._run_row(conn, run_id)

    def list_runs(self, experiment: str | None = None) -> list[Run]:
        query = select(runs.c.id).order_by(runs.c.started_at, runs.c.id)
        if experiment is not None:
            query = query.where(runs.c.experiment == experiment)
        with self.store.read() as conn:
            return [self._run_row(conn, run_id) for run_id in conn.execute(query).scalars()]

    def _update_run(self, run_id: str, action: str, change: Callable[[Run], dict[str, Any]]) -> Run:
        """Record ``change``, made from the run as it stands under the write lock (its row
        locked on a server database), with an ``action`` event: a merge made from an earlier
        read would overwrite what another process logged meanwhile. ``Conflict`` when the run
        has ended."""
        with self.store.write() as conn:
            current = self._run_row(conn, run_id, lock=True)
            _refuse_ended(current)
            changes = change(current)
            updated = current.model_copy(update=changes)
            conn.execute(
                update(runs).where(runs.c.id == run_id).values(**self._run_values(updated))
            )
            event = self._audit(
                conn,
                action,
                run_id,
                **{
                    k: (v.value if hasattr(v, "value") else v)
                    for k, v in changes.items()
                    if k != "ended_at"
                },
            )
        self._after_commit([event])
        return updated

    def _running(self, run_id: str) -> Run:
        """The run, which must still be running: checked before the backend is called, so a
        refused change reaches neither the backend nor the store."""
        current = self.get_run(run_id)
        _refuse_ended(current)
        return current

    def _tracking(self) -> RunTracking | None:
        """The backend's run tracking, if it keeps runs (else the store alone does)."""
        if not self.supports(Capability.RUNS):
            return None
        return self._area(Capability.RUNS, RunTracking)

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> Run:
        """Log parameters; one already logged with another value is a ``Conflict``, also when
        another process logged it meanwhile. A ``Conflict`` after the backend took them (the
        run ended, or a parameter logged, meanwhile) names those the backend keeps: a tracking
        service removes no parameter."""
        values = {str(k): str(v) for k, v in params.items()}
        _params_with(self._running(run_id), values)
        tracking = self._tracking()
        if tracking is not None:
            tracking.log_params(run_id, values)
        try:
            return self._update_run(
                run_id, "run.params", lambda run: {"params": _params_with(run, values)}
            )
        except Conflict as refused:
            if tracking is None:
                raise
            recorded = self.get_run(run_id).params
            kept = [k for k, v in values.items() if recorded.get(k) != v]
            _refuse_logged(refused, "parameters", kept)

    def log_metrics(self, run_id: str, metrics: Mapping[str, float]) -> Run:
        """Log metrics (a metric logged again takes the new value), merged with those the run
        holds when the store records them, other processes' included. For a run that ended
        meanwhile (a ``Conflict``), the backend is given again the values the store holds of
        those metrics; the ``Conflict`` names those it keeps that the store never held (a
        tracking service removes no metric)."""
        values = finite_metrics(metrics)
        self._running(run_id)
        tracking = self._tracking()
        if tracking is not None:
            tracking.log_metrics(run_id, values)
        try:
            return self._update_run(
                run_id, "run.metrics", lambda run: {"metrics": {**run.metrics, **values}}
            )
        except Conflict as refused:
            if tracking is None:
                raise
            recorded = self.get_run(run_id).metrics
            held = {k: recorded[k] for k in values if k in recorded}
            try:
                if held:
                    tracking.log_metrics(run_id, held)
            except MintakaError as exc:
                raise Conflict(
                    f"{refused}; the backend still holds the metrics {sorted(values)} logged "
                    f"now, putting them back failed: {exc}"
                ) from exc
            _refuse_logged(refused, "metrics", [k for k in values if k not in recorded])

    def end_run(self, run_id: str, status: RunStatus | str = RunStatus.FINISHED) -> Run:
        """End a running run as finished or failed. A run that another process ended while the
        backend ended it is a ``Conflict``, and the backend is given the status the store
        records, so that the two agree (the ``Conflict`` says so when that fails)."""
        final = parse_enum(RunStatus, status, "run status")
        if final is RunStatus.RUNNING:
            raise ValidationError("a run ends as finished or failed")
        self._running(run_id)
        tracking = self._tracking()
        if tracking is not None:
            tracking.end_run(run_id, final)
        try:
            return self._update_run(
                run_id, "run.end", lambda _run: {"status": final, "ended_at": self._now()}
            )
        except Conflict as ended:
            if tracking is not None:
                try:
                    tracking.end_run(run_id, self.get_run(run_id).status)
                except MintakaError as exc:
                    raise Conflict(
                        f"{ended}; the backend still holds it as {final.value}, putting it back "
                        f"failed: {exc}"
                    ) from exc
            raise

    # -- lineage and audit -------------------------------------------------------------------

    def _node_for(self, ref: str) -> str:
        """A lineage node id for a model reference, a dataset name or id, or ``KIND:KEY``."""
        kind, _, key = ref.partition(":")
        if kind in {k.value for k in NodeKind}:
            # ``run:3`` may also be version 3 of a model named ``run``: a node of that id wins.
            if key.isdecimal():
                try:
                    self.lineage.node(ref)
                except NotFound:
                    with contextlib.suppress(NotFound, InvalidName):
                        return f"model_version:{self.get_model_version(ref).id}"
            return ref
        if ":" in ref or "@" in ref:  # a dataset id has neither
            try:
                return f"model_version:{self.get_model_version(ref).id}"
            except InvalidName as exc:
                if "@" in ref:
                    raise
                kinds = ", ".join(k.value for k in NodeKind)
                raise ValidationError(
                    f"{ref!r} is neither a model version NAME:VERSION ({exc}) nor a lineage "
                    f"node KIND:KEY (kinds: {kinds})"
                ) from exc
        if ref.startswith("ds-"):  # a dataset id, or a model or dataset named like one
            with contextlib.suppress(NotFound):
                return f"dataset:{self.get_dataset(ref).id}"
        found = self.find_datasets(ref)
        if found:
            return f"dataset:{found[-1].id}"
        try:
            return f"model_version:{self.get_model_version(ref).id}"
        except NotFound:
            try:
                self.get_model(ref)
            except NotFound:
                raise NotFound(
                    f"no dataset or model named {ref!r} (a dataset by name or id, a model as "
                    "NAME, NAME:VERSION or NAME@ALIAS, or a node as KIND:KEY)"
                ) from None
            raise

    def lineage_upstream(self, ref: str) -> LineageGraph:
        """Everything a model version (``NAME:VERSION``, ``NAME@ALIAS``) was made from."""
        return self.lineage.walk(self._node_for(ref), "up")

    def lineage_downstream(self, ref: str, *, stage: Stage | str | None = None) -> LineageGraph:
        """Everything made from a dataset (by name: from every version of it; or by id) or
        other node.

        With ``stage``, only the model versions in that stage and the paths to them with their
        deployments: ``stage="production"``
        answers "which production models used data source X". A version is in production when
        it is in the production stage, holds a production alias of the policy, or takes live
        traffic.
        """
        wanted = None if stage is None else parse_enum(Stage, stage, "stage")
        starts = [f"dataset:{d.id}" for d in self.find_datasets(ref)] or [self._node_for(ref)]
        if len(starts) == 1:
            graph = self.lineage.walk(starts[0], "down")
        else:  # a dataset name: from every version of it
            nodes: dict[str, LineageNode] = {}
            edges: dict[tuple[str, str], LineageEdge] = {}
            for start in starts:
                walked = self.lineage.walk(start, "down")
                nodes.update({n.id: n for n in walked.nodes})
                edges.update({(e.src, e.dst): e for e in walked.edges})
            graph = LineageGraph(
                root=starts[-1], nodes=tuple(nodes.values()), edges=tuple(edges.values())
            )
        if wanted is None:
            return graph
        import networkx as nx

        nodes = {n.id: n for n in graph.nodes}
        version_nodes = {n.key: n.id for n in graph.nodes if n.kind is NodeKind.MODEL_VERSION}
        targets = {version_nodes[key] for key in self._in_stage(version_nodes, wanted)}
        g = graph.to_networkx()  # type: ignore[no-untyped-call]
        keep = set(targets)
        for target in targets:
            keep |= nx.ancestors(g, target)
            keep |= {d for d in nx.descendants(g, target) if nodes[d].kind is NodeKind.DEPLOYMENT}
        root = next((s for s in starts if s in keep), starts[-1])
        keep.add(root)
        return LineageGraph(
            root=root,
            nodes=tuple(n for n in graph.nodes if n.id in keep),
            edges=tuple(e for e in graph.edges if e.src in keep and e.dst in keep),
        )

    def _in_stage(self, version_ids: Iterable[str], stage: Stage) -> set[str]:
        """Those of ``version_ids`` in ``stage``; for production, every version in use (see
        :func:`mintaka.governance.inventory.in_production`)."""
        from mintaka.governance.inventory import in_production, serving_index

        with self.store.read() as conn:
            rows = conn.execute(
                select(model_versions.c.name, model_versions.c.version).where(
                    model_versions.c.id.in_(list(version_ids))
                )
            ).all()
        versions = [self.get_model_version(row.name, row.version) for row in rows]
        if stage is not Stage.PRODUCTION:
            return {v.id for v in versions if v.stage is stage}
        index = serving_index(self)
        aliases = self.governance.policy.production_aliases
        return {
            v.id for v in versions if in_production(v, aliases, index.get((v.name, v.version), []))
        }

    def verify_audit(self) -> ChainReport:
        return self.audit.verify()

    # -- sync -----------------------------------------------------------------------------------

    def sync(self) -> list[Difference]:
        """Differences between the store's records of managed models and the cloud's view.

        Neither side is changed; each new difference is appended to the audit trail as a
        ``sync.difference`` event, and an unchanged one is reported again without being re-audited
        (see :mod:`mintaka.sync`).
        """
        from mintaka.sync import sync_models

        return sync_models(self)


def _refuse_digest_held(sql: Sql, name: str, digest: str, created: BackendVersion | None) -> None:
    """Refuse, under the write lock, bytes that a version of ``name`` holds already: two
    processes registering one artifact both pass the check made on their read. On a server
    database the model's row stays locked until the transaction ends, so that registrations of
    one model check one after another. ``created`` is the version a backend outside the store
    made for this registration, which the refusal leaves unrecorded there."""
    query = _VERSION_HOLDING_BY_MODEL + ("" if sql.is_sqlite else " FOR UPDATE")
    held = sql.one(query, {"name": name, "digest": digest})
    if held is None or held[0] is None:
        return
    raise _bytes_held(name, digest, int(held[0]), created)


def _bytes_held(name: str, digest: str, version: int, created: BackendVersion | None) -> BytesHeld:
    """The refusal of bytes that ``version`` of ``name`` holds already, naming ``created``."""
    return BytesHeld(
        f"{name}:{version} already holds artifact {digest}{_unrecorded(created)}",
        version=version,
        unrecorded=None if created is None else created.version,
    )


def _unrecorded(created: BackendVersion | None) -> str:
    """The end of a registration's refusal that names ``created``, the version a backend outside
    the store made for it, which the refusal leaves unrecorded there."""
    if created is None:
        return ""
    return (
        f"; the backend's version {created.version}, made for this registration, is not "
        "recorded (sync reports it)"
    )


def _left_elsewhere(created: BackendVersion | None) -> str:
    """The end of the refusal of a first version of a model recorded meanwhile for another
    backend, naming ``created``, the version a backend outside the store made for it: sync
    compares only models recorded for this backend, so it never reports that version."""
    if created is None:
        return ""
    return (
        f"; the backend's version {created.version}, made for this registration, is not "
        "recorded, and sync does not report it (the model is recorded for another backend): "
        "delete it from the backend by hand (`mintaka discover --unrecorded` lists it)"
    )


def _refuse_ended(run: Run) -> None:
    if run.status is not RunStatus.RUNNING:
        raise Conflict(f"run {run.id} has ended ({run.status.value})")


def _refuse_logged(refused: Conflict, kind: str, kept: Sequence[str]) -> NoReturn:
    """Raise ``refused``, the store's refusal of values the backend took already, naming those
    the backend ``kept`` apart from the store's: a tracking service removes none."""
    if not kept:
        raise refused
    raise Conflict(
        f"{refused}; the backend keeps the {kind} {sorted(kept)} logged now, which cannot be "
        "removed from it"
    ) from refused


def _params_with(run: Run, values: Mapping[str, str]) -> dict[str, str]:
    """``run``'s parameters with ``values`` added; a ``Conflict`` for one logged with another
    value (a parameter is logged once: it describes how the run was made)."""
    clash = sorted(k for k, v in values.items() if run.params.get(k, v) != v)
    if clash:
        raise Conflict(f"run {run.id}: parameters already logged with other values: {clash}")
    return {**run.params, **values}


def _drop_alias(aliases: ModelAliases, name: str, alias: str) -> None:
    """Remove ``alias`` of ``name`` from the backend. One the backend no longer has (removed in
    the cloud, behind Mintaka's back) is removed already: the store's stale record of it must
    not block its deletion, or the archiving of its version, for good."""
    with contextlib.suppress(NotFound):
        aliases.delete_alias(name, alias)


def _alias_moved(name: str, alias: str, held: int | None) -> str:
    """The refusal of a change to an alias that another process moved (or deleted) meanwhile."""
    if held is None:
        return f"{name}@{alias} was deleted meanwhile"
    return f"{name}@{alias} was set to version {held} meanwhile"


def _put_alias(aliases: ModelAliases, name: str, alias: str, version: int | None) -> None:
    """Point the backend's ``alias`` of ``name`` at ``version``, or drop it for ``None``."""
    if version is None:
        _drop_alias(aliases, name, alias)
    else:
        aliases.set_alias(name, alias, version)


def _content_root(artifact: str | Path | StoredArtifact) -> Path:
    """The directory an artifact's manifest paths are relative to: a stored artifact's content,
    a directory itself, or a single file's parent (a file is digested as a directory holding
    it alone)."""
    if isinstance(artifact, StoredArtifact):
        return artifact.content
    path = Path(artifact)
    return path if path.is_dir() else path.parent
