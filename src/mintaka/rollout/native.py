"""Rollouts the cloud walks itself (``Capability.SERVING_NATIVE_ROLLOUT``), under core's rules.

Core's own controller (:mod:`mintaka.rollout.controller`) walks a plan step by step on any backend
that splits traffic. A cloud with a native deployment policy (SageMaker's blue/green with canary or
linear traffic shifting and alarm-driven auto-rollback) can walk it instead, and keeps walking
while Mintaka is not running. Governance and the record stay in core, exactly as for any traffic
change:

- ``start``: the backend first checks that its cloud can walk the plan as written from the
  endpoint's current traffic, as recorded and as the cloud reports it, in service
  (``NativeRollout.check_native_plan``: SageMaker's canary, say, is one canary step onto a
  route taking no live traffic yet, then the rest), so a plan it cannot walk is refused with
  nothing marked, recorded or sent. A ``rollback_to`` must be the live traffic in force as the
  cloud reports it (the cloud rolls back to the fleet serving when it starts) and passes the
  traffic gate, as core's controller has it. The plan's final traffic (its last step, keeping
  the shadow as core's controller does: the plan's, else the endpoint's own unless it goes
  live) then passes the traffic gate (approvals, risk tier, the kill switch)
  before any cloud call; the current traffic is marked known-good (the rollback target), only
  while it is still the endpoint's latest and the endpoint is not killed; the cloud starts the
  rollout; the final traffic is recorded as a deployment (``endpoint.rollout``, its reason
  naming the rollout id), audited with the gate's decision, only while the endpoint is as the
  start read it. A kill (or another change) recorded while the cloud started it refuses the
  record (``Conflict``, naming the rollout id) and the cloud is put back to what the store
  records (the kill switch again, or the kill's traffic; a kill's traffic the cloud refuses
  while it walks the plan pulls the switch instead, recorded; a switch the cloud refuses too
  leaves the rollout recorded as started after the kill, its end not recorded, and the
  refusal says the kill is not applied): the store never says the endpoint rolls out over a
  kill in force, nor records a kill the cloud ignores as in force.
- ``status``: asks the cloud. ``succeeded`` marks the new traffic known-good. ``rolled_back`` or
  ``failed`` records the traffic the cloud went back to (``endpoint.rollback``) and raises a
  critical ``rollout-native`` alert, once per rollout however often (and by however many
  processes at once) it is asked. Once the end
  is recorded, the backend retires what the rollout left in the cloud
  (``NativeRollout.retire_rollout``, best effort: a failure is logged), and the record answers
  from then on; every later status of it, and the next rollout on the endpoint, retires it
  again, so a retirement that failed (or a rollout a kill stopped) is finished later.
- Until its end is recorded, every change of the endpoint's traffic or routes, every other
  rollout, and adopting the endpoint again or its capture (``MigrationService.adopt_endpoint``)
  is refused (``ServingService.check_native_rollout_recorded``, a ``Conflict`` naming
  ``mintaka rollout-status``): a change made before would leave the end unknowable, as the
  cloud would then serve that change. The kill switch is never refused; a rollout a kill
  stopped (or one whose endpoint changed outside Mintaka's record) before its end was recorded
  answers ``unknown``, with nothing recorded or alerted (what it left is retired once the
  endpoint serves again).
- ``in_flight`` (sync) only reads: it records, alerts and retires nothing.

A backend that declares the capability as emulated has no native rollout: core's controller is the
emulation (``mintaka rollout`` without ``--native``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING

from mintaka.capabilities import Capability
from mintaka.domain.serving import (
    Deployment,
    Endpoint,
    EndpointStatus,
    RolloutStrategy,
    TrafficMap,
    TrafficPlan,
)
from mintaka.errors import (
    BackendError,
    Conflict,
    MintakaError,
    NotFound,
    UnsupportedCapability,
    ValidationError,
)
from mintaka.interfaces import KillSwitch, NativeRollout, Serving, TrafficSplit
from mintaka.rollout.controller import (
    NATIVE_REASON,
    check_no_rollout_under_way,
    check_plan,
    gate_rollback,
    step_shadow,
)
from mintaka.serving.ops import (
    _as_sent,
    _check_unchanged,
    _Seen,
    _traffic,
    _undone_on_failure,
    latest_deployment,
)

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from mintaka.domain.audit import AuditEvent
    from mintaka.platform import Platform

log = logging.getLogger(__name__)

START_ACTION = "endpoint.rollout"
ALERT_SIGNAL = "rollout-native"


class NativeRolloutStatus(StrEnum):
    """What ``NativeRollout.rollout_status`` reports."""

    IN_PROGRESS = "in_progress"
    SUCCEEDED = "succeeded"
    ROLLED_BACK = "rolled_back"  # the cloud undid it (an alarm fired)
    FAILED = "failed"
    # core's own answer, never the cloud's: the endpoint changed (a kill) before the end was
    # recorded, so how the rollout ended can no longer be told
    UNKNOWN = "unknown"


CLOUD_STATUSES = (
    NativeRolloutStatus.IN_PROGRESS,
    NativeRolloutStatus.SUCCEEDED,
    NativeRolloutStatus.ROLLED_BACK,
    NativeRolloutStatus.FAILED,
)


def _native(platform: Platform) -> NativeRollout:
    """The backend's own rollout; ``UnsupportedCapability`` where it has none or core emulates
    it (its controller is then the rollout)."""
    backend = platform.backend
    if Capability.SERVING_NATIVE_ROLLOUT in backend.emulated:
        raise UnsupportedCapability(
            backend.name,
            f"{Capability.SERVING_NATIVE_ROLLOUT.value} (emulated by core's rollout controller: "
            "`mintaka rollout` without --native walks the plan and records where it ends)",
        )
    return platform._area(Capability.SERVING_NATIVE_ROLLOUT, NativeRollout)


def in_flight(platform: Platform, endpoint: str) -> str | None:
    """The id of the native rollout the cloud is still walking on ``endpoint``, else None: its
    start is the endpoint's latest deployment and the cloud says ``in_progress``. A read only
    (sync uses it: while the cloud walks the plan, its traffic differs from the recorded end)."""
    try:
        rollout = _native(platform)
    except UnsupportedCapability:
        return None
    rollout_id = platform.serving.unrecorded_native_rollout(endpoint)
    if rollout_id is None or rollout.rollout_status(endpoint, rollout_id) != "in_progress":
        return None
    return rollout_id


def _in_service(platform: Platform, endpoint: str) -> Endpoint:
    """The endpoint as the cloud reports it, which is what the cloud walks a plan from (its
    traffic may have changed outside Mintaka); ``Conflict`` unless it is in service, as the
    cloud cannot start a rollout on an endpoint being changed, or killed."""
    found = platform._area(Capability.SERVING, Serving).get_endpoint(endpoint)
    if found.status is not EndpointStatus.IN_SERVICE:
        raise Conflict(
            f"{endpoint} is {found.status.value} in the cloud: a native rollout starts on an "
            "endpoint in service; wait for it (or release it) and start again"
        )
    return found


def _check_rollback_to(platform: Platform, rollback_to: TrafficMap, current: Endpoint) -> None:
    """A cloud's rollout rolls back to the fleet serving when it starts, so a plan's
    ``rollback_to`` must send live traffic as the endpoint does now in the cloud (``current``
    with the cloud's traffic, which may have changed outside Mintaka; ``ValidationError``
    otherwise); it passes the traffic gate as core's controller has it pass (``gate_rollback``)."""
    wanted = {r: w for r, w in rollback_to.weights.items() if w > 0}
    serving = {r: w for r, w in current.traffic.weights.items() if w > 0}
    if wanted != serving:
        raise ValidationError(
            f"the plan's rollback_to {wanted} is not {current.name}'s live traffic {serving}: a "
            "native rollout's cloud rolls back to the traffic in force when it starts (leave "
            "rollback_to out, or walk the plan with core's controller, without --native)"
        )
    gate_rollback(platform, current, rollback_to)


