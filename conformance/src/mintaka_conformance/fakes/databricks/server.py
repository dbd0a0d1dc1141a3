"""The HTTP server: authentication, fault injection, dispatch to the workspace areas, a log."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from .context import WorkspaceContext
from .faults import Fault, FaultSchedule
from .files import WorkspaceFiles
from .jobs import Jobs
from .lineage import Lineage
from .routing import ApiError, Request, Response, Router
from .serving import Serving
from .sql import Statements
from .tracking import Tracking
from .unity_catalog import UnityCatalogModels
from .workspace import WorkspaceTree
from .workspace_registry import WorkspaceRegistry

WELL_KNOWN = "/.well-known/databricks-config"


class WorkspaceState:
    """Everything the fake workspace holds, reachable directly for out-of-band changes.

    ``uc`` (Unity Catalog models), ``registry`` (workspace model registry), ``tracking``
    (experiments and runs), ``serving`` (endpoints), ``jobs``, ``lineage`` (external metadata and
    external lineage), ``sql`` (statements over inference tables), ``files`` (the Files API,
    model versions' files included) and ``workspace`` (the Workspace API's folders, files and
    notebooks). Each area's own methods
    (``uc.set_alias``, ``serving.hold``, ``jobs.script_task`` ...) take the workspace lock.
    """

    def __init__(self, ctx: WorkspaceContext, settle_after: int, schemas: set[str] | None) -> None:
        self.ctx = ctx
        self.uc = UnityCatalogModels(ctx, schemas)
        self.files = WorkspaceFiles(ctx, self.uc)
        self.workspace = WorkspaceTree(ctx)
        self.registry = WorkspaceRegistry(ctx, settle_after)
        self.tracking = Tracking(ctx, self.workspace)
        self.serving = Serving(ctx, self.uc, self.registry, settle_after)
        self.jobs = Jobs(ctx, self.workspace)
        self.lineage = Lineage(ctx)
        self.sql = Statements(ctx, self.serving)

    @property
    def lock(self) -> Any:
        return self.ctx.lock


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    query: Mapping[str, list[str]]
    body: Any
    status: int | None
    """The status answered, ``None`` when the connection was dropped."""
    fault: Fault | None


_DROP = object()


class FakeDatabricks:
    """A fake Databricks workspace on ``127.0.0.1`` (plain HTTP, ephemeral port, background thread).

    Use it as a context manager (or ``start()`` / ``stop()``) and point a ``WorkspaceClient`` at
    ``host`` with ``token``. ``state`` holds the workspace for inspection and out-of-band changes;
    ``faults`` decides which requests misbehave; ``requests`` logs every request answered.
    ``settle_after`` is how many reads a changing resource (endpoint config, workspace-registry
    version) needs before it reaches its final state; 1 lets ``*_and_wait`` return at once.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        token: str = "dapi-mintaka-fake-token",
        faults: FaultSchedule | None = None,
        settle_after: int = 1,
        schemas: Iterable[str] | None = None,
        user: str = "mintaka-tests@example.com",
        workspace_id: str = "1234567890123456",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token = token
        self.ctx = WorkspaceContext(seed=seed, user=user, workspace_id=workspace_id, clock=clock)
        self.state = WorkspaceState(
            self.ctx, settle_after, None if schemas is None else {s.lower() for s in schemas}
        )
        self.faults = faults if faults is not None else FaultSchedule(seed=seed)
        self.requests: list[RecordedRequest] = []
        self.errors: list[str] = []
        """Tracebacks of bugs in the fake itself (answered as 500 ``INTERNAL_ERROR``)."""
        self._router = Router()
        self._router.add("GET", WELL_KNOWN, self._well_known)
        self._router.add("GET", "/api/2.0/preview/scim/v2/Me", self._me)
        for area in (
            self.state.uc,
            self.state.registry,
            self.state.tracking,
            self.state.serving,
            self.state.jobs,
            self.state.lineage,
            self.state.sql,
            self.state.files,
            self.state.workspace,
        ):
            area.register(self._router)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle.

    @property
    def host(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake workspace is not running; call start() first")
        port = self._server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def start(self) -> FakeDatabricks:
        if self._server is not None:
            return self
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self.ctx.host = self.host
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=f"fake-databricks-{server.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeDatabricks:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # Inspection.

    def calls(self, method: str | None = None, path: str | None = None) -> list[RecordedRequest]:
        """Logged requests, optionally only those with ``method`` whose path contains ``path``."""
        with self.ctx.lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method) and (path is None or path in r.path)
            ]

    # Dispatch.

    def handle(
        self, method: str, target: str, headers: Mapping[str, str], raw: bytes
    ) -> Response | object:
        """Answer one request (``headers`` keyed in lower case); returns ``_DROP`` when the
        connection must close unanswered."""
        split = urlsplit(target)
        path = unquote(split.path)
        query = parse_qs(split.query, keep_blank_values=True)
        body: Any = None
        fault = self.faults.decide(method, path)
        if fault in (Fault.THROTTLED, Fault.UNAVAILABLE, Fault.INTERNAL, Fault.RESET):
            response = _fault_response(fault, path, self.faults.retry_after_seconds)
            self._record(method, path, query, raw, None if response is _DROP else response, fault)
            return response
        try:
            self._authenticate(path, headers)
            octets = headers.get("content-type", "").startswith("application/octet-stream")
            body = {} if octets else _parse_body(raw)
            handler, params = self._router.match(method, path)
            request = Request(method, path, query, body, headers, params, raw)
            with self.ctx.lock:
                result = handler(request)
            response = result if isinstance(result, Response) else Response(body=result or {})
        except ApiError as error:
            response = Response(status=error.status, body=error.body())
        except Exception:
            self.errors.append(traceback.format_exc())
            response = Response(
                status=500,
                body={"error_code": "INTERNAL_ERROR", "message": "The fake workspace failed."},
            )
        if fault is Fault.LOST:
            self._record(method, path, query, raw, None, fault)
            return _DROP
        self._record(method, path, query, raw, response, None)
        return response

    def _record(
        self,
        method: str,
        path: str,
        query: Mapping[str, list[str]],
        raw: bytes,
        response: Response | object | None,
        fault: Fault | None,
    ) -> None:
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        status = response.status if isinstance(response, Response) else None
        with self.ctx.lock:
            self.requests.append(RecordedRequest(method, path, dict(query), body, status, fault))

    def _authenticate(self, path: str, headers: Mapping[str, str]) -> None:
        if path == WELL_KNOWN:
            return
        authorization = headers.get("authorization")
        if not authorization:
            raise ApiError(
                401,
                "UNAUTHENTICATED",
                "Credential was not sent or was of an unsupported type for this API.",
            )
        if authorization != f"Bearer {self.token}":
            raise ApiError(403, "PERMISSION_DENIED", "Invalid access token.")

    def _well_known(self, req: Request) -> dict[str, Any]:
        return {"oidc_endpoint": f"{self.ctx.host}/oidc", "workspace_id": self.ctx.workspace_id}

    def _me(self, req: Request) -> Response:
        user = self.ctx.user
        return Response(
            body={
                "id": "4242424242424242",
                "userName": user,
                "displayName": user.split("@", 1)[0],
                "active": True,
                "emails": [{"value": user, "type": "work", "primary": True}],
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
            },
            headers={"X-Databricks-Org-Id": self.ctx.workspace_id},
        )


