"""Serving: endpoints with routes to model versions, and traffic changed without redeploying.

The first tests drive the backend's serving interface directly; the rest go through core
(``platform.serving``): invocations with prediction ids, weights, pinned routes, rollback, shadow
traffic and the kill switch. A cloud's own rollout accepts the plans ``mintaka rollout --native``
fills in; native rollouts and batch scoring are held to the error contract
(``AbstractErrorContractTests``).
"""

from __future__ import annotations

import contextlib
import csv
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from mintaka import (
    BackendError,
    Capability,
    Conflict,
    MintakaError,
    NotFound,
    Platform,
    ValidationError,
)
from mintaka.domain.registry import Flavor
from mintaka.domain.serving import (
    Endpoint,
    EndpointStatus,
    RolloutStrategy,
    Route,
    TrafficMap,
    TrafficPlan,
    TrafficStep,
)
from mintaka.rollout import native
from mintaka.rollout.controller import plan_steps
from mintaka.rollout.steps import NATIVE_STEP_SHARES
from mintaka_conformance.fixtures import AbstractBackendFixtures
from mintaka_conformance.scenarios import MakeArtifact, ModelScenario, Names, ServableModel
from mintaka_conformance.spy import BackendSpy

SHADOW_LAG_SECONDS = 10.0  # how long a shadow route's answers may take to show in its metrics


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

    # -- through core: invocations, traffic, rollback, shadow and the kill switch ---------------

    @pytest.fixture
    def live_endpoint(
        self, platform: Platform, servable: ServableModel, names: Names, data_plane: None
    ) -> Iterator[str]:
        """An endpoint created through core: route ``blue`` -> v1 with all traffic, ``green`` -> v2
        deployed with none."""
        name = names.endpoint("live")
        platform.serving.create_endpoint(name, f"{servable.name}:1", route="blue")
        platform.serving.deploy(name, f"{servable.name}:2", route="green")
        yield name
        with contextlib.suppress(MintakaError):
            platform.serving.delete_endpoint(name)

    @pytest.mark.requires(Capability.SERVING)
    def test_invocation_answers_each_row_with_a_prediction_id_and_the_route(
        self, platform: Platform, servable: ServableModel, live_endpoint: str
    ) -> None:
        """The backend MUST answer an invocation with the route that served it and one unique
        prediction id per row."""
        first = platform.serving.invoke(live_endpoint, [servable.row(0), servable.row(1)])
        second = platform.serving.invoke(live_endpoint, servable.row(2))
        assert first["route"] == "blue"
        assert len(first["predictions"]) == 2
        assert len(second["predictions"]) == 1
        ids = [p["id"] for p in first["predictions"] + second["predictions"]]
        assert len(set(ids)) == 3
        assert all(isinstance(i, str) and i for i in ids)

    @pytest.mark.requires(Capability.SERVING)
    def test_pinned_invocation_is_answered_by_that_route(
        self, platform: Platform, servable: ServableModel, live_endpoint: str
    ) -> None:
        """The backend MUST let an invocation pinned to a route be answered by that route, even
        one taking no traffic."""
        answer = platform.serving.invoke(live_endpoint, servable.row(0), route="green")
        assert answer["route"] == "green"

    @pytest.mark.requires(Capability.SERVING, Capability.SERVING_TRAFFIC_SPLIT)
    def test_traffic_follows_the_weights(
        self, platform: Platform, servable: ServableModel, live_endpoint: str
    ) -> None:
        """The backend MUST route requests in proportion to the weights (1,000 requests at 70/30
        land within 80 of 700/300: a false failure is rarer than one in ten million)."""
        platform.serving.set_traffic(live_endpoint, {"blue": 70, "green": 30})
        counts = {"blue": 0, "green": 0}
        for i in range(1000):
            counts[platform.serving.invoke(live_endpoint, servable.row(i))["route"]] += 1
        assert abs(counts["green"] - 300) <= 80

    @pytest.mark.requires(Capability.SERVING, Capability.SERVING_TRAFFIC_SPLIT)
    def test_rollback_restores_the_last_known_good_traffic(
        self, platform: Platform, cloud: Any, servable: ServableModel, live_endpoint: str
    ) -> None:
        """The backend MUST serve the last known-good traffic again after core's rollback."""
        platform.serving.set_traffic(live_endpoint, {"green": 100})
        assert platform.serving.invoke(live_endpoint, servable.row(0))["route"] == "green"
        restored = platform.serving.rollback(live_endpoint, reason="conformance")
        assert restored.traffic.weights["blue"] == 100
        assert cloud.get_endpoint(live_endpoint).traffic.weights["blue"] == 100
        answers = {
            platform.serving.invoke(live_endpoint, servable.row(i))["route"] for i in range(20)
        }
        assert answers == {"blue"}

    @pytest.mark.requires(Capability.SERVING, Capability.SERVING_SHADOW)
    def test_shadow_route_never_answers_the_caller(
        self, platform: Platform, servable: ServableModel, live_endpoint: str
    ) -> None:
        """The backend MUST never return a shadow route's answer to the caller."""
        platform.serving.set_traffic(
            live_endpoint, {"blue": 100, "green": 0}, shadow="green", shadow_percent=100
        )
        assert platform.serving.get_endpoint(live_endpoint).traffic.shadow == "green"
        routes = {
            platform.serving.invoke(live_endpoint, servable.row(i))["route"] for i in range(20)
        }
        assert routes == {"blue"}

    @pytest.mark.requires(Capability.SERVING, Capability.SERVING_NATIVE_ROLLOUT)
    def test_native_rollout_ends_on_the_plans_traffic(
        self, platform: Platform, cloud: Any, live_endpoint: str
    ) -> None:
        """The backend MUST walk a native rollout (one it implements, not one core emulates) to
        the plan's final traffic and report it ``succeeded`` within a few reads; core records it
        and marks that traffic known-good."""
        if Capability.SERVING_NATIVE_ROLLOUT in type(cloud).emulated:
            pytest.skip("emulated: core's rollout controller walks the plan (the traffic tests)")
        plan = TrafficPlan(
            endpoint=live_endpoint,
            strategy=RolloutStrategy.CANARY,
            steps=[
                TrafficStep(weights={"blue": 90, "green": 10}),
                TrafficStep(weights={"blue": 0, "green": 100}),
            ],
        )
        rollout_id = native.start(platform, plan)
        found = native.status(platform, live_endpoint, rollout_id)
        for _ in range(20):  # a cloud takes a moment to walk the plan
            if found is not native.NativeRolloutStatus.IN_PROGRESS:
                break
            found = native.status(platform, live_endpoint, rollout_id)
        assert found is native.NativeRolloutStatus.SUCCEEDED
        assert cloud.get_endpoint(live_endpoint).traffic.weights == {"blue": 0, "green": 100}
        latest = platform.serving.deployment_history(live_endpoint)[-1]
        assert latest.traffic.weights == {"blue": 0, "green": 100}
        assert latest.known_good

    @pytest.mark.requires(Capability.SERVING, Capability.SERVING_NATIVE_ROLLOUT)
    @pytest.mark.parametrize("strategy", sorted(NATIVE_STEP_SHARES))
    def test_default_native_plans_are_walked_as_written(
        self, cloud: Any, endpoint_name: str, strategy: str
    ) -> None:
        """The backend MUST accept in ``check_native_plan`` the plans ``mintaka rollout
        --native`` fills in (``NATIVE_STEP_SHARES``, baking a minute a step): its cloud walks
        them exactly as written."""
        if Capability.SERVING_NATIVE_ROLLOUT in type(cloud).emulated:
            pytest.skip("emulated: core's rollout controller walks the plan (the traffic tests)")
        plan = plan_steps(
            TrafficPlan(endpoint=endpoint_name, strategy=RolloutStrategy(strategy)),
            challenger="green",
            champion="blue",
            bake_seconds=60,
            native=True,
        )
        current = Endpoint(
            name=endpoint_name,
            status=EndpointStatus.IN_SERVICE,
            routes=tuple(Route(name=r, model="model", version=1) for r in ("blue", "green")),
            traffic=TrafficMap(weights={"blue": 100, "green": 0}),
            backend=cloud.name,
        )
        cloud.check_native_plan(plan, current)

    @pytest.mark.requires(Capability.SERVING, Capability.SERVING_KILL)
    def test_killed_endpoint_refuses_requests_until_released(
        self, platform: Platform, servable: ServableModel, live_endpoint: str
    ) -> None:
        """The backend MUST refuse every request to a killed endpoint with BackendError, and
        serve again once released."""
        platform.serving.kill(live_endpoint, reason="conformance")
        with pytest.raises(BackendError):
            platform.serving.invoke(live_endpoint, servable.row(0))
        platform.serving.unkill(live_endpoint)
        assert platform.serving.invoke(live_endpoint, servable.row(0))["route"] == "blue"

    @pytest.mark.requires(Capability.SERVING)
    def test_an_endpoint_on_a_flavor_the_backend_cannot_serve_is_refused(
        self,
        platform: Platform,
        cloud: Any,
        spy: BackendSpy,
        names: Names,
        make_artifact: MakeArtifact,
        endpoint_name: str,
    ) -> None:
        """The backend MUST name through ``serves_flavor`` every flavor it cannot serve, so that
        an endpoint on a version of one is refused before any serving call is made."""
        if cloud.serves_flavor(Flavor.OPAQUE):
            pytest.skip("the backend serves every flavor's files with its own runtime")
        model = names.model("stored")
        platform.register_model(model, make_artifact(b"stored"), flavor=Flavor.OPAQUE)
        before = len(spy.calls)
        with pytest.raises(ValidationError, match="flavor 'opaque'"):
            platform.serving.create_endpoint(endpoint_name, f"{model}:1", route="blue")
        assert "create_endpoint" not in spy.called[before:]
        assert endpoint_name not in {e.name for e in cloud.list_endpoints()}

    @pytest.mark.requires(Capability.SERVING, Capability.MONITORING_METRICS)
    def test_metrics_cover_the_requested_window(
        self, platform: Platform, servable: ServableModel, live_endpoint: str
    ) -> None:
        """The backend MUST read back metrics for an endpoint that cover the window asked for (up
        to now), and report the window its numbers actually cover."""
        start = platform.clock.now()
        platform.serving.invoke(live_endpoint, servable.row(0))
        end = start + timedelta(minutes=5)
        metrics = platform.serving.endpoint_metrics(live_endpoint, start, end)
        assert metrics.endpoint == live_endpoint
        assert metrics.start <= start
        assert metrics.end >= min(end, platform.clock.now())
        assert all(count >= 0 for count in metrics.requests.values())

    @pytest.mark.requires(Capability.SERVING, Capability.MONITORING_METRICS)
    def test_metrics_count_a_refused_request_once(
        self, platform: Platform, servable: ServableModel, live_endpoint: str
    ) -> None:
        """The backend MUST count each answered request of a route once in ``requests``, and a
        request the route failed on or refused as invalid at most once more, in ``errors`` or in
        ``invalid``: a rollout adds the two up against the route's requests."""
        start = platform.clock.now()
        platform.serving.invoke(live_endpoint, servable.row(0))
        with contextlib.suppress(MintakaError):
            platform.serving.invoke(live_endpoint, {"not-a-feature": 1.0})
        metrics = platform.serving.endpoint_metrics(
            live_endpoint, start, start + timedelta(minutes=5)
        )
        for route in {*metrics.errors, *metrics.invalid}:
            failed = metrics.errors.get(route, 0) + metrics.invalid.get(route, 0)
            assert 0 <= failed <= metrics.requests.get(route, 0), route

    @pytest.mark.requires(Capability.SERVING, Capability.MONITORING_METRICS)
    def test_metrics_report_only_the_custom_metrics_declared(
        self, platform: Platform, cloud: Any, servable: ServableModel, live_endpoint: str
    ) -> None:
        """The backend MUST report in ``EndpointMetrics.custom`` only names its
        ``custom_metrics`` declares (unless it declares them open), as core refuses a rollout
        whose SLA names any other before traffic moves."""
        start = platform.clock.now()
        platform.serving.invoke(live_endpoint, servable.row(0))
        metrics = platform.serving.endpoint_metrics(
            live_endpoint, start, start + timedelta(minutes=5)
        )
        declared = cloud.custom_metrics()
        assert declared is None or set(metrics.custom) <= set(declared)

    @pytest.mark.requires(
        Capability.SERVING, Capability.SERVING_SHADOW, Capability.MONITORING_METRICS
    )
    def test_metrics_read_shadow_copies_apart_where_declared(
        self, platform: Platform, cloud: Any, servable: ServableModel, live_endpoint: str
    ) -> None:
        """The backend MUST report the copies of requests a shadow route answered in
        ``EndpointMetrics.shadow`` under that route (within a few seconds) and never among the
        live numbers, where its ``reads_shadow_metrics`` says it reads them apart, as a rollout
        judges the shadowed route on them."""
        if not cloud.reads_shadow_metrics():
            pytest.skip("its metrics do not tell shadow copies apart: core refuses such rollouts")
        platform.serving.set_traffic(
            live_endpoint, {"blue": 100, "green": 0}, shadow="green", shadow_percent=100
        )
        start = platform.clock.now()
        for i in range(3):
            platform.serving.invoke(live_endpoint, servable.row(i))
        deadline = time.monotonic() + SHADOW_LAG_SECONDS
        while True:
            metrics = platform.serving.endpoint_metrics(
                live_endpoint, start, start + timedelta(minutes=5)
            )
            copies = metrics.shadow.requests.get("green", 0) if metrics.shadow else 0
            if copies >= 3 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert copies == 3
        assert "green" not in metrics.requests

    @pytest.mark.requires(Capability.SERVING_BATCH)
    def test_batch_scoring_gives_every_row_a_prediction_id(
        self, platform: Platform, servable: ServableModel, tmp_path: Path
    ) -> None:
        """The backend MUST score every row of a batch file and give each its own prediction id."""
        source = tmp_path / "batch-in.csv"
        rows = [servable.row(i) for i in range(5)]
        with source.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(servable.features))
            writer.writeheader()
            writer.writerows(rows)
        target = tmp_path / "batch-out.csv"
        result = platform.serving.score_batch(f"{servable.name}:1", source, target)
        with target.open(newline="") as handle:
            scored = list(csv.DictReader(handle))
        assert result["rows"] == "5"
        assert len(scored) == 5
        assert len({r["prediction_id"] for r in scored}) == 5
        assert all(r["prediction"] != "" for r in scored)
