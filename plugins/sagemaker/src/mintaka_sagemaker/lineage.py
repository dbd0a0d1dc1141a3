"""Lineage pushed to SageMaker ML Lineage (artifacts, contexts, actions and associations).

Each Mintaka lineage node becomes the lineage entity SageMaker uses for its kind: an *artifact*
for what a URI can address (datasets, model versions, predictions and prediction batches), an
*action* for what happened once (deployments, decisions, gate verdicts), a *context* for what
groups other entities (runs, pipeline runs). The entity's type is the node kind (``dataset``,
``run``, ...), its ``Source.SourceUri`` is ``mintaka:<node id>``, ``Properties["mintaka_node"]``
is the node id, and its name is derived from the node id (:func:`context_name`), so pushing twice
finds what the first push made: a context or action by its name, an artifact (whose ARN is not
made from its name) by ``ListArtifacts(SourceUri=...)``.

Every edge becomes an association from its source entity to its destination, of the nearest of
SageMaker's five association types: ``ContributedTo`` (training data, and predictions feeding a
decision), ``Produced`` (a run producing a version, a deployment serving predictions),
``AssociatedWith`` (a version deployed), ``DerivedFrom``. The association type and the two node
kinds give back the edge kind; an edge whose kind they would not give back (a ``produced`` edge
from a deployment, say) also records its kind on the destination entity, in
``Properties["mintaka_edge:<source entity name>"]``.

Reading back uses ``QueryLineage`` from the node's entity, one association deep in both
directions, and describes the entities at the other ends for their node ids.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from mintaka.domain.lineage import EdgeKind, LineageEdge, LineageNode, NodeKind
from mintaka.errors import BackendError, Conflict, NotFound
from mintaka_sagemaker.aws import AwsCalls, derived_name
from mintaka_sagemaker.errors import BACKEND, is_already_exists

NODE_PROPERTY = "mintaka_node"
EDGE_PROPERTY = "mintaka_edge:"
SOURCE_PREFIX = "mintaka:"
ASSOCIATION_TYPES = {
    EdgeKind.TRAINED_ON: "ContributedTo",
    EdgeKind.PRODUCED: "Produced",
    EdgeKind.DEPLOYED_AS: "AssociatedWith",
    EdgeKind.SERVED: "Produced",
    EdgeKind.DECIDED: "ContributedTo",
    EdgeKind.DERIVED: "DerivedFrom",
}
# The SageMaker lineage entity each node kind becomes.
LINEAGE_TYPES = {
    NodeKind.DATASET: "Artifact",
    NodeKind.MODEL_VERSION: "Artifact",
    NodeKind.PREDICTION: "Artifact",
    NodeKind.PREDICTION_BATCH: "Artifact",
    NodeKind.DEPLOYMENT: "Action",
    NodeKind.DECISION: "Action",
    NodeKind.GATE: "Action",
    NodeKind.RUN: "Context",
    NodeKind.PIPELINE_RUN: "Context",
}
_NOT_A_NAME = re.compile(r"[^a-zA-Z0-9]+")
_PREDICTIONS = {NodeKind.PREDICTION.value, NodeKind.PREDICTION_BATCH.value}


def context_name(node_id: str) -> str:
    """The SageMaker entity name of a lineage node (at most 63 characters, stable)."""
    base = "mk-" + _NOT_A_NAME.sub("-", node_id).strip("-")
    return derived_name(base, node_id)


def edge_kind(association: str, src_kind: str, dst_kind: str) -> EdgeKind | None:
    """The edge kind an association type gives back, from the kinds of the nodes it joins."""
    if association == "DerivedFrom":
        return EdgeKind.DERIVED
    if association == "AssociatedWith":
        return EdgeKind.DEPLOYED_AS
    if association == "Produced":
        return EdgeKind.SERVED if src_kind == NodeKind.DEPLOYMENT.value else EdgeKind.PRODUCED
    if association == "ContributedTo":
        return EdgeKind.DECIDED if src_kind in _PREDICTIONS else EdgeKind.TRAINED_ON
    return None


class SageMakerLineage(AwsCalls):
    """``Capability.LINEAGE_METADATA`` through SageMaker ML Lineage."""

    # -- push -------------------------------------------------------------------------------------

    def _artifact_arn(self, node_id: str) -> str | None:
        for page in self._pages("sagemaker", "list_artifacts", SourceUri=SOURCE_PREFIX + node_id):
            for summary in page.get("ArtifactSummaries", []):
                return str(summary["ArtifactArn"])
        return None

    def _ensure_entity(self, node: LineageNode) -> str:
        """The ARN of the node's lineage entity, created if it is not there yet."""
        lineage_type = LINEAGE_TYPES[node.kind]
        name = context_name(node.id)
        source = {"SourceUri": SOURCE_PREFIX + node.id}
        properties = {NODE_PROPERTY: node.id}
        described: dict[str, Any] = {}
        if node.label and lineage_type != "Artifact":
            described["Description"] = node.label[:3072]
        try:
            if lineage_type == "Artifact":
                created = self._sm(
                    "create_artifact",
                    ArtifactName=name,
                    ArtifactType=node.kind.value,
                    Source=source,
                    Properties=properties,
                )
                return str(created["ArtifactArn"])
            if lineage_type == "Action":
                created = self._sm(
                    "create_action",
                    ActionName=name,
                    ActionType=node.kind.value,
                    Source={**source, "SourceType": "mintaka"},
                    Status="Completed",
                    Properties=properties,
                    **described,
                )
                return str(created["ActionArn"])
            created = self._sm(
                "create_context",
                ContextName=name,
                ContextType=node.kind.value,
                Source={**source, "SourceType": "mintaka"},
                Properties=properties,
                **described,
            )
            return str(created["ContextArn"])
        except Conflict as exc:
            if not is_already_exists(exc):
                raise
        if lineage_type == "Artifact":
            arn = self._artifact_arn(node.id)
            if arn is None:
                raise BackendError(
                    f"artifact {name!r} exists but no artifact has source {source['SourceUri']!r}",
                    BACKEND,
                )
            return arn
        return self._arn(f"{lineage_type.lower()}/{name}")

    def _record_edge_kind(
        self, dst: LineageNode, dst_arn: str, src_name: str, kind: EdgeKind
    ) -> None:
        properties = {EDGE_PROPERTY + src_name: kind.value}
        lineage_type = LINEAGE_TYPES[dst.kind]
        if lineage_type == "Artifact":
            self._sm("update_artifact", ArtifactArn=dst_arn, Properties=properties)
        elif lineage_type == "Action":
            self._sm("update_action", ActionName=context_name(dst.id), Properties=properties)
        else:
            self._sm("update_context", ContextName=context_name(dst.id), Properties=properties)

    def push_lineage(self, nodes: Sequence[LineageNode], edges: Sequence[LineageEdge]) -> None:
        arns = {node.id: self._ensure_entity(node) for node in nodes}
        for edge in edges:
            ends = []
            for end in (edge.src, edge.dst):
                kind, _, key = end.partition(":")
                node = LineageNode.model_validate({"kind": kind, "key": key})
                if end not in arns:  # an edge to a node pushed earlier (or never)
                    arns[end] = self._ensure_entity(node)
                ends.append(node)
            src, dst = ends
            association = ASSOCIATION_TYPES[edge.kind]
            if edge_kind(association, src.kind.value, dst.kind.value) is not edge.kind:
                self._record_edge_kind(dst, arns[edge.dst], context_name(edge.src), edge.kind)
            try:
                self._sm(
                    "add_association",
                    SourceArn=arns[edge.src],
                    DestinationArn=arns[edge.dst],
                    AssociationType=association,
                )
            except Conflict as exc:
                if not is_already_exists(exc):
                    raise

    # -- read back --------------------------------------------------------------------------------

    def _describe(self, vertex: dict[str, Any]) -> dict[str, Any] | None:
        arn, lineage_type = str(vertex["Arn"]), str(vertex.get("LineageType"))
        name = arn.rsplit("/", 1)[-1]
        try:
            if lineage_type == "Artifact":
                return self._sm("describe_artifact", ArtifactArn=arn)
            if lineage_type == "Action":
                return self._sm("describe_action", ActionName=name)
            if lineage_type == "Context":
                return self._sm("describe_context", ContextName=name)
        except NotFound:
            return None
        return None  # a trial component or another entity Mintaka never makes

    def _start_arn(self, node_id: str) -> str:
        kind, _, key = node_id.partition(":")
        try:
            node = LineageNode.model_validate({"kind": kind, "key": key})
        except ValueError:
            raise NotFound(f"[sagemaker] {node_id!r} is not a lineage node id") from None
        lineage_type = LINEAGE_TYPES[node.kind]
        name = context_name(node_id)
        if lineage_type == "Artifact":
            arn = self._artifact_arn(node_id)
            if arn is None:
                raise NotFound(f"[sagemaker] lineage node {node_id!r} was never pushed")
            return arn
        # describe_* raises NotFound for a node that was never pushed
        if lineage_type == "Action":
            return str(self._sm("describe_action", ActionName=name)["ActionArn"])
        return str(self._sm("describe_context", ContextName=name)["ContextArn"])

    def read_lineage(self, node_id: str) -> list[LineageEdge]:
        try:
            start = self._start_arn(node_id)
        except NotFound:
            raise NotFound(f"[sagemaker] lineage node {node_id!r} was never pushed") from None
        found = self._sm(
            "query_lineage",
            StartArns=[start],
            Direction="Both",
            IncludeEdges=True,
            MaxDepth=1,
        )
        vertices = {str(v["Arn"]): v for v in found.get("Vertices", [])}
        described: dict[str, dict[str, Any] | None] = {}

        def entity(arn: str) -> dict[str, Any] | None:
            if arn not in described:
                vertex = vertices.get(arn) or {"Arn": arn, "LineageType": _lineage_type(arn)}
                described[arn] = self._describe(vertex)
            return described[arn]

        edges: set[LineageEdge] = set()
        for association in found.get("Edges", []):
            src_arn, dst_arn = str(association["SourceArn"]), str(association["DestinationArn"])
            if start not in (src_arn, dst_arn):
                continue
            source, target = entity(src_arn), entity(dst_arn)
            if source is None or target is None:
                continue
            src_id = (source.get("Properties") or {}).get(NODE_PROPERTY)
            dst_id = (target.get("Properties") or {}).get(NODE_PROPERTY)
            if not src_id or not dst_id:
                continue  # an entity SageMaker or someone else made
            recorded = (target.get("Properties") or {}).get(EDGE_PROPERTY + context_name(src_id))
            kind = (
                EdgeKind(recorded)
                if recorded in {k.value for k in EdgeKind}
                else edge_kind(
                    str(association.get("AssociationType")),
                    str(src_id).partition(":")[0],
                    str(dst_id).partition(":")[0],
                )
            )
            if kind is not None:
                edges.add(LineageEdge(src=src_id, dst=dst_id, kind=kind))
        return sorted(edges, key=lambda e: (e.src, e.dst, e.kind.value))


def _lineage_type(arn: str) -> str:
    resource = arn.split(":", 5)[-1].split("/", 1)[0]
    return {"artifact": "Artifact", "action": "Action", "context": "Context"}.get(resource, "")
