"""The local reference backend opts into the whole conformance suite."""

from __future__ import annotations

from collections.abc import Iterator

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

from mintaka import Platform
from mintaka.local.backend import LocalBackend
from mintaka.local.server import InferenceServer


class LocalFixtures(AbstractBackendFixtures):
    @pytest.fixture
    def backend(self) -> BackendUnderTest:
        return BackendUnderTest(LocalBackend)

    @pytest.fixture
    def data_plane(self, platform: Platform) -> Iterator[None]:
        """The local backend answers invocations through its inference server."""
        with InferenceServer(platform, poll_interval=0.01) as server:
            server.start()
            yield None


class TestLocalRegistry(LocalFixtures, AbstractRegistryTests): ...


class TestLocalRuns(LocalFixtures, AbstractRunTests): ...


class TestLocalLineage(LocalFixtures, AbstractLineageTests): ...


class TestLocalServing(LocalFixtures, AbstractServingTests): ...


class TestLocalPipelines(LocalFixtures, AbstractPipelineTests): ...


class TestLocalMonitoring(LocalFixtures, AbstractMonitoringTests): ...


class TestLocalSync(LocalFixtures, AbstractSyncTests): ...


class TestLocalErrors(LocalFixtures, AbstractErrorContractTests): ...
