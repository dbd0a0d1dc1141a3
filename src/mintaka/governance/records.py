"""The approvals and exceptions tables cross-checked against the audit chain.

Those tables are mutable; the gate, the inventory, evidence packs and sync count a row only as
the ``model.approve`` or ``policy.exception`` event that wrote it records it (see
:mod:`mintaka.governance.service`). A row written or changed by hand therefore counts nowhere,
but the chain alone still verifies: :func:`check_records` names every such row, and every event
whose row the table no longer holds, so that ``mintaka audit verify`` reports them.

It reads the store only: no policy and no identity, so a store whose policy file is broken can
still be verified.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select

from mintaka.domain.base import Record
from mintaka.store.engine import Store
from mintaka.store.schema import approvals, audit_events, model_versions, policy_exceptions

APPROVALS = "approvals"
EXCEPTIONS = "policy_exceptions"
_EVENT_OF = {APPROVALS: "model.approve", EXCEPTIONS: "policy.exception"}


class UnrecordedRow(Record):
    """A row of ``table`` that no audit event records as it stands; ``subject`` is the version
    it names (its id when no such version exists)."""

    table: str
    id: str
    subject: str
    reason: str


class MissingRow(Record):
    """An audit event (``seq``) recording a row of ``table`` that the table no longer holds."""

    seq: int
    table: str
    id: str
    subject: str


class RecordsReport(Record):
    """The outcome of cross-checking the approvals and exceptions tables with the chain."""

    ok: bool
    unrecorded: list[UnrecordedRow]
    missing: list[MissingRow]


def check_records(store: Store) -> RecordsReport:
    """Every approval and exception row the audit chain does not record as it stands, and
    every ``model.approve`` or ``policy.exception`` event whose row is gone. What an event
    records (its action, actor, time and subject) is read from its canonical bytes, as the gate
    reads it, not from the query columns that other databases than SQLite store as copies."""
    from mintaka.governance.service import event_body, event_details

    with store.read() as conn:
        refs = {
            row.id: f"{row.name}:{row.version}"
            for row in conn.execute(
                select(model_versions.c.id, model_versions.c.name, model_versions.c.version)
            )
        }
        rows = {
            APPROVALS: conn.execute(select(approvals).order_by(approvals.c.id)).all(),
            EXCEPTIONS: conn.execute(
                select(policy_exceptions).order_by(policy_exceptions.c.id)
            ).all(),
        }
        events = {
            table: conn.execute(
                select(audit_events.c.seq, audit_events.c.canonical)
                .where(audit_events.c.action == action)
                .order_by(audit_events.c.seq)
            ).all()
            for table, action in _EVENT_OF.items()
        }
    recorded: dict[tuple[str, str], list[_Event]] = {}
    for table, found in events.items():
        for event in found:
            body = event_body(event.canonical)
            details = event_details(event.canonical) or {}
            named = _recorded_id(table, details)
            if named is not None and body.get("action") == _EVENT_OF[table]:
                actor, subject = str(body.get("actor")), str(body.get("subject"))
                entry = _Event(event.seq, actor, body.get("at"), subject, details)
                recorded.setdefault((table, named), []).append(entry)
    unrecorded = [
        *_unrecorded(APPROVALS, rows[APPROVALS], refs, recorded),
        *_unrecorded(EXCEPTIONS, rows[EXCEPTIONS], refs, recorded),
    ]
    held = {(table, str(row.id)) for table, found in rows.items() for row in found}
    missing = sorted(
        (
            MissingRow(seq=event.seq, table=table, id=named, subject=event.subject)
            for (table, named), entries in recorded.items()
            if (table, named) not in held
            for event in entries
        ),
        key=lambda m: m.seq,
    )
    return RecordsReport(ok=not unrecorded and not missing, unrecorded=unrecorded, missing=missing)


class _Event:
    """One ``model.approve`` or ``policy.exception`` event, as the cross-check reads it from
    its canonical bytes (``at`` as found there, which may be no time at all)."""

    __slots__ = ("actor", "at", "details", "seq", "subject")

    def __init__(
        self, seq: int, actor: str, at: Any, subject: str, details: Mapping[str, Any]
    ) -> None:
        self.seq, self.actor, self.at, self.subject, self.details = seq, actor, at, subject, details


def _recorded_id(table: str, details: Mapping[str, Any]) -> str | None:
    """The id of the row an event's ``details`` record, if they name one."""
    if table == APPROVALS:
        named = details.get("approval")
    else:
        exception = details.get("exception")
        named = exception.get("id") if isinstance(exception, dict) else None
    return named if isinstance(named, str) else None


def _unrecorded(
    table: str,
    rows: Sequence[Any],
    refs: Mapping[str, str],
    recorded: Mapping[tuple[str, str], Sequence[_Event]],
) -> list[UnrecordedRow]:
    """The rows of ``table`` that none of the events naming them records as they stand."""
    found = []
    for row in rows:
        ref = refs.get(row.version_id)
        events = [e for e in recorded.get((table, str(row.id)), ()) if e.subject == ref]
        if ref is None:
            reason = f"names no model version ({row.version_id})"
        elif not events:
            reason = f"no {_EVENT_OF[table]} audit event records it"
        elif not any(_matches(table, row, ref, event) for event in events):
            reason = f"differs from what its {_EVENT_OF[table]} audit event records"
        else:
            continue
        found.append(
            UnrecordedRow(table=table, id=str(row.id), subject=ref or row.version_id, reason=reason)
        )
    return found


def _matches(table: str, row: Any, ref: str, event: _Event) -> bool:
    """Whether ``event`` records ``row`` of ``table`` as it stands (the gate's own test)."""
    from mintaka.audit.stamps import instant
    from mintaka.governance.service import _grants, _records, approval_of_row, exception_of_row

    name, _, number = ref.rpartition(":")
    try:
        if table == APPROVALS:
            at = instant(event.at)
            approval = approval_of_row(row, name, int(number))
            return (
                approval is not None
                and at is not None
                and _records(approval, event.actor, at, event.details)
            )
        exception = exception_of_row(row, name, int(number))
        given = event.details.get("exception")
        return (
            exception is not None
            and isinstance(given, dict)
            and _grants(exception, event.actor, given)
        )
    except (ValueError, TypeError):
        return False  # a row edited into something no event could have recorded
