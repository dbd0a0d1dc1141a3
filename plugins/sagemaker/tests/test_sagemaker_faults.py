"""Throttling, exhausted retry budgets and lost responses, injected into the backend's own
clients (moto in-process, no backoff, seeded schedules)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mintaka_conformance.fakes.sagemaker import (
    Fault,
    FaultInjector,
    SageMakerFake,
    make_client,
    mock_sagemaker,
)
from mintaka_sagemaker.backend import SageMakerBackend
from sagemaker_testkit import BUCKET, SETTINGS, sagemaker_platform

from mintaka import Platform, RetryExhausted
from mintaka.domain.serving import Route, TrafficMap


@pytest.fixture
def platform(tmp_path: Path, inference_image: None) -> Iterator[Platform]:
    with mock_sagemaker():
        make_client("s3").create_bucket(Bucket=BUCKET)
        with sagemaker_platform(tmp_path / "home", seed=7) as plat:
            yield plat


def artifact(tmp_path: Path, content: bytes) -> Path:
    root = tmp_path / f"artifact-{len(list(tmp_path.iterdir()))}"
    root.mkdir()
    (root / "model.bin").write_bytes(content)
    return root


def sagemaker_client(platform: Platform) -> Any:
    backend = platform.backend
    assert isinstance(backend, SageMakerBackend)
    return backend.clients.sagemaker


def audited(platform: Platform, action: str) -> list[str]:
    return [e.subject for e in platform.audit.events() if e.action == action]


def test_every_operation_completes_under_thirty_percent_throttling(
    platform: Platform, tmp_path: Path
) -> None:
    faults = FaultInjector(seed=20261127, throttling=0.3, max_consecutive=3)
    faults.attach(sagemaker_client(platform))
    for n in range(3):
        platform.register_model("churn", artifact(tmp_path, b"weights %d" % n), tags={"n": str(n)})
    platform.set_alias("churn", "champion", 2)
    platform.set_tags("churn", 1, {"team": "risk"})
    platform.serving.create_endpoint("churn-live", "churn:1", route="blue")
    platform.serving.deploy("churn-live", "churn:2", route="green")
    platform.serving.set_traffic("churn-live", {"blue": 80, "green": 20})
    platform.serving.delete_endpoint("churn-live")
    assert [v.version for v in platform.list_versions("churn")] == [1, 2, 3]
    assert platform.backend.get_aliases("churn") == {"champion": 2}  # type: ignore[attr-defined]
    throttled = faults.faults(Fault.THROTTLING)
    assert len(throttled) >= 10
    assert any(a.attempt > 1 for a in faults.history)


def test_exhausted_budget_is_retry_exhausted_and_leaves_no_version(
    platform: Platform, tmp_path: Path
) -> None:
    platform.register_model("churn", artifact(tmp_path, b"first"))
    faults = FaultInjector(throttling=1.0, operations={"CreateModelPackage"})
    faults.attach(sagemaker_client(platform))
    with pytest.raises(RetryExhausted) as caught:
        platform.register_model("churn", artifact(tmp_path, b"second"))
    assert caught.value.backend == "sagemaker"
    assert caught.value.__cause__ is not None
    assert len(faults.faults()) == SETTINGS["max_attempts"]
    assert [v.version for v in platform.list_versions("churn")] == [1]
    packages = make_client("sagemaker").list_model_packages(ModelPackageGroupName="churn")
    assert len(packages["ModelPackageSummaryList"]) == 1
    objects = make_client("s3").list_objects_v2(Bucket=BUCKET).get("Contents", [])
    assert len(objects) == 1  # the refused version's artifact was removed again
    assert len(audited(platform, "model.register")) == 1


def test_exhausted_budget_on_create_endpoint_leaves_no_config_or_model(
    platform: Platform, tmp_path: Path
) -> None:
    platform.register_model("churn", artifact(tmp_path, b"weights"))
    faults = FaultInjector(throttling=1.0, operations={"CreateEndpoint"})
    faults.attach(sagemaker_client(platform))
    with pytest.raises(RetryExhausted):
        platform.serving.create_endpoint("churn-live", "churn:1", route="blue")
    sm = make_client("sagemaker")
    assert sm.list_endpoints()["Endpoints"] == []
    assert sm.list_endpoint_configs()["EndpointConfigs"] == []
    assert sm.list_models()["Models"] == []
    assert platform.serving.list_endpoints() == []


def test_lost_response_duplicates_no_version_and_no_audit_event(
    platform: Platform, tmp_path: Path
) -> None:
    faults = FaultInjector(
        script=[Fault.LOST_RESPONSE],
        operations={"CreateModelPackage"},
    )
    faults.attach(sagemaker_client(platform))
    version = platform.register_model("churn", artifact(tmp_path, b"weights"))
    assert faults.faults(Fault.LOST_RESPONSE)
    packages = make_client("sagemaker").list_model_packages(ModelPackageGroupName="churn")
    assert len(packages["ModelPackageSummaryList"]) == 1
    assert version.version == 1
    assert len(audited(platform, "model.register")) == 1


def test_lost_responses_on_creates_are_reconciled(platform: Platform, tmp_path: Path) -> None:
    faults = FaultInjector(
        script=[Fault.LOST_RESPONSE, None] * 4,  # each create: lost, then retried
        operations={
            "CreateModelPackageGroup",
            "CreateModel",
            "CreateEndpointConfig",
            "CreateEndpoint",
        },
    )
    faults.attach(sagemaker_client(platform))
    platform.register_model("churn", artifact(tmp_path, b"weights"))
    platform.serving.create_endpoint("churn-live", "churn:1", route="blue")
    assert len(faults.faults(Fault.LOST_RESPONSE)) == 4
    sm = make_client("sagemaker")
    assert len(sm.list_model_package_groups()["ModelPackageGroupSummaryList"]) == 1
    assert len(sm.list_endpoints()["Endpoints"]) == 1
    assert len(sm.list_endpoint_configs()["EndpointConfigs"]) == 1
    assert len(sm.list_models()["Models"]) == 1
    assert audited(platform, "endpoint.create") == ["churn-live"]
    answer = platform.serving.invoke("churn-live", {"a": 1.0})
    assert answer["route"] == "blue"


def _lost_then_throttled() -> list[Fault]:
    """One create's attempts: the first succeeds with its response lost, every retry throttled."""
    return [Fault.LOST_RESPONSE, *[Fault.THROTTLING] * (SETTINGS["max_attempts"] - 1)]


