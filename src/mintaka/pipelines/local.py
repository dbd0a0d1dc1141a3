"""The local executor: runs a PipelineSpec step by step, caches, gates, resumes.

Each computing step runs in a sub-process of its own (``python -m mintaka.pipelines.step``);
controller steps (registering a dataset or a model, the gates that read the policy, deploying) run
here, with the platform. A computing step's outputs are cached under a key covering its code's
digest, the shape of its input and output models (fields, types, defaults) and its inputs, with
the content digest of every file or directory it reads, so a re-run
with the same inputs reuses them and changed code or data is a miss. The run's state is written
after every step (``<home>/pipelines/runs/<id>.json``, atomically), so a failed or stopped run
resumes from its last good step. A gate that does not pass stops the run with
:class:`~mintaka.errors.GateFailed`; anything else that fails raises :class:`PipelineFailed`.

The pipeline writes its own lineage and audit trail: the pipeline run, the experiment run it
trains in (code commit, environment, parameters, data versions), each gate's result, and, through
the controller steps, the datasets, model versions and deployments.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import select

from mintaka.artifacts import manifest_of
from mintaka.domain.base import JSONDict
from mintaka.domain.lineage import EdgeKind, LineageEdge, LineageNode, NodeKind
from mintaka.domain.pipelines import (
    STOPPED_ON_REQUEST,
    GateOutcome,
    PipelineRun,
    PipelineSpec,
    PipelineStatus,
    StepRun,
    StepSpec,
)
from mintaka.domain.runs import RunStatus
from mintaka.errors import (
    Conflict,
    GateFailed,
    MintakaError,
    NotFound,
    ValidationError,
    invalid_fields,
)
from mintaka.files import write_atomic
from mintaka.pipelines.claims import claim, release
from mintaka.pipelines.contract import (
    StepContext,
    StepContract,
    check_spec,
    merged_parameters,
    refuse_text_not_unicode,
    refuse_unmeasured_metrics,
    unmeasured_metrics,
)
from mintaka.processes import ProcessId, ending_with_this_process, running, this_process
from mintaka.provenance import code_commit, environment
from mintaka.store.schema import model_versions

if TYPE_CHECKING:
    from mintaka.platform import Platform

SEED_NAMES = ("seed", "random_state")

log = logging.getLogger(__name__)


class PipelineFailed(MintakaError):
    """A pipeline step failed; ``.run_id`` resumes it, ``.step`` names the step."""

    def __init__(self, message: str, *, run_id: str, step: str) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.step = step


def failed_run(exc: BaseException) -> str | None:
    """The id of the pipeline run a step of which failed with ``exc`` (``.run_id``, set on any
    MintakaError a step fails with, as on PipelineFailed and GateFailed): resuming it goes on
    from its last good step. None for an error no step raised."""
    run_id = getattr(exc, "run_id", None)
    return run_id if isinstance(run_id, str) else None


@dataclass(frozen=True)
class StepEvent:
    """Progress of a run, one event per step transition (for progress bars and logs)."""

    run_id: str
    step: str
    index: int
    total: int
    status: Literal["started", "succeeded", "cached", "reused", "failed"]
    detail: str = ""


class RunState(BaseModel):
    """Everything a run needs to resume, and what makes it reproducible."""

    spec: PipelineSpec
    parameters: JSONDict
    run: PipelineRun
    trigger: str = "manual"
    reason: str = ""
    experiment_run: str | None = None
    datasets: list[str] = Field(default_factory=list)
    code_commit: str | None = None
    environment: dict[str, str] = Field(default_factory=dict)
    seeds: dict[str, Any] = Field(default_factory=dict)
    data_digests: dict[str, str] = Field(default_factory=dict)
    # The content digests of each succeeded step's path outputs, checked before a resume reuses
    # them (a run recorded by an older Mintaka has none: its outputs are reused unchecked).
    output_digests: dict[str, JSONDict] = Field(default_factory=dict)
    model: str | None = None
    # The experiment run of this attempt once a model version was registered from it: the run
    # stays as the version was registered, so later steps add no data nor metrics to it.
    registered_run: str | None = None
    # The process carrying the run out while it is running: a run whose process has gone
    # without recording an end reads back as failed, never as running; as stopped when the
    # file ``stop_marker`` (a stop request, written by whoever asked) exists.
    driver: ProcessId | None = None
    stop_marker: str | None = None
    # The stop request (its file, as ``_request_file`` tells it) an earlier attempt carried out,
    # recorded by the resume as it names its process as the driver and cleared by it after: until
    # then that file asks no stop of the resumed attempt.
    stop_carried_out: str | None = None
    # Whether a 0 given to a limit is that limit. A run recorded by an older Mintaka (False)
    # read a 0 given to an input its step names in ``ZERO_WAS_UNSET`` as "no limit", and keeps
    # reading it so when resumed.
    explicit_limits: bool = False
    # The parameters whose 0 is a limit all the same in a run without explicit limits: those
    # given at retrain time on a binding recorded when a 0 meant none (given now, they mean what
    # a 0 means now), while the zeros the binding holds keep their older meaning.
    limits_given: list[str] = Field(default_factory=list)


def _request_file(path: Path) -> str | None:
    """The file at ``path`` told apart from any file written there before or after it (None:
    there is none): a stop request is written anew, never changed in place."""
    try:
        found = path.stat()
    except FileNotFoundError:
        return None
    return f"{found.st_ino}-{found.st_mtime_ns}-{found.st_size}"


def stop_asked(state: RunState) -> bool:
    """Whether a stop is asked of the attempt ``state`` records: its stop request file exists
    and is not the request an earlier attempt carried out (which the resume clears)."""
    if state.stop_marker is None:
        return False
    found = _request_file(Path(state.stop_marker))
    return found is not None and found != state.stop_carried_out


def _zero_as_unset(
    model: type[BaseModel], values: dict[str, Any], kept: Collection[str] = ()
) -> dict[str, Any]:
    """``values`` without the zeros ``model`` names in ``ZERO_WAS_UNSET`` (but those of the
    fields ``kept``): the meaning a 0 had for those inputs when a run recorded without explicit
    limits was started."""
    unset = frozenset(getattr(model, "ZERO_WAS_UNSET", frozenset())) - frozenset(kept)
    return {
        name: value for name, value in values.items() if not (name in unset and _is_zero(value))
    }


def zero_limit_parameters(
    spec: PipelineSpec, contracts: Mapping[str, StepContract], parameters: Mapping[str, Any]
) -> set[str]:
    """The names of ``parameters`` whose value is a 0 wired to an input its step names in
    ``ZERO_WAS_UNSET``: those a run without explicit limits reads as "no limit"."""
    names: set[str] = set()
    for step in spec.steps:
        unset: frozenset[str] = getattr(
            contracts[step.name].input_model, "ZERO_WAS_UNSET", frozenset()
        )
        for field_name, (source, name) in step.references().items():
            if source == "params" and field_name in unset and _is_zero(parameters[name]):
                names.add(name)
    return names


_FLOAT: TypeAdapter[float] = TypeAdapter(float)


def _is_zero(value: Any) -> bool:
    """Whether ``value`` validates as a float equal to 0, as the step's input would read it
    (``0``, ``0.0``, the text ``"0"`` or ``"-0"``); a bool is no number here."""
    if isinstance(value, bool):
        return False
    try:
        return _FLOAT.validate_python(value) == 0
    except PydanticValidationError:
        return False


def canonical_digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def content_digest(path: Path) -> str | None:
    return manifest_of(path).digest if path.exists() else None


def _digest_of(value: str) -> str | None:
    """The content digest of the file or directory a path field's JSON value names."""
    return content_digest(Path(value))


