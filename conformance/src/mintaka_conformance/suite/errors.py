"""The error contract: the same error for the same mistake everywhere, and no silent no-ops."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mintaka import (
    Capability,
    Conflict,
    InvalidName,
    MintakaError,
    NotFound,
    Platform,
    UnsupportedCapability,
)
from mintaka.interfaces import CAPABILITY_INTERFACES
from mintaka_conformance.fixtures import AbstractBackendFixtures, BackendUnderTest, lacks_reason
from mintaka_conformance.scenarios import MakeArtifact, Names
from mintaka_conformance.spy import BackendSpy

# Each operation passes a name that every cloud would refuse; core must refuse it first.
INVALID_NAME_CALLS: dict[str, Callable[[Platform, str, Path], Any]] = {
    "create_model": lambda p, ok, art: p.create_model("Credit_Model"),
    "register_model": lambda p, ok, art: p.register_model("-credit", art),
    "get_model_version": lambda p, ok, art: p.get_model_version("CREDIT", 1),
    "get_model_version_ref": lambda p, ok, art: p.get_model_version(f"{ok}@Champion"),
    "list_versions": lambda p, ok, art: p.list_versions("m" * 64),
    "set_alias_reserved": lambda p, ok, art: p.set_alias(ok, "latest", 1),
    "set_alias_invalid": lambda p, ok, art: p.set_alias(ok, "champion!", 1),
    "delete_alias": lambda p, ok, art: p.delete_alias(ok, "Champion"),
    "set_tags": lambda p, ok, art: p.set_tags(ok, 1, {"bad key": "value"}),
    "set_stage": lambda p, ok, art: p.set_stage("bad name", 1, "production"),
    "archive_version": lambda p, ok, art: p.archive_version("a--b", 1),
    "adopt_served": lambda p, ok, art: p.migration.adopt_served(
        "legacy-api", "alltraffic", "Churn_Model", reason="inherited"
    ),
}


# The public Platform operation that needs each capability. Where core has no public operation for
# a capability yet, the check goes through core's dispatch gate, the path every operation takes.
PLATFORM_CALLS: dict[Capability, Callable[[Platform, Callable[[], str]], Any]] = {
    Capability.REGISTRY: lambda p, model: p.create_model("never-created"),
    Capability.REGISTRY_ALIASES: lambda p, model: p.set_alias(model(), "champion", 1),
    Capability.REGISTRY_TAGS: lambda p, model: p.set_tags(model(), 1, {"team": "risk"}),
    Capability.REGISTRY_STAGES: lambda p, model: p.set_stage(model(), 1, "staging"),
    Capability.SYNC: lambda p, model: p.sync(),
    Capability.REGISTRY_FROM_SERVING: lambda p, model: p.migration.adopt_served(
        "legacy-api", "alltraffic", model(), reason="inherited"
    ),
}
NEEDS_A_VERSION = frozenset(
    {Capability.REGISTRY_ALIASES, Capability.REGISTRY_TAGS, Capability.REGISTRY_STAGES}
)


def _through_dispatch_gate(capability: Capability) -> Callable[[Platform, Callable[[], str]], Any]:
    def call(platform: Platform, model: Callable[[], str]) -> Any:
        return platform._area(capability, CAPABILITY_INTERFACES[capability])

    return call


class AbstractErrorContractTests(AbstractBackendFixtures):
    area = "errors"

    def test_missing_model_is_not_found(self, platform: Platform, names: Names) -> None:
        """The backend MUST surface a missing model as NotFound, which is a LookupError."""
        missing = names.model("missing")
        for call in (
            lambda: platform.get_model(missing),
            lambda: platform.get_model_version(missing),
            lambda: platform.get_model_version(missing, 1),
            lambda: platform.list_versions(missing),
        ):
            with pytest.raises(NotFound) as caught:
                call()
            assert isinstance(caught.value, LookupError)

    @pytest.mark.requires(Capability.REGISTRY)
    def test_missing_model_in_the_cloud_is_not_found(self, cloud: Any, names: Names) -> None:
        """The backend MUST translate the cloud's own "no such model" error into NotFound."""
        missing = names.model("missing")
        calls: tuple[Callable[[], object], ...] = (
            lambda: cloud.list_versions(missing),
            lambda: cloud.get_version(missing, 1),
        )
        for call in calls:
            with pytest.raises(NotFound) as caught:
                call()
            assert isinstance(caught.value, MintakaError)

    @pytest.mark.requires(Capability.SYNC)
    def test_observing_a_missing_model_is_not_found(self, cloud: Any, names: Names) -> None:
        """The backend MUST raise NotFound when asked to observe a model the cloud does not have."""
        with pytest.raises(NotFound):
            cloud.observe_model(names.model("missing"))

    @pytest.mark.requires(Capability.REGISTRY)
    def test_creating_a_model_twice_conflicts(self, platform: Platform, names: Names) -> None:
        """The backend MUST end a second create of the same model in Conflict, keeping the first."""
        name = names.model()
        first = platform.create_model(name, owner="risk-team")
        with pytest.raises(Conflict):
            platform.create_model(name, owner="someone-else")
        assert platform.get_model(name) == first

    @pytest.mark.requires(Capability.REGISTRY)
    def test_registering_the_same_bytes_twice_conflicts(
        self, platform: Platform, cloud: Any, names: Names, make_artifact: MakeArtifact
    ) -> None:
        """The backend MUST end registering the same bytes twice for one model in Conflict,
        creating nothing."""
        name = names.model()
        platform.register_model(name, make_artifact(b"same bytes"))
        with pytest.raises(Conflict):
            platform.register_model(name, make_artifact(b"same bytes"))
        assert [v.version for v in cloud.list_versions(name)] == [1]

    @pytest.mark.parametrize("operation", sorted(INVALID_NAME_CALLS))
    def test_invalid_name_is_refused_before_any_backend_call(
        self,
        operation: str,
        platform: Platform,
        spy: BackendSpy,
        names: Names,
        make_artifact: MakeArtifact,
    ) -> None:
        """The backend MUST never be called with a name that core refuses as InvalidName."""
        with pytest.raises(InvalidName):
            INVALID_NAME_CALLS[operation](platform, names.model(), make_artifact(b"bytes"))
        assert spy.called == []

    @pytest.mark.parametrize("capability", list(Capability), ids=[c.value for c in Capability])
    def test_missing_capability_is_refused_not_ignored(
        self,
        capability: Capability,
        backend: BackendUnderTest,
        platform: Platform,
        names: Names,
        make_artifact: MakeArtifact,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """The backend MUST lack a capability only so that core refuses it with
        UnsupportedCapability, before any call."""
        if not backend.lacks(capability):
            pytest.skip(f"backend '{backend.name}' declares capability '{capability.value}'")
        if capability in NEEDS_A_VERSION and backend.lacks(Capability.REGISTRY):
            pytest.skip(lacks_reason(backend.name, Capability.REGISTRY))
        call = PLATFORM_CALLS.get(capability) or _through_dispatch_gate(capability)
        model = names.model()
        if capability in NEEDS_A_VERSION:
            platform.register_model(model, make_artifact(b"bytes " + model.encode()))
        before = platform.verify_audit().events
        spy = BackendSpy.install(platform.backend, monkeypatch)
        with pytest.raises(UnsupportedCapability) as caught:
            call(platform, lambda: model)
        assert (caught.value.backend, caught.value.capability) == (backend.name, capability.value)
        assert str(caught.value).startswith(lacks_reason(backend.name, capability))
        assert spy.called == []
        assert platform.verify_audit().events == before

    def test_declarations_are_consistent(self, backend: BackendUnderTest) -> None:
        """The backend MUST declare an emulation, with how it works and its limits, only for
        declared capabilities."""
        cls = backend.cls
        assert set(cls.emulated) <= set(cls.capabilities)
        for capability, emulation in cls.emulated.items():
            assert emulation.how.strip(), f"{capability}: say how it is emulated"
            assert emulation.limits.strip(), f"{capability}: say what the emulation cannot cover"
