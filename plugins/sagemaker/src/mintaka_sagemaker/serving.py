"""Endpoints on SageMaker: one Model per route, one EndpointConfig per change, variants = routes.

- Each route is a production variant named after it, serving a SageMaker Model built from the
  version's package (image, model data, environment); integer weights become
  ``InitialVariantWeight``. A route keeps its variant's name and compute in every later config,
  and its Model while it serves the same version (``Carried``: an adopted endpoint's
  ``AllTraffic`` stays ``AllTraffic``, on its own instances and Model); a new route runs on the
  compute of the variant with the most traffic, its Model in that variant's Model's VPC, and the
  settings' instance type and count apply to endpoints Mintaka creates.
- The shadow route is a ``ShadowProductionVariants`` entry whose weight is ``shadow_percent``
  beside a production weight of 100 (SageMaker mirrors that share of requests). SageMaker allows a
  shadow only beside exactly one production variant: a traffic map with a shadow must send all
  live traffic to one route; the other routes are kept in the config's tags only.
- The config's tags (``mintaka:route:<route>`` = ``<model>:<version>``) record every route, so
  routes read back exactly, with zero-weight and shadow routes included.
- A weight change keeps the config and calls ``UpdateEndpointWeightsAndCapacities``; a change of
  routes, shadow or capture creates the next config (``<endpoint>-c<n>-<hash>``) and calls
  ``UpdateEndpoint``. Names derive from the content, so a retried create finds what the first one
  made ("already exists" is reconciled, not an error); a native rollout's config name, which is
  its rollout id, also hashes an id made for its start, so a plan started again (after a
  rollback, say) is another rollout with a config of its own. A change is in force when the
  call returns: the backend waits for the endpoint to leave ``Creating``/``Updating``.
- A config's name is derived from everything in it, routes included, and SageMaker never changes
  a config, so the routes read from (or written to) a config's tags are kept per config name and
  read once per process. A config made outside Mintaka has its routes read from its variants'
  Models (the package each serves); it is kept only once every variant reads as a route, since a
  Model serving bare model data becomes one when Mintaka registers that data
  (``register_served``). An endpoint whose config was deleted outside Mintaka (SageMaker lets
  it serve on), or whose config made outside Mintaka names a Model since deleted, reads with
  its traffic and no routes, ``routes_known`` false in its extra and ``routes_unreadable``
  saying why and what to do.
- Only configs and Models Mintaka made are deleted when an endpoint moves on or is deleted; those
  an adopted endpoint had before are left to the tools that made them, and a config another
  endpoint serves (or is being updated to) is kept.
- Native rollouts are ``UpdateEndpoint`` with a blue/green ``DeploymentConfig`` and CloudWatch
  alarms for automatic rollback; the backend does not wait for them, and retires the config the
  endpoint left when core records the rollout's end (``retire_rollout``; ``rollout_status`` only
  reads). A plan is walked exactly as
  written or refused (``native_routing``): one all-at-once step, a canary of 1-50% then the rest,
  or equal linear steps of 10-50% then what is left, ending at 100% (30/60/90/100), every step
  baking the one wait SageMaker has (whole seconds, at most an hour). SageMaker's blue/green
  deployments keep the endpoint config's variant names, so a plan that would give the next
  config production variants for other routes (a shadow added, dropped, or beside another live
  route) is refused too. SageMaker stops the deployment an hour after its waits would have
  ended (``execution_timeout``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from mintaka.clock import pause
from mintaka.domain.names import is_endpoint_name, route_name_of, route_names_of
from mintaka.domain.registry import ApprovalStatus, BackendVersion
from mintaka.domain.serving import (
    Endpoint,
    EndpointStatus,
    RolloutStrategy,
    Route,
    TrafficMap,
    TrafficPlan,
    TrafficStep,
)
from mintaka.errors import (
    BackendError,
    ConfigurationError,
    Conflict,
    MintakaError,
    NotFound,
    ValidationError,
)
from mintaka.interfaces import BackendContext
from mintaka.interfaces.registry import ServedBytes
from mintaka.rollout.controller import step_shadow
from mintaka_sagemaker.artifacts import model_data_of
from mintaka_sagemaker.aws import derived_name, short_hash, tag_list
from mintaka_sagemaker.errors import is_already_exists, was_retried
from mintaka_sagemaker.registry import (
    APPROVAL_TO_SAGEMAKER,
    META_SERVED_BY,
    META_SERVED_IDENTITY,
    SageMakerRegistry,
    client_token,
    package_container,
    package_data,
    package_version,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
ROUTE_TAG = "mintaka:route:"
MANAGED_TAG = "mintaka:managed"
# On a SageMaker Model: the model package it serves (Models Mintaka makes, and Models made
# straight from model data that Mintaka registered as a package).
PACKAGE_TAG = "mintaka:model-package"
# On the config of a native rollout: the config the endpoint served before, retired once the
# rollout succeeds (SageMaker switches the endpoint after Mintaka has returned).
REPLACES_TAG = "mintaka:replaces"
_CONFIG_COUNTER = re.compile(r"-c(\d+)-[0-9a-f]{8}$")
TRANSITIONAL = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack"})
# How much earlier than a config's CreationTime an endpoint's LastModifiedTime may read and the
# endpoint still be taken to serve it: both are SageMaker's clocks, the margin is for their skew.
CLOCK_MARGIN = timedelta(minutes=5)
STATUS = {
    "Creating": EndpointStatus.CREATING,
    "Updating": EndpointStatus.UPDATING,
    "SystemUpdating": EndpointStatus.UPDATING,
    "RollingBack": EndpointStatus.UPDATING,
    "InService": EndpointStatus.IN_SERVICE,
    "Deleting": EndpointStatus.DELETING,
}


# SageMaker's blue/green traffic shifting (``TrafficRoutingConfig``): one wait in whole seconds
# (``WaitIntervalInSeconds``, 0 to 3600) after every shift, the last one included; a canary of 1%
# to 50% of the traffic, then the rest; linear steps of 10% to 50% each, repeated until the new
# fleet takes all the traffic, so a step that does not divide 100 leaves a shorter last step
# (SageMaker's guide illustrates steps of 33%).
MAX_WAIT_SECONDS = 3600
# ``BlueGreenUpdatePolicy.MaximumExecutionTimeoutInSeconds`` (600 to 28,800): how long SageMaker
# lets a blue/green deployment run, which must exceed its waits all together. Mintaka asks for the
# plan's waits plus ``PROVISIONING_SECONDS`` to bring up the new fleet, so a stuck deployment ends
# soon after the plan would have; a plan whose waits and that hour together exceed the longest
# timeout SageMaker takes is refused, as SageMaker would stop it before its fleet could be up.
MIN_EXECUTION_SECONDS = 600
MAX_EXECUTION_SECONDS = 28800
PROVISIONING_SECONDS = 3600
# ``AutoRollbackConfiguration.Alarms`` takes 1 to 10 alarms.
MAX_ROLLBACK_ALARMS = 10
MAX_CANARY_PERCENT = 50
LINEAR_STEP_PERCENTS = (10, 50)
NATIVE_PLANS = (
    "blue_green (one step, all at once), canary (two steps: a share of 1-50% on the new route, "
    f"then 100% on it) or linear (equal steps of {LINEAR_STEP_PERCENTS[0]}-"
    f"{LINEAR_STEP_PERCENTS[1]}% on the new route, then what is left, ending at 100%), every "
    f"step baking the same whole number of seconds up to {MAX_WAIT_SECONDS} (the last step no "
    f"longer than the others), all the waits together and {PROVISIONING_SECONDS}s to provision "
    f"the new fleet within {MAX_EXECUTION_SECONDS}s"
)


def _steps_of(plan: TrafficPlan) -> str:
    return (
        ", ".join(f"{step.weights} baking {step.bake_seconds:g}s" for step in plan.steps)
        or "no steps"
    )


def _refuse(plan: TrafficPlan, why: str) -> NoReturn:
    raise ValidationError(
        f"SageMaker cannot walk this {plan.strategy.value} plan as written ({_steps_of(plan)}): "
        f"{why}; SageMaker walks {NATIVE_PLANS}"
    )


def _new_route(plan: TrafficPlan) -> str:
    """The route a canary or linear plan moves all live traffic to in its last step."""
    live = {r: w for r, w in plan.steps[-1].weights.items() if w > 0}
    if len(live) != 1:
        _refuse(plan, "its last step must send all live traffic to one route")
    [route] = live
    return route


def _wait_of(plan: TrafficPlan, shifts: Sequence[TrafficStep]) -> int:
    """The one wait SageMaker bakes every step with: the bake of every shift before the last,
    which bakes no longer (SageMaker watches the last shift as long as the others)."""
    waits = {step.bake_seconds for step in shifts}
    if len(waits) != 1:
        _refuse(plan, "its steps before the last bake for different times")
    [wait] = waits
    last = plan.steps[-1].bake_seconds
    for bake in (wait, last):
        if bake != int(bake) or bake > MAX_WAIT_SECONDS:
            _refuse(
                plan,
                f"a bake of {bake:g}s is not a whole number of seconds up to {MAX_WAIT_SECONDS}",
            )
    if last > wait:
        _refuse(plan, f"its last step bakes longer ({last:g}s) than the others ({wait:g}s)")
    return int(wait)


def native_routing(plan: TrafficPlan) -> dict[str, Any]:
    """The ``TrafficRoutingConfiguration`` that walks ``plan`` exactly as written; a
    ``ValidationError`` naming its steps and what SageMaker walks when none does, or when its
    waits together and the time to provision the new fleet outlast the longest deployment
    SageMaker runs (``_require_within_timeout``)."""
    routing = _routing_of(plan)
    _require_within_timeout(plan, int(routing["WaitIntervalInSeconds"]))
    return routing


def _require_within_timeout(plan: TrafficPlan, wait: int) -> None:
    """SageMaker waits ``wait`` after every shift of the plan, the last one included, and ends a
    deployment still running after ``MaximumExecutionTimeoutInSeconds`` (at most
    ``MAX_EXECUTION_SECONDS``), which must also leave time to bring up the new fleet before the
    first shift: a plan whose waits plus ``PROVISIONING_SECONDS`` exceed that limit would be
    stopped and rolled back part-way, or before its fleet is up, so it is refused."""
    total = len(plan.steps) * wait
    if total + PROVISIONING_SECONDS > MAX_EXECUTION_SECONDS:
        _refuse(
            plan,
            f"SageMaker bakes every step for {wait}s, so its {len(plan.steps)} waits of {wait}s "
            f"({total}s) and {PROVISIONING_SECONDS}s to provision the new fleet exceed the "
            f"longest deployment SageMaker runs (MaximumExecutionTimeoutInSeconds, at most "
            f"{MAX_EXECUTION_SECONDS}s): bake for less, or in fewer steps",
        )


def execution_timeout(plan: TrafficPlan, routing: dict[str, Any]) -> int:
    """The ``MaximumExecutionTimeoutInSeconds`` of a native rollout of ``plan`` walked by
    ``routing`` (``native_routing``, which keeps it within ``MAX_EXECUTION_SECONDS``): its waits
    together plus ``PROVISIONING_SECONDS`` for the new fleet, at least the minimum SageMaker
    takes. A deployment stuck provisioning or shifting thus ends (and rolls back) about an hour
    after the plan would have ended, not after 8 hours."""
    waits = len(plan.steps) * int(routing["WaitIntervalInSeconds"])
    return max(MIN_EXECUTION_SECONDS, waits + PROVISIONING_SECONDS)


def _routing_of(plan: TrafficPlan) -> dict[str, Any]:
    """``native_routing`` but for the deployment's timeout."""
    if not plan.steps:
        _refuse(plan, "a native rollout needs at least one traffic step")
    if plan.strategy is RolloutStrategy.SHADOW:
        _refuse(
            plan, "shadow is not a SageMaker deployment policy: set the shadow with set_traffic"
        )
    if plan.strategy in (RolloutStrategy.BLUE_GREEN, RolloutStrategy.DIRECT):
        if len(plan.steps) != 1:
            _refuse(plan, "all at once is one step")
        return {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": _wait_of(plan, plan.steps)}
    route = _new_route(plan)
    shares = [step.weights.get(route, 0) for step in plan.steps]
    wait = _wait_of(plan, plan.steps[:-1] or plan.steps)
    size = {"Type": "CAPACITY_PERCENT", "Value": shares[0]}
    if plan.strategy is RolloutStrategy.CANARY:
        if len(shares) != 2 or not 1 <= shares[0] <= MAX_CANARY_PERCENT:
            _refuse(
                plan, f"a canary is one step of 1-{MAX_CANARY_PERCENT}% on {route!r}, then 100%"
            )
        return {"Type": "CANARY", "CanarySize": size, "WaitIntervalInSeconds": wait}
    step = shares[0]
    low, high = LINEAR_STEP_PERCENTS
    if not low <= step <= high or shares != [*range(step, 100, step), 100]:
        _refuse(
            plan,
            f"linear steps move equal shares of {low}-{high}% onto {route!r}, then what is left, "
            "ending at 100%",
        )
    return {"Type": "LINEAR", "LinearStepSize": size, "WaitIntervalInSeconds": wait}


def _require_current_split(plan: TrafficPlan, current: Endpoint, route: str) -> None:
    """SageMaker shifts each share onto ``route`` off the fleet serving now as a whole, so the
    other routes keep their current split: every step before the last must give them their
    current weights scaled to what ``route`` leaves (to within the rounding to whole percent)."""
    others = {r: w for r, w in current.traffic.weights.items() if r != route}
    for index, step in enumerate(plan.steps[:-1], start=1):
        rest = 100 - step.weights.get(route, 0)
        named = (set(others) | set(step.weights)) - {route}
        if any(abs(step.weights.get(r, 0) - others.get(r, 0) * rest / 100) >= 1 for r in named):
            _refuse(
                plan,
                f"step {index} splits the other {rest}% of the traffic otherwise than "
                f"{plan.endpoint}'s current traffic {current.traffic.weights}, and SageMaker "
                f"shifts each share onto {route!r} off the fleet serving now, which keeps its "
                "split",
            )


def _require_shadow_kept(plan: TrafficPlan, target: TrafficMap) -> None:
    """SageMaker mirrors traffic to a shadow variant beside exactly one production variant: a
    plan ending on more than one live route with a shadow kept (``step_shadow``) is refused
    rather than dropping it."""
    live = sorted(r for r, w in target.weights.items() if w > 0)
    if target.shadow is not None and len(live) > 1:
        _refuse(
            plan,
            f"it ends on {live} with the shadow {target.shadow!r} kept, and SageMaker mirrors "
            "traffic to a shadow variant beside exactly one production variant (remove the "
            "shadow first, or end on one route)",
        )


def _production_routes(traffic: TrafficMap, routes: Sequence[Route]) -> list[str]:
    """The routes a config laid out for ``traffic`` has production variants for (``_layout``):
    the one live route beside a shadow, else every route."""
    if traffic.shadow is None:
        return sorted(route.name for route in routes)
    return sorted(r for r, w in traffic.weights.items() if w > 0)


def _require_same_variants(plan: TrafficPlan, current: Endpoint, target: TrafficMap) -> None:
    """SageMaker's blue/green deployments (canary and linear shifting included) need the new
    endpoint config to name its production variants as the old one does, so a plan is refused
    whose end needs production variants for other routes (a route keeps its variant's name)."""
    serving = _production_routes(current.traffic, current.routes)
    wanted = _production_routes(target, current.routes)
    if wanted != serving:
        _refuse(
            plan,
            f"it ends on production variants for {wanted} where {plan.endpoint} has them for "
            f"{serving}, and SageMaker's blue/green deployments keep the endpoint config's "
            "variant names (a shadow stands beside one production variant: remove the shadow "
            "before the rollout and set it again after)",
        )


def percentages(weights: dict[str, float]) -> dict[str, int]:
    """Relative variant weights as integer percentages summing to 100 (largest remainder)."""
    total = sum(weights.values())
    if total <= 0:
        return {}
    exact = {k: w * 100 / total for k, w in weights.items()}
    result = {k: int(v) for k, v in exact.items()}
    short = 100 - sum(result.values())
    for key in sorted(exact, key=lambda k: (result[k] - exact[k], k))[:short]:
        result[key] += 1
    return result


@lru_cache(maxsize=4096)
def model_name(
    endpoint: str, route: str, model: str, version: int, image: str, role: str, network: str = ""
) -> str:
    """The SageMaker Model serving ``route`` of ``endpoint`` (derived, so pure and memoised: every
    traffic change lays out the endpoint's variants again). ``network`` is the JSON of the
    network settings it carries over (``Carried.network``), empty for none."""
    key: list[Any] = [endpoint, route, model, version, image, role]
    if network:
        key.append(network)
    return derived_name(f"{endpoint}-{route}-v{version}", key)


_MADE_MODEL = re.compile(r"-[0-9a-f]{8}")


def made_model(endpoint: str, name: str) -> bool:
    """Whether Mintaka made the SageMaker Model ``name`` for ``endpoint`` (``model_name``: the
    endpoint's name, a dash, ..., a dash and eight hex digits); a Model an adopted endpoint
    served before is not Mintaka's to delete."""
    return name.startswith(f"{endpoint}-") and _MADE_MODEL.fullmatch(name[-9:]) is not None


def variants_of(config: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The production and shadow variants of a described endpoint config."""
    return [
        *((config or {}).get("ProductionVariants") or []),
        *((config or {}).get("ShadowProductionVariants") or []),
    ]


def variant_weights(described: dict[str, Any]) -> dict[str, float]:
    """Production variant -> the weight it runs with, of a described endpoint."""
    return {
        str(v["VariantName"]): float(v.get("CurrentWeight", v.get("DesiredWeight", 0.0)) or 0.0)
        for v in described.get("ProductionVariants") or []
    }


def slot_routes(variants: list[dict[str, Any]]) -> dict[str, str]:
    """Route name -> variant name, for variants of one config (``route_names_of``)."""
    return route_names_of([str(v["VariantName"]) for v in variants], "production variant")


def made_models(endpoint: str, config: dict[str, Any]) -> set[str]:
    """The Models a described config of ``endpoint`` serves that Mintaka made."""
    return {
        str(v["ModelName"])
        for v in variants_of(config)
        if made_model(endpoint, str(v["ModelName"]))
    }


def _sla_bounds(plan: TrafficPlan) -> list[str]:
    """The SLA bounds of ``plan`` a native rollout watches with an alarm on each rising route."""
    bounds = []
    if plan.sla.p99_latency_ms is not None:
        bounds.append("p99-latency")
    if plan.sla.max_error_rate is not None:
        bounds.append("error-rate")
    return bounds


# What each SLA bound's alarm watches, as its description says it.
SLA_WATCHES = {"p99-latency": "p99 latency", "error-rate": "5xx error rate"}


def sla_alarm_description(endpoint: str, slot: str, bound: str) -> str:
    """The description of the alarm on ``bound`` of ``slot`` of ``endpoint``: how Mintaka
    tells the alarms it made, under every naming scheme it has used, from anyone else's."""
    return f"Mintaka rollout SLA of {endpoint}/{slot}: {SLA_WATCHES[bound]}"


def earlier_alarm_names(name: str, route: str, bound: str) -> list[str]:
    """The names earlier versions of Mintaka gave the alarm on ``bound`` of ``route`` on its
    endpoint ``name`` (Mintaka's names, not SageMaker's): without a hash, then with a hash of
    the pair. Their description named the same pair (``sla_alarm_description``)."""
    return [
        f"mintaka-{name}-{route}-{bound}",
        f"mintaka-{name}-{route}-{short_hash([name, route])}-{bound}",
    ]


def _watched_by(alarm: dict[str, Any]) -> tuple[str | None, str | None]:
    """The SageMaker endpoint and variant an SLA alarm watches: its own dimensions, or those of
    the metrics its expression reads."""
    dimensions = list(alarm.get("Dimensions") or [])
    for query in alarm.get("Metrics") or []:
        dimensions += ((query.get("MetricStat") or {}).get("Metric") or {}).get("Dimensions", [])
    found = {d.get("Name"): d.get("Value") for d in dimensions}
    return found.get("EndpointName"), found.get("VariantName")


def rollout_alarm_name(endpoint: str, variant: str, bound: str) -> str:
    """The CloudWatch alarm a native rollout puts on ``bound`` (``p99-latency``,
    ``error-rate``) of production variant ``variant`` of SageMaker endpoint ``endpoint``: named
    after what it watches in the cloud, not Mintaka's names for it, so homes mapping other
    names onto one endpoint (``endpoint_names``) share its alarms, and one name mapped onto
    other endpoints does not. A hash of the pair keeps it one alarm per pair: endpoint and
    variant names both may hold dashes, so ``churn-live``/``green`` and ``churn``/``live-green``
    would otherwise read alike (well within the 255 characters CloudWatch takes)."""
    return f"mintaka-{endpoint}-{variant}-{short_hash([endpoint, variant])}-{bound}"


def _sum_query(query_id: str, metric: str, dimensions: list[dict[str, str]]) -> dict[str, Any]:
    """A per-minute Sum of one ``AWS/SageMaker`` metric, as an input of a metric-math alarm."""
    return {
        "Id": query_id,
        "MetricStat": {
            "Metric": {
                "Namespace": "AWS/SageMaker",
                "MetricName": metric,
                "Dimensions": dimensions,
            },
            "Period": 60,
            "Stat": "Sum",
        },
        "ReturnData": False,
    }


@dataclass
class Layout:
    """What an endpoint config holds: variants, the shadow, the routes, and data capture."""

    routes: tuple[Route, ...]
    traffic: TrafficMap
    carried: Carried  # what the endpoint's config before hands on (the Models' network, role)
    variants: list[dict[str, Any]] = field(default_factory=list)
    shadow_variants: list[dict[str, Any]] = field(default_factory=list)
    capture: dict[str, Any] | None = None

    def route_of(self, variant: dict[str, Any]) -> Route:
        """The route a variant of this layout serves (its name is the route's, or the name the
        variant had in the config before, ``Carried``)."""
        return next(r for r in self.routes if r.name == variant["_route"])

    def request(self, variants: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The variants as CreateEndpointConfig takes them (without the layout's own keys)."""
        return [{k: v for k, v in variant.items() if not k.startswith("_")} for variant in variants]

    @property
    def shape(self) -> tuple[tuple[str, ...], tuple[tuple[str, float], ...]]:
        """What cannot change without a new config: the variant names and the shadow."""
        return (
            tuple(v["VariantName"] for v in self.variants),
            tuple((v["VariantName"], v["InitialVariantWeight"]) for v in self.shadow_variants),
        )


# What a production variant runs on, as CreateEndpointConfig takes it: kept by every later config.
COMPUTE_FIELDS = (
    "InstanceType",
    "InitialInstanceCount",
    "ServerlessConfig",
    "AcceleratorType",
    "VolumeSizeInGB",
    "ModelDataDownloadTimeoutInSeconds",
    "ContainerStartupHealthCheckTimeoutInSeconds",
    "EnableSSMAccess",
    "ManagedInstanceScaling",
    "RoutingConfig",
    "InferenceAmiVersion",
    "CoreDumpConfig",
)


# What a Model runs in, carried from an adopted endpoint's Model to the Models Mintaka makes there.
NETWORK_FIELDS = ("VpcConfig", "EnableNetworkIsolation")
# How an endpoint config serves, beside its variants: kept by every later config (an asynchronous
# endpoint stays asynchronous, its storage volumes keep their key).
CONFIG_FIELDS = ("AsyncInferenceConfig", "KmsKeyId", "ExplainerConfig")


@dataclass(frozen=True)
class Carried:
    """What the config an endpoint serves now hands on to its next one: each route's variant
    keeps its name (so autoscaling policies and alarms on it stay attached), its compute, and
    its Model while it serves the same version; a new route runs on the compute of the variant
    with the most traffic, its new Model in that variant's Model's network; the config's own
    serving fields (asynchronous inference, the volume key) are kept. Endpoints Mintaka creates
    run on the backend settings' instance type and count."""

    names: dict[str, str] = field(default_factory=dict)  # route -> variant name
    compute: dict[str, dict[str, Any]] = field(default_factory=dict)  # route -> compute
    default: dict[str, Any] | None = None
    # route -> (the Model its variant serves, its route): a route still serving that version keeps
    # its Model, so an adopted endpoint's Model (its role, VPC, network isolation) keeps serving
    models: dict[str, tuple[str, Route]] = field(default_factory=dict)
    busiest: str | None = None  # the Model of the variant with the most traffic
    # VpcConfig / EnableNetworkIsolation for the Models Mintaka makes, from ``busiest``
    network: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # CONFIG_FIELDS the config has
    # ``busiest``'s execution role, for the Models Mintaka makes (settings ``model_role =
    # "endpoint"``); None: the settings' ``role_arn``
    role: str | None = None

    def kept_model(self, route: Route) -> str | None:
        """The Model ``route`` keeps: the one its variant serves, if it serves that version."""
        found = self.models.get(route.name)
        return found[0] if found is not None and found[1] == route else None

    @classmethod
    def of(cls, config: dict[str, Any] | None, routes: Sequence[Route] = ()) -> Carried:
        production = list((config or {}).get("ProductionVariants") or [])
        variants = variants_of(config)
        if not variants:
            return cls()
        names = slot_routes(variants)
        by_variant = {str(v["VariantName"]): v for v in variants}
        compute = {
            route: {k: by_variant[slot][k] for k in COMPUTE_FIELDS if k in by_variant[slot]}
            for route, slot in names.items()
        }
        by_route = {r.name: r for r in routes}
        models = {
            route: (str(by_variant[slot]["ModelName"]), by_route[route])
            for route, slot in names.items()
            if route in by_route and by_variant[slot].get("ModelName")
        }
        default = busiest = None
        if production:
            heaviest = max(production, key=lambda v: float(v.get("InitialVariantWeight") or 0))
            default = compute[route_name_of(str(heaviest["VariantName"]))]
            busiest = str(heaviest.get("ModelName") or "") or None
        fields = {k: config[k] for k in CONFIG_FIELDS if config and config.get(k)}
        return cls(names, compute, default, models, busiest, config=fields)


@dataclass(frozen=True)
class NativeStart:
    """A native rollout as SageMaker walks it: the ``TrafficRoutingConfiguration``, the traffic
    it ends on and the routes gaining traffic."""

    routing: dict[str, Any]
    target: TrafficMap
    rising: list[str]


class ConfigRoutes:
    """The routes of each endpoint config Mintaka made, by config name (thread-safe, at most
    ``limit``).

    Sound because a config never changes once made and Mintaka's config names hash the routes.
    A config made outside Mintaka is never held: its name need not say what it serves (the
    SageMaker SDK names a config after its endpoint), so it may be deleted and made again under
    the same name serving other versions.
    """

    def __init__(self, limit: int = 1024) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._routes: dict[str, tuple[Route, ...]] = {}

    def get(self, config: str) -> tuple[Route, ...] | None:
        return self._routes.get(config)

    def put(self, config: str, routes: tuple[Route, ...]) -> None:
        with self._lock:
            self._routes.pop(config, None)
            self._routes[config] = routes
            while len(self._routes) > self._limit:
                del self._routes[next(iter(self._routes))]

    def forget(self, config: str) -> None:
        with self._lock:
            self._routes.pop(config, None)

    def clear(self) -> None:
        with self._lock:
            self._routes.clear()


class SageMakerServing(SageMakerRegistry):
    """Serving, traffic split, native shadow and native rollouts."""

    context: BackendContext

    @cached_property
    def config_routes(self) -> ConfigRoutes:
        return ConfigRoutes()

    # -- layout -----------------------------------------------------------------------------------

    def _require_serving_settings(self, role: str | None = None) -> tuple[str, str]:
        """The inference image and the execution role of the Models Mintaka makes (``role``:
        the one carried from the endpoint, else the settings' ``role_arn``)."""
        role = role or self.settings.role_arn
        if not self.settings.image_uri or not role:
            raise ConfigurationError(
                "[sagemaker] serving needs image_uri (the inference image) and role_arn (the "
                "execution role) in [backend_settings]"
            )
        return self.settings.image_uri, role

    def _model_name(
        self,
        endpoint: str,
        route: Route,
        network: dict[str, Any] | None = None,
        role: str | None = None,
    ) -> str | None:
        """The Model Mintaka makes for ``route``; None without the serving settings (refused
        by ``_ensure_models`` if the Model is needed: traffic between routes that keep their
        Models needs neither an image nor a role)."""
        image, role = self.settings.image_uri, role or self.settings.role_arn
        if not image or not role:
            return None
        carried = json.dumps(network, sort_keys=True) if network else ""
        return model_name(endpoint, route.name, route.model, route.version, image, role, carried)

    def _variant(
        self, endpoint: str, route: Route, weight: float, carried: Carried
    ) -> dict[str, Any]:
        compute = carried.compute.get(route.name) or carried.default
        kept = carried.kept_model(route)
        return {
            "VariantName": carried.names.get(route.name, route.name),
            "ModelName": kept or self._model_name(endpoint, route, carried.network, carried.role),
            **(
                compute
                if compute
                else {
                    "InitialInstanceCount": self.settings.instance_count,
                    "InstanceType": self.settings.instance_type,
                }
            ),
            "InitialVariantWeight": float(weight),
            "_route": route.name,
            "_kept": kept is not None,
        }

    def _layout(
        self,
        endpoint: str,
        routes: Sequence[Route],
        traffic: TrafficMap,
        capture: dict[str, Any] | None = None,
        carried: Carried | None = None,
    ) -> Layout:
        names = [r.name for r in routes]
        if len(set(names)) != len(names):
            raise ValidationError(f"route names must be unique: {names}")
        named = set(traffic.weights) | ({traffic.shadow} if traffic.shadow else set())
        unknown = named - set(names)
        if unknown:
            raise ValidationError(f"traffic names routes the endpoint lacks: {sorted(unknown)}")
        if not routes:
            raise ValidationError("an endpoint needs at least one route")
        by_name = {r.name: r for r in routes}
        carried = carried or Carried()
        layout = Layout(routes=tuple(routes), traffic=traffic, carried=carried, capture=capture)
        if traffic.shadow is None:
            weights = {r.name: traffic.weights.get(r.name, 0) for r in routes}
            layout.variants = [self._variant(endpoint, r, weights[r.name], carried) for r in routes]
            return layout
        live = [r for r, w in traffic.weights.items() if w > 0]
        if len(live) != 1:
            raise ValidationError(
                "SageMaker mirrors traffic to a shadow variant beside exactly one production "
                f"variant: send all live traffic to one route (got {sorted(live)})"
            )
        layout.variants = [self._variant(endpoint, by_name[live[0]], 100, carried)]
        layout.shadow_variants = [
            self._variant(endpoint, by_name[traffic.shadow], traffic.shadow_percent, carried)
        ]
        return layout

    def _config_name(self, endpoint: str, counter: int, layout: Layout, nonce: str = "") -> str:
        """``<endpoint>-c<counter>-<hash of the layout>``; ``nonce`` (a native rollout's start)
        makes each start's name its own, as the name is its rollout id."""
        key: list[Any] = [
            layout.request(layout.variants),
            layout.request(layout.shadow_variants),
            layout.capture,
            [r.model_dump(mode="json") for r in layout.routes],
        ]
        if layout.carried.config:
            key.append(layout.carried.config)
        if nonce:
            key.append(nonce)
        return f"{endpoint}-c{counter}-{short_hash(key)}"

    @staticmethod
    def _counter(config_name: str) -> int:
        match = _CONFIG_COUNTER.search(config_name)
        return int(match.group(1)) if match else 0

    # -- creating models and configs --------------------------------------------------------------

    def _ensure_models(self, endpoint: str, layout: Layout) -> list[str]:
        """Create the Models the layout's variants serve; returns those this call created (with
        any made by an attempt whose response was lost), for the caller to delete again if the
        change fails. When one cannot be made, those made before it are deleted again (nothing
        serves them yet)."""
        created: list[str] = []
        try:
            for variant in layout.variants + layout.shadow_variants:
                if not variant["_kept"]:  # else the Model the route serves already
                    self._ensure_model(endpoint, layout, variant, created)
        except MintakaError:
            self._discard([], created)
            raise
        return created

    def _ensure_model(
        self, endpoint: str, layout: Layout, variant: dict[str, Any], created: list[str]
    ) -> None:
        """Create the Model one variant serves, adding its name to ``created`` when this call
        made it ("already exists" is a Model made before: reconciled, not an error; on a retried
        attempt, one this call made unless a config serves it, ``_served_by_a_config``)."""
        image, role = self._require_serving_settings(layout.carried.role)
        route = layout.route_of(variant)
        package = self._describe_package(route.model, route.version)
        packaged = package_container(package)
        container: dict[str, Any] = {
            "Image": packaged.get("Image") or image,
            "Environment": {
                **(packaged.get("Environment") or {}),
                "MINTAKA_MODEL": route.model,
                "MINTAKA_VERSION": str(route.version),
            },
        }
        if packaged.get("ModelDataUrl"):
            container["ModelDataUrl"] = packaged["ModelDataUrl"]
        elif packaged.get("ModelDataSource"):
            container["ModelDataSource"] = packaged["ModelDataSource"]
        elif package.get("SourceUri"):
            container["ModelDataUrl"] = package["SourceUri"]
        try:
            self._sm(
                "create_model",
                ModelName=variant["ModelName"],
                PrimaryContainer=container,
                ExecutionRoleArn=role,
                **layout.carried.network,
                Tags=tag_list(
                    {
                        MANAGED_TAG: "true",
                        PACKAGE_TAG: str(package["ModelPackageArn"]),
                    }
                ),
            )
            created.append(variant["ModelName"])
        except Conflict as exc:
            if not is_already_exists(exc):
                raise
            if was_retried(exc) and not self._served_by_a_config(endpoint, variant["ModelName"]):
                created.append(variant["ModelName"])

    def _served_by_a_config(self, endpoint: str, model: str) -> bool:
        """Whether an endpoint config named after ``endpoint`` serves ``model``: then a Model a
        retried create was told exists was there before the call (a config the endpoint is on,
        may still switch to, or was killed from serves it), not made by an attempt whose
        response was lost."""
        for page in self._pages("sagemaker", "list_endpoint_configs", NameContains=endpoint):
            for summary in page.get("EndpointConfigs", []):
                try:
                    config = self._sm(
                        "describe_endpoint_config",
                        EndpointConfigName=str(summary["EndpointConfigName"]),
                    )
                except NotFound:  # deleted while listing
                    continue
                if any(str(v.get("ModelName")) == model for v in variants_of(config)):
                    return True
        return False

    def _create_config(self, name: str, layout: Layout, replaces: str = "") -> bool:
        """Create the endpoint config (``replaces``: the config a native rollout moves the
        endpoint from, ``REPLACES_TAG``); False when a retried create finds it already made."""
        tags = {
            MANAGED_TAG: "true",
            **{ROUTE_TAG + r.name: f"{r.model}:{r.version}" for r in layout.routes},
        }
        if replaces:
            tags[REPLACES_TAG] = replaces
        params: dict[str, Any] = {
            "EndpointConfigName": name,
            "ProductionVariants": layout.request(layout.variants),
            "Tags": tag_list(tags),
        }
        if layout.shadow_variants:
            params["ShadowProductionVariants"] = layout.request(layout.shadow_variants)
        if layout.capture:
            params["DataCaptureConfig"] = layout.capture
        params.update(layout.carried.config)
        try:
            self._sm("create_endpoint_config", **params)
            made = True
        except Conflict as exc:
            if not is_already_exists(exc):
                raise
            made = False
        self.config_routes.put(name, tuple(sorted(layout.routes, key=lambda r: r.name)))
        return made

    def _discard(self, configs: Sequence[str], models: Sequence[str]) -> None:
        """Best-effort removal of configs and models nothing serves any more."""
        for config in configs:
            self.config_routes.forget(config)
            with contextlib.suppress(MintakaError):
                self._sm("delete_endpoint_config", EndpointConfigName=config)
        for model in models:
            with contextlib.suppress(MintakaError):
                self._sm("delete_model", ModelName=model)

    def _wait(self, name: str) -> dict[str, Any]:
        """Describe ``name`` until it leaves a transitional status (or the wait times out)."""
        last: dict[str, Any] = {}

        def settled() -> dict[str, Any] | None:
            last.update(self._describe_endpoint(name))
            return None if last["EndpointStatus"] in TRANSITIONAL else dict(last)

        return self._poll(
            settled,
            timeout=self.settings.wait_timeout_seconds,
            every=self.settings.poll_seconds,
            late=lambda: (
                f"endpoint {name!r} still {last['EndpointStatus']} after "
                f"{self.settings.wait_timeout_seconds:.0f} s"
            ),
        )

    def _poll(
        self,
        done: Callable[[], T | None],
        *,
        timeout: float,
        every: float,
        late: Callable[[], str],
    ) -> T:
        """Call ``done`` until it answers (not None), pausing ``every`` seconds on the backend's
        clock; ``BackendError(late())`` once ``timeout`` seconds have passed on that clock."""
        clock = self.context.clock
        deadline = clock.now() + timedelta(seconds=timeout)
        while True:
            answer = done()
            if answer is not None:
                return answer
            if clock.now() >= deadline:
                raise BackendError(late(), "sagemaker")
            pause(clock, every)

    # -- reading ----------------------------------------------------------------------------------

    def _config_routes(self, config_name: str) -> tuple[Route, ...]:
        """The routes of a config; none where they cannot be read (``_read_routes``)."""
        routes = self._read_routes(config_name)
        return routes if isinstance(routes, tuple) else routes.routes

    def _read_routes(self, config_name: str) -> tuple[Route, ...] | _Unreadable:
        """The routes of a config, or why they cannot be read: SageMaker lets a config, or a
        Model a config made outside Mintaka names, be deleted while an endpoint serves it, and
        the endpoint serves on, its routes unknown."""
        known = self.config_routes.get(config_name)
        if known is not None:
            return known
        try:
            tags = self._tags(self._arn(f"endpoint-config/{config_name}"))
        except NotFound:
            return _Unreadable(_config_deleted(config_name))
        routes = []
        for key, value in sorted(tags.items()):
            if key.startswith(ROUTE_TAG):
                model, _, version = value.rpartition(":")
                if model and version.isdigit():
                    routes.append(
                        Route(name=key.removeprefix(ROUTE_TAG), model=model, version=int(version))
                    )
        if not routes:  # a config made outside Mintaka, read afresh each time (ConfigRoutes)
            return self._package_routes(config_name)
        self.config_routes.put(config_name, tuple(routes))
        return tuple(routes)

    def _config_variants(self, config_name: str) -> list[dict[str, Any]]:
        """The production and shadow variants of a config; NotFound when it is gone."""
        return variants_of(self._sm("describe_endpoint_config", EndpointConfigName=config_name))

    def _package_of(self, described: dict[str, Any]) -> str | None:
        """The model package a SageMaker Model serves: the one its container names, else the one
        Mintaka registered from its model data (``register_served``, a tag on the Model). A tag
        naming a package since deleted is no package: the Model serves its model data still,
        which ``register_served`` registers again (and tags the Model with anew)."""
        containers = [described.get("PrimaryContainer") or {}]
        containers += described.get("Containers") or []
        packages = [c["ModelPackageName"] for c in containers if c.get("ModelPackageName")]
        if packages:
            return str(packages[0])
        tagged = self._tags(str(described["ModelArn"])).get(PACKAGE_TAG)
        if tagged is None:
            return None
        try:
            self._sm("describe_model_package", ModelPackageName=tagged)
        except NotFound:
            return None
        return tagged

    def _package_routes(self, config_name: str) -> tuple[Route, ...] | _Unreadable:
        """The routes of a config Mintaka did not make: each variant whose model serves a
        versioned model package is a route to that version (a variant whose model names no
        package has no version Mintaka could record, and is left out until its model data is
        registered as one). Unreadable when the config, or a Model it names, is gone."""
        try:
            variants = self._config_variants(config_name)
        except NotFound:
            return _Unreadable(_config_deleted(config_name))
        names = slot_routes(variants)
        routes: list[Route] = []
        deleted: list[str] = []
        for route, variant in sorted(names.items()):
            model = str(next(v.get("ModelName") for v in variants if v["VariantName"] == variant))
            try:
                package = self._package_of(self._sm("describe_model", ModelName=model))
            except NotFound:
                deleted.append(_model_deleted(variant, model))
                continue
            made = package_version(package) if package else None
            if made is not None:
                group, number = made
                routes.append(Route(name=route, model=self.settings.name_of(group), version=number))
        return _Unreadable("; ".join(deleted), tuple(routes)) if deleted else tuple(routes)

    # -- registering what an endpoint serves ------------------------------------------------------

    def register_served(
        self, endpoint: str, route: str, model: str, served: str | None = None
    ) -> BackendVersion:
        """Register the model data a variant's Model serves as a new package in ``model``'s
        group (image, model data and environment as the Model has them), and tag the Model with
        the package, so the variant reads as a route to it. The endpoint is not changed.
        ``Conflict``, before anything is written, when ``served`` (from ``fetch_served``) no
        longer names the Model and model data the variant serves, or the S3 objects holding
        that model data were written again since they were read. The create call's token is
        the slot's identity (Model ARN, creation time, containers, the objects' ETags): a retry
        after a lost response makes no second package, and a Model made again under its name,
        or new bytes at its model data's key, is another. A package an earlier run made but did
        not get to tag the Model with is reused whatever its token (``_untagged_package``)."""
        slot = self._served_slot(endpoint, route)
        registered = self._served_version(slot, endpoint, route)
        what = f"endpoint {endpoint!r} route {route!r}"
        if served is not None and self._served_identity(slot, registered, what) != served:
            raise Conflict(
                f"[sagemaker] endpoint {endpoint!r} route {route!r} changed while what it "
                "serves was read (it now serves another Model or model data, or its model "
                "data was written again in S3); nothing was registered: run it again"
            )
        config_name, served_model = slot[1], slot[3]
        if registered is not None and registered[0] != model:
            raise Conflict(
                f"[sagemaker] endpoint {endpoint!r}: route {route!r} serves "
                f"{registered[0]}:{registered[1]}, not a version of {model!r}"
            )
        if registered is not None:
            return self.get_version(*registered)
        container = self._registrable_container(served_model, what)
        identity = served or self._served_identity(slot, None, what)
        self.ensure_model(model)
        model_arn = str(served_model["ModelArn"])
        arn = self._untagged_package(model, served_model, identity)
        if arn is None:
            arn = self._create_served_package(model, slot, container, identity)
        made = package_version(arn)
        if made is None or made[0].lower() != self.settings.group_of(model).lower():
            raise Conflict(f"[sagemaker] registering what {model_arn} serves made {arn}")
        self._sm("add_tags", ResourceArn=model_arn, Tags=tag_list({PACKAGE_TAG: arn}))
        self.config_routes.forget(config_name)
        return self.get_version(model, made[1])

    def _create_served_package(
        self,
        model: str,
        slot: tuple[dict[str, Any], str, str, dict[str, Any]],
        container: dict[str, Any],
        identity: str,
    ) -> str:
        """Create the package holding ``container`` in ``model``'s group, naming the Model it
        was registered from and the slot's identity; its ARN."""
        described, _, variant_name, served_model = slot
        model_arn = str(served_model["ModelArn"])
        params: dict[str, Any] = {
            "ModelPackageGroupName": self.settings.group_of(model),
            "ClientToken": client_token(f"served:{self.settings.group_of(model)}:{identity}"),
            "ModelApprovalStatus": APPROVAL_TO_SAGEMAKER[ApprovalStatus.PENDING],
            "ModelPackageDescription": (
                f"Registered by Mintaka from the model data that SageMaker Model "
                f"{served_model['ModelName']} serves at endpoint {described['EndpointName']} "
                f"(variant {variant_name})"
            )[:1024],
            "InferenceSpecification": {
                "Containers": [container],
                "SupportedContentTypes": ["application/json", "text/csv"],
                "SupportedResponseMIMETypes": ["application/json", "text/csv"],
            },
            "CustomerMetadataProperties": {
                META_SERVED_BY: model_arn,
                META_SERVED_IDENTITY: _identity_digest(identity),
            },
        }
        return str(self._sm("create_model_package", **params)["ModelPackageArn"])

    def _untagged_package(
        self, model: str, served_model: dict[str, Any], identity: str
    ) -> str | None:
        """The package an earlier registration of what ``served_model`` serves made and did
        not tag the Model with (it stopped in between, under a ``ClientToken`` of this or
        another form): one in ``model``'s group made since the Model was, naming the Model,
        with the slot's ``identity``. None when there is none. A package that recorded no
        identity is never reused, whatever container it holds: the bytes at its model data's
        key may have been written again since it was made."""
        model_arn = str(served_model["ModelArn"])
        digest = _identity_digest(identity)
        since = served_model.get("CreationTime")
        for page in self._pages(
            "sagemaker",
            "list_model_packages",
            ModelPackageGroupName=self.settings.group_of(model),
            ModelPackageType="Versioned",
            **({"CreationTimeAfter": since} if since else {}),
        ):
            for summary in page.get("ModelPackageSummaryList", []):
                try:
                    described = self._sm(
                        "describe_model_package", ModelPackageName=summary["ModelPackageArn"]
                    )
                except NotFound:  # deleted while listing
                    continue
                meta = described.get("CustomerMetadataProperties") or {}
                if (
                    meta.get(META_SERVED_BY) == model_arn
                    and meta.get(META_SERVED_IDENTITY) == digest
                ):
                    return str(described["ModelPackageArn"])
        return None

    def fetch_served(self, endpoint: str, route: str, into: Path) -> ServedBytes:
        """The model data the variant's Model serves, read from S3 as ``fetch_artifact`` reads a
        package's (the package's own when the route already serves one), with the Model and
        container it was read for, and the S3 objects read, as the slot's identity."""
        slot = self._served_slot(endpoint, route)
        registered = self._served_version(slot, endpoint, route)
        if registered is not None:
            path, held = self._read_package_data(*registered, into)
        else:
            what = f"endpoint {endpoint!r} route {route!r}"
            container = self._registrable_container(slot[3], what)
            path, held = self._read_model_data(model_data_of(container), what, into)
        return ServedBytes(path, _slot_identity(slot[3], held))

    def _served_identity(
        self,
        slot: tuple[dict[str, Any], str, str, dict[str, Any]],
        registered: tuple[str, int] | None,
        what: str,
    ) -> str:
        """The slot's identity as ``fetch_served`` would read it now, without reading the
        bytes: the S3 objects of the package the route serves (``registered``), else of the
        model data its Model names."""
        if registered is not None:
            name, version = registered
            data = package_data(self._describe_package(name, version))
            return _slot_identity(slot[3], self._held_identity(data, f"version {name}:{version}"))
        container = self._registrable_container(slot[3], what)
        return _slot_identity(slot[3], self._held_identity(model_data_of(container), what))

    def _served_slot(
        self, endpoint: str, route: str
    ) -> tuple[dict[str, Any], str, str, dict[str, Any]]:
        """The endpoint described, its config's name, and the variant name and described Model
        that ``route`` reads as; ``NotFound`` for a route the endpoint does not have, or whose
        Model cannot be known (its config deleted: SageMaker names a variant's Model there
        only) or read (the Model deleted: the endpoint serves on what it copied)."""
        described = self._describe_endpoint(endpoint)
        config_name = str(described.get("EndpointConfigName", ""))
        try:
            variants = self._config_variants(config_name)
        except NotFound:
            raise NotFound(
                f"[sagemaker] endpoint {endpoint!r} serves endpoint config {config_name!r}, "
                "which was deleted outside Mintaka: which Model its variants serve cannot be "
                "read, so nothing was registered; update the endpoint onto a config naming its "
                "Models, then adopt it"
            ) from None
        names = slot_routes(variants)
        if route not in names:
            raise NotFound(
                f"[sagemaker] endpoint {endpoint!r} has no route {route!r} "
                f"(its variants read as {sorted(names)})"
            )
        variant = next(v for v in variants if v["VariantName"] == names[route])
        model = str(variant.get("ModelName"))
        try:
            served = self._sm("describe_model", ModelName=model)
        except NotFound:
            raise NotFound(
                f"[sagemaker] endpoint {endpoint!r} route {route!r}: "
                f"{_model_deleted(names[route], model)}; nothing was registered"
            ) from None
        return described, config_name, names[route], served

    def _served_version(
        self, slot: tuple[dict[str, Any], str, str, dict[str, Any]], endpoint: str, route: str
    ) -> tuple[str, int] | None:
        """The model and version the slot's Model already serves (a package it names, or one
        registered from its model data); None when it serves none."""
        package = self._package_of(slot[3])
        if package is None:
            return None
        made = package_version(package)
        if made is None:
            raise ValidationError(
                f"[sagemaker] endpoint {endpoint!r}: route {route!r} serves {package}, "
                "which is no versioned model package"
            )
        group, number = made
        return self.settings.name_of(group), number

    @staticmethod
    def _registrable_container(served: dict[str, Any], what: str) -> dict[str, Any]:
        """The package container for what a Model serves, refused unless it is one container
        with its model data in S3 (which ``fetch_artifact`` reads back) and nothing a package
        and the Models Mintaka makes from it cannot carry (``_require_carried``)."""
        containers = served.get("Containers") or []
        if len(containers) > 1:
            raise ValidationError(
                f"[sagemaker] {what} serves {len(containers)} containers (an inference "
                "pipeline); Mintaka registers one container's model data as one version"
            )
        container = dict(served.get("PrimaryContainer") or (containers[0] if containers else {}))
        if container.get("Mode") == "MultiModel":
            raise ValidationError(
                f"[sagemaker] {what} is a multi-model endpoint; it serves no single version"
            )
        _require_carried(container, what)
        data = model_data_of(container)
        if (
            data is None
            or not data.uri.startswith("s3://")
            or (not data.prefix and data.uri.endswith("/"))
        ):
            held = (
                f"no S3 model data (image {container.get('Image')!r})"
                if data is None
                else repr(data.uri)
            )
            raise ValidationError(
                f"[sagemaker] {what} serves {held}; Mintaka "
                "registers model data held in S3 (a model.tar.gz, a single file, or an "
                "uncompressed ModelDataSource prefix)"
            )
        registered: dict[str, Any] = {"Image": container.get("Image")}
        if container.get("ModelDataUrl"):
            registered["ModelDataUrl"] = str(container["ModelDataUrl"])
        else:
            registered["ModelDataSource"] = dict(container["ModelDataSource"])
        if container.get("Environment"):
            registered["Environment"] = dict(container["Environment"])
        return registered

    def _endpoint_from(self, described: dict[str, Any]) -> Endpoint:
        name = self.settings.endpoint_name_of(str(described["EndpointName"]))
        config = str(described.get("EndpointConfigName", ""))
        read = self._read_routes(config) if config else ()
        routes = read if isinstance(read, tuple) else ()
        raw = variant_weights(described)
        shadows = described.get("ShadowProductionVariants") or []
        variants = slot_routes(variants_of(described))
        weights = percentages({route_name_of(v): w for v, w in raw.items()})
        if weights:
            for route in routes:
                weights.setdefault(route.name, 0)
        shadow: str | None = None
        shadow_percent = 0
        live_weight = sum(raw.values())
        if shadows and live_weight > 0:
            first = shadows[0]
            share = float(first.get("CurrentWeight", first.get("DesiredWeight", 0.0)) or 0.0)
            shadow_percent = max(0, min(100, round(share * 100 / live_weight)))
            if shadow_percent:
                shadow = route_name_of(str(first["VariantName"]))
                weights.setdefault(shadow, 0)
        status = STATUS.get(str(described.get("EndpointStatus")), EndpointStatus.FAILED)
        capture = described.get("DataCaptureConfig") or {}
        return Endpoint(
            name=name,
            status=status,
            routes=routes,
            traffic=TrafficMap(weights=weights, shadow=shadow, shadow_percent=shadow_percent),
            backend="sagemaker",
            backend_ids={
                "endpoint": str(described.get("EndpointArn", "")),
                "endpoint_config": config,
            },
            extra={
                "status": str(described.get("EndpointStatus", "")),
                "failure_reason": str(described.get("FailureReason", "") or ""),
                "variant_weights": raw,
                "variants": variants,  # route -> variant
                "routes_known": isinstance(read, tuple),  # False: its config or a Model deleted
                **({} if isinstance(read, tuple) else {"routes_unreadable": read.reason}),
                "capture": {
                    "enabled": bool(capture.get("EnableCapture", False)),
                    "sample_percent": capture.get("CurrentSamplingPercentage"),
                    "destination": capture.get("DestinationS3Uri"),
                },
            },
        )

    def get_endpoint(self, name: str) -> Endpoint:
        try:
            return self._endpoint_from(self._describe_endpoint(name))
        except NotFound:
            record = self._kill_record(name)
            if record is None:
                raise
            return self._killed(name, record)

    def list_endpoints(self) -> list[Endpoint]:
        found: list[Endpoint] = []
        for page in self._pages("sagemaker", "list_endpoints"):
            for summary in page.get("Endpoints", []):
                name = self.settings.endpoint_name_of(str(summary["EndpointName"]))
                if not is_endpoint_name(name):  # not Mintaka's to list; discovery reports it
                    continue
                try:
                    found.append(self.get_endpoint(name))
                except NotFound:  # deleted while listing
                    continue
        return sorted(found, key=lambda e: e.name)

    # -- changing ---------------------------------------------------------------------------------

    def create_endpoint(self, name: str, routes: Sequence[Route], traffic: TrafficMap) -> Endpoint:
        """``Conflict`` when the name is taken, as ``CreateEndpoint`` itself reports it: an
        "already exists" on the call's first attempt is someone else's endpoint (what this call
        made for it is removed again); on a retried attempt it is reconciled when the endpoint
        serves this call's config (the first attempt succeeded and its response was lost). A
        retried call that fails otherwise (throttled until its budget ran out) is reconciled the
        same way; when the endpoint cannot be described either, the error is raised and the
        config and models it may be using are kept (discovery lists the endpoint, which Mintaka
        has no record of). An endpoint of this call's config that ends other than InService is
        deleted again (``_remove_failed``)."""
        cloud = self.settings.endpoint_of(name)
        layout = self._layout(name, routes, traffic)
        config = self._config_name(name, 1, layout)
        models = self._ensure_models(name, layout)
        made_config = False
        created = False  # once the endpoint may exist, its config and models are never removed
        try:
            made_config = self._create_config(config, layout)
            try:
                self._sm(
                    "create_endpoint",
                    EndpointName=cloud,
                    EndpointConfigName=config,
                    Tags=tag_list({MANAGED_TAG: "true"}),
                )
            except Conflict as exc:
                if not is_already_exists(exc):
                    raise
                if not (was_retried(exc) and self._serves_config(name, config)):
                    raise Conflict(f"[sagemaker] endpoint {name!r} already exists") from exc
            except MintakaError as exc:
                # A retried call may have created the endpoint on an attempt whose response was
                # lost (then throttled until the budget ran out): it is this call's if it serves
                # this call's config; if that cannot be told, nothing it may use is removed.
                if not was_retried(exc):
                    raise
                serves = self._may_serve(name, config)
                created = serves is None  # cannot be told: keep what the endpoint may use
                if not serves:
                    raise
            created = True
            described = self._wait(name)
        except MintakaError:
            if not created:
                self._discard([config] if made_config else [], models)
            raise
        if described["EndpointStatus"] != "InService":
            failed = f"endpoint {name!r} is {described['EndpointStatus']}: " + str(
                described.get("FailureReason") or "no reason given"
            )
            if described.get("EndpointConfigName") != config:
                raise BackendError(failed, "sagemaker")
            self._remove_failed(name, failed, [config] if made_config else [], models)
        return self._endpoint_from(described)

    def _remove_failed(
        self, name: str, failed: str, configs: Sequence[str], models: Sequence[str]
    ) -> NoReturn:
        """Delete an endpoint that a create left other than InService (SageMaker keeps a Failed
        endpoint, its name taken, which Mintaka has no record of), then the config and Models
        made for it, so the create can be tried again; raises the BackendError saying so."""
        try:
            self._sm("delete_endpoint", EndpointName=self.settings.endpoint_of(name))
            self._wait_gone(name)
        except MintakaError as exc:
            raise BackendError(
                f"{failed}; deleting it failed too ({exc}): delete it before creating it again",
                "sagemaker",
            ) from exc
        self._discard(configs, models)
        raise BackendError(
            f"{failed}; the endpoint was deleted, with the config and Models made for it, so "
            "creating it can be tried again",
            "sagemaker",
        )

    def _may_serve(self, name: str, config: str, *, pending: bool = False) -> bool | None:
        """``_serves_config``, or None when the endpoint cannot be described right now."""
        try:
            return self._serves_config(name, config, pending=pending)
        except MintakaError:
            return None

    def _serves_config(self, name: str, config: str, *, pending: bool = False) -> bool:
        """Whether the endpoint serves ``config``, or with ``pending`` is being updated to it."""
        try:
            found = self._describe_endpoint(name)
        except NotFound:  # a "Deleting" endpoint too
            return False
        serving = {found.get("EndpointConfigName")}
        if pending:
            serving.add((found.get("PendingDeploymentSummary") or {}).get("EndpointConfigName"))
        return config in serving

    @staticmethod
    def _capture_of(config: dict[str, Any] | None) -> dict[str, Any] | None:
        capture = (config or {}).get("DataCaptureConfig")
        return dict(capture) if capture else None

    def _current_capture(self, config_name: str) -> dict[str, Any] | None:
        if not config_name:
            return None
        return self._capture_of(
            self._sm("describe_endpoint_config", EndpointConfigName=config_name)
        )

    def _deploy_config(
        self,
        name: str,
        routes: Sequence[Route],
        traffic: TrafficMap,
        *,
        capture: dict[str, Any] | bool | None = True,
        deployment: dict[str, Any] | None = None,
        wait: bool = True,
        described: dict[str, Any] | None = None,
        old_config: dict[str, Any] | None = None,
        nonce: str = "",
    ) -> tuple[str, dict[str, Any] | None]:
        """Create the next config for ``name`` and switch the endpoint to it: (its name, the
        endpoint as described once the switch is done, or None without ``wait``).

        ``capture=True`` carries the current data capture over; a dict replaces it.
        ``described`` is the endpoint as the caller has just described it, and ``old_config``
        the config it serves (neither described again); ``nonce`` goes into the config's name
        (``_config_name``).
        """
        if described is None:
            described = self._describe_endpoint(name)
        self._require_in_service(name, described)
        old = str(described.get("EndpointConfigName", ""))
        if old and old_config is None:
            old_config = self._sm("describe_endpoint_config", EndpointConfigName=old)
        new_capture = self._capture_of(old_config) if capture is True else (capture or None)
        layout = self._layout(
            name, routes, traffic, new_capture, self._carried(old, old_config, routes)
        )
        config = self._config_name(name, self._counter(old) + 1, layout, nonce)
        if config == old:
            return config, described
        models = self._ensure_models(name, layout)
        made_config = False
        try:
            made_config = self._create_config(config, layout, replaces="" if wait else old)
            params: dict[str, Any] = {
                "EndpointName": self.settings.endpoint_of(name),
                "EndpointConfigName": config,
            }
            if deployment:
                params["DeploymentConfig"] = deployment
            self._sm("update_endpoint", **params)
        except MintakaError as exc:
            # A retried call may have switched the endpoint on an attempt whose response was lost
            # (then throttled until the budget ran out): the switch is finished when the endpoint
            # serves or is switching to this config; if that cannot be told, nothing it may use
            # is removed.
            switched = self._may_serve(name, config, pending=True) if was_retried(exc) else False
            if switched is False:
                self._discard([config] if made_config else [], models)
            if not switched:
                raise
        if not wait:
            return config, None
        done = self._wait(name)
        if done.get("EndpointConfigName") != config:
            raise BackendError(
                f"update of endpoint {name!r} to {config} did not take: "
                f"{done['EndpointStatus']} {done.get('FailureReason', '')}".strip(),
                "sagemaker",
            )
        if old_config is not None:
            self._retire_config(name, old, old_config, keep=layout)
        return config, done

    @staticmethod
    def _require_in_service(name: str, described: dict[str, Any]) -> None:
        """``Conflict`` unless the described endpoint is InService: SageMaker refuses a change
        while another is under way."""
        if described["EndpointStatus"] != "InService":
            raise Conflict(
                f"[sagemaker] endpoint {name!r} is {described['EndpointStatus']}; "
                "wait for it to be InService"
            )

    def _carried(self, old: str, config: dict[str, Any] | None, routes: Sequence[Route]) -> Carried:
        """What the endpoint's config ``old`` hands on (``Carried``); when a route needs a new
        Model, the network settings of the busiest variant's Model too (one ``DescribeModel``),
        and its execution role with settings ``model_role = "endpoint"``."""
        carried = Carried.of(config, self._config_routes(old) if config else ())
        if carried.busiest is None or all(carried.kept_model(r) for r in routes):
            return carried
        try:
            busiest = self._sm("describe_model", ModelName=carried.busiest)
        except NotFound:
            return carried
        network = {k: busiest[k] for k in NETWORK_FIELDS if busiest.get(k)}
        role = busiest.get("ExecutionRoleArn") if self.settings.model_role == "endpoint" else None
        return dataclasses.replace(carried, network=network, role=role or None)

    @staticmethod
    def _made_by_mintaka(endpoint: str, config: str) -> bool:
        """Whether Mintaka made ``endpoint``'s config ``config`` (it names every config it makes
        ``<endpoint>-c<n>-<hash>``). A config made before Mintaka managed the endpoint, and the
        Models it serves, are left as they are when the endpoint moves on or is deleted: other
        tools (infrastructure as code, autoscaling, a console rollback) may still refer to them."""
        return re.fullmatch(re.escape(endpoint) + r"-c\d+-[0-9a-f]{8}", config) is not None

    def _retire_config(self, name: str, old: str, found: dict[str, Any], keep: Layout) -> None:
        """Delete the config an endpoint left (as described before the switch) and its models
        that the new layout does not serve, where Mintaka made them and no other endpoint
        serves the config (``_served_elsewhere``)."""
        if not self._made_by_mintaka(name, old):
            self.config_routes.forget(old)
            return
        if self._served_elsewhere(old, name, found.get("CreationTime")):
            return
        in_use = {v["ModelName"] for v in keep.variants + keep.shadow_variants}
        stale = made_models(name, found) - in_use
        self._discard([old], sorted(stale))

    def _answer(self, name: str, done: dict[str, Any] | None) -> Endpoint:
        return self._endpoint_from(done) if done is not None else self.get_endpoint(name)

    def update_routes(self, name: str, routes: Sequence[Route], traffic: TrafficMap) -> Endpoint:
        _, done = self._deploy_config(name, routes, traffic)
        return self._answer(name, done)

    def set_traffic(self, name: str, traffic: TrafficMap) -> Endpoint:
        """Weights alone change in place (``UpdateEndpointWeightsAndCapacities``); a new shadow
        needs the next config. The endpoint is described before (its routes and shape) and after
        (the wait, which is also the answer)."""
        described = self._describe_endpoint(name)
        self._require_in_service(name, described)
        current = self._endpoint_from(described)
        wanted = self._layout(name, current.routes, traffic)
        running = self._layout(name, current.routes, current.traffic)
        if wanted.shape != running.shape:
            _, done = self._deploy_config(name, current.routes, traffic, described=described)
            return self._answer(name, done)
        running_weights = current.extra.get("variant_weights", {})
        variants = current.extra.get("variants", {})  # an endpoint made outside Mintaka's names
        changes = [
            {"VariantName": variant, "DesiredWeight": v["InitialVariantWeight"]}
            for v in wanted.variants
            if running_weights.get(variant := variants.get(v["VariantName"], v["VariantName"]))
            != v["InitialVariantWeight"]
        ]
        if not changes:
            return current
        self._sm(
            "update_endpoint_weights_and_capacities",
            EndpointName=self.settings.endpoint_of(name),
            DesiredWeightsAndCapacities=changes,
        )
        return self._endpoint_from(self._wait(name))

    def set_shadow(self, name: str, route: str | None, percent: int) -> Endpoint:
        current = self.get_endpoint(name)
        traffic = TrafficMap(
            weights=current.traffic.weights, shadow=route, shadow_percent=percent if route else 0
        )
        return self.set_traffic(name, traffic)

    def delete_endpoint(self, name: str) -> None:
        """Delete the endpoint, the config it serves and its Models (where Mintaka made them),
        and any kill record of the name (one left by a kill whose delete failed too)."""
        try:
            described = self._describe_endpoint(name)
        except NotFound:
            record = self._kill_record(name)
            if record is None:
                raise
            self._discard_deployed(name, str(record["config"]))  # a killed endpoint's config
            self._forget_kill(name)
            return
        self._sm("delete_endpoint", EndpointName=self.settings.endpoint_of(name))
        if self.settings.bucket:
            self._forget_kill(name)
        self._discard_deployed(name, str(described.get("EndpointConfigName", "")))

    def _discard_deployed(self, name: str, config: str) -> None:
        """Delete the config an endpoint served and its Models, where Mintaka made them."""
        models: list[str] = []
        if config and not self._made_by_mintaka(name, config):
            config = ""  # made before Mintaka managed the endpoint: kept, with its Models
        if config:
            try:
                found = self._sm("describe_endpoint_config", EndpointConfigName=config)
                models = sorted(made_models(name, found))
            except NotFound:
                pass
        self._discard([config] if config else [], models)

    # -- kill switch (emulated) -------------------------------------------------------------------

    # SageMaker cannot make an endpoint refuse requests, so a killed endpoint is deleted: nothing
    # serves, and a request fails as to a missing endpoint. Its config and Models are kept, and a
    # kill record in the artifact bucket (written before the delete) holds the config and the
    # traffic, so the endpoint reads back as killed, and releasing it re-creates it from that
    # config with that traffic. A delete refused while a native rollout is under way trips that
    # rollout's own SLA alarms, so SageMaker rolls it back, and refuses the kill.

    def _kill_key(self, name: str) -> str:
        return self.settings.key("killed", f"{self.settings.endpoint_of(name)}.json")

    def _kill_record(self, name: str) -> dict[str, Any] | None:
        if not self.settings.bucket:  # no bucket, so nothing was ever killed here
            return None
        found = self._s3_object(f"s3://{self.settings.bucket}/{self._kill_key(name)}")
        return None if found is None else dict(json.loads(found))

    def _forget_kill(self, name: str) -> None:
        self._call(
            "s3", "delete_object", Bucket=self.settings.require_bucket(), Key=self._kill_key(name)
        )

    def _killed(self, name: str, record: dict[str, Any]) -> Endpoint:
        config = str(record["config"])
        return Endpoint(
            name=name,
            status=EndpointStatus.KILLED,
            routes=self._config_routes(config),
            traffic=TrafficMap.model_validate(record["traffic"]),
            backend="sagemaker",
            backend_ids={"endpoint_config": config},
            extra={"killed_at": record.get("killed_at", "")},
        )

    def kill(self, name: str) -> Endpoint:
        """Record the endpoint's config and traffic, then delete the endpoint (not its config or
        Models). Killing a killed endpoint changes nothing. A record found beside an endpoint
        that still exists (its kill's delete failed, or the name was taken again) is stale:
        the endpoint as it is now is recorded instead. A delete refused while SageMaker walks a
        native rollout stops that rollout where it can and is refused (``_roll_back_update``);
        a delete that fails otherwise (throttled, a server error, a permission missing) is
        raised as it is, and stops nothing: the kill is pulled again as it was."""
        try:
            described = self._describe_endpoint(name)
        except NotFound:
            record = self._kill_record(name)
            if record is None:
                raise
            return self._killed(name, record)
        current = self._endpoint_from(described)
        record = {
            "config": str(described.get("EndpointConfigName", "")),
            "traffic": current.traffic.model_dump(mode="json"),
            "variant_weights": current.extra.get("variant_weights", {}),
            "killed_at": self.context.clock.now().isoformat(),
        }
        self._call(
            "s3",
            "put_object",
            Bucket=self.settings.require_bucket(),
            Key=self._kill_key(name),
            Body=json.dumps(record, sort_keys=True).encode(),
            ContentType="application/json",
        )
        try:
            with contextlib.suppress(NotFound):  # deleted already: a repeated or resumed kill
                self._sm("delete_endpoint", EndpointName=self.settings.endpoint_of(name))
        except Conflict as exc:
            if not described.get("PendingDeploymentSummary"):
                raise
            self._roll_back_update(name, described, exc)
        return self._killed(name, record)

    def _roll_back_update(
        self, name: str, described: dict[str, Any], refused: Exception
    ) -> NoReturn:
        """A kill SageMaker refused (``refused``) while it walks an update of the endpoint (a
        native rollout): no call stops an update, so the rollout's SLA alarms Mintaka made are
        set to ALARM, which makes SageMaker roll it back to the fleet serving before it (the
        traffic it started from), and the kill is refused (``Conflict``) saying so, to be pulled
        again once the endpoint is InService. A rollout no alarm of Mintaka's watches cannot be
        stopped: the kill is refused all the same; one whose alarms could not be set is not
        stopped yet, and the refusal names them and says to pull the switch again now. Alarms
        configured in ``rollback_alarms`` belong to others and are left alone."""
        pending = str(described["PendingDeploymentSummary"].get("EndpointConfigName", ""))
        status = described["EndpointStatus"]
        if not self._native_rollout_config(pending):
            raise Conflict(
                f"[sagemaker] endpoint {name!r} is {status}, being updated to {pending}, and "
                f"SageMaker refused to delete it ({refused}): the kill is not applied, pull the "
                f"kill switch again once the endpoint is InService (`mintaka endpoints show "
                f"{name}`)"
            ) from refused
        own = self._own_rollback_alarms(self.settings.endpoint_of(name), described)
        alarms, failed = self._trip_alarms(name, pending, own)
        again = f"once the endpoint is InService (`mintaka endpoints show {name}`)"
        why = "; ".join(f"{alarm}: {error}" for alarm, error in failed.items())
        if alarms:
            done = (
                f"Mintaka set that rollout's rollback alarms {alarms} to ALARM, so SageMaker "
                f"rolls native rollout {pending} back to the fleet serving before it"
            )
            if failed:
                done += f" (setting {list(failed)} failed: {why})"
        elif failed:
            done = (
                f"setting native rollout {pending}'s rollback alarms {list(failed)} to ALARM "
                f"failed ({why}), so nothing stops it yet"
            )
            again = "now, to set them again"
        else:
            done = (
                f"native rollout {pending} has no rollback alarm of Mintaka's (its plan sets no "
                "SLA bound), so nothing stops it before it ends"
            )
        raise Conflict(
            f"[sagemaker] endpoint {name!r} is {status} and SageMaker refused to delete it "
            f"({refused}); {done}: the kill is not applied, pull the kill switch again {again}"
        ) from refused

    def _trip_alarms(
        self, name: str, pending: str, alarms: Sequence[str]
    ) -> tuple[list[str], dict[str, str]]:
        """Set each of ``alarms`` to ALARM, so SageMaker rolls back update ``pending``; the
        alarms set, and each one that could not be set with why (the kill's refusal names
        them: a rollout whose alarms were all left unset is not stopped yet)."""
        tripped: list[str] = []
        failed: dict[str, str] = {}
        for alarm in alarms:
            try:
                self._call(
                    "cloudwatch",
                    "set_alarm_state",
                    AlarmName=alarm,
                    StateValue="ALARM",
                    StateReason=f"Mintaka: the kill switch of {name} stops rollout {pending}",
                )
            except MintakaError as exc:
                log.warning("kill switch on %s: setting alarm %s failed: %s", name, alarm, exc)
                failed[alarm] = str(exc)
                continue
            tripped.append(alarm)
        return tripped, failed

    def _native_rollout_config(self, config: str) -> bool:
        """Whether ``config`` is one a native rollout of Mintaka's deploys (``start_rollout``
        tags it with the config it replaces): an update to any other config may name in the
        endpoint's ``LastDeploymentConfig`` the alarms of an earlier rollout, which watch
        nothing now."""
        try:
            return REPLACES_TAG in self._tags(self._arn(f"endpoint-config/{config}"))
        except MintakaError:
            return False

    @staticmethod
    def _own_rollback_alarms(cloud_name: str, described: dict[str, Any]) -> list[str]:
        """The alarms of the endpoint's last deployment (``AutoRollbackConfiguration``) that
        Mintaka made for a native rollout: its SLA alarms on the variants the endpoint serves
        or is being updated to (``rollout_alarm_name``)."""
        endpoint = str(described.get("EndpointName") or cloud_name)
        pending = described.get("PendingDeploymentSummary") or {}
        variants = {
            str(v.get("VariantName"))
            for v in [
                *(described.get("ProductionVariants") or []),
                *(pending.get("ProductionVariants") or []),
            ]
        }
        own = {rollout_alarm_name(endpoint, v, bound) for v in variants for bound in SLA_WATCHES}
        rollback = (described.get("LastDeploymentConfig") or {}).get("AutoRollbackConfiguration")
        named = [str(a.get("AlarmName")) for a in (rollback or {}).get("Alarms") or []]
        return [a for a in named if a in own]

    def unkill(self, name: str) -> Endpoint:
        """Re-create the killed endpoint from the config it served, restore its weights and drop
        the kill record; an endpoint that is not killed is answered as it is. ``NotFound``, the
        endpoint left killed, when that config was deleted outside Mintaka (the record holds its
        name and traffic, not its compute or capture, so it cannot be made again as it was)."""
        record = self._kill_record(name)
        if record is None:
            return self.get_endpoint(name)
        cloud = self.settings.endpoint_of(name)
        config = str(record["config"])
        self._wait_gone(name)
        try:
            self._sm(
                "create_endpoint",
                EndpointName=cloud,
                EndpointConfigName=config,
                Tags=tag_list({MANAGED_TAG: "true"}),
            )
        except Conflict as exc:  # re-created by a release whose record is still there
            if not is_already_exists(exc):
                raise
        except NotFound as exc:
            raise NotFound(
                f"[sagemaker] endpoint {name!r} cannot be released: the endpoint config "
                f"{config!r} it served when killed was deleted outside Mintaka, and only that "
                "config holds its compute and capture settings; it stays killed: delete the "
                "endpoint (its kill record goes with it) and create it again"
            ) from exc
        described = self._wait(name)
        if described["EndpointStatus"] != "InService":
            raise BackendError(
                f"endpoint {name!r} is {described['EndpointStatus']} after its release: "
                f"{described.get('FailureReason', '')}",
                "sagemaker",
            )
        wanted: dict[str, float] = dict(record.get("variant_weights") or {})
        running = variant_weights(described)
        changes = [
            {"VariantName": variant, "DesiredWeight": weight}
            for variant, weight in sorted(wanted.items())
            if variant in running and running[variant] != weight
        ]
        if changes:
            self._sm(
                "update_endpoint_weights_and_capacities",
                EndpointName=cloud,
                DesiredWeightsAndCapacities=changes,
            )
            described = self._wait(name)
        self._forget_kill(name)
        return self._endpoint_from(described)

    def _wait_gone(self, name: str) -> None:
        """Wait while an endpoint (a killed one, or a failed create) is still being deleted (a
        name cannot be taken again before that ends)."""

        def gone() -> bool | None:
            try:
                found = self._sm("describe_endpoint", EndpointName=self.settings.endpoint_of(name))
            except NotFound:
                return True
            return True if found.get("EndpointStatus") != "Deleting" else None

        self._poll(
            gone,
            timeout=self.settings.wait_timeout_seconds,
            every=self.settings.poll_seconds,
            late=lambda: f"endpoint {name!r} still Deleting",
        )

    # -- invoking ---------------------------------------------------------------------------------

    # An endpoint whose config has ``AsyncInferenceConfig`` refuses InvokeEndpoint: its requests go
    # through S3 and InvokeEndpointAsync. A request is sent with InvokeEndpoint unless its endpoint
    # is known to be asynchronous; when InvokeEndpoint is refused, the endpoint and its config are
    # read once, and an asynchronous endpoint is remembered as one, so its later requests go
    # straight to InvokeEndpointAsync (each reads the config once, which notices an endpoint
    # re-created real-time under the same name). A real-time request makes no call but its own.

    @cached_property
    def asynchronous(self) -> set[str]:
        """The SageMaker endpoints found to be asynchronous."""
        return set()

    def invoke(self, name: str, payload: Any, route: str | None = None) -> dict[str, Any]:
        cloud = self.settings.endpoint_of(name)
        if cloud in self.asynchronous:
            served = self._served(name)
            if served is not None and served[1].get("AsyncInferenceConfig"):
                return self._invoke_async(name, payload, route, served[0])
            self.asynchronous.discard(cloud)
        try:
            return self._invoke_real_time(name, payload, route)
        except (NotFound, ValidationError):
            served = self._served(name)
            if served is None or not served[1].get("AsyncInferenceConfig"):
                raise
            self.asynchronous.add(cloud)
            described = served[0]
        return self._invoke_async(name, payload, route, described)

    def _served(self, name: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """The endpoint as described and the config it serves, or None when there is no such
        endpoint; a killed endpoint raises the BackendError its requests fail with."""
        try:
            described = self._describe_endpoint(name)
        except NotFound:
            if self._kill_record(name) is not None:
                raise BackendError(
                    f"endpoint {name!r} is killed: it serves no model until released",
                    "sagemaker",
                ) from None
            return None
        config = str(described.get("EndpointConfigName", ""))
        found = self._sm("describe_endpoint_config", EndpointConfigName=config) if config else {}
        return described, found

    def _invoke_real_time(self, name: str, payload: Any, route: str | None) -> dict[str, Any]:
        params: dict[str, Any] = {
            "EndpointName": self.settings.endpoint_of(name),
            "Body": json.dumps(payload).encode("utf-8"),
            "ContentType": "application/json",
            "Accept": "application/json",
        }
        if route is not None:  # the variant the endpoint has under that route's name
            variants = self.get_endpoint(name).extra.get("variants", {})
            params["TargetVariant"] = variants.get(route, route)
        answer = self._call("sagemaker-runtime", "invoke_endpoint", **params)
        invoked = answer.get("InvokedProductionVariant")
        answered = route_name_of(str(invoked)) if invoked else (route or "")
        return self._predictions(name, payload, answer["Body"].read(), answered)

    def _invoke_async(
        self, name: str, payload: Any, route: str | None, described: dict[str, Any]
    ) -> dict[str, Any]:
        """Put the request in the artifact bucket, call InvokeEndpointAsync and wait for the answer
        it writes to S3; the request object is deleted afterwards (the answer belongs to the
        endpoint's owner and is left). InvokeEndpointAsync cannot target a variant, so a request
        pinned to a route is served only while that route is the endpoint's one live variant."""
        bucket = self.settings.require_bucket()
        variants = slot_routes(variants_of(described))  # route -> variant
        routes = {variant: slot for slot, variant in variants.items()}
        live = [v for v, weight in variant_weights(described).items() if weight > 0]
        if route is not None and live != [variants.get(route, route)]:
            raise ValidationError(
                f"[sagemaker] endpoint {name!r} is asynchronous and InvokeEndpointAsync cannot "
                f"target a variant: a request pinned to route {route!r} is served only while it "
                f"is the endpoint's one live route (live: {sorted(routes[v] for v in live)})"
            )
        answered = route or (routes[live[0]] if len(live) == 1 else "")
        request = self.context.ids.new("req")
        key = self.settings.key("async-inputs", f"{request}.json")
        self._call(
            "s3",
            "put_object",
            Bucket=bucket,
            Key=key,
            Body=json.dumps(payload).encode("utf-8"),
            ContentType="application/json",
        )
        try:
            accepted = self._call(
                "sagemaker-runtime",
                "invoke_endpoint_async",
                EndpointName=self.settings.endpoint_of(name),
                InputLocation=f"s3://{bucket}/{key}",
                ContentType="application/json",
                Accept="application/json",
                InferenceId=request,
            )
            raw = self._async_answer(name, request, accepted)
        finally:
            with contextlib.suppress(MintakaError):
                self._call("s3", "delete_object", Bucket=bucket, Key=key)
        return self._predictions(name, payload, raw, answered)

    def _async_answer(self, name: str, request: str, accepted: dict[str, Any]) -> bytes:
        """What the endpoint wrote to the ``OutputLocation`` of an accepted request, polled on the
        backend's clock; a ``FailureLocation`` written instead is a BackendError with its text,
        and so is nothing written within ``async_timeout_seconds``."""
        output = str(accepted.get("OutputLocation") or "")
        failure = str(accepted.get("FailureLocation") or "")
        if not output:
            raise BackendError(
                f"endpoint {name!r} accepted request {request} without an OutputLocation",
                "sagemaker",
            )

        def answered() -> bytes | None:
            found = self._s3_object(output)
            failed = None if found is not None or not failure else self._s3_object(failure)
            if failed is not None:
                raise BackendError(
                    f"endpoint {name!r} failed request {request}: "
                    f"{failed.decode('utf-8', 'replace')[:2000]}",
                    "sagemaker",
                )
            return found

        return self._poll(
            answered,
            timeout=self.settings.async_timeout_seconds,
            every=self.settings.async_poll_seconds,
            late=lambda: (
                f"endpoint {name!r} has not answered request {request} within "
                f"{self.settings.async_timeout_seconds:.0f} s (its answer is due at {output})"
            ),
        )

    def _s3_object(self, uri: str) -> bytes | None:
        """The object at an ``s3://`` URI; None while there is none."""
        bucket, _, key = uri.removeprefix("s3://").partition("/")
        try:
            body = self._call("s3", "get_object", Bucket=bucket, Key=key)["Body"]
        except NotFound:
            return None
        with body:
            return bytes(body.read())

    def _predictions(self, name: str, payload: Any, raw: bytes, route: str) -> dict[str, Any]:
        """The answer to ``payload`` from the JSON the endpoint returned (at once, or in S3): the
        inference image answers ``{"predictions": [one output per row]}``."""
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise BackendError(
                f"endpoint {name!r} answered with non-JSON: {exc}", "sagemaker"
            ) from exc
        outputs = body.get("predictions") if isinstance(body, dict) else body
        inputs = payload.get("inputs") if isinstance(payload, dict) else payload
        rows = len(inputs) if isinstance(inputs, list) else 1
        if not isinstance(outputs, list) or len(outputs) != rows:
            raise BackendError(
                f"endpoint {name!r} answered {rows} row(s) with {outputs!r}; the inference image "
                'must answer {"predictions": [one output per row]}',
                "sagemaker",
            )
        return {
            "endpoint": name,
            "route": route,
            "predictions": [
                {"id": self.context.ids.new("pred"), "output": output} for output in outputs
            ],
        }

    # -- native rollout ---------------------------------------------------------------------------

    def _rollout_alarms(
        self, endpoint: str, plan: TrafficPlan, rising: list[str], variants: dict[str, str]
    ) -> list[str]:
        """Alarm names for ``AutoRollbackConfiguration``: the configured ones, and one per SLA
        bound on the variant of each route gaining traffic on SageMaker endpoint ``endpoint``
        (``rollout_alarm_name``; created or updated here, and set to OK)."""
        alarms = list(self.settings.rollback_alarms)
        earlier: dict[str, tuple[str, str, str]] = {}
        for route in rising:
            variant = variants.get(route, route)
            for bound in _sla_bounds(plan):
                alarm = rollout_alarm_name(endpoint, variant, bound)
                self._put_sla_alarm(alarm, endpoint, variant, bound, plan)
                alarms.append(alarm)
                description = sla_alarm_description(plan.endpoint, route, bound)
                for old in earlier_alarm_names(plan.endpoint, route, bound):
                    if old != alarm:
                        earlier[old] = (description, endpoint, variant)
        for alarm in alarms[len(self.settings.rollback_alarms) :]:
            self._reset_alarm(alarm)
        self._delete_earlier_alarms({k: v for k, v in earlier.items() if k not in alarms})
        return alarms

    def _put_sla_alarm(
        self, alarm: str, endpoint: str, variant: str, bound: str, plan: TrafficPlan
    ) -> None:
        """Create or update the alarm on ``bound`` of the plan's SLA for ``variant`` of
        SageMaker endpoint ``endpoint``: p99 ``ModelLatency`` (in µs), or the share of
        invocations answered 5xx (a metric-math expression)."""
        dimensions = [
            {"Name": "EndpointName", "Value": endpoint},
            {"Name": "VariantName", "Value": variant},
        ]
        watched: dict[str, Any]
        if bound == "p99-latency" and plan.sla.p99_latency_ms is not None:
            watched = {
                "Namespace": "AWS/SageMaker",
                "MetricName": "ModelLatency",
                "Dimensions": dimensions,
                "ExtendedStatistic": "p99",
                "Period": 60,
                "Threshold": plan.sla.p99_latency_ms * 1000.0,
            }
        elif bound == "error-rate" and plan.sla.max_error_rate is not None:
            watched = {
                "Metrics": [
                    _sum_query("errors", "Invocation5XXErrors", dimensions),
                    _sum_query("calls", "Invocations", dimensions),
                    {
                        "Id": "rate",
                        "Expression": "IF(calls > 0, errors / calls, 0)",
                        "ReturnData": True,
                    },
                ],
                "Threshold": plan.sla.max_error_rate,
            }
        else:
            raise ValidationError(f"[sagemaker] the plan sets no SLA bound {bound!r}")
        self._call(
            "cloudwatch",
            "put_metric_alarm",
            AlarmName=alarm,
            AlarmDescription=sla_alarm_description(endpoint, variant, bound),
            EvaluationPeriods=1,
            ComparisonOperator="GreaterThanThreshold",
            TreatMissingData="notBreaching",
            **watched,
        )

    def _delete_earlier_alarms(self, earlier: dict[str, tuple[str, str, str]]) -> None:
        """Delete the alarms earlier versions of Mintaka made for what a rollout now watches
        under new names (``earlier_alarm_names``, old name -> description, SageMaker endpoint
        and variant): only an alarm of exactly that name and description that watches that
        variant, so nobody else's alarm goes, nor one of another endpoint whose names read
        alike. A failure is logged and the rollout goes on: they watch nothing a rollout uses."""
        if not earlier:
            return
        try:
            found = self._call("cloudwatch", "describe_alarms", AlarmNames=sorted(earlier))
            stale = sorted(
                str(a["AlarmName"])
                for a in found.get("MetricAlarms", [])
                if a["AlarmName"] in earlier
                and a.get("AlarmDescription") == earlier[a["AlarmName"]][0]
                and _watched_by(a) == earlier[a["AlarmName"]][1:]
            )
            if stale:
                self._call("cloudwatch", "delete_alarms", AlarmNames=stale)
        except MintakaError as exc:
            log.warning("kept rollout SLA alarms made under earlier names: %s", exc)

    def _reset_alarm(self, alarm: str) -> None:
        """Set a rollout SLA alarm to OK before its rollout starts: CloudWatch keeps an alarm's
        state when ``PutMetricAlarm`` updates it, so an ALARM left by an earlier rollout would
        roll this one back at once; CloudWatch evaluates it afresh at its next period."""
        self._call(
            "cloudwatch",
            "set_alarm_state",
            AlarmName=alarm,
            StateValue="OK",
            StateReason="Mintaka: a native rollout starts watching this SLA afresh",
        )

    def check_native_plan(self, plan: TrafficPlan, current: Endpoint) -> None:
        """Refuse a plan SageMaker's blue/green traffic shifting cannot walk as written from
        ``current`` (``_native_target``), or whose rollback needs alarms SageMaker cannot take
        (``_require_rollback_alarms``): it is never clamped or walked in other steps. Reads
        nothing of the endpoint from the cloud (core checks the plan against the endpoint as
        recorded and as the cloud reports it), only whether the configured ``rollback_alarms``
        exist."""
        self._native_start(plan, current)

    def _native_start(self, plan: TrafficPlan, current: Endpoint) -> NativeStart:
        """What a native rollout of ``plan`` from ``current`` is, checked as
        ``check_native_plan`` says."""
        routing = native_routing(plan)
        target = self._native_target(plan, current, routing)
        rising = sorted(
            r for r, w in target.weights.items() if w > current.traffic.weights.get(r, 0)
        )
        self._require_rollback_alarms(plan, rising)
        return NativeStart(routing, target, rising)

    def _require_rollback_alarms(self, plan: TrafficPlan, rising: Sequence[str]) -> None:
        """SageMaker's ``AutoRollbackConfiguration`` takes at most ``MAX_ROLLBACK_ALARMS``
        alarms, each existing: the configured ``rollback_alarms`` and one per SLA bound on each
        route gaining traffic (``_rollout_alarms``) must fit, and the configured ones must be
        CloudWatch alarms (``ConfigurationError`` naming those that are not)."""
        configured = list(self.settings.rollback_alarms)
        bounds = len(_sla_bounds(plan))
        needed = len(configured) + bounds * len(rising)
        if needed > MAX_ROLLBACK_ALARMS:
            raise ValidationError(
                f"a native rollout of {plan.endpoint} would need {needed} CloudWatch alarms for "
                f"SageMaker's automatic rollback ({len(configured)} in rollback_alarms, and "
                f"{bounds} SLA bound(s) on each of {list(rising)}), and SageMaker takes at most "
                f"{MAX_ROLLBACK_ALARMS}: drop SLA bounds or configured alarms"
            )
        if not configured:
            return
        found = self._call(
            "cloudwatch",
            "describe_alarms",
            AlarmNames=configured,
            AlarmTypes=["MetricAlarm", "CompositeAlarm"],
        )
        known = {
            str(a["AlarmName"])
            for a in [*found.get("MetricAlarms", []), *found.get("CompositeAlarms", [])]
        }
        missing = [a for a in configured if a not in known]
        if missing:
            raise ConfigurationError(
                f"[sagemaker] rollback_alarms names CloudWatch alarms that do not exist in "
                f"{self.settings.region}: {missing}; SageMaker refuses a rollout naming them"
            )

    def _native_target(
        self, plan: TrafficPlan, current: Endpoint, routing: dict[str, Any]
    ) -> TrafficMap:
        """The traffic a native rollout of ``plan`` walked by ``routing`` (``native_routing``)
        ends on from ``current``: its last step's weights, with the shadow core's controller
        would keep (``step_shadow``); a ``ValidationError`` when SageMaker cannot walk it there
        as written (``_require_new_route``, ``_require_current_split``,
        ``_require_shadow_kept``, ``_require_same_variants``)."""
        if routing["Type"] != "ALL_AT_ONCE":
            route = _new_route(plan)
            self._require_new_route(plan, current, route)
            _require_current_split(plan, current, route)
        shadow, shadow_percent = step_shadow(plan, plan.steps[-1], current)
        target = TrafficMap(
            weights=plan.steps[-1].weights, shadow=shadow, shadow_percent=shadow_percent
        )
        _require_shadow_kept(plan, target)
        _require_same_variants(plan, current, target)
        return target

    @staticmethod
    def _require_new_route(plan: TrafficPlan, current: Endpoint, route: str) -> None:
        """SageMaker shifts a canary or linear plan's shares from the fleet serving now to one
        serving ``route`` alone: that walks the plan's steps only while ``route`` takes no live
        traffic now."""
        serving = current.traffic.weights.get(route, 0)
        if serving > 0:
            _refuse(
                plan,
                f"{route!r} already takes {serving}% of {plan.endpoint}'s traffic, and SageMaker "
                "shifts the plan's shares onto a fleet serving it alone",
            )

    def start_rollout(self, plan: TrafficPlan) -> str:
        described = self._describe_endpoint(plan.endpoint)
        self._require_in_service(plan.endpoint, described)
        current = self._endpoint_from(described)
        start = self._native_start(plan, current)
        deployment: dict[str, Any] = {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": start.routing,
                "MaximumExecutionTimeoutInSeconds": execution_timeout(plan, start.routing),
            },
        }
        # A route keeps its variant's name in the next config (``Carried``); a new one is named
        # after the route.
        variants = dict(current.extra.get("variants") or {})
        endpoint = str(described.get("EndpointName") or self.settings.endpoint_of(plan.endpoint))
        alarms = self._rollout_alarms(endpoint, plan, start.rising, variants)
        if alarms:
            deployment["AutoRollbackConfiguration"] = {"Alarms": [{"AlarmName": a} for a in alarms]}
        config, _ = self._deploy_config(
            plan.endpoint,
            current.routes,
            start.target,
            deployment=deployment,
            wait=False,
            described=described,
            nonce=self.context.ids.new("rollout"),
        )
        return config

    def rollout_status(self, name: str, rollout_id: str) -> str:
        """``in_progress``, ``succeeded``, ``rolled_back`` (an alarm fired) or ``failed``; a
        read only (``retire_rollout`` removes what the rollout left)."""
        described = self._describe_endpoint(name)
        status = described["EndpointStatus"]
        if status in TRANSITIONAL:
            return "in_progress"
        if status != "InService":
            return "failed"
        return "succeeded" if described.get("EndpointConfigName") == rollout_id else "rolled_back"

    def retire_rollout(self, name: str, rollout_id: str) -> None:
        """Once the rollout has ended, retire the config the endpoint no longer serves (the one
        it served before after a success, found from the rollout config's ``REPLACES_TAG``; the
        rollout's own otherwise), as any other change retires the config it leaves. Asked
        again, it retires what an earlier call failed to delete and nothing else; nothing
        while the endpoint is changing, or absent (a killed endpoint is re-created from the
        config its kill record names)."""
        try:
            described = self._describe_endpoint(name)
        except NotFound:
            return
        if described["EndpointStatus"] in TRANSITIONAL:
            return
        serving = str(described.get("EndpointConfigName", ""))
        if serving != rollout_id:
            self._retire_left(name, rollout_id, serving)
            return
        with contextlib.suppress(NotFound):
            replaced = self._tags(self._arn(f"endpoint-config/{rollout_id}")).get(REPLACES_TAG)
            if replaced:
                self._retire_left(name, replaced, serving)

    def _retire_left(self, name: str, left: str, serving: str) -> None:
        """Delete the config ``left`` that endpoint ``name`` no longer serves, with the Models
        Mintaka made for it that the config it serves does not use; only where Mintaka made it
        and no endpoint serves it (``_served_elsewhere``), and nothing once it is gone (asked
        again, it is not deleted twice)."""
        if left == serving or not self._made_by_mintaka(name, left):
            return
        try:
            found = self._sm("describe_endpoint_config", EndpointConfigName=left)
            in_use = {str(v.get("ModelName")) for v in self._config_variants(serving)}
        except NotFound:
            return
        if self._served_elsewhere(left, name, found.get("CreationTime")):
            return
        self._discard([left], sorted(made_models(name, found) - in_use))

    def _served_elsewhere(self, config: str, name: str, created: object) -> bool:
        """Whether an endpoint other than ``name`` serves ``config`` (made at ``created``) or is
        being updated to it (SageMaker lets any endpoint serve any config, one made outside
        Mintaka included); True when that cannot be told, so a config still needed is never
        deleted. Only the endpoints that may serve it (``_changed_since``) are described, so the
        calls grow with the endpoints changed since, not with the account."""
        own = self.settings.endpoint_of(name)
        since = created - CLOCK_MARGIN if isinstance(created, datetime) else None
        try:
            for page in self._pages("sagemaker", "list_endpoints"):
                for summary in page.get("Endpoints", []):
                    other = str(summary["EndpointName"])
                    if other == own or not self._changed_since(summary, since):
                        continue
                    try:
                        found = self._sm("describe_endpoint", EndpointName=other)
                    except NotFound:  # deleted while listing
                        continue
                    pending = (found.get("PendingDeploymentSummary") or {}).get(
                        "EndpointConfigName"
                    )
                    if config in (found.get("EndpointConfigName"), pending):
                        return True
        except MintakaError:
            return True
        return False

    @staticmethod
    def _changed_since(summary: dict[str, Any], since: datetime | None) -> bool:
        """Whether a listed endpoint may serve, or be moving to, a config made at ``since``:
        creating or updating an endpoint to a config changes its ``LastModifiedTime``, after the
        config was made, so one unchanged since, and not changing now, serves another. Any
        endpoint may when a time is unknown."""
        if since is None or summary.get("EndpointStatus") in TRANSITIONAL:
            return True
        modified = summary.get("LastModifiedTime")
        return not isinstance(modified, datetime) or modified >= since


_CARRIED = frozenset({"Image", "ModelDataUrl", "ModelDataSource", "Environment"})


def _require_carried(container: dict[str, Any], what: str) -> None:
    """Refuse a container with fields the package holds no copy of (``ImageConfig`` for a
    private registry, ``AdditionalModelDataSources`` for adapters, ...): the version would
    silently lose them, and so would every Model Mintaka later makes from it. ``Mode`` is
    carried only as the default, ``SingleModel``."""
    dropped = sorted(
        key
        for key, value in container.items()
        if key not in _CARRIED
        and value not in (None, "", [], {})
        and not (key == "Mode" and value == "SingleModel")
    )
    if dropped:
        raise ValidationError(
            f"[sagemaker] {what} serves a container with {', '.join(dropped)}, which a model "
            "package Mintaka registers cannot carry (it holds the image, model data and "
            "environment only), so it is not registered"
        )


@dataclass(frozen=True)
class _Unreadable:
    """Why the routes of a config cannot be read, and what to do (``_read_routes``), with the
    routes of the variants that could be read (a Model still there is kept as Mintaka changes
    the endpoint)."""

    reason: str
    routes: tuple[Route, ...] = ()


def _model_deleted(variant: str, model: str) -> str:
    """Why a variant whose Model was deleted outside Mintaka has no route, and what to do."""
    return (
        f"its variant {variant!r} serves SageMaker Model {model!r}, which was deleted outside "
        "Mintaka (SageMaker lets the endpoint serve on): what it serves cannot be read; update "
        "the endpoint onto a config whose Models exist, then adopt it"
    )


def _config_deleted(config: str) -> str:
    """Why an endpoint serving a config deleted outside Mintaka has no routes, and what to do."""
    return (
        f"it serves endpoint config {config!r}, which was deleted outside Mintaka: which Model "
        "its variants serve cannot be read; update the endpoint onto a config naming its "
        "Models, then adopt it"
    )


def _identity_digest(identity: str) -> str:
    """A slot's identity (``_slot_identity``) in the 64 characters a package's metadata value
    holds."""
    return hashlib.sha256(identity.encode()).hexdigest()


def _slot_identity(served: dict[str, Any], held: str) -> str:
    """What a variant serves, as ``describe_model`` reads its Model: the Model's ARN and
    creation time (a Model deleted and made again under its name is another) and its
    containers (image, model data, the package they name), with ``held``, the identity of the
    S3 objects holding its bytes (an object written again at its key is another). Two reads
    that agree serve the same bytes."""
    return json.dumps(
        {
            "model": served.get("ModelArn"),
            "created": str(served.get("CreationTime")),
            "primary": served.get("PrimaryContainer"),
            "containers": served.get("Containers"),
            "data": held,
        },
        sort_keys=True,
        default=str,
    )
