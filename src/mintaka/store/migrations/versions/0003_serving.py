"""Serving: endpoints, the deployment history, the prediction log, downstream decisions, and
each model's declared business metric for champion-challenger promotion.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("models") as batch:
        batch.add_column(sa.Column("business_metric", sa.JSON, nullable=True))
    op.create_table(
        "endpoints",
        sa.Column("name", sa.String(32), primary_key=True),
        sa.Column("backend", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("routes", sa.JSON, nullable=False),
        sa.Column("traffic", sa.JSON, nullable=False),
        sa.Column("killed", sa.Integer, nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
        sa.Column("backend_ids", sa.JSON, nullable=False),
    )
    op.create_table(
        "deployments",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("endpoint", sa.String(32), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("routes", sa.JSON, nullable=False),
        sa.Column("traffic", sa.JSON, nullable=False),
        sa.Column("strategy", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("at", sa.String(40), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("known_good", sa.Integer, nullable=False),
        sa.UniqueConstraint("endpoint", "seq", name="uq_deployments_endpoint_seq"),
    )
    op.create_table(
        "predictions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("endpoint", sa.String(32), nullable=False),
        sa.Column("route", sa.String(32), nullable=True),
        sa.Column("model", sa.String(63), nullable=True),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("version_id", sa.String(64), nullable=True),
        sa.Column("input_digest", sa.String(80), nullable=False),
        sa.Column("inputs", sa.JSON, nullable=True),
        sa.Column("output", sa.JSON, nullable=True),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("shadow", sa.Integer, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("at", sa.String(40), nullable=False),
    )
    op.create_index("ix_predictions_endpoint_at", "predictions", ["endpoint", "at"])
    op.create_table(
        "decisions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("prediction_id", sa.String(64), sa.ForeignKey("predictions.id"), nullable=False),
        sa.Column("decision", sa.Text, nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("at", sa.String(40), nullable=False),
    )
    op.create_index("ix_decisions_prediction", "decisions", ["prediction_id"])


def downgrade() -> None:
    op.drop_index("ix_decisions_prediction", "decisions")
    op.drop_table("decisions")
    op.drop_index("ix_predictions_endpoint_at", "predictions")
    op.drop_table("predictions")
    op.drop_table("deployments")
    op.drop_table("endpoints")
    with op.batch_alter_table("models") as batch:
        batch.drop_column("business_metric")
