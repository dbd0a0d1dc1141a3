"""What the audit chain's order says about its time stamps.

Each event is stamped by the wall clock of the process that appended it, and a wall clock can
be wrong: set ahead, or behind (a host that booted before its clock was set). The chain's order
cannot be (every event is hash-linked to the one before it), so an event stamped later than an
event after it was stamped by a clock that was wrong at one of the two; the stamps alone cannot
say which. ``mintaka audit verify`` warns of every such pair apart by more than a tolerance
(:func:`stamps_ahead`, five minutes by default: small differences are hosts whose clocks differ
a little). Governance judges each approval by its own stamp all the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from mintaka.clock import MAX_STAMP_TOLERANCE, STAMP_TOLERANCE
from mintaka.domain.base import AwareDatetime, Record
from mintaka.store.schema import audit_events

__all__ = ["MAX_STAMP_TOLERANCE", "STAMP_TOLERANCE", "StampAhead", "instant", "stamps_ahead"]


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
