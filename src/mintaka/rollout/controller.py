"""The rollout controller: walk a traffic plan, verify the SLA at each step, roll back on breach.

It drives any backend through the traffic interface, so the same plan behaves the same on every
cloud. A plan is checked whole before anything changes (its routes, its shadow, its rollback
target and the gate's word on that target), and a rollout does not start on a killed endpoint nor
on one whose latest change is another rollout's unfinished step. Before the first step the
current traffic is marked known-good; each step sets its weights (through the traffic gate),
bakes for ``bake_seconds`` (the injected ``wait`` lets tests move a manual clock instead of
sleeping), reads the endpoint's metrics for exactly that window, and promotes only when the SLA
holds for every route taking traffic. A route's requests refused as invalid beyond the share the
routes the rollout started from refused count as its errors (see :func:`sla_breaches`; a route
the plan moves traffic onto is never part of that baseline, see :func:`baseline_routes`; a step
before any where the baseline took traffic, as a blue-green switch, is judged by what it refused
just before the rollout, see :meth:`RolloutController._refusals_before`); the
shadow route a step keeps (the plan's, or the endpoint's own) is judged on the copies it
answered (:func:`shadow_breaches`). On a
breach it restores the known-good traffic map, audits the rollback and raises an alert, which
opens a ticket. A finished rollout's final map becomes the new known-good.
"""

from __future__ import annotations

import logging
import math
import signal
import time
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from mintaka.capabilities import Capability
from mintaka.domain.serving import (
    SLA,
    Deployment,
    Endpoint,
    EndpointMetrics,
    EndpointStatus,
    RolloutStrategy,
    TrafficMap,
    TrafficPlan,
    TrafficStep,
)
from mintaka.errors import (
    Conflict,
    MintakaError,
    UnsupportedCapability,
    ValidationError,
    invalid_fields,
)
from mintaka.interfaces.monitoring import MetricsSource
from mintaka.rollout.steps import NATIVE_STEP_SHARES, STEP_SHARES

# How a rollout step's deployment reason starts: "rollout step <index>/<steps>".
STEP_REASON = "rollout step "
# How the deployment reason of a native rollout's start starts: NATIVE_REASON + id [+ ": " + why].
NATIVE_REASON = "native rollout "


def native_rollout_unrecorded(latest: Deployment, rollout: str) -> Conflict:
    """The refusal of a change while ``latest``, the start of native rollout ``rollout``, has
    no recorded end: the cloud may still be walking it, and a change made now would leave its
    end unknowable (the cloud then serves that change, which reads as a rollback)."""
    return Conflict(
        f"{latest.endpoint} has a native rollout under way ({rollout}, started by "
        f"{latest.actor} at {latest.at.isoformat()}) whose end is not recorded: ask where it "
        f"stands with `mintaka rollout-status {latest.endpoint} {rollout}` (its end is recorded "
        "once the cloud has finished) before changing the endpoint's traffic or routes or "
        f"starting another rollout; `mintaka kill {latest.endpoint}` still stops it (an "
        f"endpoint deleted outside Mintaka: `mintaka endpoints delete {latest.endpoint}`)"
    )


def rollout_of(reason: str) -> str | None:
    """The rollout id a deployment's reason names, when a native rollout's start wrote it."""
    if not reason.startswith(NATIVE_REASON):
        return None
    return reason[len(NATIVE_REASON) :].split(": ", 1)[0] or None


if TYPE_CHECKING:
    from mintaka.platform import Platform

log = logging.getLogger(__name__)


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
    # Set when the rollback after a breach was refused (or failed) and the kill switch was
    # pulled instead: why the rollback did not happen.
    killed_because: str | None = None

    @property
    def breaches(self) -> tuple[str, ...]:
        return tuple(b for step in self.steps for b in step.breaches)


@dataclass(frozen=True)
class Refusals:
    """The requests the baseline routes refused as invalid, of those they answered (pooled), in
    the last window they took traffic in."""

    refused: int
    answered: int

    @property
    def share(self) -> float:
        return self.refused / self.answered if self.answered else 0.0