def start(platform: Platform, plan: TrafficPlan, *, reason: str = "") -> str:
    """Hand ``plan`` to the cloud after the traffic gate; returns the cloud's rollout id."""
    rollout = _native(platform)  # before anything else: refused with nothing done
    serving = platform.serving
    seen = serving._seen(plan.endpoint)
    current = seen.endpoint
    check_plan(plan, current)
    rollout.check_native_plan(plan, current)
    in_cloud = _in_service(platform, plan.endpoint)
    rollout.check_native_plan(plan, in_cloud)
    history = serving.deployment_history(plan.endpoint)
    serving.check_native_rollout_recorded(plan.endpoint, history=history)
    check_no_rollout_under_way(history[-1])
    if plan.rollback_to is not None:
        # the cloud rolls back to the traffic it serves, gated over the routes as recorded
        in_force = current.model_copy(update={"traffic": in_cloud.traffic})
        _check_rollback_to(platform, plan.rollback_to, in_force)
    target = _traffic(plan.steps[-1].weights, *step_shadow(plan, plan.steps[-1], current))
    versions = serving._route_versions(current.routes)
    decision = serving._gate(
        START_ACTION,
        plan.endpoint,
        current.routes,
        target,
        versions,
        current,
        strategy=plan.strategy,
    )
    _retire_previous(rollout, history, serving.native_starts(plan.endpoint))
    serving.mark_known_good(plan.endpoint, expected=seen.latest)
    rollout_id = rollout.start_rollout(plan)
    why = NATIVE_REASON + rollout_id + (f": {reason}" if reason else "")

    def record(conn: Connection) -> list[AuditEvent]:
        return serving._record_deployment(
            conn,
            plan.endpoint,
            current.routes,
            target,
            versions,
            plan.strategy,
            why,
            decision=decision,
            action=START_ACTION,
        )

    undo = functools.partial(
        serving._put_back,
        current,
        functools.partial(_restore, platform, seen.kill, rollout_id, record),
    )
    try:
        with (
            _undone_on_failure(undo, f"native rollout {rollout_id} on {plan.endpoint}"),
            platform.store.write() as conn,
        ):
            _check_unchanged(conn, seen, START_ACTION)
            events = record(conn)
    except Conflict as exc:
        if serving.unrecorded_native_rollout(plan.endpoint) == rollout_id:
            raise Conflict(
                f"{exc}; but the cloud had started native rollout {rollout_id} and refused both "
                "the kill's traffic and the kill switch while it walks it: the kill is not "
                "applied, and the rollout is recorded as started after it; pull the kill "
                "switch again once the endpoint is InService, or follow the rollout with "
                f"`mintaka rollout-status {plan.endpoint} {rollout_id}`"
            ) from exc
        raise Conflict(
            f"{exc}; the cloud had started native rollout {rollout_id}, which is not recorded: "
            f"check the endpoint (`mintaka sync`) and, if the cloud still walks it, pull the "
            "kill switch again"
        ) from exc
    platform._after_commit(events)
    return rollout_id


