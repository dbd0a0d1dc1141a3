"""The hash-chained, append-only audit log.

Each event's canonical form is the RFC 8785 JSON of its fields (sequence number and previous hash
included), stored byte for byte; its hash is ``sha256(prev_hash_hex || canonical)``. The columns
queries filter on (time, actor, action, subject, backend) are derived from those bytes by the
database itself on SQLite (virtual generated columns), so they cannot disagree with what the
hashes cover. Verification confirms the table is declared that way (or else compares the stored
columns with the bytes row by row), recomputes every link from the stored bytes, and checks that
the chain head matches the last event, so an edit, a deletion, an insertion or a reorder is
reported at the first sequence number it breaks.

Appends take the chain head row under the write lock of the surrounding transaction, so several
processes appending at once still produce one linear chain, and an event commits with the state
change it records, or not at all.

Canonicalisation has a fast path: for the values Mintaka logs (strings, safe integers, booleans,
null, floats printed without an exponent, lists, and maps with ASCII keys) the standard library's
C JSON encoder with sorted keys and no whitespace produces exactly RFC 8785's bytes; anything else
goes through ``rfc8785`` itself. ``tests/audit/test_canonical.py`` checks the two agree.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

import rfc8785
from sqlalchemy import Connection, inspect, select

from mintaka.audit.stamps import STAMP_TOLERANCE, StampAhead, stamps_ahead
from mintaka.domain.audit import AuditEvent, ChainReport
from mintaka.errors import IntegrityError, StoreError, ValidationError
from mintaka.store.engine import Sql, Store
from mintaka.store.schema import (
    AUDIT_COLUMNS_FUNCTION,
    AUDIT_COLUMNS_SOURCE,
    AUDIT_COLUMNS_TRIGGER,
    audit_events,
    derived_from_canonical,
)

GENESIS = "0" * 64
FORMAT = "mintaka-audit/1"

# The head row is read under the write lock: SQLite's BEGIN IMMEDIATE already holds it; other
# databases lock the row itself.
_HEAD_SQLITE = "SELECT seq, hash FROM audit_head WHERE id = 1"
_HEAD_LOCKING = _HEAD_SQLITE + " FOR UPDATE"
# Where the query columns are derived from the canonical bytes (SQLite since migration 0008),
# only the chain is written; elsewhere the appender writes the columns too.
_INSERT_CHAIN = (
    "INSERT INTO audit_events (seq, canonical, prev_hash, hash) "
    "VALUES (:seq, :canonical, :prev, :hash)"
)
_INSERT = (
    "INSERT INTO audit_events "
    "(seq, at, actor, action, subject, backend, canonical, prev_hash, hash) "
    "VALUES (:seq, :at, :actor, :action, :subject, :backend, :canonical, :prev, :hash)"
)
_MOVE_HEAD = "UPDATE audit_head SET seq = :seq, hash = :hash WHERE id = 1"
_CHAIN_ROWS = "SELECT seq, canonical, prev_hash, hash FROM audit_events ORDER BY seq"
_ROWS = (
    "SELECT seq, canonical, prev_hash, hash, at, actor, action, subject, backend "
    "FROM audit_events ORDER BY seq"
)

# The table ``verify`` trusts to derive the query columns from the canonical bytes (migration
# 0008), exactly as SQLite keeps it in ``sqlite_master``. A table declared any other way (an older
# layout, or a schema edited to store plain columns) has its columns checked row by row.
DERIVED_TABLE = (
    'CREATE TABLE "audit_events" (\n'
    "    seq INTEGER NOT NULL PRIMARY KEY,\n"
    "    canonical BLOB NOT NULL,\n"
    "    prev_hash VARCHAR(64) NOT NULL,\n"
    "    hash VARCHAR(64) NOT NULL,\n"
    + ",\n".join(
        f"    {field} {kind} GENERATED ALWAYS AS ({derived_from_canonical(field)}) VIRTUAL"
        for field, kind in (
            ("at", "VARCHAR(40)"),
            ("actor", "VARCHAR(256)"),
            ("action", "VARCHAR(64)"),
            ("subject", "VARCHAR(512)"),
            ("backend", "VARCHAR(64)"),
        )
    )
    + "\n)"
)


def derived_columns(conn: Connection) -> bool:
    """Whether ``audit_events`` derives its query columns from the canonical bytes, so that they
    cannot disagree with what the chain's hashes cover."""
    if conn.dialect.name != "sqlite":
        return False
    row = Sql(conn).one(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'audit_events'"
    )
    return row is not None and row[0] == DERIVED_TABLE


