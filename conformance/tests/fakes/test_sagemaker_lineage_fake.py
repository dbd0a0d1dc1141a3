"""SageMaker ML Lineage in the moto extension: artifacts, contexts, actions, associations and
QueryLineage, answered as the API reference describes."""

from __future__ import annotations

import pytest

pytest.importorskip("moto")

from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError
from mintaka_conformance.fakes.sagemaker import SageMakerFake, make_client, mock_sagemaker


@pytest.fixture
def fake() -> Iterator[SageMakerFake]:
    with mock_sagemaker() as handle:
        yield handle


@pytest.fixture
def sm(fake: SageMakerFake) -> Any:
    return make_client("sagemaker")


def _code(info: pytest.ExceptionInfo[ClientError]) -> str:
    return str(info.value.response["Error"]["Code"])


def _chain(sm: Any) -> dict[str, str]:
    """data (artifact) -> training (context) -> model (artifact) -> deploy (action)."""
    arns = {
        "data": sm.create_artifact(
            ArtifactName="data", ArtifactType="DataSet", Source={"SourceUri": "s3://d/train.csv"}
        )["ArtifactArn"],
        "training": sm.create_context(
            ContextName="training", ContextType="run", Source={"SourceUri": "runs/1"}
        )["ContextArn"],
        "model": sm.create_artifact(
            ArtifactType="Model",
            Source={"SourceUri": "s3://m/model.tar.gz"},
            Properties={"framework": "sklearn"},
        )["ArtifactArn"],
        "deploy": sm.create_action(
            ActionName="deploy",
            ActionType="ModelDeployment",
            Source={"SourceUri": "endpoints/churn"},
            Status="Completed",
        )["ActionArn"],
    }
    for src, dst, kind in (
        ("data", "training", "ContributedTo"),
        ("training", "model", "Produced"),
        ("model", "deploy", "AssociatedWith"),
    ):
        sm.add_association(SourceArn=arns[src], DestinationArn=arns[dst], AssociationType=kind)
    return arns


def test_entities_are_created_described_and_named_as_aws_does(sm: Any) -> None:
    arns = _chain(sm)
    assert arns["training"] == "arn:aws:sagemaker:us-east-1:123456789012:context/training"
    assert arns["deploy"] == "arn:aws:sagemaker:us-east-1:123456789012:action/deploy"
    assert arns["model"].startswith("arn:aws:sagemaker:us-east-1:123456789012:artifact/")
    context = sm.describe_context(ContextName="training")
    assert (context["ContextType"], context["Source"]["SourceUri"]) == ("run", "runs/1")
    action = sm.describe_action(ActionName="deploy")
    assert (action["ActionType"], action["Status"]) == ("ModelDeployment", "Completed")
    model = sm.describe_artifact(ArtifactArn=arns["model"])
    assert (model["ArtifactType"], model["Properties"]) == ("Model", {"framework": "sklearn"})
    assert "ArtifactName" not in model


def test_duplicate_names_are_refused_and_missing_entities_not_found(sm: Any) -> None:
    _chain(sm)
    for call, kwargs in (
        (sm.create_context, {"ContextName": "training", "ContextType": "run"}),
        (sm.create_action, {"ActionName": "deploy", "ActionType": "ModelDeployment"}),
        (sm.create_artifact, {"ArtifactName": "data", "ArtifactType": "DataSet"}),
    ):
        with pytest.raises(ClientError) as info:
            call(Source={"SourceUri": "x"}, **kwargs)
        assert _code(info) == "ValidationException"
        assert "already exists" in info.value.response["Error"]["Message"]
    missing = "arn:aws:sagemaker:us-east-1:123456789012:artifact/0000"
    for call, kwargs in (
        (sm.describe_context, {"ContextName": "nope"}),
        (sm.describe_action, {"ActionName": "nope"}),
        (sm.describe_artifact, {"ArtifactArn": missing}),
    ):
        with pytest.raises(ClientError) as info:
            call(**kwargs)
        assert _code(info) == "ResourceNotFound"


