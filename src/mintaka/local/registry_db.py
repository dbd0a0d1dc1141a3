"""The local backend's own state: what a cloud registry would hold.

These tables are kept apart from the control-plane tables on purpose (in the store's database or
in a file of their own, see ``LocalBackend``): the local backend is a cloud like any other, so its
state can be changed behind Mintaka's back and ``sync`` must notice.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

local_models = Table(
    "local_models",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("description", Text, nullable=False),
    Column("created_at", String(40), nullable=False),
)

local_versions = Table(
    "local_versions",
    metadata,
    Column("name", String(63), nullable=False),
    Column("version", Integer, nullable=False),
    Column("artifact_uri", Text, nullable=False),
    Column("artifact_digest", String(80), nullable=False),
    Column("flavor", String(32), nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("description", Text, nullable=False),
    Column("stage", String(16), nullable=True),
    Column("approval", String(16), nullable=True),
    Column("mintaka_id", String(64), nullable=True),
    Column("idempotency_key", String(128), nullable=True, unique=True),
    Column("created_at", String(40), nullable=False),
    PrimaryKeyConstraint("name", "version"),
    # Clustered on (name, version): a new version writes this b-tree and the idempotency-key
    # index, not a row-id b-tree besides.
    sqlite_with_rowid=False,
)

local_aliases = Table(
    "local_aliases",
    metadata,
    Column("name", String(63), nullable=False),
    Column("alias", String(63), nullable=False),
    Column("version", Integer, nullable=False),
    PrimaryKeyConstraint("name", "alias"),
)

local_tags = Table(
    "local_tags",
    metadata,
    Column("name", String(63), nullable=False),
    Column("version", Integer, nullable=False),
    Column("key", String(128), nullable=False),
    Column("value", String(256), nullable=False),
    PrimaryKeyConstraint("name", "version", "key"),
)

local_runs = Table(
    "local_runs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("experiment", String(256), nullable=False),
    Column("status", String(16), nullable=False),
    Column("params", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("record", JSON, nullable=False),
    UniqueConstraint("id", name="uq_local_runs_id"),
)

local_endpoints = Table(
    "local_endpoints",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("routes", JSON, nullable=False),
    Column("traffic", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("killed", Integer, nullable=False),
    Column("capture", JSON, nullable=False),
    Column("config_version", Integer, nullable=False),
    Column("updated_at", String(40), nullable=False),
)
