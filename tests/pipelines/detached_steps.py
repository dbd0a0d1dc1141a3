"""A step for the detached-run tests: it says it has started, then waits to be let go (a
uniquely named module, importable by the worker and its step processes through sys.path)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from pydantic import BaseModel

STARTED = "started"
RELEASE = "release"


class WaitInputs(BaseModel):
    folder: Path


class WaitOutputs(BaseModel):
    waited: bool


def wait_for_release(inputs: WaitInputs) -> WaitOutputs:
    (inputs.folder / STARTED).write_text(str(os.getpid()))
    deadline = time.monotonic() + 60
    while not (inputs.folder / RELEASE).exists():
        if time.monotonic() > deadline:
            raise TimeoutError("never released")
        time.sleep(0.01)
    return WaitOutputs(waited=True)
