"""Which monitors an evidence pack counts as a version's post-market monitoring."""

from __future__ import annotations

from artifact_kit import MakeArtifact

from mintaka import ManualClock, Platform
from mintaka.domain.monitoring import MonitorSpec, Signal, SignalKind
from mintaka.governance.evidence import build_pack


def _monitor(platform: Platform) -> str:
    signal = Signal(
        name="errors",
        kind=SignalKind.TELEMETRY,
        metric="error_rate",
        threshold=0.05,
        owner="oncall",
    )
    return platform.monitoring.add_monitor(
        MonitorSpec(endpoint="scoring", model="m", signals=[signal])
    )


def _watching(platform: Platform, ref: str) -> list[str]:
    return [m["id"] for m in build_pack(platform, ref)["monitoring"]["monitors"]]


def test_a_monitor_counts_for_the_versions_its_endpoint_served_while_it_watched(
    platform: Platform, make_servable: MakeArtifact, clock: ManualClock
) -> None:
    for content in (b"v1", b"v2", b"v3"):
        platform.register_model("m", make_servable(content), flavor="pyfunc")
    platform.serving.create_endpoint("scoring", "m:1", route="blue")
    platform.serving.deploy("scoring", "m:2", route="green")
    clock.advance(minutes=1)
    platform.serving.set_traffic("scoring", {"blue": 0, "green": 100})
    clock.advance(minutes=1)
    late = _monitor(platform)  # added after m:1 stopped taking traffic here
    assert _watching(platform, "m:1") == []
    assert _watching(platform, "m:2") == [late]
    assert _watching(platform, "m:3") == []  # never served
    platform.monitoring.raise_alert("scoring:errors", "scoring", value=0.2)

    def alerted(ref: str) -> list[str]:
        return [a["endpoint"] for a in build_pack(platform, ref)["monitoring"]["alerts"]]

    assert alerted("m:2") == ["scoring"]  # raised while m:2 took the traffic
    assert alerted("m:1") == []
    clock.advance(minutes=1)
    platform.serving.set_traffic("scoring", {"blue": 100, "green": 0})
    assert _watching(platform, "m:1") == [late]  # served again while watched


def test_an_alert_raised_while_the_endpoint_is_killed_is_not_the_versions(
    platform: Platform, make_servable: MakeArtifact, clock: ManualClock
) -> None:
    platform.register_model("m", make_servable(b"v1"), flavor="pyfunc")
    platform.serving.create_endpoint("scoring", "m:1", route="blue")
    _monitor(platform)
    clock.advance(minutes=1)
    platform.serving.kill("scoring")  # nothing older to go back to: the switch is pulled
    platform.monitoring.raise_alert("scoring:errors", "scoring", value=0.2)
    assert build_pack(platform, "m:1")["monitoring"]["alerts"] == []
    clock.advance(minutes=1)
    platform.serving.unkill("scoring")
    platform.monitoring.raise_alert("scoring:errors", "scoring", value=0.3)
    [alert] = build_pack(platform, "m:1")["monitoring"]["alerts"]
    assert alert["alert"]["value"] == 0.3


def test_marking_known_good_is_not_a_second_deployment_step(
    platform: Platform, make_servable: MakeArtifact, clock: ManualClock
) -> None:
    platform.register_model("m", make_servable(b"v1"), flavor="pyfunc")
    platform.serving.create_endpoint("scoring", "m:1", route="blue")
    created = clock.now().isoformat()
    clock.advance(minutes=5)
    marked = platform.serving.mark_known_good("scoring")  # as a rollout does before it starts
    history = build_pack(platform, "m:1")["deployments"][0]["history"]
    steps = [(d["id"], d["event"], d["at"], d["known_good"]) for d in history]
    assert steps == [(marked.id, "endpoint.create", created, True)]


def test_a_removed_monitor_counts_only_for_the_versions_served_before_its_removal(
    platform: Platform, make_servable: MakeArtifact, clock: ManualClock
) -> None:
    for content in (b"v1", b"v2"):
        platform.register_model("m", make_servable(content), flavor="pyfunc")
    platform.serving.create_endpoint("scoring", "m:1", route="blue")
    platform.serving.deploy("scoring", "m:2", route="green")
    watcher = _monitor(platform)
    clock.advance(minutes=1)
    platform.monitoring.remove_monitor(watcher, reason="replaced by a dashboard")
    clock.advance(minutes=1)
    platform.serving.set_traffic("scoring", {"blue": 0, "green": 100})
    assert _watching(platform, "m:1") == [watcher]  # served while it watched
    assert _watching(platform, "m:2") == []  # took traffic only after the removal
