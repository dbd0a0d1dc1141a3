"""Installed backends declare at least what their cloud can do."""

from __future__ import annotations

import pytest
from mintaka_conformance.expected import EXPECTED, Expectation, shortfall

from mintaka import Backend, Capability
from mintaka.plugins import PluginManager

INSTALLED = {entry.name: entry.cls for entry in PluginManager().backends()}


@pytest.mark.parametrize("name", sorted(set(INSTALLED) & set(EXPECTED)))
def test_installed_backend_declares_what_its_cloud_can_do(name: str) -> None:
    assert shortfall(INSTALLED[name]) == []


def test_the_five_targets_are_written_down() -> None:
    assert set(EXPECTED) == {"local", "sagemaker", "vertex", "azureml", "databricks"}
    for expectation in EXPECTED.values():
        assert not expectation.native & expectation.emulated


def test_shortfall_names_a_missing_and_a_downgraded_capability() -> None:
    class Lazy(Backend):
        name = "vertex"
        capabilities = frozenset({Capability.REGISTRY})
        emulated = {}

    assert "registry.aliases: the cloud can do it, the backend does not declare it" in (
        shortfall(Lazy)
    )
    assert isinstance(EXPECTED["vertex"], Expectation)

    class Downgraded(Backend):
        name = "vertex"
        capabilities = EXPECTED["vertex"].all
        emulated = {Capability.REGISTRY_ALIASES: object()}  # type: ignore[dict-item]

    assert shortfall(Downgraded) == ["registry.aliases: native in the cloud, declared as emulated"]
