"""Ticket sinks: where an alert's ticket is sent besides Mintaka's own store.

The store always holds the ticket (``mintaka tickets list|ack|resolve``). Plugins add sinks
through the ``mintaka_ticket_sinks(sinks)`` hook by calling ``sinks.add(sink)``; the built-in
webhook sink posts the ticket as JSON to ``MINTAKA_TICKET_WEBHOOK`` when that is set. A sink
that fails is logged and recorded on the ticket; it never loses the ticket or the alert.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import Any, Protocol

from mintaka.domain.monitoring import Ticket

log = logging.getLogger(__name__)


class TicketSink(Protocol):
    name: str

    def open(self, ticket: Ticket, event: str) -> str:
        """Send the ticket (``event``: opened, updated, escalated); returns the sink's reference."""
        ...


class TicketSinks:
    """Collects sinks from plugins (registry-shaped, like backends)."""

    def __init__(self) -> None:
        self._sinks: dict[str, TicketSink] = {}

    def add(self, sink: TicketSink) -> None:
        self._sinks[sink.name] = sink

    def __iter__(self) -> Iterator[TicketSink]:
        return iter(self._sinks.values())


class WebhookSink:
    """POSTs ``{"event": ..., "ticket": {...}}`` to a URL (a chat room, an incident tool)."""

    name = "webhook"

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url
        self.timeout = timeout

    def open(self, ticket: Ticket, event: str) -> str:
        import httpx

        response = httpx.post(
            self.url,
            json={"event": event, "ticket": ticket.model_dump(mode="json")},
            timeout=self.timeout,
        )
        response.raise_for_status()
        return str(response.headers.get("location") or response.status_code)


def sink_reference(answer: object) -> str:
    """A sink's answer as the ticket records it: a sink that answers with no reference (None)
    sent the ticket all the same, and one that answers with a number (an incident tool's ticket
    number) is kept as its digits, so every ticket stored stays a readable ``Ticket``."""
    if answer is None:
        return "sent"
    return answer if isinstance(answer, str) else str(answer)


def builtin_sinks() -> list[Any]:
    url = os.environ.get("MINTAKA_TICKET_WEBHOOK")
    return [WebhookSink(url)] if url else []
