"""Serving operations, reached as ``platform.serving``.

Endpoints, deploys, traffic changes, rollback and the kill switch, each validated in core,
checked by the traffic gate (:mod:`mintaka.governance.gate`), sent to the backend, then recorded
with the deployment history, lineage and audit trail in one transaction.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select, update

from mintaka.capabilities import Capability
from mintaka.domain.audit import AuditEvent
from mintaka.domain.governance import PolicyDecision
from mintaka.domain.lineage import EdgeKind, LineageEdge, LineageGraph, LineageNode, NodeKind
from mintaka.domain.monitoring import MonitorSpec
from mintaka.domain.names import validate_endpoint_name, validate_route_name
from mintaka.domain.registry import ModelVersion, Stage
from mintaka.domain.serving import (
    Deployment,
    Endpoint,
    EndpointMetrics,
    EndpointStatus,
    RolloutStrategy,
    Route,
    TrafficMap,
)
from mintaka.errors import (
    Conflict,
    MintakaError,
    NotFound,
    PolicyViolation,
    ValidationError,
    invalid_fields,
)
from mintaka.flavors.loader import Predictor, load_predictor
from mintaka.governance.gate import TrafficChange, traffic_controls
from mintaka.interfaces import (
    BatchScoring,
    KillSwitch,
    MetricsSource,
    NativeRollout,
    Serving,
    ShadowTraffic,
    Support,
    TrafficSplit,
)
from mintaka.rollout.challenger import Comparison, CostMatrix, auc
from mintaka.rollout.controller import native_rollout_unrecorded, rollout_of
from mintaka.serving.batch import BATCH_SCORED, LOGGED_AS_BATCH, file_format
from mintaka.serving.mirror import ShadowMirror
from mintaka.store.schema import (
    audit_events,
    decisions,
    deployments,
    endpoints,
    lineage_nodes,
    models,
    predictions,
)

if TYPE_CHECKING:
    from mintaka.platform import Platform

log = logging.getLogger(__name__)

# The ``endpoints.killed`` column: 0 released, _KILLED pulled, _RELEASING pulled while a release
# is applied (read as killed until the release is recorded).
_KILLED = 1
_RELEASING = 2
# ``Endpoint.extra`` of a killed endpoint whose row says a release is under way: one applied
# now, or one whose process stopped before recording it (the cloud may be released already).
RELEASE_UNRECORDED = {"release": "unrecorded"}


@dataclass(frozen=True)
class PredictionTrace:
    """A prediction with the model version that made it, that version's upstream lineage
    (run, datasets) and the decisions taken on it."""

    prediction: dict[str, Any]
    version: ModelVersion
    upstream: LineageGraph
    decisions: list[dict[str, Any]]


@dataclass(frozen=True)
class _Seen:
    """An endpoint as a change read it: its record, its latest deployment, its latest kill and
    its latest release (the audit sequence numbers of its newest ``endpoint.kill`` and
    ``endpoint.unkill`` events, 0 for none)."""

    endpoint: Endpoint
    latest: str | None
    kill: int
    release: int = 0


def default_route_name(version: ModelVersion) -> str:
    """``<model>-v<version>``, shortened to fit the 32-character route rule."""
    suffix = f"-v{version.version}"
    return version.name[: 32 - len(suffix)].rstrip("-") + suffix


def _traffic(weights: Mapping[str, int], shadow: str | None, shadow_percent: int) -> TrafficMap:
    try:
        return TrafficMap(weights=dict(weights), shadow=shadow, shadow_percent=shadow_percent)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise ValidationError(f"invalid traffic map: {invalid_fields(exc)}") from exc


def _same_file(source: Path, target: Path) -> bool:
    """Whether ``target`` names the file ``source`` does (the same path once resolved, or a
    link to it)."""
    if source.resolve() == target.resolve():
        return True
    try:
        return target.exists() and source.samefile(target)
    except OSError:
        return False


def _as_sent(traffic: TrafficMap, emulated_shadow: bool) -> TrafficMap:
    """The traffic map the cloud is sent: where core emulates shadow traffic, the cloud only
    ever sees the live weights."""
    return TrafficMap(weights=traffic.weights) if emulated_shadow else traffic


@contextmanager
def _undone_on_failure(undo: Callable[[], object], what: str) -> Iterator[None]:
    """Record a change the backend has made; if recording fails, ask the backend to undo it, so
    that the cloud is not left holding what no record describes (a retry then starts clean).
    The undo is best effort: its own failure is logged, and the recording's error raised."""
    try:
        yield
    except BaseException:
        try:
            undo()
        except Exception:
            log.exception("%s: recording failed, and undoing it in the backend failed too", what)
        raise


def _reached(traffic: TrafficMap) -> set[str]:
    """The routes ``traffic`` sends live or shadow requests to."""
    shadow = {traffic.shadow} if traffic.shadow and traffic.shadow_percent > 0 else set()
    return set(_live(traffic.weights)) | shadow


def _live(weights: Mapping[str, int]) -> dict[str, int]:
    """The routes of ``weights`` taking live traffic."""
    return {route: weight for route, weight in weights.items() if weight > 0}


def _over(current: Endpoint, weights: Mapping[str, int]) -> dict[str, int]:
    """``weights``' live traffic over the endpoint's current routes (every other one at 0)."""
    live = _live(weights)
    return {r.name: live.get(r.name, 0) for r in current.routes}


