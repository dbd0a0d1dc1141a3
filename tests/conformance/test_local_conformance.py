"""The local reference backend opts into the whole conformance suite."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

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


class TestLocalPipelines(LocalFixtures, AbstractPipelineTests):
    @pytest.fixture
    def hold_pipeline_run(self, cloud: Any) -> Callable[[str], None]:
        """The next run of the pipeline waits before its first step until stopped."""
        hold: Callable[[str], None] = cloud.hold_next_run
        return hold

    @pytest.fixture(autouse=True)
    def _no_worker_outlives_the_test(self, cloud: Any) -> Iterator[None]:
        """A submitted run's worker is detached: stop every run the test left behind."""
        yield
        for run in cloud.list_pipeline_runs():
            cloud.stop_pipeline_run(run.id)


class TestLocalMonitoring(LocalFixtures, AbstractMonitoringTests): ...


class TestLocalSync(LocalFixtures, AbstractSyncTests): ...


class TestLocalErrors(LocalFixtures, AbstractErrorContractTests): ...
