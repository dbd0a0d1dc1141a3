"""The control-plane store (SQLAlchemy Core; SQLite in WAL mode by default)."""

from __future__ import annotations

from mintaka.store.engine import Store, default_url

__all__ = ["Store", "default_url"]
