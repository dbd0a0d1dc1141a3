"""Installing the extension into moto, and the handle tests use to script and inspect it."""

from __future__ import annotations

import functools
import threading
import urllib.request
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import botocore.session
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.core.utils import utcnow
from moto.sagemaker.models import SageMakerModelBackend, sagemaker_backends
from moto.sagemaker.responses import SageMakerResponse
from moto.sagemaker.utils import arn_formatter
from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

from . import endpoints, lineage, monitoring, pipelines, registry, runtime
from ._compat import compatibility_problems
from .originals import ORIGINALS
from .state import (
    ExecutionScript,
    Invocation,
    InvokeHandler,
    MonitoringExecution,
    StatusScript,
    state_of,
)

SAGEMAKER_PATCHES: dict[str, Any] = {
    "create_model": registry.create_model,
    "create_model_package_group": registry.create_model_package_group,
    "delete_model_package_group": registry.delete_model_package_group,
    "create_model_package": registry.create_model_package,
    "describe_model_package": registry.describe_model_package,
    "list_model_packages": registry.list_model_packages,
    "update_model_package": registry.update_model_package,
    "delete_model_package": registry.delete_model_package,
    "add_tags": registry.add_tags,
    "list_tags": registry.list_tags,
    "delete_tags": registry.delete_tags,
    "create_endpoint_config": endpoints.create_endpoint_config,
    "describe_endpoint_config": endpoints.describe_endpoint_config,
    "delete_endpoint_config": endpoints.delete_endpoint_config,
    "create_endpoint": endpoints.create_endpoint,
    "describe_endpoint": endpoints.describe_endpoint,
    "delete_endpoint": endpoints.delete_endpoint,
    "update_endpoint": endpoints.update_endpoint,
    "update_endpoint_weights_and_capacities": endpoints.update_endpoint_weights_and_capacities,
    **pipelines.OPERATIONS,
    **monitoring.OPERATIONS,
    **lineage.OPERATIONS,
}

RUNTIME_PATCHES: dict[str, Any] = {
    "invoke_endpoint": runtime.invoke_endpoint,
    "invoke_endpoint_async": runtime.invoke_endpoint_async,
}

_INSTALL_LOCK = threading.Lock()
_patched = False
_permanent = False
_scoped_users = 0


class IncompatibleMotoError(RuntimeError):
    """The installed moto lacks an internal the extension patches."""


def _patch() -> None:
    global _patched
    if _patched:
        return
    problems = compatibility_problems(check_version=False)
    if problems:
        raise IncompatibleMotoError("; ".join(problems))
    for cls, patches in (
        (SageMakerResponse, SAGEMAKER_PATCHES),
        (SageMakerRuntimeResponse, RUNTIME_PATCHES),
    ):
        for name, func in patches.items():
            ORIGINALS[name] = cls.__dict__.get(name)
            setattr(cls, name, func)
    _patched = True


def _unpatch() -> None:
    global _patched
    if not _patched:
        return
    for cls, patches in (
        (SageMakerResponse, SAGEMAKER_PATCHES),
        (SageMakerRuntimeResponse, RUNTIME_PATCHES),
    ):
        for name in patches:
            original = ORIGINALS.pop(name, None)
            if original is None:
                delattr(cls, name)
            else:
                setattr(cls, name, original)
    _patched = False


def install() -> None:
    """Patch moto's SageMaker and SageMaker Runtime responses for good. Idempotent, process-wide.

    Works for ``mock_aws`` and for ``ThreadedMotoServer`` in the same process (both dispatch to
    the same response classes and backends). Raises :class:`IncompatibleMotoError` when moto no
    longer has what the extension relies on. Prefer :func:`installed` (or :func:`mock_sagemaker`)
    in a test suite shared with tests that expect plain moto.
    """
    global _permanent
    with _INSTALL_LOCK:
        _patch()
        _permanent = True


def uninstall() -> None:
    """Put moto's own methods back now (the extension's state on backends stays inert)."""
    global _permanent, _scoped_users
    with _INSTALL_LOCK:
        _permanent = False
        _scoped_users = 0
        _unpatch()


def is_installed() -> bool:
    return _patched


