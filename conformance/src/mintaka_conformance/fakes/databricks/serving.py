"""Model serving endpoints: configs that settle, validated traffic routes, routed invocations.

An endpoint's config changes through a pending config: ``create`` and ``PUT .../config`` answer
with ``pending_config`` and ``config_update: IN_PROGRESS`` (``ready: NOT_READY`` for a new
endpoint); the change lands when the endpoint has been read ``settle_after`` times (1 by default,
so the SDK's ``*_and_wait`` helpers return on their first poll without sleeping). Invocations pick
a route with a seeded generator weighted by the traffic percentages and answer with the
``served-model-name`` header the service sets, so which route answered is observable.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .context import WorkspaceContext
from .routing import (
    ApiError,
    Request,
    Response,
    Router,
    already_exists,
    conflict,
    invalid,
    invalid_state,
    key_values,
    not_found,
)
from .unity_catalog import READY, UnityCatalogModels
from .workspace_registry import WorkspaceRegistry

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,63}$")
MAX_SERVED_ENTITIES = 10
MAX_RATE_LIMITS = 20
_GATEWAY_FIELDS = frozenset(
    {
        "fallback_config",
        "guardrails",
        "inference_table_config",
        "rate_limits",
        "usage_tracking_config",
    }
)
_RATE_LIMIT_KEYS = ("endpoint", "user", "user_group", "service_principal")
Predictor = Callable[[dict[str, Any], "ServedEntity"], Any]


@dataclass
class ServedEntity:
    name: str
    entity_name: str | None
    entity_version: str | None
    spec: dict[str, Any]
    created: int
    creator: str


@dataclass
class EndpointConfig:
    version: int
    served: list[ServedEntity]
    routes: list[tuple[str, int]]
    auto_capture: dict[str, Any] | None
    start_time: int
    legacy_served_models: bool = False

    def served_entity(self, name: str) -> ServedEntity | None:
        return next((s for s in self.served if s.name == name), None)


@dataclass
class RouteCounters:
    requests: int = 0
    errors_4xx: int = 0
    errors_5xx: int = 0


@dataclass
class Endpoint:
    name: str
    id: str
    creator: str
    created: int
    updated: int
    pending: EndpointConfig | None
    config: EndpointConfig | None = None
    ready: str = "NOT_READY"
    config_update: str = "IN_PROGRESS"
    reads: int = 0
    hold: bool = False
    fail_next_update: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    description: str | None = None
    route_optimized: bool = False
    ai_gateway: dict[str, Any] | None = None
    calls: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    """Invocations counted against each enforced rate limit: (key, principal) -> (minute, calls)."""
    counters: dict[str, RouteCounters] = field(default_factory=dict)
    captured: list[dict[str, Any]] = field(default_factory=list)
    """Rows of the inference (payload) table, written when ``auto_capture_config`` is enabled."""

    @property
    def traffic(self) -> dict[str, int]:
        """The live traffic map, ``{served entity name: percentage}``."""
        return dict(self.config.routes) if self.config else {}


class Serving:
    def __init__(
        self,
        ctx: WorkspaceContext,
        uc: UnityCatalogModels,
        registry: WorkspaceRegistry,
        settle_after: int,
    ) -> None:
        self.ctx = ctx
        self.uc = uc
        self.registry = registry
        self.settle_after = settle_after
        self.validate_entities = True
        """Refuse served entities naming a model version the fake's registries do not hold."""
        self.endpoints: dict[str, Endpoint] = {}
        self.predictors: dict[str, Predictor] = {}
        self._routing = random.Random(ctx.seed)

    # Out-of-band API.

    def endpoint(self, name: str) -> Endpoint:
        with self.ctx.lock:
            return self._endpoint(name)

    def hold(self, name: str, hold: bool = True) -> None:
        """Keep (or stop keeping) the endpoint's pending config ``IN_PROGRESS``."""
        with self.ctx.lock:
            self._endpoint(name).hold = hold

    def fail_next_update(self, name: str, message: str = "Served entity failed to deploy.") -> None:
        """The next config change settles as ``UPDATE_FAILED`` and the old config stays live."""
        with self.ctx.lock:
            self._endpoint(name).fail_next_update = message

    def settle(self, name: str) -> None:
        """Apply the pending config now, whatever ``settle_after`` says."""
        with self.ctx.lock:
            self._apply_pending(self._endpoint(name))

    def set_predictor(self, key: str, predictor: Predictor) -> None:
        """Answer invocations routed to a served entity (by served name, or by
        ``entity_name`` or ``entity_name:version``) with ``predictor(payload, served)``;
        a predictor may raise :class:`ApiError` to answer with an error."""
        with self.ctx.lock:
            self.predictors[key] = predictor

    # Helpers.

    def _endpoint(self, name: str) -> Endpoint:
        found = self.endpoints.get(name)
        if found is None:
            raise not_found(f"Endpoint with name '{name}' does not exist.")
        return found

    def _observe(self, endpoint: Endpoint) -> None:
        endpoint.reads += 1
        settled = endpoint.reads >= self.settle_after
        if endpoint.pending is not None and not endpoint.hold and settled:
            self._apply_pending(endpoint)

    def _apply_pending(self, endpoint: Endpoint) -> None:
        if endpoint.pending is None:
            return
        if endpoint.fail_next_update is not None:
            endpoint.pending = None
            endpoint.config_update = "UPDATE_FAILED"
            endpoint.ready = "READY" if endpoint.config else "NOT_READY"
            endpoint.fail_next_update = None
        else:
            endpoint.config = endpoint.pending
            endpoint.pending = None
            endpoint.ready = "READY"
            endpoint.config_update = "NOT_UPDATING"
        endpoint.updated = self.ctx.now_ms()

    def _check_entity(self, entity_name: str, version: str) -> None:
        if not self.validate_entities:
            return
        if entity_name.count(".") == 2:
            model = self.uc._model(entity_name)
            found = self.uc._version(model, version)
            status = found.status
        else:
            ws_model = self.registry._model(entity_name)
            status = self.registry._version(ws_model, version).status
        if status != READY:
            raise invalid(
                f"Model version {version} of '{entity_name}' is not READY (status: {status})."
            )

    def _served_entities(self, req_body: dict[str, Any]) -> tuple[list[ServedEntity], bool]:
        entities = req_body.get("served_entities")
        models = req_body.get("served_models")
        if entities and models:
            raise invalid("Only one of served_entities and served_models can be specified.")
        legacy = bool(models)
        items = models if legacy else entities
        if not items:
            raise invalid("The endpoint config must have at least one served entity.")
        if len(items) > MAX_SERVED_ENTITIES:
            raise invalid(
                f"An endpoint can serve at most {MAX_SERVED_ENTITIES} entities, got {len(items)}."
            )
        served: list[ServedEntity] = []
        for item in items:
            if legacy:
                for required in ("model_name", "model_version", "scale_to_zero_enabled"):
                    if item.get(required) is None:
                        raise invalid(f"Missing required field: served_models.{required}")
                entity_name, version = item["model_name"], str(item["model_version"])
            else:
                entity_name, version = item.get("entity_name"), item.get("entity_version")
                external = item.get("external_model")
                if not entity_name and not external:
                    raise invalid("A served entity needs entity_name or external_model.")
                if entity_name and not version:
                    raise invalid(f"Missing entity_version for served entity '{entity_name}'.")
                if external and not entity_name:
                    entity_name, version = None, None
            workload = item.get("workload_size")
            if workload is not None and workload not in ("Small", "Medium", "Large"):
                raise invalid(
                    f"Invalid workload_size '{workload}': expected Small, Medium or Large."
                )
            if entity_name is not None and version is not None:
                self._check_entity(entity_name, str(version))
            name = item.get("name") or self._default_name(item, entity_name, version)
            if not _NAME.match(name):
                raise invalid(
                    f"Invalid served entity name '{name}': use letters, digits, '-' and '_'."
                )
            if any(s.name == name for s in served):
                raise invalid(f"Served entity names must be unique; '{name}' is repeated.")
            spec = {
                k: v for k, v in item.items() if k not in ("name", "model_name", "model_version")
            }
            served.append(
                ServedEntity(
                    name=name,
                    entity_name=entity_name,
                    entity_version=None if version is None else str(version),
                    spec=spec,
                    created=self.ctx.now_ms(),
                    creator=self.ctx.user,
                )
            )
        return served, legacy

    @staticmethod
    def _default_name(item: dict[str, Any], entity_name: str | None, version: Any) -> str:
        if entity_name is None:
            external = item.get("external_model") or {}
            return str(external.get("name", "external")).replace(".", "-").replace(":", "-")
        return f"{entity_name.rsplit('.', 1)[-1]}-{version}"

    @staticmethod
    def _routes(
        traffic: dict[str, Any] | None, served: list[ServedEntity]
    ) -> list[tuple[str, int]]:
        if not traffic or traffic.get("routes") is None:
            if len(served) == 1:
                return [(served[0].name, 100)]
            raise invalid("traffic_config is required when an endpoint serves several entities.")
        names = {s.name for s in served}
        routes: list[tuple[str, int]] = []
        for route in traffic["routes"]:
            target = route.get("served_entity_name") or route.get("served_model_name")
            if not target:
                raise invalid("Each route must name a served entity (served_entity_name).")
            if target not in names:
                raise invalid(
                    f"Route target '{target}' is not a served entity of this config; "
                    f"served entities are: {', '.join(sorted(names))}."
                )
            if any(existing == target for existing, _ in routes):
                raise invalid(f"Served entity '{target}' has more than one route.")
            percentage = route.get("traffic_percentage")
            if isinstance(percentage, bool) or not isinstance(percentage, int):
                raise invalid(f"traffic_percentage of route '{target}' must be an integer.")
            if not 0 <= percentage <= 100:
                raise invalid(f"traffic_percentage of route '{target}' must be within 0-100.")
            routes.append((target, percentage))
        total = sum(p for _, p in routes)
        if total != 100:
            raise invalid(f"The traffic percentages of all routes must sum to 100, got {total}.")
        return routes

    @staticmethod
    def _auto_capture(
        requested: dict[str, Any] | None, current: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        if requested is None:
            return current
        merged = dict(current or {})
        merged.update({k: v for k, v in requested.items() if v is not None})
        if merged.get("enabled", True):
            for required in ("catalog_name", "schema_name"):
                if not merged.get(required):
                    raise invalid(f"auto_capture_config.{required} is required to enable capture.")
        if current and current.get("enabled"):
            for fixed in ("catalog_name", "schema_name", "table_name_prefix"):
                if fixed in requested and requested[fixed] != current.get(fixed):
                    raise invalid(
                        f"auto_capture_config.{fixed} cannot change once inference tables are on."
                    )
        merged.setdefault("enabled", True)
        return merged

    def _build_config(self, body: dict[str, Any], endpoint: Endpoint | None) -> EndpointConfig:
        base = endpoint.config if endpoint else None
        if body.get("served_entities") or body.get("served_models") or base is None:
            served, legacy = self._served_entities(body)
        else:
            served, legacy = base.served, base.legacy_served_models
        traffic = body.get("traffic_config")
        if traffic is None and base is not None and served is base.served:
            routes = base.routes
        else:
            routes = self._routes(traffic, served)
        auto_capture = self._auto_capture(
            body.get("auto_capture_config"), base.auto_capture if base else None
        )
        return EndpointConfig(
            version=(base.version if base else 0) + 1,
            served=served,
            routes=routes,
            auto_capture=auto_capture,
            start_time=self.ctx.now_ms(),
            legacy_served_models=legacy,
        )

    # Rendering.

    def _render_served(self, served: ServedEntity, deployed: bool) -> dict[str, Any]:
        state = {
            "deployment": "DEPLOYMENT_READY" if deployed else "DEPLOYMENT_CREATING",
            "deployment_state_message": "" if deployed else "Creating the served entity.",
        }
        body = {**served.spec, "name": served.name, "creator": served.creator}
        body["creation_timestamp"] = served.created
        body["state"] = state
        if served.entity_name is not None:
            body["entity_name"] = served.entity_name
            body["entity_version"] = served.entity_version
        return body

    def _render_served_model(self, served: ServedEntity, deployed: bool) -> dict[str, Any]:
        body = self._render_served(served, deployed)
        body.pop("entity_name", None)
        body.pop("entity_version", None)
        body.pop("external_model", None)
        body["model_name"] = served.entity_name
        body["model_version"] = served.entity_version
        return body

    def _render_config(self, config: EndpointConfig, deployed: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "config_version": config.version,
            "served_entities": [self._render_served(s, deployed) for s in config.served],
            "served_models": [
                self._render_served_model(s, deployed)
                for s in config.served
                if s.entity_name is not None
            ],
            "traffic_config": {
                "routes": [
                    {"served_model_name": n, "served_entity_name": n, "traffic_percentage": p}
                    for n, p in config.routes
                ]
            },
        }
        if config.auto_capture is not None:
            capture = dict(config.auto_capture)
            if capture.get("enabled"):
                prefix = capture.get("table_name_prefix") or "payload"
                table = f"{capture['catalog_name']}.{capture['schema_name']}.{prefix}_payload"
                capture["state"] = {"payload_table": {"name": table, "status": "ACTIVE"}}
            body["auto_capture_config"] = capture
        if not deployed:
            body["start_time"] = config.start_time
        return body

    def _render(self, endpoint: Endpoint) -> dict[str, Any]:
        body: dict[str, Any] = {
            "name": endpoint.name,
            "id": endpoint.id,
            "creator": endpoint.creator,
            "creation_timestamp": endpoint.created,
            "last_updated_timestamp": endpoint.updated,
            "state": {"ready": endpoint.ready, "config_update": endpoint.config_update},
            "tags": key_values(endpoint.tags),
            "permission_level": "CAN_MANAGE",
            "route_optimized": endpoint.route_optimized,
        }
        if endpoint.config is not None:
            body["config"] = self._render_config(endpoint.config, deployed=True)
        if endpoint.pending is not None:
            body["pending_config"] = self._render_config(endpoint.pending, deployed=False)
        if endpoint.description is not None:
            body["description"] = endpoint.description
        if endpoint.ai_gateway is not None:
            body["ai_gateway"] = endpoint.ai_gateway
        return body

    def _render_summary(self, endpoint: Endpoint) -> dict[str, Any]:
        body = self._render(endpoint)
        shown = endpoint.config or endpoint.pending
        body.pop("pending_config", None)
        body.pop("permission_level", None)
        body.pop("route_optimized", None)
        if shown is not None:
            body["config"] = {
                "served_entities": [
                    {
                        "name": s.name,
                        "entity_name": s.entity_name,
                        "entity_version": s.entity_version,
                    }
                    for s in shown.served
                ],
                "served_models": [
                    {"name": s.name, "model_name": s.entity_name, "model_version": s.entity_version}
                    for s in shown.served
                    if s.entity_name is not None
                ],
            }
        return body

    # Routes.

    def register(self, router: Router) -> None:
        base = "/api/2.0/serving-endpoints"
        router.add("POST", base, self.create)
        router.add("GET", base, self.list)
        router.add("GET", base + "/{name}", self.get)
        router.add("DELETE", base + "/{name}", self.delete)
        router.add("PUT", base + "/{name}/config", self.update_config)
        router.add("PATCH", base + "/{name}/tags", self.patch_tags)
        router.add("PUT", base + "/{name}/ai-gateway", self.put_ai_gateway)
        router.add("GET", base + "/{name}/metrics", self.metrics)
        router.add("POST", "/serving-endpoints/{name}/invocations", self.invoke)
        router.add(
            "POST", "/serving-endpoints/{name}/served-models/{served}/invocations", self.invoke
        )

    def create(self, req: Request) -> dict[str, Any]:
        name = req.require("name")
        if not _NAME.match(name):
            raise invalid(f"Invalid endpoint name '{name}': use 1-63 letters, digits, '-' and '_'.")
        if name in self.endpoints:
            raise already_exists(f"Endpoint with name '{name}' already exists.")
        config = req.arg("config")
        if not isinstance(config, dict):
            raise invalid("Missing required field: config")
        pending = self._build_config(config, None)
        now = self.ctx.now_ms()
        endpoint = Endpoint(
            name=name,
            id=self.ctx.new_hex(),
            creator=self.ctx.user,
            created=now,
            updated=now,
            pending=pending,
            tags={t["key"]: t.get("value", "") for t in req.arg("tags") or []},
            description=req.arg("description"),
            route_optimized=req.bool_arg("route_optimized"),
            ai_gateway=req.arg("ai_gateway"),
        )
        self.endpoints[name] = endpoint
        if self.settle_after <= 0:
            self._apply_pending(endpoint)
        return self._render(endpoint)

    def list(self, req: Request) -> dict[str, Any]:
        return {
            "endpoints": [self._render_summary(self.endpoints[n]) for n in sorted(self.endpoints)]
        }

    def get(self, req: Request) -> dict[str, Any]:
        endpoint = self._endpoint(req.params["name"])
        self._observe(endpoint)
        return self._render(endpoint)

    def delete(self, req: Request) -> None:
        del self.endpoints[self._endpoint(req.params["name"]).name]

    def update_config(self, req: Request) -> dict[str, Any]:
        endpoint = self._endpoint(req.params["name"])
        if endpoint.pending is not None:
            raise conflict(
                f"Endpoint '{endpoint.name}' is currently being updated; wait for the current "
                "update to finish before updating it again."
            )
        pending = self._build_config(dict(req.body), endpoint)
        endpoint.pending = pending
        endpoint.config_update = "IN_PROGRESS"
        endpoint.reads = 0
        endpoint.updated = self.ctx.now_ms()
        if self.settle_after <= 0:
            self._apply_pending(endpoint)
        return self._render(endpoint)

    def patch_tags(self, req: Request) -> dict[str, Any]:
        endpoint = self._endpoint(req.params["name"])
        for tag in req.arg("add_tags") or []:
            endpoint.tags[tag["key"]] = tag.get("value", "")
        for key in req.arg("delete_tags") or []:
            endpoint.tags.pop(key, None)
        return {"tags": key_values(endpoint.tags)}

    def put_ai_gateway(self, req: Request) -> dict[str, Any]:
        endpoint = self._endpoint(req.params["name"])
        gateway = {k: v for k, v in req.body.items() if k != "name"}
        unknown = sorted(set(gateway) - _GATEWAY_FIELDS)
        if unknown:
            raise invalid(f"Unknown AI Gateway field(s): {', '.join(unknown)}.")
        _check_rate_limits(gateway.get("rate_limits") or [])
        endpoint.ai_gateway = gateway
        endpoint.calls.clear()
        return endpoint.ai_gateway

    def metrics(self, req: Request) -> Response:
        endpoint = self._endpoint(req.params["name"])
        lines: list[str] = []
        for metric, help_text, attribute in (
            ("request_count_total", "Requests answered by the served entity.", "requests"),
            ("request_4xx_count_total", "Requests answered with a 4xx status.", "errors_4xx"),
            ("request_5xx_count_total", "Requests answered with a 5xx status.", "errors_5xx"),
        ):
            lines.append(f"# HELP {metric} {help_text}")
            lines.append(f"# TYPE {metric} counter")
            for served_name in sorted(endpoint.counters):
                value = getattr(endpoint.counters[served_name], attribute)
                labels = f'endpoint_name="{endpoint.name}",served_entity_name="{served_name}"'
                lines.append(f"{metric}{{{labels}}} {float(value)}")
        return Response(text="\n".join(lines) + "\n")

    # Invocations.

    def _pick_route(self, config: EndpointConfig) -> str:
        point = self._routing.randrange(100)
        for name, percentage in config.routes:
            if point < percentage:
                return name
            point -= percentage
        raise invalid_state("The endpoint has no route with traffic.")

    def _rate_limit(self, endpoint: Endpoint) -> None:
        """Count this call against the endpoint-wide and per-user call limits (per minute of the
        fake's clock); refuse it with ``429 REQUEST_LIMIT_EXCEEDED`` once a limit is used up."""
        minute = self.ctx.now_ms() // 60_000
        for limit in (endpoint.ai_gateway or {}).get("rate_limits") or []:
            key, principal, calls = (
                limit.get("key", "endpoint"),
                limit.get("principal"),
                limit.get("calls"),
            )
            if calls is None or key not in ("endpoint", "user"):
                continue  # token limits, groups and service principals are not enforced
            if key == "user" and principal not in (None, self.ctx.user):
                continue
            counted = (key, principal or "")
            window, used = endpoint.calls.get(counted, (minute, 0))
            used = used if window == minute else 0
            if used >= calls:
                raise ApiError(
                    429,
                    "REQUEST_LIMIT_EXCEEDED",
                    f"Exceeded the {key} rate limit of {calls} calls per minute "
                    f"for endpoint '{endpoint.name}'.",
                )
            endpoint.calls[counted] = (minute, used + 1)

    def invoke(self, req: Request) -> Response:
        endpoint = self._endpoint(req.params["name"])
        config = endpoint.config
        if config is None or endpoint.ready != "READY":
            raise invalid_state(
                f"Endpoint '{endpoint.name}' is not ready (state: {endpoint.ready}); "
                "wait until it is READY before querying it."
            )
        self._rate_limit(endpoint)
        pinned = req.params.get("served")
        if pinned is not None and config.served_entity(pinned) is None:
            raise not_found(
                f"Served model '{pinned}' does not exist in endpoint '{endpoint.name}'."
            )
        served_name = pinned or self._pick_route(config)
        served = config.served_entity(served_name)
        assert served is not None
        counters = endpoint.counters.setdefault(served_name, RouteCounters())
        counters.requests += 1
        request_id = self.ctx.new_uuid()
        started = self.ctx.now_ms()
        try:
            predictions = self._predict(dict(req.body), served)
        except ApiError as error:
            if error.status >= 500:
                counters.errors_5xx += 1
            else:
                counters.errors_4xx += 1
            self._capture(
                endpoint, config, served, req, error.status, error.body(), request_id, started
            )
            raise
        body = {"predictions": predictions}
        self._capture(endpoint, config, served, req, 200, body, request_id, started)
        return Response(
            body=body, headers={"served-model-name": served_name, "x-request-id": request_id}
        )

    def _predict(self, payload: dict[str, Any], served: ServedEntity) -> Any:
        for key in (
            served.name,
            f"{served.entity_name}:{served.entity_version}",
            served.entity_name or "",
        ):
            if key in self.predictors:
                return self.predictors[key](payload, served)
        rows = _count_rows(payload)
        return [
            {
                "served_entity_name": served.name,
                "entity_name": served.entity_name,
                "entity_version": served.entity_version,
                "row": index,
            }
            for index in range(rows)
        ]

    def _capture(
        self,
        endpoint: Endpoint,
        config: EndpointConfig,
        served: ServedEntity,
        req: Request,
        status: int,
        response: Any,
        request_id: str,
        started: int,
    ) -> None:
        capture = config.auto_capture
        if not capture or not capture.get("enabled"):
            return
        endpoint.captured.append(
            {
                "client_request_id": req.body.get("client_request_id"),
                "databricks_request_id": request_id,
                "timestamp_ms": started,
                "status_code": status,
                "execution_time_ms": max(0, self.ctx.now_ms() - started),
                "request": json.dumps(dict(req.body)),
                "response": json.dumps(response),
                "request_metadata": {
                    "endpoint_name": endpoint.name,
                    "model_name": served.entity_name or "",
                    "model_version": served.entity_version or "",
                    "served_entity_name": served.name,
                },
            }
        )


def _check_rate_limits(limits: Any) -> None:
    """Refuse rate limits the service refuses: a renewal period other than a minute, an unknown
    key, negative counts, no count at all, a principal where none applies, duplicates."""
    if not isinstance(limits, list) or len(limits) > MAX_RATE_LIMITS:
        raise invalid(f"rate_limits must be a list of at most {MAX_RATE_LIMITS} rate limits.")
    seen: set[tuple[str, str]] = set()
    for limit in limits:
        if not isinstance(limit, dict):
            raise invalid("Each rate limit must be an object.")
        if limit.get("renewal_period") != "minute":
            raise invalid("renewal_period must be 'minute'.")
        key = limit.get("key", "endpoint")
        if key not in _RATE_LIMIT_KEYS:
            raise invalid(f"Invalid rate limit key '{key}'.")
        counts = [limit.get(f) for f in ("calls", "tokens") if limit.get(f) is not None]
        if not counts:
            raise invalid("A rate limit must set calls or tokens.")
        if any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in counts):
            raise invalid("calls and tokens must be non-negative integers.")
        principal = limit.get("principal")
        if key == "endpoint" and principal is not None:
            raise invalid("An endpoint rate limit takes no principal.")
        if key in ("user_group", "service_principal") and not principal:
            raise invalid(f"A {key} rate limit needs a principal.")
        if (key, principal or "") in seen:
            raise invalid(f"More than one rate limit for key '{key}' and the same principal.")
        seen.add((key, principal or ""))


_INPUT_FIELDS = (
    "dataframe_split",
    "dataframe_records",
    "instances",
    "inputs",
    "messages",
    "prompt",
    "input",
)


def _count_rows(payload: dict[str, Any]) -> int:
    given = [name for name in _INPUT_FIELDS if name in payload]
    if len(given) != 1:
        raise ApiError(
            400,
            "BAD_REQUEST",
            "The request must contain exactly one of: " + ", ".join(_INPUT_FIELDS) + ".",
        )
    value = payload[given[0]]
    if given[0] == "dataframe_split":
        if not isinstance(value, dict) or not isinstance(value.get("data"), list):
            raise ApiError(400, "BAD_REQUEST", "dataframe_split must have a 'data' list.")
        return len(value["data"])
    if isinstance(value, list):
        return len(value)
    if isinstance(value, dict) and value:
        first = next(iter(value.values()))
        return len(first) if isinstance(first, list) else 1
    return 1
