"""Controller steps that act on the control plane: register data and models, deploy, promote.

Each is idempotent, so resuming a run that stopped after one of them does it no second time:
datasets and model versions are found again by their content digest, a canary already finished
is recognised by the endpoint's traffic, a promotion already made is a no-op.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, FiniteFloat

from mintaka.artifacts import manifest_of
from mintaka.domain.lineage import EdgeKind, LineageEdge
from mintaka.domain.pipelines import GateCheck, GateOutcome
from mintaka.domain.registry import ModelVersion, Signature
from mintaka.domain.serving import SLA, RolloutStrategy, TrafficPlan, TrafficStep
from mintaka.errors import NotFound, ValidationError
from mintaka.pipelines.contract import StepContext, controller_step

if TYPE_CHECKING:
    from mintaka.platform import Platform

# -- data -----------------------------------------------------------------------------------------


class DatasetInputs(BaseModel):
    path: Path
    name: str
    categorical: str = ""


class DatasetOutputs(BaseModel):
    dataset_id: str
    path: Path
    digest: str
    rows: int


@controller_step
def register_dataset(inputs: DatasetInputs, ctx: StepContext) -> DatasetOutputs:
    """Record the data the pipeline reads as a dataset version (by digest, with its profile)."""
    platform = ctx.require_platform()
    if not inputs.path.is_file():
        raise ValidationError(f"dataset file {inputs.path} does not exist")
    categorical = [c for c in inputs.categorical.split(",") if c]
    found = platform.register_dataset(inputs.name, inputs.path, categorical=categorical)
    rows = int(found.profile["rows"]) if found.profile else 0
    return DatasetOutputs(
        dataset_id=found.id, path=inputs.path.absolute(), digest=found.digest, rows=rows
    )


# -- registration ---------------------------------------------------------------------------------


class RegisterInputs(BaseModel):
    name: str
    model: Path
    tier: str = "low"
    flavor: str = "sklearn"
    features: str = ""
    owner: str = ""
    description: str = ""
    metrics: dict[str, float] = {}


class RegisterOutputs(BaseModel):
    ref: str
    version: int
    digest: str
    created: bool


def _versions_holding(platform: Platform, name: str, digest: str) -> list[ModelVersion]:
    """The versions of ``name`` that hold the artifact ``digest`` (none for a missing model)."""
    try:
        return [v for v in platform.list_versions(name) if v.artifact_digest == digest]
    except NotFound:
        return []


@controller_step
def register_model(inputs: RegisterInputs, ctx: StepContext) -> RegisterOutputs:
    """Register the trained artifact (once per digest) from the pipeline's experiment run, and
    link the gates it passed to it in the lineage. The version another process registered of
    the same bytes meanwhile is taken as this step's (``created`` false)."""
    platform = ctx.require_platform()
    digest = manifest_of(inputs.model).digest
    existing = _versions_holding(platform, inputs.name, digest)
    from mintaka.platform import BytesHeld

    run_id = ctx.experiment_run() if ctx.experiment_run else None
    features = [f for f in inputs.features.split(",") if f]
    if existing:
        version, created = existing[0], False
    else:
        try:
            version = platform.register_model(
                inputs.name,
                inputs.model,
                run_id=run_id,
                tier=inputs.tier,
                flavor=inputs.flavor,
                signature=Signature(inputs=dict.fromkeys(features, "float")) if features else None,
                metrics=inputs.metrics,
                tags={"pipeline": ctx.pipeline, "pipeline_run": ctx.run_id},
                owner=inputs.owner or None,
                description=inputs.description,
            )
            created = True
        except BytesHeld as exc:
            # the same bytes registered by another process meanwhile: that version is this one,
            # unless the refused registration left a backend version of its own unrecorded,
            # which the step's failure must name
            existing = _versions_holding(platform, inputs.name, digest)
            if not existing or exc.unrecorded is not None:
                raise
            version, created = existing[0], False
    gates = ctx.notes.get("passed_gates", [])
    edges = [
        LineageEdge(
            src=f"gate:{ctx.run_id}/{gate}",
            dst=f"model_version:{version.id}",
            kind=EdgeKind.DERIVED,
        )
        for gate in gates
    ]
    edges.append(
        LineageEdge(
            src=f"pipeline_run:{ctx.run_id}",
            dst=f"model_version:{version.id}",
            kind=EdgeKind.DERIVED,
        )
    )
    with platform.store.write() as conn:
        platform.lineage.add(conn, [], edges)
    # The experiment run stays open to the steps after this one (their metrics are its too); the
    # executor ends it finished with the attempt, as the run a model version was registered from.
    return RegisterOutputs(ref=version.ref, version=version.version, digest=digest, created=created)


# -- deployment -----------------------------------------------------------------------------------


class CanaryInputs(BaseModel):
    model: str
    endpoint: str
    steps: str = "10,50,100"
    bake_seconds: FiniteFloat = 60.0
    min_requests: int = 20
    max_error_rate: FiniteFloat = 0.01
    p99_latency_ms: FiniteFloat = 1000.0


class CanaryOutcome(GateOutcome):
    endpoint: str = ""
    route: str = ""


