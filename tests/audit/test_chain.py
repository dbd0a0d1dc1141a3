from __future__ import annotations

import hashlib
import itertools
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from mintaka.audit import GENESIS, AuditLog, canonical_bytes, link_hash
from mintaka.audit.chain import derived_columns
from mintaka.errors import IntegrityError, StoreError
from mintaka.store import Store

AT = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'store.db'}")


@pytest.fixture
def chain(store: Store) -> AuditLog:
    log = AuditLog(store)
    for i in range(1, 11):
        with store.write() as conn:
            log.append(
                conn,
                at=AT,
                actor=f"user{i % 3}",
                action="model.register",
                subject=f"m:{i}",
                details={"i": i, "score": 0.5},
            )
    return log


def _sql(store: Store, statement: str, **params: object) -> None:
    with store.write() as conn:
        conn.execute(text(statement), params)


def test_intact_chain_verifies(chain: AuditLog) -> None:
    report = chain.verify()
    assert report.ok
    assert report.events == 10


def test_each_link_is_sha256_of_previous_hash_and_canonical_json(chain: AuditLog) -> None:
    events = chain.events()
    assert events[0].prev_hash == GENESIS
    for before, after in itertools.pairwise(events):
        assert after.prev_hash == before.hash
    first = events[0]
    body = {
        "format": "mintaka-audit/1",
        "seq": 1,
        "at": first.at.isoformat(),
        "actor": first.actor,
        "action": first.action,
        "subject": first.subject,
        "backend": None,
        "details": first.details,
        "prev_hash": GENESIS,
    }
    assert link_hash(GENESIS, canonical_bytes(body)) == first.hash


def test_single_byte_edit_of_canonical_bytes_is_caught(store: Store, chain: AuditLog) -> None:
    with store.write() as conn:
        blob = conn.execute(text("SELECT canonical FROM audit_events WHERE seq = 4")).scalar()
        edited = bytearray(blob)
        index = edited.index(b'"i":4') + 4
        edited[index] = ord("5")
        conn.execute(
            text("UPDATE audit_events SET canonical = :b WHERE seq = 4"), {"b": bytes(edited)}
        )
    report = chain.verify()
    assert not report.ok
    assert report.first_bad_seq == 4


@pytest.mark.parametrize("value", [1.5, 7, "text"])
def test_canonical_bytes_overwritten_by_another_type_break_the_link(
    store: Store, chain: AuditLog, value: object
) -> None:
    _sql(store, "UPDATE audit_events SET canonical = :v WHERE seq = 2", v=value)
    report = chain.verify()
    assert (report.ok, report.first_bad_seq) == (False, 2)


@pytest.mark.parametrize("column", ["at", "actor", "action", "subject", "backend"])
def test_the_database_refuses_to_edit_a_column_apart_from_the_canonical_bytes(
    store: Store, chain: AuditLog, column: str
) -> None:
    with pytest.raises(StoreError, match="cannot UPDATE generated column"):
        _sql(store, f"UPDATE audit_events SET {column} = 'mallory' WHERE seq = 6")
    assert chain.verify().ok
    assert derived_columns_of(store)


def test_columns_follow_the_canonical_bytes(store: Store, chain: AuditLog) -> None:
    _sql(
        store,
        "UPDATE audit_events SET canonical = replace(canonical, 'user0', 'eve') WHERE seq = 6",
    )
    assert chain.events()[5].actor == "eve"  # one copy of the value, the hashed one
    assert chain.verify().first_bad_seq == 6


def _store_the_columns(store: Store) -> None:
    """Rebuild ``audit_events`` with plain columns holding the same values, as a database without
    derived columns keeps them (or a schema edited to break the derivation)."""
    _sql(
        store,
        "CREATE TABLE plain AS SELECT seq, canonical, prev_hash, hash, at, actor, action, "
        "subject, backend FROM audit_events",
    )
    _sql(store, "DROP TABLE audit_events")
    _sql(store, "ALTER TABLE plain RENAME TO audit_events")
    assert not derived_columns_of(store)


def derived_columns_of(store: Store) -> bool:
    with store.read() as conn:
        return derived_columns(conn)


