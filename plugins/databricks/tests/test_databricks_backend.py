"""What the conformance suite does not reach: capture read back from the inference table, metrics
parsed from the Prometheus export, Jobs runs to completion, unmanaged resources in discovery,
routes changed behind Mintaka's back, settings and the lazy SDK import."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import random
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from databricks_support import (
    databricks_backend,
    full_name,
    no_real_sleep,  # noqa: F401  (an autouse fixture)
    settings_for,
)
from mintaka_conformance.fakes.databricks import FakeDatabricks, Fault, workspace_client
from mintaka_databricks import step_runner
from mintaka_databricks.backend import DatabricksBackend
from mintaka_databricks.serving import RouteOptimizedEndpoint, _refuse_route_optimized
from mintaka_databricks.settings import DatabricksSettings
from mintaka_databricks.step_runner import GateHeld, TaskArguments

from mintaka import (
    ConfigurationError,
    IdFactory,
    ManualClock,
    MintakaError,
    Platform,
    UnsupportedCapability,
    ValidationError,
)
from mintaka.domain.discovery import ResourceKind
from mintaka.domain.monitoring import CaptureConfig
from mintaka.domain.pipelines import GateCheck, GateOutcome, PipelineSpec, PipelineStatus, StepSpec
from mintaka.domain.registry import VersionRequest
from mintaka.domain.runs import Run, RunStatus
from mintaka.domain.serving import Route, TrafficMap, TrafficPlan
from mintaka.errors import BackendError, Conflict, NotFound
from mintaka.interfaces import BackendContext
from mintaka.rollout import native

pytest_plugins = ["mintaka_conformance.fakes.databricks_fixtures"]


def make_backend(fake: FakeDatabricks, home: Path, **overrides: object) -> DatabricksBackend:
    return databricks_backend(DatabricksBackend, fake, home, seed=11, **overrides)


def platform_on(fake: FakeDatabricks, tmp_path: Path, **settings: Any) -> Platform:
    """A platform on the Databricks backend over ``fake``, in a home under ``tmp_path``."""
    return Platform(
        tmp_path / "home",
        backend="databricks",
        backend_settings=settings_for(fake, **settings),
        clock=ManualClock(),
        ids=IdFactory(seed=3),
    )


@pytest.fixture
def cloud(
    databricks_fake: FakeDatabricks, databricks_environment: Path, tmp_path: Path
) -> Iterator[DatabricksBackend]:
    backend = make_backend(databricks_fake, tmp_path)
    yield backend
    backend.close()


def register(cloud: DatabricksBackend, tmp_path: Path, model: str, count: int) -> None:
    cloud.ensure_model(model)
    for number in range(1, count + 1):
        artifact = tmp_path / f"{model}-{number}.bin"
        artifact.write_bytes(bytes([number]))
        cloud.create_version(
            VersionRequest(
                name=model,
                artifact_path=str(artifact),
                artifact_digest="sha256:" + f"{number:02x}" * 32,
                mintaka_id=f"mv-{model}-{number}",
                idempotency_key=f"mv-{model}-{number}",
            )
        )


@pytest.fixture
def endpoint(cloud: DatabricksBackend, tmp_path: Path) -> str:
    register(cloud, tmp_path, "churn", 2)
    routes = [
        Route(name="blue", model="churn", version=1),
        Route(name="green", model="churn", version=2),
    ]
    cloud.create_endpoint("churn-ep", routes, TrafficMap(weights={"blue": 100, "green": 0}))
    return "churn-ep"


def test_models_live_under_the_configured_schema_with_uc_safe_names(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend, tmp_path: Path
) -> None:
    register(cloud, tmp_path, "credit-risk", 1)
    model = databricks_fake.state.uc.model("main.mintaka.credit_risk")
    assert model.versions[1].tags["mintaka.digest"] == "sha256:" + "01" * 32
    assert model.versions[1].source.startswith("file://")
    assert cloud.list_models() == ["credit-risk"]


def test_an_artifact_root_names_the_source_by_digest(
    databricks_fake: FakeDatabricks, databricks_environment: Path, tmp_path: Path
) -> None:
    backend = make_backend(databricks_fake, tmp_path, artifact_root="s3://bucket/mintaka/")
    register(backend, tmp_path, "churn", 1)
    assert backend.get_version("churn", 1).artifact_uri == "s3://bucket/mintaka/" + "01" * 32


def test_reserved_tag_keys_are_refused(cloud: DatabricksBackend, tmp_path: Path) -> None:
    register(cloud, tmp_path, "churn", 1)
    with pytest.raises(ValidationError, match="reserved"):
        cloud.set_tags("churn", 1, {"mintaka.stage": "production"})


def test_captured_requests_read_back_from_the_inference_table(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend, endpoint: str
) -> None:
    cloud.configure_capture(endpoint, CaptureConfig())
    capture = cloud.get_endpoint(endpoint).extra["capture"]
    assert capture["table_name_prefix"] == "churn_ep"
    first = cloud.invoke(endpoint, {"inputs": [{"f0": 1.0}, {"f0": 2.0}]})
    cloud.invoke(endpoint, {"inputs": {"f0": 3.0}}, route="green")
    records = {r.route: r for r in cloud.read_captured(endpoint)}
    assert sorted(records) == ["blue", "green"]
    blue = records["blue"]
    assert blue.inputs == [{"f0": 1.0}, {"f0": 2.0}]
    assert blue.extra["client_request_id"] == first["predictions"][0]["id"].rsplit("-", 1)[0]
    assert blue.event_id == first["request_id"]
    assert len(cloud.read_captured(endpoint, limit=1)) == 1
    later = max(r.at for r in records.values()) + timedelta(seconds=1)
    assert cloud.read_captured(endpoint, since=later) == []


def test_captured_requests_are_read_from_a_slow_warehouse_in_every_chunk(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend, endpoint: str
) -> None:
    cloud.configure_capture(endpoint, CaptureConfig())
    for value in (1.0, 2.0, 3.0):
        cloud.invoke(endpoint, {"inputs": {"f0": value}})
    databricks_fake.state.sql.running_polls = 3  # still RUNNING after wait_timeout
    databricks_fake.state.sql.chunk_rows = 1
    records = cloud.read_captured(endpoint)
    assert [r.inputs for r in records] == [[{"f0": 1.0}], [{"f0": 2.0}], [{"f0": 3.0}]]
    assert len(databricks_fake.calls("GET", "/result/chunks/")) == 2


def test_a_capture_window_beyond_one_inline_result_is_read_in_pages(
    databricks_fake: FakeDatabricks, databricks_environment: Path, tmp_path: Path, endpoint: str
) -> None:
    """An inline result holds 25 MiB (here scaled down to about three rows): each statement
    reads one page, the next following the last row read, so no request is lost nor repeated,
    those answered in the same millisecond included."""
    backend = make_backend(databricks_fake, tmp_path, capture_page_rows=2)
    backend.configure_capture(endpoint, CaptureConfig())
    for value in range(7):
        backend.invoke(endpoint, {"inputs": {"f0": float(value)}})
    captured = databricks_fake.state.serving.endpoints[endpoint].captured
    for row in captured[1:5]:  # answered in one millisecond: pages split them
        row["timestamp_ms"] = captured[1]["timestamp_ms"]
    databricks_fake.state.sql.inline_byte_limit = 3 * len(json.dumps(captured[0]))
    records = backend.read_captured(endpoint)
    assert sorted(r.inputs[0]["f0"] for r in records if r.inputs) == [float(v) for v in range(7)]
    assert len({r.event_id for r in records}) == 7
    assert len(databricks_fake.calls("POST", "/api/2.0/sql/statements")) == 4
    assert len(backend.read_captured(endpoint, limit=3)) == 3
    with pytest.raises(BackendError, match="INLINE"):
        make_backend(databricks_fake, tmp_path, capture_page_rows=7).read_captured(endpoint)


def test_requests_without_a_databricks_request_id_are_each_read_once_across_pages(
    databricks_fake: FakeDatabricks, databricks_environment: Path, tmp_path: Path, endpoint: str
) -> None:
    """The inference table's ``databricks_request_id`` column may hold NULLs, which sort first
    and tie with each other: a page ending among them does not lose or repeat any."""
    backend = make_backend(databricks_fake, tmp_path, capture_page_rows=2)
    backend.configure_capture(endpoint, CaptureConfig())
    for value in range(7):
        backend.invoke(endpoint, {"inputs": {"f0": float(value)}})
    captured = databricks_fake.state.serving.endpoints[endpoint].captured
    for row in captured[1:6]:
        row["timestamp_ms"] = captured[1]["timestamp_ms"]
    for row in captured[1:4]:
        row["databricks_request_id"] = None
    records = backend.read_captured(endpoint)
    assert sorted(r.inputs[0]["f0"] for r in records if r.inputs) == [float(v) for v in range(7)]
    assert len({r.event_id for r in records}) == 7
    assert len(backend.read_captured(endpoint, limit=3)) == 3
    for row in captured[1:4]:  # nor any id of the caller's: told apart by their content
        row["client_request_id"] = None
    ids = [r.event_id for r in backend.read_captured(endpoint)]
    assert len(set(ids)) == 7
    assert sorted(ids) == sorted(r.event_id for r in backend.read_captured(endpoint))


def test_every_page_size_window_and_limit_reads_each_request_once_under_one_id(
    databricks_fake: FakeDatabricks, databricks_environment: Path, tmp_path: Path, endpoint: str
) -> None:
    """Requests tied in time, with and without ids, some alike to the byte: however the table is
    paged, from wherever the window starts and up to any limit, each request is read at most
    once (every one without a limit) and under the id a whole read gives it."""
    backend = make_backend(databricks_fake, tmp_path)
    backend.configure_capture(endpoint, CaptureConfig())
    for value in range(12):
        backend.invoke(endpoint, {"inputs": {"f0": float(value)}})
    captured = databricks_fake.state.serving.endpoints[endpoint].captured
    start = int(captured[0]["timestamp_ms"])
    rng = random.Random(5)
    for trial in range(60):
        for index, row in enumerate(captured):
            row["timestamp_ms"] = start + rng.choice([0, 0, 1, 1, 2, 3])
            row["databricks_request_id"] = rng.choice([None, f"r-{rng.randrange(100):02d}-{index}"])
            row["client_request_id"] = rng.choice([None, "session"])
            if rng.random() < 0.3:
                row["request"], row["response"] = captured[0]["request"], captured[0]["response"]
        offset = rng.choice([None, 0, 1, 2])
        since = None if offset is None else datetime.fromtimestamp((start + offset) / 1000, UTC)
        whole = [r.event_id for r in backend.read_captured(endpoint, since=since)]
        lowest = start + (offset or 0)
        assert len(set(whole)) == sum(int(r["timestamp_ms"]) >= lowest for r in captured)
        paged = make_backend(databricks_fake, tmp_path, capture_page_rows=rng.choice([1, 2, 3, 5]))
        assert sorted(r.event_id for r in paged.read_captured(endpoint, since=since)) == sorted(
            whole
        ), trial
        limit = rng.choice([1, 2, 3, 5, 8])
        some = [r.event_id for r in paged.read_captured(endpoint, since=since, limit=limit)]
        assert len(set(some)) == len(some) == min(limit, len(whole)), trial
        assert set(some) <= set(whole), trial


def test_reading_capture_gives_up_after_the_statement_timeout(
    databricks_fake: FakeDatabricks, databricks_environment: Path, tmp_path: Path, endpoint: str
) -> None:
    backend = make_backend(databricks_fake, tmp_path, statement_timeout_seconds=60)
    backend.configure_capture(endpoint, CaptureConfig())
    databricks_fake.state.sql.running_polls = 10**6
    with pytest.raises(BackendError, match="still running after 60s"):
        backend.read_captured(endpoint)
    polls = len(databricks_fake.calls("GET", "/api/2.0/sql/statements/"))
    assert 1 <= polls <= 60 / settings_for(databricks_fake)["poll_seconds"] + 1


def test_capture_that_databricks_cannot_express_is_refused(
    cloud: DatabricksBackend, endpoint: str
) -> None:
    with pytest.raises(ValidationError, match="every request"):
        cloud.configure_capture(endpoint, CaptureConfig(sample_percent=10))


def test_reading_capture_needs_a_warehouse(
    databricks_fake: FakeDatabricks, databricks_environment: Path, tmp_path: Path
) -> None:
    backend = make_backend(databricks_fake, tmp_path, warehouse_id=None)
    register(backend, tmp_path, "churn", 1)
    backend.create_endpoint(
        "churn-ep",
        [Route(name="blue", model="churn", version=1)],
        TrafficMap(weights={"blue": 100}),
    )
    backend.configure_capture("churn-ep", CaptureConfig())
    with pytest.raises(ConfigurationError, match="warehouse_id"):
        backend.read_captured("churn-ep")


def test_metrics_come_from_the_prometheus_export_per_route(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend, endpoint: str
) -> None:
    for _ in range(3):
        cloud.invoke(endpoint, {"inputs": {"f0": 1.0}})
    cloud.invoke(endpoint, {"inputs": {"f0": 1.0}}, route="green")
    now = cloud.context.clock.now()
    metrics = cloud.read_metrics(endpoint, now - timedelta(hours=1), now)
    assert metrics.requests == {"blue": 3, "green": 1}
    assert metrics.errors == {"blue": 0, "green": 0}


def test_metrics_read_4xx_as_refused_and_5xx_as_server_errors(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend, endpoint: str
) -> None:
    from mintaka_conformance.fakes.databricks.routing import ApiError

    def predict(payload: dict[str, Any], served: Any) -> Any:
        kind = payload["dataframe_records"][0]["kind"]
        if kind == "bad":
            raise ApiError(400, "BAD_REQUEST", "Model is missing inputs ['f0'].")
        if kind == "crash":
            raise ApiError(500, "INTERNAL_ERROR", "The model raised an exception.")
        return [0]

    databricks_fake.state.serving.set_predictor(full_name("churn"), predict)
    for kind in ("ok", "ok", "bad", "bad", "bad", "crash"):
        with contextlib.suppress(MintakaError):
            cloud.invoke(endpoint, {"inputs": {"kind": kind}})
    now = cloud.context.clock.now()
    metrics = cloud.read_metrics(endpoint, now - timedelta(hours=1), now)
    assert (metrics.requests, metrics.errors, metrics.invalid) == (
        {"blue": 6},
        {"blue": 1},
        {"blue": 3},
    )


def test_metrics_take_latency_from_the_exported_histogram(
    cloud: DatabricksBackend, endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The export's ``request_latency_ms`` histogram (cumulative ``_bucket`` counts, labels in
    any order) gives each route's p50 and p99; its buckets are no custom metric."""
    import io

    exported = """\
# TYPE request_count_total counter
request_count_total{served_entity_name="blue",endpoint_name="churn-ep"} 10.0
# TYPE request_latency_ms histogram
request_latency_ms_bucket{le="10.0",served_entity_name="blue"} 2.0
request_latency_ms_bucket{served_entity_name="blue",le="50.0"} 6.0
request_latency_ms_bucket{served_entity_name="blue",le="100.0"} 9.0
request_latency_ms_bucket{le="+Inf",served_entity_name="blue"} 10.0
request_latency_ms_sum{served_entity_name="blue"} 420.0
request_latency_ms_count{served_entity_name="blue"} 10.0
"""
    monkeypatch.setattr(
        cloud.client.serving_endpoints,
        "export_metrics",
        lambda name: SimpleNamespace(contents=io.BytesIO(exported.encode())),
    )
    now = cloud.context.clock.now()
    metrics = cloud.read_metrics(endpoint, now - timedelta(hours=1), now)
    assert metrics.p50_latency_ms == {"blue": pytest.approx(40.0)}
    assert metrics.p99_latency_ms == {"blue": pytest.approx(100.0)}
    assert metrics.custom == {}


