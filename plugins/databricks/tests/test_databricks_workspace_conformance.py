"""The workspace-registry Databricks backend (``databricks_workspace``) runs the whole conformance
suite against the fake workspace through the real databricks-sdk; out-of-band changes are made by
a second SDK client on the workspace registry's REST paths."""

from __future__ import annotations

from databricks_support import DatabricksConformanceFixtures, WorkspaceRegistryOutOfBand
from mintaka_conformance import (
    AbstractErrorContractTests,
    AbstractLineageTests,
    AbstractMonitoringTests,
    AbstractPipelineTests,
    AbstractRegistryTests,
    AbstractRunTests,
    AbstractServingTests,
    AbstractSyncTests,
)
from mintaka_databricks.backend import DatabricksWorkspaceBackend

pytest_plugins = ["mintaka_conformance.fakes.databricks_fixtures"]


class WorkspaceRegistryFixtures(DatabricksConformanceFixtures):
    backend_class = DatabricksWorkspaceBackend
    out_of_band_class = WorkspaceRegistryOutOfBand


class TestWorkspaceRegistry(WorkspaceRegistryFixtures, AbstractRegistryTests): ...


class TestWorkspaceRegistryRuns(WorkspaceRegistryFixtures, AbstractRunTests): ...


class TestWorkspaceRegistryLineage(WorkspaceRegistryFixtures, AbstractLineageTests): ...


class TestWorkspaceRegistryServing(WorkspaceRegistryFixtures, AbstractServingTests): ...


class TestWorkspaceRegistryPipelines(WorkspaceRegistryFixtures, AbstractPipelineTests): ...


class TestWorkspaceRegistryMonitoring(WorkspaceRegistryFixtures, AbstractMonitoringTests): ...


class TestWorkspaceRegistrySync(WorkspaceRegistryFixtures, AbstractSyncTests): ...


class TestWorkspaceRegistryErrors(WorkspaceRegistryFixtures, AbstractErrorContractTests): ...
