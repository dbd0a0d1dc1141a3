"""``mintaka monitor ...`` and ``mintaka tickets ...``."""

from __future__ import annotations

import csv
import json
import signal
import threading
import tomllib
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.text import Text

from mintaka.cli.output import console, emit_json, err_console, table
from mintaka.cli.state import platform
from mintaka.errors import ValidationError, invalid_fields
from mintaka.serving.batch import csv_reader

if TYPE_CHECKING:
    from types import FrameType

    from mintaka.domain.monitoring import MonitorSpec
    from mintaka.monitoring.service import RunReport, Unmeasured
    from mintaka.platform import Platform

monitor_app = typer.Typer(
    help="Monitors, coverage and the monitoring runner.", no_args_is_help=True
)
tickets_app = typer.Typer(help="Tickets opened by alerts.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@monitor_app.command("add")
def add(
    ctx: typer.Context,
    spec_file: Annotated[
        Path, typer.Argument(help="Monitor spec (TOML): endpoint, model, signals.")
    ],
) -> None:
    """Attach a monitor described in a TOML file to an endpoint."""
    spec = read_monitor_spec(spec_file)
    monitor_id = platform(ctx).monitoring.add_monitor(spec)
    console.print(f"monitor {monitor_id} watches {spec.endpoint} ({len(spec.signals)} signals)")


def read_monitor_spec(spec_file: Path) -> MonitorSpec:
    """A monitor spec from its TOML file; a clear error when it cannot be read or is invalid."""
    from mintaka.domain.monitoring import MonitorSpec

    try:
        raw = tomllib.loads(spec_file.read_text())
        return MonitorSpec.model_validate(raw)
    except (OSError, tomllib.TOMLDecodeError, ValueError) as exc:
        raise ValidationError(f"{spec_file}: {invalid_fields(exc)}") from exc


@monitor_app.command("list")
def list_(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List monitors on duty, with the id `monitor remove` takes, and their signals: since
    when each signal the runner measured nothing for has gone unmeasured, and after how long
    that is alerted on. A monitor stored in a form this release cannot read is listed too, with
    why, so that it can be removed by its id. In --json every row has one shape: the id, the
    spec's fields and ``unreadable`` (null, or why; the spec's fields are then null)."""
    monitoring = platform(ctx).monitoring
    records = monitoring.monitor_records()
    unreadable = monitoring.unreadable_monitors()
    if as_json:
        emit_json(_json_rows(records, unreadable))
        return
    from mintaka.cli.audit import _quoted

    gaps = monitoring.unmeasured()
    table(
        "monitors",
        ["id", "endpoint", "model", "signal", "metric", "threshold", "window", "owner", "measured"],
        [
            (
                i,
                m.endpoint,
                m.model,
                _quoted(s.name),
                _quoted(s.metric),
                s.threshold,
                _quoted(s.window),
                _quoted(s.owner),
                _measured(gaps.get(f"{m.endpoint}:{s.name}"), s.unmeasured_after),
            )
            for i, m in records
            for s in m.signals
        ],
    )
    if unreadable:
        _print_unreadable(unreadable)


def _json_rows(
    records: list[tuple[str, MonitorSpec]], unreadable: dict[str, str]
) -> list[dict[str, Any]]:
    """The rows of ``monitor list --json``, the monitors this release cannot read after the
    others, all of one shape, so a script reads the same keys from each."""
    from mintaka.domain.monitoring import MonitorSpec

    blank = dict.fromkeys(MonitorSpec.model_fields)
    return [{"id": i, **m.model_dump(mode="json"), "unreadable": None} for i, m in records] + [
        {"id": i, **blank, "unreadable": why} for i, why in unreadable.items()
    ]


def _print_unreadable(unreadable: dict[str, str]) -> None:
    """The monitors ``monitor list`` cannot show as specs, each id with why: the reason quotes
    stored values, so it is printed on one line and quoted with its escapes if it still holds a
    character that could forge a line."""
    from mintaka.cli.audit import _quoted

    table(
        "monitors this release cannot read (remove them by id)",
        ["id", "why"],
        [
            (_quoted(i), Text(_quoted(" ".join(why.split())), style="red"))
            for i, why in unreadable.items()
        ],
    )


def _measured(gap: Unmeasured | None, after: str) -> str | Text:
    """How ``monitor list`` shows whether a signal is measured, and for an unmeasured one how
    long it may stay so before it is alerted on."""
    if gap is None:
        return "yes"
    return Text(f"not since {gap.since.isoformat()} (alerts after {after})", style="yellow")


@monitor_app.command("coverage")
def coverage(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """Endpoints taking live traffic, and which have no monitor (exit 1 if any)."""
    found = platform(ctx).monitoring.coverage()
    if as_json:
        emit_json(
            [
                {
                    "endpoint": c.endpoint,
                    "routes": c.routes,
                    "monitored": c.monitored,
                    "killed": c.killed,
                }
                for c in found
            ]
        )
    else:
        table(
            "coverage",
            ["endpoint", "live routes", "monitored", "killed"],
            [
                (
                    c.endpoint,
                    ", ".join(c.routes),
                    "yes" if c.monitored else Text("NO", style="red"),
                    "yes" if c.killed else "no",
                )
                for c in found
            ],
        )
    if any(not c.monitored for c in found):
        raise typer.Exit(1)


@monitor_app.command("remove")
def remove(
    ctx: typer.Context,
    monitor_id: Annotated[str, typer.Argument(help="The monitor's id (from monitor add).")],
    reason: Annotated[
        str, typer.Option("--reason", help="Why it is removed (recorded for auditors).")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Remove a monitor: its signals are no longer evaluated and it no longer counts as
    watching its endpoint. Open tickets of its signals stay open."""
    spec = platform(ctx).monitoring.remove_monitor(monitor_id, reason=reason)
    if as_json:
        emit_json({"monitor": monitor_id, "spec": spec})
        return
    signals = ", ".join(s.name for s in spec.signals)
    console.print(f"removed monitor {monitor_id} of {spec.endpoint} (signals: {signals})")


MIN_EVERY, MAX_EVERY = 1.0, 86400.0  # seconds between passes of `monitor run`


@monitor_app.command("run")
def run(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option("--once", help="Evaluate once and exit (for cron).")
    ] = False,
    every: Annotated[float, typer.Option(help="Seconds between evaluations.")] = 60.0,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate every monitor and escalation; once, or repeatedly until interrupted.

    A signal that cannot be evaluated is reported on stderr and skipped; the other signals and
    the escalations still run. So is a ticket whose escalation failed; the other tickets still
    escalate. With --once the exit status is then 1 (0 when every signal could be evaluated and
    every due escalation made, whether or not it alerted); repeated runs report it and go on.
    SIGTERM (what process managers and container runtimes send) stops it cleanly, as it stops
    `serve`: the copies of the training files a pass checks are removed on the way out,
    "stopped" is printed on stderr and the exit status is 0, so a service manager records a
    clean stop."""
    if not once and not MIN_EVERY <= every <= MAX_EVERY:  # also refuses nan
        raise ValidationError(
            f"--every takes {MIN_EVERY:g} to {MAX_EVERY:g} seconds between evaluations, not {every}"
        )
    plat = platform(ctx)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        _run_passes(plat, once, every, as_json)
    except _Terminated:
        err_console.print("stopped")
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


class _Terminated(KeyboardInterrupt):
    """SIGTERM stopping `monitor run`: raised wherever the pass is, so it unwinds (and cleans
    up) as Ctrl-C does and no ``except Exception`` of a pass takes it for a failed signal."""


def _terminate(_signum: int, _frame: FrameType | None) -> None:
    raise _Terminated


def _run_passes(plat: Platform, once: bool, every: float, as_json: bool) -> None:
    """Run the monitoring passes of `monitor run`, reporting each."""
    import time

    while True:
        report = plat.monitoring.run_once()
        if as_json:
            emit_json(_run_json(report))
        else:
            _print_run(report)
        for failure in report.failed:
            where = f"signal {failure.signal!r} on {failure.endpoint}"
            err_console.print(f"[red]{escape(where)} failed[/]: {escape(failure.error)}")
        for unmoved in report.escalation_failed:
            where = "escalation" if unmoved.ticket is None else f"escalation of {unmoved.ticket!r}"
            err_console.print(f"[red]{escape(where)} failed[/]: {escape(unmoved.error)}")
        if once:
            if report.failed or report.escalation_failed:
                raise typer.Exit(1)
            return
        time.sleep(every)


def _print_run(report: RunReport) -> None:
    """One pass of the runner as people read it: the counts, then what each signal left out."""
    failed = f", {len(report.failed)} signals failed" if report.failed else ""
    if report.escalation_failed:
        failed += f", {len(report.escalation_failed)} escalations failed"
    console.print(
        f"evaluated {report.evaluated} signals: {len(report.alerts)} alerts, "
        f"{len(report.escalated)} escalations{failed}"
    )
    for found in report.notes:
        where = f"signal {found.signal!r} on {found.endpoint}"
        console.print(f"{escape(where)} left out: {escape(found.note)}")


def _run_json(report: RunReport) -> dict[str, Any]:
    """One pass of the runner for scripts."""
    return {
        "evaluated": report.evaluated,
        "alerts": list(report.alerts),
        "escalated": list(report.escalated),
        "failed": [asdict(failure) for failure in report.failed],
        "notes": [asdict(found) for found in report.notes],
        "escalation_failed": [asdict(unmoved) for unmoved in report.escalation_failed],
    }


@monitor_app.command("report")
def report(
    ctx: typer.Context,
    endpoint: Annotated[str, typer.Argument(metavar="ENDPOINT")],
    out: Annotated[Path, typer.Option("--out", help="Directory to write the page into.")],
    window: Annotated[str, typer.Option(help="How far back the current data reaches.")] = "1d",
) -> None:
    """Write an HTML page with the endpoint's drift charts, drift table and tickets."""
    from mintaka.monitoring.report import write_report

    plat = platform(ctx)
    plat.serving.get_endpoint(endpoint)  # an unknown endpoint is refused before --out is made
    path = write_report(plat, endpoint, out, window)
    console.print(f"wrote {path}")


def parse_label(text: str, *, strings: bool = False) -> object:
    """A CSV cell as a label: JSON when it parses (``1``, ``0.25``, ``true``), else the text.
    ``true`` and ``false`` in any case are booleans, as pandas writes them (``True``), so they
    equal the booleans a model logs. With ``strings`` (a model whose classes are strings) the
    cell is its text: the class ``"True"`` or ``"1"`` of such a model is no boolean or number."""
    if strings:
        return text
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return json.loads(text)
    except ValueError:
        return text


@monitor_app.command("labels")
def labels(
    ctx: typer.Context,
    file: Annotated[
        Path, typer.Argument(help="CSV with a header row and columns prediction_id,label.")
    ],
) -> None:
    """Record late-arriving ground truth for logged predictions (a later label replaces one)."""
    texts: dict[str, str] = {}
    try:
        with file.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv_reader(file, handle)
            if not {"prediction_id", "label"} <= set(reader.fieldnames or ()):
                raise ValidationError(f"{file}: the header must name prediction_id and label")
            for row in reader:
                pid, label = row["prediction_id"], row["label"]
                if pid is None or label is None or not pid.strip():
                    raise ValidationError(
                        f"{file}, line {reader.line_num}: a row needs a prediction_id and a label"
                    )
                texts[pid.strip()] = label.strip()
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise ValidationError(f"{file}: {exc}") from exc
    monitoring = platform(ctx).monitoring
    strings = monitoring.string_classes(list(texts))
    found = {pid: parse_label(text, strings=pid in strings) for pid, text in texts.items()}
    stored = monitoring.record_labels(found)
    console.print(f"{stored} labels recorded")


@tickets_app.command("list")
def tickets_list(
    ctx: typer.Context,
    status: Annotated[str | None, typer.Option(help="open, acknowledged or resolved.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List tickets. A value stored by an earlier release that holds a character that could
    forge or reorder a line of the listing (an owner or runbook URL with a newline) is printed
    quoted with its escapes; --json gives it as stored. A severity or status this release does
    not know is listed as stored, and an escalation step that is not a mapping as a step owned
    by ``unreadable: `` and the step as JSON."""
    from mintaka.cli.audit import _quoted

    found = platform(ctx).monitoring.tickets(status)
    if as_json:  # a severity or step no release of this one reads is given as stored
        emit_json([t.model_dump(mode="json", by_alias=True, warnings=False) for t in found])
        return
    table(
        "tickets",
        ["id", "status", "severity", "signal", "endpoint", "owner", "alerts", "runbook"],
        [
            (
                _quoted(t.id),
                _quoted(str(t.status)),
                _quoted(str(t.severity)),
                _quoted(t.signal),
                _quoted(t.endpoint),
                _quoted(t.owner),
                t.alerts,
                None if t.runbook_url is None else _quoted(t.runbook_url),
            )
            for t in found
        ],
    )


@tickets_app.command("ack")
def ack(ctx: typer.Context, ticket_id: Annotated[str, typer.Argument(metavar="TICKET")]) -> None:
    """Acknowledge a ticket (stops its escalation)."""
    ticket = platform(ctx).monitoring.acknowledge(ticket_id)
    console.print(f"{ticket.id} acknowledged by {ticket.acked_by}")


@tickets_app.command("resolve")
def resolve(
    ctx: typer.Context,
    ticket_id: Annotated[str, typer.Argument(metavar="TICKET")],
    note: Annotated[str, typer.Option(help="What was done (audited).")] = "",
) -> None:
    """Resolve a ticket; the next alert on its signal opens a new one."""
    ticket = platform(ctx).monitoring.resolve(ticket_id, note)
    console.print(f"{ticket.id} resolved")
