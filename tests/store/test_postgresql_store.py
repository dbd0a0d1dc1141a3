"""The core flows against a real PostgreSQL server (opt-in).

Set ``MINTAKA_TEST_POSTGRES_URL`` (e.g. ``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``,
with the ``postgresql`` extra installed) to run them; each test works in a fresh schema of that
database, dropped afterwards. docs/architecture.md has a recipe for a throwaway server.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from artifact_kit import MakeArtifact
from sqlalchemy import make_url, text

from mintaka import Conflict, ManualClock, Platform, StoreError
from mintaka.audit.chain import columns_from_canonical
from mintaka.domain.lineage import EdgeKind, LineageEdge, LineageNode, NodeKind
from mintaka.lineage import LineageStore
from mintaka.store import Store
from mintaka.store.engine import HEAD_REVISION
from mintaka.store.schema import AUDIT_COLUMNS_FUNCTION, AUDIT_COLUMNS_TRIGGER

pytestmark = pytest.mark.skipif(
    not os.environ.get("MINTAKA_TEST_POSTGRES_URL"),
    reason="MINTAKA_TEST_POSTGRES_URL is not set: no PostgreSQL server to test against",
)


def test_migrations_bring_an_empty_schema_to_head(pg_url: str) -> None:
    store = Store(pg_url)
    try:
        assert store.revision() == HEAD_REVISION
        store.migrate()  # at head: nothing to do
        assert store.durability().startswith("postgresql")
    finally:
        store.dispose()


_OPEN = "import sys; from mintaka.store import Store; print(Store(sys.argv[1]).revision())"


def test_processes_opening_a_new_store_at_once_all_find_it_at_head(pg_url: str) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _OPEN, pg_url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    assert [(code, out.strip()) for code, out, _ in results] == [(0, HEAD_REVISION)] * 3, [
        err.strip().splitlines()[-1:] for _, _, err in results
    ]


def test_registry_runs_datasets_lineage_and_audit(
    pg_platform: Platform, make_artifact: MakeArtifact, tmp_path: Path, clock: ManualClock
) -> None:
    plat = pg_platform
    data = tmp_path / "train.csv"
    data.write_text("x,y\n1,0\n2,1\n")
    dataset = plat.register_dataset("train", data)
    run = plat.start_run("exp", params={"lr": 0.1}, dataset_ids=[dataset.id])
    plat.log_metrics(run.id, {"auc": 0.91})
    plat.end_run(run.id)
    first = plat.register_model("credit", make_artifact(b"v1"), run_id=run.id, tags={"t": "a"})
    clock.advance(1)
    second = plat.register_model("credit", make_artifact(b"v2"))
    assert (first.version, second.version) == (1, 2)
    assert plat.get_model_version("credit", 1) == first
    plat.set_alias("credit", "champion", 1)
    assert plat.get_model_version("credit@champion").version == 1
    with pytest.raises(Conflict):
        plat.register_model("credit", make_artifact(b"v1"))
    assert [d.id for d in plat.find_datasets("train")] == [dataset.id]
    assert plat.get_run(run.id).metrics == {"auc": 0.91}

    upstream = {n.id for n in plat.lineage_upstream("credit:1").nodes}
    assert {f"dataset:{dataset.id}", f"run:{run.id}", f"model_version:{first.id}"} <= upstream
    downstream = {n.id for n in plat.lineage_downstream("train").nodes}
    assert f"model_version:{first.id}" in downstream
    assert f"model_version:{second.id}" not in downstream

    report = plat.verify_audit()
    assert report.ok, report
    assert report.events >= 5


def test_lineage_walks_from_small_ids_and_from_ids_beyond_smallint(pg_url: str) -> None:
    # PostgreSQL types a bound value from its size: a small id binds as smallint, a large one
    # as integer; a walk must work from both.
    store = Store(pg_url)
    lineage = LineageStore(store)
    try:
        for name in ("small", "large"):
            if name == "large":
                with store.write() as conn:
                    conn.execute(text("ALTER SEQUENCE lineage_nodes_id_seq RESTART WITH 70000"))
            nodes = [
                LineageNode(kind=NodeKind.DATASET, key=f"d-{name}"),
                LineageNode(kind=NodeKind.RUN, key=f"r-{name}"),
            ]
            edge = LineageEdge(
                src=f"dataset:d-{name}", dst=f"run:r-{name}", kind=EdgeKind.TRAINED_ON
            )
            with store.write() as conn:
                lineage.add(conn, nodes, [edge])
            assert lineage.descendants(f"dataset:d-{name}") == [f"r-{name}"]
            assert lineage.ancestors(f"run:r-{name}") == [f"d-{name}"]
            walked = lineage.walk(f"run:r-{name}", "up")
            assert {n.id for n in walked.nodes} == {f"dataset:d-{name}", f"run:r-{name}"}
    finally:
        store.dispose()


def test_a_refused_statement_is_a_store_error_without_the_password(pg_url: str) -> None:
    with_password = make_url(pg_url).set(password="s3cret-pw")
    store = Store(with_password.render_as_string(hide_password=False))
    try:
        with pytest.raises(StoreError, match="no_such_table") as caught, store.read() as conn:
            conn.execute(text("SELECT * FROM no_such_table"))
        assert "s3cret-pw" not in str(caught.value)
    finally:
        store.dispose()


def _back_to_0010(store: Store) -> None:
    """``store`` as revision 0010 left it: audit columns without their trigger."""
    with store.engine.begin() as conn:
        conn.execute(text(f"DROP TRIGGER {AUDIT_COLUMNS_TRIGGER} ON audit_events"))
        conn.execute(text(f"DROP FUNCTION {AUDIT_COLUMNS_FUNCTION}()"))
        conn.execute(text("UPDATE alembic_version SET version_num = '0010'"))


def test_audit_columns_are_set_from_the_canonical_bytes_from_0011_on(
    pg_url: str, tmp_path: Path, clock: ManualClock, make_artifact: MakeArtifact
) -> None:
    home = tmp_path / ".mintaka"
    with Platform(home, store_url=pg_url, clock=clock, actor="rita") as plat:
        plat.register_model("credit", make_artifact(b"v1"))
        recorded = [(e.actor, e.action, e.subject) for e in plat.audit.events()]
        _back_to_0010(plat.store)
        with plat.store.engine.begin() as conn:
            conn.execute(text("UPDATE audit_events SET actor = 'omar'"))
            assert not columns_from_canonical(conn)
    with pytest.raises(StoreError, match="columns differ from its canonical bytes"):
        Store(pg_url)
    unmigrated = Store(pg_url, migrate=False)
    with unmigrated.engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET actor = 'rita'"))
    unmigrated.dispose()
    with Platform(home, store_url=pg_url, clock=clock, actor="rita") as plat:
        assert plat.store.revision() == HEAD_REVISION
        with plat.store.write() as conn:
            assert columns_from_canonical(conn)
            conn.execute(text("UPDATE audit_events SET actor = 'omar', action = 'model.note'"))
        assert [(e.actor, e.action, e.subject) for e in plat.audit.events()] == recorded
        assert plat.verify_audit().ok
        with plat.store.write() as conn:
            conn.execute(text(f"ALTER TABLE audit_events DISABLE TRIGGER {AUDIT_COLUMNS_TRIGGER}"))
            assert not columns_from_canonical(conn)
            conn.execute(text("UPDATE audit_events SET actor = 'omar'"))
        assert plat.verify_audit().first_bad_seq == 1


def test_an_audit_event_whose_bytes_are_not_json_keeps_its_columns_for_verify_to_report(
    pg_platform: Platform, make_artifact: MakeArtifact
) -> None:
    pg_platform.register_model("credit", make_artifact(b"v1"))
    with pg_platform.store.write() as conn:
        conn.execute(
            text("UPDATE audit_events SET canonical = :junk, actor = 'omar' WHERE seq = 1"),
            {"junk": b"\xff not json"},
        )
        assert conn.execute(text("SELECT actor FROM audit_events WHERE seq = 1")).scalar() == (
            "omar"
        )
    assert pg_platform.verify_audit().first_bad_seq == 1
