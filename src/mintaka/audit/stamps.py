"""What the audit chain's order says about its time stamps.

Each event is stamped by the wall clock of the process that appended it, and a wall clock can
be wrong: set far ahead, then corrected. The chain's order cannot be (every event is hash-linked
to the one before it), so an event happened no later than any event after it in the chain. A
stamp is therefore believed only up to the earliest stamp of a later event
(:func:`later_floors`): governance judges an approval from that instant
(:attr:`mintaka.domain.governance.Approval.effective_at`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from mintaka.store.schema import audit_events


def _instant(text: Any) -> datetime | None:
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
        at = _instant(text)
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
