"""Sync: compare the store's records of managed models with what the cloud reports now.

The control-plane store is the source of truth for governance records and the cloud for cloud
resources, so sync changes neither side: it reports every difference it finds. The first time a
difference is seen it is appended to the audit trail as a ``sync.difference`` event; while it stays
the same, later syncs report it again (with its original detection time) but do not audit it again.
A difference that has gone away is closed with a ``sync.resolved`` event, so it is audited afresh
if it ever comes back. The open set is read back from the audit trail itself, which therefore
stays the one record of what sync saw and when.

Compared, per model recorded for the platform's backend: the version numbers (a version deleted in
the cloud is ``version.missing``), each version's artifact digest, tags, (where the backend
projects stages) stage and (where it projects approvals) approval status, and the aliases. Aliases
the clouds reserve for themselves (``latest``, ``default``) are ignored. Per endpoint recorded for
the backend: whether it still exists, and its live traffic weights (and its shadow route, where
the cloud itself holds the shadow), and which model version each route serves, except while the
cloud still walks a native rollout whose end is already recorded.

The approval status core stands behind is what governance projects onto the cloud's approval
field: ``pending`` until a version has approvals its audit chain records (a row written into the
approvals table outside Mintaka is not one), then ``approved`` once its approval controls are
met (approvals of these bytes, by the roles and in the number the policy asks) and ``pending``
while they are not. A cloud that reports no approval status for a version (one that never had
core's projected onto it) is not compared, nor is a version whose risk tier names no approver
role: no one can approve it through Mintaka, so core has no verdict on that field. Core never
projects a rejection, so a version rejected in the cloud is reported (a rejection is worth
seeing) until it is approved through Mintaka or set back to pending in the cloud.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, select

from mintaka.capabilities import Capability
from mintaka.domain.discovery import Difference, ObservedModel
from mintaka.domain.names import RESERVED_ALIASES
from mintaka.domain.registry import ApprovalStatus, ModelVersion, RiskTier, Stage
from mintaka.domain.serving import Endpoint, EndpointStatus, TrafficMap
from mintaka.errors import NotFound
from mintaka.interfaces import StateObserver
from mintaka.store.schema import (
    audit_events,
    model_aliases,
    model_tags,
    model_versions,
    models,
)

if TYPE_CHECKING:
    from mintaka.domain.audit import AuditEvent
    from mintaka.domain.governance import Approval
    from mintaka.platform import Platform

DIFFERENCE_ACTION = "sync.difference"
RESOLVED_ACTION = "sync.resolved"

Value = dict[str, Any] | str | int | None


class DifferenceKind(StrEnum):
    """What kind of disagreement a :class:`~mintaka.domain.discovery.Difference` reports."""

    MODEL_MISSING = "model.missing"  # recorded model, absent from the cloud
    VERSION_MISSING = "version.missing"  # recorded version, absent from the cloud
    VERSION_UNRECORDED = "version.unrecorded"  # version in the cloud that the store never saw
    DIGEST = "version.digest"  # the cloud's artifact digest is not the recorded one
    TAGS = "version.tags"
    STAGE = "version.stage"
    APPROVAL = "version.approval"  # the cloud's approval status is not the one core projects
    ALIAS = "alias"  # an alias points elsewhere, or exists on one side only
    ENDPOINT_MISSING = "endpoint.missing"  # recorded endpoint, absent from the cloud
    TRAFFIC = "endpoint.traffic"  # the cloud routes traffic differently from the record
    ROUTES = "endpoint.routes"  # a route serves another version than the recorded one
    KILLED = "endpoint.killed"  # the kill switch is pulled on one side only


@dataclass(frozen=True)
class RecordedVersion:
    version: int
    id: str
    digest: str
    stage: Stage
    tags: dict[str, str] = field(default_factory=dict)
    tier: RiskTier = RiskTier.MEDIUM
    # The approval status core projects (None: not compared, the backend projects none).
    approval: ApprovalStatus | None = None


@dataclass(frozen=True)
class RecordedModel:
    """A managed model as the control-plane store records it."""

    name: str
    versions: dict[int, RecordedVersion]
    aliases: dict[str, int]


def recorded_models(conn: Connection, backend: str) -> list[RecordedModel]:
    """Every model the store records for ``backend``, with versions, tags and aliases."""
    names = list(
        conn.execute(
            select(models.c.name).where(models.c.backend == backend).order_by(models.c.name)
        ).scalars()
    )
    found: list[RecordedModel] = []
    for name in names:
        rows = conn.execute(
            select(
                model_versions.c.id,
                model_versions.c.version,
                model_versions.c.artifact_digest,
                model_versions.c.stage,
                model_versions.c.risk_tier,
            ).where(model_versions.c.name == name)
        ).all()
        tags: dict[str, dict[str, str]] = {}
        ids = [row.id for row in rows]
        if ids:
            for tag in conn.execute(
                select(model_tags.c.version_id, model_tags.c.key, model_tags.c.value).where(
                    model_tags.c.version_id.in_(ids)
                )
            ):
                tags.setdefault(tag.version_id, {})[tag.key] = tag.value
        versions = {
            int(row.version): RecordedVersion(
                version=int(row.version),
                id=row.id,
                digest=row.artifact_digest,
                stage=Stage(row.stage),
                tags=tags.get(row.id, {}),
                tier=RiskTier(row.risk_tier),
            )
            for row in rows
        }
        aliases = {
            row.alias: int(row.version)
            for row in conn.execute(
                select(model_aliases.c.alias, model_aliases.c.version).where(
                    model_aliases.c.name == name
                )
            )
        }
        found.append(RecordedModel(name=name, versions=versions, aliases=aliases))
    return found


def compare(
    recorded: RecordedModel,
    observed: ObservedModel | None,
    *,
    at: datetime,
    stages: bool,
) -> list[Difference]:
    """The differences between one recorded model and the cloud's view of it (``None``: absent)."""

    def diff(kind: DifferenceKind, subject: str, was: Value, now: Value) -> Difference:
        return Difference(
            kind=kind.value, subject=subject, recorded=was, observed=now, detected_at=at
        )

    name = recorded.name
    if observed is None:
        return [
            diff(
                DifferenceKind.MODEL_MISSING,
                name,
                {"versions": sorted(recorded.versions)},
                None,
            )
        ]
    found: list[Difference] = []
    cloud = {v.version: v for v in observed.versions}
    for number in sorted(set(recorded.versions) | set(cloud)):
        subject = f"{name}:{number}"
        mine, theirs = recorded.versions.get(number), cloud.get(number)
        if theirs is None:
            assert mine is not None
            found.append(
                diff(
                    DifferenceKind.VERSION_MISSING,
                    subject,
                    {"id": mine.id, "digest": mine.digest},
                    None,
                )
            )
            continue
        if mine is None:
            found.append(
                diff(
                    DifferenceKind.VERSION_UNRECORDED,
                    subject,
                    None,
                    {"digest": theirs.artifact_digest, "mintaka_id": theirs.mintaka_id},
                )
            )
            continue
        if theirs.artifact_digest is not None and theirs.artifact_digest != mine.digest:
            found.append(diff(DifferenceKind.DIGEST, subject, mine.digest, theirs.artifact_digest))
        if dict(theirs.tags) != mine.tags:
            found.append(diff(DifferenceKind.TAGS, subject, dict(mine.tags), dict(theirs.tags)))
        if (
            mine.approval is not None
            and theirs.approval is not None
            and theirs.approval is not mine.approval
        ):
            found.append(
                diff(DifferenceKind.APPROVAL, subject, mine.approval.value, theirs.approval.value)
            )
        if stages and (theirs.stage or Stage.NONE) is not mine.stage:
            found.append(
                diff(
                    DifferenceKind.STAGE,
                    subject,
                    mine.stage.value,
                    (theirs.stage or Stage.NONE).value,
                )
            )
    cloud_aliases = {a: v for a, v in observed.aliases.items() if a not in RESERVED_ALIASES}
    for alias in sorted(set(recorded.aliases) | set(cloud_aliases)):
        was, now = recorded.aliases.get(alias), cloud_aliases.get(alias)
        if was != now:
            found.append(diff(DifferenceKind.ALIAS, f"{name}@{alias}", was, now))
    return found


