"""Registers the local reference backend through the same hook as any third-party plugin."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mintaka.hookspecs import hookimpl
from mintaka.plugins import BackendRegistry

if TYPE_CHECKING:
    from mintaka.cli.conformance import ConformanceSuites

# The local backend's opt-in to the conformance suite lives with the repository's tests, so
# ``mintaka conformance matrix`` finds it in a source checkout (not in an installed wheel).
CONFORMANCE_SUITE = (
    Path(__file__).resolve().parents[3] / "tests" / "conformance" / "test_local_conformance.py"
)


@hookimpl
def mintaka_register_backends(registry: BackendRegistry) -> None:
    from mintaka.local.backend import LocalBackend

    registry.add(LocalBackend)


@hookimpl
def mintaka_conformance_suites(suites: ConformanceSuites) -> None:
    if CONFORMANCE_SUITE.is_file():
        suites.add("local", CONFORMANCE_SUITE)
