"""Serving: endpoints with routes to model versions, and traffic changed without redeploying.

Behaviour tests cover what the interfaces define today; native rollouts, shadow traffic and batch
scoring are held to the error contract only (``AbstractErrorContractTests``) until core drives them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest

from mintaka import Capability, Conflict, MintakaError, NotFound
from mintaka.domain.serving import Route, TrafficMap
from mintaka_conformance.fixtures import AbstractBackendFixtures
from mintaka_conformance.scenarios import ModelScenario, Names


class AbstractServingTests(AbstractBackendFixtures):
    area = "serving"

    @pytest.fixture
    def endpoint_name(self, cloud: Any, names: Names) -> Iterator[str]:
        """A fresh endpoint name; the endpoint is deleted afterwards if a test created it."""
        name = names.endpoint()
        yield name
        with contextlib.suppress(MintakaError):
            cloud.delete_endpoint(name)

    @staticmethod
    def _blue(scenario: ModelScenario) -> Route:
        return Route(name="blue", model=scenario.name, version=1)

    @staticmethod
    def _green(scenario: ModelScenario) -> Route:
        return Route(name="green", model=scenario.name, version=2)

    @pytest.mark.requires(Capability.SERVING)
    def test_created_endpoint_reads_back(
        self, cloud: Any, scenario: ModelScenario, endpoint_name: str
    ) -> None:
        """The backend MUST create an endpoint whose routes and traffic read back as created."""
        created = cloud.create_endpoint(
            endpoint_name, [self._blue(scenario)], TrafficMap(weights={"blue": 100})
        )
        seen = cloud.get_endpoint(endpoint_name)
        assert seen.name == created.name == endpoint_name
        assert seen.routes == (self._blue(scenario),)
        assert seen.traffic.weights == {"blue": 100}
        assert endpoint_name in {e.name for e in cloud.list_endpoints()}

    @pytest.mark.requires(Capability.SERVING)
    def test_creating_an_endpoint_twice_conflicts(
        self, cloud: Any, scenario: ModelScenario, endpoint_name: str
    ) -> None:
        """The backend MUST refuse with Conflict to create an endpoint that exists."""
        traffic = TrafficMap(weights={"blue": 100})
        cloud.create_endpoint(endpoint_name, [self._blue(scenario)], traffic)
        with pytest.raises(Conflict):
            cloud.create_endpoint(endpoint_name, [self._blue(scenario)], traffic)

    @pytest.mark.requires(Capability.SERVING)
    def test_missing_endpoint_is_not_found(self, cloud: Any, names: Names) -> None:
        """The backend MUST raise NotFound for an endpoint it does not have."""
        with pytest.raises(NotFound):
            cloud.get_endpoint(names.endpoint("missing"))

    @pytest.mark.requires(Capability.SERVING)
    def test_update_routes_replaces_routes_and_traffic(
        self, cloud: Any, scenario: ModelScenario, endpoint_name: str
    ) -> None:
        """The backend MUST replace an endpoint's routes and traffic together on update."""
        cloud.create_endpoint(
            endpoint_name, [self._blue(scenario)], TrafficMap(weights={"blue": 100})
        )
        routes = [self._blue(scenario), self._green(scenario)]
        cloud.update_routes(endpoint_name, routes, TrafficMap(weights={"blue": 90, "green": 10}))
        seen = cloud.get_endpoint(endpoint_name)
        assert {r.name: r.version for r in seen.routes} == {"blue": 1, "green": 2}
        assert seen.traffic.weights == {"blue": 90, "green": 10}

    @pytest.mark.requires(Capability.SERVING)
    def test_deleted_endpoint_is_gone(
        self, cloud: Any, scenario: ModelScenario, endpoint_name: str
    ) -> None:
        """The backend MUST forget a deleted endpoint."""
        cloud.create_endpoint(
            endpoint_name, [self._blue(scenario)], TrafficMap(weights={"blue": 100})
        )
        cloud.delete_endpoint(endpoint_name)
        with pytest.raises(NotFound):
            cloud.get_endpoint(endpoint_name)

    @pytest.mark.requires(Capability.SERVING, Capability.SERVING_TRAFFIC_SPLIT)
    def test_traffic_split_changes_weights_only(
        self, cloud: Any, scenario: ModelScenario, endpoint_name: str
    ) -> None:
        """The backend MUST change route weights without changing the routes."""
        routes = [self._blue(scenario), self._green(scenario)]
        cloud.create_endpoint(endpoint_name, routes, TrafficMap(weights={"blue": 100, "green": 0}))
        cloud.set_traffic(endpoint_name, TrafficMap(weights={"blue": 75, "green": 25}))
        seen = cloud.get_endpoint(endpoint_name)
        assert seen.traffic.weights == {"blue": 75, "green": 25}
        assert {r.name for r in seen.routes} == {"blue", "green"}
