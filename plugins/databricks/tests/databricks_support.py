"""Shared by the Databricks backend's tests: the fake workspace wired to the backend's settings,
a backend on it, version requests, a guard against real sleeps, another user's SDK client on each
model registry, and the conformance suite's fixtures."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import pytest
from mintaka_conformance import (
    AbstractBackendFixtures,
    BackendUnderTest,
    OutOfBand,
    SendTraffic,
    Traffic,
)
from mintaka_conformance.fakes.databricks import FakeDatabricks, workspace_client
from mintaka_databricks.backend import DatabricksBackend, DatabricksWorkspaceBackend

from mintaka import IdFactory, ManualClock, MintakaError
from mintaka.domain.registry import VersionRequest
from mintaka.interfaces import Backend, BackendContext

CATALOG = "main"
SCHEMA = "mintaka"
WAREHOUSE = "fake-warehouse"


def settings_for(fake: FakeDatabricks, **overrides: Any) -> dict[str, Any]:
    """Backend settings pointing at ``fake``; polls are instant on the simulated clock."""
    return {
        "host": fake.host,
        "token": fake.token,
        "catalog": CATALOG,
        "schema": SCHEMA,
        "retry_timeout_seconds": 60,
        "http_timeout_seconds": 5,
        "poll_seconds": 1,
        "warehouse_id": WAREHOUSE,
        **overrides,
    }


def full_name(model: str) -> str:
    return f"{CATALOG}.{SCHEMA}.{model.replace('-', '_')}"


AnyDatabricksBackend = TypeVar(
    "AnyDatabricksBackend", DatabricksBackend, DatabricksWorkspaceBackend
)


def databricks_backend(
    backend_class: type[AnyDatabricksBackend],
    fake: FakeDatabricks,
    home: Path,
    *,
    seed: int,
    clock: ManualClock | None = None,
    **overrides: Any,
) -> AnyDatabricksBackend:
    """A backend of ``backend_class`` on ``fake``, its ids seeded, on a simulated clock."""
    return backend_class(
        backend_class.settings_model(**settings_for(fake, **overrides)),
        BackendContext(
            home=home,
            clock=ManualClock() if clock is None else clock,
            ids=IdFactory(seed=seed),
        ),
    )


def version_request(
    directory: Path, model: str, key: str, digest: str, **fields: Any
) -> VersionRequest:
    """A version of ``model`` whose Mintaka id and idempotency key are ``key``, from an artifact
    file of its own in ``directory``."""
    artifact = directory / f"{key}.bin"
    artifact.write_bytes(key.encode())
    return VersionRequest(
        name=model,
        artifact_path=str(artifact),
        artifact_digest=digest,
        mintaka_id=key,
        idempotency_key=key,
        **fields,
    )


@pytest.fixture(autouse=True)
def no_real_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fails a test that sleeps for real: the SDK's retries and the backend's polls wait on the
    simulated clock. A test module turns it on by importing it."""
    real_sleep = time.sleep

    def sleep(seconds: float) -> None:
        assert seconds <= 0.1, f"a real sleep of {seconds:.2f}s"
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", sleep)


