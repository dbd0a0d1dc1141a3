"""The model inventory, and what was in production at a given instant.

:func:`inventory` lists every model version with what an auditor asks first: its risk tier,
stage, owner and backend, its aliases, where it takes live traffic, when its current bytes were
last approved, whether revalidation is overdue under the policy, and the exceptions in force.

:func:`production_at` answers "what was in production on date D" from the records Mintaka keeps
forever: the deployment history (which versions took live traffic on which endpoint at that
instant, with the kill switch, endpoint deletion and adoption replayed from the audit trail) and
the moves of production aliases and the production stage in the audit trail, adoptions included
(an adopted version's stage, an adopted endpoint killed or not). Which aliases are production
aliases is the policy's say at that instant, as recorded by
:mod:`mintaka.governance.policy_history`, not today's.

Revalidation: a version *in use* (live traffic, a production alias or the production stage) is
overdue when its tier sets ``revalidation_days`` and the latest approval of its current bytes is
older than that, or when it has no such approval although its tier requires approvals. An
approval counts as the promotion gate counts it (role still held, authenticated where asked). A
tier that requires no approvals counts from the version's registration.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from pydantic import Field
from sqlalchemy import select

from mintaka.domain.base import AwareDatetime, Record
from mintaka.domain.governance import Approval, PolicyException
from mintaka.domain.registry import ModelVersion, RiskTier, Stage
from mintaka.errors import ValidationError
from mintaka.governance.policy import Policy
from mintaka.governance.policy_history import activations, production_aliases_at
from mintaka.store.schema import audit_events, deployments

if TYPE_CHECKING:
    from mintaka.platform import Platform

# Audit actions replayed by ``production_at``.
# An adoption records the stage a version had in the cloud (``model.adopt``) and whether the
# endpoint was killed when it was adopted (``endpoint.adopt``).
_ALIAS_ACTIONS = (
    "model.alias.set",
    "model.alias.delete",
    "model.archive",
    "model.stage.set",
    "model.adopt",
)
_SWITCH_ACTIONS = (
    "endpoint.kill",
    "endpoint.unkill",
    "endpoint.delete",
    "endpoint.create",
    "endpoint.adopt",
)


def status_after(action: str, details: Mapping[str, Any]) -> str | None:
    """The status (``in_service``, ``killed`` or ``deleted``) an audit event about an endpoint
    leaves it in, or None when the event does not change it. A creation or an adoption sets it
    afresh (an adoption says whether the cloud had the endpoint killed); a kill that moved
    traffic back to approved versions is a deployment of its own, while one without is the
    switch itself: the endpoint refuses every request."""
    if action == "endpoint.adopt":
        return "killed" if details.get("killed") else "in_service"
    if action in ("endpoint.create", "endpoint.unkill"):
        return "in_service"
    if action == "endpoint.delete":
        return "deleted"
    if action == "endpoint.kill" and "deployment" not in details:
        return "killed"
    return None


class ServingRoute(Record):
    """One route of one endpoint serving a version: live when its weight is above zero."""

    endpoint: str
    route: str
    weight: int
    shadow: bool = False
    killed: bool = False

    @property
    def live(self) -> bool:
        return self.weight > 0 and not self.killed


class ExceptionInForce(Record):
    id: str
    control: str
    expires_at: AwareDatetime


class InventoryEntry(Record):
    """One model version as the inventory reports it. ``approvals`` counts the approvers whose
    sign-off of the current bytes counts as the promotion gate counts it (role still held,
    authenticated where asked, not older than ``revalidation_days``); ``approvals_total`` counts
    every approver of the current bytes. ``approved_at`` is the latest sign-off the gate counts,
    or counted until it grew older than ``revalidation_days`` (``revalidation_due`` says when):
    one given in a role not held, or not authenticated where asked, never moves it."""

    ref: str
    id: str
    name: str
    version: int
    tier: RiskTier
    stage: Stage
    owner: str
    backend: str
    digest: str
    aliases: tuple[str, ...] = ()
    production_aliases: tuple[str, ...] = ()
    serving: tuple[ServingRoute, ...] = ()
    live: bool = False
    in_use: bool = False
    approvals: int = 0
    approvals_total: int = 0
    approved_at: AwareDatetime | None = None
    revalidation_days: int | None = None
    revalidation_due: AwareDatetime | None = None
    overdue: bool = False
    exceptions: tuple[ExceptionInForce, ...] = ()

    @property
    def endpoints(self) -> list[str]:
        return sorted({s.endpoint for s in self.serving if s.live})


def serving_index(platform: Platform) -> dict[tuple[str, int], list[ServingRoute]]:
    """Every endpoint route as it is now, by the (model, version) it serves."""
    index: dict[tuple[str, int], list[ServingRoute]] = {}
    for endpoint in platform.serving.list_endpoints():
        killed = endpoint.status.value == "killed"
        for route in endpoint.routes:
            weight = endpoint.traffic.weights.get(route.name, 0)
            shadow = endpoint.traffic.shadow == route.name
            index.setdefault((route.model, route.version), []).append(
                ServingRoute(
                    endpoint=endpoint.name,
                    route=route.name,
                    weight=weight,
                    shadow=shadow,
                    killed=killed,
                )
            )
    return index


def in_production(
    version: ModelVersion, production_aliases: Iterable[str], serving: Iterable[ServingRoute]
) -> bool:
    """Whether a version is in use: not archived, and taking live traffic, holding one of the
    policy's production aliases, or in the production stage."""
    if version.stage is Stage.ARCHIVED:
        return False
    return (
        any(s.live for s in serving)
        or bool(set(version.aliases) & set(production_aliases))
        or version.stage is Stage.PRODUCTION
    )


