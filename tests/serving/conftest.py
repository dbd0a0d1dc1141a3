from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from serving_kit import FEATURES, pyfunc_artifact, sklearn_artifact

from mintaka import IdFactory, ManualClock, Platform
from mintaka.local.server import InferenceServer


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
