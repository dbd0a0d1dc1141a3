"""Lineage pushed to Unity Catalog as external metadata and external lineage.

Each lineage node is an external metadata object (system ``OTHER``, entity type
``mintaka.<kind>``) named from a digest of the node id, with the id itself in its properties;
each edge is an external lineage relationship between two such objects, carrying its source,
target and kind as properties. Pushing creates what is missing and treats "already exists" as
done, so a second push (or a retry after a lost answer) creates nothing new.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence
from typing import Any

from mintaka.domain.lineage import EdgeKind, LineageEdge, LineageNode
from mintaka.errors import Conflict, NotFound
from mintaka.interfaces import LineageMetadata
from mintaka_databricks.workspace import WorkspaceAccess

NODE_PROPERTY = "mintaka.node"
SRC_PROPERTY = "mintaka.src"
DST_PROPERTY = "mintaka.dst"
KIND_PROPERTY = "mintaka.kind"


def object_name(node_id: str) -> str:
    """The external metadata name of a lineage node: stable, short, valid everywhere."""
    kind = node_id.split(":", 1)[0]
    return f"mintaka_{kind}_{hashlib.sha256(node_id.encode()).hexdigest()[:24]}"


class ExternalLineage(WorkspaceAccess, LineageMetadata):
    """``Capability.LINEAGE_METADATA`` over Unity Catalog's external lineage API."""

    def _ensure_object(self, node: LineageNode) -> None:
        from databricks.sdk.service.catalog import ExternalMetadata, SystemType

        item = ExternalMetadata(
            name=object_name(node.id),
            system_type=SystemType.OTHER,
            entity_type=f"mintaka.{node.kind.value}",
            description=node.label[:1000] or None,
            properties={NODE_PROPERTY: node.id},
        )
        with contextlib.suppress(Conflict):
            self._call(
                f"recording lineage node {node.id}",
                lambda: self.client.external_metadata.create_external_metadata(item),
            )

    @staticmethod
    def _end(node_id: str) -> Any:
        from databricks.sdk.service.catalog import (
            ExternalLineageExternalMetadata,
            ExternalLineageObject,
        )

        return ExternalLineageObject(
            external_metadata=ExternalLineageExternalMetadata(name=object_name(node_id))
        )

    def push_lineage(self, nodes: Sequence[LineageNode], edges: Sequence[LineageEdge]) -> None:
        from databricks.sdk.service.catalog import CreateRequestExternalLineage

        known = {node.id: node for node in nodes}
        for edge in edges:  # an edge's ends are recorded even when not listed among the nodes
            for end in (edge.src, edge.dst):
                if end not in known:
                    kind, _, key = end.partition(":")
                    known[end] = LineageNode.model_validate({"kind": kind, "key": key})
        for node in known.values():
            self._ensure_object(node)
        for edge in edges:
            relationship = CreateRequestExternalLineage(
                source=self._end(edge.src),
                target=self._end(edge.dst),
                properties={
                    SRC_PROPERTY: edge.src,
                    DST_PROPERTY: edge.dst,
                    KIND_PROPERTY: edge.kind.value,
                },
            )
            with contextlib.suppress(Conflict):
                self._call(
                    f"recording lineage {edge.src} -> {edge.dst}",
                    lambda relationship=relationship: (  # type: ignore[misc]
                        self.client.external_lineage.create_external_lineage_relationship(
                            relationship
                        )
                    ),
                )

    def read_lineage(self, node_id: str) -> list[LineageEdge]:
        from databricks.sdk.service.catalog import LineageDirection

        edges: set[LineageEdge] = set()
        for direction in (LineageDirection.UPSTREAM, LineageDirection.DOWNSTREAM):
            try:
                found = self._call(
                    f"reading lineage of {node_id}",
                    lambda direction=direction: list(  # type: ignore[misc]
                        self.client.external_lineage.list_external_lineage_relationships(
                            self._end(node_id), direction
                        )
                    ),
                )
            except NotFound:
                return []
            for info in found:
                relationship = info.external_lineage_info
                properties = (relationship.properties if relationship else None) or {}
                if KIND_PROPERTY not in properties:
                    continue  # lineage recorded by something other than Mintaka
                edges.add(
                    LineageEdge(
                        src=properties[SRC_PROPERTY],
                        dst=properties[DST_PROPERTY],
                        kind=EdgeKind(properties[KIND_PROPERTY]),
                    )
                )
        return sorted(edges, key=lambda e: (e.src, e.dst, e.kind.value))
