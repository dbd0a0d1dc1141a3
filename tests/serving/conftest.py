from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from mintaka import IdFactory, ManualClock, Platform
from mintaka.flavors import sklearn as sklearn_flavor
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


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Platform, InferenceServer]]:
    clock = ManualClock()
    with Platform(tmp_path / "h", clock=clock, ids=IdFactory(7), actor="ops") as plat:
        signature = {"inputs": dict.fromkeys(FEATURES, "float")}
        from mintaka.domain.registry import Signature

        plat.register_model(
            "credit",
            sklearn_artifact(tmp_path, 1.0),
            flavor="sklearn",
            signature=Signature(**signature),
        )
        plat.register_model(
            "credit",
            sklearn_artifact(tmp_path, 0.01),
            flavor="sklearn",
            signature=Signature(**signature),
        )
        plat.register_model(
            "credit", pyfunc_artifact(tmp_path, "faulty_models:always_fails"), flavor="pyfunc"
        )
        plat.serving.create_endpoint("scoring", "credit:1", route="blue")
        server = InferenceServer(plat, poll_interval=0.02)
        server.start()
        try:
            yield plat, server
        finally:
            server.stop()
