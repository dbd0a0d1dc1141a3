"""The memory backend opts into the Mintaka conformance suite: this file is all it takes."""

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
from mintaka_memory.backend import CLOUDS, MemoryBackend


class MemoryFixtures(AbstractBackendFixtures):
    @pytest.fixture
    def backend(self, request):
        # A fresh "cloud" per test; a real plugin starts its mock (moto, a fake server) here.
        namespace = request.node.nodeid
        yield BackendUnderTest(MemoryBackend, {"namespace": namespace})
        CLOUDS.pop(namespace, None)


class TestMemoryRegistry(MemoryFixtures, AbstractRegistryTests): ...


class TestMemoryRuns(MemoryFixtures, AbstractRunTests): ...


class TestMemoryLineage(MemoryFixtures, AbstractLineageTests): ...


class TestMemoryServing(MemoryFixtures, AbstractServingTests): ...


class TestMemoryPipelines(MemoryFixtures, AbstractPipelineTests): ...


class TestMemoryMonitoring(MemoryFixtures, AbstractMonitoringTests): ...


class TestMemorySync(MemoryFixtures, AbstractSyncTests): ...


class TestMemoryErrors(MemoryFixtures, AbstractErrorContractTests): ...
