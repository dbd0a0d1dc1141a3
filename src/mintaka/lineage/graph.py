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

from mintaka.domain.lineage import EdgeKind, LineageEdge, LineageGraph, LineageNode, NodeKind
from mintaka.errors import NotFound, ValidationError
from mintaka.store.engine import Sql, Store
from mintaka.store.schema import lineage_nodes


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


_IN_CHUNK = 500  # keys per IN list, well under every database's bound-parameter limit

# Kinds whose ancestors ``lineage_reach`` indexes, so that "which deployments descend from X"
# costs one index range however many runs and versions lie in between.
INDEXED_KINDS = frozenset({NodeKind.DEPLOYMENT})
_REACH_FROM = "SELECT dst FROM lineage_reach WHERE src = :node"
_UPSTREAM = (
    "WITH RECURSIVE up(id) AS (SELECT :start UNION "
    "SELECT e.src FROM lineage_edges e JOIN up ON e.dst = up.id) SELECT id FROM up"
)


class LineageStore:
    """Writes nodes and edges inside a caller's transaction; walks the graph in SQL."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # -- writing ------------------------------------------------------------------------------

    def add(
        self, conn: Connection, nodes: Sequence[LineageNode], edges: Sequence[LineageEdge]
    ) -> None:
        """Insert nodes and edges that are not there yet (idempotent)."""
        sql = Sql(conn)
        if nodes:
            sql.run_many(
                "INSERT INTO lineage_nodes (kind, key, label, attrs) "
                "VALUES (:kind, :key, :label, :attrs) ON CONFLICT DO NOTHING",
                [
                    {
                        "kind": n.kind.value,
                        "key": n.key,
                        "label": n.label,
                        "attrs": json.dumps(n.attrs),
                    }
                    for n in nodes
                ],
            )
        if not edges:
            return
        wanted = {split_node_id(e.src) for e in edges} | {split_node_id(e.dst) for e in edges}
        ids = self._ids(sql, wanted)
        missing = [f"{k.value}:{key}" for k, key in wanted if (k.value, key) not in ids]
        if missing:
            raise NotFound(f"lineage edge refers to unknown node(s): {', '.join(sorted(missing))}")
        pairs = [(ids[_pair(e.src)], ids[_pair(e.dst)]) for e in edges]
        sql.run_many(
            "INSERT INTO lineage_edges (src, dst, kind) VALUES (:src, :dst, :kind) "
            "ON CONFLICT DO NOTHING",
            [
                {"src": src, "dst": dst, "kind": e.kind.value}
                for (src, dst), e in zip(pairs, edges, strict=True)
            ],
        )
        for (src, dst), edge in zip(pairs, edges, strict=True):
            self._extend_reach(sql, src, dst, split_node_id(edge.dst)[0])

    @staticmethod
    def _extend_reach(sql: Sql, src: int, dst: int, dst_kind: NodeKind) -> None:
        """Keep ``lineage_reach`` whole after the edge ``src -> dst``.

        The edge joins everything upstream of ``src`` (``src`` included) to every indexed node
        downstream of ``dst`` (``dst`` included); the latter are already in the index.
        """
        targets = [t for (t,) in sql.rows(_REACH_FROM, {"node": dst})]
        if dst_kind in INDEXED_KINDS:
            targets.append(dst)
        if not targets:
            return
        upstream = [u for (u,) in sql.rows(_UPSTREAM, {"start": src})]
        sql.run_many(
            "INSERT INTO lineage_reach (src, dst) VALUES (:src, :dst) ON CONFLICT DO NOTHING",
            [{"src": u, "dst": t} for t in targets for u in upstream if u != t],
        )

    def reindex(self, conn: Connection) -> int:
        """Rebuild ``lineage_reach`` from the edges; returns its size.

        ``add`` keeps the index current; this is for edges written by other means (a bulk
        load, a restore).
        """
        sql = Sql(conn)
        sql.run("DELETE FROM lineage_reach")
        kinds = ", ".join(f"'{kind.value}'" for kind in sorted(INDEXED_KINDS))
        sql.run(
            "INSERT INTO lineage_reach (src, dst) "
            "WITH RECURSIVE up(id, target) AS ("
            f"SELECT id, id FROM lineage_nodes WHERE kind IN ({kinds}) "
            "UNION SELECT e.src, up.target FROM lineage_edges e JOIN up ON e.dst = up.id) "
            "SELECT id, target FROM up WHERE id != target"
        )
        row = sql.one("SELECT count(*) FROM lineage_reach")
        return int(row[0]) if row else 0

    @staticmethod
    def _ids(sql: Sql, pairs: Iterable[tuple[NodeKind, str]]) -> dict[tuple[str, str], int]:
        found: dict[tuple[str, str], int] = {}
        by_kind: dict[str, list[str]] = {}
        for kind, key in pairs:
            by_kind.setdefault(kind.value, []).append(key)
        for kind_name, keys in by_kind.items():
            for start in range(0, len(keys), _IN_CHUNK):
                chunk = keys[start : start + _IN_CHUNK]
                marks = ", ".join(f":k{i}" for i in range(len(chunk)))
                params: dict[str, Any] = {f"k{i}": key for i, key in enumerate(chunk)}
                params["kind"] = kind_name
                for pk, key in sql.rows(
                    f"SELECT id, key FROM lineage_nodes WHERE kind = :kind AND key IN ({marks})",
                    params,
                ):
                    found[(kind_name, key)] = int(pk)
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
        with self.store.read() as conn:
            start = self._node_pk(conn, node_id)
            sql = Sql(conn)
            if direction == "down" and kind in INDEXED_KINDS:
                rows = sql.rows(
                    "SELECT n.key FROM lineage_reach r JOIN lineage_nodes n ON n.id = r.dst "
                    "WHERE r.src = :start AND n.kind = :kind",
                    {"start": start, "kind": kind.value},
                )
            else:
                query = (
                    _WALKS[direction] + "SELECT n.key FROM lineage_nodes n "
                    "JOIN reach ON n.id = reach.id WHERE n.id != :start"
                )
                params: dict[str, Any] = {"start": start}
                if kind is not None:
                    query += " AND n.kind = :kind"
                    params["kind"] = kind.value
                rows = sql.rows(query, params)
        return [str(row[0]) for row in rows]


def _pair(node_id: str) -> tuple[str, str]:
    kind, key = split_node_id(node_id)
    return kind.value, key


def _node(row: Any) -> LineageNode:
    attrs = row.attrs
    if isinstance(attrs, str):
        attrs = json.loads(attrs)
    return LineageNode(kind=NodeKind(row.kind), key=row.key, label=row.label, attrs=attrs or {})
