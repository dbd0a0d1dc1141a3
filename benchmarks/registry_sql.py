"""Where a registration's time goes at the SQLite driver: Mintaka's local backend only.

Registers ``--versions`` versions of one model as ``benchmarks/registry.py`` does (artifacts
ingested first, not timed) with every ``sqlite3`` statement, ``BEGIN`` and ``COMMIT`` timed on the
driver's connection and cursor, and prints the time per registration spent in SQLite, statement by
statement, with the distribution of the write commits. The timing wrappers add about a
microsecond per call, so the registration as a whole is a little slower here than in
``registry.py``. Run with::

    uv run python benchmarks/registry_sql.py
"""

from __future__ import annotations

import argparse
import gc
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from registry import MODEL, make_artifacts

spent: Counter[str] = Counter()
calls: Counter[str] = Counter()
commits: list[float] = []


def _label(sql: str) -> str:
    return " ".join(sql.split()[:3])[:48]


class TimedCursor(sqlite3.Cursor):
    def execute(self, sql: str, parameters: Any = (), /) -> TimedCursor:
        start = time.perf_counter()
        try:
            super().execute(sql, parameters)
            return self
        finally:
            spent[_label(sql)] += time.perf_counter() - start
            calls[_label(sql)] += 1


class TimedConnection(sqlite3.Connection):
    def cursor(self, factory: Any = TimedCursor) -> Any:
        return super().cursor(factory)

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        start = time.perf_counter()
        try:
            return super().execute(sql, parameters)
        finally:
            elapsed = time.perf_counter() - start
            spent[_label(sql)] += elapsed
            calls[_label(sql)] += 1
            if sql == "COMMIT" and elapsed > 20e-6:  # a read's COMMIT takes about a microsecond
                commits.append(elapsed)


def _connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
    kwargs["factory"] = TimedConnection
    return _real_connect(*args, **kwargs)


_real_connect = sqlite3.connect


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--artifact-bytes", type=int, default=16 * 1024)
    args = parser.parse_args()

    # SQLAlchemy's pysqlite dialect connects through sqlite3.dbapi2.
    sqlite3.connect = sqlite3.dbapi2.connect = _connect  # type: ignore[assignment]
    from mintaka import Platform
    from mintaka.artifacts import manifest_of

    n = args.versions
    with tempfile.TemporaryDirectory(prefix="mintaka-bench-") as tmp:
        work = Path(tmp)
        sources = make_artifacts(work / "src", n, args.artifact_bytes, seed=1)
        with Platform(work / "home", backend="local", actor="bench") as platform:
            data = work / "train.csv"
            data.write_text("x,y\n1,2\n")
            dataset = platform.register_dataset("bench-train", data)
            run = platform.start_run("bench", dataset_ids=[dataset.id], code_commit_="0" * 40)
            platform.create_model(MODEL, owner="bench")
            stored = [platform.artifacts.ingest(p, manifest_of(p)) for p in sources]
            spent.clear()
            calls.clear()
            commits.clear()
            gc.collect()
            start = time.perf_counter()
            for i, artifact in enumerate(stored):
                platform.register_model(
                    MODEL, artifact, run_id=run.id, params={"i": i}, metrics={"score": i / n}
                )
            total = time.perf_counter() - start

    print(f"{n} registrations: {total / n * 1e6:.0f} µs each (timed at the driver)")
    print(f"in SQLite: {sum(spent.values()) / n * 1e6:.0f} µs per registration")
    for label, seconds in spent.most_common():
        print(f"  {seconds / n * 1e6:7.1f} µs  {calls[label] / n:4.1f} per registration  {label}")
    commits.sort()
    k = len(commits)
    if k:
        quantiles = " ".join(
            f"p{int(q * 100)} {commits[min(k - 1, int(k * q))] * 1e6:.0f}"
            for q in (0.1, 0.5, 0.9, 0.99)
        )
        slow = sum(c for c in commits if c > 1e-3) / n * 1e6
        print(
            f"write commits: {k}; µs {quantiles}, max {commits[-1] * 1e6:.0f}; "
            f"commits over 1 ms (checkpoints) add {slow:.0f} µs to the mean"
        )


if __name__ == "__main__":
    main()
