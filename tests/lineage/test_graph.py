from __future__ import annotations

import itertools
import random
import re
from pathlib import Path

import networkx as nx
import pytest
from sqlalchemy import text
from sqlalchemy.dialects import postgresql

from mintaka.domain.lineage import EdgeKind, LineageEdge, LineageNode, NodeKind
from mintaka.errors import NotFound
from mintaka.lineage import LineageStore
from mintaka.lineage import graph as lineage_graph
from mintaka.store import Store
from mintaka.store.engine import Sql

KINDS = [NodeKind.DATASET, NodeKind.RUN, NodeKind.MODEL_VERSION, NodeKind.DEPLOYMENT]


@pytest.fixture
def lineage(tmp_path: Path) -> LineageStore:
    return LineageStore(Store(f"sqlite:///{tmp_path / 'store.db'}"))


def _reach(lineage: LineageStore) -> set[tuple[int, int]]:
    with lineage.store.read() as conn:
        return {(int(s), int(d)) for s, d in Sql(conn).rows("SELECT src, dst FROM lineage_reach")}


def _layered_graph(seed: int) -> tuple[list[LineageNode], list[LineageEdge]]:
    """Datasets -> runs -> versions -> deployments, plus dataset -> dataset derivations."""
    rng = random.Random(seed)
    layers = [
        [LineageNode(kind=kind, key=f"{kind.value}-{i}") for i in range(rng.randint(2, 5))]
        for kind in KINDS
    ]
    edges = [
        LineageEdge(src=rng.choice(upper).id, dst=node.id, kind=EdgeKind.DERIVED)
        for upper, lower in itertools.pairwise(layers)
        for node in lower
        for _ in range(rng.randint(1, 2))
    ]
    edges.append(LineageEdge(src=layers[0][0].id, dst=layers[0][1].id, kind=EdgeKind.DERIVED))
    unique = list({(e.src, e.dst): e for e in edges}.values())
    return [node for layer in layers for node in layer], unique


@pytest.mark.parametrize("seed", range(8))
def test_reach_index_equals_a_rebuild_whatever_order_and_batches_edges_arrive_in(
    lineage: LineageStore, seed: int
) -> None:
    nodes, edges = _layered_graph(seed)
    rng = random.Random(seed)
    rng.shuffle(edges)
    with lineage.store.write() as conn:
        lineage.add(conn, nodes, [])
    start = 0
    while start < len(edges):  # batches of 1-4 edges, in shuffled order
        size = rng.randint(1, 4)
        with lineage.store.write() as conn:
            lineage.add(conn, [], edges[start : start + size])
        start += size
    incremental = _reach(lineage)
    with lineage.store.write() as conn:
        lineage.reindex(conn)
    assert incremental == _reach(lineage)
    assert incremental  # the graph has deployments below its datasets

    graph = nx.DiGraph([(e.src, e.dst) for e in edges])
    graph.add_nodes_from(n.id for n in nodes)
    for node in nodes:
        if node.kind is NodeKind.DATASET:
            expected = {
                n.split(":", 1)[1]
                for n in nx.descendants(graph, node.id)
                if n.startswith("deployment:")
            }
            assert set(lineage.descendants(node.id, NodeKind.DEPLOYMENT)) == expected


def test_edges_given_before_their_deployment_edge_still_reach_it(lineage: LineageStore) -> None:
    data, run, version, deployment = (LineageNode(kind=k, key="x") for k in KINDS)
    with lineage.store.write() as conn:
        lineage.add(
            conn,
            [data, run, version, deployment],
            [
                LineageEdge(src=version.id, dst=deployment.id, kind=EdgeKind.DEPLOYED_AS),
                LineageEdge(src=run.id, dst=version.id, kind=EdgeKind.PRODUCED),
                LineageEdge(src=data.id, dst=run.id, kind=EdgeKind.TRAINED_ON),
            ],
        )
    assert lineage.descendants(data.id, NodeKind.DEPLOYMENT) == ["x"]


def test_adding_the_same_nodes_and_edges_twice_changes_nothing(lineage: LineageStore) -> None:
    nodes, edges = _layered_graph(1)
    for _ in range(2):
        with lineage.store.write() as conn:
            lineage.add(conn, nodes, edges)
    with lineage.store.read() as conn:
        sql = Sql(conn)
        assert sql.one("SELECT count(*) FROM lineage_nodes") == (len(nodes),)
        assert sql.one("SELECT count(*) FROM lineage_edges") == (len(edges),)


def test_an_edge_to_an_unknown_node_is_refused_and_nothing_is_written(
    lineage: LineageStore,
) -> None:
    known = LineageNode(kind=NodeKind.DATASET, key="d")
    with (
        pytest.raises(NotFound, match=r"unknown node\(s\): model_version:m, run:r$"),
        lineage.store.write() as conn,
    ):
        lineage.add(
            conn,
            [known],
            [
                LineageEdge(src=known.id, dst="run:r", kind=EdgeKind.TRAINED_ON),
                LineageEdge(src="run:r", dst="model_version:m", kind=EdgeKind.PRODUCED),
            ],
        )
    with lineage.store.read() as conn:
        assert Sql(conn).one("SELECT count(*) FROM lineage_nodes") == (0,)


def test_node_ids_are_found_across_kinds_beyond_one_statements_parameter_budget(
    lineage: LineageStore,
) -> None:
    datasets = [LineageNode(kind=NodeKind.DATASET, key=f"d{i}") for i in range(700)]
    run = LineageNode(kind=NodeKind.RUN, key="r")
    edges = [LineageEdge(src=d.id, dst=run.id, kind=EdgeKind.TRAINED_ON) for d in datasets]
    with lineage.store.write() as conn:
        lineage.add(conn, [*datasets, run], edges)
    assert len(lineage.ancestors(run.id, NodeKind.DATASET)) == 700


@pytest.mark.parametrize(
    "query", [*lineage_graph._WALKS.values(), lineage_graph._UPSTREAM], ids=["down", "up", "index"]
)
def test_every_recursive_walk_casts_its_anchor_to_the_id_type(query: str) -> None:
    # PostgreSQL types a bare bound anchor from its value (smallint) and then refuses the UNION
    # with the integer edge columns; the walk must say the type itself.
    compiled = str(text(query).compile(dialect=postgresql.dialect()))
    anchors = re.findall(r"RECURSIVE \w+\(id\) AS \(SELECT (.+?) UNION", compiled)
    assert anchors == ["CAST(%(start)s AS INTEGER)"]
