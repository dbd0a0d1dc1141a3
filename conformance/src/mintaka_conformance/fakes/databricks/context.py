"""What every area of the fake workspace shares: identity, time, seeded ids and one lock."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class WorkspaceContext:
    """Identity of the fake workspace and the sources of ids and time its areas draw from.

    Ids come from a seeded generator so that two runs making the same calls see the same ids.
    ``lock`` serialises every request against the state (the HTTP server is threaded).
    """

    seed: int = 0
    user: str = "mintaka-tests@example.com"
    workspace_id: str = "1234567890123456"
    metastore_id: str = "00000000-0000-4000-8000-00000000feed"
    clock: Callable[[], float] = time.time
    host: str = ""
    lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self) -> None:
        self._ids = random.Random(self.seed)
        self._counters: dict[str, int] = {}

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def new_uuid(self) -> str:
        return str(uuid.UUID(int=self._ids.getrandbits(128), version=4))

    def new_hex(self) -> str:
        return self.new_uuid().replace("-", "")

    def next_number(self, kind: str, start: int = 1) -> int:
        """A per-kind counter (job ids, run ids, experiment ids), never reused."""
        value = self._counters.get(kind, start)
        self._counters[kind] = value + 1
        return value
