"""The local inference server: every endpoint of the local backend over HTTP on 127.0.0.1.

- ``POST /endpoints/{name}/invocations`` with ``{"inputs": {...}}`` (one row) or
  ``{"inputs": [{...}, ...]}`` (a batch) answers ``{"predictions": [{"id", "output"}], "model",
  "version", "route", "endpoint"}``; each row gets its own prediction id. The header
  ``X-Mintaka-Route`` pins a request to one route. When the model refuses the rows (400) or
  fails (500), the answer is ``{"error", "route", "prediction_ids"}``: the rows are still logged,
  marked ``invalid`` or ``error`` (error telemetry and rollout SLAs read them), under those ids.
- A request body larger than ``max_body_bytes`` (16 MiB by default; ``mintaka serve
  --max-body-mib``) is answered 413 before it is read in full; the model is not called and the
  request is no route's error.
- ``GET /health`` and ``GET /metrics`` (Prometheus text: requests, errors and a latency histogram
  per endpoint and route).

Models are called on worker threads, never on the event loop, each endpoint on a pool of its own
of up to ``predict_workers`` threads (8 by default; ``mintaka serve --predict-workers``), made
as its requests need them: a slow or hung model holds up no request to any other endpoint, and
health, metrics, configuration changes and the kill switch are answered meanwhile. An endpoint's
requests past its pool's size wait for one of its workers, and are refused (503) when they reach
it if the endpoint was killed meanwhile; one to an endpoint that is not served or is killed is
refused at once. A kill refuses requests; it cannot stop a prediction under way, which keeps its
worker until the model returns. The pool belongs to the endpoint's configuration: a change gets a
new one, to which the requests still queued move, so a model of the old configuration that does
not return holds up none of the new one's; the old pool is shut down without waiting, as is an
endpoint's when it goes, whose queued requests are refused (404) at once. ``stop()`` gives
requests and shadow copies under way ``stop_grace`` seconds (10 by default) to finish, then
answers each request still waiting for a worker or for its model, and each ``POST /-/reload``
still waiting for models to load, 503 (the server is stopping), and leaves any model still
predicting behind on its daemon thread. A store it cannot read when it looks at the endpoints
again (busy, or failing) answers that ``POST /-/reload`` or ``POST /-/kill-switches`` 503 with the
store's error, as it does a request pinned to a route (whose version's stage it reads); what it
serves stays as it was. An endpoint whose models could not be looked up
because the store failed meanwhile is tried again at each look until it loads (said once), unlike
a configuration that cannot load, which waits for a change.

Routes load their model from the artifact store after the digest is verified. Traffic follows the
endpoint's weights exactly (smooth weighted round-robin); a shadow route gets a copy of its share
of requests on a separate worker pool, its responses never returned and its failures never
surfaced; when the pool is saturated the copy is dropped instead of delaying the caller, and a
copy still waiting for a worker when the endpoint is killed, goes (even if made again), no
longer shadows that route, or the server stops, is dropped then.
Configuration changes made by any process (traffic, routes, kill) are picked up within
``poll_interval`` seconds, and at once when made through Mintaka: each running server announces
itself, with a URL per address it listens on (``localhost`` may be both 127.0.0.1 and ::1), in
a file of its own under the local backend's ``servers/`` directory (removed on stop, or
by the next reader once its process is gone), and every change is sent to each of them
(``POST /-/reload``, which waits for a reload loading models; a kill is sent to
``POST /-/kill-switches``, which applies the stored kill switches at once on a thread of its own
and waits for nothing). An endpoint whose new configuration cannot load goes on serving its
previous one, under its kill switch as stored; one deleted and made again is not served until its
own configuration loads, never by the one it replaces. A delete, like a kill, is in force as soon
as the server hears of it, even while a reload loads models for another change; so is a traffic
change (a kill that puts known-good traffic back) among routes the server has loaded with the
versions stored.
Predictions are logged in batches off the request path.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import json
import logging
import math
import signal
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics import MetricWrapperBase
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as HttpRoute

from mintaka.domain.registry import ModelVersion, Stage
from mintaka.domain.serving import Route, TrafficMap
from mintaka.errors import (
    ConfigurationError,
    MintakaError,
    NotFound,
    StoreError,
    ValidationError,
)
from mintaka.flavors.loader import Predictor, UnsafeArtifact, load_predictor, pickle_files
from mintaka.local.registry_db import local_endpoints
from mintaka.local.serving import announce
from mintaka.local.workers import WorkerPool
from mintaka.serving.predlog import Prediction, PredictionLog
from mintaka.serving.routing import ShadowSampler, WeightedRouter

if TYPE_CHECKING:
    import uvicorn
    from starlette.types import Receive, Scope, Send

    from mintaka.local.backend import LocalBackend
    from mintaka.platform import Platform

log = logging.getLogger(__name__)
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
DEFAULT_PREDICT_WORKERS = 8
DEFAULT_STOP_GRACE = 10.0
ROUTE_HEADER = "X-Mintaka-Route"
_ROUTE_HEADER_KEY = ROUTE_HEADER.lower().encode("latin-1")
_INVOKE_PREFIX = "/endpoints/"
_INVOKE_SUFFIX = "/invocations"
_JSON_HEADER = (b"content-type", b"application/json")
_PredictorKey = tuple[str, tuple[str, ...], bool]  # artifact digest, features, pickle allowed
_HTTP_ANSWER_SLACK = 1.0  # seconds past the stop grace for uvicorn to send stop()'s answers
_HTTP_STOP_SLACK = 5.0  # seconds past the stop grace for uvicorn to close once it has cancelled
_FREE_PORT_ATTEMPTS = 5  # for port 0: the port the first address got may be taken on another


@dataclass
class LoadedRoute:
    route: Route
    version: ModelVersion
    predictor: Predictor


@dataclass
class EndpointRuntime:
    name: str
    incarnation: str  # which endpoint of this name (see ``local_endpoints.incarnation``)
    config_version: int
    fingerprint: str  # the stored configuration it was built from (see ``_fingerprint``)
    routes: dict[str, LoadedRoute]
    traffic: TrafficMap
    killed: bool
    log_inputs: bool
    pool: WorkerPool  # its configuration's prediction workers, kept as its kill switch moves
    router: WeightedRouter = field(init=False)
    sampler: ShadowSampler = field(init=False)

    def __post_init__(self) -> None:
        self.router = WeightedRouter(self.traffic.weights)
        self.sampler = ShadowSampler(self.traffic.shadow_percent if self.traffic.shadow else 0)


def _fingerprint(row: Any) -> str:
    """An endpoint row's configuration as a whole, with the identity of the endpoint it is."""
    return json.dumps(
        [
            row.incarnation,
            row.config_version,
            row.updated_at,
            row.routes,
            row.traffic,
            row.killed,
            row.capture,
        ],
        sort_keys=True,
        default=str,
    )


