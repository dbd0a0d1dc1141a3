"""The control-plane schema, as SQLAlchemy Core tables.

The migrations under ``migrations/versions`` create exactly these tables; a test compares the
migrated database with this metadata so the two cannot drift apart. Timestamps are ISO-8601 UTC
strings, JSON columns use SQLAlchemy's portable JSON type, and nothing here is SQLite-specific.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Computed,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

models = Table(
    "models",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("owner", String(256), nullable=False),
    Column("risk_tier", String(16), nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("backend", String(64), nullable=False),
    Column("created_at", String(40), nullable=False),
    # The business metric a challenger must beat the champion on (a cost matrix, ...).
    Column("business_metric", JSON, nullable=True),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(63), ForeignKey("models.name"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("artifact_uri", Text, nullable=False),
    Column("artifact_digest", String(80), nullable=False),
    Column("flavor", String(32), nullable=False),
    Column("signature", JSON, nullable=False),
    Column("params", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("owner", String(256), nullable=False),
    Column("risk_tier", String(16), nullable=False),
    Column("stage", String(16), nullable=False),
    Column("description", Text, nullable=False),
    Column("run_id", String(64), nullable=True),
    Column("code_commit", String(64), nullable=True),
    Column("dataset_ids", JSON, nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("backend", String(64), nullable=False),
    Column("backend_ids", JSON, nullable=False),
    UniqueConstraint("name", "version", name="uq_model_versions_name_version"),
)
# The duplicate-artifact check at registration looks a digest up within one model.
Index("ix_model_versions_name_digest", model_versions.c.name, model_versions.c.artifact_digest)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("name", String(63), ForeignKey("models.name"), nullable=False),
    Column("alias", String(63), nullable=False),
    Column("version", Integer, nullable=False),
    PrimaryKeyConstraint("name", "alias", name="pk_model_aliases"),
)

model_tags = Table(
    "model_tags",
    metadata,
    Column("version_id", String(64), ForeignKey("model_versions.id"), nullable=False),
    Column("key", String(128), nullable=False),
    Column("value", String(256), nullable=False),
    PrimaryKeyConstraint("version_id", "key", name="pk_model_tags"),
)

runs = Table(
    "runs",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("experiment", String(256), nullable=False),
    Column("status", String(16), nullable=False),
    Column("code_commit", String(64), nullable=True),
    Column("dataset_ids", JSON, nullable=False),
    Column("params", JSON, nullable=False),
    Column("metrics", JSON, nullable=False),
    Column("environment", JSON, nullable=False),
    Column("started_at", String(40), nullable=False),
    Column("ended_at", String(40), nullable=True),
    Column("backend", String(64), nullable=False),
    Column("backend_ids", JSON, nullable=False),
)
Index("ix_runs_experiment", runs.c.experiment)

datasets = Table(
    "datasets",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(256), nullable=False),
    Column("uri", Text, nullable=False),
    Column("digest", String(80), nullable=False),
    Column("schema", JSON, nullable=False),
    Column("rows", BigInteger, nullable=True),
    Column("profile", JSON, nullable=True),
    Column("created_at", String(40), nullable=False),
    UniqueConstraint("name", "digest", name="uq_datasets_name_digest"),
)

artifacts = Table(
    "artifacts",
    metadata,
    Column("digest", String(80), primary_key=True),
    Column("uri", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("files", Integer, nullable=False),
    Column("created_at", String(40), nullable=False),
)


def derived_from_canonical(field: str) -> str:
    """SQLite's expression for an audit event's ``field``, read out of its canonical bytes (CAST:
    to SQLite 3.45+ a BLOB is JSONB, while these bytes are JSON text)."""
    text = "CAST(canonical AS TEXT)"
    return f"CASE WHEN json_valid({text}) THEN json_extract({text}, '$.{field}') END"


audit_events = Table(
    "audit_events",
    metadata,
    # INTEGER on SQLite makes the sequence number the row id (no separate primary-key index).
    Column(
        "seq",
        BigInteger().with_variant(Integer(), "sqlite"),
        primary_key=True,
        autoincrement=False,
    ),
    Column("canonical", LargeBinary, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    # On SQLite the query columns are read out of the canonical bytes (virtual generated columns,
    # migration 0008): one copy of each value, which the database refuses to update (NULL only
    # where the bytes are not JSON, which verification reports).
    *(
        Column(
            field,
            String(length),
            Computed(derived_from_canonical(field), persisted=False),
            nullable=True,
        )
        for field, length in (
            ("at", 40),
            ("actor", 256),
            ("action", 64),
            ("subject", 512),
            ("backend", 64),
        )
    ),
)
Index("ix_audit_events_action", audit_events.c.action)
Index("ix_audit_events_subject", audit_events.c.subject)

# On PostgreSQL the query columns are plain, and a trigger (migration 0011) sets them from the
# canonical bytes on every insert and update, as SQLite reads them out: a field the bytes state
# is that column's value; bytes that are not a JSON object, or lack a field, leave the column as
# written (the columns are NOT NULL there), for verification to report.
AUDIT_COLUMNS_FUNCTION = "mintaka_audit_columns_from_canonical"
AUDIT_COLUMNS_TRIGGER = "audit_events_columns_from_canonical"
AUDIT_COLUMNS_SOURCE = """
DECLARE
    body jsonb;