class ServingService:
    """``platform.serving``: endpoints, traffic, rollback, the kill switch and invocations."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self._mirror = ShadowMirror()

    # -- reading --------------------------------------------------------------------------------

    def get_endpoint(self, name: str) -> Endpoint:
        """The endpoint as Mintaka recorded it (``sync`` compares it with the cloud)."""
        name = validate_endpoint_name(name)
        with self.platform.store.read() as conn:
            row = _endpoint_row(conn, name)
        return _endpoint(row)

    def _seen(self, name: str) -> _Seen:
        """The endpoint as recorded, read in one transaction with its latest deployment and
        kill: a change made on it is recorded only while they are still so
        (:func:`_check_unchanged`)."""
        name = validate_endpoint_name(name)
        with self.platform.store.read() as conn:
            return _Seen(_endpoint(_endpoint_row(conn, name)), *_revision(conn, name))

    def list_endpoints(self) -> list[Endpoint]:
        with self.platform.store.read() as conn:
            rows = conn.execute(select(endpoints).order_by(endpoints.c.name)).all()
        return [_endpoint(row) for row in rows]

    def deployment_history(self, endpoint: str) -> list[Deployment]:
        """Every traffic change on ``endpoint``, oldest first."""
        endpoint = validate_endpoint_name(endpoint)
        with self.platform.store.read() as conn:
            _endpoint_row(conn, endpoint)
            rows = conn.execute(
                select(deployments)
                .where(deployments.c.endpoint == endpoint)
                .order_by(deployments.c.seq)
            ).all()
        return [_deployment(row) for row in rows]

    def unrecorded_native_rollout(
        self, endpoint: str, *, history: Sequence[Deployment] | None = None
    ) -> str | None:
        """The id of the native rollout whose start is the endpoint's latest change and whose
        end is not recorded (its start not marked known-good), unless a kill has stopped it
        since; else None. ``history``: the endpoint's ``deployment_history``, when the caller
        has just read it."""
        found = self._unrecorded_native_start(endpoint, history)
        return None if found is None else found[1]

    def _unrecorded_native_start(
        self, endpoint: str, history: Sequence[Deployment] | None = None
    ) -> tuple[Deployment, str] | None:
        """The endpoint's latest change and the native rollout it started, when its end is not
        recorded and no kill stopped it since: the newest ``endpoint.rollout`` or
        ``endpoint.kill`` event is then the rollout event that recorded that change (one read,
        on the path of every change, besides ``history`` when not given)."""
        if history is None:
            history = self.deployment_history(endpoint)
        if not history or history[-1].known_good:
            return None
        latest = history[-1]
        with self.platform.store.read() as conn:
            newest = conn.execute(
                select(audit_events.c.action, audit_events.c.canonical)
                .where(
                    audit_events.c.subject == latest.endpoint,
                    audit_events.c.action.in_(("endpoint.rollout", "endpoint.kill")),
                )
                .order_by(audit_events.c.seq.desc())
                .limit(1)
            ).one_or_none()
        if newest is None or newest.action != "endpoint.rollout":
            return None
        started = _rollout_start(newest.canonical)
        if started is None or started[0] != latest.id:
            return None
        return latest, started[1]

    def native_starts(self, endpoint: str) -> dict[str, str]:
        """The native rollouts started on ``endpoint``, as deployment id -> rollout id, oldest
        first (in audit sequence): read from the ``endpoint.rollout`` audit events that recorded
        their starts, never from a deployment's reason alone, which any caller can write
        (``--reason``)."""
        found: dict[str, str] = {}
        with self.platform.store.read() as conn:
            for canonical in conn.execute(
                select(audit_events.c.canonical)
                .where(
                    audit_events.c.subject == endpoint,
                    audit_events.c.action == "endpoint.rollout",
                )
                .order_by(audit_events.c.seq)
            ).scalars():
                started = _rollout_start(canonical)
                if started is not None:
                    found[started[0]] = started[1]
        return found

    def check_native_rollout_recorded(
        self, endpoint: str, *, history: Sequence[Deployment] | None = None
    ) -> None:
        """``Conflict`` while a native rollout's end is not recorded
        (``unrecorded_native_rollout``, ``history`` as there): a change of traffic or routes,
        or another rollout, waits for ``mintaka rollout-status``; the kill switch never does."""
        found = self._unrecorded_native_start(endpoint, history)
        if found is not None:
            raise native_rollout_unrecorded(*found)

    # -- changing -------------------------------------------------------------------------------

    def create_endpoint(
        self,
        name: str,
        model: str,
        *,
        route: str | None = None,
        reason: str = "",
        monitor: MonitorSpec | None = None,
    ) -> Endpoint:
        """Create an endpoint serving one model version (``NAME:VERSION`` or ``NAME@ALIAS``).

        ``monitor``: a monitor of the new endpoint and the model it serves, checked in full
        before any backend call and recorded in the same transaction as the endpoint; the gate
        counts it for a tier's ``monitors_required``, so a model no monitor watches yet can be
        given its first endpoint."""
        name = validate_endpoint_name(name)
        version = self.platform.get_model_version(model)
        route_name = validate_route_name(route or default_route_name(version))
        serving = self.platform._area(Capability.SERVING, Serving)
        with self.platform.store.read() as conn:
            if conn.execute(select(endpoints.c.name).where(endpoints.c.name == name)).first():
                raise Conflict(f"endpoint {name!r} already exists")
        routes = (Route(name=route_name, model=version.name, version=version.version),)
        traffic = _traffic({route_name: 100}, None, 0)
        versions = {route_name: version}
        self._check_servable(name, traffic, versions)
        monitors = () if monitor is None else (monitor,)
        if monitor is not None:
            self._check_new_monitor(monitor, name, routes, traffic)
        decision = self._gate(
            "endpoint.create", name, routes, traffic, versions, killed=False, monitors=monitors
        )
        created = serving.create_endpoint(name, routes, traffic)
        now = self.platform._now()
        undo = functools.partial(serving.delete_endpoint, name)
        with (
            _undone_on_failure(undo, f"creating endpoint {name}"),
            self.platform.store.write() as conn,
        ):
            self._insert_endpoint(
                conn,
                created.model_copy(update={"name": name, "routes": routes, "traffic": traffic}),
                killed=False,
                at=now,
            )
            events = self._record_deployment(
                conn,
                name,
                routes,
                traffic,
                versions,
                RolloutStrategy.DIRECT,
                reason,
                decision=decision,
                known_good=True,
                action="endpoint.create",
            )
            for spec in monitors:
                events += self.platform.monitoring.record_monitor(conn, spec)[1]
        self.platform._after_commit(events)
        return self.get_endpoint(name)

    def _check_new_monitor(
        self, monitor: MonitorSpec, name: str, routes: Sequence[Route], traffic: TrafficMap
    ) -> None:
        """Refuse, before any backend call, a monitor ``create_endpoint`` would not record: one
        of another endpoint or of a model its route does not serve, or one ``add_monitor``
        would refuse once the endpoint is there (checked against the routes it is created
        with)."""
        planned = Endpoint(
            name=name,
            status=EndpointStatus.CREATING,
            routes=tuple(routes),
            traffic=traffic,
            backend=self.platform.backend.name,
        )
        self.platform.monitoring.check_monitor(monitor, planned=planned)

    def deploy(
        self,
        endpoint: str,
        model: str,
        *,
        route: str | None = None,
        weights: Mapping[str, int] | None = None,
        reason: str = "",
    ) -> Endpoint:
        """Add a route serving ``model`` to ``endpoint``, with no traffic unless ``weights`` say."""
        seen = self._seen(endpoint)
        current = seen.endpoint
        version = self.platform.get_model_version(model)
        route_name = validate_route_name(route or default_route_name(version))
        if any(r.name == route_name for r in current.routes):
            raise Conflict(f"endpoint {endpoint!r} already has a route {route_name!r}")
        self.platform._area(Capability.SERVING, Serving)
        routes = (
            *current.routes,
            Route(name=route_name, model=version.name, version=version.version),
        )
        new_weights = dict(weights) if weights is not None else dict(current.traffic.weights)
        new_weights.setdefault(route_name, 0)
        traffic = _traffic(new_weights, current.traffic.shadow, current.traffic.shadow_percent)
        return self._replace_routes("endpoint.deploy", seen, routes, traffic, reason)

    def retire_route(self, endpoint: str, route: str, *, reason: str = "") -> Endpoint:
        """Remove a route that takes no live or shadow traffic."""
        seen = self._seen(endpoint)
        current = seen.endpoint
        if route not in {r.name for r in current.routes}:
            raise NotFound(f"endpoint {endpoint!r} has no route {route!r}")
        if current.traffic.weights.get(route, 0) or current.traffic.shadow == route:
            raise Conflict(f"route {route!r} still takes traffic; move traffic off it first")
        routes = tuple(r for r in current.routes if r.name != route)
        weights = {k: v for k, v in current.traffic.weights.items() if k != route}
        traffic = _traffic(weights, current.traffic.shadow, current.traffic.shadow_percent)
        return self._replace_routes("endpoint.retire_route", seen, routes, traffic, reason)

    def _replace_routes(
        self,
        action: str,
        seen: _Seen,
        routes: Sequence[Route],
        traffic: TrafficMap,
        reason: str,
    ) -> Endpoint:
        """Gate, apply and record a change of an endpoint's routes (with its traffic), made on
        the endpoint as ``seen``."""
        current = seen.endpoint
        self.check_native_rollout_recorded(current.name)
        versions = self._route_versions(routes)
        self._check_servable(current.name, traffic, versions, current.traffic)
        decision = self._gate(action, current.name, routes, traffic, versions, current)
        serving = self.platform._area(Capability.SERVING, Serving)
        serving.update_routes(current.name, routes, traffic)
        undo = functools.partial(
            self._put_back,
            current,
            lambda recorded: serving.update_routes(
                recorded.name, recorded.routes, recorded.traffic
            ),
        )
        with (
            _undone_on_failure(undo, f"{action} on {current.name}"),
            self.platform.store.write() as conn,
        ):
            _check_unchanged(conn, seen, action)
            events = self._record_deployment(
                conn,
                current.name,
                routes,
                traffic,
                versions,
                RolloutStrategy.DIRECT,
                reason,
                decision=decision,
                action=action,
            )
        self.platform._after_commit(events)
        return self.get_endpoint(current.name)

    def set_traffic(
        self,
        endpoint: str,
        weights: Mapping[str, int],
        *,
        shadow: str | None = None,
        shadow_percent: int = 0,
        reason: str = "",
    ) -> Endpoint:
        """Move traffic directly: integer weights per route summing to 100, and optionally one
        shadow. A canary, linear or blue-green move is a rollout (``mintaka rollout``, the
        :class:`~mintaka.rollout.controller.RolloutController`), which checks the SLA at every
        step; a tier whose policy refuses direct moves of live traffic refuses this."""
        return self._set_traffic(
            endpoint, weights, shadow=shadow, shadow_percent=shadow_percent, reason=reason
        )

    def _set_traffic(
        self,
        endpoint: str,
        weights: Mapping[str, int],
        *,
        shadow: str | None = None,
        shadow_percent: int = 0,
        strategy: RolloutStrategy | str = RolloutStrategy.DIRECT,
        reason: str = "",
        known_good: bool = False,
        action: str = "endpoint.traffic",
        restores: str | None = None,
        follows: str | None = None,
    ) -> Endpoint:
        """:meth:`set_traffic` as a rollout step (``strategy``), a rollback or a kill
        (``action``, ``known_good``, and ``restores``: the deployment whose traffic it puts
        back) applies it. With ``follows`` (a rollout step) the change is made only as the
        next one after that deployment, on an endpoint not killed: anything recorded since
        is refused with ``Conflict`` before the backend is called, or, when it lands while the
        change is applied, inside the transaction that would record it."""
        seen = self._seen(endpoint)
        current = seen.endpoint
        if follows is not None:
            _check_follows(seen, follows, action)
        if action != "endpoint.kill":
            self.check_native_rollout_recorded(endpoint)
        if not weights:
            raise ValidationError(
                f"a traffic map for {endpoint!r} needs at least one route (weights summing to "
                "100); to stop all traffic, pull the kill switch"
            )
        traffic = _traffic(weights, shadow, shadow_percent)
        try:
            strategy = RolloutStrategy(strategy)
        except ValueError:
            raise ValidationError(f"unknown rollout strategy {strategy!r}") from None
        named = set(traffic.weights) | ({shadow} if shadow else set())
        unknown = named - {r.name for r in current.routes}
        if unknown:
            raise ValidationError(
                f"endpoint {endpoint!r} has no route(s) {sorted(unknown)}; deploy them first"
            )
        shadow_changed = (traffic.shadow, traffic.shadow_percent) != (
            current.traffic.shadow,
            current.traffic.shadow_percent,
        )
        emulated = self._shadow_emulated()
        if shadow_changed and not emulated:
            self.platform._area(Capability.SERVING_SHADOW, ShadowTraffic)
        splitter = self.platform._area(Capability.SERVING_TRAFFIC_SPLIT, TrafficSplit)
        versions = self._route_versions(current.routes)
        if action != "endpoint.kill":
            self._check_servable(endpoint, traffic, versions, current.traffic)
        decision = self._gate(
            action, endpoint, current.routes, traffic, versions, current, strategy=strategy
        )
        # Where core emulates shadow traffic the cloud only ever sees the live weights.
        splitter.set_traffic(endpoint, _as_sent(traffic, emulated))
        undo = functools.partial(
            self._put_back,
            current,
            lambda recorded: splitter.set_traffic(endpoint, _as_sent(recorded.traffic, emulated)),
        )
        with (
            _undone_on_failure(undo, f"{action} on {endpoint}"),
            self.platform.store.write() as conn,
        ):
            _check_unchanged(conn, seen, action)
            events = self._record_deployment(
                conn,
                endpoint,
                current.routes,
                traffic,
                versions,
                strategy,
                reason,
                decision=decision,
                known_good=known_good,
                action=action,
                details={"restores": restores} if restores else None,
            )
        self.platform._after_commit(events)
        return self.get_endpoint(endpoint)

    def mark_known_good(self, endpoint: str, *, expected: str | None = None) -> Deployment:
        """Mark the endpoint's current traffic map as a rollback target. With ``expected`` (a
        rollout marking its own change) it is marked only while that deployment is still the
        latest and the endpoint is not killed, else a Conflict: a change made since is not the
        one that was verified."""
        name = validate_endpoint_name(endpoint)
        with self.platform.store.write() as conn:
            # the row locked before the latest deployment is read: on PostgreSQL a change (a
            # kill putting known-good traffic back) cannot then slip in between the two
            locked = _locked_row(conn, name) if expected is not None else None
            row = latest_deployment(conn, name)
            if row is None:
                raise NotFound(f"endpoint {endpoint!r} not found")
            if expected is not None:
                if row.id != expected:
                    raise Conflict(
                        f"endpoint {endpoint!r} changed since deployment {expected}; its latest "
                        f"traffic ({row.id}) is not marked known-good"
                    )
                if locked is None or _endpoint(locked).status is EndpointStatus.KILLED:
                    raise Conflict(
                        f"endpoint {endpoint!r} is killed; its traffic is not known-good"
                    )
            conn.execute(update(deployments).where(deployments.c.id == row.id).values(known_good=1))
            event = self.platform._audit(conn, "endpoint.known_good", endpoint, deployment=row.id)
        self.platform._after_commit([event])
        return _deployment(row).model_copy(update={"known_good": True})

    def rollback(self, endpoint: str, *, reason: str = "") -> Endpoint:
        """Restore the last known-good traffic map whose live traffic differs from the current
        one. A known-good map counts only while every route it sent live traffic to is still on
        the endpoint and serves the same version it served then (a route name reused for
        another version restores nothing that was known good); older ones are looked at next."""
        current = self.get_endpoint(endpoint)
        target = next(self._restorable(current), None)
        if target is None:
            raise Conflict(
                f"endpoint {endpoint!r} has no earlier known-good traffic to restore (one whose "
                "routes still serve the versions they served then)"
            )
        kept = target.traffic.shadow in {r.name for r in current.routes}  # its shadow route
        return self._set_traffic(
            endpoint,
            _over(current, target.traffic.weights),
            shadow=target.traffic.shadow if kept else None,
            shadow_percent=target.traffic.shadow_percent if kept else 0,
            strategy=RolloutStrategy.DIRECT,
            reason=reason or f"rollback to deployment {target.id}",
            known_good=True,
            action="endpoint.rollback",
            restores=target.id,
        )

    def _restorable(self, current: Endpoint) -> Iterator[Deployment]:
        """The known-good deployments of this incarnation of the endpoint, newest first, whose
        live traffic differs from what serves now and could be put back as it was: each route
        it sent live traffic to is still there, serving the same version.

        Where the traffic serving now was itself put back by a rollback or a kill, only
        deployments older than the one it restored are looked at: rolling back (or pulling the
        switch) again walks further back, and a kill with nowhere further to go refuses every
        request, instead of flipping between the last two maps."""
        now = {r.name: (r.model, r.version) for r in current.routes}
        serving_now = _live(current.traffic.weights)
        history = self._incarnation(current.name)
        ids = [d.id for d in history]
        restored = self._restored_by(current.name, history[-1].id) if history else None
        older = history[: ids.index(restored)] if restored in ids else history[:-1]
        for candidate in reversed(older):
            live = _live(candidate.traffic.weights)
            if not candidate.known_good or not live or live == serving_now:
                continue
            then = {r.name: (r.model, r.version) for r in candidate.routes}
            if all(route in now and now[route] == then.get(route) for route in live):
                yield candidate

    def _restored_by(self, endpoint: str, deployment: str) -> str | None:
        """The deployment whose traffic ``deployment`` put back (a rollback or a kill), if any."""
        for details in self._event_details(endpoint, ("endpoint.rollback", "endpoint.kill")):
            if details.get("deployment") == deployment:
                restored = details.get("restores")
                return restored if isinstance(restored, str) else None
        return None

    def _event_details(self, endpoint: str, actions: Sequence[str]) -> list[dict[str, Any]]:
        """The details of the endpoint's audit events of ``actions``, newest first."""
        with self.platform.store.read() as conn:
            rows = conn.execute(
                select(audit_events.c.canonical)
                .where(audit_events.c.subject == endpoint, audit_events.c.action.in_(actions))
                .order_by(audit_events.c.seq.desc())
            ).all()
        return [json.loads(bytes(canonical)).get("details", {}) for (canonical,) in rows]

    def _incarnation(self, endpoint: str) -> list[Deployment]:
        """The deployment history since the endpoint was last created or adopted: an endpoint
        deleted and made again does not inherit the known-good traffic of the one before."""
        history = self.deployment_history(endpoint)
        started = next(
            iter(self._event_details(endpoint, ("endpoint.create", "endpoint.adopt"))), None
        )
        if started is None:
            return history
        first = started.get("deployment")
        ids = [d.id for d in history]
        return history[ids.index(first) :] if first in ids else history

    def kill(self, endpoint: str, *, reason: str = "") -> Endpoint:
        """Put the endpoint in a safe state: traffic back to the last known-good map whose live
        versions are all approved under the policy, or, when none exists (or putting it back
        fails), refuse every request until ``unkill``. Pulling the switch needs no approval and
        is audited. Pulling it again on traffic a kill (or a rollback) put back walks further
        back; with nowhere further to go, it refuses every request. Pulling it on an endpoint
        already killed records nothing; the switch is sent to the backend again, which settles a
        cloud where it was released outside Mintaka. Where a release was recorded, or was being
        applied, since the endpoint was read, the kill is recorded after all, and a release
        being applied is refused: the kill wins. So is a kill on an endpoint whose release was
        marked and never recorded (:data:`RELEASE_UNRECORDED`; its process may have stopped
        after the backend released it): the store cannot tell it from a release under way. A
        switch pulled over a native rollout whose end is not recorded records the traffic the
        rollout started from (:meth:`_pull`), which a release puts back."""
        current = self.get_endpoint(endpoint)
        if current.status is EndpointStatus.KILLED:  # sent again: settles a cloud released
            return self._switch(endpoint, True, reason, again=True)  # outside Mintaka
        target = self._safe_traffic(current)
        if target is not None:
            traffic, restores = target
            try:
                return self._set_traffic(
                    endpoint,
                    traffic.weights,
                    reason=reason or "kill switch: back to the last approved traffic",
                    known_good=True,
                    action="endpoint.kill",
                    restores=restores,
                )
            except MintakaError as exc:
                log.warning(
                    "kill switch on %s: restoring known-good traffic failed (%s); the endpoint "
                    "is killed instead",
                    endpoint,
                    exc,
                )
                why = f"restoring known-good traffic failed: {exc}"
                return self._switch(endpoint, True, f"{reason}; {why}" if reason else why)
        return self._switch(endpoint, True, reason)

    def unkill(self, endpoint: str, *, reason: str = "") -> Endpoint:
        """Release the kill switch; the policy may require a role to do so. An endpoint that
        is not killed is a Conflict (nothing is changed or audited). On an endpoint whose
        release was marked and never recorded (:data:`RELEASE_UNRECORDED`) this completes that
        release: the backend's release is sent again (a cloud already released is answered as
        it is), the recorded traffic put back and the release recorded."""
        if self.get_endpoint(endpoint).status is not EndpointStatus.KILLED:
            raise Conflict(f"endpoint {endpoint!r} is not killed; there is nothing to release")
        return self._switch(endpoint, False, reason)

    def _safe_traffic(self, current: Endpoint) -> tuple[TrafficMap, str] | None:
        """The traffic a kill restores, and the deployment it comes from: the newest
        restorable known-good map (see :meth:`_restorable`) whose live versions all meet the
        production controls now, over the endpoint's current routes."""
        for candidate in self._restorable(current):
            if self._meets_controls(current, candidate.traffic.weights):
                return TrafficMap(weights=_over(current, candidate.traffic.weights)), candidate.id
        return None

    def _meets_controls(self, current: Endpoint, weights: Mapping[str, int]) -> bool:
        """Whether the live versions of ``weights`` over the endpoint's current routes all meet
        the production controls now (an archived or unapproved version does not), as a kill
        restores only such traffic and its release is gated on them."""
        governance = self.platform.governance
        routes = {r.name: r for r in current.routes}
        live = [r for r in _live(weights) if r in routes]
        versions = [
            self.platform.get_model_version(routes[r].model, routes[r].version) for r in live
        ]
        checks = [c for v in versions for c in governance.production_controls(v)]
        return governance.evaluate("endpoint.kill", current.name, checks).allowed

    def _switch(self, endpoint: str, killed: bool, reason: str, *, again: bool = False) -> Endpoint:
        """Pull (``killed``) or release the kill switch. ``again``: pulled on an endpoint read
        as killed, which is recorded only if it was released (or a release was being applied)
        meanwhile (see :meth:`_pull`)."""
        seen = self._seen(endpoint)
        current = seen.endpoint
        switch = self.platform._area(Capability.SERVING_KILL, KillSwitch)
        action = "endpoint.kill" if killed else "endpoint.unkill"
        versions = self._route_versions(current.routes)
        decision = self._gate(action, endpoint, current.routes, current.traffic, versions, current)
        if not killed:
            return self._release(seen, switch, reason, decision)
        started_from = None if again else self._native_start_point(current)
        return self._pull(seen, switch, reason, decision, again=again, started_from=started_from)

    def _native_start_point(self, current: Endpoint) -> tuple[Deployment, Deployment] | None:
        """While a native rollout's end is not recorded: its start (the endpoint's latest
        deployment, recording the traffic the rollout walks to, never verified) and the
        deployment before it, the traffic the rollout started from and the cloud rolls back to.
        None (the switch alone is recorded) when the live versions of that traffic no longer
        meet the production controls (one archived since): a release could never be allowed
        onto it; and when the backend says the rollout succeeded (nobody asked its status
        since): the cloud then serves the start's traffic, which is what is recorded."""
        found = self._unrecorded_native_start(current.name)
        if found is None:
            return None
        history = self.deployment_history(current.name)
        index = next(i for i, d in enumerate(history) if d.id == found[0].id)
        if index == 0:
            return None
        before = history[index - 1]
        if not self._meets_controls(current, before.traffic.weights):
            return None
        if self._native_succeeded(current.name, found[1]):
            return None
        return found[0], before

    def _native_succeeded(self, endpoint: str, rollout_id: str) -> bool:
        """Whether the backend says native rollout ``rollout_id`` succeeded: its end is then
        what the cloud serves. A rollout in progress, rolled back or failed leaves the cloud
        on (or going back to) the traffic it started from; a status that cannot be read is
        taken as such too, so a kill never waits on it and records known-good traffic."""
        try:
            rollout = self.platform._area(Capability.SERVING_NATIVE_ROLLOUT, NativeRollout)
            return rollout.rollout_status(endpoint, rollout_id) == "succeeded"
        except MintakaError as exc:
            log.warning(
                "kill switch on %s: the status of native rollout %s could not be read (%s); "
                "the traffic it started from is recorded with the kill",
                endpoint,
                rollout_id,
                exc,
            )
            return False

    def _pull(
        self,
        seen: _Seen,
        switch: KillSwitch,
        reason: str,
        decision: PolicyDecision,
        *,
        again: bool,
        started_from: tuple[Deployment, Deployment] | None = None,
    ) -> Endpoint:
        """Send the kill to the backend, then record it, unless a release was recorded since
        it was sent: that release undid it in the backend, so it is sent again first (as often
        as releases are recorded in between). A release still being applied when the kill is
        recorded is refused at its own record, and pulls the switch again itself.

        ``started_from``: the switch stops a native rollout whose end is not recorded (its
        start, and the deployment before it). The traffic the rollout started from is recorded
        with the kill (while the start is still the latest deployment), not the start's
        unverified target: the cloud was not serving that target, and a release puts the
        recorded traffic back."""
        name = seen.endpoint.name
        sent_after = seen.release
        while True:
            switch.kill(name)
            with self.platform.store.write() as conn:
                row = _locked_row(conn, name)
                if row is None:
                    raise NotFound(f"endpoint {name!r} not found")
                released = _latest_event(conn, name, "endpoint.unkill")
                if released == sent_after:
                    if again and row.killed == _KILLED:
                        return _endpoint(row)
                    events = self._record_started_from(conn, seen, started_from, reason, decision)
                    if events:
                        _mark_killed(conn, name, _KILLED)
                    else:
                        events = [
                            self._record_switch(
                                conn, name, _KILLED, "endpoint.kill", reason, decision
                            )
                        ]
                    break
            sent_after = released
        self.platform._after_commit(events)
        return self.get_endpoint(name)

    def _record_started_from(
        self,
        conn: Connection,
        seen: _Seen,
        started_from: tuple[Deployment, Deployment] | None,
        reason: str,
        decision: PolicyDecision,
    ) -> list[AuditEvent]:
        """Record, with a kill switch pulled over a native rollout, the traffic the rollout
        started from (see :meth:`_pull`), over the endpoint's current routes, audited as the
        kill; nothing once another change is the latest (the switch alone is then recorded)."""
        if started_from is None:
            return []
        start, before = started_from
        latest = latest_deployment(conn, seen.endpoint.name)
        if latest is None or latest.id != start.id:
            return []
        current = seen.endpoint
        kept = before.traffic.shadow in {r.name for r in current.routes}
        traffic = _traffic(
            _over(current, before.traffic.weights),
            before.traffic.shadow if kept else None,
            before.traffic.shadow_percent if kept else 0,
        )
        return self._record_deployment(
            conn,
            current.name,
            current.routes,
            traffic,
            self._route_versions(current.routes),
            RolloutStrategy.DIRECT,
            reason or "kill switch: back to the traffic the native rollout started from",
            decision=decision,
            action="endpoint.kill",
            known_good=before.known_good,
            details={"restores": before.id},
        )

    def _release(
        self, seen: _Seen, switch: KillSwitch, reason: str, decision: PolicyDecision
    ) -> Endpoint:
        """Release the kill switch of an endpoint ``seen`` killed. The row is first marked as
        being released, so that a kill pulled while the release is applied is recorded (see
        :meth:`_switch`); the release is then recorded only if no kill or change was recorded
        meanwhile, else it is refused (``Conflict``) and the switch is pulled again in the
        backend: a kill always wins."""
        name = seen.endpoint.name
        action = "endpoint.unkill"
        with self.platform.store.write() as conn:
            _check_unchanged(conn, seen, action)
            _mark_killed(conn, name, _RELEASING)
        seen = _releasing(seen)
        try:
            released = switch.unkill(name)
        except BaseException:
            with self.platform.store.write() as conn:
                _mark_killed(conn, name, _KILLED, only=_RELEASING)
            raise
        undo = functools.partial(
            self._put_back,
            seen.endpoint,
            lambda recorded: (
                self._kill_again(name, switch)
                if recorded.status is EndpointStatus.KILLED
                else switch.unkill(name)
            ),
        )
        with _undone_on_failure(undo, f"{action} on {name}"):
            self._settle(seen.endpoint, released)
            with self.platform.store.write() as conn:
                _check_unchanged(conn, seen, action)
                event = self._record_switch(conn, name, 0, action, reason, decision)
        self.platform._after_commit([event])
        return self.get_endpoint(name)

    def _kill_again(self, name: str, switch: KillSwitch) -> None:
        """Pull the switch again in the backend after a release that was not recorded, and
        mark the row killed again if it still says the release is being applied."""
        switch.kill(name)
        with self.platform.store.write() as conn:
            _mark_killed(conn, name, _KILLED, only=_RELEASING)

    def _settle(self, recorded: Endpoint, held: Endpoint) -> None:
        """Put the recorded routes and traffic back on an endpoint the backend has just
        released (``held``, as the release left it) where they differ: a backend that emulates
        the switch re-creates the endpoint from what it saved when killed, which may be a
        change applied while the kill was pulled and then refused (the backend had nothing
        left to undo it on). Routes are compared where the backend names them."""
        emulated = self._shadow_emulated()
        sent = _as_sent(recorded.traffic, emulated)
        traffic_differs = (sent.live_weights, sent.shadow, sent.shadow_percent) != (
            held.traffic.live_weights,
            None if emulated else held.traffic.shadow,
            0 if emulated else held.traffic.shadow_percent,
        )
        if held.routes and set(held.routes) != set(recorded.routes):
            serving = self.platform._area(Capability.SERVING, Serving)
            serving.update_routes(recorded.name, recorded.routes, recorded.traffic)
        elif traffic_differs:
            splitter = self.platform._area(Capability.SERVING_TRAFFIC_SPLIT, TrafficSplit)
            splitter.set_traffic(recorded.name, sent)

    def _record_switch(
        self,
        conn: Connection,
        endpoint: str,
        killed: int,
        action: str,
        reason: str,
        decision: PolicyDecision,
    ) -> AuditEvent:
        """Record the kill switch of ``endpoint`` as pulled (``killed``) or released, audited
        as ``action`` with the gate's ``decision``."""
        conn.execute(
            update(endpoints)
            .where(endpoints.c.name == endpoint)
            .values(killed=killed, updated_at=self.platform._now().isoformat())
        )
        return self.platform._audit(
            conn,
            action,
            endpoint,
            reason=reason,
            decision=self.platform.governance.record(conn, decision),
        )

    def delete_endpoint(self, endpoint: str, *, reason: str = "") -> None:
        """Delete the endpoint. A killed endpoint is deleted only by whoever may release it:
        deleting and re-creating it would otherwise be a release without the policy's role. An
        endpoint the backend no longer has (deleted in the cloud) leaves the record, audited
        with ``gone_from_backend``."""
        current = self.get_endpoint(endpoint)
        governance = self.platform.governance
        decision = None
        if current.status is EndpointStatus.KILLED:
            checks = governance.unkill_controls(self._route_versions(current.routes))
            decision = governance.decide("endpoint.delete", endpoint, checks)
        try:
            self.platform._area(Capability.SERVING, Serving).delete_endpoint(endpoint)
        except NotFound:
            # Deleted in the cloud already (sync reports it missing): only the record goes.
            recorded: dict[str, Any] = {"gone_from_backend": True}
        else:
            recorded = {}
        with self.platform.store.write() as conn:
            conn.execute(endpoints.delete().where(endpoints.c.name == endpoint))
            if decision is not None:
                recorded["decision"] = governance.record(conn, decision)
            event = self.platform._audit(
                conn, "endpoint.delete", endpoint, reason=reason, **recorded
            )
        self.platform._after_commit([event])

    def invoke(self, endpoint: str, inputs: Any, *, route: str | None = None) -> dict[str, Any]:
        """Send rows to ``endpoint``; the answer carries one prediction id per row.

        Where the backend's shadow capability is emulated, core mirrors the configured share of
        these requests to the shadow route after the live answer is in hand, on a bounded worker
        pool: the shadow's answer is discarded and its failures only logged.
        """
        current = self.get_endpoint(endpoint)
        serving = self.platform._area(Capability.SERVING, Serving)
        payload = {"inputs": inputs}
        answer = serving.invoke(endpoint, payload, route=route)
        shadow = current.traffic.shadow
        if route is None and shadow and self._shadow_emulated():
            self._mirror.send(
                endpoint,
                shadow,
                current.traffic.shadow_percent,
                lambda: serving.invoke(endpoint, payload, route=shadow),
            )
        return answer

    def _shadow_emulated(self) -> bool:
        return self.platform.backend.support(Capability.SERVING_SHADOW) is Support.EMULATED

    def endpoint_metrics(self, endpoint: str, start: datetime, end: datetime) -> EndpointMetrics:
        self.get_endpoint(endpoint)
        reader = self.platform._area(Capability.MONITORING_METRICS, MetricsSource)
        return reader.read_metrics(endpoint, start, end)

    # -- predictions, decisions and batch scoring ------------------------------------------------

    def prediction(self, prediction_id: str) -> dict[str, Any]:
        """One logged prediction, as recorded."""
        with self.platform.store.read() as conn:
            row = conn.execute(
                select(predictions).where(predictions.c.id == prediction_id)
            ).one_or_none()
        if row is None:
            raise NotFound(f"prediction {prediction_id!r} not found (is the log flushed?)")
        return dict(row._mapping)

    def record_decision(self, prediction_id: str, decision: str) -> str:
        """Record the business decision taken on a prediction, so lineage reaches it."""
        if not isinstance(decision, str) or not decision.strip() or len(decision) > 2000:
            raise ValidationError("a decision is 1-2000 characters of text")
        record = self.prediction(prediction_id)
        decision_id = self.platform.ids.new("dec")
        now = self.platform._now()
        prediction_node = LineageNode(
            kind=NodeKind.PREDICTION,
            key=prediction_id,
            label=f"{record['endpoint']} -> {record['model']}:{record['version']}",
            attrs={"endpoint": record["endpoint"], "route": record["route"]},
        )
        decision_node = LineageNode(kind=NodeKind.DECISION, key=decision_id, label=decision[:80])
        nodes = [prediction_node, decision_node]
        edges = [LineageEdge(src=prediction_node.id, dst=decision_node.id, kind=EdgeKind.DECIDED)]
        if record["version_id"]:
            upstream = self._served_by(record)
            edges.append(LineageEdge(src=upstream, dst=prediction_node.id, kind=EdgeKind.SERVED))
        with self.platform.store.write() as conn:
            conn.execute(
                decisions.insert().values(
                    id=decision_id,
                    prediction_id=prediction_id,
                    decision=decision,
                    actor=self.platform.actor,
                    at=now.isoformat(),
                )
            )
            self.platform.lineage.add(conn, nodes, edges)
            event = self.platform._audit(
                conn, "prediction.decision", prediction_id, decision=decision, id=decision_id
            )
        self.platform._after_commit([event])
        return decision_id

    def _served_by(self, record: Mapping[str, Any]) -> str:
        """The lineage node a logged prediction hangs under: the deployment of its endpoint's
        route, else the batch that scored it, else (neither recorded) its model version. A row
        logged as ``batch`` is an endpoint's when that endpoint's deployment is recorded (an
        endpoint may be named ``batch``), else a batch's (batch scoring logged its rows so)."""
        endpoint, route, version_id = record["endpoint"], record["route"], record["version_id"]
        candidates = []
        if endpoint != BATCH_SCORED:
            candidates.append(("deployment", f"{endpoint}/{route}/{version_id}"))
        if endpoint in (BATCH_SCORED, LOGGED_AS_BATCH):
            candidates.append(("prediction_batch", str(route)))
        with self.platform.store.read() as conn:
            for kind, key in candidates:
                known = conn.execute(
                    select(lineage_nodes.c.id).where(
                        lineage_nodes.c.kind == kind, lineage_nodes.c.key == key
                    )
                ).first()
                if known is not None:
                    return f"{kind}:{key}"
        return f"model_version:{version_id}"

    def trace(self, prediction_id: str) -> PredictionTrace:
        """From a prediction back to the model version, its run and its training data."""
        record = self.prediction(prediction_id)
        if not record["version_id"]:
            raise NotFound(f"prediction {prediction_id!r} names no model version")
        upstream = self.platform.lineage.walk(f"model_version:{record['version_id']}", "up")
        with self.platform.store.read() as conn:
            taken = conn.execute(
                select(decisions.c.id, decisions.c.decision, decisions.c.actor, decisions.c.at)
                .where(decisions.c.prediction_id == prediction_id)
                .order_by(decisions.c.at)
            ).all()
        return PredictionTrace(
            prediction=record,
            version=self.platform.get_model_version(record["model"], record["version"]),
            upstream=upstream,
            decisions=[dict(row._mapping) for row in taken],
        )

    def score_batch(
        self, model: str, input_path: str | Path, output_path: str | Path
    ) -> dict[str, str]:
        """Score a CSV or Parquet file with a registered version; each row gets a prediction id."""
        source, target = Path(input_path), Path(output_path)
        file_format(source)
        file_format(target)
        if not source.exists():
            raise ValidationError(f"input file {source} does not exist")
        if _same_file(source, target):
            raise ValidationError(
                f"output file {target} is the input file: scoring would overwrite the rows it "
                "reads; write the scores to another file"
            )
        version = self.platform.get_model_version(model)
        if version.stage is Stage.ARCHIVED:
            with self.platform.store.write() as conn:
                event = self.platform._audit(
                    conn,
                    "policy.deny",
                    version.ref,
                    refused="batch.score",
                    unmet=["archived-versions-take-no-traffic"],
                )
            self.platform._after_commit([event])
            raise PolicyViolation(
                f"batch scoring with {version.ref} refused",
                [f"archived-versions-take-no-traffic: {version.ref} is archived"],
            )
        scorer = self.platform._area(Capability.SERVING_BATCH, BatchScoring)
        batch_id = self.platform.ids.new("batch")
        route = Route(name=default_route_name(version), model=version.name, version=version.version)
        result = scorer.score_batch(
            route, source, target, batch_id=batch_id, features=tuple(version.signature.inputs)
        )
        node = LineageNode(
            kind=NodeKind.PREDICTION_BATCH,
            key=batch_id[:32],
            label=f"batch {batch_id} ({version.ref})",
            attrs={"input": str(source), "output": str(target), "rows": result.get("rows")},
        )
        with self.platform.store.write() as conn:
            self.platform.lineage.add(
                conn,
                [node],
                [LineageEdge(src=f"model_version:{version.id}", dst=node.id, kind=EdgeKind.SERVED)],
            )
            event = self.platform._audit(
                conn,
                "batch.score",
                version.ref,
                batch=batch_id,
                input=str(source),
                output=str(target),
                rows=result.get("rows"),
            )
        self.platform._after_commit([event])
        return {**result, "batch_id": batch_id}

    # -- champion-challenger ---------------------------------------------------------------------

    def declare_business_metric(self, model: str, metric: CostMatrix) -> None:
        """Declare what a challenger of ``model`` must beat the champion on."""
        self.platform.get_model(model)
        with self.platform.store.write() as conn:
            conn.execute(
                update(models)
                .where(models.c.name == model)
                .values(business_metric=metric.model_dump(mode="json"))
            )
            event = self.platform._audit(
                conn, "model.business_metric", model, metric=metric.model_dump(mode="json")
            )
        self.platform._after_commit([event])

    def business_metric(self, model: str) -> CostMatrix:
        self.platform.get_model(model)
        with self.platform.store.read() as conn:
            value = conn.execute(
                select(models.c.business_metric).where(models.c.name == model)
            ).scalar()
        if value is None:
            raise NotFound(f"model {model!r} declares no business metric")
        return CostMatrix.model_validate(value)

    def compare(
        self,
        model: str,
        champion: int | str,
        challenger: int | str,
        rows: Sequence[Mapping[str, Any]],
        labels: Sequence[int],
    ) -> Comparison:
        """Score both versions on the same holdout; the comparison is audited as evidence."""
        if len(rows) != len(labels) or not rows:
            raise ValidationError("the holdout needs one label per row, and at least one row")
        metric = self.business_metric(model)
        first = self.platform.get_model_version(model, champion)
        second = self.platform.get_model_version(model, challenger)
        scores = {}
        for version in (first, second):
            stored = self.platform.artifacts.verify(version.artifact_digest)
            predictor = load_predictor(
                stored.content, version.flavor, features=tuple(version.signature.inputs)
            )
            scores[version.version] = _holdout_scores(version, predictor, rows)
        comparison = Comparison(
            model=model,
            champion=first.version,
            challenger=second.version,
            metric=metric,
            holdout_rows=len(rows),
            champion_cost=metric.expected_cost(labels, scores[first.version]),
            challenger_cost=metric.expected_cost(labels, scores[second.version]),
            champion_auc=auc(labels, scores[first.version]),
            challenger_auc=auc(labels, scores[second.version]),
        )
        with self.platform.store.write() as conn:
            event = self.platform._audit(
                conn,
                "model.comparison",
                f"{model}:{first.version}..{second.version}",
                comparison=comparison.model_dump(mode="json"),
                challenger_wins=comparison.challenger_wins,
            )
        self.platform._after_commit([event])
        return comparison

    def promote_if_better(
        self,
        model: str,
        challenger: int | str,
        rows: Sequence[Mapping[str, Any]],
        labels: Sequence[int],
        *,
        alias: str = "champion",
    ) -> Comparison:
        """Move ``alias`` to the challenger only when it beats the current holder on cost."""
        current = self.platform.get_model_version(model, alias=alias)
        comparison = self.compare(model, current.version, challenger, rows, labels)
        if comparison.challenger_wins:
            self.platform.set_alias(model, alias, comparison.challenger)
        return comparison

    # -- plumbing -------------------------------------------------------------------------------

    def _put_back(self, before: Endpoint, put: Callable[[Endpoint], object]) -> None:
        """Undo a backend change that was not recorded by ``put``-ting back what the store
        records: ``before``, unless another change was recorded meanwhile (a kill), which then
        stays in force. ``before`` where the store cannot be read. An endpoint deleted meanwhile
        (no record, or gone from the backend) has nothing to put back."""
        try:
            recorded = self.get_endpoint(before.name)
        except NotFound:
            log.info("%s: deleted while a change was applied; nothing to put back", before.name)
            return
        except Exception:
            log.exception("%s: reading its record to undo a change failed", before.name)
            recorded = before
        try:
            put(recorded)
        except NotFound:
            log.info("%s: gone from the backend; nothing to put back", before.name)

    def _check_servable(
        self,
        endpoint: str,
        traffic: TrafficMap,
        versions: Mapping[str, ModelVersion],
        current: TrafficMap | None = None,
    ) -> None:
        """``ValidationError`` when ``traffic`` gives live or shadow requests to a route whose
        version's flavor the backend cannot serve (and ``current`` did not already): the
        endpoint would be recorded as serving it while every such request fails, or while the
        server keeps answering from the routes it can load. Checked before any backend call."""
        serving = self.platform._area(Capability.SERVING, Serving)
        already = _reached(current) if current is not None else set()
        for route in sorted(_reached(traffic) - already):
            version = versions[route]
            if not serving.serves_flavor(version.flavor):
                raise ValidationError(
                    f"{version.name}:{version.version} (route {route!r} of {endpoint!r}) has "
                    f"flavor {version.flavor.value!r}, which the {self.platform.backend.name} "
                    "backend cannot serve; give it no traffic, or register the model with a "
                    "served flavor (`mintaka models register ... --flavor sklearn` or "
                    "`--flavor pyfunc`)"
                )

    def _route_versions(self, routes: Sequence[Route]) -> dict[str, ModelVersion]:
        return {r.name: self.platform.get_model_version(r.model, r.version) for r in routes}

    def _gate(
        self,
        action: str,
        endpoint: str,
        routes: Sequence[Route],
        traffic: TrafficMap,
        versions: dict[str, ModelVersion],
        current: Endpoint | None = None,
        *,
        killed: bool | None = None,
        strategy: RolloutStrategy = RolloutStrategy.DIRECT,
        enforce: bool = True,
        monitors: Sequence[MonitorSpec] = (),
    ) -> PolicyDecision:
        """The traffic gate: every traffic change passes governance before any backend call.
        With ``enforce=False`` (recording a change the cloud has already made) the decision is
        returned, to be recorded, whether or not it allows the change. ``monitors``: checked
        monitors recorded with the change, which count for ``monitors_required``."""
        is_killed = (
            killed
            if killed is not None
            else bool(current and current.status is EndpointStatus.KILLED)
        )
        change = TrafficChange(
            endpoint=endpoint,
            action=action,
            routes=routes,
            traffic=traffic,
            versions=versions,
            killed=is_killed,
            strategy=strategy,
            previous=None if current is None else current.traffic,
            monitors=tuple(monitors),
        )
        governance = self.platform.governance
        checks = traffic_controls(change, governance)
        if action == "endpoint.unkill":
            checks += governance.unkill_controls(versions)
        if not enforce:
            return governance.evaluate(action, endpoint, checks)
        return governance.decide(action, endpoint, checks)

    def _insert_endpoint(
        self, conn: Connection, endpoint: Endpoint, *, killed: bool, at: datetime
    ) -> None:
        """The ``endpoints`` row of a new endpoint (its routes, traffic, status and the
        backend's ids, as ``endpoint`` has them); its first deployment is recorded apart."""
        conn.execute(
            endpoints.insert().values(
                name=endpoint.name,
                backend=self.platform.backend.name,
                status=endpoint.status.value,
                routes=[r.model_dump(mode="json") for r in endpoint.routes],
                traffic=endpoint.traffic.model_dump(mode="json"),
                killed=int(killed),
                created_at=at.isoformat(),
                updated_at=at.isoformat(),
                backend_ids=dict(endpoint.backend_ids),
            )
        )

    def _record_deployment(
        self,
        conn: Connection,
        endpoint: str,
        routes: Sequence[Route],
        traffic: TrafficMap,
        versions: dict[str, ModelVersion],
        strategy: RolloutStrategy,
        reason: str,
        *,
        decision: PolicyDecision,
        action: str,
        known_good: bool = False,
        details: Mapping[str, Any] | None = None,
    ) -> list[AuditEvent]:
        """Record a deployment of ``routes`` and ``traffic``, audited as ``action`` (with
        ``details`` added to the event's)."""
        now = self.platform._now()
        seq = (
            conn.execute(
                select(func.max(deployments.c.seq)).where(deployments.c.endpoint == endpoint)
            ).scalar()
            or 0
        ) + 1
        deployment_id = self.platform.ids.new("dep")
        conn.execute(
            deployments.insert().values(
                id=deployment_id,
                endpoint=endpoint,
                seq=seq,
                routes=[r.model_dump(mode="json") for r in routes],
                traffic=traffic.model_dump(mode="json"),
                strategy=strategy.value,
                actor=self.platform.actor,
                at=now.isoformat(),
                reason=reason,
                known_good=int(known_good),
            )
        )
        conn.execute(
            update(endpoints)
            .where(endpoints.c.name == endpoint)
            .values(
                routes=[r.model_dump(mode="json") for r in routes],
                traffic=traffic.model_dump(mode="json"),
                updated_at=now.isoformat(),
            )
        )
        nodes: list[LineageNode] = []
        edges: list[LineageEdge] = []
        for route in routes:
            version = versions[route.name]
            node = LineageNode(
                kind=NodeKind.DEPLOYMENT,
                key=f"{endpoint}/{route.name}/{version.id}",
                label=f"{endpoint}/{route.name} ({version.ref})",
                attrs={"endpoint": endpoint, "route": route.name},
            )
            nodes.append(node)
            nodes.append(
                LineageNode(kind=NodeKind.MODEL_VERSION, key=version.id, label=version.ref)
            )
            edges.append(
                LineageEdge(
                    src=f"model_version:{version.id}", dst=node.id, kind=EdgeKind.DEPLOYED_AS
                )
            )
        self.platform.lineage.add(conn, nodes, edges)
        event = self.platform._audit(
            conn,
            action,
            endpoint,
            deployment=deployment_id,
            seq=seq,
            traffic=traffic.model_dump(mode="json"),
            routes={r.name: f"{r.model}:{r.version}" for r in routes},
            strategy=strategy.value,
            reason=reason,
            decision=self.platform.governance.record(conn, decision),
            **(details or {}),
        )
        return [event]


