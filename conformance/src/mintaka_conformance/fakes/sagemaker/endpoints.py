"""Endpoint configs and endpoints with statuses, shadow variants, blue/green updates and rollback.

Each public function becomes a method of moto's ``SageMakerResponse`` when the extension is
installed. The endpoint's running state (variants and their weights, status, pending deployment)
lives in :class:`~.state.EndpointState`; moto's ``FakeEndpoint`` is kept in step so moto's own
``ListEndpoints`` shows the same status and configuration.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from moto.cloudwatch.models import cloudwatch_backends
from moto.core.responses import ActionResult
from moto.core.utils import utcnow
from moto.sagemaker.models import FakeEndpoint, FakeEndpointConfig, SageMakerModelBackend
from moto.sagemaker.responses import SageMakerResponse

from .errors import ValidationError
from .originals import call_original, original_body
from .state import (
    EndpointState,
    PendingDeployment,
    SageMakerState,
    Transition,
    VariantState,
    state_of,
)

# Statuses in which an endpoint still answers InvokeEndpoint.
SERVING_STATUSES = frozenset({"InService", "Updating", "SystemUpdating", "RollingBack"})

TRAFFIC_ROUTING_TYPES = ("ALL_AT_ONCE", "CANARY", "LINEAR")
CAPACITY_SIZE_TYPES = ("INSTANCE_COUNT", "CAPACITY_PERCENT")


def _endpoint_arn(backend: SageMakerModelBackend, name: str) -> str:
    return FakeEndpoint.arn_formatter(name, backend.account_id, backend.region_name)


def _config_arn(backend: SageMakerModelBackend, name: str) -> str:
    return FakeEndpointConfig.arn_formatter(name, backend.account_id, backend.region_name)


def _config_variants(
    backend: SageMakerModelBackend, state: SageMakerState, config_name: str
) -> tuple[list[VariantState], list[VariantState]]:
    config = backend.endpoint_configs.get(config_name)
    if config is None:
        raise ValidationError(
            f'Could not find endpoint configuration "{_config_arn(backend, config_name)}".'
        )
    production = [VariantState.from_config(v) for v in config.production_variants]
    shadow = [VariantState.from_config(v) for v in state.shadow_variants.get(config_name, [])]
    return production, shadow


def endpoint_state(backend: SageMakerModelBackend, name: str) -> EndpointState:
    """The running state of endpoint ``name``, built from moto's objects on first use."""
    state = state_of(backend)
    with state.lock:
        existing = state.endpoints.get(name)
        if existing is not None and name in backend.endpoints:
            return existing
        fake = backend.endpoints.get(name)
        if fake is None:
            raise ValidationError(f'Could not find endpoint "{_endpoint_arn(backend, name)}".')
        try:
            production, shadow = _config_variants(backend, state, fake.endpoint_config_name)
        except ValidationError:
            production = [VariantState.from_config(v) for v in fake.production_variants]
            shadow = []
        created = EndpointState(
            name=name,
            config_name=fake.endpoint_config_name,
            variants=production,
            shadow_variants=shadow,
            status=fake.endpoint_status,
        )
        state.endpoints[name] = created
        return created


def _sync_moto(backend: SageMakerModelBackend, ep: EndpointState) -> None:
    fake = backend.endpoints.get(ep.name)
    if fake is None:
        return
    fake.endpoint_status = ep.status
    fake.endpoint_config_name = ep.config_name
    fake.production_variants = [v.summary() for v in ep.variants]
    fake.failure_reason = ep.failure_reason  # type: ignore[assignment]
    fake.last_modified_time = utcnow()


# --- status transitions -------------------------------------------------------------------------


def _start_transition(
    backend: SageMakerModelBackend,
    ep: EndpointState,
    kind: str,
    in_progress: str,
    on_success: Callable[[], None],
) -> None:
    """Begin a lifecycle step: finish now, or follow the next queued status script."""
    state = state_of(backend)
    queued = state.endpoint_scripts.get(ep.name.lower())
    if queued:
        script = queued.popleft()
        ep.transition = Transition(
            kind=kind,
            script=deque(script.statuses),
            failure_reason=script.failure_reason,
            on_success=on_success,
        )
        ep.status = script.statuses[0]
    else:
        ep.status = in_progress
        ep.transition = Transition(
            kind=kind, script=deque(["InService"]), failure_reason=None, on_success=on_success
        )
        advance(backend, ep)
    _sync_moto(backend, ep)


