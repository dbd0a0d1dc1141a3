"""Registers the SageMaker backend. Importing this module imports no AWS SDK."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mintaka.hookspecs import hookimpl
from mintaka.plugins import BackendRegistry

if TYPE_CHECKING:
    from mintaka.cli.conformance import ConformanceSuites

# The conformance opt-in lives with the plugin's tests: found in a source checkout only.
CONFORMANCE_SUITE = Path(__file__).resolve().parents[2] / "tests" / "test_sagemaker_conformance.py"


@hookimpl
def mintaka_register_backends(registry: BackendRegistry) -> None:
    from mintaka_sagemaker.backend import SageMakerBackend

    registry.add(SageMakerBackend)


@hookimpl
def mintaka_conformance_suites(suites: ConformanceSuites) -> None:
    if CONFORMANCE_SUITE.is_file():
        suites.add("sagemaker", CONFORMANCE_SUITE)
