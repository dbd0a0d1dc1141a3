"""The one check every traffic change passes through, before any backend call.

Every way traffic can move (a new endpoint, a deploy, a weight change, a rollout step, a
rollback, the kill switch) builds a :class:`TrafficChange` and asks :func:`traffic_controls` for
the controls it must meet: the built-in serving rules, and for every version that would take
live traffic the policy's production controls (approvals of these exact bytes, documentation,
evaluation thresholds) and the tier's allowed rollout strategies. A shadow route takes copies,
never answers, so it needs no production sign-off; an archived version takes no traffic at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from mintaka.domain.monitoring import MonitorSpec
from mintaka.domain.registry import ModelVersion, RiskTier, Stage
from mintaka.domain.serving import RolloutStrategy, Route, TrafficMap
from mintaka.governance.service import Control, GovernanceService

# A first deployment has no live traffic to protect, an adopted endpoint's traffic is already
# live, and a rollback or the kill switch (either way) changes no version mix that a rollout
# strategy would govern.
UNSTRATEGIC = frozenset(
    {
        "endpoint.create",
        "endpoint.adopt",
        "endpoint.rollback",
        "endpoint.kill",
        "endpoint.unkill",
    }
)


@dataclass(frozen=True)
class TrafficChange:
    endpoint: str
    action: str
    routes: Sequence[Route]
    traffic: TrafficMap
    versions: dict[str, ModelVersion]  # route name -> version it serves
    killed: bool
    strategy: RolloutStrategy = RolloutStrategy.DIRECT
    previous: TrafficMap | None = None  # the traffic before the change, if the endpoint exists
    # Monitors recorded with the change (a new endpoint's), counted for ``monitors_required``.
    monitors: Sequence[MonitorSpec] = ()


def traffic_controls(change: TrafficChange, governance: GovernanceService) -> list[Control]:
    controls = [
        Control(
            "killed-endpoint-stays-killed",
            not change.killed or change.action in {"endpoint.kill", "endpoint.unkill"},
            f"{change.endpoint} is killed; release it with unkill",
        )
    ]
    if change.action == "endpoint.kill":
        # Pulling the switch never waits for sign-off, nor for the traffic it stops to be clean.
        return controls
    live = sorted(r for r, w in change.traffic.weights.items() if w > 0)
    watched = set(live) | ({change.traffic.shadow} if change.traffic.shadow else set())
    for route in sorted(watched):
        version = change.versions.get(route)
        if version is not None and version.stage is Stage.ARCHIVED:
            controls.append(
                Control(
                    "archived-versions-take-no-traffic",
                    False,
                    f"{version.ref} is archived",
                    version.id,
                )
            )
    seen: dict[str, ModelVersion] = {}
    for route in live:
        version = change.versions.get(route)
        if version is None or version.id in seen:
            continue
        seen[version.id] = version
        controls += [
            Control(c.name, c.met, f"{route}: {c.detail}", c.version_id)
            for c in governance.production_controls(version, monitored_by=change.monitors)
            if c.name != "not-archived"
        ]
    unchanged_mix = (
        change.previous is not None and change.previous.live_weights == change.traffic.live_weights
    )
    if seen and change.action not in UNSTRATEGIC and not unchanged_mix:
        controls.append(_strategy_control(change, list(seen.values()), governance))
    return controls


def _strategy_control(
    change: TrafficChange, versions: Sequence[ModelVersion], governance: GovernanceService
) -> Control:
    """One ``rollout-strategy`` control for the change: met when every live version's tier
    allows the strategy; otherwise it names each refusing version once, with the one hint, and
    only exceptions for every refusing version let it pass."""
    refusing = [
        v
        for v in versions
        if change.strategy not in governance.policy.controls(v.risk_tier).allowed_strategies
    ]
    by_tier: dict[str, list[str]] = {}
    for version in refusing:
        by_tier.setdefault(version.risk_tier.value, []).append(version.ref)
    said = [
        f"{' and '.join(refs)} {'is' if len(refs) == 1 else 'are'} {tier} tier, which allows "
        f"{[s.value for s in governance.policy.controls(RiskTier(tier)).allowed_strategies]}"
        for tier, refs in by_tier.items()
    ]
    hint = (
        f" (roll it out with `mintaka rollout {change.endpoint} --to ROUTE`)"
        if change.strategy is RolloutStrategy.DIRECT
        else ""
    )
    return Control(
        "rollout-strategy",
        not refusing,
        f"{', and '.join(said)}, not {change.strategy.value}{hint}",
        version_ids=tuple(v.id for v in refusing),
    )
