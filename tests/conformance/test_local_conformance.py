"""The local reference backend opts into the whole conformance suite."""

from __future__ import annotations

import pytest
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
)

from mintaka.local.backend import LocalBackend


class LocalFixtures(AbstractBackendFixtures):
    @pytest.fixture
    def backend(self) -> BackendUnderTest:
        return BackendUnderTest(LocalBackend)


class TestLocalRegistry(LocalFixtures, AbstractRegistryTests): ...


class TestLocalRuns(LocalFixtures, AbstractRunTests): ...


class TestLocalLineage(LocalFixtures, AbstractLineageTests): ...


class TestLocalServing(LocalFixtures, AbstractServingTests): ...


class TestLocalPipelines(LocalFixtures, AbstractPipelineTests): ...


class TestLocalMonitoring(LocalFixtures, AbstractMonitoringTests): ...


class TestLocalSync(LocalFixtures, AbstractSyncTests): ...


class TestLocalErrors(LocalFixtures, AbstractErrorContractTests): ...
