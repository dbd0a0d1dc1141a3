"""The Databricks backend runs the conformance suite against the fake workspace, through the real
databricks-sdk; out-of-band changes are made by a second SDK client."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from databricks_support import SdkOutOfBand, settings_for
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
from mintaka_databricks.backend import DatabricksBackend

pytest_plugins = ["mintaka_conformance.fakes.databricks_fixtures"]


class DatabricksFixtures(AbstractBackendFixtures):
    @pytest.fixture
    def backend(
        self, databricks_fake: FakeDatabricks, databricks_environment: Path
    ) -> BackendUnderTest:
        return BackendUnderTest(DatabricksBackend, settings_for(databricks_fake))

    @pytest.fixture
    def out_of_band(
        self, databricks_fake: FakeDatabricks, databricks_environment: Path, platform: Any
    ) -> OutOfBand:
        return SdkOutOfBand(workspace_client(databricks_fake))


class TestDatabricksRegistry(DatabricksFixtures, AbstractRegistryTests): ...


class TestDatabricksRuns(DatabricksFixtures, AbstractRunTests): ...


class TestDatabricksLineage(DatabricksFixtures, AbstractLineageTests): ...


class TestDatabricksServing(DatabricksFixtures, AbstractServingTests): ...


class TestDatabricksPipelines(DatabricksFixtures, AbstractPipelineTests): ...


class TestDatabricksMonitoring(DatabricksFixtures, AbstractMonitoringTests): ...


class TestDatabricksSync(DatabricksFixtures, AbstractSyncTests): ...


class TestDatabricksErrors(DatabricksFixtures, AbstractErrorContractTests): ...
