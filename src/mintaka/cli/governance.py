"""Governance commands: inventory, evidence packs, approvals, model cards, exceptions, the policy
and its decisions. Everything printed passes through the redaction layer."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from mintaka.cli.output import console, emit_json, fields, table, to_jsonable
from mintaka.cli.state import platform
from mintaka.errors import ValidationError

if TYPE_CHECKING:
    from mintaka.platform import Platform

_INVENTORY_COLUMNS = (
    "version",
    "tier",
    "stage",
    "owner",
    "backend",
    "aliases",
    "live on",
    "approvals",
    "approved",
    "revalidation due",
    "exceptions",
)
_TIER_COLUMNS = (
    "tier",
    "approvals",
    "approver roles",
    "documentation",
    "evaluation",
    "strategies",
    "revalidation days",
    "unkill roles",
)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]

evidence_app = typer.Typer(help="Evidence packs for auditors.", no_args_is_help=True)
card_app = typer.Typer(help="Model cards.", no_args_is_help=True)
exceptions_app = typer.Typer(help="Documented, expiring policy exceptions.", no_args_is_help=True)
policy_app = typer.Typer(help="The governance policy in force.", no_args_is_help=True)
decisions_app = typer.Typer(help="Recorded policy decisions.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the governance commands to the ``mintaka`` app."""
    app.command("inventory")(inventory)
    app.command("approve")(approve)
    app.add_typer(evidence_app, name="evidence")
    app.add_typer(card_app, name="card")
    app.add_typer(exceptions_app, name="exceptions")
    app.add_typer(policy_app, name="policy")
    app.add_typer(decisions_app, name="decisions")


def _safe(plat: Platform, value: Any) -> Any:
    from mintaka.governance.redaction import Redactor

    return Redactor.for_platform(plat).value(to_jsonable(value))


def _emit(plat: Platform, value: Any) -> None:
    emit_json(_safe(plat, value))


def _table(plat: Platform, title: str, columns: list[str], rows: list[list[Any]]) -> None:
    """``output.table`` (one record per row when it does not fit), every cell redacted."""
    from rich.text import Text

    from mintaka.governance.redaction import Redactor

    redactor = Redactor.for_platform(plat)
    table(
        title,
        columns,
        [[Text(redactor.text("" if c is None else str(c))) for c in row] for row in rows],
    )


# -- inventory ---------------------------------------------------------------------------------


