"""Seeded and scripted faults: throttling, unavailability, internal errors and lost responses."""

from __future__ import annotations

import random
import re
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum


class Fault(StrEnum):
    """What the fake does instead of answering normally.

    ``THROTTLED`` and ``UNAVAILABLE`` are retried by the SDK (it honours ``Retry-After``),
    ``INTERNAL`` is not; ``LOST`` performs the operation and then closes the connection without
    answering (the SDK sees a connection error and retries, so the operation runs twice unless
    the caller is idempotent); ``RESET`` closes the connection without performing anything.
    """

    THROTTLED = "429"
    UNAVAILABLE = "503"
    INTERNAL = "500"
    LOST = "lost"
    RESET = "reset"


@dataclass(frozen=True)
class InjectedFault:
    method: str
    path: str
    fault: Fault


@dataclass
class _Script:
    faults: deque[Fault]
    method: str | None
    path: re.Pattern[str] | None

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method != method:
            return False
        return self.path is None or self.path.search(path) is not None


# Config() fetches this path through a client without the configured clock, so a fault there
# would make the SDK sleep for real; random faults therefore never touch it.
_EXEMPT_FROM_RANDOM = re.compile(r"^/\.well-known/")


@dataclass
class FaultSchedule:
    """Decides, request by request, whether the fake misbehaves.

    Scripted faults come first: ``script(Fault.LOST, method="POST", path="/jobs/run-now")``
    queues faults for the next matching requests, in order. Otherwise each request fails with
    probability ``rate`` (seeded, so a run is reproducible when the client is sequential), with a
    kind drawn from ``kinds``, optionally only on ``methods`` and paths matching ``path``.
    """

    seed: int = 0
    rate: float = 0.0
    kinds: Iterable[Fault | str] = (Fault.THROTTLED, Fault.UNAVAILABLE, Fault.INTERNAL, Fault.LOST)
    methods: Iterable[str] | None = None
    path: str | None = None
    retry_after_seconds: int = 1
    max_faults: int | None = None
    injected: list[InjectedFault] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"rate must be within [0, 1], got {self.rate}")
        self._kinds = tuple(Fault(kind) for kind in self.kinds)
        if self.rate and not self._kinds:
            raise ValueError("a positive rate needs at least one fault kind")
        self._methods = None if self.methods is None else frozenset(m.upper() for m in self.methods)
        self._path = None if self.path is None else re.compile(self.path)
        self._random = random.Random(self.seed)
        self._scripts: list[_Script] = []
        self._lock = threading.Lock()

    def script(
        self, *faults: Fault | str, method: str | None = None, path: str | None = None
    ) -> FaultSchedule:
        """Queue ``faults`` for the next requests matching ``method`` and the ``path`` regex."""
        compiled = None if path is None else re.compile(path)
        with self._lock:
            self._scripts.append(
                _Script(deque(Fault(f) for f in faults), method and method.upper(), compiled)
            )
        return self

    def clear(self) -> None:
        with self._lock:
            self._scripts.clear()
            self.rate = 0.0

    @property
    def pending(self) -> int:
        """How many scripted faults have not fired yet."""
        with self._lock:
            return sum(len(script.faults) for script in self._scripts)

    def decide(self, method: str, path: str) -> Fault | None:
        with self._lock:
            fault = self._scripted(method, path) or self._random_fault(method, path)
            if fault is not None:
                self.injected.append(InjectedFault(method, path, fault))
            return fault

    def _scripted(self, method: str, path: str) -> Fault | None:
        for script in self._scripts:
            if script.faults and script.matches(method, path):
                return script.faults.popleft()
        return None

    def _random_fault(self, method: str, path: str) -> Fault | None:
        if self.rate <= 0.0 or _EXEMPT_FROM_RANDOM.match(path):
            return None
        if self._methods is not None and method not in self._methods:
            return None
        if self._path is not None and self._path.search(path) is None:
            return None
        if self.max_faults is not None and len(self.injected) >= self.max_faults:
            return None
        if self._random.random() >= self.rate:
            return None
        return self._random.choice(self._kinds)
