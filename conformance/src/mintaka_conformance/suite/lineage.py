"""Lineage: dataset -> run -> version as core records it, and lineage pushed to the cloud."""

from __future__ import annotations

from typing import Any

import pytest

from mintaka import Capability, NodeKind, Platform
from mintaka.domain.lineage import EdgeKind
from mintaka_conformance.fixtures import AbstractBackendFixtures
from mintaka_conformance.scenarios import ModelScenario


class AbstractLineageTests(AbstractBackendFixtures):
    area = "lineage"

    def test_upstream_of_a_version_reaches_its_data(
        self, platform: Platform, scenario: ModelScenario
    ) -> None:
        """The backend MUST let core trace a version back through its run to its training data."""
        graph = platform.lineage_upstream(f"{scenario.name}:1")
        version = f"model_version:{scenario.version(1).id}"
        run = f"run:{scenario.run.id}"
        dataset = f"dataset:{scenario.dataset.id}"
        edges = {(e.src, e.dst, e.kind) for e in graph.edges}
        assert (run, version, EdgeKind.PRODUCED) in edges
        assert (dataset, run, EdgeKind.TRAINED_ON) in edges
        assert [n.key for n in graph.of_kind(NodeKind.DATASET)] == [scenario.dataset.id]

    def test_downstream_of_a_dataset_reaches_the_version(
        self, platform: Platform, scenario: ModelScenario
    ) -> None:
        """The backend MUST let core find every version trained on a dataset."""
        graph = platform.lineage_downstream(scenario.dataset.id)
        keys = {n.key for n in graph.of_kind(NodeKind.MODEL_VERSION)}
        assert keys == {scenario.version(1).id}
        assert {n.key for n in graph.of_kind(NodeKind.RUN)} == {scenario.run.id}

    @pytest.mark.requires(Capability.REGISTRY_ALIASES)
    def test_lineage_resolves_an_alias(self, platform: Platform, scenario: ModelScenario) -> None:
        """The backend MUST let core resolve lineage of NAME@ALIAS to the aliased version."""
        platform.set_alias(scenario.name, "champion", 1)
        graph = platform.lineage_upstream(f"{scenario.name}@champion")
        assert graph.root == f"model_version:{scenario.version(1).id}"

    @pytest.mark.requires(Capability.LINEAGE_METADATA)
    def test_pushed_lineage_reads_back(
        self, platform: Platform, cloud: Any, scenario: ModelScenario
    ) -> None:
        """The backend MUST read back from the cloud every lineage edge pushed to it."""
        graph = platform.lineage_upstream(f"{scenario.name}:1")
        cloud.push_lineage(list(graph.nodes), list(graph.edges))
        run = f"run:{scenario.run.id}"
        seen = {(e.src, e.dst, e.kind) for e in cloud.read_lineage(run)}
        assert seen == {(e.src, e.dst, e.kind) for e in graph.edges if run in (e.src, e.dst)}

    @pytest.mark.requires(Capability.LINEAGE_METADATA)
    def test_pushing_lineage_twice_creates_nothing_new(
        self, platform: Platform, cloud: Any, scenario: ModelScenario
    ) -> None:
        """The backend MUST treat pushing the same lineage twice as one push."""
        graph = platform.lineage_upstream(f"{scenario.name}:1")
        cloud.push_lineage(list(graph.nodes), list(graph.edges))
        once = sorted(cloud.read_lineage(f"run:{scenario.run.id}"), key=repr)
        cloud.push_lineage(list(graph.nodes), list(graph.edges))
        assert sorted(cloud.read_lineage(f"run:{scenario.run.id}"), key=repr) == once
