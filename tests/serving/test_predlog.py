from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from mintaka import files
from mintaka.serving import predlog
from mintaka.serving.predlog import Prediction, PredictionLog, input_digest
from mintaka.store import Store
from mintaka.store.schema import predictions

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)


@given(st.dictionaries(st.text(max_size=6), scalars, max_size=8))
def test_input_digest_is_sha256_of_rfc8785(row: dict[str, object]) -> None:
    expected = "sha256:" + hashlib.sha256(rfc8785.dumps(row)).hexdigest()
    assert input_digest(row) == expected


def test_a_clean_close_writes_every_appended_prediction(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    log = PredictionLog(store, interval=10.0)  # nothing is written by the timer before close
    at = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(1500):
        row = {"a": i / 7, "b": "x"}
        log.append(
            Prediction(f"p{i}", "e", "r", "m", 1, "v", row, i % 2 == 0, 0.5, "ok", 0, 1.0, at)
        )
    log.close()
    with store.read() as conn:
        stored = {r.id: r for r in conn.execute(select(predictions)).all()}
    assert len(stored) == 1500
    assert stored["p0"].inputs == {"a": 0.0, "b": "x"}
    assert stored["p1"].inputs is None
    assert stored["p3"].input_digest == input_digest({"a": 3 / 7, "b": "x"})
    assert stored["p3"].at == at.isoformat()
    store.dispose()


def test_spilled_predictions_are_stored_once_when_the_next_log_opens(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    spill = tmp_path / "predictions-spill.jsonl"
    at = datetime(2026, 1, 1, tzinfo=UTC)
    first, second = (
        Prediction(f"p{i}", "e", "r", "m", 1, "v", {"a": i}, True, 0.5, "ok", 0, 1.0, at)
        for i in range(2)
    )
    log = PredictionLog(store)
    log.append(first)  # this one reached the store; the spill file holds it too
    log.close()
    lines = [json.dumps(p.record(), default=str) for p in (first, second)]
    spill.write_text("\n".join([lines[0], "not a record", lines[1]]) + "\n")
    reopened = PredictionLog(store, spill=spill)
    reopened.close()
    with store.read() as conn:
        stored = {r.id: r for r in conn.execute(select(predictions)).all()}
    assert set(stored) == {"p0", "p1"}
    assert stored["p1"].inputs == {"a": 1}
    assert stored["p1"].at == at.isoformat()
    assert list(tmp_path.glob("predictions-spill.jsonl*")) == []
    store.dispose()


def _strict_json(text: str) -> object:
    def refuse(constant: str) -> object:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_numbers_json_has_no_form_for_are_logged_as_their_text(tmp_path: Path) -> None:
    """PostgreSQL's ``json`` type refuses the ``NaN`` and ``Infinity`` Python would write."""
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    at = datetime(2026, 1, 1, tzinfo=UTC)
    odd = {"a": math.inf, "b": [math.nan, 1.0], "c": "x"}
    prediction = Prediction("p0", "e", "r", "m", 1, "v", odd, True, -math.inf, "ok", 0, 1.0, at)
    record = prediction.record()
    assert (record["inputs"], record["output"]) == (
        {"a": "inf", "b": ["nan", 1.0], "c": "x"},
        "-inf",
    )
    json.dumps(record, allow_nan=False)
    log = PredictionLog(store, interval=10.0)
    log.append(prediction)
    log.close()
    with store.read() as conn:
        driver = conn.connection.driver_connection
        [(inputs, output)] = driver.execute("SELECT inputs, output FROM predictions").fetchall()  # type: ignore[union-attr]
    assert _strict_json(inputs) == {"a": "inf", "b": ["nan", 1.0], "c": "x"}
    assert _strict_json(output) == "-inf"
    store.dispose()


def _refused_by_the_store(i: int, at: datetime) -> Prediction:
    """A prediction whose endpoint is missing: the schema refuses it, whatever the store's state."""
    return Prediction(f"p{i}", None, "r", "m", 1, "v", {"a": i}, True, 0.5, "ok", 0, 1.0, at)  # type: ignore[arg-type]


def test_a_record_the_store_refuses_is_kept_aside_and_the_rest_of_its_batch_written(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    spill = tmp_path / "predictions-spill.jsonl"
    at = datetime(2026, 1, 1, tzinfo=UTC)
    log = PredictionLog(store, interval=10.0, spill=spill)  # one batch, written at close
    for i in range(9):
        if i == 6:
            log.append(_refused_by_the_store(i, at))
        else:
            log.append(
                Prediction(f"p{i}", "e", "r", "m", 1, "v", {"a": i}, True, 0.5, "ok", 0, 1.0, at)
            )
    log.close()
    with store.read() as conn:
        stored = set(conn.execute(select(predictions.c.id)).scalars())
    assert stored == {f"p{i}" for i in range(9)} - {"p6"}
    assert not spill.exists()
    refused = tmp_path / "predictions-spill.refused.jsonl"
    assert [json.loads(line)["id"] for line in refused.read_text().splitlines()] == ["p6"]
    assert any("refused prediction p6" in r.getMessage() for r in caplog.records)
    store.dispose()


def test_a_spilled_record_the_store_refuses_does_not_hold_up_the_others(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    spill = tmp_path / "predictions-spill.jsonl"
    at = datetime(2026, 1, 1, tzinfo=UTC)
    good = [
        Prediction(f"p{i}", "e", "r", "m", 1, "v", {"a": i}, True, 0.5, "ok", 0, 1.0, at)
        for i in range(4)
    ]
    kept = [*good[:2], _refused_by_the_store(9, at), *good[2:]]
    spill.write_text("".join(json.dumps(p.record(), default=str) + "\n" for p in kept))
    reopened = PredictionLog(store, spill=spill)
    reopened.close()
    with store.read() as conn:
        stored = set(conn.execute(select(predictions.c.id)).scalars())
    assert stored == {"p0", "p1", "p2", "p3"}
    assert sorted(p.name for p in tmp_path.glob("predictions-spill*")) == [
        "predictions-spill.refused.jsonl"
    ]
    reopened = PredictionLog(store, spill=spill)  # nothing is replayed twice
    reopened.close()
    refused = (tmp_path / "predictions-spill.refused.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in refused] == ["p9"]
    store.dispose()


class _Outage:
    """Makes ``store`` fail every write (busy, as a locked SQLite file is) while ``down``."""

    def __init__(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        self.down = False
        write = store.write

        def failing_write() -> object:
            if self.down:
                raise OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError("locked"))
            return write()

        monkeypatch.setattr(store, "write", failing_write)


def _predictions(ids: range, at: datetime) -> list[Prediction]:
    return [
        Prediction(f"p{i}", "e", "r", "m", 1, "v", {"a": i}, True, 0.5, "ok", 0, 1.0, at)
        for i in ids
    ]


def _stored(store: Store) -> list[str]:
    with store.read() as conn:
        return sorted(conn.execute(select(predictions.c.id)).scalars())


def _spilled_while_down(
    store: Store,
    spill: Path,
    monkeypatch: pytest.MonkeyPatch,
    spilled: list[Prediction],
    max_batch: int = 512,
) -> tuple[PredictionLog, _Outage]:
    """A log on ``spill`` that writes only when flushed, flushed once with ``spilled`` while the
    store fails (still down when it returns)."""
    outage = _Outage(store, monkeypatch)
    log = PredictionLog(store, interval=10.0, spill=spill, max_batch=max_batch)
    outage.down = True
    for prediction in spilled:
        log.append(prediction)
    log.flush()
    return log, outage


def test_spilled_predictions_are_stored_once_the_store_takes_a_batch_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    spill = tmp_path / "predictions-spill.jsonl"
    at = datetime(2026, 1, 1, tzinfo=UTC)
    spilled = [*_predictions(range(3), at), _refused_by_the_store(3, at)]
    log, outage = _spilled_while_down(store, spill, monkeypatch, spilled)
    assert len(spill.read_text().splitlines()) == 4
    outage.down = False
    for prediction in _predictions(range(4, 6), at):
        log.append(prediction)
    log.flush()  # the store takes this batch, then what was spilled while it failed
    assert _stored(store) == ["p0", "p1", "p2", "p4", "p5"]
    assert sorted(p.name for p in tmp_path.glob("predictions-spill*")) == [
        "predictions-spill.refused.jsonl"
    ]
    refused = (tmp_path / "predictions-spill.refused.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in refused] == ["p3"]
    log.close()
    PredictionLog(store, spill=spill).close()  # the next start finds nothing to store again
    assert _stored(store) == ["p0", "p1", "p2", "p4", "p5"]
    assert (tmp_path / "predictions-spill.refused.jsonl").read_text().splitlines() == refused
    store.dispose()


def test_spilled_predictions_are_replayed_a_batch_per_write_and_survive_a_failing_replay(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    spill = tmp_path / "predictions-spill.jsonl"
    at = datetime(2026, 1, 1, tzinfo=UTC)
    log, outage = _spilled_while_down(store, spill, monkeypatch, _predictions(range(5), at), 2)
    assert _stored(store) == []
    outage.down = False
    log.flush()  # nothing new to write: the store is tried with one batch of the spill
    assert _stored(store) == ["p0", "p1"]
    outage.down = True
    log.flush()  # the replay fails: its records stay spilled
    outage.down = False
    log.flush()
    assert _stored(store) == ["p0", "p1", "p2", "p3"]
    log.close()  # stopped mid-replay: the next start stores the rest, once each
    assert list(tmp_path.glob("predictions-spill.jsonl.*.replaying"))
    reopened = PredictionLog(store, spill=spill, max_batch=2)
    reopened.close()
    assert _stored(store) == ["p0", "p1", "p2", "p3", "p4"]
    assert list(tmp_path.glob("predictions-spill*")) == []
    store.dispose()


def test_a_log_takes_the_spill_file_aside_only_after_another_log_has_appended_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two servers on one home: A, its store back, replays the spill file while B, its store
    write failing, is appending a batch to it. A waits for B's batch, and stores it too."""
    db = f"sqlite:///{tmp_path / 'store.db'}"
    store_a, store_b = Store(db), Store(db)
    spill = tmp_path / "predictions-spill.jsonl"
    at = datetime(2026, 1, 1, tzinfo=UTC)
    outage_a, outage_b = _Outage(store_a, monkeypatch), _Outage(store_b, monkeypatch)
    a = PredictionLog(store_a, interval=10.0, spill=spill)
    b = PredictionLog(store_b, interval=10.0, spill=spill)
    outage_a.down = outage_b.down = True
    a.append(_predictions(range(1), at)[0])
    a.flush()  # A spills p0
    outage_a.down = False  # the store takes A's writes again, B's still fail
    waiting = threading.Event()  # A's writer waits for the spill file's lock

    @contextmanager
    def watched(path: Path, **options: bool) -> Iterator[bool]:
        if threading.current_thread() is a._thread:
            waiting.set()
        with files.file_lock(path, **options) as held:  # type: ignore[arg-type]
            yield held

    monkeypatch.setattr(predlog, "file_lock", watched, raising=False)

    def replayed_by_a() -> None:
        a.append(_predictions(range(100, 101), at)[0])
        a.flush()  # A writes p100, then takes the spill file aside and replays it

    replay = threading.Thread(target=replayed_by_a)

    class Spilled(Prediction):
        def record(self) -> dict[str, object]:
            if not replay.is_alive() and not waiting.is_set() and replay.ident is None:
                replay.start()  # while B holds the spill file open for appending
                while replay.is_alive() and not waiting.is_set():
                    replay.join(0.001)
            return super().record()

    for i in range(1, 6):
        b.append(Spilled(*_predictions(range(i, i + 1), at)[0]))
    b.flush()  # B spills p1 to p5
    replay.join()
    a.close()
    b.close()
    PredictionLog(store_a, spill=spill).close()  # the next start replays whatever is kept
    assert _stored(store_a) == ["p0", "p1", "p100", "p2", "p3", "p4", "p5"]
    assert list(tmp_path.glob("predictions-spill*")) == []
    store_a.dispose()
    store_b.dispose()


def test_a_refused_record_is_kept_aside_once_when_a_replay_that_kept_it_is_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store fails right after a live replay kept a refused record aside, and the server
    stops: the next start replays the file taken aside from its start, meeting that record
    again."""
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    spill = tmp_path / "predictions-spill.jsonl"
    at = datetime(2026, 1, 1, tzinfo=UTC)
    spilled = [*_predictions(range(4), at), _refused_by_the_store(4, at)]
    log, outage = _spilled_while_down(
        store, spill, monkeypatch, [*spilled, *_predictions(range(5, 8), at)]
    )
    keep = PredictionLog._keep_refused

    def keep_then_fail(self: PredictionLog, record: dict[str, object], exc: Exception) -> None:
        keep(self, record, exc)
        outage.down = True  # the store goes away again mid-replay

    monkeypatch.setattr(PredictionLog, "_keep_refused", keep_then_fail)
    outage.down = False
    log.flush()  # p0 to p3 stored, p4 kept aside, then the store fails
    log.close()
    monkeypatch.setattr(PredictionLog, "_keep_refused", keep)
    outage.down = False
    PredictionLog(store, spill=spill).close()  # the next start replays the rest
    assert _stored(store) == ["p0", "p1", "p2", "p3", "p5", "p6", "p7"]
    refused = (tmp_path / "predictions-spill.refused.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in refused] == ["p4"]
    store.dispose()
