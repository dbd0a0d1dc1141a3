"""Carry out a pipeline run submitted to the local backend: ``python -m
mintaka.local.pipeline_worker RUN_FOLDER``.

The local backend starts this detached (a session of its own, output in the run's ``worker.log``).
It records the run as running, waits while the run is held, then opens a
:class:`~mintaka.Platform` on the submitting home with the local backend and runs the spec through
the local executor under the submitted run id (each computing step in a sub-process of its own;
run state, lineage and audit as for any local run). It records how the run ended before it exits.
SIGTERM (``stop_pipeline_run``) interrupts the run as Ctrl-C interrupts a run in the foreground:
the executor records the step and the run as stopped.
"""

from __future__ import annotations

import signal
import sys
import time
import traceback
from datetime import datetime
from pathlib import Path
from types import FrameType

from mintaka.clock import SystemClock
from mintaka.domain.pipelines import STOPPED_ON_REQUEST, PipelineStatus
from mintaka.errors import MintakaError
from mintaka.local.pipelines import (
    ENDED,
    HOLD,
    STOP,
    SUBMISSION,
    Progress,
    Submission,
    stop_requested,
    write_progress,
)

HOLD_POLL = 0.05


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _executor_end(submission: Submission, started: datetime) -> Progress | None:
    """How the executor recorded the run's end, when it did."""
    from mintaka.pipelines.local import RunState

    path = Path(submission.home) / "pipelines" / "runs" / f"{submission.id}.json"
    if not path.is_file():
        return None
    run = RunState.model_validate_json(path.read_text()).run
    if run.status not in ENDED:
        return None
    return Progress(
        status=run.status,
        started_at=started,
        ended_at=run.ended_at,
        failure_reason=run.failure_reason,
    )


def _run(folder: Path, submission: Submission) -> None:
    """Wait while held, then run the spec; raises what the run raises."""
    from mintaka.platform import Platform

    while (folder / HOLD).exists() and not stop_requested(folder):
        time.sleep(HOLD_POLL)
    if stop_requested(folder):
        raise KeyboardInterrupt
    with Platform(
        submission.home,
        backend="local",
        backend_settings={"path": submission.backend_path},
    ) as platform:
        platform.pipelines.executor().run(
            submission.spec,
            submission.parameters,
            run_id=submission.id,
            stop_marker=folder / STOP,
            explicit_limits=submission.explicit_limits,
        )


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        raise SystemExit("usage: python -m mintaka.local.pipeline_worker RUN_FOLDER")
    folder = Path(args[0])
    clock = SystemClock()
    signal.signal(signal.SIGTERM, _interrupt)
    submission = Submission.model_validate_json((folder / SUBMISSION).read_text())
    started = clock.now()
    failure: str | None = None
    status = PipelineStatus.SUCCEEDED
    try:
        write_progress(folder, Progress(status=PipelineStatus.RUNNING, started_at=started))
        print(f"pipeline run {submission.id} ({submission.spec.name}) started", flush=True)
        _run(folder, submission)
    except KeyboardInterrupt:
        status, failure = PipelineStatus.STOPPED, STOPPED_ON_REQUEST
    except MintakaError as exc:
        status, failure = PipelineStatus.FAILED, str(exc)
    except Exception as exc:
        traceback.print_exc()
        status, failure = PipelineStatus.FAILED, f"{type(exc).__name__}: {exc}"
    finally:
        # From here on the end is being recorded: a stop only waits for the exit.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    end = _executor_end(submission, started) or Progress(
        status=status, started_at=started, ended_at=clock.now(), failure_reason=failure
    )
    if end.status is not PipelineStatus.SUCCEEDED and stop_requested(folder):
        end = end.model_copy(
            update={"status": PipelineStatus.STOPPED, "failure_reason": STOPPED_ON_REQUEST}
        )
    write_progress(folder, end)
    print(f"pipeline run {submission.id}: {end.status.value}", end.failure_reason or "", flush=True)
    return 0 if end.status is PipelineStatus.SUCCEEDED else 1


if __name__ == "__main__":
    raise SystemExit(main())
