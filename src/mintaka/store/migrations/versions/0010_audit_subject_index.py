"""Audit events are indexed by subject.

Governance reads a version's approve and exception events by subject (and action) on every
gate, inventory and evidence pack; with only ``action`` indexed each read scanned every event of
that action, so the cost grew with the square of the versions. On SQLite ``subject`` is a
virtual generated column (migration 0008), which SQLite indexes as it does a plain one.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_audit_events_subject", "audit_events", ["subject"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_subject", table_name="audit_events")
