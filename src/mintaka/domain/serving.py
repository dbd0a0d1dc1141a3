"""Endpoints, routes and traffic plans: where a model version meets requests."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Self

from pydantic import Field, model_validator

from mintaka.domain.base import AwareDatetime, JSONDict, Record, Spec
from mintaka.domain.names import EndpointName, ModelName, RouteName
from mintaka.rollout.steps import MAX_BAKE_SECONDS


class EndpointStatus(StrEnum):
    CREATING = "creating"
    UPDATING = "updating"
    IN_SERVICE = "in_service"
    FAILED = "failed"
    DELETING = "deleting"
    KILLED = "killed"


class Route(Record):
    """A named slot on an endpoint that serves one model version."""

    name: RouteName
    model: ModelName
    version: int = Field(ge=1)


class TrafficMap(Record):
    """Integer percentages per route, summing to 100, and at most one shadow route.

    Integers because Databricks and Vertex AI only take integers; a shadow route receives a copy
    of ``shadow_percent`` of live requests and its responses are never returned to callers.
    """

    weights: dict[str, int]
    shadow: str | None = None
    shadow_percent: int = Field(default=0, ge=0, le=100)

    @model_validator(mode="after")
    def _sums_to_100(self) -> Self:
        if any(w < 0 or w > 100 for w in self.weights.values()):
            raise ValueError("route weights must be integers between 0 and 100")
        if self.weights and sum(self.weights.values()) != 100:
            raise ValueError(f"route weights must sum to 100, got {sum(self.weights.values())}")
        if self.shadow is not None and self.shadow in self.weights and self.weights[self.shadow]:
            raise ValueError("a shadow route cannot also take live traffic")
        if (self.shadow is None) != (self.shadow_percent == 0):
            raise ValueError("shadow and shadow_percent are set together")
        return self

    @property
    def live_weights(self) -> dict[str, int]:
        """The routes taking live traffic and their weights, in route order."""
        return {route: w for route, w in sorted(self.weights.items()) if w > 0}


class Endpoint(Record):
    """An endpoint as core knows it: its routes and its current traffic."""

    name: EndpointName
    status: EndpointStatus
    routes: tuple[Route, ...] = ()
    traffic: TrafficMap = Field(default_factory=lambda: TrafficMap(weights={}))
    backend: str
    backend_ids: dict[str, str] = Field(default_factory=dict)
    extra: JSONDict = Field(default_factory=dict)


class RolloutStrategy(StrEnum):
    DIRECT = "direct"
    CANARY = "canary"
    LINEAR = "linear"
    BLUE_GREEN = "blue_green"
    SHADOW = "shadow"


# A limit of an SLA: a finite number (NaN or infinity would switch its check off silently).
FiniteLimit = Annotated[float, Field(allow_inf_nan=False)]


class SLA(Spec):
    """Service levels a rollout step must hold before it is promoted. Every limit is a finite
    number: one that is not is refused at construction (pydantic's ``ValidationError``, a
    ``ValueError``, like every other invalid field of a domain model)."""

    p99_latency_ms: FiniteLimit | None = Field(default=None, gt=0)
    max_error_rate: FiniteLimit | None = Field(default=None, ge=0, le=1)
    min_requests: int = Field(default=1, ge=0)
    custom: dict[str, FiniteLimit] = Field(default_factory=dict)


class TrafficStep(Spec):
    weights: dict[str, int]
    bake_seconds: float = Field(default=0, ge=0, le=MAX_BAKE_SECONDS)


class TrafficPlan(Spec):
    """A rollout: the steps to walk, how long to bake each, the SLA and where to roll back to."""

    endpoint: EndpointName
    strategy: RolloutStrategy
    steps: list[TrafficStep] = Field(default_factory=list)
    shadow: str | None = None
    shadow_percent: int = Field(default=0, ge=0, le=100)
    sla: SLA = Field(default_factory=SLA)
    rollback_to: TrafficMap | None = None

    @model_validator(mode="after")
    def _steps_are_traffic_maps(self) -> Self:
        """Each step, with the plan's shadow, is a valid traffic map: the shadow comes with its
        share, and never takes live traffic in any step."""
        if (self.shadow is None) != (self.shadow_percent == 0):
            raise ValueError("a plan's shadow and shadow_percent are set together")
        for step in self.steps:
            TrafficMap(weights=step.weights, shadow=self.shadow, shadow_percent=self.shadow_percent)
        return self


class Deployment(Record):
    """One traffic change, kept forever: the deployment history answers "what ran when"."""

    id: str
    endpoint: str
    traffic: TrafficMap
    routes: tuple[Route, ...]
    strategy: RolloutStrategy
    actor: str
    at: AwareDatetime
    reason: str = ""
    known_good: bool = False


class EndpointMetrics(Record):
    """Serving telemetry per route where the backend can tell, over the window ``start`` to
    ``end`` that the numbers cover: the one asked for, or a wider one where the cloud keeps no
    history to cut it from (Databricks' cumulative counters before a first read).

    ``requests`` counts every answered request; ``errors`` those the route failed on (server-side
    failures, an HTTP 5xx), and ``invalid`` those it refused as not fitting its model (an HTTP
    4xx: a missing feature, say). Every backend reads them so, or says in its documentation what
    it cannot tell apart. A refused request is in ``requests`` and ``invalid``, never in
    ``errors``: whether it was the client's fault or the model's is for the reader to judge (a
    rollout compares the routes, see ``mintaka.rollout.controller``; monitoring watches
    ``error_rate`` and ``invalid_rate`` apart).

    ``shadow`` holds the numbers of the copies of requests a shadow route answered, in the same
    shape, where the backend reads them apart (``MetricsSource.reads_shadow_metrics``); the
    numbers above are those of live requests only."""

    endpoint: str
    start: AwareDatetime
    end: AwareDatetime
    requests: dict[str, int] = Field(default_factory=dict)
    errors: dict[str, int] = Field(default_factory=dict)
    invalid: dict[str, int] = Field(default_factory=dict)
    p50_latency_ms: dict[str, float] = Field(default_factory=dict)
    p99_latency_ms: dict[str, float] = Field(default_factory=dict)
    custom: dict[str, float] = Field(default_factory=dict)
    shadow: EndpointMetrics | None = None


class Prediction(Record):
    """One answer from an endpoint, with the id that lineage and labels refer to."""

    id: str
    endpoint: str
    route: str
    model: str
    version: int
    outputs: list[JSONDict] | list[float] | list[int] | list[str]
    at: AwareDatetime