def test_a_read_remembered_before_4xx_and_5xx_were_split_is_no_baseline(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend, endpoint: str
) -> None:
    """A remembered read that kept 4xx and 5xx together as ``errors`` cannot be subtracted
    from split counters: the window starts at an earlier read that can, or at creation."""
    from mintaka_conformance.fakes.databricks.routing import ApiError
    from mintaka_databricks.counters import CounterSnapshots, Snapshot

    def refuse(payload: dict[str, Any], served: Any) -> Any:
        raise ApiError(400, "BAD_REQUEST", "Model is missing inputs ['f0'].")

    clock = cloud.context.clock
    assert isinstance(clock, ManualClock)
    databricks_fake.state.serving.set_predictor(full_name("churn"), refuse)
    for _ in range(2):
        with contextlib.suppress(MintakaError):
            cloud.invoke(endpoint, {"inputs": {"f0": 1.0}})
    clock.advance(60)
    old = Snapshot(clock.now(), {"requests": {"blue": 2}, "errors": {"blue": 2}})
    CounterSnapshots(cloud.context.home / "databricks" / "metrics").record(endpoint, old)
    clock.advance(60)
    metrics = cloud.read_metrics(endpoint, clock.now(), clock.now())
    assert (metrics.requests, metrics.invalid) == ({"blue": 2}, {"blue": 2})


def test_a_metrics_window_counts_from_the_last_read_before_it(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend, endpoint: str
) -> None:
    clock = cloud.context.clock
    assert isinstance(clock, ManualClock)
    created = workspace_client(databricks_fake).serving_endpoints.get(endpoint).creation_timestamp
    # The fake stamps creation on its own (wall) clock: put the backend's a day after it.
    born = datetime.fromtimestamp((created or 0) / 1000, UTC)
    clock.advance((born - clock.now()).total_seconds() + 86_400)
    for _ in range(3):
        cloud.invoke(endpoint, {"inputs": {"f0": 1.0}})
    clock.advance(60)
    asked = clock.now() - timedelta(seconds=30)
    first = cloud.read_metrics(endpoint, asked, clock.now())
    # No earlier read: the counters since the endpoint was created, and the window says so.
    assert first.requests == {"blue": 3}
    assert first.start == born
    clock.advance(60)
    window_start = clock.now()
    cloud.invoke(endpoint, {"inputs": {"f0": 1.0}})
    cloud.invoke(endpoint, {"inputs": {"f0": 1.0}}, route="green")
    clock.advance(60)
    second = cloud.read_metrics(endpoint, window_start, clock.now())
    assert second.requests == {"blue": 1, "green": 1}
    assert (second.start, second.end) == (first.end, clock.now())
    # A later process reads the same remembered history.
    again = DatabricksBackend(cloud.settings, BackendContext(home=cloud.context.home, clock=clock))
    clock.advance(60)
    third = again.read_metrics(endpoint, second.end, clock.now())
    assert third.requests == {"blue": 0, "green": 0}


def test_a_traffic_change_is_the_baseline_of_the_next_metrics_window(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend, endpoint: str
) -> None:
    clock = cloud.context.clock
    assert isinstance(clock, ManualClock)
    for _ in range(4):
        cloud.invoke(endpoint, {"inputs": {"f0": 1.0}})
    cloud.set_traffic(endpoint, TrafficMap(weights={"blue": 50, "green": 50}))
    clock.advance(1)
    step_start = clock.now()
    cloud.invoke(endpoint, {"inputs": {"f0": 1.0}}, route="green")
    clock.advance(60)
    metrics = cloud.read_metrics(endpoint, step_start, clock.now())
    assert metrics.requests == {"blue": 0, "green": 1}  # the four earlier requests are not in it
    assert metrics.start < step_start


def test_routes_changed_behind_mintakas_back_are_observed(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend, endpoint: str
) -> None:
    from databricks.sdk.service.serving import Route as SdkRoute
    from databricks.sdk.service.serving import TrafficConfig

    other = workspace_client(databricks_fake)
    other.serving_endpoints.update_config(
        endpoint,
        traffic_config=TrafficConfig(
            routes=[
                SdkRoute(served_model_name="blue", traffic_percentage=50),
                SdkRoute(served_model_name="green", traffic_percentage=50),
            ]
        ),
    )
    assert cloud.observe_endpoint(endpoint).traffic.weights == {"blue": 50, "green": 50}


def test_discovery_reports_what_mintaka_did_not_make(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend, tmp_path: Path
) -> None:
    register(cloud, tmp_path, "churn", 1)
    databricks_fake.state.uc.create_model("main.mintaka.Legacy_Model")
    databricks_fake.state.uc.add_version("main.mintaka.legacy_model")
    databricks_fake.state.uc.create_model("main.mintaka.old__scores")
    databricks_fake.state.uc.create_model("main.mintaka.bob's_model")
    databricks_fake.state.uc.add_version("main.mintaka.bob's_model")
    found = {(r.kind, r.name): r for r in cloud.discover()}
    assert found[(ResourceKind.MODEL, "churn")].managed
    assert found[(ResourceKind.MODEL_VERSION, "churn:1")].managed
    assert not found[(ResourceKind.MODEL, "legacy-model")].managed
    assert not found[(ResourceKind.MODEL_VERSION, "legacy-model:1")].managed
    assert not found[(ResourceKind.MODEL, "main.mintaka.old__scores")].managed
    # A quote in a name, which MLflow's filter parser cannot escape, is searched in double quotes.
    assert not found[(ResourceKind.MODEL_VERSION, "main.mintaka.bob's_model:1")].managed


def test_the_mlflow_run_that_logged_a_version_is_reported_as_its_origin(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend, tmp_path: Path
) -> None:
    register(cloud, tmp_path, "churn", 1)  # Mintaka's: no run
    databricks_fake.state.uc.create_model("main.mintaka.legacy_model")
    databricks_fake.state.uc.add_version("main.mintaka.legacy_model", run_id="0af3c9")
    [listed] = cloud.list_versions("legacy-model")
    for version in (listed, cloud.get_version("legacy-model", 1)):
        assert version.origin is not None
        assert version.origin.produced_by == "mlflow-run:0af3c9"
    assert cloud.get_version("churn", 1).origin is None


