"""Model Monitor schedules and their executions, which moto 5.2.5 does not implement.

``CreateMonitoringSchedule`` takes an inline ``MonitoringJobDefinition`` or the name of a job
definition moto keeps (``CreateDataQualityJobDefinition`` and its siblings) with its
``MonitoringType``; the endpoint the definition reads must exist. A schedule name that exists is
``ResourceInUse``; a missing schedule is ``ResourceNotFound``. A new schedule is ``Pending`` and
becomes ``Scheduled`` on the call itself, or follows a status script
(:meth:`~.patching.SageMakerFake.script_monitoring_schedule`), one status per describe, like an
endpoint. No clock runs the schedule: a test adds the executions it wants to see with
:meth:`~.patching.SageMakerFake.add_monitoring_execution`; ``ListMonitoringExecutions`` filters,
sorts and pages them, and ``DescribeMonitoringSchedule`` reports the latest as
``LastMonitoringExecutionSummary``. Deleting a schedule keeps its executions' history, as AWS does.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from moto.core.responses import ActionResult, EmptyResult
from moto.core.utils import utcnow
from moto.sagemaker.models import SageMakerModelBackend
from moto.sagemaker.responses import SageMakerResponse
from moto.sagemaker.utils import arn_formatter

from .errors import ResourceInUse, ResourceNotFound, ValidationError
from .state import MonitoringExecution, ScheduleState, state_of

NAME_RULE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
MONITORING_TYPES = ("DataQuality", "ModelQuality", "ModelBias", "ModelExplainability")
# MonitoringType -> the moto backend dict holding job definitions of that type.
JOB_DEFINITIONS = {
    "DataQuality": "data_quality_job_definitions",
    "ModelQuality": "model_quality_job_definitions",
    "ModelBias": "model_bias_job_definitions",
    "ModelExplainability": "model_explainability_job_definitions",
}


def _endpoint_in(value: Any) -> str | None:
    """The ``EndpointInput.EndpointName`` anywhere inside a job definition."""
    if isinstance(value, dict):
        endpoint = value.get("EndpointInput")
        if isinstance(endpoint, dict) and endpoint.get("EndpointName"):
            return str(endpoint["EndpointName"])
        values: Any = value.values()
    elif isinstance(value, list):
        values = value
    else:
        return None
    for item in values:
        found = _endpoint_in(item)
        if found:
            return found
    return None


def _schedule(backend: SageMakerModelBackend, name: str | None) -> ScheduleState:
    found = state_of(backend).schedules.get(name or "")
    if found is None:
        raise ResourceNotFound(f"Monitoring schedule {name} does not exist.")
    return found


def _advance(schedule: ScheduleState) -> None:
    if schedule.script:
        schedule.status = schedule.script.popleft()
        schedule.modified = utcnow()


def _execution_summary(execution: MonitoringExecution) -> dict[str, Any]:
    out: dict[str, Any] = {
        "MonitoringScheduleName": execution.schedule,
        "ScheduledTime": execution.scheduled,
        "CreationTime": execution.created,
        "LastModifiedTime": execution.modified,
        "MonitoringExecutionStatus": execution.status,
        "MonitoringType": execution.monitoring_type,
    }
    if execution.endpoint:
        out["EndpointName"] = execution.endpoint
    if execution.processing_job_arn:
        out["ProcessingJobArn"] = execution.processing_job_arn
    if execution.job_definition:
        out["MonitoringJobDefinitionName"] = execution.job_definition
    if execution.failure_reason:
        out["FailureReason"] = execution.failure_reason
    return out


def create_monitoring_schedule(self: SageMakerResponse) -> ActionResult:
    backend = self.sagemaker_backend
    state = state_of(backend)
    name = self._get_param("MonitoringScheduleName")
    config = self._get_param("MonitoringScheduleConfig") or {}
    if not isinstance(name, str) or not NAME_RULE.match(name):
        raise ValidationError(f"MonitoringScheduleName {name!r} must match {NAME_RULE.pattern}.")
    inline = config.get("MonitoringJobDefinition")
    definition_name = config.get("MonitoringJobDefinitionName")
    if bool(inline) == bool(definition_name):
        raise ValidationError(
            "MonitoringScheduleConfig needs exactly one of MonitoringJobDefinition and "
            "MonitoringJobDefinitionName."
        )
    monitoring_type = config.get("MonitoringType") or "DataQuality"
    if monitoring_type not in MONITORING_TYPES:
        raise ValidationError(
            f"MonitoringType must be one of {list(MONITORING_TYPES)}; got {monitoring_type!r}."
        )
    if inline:
        for key in ("MonitoringInputs", "MonitoringOutputConfig", "MonitoringResources"):
            if not inline.get(key):
                raise ValidationError(f"MonitoringJobDefinition needs {key}.")
        if not (inline.get("MonitoringAppSpecification") or {}).get("ImageUri"):
            raise ValidationError(
                "MonitoringJobDefinition needs MonitoringAppSpecification.ImageUri."
            )
        if not inline.get("RoleArn"):
            raise ValidationError("MonitoringJobDefinition needs RoleArn.")
        endpoint = _endpoint_in(inline.get("MonitoringInputs"))
    else:
        if not config.get("MonitoringType"):
            raise ValidationError("MonitoringType is required with MonitoringJobDefinitionName.")
        definitions = getattr(backend, JOB_DEFINITIONS[monitoring_type], {})
        job = definitions.get(definition_name)
        if job is None:
            raise ValidationError(
                f"Could not find {monitoring_type} job definition {definition_name!r}."
            )
        endpoint = _endpoint_in(vars(job))
    expression = (config.get("ScheduleConfig") or {}).get("ScheduleExpression")
    if expression is not None and not re.match(r"^(cron\(.+\)|NOW)$", str(expression)):
        raise ValidationError(
            f"ScheduleExpression {expression!r} must be a cron(...) expression or NOW."
        )
    if endpoint is not None and endpoint not in backend.endpoints:
        arn = arn_formatter("endpoint", endpoint, backend.account_id, backend.region_name)
        raise ValidationError(f'Could not find endpoint "{arn}".')
    arn = arn_formatter("monitoring-schedule", name, backend.account_id, backend.region_name)
    with state.lock:
        if name in state.schedules:
            raise ResourceInUse(f"Monitoring schedule {arn} already exists.")
        now = utcnow()
        schedule = ScheduleState(
            name=name,
            arn=arn,
            config=dict(config),
            endpoint=endpoint,
            monitoring_type=monitoring_type,
            status="Pending",
            created=now,
            modified=now,
            tags=list(self._get_param("Tags") or []),
        )
        queued = state.schedule_scripts.get(name)
        if queued:
            script = queued.popleft()
            schedule.script.extend(script.statuses)
            schedule.status = schedule.script.popleft()
            schedule.failure_reason = script.failure_reason
        else:
            schedule.status = "Scheduled"
        state.schedules[name] = schedule
    return ActionResult({"MonitoringScheduleArn": arn})


def describe_monitoring_schedule(self: SageMakerResponse) -> ActionResult:
    backend = self.sagemaker_backend
    state = state_of(backend)
    with state.lock:
        schedule = _schedule(backend, self._get_param("MonitoringScheduleName"))
        _advance(schedule)
        body: dict[str, Any] = {
            "MonitoringScheduleArn": schedule.arn,
            "MonitoringScheduleName": schedule.name,
            "MonitoringScheduleStatus": schedule.status,
            "MonitoringType": schedule.monitoring_type,
            "CreationTime": schedule.created,
            "LastModifiedTime": schedule.modified,
            "MonitoringScheduleConfig": schedule.config,
        }
        if schedule.endpoint:
            body["EndpointName"] = schedule.endpoint
        if schedule.status == "Failed":
            body["FailureReason"] = schedule.failure_reason or (
                "The monitoring schedule failed (scripted by the SageMaker fake)."
            )
        mine = [e for e in state.monitoring_executions if e.schedule == schedule.name]
        if mine:
            latest = max(mine, key=lambda e: e.scheduled)
            body["LastMonitoringExecutionSummary"] = _execution_summary(latest)
    return ActionResult(body)


def _stamp(value: Any) -> float | None:
    if value is None:
        return None
    return value.timestamp() if isinstance(value, datetime) else float(value)


def _between(at: datetime, after: Any, before: Any) -> bool:
    low, high = _stamp(after), _stamp(before)
    return (low is None or at.timestamp() > low) and (high is None or at.timestamp() < high)


def _page(self: SageMakerResponse, items: list[dict[str, Any]], field: str) -> ActionResult:
    token = self._get_param("NextToken")
    start = int(token) if token and str(token).isdigit() else 0
    size = int(self._get_param("MaxResults") or 10)
    body: dict[str, Any] = {field: items[start : start + size]}
    if start + size < len(items):
        body["NextToken"] = str(start + size)
    return ActionResult(body)


def list_monitoring_schedules(self: SageMakerResponse) -> ActionResult:
    backend = self.sagemaker_backend
    state = state_of(backend)
    endpoint = self._get_param("EndpointName")
    contains = self._get_param("NameContains")
    status = self._get_param("StatusEquals")
    kind = self._get_param("MonitoringTypeEquals")
    with state.lock:
        found = [
            s
            for s in state.schedules.values()
            if endpoint in (None, s.endpoint)
            and (contains is None or contains in s.name)
            and status in (None, s.status)
            and kind in (None, s.monitoring_type)
            and _between(
                s.created,
                self._get_param("CreationTimeAfter"),
                self._get_param("CreationTimeBefore"),
            )
        ]
    sort_by = self._get_param("SortBy") or "CreationTime"
    key = {"Name": lambda s: s.name, "Status": lambda s: s.status}.get(sort_by, lambda s: s.created)
    found.sort(key=key, reverse=self._get_param("SortOrder", "Descending") == "Descending")
    summaries = []
    for s in found:
        item: dict[str, Any] = {
            "MonitoringScheduleName": s.name,
            "MonitoringScheduleArn": s.arn,
            "CreationTime": s.created,
            "LastModifiedTime": s.modified,
            "MonitoringScheduleStatus": s.status,
            "MonitoringType": s.monitoring_type,
        }
        if s.endpoint:
            item["EndpointName"] = s.endpoint
        if s.config.get("MonitoringJobDefinitionName"):
            item["MonitoringJobDefinitionName"] = s.config["MonitoringJobDefinitionName"]
        summaries.append(item)
    return _page(self, summaries, "MonitoringScheduleSummaries")


def delete_monitoring_schedule(self: SageMakerResponse) -> EmptyResult:
    backend = self.sagemaker_backend
    state = state_of(backend)
    with state.lock:
        schedule = _schedule(backend, self._get_param("MonitoringScheduleName"))
        del state.schedules[schedule.name]
    return EmptyResult()


def list_monitoring_executions(self: SageMakerResponse) -> ActionResult:
    backend = self.sagemaker_backend
    state = state_of(backend)
    wanted = {
        "schedule": self._get_param("MonitoringScheduleName"),
        "endpoint": self._get_param("EndpointName"),
        "status": self._get_param("StatusEquals"),
        "monitoring_type": self._get_param("MonitoringTypeEquals"),
        "job_definition": self._get_param("MonitoringJobDefinitionName"),
    }
    with state.lock:
        found = [
            e
            for e in state.monitoring_executions
            if all(v in (None, getattr(e, k)) for k, v in wanted.items())
            and _between(
                e.scheduled,
                self._get_param("ScheduledTimeAfter"),
                self._get_param("ScheduledTimeBefore"),
            )
            and _between(
                e.created,
                self._get_param("CreationTimeAfter"),
                self._get_param("CreationTimeBefore"),
            )
        ]
    sort_by = self._get_param("SortBy") or "CreationTime"
    key = {"ScheduledTime": lambda e: e.scheduled, "Status": lambda e: e.status}.get(
        sort_by, lambda e: e.created
    )
    found.sort(key=key, reverse=self._get_param("SortOrder", "Descending") == "Descending")
    return _page(self, [_execution_summary(e) for e in found], "MonitoringExecutionSummaries")


OPERATIONS = {
    "create_monitoring_schedule": create_monitoring_schedule,
    "describe_monitoring_schedule": describe_monitoring_schedule,
    "list_monitoring_schedules": list_monitoring_schedules,
    "delete_monitoring_schedule": delete_monitoring_schedule,
    "list_monitoring_executions": list_monitoring_executions,
}
