"""Windows over prediction-log records, and the columns drift reads from them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mintaka.errors import ValidationError
from mintaka.monitoring import (
    parse_window,
    prediction_columns,
    windows,
    windows_by_count,
    windows_by_time,
)

T0 = datetime(2025, 1, 1, 10, 0, tzinfo=UTC)


def records(n: int, step: timedelta) -> list[dict[str, object]]:
    return [
        {"id": f"p{i}", "at": (T0 + i * step).isoformat(), "inputs": {"x": i}, "output": i % 2}
        for i in range(n)
    ]


def test_time_windows_align_on_the_hour() -> None:
    found = windows_by_time(records(10, timedelta(minutes=20)), timedelta(hours=1))
    assert [len(w.records) for w in found] == [3, 3, 3, 1]
    assert found[0].start == T0
    assert found[1].end == T0 + timedelta(hours=2)


def test_count_windows_in_time_order() -> None:
    shuffled = records(7, timedelta(seconds=1))[::-1]
    found = windows_by_count(shuffled, 3)
    assert [[r["id"] for r in w.records] for w in found] == [
        ["p0", "p1", "p2"],
        ["p3", "p4", "p5"],
        ["p6"],
    ]
    assert len(windows_by_count(shuffled, 3, keep_partial=False)) == 2


def test_signal_window_strings() -> None:
    assert parse_window("1h") == timedelta(hours=1)
    assert parse_window("5000n") == 5000
    assert len(windows(records(4, timedelta(minutes=1)), "2n")) == 2


@given(st.text(max_size=8))
def test_parse_window_accepts_only_the_grammar(text: str) -> None:
    try:
        found = parse_window(text)
    except ValidationError:
        return
    assert isinstance(found, int | timedelta)
    assert (found > 0) if isinstance(found, int) else found > timedelta(0)


@given(st.from_regex(r"\A[0-9]{1,9}[smhdw]\Z"))
def test_a_time_window_always_reaches_back_to_a_date(text: str) -> None:
    try:
        found = parse_window(text)
    except ValidationError:
        return
    assert isinstance(found, timedelta)
    assert datetime(2026, 1, 1, tzinfo=UTC) - found > datetime.min.replace(tzinfo=UTC)


def test_a_window_longer_than_a_century_is_refused() -> None:
    assert parse_window("36500d") == timedelta(days=36_500)
    for text in ("36501d", "999999999w"):
        with pytest.raises(ValidationError, match="at most 36500 days"):
            parse_window(text)


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValidationError):
        windows_by_time([{"at": "2025-01-01T00:00:00"}], timedelta(hours=1))


def test_prediction_columns_include_the_prediction() -> None:
    rows = [
        {"inputs": {"x": 1.0, "c": "a"}, "output": [0.2]},
        {"inputs": None, "output": [0.9]},
        {"inputs": {"x": 3.0}, "output": {"label": 1, "score": 0.7}},
    ]
    columns = prediction_columns(rows)
    assert columns["x"].tolist() == [1.0, None, 3.0]
    assert columns["prediction"].tolist() == [0.2, 0.9, None]
    assert columns["prediction.score"].tolist() == [None, None, 0.7]