def advance(backend: SageMakerModelBackend, ep: EndpointState) -> None:
    """Move the endpoint one step along its script (one DescribeEndpoint call)."""
    transition = ep.transition
    if transition is None or not transition.script:
        return
    ep.status = transition.script.popleft()
    if transition.script:
        _sync_moto(backend, ep)
        return
    ep.transition = None
    if ep.status == "InService":
        transition.on_success()
    else:
        ep.failure_reason = transition.failure_reason or (
            f"The {transition.kind} of the endpoint ended in status {ep.status} "
            "(scripted by the SageMaker fake)."
        )
        ep.pending = None
        for variant in ep.variants:
            variant.desired_weight = variant.weight
            variant.desired_instance_count = variant.instance_count
    _sync_moto(backend, ep)


# --- endpoint configs ---------------------------------------------------------------------------


def _validate_variant_names(variants: list[dict[str, Any]], shadow: list[dict[str, Any]]) -> None:
    seen: set[str] = set()
    for variant in [*variants, *shadow]:
        name = variant["VariantName"]
        if name.lower() in seen:
            raise ValidationError(
                f"Variant name {name} is not unique: every production and shadow variant of an "
                "endpoint configuration needs its own name."
            )
        seen.add(name.lower())


def create_endpoint_config(self: SageMakerResponse) -> ActionResult:
    backend = self.sagemaker_backend
    state = state_of(backend)
    name = self._get_param("EndpointConfigName")
    if name in backend.endpoint_configs:
        raise ValidationError(
            f'Cannot create already existing endpoint configuration "{_config_arn(backend, name)}".'
        )
    production = self._get_param("ProductionVariants") or []
    shadow = self._get_param("ShadowProductionVariants") or []
    _validate_variant_names(production, shadow)
    if shadow:
        if len(shadow) > 1:
            raise ValidationError(
                f"ShadowProductionVariants accepts at most one variant; {len(shadow)} were given."
            )
        if len(production) != 1:
            raise ValidationError(
                "An endpoint configuration with a shadow variant must have exactly one "
                f"production variant; {len(production)} were given."
            )
        backend.validate_production_variants(shadow)
    with state.lock:
        result = call_original(self, "create_endpoint_config")
        if shadow:
            try:
                backend.endpoint_configs[name].validate_production_variants(shadow)
            except ValidationError:
                del backend.endpoint_configs[name]
                raise
            state.shadow_variants[name] = list(shadow)
    return result


def describe_endpoint_config(self: SageMakerResponse) -> ActionResult:
    body = original_body(self, "describe_endpoint_config")
    name = self._get_param("EndpointConfigName")
    shadow = state_of(self.sagemaker_backend).shadow_variants.get(name)
    if shadow:
        body["ShadowProductionVariants"] = shadow
    if not body.get("DataCaptureConfig"):
        body.pop("DataCaptureConfig", None)
    return ActionResult(body)


def delete_endpoint_config(self: SageMakerResponse) -> ActionResult:
    result = call_original(self, "delete_endpoint_config")
    state_of(self.sagemaker_backend).shadow_variants.pop(
        self._get_param("EndpointConfigName"), None
    )
    return result


# --- endpoints ----------------------------------------------------------------------------------


def create_endpoint(self: SageMakerResponse) -> ActionResult:
    backend = self.sagemaker_backend
    state = state_of(backend)
    name = self._get_param("EndpointName")
    config_name = self._get_param("EndpointConfigName")
    with state.lock:
        # Endpoint names are case-insensitive on create.
        if any(existing.lower() == name.lower() for existing in backend.endpoints):
            raise ValidationError(
                f'Cannot create already existing endpoint "{_endpoint_arn(backend, name)}".'
            )
        production, shadow = _config_variants(backend, state, config_name)
        result = call_original(self, "create_endpoint")
        ep = EndpointState(
            name=name,
            config_name=config_name,
            variants=production,
            shadow_variants=shadow,
            status="Creating",
        )
        state.endpoints[name] = ep
        _start_transition(backend, ep, "creation", "Creating", lambda: None)
    return result


