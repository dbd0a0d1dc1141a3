"""Deterministic weighted routing and shadow sampling.

Smooth weighted round-robin (as nginx does it) sends exactly ``weight`` requests out of every
``sum(weights)`` to each route, interleaved, with no randomness: observed shares match the
configured weights to within one request at any moment, so tests assert them exactly.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping


class WeightedRouter:
    def __init__(self, weights: Mapping[str, int]) -> None:
        self._weights = {name: w for name, w in sorted(weights.items()) if w > 0}
        self._total = sum(self._weights.values())
        self._current = dict.fromkeys(self._weights, 0)
        self._lock = threading.Lock()

    @property
    def routes(self) -> tuple[str, ...]:
        return tuple(self._weights)

    def pick(self) -> str | None:
        """The route for the next request, or ``None`` when no route takes traffic."""
        if not self._weights:
            return None
        with self._lock:
            for name, weight in self._weights.items():
                self._current[name] += weight
            best = max(self._current, key=self._current.__getitem__)  # ties: first by name
            self._current[best] -= self._total
            return best


class ShadowSampler:
    """Mirrors exactly ``percent`` requests out of every 100, evenly spread."""

    def __init__(self, percent: int) -> None:
        self._percent = percent
        self._credit = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        if self._percent <= 0:
            return False
        with self._lock:
            self._credit += self._percent
            if self._credit >= 100:
                self._credit -= 100
                return True
            return False
