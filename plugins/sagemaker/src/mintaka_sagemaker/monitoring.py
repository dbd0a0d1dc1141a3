"""Monitoring inputs on SageMaker: data capture on the endpoint config, metrics from CloudWatch.

Capture is ``DataCaptureConfig`` on a new endpoint config (none is made when the endpoint's
config already captures as asked: a new config redeploys the endpoint). SageMaker writes one
JSON Lines file per batch under ``<destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/``, each line
``{"captureData": {"endpointInput": {...}, "endpointOutput": {...}}, "eventMetadata": {"eventId",
"inferenceTime"}, "eventVersion"}`` with ``data`` encoded as ``JSON``, ``CSV`` or ``BASE64``;
:meth:`read_captured` lists the endpoint's prefix and parses those lines; given ``since`` (an
import's look-back window) it lists each variant from the hour folder before ``since``'s on,
so files imported long ago are never downloaded again.

Metrics are CloudWatch's ``AWS/SageMaker`` per variant: ``Invocations`` (every request),
``Invocation5XXErrors`` (the requests the model failed on, ``errors``) and
``Invocation4XXErrors`` (those refused, ``invalid``), sums over the window, and ``ModelLatency``
(p50/p99, microseconds, reported in milliseconds).

Model Monitor schedules are read, never made: Mintaka's drift, performance and fairness signals
run in core on the captured traffic read back here, the same way on every backend, so a
SageMaker monitoring schedule is something someone else set up. :meth:`monitoring_schedules`
and :meth:`monitoring_executions` read them, and discovery reports them on the endpoints they
watch.
"""

from __future__ import annotations

import base64
import json
import logging
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from mintaka.domain.monitoring import CaptureConfig, CapturedRecord
from mintaka.domain.names import route_name_of
from mintaka.domain.serving import EndpointMetrics
from mintaka.errors import NotFound
from mintaka_sagemaker.serving import SageMakerServing

log = logging.getLogger(__name__)

NAMESPACE = "AWS/SageMaker"
# How far a capture file's hour folder can be from the records in it: SageMaker buffers them.
CAPTURE_FOLDER_SLACK = timedelta(hours=1)


def _decode(part: dict[str, Any] | None) -> tuple[Any, str | None]:
    """(decoded JSON or None, the raw text when it is not JSON)."""
    if not part or "data" not in part:
        return None, None
    data = str(part["data"])
    encoding = str(part.get("encoding", "JSON")).upper()
    if encoding == "BASE64":
        data = base64.b64decode(data).decode("utf-8", errors="replace")
    try:
        return json.loads(data), None
    except ValueError:
        return None, data


