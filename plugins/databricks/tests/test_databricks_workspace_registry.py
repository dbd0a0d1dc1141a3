"""The workspace-registry backend beyond the conformance suite: names without catalog or schema,
native stages, aliases as model tags, versions that settle before they are returned, discovery,
and a lost answer to a version create."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from databricks_support import (
    databricks_backend,
    no_real_sleep,  # noqa: F401  (an autouse fixture)
    settings_for,
    version_request,
)
from mintaka_conformance.fakes.databricks import FakeDatabricks, Fault
from mintaka_databricks.backend import DatabricksWorkspaceBackend
from mintaka_databricks.settings import DatabricksSettings, DatabricksWorkspaceSettings
from pydantic import ValidationError as SettingsError

from mintaka import ConfigurationError, IdFactory, ManualClock, NotFound, Platform
from mintaka.domain.discovery import ResourceKind
from mintaka.domain.registry import Stage, VersionRequest
from mintaka.domain.serving import Route, TrafficMap

pytest_plugins = ["mintaka_conformance.fakes.databricks_fixtures"]

CREATE_VERSION = r"^/api/2\.0/mlflow/model-versions/create$"


def make_backend(
    fake: FakeDatabricks, home: Path, **overrides: object
) -> DatabricksWorkspaceBackend:
    return databricks_backend(DatabricksWorkspaceBackend, fake, home, seed=5, **overrides)


@pytest.fixture
def cloud(
    databricks_fake: FakeDatabricks, databricks_environment: Path, tmp_path: Path
) -> Iterator[DatabricksWorkspaceBackend]:
    backend = make_backend(databricks_fake, tmp_path, retry_timeout_seconds=30)
    yield backend
    backend.close()


def request(tmp_path: Path, model: str, key: str) -> VersionRequest:
    return version_request(tmp_path, model, key, "sha256:" + "cd" * 32, tags={"team": "risk"})


def test_models_are_workspace_models_named_without_catalog_or_schema(
    databricks_fake: FakeDatabricks, cloud: DatabricksWorkspaceBackend, tmp_path: Path
) -> None:
    assert cloud.ensure_model("credit-risk") == {"name": "credit_risk"}
    created = cloud.create_version(request(tmp_path, "credit-risk", "mv-1"))
    model = databricks_fake.state.registry.model("credit_risk")
    tags = model.versions[1].tags
    assert (tags["mintaka.id"], tags["mintaka.idempotency_key"]) == ("mv-1", "mv-1")
    assert tags["mintaka.digest"] == "sha256:" + "cd" * 32
    assert model.versions[1].source == created.artifact_uri
    assert created.artifact_uri.startswith("file://")
    assert created.extra["status"] == "READY"  # polled out of PENDING_REGISTRATION
    assert created.tags == {"team": "risk"}
    assert cloud.list_models() == ["credit-risk"]
    assert (
        databricks_fake.state.uc.models == {}
        if hasattr(databricks_fake.state.uc, "models")
        else True
    )


def test_stages_are_the_registrys_own(
    databricks_fake: FakeDatabricks, cloud: DatabricksWorkspaceBackend, tmp_path: Path
) -> None:
    cloud.ensure_model("churn")
    for key in ("mv-1", "mv-2"):
        cloud.create_version(request(tmp_path, "churn", key))
    cloud.set_stage("churn", 1, Stage.PRODUCTION)
    cloud.set_stage("churn", 2, Stage.PRODUCTION)  # core decides; nothing else is archived
    model = databricks_fake.state.registry.model("churn")
    assert [model.versions[n].current_stage for n in (1, 2)] == ["Production", "Production"]
    assert "mintaka.stage" not in model.versions[1].tags
    databricks_fake.state.registry.set_stage("churn", 1, "Archived")  # behind Mintaka's back
    assert cloud.get_version("churn", 1).stage is Stage.ARCHIVED


def test_aliases_are_model_tags_and_die_with_their_version(
    databricks_fake: FakeDatabricks, cloud: DatabricksWorkspaceBackend, tmp_path: Path
) -> None:
    cloud.ensure_model("churn")
    for key in ("mv-1", "mv-2"):
        cloud.create_version(request(tmp_path, "churn", key))
    cloud.set_alias("churn", "champion", 2)
    assert databricks_fake.state.registry.model("churn").tags == {"mintaka.alias.champion": "2"}
    with pytest.raises(NotFound):
        cloud.set_alias("churn", "ghost", 9)
    cloud.delete_alias("churn", "ghost")  # deleting an alias that is not there is a no-op
    cloud.delete_version("churn", 2)
    assert cloud.get_aliases("churn") == {}
    assert databricks_fake.state.registry.model("churn").tags == {}


def test_discovery_reports_workspace_models_mintaka_did_not_make(
    databricks_fake: FakeDatabricks, cloud: DatabricksWorkspaceBackend, tmp_path: Path
) -> None:
    cloud.ensure_model("churn")
    cloud.create_version(request(tmp_path, "churn", "mv-1"))
    other = make_backend(databricks_fake, tmp_path)
    other._rest("POST", "/api/2.0/mlflow/registered-models/create", "", body={"name": "Legacy X"})
    found = {(r.kind, r.name): r for r in cloud.discover()}
    assert found[(ResourceKind.MODEL, "churn")].managed
    assert found[(ResourceKind.MODEL_VERSION, "churn:1")].extra == {"mintaka_id": "mv-1"}
    assert not found[(ResourceKind.MODEL, "Legacy X")].managed


def test_a_workspace_model_with_a_quote_in_its_name_is_discovered_with_its_versions(
    databricks_fake: FakeDatabricks, cloud: DatabricksWorkspaceBackend, tmp_path: Path
) -> None:
    """MLflow's filter parser strips a value's quotes and unescapes nothing, so a name holding a
    single quote is searched in double quotes; one holding both kinds cannot be searched, and its
    model is listed without versions rather than failing discovery of the whole workspace."""
    cloud.ensure_model("churn")
    cloud.create_version(request(tmp_path, "churn", "mv-1"))
    for name in ("Bob's model", 'Ann\'s "best" model'):
        cloud._rest("POST", "/api/2.0/mlflow/registered-models/create", "", body={"name": name})
        body = {"name": name, "source": "dbfs:/x"}
        cloud._rest("POST", "/api/2.0/mlflow/model-versions/create", "", body=body)
        cloud._raw_version(name, 1)  # read until registered
    found = {(r.kind, r.name): r for r in cloud.discover()}
    assert found[(ResourceKind.MODEL_VERSION, "churn:1")].managed
    assert not found[(ResourceKind.MODEL, "Bob's model")].managed
    assert found[(ResourceKind.MODEL_VERSION, "Bob's model:1")].backend_id == "Bob's model/1"
    unread = found[(ResourceKind.MODEL, 'Ann\'s "best" model')]
    assert "both a single and a double quote" in unread.extra["versions_unread"]
    assert (ResourceKind.MODEL_VERSION, 'Ann\'s "best" model:1') not in found


@pytest.mark.parametrize(
    "setting",
    [{"model_names": {"churn": 'Ann\'s "best" model'}}, {"experiment_root": "/Shared/a'\"b"}],
)
def test_a_name_no_search_filter_can_hold_is_refused_in_the_settings(
    setting: dict[str, object],
) -> None:
    with pytest.raises(SettingsError, match="both a single and a double quote"):
        DatabricksWorkspaceSettings(host="https://example.invalid", **setting)  # type: ignore[arg-type]


def test_an_endpoint_serves_the_workspace_model(
    databricks_fake: FakeDatabricks, cloud: DatabricksWorkspaceBackend, tmp_path: Path
) -> None:
    cloud.ensure_model("churn")
    cloud.create_version(request(tmp_path, "churn", "mv-1"))
    created = cloud.create_endpoint(
        "churn-ep",
        [Route(name="blue", model="churn", version=1)],
        TrafficMap(weights={"blue": 100}),
    )
    assert created.routes == (Route(name="blue", model="churn", version=1),)
    details = cloud._details("churn-ep")
    entity = (details.get("config") or details["pending_config"])["served_entities"][0]
    assert (entity["entity_name"], entity["entity_version"]) == ("churn", "1")


def test_a_lost_version_create_leaves_one_version(
    databricks_fake: FakeDatabricks, cloud: DatabricksWorkspaceBackend, tmp_path: Path
) -> None:
    cloud.ensure_model("churn")
    databricks_fake.faults.script(Fault.LOST, method="POST", path=CREATE_VERSION)
    created = cloud.create_version(request(tmp_path, "churn", "mv-1"))
    assert len(databricks_fake.calls("POST", "/mlflow/model-versions/create")) == 2  # retried
    assert created.version == 1
    assert [v.version for v in cloud.list_versions("churn")] == [1]
    assert cloud.create_version(request(tmp_path, "churn", "mv-1")).version == 1
    second = cloud.create_version(request(tmp_path, "churn", "mv-2"))
    assert [v.mintaka_id for v in cloud.list_versions("churn")] == ["mv-1", "mv-2"]
    assert second.version == 3  # the deleted duplicate's number is not reused


def test_a_lost_model_create_is_not_a_conflict(
    databricks_fake: FakeDatabricks, cloud: DatabricksWorkspaceBackend
) -> None:
    databricks_fake.faults.script(
        Fault.LOST, method="POST", path=r"/mlflow/registered-models/create$"
    )
    assert cloud.ensure_model("churn") == {"name": "churn"}
    assert cloud.list_models() == ["churn"]


def test_unity_catalog_settings_are_refused(
    databricks_fake: FakeDatabricks, databricks_environment: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigurationError, match="'databricks'"):
        make_backend(databricks_fake, tmp_path, registry="uc")


def test_a_mixed_case_workspace_model_is_reported_under_its_own_name(
    cloud: DatabricksWorkspaceBackend,
) -> None:
    """The workspace registry compares names with case: ``ChurnModel`` is not ``churnmodel``
    there, so it is no Mintaka model, even tagged as one, and keeps a name Mintaka cannot use."""
    cloud._rest("POST", "/api/2.0/mlflow/registered-models/create", "", body={"name": "ChurnModel"})
    tags = [{"key": "mintaka.id", "value": "mv-1"}]
    body = {"name": "ChurnModel", "source": "dbfs:/x", "tags": tags}
    cloud._rest("POST", "/api/2.0/mlflow/model-versions/create", "", body=body)
    cloud._raw_version("ChurnModel", 1)  # read until registered
    found = {(r.kind, r.name): r for r in cloud.discover()}
    assert not found[(ResourceKind.MODEL, "ChurnModel")].managed
    assert not found[(ResourceKind.MODEL_VERSION, "ChurnModel:1")].managed
    assert (ResourceKind.MODEL, "churnmodel") not in found
    assert cloud.list_models() == ["ChurnModel"]
    assert cloud._model_of("ChurnModel") is None
    with pytest.raises(NotFound):
        cloud.observe_model("churnmodel")


def test_a_workspace_model_mapped_by_model_names_is_adopted_under_a_mintaka_name(
    databricks_fake: FakeDatabricks, databricks_environment: Path, tmp_path: Path
) -> None:
    """``model_names`` maps a Mintaka name to a registered model whose name Mintaka cannot use;
    the registered model its Mintaka name would otherwise be is then no Mintaka model."""
    from mintaka.governance.policy import OPEN_POLICY, POLICY_FILE

    names = {"churn": "ChurnModel"}
    cloud = make_backend(databricks_fake, tmp_path, model_names=names)
    cloud._rest("POST", "/api/2.0/mlflow/registered-models/create", "", body={"name": "ChurnModel"})
    body = {"name": "ChurnModel", "source": "dbfs:/x"}
    cloud._rest("POST", "/api/2.0/mlflow/model-versions/create", "", body=body)
    cloud._raw_version("ChurnModel", 1)  # read until registered
    found = {(r.kind, r.name): r.backend_id for r in cloud.discover()}
    assert found[(ResourceKind.MODEL, "churn")] == "ChurnModel"
    assert found[(ResourceKind.MODEL_VERSION, "churn:1")] == "ChurnModel/1"
    assert cloud.list_models() == ["churn"]
    assert (cloud._model_of("ChurnModel"), cloud._model_of("churn")) == ("churn", None)
    assert cloud.ensure_model("churn") == {"name": "ChurnModel"}
    home = tmp_path / "home"
    home.mkdir()
    (home / POLICY_FILE).write_bytes(OPEN_POLICY.read_bytes())
    weights = tmp_path / "model.bin"
    weights.write_bytes(b"weights")
    with Platform(
        home,
        backend="databricks_workspace",
        backend_settings=settings_for(databricks_fake, model_names=names),
        clock=ManualClock(),
        ids=IdFactory(seed=3),
    ) as plat:
        adoption = plat.migration.adopt_model("churn", reason="inherited", artifacts={1: weights})
        assert [(v.name, v.version) for v in adoption.adopted] == [("churn", 1)]
        assert plat.get_model_version("churn", 1).backend_ids["name"] == "ChurnModel"


@pytest.mark.parametrize(
    ("settings", "names", "says"),
    [
        (DatabricksWorkspaceSettings, {"churn": "churn_model"}, "Mintaka's 'churn-model'"),
        (DatabricksWorkspaceSettings, {"churn": "churn"}, "valid Mintaka name already"),
        (DatabricksWorkspaceSettings, {"a": "Churn", "b": "Churn"}, "two Mintaka names"),
        (DatabricksWorkspaceSettings, {"churn": "main.x.Churn"}, "not a valid"),
        (DatabricksSettings, {"churn": "ChurnModel"}, "workspace model registry"),
    ],
)
def test_a_model_name_map_must_be_one_to_one_and_for_the_workspace_registry(
    settings: type[DatabricksSettings], names: dict[str, str], says: str
) -> None:
    with pytest.raises(SettingsError, match=says):
        settings(host="https://example.invalid", model_names=names)


def test_a_lost_version_delete_is_done_and_a_missing_version_still_not_found(
    databricks_fake: FakeDatabricks, cloud: DatabricksWorkspaceBackend, tmp_path: Path
) -> None:
    cloud.ensure_model("churn")
    cloud.create_version(request(tmp_path, "churn", "mv-1"))
    cloud.set_alias("churn", "champion", 1)
    delete = r"^/api/2\.0/mlflow/model-versions/delete"
    databricks_fake.faults.script(Fault.LOST, method="DELETE", path=delete)
    cloud.delete_version("churn", 1)
    assert len(databricks_fake.calls("DELETE", "/model-versions/delete")) == 2  # retried
    assert cloud.list_versions("churn") == []
    assert cloud.get_aliases("churn") == {}
    with pytest.raises(NotFound):
        cloud.delete_version("churn", 1)
