"""Serving operations, reached as ``platform.serving``.

Endpoints, deploys, traffic changes, rollback and the kill switch, each validated in core,
checked by the traffic gate (:mod:`mintaka.governance.gate`), sent to the backend, then recorded
with the deployment history, lineage and audit trail in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select, update

from mintaka.capabilities import Capability
from mintaka.domain.audit import AuditEvent
from mintaka.domain.lineage import EdgeKind, LineageEdge, LineageNode, NodeKind
from mintaka.domain.monitoring import Alert, Severity
from mintaka.domain.names import validate_endpoint_name
from mintaka.domain.registry import ModelVersion
from mintaka.domain.serving import (
    Deployment,
    Endpoint,
    EndpointMetrics,
    RolloutStrategy,
    Route,
    TrafficMap,
)
from mintaka.errors import Conflict, NotFound, PolicyViolation, ValidationError
from mintaka.governance.gate import TrafficChange, evaluate_traffic_change
from mintaka.interfaces import KillSwitch, MetricsSource, Serving, ShadowTraffic, TrafficSplit
from mintaka.store.schema import deployments, endpoints

if TYPE_CHECKING:
    from mintaka.platform import Platform


def default_route_name(version: ModelVersion) -> str:
    """``<model>-v<version>``, shortened to fit the 32-character route rule."""
    suffix = f"-v{version.version}"
    return version.name[: 32 - len(suffix)].rstrip("-") + suffix


def _traffic(weights: Mapping[str, int], shadow: str | None, shadow_percent: int) -> TrafficMap:
    try:
        return TrafficMap(weights=dict(weights), shadow=shadow, shadow_percent=shadow_percent)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise ValidationError(f"invalid traffic map: {exc}") from exc


class ServingService:
    """``platform.serving``: endpoints, traffic, rollback, the kill switch and invocations."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    # -- reading --------------------------------------------------------------------------------

    def get_endpoint(self, name: str) -> Endpoint:
        """The endpoint as Mintaka recorded it (``sync`` compares it with the cloud)."""
        name = validate_endpoint_name(name)
        with self.platform.store.read() as conn:
            row = _endpoint_row(conn, name)
        return _endpoint(row)

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

    # -- changing -------------------------------------------------------------------------------

    def create_endpoint(
        self, name: str, model: str, *, route: str | None = None, reason: str = ""
    ) -> Endpoint:
        """Create an endpoint serving one model version (``NAME:VERSION`` or ``NAME@ALIAS``)."""
        name = validate_endpoint_name(name)
        version = self.platform.get_model_version(model)
        route_name = validate_endpoint_name(route or default_route_name(version))
        serving = self.platform._area(Capability.SERVING, Serving)
        with self.platform.store.read() as conn:
            if conn.execute(select(endpoints.c.name).where(endpoints.c.name == name)).first():
                raise Conflict(f"endpoint {name!r} already exists")
        routes = (Route(name=route_name, model=version.name, version=version.version),)
        traffic = _traffic({route_name: 100}, None, 0)
        versions = {route_name: version}
        decision = self._gate("endpoint.create", name, routes, traffic, versions, killed=False)
        created = serving.create_endpoint(name, routes, traffic)
        now = self.platform._now()
        with self.platform.store.write() as conn:
            conn.execute(
                endpoints.insert().values(
                    name=name,
                    backend=self.platform.backend.name,
                    status=created.status.value,
                    routes=[r.model_dump(mode="json") for r in routes],
                    traffic=traffic.model_dump(mode="json"),
                    killed=0,
                    created_at=now.isoformat(),
                    updated_at=now.isoformat(),
                    backend_ids=created.backend_ids,
                )
            )
            events = self._record_deployment(
                conn,
                name,
                routes,
                traffic,
                versions,
                RolloutStrategy.DIRECT,
                reason,
                decision_id=decision,
                known_good=True,
                action="endpoint.create",
            )
        self.platform._after_commit(events)
        return self.get_endpoint(name)

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
        current = self.get_endpoint(endpoint)
        version = self.platform.get_model_version(model)
        route_name = validate_endpoint_name(route or default_route_name(version))
        if any(r.name == route_name for r in current.routes):
            raise Conflict(f"endpoint {endpoint!r} already has a route {route_name!r}")
        serving = self.platform._area(Capability.SERVING, Serving)
        routes = (
            *current.routes,
            Route(name=route_name, model=version.name, version=version.version),
        )
        new_weights = dict(weights) if weights is not None else dict(current.traffic.weights)
        new_weights.setdefault(route_name, 0)
        traffic = _traffic(new_weights, current.traffic.shadow, current.traffic.shadow_percent)
        versions = self._route_versions(routes)
        decision = self._gate("endpoint.deploy", endpoint, routes, traffic, versions, current)
        serving.update_routes(endpoint, routes, traffic)
        with self.platform.store.write() as conn:
            events = self._record_deployment(
                conn,
                endpoint,
                routes,
                traffic,
                versions,
                RolloutStrategy.DIRECT,
                reason,
                decision_id=decision,
                action="endpoint.deploy",
            )
        self.platform._after_commit(events)
        return self.get_endpoint(endpoint)

    def retire_route(self, endpoint: str, route: str, *, reason: str = "") -> Endpoint:
        """Remove a route that takes no live or shadow traffic."""
        current = self.get_endpoint(endpoint)
        if route not in {r.name for r in current.routes}:
            raise NotFound(f"endpoint {endpoint!r} has no route {route!r}")
        if current.traffic.weights.get(route, 0) or current.traffic.shadow == route:
            raise Conflict(f"route {route!r} still takes traffic; move traffic off it first")
        routes = tuple(r for r in current.routes if r.name != route)
        weights = {k: v for k, v in current.traffic.weights.items() if k != route}
        traffic = _traffic(weights, current.traffic.shadow, current.traffic.shadow_percent)
        versions = self._route_versions(routes)
        decision = self._gate("endpoint.retire_route", endpoint, routes, traffic, versions, current)
        self.platform._area(Capability.SERVING, Serving).update_routes(endpoint, routes, traffic)
        with self.platform.store.write() as conn:
            events = self._record_deployment(
                conn,
                endpoint,
                routes,
                traffic,
                versions,
                RolloutStrategy.DIRECT,
                reason,
                decision_id=decision,
                action="endpoint.retire_route",
            )
        self.platform._after_commit(events)
        return self.get_endpoint(endpoint)

    def set_traffic(
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
    ) -> Endpoint:
        """Move traffic: integer weights per route summing to 100, and optionally one shadow."""
        current = self.get_endpoint(endpoint)
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
        if shadow_changed:
            self.platform._area(Capability.SERVING_SHADOW, ShadowTraffic)
        splitter = self.platform._area(Capability.SERVING_TRAFFIC_SPLIT, TrafficSplit)
        versions = self._route_versions(current.routes)
        decision = self._gate(action, endpoint, current.routes, traffic, versions, current)
        splitter.set_traffic(endpoint, traffic)
        with self.platform.store.write() as conn:
            events = self._record_deployment(
                conn,
                endpoint,
                current.routes,
                traffic,
                versions,
                strategy,
                reason,
                decision_id=decision,
                known_good=known_good,
                action=action,
            )
        self.platform._after_commit(events)
        return self.get_endpoint(endpoint)

    def mark_known_good(self, endpoint: str) -> Deployment:
        """Mark the endpoint's current traffic map as a rollback target."""
        with self.platform.store.write() as conn:
            row = conn.execute(
                select(deployments)
                .where(deployments.c.endpoint == validate_endpoint_name(endpoint))
                .order_by(deployments.c.seq.desc())
                .limit(1)
            ).one_or_none()
            if row is None:
                raise NotFound(f"endpoint {endpoint!r} not found")
            conn.execute(update(deployments).where(deployments.c.id == row.id).values(known_good=1))
            event = self.platform._audit(conn, "endpoint.known_good", endpoint, deployment=row.id)
        self.platform._after_commit([event])
        return _deployment(row).model_copy(update={"known_good": True})

    def rollback(self, endpoint: str, *, reason: str = "") -> Endpoint:
        """Restore the last known-good traffic map that differs from the current one."""
        history = self.deployment_history(endpoint)
        current = history[-1]
        for candidate in reversed(history[:-1]):
            if candidate.known_good and candidate.traffic != current.traffic:
                target = candidate
                break
        else:
            raise Conflict(f"endpoint {endpoint!r} has no earlier known-good traffic to restore")
        live = {r.name for r in self.get_endpoint(endpoint).routes}
        if not set(target.traffic.weights) <= live:
            raise Conflict(f"the known-good traffic of {endpoint!r} names routes since removed")
        return self.set_traffic(
            endpoint,
            target.traffic.weights,
            shadow=target.traffic.shadow,
            shadow_percent=target.traffic.shadow_percent,
            strategy=RolloutStrategy.DIRECT,
            reason=reason or f"rollback to deployment {target.id}",
            known_good=True,
            action="endpoint.rollback",
        )

    def kill(self, endpoint: str, *, reason: str = "") -> Endpoint:
        """Stop the endpoint serving any model: every request is refused until ``unkill``."""
        return self._switch(endpoint, True, reason)

    def unkill(self, endpoint: str, *, reason: str = "") -> Endpoint:
        return self._switch(endpoint, False, reason)

    def _switch(self, endpoint: str, killed: bool, reason: str) -> Endpoint:
        current = self.get_endpoint(endpoint)
        switch = self.platform._area(Capability.SERVING_KILL, KillSwitch)
        action = "endpoint.kill" if killed else "endpoint.unkill"
        versions = self._route_versions(current.routes)
        decision = self._gate(action, endpoint, current.routes, current.traffic, versions, current)
        switch.kill(endpoint) if killed else switch.unkill(endpoint)
        with self.platform.store.write() as conn:
            conn.execute(
                update(endpoints)
                .where(endpoints.c.name == endpoint)
                .values(killed=int(killed), updated_at=self.platform._now().isoformat())
            )
            event = self.platform._audit(conn, action, endpoint, reason=reason, decision=decision)
        self.platform._after_commit([event])
        return self.get_endpoint(endpoint)

    def delete_endpoint(self, endpoint: str, *, reason: str = "") -> None:
        self.get_endpoint(endpoint)
        self.platform._area(Capability.SERVING, Serving).delete_endpoint(endpoint)
        with self.platform.store.write() as conn:
            conn.execute(endpoints.delete().where(endpoints.c.name == endpoint))
            event = self.platform._audit(conn, "endpoint.delete", endpoint, reason=reason)
        self.platform._after_commit([event])

    def invoke(self, endpoint: str, inputs: Any, *, route: str | None = None) -> dict[str, Any]:
        """Send rows to ``endpoint``; the answer carries one prediction id per row."""
        self.get_endpoint(endpoint)
        return self.platform._area(Capability.SERVING, Serving).invoke(
            endpoint, {"inputs": inputs}, route=route
        )

    def endpoint_metrics(self, endpoint: str, start: datetime, end: datetime) -> EndpointMetrics:
        self.get_endpoint(endpoint)
        reader = self.platform._area(Capability.MONITORING_METRICS, MetricsSource)
        return reader.read_metrics(endpoint, start, end)

    def raise_alert(
        self,
        signal: str,
        endpoint: str,
        *,
        severity: str = "warning",
        value: float = 1.0,
        threshold: float = 0.0,
        details: Mapping[str, Any] | None = None,
    ) -> Alert:
        """Record an alert (audited) and hand it to every ``mintaka_alert`` observer."""
        alert = Alert(
            id=self.platform.ids.new("alert"),
            signal=signal,
            endpoint=endpoint,
            value=value,
            threshold=threshold,
            severity=Severity(severity),
            at=self.platform._now(),
            details=dict(details or {}),
        )
        with self.platform.store.write() as conn:
            event = self.platform._audit(
                conn, "alert.raise", endpoint, alert=alert.model_dump(mode="json")
            )
        self.platform._after_commit([event])
        self.platform.plugins.hook.mintaka_alert(alert=alert)
        return alert

    # -- plumbing -------------------------------------------------------------------------------

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
    ) -> str:
        """Evaluate the traffic gate; audit a refusal and raise, or return the decision id."""
        is_killed = (
            killed if killed is not None else bool(current and current.status.value == "killed")
        )
        change = TrafficChange(
            endpoint=endpoint,
            action=action,
            routes=routes,
            traffic=traffic,
            versions=versions,
            killed=is_killed,
            actor=self.platform.actor,
            at=self.platform._now(),
        )
        decision = evaluate_traffic_change(change, self.platform.ids.new("pd"))
        if not decision.allowed:
            with self.platform.store.write() as conn:
                event = self.platform._audit(
                    conn, "policy.deny", endpoint, decision=decision.model_dump(mode="json")
                )
            self.platform._after_commit([event])
            raise PolicyViolation(f"{action} on {endpoint} refused", list(decision.unmet))
        return decision.id

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
        decision_id: str,
        action: str,
        known_good: bool = False,
    ) -> list[AuditEvent]:
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
            decision=decision_id,
        )
        return [event]


def _endpoint_row(conn: Connection, name: str) -> Any:
    row = conn.execute(select(endpoints).where(endpoints.c.name == name)).one_or_none()
    if row is None:
        raise NotFound(f"endpoint {name!r} not found")
    return row


def _endpoint(row: Any) -> Endpoint:
    from mintaka.domain.serving import EndpointStatus

    return Endpoint(
        name=row.name,
        status=EndpointStatus.KILLED if row.killed else EndpointStatus(row.status),
        routes=tuple(Route(**r) for r in row.routes),
        traffic=TrafficMap(**row.traffic),
        backend=row.backend,
        backend_ids=row.backend_ids,
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