def _parse_body(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiError(
            400, "MALFORMED_REQUEST", "Could not parse request object: invalid JSON."
        ) from None
    if not isinstance(body, dict):
        raise ApiError(400, "MALFORMED_REQUEST", "The request body must be a JSON object.")
    return body


def _fault_response(fault: Fault, path: str, retry_after: int) -> Response | object:
    if fault is Fault.RESET:
        return _DROP
    if fault is Fault.THROTTLED:
        return Response(
            status=429,
            body={
                "error_code": "REQUEST_LIMIT_EXCEEDED",
                "message": "Your request was rejected since your organization has exceeded "
                "the rate limit. Please retry your request later.",
            },
            headers={"Retry-After": str(retry_after)},
        )
    if fault is Fault.UNAVAILABLE:
        return Response(
            status=503,
            body={
                "error_code": "TEMPORARILY_UNAVAILABLE",
                "message": f"The service at {path} is temporarily unavailable.",
            },
            headers={"Retry-After": str(retry_after)},
        )
    # Not "Unexpected error": the SDK retries any error whose message contains those words.
    return Response(
        status=500, body={"error_code": "INTERNAL_ERROR", "message": "Internal server error."}
    )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeDatabricks

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Close kept-alive client connections so their handler threads end with the server."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    timeout = 30
    # Headers and body go out in separate writes; with Nagle's algorithm on, each response
    # would wait for the client's delayed ACK (about 40 ms).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _dispatch(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        headers = {key.lower(): value for key, value in self.headers.items()}
        result = self.server.fake.handle(self.command, self.path, headers, raw)
        if not isinstance(result, Response):
            self.close_connection = True
            return
        payload, content_type = result.encode()
        self.send_response(result.status)
        self.send_header("Content-Type", content_type)
        headers = {"Content-Length": str(len(payload)), **result.headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":  # a HEAD answer has the headers of the GET, and no body
            self.wfile.write(payload)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch
