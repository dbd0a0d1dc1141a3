"""The audit trail: a hash-chained, append-only log of every state change."""

from __future__ import annotations

from mintaka.audit.chain import GENESIS, AuditLog, canonical_bytes, link_hash

__all__ = ["GENESIS", "AuditLog", "canonical_bytes", "link_hash"]
