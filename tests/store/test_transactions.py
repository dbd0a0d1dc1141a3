from __future__ import annotations

import os
import sqlite3
import sys
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import make_url, text

from mintaka.errors import StoreError
from mintaka.store import Store, engine
from mintaka.store.engine import Sql, sqlite_file, url_in_home


@pytest.fixture(params=["driver", "sqlalchemy"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A store whose transactions run on the SQLite driver, or on SQLAlchemy's own path (the
    one every other database takes)."""
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    if request.param == "sqlalchemy":
        store.transactions.is_sqlite = False
    return store


def _models(store: Store) -> list[str]:
    with store.read() as conn:
        return [row[0] for row in Sql(conn).rows("SELECT name FROM models ORDER BY name")]


def _insert(conn: object, name: str) -> None:
    Sql(conn).run(  # type: ignore[arg-type]
        "INSERT INTO models (name, owner, risk_tier, description, backend, created_at) "
        "VALUES (:name, 'o', 'low', '', 'local', 't')",
        {"name": name},
    )


def test_a_write_commits_driver_and_sqlalchemy_statements_together(store: Store) -> None:
    with store.write() as conn:
        _insert(conn, "a")
        conn.execute(
            text(
                "INSERT INTO models (name, owner, risk_tier, description, backend, created_at) "
                "VALUES ('b', 'o', 'low', '', 'local', 't')"
            )
        )
    assert _models(store) == ["a", "b"]


@pytest.mark.parametrize("with_sqlalchemy", [False, True])
def test_an_exception_rolls_the_whole_write_back(store: Store, with_sqlalchemy: bool) -> None:
    def failing_write() -> None:
        with store.write() as conn:
            _insert(conn, "a")
            if with_sqlalchemy:
                conn.execute(text("UPDATE models SET owner = 'p' WHERE name = 'a'"))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        failing_write()
    assert _models(store) == []
    with store.write() as conn:  # the connection is usable again
        _insert(conn, "c")
    assert _models(store) == ["c"]


def test_a_failed_statement_leaves_nothing_and_the_store_usable(store: Store) -> None:
    def twice() -> None:
        with store.write() as conn:
            _insert(conn, "a")
            _insert(conn, "a")

    with pytest.raises(Exception, match="UNIQUE"):
        twice()
    assert _models(store) == []
    with store.write() as conn:
        _insert(conn, "a")
    assert _models(store) == ["a"]


def test_a_write_takes_the_write_lock_before_reading(store: Store, tmp_path: Path) -> None:
    other = sqlite3.connect(tmp_path / "store.db", timeout=0, isolation_level=None)
    with store.write(), pytest.raises(sqlite3.OperationalError, match="locked"):
        other.execute("BEGIN IMMEDIATE")
    other.execute("BEGIN IMMEDIATE")
    other.execute("ROLLBACK")
    other.close()


class _Stopped(BaseException):
    """What a signal handler raises (SIGTERM stopping a rollout, say)."""


def test_an_exception_right_after_begin_leaves_no_write_lock_held(tmp_path: Path) -> None:
    """An exception landing once BEGIN IMMEDIATE has taken the write lock, before the write's
    block is entered, ends the transaction: the connection its traceback keeps alive holds no
    lock that would keep every other writer waiting."""
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    enter = engine._DriverTransaction.__enter__.__code__

    def after_begin(frame: FrameType, event: str, _arg: Any) -> Any:
        driver = frame.f_locals.get("driver")
        if event == "line" and driver is not None and driver.in_transaction:
            sys.settrace(None)
            raise _Stopped
        return after_begin

    def tracer(frame: FrameType, _event: str, _arg: Any) -> Any:
        return after_begin if frame.f_code is enter else None

    sys.settrace(tracer)
    try:
        with pytest.raises(_Stopped) as stopped, store.write():
            pass
    finally:
        sys.settrace(None)
    other = sqlite3.connect(tmp_path / "store.db", timeout=0, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # not "database is locked"
    other.execute("ROLLBACK")
    other.close()
    assert stopped.value.__traceback__ is not None  # kept alive until here
    with store.write() as conn:
        _insert(conn, "a")
    assert _models(store) == ["a"]
    store.dispose()


def test_a_read_is_a_snapshot_while_another_write_commits(store: Store) -> None:
    with store.read() as conn:
        sql = Sql(conn)
        assert sql.rows("SELECT name FROM models") == []
        with store.write() as writer:
            _insert(writer, "a")
        assert sql.rows("SELECT name FROM models") == []
    assert _models(store) == ["a"]


def test_ending_the_transaction_inside_its_block_is_an_error(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")

    def committing_inside() -> None:
        with store.write() as conn:
            _insert(conn, "a")
            conn.connection.driver_connection.execute("COMMIT")  # type: ignore[union-attr]

    with pytest.raises(StoreError, match="ended inside its block"):
        committing_inside()
    with store.write() as conn:
        _insert(conn, "b")
    assert _models(store) == ["a", "b"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_opens_its_own_connections(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    with store.write() as conn:
        _insert(conn, "parent")
    idle_before = list(store.transactions._idle)
    pid = os.fork()
    if pid == 0:  # the child: its own connection, never one of the parent's
        code = 1
        try:
            with store.write() as conn:
                if all(conn is not held for held in idle_before):
                    _insert(conn, "child")
                    code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    with store.write() as conn:
        _insert(conn, "parent-again")
    assert _models(store) == ["child", "parent", "parent-again"]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:////var/m/store.db", Path("/var/m/store.db")),
        ("sqlite+pysqlite:////var/m/store.db", Path("/var/m/store.db")),
        ("sqlite:///relative.db", Path("relative.db")),
        ("sqlite:///file:/var/m/store.db?uri=true", Path("/var/m/store.db")),
        ("sqlite:///file:///var/m/store.db?uri=true&mode=ro", Path("/var/m/store.db")),
        ("sqlite:///file://localhost/var/m/store.db?uri=true", Path("/var/m/store.db")),
        ("sqlite:///file:/var/m%2520x/store.db?uri=true", Path("/var/m x/store.db")),
        ("sqlite:///file:relative.db?uri=true", Path("relative.db")),
        ("sqlite:///file:relative.db", Path("file:relative.db")),  # not a URI without uri=true
        ("sqlite:///:memory:", None),
        ("sqlite://", None),
        ("postgresql+psycopg://u@127.0.0.1/mintaka", None),
    ],
)
def test_sqlite_file_names_the_database_file_of_any_sqlite_url(
    url: str, expected: Path | None
) -> None:
    assert sqlite_file(url) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///s.db", "{home}/s.db"),
        ("sqlite:////var/m/s.db", "/var/m/s.db"),
        ("sqlite:///file:s.db?uri=true", "file:{quoted}/s.db"),
        ("sqlite:///file:d/s.db?mode=rwc&uri=true", "file:{quoted}/d/s.db"),
        ("sqlite:///file:/var/m/s.db?uri=true", "file:/var/m/s.db"),
        ("sqlite:///file:///var/m/s.db?uri=true", "file:///var/m/s.db"),
        ("postgresql+psycopg://u@127.0.0.1/mintaka", "mintaka"),
    ],
)
def test_a_relative_sqlite_file_is_made_absolute_under_the_home(
    tmp_path: Path, url: str, expected: str
) -> None:
    home = tmp_path / "a home?#%"
    in_home = make_url(url_in_home(home, url))
    assert in_home.database == expected.format(home=home, quoted=quote(str(home), safe="/"))
    assert in_home.query == make_url(url).query
    if in_home.get_backend_name() == "sqlite":
        database = sqlite_file(in_home.render_as_string(hide_password=False))
        assert database is not None
        assert database.is_relative_to(home if "{" in expected else Path("/var/m"))
        if "{" in expected:  # SQLite opens the very file named
            Store(in_home.render_as_string(hide_password=False)).dispose()
            assert database.is_file()
