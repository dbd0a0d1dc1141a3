"""Native rollouts from the command line: the steps they fill in, and on a backend without one,
refused with the way to roll out instead."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from artifact_kit import MakeArtifact
from cli_kit import cli, init_home

from mintaka import Platform, UnsupportedCapability
from mintaka.domain.serving import RolloutStrategy, TrafficPlan, TrafficStep
from mintaka.rollout import native
from mintaka.rollout.controller import plan_steps


def test_the_local_backend_emulates_native_rollout_with_cores_controller(
    platform: Platform, make_servable: MakeArtifact, capsys: pytest.CaptureFixture[str]
) -> None:
    platform.register_model("credit", make_servable(b"v1"), flavor="pyfunc")
    platform.register_model("credit", make_servable(b"v2"), flavor="pyfunc")
    platform.serving.create_endpoint("scoring", "credit:1", route="blue")
    platform.serving.deploy("scoring", "credit:2", route="green")
    plan = TrafficPlan(
        endpoint="scoring",
        strategy=RolloutStrategy.CANARY,
        steps=[TrafficStep(weights={"blue": 0, "green": 100})],
    )
    history = platform.serving.deployment_history("scoring")
    with pytest.raises(UnsupportedCapability, match=r"serving\.native_rollout \(emulated"):
        native.start(platform, plan)
    with pytest.raises(UnsupportedCapability, match=r"serving\.native_rollout \(emulated"):
        native.status(platform, "scoring", "any")
    assert platform.serving.deployment_history("scoring") == history  # nothing recorded

    code, _, err = cli(
        capsys, "--home", str(platform.home), "rollout", "scoring", "--to", "green", "--native"
    )
    assert code == 1
    assert "serving.native_rollout" in err
    code, _, err = cli(
        capsys, "--home", str(platform.home), "rollout-status", "scoring", "r-1", "--json"
    )
    assert code == 1
    assert "serving.native_rollout" in err


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (native.NativeRolloutStatus.IN_PROGRESS, 0),
        (native.NativeRolloutStatus.SUCCEEDED, 0),
        (native.NativeRolloutStatus.ROLLED_BACK, 1),
        (native.NativeRolloutStatus.FAILED, 1),
        (native.NativeRolloutStatus.UNKNOWN, 1),
    ],
)
def test_rollout_status_reports_for_scripts_and_fails_on_a_rollback(
    home: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    status: native.NativeRolloutStatus,
    code: int,
) -> None:
    init_home(capsys, home)
    asked: list[tuple[str, str]] = []

    def answer(_platform: Platform, endpoint: str, rollout_id: str) -> native.NativeRolloutStatus:
        asked.append((endpoint, rollout_id))
        return status

    monkeypatch.setattr(native, "status", answer)
    got, out, _ = cli(capsys, "--home", str(home), "rollout-status", "scoring", "r-7", "--json")
    assert got == code
    assert json.loads(out) == {"endpoint": "scoring", "rollout": "r-7", "status": status.value}
    assert asked == [("scoring", "r-7")]
    got, out, _ = cli(capsys, "--home", str(home), "rollout-status", "scoring", "r-7")
    assert got == code
    assert f"native rollout r-7 on scoring: {status.value}" in out


@pytest.mark.parametrize(
    ("strategy", "native_shares", "emulated_shares"),
    [
        ("canary", [10, 100], [10, 50, 100]),
        ("linear", [25, 50, 75, 100], [25, 50, 75, 100]),
        ("blue_green", [100], [100]),
    ],
)
def test_a_native_rollout_fills_the_steps_a_cloud_walks_as_written(
    platform: Platform,
    make_servable: MakeArtifact,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    strategy: str,
    native_shares: list[int],
    emulated_shares: list[int],
) -> None:
    platform.register_model("credit", make_servable(b"v1"), flavor="pyfunc")
    platform.register_model("credit", make_servable(b"v2"), flavor="pyfunc")
    platform.serving.create_endpoint("scoring", "credit:1", route="blue")
    platform.serving.deploy("scoring", "credit:2", route="green")
    handed: list[TrafficPlan] = []

    def start(_platform: Platform, plan: TrafficPlan, *, reason: str = "") -> str:
        handed.append(plan)
        return "r-1"

    monkeypatch.setattr(native, "start", start)
    code, out, _ = cli(
        capsys,
        *("--home", str(platform.home), "rollout", "scoring", "--to", "green"),
        *("--strategy", strategy, "--bake", "120", "--native"),
    )
    assert code == 0, out
    [plan] = handed
    assert [step.weights.get("green") for step in plan.steps] == native_shares
    assert {step.bake_seconds for step in plan.steps} == {120}
    assert plan.steps[-1].weights == {"green": 100}

    emulated = plan_steps(
        TrafficPlan(endpoint="scoring", strategy=RolloutStrategy(strategy)), "green", "blue"
    )
    assert [step.weights["green"] for step in emulated.steps] == emulated_shares


def test_a_reason_reading_like_a_native_rollout_does_not_hold_the_endpoint(
    platform: Platform, make_servable: MakeArtifact, capsys: pytest.CaptureFixture[str]
) -> None:
    """Only a native rollout's recorded start counts as one, not a reason a caller wrote."""
    platform.register_model("credit", make_servable(b"v1"), flavor="pyfunc")
    platform.register_model("credit", make_servable(b"v2"), flavor="pyfunc")
    platform.serving.create_endpoint("scoring", "credit:1", route="blue")
    platform.serving.deploy("scoring", "credit:2", route="green")
    home = str(platform.home)
    reason = ["--reason", "native rollout of green per CAB-12"]
    code, _, err = cli(
        capsys, "--home", home, "endpoints", "traffic", "scoring", "blue=50", "green=50", *reason
    )
    assert code == 0, err
    assert platform.serving.unrecorded_native_rollout("scoring") is None
    code, _, err = cli(
        capsys, "--home", home, "endpoints", "traffic", "scoring", "blue=0", "green=100"
    )
    assert code == 0, err
