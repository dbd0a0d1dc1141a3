"""Late labels: the ground truth for a logged prediction, keyed by its id (the latest one wins).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "labels",
        sa.Column(
            "prediction_id", sa.String(64), sa.ForeignKey("predictions.id"), primary_key=True
        ),
        sa.Column("label", sa.JSON, nullable=False),
        sa.Column("received_at", sa.String(40), nullable=False),
        sa.Column("sent_by", sa.String(256), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("labels")
