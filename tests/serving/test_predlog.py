from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import rfc8785
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

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
    import json

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