def test_a_lost_create_endpoint_throttled_to_the_end_of_its_budget_is_reconciled(
    platform: Platform, tmp_path: Path
) -> None:
    platform.register_model("churn", artifact(tmp_path, b"weights"))
    faults = FaultInjector(script=_lost_then_throttled(), operations={"CreateEndpoint"})
    faults.attach(sagemaker_client(platform))
    endpoint = platform.serving.create_endpoint("churn-live", "churn:1", route="blue")
    assert len(faults.faults(Fault.THROTTLING)) == SETTINGS["max_attempts"] - 1
    sm = make_client("sagemaker")
    [config] = sm.list_endpoint_configs()["EndpointConfigs"]
    [found] = sm.list_endpoints()["Endpoints"]
    assert (
        sm.describe_endpoint(EndpointName="churn-live")["EndpointConfigName"]
        == (config["EndpointConfigName"])
    )
    assert found["EndpointStatus"] == "InService"
    assert len(sm.list_models()["Models"]) == 1
    assert [r.name for r in endpoint.routes] == ["blue"]
    assert audited(platform, "endpoint.create") == ["churn-live"]
    assert platform.serving.invoke("churn-live", {"a": 1.0})["route"] == "blue"


def test_a_create_endpoint_whose_outcome_cannot_be_told_keeps_what_it_may_use(
    platform: Platform, tmp_path: Path
) -> None:
    platform.register_model("churn", artifact(tmp_path, b"weights"))
    faults = FaultInjector(
        script=[*_lost_then_throttled(), *[Fault.THROTTLING] * SETTINGS["max_attempts"]],
        operations={"CreateEndpoint", "DescribeEndpoint"},
    )
    faults.attach(sagemaker_client(platform))
    with pytest.raises(RetryExhausted):
        platform.serving.create_endpoint("churn-live", "churn:1", route="blue")
    sm = make_client("sagemaker")
    [config] = sm.list_endpoint_configs()["EndpointConfigs"]
    # The endpoint was created by the lost attempt and still has its config and model.
    assert (
        sm.describe_endpoint(EndpointName="churn-live")["EndpointConfigName"]
        == (config["EndpointConfigName"])
    )
    assert len(sm.list_models()["Models"]) == 1
    assert audited(platform, "endpoint.create") == []


