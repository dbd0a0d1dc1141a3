"""Audit events whose query columns are derived from their canonical bytes.

An event's ``at``, ``actor``, ``action``, ``subject`` and ``backend`` were stored twice: inside
the hash-chained canonical JSON and again as plain columns for queries, so verification had to
check, row by row, that the two still agreed (an edited column would otherwise show a false actor
while every hash still matched). On SQLite they become virtual generated columns, read out of the
canonical bytes by SQLite itself whenever they are queried: there is one copy of each value, the
database refuses to update them, and verification only needs to confirm that the table is declared
this way. ``action`` gets an index (synchronisation and the inventory look events up by action).

The upgrade refuses a store whose columns already disagree with the canonical bytes: rebuilding
would erase the evidence of that edit. Other databases keep plain columns, which the appender
writes and verification checks row by row.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from alembic import op

from mintaka.errors import StoreError

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_TYPES = {
    "at": "VARCHAR(40)",
    "actor": "VARCHAR(256)",
    "action": "VARCHAR(64)",
    "subject": "VARCHAR(512)",
    "backend": "VARCHAR(64)",
}
_CHAIN = ("seq", "canonical", "prev_hash", "hash")


def _derived(field: str) -> str:
    # CAST: a BLOB is JSONB to SQLite 3.45+, while these bytes are JSON text.
    text = "CAST(canonical AS TEXT)"
    return f"CASE WHEN json_valid({text}) THEN json_extract({text}, '$.{field}') END"


def _first_disagreeing() -> int | None:
    differs = " OR ".join(f"{field} IS NOT ({_derived(field)})" for field in _TYPES)
    row = op.get_bind().exec_driver_sql(f"SELECT min(seq) FROM audit_events WHERE {differs}")
    value = row.scalar()
    return None if value is None else int(value)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    bad = _first_disagreeing()
    if bad is not None:
        raise StoreError(
            f"audit event {bad}: its columns differ from its canonical bytes, so the audit log "
            "was edited; upgrading would erase that evidence. Keep a copy of this store for "
            "investigation and run `mintaka audit verify` with the previous Mintaka release."
        )
    columns = ",\n    ".join(
        f"{field} {kind} GENERATED ALWAYS AS ({_derived(field)}) VIRTUAL"
        for field, kind in _TYPES.items()
    )
    op.execute(
        "CREATE TABLE _audit_events_new (\n"
        "    seq INTEGER NOT NULL PRIMARY KEY,\n"
        "    canonical BLOB NOT NULL,\n"
        "    prev_hash VARCHAR(64) NOT NULL,\n"
        "    hash VARCHAR(64) NOT NULL,\n"
        f"    {columns}\n"
        ")"
    )
    chain = ", ".join(_CHAIN)
    op.execute(
        f"INSERT INTO _audit_events_new ({chain}) SELECT {chain} FROM audit_events ORDER BY seq"
    )
    op.execute("DROP TABLE audit_events")
    op.execute("ALTER TABLE _audit_events_new RENAME TO audit_events")
    op.execute("CREATE INDEX ix_audit_events_action ON audit_events (action)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    plain = ",\n    ".join(
        f"{field} {kind}{'' if field == 'backend' else ' NOT NULL'}"
        for field, kind in _TYPES.items()
    )
    op.execute(
        "CREATE TABLE _audit_events_old (\n"
        "    seq INTEGER NOT NULL PRIMARY KEY,\n"
        f"    {plain},\n"
        "    canonical BLOB NOT NULL,\n"
        "    prev_hash VARCHAR(64) NOT NULL,\n"
        "    hash VARCHAR(64) NOT NULL\n"
        ")"
    )
    every = ", ".join(["seq", *_TYPES, "canonical", "prev_hash", "hash"])
    op.execute(
        f"INSERT INTO _audit_events_old ({every}) SELECT {every} FROM audit_events ORDER BY seq"
    )
    op.execute("DROP TABLE audit_events")
    op.execute("ALTER TABLE _audit_events_old RENAME TO audit_events")
