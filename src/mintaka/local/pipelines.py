"""The local backend's pipelines (``Capability.PIPELINES``): a submitted run carried out by a
detached worker process on this machine.

``submit`` checks the definition and the parameters, writes what the run needs under
``<backend path>/pipelines/runs/<run id>/`` (atomically), then starts ``python -m
mintaka.local.pipeline_worker`` in a session of its own, its output in ``worker.log`` beside the
run's files. The worker opens a :class:`~mintaka.Platform` on the same home and runs the spec
through the local executor under the submitted run id, so ``mintaka pipeline show`` and the run's
lineage and audit trail are those of any local run. The files of a run:

- ``submission.json``: the spec, the parameters as submitted (strings), the submission time;
- ``progress.json``: pending, then running (written by the worker), then how it ended;
- ``worker.json``: the worker's pid and its start marker (the process's start time, where the
  system tells it), so a pid that a later process reuses is not taken for the worker;
- ``stop.json``: a stop request; ``hold``: the worker waits before its first step while it exists.

A worker that has gone without recording an end reads back as failed (or as stopped, when a stop
was asked for), never as running. ``stop_pipeline_run`` records the request, ends the worker's
process group (SIGTERM, SIGKILL after a grace period) and records the run as stopped once the
worker is gone, unless the run had ended first. A run resumed after its worker ended follows the
process resuming it (status, and a stop, which sends that process SIGINT).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from pydantic import ValidationError as PydanticValidationError

from mintaka.domain.base import AwareDatetime, Record
from mintaka.domain.pipelines import (
    STOPPED_ON_REQUEST,
    NativePipeline,
    PipelineRun,
    PipelineSpec,
    PipelineStatus,
    StepRun,
)
from mintaka.errors import BackendError, Conflict, NotFound, ValidationError, invalid_fields
from mintaka.files import write_atomic
from mintaka.interfaces import BackendContext, PipelineExecution
from mintaka.processes import HAS_PROC, ProcessId, held_by_another, running, start_marker

if TYPE_CHECKING:
    from mintaka.pipelines.local import RunState

FORMAT = "mintaka-local/1"
RUN_PREFIX = "prun"
_RUN_ID = re.compile(rf"^{RUN_PREFIX}-[0-9a-f]{{16,32}}$")
_PIPELINE_NAME = re.compile(r"^[a-z][a-z0-9-]{0,62}$")

SUBMISSION = "submission.json"
PROGRESS = "progress.json"
WORKER = "worker.json"
STOP = "stop.json"
HOLD = "hold"
LOG = "worker.log"

ENDED = frozenset({PipelineStatus.SUCCEEDED, PipelineStatus.FAILED, PipelineStatus.STOPPED})
# A run whose worker was not recorded this many seconds after its submission never got one.
LAUNCH_TIMEOUT = 60.0


class Submission(Record):
    """What a submitted run needs, written before its worker starts."""

    id: str
    spec: PipelineSpec
    parameters: dict[str, str]
    submitted_at: AwareDatetime
    home: str
    backend_path: str
    # Whether a 0 given to a limit is that limit: a submission queued by an older Mintaka
    # (absent, False) is run with the meaning it had then (see ``RunState.explicit_limits``).
    explicit_limits: bool = False


class Progress(Record):
    """Where a run stands: pending until its worker starts, running, then how it ended."""

    status: PipelineStatus
    started_at: AwareDatetime | None = None
    ended_at: AwareDatetime | None = None
    failure_reason: str | None = None


class WorkerProcess(ProcessId):
    """The worker of a run: its pid (also its process group) and when that process started."""


class StopRequest(Record):
    requested_at: AwareDatetime


# -- processes ----------------------------------------------------------------------------------

# Workers this process started, until seen gone: polling them reaps them, so a worker that ended
# is never kept as a zombie that would look alive.
_started: dict[int, subprocess.Popen[bytes]] = {}


def alive(worker: WorkerProcess) -> bool:
    """Whether the worker process still runs (not a zombie, not another process on its pid)."""
    child = _started.get(worker.pid)
    if child is not None:
        if child.poll() is None:
            return True
        _started.pop(worker.pid, None)
        return False
    return running(worker)


def _held_by_another(worker: WorkerProcess) -> bool:
    return worker.pid not in _started and held_by_another(worker)


def _signal_group(worker: WorkerProcess, signum: int) -> None:
    if _held_by_another(worker):
        return
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(worker.pid, signum)


def _wait_gone(worker: WorkerProcess, timeout: float) -> bool:
    child = _started.get(worker.pid)
    if child is not None:
        try:
            child.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
    deadline = time.monotonic() + timeout
    while alive(worker):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.01)
    return True


def end_worker(worker: WorkerProcess, grace: float) -> None:
    """End the worker's process group: SIGTERM, then SIGKILL if it is still there after
    ``grace`` seconds; then whatever of the group outlived the worker (a step's process), where
    the worker's pid can be told apart from a later process's."""
    known = HAS_PROC or worker.pid in _started
    if alive(worker):
        _signal_group(worker, signal.SIGTERM)
        if not _wait_gone(worker, grace):
            _signal_group(worker, signal.SIGKILL)
            _wait_gone(worker, grace)
    if known:
        _signal_group(worker, signal.SIGKILL)


# -- the files of a run -------------------------------------------------------------------------


def read_progress(folder: Path) -> Progress:
    return Progress.model_validate_json((folder / PROGRESS).read_text())


def write_progress(folder: Path, progress: Progress) -> None:
    write_atomic(folder / PROGRESS, progress.model_dump_json())


def stop_requested(folder: Path) -> bool:
    return (folder / STOP).is_file()


def _worker(folder: Path) -> WorkerProcess | None:
    path = folder / WORKER
    return WorkerProcess.model_validate_json(path.read_text()) if path.is_file() else None


def _launching(folder: Path) -> bool:
    """Whether a run without a recorded worker may still be getting one (its submitter is
    between writing the run's files and starting the worker)."""
    written = (folder / SUBMISSION).stat().st_mtime
    return time.time() - written < LAUNCH_TIMEOUT


def _resumed(folder: Path, worker: WorkerProcess | None) -> RunState | None:
    """The executor's record of the run once a process other than its worker has taken it on
    (``mintaka pipeline resume`` after the worker ended), while that process runs and after;
    None while the worker runs, or when the record is the worker's own."""
    from mintaka.pipelines.local import RunState

    if worker is not None and alive(worker):
        return None
    submission = Submission.model_validate_json((folder / SUBMISSION).read_text())
    path = Path(submission.home) / "pipelines" / "runs" / f"{submission.id}.json"
    if not path.is_file():
        return None
    state = RunState.model_validate_json(path.read_text())
    driver = state.driver
    if driver is None:  # a run interrupted (stopped) has none: the record of how it ended
        return None if state.run.status is PipelineStatus.RUNNING else state
    if worker is not None and (driver.pid, driver.start) == (worker.pid, worker.start):
        return None
    return state


def end_resumer(driver: ProcessId, grace: float) -> None:
    """End a process on this machine resuming a run: SIGINT, which it takes as Ctrl-C (the
    executor records the step and the run as stopped), then SIGKILL if it is still there after
    ``grace`` seconds. Its pid alone is signalled: it may share its process group with a shell."""
    if driver.host is not None and driver.host != socket.gethostname():
        return
    for signum in (signal.SIGINT, signal.SIGKILL):
        if not running(driver):
            return
        with suppress(ProcessLookupError, PermissionError):
            os.kill(driver.pid, signum)
        deadline = time.monotonic() + grace
        while running(driver) and time.monotonic() < deadline:
            time.sleep(0.01)


def spec_of(pipeline: NativePipeline) -> PipelineSpec:
    """The spec a native pipeline of this backend's format carries; ValidationError otherwise."""
    if pipeline.format != FORMAT:
        raise ValidationError(
            f"pipeline {pipeline.pipeline!r} is in format {pipeline.format!r}; the local backend "
            f"runs {FORMAT!r}"
        )
    try:
        spec = PipelineSpec.model_validate(pipeline.definition)
    except PydanticValidationError as exc:
        raise ValidationError(f"pipeline {pipeline.pipeline!r}: {invalid_fields(exc)}") from exc
    if spec.name != pipeline.pipeline:
        raise ValidationError(
            f"pipeline {pipeline.pipeline!r} carries the definition of {spec.name!r}"
        )
    return spec


class LocalPipelines(PipelineExecution):
    """Pipelines for the local backend; mixed into :class:`~mintaka.local.backend.LocalBackend`."""

    path: Path
    context: BackendContext

    # How long a stopped worker has to record its end before its process group is killed.
    stop_grace: ClassVar[float] = 10.0

    @property
    def _pipelines(self) -> Path:
        return self.path / "pipelines"

    def _folder(self, run_id: str) -> Path:
        folder = self._pipelines / "runs" / run_id
        if not _RUN_ID.match(run_id) or not (folder / SUBMISSION).is_file():
            raise NotFound(f"pipeline run {run_id!r} not found in the local backend")
        return folder

    def compile(self, spec: PipelineSpec) -> NativePipeline:
        return NativePipeline(
            pipeline=spec.name, format=FORMAT, definition=spec.model_dump(mode="json")
        )

    def submit(self, pipeline: NativePipeline, parameters: dict[str, str]) -> PipelineRun:
        spec = spec_of(pipeline)
        unknown = sorted(set(parameters) - set(spec.parameters))
        if unknown:
            raise ValidationError(f"pipeline {spec.name!r} declares no parameters {unknown}")
        not_text = sorted(k for k, v in parameters.items() if not isinstance(v, str))
        if not_text:
            raise ValidationError(
                f"pipeline {spec.name!r}: parameters {not_text} are not strings (a submitted "
                "run's parameters are given as text)"
            )
        run_id = self.context.ids.new(RUN_PREFIX)
        folder = self._pipelines / "runs" / run_id
        try:
            folder.mkdir(parents=True)
        except FileExistsError as exc:
            raise Conflict(f"pipeline run {run_id!r} already exists in the local backend") from exc
        now = self.context.clock.now()
        submission = Submission(
            id=run_id,
            spec=spec,
            parameters=dict(parameters),
            submitted_at=now,
            home=str(self.context.home),
            backend_path=str(self.path),
            explicit_limits=True,
        )
        write_atomic(folder / SUBMISSION, submission.model_dump_json())
        write_progress(folder, Progress(status=PipelineStatus.PENDING))
        with suppress(FileNotFoundError):  # the next run of a held pipeline takes the hold
            os.replace(self._pipelines / "holds" / spec.name, folder / HOLD)
        self._launch(folder)
        return self.get_pipeline_run(run_id)

    def _launch(self, folder: Path) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
        }
        if self.context.store_url is not None:
            # The store's URL may hold a password: it goes through the environment, not a file.
            env["MINTAKA_STORE_URL"] = self.context.store_url
        if self.context.actor is not None:  # the run is audited under whoever submitted it
            env["MINTAKA_ACTOR"] = self.context.actor()
        command = [sys.executable, "-m", "mintaka.local.pipeline_worker", str(folder)]
        try:
            with open(folder / LOG, "ab") as log:
                child = subprocess.Popen(
                    command,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
        except OSError as exc:
            write_progress(
                folder,
                Progress(
                    status=PipelineStatus.FAILED,
                    ended_at=self.context.clock.now(),
                    failure_reason=f"the worker process could not start: {exc}",
                ),
            )
            raise BackendError(f"the pipeline worker could not start: {exc}", "local") from exc
        for pid in list(_started):  # reap the workers of earlier runs that have ended
            alive(WorkerProcess(pid=pid))
        _started[child.pid] = child
        worker = WorkerProcess(pid=child.pid, start=start_marker(child.pid))
        write_atomic(folder / WORKER, worker.model_dump_json())

    def get_pipeline_run(self, run_id: str) -> PipelineRun:
        folder = self._folder(run_id)
        submission = Submission.model_validate_json((folder / SUBMISSION).read_text())
        progress = self._settled(folder)
        worker = _worker(folder)
        backend_ids = {"run": run_id, "log": str(folder / LOG)}
        if worker is not None:
            backend_ids["pid"] = str(worker.pid)
        return PipelineRun(
            id=run_id,
            pipeline=submission.spec.name,
            status=progress.status,
            steps=self._steps(submission),
            started_at=progress.started_at or submission.submitted_at,
            ended_at=progress.ended_at,
            backend="local",
            backend_ids=backend_ids,
            parameters=dict(submission.parameters),
            failure_reason=progress.failure_reason,
        )

    def _settled(self, folder: Path) -> Progress:
        """The run's progress; a run whose worker has gone without recording an end is recorded
        as ended here (stopped if a stop was asked for, else failed). A run resumed once its
        worker had ended (``mintaka pipeline resume``) follows the process resuming it."""
        progress = read_progress(folder)
        worker = _worker(folder)
        resumed = _resumed(folder, worker)
        if resumed is not None:
            return self._following(folder, progress, resumed)
        if progress.status in ENDED:
            return progress
        if worker is None and _launching(folder):
            return progress
        if worker is not None and alive(worker):
            return progress
        progress = read_progress(folder)  # the worker records its end before it exits
        if progress.status in ENDED:
            return progress
        if stop_requested(folder):
            reason = STOPPED_ON_REQUEST
            status = PipelineStatus.STOPPED
        else:
            reason = (
                f"the worker process (pid {worker.pid}) ended without recording how the run "
                f"ended; see {folder / LOG}"
                if worker is not None
                else "the worker process was never started"
            )
            status = PipelineStatus.FAILED
        ended = progress.model_copy(
            update={
                "status": status,
                "ended_at": self.context.clock.now(),
                "failure_reason": reason,
            }
        )
        write_progress(folder, ended)
        return ended

    def _following(self, folder: Path, progress: Progress, resumed: RunState) -> Progress:
        """The progress of a resumed run as the executor records it: running while the process
        resuming it runs, else how it ended (stopped when a stop was asked for since the resume,
        failed when that process went without recording an end), recorded once."""
        from mintaka.pipelines.local import stop_asked

        run, driver = resumed.run, resumed.driver
        status, ended_at, reason = run.status, run.ended_at, run.failure_reason
        if status is PipelineStatus.RUNNING and driver is not None and not running(driver):
            status, ended_at = PipelineStatus.FAILED, self.context.clock.now()
            reason = (
                f"interrupted: the process resuming it (pid {driver.pid}) ended without "
                "recording how the run ended"
            )
        if status not in (PipelineStatus.RUNNING, PipelineStatus.SUCCEEDED) and stop_asked(resumed):
            status, reason = PipelineStatus.STOPPED, STOPPED_ON_REQUEST
        if progress.status is status and progress.failure_reason == reason:
            return progress
        following = progress.model_copy(
            update={"status": status, "ended_at": ended_at, "failure_reason": reason}
        )
        write_progress(folder, following)
        return following

    def _steps(self, submission: Submission) -> tuple[StepRun, ...]:
        """The steps as the local executor recorded them, once the worker has started it."""
        from mintaka.pipelines.local import RunState

        state = Path(submission.home) / "pipelines" / "runs" / f"{submission.id}.json"
        if not state.is_file():
            return tuple(
                StepRun(name=step.name, status=PipelineStatus.PENDING)
                for step in submission.spec.steps
            )
        return RunState.model_validate_json(state.read_text()).run.steps

    def stop_pipeline_run(self, run_id: str) -> None:
        folder = self._folder(run_id)
        if self._settled(folder).status not in ENDED and not stop_requested(folder):
            request = StopRequest(requested_at=self.context.clock.now())
            write_atomic(folder / STOP, request.model_dump_json())
        worker = _worker(folder)
        if worker is not None:  # an ended run's worker may still be exiting
            end_worker(worker, self.stop_grace)
        resumed = _resumed(folder, worker)
        if (
            resumed is not None
            and resumed.driver is not None
            and resumed.run.status is PipelineStatus.RUNNING
        ):
            end_resumer(resumed.driver, self.stop_grace)
        self._settled(folder)

    # -- this backend's own ---------------------------------------------------------------------

    def list_pipeline_runs(self) -> list[PipelineRun]:
        """The runs submitted to this backend, oldest first."""
        folder = self._pipelines / "runs"
        found = [
            self.get_pipeline_run(path.name)
            for path in (folder.iterdir() if folder.is_dir() else ())
            if (path / SUBMISSION).is_file()
        ]
        return sorted(found, key=lambda run: (run.started_at, run.id))

    def hold_next_run(self, pipeline: str) -> None:
        """Make the next run submitted of ``pipeline`` wait before its first step until it is
        released (:meth:`release_pipeline_run`) or stopped: to look at a run while it runs."""
        if not _PIPELINE_NAME.match(pipeline):
            raise ValidationError(f"{pipeline!r} is not a pipeline name")
        write_atomic(self._pipelines / "holds" / pipeline, b"")

    def release_pipeline_run(self, run_id: str) -> None:
        """Let a held run go on to its first step (nothing happens for a run not held)."""
        (self._folder(run_id) / HOLD).unlink(missing_ok=True)