# The trigger ``columns_from_canonical`` trusts (migration 0011): on ``audit_events`` as the
# search path finds it, enabled, calling the function whose source is exactly Mintaka's.
_TRIGGER_IN_FORCE = (
    "SELECT count(*) FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid "
    "WHERE t.tgrelid = to_regclass('audit_events') AND t.tgname = :trigger "
    "AND t.tgenabled IN ('O', 'A') AND p.proname = :function AND p.prosrc = :source"
)


def columns_from_canonical(conn: Connection) -> bool:
    """Whether every write of ``audit_events`` gets its query columns from the canonical bytes:
    SQLite's derived columns, or PostgreSQL's trigger (migration 0011). An edit of a column alone
    then cannot hide an event from a query by that column. Unlike ``derived_columns`` this does
    not say the columns agree with the bytes now: a trigger can be disabled while they are
    edited, which verification, comparing them row by row, reports."""
    if conn.dialect.name == "postgresql":
        params = {
            "trigger": AUDIT_COLUMNS_TRIGGER,
            "function": AUDIT_COLUMNS_FUNCTION,
            "source": AUDIT_COLUMNS_SOURCE,
        }
        row = Sql(conn).one(_TRIGGER_IN_FORCE, params)
        return row is not None and int(row[0]) == 1
    return derived_columns(conn)


_SAFE_INT = 2**53 - 1  # RFC 8785 numbers are IEEE 754 doubles
_quote = json.encoder.encode_basestring  # C; escapes exactly what RFC 8785 escapes
_dumps = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, check_circular=False, separators=(",", ":"), sort_keys=True
).encode


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


def _plain(value: Any) -> bool:
    """Whether the C JSON encoder writes ``value`` exactly as RFC 8785 does.

    Exact built-in types only (no subclasses, whose ``repr`` or ``value`` may differ); integers
    within RFC 8785's safe range; floats whose shortest ``repr`` has no exponent and no ``.0``
    (RFC 8785 prints ``1.0`` as ``1`` and ``1e16`` in full); map keys in ASCII, where code-point
    order (``sort_keys``) is RFC 8785's UTF-16 order. Strings are checked when encoded to UTF-8.
    """
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return True
    if kind is int:
        return bool(-_SAFE_INT <= value <= _SAFE_INT)
    if kind is dict:
        for key, item in value.items():
            if type(key) is not str or not key.isascii():
                return False
            if type(item) is not str and not _plain(item):
                return False
        return True
    if kind is list or kind is tuple:
        return all(type(item) is str or _plain(item) for item in value)
    if kind is float:
        text = repr(value)
        return "e" not in text and "n" not in text and not text.endswith(".0")
    if isinstance(value, str) and isinstance(value, Enum):
        # A str-valued member (StrEnum): the C encoder writes its string data, its value.
        return type(value.value) is str and value.value == str.__str__(value)
    return False


def canonical_bytes(body: Mapping[str, Any]) -> bytes:
    """The RFC 8785 canonical JSON of ``body`` (after ``_jsonable``), as UTF-8 bytes."""
    value = body if _plain(body) else _jsonable(body)
    if value is body or _plain(value):
        try:
            return _dumps(value).encode("utf-8")
        except UnicodeEncodeError:
            pass  # a lone surrogate: rfc8785 refuses it below
    try:
        return bytes(rfc8785.dumps(value))
    except rfc8785.CanonicalizationError as exc:
        if not isinstance(exc.__cause__, UnicodeEncodeError):
            raise
        # Text decoded from bytes that are not UTF-8 (a command-line argument, an environment
        # variable) holds lone surrogates, which no JSON document can carry.
        raise ValidationError(f"an audit event must be valid UTF-8 text: {exc}") from None


_SCALARS = frozenset({str, int, float, bool, type(None)})


