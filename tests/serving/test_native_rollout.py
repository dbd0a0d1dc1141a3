"""Native rollouts on a backend without one: refused, with the way to roll out instead."""

from __future__ import annotations

import pytest
from artifact_kit import MakeArtifact
from cli_kit import cli

from mintaka import Platform, UnsupportedCapability
from mintaka.domain.serving import RolloutStrategy, TrafficPlan, TrafficStep
from mintaka.rollout import native


def test_the_local_backend_has_no_native_rollout(
    platform: Platform, make_artifact: MakeArtifact, capsys: pytest.CaptureFixture[str]
) -> None:
    platform.register_model("credit", make_artifact(b"v1"))
    platform.register_model("credit", make_artifact(b"v2"))
    platform.serving.create_endpoint("scoring", "credit:1", route="blue")
    platform.serving.deploy("scoring", "credit:2", route="green")
    plan = TrafficPlan(
        endpoint="scoring",
        strategy=RolloutStrategy.CANARY,
        steps=[TrafficStep(weights={"blue": 0, "green": 100})],
    )
    history = platform.serving.deployment_history("scoring")
    with pytest.raises(UnsupportedCapability, match=r"serving\.native_rollout"):
        native.start(platform, plan)
    with pytest.raises(UnsupportedCapability, match=r"serving\.native_rollout"):
        native.status(platform, "scoring", "any")
    assert platform.serving.deployment_history("scoring") == history  # nothing recorded

    code, _, err = cli(
        capsys, "--home", str(platform.home), "rollout", "scoring", "--to", "green", "--native"
    )
    assert code == 1
    assert "serving.native_rollout" in err
