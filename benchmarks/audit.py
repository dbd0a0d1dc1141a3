"""Audit benchmark: Mintaka's hash-chained audit log against raw ``sqlite3`` doing the same chain.

Both sides keep the same chain in the same tables (the raw side's tables are created with the
exact ``CREATE TABLE`` statements of Mintaka's migrated store), with the same durability mode
(WAL + ``synchronous=NORMAL``, printed), in the same run:

* **append**: one event per committed transaction. Mintaka: ``with store.write() as conn:
  log.append(conn, ...)`` (SQLAlchemy connection checkout, ``BEGIN IMMEDIATE``, head row read,
  canonical JSON, sha256, insert, head update, commit, an ``AuditEvent`` returned). Raw:
  ``BEGIN IMMEDIATE``, the same three statements, ``rfc8785.dumps`` for the canonical bytes,
  ``COMMIT``. The two sides run interleaved in blocks, so a shared machine's noise hits both, and
  their final head hashes must be equal (the chains are byte for byte the same).
* **verify**: the 100,000-event chains built above, then a 1,000,000-event chain bulk-inserted
  into both databases with identical bytes. Mintaka: ``AuditLog.verify()`` (that the table
  derives its query columns from the canonical bytes, then sequence, link, hash, anchors, head).
  Raw: sequence, link, hash and head. The query columns (actor, action, ...) are virtual columns
  that SQLite reads out of the canonical bytes on both sides, so neither needs to compare them.
  Every loop reads rows in batches of ``BATCH``, the size Mintaka reads with (smaller batches
  stay in the processor's caches: both sides are faster with 256 rows than with 4,096).

Run with::

    uv run python benchmarks/audit.py

Benchmarks never run in CI.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform as host
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from importlib.metadata import version
from pathlib import Path
from typing import Any

import rfc8785

from mintaka.audit import GENESIS, AuditLog, canonical_bytes
from mintaka.store import Store

BASE = datetime(2026, 1, 1, tzinfo=UTC)
BATCH = 256  # rows per fetch on every side, as ``AuditLog.verify`` reads them
# The query columns (at, actor, action, subject, backend) are derived from the canonical bytes
# by the table itself on both sides, so only the chain is inserted.
INSERT = "INSERT INTO audit_events (seq, canonical, prev_hash, hash) VALUES (?, ?, ?, ?)"


def event(i: int) -> dict[str, Any]:
    """The i-th event's fields: what a registration records."""
    return {
        "at": BASE + timedelta(seconds=i),
        "actor": f"user{i % 7}",
        "action": "model.register",
        "subject": f"credit:{i}",
        "backend": "local",
        "details": {"version": i, "tier": "high", "score": 0.5 + (i % 100) / 1000},
    }


def body(seq: int, fields: dict[str, Any], prev: str) -> dict[str, Any]:
    return {
        "format": "mintaka-audit/1",
        "seq": seq,
        "at": fields["at"].isoformat(),
        "actor": fields["actor"],
        "action": fields["action"],
        "subject": fields["subject"],
        "backend": fields["backend"],
        "details": fields["details"],
        "prev_hash": prev,
    }


# -- raw sqlite3 ------------------------------------------------------------------------------


def raw_open(path: Path, ddl: list[str]) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    for statement in ddl:
        conn.execute(statement)
    conn.execute("INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, ?)", (GENESIS,))
    return conn


def raw_durability(conn: sqlite3.Connection) -> str:
    journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
    sync = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[
        conn.execute("PRAGMA synchronous").fetchone()[0]
    ]
    return f"sqlite journal_mode={journal} synchronous={sync}"