def refusals_of(metrics: EndpointMetrics, routes: Collection[str]) -> Refusals | None:
    """The requests ``routes`` refused as invalid in the window, of those they answered
    (pooled), None when they answered none."""
    answered = sum(metrics.requests.get(route, 0) for route in routes)
    if not answered:
        return None
    return Refusals(sum(metrics.invalid.get(route, 0) for route in routes), answered)


# The false-alarm rate of the test that tells a route refusing more requests than the baseline
# from one refusing as many by chance (see :func:`excess_refusals`).
REFUSAL_FALSE_ALARM = 0.001


def excess_refusals(refused: int, requests: int, baseline: Refusals | float) -> int:
    """The requests out of ``requests`` a route refused as invalid beyond the share the
    ``baseline`` refused, counted only when the excess is clear; otherwise none.

    The baseline is a sample (its ``Refusals``): the excess is clear when a route refusing as
    the baseline does (the clients' own bad requests) would show a split of refusals between
    the two at least this lopsided with a chance below ``REFUSAL_FALSE_ALARM`` (a one-sided
    Fisher's exact test), so a small baseline that happened to refuse none does not make a
    route's single refusal a breach. A bare share is taken as exact (a one-sided binomial test):
    with a share of 0 every refused request counts."""
    share = baseline.share if isinstance(baseline, Refusals) else baseline
    beyond = refused - share * requests
    if beyond <= 1e-9:
        return 0
    from scipy.stats import binom, fisher_exact

    if isinstance(baseline, Refusals):
        table = [
            [refused, max(requests - refused, 0)],
            [baseline.refused, max(baseline.answered - baseline.refused, 0)],
        ]
        chance = float(fisher_exact(table, alternative="greater").pvalue)
    else:  # the chance of refusing this many or more at the share
        chance = float(binom.sf(refused - 1, requests, share))
    if chance >= REFUSAL_FALSE_ALARM:
        return 0
    return math.ceil(beyond - 1e-9)


def sla_breaches(
    sla: SLA,
    metrics: EndpointMetrics,
    routes: list[str],
    *,
    refusals: Refusals | float | None = None,
    baseline: Collection[str] = (),
) -> list[str]:
    """Every way ``metrics`` break ``sla`` on the given routes (empty when it holds).

    A route's errors count against ``max_error_rate``. With ``refusals`` (the requests the
    ``baseline`` routes refused as invalid, i.e. the clients' own bad requests, or their share
    taken as exact), so do the requests a route outside ``baseline`` refused beyond that share,
    once the excess is more than chance (see :func:`excess_refusals`): a version that refuses
    what the baseline answers (it needs a feature the clients do not send) fails the SLA, one
    refusing as the baseline does holds it.
    """
    found = []
    for route in routes:
        requests = metrics.requests.get(route, 0)
        if requests < sla.min_requests:
            found.append(
                f"{route}: {requests} requests in the window, fewer than the "
                f"{sla.min_requests} needed to verify the SLA"
            )
            continue
        if sla.max_error_rate is not None and requests:
            refused = 0
            if refusals is not None and route not in baseline:
                refused = excess_refusals(metrics.invalid.get(route, 0), requests, refusals)
            rate = (metrics.errors.get(route, 0) + refused) / requests
            if rate > sla.max_error_rate:
                share = refusals.share if isinstance(refusals, Refusals) else refusals
                why = (
                    f" (counting {refused} requests refused as invalid beyond the share "
                    f"{share:.4f} the baseline refused)"
                    if refused
                    else ""
                )
                found.append(f"{route}: error rate {rate:.4f} > {sla.max_error_rate}{why}")
        if sla.p99_latency_ms is not None:
            p99 = metrics.p99_latency_ms.get(route)
            # Requests the route refused or failed may carry no latency (the error rate judges
            # those); answered ones with none read back are not 0 ms: nothing says it held.
            answered = requests - metrics.errors.get(route, 0) - metrics.invalid.get(route, 0)
            if p99 is None and answered > 0:
                found.append(
                    f"{route}: no p99 latency read back for its {answered} answered requests"
                )
            elif p99 is not None and p99 > sla.p99_latency_ms:
                found.append(f"{route}: p99 latency {p99:.2f} ms > {sla.p99_latency_ms} ms")
    for name, limit in sla.custom.items():
        value = metrics.custom.get(name)
        if value is None:
            found.append(f"custom metric {name!r} missing")
        elif value > limit:
            found.append(f"custom metric {name!r} = {value} > {limit}")
    return found