def test_a_lost_update_endpoint_throttled_to_the_end_of_its_budget_finishes_the_switch(
    platform: Platform, tmp_path: Path
) -> None:
    platform.register_model("churn", artifact(tmp_path, b"one"))
    platform.register_model("churn", artifact(tmp_path, b"two"))
    platform.serving.create_endpoint("churn-live", "churn:1", route="blue")
    sm = make_client("sagemaker")
    before = sm.describe_endpoint(EndpointName="churn-live")["EndpointConfigName"]
    faults = FaultInjector(script=_lost_then_throttled(), operations={"UpdateEndpoint"})
    faults.attach(sagemaker_client(platform))
    endpoint = platform.serving.deploy("churn-live", "churn:2", route="green")
    assert len(faults.faults(Fault.THROTTLING)) == SETTINGS["max_attempts"] - 1
    serving = sm.describe_endpoint(EndpointName="churn-live")["EndpointConfigName"]
    configs = [c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]]
    assert serving != before
    assert configs == [serving]  # the config it serves is kept, the one it left is retired
    assert len(sm.list_models()["Models"]) == 2
    assert [r.name for r in endpoint.routes] == ["blue", "green"]
    assert [r.name for r in platform.backend.get_endpoint("churn-live").routes] == [
        "blue",
        "green",
    ]
    assert platform.sync() == []


def test_a_lost_update_endpoint_still_under_way_finishes_the_switch(
    platform: Platform, tmp_path: Path
) -> None:
    platform.register_model("churn", artifact(tmp_path, b"one"))
    platform.register_model("churn", artifact(tmp_path, b"two"))
    platform.serving.create_endpoint("churn-live", "churn:1", route="blue")
    SageMakerFake().script_endpoint("churn-live", ["Updating", "Updating", "InService"])
    faults = FaultInjector(script=_lost_then_throttled(), operations={"UpdateEndpoint"})
    faults.attach(sagemaker_client(platform))
    endpoint = platform.serving.deploy("churn-live", "churn:2", route="green")
    sm = make_client("sagemaker")
    serving = sm.describe_endpoint(EndpointName="churn-live")["EndpointConfigName"]
    configs = [c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]]
    assert configs == [serving]  # the config it was switching to is kept and now served
    assert [r.name for r in endpoint.routes] == ["blue", "green"]
    assert platform.sync() == []


def test_an_update_endpoint_whose_outcome_cannot_be_told_keeps_what_it_may_use(
    platform: Platform, tmp_path: Path
) -> None:
    platform.register_model("churn", artifact(tmp_path, b"one"))
    platform.register_model("churn", artifact(tmp_path, b"two"))
    backend = platform.backend
    blue = Route(name="blue", model="churn", version=1)
    green = Route(name="green", model="churn", version=2)
    backend.create_endpoint("churn-live", [blue], TrafficMap(weights={"blue": 100}))
    faults = FaultInjector(  # the one describe before the update, then the update's attempts
        script=[None, *_lost_then_throttled(), *[Fault.THROTTLING] * SETTINGS["max_attempts"]],
        operations={"UpdateEndpoint", "DescribeEndpoint"},
    )
    faults.attach(sagemaker_client(platform))
    with pytest.raises(RetryExhausted):
        backend.update_routes("churn-live", [blue, green], TrafficMap(weights={"blue": 100}))
    sm = make_client("sagemaker")
    serving = sm.describe_endpoint(EndpointName="churn-live")["EndpointConfigName"]
    configs = {c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]}
    assert len(configs) == 2
    assert serving in configs
    assert len(sm.list_models()["Models"]) == 2


def test_a_create_endpoint_whose_second_model_cannot_be_made_leaves_no_model(
    platform: Platform, tmp_path: Path
) -> None:
    platform.register_model("churn", artifact(tmp_path, b"one"))
    platform.register_model("churn", artifact(tmp_path, b"two"))
    faults = FaultInjector(
        script=[None, *[Fault.THROTTLING] * SETTINGS["max_attempts"]],
        operations={"CreateModel"},
    )
    faults.attach(sagemaker_client(platform))
    routes = [
        Route(name="blue", model="churn", version=1),
        Route(name="green", model="churn", version=2),
    ]
    with pytest.raises(RetryExhausted):
        platform.backend.create_endpoint(
            "churn-live", routes, TrafficMap(weights={"blue": 50, "green": 50})
        )
    _nothing_left_in_sagemaker()


