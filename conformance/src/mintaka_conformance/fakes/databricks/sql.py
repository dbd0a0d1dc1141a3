"""The SQL Statement Execution API, for the one query a client runs here: reading an endpoint's
inference (payload) table.

``POST /api/2.0/sql/statements`` runs
``SELECT <columns> FROM <catalog>.<schema>.<prefix>_payload [WHERE timestamp_ms >= :param]
[ORDER BY <columns>] [LIMIT n]`` on a known warehouse (``warehouses``, ``{"fake-warehouse"}`` by
default) with the rows inline in ``JSON_ARRAY`` format (every value a string, maps as JSON). It
answers at once, as the service does within ``wait_timeout``, unless ``running_polls`` is set:
then the statement answers ``PENDING`` and stays ``RUNNING`` for that many reads of
``GET /api/2.0/sql/statements/{id}`` (a warehouse starting up). The rows come in chunks of
``chunk_rows`` (all in one by default): the first with the statement, each with the
``next_chunk_index`` of the next, read with ``GET .../result/chunks/{n}``. Any other
statement, or an unknown table, ends ``FAILED`` with the service's error codes in the body (the
HTTP status is still 200); an unknown warehouse or statement is ``404``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .context import WorkspaceContext
from .routing import Request, Router, invalid, not_found
from .serving import Serving

_SELECT = re.compile(
    r"^\s*SELECT\s+(?P<columns>.+?)\s+FROM\s+(?P<table>[\w.`]+)"
    r"(?:\s+WHERE\s+(?P<column>\w+)\s*>=\s*:(?P<param>\w+))?"
    r"(?:\s+ORDER\s+BY\s+(?P<order>[\w\s,]+?))?"
    r"(?:\s+LIMIT\s+(?P<limit>\d+))?\s*;?\s*$",
    re.IGNORECASE | re.DOTALL,
)
PAYLOAD_COLUMNS = {
    "client_request_id": "STRING",
    "databricks_request_id": "STRING",
    "timestamp_ms": "BIGINT",
    "status_code": "INT",
    "execution_time_ms": "BIGINT",
    "request": "STRING",
    "response": "STRING",
    "request_metadata": "MAP<STRING, STRING>",
}


def _cell(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


class Statements:
    def __init__(self, ctx: WorkspaceContext, serving: Serving) -> None:
        self.ctx = ctx
        self.serving = serving
        self.warehouses: set[str] = {"fake-warehouse"}
        self.running_polls = 0
        self.chunk_rows: int | None = None
        self._answers: dict[str, dict[str, Any]] = {}
        self._chunks: dict[str, list[dict[str, Any]]] = {}
        self._running: dict[str, int] = {}

    def register(self, router: Router) -> None:
        router.add("POST", "/api/2.0/sql/statements", self.execute)
        router.add("GET", "/api/2.0/sql/statements/{statement_id}", self.get)
        router.add(
            "GET",
            "/api/2.0/sql/statements/{statement_id}/result/chunks/{chunk_index}",
            self.chunk,
        )

    def get(self, req: Request) -> dict[str, Any]:
        statement = req.params["statement_id"]
        with self.ctx.lock:
            if statement not in self._answers:
                raise not_found(f"Statement {statement} does not exist.")
            if self._running.get(statement, 0) > 0:
                self._running[statement] -= 1
                return {"statement_id": statement, "status": {"state": "RUNNING"}}
            return self._answers[statement]

    def chunk(self, req: Request) -> dict[str, Any]:
        statement = req.params["statement_id"]
        with self.ctx.lock:
            chunks = self._chunks.get(statement)
            if chunks is None or self._running.get(statement, 0) > 0:
                raise not_found(f"Statement {statement} has no result.")
            index = int(req.params["chunk_index"])
            if not 0 <= index < len(chunks):
                raise invalid(f"Chunk index {index} is out of range.")
            return chunks[index]

    def _payload_tables(self) -> dict[str, list[dict[str, Any]]]:
        tables: dict[str, list[dict[str, Any]]] = {}
        for endpoint in self.serving.endpoints.values():
            capture = (endpoint.config.auto_capture if endpoint.config else None) or {}
            if not capture.get("catalog_name"):
                continue
            prefix = capture.get("table_name_prefix") or "payload"
            name = f"{capture['catalog_name']}.{capture['schema_name']}.{prefix}_payload".lower()
            tables[name] = endpoint.captured
        return tables

    def _failed(self, code: str, message: str) -> dict[str, Any]:
        return {
            "statement_id": self.ctx.new_uuid(),
            "status": {"state": "FAILED", "error": {"error_code": code, "message": message}},
        }

    def execute(self, req: Request) -> dict[str, Any]:
        warehouse = req.require("warehouse_id")
        if warehouse not in self.warehouses:
            raise not_found(f"SQL warehouse {warehouse} does not exist.")
        statement = str(req.require("statement"))
        if (req.arg("format") or "JSON_ARRAY") != "JSON_ARRAY" or (
            req.arg("disposition") or "INLINE"
        ) != "INLINE":
            raise invalid("This workspace answers only JSON_ARRAY results INLINE.")
        found = _SELECT.match(statement)
        if found is None:
            return self._failed("BAD_REQUEST", f"[PARSE_SYNTAX_ERROR] Cannot run: {statement}")
        table = found["table"].replace("`", "").lower()
        rows = self._payload_tables().get(table)
        if rows is None:
            return self._failed(
                "BAD_REQUEST", f"[TABLE_OR_VIEW_NOT_FOUND] The table `{table}` cannot be found."
            )
        names = [c.strip() for c in found["columns"].split(",")]
        columns = list(PAYLOAD_COLUMNS) if names == ["*"] else names
        unknown = [c for c in columns if c not in PAYLOAD_COLUMNS]
        if unknown:
            return self._failed(
                "BAD_REQUEST", f"[UNRESOLVED_COLUMN] Columns {unknown} do not exist in {table}."
            )
        selected = list(rows)
        if found["column"]:
            params = {p["name"]: p.get("value") for p in req.arg("parameters") or []}
            if found["param"] not in params:
                return self._failed(
                    "BAD_REQUEST", f"[UNBOUND_SQL_PARAMETER] Found the unbound :{found['param']}."
                )
            bound = int(params[found["param"]])
            selected = [r for r in selected if int(r[found["column"]]) >= bound]
        if found["order"]:
            keys = [k.strip() for k in found["order"].split(",")]
            selected.sort(key=lambda r: tuple(str(r.get(k)).zfill(20) for k in keys))
        if found["limit"]:
            selected = selected[: int(found["limit"])]
        data = [[_cell(row.get(c)) for c in columns] for row in selected]
        size = self.chunk_rows or max(len(data), 1)
        chunks: list[dict[str, Any]] = []
        for offset in range(0, max(len(data), 1), size):
            chunk: dict[str, Any] = {
                "chunk_index": len(chunks),
                "row_offset": offset,
                "row_count": len(data[offset : offset + size]),
                "data_array": data[offset : offset + size],
            }
            if offset + size < len(data):
                chunk["next_chunk_index"] = len(chunks) + 1
            chunks.append(chunk)
        statement_id = self.ctx.new_uuid()
        answer = {
            "statement_id": statement_id,
            "status": {"state": "SUCCEEDED"},
            "manifest": {
                "format": "JSON_ARRAY",
                "schema": {
                    "column_count": len(columns),
                    "columns": [
                        {
                            "name": c,
                            "type_name": PAYLOAD_COLUMNS[c].split("<")[0],
                            "type_text": PAYLOAD_COLUMNS[c],
                            "position": i,
                        }
                        for i, c in enumerate(columns)
                    ],
                },
                "total_row_count": len(data),
                "total_chunk_count": len(chunks),
                "chunks": [
                    {k: c[k] for k in ("chunk_index", "row_offset", "row_count")} for c in chunks
                ],
                "truncated": False,
            },
            "result": chunks[0],
        }
        with self.ctx.lock:
            self._answers[statement_id] = answer
            self._chunks[statement_id] = chunks
            if self.running_polls:
                self._running[statement_id] = self.running_polls
                return {"statement_id": statement_id, "status": {"state": "PENDING"}}
        return answer
