"""Pausing between polls on an injected clock: a manual clock moves, the wall clock waits."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from mintaka.clock import ManualClock, SystemClock, pause


def test_a_manual_clock_is_moved_on_and_nothing_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(time, "sleep", lambda seconds: pytest.fail(f"slept {seconds} s"))
    start = datetime(2026, 11, 28, tzinfo=UTC)
    clock = ManualClock(start)
    pause(clock, 15)
    pause(clock, -3)  # never backwards
    assert clock.now() == start + timedelta(seconds=15)


def test_the_wall_clock_is_waited_on(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    pause(SystemClock(), 2.5)
    assert slept == [2.5]
