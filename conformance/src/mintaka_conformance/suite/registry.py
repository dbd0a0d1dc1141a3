"""Registry: models, numbered versions bound to their digest, aliases, tags, stages, approval."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mintaka import Capability, NotFound, Platform, Stage
from mintaka.artifacts import manifest_of
from mintaka.domain.registry import ApprovalStatus, VersionRequest
from mintaka.interfaces import StoreResidentRegistry
from mintaka_conformance.fixtures import AbstractBackendFixtures
from mintaka_conformance.scenarios import MakeArtifact, ModelScenario, Names


class AbstractRegistryTests(AbstractBackendFixtures):
    area = "registry"

    @pytest.fixture
    def version_request(
        self,
        platform: Platform,
        cloud: Any,
        names: Names,
        make_artifact: MakeArtifact,
    ) -> Callable[[bytes, str], VersionRequest]:
        """A request for a version of a new, empty model holding ``weights``, with ``key`` as both
        its Mintaka id and its idempotency key."""

        def build(weights: bytes, key: str) -> VersionRequest:
            name = names.model()
            stored = platform.artifacts.ingest(make_artifact(weights))
            cloud.ensure_model(name)
            return VersionRequest(
                name=name,
                artifact_path=str(stored.content),
                artifact_digest=stored.digest,
                mintaka_id=key,
                idempotency_key=key,
            )

        return build

    @pytest.mark.requires(Capability.REGISTRY)
    def test_versions_are_numbered_in_registration_order(
        self, cloud: Any, scenario: ModelScenario
    ) -> None:
        """The backend MUST number a model's versions 1, 2, 3 in registration order and list them
        ascending."""
        listed = cloud.list_versions(scenario.name)
        assert [v.version for v in listed] == [1, 2, 3]
        assert [v.version for v in scenario.versions] == [1, 2, 3]

    @pytest.mark.requires(Capability.REGISTRY)
    def test_a_version_reads_the_same_listed_or_fetched(
        self, cloud: Any, scenario: ModelScenario
    ) -> None:
        """The backend MUST report a version alike from ``list_versions`` and ``get_version``:
        sync and adoption read it one way or the other, and must see the same bytes, aliases,
        tags and origin (None here: Mintaka made these versions, not a job the cloud names)."""
        listed = cloud.list_versions(scenario.name)
        fetched = [cloud.get_version(scenario.name, v.version) for v in listed]
        assert listed == fetched
        assert {v.origin for v in listed} == {None}

    @pytest.mark.requires(Capability.REGISTRY)
    def test_version_reports_digest_and_mintaka_id(
        self, cloud: Any, scenario: ModelScenario
    ) -> None:
        """The backend MUST report each version with the artifact digest and Mintaka id it was
        created with."""
        for recorded in scenario.versions:
            seen = cloud.get_version(scenario.name, recorded.version)
            assert seen.name == scenario.name
            assert seen.version == recorded.version
            assert seen.artifact_digest == recorded.artifact_digest
            assert seen.mintaka_id == recorded.id

    @pytest.mark.requires(Capability.REGISTRY)
    def test_list_models_includes_registered_model(
        self, cloud: Any, scenario: ModelScenario
    ) -> None:
        """The backend MUST list every model registered through it exactly once."""
        assert cloud.list_models().count(scenario.name) == 1

    @pytest.mark.requires(Capability.REGISTRY)
    def test_ensure_model_is_idempotent(self, cloud: Any, names: Names) -> None:
        """The backend MUST treat creating an existing model as a no-op returning the same ids."""
        name = names.model()
        first = cloud.ensure_model(name, "a model")
        assert cloud.ensure_model(name, "a model") == first
        assert cloud.list_models().count(name) == 1
        assert cloud.list_versions(name) == []

    @pytest.mark.requires(Capability.REGISTRY)
    def test_create_version_is_idempotent_on_key(
        self, cloud: Any, version_request: Callable[[bytes, str], VersionRequest]
    ) -> None:
        """The backend MUST return the version created first when a create is retried with the same
        idempotency key."""
        request = version_request(b"retried weights", "mv-retry")
        first = cloud.create_version(request)
        again = cloud.create_version(request)
        assert again.version == first.version == 1
        assert [v.version for v in cloud.list_versions(request.name)] == [1]

    @pytest.mark.requires(Capability.REGISTRY)
    def test_version_created_in_the_store_transaction_commits_with_it(
        self,
        platform: Platform,
        cloud: Any,
        version_request: Callable[[bytes, str], VersionRequest],
    ) -> None:
        """The backend MUST create a version inside the caller's store transaction when its registry
        resides in the control-plane store: absent after a rollback, there once it commits, and
        idempotent on its key within it."""
        resident = cloud if isinstance(cloud, StoreResidentRegistry) else None
        if resident is None or not resident.resides_in(platform.store.url):
            pytest.skip(f"backend '{cloud.name}' keeps its registry outside the store")
        request = version_request(b"weights in the store", "mv-in-store")

        class RolledBack(Exception):
            pass

        def abandoned() -> None:
            with platform.store.write() as conn:
                assert resident.create_version_in(conn, request).version == 1
                raise RolledBack

        with pytest.raises(RolledBack):
            abandoned()
        assert cloud.list_versions(request.name) == []
        with platform.store.write() as conn:
            first = resident.create_version_in(conn, request)
            again = resident.create_version_in(conn, request)
        assert again.version == first.version == 1
        assert [v.mintaka_id for v in cloud.list_versions(request.name)] == ["mv-in-store"]

    @pytest.mark.requires(Capability.REGISTRY)
    def test_get_missing_version_raises_not_found(
        self, cloud: Any, scenario: ModelScenario
    ) -> None:
        """The backend MUST raise NotFound for a version number the model does not have."""
        with pytest.raises(NotFound):
            cloud.get_version(scenario.name, 99)

    @pytest.mark.requires(Capability.REGISTRY_ALIASES)
    def test_aliases_point_at_versions(self, cloud: Any, scenario: ModelScenario) -> None:
        """The backend MUST report each alias on the version it was set to, and only there."""
        assert cloud.get_aliases(scenario.name) == {"champion": 2, "challenger": 3}
        assert cloud.get_version(scenario.name, 2).aliases == ("champion",)
        assert cloud.get_version(scenario.name, 3).aliases == ("challenger",)
        assert cloud.get_version(scenario.name, 1).aliases == ()

    @pytest.mark.requires(Capability.REGISTRY_ALIASES)
    def test_alias_moves_between_versions(
        self, platform: Platform, cloud: Any, scenario: ModelScenario
    ) -> None:
        """The backend MUST move an existing alias to the new version, leaving it on no other."""
        platform.set_alias(scenario.name, "champion", 3)
        assert cloud.get_aliases(scenario.name)["champion"] == 3
        assert "champion" not in cloud.get_version(scenario.name, 2).aliases
        assert platform.get_model_version(scenario.name, alias="champion").version == 3

    @pytest.mark.requires(Capability.REGISTRY_ALIASES)
    def test_deleted_alias_is_gone(
        self, platform: Platform, cloud: Any, scenario: ModelScenario
    ) -> None:
        """The backend MUST forget a deleted alias while keeping the others."""
        platform.delete_alias(scenario.name, "challenger")
        assert cloud.get_aliases(scenario.name) == {"champion": 2}
        with pytest.raises(NotFound):
            platform.get_model_version(scenario.name, alias="challenger")

    @pytest.mark.requires(Capability.REGISTRY_ALIASES)
    def test_alias_on_missing_version_raises_not_found(
        self, cloud: Any, scenario: ModelScenario
    ) -> None:
        """The backend MUST refuse with NotFound to point an alias at a version that does not
        exist."""
        with pytest.raises(NotFound):
            cloud.set_alias(scenario.name, "ghost", 99)
        assert "ghost" not in cloud.get_aliases(scenario.name)

    @pytest.mark.requires(Capability.REGISTRY_ALIASES)
    def test_archiving_removes_aliases_in_the_cloud(
        self, platform: Platform, cloud: Any, scenario: ModelScenario
    ) -> None:
        """The backend MUST drop the aliases of a version that Mintaka archives."""
        platform.archive_version(scenario.name, 2, reason="superseded")
        assert "champion" not in cloud.get_aliases(scenario.name)

    @pytest.mark.requires(Capability.REGISTRY_TAGS)
    def test_registration_tags_reach_the_cloud(self, cloud: Any, scenario: ModelScenario) -> None:
        """The backend MUST store the tags given at registration on that version, and report no
        others."""
        for number in (1, 2, 3):
            assert cloud.get_version(scenario.name, number).tags == scenario.tags.get(number, {})

    @pytest.mark.requires(Capability.REGISTRY_TAGS)
    def test_set_tags_overwrites_and_adds(
        self, platform: Platform, cloud: Any, scenario: ModelScenario
    ) -> None:
        """The backend MUST overwrite a tag set again and add new ones, leaving other versions
        alone."""
        platform.set_tags(scenario.name, 1, {"team": "fraud", "reviewed": "yes"})
        assert cloud.get_version(scenario.name, 1).tags == {"team": "fraud", "reviewed": "yes"}
        assert cloud.get_version(scenario.name, 2).tags == scenario.tags[2]

    @pytest.mark.requires(Capability.REGISTRY_TAGS)
    def test_delete_tag_removes_only_that_key(self, cloud: Any, scenario: ModelScenario) -> None:
        """The backend MUST remove a deleted tag key and keep the version's other tags."""
        cloud.delete_tag(scenario.name, 2, "note")
        assert cloud.get_version(scenario.name, 2).tags == {"team": "risk"}

    @pytest.mark.requires(Capability.REGISTRY_STAGES)
    def test_stage_is_projected(
        self, platform: Platform, cloud: Any, scenario: ModelScenario
    ) -> None:
        """The backend MUST report the lifecycle stage that Mintaka set on a version."""
        platform.set_stage(scenario.name, 2, Stage.PRODUCTION)
        assert cloud.get_version(scenario.name, 2).stage is Stage.PRODUCTION
        platform.set_stage(scenario.name, 2, Stage.STAGING)
        assert cloud.get_version(scenario.name, 2).stage is Stage.STAGING

    @pytest.mark.requires(Capability.REGISTRY_APPROVAL)
    def test_approval_is_projected(self, cloud: Any, scenario: ModelScenario) -> None:
        """The backend MUST report the approval status last projected onto a version."""
        cloud.set_approval(scenario.name, 1, ApprovalStatus.APPROVED)
        assert cloud.get_version(scenario.name, 1).approval is ApprovalStatus.APPROVED
        cloud.set_approval(scenario.name, 1, ApprovalStatus.REJECTED)
        assert cloud.get_version(scenario.name, 1).approval is ApprovalStatus.REJECTED

    @pytest.mark.requires(Capability.REGISTRY_FETCH)
    def test_fetched_bytes_digest_to_the_registered_digest(
        self, cloud: Any, scenario: ModelScenario, tmp_path: Path
    ) -> None:
        """The backend MUST read a version's model files back, inside the directory it is given,
        so that they digest to what the version was registered with."""
        for number, recorded in enumerate(scenario.versions, start=1):
            into = tmp_path / f"fetched-{number}"
            into.mkdir()
            path = cloud.fetch_artifact(scenario.name, recorded.version, into)
            assert path.resolve().is_relative_to(into.resolve())
            assert manifest_of(path).digest == recorded.artifact_digest

    @pytest.mark.requires(Capability.REGISTRY_FETCH)
    def test_fetching_a_missing_version_is_not_found(
        self, cloud: Any, scenario: ModelScenario, tmp_path: Path
    ) -> None:
        """The backend MUST raise NotFound for the bytes of a version it does not have."""
        with pytest.raises(NotFound):
            cloud.fetch_artifact(scenario.name, 99, tmp_path)

    @pytest.mark.requires(Capability.REGISTRY_DELETE)
    def test_deleted_version_is_gone_and_others_keep_numbers(
        self, cloud: Any, scenario: ModelScenario
    ) -> None:
        """The backend MUST forget a deleted version and keep the numbers of the remaining ones."""
        cloud.delete_version(scenario.name, 1)
        with pytest.raises(NotFound):
            cloud.get_version(scenario.name, 1)
        assert [v.version for v in cloud.list_versions(scenario.name)] == [2, 3]

    @pytest.mark.requires(Capability.REGISTRY_DELETE, Capability.REGISTRY_ALIASES)
    def test_deleting_a_version_drops_its_aliases(
        self, cloud: Any, scenario: ModelScenario
    ) -> None:
        """The backend MUST drop the aliases of a version it deletes."""
        cloud.delete_version(scenario.name, 2)
        assert cloud.get_aliases(scenario.name) == {"challenger": 3}
