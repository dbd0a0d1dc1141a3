"""Invoking an asynchronous SageMaker endpoint (its config has ``AsyncInferenceConfig``): the
request goes to S3 and InvokeEndpointAsync, and the answer is read back from S3 on the backend's
clock; real-time endpoints are invoked as before."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from mintaka_conformance.fakes.sagemaker import SageMakerFake, make_client
from mintaka_sagemaker.backend import SageMakerBackend
from mintaka_sagemaker.settings import SageMakerSettings
from sagemaker_testkit import BUCKET, SETTINGS, Calls, deploy_without_registry, sagemaker_platform

from mintaka import BackendError, ConfigurationError, IdFactory, ManualClock, Platform
from mintaka.errors import ValidationError
from mintaka.interfaces import BackendContext

ENDPOINT = "async-api"
MODEL = f"{ENDPOINT}-model"  # the Model deploy_without_registry makes
OUTPUTS = {
    "S3OutputPath": f"s3://{BUCKET}/async-out/",
    "S3FailurePath": f"s3://{BUCKET}/async-failed/",
}
ROWS = [{"a": 1.0, "b": 2.0}, {"a": 4.0}]
INPUTS = f"{SETTINGS['prefix']}/async-inputs/"


def asynchronous_endpoint(sm: Any, name: str = ENDPOINT, outputs: dict[str, str] = OUTPUTS) -> str:
    """An asynchronous endpoint made with boto3, serving one file of model data from S3."""
    make_client("s3").put_object(Bucket=BUCKET, Key=f"jobs/{name}/model.joblib", Body=b"weights")
    container = {
        "Image": SETTINGS["image_uri"],
        "ModelDataUrl": f"s3://{BUCKET}/jobs/{name}/model.joblib",
    }
    deploy_without_registry(
        sm,
        name,
        {"PrimaryContainer": container},
        config={"AsyncInferenceConfig": {"OutputConfig": outputs}},
    )
    return name


def adopted(platform: Platform, sm: Any) -> str:
    """The asynchronous endpoint, its route registered as churn:1 and the endpoint adopted."""
    asynchronous_endpoint(sm)
    platform.migration.adopt_served(ENDPOINT, "alltraffic", "churn", reason="inherited")
    platform.migration.adopt_endpoint(ENDPOINT, reason="inherited")
    return ENDPOINT


def keys(prefix: str) -> list[str]:
    listed = make_client("s3").list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return [str(o["Key"]) for o in listed.get("Contents") or []]


def backend_on(tmp_path: Path, clock: ManualClock, **settings: Any) -> SageMakerBackend:
    """A backend of its own (no Platform) on ``clock``, with ``settings`` over the test ones."""
    return SageMakerBackend(
        SageMakerSettings(**{**SETTINGS, **settings}),
        BackendContext(home=tmp_path / "backend", clock=clock, ids=IdFactory(seed=3)),
    )


def test_an_adopted_asynchronous_endpoint_answers_through_s3(
    platform: Platform, sm: Any, fake: SageMakerFake
) -> None:
    adopted(platform, sm)
    answer = platform.serving.invoke(ENDPOINT, ROWS)

    assert answer["endpoint"] == ENDPOINT
    assert answer["route"] == "alltraffic"  # the endpoint's one live variant
    assert [p["output"] for p in answer["predictions"]] == [3.0, 4.0]
    assert len({p["id"] for p in answer["predictions"]}) == 2
    [served] = fake.invocations(ENDPOINT)
    assert (served.variant, json.loads(served.body)) == ("AllTraffic", {"inputs": ROWS})
    assert keys(INPUTS) == []  # the request object is removed
    assert len(keys("async-out/")) == 1  # the answer is the endpoint owner's: kept


def test_a_request_is_read_once_and_the_endpoint_remembered_as_asynchronous(
    cloud: SageMakerBackend, sm: Any
) -> None:
    asynchronous_endpoint(sm)
    cloud.invoke(ENDPOINT, {"inputs": ROWS})  # InvokeEndpoint refused: found asynchronous
    with Calls(cloud) as sent:
        cloud.invoke(ENDPOINT, {"inputs": ROWS})
    assert sent == [
        "DescribeEndpoint",  # the endpoint and its config, once per request
        "DescribeEndpointConfig",
        "PutObject",
        "InvokeEndpointAsync",
        "GetObject",
        "DeleteObject",
    ]


def test_the_first_request_finds_the_endpoint_asynchronous_when_invoke_endpoint_is_refused(
    cloud: SageMakerBackend, sm: Any
) -> None:
    asynchronous_endpoint(sm)
    with Calls(cloud) as sent:
        answer = cloud.invoke(ENDPOINT, {"inputs": ROWS})
    assert sent[:3] == ["InvokeEndpoint", "DescribeEndpoint", "DescribeEndpointConfig"]
    assert sent[3:] == ["PutObject", "InvokeEndpointAsync", "GetObject", "DeleteObject"]
    assert [p["output"] for p in answer["predictions"]] == [3.0, 4.0]


def test_real_time_endpoints_are_invoked_with_one_call_as_before(
    cloud: SageMakerBackend, sm: Any
) -> None:
    asynchronous_endpoint(sm)
    deploy_without_registry(sm, "live-api", {"PrimaryContainer": {"Image": "img"}})
    cloud.invoke(ENDPOINT, {"inputs": ROWS})
    with Calls(cloud) as sent:
        answer = cloud.invoke("live-api", {"inputs": ROWS})
    assert sent == ["InvokeEndpoint"]
    assert answer["route"] == "alltraffic"
    assert [p["output"] for p in answer["predictions"]] == [3.0, 4.0]


def test_an_endpoint_re_created_real_time_under_the_same_name_is_invoked_real_time(
    cloud: SageMakerBackend, sm: Any
) -> None:
    asynchronous_endpoint(sm)
    cloud.invoke(ENDPOINT, {"inputs": ROWS})
    sm.delete_endpoint(EndpointName=ENDPOINT)
    sm.create_endpoint_config(
        EndpointConfigName="real-time",
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": MODEL,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    sm.create_endpoint(EndpointName=ENDPOINT, EndpointConfigName="real-time")
    with Calls(cloud) as sent:
        assert cloud.invoke(ENDPOINT, {"inputs": ROWS})["route"] == "alltraffic"
    assert sent == ["DescribeEndpoint", "DescribeEndpointConfig", "InvokeEndpoint"]
    with Calls(cloud) as sent:
        cloud.invoke(ENDPOINT, {"inputs": ROWS})
    assert sent == ["InvokeEndpoint"]


def test_a_managed_asynchronous_endpoint_serves_its_routes_and_refuses_to_pin_a_shared_one(
    platform: Platform, sm: Any, fake: SageMakerFake, tmp_path: Path
) -> None:
    adopted(platform, sm)
    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "model.bin").write_bytes(b"retrained")
    platform.register_model("churn", tmp_path / "v2")
    platform.serving.deploy(ENDPOINT, "churn:2", route="green")  # a new, asynchronous config
    platform.serving.set_traffic(ENDPOINT, {"alltraffic": 50, "green": 50})

    answers = [platform.serving.invoke(ENDPOINT, ROWS) for _ in range(2)]
    assert [[p["output"] for p in a["predictions"]] for a in answers] == [[3.0, 4.0]] * 2
    assert [a["route"] for a in answers] == ["", ""]  # SageMaker does not say which variant
    assert sorted(i.variant for i in fake.invocations(ENDPOINT)) == ["AllTraffic", "green"]
    # InvokeEndpointAsync has no TargetVariant: a pin holds only for the one live route.
    with pytest.raises(ValidationError, match="one live route"):
        platform.serving.invoke(ENDPOINT, ROWS, route="green")
    platform.serving.set_traffic(ENDPOINT, {"alltraffic": 0, "green": 100})
    assert platform.serving.invoke(ENDPOINT, ROWS, route="green")["route"] == "green"
    assert platform.serving.invoke(ENDPOINT, ROWS)["route"] == "green"
    with pytest.raises(ValidationError, match=r"route 'alltraffic'.*live: \['green'\]"):
        platform.serving.invoke(ENDPOINT, ROWS, route="alltraffic")
    assert keys(INPUTS) == []


def test_a_request_the_model_fails_is_a_backend_error_with_its_message(
    cloud: SageMakerBackend, sm: Any, fake: SageMakerFake
) -> None:
    asynchronous_endpoint(sm)

    def fails(body: bytes, variant: str) -> Any:
        raise RuntimeError("CUDA out of memory")

    fake.set_invoke_handler(MODEL, fails)
    with pytest.raises(BackendError, match=f"endpoint '{ENDPOINT}' failed request .*CUDA out of"):
        cloud.invoke(ENDPOINT, {"inputs": ROWS})
    assert keys(INPUTS) == []
    assert len(keys("async-failed/")) == 1


def test_an_answer_that_never_comes_times_out_on_the_backend_clock(
    fake: SageMakerFake, sm: Any, tmp_path: Path
) -> None:
    asynchronous_endpoint(sm)
    clock = ManualClock()
    backend = backend_on(tmp_path, clock, async_poll_seconds=5.0, async_timeout_seconds=60.0)
    fake.hold_async_results()
    started, began = clock.now(), time.monotonic()
    with (
        Calls(backend) as sent,
        pytest.raises(BackendError, match=f"'{ENDPOINT}' has not answered"),
    ):
        backend.invoke(ENDPOINT, {"inputs": ROWS})
    assert (clock.now() - started).total_seconds() == 60.0
    assert time.monotonic() - began < 5, "the wait is on the manual clock"
    # 13 polls, at 0 s, 5 s, ..., 60 s: the answer, then the failure, each time
    assert sent.count("GetObject") == 2 * 13
    assert keys(INPUTS) == []
    backend.close()


def test_an_answer_written_while_waiting_is_read_at_the_next_poll(
    fake: SageMakerFake, sm: Any, tmp_path: Path
) -> None:
    asynchronous_endpoint(sm)

    class AnswerLate(ManualClock):
        """The endpoint answers during the third wait."""

        waits = 0

        def advance(self, seconds: float = 0.0, **kwargs: float) -> Any:
            self.waits += 1
            if self.waits == 3:
                fake.release_async_results()
            return super().advance(seconds, **kwargs)

    clock = AnswerLate()
    backend = backend_on(tmp_path, clock, async_poll_seconds=2.0)
    fake.hold_async_results()
    answer = backend.invoke(ENDPOINT, {"inputs": ROWS})
    assert [p["output"] for p in answer["predictions"]] == [3.0, 4.0]
    assert clock.waits == 3
    backend.close()


def test_without_a_bucket_an_asynchronous_request_is_refused_before_it_is_sent(
    fake: SageMakerFake, sm: Any, tmp_path: Path
) -> None:
    asynchronous_endpoint(sm)
    bare = {k: v for k, v in SETTINGS.items() if k != "bucket"}
    with sagemaker_platform(tmp_path / "home", bare) as platform:
        cloud = platform.backend
        assert isinstance(cloud, SageMakerBackend)
        with Calls(cloud) as sent, pytest.raises(ConfigurationError, match="set bucket"):
            cloud.invoke(ENDPOINT, {"inputs": ROWS})
    assert "PutObject" not in sent
    assert "InvokeEndpointAsync" not in sent
    assert fake.invocations(ENDPOINT) == []


def test_a_killed_asynchronous_endpoint_fails_like_a_real_time_one(
    cloud: SageMakerBackend, sm: Any, tmp_path: Path
) -> None:
    asynchronous_endpoint(sm)
    cloud.invoke(ENDPOINT, {"inputs": ROWS})  # known to be asynchronous from here on
    cloud.kill(ENDPOINT)
    with pytest.raises(BackendError, match="is killed"):
        cloud.invoke(ENDPOINT, {"inputs": ROWS})
    fresh = backend_on(tmp_path, ManualClock())  # one that has never invoked it
    with pytest.raises(BackendError, match="is killed"):
        fresh.invoke(ENDPOINT, {"inputs": ROWS})
    fresh.close()

    cloud.unkill(ENDPOINT)
    assert cloud.invoke(ENDPOINT, {"inputs": ROWS})["route"] == "alltraffic"
