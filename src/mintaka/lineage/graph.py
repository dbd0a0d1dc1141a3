"""The lineage graph, persisted in the control-plane store and queried there.

Nodes are keyed by (kind, key) with an integer id; edges point downstream (dataset -> run ->
model version -> deployment -> prediction -> decision). Walks run as recursive SQL over the edge
index, so a query touches only the sub-graph it returns; that sub-graph is handed to networkx for
algorithms and drawing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, select, text
from sqlalchemy.dialects import postgresql, sqlite

from mintaka.domain.lineage import EdgeKind, LineageEdge, LineageGraph, LineageNode, NodeKind
from mintaka.errors import NotFound, ValidationError
from mintaka.store.engine import Store
from mintaka.store.schema import lineage_edges, lineage_nodes


def split_node_id(node_id: str) -> tuple[NodeKind, str]:
    """Split ``"kind:key"`` into its parts; ``ValidationError`` when it is not of that form."""
    kind, sep, key = node_id.partition(":") if isinstance(node_id, str) else ("", "", "")
    if sep and key and kind in NodeKind.__members__.values():
        return NodeKind(kind), key
    kinds = ", ".join(k.value for k in NodeKind)
    raise ValidationError(f"lineage node id {node_id!r} is not KIND:KEY (kinds: {kinds})")


_WALKS = {
    "down": (
        "WITH RECURSIVE reach(id) AS (SELECT :start UNION "
        "SELECT e.dst FROM lineage_edges e JOIN reach r ON e.src = r.id) "
    ),
    "up": (
        "WITH RECURSIVE reach(id) AS (SELECT :start UNION "
        "SELECT e.src FROM lineage_edges e JOIN reach r ON e.dst = r.id) "
    ),
}


class LineageStore:
    """Writes nodes and edges inside a caller's transaction; walks the graph in SQL."""

    def __init__(self, store: Store) -> None:
        self.store = store
        dialect = store.engine.dialect.name
        self._insert = postgresql.insert if dialect == "postgresql" else sqlite.insert

    # -- writing ------------------------------------------------------------------------------

    def add(
        self, conn: Connection, nodes: Sequence[LineageNode], edges: Sequence[LineageEdge]
    ) -> None:
        """Insert nodes and edges that are not there yet (idempotent)."""
        if nodes:
            conn.execute(
                self._insert(lineage_nodes).on_conflict_do_nothing(),
                [
                    {"kind": n.kind.value, "key": n.key, "label": n.label, "attrs": n.attrs}
                    for n in nodes
                ],
            )
        if not edges:
            return
        wanted = {split_node_id(e.src) for e in edges} | {split_node_id(e.dst) for e in edges}
        ids = self._ids(conn, wanted)
        missing = [f"{k.value}:{key}" for k, key in wanted if (k.value, key) not in ids]
        if missing:
            raise NotFound(f"lineage edge refers to unknown node(s): {', '.join(sorted(missing))}")
        conn.execute(
            self._insert(lineage_edges).on_conflict_do_nothing(),
            [
                {
                    "src": ids[_pair(e.src)],
                    "dst": ids[_pair(e.dst)],
                    "kind": e.kind.value,
                }
                for e in edges
            ],
        )

    @staticmethod
    def _ids(conn: Connection, pairs: Iterable[tuple[NodeKind, str]]) -> dict[tuple[str, str], int]:
        found: dict[tuple[str, str], int] = {}
        by_kind: dict[str, list[str]] = {}
        for kind, key in pairs:
            by_kind.setdefault(kind.value, []).append(key)
        for kind_name, keys in by_kind.items():
            rows = conn.execute(
                select(lineage_nodes.c.id, lineage_nodes.c.key).where(
                    lineage_nodes.c.kind == kind_name, lineage_nodes.c.key.in_(keys)
                )
            )
            for row in rows:
                found[(kind_name, row.key)] = int(row.id)
        return found

    # -- reading ------------------------------------------------------------------------------

    def _node_pk(self, conn: Connection, node_id: str) -> int:
        kind, key = split_node_id(node_id)
        pk = conn.execute(
            select(lineage_nodes.c.id).where(
                lineage_nodes.c.kind == kind.value, lineage_nodes.c.key == key
            )
        ).scalar()
        if pk is None:
            raise NotFound(f"no lineage node {node_id!r}")
        return int(pk)

    def node(self, node_id: str) -> LineageNode:
        kind, key = split_node_id(node_id)
        with self.store.read() as conn:
            row = conn.execute(
                select(lineage_nodes).where(
                    lineage_nodes.c.kind == kind.value, lineage_nodes.c.key == key
                )
            ).one_or_none()
        if row is None:
            raise NotFound(f"no lineage node {node_id!r}")
        return _node(row)

    def walk(self, node_id: str, direction: str = "down") -> LineageGraph:
        """The sub-graph reachable from ``node_id`` downstream (``down``) or upstream (``up``)."""
        walk = _WALKS[direction]
        with self.store.read() as conn:
            start = self._node_pk(conn, node_id)
            node_rows = conn.execute(
                text(
                    walk + "SELECT n.id, n.kind, n.key, n.label, n.attrs FROM lineage_nodes n "
                    "JOIN reach ON n.id = reach.id"
                ),
                {"start": start},
            ).all()
            edge_rows = conn.execute(
                text(
                    walk
                    + "SELECT e.src, e.dst, e.kind FROM lineage_edges e "
                    + (
                        "JOIN reach ON e.src = reach.id"
                        if direction == "down"
                        else "JOIN reach ON e.dst = reach.id"
                    )
                ),
                {"start": start},
            ).all()
        nodes = {int(row.id): _node(row) for row in node_rows}
        edges = tuple(
            LineageEdge(src=nodes[row.src].id, dst=nodes[row.dst].id, kind=EdgeKind(row.kind))
            for row in edge_rows
            if row.src in nodes and row.dst in nodes
        )
        return LineageGraph(root=node_id, nodes=tuple(nodes.values()), edges=edges)

    def descendants(self, node_id: str, kind: NodeKind | None = None) -> list[str]:
        """Keys of the nodes downstream of ``node_id``, optionally of one kind only."""
        return self._reach(node_id, "down", kind)

    def ancestors(self, node_id: str, kind: NodeKind | None = None) -> list[str]:
        return self._reach(node_id, "up", kind)

    def _reach(self, node_id: str, direction: str, kind: NodeKind | None) -> list[str]:
        sql = (
            _WALKS[direction]
            + "SELECT n.key FROM lineage_nodes n JOIN reach ON n.id = reach.id WHERE n.id != :start"
        )
        params: dict[str, Any] = {}
        if kind is not None:
            sql += " AND n.kind = :kind"
            params["kind"] = kind.value
        with self.store.read() as conn:
            params["start"] = self._node_pk(conn, node_id)
            return [str(row[0]) for row in conn.execute(text(sql), params)]


def _pair(node_id: str) -> tuple[str, str]:
    kind, key = split_node_id(node_id)
    return kind.value, key


def _node(row: Any) -> LineageNode:
    attrs = row.attrs
    if isinstance(attrs, str):
        attrs = json.loads(attrs)
    return LineageNode(kind=NodeKind(row.kind), key=row.key, label=row.label, attrs=attrs or {})
