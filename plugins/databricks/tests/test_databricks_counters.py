"""Counter reads remembered by two processes at once (a rollout and a monitor reading the same
endpoint): each one's read is kept, neither written over by the other; and windows over them."""

from __future__ import annotations

import fcntl
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from mintaka_databricks import counters
from mintaka_databricks.counters import CounterSnapshots, Snapshot

FIRST = Snapshot(datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC), {"requests": {"blue": 10}})
SECOND = Snapshot(datetime(2026, 1, 1, 0, 0, 2, tzinfo=UTC), {"requests": {"blue": 11}})


def test_a_read_recorded_while_another_is_being_recorded_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first recorder has loaded the remembered reads and is about to write them back when
    the second starts: the second waits for the first to finish, then adds its read to both."""
    flock = fcntl.flock
    write = counters.write_atomic
    second_waits_or_ended = threading.Event()

    def record_second() -> None:
        try:
            CounterSnapshots(tmp_path).record("ep", SECOND)
        finally:
            second_waits_or_ended.set()

    second = threading.Thread(target=record_second)

    def flock_announced(descriptor: int, operation: int) -> None:
        if threading.current_thread() is second and operation == fcntl.LOCK_EX:
            second_waits_or_ended.set()  # about to wait for the lock the first one holds
        flock(descriptor, operation)

    def write_once_the_second_has_started(*args: Any, **kwargs: Any) -> None:
        if threading.current_thread() is not second:
            second.start()
            assert second_waits_or_ended.wait(timeout=5)
        write(*args, **kwargs)

    monkeypatch.setattr(fcntl, "flock", flock_announced)
    monkeypatch.setattr(counters, "write_atomic", write_once_the_second_has_started)
    assert CounterSnapshots(tmp_path).record("ep", FIRST) == []
    second.join(timeout=5)
    assert not second.is_alive()
    assert CounterSnapshots(tmp_path).load("ep") == [FIRST, SECOND]


def test_a_route_restarted_between_reads_counts_every_kind_from_zero() -> None:
    """Before the restart 100 requests, 50 refused; since it 120 requests, 40 refused. Only the
    refused counter fell, yet the route restarted: its window is 120 requests, 40 refused (not
    20 requests against 40 refused)."""
    base = {"requests": {"blue": 100, "green": 10}, "5xx": {"blue": 1}, "4xx": {"blue": 50}}
    now = {"requests": {"blue": 120, "green": 15}, "5xx": {"blue": 2}, "4xx": {"blue": 40}}
    assert counters.since(now, base) == {
        "requests": {"blue": 120, "green": 5},
        "5xx": {"blue": 2},
        "4xx": {"blue": 40},
    }


def test_a_window_never_counts_more_errors_or_refusals_than_requests() -> None:
    now = {"requests": {"blue": 3}, "5xx": {"blue": 5}, "4xx": {"blue": 4, "green": 2}}
    assert counters.since(now, {}) == {
        "requests": {"blue": 3},
        "5xx": {"blue": 3},
        "4xx": {"blue": 3, "green": 0},
    }