def entry_for(
    platform: Platform,
    version: ModelVersion,
    *,
    now: datetime,
    serving: Iterable[ServingRoute] = (),
    production: Iterable[str] | None = None,
    policy: Policy | None = None,
    approvals: Sequence[Approval] | None = None,
    exceptions: Sequence[PolicyException] | None = None,
    by_chain: bool = False,
) -> InventoryEntry:
    """The inventory entry of one version, judged at ``now`` by ``policy`` (the one in force, by
    default): its tier's controls and which approvals count; ``production`` names the production
    aliases to judge by (``policy``'s, by default); ``approvals`` and ``exceptions``, the ones
    the audit chain records for it, when the caller read them already
    (for many versions at once). ``by_chain``: ``now`` is the time of the chain's head and every
    approval is recorded before it, so one stamped later (a clock stepped back) counts there."""
    governance = platform.governance
    policy = policy or governance.policy
    controls = policy.controls(version.risk_tier)
    routes = tuple(sorted(serving, key=lambda s: (s.endpoint, s.route)))
    live = any(s.live for s in routes)
    production = tuple(policy.production_aliases if production is None else production)
    production_aliases = tuple(a for a in version.aliases if a in production)
    in_use = in_production(version, production, routes)
    recorded = governance.approvals(version) if approvals is None else list(approvals)
    current = [
        a
        for a in recorded
        if a.artifact_digest == version.artifact_digest and (by_chain or a.at <= now)
    ]
    signing = governance.counting_approvals(
        version, now, policy=policy, given=recorded, by_chain=by_chain
    )
    approved_at = max(signing.values(), default=None)
    days = controls.revalidation_days
    due = None
    if controls.approvals:
        # Approved until the oldest of the newest required approvals lapses, as the control counts.
        counted = sorted(signing.values(), reverse=True)
        enough = len(counted) >= controls.approvals
        if days is not None and enough:
            due = counted[controls.approvals - 1] + timedelta(days=days)
        overdue = in_use and (not enough or (due is not None and now > due))
    else:
        if days is not None:
            due = (approved_at or version.created_at) + timedelta(days=days)
        overdue = in_use and due is not None and now > due
    granted = governance.exceptions(version) if exceptions is None else exceptions
    in_force = tuple(
        ExceptionInForce(id=e.id, control=e.control, expires_at=e.expires_at)
        for e in sorted(granted, key=lambda e: e.id)
        if e.expires_at > now
    )
    return InventoryEntry(
        ref=version.ref,
        id=version.id,
        name=version.name,
        version=version.version,
        tier=version.risk_tier,
        stage=version.stage,
        owner=version.owner,
        backend=version.backend,
        digest=version.artifact_digest,
        aliases=tuple(sorted(version.aliases)),
        production_aliases=production_aliases,
        serving=routes,
        live=live,
        in_use=in_use,
        approvals=len(
            {
                a.approver.name
                for a in current
                if governance.approval_counts(version, a, now, policy=policy, by_chain=by_chain)
            }
        ),
        approvals_total=len({a.approver.name for a in current}),
        approved_at=approved_at,
        revalidation_days=controls.revalidation_days,
        revalidation_due=due,
        overdue=overdue,
        exceptions=in_force,
    )


