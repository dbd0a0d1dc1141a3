"""Evidence packs: everything an auditor asks about one model version, in two files.

``export_evidence`` writes a deterministic JSON file (sorted keys, stable ordering everywhere,
no time of export: re-exporting unchanged state gives the same bytes) and a self-contained HTML
report rendered from the same data, with the lineage sub-graph drawn by matplotlib (Agg) and
embedded as a base64 PNG. The PNG lives only in the HTML: the JSON carries the graph as data.

The pack is stated *as of* the head of the audit chain when it was built (sequence number, hash
and time of the last event), not as of the wall clock; whatever depends on time (exceptions in
force, revalidation) is judged at that instant. The policy that judges the pack, and which
aliases were production aliases at each alias move in it, are those recorded as in force at the
head and at each move, in chain order (:mod:`mintaka.governance.policy_history`). Exporting is
a read: it appends no audit event.

Every record carries an ``id``; the control mapping (``control_map.toml``, see
``docs/governance.md``) cites, for each control of the EU AI Act, NIST AI RMF and SR 11-7, the
ids of the records that satisfy it, and lists a control without such records as a GAP. Every
string written passes through :mod:`mintaka.governance.redaction`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select

from mintaka.audit.chain import canonical_bytes
from mintaka.domain.governance import Approval, PolicyException
from mintaka.domain.lineage import LineageGraph, NodeKind
from mintaka.domain.registry import ModelVersion
from mintaka.errors import MintakaError, StoreError
from mintaka.governance.inventory import entry_for, serving_index, status_after
from mintaka.governance.policy import MODEL_CARD_FIELDS, Policy
from mintaka.governance.policy_history import (
    PolicyActivation,
    activations,
    policy_at,
    production_aliases_at,
    unreadable_at,
)
from mintaka.governance.records import check_records
from mintaka.governance.redaction import Redactor
from mintaka.governance.service import event_details
from mintaka.store.schema import audit_events, audit_head, deployments, model_cards

if TYPE_CHECKING:
    from mintaka.platform import Platform

log = logging.getLogger(__name__)

FORMAT = "mintaka-evidence/1"
CONTROL_MAP = Path(__file__).with_name("control_map.toml")
TEMPLATE = "evidence.html.j2"
NO_MONITORS = "no monitors configured"
MAX_DRAWN_NODES = 60

Pack = dict[str, Any]


# -- evidence kinds: what each kind in the control map counts --------------------------------


@dataclass(frozen=True)
class EvidenceKind:
    """How to find one kind of evidence in a pack, and what its absence means: ``missing``,
    or what ``explain`` says of the pack at hand when there is more to name than that."""

    describe: str
    missing: str
    find: Callable[[Pack], list[str]]
    explain: Callable[[Pack], str] | None = None

    def gap(self, pack: Pack) -> str:
        """Why this evidence is missing from ``pack``."""
        return self.missing if self.explain is None else self.explain(pack)


def _ids(records: Iterable[dict[str, Any]]) -> list[str]:
    return [str(r["id"]) for r in records]


def _nodes(pack: Pack, kind: NodeKind) -> list[str]:
    return [n["id"] for n in pack["lineage"]["upstream"]["nodes"] if n["kind"] == kind.value]


def _card_field(field: str) -> EvidenceKind:
    words = field.replace("_", " ")
    return EvidenceKind(
        f"the model card states its {words}",
        f"the model card has no {words}",
        lambda p: _ids(f for f in p["model_card"]["fields"] if f["field"] == field),
    )


def _thresholds(pack: Pack) -> list[str]:
    checked = pack["evaluations"]["thresholds"]
    return _ids(checked) if checked and all(t["met"] for t in checked) else []


def _approvals(pack: Pack) -> list[str]:
    """The counting approvals by others than the developer, once there are as many approvers
    as the tier requires under the policy the pack is judged by (at least one); else none."""
    counted = [a for a in pack["approvals"] if a["counts"] and a["independent"]]
    required = max(int(pack["policy"]["controls"]["approvals"]), 1)
    return _ids(counted) if len({a["approver"] for a in counted}) >= required else []


def _kill_switch(pack: Pack) -> list[str]:
    declared = [c for c in pack["environment"]["capabilities"] if c["name"] == "serving.kill"]
    used = [
        e for e in pack["audit"]["events"] if e["action"] in ("endpoint.kill", "endpoint.unkill")
    ]
    return _ids(declared) + _ids(used) if declared or used else []


def _chain_holds(chain: Mapping[str, Any]) -> bool:
    """Whether the chain verifies and the approvals and exceptions tables hold only what it
    records (a pack built before the cross-check existed has no ``records``)."""
    return bool(chain["verified"]) and bool(chain.get("records", {}).get("ok", True))


def _chain_gap(pack: Pack) -> str:
    """Why the audit-chain evidence is missing: the first link that does not verify, and every
    approval or exception row the chain does not record as it stands, or whose row is gone."""
    chain = pack["audit"]["chain"]
    found = []
    if not chain["verified"]:
        found.append(
            f"the audit chain does not verify from event {chain['first_bad_seq']}: "
            f"{chain['reason']}"
        )
    records = chain.get("records", {})
    found += [
        f"{r['table']} row {r['id']!r} of {r['subject']} is not recorded by the chain: "
        f"{r['reason']}"
        for r in records.get("unrecorded", [])
    ]
    found += [
        f"{m['table']} row {m['id']!r} of {m['subject']} recorded by audit event {m['seq']} is gone"
        for m in records.get("missing", [])
    ]
    return "; ".join(found) or EVIDENCE_KINDS["audit-chain"].missing


EVIDENCE_KINDS: dict[str, EvidenceKind] = {
    "inventory-record": EvidenceKind(
        "the version is in the inventory with an owner and a risk tier",
        "the version has no accountable owner",
        lambda p: [p["inventory"]["id"]] if p["inventory"]["owner"] else [],
    ),
    "risk-classification": EvidenceKind(
        "the version carries a risk tier whose controls the policy defines",
        "the version has no risk tier",
        lambda p: [p["subject"]["id"], p["policy"]["id"]] if p["subject"]["tier"] else [],
    ),
    "policy-decisions": EvidenceKind(
        "policy decisions taken on the version and its endpoints, with the policy digest",
        "no policy decision is recorded",
        lambda p: _ids(p["policy_decisions"]),
    ),
    "training-data-lineage": EvidenceKind(
        "the datasets it was trained on, by digest, in the lineage graph",
        "no training dataset is recorded in the lineage",
        lambda p: _nodes(p, NodeKind.DATASET),
    ),
    "training-run": EvidenceKind(
        "the run that produced it (code commit, parameters, environment)",
        "no training run is recorded in the lineage",
        lambda p: _nodes(p, NodeKind.RUN),
    ),
    **{f"card-{f.replace('_', '-')}": _card_field(f) for f in MODEL_CARD_FIELDS},
    "model-card-complete": EvidenceKind(
        "the model card has every field the tier requires",
        "the model card lacks fields the tier requires",
        lambda p: (
            [p["model_card"]["id"]]
            if p["model_card"]["fields"] and not p["model_card"]["missing"]
            else []
        ),
    ),
    "evaluation-metrics": EvidenceKind(
        "evaluation metrics recorded with the version",
        "no evaluation metric is recorded",
        lambda p: (
            [p["evaluations"]["metrics"]["id"]] if p["evaluations"]["metrics"]["values"] else []
        ),
    ),
    "evaluation-thresholds": EvidenceKind(
        "every evaluation threshold of the tier is met",
        "the tier sets no evaluation threshold, or one is not met",
        _thresholds,
    ),
    "comparisons": EvidenceKind(
        "champion-challenger comparisons on the declared business metric",
        "no champion-challenger comparison is recorded",
        lambda p: _ids(p["evaluations"]["comparisons"]),
    ),
    "independent-approvals": EvidenceKind(
        "as many approvals of these exact bytes as the tier requires (at least one), by others"
        " than the developer, counting under the policy as of the pack (role, authentication,"
        " revalidation)",
        "fewer current approvals of these bytes by others than the developer than the tier"
        " requires",
        _approvals,
    ),
    "artifact-integrity": EvidenceKind(
        "the stored bytes match the approved artifact digest",
        "the artifact's bytes could not be verified against its digest",
        lambda p: [p["artifact"]["id"]] if p["artifact"]["verified"] else [],
    ),
    "audit-chain": EvidenceKind(
        "the hash-chained audit trail verifies end to end and records every approval and "
        "exception row as it stands",
        "the audit chain does not verify, or approval or exception rows are not recorded by it",
        lambda p: [p["audit"]["chain"]["id"]] if _chain_holds(p["audit"]["chain"]) else [],
        _chain_gap,
    ),
    "audit-events": EvidenceKind(
        "audit events about the version, each with its chain link",
        "no audit event is recorded",
        lambda p: _ids(p["audit"]["events"]),
    ),
    "deployment-history": EvidenceKind(
        "every traffic change on endpoints serving the version",
        "the version never took live traffic",
        lambda p: _ids(d for e in p["deployments"] for d in e["history"] if d["version_live"]),
    ),
    "kill-switch": EvidenceKind(
        "the serving backend declares a kill switch (and any use of it)",
        "the serving backend has no kill switch",
        _kill_switch,
    ),
    "monitors": EvidenceKind(
        "monitors configured on the version's endpoints",
        NO_MONITORS,
        lambda p: _ids(p["monitoring"]["monitors"]),
    ),
}


def _monitoring(
    platform: Platform, model: str, served: Mapping[str, Sequence[dict[str, Any]]], alerts: Any
) -> dict[str, Any]:
    """The monitors that watched the version, as recorded (never estimated), with the alerts
    raised. A monitor counts when its endpoint gave the version live or shadow traffic at some
    instant it was on duty, from when it was added until it was removed, if it was (``served``:
    each endpoint's serving timeline): one on an endpoint of another of the model's versions,
    added after the version left, or removed before the version came, did not."""
    from sqlalchemy import select

    from mintaka.store.schema import monitors

    with platform.store.read() as conn:
        found = conn.execute(
            select(
                monitors.c.id,
                monitors.c.endpoint,
                monitors.c.spec,
                monitors.c.created_at,
                monitors.c.removed_at,
            )
            .where(monitors.c.model == model, monitors.c.endpoint.in_(list(served)))
            .order_by(monitors.c.id)
        ).all()
    rows = [
        row
        for row in found
        if _served_between(
            served[row.endpoint],
            datetime.fromisoformat(row.created_at),
            None if row.removed_at is None else datetime.fromisoformat(row.removed_at),
        )
    ]
    watching = [
        {
            "id": row.id,
            "endpoint": row.endpoint,
            "signals": [
                {
                    k: signal.get(k)
                    for k in (
                        "name",
                        "kind",
                        "metric",
                        "threshold",
                        "window",
                        "owner",
                        "runbook_url",
                    )
                }
                for signal in row.spec.get("signals", [])
            ],
        }
        for row in rows
    ]
    return {
        "status": "monitored" if watching else NO_MONITORS,
        "detail": (
            f"{len(watching)} monitor(s) watched endpoints while they served this version; "
            "alerts below are as raised."
            if watching
            else "Mintaka records no monitor on an endpoint that served this version; nothing "
            "here is estimated."
        ),
        "monitors": watching,
        "alerts": alerts,
    }


def _in_force(deployments: Sequence[dict[str, Any]], at: datetime) -> int | None:
    """The index of the deployment of one endpoint (oldest first) in force at ``at``."""
    found = None
    for index, entry in enumerate(deployments):
        if datetime.fromisoformat(entry["at"]) <= at:  # instants, not text
            found = index
    return found


def _serves(entry: dict[str, Any]) -> bool:
    return bool(entry["version_live"] or entry["version_shadow"])


def _served_between(
    deployments: Sequence[dict[str, Any]], since: datetime, until: datetime | None
) -> bool:
    """Whether one endpoint's deployments (oldest first) gave the version live or shadow
    traffic at some instant ``t`` with ``since <= t`` and, when ``until`` is given,
    ``t < until``: the one in force at ``since``, or a later one that began before ``until``."""
    if until is not None and until <= since:
        return False
    first = _in_force(deployments, since)
    return any(
        _serves(entry)
        for index, entry in enumerate(deployments[first or 0 :])
        if (index == 0 and first is not None)
        or until is None
        or datetime.fromisoformat(entry["at"]) < until
    )


def _serving_at(deployments: Sequence[dict[str, Any]], at: datetime) -> bool:
    """Whether the deployment of one endpoint in force at ``at`` gave the version live or
    shadow traffic."""
    index = _in_force(deployments, at)
    return index is not None and _serves(deployments[index])


def load_control_map(path: Path | None = None) -> dict[str, Any]:
    """The control map (``control_map.toml`` by default); unknown evidence kinds are refused."""
    chosen = path or CONTROL_MAP
    data = tomllib.loads(chosen.read_text("utf-8"))
    for control in data["controls"]:
        unknown = [k for k in control["evidence"] if k not in EVIDENCE_KINDS]
        if unknown or control["framework"] not in data["frameworks"]:
            from mintaka.errors import ConfigurationError

            raise ConfigurationError(
                f"{chosen}: control {control['id']} names unknown evidence {unknown} "
                f"or framework {control['framework']!r}"
            )
    return data


def map_controls(pack: Pack, control_map: dict[str, Any] | None = None) -> dict[str, Any]:
    """For each control: met (citing record ids) or a GAP (naming what is missing)."""
    mapping = control_map or load_control_map()
    results = []
    for control in mapping["controls"]:
        cited: list[str] = []
        missing: list[str] = []
        for kind in control["evidence"]:
            found = EVIDENCE_KINDS[kind].find(pack)
            if found:
                cited += found
            else:
                missing.append(f"{kind}: {EVIDENCE_KINDS[kind].gap(pack)}")
        results.append(
            {
                "framework": control["framework"],
                "control": control["id"],
                "title": control["title"],
                "evidence_kinds": list(control["evidence"]),
                "status": "met" if not missing else "gap",
                "evidence": sorted(set(cited)),
                "missing": missing,
            }
        )
    return {
        "map_version": mapping["version"],
        "frameworks": {k: dict(v) for k, v in sorted(mapping["frameworks"].items())},
        "kinds": {k: EVIDENCE_KINDS[k].describe for k in sorted(EVIDENCE_KINDS)},
        "results": results,
        "gaps": sum(1 for r in results if r["status"] == "gap"),
    }


# -- building the pack -----------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _graph(graph: LineageGraph) -> dict[str, Any]:
    return {
        "root": graph.root,
        "nodes": sorted(
            (
                {"id": n.id, "kind": n.kind.value, "key": n.key, "label": n.label, "attrs": n.attrs}
                for n in graph.nodes
            ),
            key=lambda n: n["id"],
        ),
        "edges": sorted(
            ({"src": e.src, "dst": e.dst, "kind": e.kind.value} for e in graph.edges),
            key=lambda e: (e["src"], e["dst"], e["kind"]),
        ),
    }


def _head(platform: Platform) -> tuple[int, str, str]:
    with platform.store.read() as conn:
        head = conn.execute(
            select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
        ).one_or_none()
        if head is None or not head.seq:
            raise StoreError("the audit trail is empty; there is nothing to give evidence of")
        at = conn.execute(
            select(audit_events.c.at).where(audit_events.c.seq == head.seq)
        ).scalar_one()
    return int(head.seq), str(head.hash), str(at)


@dataclass(frozen=True)
class Incarnation:
    """One life of an endpoint name, from its creation (or adoption) to its deletion: the audit
    events after ``after`` up to ``until`` (open while it exists) and its serving timeline.
    Adopting a recorded endpoint again (changed in the cloud) is a step of the same life: it was
    never deleted, only made to serve something else outside Mintaka."""

    endpoint: str
    number: int
    after: int
    until: int | None
    timeline: list[dict[str, Any]]

    def holds(self, seq: int) -> bool:
        return self.after < seq and (self.until is None or seq <= self.until)


def _entry(
    version: ModelVersion, row: Any, event: Mapping[str, Any], status: str
) -> dict[str, Any]:
    """One step of a serving timeline: the deployment ``row`` in force after ``event``, with the
    endpoint's ``status``; the version takes traffic only while the endpoint is in service."""
    routes = {r["name"]: f"{r['model']}:{r['version']}" for r in row.routes}
    weights = dict(row.traffic.get("weights", {}))
    weight = sum(w for route, w in weights.items() if routes.get(route) == version.ref)
    serving = status == "in_service"
    own = event["details"].get("deployment") == row.id
    return {
        "id": row.id if own else f"audit:{event['seq']}",
        "seq": row.seq,
        "at": row.at if own else event["at"],
        "actor": row.actor if own else event["actor"],
        "event": event["action"],
        "status": status,
        "strategy": row.strategy,
        "reason": row.reason if own else str(event["details"].get("reason", "")),
        "known_good": bool(row.known_good),
        "routes": dict(sorted(routes.items())),
        "traffic": row.traffic,
        "version_weight": weight,
        "version_live": serving and weight > 0,
        "version_shadow": serving and routes.get(row.traffic.get("shadow") or "") == version.ref,
    }


@dataclass(frozen=True)
class AuditRow:
    """One audit event read for the pack, its canonical bytes and their details decoded once."""

    row: Any
    canonical: bytes
    details: dict[str, Any]


def _incarnations(
    version: ModelVersion, endpoint: str, found: Sequence[AuditRow], rows: Mapping[str, Any]
) -> list[Incarnation]:
    """Replay ``endpoint``'s audit events (``found``, in order): each deployment (``rows``, by
    id), at the event that recorded it (the first to name it; a later one, such as marking it
    known-good, changes nothing it serves), and each kill, release and deletion becomes a step
    of the timeline of the incarnation it belongs to, so a killed or deleted endpoint serves
    nothing, and an endpoint deleted and made again under the same name is another incarnation
    with a history of its own. Only a deployment recorded while none is in force (the name's
    first, or one after a deletion) starts one; the endpoint's status follows
    :func:`mintaka.governance.inventory.status_after`, as ``inventory --at`` replays it."""
    lives: list[Incarnation] = []
    in_force: Any = None
    status = "deleted"
    replayed: set[str] = set()
    for audit in found:
        seq, at, actor, action = audit.row.seq, audit.row.at, audit.row.actor, audit.row.action
        details = audit.details
        event = {"seq": int(seq), "at": at, "actor": actor, "action": action, "details": details}
        deployment = details.get("deployment")
        fresh = isinstance(deployment, str) and deployment not in replayed
        row = rows.get(str(deployment)) if fresh else None
        changed = status_after(action, details)
        if row is not None:
            replayed.add(row.id)
            if in_force is None:
                status = "in_service"
                after = (lives[-1].until or 0) if lives else 0
                lives.append(Incarnation(endpoint, len(lives) + 1, after, None, []))
            status = changed or status
            in_force = row
        elif in_force is None or changed is None:
            continue
        else:
            status = changed
        lives[-1].timeline.append(_entry(version, in_force, event, status))
        if status == "deleted":
            lives[-1] = replace(lives[-1], until=int(seq))
            in_force = None
    return lives


def _served_by(platform: Platform, version: ModelVersion) -> tuple[list[str], dict[str, Any]]:
    """The endpoints whose deployments ever had a route to the version, and those endpoints'
    deployments by id."""
    with platform.store.read() as conn:
        rows = conn.execute(
            select(deployments).order_by(deployments.c.endpoint, deployments.c.seq)
        ).all()
    mine = (version.name, version.version)
    touched = sorted(
        {
            row.endpoint
            for row in rows
            if any((r["model"], r["version"]) == mine for r in row.routes)
        }
    )
    return touched, {row.id: row for row in rows if row.endpoint in touched}


def _serving_history(
    version: ModelVersion,
    touched: Sequence[str],
    by_id: Mapping[str, Any],
    found: Sequence[AuditRow],
) -> list[Incarnation]:
    """Every incarnation of the ``touched`` endpoints that had a route to the version, oldest
    first per endpoint, replayed from the audit events read for the pack (``found``)."""
    return [
        life
        for endpoint in touched
        for life in _incarnations(
            version, endpoint, [a for a in found if a.row.subject == endpoint], by_id
        )
        if any(version.ref in step["routes"].values() for step in life.timeline)
    ]


def _timelines(history: Sequence[Incarnation]) -> dict[str, list[dict[str, Any]]]:
    """Each endpoint's steps across the incarnations in ``history``, oldest first: an
    incarnation ends only with its deletion step, so none is in force after it."""
    steps: dict[str, list[dict[str, Any]]] = {}
    for life in history:
        steps.setdefault(life.endpoint, []).extend(life.timeline)
    return steps


_ENDPOINT_ACTIONS = ("endpoint.", "rollout.", "monitor.", "alert.", "ticket.")


def _about_an_endpoint(action: str, details: Mapping[str, Any]) -> bool:
    """Whether an event is about an endpoint (models and endpoints share one subject space)."""
    if action == "policy.deny":
        decision = details.get("decision")
        action = str(decision.get("action", "")) if isinstance(decision, Mapping) else ""
    return action.startswith(_ENDPOINT_ACTIONS)


def _audit_rows(
    platform: Platform, version: ModelVersion, endpoints: Sequence[str]
) -> list[AuditRow]:
    """Every audit event the pack may draw on, read once, in chain order: the version's own, its
    model's and its aliases', comparisons naming the model, and those of ``endpoints``."""
    condition = or_(
        audit_events.c.subject.in_([version.ref, version.name, *endpoints]),
        audit_events.c.subject.like(f"{version.name}@%"),
        (audit_events.c.action == "model.comparison")
        & audit_events.c.subject.like(f"{version.name}:%..%"),
    )
    with platform.store.read() as conn:
        rows = conn.execute(
            select(audit_events).where(condition).order_by(audit_events.c.seq)
        ).all()
    found = []
    for row in rows:
        canonical = bytes(row.canonical)
        found.append(AuditRow(row, canonical, event_details(canonical) or {}))
    return found


def _audit(
    version: ModelVersion, history: Sequence[Incarnation], found: Sequence[AuditRow]
) -> list[dict[str, Any]]:
    """Events about the version: its own, its production-alias moves, comparisons naming it,
    its model's, and every event of the endpoint incarnations that served it (not those of an
    endpoint of the same name deleted before, or made after, nor of an endpoint that had a
    route to it but never served it)."""
    endpoints = sorted({life.endpoint for life in history})
    chosen = []
    holds: set[str] = set()  # aliases this version holds while replaying
    for audit in found:
        row, canonical, details = audit.row, audit.canonical, audit.details
        if row.subject not in (version.ref, version.name, *endpoints) and not (
            row.subject.startswith(f"{version.name}@")
            or (row.action == "model.comparison" and row.subject.startswith(f"{version.name}:"))
        ):
            continue  # an endpoint with a route to the version in none of its incarnations
        if (
            row.subject == version.name
            and version.name not in endpoints
            and _about_an_endpoint(row.action, details)
        ):
            continue  # an endpoint that shares the model's name but never served this version
        if (
            row.subject in endpoints
            and (row.subject != version.name or _about_an_endpoint(row.action, details))
            and not any(
                life.endpoint == row.subject and life.holds(int(row.seq)) for life in history
            )
        ):
            continue  # another incarnation of an endpoint name that served this version
        if row.subject.startswith(f"{version.name}@"):
            alias = row.subject.partition("@")[2]
            if row.action == "model.alias.set":
                if details.get("version") == version.version:
                    holds.add(alias)
                elif alias in holds:
                    holds.discard(alias)
                    chosen.append((row, canonical, details))
                    continue
                else:
                    continue
            elif alias in holds:
                holds.discard(alias)
            else:
                continue
        if row.action == "model.comparison":
            pair = row.subject.rpartition(":")[2].split("..")
            if str(version.version) not in pair:
                continue
        chosen.append((row, canonical, details))
    return [
        {
            "id": f"audit:{row.seq}",
            "seq": int(row.seq),
            "at": row.at,
            "actor": row.actor,
            "action": row.action,
            "subject": row.subject,
            "backend": row.backend,
            "details": details,
            "prev_hash": row.prev_hash,
            "hash": row.hash,
            "canonical": canonical.decode("utf-8"),
        }
        for row, canonical, details in chosen
    ]


def _card(platform: Platform, version: ModelVersion, required: tuple[str, ...]) -> dict[str, Any]:
    with platform.store.read() as conn:
        row = conn.execute(
            select(model_cards).where(model_cards.c.version_id == version.id)
        ).one_or_none()
    card = dict(row.card) if row is not None else {}
    return {
        "id": f"card:{version.id}",
        "fields": [
            {"id": f"card:{version.id}#{k}", "field": k, "value": card[k]}
            for k in MODEL_CARD_FIELDS
            if card.get(k)
        ],
        "required": list(required),
        "missing": [f for f in required if not card.get(f)],
        "updated_at": None if row is None else row.updated_at,
        "updated_by": None if row is None else row.updated_by,
    }


def _capabilities(platform: Platform, version: ModelVersion) -> list[dict[str, Any]]:
    cls: Any = type(platform.backend)
    if platform.backend.name != version.backend:
        try:
            cls = platform.plugins.backends().get(version.backend).cls
        except MintakaError:
            return []
    return [
        {"id": f"capability:{c.value}", "name": c.value, "support": str(cls.support(c))}
        for c in sorted(cls.capabilities, key=lambda c: c.value)
    ]


def build_pack(platform: Platform, ref: str) -> Pack:
    """The evidence pack of ``ref`` (``NAME:VERSION`` or ``NAME@ALIAS``), redacted. Everything
    it holds is read from one snapshot of the store, so a change committed while it is built
    shows in none of it rather than in some sections only. The artifact's bytes are hashed after
    the snapshot ends: hashing a large artifact can outlast how long a server lets a transaction
    sit idle."""
    with platform.store.snapshot():
        pack = _build_pack(platform, ref)
    pack["artifact"].update(_artifact_check(platform, pack["subject"]["artifact_digest"]))
    redactor = Redactor.for_platform(platform)
    pack["controls"] = map_controls(pack)
    for event in pack["audit"]["events"]:
        event["canonical"] = _redacted_canonical(event["canonical"], redactor)
    safe: Pack = redactor.value(pack)
    _mark_redacted_links(safe)
    return safe


def _artifact_check(platform: Platform, digest: str) -> dict[str, Any]:
    """Whether the stored bytes of ``digest`` still match it, and why not."""
    try:
        platform.artifacts.verify(digest)
    except MintakaError as exc:
        return {"verified": False, "detail": str(exc)}
    return {"verified": True, "detail": "stored bytes match the digest"}


def _build_pack(platform: Platform, ref: str) -> Pack:
    """The pack of ``ref`` as the store holds it: its artifact not yet verified, its controls
    not yet mapped, nothing redacted yet."""
    version = platform.get_model_version(ref)
    governance = platform.governance
    head_seq, head_hash, head_at = _head(platform)
    as_of = datetime.fromisoformat(head_at)
    recorded = [a for a in activations(platform) if a.seq <= head_seq]
    policy = policy_at(recorded, head_seq, governance.policy)
    unread = unreadable_at(recorded, head_seq, governance.policy)
    judged_by, production = production_aliases_at(recorded, head_seq, governance.policy)
    controls = policy.controls(version.risk_tier)

    counted, unrecorded = governance.approval_split([version])[version.id]
    registrants = governance._registered_by(version)
    approvals = [
        {
            "id": a.id,
            "approver": a.approver.name,
            "identity_source": a.approver.source.value,
            "authenticated": a.approver.authenticated,
            "role": a.role,
            "at": a.at.isoformat(),
            "comment": a.comment,
            "artifact_digest": a.artifact_digest,
            "current": a.artifact_digest == version.artifact_digest,
            "counts": governance.approval_counts(version, a, as_of, policy=policy, by_chain=True),
            "independent": a.approver.name not in registrants,
            "recorded": True,
        }
        for a in sorted(counted, key=lambda a: (a.at, a.id))
    ]
    approvals += [_unrecorded(a, version) for a in unrecorded]
    touched, by_id = _served_by(platform, version)
    found = _audit_rows(platform, version, touched)
    history = _serving_history(version, touched, by_id, found)
    served = _timelines(history)
    events = _audit(version, history, found)
    _mark_production_aliases(events, recorded, governance.policy)
    decided = {
        str(e["details"]["decision"].get("id"))
        for e in events
        if isinstance(e["details"].get("decision"), dict)
    }
    decisions = sorted(
        [
            *governance.decisions(version.ref),
            *(
                d
                for endpoint in served
                if endpoint != version.ref
                for d in governance.decisions(endpoint)
                if d.id in decided
            ),
        ],
        key=lambda d: (d.at, d.id),
    )
    named = {version.id: (version.name, version.version)}
    granted, ungranted = governance.exception_split(named)[version.id]
    exceptions = sorted(granted, key=lambda e: (e.expires_at, e.id))
    thresholds = []
    for metric, threshold in sorted(controls.evaluation.items()):
        value = version.metrics.get(metric)
        breach = threshold.breach(value)
        thresholds.append(
            {
                "id": f"threshold:{version.id}#{metric}",
                "metric": metric,
                "min": threshold.min,
                "max": threshold.max,
                "value": value,
                "met": breach is None,
                "detail": breach or "met",
            }
        )
    comparisons = [
        {"id": e["id"], "at": e["at"], "actor": e["actor"], **e["details"]}
        for e in events
        if e["action"] == "model.comparison"
    ]
    # Alerts raised on an endpoint while it served the version (live or shadow), not before
    # the version came or after it left.
    alerts = [
        {"id": e["id"], "at": e["at"], "endpoint": e["subject"], **e["details"]}
        for e in events
        if e["action"] == "alert.raise"
        and _serving_at(served.get(e["subject"], []), datetime.fromisoformat(e["at"]))
    ]
    chain = platform.verify_audit()
    records = _records(platform)
    upstream = platform.lineage.walk(f"model_version:{version.id}", "up")
    downstream = platform.lineage.walk(f"model_version:{version.id}", "down")
    redactor = Redactor.for_platform(platform)
    inventory = entry_for(
        platform,
        version,
        now=as_of,
        serving=serving_index(platform).get((version.name, version.version), ()),
        production=production,
        policy=policy,
        approvals=counted,
        exceptions=granted,
        by_chain=True,
    ).model_dump(mode="json")

    pack: Pack = {
        "format": FORMAT,
        "as_of": {"audit_seq": head_seq, "audit_hash": head_hash, "at": head_at},
        "subject": {
            "id": version.id,
            "ref": version.ref,
            "name": version.name,
            "version": version.version,
            "artifact_digest": version.artifact_digest,
            "artifact_uri": version.artifact_uri,
            "flavor": version.flavor.value,
            "tier": version.risk_tier.value,
            "stage": version.stage.value,
            "owner": version.owner,
            "aliases": sorted(version.aliases),
            "backend": version.backend,
            "backend_ids": version.backend_ids,
            "run_id": version.run_id,
            "code_commit": version.code_commit,
            "dataset_ids": list(version.dataset_ids),
            "params": version.params,
            "tags": version.tags,
            "signature": version.signature.model_dump(mode="json"),
            "created_at": version.created_at.isoformat(),
        },
        "policy": {
            "id": f"policy:{policy.digest}",
            "version": policy.version,
            "digest": policy.digest,
            "source": policy.source,
            "tier": version.risk_tier.value,
            "controls": controls.model_dump(mode="json"),
            "production_aliases": list(production),
            "production_aliases_policy": judged_by,
            "activations": [_activation(a) for a in recorded],
            "unreadable": None if unread is None else _unreadable(unread, policy),
        },
        "environment": {
            "backend": platform.backend.name,
            "backend_description": platform.backend.describe(),
            "backend_settings": platform.config.backend_settings,
            "capabilities": _capabilities(platform, version),
            "store_url": redactor.url(platform.store.url),
            "home": str(platform.home),
        },
        "inventory": {**inventory, "version_id": version.id, "id": f"inventory:{version.ref}"},
        "model_card": _card(platform, version, controls.documentation),
        "approvals": approvals,
        "policy_decisions": [d.model_dump(mode="json") for d in decisions],
        "exceptions": [
            *(
                {
                    **e.model_dump(mode="json"),
                    "in_force_at_as_of": e.expires_at > as_of,
                    "recorded": True,
                }
                for e in exceptions
            ),
            *(_unrecorded_exception(e) for e in ungranted),
        ],
        "evaluations": {
            "metrics": {"id": f"metrics:{version.id}", "values": version.metrics},
            "thresholds": thresholds,
            "comparisons": comparisons,
        },
        "artifact": {"id": f"artifact:{version.artifact_digest}"},
        "deployments": [
            {"endpoint": life.endpoint, "incarnation": life.number, "history": life.timeline}
            for life in history
        ],
        "monitoring": _monitoring(platform, version.name, served, alerts),
        "lineage": {"upstream": _graph(upstream), "downstream": _graph(downstream)},
        "audit": {
            "chain": {
                "id": f"audit-chain:{head_seq}",
                "verified": chain.ok,
                "events": chain.events,
                "first_bad_seq": chain.first_bad_seq,
                "reason": chain.reason,
                "head_seq": head_seq,
                "head_hash": head_hash,
                "records": records,
            },
            "link": (
                "hash = sha256(ascii(prev_hash) || utf8(canonical)); canonical is RFC 8785 JSON"
            ),
            "events": events,
        },
    }
    return pack


def _records(platform: Platform) -> dict[str, Any]:
    """The approvals and exceptions tables of the whole store cross-checked with the chain, as
    ``mintaka audit verify`` reports it: a row no audit event records as it stands, or an event
    whose row is gone, is named by id. The chain can verify while such rows exist, so the pack
    says both."""
    report = check_records(platform.store)
    found = len(report.unrecorded) + len(report.missing)
    return {
        **report.model_dump(mode="json"),
        "scope": "store",
        "detail": (
            "every approval and exception row in the store is recorded by its audit event"
            if report.ok
            else f"{found} approval or exception record(s) in the store disagree with the audit "
            "chain (rows written or changed outside Mintaka, or rows gone); such rows count "
            "nowhere"
        ),
    }


def _unrecorded(approval: Approval, version: ModelVersion) -> dict[str, Any]:
    """An approval row no ``model.approve`` audit event records: listed, never counted."""
    return {
        "id": approval.id,
        "approver": approval.approver.name,
        "identity_source": approval.approver.source.value,
        "authenticated": approval.approver.authenticated,
        "role": approval.role,
        "at": approval.at.isoformat(),
        "comment": approval.comment,
        "artifact_digest": approval.artifact_digest,
        "current": approval.artifact_digest == version.artifact_digest,
        "counts": False,
        "independent": False,
        "recorded": False,
        "reason": (
            "no model.approve audit event records this approval as stored; the approvals "
            "table was written outside Mintaka, so it does not count"
        ),
    }


def _unrecorded_exception(exception: PolicyException) -> dict[str, Any]:
    """An exception row no ``policy.exception`` audit event records: listed, never applied."""
    return {
        **exception.model_dump(mode="json"),
        "in_force_at_as_of": False,
        "recorded": False,
        "reason": (
            "no policy.exception audit event records this exception as stored; the exceptions "
            "table was written outside Mintaka, so it waives nothing"
        ),
    }


def _activation(activation: PolicyActivation) -> dict[str, Any]:
    return {
        "id": f"audit:{activation.seq}",
        **activation.model_dump(mode="json"),
    }


def _unreadable(activation: PolicyActivation, judge: Policy) -> dict[str, Any]:
    """What the pack says when the policy in force at its instant could not be read back and
    ``judge``, the policy in force when the pack was built, judged it in its stead."""
    return {
        "id": f"audit:{activation.seq}",
        "digest": activation.digest,
        "version": activation.version,
        "reason": activation.unreadable,
        "judged_by": judge.digest,
        "detail": (
            f"the policy in force at this pack's instant, {activation.version} "
            f"({activation.digest}, audit event {activation.seq}), could not be read: "
            f"{activation.unreadable}; controls, approvals and revalidation are judged by the "
            f"policy in force when the pack was built, {judge.version} ({judge.digest})"
        ),
    }


def _mark_production_aliases(
    events: Sequence[dict[str, Any]],
    recorded: Sequence[PolicyActivation],
    current: Policy,
) -> None:
    """Say of each alias move whether the alias was a production alias under the policy in
    force when it moved, in chain order (``current`` where no policy is recorded)."""
    for event in events:
        if event["action"] in ("model.alias.set", "model.alias.delete"):
            production = production_aliases_at(recorded, int(event["seq"]), current)[1]
            event["production_alias"] = event["subject"].partition("@")[2] in production


def _redacted_canonical(canonical: str, redactor: Redactor) -> str:
    """``canonical`` with secrets redacted as the event's decoded fields are (by key as well
    as in text), re-encoded as the chain encodes events; unchanged when it holds no secret,
    so that its link still verifies from the pack."""
    body = json.loads(canonical)
    safe = redactor.value(body)
    return canonical if safe == body else canonical_bytes(safe).decode("utf-8")


def _mark_redacted_links(pack: Pack) -> None:
    """An event whose canonical bytes had to be redacted can no longer be re-hashed from the
    pack; say so instead of presenting a link that does not verify."""
    for event in pack["audit"]["events"]:
        raw = event["canonical"].encode("utf-8")
        recomputed = hashlib.sha256(event["prev_hash"].encode("ascii") + raw).hexdigest()
        event["link_verifiable"] = recomputed == event["hash"]
        if not event["link_verifiable"]:
            event["note"] = (
                "canonical bytes redacted (they held a secret); verify this link against the "
                "store with `mintaka audit verify`"
            )


# -- rendering -------------------------------------------------------------------------------


def render_json(pack: Pack) -> bytes:
    """The pack as deterministic JSON: sorted keys, two-space indent, UTF-8, final newline."""
    return (json.dumps(pack, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


_KIND_COLOURS = {
    "dataset": "#4c9be8",
    "run": "#f0a030",
    "model_version": "#58b368",
    "deployment": "#b070d0",
    "prediction": "#a0a0a0",
    "prediction_batch": "#a0a0a0",
    "decision": "#e05858",
    "pipeline_run": "#d0c040",
}


def lineage_png(pack: Pack) -> bytes:
    """The lineage sub-graph (upstream and downstream of the version) as PNG bytes.

    Layout is computed, not random (columns by topological generation, rows by node id), and
    the PNG carries no time or software metadata, so the same graph gives the same bytes with
    the same matplotlib and fonts.
    """
    import networkx as nx
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    lineage = pack["lineage"]
    nodes = {n["id"]: n for part in ("upstream", "downstream") for n in lineage[part]["nodes"]}
    edges = {
        (e["src"], e["dst"]) for part in ("upstream", "downstream") for e in lineage[part]["edges"]
    }
    graph = nx.DiGraph()
    graph.add_nodes_from(sorted(nodes))
    graph.add_edges_from(sorted(edges))
    try:
        generations = [sorted(g) for g in nx.topological_generations(graph)]
    except nx.NetworkXUnfeasible:  # a cycle: fall back to one column
        generations = [sorted(graph.nodes)]
    drawn: list[str] = []
    position: dict[str, tuple[float, float]] = {}
    for column, generation in enumerate(generations):
        for row, node in enumerate(generation):
            if len(drawn) >= MAX_DRAWN_NODES:
                break
            drawn.append(node)
            position[node] = (float(column), -float(row))
    width = max(4.0, 2.6 * len(generations))
    height = max(2.5, 0.9 * max((len(g) for g in generations), default=1))
    figure = Figure(figsize=(min(width, 24.0), min(height, 30.0)), dpi=90)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.set_axis_off()
    root = pack["lineage"]["upstream"]["root"]
    boxes = {}
    for node in drawn:
        x, y = position[node]
        info = nodes[node]
        label = (info["label"] or info["key"])[:28]
        boxes[node] = axes.text(
            x,
            y,
            f"{info['kind']}\n{label}",
            ha="center",
            va="center",
            fontsize=7,
            bbox={
                "boxstyle": "round,pad=0.3",
                "facecolor": _KIND_COLOURS.get(info["kind"], "#dddddd"),
                "edgecolor": "black" if node == root else "none",
                "linewidth": 1.5,
            },
        )
    for src, dst in sorted(edges):
        if src in boxes and dst in boxes:
            axes.annotate(
                "",
                xy=(0.0, 0.5),
                xycoords=boxes[dst],
                xytext=(1.0, 0.5),
                textcoords=boxes[src],
                arrowprops={"arrowstyle": "-|>", "color": "#444444", "shrinkA": 4, "shrinkB": 4},
            )
    if len(drawn) < len(nodes):
        axes.set_title(f"{len(nodes) - len(drawn)} more nodes not drawn", fontsize=8)
    xs = [p[0] for p in position.values()] or [0.0]
    ys = [p[1] for p in position.values()] or [0.0]
    axes.set_xlim(min(xs) - 0.6, max(xs) + 0.6)
    axes.set_ylim(min(ys) - 0.6, max(ys) + 0.6)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def render_html(pack: Pack, png_base64: str) -> str:
    """The self-contained HTML report (autoescaped), with the lineage picture as base64 PNG."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    environment = Environment(
        loader=FileSystemLoader(str(Path(__file__).with_name("templates"))),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    environment.filters["pretty"] = lambda v: json.dumps(v, sort_keys=True, indent=2)
    template = environment.get_template(TEMPLATE)
    return template.render(pack=pack, lineage_png=png_base64)


@dataclass(frozen=True)
class ExportedPack:
    json_path: Path
    html_path: Path
    gaps: int
    controls: int
    unreadable_policy: str | None = None  # why the policy in force at the pack's instant was not


def export_evidence(platform: Platform, ref: str, out: str | Path) -> ExportedPack:
    """Write ``<name>-v<version>.evidence.json`` and ``.html`` under ``out``."""
    pack = build_pack(platform, ref)
    directory = Path(out)
    directory.mkdir(parents=True, exist_ok=True)
    stem = f"{pack['subject']['name']}-v{pack['subject']['version']}.evidence"
    json_path = directory / f"{stem}.json"
    html_path = directory / f"{stem}.html"
    json_path.write_bytes(render_json(pack))
    # The pack is redacted already; scrub the rendered page once more around the picture
    # (base64 is left alone: a chance match inside it would only corrupt the image).
    placeholder = "MINTAKA-LINEAGE-PNG"
    page = Redactor.for_platform(platform).text(render_html(pack, placeholder))
    picture = base64.b64encode(lineage_png(pack)).decode("ascii")
    html_path.write_text(page.replace(placeholder, picture, 1), encoding="utf-8")
    log.info("evidence pack for %s written to %s", pack["subject"]["ref"], directory)
    return ExportedPack(
        json_path=json_path,
        html_path=html_path,
        gaps=pack["controls"]["gaps"],
        controls=len(pack["controls"]["results"]),
        unreadable_policy=(pack["policy"]["unreadable"] or {}).get("detail"),
    )
