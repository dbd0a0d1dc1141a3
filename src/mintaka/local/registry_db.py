"""The local backend's own state: what a cloud registry would hold.

These tables are kept apart from the control-plane tables on purpose (in the store's database or
in a file of their own, see ``LocalBackend``): the local backend is a cloud like any other, so its
state can be changed behind Mintaka's back and ``sync`` must notice. ``import_registry_file``
moves the file an older home kept them in into the store's database.
"""

from __future__ import annotations

import logging
import sqlite3
import uuid
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    inspect,
    select,
    update,
)
from sqlalchemy.schema import CreateColumn

from mintaka.errors import Conflict, StoreError
from mintaka.store.engine import Sql, Transactions

log = logging.getLogger(__name__)

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
    # Which endpoint of this name the row is: drawn anew when one is created, so one deleted and
    # made again is told apart from the one it replaces whatever their config versions. Rows
    # from before it was recorded get the empty one when the column is added, and then a fresh
    # one of their own (``identify_endpoints``).
    Column("incarnation", String(32), nullable=False, server_default=""),
    # 1 where Mintaka made the endpoint (through this backend's create_endpoint): the marker
    # discovery reports as ``managed``, as a cloud's tag is. Rows another tool wrote, or from
    # before it was recorded, hold 0.
    Column("managed", Integer, nullable=False, server_default="0"),
)


def new_incarnation() -> str:
    """An endpoint's identity. Random, not from the injected id factory: factories seeded
    alike in two processes would repeat each other, and no two endpoints may share one."""
    return uuid.uuid4().hex


def unidentified_endpoints(conn: Connection) -> list[str]:
    """The endpoints whose rows hold the empty identity: made by a Mintaka that recorded none."""
    return list(
        conn.execute(
            select(local_endpoints.c.name).where(local_endpoints.c.incarnation == "")
        ).scalars()
    )


def identify_endpoints(conn: Connection) -> int:
    """Give each endpoint row with the empty identity a fresh one of its own; how many were
    given one. Run in a write transaction, a second run (another process opening the same home)
    finds none left, so no row's identity changes twice."""
    names = unidentified_endpoints(conn)
    for name in names:
        conn.execute(
            update(local_endpoints)
            .where(local_endpoints.c.name == name, local_endpoints.c.incarnation == "")
            .values(incarnation=new_incarnation())
        )
    return len(names)


def missing_columns(conn: Connection) -> list[tuple[Table, Column[Any]]]:
    """The columns of this schema that the tables ``conn`` holds lack (an older home's)."""
    found = inspect(conn)
    present = set(found.get_table_names())
    missing: list[tuple[Table, Column[Any]]] = []
    for table in metadata.sorted_tables:
        if table.name in present:
            held = {column["name"] for column in found.get_columns(table.name)}
            missing.extend((table, column) for column in table.c if column.name not in held)
    return missing


def add_missing_columns(conn: Connection) -> None:
    """Bring an older home's tables up to this schema in place: each column added since is
    added with its server default, which fills the rows already there."""
    for table, column in missing_columns(conn):
        if column.server_default is None and not column.nullable:
            raise StoreError(
                f"the local backend's table {table.name} lacks column {column.name}, "
                "which has no default to fill its rows with"
            )
        ddl = CreateColumn(column).compile(dialect=conn.dialect)
        conn.exec_driver_sql(f'ALTER TABLE "{table.name}" ADD COLUMN {ddl}')


# -- an older home's registry file ------------------------------------------------------------

# SQLite's companions of a database file, renamed with it so that the kept copy stays whole.
SIBLINGS = ("-wal", "-shm", "-journal")


@dataclass(frozen=True)
class _OldRows:
    table: Table
    columns: list[str]
    rows: list[tuple[Any, ...]]


def _listed(columns: list[str]) -> str:
    """``columns`` quoted, as a SELECT or INSERT column list."""
    return ", ".join(f'"{c}"' for c in columns)


def import_registry_file(transactions: Transactions, path: Path, now: datetime) -> Path | None:
    """Copy the rows of the registry file ``path`` into the ``local_*`` tables of the store
    database that ``transactions`` writes, then rename the file out of the way.

    All tables are copied in one store transaction, and the file is renamed (kept, with its
    ``-wal``/``-shm``, as ``registry.db.imported-<UTC time>``) only after it commits. A row the
    store already holds as it is in the file is skipped, so a second run after a crash between
    the commit and the rename inserts nothing and only renames. A row the store holds with other
    content refuses the import (``Conflict``), as does a file whose tables have columns this
    schema lacks or lack a required one (``StoreError``); either leaves both databases as they
    were. The transaction takes the store's write lock first (``BEGIN IMMEDIATE``), so of two
    processes opening the same home the second finds the rows, or the file gone. The file is
    held exclusively while it is read and its rows inserted, and a file another process has open
    (an older Mintaka still running) refuses the import with ``StoreError`` and changes nothing.
    Returns where the file is kept, or None when another process retired it first (found gone
    on opening, or renamed aside between this open and its lock, which SQLite reports as a disk
    I/O error).
    """
    with transactions.write() as conn:
        old = _open_existing(path)
        if old is None:
            return None
        try:
            try:
                _lock_out_other_processes(old, path)
            except StoreError:
                if not path.exists():
                    return None  # retired by the process whose import committed as it opened
                raise
            found = _read_tables(old, path)
            imported = _insert_missing(Sql(conn), found, path)
        finally:
            old.close()  # closing the last connection checkpoints the file's WAL into it
    kept = _retire(path, now)
    if kept is not None:
        log.info(
            "imported %d rows of %s into the store's database; kept it as %s",
            imported,
            path,
            kept.name,
        )
    return kept