@dataclass(frozen=True)
class OpenDifference:
    recorded: Any
    observed: Any
    detected_at: datetime


def open_differences(conn: Connection) -> dict[tuple[str, str], OpenDifference]:
    """Differences audited by earlier syncs and not resolved since, keyed by (kind, subject)."""
    rows = conn.execute(
        select(
            audit_events.c.action,
            audit_events.c.at,
            audit_events.c.subject,
            audit_events.c.canonical,
        )
        .where(audit_events.c.action.in_([DIFFERENCE_ACTION, RESOLVED_ACTION]))
        .order_by(audit_events.c.seq)
    )
    current: dict[tuple[str, str], OpenDifference] = {}
    for row in rows:
        details = json.loads(bytes(row.canonical)).get("details", {})
        key = (str(details.get("kind")), str(row.subject))
        if row.action == RESOLVED_ACTION:
            current.pop(key, None)
        else:
            current[key] = OpenDifference(
                recorded=details.get("recorded"),
                observed=details.get("observed"),
                detected_at=datetime.fromisoformat(row.at),
            )
    return current


def with_projected_approvals(
    platform: Platform, recorded: Sequence[RecordedModel]
) -> list[RecordedModel]:
    """``recorded`` with the approval status core projects onto the cloud for each version; a
    version whose tier names no approver role (no one can approve it) has none to compare.

    Only approvals the audit chain records count, as governance counts them: a row written
    into the approvals table outside Mintaka changes nothing. They are read in one go for
    every version that has a verdict."""
    governance = platform.governance
    policy = governance.policy
    judged: dict[str, ModelVersion] = {}
    for model in recorded:
        if any(policy.controls(v.tier).signs_off for v in model.versions.values()):
            for stored in platform.list_versions(model.name):
                if policy.controls(stored.risk_tier).signs_off:
                    judged[stored.id] = stored
    signed = governance.approval_split(list(judged.values()))
    now = platform._now()
    projected: list[RecordedModel] = []
    for model in recorded:
        versions: dict[int, RecordedVersion] = {}
        for number, version in model.versions.items():
            record = judged.get(version.id)
            status = None
            if record is not None:
                status = _projected_status(platform, record, signed[record.id][0], now)
            versions[number] = replace(version, approval=status)
        projected.append(replace(model, versions=versions))
    return projected


