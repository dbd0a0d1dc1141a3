"""Experiment tracking interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping

from mintaka.domain.runs import Run, RunStatus


class RunTracking(ABC):
    """``Capability.RUNS``: experiment runs mirrored into the cloud's tracking service."""

    @abstractmethod
    def create_run(self, run: Run) -> dict[str, str]:
        """Create the run in the cloud (idempotent on ``run.id``); returns its backend ids."""

    @abstractmethod
    def log_params(self, run_id: str, params: Mapping[str, str]) -> None: ...

    @abstractmethod
    def log_metrics(self, run_id: str, metrics: Mapping[str, float]) -> None: ...

    @abstractmethod
    def end_run(self, run_id: str, status: RunStatus) -> None: ...

    @abstractmethod
    def get_run(self, run_id: str) -> Run:
        """The run as the cloud holds it; ``NotFound`` when missing."""