def inventory(
    ctx: typer.Context,
    tier: Annotated[str | None, typer.Option(help="Only this risk tier.")] = None,
    stage: Annotated[str | None, typer.Option(help="Only this stage.")] = None,
    owner: Annotated[str | None, typer.Option(help="Only versions this identity owns.")] = None,
    backend: Annotated[str | None, typer.Option(help="Only versions on this backend.")] = None,
    overdue: Annotated[
        bool, typer.Option("--overdue", help="Only versions in use with revalidation overdue.")
    ] = False,
    exceptions: Annotated[
        bool, typer.Option("--exceptions", help="Only versions with exceptions in force.")
    ] = False,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help="Instead: what was in production at this ISO 8601 date or time "
            "(a bare date means the end of that day, UTC).",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every model version with its tier, stage, owner, traffic, approvals and exceptions."""
    from mintaka.governance.inventory import inventory as build
    from mintaka.governance.inventory import parse_instant, production_at

    plat = platform(ctx)
    if at is not None:
        snapshot = production_at(plat, parse_instant(at))
        if as_json:
            _emit(plat, snapshot)
            return
        console.print(f"in production at [bold]{snapshot.at.isoformat()}[/]")
        aliases = ", ".join(snapshot.production_aliases) or "none"
        console.print(f"production aliases then: {aliases} (policy {escape(snapshot.policy)})")
        _table(
            plat,
            "live traffic",
            ["endpoint", "status", "since", "deployment", "version", "route", "weight"],
            [
                [e.endpoint, e.status, e.since.isoformat(), e.deployment]
                + ([f"{v.model}:{v.version}", v.route, f"{v.weight}%"] if v else ["", "", ""])
                for e in snapshot.endpoints
                for v in (e.live or (None,))
            ],
        )
        _table(
            plat,
            "production aliases",
            ["model", "alias", "version", "since"],
            [[a.model, a.alias, a.version, a.since.isoformat()] for a in snapshot.aliases],
        )
        if snapshot.production_stage:
            _table(
                plat,
                "production stage",
                ["model", "version", "since"],
                [[s.model, s.version, s.since.isoformat()] for s in snapshot.production_stage],
            )
        return
    entries = build(
        plat,
        tier=tier,
        stage=stage,
        owner=owner,
        backend=backend,
        overdue=overdue,
        with_exceptions=exceptions,
    )
    if as_json:
        _emit(plat, entries)
        return
    _table(
        plat,
        "inventory",
        [*_INVENTORY_COLUMNS],
        [
            [
                e.ref,
                e.tier.value,
                e.stage.value,
                e.owner,
                e.backend,
                ", ".join(e.aliases),
                ", ".join(e.endpoints),
                _approvals(e.approvals, e.approvals_total),
                e.approved_at.date().isoformat() if e.approved_at else "",
                " ".join(
                    ([e.revalidation_due.date().isoformat()] if e.revalidation_due else [])
                    + (["OVERDUE"] if e.overdue else [])
                ),
                ", ".join(f"{x.control} ({x.id})" for x in e.exceptions),
            ]
            for e in entries
        ],
    )


def _approvals(counting: int, total: int) -> str:
    """The approvals the promotion gate counts, and how many more of the current bytes do not
    count now (their approver no longer holds the role, or they are too old)."""
    if total == counting:
        return str(counting) if counting else ""
    return f"{counting} ({total - counting} not counted)"


# -- evidence ----------------------------------------------------------------------------------


@evidence_app.command("export")
def evidence_export(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME:VERSION or NAME@ALIAS.")],
    out: Annotated[Path, typer.Option("--out", help="Directory to write the pack into.")],
    as_json: JsonOpt = False,
) -> None:
    """Write the evidence pack of REF: deterministic JSON and a self-contained HTML report."""
    from mintaka.governance.evidence import export_evidence

    plat = platform(ctx)
    written = export_evidence(plat, ref, out)
    summary = {
        "json": str(written.json_path),
        "html": str(written.html_path),
        "controls": written.controls,
        "gaps": written.gaps,
        "unreadable_policy": written.unreadable_policy,
    }
    if as_json:
        _emit(plat, summary)
        return
    console.print(f"wrote {escape(str(written.json_path))} and {escape(str(written.html_path))}")
    console.print(f"{written.controls} controls mapped, {written.gaps} gap(s)")
    if written.unreadable_policy:
        console.print(f"warning: {written.unreadable_policy}", markup=False)


# -- approvals and model cards ---------------------------------------------------------------


def approve(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME:VERSION or NAME@ALIAS.")],
    role: Annotated[str | None, typer.Option(help="Role to approve in.")] = None,
    comment: Annotated[str, typer.Option(help="Why.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Approve REF's current bytes as the acting identity (--as)."""
    plat = platform(ctx)
    approval = plat.governance.approve(ref, role=role, comment=comment)
    if as_json:
        _emit(plat, approval)
        return
    approver = escape(f"{approval.approver.name} ({approval.role})")
    console.print(
        f"approved [bold]{approval.model}:{approval.version}[/] as {approver} "
        f"for {approval.artifact_digest}"
    )


@card_app.command("set")
def card_set(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME:VERSION or NAME@ALIAS.")],
    values: Annotated[
        list[str],
        typer.Argument(
            help="FIELD=VALUE pairs; fields: intended_use, limitations, training_data, "
            "evaluation, owner."
        ),
    ],
    as_json: JsonOpt = False,
) -> None:
    """Set model-card fields of REF."""
    pairs = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValidationError(f"expected FIELD=VALUE, got {item!r}")
        pairs[key.strip().replace("-", "_")] = value
    plat = platform(ctx)
    card = plat.governance.set_model_card(ref, **pairs)
    if as_json:
        _emit(plat, card)
        return
    console.print(f"model card of [bold]{ref}[/]: set {', '.join(sorted(pairs))}")


@card_app.command("show")
def card_show(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME:VERSION or NAME@ALIAS.")],
    as_json: JsonOpt = False,
) -> None:
    """Show REF's model card."""
    plat = platform(ctx)
    card = plat.governance.model_card(ref)
    if as_json:
        _emit(plat, card)
        return
    fields(f"model card of {ref}", sorted(_safe(plat, card).items()))


# -- exceptions --------------------------------------------------------------------------------


def _expiry(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationError(f"--expires {text!r} is not an ISO 8601 date-time") from None
    if value.tzinfo is None:
        raise ValidationError("--expires needs a time zone (2026-06-30T00:00:00+00:00)")
    return value


@exceptions_app.command("grant")
def exceptions_grant(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME:VERSION or NAME@ALIAS.")],
    control: Annotated[str, typer.Argument(help="The control to let pass (e.g. approvals).")],
    requester: Annotated[str, typer.Option(help="Who asked for it.")],
    justification: Annotated[str, typer.Option(help="Why; kept forever.")],
    expires: Annotated[str, typer.Option(help="ISO 8601 expiry with a time zone.")],
    as_json: JsonOpt = False,
) -> None:
    """Grant an expiring exception to one control for REF, approved by the acting identity."""
    plat = platform(ctx)
    granted = plat.governance.grant_exception(
        ref,
        control,
        requester=requester,
        justification=justification,
        expires_at=_expiry(expires),
    )
    if as_json:
        _emit(plat, granted)
        return
    console.print(
        f"granted [bold]{granted.id}[/]: {granted.control} on {granted.model}:{granted.version} "
        f"until {granted.expires_at.isoformat()}"
    )


@exceptions_app.command("list")
def exceptions_list(
    ctx: typer.Context,
    ref: Annotated[str, typer.Argument(help="NAME:VERSION or NAME@ALIAS.")],
    active: Annotated[bool, typer.Option("--active", help="Only those in force now.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List REF's exceptions; a justification holding a character that could forge or reorder
    a line of the listing is printed quoted with its escapes."""
    from mintaka.cli.audit import _quoted

    plat = platform(ctx)
    version = plat.get_model_version(ref)
    found = plat.governance.exceptions(version, active_at=plat._now() if active else None)
    found.sort(key=lambda e: (e.expires_at, e.id))
    if as_json:
        _emit(plat, found)
        return
    _table(
        plat,
        f"exceptions of {version.ref}",
        ["id", "control", "requester", "approver", "expires", "justification"],
        [
            [
                e.id,
                e.control,
                e.requester,
                e.approver,
                e.expires_at.isoformat(),
                _quoted(e.justification),
            ]
            for e in found
        ],
    )


# -- policy and decisions ----------------------------------------------------------------------


@policy_app.command("show")
def policy_show(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """The policy in force: where it comes from, its version, digest and tiers."""
    plat = platform(ctx)
    policy = plat.governance.policy
    if as_json:
        _emit(plat, policy)
        return
    fields(
        "policy",
        [
            ("source", policy.source),
            ("version", policy.version),
            ("digest", policy.digest),
            ("production aliases", policy.production_aliases),
        ],
    )
    _table(
        plat,
        "tiers",
        [*_TIER_COLUMNS],
        [
            [
                tier.value,
                c.approvals,
                ", ".join(c.approver_roles),
                ", ".join(c.documentation),
                ", ".join(
                    f"{m} {'>=' + str(t.min) if t.min is not None else ''}"
                    f"{' <=' + str(t.max) if t.max is not None else ''}"
                    for m, t in sorted(c.evaluation.items())
                ),
                ", ".join(s.value for s in c.allowed_strategies),
                c.revalidation_days,
                ", ".join(c.unkill_roles),
            ]
            for tier, c in policy.tiers.items()
        ],
    )


@decisions_app.command("list")
def decisions_list(
    ctx: typer.Context,
    subject: Annotated[
        str | None, typer.Argument(help="Only decisions on this subject (NAME:VERSION, ...).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Recorded policy decisions, oldest first."""
    plat = platform(ctx)
    found = plat.governance.decisions(subject)
    if as_json:
        _emit(plat, found)
        return
    _table(
        plat,
        "policy decisions",
        ["id", "at", "action", "subject", "allowed", "actor", "unmet", "exceptions"],
        [
            [
                d.id,
                d.at.isoformat(),
                d.action,
                d.subject,
                "allow" if d.allowed else "DENY",
                d.actor,
                "; ".join(d.unmet),
                "; ".join(d.exceptions_applied),
            ]
            for d in found
        ],
    )
