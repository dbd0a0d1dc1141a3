"""Opening the control-plane store: engine, durability settings, migrations, transactions.

The default store is SQLite in WAL mode with ``synchronous=NORMAL``: a committed transaction
survives a crash of the process (SIGKILL included); after an operating-system crash or power loss
the most recent commits can be lost, never half-applied. ``MINTAKA_STORE_SYNC=FULL`` fsyncs every
commit for power-loss durability, at a cost per write. The WAL is checkpointed every 8,192 pages
(32 MiB) rather than SQLite's 1,000, which changes how often the database file is written, not
what a commit guarantees. Any other SQLAlchemy URL can be configured with ``MINTAKA_STORE_URL``;
the SQL is kept portable, but only SQLite is tested today.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
import weakref
from collections.abc import Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from sqlalchemy import (
    URL,
    Connection,
    Engine,
    TextClause,
    create_engine,
    event,
    inspect,
    make_url,
    text,
)
from sqlalchemy.exc import ArgumentError, DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.util import asbool

from mintaka.errors import ConfigurationError, StoreError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
SYNC_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
HEAD_REVISION = "0011"
WAL_AUTOCHECKPOINT = 8192  # pages (32 MiB of WAL at 4 KiB pages)
BUSY_TIMEOUT_MS = 30_000  # how long a writer waits for the write lock
# The PostgreSQL advisory lock a migration holds for its transaction ("mintaka" in ASCII), so
# that processes opening a new store at once take turns, and all but the first find it migrated.
MIGRATION_LOCK_KEY = 0x6D696E74616B61
# Alembic keeps the migration it runs in a module-level proxy, so migrations in one process,
# of one store or several, take turns.
_MIGRATING = threading.Lock()


def sync_mode(sync: str | None = None) -> str:
    """The SQLite ``synchronous`` mode: ``sync``, else ``MINTAKA_STORE_SYNC``, else NORMAL."""
    mode = (sync or os.environ.get("MINTAKA_STORE_SYNC", "NORMAL")).upper()
    if mode not in SYNC_MODES:
        raise ConfigurationError(f"MINTAKA_STORE_SYNC must be one of {SYNC_MODES}")
    return mode


DEFAULT_STORE_FILE = "store.db"


def default_url(home: Path) -> str:
    return f"sqlite:///{home / DEFAULT_STORE_FILE}"


def url_in_home(home: Path, url: str) -> str:
    """``url`` with a relative SQLite file made absolute under ``home``: a store URL names that
    home's store wherever the command runs from. A SQLite URI filename (``file:NAME?uri=true``)
    keeps its scheme and query around the absolute path. Other URLs are returned as they are."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        return url  # refused with its reason when the store opens
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return url
    uri = _uri_filename(parsed)
    if uri is not None:
        prefix, path, rest = uri
        if prefix != "file:" or not path or path.startswith("/"):
            return url  # absolute, or no file at all
        absolute = f"file:{quote(str(home), safe='/')}/{path}{rest}"
        return parsed.set(database=absolute).render_as_string(hide_password=False)
    if Path(database).is_absolute():
        return url
    return parsed.set(database=str(home / database)).render_as_string(hide_password=False)


def _uri_filename(parsed: URL) -> tuple[str, str, str] | None:
    """A SQLite URI filename (``uri=true`` in the query, a database starting ``file:``) split
    into its scheme and authority (``file:`` or ``file://HOST``), its path as written (still
    percent-encoded) and the query and fragment after it; None for a plain filename, which
    SQLite takes literally however it starts."""
    database = parsed.database or ""
    uri = parsed.query.get("uri", False)
    if not database.startswith("file:") or not asbool(uri[-1] if isinstance(uri, tuple) else uri):
        return None
    rest = database.removeprefix("file:")
    end = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    path, after = rest[:end], rest[end:]
    prefix = "file:"
    if path.startswith("//"):  # an authority: empty or localhost, then an absolute path
        slash = path.find("/", 2)
        slash = len(path) if slash < 0 else slash
        prefix, path = f"file:{path[:slash]}", path[slash:]
    return prefix, path, after