def _restore(
    platform: Platform,
    kill: int,
    rollout_id: str,
    record: Callable[[Connection], list[AuditEvent]],
    recorded: Endpoint,
) -> None:
    """Put back in the cloud what the store records of an endpoint a native rollout was started
    on and not recorded (a kill, or another change, was recorded meanwhile): the kill switch,
    or the recorded traffic. No capability stops a cloud's rollout as such; the switch, or a
    traffic change the cloud makes over the rollout, is what leaves the kill in force. A kill
    that put known-good traffic back (the start read the endpoint's latest kill as ``kill``)
    whose traffic the cloud refuses while it walks the plan pulls the switch, recorded: a kill
    is never left recorded over a cloud that keeps rolling out. Where the cloud refuses the
    switch too, the rollout's start is recorded after all (``record``, while nothing else was
    recorded since the kill), so the store shows the rollout under way, its end not recorded,
    and no kill in force; the start's refusal says so. Any other refusal is logged
    (``_undone_on_failure``)."""
    if recorded.status is EndpointStatus.KILLED:
        platform._area(Capability.SERVING_KILL, KillSwitch).kill(recorded.name)
        return
    sent = _as_sent(recorded.traffic, platform.serving._shadow_emulated())
    try:
        platform._area(Capability.SERVING_TRAFFIC_SPLIT, TrafficSplit).set_traffic(
            recorded.name, sent
        )
    except MintakaError as exc:
        if platform.serving._seen(recorded.name).kill == kill:
            raise
        log.warning(
            "kill switch on %s: the cloud refused the kill's traffic while it walks native "
            "rollout %s (%s); the endpoint is killed instead",
            recorded.name,
            rollout_id,
            exc,
        )
        why = f"the cloud refused the kill's traffic while it walks native rollout {rollout_id}"
        after_kill = platform.serving._seen(recorded.name)
        try:
            platform.serving._switch(recorded.name, True, f"{why}: {exc}")
        except MintakaError:
            _record_over_refused_kill(platform, after_kill, record)
            raise


