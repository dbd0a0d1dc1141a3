"""Model Serving endpoints: one served entity per route, traffic as integer route percentages.

A Mintaka route is a served entity of the same name serving the registry's model
(``<catalog>.<schema>.<model>``, or ``<model>`` in the workspace registry) at a version; the
traffic map is the endpoint's ``traffic_config.routes``. Every change goes through
``update_config`` and is waited for (polling on the backend's clock) until the endpoint serves it;
``update_config`` restates every served entity, so each keeps its name and compute (``_Carried``).
Invocations go through the workspace URL (pinned to a route, the served-model invocation path),
which does not answer a route-optimized endpoint created on or after 22 September 2025: invoking
one raises :class:`RouteOptimizedEndpoint` before any request is sent. Metrics are the endpoint's
Prometheus export; captured traffic is its inference table, read back through a SQL warehouse.

The kill switch is an endpoint-wide AI Gateway rate limit of 0 calls per minute: the endpoint
keeps its config and compute but refuses every request. The endpoint-wide limit it had before is
kept in its ``mintaka-killed`` tag (the kill record, written before the limit) and restored on
release.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from mintaka.domain.monitoring import CaptureConfig, CapturedRecord
from mintaka.domain.names import is_endpoint_name, route_name_of, route_names_of
from mintaka.domain.serving import Endpoint, EndpointMetrics, EndpointStatus, Route, TrafficMap
from mintaka.errors import (
    BackendError,
    ConfigurationError,
    Conflict,
    MintakaError,
    NotFound,
    ValidationError,
)
from mintaka.interfaces import CaptureSource, KillSwitch, MetricsSource, Serving, TrafficSplit
from mintaka_databricks.counters import Counters, CounterSnapshots, Snapshot, baseline, since
from mintaka_databricks.errors import BACKEND
from mintaka_databricks.exported import KINDS, REFUSED, REQUESTS, SERVER_ERRORS, read_export
from mintaka_databricks.names import table_prefix
from mintaka_databricks.workspace import WorkspaceAccess

log = logging.getLogger(__name__)

MANAGED_TAG = "mintaka-managed"
REQUEST_TAG = "mintaka-request"
KILL_TAG = "mintaka-killed"
_REFUSE_ALL = {"calls": 0, "key": "endpoint", "renewal_period": "minute"}
_CAPTURE_COLUMNS = (
    "client_request_id, databricks_request_id, timestamp_ms, status_code, "
    "execution_time_ms, request, response, request_metadata"
)


def _event_id(endpoint: str, row: dict[str, Any], earlier: Counter[str]) -> str:
    """A captured request's id: Databricks' request id, else ``dbx-<digest>-<n>``, the digest of
    the row itself (endpoint, the caller's request id, time, request and response) and ``n`` the
    rows of that digest counted before it in ``earlier``. The caller's id is no request's own (a
    session or batch tag may be on many) and two requests may be alike to the millisecond: each
    keeps an id of its own, the same whenever the row is read again, since every row without a
    request id of one millisecond is read in the same call (``_with_all_unidentified``)."""
    if row.get("databricks_request_id"):
        return str(row["databricks_request_id"])
    content = json.dumps(
        [
            endpoint,
            row.get("client_request_id"),
            row.get("timestamp_ms"),
            row.get("request"),
            row.get("response"),
        ],
        default=str,
    )
    digest = hashlib.sha256(content.encode()).hexdigest()[:32]
    occurrence = earlier[digest]
    earlier[digest] += 1
    return f"dbx-{digest}-{occurrence}"


ROUTE_OPTIMIZED_ONLY_SINCE = datetime(2025, 9, 22, tzinfo=UTC)


class RouteOptimizedEndpoint(BackendError):
    """A route-optimized endpoint that Databricks answers only at its own URL, with an OAuth
    token: ``.endpoint`` names it, ``.url`` is that URL (when reported) and ``.created`` its
    creation time (``None`` when not reported). Mintaka invokes endpoints through the workspace
    URL with the workspace's credentials, so it cannot send this endpoint requests."""

    def __init__(self, endpoint: str, url: str | None, created: datetime | None) -> None:
        self.endpoint = endpoint
        self.url = url
        self.created = created
        when = (
            f"was created on {created:%Y-%m-%d %H:%M:%S} UTC"
            if created is not None
            else "has no reported creation time"
        )
        super().__init__(
            f"endpoint {endpoint!r} is route-optimized and {when}: Databricks answers a "
            "route-optimized endpoint created on or after 2025-09-22 only at its own URL"
            + (f" ({url})" if url else "")
            + " with an OAuth token, not at the workspace URL through which Mintaka invokes "
            "endpoints, so Mintaka neither invokes it nor mirrors shadow traffic to it; query it "
            "at its own URL, or serve the model from an endpoint without route optimization",
            BACKEND,
        )


def _refuse_route_optimized(name: str, details: dict[str, Any]) -> None:
    """Refuse to invoke a route-optimized endpoint that the workspace URL does not answer.

    Databricks answers a route-optimized endpoint created before 22 September 2025 both at its
    own URL and at the workspace URL (``/serving-endpoints/<name>/invocations``), which Mintaka
    invokes; one created since answers only at its own URL, with an OAuth token. An endpoint
    whose creation time is not reported is taken to be a new one."""
    if not details.get("route_optimized"):
        return
    stamp = details.get("creation_timestamp")
    created = datetime.fromtimestamp(stamp / 1000, UTC) if stamp else None
    if created is not None and created < ROUTE_OPTIMIZED_ONLY_SINCE:
        return
    raise RouteOptimizedEndpoint(name, details.get("endpoint_url"), created)


def _endpoint_wide(limit: dict[str, Any]) -> bool:
    return bool(limit.get("key", "endpoint") == "endpoint")


def _rate_limits(details: dict[str, Any]) -> list[dict[str, Any]]:
    return list((details.get("ai_gateway") or {}).get("rate_limits") or [])


def _refusing(details: dict[str, Any]) -> bool:
    """Whether an endpoint-wide limit of 0 calls per minute is in force: every request refused."""
    return any(_endpoint_wide(r) and r.get("calls") == 0 for r in _rate_limits(details))


def _tag(details: dict[str, Any], key: str) -> str | None:
    return next((t.get("value") for t in details.get("tags") or [] if t.get("key") == key), None)


class _Reading(NamedTuple):
    at: datetime
    counters: Counters
    p50: dict[str, float]
    p99: dict[str, float]
    custom: dict[str, float]
    earlier: list[Snapshot]  # the reads remembered before this one


def _as_dict(obj: Any) -> dict[str, Any]:
    return obj.as_dict() if obj is not None else {}


def _weights_of(config: dict[str, Any]) -> dict[str, int]:
    """Route name -> traffic percentage of an endpoint config's ``traffic_config``."""
    return {
        route_name_of(str(r.get("served_entity_name") or r.get("served_model_name"))): int(
            r.get("traffic_percentage", 0)
        )
        for r in (config.get("traffic_config") or {}).get("routes") or []
    }


# What a served entity runs on and with: kept by every later config of its endpoint.
COMPUTE_FIELDS = (
    "workload_size",
    "workload_type",
    "scale_to_zero_enabled",
    "environment_vars",
    "instance_profile_arn",
    "min_provisioned_throughput",
    "max_provisioned_throughput",
    "min_provisioned_concurrency",
    "max_provisioned_concurrency",
    "provisioned_model_units",
    "burst_scaling_enabled",
)


class _Carried(NamedTuple):
    """What an endpoint's config hands on to its next one: each route's served entity keeps its
    compute (workload size and type, scale to zero, environment variables, provisioned
    throughput); a new route runs on that of the entity with the most traffic."""

    compute: dict[str, dict[str, Any]]  # route -> compute
    default: dict[str, Any] | None

    @classmethod
    def of(cls, details: dict[str, Any]) -> _Carried:
        config = details.get("config") or details.get("pending_config") or {}
        compute = {
            route_name_of(str(entity["name"])): {
                key: entity[key] for key in COMPUTE_FIELDS if entity.get(key) is not None
            }
            for entity in config.get("served_entities") or []
        }
        weights = _weights_of(config)
        busiest = max(compute, key=lambda route: weights.get(route, 0), default=None)
        return cls(compute, None if busiest is None else compute[busiest])


class EndpointServing(
    WorkspaceAccess, Serving, TrafficSplit, KillSwitch, MetricsSource, CaptureSource
):
    """``Capability.SERVING``, traffic split, the kill switch, metrics and capture over Model
    Serving."""

    # -- reading --------------------------------------------------------------------------------

    def _details(self, name: str) -> dict[str, Any]:
        found = self._call(
            f"reading endpoint {name}",
            lambda: self.client.serving_endpoints.get(self.settings.endpoint_of(name)),
        )
        return _as_dict(found)

    def _route_of(self, served: dict[str, Any]) -> Route | None:
        entity = str(served.get("entity_name") or served.get("model_name") or "")
        model = self._model_of(entity)
        version = served.get("entity_version") or served.get("model_version")
        if model is None or version is None:
            return None
        # A served entity named outside Mintaka (``churn_model-1``) reads as route
        # ``churn-model-1``; one Mintaka made has its route's name already.
        return Route(name=route_name_of(str(served["name"])), model=model, version=int(version))

    def _endpoint(self, details: dict[str, Any]) -> Endpoint:
        config = details.get("config") or details.get("pending_config") or {}
        state = details.get("state") or {}
        entities = config.get("served_entities") or []
        extra: dict[str, Any] = {
            "config_version": config.get("config_version"),
            "ready": state.get("ready"),
            "config_update": state.get("config_update"),
            "capture": config.get("auto_capture_config"),
        }
        try:
            served_names = route_names_of([str(s["name"]) for s in entities], "served entity")
            routes = [self._route_of(s) for s in entities]
            weights = _weights_of(config)
            mapped = tuple(r for r in routes if r is not None)
            if len(mapped) != len(routes):
                raise ValueError("served entities that are not Mintaka routes")
            traffic = TrafficMap(weights=weights)
            extra["served_names"] = served_names  # route -> served entity
        except ValueError:  # not Mintaka's: report it raw rather than guess
            mapped, traffic = (), TrafficMap(weights={})
            extra["config"] = config
        if details.get("route_optimized"):
            extra["route_optimized"] = True
            extra["endpoint_url"] = details.get("endpoint_url")
        killed = _refusing(details)
        if killed:
            with contextlib.suppress(Conflict):  # a stray tag does not stop reading the endpoint
                extra["killed_at"] = (self._kill_record(details) or {}).get("killed_at")
        return Endpoint(
            name=self.settings.endpoint_name_of(str(details["name"])),
            status=EndpointStatus.KILLED
            if killed
            else _status(state, has_config=bool(details.get("config"))),
            routes=mapped,
            traffic=traffic,
            backend=BACKEND,
            backend_ids={"id": str(details.get("id", ""))},
            extra=extra,
        )

    def get_endpoint(self, name: str) -> Endpoint:
        return self._endpoint(self._details(name))

    def list_endpoints(self) -> list[Endpoint]:
        listed = self._call(
            "listing serving endpoints", lambda: list(self.client.serving_endpoints.list())
        )
        names = (self.settings.endpoint_name_of(str(e.name)) for e in listed)
        # An endpoint whose name Mintaka cannot use (a pay-per-token ``databricks-...`` one, or
        # ``team_chat_api``) and that ``endpoint_names`` does not map is not Mintaka's to list;
        # discovery still reports it.
        return [self.get_endpoint(n) for n in names if is_endpoint_name(n)]

    # -- changing -------------------------------------------------------------------------------

    def _served(
        self,
        routes: Sequence[Route],
        names: dict[str, str] | None = None,
        carried: _Carried | None = None,
    ) -> list[Any]:
        """The served entities of ``routes``, each under the name the endpoint already gives its
        route (``names``, for an endpoint made outside Mintaka), else the route's own, and on the
        compute it runs on (``carried``); the settings' workload size and scale to zero apply to
        endpoints Mintaka creates."""
        from databricks.sdk.service.serving import ServedEntityInput

        names = names or {}
        carried = carried or _Carried({}, None)
        created = {
            "workload_size": self.settings.workload_size,
            "scale_to_zero_enabled": self.settings.scale_to_zero,
        }
        return [
            ServedEntityInput.from_dict(
                {
                    "name": names.get(route.name, route.name),
                    "entity_name": self._full_name(route.model),
                    "entity_version": str(route.version),
                    **(carried.compute.get(route.name) or carried.default or created),
                }
            )
            for route in routes
        ]

    @staticmethod
    def _traffic(
        routes: Sequence[Route], traffic: TrafficMap, names: dict[str, str] | None = None
    ) -> Any:
        from databricks.sdk.service.serving import Route as SdkRoute
        from databricks.sdk.service.serving import TrafficConfig

        unknown = set(traffic.weights) - {r.name for r in routes}
        if unknown:
            raise ValidationError(f"traffic names routes the endpoint lacks: {sorted(unknown)}")
        return TrafficConfig(
            routes=[
                SdkRoute(
                    served_model_name=(names or {}).get(r.name, r.name),
                    traffic_percentage=traffic.weights.get(r.name, 0),
                )
                for r in routes
            ]
        )

    def _settled(self, name: str, *, failed: bool = True) -> dict[str, Any]:
        """Poll until no config change is in progress; a failed change is a BackendError unless
        ``failed`` is false (before a change: the endpoint shows ``UPDATE_FAILED`` until a later
        change succeeds, and keeps serving its previous config meanwhile)."""
        clock = self._elapsed_clock()
        deadline = clock.time() + self.settings.endpoint_timeout_seconds
        while True:
            details = self._details(name)
            state = details.get("state") or {}
            if state.get("config_update") != "IN_PROGRESS":
                if failed and state.get("config_update") == "UPDATE_FAILED":
                    raise BackendError(f"endpoint {name!r}: the config update failed", BACKEND)
                return details
            if clock.time() >= deadline:
                raise BackendError(
                    f"endpoint {name!r} still updating after "
                    f"{self.settings.endpoint_timeout_seconds}s",
                    BACKEND,
                )
            clock.sleep(self.settings.poll_seconds)

    def create_endpoint(self, name: str, routes: Sequence[Route], traffic: TrafficMap) -> Endpoint:
        from databricks.sdk.service.serving import EndpointCoreConfigInput, EndpointTag

        token = self.context.ids.new("create")
        cloud = self.settings.endpoint_of(name)
        config = EndpointCoreConfigInput(
            name=cloud,
            served_entities=self._served(routes),
            traffic_config=self._traffic(routes, traffic),
        )
        try:
            self._call(
                f"creating endpoint {name}",
                lambda: self.client.serving_endpoints.create(
                    cloud,
                    config=config,
                    tags=[
                        EndpointTag(key=MANAGED_TAG, value="true"),
                        EndpointTag(key=REQUEST_TAG, value=token),
                    ],
                ),
            )
        except Conflict:
            # Ours if our request token is on it: the answer to our create was lost, the retry
            # found the endpoint made by the first attempt.
            tags = {t.get("key"): t.get("value") for t in self._details(name).get("tags") or []}
            if tags.get(REQUEST_TAG) != token:
                raise
        return self._endpoint(self._settled(name))

    def _update(
        self,
        name: str,
        routes: Sequence[Route],
        traffic: TrafficMap,
        capture: dict[str, Any] | None = None,
    ) -> Endpoint:
        from databricks.sdk.service.serving import AutoCaptureConfigInput

        capture_input = None if capture is None else AutoCaptureConfigInput.from_dict(capture)
        wanted = ({r.name: (r.model, r.version) for r in routes}, dict(traffic.weights))
        submitted = False
        for _ in range(3):
            details = self._settled(name, failed=submitted)
            current = self._endpoint(details)
            if self._matches(current, wanted) and capture is None:
                return current
            # Served entities keep the names they have (a rename would redeploy them) and the
            # compute they run on.
            names = current.extra.get("served_names", {})
            update = functools.partial(
                self.client.serving_endpoints.update_config,
                self.settings.endpoint_of(name),
                served_entities=self._served(routes, names, _Carried.of(details)),
                traffic_config=self._traffic(routes, traffic, names),
                auto_capture_config=capture_input,
            )
            try:
                self._call(f"updating endpoint {name}", update)
            except Conflict:
                continue  # another update (or our own, answered late) is in progress: re-check
            submitted = True
            capture = None
        settled = self._endpoint(self._settled(name, failed=submitted))
        if not self._matches(settled, wanted) or capture is not None:
            raise Conflict(f"endpoint {name!r} kept changing under a concurrent update")
        return settled

    @staticmethod
    def _matches(endpoint: Endpoint, wanted: tuple[dict[str, Any], dict[str, int]]) -> bool:
        routes = {r.name: (r.model, r.version) for r in endpoint.routes}
        weights = {k: v for k, v in endpoint.traffic.weights.items()}
        want_routes, want_weights = wanted
        full = {r: want_weights.get(r, 0) for r in want_routes}
        return routes == want_routes and weights == full

    def update_routes(self, name: str, routes: Sequence[Route], traffic: TrafficMap) -> Endpoint:
        return self._update(name, routes, traffic)

    def set_traffic(self, name: str, traffic: TrafficMap) -> Endpoint:
        current = self.get_endpoint(name)
        endpoint = self._update(name, current.routes, traffic)
        # A traffic change opens a new metrics window (a rollout's step): the counters as they
        # stand now are that window's baseline. Best effort: the change itself has succeeded.
        with contextlib.suppress(MintakaError):
            self._read_counters(name)
        return endpoint

    def delete_endpoint(self, name: str) -> None:
        self._details(name)  # NotFound for an endpoint missing before the delete
        # The SDK retries a delete whose answer was lost, and the retry finds the endpoint gone.
        with contextlib.suppress(NotFound):
            self._call(
                f"deleting endpoint {name}",
                lambda: self.client.serving_endpoints.delete(self.settings.endpoint_of(name)),
            )

    # -- kill switch (emulated) -------------------------------------------------------------------
    #
    # Model Serving cannot stop an endpoint, but AI Gateway rate limits apply to every caller: an
    # endpoint-wide limit of 0 calls per minute refuses every request (429) while the endpoint
    # keeps its config, compute, permissions and URL, so releasing it is one call. The
    # endpoint-wide limit it had is recorded first, in the ``mintaka-killed`` tag, so an
    # interrupted kill or release can be run again and never loses that limit.

    def _raw(self, name: str) -> dict[str, Any]:
        """The endpoint as the service returns it (every AI Gateway field, known to the SDK or
        not, so that writing the gateway back keeps them)."""
        return self._rest(
            "GET",
            f"/api/2.0/serving-endpoints/{self.settings.endpoint_of(name)}",
            f"reading endpoint {name}",
        )

    def _kill_record(self, details: dict[str, Any]) -> dict[str, Any] | None:
        value = _tag(details, KILL_TAG)
        if value is None:
            return None
        try:
            record = json.loads(value)
        except ValueError:
            record = None
        if not isinstance(record, dict) or not isinstance(record.get("endpoint_limits"), list):
            raise Conflict(
                f"endpoint {details.get('name')!r} has a {KILL_TAG!r} tag that is not a kill "
                f"record ({value!r}): remove the tag in Databricks, then retry"
            )
        return record

    def _put_rate_limits(
        self, name: str, details: dict[str, Any], limits: list[dict[str, Any]]
    ) -> None:
        gateway = {**(details.get("ai_gateway") or {}), "rate_limits": limits}
        self._rest(
            "PUT",
            f"/api/2.0/serving-endpoints/{self.settings.endpoint_of(name)}/ai-gateway",
            f"setting the rate limits of endpoint {name}",
            body=gateway,
        )

    def _set_kill_tag(self, name: str, record: dict[str, Any] | None) -> None:
        from databricks.sdk.service.serving import EndpointTag

        cloud = self.settings.endpoint_of(name)
        if record is None:
            change = functools.partial(
                self.client.serving_endpoints.patch, cloud, delete_tags=[KILL_TAG]
            )
        else:
            value = json.dumps(record, sort_keys=True, separators=(",", ":"))
            change = functools.partial(
                self.client.serving_endpoints.patch,
                cloud,
                add_tags=[EndpointTag(key=KILL_TAG, value=value)],
            )
        self._call(f"tagging endpoint {name}", change)

    def kill(self, name: str) -> Endpoint:
        """Make the endpoint refuse every request (an endpoint-wide rate limit of 0 calls per
        minute), after recording the endpoint-wide limit it had; killing a killed endpoint
        changes nothing."""
        details = self._raw(name)
        limits = _rate_limits(details)
        if self._kill_record(details) is None:
            record = {
                "killed_at": self.context.clock.now().isoformat(),
                "endpoint_limits": [r for r in limits if _endpoint_wide(r)],
            }
            self._set_kill_tag(name, record)
        if not _refusing(details):
            kept = [r for r in limits if not _endpoint_wide(r)]
            self._put_rate_limits(name, details, [*kept, dict(_REFUSE_ALL)])
        return self.get_endpoint(name)

    def unkill(self, name: str) -> Endpoint:
        """Put back the endpoint-wide rate limit the endpoint had before it was killed (none, most
        often) and drop the kill record; an endpoint that is not killed is answered as it is."""
        details = self._raw(name)
        record = self._kill_record(details)
        if record is None:
            if _refusing(details):
                raise Conflict(
                    f"endpoint {name!r} refuses every request through an endpoint-wide rate "
                    "limit of 0 that Mintaka did not set (no kill record): change its AI Gateway "
                    "rate limits in Databricks"
                )
            return self.get_endpoint(name)
        limits = _rate_limits(details)
        restored = [r for r in limits if not _endpoint_wide(r)] + list(record["endpoint_limits"])
        if restored != limits:
            self._put_rate_limits(name, details, restored)
        self._set_kill_tag(name, None)
        return self.get_endpoint(name)

    # -- invocations ----------------------------------------------------------------------------

    def invoke(self, name: str, payload: Any, route: str | None = None) -> dict[str, Any]:
        rows = payload.get("inputs") if isinstance(payload, dict) else None
        if rows is None:
            raise ValidationError("an invocation payload is {'inputs': row or [rows]}")
        records = [rows] if isinstance(rows, dict) else list(rows)
        request_id = self.context.ids.new("req")
        cloud = self.settings.endpoint_of(name)
        # Read first: the service answers a killed endpoint 429, which the SDK would retry
        # until its retry timeout.
        details = self._details(name)
        _refuse_route_optimized(name, details)
        if _refusing(details):
            raise BackendError(
                f"endpoint {name!r} is killed: it refuses every request until released", BACKEND
            )
        if route:  # the served entity the endpoint has under that route's name
            served = self._endpoint(details).extra.get("served_names", {}).get(route, route)
            path = f"/serving-endpoints/{cloud}/served-models/{served}/invocations"
        else:
            path = f"/serving-endpoints/{cloud}/invocations"
        try:
            answer = self._rest(
                "POST",
                path,
                f"invoking endpoint {name}",
                body={"dataframe_records": records, "client_request_id": request_id},
                response_headers=["served-model-name", "x-request-id"],
            )
        except Conflict as exc:  # not READY: the endpoint cannot answer now
            raise BackendError(str(exc), BACKEND) from exc.__cause__
        predictions = answer.get("predictions")
        if not isinstance(predictions, list):
            predictions = [predictions]
        return {
            "route": route_name_of(str(answer["served-model-name"]))
            if answer.get("served-model-name")
            else route,
            "predictions": [
                {"id": f"{request_id}-{i}", "output": output}
                for i, output in enumerate(predictions)
            ],
            "request_id": answer.get("x-request-id"),
        }

    # -- monitoring -----------------------------------------------------------------------------

    def read_metrics(self, endpoint: str, start: datetime, end: datetime) -> EndpointMetrics:
        """The endpoint's request, server error (5xx) and refused (4xx) counts per served entity
        (route) since ``start``.

        Databricks exports cumulative counters as they stand now, with no history, so each read
        is remembered (``counters.py``; a traffic change takes one too, so a rollout's step has
        its baseline) and the window is the difference from the last read at or before
        ``start``. The metrics report the window they actually cover: ``start`` is that read's
        time, or, when there is none, the endpoint's creation if it came before ``start`` (the
        counters since then); ``end`` is the time of this read. Latency quantiles and other
        samples are as exported: a histogram's quantiles cover the counts since the served
        entity started, not the window.
        """
        read = self._read_counters(endpoint)
        now, counters = read.at, read.counters
        # A read remembered by an earlier Mintaka, which kept 4xx and 5xx together, is no
        # baseline for the split counters.
        comparable = [s for s in read.earlier if all(k in s.counters for k in KINDS)]
        base = baseline(comparable, start)
        if base is not None:
            counters, covered = since(counters, base.counters), base.at
        else:
            # Counters since creation: exactly the window when the endpoint is younger than it
            # (errors and refusals, as in any window, at most the requests).
            counters = since(counters, {})
            created = self._details(endpoint).get("creation_timestamp")
            covered = start
            if created and datetime.fromtimestamp(created / 1000, UTC) < start:
                covered = datetime.fromtimestamp(created / 1000, UTC)
        return EndpointMetrics(
            endpoint=endpoint,
            start=covered,
            end=max(now, covered),
            requests=counters[REQUESTS],
            errors=counters[SERVER_ERRORS],
            invalid=counters[REFUSED],
            p50_latency_ms=read.p50,
            p99_latency_ms=read.p99,
            custom=read.custom,
        )

    def custom_metrics(self) -> frozenset[str] | None:
        """Every other sample the endpoint exports, as ``<name>/<route>``: known once read."""
        return None

    def _read_counters(self, endpoint: str) -> _Reading:
        """The exported samples as they stand now (``exported.py``); the counters are
        remembered."""
        exported = self._call(
            f"reading metrics of {endpoint}",
            lambda: self.client.serving_endpoints.export_metrics(
                self.settings.endpoint_of(endpoint)
            ),
        )
        now = self.context.clock.now()
        text = exported.contents.read().decode() if exported.contents is not None else ""
        found = read_export(text, BACKEND)
        counters, p50, p99, custom = found.counters, found.p50, found.p99, found.custom
        earlier = self._snapshots.record(endpoint, Snapshot(now, counters))
        return _Reading(now, counters, p50, p99, custom, earlier)

    @property
    def _snapshots(self) -> CounterSnapshots:
        return CounterSnapshots(self.context.home / "databricks" / "metrics")

    def _payload_table(
        self, endpoint: str, config: CaptureConfig, current: Endpoint
    ) -> dict[str, Any]:
        on = current.extra.get("capture") or {}
        if not config.enabled and not config.destination and on.get("enabled"):
            # Turning capture off names the table it writes: Databricks refuses a change of
            # catalog, schema or prefix while inference tables are on.
            return {
                **{
                    k: on[k]
                    for k in ("catalog_name", "schema_name", "table_name_prefix")
                    if k in on
                },
                "enabled": False,
            }
        catalog, schema, prefix = (
            self.settings.catalog,
            self.settings.schema_name,
            table_prefix(endpoint),
        )
        if config.destination:
            parts = config.destination.split(".")
            if len(parts) not in (2, 3):
                raise ValidationError(
                    "a Databricks capture destination is 'catalog.schema[.table_prefix]'"
                )
            catalog, schema = parts[0], parts[1]
            prefix = parts[2] if len(parts) == 3 else prefix
        return {
            "catalog_name": catalog,
            "schema_name": schema,
            "table_name_prefix": prefix,
            "enabled": config.enabled,
        }

    def configure_capture(self, endpoint: str, config: CaptureConfig) -> None:
        """Turn the endpoint's inference table on (or off).

        Inference tables log every request with both payloads: a sample rate or capturing only
        one side cannot be expressed, and is refused rather than ignored.
        """
        current = self.get_endpoint(endpoint)
        if config.enabled and (
            config.sample_percent != 100 or not (config.capture_inputs and config.capture_outputs)
        ):
            raise ValidationError(
                "Databricks inference tables capture every request and response: "
                "sample_percent must be 100 and both inputs and outputs captured"
            )
        self._update(
            endpoint,
            current.routes,
            current.traffic,
            self._payload_table(endpoint, config, current),
        )

    def read_captured(
        self, endpoint: str, since: datetime | None = None, limit: int | None = None
    ) -> list[CapturedRecord]:
        details = self._details(endpoint)
        capture = ((details.get("config") or {}).get("auto_capture_config")) or {}
        table = ((capture.get("state") or {}).get("payload_table") or {}).get("name")
        if not table:
            raise NotFound(f"endpoint {endpoint!r} has no inference table; configure capture first")
        if not self.settings.warehouse_id:
            raise ConfigurationError(
                "reading an inference table needs a SQL warehouse: set warehouse_id"
            )
        records: list[CapturedRecord] = []
        unidentified: Counter[str] = Counter()
        since_ms = 0 if since is None else int(since.timestamp() * 1000)
        after: tuple[str, str | None] | None = None
        remaining = limit
        while remaining is None or remaining > 0:
            size = self.settings.capture_page_rows
            size = size if remaining is None else min(size, remaining)
            rows = self._capture_page(table, since_ms, after, size)
            full = len(rows) >= size
            if full and rows[-1].get("databricks_request_id") is None:
                rows = self._with_all_unidentified(table, rows)
            rows = rows if remaining is None else rows[:remaining]
            for row in rows:
                event_id = _event_id(endpoint, row, unidentified)
                try:
                    records.append(self._record(endpoint, row, event_id))
                except (ValueError, KeyError, TypeError) as exc:
                    # A row Mintaka cannot read (a request that is not JSON): the others count.
                    log.warning("skipped a row of %s: %r", table, exc)
            if not full:
                break
            last = rows[-1]
            request_id = last.get("databricks_request_id")
            after = (str(last["timestamp_ms"]), None if request_id is None else str(request_id))
            remaining = None if remaining is None else remaining - len(rows)
        return records

    def _with_all_unidentified(
        self, table: str, rows: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """Page ``rows`` ending in rows without a request id, with every such row of the last
        row's millisecond: those rows tie in the paging order, so no later page could tell which
        of them it has read; they are read together instead (NULLs sort first, so they are the
        page's last rows)."""
        from databricks.sdk.service.sql import StatementParameterListItem

        at = str(rows[-1]["timestamp_ms"])
        earlier = [r for r in rows if str(r["timestamp_ms"]) != at]
        statement = (
            f"SELECT {_CAPTURE_COLUMNS} FROM {table} "
            "WHERE timestamp_ms = :at AND databricks_request_id IS NULL"
        )
        parameters = [StatementParameterListItem(name="at", value=at, type="BIGINT")]
        return earlier + self._statement_rows(table, statement, parameters)

    def _capture_page(
        self, table: str, since_ms: int, after: tuple[str, str | None] | None, size: int
    ) -> list[dict[str, Any]]:
        """Up to ``size`` rows of inference table ``table`` from ``since_ms`` on, in request
        order, those after request ``after`` (its time and id) only: an inline result may hold
        25 MiB, so a window is read a bounded page at a time, each page following the last.

        Rows are ordered by time, then request id, rows without an id first (Databricks SQL's
        default); ``after`` without an id stands for all such rows of its millisecond."""
        from databricks.sdk.service.sql import StatementParameterListItem

        condition = "timestamp_ms >= :since"
        parameters = [StatementParameterListItem(name="since", value=str(since_ms), type="BIGINT")]
        if after is not None:
            tie = (
                "databricks_request_id IS NOT NULL"
                if after[1] is None
                else "databricks_request_id > :after_id"
            )
            condition += f" AND (timestamp_ms > :after_ms OR (timestamp_ms = :after_ms AND {tie}))"
            parameters.append(
                StatementParameterListItem(name="after_ms", value=after[0], type="BIGINT")
            )
            if after[1] is not None:
                parameters.append(
                    StatementParameterListItem(name="after_id", value=after[1], type="STRING")
                )
        statement = (
            f"SELECT {_CAPTURE_COLUMNS} FROM {table} WHERE {condition} "
            f"ORDER BY timestamp_ms, databricks_request_id LIMIT {int(size)}"
        )
        return self._statement_rows(table, statement, parameters)

    def _statement_rows(
        self, table: str, statement: str, parameters: list[Any]
    ) -> list[dict[str, Any]]:
        """The rows of ``statement`` on the configured warehouse, each as a column -> value map."""
        from databricks.sdk.service.sql import Disposition, Format, StatementState

        result = self._call(
            f"reading inference table {table}",
            lambda: self.client.statement_execution.execute_statement(
                statement=statement,
                warehouse_id=str(self.settings.warehouse_id),
                parameters=parameters,
                wait_timeout="30s",
                format=Format.JSON_ARRAY,
                disposition=Disposition.INLINE,
            ),
        )
        # A statement still running after ``wait_timeout`` (a warehouse starting up) is polled;
        # its rows may come in several chunks, each naming the next.
        clock = self._elapsed_clock()
        deadline = clock.time() + self.settings.statement_timeout_seconds
        running = (StatementState.PENDING, StatementState.RUNNING)
        while result.status and result.status.state in running:
            if clock.time() >= deadline:
                raise BackendError(
                    f"reading {table} still running after "
                    f"{self.settings.statement_timeout_seconds}s (statement "
                    f"{result.statement_id})",
                    BACKEND,
                )
            clock.sleep(self.settings.poll_seconds)
            result = self._call(
                f"reading inference table {table}",
                functools.partial(
                    self.client.statement_execution.get_statement, str(result.statement_id)
                ),
            )
        state = result.status.state if result.status else None
        if state is not StatementState.SUCCEEDED:
            error = result.status.error if result.status else None
            raise BackendError(f"reading {table} ended {state}: {error}", BACKEND)
        columns = (
            [str(c.name) for c in (result.manifest.schema.columns or [])]
            if result.manifest and result.manifest.schema
            else []
        )
        rows = list((result.result.data_array if result.result else None) or [])
        following = result.result.next_chunk_index if result.result else None
        while following is not None:
            chunk = self._call(
                f"reading inference table {table}",
                functools.partial(
                    self.client.statement_execution.get_statement_result_chunk_n,
                    str(result.statement_id),
                    following,
                ),
            )
            rows.extend(chunk.data_array or [])
            following = chunk.next_chunk_index
        return [dict(zip(columns, row, strict=True)) for row in rows]

    @staticmethod
    def _record(endpoint: str, row: dict[str, Any], event_id: str) -> CapturedRecord:
        metadata = row.get("request_metadata") or {}
        if isinstance(metadata, str):
            metadata = json.loads(metadata)
        request = json.loads(row["request"]) if row.get("request") else {}
        response = json.loads(row["response"]) if row.get("response") else {}
        inputs = request.get("dataframe_records") if isinstance(request, dict) else None
        outputs = response.get("predictions") if isinstance(response, dict) else None
        return CapturedRecord(
            endpoint=endpoint,
            route=route_name_of(str(metadata["served_entity_name"]))
            if metadata.get("served_entity_name")
            else None,
            event_id=event_id,
            at=datetime.fromtimestamp(int(row["timestamp_ms"]) / 1000, tz=UTC),
            inputs=inputs,
            outputs=outputs,
            extra={
                "client_request_id": row.get("client_request_id"),
                "status_code": int(row.get("status_code") or 0),
                "execution_time_ms": int(row.get("execution_time_ms") or 0),
                "latency_ms": float(row.get("execution_time_ms") or 0),
                "model": metadata.get("model_name"),
                "version": metadata.get("model_version"),
            },
        )


def _status(state: dict[str, Any], *, has_config: bool) -> EndpointStatus:
    update = state.get("config_update")
    if update == "IN_PROGRESS":
        return EndpointStatus.UPDATING if has_config else EndpointStatus.CREATING
    if state.get("ready") == "READY":
        return EndpointStatus.IN_SERVICE
    return (
        EndpointStatus.FAILED
        if update == "UPDATE_FAILED" or has_config
        else EndpointStatus.CREATING
    )