def _projected_status(
    platform: Platform, version: ModelVersion, recorded: Sequence[Approval], now: datetime
) -> ApprovalStatus:
    """``pending`` until ``version`` has recorded approvals, then ``approved`` once enough of
    them count (these bytes, a role still held, within ``revalidation_days``)."""
    if not recorded:
        return ApprovalStatus.PENDING
    governance = platform.governance
    counted = {a.approver.name for a in recorded if governance.approval_counts(version, a, now)}
    needed = governance.policy.controls(version.risk_tier).approvals
    return ApprovalStatus.APPROVED if len(counted) >= needed else ApprovalStatus.PENDING


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True))


def observe(observer: StateObserver, name: str) -> ObservedModel | None:
    try:
        return observer.observe_model(name)
    except NotFound:
        return None


ENDPOINT_SUBJECT = "endpoint "


def traffic_views(
    recorded: TrafficMap, observed: TrafficMap, shadow_in_cloud: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The recorded and the observed traffic as far as the cloud shows it, to compare: the live
    weights, and where the backend mirrors the shadow itself (``shadow_in_cloud``) which route
    is mirrored and, where either side has a shadow, how much of the traffic (elsewhere core
    mirrors it, so the cloud does not show it)."""
    was: dict[str, Any] = {"weights": recorded.live_weights}
    now: dict[str, Any] = {"weights": observed.live_weights}
    if shadow_in_cloud:
        was["shadow"] = recorded.shadow
        now["shadow"] = observed.shadow
        if recorded.shadow or observed.shadow:
            was["shadow_percent"] = recorded.shadow_percent
            now["shadow_percent"] = observed.shadow_percent
    return was, now


def _managed_endpoints(platform: Platform) -> list[Endpoint]:
    """The recorded endpoints sync compares: those of the platform's backend (a home that
    switched backends keeps the old one's, which this cloud cannot tell about)."""
    return [e for e in platform.serving.list_endpoints() if e.backend == platform.backend.name]


def compare_endpoints(
    platform: Platform, observer: StateObserver, at: datetime
) -> list[Difference]:
    """Recorded endpoints against the cloud: missing ones, and live weights that differ."""
    from mintaka.interfaces import Support
    from mintaka.rollout import native as native_rollout

    shadow_in_cloud = platform.backend.support(Capability.SERVING_SHADOW) is Support.NATIVE
    found: list[Difference] = []
    for endpoint in _managed_endpoints(platform):
        subject = ENDPOINT_SUBJECT + endpoint.name
        try:
            seen = observer.observe_endpoint(endpoint.name)
        except NotFound:
            found.append(
                Difference(
                    kind=DifferenceKind.ENDPOINT_MISSING.value,
                    subject=subject,
                    recorded={"routes": sorted(r.name for r in endpoint.routes)},
                    observed=None,
                    detected_at=at,
                )
            )
            continue

        was, now = traffic_views(endpoint.traffic, seen.traffic, shadow_in_cloud)
        killed = seen.extra.get("killed")  # where the backend reports its kill switch
        if isinstance(killed, bool) and killed != (endpoint.status is EndpointStatus.KILLED):
            found.append(
                Difference(
                    kind=DifferenceKind.KILLED.value,
                    subject=subject,
                    recorded={"killed": endpoint.status is EndpointStatus.KILLED},
                    observed={"killed": killed},
                    detected_at=at,
                )
            )
        served = {r.name: f"{r.model}:{r.version}" for r in endpoint.routes}
        serves = _served_by(seen.extra.get("routes"))
        # A native rollout the cloud is still walking: the record already holds its end.
        if (was != now or (serves is not None and serves != served)) and native_rollout.in_flight(
            platform, endpoint.name
        ) is None:
            if was != now:
                found.append(
                    Difference(
                        kind=DifferenceKind.TRAFFIC.value,
                        subject=subject,
                        recorded=was,
                        observed=now,
                        detected_at=at,
                    )
                )
            if serves is not None and serves != served:
                found.append(
                    Difference(
                        kind=DifferenceKind.ROUTES.value,
                        subject=subject,
                        recorded=dict(sorted(served.items())),
                        observed=dict(sorted(serves.items())),
                        detected_at=at,
                    )
                )
    return found


def _served_by(routes: object) -> dict[str, str] | None:
    """What each route the cloud reports serves (``model:version``); None when the backend's
    observation names no routes."""
    from pydantic import ValidationError as PydanticValidationError

    from mintaka.domain.serving import Route

    if not isinstance(routes, list):
        return None
    serves: dict[str, str] = {}
    for item in routes:
        try:
            route = Route.model_validate(item)
        except PydanticValidationError:
            continue  # not a route Mintaka could record: the recorded one shows as gone
        serves[route.name] = f"{route.model}:{route.version}"
    return serves


def sync_models(platform: Platform) -> list[Difference]:
    """Report every difference for the platform's managed models and endpoints; audit the new
    ones."""
    observer = platform._area(Capability.SYNC, StateObserver)
    with platform.store.read() as conn:
        recorded = recorded_models(conn, platform.backend.name)
    if platform.supports(Capability.REGISTRY_APPROVAL):
        recorded = with_projected_approvals(platform, recorded)
    now = platform.clock.now()
    stages = platform.supports(Capability.REGISTRY_STAGES)
    found: list[Difference] = []
    for model in recorded:
        found.extend(compare(model, observe(observer, model.name), at=now, stages=stages))
    found.extend(compare_endpoints(platform, observer, now))

    reported: list[Difference] = []
    events: list[AuditEvent] = []
    with platform.store.write() as conn:
        still_open = open_differences(conn)
        for difference in found:
            key = (difference.kind, difference.subject)
            previous = still_open.pop(key, None)
            if (
                previous is not None
                and _jsonable(previous.recorded) == _jsonable(difference.recorded)
                and _jsonable(previous.observed) == _jsonable(difference.observed)
            ):
                reported.append(difference.model_copy(update={"detected_at": previous.detected_at}))
                continue
            events.append(
                platform._audit(
                    conn,
                    DIFFERENCE_ACTION,
                    difference.subject,
                    kind=difference.kind,
                    recorded=difference.recorded,
                    observed=difference.observed,
                )
            )
            reported.append(difference)
        managed = {model.name for model in recorded} | {
            ENDPOINT_SUBJECT + e.name for e in _managed_endpoints(platform)
        }
        gone = {key: v for key, v in still_open.items() if subject_of(key[1]) in managed}
        events.extend(_resolve(platform, conn, gone))
    platform._after_commit(events)
    return reported


def subject_of(subject: str) -> str:
    """The managed thing a difference is about: a model name, or ``endpoint NAME``."""
    if subject.startswith(ENDPOINT_SUBJECT):
        return subject
    return subject.split("@", 1)[0].split(":", 1)[0]


def _resolve(
    platform: Platform, conn: Connection, gone: Mapping[tuple[str, str], OpenDifference]
) -> Iterable[AuditEvent]:
    for (kind, subject), previous in sorted(gone.items()):
        yield platform._audit(
            conn,
            RESOLVED_ACTION,
            subject,
            kind=kind,
            recorded=previous.recorded,
            observed=previous.observed,
        )


__all__ = [
    "DIFFERENCE_ACTION",
    "ENDPOINT_SUBJECT",
    "RESOLVED_ACTION",
    "DifferenceKind",
    "RecordedModel",
    "RecordedVersion",
    "compare",
    "open_differences",
    "recorded_models",
    "subject_of",
    "sync_models",
    "with_projected_approvals",
]
