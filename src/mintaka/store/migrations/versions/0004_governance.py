"""Governance: model cards, approvals bound to digests, policy decisions and exceptions.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_cards",
        sa.Column(
            "version_id", sa.String(64), sa.ForeignKey("model_versions.id"), primary_key=True
        ),
        sa.Column("card", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
        sa.Column("updated_by", sa.String(256), nullable=False),
    )
    op.create_table(
        "approvals",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("version_id", sa.String(64), sa.ForeignKey("model_versions.id"), nullable=False),
        sa.Column("artifact_digest", sa.String(80), nullable=False),
        sa.Column("approver", sa.String(256), nullable=False),
        sa.Column("identity_source", sa.String(16), nullable=False),
        sa.Column("role", sa.String(64), nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("at", sa.String(40), nullable=False),
    )
    op.create_index("ix_approvals_version", "approvals", ["version_id"])
    op.create_table(
        "policy_decisions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(512), nullable=False),
        sa.Column("allowed", sa.Integer, nullable=False),
        sa.Column("controls", sa.JSON, nullable=False),
        sa.Column("unmet", sa.JSON, nullable=False),
        sa.Column("exceptions", sa.JSON, nullable=False),
        sa.Column("policy_digest", sa.String(80), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("at", sa.String(40), nullable=False),
    )
    op.create_index("ix_policy_decisions_subject", "policy_decisions", ["subject"])
    op.create_table(
        "policy_exceptions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("version_id", sa.String(64), sa.ForeignKey("model_versions.id"), nullable=False),
        sa.Column("control", sa.String(64), nullable=False),
        sa.Column("justification", sa.Text, nullable=False),
        sa.Column("requester", sa.String(256), nullable=False),
        sa.Column("approver", sa.String(256), nullable=False),
        sa.Column("expires_at", sa.String(40), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
    )
    op.create_index("ix_policy_exceptions_version", "policy_exceptions", ["version_id"])


def downgrade() -> None:
    op.drop_index("ix_policy_exceptions_version", "policy_exceptions")
    op.drop_table("policy_exceptions")
    op.drop_index("ix_policy_decisions_subject", "policy_decisions")
    op.drop_table("policy_decisions")
    op.drop_index("ix_approvals_version", "approvals")
    op.drop_table("approvals")
    op.drop_table("model_cards")
