"""Opening the control-plane store: engine, durability settings, migrations, transactions.

The default store is SQLite in WAL mode with ``synchronous=NORMAL``: a committed transaction
survives a crash of the process (SIGKILL included); after an operating-system crash or power loss
the most recent commits can be lost, never half-applied. ``MINTAKA_STORE_SYNC=FULL`` fsyncs every
commit for power-loss durability, at a cost per write. Any other SQLAlchemy URL can be configured
with ``MINTAKA_STORE_URL``; the SQL is kept portable, but only SQLite is tested today.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, TextClause, create_engine, event, inspect, text

from mintaka.errors import ConfigurationError, StoreError

MIGRATIONS = Path(__file__).with_name("migrations")
SYNC_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
HEAD_REVISION = "0006"


def default_url(home: Path) -> str:
    return f"sqlite:///{home / 'store.db'}"


def make_engine(url: str, sync: str = "NORMAL") -> Engine:
    """An engine whose SQLite connections use WAL, the given sync mode and explicit BEGINs.

    Writers ask for ``BEGIN IMMEDIATE`` (execution option ``mintaka_write``) so they take the
    write lock before reading anything they then update; readers use a plain deferred ``BEGIN``.
    """
    if url.startswith("sqlite:///") and url != "sqlite:///:memory:":
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    # Every unit of work ends in an explicit commit or rollback, so the pool need not issue one
    # more on check-in.
    engine = create_engine(url, pool_reset_on_return=None)
    if engine.dialect.name != "sqlite":
        return engine

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # BEGIN is issued by the listener below
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={sync}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        # Lineage queries touch many pages: a 64 MiB page cache (the default is 2 MiB) keeps them
        # in memory, and temporary b-trees (UNION in recursive walks) stay off the disk.
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get("mintaka_write", False)
        # Straight to the driver: this runs once per transaction, on every hot path.
        conn.connection.driver_connection.execute(  # type: ignore[union-attr]
            "BEGIN IMMEDIATE" if immediate else "BEGIN"
        )

    return engine


@lru_cache(maxsize=512)
def _text(sql: str) -> TextClause:
    return text(sql)


class Sql:
    """Hand-written SQL with ``:name`` parameters, run inside a caller's transaction.

    On SQLite the text goes straight to the driver's cursor: on the registry's hot paths,
    building and compiling SQLAlchemy statements costs far more than SQLite takes to run them.
    On other dialects the same text runs through SQLAlchemy's ``text()``, so it must be portable
    SQL, and JSON values are passed and compared as their serialised text.
    """

    __slots__ = ("_conn", "_cursor", "is_sqlite")

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.is_sqlite = conn.dialect.name == "sqlite"
        self._cursor = (
            conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
            if self.is_sqlite
            else None
        )

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        if self._cursor is not None:
            return list(self._cursor.execute(sql, params or {}).fetchall())
        return [tuple(row) for row in self._conn.execute(_text(sql), dict(params or {}))]

    def one(self, sql: str, params: Mapping[str, Any] | None = None) -> tuple[Any, ...] | None:
        if self._cursor is not None:
            row = self._cursor.execute(sql, params or {}).fetchone()
            return None if row is None else tuple(row)
        found = self._conn.execute(_text(sql), dict(params or {})).first()
        return None if found is None else tuple(found)

    def run(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        if self._cursor is not None:
            self._cursor.execute(sql, params or {})
        else:
            self._conn.execute(_text(sql), dict(params or {}))

    def run_many(self, sql: str, params: Iterable[Mapping[str, Any]]) -> None:
        batch = [dict(p) for p in params]
        if not batch:
            return
        if self._cursor is not None:
            self._cursor.executemany(sql, batch)
        else:
            self._conn.execute(_text(sql), batch)


class Store:
    """The control-plane store: one engine, write transactions that serialise, migrations."""

    def __init__(self, url: str, *, sync: str | None = None, migrate: bool = True) -> None:
        self.url = url
        self.sync = (sync or os.environ.get("MINTAKA_STORE_SYNC", "NORMAL")).upper()
        if self.sync not in SYNC_MODES:
            raise ConfigurationError(f"MINTAKA_STORE_SYNC must be one of {SYNC_MODES}")
        self.engine = make_engine(url, self.sync)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        if migrate:
            self.migrate()

    def durability(self) -> str:
        """A one-line statement of the durability mode in force."""
        if not self.is_sqlite:
            return f"{self.engine.dialect.name}: server-defined durability"
        with self.engine.connect() as conn:
            journal = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
            sync = conn.exec_driver_sql("PRAGMA synchronous").scalar()
        names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
        return f"sqlite journal_mode={journal} synchronous={names.get(int(sync or 0), sync)}"

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction; on SQLite it takes the write lock up front (BEGIN IMMEDIATE)."""
        with self.engine.connect() as conn:
            conn.execution_options(mintaka_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only snapshot."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    # -- migrations -------------------------------------------------------------------------

    def revision(self) -> str | None:
        with self.engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            value = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            return None if value is None else str(value)

    def migrate(self, target: str = "head") -> None:
        """Bring the schema to ``target``; a no-op when it is already there."""
        if target in ("head", HEAD_REVISION) and self.revision() == HEAD_REVISION:
            return
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self.write() as conn:
                config.attributes["connection"] = conn
                command.upgrade(config, target)
        except Exception as exc:
            raise StoreError(f"migrating the store at {self.safe_url} failed: {exc}") from exc

    @property
    def safe_url(self) -> str:
        """The URL with any password masked, for messages and logs."""
        return self.engine.url.render_as_string(hide_password=True)

    def dispose(self) -> None:
        self.engine.dispose()