def _same_incarnation(runtime: EndpointRuntime, row: Any) -> bool:
    """Whether ``row`` is the configuration ``runtime`` was built from, or a later one of the
    same endpoint: the same identity, at its config version or past it. Config versions alone
    cannot tell: one deleted and made again starts at 1 again, and may be changed past the
    version of the one it replaces before the server looks."""
    return bool(
        row.incarnation == runtime.incarnation and row.config_version >= runtime.config_version
    )


def _with_kill_switch(runtime: EndpointRuntime, row: Any) -> EndpointRuntime:
    """``runtime`` with the kill switch of the stored ``row`` of the endpoint it serves, and
    its stored traffic where ``runtime`` has loaded every route that traffic reaches (see
    :func:`_servable_traffic`). It also keeps an endpoint's previous configuration serving
    while its new one cannot load, switched as the store says now: neither a kill nor a kill
    that puts known-good traffic back waits for models to load."""
    killed = bool(row.killed)
    traffic = _servable_traffic(runtime, row) or runtime.traffic
    if killed == runtime.killed and traffic == runtime.traffic:
        return runtime
    return replace(runtime, killed=killed, traffic=traffic)


def _servable_traffic(runtime: EndpointRuntime, row: Any) -> TrafficMap | None:
    """The stored ``row``'s traffic if ``runtime`` can serve it as it is: each route it sends
    live or shadow traffic to is loaded there with the model version the row names for it.
    None if any is not (it waits for the configuration to load)."""
    traffic = TrafficMap(**row.traffic)
    stored = {spec["name"]: Route(**spec) for spec in row.routes}
    reached = [name for name, weight in traffic.weights.items() if weight > 0]
    if traffic.shadow:
        reached.append(traffic.shadow)
    for name in reached:
        loaded = runtime.routes.get(name)
        wanted = stored.get(name)
        if loaded is None or wanted is None:
            return None
        if (loaded.route.model, loaded.route.version) != (wanted.model, wanted.version):
            return None
    return traffic


def _as_stored(
    runtimes: Mapping[str, EndpointRuntime], rows: Mapping[str, Any]
) -> dict[str, EndpointRuntime]:
    """``runtimes`` as the stored ``rows`` say now, without loading anything: each with its
    endpoint's kill switch (and traffic, where it has the models), and those of an endpoint
    gone, or deleted and made again under its name, left out: they serve nothing more, not
    even while the new one's models load."""
    return {
        name: _with_kill_switch(runtime, rows[name])
        for name, runtime in runtimes.items()
        if name in rows and rows[name].incarnation == runtime.incarnation
    }