def shadow_breaches(
    plan: TrafficPlan,
    shadow: str | None,
    metrics: EndpointMetrics,
    refusals: Refusals | float,
    baseline: Collection[str],
) -> tuple[str, ...]:
    """Every way the copies of requests the step's ``shadow`` route answered (the plan's, or the
    endpoint's own the step keeps, see :func:`step_shadow`) break the plan's SLA (its custom
    metrics aside, judged with the live ones): a shadowed version is judged as if it took the
    traffic, before it is promoted. The endpoint's own shadow, which the plan does not name, is
    held to the error rate and latency on the copies it answered, not to ``min_requests`` (a
    small share of copies of an unrelated experiment blocks no rollout)."""
    if not shadow:
        return ()
    copies = metrics.shadow or EndpointMetrics(
        endpoint=metrics.endpoint, start=metrics.start, end=metrics.end
    )
    update: dict[str, object] = {"custom": {}}
    if shadow != plan.shadow:
        update["min_requests"] = 0
    sla = plan.sla.model_copy(update=update)
    found = sla_breaches(sla, copies, [shadow], refusals=refusals, baseline=baseline)
    return tuple(f"shadow {breach}" for breach in found)


def baseline_routes(plan: TrafficPlan, start: TrafficMap, endpoint: Endpoint) -> set[str]:
    """The routes whose refused requests are the clients' own, which the others' are compared
    with (see :func:`sla_breaches`): those live in ``start``, the traffic the rollout starts
    from, less every route the plan moves traffic onto (a higher weight in its last step than in
    ``start``) and every shadow its steps keep. A challenger already taking some traffic when
    the rollout starts is so judged, never the measure it is judged by; a champion whose weight
    rises in a step on the way (from an even split, say) stays the measure."""
    moved = {
        route
        for step in plan.steps[-1:]
        for route, weight in step.weights.items()
        if weight > start.weights.get(route, 0)
    }
    shadows = {step_shadow(plan, step, endpoint)[0] for step in plan.steps}
    live = {route for route, weight in start.weights.items() if weight > 0}
    return live - moved - {shadow for shadow in shadows if shadow}


def plan_steps(
    plan: TrafficPlan,
    challenger: str,
    champion: str,
    bake_seconds: float = 60.0,
    *,
    native: bool = False,
) -> TrafficPlan:
    """Fill a plan's steps from its strategy when none are given (canary 10/50/100, ...); a
    ``native`` plan takes ``NATIVE_STEP_SHARES`` (canary 10/100, ...), which a cloud's own
    deployment policy walks as written."""
    if plan.steps:
        return plan
    shares = (NATIVE_STEP_SHARES if native else STEP_SHARES).get(plan.strategy.value)
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
    """A plan has steps; every route it names (in its steps, its shadow and its rollback target)
    is on ``endpoint``; each step with the plan's shadow is a valid traffic map (the shadow never
    takes live traffic); and the rollback target sends live traffic somewhere."""
    if not plan.steps:
        raise ValidationError("a rollout plan needs at least one step")
    named = {route for step in plan.steps for route in step.weights}
    if plan.shadow:
        named.add(plan.shadow)
    if plan.rollback_to is not None:
        named |= set(plan.rollback_to.weights)
        if plan.rollback_to.shadow:
            named.add(plan.rollback_to.shadow)
    unknown = named - {r.name for r in endpoint.routes}
    if unknown:
        raise ValidationError(f"plan names routes {sorted(unknown)} not on {plan.endpoint}")
    for index, step in enumerate(plan.steps, start=1):
        if not step.weights:
            raise ValidationError(f"step {index} of the plan sends traffic to no route")
        try:
            TrafficMap(weights=step.weights, shadow=plan.shadow, shadow_percent=plan.shadow_percent)
        except ValueError as exc:  # pydantic's ValidationError is a ValueError
            raise ValidationError(
                f"step {index} of the plan is no valid traffic map: {invalid_fields(exc)}"
            ) from exc
    if plan.rollback_to is not None and not plan.rollback_to.weights:
        raise ValidationError("the plan's rollback_to sends traffic to no route")