def _nothing_left_in_sagemaker() -> None:
    """No Model, endpoint config or endpoint: a failed create took back all it made."""
    sm = make_client("sagemaker")
    assert sm.list_models()["Models"] == []
    assert sm.list_endpoint_configs()["EndpointConfigs"] == []
    assert sm.list_endpoints()["Endpoints"] == []


def test_a_model_whose_create_response_was_lost_is_removed_when_the_create_fails(
    platform: Platform, tmp_path: Path
) -> None:
    platform.register_model("churn", artifact(tmp_path, b"weights"))
    faults = FaultInjector(  # CreateModel: made, response lost, retried; the config never made
        script=[Fault.LOST_RESPONSE, None, *[Fault.THROTTLING] * SETTINGS["max_attempts"]],
        operations={"CreateModel", "CreateEndpointConfig"},
    )
    faults.attach(sagemaker_client(platform))
    with pytest.raises(RetryExhausted):
        platform.serving.create_endpoint("churn-live", "churn:1", route="blue")
    assert faults.faults(Fault.LOST_RESPONSE)
    _nothing_left_in_sagemaker()


def test_a_model_whose_create_response_was_lost_is_removed_when_the_update_fails(
    platform: Platform, tmp_path: Path
) -> None:
    platform.register_model("churn", artifact(tmp_path, b"one"))
    platform.register_model("churn", artifact(tmp_path, b"two"))
    platform.serving.create_endpoint("churn-live", "churn:1", route="blue")
    sm = make_client("sagemaker")
    serving = sm.describe_endpoint(EndpointName="churn-live")["EndpointConfigName"]
    [blue] = sm.list_models()["Models"]
    faults = FaultInjector(
        script=[Fault.LOST_RESPONSE, None, *[Fault.THROTTLING] * SETTINGS["max_attempts"]],
        operations={"CreateModel", "CreateEndpointConfig"},
    )
    faults.attach(sagemaker_client(platform))
    with pytest.raises(RetryExhausted):
        platform.serving.deploy("churn-live", "churn:2", route="green")
    assert [m["ModelName"] for m in sm.list_models()["Models"]] == [blue["ModelName"]]
    configs = [c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]]
    assert configs == [serving]


def test_a_retried_create_keeps_a_model_another_config_of_the_endpoint_serves(
    platform: Platform, tmp_path: Path
) -> None:
    """A create throttled once and then told the Model exists met one made before the call: a
    config the endpoint may still switch to serves it, so a failure later keeps it."""
    platform.register_model("churn", artifact(tmp_path, b"one"))
    platform.register_model("churn", artifact(tmp_path, b"two"))
    backend = platform.backend
    blue = Route(name="blue", model="churn", version=1)
    green = Route(name="green", model="churn", version=2)
    backend.create_endpoint("churn-live", [blue], TrafficMap(weights={"blue": 100}))
    faults = FaultInjector(  # an update whose outcome cannot be told keeps its config and Model
        script=[None, *[Fault.THROTTLING] * SETTINGS["max_attempts"] * 2],
        operations={"UpdateEndpoint", "DescribeEndpoint"},
    )
    faults.attach(sagemaker_client(platform))
    with pytest.raises(RetryExhausted):
        backend.update_routes("churn-live", [blue, green], TrafficMap(weights={"blue": 100}))
    sm = make_client("sagemaker")
    models = sorted(m["ModelName"] for m in sm.list_models()["Models"])
    kept = sorted(c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"])
    assert len(models) == 2  # the green Model, kept with the config the switch may be going to
    assert len(kept) == 2
    again = FaultInjector(  # the same green Model asked for again, then no config made
        script=[Fault.THROTTLING, None, *[Fault.THROTTLING] * SETTINGS["max_attempts"]],
        operations={"CreateModel", "CreateEndpointConfig"},
    )
    again.attach(sagemaker_client(platform))
    with pytest.raises(RetryExhausted):
        backend.update_routes(
            "churn-live", [blue, green], TrafficMap(weights={"blue": 50, "green": 50})
        )
    assert sorted(m["ModelName"] for m in sm.list_models()["Models"]) == models
    configs = sorted(c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"])
    assert configs == kept
