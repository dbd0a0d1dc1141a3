"""The rollout controller: walk a traffic plan, verify the SLA at each step, roll back on breach.

It drives any backend through the traffic interface, so the same plan behaves the same on every
cloud. Before the first step the current traffic is marked known-good; each step sets its weights
(through the traffic gate), bakes for ``bake_seconds`` (the injected ``wait`` lets tests move a
manual clock instead of sleeping), reads the endpoint's metrics for exactly that window, and
promotes only when the SLA holds for every route taking traffic. On a breach it restores the
known-good traffic map, audits the rollback and raises an alert, which opens a ticket. A
finished rollout's final map becomes the new known-good.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mintaka.domain.serving import (
    SLA,
    Endpoint,
    EndpointMetrics,
    RolloutStrategy,
    TrafficPlan,
    TrafficStep,
)
from mintaka.errors import ValidationError

if TYPE_CHECKING:
    from mintaka.platform import Platform


@dataclass(frozen=True)
class StepResult:
    index: int
    weights: dict[str, int]
    metrics: EndpointMetrics
    breaches: tuple[str, ...]


@dataclass
class RolloutResult:
    endpoint: str
    promoted: bool
    steps: list[StepResult] = field(default_factory=list)
    rolled_back_to: dict[str, int] | None = None

    @property
    def breaches(self) -> tuple[str, ...]:
        return tuple(b for step in self.steps for b in step.breaches)


def sla_breaches(sla: SLA, metrics: EndpointMetrics, routes: list[str]) -> list[str]:
    """Every way ``metrics`` break ``sla`` on the given routes (empty when it holds)."""
    found = []
    for route in routes:
        requests = metrics.requests.get(route, 0)
        if requests < sla.min_requests:
            found.append(
                f"{route}: {requests} requests in the window, fewer than the "
                f"{sla.min_requests} needed to verify the SLA"
            )
            continue
        if sla.max_error_rate is not None:
            rate = metrics.errors.get(route, 0) / requests
            if rate > sla.max_error_rate:
                found.append(f"{route}: error rate {rate:.4f} > {sla.max_error_rate}")
        if sla.p99_latency_ms is not None:
            p99 = metrics.p99_latency_ms.get(route, 0.0)
            if p99 > sla.p99_latency_ms:
                found.append(f"{route}: p99 latency {p99:.2f} ms > {sla.p99_latency_ms} ms")
    for name, limit in sla.custom.items():
        value = metrics.custom.get(name)
        if value is None:
            found.append(f"custom metric {name!r} missing")
        elif value > limit:
            found.append(f"custom metric {name!r} = {value} > {limit}")
    return found


def plan_steps(
    plan: TrafficPlan, challenger: str, champion: str, bake_seconds: float = 60.0
) -> TrafficPlan:
    """Fill a plan's steps from its strategy when none are given (canary 10/50/100, ...)."""
    if plan.steps:
        return plan
    shares = {
        RolloutStrategy.CANARY: [10, 50, 100],
        RolloutStrategy.LINEAR: [25, 50, 75, 100],
        RolloutStrategy.BLUE_GREEN: [100],
        RolloutStrategy.DIRECT: [100],
    }.get(plan.strategy)
    if shares is None:
        raise ValidationError(f"a {plan.strategy.value} plan needs explicit steps")
    steps = [
        TrafficStep(
            weights={challenger: share, champion: 100 - share}
            if share < 100
            else {challenger: 100},
            bake_seconds=bake_seconds,
        )
        for share in shares
    ]
    return plan.model_copy(update={"steps": steps})


def check_plan(plan: TrafficPlan, endpoint: Endpoint) -> None:
    """A plan has steps, and every route it weighs is on ``endpoint``."""
    if not plan.steps:
        raise ValidationError("a rollout plan needs at least one step")
    routes = {r.name for r in endpoint.routes}
    for step in plan.steps:
        unknown = set(step.weights) - routes
        if unknown:
            raise ValidationError(f"plan names routes {sorted(unknown)} not on {plan.endpoint}")


class RolloutController:
    def __init__(self, platform: Platform, *, wait: Callable[[float], None] | None = None) -> None:
        self.platform = platform
        self.wait = wait or time.sleep

    def run(self, plan: TrafficPlan) -> RolloutResult:
        platform = self.platform
        endpoint = platform.serving.get_endpoint(plan.endpoint)
        check_plan(plan, endpoint)
        start = plan.rollback_to or endpoint.traffic
        platform.serving.mark_known_good(plan.endpoint)
        result = RolloutResult(endpoint=plan.endpoint, promoted=False)
        for index, step in enumerate(plan.steps, start=1):
            platform.serving.set_traffic(
                plan.endpoint,
                step.weights,
                shadow=plan.shadow,
                shadow_percent=plan.shadow_percent if plan.shadow else 0,
                strategy=plan.strategy,
                reason=f"rollout step {index}/{len(plan.steps)}",
            )
            window_start = platform.clock.now()
            self.wait(step.bake_seconds)
            window_end = platform.clock.now()
            metrics = platform.serving.endpoint_metrics(plan.endpoint, window_start, window_end)
            live = sorted(name for name, weight in step.weights.items() if weight > 0)
            breaches = tuple(sla_breaches(plan.sla, metrics, live))
            result.steps.append(StepResult(index, dict(step.weights), metrics, breaches))
            if breaches:
                platform.serving.set_traffic(
                    plan.endpoint,
                    start.weights,
                    shadow=start.shadow,
                    shadow_percent=start.shadow_percent,
                    strategy=RolloutStrategy.DIRECT,
                    reason=f"automatic rollback at step {index}: " + "; ".join(breaches),
                    known_good=True,
                    action="endpoint.rollback",
                )
                result.rolled_back_to = dict(start.weights)
                platform.monitoring.raise_alert(
                    "rollout-sla",
                    plan.endpoint,
                    severity="critical",
                    details={"step": index, "breaches": list(breaches)},
                )
                return result
        platform.serving.mark_known_good(plan.endpoint)
        result.promoted = True
        return result
