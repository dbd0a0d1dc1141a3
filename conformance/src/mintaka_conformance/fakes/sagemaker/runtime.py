"""InvokeEndpoint and InvokeEndpointAsync that answer per endpoint and per production variant.

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

An endpoint whose config has ``AsyncInferenceConfig`` answers only InvokeEndpointAsync, and a
real-time one only InvokeEndpoint (``ValidationError`` otherwise). InvokeEndpointAsync reads the
request from its ``InputLocation`` in moto's S3 (or its inline ``Body``), routes it by weight the
same way (it has no ``TargetVariant``), and writes the same JSON body to
``<S3OutputPath>/<uuid>.out``; when the model's handler raises, the exception's text goes to
``<S3FailurePath>/<uuid>-error.out`` instead (nothing is written without a failure path). Results
are written before the call returns unless :meth:`SageMakerFake.hold_async_results` keeps them in
flight.
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
from .state import EndpointState, Invocation, InvokeHandler, VariantState, state_of


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


def _served_endpoint(backend: Any, account: str, name: str) -> EndpointState:
    """The running state of endpoint ``name``, as SageMaker Runtime reports a missing one."""
    if name not in backend.endpoints:
        raise RuntimeValidationError(f"Endpoint {name} of account {account} not found.")
    try:
        return endpoint_state(backend, name)
    except ValidationError:
        raise RuntimeValidationError(f"Endpoint {name} of account {account} not found.") from None


def _route(
    backend: Any,
    account: str,
    ep: EndpointState,
    target: str | None,
    body: bytes,
    *,
    asynchronous: bool,
) -> tuple[VariantState, InvokeHandler, dict[str, Any]]:
    """Pick the variant that answers one request and record it (with the shadows' mirrored
    copies): the variant, its model's handler, and the ``AsyncInferenceConfig`` of the config the
    endpoint serves. A real-time call to an asynchronous endpoint, or the reverse, is refused."""
    state = state_of(backend)
    name = ep.name
    with state.lock:
        if ep.status not in SERVING_STATUSES:
            raise RuntimeValidationError(
                f"Endpoint {name} of account {account} is not in service "
                f"(status {ep.status}); it cannot be invoked."
            )
        config = backend.endpoint_configs.get(ep.config_name)
        async_config = dict(getattr(config, "async_inference_config", None) or {})
        if asynchronous and not async_config:
            raise RuntimeValidationError(
                f"Endpoint {name} of account {account} is a real-time endpoint: its endpoint "
                "configuration has no AsyncInferenceConfig. Invoke it with InvokeEndpoint."
            )
        if async_config and not asynchronous:
            raise RuntimeValidationError(
                f"Endpoint {name} of account {account} is an asynchronous endpoint: its endpoint "
                "configuration has an AsyncInferenceConfig. Invoke it with InvokeEndpointAsync."
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
    return chosen, handler, async_config


def _answer(name: str, chosen: VariantState, predictions: Any) -> str:
    """The body the fake endpoint answers with."""
    return json.dumps(
        {
            "endpoint": name,
            "variant": chosen.name,
            "model": chosen.model_name,
            "predictions": predictions,
        }
    )


def invoke_endpoint(self: SageMakerRuntimeResponse) -> TYPE_RESPONSE:
    account, region = self.current_account, self.region
    backend = sagemaker_backends[account][region]
    name = _endpoint_name(self)
    target = self.headers.get("X-Amzn-SageMaker-Target-Variant")
    body = self.body if isinstance(self.body, bytes) else str(self.body or "").encode("utf-8")
    ep = _served_endpoint(backend, account, name)
    chosen, handler, _ = _route(backend, account, ep, target, body, asynchronous=False)
    answer = _answer(name, chosen, handler(body, chosen.name))
    _capture(account, backend, ep.config_name, name, chosen.name, body, answer)
    headers = {
        "Content-Type": "application/json",
        "x-Amzn-Invoked-Production-Variant": chosen.name,
    }
    custom = self.headers.get("X-Amzn-SageMaker-Custom-Attributes")
    if custom:
        headers["X-Amzn-SageMaker-Custom-Attributes"] = custom
    return 200, headers, answer


# The largest inline ``Body`` InvokeEndpointAsync takes (the API reference: 128,000 bytes).
INLINE_ASYNC_BODY = 128_000


def _s3(account: str) -> Any:
    from moto.s3.models import s3_backends

    return s3_backends[account]["aws"]


def _async_input(account: str, location: str | None, inline: bytes) -> bytes:
    """The request an asynchronous invocation reads: the object at ``InputLocation``, or the
    inline ``Body`` (exactly one of them)."""
    if location and inline:
        raise RuntimeValidationError(
            "Body and InputLocation are mutually exclusive; provide exactly one of them."
        )
    if not location:
        if not inline:
            raise RuntimeValidationError("Provide exactly one of Body and InputLocation.")
        if len(inline) > INLINE_ASYNC_BODY:
            raise RuntimeValidationError(
                f"The inline Body is {len(inline)} bytes; it can be up to {INLINE_ASYNC_BODY} "
                "bytes. Upload larger requests to Amazon S3 and pass InputLocation."
            )
        return inline
    from moto.s3.exceptions import MissingBucket

    bucket, _, key = location.removeprefix("s3://").partition("/")
    found = None
    if location.startswith("s3://") and key:
        with contextlib.suppress(MissingBucket):
            found = _s3(account).get_object(bucket, key)
    if found is None:
        raise RuntimeValidationError(
            f"Failed to read the input at InputLocation {location}: there is no such object."
        )
    return bytes(found.value)


def _put(account: str, uri: str, data: bytes) -> None:
    """Write one result object; a missing bucket loses it, as on AWS (nothing can read it)."""
    from moto.s3.exceptions import MissingBucket

    bucket, _, key = uri.removeprefix("s3://").partition("/")
    with contextlib.suppress(MissingBucket):
        _s3(account).put_object(bucket, key, data)


def invoke_endpoint_async(self: SageMakerRuntimeResponse) -> TYPE_RESPONSE:
    """Read the request from S3 (or the inline ``Body``), route it like InvokeEndpoint, and write
    the model's answer to ``<S3OutputPath>/<uuid>.out``, or its failure to
    ``<S3FailurePath>/<uuid>-error.out`` (:meth:`SageMakerFake.hold_async_results` delays that)."""
    account, region = self.current_account, self.region
    backend = sagemaker_backends[account][region]
    state = state_of(backend)
    name = _endpoint_name(self)
    inference_id = self.headers.get("X-Amzn-SageMaker-Inference-Id") or str(uuid4())
    inline = self.body if isinstance(self.body, bytes) else str(self.body or "").encode("utf-8")
    ep = _served_endpoint(backend, account, name)
    body = _async_input(account, self.headers.get("X-Amzn-SageMaker-InputLocation"), inline)
    chosen, handler, async_config = _route(backend, account, ep, None, body, asynchronous=True)
    outputs = async_config.get("OutputConfig") or {}
    result = str(uuid4())
    output = f"{str(outputs.get('S3OutputPath', '')).rstrip('/')}/{result}.out"
    failure_path = str(outputs.get("S3FailurePath") or "")
    failure = f"{failure_path.rstrip('/')}/{result}-error.out" if failure_path else None
    config_name = ep.config_name

    def run() -> None:
        try:
            predictions = handler(body, chosen.name)
        except Exception as exc:  # the model failed: its message is the failure object
            if failure:
                _put(account, failure, str(exc).encode("utf-8"))
            return
        answer = _answer(name, chosen, predictions)
        _capture(account, backend, config_name, name, chosen.name, body, answer)
        _put(account, output, answer.encode("utf-8"))

    with state.lock:
        held = state.async_held
        if held:
            state.async_pending.append(run)
    if not held:
        run()
    headers = {
        "status": "202",  # moto's status; InvokeEndpointAsync answers 202 Accepted
        "Content-Type": "application/json",
        "X-Amzn-SageMaker-OutputLocation": output,
    }
    if failure:
        headers["X-Amzn-SageMaker-FailureLocation"] = failure
    return 202, headers, json.dumps({"InferenceId": inference_id})


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