def raw_append(conn: sqlite3.Connection, fields: dict[str, Any]) -> None:
    conn.execute("BEGIN IMMEDIATE")
    seq, prev = conn.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
    seq += 1
    canonical = rfc8785.dumps(body(seq, fields, prev))
    digest = hashlib.sha256(prev.encode("ascii") + canonical).hexdigest()
    conn.execute(INSERT, (seq, canonical, prev, digest))
    conn.execute("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (seq, digest))
    conn.execute("COMMIT")


def raw_verify(conn: sqlite3.Connection) -> tuple[bool, int]:
    """Sequence, previous-hash link, recomputed hash, head: the chain itself."""
    cursor = conn.execute("SELECT seq, canonical, prev_hash, hash FROM audit_events ORDER BY seq")
    expected, prev = 1, GENESIS
    sha256 = hashlib.sha256
    while batch := cursor.fetchmany(BATCH):
        for seq, canonical, prev_hash, digest in batch:
            if (
                seq != expected
                or prev_hash != prev
                or sha256(prev.encode("ascii") + canonical).hexdigest() != digest
            ):
                return False, expected
            prev = digest
            expected += 1
    head = conn.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
    return (head == (expected - 1, prev)), expected - 1


# -- Mintaka ----------------------------------------------------------------------------------


def mintaka_append(store: Store, log: AuditLog, fields: dict[str, Any]) -> None:
    with store.write() as conn:
        log.append(conn, **fields)


def head_of(path: Path) -> tuple[int, str]:
    conn = sqlite3.connect(path)
    try:
        row = conn.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
        return int(row[0]), str(row[1])
    finally:
        conn.close()


# -- bulk building ----------------------------------------------------------------------------


def chain_rows(start: int, count: int, prev: str) -> Iterator[tuple[Any, ...]]:
    """Rows of a chain continuing after ``prev``; canonical bytes through Mintaka's encoder,
    spot-checked against rfc8785 every 10,000 rows."""
    for seq in range(start, start + count):
        fields = event(seq)
        shaped = body(seq, fields, prev)
        canonical = canonical_bytes(shaped)
        if seq % 10_000 == 0:
            assert canonical == rfc8785.dumps(shaped), seq
        digest = hashlib.sha256(prev.encode("ascii") + canonical).hexdigest()
        yield (seq, canonical, prev, digest)
        prev = digest


def bulk_build(paths: list[Path], events: int, chunk: int = 50_000) -> None:
    """Extend the chain in every database at ``paths`` (all at the same head) to ``events``."""
    conns = [sqlite3.connect(p, isolation_level=None) for p in paths]
    heads = {tuple(c.execute("SELECT seq, hash FROM audit_head").fetchone()) for c in conns}
    assert len(heads) == 1, "the chains differ before the bulk build"
    seq, prev = heads.pop()
    while seq < events:
        rows = list(chain_rows(seq + 1, min(chunk, events - seq), prev))
        for conn in conns:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(INSERT, rows)
            conn.execute(
                "UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", (rows[-1][0], rows[-1][3])
            )
            conn.execute("COMMIT")
        seq, prev = rows[-1][0], rows[-1][3]
        print(f"  built {seq:,} events", end="\r", flush=True)
    print()
    for conn in conns:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()


# -- timing -----------------------------------------------------------------------------------


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def run_appends(
    events: int, block: int, store: Store, log: AuditLog, raw: sqlite3.Connection
) -> tuple[float, float]:
    """Interleaved blocks of appends; total seconds for each side."""
    mintaka_total = raw_total = 0.0
    done = 0
    perf = time.perf_counter
    while done < events:
        items = [event(i) for i in range(done + 1, min(done + block, events) + 1)]
        first_raw = (done // block) % 2 == 0  # alternate who goes first
        for side in ("raw", "mintaka") if first_raw else ("mintaka", "raw"):
            start = perf()
            if side == "raw":
                for fields in items:
                    raw_append(raw, fields)
                raw_total += perf() - start
            else:
                for fields in items:
                    mintaka_append(store, log, fields)
                mintaka_total += perf() - start
        done += len(items)
    return mintaka_total, raw_total


def run_verifies(
    repeat: int, log: AuditLog, raw: sqlite3.Connection, events: int
) -> tuple[list[float], list[float]]:
    mintaka_times: list[float] = []
    raw_times: list[float] = []
    for _ in range(repeat):
        seconds, report = timed(log.verify)
        assert report.ok, report
        assert report.events == events, report
        mintaka_times.append(seconds)
        seconds, (ok, count) = timed(lambda: raw_verify(raw))
        assert ok
        assert count == events
        raw_times.append(seconds)
    return mintaka_times, raw_times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--events", type=int, default=100_000, help="appended one per commit")
    parser.add_argument("--big", type=int, default=1_000_000, help="bulk-built chain to verify")
    parser.add_argument("--block", type=int, default=2_000, help="appends per interleaved block")
    parser.add_argument("--repeat", type=int, default=3, help="verification runs per side")
    parser.add_argument("--dir", type=Path, default=None, help="where the databases go")
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="mintaka-audit-bench-", dir=args.dir))
    store_path = workdir / "mintaka" / "store.db"
    raw_path = workdir / "raw.db"
    store = Store(f"sqlite:///{store_path}")
    log = AuditLog(store)
    with sqlite3.connect(store_path) as probe:
        ddl = [
            row[0]
            for row in probe.execute(
                "SELECT sql FROM sqlite_master WHERE tbl_name IN ('audit_events', 'audit_head') "
                "AND sql IS NOT NULL"
            )
        ]
    raw = raw_open(raw_path, ddl)

    print(f"machine: {host.machine()}, {os.cpu_count()} CPUs, {host.platform()}")
    print(
        f"python {sys.version.split()[0]}, sqlite {sqlite3.sqlite_version}, "
        f"rfc8785 {version('rfc8785')}, SQLAlchemy {version('sqlalchemy')}"
    )
    print(f"databases under {workdir}")
    print(f"Mintaka store: {store.durability()}")
    print(f"raw sqlite3:   {raw_durability(raw)}")

    print(
        f"\nappend: {args.events:,} events, one per commit, interleaved in blocks of {args.block:,}"
    )
    mintaka_s, raw_s = run_appends(args.events, args.block, store, log, raw)
    assert head_of(store_path) == head_of(raw_path), "the two chains differ"
    mintaka_rate, raw_rate = args.events / mintaka_s, args.events / raw_s
    for name, rate, seconds in (
        ("raw sqlite3", raw_rate, raw_s),
        ("Mintaka", mintaka_rate, mintaka_s),
    ):
        print(
            f"  {name + ':':12} {rate:,.0f} events/s ({seconds / args.events * 1e6:.1f} us/event)"
        )
    print(f"  ratio Mintaka/raw: {mintaka_rate / raw_rate:.2f}x   (target >= 0.85x)")
    print("  chains identical: both heads at", head_of(store_path))

    for label, size in (("appended chain", args.events), ("bulk-built chain", args.big)):
        if size > args.events:
            print(f"\nbuilding {size:,} events in both databases (bulk insert, identical bytes)")
            raw.close()
            store.dispose()
            bulk_build([store_path, raw_path], size)
            raw = sqlite3.connect(raw_path, isolation_level=None)
            raw.execute("PRAGMA synchronous=NORMAL")
            assert head_of(store_path) == head_of(raw_path)
        print(f"\nverify {label}: {size:,} events, best and median of {args.repeat}")
        mintaka_times, raw_times = run_verifies(args.repeat, log, raw, size)
        best_m, best_r = min(mintaka_times), min(raw_times)
        print(
            f"  raw sqlite3: {best_r:.3f} s best, {statistics.median(raw_times):.3f} s median"
            f"  ({size / best_r:,.0f} events/s)"
        )
        print(
            f"  Mintaka:     {best_m:.3f} s best, {statistics.median(mintaka_times):.3f} s median"
            f"  ({size / best_m:,.0f} events/s)"
        )
        print(f"  ratio Mintaka/raw time: {best_m / best_r:.2f}x   (target <= 2x at 1,000,000)")
    raw.close()
    store.dispose()
    if args.keep:
        print(f"\ndatabases kept in {workdir}")
    else:
        shutil.rmtree(workdir)


if __name__ == "__main__":
    main()