class InferenceServer:
    def __init__(
        self,
        platform: Platform,
        *,
        poll_interval: float = 0.25,
        shadow_workers: int = 2,
        shadow_queue: int = 64,
        allow_pickle: bool = False,
        trusted_types: tuple[str, ...] = (),
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        predict_workers: int = DEFAULT_PREDICT_WORKERS,
        stop_grace: float = DEFAULT_STOP_GRACE,
    ) -> None:
        from mintaka.local.backend import LocalBackend

        if not isinstance(platform.backend, LocalBackend):
            raise ValidationError("the inference server serves the local backend's endpoints")
        if max_body_bytes < 1:
            raise ValidationError(f"max_body_bytes must be at least 1, not {max_body_bytes}")
        if predict_workers < 1:
            raise ValidationError(f"predict_workers must be at least 1, not {predict_workers}")
        if not (math.isfinite(stop_grace) and stop_grace >= 0):
            raise ValidationError(f"stop_grace must be a number of seconds, not {stop_grace}")
        self.stop_grace = stop_grace
        self.max_body_bytes = max_body_bytes
        self.platform = platform
        self.backend: LocalBackend = platform.backend
        self.poll_interval = poll_interval
        self.allow_pickle = allow_pickle
        self.trusted_types = trusted_types
        self.endpoints: dict[str, EndpointRuntime] = {}
        self._predictors: dict[_PredictorKey, Predictor] = {}
        self._wanted: set[_PredictorKey] = set()  # the models the current look asked for
        self._reload_lock = threading.Lock()
        self._swap_lock = threading.Lock()  # guards replacing self.endpoints
        self._seen: tuple[tuple[str, str], ...] | None = None  # every endpoint's fingerprint
        # Endpoints whose configuration could not be loaded, by the config version that failed
        # (said once, tried again when it changes), and those among them that route to a model
        # the store does not record: tried again at every look, since recording it (adoption)
        # makes them load without any change to the endpoint.
        self._failed: dict[str, str] = {}
        self._unrecorded: set[str] = set()
        # Endpoints whose configuration could not be loaded because the store failed meanwhile
        # (busy, or failing), by the configuration tried: nothing is wrong with it, so it is
        # tried again at every look until it loads, and said once per stretch of failures.
        self._store_failed: dict[str, str] = {}
        self.predlog = PredictionLog(
            platform.store, spill=platform.home / "predictions-spill.jsonl"
        )
        self.predict_workers = predict_workers
        self._switch_pool = WorkerPool(1, "mintaka-kill-switches")
        self._shadow_pool = WorkerPool(shadow_workers, "mintaka-shadow")
        self._shadow_slots = threading.BoundedSemaphore(shadow_queue)
        self._stop = threading.Event()
        self._stopping = False  # set once stop() begins: shadow copies still waiting are dropped
        self._pools_closed = False  # set once stop() has shut the prediction pools down
        # Set, on the HTTP server's event loop, once stop() answers what is left (see
        # ``_until_stopped``); made by the first handler that waits on it.
        self._given_up: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None
        self._poller: threading.Thread | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url: str | None = None  # the first of urls
        self.urls: list[str] = []  # one per address it listens on, all on one port
        self._marker: Path | None = None  # this server's announcement, while it serves
        self.registry = CollectorRegistry()
        labels = ["endpoint", "route"]
        self.requests = Counter(
            "mintaka_requests", "Requests served", [*labels, "status"], registry=self.registry
        )
        self.errors = Counter("mintaka_errors", "Failed requests", labels, registry=self.registry)
        self.latency = Histogram(
            "mintaka_request_latency_seconds",
            "Model latency per request",
            labels,
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
        )
        self.shadow_dropped = Counter(
            "mintaka_shadow_dropped", "Shadow copies dropped", ["endpoint"], registry=self.registry
        )
        self._children: dict[tuple[object, ...], Any] = {}
        self._routes = Starlette(
            routes=[
                HttpRoute("/health", self._health, methods=["GET"]),
                HttpRoute("/metrics", self._metrics, methods=["GET"]),
                HttpRoute("/endpoints", self._list, methods=["GET"]),
                HttpRoute("/-/reload", self._reload, methods=["POST"]),
                HttpRoute("/-/kill-switches", self._kill_switches_now, methods=["POST"]),
                HttpRoute("/endpoints/{name}/invocations", self._invoke, methods=["POST"]),
            ],
            exception_handlers={HTTPException: _http_error, StoreError: _store_unavailable},
        )
        self.reload()

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI application: invocations go straight to their handler, the rest to routing.

        An invocation is the hot path: Starlette's routing, request and response objects cost
        more than the rest of the request, so it is served on the raw ASGI interface.
        """
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            if path.startswith(_INVOKE_PREFIX) and path.endswith(_INVOKE_SUFFIX):
                name = path[len(_INVOKE_PREFIX) : -len(_INVOKE_SUFFIX)]
                if name and "/" not in name:
                    await self._invoke_asgi(name, scope, receive, send)
                    return
        await self._routes(scope, receive, send)

    def _child(self, metric: MetricWrapperBase, *labels: str) -> Any:
        """``metric.labels(*labels)``, bound once per label set (the hot path reuses it)."""
        key = (metric, *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    # -- configuration ----------------------------------------------------------------------

    def reload(self, force: bool = False) -> None:
        """Re-read endpoint configuration if any endpoint changed since the last look.

        While another reload holds the lock (loading models, which may take a while), the kill
        switches are applied first, without it: a kill never waits for models to load. An
        uncontended look reads the endpoints once."""
        if not self._reload_lock.acquire(blocking=False):
            self._apply_kill_switches()
            self._reload_lock.acquire()
        try:
            self._look(force)
        finally:
            self._reload_lock.release()

    def _look(self, force: bool) -> None:
        """:meth:`reload`'s work, under the reload lock."""
        rows = self._read_endpoints()
        marker = tuple(sorted((row.name, _fingerprint(row)) for row in rows))
        retry = self._unrecorded or self._store_failed
        if marker == self._seen and not force and not retry:
            return
        self._apply_kill_switches()  # an endpoint gone stops being served before any loading
        fresh: dict[str, EndpointRuntime] = {}
        failed: dict[str, str] = {}
        unrecorded: set[str] = set()
        store_failed: dict[str, str] = {}
        self._wanted = set()
        for row in rows:
            current = self.endpoints.get(row.name)
            fingerprint = _fingerprint(row)
            if current is not None and current.fingerprint == fingerprint:
                fresh[row.name] = current
                continue
            # What serves while this configuration cannot load: the endpoint's previous one,
            # never that of an endpoint deleted since under the same name.
            previous = current if current is not None and _same_incarnation(current, row) else None
            known_bad = self._failed.get(row.name) == fingerprint
            again = row.name in self._unrecorded or row.name in self._store_failed
            if known_bad and not force and not again:
                failed[row.name] = fingerprint  # e.g. bytes that fail their digest:
                if previous is not None:  # not re-read until the endpoint changes
                    fresh[row.name] = _with_kill_switch(previous, row)
                continue
            try:
                fresh[row.name] = self._runtime(row)
            except StoreError as exc:  # the store's failure, not the configuration's
                store_failed[row.name] = fingerprint
                if known_bad:
                    failed[row.name] = fingerprint
                if self._store_failed.get(row.name) != fingerprint:  # said once per stretch
                    self._log_unloaded(row.name, exc, previous is not None)
                if previous is not None:
                    fresh[row.name] = _with_kill_switch(previous, row)
            except Exception as exc:  # one endpoint's models must not stop the others
                failed[row.name] = fingerprint
                if isinstance(exc, NotFound):
                    unrecorded.add(row.name)
                if not known_bad:  # said once per configuration
                    self._log_unloaded(row.name, exc, previous is not None)
                if previous is not None:
                    fresh[row.name] = _with_kill_switch(previous, row)
        self._swap(fresh)
        self._forget_unused_predictors()
        self._failed = failed
        self._unrecorded = unrecorded
        self._store_failed = store_failed
        self._seen = marker

    def _forget_unused_predictors(self) -> None:
        """Drop the loaded models that no endpoint served now uses, nor this look asked for
        (an endpoint that cannot load yet keeps the ones it has): those of endpoints gone or
        of configurations replaced would otherwise stay in memory for the server's life."""
        served = {
            id(loaded.predictor)
            for runtime in self.endpoints.values()
            for loaded in runtime.routes.values()
        }
        self._predictors = {
            key: predictor
            for key, predictor in self._predictors.items()
            if key in self._wanted or id(predictor) in served
        }

    def _swap(self, fresh: dict[str, EndpointRuntime]) -> None:
        """Serve ``fresh`` as the store holds its endpoints now (after any loading). Once
        :meth:`stop` has shut the prediction pools down, a reload that outlived it takes no more
        work: the pools of the configurations it loaded are shut down too."""
        with self._swap_lock:
            self._serve(fresh)
            if self._pools_closed:
                for runtime in self.endpoints.values():
                    runtime.pool.abandon(self._stopping_answer)

    def _apply_kill_switches(self) -> None:
        """Serve the endpoints served now as the store holds them now, loading nothing: kill
        switches (and traffic among the models loaded) in force, and endpoints deleted (or
        made again) no longer served, even while a reload loads models for another change."""
        with self._swap_lock:  # never replaces what a finishing reload just put in place
            self._serve(self.endpoints)

    def _serve(self, runtimes: dict[str, EndpointRuntime]) -> None:
        """Serve ``runtimes`` as stored now (under ``_swap_lock``). Each configuration has a
        prediction pool of its own, made with it before it is served: the pool of one no
        longer served is shut down without waiting (predictions under way finish), and hands
        the requests queued on it to the endpoint's new configuration, whose workers are not
        held by a model of the old one that does not return. Those queued for an endpoint no
        longer served, or deleted and made again, are refused (404) at once."""
        retired = self.endpoints
        self.endpoints = _as_stored(runtimes, self._stored_rows())
        for name, runtime in retired.items():
            current = self.endpoints.get(name)
            if current is None or current.incarnation != runtime.incarnation:
                runtime.pool.refuse_queued(functools.partial(self._refusal, name, None))
            elif current.pool is not runtime.pool:
                runtime.pool.hand_over(current.pool)

    def _stored_rows(self) -> dict[str, Any]:
        return {row.name: row for row in self._read_endpoints()}

    def _read_endpoints(self) -> list[Any]:
        """Every stored endpoint row, read in the backend's ``Transactions``: a busy or failing
        store is a ``StoreError`` (answered 503), never a driver's own exception."""
        with self.backend.transactions.read() as conn:
            return list(conn.execute(select(local_endpoints)).all())

    @staticmethod
    def _log_unloaded(name: str, exc: Exception, kept: bool) -> None:
        still = "; still serving its previous configuration" if kept else ""
        if isinstance(exc, NotFound):  # e.g. an endpoint made outside Mintaka, not adopted yet
            log.warning(
                "endpoint %s is not served until Mintaka records what it serves (%s); "
                "`mintaka adopt` brings it under management%s",
                name,
                exc,
                still,
            )
        elif isinstance(exc, StoreError):  # tried again at every look until it loads
            log.warning("endpoint %s not loaded yet: %s; trying again%s", name, exc, still)
        elif isinstance(exc, MintakaError):
            log.error("endpoint %s not reloaded: %s%s", name, exc, still)
        else:  # a model's own code failed to load: its traceback is the useful part
            log.error("endpoint %s not reloaded: %r%s", name, exc, still, exc_info=exc)

    def _runtime(self, row: Any) -> EndpointRuntime:
        traffic = TrafficMap(**row.traffic)
        routes: dict[str, LoadedRoute] = {}
        for spec in row.routes:
            route = Route(**spec)
            version = self.platform.get_model_version(route.model, route.version)
            routes[route.name] = LoadedRoute(route, version, self._predictor(version))
        capture = row.capture or {}
        return EndpointRuntime(
            name=row.name,
            incarnation=row.incarnation,
            config_version=row.config_version,
            fingerprint=_fingerprint(row),
            routes=routes,
            traffic=traffic,
            killed=bool(row.killed),
            log_inputs=bool(capture.get("capture_inputs", True)),
            pool=WorkerPool(self.predict_workers, f"mintaka-predict-{row.name}"),
        )

    def _predictor(self, version: ModelVersion) -> Predictor:
        """The version's model, loaded once per bytes, features and pickle permission. Pickle
        loads only where the server was started with ``allow_pickle`` and the policy's tier of
        the version allows it (``allow_pickle`` on the tier)."""
        features = tuple(version.signature.inputs)
        tier_allows = self.platform.governance.policy.controls(version.risk_tier).allow_pickle
        allow = self.allow_pickle and tier_allows
        key = (version.artifact_digest, features, allow)
        self._wanted.add(key)
        cached = self._predictors.get(key)
        if cached is None:
            stored = self.platform.artifacts.verify(version.artifact_digest)
            if self.allow_pickle and not tier_allows and pickle_files(stored.content):
                raise UnsafeArtifact(
                    f"{version.ref} holds pickle-family files, and the policy's "
                    f"{version.risk_tier.value} tier does not allow pickle (allow_pickle)"
                )
            cached = load_predictor(
                stored.content,
                version.flavor,
                features=features,
                trusted_types=self.trusted_types,
                allow_pickle=allow,
            )
            self._predictors[key] = cached
        return cached

    def _poll(self) -> None:
        """Reload every ``poll_interval`` seconds until stopped. A store that cannot be read
        (busy, or failing) is said once per stretch, not at every poll: each poll tries again."""
        store_failing = False
        while not self._stop.wait(self.poll_interval):
            try:
                self.reload()
            except StoreError as exc:
                if not store_failing:
                    log.warning("cannot look at the endpoints: %s; trying again at each poll", exc)
                store_failing = True
                continue
            except Exception:
                log.exception("reloading endpoint configuration failed")
            if store_failing:
                log.warning("the store answers again: endpoint configuration is picked up")
            store_failing = False

    # -- HTTP handlers ----------------------------------------------------------------------

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "endpoints": sorted(self.endpoints)})

    async def _metrics(self, request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    async def _reload(self, request: Request) -> Response:
        """Re-read endpoint configuration now (the local backend calls this after a change).

        The reload (which may load models, or wait for one the poller is loading) runs on a
        worker thread: requests to every endpoint go on being answered meanwhile. One still
        waiting when :meth:`stop` gives up on the requests left is answered 503."""
        if not await self._until_stopped(self.reload):
            status, body = self._stopping_answer()
            return JSONResponse(body, status_code=status)
        return JSONResponse({"endpoints": sorted(self.endpoints)})

    async def _until_stopped(self, work: Callable[[], object]) -> bool:
        """Run ``work`` on a worker thread and wait for it, or until :meth:`stop` gives up on
        the requests left (False then; ``work`` goes on to its end, unwaited for): a handler
        waiting for models to load is answered, rather than cancelled by the HTTP server."""
        given_up = self._given_up_event()
        running = asyncio.ensure_future(run_in_threadpool(work))
        stopped = asyncio.ensure_future(given_up.wait())
        try:
            await asyncio.wait({running, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if running.done():
            running.result()
            return True
        running.add_done_callback(_drop_outcome)
        return False

    def _given_up_event(self) -> asyncio.Event:
        """The event :meth:`stop` sets once it answers what is left, made on the running event
        loop; already set where stop() got there first."""
        if self._given_up is None:
            self._given_up = (asyncio.get_running_loop(), asyncio.Event())
            if self._pools_closed:
                self._given_up[1].set()
        return self._given_up[1]

    async def _kill_switches_now(self, request: Request) -> Response:
        """Apply every endpoint's stored kill switch now (the local backend calls this after a
        kill). It never waits for the reload lock, which a reload loading models may hold for a
        while: a kill is in force when the call that pulled it returns, unless this answers 503
        (the store could not be read; the caller is warned, and the next look applies it). The
        rest of the change (its config version) is picked up by the next reload. It runs on a
        thread of its own, never waiting for one of the shared threads, which reloads (and
        invocations looking an endpoint up again) hold while they wait for the reload lock."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._switch_pool, self._apply_kill_switches)
        return JSONResponse({"killed": sorted(n for n, rt in self.endpoints.items() if rt.killed)})

    async def _list(self, request: Request) -> Response:
        return JSONResponse(
            {
                name: {
                    "routes": sorted(rt.routes),
                    "weights": rt.traffic.weights,
                    "shadow": rt.traffic.shadow,
                    "killed": rt.killed,
                    "config_version": rt.config_version,
                }
                for name, rt in self.endpoints.items()
            }
        )

    async def _invoke(self, request: Request) -> Response:
        # Reached only when the ASGI front door does not take the request (it always does for
        # POST); kept so that the routing table states every path the server answers.
        name = request.path_params["name"]
        await self._look_again(name)
        raw = await request.body()
        status, body = await self._answer_off_loop(name, raw, request.headers.get(ROUTE_HEADER))
        if isinstance(body, bytes):
            return Response(body, status_code=status, media_type="application/json")
        return JSONResponse(body, status_code=status)

    async def _answer_off_loop(
        self, name: str, raw: bytes, pinned: str | None
    ) -> tuple[int, dict[str, Any] | bytes]:
        """:meth:`_answer` on the prediction pool of the endpoint's configuration: the model's
        time is not the event loop's, nor any other endpoint's. A request the server refuses
        without its model (not served, killed) is answered here at once, never queued behind
        predictions."""
        runtime = self.endpoints.get(name)
        if runtime is None or runtime.killed:
            return self._refusal(name, runtime)
        work = functools.partial(self._answer, name, raw, pinned)
        try:
            answer = asyncio.get_running_loop().run_in_executor(runtime.pool, work)
        except RuntimeError:  # its pool was shut down since: the endpoint changed, or went
            if self._pools_closed:
                return self._stopping_answer()
            current = self.endpoints.get(name)
            if current is None or current.pool is runtime.pool:
                return self._refusal(name, None)
            return await self._answer_off_loop(name, raw, pinned)
        return await answer

    async def _look_again(self, name: str) -> None:
        """Reload, off the event loop, for an endpoint not served because the store did not
        record what it serves: it may have been recorded (adopted) since the last look."""
        if name not in self.endpoints and name in self._unrecorded:
            await self._until_stopped(self.reload)

    async def _invoke_asgi(self, name: str, scope: Scope, receive: Receive, send: Send) -> None:
        pinned = None
        declared = -1
        for key, value in scope["headers"]:
            if key == _ROUTE_HEADER_KEY:
                pinned = value.decode("latin-1")
            elif key == b"content-length" and value.isdigit():
                declared = int(value)
        limit = self.max_body_bytes
        too_large = declared > limit
        chunks: list[bytes] = []
        size = 0
        while not too_large:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                too_large = True
                break
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        answer: dict[str, Any] | bytes
        if too_large:
            chunks.clear()
            # counted under the endpoint only when it is served: a URL must not make a series
            self._child(self.requests, name if name in self.endpoints else "-", "-", "413").inc()
            status, answer = 413, {"error": f"request body over the limit of {limit} bytes"}
        else:
            try:
                await self._look_again(name)
            except StoreError as exc:
                status, answer = 503, {"error": str(exc)}
            else:
                status, answer = await self._answer_off_loop(name, b"".join(chunks), pinned)
        body = answer if isinstance(answer, bytes) else _json_bytes(answer)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [_JSON_HEADER, (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    def _archived(self, loaded: LoadedRoute) -> bool:
        """Whether the route's version is archived now (read from the store: archiving changes
        no endpoint, so the loaded configuration does not show it)."""
        route = loaded.route
        try:
            version = self.platform.get_model_version(route.model, route.version)
        except NotFound:
            return True
        return version.stage is Stage.ARCHIVED

    def _pinned_refusal(self, name: str, loaded: LoadedRoute) -> tuple[int, dict[str, Any]] | None:
        """The answer refusing a request pinned to ``loaded``'s route, counted; None when it
        takes it. An archived version takes no traffic (409); a store that cannot tell now
        (busy, or failing) is answered 503 with its own words, and the client may try again."""
        route = loaded.route
        try:
            archived = self._archived(loaded)
        except StoreError as exc:
            log.warning("endpoint %s route %s: %s", name, route.name, exc)
            self._child(self.requests, name, route.name, "503").inc()
            return 503, {"error": str(exc)}
        if not archived:
            return None
        self._child(self.requests, name, route.name, "409").inc()
        return 409, {
            "error": f"route {route.name!r} serves {route.model}:{route.version}, which is "
            "archived: an archived version takes no traffic"
        }

    def _refusal(self, name: str, runtime: EndpointRuntime | None) -> tuple[int, dict[str, Any]]:
        """The answer for an endpoint that takes no request now: not served, or killed."""
        if runtime is None:
            return 404, {"error": f"endpoint {name!r} is not served"}
        self._child(self.requests, name, "-", "503").inc()
        return 503, {"error": f"endpoint {name!r} is killed"}

    def _answer(
        self, name: str, raw: bytes, pinned: str | None
    ) -> tuple[int, dict[str, Any] | bytes]:
        """Status and JSON body for one invocation of endpoint ``name``."""
        runtime = self.endpoints.get(name)
        if runtime is None or runtime.killed:
            return self._refusal(name, runtime)
        try:
            rows = _rows(_read_json(raw))
        except (ValueError, ValidationError, RecursionError) as exc:  # also JSON nested too deep
            self._child(self.requests, name, "-", "400").inc()
            detail = "JSON nested too deep" if isinstance(exc, RecursionError) else exc
            return 400, {"error": f"invalid request: {detail}"}
        route_name = pinned if pinned else runtime.router.pick()
        if route_name is None or route_name not in runtime.routes:
            # labelled "-": a route name from a request header must not make a metric series
            status = 404 if pinned else 503
            self._child(self.requests, name, "-", str(status)).inc()
            message = (
                f"route {pinned!r} not on endpoint {name!r}" if pinned else "no route takes traffic"
            )
            return status, {"error": message}
        if pinned:
            refused = self._pinned_refusal(name, runtime.routes[route_name])
            if refused is not None:
                return refused
        shadow = runtime.traffic.shadow
        mirrored = None
        if shadow and not pinned and shadow in runtime.routes and runtime.sampler.take():
            # The shadow's own copy, taken first: what either model does to its rows (pyfunc
            # code may change them) never reaches the other's answer or logged inputs.
            mirrored = copy.deepcopy(rows)
        status, body = self._predict(runtime, runtime.routes[route_name], rows, shadow=False)
        if mirrored is not None and shadow is not None:
            self._mirror(runtime, runtime.routes[shadow], mirrored)
        return status, body

    def _predict(
        self,
        runtime: EndpointRuntime,
        loaded: LoadedRoute,
        rows: list[dict[str, Any]],
        shadow: bool,
    ) -> tuple[int, dict[str, Any] | bytes]:
        """Answer ``rows`` with the route's model, log a record per row and count the request.

        A successful answer comes back as its JSON bytes, encoded before anything is logged: an
        output JSON cannot carry (NaN, infinity) is the model's failure, a 500 whose records say
        ``error``, not a 200 logged as ``ok``."""
        route = loaded.route
        started = time.perf_counter()
        try:
            outputs = loaded.predictor.predict(rows)
            status, state = 200, "ok"
        except ValidationError as exc:
            outputs, status, state, error = [], 400, "invalid", str(exc)
        except Exception as exc:
            log.warning("model %s failed: %s", loaded.version.ref, exc)
            outputs, status, state, error = [], 500, "error", f"model failed: {exc}"
        elapsed = time.perf_counter() - started
        now = self.platform.clock.now()
        new_id = self.platform.ids.new
        ids = [new_id("pred") for _ in rows]
        answer = b""
        if status == 200:
            try:
                answer = _json_bytes(
                    {
                        "endpoint": runtime.name,
                        "route": route.name,
                        "model": route.model,
                        "version": route.version,
                        "predictions": [
                            {"id": i, "output": o} for i, o in zip(ids, outputs, strict=True)
                        ],
                    }
                )
            except (ValueError, TypeError) as exc:  # e.g. NaN, which JSON cannot carry
                log.warning("model %s answered what JSON cannot carry: %s", loaded.version.ref, exc)
                outputs, status, state = [], 500, "error"
                error = f"model output is not JSON: {exc}"
        append = self.predlog.append
        latency_ms = elapsed * 1000.0
        for index, row in enumerate(rows):
            append(
                Prediction(
                    ids[index],
                    runtime.name,
                    route.name,
                    route.model,
                    route.version,
                    loaded.version.id,
                    row,
                    runtime.log_inputs,
                    outputs[index] if outputs else None,
                    state,
                    int(shadow),
                    latency_ms,
                    now,
                )
            )
        if not shadow:
            self._child(self.requests, runtime.name, route.name, str(status)).inc()
            self._child(self.latency, runtime.name, route.name).observe(elapsed)
            if status >= 500:
                self._child(self.errors, runtime.name, route.name).inc()
        if status != 200:  # the ids of the failed rows' records, for tracing them
            return status, {"error": error, "route": route.name, "prediction_ids": ids}
        return status, answer

    def _mirror(
        self, runtime: EndpointRuntime, loaded: LoadedRoute, rows: list[dict[str, Any]]
    ) -> None:
        """Hand a copy of ``rows`` to the shadow route, unless its pool is saturated. A copy
        that reaches a worker once the endpoint no longer shadows that route is dropped: a kill
        stops the shadow model too, as do a stop and the endpoint going."""
        if not self._shadow_slots.acquire(blocking=False):
            self.shadow_dropped.labels(runtime.name).inc()
            return

        def run() -> None:
            try:
                if self._stopping or not self._shadows(runtime, loaded.route.name):
                    self.shadow_dropped.labels(runtime.name).inc()
                    return
                self._predict(runtime, loaded, rows, shadow=True)
            finally:
                self._shadow_slots.release()

        self._shadow_pool.submit(run)

    def _shadows(self, runtime: EndpointRuntime, route: str) -> bool:
        """Whether the endpoint ``runtime`` served still mirrors to ``route`` now: served, not
        killed, not deleted (and made again) since, and its traffic still shadowing that route."""
        current = self.endpoints.get(runtime.name)
        return (
            current is not None
            and not current.killed
            and current.incarnation == runtime.incarnation
            and current.traffic.shadow == route
        )

    # -- life cycle ---------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a background thread; returns the base URL once the sockets are bound (the
        first: ``urls`` holds one per address ``host`` names, each announced)."""
        import uvicorn

        config = uvicorn.Config(
            self.app,
            host=host,
            port=port,
            log_level="warning",
            lifespan="off",
            access_log=False,
            interface="asgi3",
            # uvicorn takes any number of seconds here, though it declares an int; past the
            # grace, stop() answers what is left, which uvicorn is given the time to send
            timeout_graceful_shutdown=cast(int, self.stop_grace + _HTTP_ANSWER_SLACK),
        )
        listening = _listening_sockets(host, port)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, args=(listening,), name="mintaka-http", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._server.should_exit = True
                for sock in listening:
                    sock.close()
                raise MintakaError(f"the inference server did not start on {host}:{port}")
            time.sleep(0.01)
        self.urls = [_url(sock.getsockname()) for sock in listening]
        self.url = self.urls[0]
        self._announce()
        self._poller = threading.Thread(target=self._poll, name="mintaka-poll", daemon=True)
        self._poller.start()
        return self.url

    def _announce(self) -> None:
        self._marker = announce(self.backend.path, self.urls)

    def stop(self) -> None:
        """Stop serving, then flush every logged prediction to the store.

        Requests under way, and shadow copies under way, get ``stop_grace`` seconds to finish;
        shadow copies still waiting for a worker are dropped. A request not answered by then,
        waiting for a worker or for its model, is answered 503 (the server is stopping). A model
        still predicting is left behind (on a daemon thread, which keeps no process alive): a
        model that never returns cannot keep the server from stopping. What it answers after
        that is not logged."""
        deadline = time.monotonic() + self.stop_grace
        self._stopping = True
        self._stop.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:  # the requests under way have the grace to finish
            self._thread.join(timeout=_left(deadline))
        if self._poller is not None:
            self._poller.join(timeout=_left(deadline))
        with self._swap_lock:  # what is queued there now, no request waits for any more
            self._pools_closed = True
            pools = [runtime.pool for runtime in self.endpoints.values()]
            for pool in pools:
                pool.abandon(self._stopping_answer)
            if self._given_up is not None:  # handlers waiting for a reload: answered too
                loop, given_up = self._given_up
                with contextlib.suppress(RuntimeError):  # its loop has closed already
                    loop.call_soon_threadsafe(given_up.set)
        self._switch_pool.shutdown(wait=False, cancel_futures=True)
        self._shadow_pool.shutdown(wait=False)
        if self._thread is not None:  # uvicorn sends the answers just given, then closes
            self._thread.join(timeout=_HTTP_STOP_SLACK)
        finished = [pool.join(_left(deadline)) for pool in [*pools, self._shadow_pool]]
        if not all(finished):
            log.warning(
                "stopped with models still predicting after the %s s grace; left behind",
                self.stop_grace,
            )
        self.predlog.close()
        if self._marker is not None:
            self._marker.unlink(missing_ok=True)
            self._marker = None

    def _stopping_answer(self) -> tuple[int, dict[str, Any]]:
        """The answer to a request the server stopped before its model answered it."""
        return 503, {"error": "the inference server is stopping; try again once it is back"}

    def __enter__(self) -> InferenceServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _drop_outcome(future: asyncio.Future[Any]) -> None:
    """Take the outcome of work no handler waits for any more: a failure is logged, not left
    as a future's exception never retrieved."""
    if not future.cancelled() and future.exception() is not None:
        log.error("work left behind by the stopped server failed", exc_info=future.exception())


def _left(deadline: float) -> float:
    """The seconds from now until ``deadline`` (a ``time.monotonic`` reading), none if past."""
    return max(0.0, deadline - time.monotonic())


def _json_bytes(content: Any) -> bytes:
    """JSON exactly as Starlette's ``JSONResponse`` renders it."""
    return json.dumps(
        content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


async def _http_error(request: Request, exc: Exception) -> Response:
    """An unknown path or method answers in JSON, like every other error of the server."""
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _store_unavailable(request: Request, exc: Exception) -> Response:
    """A store that cannot be read now (busy, or failing) answers 503 with the store's own
    words: the configuration served stays as it was, and the client may try again."""
    log.warning("%s %s: %s", request.method, request.url.path, exc)
    return JSONResponse({"error": str(exc)}, status_code=503)


def _not_json(constant: str) -> Any:
    """Python's JSON reader takes ``NaN`` and ``Infinity``; JSON has no such numbers."""
    raise ValueError(f"{constant} is not a JSON number")


def _finite_float(text: str) -> float:
    """A JSON number with a fraction or exponent, refused when beyond a float's range: Python
    reads ``1e999`` as infinity, which no JSON store (PostgreSQL's ``json``) takes back."""
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"{text} is beyond the range of a number")
    return number


# Built once: ``json.loads`` with a keyword builds a decoder on every call (the hot path).
_DECODER = json.JSONDecoder(parse_constant=_not_json, parse_float=_finite_float)


def _read_json(raw: bytes) -> Any:
    """``raw`` as ``json.loads`` reads bytes (UTF-8, -16 or -32), refusing NaN and Infinity,
    and numbers too large for a float."""
    return _DECODER.decode(raw.decode(json.detect_encoding(raw), "surrogatepass"))


def _rows(payload: Any) -> list[dict[str, Any]]:
    if not isinstance(payload, Mapping) or "inputs" not in payload:
        raise ValidationError('expected a JSON object {"inputs": row or [rows]}')
    inputs = payload["inputs"]
    rows = [inputs] if isinstance(inputs, Mapping) else inputs
    if not isinstance(rows, list) or not rows or not all(isinstance(r, Mapping) for r in rows):
        raise ValidationError("inputs must be an object or a non-empty list of objects")
    if len(rows) > 10_000:
        raise ValidationError("at most 10,000 rows per request")
    return [dict(r) for r in rows]


def _listening_sockets(host: str, port: int) -> list[socket.socket]:
    """The server's sockets, bound here rather than in uvicorn's thread, so that an address in
    use or not available is a clear error of the start call, not a dead server thread.

    One socket per address ``host`` resolves to, as ``asyncio``'s ``create_server`` binds
    (``localhost`` may be both 127.0.0.1 and ::1), all on one port: the one asked for, or the
    one the first socket was given for port 0. None is inheritable: a process a model starts
    does not keep the server's port."""
    try:
        addresses = _addresses(host, port)
    except OSError as exc:
        raise _cannot_listen(host, port, exc) from None
    for attempt in range(_FREE_PORT_ATTEMPTS if port == 0 else 1):
        sockets: list[socket.socket] = []
        try:
            for family, address in addresses:
                chosen = sockets[0].getsockname()[1] if sockets else port
                sockets.append(_bound(family, (address[0], chosen, *address[2:])))
        except OSError as exc:
            for sock in sockets:
                sock.close()
            if not sockets or attempt == _FREE_PORT_ATTEMPTS - 1 or port != 0:
                raise _cannot_listen(host, port, exc) from None
            continue
        return sockets
    raise AssertionError("unreachable")  # pragma: no cover


def _addresses(host: str, port: int) -> list[tuple[int, tuple[Any, ...]]]:
    """Every distinct (family, address) ``host`` names for listening, in resolver order."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    return list(dict.fromkeys((int(family), tuple(addr)) for family, _, _, _, addr in infos))


def _bound(family: int, address: tuple[Any, ...]) -> socket.socket:
    """A TCP socket of ``family`` bound to ``address``, as ``asyncio``'s ``create_server`` makes
    it (an IPv6 one takes IPv6 only, leaving IPv4 to a socket of its own). Its protocol is
    named (``IPPROTO_TCP``), as ``create_server``'s are: ``asyncio`` turns Nagle's algorithm
    off only on connections whose socket says TCP, and with it on, an answer written as
    headers then body waits for the client to acknowledge the headers (~40 ms on Linux)."""
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def _cannot_listen(host: str, port: int, exc: OSError) -> ConfigurationError:
    return ConfigurationError(
        f"the inference server cannot listen on {host}:{port}: {exc.strerror or exc}; "
        "choose another --port (0 picks a free one) or --host"
    )


def _url(sockname: tuple[Any, ...]) -> str:
    """The base URL of a bound socket; an IPv6 address goes in brackets (RFC 3986), its zone
    id, if any, escaped (RFC 6874)."""
    host, port = str(sockname[0]), int(sockname[1])
    if ":" in host:
        host = f"[{host.replace('%', '%25')}]"
    return f"http://{host}:{port}"


def serve_forever(
    server: InferenceServer,
    host: str,
    port: int,
    serving: Callable[[Sequence[str]], None] | None = None,
) -> None:
    """Run until interrupted (the ``mintaka serve`` command).

    ``serving`` is told the server's URLs once it is bound, one per address ``host`` names
    (with port 0, the only place the port it got is said). Ctrl-C and SIGTERM (what process
    managers and container runtimes send) both stop cleanly: the prediction log is drained to
    the store before the process exits.
    """
    server.start(host, port)
    log.info("serving on %s", ", ".join(server.urls))
    if serving is not None:
        serving(server.urls)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: server._stop.set())
    try:
        while server._thread is not None and server._thread.is_alive():
            if server._stop.wait(timeout=0.5):
                break
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