@contextmanager
def installed() -> Iterator[None]:
    """The extension for the duration of the block; nests, and leaves :func:`install` alone."""
    global _scoped_users
    with _INSTALL_LOCK:
        _patch()
        _scoped_users += 1
    try:
        yield
    finally:
        with _INSTALL_LOCK:
            _scoped_users -= 1
            if _scoped_users <= 0 and not _permanent:
                _scoped_users = 0
                _unpatch()


@functools.cache
def _enum(shape: str) -> frozenset[str]:
    model = botocore.session.get_session().get_service_model("sagemaker")
    return frozenset(model.shape_for(shape).enum)


class SageMakerFake:
    """Scripts and inspects the fake for one account and region (the same process as moto)."""

    def __init__(self, account_id: str = DEFAULT_ACCOUNT_ID, region_name: str = "us-east-1"):
        self.account_id = account_id
        self.region_name = region_name

    @property
    def backend(self) -> SageMakerModelBackend:
        return sagemaker_backends[self.account_id][self.region_name]

    def script_endpoint(
        self, name: str, statuses: Sequence[str], *, failure_reason: str | None = None
    ) -> None:
        """Queue the statuses the *next* create/update of endpoint ``name`` goes through.

        Each DescribeEndpoint moves one step; the last status is where the step ends
        (``InService``: success; anything else: failed with ``failure_reason``). Queue several
        scripts for several steps. Unscripted steps finish at once.
        """
        self._queue(self._valid(statuses, "EndpointStatus"), failure_reason, name.lower(), "e")

    def script_model_package(
        self, group_or_name: str, statuses: Sequence[str], *, failure_reason: str | None = None
    ) -> None:
        """Queue the statuses the next package created in group ``group_or_name`` goes through
        (or the unversioned package of that name), one per DescribeModelPackage. Given the ARN
        of an existing package, the script applies to that package from its next describe."""
        valid = self._valid(statuses, "ModelPackageStatus")
        state = state_of(self.backend)
        if group_or_name in self.backend.model_packages:
            with state.lock:
                package = registry.package_state(state, group_or_name)
                package.script = deque(valid)
                package.status = valid[0]
                package.failure_reason = failure_reason
            return
        self._queue(valid, failure_reason, group_or_name, "p")

    def set_invoke_handler(self, model_name: str, handler: InvokeHandler) -> None:
        """Answer invocations of variants serving ``model_name`` with ``handler(body, variant)``."""
        state_of(self.backend).invoke_handlers[model_name] = handler

    def invocations(
        self, endpoint: str | None = None, *, shadow: bool | None = None
    ) -> list[Invocation]:
        """Requests served so far (``shadow=False``: only answered ones; ``True``: mirrors)."""
        return [
            i
            for i in state_of(self.backend).invocations
            if endpoint in (None, i.endpoint) and shadow in (None, i.shadow)
        ]

    def hold_async_results(self) -> None:
        """Keep InvokeEndpointAsync requests in flight: each is accepted (its output and failure
        locations answered) but its model runs, writing the output or the failure, only when
        :meth:`release_async_results` is called."""
        state = state_of(self.backend)
        with state.lock:
            state.async_held = True

    def release_async_results(self) -> int:
        """Run the held asynchronous requests in the order they came, stop holding new ones, and
        return how many ran."""
        state = state_of(self.backend)
        with state.lock:
            pending, state.async_pending = state.async_pending, []
            state.async_held = False
        for run in pending:
            run()
        return len(pending)

    def script_pipeline_execution(
        self,
        pipeline: str,
        *,
        property_files: Mapping[str, Mapping[str, Any]] | None = None,
        failures: Mapping[str, str] | None = None,
        paced: bool = True,
        reads_per_step: int = 1,
    ) -> None:
        """Script the *next* execution of ``pipeline`` (queue several for several executions).

        ``property_files`` gives the JSON each step's property files hold (``{step: {file:
        json}}``): what a Condition step's ``Std:JsonGet`` reads. ``failures`` fails steps with a
        reason. ``paced`` runs one step per DescribePipelineExecution, or per ``reads_per_step``
        of them (``Executing`` until the last step ends); unpaced, the execution ends inside
        StartPipelineExecution. A stop takes effect at the next describe either way.
        """
        if reads_per_step < 1:
            raise ValueError(f"reads_per_step must be at least 1, got {reads_per_step}")
        script = ExecutionScript(
            property_files={s: dict(files) for s, files in (property_files or {}).items()},
            failures=dict(failures or {}),
            paced=paced,
            reads_per_step=reads_per_step,
        )
        state = state_of(self.backend)
        with state.lock:
            state.execution_scripts.setdefault(pipeline, deque()).append(script)

    def script_monitoring_schedule(
        self, name: str, statuses: Sequence[str], *, failure_reason: str | None = None
    ) -> None:
        """Queue the statuses the next monitoring schedule named ``name`` goes through, one per
        DescribeMonitoringSchedule (``["Pending", "Scheduled"]``, ``["Pending", "Failed"]``)."""
        valid = self._valid(statuses, "ScheduleStatus")
        state = state_of(self.backend)
        with state.lock:
            state.schedule_scripts.setdefault(name, deque()).append(
                StatusScript(valid, failure_reason)
            )

    def add_monitoring_execution(
        self,
        schedule: str,
        status: str = "Completed",
        *,
        scheduled: datetime | None = None,
        failure_reason: str | None = None,
    ) -> None:
        """Record one run of monitoring schedule ``schedule`` (there is no clock that runs it)."""
        status = self._valid([status], "ExecutionStatus")[0]
        state = state_of(self.backend)
        with state.lock:
            found = state.schedules.get(schedule)
            if found is None:
                raise ValueError(f"there is no monitoring schedule {schedule!r}")
            now = utcnow()
            at = scheduled or now
            job = f"model-monitoring-{at:%Y%m%d%H%M}-{found.name}"[:63]
            state.monitoring_executions.append(
                MonitoringExecution(
                    schedule=found.name,
                    endpoint=found.endpoint,
                    monitoring_type=found.monitoring_type,
                    job_definition=found.config.get("MonitoringJobDefinitionName"),
                    status=status,
                    scheduled=at,
                    created=now,
                    modified=now,
                    processing_job_arn=None
                    if status == "Pending"
                    else arn_formatter("processing-job", job, self.account_id, self.region_name),
                    failure_reason=failure_reason if status == "Failed" else None,
                )
            )

    @staticmethod
    def _valid(statuses: Sequence[str], shape: str) -> list[str]:
        allowed = _enum(shape)
        if not statuses:
            raise ValueError("a status script needs at least one status")
        unknown = [s for s in statuses if s not in allowed]
        if unknown:
            raise ValueError(f"{unknown} are not {shape} values; use {sorted(allowed)}")
        return list(statuses)

    def _queue(self, statuses: list[str], reason: str | None, key: str, kind: str) -> None:
        state = state_of(self.backend)
        table = state.endpoint_scripts if kind == "e" else state.package_scripts
        with state.lock:
            table.setdefault(key, deque()).append(StatusScript(statuses, reason))