def _open_existing(path: Path) -> sqlite3.Connection | None:
    """A connection to ``path`` (never creating it), or None when the file is gone."""
    try:
        conn = sqlite3.connect(
            f"{path.absolute().as_uri()}?mode=rw", uri=True, timeout=30, isolation_level=None
        )
    except sqlite3.OperationalError as exc:
        if not path.exists():
            return None
        raise StoreError(f"cannot open the local registry file {path}: {exc}") from exc
    return conn


def _lock_out_other_processes(old: sqlite3.Connection, path: Path) -> None:
    """Hold the file exclusively until ``old`` closes, or refuse with ``StoreError`` when
    another connection has it open: an older Mintaka still running against this home would go
    on writing registrations into the file after it is renamed aside, and they would be lost to
    the store. In WAL mode (how Mintaka opens it) every open connection holds a lock that makes
    this fail, idle or not; a connection in rollback-journal mode is seen only while it reads or
    writes."""
    try:
        old.execute("PRAGMA busy_timeout=2000")
        old.execute("PRAGMA locking_mode=EXCLUSIVE")
        old.execute("BEGIN EXCLUSIVE")
    except sqlite3.OperationalError as exc:
        if "locked" not in str(exc) and "busy" not in str(exc):
            raise StoreError(f"cannot open the local registry file {path}: {exc}") from exc
        raise StoreError(
            f"the local registry file {path} is open in another process (an older Mintaka "
            "still running against this home?): stop it, then open the home again to import "
            "the file; nothing was imported"
        ) from exc


def _read_tables(old: sqlite3.Connection, path: Path) -> list[_OldRows]:
    """Every table of this schema that ``old`` holds, read in one snapshot."""
    found: list[_OldRows] = []
    try:
        if not old.in_transaction:
            old.execute("BEGIN")
        names = {
            row[0] for row in old.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        }
        for table in metadata.sorted_tables:
            if table.name not in names:
                continue  # the file predates this table
            columns = [row[1] for row in old.execute(f'PRAGMA table_info("{table.name}")')]
            unknown = sorted(set(columns) - set(table.c.keys()))
            missing = [
                column.name
                for column in table.c
                if column.name not in columns
                and not column.nullable
                and column.server_default is None
            ]
            if unknown or missing:
                raise StoreError(
                    f"cannot import the local registry file {path}: its table {table.name} "
                    + (
                        f"has columns this Mintaka does not know ({', '.join(unknown)})"
                        if unknown
                        else f"lacks required columns ({', '.join(missing)})"
                    )
                )
            rows = [
                tuple(row) for row in old.execute(f'SELECT {_listed(columns)} FROM "{table.name}"')
            ]
            found.append(_OldRows(table, columns, rows))
        old.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"cannot read the local registry file {path}: {exc}") from exc
    return found


def _insert_missing(sql: Sql, found: list[_OldRows], path: Path) -> int:
    """Insert the rows the store lacks; refuse if it holds any of them with other content."""
    missing: list[tuple[_OldRows, list[tuple[Any, ...]]]] = []
    clashes: list[str] = []
    for old in found:
        key = [old.columns.index(column.name) for column in old.table.primary_key.columns]
        held = {
            tuple(row[i] for i in key): row
            for row in sql.rows(f'SELECT {_listed(old.columns)} FROM "{old.table.name}"')
        }
        new = []
        for row in old.rows:
            there = held.get(tuple(row[i] for i in key))
            if there is None:
                new.append(row)
            elif there != row:
                clashes.append(f"{old.table.name} {tuple(row[i] for i in key)}")
        missing.append((old, new))
    if clashes:
        raise Conflict(
            f"cannot import the local registry file {path}: the store's database holds other "
            f"content for {len(clashes)} of its rows ({'; '.join(clashes[:5])}"
            f"{'; ...' if len(clashes) > 5 else ''}); nothing was changed"
        )
    for old, new in missing:
        values = ", ".join(f":{c}" for c in old.columns)
        try:
            sql.run_many(
                f'INSERT INTO "{old.table.name}" ({_listed(old.columns)}) VALUES ({values})',
                (dict(zip(old.columns, row, strict=True)) for row in new),
            )
        except sqlite3.IntegrityError as exc:  # e.g. an idempotency key held by another version
            raise Conflict(
                f"cannot import the local registry file {path}: {old.table.name}: {exc}; "
                "nothing was changed"
            ) from exc
    return sum(len(new) for _, new in missing)


def _retire(path: Path, now: datetime) -> Path | None:
    """Rename ``path`` and its SQLite companions to a new ``<name>.imported-<UTC time>``."""
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    kept = path.with_name(f"{path.name}.imported-{stamp}")
    n = 1
    while any(Path(f"{kept}{suffix}").exists() for suffix in ("", *SIBLINGS)):
        n += 1
        kept = path.with_name(f"{path.name}.imported-{stamp}-{n}")
    try:
        try:
            path.rename(kept)
        except FileNotFoundError:
            return None  # another process retired it
        for suffix in SIBLINGS:
            with suppress(FileNotFoundError):
                Path(f"{path}{suffix}").rename(f"{kept}{suffix}")
    except OSError as exc:
        raise StoreError(
            f"the local registry file {path} was imported into the store's database but could "
            f"not be renamed: {exc}"
        ) from exc
    return kept
