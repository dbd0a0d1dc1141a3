"""A store that cannot be opened or is held by another writer is a StoreError naming why, and a
reader never waits for a writer."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from mintaka import ConfigurationError, Platform, StoreError
from mintaka.store import Store
from mintaka.store import engine as store_engine
from mintaka.store.engine import Sql, Transactions


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("garbage", "Could not parse"),
        ("foo://bar", "Can't load plugin"),
        ("postgresql+nosuchdriver://u@h/db", "Can't load plugin"),
        ("sqlite:///{tmp}", "unable to open database file"),  # a directory
        ("sqlite:///{tmp}/junk.db", "file is not a database"),
    ],
)
def test_a_store_that_cannot_open_is_a_store_error(tmp_path: Path, url: str, says: str) -> None:
    (tmp_path / "junk.db").write_bytes(b"junk" * 1024)
    with pytest.raises(StoreError, match=f"cannot open the store at .*{says}"):
        Store(url.format(tmp=tmp_path))
    assert (tmp_path / "junk.db").read_bytes() == b"junk" * 1024  # never written to


def test_a_missing_driver_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_driver(*args: object, **kwargs: object) -> object:
        raise ModuleNotFoundError("No module named 'psycopg'")

    monkeypatch.setattr(store_engine, "create_engine", no_driver)
    with pytest.raises(StoreError, match="driver is not installed"):
        Store("postgresql+psycopg://u:secret@h/db")


def test_the_password_of_a_store_url_is_not_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*args: object, **kwargs: object) -> object:
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(store_engine, "create_engine", refused)
    with pytest.raises(StoreError) as caught:
        Store("postgresql+psycopg://u:secret@h/db")
    assert "secret" not in str(caught.value)
    assert "***" in str(caught.value)


@pytest.fixture
def held(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """A home whose store another connection holds the write lock of."""
    monkeypatch.setattr(store_engine, "BUSY_TIMEOUT_MS", 50)
    home = tmp_path / "h"
    with Platform(home, actor="dana") as plat:
        plat.create_model("credit", owner="dana")
    holder = sqlite3.connect(home / "store.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        yield home
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_reader_does_not_wait_for_a_writer(held: Path) -> None:
    started = time.monotonic()
    with Platform(held, actor="dana") as plat:
        assert [m.name for m in plat.list_models()] == ["credit"]
        assert plat.verify_audit().ok
    assert time.monotonic() - started < 5


def test_a_writer_held_off_past_the_busy_timeout_is_a_store_error(held: Path) -> None:
    with Platform(held, actor="dana") as plat, pytest.raises(StoreError, match="the store is busy"):
        plat.create_model("other", owner="dana")
    with Platform(held, actor="dana") as plat:
        assert [m.name for m in plat.list_models()] == ["credit"]


_INSERT = (
    "INSERT INTO models (name, owner, risk_tier, description, backend, created_at) "
    "VALUES ('m', 'dana', 'low', '', 'local', '2024-01-01')"
)


def _models(store: Store) -> list[str]:
    with store.read() as conn:
        return [row[0] for row in Sql(conn).rows("SELECT name FROM models ORDER BY name")]


def _write(store: Store, statements: list[str], through: str) -> None:
    """Run ``statements`` in one write transaction, on the driver or through SQLAlchemy."""
    with store.write() as conn:
        for statement in statements:
            if through == "driver":
                Sql(conn).run(statement)
            else:
                conn.execute(text(statement))


@pytest.mark.parametrize("through", ["driver", "sqlalchemy"])
def test_a_statement_the_database_refuses_is_a_store_error_and_rolls_back(
    tmp_path: Path, through: str
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    refused = r"the store at sqlite:///.*store\.db failed: no such table"
    with pytest.raises(StoreError, match=refused):
        _write(store, [_INSERT, "DELETE FROM no_such_table"], through)
    assert _models(store) == []  # the insert before it rolled back
    with pytest.raises(StoreError, match="no such table"), store.read() as conn:
        conn.execute(text("SELECT * FROM no_such_table"))
    store.dispose()


@pytest.mark.parametrize("through", ["driver", "sqlalchemy"])
def test_a_constraint_violation_still_reaches_the_caller_as_itself(
    tmp_path: Path, through: str
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    _write(store, [_INSERT], through)
    expected = sqlite3.IntegrityError if through == "driver" else SQLIntegrityError
    with pytest.raises(expected):
        _write(store, [_INSERT], through)
    assert _models(store) == ["m"]
    store.dispose()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://u:s3cr3t@127.0.0.1:1/db",
        "postgresql+psycopg://u@127.0.0.1:1/db?password=s3cr3t",
        "postgresql+psycopg:///db?host=127.0.0.1&port=1&user=u&password=s3cr3t",
        "postgresql+psycopg://u@127.0.0.1:1/db?sslmode=require&sslpassword=s3cr3t",
    ],
)
def test_a_password_anywhere_in_a_store_url_is_never_shown(url: str) -> None:
    """Nothing listens on port 1 of the loopback address: every connection is refused."""
    with pytest.raises(StoreError, match="cannot open the store at") as opening:
        Store(url)
    store = Store(url, migrate=False)
    try:
        with pytest.raises(StoreError, match=r"the store at .* failed") as reading, store.read():
            pass
        shown = [str(opening.value), str(reading.value), store.safe_url]
    finally:
        store.dispose()
    assert all("s3cr3t" not in text and "***" in text for text in shown), shown


def test_a_failed_migration_never_shows_the_store_urls_passwords(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A driver may echo the DSN it was given in its error: the migration's message masks the
    URL's passwords wherever they appear in it."""
    url = (
        "postgresql+psycopg://u:s3cr3t-user@127.0.0.1:1/db?password=s3cr3t-q&sslpassword=s3cr3t-ssl"
    )
    store = Store(url, migrate=False)

    def echoing_driver(*_: object) -> None:
        raise RuntimeError(f"cannot connect with {url} (password s3cr3t-q, sslpassword s3cr3t-ssl)")

    try:
        monkeypatch.setattr(store, "revision", lambda: None)
        event.listen(store.engine, "do_connect", echoing_driver)
        with pytest.raises(
            StoreError, match=r"migrating the store at .* failed: cannot connect"
        ) as failed:
            store.migrate()
    finally:
        store.dispose()
    shown = str(failed.value)
    assert "s3cr3t" not in shown, shown
    assert "***" in shown.split(" failed: ", 1)[1], shown