def test_a_pipeline_compiles_to_jobs_tasks_and_runs_to_completion(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend
) -> None:
    spec = PipelineSpec(
        name="train",
        parameters={"depth": 3},
        steps=[
            StepSpec(name="prepare", entrypoint="pkg.steps:prepare"),
            StepSpec(name="fit", entrypoint="pkg.steps:fit", depends_on=["prepare"]),
        ],
    )
    native = cloud.compile(spec)
    tasks = native.definition["tasks"]
    assert [t["task_key"] for t in tasks] == ["prepare", "fit"]
    assert tasks[1]["depends_on"] == [{"task_key": "prepare"}]
    parameters = tasks[0]["notebook_task"]["base_parameters"]
    assert parameters["mintaka_param_depth"] == "{{job.parameters.depth}}"
    databricks_fake.state.jobs.run_states = ("RUNNING", "TERMINATED")
    databricks_fake.state.jobs.script_task("fit", "FAILED", "diverged")
    run = cloud.submit(native, {"depth": "5"})
    finished = cloud.wait_for_pipeline_run(run.id)
    assert finished.status is PipelineStatus.FAILED
    assert {s.name: s.status for s in finished.steps} == {
        "prepare": PipelineStatus.SUCCEEDED,
        "fit": PipelineStatus.FAILED,
    }
    assert finished.parameters == {"depth": "5"}
    assert finished.failure_reason == "Task fit failed with message: diverged"
    again = cloud.submit(native, {"depth": "5"})
    assert len(databricks_fake.state.jobs.jobs) == 1
    cloud.stop_pipeline_run(again.id)
    assert cloud.wait_for_pipeline_run(again.id).status is PipelineStatus.STOPPED


def test_wired_inputs_become_dynamic_value_references_and_edges(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend
) -> None:
    spec = PipelineSpec(
        name="wired",
        parameters={"depth": 3},
        steps=[
            StepSpec(name="prepare", entrypoint="pkg.steps:prepare"),
            StepSpec(
                name="fit",
                entrypoint="pkg.steps:fit",
                gate="evaluation",
                inputs={"data": "prepare.path", "depth": "params.depth"},
            ),
        ],
    )
    native = cloud.compile(spec)
    databricks_fake.state.jobs.script_task("prepare", "SUCCESS", task_values={"path": "/data"})
    fit = native.definition["tasks"][1]
    assert fit["depends_on"] == [{"task_key": "prepare"}]  # from the wiring alone
    told = TaskArguments.from_base_parameters(fit["notebook_task"]["base_parameters"])
    assert told.inputs == {
        "data": "{{tasks.prepare.values.path}}",
        "depth": "{{job.parameters.depth}}",
    }
    assert fit["description"] == "gate: evaluation"
    prepare = native.definition["tasks"][0]["notebook_task"]["base_parameters"]
    assert TaskArguments.from_base_parameters(prepare).exports == ("path",)  # set as task values
    assert told.exports == ()  # no step reads fit's outputs
    run = cloud.submit(native, {"depth": "4"})
    assert cloud.wait_for_pipeline_run(run.id).status is PipelineStatus.SUCCEEDED


SOURCE_DIGEST = hashlib.sha256(Path(step_runner.__file__).read_bytes()).hexdigest()[:12]
BASE = "/Shared/mintaka/run_step"  # settings.step_runner through the Workspace API
RUNNER = f"{BASE}-{SOURCE_DIGEST}"  # where this Mintaka's runner is uploaded


def gated_spec() -> PipelineSpec:
    return PipelineSpec(
        name="train",
        parameters={"depth": 3},
        steps=[
            StepSpec(name="fit", entrypoint="pkg.steps:fit", inputs={"depth": "params.depth"}),
            StepSpec(
                name="evaluate",
                entrypoint="pkg.steps:evaluate",
                gate="evaluation",
                inputs={"auc": "fit.auc"},
            ),
        ],
    )


def test_submit_uploads_the_step_runner_the_tasks_run(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend
) -> None:
    native = cloud.compile(gated_spec())
    evaluate = native.definition["tasks"][1]["notebook_task"]
    assert (evaluate["notebook_path"], evaluate["source"]) == ("/Workspace" + RUNNER, "WORKSPACE")
    told = TaskArguments.from_base_parameters(evaluate["base_parameters"])
    assert (told.step, told.entrypoint, told.gate) == (
        "evaluate",
        "pkg.steps:evaluate",
        "evaluation",
    )
    assert told.inputs == {"auc": "{{tasks.fit.values.auc}}"}
    source = Path(step_runner.__file__).read_bytes()
    cloud.wait_for_pipeline_run(cloud.submit(native, {}).id)
    assert databricks_fake.state.workspace.read(RUNNER) == source
    uploaded = databricks_fake.state.workspace.objects[RUNNER]
    assert (uploaded.object_type, uploaded.language) == ("NOTEBOOK", "PYTHON")
    cloud.wait_for_pipeline_run(cloud.submit(native, {}).id)
    assert len(databricks_fake.calls("POST", "/api/2.0/workspace/import")) == 1
    databricks_fake.state.workspace.put(RUNNER, b"print('edited by hand')\n")
    cloud.submit(native, {})
    assert databricks_fake.state.workspace.read(RUNNER) == source


def test_a_runner_another_release_uploads_leaves_the_tasks_compiled_here_theirs(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend
) -> None:
    """Every pipeline of a workspace shares ``settings.step_runner``: a runner another Mintaka
    release uploads there (or at its own digest's path) while a run is in flight is not the one
    this run's tasks run, and a definition naming another runner is refused before any change."""
    native = cloud.compile(gated_spec())
    databricks_fake.state.workspace.put(BASE, b"print('an older runner')\n")
    databricks_fake.state.workspace.put(f"{BASE}-0123456789ab", b"print('another')\n")
    cloud.wait_for_pipeline_run(cloud.submit(native, {}).id)
    paths = {t["notebook_task"]["notebook_path"] for t in native.definition["tasks"]}
    assert paths == {"/Workspace" + RUNNER}
    assert databricks_fake.state.workspace.read(RUNNER) == Path(step_runner.__file__).read_bytes()
    assert databricks_fake.state.workspace.read(BASE) == b"print('an older runner')\n"
    older = native.model_copy(deep=True)
    for task in older.definition["tasks"]:
        task["notebook_task"]["notebook_path"] = "/Workspace" + BASE
    resets = len(databricks_fake.calls("POST", "/api/2.2/jobs/reset"))
    with pytest.raises(ValidationError, match="compiled by another Mintaka release"):
        cloud.submit(older, {})
    elsewhere = native.model_copy(deep=True)
    for task in elsewhere.definition["tasks"]:
        task["notebook_task"]["notebook_path"] = f"/Workspace/Users/me/run_step-{SOURCE_DIGEST}"
    with pytest.raises(ValidationError, match="compiled by another Mintaka release"):
        cloud.submit(elsewhere, {})
    assert len(databricks_fake.calls("POST", "/api/2.2/jobs/reset")) == resets
    own = native.model_copy(deep=True)
    own.definition["tasks"].append(
        {
            "task_key": "report",
            "depends_on": [{"task_key": "evaluate"}],
            "notebook_task": {"notebook_path": f"/Workspace{BASE}-custom", "source": "WORKSPACE"},
        }
    )
    databricks_fake.state.workspace.put(f"{BASE}-custom", b"print('my report')\n")
    cloud.submit(own, {})
    assert len(databricks_fake.calls("POST", "/api/2.2/jobs/reset")) == resets + 1


def _pruning(cloud: DatabricksBackend) -> None:
    """Turn on the clean-up of other releases' step runners (off by default)."""
    cloud.settings = cloud.settings.model_copy(update={"prune_step_runners": True})


def test_older_runners_are_kept_unless_the_clean_up_is_turned_on(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend
) -> None:
    """By default a submit that uploads its release's runner deletes nothing beside it."""
    workspace = databricks_fake.state.workspace
    unused = f"{BASE}-0123456789ab"
    workspace.put_notebook(unused, b"print('a runner')\n")
    cloud.submit(cloud.compile(gated_spec()), {})
    assert workspace.has_notebook(RUNNER)
    assert workspace.has_notebook(unused)


def test_a_new_runner_deletes_the_older_runners_no_job_runs_any_more(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend, caplog: pytest.LogCaptureFixture
) -> None:
    """Uploading this release's runner deletes another release's runner beside it that no job
    and no active run runs; a runner a job still runs, a user's notebook or file of another
    name, and a submit that uploads nothing, leave the folder as it is."""
    _pruning(cloud)
    from databricks.sdk.service.jobs import JobSettings
    from databricks.sdk.service.jobs import Task as JobTask

    workspace = databricks_fake.state.workspace
    unused = f"{BASE}-0123456789ab"
    in_job, in_run = f"{BASE}-{'a' * 12}", f"{BASE}-{'d' * 12}"
    kept = [in_job, in_run, f"{BASE}-custom", f"{BASE}-0123456789AB", BASE]
    for path in (unused, *kept):
        workspace.put_notebook(path, b"print('a runner')\n")
    workspace.put(f"{BASE}-{'b' * 12}", b"a file, no notebook")
    client = workspace_client(databricks_fake).jobs
    task = {"task_key": "t", "notebook_task": {"notebook_path": "/Workspace" + in_job}}
    client.create(name="mine", tasks=[JobTask.from_dict(task)])
    task["notebook_task"]["notebook_path"] = in_run
    databricks_fake.state.jobs.run_states = ("RUNNING", "TERMINATED")
    other = client.create(name="theirs", tasks=[JobTask.from_dict(task)]).job_id
    client.run_now(other)
    client.reset(other, new_settings=JobSettings(name="theirs", tasks=[]))
    with caplog.at_level(logging.INFO, logger="mintaka_databricks.pipelines"):
        cloud.submit(cloud.compile(gated_spec()), {})
    assert unused not in workspace.objects
    assert all(workspace.has_notebook(path) for path in (*kept, RUNNER))
    assert f"{BASE}-{'b' * 12}" in workspace.objects
    assert f"deleted the step runner {unused}" in caplog.text
    workspace.put_notebook(unused, b"print('a runner')\n")
    cloud.submit(cloud.compile(gated_spec().model_copy(update={"name": "other"})), {})
    assert workspace.has_notebook(unused)  # the runner was there: nothing uploaded, no clean-up


def test_a_runner_a_for_each_task_runs_is_kept(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend
) -> None:
    """A runner run by the task inside a job's ``for_each_task``, or inside a for-each task of
    an active run whose job runs it no more, is in use: the clean-up leaves both in place."""
    _pruning(cloud)
    from databricks.sdk.service.jobs import JobSettings
    from databricks.sdk.service.jobs import Task as JobTask

    workspace = databricks_fake.state.workspace
    in_job, in_run = f"{BASE}-{'a' * 12}", f"{BASE}-{'d' * 12}"
    unused = f"{BASE}-0123456789ab"
    for path in (in_job, in_run, unused):
        workspace.put_notebook(path, b"print('a runner')\n")

    def for_each(path: str) -> JobTask:
        inner = {"task_key": "each_inner", "notebook_task": {"notebook_path": path}}
        return JobTask.from_dict(
            {"task_key": "each", "for_each_task": {"inputs": "[1, 2]", "task": inner}}
        )

    client = workspace_client(databricks_fake).jobs
    client.create(name="mine", tasks=[for_each("/Workspace" + in_job)])
    databricks_fake.state.jobs.run_states = ("RUNNING", "TERMINATED")
    other = client.create(name="theirs", tasks=[for_each(in_run)]).job_id
    client.run_now(other)
    client.reset(other, new_settings=JobSettings(name="theirs", tasks=[]))
    cloud.submit(cloud.compile(gated_spec()), {})
    assert workspace.has_notebook(in_job)
    assert workspace.has_notebook(in_run)
    assert unused not in workspace.objects


