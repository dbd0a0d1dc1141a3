"""Windows over counters that only ever stand as they are now.

Model Serving exports cumulative counters (requests, 5xx and 4xx answers per served entity
since it started) and keeps no history. To answer "how many requests between ``start`` and
``end``", every read is remembered under the backend's home, and a window is the counters read
now minus those of the last read at or before ``start``. Without such a read, the counters since
the endpoint was created are all there is, and the metrics say so through the ``start`` they
report. Processes that read the same endpoint's counters (a rollout and a monitor) take turns at
remembering a read, each under an exclusive lock on ``<endpoint>.lock`` beside the file, so that
neither writes back the reads it loaded over one the other has just added.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from mintaka.files import file_lock, write_atomic
from mintaka_databricks.exported import REFUSED, REQUESTS, SERVER_ERRORS

# Counters per kind (``exported.KINDS``: requests, 5xx, 4xx), then per route.
Counters = dict[str, dict[str, int]]

KEEP = 512  # reads remembered per endpoint


@dataclass(frozen=True)
class Snapshot:
    at: datetime
    counters: Counters


class CounterSnapshots:
    """Each endpoint's remembered reads, oldest first, in ``<root>/<endpoint>.json``."""

    def __init__(self, root: Path, keep: int = KEEP) -> None:
        self.root = root
        self.keep = keep

    def _path(self, endpoint: str) -> Path:
        return self.root / f"{endpoint}.json"

    def load(self, endpoint: str) -> list[Snapshot]:
        try:
            stored = json.loads(self._path(endpoint).read_text())
        except (FileNotFoundError, ValueError):  # none yet, or a torn file: start again
            return []
        return [
            Snapshot(datetime.fromisoformat(item["at"]), item["counters"])
            for item in stored
            if isinstance(item, dict) and "at" in item and "counters" in item
        ]

    def record(self, endpoint: str, snapshot: Snapshot) -> list[Snapshot]:
        """Remember ``snapshot``; returns the reads remembered before it. The reads are loaded
        and written back under the endpoint's lock, so one another process records meanwhile is
        kept, not overwritten."""
        with file_lock(self.root / f"{endpoint}.lock"):
            earlier = self.load(endpoint)
            kept = [*earlier, snapshot][-self.keep :]
            data = json.dumps([{"at": s.at.isoformat(), "counters": s.counters} for s in kept])
            write_atomic(self._path(endpoint), data, durable=False)
        return earlier


def baseline(earlier: list[Snapshot], start: datetime) -> Snapshot | None:
    """The last read at or before ``start``."""
    found = None
    for snapshot in earlier:
        if snapshot.at <= start and (found is None or snapshot.at >= found.at):
            found = snapshot
    return found


def since(now: Counters, base: Counters) -> Counters:
    """``now`` minus ``base``, per kind and route. A route any of whose counters fell below its
    baseline was restarted (the served entity was recreated), so every one of its counters counts
    from zero, not only those that fell: a restart judged kind by kind could take the refused
    requests since the restart from all the requests since the baseline. Server errors and
    refused requests are at most the route's requests."""
    restarted = {
        route
        for kind, routes in now.items()
        for route, value in routes.items()
        if value < base.get(kind, {}).get(route, 0)
    }
    window: Counters = {
        kind: {
            route: value if route in restarted else value - base.get(kind, {}).get(route, 0)
            for route, value in routes.items()
        }
        for kind, routes in now.items()
    }
    requests = window.get(REQUESTS, {})
    for kind in (SERVER_ERRORS, REFUSED):
        for route, value in window.get(kind, {}).items():
            window[kind][route] = min(value, requests.get(route, 0))
    return window
