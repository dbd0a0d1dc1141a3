"""Discovery, sync and adoption: the cloud's view of managed resources, changes made behind
Mintaka's back, and what was created there brought under management."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mintaka import Capability, Platform
from mintaka.artifacts import manifest_of
from mintaka.domain.discovery import ResourceKind
from mintaka.domain.lineage import NodeKind
from mintaka.domain.registry import ApprovalStatus, VersionRequest
from mintaka.domain.serving import Route, TrafficMap
from mintaka.errors import Conflict, NotFound, ValidationError
from mintaka.sync import DIFFERENCE_ACTION, RESOLVED_ACTION
from mintaka_conformance.fixtures import AbstractBackendFixtures, OutOfBand
from mintaka_conformance.scenarios import (
    MakeArtifact,
    ModelScenario,
    Names,
    ServableModel,
    cleanup_models,
)

# The open policy names no approver role, so core has no approval verdict to compare; this one
# lets versions of every tier be approved (none has to be).
SIGN_OFF_POLICY = """
version = "conformance-sign-off/1"

[roles]

[tiers.low]
approver_roles = ["model-risk"]
[tiers.medium]
approver_roles = ["model-risk"]
[tiers.high]
approver_roles = ["model-risk"]
"""


def _use_sign_off_policy(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> None:
    path = platform.home / "sign-off-policy.toml"
    path.write_text(SIGN_OFF_POLICY)
    monkeypatch.setenv("MINTAKA_POLICY", str(path))  # wins over any policy the run set
    platform.governance.reload_policy()


def _audited(platform: Platform, action: str) -> list[tuple[str, dict[str, Any]]]:
    return [(e.subject, e.details) for e in platform.audit.events() if e.action == action]


class AbstractSyncTests(AbstractBackendFixtures):
    area = "sync"

    @pytest.mark.requires(Capability.DISCOVERY)
    def test_discovery_lists_managed_versions(self, cloud: Any, scenario: ModelScenario) -> None:
        """The backend MUST discover every version registered by Mintaka and mark it managed."""
        found = {
            r.name: r
            for r in cloud.discover()
            if r.kind is ResourceKind.MODEL_VERSION and r.name.startswith(f"{scenario.name}:")
        }
        assert sorted(found) == [f"{scenario.name}:{n}" for n in (1, 2, 3)]
        assert all(r.managed for r in found.values())
        assert any(
            r.kind is ResourceKind.MODEL and r.name == scenario.name for r in cloud.discover()
        )

    @pytest.mark.requires(Capability.SYNC)
    def test_observed_model_matches_what_was_registered(
        self, cloud: Any, scenario: ModelScenario
    ) -> None:
        """The backend MUST observe a managed model with the versions, digests, tags and aliases
        Mintaka set."""
        observed = cloud.observe_model(scenario.name)
        assert observed.name == scenario.name
        assert [v.version for v in observed.versions] == [1, 2, 3]
        assert [v.artifact_digest for v in observed.versions] == [
            v.artifact_digest for v in scenario.versions
        ]
        assert [v.tags for v in observed.versions] == [scenario.tags.get(n, {}) for n in (1, 2, 3)]
        assert {a: v for a, v in observed.aliases.items() if a in scenario.aliases} == (
            scenario.aliases
        )

    @pytest.mark.requires(Capability.SYNC)
    def test_sync_in_step_reports_nothing(
        self, platform: Platform, scenario: ModelScenario
    ) -> None:
        """The backend MUST observe state changed only through Mintaka so that sync finds no
        difference."""
        assert platform.sync() == []
        assert _audited(platform, DIFFERENCE_ACTION) == []

    @pytest.mark.requires(Capability.SYNC, Capability.REGISTRY_ALIASES)
    def test_alias_moved_out_of_band_is_reported_and_audited(
        self, platform: Platform, out_of_band: OutOfBand, scenario: ModelScenario
    ) -> None:
        """The backend MUST reveal an alias moved through the cloud's own API, which sync reports
        and audits."""
        out_of_band.move_alias(scenario.name, "champion", 1)
        differences = platform.sync()
        assert [(d.kind, d.subject, d.recorded, d.observed) for d in differences] == [
            ("alias", f"{scenario.name}@champion", 2, 1)
        ]
        assert _audited(platform, DIFFERENCE_ACTION) == [
            (
                f"{scenario.name}@champion",
                {"kind": "alias", "recorded": 2, "observed": 1},
            )
        ]

    @pytest.mark.requires(Capability.SYNC, Capability.SERVING, Capability.SERVING_TRAFFIC_SPLIT)
    def test_traffic_changed_out_of_band_is_reported(
        self,
        platform: Platform,
        cloud: Any,
        out_of_band: OutOfBand,
        servable: ServableModel,
        names: Names,
        data_plane: None,
    ) -> None:
        """The backend MUST reveal traffic moved through the cloud's own API, which sync reports
        and audits."""
        endpoint = names.endpoint("sync")
        platform.serving.create_endpoint(endpoint, f"{servable.name}:1", route="blue")
        platform.serving.deploy(endpoint, f"{servable.name}:2", route="green")
        assert platform.sync() == []
        weights = {"blue": 40, "green": 60}
        mover = getattr(out_of_band, "set_traffic", None)
        if mover is not None:
            mover(endpoint, weights)
        else:  # the backend's own call, which core never hears of
            cloud.set_traffic(endpoint, TrafficMap(weights=weights))
        [difference] = platform.sync()
        assert (difference.kind, difference.subject) == ("endpoint.traffic", f"endpoint {endpoint}")
        assert difference.recorded["weights"] == {"blue": 100}  # type: ignore[index]
        assert difference.observed["weights"] == weights  # type: ignore[index]
        assert [s for s, _ in _audited(platform, DIFFERENCE_ACTION)] == [f"endpoint {endpoint}"]
        assert platform.serving.get_endpoint(endpoint).traffic.weights["blue"] == 100

    @pytest.mark.requires(Capability.SYNC, Capability.SERVING)
    def test_route_repointed_out_of_band_is_reported(
        self,
        platform: Platform,
        cloud: Any,
        servable: ServableModel,
        names: Names,
        data_plane: None,
    ) -> None:
        """The backend MUST reveal which version each route serves, so that a route pointed at
        another version through the cloud's own API (traffic unchanged) is reported."""
        endpoint = names.endpoint("repoint")
        platform.serving.create_endpoint(endpoint, f"{servable.name}:1", route="blue")
        assert platform.sync() == []
        cloud.update_routes(  # the backend's own call, which core never hears of
            endpoint,
            [Route(name="blue", model=servable.name, version=2)],
            TrafficMap(weights={"blue": 100}),
        )
        [difference] = platform.sync()
        assert (difference.kind, difference.subject) == ("endpoint.routes", f"endpoint {endpoint}")
        assert (difference.recorded, difference.observed) == (
            {"blue": f"{servable.name}:1"},
            {"blue": f"{servable.name}:2"},
        )
        assert [s for s, _ in _audited(platform, DIFFERENCE_ACTION)] == [f"endpoint {endpoint}"]
        [route] = platform.serving.get_endpoint(endpoint).routes
        assert route.version == 1  # the record is not overwritten

    @pytest.mark.requires(Capability.SYNC, Capability.REGISTRY_DELETE)
    def test_version_deleted_out_of_band_is_reported(
        self, platform: Platform, out_of_band: OutOfBand, scenario: ModelScenario
    ) -> None:
        """The backend MUST reveal a version deleted through the cloud's own API as missing."""
        out_of_band.delete_version(scenario.name, 1)
        kinds = {(d.kind, d.subject) for d in platform.sync()}
        assert ("version.missing", f"{scenario.name}:1") in kinds

    @pytest.mark.requires(Capability.SYNC, Capability.REGISTRY_TAGS)
    def test_tags_changed_out_of_band_are_reported(
        self, platform: Platform, out_of_band: OutOfBand, scenario: ModelScenario
    ) -> None:
        """The backend MUST reveal tags changed through the cloud's own API, recorded and observed
        side by side."""
        out_of_band.set_tags(scenario.name, 1, {"team": "fraud"})
        differences = platform.sync()
        assert [(d.kind, d.subject, d.recorded, d.observed) for d in differences] == [
            ("version.tags", f"{scenario.name}:1", {"team": "risk"}, {"team": "fraud"})
        ]

    @pytest.mark.requires(Capability.SYNC, Capability.REGISTRY_APPROVAL)
    def test_approval_changed_out_of_band_is_reported_then_resolved(
        self,
        platform: Platform,
        cloud: Any,
        out_of_band: OutOfBand,
        scenario: ModelScenario,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """The backend MUST reveal a version approved through the cloud's own API while core
        projects it pending (it has no approvals), and the undoing of that change."""
        _use_sign_off_policy(platform, monkeypatch)
        approve = getattr(out_of_band, "set_approval", None) or cloud.set_approval
        approve(scenario.name, 1, ApprovalStatus.APPROVED)
        differences = platform.sync()
        assert [(d.kind, d.subject, d.recorded, d.observed) for d in differences] == [
            ("version.approval", f"{scenario.name}:1", "pending", "approved")
        ]
        assert [s for s, _ in _audited(platform, DIFFERENCE_ACTION)] == [f"{scenario.name}:1"]
        approve(scenario.name, 1, ApprovalStatus.PENDING)
        assert platform.sync() == []
        assert [s for s, _ in _audited(platform, RESOLVED_ACTION)] == [f"{scenario.name}:1"]

    @pytest.mark.requires(Capability.SYNC, Capability.REGISTRY_ALIASES)
    def test_sync_is_idempotent(
        self, platform: Platform, out_of_band: OutOfBand, scenario: ModelScenario, clock: Any
    ) -> None:
        """The backend MUST report an unchanged out-of-band change the same way on every sync,
        audited once."""
        out_of_band.move_alias(scenario.name, "champion", 1)
        first = platform.sync()
        clock.advance(3600)
        assert platform.sync() == first
        assert len(_audited(platform, DIFFERENCE_ACTION)) == 1

    @pytest.mark.requires(Capability.SYNC, Capability.REGISTRY_ALIASES)
    def test_sync_overwrites_neither_side(
        self,
        platform: Platform,
        cloud: Any,
        out_of_band: OutOfBand,
        scenario: ModelScenario,
    ) -> None:
        """The backend MUST keep an out-of-band change after sync, and core keeps its own record."""
        out_of_band.move_alias(scenario.name, "champion", 1)
        platform.sync()
        assert cloud.get_aliases(scenario.name)["champion"] == 1
        assert platform.get_model_version(scenario.name, alias="champion").version == 2

    @pytest.mark.requires(Capability.SYNC, Capability.REGISTRY_ALIASES)
    def test_reverted_change_is_resolved(
        self, platform: Platform, out_of_band: OutOfBand, scenario: ModelScenario
    ) -> None:
        """The backend MUST reveal an out-of-band change that was undone, so sync records it as
        resolved."""
        out_of_band.move_alias(scenario.name, "champion", 1)
        assert platform.sync() != []
        out_of_band.move_alias(scenario.name, "champion", 2)
        assert platform.sync() == []
        assert [s for s, _ in _audited(platform, RESOLVED_ACTION)] == [f"{scenario.name}@champion"]

    @pytest.mark.requires(Capability.REGISTRY, Capability.SYNC)
    def test_version_created_behind_mintakas_back_is_adopted(
        self,
        platform: Platform,
        cloud: Any,
        scenario: ModelScenario,
        make_artifact: MakeArtifact,
    ) -> None:
        """The backend MUST let core adopt a version created through the cloud's own API: core
        records it under the cloud's number, bound to the digest of its bytes (read back where
        the backend can, else given), and sync then finds nothing to report."""
        source = make_artifact(b"weights-made-elsewhere" + scenario.name.encode())
        digest = manifest_of(source).digest
        made = cloud.create_version(
            VersionRequest(
                name=scenario.name,
                artifact_path=str(source),
                artifact_digest=digest,
                mintaka_id="mv-made-elsewhere",
                idempotency_key="made-elsewhere",
            )
        )
        assert made.version == 4
        assert [(d.kind, d.subject) for d in platform.sync()] == [
            ("version.unrecorded", f"{scenario.name}:4")
        ]
        given = {} if platform.supports(Capability.REGISTRY_FETCH) else {4: source}
        adoption = platform.migration.adopt_model(
            scenario.name,
            reason="registered by a training job before Mintaka",
            run_id=scenario.run.id,
            artifacts=given,
        )
        [adopted] = adoption.adopted
        assert (adopted.version, adopted.artifact_digest) == (4, digest)
        assert adoption.already_recorded == (1, 2, 3)
        assert platform.artifacts.exists(digest)
        assert platform.sync() == []
        assert [s for s, _ in _audited(platform, RESOLVED_ACTION)] == [f"{scenario.name}:4"]
        [(subject, details)] = _audited(platform, "model.adopt")
        assert (subject, details["digest"]) == (f"{scenario.name}:4", digest)
        upstream = platform.lineage_upstream(f"{scenario.name}:4")
        assert any(n.kind is NodeKind.DATASET for n in upstream.nodes)
        again = platform.migration.adopt_model(scenario.name, reason="second look")
        assert (again.adopted, again.already_recorded) == ((), (1, 2, 3, 4))
        assert len(_audited(platform, "model.adopt")) == 1

    @pytest.mark.requires(Capability.SYNC, Capability.SERVING, Capability.SERVING_TRAFFIC_SPLIT)
    def test_endpoint_created_behind_mintakas_back_is_adopted(
        self,
        platform: Platform,
        cloud: Any,
        servable: ServableModel,
        names: Names,
        data_plane: None,
    ) -> None:
        """The backend MUST report an endpoint created through the cloud's own API with the
        routes and traffic it serves, so core adopts it with that traffic as its first
        deployment and sync finds nothing to report."""
        endpoint = names.endpoint("adopt")
        routes = [
            Route(name="blue", model=servable.name, version=1),
            Route(name="green", model=servable.name, version=2),
        ]
        cloud.create_endpoint(endpoint, routes, TrafficMap(weights={"blue": 100, "green": 0}))
        cloud.set_traffic(endpoint, TrafficMap(weights={"blue": 70, "green": 30}))
        adoption = platform.migration.adopt_endpoint(endpoint, reason="serving before Mintaka")
        assert adoption.adopted
        recorded = platform.serving.get_endpoint(endpoint)
        assert {r.name: (r.model, r.version) for r in recorded.routes} == {
            "blue": (servable.name, 1),
            "green": (servable.name, 2),
        }
        assert recorded.traffic.weights == {"blue": 70, "green": 30}
        [deployment] = platform.serving.deployment_history(endpoint)
        assert deployment.known_good is adoption.known_good
        assert platform.sync() == []
        assert not platform.migration.adopt_endpoint(endpoint, reason="again").adopted
        assert [s for s, _ in _audited(platform, "endpoint.adopt")] == [endpoint]

    @pytest.mark.requires(
        Capability.REGISTRY_FROM_SERVING,
        Capability.REGISTRY_FETCH,
        Capability.SERVING,
        Capability.SYNC,
    )
    def test_what_an_endpoint_serves_without_the_registry_is_registered_then_adopted(
        self,
        platform: Platform,
        cloud: Any,
        names: Names,
        make_artifact: MakeArtifact,
        serve_unregistered: Callable[[Path], tuple[str, str]],
        tmp_path: Path,
    ) -> None:
        """The backend MUST register what a route of an endpoint deployed without its registry
        serves as one new version however often asked, leaving the endpoint as it is and then
        reading the route as serving that version (and refusing, with Conflict, to register it
        as another model's), so core adopts the version (bound to the digest of those files),
        then the endpoint, with nothing left for sync to report, and,
        when it reads those files before registering (fetch_served), register nothing for files
        core refuses to adopt."""
        files = make_artifact(b"deployed-straight-from-its-files")
        endpoint, route = serve_unregistered(files)
        model = names.model("served")
        with pytest.raises(ValidationError, match=f"mintaka adopt served {endpoint} {route}"):
            platform.migration.adopt_endpoint(endpoint, reason="serving before Mintaka")

        try:
            if self._reads_served_first(cloud, endpoint, route, tmp_path / "served"):
                self._refused_registers_nothing(platform, cloud, endpoint, route, model)
            self._register_served_and_adopt(platform, cloud, endpoint, route, model, files)
        finally:
            cleanup_models(cloud, [model, f"{model}-other"])

    @staticmethod
    def _reads_served_first(cloud: Any, endpoint: str, route: str, into: Path) -> bool:
        """Whether the backend reads what the route serves before registering it: decided by
        what ``fetch_served`` answers (an override may still answer None), not by whether it
        is overridden."""
        into.mkdir()
        return cloud.fetch_served(endpoint, route, into) is not None

    @staticmethod
    def _refused_registers_nothing(
        platform: Platform, cloud: Any, endpoint: str, route: str, model: str
    ) -> None:
        """Files that cannot load as the flavor declared are refused before the cloud's
        registry is written to."""
        with pytest.raises(ValidationError, match="cannot adopt"):
            platform.migration.adopt_served(endpoint, route, model, reason="x", flavor="sklearn")
        try:
            held = cloud.list_versions(model)
        except NotFound:
            held = []
        assert held == []

    @staticmethod
    def _register_served_and_adopt(
        platform: Platform, cloud: Any, endpoint: str, route: str, model: str, files: Path
    ) -> None:
        adoption = platform.migration.adopt_served(
            endpoint, route, model, reason="deployed by hand before Mintaka"
        )
        [version] = adoption.adopted
        assert (version.name, version.version) == (model, 1)
        assert version.artifact_digest == manifest_of(files).digest
        [(subject, details)] = _audited(platform, "model.adopt")
        assert subject == f"{model}:1"
        assert details["registered_from"] == {"endpoint": endpoint, "route": route}

        again = platform.migration.adopt_served(endpoint, route, model, reason="a second look")
        assert (again.adopted, again.already_recorded) == ((), (1,))
        assert [v.version for v in cloud.list_versions(model)] == [1]
        with pytest.raises(Conflict):
            cloud.register_served(endpoint, route, f"{model}-other")

        endpoint_adoption = platform.migration.adopt_endpoint(endpoint, reason="serving before")
        assert endpoint_adoption.adopted
        recorded = platform.serving.get_endpoint(endpoint)
        assert [(r.name, r.model, r.version) for r in recorded.routes] == [(route, model, 1)]
        assert recorded.traffic.weights == {route: 100}
        assert platform.sync() == []

    @pytest.mark.requires(Capability.IDENTITY)
    def test_the_cloud_names_the_authenticated_caller(self, cloud: Any) -> None:
        """The backend MUST name the caller the cloud authenticated, marked as authenticated."""
        identity = cloud.whoami()
        assert identity.name
        assert identity.authenticated
