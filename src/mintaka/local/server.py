"""The local inference server: every endpoint of the local backend over HTTP on 127.0.0.1.

- ``POST /endpoints/{name}/invocations`` with ``{"inputs": {...}}`` (one row) or
  ``{"inputs": [{...}, ...]}`` (a batch) answers ``{"predictions": [{"id", "output"}], "model",
  "version", "route", "endpoint"}``; each row gets its own prediction id. The header
  ``X-Mintaka-Route`` pins a request to one route.
- ``GET /health`` and ``GET /metrics`` (Prometheus text: requests, errors and a latency histogram
  per endpoint and route).

Routes load their model from the artifact store after the digest is verified. Traffic follows the
endpoint's weights exactly (smooth weighted round-robin); a shadow route gets a copy of its share
of requests on a separate worker pool, its responses never returned and its failures never
surfaced; when the pool is saturated the copy is dropped instead of delaying the caller.
Configuration changes made by any process (traffic, routes, kill) are picked up within
``poll_interval`` seconds. Predictions are logged in batches off the request path.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy import func, select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route as HttpRoute

from mintaka.domain.registry import ModelVersion
from mintaka.domain.serving import Route, TrafficMap
from mintaka.errors import MintakaError, ValidationError
from mintaka.flavors.loader import Predictor, load_predictor
from mintaka.local.registry_db import local_endpoints
from mintaka.local.serving import SERVER_FILE
from mintaka.serving.predlog import PredictionLog, input_digest
from mintaka.serving.routing import ShadowSampler, WeightedRouter

if TYPE_CHECKING:
    import uvicorn

    from mintaka.local.backend import LocalBackend
    from mintaka.platform import Platform

log = logging.getLogger(__name__)
ROUTE_HEADER = "X-Mintaka-Route"


@dataclass
class LoadedRoute:
    route: Route
    version: ModelVersion
    predictor: Predictor


@dataclass
class EndpointRuntime:
    name: str
    config_version: int
    routes: dict[str, LoadedRoute]
    traffic: TrafficMap
    killed: bool
    log_inputs: bool
    router: WeightedRouter = field(init=False)
    sampler: ShadowSampler = field(init=False)

    def __post_init__(self) -> None:
        self.router = WeightedRouter(self.traffic.weights)
        self.sampler = ShadowSampler(self.traffic.shadow_percent if self.traffic.shadow else 0)


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
    ) -> None:
        from mintaka.local.backend import LocalBackend

        if not isinstance(platform.backend, LocalBackend):
            raise ValidationError("the inference server serves the local backend's endpoints")
        self.platform = platform
        self.backend: LocalBackend = platform.backend
        self.poll_interval = poll_interval
        self.allow_pickle = allow_pickle
        self.trusted_types = trusted_types
        self.endpoints: dict[str, EndpointRuntime] = {}
        self._predictors: dict[str, Predictor] = {}
        self._reload_lock = threading.Lock()
        self._seen_version: tuple[int, int] = (-1, -1)
        self.predlog = PredictionLog(
            platform.store, spill=platform.home / "predictions-spill.jsonl"
        )
        self._shadow_pool = ThreadPoolExecutor(shadow_workers, thread_name_prefix="mintaka-shadow")
        self._shadow_slots = threading.BoundedSemaphore(shadow_queue)
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url: str | None = None
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
        self.app = Starlette(
            routes=[
                HttpRoute("/health", self._health, methods=["GET"]),
                HttpRoute("/metrics", self._metrics, methods=["GET"]),
                HttpRoute("/endpoints", self._list, methods=["GET"]),
                HttpRoute("/-/reload", self._reload, methods=["POST"]),
                HttpRoute("/endpoints/{name}/invocations", self._invoke, methods=["POST"]),
            ]
        )
        self.reload()

    # -- configuration ----------------------------------------------------------------------

    def _config_marker(self) -> tuple[int, int]:
        with self.backend.engine.connect() as conn, conn.begin():
            row = conn.execute(
                select(func.count(), func.coalesce(func.sum(local_endpoints.c.config_version), 0))
            ).one()
        return int(row[0]), int(row[1])

    def reload(self, force: bool = False) -> None:
        """Re-read endpoint configuration if any endpoint changed since the last look."""
        with self._reload_lock:
            marker = self._config_marker()
            if marker == self._seen_version and not force:
                return
            with self.backend.engine.connect() as conn, conn.begin():
                rows = conn.execute(select(local_endpoints)).all()
            fresh: dict[str, EndpointRuntime] = {}
            for row in rows:
                current = self.endpoints.get(row.name)
                if current is not None and current.config_version == row.config_version:
                    fresh[row.name] = current
                    continue
                try:
                    fresh[row.name] = self._runtime(row)
                except MintakaError as exc:
                    log.error("endpoint %s not reloaded: %s", row.name, exc)
                    if current is not None:
                        fresh[row.name] = current
            self.endpoints = fresh
            self._seen_version = marker

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
            config_version=row.config_version,
            routes=routes,
            traffic=traffic,
            killed=bool(row.killed),
            log_inputs=bool(capture.get("capture_inputs", True)),
        )

    def _predictor(self, version: ModelVersion) -> Predictor:
        cached = self._predictors.get(version.artifact_digest)
        if cached is None:
            stored = self.platform.artifacts.verify(version.artifact_digest)
            cached = load_predictor(
                stored.content,
                version.flavor,
                features=tuple(version.signature.inputs),
                trusted_types=self.trusted_types,
                allow_pickle=self.allow_pickle,
            )
            self._predictors[version.artifact_digest] = cached
        return cached

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self.reload()
            except Exception:
                log.exception("reloading endpoint configuration failed")

    # -- HTTP handlers ----------------------------------------------------------------------

    async def _health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "endpoints": sorted(self.endpoints)})

    async def _metrics(self, request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)

    async def _reload(self, request: Request) -> Response:
        """Re-read endpoint configuration now (the local backend calls this after a change)."""
        self.reload()
        return JSONResponse({"endpoints": sorted(self.endpoints)})

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
        name = request.path_params["name"]
        runtime = self.endpoints.get(name)
        if runtime is None:
            return JSONResponse({"error": f"endpoint {name!r} is not served"}, status_code=404)
        if runtime.killed:
            self.requests.labels(name, "-", "503").inc()
            return JSONResponse({"error": f"endpoint {name!r} is killed"}, status_code=503)
        try:
            payload = json.loads(await request.body())
            rows = _rows(payload)
        except (ValueError, ValidationError) as exc:
            self.requests.labels(name, "-", "400").inc()
            return JSONResponse({"error": f"invalid request: {exc}"}, status_code=400)
        pinned = request.headers.get(ROUTE_HEADER)
        route_name = pinned if pinned else runtime.router.pick()
        if route_name is None or route_name not in runtime.routes:
            self.requests.labels(name, route_name or "-", "503").inc()
            message = (
                f"route {pinned!r} not on endpoint {name!r}" if pinned else "no route takes traffic"
            )
            return JSONResponse({"error": message}, status_code=404 if pinned else 503)
        loaded = runtime.routes[route_name]
        status, body = self._predict(runtime, loaded, rows, shadow=False)
        if (
            runtime.traffic.shadow
            and not pinned
            and runtime.traffic.shadow in runtime.routes
            and runtime.sampler.take()
        ):
            self._mirror(runtime, runtime.routes[runtime.traffic.shadow], rows)
        return JSONResponse(body, status_code=status)

    def _predict(
        self,
        runtime: EndpointRuntime,
        loaded: LoadedRoute,
        rows: list[dict[str, Any]],
        shadow: bool,
    ) -> tuple[int, dict[str, Any]]:
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
        now = self.platform.clock.now().isoformat()
        ids = [self.platform.ids.new("pred") for _ in rows]
        for index, row in enumerate(rows):
            self.predlog.append(
                {
                    "id": ids[index],
                    "endpoint": runtime.name,
                    "route": route.name,
                    "model": route.model,
                    "version": route.version,
                    "version_id": loaded.version.id,
                    "input_digest": input_digest(row),
                    "inputs": row if runtime.log_inputs else None,
                    "output": outputs[index] if outputs else None,
                    "status": state,
                    "shadow": int(shadow),
                    "latency_ms": elapsed * 1000.0,
                    "at": now,
                }
            )
        if not shadow:
            self.requests.labels(runtime.name, route.name, str(status)).inc()
            self.latency.labels(runtime.name, route.name).observe(elapsed)
            if status >= 500:
                self.errors.labels(runtime.name, route.name).inc()
        if status != 200:
            return status, {"error": error, "route": route.name}
        return status, {
            "endpoint": runtime.name,
            "route": route.name,
            "model": route.model,
            "version": route.version,
            "predictions": [{"id": i, "output": o} for i, o in zip(ids, outputs, strict=True)],
        }

    def _mirror(
        self, runtime: EndpointRuntime, loaded: LoadedRoute, rows: list[dict[str, Any]]
    ) -> None:
        if not self._shadow_slots.acquire(blocking=False):
            self.shadow_dropped.labels(runtime.name).inc()
            return

        def run() -> None:
            try:
                self._predict(runtime, loaded, rows, shadow=True)
            finally:
                self._shadow_slots.release()

        self._shadow_pool.submit(run)

    # -- life cycle ---------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve in a background thread; returns the base URL once the socket is bound."""
        import uvicorn

        config = uvicorn.Config(
            self.app, host=host, port=port, log_level="warning", lifespan="off", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="mintaka-http", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise MintakaError(f"the inference server did not start on {host}:{port}")
            time.sleep(0.01)
        bound = self._server.servers[0].sockets[0].getsockname()
        self.url = f"http://{bound[0]}:{bound[1]}"
        self._announce()
        self._poller = threading.Thread(target=self._poll, name="mintaka-poll", daemon=True)
        self._poller.start()
        return self.url

    def _announce(self) -> None:
        marker = self.backend.path / SERVER_FILE
        marker.write_text(json.dumps({"url": self.url, "pid": os.getpid()}))

    def stop(self) -> None:
        """Stop serving, then flush every logged prediction to the store."""
        self._stop.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=30)
        if self._poller is not None:
            self._poller.join(timeout=5)
        self._shadow_pool.shutdown(wait=True)
        self.predlog.close()
        marker = self.backend.path / SERVER_FILE
        if marker.exists() and self.url and self.url in marker.read_text():
            marker.unlink()

    def __enter__(self) -> InferenceServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


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


def serve_forever(server: InferenceServer, host: str, port: int) -> None:
    """Run until interrupted (the ``mintaka serve`` command)."""
    url = server.start(host, port)
    log.info("serving on %s", url)
    try:
        while server._thread is not None and server._thread.is_alive():
            server._thread.join(timeout=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
