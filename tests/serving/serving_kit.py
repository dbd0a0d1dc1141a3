"""Models and rows shared by the serving tests (a uniquely named module: every test folder's
``conftest`` is imported as ``conftest``, so helpers imported by name live here)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from sklearn.linear_model import LogisticRegression

from mintaka.flavors import sklearn as sklearn_flavor

if TYPE_CHECKING:
    from mintaka.local.server import InferenceServer

FEATURES = ["a", "b", "c"]
RNG = np.random.default_rng(42)
X = RNG.normal(size=(300, 3))
Y = (X[:, 0] - X[:, 2] > 0).astype(int)


def sklearn_artifact(root: Path, c: float) -> Path:
    model = LogisticRegression(C=c).fit(X, Y)
    return sklearn_flavor.save(model, root / f"sk-{c}")


def pyfunc_artifact(root: Path, function: str) -> Path:
    folder = root / f"py-{function.replace(':', '-')}"
    folder.mkdir(parents=True)
    (folder / "pyfunc.json").write_text(json.dumps({"function": function}))
    return folder


def row(i: int = 0) -> dict[str, float]:
    return {name: float(X[i % len(X), j]) for j, name in enumerate(FEATURES)}


def wait_for(condition: Callable[[], object], timeout: float = 1.0) -> float:
    """Poll ``condition`` until true; returns the seconds it took (fails after ``timeout``)."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "condition not met in time"
        time.sleep(0.005)
    return time.monotonic() - started


def stop_polling(server: InferenceServer) -> None:
    """Stop ``server`` polling the store: only what is sent to it reaches it from now on."""
    server._stop.set()
    assert server._poller is not None
    server._poller.join(5)
