"""``mintaka runs ...``: list and show experiment runs."""

from __future__ import annotations

from typing import Annotated

import typer

from mintaka.cli.output import emit_json, fields, table
from mintaka.cli.state import platform

app = typer.Typer(help="Experiment runs.", no_args_is_help=True)


@app.command("list")
def list_(
    ctx: typer.Context,
    experiment: Annotated[str | None, typer.Option(help="Only this experiment.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List runs, oldest first."""
    found = platform(ctx).list_runs(experiment)
    if as_json:
        emit_json(found)
        return
    table(
        "runs",
        ["id", "experiment", "status", "metrics", "commit", "started"],
        [
            (
                r.id,
                r.experiment,
                r.status.value,
                ", ".join(f"{k}={v:.4g}" for k, v in r.metrics.items()),
                (r.code_commit or "")[:12],
                r.started_at.isoformat(),
            )
            for r in found
        ],
    )


@app.command("show")
def show(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN_ID")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show one run with its parameters, metrics, data and environment."""
    run = platform(ctx).get_run(run_id)
    if as_json:
        emit_json(run)
        return
    fields(
        run.id,
        [
            ("experiment", run.experiment),
            ("status", run.status.value),
            ("code commit", run.code_commit),
            ("datasets", run.dataset_ids),
            ("params", run.params),
            ("metrics", run.metrics),
            ("environment", run.environment),
            ("started", run.started_at.isoformat()),
            ("ended", run.ended_at.isoformat() if run.ended_at else None),
        ],
    )
