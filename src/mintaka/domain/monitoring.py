"""Monitoring: captured traffic, signals with owners, alerts and the tickets they open."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, field_validator

from mintaka.domain.base import AwareDatetime, JSONDict, Record, Spec
from mintaka.monitoring.windows import parse_unmeasured_after


class CaptureConfig(Spec):
    """Request/response capture on an endpoint, as the backend configures it natively."""

    enabled: bool = True
    sample_percent: int = Field(default=100, ge=0, le=100)
    capture_inputs: bool = True
    capture_outputs: bool = True
    destination: str | None = None


class CapturedRecord(Record):
    """One captured request/response pair read back from the backend."""

    endpoint: str
    route: str | None = None
    event_id: str
    at: AwareDatetime
    inputs: JSONDict | list[JSONDict] | None = None
    outputs: JSONDict | list[JSONDict] | list[float] | list[int] | None = None
    extra: JSONDict = Field(default_factory=dict)


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class SignalKind(StrEnum):
    DRIFT = "drift"
    PERFORMANCE = "performance"
    FAIRNESS = "fairness"
    TELEMETRY = "telemetry"


MAX_ESCALATION_MINUTES = 366 * 24 * 60  # a step later than a year is a mistake


class Escalation(Spec):
    """Hand an unacknowledged ticket to ``to`` this many minutes after the step before it."""

    after_minutes: float = Field(gt=0, le=MAX_ESCALATION_MINUTES)
    to: str


class Signal(Spec):
    """What is measured, against what threshold, and who answers for it."""

    name: str
    kind: SignalKind
    metric: str
    threshold: float
    window: str = "1h"
    severity: Severity = Severity.WARNING
    owner: str
    escalation: list[Escalation] = Field(default_factory=list)
    runbook_url: str | None = None
    retrain: bool = Field(
        default=False,
        description="a drift or performance alert on this signal asks for the model's retraining"
        " (the mintaka_retraining_requested hook)",
    )
    positive: bool | int | str | None = Field(
        default=None,
        description="the positive class of the labels and predicted classes, for fairness"
        " signals, roc_auc and calibration_error; needed unless the classes are 0/1 (or boolean),"
        " where 1 is positive",
    )
    unmeasured_after: str = Field(
        default="24h",
        description="how long the signal may measure nothing (no traffic, no labels, too few"
        " rows) before the runner raises an 'unmeasured' alert for it, as a time window is"
        ' written ("30m", "24h", "3d"; 1m to 366d), however often the runner runs',
    )

    @field_validator("unmeasured_after")
    @classmethod
    def _unmeasured_after_is_a_duration(cls, value: str) -> str:
        """Refuse an ``unmeasured_after`` that is no duration, or is under a minute or over a
        year, when the signal is declared rather than when the runner first needs it."""
        parse_unmeasured_after(value)
        return value


class MonitorSpec(Spec):
    endpoint: str
    model: str
    signals: list[Signal]


class Alert(Record):
    id: str
    signal: str
    endpoint: str
    value: float
    threshold: float
    severity: Severity
    at: AwareDatetime
    details: JSONDict = Field(default_factory=dict)


class TicketStatus(StrEnum):
    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


class Ticket(Record):
    """The work item an alert opens; one stays open per signal and endpoint until resolved."""

    id: str
    alert_id: str
    signal: str
    endpoint: str
    owner: str
    severity: Severity
    status: TicketStatus
    runbook_url: str | None = None
    escalation: tuple[Escalation, ...] = ()
    escalation_level: int = 0
    alerts: int = 1
    opened_at: AwareDatetime
    updated_at: AwareDatetime
    acked_by: str | None = None
    sinks: dict[str, str] = Field(default_factory=dict)