@contextmanager
def mock_sagemaker(
    account_id: str = DEFAULT_ACCOUNT_ID, region_name: str = "us-east-1"
) -> Iterator[SageMakerFake]:
    """``mock_aws()`` with the extension installed for the block; yields the fake's handle."""
    from moto import mock_aws

    with installed(), mock_aws():
        yield SageMakerFake(account_id, region_name)


@dataclass(frozen=True)
class SageMakerServer:
    """A running ``ThreadedMotoServer`` with the extension installed."""

    endpoint_url: str
    fake: SageMakerFake

    def reset(self) -> None:
        """Clear every moto backend (and the extension's state) through moto's own API."""
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()


@contextmanager
def sagemaker_server(
    account_id: str = DEFAULT_ACCOUNT_ID, region_name: str = "us-east-1"
) -> Iterator[SageMakerServer]:
    """moto's server on 127.0.0.1 (a free port) with the extension installed; reset on exit.

    The extension stays installed while the server runs (it is process-wide: an in-process
    ``mock_aws`` started meanwhile sees it too)."""
    from moto.server import ThreadedMotoServer

    with installed():
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        handle = SageMakerServer(f"http://{host}:{port}", SageMakerFake(account_id, region_name))
        try:
            yield handle
        finally:
            try:
                handle.reset()
            finally:
                server.stop()
