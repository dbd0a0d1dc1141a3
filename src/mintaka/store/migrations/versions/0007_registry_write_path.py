"""The registration write path: an index that answers the duplicate-artifact check, and audit
events keyed by the table's own row id on SQLite.

* Registration refuses bytes a model already holds (``WHERE name = ? AND artifact_digest = ?``).
  With ``artifact_digest`` indexed alone, SQLite preferred the ``(name, version)`` unique index
  and read every version of the model: the check grew with the model's history. An index on
  ``(name, artifact_digest)`` answers it in one lookup and replaces the digest-only one (nothing
  looks a digest up without its model).
* ``audit_events.seq`` was ``BIGINT PRIMARY KEY``, which SQLite keeps as a separate index beside
  the table: every append wrote two b-trees. Declared ``INTEGER`` on SQLite, the sequence number
  is the row id itself (one b-tree, rows stored in chain order). Other databases keep ``BIGINT``.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_COLUMNS = "seq, at, actor, action, subject, backend, canonical, prev_hash, hash"


def _rebuild(seq_type: sa.types.TypeEngine[int]) -> None:
    op.create_table(
        "_audit_events_new",
        sa.Column("seq", seq_type, primary_key=True, autoincrement=False),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(512), nullable=False),
        sa.Column("backend", sa.String(64), nullable=True),
        sa.Column("canonical", sa.LargeBinary, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.execute(
        f"INSERT INTO _audit_events_new ({_COLUMNS}) SELECT {_COLUMNS} FROM audit_events "
        "ORDER BY seq"
    )
    op.drop_table("audit_events")
    op.rename_table("_audit_events_new", "audit_events")


def upgrade() -> None:
    op.drop_index("ix_model_versions_digest", table_name="model_versions")
    op.create_index("ix_model_versions_name_digest", "model_versions", ["name", "artifact_digest"])
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(sa.Integer())


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild(sa.BigInteger())
    op.drop_index("ix_model_versions_name_digest", table_name="model_versions")
    op.create_index("ix_model_versions_digest", "model_versions", ["artifact_digest"])
