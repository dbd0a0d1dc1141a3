"""The lineage graph: integer-keyed nodes, a covering index for upstream walks, and the
ancestors of every deployment (``lineage_reach``).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lineage_nodes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("attrs", sa.JSON, nullable=False),
        sa.UniqueConstraint("kind", "key", name="uq_lineage_nodes_kind_key"),
    )
    op.create_table(
        "lineage_edges",
        sa.Column("src", sa.Integer, sa.ForeignKey("lineage_nodes.id"), nullable=False),
        sa.Column("dst", sa.Integer, sa.ForeignKey("lineage_nodes.id"), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("src", "dst", name="pk_lineage_edges"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_lineage_edges_dst_src", "lineage_edges", ["dst", "src"])
    op.create_table(
        "lineage_reach",
        sa.Column("src", sa.Integer, sa.ForeignKey("lineage_nodes.id"), nullable=False),
        sa.Column("dst", sa.Integer, sa.ForeignKey("lineage_nodes.id"), nullable=False),
        sa.PrimaryKeyConstraint("src", "dst", name="pk_lineage_reach"),
        sqlite_with_rowid=False,
    )
    # Versions registered before the graph existed get their dataset -> run -> version edges
    # from the columns that already recorded them. No deployment predates this revision, so
    # lineage_reach starts empty.
    _backfill()


def _backfill() -> None:
    import json

    bind = op.get_bind()
    nodes = sa.table(
        "lineage_nodes",
        sa.column("id", sa.Integer),
        sa.column("kind", sa.String),
        sa.column("key", sa.String),
        sa.column("label", sa.String),
        sa.column("attrs", sa.JSON),
    )
    edges = sa.table(
        "lineage_edges",
        sa.column("src", sa.Integer),
        sa.column("dst", sa.Integer),
        sa.column("kind", sa.String),
    )
    ids: dict[tuple[str, str], int] = {}

    def node(kind: str, key: str, label: str) -> int:
        if (kind, key) not in ids:
            bind.execute(nodes.insert().values(kind=kind, key=key, label=label, attrs={}))
            ids[(kind, key)] = bind.execute(
                sa.select(nodes.c.id).where(nodes.c.kind == kind, nodes.c.key == key)
            ).scalar_one()
        return ids[(kind, key)]

    def edge(src: int, dst: int, kind: str) -> None:
        if (src, dst) not in seen:
            seen.add((src, dst))
            bind.execute(edges.insert().values(src=src, dst=dst, kind=kind))

    seen: set[tuple[int, int]] = set()
    rows = bind.execute(
        sa.text("SELECT id, name, version, run_id, dataset_ids FROM model_versions ORDER BY id")
    ).all()
    for version_id, name, version, run_id, dataset_ids in rows:
        mv = node("model_version", version_id, f"{name}:{version}")
        datasets = json.loads(dataset_ids) if isinstance(dataset_ids, str) else dataset_ids
        upstream = mv
        if run_id:
            run = node("run", run_id, run_id)
            edge(run, mv, "produced")
            upstream = run
        for dataset_id in datasets or []:
            edge(node("dataset", dataset_id, dataset_id), upstream, "trained_on")


def downgrade() -> None:
    op.drop_table("lineage_reach")
    op.drop_index("ix_lineage_edges_dst_src", "lineage_edges")
    op.drop_table("lineage_edges")
    op.drop_table("lineage_nodes")