@pytest.mark.parametrize(
    "for_each",
    [
        {"task": {"task_key": "inner", "notebook_task": {"notebook_path": "/x"}}},
        {"inputs": "[1]", "task": {"task_key": "inner"}},
        {"inputs": "[1]", "task": {"task_key": "inner", "notebook_task": {"notebook_path": "x"}}},
    ],
)
def test_the_fake_refuses_a_for_each_task_the_service_refuses(
    databricks_fake: FakeDatabricks, for_each: dict[str, Any]
) -> None:
    from databricks.sdk.errors import InvalidParameterValue
    from databricks.sdk.service.jobs import Task as JobTask

    task = JobTask.from_dict({"task_key": "each", "for_each_task": for_each})
    with pytest.raises(InvalidParameterValue, match=r"Task '(each|inner)'"):
        workspace_client(databricks_fake).jobs.create(name="each", tasks=[task])


def test_an_unreadable_listing_leaves_every_older_runner_in_place(
    databricks_fake: FakeDatabricks,
    cloud: DatabricksBackend,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What runs a runner is known only from every job's settings and every active run: a
    listing that fails, or a job listed without its settings, leaves the older runners as they
    are, logged, and the submit standing."""
    _pruning(cloud)
    workspace = databricks_fake.state.workspace
    older = f"{BASE}-0123456789ab"
    workspace.put_notebook(older, b"print('a runner')\n")
    jobs = databricks_fake.state.jobs
    render = jobs._render_job
    monkeypatch.setattr(  # in the listing with tasks, which the clean-up reads
        jobs,
        "_render_job",
        lambda job, with_tasks=True: (
            render(job, with_tasks) | ({"settings": None} if with_tasks else {})
        ),
    )
    with caplog.at_level(logging.WARNING, logger="mintaka_databricks.pipelines"):
        run = cloud.submit(cloud.compile(gated_spec()), {})
    assert int(run.id) in jobs.runs
    assert workspace.has_notebook(older)
    assert "listed without its settings" in caplog.text
    monkeypatch.undo()
    del workspace.objects[RUNNER]
    databricks_fake.faults.script(Fault.INTERNAL, method="GET", path=r"/jobs/runs/list$")
    cloud.wait_for_pipeline_run(run.id)
    with caplog.at_level(logging.WARNING, logger="mintaka_databricks.pipelines"):
        cloud.submit(cloud.compile(gated_spec().model_copy(update={"name": "other"})), {})
    assert workspace.has_notebook(older)
    assert "listing active runs" in caplog.text


def test_a_failed_clean_up_of_older_runners_leaves_the_submit_standing(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend, caplog: pytest.LogCaptureFixture
) -> None:
    _pruning(cloud)
    older = f"{BASE}-0123456789ab"
    databricks_fake.state.workspace.put_notebook(older, b"print('a runner')\n")
    databricks_fake.faults.script(Fault.INTERNAL, method="GET", path=r"/workspace/list$")
    with caplog.at_level(logging.WARNING, logger="mintaka_databricks.pipelines"):
        run = cloud.submit(cloud.compile(gated_spec()), {})
    assert int(run.id) in databricks_fake.state.jobs.runs
    assert databricks_fake.state.workspace.has_notebook(older)
    assert f"older step runners beside {RUNNER} were left in place" in caplog.text


def test_a_parameter_value_its_step_cannot_read_is_refused_before_the_job_changes(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend
) -> None:
    """A step reads a parameter not declared as text as JSON of its type: text that is not is
    refused before the job is created or reset and before any run starts."""
    spec = PipelineSpec(
        name="train",
        parameters={"depth": 3, "rate": 0.5, "early": False, "tag": "x"},
        steps=[
            StepSpec(
                name="fit",
                entrypoint="pkg.steps:fit",
                inputs={
                    "depth": "params.depth",
                    "rate": "params.rate",
                    "early": "params.early",
                    "tag": "params.tag",
                },
            )
        ],
    )
    native = cloud.compile(spec)
    for given, says in (
        ({"depth": "abc"}, "parameter 'depth' is declared as int"),
        ({"depth": "True"}, "parameter 'depth' is declared as int"),
        ({"depth": "2.5"}, "parameter 'depth' is declared as int"),
        ({"rate": "NaN"}, "parameter 'rate' is declared as float"),
        ({"rate": "1" + "0" * 400}, "parameter 'rate' is declared as float"),
        ({"depth": "1" * 5000}, "parameter 'depth' is declared as int"),
        ({"early": "1"}, "parameter 'early' is declared as bool"),
        ({"seed": "1"}, "declares no parameter 'seed'"),
    ):
        with pytest.raises(ValidationError, match=says):
            cloud.submit(native, given)
    assert databricks_fake.calls("POST", "/api/2.2/jobs/create") == []
    assert databricks_fake.calls("POST", "/api/2.2/jobs/run-now") == []
    given = {"depth": "5", "rate": "1", "early": "true", "tag": "2024 [draft]"}
    run = cloud.submit(native, given)
    assert {k: run.parameters[k] for k in given} == given


def test_a_parameter_no_step_reads_is_checked_against_its_declared_type_too(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend
) -> None:
    """Every declared parameter's value is checked, whether a step reads it or not; a text
    parameter whose default looks like a number still takes any text."""
    spec = PipelineSpec(
        name="train",
        parameters={"depth": 3, "epochs": 10, "rate": 0.5, "early": False, "label": "2024"},
        steps=[StepSpec(name="fit", entrypoint="pkg.steps:fit", inputs={"depth": "params.depth"})],
    )
    native = cloud.compile(spec)
    for given, says in (
        ({"epochs": "abc"}, "parameter 'epochs' is declared as int"),
        ({"rate": "NaN"}, "parameter 'rate' is declared as float"),
        ({"early": "yes"}, "parameter 'early' is declared as bool"),
    ):
        with pytest.raises(ValidationError, match=says):
            cloud.submit(native, given)
    assert databricks_fake.calls("POST", "/api/2.2/jobs/create") == []
    assert databricks_fake.calls("POST", "/api/2.2/jobs/run-now") == []
    given = {"epochs": "12", "rate": "1", "early": "true", "label": "draft"}
    run = cloud.submit(native, given)
    assert {k: run.parameters[k] for k in given} == given


def test_a_step_runner_outside_the_workspace_is_refused() -> None:
    for path in (
        "/Volumes/main/x/run_step",
        "dbfs:/run_step",
        "/Workspace/Shared/mintaka/run_step.py",
        "/Workspace",
    ):
        with pytest.raises(ValueError, match="absolute workspace path without an extension"):
            DatabricksSettings(host="https://example.cloud.databricks.com", step_runner=path)


def test_each_step_reads_back_the_outputs_its_notebook_ended_with(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend
) -> None:
    jobs = databricks_fake.state.jobs
    fit = {"auc": 0.91, "model_uri": "runs:/1/model"}
    jobs.script_task("fit", "SUCCESS", notebook_result=json.dumps(fit), task_values={"auc": 0.91})
    jobs.script_task("evaluate", "SUCCESS", notebook_result='{"passed": true, "checks": []}')
    run = cloud.wait_for_pipeline_run(cloud.submit(cloud.compile(gated_spec()), {}).id)
    assert run.status is PipelineStatus.SUCCEEDED
    steps = {s.name: s for s in run.steps}
    assert steps["fit"].outputs == fit
    assert steps["fit"].gate is None
    assert steps["evaluate"].gate == GateOutcome(passed=True)
    cut = '{"auc": 0.9'
    jobs.script_task("fit", "SUCCESS", notebook_result=cut, task_values={"auc": 0.91})
    again = cloud.wait_for_pipeline_run(cloud.submit(cloud.compile(gated_spec()), {}).id)
    assert again.status is PipelineStatus.SUCCEEDED
    assert {s.name: s.outputs for s in again.steps}["fit"] == {}


def test_a_gate_that_did_not_pass_reads_back_as_a_failed_step_with_its_reason(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend
) -> None:
    check = GateCheck(name="auc", passed=False, value=0.61, limit=0.8)
    outcome = GateOutcome(passed=False, checks=(check,))
    held = GateHeld("evaluate", "evaluation", outcome)
    databricks_fake.state.jobs.script_task("fit", "SUCCESS", task_values={"auc": 0.61})
    databricks_fake.state.jobs.script_task(
        "evaluate",
        "FAILED",
        "Workload failed, see run output for details",
        error_trace=f"\x1b[0;31mGateHeld\x1b[0m: {held}\n",
    )
    run = cloud.get_pipeline_run(cloud.submit(cloud.compile(gated_spec()), {}).id)
    reason = "gate 'evaluate' (evaluation) failed: auc: 0.61 (limit 0.8)"
    assert run.status is PipelineStatus.FAILED
    assert run.failure_reason == reason
    evaluate = {s.name: s for s in run.steps}["evaluate"]
    assert (evaluate.status, evaluate.failure_reason) == (PipelineStatus.FAILED, reason)
    assert evaluate.gate == outcome


def test_a_gate_whose_outcome_is_only_in_the_tasks_error_reads_back_from_there(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend
) -> None:
    outcome = GateOutcome(passed=False, checks=(GateCheck(name="auc", passed=False),))
    databricks_fake.state.jobs.script_task("fit", "SUCCESS", task_values={"auc": 0.61})
    databricks_fake.state.jobs.script_task(
        "evaluate",
        "FAILED",
        "Workload failed, see run output for details",
        error=f"GateHeld: {GateHeld('evaluate', 'evaluation', outcome)}",
    )
    run = cloud.get_pipeline_run(cloud.submit(cloud.compile(gated_spec()), {}).id)
    evaluate = {s.name: s for s in run.steps}["evaluate"]
    assert evaluate.gate == outcome
    assert run.failure_reason == "gate 'evaluate' (evaluation) failed: auc"


def test_a_gate_that_failed_without_an_outcome_says_so_with_the_tasks_error(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend
) -> None:
    """A gate task that failed before deciding (or whose outcome line was cut off) is a failed
    step that says its outcome is missing and what the task's output reported."""
    databricks_fake.state.jobs.script_task("fit", "SUCCESS", task_values={"auc": 0.61})
    databricks_fake.state.jobs.script_task(
        "evaluate",
        "FAILED",
        "Workload failed, see run output for details",
        error="\x1b[0;31mModuleNotFoundError\x1b[0m: No module named 'pkg'\n",
    )
    run = cloud.get_pipeline_run(cloud.submit(cloud.compile(gated_spec()), {}).id)
    evaluate = {s.name: s for s in run.steps}["evaluate"]
    assert (evaluate.status, evaluate.gate) == (PipelineStatus.FAILED, None)
    assert evaluate.failure_reason == (
        "gate 'evaluate' (evaluation) failed without an outcome in its task's output: "
        "ModuleNotFoundError: No module named 'pkg'"
    )


def test_tasks_run_the_uploaded_runner_with_every_reference_resolved(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend
) -> None:
    """The fake resolves references as Databricks does (a malformed one stays literal text) and
    fails a task whose notebook is not in the workspace: the runner must have been uploaded and
    each reference, quoted where it must be, must reach the value it names."""
    spec = PipelineSpec(
        name="wired",
        parameters={"max-depth": 4, "seed": 1},
        steps=[
            StepSpec(name="prep-data", entrypoint="pkg.steps:prepare"),
            StepSpec(
                name="fit",
                entrypoint="pkg.steps:fit",
                inputs={"data": "prep-data.path", "seed": "params.seed"},
            ),
        ],
    )
    jobs = databricks_fake.state.jobs
    jobs.script_task("prep-data", "SUCCESS", task_values={"path": "/Volumes/main/x/data"})
    run = cloud.wait_for_pipeline_run(cloud.submit(cloud.compile(spec), {"max-depth": "6"}).id)
    assert run.status is PipelineStatus.SUCCEEDED
    fit = jobs.runs[int(run.id)].tasks[1]
    assert fit.resolved is not None
    told = TaskArguments.from_base_parameters(fit.resolved)
    assert told.inputs == {"data": "/Volumes/main/x/data", "seed": "1"}
    assert told.parameters == {"max-depth": "6", "seed": "1"}
    assert told.run_id == run.id


def test_a_job_parameter_holding_a_reference_is_resolved_by_the_fake(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend
) -> None:
    """Databricks resolves dynamic value references in a job parameter's value, its default or
    the one ``run-now`` gives, so a task reads the value, never the text."""
    native = cloud.compile(gated_spec())
    run = cloud.wait_for_pipeline_run(cloud.submit(native, {}).id)
    job_id = int(run.backend_ids["job_id"])
    jobs = databricks_fake.state.jobs
    jobs.jobs[job_id].settings["parameters"] = [{"name": "depth", "default": "j{{job.id}}"}]
    client = workspace_client(databricks_fake).jobs
    for given, reads in (({}, f"j{job_id}"), ({"depth": "r{{ job.run_id }}"}, "r{run}")):
        number = int(client.run_now(job_id, job_parameters=given).run_id)
        client.get_run(number)
        fit = jobs.runs[number].tasks[0]
        assert fit.resolved is not None
        told = TaskArguments.from_base_parameters(fit.resolved)
        assert told.parameters["depth"] == reads.format(run=number)


@pytest.mark.parametrize(
    "text", ["{{job.id}}", "run-{{ job.run_id }}", "{{`tasks`.fit.values.x}}", "a {{run_id}}"]
)
def test_a_parameter_databricks_would_take_as_a_reference_is_refused(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend, text: str
) -> None:
    """Databricks documents no escape for a reference in one of its namespaces in a job
    parameter: such text is refused, naming the parameter, at compile as a default and at submit
    as a value, before any call."""
    spec = PipelineSpec(
        name="tagged",
        parameters={"tag": "x", "note": "y"},
        steps=[StepSpec(name="fit", entrypoint="pkg.steps:fit", inputs={"tag": "params.tag"})],
    )
    with pytest.raises(ValidationError, match=r"parameter 'note' holds .*dynamic value reference"):
        cloud.compile(spec.model_copy(update={"parameters": {"tag": "x", "note": text}}))
    native = cloud.compile(spec)
    with pytest.raises(ValidationError, match=r"parameter 'tag' holds .*dynamic value reference"):
        cloud.submit(native, {"tag": text})
    crafted = native.model_copy(deep=True)
    crafted.definition["parameters"][1]["default"] = text
    with pytest.raises(ValidationError, match=r"parameter 'note' holds .*dynamic value reference"):
        cloud.submit(crafted, {"tag": "x"})
    assert databricks_fake.calls("POST", "/api/2.2/jobs/create") == []
    assert databricks_fake.calls("POST", "/api/2.2/jobs/run-now") == []
    run = cloud.wait_for_pipeline_run(cloud.submit(native, {"tag": "{{ half } braces }"}).id)
    fit = databricks_fake.state.jobs.runs[int(run.id)].tasks[0]
    assert fit.resolved is not None
    assert TaskArguments.from_base_parameters(fit.resolved).inputs == {"tag": "{{ half } braces }"}


@pytest.mark.parametrize("text", ["Answer: {{question}}", "{{no.such.thing}}", "{{jobs}}"])
def test_braces_outside_databricks_namespaces_reach_the_step_as_written(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend, text: str
) -> None:
    """Databricks hands a task ``{{...}}`` outside its namespaces as the literal text: such a
    default compiles and such a value is submitted, and the step reads each as written."""
    spec = PipelineSpec(
        name="prompted",
        parameters={"prompt": text, "tag": "x"},
        steps=[
            StepSpec(
                name="fit",
                entrypoint="pkg.steps:fit",
                inputs={"prompt": "params.prompt", "tag": "params.tag"},
            )
        ],
    )
    run = cloud.wait_for_pipeline_run(cloud.submit(cloud.compile(spec), {"tag": text}).id)
    assert run.status is PipelineStatus.SUCCEEDED
    fit = databricks_fake.state.jobs.runs[int(run.id)].tasks[0]
    assert fit.resolved is not None
    assert TaskArguments.from_base_parameters(fit.resolved).inputs == {"prompt": text, "tag": text}


def test_the_fake_fails_a_task_given_a_reference_naming_nothing_in_a_known_namespace(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend
) -> None:
    """Databricks refuses ``{{job.naem}}`` (a known namespace, no such value) where it leaves
    ``{{question}}`` as text; the fake fails the task, naming the reference."""
    run = cloud.wait_for_pipeline_run(cloud.submit(cloud.compile(gated_spec()), {}).id)
    job_id = int(run.backend_ids["job_id"])
    jobs = databricks_fake.state.jobs
    jobs.jobs[job_id].settings["parameters"] = [{"name": "depth", "default": "{{job.naem}}"}]
    client = workspace_client(databricks_fake).jobs
    number = int(client.run_now(job_id).run_id)
    client.get_run(number)
    fit = jobs.runs[number].tasks[0]
    assert fit.result_state == "FAILED"
    assert "{{job.naem}}" in fit.message


def test_a_task_whose_notebook_is_missing_fails_and_says_so(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend
) -> None:
    native = cloud.compile(gated_spec())
    task = native.definition["tasks"][0]["notebook_task"]
    task.update(notebook_path="/Workspace/Shared/missing", base_parameters={})  # a notebook's own
    run = cloud.wait_for_pipeline_run(cloud.submit(native, {}).id)
    assert run.status is PipelineStatus.FAILED
    assert 'Unable to access the notebook "/Workspace/Shared/missing"' in str(run.failure_reason)


@pytest.mark.parametrize(
    "builtin", ["register_dataset", "register_model", "deploy_canary", "promote"]
)
def test_control_plane_steps_are_refused_at_compile(cloud: DatabricksBackend, builtin: str) -> None:
    spec = PipelineSpec(
        name="data",
        parameters={"p": "v"},
        steps=[
            StepSpec(name="prepare", entrypoint="pkg.steps:prepare"),
            StepSpec(
                name="act",
                entrypoint=f"mintaka.pipelines.builtins:{builtin}",
                depends_on=["prepare"],
            ),
        ],
    )
    with pytest.raises(ValidationError, match="acts on Mintaka's control plane"):
        cloud.compile(spec)


def test_steps_that_never_ran_are_left_out_of_the_run(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend
) -> None:
    spec = PipelineSpec(
        name="train",
        steps=[
            StepSpec(name="prepare", entrypoint="pkg.steps:prepare"),
            StepSpec(name="fit", entrypoint="pkg.steps:fit", depends_on=["prepare"]),
        ],
    )
    databricks_fake.state.jobs.script_task("prepare", "FAILED", "bad data")
    run = cloud.wait_for_pipeline_run(cloud.submit(cloud.compile(spec), {}).id)
    assert run.status is PipelineStatus.FAILED
    assert [(s.name, s.status, s.failure_reason) for s in run.steps] == [
        ("prepare", PipelineStatus.FAILED, "bad data")
    ]


def test_a_submit_while_the_pipeline_runs_is_a_conflict_naming_the_active_run(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend
) -> None:
    """The job runs one run at a time: Databricks skips a second run-now, which is no failed
    run of the pipeline but a refusal to start one."""
    spec = PipelineSpec(name="train", steps=[StepSpec(name="fit", entrypoint="pkg:fit")])
    native = cloud.compile(spec)
    databricks_fake.state.jobs.run_states = ("RUNNING", "RUNNING", "TERMINATED")
    first = cloud.submit(native, {})
    with pytest.raises(Conflict, match=rf"already running \(run {first.id}\)"):
        cloud.submit(native, {})
    assert cloud.wait_for_pipeline_run(first.id).status is PipelineStatus.SUCCEEDED
    assert cloud.wait_for_pipeline_run(cloud.submit(native, {}).id).status is (
        PipelineStatus.SUCCEEDED
    )


def test_a_submit_refused_while_the_pipeline_runs_leaves_its_job_as_it_was(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend
) -> None:
    first = PipelineSpec(name="train", steps=[StepSpec(name="fit", entrypoint="pkg:fit")])
    changed = PipelineSpec(name="train", steps=[StepSpec(name="fit", entrypoint="pkg:refit")])
    databricks_fake.state.jobs.run_states = ("RUNNING", "RUNNING", "TERMINATED")
    running = cloud.submit(cloud.compile(first), {})
    [job] = databricks_fake.state.jobs.jobs.values()
    before = json.dumps(job.settings, sort_keys=True)
    databricks_fake.state.workspace.put(RUNNER, b"print('edited by hand')\n")
    with pytest.raises(Conflict, match=rf"already running \(run {running.id}\)"):
        cloud.submit(cloud.compile(changed), {})
    assert json.dumps(job.settings, sort_keys=True) == before
    assert databricks_fake.calls("POST", "/api/2.2/jobs/reset") == []
    assert databricks_fake.state.workspace.read(RUNNER) == b"print('edited by hand')\n"


@pytest.mark.parametrize("first", ["theirs", "mintakas"])
@pytest.mark.parametrize(
    ("name", "tags"),
    [
        ("Mintaka/Train", {}),
        ("MINTAKA/TRAIN", {"mintaka-pipeline": "train"}),
        ("mintaka/train", {}),
        ("mintaka/train", {"mintaka-pipeline": "other"}),
    ],
)
def test_a_submit_leaves_alone_a_job_that_is_not_its_pipelines(
    databricks_fake: FakeDatabricks,
    cloud: DatabricksBackend,
    first: str,
    name: str,
    tags: dict[str, str],
) -> None:
    """The Jobs name filter ignores case, and a job's name is no proof of its owner: a submit
    resets only a job named exactly as the pipeline's and tagged with the pipeline, and never
    deletes another job, older or newer, as a duplicate of it."""
    spec = PipelineSpec(name="train", steps=[StepSpec(name="fit", entrypoint="pkg.steps:fit")])
    jobs = databricks_fake.state.jobs.jobs
    if first == "mintakas":
        cloud.submit(cloud.compile(spec), {})
    theirs = workspace_client(databricks_fake).jobs.create(name=name, tags=tags).job_id
    assert theirs is not None
    before = json.dumps(jobs[theirs].settings, sort_keys=True)
    run = cloud.submit(cloud.compile(spec), {})
    assert theirs in jobs
    assert json.dumps(jobs[theirs].settings, sort_keys=True) == before
    ours = int(run.backend_ids["job_id"])
    assert ours != theirs
    assert jobs[ours].settings["name"] == "mintaka/train"
    assert jobs[ours].settings["tags"] == {"mintaka-pipeline": "train"}
    assert sorted(jobs) == sorted([ours, theirs])
    assert databricks_fake.calls("POST", "/api/2.2/jobs/delete") == []


def test_a_job_listed_without_its_settings_fails_the_submit_before_any_change(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whose a job is, is known only from its settings: a job the name filter lists without
    them fails the submit, naming it, before any job is created, reset or deleted."""
    theirs = workspace_client(databricks_fake).jobs.create(name="Mintaka/Train").job_id
    jobs = databricks_fake.state.jobs
    render = jobs._render_job
    monkeypatch.setattr(
        jobs,
        "_render_job",
        lambda job, with_tasks=True: render(job, with_tasks) | {"settings": None},
    )
    spec = PipelineSpec(name="train", steps=[StepSpec(name="fit", entrypoint="pkg.steps:fit")])
    with pytest.raises(BackendError, match=f"job {theirs} was listed without its settings"):
        cloud.submit(cloud.compile(spec), {})
    assert list(jobs.jobs) == [theirs]
    assert len(databricks_fake.calls("POST", "/api/2.2/jobs/create")) == 1  # theirs
    for action in ("reset", "delete", "run-now"):
        assert databricks_fake.calls("POST", f"/api/2.2/jobs/{action}") == []


def test_a_job_compiled_without_the_pipeline_tag_gets_it_and_is_found_again(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend
) -> None:
    """A submit finds its job by the pipeline's tag, so the job it writes always carries it,
    whatever tags the definition was given, beside them."""
    spec = PipelineSpec(name="train", steps=[StepSpec(name="fit", entrypoint="pkg.steps:fit")])
    compiled = cloud.compile(spec)
    untagged = compiled.model_copy(
        update={"definition": {**compiled.definition, "tags": {"team": "risk"}}}
    )
    first = cloud.submit(untagged, {})
    second = cloud.submit(untagged, {})
    [job] = databricks_fake.state.jobs.jobs.values()
    assert job.settings["tags"] == {"team": "risk", "mintaka-pipeline": "train"}
    assert first.backend_ids["job_id"] == second.backend_ids["job_id"] == str(job.job_id)


def test_a_pipeline_job_keeps_runs_out_of_the_queue(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend
) -> None:
    """Jobs 2.2 queues a job's runs unless told not to; the job of a pipeline is told not to."""
    native = cloud.compile(
        PipelineSpec(name="train", steps=[StepSpec(name="fit", entrypoint="pkg:fit")])
    )
    assert native.definition["queue"] == {"enabled": False}
    cloud.wait_for_pipeline_run(cloud.submit(native, {}).id)
    [job] = databricks_fake.state.jobs.jobs.values()
    assert job.settings["queue"] == {"enabled": False}


@pytest.mark.parametrize("compiled", ["now", "without a queue setting"])
def test_a_run_started_after_the_running_check_fails_the_submit_with_a_conflict(
    databricks_fake: FakeDatabricks,
    cloud: DatabricksBackend,
    monkeypatch: pytest.MonkeyPatch,
    compiled: str,
) -> None:
    """Another process's run-now landing between the check for an active run and this submit's
    run-now gets this submit's run skipped, not queued to run after it; a definition compiled
    before the queue was set has it turned off too."""
    native = cloud.compile(
        PipelineSpec(name="train", steps=[StepSpec(name="fit", entrypoint="pkg:fit")])
    )
    if compiled != "now":
        native.definition.pop("queue", None)
    databricks_fake.state.jobs.run_states = ("RUNNING",) * 4 + ("TERMINATED",)
    cloud.wait_for_pipeline_run(cloud.submit(native, {}).id)
    [job_id] = databricks_fake.state.jobs.jobs
    another_process = workspace_client(databricks_fake)
    upload = cloud._upload_runner
    started: list[int] = []

    def upload_while_another_process_starts_a_run(runner: str) -> bool:
        started.append(int(another_process.jobs.run_now(job_id).run_id))
        return upload(runner)

    monkeypatch.setattr(cloud, "_upload_runner", upload_while_another_process_starts_a_run)
    with pytest.raises(Conflict, match="already running") as refused:
        cloud.submit(native, {})
    assert len(started) == 1
    assert f"(run {started[0]})" in str(refused.value)
    active = [r.run_id for r in databricks_fake.state.jobs.runs.values() if r.active]
    assert active == started


def test_a_submit_whose_runner_upload_fails_leaves_the_job_as_it_was(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend
) -> None:
    """The runner is uploaded before the job is reset: a job another release left running the
    runner at the base path still runs it after a submit whose upload failed."""
    spec = PipelineSpec(name="train", steps=[StepSpec(name="fit", entrypoint="pkg:fit")])
    native = cloud.compile(spec)
    older = native.model_copy(deep=True)
    for task in older.definition["tasks"]:
        task["notebook_task"]["notebook_path"] = "/Workspace" + BASE
    cloud._ensure_job(older, BASE)
    [job] = databricks_fake.state.jobs.jobs.values()
    before = json.dumps(job.settings, sort_keys=True)
    databricks_fake.faults.script(Fault.INTERNAL, method="POST", path=r"/workspace/import$")
    with pytest.raises(BackendError, match="uploading the step runner"):
        cloud.submit(native, {})
    assert json.dumps(job.settings, sort_keys=True) == before
    assert databricks_fake.calls("POST", "/api/2.2/jobs/reset") == []
    assert databricks_fake.calls("POST", "/api/2.2/jobs/run-now") == []
    run = cloud.wait_for_pipeline_run(cloud.submit(native, {}).id)
    assert run.status is PipelineStatus.SUCCEEDED
    paths = {t["notebook_task"]["notebook_path"] for t in job.settings["tasks"]}
    assert paths == {"/Workspace" + RUNNER}


def test_a_pipeline_parameter_named_like_the_runners_own_is_refused_at_compile(
    cloud: DatabricksBackend,
) -> None:
    spec = PipelineSpec(
        name="train",
        parameters={"mintaka_step": "x"},
        steps=[StepSpec(name="fit", entrypoint="pkg:fit")],
    )
    with pytest.raises(ValidationError, match="mintaka_step"):
        cloud.compile(spec)


def test_identifiers_other_than_letters_digits_and_underscores_are_quoted_in_references(
    cloud: DatabricksBackend,
) -> None:
    """Databricks reads an unquoted ``{{tasks.prep-data.values.path}}`` as a syntax error and
    hands the task that literal text instead of the upstream output."""
    spec = PipelineSpec(
        name="wired",
        parameters={"max-depth": 4, "seed": 1},
        steps=[
            StepSpec(name="prep-data", entrypoint="pkg.steps:prepare"),
            StepSpec(
                name="fit",
                entrypoint="pkg.steps:fit",
                inputs={
                    "data": "prep-data.path",
                    "seed": "params.seed",
                },
            ),
        ],
    )
    fit = cloud.compile(spec).definition["tasks"][1]
    told = TaskArguments.from_base_parameters(fit["notebook_task"]["base_parameters"])
    assert told.inputs == {
        "data": "{{tasks.`prep-data`.values.path}}",
        "seed": "{{job.parameters.seed}}",
    }
    assert told.parameters["max-depth"] == "{{job.parameters.`max-depth`}}"
    quoted = spec.model_copy(update={"parameters": {"a`b": 1}})
    with pytest.raises(ValidationError, match="cannot be named in a Databricks dynamic value"):
        cloud.compile(quoted)


def test_an_unknown_pipeline_parameter_is_refused(cloud: DatabricksBackend) -> None:
    spec = PipelineSpec(name="train", steps=[StepSpec(name="fit", entrypoint="pkg:fit")])
    with pytest.raises(ValidationError):
        cloud.submit(cloud.compile(spec), {"depth": "5"})


def test_another_process_finds_a_run_by_its_mintaka_id(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend, tmp_path: Path
) -> None:
    run = Run(
        id="run-7",
        experiment="churn",
        code_commit="abc",
        dataset_ids=("ds-1",),
        params={"depth": "3"},
        started_at=cloud.context.clock.now(),
        backend="databricks",
    )
    cloud.create_run(run)
    cloud.end_run("run-7", RunStatus.FINISHED)
    elsewhere = make_backend(databricks_fake, tmp_path)
    seen = elsewhere.get_run("run-7")
    assert (seen.experiment, seen.code_commit, seen.dataset_ids) == ("churn", "abc", ("ds-1",))
    assert (seen.params, seen.status) == ({"depth": "3"}, RunStatus.FINISHED)
    experiment = databricks_fake.state.tracking.experiment_by_name("/Shared/mintaka/churn")
    assert experiment.experiment_id == seen.backend_ids["experiment_id"]
    # It was found among the experiments under the root: a run search naming no experiment
    # finds nothing, as on MLflow.
    other = workspace_client(databricks_fake).experiments
    assert list(other.search_runs(filter="tags.`mintaka.run_id` = 'run-7'")) == []
    under_root = other.search_experiments(filter="name LIKE '/Shared/mintaka/%'")
    assert [e.name for e in under_root] == ["/Shared/mintaka/churn"]


@pytest.mark.parametrize(
    ("ours", "theirs"), [("/Shared/ml_team", "/Shared/mlxteam"), ("/Shared/ml%", "/Shared/mlops")]
)
def test_a_run_under_a_root_that_only_matches_ours_as_a_pattern_is_not_ours(
    databricks_fake: FakeDatabricks,
    databricks_environment: Path,
    tmp_path: Path,
    ours: str,
    theirs: str,
) -> None:
    """MLflow's LIKE cannot escape ``_`` or ``%``: the experiments its search lists under a root
    holding one are narrowed to those whose names do start with the root."""
    other = make_backend(databricks_fake, tmp_path / "other", experiment_root=theirs)
    run = Run(id="run-7", experiment="churn", started_at=other.context.clock.now(), backend="x")
    other.create_run(run)
    listed = workspace_client(databricks_fake).experiments.search_experiments(
        filter=f"name LIKE '{ours}/%'"
    )
    assert [e.name for e in listed] == [f"{theirs}/churn"]  # a wildcard match only
    backend = make_backend(databricks_fake, tmp_path / "ours", experiment_root=ours)
    with pytest.raises(NotFound):
        backend.get_run("run-7")
    created = backend.create_run(run)
    assert created["run_id"] != other.get_run("run-7").backend_ids["run_id"]
    assert backend.get_run("run-7").backend_ids == created
    assert (
        make_backend(databricks_fake, tmp_path / "again", experiment_root=ours)
        .get_run("run-7")
        .backend_ids
        == created
    )


@pytest.mark.parametrize("experiment", ["churn", "team/churn"])
def test_a_run_creates_its_experiment_in_a_folder_not_yet_there(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend, experiment: str
) -> None:
    """Databricks refuses an experiment whose workspace folder does not exist."""
    assert "/Shared/mintaka" not in databricks_fake.state.workspace.objects
    run = Run(
        id="run-1",
        experiment=experiment,
        started_at=cloud.context.clock.now(),
        backend="databricks",
    )
    created = cloud.create_run(run)
    name = f"/Shared/mintaka/{experiment}"
    folder = databricks_fake.state.workspace.objects[name.rsplit("/", 1)[0]]
    assert folder.object_type == "DIRECTORY"
    found = databricks_fake.state.tracking.experiment_by_name(name)
    assert found.experiment_id == created["experiment_id"]
    assert cloud.get_run("run-1").experiment == experiment


def test_a_run_in_an_experiment_in_the_trash_is_a_conflict_saying_how_to_restore_it(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend
) -> None:
    """An experiment of the name deleted in the workspace holds the name; Mintaka neither
    restores someone's deleted experiment nor creates the run anywhere else."""
    other = workspace_client(databricks_fake)
    other.workspace.mkdirs("/Shared/mintaka")
    old = other.experiments.create_experiment("/Shared/mintaka/churn").experiment_id
    assert old is not None
    other.experiments.delete_experiment(old)
    run = Run(id="run-1", experiment="churn", started_at=cloud.context.clock.now(), backend="x")
    with pytest.raises(
        Conflict, match=r"/Shared/mintaka/churn \(id \d+\) is in the .*trash"
    ) as err:
        cloud.create_run(run)
    assert "restore" in str(err.value)
    experiment = databricks_fake.state.tracking.experiment_by_name("/Shared/mintaka/churn")
    assert experiment.lifecycle_stage == "deleted"
    assert databricks_fake.state.tracking.runs == {}
    experiment.lifecycle_stage = "active"  # restored by its owner
    assert cloud.create_run(run)["experiment_id"] == old


def test_describe_never_shows_the_token(cloud: DatabricksBackend) -> None:
    shown = json.dumps(cloud.describe())
    assert cloud.settings.token is not None
    assert cloud.settings.token.get_secret_value() not in shown
    assert cloud.settings.token.get_secret_value() not in repr(cloud.settings)
    assert "main" in shown


def test_a_host_without_a_scheme_is_https() -> None:
    assert DatabricksSettings(host="adb-1.azuredatabricks.net").host == (
        "https://adb-1.azuredatabricks.net"
    )


def test_registering_the_backend_imports_no_sdk() -> None:
    code = (
        "import sys\nfrom mintaka.plugins import PluginManager\n"
        "names = [e.name for e in PluginManager().backends()]\n"
        "assert 'databricks' in names, names\n"
        "print(any(m == 'databricks' or m.startswith('databricks.') for m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_the_workspace_registry_is_its_own_backend_not_ignored(
    databricks_fake: FakeDatabricks, databricks_environment: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigurationError, match="'databricks_workspace'"):
        make_backend(databricks_fake, tmp_path, registry="workspace")


def test_the_workspace_says_who_is_calling(cloud: DatabricksBackend) -> None:
    """The caller identity comes from the workspace (SCIM Me), marked as authenticated."""
    identity = cloud.whoami()
    assert identity.authenticated
    assert identity.name


def test_the_platform_submits_a_pipeline_to_the_backend_and_audits_it(
    databricks_fake: FakeDatabricks, databricks_environment: Path, tmp_path: Path
) -> None:
    spec = PipelineSpec(
        name="submitted",
        parameters={"depth": 3, "rate": 0.5, "early": False},
        steps=[StepSpec(name="fit", entrypoint="pkg.steps:fit", inputs={"d": "params.depth"})],
    )
    with platform_on(databricks_fake, tmp_path) as plat:
        with pytest.raises(ValidationError, match="parameter 'depth' is declared as int"):
            plat.pipelines.submit(spec, {"depth": "deep"})
        assert databricks_fake.state.jobs.jobs == {}  # refused before Databricks is asked
        run = plat.pipelines.submit(spec, {"depth": 5, "rate": 1, "early": "True"})
        assert run.backend == "databricks"
        [event] = [e for e in plat.audit.events() if e.action == "pipeline.submit"]
        # each value of its declared type, as text that reads back as that type
        typed = {"depth": "5", "rate": "1.0", "early": "true"}
        assert event.details["parameters"] == typed
        assert run.parameters == typed
        assert plat.lineage_downstream(f"pipeline_run:{run.id}").root == f"pipeline_run:{run.id}"
        with pytest.raises(ValidationError, match="declares no parameters"):
            plat.pipelines.submit(spec, {"nope": 1})


def test_native_rollout_is_core_s_controller_here_and_says_so(cloud: DatabricksBackend) -> None:
    # Only the platform's backend is consulted before refusing.
    with pytest.raises(UnsupportedCapability, match="emulated by core's rollout controller"):
        native.start(cast(Platform, SimpleNamespace(backend=cloud)), cast(TrafficPlan, None))


def test_a_version_logged_by_a_run_mintaka_recorded_is_adopted_with_that_runs_lineage(
    databricks_fake: FakeDatabricks, databricks_environment: Path, tmp_path: Path
) -> None:
    from mintaka.domain.lineage import NodeKind

    data = tmp_path / "train.csv"
    data.write_text("x,y\n1,0\n")
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"weights logged by the notebook")
    with platform_on(databricks_fake, tmp_path) as plat:
        dataset = plat.register_dataset("churn-train", data)
        run = plat.start_run("churn", dataset_ids=[dataset.id], code_commit_="d" * 40)
        mlflow_run = run.backend_ids["run_id"]
        # A notebook registers the run's model in Unity Catalog, Mintaka not involved.
        databricks_fake.state.uc.create_model("main.mintaka.churn")
        databricks_fake.state.uc.add_version("main.mintaka.churn", run_id=mlflow_run)
        databricks_fake.state.uc.add_version("main.mintaka.churn", run_id="not-recorded")
        adoption = plat.migration.adopt_model(
            "churn", reason="registered from a notebook", artifacts={1: weights, 2: weights}
        )
        one, two = adoption.adopted
        assert (one.run_id, one.dataset_ids, one.code_commit) == (run.id, (dataset.id,), "d" * 40)
        assert (two.run_id, two.dataset_ids) == (None, ())
        upstream = plat.lineage_upstream("churn:1")
        assert dataset.id in {n.key for n in upstream.nodes if n.kind is NodeKind.DATASET}
        runs_from = {
            e.subject: e.details["run_from"]
            for e in plat.audit.events()
            if e.action == "model.adopt"
        }
        assert runs_from == {"churn:1": "cloud", "churn:2": None}
        [finding] = [f for f in adoption.findings if "lineage starts" in f]
        assert "(churn:2)" in finding
        assert "mlflow-run:not-recorded" in finding


@pytest.mark.parametrize(
    ("cloud_name", "settings"),
    [
        ("churn-api", {}),
        ("churn_api", {"endpoint_names": {"churn-api": "churn_api"}}),  # a name Mintaka can't use
    ],
)
def test_an_endpoint_made_outside_mintaka_is_adopted_with_its_served_entities_as_routes(
    databricks_fake: FakeDatabricks,
    databricks_environment: Path,
    tmp_path: Path,
    cloud_name: str,
    settings: dict[str, Any],
) -> None:
    from databricks.sdk.service.serving import (
        EndpointCoreConfigInput,
        ServedEntityInput,
        TrafficConfig,
    )
    from databricks.sdk.service.serving import Route as SdkRoute

    weights = tmp_path / "model.bin"
    weights.write_bytes(b"w")
    from mintaka.governance.policy import OPEN_POLICY, POLICY_FILE

    (tmp_path / "home").mkdir()
    (tmp_path / "home" / POLICY_FILE).write_bytes(OPEN_POLICY.read_bytes())  # no sign-offs here
    with platform_on(databricks_fake, tmp_path, **settings) as plat:
        databricks_fake.state.uc.create_model("main.mintaka.churn")
        for _ in range(2):
            databricks_fake.state.uc.add_version("main.mintaka.churn")
        plat.migration.adopt_model("churn", reason="inherited", artifacts={1: weights, 2: weights})
        # Served entities named as the Databricks UI names them: the model's leaf and version.
        served = [
            ServedEntityInput(
                name=f"churn_model-{n}",
                entity_name="main.mintaka.churn",
                entity_version=str(n),
                workload_size="Small",
                scale_to_zero_enabled=True,
            )
            for n in (1, 2)
        ]
        routes = [SdkRoute(served_model_name="churn_model-1", traffic_percentage=100)]
        routes.append(SdkRoute(served_model_name="churn_model-2", traffic_percentage=0))
        workspace_client(databricks_fake).serving_endpoints.create(
            cloud_name,
            config=EndpointCoreConfigInput(
                name=cloud_name, served_entities=served, traffic_config=TrafficConfig(routes)
            ),
        )
        assert {c.name: c.usable_name for c in plat.migration.discover()}["churn-api"]
        adopted = plat.migration.adopt_endpoint("churn-api", reason="inherited").endpoint
        assert {(r.name, r.version) for r in adopted.routes} == {
            ("churn-model-1", 1),
            ("churn-model-2", 2),
        }
        assert adopted.traffic.weights == {"churn-model-1": 100, "churn-model-2": 0}
        plat.serving.set_traffic("churn-api", {"churn-model-1": 50, "churn-model-2": 50})
        # The served entities keep their names: renaming them would redeploy them.
        config = workspace_client(databricks_fake).serving_endpoints.get(cloud_name).config
        assert config is not None
        assert sorted(str(e.name) for e in config.served_entities or []) == [
            "churn_model-1",
            "churn_model-2",
        ]
        assert plat.serving.get_endpoint("churn-api").traffic.weights == {
            "churn-model-1": 50,
            "churn-model-2": 50,
        }
        pinned = plat.serving.invoke("churn-api", {"x": 1.0}, route="churn-model-2")
        assert pinned["route"] == "churn-model-2"
        now = plat.clock.now()
        metrics = plat.serving.endpoint_metrics("churn-api", now - timedelta(hours=1), now)
        assert set(metrics.requests) <= {"churn-model-1", "churn-model-2"}
        assert [e.name for e in plat.serving.list_endpoints()] == ["churn-api"]
        assert plat.sync() == []


def test_an_adopted_endpoints_served_entities_keep_their_compute_through_mintakas_changes(
    databricks_fake: FakeDatabricks, databricks_environment: Path, tmp_path: Path
) -> None:
    """A traffic change rewrites every served entity (update_config): each keeps its workload
    type and size, scale to zero and environment; a new route takes the busiest entity's."""
    from databricks.sdk.service.serving import EndpointCoreConfigInput, ServedEntityInput

    from mintaka.governance.policy import OPEN_POLICY, POLICY_FILE

    weights = tmp_path / "model.bin"
    weights.write_bytes(b"w")
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / POLICY_FILE).write_bytes(OPEN_POLICY.read_bytes())
    compute = {
        "workload_type": "GPU_SMALL",
        "workload_size": "Medium",
        "scale_to_zero_enabled": False,
        "environment_vars": {"FEATURE_STORE_TOKEN": "{{secrets/churn/token}}"},
    }
    client = workspace_client(databricks_fake)
    with platform_on(databricks_fake, tmp_path) as plat:
        databricks_fake.state.uc.create_model("main.mintaka.churn")
        for _ in range(2):
            databricks_fake.state.uc.add_version("main.mintaka.churn")
        plat.migration.adopt_model("churn", reason="inherited", artifacts={1: weights, 2: weights})
        served = ServedEntityInput.from_dict(
            {
                "name": "churn_model-1",
                "entity_name": "main.mintaka.churn",
                "entity_version": "1",
                **compute,
            }
        )
        client.serving_endpoints.create(
            "churn-api", config=EndpointCoreConfigInput(name="churn-api", served_entities=[served])
        )
        plat.migration.adopt_endpoint("churn-api", reason="inherited")
        plat.serving.deploy("churn-api", "churn:2", route="green")
        plat.serving.set_traffic("churn-api", {"churn-model-1": 70, "green": 30})
        config = client.serving_endpoints.get("churn-api").config
        assert config is not None
        entities = {str(e.name): e.as_dict() for e in config.served_entities or []}
        assert set(entities) == {"churn_model-1", "green"}
        for entity in entities.values():
            assert {key: entity.get(key) for key in compute} == compute
        assert plat.sync() == []


