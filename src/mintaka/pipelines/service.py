"""``platform.pipelines``: run, resume and compile pipelines; retrain models; retire the superseded.

A model's training pipeline is bound to it once (:meth:`PipelineService.bind`), optionally with a
schedule. Retraining always goes through that validated pipeline, whatever asks for it: an event
(``mintaka retrain NAME --reason ...``), a drift or performance alert from the monitoring runner
(queued as a request, then run by :meth:`process_requests`), or the schedule (:meth:`run_due`).
Every request and every retirement is audited with its reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field
from pydantic import ValidationError as PydanticValidationError

from mintaka.capabilities import Capability
from mintaka.domain.base import AwareDatetime, JSONDict
from mintaka.domain.pipelines import (
    GateKind,
    NativePipeline,
    PipelineRun,
    PipelineSpec,
    PipelineStatus,
)
from mintaka.domain.registry import ModelVersion, Stage
from mintaka.errors import GateFailed, MintakaError, NotFound, ValidationError, invalid_fields
from mintaka.files import write_atomic
from mintaka.pipelines.claims import claim, release
from mintaka.pipelines.contract import (
    StepContract,
    check_spec,
    merged_parameters,
    parameter_text,
    stored_parameters,
)
from mintaka.pipelines.local import LocalExecutor, RunState, StepEvent, zero_limit_parameters

if TYPE_CHECKING:
    from mintaka.platform import Platform

# The native format of a pipeline the local executor runs as it is, on this machine.
LOCAL_FORMAT = "mintaka-local/1"

Trigger = Literal["manual", "event", "drift", "performance", "schedule"]
# Gates a resumed run meets again with the same inputs (no sign-off changes their verdict).
RETRYABLE_GATES = frozenset({GateKind.DATA_VALIDATION.value, GateKind.EVALUATION.value})
_EVERY = re.compile(r"^([0-9]+)([mhd])$")


class SubmittedRun(BaseModel):
    """A run on the backend, and the versions it registered that were adopted just now."""

    run: PipelineRun
    adopted: tuple[ModelVersion, ...] = ()
    problems: tuple[str, ...] = ()  # registered versions that could not be adopted, and why


def parse_every(text: str, label: str = "schedule") -> timedelta:
    """A schedule such as ``30m``, ``12h`` or ``7d`` as a positive time span (``label`` names
    it in the errors)."""
    match = _EVERY.match(text.strip())
    if match is None:
        raise ValidationError(f"{label} {text!r}: use a number and m, h or d (e.g. 7d)")
    digits, unit = match.group(1), match.group(2)
    if not digits.strip("0"):
        raise ValidationError(f"{label} {text!r} must be positive")
    try:  # beyond timedelta's range (or int's digit limit) is no schedule either
        return timedelta(**{{"m": "minutes", "h": "hours", "d": "days"}[unit]: int(digits)})
    except (OverflowError, ValueError) as exc:
        raise ValidationError(
            f"{label} {text!r} is too long: at most {timedelta.max.days} days"
        ) from exc


def load_spec(path: Path) -> PipelineSpec:
    """A pipeline spec from a TOML or JSON file (UTF-8)."""
    import tomllib

    if not path.exists():
        raise ValidationError(f"pipeline spec {path} does not exist")
    if not path.is_file():
        raise ValidationError(f"pipeline spec {path} is not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"pipeline spec {path} is not UTF-8 text: {exc}") from exc
    except OSError as exc:
        raise ValidationError(f"pipeline spec {path} cannot be read: {exc}") from exc
    try:
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ValidationError(f"pipeline spec {path}: {exc}") from exc
    try:
        return PipelineSpec.model_validate(data)
    except PydanticValidationError as exc:
        raise ValidationError(f"pipeline spec {path}: {invalid_fields(exc)}") from exc


class TrainingBinding(BaseModel):
    """The pipeline that (re)trains a model, its standing parameters and schedule."""

    model: str
    spec: PipelineSpec
    parameters: JSONDict = Field(default_factory=dict)
    every: str | None = None
    # How long a retraining refused by a data-validation or evaluation gate (a champion not
    # beaten) holds off the next alert-driven one. Resuming such a run meets the same gate with
    # the same inputs, so after this long drift that persists asks for a fresh retraining.
    retry_after: str = "1d"
    bound_at: AwareDatetime
    # False for a binding recorded when a limit of 0 meant none; its retrainings keep that
    # meaning (see ``RunState.explicit_limits``).
    explicit_limits: bool = False


def _no_limit(
    binding: TrainingBinding,
    contracts: Mapping[str, StepContract],
    typed: Mapping[str, Any],
    given_now: set[str],
) -> set[str]:
    """The parameters a retraining of ``binding`` reads as "no limit": a binding recorded when
    a 0 meant none keeps that meaning for the zero limits it holds (its own or its spec's
    defaults), while a 0 limit given now is read with today's meaning, each limit its own way
    (see :attr:`RunState.limits_given`)."""
    if binding.explicit_limits:
        return set()
    return zero_limit_parameters(binding.spec, contracts, typed) - given_now


def _read_binding(path: Path) -> TrainingBinding:
    """The binding stored at ``path``, its parameters as :func:`stored_parameters` reads them
    (an older binding's bool held as ``1`` or ``"yes"`` is that bool)."""
    binding = TrainingBinding.model_validate_json(path.read_text())
    parameters = stored_parameters(binding.spec, binding.parameters)
    return binding.model_copy(update={"parameters": parameters})


class RetrainRequest(BaseModel):
    id: str
    seq: int = 0
    model: str
    reason: str
    trigger: Trigger
    at: AwareDatetime
    alert: str | None = None
    # pending -> done | waiting (stopped at a gate; ``pipeline_run`` resumes it) | failed
    status: Literal["pending", "waiting", "done", "failed"] = "pending"
    pipeline_run: str | None = None
    outcome: str = ""
    gate: str | None = None  # the kind of gate a waiting request's run stopped at
    stopped_at: AwareDatetime | None = None


class ScheduledRetraining(BaseModel):
    """How one due model's scheduled retraining went: its run, or the error that stopped it."""

    model: str
    run: PipelineRun | None = None
    error: str = ""


class PipelineService:
    """See the module docstring."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.root = platform.home / "pipelines"

    # -- running --------------------------------------------------------------------------------

    def executor(
        self,
        *,
        isolation: Literal["process", "inline"] = "process",
        wait: Callable[[float], None] | None = None,
        on_event: Callable[[StepEvent], None] | None = None,
    ) -> LocalExecutor:
        return LocalExecutor(self.platform, isolation=isolation, wait=wait, on_event=on_event)

    def run(
        self, spec: PipelineSpec, parameters: Mapping[str, Any] | None = None, **options: Any
    ) -> PipelineRun:
        """Run ``spec`` with the local executor (``options``: isolation, wait, on_event,
        trigger, reason, model, explicit_limits, limits_given)."""
        run_options = {
            k: options.pop(k)
            for k in ("trigger", "reason", "model", "explicit_limits", "limits_given")
            if k in options
        }
        return self.executor(**options).run(spec, parameters, **run_options)

    def resume(self, run_id: str, **options: Any) -> PipelineRun:
        """Resume a run stopped at a gate; once it succeeds, the retraining requests that waited
        for it are settled (done) there and then."""
        run = self.executor(**options).resume(run_id)
        if run.status is PipelineStatus.SUCCEEDED:
            self._settle_waiting(run_id)
        return run

    def _settle_waiting(
        self, run_id: str | None = None
    ) -> list[tuple[RetrainRequest, PipelineRun | None]]:
        """Mark done the waiting requests whose run has since succeeded (only ``run_id``'s)."""
        settled: list[tuple[RetrainRequest, PipelineRun | None]] = []
        for request in self.requests("waiting"):
            if run_id is not None and request.pipeline_run != run_id:
                continue
            run = self._run_of(request)
            if run is not None and run.status is PipelineStatus.SUCCEEDED:
                done = request.model_copy(
                    update={"status": "done", "outcome": "succeeded after resuming"}
                )
                self._save_request(done)
                settled.append((done, run))
        return settled

    def runs(self) -> list[PipelineRun]:
        return self.executor().runs()

    def get(self, run_id: str) -> RunState:
        return self.executor().load(run_id)

    def compile(self, spec: PipelineSpec) -> NativePipeline:
        """The spec in the backend's native format (the local backend runs it as it is)."""
        if self.platform.supports(Capability.PIPELINES):
            from mintaka.interfaces import PipelineExecution

            return self.platform._area(Capability.PIPELINES, PipelineExecution).compile(spec)
        return NativePipeline(
            pipeline=spec.name, format=LOCAL_FORMAT, definition=spec.model_dump(mode="json")
        )

    def submit(
        self, spec: PipelineSpec, parameters: Mapping[str, Any] | None = None
    ) -> PipelineRun:
        """Compile ``spec`` to the backend's format and start it there (a cloud backend with
        ``Capability.PIPELINES``); the run is audited and becomes a lineage node. Each parameter
        is coerced to its declared type first, and a value that is not of it is refused before
        the backend is asked anything; the backend is given the typed value as text (JSON for
        all but text), which every backend's steps read back as that same typed value. A spec
        the local executor is to run is checked as a run checks it (:func:`check_spec`, with
        these parameters) before it is submitted: its steps import here, and a pipeline whose
        steps do not fit is refused now rather than failing later in the worker."""
        from mintaka.domain.lineage import LineageNode, NodeKind
        from mintaka.interfaces import PipelineExecution

        typed = merged_parameters(spec, parameters)
        merged = {k: parameter_text(v) for k, v in typed.items()}
        backend = self.platform._area(Capability.PIPELINES, PipelineExecution)
        native = backend.compile(spec)
        if native.format == LOCAL_FORMAT:
            check_spec(spec, typed)
        run = backend.submit(native, merged)
        node = LineageNode(
            kind=NodeKind.PIPELINE_RUN,
            key=run.id[:512],
            label=f"{spec.name}/{run.id}",
            attrs={"pipeline": spec.name, "backend": run.backend, "format": native.format},
        )
        with self.platform.store.write() as conn:
            self.platform.lineage.add(conn, [node], [])
            event = self.platform._audit(
                conn,
                "pipeline.submit",
                run.id,
                pipeline=spec.name,
                parameters=merged,
                backend=run.backend,
            )
        self.platform._after_commit([event])
        return run

    def status(self, run_id: str) -> SubmittedRun:
        """A submitted run as the backend reports it now; the model versions its steps
        registered in the cloud are adopted (bytes read back and digested, lineage from the
        pipeline run), once, so the store records them as it records a local registration. A
        version that cannot be adopted yet is named in ``problems``; asking again retries it."""
        from mintaka.domain.pipelines import REGISTERED_MODEL, REGISTERED_VERSION
        from mintaka.interfaces import PipelineExecution

        backend = self.platform._area(Capability.PIPELINES, PipelineExecution)
        run = backend.get_pipeline_run(run_id)
        adopted: list[ModelVersion] = []
        problems: list[str] = []
        for step in run.steps:
            model = step.outputs.get(REGISTERED_MODEL)
            number = step.outputs.get(REGISTERED_VERSION)
            if not isinstance(model, str) or not isinstance(number, int):
                continue
            try:
                adoption = self.platform.migration.adopt_model(
                    model,
                    versions=[number],
                    reason=f"registered by pipeline run {run.id} (step {step.name})",
                    pipeline_run_id=run.id,
                )
            except MintakaError as exc:  # the run's state is still worth reporting
                problems.append(f"{model}:{number} (step {step.name}) not adopted: {exc}")
                continue
            adopted.extend(adoption.adopted)
        return SubmittedRun(run=run, adopted=tuple(adopted), problems=tuple(problems))

    # -- retraining -----------------------------------------------------------------------------

    def bind(
        self,
        model: str,
        spec: PipelineSpec,
        parameters: Mapping[str, Any] | None = None,
        *,
        every: str | None = None,
        retry_after: str = "1d",
    ) -> TrainingBinding:
        """Make ``spec`` the pipeline that retrains ``model`` (checked now, not at retrain).
        ``every`` is a schedule; ``retry_after`` how long a retraining refused by a
        data-validation or evaluation gate holds off the next alert-driven one."""
        from mintaka.domain.names import validate_model_name

        validate_model_name(model)
        if every is not None:
            parse_every(every)
        parse_every(retry_after, label="retry_after:")
        merged = merged_parameters(spec, parameters)
        check_spec(spec, merged)
        binding = TrainingBinding(
            model=model,
            spec=spec,
            parameters={name: merged[name] for name in parameters or {}},
            every=every,
            retry_after=retry_after,
            bound_at=self.platform._now(),
            explicit_limits=True,
        )
        write_atomic(self.root / "training" / f"{model}.json", binding.model_dump_json())
        self._audit(
            "pipeline.bind", model, pipeline=spec.name, every=every, retry_after=retry_after
        )
        return binding

    def binding(self, model: str) -> TrainingBinding:
        path = self.root / "training" / f"{model}.json"
        if not path.is_file():
            raise NotFound(
                f"no training pipeline is bound to {model!r}: bind one with platform.pipelines"
                ".bind(...) or `mintaka pipeline bind`"
            )
        return _read_binding(path)

    def bindings(self) -> list[TrainingBinding]:
        folder = self.root / "training"
        if not folder.is_dir():
            return []
        return [_read_binding(p) for p in sorted(folder.glob("*.json"))]

    def retrain(
        self,
        model: str,
        reason: str,
        *,
        trigger: Trigger = "event",
        parameters: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> PipelineRun:
        """Retrain ``model`` through its bound pipeline; the reason is audited with the run.

        The parameters are checked before anything is recorded. A binding recorded when a
        limit of 0 meant none keeps that meaning for the zeros it holds, never for one given
        now; a limit so read as none is audited apart from the parameters (``no_limit``).
        Once the run succeeds, the model's retraining requests still waiting at a gate are
        settled (done, superseded by this run), so alerts can ask for a retraining again."""
        if not reason.strip():
            raise ValidationError("a retraining needs a reason")
        binding = self.binding(model)
        given = {**binding.parameters, **dict(parameters or {})}
        typed = merged_parameters(binding.spec, given)
        contracts = check_spec(binding.spec, typed)
        merged = {name: typed[name] for name in given}
        given_now = set(parameters or {})
        no_limit = _no_limit(binding, contracts, typed, given_now)
        self._audit(
            "model.retrain",
            model,
            reason=reason,
            trigger=trigger,
            parameters={name: value for name, value in merged.items() if name not in no_limit},
            **({"no_limit": sorted(no_limit)} if no_limit else {}),
        )
        run = self.run(
            binding.spec,
            merged,
            trigger=trigger,
            reason=reason,
            model=model,
            explicit_limits=binding.explicit_limits,
            limits_given=() if binding.explicit_limits else given_now,
            **options,
        )
        for waiting in self.requests("waiting"):
            if waiting.model == model and waiting.pipeline_run != run.id:
                self._save_request(
                    waiting.model_copy(
                        update={"status": "done", "outcome": f"superseded by run {run.id}"}
                    )
                )
        return run

    def request_retraining(
        self, model: str, reason: str, *, trigger: Trigger = "event", alert: str | None = None
    ) -> RetrainRequest:
        """Queue a retraining (the monitoring runner does this on a ``retrain`` signal)."""
        request = RetrainRequest(
            id=self.platform.ids.new("rtr"),
            seq=max((r.seq for r in self.requests()), default=0) + 1,
            model=model,
            reason=reason,
            trigger=trigger,
            at=self.platform._now(),
            alert=alert,
        )
        self._save_request(request)
        self._audit(
            "retrain.requested",
            model,
            request=request.id,
            reason=reason,
            trigger=trigger,
            alert=alert,
        )
        return request

    def holding(self, model: str) -> RetrainRequest | None:
        """The request that holds off another alert-driven retraining of ``model``: one still
        pending, or one waiting at a gate that someone can let it past (a deployment gate:
        approvals, a canary). One refused by a data-validation or evaluation gate (a champion
        not beaten) holds only for the binding's ``retry_after``: resuming it meets the same
        gate with the same inputs."""
        now = self.platform._now()
        for request in self.requests():
            if request.model != model or request.status not in ("pending", "waiting"):
                continue
            if request.status == "pending" or not self._retryable(request, now):
                return request
        return None

    def _retryable(self, request: RetrainRequest, now: datetime) -> bool:
        """A waiting request refused by a gate no sign-off changes, past its retry time."""
        if request.gate not in RETRYABLE_GATES or request.stopped_at is None:
            return False
        try:
            retry_after = self.binding(request.model).retry_after
        except NotFound:  # unbound since: the default
            retry_after = TrainingBinding.model_fields["retry_after"].default
        return now - request.stopped_at >= parse_every(retry_after)

    def requests(self, status: str | None = None) -> list[RetrainRequest]:
        folder = self.root / "requests"
        if not folder.is_dir():
            return []
        found = [RetrainRequest.model_validate_json(p.read_text()) for p in folder.glob("*.json")]
        found.sort(key=lambda r: (r.seq, r.at, r.id))
        return [r for r in found if status is None or r.status == status]

    def process_requests(self, **options: Any) -> list[tuple[RetrainRequest, PipelineRun | None]]:
        """Run every pending retraining request (one run per model, for its oldest request; the
        model's later pending requests are settled as that one was), and settle the waiting
        ones.

        A request whose run stopped at a gate (approvals to collect, a champion not beaten) is
        ``waiting``, with the run to resume; it becomes ``done`` when that run succeeds (resumed
        by whoever collected the approvals; :meth:`resume` settles it, and this settles any it
        could not), or once a later request for the same model has retrained it. Any other error
        marks the request ``failed``.

        A pending request is claimed by the process that runs it, so two runners started at once
        (an overlapping cron, a second terminal) never train the same request twice; a claim
        whose process has gone is taken over by one of them only (see :mod:`.claims`).
        """
        handled = self._settle_waiting()  # a run resumed without settling its request
        by_model: dict[str, list[RetrainRequest]] = {}
        for request in self.requests("pending"):
            by_model.setdefault(request.model, []).append(request)
        for first, *later in by_model.values():
            if not self._claim(first):
                continue  # another process is running it
            try:  # the claim is released however the request ends (_run_request settles it)
                if self._current(first).status != "pending":
                    continue  # settled by another runner since this one listed it
                updated, run = self._run_request(first, options)
            finally:
                self._release(first)
            handled.append((updated, run))
            for request in later:  # answered by the same run, and settled as it was
                self._merge(request, updated)
            self._supersede_retried(first)
        return handled

    def _supersede_retried(self, newer: RetrainRequest) -> None:
        """Settle the model's older requests refused by a data-validation or evaluation gate:
        ``newer`` retried them (and waits itself if it met the gate again)."""
        for older in self.requests("waiting"):
            if (
                older.model == newer.model
                and older.seq < newer.seq
                and older.gate in RETRYABLE_GATES
            ):
                self._save_request(
                    older.model_copy(update={"status": "done", "outcome": f"retried by {newer.id}"})
                )

    def _merge(self, request: RetrainRequest, into: RetrainRequest) -> None:
        """Settle ``request`` as ``into`` was (done, waiting on the same run at the same gate, or
        failed)."""
        if not self._claim(request):
            return
        try:
            if self._current(request).status == "pending":
                self._save_request(
                    request.model_copy(
                        update={
                            "status": into.status,
                            "pipeline_run": into.pipeline_run,
                            "outcome": f"merged into {into.id}: {into.outcome}",
                            "gate": into.gate,
                            "stopped_at": into.stopped_at,
                        }
                    )
                )
        finally:
            self._release(request)

    def _run_of(self, request: RetrainRequest) -> PipelineRun | None:
        try:
            return self.get(request.pipeline_run).run if request.pipeline_run else None
        except NotFound:
            return None

    def due(self, now: datetime | None = None) -> list[str]:
        """Models whose schedule says they are due for retraining at ``now``."""
        moment = now or self.platform._now()
        started: dict[str, datetime] = {}
        for path in (self.root / "runs").glob("*.json") if (self.root / "runs").is_dir() else ():
            state = RunState.model_validate_json(path.read_text())
            if state.model:
                last = started.get(state.model)
                if last is None or state.run.started_at > last:
                    started[state.model] = state.run.started_at
        found = []
        for binding in self.bindings():
            if binding.every is None:
                continue
            last = started.get(binding.model, binding.bound_at)
            if moment - last >= parse_every(binding.every):
                found.append(binding.model)
        return found

    def run_due(self, **options: Any) -> list[ScheduledRetraining]:
        """Retrain every model that is due, each on its own: a model held at a gate or failing
        is reported with its error and the next one still runs."""
        done = []
        for model in self.due():
            every = self.binding(model).every
            try:
                run = self.retrain(model, f"scheduled every {every}", trigger="schedule", **options)
            except Exception as exc:  # this model's own failure: the next model still runs
                done.append(ScheduledRetraining(model=model, error=_described(exc)))
            else:
                done.append(ScheduledRetraining(model=model, run=run))
        return done

    # -- retirement -----------------------------------------------------------------------------

    def retire_superseded(self, model: str, *, alias: str = "champion") -> list[ModelVersion]:
        """Archive the versions ``alias``'s holder superseded once the policy's grace period
        for their tier has passed, counted from when the alias moved to that holder; versions
        holding an alias or serving traffic are kept."""
        from mintaka.governance.inventory import serving_index

        champion = self.platform.get_model_version(model, alias=alias)
        policy = self.platform.governance.policy
        serving = serving_index(self.platform)
        now = self.platform._now()
        moves = [
            e.at
            for e in self.platform.audit.events(subject=f"{model}@{alias}")
            if e.action == "model.alias.set" and e.details.get("version") == champion.version
        ]
        since = moves[-1] if moves else champion.created_at
        retired = []
        for version in self.platform.list_versions(model):
            if version.version >= champion.version or version.stage is Stage.ARCHIVED:
                continue
            routes = serving.get((version.name, version.version), [])
            if version.aliases or any(r.weight > 0 or r.shadow for r in routes):
                continue
            grace = policy.controls(version.risk_tier).superseded_grace_days
            if now - since < timedelta(days=grace):
                continue
            retired.append(
                self.platform.archive_version(
                    model,
                    version.version,
                    reason=f"superseded by {champion.ref} ({alias}); the {grace}-day grace period "
                    f"of the {version.risk_tier.value} tier has passed (policy "
                    f"{policy.digest[:19]})",
                )
            )
        return retired

    # -- plumbing -------------------------------------------------------------------------------

    def _run_request(
        self, request: RetrainRequest, options: Mapping[str, Any]
    ) -> tuple[RetrainRequest, PipelineRun | None]:
        """Retrain for ``request`` and record how it settled: done with its run, waiting at a
        gate (no run yet) or failed."""
        try:
            run = self.retrain(request.model, request.reason, trigger=request.trigger, **options)
        except Exception as exc:  # this request's own failure: the other models' still run
            run_id = getattr(exc, "run_id", None)
            stopped = isinstance(exc, GateFailed) and run_id is not None
            updated = request.model_copy(
                update={
                    "status": "waiting" if stopped else "failed",
                    "outcome": _described(exc),
                    "pipeline_run": run_id,
                    "gate": exc.kind if isinstance(exc, GateFailed) and stopped else None,
                    "stopped_at": self.platform._now(),
                }
            )
            self._save_request(updated)
            return updated, None
        updated = request.model_copy(
            update={"status": "done", "pipeline_run": run.id, "outcome": run.status.value}
        )
        self._save_request(updated)
        return updated, run

    def _claim(self, request: RetrainRequest) -> bool:
        """Take ``request`` for this process: False while another live process holds it."""
        return claim(self.root / "requests" / f"{request.id}.claim")

    def _current(self, request: RetrainRequest) -> RetrainRequest:
        """``request`` as stored now (another runner may have settled it)."""
        path = self.root / "requests" / f"{request.id}.json"
        return RetrainRequest.model_validate_json(path.read_text())

    def _release(self, request: RetrainRequest) -> None:
        release(self.root / "requests" / f"{request.id}.claim")

    def _save_request(self, request: RetrainRequest) -> None:
        write_atomic(self.root / "requests" / f"{request.id}.json", request.model_dump_json())

    def _audit(self, action: str, subject: str, **details: Any) -> None:
        with self.platform.store.write() as conn:
            event = self.platform._audit(conn, action, subject, **details)
        self.platform._after_commit([event])


def _described(exc: Exception) -> str:
    """An error as a request's outcome or a due model's error: Mintaka's own as it reads, any
    other with its type, so an unexpected failure is told apart from a refusal."""
    return str(exc) if isinstance(exc, MintakaError) else f"{type(exc).__name__}: {exc}"
