"""The plugin module named by the ``mintaka`` entry point; it imports no SDK."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mintaka import hookimpl

# Where this backend opts into the conformance suite (a source checkout of the plugin).
TESTS = Path(__file__).resolve().parents[2] / "tests"
CONFORMANCE_SUITE = TESTS / "test_databricks_conformance.py"
WORKSPACE_CONFORMANCE_SUITE = TESTS / "test_databricks_workspace_conformance.py"


@hookimpl
def mintaka_register_backends(registry: Any) -> None:
    from mintaka_databricks.backend import DatabricksBackend, DatabricksWorkspaceBackend

    registry.add(DatabricksBackend)
    registry.add(DatabricksWorkspaceBackend)


@hookimpl
def mintaka_conformance_suites(suites: Any) -> None:
    if CONFORMANCE_SUITE.is_file():
        suites.add("databricks", CONFORMANCE_SUITE)
    if WORKSPACE_CONFORMANCE_SUITE.is_file():
        suites.add("databricks_workspace", WORKSPACE_CONFORMANCE_SUITE)