def _route_optimized_endpoint(
    fake: FakeDatabricks, cloud: DatabricksBackend, tmp_path: Path, created: datetime
) -> None:
    """Endpoint ``churn-fast``, route-optimized, serving ``churn`` 1 as ``blue``, created at
    ``created``."""
    from databricks.sdk.service.serving import EndpointCoreConfigInput, ServedEntityInput

    register(cloud, tmp_path, "churn", 1)
    served = ServedEntityInput(
        name="blue", entity_name="main.mintaka.churn", entity_version="1", workload_size="Small"
    )
    workspace_client(fake).serving_endpoints.create(
        "churn-fast",
        config=EndpointCoreConfigInput(name="churn-fast", served_entities=[served]),
        route_optimized=True,
    )
    fake.state.serving.endpoints["churn-fast"].created = int(created.timestamp() * 1000)


def test_a_new_route_optimized_endpoint_is_read_but_not_invoked(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend, tmp_path: Path
) -> None:
    """Databricks answers a route-optimized endpoint created on or after 22 September 2025 only
    at its own URL with an OAuth token; Mintaka invokes through the workspace URL, so it refuses,
    naming the endpoint, before sending anything."""
    _route_optimized_endpoint(databricks_fake, cloud, tmp_path, datetime(2025, 9, 22, tzinfo=UTC))
    seen = cloud.get_endpoint("churn-fast")
    assert seen.extra["route_optimized"] is True
    assert [r.name for r in seen.routes] == ["blue"]
    for route in (None, "blue"):
        with pytest.raises(RouteOptimizedEndpoint, match="'churn-fast' is route-optimized") as err:
            cloud.invoke("churn-fast", {"inputs": {"f0": 1.0}}, route=route)
        assert err.value.endpoint == "churn-fast"
        assert err.value.backend == "databricks"
        assert err.value.created == datetime(2025, 9, 22, tzinfo=UTC)
        assert "created on 2025-09-22 00:00:00 UTC" in str(err.value)
        assert "own URL" in str(err.value)
    assert databricks_fake.calls("POST", "/invocations") == []


