"""Monitors and signals shared by the monitoring tests (a uniquely named module: every test
folder's ``conftest`` is imported as ``conftest``, so helpers imported by name live here)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mintaka.domain.monitoring import MonitorSpec, Signal, SignalKind

LogPredictions = Callable[[Sequence[tuple[dict[str, Any], Any]]], list[str]]


def scoring_monitor(*signals: Signal) -> MonitorSpec:
    """A monitor of model ``credit`` on endpoint ``scoring``, where ``log_predictions`` writes."""
    return MonitorSpec(endpoint="scoring", model="credit", signals=list(signals))


def drift_signal(**overrides: Any) -> Signal:
    """A PSI drift signal on ``income`` above 0.2, owned by ``oncall``; ``overrides`` set the
    other fields or replace these."""
    values: dict[str, Any] = {
        "name": "income-drift",
        "kind": SignalKind.DRIFT,
        "metric": "psi:income",
        "threshold": 0.2,
        "owner": "oncall",
    }
    values.update(overrides)
    return Signal(**values)
