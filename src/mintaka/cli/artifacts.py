"""``mintaka artifacts ...``: list, verify and sweep the content-addressed artifact store."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer
from rich.markup import escape

from mintaka.artifacts import inventory
from mintaka.cli.output import console, emit_json, err_console, progress_bar, table
from mintaka.cli.state import platform

app = typer.Typer(help="The content-addressed artifact store.", no_args_is_help=True)


@app.command("list")
def list_(ctx: typer.Context, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List the recorded artifacts with their size and the versions that use them."""
    artifacts = inventory.recorded(platform(ctx))
    if as_json:
        emit_json([asdict(a) for a in artifacts])
        return
    table(
        "artifacts",
        ["digest", "size", "files", "stored", "versions"],
        [
            (a.digest[:19], a.size, a.files, (a.created_at or "")[:19], ", ".join(a.versions))
            for a in artifacts
        ],
    )


@app.command("verify")
def verify(
    ctx: typer.Context,
    digests: Annotated[
        list[str] | None,
        typer.Argument(
            help="Only these digests, or their first 12 or more hex digits [default: every "
            "recorded one]."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Re-hash every recorded artifact's bytes; exit 1 when one is missing or changed.

    Also lists the orphans: bytes in the store that no version or artifact record refers to
    (`artifacts sweep --orphans` removes them).
    """
    progress = progress_bar(err_console, "verifying")
    with progress:
        task = progress.add_task("verify", total=None)

        def advance(done: int, total: int, _digest: str) -> None:
            progress.update(task, completed=done, total=total)

        report = inventory.verify(platform(ctx), digests or (), advance)
    if as_json:
        emit_json(
            {
                "ok": report.ok,
                "checked": report.checked,
                "findings": [asdict(f) for f in report.findings],
                "orphans": list(report.orphans),
            }
        )
    else:
        for finding in report.findings:
            used = ", ".join(finding.versions) or "no version"
            console.print(f"[red]{finding.problem}[/] {finding.digest} (used by {used})")
            console.print(f"  {escape(finding.detail)}")
        if report.orphans:
            console.print(
                f"[yellow]{len(report.orphans)} orphaned artifact(s)[/] in the store, recorded "
                "nowhere (`mintaka artifacts sweep --orphans` removes them)"
            )
        verdict = "[green]verified[/]" if report.ok else "[red]failed[/]"
        console.print(
            f"artifacts {verdict}: {report.checked} checked, {len(report.findings)} problem(s)"
        )
    if not report.ok:
        raise typer.Exit(1)


@app.command("sweep")
def sweep(
    ctx: typer.Context,
    orphans: Annotated[
        bool, typer.Option("--orphans", help="Also remove stored bytes nothing records.")
    ] = False,
    min_age: Annotated[
        float,
        typer.Option(
            "--min-age",
            min=0,
            help="Only orphans older than this many seconds (interrupted ingests: an hour at "
            "least, as one may still be copying).",
        ),
    ] = inventory.DEFAULT_MIN_AGE_SECONDS,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would go; remove nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Remove what interrupted ingests left behind, and (--orphans) unrecorded bytes."""
    report = inventory.sweep(
        platform(ctx), min_age_seconds=min_age, orphans=orphans, dry_run=dry_run
    )
    if as_json:
        emit_json(asdict(report))
        return
    verb = "would remove" if dry_run else "removed"
    console.print(f"{verb} {report.staging_removed} interrupted ingest(s)")
    if orphans:
        console.print(f"{verb} {len(report.orphans_removed)} orphaned artifact(s)")
        for digest in report.orphans_removed:
            console.print(f"  {digest}")
        if report.orphans_kept:
            console.print(
                f"kept {len(report.orphans_kept)} orphan(s) younger than {min_age:g} s or "
                "being ingested (a registration may still be committing them)"
            )
