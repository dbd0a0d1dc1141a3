"""The fake Databricks workspace, driven end to end by the real ``databricks-sdk`` client."""

from __future__ import annotations

import pytest

pytest.importorskip("databricks.sdk")

import base64
import io
import os
import time
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import requests
from databricks.sdk import WorkspaceClient
from databricks.sdk.config import Config
from databricks.sdk.errors import (
    AlreadyExists,
    BadRequest,
    InternalError,
    InvalidParameterValue,
    InvalidState,
    NotFound,
    OperationFailed,
    PermissionDenied,
    ResourceAlreadyExists,
    ResourceConflict,
    ResourceDoesNotExist,
)
from databricks.sdk.service import catalog, jobs, ml, serving
from databricks.sdk.service.workspace import ExportFormat, ImportFormat, Language, ObjectType
from mintaka_conformance.fakes.databricks import (
    FakeDatabricks,
    Fault,
    FaultSchedule,
    NoWaitClock,
    fake_workspace_client,
    isolated_environment,
    workspace_client,
)

pytest_plugins = ["mintaka_conformance.fakes.databricks_fixtures"]

MODEL = "main.default.churn"
UC_MV = "/api/2.0/mlflow/unity-catalog/model-versions"


@pytest.fixture(autouse=True)
def no_real_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """Waiters (``*_and_wait``) sleep with ``time.sleep``: none may wait here."""
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        assert seconds <= 0.1, f"a real sleep of {seconds:.2f}s"
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep)


@pytest.fixture
def fake(databricks_fake: FakeDatabricks) -> FakeDatabricks:
    return databricks_fake


NOTEBOOKS = (
    *(f"/Repos/mintaka/{key}" for key in ("prepare", "train", "evaluate")),
    "/score",
    "/n",
    "/Shared/jobs/step",
)
"""The notebooks the job tasks here run: a workspace notebook task needs its notebook."""


@pytest.fixture
def w(databricks_client: WorkspaceClient, databricks_fake: FakeDatabricks) -> WorkspaceClient:
    for path in NOTEBOOKS:
        databricks_fake.state.workspace.put_notebook(path, b"# Databricks notebook source\n")
    return databricks_client


def create_uc_version(w: WorkspaceClient, name: str = MODEL, finalize: bool = True) -> int:
    """What MLflow does: create the version (pending), upload, then finalize it."""
    created = w.api_client.do("POST", f"{UC_MV}/create", body={"name": name, "source": "s3://a"})
    version = created["model_version"]["version"]
    if finalize:
        w.api_client.do("POST", f"{UC_MV}/finalize", body={"name": name, "version": version})
    return int(version)


def uc_model(w: WorkspaceClient, name: str = "churn") -> catalog.RegisteredModelInfo:
    return w.registered_models.create(catalog_name="main", schema_name="default", name=name)


def served(name: str, version: int, served_name: str | None = None) -> serving.ServedEntityInput:
    return serving.ServedEntityInput(
        name=served_name,
        entity_name=name,
        entity_version=str(version),
        workload_size="Small",
        scale_to_zero_enabled=True,
    )


def routes(**weights: int) -> serving.TrafficConfig:
    return serving.TrafficConfig(
        routes=[
            serving.Route(served_entity_name=name, traffic_percentage=pct)
            for name, pct in weights.items()
        ]
    )


def endpoint_with_two_versions(w: WorkspaceClient, name: str = "churn-ep") -> None:
    uc_model(w)
    create_uc_version(w)
    create_uc_version(w)
    w.serving_endpoints.create_and_wait(
        name=name,
        config=serving.EndpointCoreConfigInput(
            name=name,
            served_entities=[served(MODEL, 1, "blue"), served(MODEL, 2, "green")],
            traffic_config=routes(blue=90, green=10),
        ),
    )


# Configuration and authentication


def test_config_reads_the_well_known_document_and_authenticates_with_the_token(
    fake: FakeDatabricks, w: WorkspaceClient
) -> None:
    assert w.current_user.me().user_name == fake.ctx.user
    assert w.config.workspace_id == fake.ctx.workspace_id
    assert fake.calls("GET", "/.well-known/databricks-config")


def test_a_wrong_token_is_refused_with_permission_denied(
    fake: FakeDatabricks, databricks_environment: Path
) -> None:
    config = Config(host=fake.host, token="wrong", auth_type="pat", clock=NoWaitClock())
    with pytest.raises(PermissionDenied, match="Invalid access token"):
        WorkspaceClient(config=config).current_user.me()


def test_the_host_is_plain_http_on_the_loopback_interface(fake: FakeDatabricks) -> None:
    assert fake.host.startswith("http://127.0.0.1:")


