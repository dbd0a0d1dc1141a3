"""moto's own response methods, saved by :func:`~.install` before the extension replaces them."""

from __future__ import annotations

from typing import Any

from moto.core.responses import ActionResult

ORIGINALS: dict[str, Any] = {}


def call_original(response: Any, name: str) -> ActionResult:
    """Run moto's implementation of operation ``name`` on ``response``."""
    result = ORIGINALS[name](response)
    assert isinstance(result, ActionResult), f"moto's {name} no longer returns an ActionResult"
    return result


def original_body(response: Any, name: str) -> dict[str, Any]:
    """moto's answer to operation ``name`` as a mutable dict, for the extension to complete."""
    result = call_original(response, name).result
    assert isinstance(result, dict), f"moto's {name} no longer answers with a dict"
    return dict(result)