def test_update_merges_properties_and_removes_the_ones_named(sm: Any) -> None:
    _chain(sm)
    sm.update_context(ContextName="training", Properties={"a": "1", "b": "2"})
    sm.update_context(ContextName="training", Properties={"b": "3"}, PropertiesToRemove=["a"])
    assert sm.describe_context(ContextName="training")["Properties"] == {"b": "3"}
    sm.update_action(ActionName="deploy", Status="Failed")
    assert sm.describe_action(ActionName="deploy")["Status"] == "Failed"
    with pytest.raises(ClientError) as info:
        sm.update_context(ContextName="training", Properties={f"k{i}": "v" for i in range(30)})
    assert _code(info) == "ValidationException"


def test_associations_need_both_ends_and_are_added_once(sm: Any) -> None:
    arns = _chain(sm)
    sm.add_association(
        SourceArn=arns["data"], DestinationArn=arns["training"], AssociationType="ContributedTo"
    )
    from_data = sm.list_associations(SourceArn=arns["data"])["AssociationSummaries"]
    assert [(a["DestinationName"], a["SourceType"], a["DestinationType"]) for a in from_data] == [
        ("training", "DataSet", "run")
    ]
    with pytest.raises(ClientError) as info:
        sm.add_association(SourceArn=arns["data"], DestinationArn=arns["data"] + "x")
    assert _code(info) == "ResourceNotFound"
    produced = sm.list_associations(AssociationType="Produced")["AssociationSummaries"]
    assert [(a["SourceArn"], a["DestinationArn"]) for a in produced] == [
        (arns["training"], arns["model"])
    ]
    sm.delete_association(SourceArn=arns["training"], DestinationArn=arns["model"])
    assert sm.list_associations(AssociationType="Produced")["AssociationSummaries"] == []


def test_artifacts_are_found_by_their_source(sm: Any) -> None:
    arns = _chain(sm)
    found = sm.list_artifacts(SourceUri="s3://m/model.tar.gz")["ArtifactSummaries"]
    assert [a["ArtifactArn"] for a in found] == [arns["model"]]
    assert len(sm.list_contexts(ContextType="run")["ContextSummaries"]) == 1
    assert len(sm.list_actions()["ActionSummaries"]) == 1


def test_query_lineage_walks_associations_in_the_direction_asked(sm: Any) -> None:
    arns = _chain(sm)
    down = sm.query_lineage(StartArns=[arns["training"]], Direction="Descendants")
    assert {v["Arn"] for v in down["Vertices"]} == {arns["training"], arns["model"], arns["deploy"]}
    assert {(e["SourceArn"], e["AssociationType"]) for e in down["Edges"]} == {
        (arns["training"], "Produced"),
        (arns["model"], "AssociatedWith"),
    }
    up = sm.query_lineage(StartArns=[arns["model"]], Direction="Ascendants", MaxDepth=1)
    assert {v["Arn"] for v in up["Vertices"]} == {arns["model"], arns["training"]}
    both = sm.query_lineage(StartArns=[arns["model"]], Direction="Both", MaxDepth=1)
    assert {v["Arn"] for v in both["Vertices"]} == {arns["training"], arns["model"], arns["deploy"]}
    vertex = next(v for v in both["Vertices"] if v["Arn"] == arns["deploy"])
    assert (vertex["Type"], vertex["LineageType"]) == ("ModelDeployment", "Action")


def test_query_lineage_filters_vertices_and_can_leave_edges_out(sm: Any) -> None:
    arns = _chain(sm)
    artifacts = sm.query_lineage(
        StartArns=[arns["data"]],
        Direction="Descendants",
        IncludeEdges=False,
        Filters={"LineageTypes": ["Artifact"]},
    )
    assert {v["Arn"] for v in artifacts["Vertices"]} == {arns["data"], arns["model"]}
    assert artifacts["Edges"] == []
    tagged = sm.query_lineage(
        StartArns=[arns["data"]], Filters={"Properties": {"framework": "sklearn"}}
    )
    assert [v["Arn"] for v in tagged["Vertices"]] == [arns["model"]]
    with pytest.raises(ClientError) as info:
        sm.query_lineage(StartArns=[arns["data"] + "x"])
    assert _code(info) == "ResourceNotFound"
