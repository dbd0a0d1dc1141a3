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
    SendTraffic,
    Traffic,
)

from mintaka import Platform
from mintaka.local.backend import LocalBackend
from mintaka.local.server import InferenceServer
from mintaka.store.schema import predictions


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

    @pytest.fixture
    def send_traffic(self, platform: Platform) -> SendTraffic:
        """The inference server's prediction log, where the local backend's metrics come from:
        a record a request, logged ``ok``, ``error`` (a 5xx) or ``invalid`` (a 4xx)."""

        def send(endpoint: str, route: str, traffic: Traffic) -> None:
            served = {r.name: r for r in platform.serving.get_endpoint(endpoint).routes}[route]
            version = platform.get_model_version(served.model, served.version)
            states = (
                ["ok"] * traffic.answered
                + ["error"] * traffic.failed
                + ["invalid"] * traffic.refused
            )
            with platform.store.write() as conn:
                conn.execute(
                    predictions.insert(),
                    [
                        {
                            "id": platform.ids.new("pred"),
                            "endpoint": endpoint,
                            "route": route,
                            "model": served.model,
                            "version": served.version,
                            "version_id": version.id,
                            "input_digest": "sha256:" + "0" * 64,
                            "inputs": None,
                            "output": None,
                            "status": state,
                            "shadow": 0,
                            "latency_ms": 1.0,
                            "at": platform.clock.now().isoformat(),
                        }
                        for state in states
                    ],
                )

        return send


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
