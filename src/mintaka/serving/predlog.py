"""The prediction log: every prediction id with its endpoint, model version, input digest,
output and time, written in batches by a background thread so requests never wait on the store.

The request path only appends a :class:`Prediction` to a deque (O(1), no lock, no wake-up); the
writer thread wakes every ``interval`` seconds, derives the input digests and stored text, and
commits what it finds in transactions of at most ``max_batch`` rows. ``close()`` drains
everything appended before it, so a clean stop loses nothing; ``flush()`` waits until
everything appended so far is committed. A batch the store fails to take three times (busy,
or gone) goes to the spill file, one JSON record a line, for replay, and its records are stored
once each (an id already stored is skipped): while the log runs, once the store takes a batch
again (or a ``flush()`` finds nothing new to write), up to ``max_batch`` spilled records after
each such write, so a long spill never holds up new predictions; and whole by the next log opened
on that spill file (the next server start), before it writes anything new. A spill file is
removed once every record it holds is stored. A record the store refuses for what it holds (a
value its columns do not take) is found by halving the batch, and only it is kept aside, in the
refused file beside the spill file (``predictions-spill.refused.jsonl``, once), never replayed: the
rest of its batch is written. Logs of several servers on one home share the spill file: each
appends to it, and takes it aside, only holding the lock file beside it
(``.predictions-spill.jsonl.lock``), so none takes aside a file another is appending to.

Logged inputs and outputs are JSON every store takes: a number JSON has no form for (NaN,
infinity) or a value it has no type for is stored as its text (:func:`json_safe`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import rfc8785
from sqlalchemy import select
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError

from mintaka.files import file_lock
from mintaka.store import Store
from mintaka.store.schema import predictions

log = logging.getLogger(__name__)
T = TypeVar("T")

_SAFE_INT = 2**53 - 1
_COLUMNS = (
    "id",
    "endpoint",
    "route",
    "model",
    "version",
    "version_id",
    "input_digest",
    "inputs",
    "output",
    "status",
    "shadow",
    "latency_ms",
    "at",
)
_INSERT = (
    f"INSERT INTO predictions ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})"
)


def _canonical_text(value: Any) -> str | None:
    """RFC 8785 text of a scalar whose canonical form Python writes directly, else ``None``."""
    kind = type(value)
    if kind is float:
        text = repr(value)
        if "e" in text or "n" in text:  # exponents, inf and nan: leave them to rfc8785
            return None
        if text.endswith(".0"):
            text = text[:-2]
            return "0" if text in ("0", "-0") else text
        return text
    if kind is int:
        return str(value) if -_SAFE_INT <= value <= _SAFE_INT else None
    if kind is str:
        if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
            return f'"{value}"'
        return None
    if kind is bool:
        return "true" if value else "false"
    if value is None:
        return "null"
    return None


def _fast_canonical(row: Any) -> bytes | None:
    """The RFC 8785 bytes of a flat row of plain scalars (the usual request), else ``None``.

    For ASCII keys, sorting by UTF-16 code units (RFC 8785) is sorting by code points, and the
    number and string forms above are exactly what RFC 8785 prescribes; anything else (nested
    values, non-ASCII text, exponents) goes through the ``rfc8785`` package.
    """
    if type(row) is not dict:
        return None
    parts = []
    for key in sorted(row):
        if type(key) is not str:
            return None
        name = _canonical_text(key)
        text = _canonical_text(row[key])
        if name is None or text is None:
            return None
        parts.append(f"{name}:{text}")
    return ("{" + ",".join(parts) + "}").encode()


def input_digest(row: Any) -> str:
    """sha256 of the RFC 8785 canonical JSON of one input row."""
    canonical = _fast_canonical(row)
    if canonical is None:
        try:
            canonical = rfc8785.dumps(row)
        except (TypeError, ValueError, rfc8785.CanonicalizationError):
            canonical = repr(row).encode()
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


class Prediction(NamedTuple):
    """One prediction as the request path hands it over (the writer derives the rest)."""

    id: str
    endpoint: str
    route: str | None
    model: str | None
    version: int | None
    version_id: str | None
    row: Mapping[str, Any]
    keep_inputs: bool
    output: Any
    status: str
    shadow: int
    latency_ms: float
    at: datetime | str

    def record(self) -> dict[str, Any]:
        """The row of the ``predictions`` table, its JSON columns as every store takes them."""
        values = self._values()
        return dict(
            zip(
                _COLUMNS,
                (*values[:7], json_safe(values[7]), json_safe(values[8]), *values[9:]),
                strict=True,
            )
        )

    def stored(self) -> tuple[Any, ...]:
        """The row as SQLite stores it, JSON columns as their text (in ``_COLUMNS`` order)."""
        values = self._values()
        return (*values[:7], _json_text(values[7]), _json_text(values[8]), *values[9:])

    def _values(self) -> tuple[Any, ...]:
        return (
            self.id,
            self.endpoint,
            self.route,
            self.model,
            self.version,
            self.version_id,
            input_digest(self.row),
            dict(self.row) if self.keep_inputs else None,
            self.output,
            self.status,
            self.shadow,
            self.latency_ms,
            self.at if isinstance(self.at, str) else self.at.isoformat(),
        )


def json_safe(value: Any) -> Any:
    """``value`` as a JSON column of every store can hold it: as it is when strict JSON carries
    it, else with each number JSON has no form for (NaN, infinity: Python writes them, and
    PostgreSQL refuses them) and each value JSON has no type for (a Parquet timestamp, bytes)
    as its text."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        try:
            return _safe(value)
        except RecursionError:  # a value that holds itself
            return repr(value)
    return value