@controller_step
def deploy_canary(inputs: CanaryInputs, ctx: StepContext) -> CanaryOutcome:
    """Walk the version onto the endpoint in canary steps, verifying the SLA at each one and
    rolling back on a breach (a new endpoint starts on the version, and must hold the SLA over
    one bake window or is taken down again)."""
    from mintaka.rollout.controller import RolloutController, sla_breaches
    from mintaka.serving.ops import default_route_name

    platform = ctx.require_platform()
    version = platform.get_model_version(inputs.model)
    route = default_route_name(version)
    wait = ctx.wait or time.sleep
    sla = SLA(
        min_requests=inputs.min_requests,
        max_error_rate=inputs.max_error_rate,
        p99_latency_ms=inputs.p99_latency_ms,
    )
    existing = {e.name: e for e in platform.serving.list_endpoints()}
    current = existing.get(inputs.endpoint)
    if current is not None and current.traffic.weights.get(route) == 100:
        check = GateCheck(name="canary", passed=True, detail=f"{route} already takes all traffic")
        return CanaryOutcome(passed=True, checks=(check,), endpoint=inputs.endpoint, route=route)
    if current is None:
        platform.serving.create_endpoint(
            inputs.endpoint, version.ref, route=route, reason=f"pipeline run {ctx.run_id}"
        )
        start = platform.clock.now()
        wait(inputs.bake_seconds)
        metrics = platform.serving.endpoint_metrics(inputs.endpoint, start, platform.clock.now())
        # no route to compare with: every request the version refused counts against it
        breaches = sla_breaches(sla, metrics, [route], refusals=0.0)
        checks = _sla_checks(1, metrics.requests.get(route, 0), breaches)
        if breaches:
            platform.serving.delete_endpoint(
                inputs.endpoint, reason=f"SLA not held on a new endpoint: {'; '.join(breaches)}"
            )
        return CanaryOutcome(
            passed=not breaches, checks=checks, endpoint=inputs.endpoint, route=route
        )
    live = {k: v for k, v in current.traffic.weights.items() if v > 0}
    if len(live) != 1:
        raise ValidationError(
            f"endpoint {inputs.endpoint!r} splits traffic {live}; a canary starts from one route"
        )
    (champion,) = live
    if route not in {r.name for r in current.routes}:
        platform.serving.deploy(
            inputs.endpoint, version.ref, route=route, reason=f"pipeline run {ctx.run_id}"
        )
    shares = [int(s) for s in inputs.steps.split(",") if s.strip()]
    if not shares or shares[-1] != 100 or any(not 0 < s <= 100 for s in shares):
        raise ValidationError(f"canary steps {inputs.steps!r} must rise to 100")
    plan = TrafficPlan(
        endpoint=inputs.endpoint,
        strategy=RolloutStrategy.CANARY,
        steps=[
            TrafficStep(
                weights={route: s, champion: 100 - s} if s < 100 else {route: 100, champion: 0},
                bake_seconds=inputs.bake_seconds,
            )
            for s in shares
        ],
        sla=sla,
    )
    result = RolloutController(platform, wait=wait).run(plan)
    checks = tuple(
        check
        for step in result.steps
        for check in _sla_checks(
            step.index,
            step.metrics.requests.get(route, 0),
            step.breaches,
            step.weights.get(route, 0),
        )
    )
    return CanaryOutcome(
        passed=result.promoted, checks=checks, endpoint=inputs.endpoint, route=route
    )


def _sla_checks(
    index: int, requests: int, breaches: list[str] | tuple[str, ...], share: int = 100
) -> tuple[GateCheck, ...]:
    if breaches:
        return tuple(
            GateCheck(name=f"step {index} ({share}%)", passed=False, detail=b) for b in breaches
        )
    return (
        GateCheck(name=f"step {index} ({share}%)", passed=True, value=requests, detail="SLA held"),
    )


class PromoteInputs(BaseModel):
    model: str
    alias: str = "champion"
    endpoint: str = ""


class PromoteOutputs(BaseModel):
    ref: str
    previous: int | None = None
    retired_routes: list[str] = []


@controller_step
def promote(inputs: PromoteInputs, ctx: StepContext) -> PromoteOutputs:
    """Move the alias to the version (under the policy) and retire the endpoint's idle routes."""
    platform = ctx.require_platform()
    version = platform.get_model_version(inputs.model)
    try:
        previous: int | None = platform.get_model_version(version.name, alias=inputs.alias).version
    except NotFound:
        previous = None
    if previous != version.version:
        platform.set_alias(version.name, inputs.alias, version.version)
    retired = []
    if inputs.endpoint:
        endpoint = platform.serving.get_endpoint(inputs.endpoint)
        for route in endpoint.routes:
            idle = (
                not endpoint.traffic.weights.get(route.name)
                and endpoint.traffic.shadow != route.name
            )
            if idle and route.version != version.version:
                platform.serving.retire_route(
                    inputs.endpoint,
                    route.name,
                    reason=f"superseded by {version.ref} (pipeline run {ctx.run_id})",
                )
                retired.append(route.name)
    return PromoteOutputs(ref=version.ref, previous=previous, retired_routes=retired)