def _holdout_scores(
    version: ModelVersion, predictor: Predictor, rows: Sequence[Mapping[str, Any]]
) -> list[float]:
    """``version``'s score of each holdout row. A version that does not answer one finite
    number per row is refused (``ValidationError``): NaN is "negative" at every threshold, so
    a model answering only NaN would be judged on cost as if it had decided."""
    try:
        outputs = predictor.predict([dict(r) for r in rows])
    except MintakaError as exc:
        if type(exc) is not MintakaError:  # a typed error (bad features) keeps its type
            raise
        # the root error: the model answered another number of outputs than rows
        raise ValidationError(f"{version.ref} cannot be compared: {exc}") from exc
    if len(outputs) != len(rows):
        raise ValidationError(
            f"{version.ref} cannot be compared: it answered {len(outputs)} scores for "
            f"{len(rows)} rows"
        )
    scores = []
    for index, output in enumerate(outputs):
        try:
            score = float(output)
        except (TypeError, ValueError, OverflowError):
            score = math.nan
        if not math.isfinite(score):
            raise ValidationError(
                f"{version.ref} cannot be compared: its score of holdout row {index + 1} "
                f"({output!r}) is not a finite number"
            )
        scores.append(score)
    return scores


def _rollout_start(canonical: str) -> tuple[str, str] | None:
    """The deployment and the native rollout an ``endpoint.rollout`` audit event (its
    canonical JSON) recorded the start of; None for an event that recorded no such start."""
    details = json.loads(canonical).get("details") or {}
    rollout = rollout_of(str(details.get("reason", "")))
    if rollout is None or not details.get("deployment"):
        return None
    return str(details["deployment"]), rollout


