"""``mintaka audit ...``: verify, read and checkpoint the hash-chained audit trail."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from mintaka.cli.output import console, emit_json, table
from mintaka.cli.state import platform
from mintaka.clock import MAX_STAMP_TOLERANCE, STAMP_TOLERANCE
from mintaka.errors import ValidationError

if TYPE_CHECKING:
    from mintaka.audit.stamps import StampAhead
    from mintaka.governance.records import RecordsReport
    from mintaka.platform import Platform

app = typer.Typer(help="The audit trail.", no_args_is_help=True)

DEFAULT_LOG_LIMIT = 50


def _clock_tolerance(seconds: float) -> float:
    """``--clock-tolerance`` as given: a finite number of seconds from 0 up to
    ``MAX_STAMP_TOLERANCE`` (a usage error otherwise, not a crash in ``timedelta``)."""
    most = MAX_STAMP_TOLERANCE.total_seconds()
    if not (math.isfinite(seconds) and 0 <= seconds <= most):
        raise typer.BadParameter(f"must be a number of seconds from 0 to {most:.0f}, not {seconds}")
    return seconds


@app.command("verify")
def verify(
    ctx: typer.Context,
    public_key: Annotated[
        Path | None,
        typer.Option("--public-key", help="Also check signed checkpoints with this public key."),
    ] = None,
    checkpoint_file: Annotated[
        Path | None,
        typer.Option("--checkpoints", help="The checkpoint file written by `audit checkpoint`."),
    ] = None,
    clock_tolerance: Annotated[
        float,
        typer.Option(
            "--clock-tolerance",
            callback=_clock_tolerance,
            help="Warn of events stamped later than a later event by more than these seconds.",
        ),
    ] = STAMP_TOLERANCE.total_seconds(),
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Recompute every link of the chain; exit 1 and name the first bad sequence number.

    With --public-key and --checkpoints, also check every checkpoint's signature and that the
    chain reproduces each checkpointed head, which catches a chain rewritten from end to end.
    Then cross-check the approvals and exceptions tables with the chain: a row no audit event
    records as it stands, or an event whose row is gone, fails verification too (by id).

    Events stamped later than an event after them by more than --clock-tolerance (one of the
    two clocks was wrong) are named in a warning, which does not fail verification: the chain's
    order stands, and each approval is still judged by its own stamp.
    """
    from mintaka.governance.records import check_records

    if (public_key is None) != (checkpoint_file is None):
        raise ValidationError("--public-key and --checkpoints go together")
    plat = platform(ctx)
    if public_key is not None and checkpoint_file is not None:
        from mintaka.audit import checkpoints

        key = checkpoints.load_public_key(public_key)
        entries = checkpoints.read(checkpoint_file)
        report = checkpoints.verify(plat.audit, key, entries)
        ok, reason, first_bad = report.ok, report.reason, report.first_bad_seq
        summary = f"{report.events} events, {report.checkpoints} signed checkpoints"
        result: dict[str, Any] = report.model_dump(mode="json")
    else:
        chain = plat.verify_audit()
        ok, reason, first_bad = chain.ok, chain.reason, chain.first_bad_seq
        summary = f"{chain.events} events"
        result = chain.model_dump(mode="json")
    records = check_records(plat.store)
    tolerance = timedelta(seconds=clock_tolerance)
    ahead = plat.audit.stamps_ahead(tolerance)
    if as_json:
        emit_json(
            {
                **result,
                "ok": ok and records.ok,
                "records": records,
                "clock_tolerance_seconds": clock_tolerance,
                "stamps_ahead": ahead,
            }
        )
    elif not ok and first_bad is None:
        console.print(f"[red]audit checkpoints rejected[/]: {escape(str(reason))}")
    elif not ok:
        console.print(f"[red]audit chain broken at sequence {first_bad}[/]: {escape(str(reason))}")
    elif records.ok:
        console.print(f"[green]audit chain verified[/]: {summary}")
    else:
        console.print(f"audit chain verified: {summary}")
    if not as_json and not records.ok:
        _print_records(records)
    if not as_json and ahead:
        _print_stamps_ahead(ahead, tolerance)
    if not ok or not records.ok:
        raise typer.Exit(1)


SHOWN_STAMPS_AHEAD = 20
"""Events stamped ahead that the text report lists (``--json`` lists every one)."""


def _print_stamps_ahead(ahead: list[StampAhead], tolerance: timedelta) -> None:
    """Warn of the events stamped later than a later event by more than ``tolerance``."""
    console.print(
        f"[yellow]warning[/]: {len(ahead)} event(s) stamped more than {_span(tolerance)} "
        "later than an event recorded after them (a clock set ahead, or one behind): "
        "approvals are judged by their own stamps all the same"
    )
    table(
        "events stamped ahead of a later event",
        ["seq", "at", "later seq", "later at", "ahead by"],
        [
            (a.seq, a.at.isoformat(), a.later_seq, a.later_at.isoformat(), _duration(a.ahead))
            for a in ahead[:SHOWN_STAMPS_AHEAD]
        ],
    )
    if len(ahead) > SHOWN_STAMPS_AHEAD:
        console.print(f"[dim]the first {SHOWN_STAMPS_AHEAD}; --json lists all {len(ahead)}[/]")