def describe_endpoint(self: SageMakerResponse) -> ActionResult:
    backend = self.sagemaker_backend
    name = self._get_param("EndpointName")
    ep = endpoint_state(backend, name)
    with state_of(backend).lock:
        advance(backend, ep)
        body = dict(backend.endpoints[name].response_object)
        body["EndpointConfigName"] = ep.config_name
        body["EndpointStatus"] = ep.status
        body["ProductionVariants"] = [v.summary() for v in ep.variants]
        if ep.shadow_variants:
            body["ShadowProductionVariants"] = [v.summary() for v in ep.shadow_variants]
        body.pop("FailureReason", None)
        if ep.failure_reason:
            body["FailureReason"] = ep.failure_reason
        if ep.last_deployment_config:
            body["LastDeploymentConfig"] = ep.last_deployment_config
        if ep.pending is not None:
            pending: dict[str, Any] = {
                "EndpointConfigName": ep.pending.config_name,
                "ProductionVariants": [v.pending_summary() for v in ep.pending.variants],
                "StartTime": ep.pending.start_time,
            }
            if ep.pending.shadow_variants:
                pending["ShadowProductionVariants"] = [
                    v.pending_summary() for v in ep.pending.shadow_variants
                ]
            body["PendingDeploymentSummary"] = pending
        if not body.get("DataCaptureConfig"):
            body.pop("DataCaptureConfig", None)
    return ActionResult(body)


def delete_endpoint(self: SageMakerResponse) -> ActionResult:
    result = call_original(self, "delete_endpoint")
    state_of(self.sagemaker_backend).endpoints.pop(self._get_param("EndpointName"), None)
    return result


def _require_in_service(backend: SageMakerModelBackend, ep: EndpointState) -> None:
    if ep.status != "InService":
        raise ValidationError(
            f'Cannot update in-progress endpoint "{_endpoint_arn(backend, ep.name)}".'
            if ep.status in ("Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting")
            else f'Cannot update endpoint "{_endpoint_arn(backend, ep.name)}" in status '
            f"{ep.status}; only InService endpoints can be updated."
        )


def update_endpoint_weights_and_capacities(self: SageMakerResponse) -> ActionResult:
    backend = self.sagemaker_backend
    name = self._get_param("EndpointName")
    if name not in backend.endpoints:
        raise ValidationError(f'Could not find endpoint "{_endpoint_arn(backend, name)}".')
    ep = endpoint_state(backend, name)
    desired = self._get_param("DesiredWeightsAndCapacities") or []
    with state_of(backend).lock:
        _require_in_service(backend, ep)
        by_name = {v.name: v for v in [*ep.variants, *ep.shadow_variants]}
        seen: set[str] = set()
        for item in desired:
            variant_name = item.get("VariantName")
            if variant_name in seen:
                raise ValidationError(
                    f'The variant name "{variant_name}" was non-unique within the request.'
                )
            seen.add(variant_name)
            if variant_name not in by_name:
                raise ValidationError(
                    f'The variant name(s) "{variant_name}" is/are not present within endpoint '
                    f'configuration "{ep.config_name}".'
                )
            if (
                item.get("DesiredWeight") is None
                and item.get("DesiredInstanceCount") is None
                and item.get("ServerlessUpdateConfig") is None
            ):
                raise ValidationError(
                    f"Variant {variant_name}: give DesiredWeight, DesiredInstanceCount or "
                    "ServerlessUpdateConfig."
                )
        for item in desired:
            variant = by_name[item["VariantName"]]
            if item.get("DesiredWeight") is not None:
                variant.desired_weight = float(item["DesiredWeight"])
            if item.get("DesiredInstanceCount") is not None:
                variant.desired_instance_count = int(item["DesiredInstanceCount"])

        def apply() -> None:
            for variant in [*ep.variants, *ep.shadow_variants]:
                variant.weight = variant.desired_weight
                variant.instance_count = variant.desired_instance_count
            ep.scores.clear()
            ep.failure_reason = None

        _start_transition(backend, ep, "weights update", "Updating", apply)
    return ActionResult({"EndpointArn": _endpoint_arn(backend, name)})


def _capacity_fraction(size: dict[str, Any], instance_count: int | None, field: str) -> float:
    kind = size.get("Type")
    value = size.get("Value")
    if kind not in CAPACITY_SIZE_TYPES:
        raise ValidationError(
            f"{field}.Type must be one of {list(CAPACITY_SIZE_TYPES)}; got {kind!r}."
        )
    if not isinstance(value, int) or value < 1:
        raise ValidationError(f"{field}.Value must be a positive integer; got {value!r}.")
    if kind == "CAPACITY_PERCENT":
        return value / 100
    if not instance_count:
        raise ValidationError(
            f"{field} of type INSTANCE_COUNT needs variants with an instance count."
        )
    return value / instance_count


