"""The hash-chained, append-only audit log.

Each event's canonical form is the RFC 8785 JSON of its fields (sequence number and previous hash
included), stored byte for byte; its hash is ``sha256(prev_hash_hex || canonical)``. Verification
recomputes every link from those stored bytes, checks that the columns say what the canonical
bytes say, and that the chain head matches the last event, so an edit, a deletion, an insertion
or a reorder is reported at the first sequence number it breaks.

Appends take the chain head row under the write lock of the surrounding transaction, so several
processes appending at once still produce one linear chain, and an event commits with the state
change it records, or not at all.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterator, Mapping
from datetime import datetime
from enum import Enum
from typing import Any

import rfc8785
from sqlalchemy import Connection, select

from mintaka.domain.audit import AuditEvent, ChainReport
from mintaka.errors import StoreError
from mintaka.store.engine import Sql, Store
from mintaka.store.schema import audit_events, audit_head

GENESIS = "0" * 64
FORMAT = "mintaka-audit/1"

# The head row is read under the write lock: SQLite's BEGIN IMMEDIATE already holds it; other
# databases lock the row itself.
_HEAD_SQLITE = "SELECT seq, hash FROM audit_head WHERE id = 1"
_HEAD_LOCKING = _HEAD_SQLITE + " FOR UPDATE"


def _jsonable(value: Any) -> Any:
    """Reduce ``value`` to what RFC 8785 can encode (finite numbers, strings, lists, maps)."""
    if isinstance(value, Enum):
        return _jsonable(value.value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [_jsonable(v) for v in value]
        return sorted(items, key=repr) if isinstance(value, set | frozenset) else items
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "model_dump"):
        return _jsonable(value.model_dump(mode="json"))
    return str(value)


def canonical_bytes(body: Mapping[str, Any]) -> bytes:
    return bytes(rfc8785.dumps(_jsonable(body)))


def link_hash(prev_hash: str, canonical: bytes) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + canonical).hexdigest()


class AuditLog:
    """Append to and verify the chain in one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def append(
        self,
        conn: Connection,
        *,
        at: datetime,
        actor: str,
        action: str,
        subject: str,
        details: Mapping[str, Any] | None = None,
        backend: str | None = None,
    ) -> AuditEvent:
        """Append one event inside the caller's write transaction."""
        sql = Sql(conn)
        head = sql.one(_HEAD_SQLITE if sql.is_sqlite else _HEAD_LOCKING)
        if head is None:
            raise StoreError("the audit chain head is missing; the store is not migrated")
        seq = int(head[0]) + 1
        prev = str(head[1])
        when = at.isoformat()
        body = {
            "format": FORMAT,
            "seq": seq,
            "at": when,
            "actor": actor,
            "action": action,
            "subject": subject,
            "backend": backend,
            "details": details or {},
            "prev_hash": prev,
        }
        canonical = canonical_bytes(body)
        digest = link_hash(prev, canonical)
        sql.run(
            "INSERT INTO audit_events "
            "(seq, at, actor, action, subject, backend, canonical, prev_hash, hash) "
            "VALUES (:seq, :at, :actor, :action, :subject, :backend, :canonical, :prev, :hash)",
            {
                "seq": seq,
                "at": when,
                "actor": actor,
                "action": action,
                "subject": subject,
                "backend": backend,
                "canonical": canonical,
                "prev": prev,
                "hash": digest,
            },
        )
        sql.run(
            "UPDATE audit_head SET seq = :seq, hash = :hash WHERE id = 1",
            {"seq": seq, "hash": digest},
        )
        return AuditEvent(
            seq=seq,
            at=at,
            actor=actor,
            action=action,
            subject=subject,
            backend=backend,
            details=json.loads(canonical)["details"],
            prev_hash=prev,
            hash=digest,
        )

    def events(
        self, *, subject: str | None = None, since_seq: int = 0, limit: int | None = None
    ) -> list[AuditEvent]:
        query = select(audit_events).where(audit_events.c.seq > since_seq)
        if subject is not None:
            query = query.where(audit_events.c.subject == subject)
        query = query.order_by(audit_events.c.seq)
        if limit is not None:
            query = query.limit(limit)
        with self.store.read() as conn:
            rows = conn.execute(query).all()
        return [self._event(row) for row in rows]

    @staticmethod
    def _event(row: Any) -> AuditEvent:
        body = json.loads(row.canonical)
        return AuditEvent(
            seq=row.seq,
            at=datetime.fromisoformat(row.at),
            actor=row.actor,
            action=row.action,
            subject=row.subject,
            backend=row.backend,
            details=body.get("details", {}),
            prev_hash=row.prev_hash,
            hash=row.hash,
        )

    def _rows(self, conn: Connection) -> Iterator[tuple[Any, ...]]:
        result = conn.execution_options(yield_per=10_000).execute(
            select(
                audit_events.c.seq,
                audit_events.c.at,
                audit_events.c.actor,
                audit_events.c.action,
                audit_events.c.subject,
                audit_events.c.backend,
                audit_events.c.canonical,
                audit_events.c.prev_hash,
                audit_events.c.hash,
            ).order_by(audit_events.c.seq)
        )
        for row in result:
            yield tuple(row)

    def verify(self) -> ChainReport:
        """Recompute every link; report the first sequence number where the chain breaks."""
        expected_seq = 1
        prev = GENESIS
        count = 0
        with self.store.read() as conn:
            for (
                seq,
                at,
                actor,
                action,
                subject,
                backend,
                blob,
                prev_hash,
                digest,
            ) in self._rows(conn):
                canonical = bytes(blob)
                reason = None
                if seq != expected_seq:
                    reason = f"expected sequence {expected_seq}, found {seq}"
                elif prev_hash != prev:
                    reason = "previous-hash link does not match the preceding event"
                elif link_hash(prev, canonical) != digest:
                    reason = "hash does not match the stored canonical bytes"
                else:
                    try:
                        body = json.loads(canonical)
                    except ValueError:
                        body = None
                    columns = {
                        "seq": seq,
                        "at": at,
                        "actor": actor,
                        "action": action,
                        "subject": subject,
                        "backend": backend,
                        "prev_hash": prev_hash,
                    }
                    if not isinstance(body, dict) or any(
                        body.get(k) != v for k, v in columns.items()
                    ):
                        reason = "columns differ from the canonical bytes"
                if reason is not None:
                    return ChainReport(
                        ok=False, events=count, first_bad_seq=expected_seq, reason=reason
                    )
                prev = digest
                expected_seq += 1
                count += 1
            head = conn.execute(
                select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
            ).one_or_none()
        head_seq = 0 if head is None else int(head.seq)
        if head is None or head_seq != count or head.hash != prev:
            if head_seq > count:
                first_bad = count + 1  # events removed from the end
            elif head_seq < count:
                first_bad = head_seq + 1  # events appended without moving the head
            else:
                first_bad = max(count, 1)
            return ChainReport(
                ok=False,
                events=count,
                first_bad_seq=first_bad,
                reason=f"chain head (sequence {head_seq}) does not match the last event",
            )
        return ChainReport(ok=True, events=count)