class LocalExecutor:
    """Runs pipelines on this machine; see the module docstring."""

    def __init__(
        self,
        platform: Platform,
        *,
        isolation: Literal["process", "inline"] = "process",
        wait: Callable[[float], None] | None = None,
        on_event: Callable[[StepEvent], None] | None = None,
    ) -> None:
        self.platform = platform
        self.isolation = isolation
        self.wait = wait
        self.on_event = on_event or (lambda _event: None)
        self.root = platform.home / "pipelines"

    # -- public ---------------------------------------------------------------------------------

    def run(
        self,
        spec: PipelineSpec,
        parameters: Mapping[str, Any] | None = None,
        *,
        trigger: str = "manual",
        reason: str = "",
        model: str | None = None,
        run_id: str | None = None,
        stop_marker: Path | None = None,
        explicit_limits: bool = True,
        limits_given: Collection[str] = (),
    ) -> PipelineRun:
        """Check the pipeline's wiring, then run it; raises GateFailed / PipelineFailed.
        ``run_id`` is the id a backend already gave the run (a submitted run), else a new one.
        ``stop_marker`` is a file whose existence says a stop was asked for: if the process
        running the run is killed, the run then reads back as stopped rather than failed.
        ``explicit_limits`` False runs a spec recorded when a limit of 0 meant none (a training
        binding of an older Mintaka) with that meaning, but for the parameters ``limits_given``
        (see :attr:`RunState.explicit_limits` and :attr:`RunState.limits_given`)."""
        merged = merged_parameters(spec, parameters)
        contracts = check_spec(spec, merged)
        run_id = run_id or self.platform.ids.new("prun")
        if (self.root / "runs" / f"{run_id}.json").exists():
            raise Conflict(f"pipeline run {run_id!r} already exists")
        state = RunState(
            spec=spec,
            parameters=merged,
            run=PipelineRun(
                id=run_id,
                pipeline=spec.name,
                status=PipelineStatus.RUNNING,
                steps=tuple(
                    StepRun(name=s.name, status=PipelineStatus.PENDING) for s in spec.steps
                ),
                started_at=self.platform._now(),
                backend="local",
                parameters=merged,
            ),
            trigger=trigger,
            reason=reason,
            code_commit=code_commit(_source_dir(contracts)),
            environment=environment(),
            seeds={k: v for k, v in merged.items() if k in SEED_NAMES or k.endswith("_seed")},
            model=model,
            driver=this_process(),
            stop_marker=str(stop_marker) if stop_marker is not None else None,
            explicit_limits=explicit_limits,
            limits_given=sorted(limits_given),
        )
        self._save(state)
        node = LineageNode(
            kind=NodeKind.PIPELINE_RUN,
            key=run_id,
            label=f"{spec.name}/{run_id}",
            attrs={
                "pipeline": spec.name,
                "trigger": trigger,
                "spec": canonical_digest(spec.model_dump(mode="json")),
            },
        )
        self._record(
            "pipeline.start",
            run_id,
            [node],
            [],
            pipeline=spec.name,
            trigger=trigger,
            reason=reason,
            parameters=merged,
            code_commit=state.code_commit,
        )
        return self._drive(state, contracts)

    def resume(self, run_id: str) -> PipelineRun:
        """Continue a failed or stopped run from its last good step (a finished one is returned
        as it is). The run is claimed before its spec is checked, and read again once claimed,
        so of two processes resuming it at once one drives it and the other gets Conflict."""
        state = self.load(run_id)
        if not self._resumable(state):
            return state.run
        claimed = self.root / "runs" / f"{run_id}.claim"
        if not claim(claimed):
            raise Conflict(f"pipeline run {run_id!r} is being resumed by another process")
        try:
            state = self.load(run_id)
            if not self._resumable(state):
                return state.run
            contracts = check_spec(state.spec, state.parameters)
            if state.stop_marker is not None:  # a resume that dies before clearing it is no stop
                state.stop_carried_out = _request_file(Path(state.stop_marker))
            state.driver = this_process()
            state = self._with_run(state, status=PipelineStatus.RUNNING, ended_at=None)
        finally:  # from here on the driver the run names holds off any other resume
            release(claimed)
        try:
            self._supersede_experiment_run(state)
            if state.stop_marker is not None:
                # The stop asked for was carried out: this attempt is not one asked to stop, and a
                # later request (written where the first was) stops it in turn. Cleared once the
                # run names this process as running it, so a stop asked for meanwhile reaches
                # this process (as Ctrl-C) rather than a run that reads as not running. A request
                # written since (another file) is left to stop this attempt.
                marker = Path(state.stop_marker)
                if _request_file(marker) == state.stop_carried_out:
                    marker.unlink(missing_ok=True)
            self._record("pipeline.resume", run_id, [], [], pipeline=state.spec.name)
        except KeyboardInterrupt:
            self._interrupted(state)
            raise
        return self._drive(state, contracts)

    @staticmethod
    def _resumable(state: RunState) -> bool:
        """Whether ``state`` has steps left to run (False: it succeeded); Conflict while a live
        process drives it."""
        if state.run.status is PipelineStatus.SUCCEEDED:
            return False
        if state.run.status is PipelineStatus.RUNNING and state.driver is not None:
            raise Conflict(
                f"pipeline run {state.run.id!r} is running in process {state.driver.pid}; "
                "stop it or let it end before resuming"
            )
        return True

    def load(self, run_id: str) -> RunState:
        path = self.root / "runs" / f"{run_id}.json"
        if not path.is_file():
            raise NotFound(f"pipeline run {run_id!r} not found")
        return self._settled(RunState.model_validate_json(path.read_text()))

    def runs(self) -> list[PipelineRun]:
        folder = self.root / "runs"
        if not folder.is_dir():
            return []
        found = [
            self._settled(RunState.model_validate_json(p.read_text())).run
            for p in folder.glob("*.json")
        ]
        return sorted(found, key=lambda r: (r.started_at, r.id))

    def _settled(self, state: RunState) -> RunState:
        """``state``, or, for a run whose process has gone without recording how it ended
        (killed, or its machine went down), the run ended as failed: the step it was in failed,
        its experiment run ended and ``pipeline.failed`` audited, as for any failure. One reader
        records that end (the first to claim it); another sees the same end without recording
        it again. A run whose process is unknown (recorded by an older Mintaka) is left as is."""
        driver = state.driver
        if state.run.status is not PipelineStatus.RUNNING or driver is None or running(driver):
            return state
        now = self.platform._now()
        if stop_asked(state):
            status, reason = PipelineStatus.STOPPED, STOPPED_ON_REQUEST
        else:
            status = PipelineStatus.FAILED
            reason = (
                f"interrupted: the process running it (pid {driver.pid}) ended without "
                "recording how the run ended; resume it to continue from its last good step"
            )
        steps = tuple(
            s.model_copy(update={"status": status, "ended_at": now, "failure_reason": reason})
            if s.status is PipelineStatus.RUNNING
            else s
            for s in state.run.steps
        )
        state.run = state.run.model_copy(update={"steps": steps})
        claim = self.root / "runs" / f"{state.run.id}.{driver.pid}-{driver.start}.ended"
        try:
            os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:  # another reader records the end; report the same
            state.run = state.run.model_copy(
                update={"status": status, "ended_at": now, "failure_reason": reason}
            )
            return state
        self._finish(state, status, reason)
        return state

    # -- the loop -------------------------------------------------------------------------------

    def _drive(self, state: RunState, contracts: dict[str, StepContract]) -> PipelineRun:
        """Run the steps in order, reusing the ones that succeeded in an earlier attempt unless
        a file or directory they produced has changed or gone since: that step runs again, and
        so does every step downstream of it. A Ctrl-C anywhere in the loop (in a step, between
        steps, in a progress callback) ends the run stopped, resumable, before it propagates."""
        try:
            order = state.spec.order()
            outputs: dict[str, JSONDict] = {}
            reused = self._reused(state, order, contracts)
            for index, step in enumerate(order, start=1):
                if step.name in reused:
                    outputs[step.name] = self._step_run(state, step.name).outputs
                    self._emit(
                        state, step, index, len(order), "reused", "done in an earlier attempt"
                    )
                    continue
                state = self._run_step(
                    state, step, contracts[step.name], outputs, index, len(order)
                )
            return self._finish(state, PipelineStatus.SUCCEEDED)
        except KeyboardInterrupt:
            self._interrupted(state)
            raise

    def _interrupted(self, state: RunState) -> None:
        """End a run Ctrl-C interrupted as stopped: the step it was in (if any) stopped, the
        driver cleared and ``pipeline.stopped`` audited. A run that had already ended (the
        interrupt came after its end was recorded) is left as it ended."""
        if state.run.status is not PipelineStatus.RUNNING:
            return
        now = self.platform._now()
        current = next((s for s in state.run.steps if s.status is PipelineStatus.RUNNING), None)
        reason = (
            f"interrupted in step {current.name!r}"
            if current is not None
            else "interrupted between steps"
        )
        if current is not None:
            state = self._with_step(
                state,
                current.name,
                status=PipelineStatus.STOPPED,
                ended_at=now,
                failure_reason=reason,
            )
        state.driver = None
        self._finish(state, PipelineStatus.STOPPED, reason)

    def _reused(
        self, state: RunState, order: list[StepSpec], contracts: Mapping[str, StepContract]
    ) -> set[str]:
        """The steps that succeeded in an earlier attempt whose outputs this one reuses. Every
        other step that succeeded is reset to run again before any step runs, so what it
        measured and the data it recorded before are no longer the run's: the experiment run
        this attempt trains in (a new one, see ``_supersede_experiment_run``) starts with the
        metrics and datasets of the steps it reuses alone."""
        reused: set[str] = set()
        redone: set[str] = set()
        for step in order:
            if self._step_run(state, step.name).status is not PipelineStatus.SUCCEEDED:
                continue
            if self._reusable(state, step, contracts[step.name], redone):
                reused.add(step.name)
            else:
                redone.add(step.name)
                state = self._reset(state, step)
        return reused

    def _supersede_experiment_run(self, state: RunState) -> None:
        """Leave the experiment run an earlier attempt trained in to that attempt: ended (as
        failed, if nothing ended it yet) and no longer the run's, so this attempt trains in a new
        one. An ended run takes no metric, and one that a model version was registered from is
        that version's: it stays as it is."""
        if state.experiment_run is None:
            return
        run = self.platform.get_run(state.experiment_run)
        if run.status is RunStatus.RUNNING:
            registered = self._registered_from(run.id)
            self.platform.end_run(run.id, RunStatus.FINISHED if registered else RunStatus.FAILED)
        state.experiment_run = None
        self._save(state)

    def _reusable(
        self, state: RunState, step: StepSpec, contract: StepContract, redone: set[str]
    ) -> bool:
        """Whether a succeeded step's outputs can be reused: no step upstream of it runs again,
        and the files and directories it produced still hold what they did."""
        if redone.intersection(step.upstream()):
            return False
        produced = self._step_run(state, step.name).outputs
        return _unchanged(contract, produced, state.output_digests.get(step.name, {}))

    def _reset(self, state: RunState, step: StepSpec) -> RunState:
        """``step`` as if it had not run, to run again: the dataset it recorded is no longer the
        run's (nor its digest), unless another step that stays done recorded it too."""
        state.output_digests.pop(step.name, None)
        dataset = self._step_run(state, step.name).outputs.get("dataset_id")
        if isinstance(dataset, str) and not any(
            s.name != step.name
            and s.status is PipelineStatus.SUCCEEDED
            and s.outputs.get("dataset_id") == dataset
            for s in state.run.steps
        ):
            state.datasets = [d for d in state.datasets if d != dataset]
            state.data_digests.pop(dataset, None)
        return self._with_step(
            state,
            step.name,
            status=PipelineStatus.PENDING,
            started_at=None,
            ended_at=None,
            cached=False,
            cache_key=None,
            outputs={},
            gate=None,
        )

    def _run_step(
        self,
        state: RunState,
        step: StepSpec,
        contract: StepContract,
        outputs: dict[str, JSONDict],
        index: int,
        total: int,
    ) -> RunState:
        started = self.platform._now()
        self._emit(state, step, index, total, "started")
        state = self._with_step(state, step.name, status=PipelineStatus.RUNNING, started_at=started)
        try:
            inputs = self._inputs(state, step, contract, outputs)
            if "dataset_id" not in contract.output_model.model_fields:
                self._experiment_run(state)
            result, key, cached, digests = self._execute(state, step, contract, inputs)
            state = self._record_step(state, step, result, key, cached, digests, outputs)
        except MintakaError as exc:  # a gate that held, a metric not measured, an input refused
            self._fail(state, step, index, total, str(exc))
            # Its type kept (a ValidationError is still one), it names the run to resume, as
            # PipelineFailed does: for a waiting request, for the command line's hint. This run,
            # always: an error raised again (a module's own instance) or one from a pipeline a
            # controller step ran carries another run's id.
            exc.__dict__["run_id"] = state.run.id
            raise
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}"
            self._fail(state, step, index, total, detail)
            raise PipelineFailed(
                f"pipeline {state.spec.name!r} step {step.name!r} failed: {detail}",
                run_id=state.run.id,
                step=step.name,
            ) from exc
        self._emit(state, step, index, total, "cached" if cached else "succeeded")
        return state

    def _record_step(
        self,
        state: RunState,
        step: StepSpec,
        result: BaseModel,
        key: str | None,
        cached: bool,
        digests: JSONDict,
        outputs: dict[str, JSONDict],
    ) -> RunState:
        """Record what a step produced (its outputs, what they say about the run, its gate's
        result); raises GateFailed for a gate that did not pass. Anything failing here fails
        the step, as the step's own failure does."""
        produced = result.model_dump(mode="json")
        _refuse_text_not_unicode(step.name, produced)
        refuse_unmeasured_metrics(step.name, result)
        gate = result if isinstance(result, GateOutcome) else None
        state = self._absorb(state, step, produced)
        if gate is None or gate.passed:
            state.output_digests[step.name] = digests
        state = self._with_step(
            state,
            step.name,
            status=PipelineStatus.SUCCEEDED
            if gate is None or gate.passed
            else PipelineStatus.FAILED,
            ended_at=self.platform._now(),
            cached=cached,
            cache_key=key,
            outputs=produced,
            gate=GateOutcome(passed=gate.passed, checks=gate.checks) if gate else None,
            failure_reason=None,
        )
        if gate is not None:
            self._record_gate(state, step, gate)
            if not gate.passed:
                kind = step.gate.value if step.gate else "gate"
                raise GateFailed(step.name, kind, gate.failures(), run_id=state.run.id)
        outputs[step.name] = produced
        return state

    def _inputs(
        self,
        state: RunState,
        step: StepSpec,
        contract: StepContract,
        outputs: Mapping[str, JSONDict],
    ) -> BaseModel:
        values: dict[str, Any] = {}
        given: list[str] = []  # the fields wired to a parameter in ``state.limits_given``
        for field_name, (source, value) in step.references().items():
            if source == "params":
                values[field_name] = state.parameters[value]
                if value in state.limits_given:
                    given.append(field_name)
            else:
                values[field_name] = outputs[source][value]
        if not state.explicit_limits:
            values = _zero_as_unset(contract.input_model, values, given)
        try:
            return contract.input_model.model_validate(values)
        except Exception as exc:
            raise ValidationError(
                f"step {step.name!r}: inputs do not validate: {invalid_fields(exc)}"
            ) from exc

    def _execute(
        self, state: RunState, step: StepSpec, contract: StepContract, inputs: BaseModel
    ) -> tuple[BaseModel, str | None, bool, JSONDict]:
        """The step's result, its cache key, whether it came from the cache, and the content
        digests of the files and directories it produced."""
        if contract.controller:
            workdir = self.root / "runs" / state.run.id / step.name
            workdir.mkdir(parents=True, exist_ok=True)
            result = self._call(state, step, contract, inputs, workdir, controller=True)
            return result, None, False, _output_digests(contract, result.model_dump(mode="json"))
        key = self._cache_key(contract, inputs)
        entry = self.root / "cache" / key.removeprefix("sha256:")
        if step.cache:
            hit = self._cached(contract, entry)
            if hit is not None:
                return hit[0], key, True, hit[1]
        # A workdir per run, with the step's inputs and outputs files beside it: two runs
        # computing the same entry at once never share files (the entry's outputs.json is
        # replaced atomically, the last writer's outputs win).
        work = entry / "work" / state.run.id
        if work.exists():
            shutil.rmtree(work)
        work.mkdir(parents=True)
        if self.isolation == "process":
            result = self._subprocess(state, step, contract, inputs, work)
        else:
            result = self._call(state, step, contract, inputs, work, controller=False)
        produced = result.model_dump(mode="json")
        digests = _output_digests(contract, produced)
        if (isinstance(result, GateOutcome) and not result.passed) or unmeasured_metrics(result):
            # A gate that held is asked again on the next attempt (its reason may have gone), and
            # so is a step whose metrics fail it for not being finite.
            return result, key, False, digests
        write_atomic(entry / "outputs.json", json.dumps({"outputs": produced, "digests": digests}))
        return result, key, False, digests

    def _call(
        self,
        state: RunState,
        step: StepSpec,
        contract: StepContract,
        inputs: BaseModel,
        workdir: Path,
        *,
        controller: bool,
    ) -> BaseModel:
        context = StepContext(
            pipeline=state.spec.name,
            run_id=state.run.id,
            step=step.name,
            workdir=workdir,
            platform=self.platform if controller else None,
            experiment_run=(lambda: self._experiment_run(state)) if controller else None,
            wait=self.wait,
            notes={
                "trigger": state.trigger,
                "reason": state.reason,
                "model": state.model,
                "passed_gates": [
                    s.name
                    for s in state.run.steps
                    if s.gate is not None and s.gate.passed and s.status is PipelineStatus.SUCCEEDED
                ],
            },
        )
        result = contract.fn(inputs, context) if contract.takes_context else contract.fn(inputs)
        return contract.output_model.model_validate(result)

    def _subprocess(
        self, state: RunState, step: StepSpec, contract: StepContract, inputs: BaseModel, work: Path
    ) -> BaseModel:
        inputs_file = work.with_name(f"{work.name}.inputs.json")  # the run's own, as its workdir
        outputs_file = work.with_name(f"{work.name}.outputs.json")
        outputs_file.unlink(missing_ok=True)
        write_atomic(inputs_file, inputs.model_dump_json())
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(p for p in sys.path if p),
            "PYTHONHASHSEED": "0",
            "MINTAKA_PIPELINE": state.spec.name,
            "MINTAKA_STEP": step.name,
        }
        command = [
            sys.executable,
            "-m",
            "mintaka.pipelines.step",
            contract.entrypoint,
            "--inputs",
            str(inputs_file),
            "--outputs",
            str(outputs_file),
            "--workdir",
            str(work),
            "--run-id",
            state.run.id,
            "--pipeline",
            state.spec.name,
            "--step",
            step.name,
        ]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            env=env,
            check=False,
            preexec_fn=ending_with_this_process(),  # no step outlives a driver killed outright
        )
        if done.returncode != 0:
            refused = self._refused_outputs(contract, outputs_file)
            if refused is not None:
                return refused
            tail = "\n".join(done.stderr.strip().splitlines()[-6:])
            raise RuntimeError(f"exit status {done.returncode}\n{tail}")
        return contract.output_model.model_validate_json(outputs_file.read_text())

    @staticmethod
    def _refused_outputs(contract: StepContract, outputs_file: Path) -> BaseModel | None:
        """The outputs a step's sub-process wrote before it refused them for metrics that are no
        measurement (as it does in a cloud's job), which this process then refuses in turn with
        the step's typed error; None when the step failed otherwise."""
        if not outputs_file.is_file():
            return None
        try:
            result = contract.output_model.model_validate_json(outputs_file.read_text())
        except PydanticValidationError:
            return None
        return result if unmeasured_metrics(result) else None

    def _cache_key(self, contract: StepContract, inputs: BaseModel) -> str:
        values = inputs.model_dump(mode="json")
        for name, shape in contract.path_fields(contract.input_model).items():
            values[name] = shape.map(values.get(name), _digest_of)
        return canonical_digest(
            {
                "entrypoint": contract.entrypoint,
                "code": contract.code_digest,
                "schema": contract.schema(),
                "inputs": values,
            }
        )

    @staticmethod
    def _cached(contract: StepContract, entry: Path) -> tuple[BaseModel, JSONDict] | None:
        """The entry's outputs and their digests, if every file they name is as it was. An entry
        the step's output model no longer reads (it lives in a module of its own, which changed
        since, a path output now a list or a mapping of paths) is a miss: the step runs again and
        its outputs replace the entry. The files are looked at only once the outputs read."""
        stored = entry / "outputs.json"
        if not stored.is_file():
            return None
        data = json.loads(stored.read_text())
        digests: JSONDict = data.get("digests", {})
        try:
            outputs = contract.output_model.model_validate(data["outputs"])
        except PydanticValidationError as exc:
            log.info(
                "cache entry %s of %s is not read by its output model (%s): running the step",
                entry.name,
                contract.entrypoint,
                invalid_fields(exc),
            )
            return None
        if not _unchanged(contract, outputs.model_dump(mode="json"), digests):
            return None
        unmeasured = unmeasured_metrics(outputs)
        if unmeasured:  # no entry holds them now; an older Mintaka cached a NaN as null
            log.info(
                "cache entry %s of %s holds metrics that are no measurement (%s): running the step",
                entry.name,
                contract.entrypoint,
                unmeasured,
            )
            return None
        return outputs, digests

    # -- records --------------------------------------------------------------------------------

    def _experiment_run(self, state: RunState) -> str:
        """The experiment run this attempt trains in, started once its data is known. An attempt
        that failed or stopped ended its experiment run (as failed, or finished by registering a
        model version from it); the attempt resuming it trains in a new one, which starts with
        the metrics of the steps it reuses, so the model it registers carries what was measured
        before the failure. The run stays open until the attempt ends (``_finish``), a model
        version registered from it or not, so what the steps after the register step measure
        is its too."""
        if state.experiment_run is not None:
            run = self.platform.get_run(state.experiment_run)
            if run.status is RunStatus.RUNNING or run.status is RunStatus.FINISHED:
                return run.id
        params = {
            **{k: v for k, v in state.parameters.items()},
            "pipeline": state.spec.name,
            "pipeline_run": state.run.id,
        }
        run = self.platform.start_run(
            state.spec.name,
            params=params,
            dataset_ids=state.datasets,
            code_commit_=state.code_commit,
        )
        state.experiment_run = run.id
        self._save(state)
        for step_run in state.run.steps:  # the steps done before it started, in their order
            measured = (
                _numbers(step_run.outputs) if step_run.status is PipelineStatus.SUCCEEDED else {}
            )
            if measured:
                self.platform.log_metrics(run.id, measured)
        self._record(
            "pipeline.link",
            state.run.id,
            [],
            [
                LineageEdge(
                    src=f"pipeline_run:{state.run.id}", dst=f"run:{run.id}", kind=EdgeKind.DERIVED
                )
            ],
            experiment_run=run.id,
        )
        return run.id

    def _absorb(self, state: RunState, step: StepSpec, produced: JSONDict) -> RunState:
        """Pick up what a step's outputs say about the run: datasets (also the experiment run's
        when it started before they were recorded, as after a step preparing the data), digests,
        metrics (checked finite before: NaN or infinity is no measurement)."""
        dataset = produced.get("dataset_id")
        if isinstance(dataset, str) and dataset not in state.datasets:
            state.datasets.append(dataset)
            digest = produced.get("digest")
            if isinstance(digest, str):
                state.data_digests[dataset] = digest
            edges = [
                LineageEdge(
                    src=f"dataset:{dataset}",
                    dst=f"pipeline_run:{state.run.id}",
                    kind=EdgeKind.DERIVED,
                )
            ]
            trained = None if self._version_taken(state) else self._train_on(state, dataset)
            if trained is not None:
                edges.append(
                    LineageEdge(
                        src=f"dataset:{dataset}", dst=f"run:{trained}", kind=EdgeKind.TRAINED_ON
                    )
                )
            self._record("pipeline.data", state.run.id, [], edges, dataset=dataset)
        if not _numbers(produced) or self._version_taken(state):
            return state  # a registered version's run keeps its metrics; the step's are its own
        if state.experiment_run:
            run = self.platform.get_run(state.experiment_run)
            if run.status is RunStatus.RUNNING:
                self.platform.log_metrics(run.id, _numbers(produced))
        return state

    def _version_taken(self, state: RunState) -> bool:
        """Whether a model version was registered from the experiment run of this attempt, which
        then stays as that version was registered from it (its datasets and its metrics)."""
        if state.experiment_run is None:
            return False
        if state.registered_run == state.experiment_run:
            return True
        if self._registered_from(state.experiment_run):
            state.registered_run = state.experiment_run
            return True
        return False

    def _train_on(self, state: RunState, dataset: str) -> str | None:
        """Add ``dataset`` to the data of the experiment run the run trains in, if it has one
        still running; that run's id, else None."""
        if state.experiment_run is None:
            return None
        run = self.platform.get_run(state.experiment_run)
        if run.status is not RunStatus.RUNNING:
            return None
        if dataset not in run.dataset_ids:
            self.platform._update_run(
                run.id,
                "run.datasets",
                lambda current: {
                    "dataset_ids": tuple(dict.fromkeys((*current.dataset_ids, dataset)))
                },
            )
        return run.id

    def _record_gate(self, state: RunState, step: StepSpec, gate: GateOutcome) -> None:
        node = LineageNode(
            kind=NodeKind.GATE,
            key=f"{state.run.id}/{step.name}",
            label=f"{step.gate.value if step.gate else 'gate'} {step.name}: "
            + ("passed" if gate.passed else "failed"),
            attrs={
                "gate": step.gate.value if step.gate else None,
                "passed": gate.passed,
                "checks": [c.model_dump(mode="json") for c in gate.checks],
            },
        )
        edges = [
            LineageEdge(src=f"pipeline_run:{state.run.id}", dst=node.id, kind=EdgeKind.DERIVED)
        ]
        self._record(
            "pipeline.gate",
            f"{state.run.id}/{step.name}",
            [node],
            edges,
            gate=step.name,
            kind=step.gate.value if step.gate else None,
            passed=gate.passed,
            checks=[c.model_dump(mode="json") for c in gate.checks],
        )

    def link_gates_to(self, run_id: str, version_id: str, *, before: bool) -> None:
        """Edges between a model version and the gates of ``run_id`` (the ones that admitted it
        point to it; deployment gates hang below it)."""
        state = self.load(run_id)
        edges = []
        for step_run in state.run.steps:
            if step_run.gate is None or step_run.status is not PipelineStatus.SUCCEEDED:
                continue
            node = f"gate:{run_id}/{step_run.name}"
            edges.append(
                LineageEdge(src=node, dst=f"model_version:{version_id}", kind=EdgeKind.DERIVED)
                if before
                else LineageEdge(src=f"model_version:{version_id}", dst=node, kind=EdgeKind.DERIVED)
            )
        if edges:
            with self.platform.store.write() as conn:
                self.platform.lineage.add(conn, [], edges)

    def _record(
        self,
        action: str,
        subject: str,
        nodes: list[LineageNode],
        edges: list[LineageEdge],
        **details: Any,
    ) -> None:
        with self.platform.store.write() as conn:
            if nodes or edges:
                self.platform.lineage.add(conn, nodes, edges)
            event = self.platform._audit(conn, action, subject, **details)
        self.platform._after_commit([event])

    def _fail(self, state: RunState, step: StepSpec, index: int, total: int, detail: str) -> None:
        state = self._with_step(
            state,
            step.name,
            status=PipelineStatus.FAILED,
            ended_at=self.platform._now(),
            failure_reason=detail,
        )
        self._emit(state, step, index, total, "failed", detail)
        self._finish(state, PipelineStatus.FAILED, detail)

    def _finish(
        self, state: RunState, status: PipelineStatus, failure: str | None = None
    ) -> PipelineRun:
        if state.experiment_run:  # ended with the attempt, whatever the attempt reused
            run = self.platform.get_run(state.experiment_run)
            if run.status is RunStatus.RUNNING:
                finished = status is PipelineStatus.SUCCEEDED or self._registered_from(run.id)
                self.platform.end_run(run.id, RunStatus.FINISHED if finished else RunStatus.FAILED)
        state = self._with_run(
            state, status=status, ended_at=self.platform._now(), failure_reason=failure
        )
        self._record(
            f"pipeline.{status.value}",
            state.run.id,
            [],
            [],
            pipeline=state.spec.name,
            failure=failure,
            experiment_run=state.experiment_run,
        )
        return state.run

    def _registered_from(self, experiment_run: str) -> bool:
        """Whether the registry holds a model version registered from ``experiment_run``, even
        one whose register step failed after registering it: an attempt that failed or stopped
        after it ends that run finished, as the run the version was trained in, not failed."""
        query = (
            select(model_versions.c.id).where(model_versions.c.run_id == experiment_run).limit(1)
        )
        with self.platform.store.read() as conn:
            return conn.execute(query).first() is not None

    # -- state ----------------------------------------------------------------------------------

    def _save(self, state: RunState) -> None:
        write_atomic(self.root / "runs" / f"{state.run.id}.json", state.model_dump_json())

    @staticmethod
    def _step_run(state: RunState, name: str) -> StepRun:
        return next(s for s in state.run.steps if s.name == name)

    def _with_step(self, state: RunState, name: str, **changes: Any) -> RunState:
        steps = tuple(
            s.model_copy(update=changes) if s.name == name else s for s in state.run.steps
        )
        state.run = state.run.model_copy(update={"steps": steps})
        self._save(state)
        return state

    def _with_run(self, state: RunState, **changes: Any) -> RunState:
        state.run = state.run.model_copy(update=changes)
        self._save(state)
        return state

    def _emit(
        self,
        state: RunState,
        step: StepSpec,
        index: int,
        total: int,
        status: Literal["started", "succeeded", "cached", "reused", "failed"],
        detail: str = "",
    ) -> None:
        self.on_event(StepEvent(state.run.id, step.name, index, total, status, detail))


