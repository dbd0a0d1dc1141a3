"""The local backend's serving side: endpoint state in its own database, served by
:mod:`mintaka.local.server`, metrics and captured traffic read from the prediction log."""

from __future__ import annotations

import json
import logging
import math
import os
import statistics
from collections.abc import Sequence
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, delete, select, update

from mintaka.domain.monitoring import CaptureConfig, CapturedRecord
from mintaka.domain.registry import Flavor
from mintaka.domain.serving import Endpoint, EndpointMetrics, EndpointStatus, Route, TrafficMap
from mintaka.errors import BackendError, Conflict, NotFound, ValidationError
from mintaka.interfaces import (
    BackendContext,
    BatchScoring,
    CaptureSource,
    KillSwitch,
    MetricsSource,
    Serving,
    ShadowTraffic,
    TrafficSplit,
)
from mintaka.local.registry_db import local_endpoints, local_versions, new_incarnation
from mintaka.store.engine import Transactions
from mintaka.store.schema import model_versions, predictions

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

# Each running inference server announces itself in a file of its own under SERVERS_DIR
# (``<pid>-<port>.json``), so every server on one home hears of a change. SERVER_FILE is where
# earlier versions announced their one server: still read, never written.
SERVERS_DIR = "servers"
SERVER_FILE = "server.json"
ARTIFACTS_DIR = "artifacts"  # the home's artifact store (``platform.artifacts``)


@dataclass(frozen=True)
class Announcement:
    """A running inference server, as it announced itself: ``url`` is the first of ``urls``,
    one per address it listens on."""

    url: str
    pid: int | None
    marker: Path
    urls: tuple[str, ...]


def _not_applied(url: str, path: str, answer: httpx.Response) -> None:
    """Warn that the inference server at ``url`` answered ``path`` without applying the change:
    what it serves is as it was until its next look at the store succeeds."""
    try:
        reason = answer.json()["error"]
    except (ValueError, TypeError, KeyError):
        reason = answer.text[:200]
    log.warning(
        "the inference server at %s answered %s to %s: %s; the change is recorded, and in "
        "force there once its next look at the store succeeds",
        url,
        answer.status_code,
        path,
        reason,
    )


def announce(path: Path, urls: Sequence[str]) -> Path:
    """Record a server of this process listening at ``urls`` (each on one port); returns its
    file (``stop`` removes it). ``url``, the first, is what earlier versions read."""
    folder = path / SERVERS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / f"{os.getpid()}-{urls[0].rsplit(':', 1)[-1]}.json"
    staged = marker.with_suffix(".tmp")
    staged.write_text(json.dumps({"url": urls[0], "urls": list(urls), "pid": os.getpid()}))
    os.replace(staged, marker)
    return marker


