"""The type of the shared ``make_artifact`` fixture, for tests that take it (a uniquely named
module: every test folder's ``conftest`` is imported as ``conftest``)."""

from __future__ import annotations

from typing import Any

from mintaka_conformance.scenarios import MakeArtifact

__all__ = ["SERVABLE_FUNCTION", "MakeArtifact", "answers_zero"]

SERVABLE_FUNCTION = "artifact_kit:answers_zero"
"""The function a ``make_servable`` artifact names in its ``pyfunc.json``."""


def answers_zero(rows: list[dict[str, Any]]) -> list[Any]:
    """The prediction of a ``make_servable`` model: 0.0 for every row."""
    return [0.0 for _ in rows]
