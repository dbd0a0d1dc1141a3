"""What every part of the Databricks backend shares: the client, the settings, raw REST calls."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from mintaka.clock import pause
from mintaka.interfaces import BackendContext
from mintaka_databricks.client import build_client, sdk_clock
from mintaka_databricks.errors import sdk_errors
from mintaka_databricks.names import mintaka_name, uc_leaf
from mintaka_databricks.settings import DatabricksSettings

if TYPE_CHECKING:
    from databricks.sdk import WorkspaceClient

T = TypeVar("T")

# Tags Mintaka projects onto the cloud's objects; user tags may not use the prefix.
TAG_PREFIX = "mintaka."
ID_TAG = "mintaka.id"
DIGEST_TAG = "mintaka.digest"
KEY_TAG = "mintaka.idempotency_key"
FLAVOR_TAG = "mintaka.flavor"
STAGE_TAG = "mintaka.stage"
APPROVAL_TAG = "mintaka.approval"


class WorkspaceAccess:
    """The client (built on first use), the settings and helpers for calls the SDK lacks."""

    settings: DatabricksSettings
    context: BackendContext
    _client: WorkspaceClient | None = None

    @property
    def client(self) -> WorkspaceClient:
        if self._client is None:
            self._client = build_client(self.settings, self.context.clock)
        return self._client

    def _call(self, what: str, call: Callable[[], T]) -> T:
        """Run one SDK call with its errors translated."""
        with sdk_errors(what):
            return call()

    def _rest(
        self,
        method: str,
        path: str,
        what: str,
        *,
        query: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        response_headers: list[str] | None = None,
    ) -> dict[str, Any]:
        """A REST call through the SDK's own client (auth, retries, error mapping)."""
        with sdk_errors(what):
            answer = self.client.api_client.do(
                method, path, query=query, body=body, response_headers=response_headers
            )
        return answer if isinstance(answer, dict) else {}

    def _pages(self, path: str, key: str, what: str, query: dict[str, Any]) -> Iterator[Any]:
        """The ``key`` items of every page of a paged REST listing (``page_token`` onwards)."""
        token: str | None = None
        while True:
            page = self._rest(
                "GET", path, what, query={**query, **({"page_token": token} if token else {})}
            )
            yield from page.get(key) or []
            token = page.get("next_page_token")
            if not token:
                return

    def _full_name(self, name: str) -> str:
        """The registry's name of Mintaka model ``name`` (what a served entity names)."""
        return f"{self.settings.catalog}.{self.settings.schema_name}.{uc_leaf(name)}".lower()

    def _model_of(self, entity: str) -> str | None:
        """The Mintaka model a served entity names, or ``None`` when it is not one of ours."""
        catalog, _, rest = entity.partition(".")
        schema, _, leaf = rest.partition(".")
        ours = (catalog, schema) == (
            self.settings.catalog.lower(),
            self.settings.schema_name.lower(),
        )
        return mintaka_name(leaf.lower()) if ours else None

    def _pause(self, seconds: float) -> None:
        """Wait between polls on the backend's clock (moved on at once in tests)."""
        pause(self.context.clock, seconds)

    def _elapsed_clock(self) -> Any:
        return sdk_clock(self.context.clock)