def _output_digests(contract: StepContract, produced: JSONDict) -> JSONDict:
    """The content digest of every file or directory named in a step's path outputs."""
    return {
        name: shape.map(produced.get(name), _digest_of)
        for name, shape in contract.path_fields(contract.output_model).items()
        if produced.get(name) is not None
    }


def _unchanged(contract: StepContract, produced: JSONDict, digests: JSONDict) -> bool:
    """Whether the path outputs in ``produced`` still have the content ``digests`` recorded."""
    shapes = contract.path_fields(contract.output_model)
    for name, digest in digests.items():
        value = produced.get(name)
        shape = shapes.get(name)
        if value is None or shape is None or shape.map(value, _digest_of) != digest:
            return False
    return True


def _source_dir(contracts: Mapping[str, StepContract]) -> Path | None:
    """Where the pipeline's own code lives: the first step that is not one of Mintaka's."""
    import inspect

    for contract in contracts.values():
        if contract.entrypoint.startswith("mintaka.pipelines."):
            continue
        source = inspect.getsourcefile(inspect.unwrap(contract.fn))
        if source:
            return Path(source).parent
    return None


def _numbers(produced: JSONDict) -> dict[str, float]:
    """The metrics among a step's outputs, as numbers."""
    metrics = produced.get("metrics")
    if not isinstance(metrics, dict):
        return {}
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}


def _refuse_text_not_unicode(step: str, produced: JSONDict) -> None:
    """Refuse an output holding text that is not Unicode: the step fails naming the output, as
    on Databricks."""
    for key, value in produced.items():
        refuse_text_not_unicode(f"output {key!r} of step {step!r}", value)