def latest_deployment(conn: Connection, endpoint: str) -> Any | None:
    """The row of the endpoint's latest deployment (None without one), read in the caller's
    transaction: what a change checks it still follows."""
    return conn.execute(
        select(deployments)
        .where(deployments.c.endpoint == endpoint)
        .order_by(deployments.c.seq.desc())
        .limit(1)
    ).one_or_none()


def _locked_row(conn: Connection, name: str) -> Any | None:
    """The endpoint's row (None without one), locked until the caller's write transaction
    ends: on PostgreSQL, ``FOR UPDATE`` is what serialises two changes checking and recording
    the same endpoint; SQLite's write transactions take the database's lock already."""
    return conn.execute(
        select(endpoints).where(endpoints.c.name == name).with_for_update()
    ).one_or_none()


def _mark_killed(conn: Connection, name: str, killed: int, *, only: int | None = None) -> None:
    """Set the endpoint's ``killed`` column (``only``: where it holds that value)."""
    query = update(endpoints).where(endpoints.c.name == name)
    if only is not None:
        query = query.where(endpoints.c.killed == only)
    conn.execute(query.values(killed=killed))


def _endpoint_row(conn: Connection, name: str) -> Any:
    row = conn.execute(select(endpoints).where(endpoints.c.name == name)).one_or_none()
    if row is None:
        raise NotFound(f"endpoint {name!r} not found")
    return row