def _detached(details: Mapping[str, Any], encoded: bytes) -> dict[str, Any]:
    """What ``json.loads(encoded)`` returns for plain ``details``, without parsing when every
    value is a built-in scalar (a plain float's ``repr`` reads back as the same float)."""
    for value in details.values():
        if type(value) not in _SCALARS:
            loaded: dict[str, Any] = json.loads(encoded)
            return loaded
    return dict(details)


def link_hash(prev_hash: str, canonical: bytes) -> str:
    return hashlib.sha256(prev_hash.encode("ascii") + canonical).hexdigest()


def _frame(
    seq: int, at: str, actor: str, action: str, subject: str, backend: str | None, prev: str
) -> tuple[bytes, bytes] | None:
    """The canonical bytes before and after ``details`` for these columns, or None when a value
    needs the general path. Keys are written in RFC 8785 order."""
    if not (
        type(at) is str
        and type(actor) is str
        and type(action) is str
        and type(subject) is str
        and type(prev) is str
        and (backend is None or type(backend) is str)
        and type(seq) is int
        and 0 <= seq <= _SAFE_INT
    ):
        return None
    try:
        head = (
            f'{{"action":{_quote(action)},"actor":{_quote(actor)},"at":{_quote(at)},"backend":'
            f'{"null" if backend is None else _quote(backend)},"details":'
        ).encode()
        tail = (
            f',"format":"{FORMAT}","prev_hash":{_quote(prev)},"seq":{seq},'
            f'"subject":{_quote(subject)}}}'
        ).encode()
    except UnicodeEncodeError:
        return None
    return head, tail


