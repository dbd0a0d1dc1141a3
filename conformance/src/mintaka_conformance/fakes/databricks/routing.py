"""Requests, responses, errors and the path router shared by every area of the fake workspace."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


class ApiError(Exception):
    """An error answered the way Databricks answers it: an HTTP status and a JSON error body.

    The SDK picks its exception class from ``error_code`` first (``RESOURCE_DOES_NOT_EXIST`` ->
    ``ResourceDoesNotExist``) and from the status second, so both must match the real service.
    """

    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message

    def body(self) -> dict[str, Any]:
        return {"error_code": self.error_code, "message": self.message}


def not_found(message: str) -> ApiError:
    return ApiError(404, "RESOURCE_DOES_NOT_EXIST", message)


def already_exists(message: str, status: int = 409) -> ApiError:
    return ApiError(status, "RESOURCE_ALREADY_EXISTS", message)


def invalid(message: str) -> ApiError:
    return ApiError(400, "INVALID_PARAMETER_VALUE", message)


def invalid_state(message: str) -> ApiError:
    return ApiError(400, "INVALID_STATE", message)


def conflict(message: str) -> ApiError:
    return ApiError(409, "RESOURCE_CONFLICT", message)


@dataclass
class Request:
    """One parsed API call; ``arg`` reads a field from the JSON body, then from the query string."""

    method: str
    path: str
    query: Mapping[str, Sequence[str]]
    body: Mapping[str, Any]
    headers: Mapping[str, str]
    params: dict[str, str] = field(default_factory=dict)
    raw: bytes = b""
    """The body as sent: what a Files API upload carries (its ``body`` is then empty)."""

    def arg(self, name: str, default: Any = None) -> Any:
        if name in self.body:
            return self.body[name]
        values = self.query.get(name)
        if values:
            return values[0]
        return default

    def args(self, name: str) -> list[Any]:
        """A repeated field: a JSON list in the body or a repeated query parameter."""
        if name in self.body:
            value = self.body[name]
            return list(value) if isinstance(value, list) else [value]
        return list(self.query.get(name, ()))

    def require(self, name: str) -> Any:
        value = self.arg(name)
        if value is None or value == "":
            raise invalid(f"Missing required field: {name}")
        return value

    def int_arg(self, name: str, default: int | None = None) -> int | None:
        value = self.arg(name)
        if value is None or value == "":
            return default
        try:
            return int(value)
        except (TypeError, ValueError):
            raise invalid(f"Invalid value for {name}: {value!r} is not an integer") from None

    def bool_arg(self, name: str, default: bool = False) -> bool:
        value = self.arg(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        return str(value).lower() == "true"


@dataclass
class Response:
    status: int = 200
    body: Any = None
    text: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    data: bytes | None = None
    """Raw bytes (a Files API download), sent as ``application/octet-stream``."""

    def encode(self) -> tuple[bytes, str]:
        if self.data is not None:
            return self.data, "application/octet-stream"
        if self.status == 204:
            return b"", "application/json"
        if self.text is not None:
            return self.text.encode("utf-8"), "text/plain; version=0.0.4; charset=utf-8"
        return json.dumps({} if self.body is None else self.body).encode(
            "utf-8"
        ), "application/json"


Handler = Callable[[Request], "Response | dict[str, Any] | None"]


class Router:
    """Maps ``(method, path)`` to a handler; ``{name}`` segments match one path segment,
    ``{name:path}`` matches the rest of the path (UC full names contain dots, never slashes)."""

    def __init__(self) -> None:
        self._routes: list[tuple[str, re.Pattern[str], Handler]] = []

    def add(self, method: str, template: str, handler: Handler) -> None:
        pattern = re.sub(r"\{(\w+):path\}", r"(?P<\1>.+)", template)
        pattern = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
        self._routes.append((method, re.compile(f"^{pattern}$"), handler))

    def match(self, method: str, path: str) -> tuple[Handler, dict[str, str]]:
        path_known = False
        for route_method, pattern, handler in self._routes:
            found = pattern.match(path)
            if found is None:
                continue
            path_known = True
            if route_method == method:
                return handler, found.groupdict()
        if path_known:
            raise ApiError(405, "BAD_REQUEST", f"Method {method} is not allowed on {path}")
        raise ApiError(404, "ENDPOINT_NOT_FOUND", f"No API found for '{method} {path}'")


def encode_page_token(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode()


def decode_page_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        prefix, _, offset = text.partition(":")
        if prefix != "offset":
            raise ValueError(text)
        return int(offset)
    except (ValueError, UnicodeDecodeError):
        raise invalid(f"Invalid page token: {token!r}") from None


def key_values(pairs: Mapping[str, str]) -> list[dict[str, str]]:
    """Tags or params as the REST APIs render them: ``[{"key": k, "value": v}]``, sorted."""
    return [{"key": k, "value": v} for k, v in sorted(pairs.items())]


def paginate(
    items: Sequence[Any], page_token: str | None, page_size: int
) -> tuple[list[Any], str | None]:
    """One page of ``items`` and the token for the next page (``None`` on the last page)."""
    start = decode_page_token(page_token)
    page = list(items[start : start + page_size])
    following = start + page_size
    return page, encode_page_token(following) if following < len(items) else None


def page_answer(
    key: str,
    items: Sequence[Any],
    page_token: str | None,
    page_size: int,
    render: Callable[[Any], Any] | None = None,
) -> dict[str, Any]:
    """A listing's answer: one page of ``items`` under ``key`` (each through ``render``, when
    given) and ``next_page_token`` unless it is the last page."""
    page, token = paginate(items, page_token, page_size)
    body: dict[str, Any] = {key: [render(item) for item in page] if render else page}
    if token:
        body["next_page_token"] = token
    return body


# A string value in an MLflow search filter as MLflow's parser tokenises it (sqlparse): in single
# or double quotes, with a doubled or backslash-escaped quote of the same kind inside.
FILTER_STRING = r"""(?:'(?:''|\\'|[^'])*'|"(?:""|\\"|[^"])*")"""


def filter_string(token: str) -> str:
    """The value a quoted ``FILTER_STRING`` token stands for, as MLflow reads it: the text between
    the quotes as written (MLflow strips the quotes and unescapes nothing, so ``'Bob''s'`` is
    ``Bob''s``, and a value holding a single quote is written in double quotes)."""
    return token[1:-1]
