"""A Unity Catalog version holds its model's files: uploaded before the version is finalized,
read back for adoption (``registry.fetch``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from databricks_support import (
    CATALOG,
    SCHEMA,
    databricks_backend,
    no_real_sleep,  # noqa: F401  (an autouse fixture)
    settings_for,
)
from mintaka_conformance.fakes.databricks import FakeDatabricks, Fault, FaultSchedule
from mintaka_databricks.backend import DatabricksBackend

from mintaka import BackendError, IdFactory, ManualClock, NotFound, Platform
from mintaka.artifacts import manifest_of
from mintaka.domain.registry import VersionRequest

pytest_plugins = ["mintaka_conformance.fakes.databricks_fixtures"]

FULL = f"{CATALOG}.{SCHEMA}.churn"
ROOT = f"/Models/{CATALOG}/{SCHEMA}/churn"


@pytest.fixture
def cloud(
    databricks_fake: FakeDatabricks, databricks_environment: Path, tmp_path: Path
) -> Iterator[DatabricksBackend]:
    backend = databricks_backend(DatabricksBackend, databricks_fake, tmp_path, seed=5)
    backend.ensure_model("churn")
    yield backend
    backend.close()


def model_dir(tmp_path: Path) -> Path:
    root = tmp_path / "model"
    (root / "data").mkdir(parents=True)
    (root / "MLmodel").write_text("flavors: {python_function: {}}\n")
    (root / "data" / "model.pkl").write_bytes(bytes(range(256)) * 9)
    return root


def fetch(cloud: DatabricksBackend, tmp_path: Path) -> Path:
    """churn:1's files read back into ``tmp_path / "fetched"``."""
    into = tmp_path / "fetched"
    into.mkdir()
    return cloud.fetch_artifact("churn", 1, into)


def request(artifact: Path, key: str = "mv-1") -> VersionRequest:
    return VersionRequest(
        name="churn",
        artifact_path=str(artifact),
        artifact_digest=manifest_of(artifact).digest,
        mintaka_id=key,
        idempotency_key=key,
    )


def test_a_registered_directory_is_uploaded_into_the_version_and_fetched_back(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend, tmp_path: Path
) -> None:
    artifact = model_dir(tmp_path)
    made = cloud.create_version(request(artifact))
    assert made.extra["status"] == "READY"
    assert databricks_fake.state.files.under(f"{ROOT}/1") == {
        "MLmodel": (artifact / "MLmodel").read_bytes(),
        "data/model.pkl": (artifact / "data" / "model.pkl").read_bytes(),
    }
    fetched = fetch(cloud, tmp_path)
    assert fetched == tmp_path / "fetched" / "model"
    assert manifest_of(fetched).digest == made.artifact_digest


def test_a_registered_file_comes_back_as_that_file(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend, tmp_path: Path
) -> None:
    artifact = tmp_path / "churn.skops"
    artifact.write_bytes(b"weights")
    made = cloud.create_version(request(artifact))
    assert databricks_fake.state.files.under(f"{ROOT}/1") == {"churn.skops": b"weights"}
    fetched = fetch(cloud, tmp_path)
    assert fetched.is_file()
    assert manifest_of(fetched).digest == made.artifact_digest


def test_a_registration_interrupted_before_finalize_uploads_again_and_finalizes(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend, tmp_path: Path
) -> None:
    artifact = model_dir(tmp_path)
    databricks_fake.faults = FaultSchedule(seed=0)
    databricks_fake.faults.script(Fault.INTERNAL, method="POST", path="/model-versions/finalize$")
    with pytest.raises(BackendError):
        cloud.create_version(request(artifact))
    assert databricks_fake.state.uc.model(FULL).versions[1].status == "PENDING_REGISTRATION"

    made = cloud.create_version(request(artifact))  # the same registration, run again
    assert (made.version, made.extra["status"]) == (1, "READY")
    assert sorted(databricks_fake.state.files.under(f"{ROOT}/1")) == ["MLmodel", "data/model.pkl"]
    assert len(databricks_fake.state.uc.model(FULL).versions) == 1


def test_a_refused_upload_names_the_setting_and_leaves_the_version_pending(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend, tmp_path: Path
) -> None:
    databricks_fake.faults = FaultSchedule(seed=0)
    databricks_fake.faults.script(Fault.INTERNAL, method="PUT", path="/fs/files/")
    with pytest.raises(BackendError, match="upload_artifacts = false"):
        cloud.create_version(request(model_dir(tmp_path)))
    assert databricks_fake.state.uc.model(FULL).versions[1].status == "PENDING_REGISTRATION"


def test_a_single_nested_file_comes_back_inside_its_directory(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend, tmp_path: Path
) -> None:
    root = tmp_path / "nested"
    (root / "data").mkdir(parents=True)
    (root / "data" / "model.pkl").write_bytes(b"weights")
    made = cloud.create_version(request(root))
    fetched = fetch(cloud, tmp_path)
    assert fetched == tmp_path / "fetched" / "model"
    assert manifest_of(fetched).digest == made.artifact_digest


def test_without_uploads_a_version_holds_no_files_and_fetching_it_is_not_found(
    databricks_fake: FakeDatabricks, databricks_environment: Path, tmp_path: Path
) -> None:
    backend = databricks_backend(
        DatabricksBackend, databricks_fake, tmp_path, seed=5, upload_artifacts=False
    )
    backend.ensure_model("churn")
    backend.create_version(request(model_dir(tmp_path)))
    assert databricks_fake.state.files.under(f"{ROOT}/1") == {}
    with pytest.raises(NotFound, match="holds no model files"):
        fetch(backend, tmp_path)
    backend.close()


def test_a_version_logged_before_mintaka_is_adopted_from_its_own_files(
    databricks_fake: FakeDatabricks, databricks_environment: Path, tmp_path: Path
) -> None:
    databricks_fake.state.uc.create_model(FULL)
    legacy = databricks_fake.state.uc.add_version(FULL, "dbfs:/databricks/mlflow-tracking/1/m")
    files = {"MLmodel": b"flavors: {}\n", "model.pkl": b"legacy weights"}
    for relative, data in files.items():
        databricks_fake.state.files.put(f"{ROOT}/{legacy.version}/{relative}", data)
    with Platform(
        tmp_path / "home",
        backend="databricks",
        backend_settings=settings_for(databricks_fake),
        clock=ManualClock(),
        ids=IdFactory(seed=3),
    ) as platform:
        adoption = platform.migration.adopt_model("churn", reason="served before Mintaka")
        [adopted] = adoption.adopted
        expected = tmp_path / "expected"
        expected.mkdir()
        for relative, data in files.items():
            (expected / relative).write_bytes(data)
        assert adopted.artifact_digest == manifest_of(expected).digest
        assert platform.artifacts.exists(adopted.artifact_digest)