def check_judgeable(plan: TrafficPlan, platform: Platform, endpoint: Endpoint) -> None:
    """The backend reads the metrics the plan is judged on: every route's, and the shadow's
    apart from live traffic when a step keeps a shadow route (the plan's, or the one
    ``endpoint`` already has, see :func:`step_shadow`); otherwise the plan is refused with
    ``UnsupportedCapability`` (a step it cannot judge would be promoted unjudged). A custom
    metric of the SLA the backend does not report is a ``ValidationError`` (the SLA could never
    hold: every rollout would be rolled back)."""
    source = platform._area(
        Capability.MONITORING_METRICS,
        MetricsSource,
        "a rollout judges each step on the endpoint's metrics",
    )
    reported = source.custom_metrics()
    unknown = sorted(set(plan.sla.custom) - reported) if reported is not None else []
    if unknown:
        raise ValidationError(
            f"the plan's SLA names custom metrics {unknown} that backend "
            f"{platform.backend.name!r} does not report (it reports "
            f"{sorted(reported) if reported else 'none'}); remove them from the SLA"
        )
    shadows = sorted({s for step in plan.steps if (s := step_shadow(plan, step, endpoint)[0])})
    if shadows and not source.reads_shadow_metrics():
        raise UnsupportedCapability(
            platform.backend.name,
            Capability.MONITORING_METRICS.value,
            f"its metrics do not tell the copies a shadow route answers apart, so the "
            f"shadow route {shadows[0]!r} the plan's steps keep cannot be judged; give that "
            "route live traffic in canary steps instead (or remove the endpoint's shadow)",
        )


def _unfinished_step(deployment: Deployment) -> bool:
    """Whether ``deployment`` is a step a rollout made and never finished: a finished rollout's
    last step is marked known-good, and one that stopped leaves a rollback or another's change
    after its steps."""
    return (
        not deployment.known_good
        and deployment.strategy is not RolloutStrategy.DIRECT
        and deployment.reason.startswith(STEP_REASON)
    )


def check_no_rollout_under_way(latest: Deployment) -> None:
    """Refuse to start a rollout while the endpoint's latest change is another rollout's
    unfinished step: that rollout is still baking, or its process stopped mid-way. Its traffic
    was never verified, so it is no rollback target; the last known-good traffic is put back
    first (``mintaka rollback``), or that rollout is left to finish. A native rollout whose end
    is not recorded is refused by ``ServingService.check_native_rollout_recorded``."""
    if _unfinished_step(latest):
        raise Conflict(
            f"{latest.endpoint} is in the middle of a rollout: its traffic "
            f"{latest.traffic.weights} was set by {latest.actor}'s {latest.reason} at "
            f"{latest.at.isoformat()}, and that rollout has not finished (it is still baking, or "
            "it stopped mid-way, or the endpoint was killed under it). Let it finish, put back "
            f"the last known-good traffic with `mintaka rollback {latest.endpoint}`, or set the "
            f"traffic you want with `mintaka endpoints traffic {latest.endpoint} ...`, before "
            "starting another rollout"
        )


def gate_rollback(platform: Platform, endpoint: Endpoint, target: TrafficMap) -> None:
    """The traffic gate on a plan's rollback target, before the rollout starts: a target the
    policy refuses now is refused with the plan, not found out at a breach."""
    serving = platform.serving
    serving._gate(
        "endpoint.rollback",
        endpoint.name,
        endpoint.routes,
        target,
        serving._route_versions(endpoint.routes),
        endpoint,
    )


# The signals that stop a rollout (Ctrl-C, and SIGTERM under `mintaka rollout`).
_STOPPING = frozenset({signal.SIGINT, signal.SIGTERM})


@contextmanager
def signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM held back from this thread for the block, and delivered (their
    handlers run, and what those raise is raised) as it ends: a traffic change and its record,
    the mark of a step known-good, or the restore of the starting traffic, is not cut short
    midway. Nested blocks deliver at the end of the outermost. Where the platform cannot hold
    signals back (no ``pthread_sigmask``), the block runs as it is."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOPPING)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class RolloutInterrupted(Conflict):
    """Someone else changed the endpoint's traffic, or killed it, while a rollout walked it: the
    rollout stops and leaves the endpoint as they left it."""