def in_memory(url: str) -> bool:
    """Whether ``url`` names an in-memory SQLite database (``sqlite://``, ``:memory:``, or a URI
    filename with ``mode=memory``), or a temporary one, which is as lost at exit (a URI
    filename naming no file)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):  # refused with its reason when the store opens
        return False
    if parsed.get_backend_name() != "sqlite":
        return False
    database = parsed.database or ""
    return (
        database in ("", ":memory:")
        or database.startswith("file::memory:")
        or "mode=memory" in database
        or parsed.query.get("mode") == "memory"
        or ((uri := _uri_filename(parsed)) is not None and not uri[1])
    )


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite URL (any driver, e.g. ``sqlite+pysqlite:///``); None for
    another database or an in-memory one. A URL that cannot be parsed is a ``StoreError``."""
    parsed = _parsed(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    uri = _uri_filename(parsed)
    if uri is None:
        return Path(parsed.database)
    path = uri[1]
    return Path(unquote(path)) if path else None  # ``file:`` alone is a temporary database


def _parsed(url: str) -> URL:
    """``url`` parsed, or a ``StoreError`` naming it (passwords masked) and why it cannot be: a
    malformed URL, or a port that is not a number, which SQLAlchemy's parser lets through as a
    bare ``ValueError``."""
    try:
        return make_url(url)
    except (ArgumentError, ValueError) as exc:
        raise _cannot_open(url, exc) from exc


def make_engine(url: str, sync: str = "NORMAL") -> Engine:
    """An engine whose SQLite connections use WAL, the given sync mode and explicit BEGINs.

    Writers ask for ``BEGIN IMMEDIATE`` (execution option ``mintaka_write``) so they take the
    write lock before reading anything they then update; readers use a plain deferred ``BEGIN``.
    """
    database = sqlite_file(url)
    if database is not None:
        database.parent.mkdir(parents=True, exist_ok=True)
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
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        # Lineage queries touch many pages: a 64 MiB page cache (the default is 2 MiB) keeps them
        # in memory, and temporary b-trees (UNION in recursive walks) stay off the disk.
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.execute("PRAGMA temp_store=MEMORY")
        # Checkpoint the WAL every WAL_AUTOCHECKPOINT pages rather than SQLite's 1,000: a
        # checkpoint writes each changed page once and fsyncs twice, and the pages a write
        # touches (index roots and tails, the audit head) repeat from one commit to the next,
        # so a longer interval writes far less per commit.
        cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        driver = conn.connection.driver_connection
        if driver.in_transaction:  # type: ignore[union-attr]
            return  # begun on the driver by ``Transactions``; SQLAlchemy's joins it
        immediate = conn.get_execution_options().get("mintaka_write", False)
        driver.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")  # type: ignore[union-attr]

    return engine


def _write_options(engine: Engine) -> dict[str, Any]:
    """The execution options of a write transaction on ``engine``: READ COMMITTED whatever the
    server's default, since writers lock the rows (or the audit chain) they update and then
    read them again, which under REPEATABLE READ or SERIALIZABLE fails with a serialization
    error whenever another writer committed in between. SQLite has no such level: its writers
    hold the one write lock from BEGIN on."""
    options: dict[str, Any] = {"mintaka_write": True}
    if engine.dialect.name != "sqlite":
        options["isolation_level"] = "READ COMMITTED"
    return options


def _snapshot_options(engine: Engine) -> dict[str, Any]:
    """The execution options that make a transaction on ``engine`` a read-only snapshot (on
    SQLite, whose levels are others, its plain deferred BEGIN already is one)."""
    if engine.dialect.name == "sqlite":
        return {}
    options: dict[str, Any] = {"isolation_level": "REPEATABLE READ"}
    if engine.dialect.name == "postgresql":
        options["postgresql_readonly"] = True
    return options


# The read snapshot that answers every ``read`` of its ``Transactions`` in this thread or task
# while ``Transactions.snapshot`` holds it.
_SNAPSHOT: ContextVar[tuple[Transactions, Connection] | None] = ContextVar(
    "mintaka.snapshot", default=None
)

# Where ``transaction_scoped`` keeps its dict in a connection's ``info``.
_SCOPED = "mintaka.transaction"


def transaction_scoped(conn: Connection) -> dict[str, Any]:
    """A dict that lives as long as ``conn``'s current transaction (``Transactions`` drops it
    when the transaction ends, committed or not; a connection outlives its transactions)."""
    scoped: dict[str, Any] = conn.info.setdefault(_SCOPED, {})
    return scoped


class Transactions:
    """Write and read transactions on one engine.

    On SQLite a transaction runs on a SQLAlchemy ``Connection`` kept from one transaction to the
    next (a few idle ones, shared by all threads), and is begun and ended on the driver itself.
    Checking a connection out of the pool, building a ``Connection`` and running SQLAlchemy's
    transaction machinery cost about 25 µs per transaction, more than SQLite takes for a small
    write. The semantics are those of ``engine.connect()`` + ``conn.begin()``: a writer takes the
    write lock up front (``BEGIN IMMEDIATE``), an exception rolls everything back, and
    SQLAlchemy statements run inside the block join the transaction (SQLAlchemy's own
    transaction object then ends with it). The block must not commit or begin on the connection
    itself. Other databases use the plain SQLAlchemy path.
    """

    IDLE = 4  # connections kept between transactions; more are returned to the pool

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._idle: list[Connection] = []
        self._inherited: list[Connection] = []
        _FORK_AWARE.add(self)

    def write(self) -> AbstractContextManager[Connection]:
        """A write transaction; on SQLite it takes the write lock up front (BEGIN IMMEDIATE),
        elsewhere it is READ COMMITTED whatever the server's default (``_write_options``)."""
        if self.is_sqlite:
            return _DriverTransaction(self, "BEGIN IMMEDIATE")
        return self._plain(write=True)

    def read(self) -> AbstractContextManager[Connection]:
        """A read-only snapshot: every statement in it sees the store as of its first one, so
        what it reads of several tables is consistent. SQLite's deferred BEGIN gives that; other
        databases' default (READ COMMITTED on PostgreSQL) lets each statement see newer commits,
        so there the transaction is REPEATABLE READ and READ ONLY. Inside ``snapshot`` it is
        that snapshot's transaction."""
        held = _SNAPSHOT.get()
        if held is not None and held[0] is self:
            return nullcontext(held[1])
        if self.is_sqlite:
            return _DriverTransaction(self, "BEGIN")
        return self._plain(write=False)

    @contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """One read snapshot that answers every ``read`` made in the block (in this thread or
        task), so that a result assembled by several readers, each opening its own read, shows
        the store as of one instant. Writes in the block are not seen by its reads."""
        held = _SNAPSHOT.get()
        if held is not None and held[0] is self:
            yield held[1]
            return
        with self.read() as conn:
            token = _SNAPSHOT.set((self, conn))
            try:
                yield conn
            finally:
                _SNAPSHOT.reset(token)

    @contextmanager
    def _plain(self, *, write: bool) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                self._isolate(conn, write=write)
                try:
                    with conn.begin():
                        yield conn
                finally:
                    conn.info.pop(_SCOPED, None)
        except (DBAPIError, sqlite3.Error) as exc:
            mapped = _store_error(exc, self.engine)
            if mapped is None:
                raise
            raise mapped from exc

    def _isolate(self, conn: Connection, *, write: bool) -> None:
        """Give ``conn`` the isolation level of a write or a read snapshot; a database that has
        no such level is a ``StoreError`` naming it, not a driver's argument error."""
        options = _write_options(self.engine) if write else _snapshot_options(self.engine)
        try:
            conn.execution_options(**options)
        except ArgumentError as exc:
            kind = "write" if write else "read snapshot"
            raise StoreError(
                f"the store at {_shown(self.engine.url)} cannot run a {kind} at the isolation "
                f"level Mintaka needs ({options.get('isolation_level')}): {exc}"
            ) from exc

    def _take(self) -> Connection:
        try:
            conn = self._idle.pop()
        except IndexError:
            return self.engine.connect()
        if conn._echo != self.engine._should_log_info():
            # SQL logging was switched since this connection was made; a new one follows it.
            conn.close()
            return self.engine.connect()
        return conn

    def _end(self, conn: Connection, driver: Any, *, commit: bool) -> None:
        conn.info.pop(_SCOPED, None)
        try:
            if conn.in_transaction():  # SQLAlchemy joined: it ends both
                if commit:
                    conn.commit()
                else:
                    conn.rollback()
            elif commit:
                if not driver.in_transaction:
                    raise StoreError("the transaction was ended inside its block")
                driver.execute("COMMIT")
            elif driver.in_transaction:
                driver.execute("ROLLBACK")
        except BaseException:
            try:
                if not conn.invalidated and driver.in_transaction:
                    driver.execute("ROLLBACK")
            finally:
                conn.invalidate()
                conn.close()
            raise
        if conn.invalidated or len(self._idle) >= self.IDLE:
            conn.close()
        else:
            self._idle.append(conn)

    def close(self) -> None:
        """Return the idle connections to the pool."""
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _forget_after_fork(self) -> None:
        # A forked child must not use its parent's SQLite connections, nor close them.
        self._inherited.extend(self._idle)
        self._idle = []
        self.engine.dispose(close=False)


_FORK_AWARE: weakref.WeakSet[Transactions] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    global _MIGRATING
    # A lock another thread of the parent held at the fork would never be released here.
    _MIGRATING = threading.Lock()
    for transactions in list(_FORK_AWARE):
        transactions._forget_after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _store_error(exc: BaseException, engine: Engine) -> StoreError | None:
    """The ``StoreError`` a database error raised in a transaction becomes, naming the store
    (password masked) and the database's own words, so that no driver's exception type leaks
    out of the store; None for other exceptions and for a constraint violation, which callers
    turn into a ``Conflict`` where a race or a duplicate is expected."""
    if not isinstance(exc, DBAPIError | sqlite3.Error) or isinstance(
        exc, IntegrityError | sqlite3.IntegrityError
    ):
        return None
    return StoreError(f"the store at {_shown(engine.url)} failed: {_reason(exc)}")


class _DriverTransaction:
    """One SQLite transaction begun and ended on the driver (see ``Transactions``)."""

    __slots__ = ("_begin", "_conn", "_driver", "_owner")

    def __init__(self, owner: Transactions, begin: str) -> None:
        self._owner = owner
        self._begin = begin

    def __enter__(self) -> Connection:
        try:
            conn = self._owner._take()
        except DBAPIError as exc:
            mapped = _store_error(exc, self._owner.engine)
            if mapped is None:
                raise
            raise mapped from exc
        try:
            driver = conn.connection.driver_connection
            try:
                driver.execute(self._begin)  # type: ignore[union-attr]
            except sqlite3.Error as exc:
                if "locked" in str(exc):
                    raise StoreError(
                        f"the store is busy: another process held its write lock longer than "
                        f"{BUSY_TIMEOUT_MS // 1000} s ({exc}); try again"
                    ) from exc
                raise StoreError(f"the store cannot begin a transaction: {exc}") from exc
            self._conn = conn
            self._driver = driver
        except BaseException:
            # Anything raised once the transaction may have begun (Ctrl-C, or a signal handler's
            # exception, landing right after BEGIN) ends it here: no block will, and a held
            # connection would keep SQLite's write lock from every other writer.
            _discard(conn)
            raise
        return conn

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, *_: object
    ) -> None:
        engine = self._owner.engine
        try:
            self._owner._end(self._conn, self._driver, commit=kind is None)
        except (DBAPIError, sqlite3.Error) as exc:
            mapped = _store_error(exc, engine)
            if mapped is None:
                raise
            raise mapped from exc
        mapped = None if error is None else _store_error(error, engine)
        if mapped is not None:
            raise mapped from error