def _validate_deployment_config(
    backend: SageMakerModelBackend, config: dict[str, Any], variants: list[VariantState]
) -> None:
    blue_green = config.get("BlueGreenUpdatePolicy")
    rolling = config.get("RollingUpdatePolicy")
    if blue_green and rolling:
        raise ValidationError(
            "DeploymentConfig accepts one update policy: give BlueGreenUpdatePolicy or "
            "RollingUpdatePolicy, not both."
        )
    if blue_green:
        routing = blue_green.get("TrafficRoutingConfiguration") or {}
        kind = routing.get("Type")
        if kind not in TRAFFIC_ROUTING_TYPES:
            raise ValidationError(
                "TrafficRoutingConfiguration.Type must be one of "
                f"{list(TRAFFIC_ROUTING_TYPES)}; got {kind!r}."
            )
        wait = routing.get("WaitIntervalInSeconds")
        if not isinstance(wait, int) or not 0 <= wait <= 3600:
            raise ValidationError(
                f"WaitIntervalInSeconds must be between 0 and 3600; got {wait!r}."
            )
        canary = routing.get("CanarySize")
        linear = routing.get("LinearStepSize")
        if kind == "ALL_AT_ONCE" and (canary or linear):
            raise ValidationError(
                "ALL_AT_ONCE traffic routing takes no CanarySize or LinearStepSize."
            )
        if kind == "CANARY" and (not canary or linear):
            raise ValidationError("CANARY traffic routing needs CanarySize and no LinearStepSize.")
        if kind == "LINEAR" and (not linear or canary):
            raise ValidationError("LINEAR traffic routing needs LinearStepSize and no CanarySize.")
        if kind in ("CANARY", "LINEAR"):
            if any(v.serverless is not None for v in variants):
                raise ValidationError(
                    f"{kind} traffic routing is not supported for serverless variants."
                )
            size: dict[str, Any] = (canary if kind == "CANARY" else linear) or {}
            field = "CanarySize" if kind == "CANARY" else "LinearStepSize"
            for variant in variants:
                fraction = _capacity_fraction(size, variant.desired_instance_count, field)
                if kind == "CANARY" and fraction > 0.5:
                    raise ValidationError(
                        f"CanarySize must be at most 50% of variant {variant.name}'s instance "
                        f"count ({variant.desired_instance_count})."
                    )
                if kind == "LINEAR" and not 0.1 <= fraction <= 0.5:
                    raise ValidationError(
                        f"LinearStepSize must be 10-50% of variant {variant.name}'s instance "
                        f"count ({variant.desired_instance_count})."
                    )
        termination = blue_green.get("TerminationWaitInSeconds", 0)
        if not 0 <= termination <= 3600:
            raise ValidationError(
                f"TerminationWaitInSeconds must be between 0 and 3600; got {termination}."
            )
        timeout = blue_green.get("MaximumExecutionTimeoutInSeconds")
        if timeout is not None:
            if not 600 <= timeout <= 28800:
                raise ValidationError(
                    "MaximumExecutionTimeoutInSeconds must be between 600 and 28800; "
                    f"got {timeout}."
                )
            if timeout <= termination + wait:
                raise ValidationError(
                    "MaximumExecutionTimeoutInSeconds must be larger than "
                    "TerminationWaitInSeconds plus WaitIntervalInSeconds."
                )
    if rolling:
        if not rolling.get("MaximumBatchSize") or rolling.get("WaitIntervalInSeconds") is None:
            raise ValidationError(
                "RollingUpdatePolicy needs MaximumBatchSize and WaitIntervalInSeconds."
            )
        for variant in variants:
            _capacity_fraction(
                rolling["MaximumBatchSize"], variant.desired_instance_count, "MaximumBatchSize"
            )
    rollback = config.get("AutoRollbackConfiguration")
    if rollback is not None:
        alarms = rollback.get("Alarms") or []
        if not 1 <= len(alarms) <= 10:
            raise ValidationError("AutoRollbackConfiguration.Alarms takes 1 to 10 alarms.")
        known = cloudwatch_backends[backend.account_id][backend.region_name].alarms
        for alarm in alarms:
            alarm_name = alarm.get("AlarmName")
            if alarm_name not in known:
                raise ValidationError(
                    f"CloudWatch alarm {alarm_name!r} named in AutoRollbackConfiguration does not "
                    f"exist in account {backend.account_id}, region {backend.region_name}."
                )


