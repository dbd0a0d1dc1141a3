"""The Databricks backend runs the conformance suite against the fake workspace, through the real
databricks-sdk; out-of-band changes are made by a second SDK client."""

from __future__ import annotations

from databricks_support import DatabricksConformanceFixtures, SdkOutOfBand
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
from mintaka_databricks.backend import DatabricksBackend

pytest_plugins = ["mintaka_conformance.fakes.databricks_fixtures"]


class DatabricksFixtures(DatabricksConformanceFixtures):
    backend_class = DatabricksBackend
    out_of_band_class = SdkOutOfBand


class TestDatabricksRegistry(DatabricksFixtures, AbstractRegistryTests): ...


class TestDatabricksRuns(DatabricksFixtures, AbstractRunTests): ...


class TestDatabricksLineage(DatabricksFixtures, AbstractLineageTests): ...


class TestDatabricksServing(DatabricksFixtures, AbstractServingTests): ...


class TestDatabricksPipelines(DatabricksFixtures, AbstractPipelineTests): ...


class TestDatabricksMonitoring(DatabricksFixtures, AbstractMonitoringTests): ...


class TestDatabricksSync(DatabricksFixtures, AbstractSyncTests): ...


class TestDatabricksErrors(DatabricksFixtures, AbstractErrorContractTests): ...
