"""Time and randomness as injectable dependencies, so tests never wait or guess."""

from __future__ import annotations

import itertools
import os
import random
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """Anything that tells the current time as an aware UTC datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The wall clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that moves only when told to; for tests and simulations."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("ManualClock needs an aware datetime")

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float = 0.0, **kwargs: float) -> datetime:
        self._now += timedelta(seconds=seconds, **kwargs)
        return self._now


def pause(clock: Clock, seconds: float) -> None:
    """Wait ``seconds`` on ``clock`` between polls: a clock that moves only when told to (a
    :class:`ManualClock`) is moved on at once, so nothing waits in real time; any other clock is
    waited on."""
    advance = getattr(clock, "advance", None)
    if callable(advance):
        advance(max(0.0, seconds))
    else:
        time.sleep(seconds)


class IdFactory:
    """Makes short unique identifiers; seed it for reproducible ids.

    Unseeded, an id is a random 64-bit prefix drawn once per process (and drawn again in a forked
    child) followed by a process-wide counter: unique across processes and factories without a
    system call per id (prediction ids are made on the serving hot path), and in creation order
    within a process.
    """

    def __init__(self, seed: int | None = None) -> None:
        self._random: random.Random | None = None if seed is None else random.Random(seed)

    def new(self, prefix: str) -> str:
        if self._random is not None:
            return f"{prefix}-{self._random.getrandbits(64):016x}"
        return f"{prefix}-{_process_prefix}{next(_process_counter):08x}"


_process_prefix = secrets.token_hex(8)
_process_counter = itertools.count()  # next() on it is atomic under the GIL


def _new_process() -> None:
    global _process_prefix, _process_counter
    _process_prefix = secrets.token_hex(8)
    _process_counter = itertools.count()


os.register_at_fork(after_in_child=_new_process)


STAMP_TOLERANCE = timedelta(minutes=5)
"""How far an audit event's stamp may be later than a later event's before ``mintaka audit
verify`` warns (hosts whose clocks differ a little)."""

MAX_STAMP_TOLERANCE = timedelta(days=36500)
"""The largest tolerance `audit verify --clock-tolerance` takes: a hundred years."""
