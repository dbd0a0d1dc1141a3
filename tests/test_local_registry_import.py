"""Opening a home whose local registry predates the store-resident tables imports that file's rows
into the store's database in one transaction and only then renames the file aside, kept."""

from __future__ import annotations

import multiprocessing
import sqlite3
from multiprocessing.synchronize import Barrier
from pathlib import Path

import pytest
from artifact_kit import MakeArtifact
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect
from sqlalchemy.schema import CreateTable

from mintaka import Conflict, IdFactory, ManualClock, Platform, Stage, StoreError
from mintaka.local import backend as local_backend
from mintaka.local.registry_db import metadata
from mintaka.sync import DIFFERENCE_ACTION

LOCAL_TABLES = tuple(table.name for table in metadata.sorted_tables)
KEPT = "registry.db.imported-20260101T000000Z"  # the ManualClock's start, in UTC


def _open(home: Path, clock: ManualClock) -> Platform:
    return Platform(home, backend="local", clock=clock, ids=IdFactory(seed=7), actor="alice")


@pytest.fixture
def old_home(
    home: Path, clock: ManualClock, make_artifact: MakeArtifact, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A home written by a Mintaka that kept the local registry in ``local/registry.db``."""
    with monkeypatch.context() as patched:
        patched.setattr(local_backend, "sqlite_file", lambda url: None)
        with _open(home, clock) as platform:
            assert not platform.backend.resides_in(platform.store.url)
            run = platform.start_run("exp", params={"lr": "0.1"})
            platform.log_metrics(run.id, {"auc": 0.9})
            platform.end_run(run.id)
            platform.register_model("m", make_artifact(b"v1"), run_id=run.id, tags={"t": "1"})
            platform.register_model("m", make_artifact(b"v2"))
            platform.set_alias("m", "champion", 1)
    assert _rows(home / "store.db") == {}  # the store's database has no local_* tables
    return home


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}


def _rows(db: Path) -> dict[str, list[tuple[object, ...]]]:
    conn = sqlite3.connect(db)
    try:
        present = _tables(conn)
        return {
            t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr)
            for t in LOCAL_TABLES
            if t in present
        }
    finally:
        conn.close()


def _dump(db: Path) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def _kept(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "local").glob("registry.db*"))


def test_an_older_registry_file_is_imported_and_registration_takes_one_commit(
    old_home: Path, clock: ManualClock, make_artifact: MakeArtifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _rows(old_home / "local" / "registry.db")
    with _open(old_home, clock) as platform:
        registry = platform.backend
        assert registry.resides_in(platform.store.url)
        assert [v.version for v in registry.list_versions("m")] == [1, 2]  # type: ignore[attr-defined]
        assert registry.get_aliases("m") == {"champion": 1}  # type: ignore[attr-defined]
        assert registry.get_version("m", 1).tags == {"t": "1"}  # type: ignore[attr-defined]
        run_id = platform.get_model_version("m", 1).run_id
        assert run_id is not None
        assert registry.get_run(run_id).metrics == {"auc": 0.9}  # type: ignore[attr-defined]
        monkeypatch.setattr(registry, "create_version", lambda *a, **k: pytest.fail("own commit"))
        assert platform.register_model("m", make_artifact(b"v3")).version == 3
    assert _kept(old_home) == [KEPT]
    assert _rows(old_home / "local" / KEPT) == before  # renamed, not deleted nor changed


def test_opening_the_home_again_changes_nothing(old_home: Path, clock: ManualClock) -> None:
    with _open(old_home, clock):
        pass
    imported = _rows(old_home / "store.db")
    clock.advance(60)
    with _open(old_home, clock) as platform:
        assert platform.backend.resides_in(platform.store.url)
    assert _rows(old_home / "store.db") == imported
    assert _kept(old_home) == [KEPT]


def test_a_crash_between_the_commit_and_the_rename_is_finished_on_the_next_open(
    old_home: Path, clock: ManualClock
) -> None:
    with _open(old_home, clock):
        pass
    imported = _rows(old_home / "store.db")
    # The state a crash after the import's commit leaves: the rows in the store, the file in place.
    (old_home / "local" / KEPT).rename(old_home / "local" / "registry.db")
    with _open(old_home, clock) as platform:
        assert [v.version for v in platform.backend.list_versions("m")] == [1, 2]  # type: ignore[attr-defined]
    assert _rows(old_home / "store.db") == imported
    assert _kept(old_home) == [KEPT]


def test_rows_the_store_holds_otherwise_refuse_the_import_and_change_nothing(
    old_home: Path, clock: ManualClock
) -> None:
    store_db = old_home / "store.db"
    with sqlite3.connect(store_db) as conn:
        for table in metadata.sorted_tables:
            conn.execute(str(CreateTable(table).compile(dialect=sqlite_dialect())))
        conn.execute("INSERT INTO local_aliases (name, alias, version) VALUES ('m', 'champion', 2)")
    conn.close()
    legacy = old_home / "local" / "registry.db"
    store_before, legacy_before = _dump(store_db), _dump(legacy)

    with pytest.raises(Conflict, match=r"registry\.db.*local_aliases \('m', 'champion'\)"):
        _open(old_home, clock)

    assert _dump(store_db) == store_before
    assert _dump(legacy) == legacy_before
    assert _kept(old_home) == ["registry.db"]


def test_a_file_from_before_a_column_or_table_existed_is_imported(
    home: Path, clock: ManualClock
) -> None:
    legacy = home / "local" / "registry.db"
    legacy.parent.mkdir(parents=True)
    with sqlite3.connect(legacy) as conn:  # no approval column, no local_endpoints table
        conn.executescript(
            """
            CREATE TABLE local_models (name TEXT PRIMARY KEY, description TEXT NOT NULL,
                created_at TEXT NOT NULL);
            CREATE TABLE local_versions (name TEXT NOT NULL, version INTEGER NOT NULL,
                artifact_uri TEXT NOT NULL, artifact_digest TEXT NOT NULL, flavor TEXT NOT NULL,
                metrics JSON NOT NULL, description TEXT NOT NULL, stage TEXT,
                mintaka_id TEXT, idempotency_key TEXT UNIQUE, created_at TEXT NOT NULL,
                PRIMARY KEY (name, version));
            INSERT INTO local_models VALUES ('m', '', '2025-01-01T00:00:00+00:00');
            INSERT INTO local_versions VALUES ('m', 1, 'file:///a', 'sha256:aa', 'sklearn',
                '{}', '', 'staging', NULL, NULL, '2025-01-01T00:00:00+00:00');
            """
        )
    conn.close()
    with _open(home, clock) as platform:
        (version,) = platform.backend.list_versions("m")  # type: ignore[attr-defined]
        assert (version.artifact_digest, version.stage, version.approval) == (
            "sha256:aa",
            Stage.STAGING,
            None,
        )
    assert _kept(home) == [KEPT]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ("ALTER TABLE local_tags ADD COLUMN colour TEXT", "does not know \\(colour\\)"),
        ("ALTER TABLE local_tags DROP COLUMN value", "lacks required columns \\(value\\)"),
    ],
)
def test_a_file_whose_columns_do_not_fit_is_refused(
    old_home: Path, clock: ManualClock, change: str, problem: str
) -> None:
    legacy = old_home / "local" / "registry.db"
    with sqlite3.connect(legacy) as conn:
        conn.execute(change)
    conn.close()
    legacy_before = _dump(legacy)
    with pytest.raises(StoreError, match=f"registry\\.db: its table local_tags .*{problem}"):
        _open(old_home, clock)
    assert _dump(legacy) == legacy_before
    assert not _rows(old_home / "store.db")["local_models"]
    assert _kept(old_home) == ["registry.db"]


def _open_and_close(home: Path, ready: Barrier) -> None:
    ready.wait()
    with Platform(home, backend="local"):
        pass


def test_two_processes_opening_the_home_at_once_import_it_once(old_home: Path) -> None:
    before = _rows(old_home / "local" / "registry.db")
    fork = multiprocessing.get_context("fork")
    ready = fork.Barrier(2)
    openers = [fork.Process(target=_open_and_close, args=(old_home, ready)) for _ in range(2)]
    for opener in openers:
        opener.start()
    for opener in openers:
        opener.join(timeout=120)
        if opener.is_alive():
            opener.kill()
    assert [opener.exitcode for opener in openers] == [0, 0]
    assert _rows(old_home / "store.db") == before
    (kept,) = _kept(old_home)
    assert kept.startswith("registry.db.imported-")


def test_sync_reports_nothing_new_for_the_imported_versions(
    old_home: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patched:
        patched.setattr(local_backend, "sqlite_file", lambda url: None)
        with _open(old_home, clock) as platform:
            assert platform.sync() == []
            platform.backend.set_alias("m", "champion", 2)  # type: ignore[attr-defined]
            (seen,) = platform.sync()
    with _open(old_home, clock) as platform:
        assert platform.sync() == [seen]
        audited = [e for e in platform.audit.events() if e.action == DIFFERENCE_ACTION]
        assert [e.subject for e in audited] == [seen.subject]


def test_a_file_another_process_has_open_is_not_imported_until_it_closes(
    old_home: Path, clock: ManualClock
) -> None:
    legacy = old_home / "local" / "registry.db"
    before_file = _rows(legacy)
    # An older Mintaka still running against the home: its connection is idle but open.
    holder = sqlite3.connect(legacy)
    holder.execute("SELECT count(*) FROM local_versions").fetchone()
    try:
        with pytest.raises(StoreError, match="open in another process"):
            _open(old_home, clock)
        assert "registry.db" in _kept(old_home)  # not renamed
        assert not any(_rows(old_home / "store.db").values())  # nothing imported
    finally:
        holder.close()
    assert _rows(legacy) == before_file
    with _open(old_home, clock) as platform:
        assert [v.version for v in platform.backend.list_versions("m")] == [1, 2]  # type: ignore[attr-defined]
    assert _kept(old_home) == [KEPT]


def test_a_file_retired_by_another_process_as_it_is_opened_is_left_to_that_import(
    old_home: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process that imported the file renames it (and its ``-wal``/``-shm``) aside
    once its transaction commits: one that opened the file just before that rename finds it
    gone when it locks it (SQLite reports a disk I/O error) and leaves it to that import
    instead of failing to open the home."""
    from mintaka.local import registry_db

    opened = registry_db._open_existing

    def opened_then_retired(path: Path) -> sqlite3.Connection | None:
        conn = opened(path)
        registry_db._retire(path, clock.now())  # what the other process does after its commit
        return conn

    monkeypatch.setattr(registry_db, "_open_existing", opened_then_retired)
    with _open(old_home, clock) as platform:
        assert platform.backend.resides_in(platform.store.url)
    assert _kept(old_home) == [KEPT]
