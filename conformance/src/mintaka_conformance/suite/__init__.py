"""The conformance suite, one ``Abstract<Area>Tests`` class per area.

The modules are not named ``test_*``: pytest collects them only where a backend subclasses them.
"""

from __future__ import annotations

from mintaka_conformance.suite.errors import AbstractErrorContractTests
from mintaka_conformance.suite.lineage import AbstractLineageTests
from mintaka_conformance.suite.monitoring import AbstractMonitoringTests
from mintaka_conformance.suite.pipelines import AbstractPipelineTests
from mintaka_conformance.suite.registry import AbstractRegistryTests
from mintaka_conformance.suite.runs import AbstractRunTests
from mintaka_conformance.suite.serving import AbstractServingTests
from mintaka_conformance.suite.sync import AbstractSyncTests

AREAS: tuple[type, ...] = (
    AbstractRegistryTests,
    AbstractRunTests,
    AbstractLineageTests,
    AbstractServingTests,
    AbstractPipelineTests,
    AbstractMonitoringTests,
    AbstractSyncTests,
    AbstractErrorContractTests,
)

__all__ = [
    "AREAS",
    "AbstractErrorContractTests",
    "AbstractLineageTests",
    "AbstractMonitoringTests",
    "AbstractPipelineTests",
    "AbstractRegistryTests",
    "AbstractRunTests",
    "AbstractServingTests",
    "AbstractSyncTests",
]
