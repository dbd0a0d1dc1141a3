"""The plugin module named by the ``mintaka`` entry point."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mintaka import hookimpl

# Where this backend opts into the conformance suite (a source checkout of the plugin).
CONFORMANCE_SUITE = Path(__file__).resolve().parents[2] / "tests" / "test_memory_conformance.py"


@hookimpl
def mintaka_register_backends(registry: Any) -> None:
    from mintaka_memory.backend import MemoryBackend

    registry.add(MemoryBackend)


@hookimpl
def mintaka_conformance_suites(suites: Any) -> None:
    if CONFORMANCE_SUITE.is_file():
        suites.add("memory", CONFORMANCE_SUITE)