def _revision(conn: Connection, name: str) -> tuple[str | None, int, int]:
    """The endpoint's latest deployment and the audit sequence numbers of its latest kill and
    latest release."""
    latest = latest_deployment(conn, name)
    return (
        None if latest is None else latest.id,
        _latest_event(conn, name, "endpoint.kill"),
        _latest_event(conn, name, "endpoint.unkill"),
    )


def _latest_event(conn: Connection, name: str, action: str) -> int:
    """The audit sequence number of the endpoint's newest ``action`` event (0 for none)."""
    seq = conn.execute(
        select(func.max(audit_events.c.seq)).where(
            audit_events.c.subject == name, audit_events.c.action == action
        )
    ).scalar()
    return int(seq or 0)


def _check_unchanged(conn: Connection, seen: _Seen, action: str) -> None:
    """Refuse (``Conflict``) to record ``action`` on an endpoint that was killed, changed or
    deleted since the change was ``seen``: the backend was sent the change meanwhile, and
    recording it would overwrite what was recorded since (a kill would no longer be in force).
    Read in the write transaction that records the change, with the endpoint's row locked
    (:func:`_locked_row`), so nothing commits in between; the caller then undoes its backend
    change (:meth:`ServingService._put_back`)."""
    name = seen.endpoint.name
    row = _locked_row(conn, name)
    if row is None:
        raise Conflict(f"endpoint {name!r} was deleted while {action} was applied; it is undone")
    latest, kill, _ = _revision(conn, name)
    if kill != seen.kill or (row.killed and seen.endpoint.status is not EndpointStatus.KILLED):
        raise Conflict(
            f"endpoint {name!r} was killed while {action} was applied; the change is undone and "
            "the kill stays in force"
        )
    if latest != seen.latest or _endpoint(row) != seen.endpoint:
        raise Conflict(
            f"endpoint {name!r} changed while {action} was applied (another change was recorded "
            "meanwhile); the change is undone: look at the endpoint again, then retry"
        )