def test_stray_databricks_settings_do_not_leak_into_the_client(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / ".databrickscfg").write_text("[prod]\nhost = https://real.cloud.databricks.com\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("DATABRICKS_HOST", "https://real.cloud.databricks.com")
    monkeypatch.setenv("DATABRICKS_CONFIG_PROFILE", "prod")
    monkeypatch.setenv("DATABRICKS_CLIENT_ID", "real-client")
    monkeypatch.setenv("ARM_CLIENT_SECRET", "real-secret")
    with FakeDatabricks() as fake, fake_workspace_client(fake) as client:
        assert "DATABRICKS_HOST" not in os.environ
        assert client.config.host == fake.host
        assert client.config.profile is None
        assert client.config.client_id is None
        assert client.current_user.me().user_name
    assert os.environ["DATABRICKS_CONFIG_PROFILE"] == "prod"
    assert os.environ["HOME"] == str(home)


def test_isolated_environment_restores_exactly_what_it_changed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ARM_TENANT_ID", "t")
    monkeypatch.delenv("DATABRICKS_TOKEN", raising=False)
    before = dict(os.environ)
    with isolated_environment() as home:
        assert "ARM_TENANT_ID" not in os.environ
        assert os.environ["HOME"] == str(home)
        assert "127.0.0.1" in os.environ["NO_PROXY"]
    assert dict(os.environ) == before


# Unity Catalog models, versions, aliases and tags


def test_registered_models_are_created_listed_and_deleted(w: WorkspaceClient) -> None:
    created = uc_model(w, "Churn")
    assert created.full_name == MODEL  # Unity Catalog stores names in lower case
    uc_model(w, "fraud")
    assert w.registered_models.get("main.default.CHURN").name == "churn"
    names = [m.full_name for m in w.registered_models.list(max_results=1)]
    assert names == [MODEL, "main.default.fraud"]
    w.registered_models.delete(MODEL)
    with pytest.raises(ResourceDoesNotExist):
        w.registered_models.get(MODEL)


def test_registered_model_errors_map_to_the_sdk_typed_errors(w: WorkspaceClient) -> None:
    uc_model(w)
    with pytest.raises(ResourceAlreadyExists):
        uc_model(w)
    with pytest.raises(NotFound):
        w.registered_models.get("main.default.missing")
    with pytest.raises(InvalidParameterValue):
        w.registered_models.create(catalog_name="main", schema_name="default", name="a.b")
    with pytest.raises(InvalidParameterValue):
        w.registered_models.create(catalog_name="main", name="no_schema")


def test_unknown_schemas_are_refused_when_the_fake_knows_its_schemas(
    databricks_environment: Path,
) -> None:
    with FakeDatabricks(schemas=["main.default"]) as fake:
        client = workspace_client(fake)
        uc_model(client)
        with pytest.raises(NotFound, match=r"Schema 'main\.other' does not exist"):
            client.registered_models.create(catalog_name="main", schema_name="other", name="m")


def test_a_model_version_is_pending_until_finalized(w: WorkspaceClient) -> None:
    uc_model(w)
    version = create_uc_version(w, finalize=False)
    pending = w.model_versions.get(MODEL, version)
    assert pending.status == catalog.ModelVersionInfoStatus.PENDING_REGISTRATION
    w.api_client.do("POST", f"{UC_MV}/finalize", body={"name": MODEL, "version": str(version)})
    assert w.model_versions.get(MODEL, version).status == catalog.ModelVersionInfoStatus.READY


def test_model_versions_are_numbered_listed_updated_and_deleted(w: WorkspaceClient) -> None:
    uc_model(w)
    assert [create_uc_version(w) for _ in range(3)] == [1, 2, 3]
    listed = list(w.model_versions.list(MODEL, max_results=2))
    assert sorted(v.version for v in listed) == [1, 2, 3]
    updated = w.model_versions.update(MODEL, 2, comment="retrained")
    assert updated.comment == "retrained"
    w.model_versions.delete(MODEL, 3)
    with pytest.raises(NotFound):
        w.model_versions.get(MODEL, 3)
    assert create_uc_version(w) == 4  # numbers are never reused


def test_aliases_point_at_versions_and_move(fake: FakeDatabricks, w: WorkspaceClient) -> None:
    uc_model(w)
    create_uc_version(w)
    create_uc_version(w)
    alias = w.registered_models.set_alias(MODEL, "champion", 1)
    assert (alias.alias_name, alias.version_num) == ("champion", 1)
    assert w.model_versions.get_by_alias(MODEL, "champion").version == 1
    fake.state.uc.set_alias(MODEL, "champion", 2)  # behind the client's back
    assert w.model_versions.get_by_alias(MODEL, "champion").version == 2
    info = w.registered_models.get(MODEL, include_aliases=True)
    assert [(a.alias_name, a.version_num) for a in info.aliases or []] == [("champion", 2)]
    assert w.model_versions.get(MODEL, 2, include_aliases=True).aliases
    w.registered_models.delete_alias(MODEL, "champion")
    with pytest.raises(NotFound):
        w.model_versions.get_by_alias(MODEL, "champion")


def test_alias_errors(w: WorkspaceClient) -> None:
    uc_model(w)
    create_uc_version(w)
    with pytest.raises(NotFound):
        w.registered_models.set_alias(MODEL, "champion", 9)
    for reserved in ("latest", "v1"):
        with pytest.raises(InvalidParameterValue):
            w.registered_models.set_alias(MODEL, reserved, 1)


def test_deleting_a_version_removes_its_aliases(w: WorkspaceClient) -> None:
    uc_model(w)
    create_uc_version(w)
    w.registered_models.set_alias(MODEL, "champion", 1)
    w.model_versions.delete(MODEL, 1)
    assert w.registered_models.get(MODEL, include_aliases=True).aliases == []


def test_tags_on_uc_versions_and_models_go_through_mlflow_rest(w: WorkspaceClient) -> None:
    uc_model(w)
    version = create_uc_version(w)
    body = {"name": MODEL, "version": str(version), "key": "mintaka.digest", "value": "sha256:ab"}
    w.api_client.do("POST", f"{UC_MV}/tags", body=body)
    w.api_client.do(
        "POST",
        "/api/2.0/mlflow/unity-catalog/registered-models/tags",
        body={"name": MODEL, "key": "owner", "value": "risk"},
    )
    got = w.api_client.do("GET", f"{UC_MV}/get", query={"name": MODEL, "version": str(version)})
    assert got["model_version"]["tags"] == [{"key": "mintaka.digest", "value": "sha256:ab"}]
    w.api_client.do(
        "DELETE", f"{UC_MV}/tags", body={"name": MODEL, "version": "1", "key": "mintaka.digest"}
    )
    got = w.api_client.do("GET", f"{UC_MV}/get", query={"name": MODEL, "version": "1"})
    assert got["model_version"]["tags"] == []
    model = w.api_client.do(
        "GET", "/api/2.0/mlflow/unity-catalog/registered-models/get", query={"name": MODEL}
    )
    assert model["registered_model"]["tags"] == [{"key": "owner", "value": "risk"}]


def test_mlflow_uc_api_searches_versions_and_reports_duplicates(w: WorkspaceClient) -> None:
    w.api_client.do(
        "POST", "/api/2.0/mlflow/unity-catalog/registered-models/create", body={"name": MODEL}
    )
    with pytest.raises(AlreadyExists):
        w.api_client.do(
            "POST", "/api/2.0/mlflow/unity-catalog/registered-models/create", body={"name": MODEL}
        )
    create_uc_version(w)
    found = w.api_client.do("GET", f"{UC_MV}/search", query={"filter": f"name='{MODEL}'"})
    assert [v["version"] for v in found["model_versions"]] == ["1"]
    with pytest.raises(NotFound):
        w.api_client.do("POST", f"{UC_MV}/create", body={"name": "main.default.x", "source": "s"})


# Workspace model registry


def test_workspace_registry_versions_tags_and_stage_transitions(w: WorkspaceClient) -> None:
    w.model_registry.create_model("churn", tags=[ml.ModelTag(key="team", value="risk")])
    with pytest.raises(ResourceAlreadyExists):
        w.model_registry.create_model("churn")
    first = w.model_registry.create_model_version("churn", "dbfs:/m/1").model_version
    assert first is not None
    assert first.status == ml.ModelVersionStatus.PENDING_REGISTRATION
    got = w.model_registry.get_model_version("churn", "1").model_version
    assert got is not None
    assert got.status == ml.ModelVersionStatus.READY
    w.model_registry.create_model_version("churn", "dbfs:/m/2")
    w.model_registry.set_model_version_tag("churn", "1", "approved", "true")
    w.model_registry.transition_stage("churn", "1", "Production", archive_existing_versions=False)
    moved = w.model_registry.transition_stage(
        "churn", "2", "production", archive_existing_versions=True
    ).model_version_databricks
    assert moved is not None
    assert moved.current_stage == "Production"
    tagged = w.model_registry.get_model_version("churn", "1").model_version
    assert tagged is not None
    assert tagged.current_stage == "Archived"
    assert [(t.key, t.value) for t in tagged.tags or []] == [("approved", "true")]
    latest = list(w.model_registry.get_latest_versions("churn", stages=["Production"]))
    assert [v.version for v in latest] == ["2"]
    assert [m.name for m in w.model_registry.list_models()] == ["churn"]
    model = w.model_registry.get_model("churn").registered_model_databricks
    assert model is not None
    assert [(t.key, t.value) for t in model.tags or []] == [("team", "risk")]
    assert len(list(w.model_registry.search_model_versions(filter="name='churn'"))) == 2
    with pytest.raises(NotFound):
        w.model_registry.get_model("missing")
    with pytest.raises(InvalidParameterValue):
        w.model_registry.transition_stage("churn", "1", "Prod", archive_existing_versions=False)


@pytest.mark.parametrize(
    ("written", "found"),
    [
        ("""name = "Bob's model\"""", ["Bob's model"]),
        ("name = 'Bob''s model'", ["Bob''s model"]),
        ("name = 'Bob\\'s model'", ["Bob\\'s model"]),
        ('name LIKE "Bob\'s%"', ["Bob's model", "Bob's other"]),
    ],
)
def test_a_search_filter_value_is_read_as_mlflow_reads_it(
    w: WorkspaceClient, written: str, found: list[str]
) -> None:
    """MLflow strips a filter value's quotes (single or double) and unescapes nothing inside."""
    for name in ("Bob's model", "Bob's other", "Bob''s model", "Bob\\'s model"):
        w.model_registry.create_model(name)
        w.model_registry.create_model_version(name, "dbfs:/m/1")
    listed = w.model_registry.search_models(filter=written)
    assert sorted(m.name or "" for m in listed) == found
    if "LIKE" not in written:
        versions = w.model_registry.search_model_versions(filter=written)
        assert [v.name for v in versions] == found


# MLflow experiments and runs


def test_runs_are_created_logged_finished_and_searched(w: WorkspaceClient) -> None:
    w.workspace.mkdirs("/Shared/mintaka")
    experiment_id = w.experiments.create_experiment("/Shared/mintaka/churn").experiment_id
    assert w.experiments.get_by_name("/Shared/mintaka/churn").experiment.experiment_id == (
        experiment_id
    )
    run = w.experiments.create_run(
        experiment_id=experiment_id,
        run_name="train",
        tags=[ml.RunTag(key="mintaka.run_id", value="r-1")],
    ).run
    assert run is not None
    assert run.info is not None
    run_id = run.info.run_id
    assert run_id is not None
    w.experiments.log_batch(
        run_id=run_id,
        params=[ml.Param(key="lr", value="0.1")],
        metrics=[
            ml.Metric(key="auc", value=0.7, timestamp=1, step=0),
            ml.Metric(key="auc", value=0.8, timestamp=2, step=1),
        ],
    )
    w.experiments.update_run(run_id=run_id, status=ml.UpdateRunStatus.FINISHED, end_time=5)
    got = w.experiments.get_run(run_id).run
    assert got is not None
    assert got.info is not None
    assert got.data is not None
    assert got.info.status == ml.RunInfoStatus.FINISHED
    assert [(m.key, m.value) for m in got.data.metrics or []] == [("auc", 0.8)]
    assert [(p.key, p.value) for p in got.data.params or []] == [("lr", "0.1")]
    found = list(
        w.experiments.search_runs(
            experiment_ids=[experiment_id], filter="tags.`mintaka.run_id` = 'r-1'"
        )
    )
    assert [r.info.run_id for r in found if r.info] == [run_id]
    assert not list(
        w.experiments.search_runs(experiment_ids=[experiment_id], filter="tags.x = 'y'")
    )


def test_searches_page_and_name_their_experiments(w: WorkspaceClient) -> None:
    w.workspace.mkdirs("/Shared/mintaka")
    ids = [w.experiments.create_experiment(f"/Shared/mintaka/e{n}").experiment_id for n in range(3)]
    w.experiments.create_experiment("/Shared/other")
    for experiment_id in ids:
        w.experiments.create_run(experiment_id=experiment_id, run_name="r")
    under = w.experiments.search_experiments(filter="name LIKE '/Shared/mintaka/%'", max_results=1)
    assert sorted(e.name or "" for e in under) == [f"/Shared/mintaka/e{n}" for n in range(3)]
    assert [e.name for e in w.experiments.search_experiments(filter="name = '/Shared/other'")] == [
        "/Shared/other"
    ]
    assert len(list(w.experiments.search_runs(experiment_ids=ids, max_results=2))) == 3
    assert list(w.experiments.search_runs()) == []  # no experiment named, no runs
    with pytest.raises(InvalidParameterValue):
        list(w.experiments.search_experiments(filter="tags.x = 'y'"))
    with pytest.raises(InvalidParameterValue):
        list(w.experiments.search_experiments(max_results=3001))


def test_tracking_errors(w: WorkspaceClient) -> None:
    with pytest.raises(InvalidParameterValue):
        w.experiments.create_experiment("relative-name")
    with pytest.raises(ResourceDoesNotExist, match="Parent directory /Shared/missing does not"):
        w.experiments.create_experiment("/Shared/missing/e")
    w.workspace.import_("/Shared/file", content="", format=ImportFormat.RAW)
    with pytest.raises(ResourceDoesNotExist, match="Parent directory /Shared/file does not"):
        w.experiments.create_experiment("/Shared/file/e")
    experiment_id = w.experiments.create_experiment("/Shared/e").experiment_id
    with pytest.raises(ResourceAlreadyExists):
        w.experiments.create_experiment("/Shared/e")
    with pytest.raises(ResourceDoesNotExist):
        w.experiments.get_by_name("/Shared/missing")
    with pytest.raises(NotFound):
        w.experiments.get_run("0" * 32)
    run = w.experiments.create_run(experiment_id=experiment_id).run
    assert run is not None
    assert run.info is not None
    assert run.info.run_id is not None
    w.experiments.log_batch(run_id=run.info.run_id, params=[ml.Param(key="lr", value="0.1")])
    w.experiments.log_batch(run_id=run.info.run_id, params=[ml.Param(key="lr", value="0.1")])
    with pytest.raises(InvalidParameterValue, match="Changing param values is not allowed"):
        w.experiments.log_batch(run_id=run.info.run_id, params=[ml.Param(key="lr", value="1")])


# Serving endpoints


def test_an_endpoint_is_created_in_progress_then_becomes_ready(
    fake: FakeDatabricks, w: WorkspaceClient
) -> None:
    uc_model(w)
    create_uc_version(w)
    started = time.monotonic()
    waiter = w.serving_endpoints.create(
        name="churn-ep",
        config=serving.EndpointCoreConfigInput(name="churn-ep", served_entities=[served(MODEL, 1)]),
    )
    created = waiter.response
    assert created.state is not None
    assert created.state.ready == serving.EndpointStateReady.NOT_READY
    assert created.state.config_update == serving.EndpointStateConfigUpdate.IN_PROGRESS
    assert created.pending_config is not None
    assert created.config is None
    ready = waiter.result(timeout=timedelta(seconds=5))
    assert time.monotonic() - started < 0.5  # settled on the first poll, no real sleep
    assert ready.state is not None
    assert ready.state.ready == serving.EndpointStateReady.READY
    assert ready.state.config_update == serving.EndpointStateConfigUpdate.NOT_UPDATING
    assert ready.config is not None
    assert ready.config.config_version == 1
    assert ready.config.served_entities is not None
    assert ready.config.served_entities[0].name == "churn-1"
    assert ready.config.traffic_config is not None
    assert [
        (r.served_entity_name, r.traffic_percentage)
        for r in ready.config.traffic_config.routes or []
    ] == [("churn-1", 100)]
    assert [e.name for e in w.serving_endpoints.list()] == ["churn-ep"]
    w.serving_endpoints.delete("churn-ep")
    with pytest.raises(ResourceDoesNotExist):
        w.serving_endpoints.get("churn-ep")


def test_a_config_update_bumps_the_version_through_a_pending_config(
    fake: FakeDatabricks, w: WorkspaceClient
) -> None:
    endpoint_with_two_versions(w)
    updating = w.serving_endpoints.update_config(
        "churn-ep",
        served_entities=[served(MODEL, 1, "blue"), served(MODEL, 2, "green")],
        traffic_config=routes(blue=50, green=50),
    ).response
    assert updating.state is not None
    assert updating.state.config_update == serving.EndpointStateConfigUpdate.IN_PROGRESS
    assert updating.state.ready == serving.EndpointStateReady.READY  # the old config still serves
    assert updating.pending_config is not None
    assert updating.pending_config.config_version == 2
    assert updating.config is not None
    assert updating.config.config_version == 1
    assert fake.state.serving.endpoint("churn-ep").traffic == {"blue": 90, "green": 10}
    with pytest.raises(ResourceConflict):
        w.serving_endpoints.update_config("churn-ep", traffic_config=routes(blue=100, green=0))
    done = w.serving_endpoints.wait_get_serving_endpoint_not_updating("churn-ep")
    assert done.config is not None
    assert done.config.config_version == 2
    assert fake.state.serving.endpoint("churn-ep").traffic == {"blue": 50, "green": 50}


def test_traffic_routes_are_validated(w: WorkspaceClient) -> None:
    endpoint_with_two_versions(w)
    update = w.serving_endpoints.update_config
    with pytest.raises(InvalidParameterValue, match="sum to 100"):
        update("churn-ep", traffic_config=routes(blue=80, green=10))
    with pytest.raises(InvalidParameterValue, match="not a served entity"):
        update("churn-ep", traffic_config=routes(blue=90, purple=10))
    with pytest.raises(InvalidParameterValue, match="integer"):
        w.api_client.do(
            "PUT",
            "/api/2.0/serving-endpoints/churn-ep/config",
            body={
                "traffic_config": {
                    "routes": [
                        {"served_entity_name": "blue", "traffic_percentage": 50.5},
                        {"served_entity_name": "green", "traffic_percentage": 49.5},
                    ]
                }
            },
        )
    with pytest.raises(InvalidParameterValue, match="traffic_config is required"):
        update("churn-ep", served_entities=[served(MODEL, 1, "a"), served(MODEL, 2, "b")])


def test_endpoint_creation_errors(w: WorkspaceClient) -> None:
    endpoint_with_two_versions(w)
    config = serving.EndpointCoreConfigInput(name="x", served_entities=[served(MODEL, 1)])
    with pytest.raises(ResourceAlreadyExists):
        w.serving_endpoints.create(name="churn-ep", config=config)
    with pytest.raises(InvalidParameterValue, match="Invalid endpoint name"):
        w.serving_endpoints.create(name="bad name!", config=config)
    missing = serving.EndpointCoreConfigInput(name="x", served_entities=[served(MODEL, 9)])
    with pytest.raises(NotFound):
        w.serving_endpoints.create(name="other", config=missing)
    with pytest.raises(InvalidParameterValue, match="at least one served entity"):
        w.serving_endpoints.create(
            name="empty", config=serving.EndpointCoreConfigInput(name="empty")
        )


def test_a_failed_update_keeps_the_old_config(fake: FakeDatabricks, w: WorkspaceClient) -> None:
    endpoint_with_two_versions(w)
    fake.state.serving.fail_next_update("churn-ep")
    with pytest.raises(OperationFailed, match="UPDATE_FAILED"):
        w.serving_endpoints.update_config_and_wait(
            "churn-ep", traffic_config=routes(blue=0, green=100)
        )
    endpoint = w.serving_endpoints.get("churn-ep")
    assert endpoint.config is not None
    assert endpoint.config.config_version == 1
    assert fake.state.serving.endpoint("churn-ep").traffic == {"blue": 90, "green": 10}


def test_a_held_update_stays_in_progress(fake: FakeDatabricks, w: WorkspaceClient) -> None:
    endpoint_with_two_versions(w)
    fake.state.serving.hold("churn-ep")
    w.serving_endpoints.update_config("churn-ep", traffic_config=routes(blue=0, green=100))
    for _ in range(3):
        state = w.serving_endpoints.get("churn-ep").state
        assert state is not None
        assert state.config_update == serving.EndpointStateConfigUpdate.IN_PROGRESS
    fake.state.serving.hold("churn-ep", False)
    fake.state.serving.settle("churn-ep")
    assert fake.state.serving.endpoint("churn-ep").traffic == {"blue": 0, "green": 100}


def test_invocations_name_the_served_entity_and_follow_the_weights(
    fake: FakeDatabricks, w: WorkspaceClient
) -> None:
    endpoint_with_two_versions(w)
    answered = Counter()
    for _ in range(200):
        response = w.serving_endpoints.query("churn-ep", dataframe_records=[{"x": 1}, {"x": 2}])
        answered[response.served_model_name] += 1
        assert response.predictions is not None
        assert len(response.predictions) == 2
        assert response.predictions[0]["served_entity_name"] == response.served_model_name
    assert set(answered) == {"blue", "green"}
    assert 150 < answered["blue"] < 200
    metrics = w.serving_endpoints.export_metrics("churn-ep").contents
    assert metrics is not None
    text = metrics.read().decode()
    blue = 'request_count_total{endpoint_name="churn-ep",served_entity_name="blue"}'
    assert f"{blue} {float(answered['blue'])}" in text


def test_routing_is_deterministic_for_a_seed(databricks_environment: Path) -> None:
    def sequence() -> list[str | None]:
        with FakeDatabricks(seed=11) as fake:
            client = workspace_client(fake)
            endpoint_with_two_versions(client)
            return [
                client.serving_endpoints.query("churn-ep", inputs=[1]).served_model_name
                for _ in range(30)
            ]

    assert sequence() == sequence()


def test_route_changes_made_behind_the_clients_back_are_visible(
    fake: FakeDatabricks, w: WorkspaceClient
) -> None:
    endpoint_with_two_versions(w)
    other = workspace_client(fake)  # someone else's client, same workspace
    other.serving_endpoints.update_config_and_wait(
        "churn-ep", traffic_config=routes(blue=0, green=100)
    )
    answered = {
        w.serving_endpoints.query("churn-ep", inputs=[1]).served_model_name for _ in range(20)
    }
    assert answered == {"green"}
    pinned = w.api_client.do(
        "POST",
        "/serving-endpoints/churn-ep/served-models/blue/invocations",
        body={"inputs": [1]},
        response_headers=["served-model-name"],
    )
    assert pinned["served-model-name"] == "blue"


def test_invoking_an_endpoint_that_is_not_ready_is_refused(
    fake: FakeDatabricks, w: WorkspaceClient
) -> None:
    uc_model(w)
    create_uc_version(w)
    w.serving_endpoints.create(
        name="ep",
        config=serving.EndpointCoreConfigInput(name="ep", served_entities=[served(MODEL, 1)]),
    )
    with pytest.raises(InvalidState, match="not ready"):
        w.serving_endpoints.query("ep", inputs=[1])
    with pytest.raises(ResourceDoesNotExist):
        w.serving_endpoints.query("missing", inputs=[1])


def test_ai_gateway_rate_limits_are_validated_and_call_limits_enforced_per_minute(
    databricks_environment: Path,
) -> None:
    now = [1_800_000_000.0]
    with FakeDatabricks(seed=0, clock=lambda: now[0]) as fake:
        w = workspace_client(fake, clock=NoWaitClock())
        endpoint_with_two_versions(w)
        gateway = "/api/2.0/serving-endpoints/churn-ep/ai-gateway"
        for bad, says in (
            ({"calls": 1, "renewal_period": "hour"}, "renewal_period"),
            ({"calls": -1, "renewal_period": "minute"}, "non-negative"),
            ({"renewal_period": "minute"}, "calls or tokens"),
            ({"calls": 1, "key": "team", "renewal_period": "minute"}, "key 'team'"),
            ({"calls": 1, "key": "user_group", "renewal_period": "minute"}, "principal"),
        ):
            with pytest.raises(InvalidParameterValue, match=says):
                w.api_client.do("PUT", gateway, body={"rate_limits": [bad]})
        with pytest.raises(InvalidParameterValue, match="More than one"):
            w.api_client.do(
                "PUT",
                gateway,
                body={"rate_limits": [{"calls": 1, "renewal_period": "minute"}] * 2},
            )

        def status() -> int:
            answer = requests.post(
                f"{fake.host}/serving-endpoints/churn-ep/invocations",
                json={"inputs": [1]},
                headers={"Authorization": f"Bearer {fake.token}"},
                timeout=5,
            )
            if answer.status_code == 429:
                assert answer.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
            return answer.status_code

        w.serving_endpoints.put_ai_gateway(
            "churn-ep",
            rate_limits=[
                serving.AiGatewayRateLimit(
                    calls=2,
                    key=serving.AiGatewayRateLimitKey.ENDPOINT,
                    renewal_period=serving.AiGatewayRateLimitRenewalPeriod.MINUTE,
                ),
                serving.AiGatewayRateLimit(
                    calls=1,
                    key=serving.AiGatewayRateLimitKey.USER,
                    principal="someone-else@example.com",
                    renewal_period=serving.AiGatewayRateLimitRenewalPeriod.MINUTE,
                ),
            ],
            usage_tracking_config=serving.AiGatewayUsageTrackingConfig(enabled=True),
        )
        assert [status() for _ in range(3)] == [200, 200, 429]
        now[0] += 60  # the next minute
        assert status() == 200
        w.api_client.do(
            "PUT", gateway, body={"rate_limits": [{"calls": 0, "renewal_period": "minute"}]}
        )
        assert status() == 429  # a limit of 0 refuses every request
        read = w.serving_endpoints.get("churn-ep").ai_gateway
        assert read is not None
        assert read.rate_limits is not None
        assert read.rate_limits[0].calls == 0
        assert read.usage_tracking_config is None  # a PUT replaces the whole gateway config


def test_model_version_files_are_written_before_finalize_and_read_any_time(
    fake: FakeDatabricks, w: WorkspaceClient
) -> None:
    uc_model(w)
    version = create_uc_version(w, finalize=False)
    base = f"/Models/main/default/churn/{version}"
    w.files.upload(f"{base}/MLmodel", io.BytesIO(b"flavors: {}"), overwrite=True)
    w.files.upload(f"{base}/data/model.pkl", io.BytesIO(bytes(range(256))), overwrite=True)
    with pytest.raises(AlreadyExists):
        w.files.upload(f"{base}/MLmodel", io.BytesIO(b"again"))
    w.api_client.do("POST", f"{UC_MV}/finalize", body={"name": MODEL, "version": version})

    assert w.files.download(f"{base}/data/model.pkl").contents.read() == bytes(range(256))
    listed = {(e.path, e.is_directory) for e in w.files.list_directory_contents(base)}
    assert listed == {(f"{base}/MLmodel", False), (f"{base}/data/", True)}
    w.files.get_directory_metadata(base)
    with pytest.raises(PermissionDenied, match="before it is finalized"):
        w.files.upload(f"{base}/extra", io.BytesIO(b"late"), overwrite=True)
    with pytest.raises(ResourceDoesNotExist):
        w.files.upload("/Models/main/default/churn/9/MLmodel", io.BytesIO(b"x"), overwrite=True)
    with pytest.raises(NotFound):
        w.files.download(f"{base}/missing")
    assert fake.state.files.under(base) == {
        "MLmodel": b"flavors: {}",
        "data/model.pkl": bytes(range(256)),
    }


def test_predictors_and_inference_tables(fake: FakeDatabricks, w: WorkspaceClient) -> None:
    uc_model(w)
    create_uc_version(w)
    fake.state.serving.set_predictor(f"{MODEL}:1", lambda payload, s: [len(payload["inputs"])])
    w.serving_endpoints.create_and_wait(
        name="ep",
        config=serving.EndpointCoreConfigInput(
            name="ep",
            served_entities=[served(MODEL, 1)],
            auto_capture_config=serving.AutoCaptureConfigInput(
                catalog_name="main", schema_name="monitoring", table_name_prefix="churn"
            ),
        ),
    )
    response = w.serving_endpoints.query("ep", inputs=[1, 2, 3], client_request_id="req-1")
    assert response.predictions == [3]
    endpoint = w.serving_endpoints.get("ep")
    assert endpoint.config is not None
    assert endpoint.config.auto_capture_config is not None
    capture = endpoint.config.auto_capture_config
    assert (capture.catalog_name, capture.schema_name, capture.enabled) == (
        "main",
        "monitoring",
        True,
    )
    assert capture.state is not None
    assert capture.state.payload_table is not None
    assert capture.state.payload_table.name == "main.monitoring.churn_payload"
    rows = fake.state.serving.endpoint("ep").captured
    assert [(r["client_request_id"], r["status_code"]) for r in rows] == [("req-1", 200)]
    with pytest.raises(InvalidParameterValue, match="cannot change"):
        w.serving_endpoints.update_config(
            "ep",
            auto_capture_config=serving.AutoCaptureConfigInput(
                catalog_name="main", schema_name="elsewhere"
            ),
        )
    tags = w.serving_endpoints.patch(
        "ep", add_tags=[serving.EndpointTag(key="owner", value="risk")]
    )
    assert [(t.key, t.value) for t in tags.tags or []] == [("owner", "risk")]


# Jobs


def notebook_task(key: str, *depends_on: str) -> jobs.Task:
    return jobs.Task(
        task_key=key,
        notebook_task=jobs.NotebookTask(notebook_path=f"/Repos/mintaka/{key}"),
        depends_on=[jobs.TaskDependency(task_key=d) for d in depends_on] or None,
    )


def pipeline_job(w: WorkspaceClient) -> int:
    created = w.jobs.create(
        name="churn-pipeline",
        tasks=[
            notebook_task("prepare"),
            notebook_task("train", "prepare"),
            notebook_task("evaluate", "train"),
        ],
        parameters=[jobs.JobParameterDefinition(name="data_version", default="v1")],
    )
    assert created.job_id is not None
    return created.job_id


def test_jobs_are_created_read_listed_and_deleted(w: WorkspaceClient) -> None:
    job_id = pipeline_job(w)
    job = w.jobs.get(job_id)
    assert job.settings is not None
    assert job.settings.tasks is not None
    assert [t.task_key for t in job.settings.tasks] == ["prepare", "train", "evaluate"]
    listed = list(w.jobs.list(name="CHURN-pipeline"))
    assert [j.job_id for j in listed] == [job_id]
    assert listed[0].settings is not None
    assert not listed[0].settings.tasks
    w.jobs.delete(job_id)
    with pytest.raises(ResourceDoesNotExist):  # the SDK maps "Job 1 does not exist." itself
        w.jobs.get(job_id)
    with pytest.raises(InvalidParameterValue, match="does not exist"):
        w.jobs.delete(job_id)


def test_a_run_succeeds_within_one_poll(w: WorkspaceClient) -> None:
    job_id = pipeline_job(w)
    started = time.monotonic()
    run = w.jobs.run_now_and_wait(job_id, job_parameters={"data_version": "v2"})
    assert time.monotonic() - started < 0.5
    assert run.state is not None
    assert run.state.life_cycle_state == jobs.RunLifeCycleState.TERMINATED
    assert run.state.result_state == jobs.RunResultState.SUCCESS
    assert [p.value for p in run.job_parameters or []] == ["v2"]
    assert all(
        t.state is not None and t.state.result_state == jobs.RunResultState.SUCCESS
        for t in run.tasks or []
    )


def test_scripted_task_failures_fail_the_run_and_skip_downstream(
    fake: FakeDatabricks, w: WorkspaceClient
) -> None:
    job_id = pipeline_job(w)
    fake.state.jobs.script_task(
        "train", "FAILED", "diverged", error_trace="Traceback ...", once=True
    )
    run = w.jobs.run_now_and_wait(job_id)
    assert run.state is not None
    assert run.state.result_state == jobs.RunResultState.FAILED
    assert "train" in (run.state.state_message or "")
    results = {t.task_key: t.state.result_state for t in run.tasks or [] if t.state}
    assert results == {
        "prepare": jobs.RunResultState.SUCCESS,
        "train": jobs.RunResultState.FAILED,
        "evaluate": jobs.RunResultState.UPSTREAM_FAILED,
    }
    train = next(t for t in run.tasks or [] if t.task_key == "train")
    assert train.run_id is not None
    output = w.jobs.get_run_output(train.run_id)
    assert (output.error, output.error_trace) == ("diverged", "Traceback ...")
    again = w.jobs.run_now_and_wait(job_id)  # the failure was scripted once
    assert again.state is not None
    assert again.state.result_state == jobs.RunResultState.SUCCESS


def test_runs_walk_through_their_lifecycle(fake: FakeDatabricks, w: WorkspaceClient) -> None:
    fake.state.jobs.run_states = ("PENDING", "RUNNING", "TERMINATED")
    run_id = w.jobs.run_now(pipeline_job(w)).response.run_id
    assert run_id is not None
    seen = []
    for _ in range(4):
        state = w.jobs.get_run(run_id).state
        assert state is not None
        seen.append(state.life_cycle_state)
    assert seen == [
        jobs.RunLifeCycleState.PENDING,
        jobs.RunLifeCycleState.RUNNING,
        jobs.RunLifeCycleState.TERMINATED,
        jobs.RunLifeCycleState.TERMINATED,
    ]
    active = list(w.jobs.list_runs(active_only=True))
    assert active == []


def test_a_run_beyond_max_concurrent_runs_is_skipped_or_queued(
    fake: FakeDatabricks, w: WorkspaceClient
) -> None:
    fake.state.jobs.run_states = ("RUNNING", "TERMINATED")
    job_id = pipeline_job(w)
    w.jobs.update(job_id, new_settings=jobs.JobSettings(queue=jobs.QueueSettings(enabled=False)))
    first = w.jobs.run_now(job_id).response.run_id
    assert first is not None
    skipped = w.jobs.get_run(w.jobs.run_now(job_id).response.run_id or 0)
    assert skipped.state is not None
    assert skipped.state.life_cycle_state == jobs.RunLifeCycleState.SKIPPED
    assert skipped.state.result_state == jobs.RunResultState.MAXIMUM_CONCURRENT_RUNS_REACHED
    assert "limit of 1 maximum concurrent runs" in (skipped.state.state_message or "")
    w.jobs.update(job_id, new_settings=jobs.JobSettings(queue=jobs.QueueSettings(enabled=True)))
    queued = w.jobs.run_now(job_id).response.run_id
    assert queued is not None
    states = [w.jobs.get_run(queued).state for _ in range(2)]
    assert [s.life_cycle_state for s in states if s] == [jobs.RunLifeCycleState.QUEUED] * 2
    fake.state.jobs.finish(first)
    seen = [w.jobs.get_run(queued).state for _ in range(2)]
    assert [s.life_cycle_state for s in seen if s] == [
        jobs.RunLifeCycleState.RUNNING,
        jobs.RunLifeCycleState.TERMINATED,
    ]


@pytest.mark.parametrize("how", ["created", "reset"])
def test_a_job_created_or_reset_without_a_queue_setting_queues_its_runs(
    fake: FakeDatabricks, w: WorkspaceClient, how: str
) -> None:
    """Jobs 2.2 queues the runs of a job whose create or reset request leaves ``queue`` out."""
    fake.state.jobs.run_states = ("RUNNING", "TERMINATED")
    job_id = pipeline_job(w)
    if how == "reset":
        off = jobs.JobSettings(queue=jobs.QueueSettings(enabled=False))
        w.jobs.update(job_id, new_settings=off)
        settings = w.jobs.get(job_id).settings
        assert settings is not None
        w.jobs.reset(job_id, new_settings=replace(settings, queue=None))
    settings = w.jobs.get(job_id).settings
    assert settings is not None
    assert settings.queue == jobs.QueueSettings(enabled=True)
    assert w.jobs.run_now(job_id).response.run_id is not None
    second = w.jobs.get_run(w.jobs.run_now(job_id).response.run_id or 0)
    assert second.state is not None
    assert second.state.life_cycle_state == jobs.RunLifeCycleState.QUEUED


def test_a_cancelled_run_ends_cancelled(fake: FakeDatabricks, w: WorkspaceClient) -> None:
    fake.state.jobs.run_states = ("RUNNING", "TERMINATED")
    run_id = w.jobs.run_now(pipeline_job(w)).response.run_id
    assert run_id is not None
    w.jobs.get_run(run_id)
    cancelled = w.jobs.cancel_run_and_wait(run_id)
    assert cancelled.state is not None
    assert cancelled.state.result_state == jobs.RunResultState.CANCELED


def test_submitted_runs_and_run_errors(w: WorkspaceClient) -> None:
    run = w.jobs.submit_and_wait(
        run_name="one-off",
        tasks=[
            jobs.SubmitTask(
                task_key="score", notebook_task=jobs.NotebookTask(notebook_path="/score")
            )
        ],
    )
    assert run.run_type == jobs.RunType.SUBMIT_RUN
    assert run.state is not None
    assert run.state.result_state == jobs.RunResultState.SUCCESS
    with pytest.raises(ResourceDoesNotExist):
        w.jobs.get_run(999999)
    with pytest.raises(InvalidParameterValue, match="cycle"):
        w.jobs.create(name="loop", tasks=[notebook_task("a", "b"), notebook_task("b", "a")])
    with pytest.raises(InvalidParameterValue, match="not defined"):
        w.jobs.run_now(pipeline_job(w), job_parameters={"unknown": "x"})
    assert [r.run_name for r in w.jobs.list_runs(limit=1)] == ["one-off"]


def test_a_python_task_answers_get_output_with_its_logs_kept_to_the_last_5_mb(
    fake: FakeDatabricks, w: WorkspaceClient
) -> None:
    def python_run() -> jobs.Run:
        return w.jobs.submit_and_wait(
            run_name="script",
            tasks=[
                jobs.SubmitTask(
                    task_key="fit",
                    spark_python_task=jobs.SparkPythonTask(python_file="/Workspace/fit.py"),
                )
            ],
        )

    fake.state.jobs.script_task("fit", "SUCCESS", logs="fitting\nMINTAKA_STEP_OUTPUTS {}\n")
    [task] = python_run().tasks or []
    assert task.run_id is not None
    output = w.jobs.get_run_output(task.run_id)
    assert (output.logs, output.logs_truncated) == ("fitting\nMINTAKA_STEP_OUTPUTS {}\n", False)
    fake.state.jobs.script_task("fit", "SUCCESS", logs="x" * (5 * 1024 * 1024) + "end\n")
    [task] = python_run().tasks or []
    assert task.run_id is not None
    output = w.jobs.get_run_output(task.run_id)
    assert output.logs_truncated is True
    assert output.logs is not None
    assert len(output.logs) == 5 * 1024 * 1024
    assert output.logs.endswith("end\n")
    notebook = w.jobs.submit_and_wait(
        run_name="nb",
        tasks=[jobs.SubmitTask(task_key="nb", notebook_task=jobs.NotebookTask(notebook_path="/n"))],
    )
    assert w.jobs.get_run_output(notebook.run_id or 0).logs is None


def test_a_notebook_task_answers_get_output_with_its_result_kept_to_the_first_5_mb(
    fake: FakeDatabricks, w: WorkspaceClient
) -> None:
    def notebook_run() -> jobs.Run:
        task = jobs.SubmitTask(
            task_key="step",
            notebook_task=jobs.NotebookTask(
                notebook_path="/Workspace/Shared/jobs/step",
                base_parameters={"mintaka_step": "step"},
                source=jobs.Source.WORKSPACE,
            ),
        )
        return w.jobs.submit_and_wait(run_name="nb", tasks=[task])

    fake.state.jobs.script_task("step", "SUCCESS", notebook_result='{"auc":0.9}')
    [task] = notebook_run().tasks or []
    output = w.jobs.get_run_output(task.run_id or 0)
    assert output.notebook_output is not None
    assert (output.notebook_output.result, output.notebook_output.truncated) == (
        '{"auc":0.9}',
        False,
    )
    assert output.logs is None
    fake.state.jobs.script_task("step", "SUCCESS", notebook_result="x" * (5 * 1024 * 1024 + 3))
    [task] = notebook_run().tasks or []
    cut = w.jobs.get_run_output(task.run_id or 0).notebook_output
    assert cut is not None
    assert cut.truncated is True
    assert len(cut.result or "") == 5 * 1024 * 1024
    fake.state.jobs.clear_scripts()
    [task] = notebook_run().tasks or []
    never_exited = w.jobs.get_run_output(task.run_id or 0).notebook_output
    assert never_exited is not None
    assert never_exited.result is None


def test_a_reference_to_a_task_value_no_upstream_task_set_fails_the_task(
    fake: FakeDatabricks, w: WorkspaceClient
) -> None:
    """Databricks reports an invalid reference in its known ``tasks`` namespace as an error: a
    value the upstream task did not set, or one of a task that ran but is not upstream, fails
    the task rather than reaching it as literal text."""

    def task(key: str, after: list[str], reference: str) -> jobs.SubmitTask:
        return jobs.SubmitTask(
            task_key=key,
            depends_on=[jobs.TaskDependency(task_key=k) for k in after],
            notebook_task=jobs.NotebookTask(
                notebook_path="/n", base_parameters={"given": reference}
            ),
        )

    fake.state.jobs.script_task("prep", "SUCCESS", task_values={"path": "/data"})
    fake.state.jobs.script_task("side", "SUCCESS", task_values={"seed": 7})
    started = w.jobs.submit(
        run_name="wired",
        tasks=[
            task("prep", [], "{{job.run_id}}"),
            task("side", [], "{{job.run_id}}"),
            task("fit", ["prep"], "{{tasks.prep.values.path}}"),
            task("score", ["fit"], "{{tasks.prep.values.path}}/{{tasks.side.values.seed}}"),
            task("report", ["fit"], "{{tasks.prep.values.size}}"),
        ],
    )
    ran = {t.task_key: t for t in w.jobs.get_run(started.run_id or 0).tasks or []}
    states = {
        key: t.state.result_state.value
        for key, t in ran.items()
        if t.state and t.state.result_state
    }
    assert states == {
        "prep": "SUCCESS",
        "side": "SUCCESS",
        "fit": "SUCCESS",
        "score": "FAILED",
        "report": "FAILED",
    }
    assert fake.state.jobs.runs[started.run_id or 0].tasks[2].resolved == {"given": "/data"}
    assert "{{tasks.side.values.seed}}" in (ran["score"].state.state_message or "")
    assert "'size'" in (ran["report"].state.state_message or "")


@pytest.mark.parametrize(
    ("notebook", "problem"),
    [
        ({"base_parameters": {}}, "notebook_path is required"),
        ({"notebook_path": "Shared/run_step"}, "must be absolute"),
        ({"notebook_path": "/Shared/run_step", "source": "GIT"}, "must be relative"),
        ({"notebook_path": "/Shared/run_step", "source": "S3"}, "invalid notebook_task.source"),
        ({"notebook_path": "/run", "base_parameters": {"depth": 3}}, "map names to strings"),
    ],
)
def test_notebook_tasks_the_service_refuses_are_refused_on_create_and_reset(
    w: WorkspaceClient, notebook: dict[str, object], problem: str
) -> None:
    tasks = [{"task_key": "step", "notebook_task": notebook}]
    with pytest.raises(InvalidParameterValue, match=problem):
        w.api_client.do("POST", "/api/2.2/jobs/create", body={"name": "bad", "tasks": tasks})
    job_id = pipeline_job(w)
    with pytest.raises(InvalidParameterValue, match=problem):
        w.api_client.do(
            "POST",
            "/api/2.2/jobs/reset",
            body={"job_id": job_id, "new_settings": {"name": "bad", "tasks": tasks}},
        )
    assert [t.task_key for t in w.jobs.get(job_id).settings.tasks or []] == [  # type: ignore[union-attr]
        "prepare",
        "train",
        "evaluate",
    ]


def test_a_source_notebook_is_imported_at_its_path_and_exports_with_its_header(
    fake: FakeDatabricks, w: WorkspaceClient
) -> None:
    w.workspace.mkdirs("/Shared/mintaka")
    plain = base64.b64encode(b"print('step')\n").decode()
    with pytest.raises(InvalidParameterValue, match="Language must be specified"):
        w.workspace.import_("/Shared/mintaka/run_step", content=plain, format=ImportFormat.SOURCE)
    w.workspace.import_(
        "/Shared/mintaka/run_step",
        content=plain,
        format=ImportFormat.SOURCE,
        language=Language.PYTHON,
    )
    status = w.workspace.get_status("/Shared/mintaka/run_step")
    assert (status.object_type, status.language) == (ObjectType.NOTEBOOK, Language.PYTHON)
    exported = w.workspace.export("/Shared/mintaka/run_step", format=ExportFormat.SOURCE)
    assert base64.b64decode(exported.content or "") == (
        b"# Databricks notebook source\nprint('step')\n"
    )
    headed = b"# Databricks notebook source\nprint(2)\n"
    w.workspace.import_(
        "/Shared/mintaka/run_step",
        content=base64.b64encode(headed).decode(),
        format=ImportFormat.SOURCE,
        language=Language.PYTHON,
        overwrite=True,
    )
    exported = w.workspace.export("/Shared/mintaka/run_step", format=ExportFormat.SOURCE)
    assert base64.b64decode(exported.content or "") == headed


def test_workspace_files_are_imported_into_folders_that_exist_and_exported(
    fake: FakeDatabricks, w: WorkspaceClient
) -> None:
    source = base64.b64encode(b"print('step')\n").decode()
    with pytest.raises(ResourceDoesNotExist, match="parent folder"):
        w.workspace.import_("/Shared/mintaka/run.py", content=source, format=ImportFormat.AUTO)
    w.workspace.mkdirs("/Shared/mintaka")
    w.workspace.mkdirs("/Shared/mintaka")  # already there: nothing to do
    w.workspace.import_("/Shared/mintaka/run.py", content=source, format=ImportFormat.AUTO)
    with pytest.raises(ResourceAlreadyExists):
        w.workspace.import_("/Shared/mintaka/run.py", content=source, format=ImportFormat.AUTO)
    again = base64.b64encode(b"print('again')\n").decode()
    w.workspace.import_(
        "/Shared/mintaka/run.py", content=again, format=ImportFormat.AUTO, overwrite=True
    )
    exported = w.workspace.export("/Shared/mintaka/run.py", format=ExportFormat.AUTO)
    assert base64.b64decode(exported.content or "") == b"print('again')\n"
    status = w.workspace.get_status("/Shared/mintaka/run.py")
    assert status.object_type == ObjectType.FILE
    assert fake.state.workspace.read("/Shared/mintaka/run.py") == b"print('again')\n"
    notebook = base64.b64encode(b"# Databricks notebook source\nprint(1)\n").decode()
    w.workspace.import_("/Shared/mintaka/nb.py", content=notebook, format=ImportFormat.AUTO)
    assert w.workspace.get_status("/Shared/mintaka/nb").object_type == ObjectType.NOTEBOOK
    with pytest.raises(ResourceAlreadyExists):
        w.workspace.mkdirs("/Shared/mintaka/run.py/sub")
    with pytest.raises(InvalidParameterValue, match="start with"):
        w.workspace.mkdirs("Shared/relative")
    with pytest.raises(NotFound):
        w.workspace.export("/Shared/missing.py", format=ExportFormat.AUTO)
    with pytest.raises(BadRequest, match="not empty"):
        w.workspace.delete("/Shared/mintaka")
    w.workspace.delete("/Shared/mintaka", recursive=True)
    with pytest.raises(NotFound):
        w.workspace.get_status("/Shared/mintaka/run.py")


# Faults


def test_throttling_is_retried_without_real_waiting(
    fake: FakeDatabricks, w: WorkspaceClient, databricks_clock: NoWaitClock
) -> None:
    fake.faults = FaultSchedule(retry_after_seconds=3).script(
        Fault.THROTTLED, Fault.UNAVAILABLE, path="/unity-catalog/models$"
    )
    started = time.monotonic()
    uc_model(w)
    assert time.monotonic() - started < 0.5
    statuses = [r.status for r in fake.calls("POST", "/unity-catalog/models")]
    assert statuses == [429, 503, 200]
    assert len(databricks_clock.sleeps) == 2
    assert all(3 <= s < 4 for s in databricks_clock.sleeps)  # Retry-After plus jitter


def test_a_plain_500_is_not_retried(fake: FakeDatabricks, w: WorkspaceClient) -> None:
    fake.faults.script(Fault.INTERNAL, method="POST")
    with pytest.raises(InternalError):
        uc_model(w)
    assert [r.status for r in fake.calls("POST", "/unity-catalog/models")] == [500]
    assert fake.state.uc.models == {}


def test_a_lost_response_runs_the_operation_and_the_retry_sees_it(
    fake: FakeDatabricks, w: WorkspaceClient
) -> None:
    fake.faults.script(Fault.LOST, method="POST", path="/unity-catalog/models$")
    with pytest.raises(ResourceAlreadyExists):  # the first attempt did create the model
        uc_model(w)
    assert list(fake.state.uc.models) == [MODEL]
    assert [r.status for r in fake.calls("POST", "/unity-catalog/models")] == [None, 409]


def test_an_idempotency_token_makes_a_lost_run_now_safe(
    fake: FakeDatabricks, w: WorkspaceClient
) -> None:
    job_id = pipeline_job(w)
    fake.faults.script(Fault.LOST, path="/jobs/run-now")
    first = w.jobs.run_now(job_id, idempotency_token="mintaka-step-1").response.run_id
    assert len(fake.state.jobs.runs) == 1
    fake.faults.script(Fault.LOST, path="/jobs/run-now")
    w.jobs.run_now(job_id)  # no token: the retry starts a second run
    assert len(fake.state.jobs.runs) == 3
    again = w.jobs.run_now(job_id, idempotency_token="mintaka-step-1").response.run_id
    assert again == first


def test_a_reset_connection_performs_nothing_and_is_retried(
    fake: FakeDatabricks, w: WorkspaceClient
) -> None:
    fake.faults.script(Fault.RESET, path="/unity-catalog/models$")
    uc_model(w)
    assert [r.status for r in fake.calls("POST", "/unity-catalog/models")] == [None, 200]


def test_random_faults_are_seeded_and_retried(databricks_environment: Path) -> None:
    def run() -> list[tuple[str, str]]:
        schedule = FaultSchedule(seed=5, rate=0.4, kinds=("429", "503"))
        with FakeDatabricks(faults=schedule) as fake:
            client = workspace_client(fake, retry_timeout_seconds=600)
            for index in range(15):
                uc_model(client, f"m{index}")
            assert len(fake.state.uc.models) == 15
            return [(f.path, f.fault.value) for f in schedule.injected]

    first = run()
    assert first
    assert run() == first


def test_a_retry_storm_ends_at_the_retry_timeout_without_real_waiting(
    fake: FakeDatabricks, w: WorkspaceClient
) -> None:
    fake.faults = FaultSchedule(rate=1.0, kinds=[Fault.THROTTLED])
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        uc_model(w)
    assert time.monotonic() - started < 1.0
    assert fake.errors == []


# Inference tables read through the SQL Statement Execution API


def test_an_inference_table_reads_back_through_a_sql_statement(
    fake: FakeDatabricks, w: WorkspaceClient
) -> None:
    from databricks.sdk.service import sql

    uc_model(w)
    create_uc_version(w)
    w.serving_endpoints.create_and_wait(
        name="ep",
        config=serving.EndpointCoreConfigInput(
            name="ep",
            served_entities=[served(MODEL, 1)],
            auto_capture_config=serving.AutoCaptureConfigInput(
                catalog_name="main", schema_name="monitoring", table_name_prefix="churn"
            ),
        ),
    )
    for request in ("req-1", "req-2", "req-3"):
        w.serving_endpoints.query("ep", inputs=[1], client_request_id=request)
    since = fake.state.serving.endpoint("ep").captured[1]["timestamp_ms"]
    result = w.statement_execution.execute_statement(
        statement="SELECT client_request_id, status_code, request_metadata "
        "FROM main.monitoring.churn_payload WHERE timestamp_ms >= :since "
        "ORDER BY timestamp_ms LIMIT 5",
        warehouse_id="fake-warehouse",
        parameters=[sql.StatementParameterListItem(name="since", value=str(since), type="BIGINT")],
    )
    assert result.status is not None
    assert result.status.state is sql.StatementState.SUCCEEDED
    assert result.manifest is not None
    assert result.manifest.schema is not None
    assert [c.name for c in result.manifest.schema.columns or []] == [
        "client_request_id",
        "status_code",
        "request_metadata",
    ]
    assert result.result is not None
    rows = result.result.data_array or []
    assert [row[:2] for row in rows][-1] == ["req-3", "200"]
    assert {row[0] for row in rows} <= {"req-1", "req-2", "req-3"}
    assert "req-2" in {row[0] for row in rows}
    assert '"served_entity_name"' in rows[0][2]


def test_sql_statements_fail_as_the_service_does(w: WorkspaceClient) -> None:
    from databricks.sdk.service import sql

    unknown = w.statement_execution.execute_statement(
        statement="SELECT * FROM main.monitoring.nothing_payload", warehouse_id="fake-warehouse"
    )
    assert unknown.status is not None
    assert unknown.status.state is sql.StatementState.FAILED
    assert unknown.status.error is not None
    assert "TABLE_OR_VIEW_NOT_FOUND" in str(unknown.status.error.message)
    with pytest.raises(NotFound):
        w.statement_execution.execute_statement(statement="SELECT 1", warehouse_id="nope")


# External metadata and external lineage


def external(name: str) -> catalog.ExternalLineageObject:
    return catalog.ExternalLineageObject(
        external_metadata=catalog.ExternalLineageExternalMetadata(name=name)
    )


def test_external_lineage_connects_external_metadata_objects(w: WorkspaceClient) -> None:
    for name in ("raw_data", "training_run"):
        w.external_metadata.create_external_metadata(
            catalog.ExternalMetadata(
                name=name, system_type=catalog.SystemType.OTHER, entity_type="mintaka.run"
            )
        )
    with pytest.raises(ResourceConflict):
        w.external_metadata.create_external_metadata(
            catalog.ExternalMetadata(
                name="raw_data", system_type=catalog.SystemType.OTHER, entity_type="x"
            )
        )
    created = w.external_lineage.create_external_lineage_relationship(
        catalog.CreateRequestExternalLineage(
            source=external("raw_data"), target=external("training_run"), properties={"k": "v"}
        )
    )
    assert created.id
    with pytest.raises(ResourceConflict):
        w.external_lineage.create_external_lineage_relationship(
            catalog.CreateRequestExternalLineage(
                source=external("raw_data"), target=external("training_run")
            )
        )
    with pytest.raises(NotFound):
        w.external_lineage.create_external_lineage_relationship(
            catalog.CreateRequestExternalLineage(
                source=external("raw_data"), target=external("missing")
            )
        )
    up = list(
        w.external_lineage.list_external_lineage_relationships(
            external("training_run"), catalog.LineageDirection.UPSTREAM
        )
    )
    assert len(up) == 1
    assert up[0].external_lineage_info is not None
    assert up[0].external_lineage_info.properties == {"k": "v"}
    assert up[0].external_metadata_info is not None
    assert up[0].external_metadata_info.name == "raw_data"
    assert not list(
        w.external_lineage.list_external_lineage_relationships(
            external("training_run"), catalog.LineageDirection.DOWNSTREAM
        )
    )
    w.external_metadata.delete_external_metadata("raw_data")
    assert not list(
        w.external_lineage.list_external_lineage_relationships(
            external("training_run"), catalog.LineageDirection.UPSTREAM
        )
    )
