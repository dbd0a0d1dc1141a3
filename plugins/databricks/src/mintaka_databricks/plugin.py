"""The plugin module named by the ``mintaka`` entry point; it imports no SDK."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mintaka import hookimpl

# Where this backend opts into the conformance suite (a source checkout of the plugin).
CONFORMANCE_SUITE = Path(__file__).resolve().parents[2] / "tests" / "test_databricks_conformance.py"


@hookimpl
def mintaka_register_backends(registry: Any) -> None:
    from mintaka_databricks.backend import DatabricksBackend

    registry.add(DatabricksBackend)


@hookimpl
def mintaka_conformance_suites(suites: Any) -> None:
    if CONFORMANCE_SUITE.is_file():
        suites.add("databricks", CONFORMANCE_SUITE)
