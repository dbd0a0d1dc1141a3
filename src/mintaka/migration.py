"""Migration: bring models and endpoints that already run in the cloud under Mintaka's management.

A company adopting Mintaka already serves models it registered and deployed by other means.
``platform.migration`` finds them and adopts them, so that from then on they have what a model
registered through Mintaka has: a recorded version bound to the digest of its bytes, lineage,
an audit trail, governance over every later traffic change, rollback, the kill switch and sync.

- :meth:`MigrationService.discover` lists what the backend's cloud holds (``Capability.DISCOVERY``)
  beside what the store records, so the unmanaged resources stand out.
- :meth:`MigrationService.adopt_model` records the cloud's versions of a model that the store does
  not record yet, under the numbers the cloud gave them. Each version's bytes are read back from
  the cloud (``Capability.REGISTRY_FETCH``) or, where the backend cannot, supplied by the adopter
  (``artifacts``); either way they are digested and stored content-addressed before any row
  refers to them, and a version for which the cloud reports a Mintaka digest must match it.
  The cloud's tags, stage and aliases are recorded as they are, so the first sync finds nothing to
  report. Lineage is retrofitted from what the adopter attests (the training run, the datasets,
  the code commit), and the version's lineage node says it was adopted, by whom and when.
  Nothing is written to the cloud.
- :meth:`MigrationService.adopt_served` is for an endpoint deployed without the registry, whose
  route serves bytes no version describes (a SageMaker Model made straight from its model data):
  the backend registers what the route serves as a new version
  (``Capability.REGISTRY_FROM_SERVING``, the one write to the cloud here, leaving the endpoint
  as it is), and that version is adopted as above.
- :meth:`MigrationService.adopt_endpoint` records a live endpoint whose routes all serve recorded
  versions, with its current traffic as its first deployment. The traffic gate is evaluated, not
  enforced (the traffic is already live): the decision is recorded, the deployment counts as
  known-good only if the gate passed, and every unmet control is returned as a finding. After
  that, rollouts, rollback, the kill switch, monitors (``mintaka monitor add``) and sync work on it
  as on any endpoint Mintaka created.

Except for ``adopt_served``'s registration and a capture asked for, nothing is written to the
cloud. Adoption is idempotent: versions and endpoints the store already records are skipped, and an
adoption with nothing new writes nothing. Every adoption is audited (``model.adopt``,
``endpoint.adopt``) with the adopter's reason, and every capture sent (``endpoint.capture``).
"""

from __future__ import annotations

import functools
import json
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from mintaka.artifacts import StoredArtifact, manifest_of
from mintaka.capabilities import Capability
from mintaka.domain.base import JSONDict, parse_enum
from mintaka.domain.discovery import ObservedModel, ResourceKind
from mintaka.domain.governance import validate_owner
from mintaka.domain.lineage import EdgeKind, LineageEdge, LineageNode, NodeKind
from mintaka.domain.monitoring import CaptureConfig
from mintaka.domain.names import (
    ALIAS_RULE,
    RESERVED_ALIASES,
    route_name_of,
    validate_alias,
    validate_endpoint_name,
    validate_model_name,
    validate_tag,
    validate_version,
)
from mintaka.domain.registry import (
    ApprovalStatus,
    BackendVersion,
    Flavor,
    ModelVersion,
    RiskTier,
    Signature,
    Stage,
    features_signature,
)
from mintaka.domain.serving import Endpoint, EndpointStatus, RolloutStrategy, TrafficMap
from mintaka.errors import (
    Conflict,
    InvalidName,
    NotFound,
    UnsupportedCapability,
    ValidationError,
)
from mintaka.flavors.loader import detect_flavor, require_flavor_content
from mintaka.governance.gate import TrafficChange, traffic_controls
from mintaka.governance.service import Control, highest_tier
from mintaka.interfaces import (
    ArtifactFetch,
    CaptureSource,
    Discovery,
    ModelRegistry,
    ServedRegistration,
    Serving,
    StateObserver,
    Support,
)
from mintaka.serving.ops import _check_unchanged, _Seen
from mintaka.store.engine import Sql
from mintaka.store.schema import audit_events, endpoints, model_aliases, model_versions, models
from mintaka.sync import traffic_views

if TYPE_CHECKING:
    from mintaka.domain.audit import AuditEvent
    from mintaka.platform import Platform, _RunInputs

ADOPT_MODEL = "model.adopt"
ADOPT_ENDPOINT = "endpoint.adopt"
_CAPTURE = "endpoint.capture"


@dataclass(frozen=True)
class Candidate:
    """A resource in the cloud, and whether the store records it (``recorded``), the cloud
    marks it as Mintaka's (``managed``) and its name is one Mintaka can use (``usable_name``:
    else it is adopted under a name the backend's settings map to it, where the backend can)."""

    kind: ResourceKind
    name: str
    backend_id: str
    recorded: bool
    managed: bool
    extra: JSONDict = field(default_factory=dict)
    usable_name: bool = True


@dataclass(frozen=True)
class ModelAdoption:
    """What ``adopt_model`` recorded; ``findings`` are what the adopter should act on next."""

    model: str
    adopted: tuple[ModelVersion, ...]
    already_recorded: tuple[int, ...]
    findings: tuple[str, ...]


@dataclass(frozen=True)
class EndpointAdoption:
    """What ``adopt_endpoint`` recorded (``adopted`` False: the store already recorded it)."""

    endpoint: Endpoint
    adopted: bool
    known_good: bool
    findings: tuple[str, ...]


@dataclass(frozen=True)
class _ModelArgs:
    """An adoption's checked arguments, with what the store recorded of the model then."""

    name: str
    reason: str
    owner: str
    owner_given: bool  # else the model's, as recorded when the versions are
    risk_tier: RiskTier
    tier_given: bool  # else the model's, as recorded when the versions are
    flavor: Flavor | None
    wanted: list[int] | None
    supplied: dict[int, Path]
    run: _RunInputs | None
    datasets: list[str]
    code_commit: str | None
    pipeline_run_id: str | None
    recorded: set[int]
    served: tuple[str, str] | None  # (endpoint, route) a version was registered from
    signature: Signature = field(default_factory=Signature)
    fetched: dict[int, StoredArtifact] = field(default_factory=dict)  # bytes already read
    flavors: dict[int, Flavor] = field(default_factory=dict)  # of those bytes, already checked


