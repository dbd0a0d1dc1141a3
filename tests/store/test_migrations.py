from __future__ import annotations

import json
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from mintaka.domain.lineage import NodeKind
from mintaka.lineage import LineageStore
from mintaka.store import Store
from mintaka.store.engine import HEAD_REVISION
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
