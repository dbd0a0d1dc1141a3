"""Lineage pushed to SageMaker ML Lineage: what Mintaka records and what SageMaker holds agree,
node by node and edge by edge, and the entities are the ones SageMaker uses for each kind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from mintaka_sagemaker.backend import SageMakerBackend
from mintaka_sagemaker.lineage import ASSOCIATION_TYPES, LINEAGE_TYPES, context_name
from sagemaker_testkit import model_artifact

from mintaka import NotFound, Platform
from mintaka.domain.lineage import EdgeKind, LineageEdge, LineageGraph, LineageNode, NodeKind


@pytest.fixture
def recorded(platform: Platform, tmp_path: Path) -> LineageGraph:
    """dataset -> run -> churn:1 and churn:2 -> deployments on an endpoint, as core records it."""
    data = tmp_path / "train.csv"
    data.write_text("income,label\n0.3,1\n0.9,0\n")
    dataset = platform.register_dataset("applications", data)
    run = platform.start_run("churn", dataset_ids=[dataset.id])
    platform.end_run(run.id)
    platform.register_model("churn", model_artifact(tmp_path, b"v1"), run_id=run.id)
    platform.register_model("churn", model_artifact(tmp_path, b"v2"), run_id=run.id)
    platform.serving.create_endpoint("churn-live", "churn:1", route="blue")
    platform.serving.deploy("churn-live", "churn:2", route="green")
    graph = platform.lineage_downstream(dataset.id)
    assert {n.kind for n in graph.nodes} == {
        NodeKind.DATASET,
        NodeKind.RUN,
        NodeKind.MODEL_VERSION,
        NodeKind.DEPLOYMENT,
    }
    return graph


def _entities(sm: Any) -> dict[str, dict[str, Any]]:
    """Every lineage entity in SageMaker by its SourceUri, with its lineage type."""
    found: dict[str, dict[str, Any]] = {}
    for kind, call, key in (
        ("Artifact", "list_artifacts", "ArtifactSummaries"),
        ("Context", "list_contexts", "ContextSummaries"),
        ("Action", "list_actions", "ActionSummaries"),
    ):
        for page in sm.get_paginator(call).paginate():
            for item in page[key]:
                arn = item.get("ArtifactArn") or item.get("ContextArn") or item.get("ActionArn")
                found[item["Source"]["SourceUri"]] = {"arn": arn, "lineage_type": kind, **item}
    return found


def _associations(sm: Any) -> set[tuple[str, str, str]]:
    found = set()
    for page in sm.get_paginator("list_associations").paginate():
        for a in page["AssociationSummaries"]:
            found.add((a["SourceArn"], a["DestinationArn"], a["AssociationType"]))
    return found


def test_lineage_in_mintaka_and_in_sagemaker_agree(
    cloud: SageMakerBackend, sm: Any, recorded: LineageGraph
) -> None:
    cloud.push_lineage(list(recorded.nodes), list(recorded.edges))
    for node in recorded.nodes:
        mine = {e for e in recorded.edges if node.id in (e.src, e.dst)}
        assert set(cloud.read_lineage(node.id)) == mine, node.id
    # ... and SageMaker's own view, read with plain boto3, says the same.
    entities = _entities(sm)
    for node in recorded.nodes:
        entity = entities[f"mintaka:{node.id}"]
        assert entity["lineage_type"] == LINEAGE_TYPES[node.kind]
    by_arn = {e["arn"]: uri.removeprefix("mintaka:") for uri, e in entities.items()}
    in_sagemaker = {(by_arn[s], by_arn[d], t) for s, d, t in _associations(sm)}
    assert in_sagemaker == {(e.src, e.dst, ASSOCIATION_TYPES[e.kind]) for e in recorded.edges}
    version = next(n for n in recorded.nodes if n.kind is NodeKind.MODEL_VERSION)
    around = sm.query_lineage(
        StartArns=[entities[f"mintaka:{version.id}"]["arn"]], Direction="Both", MaxDepth=1
    )
    neighbours = {by_arn[v["Arn"]] for v in around["Vertices"]}
    assert neighbours == {version.id} | {
        e.src if e.dst == version.id else e.dst
        for e in recorded.edges
        if version.id in (e.src, e.dst)
    }


def test_every_node_kind_and_edge_kind_reads_back_exactly(cloud: SageMakerBackend) -> None:
    nodes = [
        LineageNode(kind=NodeKind.DATASET, key="raw"),
        LineageNode(kind=NodeKind.DATASET, key="clean"),
        LineageNode(kind=NodeKind.PIPELINE_RUN, key="pr-1"),
        LineageNode(kind=NodeKind.GATE, key="pr-1/evaluate"),
        LineageNode(kind=NodeKind.MODEL_VERSION, key="mv-1"),
        LineageNode(kind=NodeKind.PREDICTION, key="pred-1", label="churn-live -> churn:1"),
        LineageNode(kind=NodeKind.PREDICTION_BATCH, key="batch-1"),
        LineageNode(kind=NodeKind.DECISION, key="dec-1", label="decline"),
    ]
    edges = [
        LineageEdge(src="dataset:raw", dst="dataset:clean", kind=EdgeKind.DERIVED),
        LineageEdge(src="dataset:clean", dst="pipeline_run:pr-1", kind=EdgeKind.TRAINED_ON),
        LineageEdge(src="pipeline_run:pr-1", dst="gate:pr-1/evaluate", kind=EdgeKind.DERIVED),
        LineageEdge(src="pipeline_run:pr-1", dst="model_version:mv-1", kind=EdgeKind.PRODUCED),
        # a prediction served straight from a version (no deployment node): recorded explicitly
        LineageEdge(src="model_version:mv-1", dst="prediction:pred-1", kind=EdgeKind.SERVED),
        LineageEdge(src="model_version:mv-1", dst="prediction_batch:batch-1", kind=EdgeKind.SERVED),
        LineageEdge(src="prediction:pred-1", dst="decision:dec-1", kind=EdgeKind.DECIDED),
    ]
    cloud.push_lineage(nodes, edges)
    for node in nodes:
        assert set(cloud.read_lineage(node.id)) == {
            e for e in edges if node.id in (e.src, e.dst)
        }, node.id


def test_pushing_twice_creates_no_new_entity_or_association(
    cloud: SageMakerBackend, sm: Any, recorded: LineageGraph
) -> None:
    cloud.push_lineage(list(recorded.nodes), list(recorded.edges))
    entities, associations = _entities(sm), _associations(sm)
    cloud.push_lineage(list(recorded.nodes), list(recorded.edges))
    assert _entities(sm).keys() == entities.keys()
    assert _associations(sm) == associations


def test_an_edge_to_a_node_pushed_earlier_finds_its_entity(cloud: SageMakerBackend) -> None:
    cloud.push_lineage([LineageNode(kind=NodeKind.DATASET, key="d")], [])
    cloud.push_lineage(
        [LineageNode(kind=NodeKind.RUN, key="r")],
        [LineageEdge(src="dataset:d", dst="run:r", kind=EdgeKind.TRAINED_ON)],
    )
    assert cloud.read_lineage("dataset:d") == [
        LineageEdge(src="dataset:d", dst="run:r", kind=EdgeKind.TRAINED_ON)
    ]


def test_entities_mintaka_did_not_make_are_left_out(cloud: SageMakerBackend, sm: Any) -> None:
    cloud.push_lineage([LineageNode(kind=NodeKind.RUN, key="r")], [])
    other = sm.create_artifact(ArtifactType="Image", Source={"SourceUri": "ecr://image:1"})
    sm.add_association(
        SourceArn=other["ArtifactArn"],
        DestinationArn=sm.describe_context(ContextName=context_name("run:r"))["ContextArn"],
        AssociationType="ContributedTo",
    )
    assert cloud.read_lineage("run:r") == []


def test_a_node_never_pushed_is_not_found(cloud: SageMakerBackend) -> None:
    for node_id in ("run:never", "dataset:never", "decision:never", "no-kind"):
        with pytest.raises(NotFound):
            cloud.read_lineage(node_id)
