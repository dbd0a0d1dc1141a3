"""``mintaka pipeline ...`` and ``mintaka retrain``: run, resume and inspect training pipelines,
and retrain a model through the pipeline bound to it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from mintaka.cli.output import console, emit_json, progress_bar, table
from mintaka.cli.state import command_line, platform
from mintaka.errors import GateFailed, MintakaError, ValidationError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from rich.progress import Progress

    from mintaka.domain.pipelines import PipelineRun
    from mintaka.pipelines.local import RunState, StepEvent

PARAM_HELP = (
    "NAME=VALUE; the text as given for a parameter declared as text, else read as in TOML "
    '(7, 0.5, true, "7"), else as text.'
)
app = typer.Typer(help="Training pipelines: typed steps, gates, caching.", no_args_is_help=True)


def _parameters(
    values: list[str], declared: Mapping[str, Any] | None = None
) -> dict[str, str | int | float | bool]:
    """``--param NAME=VALUE`` options. A parameter ``declared`` as text (its default in the
    pipeline's spec is text) takes VALUE as given (``-p tag=2024`` is the text ``"2024"``); any
    other is read as in the pipeline's TOML (see :func:`_parameter_value`): ``-p seed=7``
    overrides ``seed = 7`` with the same integer."""
    found: dict[str, str | int | float | bool] = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            raise ValidationError(f"--param takes NAME=VALUE, got {value!r}")
        as_text = declared is not None and isinstance(declared.get(key), str)
        found[key] = text if as_text else _parameter_value(text)
    return found


def _parameter_value(text: str) -> str | int | float | bool:
    """``text`` as a TOML value when it is a number, a boolean or a quoted string (``7``,
    ``0.5``, ``true``, ``"7"``); anything else, a date or a list included, is the text itself."""
    import tomllib

    try:
        parsed = tomllib.loads(f"value = {text}")
    except tomllib.TOMLDecodeError:
        return text
    value = parsed.get("value") if len(parsed) == 1 else None
    if isinstance(value, bool | int | str) or (isinstance(value, float) and math.isfinite(value)):
        return value
    return text


class _Bar:
    """A progress bar over a run's steps, with one line per finished step."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: Any = None

    def __call__(self, event: StepEvent) -> None:
        if self.task is None:
            self.task = self.progress.add_task("pipeline", total=event.total)
        if event.status == "started":
            self.progress.update(self.task, description=f"{event.step}")
            return
        mark = {
            "succeeded": "[green]ok[/]",
            "cached": "[cyan]cached[/]",
            "reused": "[dim]done earlier[/]",
            "failed": "[red]failed[/]",
        }[event.status]
        self.progress.console.print(f"  [{event.index}/{event.total}] {event.step}: {mark}")
        if event.status != "failed":
            self.progress.update(self.task, completed=event.index)


def _run_with_bar(ctx: typer.Context, action: Any) -> PipelineRun:
    """Run ``action`` with a progress bar; a run that fails in a step or stops at a gate names
    the command that resumes it."""
    from mintaka.pipelines.local import failed_run

    with progress_bar() as progress:
        try:
            run: PipelineRun | None = action(_Bar(progress))
        except GateFailed as exc:
            progress.stop()
            console.print(f"[red]gate {exc.gate!r} ({exc.kind}) refused the run[/]:")
            for check in exc.checks:
                console.print(
                    f"  - {escape(check.describe() if hasattr(check, 'describe') else str(check))}"
                )
            if exc.run_id:
                resume = command_line(ctx, "pipeline", "resume", exc.run_id)
                console.print(f"resume it with: {escape(resume)}", soft_wrap=True)
            raise typer.Exit(1) from exc
        except MintakaError as exc:
            run_id = failed_run(exc)
            if run_id is not None:
                progress.stop()
                resume = command_line(ctx, "pipeline", "resume", run_id)
                console.print(f"resume it with: {escape(resume)}", soft_wrap=True)
            raise
    assert run is not None
    console.print(f"pipeline run [bold]{run.id}[/]: {run.status.value}")
    return run


@app.command("run")
def run(
    ctx: typer.Context,
    spec: Annotated[Path, typer.Argument(help="Pipeline spec (TOML or JSON).")],
    param: Annotated[list[str], typer.Option("--param", "-p", help=PARAM_HELP)] = [],  # noqa: B006
    inline: Annotated[
        bool, typer.Option(help="Run computing steps in this process, not sub-processes.")
    ] = False,
    local: Annotated[
        bool, typer.Option("--local", help="Run here even when the backend runs pipelines.")
    ] = False,
    detach: Annotated[
        bool,
        typer.Option(
            "--detach", help="Submit the run to the backend and return (local: a worker process)."
        ),
    ] = False,
) -> None:
    """Run a pipeline: on the backend when it runs pipelines (SageMaker Pipelines, Databricks
    Jobs), else on this machine in the foreground, each computing step in its own sub-process.
    With --detach the local backend runs it in a worker process of its own."""
    from mintaka.capabilities import Capability
    from mintaka.pipelines.service import load_spec

    if detach and (local or inline):
        raise ValidationError("--detach submits the run; --local and --inline run it here")
    loaded = load_spec(spec)
    plat = platform(ctx)
    here = plat.backend.computes_here
    if detach or (plat.supports(Capability.PIPELINES) and not local and not here):
        submitted = plat.pipelines.submit(loaded, _parameters(param, loaded.parameters))
        console.print(
            f"submitted [bold]{submitted.id}[/] to {submitted.backend}: {submitted.status.value}"
        )
        status = command_line(ctx, "pipeline", "status", submitted.id)
        console.print(f"follow it with: {escape(status)}", soft_wrap=True)
        return
    isolation = "inline" if inline else "process"
    _run_with_bar(
        ctx,
        lambda bar: plat.pipelines.run(
            loaded, _parameters(param, loaded.parameters), on_event=bar, isolation=isolation
        ),
    )


@app.command("resume")
def resume(ctx: typer.Context, run_id: Annotated[str, typer.Argument(metavar="RUN_ID")]) -> None:
    """Resume a failed or stopped run from its last good step."""
    plat = platform(ctx)
    _run_with_bar(ctx, lambda bar: plat.pipelines.resume(run_id, on_event=bar))


@app.command("runs")
def runs(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Pipeline runs on this machine, oldest first: what started each, and its steps (how many
    succeeded, and how many of those were cache hits)."""
    plat = platform(ctx)
    found = plat.pipelines.runs()
    if as_json:
        emit_json(found)
        return
    rows = [
        (
            r.id,
            r.pipeline,
            _trigger(plat.pipelines.get(r.id)),
            r.status.value,
            r.started_at.isoformat(timespec="seconds"),
            _steps(r),
            r.failure_reason or "",
        )
        for r in found
    ]
    columns = ["run", "pipeline", "trigger", "status", "started", "steps", "failure"]
    table("pipeline runs", columns, rows)


def _trigger(state: RunState) -> str:
    """What started a run, with the reason it was given."""
    return f"{state.trigger}: {state.reason}" if state.reason else state.trigger


def _steps(run: PipelineRun) -> str:
    """``N/M (K cached)``: steps succeeded out of the pipeline's, and the cache hits among them."""
    from mintaka.domain.pipelines import PipelineStatus

    done = sum(1 for s in run.steps if s.status is PipelineStatus.SUCCEEDED)
    cached = sum(1 for s in run.steps if s.cached)
    return f"{done}/{len(run.steps)} ({cached} cached)"


@app.command("show")
def show(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A run's steps, gates, cache hits and what makes it reproducible."""
    state = platform(ctx).pipelines.get(run_id)
    if as_json:
        emit_json(state)
        return
    run = state.run
    console.print(
        f"[bold]{escape(run.id)}[/] {escape(run.pipeline)}: {run.status.value} "
        f"({escape(state.trigger)})"
    )
    console.print(
        escape(
            f"code {state.code_commit or 'unknown'}; seeds {state.seeds}; "
            f"data {state.data_digests}; experiment run {state.experiment_run}"
        )
    )
    rows = []
    for step in run.steps:
        gate = ""
        if step.gate is not None:
            gate = "; ".join(c.describe() for c in step.gate.checks)
        rows.append(
            (
                step.name,
                step.status.value,
                "yes" if step.cached else "",
                step.failure_reason or gate,
            )
        )
    table("steps", ["step", "status", "cached", "gate checks / failure"], rows)


@app.command("compile")
def compile_(
    ctx: typer.Context,
    spec: Annotated[Path, typer.Argument(help="Pipeline spec (TOML or JSON).")],
    out: Annotated[Path | None, typer.Option(help="Write the definition here.")] = None,
) -> None:
    """The spec in the backend's native format (SageMaker Pipelines JSON, a Databricks job)."""
    from mintaka.pipelines.service import load_spec

    native = platform(ctx).pipelines.compile(load_spec(spec))
    if out is not None:
        import json

        out.write_text(json.dumps(native.definition, indent=2, sort_keys=True))
        console.print(f"{native.format} definition written to {escape(str(out))}")
    else:
        emit_json(native)


@app.command("bind")
def bind(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(metavar="NAME")],
    spec: Annotated[Path, typer.Argument(help="Pipeline spec (TOML or JSON).")],
    param: Annotated[list[str], typer.Option("--param", "-p", help=PARAM_HELP)] = [],  # noqa: B006
    every: Annotated[str | None, typer.Option(help="Retrain on a schedule, e.g. 7d.")] = None,
    retry_after: Annotated[
        str,
        typer.Option(
            help="How long a retraining refused by a data-validation or evaluation gate holds "
            "off the next one a drift or performance alert asks for."
        ),
    ] = "1d",
) -> None:
    """Make a pipeline the one that (re)trains a model."""
    from mintaka.pipelines.service import load_spec

    loaded = load_spec(spec)
    binding = platform(ctx).pipelines.bind(
        model, loaded, _parameters(param, loaded.parameters), every=every, retry_after=retry_after
    )
    console.print(
        f"{model} retrains through {binding.spec.name}" + (f" every {every}" if every else "")
    )


def retrain(
    ctx: typer.Context,
    model: Annotated[str | None, typer.Argument(metavar="NAME")] = None,
    reason: Annotated[str, typer.Option(help="Why (audited with the run).")] = "",
    param: Annotated[list[str], typer.Option("--param", "-p", help=PARAM_HELP)] = [],  # noqa: B006
    due: Annotated[
        bool, typer.Option("--due", help="Retrain every model whose schedule is due.")
    ] = False,
    pending: Annotated[
        bool, typer.Option("--pending", help="Run the retrainings that alerts asked for.")
    ] = False,
) -> None:
    """Retrain a model through its bound pipeline (or the scheduled / alert-requested ones).
    With --due or --pending, every model is tried; exits 1 when any of them failed or stopped
    at a gate."""
    plat = platform(ctx)
    if due or pending:
        settled = True
        if due:
            scheduled_runs = plat.pipelines.run_due()
            if not scheduled_runs:
                console.print("nothing due")
            for scheduled in scheduled_runs:
                if scheduled.run is not None:
                    console.print(
                        f"{scheduled.model}: {scheduled.run.id} {scheduled.run.status.value}"
                    )
                else:
                    settled = False
                    console.print(f"[red]{scheduled.model}: {escape(scheduled.error)}[/]")
        if pending:
            processed = plat.pipelines.process_requests()
            if not processed:
                console.print("no retraining request to run")
            for request, outcome in processed:
                settled = settled and request.status == "done"
                line = (
                    f"{request.model} ({request.trigger}): {request.status} "
                    f"{outcome.id if outcome else request.outcome}"
                )
                console.print(
                    escape(line) if request.status == "done" else f"[red]{escape(line)}[/]"
                )
        if not settled:
            raise typer.Exit(1)
        return
    if model is None:
        raise ValidationError("name a model, or pass --due or --pending")
    if not reason:
        raise ValidationError("--reason is required: a retraining is audited with its reason")
    declared = plat.pipelines.binding(model).spec.parameters
    _run_with_bar(
        ctx,
        lambda bar: plat.pipelines.retrain(
            model, reason, parameters=_parameters(param, declared), on_event=bar
        ),
    )


def retire_superseded(
    ctx: typer.Context, model: Annotated[str, typer.Argument(metavar="NAME")]
) -> None:
    """Archive the versions the champion superseded once the policy's grace period is over."""
    plat = platform(ctx)
    if not any("champion" in v.aliases for v in plat.list_versions(model)):
        console.print(f"{escape(model)} has no champion alias: nothing is superseded")
        return
    retired = plat.pipelines.retire_superseded(model)
    for version in retired:
        console.print(f"retired {version.ref}")
    if not retired:
        console.print("nothing to retire")


@app.command("status")
def status(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A run submitted to the backend, as the backend reports it now. Model versions its steps
    registered in the cloud are adopted, with lineage from the run. Exits 1 when the run failed
    or a registered version could not be adopted."""
    from mintaka.domain.pipelines import PipelineStatus

    found = platform(ctx).pipelines.status(run_id)
    run = found.run
    if as_json:
        emit_json(found)
    else:
        console.print(f"pipeline run [bold]{run.id}[/] on {run.backend}: {run.status.value}")
        table(
            "steps",
            ["step", "status", "started", "ended", "failure"],
            [
                (s.name, s.status.value, s.started_at, s.ended_at, s.failure_reason or "")
                for s in run.steps
            ],
        )
        for version in found.adopted:
            console.print(f"adopted {version.ref} ({version.artifact_digest[:19]})")
        for problem in found.problems:
            console.print(f"[red]{escape(str(problem))}[/]")
    if run.status is PipelineStatus.FAILED or found.problems:
        raise typer.Exit(1)
