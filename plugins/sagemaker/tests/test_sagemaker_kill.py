"""The kill switch on SageMaker (emulated): a killed endpoint is deleted, its config and Models
kept with a kill record, and re-created from them when released."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mintaka_conformance.fakes.sagemaker import Fault, FaultInjector, SageMakerFake, make_client
from mintaka_sagemaker.backend import SageMakerBackend
from mintaka_sagemaker.serving import rollout_alarm_name
from sagemaker_testkit import BUCKET, SETTINGS, Cli, sagemaker_platform

from mintaka import BackendError, NotFound, Platform, RetryExhausted
from mintaka.domain.serving import (
    Endpoint,
    EndpointStatus,
    RolloutStrategy,
    Route,
    TrafficMap,
    TrafficPlan,
    TrafficStep,
)
from mintaka.errors import Conflict
from mintaka.rollout import native

KILL_RECORD = f"{SETTINGS['prefix']}/killed/churn-live.json"
BLUE = Route(name="blue", model="churn", version=1)
GREEN = Route(name="green", model="churn", version=2)
GREEN_P99_ALARM = rollout_alarm_name("churn-live", "green", "p99-latency")


@pytest.fixture
def versions(platform: Platform, tmp_path: Path) -> None:
    for n in (1, 2):
        root = tmp_path / f"v{n}"
        root.mkdir()
        (root / "model.bin").write_bytes(b"weights %d" % n)
        platform.register_model("churn", root)


def names(sm: Any) -> tuple[set[str], set[str], set[str]]:
    endpoints = {e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]}
    configs = {c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]}
    models = {m["ModelName"] for m in sm.list_models()["Models"]}
    return endpoints, configs, models


def variant_weights(sm: Any) -> dict[str, Any]:
    """The weight SageMaker gives each production variant of churn-live now."""
    described = sm.describe_endpoint(EndpointName="churn-live")
    return {v["VariantName"]: v["CurrentWeight"] for v in described["ProductionVariants"]}


def throttle(client: Any, operation: str) -> None:
    """Throttle the next ``operation`` on ``client`` through its whole retry budget."""
    FaultInjector(
        script=[Fault.THROTTLING] * SETTINGS["max_attempts"], operations={operation}
    ).attach(client)


def kill_records() -> list[Any]:
    listed = make_client("s3").list_objects_v2(Bucket=BUCKET, Prefix=KILL_RECORD)
    return list(listed.get("Contents") or [])


def test_a_killed_endpoint_serves_nothing_until_released(
    platform: Platform, cloud: SageMakerBackend, sm: Any, versions: None
) -> None:
    platform.serving.create_endpoint("churn-live", "churn:1", route="blue")
    _, configs, models = names(sm)
    # No earlier traffic to go back to: the switch stops the endpoint.
    platform.serving.kill("churn-live", reason="fairness incident")

    assert names(sm) == (set(), configs, models)  # deleted; its config and Models kept
    killed = cloud.get_endpoint("churn-live")
    assert killed.status is EndpointStatus.KILLED
    assert [r.name for r in killed.routes] == ["blue"]
    with pytest.raises(BackendError, match="is killed"):
        platform.serving.invoke("churn-live", [{"x": 1.0}])
    assert platform.sync() == []
    assert cloud.kill("churn-live") == killed  # killing it again changes nothing

    released = platform.serving.unkill("churn-live", reason="retrained and re-approved")
    assert released.status is EndpointStatus.IN_SERVICE
    assert names(sm) == ({"churn-live"}, configs, models)
    assert platform.serving.invoke("churn-live", [{"x": 1.0}])["predictions"]
    assert kill_records() == []
    assert platform.sync() == []
    actions = [e.action for e in platform.audit.events(subject="churn-live")]
    assert actions[-2:] == ["endpoint.kill", "endpoint.unkill"]


def test_an_endpoint_made_again_outside_mintaka_after_its_kill_is_reported_by_sync(
    platform: Platform, sm: Any, versions: None
) -> None:
    platform.serving.create_endpoint("churn-live", "churn:1", route="blue")
    [config] = names(sm)[1]
    platform.serving.kill("churn-live", reason="fairness incident")
    assert platform.sync() == []

    sm.create_endpoint(EndpointName="churn-live", EndpointConfigName=config)  # in the console

    [difference] = platform.sync()
    assert (difference.kind, difference.subject) == ("endpoint.killed", "endpoint churn-live")
    assert (difference.recorded, difference.observed) == ({"killed": True}, {"killed": False})


def test_a_released_endpoint_gets_back_the_weights_it_had(
    cloud: SageMakerBackend, sm: Any, versions: None
) -> None:
    cloud.create_endpoint("churn-live", [BLUE, GREEN], TrafficMap(weights={"blue": 100}))
    cloud.set_traffic("churn-live", TrafficMap(weights={"blue": 70, "green": 30}))  # in place
    cloud.kill("churn-live")
    record = json.loads(make_client("s3").get_object(Bucket=BUCKET, Key=KILL_RECORD)["Body"].read())
    assert record["traffic"]["weights"] == {"blue": 70, "green": 30}
    assert cloud.get_endpoint("churn-live").traffic.weights == {"blue": 70, "green": 30}

    assert cloud.unkill("churn-live").traffic.weights == {"blue": 70, "green": 30}
    assert variant_weights(sm) == {"blue": 70, "green": 30}


def test_releasing_an_endpoint_that_is_not_killed_changes_nothing(
    cloud: SageMakerBackend, sm: Any, versions: None
) -> None:
    cloud.create_endpoint("churn-live", [BLUE], TrafficMap(weights={"blue": 100}))
    before = sm.describe_endpoint(EndpointName="churn-live")["EndpointConfigName"]
    assert cloud.unkill("churn-live").status is EndpointStatus.IN_SERVICE
    assert sm.describe_endpoint(EndpointName="churn-live")["EndpointConfigName"] == before


def test_deleting_a_killed_endpoint_removes_what_mintaka_made_and_the_record(
    cloud: SageMakerBackend, sm: Any, versions: None
) -> None:
    cloud.create_endpoint("churn-live", [BLUE], TrafficMap(weights={"blue": 100}))
    cloud.kill("churn-live")
    cloud.delete_endpoint("churn-live")
    assert names(sm) == (set(), set(), set())
    assert kill_records() == []


def test_without_a_bucket_a_missing_endpoint_is_still_not_found_and_kill_is_refused_first(
    fake: Any, sm: Any, tmp_path: Path
) -> None:
    from sagemaker_testkit import sagemaker_platform

    from mintaka import ConfigurationError, NotFound

    bare = {k: v for k, v in SETTINGS.items() if k != "bucket"}
    with sagemaker_platform(tmp_path / "home", bare) as platform:
        cloud = platform.backend
        assert isinstance(cloud, SageMakerBackend)
        with pytest.raises(NotFound):
            cloud.get_endpoint("nowhere")
        sm.create_model(
            ModelName="m", PrimaryContainer={"Image": "i"}, ExecutionRoleArn=SETTINGS["role_arn"]
        )
        sm.create_endpoint_config(
            EndpointConfigName="c",
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": "m",
                    "InitialInstanceCount": 1,
                    "InstanceType": "ml.m5.large",
                }
            ],
        )
        sm.create_endpoint(EndpointName="churn-live", EndpointConfigName="c")
        with pytest.raises(ConfigurationError, match="set bucket"):
            cloud.kill("churn-live")
        assert sm.describe_endpoint(EndpointName="churn-live")["EndpointStatus"] == "InService"


def test_the_command_line_says_what_the_emulated_switch_cannot_do(
    fake: Any, tmp_path: Path, cli: Cli
) -> None:
    with sagemaker_platform(cli.home) as platform:
        (tmp_path / "v1").mkdir()
        (tmp_path / "v1" / "model.bin").write_bytes(b"weights")
        platform.register_model("churn", tmp_path / "v1")
        platform.serving.create_endpoint("churn-live", "churn:1", route="blue")

    code, said = cli("kill", "churn-live", "--reason", "incident")
    assert code == 0, said
    assert "killed" in said
    assert "note: sagemaker has no kill switch of its own: a request to a killed endpoint" in said
    code, said = cli("unkill", "churn-live", "--reason", "fixed")
    assert code == 0, said
    assert "in_service" in said
    assert "releasing takes as long as creating the endpoint" in said


def _fail_deletes(cloud: SageMakerBackend) -> None:
    """Throttle the next DeleteEndpoint through its whole retry budget."""
    throttle(cloud.clients.sagemaker, "DeleteEndpoint")


def test_deleting_an_endpoint_whose_kill_failed_leaves_no_record_to_kill_its_successor(
    platform: Platform, cloud: SageMakerBackend, sm: Any, versions: None
) -> None:
    platform.serving.create_endpoint("churn-live", "churn:1", route="blue")
    _fail_deletes(cloud)
    with pytest.raises(RetryExhausted):
        platform.serving.kill("churn-live", reason="incident")
    assert platform.serving.get_endpoint("churn-live").status is EndpointStatus.IN_SERVICE
    platform.serving.delete_endpoint("churn-live")
    assert kill_records() == []

    platform.serving.create_endpoint("churn-live", "churn:2", route="green")
    killed = platform.serving.kill("churn-live", reason="incident")
    assert [r.name for r in killed.routes] == ["green"]
    released = platform.serving.unkill("churn-live", reason="fixed")
    assert released.status is EndpointStatus.IN_SERVICE
    assert [(r.name, r.version) for r in released.routes] == [("green", 2)]
    assert names(sm)[0] == {"churn-live"}
    assert platform.sync() == []


def test_a_kill_after_a_failed_one_records_the_endpoint_as_it_is_now(
    cloud: SageMakerBackend, sm: Any, versions: None
) -> None:
    cloud.create_endpoint("churn-live", [BLUE, GREEN], TrafficMap(weights={"blue": 100}))
    _fail_deletes(cloud)
    with pytest.raises(RetryExhausted):
        cloud.kill("churn-live")
    cloud.set_traffic("churn-live", TrafficMap(weights={"blue": 40, "green": 60}))
    assert cloud.kill("churn-live").traffic.weights == {"blue": 40, "green": 60}
    assert cloud.unkill("churn-live").traffic.weights == {"blue": 40, "green": 60}
    assert variant_weights(sm) == {"blue": 40, "green": 60}


def test_releasing_an_endpoint_whose_config_was_deleted_says_what_to_do(
    platform: Platform, cloud: SageMakerBackend, sm: Any, versions: None
) -> None:
    platform.serving.create_endpoint("churn-live", "churn:1", route="blue")
    platform.serving.kill("churn-live", reason="fairness incident")
    [config] = names(sm)[1]
    sm.delete_endpoint_config(EndpointConfigName=config)
    assert cloud.get_endpoint("churn-live").status is EndpointStatus.KILLED
    with pytest.raises(NotFound, match=f"{config}.*was deleted.*delete the endpoint"):
        platform.serving.unkill("churn-live")
    assert names(sm)[0] == set()
    assert kill_records()  # still killed, and reads back so
    assert platform.serving.get_endpoint("churn-live").status is EndpointStatus.KILLED
    platform.serving.delete_endpoint("churn-live")
    assert kill_records() == []


def _killed_before_recorded(
    platform: Platform, monkeypatch: pytest.MonkeyPatch, cloud: SageMakerBackend, call: str
) -> list[Endpoint]:
    """Pull the switch on churn-live right after the backend's next ``call`` and before core
    records it: the kill record then saves what that call made."""
    real = getattr(cloud, call)
    pulled: list[Endpoint] = []

    def then_kill(*args: Any) -> Any:
        answer = real(*args)
        if not pulled:
            pulled.append(platform.serving.kill("churn-live", reason="incident"))
        return answer

    monkeypatch.setattr(cloud, call, then_kill)
    return pulled


@pytest.mark.parametrize(
    ("call", "change"),
    [
        ("set_traffic", lambda s: s.set_traffic("churn-live", {"blue": 50, "green": 50})),
        ("update_routes", lambda s: s.retire_route("churn-live", "green")),
    ],
    ids=["traffic", "retire"],
)
def test_a_change_refused_as_killed_while_applied_is_not_served_after_the_release(
    platform: Platform,
    cloud: SageMakerBackend,
    versions: None,
    monkeypatch: pytest.MonkeyPatch,
    call: str,
    change: Callable[[Any], object],
) -> None:
    serving = platform.serving
    _blue_with_green_idle(platform)
    pulled = _killed_before_recorded(platform, monkeypatch, cloud, call)
    with pytest.raises(Conflict, match="killed while"):
        change(serving)
    [killed] = pulled
    assert killed.status is EndpointStatus.KILLED
    released = serving.unkill("churn-live", reason="release")
    held = cloud.get_endpoint("churn-live")
    assert (set(held.routes), held.traffic.live_weights) == (
        set(released.routes),
        released.traffic.live_weights,
    )
    assert released.traffic.weights == {"blue": 100, "green": 0}
    assert platform.sync() == []


# -- a kill while SageMaker walks a native rollout ----------------------------------------------


def _refuse_deletes(cloud: SageMakerBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    """SageMaker refuses DeleteEndpoint as it refuses other changes of an endpoint Updating."""
    call = cloud._sm

    def refused(name: str, **params: Any) -> dict[str, Any]:
        if name == "delete_endpoint":
            raise Conflict("[sagemaker] Cannot update in-progress endpoint")
        return call(name, **params)

    monkeypatch.setattr(cloud, "_sm", refused)


def _blue_with_green_idle(platform: Platform) -> None:
    """churn-live serving churn:1 on blue, with churn:2 deployed on green at 0 %."""
    platform.serving.create_endpoint("churn-live", "churn:1", route="blue")
    platform.serving.deploy("churn-live", "churn:2", route="green")


def _canary_onto_green(**sla: float) -> TrafficPlan:
    """A canary of churn-live: 10 % on green baked for 300 s, then all of it, under ``sla``."""
    return TrafficPlan(
        endpoint="churn-live",
        strategy=RolloutStrategy.CANARY,
        steps=[
            TrafficStep(weights={"blue": 90, "green": 10}, bake_seconds=300),
            TrafficStep(weights={"blue": 0, "green": 100}),
        ],
        sla=sla,
    )


def _rolling_out(platform: Platform, fake: SageMakerFake, **sla: float) -> str:
    """churn-live on blue, green idle, and a native canary onto green SageMaker is walking."""
    _blue_with_green_idle(platform)
    fake.script_endpoint("churn-live", ["Updating"] * 4 + ["InService"])
    return native.start(platform, _canary_onto_green(**sla))


def _alarm_state(name: str) -> str:
    alarms = make_client("cloudwatch").describe_alarms(AlarmNames=[name])["MetricAlarms"]
    return str(alarms[0]["StateValue"])


def _ended(platform: Platform, rollout_id: str) -> native.NativeRolloutStatus:
    for _ in range(5):
        found = native.status(platform, "churn-live", rollout_id)
        if found is not native.NativeRolloutStatus.IN_PROGRESS:
            return found
    raise AssertionError(f"native rollout {rollout_id} never ended")


def test_a_kill_sagemaker_refuses_mid_rollout_trips_its_alarms_and_says_so(
    platform: Platform,
    cloud: SageMakerBackend,
    fake: SageMakerFake,
    sm: Any,
    versions: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rollout_id = _rolling_out(platform, fake, p99_latency_ms=250)
    alarm = GREEN_P99_ALARM
    _refuse_deletes(cloud, monkeypatch)
    with pytest.raises(Conflict, match=rf"{alarm}.*ALARM.*rolls .*{rollout_id}.* back.*again"):
        platform.serving.kill("churn-live", reason="incident")
    assert _alarm_state(alarm) == "ALARM"
    assert platform.serving.get_endpoint("churn-live").status is EndpointStatus.IN_SERVICE
    assert _ended(platform, rollout_id) is native.NativeRolloutStatus.ROLLED_BACK
    assert sm.describe_endpoint(EndpointName="churn-live")["EndpointConfigName"] != rollout_id
    monkeypatch.undo()
    assert platform.serving.kill("churn-live").status is EndpointStatus.KILLED


def test_a_kill_sagemaker_refuses_mid_rollout_without_alarms_is_refused_loudly(
    platform: Platform,
    cloud: SageMakerBackend,
    fake: SageMakerFake,
    versions: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rollout_id = _rolling_out(platform, fake)
    _refuse_deletes(cloud, monkeypatch)
    with pytest.raises(Conflict, match=rf"{rollout_id}.*no rollback alarm.*again"):
        platform.serving.kill("churn-live", reason="incident")
    assert platform.serving.get_endpoint("churn-live").status is EndpointStatus.IN_SERVICE
    assert "endpoint.kill" not in [e.action for e in platform.audit.events(subject="churn-live")]


def test_a_release_after_a_kill_mid_rollout_serves_what_the_rollout_started_from(
    platform: Platform, fake: SageMakerFake, sm: Any, versions: None
) -> None:
    rollout_id = _rolling_out(platform, fake)
    assert platform.serving.kill("churn-live", reason="incident").status is EndpointStatus.KILLED
    released = platform.serving.unkill("churn-live", reason="fixed")
    assert released.traffic.live_weights == {"blue": 100}
    weights = variant_weights(sm)
    assert {variant for variant, weight in weights.items() if weight > 0} == {"blue"}
    assert native.status(platform, "churn-live", rollout_id) is native.NativeRolloutStatus.UNKNOWN
    assert platform.sync() == []


def test_a_kill_sagemaker_refuses_mid_update_trips_no_alarm_of_an_earlier_rollout(
    platform: Platform,
    cloud: SageMakerBackend,
    fake: SageMakerFake,
    sm: Any,
    versions: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rollout_id = _rolling_out(platform, fake, p99_latency_ms=250)
    assert _ended(platform, rollout_id) is native.NativeRolloutStatus.SUCCEEDED
    alarm = GREEN_P99_ALARM
    served = sm.describe_endpoint_config(EndpointConfigName=rollout_id)
    sm.create_endpoint_config(
        EndpointConfigName="churn-live-by-hand", ProductionVariants=served["ProductionVariants"]
    )
    fake.script_endpoint("churn-live", ["Updating"] * 3 + ["InService"])
    sm.update_endpoint(EndpointName="churn-live", EndpointConfigName="churn-live-by-hand")
    _refuse_deletes(cloud, monkeypatch)
    with pytest.raises(Conflict, match=r"being updated to churn-live-by-hand.*again"):
        platform.serving.kill("churn-live", reason="incident")
    assert _alarm_state(alarm) == "OK"


def test_a_kill_mid_rollout_over_an_archived_start_can_be_released(
    platform: Platform, fake: SageMakerFake, versions: None
) -> None:
    _rolling_out(platform, fake)
    platform.archive_version("churn", 1, reason="v1 is retired")  # recorded at 0% by the start
    assert platform.serving.kill("churn-live", reason="incident").status is EndpointStatus.KILLED
    latest = platform.serving.deployment_history("churn-live")[-1]
    assert not (latest.known_good and latest.traffic.live_weights.get("blue"))
    released = platform.serving.unkill("churn-live", reason="fixed")
    assert released.status is EndpointStatus.IN_SERVICE


def test_a_switch_pulled_after_sagemaker_finished_the_rollout_records_what_it_served(
    platform: Platform, cloud: SageMakerBackend, fake: SageMakerFake, versions: None
) -> None:
    _blue_with_green_idle(platform)
    # the fake finishes it at once; no status asked, its end not recorded
    native.start(platform, _canary_onto_green())
    assert cloud.get_endpoint("churn-live").traffic.live_weights == {"green": 100}
    # the kill's traffic is refused: the switch is pulled
    throttle(cloud.clients.sagemaker, "UpdateEndpointWeightsAndCapacities")
    killed = platform.serving.kill("churn-live", reason="incident")
    assert killed.status is EndpointStatus.KILLED
    assert killed.traffic.live_weights == {"green": 100}
    assert platform.sync() == []


def test_a_throttled_delete_mid_rollout_is_no_refusal_and_trips_no_alarm(
    platform: Platform, cloud: SageMakerBackend, fake: SageMakerFake, versions: None
) -> None:
    _rolling_out(platform, fake, p99_latency_ms=250)
    _fail_deletes(cloud)
    with pytest.raises(RetryExhausted, match="delete_endpoint"):
        platform.serving.kill("churn-live", reason="incident")
    assert _alarm_state(GREEN_P99_ALARM) == "OK"
    assert platform.serving.get_endpoint("churn-live").status is EndpointStatus.IN_SERVICE


def test_a_kill_whose_rollout_alarms_could_not_be_set_names_them_and_says_retry_now(
    platform: Platform,
    cloud: SageMakerBackend,
    fake: SageMakerFake,
    versions: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rollout_id = _rolling_out(platform, fake, p99_latency_ms=250)
    alarm = GREEN_P99_ALARM
    _refuse_deletes(cloud, monkeypatch)
    throttle(cloud.clients.cloudwatch, "SetAlarmState")
    with pytest.raises(Conflict) as raised:
        platform.serving.kill("churn-live", reason="incident")
    said = str(raised.value)
    assert "no rollback alarm" not in said
    assert "SLA bound" not in said
    assert re.search(rf"{rollout_id}.*{alarm}.*failed.*nothing stops it yet.*again now", said)
    assert _alarm_state(alarm) == "OK"