def _releasing(seen: _Seen) -> _Seen:
    """``seen`` as its row reads once the release is marked (:data:`RELEASE_UNRECORDED`): what
    the release checks is still so when it records itself."""
    marked = seen.endpoint.model_copy(update={"extra": dict(RELEASE_UNRECORDED)})
    return _Seen(marked, seen.latest, seen.kill, seen.release)


def _check_follows(seen: _Seen, follows: str, action: str) -> None:
    """Refuse (``Conflict``) a change meant to come right after deployment ``follows`` when
    the endpoint, as ``seen``, was killed or changed since."""
    name = seen.endpoint.name
    if seen.endpoint.status is EndpointStatus.KILLED:
        raise Conflict(f"endpoint {name!r} is killed; {action} is not applied")
    if seen.latest != follows:
        raise Conflict(
            f"endpoint {name!r} changed since deployment {follows} (its latest is "
            f"{seen.latest}); {action} is not applied"
        )


def _endpoint(row: Any) -> Endpoint:
    """The endpoint a row records; one whose release is marked but not recorded is killed,
    with :data:`RELEASE_UNRECORDED` as its ``extra``: a process that stopped between marking
    the release and recording it leaves it so until ``unkill`` completes the release (the
    backend's release is idempotent) or ``kill`` pulls the switch again."""
    return Endpoint(
        name=row.name,
        status=EndpointStatus.KILLED if row.killed else EndpointStatus(row.status),
        routes=tuple(Route(**r) for r in row.routes),
        traffic=TrafficMap(**row.traffic),
        backend=row.backend,
        backend_ids=row.backend_ids,
        extra=dict(RELEASE_UNRECORDED) if row.killed == _RELEASING else {},
    )


def _deployment(row: Any) -> Deployment:
    return Deployment(
        id=row.id,
        endpoint=row.endpoint,
        traffic=TrafficMap(**row.traffic),
        routes=tuple(Route(**r) for r in row.routes),
        strategy=RolloutStrategy(row.strategy),
        actor=row.actor,
        at=datetime.fromisoformat(row.at),
        reason=row.reason,
        known_good=bool(row.known_good),
    )