def test_a_route_optimized_endpoint_created_before_22_september_2025_is_invoked(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend, tmp_path: Path
) -> None:
    """A route-optimized endpoint created before 22 September 2025 still answers at the
    workspace URL, so Mintaka invokes it there, on any route, as any other endpoint."""
    _route_optimized_endpoint(
        databricks_fake, cloud, tmp_path, datetime(2025, 9, 21, 23, 59, 59, tzinfo=UTC)
    )
    for route in (None, "blue"):
        answer = cloud.invoke("churn-fast", {"inputs": {"f0": 1.0}}, route=route)
        assert answer["route"] == "blue"
        assert len(answer["predictions"]) == 1
    assert len(databricks_fake.calls("POST", "/serving-endpoints/churn-fast/")) == 2


@pytest.mark.parametrize(
    ("stamp", "refused"),
    [
        (None, True),  # creation not reported: may be new
        (1758499200000, True),  # 2025-09-22T00:00:00Z
        (1758499199999, False),
        (1717200000000, False),  # 2024-06-01
    ],
)
def test_only_route_optimized_endpoints_from_22_september_2025_or_undated_are_refused(
    stamp: int | None, refused: bool
) -> None:
    """The refusal turns on the creation time alone, and an endpoint that reports none is taken
    to be new; an endpoint without route optimization is never refused."""
    details: dict[str, Any] = {"name": "churn-fast", "route_optimized": True}
    if stamp is not None:
        details["creation_timestamp"] = stamp
    if refused:
        with pytest.raises(RouteOptimizedEndpoint, match="'churn-fast'"):
            _refuse_route_optimized("churn-fast", details)
    else:
        _refuse_route_optimized("churn-fast", details)
    _refuse_route_optimized("churn-fast", {**details, "route_optimized": False})