class _TierBelowModel(Exception):
    """Raised out of the transaction that would record an adoption's or a registration's
    versions when the model, recorded meanwhile, is of a higher tier than the one given: nothing
    is written, and the refusal is recorded (``policy.deny``) and raised as ``PolicyViolation``
    once the transaction is undone."""

    def __init__(self, model_tier: RiskTier) -> None:
        super().__init__(model_tier.value)
        self.model_tier = model_tier


def _tier_below(tier: RiskTier | None, model_tier: RiskTier) -> bool:
    """Whether ``tier``, given for a model's versions, is below ``model_tier``, the model's: a
    version's tier decides its controls, and one below its model's would let a version of a
    high-risk model skip the sign-off the model needs. No tier given is the model's."""
    return tier is not None and highest_tier((tier, model_tier)) is not tier


@dataclass(frozen=True)
class _Fetched:
    version: BackendVersion
    stored: StoredArtifact


def _flavor_of(ref: str, stored: StoredArtifact, declared: Flavor | None) -> Flavor:
    """The flavor to adopt ``ref``'s bytes as: ``declared``, else the one its files show.
    Adopting them as a servable flavor they cannot be loaded as is refused, as a registration
    is (a ``model.skops`` must be a skops archive): it would be recorded, then fail on every
    load."""
    flavor = declared or detect_flavor(stored.content)
    try:
        require_flavor_content(stored.content, [e.path for e in stored.manifest.entries], flavor)
    except ValidationError as exc:
        read = "" if declared else f"its files read as flavor {flavor.value!r}, but "
        raise ValidationError(f"cannot adopt {ref}: {read}{exc}") from None
    return flavor


def _pipeline_run_node(run_id: str, backend: str) -> LineageNode:
    """The node of a cloud pipeline run (written at submit; kept as it is when there)."""
    return LineageNode(
        kind=NodeKind.PIPELINE_RUN, key=run_id[:512], label=run_id, attrs={"backend": backend}
    )


# The backends whose settings hold each name map, where more than SageMaker's do.
_MAPPED_BY = {"model_names": "SageMaker, the Databricks workspace registry"}


def _cloud_name(validate: Callable[[object], str], name: str, setting: str) -> str:
    """``name`` validated; a refusal says how a cloud resource named so is adopted."""
    try:
        return validate(name)
    except InvalidName as exc:
        raise InvalidName(
            exc.kind,
            exc.value,
            f"{exc.rule}; a cloud resource named so is adopted under a Mintaka name that the "
            f"backend's settings map to it ({_MAPPED_BY.get(setting, 'SageMaker')}: {setting}; "
            "docs/migration.md)",
        ) from None


def _usable(kind: ResourceKind, name: str) -> bool:
    """Whether Mintaka can use ``name`` (a version's model part, for a version) as it is."""
    check = validate_endpoint_name if kind is ResourceKind.ENDPOINT else validate_model_name
    try:
        check(name.rpartition(":")[0] if kind is ResourceKind.MODEL_VERSION else name)
    except InvalidName:
        return False
    return True


def _usable_alias(alias: str) -> bool:
    """Whether Mintaka can record the cloud's ``alias`` (one it could not show nor delete)."""
    try:
        validate_alias(alias)
    except InvalidName:
        return False
    return True


def _recorded_versions(sql: Sql, name: str) -> set[int]:
    rows = sql.rows("SELECT version FROM model_versions WHERE name = :name", {"name": name})
    return {int(row[0]) for row in rows}


def _refuse_stray_artifacts(
    name: str, supplied: Mapping[int, Path], adopted: Iterable[int]
) -> None:
    """``ValidationError`` for bytes given for versions the adoption does not record: a mistyped
    version number would otherwise leave them unused and the intended version read from the
    cloud."""
    stray = sorted(set(supplied) - set(adopted))
    if stray:
        raise ValidationError(
            f"artifacts were given for {name} versions {stray}, which are not being adopted"
        )


def _recorded_elsewhere(kind: str, name: str, backend: str, current: str) -> Conflict:
    """The refusal to adopt, or register a version of, what the store records for another
    backend (a home that switched backends): the cloud's resource of that name is another one."""
    return Conflict(f"{kind} {name!r} is recorded for backend {backend!r}, not {current!r}")


def _reason(reason: str) -> str:
    text = (reason or "").strip()
    if not text:
        raise ValidationError("an adoption needs a reason, recorded for auditors (--reason)")
    return text


