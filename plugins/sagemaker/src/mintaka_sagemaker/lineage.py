"""Lineage pushed to SageMaker's own lineage service (Experiments lineage entities).

Every Mintaka lineage node becomes a *context* (``ContextType`` = the node kind, ``SourceUri`` =
``mintaka:<node id>``, the node id in ``Properties["mintaka_node"]``), named deterministically
from the node id, so pushing twice finds what the first push made. Every edge becomes an
association from the source context to the destination one. SageMaker's five association types
cannot say which of Mintaka's edge kinds an edge is, so the destination context also records it
in ``Properties["mintaka_edge:<source context name>"]``; the association type is the nearest
SageMaker one (``ContributedTo`` for training data, ``Produced``, ``DerivedFrom``,
``AssociatedWith``), for SageMaker's own lineage views.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from mintaka.domain.lineage import EdgeKind, LineageEdge, LineageNode
from mintaka.errors import Conflict, NotFound
from mintaka_sagemaker.aws import AwsCalls, derived_name
from mintaka_sagemaker.errors import is_already_exists

NODE_PROPERTY = "mintaka_node"
EDGE_PROPERTY = "mintaka_edge:"
ASSOCIATION_TYPES = {
    EdgeKind.TRAINED_ON: "ContributedTo",
    EdgeKind.PRODUCED: "Produced",
    EdgeKind.DEPLOYED_AS: "AssociatedWith",
    EdgeKind.SERVED: "Produced",
    EdgeKind.DECIDED: "ContributedTo",
    EdgeKind.DERIVED: "DerivedFrom",
}
_NOT_A_NAME = re.compile(r"[^a-zA-Z0-9]+")


def context_name(node_id: str) -> str:
    """The SageMaker context name of a lineage node (at most 63 characters, stable)."""
    base = "mk-" + _NOT_A_NAME.sub("-", node_id).strip("-")
    return derived_name(base, node_id)


class SageMakerLineage(AwsCalls):
    """``Capability.LINEAGE_METADATA`` through SageMaker contexts and associations."""

    def _ensure_context(self, node: LineageNode) -> None:
        params: dict[str, Any] = {
            "ContextName": context_name(node.id),
            "ContextType": node.kind.value,
            "Source": {"SourceUri": f"mintaka:{node.id}", "SourceType": "mintaka"},
            "Properties": {NODE_PROPERTY: node.id},
        }
        if node.label:
            params["Description"] = node.label[:3072]
        try:
            self._sm("create_context", **params)
        except Conflict as exc:
            if not is_already_exists(exc):
                raise

    def push_lineage(self, nodes: Sequence[LineageNode], edges: Sequence[LineageEdge]) -> None:
        for node in nodes:
            self._ensure_context(node)
        known = {node.id for node in nodes}
        for edge in edges:
            for end in (edge.src, edge.dst):
                if end not in known:  # an edge to a node pushed earlier (or never): make sure
                    kind, _, key = end.partition(":")
                    self._ensure_context(LineageNode.model_validate({"kind": kind, "key": key}))
                    known.add(end)
            src, dst = context_name(edge.src), context_name(edge.dst)
            self._sm(
                "update_context",
                ContextName=dst,
                Properties={EDGE_PROPERTY + src: edge.kind.value},
            )
            try:
                self._sm(
                    "add_association",
                    SourceArn=self._arn(f"context/{src}"),
                    DestinationArn=self._arn(f"context/{dst}"),
                    AssociationType=ASSOCIATION_TYPES[edge.kind],
                )
            except Conflict as exc:
                if not is_already_exists(exc):
                    raise

    def _context(self, name: str, cache: dict[str, dict[str, Any] | None]) -> dict[str, Any] | None:
        if name not in cache:
            try:
                cache[name] = self._sm("describe_context", ContextName=name)
            except NotFound:
                cache[name] = None
        return cache[name]

    def read_lineage(self, node_id: str) -> list[LineageEdge]:
        name = context_name(node_id)
        cache: dict[str, dict[str, Any] | None] = {}
        me = self._context(name, cache)
        if me is None:
            raise NotFound(f"[sagemaker] lineage node {node_id!r} was never pushed")
        arn = str(me["ContextArn"])
        edges: set[LineageEdge] = set()
        for direction in ("SourceArn", "DestinationArn"):
            for page in self._pages("sagemaker", "list_associations", **{direction: arn}):
                for association in page.get("AssociationSummaries", []):
                    src = str(association["SourceArn"]).rsplit("/", 1)[-1]
                    dst = str(association["DestinationArn"]).rsplit("/", 1)[-1]
                    source, target = self._context(src, cache), self._context(dst, cache)
                    if source is None or target is None:
                        continue  # not a Mintaka context (an artifact, an action, ...)
                    src_id = (source.get("Properties") or {}).get(NODE_PROPERTY)
                    dst_id = (target.get("Properties") or {}).get(NODE_PROPERTY)
                    kind = (target.get("Properties") or {}).get(EDGE_PROPERTY + src)
                    if not src_id or not dst_id or kind not in {k.value for k in EdgeKind}:
                        continue
                    edges.add(LineageEdge(src=src_id, dst=dst_id, kind=EdgeKind(kind)))
        return sorted(edges, key=lambda e: (e.src, e.dst, e.kind.value))
