"""On PostgreSQL, audit events' query columns are set from their canonical bytes by the database.

SQLite reads an event's ``at``, ``actor``, ``action``, ``subject`` and ``backend`` out of its
canonical bytes (migration 0008); PostgreSQL kept them as plain copies, which an ``UPDATE`` could
change without touching the hash-chained bytes, so governance had to read every registering
event of the store to find a version's registrant by the bytes. Now a trigger sets the columns
from the bytes on every insert and update (an edit of a column alone changes nothing), and the
existing rows' columns are set from their bytes once. Where the bytes do not parse as a JSON
object, or do not state a field, the row keeps the column as written, and verification, which
still compares the columns with the bytes row by row on PostgreSQL, reports it as before.
Other databases are unchanged.

As migration 0008 does on SQLite, the upgrade refuses a store whose columns already disagree
with the bytes they state: setting them from the bytes would erase the evidence of that edit.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import json
from typing import Any

from alembic import op

from mintaka.errors import StoreError
from mintaka.store.schema import (
    AUDIT_COLUMNS_FUNCTION,
    AUDIT_COLUMNS_SOURCE,
    AUDIT_COLUMNS_TRIGGER,
)

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


_FIELDS = ("at", "actor", "action", "subject", "backend")
_ROWS = "SELECT seq, canonical, at, actor, action, subject, backend FROM audit_events ORDER BY seq"


def _read(field: str, stated: Any) -> bool:
    """Whether the trigger takes ``stated`` as the column's value."""
    return isinstance(stated, str) or (field == "backend" and stated is None)


def _disagrees(canonical: Any, columns: tuple[Any, ...]) -> bool:
    """Whether a row's columns differ from a value its bytes state for them (as the trigger
    reads them: a string, or a null ``backend``)."""
    try:
        body = json.loads(bytes(canonical).decode("utf-8"))
    except ValueError:
        return False
    if not isinstance(body, dict):
        return False
    for field, column in zip(_FIELDS, columns, strict=True):
        stated = body.get(field)
        if field in body and _read(field, stated) and stated != column:
            return True
    return False


def _first_disagreeing() -> int | None:
    rows = op.get_bind().exec_driver_sql(_ROWS, execution_options={"yield_per": 10_000})
    for seq, canonical, *columns in rows:
        if _disagrees(canonical, tuple(columns)):
            return int(seq)
    return None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    bad = _first_disagreeing()
    if bad is not None:
        raise StoreError(
            f"audit event {bad}: its columns differ from its canonical bytes, so the audit log "
            "was edited; upgrading would erase that evidence. Keep a copy of this store for "
            "investigation and run `mintaka audit verify` with the previous Mintaka release."
        )
    op.execute(
        f"CREATE OR REPLACE FUNCTION {AUDIT_COLUMNS_FUNCTION}() RETURNS trigger "
        f"LANGUAGE plpgsql AS $body${AUDIT_COLUMNS_SOURCE}$body$"
    )
    op.execute(
        f"CREATE TRIGGER {AUDIT_COLUMNS_TRIGGER} BEFORE INSERT OR UPDATE ON audit_events "
        f"FOR EACH ROW EXECUTE FUNCTION {AUDIT_COLUMNS_FUNCTION}()"
    )
    # Every row once: the trigger sets its columns from its bytes.
    op.execute("UPDATE audit_events SET canonical = canonical")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP TRIGGER IF EXISTS {AUDIT_COLUMNS_TRIGGER} ON audit_events")
    op.execute(f"DROP FUNCTION IF EXISTS {AUDIT_COLUMNS_FUNCTION}()")