def _duration(span: timedelta) -> str:
    """A duration in days, hours, minutes and seconds, naming only those it has (``90d``,
    ``1d 2h 5s``), below a second in microseconds."""
    whole = int(span.total_seconds())
    parts = [
        f"{amount}{unit}"
        for amount, unit in (
            (whole // 86400, "d"),
            (whole % 86400 // 3600, "h"),
            (whole % 3600 // 60, "m"),
            (whole % 60, "s"),
        )
        if amount
    ]
    return " ".join(parts) or f"{span.microseconds}µs"


def _span(span: timedelta) -> str:
    """A tolerance as people say it: whole minutes in minutes, else seconds."""
    seconds = span.total_seconds()
    minutes = seconds / 60
    if seconds and minutes.is_integer():
        return "1 minute" if minutes == 1 else f"{minutes:g} minutes"
    return f"{seconds:g} s"


def _print_records(records: RecordsReport) -> None:
    """Name every approval or exception row the chain does not record, and every event whose
    row is gone."""
    console.print(
        "[red]approvals and exceptions disagree with the audit chain[/] (such rows count nowhere)"
    )
    if records.unrecorded:
        table(
            "rows the audit chain does not record",
            ["table", "id", "version", "why"],
            [
                (r.table, _quoted(r.id), _quoted(r.subject), _quoted(r.reason))
                for r in records.unrecorded
            ],
        )
    if records.missing:
        table(
            "audit events whose row is gone",
            ["seq", "table", "id", "version"],
            [(m.seq, m.table, _quoted(m.id), _quoted(m.subject)) for m in records.missing],
        )


def _quoted(value: str) -> str:
    """``value`` as it is, or quoted with its escapes (``repr``) when it holds a character that
    could forge a line of the report or reorder it: the rows are read from tables anyone with
    the store can write, so an id must not print as lines of its own."""
    from mintaka.domain.names import forging_character

    return value if forging_character(value) is None else repr(value)


@app.command("log")
def log(
    ctx: typer.Context,
    subject: Annotated[str | None, typer.Option(help="Only events about this subject.")] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            min=1, max=2**62, show_default=False, help="At most this many events [default: 50]."
        ),
    ] = None,
    last: Annotated[
        int | None,
        typer.Option(min=1, max=2**62, help="Only the N most recent events (oldest first)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List audit events, oldest first: from the start of the trail, or its last N with --last
    (secrets in their details are redacted on output)."""
    from mintaka.governance.redaction import Redactor

    if last is not None and limit is not None:
        raise ValidationError("--last and --limit do not go together: --last N is the newest N")
    plat = platform(ctx)
    wanted = last if last is not None else (DEFAULT_LOG_LIMIT if limit is None else limit)
    events = plat.audit.events(
        subject=subject, limit=min(wanted + 1, 2**62), newest_first=last is not None
    )
    more = len(events) > wanted
    events = events[:wanted] if last is None else events[:wanted][::-1]
    redactor = Redactor.for_platform(plat)
    if as_json:
        emit_json([redactor.value(e) for e in events])
        return
    table(
        "audit events",
        ["seq", "at", "actor", "action", "subject"],
        [(e.seq, e.at.isoformat(), e.actor, e.action, redactor.text(e.subject)) for e in events],
    )
    if more and last is not None:
        console.print(f"[dim]the last {wanted} events; --last N shows more[/]")
    elif more:
        console.print(
            f"[dim]the first {wanted} events; --limit N shows more, --last N the latest[/]"
        )


@app.command("keygen")
def keygen(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="Directory outside the store.")],
) -> None:
    """Write a new Ed25519 signing key (audit-signing.pem, 0600) and its public key, outside the
    home and its store (``audit checkpoint`` refuses a key inside them)."""
    from mintaka.audit import checkpoints
    from mintaka.cli.state import state
    from mintaka.config import resolve_home

    home = resolve_home(state(ctx).home)
    # A home that exists is opened for where its store is; a key made before any home is not.
    places = _store_dirs(platform(ctx)) if home.exists() else [home]
    checkpoints.ensure_outside(out / checkpoints.PRIVATE_KEY_FILE, places, "signing key")
    private_path, public_path = checkpoints.generate_keypair(out)
    console.print(f"signing key: {escape(str(private_path))} (keep it away from the store)")
    console.print(f"public key: {escape(str(public_path))}")


@app.command("checkpoint")
def checkpoint(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", help="Directory for checkpoints.jsonl.")],
    key: Annotated[
        Path | None,
        typer.Option("--key", help="Signing key (PEM) [default: MINTAKA_AUDIT_KEY]."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Verify the chain (against the checkpoints OUT/checkpoints.jsonl already holds), sign its
    head and append the checkpoint to that file."""
    from mintaka.audit import checkpoints

    plat = platform(ctx)
    key_path = checkpoints.private_key_path(key)
    target = out / checkpoints.CHECKPOINTS_FILE
    checkpoints.ensure_outside(key_path, _store_dirs(plat), "signing key")
    checkpoints.ensure_outside(target, _store_dirs(plat), "checkpoint file")
    signed = checkpoints.checkpoint_into(
        target, plat.audit, checkpoints.load_private_key(key_path), at=plat.clock.now()
    )
    if as_json:
        emit_json(signed)
    else:
        console.print(
            f"checkpoint at sequence {signed.seq} ({signed.hash[:16]}...) "
            f"signed by {signed.key_id}, appended to {escape(str(target))}"
        )


def _store_dirs(plat: Platform) -> list[Path]:
    from mintaka.store.engine import sqlite_file

    dirs = [plat.home]
    database = sqlite_file(plat.store.url)
    if database is not None:
        dirs.append(database.parent)
    return dirs
