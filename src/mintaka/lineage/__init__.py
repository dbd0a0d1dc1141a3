"""The lineage graph: recorded automatically, persisted in the store, walked in SQL."""

from __future__ import annotations

from mintaka.lineage.graph import LineageStore, split_node_id

__all__ = ["LineageStore", "split_node_id"]
