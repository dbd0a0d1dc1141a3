"""A monitored endpoint's prediction log, written as the serving data plane writes it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from artifact_kit import MakeArtifact
from monitoring_kit import LogPredictions

from mintaka import Platform
from mintaka.store.schema import predictions


@pytest.fixture
def served(platform: Platform, make_servable: MakeArtifact) -> Platform:
    """Model ``credit`` version 1, served on endpoint ``scoring`` (route ``blue``)."""
    platform.register_model("credit", make_servable(b"v1"), flavor="pyfunc", owner="dana")
    platform.serving.create_endpoint("scoring", "credit:1", route="blue")
    return platform


@pytest.fixture
def log_predictions(platform: Platform) -> LogPredictions:
    """Log ``(inputs, output)`` pairs on endpoint ``scoring`` (route ``blue``, ``credit:1``),
    stamped with the current time; returns their prediction ids in order."""

    def log(pairs: Sequence[tuple[dict[str, Any], Any]]) -> list[str]:
        version = platform.get_model_version("credit", 1)
        at = platform.clock.now().isoformat()
        ids = [platform.ids.new("pred") for _ in pairs]
        with platform.store.write() as conn:
            conn.execute(
                predictions.insert(),
                [
                    {
                        "id": pid,
                        "endpoint": "scoring",
                        "route": "blue",
                        "model": "credit",
                        "version": 1,
                        "version_id": version.id,
                        "input_digest": "sha256:" + "0" * 64,
                        "inputs": inputs,
                        "output": output,
                        "status": "ok",
                        "shadow": 0,
                        "latency_ms": 1.0,
                        "at": at,
                    }
                    for pid, (inputs, output) in zip(ids, pairs, strict=True)
                ],
            )
        return ids

    return log