def _safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k if isinstance(k, str) else str(k): _safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_safe(v) for v in value]
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    return str(value)


def _json_text(value: Any) -> str:
    """The text SQLAlchemy's JSON type stores, of the value as :func:`json_safe` makes it."""
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return json.dumps(json_safe(value))


def _refused(exc: BaseException) -> bool:
    """Whether the store refused the records themselves (a value a column does not take, a
    constraint), which no retry changes, rather than failing as a store (busy, gone)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(
            seen,
            IntegrityError | DataError | sqlite3.IntegrityError | sqlite3.DataError,
        ):
            return True
        if isinstance(seen, StatementError) and not isinstance(seen, DBAPIError):
            return True  # a value SQLAlchemy could not send, before the database saw it
        seen = seen.__cause__
    return False


class PredictionLog:
    def __init__(
        self,
        store: Store,
        *,
        max_batch: int = 512,
        interval: float = 0.05,
        spill: Path | None = None,
    ) -> None:
        self.store = store
        self.spill = spill
        self.max_batch = max_batch
        self.interval = interval
        self.written = 0
        self._pending: deque[Prediction | threading.Event] = deque()
        self._wake = threading.Event()
        self._closing = False
        # The spilled records being replayed: the file they were taken from (removed once they
        # are all stored), where its next records start, and the parts read from it that are not
        # stored yet (see :meth:`_commit`); None when no file is being replayed.
        self._replaying: tuple[Path, int, list[list[dict[str, Any]]]] | None = None
        # Whether spilled records may be waiting for the store (looked for at the next write).
        self._spilled = spill is not None
        if spill is not None:
            try:
                replayed = self.replay()
            except Exception:  # the records stay in their file, replayed once the store is back
                log.exception("replaying the predictions kept in %s failed", spill)
            else:
                if replayed:
                    log.warning("stored %d predictions kept in %s", replayed, spill)
        self._thread = threading.Thread(target=self._run, name="mintaka-predlog", daemon=True)
        self._thread.start()

    def replay(self) -> int:
        """Store every prediction the spill file (and any replay interrupted before) holds,
        skipping those already stored; returns how many were added. See :meth:`_replay_some`."""
        added = 0
        while self._spilled:
            added += self._replay_some(self.max_batch)
        return added

    def _replay_some(self, limit: int) -> int:
        """Store up to ``limit`` more spilled predictions, skipping those already stored;
        returns how many were added. The spill file is taken aside first (a spill written
        meanwhile goes to a new file), and each taken file is removed once its records are
        committed (a record the store refuses kept aside, in the refused file); a line that is
        not a record is logged and skipped. A failure of the store is raised and loses nothing:
        the records not committed are tried again at the next call (or the next start, which
        reads the file taken aside again and skips what is stored already)."""
        if self.spill is None:
            self._spilled = False
            return 0
        if self._replaying is None:
            taken = self._take_spilled()
            if taken is None:
                self._spilled = False
                return 0
            self._replaying = (taken, 0, [])
        path, offset, parts = self._replaying
        if not parts:
            records, offset = self._read_spilled(path, offset, limit)
            if records:
                parts.append(records)
            self._replaying = (path, offset, parts)
        added = self._commit(parts, self._insert_new, lambda r: r)  # on failure, parts keep it
        try:
            at_end = offset >= path.stat().st_size
        except FileNotFoundError:  # another process replayed it
            at_end = True
        if at_end:
            path.unlink(missing_ok=True)
            self._replaying = None
        return added

    def _take_spilled(self) -> Path | None:
        """The next spilled file to replay: the spill file, taken aside under a name of its own,
        after those a replay left (interrupted, or stopped with the store failing)."""
        assert self.spill is not None
        spill = self.spill
        with file_lock(self._spill_lock):  # never while another log appends to it
            if spill.exists():
                spill.replace(spill.with_name(f"{spill.name}.{time.time_ns()}.replaying"))
        taken = sorted(spill.parent.glob(f"{spill.name}.*.replaying"))
        return taken[0] if taken else None

    def _read_spilled(
        self, path: Path, offset: int, limit: int
    ) -> tuple[list[dict[str, Any]], int]:
        """Up to ``limit`` records of spilled file ``path`` from byte ``offset`` on (the last of
        each id), and the offset after them."""
        records: dict[str, dict[str, Any]] = {}
        try:
            handle = path.open("rb")
        except FileNotFoundError:  # another process replayed it
            return [], offset
        with handle:
            handle.seek(offset)
            while len(records) < limit:
                line = handle.readline()
                if not line:
                    break
                offset += len(line)
                try:
                    record = json.loads(line)
                    records[str(record["id"])] = record
                except (ValueError, KeyError, TypeError):
                    if line.strip():
                        log.error("%s has a line that is not a prediction record; skipped", path)
        return list(records.values()), offset

    @property
    def _spill_lock(self) -> Path:
        """The lock file beside the spill file, held while a log appends to the spill file and
        while one takes it aside for replay: another server on the same home appending to a file
        taken aside (and removed once replayed) would lose what it appends."""
        assert self.spill is not None
        return self.spill.with_name(f".{self.spill.name}.lock")

    @property
    def refused(self) -> Path | None:
        """The file of the records the store refused, beside the spill file."""
        if self.spill is None:
            return None
        return self.spill.with_name(f"{self.spill.stem}.refused{self.spill.suffix}")

    def append(self, prediction: Prediction) -> None:
        """Queue one prediction for the store; never blocks."""
        self._pending.append(prediction)

    def flush(self) -> None:
        """Wait until every prediction appended so far is committed (or spilled)."""
        done = threading.Event()
        self._pending.append(done)
        self._wake.set()
        while not done.wait(0.1):
            if not self._thread.is_alive():
                return  # closed: everything appended before close() was written

    def close(self) -> None:
        """Write everything appended so far, then stop the writer."""
        self._closing = True
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            closing = self._closing  # read first: whatever was appended before close() is seen
            self._drain()
            if closing:
                return

    def _drain(self) -> None:
        pending = self._pending
        while pending:
            batch: list[Prediction] = []
            markers: list[threading.Event] = []
            while pending and len(batch) < self.max_batch:
                item = pending.popleft()
                if isinstance(item, Prediction):
                    batch.append(item)
                else:
                    markers.append(item)
            try:
                stored = self._write(batch) if batch else bool(markers)
                if stored and self._spilled:
                    self._replay_turn()
            except Exception:  # the writer must outlive any one bad batch
                log.exception("writing %d predictions failed", len(batch))
            finally:
                for marker in markers:
                    marker.set()

    def _replay_turn(self) -> None:
        """Replay up to a batch of spilled predictions once the store has taken a batch (or a
        flush found nothing new): a store still failing leaves them for the next turn."""
        try:
            added = self._replay_some(self.max_batch)
        except Exception as exc:
            log.warning("replaying the predictions kept beside %s failed: %s", self.spill, exc)
        else:
            if added:
                log.warning("stored %d predictions kept beside %s", added, self.spill)

    def _write(self, batch: list[Prediction]) -> bool:
        """Commit ``batch``; what is left of it after the store failed three times is spilled.
        Whether the store took it all."""
        parts = [batch]
        error: Exception | None = None
        for _attempt in range(3):
            try:
                self._commit(parts, self._insert, Prediction.record)
                return True
            except Exception as exc:  # the store is busy or gone: retry, then spill
                error = exc
        left = [prediction for part in parts for prediction in part]
        log.error("could not write %d predictions to the store: %s", len(left), error)
        if self.spill is not None:
            with file_lock(self._spill_lock), self.spill.open("a") as handle:
                for prediction in left:
                    handle.write(json.dumps(prediction.record(), default=str) + "\n")
            self._spilled = True
            log.error("predictions kept in %s for replay", self.spill)
        return False

    def _insert(self, batch: list[Prediction]) -> int:
        with self.store.write() as conn:
            if conn.dialect.name == "sqlite":
                # Straight to the driver: SQLAlchemy's per-row processing would cost more than
                # SQLite takes to insert the rows.
                driver = conn.connection.driver_connection
                driver.executemany(_INSERT, [p.stored() for p in batch])  # type: ignore[union-attr]
            else:
                conn.execute(predictions.insert(), [p.record() for p in batch])
        self.written += len(batch)
        return len(batch)

    def _insert_new(self, records: list[dict[str, Any]]) -> int:
        """Insert the spilled ``records`` not stored yet; returns how many that was."""
        with self.store.write() as conn:
            ids = [str(r["id"]) for r in records]
            known: set[str] = set()
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                known.update(
                    conn.execute(
                        select(predictions.c.id).where(predictions.c.id.in_(chunk))
                    ).scalars()
                )
            fresh = [r for r in records if str(r["id"]) not in known]
            if fresh:
                conn.execute(predictions.insert(), fresh)
        return len(fresh)

    def _commit(
        self,
        parts: list[list[T]],
        insert: Callable[[list[T]], int],
        record: Callable[[T], dict[str, Any]],
    ) -> int:
        """Commit every part of ``parts`` with ``insert``, taking each off as it is committed;
        returns how many records were added. A part the store refuses is halved until each
        record it refuses is alone, and that one is kept aside (``record`` gives what is kept):
        the others are committed. A failure of the store itself (busy, gone) is raised, the
        part it failed on back in ``parts``, so that a retry writes only what is left."""
        added = 0
        while parts:
            part = parts.pop()
            try:
                added += insert(part)
            except Exception as exc:
                if not _refused(exc):
                    parts.append(part)
                    raise
                if len(part) == 1:
                    self._keep_refused(record(part[0]), exc)
                else:
                    middle = len(part) // 2
                    parts += [part[middle:], part[:middle]]
        return added

    def _keep_refused(self, record: dict[str, Any], exc: Exception) -> None:
        """Keep aside one record the store refused, saying which and why; once: a replay
        interrupted after keeping it (the store failing, the server stopping) reads the file it
        replays from the start again, and meets the record again."""
        reason = str(exc.__cause__ or exc).splitlines()[0]
        path = self.refused
        if path is None:
            log.error("the store refused prediction %s, dropped: %s", record.get("id"), reason)
            return
        with file_lock(self._spill_lock):
            if str(record.get("id")) in _kept_ids(path):
                return
            with path.open("a") as handle:
                handle.write(json.dumps(record, default=str) + "\n")
        log.error(
            "the store refused prediction %s, kept in %s (not replayed): %s",
            record.get("id"),
            path,
            reason,
        )


def _kept_ids(path: Path) -> set[str]:
    """The ids of the records file ``path`` holds (none when there is no such file)."""
    ids = set()
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        return set()
    with handle:
        for line in handle:
            try:
                ids.add(str(json.loads(line)["id"]))
            except (ValueError, KeyError, TypeError):
                continue
    return ids