class AuditLog:
    """Append to and verify the chain in one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._generated: bool | None = None  # the table's layout, read at the first append

    def _insert_for(self, conn: Connection) -> str:
        """The insert for this table: only the chain where the database computes the columns
        (whatever their exact declaration, which ``verify`` judges), else every column."""
        if self._generated is None:
            self._generated = conn.dialect.name == "sqlite" and any(
                row[1] == "actor" and row[6] in (2, 3)  # hidden: a generated column
                for row in Sql(conn).rows("PRAGMA table_xinfo(audit_events)")
            )
        return _INSERT_CHAIN if self._generated else _INSERT

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
        row = sql.one(_HEAD_SQLITE if sql.is_sqlite else _HEAD_LOCKING)
        if row is None:
            raise StoreError("the audit chain head is missing; the store is not migrated")
        head = _stored_head(row)
        seq = head[0] + 1
        prev = head[1]
        when = at.isoformat()
        details = details or {}
        frame = _frame(seq, when, actor, action, subject, backend, prev)
        inner = None
        if frame is not None and _plain(details):
            with contextlib.suppress(UnicodeEncodeError):  # the general path says what is wrong
                inner = _dumps(details).encode("utf-8") if details else b"{}"
        if frame is not None and inner is not None:
            canonical = frame[0] + inner + frame[1]
        else:
            body = {
                "format": FORMAT,
                "seq": seq,
                "at": when,
                "actor": actor,
                "action": action,
                "subject": subject,
                "backend": backend,
                "details": details,
                "prev_hash": prev,
            }
            canonical = canonical_bytes(body)
            inner = None
        digest = link_hash(prev, canonical)
        sql.run(
            self._insert_for(conn),
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
        sql.run(_MOVE_HEAD, {"seq": seq, "hash": digest})
        if inner is not None and at.tzinfo is not None:
            # Every field is already of its declared type (``_frame`` checked the columns).
            return AuditEvent.model_construct(
                seq=seq,
                at=at,
                actor=actor,
                action=action,
                subject=subject,
                backend=backend,
                details=_detached(details, inner),
                prev_hash=prev,
                hash=digest,
            )
        return AuditEvent(
            seq=seq,
            at=at,
            actor=actor,
            action=action,
            subject=subject,
            backend=backend,
            details=json.loads(canonical)["details"]
            if inner is None
            else _detached(details, inner),
            prev_hash=prev,
            hash=digest,
        )

    def events(
        self,
        *,
        subject: str | None = None,
        since_seq: int = 0,
        limit: int | None = None,
        newest_first: bool = False,
    ) -> list[AuditEvent]:
        """Events after ``since_seq`` (only ``subject``'s when given), oldest first; with
        ``newest_first``, newest first, so that ``limit`` keeps the latest."""
        query = select(audit_events).where(audit_events.c.seq > since_seq)
        if subject is not None:
            query = query.where(audit_events.c.subject == subject)
        seq = audit_events.c.seq
        query = query.order_by(seq.desc() if newest_first else seq)
        if limit is not None:
            query = query.limit(limit)
        with self.store.read() as conn:
            rows = conn.execute(query).all()
        return [self._event(row) for row in rows]

    @staticmethod
    def _event(row: Any) -> AuditEvent:
        """One event row as an ``AuditEvent``; an ``IntegrityError`` naming its sequence number
        when its bytes or columns were edited into something that is not an event."""
        try:
            body = json.loads(row.canonical)
            if not isinstance(body, dict):
                raise ValueError("the canonical bytes are not a JSON object")
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
        except (TypeError, ValueError, RecursionError) as exc:  # pydantic's errors included
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise IntegrityError(
                f"audit event {row.seq} cannot be read ({reason}): it was edited outside "
                "Mintaka; run `mintaka audit verify`"
            ) from exc

    @staticmethod
    def _batches(conn: Connection, query: str) -> Iterator[list[tuple[Any, ...]]]:
        """Every event row in sequence order, in batches, straight from the driver on SQLite.

        Small batches (a few hundred rows) stay in the processor's caches while they are checked.
        """
        if conn.dialect.name == "sqlite":
            cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            cursor.arraysize = _BATCH
            cursor.execute(query)
            while batch := cursor.fetchmany():
                yield batch
            return
        # Streamed by this statement only: ``conn`` may be a snapshot that readers share after.
        result = conn.exec_driver_sql(query, execution_options={"yield_per": 10_000})
        for part in result.partitions(_BATCH):
            yield [(row[0], _as_bytes(row[1]), *row[2:]) for row in part]

    def last_backend(self) -> str | None:
        """The backend of the newest event that names one (None in an empty store, or one not
        migrated yet)."""
        query = (
            select(audit_events.c.backend)
            .where(audit_events.c.backend.is_not(None))
            .order_by(audit_events.c.seq.desc())
            .limit(1)
        )
        with self.store.read() as conn:
            if not inspect(conn).has_table(audit_events.name):
                return None
            return conn.execute(query).scalar()

    def lock(self, conn: Connection) -> None:
        """Take the chain head's lock in the caller's write transaction (SQLite's BEGIN IMMEDIATE
        holds it already), so that what the caller reads of the chain before appending cannot be
        appended to by another writer first."""
        sql = Sql(conn)
        if not sql.is_sqlite:
            sql.one(_HEAD_LOCKING)

    def head(self, conn: Connection) -> tuple[int, str] | None:
        """The head row (sequence number and hash) as stored, inside ``conn``'s transaction; an
        ``IntegrityError`` when it holds something else."""
        row = Sql(conn).one(_HEAD_SQLITE)
        return None if row is None else _stored_head(row)

    def stamps_ahead(self, tolerance: timedelta = STAMP_TOLERANCE) -> list[StampAhead]:
        """Every event stamped later than an event after it by more than ``tolerance``: one of
        the two was stamped by a wrong clock (see :mod:`mintaka.audit.stamps`). A warning, not a
        break: the chain's order stands."""
        with self.store.read() as conn:
            return stamps_ahead(conn, tolerance)

    def verify(self, anchors: Mapping[int, str] | None = None) -> ChainReport:
        """Recompute every link; report the first sequence number where the chain breaks.

        ``anchors`` maps sequence numbers to hashes the chain must reproduce there (signed
        checkpoints): a chain rewritten consistently from its first changed event on passes every
        link, but no longer reproduces an anchored hash, nor does a chain cut below an anchor.
        """
        with self.store.read() as conn:
            return self.verify_in(conn, anchors)[0]

    def verify_in(
        self, conn: Connection, anchors: Mapping[int, str] | None = None
    ) -> tuple[ChainReport, str]:
        """``verify`` inside ``conn``'s snapshot; also returns the last event's hash."""
        anchors = anchors or {}
        anchored = 0  # the highest anchored sequence number reproduced so far
        expected_seq = 1
        prev = GENESIS
        sha256 = hashlib.sha256
        columns_match = _columns_match
        pending = sorted(s for s in anchors if s >= 1)  # anchors ahead, checked in detail
        next_anchor = pending.pop(0) if pending else 0
        derived = derived_columns(conn)
        for batch in self._batches(conn, _CHAIN_ROWS if derived else _ROWS):
            for row in batch:
                # The common case in one expression: the sequence, the link and the hash; and,
                # where the columns are stored rather than derived, the columns against the
                # canonical bytes. Anything else, an anchor included, is examined in detail.
                try:
                    if derived:
                        seq, canonical, prev_hash, digest = row
                        if (
                            seq == expected_seq
                            and prev_hash == prev
                            and sha256(prev_hash.encode() + canonical).hexdigest() == digest
                            and seq != next_anchor
                        ):
                            prev = digest
                            expected_seq += 1
                            continue
                    else:
                        seq, canonical, prev_hash, digest, at, actor, action, subject, backend = row
                        if (
                            seq == expected_seq
                            and prev_hash == prev
                            and sha256(prev_hash.encode() + canonical).hexdigest() == digest
                            and columns_match(
                                canonical, seq, at, actor, action, subject, backend, prev_hash
                            )
                            and seq != next_anchor
                        ):
                            prev = digest
                            expected_seq += 1
                            continue
                except (AttributeError, TypeError, ValueError):
                    pass
                reason, anchored = _examine(row, expected_seq, prev, anchors, anchored)
                if row[0] == next_anchor and reason is None:
                    next_anchor = pending.pop(0) if pending else 0
                if reason is not None:
                    report = ChainReport(
                        ok=False,
                        events=expected_seq - 1,
                        first_bad_seq=expected_seq,
                        reason=reason,
                    )
                    return report, prev
                prev = row[3]
                expected_seq += 1
        count = expected_seq - 1
        stored = Sql(conn).one(_HEAD_SQLITE)
        if stored is not None and _head_of(stored) is None:
            report = ChainReport(
                ok=False,
                events=count,
                first_bad_seq=max(count, 1),
                reason=f"chain head ({_shown_head(stored)}) is not a sequence number and a hash",
            )
            return report, prev
        head = None if stored is None else _head_of(stored)
        head_seq = 0 if head is None else head[0]
        if head is None or head_seq != count or head[1] != prev:
            if head_seq > count:
                first_bad = count + 1  # events removed from the end
            elif head_seq < count:
                first_bad = head_seq + 1  # events appended without moving the head
            else:
                first_bad = max(count, 1)
            report = ChainReport(
                ok=False,
                events=count,
                first_bad_seq=first_bad,
                reason=f"chain head (sequence {head_seq}) does not match the last event",
            )
            return report, prev
        beyond = [s for s in anchors if s > count]
        if beyond:
            report = ChainReport(
                ok=False,
                events=count,
                first_bad_seq=count + 1,
                reason=(
                    f"the chain ends at sequence {count}, below the checkpoint at sequence "
                    f"{min(beyond)}: events {count + 1}.. were removed"
                ),
            )
            return report, prev
        return ChainReport(ok=True, events=count), prev


_BATCH = 256
_HASH = re.compile(r"[0-9a-f]{64}")


def _head_of(row: tuple[Any, ...]) -> tuple[int, str] | None:
    """The head row as a sequence number and a hash; None when it holds anything else (a row
    edited by hand: Mintaka writes only those)."""
    seq, digest = row[0], row[1]
    if type(seq) is not int or seq < 0 or not isinstance(digest, str):
        return None
    return (seq, digest) if _HASH.fullmatch(digest) else None


def _stored_head(row: tuple[Any, ...]) -> tuple[int, str]:
    """``_head_of`` a head row, or an ``IntegrityError`` saying it was edited."""
    head = _head_of(row)
    if head is None:
        raise IntegrityError(
            f"the audit chain head ({_shown_head(row)}) is not a sequence number and a hash: "
            "it was edited outside Mintaka; run `mintaka audit verify`"
        )
    return head


def _shown_head(row: tuple[Any, ...]) -> str:
    """A head row for a message, each value quoted and cut short (anyone with the store can
    write anything there)."""
    return ", ".join(
        f"{name} {shown if len(shown) <= 70 else shown[:67] + '...'}"
        for name, shown in (("sequence", repr(row[0])), ("hash", repr(row[1])))
    )


def _as_bytes(blob: Any) -> bytes:
    """The canonical column as bytes, whatever the driver handed back."""
    if isinstance(blob, bytes):
        return blob
    if isinstance(blob, str):  # a value rewritten as text
        return blob.encode("utf-8", "surrogatepass")
    if isinstance(blob, bytearray | memoryview):
        return bytes(blob)
    # A number or NULL written over the column: never canonical JSON, so its link breaks.
    return repr(blob).encode()


def _examine(
    row: tuple[Any, ...],
    expected_seq: int,
    prev: str,
    anchors: Mapping[int, str],
    anchored: int,
) -> tuple[str | None, int]:
    """What is wrong with one event row, if anything; and the highest anchor reproduced.

    ``row`` is the chain (sequence, canonical bytes, previous hash, hash), followed by the stored
    columns where they are not derived from the bytes.
    """
    seq, blob, prev_hash, digest = row[:4]
    canonical = _as_bytes(blob)
    if seq != expected_seq:
        return f"expected sequence {expected_seq}, found {seq}", anchored
    if prev_hash != prev:
        return "previous-hash link does not match the preceding event", anchored
    if hashlib.sha256(prev.encode("ascii") + canonical).hexdigest() != digest:
        return "hash does not match the stored canonical bytes", anchored
    if len(row) > 4:
        at, actor, action, subject, backend = row[4:9]
        if not _columns_match(canonical, seq, at, actor, action, subject, backend, prev_hash):
            return "columns differ from the canonical bytes", anchored
    if seq in anchors:
        if anchors[seq] != digest:
            return (
                f"the chain no longer reproduces the checkpointed hash at sequence {seq}: "
                f"events {anchored + 1}..{seq} were rewritten"
            ), anchored
        anchored = seq
    return None, anchored


# What json.loads runs after its Python-level wrapping: (value, end index) for text at an index.
_scan: Callable[[str, int], tuple[Any, int]] = json.decoder.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _columns_match(
    canonical: bytes,
    seq: int,
    at: str,
    actor: str,
    action: str,
    subject: str,
    backend: str | None,
    prev_hash: str,
) -> bool:
    """Whether the columns say what the canonical bytes say.

    RFC 8785 sorts the keys, so an event's canonical JSON is always ``{"action":…,"actor":…,
    "at":…,"backend":…,"details":{…},"format":…,"prev_hash":…,"seq":…,"subject":…}``. The
    encoded columns fix the text before and after the details object, and a JSON string literal
    ends at its first unescaped quote, so bytes that match say exactly what the columns say.
    Otherwise the bytes are parsed, by the C scanner that ``json.loads`` wraps (same parse,
    same result when it consumes the whole text), or by ``json.loads`` itself for anything
    unusual.
    """
    frame = _frame(seq, at, actor, action, subject, backend, prev_hash)
    if frame is not None:
        before, after = frame
        if (
            len(canonical) >= len(before) + len(after) + 2
            and canonical.startswith(before + b"{")
            and canonical.endswith(b"}" + after)
        ):
            return True
    try:
        text = canonical.decode("utf-8")
        body, end = _scan(text, 0)
        if end == len(text) and type(body) is dict:
            return (
                body.get("seq") == seq
                and body.get("at") == at
                and body.get("actor") == actor
                and body.get("action") == action
                and body.get("subject") == subject
                and body.get("backend") == backend
                and body.get("prev_hash") == prev_hash
            )
    except (ValueError, StopIteration, RecursionError):
        pass
    try:
        body = json.loads(canonical)
    except (ValueError, RecursionError):  # nested too deeply to read: never Mintaka's bytes
        return False
    columns = {
        "seq": seq,
        "at": at,
        "actor": actor,
        "action": action,
        "subject": subject,
        "backend": backend,
        "prev_hash": prev_hash,
    }
    return isinstance(body, dict) and all(body.get(k) == v for k, v in columns.items())