def _tripped_alarms(backend: SageMakerModelBackend, config: dict[str, Any] | None) -> list[str]:
    if not config:
        return []
    alarms = (config.get("AutoRollbackConfiguration") or {}).get("Alarms") or []
    known = cloudwatch_backends[backend.account_id][backend.region_name].alarms
    tripped = []
    for alarm in alarms:
        found = known.get(alarm.get("AlarmName"))
        if found is not None and found.state_value == "ALARM":
            tripped.append(alarm["AlarmName"])
    return tripped


def _retain_properties(
    current: list[VariantState], new: list[VariantState], excluded: set[str]
) -> None:
    by_name = {v.name: v for v in current}
    for variant in new:
        old = by_name.get(variant.name)
        if old is None:
            continue
        if "DesiredWeight" not in excluded:
            variant.weight = variant.desired_weight = old.weight
        if "DesiredInstanceCount" not in excluded:
            variant.instance_count = variant.desired_instance_count = old.instance_count


def _require_same_variant_names(current: list[VariantState], new: list[VariantState]) -> None:
    """SageMaker's deployment guardrails (a blue/green update) need the new endpoint config to
    name its production variants as the endpoint's current config does."""
    serving = sorted(v.name for v in current)
    wanted = sorted(v.name for v in new)
    if wanted != serving:
        raise ValidationError(
            "An update with deployment guardrails needs the new endpoint config to keep the "
            f"production variant names of the current one: {serving}, got {wanted}."
        )


def update_endpoint(self: SageMakerResponse) -> ActionResult:
    """UpdateEndpoint: blue/green to a new endpoint config, rolled back if an alarm is in ALARM."""
    backend = self.sagemaker_backend
    state = state_of(backend)
    name = self._get_param("EndpointName")
    config_name = self._get_param("EndpointConfigName")
    if name not in backend.endpoints:
        raise ValidationError(f'Could not find endpoint "{_endpoint_arn(backend, name)}".')
    ep = endpoint_state(backend, name)
    with state.lock:
        _require_in_service(backend, ep)
        production, shadow = _config_variants(backend, state, config_name)
        if self._get_param("RetainAllVariantProperties"):
            excluded = {
                item.get("VariantPropertyType")
                for item in self._get_param("ExcludeRetainedVariantProperties") or []
            }
            _retain_properties(ep.variants, production, excluded)
            _retain_properties(ep.shadow_variants, shadow, excluded)
        deployment = self._get_param("DeploymentConfig")
        if self._get_param("RetainDeploymentConfig"):
            if deployment:
                raise ValidationError(
                    "Give DeploymentConfig or RetainDeploymentConfig=true, not both."
                )
            deployment = ep.last_deployment_config
        if deployment:
            _validate_deployment_config(backend, deployment, production)
            if deployment.get("BlueGreenUpdatePolicy"):
                _require_same_variant_names(ep.variants, production)
            ep.last_deployment_config = deployment
        ep.pending = PendingDeployment(
            config_name=config_name,
            variants=production,
            shadow_variants=shadow,
            deployment_config=deployment,
            start_time=utcnow(),
        )
        ep.failure_reason = None

        def finish() -> None:
            pending = ep.pending
            ep.pending = None
            if pending is None:
                return
            tripped = _tripped_alarms(backend, pending.deployment_config)
            if tripped:
                # Blue/green rollback: traffic stays on (returns to) the old fleet and config.
                ep.failure_reason = (
                    f"Deployment of endpoint configuration {pending.config_name} was rolled back "
                    f"because CloudWatch alarm(s) {', '.join(tripped)} went into ALARM state."
                )
                return
            ep.config_name = pending.config_name
            ep.variants = pending.variants
            ep.shadow_variants = pending.shadow_variants
            ep.scores.clear()

        _start_transition(backend, ep, "update", "Updating", finish)
    return ActionResult({"EndpointArn": _endpoint_arn(backend, name)})