class MigrationService:
    """``platform.migration``: discover unmanaged cloud resources and adopt them."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    # -- discovery ------------------------------------------------------------------------------

    def discover(self) -> list[Candidate]:
        """Every model, version and endpoint the backend's cloud holds, with what the store
        records of it."""
        platform = self.platform
        found = platform._area(Capability.DISCOVERY, Discovery).discover()
        backend = platform.backend.name
        with platform.store.read() as conn:
            recorded_models = set(
                conn.execute(select(models.c.name).where(models.c.backend == backend)).scalars()
            )
            recorded_versions = {
                f"{name}:{version}"
                for name, version in conn.execute(
                    select(model_versions.c.name, model_versions.c.version).where(
                        model_versions.c.backend == backend
                    )
                )
            }
            recorded_endpoints = set(
                conn.execute(
                    select(endpoints.c.name).where(endpoints.c.backend == backend)
                ).scalars()
            )
        recorded = {
            ResourceKind.MODEL: recorded_models,
            ResourceKind.MODEL_VERSION: recorded_versions,
            ResourceKind.ENDPOINT: recorded_endpoints,
        }
        return [
            Candidate(
                kind=r.kind,
                name=r.name,
                backend_id=r.backend_id,
                recorded=r.name in recorded[r.kind],
                managed=r.managed,
                extra=dict(r.extra),
                usable_name=_usable(r.kind, r.name),
            )
            for r in found
        ]

    # -- models ---------------------------------------------------------------------------------

    def adopt_model(
        self,
        name: str,
        *,
        reason: str,
        owner: str | None = None,
        tier: RiskTier | str | None = None,
        versions: Iterable[int | str] | None = None,
        artifacts: Mapping[int, str | Path] | None = None,
        run_id: str | None = None,
        dataset_ids: Sequence[str] = (),
        code_commit: str | None = None,
        pipeline_run_id: str | None = None,
        flavor: Flavor | str | None = None,
        features: Sequence[str] | str = (),
        on_fetch: Callable[[BackendVersion, int, int], None] | None = None,
    ) -> ModelAdoption:
        """Record the cloud's versions of ``name`` that the store does not record yet (or only
        ``versions``), each bound to the digest of its bytes.

        ``artifacts`` supplies a version's bytes (version number -> file or directory) where the
        backend cannot read them back, or instead of reading them. ``run_id``, ``dataset_ids``
        and ``code_commit`` retrofit the versions' lineage: the adopter attests them, and the
        audit event says so. ``pipeline_run_id`` names the cloud pipeline run that registered
        them (a ``pipeline_run -> version`` lineage edge). ``flavor`` says how the bytes are
        loaded for serving; by default it is read from them (``model.skops``: sklearn,
        ``pyfunc.json``: pyfunc, anything else opaque). ``on_fetch(version, index, total)`` is
        called before each version's bytes are read (``index`` counts from 0), for progress.
        ``features`` names the input columns in training order (the versions' signature), for a
        model that does not name its features.
        """
        return self._adopt_model(
            self._prepare(
                name,
                reason=reason,
                owner=owner,
                tier=tier,
                versions=versions,
                artifacts=artifacts,
                run_id=run_id,
                dataset_ids=dataset_ids,
                code_commit=code_commit,
                pipeline_run_id=pipeline_run_id,
                flavor=flavor,
                features=features,
            ),
            on_fetch=on_fetch,
        )

    def adopt_served(
        self,
        endpoint: str,
        route: str,
        model: str,
        *,
        reason: str,
        owner: str | None = None,
        tier: RiskTier | str | None = None,
        run_id: str | None = None,
        dataset_ids: Sequence[str] = (),
        code_commit: str | None = None,
        flavor: Flavor | str | None = None,
        features: Sequence[str] | str = (),
        on_fetch: Callable[[BackendVersion | None, int, int], None] | None = None,
    ) -> ModelAdoption:
        """Register what ``route`` of the live ``endpoint`` serves as a new version of ``model``
        in the cloud's registry, then adopt that version as :meth:`adopt_model` does.

        For an endpoint deployed without the registry (on SageMaker, a Model made straight from
        its model data): its route serves bytes no version describes, so the endpoint cannot be
        adopted until they are one (``Capability.REGISTRY_FROM_SERVING``). The endpoint is not
        changed; ``adopt_endpoint`` then reads the route as serving the new version. ``route``
        is the route name Mintaka reads (``alltraffic``) or the slot's own name in the cloud
        (``AllTraffic``). Idempotent: a route that already reads as a version the store records
        returns it without reading the bytes again (the cloud may have dropped them while the
        endpoint serves them still). Every argument is checked, and the bytes the route serves
        are read and checked as adoption checks a version's (a servable flavor must load),
        before the cloud is written to: a refused adoption registers nothing. A backend that
        cannot read them first (``fetch_served`` gives None) has them read back once registered,
        so a refusal then leaves the version registered in the cloud. ``Conflict`` when the
        backend answers with a version the store records whose digest is not that of the bytes
        read (the route redeployed under the old names). ``on_fetch`` is called, for progress,
        before the route's bytes are read, with None for the version (not registered yet), and
        not again for them; a backend that reads them back after registering has it called
        before that read, with the version, as in :meth:`adopt_model`.
        """
        platform = self.platform
        endpoint = _cloud_name(validate_endpoint_name, endpoint, "endpoint_names")
        if not isinstance(route, str) or not route.strip():
            raise InvalidName("route", route, "a route name must not be empty")
        route = route_name_of(route.strip())
        prepare = functools.partial(
            self._prepare,
            reason=reason,
            owner=owner,
            tier=tier,
            artifacts=None,
            run_id=run_id,
            dataset_ids=dataset_ids,
            code_commit=code_commit,
            pipeline_run_id=None,
            flavor=flavor,
            served=(endpoint, route),
            features=features,
        )
        first = prepare(model, versions=None)
        name = first.name
        registrar = platform._area(
            Capability.REGISTRY_FROM_SERVING,
            ServedRegistration,
            "its endpoints serve registry versions only: adopt their models "
            "(mintaka adopt model), then the endpoint",
        )
        platform._area(Capability.SYNC, StateObserver)
        platform._area(
            Capability.REGISTRY_FETCH,
            ArtifactFetch,
            "the bytes of what the endpoint serves cannot be read back to be digested",
        )
        recorded = self._served_recorded(endpoint, route, first)
        if recorded is not None:
            return recorded
        if on_fetch is not None:
            on_fetch(None, 0, 1)
        read = self._served_bytes(registrar, endpoint, route)
        if read is None:
            registered = registrar.register_served(endpoint, route, name)
        else:
            read_as = _flavor_of(f"what {endpoint} route {route} serves", read[0], first.flavor)
            registered = registrar.register_served(endpoint, route, name, served=read[1])
        if registered.name != name:
            raise Conflict(
                f"endpoint {endpoint!r}: route {route!r} serves "
                f"{registered.name}:{registered.version}, not a version of {name!r}"
            )
        # Prepared again, for that one version and with the store as it is now.
        args = prepare(name, versions=[registered.version])
        if read is not None:
            if registered.version in args.recorded:
                self._require_recorded_bytes(name, registered.version, read[0], endpoint, route)
            args.fetched[registered.version] = read[0]
            args.flavors[registered.version] = read_as
        return self._adopt_model(args, on_fetch)

    def _served_recorded(self, endpoint: str, route: str, args: _ModelArgs) -> ModelAdoption | None:
        """The adoption, with nothing to do, when ``route`` already reads as a version of the
        model that the store records: found without reading its bytes, which the cloud may no
        longer hold although the endpoint still serves them. ``Conflict`` when the route reads
        as serving another model's version; None when there is something to register."""
        cloud = self.platform._area(Capability.SERVING, Serving).get_endpoint(endpoint)
        served = next((r for r in cloud.routes if r.name == route), None)
        if served is None:
            return None
        if served.model != args.name:
            raise Conflict(
                f"endpoint {endpoint!r}: route {route!r} serves "
                f"{served.model}:{served.version}, not a version of {args.name!r}"
            )
        if served.version not in args.recorded:
            return None
        return ModelAdoption(args.name, (), (served.version,), ())

    def _require_recorded_bytes(
        self, name: str, version: int, read: StoredArtifact, endpoint: str, route: str
    ) -> None:
        """``Conflict`` when ``register_served`` answered with a version the store records whose
        bytes are not the ones just read from the route: the cloud tied what the route serves now
        (a Model made again under its old name, say) to an earlier version, and recording the
        endpoint as serving that version would be false."""
        recorded = self.platform.get_model_version(name, version)
        if recorded.artifact_digest != read.digest:
            raise Conflict(
                f"endpoint {endpoint!r}: route {route!r} serves bytes digesting to {read.digest}, "
                f"but the backend registered them as {name}:{version}, recorded with digest "
                f"{recorded.artifact_digest}; nothing was recorded (register what the route "
                "serves as a new version in the cloud, then adopt it)"
            )

    def _served_bytes(
        self, registrar: ServedRegistration, endpoint: str, route: str
    ) -> tuple[StoredArtifact, str] | None:
        """What ``route`` of ``endpoint`` serves, read from the cloud into the artifact store
        (so that bytes adoption would refuse are refused before anything is registered), and
        the identity of the slot they were read from, for ``register_served`` to check. None
        when the backend cannot read them before registering: they are read back after."""
        with tempfile.TemporaryDirectory(prefix="mintaka-adopt-") as scratch:
            into = Path(scratch)
            read = registrar.fetch_served(endpoint, route, into)
            if read is None:
                return None
            if not read.path.resolve().is_relative_to(into.resolve()):
                raise ValidationError(
                    f"endpoint {endpoint} route {route}: the backend wrote its bytes outside {into}"
                )
            return self.platform.artifacts.ingest(read.path), read.slot

    def _prepare(
        self,
        name: str,
        *,
        reason: str,
        owner: str | None,
        tier: RiskTier | str | None,
        versions: Iterable[int | str] | None,
        artifacts: Mapping[int, str | Path] | None,
        run_id: str | None,
        dataset_ids: Sequence[str],
        code_commit: str | None,
        pipeline_run_id: str | None,
        flavor: Flavor | str | None,
        served: tuple[str, str] | None = None,
        features: Sequence[str] | str = (),
    ) -> _ModelArgs:
        """An adoption's arguments checked, and what the store records for them: everything
        that would refuse it, before the cloud is read or written."""
        platform = self.platform
        name = _cloud_name(validate_model_name, name, "model_names")
        reason = _reason(reason)
        owner = validate_owner(owner)
        risk_tier = None if tier is None else parse_enum(RiskTier, tier, "risk tier")
        given_flavor = None if flavor is None else parse_enum(Flavor, flavor, "flavor")
        signature = features_signature(features) if features else Signature()
        wanted = None if versions is None else sorted({validate_version(v) for v in versions})
        supplied = {validate_version(k): Path(v) for k, v in (artifacts or {}).items()}
        if code_commit is not None and not code_commit.strip():
            raise ValidationError("code commit must not be empty")
        if pipeline_run_id is not None and not pipeline_run_id.strip():
            raise ValidationError("pipeline run id must not be empty")
        if run_id is not None and not run_id.strip():
            raise ValidationError(
                "the run id is blank: give the run that produced the versions, or no run at all"
            )
        with platform.store.read() as conn:
            sql = Sql(conn)
            model_row = sql.one(
                "SELECT owner, risk_tier, backend FROM models WHERE name = :name", {"name": name}
            )
            if model_row is not None and model_row[2] != platform.backend.name:
                raise _recorded_elsewhere("model", name, model_row[2], platform.backend.name)
            run = None if run_id is None else platform._run_for_version(sql, run_id)
            datasets = list(dataset_ids)
            if run is not None:
                datasets = list(dict.fromkeys([*run.dataset_ids, *datasets]))
            platform._require_datasets(conn, datasets)
            recorded = _recorded_versions(sql, name)
        _refuse_stray_artifacts(
            name, supplied, set(supplied if wanted is None else wanted) - recorded
        )
        if risk_tier is not None and model_row is not None:
            platform._refuse_tier_below_model(name, risk_tier, RiskTier(model_row[1]))
        return _ModelArgs(
            name=name,
            reason=reason,
            owner=owner or (model_row[0] if model_row is not None else platform.actor),
            owner_given=bool(owner),
            risk_tier=risk_tier
            or (RiskTier(model_row[1]) if model_row is not None else RiskTier.MEDIUM),
            tier_given=risk_tier is not None,
            flavor=given_flavor,
            wanted=wanted,
            supplied=supplied,
            run=run,
            datasets=datasets,
            code_commit=code_commit,
            pipeline_run_id=pipeline_run_id,
            recorded=recorded,
            served=served,
            signature=signature,
        )

    def _refuse_missing_versions(self, name: str, missing: Sequence[int]) -> None:
        """Refuse adopting versions the cloud's observation left out: ``Conflict`` naming the
        status of those the registry still holds (a registration that failed or is not finished:
        no model to serve yet), else ``NotFound``."""
        registry = self.platform._area(Capability.REGISTRY, ModelRegistry)
        held: dict[int, str] = {}
        for number in missing:
            try:
                found = registry.get_version(name, number)
            except NotFound:
                continue
            held[number] = str(found.extra.get("status") or "not ready")
        if held:
            states = ", ".join(f"version {v} is {status}" for v, status in held.items())
            raise Conflict(
                f"cannot adopt {name!r}: {states} in the cloud; only versions whose registration "
                "finished can be adopted (adopt it once it is ready, or leave it out)"
            )
        raise NotFound(f"the cloud has no version {list(missing)} of {name!r}")

    def _adopt_model(
        self,
        args: _ModelArgs,
        on_fetch: Callable[[BackendVersion, int, int], None] | None = None,
    ) -> ModelAdoption:
        from mintaka.platform import _INSERT_VERSION, _parse

        platform = self.platform
        name, supplied, run, datasets = args.name, args.supplied, args.run, args.datasets
        wanted, recorded, code_commit = args.wanted, args.recorded, args.code_commit
        observer = platform._area(Capability.SYNC, StateObserver)
        observed = observer.observe_model(name)  # NotFound: the cloud has no such model
        cloud = {v.version: v for v in observed.versions}
        missing = [v for v in wanted or () if v not in cloud]
        if missing:
            self._refuse_missing_versions(name, missing)
        candidates = sorted(set(cloud) if wanted is None else set(wanted))
        already = tuple(v for v in candidates if v in recorded)
        todo = [cloud[v] for v in candidates if v not in recorded]
        _refuse_stray_artifacts(name, supplied, [v.version for v in todo])
        if not todo:
            return ModelAdoption(name, (), already, ())
        self._check_adoptable(name, todo, supplied)
        owner_name = args.owner
        decision = platform.governance.decide(
            ADOPT_MODEL,
            name,
            [
                Control(
                    "owner-known", bool(owner_name), "a model version needs an accountable owner"
                )
            ],
        )

        # Versions whose cloud origin names a run Mintaka recorded are linked to it, unless the
        # adopter named a run for all of them.
        linked = {} if run is not None else self._recorded_runs_of(todo)
        fetched = []
        flavors: dict[int, Flavor] = {}
        for index, theirs in enumerate(todo):
            if on_fetch is not None and theirs.version not in args.fetched:
                on_fetch(theirs, index, len(todo))
            item = self._bytes_of(
                theirs, supplied.get(theirs.version), args.fetched.get(theirs.version)
            )
            flavors[theirs.version] = args.flavors.get(theirs.version) or _flavor_of(
                f"{theirs.name}:{theirs.version}", item.stored, args.flavor
            )
            fetched.append(item)
        stages = platform.supports(Capability.REGISTRY_STAGES)
        adopted: list[ModelVersion] = []
        raced: list[int] = []  # recorded by another adoption since this one read the store
        events: list[AuditEvent] = []
        # a tier below the model's, recorded meanwhile, is the policy's refusal (policy.deny)
        with platform._tier_refusal(name, args.risk_tier, None), platform.store.write() as conn:
            sql = Sql(conn)
            now = platform._now()
            platform._record_model(sql, name, owner_name, args.risk_tier, "", now)
            risk, owner_name = self._model_in_force(sql, args)
            taken = _recorded_versions(sql, name)
            recorded_decision: dict[str, Any] | None = None
            for item in fetched:
                theirs, stored = item.version, item.stored
                if theirs.version in taken:  # adopted by someone else meanwhile
                    raced.append(theirs.version)
                    continue
                if not platform.artifacts.exists(stored.digest):
                    raise NotFound(
                        f"artifact {stored.digest} left the store before it was recorded"
                    )
                version_run = run or linked.get(theirs.version)
                version_datasets = (
                    datasets
                    if version_run is run or version_run is None
                    else list(dict.fromkeys([*version_run.dataset_ids, *datasets]))
                )
                record = _parse(
                    ModelVersion,
                    id=self._version_id(sql, theirs),
                    name=name,
                    version=theirs.version,
                    artifact_uri=stored.uri,
                    artifact_digest=stored.digest,
                    flavor=flavors[theirs.version],
                    signature=args.signature,
                    tags=dict(theirs.tags),
                    owner=owner_name,
                    risk_tier=risk,
                    stage=(theirs.stage or Stage.NONE) if stages else Stage.NONE,
                    run_id=version_run.id if version_run is not None else None,
                    code_commit=code_commit
                    or (version_run.code_commit if version_run is not None else None)
                    or (theirs.origin.code_commit if theirs.origin else None),
                    dataset_ids=tuple(version_datasets),
                    created_at=now,
                    backend=platform.backend.name,
                    backend_ids=dict(theirs.backend_ids),
                )
                platform._record_artifact(sql, stored, now)
                if not sql.run(_INSERT_VERSION, platform._version_row(record)):
                    raced.append(theirs.version)
                    continue
                if record.tags:
                    sql.run_many(
                        "INSERT INTO model_tags (version_id, key, value) "
                        "VALUES (:id, :key, :value)",
                        [{"id": record.id, "key": k, "value": v} for k, v in record.tags.items()],
                    )
                platform._record_version_lineage(
                    conn,
                    record,
                    version_run.dataset_ids if version_run is not None else (),
                    attrs={
                        "adopted_by": platform.actor,
                        "adopted_at": now.isoformat(),
                        **(theirs.origin.attrs() if theirs.origin else {}),
                    },
                )
                if args.pipeline_run_id is not None:
                    node = _pipeline_run_node(args.pipeline_run_id, platform.backend.name)
                    produced = LineageEdge(
                        src=node.id,
                        dst=f"{NodeKind.MODEL_VERSION.value}:{record.id}",
                        kind=EdgeKind.PRODUCED,
                    )
                    platform.lineage.add(conn, [node], [produced])
                if recorded_decision is None:
                    recorded_decision = platform.governance.record(conn, decision)
                events.append(
                    platform._audit(
                        conn,
                        ADOPT_MODEL,
                        record.ref,
                        id=record.id,
                        digest=record.artifact_digest,
                        flavor=record.flavor,
                        source=theirs.artifact_uri,
                        backend_ids=dict(theirs.backend_ids),
                        bytes_from="adopter" if theirs.version in supplied else "cloud",
                        origin=theirs.origin.model_dump() if theirs.origin else None,
                        run_from=None
                        if version_run is None
                        else ("adopter" if version_run is run else "cloud"),
                        run_id=record.run_id,
                        datasets=list(record.dataset_ids),
                        code_commit=record.code_commit,
                        pipeline_run=args.pipeline_run_id,
                        registered_from=None
                        if args.served is None
                        else {"endpoint": args.served[0], "route": args.served[1]},
                        tier=record.risk_tier,
                        stage=record.stage.value,
                        reason=args.reason,
                        decision=recorded_decision,
                    )
                )
                adopted.append(record)
            events.extend(self._record_aliases(conn, name, observed, {v.version for v in adopted}))
        platform._after_commit(events)
        already = tuple(sorted({*already, *raced}))
        if not adopted:
            return ModelAdoption(name, (), already, ())
        fresh = tuple(platform.get_model_version(name, v.version) for v in adopted)
        findings = self._model_findings(fresh, cloud, observed.aliases)
        return ModelAdoption(name, fresh, already, tuple(findings))

    def _model_in_force(self, sql: Sql, args: _ModelArgs) -> tuple[RiskTier, str]:
        """The tier and owner to record the versions with, read from the model's row in the
        transaction that records them (the row is there: this adoption's or, kept, one recorded
        by another adoption or a registration since the arguments were checked). Those given,
        else the model's; ``Conflict`` when the model is recorded for another backend,
        ``_TierBelowModel`` when the tier given is below the model's."""
        platform = self.platform
        row = sql.one(
            "SELECT risk_tier, backend, owner FROM models WHERE name = :name", {"name": args.name}
        )
        assert row is not None  # recorded in this transaction, or kept
        if row[1] != platform.backend.name:
            raise _recorded_elsewhere("model", args.name, row[1], platform.backend.name)
        model_tier = RiskTier(row[0])
        owner = args.owner if args.owner_given else str(row[2])
        if not args.tier_given:
            return model_tier, owner
        if _tier_below(args.risk_tier, model_tier):
            raise _TierBelowModel(model_tier)
        return args.risk_tier, owner

    def _recorded_runs_of(self, versions: Sequence[BackendVersion]) -> dict[int, _RunInputs]:
        """The recorded run each version's cloud origin names (its ``run_ids`` among the run's
        backend ids), by version number; a version naming none, or an unrecorded one, is left
        out."""
        from mintaka.platform import _json

        platform = self.platform
        wanted = {v.version: v.origin.run_ids for v in versions if v.origin and v.origin.run_ids}
        if not wanted:
            return {}
        found: dict[int, _RunInputs] = {}
        with platform.store.read() as conn:
            sql = Sql(conn)
            runs = [
                (run_id, dict(_json(ids)))
                for run_id, ids in sql.rows(
                    "SELECT id, backend_ids FROM runs WHERE backend = :backend",
                    {"backend": platform.backend.name},
                )
            ]
            for number, ids in wanted.items():
                for run_id, backend_ids in runs:
                    if ids.items() <= backend_ids.items():
                        found[number] = platform._run_for_version(sql, run_id)
                        break
        return found

    def _check_adoptable(
        self, name: str, todo: Sequence[BackendVersion], supplied: Mapping[int, Path]
    ) -> None:
        """Everything that would refuse the adoption, checked before any byte is read."""
        platform = self.platform
        if not platform.supports(Capability.REGISTRY_FETCH):
            lacking = [v.version for v in todo if v.version not in supplied]
            if lacking:
                raise UnsupportedCapability(
                    platform.backend.name,
                    Capability.REGISTRY_FETCH.value,
                    f"it cannot read the bytes of {name} versions {lacking} back; give them "
                    "with --artifact VERSION=PATH",
                )
        for theirs in todo:
            for key, value in theirs.tags.items():
                try:
                    validate_tag(key, value)
                except ValidationError as exc:
                    raise ValidationError(
                        f"{name}:{theirs.version} carries a tag Mintaka cannot record ({exc}); "
                        "rename it in the cloud, then adopt"
                    ) from exc
        for path in supplied.values():
            manifest_of(path)  # a missing or empty artifact fails here, before any fetch

    def _bytes_of(
        self, theirs: BackendVersion, supplied: Path | None, fetched: StoredArtifact | None = None
    ) -> _Fetched:
        """The version's bytes in the artifact store, from the adopter, as already read
        (``fetched``), or read from the cloud."""
        platform = self.platform
        ref = f"{theirs.name}:{theirs.version}"
        if supplied is not None:
            stored = platform.artifacts.ingest(supplied)
        elif fetched is not None:
            stored = fetched
        else:
            fetcher = platform._area(Capability.REGISTRY_FETCH, ArtifactFetch)
            with tempfile.TemporaryDirectory(prefix="mintaka-adopt-") as scratch:
                into = Path(scratch)
                path = fetcher.fetch_artifact(theirs.name, theirs.version, into)
                if not path.resolve().is_relative_to(into.resolve()):
                    raise ValidationError(f"{ref}: the backend wrote its bytes outside {into}")
                stored = platform.artifacts.ingest(path)
        if theirs.artifact_digest is not None and theirs.artifact_digest != stored.digest:
            raise Conflict(
                f"{ref}: the cloud records digest {theirs.artifact_digest}, but its bytes "
                f"digest to {stored.digest}"
            )
        return _Fetched(theirs, stored)

    def _version_id(self, sql: Sql, theirs: BackendVersion) -> str:
        """The Mintaka id the cloud carries (a version a cloud pipeline registered, or one a
        store since lost recorded), unless this store already uses it; else a new one."""
        candidate = theirs.mintaka_id
        if candidate and not sql.one(
            "SELECT 1 FROM model_versions WHERE id = :id", {"id": candidate}
        ):
            return candidate
        return self.platform.ids.new("mv")

    def _record_aliases(
        self, conn: Any, name: str, observed: ObservedModel, adopted: set[int]
    ) -> list[AuditEvent]:
        """The cloud's aliases onto adopted versions, where the store has no such alias."""
        events: list[AuditEvent] = []
        if observed.aliases:
            self.platform.governance.note_policy(conn)  # which aliases count is the policy's
        for alias, version in sorted(observed.aliases.items()):
            if alias in RESERVED_ALIASES or version not in adopted or not _usable_alias(alias):
                continue
            inserted = conn.execute(
                self.platform._insert(model_aliases)
                .values(name=name, alias=alias, version=version)
                .on_conflict_do_nothing(index_elements=["name", "alias"])
            ).rowcount
            if inserted:
                events.append(
                    self.platform._audit(
                        conn, "model.alias.set", f"{name}@{alias}", version=version, adopted=True
                    )
                )
        return events

    def _model_findings(
        self,
        adopted: Sequence[ModelVersion],
        cloud: Mapping[int, BackendVersion],
        aliases: Mapping[str, int],
    ) -> list[str]:
        platform = self.platform
        governance = platform.governance
        findings: list[str] = []
        numbers = {v.version for v in adopted}
        by_number = {v.version: v for v in adopted}
        for alias, number in sorted(aliases.items()):
            if alias in RESERVED_ALIASES or number not in numbers:
                continue
            name = adopted[0].name
            if not _usable_alias(alias):
                findings.append(
                    f"the cloud's alias {alias!r} on {name}:{number} is not recorded "
                    f"(aliases are {ALIAS_RULE}): rename it in the cloud; sync reports it "
                    "until then"
                )
            elif alias not in by_number[number].aliases:  # the record already had it elsewhere
                try:
                    kept = platform.get_model_version(name, alias=alias).version
                except NotFound:
                    continue
                findings.append(
                    f"the cloud's alias {alias!r} points at {name}:{number}, the record keeps it "
                    f"on {name}:{kept}: `mintaka models alias {name}:{number} {alias}` records "
                    f"the cloud's choice, `mintaka models alias {name}:{kept} {alias}` puts the "
                    "record back in the cloud; sync reports it until then"
                )
        for version in adopted:
            production = [
                "@" + a for a in version.aliases if a in governance.policy.production_aliases
            ]
            if version.stage is Stage.PRODUCTION:
                production.append("the production stage")
            if production:
                unmet = [c.describe() for c in governance.production_controls(version) if not c.met]
                if unmet:
                    findings.append(
                        f"{version.ref} holds {', '.join(production)} but "
                        f"does not meet the production controls: {'; '.join(unmet)}"
                    )
            theirs = cloud[version.version]
            if (
                platform.supports(Capability.REGISTRY_APPROVAL)
                and governance.policy.controls(version.risk_tier).signs_off
                and theirs.approval is ApprovalStatus.APPROVED
                and not governance.approvals(version)
            ):
                findings.append(
                    f"{version.ref} is approved in the cloud, but Mintaka holds no approval of "
                    f"its bytes: approve it (mintaka approve {version.ref}) or sync will report it"
                )
            if (
                platform.supports(Capability.REGISTRY_APPROVAL)
                and theirs.approval is ApprovalStatus.REJECTED
            ):
                findings.append(
                    f"{version.ref} is rejected in the cloud; Mintaka records no rejection, so it "
                    "counts as not approved, and sync reports the rejection until it is approved "
                    f"(mintaka approve {version.ref}) or set back to pending in the cloud"
                )
        bare = [v for v in adopted if not v.run_id and not v.dataset_ids]
        if bare:
            produced = sorted(
                {o.produced_by for v in bare if (o := cloud[v.version].origin) and o.produced_by}
            )
            said = (
                f"; the cloud names what produced them: {', '.join(produced)}" if produced else ""
            )
            which = "" if len(bare) == len(adopted) else f" ({', '.join(v.ref for v in bare)})"
            findings.append(
                "no training run or dataset was given or found: the adopted versions' lineage "
                f"starts at the versions themselves{which}{said}"
            )
        return findings

    # -- endpoints ------------------------------------------------------------------------------

    def adopt_endpoint(
        self, name: str, *, reason: str, capture: CaptureConfig | None = None
    ) -> EndpointAdoption:
        """Record the live endpoint ``name`` and its current traffic as its first deployment.

        Every route must serve a version the store records (adopt the model first). The traffic
        gate is evaluated and recorded, not enforced: the traffic is already live. ``capture``
        also turns the cloud's request/response capture on (``Capability.MONITORING_CAPTURE``),
        so monitors get the endpoint's traffic: the one change adoption makes to the cloud, and
        only when asked (on SageMaker it deploys a new endpoint config). It is applied to an
        endpoint already recorded as well, and audited as ``endpoint.capture`` each time it is
        sent, with ``again`` when it is the endpoint's latest recorded capture already (sent
        again, it changes the cloud back where the capture was changed outside Mintaka).

        An endpoint already recorded is adopted again (a new deployment, ``readopted``) only when
        the cloud serves other routes or other live weights than the record holds; one that is
        not in service in the cloud is refused. While a native rollout's end on it is not
        recorded, adopting it (again, or its capture) is refused before any cloud call, as any
        other change is (``ServingService.check_native_rollout_recorded``): either would leave
        how the rollout ended unknowable, or read as the cloud rolling it back. An endpoint the
        store records for another backend is refused (``Conflict``) before any cloud call.
        """
        platform = self.platform
        name = _cloud_name(validate_endpoint_name, name, "endpoint_names")
        reason = _reason(reason)
        capturer = (
            None
            if capture is None
            else platform._area(Capability.MONITORING_CAPTURE, CaptureSource)
        )
        with platform.store.read() as conn:
            known = self._recorded_endpoint(conn, name)
        seen = None
        if known is not None:
            platform.serving.check_native_rollout_recorded(name)
            seen = platform.serving._seen(name)
        cloud = None if known is None else self._changed_in_cloud(name)
        if known is not None and cloud is None:
            self._capture(name, capturer, capture)
            return self._already_adopted(name)
        if cloud is None:
            cloud = platform._area(Capability.SERVING, Serving).get_endpoint(name)
        if cloud.status not in (EndpointStatus.IN_SERVICE, EndpointStatus.KILLED):
            raise ValidationError(
                f"endpoint {name!r} is not in service in the cloud ({cloud.status.value}): its "
                "traffic is no known-good state to adopt; adopt it once it serves"
            )
        unreadable = cloud.extra.get("routes_unreadable")  # where the backend says why
        if unreadable:
            raise ValidationError(
                f"endpoint {name!r}: which versions it serves cannot be read from the cloud: "
                f"{unreadable}"
            )
        unread = sorted(set(cloud.traffic.weights) - {r.name for r in cloud.routes})
        if not cloud.routes or unread:
            hint = "it cannot be adopted as it stands"
            if unread and platform.supports(Capability.REGISTRY_FROM_SERVING):
                hint = (
                    "register what it serves as a version first ("
                    + "; ".join(
                        f"mintaka adopt served {name} {route} --model NAME" for route in unread
                    )
                    + ")"
                )
            raise ValidationError(
                f"endpoint {name!r}: Mintaka reads "
                + (f"no route to a registered version for {unread}" if unread else "no routes")
                + " from what the cloud serves there (a model that is no registered version, or "
                f"a slot name it cannot hold); {hint}"
            )
        versions: dict[str, ModelVersion] = {}
        unrecorded: list[str] = []
        for route in cloud.routes:
            try:
                versions[route.name] = platform.get_model_version(route.model, route.version)
            except NotFound:
                unrecorded.append(f"{route.model}:{route.version} (route {route.name})")
        if unrecorded:
            models_named = sorted({r.split(":", 1)[0] for r in unrecorded})
            raise ValidationError(
                f"endpoint {name!r} serves versions Mintaka does not record: "
                f"{', '.join(unrecorded)}; adopt them first "
                f"({'; '.join(f'mintaka adopt model {m}' for m in models_named)})"
            )
        killed = cloud.status is EndpointStatus.KILLED
        change = TrafficChange(
            endpoint=name,
            action=ADOPT_ENDPOINT,
            routes=cloud.routes,
            traffic=cloud.traffic,
            versions=versions,
            killed=killed,
        )
        governance = platform.governance
        decision = governance.evaluate(ADOPT_ENDPOINT, name, traffic_controls(change, governance))
        now = platform._now()
        readopted = known is not None
        with platform.store.write() as conn:
            if self._recorded_endpoint(conn, name) is not None and not readopted:
                adopted_meanwhile = True
                events: list[AuditEvent] = []
            else:
                adopted_meanwhile = False
                if seen is not None:
                    _check_readoptable(conn, seen)
                if not readopted:
                    platform.serving._insert_endpoint(
                        conn,
                        cloud.model_copy(
                            update={"status": EndpointStatus.IN_SERVICE} if killed else {}
                        ),
                        killed=killed,
                        at=now,
                    )
                events = platform.serving._record_deployment(
                    conn,
                    name,
                    cloud.routes,
                    cloud.traffic,
                    versions,
                    RolloutStrategy.DIRECT,
                    reason,
                    decision=decision,
                    action=ADOPT_ENDPOINT,
                    known_good=decision.allowed,
                    # replayed by the inventory at an instant
                    details={"killed": killed, **({"readopted": True} if readopted else {})},
                )
        platform._after_commit(events)
        self._capture(name, capturer, capture)
        endpoint = platform.serving.get_endpoint(name)
        if adopted_meanwhile:
            return self._already_adopted(name)
        return EndpointAdoption(endpoint, True, decision.allowed, decision.unmet)

    def _recorded_endpoint(self, conn: Connection, name: str) -> str | None:
        """The backend the store records endpoint ``name`` for; ``Conflict`` when it is not this
        platform's (a home switched backends: the cloud's endpoint of that name is another one,
        not to be recorded onto the old record nor changed for it)."""
        backend = conn.execute(
            select(endpoints.c.backend).where(endpoints.c.name == name)
        ).scalar_one_or_none()
        if backend is not None and backend != self.platform.backend.name:
            raise _recorded_elsewhere("endpoint", name, backend, self.platform.backend.name)
        return backend

    def _changed_in_cloud(self, name: str) -> Endpoint | None:
        """The cloud's endpoint ``name``, recorded already, when it serves other routes or other
        traffic than the record holds (replaced or changed outside Mintaka): adopting it again
        records what it serves now. ``None`` when they agree, or when either is killed (a kill
        switch is settled with ``kill`` and ``unkill``, not by adoption)."""
        recorded = self.platform.serving.get_endpoint(name)
        try:
            cloud = self.platform._area(Capability.SERVING, Serving).get_endpoint(name)
        except NotFound:
            return None  # deleted in the cloud: `mintaka endpoints delete` drops the record
        if EndpointStatus.KILLED in (recorded.status, cloud.status):
            return None
        was, now = recorded.traffic, cloud.traffic
        native = self.platform.backend.support(Capability.SERVING_SHADOW) is Support.NATIVE
        recorded_view, cloud_view = traffic_views(was, now, native)
        if recorded_view == cloud_view and {
            (r.name, r.model, r.version) for r in recorded.routes
        } == {(r.name, r.model, r.version) for r in cloud.routes}:
            return None
        if not native and was.shadow and not now.shadow:
            # Core mirrors the shadow share here, so the cloud does not show it: it stays as
            # recorded while its route is still there and takes no live traffic.
            try:
                shadowed = TrafficMap(
                    weights=now.weights, shadow=was.shadow, shadow_percent=was.shadow_percent
                )
            except ValueError:
                shadowed = None
            if shadowed is not None and was.shadow in {r.name for r in cloud.routes}:
                cloud = cloud.model_copy(update={"traffic": shadowed})
        return cloud

    def _already_adopted(self, name: str) -> EndpointAdoption:
        """An endpoint the store records: nothing adopted now; ``known_good`` as recorded."""
        history = self.platform.serving.deployment_history(name)
        known_good = bool(history) and history[-1].known_good
        return EndpointAdoption(self.platform.serving.get_endpoint(name), False, known_good, ())

    def _capture(
        self, name: str, capturer: CaptureSource | None, config: CaptureConfig | None
    ) -> None:
        """Send ``config`` to the backend and audit it (``endpoint.capture``) every time: the
        backend does not say whether the cloud already captured so, and a capture changed
        outside Mintaka is changed back. ``again`` marks one this endpoint's latest recorded
        capture already was (since it was created or adopted: not an earlier endpoint's)."""
        if capturer is None or config is None:
            return
        capturer.configure_capture(name, config)
        platform = self.platform
        wanted = config.model_dump(mode="json")
        with platform.store.write() as conn:
            latest = conn.execute(
                select(audit_events.c.action, audit_events.c.canonical)
                .where(
                    audit_events.c.subject == name,
                    audit_events.c.action.in_(("endpoint.create", ADOPT_ENDPOINT, _CAPTURE)),
                )
                .order_by(audit_events.c.seq.desc())
                .limit(1)
            ).first()
            details: dict[str, Any] = {"capture": wanted}
            if (
                latest is not None
                and latest.action == _CAPTURE
                and json.loads(bytes(latest.canonical)).get("details", {}).get("capture") == wanted
            ):
                details["again"] = True
            event = platform._audit(conn, _CAPTURE, name, **details)
        platform._after_commit([event])


__all__ = [
    "ADOPT_ENDPOINT",
    "ADOPT_MODEL",
    "Candidate",
    "EndpointAdoption",
    "MigrationService",
    "ModelAdoption",
]


def _check_readoptable(conn: Connection, seen: _Seen) -> None:
    """Refuse (``Conflict``) to record the cloud's endpoint over a kill or a change recorded
    since the endpoint was ``seen``, before the cloud was read: that read may predate the kill
    or change, which would no longer be in force. Read with the endpoint's row locked, in the
    transaction that would record the adoption."""
    try:
        _check_unchanged(conn, seen, ADOPT_ENDPOINT)
    except Conflict as exc:
        raise Conflict(
            f"endpoint {seen.endpoint.name!r} was killed or changed while it was read from the "
            "cloud to be adopted again; nothing is recorded: look at the endpoint, then adopt "
            "it again if the cloud still differs"
        ) from exc
