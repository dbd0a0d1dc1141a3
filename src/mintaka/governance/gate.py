"""The one check every traffic change passes through, before any backend call.

Every way traffic can move (a new endpoint, a deploy, a weight change, a rollout step, a
rollback, the kill switch) calls :func:`evaluate_traffic_change`. It evaluates the built-in
serving controls and returns a :class:`PolicyDecision`; the caller audits it, and on a deny
raises :class:`PolicyViolation` listing every unmet control. Policy-as-code controls (approvals,
risk tiers, exceptions) plug in here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from mintaka.domain.governance import PolicyDecision
from mintaka.domain.registry import ModelVersion, Stage
from mintaka.domain.serving import Route, TrafficMap

BUILTIN_POLICY = "mintaka-builtin-serving/1"
BUILTIN_DIGEST = "sha256:" + hashlib.sha256(BUILTIN_POLICY.encode()).hexdigest()


@dataclass(frozen=True)
class TrafficChange:
    endpoint: str
    action: str
    routes: Sequence[Route]
    traffic: TrafficMap
    versions: dict[str, ModelVersion]  # route name -> version it serves
    killed: bool
    actor: str
    at: datetime


def evaluate_traffic_change(change: TrafficChange, decision_id: str) -> PolicyDecision:
    checked = ["archived-versions-take-no-traffic", "killed-endpoint-stays-killed"]
    unmet: list[str] = []
    live = {r for r, w in change.traffic.weights.items() if w > 0}
    if change.traffic.shadow:
        live.add(change.traffic.shadow)
    for route in sorted(live):
        version = change.versions.get(route)
        if version is not None and version.stage is Stage.ARCHIVED:
            unmet.append(f"archived-versions-take-no-traffic: {version.ref} is archived")
    if change.killed and change.action not in {"endpoint.kill", "endpoint.unkill"}:
        unmet.append(
            f"killed-endpoint-stays-killed: {change.endpoint} is killed; release it with unkill"
        )
    return PolicyDecision(
        id=decision_id,
        action=change.action,
        subject=change.endpoint,
        allowed=not unmet,
        controls_checked=tuple(checked),
        unmet=tuple(unmet),
        policy_digest=BUILTIN_DIGEST,
        actor=change.actor,
        at=change.at,
    )
