"""Audit events: every state change, in a hash-chained, append-only log."""

from __future__ import annotations

from pydantic import Field

from mintaka.domain.base import AwareDatetime, JSONDict, Record


class AuditEvent(Record):
    """One state change. ``seq``, ``prev_hash`` and ``hash`` are assigned by the chain."""

    seq: int = Field(ge=1)
    at: AwareDatetime
    actor: str
    action: str
    subject: str
    backend: str | None = None
    details: JSONDict = Field(default_factory=dict)
    prev_hash: str
    hash: str


class ChainReport(Record):
    """The outcome of verifying the audit chain."""

    ok: bool
    events: int
    first_bad_seq: int | None = None
    reason: str | None = None