def inventory(
    platform: Platform,
    *,
    tier: str | None = None,
    stage: str | None = None,
    owner: str | None = None,
    backend: str | None = None,
    overdue: bool = False,
    with_exceptions: bool = False,
    now: datetime | None = None,
) -> list[InventoryEntry]:
    """Every model version, ordered by name and version, filtered as asked."""
    when = now or platform._now()
    wanted_tier = None if tier is None else _choice(RiskTier, tier, "risk tier")
    wanted_stage = None if stage is None else _choice(Stage, stage, "stage")
    index = serving_index(platform)
    chosen = []
    for model in platform.list_models():
        for version in platform.list_versions(model.name):
            if wanted_tier is not None and version.risk_tier is not wanted_tier:
                continue
            if wanted_stage is not None and version.stage is not wanted_stage:
                continue
            if owner is not None and version.owner.strip() != owner.strip():
                continue
            if backend is not None and version.backend != backend:
                continue
            chosen.append(version)
    governance = platform.governance
    signed = governance.approval_split(chosen)
    granted = governance.exception_split({v.id: (v.name, v.version) for v in chosen})
    entries = []
    for version in chosen:
        entry = entry_for(
            platform,
            version,
            now=when,
            serving=index.get((version.name, version.version), ()),
            approvals=signed[version.id][0],
            exceptions=granted[version.id][0],
        )
        if overdue and not entry.overdue:
            continue
        if with_exceptions and not entry.exceptions:
            continue
        entries.append(entry)
    return entries


