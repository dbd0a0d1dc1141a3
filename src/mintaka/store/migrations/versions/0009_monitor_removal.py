"""Monitors are removed by marking them, not by deleting their rows.

A monitor's row is what evidence packs read to say which monitors watched a version while it
served. Deleting the row on removal erased that history: a pack made after the removal no
longer listed the monitor even for the period it watched. ``removed_at`` and ``removed_by``
(null while the monitor is on duty) mark a removed monitor instead; the reason is in its
``monitor.remove`` audit event.

The downgrade deletes the removed monitors' rows (earlier releases have no other way to keep
them off duty) and drops both columns.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("monitors") as batch:
        batch.add_column(sa.Column("removed_at", sa.String(40), nullable=True))
        batch.add_column(sa.Column("removed_by", sa.String(256), nullable=True))


def downgrade() -> None:
    op.execute("DELETE FROM monitors WHERE removed_at IS NOT NULL")
    with op.batch_alter_table("monitors") as batch:
        batch.drop_column("removed_by")
        batch.drop_column("removed_at")
