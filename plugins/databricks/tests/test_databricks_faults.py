"""Faults from the fake's seeded schedule: throttling and 503 retried without real waiting, a plain
500 translated and not retried, lost responses that leave no duplicate behind, and lost answers to
deletes (a duplicate job's among them) that the retry finds done."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from databricks.sdk.errors import InternalError
from databricks_support import (
    databricks_backend,
    full_name,
    no_real_sleep,  # noqa: F401  (an autouse fixture)
    version_request,
)
from mintaka_conformance.fakes.databricks import FakeDatabricks, Fault
from mintaka_databricks.backend import DatabricksBackend

from mintaka import BackendError, ManualClock, NotFound, RetryExhausted
from mintaka.domain.pipelines import PipelineSpec, StepSpec
from mintaka.domain.registry import VersionRequest
from mintaka.domain.runs import Run
from mintaka.domain.serving import Route, TrafficMap

pytest_plugins = ["mintaka_conformance.fakes.databricks_fixtures"]

DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def cloud(
    databricks_fake: FakeDatabricks,
    databricks_environment: Path,
    tmp_path: Path,
    clock: ManualClock,
) -> Iterator[DatabricksBackend]:
    backend = databricks_backend(
        DatabricksBackend, databricks_fake, tmp_path, seed=3, clock=clock, retry_timeout_seconds=30
    )
    yield backend
    backend.close()


def request(tmp_path: Path, model: str, key: str) -> VersionRequest:
    return version_request(tmp_path, model, key, DIGEST)


CREATE_VERSION = r"/unity-catalog/model-versions/create$"


@pytest.mark.parametrize("fault", [Fault.THROTTLED, Fault.UNAVAILABLE])
def test_throttling_and_unavailability_are_retried_on_the_simulated_clock(
    fault: Fault,
    databricks_fake: FakeDatabricks,
    cloud: DatabricksBackend,
    clock: ManualClock,
    tmp_path: Path,
) -> None:
    cloud.ensure_model("churn")
    databricks_fake.faults.retry_after_seconds = 7
    databricks_fake.faults.script(fault, fault, method="POST", path=CREATE_VERSION)
    before = clock.now()
    created = cloud.create_version(request(tmp_path, "churn", "mv-1"))
    assert created.version == 1
    assert [f.fault for f in databricks_fake.faults.injected] == [fault, fault]
    assert (clock.now() - before).total_seconds() >= 14  # Retry-After honoured, in virtual time


def test_a_plain_500_is_translated_and_not_retried(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend
) -> None:
    cloud.ensure_model("churn")
    databricks_fake.faults.script(Fault.INTERNAL, method="GET", path=r"/models/")
    before = len(databricks_fake.calls("GET", "/unity-catalog/models/"))
    with pytest.raises(BackendError) as caught:
        cloud.list_versions("churn")
    assert caught.value.backend == "databricks"
    assert isinstance(caught.value.__cause__, InternalError)
    assert len(databricks_fake.calls("GET", "/unity-catalog/models/")) == before + 1


def test_a_retry_budget_that_runs_out_is_retry_exhausted(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend
) -> None:
    databricks_fake.faults.retry_after_seconds = 20
    databricks_fake.faults.script(*[Fault.UNAVAILABLE] * 5, path=r"/unity-catalog/models")
    with pytest.raises(RetryExhausted) as caught:
        cloud.ensure_model("churn")
    assert caught.value.backend == "databricks"
    assert isinstance(caught.value.__cause__, TimeoutError)


def test_a_lost_version_create_leaves_one_version(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend, tmp_path: Path
) -> None:
    cloud.ensure_model("churn")
    databricks_fake.faults.script(Fault.LOST, method="POST", path=CREATE_VERSION)
    created = cloud.create_version(request(tmp_path, "churn", "mv-1"))
    assert len(databricks_fake.calls("POST", "model-versions/create")) == 2  # the SDK retried
    assert created.version == 1
    assert [v.version for v in cloud.list_versions("churn")] == [1]
    assert cloud.create_version(request(tmp_path, "churn", "mv-1")).version == 1
    second = cloud.create_version(request(tmp_path, "churn", "mv-2"))
    assert [v.mintaka_id for v in cloud.list_versions("churn")] == ["mv-1", "mv-2"]
    assert second.version == 3  # the deleted duplicate's number is not reused
    uc = databricks_fake.state.uc.model(full_name("churn"))
    assert uc.versions[1].status == "READY"


def test_a_lost_model_create_is_not_a_conflict(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend
) -> None:
    databricks_fake.faults.script(Fault.LOST, method="POST", path=r"/unity-catalog/models$")
    assert cloud.ensure_model("churn") == {"full_name": full_name("churn")}
    assert cloud.list_models().count("churn") == 1


def test_a_lost_endpoint_create_is_recognised_as_ours(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend, tmp_path: Path
) -> None:
    cloud.ensure_model("churn")
    cloud.create_version(request(tmp_path, "churn", "mv-1"))
    databricks_fake.faults.script(Fault.LOST, method="POST", path=r"/serving-endpoints$")
    created = cloud.create_endpoint(
        "churn-ep",
        [Route(name="blue", model="churn", version=1)],
        TrafficMap(weights={"blue": 100}),
    )
    assert created.traffic.weights == {"blue": 100}
    assert len(databricks_fake.calls("POST", "/serving-endpoints")) == 2


def test_a_lost_config_update_is_applied_once(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend, tmp_path: Path
) -> None:
    cloud.ensure_model("churn")
    for key in ("mv-1", "mv-2"):
        cloud.create_version(request(tmp_path, "churn", key))
    routes = [
        Route(name="blue", model="churn", version=1),
        Route(name="green", model="churn", version=2),
    ]
    cloud.create_endpoint("churn-ep", routes, TrafficMap(weights={"blue": 100, "green": 0}))
    databricks_fake.faults.script(Fault.LOST, method="PUT", path=r"/config$")
    updated = cloud.set_traffic("churn-ep", TrafficMap(weights={"blue": 90, "green": 10}))
    assert updated.traffic.weights == {"blue": 90, "green": 10}
    assert databricks_fake.state.serving.endpoint("churn-ep").traffic == {"blue": 90, "green": 10}


def test_a_lost_run_now_starts_one_run(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend
) -> None:
    spec = PipelineSpec(
        name="train",
        parameters={"depth": 3},
        steps=[StepSpec(name="fit", entrypoint="pkg.steps:fit")],
    )
    databricks_fake.faults.script(Fault.LOST, method="POST", path=r"/jobs/create$")
    databricks_fake.faults.script(Fault.LOST, method="POST", path=r"/jobs/run-now$")
    run = cloud.submit(cloud.compile(spec), {"depth": "5"})
    assert len(databricks_fake.state.jobs.jobs) == 1
    assert len(databricks_fake.state.jobs.runs) == 1
    assert run.pipeline == "train"


def test_a_lost_run_create_leaves_one_mlflow_run(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend, clock: ManualClock
) -> None:
    databricks_fake.faults.script(Fault.LOST, method="POST", path=r"/mlflow/runs/create$")
    databricks_fake.faults.script(Fault.LOST, method="POST", path=r"/experiments/create$")
    run = Run(id="run-1", experiment="churn", started_at=clock.now(), backend="databricks")
    ids = cloud.create_run(run)
    active = [
        r for r in databricks_fake.state.tracking.runs.values() if r.lifecycle_stage == "active"
    ]
    assert [r.run_id for r in active] == [ids["run_id"]]
    assert cloud.get_run("run-1").experiment == "churn"


def test_a_lost_version_delete_is_done_and_a_missing_version_still_not_found(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend, tmp_path: Path
) -> None:
    cloud.ensure_model("churn")
    cloud.create_version(request(tmp_path, "churn", "mv-1"))
    databricks_fake.faults.script(Fault.LOST, method="DELETE", path=r"/versions/1$")
    cloud.delete_version("churn", 1)
    assert len(databricks_fake.calls("DELETE", "/versions/1")) == 2  # the SDK retried
    assert cloud.list_versions("churn") == []
    with pytest.raises(NotFound):
        cloud.delete_version("churn", 1)


def test_a_lost_alias_delete_is_done_and_a_missing_alias_still_not_found(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend, tmp_path: Path
) -> None:
    cloud.ensure_model("churn")
    cloud.create_version(request(tmp_path, "churn", "mv-1"))
    cloud.set_alias("churn", "champion", 1)
    cloud.set_alias("churn", "challenger", 1)
    databricks_fake.faults.script(Fault.LOST, method="DELETE", path=r"/aliases/champion$")
    cloud.delete_alias("churn", "champion")
    assert len(databricks_fake.calls("DELETE", "/aliases/champion")) == 2  # the SDK retried
    assert cloud.get_aliases("churn") == {"challenger": 1}
    with pytest.raises(NotFound, match="champion"):
        cloud.delete_alias("churn", "champion")


def test_a_lost_endpoint_delete_is_done_and_a_missing_endpoint_still_not_found(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend, tmp_path: Path
) -> None:
    cloud.ensure_model("churn")
    cloud.create_version(request(tmp_path, "churn", "mv-1"))
    cloud.create_endpoint(
        "churn-ep",
        [Route(name="blue", model="churn", version=1)],
        TrafficMap(weights={"blue": 100}),
    )
    databricks_fake.faults.script(Fault.LOST, method="DELETE", path=r"/serving-endpoints/")
    cloud.delete_endpoint("churn-ep")
    assert len(databricks_fake.calls("DELETE", "/serving-endpoints/churn-ep")) == 2
    with pytest.raises(NotFound):
        cloud.get_endpoint("churn-ep")
    with pytest.raises(NotFound):
        cloud.delete_endpoint("churn-ep")


def test_a_lost_delete_of_a_duplicate_job_leaves_the_submit_standing(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend
) -> None:
    """Jobs answers a delete of a job that is gone with 400 "does not exist": the duplicate a
    retried create made is deleted by the first request, whose answer was lost."""
    spec = PipelineSpec(name="train", steps=[StepSpec(name="fit", entrypoint="pkg.steps:fit")])
    databricks_fake.faults.script(Fault.LOST, method="POST", path=r"/jobs/create$")
    databricks_fake.faults.script(Fault.LOST, method="POST", path=r"/jobs/delete$")
    run = cloud.submit(cloud.compile(spec), {})
    assert len(databricks_fake.calls("POST", "/jobs/delete")) == 2  # the SDK retried
    assert len(databricks_fake.state.jobs.jobs) == 1
    assert run.pipeline == "train"
