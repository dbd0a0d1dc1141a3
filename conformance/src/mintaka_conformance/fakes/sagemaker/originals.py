"""moto's own response methods, saved by :func:`~.install` before the extension replaces them."""

from __future__ import annotations

from typing import Any

ORIGINALS: dict[str, Any] = {}


def call_original(response: Any, name: str) -> Any:
    """Run moto's implementation of operation ``name`` on ``response``."""
    return ORIGINALS[name](response)