BEGIN
    BEGIN
        body := convert_from(NEW.canonical, 'UTF8')::jsonb;
    EXCEPTION WHEN others THEN
        RETURN NEW;
    END;
    IF jsonb_typeof(body) <> 'object' THEN
        RETURN NEW;
    END IF;
    NEW.at := coalesce(body ->> 'at', NEW.at);
    NEW.actor := coalesce(body ->> 'actor', NEW.actor);
    NEW.action := coalesce(body ->> 'action', NEW.action);
    NEW.subject := coalesce(body ->> 'subject', NEW.subject);
    NEW.backend := CASE WHEN body ? 'backend' THEN body ->> 'backend' ELSE NEW.backend END;
    RETURN NEW;
END;
"""

# One row (id = 1) holding the chain's head; writers lock it, so the chain stays linear even with
# several processes appending at once.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

lineage_nodes = Table(
    "lineage_nodes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("key", String(512), nullable=False),
    Column("label", Text, nullable=False),
    Column("attrs", JSON, nullable=False),
    UniqueConstraint("kind", "key", name="uq_lineage_nodes_kind_key"),
)

lineage_edges = Table(
    "lineage_edges",
    metadata,
    Column("src", Integer, ForeignKey("lineage_nodes.id"), nullable=False),
    Column("dst", Integer, ForeignKey("lineage_nodes.id"), nullable=False),
    Column("kind", String(32), nullable=False),
    PrimaryKeyConstraint("src", "dst", name="pk_lineage_edges"),
    sqlite_with_rowid=False,
)
Index("ix_lineage_edges_dst_src", lineage_edges.c.dst, lineage_edges.c.src)

endpoints = Table(
    "endpoints",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("backend", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("routes", JSON, nullable=False),
    Column("traffic", JSON, nullable=False),
    Column("killed", Integer, nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
    Column("backend_ids", JSON, nullable=False),
)

# Every traffic change ever made, kept forever: "what ran when" and the rollback targets.
deployments = Table(
    "deployments",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("endpoint", String(32), nullable=False),
    Column("seq", Integer, nullable=False),
    Column("routes", JSON, nullable=False),
    Column("traffic", JSON, nullable=False),
    Column("strategy", String(16), nullable=False),
    Column("actor", String(256), nullable=False),
    Column("at", String(40), nullable=False),
    Column("reason", Text, nullable=False),
    Column("known_good", Integer, nullable=False),
    UniqueConstraint("endpoint", "seq", name="uq_deployments_endpoint_seq"),
)

predictions = Table(
    "predictions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("endpoint", String(32), nullable=False),
    Column("route", String(32), nullable=True),
    Column("model", String(63), nullable=True),
    Column("version", Integer, nullable=True),
    Column("version_id", String(64), nullable=True),
    Column("input_digest", String(80), nullable=False),
    Column("inputs", JSON, nullable=True),
    Column("output", JSON, nullable=True),
    Column("status", String(8), nullable=False),
    Column("shadow", Integer, nullable=False),
    Column("latency_ms", Float, nullable=False),
    Column("at", String(40), nullable=False),
)
Index("ix_predictions_endpoint_at", predictions.c.endpoint, predictions.c.at)

decisions = Table(
    "decisions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("prediction_id", String(64), ForeignKey("predictions.id"), nullable=False),
    Column("decision", Text, nullable=False),
    Column("actor", String(256), nullable=False),
    Column("at", String(40), nullable=False),
)
Index("ix_decisions_prediction", decisions.c.prediction_id)

# For each node of an indexed kind (deployments), every node upstream of it: "which deployments
# descend from this dataset" is then one index range instead of a walk through every run and
# model version in between. ``LineageStore`` keeps it in step with ``lineage_edges``.
lineage_reach = Table(
    "lineage_reach",
    metadata,
    Column("src", Integer, ForeignKey("lineage_nodes.id"), nullable=False),
    Column("dst", Integer, ForeignKey("lineage_nodes.id"), nullable=False),
    PrimaryKeyConstraint("src", "dst", name="pk_lineage_reach"),
    sqlite_with_rowid=False,
)

model_cards = Table(
    "model_cards",
    metadata,
    Column("version_id", String(64), ForeignKey("model_versions.id"), primary_key=True),
    Column("card", JSON, nullable=False),
    Column("updated_at", String(40), nullable=False),
    Column("updated_by", String(256), nullable=False),
)

approvals = Table(
    "approvals",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("version_id", String(64), ForeignKey("model_versions.id"), nullable=False),
    Column("artifact_digest", String(80), nullable=False),
    Column("approver", String(256), nullable=False),
    Column("identity_source", String(16), nullable=False),
    Column("role", String(64), nullable=False),
    Column("comment", Text, nullable=False),
    Column("at", String(40), nullable=False),
)
Index("ix_approvals_version", approvals.c.version_id)

policy_decisions = Table(
    "policy_decisions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("action", String(64), nullable=False),
    Column("subject", String(512), nullable=False),
    Column("allowed", Integer, nullable=False),
    Column("controls", JSON, nullable=False),
    Column("unmet", JSON, nullable=False),
    Column("exceptions", JSON, nullable=False),
    Column("policy_digest", String(80), nullable=False),
    Column("actor", String(256), nullable=False),
    Column("at", String(40), nullable=False),
)
Index("ix_policy_decisions_subject", policy_decisions.c.subject)

policy_exceptions = Table(
    "policy_exceptions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("version_id", String(64), ForeignKey("model_versions.id"), nullable=False),
    Column("control", String(64), nullable=False),
    Column("justification", Text, nullable=False),
    Column("requester", String(256), nullable=False),
    Column("approver", String(256), nullable=False),
    Column("expires_at", String(40), nullable=False),
    Column("created_at", String(40), nullable=False),
)
Index("ix_policy_exceptions_version", policy_exceptions.c.version_id)

monitors = Table(
    "monitors",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("endpoint", String(32), nullable=False),
    Column("model", String(63), nullable=False),
    Column("spec", JSON, nullable=False),
    Column("created_at", String(40), nullable=False),
    Column("created_by", String(256), nullable=False),
    # Set when the monitor is removed: its row stays, for the evidence of when it watched.
    Column("removed_at", String(40), nullable=True),
    Column("removed_by", String(256), nullable=True),
)
Index("ix_monitors_endpoint", monitors.c.endpoint)

tickets = Table(
    "tickets",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("alert_id", String(64), nullable=False),
    Column("signal", String(128), nullable=False),
    Column("endpoint", String(32), nullable=False),
    Column("owner", String(256), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("runbook_url", Text, nullable=True),
    Column("escalation", JSON, nullable=False),
    Column("escalation_level", Integer, nullable=False),
    Column("alerts", Integer, nullable=False),
    Column("opened_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
    Column("acked_by", String(256), nullable=True),
    Column("sinks", JSON, nullable=False),
    Column("details", JSON, nullable=False),
)
# One open ticket per signal and endpoint: a repeated alert updates it, even from two runners.
# (Its PostgreSQL form is added by ``use_postgresql_options``: naming a ``postgresql_`` option
# here would load SQLAlchemy's PostgreSQL dialect, ~20 ms, into every process.)
_open_tickets_index = Index(
    "ux_tickets_open_signal",
    tickets.c.signal,
    tickets.c.endpoint,
    unique=True,
    sqlite_where=tickets.c.status != "resolved",
)


def use_postgresql_options() -> None:
    """Give the tables their PostgreSQL-only options (the partial indexes' ``WHERE``): called
    when a PostgreSQL store opens, before anything reads the metadata for that dialect."""
    _open_tickets_index.dialect_kwargs["postgresql_where"] = tickets.c.status != "resolved"


# Ground truth that arrives after the prediction; a later label for the same id replaces it.
labels = Table(
    "labels",
    metadata,
    Column("prediction_id", String(64), ForeignKey("predictions.id"), primary_key=True),
    Column("label", JSON, nullable=False),
    Column("received_at", String(40), nullable=False),
    Column("sent_by", String(256), nullable=False),
)
