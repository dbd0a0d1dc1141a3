"""Client-side shadow mirroring, for backends whose cloud has no shadow traffic of its own.

Only requests sent through Mintaka (``platform.serving.invoke``) can be mirrored; callers that
reach the cloud endpoint directly are not. The copy is sent after the live answer, on a bounded
pool: when the pool is busy the copy is dropped (and counted) rather than delaying anyone.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from mintaka.serving.routing import ShadowSampler

log = logging.getLogger(__name__)


class ShadowMirror:
    def __init__(self, workers: int = 2, pending: int = 64) -> None:
        self._workers = workers
        self._slots = threading.BoundedSemaphore(pending)
        self._pool: ThreadPoolExecutor | None = None
        self._samplers: dict[tuple[str, str, int], ShadowSampler] = {}
        self._lock = threading.Lock()
        self.sent = 0
        self.dropped = 0
        self.failed = 0

    def send(self, endpoint: str, route: str, percent: int, call: Callable[[], Any]) -> bool:
        """Mirror this request if the shadow's share says so; ``True`` when a copy was queued."""
        with self._lock:
            sampler = self._samplers.setdefault((endpoint, route, percent), ShadowSampler(percent))
            if not sampler.take():
                return False
            if not self._slots.acquire(blocking=False):
                self.dropped += 1
                return False
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="mintaka-mirror")
            self.sent += 1

        def run() -> None:
            try:
                call()
            except Exception as exc:  # a shadow never fails the caller
                self.failed += 1
                log.warning("shadow copy to %s/%s failed: %s", endpoint, route, exc)
            finally:
                self._slots.release()

        self._pool.submit(run)
        return True

    def drain(self) -> None:
        """Wait for every queued copy (tests, and a clean shutdown)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
