"""A pyfunc model whose import waits while the file named by ``MINTAKA_TEST_HOLD`` exists: a
model that takes a while to load, under the test's control (imported by the pyfunc flavor)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

_HOLD = os.environ.get("MINTAKA_TEST_HOLD")
_deadline = time.monotonic() + 10
while _HOLD and Path(_HOLD).exists() and time.monotonic() < _deadline:
    time.sleep(0.01)


def answer(rows: list[dict[str, Any]]) -> list[Any]:
    return [0.0 for _ in rows]
