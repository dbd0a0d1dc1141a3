"""The workspace-registry Databricks backend (``databricks_workspace``) runs the whole conformance
suite against the fake workspace through the real databricks-sdk; out-of-band changes are made by
a second SDK client on the workspace registry's REST paths."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from databricks_support import WorkspaceRegistryOutOfBand, settings_for
from mintaka_conformance import (
    AbstractBackendFixtures,
    AbstractErrorContractTests,
    AbstractLineageTests,
    AbstractMonitoringTests,
    AbstractPipelineTests,
    AbstractRegistryTests,
    AbstractRunTests,
    AbstractServingTests,
    AbstractSyncTests,
    BackendUnderTest,
    OutOfBand,
)
from mintaka_conformance.fakes.databricks import FakeDatabricks, workspace_client
from mintaka_databricks.backend import DatabricksWorkspaceBackend

pytest_plugins = ["mintaka_conformance.fakes.databricks_fixtures"]


class WorkspaceRegistryFixtures(AbstractBackendFixtures):
    @pytest.fixture
    def backend(
        self, databricks_fake: FakeDatabricks, databricks_environment: Path
    ) -> BackendUnderTest:
        return BackendUnderTest(DatabricksWorkspaceBackend, settings_for(databricks_fake))

    @pytest.fixture
    def out_of_band(
        self, databricks_fake: FakeDatabricks, databricks_environment: Path, platform: Any
    ) -> OutOfBand:
        return WorkspaceRegistryOutOfBand(workspace_client(databricks_fake))


class TestWorkspaceRegistry(WorkspaceRegistryFixtures, AbstractRegistryTests): ...


class TestWorkspaceRegistryRuns(WorkspaceRegistryFixtures, AbstractRunTests): ...


class TestWorkspaceRegistryLineage(WorkspaceRegistryFixtures, AbstractLineageTests): ...


class TestWorkspaceRegistryServing(WorkspaceRegistryFixtures, AbstractServingTests): ...


class TestWorkspaceRegistryPipelines(WorkspaceRegistryFixtures, AbstractPipelineTests): ...


class TestWorkspaceRegistryMonitoring(WorkspaceRegistryFixtures, AbstractMonitoringTests): ...


class TestWorkspaceRegistrySync(WorkspaceRegistryFixtures, AbstractSyncTests): ...


class TestWorkspaceRegistryErrors(WorkspaceRegistryFixtures, AbstractErrorContractTests): ...
