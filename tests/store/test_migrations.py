from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from mintaka.audit.chain import derived_columns
from mintaka.domain.lineage import NodeKind
from mintaka.errors import StoreError
from mintaka.lineage import LineageStore
from mintaka.store import Store
from mintaka.store.engine import HEAD_REVISION, Sql
from mintaka.store.schema import metadata


def test_new_store_is_at_head(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    assert store.revision() == HEAD_REVISION


def test_migrated_schema_matches_the_table_definitions(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_store_from_first_release_upgrades_in_place_and_keeps_data(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    old = Store(url, migrate=False)
    old.migrate("0001")
    assert old.revision() == "0001"
    now = "2026-01-01T00:00:00+00:00"
    with old.write() as conn:
        conn.execute(
            text("INSERT INTO models VALUES ('credit', 'alice', 'high', '', 'local', :now)"),
            {"now": now},
        )
        conn.execute(
            text(
                "INSERT INTO model_versions VALUES ('mv-1', 'credit', 1, 'file:///a', :digest, "
                "'sklearn', '{}', '{}', '{}', 'alice', 'high', 'none', '', 'run-1', 'abc', "
                ":datasets, :now, 'local', '{}')"
            ),
            {"digest": "sha256:" + "a" * 64, "datasets": json.dumps(["ds-1"]), "now": now},
        )
    old.dispose()

    upgraded = Store(url)

    assert upgraded.revision() == HEAD_REVISION
    with upgraded.read() as conn:
        assert conn.execute(text("SELECT name, version FROM model_versions")).all() == [
            ("credit", 1)
        ]
    lineage = LineageStore(upgraded)
    assert set(lineage.ancestors("model_version:mv-1")) == {"run-1", "ds-1"}
    assert lineage.ancestors("model_version:mv-1", NodeKind.DATASET) == ["ds-1"]
    assert lineage.descendants("dataset:ds-1", NodeKind.MODEL_VERSION) == ["mv-1"]


def test_opening_an_up_to_date_store_twice_is_harmless(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    Store(url).dispose()
    again = Store(url)
    assert again.revision() == HEAD_REVISION


def test_threads_migrating_new_stores_at_once_all_bring_them_to_head(tmp_path: Path) -> None:
    # Alembic keeps the migration running now in a module-level proxy: migrations of several
    # stores in one process must take turns.
    start = threading.Barrier(4)

    def open_store(n: int) -> str | None:
        start.wait()
        store = Store(f"sqlite:///{tmp_path / f's{n}.db'}")
        try:
            return store.revision()
        finally:
            store.dispose()

    with ThreadPoolExecutor(4) as pool:
        revisions = list(pool.map(open_store, range(4)))
    assert revisions == [HEAD_REVISION] * 4


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_child_forked_while_a_thread_migrates_can_migrate_a_store(tmp_path: Path) -> None:
    from mintaka.store import engine

    with engine._MIGRATING:  # as held by another thread of the parent at the fork
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                Store(f"sqlite:///{tmp_path / 'child.db'}").dispose()
                code = 0
            finally:
                os._exit(code)
        deadline = time.monotonic() + 30
        while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
    if done[0] == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the forked child waited for a lock no thread of its own holds")
    assert os.waitstatus_to_exitcode(done[1]) == 0


def test_a_store_made_by_a_newer_release_is_refused_naming_both_revisions(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    store = Store(url)
    with store.write() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0999'"))
    store.dispose()
    with pytest.raises(StoreError) as refused:
        Store(url)
    said = str(refused.value)
    assert "revision '0999'" in said
    assert "newer Mintaka" in said
    assert f"up to {HEAD_REVISION}" in said
    left = Store(url, migrate=False)
    assert left.revision() == "0999"  # left as it was
    left.dispose()


def test_store_at_0006_upgrades_its_audit_chain_and_digest_index_in_place(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from mintaka.audit import AuditLog

    url = f"sqlite:///{tmp_path / 's.db'}"
    old = Store(url, migrate=False)
    old.migrate("0006")
    log = AuditLog(old)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(1, 6):
        with old.write() as conn:
            log.append(conn, at=at, actor="alice", action="tick", subject=f"s:{i}")
    old.dispose()

    upgraded = Store(url)

    assert upgraded.revision() == HEAD_REVISION == "0011"
    log = AuditLog(upgraded)
    assert log.verify().ok
    with upgraded.write() as conn:
        log.append(conn, at=at, actor="bob", action="tick", subject="s:6")
    report = log.verify()
    assert report.ok
    assert report.events == 6
    with upgraded.read() as conn:
        sql = Sql(conn)
        indexes = {
            row[0] for row in sql.rows("SELECT name FROM sqlite_master WHERE type = 'index'")
        }
        # The sequence number is the row id: no separate primary-key index on audit_events.
        assert sql.one("SELECT max(rowid) = max(seq) FROM audit_events") == (1,)
        # The query columns are read out of the canonical bytes (0008), the same values.
        assert derived_columns(conn)
        assert [row[0] for row in sql.rows("SELECT actor FROM audit_events ORDER BY seq")] == [
            *["alice"] * 5,
            "bob",
        ]
    assert not any(name.startswith("sqlite_autoindex_audit_events") for name in indexes)
    assert "ix_model_versions_name_digest" in indexes
    assert "ix_model_versions_digest" not in indexes
    assert "ix_audit_events_action" in indexes
    assert "ix_audit_events_subject" in indexes
    with upgraded.read() as conn:
        columns = {row[1] for row in Sql(conn).rows("PRAGMA table_info(monitors)")}
    assert {"removed_at", "removed_by"} <= columns  # removal marks a monitor (0009)


def test_a_store_whose_audit_columns_were_edited_is_not_upgraded(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from mintaka.audit import AuditLog

    url = f"sqlite:///{tmp_path / 's.db'}"
    old = Store(url, migrate=False)
    old.migrate("0007")
    log = AuditLog(old)
    for i in range(1, 4):
        with old.write() as conn:
            log.append(
                conn, at=datetime(2026, 1, 1, tzinfo=UTC), actor="alice", action="t", subject=str(i)
            )
    with old.write() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2"))
    old.dispose()

    # Rebuilding the table would replace the edited column with the hashed value: the evidence.
    with pytest.raises(StoreError, match="audit event 2: its columns differ"):
        Store(url)
    kept = Store(url, migrate=False)
    assert kept.revision() == "0007"
    with kept.read() as conn:
        assert Sql(conn).one("SELECT actor FROM audit_events WHERE seq = 2") == ("mallory",)


def test_the_duplicate_artifact_check_uses_the_name_and_digest_index(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    with store.read() as conn:
        plan = Sql(conn).rows(
            "EXPLAIN QUERY PLAN SELECT version FROM model_versions "
            "WHERE name = :name AND artifact_digest = :digest",
            {"name": "m", "digest": "sha256:0"},
        )
    assert "ix_model_versions_name_digest" in " ".join(str(step[-1]) for step in plan)


def test_downgrade_to_0006_and_back_keeps_the_chain(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from mintaka.audit import AuditLog

    url = f"sqlite:///{tmp_path / 's.db'}"
    store = Store(url)
    log = AuditLog(store)
    for i in range(3):
        with store.write() as conn:
            log.append(
                conn, at=datetime(2026, 1, 1, tzinfo=UTC), actor="a", action="t", subject=str(i)
            )
    from alembic import command
    from alembic.config import Config

    from mintaka.store.engine import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0006")
    store.dispose()
    assert Store(url, migrate=False).revision() == "0006"
    again = Store(url)
    assert again.revision() == HEAD_REVISION
    assert AuditLog(again).verify().ok


def test_a_home_whose_local_endpoints_predate_their_identity_is_upgraded_in_place(
    tmp_path: Path,
) -> None:
    import sqlite3

    from mintaka import Platform
    from mintaka.local.backend import LocalBackend

    with Platform(tmp_path / "h") as plat:
        assert isinstance(plat.backend, LocalBackend)
        database = str(plat.backend.engine.url.database)
    with sqlite3.connect(database) as old:  # the table as homes before endpoint identities had it
        old.execute("DROP TABLE local_endpoints")
        old.execute(
            "CREATE TABLE local_endpoints (name VARCHAR(32) NOT NULL PRIMARY KEY, "
            "routes JSON NOT NULL, traffic JSON NOT NULL, status VARCHAR(16) NOT NULL, "
            "killed INTEGER NOT NULL, capture JSON NOT NULL, config_version INTEGER NOT NULL, "
            "updated_at VARCHAR(40) NOT NULL)"
        )
        old.execute(
            "INSERT INTO local_endpoints VALUES ('scoring', '[]', :traffic, 'in_service', 1, "
            "'{}', 4, '2026-01-01T00:00:00+00:00')",
            {"traffic": json.dumps({"weights": {}})},
        )
    old.close()

    with Platform(tmp_path / "h") as plat:
        backend = plat.backend
        assert isinstance(backend, LocalBackend)
        kept = backend.get_endpoint("scoring")
        assert (kept.backend_ids["config_version"], kept.status.value) == ("4", "killed")
        with backend.engine.connect() as conn:
            rows = conn.execute(text("SELECT name, incarnation FROM local_endpoints")).all()
    [(name, identity)] = rows
    assert name == "scoring"
    assert re.fullmatch(r"[0-9a-f]{32}", identity)  # one of its own, not the empty one
    with Platform(tmp_path / "h") as plat, plat.backend.engine.connect() as conn:  # type: ignore[attr-defined]
        again = conn.execute(text("SELECT incarnation FROM local_endpoints")).scalar()
    assert again == identity  # given once: opening the home again keeps it
