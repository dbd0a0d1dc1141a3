"""The SQL Statement Execution API, for the one query a client runs here: reading an endpoint's
inference (payload) table.

``POST /api/2.0/sql/statements`` runs
``SELECT <columns> FROM <catalog>.<schema>.<prefix>_payload [WHERE <condition>]
[ORDER BY <columns>] [LIMIT n]`` on a known warehouse (``warehouses``, ``{"fake-warehouse"}`` by
default) with the rows inline in ``JSON_ARRAY`` format (every value a string, maps as JSON). A
condition compares columns with named parameters (``=``, ``<``, ``<=``, ``>``, ``>=``) or tests
them with ``IS [NOT] NULL``, joined by ``AND``, ``OR`` and parentheses; columns compare by their
type (numbers as numbers), and a comparison with a NULL is never true. ``ORDER BY`` sorts
ascending with NULLs first, as Databricks SQL does by default. An inline
result is limited to ``inline_byte_limit`` bytes of rows (25 MiB, as on the service; lower it to
test a reader's paging): a larger one ends ``FAILED``. It
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
import operator
import re
from collections.abc import Callable
from typing import Any

from .context import WorkspaceContext
from .routing import Request, Router, invalid, not_found
from .serving import Serving

_SELECT = re.compile(
    r"^\s*SELECT\s+(?P<columns>.+?)\s+FROM\s+(?P<table>[\w.`]+)"
    r"(?:\s+WHERE\s+(?P<where>.+?))?"
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


_TOKEN = re.compile(r"\s*(\(|\)|>=|<=|=|>|<|:\w+|\w+)", re.IGNORECASE)
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
INLINE_BYTE_LIMIT = 25 * 1024 * 1024


class _Unbound(Exception):
    """A condition names a parameter the statement does not bind."""


def _typed(column: str, value: Any) -> Any:
    """``value`` as column ``column`` compares it: a number for a numeric column."""
    if value is None:
        return None
    return int(value) if PAYLOAD_COLUMNS[column] in ("BIGINT", "INT") else str(value)


def _sort_key(column: str, value: Any) -> tuple[bool, Any]:
    """Where a row goes in ``ORDER BY column``: by the typed value, NULLs first (the default of
    an ascending order in Databricks SQL)."""
    typed = _typed(column, value)
    return (typed is not None, typed)


class _Condition:
    """A WHERE condition over the payload columns, parsed once and applied to each row."""

    def __init__(self, text: str, params: dict[str, Any]) -> None:
        self.tokens: list[str] = _TOKEN.findall(text)
        if "".join(self.tokens) != re.sub(r"\s+", "", text):
            raise ValueError(f"cannot read condition {text!r}")
        self.params = params
        self.at = 0

    def parse(self) -> Callable[[dict[str, Any]], bool]:
        check = self._any()
        if self.at != len(self.tokens):
            raise ValueError(f"unexpected {self.tokens[self.at]!r}")
        return check

    def _next(self) -> str:
        if self.at >= len(self.tokens):
            raise ValueError("the condition ends too early")
        self.at += 1
        return self.tokens[self.at - 1]

    def _peek(self, word: str) -> bool:
        return self.at < len(self.tokens) and self.tokens[self.at].upper() == word

    def _any(self) -> Callable[[dict[str, Any]], bool]:
        parts = [self._all()]
        while self._peek("OR"):
            self.at += 1
            parts.append(self._all())
        return lambda row: any(p(row) for p in parts)

    def _all(self) -> Callable[[dict[str, Any]], bool]:
        parts = [self._one()]
        while self._peek("AND"):
            self.at += 1
            parts.append(self._one())
        return lambda row: all(p(row) for p in parts)

    def _one(self) -> Callable[[dict[str, Any]], bool]:
        if self._peek("("):
            self.at += 1
            inner = self._any()
            if self._next() != ")":
                raise ValueError("a parenthesis is not closed")
            return inner
        column = self._next()
        if self._peek("IS"):
            return self._null_test(column)
        op, param = self._next(), self._next()
        if column not in PAYLOAD_COLUMNS or op not in _COMPARE or not param.startswith(":"):
            raise ValueError(f"cannot compare {column} {op} {param}")
        if param[1:] not in self.params:
            raise _Unbound(param[1:])
        bound = _typed(column, self.params[param[1:]])
        compare = _COMPARE[op]

        def check(row: dict[str, Any]) -> bool:
            value = _typed(column, row.get(column))
            return value is not None and compare(value, bound)

        return check

    def _null_test(self, column: str) -> Callable[[dict[str, Any]], bool]:
        """``column IS [NOT] NULL``, ``IS`` already seen."""
        self.at += 1
        negated = self._peek("NOT")
        if negated:
            self.at += 1
        if column not in PAYLOAD_COLUMNS or self._next().upper() != "NULL":
            raise ValueError(f"cannot test {column} for NULL")
        return lambda row: (row.get(column) is None) != negated


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
        self.inline_byte_limit = INLINE_BYTE_LIMIT
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
        if found["where"]:
            params = {p["name"]: p.get("value") for p in req.arg("parameters") or []}
            try:
                condition = _Condition(found["where"], params).parse()
            except _Unbound as exc:
                return self._failed(
                    "BAD_REQUEST", f"[UNBOUND_SQL_PARAMETER] Found the unbound :{exc}."
                )
            except ValueError as exc:
                return self._failed("BAD_REQUEST", f"[PARSE_SYNTAX_ERROR] {exc}: {statement}")
            selected = [r for r in selected if condition(r)]
        if found["order"]:
            keys = [k.strip() for k in found["order"].split(",")]
            if not set(keys) <= set(PAYLOAD_COLUMNS):
                return self._failed(
                    "BAD_REQUEST", f"[UNRESOLVED_COLUMN] Cannot order {table} by {keys}."
                )
            selected.sort(key=lambda r: tuple(_sort_key(k, r.get(k)) for k in keys))
        if found["limit"]:
            selected = selected[: int(found["limit"])]
        data = [[_cell(row.get(c)) for c in columns] for row in selected]
        if len(json.dumps(data).encode()) > self.inline_byte_limit:
            return self._failed(
                "BAD_REQUEST",
                f"The result exceeds the {self.inline_byte_limit} bytes an INLINE result may "
                "hold: use disposition EXTERNAL_LINKS, or read fewer rows at a time.",
            )
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