@pytest.mark.parametrize(
    ("names", "says"),
    [
        ({"churn-api": "churn-prod"}, "valid Mintaka name already"),
        ({"churn-api": "churn api"}, "not a valid serving endpoint name"),
        ({"a-api": "A_API", "b-api": "A_API"}, "two Mintaka names map to one"),
    ],
)
def test_an_endpoint_name_map_must_be_one_to_one(names: dict[str, str], says: str) -> None:
    with pytest.raises(ValueError, match=says):
        DatabricksSettings(host="https://example.cloud.databricks.com", endpoint_names=names)


def test_versions_are_read_whole_where_the_search_leaves_out_tags_and_aliases(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend, tmp_path: Path
) -> None:
    register(cloud, tmp_path, "churn", 3)
    cloud.set_alias("churn", "champion", 2)
    listed = workspace_client(databricks_fake).api_client.do(
        "GET",
        "/api/2.0/mlflow/unity-catalog/model-versions/search",
        query={"filter": "name='main.mintaka.churn'"},
    )
    assert all("tags" not in v and "aliases" not in v for v in listed["model_versions"])
    versions = cloud.list_versions("churn")
    assert [v.artifact_digest for v in versions] == ["sha256:" + f"{n:02x}" * 32 for n in (1, 2, 3)]
    assert [v.aliases for v in versions] == [(), ("champion",), ()]
    assert {r.name for r in cloud.discover() if r.managed} >= {"churn", "churn:1", "churn:3"}
    # A registration reconciles among the versions of its own source, not every version.
    before = len(databricks_fake.calls("GET", "model-versions/get"))
    artifact = tmp_path / "churn-4.bin"
    artifact.write_bytes(b"\x04")
    request = VersionRequest(
        name="churn",
        artifact_path=str(artifact),
        artifact_digest="sha256:" + "04" * 32,
        mintaka_id="mv-churn-4",
        idempotency_key="mv-churn-4",
    )
    first = cloud.create_version(request)
    again = cloud.create_version(request)
    assert first.version == again.version == 4
    assert len(databricks_fake.calls("GET", "model-versions/get")) - before <= 4


