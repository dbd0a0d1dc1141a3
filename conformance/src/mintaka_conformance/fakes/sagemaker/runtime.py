"""InvokeEndpoint that answers per endpoint and per production variant.

Routing: ``TargetVariant`` wins when given. Otherwise the variant is chosen by **smooth weighted
round-robin** over the variants' current weights (the scheme nginx uses): deterministic, with exact
proportions over every run of ``sum(weights)`` calls for integer weights and the variants
interleaved rather than bunched, so a test can assert "3 of 4 calls hit blue" without a seed.
A variant of weight 0 only answers when targeted. A shadow variant receives a mirrored copy of
every request (recorded, never returned), as SageMaker shadow testing does.

The body is JSON: ``{"endpoint", "variant", "model", "predictions"}``; ``predictions`` come from a
handler registered per model name (:meth:`SageMakerFake.set_invoke_handler`), by default the
request payload echoed back (parsed as JSON when it is JSON). The
``x-Amzn-Invoked-Production-Variant`` header names the variant, as AWS sets it.
"""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote
from uuid import uuid4

from moto.core.common_types import TYPE_RESPONSE
from moto.sagemaker.models import sagemaker_backends
from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

from .endpoints import SERVING_STATUSES, endpoint_state
from .errors import RuntimeValidationError, ValidationError
from .state import EndpointState, Invocation, VariantState, state_of


def _echo(body: bytes, variant: str) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return body.decode("utf-8", errors="replace")


def choose_variant(ep: EndpointState) -> VariantState | None:
    """Smooth weighted round-robin over the production variants with a positive weight."""
    candidates = [v for v in ep.variants if v.weight > 0]
    if not candidates:
        return None
    total = sum(v.weight for v in candidates)
    for variant in candidates:
        ep.scores[variant.name] = ep.scores.get(variant.name, 0.0) + variant.weight
    best = max(candidates, key=lambda v: ep.scores[v.name])
    ep.scores[best.name] -= total
    return best


def _endpoint_name(response: SageMakerRuntimeResponse) -> str:
    name = response._get_params().get("EndpointName")
    if not name:
        # /endpoints/{EndpointName}/invocations
        parts = response.path.split("/")
        name = unquote(parts[2]) if len(parts) > 2 else ""
    return str(name)


def invoke_endpoint(self: SageMakerRuntimeResponse) -> TYPE_RESPONSE:
    account, region = self.current_account, self.region
    backend = sagemaker_backends[account][region]
    state = state_of(backend)
    name = _endpoint_name(self)
    target = self.headers.get("X-Amzn-SageMaker-Target-Variant")
    body = self.body if isinstance(self.body, bytes) else str(self.body or "").encode("utf-8")
    if name not in backend.endpoints:
        raise RuntimeValidationError(f"Endpoint {name} of account {account} not found.")
    try:
        ep = endpoint_state(backend, name)
    except ValidationError:
        raise RuntimeValidationError(f"Endpoint {name} of account {account} not found.") from None
    with state.lock:
        if ep.status not in SERVING_STATUSES:
            raise RuntimeValidationError(
                f"Endpoint {name} of account {account} is not in service "
                f"(status {ep.status}); it cannot be invoked."
            )
        if target:
            chosen = next((v for v in ep.variants if v.name == target), None)
            if chosen is None:
                raise RuntimeValidationError(
                    f"Variant {target} is not a production variant of endpoint {name}; its "
                    f"variants are {[v.name for v in ep.variants]}."
                )
        else:
            chosen = choose_variant(ep)
            if chosen is None:
                raise RuntimeValidationError(
                    f"Endpoint {name} has no production variant with a positive weight; "
                    "name one with TargetVariant."
                )
        handler = state.invoke_handlers.get(chosen.model_name or "", _echo)
        state.invocations.append(
            Invocation(name, chosen.name, chosen.model_name, bool(target), False, body)
        )
        for shadow in ep.shadow_variants:
            if shadow.weight > 0:
                state.invocations.append(
                    Invocation(name, shadow.name, shadow.model_name, False, True, body)
                )
    predictions = handler(body, chosen.name)
    payload = {
        "endpoint": name,
        "variant": chosen.name,
        "model": chosen.model_name,
        "predictions": predictions,
    }
    _capture(account, backend, ep.config_name, name, chosen.name, body, json.dumps(payload))
    headers = {
        "Content-Type": "application/json",
        "x-Amzn-Invoked-Production-Variant": chosen.name,
    }
    custom = self.headers.get("X-Amzn-SageMaker-Custom-Attributes")
    if custom:
        headers["X-Amzn-SageMaker-Custom-Attributes"] = custom
    return 200, headers, json.dumps(payload)


def _capture(
    account: str,
    backend: Any,
    config_name: str,
    endpoint: str,
    variant: str,
    request: bytes,
    response: str,
) -> None:
    """Write the request/response pair the way SageMaker data capture does: one JSON line per
    invocation under ``<DestinationS3Uri>/<endpoint>/<variant>/YYYY/MM/DD/HH/``, when the
    endpoint's config enables capture. A missing bucket loses the record, as on AWS."""
    config = backend.endpoint_configs.get(config_name)
    capture = getattr(config, "data_capture_config", None) or {}
    destination = capture.get("DestinationS3Uri")
    if not destination or not capture.get("EnableCapture", True):
        return
    modes = {str(o.get("CaptureMode")) for o in capture.get("CaptureOptions") or []}
    modes = modes or {"Input", "Output"}
    now = datetime.now(UTC)
    data: dict[str, Any] = {}
    if "Input" in modes:
        data["endpointInput"] = {
            "observedContentType": "application/json",
            "mode": "INPUT",
            "data": request.decode("utf-8", "replace"),
            "encoding": "JSON",
        }
    if "Output" in modes:
        data["endpointOutput"] = {
            "observedContentType": "application/json",
            "mode": "OUTPUT",
            "data": response,
            "encoding": "JSON",
        }
    event = {
        "captureData": data,
        "eventMetadata": {
            "eventId": str(uuid4()),
            "inferenceTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        },
        "eventVersion": "0",
    }
    bucket, _, prefix = str(destination).removeprefix("s3://").partition("/")
    key = "/".join(
        part
        for part in (
            prefix.strip("/"),
            endpoint,
            variant,
            now.strftime("%Y/%m/%d/%H"),
            f"{now.strftime('%M-%S-%f')}-{uuid4().hex[:8]}.jsonl",
        )
        if part
    )
    from moto.s3.models import s3_backends

    with contextlib.suppress(Exception):  # no bucket: the capture is lost, the call succeeds
        s3_backends[account]["aws"].put_object(bucket, key, json.dumps(event).encode() + b"\n")