class RolloutController:
    def __init__(self, platform: Platform, *, wait: Callable[[float], None] | None = None) -> None:
        self.platform = platform
        self.wait = wait or time.sleep

    def run(self, plan: TrafficPlan) -> RolloutResult:
        """Walk ``plan``; see the module's description.

        Nothing is changed or marked before the plan, the endpoint and the rollback target have
        passed every check: a killed endpoint stops the rollout with :class:`RolloutInterrupted`,
        another rollout's unfinished step as the latest change is a :class:`Conflict`. The
        endpoint's shadow route stays as it is unless the plan names one, or the route starts
        taking live traffic. The controller owns the endpoint's traffic while it runs: before
        and after every step, and again after reading its metrics, it checks that the last
        traffic change is its own and the endpoint is not killed, and otherwise stops with
        :class:`RolloutInterrupted` without touching the traffic again (a kill or a manual change
        wins); the final step is marked known-good only while it is still in force. Any other
        failure on the way (an error, Ctrl-C) restores the traffic the rollout started from
        before it propagates, if a step of this rollout had changed it.
        """
        platform = self.platform
        last, _, endpoint = self._latest(plan.endpoint)
        check_plan(plan, endpoint)
        check_judgeable(plan, platform, endpoint)
        if endpoint.status is EndpointStatus.KILLED:
            raise RolloutInterrupted(
                f"rollout of {plan.endpoint} not started: the endpoint was killed; release it "
                "with unkill first"
            )
        self.platform.serving.check_native_rollout_recorded(plan.endpoint)
        check_no_rollout_under_way(last)
        if plan.rollback_to is not None:
            self._gate_rollback(endpoint, plan.rollback_to)
        start = plan.rollback_to or endpoint.traffic
        # The routes the rollout judges refusals against, and the requests they refused as
        # invalid in the last step they took traffic in (before any, in the window before the
        # rollout, see ``_refusals_before``; with no sample at all, none: every refused request
        # counts against a new route).
        baseline = baseline_routes(plan, start, endpoint)
        refusals: Refusals | float = 0.0
        started = platform.clock.now()
        ours = marked = self._mark_own(plan.endpoint, last.id, 1)
        result = RolloutResult(endpoint=plan.endpoint, promoted=False)
        # The reason of the step being applied: until ``_own_change`` has read back the id of
        # the change a step made, a failure recognises that change by it (see
        # ``_restore_after_failure``).
        pending: str | None = None
        try:
            for index, step in enumerate(plan.steps, start=1):
                self._check_untouched(plan.endpoint, ours, index)
                shadow, shadow_percent = step_shadow(plan, step, endpoint)
                pending = f"{STEP_REASON}{index}/{len(plan.steps)}"
                self._step(plan, step.weights, shadow, shadow_percent, pending, ours, index)
                ours = self._own_change(plan.endpoint, ours, index)
                pending = None
                window_start = platform.clock.now()
                self.wait(step.bake_seconds)
                window_end = platform.clock.now()
                self._check_untouched(plan.endpoint, ours, index)
                metrics = platform.serving.endpoint_metrics(plan.endpoint, window_start, window_end)
                live = sorted(name for name, weight in step.weights.items() if weight > 0)
                measured = refusals_of(metrics, baseline.intersection(live))
                if measured is None and index == 1:
                    measured = self._refusals_before(
                        plan.endpoint, baseline, started, step.bake_seconds, plan.sla
                    )
                self._check_untouched(plan.endpoint, ours, index)
                refusals = refusals if measured is None else measured
                breaches = tuple(
                    sla_breaches(plan.sla, metrics, live, refusals=refusals, baseline=baseline)
                ) + shadow_breaches(plan, shadow, metrics, refusals, baseline)
                result.steps.append(StepResult(index, dict(step.weights), metrics, breaches))
                if breaches:
                    why = f"automatic rollback at step {index}: " + "; ".join(breaches)
                    try:
                        self._roll_back(plan.endpoint, start, why, ours, index)
                        result.rolled_back_to = dict(start.weights)
                    except RolloutInterrupted:
                        raise
                    except MintakaError as refused:  # e.g. the champion lost its approval
                        # The breaching step must not stay live: the kill switch needs no
                        # approval (back to approved known-good traffic, or refuse requests).
                        result.killed_because = f"the rollback was refused: {refused}"
                        killed = platform.serving.kill(
                            plan.endpoint, reason=f"{why}; {result.killed_because}"
                        )
                        result.rolled_back_to = dict(killed.traffic.weights)
                    platform.monitoring.raise_alert(
                        "rollout-sla",
                        plan.endpoint,
                        severity="critical",
                        details={
                            "step": index,
                            "breaches": list(breaches),
                            **({"killed": result.killed_because} if result.killed_because else {}),
                        },
                    )
                    return result
            # Inside the ``try``: a stop (Ctrl-C, SIGTERM) held back while the final step is
            # marked is delivered here and puts back the starting traffic as any other does.
            self._mark_own(plan.endpoint, ours, len(plan.steps))
        except RolloutInterrupted:
            raise
        except BaseException as exc:
            self._restore_after_failure(plan.endpoint, start, marked, ours, pending, exc)
            raise
        result.promoted = True
        return result

    def _refusals_before(
        self,
        endpoint: str,
        baseline: Collection[str],
        started: datetime,
        seconds: float,
        sla: SLA,
    ) -> Refusals | None:
        """The requests the ``baseline`` routes refused as invalid in the ``seconds`` before the
        rollout ``started``, of those they answered: the clients' own bad requests, measured
        before the switch, for a step judged before any baseline route took traffic in one (the
        first step of a blue-green plan). None when they answered fewer than the SLA's
        ``min_requests`` then (at least one), or the window is empty: a sample the SLA would not
        verify a route on (a single refused request, say) is no measure of the clients' bad
        requests either."""
        if not baseline or seconds <= 0:
            return None
        before = self.platform.serving.endpoint_metrics(
            endpoint, started - timedelta(seconds=seconds), started
        )
        measured = refusals_of(before, baseline)
        if measured is None or measured.answered < max(sla.min_requests, 1):
            return None
        return measured

    def _gate_rollback(self, endpoint: Endpoint, target: TrafficMap) -> None:
        gate_rollback(self.platform, endpoint, target)

    def _mark_own(self, endpoint: str, ours: str, index: int) -> str:
        """Mark the deployment ``ours`` known-good, only while it is still the endpoint's latest
        change and the endpoint is not killed; otherwise the rollout stops (see
        :meth:`_check_untouched`)."""
        try:
            with signals_held():
                return self.platform.serving.mark_known_good(endpoint, expected=ours).id
        except Conflict:
            self._check_untouched(endpoint, ours, index)
            raise

    def _latest(self, endpoint: str) -> tuple[Deployment, Deployment | None, Endpoint]:
        history = self.platform.serving.deployment_history(endpoint)
        return (
            history[-1],
            history[-2] if len(history) > 1 else None,
            (self.platform.serving.get_endpoint(endpoint)),
        )

    def _check_untouched(self, endpoint: str, ours: str, index: int) -> None:
        last, _, current = self._latest(endpoint)
        if current.status is EndpointStatus.KILLED:
            raise RolloutInterrupted(
                f"rollout of {endpoint} stopped at step {index}: the endpoint was killed"
            )
        if last.id != ours:
            raise RolloutInterrupted(_changed(endpoint, index, last))

    def _step(
        self,
        plan: TrafficPlan,
        weights: dict[str, int],
        shadow: str | None,
        shadow_percent: int,
        reason: str,
        ours: str,
        index: int,
    ) -> None:
        """Apply a step's traffic as the change right after ``ours``: a kill or another change
        recorded since the last check refuses it (before the backend is called, or inside the
        transaction that would record it), and the rollout stops, leaving that change alone."""
        try:
            with signals_held():  # the traffic changed is recorded, or not changed
                self.platform.serving._set_traffic(
                    plan.endpoint,
                    weights,
                    shadow=shadow,
                    shadow_percent=shadow_percent,
                    strategy=plan.strategy,
                    reason=reason,
                    follows=ours,
                )
        except Conflict:
            self._check_untouched(plan.endpoint, ours, index)
            raise

    def _own_change(self, endpoint: str, previous: str, index: int) -> str:
        """The id of the change a step just made (the one right after ``previous``: a step is
        recorded only so). When a kill or another change was recorded after it, the rollout
        stops and leaves that change in force."""
        history = self.platform.serving.deployment_history(endpoint)
        ids = [d.id for d in history]
        if previous not in ids[:-1]:
            raise RolloutInterrupted(_changed(endpoint, index, history[-1]))
        own = history[ids.index(previous) + 1]
        if own.id != history[-1].id:
            raise RolloutInterrupted(_changed(endpoint, index, history[-1]))
        return own.id

    def _roll_back(
        self, endpoint: str, traffic: TrafficMap, reason: str, ours: str, index: int
    ) -> None:
        """Roll a breaching step back to ``traffic``, only as the change right after the
        rollout's own ``ours``: a kill or another change recorded since the last check (while
        the metrics were judged, say) stops the rollout with :class:`RolloutInterrupted` and
        stays in force, instead of being overwritten by the rollback."""
        self._check_untouched(endpoint, ours, index)
        try:
            self._restore(endpoint, traffic, reason, follows=ours)
        except Conflict:
            self._check_untouched(endpoint, ours, index)
            raise

    def _restore(self, endpoint: str, traffic: TrafficMap, reason: str, *, follows: str) -> None:
        """Put ``traffic`` back on ``endpoint``, as a rollback made right after deployment
        ``follows`` (refused with ``Conflict`` once anything else was recorded since)."""
        with signals_held():
            self.platform.serving._set_traffic(
                endpoint,
                traffic.weights,
                shadow=traffic.shadow,
                shadow_percent=traffic.shadow_percent,
                strategy=RolloutStrategy.DIRECT,
                reason=reason,
                known_good=True,
                action="endpoint.rollback",
                follows=follows,
            )

    def _restore_after_failure(
        self,
        endpoint: str,
        start: TrafficMap,
        marked: str,
        ours: str,
        pending: str | None,
        exc: BaseException,
    ) -> None:
        """Put the starting traffic back after ``exc`` stopped the rollout mid-way, if a step of
        this rollout changed the traffic (``marked`` is the deployment it started from) and
        nobody else changed it since the rollout's last step. A change that the step under way
        committed before ``exc`` (Ctrl-C between the commit and reading it back) is the
        rollout's own: made by this actor with the step's reason, it directly follows the
        rollout's last change. A stop arriving meanwhile (SIGTERM after Ctrl-C, say) is held
        back until the restore has ended, and then raised."""
        with signals_held():
            try:
                last, before, current = self._latest(endpoint)
                step_committed = (
                    pending is not None
                    and last.reason == pending
                    and last.actor == self.platform.actor
                    and before is not None
                    and before.id == ours
                )
                stepped = step_committed or (last.id == ours and ours != marked)
                if not stepped or current.status is EndpointStatus.KILLED:
                    return
                if current.traffic != start:
                    what = type(exc).__name__ if not str(exc) else f"{type(exc).__name__}: {exc}"
                    self._restore(endpoint, start, f"rollout stopped by {what}", follows=last.id)
            except Conflict as overtaken:  # a kill or a change recorded meanwhile stays in force
                log.warning("%s: not restored after %r: %s", endpoint, exc, overtaken)
            except Exception as failure:  # the original error is the one to raise
                log.error(
                    "could not restore the traffic of %s after %r: %s", endpoint, exc, failure
                )


def step_shadow(plan: TrafficPlan, step: TrafficStep, endpoint: Endpoint) -> tuple[str | None, int]:
    """The shadow a step keeps, and its share: the plan's, else the endpoint's own unless it now
    goes live (the same rule for the controller's steps and a native rollout's end)."""
    if plan.shadow:
        return plan.shadow, plan.shadow_percent
    shadow = endpoint.traffic.shadow
    if shadow is None or step.weights.get(shadow, 0) > 0:
        return None, 0
    return shadow, endpoint.traffic.shadow_percent


def _changed(endpoint: str, index: int, change: Deployment) -> str:
    why = f" ({change.reason})" if change.reason else ""
    return (
        f"rollout of {endpoint} stopped at step {index}: {change.actor} changed its traffic to "
        f"{change.traffic.weights} at {change.at.isoformat()}{why}; the rollout leaves it so"
    )
