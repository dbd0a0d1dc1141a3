"""The prediction log: every prediction id with its endpoint, model version, input digest,
output and time, written in batches by a background thread so requests never wait on the store.

``close()`` drains the queue, so a clean stop loses nothing; ``flush()`` waits until everything
appended so far is committed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import rfc8785

from mintaka.store import Store
from mintaka.store.schema import predictions

log = logging.getLogger(__name__)

_STOP = object()


def input_digest(row: Any) -> str:
    """sha256 of the RFC 8785 canonical JSON of one input row."""
    try:
        canonical = rfc8785.dumps(row)
    except (TypeError, ValueError, rfc8785.CanonicalizationError):
        canonical = repr(row).encode()
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


class PredictionLog:
    def __init__(
        self,
        store: Store,
        *,
        max_batch: int = 512,
        interval: float = 0.05,
        spill: Path | None = None,
    ) -> None:
        self.store = store
        self.spill = spill
        self.max_batch = max_batch
        self.interval = interval
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="mintaka-predlog", daemon=True)
        self._thread.start()
        self.written = 0

    def append(self, record: Mapping[str, Any]) -> None:
        self._queue.put(dict(record))

    def flush(self) -> None:
        self._queue.join()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            batch: list[dict[str, Any]] = []
            taken = 1
            if first is _STOP:
                stopping = True
            else:
                batch.append(first)
            while not stopping and len(batch) < self.max_batch:
                try:
                    item = self._queue.get(timeout=self.interval)
                except queue.Empty:
                    break
                taken += 1
                if item is _STOP:
                    stopping = True
                else:
                    batch.append(item)
            # Drain whatever is already queued on the way out: a clean stop loses nothing.
            while stopping:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                taken += 1
                if item is not _STOP:
                    batch.append(item)
            try:
                if batch:
                    self._write(batch)
            finally:
                for _ in range(taken):
                    self._queue.task_done()

    def _write(self, batch: list[dict[str, Any]]) -> None:
        error: Exception | None = None
        for _attempt in range(3):
            try:
                with self.store.write() as conn:
                    conn.execute(predictions.insert(), batch)
                self.written += len(batch)
                return
            except Exception as exc:  # the store is busy or gone: retry, then spill
                error = exc
        log.error("could not write %d predictions to the store: %s", len(batch), error)
        if self.spill is not None:
            with self.spill.open("a") as handle:
                for record in batch:
                    handle.write(json.dumps(record, default=str) + "\n")
            log.error("predictions kept in %s for replay", self.spill)
