"""The lineage graph, persisted in the control-plane store and queried there.

Nodes are keyed by (kind, key) with an integer id; edges point downstream (dataset -> run ->
model version -> deployment -> prediction -> decision). Walks run as recursive SQL over the edge
index, so a query touches only the sub-graph it returns; that sub-graph is handed to networkx for
algorithms and drawing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence, Set
from functools import lru_cache
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


# The anchor of every recursive walk is cast to the column's type: PostgreSQL otherwise types a
# bare ``SELECT :start`` from the value bound (smallint for a small id) and refuses the UNION
# with the integer ``lineage_edges`` columns.
_WALKS = {
    "down": (
        "WITH RECURSIVE reach(id) AS (SELECT CAST(:start AS INTEGER) UNION "
        "SELECT e.dst FROM lineage_edges e JOIN reach r ON e.src = r.id) "
    ),
    "up": (
        "WITH RECURSIVE reach(id) AS (SELECT CAST(:start AS INTEGER) UNION "
        "SELECT e.src FROM lineage_edges e JOIN reach r ON e.dst = r.id) "
    ),
}


_IN_CHUNK = 500  # keys per IN list, well under every database's bound-parameter limit

# Kinds whose ancestors ``lineage_reach`` indexes, so that "which deployments descend from X"
# costs one index range however many runs and versions lie in between.
INDEXED_KINDS = frozenset({NodeKind.DEPLOYMENT})
_INSERT_NODE = (
    "INSERT INTO lineage_nodes (kind, key, label, attrs) "
    "VALUES (:kind, :key, :label, :attrs) ON CONFLICT DO NOTHING"
)
_INSERT_EDGE = (
    "INSERT INTO lineage_edges (src, dst, kind) VALUES (:src, :dst, :kind) ON CONFLICT DO NOTHING"
)
_UPSTREAM = (
    "WITH RECURSIVE up(id) AS (SELECT CAST(:start AS INTEGER) UNION "
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
        """Insert nodes and edges that are not there yet (idempotent).

        Rows go in one at a time so that each statement says whether it inserted anything: the
        id of a new node needs no lookup, and the reach index changes only for new edges (an
        edge already stored was indexed when it was added) and never below a node this call
        created (nothing lies below it yet).
        """
        sql = Sql(conn)
        given: dict[str, tuple[str, str]] = {}
        ids: dict[tuple[str, str], int] = {}
        created: set[int] = set()
        for n in nodes:
            kind = n.kind.value
            pair = given[f"{kind}:{n.key}"] = (kind, n.key)
            pk = sql.insert_id(
                _INSERT_NODE,
                {
                    "kind": kind,
                    "key": n.key,
                    "label": n.label,
                    "attrs": json.dumps(n.attrs) if n.attrs else "{}",
                },
            )
            if pk is not None:
                ids[pair] = pk
                created.add(pk)
        if not edges:
            return
        ends = [(given.get(e.src) or _pair(e.src), given.get(e.dst) or _pair(e.dst)) for e in edges]
        unknown = {end for pair in ends for end in pair if end not in ids}
        if unknown:
            ids.update(self._ids(sql, unknown))
        missing = sorted({f"{kind}:{key}" for kind, key in unknown if (kind, key) not in ids})
        if missing:
            raise NotFound(f"lineage edge refers to unknown node(s): {', '.join(missing)}")
        fresh: list[tuple[int, int, str]] = []
        for (src, dst), edge in zip(ends, edges, strict=True):
            src_id, dst_id = ids[src], ids[dst]
            if sql.run(_INSERT_EDGE, {"src": src_id, "dst": dst_id, "kind": edge.kind.value}):
                fresh.append((src_id, dst_id, dst[0]))
        if fresh:
            self._extend_reach(sql, fresh, created)

    @staticmethod
    def _extend_reach(
        sql: Sql, edges: Sequence[tuple[int, int, str]], created: Set[int] = frozenset()
    ) -> None:
        """Keep ``lineage_reach`` whole after the new edges ``src -> dst`` (``dst`` of a kind).

        An edge joins everything upstream of ``src`` (``src`` included) to every indexed node
        downstream of ``dst`` (``dst`` included). Those were in the index before this call:
        take the new edge nearest to such a node on any path; below it the path is old, and
        every edge, new ones included, is already stored when the upstream side is walked. So
        they are looked up once, for all the edges, except below the nodes in ``created``, which
        have nothing below them in the index (usually there is nothing to look up at all).
        """
        indexed = {kind.value for kind in INDEXED_KINDS}
        below: dict[int, list[int]] = {dst: [] for _, dst, _ in edges}
        heads = [node for node in below if node not in created]
        for start in range(0, len(heads), _IN_CHUNK):
            chunk = heads[start : start + _IN_CHUNK]
            marks = ", ".join(f":d{i}" for i in range(len(chunk)))
            for src, dst in sql.rows(
                f"SELECT src, dst FROM lineage_reach WHERE src IN ({marks})",
                {f"d{i}": node for i, node in enumerate(chunk)},
            ):
                below[int(src)].append(int(dst))
        for src, dst, dst_kind in edges:
            targets = [*below[dst], dst] if dst_kind in indexed else below[dst]
            if not targets:
                continue
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
    def _ids(sql: Sql, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """The integer ids of the nodes ``(kind, key)`` that exist, in as few statements as the
        bound-parameter budget allows (one for a registration's handful of nodes)."""
        by_kind: dict[str, list[str]] = {}
        for kind, key in pairs:
            by_kind.setdefault(kind, []).append(key)
        found: dict[tuple[str, str], int] = {}
        shape: list[int] = []  # keys per kind in the statement being built
        params: list[str] = []  # each kind followed by its keys

        def flush() -> None:
            values = {f"p{i}": value for i, value in enumerate(params)}
            for pk, kind, key in sql.rows(_ids_query(tuple(shape)), values):
                found[(kind, key)] = int(pk)
            shape.clear()
            params.clear()

        for kind, keys in by_kind.items():
            for start in range(0, len(keys), _IN_CHUNK):
                chunk = keys[start : start + _IN_CHUNK]
                if params and len(params) + len(chunk) + 1 > _IN_CHUNK:
                    flush()
                shape.append(len(chunk))
                params.append(kind)
                params.extend(chunk)
        if shape:
            flush()
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


@lru_cache(maxsize=256)
def _ids_query(shape: tuple[int, ...]) -> str:
    """``SELECT id, kind, key`` for nodes of ``len(shape)`` kinds, ``shape[i]`` keys each; the
    parameters are ``p0, p1, ...``: each kind followed by its keys."""
    terms = []
    n = 0
    for count in shape:
        marks = ", ".join(f":p{i}" for i in range(n + 1, n + 1 + count))
        terms.append(f"(kind = :p{n} AND key IN ({marks}))")
        n += count + 1
    return f"SELECT id, kind, key FROM lineage_nodes WHERE {' OR '.join(terms)}"


def _pair(node_id: str) -> tuple[str, str]:
    kind, key = split_node_id(node_id)
    return kind.value, key


def _node(row: Any) -> LineageNode:
    attrs = row.attrs
    if isinstance(attrs, str):
        attrs = json.loads(attrs)
    return LineageNode(kind=NodeKind(row.kind), key=row.key, label=row.label, attrs=attrs or {})
