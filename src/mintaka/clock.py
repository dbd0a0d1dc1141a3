"""Time and randomness as injectable dependencies, so tests never wait or guess."""

from __future__ import annotations

import random
import secrets
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


class IdFactory:
    """Makes short random identifiers; seed it for reproducible ids."""

    def __init__(self, seed: int | None = None) -> None:
        self._random: random.Random | None = None if seed is None else random.Random(seed)

    def new(self, prefix: str) -> str:
        token = (
            secrets.token_hex(8) if self._random is None else f"{self._random.getrandbits(64):016x}"
        )
        return f"{prefix}-{token}"