def running_servers(path: Path) -> list[Announcement]:
    """The inference servers announced for this local backend. A file left by a process that
    is gone (killed before it could remove it) is removed, not returned."""
    markers = sorted((path / SERVERS_DIR).glob("*.json")) if (path / SERVERS_DIR).is_dir() else []
    found: list[Announcement] = []
    for marker in [*markers, path / SERVER_FILE]:
        try:
            data = json.loads(marker.read_text())
            url = str(data["url"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # absent, being replaced, or not an announcement
        pid = data.get("pid")
        pid = pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else None
        if pid is not None and not _alive(pid):
            with suppress(OSError):
                marker.unlink()
            continue
        urls = data.get("urls")
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls) or not urls:
            urls = [url]  # announced by an earlier version: its one address
        found.append(Announcement(url, pid, marker, tuple(urls)))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    except OverflowError:
        return False  # a number no process can have
    return True


def _percentile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def _metrics_of(endpoint: str, start: datetime, end: datetime, rows: list[Any]) -> EndpointMetrics:
    """The metrics of the prediction log's ``rows`` logged in the window."""
    requests: dict[str, int] = {}
    errors: dict[str, int] = {}
    invalid: dict[str, int] = {}
    latencies: dict[str, list[float]] = {}
    for row in rows:
        route = row.route or "-"
        requests[route] = requests.get(route, 0) + 1
        if row.status == "error":
            errors[route] = errors.get(route, 0) + 1
        elif row.status == "invalid":
            invalid[route] = invalid.get(route, 0) + 1
        latencies.setdefault(route, []).append(float(row.latency_ms))
    return EndpointMetrics(
        endpoint=endpoint,
        start=start,
        end=end,
        requests=requests,
        errors=errors,
        invalid=invalid,
        p50_latency_ms={r: _percentile(v, 50) for r, v in latencies.items()},
        p99_latency_ms={r: _percentile(v, 99) for r, v in latencies.items()},
    )


class LocalServing(
    Serving, TrafficSplit, ShadowTraffic, KillSwitch, BatchScoring, MetricsSource, CaptureSource
):
    """Serving for the local backend; mixed into :class:`~mintaka.local.backend.LocalBackend`."""

    engine: Engine
    transactions: Transactions
    path: Path
    context: BackendContext

    _backend_name = "local"
    _http: Any = None  # one pooled HTTP client, made on first invoke
    _log_store: Any = None  # the control-plane store, opened on first read of the log

    def serves_flavor(self, flavor: Flavor) -> bool:
        """The inference server loads a version with Mintaka's loaders: only their flavors."""
        from mintaka.flavors.loader import SERVED_FLAVORS

        return flavor in SERVED_FLAVORS

    def _serving_write(self) -> AbstractContextManager[Connection]:
        """A write transaction on the backend's tables, through the store's ``Transactions``:
        a busy or failing database is a ``StoreError`` here as it is in core."""
        return self.transactions.write()

    def _endpoint_row(self, conn: Connection, name: str) -> Any:
        row = conn.execute(
            select(local_endpoints).where(local_endpoints.c.name == name)
        ).one_or_none()
        if row is None:
            raise NotFound(f"endpoint {name!r} not found in the local backend")
        return row

    @staticmethod
    def _endpoint(row: Any, backend: str) -> Endpoint:
        status = EndpointStatus.KILLED if row.killed else EndpointStatus(row.status)
        return Endpoint(
            name=row.name,
            status=status,
            routes=tuple(Route(**r) for r in row.routes),
            traffic=TrafficMap(**row.traffic),
            backend=backend,
            backend_ids={"endpoint": row.name, "config_version": str(row.config_version)},
            extra={"capture": row.capture},
        )

    def _check_routes(self, conn: Connection, routes: Sequence[Route], traffic: TrafficMap) -> None:
        names = [r.name for r in routes]
        if len(set(names)) != len(names):
            raise ValidationError(f"route names must be unique: {names}")
        for route in routes:
            found = conn.execute(
                select(local_versions.c.version).where(
                    local_versions.c.name == route.model, local_versions.c.version == route.version
                )
            ).first()
            if found is None:
                raise NotFound(f"model version {route.model}:{route.version} not in the registry")
        named = set(traffic.weights) | ({traffic.shadow} if traffic.shadow else set())
        unknown = named - set(names)
        if unknown:
            raise ValidationError(f"traffic names routes the endpoint lacks: {sorted(unknown)}")

    def create_endpoint(self, name: str, routes: Sequence[Route], traffic: TrafficMap) -> Endpoint:
        with self._serving_write() as conn:
            if conn.execute(
                select(local_endpoints.c.name).where(local_endpoints.c.name == name)
            ).first():
                raise Conflict(f"endpoint {name!r} already exists")
            self._check_routes(conn, routes, traffic)
            conn.execute(
                local_endpoints.insert().values(
                    name=name,
                    routes=[r.model_dump(mode="json") for r in routes],
                    traffic=traffic.model_dump(mode="json"),
                    status=EndpointStatus.IN_SERVICE.value,
                    killed=0,
                    capture=CaptureConfig().model_dump(mode="json"),
                    config_version=1,
                    updated_at=self.context.clock.now().isoformat(),
                    incarnation=new_incarnation(),
                    managed=1,
                )
            )
            created = self._endpoint(self._endpoint_row(conn, name), self._backend_name)
        self._notify_server()
        return created

    def _notify_server(self, path: str = "/-/reload") -> None:
        """Ask a running inference server to pick a change up now rather than at its next poll,
        so a change is in force when the call that made it returns: ``/-/reload`` for any change,
        ``/-/kill-switches`` for a kill (applied without waiting for models to load). Best effort:
        a server that misses this still sees the change within its poll interval. The change is
        committed: no server's failure to hear of it, whatever it is, fails the call. A server
        that answers it could not apply the change (e.g. 503, its store busy) is said in a
        warning: the change is in force there only once it reads the store again."""
        servers = running_servers(self.path)
        if not servers:
            return
        import httpx

        if self._http is None:
            self._http = httpx.Client(timeout=30)
        for server in servers:  # every server on this home, each told once
            for url in server.urls:  # at the first of its addresses that answers
                try:
                    answer = self._http.post(f"{url}{path}", timeout=2)
                    if not answer.is_success:
                        _not_applied(url, path, answer)
                    break
                except (httpx.ConnectError, httpx.InvalidURL):
                    continue
                except httpx.HTTPError:
                    break
                except Exception as exc:  # a committed change must not fail here
                    log.warning("could not tell the inference server at %s: %s", url, exc)
                    break

    def get_endpoint(self, name: str) -> Endpoint:
        with self.transactions.read() as conn:
            return self._endpoint(self._endpoint_row(conn, name), self._backend_name)

    def list_endpoints(self) -> list[Endpoint]:
        with self.transactions.read() as conn:
            rows = conn.execute(select(local_endpoints).order_by(local_endpoints.c.name)).all()
        return [self._endpoint(row, self._backend_name) for row in rows]

    def _change(self, name: str, notify: str = "/-/reload", **values: Any) -> Endpoint:
        with self._serving_write() as conn:
            row = self._endpoint_row(conn, name)
            routes = values.get("routes", row.routes)
            traffic = values.get("traffic", row.traffic)
            self._check_routes(conn, [Route(**r) for r in routes], TrafficMap(**traffic))
            conn.execute(
                update(local_endpoints)
                .where(local_endpoints.c.name == name)
                .values(
                    config_version=row.config_version + 1,
                    updated_at=self.context.clock.now().isoformat(),
                    **values,
                )
            )
            changed = self._endpoint(self._endpoint_row(conn, name), self._backend_name)
        self._notify_server(notify)
        return changed

    def update_routes(self, name: str, routes: Sequence[Route], traffic: TrafficMap) -> Endpoint:
        return self._change(
            name,
            routes=[r.model_dump(mode="json") for r in routes],
            traffic=traffic.model_dump(mode="json"),
        )

    def set_traffic(self, name: str, traffic: TrafficMap) -> Endpoint:
        return self._change(name, traffic=traffic.model_dump(mode="json"))

    def set_shadow(self, name: str, route: str | None, percent: int) -> Endpoint:
        current = self.get_endpoint(name)
        traffic = TrafficMap(
            weights=current.traffic.weights, shadow=route, shadow_percent=percent if route else 0
        )
        return self.set_traffic(name, traffic)

    def kill(self, name: str) -> Endpoint:
        return self._change(name, "/-/kill-switches", killed=1)

    def unkill(self, name: str) -> Endpoint:
        return self._change(name, killed=0)

    def delete_endpoint(self, name: str) -> None:
        with self._serving_write() as conn:
            self._endpoint_row(conn, name)
            conn.execute(delete(local_endpoints).where(local_endpoints.c.name == name))
        self._notify_server()

    def invoke(self, name: str, payload: Any, route: str | None = None) -> dict[str, Any]:
        import httpx

        self.get_endpoint(name)
        try:  # strict JSON, as the server reads it: NaN and infinity are no JSON numbers;
            # compact UTF-8, so that text outside ASCII counts against the server's body limit
            # once per byte it needs, not as a six-byte escape; a lone surrogate (text read with
            # surrogateescape) passes, as the server decodes the body
            content = json.dumps(
                payload, allow_nan=False, ensure_ascii=False, separators=(",", ":")
            ).encode("utf-8", "surrogatepass")
        except (TypeError, ValueError, RecursionError) as exc:
            raise ValidationError(f"the inputs cannot be sent as JSON: {exc}") from None
        servers = running_servers(self.path)
        if not servers:
            raise BackendError(
                f"no local inference server is running for {self.path}; start `mintaka serve`",
                self._backend_name,
            )
        headers = {"Content-Type": "application/json"}
        if route:
            headers["X-Mintaka-Route"] = route
        if self._http is None:
            self._http = httpx.Client(timeout=30)
        response = None
        for url in [url for server in servers for url in server.urls]:
            try:
                response = self._http.post(
                    f"{url}/endpoints/{name}/invocations", content=content, headers=headers
                )
                break
            except (httpx.ConnectError, httpx.InvalidURL) as exc:  # none there: the next one
                failure: Exception = exc
            except httpx.HTTPError as exc:
                raise BackendError(f"invoking {name!r} failed: {exc}", self._backend_name) from exc
        if response is None:
            raise BackendError(f"invoking {name!r} failed: {failure}", self._backend_name)
        body: dict[str, Any] = response.json()
        if response.status_code == 404:
            raise NotFound(body.get("error", f"endpoint {name!r} not served"))
        if response.status_code in (400, 413):  # 413: a body over the server's limit
            raise ValidationError(body.get("error", "invalid request"))
        if response.status_code == 409:  # pinned to a route whose version is archived
            raise Conflict(body.get("error", f"endpoint {name!r} refused the request"))
        if response.status_code >= 300:
            raise BackendError(
                f"endpoint {name!r} answered {response.status_code}: {body.get('error')}",
                self._backend_name,
            )
        return body

    def score_batch(
        self,
        route: Route,
        input_path: Path,
        output_path: Path,
        *,
        batch_id: str,
        features: Sequence[str] = (),
    ) -> dict[str, str]:
        from mintaka.artifacts import ArtifactStore, manifest_of
        from mintaka.files import file_path
        from mintaka.flavors.loader import load_predictor
        from mintaka.serving.batch import BATCH_SCORED, file_format, read_rows, write_rows
        from mintaka.serving.predlog import input_digest, json_safe

        with self.transactions.read() as conn:
            row = conn.execute(
                select(local_versions).where(
                    local_versions.c.name == route.model, local_versions.c.version == route.version
                )
            ).one_or_none()
        if row is None:
            raise NotFound(f"model version {route.model}:{route.version} not in the registry")
        recorded = self._recorded_version(route)
        if recorded is not None:  # loaded as the inference server loads it
            content = (
                ArtifactStore(self.context.home / ARTIFACTS_DIR)
                .verify(recorded.artifact_digest)
                .content
            )
            flavor, version_id = Flavor(recorded.flavor), recorded.id
            declared = dict((recorded.signature or {}).get("inputs") or {})
        else:  # a version only the backend holds: its own bytes, as it describes them
            content = file_path(row.artifact_uri) or Path(row.artifact_uri)
            if manifest_of(content).digest != row.artifact_digest:
                from mintaka.errors import IntegrityError

                raise IntegrityError(
                    f"{route.model}:{route.version} bytes do not match their digest"
                )
            flavor, version_id = Flavor(row.flavor), row.mintaka_id
            declared = {}
        predictor = load_predictor(content, flavor, features=features)
        read = read_rows(input_path)
        if not read:
            raise ValidationError(f"{input_path} holds no rows")
        rows, fed = read, set[str]()  # fed: written as the model was fed them; the rest as read
        if file_format(input_path) == "csv":
            rows, fed = _typed_columns(read, declared, predictor.features)
        taken = sorted({"prediction", "prediction_id"} & set(rows[0]))
        if taken:
            raise ValidationError(
                f"{input_path} already has column(s) {taken}, which scoring adds to every row; "
                "rename them"
            )
        now = self.context.clock.now().isoformat()
        scored: list[dict[str, Any]] = []
        logged: list[dict[str, Any]] = []
        ref = f"{route.model}:{route.version}"
        for start in range(0, len(rows), 1000):
            chunk = rows[start : start + 1000]
            try:
                outputs = predictor.predict(chunk)
                json.dumps(outputs, allow_nan=False)  # what the prediction log can hold
            except ValidationError:
                raise
            except (TypeError, ValueError) as exc:
                raise BackendError(
                    f"model {ref} answered rows {start + 1}-{start + len(chunk)} with output "
                    f"that is not JSON (NaN, infinity or an object): {exc}",
                    self._backend_name,
                ) from exc
            except Exception as exc:  # the model's own code failed: nothing is written
                raise BackendError(
                    f"model {ref} failed on rows {start + 1}-{start + len(chunk)}: {exc!r}",
                    self._backend_name,
                ) from exc
            for index, (values, output) in enumerate(zip(chunk, outputs, strict=True)):
                prediction_id = self.context.ids.new("pred")
                written = {k: values[k] if k in fed else v for k, v in read[start + index].items()}
                scored.append({**written, "prediction_id": prediction_id, "prediction": output})
                logged.append(
                    {
                        "id": prediction_id,
                        "endpoint": BATCH_SCORED,
                        "route": batch_id[:32],
                        "model": route.model,
                        "version": route.version,
                        "version_id": version_id,
                        "input_digest": input_digest(values),
                        "inputs": json_safe(values),
                        "output": output,
                        "status": "ok",
                        "shadow": 0,
                        "latency_ms": 0.0,
                        "at": now,
                    }
                )
        # Logged first: an output file never names prediction ids the log does not hold.
        store = self._store()
        with store.write() as conn:
            conn.execute(predictions.insert(), logged)
        write_rows(output_path, scored)
        return {"rows": str(len(scored)), "output": str(output_path)}

    def _recorded_version(self, route: Route) -> Any:
        """What Mintaka recorded of the version (its id, flavor, digest and signature), None if
        it recorded none: an adopted version keeps the backend's legacy row, whose flavor may be
        'opaque' and whose bytes may be elsewhere than the verified copy in the artifact store."""
        with self._store().read() as conn:
            return conn.execute(
                select(
                    model_versions.c.id,
                    model_versions.c.flavor,
                    model_versions.c.artifact_digest,
                    model_versions.c.signature,
                ).where(
                    model_versions.c.name == route.model,
                    model_versions.c.version == route.version,
                )
            ).one_or_none()

    # -- monitoring inputs: the prediction log is this backend's capture -----------------------

    def _store(self) -> Any:
        """The control-plane store, opened once (the prediction log lives there)."""
        from mintaka.store import Store

        if self._log_store is None:
            if self.context.store_url is None:
                raise BackendError(
                    "the local backend needs the store URL for metrics", self._backend_name
                )
            self._log_store = Store(self.context.store_url, migrate=False)
        return self._log_store

    def read_metrics(self, endpoint: str, start: datetime, end: datetime) -> EndpointMetrics:
        self.get_endpoint(endpoint)
        store = self._store()
        with store.read() as conn:
            rows = conn.execute(
                select(
                    predictions.c.route,
                    predictions.c.status,
                    predictions.c.latency_ms,
                    predictions.c.shadow,
                ).where(
                    predictions.c.endpoint == endpoint,
                    predictions.c.at >= start.isoformat(),
                    predictions.c.at < end.isoformat(),
                )
            ).all()
        shadow = _metrics_of(endpoint, start, end, [row for row in rows if row.shadow])
        live = _metrics_of(endpoint, start, end, [row for row in rows if not row.shadow])
        return live.model_copy(update={"shadow": shadow})

    def reads_shadow_metrics(self) -> bool:
        """The prediction log marks the rows a shadow route answered."""
        return True

    def configure_capture(self, endpoint: str, config: CaptureConfig) -> None:
        self._change(endpoint, capture=config.model_dump(mode="json"))

    def read_captured(
        self, endpoint: str, since: datetime | None = None, limit: int | None = None
    ) -> list[CapturedRecord]:
        self.get_endpoint(endpoint)
        query = select(predictions).where(predictions.c.endpoint == endpoint)
        if since is not None:
            query = query.where(predictions.c.at >= since.isoformat())
        query = query.order_by(predictions.c.at, predictions.c.id)
        if limit is not None:
            query = query.limit(limit)
        store = self._store()
        with store.read() as conn:
            rows = conn.execute(query).all()
        return [
            CapturedRecord(
                endpoint=row.endpoint,
                route=row.route,
                event_id=row.id,
                at=datetime.fromisoformat(row.at),
                inputs=row.inputs,
                outputs=None if row.output is None else [row.output],
                extra={
                    "status": row.status,
                    "shadow": bool(row.shadow),
                    "model": row.model,
                    "version": row.version,
                },
            )
            for row in rows
        ]


_INTEGER_TYPES = ("int", "uint", "long")
_FLOAT_TYPES = ("float", "double", "number", "decimal")


def _typed_columns(
    rows: list[dict[str, Any]], declared: dict[str, str], features: Sequence[str]
) -> tuple[list[dict[str, Any]], set[str]]:
    """CSV ``rows`` (every value text) with each numeric feature column as numbers, for the
    model and the prediction log, and the columns so converted (the output file writes them
    as converted): a column the signature declares an integer or float type, or, undeclared,
    one whose every value is the text of a finite number (integers when all are whole). Only
    the model's ``features`` are converted (every column when they are not known: the model
    is fed them all): another column (an account id such as ``007``) stays as written, as it
    does in the output file. A column any value of which is not a number stays text."""
    kinds = {}
    for column in features or rows[0]:
        if column not in rows[0]:
            continue  # a missing feature is the model's to refuse
        values = [row[column] for row in rows]
        kind = _column_kind(values, str(declared.get(column, "")).lower())
        if kind is not None:
            kinds[column] = kind
    if not kinds:
        return rows, set()
    typed = [{k: kinds[k](v) if k in kinds else v for k, v in row.items()} for row in rows]
    return typed, set(kinds)


def _column_kind(values: list[Any], dtype: str) -> type[int] | type[float] | None:
    """``int`` or ``float`` for a column of number texts (as ``dtype`` declares it, else as
    its values show), None for one to keep as text."""
    if not all(isinstance(v, str) and _is_finite_number(v) for v in values):
        return None
    if dtype.startswith(_FLOAT_TYPES):
        return float
    whole = all(v.strip().lstrip("+-").isdigit() for v in values)
    if dtype.startswith(_INTEGER_TYPES):
        return int if whole else None
    if dtype:
        return None  # declared as something else (a string): kept as written
    return int if whole else float


def _is_finite_number(text: str) -> bool:
    from mintaka.flavors.loader import number_of

    number = number_of(text)
    return number is not None and math.isfinite(number)
