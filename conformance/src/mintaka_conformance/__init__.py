"""The Mintaka conformance suite: abstract tests every backend runs against itself.

A backend opts in from one test file::

    import pytest
    from mintaka_conformance import AbstractBackendFixtures, AbstractRegistryTests, BackendUnderTest

    class MyFixtures(AbstractBackendFixtures):
        @pytest.fixture
        def backend(self):
            return BackendUnderTest(MyBackend, {"region": "eu-west-1"})

    class TestMyRegistry(MyFixtures, AbstractRegistryTests): ...

Names are imported lazily: the pytest plugin loads in every pytest run of an environment where
this distribution is installed, and must not import Mintaka until a conformance test needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mintaka_conformance.fixtures import (
        AbstractBackendFixtures,
        BackendOutOfBand,
        BackendUnderTest,
        OutOfBand,
        SendTraffic,
        Traffic,
    )
    from mintaka_conformance.scenarios import ModelScenario, Names
    from mintaka_conformance.suite import (
        AbstractErrorContractTests,
        AbstractLineageTests,
        AbstractMonitoringTests,
        AbstractPipelineTests,
        AbstractRegistryTests,
        AbstractRunTests,
        AbstractServingTests,
        AbstractSyncTests,
    )

_WHERE = {
    "AbstractBackendFixtures": "mintaka_conformance.fixtures",
    "BackendOutOfBand": "mintaka_conformance.fixtures",
    "BackendUnderTest": "mintaka_conformance.fixtures",
    "OutOfBand": "mintaka_conformance.fixtures",
    "SendTraffic": "mintaka_conformance.fixtures",
    "Traffic": "mintaka_conformance.fixtures",
    "ModelScenario": "mintaka_conformance.scenarios",
    "Names": "mintaka_conformance.scenarios",
    "AbstractErrorContractTests": "mintaka_conformance.suite",
    "AbstractLineageTests": "mintaka_conformance.suite",
    "AbstractMonitoringTests": "mintaka_conformance.suite",
    "AbstractPipelineTests": "mintaka_conformance.suite",
    "AbstractRegistryTests": "mintaka_conformance.suite",
    "AbstractRunTests": "mintaka_conformance.suite",
    "AbstractServingTests": "mintaka_conformance.suite",
    "AbstractSyncTests": "mintaka_conformance.suite",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'mintaka_conformance' has no attribute {name!r}")


__all__ = [
    "AbstractBackendFixtures",
    "AbstractErrorContractTests",
    "AbstractLineageTests",
    "AbstractMonitoringTests",
    "AbstractPipelineTests",
    "AbstractRegistryTests",
    "AbstractRunTests",
    "AbstractServingTests",
    "AbstractSyncTests",
    "BackendOutOfBand",
    "BackendUnderTest",
    "ModelScenario",
    "Names",
    "OutOfBand",
    "SendTraffic",
    "Traffic",
]