class SdkOutOfBand:
    """Changes made by another user through the real SDK, behind Mintaka's back."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def move_alias(self, name: str, alias: str, version: int) -> None:
        self.client.registered_models.set_alias(full_name(name), alias, version)

    def delete_version(self, name: str, version: int) -> None:
        self.client.model_versions.delete(full_name(name), version)

    def set_tags(self, name: str, version: int, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            self.client.api_client.do(
                "POST",
                "/api/2.0/mlflow/unity-catalog/model-versions/tags",
                body={"name": full_name(name), "version": str(version), "key": key, "value": value},
            )


class WorkspaceRegistryOutOfBand:
    """Another user's changes to the workspace model registry, through the real SDK's client.

    Aliases are the backend's ``mintaka.alias.<alias>`` model tags, so moving one is a tag edit.
    """

    def __init__(self, client: Any) -> None:
        self.client = client

    def _do(self, method: str, path: str, **body: Any) -> None:
        if method == "DELETE":
            self.client.api_client.do(method, f"/api/2.0/mlflow/{path}", query=body)
        else:
            self.client.api_client.do(method, f"/api/2.0/mlflow/{path}", body=body)

    def move_alias(self, name: str, alias: str, version: int) -> None:
        leaf = name.replace("-", "_")
        self._do(
            "POST",
            "registered-models/set-tag",
            name=leaf,
            key=f"mintaka.alias.{alias}",
            value=str(version),
        )

    def delete_version(self, name: str, version: int) -> None:
        self._do(
            "DELETE", "model-versions/delete", name=name.replace("-", "_"), version=str(version)
        )

    def set_tags(self, name: str, version: int, tags: Mapping[str, str]) -> None:
        for key, value in tags.items():
            self._do(
                "POST",
                "model-versions/set-tag",
                name=name.replace("-", "_"),
                version=str(version),
                key=key,
                value=value,
            )


class DatabricksConformanceFixtures(AbstractBackendFixtures):
    """The conformance suite's backend over the fake workspace, and another user's SDK client on it.

    A subclass names the backend class and the out-of-band client for its model registry; its
    module loads the fake's fixtures (``mintaka_conformance.fakes.databricks_fixtures``).
    """

    backend_class: ClassVar[type[Backend]]
    out_of_band_class: ClassVar[type[SdkOutOfBand | WorkspaceRegistryOutOfBand]]

    @pytest.fixture
    def backend(
        self, databricks_fake: FakeDatabricks, databricks_environment: Path
    ) -> BackendUnderTest:
        return BackendUnderTest(self.backend_class, settings_for(databricks_fake))

    @pytest.fixture
    def out_of_band(
        self, databricks_fake: FakeDatabricks, databricks_environment: Path, platform: Any
    ) -> OutOfBand:
        return self.out_of_band_class(workspace_client(databricks_fake))

    @pytest.fixture
    def send_traffic(self, databricks_fake: FakeDatabricks, platform: Any) -> SendTraffic:
        """Real invocations of the route's served entity, which the fake answers 200, 500 or
        400 as each request asks, counting them in its metrics export as the service does."""
        from mintaka_conformance.fakes.databricks.routing import ApiError

        def answer(payload: dict[str, Any], served: Any) -> Any:
            wanted = payload["dataframe_records"][0]["traffic"]
            if wanted == "failed":
                raise ApiError(500, "INTERNAL_ERROR", "The model raised an exception.")
            if wanted == "refused":
                raise ApiError(400, "BAD_REQUEST", "Model is missing inputs ['f0'].")
            return [0]

        def send(endpoint: str, route: str, traffic: Traffic) -> None:
            found = platform.serving.get_endpoint(endpoint)
            served = found.extra.get("served_names", {}).get(route, route)
            serving = databricks_fake.state.serving
            serving.set_predictor(served, answer)
            try:
                for wanted, count in (
                    ("answered", traffic.answered),
                    ("failed", traffic.failed),
                    ("refused", traffic.refused),
                ):
                    for _ in range(count):
                        with contextlib.suppress(MintakaError):
                            platform.backend.invoke(
                                endpoint, {"inputs": {"traffic": wanted}}, route=route
                            )
            finally:
                with databricks_fake.state.lock:
                    serving.predictors.pop(served, None)

        return send

    @pytest.fixture
    def hold_pipeline_run(self, databricks_fake: FakeDatabricks) -> Callable[[str], None]:
        """The fake's job runs move one lifecycle state per read: pending, running, then done."""

        def hold(_pipeline: str) -> None:
            databricks_fake.state.jobs.run_states = ("PENDING", "RUNNING", "RUNNING", "TERMINATED")

        return hold