def _choice(kind: Any, value: str, what: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        options = ", ".join(m.value for m in kind)
        raise ValidationError(f"invalid {what} {value!r}; expected one of: {options}") from None


# -- what was in production at an instant ------------------------------------------------------


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant. A naive time is UTC; a bare date means the last instant of that day
    (UTC), so ``--at 2026-03-31`` reports what was in force at the end of March 31."""
    value = text.strip()
    try:
        day = date.fromisoformat(value)  # any bare-date form (2026-03-31, 20260331, 2026-W13-2)
    except ValueError:
        pass
    else:
        return datetime.combine(day, time.max, tzinfo=UTC)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(
            f"{text!r} is not an ISO 8601 date or date-time (2026-03-31, 2026-03-31T12:00Z)"
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


class LiveVersion(Record):
    """A version taking live traffic on one endpoint route at the instant asked."""

    model: str
    version: int
    endpoint: str
    route: str
    weight: int


class EndpointState(Record):
    """An endpoint's traffic at an instant: the deployment in force and since when."""

    endpoint: str
    deployment: str
    since: AwareDatetime
    actor: str
    status: str  # in_service, killed or deleted
    weights: dict[str, int] = Field(default_factory=dict)
    routes: dict[str, str] = Field(default_factory=dict)  # route -> NAME:VERSION
    shadow: str | None = None
    live: tuple[LiveVersion, ...] = ()


class AliasHolder(Record):
    model: str
    alias: str
    version: int
    since: AwareDatetime
    audit_seq: int


class StageHolder(Record):
    model: str
    version: int
    since: AwareDatetime
    audit_seq: int


class ProductionSnapshot(Record):
    """What was in production at ``at``: live traffic, production aliases, production stage;
    ``policy`` is the digest of the policy whose ``production_aliases`` judged the aliases."""

    at: AwareDatetime
    policy: str = ""
    production_aliases: tuple[str, ...] = ()
    endpoints: tuple[EndpointState, ...] = ()
    aliases: tuple[AliasHolder, ...] = ()
    production_stage: tuple[StageHolder, ...] = ()

    @property
    def live_versions(self) -> list[str]:
        return sorted({f"{v.model}:{v.version}" for e in self.endpoints for v in e.live})


def _audit_rows(
    platform: Platform, actions: tuple[str, ...]
) -> list[tuple[int, datetime, str, str, dict[str, Any]]]:
    query = (
        select(
            audit_events.c.seq,
            audit_events.c.at,
            audit_events.c.action,
            audit_events.c.subject,
            audit_events.c.canonical,
        )
        .where(audit_events.c.action.in_(actions))
        .order_by(audit_events.c.seq)
    )
    with platform.store.read() as conn:
        rows = conn.execute(query).all()
    return [
        (
            int(row.seq),
            datetime.fromisoformat(row.at),
            row.action,
            row.subject,
            json.loads(bytes(row.canonical)).get("details", {}),
        )
        for row in rows
    ]


def production_at(platform: Platform, at: datetime) -> ProductionSnapshot:
    """What was in production at the instant ``at`` (changes made at ``at`` count)."""
    if at.tzinfo is None:
        raise ValidationError("the instant must be timezone-aware")
    with platform.store.read() as conn:
        rows = conn.execute(
            select(deployments).order_by(deployments.c.endpoint, deployments.c.seq)
        ).all()
    in_force: dict[str, Any] = {}
    for row in rows:
        if datetime.fromisoformat(row.at) <= at:
            in_force[row.endpoint] = row
    status: dict[str, str] = {}
    for _seq, when, action, subject, details in _audit_rows(platform, _SWITCH_ACTIONS):
        if when > at:
            break
        changed = status_after(action, details)
        if changed is not None:
            status[subject] = changed
    states = []
    for name in sorted(in_force):
        row = in_force[name]
        state = status.get(name, "in_service")
        weights = {k: int(v) for k, v in sorted(row.traffic.get("weights", {}).items())}
        routes = {r["name"]: f"{r['model']}:{r['version']}" for r in row.routes}
        by_name = {r["name"]: r for r in row.routes}
        live: tuple[LiveVersion, ...] = ()
        if state == "in_service":
            live = tuple(
                LiveVersion(
                    model=by_name[route]["model"],
                    version=int(by_name[route]["version"]),
                    endpoint=name,
                    route=route,
                    weight=weight,
                )
                for route, weight in weights.items()
                if weight > 0 and route in by_name
            )
        states.append(
            EndpointState(
                endpoint=name,
                deployment=row.id,
                since=datetime.fromisoformat(row.at),
                actor=row.actor,
                status=state,
                weights=weights,
                routes=dict(sorted(routes.items())),
                shadow=row.traffic.get("shadow"),
                live=live,
            )
        )
    digest, production = production_aliases_at(
        activations(platform), at, platform.governance.policy
    )
    aliases, stages = _registry_at(platform, at, production)
    return ProductionSnapshot(
        at=at,
        policy=digest,
        production_aliases=production,
        endpoints=tuple(states),
        aliases=aliases,
        production_stage=stages,
    )


def _registry_at(
    platform: Platform, at: datetime, production_aliases: Iterable[str]
) -> tuple[tuple[AliasHolder, ...], tuple[StageHolder, ...]]:
    """Replay the moves of ``production_aliases`` and of the stage from the audit trail up to
    ``at``."""
    production = set(production_aliases)
    holders: dict[tuple[str, str], AliasHolder] = {}
    stage: dict[tuple[str, int], StageHolder] = {}
    for seq, when, action, subject, details in _audit_rows(platform, _ALIAS_ACTIONS):
        if when > at:
            break
        if action in ("model.alias.set", "model.alias.delete"):
            model, _, alias = subject.partition("@")
            if alias not in production:
                continue
            if action == "model.alias.delete":
                holders.pop((model, alias), None)
            else:
                holders[(model, alias)] = AliasHolder(
                    model=model,
                    alias=alias,
                    version=int(details["version"]),
                    since=when,
                    audit_seq=seq,
                )
            continue
        model, _, number = subject.rpartition(":")
        if not number.isdigit():
            continue
        key = (model, int(number))
        if action == "model.archive":
            stage.pop(key, None)
            for alias in details.get("aliases", []):
                held = holders.get((model, alias))
                if held is not None and held.version == key[1]:
                    holders.pop((model, alias))
        elif details.get("stage") == Stage.PRODUCTION.value:
            stage[key] = StageHolder(model=model, version=key[1], since=when, audit_seq=seq)
        else:
            stage.pop(key, None)
    return (
        tuple(holders[k] for k in sorted(holders)),
        tuple(stage[k] for k in sorted(stage)),
    )