def _shaped(value: Any) -> Any:
    """Keep what ``CapturedRecord`` can hold (an object, a list of objects or of numbers)."""
    if isinstance(value, dict):
        return value
    if isinstance(value, list) and (
        all(isinstance(v, dict) for v in value)
        or all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        return value
    return None if value is None else {"value": value}


def parse_capture_line(endpoint: str, variant: str, line: str) -> CapturedRecord | None:
    """One line of a SageMaker capture file as a record (None for a blank line)."""
    if not line.strip():
        return None
    event = json.loads(line)
    capture = event.get("captureData", {})
    meta = event.get("eventMetadata", {})
    inputs, raw_in = _decode(capture.get("endpointInput"))
    outputs, raw_out = _decode(capture.get("endpointOutput"))
    at = datetime.fromisoformat(str(meta["inferenceTime"]).replace("Z", "+00:00"))
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    extra: dict[str, Any] = {"event_version": event.get("eventVersion")}
    if meta.get("inferenceId"):
        extra["inference_id"] = meta["inferenceId"]
    if raw_in is not None:
        extra["raw_input"] = raw_in
    if raw_out is not None:
        extra["raw_output"] = raw_out
    return CapturedRecord(
        endpoint=endpoint,
        route=route_name_of(variant),
        event_id=str(meta["eventId"]),
        at=at,
        inputs=_shaped(inputs),
        outputs=_shaped(outputs),
        extra=extra,
    )


def _capture_key(capture: dict[str, Any] | None) -> tuple[Any, ...]:
    """What a ``DataCaptureConfig`` changes about an endpoint: nothing when capture is off."""
    if not capture or not capture.get("EnableCapture"):
        return (False,)
    header = capture.get("CaptureContentTypeHeader") or {}
    return (
        True,
        int(capture.get("InitialSamplingPercentage", 0)),
        str(capture.get("DestinationS3Uri", "")).rstrip("/"),
        frozenset(str(o.get("CaptureMode")) for o in capture.get("CaptureOptions") or []),
        frozenset(str(t) for t in header.get("JsonContentTypes") or []),
        frozenset(str(t) for t in header.get("CsvContentTypes") or []),
        capture.get("KmsKeyId"),
    )


def _same_capture(current: dict[str, Any] | None, wanted: dict[str, Any]) -> bool:
    """Whether an endpoint config with capture ``current`` already captures as ``wanted``."""
    return _capture_key(current) == _capture_key(wanted)


class SageMakerMonitoring(SageMakerServing):
    """Data capture and CloudWatch metrics."""

    def _capture_destination(self, endpoint: str) -> str:
        return self.settings.s3_uri("capture")

    def configure_capture(self, endpoint: str, config: CaptureConfig) -> None:
        """Switch the endpoint to a config with this capture, unless its config already has it:
        a new config is a blue/green redeploy on SageMaker, so asking again changes nothing."""
        described = self._describe_endpoint(endpoint)
        capture = self._capture_request(endpoint, config)
        in_place = self._config_in_place(described)
        if _same_capture(self._capture_of(in_place), capture):
            return
        current = self._endpoint_from(described)
        self._deploy_config(
            endpoint,
            current.routes,
            current.traffic,
            capture=capture,
            described=described,
            old_config=in_place,
        )

    def _capture_request(self, endpoint: str, config: CaptureConfig) -> dict[str, Any]:
        """The ``DataCaptureConfig`` that ``config`` asks for."""
        options = [
            {"CaptureMode": mode}
            for mode, wanted in (
                ("Input", config.capture_inputs),
                ("Output", config.capture_outputs),
            )
            if wanted
        ] or [{"CaptureMode": "Input"}]
        return {
            "EnableCapture": config.enabled and (config.capture_inputs or config.capture_outputs),
            "InitialSamplingPercentage": config.sample_percent,
            "DestinationS3Uri": config.destination or self._capture_destination(endpoint),
            "CaptureOptions": options,
            "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"]},
        }

    def _config_in_place(self, described: dict[str, Any]) -> dict[str, Any] | None:
        """The described endpoint's config; None without one, or when the config is gone (then
        a new config is made as for any other change)."""
        name = str(described.get("EndpointConfigName", ""))
        if not name:
            return None
        try:
            return dict(self._sm("describe_endpoint_config", EndpointConfigName=name))
        except NotFound:
            return None

    def _capture_keys(self, bucket: str, root: str, since: datetime | None) -> Iterator[str]:
        """The keys under ``root`` that can hold records at or after ``since``: every key
        without it, else each variant's keys from the hour folder before ``since``'s on (S3 lists
        keys in order, and the folders are dates), so an import never downloads the files it
        read long ago."""
        if since is None:
            for page in self._pages("s3", "list_objects_v2", Bucket=bucket, Prefix=root):
                yield from (str(item["Key"]) for item in page.get("Contents", []))
            return
        hour = (since if since.tzinfo is None else since.astimezone(UTC)) - CAPTURE_FOLDER_SLACK
        first = hour.strftime("%Y/%m/%d/%H")
        pages = self._pages("s3", "list_objects_v2", Bucket=bucket, Prefix=root, Delimiter="/")
        variants = [str(p["Prefix"]) for page in pages for p in page.get("CommonPrefixes", [])]
        for variant in variants:
            for page in self._pages(
                "s3",
                "list_objects_v2",
                Bucket=bucket,
                Prefix=variant,
                StartAfter=variant + first,
            ):
                yield from (str(item["Key"]) for item in page.get("Contents", []))

    def read_captured(
        self, endpoint: str, since: datetime | None = None, limit: int | None = None
    ) -> list[CapturedRecord]:
        described = self._describe_endpoint(endpoint)
        capture = self._current_capture(str(described.get("EndpointConfigName", ""))) or {}
        destination = capture.get("DestinationS3Uri") or self._capture_destination(endpoint)
        bucket, _, prefix = str(destination).removeprefix("s3://").partition("/")
        # SageMaker writes under the endpoint's own name.
        cloud = self.settings.endpoint_of(endpoint)
        root = "/".join(p for p in (prefix.strip("/"), cloud) if p) + "/"
        records: list[CapturedRecord] = []
        for key in self._capture_keys(bucket, root, since):
            if not key.endswith(".jsonl"):
                continue
            variant = key[len(root) :].split("/", 1)[0]
            body = self._call("s3", "get_object", Bucket=bucket, Key=key)["Body"].read()
            text = body.decode("utf-8", errors="replace")
            for number, line in enumerate(text.splitlines(), start=1):
                try:
                    record = parse_capture_line(endpoint, variant, line)
                except (ValueError, KeyError, TypeError, AttributeError) as exc:
                    # A line cut short or not SageMaker's: the others are still imported.
                    log.warning("skipped capture line s3://%s/%s:%d: %r", bucket, key, number, exc)
                    continue
                if record is not None and (since is None or record.at >= since):
                    records.append(record)
        records.sort(key=lambda r: (r.at, r.event_id))
        return records if limit is None else records[:limit]

    def monitoring_schedules(self, endpoint: str | None = None) -> list[dict[str, Any]]:
        """Model Monitor schedules (all of them, or those watching ``endpoint``): name, status,
        monitoring type and endpoint."""
        filters = {"EndpointName": self.settings.endpoint_of(endpoint)} if endpoint else {}
        return [
            {
                "name": str(summary["MonitoringScheduleName"]),
                "status": str(summary.get("MonitoringScheduleStatus", "")),
                "type": str(summary.get("MonitoringType", "")),
                "endpoint": self.settings.endpoint_name_of(str(summary.get("EndpointName", ""))),
            }
            for page in self._pages("sagemaker", "list_monitoring_schedules", **filters)
            for summary in page.get("MonitoringScheduleSummaries", [])
        ]

    def monitoring_executions(
        self, schedule: str, since: datetime | None = None
    ) -> list[dict[str, Any]]:
        """The runs of one monitoring schedule, oldest first: when each was scheduled, its status
        (``CompletedWithViolations`` when it found violations) and why it failed."""
        filters: dict[str, Any] = {"ScheduledTimeAfter": since} if since else {}
        runs = [
            {
                "scheduled": execution["ScheduledTime"],
                "status": str(execution["MonitoringExecutionStatus"]),
                "failure_reason": execution.get("FailureReason"),
                "processing_job": execution.get("ProcessingJobArn"),
            }
            for page in self._pages(
                "sagemaker",
                "list_monitoring_executions",
                MonitoringScheduleName=schedule,
                SortBy="ScheduledTime",
                SortOrder="Ascending",
                **filters,
            )
            for execution in page.get("MonitoringExecutionSummaries", [])
        ]
        return runs

    def read_metrics(self, endpoint: str, start: datetime, end: datetime) -> EndpointMetrics:
        described = self._describe_endpoint(endpoint)
        variants = [str(v["VariantName"]) for v in described.get("ProductionVariants") or []]
        seconds = max(60, math.ceil((end - start).total_seconds() / 60) * 60)
        queries: list[dict[str, Any]] = []
        for i, variant in enumerate(variants):
            for metric, tag in (
                ("Invocations", "r"),
                ("Invocation5XXErrors", "e"),
                ("Invocation4XXErrors", "x"),
            ):
                queries.append(
                    {
                        "Id": f"{tag}{i}",
                        "MetricStat": {
                            "Metric": {
                                "Namespace": NAMESPACE,
                                "MetricName": metric,
                                "Dimensions": self._dimensions(endpoint, variant),
                            },
                            "Period": seconds,
                            "Stat": "Sum",
                        },
                        "ReturnData": True,
                    }
                )
        sums: dict[str, float] = {}
        if queries:
            for page in self._pages(
                "cloudwatch",
                "get_metric_data",
                MetricDataQueries=queries,
                StartTime=start,
                EndTime=end,
            ):
                for result in page.get("MetricDataResults", []):
                    sums[result["Id"]] = sums.get(result["Id"], 0.0) + sum(result.get("Values", []))
        metrics = EndpointMetrics(endpoint=endpoint, start=start, end=end)
        for i, variant in enumerate(variants):
            route = route_name_of(variant)
            metrics.requests[route] = int(sums.get(f"r{i}", 0.0))
            metrics.errors[route] = int(sums.get(f"e{i}", 0.0))
            metrics.invalid[route] = int(sums.get(f"x{i}", 0.0))
            latency = self._latency(endpoint, variant, start, end, seconds)
            if "p50" in latency:
                metrics.p50_latency_ms[route] = latency["p50"]
            if "p99" in latency:
                metrics.p99_latency_ms[route] = latency["p99"]
        return metrics

    def _dimensions(self, endpoint: str, variant: str) -> list[dict[str, str]]:
        return [
            {"Name": "EndpointName", "Value": self.settings.endpoint_of(endpoint)},
            {"Name": "VariantName", "Value": variant},
        ]

    def _latency(
        self, endpoint: str, variant: str, start: datetime, end: datetime, seconds: int
    ) -> dict[str, float]:
        """p50 and p99 ``ModelLatency`` in ms (the worst period where the window spans several)."""
        found = self._call(
            "cloudwatch",
            "get_metric_statistics",
            Namespace=NAMESPACE,
            MetricName="ModelLatency",
            Dimensions=self._dimensions(endpoint, variant),
            StartTime=start,
            EndTime=end,
            Period=seconds,
            ExtendedStatistics=["p50", "p99"],
        )
        latency: dict[str, float] = {}
        for point in found.get("Datapoints", []):
            for stat, value in (point.get("ExtendedStatistics") or {}).items():
                latency[stat] = max(latency.get(stat, 0.0), float(value) / 1000.0)
        return latency