def _discard(conn: Connection) -> None:
    """Roll back the transaction ``conn`` may be in, and close it."""
    try:
        driver = conn.connection.driver_connection
        if driver is not None and driver.in_transaction:
            driver.execute("ROLLBACK")
    except Exception:  # closing it ends the transaction all the same
        conn.invalidate()
    finally:
        conn.close()


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

    def run(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        """Run one statement; returns the number of rows it changed."""
        if self._cursor is not None:
            return int(self._cursor.execute(sql, params or {}).rowcount)
        return int(self._conn.execute(_text(sql), dict(params or {})).rowcount)

    def insert_id(self, sql: str, params: Mapping[str, Any]) -> int | None:
        """Run one ``INSERT`` into a table keyed by an integer ``id``; the new row's id, or None
        when it inserted nothing (``ON CONFLICT DO NOTHING``)."""
        if self._cursor is not None:
            cursor = self._cursor.execute(sql, params)
            return int(cursor.lastrowid) if cursor.rowcount == 1 and cursor.lastrowid else None
        row = self._conn.execute(_text(sql + " RETURNING id"), dict(params)).first()
        return None if row is None else int(row[0])

    def run_many(self, sql: str, params: Iterable[Mapping[str, Any]]) -> None:
        batch = [dict(p) for p in params]
        if not batch:
            return
        if self._cursor is not None:
            self._cursor.executemany(sql, batch)
        else:
            self._conn.execute(_text(sql), batch)


# A password in a URL's userinfo, and the query parameters libpq also takes one from.
_USERINFO_PASSWORD = re.compile(r"(?P<head>//[^/?#@:]*):[^/?#@]*@")
# The password of a URL SQLAlchemy cannot parse, scheme or not (``alice:pw@host/db``), up to the
# ``@`` that ends its userinfo, as SQLAlchemy's own parser reads it: ``/`` may be part of it.
_UNPARSED_PASSWORD = re.compile(r"^(?P<head>(?:[^:/?#@]*://)?[^/?#@:]*):[^@]*@")
_SECRET_QUERY = re.compile(r"(?P<key>[?&](?:ssl)?password=)[^&#]*", re.IGNORECASE)


def _shown(url: str | URL) -> str:
    """``url`` for messages and logs, its passwords masked: the userinfo's, and the values of
    ``password`` and ``sslpassword`` query parameters, which a driver takes as secrets too."""
    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except (SQLAlchemyError, ValueError):
        masked = _UNPARSED_PASSWORD.sub(r"\g<head>:***@", str(url))
        return repr(_SECRET_QUERY.sub(r"\g<key>***", masked))
    return _SECRET_QUERY.sub(r"\g<key>***", shown)


def _without_secrets(message: str, url: URL) -> str:
    """``message`` with ``url``'s passwords masked wherever they appear in it: a driver's error
    may echo the DSN it was given, whole or in parts."""
    given = [url.password, url.query.get("password"), url.query.get("sslpassword")]
    secrets = {v for g in given for v in ((g,) if isinstance(g, str) else g or ()) if v}
    shown = _SECRET_QUERY.sub(r"\g<key>***", _USERINFO_PASSWORD.sub(r"\g<head>:***@", message))
    for secret in sorted(secrets, key=len, reverse=True):  # a longer one may hold a shorter
        shown = shown.replace(secret, "***")
    return shown


def _cannot_open(url: str | URL, exc: BaseException) -> StoreError:
    """The ``StoreError`` for a store that did not open: its URL and the driver's words, the
    URL's passwords masked in both (a driver may echo the DSN it was given)."""
    reason = _reason(exc)
    try:
        parsed = url if isinstance(url, URL) else make_url(url)
    except (ArgumentError, ValueError):
        parsed = None
    if parsed is not None:
        reason = _without_secrets(reason, parsed)
    return StoreError(f"cannot open the store at {_shown(url)}: {reason}")


def _reason(exc: BaseException) -> str:
    """The driver's or the OS's own words for why the store did not open."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        exc = exc.orig
    if isinstance(exc, ImportError):
        return f"{exc} (the database's driver is not installed)"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


class Store:
    """The control-plane store: one engine, write transactions that serialise, migrations."""

    def __init__(self, url: str, *, sync: str | None = None, migrate: bool = True) -> None:
        self.url = url
        self.sync = sync_mode(sync)
        if in_memory(url):
            raise ConfigurationError(
                f"the store URL {_shown(url)} is an in-memory SQLite database, which every "
                "connection sees empty and which is lost at exit: name a file "
                "(sqlite:///store.db is in the home) or a server"
            )
        try:
            self.engine = make_engine(url, self.sync)
        except (SQLAlchemyError, ImportError, OSError) as exc:
            raise _cannot_open(url, exc) from exc
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        if self.engine.dialect.name == "postgresql":
            from mintaka.store.schema import use_postgresql_options

            use_postgresql_options()
        self.transactions = Transactions(self.engine)
        if migrate:
            try:
                self.migrate()
            except (SQLAlchemyError, sqlite3.Error, OSError) as exc:
                self.dispose()
                raise _cannot_open(url, exc) from exc
            except BaseException:
                self.dispose()
                raise

    def durability(self) -> str:
        """A one-line statement of the durability mode in force."""
        if not self.is_sqlite:
            return f"{self.engine.dialect.name}: server-defined durability"
        with self.engine.connect() as conn:
            journal = conn.exec_driver_sql("PRAGMA journal_mode").scalar()
            sync = conn.exec_driver_sql("PRAGMA synchronous").scalar()
        names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
        return f"sqlite journal_mode={journal} synchronous={names.get(int(sync or 0), sync)}"

    def write(self) -> AbstractContextManager[Connection]:
        """A write transaction; on SQLite it takes the write lock up front (BEGIN IMMEDIATE)."""
        return self.transactions.write()

    def read(self) -> AbstractContextManager[Connection]:
        """A read-only snapshot."""
        return self.transactions.read()

    def snapshot(self) -> AbstractContextManager[Connection]:
        """One read snapshot answering every ``read`` in the block (``Transactions.snapshot``)."""
        return self.transactions.snapshot()

    # -- migrations -------------------------------------------------------------------------

    def revision(self) -> str | None:
        with self.engine.connect() as conn:
            if not inspect(conn).has_table("alembic_version"):
                return None
            value = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            return None if value is None else str(value)

    def migrate(self, target: str = "head") -> None:
        """Bring the schema to ``target``; a no-op when it is already there. A store that
        cannot be reached to read its revision is a ``StoreError`` worded as when it is opened
        (password masked), so no driver's exception type leaks out."""
        try:
            current = self.revision()
        except (SQLAlchemyError, sqlite3.Error, OSError) as exc:
            raise _cannot_open(self.url, exc) from exc
        if target in ("head", HEAD_REVISION) and current == HEAD_REVISION:
            return
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        if current is not None:
            self._refuse_a_newer_revision(config, current)
        try:
            # Alembic begins and commits on the connection itself: the plain SQLAlchemy path.
            # It reads the revision again inside the transaction, after the lock, so a store
            # another process or thread migrated meanwhile is left as it is.
            with _MIGRATING, self.engine.connect() as conn:
                conn.execution_options(**_write_options(self.engine))
                with conn.begin():
                    if self.engine.dialect.name == "postgresql":
                        conn.execute(
                            text("SELECT pg_advisory_xact_lock(:key)"),
                            {"key": MIGRATION_LOCK_KEY},
                        )
                    config.attributes["connection"] = conn
                    command.upgrade(config, target)
        except Exception as exc:
            reason = _without_secrets(str(exc), self.engine.url)
            raise StoreError(f"migrating the store at {self.safe_url} failed: {reason}") from exc

    def _refuse_a_newer_revision(self, config: Config, current: str) -> None:
        """A ``StoreError`` when the store is at a revision this release has no migration for:
        one made by a newer Mintaka, which this one must leave as it is."""
        from alembic.script import ScriptDirectory

        known = {script.revision for script in ScriptDirectory.from_config(config).walk_revisions()}
        if current not in known:
            raise StoreError(
                f"the store at {self.safe_url} is at revision {current!r}, made by a newer "
                f"Mintaka: this release knows revisions up to {HEAD_REVISION}; use that "
                "release or a later one"
            )

    @property
    def safe_url(self) -> str:
        """The URL with any password masked, for messages and logs."""
        return _shown(self.engine.url)

    def dispose(self) -> None:
        self.transactions.close()
        self.engine.dispose()
