"""``mintaka audit ...``: verify and read the hash-chained audit trail."""

from __future__ import annotations

from typing import Annotated

import typer

from mintaka.cli.output import console, emit_json, table
from mintaka.cli.state import platform

app = typer.Typer(help="The audit trail.", no_args_is_help=True)


@app.command("verify")
def verify(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Recompute every link of the chain; exit 1 and name the first bad sequence number."""
    report = platform(ctx).verify_audit()
    if as_json:
        emit_json(report)
    elif report.ok:
        console.print(f"[green]audit chain verified[/]: {report.events} events")
    else:
        console.print(
            f"[red]audit chain broken at sequence {report.first_bad_seq}[/]: {report.reason}"
        )
    if not report.ok:
        raise typer.Exit(1)


@app.command("log")
def log(
    ctx: typer.Context,
    subject: Annotated[str | None, typer.Option(help="Only events about this subject.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many events.")] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List audit events, oldest first."""
    events = platform(ctx).audit.events(subject=subject, limit=limit)
    if as_json:
        emit_json(events)
        return
    table(
        "audit events",
        ["seq", "at", "actor", "action", "subject"],
        [(e.seq, e.at.isoformat(), e.actor, e.action, e.subject) for e in events],
    )
