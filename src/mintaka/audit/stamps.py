"""What the audit chain's order says about its time stamps.

Each event is stamped by the wall clock of the process that appended it, and a wall clock can
be wrong: set far ahead, then corrected. The chain's order cannot be (every event is hash-linked
to the one before it), so an event happened no later than any event after it in the chain. A
stamp is therefore believed only up to the earliest stamp of a later event
(:func:`later_floors`): governance judges an approval from that instant
(:attr:`mintaka.domain.governance.Approval.effective_at`). ``mintaka audit verify`` warns of
every event stamped later than a later event by more than a tolerance (:func:`stamps_ahead`,
five minutes by default): small differences are hosts whose clocks differ a little.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from mintaka.domain.base import AwareDatetime, Record
from mintaka.store.schema import audit_events

STAMP_TOLERANCE = timedelta(minutes=5)
"""How far an event's stamp may be later than a later event's before verification warns."""


class StampAhead(Record):
    """An event (``seq``, stamped ``at``) whose stamp is later than that of the event
    ``later_seq`` after it in the chain, stamped ``later_at``, by ``ahead``."""

    seq: int
    at: AwareDatetime
    later_seq: int
    later_at: AwareDatetime
    ahead: timedelta


def instant(text: Any) -> datetime | None:
    """A stored stamp as an aware instant; None where it is not one (an edited event, which
    verification reports as a broken chain)."""
    try:
        when = datetime.fromisoformat(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return when if when is not None and when.tzinfo is not None else None


def _descending(
    conn: Connection, after: int
) -> Iterator[tuple[int, datetime | None, tuple[int, datetime] | None]]:
    """Every event after ``after``, newest first: its sequence number, its stamp, and the
    event after it with the earliest stamp (None for the newest)."""
    rows = conn.execute(
        select(audit_events.c.seq, audit_events.c.at)
        .where(audit_events.c.seq > after)
        .order_by(audit_events.c.seq.desc())
    )
    floor: tuple[int, datetime] | None = None
    for seq, text in rows:
        at = instant(text)
        yield int(seq), at, floor
        if at is not None and (floor is None or at < floor[1]):
            floor = (int(seq), at)


def later_floors(conn: Connection, seqs: Iterable[int]) -> dict[int, datetime]:
    """For each of ``seqs``, the earliest stamp of any event after it in the chain, read in
    ``conn``'s transaction; a sequence number with no event after it has no entry. One pass
    over the chain from the lowest of ``seqs`` on."""
    pending = sorted(set(seqs))
    if not pending:
        return {}
    floors: dict[int, datetime] = {}
    last: tuple[int, datetime] | None = None
    for seq, at, _ in _descending(conn, pending[0]):
        while pending and pending[-1] >= seq:
            wanted = pending.pop()
            if last is not None:
                floors[wanted] = last[1]
        if at is not None and (last is None or at < last[1]):
            last = (seq, at)
    for wanted in pending:
        if last is not None:
            floors[wanted] = last[1]
    return floors


def stamps_ahead(conn: Connection, tolerance: timedelta = STAMP_TOLERANCE) -> list[StampAhead]:
    """Every event stamped later than some event after it in the chain by more than
    ``tolerance``, oldest first, each with the later event stamped earliest."""
    if tolerance < timedelta(0):
        from mintaka.errors import ValidationError

        raise ValidationError("the clock tolerance cannot be negative")
    found = [
        StampAhead(seq=seq, at=at, later_seq=floor[0], later_at=floor[1], ahead=at - floor[1])
        for seq, at, floor in _descending(conn, 0)
        if at is not None and floor is not None and at - floor[1] > tolerance
    ]
    return found[::-1]