def test_generated_columns_declared_another_way_are_appended_to_and_checked_row_by_row(
    store: Store, chain: AuditLog
) -> None:
    from mintaka.audit.chain import DERIVED_TABLE

    with store.read() as conn:
        indexes = [
            row[0]
            for row in conn.execute(
                text(
                    "SELECT sql FROM sqlite_master "
                    "WHERE tbl_name = 'audit_events' AND type = 'index'"
                )
            )
        ]
    _sql(store, DERIVED_TABLE.replace('"audit_events"', "other").replace(" VIRTUAL", " virtual"))
    _sql(
        store,
        "INSERT INTO other (seq, canonical, prev_hash, hash) "
        "SELECT seq, canonical, prev_hash, hash FROM audit_events",
    )
    _sql(store, "DROP TABLE audit_events")
    _sql(store, "ALTER TABLE other RENAME TO audit_events")
    for index in indexes:
        _sql(store, index)
    assert not derived_columns_of(store)  # not the declaration verify trusts
    fresh = AuditLog(store)
    _append_one(fresh, actor="after", subject="m:11")
    assert fresh.verify().ok
    assert fresh.events()[-1].actor == "after"


def test_stored_columns_are_checked_against_the_canonical_bytes(
    store: Store, chain: AuditLog
) -> None:
    _store_the_columns(store)
    assert chain.verify().ok
    _sql(store, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 6")
    assert chain.verify().first_bad_seq == 6


def test_a_relinked_event_nested_too_deeply_to_read_is_a_break(
    store: Store, chain: AuditLog
) -> None:
    # Bytes no JSON reader in Python can parse, their link and the head rewritten to match:
    # verification reports the event rather than raising.
    _store_the_columns(store)
    nested = b'{"details":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    with store.read() as conn:
        prev = conn.execute(text("SELECT prev_hash FROM audit_events WHERE seq = 10")).scalar_one()
    digest = hashlib.sha256(prev.encode() + nested).hexdigest()
    _sql(
        store,
        "UPDATE audit_events SET canonical = :c, hash = :h WHERE seq = 10",
        c=nested,
        h=digest,
    )
    _sql(store, "UPDATE audit_head SET hash = :h", h=digest)
    report = chain.verify()
    assert (report.ok, report.first_bad_seq) == (False, 10)
    assert report.reason == "columns differ from the canonical bytes"


@pytest.mark.parametrize(("column", "value"), [("seq", "ten"), ("seq", -1), ("hash", "f" * 63)])
def test_a_head_row_edited_out_of_shape_is_a_break_and_stops_appends(
    store: Store, chain: AuditLog, column: str, value: object
) -> None:
    _sql(store, f"UPDATE audit_head SET {column} = :value", value=value)
    report = chain.verify()
    assert (report.ok, report.first_bad_seq) == (False, 10)
    shown = repr(value) if column == "seq" else "10"
    assert f"chain head (sequence {shown}, hash " in str(report.reason)
    with pytest.raises(IntegrityError, match="mintaka audit verify"), store.write() as conn:
        chain.append(conn, at=AT, actor="u", action="model.register", subject="m:11")
    assert chain.verify().events == 10


@pytest.mark.parametrize(
    ("column", "value"), [("at", "yesterday"), ("actor", None), ("canonical", b"[1]")]
)
def test_reading_an_event_edited_out_of_shape_is_an_integrity_error_naming_it(
    store: Store, chain: AuditLog, column: str, value: object
) -> None:
    _store_the_columns(store)  # as another database keeps them: each can be edited
    _sql(store, f"UPDATE audit_events SET {column} = :value WHERE seq = 4", value=value)
    with pytest.raises(IntegrityError, match=r"audit event 4 cannot be read .*audit verify"):
        chain.events()
    assert [e.seq for e in chain.events(since_seq=4)] == [5, 6, 7, 8, 9, 10]


def test_deleted_row_is_caught(store: Store, chain: AuditLog) -> None:
    _sql(store, "DELETE FROM audit_events WHERE seq = 3")
    report = chain.verify()
    assert not report.ok
    assert report.first_bad_seq == 3


def test_deleted_tail_is_caught(store: Store, chain: AuditLog) -> None:
    _sql(store, "DELETE FROM audit_events WHERE seq >= 9")
    report = chain.verify()
    assert not report.ok
    assert report.first_bad_seq == 9


def test_reordered_rows_are_caught(store: Store, chain: AuditLog) -> None:
    _sql(store, "UPDATE audit_events SET seq = -1 WHERE seq = 5")
    _sql(store, "UPDATE audit_events SET seq = 5 WHERE seq = 6")
    _sql(store, "UPDATE audit_events SET seq = 6 WHERE seq = -1")
    assert chain.verify().first_bad_seq == 5


def test_inserted_row_is_caught(store: Store, chain: AuditLog) -> None:
    _sql(store, "UPDATE audit_events SET seq = -(seq + 1) WHERE seq >= 7")  # make room
    _sql(store, "UPDATE audit_events SET seq = -seq WHERE seq < 0")
    _sql(
        store,
        "INSERT INTO audit_events (seq, canonical, prev_hash, hash) "
        "SELECT 7, canonical, prev_hash, hash FROM audit_events WHERE seq = 6",
    )
    assert chain.verify().first_bad_seq == 7


def test_concurrent_processes_append_one_linear_chain(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    Store(url).dispose()  # migrate once, as `mintaka init` would
    script = textwrap.dedent(
        f"""
        import sys
        from datetime import UTC, datetime
        from mintaka.audit import AuditLog
        from mintaka.store import Store
        store = Store({url!r})
        log = AuditLog(store)
        for i in range(40):
            with store.write() as conn:
                log.append(conn, at=datetime.now(UTC), actor=sys.argv[1], action="tick",
                           subject=str(i))
        """
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, f"writer{n}"]) for n in range(3)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    store = Store(url)
    report = AuditLog(store).verify()
    assert report.ok, report
    assert report.events == 120
    actors = {e.actor for e in AuditLog(store).events()}
    assert actors == {"writer0", "writer1", "writer2"}


def _append_one(log: AuditLog, **fields: object) -> None:
    with log.store.write() as conn:
        log.append(conn, **{"at": AT, "action": "model.register", **fields})  # type: ignore[arg-type]


@pytest.fixture
def awkward(store: Store) -> AuditLog:
    """Events whose columns and details need escaping, or leave the canonical fast path."""
    log = AuditLog(store)
    _append_one(log, actor="plain", subject="m:1", details={"i": 1})
    _append_one(log, actor='quo"te\\back\nline', subject="m:2 \u00e9\U0001f600", backend="b\t1")
    _append_one(log, actor="x", subject="m:3", details={"big": 1e21, "tiny": 1e-7, "\u00e9": [1.0]})
    _append_one(log, actor="y", subject='sub"ject', details={"nested": {"list": [None, True]}})
    _append_one(log, actor="z", subject="m:5")
    return log


def test_columns_and_details_that_need_escaping_verify(awkward: AuditLog) -> None:
    report = awkward.verify()
    assert report.ok, report
    assert report.events == 5
    assert [e.actor for e in awkward.events()][:2] == ["plain", 'quo"te\\back\nline']


@pytest.mark.parametrize(
    ("seq", "column", "value"),
    [
        (2, "actor", 'quo\\"te\\back\nline'),  # the escaped text itself, read as the value
        (2, "actor", 'quo"te\\back line'),
        (2, "backend", None),
        (2, "subject", "m:2 \u00e9"),
        (3, "at", "2026-01-01T00:00:00Z"),
        (4, "subject", 'sub\\"ject'),
        (5, "action", "model.delete"),
        (1, "prev_hash", "1" * 64),
    ],
)
def test_any_column_edit_is_caught_at_its_sequence(
    store: Store, awkward: AuditLog, seq: int, column: str, value: object
) -> None:
    _store_the_columns(store)
    assert awkward.verify().ok
    _sql(store, f"UPDATE audit_events SET {column} = :v WHERE seq = :s", v=value, s=seq)
    report = awkward.verify()
    assert not report.ok
    assert report.first_bad_seq == seq


def test_canonical_bytes_stored_as_text_are_read_as_their_bytes(
    store: Store, chain: AuditLog
) -> None:
    _sql(store, "UPDATE audit_events SET canonical = CAST(canonical AS TEXT) WHERE seq = 3")
    assert chain.verify().ok
    _sql(
        store, "UPDATE audit_events SET canonical = replace(canonical, 'm:3', 'm:9') WHERE seq = 3"
    )
    assert chain.verify().first_bad_seq == 3


def test_the_portable_read_path_verifies_and_catches_the_same_edits(
    store: Store, chain: AuditLog, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Other databases read through SQLAlchemy rather than the SQLite driver; SQLite runs the
    # same portable statements when its dialect answers to another name.
    _store_the_columns(store)
    monkeypatch.setattr(store.engine.dialect, "name", "postgresql")
    assert chain.verify().ok
    _sql(store, "UPDATE audit_events SET subject = 'm:x' WHERE seq = 8")
    assert chain.verify().first_bad_seq == 8


@pytest.mark.parametrize(
    ("actor", "details"),
    [
        ("alice", {"reason": "old\udcff"}),
        ("alice", {"reasons": ["old\udcff"]}),
        ("al\udcffce", {}),
    ],
)
def test_text_that_is_not_utf8_is_a_validation_error_and_the_chain_stays_usable(
    store: Store, actor: str, details: dict[str, object]
) -> None:
    from mintaka.errors import ValidationError

    log = AuditLog(store)
    with pytest.raises(ValidationError, match="valid UTF-8"), store.write() as conn:
        log.append(conn, at=AT, actor=actor, action="model.archive", subject="m:1", details=details)
    with store.write() as conn:
        log.append(conn, at=AT, actor="alice", action="model.archive", subject="m:1")
    assert log.verify().ok
