"""A per-client fault injector for boto3 clients talking to moto: throttling, 5xx, lost responses.

How it works, and why this way. botocore emits ``before-send`` for every attempt and uses the first
non-``None`` response a handler returns, but it calls *every* handler. moto's in-process mock is
itself a ``before-send`` handler (``moto.core.models.botocore_stubber``), so a hook that merely
returns an error still lets moto run the operation. The injector therefore registers one handler
on the client's *service-specific* event (``before-send.sagemaker``), which botocore runs before
the generic ``before-send`` moto listens on, and for each attempt:

* **throttling / 5xx**: returns a fault response and points the request's URL at a reserved host
  (``mintaka-fault-injector.invalid``) that moto does not route, so moto's handler returns ``None``
  and nothing runs server-side; botocore never sends the request (a response is already there).
  Against a moto *server* the same response short-circuits the HTTP send. The fault is a real
  HTTP response (400 ``ThrottlingException``, 503 ``ServiceUnavailable``, 500 ``InternalFailure``),
  parsed and retried by botocore's own retry handler exactly like AWS's.
* **lost response**: delivers the request itself (moto's stubber in-process, or the client's HTTP
  endpoint against a server), discards the answer and raises ``ReadTimeoutError``: the operation
  *did* happen, the client does not know, and botocore retries it as a transient error. This is
  the case idempotency tokens and "already exists means reconcile" exist for.

The schedule is seeded (``random.Random(seed)``, one draw per attempt of a matching operation) or
scripted (an explicit list of faults, one per attempt). ``max_consecutive`` caps faults per call
(a call's attempt ``n`` is only faulted while ``n <= max_consecutive``), so a test can guarantee
that every call completes within its retry budget; leave it unset to exhaust budgets.
"""

from __future__ import annotations

import io
import json
import random
import threading
import uuid
from collections import deque
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.exceptions import ReadTimeoutError

FAULT_HOST = "http://mintaka-fault-injector.invalid/"


class Fault(StrEnum):
    THROTTLING = "throttling"
    SERVICE_UNAVAILABLE = "service_unavailable"
    INTERNAL_FAILURE = "internal_failure"
    LOST_RESPONSE = "lost_response"


# status, error code, message
_ERROR_RESPONSES: dict[Fault, tuple[int, str, str]] = {
    Fault.THROTTLING: (400, "ThrottlingException", "Rate exceeded"),
    Fault.SERVICE_UNAVAILABLE: (503, "ServiceUnavailable", "Service is unavailable."),
    Fault.INTERNAL_FAILURE: (500, "InternalFailure", "An internal error occurred."),
}


@dataclass(frozen=True)
class Attempt:
    """One attempt the injector saw: which operation, which attempt of its call, what it did."""

    operation: str
    attempt: int
    fault: Fault | None


class _Body(io.BytesIO):
    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        chunk = self.read()
        while chunk:
            yield chunk
            chunk = self.read()


def _attempt_number(request: AWSPreparedRequest) -> int:
    header = request.headers.get("amz-sdk-request")
    if isinstance(header, bytes):
        header = header.decode("ascii", errors="replace")
    for part in (header or "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == "attempt" and value.isdigit():
            return int(value)
    return 1


class FaultInjector:
    """Injects faults into the clients it is attached to, from a seeded or scripted schedule."""

    def __init__(
        self,
        *,
        seed: int = 0,
        throttling: float = 0.0,
        server_errors: float = 0.0,
        lost_responses: float = 0.0,
        script: Sequence[Fault | str | None] | None = None,
        operations: Collection[str] | None = None,
        max_consecutive: int | None = None,
    ) -> None:
        if throttling + server_errors + lost_responses > 1:
            raise ValueError("fault probabilities must add up to at most 1")
        self._rng = random.Random(seed)
        self._throttling = throttling
        self._server_errors = server_errors
        self._lost = lost_responses
        self._script: deque[Fault | None] = deque(
            None if item is None else Fault(item) for item in (script or ())
        )
        self._operations = frozenset(operations) if operations is not None else None
        self._max_consecutive = max_consecutive
        self._lock = threading.Lock()
        self.history: list[Attempt] = []

    # -- schedule --------------------------------------------------------------------------------

    def _decide(self, operation: str, attempt: int) -> Fault | None:
        with self._lock:
            if self._operations is not None and operation not in self._operations:
                fault = None
            elif self._script:
                fault = self._script.popleft()
            else:
                draw = self._rng.random()
                fault = None
                if draw < self._throttling:
                    fault = Fault.THROTTLING
                elif draw < self._throttling + self._server_errors:
                    fault = self._rng.choice((Fault.SERVICE_UNAVAILABLE, Fault.INTERNAL_FAILURE))
                elif draw < self._throttling + self._server_errors + self._lost:
                    fault = Fault.LOST_RESPONSE
                if self._max_consecutive is not None and attempt > self._max_consecutive:
                    fault = None
            self.history.append(Attempt(operation, attempt, fault))
            return fault

    def faults(self, fault: Fault | None = None) -> list[Attempt]:
        """The attempts that were faulted (of one kind if ``fault`` is given)."""
        return [a for a in self.history if a.fault is not None and fault in (None, a.fault)]

    # -- wiring ----------------------------------------------------------------------------------

    def attach(self, client: Any) -> Any:
        """Inject into ``client`` (a boto3/botocore client); returns it. Idempotent per client."""
        service = client.meta.service_model.service_id.hyphenize()
        protocol = client.meta.service_model.protocol

        def before_send(request: AWSPreparedRequest, event_name: str, **kwargs: Any) -> Any:
            operation = event_name.rsplit(".", 1)[-1]
            fault = self._decide(operation, _attempt_number(request))
            if fault is None:
                return None
            if fault is Fault.LOST_RESPONSE:
                _deliver(client, request, event_name)
                raise ReadTimeoutError(endpoint_url=request.url)
            request.url = FAULT_HOST
            return _error_response(fault, protocol)

        client.meta.events.register_first(
            f"before-send.{service}", before_send, unique_id=f"mintaka-faults-{id(self)}"
        )
        return client


def _error_response(fault: Fault, protocol: str) -> AWSResponse:
    status, code, message = _ERROR_RESPONSES[fault]
    content_type = "application/x-amz-json-1.1" if protocol == "json" else "application/json"
    headers = {
        "Content-Type": content_type,
        "x-amzn-ErrorType": code,
        "x-amzn-RequestId": str(uuid.uuid4()),
    }
    body = json.dumps({"__type": code, "message": message}).encode("utf-8")
    return AWSResponse(FAULT_HOST, status, headers, _Body(body))


def _deliver(client: Any, request: AWSPreparedRequest, event_name: str) -> None:
    """Let the operation really happen (in-process moto, or the server), then drop its answer."""
    from moto.core.models import botocore_stubber

    response = botocore_stubber(event_name=event_name, request=request)
    if response is None:
        response = client._endpoint._send(request)
        _ = response.content