def _record_over_refused_kill(
    platform: Platform, seen: _Seen, record: Callable[[Connection], list[AuditEvent]]
) -> None:
    """Record a native rollout's start after a kill the cloud refused in full (its traffic and
    its switch) while it walks the rollout, unless another change was recorded since ``seen``:
    the store then says what the cloud does, a rollout under way whose end is not recorded."""
    with platform.store.write() as conn:
        _check_unchanged(conn, seen, START_ACTION)
        events = record(conn)
    platform._after_commit(events)


def _retire_previous(
    rollout: NativeRollout, history: Sequence[Deployment], starts: dict[str, str]
) -> None:
    """Retire again what the latest native rollout in ``history`` left (its end is recorded,
    or unknown, as another rollout starts only then): its retirement may have failed, or never
    run (a kill stopped it before its status was asked). Best effort: what is left is retired
    by the next status asked, and the new rollout is not refused for it."""
    latest = next((d for d in reversed(history) if d.id in starts), None)
    if latest is not None:
        _retire(rollout, latest.endpoint, starts[latest.id])


def status(platform: Platform, endpoint: str, rollout_id: str) -> NativeRolloutStatus:
    """The cloud's word on a native rollout, recorded once it has ended (see the module). Once
    its end is recorded, the record answers; a rollout the endpoint moved on from (or a kill
    stopped) before its end was recorded is ``unknown``: the cloud then serves that later
    change and can no longer tell a success from a rollback."""
    rollout = _native(platform)
    serving = platform.serving
    history = serving.deployment_history(endpoint)
    starts = serving.native_starts(endpoint)
    started = [d for d in history if starts.get(d.id) == rollout_id]
    if not started:
        raise NotFound(f"no native rollout {rollout_id!r} was started on {endpoint!r}")
    ended = _recorded_end(history, started[-1].id, rollout_id)
    if ended is None and (
        history[-1].id != started[-1].id
        or serving.unrecorded_native_rollout(endpoint, history=history) is None
    ):
        ended = NativeRolloutStatus.UNKNOWN
    if ended is not None:
        _retire(rollout, endpoint, rollout_id)  # again: an earlier retirement may have failed
        return ended
    try:
        said = rollout.rollout_status(endpoint, rollout_id)
    except NotFound as gone:
        raise NotFound(
            f"{gone}; if endpoint {endpoint!r} was deleted outside Mintaka, record that with "
            f"`mintaka endpoints delete {endpoint}`"
        ) from gone
    if said not in CLOUD_STATUSES:
        raise BackendError(
            f"reported rollout status {said!r}, not one of {[s.value for s in CLOUD_STATUSES]}",
            platform.backend.name,
        )
    found = NativeRolloutStatus(said)
    if found is NativeRolloutStatus.SUCCEEDED:
        serving.mark_known_good(endpoint, expected=started[-1].id)
    elif found in (NativeRolloutStatus.ROLLED_BACK, NativeRolloutStatus.FAILED):
        _record_undone(platform, endpoint, started[-1].id, rollout_id, found)
    if found is not NativeRolloutStatus.IN_PROGRESS:
        _retire(rollout, endpoint, rollout_id)
    return found


def _retire(rollout: NativeRollout, endpoint: str, rollout_id: str) -> None:
    """Retire what a rollout whose end is recorded (or unknown) left in the cloud, best effort:
    the end is answered from the record whatever the cloud says now, and a retirement that
    fails (throttled, or a permission missing) is logged and retried by the next status of the
    rollout or the next rollout on the endpoint."""
    try:
        rollout.retire_rollout(endpoint, rollout_id)
    except (BackendError, NotFound) as exc:
        log.warning(
            "native rollout %s on %s: retiring what it left in the cloud failed (%s); the next "
            "`mintaka rollout-status` of it, or the next rollout on the endpoint, retries it",
            rollout_id,
            endpoint,
            exc,
        )


def _undone_reason(rollout_id: str, found: NativeRolloutStatus) -> str:
    """The reason of the deployment recording that the cloud undid a native rollout."""
    return f"the cloud {found.value.replace('_', ' ')} {NATIVE_REASON}{rollout_id}"


def _recorded_end(
    history: Sequence[Deployment], start: str, rollout_id: str
) -> NativeRolloutStatus | None:
    """How the native rollout started by deployment ``start`` ended, as recorded: its start
    marked known-good (a success), or the cloud's rollback or failure recorded after it; None
    when its end was never recorded."""
    index = next(i for i, d in enumerate(history) if d.id == start)
    if history[index].known_good:
        return NativeRolloutStatus.SUCCEEDED
    undone = {
        _undone_reason(rollout_id, s): s
        for s in (NativeRolloutStatus.ROLLED_BACK, NativeRolloutStatus.FAILED)
    }
    return next((undone[d.reason] for d in history[index + 1 :] if d.reason in undone), None)


def _record_undone(
    platform: Platform, endpoint: str, start: str, rollout_id: str, found: NativeRolloutStatus
) -> None:
    """Record the traffic the cloud went back to, and raise the critical alert, unless another
    process recorded that end first (checked in the write transaction, so it is recorded and
    alerted once). A record that fails is still alerted: the cloud has acted."""
    serving = platform.serving
    current = serving.get_endpoint(endpoint)
    traffic = platform._area(Capability.SERVING, Serving).get_endpoint(endpoint).traffic
    versions = serving._route_versions(current.routes)
    why = _undone_reason(rollout_id, found)
    # The cloud has already gone back: that is recorded as a rollback whatever the gate says
    # of it now (the decision is kept with it), and counts as known-good only if it allows it.
    decision = serving._gate(
        "endpoint.rollback",
        endpoint,
        current.routes,
        traffic,
        versions,
        current,
        strategy=RolloutStrategy.DIRECT,
        enforce=False,
    )
    try:
        with platform.store.write() as conn:
            latest = latest_deployment(conn, endpoint)
            if latest is None or latest.id != start:
                return  # recorded meanwhile by another process, which raised the alert
            events = serving._record_deployment(
                conn,
                endpoint,
                current.routes,
                traffic,
                versions,
                RolloutStrategy.DIRECT,
                why,
                decision=decision,
                known_good=decision.allowed,
                action="endpoint.rollback",
            )
    except Exception:
        _alert(platform, endpoint, rollout_id, found)
        raise
    platform._after_commit(events)
    _alert(platform, endpoint, rollout_id, found)


def _alert(platform: Platform, endpoint: str, rollout_id: str, found: NativeRolloutStatus) -> None:
    """The critical ``rollout-native`` alert of a rollout the cloud undid (a repeated alert
    updates the signal's open ticket rather than opening another)."""
    platform.monitoring.raise_alert(
        ALERT_SIGNAL,
        endpoint,
        severity="critical",
        details={"rollout": rollout_id, "status": found.value},
    )