def test_an_endpoint_changes_again_after_a_failed_config_update(
    cloud: DatabricksBackend, endpoint: str, databricks_fake: FakeDatabricks
) -> None:
    databricks_fake.state.serving.fail_next_update(endpoint)
    with pytest.raises(BackendError, match="config update failed"):
        cloud.set_traffic(endpoint, TrafficMap(weights={"blue": 50, "green": 50}))
    # The failed config never went live; the endpoint still takes a change (a rollback).
    assert cloud.get_endpoint(endpoint).traffic.weights == {"blue": 100, "green": 0}
    changed = cloud.set_traffic(endpoint, TrafficMap(weights={"blue": 90, "green": 10}))
    assert changed.traffic.weights == {"blue": 90, "green": 10}
    assert databricks_fake.state.serving.endpoint(endpoint).config_update == "NOT_UPDATING"


def test_capture_turns_off_where_it_was_turned_on(
    cloud: DatabricksBackend, endpoint: str, databricks_fake: FakeDatabricks
) -> None:
    cloud.configure_capture(endpoint, CaptureConfig(destination="main.logs.churn"))
    cloud.configure_capture(endpoint, CaptureConfig(enabled=False))
    capture = databricks_fake.state.serving.endpoint(endpoint).config.auto_capture
    assert capture is not None
    assert capture["enabled"] is False
    assert (capture["catalog_name"], capture["schema_name"]) == ("main", "logs")


def test_a_capture_change_crowded_out_by_concurrent_updates_is_a_conflict(
    cloud: DatabricksBackend, endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = cloud._call

    def call(what: str, thunk: Any) -> Any:
        if what.startswith("updating endpoint"):
            raise Conflict("another update is in progress")
        return real(what, thunk)

    monkeypatch.setattr(cloud, "_call", call)
    with pytest.raises(Conflict, match="kept changing"):
        cloud.configure_capture(endpoint, CaptureConfig(enabled=True))


def test_endpoints_named_outside_mintaka_are_left_out_of_the_listing(
    cloud: DatabricksBackend, endpoint: str, databricks_fake: FakeDatabricks
) -> None:
    from databricks.sdk.service.serving import EndpointCoreConfigInput, ServedEntityInput

    for foreign in ("team_chat_api", "databricks-meta-llama-3-3-70b-instruct"):
        workspace_client(databricks_fake).serving_endpoints.create(
            foreign,
            config=EndpointCoreConfigInput(
                name=foreign,
                served_entities=[
                    ServedEntityInput(
                        entity_name="main.mintaka.churn",
                        entity_version="1",
                        workload_size="Small",
                        scale_to_zero_enabled=True,
                    )
                ],
            ),
        )
    assert [e.name for e in cloud.list_endpoints()] == [endpoint]
    assert {"team_chat_api", "databricks-meta-llama-3-3-70b-instruct"} <= {
        r.name for r in cloud.discover()
    }


def test_versions_not_ready_are_neither_adopted_nor_reported_by_sync(
    databricks_fake: FakeDatabricks, databricks_environment: Path, tmp_path: Path
) -> None:
    """A version whose registration failed holds no model files, and one still registering is
    not finished: adoption takes the ready versions, sync and discovery leave the others out."""
    import io

    from mintaka.governance.policy import OPEN_POLICY, POLICY_FILE

    (tmp_path / "home").mkdir()
    (tmp_path / "home" / POLICY_FILE).write_bytes(OPEN_POLICY.read_bytes())
    client = workspace_client(databricks_fake)
    uc = databricks_fake.state.uc
    uc.create_model("main.mintaka.churn")
    uc.add_version("main.mintaka.churn", status="PENDING_REGISTRATION")
    client.files.upload("/Models/main/mintaka/churn/1/model.bin", io.BytesIO(b"w1"))
    uc.set_status("main.mintaka.churn", 1, "READY")
    uc.add_version("main.mintaka.churn", status="FAILED_REGISTRATION")
    uc.add_version("main.mintaka.churn", status="PENDING_REGISTRATION")
    with platform_on(databricks_fake, tmp_path) as plat:
        found = {c.name for c in plat.migration.discover()}
        assert {"churn", "churn:1"} <= found
        assert not found & {"churn:2", "churn:3"}
        adoption = plat.migration.adopt_model("churn", reason="inherited")
        assert [v.version for v in adoption.adopted] == [1]
        assert plat.sync() == []
        with pytest.raises(Conflict, match=r"version 2 is FAILED_REGISTRATION.*version 3 is PEND"):
            plat.migration.adopt_model("churn", versions=[2, 3], reason="inherited")
        with pytest.raises(NotFound, match=r"no version \[9\]"):
            plat.migration.adopt_model("churn", versions=[9], reason="inherited")
