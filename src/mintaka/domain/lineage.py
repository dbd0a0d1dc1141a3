"""Lineage nodes and edges: from training data to model, deployment, prediction and decision."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from mintaka.domain.base import JSONDict, Record


class NodeKind(StrEnum):
    DATASET = "dataset"
    RUN = "run"
    MODEL_VERSION = "model_version"
    DEPLOYMENT = "deployment"
    PREDICTION = "prediction"
    PREDICTION_BATCH = "prediction_batch"
    DECISION = "decision"
    PIPELINE_RUN = "pipeline_run"
    GATE = "gate"


class EdgeKind(StrEnum):
    """How the source node feeds the destination node (edges point downstream)."""

    TRAINED_ON = "trained_on"  # dataset -> run
    PRODUCED = "produced"  # run -> model version
    DEPLOYED_AS = "deployed_as"  # model version -> deployment
    SERVED = "served"  # deployment -> prediction (batch)
    DECIDED = "decided"  # prediction -> decision
    DERIVED = "derived"  # dataset -> dataset, anything else upstream -> downstream


class LineageNode(Record):
    """A node in the lineage graph; ``key`` is the id of the record it stands for."""

    kind: NodeKind
    key: str = Field(min_length=1, max_length=512)
    label: str = ""
    attrs: JSONDict = Field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.kind.value}:{self.key}"


class LineageEdge(Record):
    src: str
    dst: str
    kind: EdgeKind


class LineageGraph(Record):
    """A sub-graph returned by a lineage query; hand it to networkx with :meth:`to_networkx`."""

    root: str
    nodes: tuple[LineageNode, ...] = ()
    edges: tuple[LineageEdge, ...] = ()

    def to_networkx(self):  # type: ignore[no-untyped-def]  # networkx ships no types
        import networkx as nx

        graph = nx.DiGraph()
        for node in self.nodes:
            graph.add_node(node.id, **{**node.attrs, "kind": node.kind.value, "label": node.label})
        for edge in self.edges:
            graph.add_edge(edge.src, edge.dst, kind=edge.kind.value)
        return graph

    def of_kind(self, kind: NodeKind) -> list[LineageNode]:
        return [node for node in self.nodes if node.kind is kind]
