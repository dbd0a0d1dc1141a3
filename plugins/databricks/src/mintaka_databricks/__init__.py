"""Mintaka's Databricks backend: Unity Catalog models, serving endpoints, Jobs and inference tables.

Importing this package does not import ``databricks-sdk``; the backend module does, when Mintaka
selects the backend.
"""

from __future__ import annotations

__all__: list[str] = []