def test_migrating_a_store_that_cannot_be_reached_is_a_store_error(tmp_path: Path) -> None:
    """Nothing listens on port 1 of the loopback address; a directory is no SQLite database.
    Migrating such a store later says what opening it with migrations says."""
    for url in ("postgresql+psycopg://u:s3cr3t@127.0.0.1:1/db", f"sqlite:///{tmp_path}"):
        with pytest.raises(StoreError) as opening:
            Store(url)
        store = Store(url, migrate=False)
        try:
            with pytest.raises(StoreError) as migrating:
                store.migrate()
        finally:
            store.dispose()
        assert str(migrating.value) == str(opening.value)
        assert str(opening.value).startswith(f"cannot open the store at {store.safe_url}: ")
        assert "s3cr3t" not in str(opening.value)


def test_a_store_url_whose_port_is_not_a_number_is_a_store_error(tmp_path: Path) -> None:
    url = "postgresql+psycopg://alice:s3cr3t@127.0.0.1:notaport/db"
    assert store_engine.url_in_home(tmp_path, url) == url  # refused when the store opens
    assert not store_engine.in_memory(url)
    for opening in (lambda: Store(url), lambda: store_engine.sqlite_file(url)):
        with pytest.raises(StoreError, match=r"cannot open the store at .*notaport") as refused:
            opening()
        assert "s3cr3t" not in str(refused.value)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("alice:s3cr3t@127.0.0.1/db", "alice:***@127.0.0.1/db"),
        ("alice:s3/cr3t@127.0.0.1/db", "alice:***@127.0.0.1/db"),
        ("postgresql://alice:s3/cr3t@127.0.0.1:x/db", "postgresql://alice:***@127.0.0.1:x/db"),
    ],
)
def test_the_password_of_a_store_url_that_cannot_be_parsed_is_not_shown(
    url: str, masked: str
) -> None:
    with pytest.raises(StoreError, match="cannot open the store at") as refused:
        Store(url)
    shown = str(refused.value)
    assert "s3" not in shown, shown
    assert "cr3t" not in shown, shown
    assert masked in shown, shown


def test_a_driver_echoing_its_dsn_when_the_store_does_not_open_shows_no_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The driver's words for why the store did not open may repeat the URL it was given:
    its passwords are masked there too, not only in the URL the message names."""
    from sqlalchemy.exc import ArgumentError

    url = "postgresql+psycopg://alice:s3cr3t@127.0.0.1:1/db?sslpassword=k3yp4ss"

    def echoing(given: str, sync: object) -> None:
        raise ArgumentError(f"could not use {given} (password s3cr3t, key k3yp4ss)")

    monkeypatch.setattr(store_engine, "make_engine", echoing)
    with pytest.raises(StoreError, match="cannot open the store at") as caught:
        Store(url)
    assert "s3cr3t" not in str(caught.value)
    assert "k3yp4ss" not in str(caught.value)


@pytest.mark.parametrize(("write", "level"), [(False, "REPEATABLE READ"), (True, "READ COMMITTED")])
def test_a_database_without_the_isolation_level_needed_is_a_store_error(
    tmp_path: Path, write: bool, level: str
) -> None:
    # pysqlite offers neither level, as some server databases lack one; it stands in for them.
    engine = create_engine(f"sqlite:///{tmp_path / 'other.db'}")
    engine.dialect.name = "other"
    transactions = Transactions(engine)
    try:
        with (
            pytest.raises(StoreError, match=f"isolation level Mintaka needs \\({level}\\)"),
            transactions.write() if write else transactions.read(),
        ):
            pass
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "url",
    ["sqlite:///file:?uri=true", "sqlite:///file:?mode=rwc&uri=true", "sqlite:///file://?uri=true"],
)
def test_a_uri_filename_naming_no_file_is_refused_as_in_memory(url: str) -> None:
    # SQLite opens an empty file name as a private temporary database, gone at exit.
    with pytest.raises(ConfigurationError, match="in-memory SQLite database"):
        Store(url)
