"""``platform.monitoring``: monitor specs, alerts that become tickets, escalation, coverage and
the runner that evaluates it all without a person.

Every signal has an owner, a threshold, a window, a severity, an escalation path and a runbook.
An alert is audited, handed to ``mintaka_alert`` observers, and opens a ticket; a repeated alert
for the same signal and endpoint updates the open ticket instead of opening another (a unique
index makes this hold even for two runners at once), raising its severity when the new alert is
more severe. A ticket nobody acknowledges in time moves
to the next person on its escalation path.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import logging
import math
import re
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError as SQLIntegrityError

from mintaka.capabilities import Capability
from mintaka.domain.base import parse_enum
from mintaka.domain.monitoring import (
    Alert,
    Escalation,
    MonitorSpec,
    Severity,
    Signal,
    SignalKind,
    Ticket,
    TicketStatus,
)
from mintaka.domain.names import validate_endpoint_name
from mintaka.errors import (
    Conflict,
    MintakaError,
    NotFound,
    UnsupportedCapability,
    ValidationError,
)
from mintaka.monitoring.checks import (
    _check_alert,
    _check_details,
    _check_handlers,
    _check_printed,
    _check_signal_name,
)
from mintaka.monitoring.kinds import MIN_VALUES, STATISTICS, kinds_with
from mintaka.monitoring.stored import (
    _is_stored,
    _stored_monitor,
    _stored_signal_names,
    _unread_monitor,
)
from mintaka.monitoring.tickets import TicketSinks, builtin_sinks, sink_reference
from mintaka.monitoring.windows import parse_unmeasured_after, parse_window
from mintaka.numbers import as_float
from mintaka.store.schema import (
    audit_events,
    endpoints,
    labels,
    monitors,
    predictions,
    tickets,
)

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from mintaka.domain.audit import AuditEvent
    from mintaka.domain.registry import ModelVersion
    from mintaka.domain.runs import DatasetVersion
    from mintaka.domain.serving import Endpoint
    from mintaka.monitoring.metrics import Joined
    from mintaka.monitoring.profiles import DatasetProfile
    from mintaka.monitoring.training_data import SampleCache
    from mintaka.platform import Platform

SIGNAL_FAILED = "monitor.signal.failed"
SIGNAL_RECOVERED = "monitor.signal.recovered"
SIGNAL_FAILED_ENDED = "monitor.signal.failed.ended"  # a failure no longer this signal's
SIGNAL_UNMEASURED = "monitor.signal.unmeasured"
SIGNAL_MEASURED = "monitor.signal.measured"
SIGNAL_UNMEASURED_ENDED = "monitor.signal.unmeasured.ended"  # a stretch no longer this signal's
UNMEASURED = "unmeasured"  # the kind of alert a signal left unmeasured raises, and its ticket's
HOUR = timedelta(hours=1)
NOTHING_TO_MEASURE = "nothing to measure in the window (no traffic, or no labels yet)"
NO_LATENCY = "the endpoint's metrics give no latency for the window: nothing to measure"


# A number standing on its own in an error (a count, a share, an example value), not a digit of a
# name, an id or a version such as ``ds-1f2e`` or ``credit:2``.
_NUMBER = re.compile(r"(?<![\w.:-])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w-])")
# A string as ``repr`` quotes it in an error (a feature's name, a class): a name, even one that is
# all digits ('2023'), never a count. An apostrophe inside a word (the model's) opens none.
_QUOTED = re.compile(r"""(?<!\w)(?:'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")(?!\w)""")


def _counts_masked(error: str) -> str:
    """``error`` with every number outside quotes replaced by ``#``."""
    kept: list[str] = []
    start = 0
    for quoted in _QUOTED.finditer(error):
        kept.append(_NUMBER.sub("#", error[start : quoted.start()]))
        kept.append(quoted.group())
        start = quoted.end()
    kept.append(_NUMBER.sub("#", error[start:]))
    return "".join(kept)


def _error_text(exc: Exception) -> str:
    """How a failure the runner reports reads: a Mintaka error's message, any other error as
    its type and message (an unexpected one names what went wrong)."""
    return str(exc) if isinstance(exc, MintakaError) else repr(exc)


def _same_failure(previous: str, error: str) -> bool:
    """Whether ``error`` is the failure ``previous`` recorded, told apart by its words and names,
    not by its counts: a window that grows holds more of what fails it ("2 of 20 ... are
    missing" after "1 of 10"), which is the same failure persisting. A number in quotes is a
    name or a class ('2023' and '2024' are two features), so it tells failures apart."""
    return _counts_masked(previous) == _counts_masked(error)


def _is_unmeasured_ticket(signal: str) -> bool:
    """Whether a ticket's ``signal`` key is the ``ENDPOINT:SIGNAL:unmeasured`` ticket of a
    signal left unmeasured, not a threshold alert of a signal named like that kind of alert."""
    parts = signal.split(":")
    return len(parts) == 3 and parts[2] == UNMEASURED


def _open_details(
    conn: Connection, opening: str, closing: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """The details of each subject's open ``opening`` event (see :func:`_open_events`)."""
    found = _open_events(conn, opening, closing)
    return {subject: event.get("details", {}) for subject, event in found.items()}


def _open_events(
    conn: Connection, opening: str, closing: Sequence[str]
) -> dict[str, dict[str, Any]]:
    """Each subject's last ``opening`` audit event that no ``closing`` event followed, as its
    canonical JSON, by subject ("endpoint:signal"), in chain order. The database picks each
    subject's latest of those events, so a pass reads one row a subject still open, however
    long the closed history before it grows."""
    latest = (
        select(func.max(audit_events.c.seq))
        .where(audit_events.c.action.in_([opening, *closing]))
        .group_by(audit_events.c.subject)
    )
    rows = conn.execute(
        select(audit_events.c.subject, audit_events.c.canonical)
        .where(audit_events.c.seq.in_(latest), audit_events.c.action == opening)
        .order_by(audit_events.c.seq)
    )
    return {row.subject: json.loads(bytes(row.canonical)) for row in rows}


def _latest_releases(conn: Connection) -> dict[str, str]:
    """When each endpoint was last released from its kill switch, as its audit event stored it.
    The database picks each endpoint's latest release, so a pass reads one row an endpoint,
    however many kills it has been released from."""
    latest = (
        select(func.max(audit_events.c.seq))
        .where(audit_events.c.action == "endpoint.unkill")
        .group_by(audit_events.c.subject)
    )
    rows = conn.execute(
        select(audit_events.c.subject, audit_events.c.at).where(audit_events.c.seq.in_(latest))
    )
    return {str(row.subject): str(row.at) for row in rows if row.at}


@dataclass(frozen=True)
class Failing:
    """A signal's open failure: the error audited, and when it was (its first failing pass)."""

    error: str
    at: datetime


def _failures(conn: Connection) -> dict[str, Failing]:
    """The signals ("endpoint:signal") whose last audited evaluation failed, with the error
    and when that failure was audited."""
    failed = _open_events(conn, SIGNAL_FAILED, [SIGNAL_RECOVERED, SIGNAL_FAILED_ENDED])
    return {
        subject: Failing(str(event.get("details", {}).get("error", "")), _instant(event["at"]))
        for subject, event in failed.items()
    }


def _failing_signals(conn: Connection) -> dict[str, str]:
    """The signals ("endpoint:signal") whose last audited evaluation failed, with the error."""
    return {subject: found.error for subject, found in _failures(conn).items()}


def _instant(stored: str) -> datetime:
    """A time as a store wrote it, as an aware instant: one written without a timezone is UTC
    (the zone Mintaka writes every time in), so comparing it with the others never raises."""
    found = datetime.fromisoformat(stored)
    return found if found.tzinfo is not None else found.replace(tzinfo=UTC)


@dataclass(frozen=True)
class OnDuty:
    """Since when a signal has watched its endpoint as it is now, and what began that: an
    unmeasured stretch older than ``since`` is not this signal's, for the reason ``why``."""

    since: datetime
    why: str


@dataclass(frozen=True)
class Unmeasured:
    """A signal the runner has measured nothing for since ``since`` (the time of the first pass
    of the stretch), for the reason ``why``."""

    since: datetime
    why: str


def _unmeasured_signals(conn: Connection) -> dict[str, Unmeasured]:
    """The signals ("endpoint:signal") whose last audited outcome left them unmeasured."""
    stretches = _open_details(conn, SIGNAL_UNMEASURED, [SIGNAL_MEASURED, SIGNAL_UNMEASURED_ENDED])
    return {
        subject: Unmeasured(_instant(str(details["since"])), str(details.get("why", "")))
        for subject, details in stretches.items()
    }


log = logging.getLogger(__name__)

# ``error_rate`` is the share of requests the endpoint failed on (server errors, a 5xx);
# ``invalid_rate`` the share it refused as invalid (a 4xx: a missing feature, say), apart, as the
# clients' bad requests are no fault of the model (``EndpointMetrics``).
TELEMETRY_METRICS = ("error_rate", "invalid_rate", "p99_latency_ms", "p50_latency_ms")
PREDICTION = "prediction"  # ``psi:prediction`` watches the model's own output
PREDICTION_SOURCE = "the model's own scores"  # the reference of ``PREDICTION``, numeric
DRIFT_METRICS = ("psi", "jensen_shannon", "wasserstein", "ks_statistic", "chi2_statistic")
FAIRNESS_METRICS = ("demographic_parity", "equalized_odds")

# A threshold marks where a metric turns bad. For these the bad side is below it: an accuracy or
# ROC AUC under the threshold alerts. For every other metric (drift statistics, latencies, error
# rate, RMSE, calibration error, fairness differences) a value above the threshold alerts.
Direction = Literal["below", "above"]
PERFORMANCE_METRICS: dict[str, Direction] = {
    "accuracy": "below",
    "roc_auc": "below",
    "rmse": "above",
    "calibration_error": "above",
}
# The performance metrics that read scores as the positive class's probability.
SCORE_METRICS = ("roc_auc", "calibration_error")
# The signals whose alerts ask for a retraining when marked ``retrain``.
RETRAINING_KINDS = (SignalKind.DRIFT, SignalKind.PERFORMANCE)
# The signals that compare classes, and so may name the positive one (``Signal.positive``).
_CLASS_KINDS = (SignalKind.FAIRNESS, SignalKind.PERFORMANCE)
SEVERITY_ORDER = (Severity.INFO, Severity.WARNING, Severity.CRITICAL)  # least severe first
# How far before the newest imported capture record a later import looks again.
CAPTURE_LAG = timedelta(hours=24)
# The signature dtypes of a string output (MLflow's, numpy's and pandas' names for one). Not
# ``object``: an object column holds numbers as often as strings.
STRING_DTYPES = frozenset({"string", "str", "category", "utf8"})
LABEL_CHUNK = 500  # prediction ids per IN (...) query, well under any database's parameter limit
# The fewest rows a drift group is measured on, alone or beside others: the fewest values any
# feature's drift is judged on (``kinds.MIN_VALUES``; most features need more, twenty a bin
# of its profile, see ``statistics.min_values``). With fewer, traffic that has not drifted at all
# crosses the usual thresholds by chance: a handful of rows left from before a redeploy, a 1 %
# canary, or the first requests on a new endpoint would alert on healthy traffic.
MIN_GROUP_ROWS = MIN_VALUES
# The fewest records of one version a performance or fairness signal judges beside another
# version's (a canary's, or those left from before a redeploy): with fewer, one record moves an
# accuracy or a rate difference by more than 2 %, and a canary's first handful would alert.
MIN_CLASS_GROUP_ROWS = 50
# Signature dtypes (by prefix) read as numbers from a training file.
_INTEGER_TYPES = ("int", "uint", "long")
_FLOAT_TYPES = ("float", "double", "number", "decimal")


def direction(signal: Signal) -> Direction:
    """On which side of the signal's threshold its values are bad (``PERFORMANCE_METRICS``)."""
    if signal.kind is SignalKind.PERFORMANCE:
        return PERFORMANCE_METRICS.get(signal.metric, "above")
    return "above"


def breaches(signal: Signal, value: float) -> bool:
    """Whether ``value`` is on the bad side of ``signal.threshold``. A value that is not a finite
    number is refused: NaN compares false with every threshold, and would pass as fine."""
    if not math.isfinite(value):
        raise ValidationError(f"signal {signal.name!r} measured {value}, not a finite number")
    if direction(signal) == "below":
        return value < signal.threshold
    return value > signal.threshold


def predicted_label(output: Any) -> Any:
    """The predicted class or value in a logged output: the output itself, or its ``"label"``
    (else ``"prediction"``) when the model answers with a mapping."""
    if isinstance(output, Mapping):
        return output.get("label", output.get("prediction"))
    return output


def predicted_classes(outputs: Sequence[Any], metric: str) -> list[Any]:
    """The predicted classes of logged outputs, for a metric that compares classes: an output
    that is a fractional number is a score, not a class, and comparing it with labels would
    report a wrong value, so it is refused."""
    found = [predicted_label(output) for output in outputs]
    for value in found:
        if isinstance(value, float) and not value.is_integer():
            raise ValidationError(
                f"{metric} compares predicted classes, but the logged outputs are scores (e.g. "
                f'{value:g}): log {{"label": ..., "score": ...}}, or watch roc_auc or '
                "calibration_error"
            )
    return found


def predicted_score(output: Any) -> float:
    """The predicted positive-class probability in a logged output: the output itself when it is
    a number, or its ``"score"`` (else ``"probability"``) when the model answers with a mapping."""
    if isinstance(output, Mapping):
        found = output.get("score", output.get("probability"))
    else:
        found = output
    if isinstance(found, bool) or not isinstance(found, int | float):
        raise ValidationError(f"logged output {output!r} carries no numeric score")
    score = as_float(found)
    if not math.isfinite(score):
        raise ValidationError(f"logged output {output!r} carries no finite score")
    return score


@dataclass(frozen=True)
class Coverage:
    """An endpoint that takes live traffic (or would, once its kill switch is released), its
    live routes, whether a monitor watches it, and whether it is killed (serving nothing)."""

    endpoint: str
    routes: tuple[str, ...]
    monitored: bool
    killed: bool = False


@dataclass(frozen=True)
class SignalFailure:
    """A signal the runner could not evaluate this time, and why (it skipped it and went on)."""

    endpoint: str
    signal: str
    error: str


@dataclass(frozen=True)
class EscalationFailure:
    """A ticket the runner could not move along its escalation path this time, and why (the
    other tickets still escalated); ``ticket`` is None when no ticket could be walked at all."""

    ticket: str | None
    error: str


@dataclass(frozen=True)
class SignalNote:
    """What a signal's measurement left out this time, and why (a drift group of too few rows):
    no failure, but monitoring that did not happen, so the run reports it."""

    endpoint: str
    signal: str
    note: str


@dataclass(frozen=True)
class Measurement:
    """One evaluation of a signal: its value (``None`` when there was nothing to measure) and,
    when part of what it watches could not be measured (a drift signal's feature whose
    statistic cannot be computed), why: the signal then alerts on its value and fails too."""

    value: float | None
    unmeasured: str | None = None
    note: str | None = None  # what was left out and why, no failure (an alert's ``note``)


def _whole(
    signal: Signal,
    rows: list[dict[str, Any]],
    measure: Callable[[Signal, list[dict[str, Any]]], float | None],
) -> Measurement:
    """``measure`` of ``rows``; fairness over fewer than two groups is no value but a note,
    as a statistic of too few values is (it says nothing about the model)."""
    from mintaka.monitoring.metrics import TooFewGroups

    try:
        return Measurement(measure(signal, rows))
    except TooFewGroups as exc:
        return Measurement(None, note=f"{exc}; a longer window may hold others")


@dataclass(frozen=True)
class Reference:
    """What drift is measured against: the stored training-data profile of ``dataset_id``, a
    training dataset of ``version``, the version taking most of an endpoint's traffic."""

    version: ModelVersion
    dataset_id: str
    profile: dict[str, Any]


@dataclass(frozen=True)
class VersionTraffic:
    """The logged inputs of a window that one model version answered (on ``route``), with the
    rows of the versions in ``also`` whose drift is measured against the same training-data
    profile, and what their drift is measured against (``None``: the version names no profiled
    training data)."""

    route: str
    model: str
    version: int
    reference: Reference | None
    rows: list[dict[str, Any]]
    also: tuple[str, ...] = ()  # the names of the other versions in the group

    @property
    def name(self) -> str:
        """How a failure or the monitor report names the group: ``route 'green' (credit:2)``,
        followed by the other versions of the group, if any."""
        return ", ".join((f"route {self.route!r} ({self.model}:{self.version})", *self.also))


NO_PROFILE = (
    "the version names no training dataset with a profile to compare with, so its drift "
    "cannot be measured"
)


NO_SCORES = (
    "the version names no training dataset with a profile, whose file its model could score, so "
    "the drift of its predictions cannot be measured"
)


@dataclass(frozen=True)
class VersionOutputs:
    """The logged outputs of a window that one model version answered (on ``route``)."""

    route: str
    model: str
    version: int
    rows: list[Any]

    @property
    def name(self) -> str:
        """How a failure names the version: ``route 'green' (credit:2)``."""
        return f"route {self.route!r} ({self.model}:{self.version})"


@dataclass(frozen=True)
class TrainingScores:
    """A model version's scores of a sample of its training data (``dataset``, as a failure
    names it), and how many of the ``read`` rows of the file were ``skipped`` as rows it cannot
    score (a model input missing, or not a number where one is declared)."""

    profile: DatasetProfile
    dataset: str
    skipped: int
    read: int

    def skipped_note(self) -> str:
        """What the reference left out, for the signal's note."""
        return (
            f"{self.skipped} of the {self.read} rows of {self.dataset} left out of its training "
            "scores: a model input missing or not a number where one is declared"
        )


class _Group(Protocol):
    """A drift group: what it is named by and the rows it holds."""

    @property
    def name(self) -> str: ...

    @property
    def rows(self) -> Sequence[Any]: ...


GroupT = TypeVar("GroupT", bound=_Group)
# Each version's prediction reference, or why it has none.
Scored = dict[tuple[str, int], "TrainingScores | str"]


@dataclass(frozen=True)
class RunReport:
    """One pass of the runner: the signals it measured, the alerts raised, the tickets
    escalated, the signals that failed (each skipped; the rest ran as usual) and the tickets
    whose escalation failed (the others escalated as usual). A drift signal measured on some of
    its features but not on others counts as measured and as failed."""

    evaluated: int
    alerts: tuple[Alert, ...]
    escalated: tuple[str, ...]
    failed: tuple[SignalFailure, ...] = ()
    notes: tuple[SignalNote, ...] = ()  # what each signal left out, alerting or not
    escalation_failed: tuple[EscalationFailure, ...] = ()


class MonitoringService:
    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self._sinks: TicketSinks | None = None

    # -- monitor specs -------------------------------------------------------------------------

    def add_monitor(self, spec: MonitorSpec) -> str:
        """Attach a monitor to an endpoint; every signal is validated before anything is stored.

        Idempotent: when the same monitor already watches the endpoint, its id is returned and
        nothing is added. A signal name another monitor of the endpoint already uses is a
        Conflict: an endpoint's alerts are ticketed by signal name. The same monitor is found
        before it is checked again: one whose endpoint moved on to another model is on record
        still, failing on each pass, and adding it again names it rather than refusing it.
        """
        existing = self._monitor_id(spec)
        if existing is not None:
            return existing
        self.check_monitor(spec)
        with self.platform.store.write() as conn:
            monitor_id, events = self.record_monitor(conn, spec)
        self.platform._after_commit(events)
        return monitor_id

    def record_monitor(self, conn: Connection, spec: MonitorSpec) -> tuple[str, list[AuditEvent]]:
        """Store ``spec``, checked already (:meth:`check_monitor`), with its ``monitor.add``
        audit event inside the caller's transaction ``conn``, so a monitor is recorded together
        with what it watches (a new endpoint) or not at all. Returns its id and the events to
        hand to ``_after_commit`` once the transaction commits; the same monitor already on duty
        is named instead, with no event. The monitors on duty are read under the audit chain's
        lock, so two processes adding the same monitor at once on a server database store it
        once (SQLite's write transactions are serialised already)."""
        self.platform.audit.lock(conn)
        existing = _same_monitor(conn, spec)
        if existing is not None:
            return existing, []
        monitor_id = self.platform.ids.new("mon")
        conn.execute(
            monitors.insert().values(
                id=monitor_id,
                endpoint=spec.endpoint,
                model=spec.model,
                spec=spec.model_dump(mode="json"),
                created_at=self.platform._now().isoformat(),
                created_by=self.platform.actor,
            )
        )
        event = self.platform._audit(
            conn,
            "monitor.add",
            spec.endpoint,
            monitor=monitor_id,
            signals=[s.name for s in spec.signals],
        )
        return monitor_id, [event]

    def _refuse_unreadable_telemetry(self, signal: Signal) -> None:
        """Refuse a telemetry signal on a backend that cannot read an endpoint's metrics back
        (no ``monitoring.metrics``): it could never be measured, only alerted on as unmeasured
        for good."""
        if signal.kind is SignalKind.TELEMETRY:
            self._metrics_readable(signal)

    def _metrics_readable(self, signal: Signal) -> None:
        """Raise UnsupportedCapability unless the backend reads endpoint metrics back, which
        telemetry ``signal`` is measured from."""
        if not self.platform.supports(Capability.MONITORING_METRICS):
            raise UnsupportedCapability(
                self.platform.backend.name,
                Capability.MONITORING_METRICS.value,
                f"telemetry signal {signal.name!r} is measured from the endpoint's request, error"
                " and latency metrics, which this backend cannot read back; watch it with drift,"
                " performance or fairness signals",
            )

    def check_monitor(
        self,
        spec: MonitorSpec,
        *,
        endpoint_recorded: bool = True,
        planned: Endpoint | None = None,
    ) -> None:
        """Refuse a monitor :meth:`add_monitor` would refuse. With ``endpoint_recorded=False``
        (an endpoint about to be adopted) the endpoint's record is not asked for: a drift
        signal's features are checked against the training data of the recorded versions the
        cloud's endpoint serves, which adoption records, so a monitor it would refuse is refused
        before anything is adopted. With ``planned`` (an endpoint about to be created, with the
        routes and traffic it is created with) neither the record nor the cloud is asked: the
        monitor must watch that endpoint, and is checked against its routes."""
        validate_endpoint_name(spec.endpoint)
        if planned is not None and spec.endpoint != planned.name:
            raise ValidationError(
                f"the monitor watches {spec.endpoint!r}, not {planned.name!r}, the endpoint "
                "being created"
            )
        if endpoint_recorded and planned is None:
            self.platform.serving.get_endpoint(spec.endpoint)
        self.platform.get_model(spec.model)
        if not spec.signals:
            raise ValidationError("a monitor needs at least one signal")
        names = [s.name for s in spec.signals]
        if len(set(names)) != len(names):
            raise ValidationError(f"signal names must be unique: {names}")
        for signal in spec.signals:
            _check_signal_name(signal.name)
            parse_unmeasured_after(signal.unmeasured_after)  # a spec changed once validated
            self._refuse_unreadable_telemetry(signal)
            if isinstance(parse_window(signal.window), int) and (
                signal.kind is SignalKind.TELEMETRY
            ):
                raise ValidationError(
                    f"telemetry signal {signal.name!r} needs a time window, not a record count"
                )
            _refuse_unmeasurable_window(signal)
            if not signal.owner.strip():
                raise ValidationError(f"signal {signal.name!r} needs an owner")
            _check_handlers(signal)
            if signal.retrain and signal.kind not in RETRAINING_KINDS:
                raise ValidationError(
                    f"signal {signal.name!r}: retrain = true applies to drift and performance "
                    f"signals; a {signal.kind.value} alert is ticketed, not retrained on"
                )
            if signal.positive is not None and signal.kind not in _CLASS_KINDS:
                raise ValidationError(
                    f"signal {signal.name!r}: positive names the positive class of fairness and "
                    f"performance signals; a {signal.kind.value} signal has no classes"
                )
            if not math.isfinite(signal.threshold):
                raise ValidationError(
                    f"signal {signal.name!r} needs a finite threshold, not {signal.threshold}"
                )
            if signal.kind is SignalKind.DRIFT:
                self._check_drift_metric(
                    spec, signal, endpoint_recorded=endpoint_recorded, planned=planned
                )
            if signal.kind is SignalKind.TELEMETRY and signal.metric not in TELEMETRY_METRICS:
                raise ValidationError(
                    f"telemetry signal {signal.name!r} measures one of {TELEMETRY_METRICS}"
                )
            if signal.kind is SignalKind.PERFORMANCE and signal.metric not in PERFORMANCE_METRICS:
                raise ValidationError(
                    f"performance signal {signal.name!r} measures one of "
                    f"{tuple(PERFORMANCE_METRICS)}"
                )
            positive_needed = signal.kind is SignalKind.PERFORMANCE and signal.positive is None
            if positive_needed and signal.metric in SCORE_METRICS:
                self._refuse_undeclared_positive(spec, signal)
            if signal.kind is SignalKind.FAIRNESS:
                metric, _, attribute = signal.metric.partition(":")
                if metric not in FAIRNESS_METRICS or not attribute:
                    raise ValidationError(
                        f"fairness signal {signal.name!r} measures METRIC:ATTRIBUTE with METRIC"
                        f" one of {FAIRNESS_METRICS} and ATTRIBUTE a logged input column"
                    )
        self._check_serves_model(spec, endpoint_recorded=endpoint_recorded, planned=planned)
        with self.platform.store.read() as conn:
            _same_monitor(conn, spec)

    def _refuse_undeclared_positive(self, spec: MonitorSpec, signal: Signal) -> None:
        """Refuse a ``roc_auc`` or ``calibration_error`` signal without ``positive`` on a model
        whose newest version declares string classes (a string output, see
        :meth:`_string_outputs`): its labels are not 0/1, so the signal would fail on every
        pass until it names the positive class (see
        :func:`~mintaka.monitoring.metrics.binary_positive`). A model not registered yet is
        left to the runner."""
        try:
            versions = self.platform.list_versions(spec.model)
        except NotFound:
            return
        if not versions:
            return
        newest = versions[-1]
        strings = sorted(
            name
            for name, dtype in newest.signature.outputs.items()
            if str(dtype).strip().lower() in STRING_DTYPES
        )
        if strings:
            raise ValidationError(
                f"signal {signal.name!r}: {spec.model}:{newest.version} declares string classes "
                f"(output {strings[0]!r}), which are not 0/1: declare which class is positive "
                "(positive = ...) for its scores to be read as that class's probability"
            )

    def _check_serves_model(
        self, spec: MonitorSpec, *, endpoint_recorded: bool, planned: Endpoint | None
    ) -> None:
        """Refuse a monitor whose model no route of its endpoint serves (live, shadow or
        waiting for traffic, on a killed endpoint too): its alerts would retrain that model
        while the one serving drifts on. An endpoint about to be adopted is checked as the
        cloud serves it; one the cloud does not have is left to adoption to refuse. An endpoint
        about to be created is checked as ``planned``."""
        try:
            endpoint = self._serving(spec.endpoint, endpoint_recorded, planned)
        except NotFound:
            if endpoint_recorded:
                raise
            return
        if _serves(endpoint, spec.model):
            return
        raise ValidationError(
            f"endpoint {spec.endpoint!r} serves {_served(endpoint)}, not {spec.model!r}: a "
            "monitor watches a model its endpoint serves (deploy it there first, or name that "
            "model)"
        )

    def _check_drift_metric(
        self,
        spec: MonitorSpec,
        signal: Signal,
        *,
        endpoint_recorded: bool,
        planned: Endpoint | None,
    ) -> None:
        """A drift signal names a statistic, and a feature the training-data profile of the
        version serving the endpoint has (when that profile is there to ask now), of a kind
        that has the statistic (for every feature, one such feature)."""
        metric, _, feature = signal.metric.partition(":")
        if metric not in DRIFT_METRICS:
            raise ValidationError(
                f"drift signal {signal.name!r} measures one of {DRIFT_METRICS}"
                " (optionally METRIC:FEATURE)"
            )
        if feature == PREDICTION:
            _refuse_unmeasurable(signal, {PREDICTION: "numeric"}, PREDICTION_SOURCE)
            return
        try:
            reference = self._reference(self._serving(spec.endpoint, endpoint_recorded, planned))
        except NotFound:
            return
        if reference is None:
            return
        source = f"the training data of the model serving {spec.endpoint} ({reference.dataset_id})"
        profiled = reference.profile.get("features", {})
        if feature and feature not in profiled:
            raise ValidationError(
                f"drift signal {signal.name!r} watches {feature!r}, which {source} does not "
                f"profile; it profiles {sorted(profiled)} (and {PREDICTION!r}, the model's own "
                "output)"
            )
        if feature and not _has_values(profiled[feature]):
            raise ValidationError(
                f"drift signal {signal.name!r} watches {feature!r}, which has no values in "
                f"{source}: there is no distribution for it to drift from"
            )
        if feature:
            watched = {feature: str(profiled[feature].get("kind"))}
        else:
            watched = _watched_features(signal, reference, source)
        _refuse_unmeasurable(signal, watched, source)

    def _serving(self, endpoint: str, recorded: bool, planned: Endpoint | None = None) -> Endpoint:
        """``endpoint`` as recorded, or as the cloud serves it when it is not recorded yet, or
        as ``planned`` when it is about to be created."""
        if planned is not None:
            return planned
        if recorded:
            return self.platform.serving.get_endpoint(endpoint)
        from mintaka.interfaces import Serving

        return self.platform._area(Capability.SERVING, Serving).get_endpoint(endpoint)

    def monitors(self, endpoint: str | None = None) -> list[MonitorSpec]:
        """The monitors on duty (of ``endpoint``, when given), oldest first; removed ones are
        left out."""
        return [spec for _, spec in self.monitor_records(endpoint)]

    def monitor_records(self, endpoint: str | None = None) -> list[tuple[str, MonitorSpec]]:
        """:meth:`monitors` with each monitor's id, the one ``remove_monitor`` takes. A monitor
        stored in a form this release cannot read is logged and left out: it is listed by
        :meth:`unreadable_monitors`, and the runner fails its signals."""
        records: list[tuple[str, MonitorSpec]] = []
        for monitor_id, _, _, found in self._stored_monitors(endpoint):
            if isinstance(found, MonitorSpec):
                records.append((monitor_id, found))
            else:
                log.warning("%s", found)
        return records

    def unreadable_monitors(self, endpoint: str | None = None) -> dict[str, str]:
        """The monitors on duty (of ``endpoint``, when given) stored in a form this release
        cannot read, each id with why: what an operator removes (``remove_monitor`` takes them)
        or stores again."""
        return {
            monitor_id: str(found)
            for monitor_id, _, _, found in self._stored_monitors(endpoint)
            if isinstance(found, ValidationError)
        }

    def _stored_monitors(
        self, endpoint: str | None = None
    ) -> list[tuple[str, str, Mapping[str, Any], MonitorSpec | ValidationError]]:
        """The monitors on duty, oldest first: each id, the endpoint it is recorded on (its
        row's, whatever its stored spec holds), its stored spec, and that read as a spec or why
        it cannot be (see :func:`_stored_monitor`), so one bad record stops no caller."""
        query = (
            select(monitors.c.id, monitors.c.endpoint, monitors.c.spec)
            .where(monitors.c.removed_at.is_(None))
            .order_by(monitors.c.created_at, monitors.c.id)
        )
        if endpoint is not None:
            query = query.where(monitors.c.endpoint == endpoint)
        with self.platform.store.read() as conn:
            rows = conn.execute(query).all()
        found: list[tuple[str, str, Mapping[str, Any], MonitorSpec | ValidationError]] = []
        for row in rows:
            monitor_id, endpoint = str(row.id), str(row.endpoint)
            read: MonitorSpec | ValidationError
            try:
                read = _stored_monitor(row.spec, monitor_id)
            except ValidationError as exc:
                read = exc
            found.append((monitor_id, endpoint, row.spec, read))
        return found

    def watching(self, model: str) -> list[MonitorSpec]:
        """The monitors on duty of ``model`` whose endpoint is recorded and has a route serving
        it (live, shadow or waiting for traffic): what a tier's ``monitors_required`` counts. A
        monitor of a deleted endpoint rests, and one whose endpoint moved on to another model
        measures nothing of this one, so neither watches it."""
        serving = {e.name: e for e in self.platform.serving.list_endpoints()}
        return [m for m in self.monitors() if m.model == model and _measures(m, serving)]

    def coverage(self) -> list[Coverage]:
        """Every endpoint taking live traffic, and whether any monitor watches it (one whose
        endpoint moved on to another model fails every pass, so it watches nothing: see
        :func:`_measures`); a killed endpoint is marked so: it serves nothing until it is
        released."""
        from mintaka.domain.serving import EndpointStatus

        serving = {e.name: e for e in self.platform.serving.list_endpoints()}
        watched = {m.endpoint for m in self.monitors() if _measures(m, serving)}
        return [
            Coverage(
                endpoint=e.name,
                routes=tuple(sorted(r for r, w in e.traffic.weights.items() if w > 0)),
                monitored=e.name in watched,
                killed=e.status is EndpointStatus.KILLED,
            )
            for e in serving.values()
            if any(w > 0 for w in e.traffic.weights.values())
        ]

    def remove_monitor(self, monitor_id: str, *, reason: str) -> MonitorSpec:
        """Take monitor ``monitor_id`` off duty, audited as ``monitor.remove`` with the spec
        removed and ``reason``; returns that spec. Its row stays, marked removed (when and by
        whom), so evidence packs still list it for the versions it watched before. The runner
        no longer evaluates its signals and it no longer counts as watching its endpoint (see
        :meth:`coverage`), and their names are free for another monitor of the endpoint once
        their open tickets are resolved (see :func:`_refuse_removed_tickets`). Nothing is
        resolved here: those tickets stay open as they are, for their owners. Its signals' open
        failures and unmeasured stretches end with it (see :meth:`_end_removed_signals`), so a
        monitor added later under a signal name of its own starts afresh. An unknown id, or one
        already removed, is ``NotFound`` and an empty reason a ``ValidationError``, both before
        any change. A monitor stored in a form this release cannot read is removed all the
        same, the spec returned holding only its endpoint, model and signal names (see
        :func:`_unread_monitor`). The row is read under the audit chain's lock, so of two
        processes removing it at once the second finds it removed (``NotFound``) rather than
        removing it again."""
        if not reason.strip():
            raise ValidationError("removing a monitor needs a reason, recorded for auditors")
        with self.platform.store.write() as conn:
            self.platform.audit.lock(conn)
            row = conn.execute(
                select(monitors.c.endpoint, monitors.c.spec, monitors.c.removed_at).where(
                    monitors.c.id == monitor_id
                )
            ).first()
            if row is None:
                raise NotFound(f"no monitor {monitor_id}")
            if row.removed_at is not None:
                raise NotFound(f"monitor {monitor_id} was already removed at {row.removed_at}")
            try:
                removed = _stored_monitor(row.spec, monitor_id)
            except ValidationError as exc:
                log.warning("removing %s", exc)
                removed = _unread_monitor(row.endpoint, row.spec)
            conn.execute(
                update(monitors)
                .where(monitors.c.id == monitor_id)
                .values(removed_at=self.platform._now().isoformat(), removed_by=self.platform.actor)
            )
            event = self.platform._audit(
                conn,
                "monitor.remove",
                row.endpoint,
                monitor=monitor_id,
                spec=row.spec,
                reason=reason,
            )
            why = f"monitor {monitor_id} was removed: {reason}"
            ended = self._end_removed_signals(conn, removed, why)
        self.platform._after_commit([event, *ended])
        return removed

    def _end_removed_signals(
        self, conn: Connection, removed: MonitorSpec, why: str
    ) -> list[AuditEvent]:
        """End the open failures (``monitor.signal.failed.ended``) and unmeasured stretches
        (``monitor.signal.unmeasured.ended``) of the signals of ``removed``, each audited with
        ``why``, inside the removal's transaction ``conn`` (under the audit chain's lock). Left
        open, a failure would pass for the failure of a monitor added later under the same signal
        name, which the runner then never records, as it records a persisting failure once."""
        subjects = [f"{removed.endpoint}:{signal.name}" for signal in removed.signals]
        failing = _failing_signals(conn)
        unmeasured = _unmeasured_signals(conn)
        events = [
            self.platform._audit(conn, SIGNAL_FAILED_ENDED, subject, why=why)
            for subject in subjects
            if subject in failing
        ]
        events.extend(
            self.platform._audit(
                conn,
                SIGNAL_UNMEASURED_ENDED,
                subject,
                since=unmeasured[subject].since.isoformat(),
                why=why,
            )
            for subject in subjects
            if subject in unmeasured
        )
        return events

    def _monitor_id(self, spec: MonitorSpec) -> str | None:
        """The id of the monitor on record that is ``spec``, if any."""
        query = select(monitors.c.id, monitors.c.spec).where(
            monitors.c.endpoint == spec.endpoint, monitors.c.removed_at.is_(None)
        )
        with self.platform.store.read() as conn:
            for row in conn.execute(query):
                if _is_stored(row.spec, spec):
                    return str(row.id)
        return None

    # -- alerts and tickets ------------------------------------------------------------------

    def sinks(self) -> TicketSinks:
        if self._sinks is None:
            collected = TicketSinks()
            for sink in builtin_sinks():
                collected.add(sink)
            self.platform.plugins.hook.mintaka_ticket_sinks(sinks=collected)
            self._sinks = collected
        return self._sinks

    def raise_alert(
        self,
        signal: str,
        endpoint: str,
        *,
        value: float = 1.0,
        threshold: float = 0.0,
        severity: Severity | str = Severity.WARNING,
        owner: str | None = None,
        runbook_url: str | None = None,
        escalation: Sequence[Escalation] = (),
        details: Mapping[str, Any] | None = None,
    ) -> tuple[Alert, Ticket]:
        """Audit an alert, open (or update) its ticket, and tell the observers (one that raises
        is logged: the alert stands). A blank or
        line-forging signal, endpoint, owner, escalation step or runbook URL (``tickets list``
        prints it), a value or threshold that is
        not a finite number, and details that are not plain JSON, are refused with
        ``ValidationError`` before anything is written."""
        _check_alert(signal, endpoint, value, threshold)
        if owner is not None:
            _check_printed("owner", owner)
        for step, handed in enumerate(escalation, start=1):
            _check_printed(f"escalation step {step}", handed.to)
        if runbook_url is not None:
            _check_printed("runbook_url", runbook_url)
        _check_details(signal, details or {})
        alert = Alert(
            id=self.platform.ids.new("alert"),
            signal=signal,
            endpoint=endpoint,
            value=value,
            threshold=threshold,
            severity=parse_enum(Severity, severity, "severity"),
            at=self.platform._now(),
            details=dict(details or {}),
        )
        owner = owner or self._default_owner(endpoint)
        ticket = self._open_ticket(alert, owner, runbook_url, tuple(escalation))
        try:
            self.platform.plugins.hook.mintaka_alert(alert=alert)
        except Exception:  # a failing observer never undoes the alert
            log.exception("an alert observer failed for %s on %s", signal, endpoint)
        return alert, ticket

    def _default_owner(self, endpoint: str) -> str:
        try:
            current = self.platform.serving.get_endpoint(endpoint)
        except NotFound:
            return self.platform.actor
        for route in current.routes:
            return self.platform.get_model_version(route.model, route.version).owner
        return self.platform.actor

    def _open_ticket(
        self,
        alert: Alert,
        owner: str,
        runbook_url: str | None,
        escalation: tuple[Escalation, ...],
    ) -> Ticket:
        """Open the signal's ticket, or count the alert on the one already open, then send it
        to the sinks. The ticket is written together with the alert's ``alert.raise`` event, in
        one transaction, and sent only once that commits: a pass stopped while a sink sends
        (or failing to write the event) leaves no alert counted on a ticket without its event.

        On SQLite the write lock serialises runners; on a server database two runners can race
        to open the same ticket, the unique index refuses the second, and it retries as an update,
        and a runner counting an alert on an open ticket locks its row (``FOR UPDATE``), so a
        second runner's count waits for the first's instead of overwriting it.
        """
        for attempt in range(2):
            try:
                ticket_id, event_name, event = self._open_or_update(
                    alert, owner, runbook_url, escalation
                )
                break
            except SQLIntegrityError as exc:  # another runner opened it a moment ago
                if attempt:
                    raise Conflict("the signal's ticket could not be opened or updated") from exc
        self.platform._after_commit([event])
        return self._notify_committed(self.ticket(ticket_id), event_name)

    def _open_or_update(
        self,
        alert: Alert,
        owner: str,
        runbook_url: str | None,
        escalation: tuple[Escalation, ...],
    ) -> tuple[str, str, AuditEvent]:
        """Open or update the signal's ticket and audit ``alert.raise`` in one transaction;
        returns the ticket's id, whether it was ``opened`` or ``updated``, and the event."""
        now = alert.at.isoformat()
        with self.platform.store.write() as conn:
            row = conn.execute(
                select(tickets)
                .where(
                    tickets.c.signal == alert.signal,
                    tickets.c.endpoint == alert.endpoint,
                    tickets.c.status != TicketStatus.RESOLVED.value,
                )
                .with_for_update()
            ).one_or_none()
            if row is not None:
                # A more severe repeat raises the ticket's severity; a milder one never lowers
                # it, nor one of a later release's severities, which this one cannot rank.
                stored = _known(Severity, row.severity)
                severity = (
                    max(stored, alert.severity, key=SEVERITY_ORDER.index)
                    if isinstance(stored, Severity)
                    else row.severity
                )
                conn.execute(
                    update(tickets)
                    .where(tickets.c.id == row.id)
                    .values(
                        alerts=row.alerts + 1,
                        updated_at=now,
                        alert_id=alert.id,
                        severity=str(severity),
                    )
                )
                return str(row.id), "updated", self._audit_alert(conn, alert, row.id, row.owner)
            ticket_id = self.platform.ids.new("tkt")
            conn.execute(
                tickets.insert().values(
                    id=ticket_id,
                    alert_id=alert.id,
                    signal=alert.signal,
                    endpoint=alert.endpoint,
                    owner=owner,
                    severity=alert.severity.value,
                    status=TicketStatus.OPEN.value,
                    runbook_url=runbook_url,
                    escalation=[e.model_dump(mode="json") for e in escalation],
                    escalation_level=0,
                    alerts=1,
                    opened_at=now,
                    updated_at=now,
                    acked_by=None,
                    sinks={},
                    details=alert.details,
                )
            )
            return ticket_id, "opened", self._audit_alert(conn, alert, ticket_id, owner)

    def _audit_alert(
        self, conn: Connection, alert: Alert, ticket_id: str, owner: str
    ) -> AuditEvent:
        """Audit ``alert`` as ``alert.raise``, counted on ticket ``ticket_id`` of ``owner``,
        inside the caller's transaction ``conn``."""
        return self.platform._audit(
            conn,
            "alert.raise",
            alert.endpoint,
            alert=alert.model_dump(mode="json"),
            ticket=ticket_id,
            owner=owner,
        )

    def _notify(self, ticket: Ticket, event: str) -> Ticket:
        """Send ``ticket`` to every sink and record their references on it. Sending happens
        outside any transaction (a sink may be slow), so the references are merged into the
        row as it stands then, read ``FOR UPDATE``: another runner's sinks may have recorded
        theirs on the ticket meanwhile, and those stay. A sink that fails is logged; its
        ``failed: ERROR`` is recorded only where it has given no reference yet, so one failing
        on an update keeps the reference it gave when the ticket was opened."""
        refs: dict[str, str] = {}
        for sink in self.sinks():
            try:
                refs[sink.name] = sink_reference(sink.open(ticket, event))
            except Exception as exc:  # a sink never loses the ticket
                log.warning("ticket sink %s failed on %s %s: %s", sink.name, event, ticket.id, exc)
                refs[sink.name] = f"{SINK_FAILED}{type(exc).__name__}"
        return self._record_references(ticket, refs)

    def _notify_committed(self, ticket: Ticket, event: str) -> Ticket:
        """:meth:`_notify` for a ticket whose change (an alert counted on it, an escalation) is
        committed already, so that change stands and is reported as made: a failure beside any
        one sink's (the ``mintaka_ticket_sinks`` hook raising as the sinks are collected, the
        references failing to be written) is logged and recorded on the ticket under
        ``SINKS_HOOK`` as ``failed: ERROR``, as a sink that raised is under its name."""
        try:
            return self._notify(ticket, event)
        except Exception as exc:  # the sinks never undo what the ticket records
            log.exception("sending ticket %s (%s) to its sinks failed", ticket.id, event)
            failed = {SINKS_HOOK: f"{SINK_FAILED}{type(exc).__name__}"}
            try:
                return self._record_references(ticket, failed)
            except Exception:
                log.exception("recording the failed sinks on ticket %s failed", ticket.id)
                return ticket

    def _record_references(self, ticket: Ticket, refs: Mapping[str, str]) -> Ticket:
        """``ticket`` with the sinks' references ``refs`` recorded on it, merged as
        :meth:`_notify` says."""
        if all(_kept_reference(ticket.sinks.get(name), ref) for name, ref in refs.items()):
            return ticket
        with self.platform.store.write() as conn:
            stored = conn.execute(
                select(tickets.c.sinks).where(tickets.c.id == ticket.id).with_for_update()
            ).scalar_one()
            merged = {
                **stored,
                **{
                    name: ref
                    for name, ref in refs.items()
                    if not _kept_reference(stored.get(name), ref)
                },
            }
            conn.execute(update(tickets).where(tickets.c.id == ticket.id).values(sinks=merged))
        sinks = {name: sink_reference(ref) for name, ref in merged.items()}
        return ticket.model_copy(update={"sinks": sinks})

    def ticket(self, ticket_id: str) -> Ticket:
        with self.platform.store.read() as conn:
            row = conn.execute(select(tickets).where(tickets.c.id == ticket_id)).one_or_none()
        if row is None:
            raise NotFound(f"ticket {ticket_id!r} not found")
        return _ticket(row)

    def tickets(self, status: TicketStatus | str | None = None) -> list[Ticket]:
        query = select(tickets).order_by(tickets.c.opened_at, tickets.c.id)
        if status is not None:
            wanted = parse_enum(TicketStatus, status, "ticket status")
            query = query.where(tickets.c.status == wanted.value)
        with self.platform.store.read() as conn:
            return [_ticket(row) for row in conn.execute(query).all()]

    def acknowledge(self, ticket_id: str) -> Ticket:
        return self._transition(ticket_id, TicketStatus.ACKNOWLEDGED, "ticket.ack")

    def resolve(self, ticket_id: str, note: str = "") -> Ticket:
        return self._transition(ticket_id, TicketStatus.RESOLVED, "ticket.resolve", note=note)

    def _transition(
        self, ticket_id: str, status: TicketStatus, action: str, **extra: Any
    ) -> Ticket:
        """Move a ticket on; acknowledging one already acknowledged changes and records
        nothing (who acknowledged it first stays), and a resolved ticket stays resolved. The
        row is read ``FOR UPDATE``: on a server database a concurrent move waits and is judged
        on this one's result (SQLite's write lock serialises them already)."""
        with self.platform.store.write() as conn:
            row = conn.execute(
                select(tickets).where(tickets.c.id == ticket_id).with_for_update()
            ).one_or_none()
            if row is None:
                raise NotFound(f"ticket {ticket_id!r} not found")
            current = _ticket(row)
            if current.status is TicketStatus.RESOLVED:
                raise Conflict(f"ticket {ticket_id} is already resolved")
            if current.status is status:
                return current
            values: dict[str, Any] = {
                "status": status.value,
                "updated_at": self.platform._now().isoformat(),
            }
            if status is TicketStatus.ACKNOWLEDGED:
                values["acked_by"] = self.platform.actor
            conn.execute(update(tickets).where(tickets.c.id == ticket_id).values(**values))
            event = self.platform._audit(
                conn, action, ticket_id, endpoint=current.endpoint, signal=current.signal, **extra
            )
        self.platform._after_commit([event])
        return self.ticket(ticket_id)

    def escalate_due(self) -> list[str]:
        """Move every open, unacknowledged ticket along each escalation step that is due, so a
        runner that was down for a while catches up in one pass (each step audited and sent).
        The ``unmeasured`` ticket of a killed endpoint waits: the endpoint serves nothing, so
        nothing is left unmeasured while it stays killed, and its release ends the stretch the
        ticket was opened for (see :meth:`_track_unmeasured`). So does one whose stretch is no
        longer its signal's (see :meth:`_stretches_not_on_duty`), until the runner's next pass
        ends it and resolves the ticket, however soon after the release that escalation runs.
        A ticket whose escalation fails is logged, and the others still escalate."""
        return self._walk_escalations()[0]

    def _walk_escalations(self) -> tuple[list[str], list[EscalationFailure]]:
        """The tickets :meth:`escalate_due` moved on, and those whose escalation failed, why."""
        from mintaka.domain.serving import EndpointStatus

        recorded = {e.name: e for e in self.platform.serving.list_endpoints()}
        killed = {name for name, e in recorded.items() if e.status is EndpointStatus.KILLED}
        ended = self._stretches_not_on_duty(recorded)
        moved: list[str] = []
        failures: list[EscalationFailure] = []
        for row in self._open_ticket_rows():
            signal, endpoint = str(row.signal), str(row.endpoint)
            if _is_unmeasured_ticket(signal) and (
                endpoint in killed or signal.rpartition(":")[0] in ended
            ):
                continue
            try:  # one ticket's escalation (or its row) never stops the others'
                if self._escalate_steps(_escalated_ticket(row), failures):
                    moved.append(str(row.id))
            except ValidationError as exc:
                log.warning("escalating ticket %s failed: %s", row.id, exc)
                failures.append(EscalationFailure(str(row.id), str(exc)))
            except Exception as exc:
                log.exception("escalating ticket %s failed", row.id)
                failures.append(EscalationFailure(str(row.id), _error_text(exc)))
        return moved, failures

    def _open_ticket_rows(self) -> Sequence[Any]:
        """The open tickets' rows as stored, oldest first: each is read as a ticket on its own
        (see :func:`_escalated_ticket`), so one this release cannot read stops no other."""
        query = (
            select(tickets)
            .where(tickets.c.status == TicketStatus.OPEN.value)
            .order_by(tickets.c.opened_at, tickets.c.id)
        )
        with self.platform.store.read() as conn:
            return conn.execute(query).all()

    def _stretches_not_on_duty(self, recorded: Mapping[str, Endpoint]) -> set[str]:
        """The signals ("endpoint:signal") whose open unmeasured stretch is no longer theirs, as
        the runner's next pass finds them (see :func:`_ended_stretches`): it began before the
        endpoint was released or created again or the monitor added again, or the monitor's
        endpoint (of those ``recorded``) moved on to another model."""
        moved_on = {
            f"{spec.endpoint}:{signal.name}": ""
            for spec in self.monitors()
            if spec.endpoint in recorded and not _measures(spec, recorded)
            for signal in spec.signals
        }
        with self.platform.store.read() as conn:
            state = _unmeasured_signals(conn)
        return set(_ended_stretches(state, self._on_duty_since(), moved_on))

    def _escalate_steps(self, ticket: Ticket, failures: list[EscalationFailure]) -> bool:
        """Take every step of ``ticket`` that is due, in order; whether one handed it on. A
        step skipped as refused (see :meth:`_escalate`) is added to ``failures``."""
        handed = False
        current = ticket
        while (moved := self._escalate(current, failures)) is not None:
            current, taken = moved
            handed = handed or taken
        return handed

    def _escalate(
        self, ticket: Ticket, failures: list[EscalationFailure]
    ) -> tuple[Ticket, bool] | None:
        """``ticket`` moved past its next escalation step if that is due, and whether the step
        handed it on; None when no step is due. A step stored by an earlier release is handed on
        as :func:`_stored_handlers` reads a monitor's (the blanks around its owner dropped); one
        whose owner still forges printed lines (:meth:`raise_alert` refuses it) can never be
        taken, so when it is due it is skipped once (see :meth:`_skip_step`) and the ticket goes
        on to the step after it, rather than staying at that step for good. A step whose delay
        runs past the last date a clock can tell (stored before steps were capped) is never due,
        as its delay says, so the ticket stays with its owner."""
        now = self.platform._now()
        if ticket.escalation_level >= len(ticket.escalation):
            return None
        step = ticket.escalation[ticket.escalation_level]
        minutes = sum(e.after_minutes for e in ticket.escalation[: ticket.escalation_level + 1])
        try:
            due = ticket.opened_at + timedelta(minutes=minutes)
        except OverflowError:  # a step stored before steps were capped: never due
            return None
        if now < due:
            return None
        to = step.to.strip() if isinstance(step.to, str) else ""
        try:
            _check_printed(f"escalation step {ticket.escalation_level + 1}", to)
        except ValidationError as exc:
            skipped = self._skip_step(ticket, str(exc), now)
            if skipped is None:
                return None
            failures.append(EscalationFailure(ticket.id, f"skipped: {exc}"))
            return skipped, False
        moved = self._next_step(
            ticket, now, "ticket.escalate", {"owner": to}, previous_owner=ticket.owner, owner=to
        )
        if moved is None:  # another runner escalated (or someone acknowledged) it
            return None
        return self._notify_committed(moved, "escalated"), True

    def _skip_step(self, ticket: Ticket, why: str, now: datetime) -> Ticket | None:
        """``ticket`` moved past its due escalation step without being handed on, the step's
        owner refused (``why``); audited as ``ticket.escalate.skip`` with why, once: None when
        another runner moved it (or someone acknowledged it) first. The ticket keeps its owner,
        and the next step is due when it would have been."""
        log.warning(
            "ticket %s skips escalation step %d: %s", ticket.id, ticket.escalation_level + 1, why
        )
        return self._next_step(
            ticket, now, "ticket.escalate.skip", {}, owner=ticket.owner, error=why
        )

    def _next_step(
        self,
        ticket: Ticket,
        now: datetime,
        action: str,
        values: dict[str, Any],
        **details: Any,
    ) -> Ticket | None:
        """Move open ``ticket`` to its next escalation level (setting ``values`` too), audited as
        ``action`` with ``details``, provided no other runner moved it (and nobody acknowledged
        it) since it was read: None when one did."""
        level = ticket.escalation_level + 1
        with self.platform.store.write() as conn:
            result = conn.execute(
                update(tickets)
                .where(
                    tickets.c.id == ticket.id,
                    tickets.c.escalation_level == ticket.escalation_level,
                    tickets.c.status == TicketStatus.OPEN.value,
                )
                .values(escalation_level=level, updated_at=now.isoformat(), **values)
            )
            if result.rowcount == 0:
                return None
            event = self.platform._audit(
                conn,
                action,
                ticket.id,
                endpoint=ticket.endpoint,
                signal=ticket.signal,
                level=level,
                **details,
            )
        self.platform._after_commit([event])
        return self.ticket(ticket.id)

    # -- the runner ---------------------------------------------------------------------------

    def import_captured(self, endpoint: str) -> int:
        """Copy the traffic a cloud backend captured for ``endpoint`` into the prediction log, so
        the drift, performance and fairness monitors run on it as on local traffic.

        Each captured request becomes one prediction per row (ids derived from the capture's
        event id, so importing twice adds nothing), attributed to the model version of the route
        that answered. The local backend logs predictions there directly and imports nothing.
        Returns how many predictions were added.
        """
        from mintaka.interfaces import CaptureSource
        from mintaka.local.backend import LocalBackend
        from mintaka.serving.predlog import Prediction

        if isinstance(self.platform.backend, LocalBackend) or not self.platform.supports(
            Capability.MONITORING_CAPTURE
        ):
            return 0
        current = self.platform.serving.get_endpoint(endpoint)
        source = self.platform._area(Capability.MONITORING_CAPTURE, CaptureSource)
        with self.platform.store.read() as conn:
            latest = conn.execute(
                select(predictions.c.at)
                .where(predictions.c.endpoint == endpoint)
                .order_by(predictions.c.at.desc())
                .limit(1)
            ).scalar()
        # Capture lands late and out of order (a file per instance buffer, a table that lags):
        # records older than the newest imported one are looked for over CAPTURE_LAG again, and
        # those already imported are skipped by their ids.
        since = datetime.fromisoformat(latest) - CAPTURE_LAG if latest else None
        history = self.platform.serving.deployment_history(endpoint)
        starts = [d.at for d in history]
        versions: dict[tuple[str, int], Any] = {}
        rows: list[dict[str, Any]] = []
        for record in source.read_captured(endpoint, since=since):
            # The routes in force when the request was answered, not now: a route re-deployed
            # since serves another version.
            found = bisect.bisect_right(starts, record.at) - 1
            in_force = history[max(found, 0)] if history else current
            routes = {r.name: r for r in in_force.routes}
            shadow = in_force.traffic.shadow
            route = routes.get(record.route or "")
            version = None
            if route is not None:
                key = (route.model, route.version)
                if key not in versions:
                    versions[key] = self.platform.get_model_version(route.model, route.version)
                version = versions[key]
            inputs, outputs = _captured_rows(record.inputs, record.outputs)
            for index, (row, output) in enumerate(zip(inputs, outputs, strict=True)):
                rows.append(
                    Prediction(
                        id=_captured_id(record.event_id, index),
                        endpoint=endpoint,
                        route=record.route,
                        model=route.model if route else None,
                        version=route.version if route else None,
                        version_id=version.id if version else None,
                        row=row if isinstance(row, Mapping) else {"value": row},
                        keep_inputs=True,
                        output=output,
                        status="ok" if output is not None else "unknown",
                        shadow=int(record.route is not None and record.route == shadow),
                        latency_ms=float(record.extra.get("latency_ms", 0.0) or 0.0),
                        at=record.at,
                    ).record()
                )
        if not rows:
            return 0
        with self.platform.store.write() as conn:
            # Ids already imported hit the primary key and are skipped by the database itself.
            insert = self.platform._insert(predictions).on_conflict_do_nothing()
            added = conn.execute(insert, rows).rowcount
            if added:
                event = self.platform._audit(
                    conn, "monitor.capture.import", endpoint, predictions=added
                )
        if added:
            self.platform._after_commit([event])
        return int(added)

    def run_once(self) -> RunReport:
        """Evaluate every monitor's signals over their windows, then escalations; idempotent.

        Traffic a cloud backend captured is imported into the prediction log first. A signal
        that cannot be evaluated (a feature its reference lacks, labels its metric cannot take)
        is logged, audited (``monitor.signal.failed``), reported in ``RunReport.failed`` and
        skipped: the other signals, monitors and escalations still run. A drift signal with a
        profiled feature whose statistic cannot be computed (one no row logs, too) alerts on the
        features it measured and fails naming that one. What a measurement left out (a drift
        group of too few rows) is logged and reported in ``RunReport.notes``, alert or not. A
        signal given no value is tracked as unmeasured, and alerted on when it stays so (see
        :meth:`_track_unmeasured`). The monitors of an endpoint that was deleted are not run, and
        those of an endpoint that no longer serves their model fail every signal (see
        :func:`_not_served`): measuring another model's traffic, and retraining theirs on it,
        would be wrong on both counts. A killed endpoint serves nothing, so its signals are not
        tracked as unmeasured while it stays killed; their stretch starts again on release.
        Escalations that fail are logged and reported in ``RunReport.escalation_failed``, the
        pass's report kept."""
        from mintaka.domain.serving import EndpointStatus

        now = self.platform._now()
        alerts: list[Alert] = []
        failed: list[SignalFailure] = []
        notes: list[SignalNote] = []
        measured: set[str] = set()  # "endpoint:signal" of the signals given a value, no error
        quiet: dict[str, tuple[MonitorSpec, Signal, str]] = {}  # given no value, no error: why
        from mintaka.monitoring.training_data import SampleCache

        scored: Scored = {}  # scored once a run, however many signals watch predictions
        samples = SampleCache(self.platform.home)  # each training file checked, sampled once
        evaluated = 0
        # The monitors of a deleted endpoint stay on record (evidence packs cite them) and rest
        # until an endpoint of that name is created again.
        recorded = {e.name: e for e in self.platform.serving.list_endpoints()}
        specs: list[MonitorSpec] = []
        moved_on: dict[str, str] = {}  # "endpoint:signal" of a monitor whose endpoint moved on
        for monitor_id, endpoint, raw, spec in self._stored_monitors():
            if isinstance(spec, ValidationError):
                failed.extend(_unreadable(endpoint, raw, spec, recorded))
                continue
            if _measures(spec, recorded):
                specs.append(spec)
                continue
            if spec.endpoint not in recorded:
                continue
            error = _not_served(monitor_id, spec, recorded[spec.endpoint])
            failed.extend(SignalFailure(spec.endpoint, s.name, error) for s in spec.signals)
            why = f"monitor {monitor_id}'s endpoint moved on to {_served(recorded[spec.endpoint])}"
            moved_on.update({f"{spec.endpoint}:{s.name}": why for s in spec.signals})
        for endpoint in sorted({spec.endpoint for spec in specs}):
            try:
                self.import_captured(endpoint)
            except Exception:  # monitoring keeps running on what is already logged
                log.exception("importing captured traffic of %s failed", endpoint)
        for spec in specs:
            for signal in spec.signals:
                try:
                    found = self._measure(spec, signal, now, scored, samples)
                    value = found.value
                    if found.note is not None:
                        notes.append(SignalNote(spec.endpoint, signal.name, found.note))
                        log.info("signal %r on %s: %s", signal.name, spec.endpoint, found.note)
                    breached = value is not None and breaches(signal, value)
                    if value is not None:
                        evaluated += 1
                        if breached:
                            alerts.append(self._alert(spec, signal, value, found.note))
                    if found.unmeasured is not None:  # alerted on the rest; fails for this
                        raise ValidationError(found.unmeasured)
                    if value is not None:  # a quiet window is no recovery
                        measured.add(f"{spec.endpoint}:{signal.name}")
                    else:
                        why = found.note or NOTHING_TO_MEASURE
                        quiet[f"{spec.endpoint}:{signal.name}"] = (spec, signal, why)
                except Exception as exc:  # one bad signal never stops the others
                    error = _error_text(exc)
                    log.warning(
                        "signal %r on %s could not be evaluated: %s",
                        signal.name,
                        spec.endpoint,
                        error,
                        exc_info=not isinstance(exc, MintakaError),
                    )
                    failed.append(SignalFailure(spec.endpoint, signal.name, error))
        samples.close()
        on_duty = self._on_duty_since()
        failed = self._audit_failures(failed, measured, on_duty)
        killed = {name for name, e in recorded.items() if e.status is EndpointStatus.KILLED}
        quiet = {k: v for k, v in quiet.items() if v[0].endpoint not in killed}
        raised, refused = self._track_unmeasured(quiet, measured, now, on_duty, moved_on)
        alerts.extend(raised)
        if refused:
            failed.extend(self._audit_failures(refused, set(), on_duty))
        moved, unmoved = self._escalate_after_pass()
        return RunReport(evaluated, tuple(alerts), moved, tuple(failed), tuple(notes), unmoved)

    def _escalate_after_pass(self) -> tuple[tuple[str, ...], tuple[EscalationFailure, ...]]:
        """The tickets :meth:`escalate_due` moved on after a pass, and those whose escalation
        failed; a failure to walk them at all is logged and reported as one failure (no ticket
        moved), so the pass's report of the alerts it raised is not lost."""
        try:
            moved, failures = self._walk_escalations()
        except Exception as exc:  # the alerts are raised and ticketed already
            log.exception("escalating the tickets due after a runner pass failed")
            return (), (EscalationFailure(None, _error_text(exc)),)
        return tuple(moved), tuple(failures)

    def _audit_failures(
        self,
        failed: list[SignalFailure],
        measured: set[str],
        on_duty_since: Mapping[str, OnDuty],
    ) -> list[SignalFailure]:
        """Record when a signal starts failing to evaluate (``monitor.signal.failed``) and when
        it is measured again (``monitor.signal.recovered``; a window with nothing to measure, no
        traffic or no labels, says nothing about that): a gap in monitoring, from its start to
        its end, is part of what an auditor asks about. A failure that persists with the same
        error, its numbers aside (see :func:`_same_failure`), is audited once, not on every pass;
        a failure audited before the signal went on duty as it is now (``on_duty_since``: a
        removed monitor's, or one from before its endpoint was created again or released) is
        not its own: the first pass after ends it (``monitor.signal.failed.ended``, with why, as
        removing a monitor does), so the same error is audited afresh as the signal's own and
        its being measured is no recovery of the earlier one. Recording it never stops the run.
        The failures are read under the audit chain's lock, so two runners at once on a server
        database record each failure once; so is which monitors are still on duty, so a failure
        or recovery of a monitor removed since the pass measured it is not recorded (its removal
        ended its failure, which would otherwise stay open for ever). Returns the failures of
        ``failed`` the pass reports: those of the signals still on duty (all of them when
        recording fails), so a pass reports no failure of a monitor no longer on duty."""
        try:
            with self.platform.store.write() as conn:
                self.platform.audit.lock(conn)
                failing = _failures(conn)
                serving = _subjects_on_duty(conn)
                events = []
                for subject, why in _failures_not_on_duty(failing, on_duty_since, serving):
                    events.append(self.platform._audit(conn, SIGNAL_FAILED_ENDED, subject, why=why))
                    del failing[subject]
                kept = [f for f in failed if f"{f.endpoint}:{f.signal}" in serving]
                for failure in kept:
                    subject = f"{failure.endpoint}:{failure.signal}"
                    error = failure.error[:2000]
                    previous = failing.get(subject)
                    if previous is not None and _same_failure(previous.error, error):
                        continue
                    events.append(
                        self.platform._audit(
                            conn,
                            SIGNAL_FAILED,
                            subject,
                            endpoint=failure.endpoint,
                            signal=failure.signal,
                            error=error,
                        )
                    )
                for subject in sorted(measured & set(failing) & serving):
                    events.append(self.platform._audit(conn, SIGNAL_RECOVERED, subject))
        except Exception:
            log.exception("recording failed signal(s) in the audit trail failed")
            return failed
        self.platform._after_commit(events)
        return kept

    def unmeasured(self) -> dict[str, Unmeasured]:
        """The signals ("endpoint:signal") the runner measured nothing for on its last pass that
        gave them an outcome, since when, and why (see :meth:`_track_unmeasured`)."""
        with self.platform.store.read() as conn:
            return _unmeasured_signals(conn)

    def _on_duty_since(self) -> dict[str, OnDuty]:
        """When each signal on duty ("endpoint:signal") started watching its endpoint as it is
        now: the latest of its monitor's creation, its endpoint's, and the endpoint's last
        release from its kill switch. An unmeasured stretch that began before is a removed
        monitor's, a deleted endpoint's, or one from before a kill, not this one's."""
        with self.platform.store.read() as conn:
            created = {
                str(row.name): OnDuty(_instant(row.created_at), "the endpoint was created again")
                for row in conn.execute(select(endpoints.c.name, endpoints.c.created_at))
            }
            for name, at in _latest_releases(conn).items():  # compared as instants, not text
                if name in created and _instant(at) > created[name].since:
                    created[name] = OnDuty(
                        _instant(at), "the endpoint was released from its kill switch"
                    )
            rows = conn.execute(
                select(monitors.c.endpoint, monitors.c.spec, monitors.c.created_at).where(
                    monitors.c.removed_at.is_(None)
                )
            ).all()
        since: dict[str, OnDuty] = {}
        for row in rows:
            if row.endpoint not in created:
                continue
            added = OnDuty(_instant(row.created_at), "its monitor was added")
            start = max(added, created[row.endpoint], key=lambda found: found.since)
            for name in _stored_signal_names(row.spec):
                since[f"{row.endpoint}:{name}"] = start
        return since

    def _track_unmeasured(
        self,
        quiet: Mapping[str, tuple[MonitorSpec, Signal, str]],
        measured: set[str],
        now: datetime,
        on_duty_since: Mapping[str, OnDuty],
        moved_on: Mapping[str, str],
    ) -> tuple[list[Alert], list[SignalFailure]]:
        """Record the signals this pass measured nothing for (``quiet``: no traffic, no labels,
        too few rows) and those measured again, and alert on each left unmeasured for its
        ``unmeasured_after`` since the first pass of its stretch: a model whose traffic dried
        up, or whose logging broke, is otherwise silently unwatched. The wait is a duration, not
        a count of passes, so how often the runner runs changes nothing. A stretch's start is
        audited once (``monitor.signal.unmeasured``), its end too (``monitor.signal.measured``,
        which resolves its ticket). A stretch that began before the signal went on duty
        (``on_duty_since``: a removed monitor's, an endpoint's since deleted and created again,
        or one from before a kill) is not this signal's: it is ended, audited
        (``monitor.signal.unmeasured.ended``, with why), its ticket resolved with that reason,
        and a new one starts. So is the stretch of a signal whose monitor's endpoint moved on
        to another model (``moved_on``, each with why): it fails every pass from then on, so
        its stretch would otherwise stay open, and its ticket keep the name taken, for ever.
        A pass on which the signal failed changes nothing else here (failures are audited
        apart). Recording it never stops the run, nor does an alert that cannot be raised (an
        owner stored by an earlier release that forges printed lines): it is returned as that
        signal's failure beside the alerts raised. The stretches are read under the audit
        chain's lock, so two runners at once on a server database record each outcome once; so
        is which monitors are still on duty, so no stretch is started, alerted on or ended as
        measured for a monitor removed since the pass measured it (its removal ended its
        stretch, which would otherwise start again and stay open for ever)."""
        try:
            with self.platform.store.write() as conn:
                self.platform.audit.lock(conn)
                state = _unmeasured_signals(conn)
                serving = _subjects_on_duty(conn)
                quiet = {k: v for k, v in quiet.items() if k in serving}
                ended = _ended_stretches(state, on_duty_since, moved_on)
                events = [
                    self.platform._audit(
                        conn,
                        SIGNAL_UNMEASURED_ENDED,
                        subject,
                        since=state.pop(subject).since.isoformat(),
                        why=why,
                    )
                    for subject, why in ended.items()
                ]
                due: list[tuple[Signal, str, Unmeasured]] = []
                for subject, (spec, signal, why) in quiet.items():
                    previous = state.get(subject)
                    if previous is None:
                        events.append(
                            self.platform._audit(
                                conn,
                                SIGNAL_UNMEASURED,
                                subject,
                                endpoint=spec.endpoint,
                                signal=signal.name,
                                since=now.isoformat(),
                                why=why[:2000],
                            )
                        )
                    found = Unmeasured(now if previous is None else previous.since, why)
                    if now - found.since >= parse_unmeasured_after(signal.unmeasured_after):
                        due.append((signal, spec.endpoint, found))
                back = sorted(measured & set(state) & serving)
                for subject in back:
                    since = state[subject].since.isoformat()
                    events.append(self.platform._audit(conn, SIGNAL_MEASURED, subject, since=since))
        except Exception:
            log.exception("recording unmeasured signal(s) in the audit trail failed")
            return [], []
        self.platform._after_commit(events)
        for subject, why in ended.items():
            self._resolve_unmeasured(subject, f"the signal's unmeasured stretch ended: {why}")
        for subject in back:
            self._resolve_unmeasured(subject, "the signal is measured again")
        alerts: list[Alert] = []
        refused: list[SignalFailure] = []
        for signal, endpoint, found in due:
            try:
                alerts.append(self._unmeasured_alert(signal, endpoint, found, now))
            except Exception as exc:  # one bad signal never stops the others
                error = str(exc) if isinstance(exc, MintakaError) else repr(exc)
                log.warning(
                    "the unmeasured alert of signal %r on %s could not be raised: %s",
                    signal.name,
                    endpoint,
                    error,
                    exc_info=not isinstance(exc, MintakaError),
                )
                refused.append(SignalFailure(endpoint, signal.name, error))
        return alerts, refused

    def _unmeasured_alert(
        self, signal: Signal, endpoint: str, found: Unmeasured, now: datetime
    ) -> Alert:
        """Raise the ``unmeasured`` alert of a signal left unmeasured too long: its own ticket
        (``endpoint:signal:unmeasured``, updated by each pass it stays so), for the signal's
        owner, at its severity, with its runbook and escalation; its value is the hours it has
        gone unmeasured, its threshold its ``unmeasured_after`` in hours."""
        after = parse_unmeasured_after(signal.unmeasured_after)
        alert, _ = self.raise_alert(
            f"{endpoint}:{signal.name}:{UNMEASURED}",
            endpoint,
            value=(now - found.since) / HOUR,
            threshold=after / HOUR,
            severity=signal.severity,
            owner=signal.owner,
            runbook_url=signal.runbook_url,
            escalation=signal.escalation,
            details={
                "kind": UNMEASURED,
                "metric": signal.metric,
                "window": signal.window,
                "since": found.since.isoformat(),
                "unmeasured_after": signal.unmeasured_after,
                "note": found.why,
            },
        )
        return alert

    def _resolve_unmeasured(self, subject: str, note: str) -> None:
        """Resolve the open ``unmeasured`` ticket of ``subject``, if any, saying why (``note``):
        it is measured again, or its stretch ended without it. One a person resolved meanwhile
        stays resolved with their note, and the pass goes on."""
        with self.platform.store.read() as conn:
            found = conn.execute(
                select(tickets.c.id).where(
                    tickets.c.signal == f"{subject}:{UNMEASURED}",
                    tickets.c.status != TicketStatus.RESOLVED.value,
                )
            ).scalar()
        if found is not None:
            with contextlib.suppress(Conflict):  # resolved since it was read
                self.resolve(str(found), note=note)

    def _alert(
        self, spec: MonitorSpec, signal: Signal, value: float, note: str | None = None
    ) -> Alert:
        """Raise the alert of a breached signal, and ask for retraining if the signal says so.
        The measurement's ``note`` (what it left out, and why) goes into the alert's details."""
        alert, _ = self.raise_alert(
            f"{spec.endpoint}:{signal.name}",
            spec.endpoint,
            value=value,
            threshold=signal.threshold,
            severity=signal.severity,
            owner=signal.owner,
            runbook_url=signal.runbook_url,
            escalation=signal.escalation,
            details={"metric": signal.metric, "window": signal.window}
            | ({} if note is None else {"note": note}),
        )
        if signal.retrain and signal.kind in RETRAINING_KINDS:
            self._request_retraining(spec, signal, alert)
        return alert

    def _request_retraining(self, spec: MonitorSpec, signal: Signal, alert: Alert) -> None:
        """Queue the model's retraining, unless a request for it is still pending, or waiting
        at a gate for its run to be resumed (drift that persists alerts on every pass; one
        retraining answers them all). A request refused by a data-validation or evaluation
        gate (a champion not beaten) holds off only for the binding's ``retry_after``: after
        that, drift that persists asks for a fresh retraining. A successful retraining (one
        asked for by hand too) settles the waiting requests. The plugins are told either way."""
        reason = (
            f"{signal.kind.value} signal {signal.name!r} on {spec.endpoint}: {signal.metric} ="
            f" {alert.value:.4g}, {direction(signal)} the threshold {signal.threshold:g}"
        )
        pipelines = self.platform.pipelines
        holding = pipelines.holding(spec.model)
        if holding is not None:
            log.info(
                "retraining of %s is already requested (%s, %s)",
                spec.model,
                holding.id,
                holding.status,
            )
        else:
            pipelines.request_retraining(
                spec.model,
                reason,
                trigger="drift" if signal.kind is SignalKind.DRIFT else "performance",
                alert=alert.id,
            )
        try:
            self.platform.plugins.hook.mintaka_retraining_requested(
                model=spec.model, reason=reason, alert=alert
            )
        except Exception:  # a failing trigger never undoes the alert
            log.exception("retraining trigger failed for %s", spec.model)

    def _measure(
        self,
        spec: MonitorSpec,
        signal: Signal,
        now: datetime,
        scored: Scored,
        samples: SampleCache,
    ) -> Measurement:
        if signal.kind is SignalKind.DRIFT:
            return self._drift(spec, signal, now, scored, samples)
        if signal.kind in _CLASS_KINDS:
            return self._class_signal(spec, signal, now)
        return self._telemetry(spec, signal, now)

    def _class_signal(self, spec: MonitorSpec, signal: Signal, now: datetime) -> Measurement:
        """A performance or fairness signal over the window's predictions, judged version by
        version (see :meth:`_per_version`)."""
        rows = self.window_predictions(spec.endpoint, signal.window, now)
        if signal.kind is SignalKind.PERFORMANCE:
            return self._per_version(spec, signal, rows, self._performance)
        return self._per_version(spec, signal, rows, self._fairness)

    def _per_version(
        self,
        spec: MonitorSpec,
        signal: Signal,
        rows: list[dict[str, Any]],
        measure: Callable[[Signal, list[dict[str, Any]]], float | None],
    ) -> Measurement:
        """``measure`` of the window's ``rows`` (see :meth:`window_predictions`) per model
        version that answered them, the worst value over the versions: during a canary, or
        after a redeploy within the window, one version's classes are not another's (numbers
        and strings, say), and mixing them fails or blurs the signal. Only the versions with
        records the metric reads count: when one or none has any, the window is measured whole,
        as a window of one version is (a canary's one unlabelled prediction must not silence
        the main version's signal). Beside another such version, a version of fewer than
        ``MIN_CLASS_GROUP_ROWS`` of those records is left out and noted (a handful of a
        canary's records swings an accuracy past any threshold); when every one is that small,
        the window is measured whole and noted. One that cannot be measured is named with why,
        while the others still give the value."""
        from mintaka.monitoring.metrics import TooFewGroups

        serving = self.platform.serving.get_endpoint(spec.endpoint)
        grouped = self._version_rows(serving, rows, idle=False, column=None)
        if len(grouped) <= 1:
            return _whole(signal, rows, measure)
        groups = [
            VersionOutputs(route, *key, found) for key, (route, found) in sorted(grouped.items())
        ]
        counted = [(group, *self._records(signal, group.rows)) for group in groups]
        read = [(group, size, what) for group, size, what in counted if size]
        if len(read) <= 1:
            return _whole(signal, rows, measure)
        values: list[float] = []
        unmeasured: list[str] = []
        notes: list[str] = []
        small = 0
        for group, size, what in read:
            if size < MIN_CLASS_GROUP_ROWS:
                small += 1
                notes.append(
                    f"{size} {what} of {group.name}, fewer than the {MIN_CLASS_GROUP_ROWS} a "
                    f"{signal.kind.value} signal judges a version on beside another; a longer "
                    "window measures it"
                )
                continue
            try:
                value = measure(signal, group.rows)
            except TooFewGroups as exc:  # below the floor, as too few records are
                notes.append(f"{group.name}: {exc}; a longer window may hold others")
                continue
            except ValidationError as exc:
                unmeasured.append(f"{group.name}: {exc}")
                continue
            values.extend([] if value is None else [value])
        if small == len(read):
            return self._whole_window(signal, rows, measure, read)
        worst = min if direction(signal) == "below" else max
        why = f"{signal.kind.value} signal {signal.name!r}: " + "; ".join(unmeasured)
        return Measurement(
            worst(values, default=None), why if unmeasured else None, "; ".join(notes) or None
        )

    def _whole_window(
        self,
        signal: Signal,
        rows: list[dict[str, Any]],
        measure: Callable[[Signal, list[dict[str, Any]]], float | None],
        small: Sequence[tuple[VersionOutputs, int, str]],
    ) -> Measurement:
        """``measure`` of all the window's ``rows`` when every version answering them has too
        few records to be judged alone (``small``: each version, its count and what it counts):
        the versions together are still watched, as before a second version answered, and the
        note says the value mixes them."""
        each = ", ".join(f"{size} {what} of {group.name}" for group, size, what in small)
        note = (
            f"every version has fewer than the {MIN_CLASS_GROUP_ROWS} records a "
            f"{signal.kind.value} signal judges a version on ({each}): the window is judged "
            "whole, its versions together"
        )
        found = _whole(signal, rows, measure)
        return Measurement(found.value, None, "; ".join(filter(None, (note, found.note))))

    def _records(self, signal: Signal, rows: Sequence[Mapping[str, Any]]) -> tuple[int, str]:
        """How many of ``rows`` ``signal`` reads, and what they are (see :meth:`_performance`
        and :meth:`_fairness`): the labelled predictions; for a fairness signal only those
        whose attribute has a group, and for demographic parity (which needs no labels) the
        predictions whose attribute has a group."""
        from mintaka.monitoring.metrics import has_group

        metric, _, attribute = signal.metric.partition(":")
        if signal.kind is not SignalKind.FAIRNESS:
            return len(self._labelled(rows).records), "labelled predictions"
        if metric == "demographic_parity":
            carrying = [
                r
                for r in rows
                if isinstance(r["inputs"], dict) and has_group(r["inputs"], attribute)
            ]
            return len(carrying), f"predictions carrying {attribute!r}"
        records = [
            r
            for r in self._labelled(rows).records
            if isinstance(r.inputs, Mapping) and has_group(r.inputs, attribute)
        ]
        return len(records), f"labelled predictions carrying {attribute!r}"

    def _telemetry(self, spec: MonitorSpec, signal: Signal, now: datetime) -> Measurement:
        """A telemetry signal measured, no value when there is nothing to measure (a window
        with no request, noted only when requests came with no latency read back). A backend
        that cannot read metrics back fails the signal (one stored before that was refused):
        it is not left to look quiet."""
        self._metrics_readable(signal)
        width = parse_window(signal.window)
        if isinstance(width, int):  # refused by add_monitor; a record count is no time span
            return Measurement(None)
        metrics = self.platform.serving.endpoint_metrics(spec.endpoint, now - width, now)
        requests = sum(metrics.requests.values())
        if requests == 0:
            return Measurement(None)
        if signal.metric == "error_rate":
            return Measurement(sum(metrics.errors.values()) / requests)
        if signal.metric == "invalid_rate":
            return Measurement(sum(metrics.invalid.values()) / requests)
        table = (
            metrics.p99_latency_ms if signal.metric == "p99_latency_ms" else metrics.p50_latency_ms
        )
        # No route's latency read back is no measurement, not a latency of 0 ms.
        value = max(table.values(), default=None)
        return Measurement(value, note=NO_LATENCY if value is None else None)

    def reference(self, endpoint: str) -> Reference | None:
        """What ``endpoint``'s drift is measured against (see :class:`Reference`)."""
        return self._reference(self.platform.serving.get_endpoint(endpoint))

    def _reference(self, current: Endpoint) -> Reference | None:
        """The training-data profile of the version taking most of ``current``'s traffic."""
        live = sorted(current.traffic.weights.items(), key=lambda item: -item[1])
        routes = {r.name: r for r in current.routes}
        for route, weight in live:
            if weight <= 0 or route not in routes:
                continue
            return self._version_reference(routes[route].model, routes[route].version)
        return None

    def _version_reference(self, model: str, version: int) -> Reference | None:
        """The profile of ``model:version``'s training data (see :meth:`training_dataset`)."""
        found = self.platform.get_model_version(model, version)
        dataset = self.training_dataset(found)
        if dataset is None or not dataset.profile:
            return None
        return Reference(found, dataset.id, dataset.profile)

    def training_dataset(self, found: ModelVersion) -> DatasetVersion | None:
        """The training data ``found``'s drift is judged against: its first dataset with a
        profile (a holdout or label file may be named beside it, unprofiled). Input drift takes
        its profile and prediction drift scores its file, so both judge the same data."""
        for dataset_id in found.dataset_ids:
            dataset = self.platform.get_dataset(dataset_id)
            if dataset.profile:
                return dataset
        return None

    def version_traffic(
        self, current: Endpoint, rows: Sequence[Mapping[str, Any]], *, idle: bool = False
    ) -> list[VersionTraffic]:
        """The window's logged ``rows`` by the training-data profile they are measured against:
        each row goes with the model version that answered it (as its prediction records it,
        else as its live route serves now), and the versions whose references are the same
        profile (one training dataset, the same declared inputs) are one group, one sample, so
        a redeploy of a model retrained on the same data splits nothing. One version's traffic
        is no drift from another version's training data. A row recording neither goes with
        the route taking most traffic. With ``idle`` every live route's version is there too,
        with the rows it answered (perhaps none). The runner measures drift and the monitor
        report draws it by these groups."""
        groups: dict[tuple[str, ...], VersionTraffic] = {}
        for (model, version), (route, found) in sorted(
            self._version_rows(current, rows, idle=idle).items()
        ):
            reference = self._version_reference(model, version)
            key = _sample_key(model, version, reference)
            if key in groups:
                group = groups[key]
                group.rows.extend(found)
                also = (*group.also, f"route {route!r} ({model}:{version})")
                groups[key] = replace(group, also=also)
            else:
                groups[key] = VersionTraffic(route, model, version, reference, list(found))
        return list(groups.values())

    def _version_rows(
        self,
        current: Endpoint,
        rows: Sequence[Mapping[str, Any]],
        *,
        idle: bool,
        column: str | None = "inputs",
    ) -> dict[tuple[str, int], tuple[str, list[Any]]]:
        """The logged ``column`` (inputs or output; ``None``: the whole row) of ``rows`` by the
        version that answered them (see :meth:`version_traffic`), each with the name of its
        route."""
        live = sorted(
            (r for r in current.routes if current.traffic.weights.get(r.name, 0) > 0),
            key=lambda r: (-current.traffic.weights[r.name], r.name),
        )
        routes = {r.name: r for r in live}
        grouped: dict[tuple[str, int], tuple[str, list[Any]]] = {}
        if idle:
            for serving in live:
                grouped.setdefault((serving.model, serving.version), (serving.name, []))
        for row in rows:
            route = routes.get(str(row.get("route")), live[0] if live else None)
            if row.get("model") and row.get("version") is not None:
                key = (str(row["model"]), int(row["version"]))
            elif route is not None:
                key = (route.model, route.version)
            else:
                continue  # no version recorded and none serving: nothing to compare with
            name = str(row.get("route") or (route.name if route else "unknown"))
            grouped.setdefault(key, (name, []))[1].append(row if column is None else row[column])
        return grouped

    def _drift(
        self,
        spec: MonitorSpec,
        signal: Signal,
        now: datetime,
        scored: Scored,
        samples: SampleCache,
    ) -> Measurement:
        """The largest drift statistic ``signal.metric`` (``psi``, ``jensen_shannon``,
        ``wasserstein``, ``ks_statistic``, ``chi2_statistic``; ``METRIC:FEATURE`` for one
        feature) between the window's logged inputs and the training data's profile, over the
        features it can be computed for; a watched feature it cannot be computed for (no values
        in the window, say, or an input the serving version declares that no row of it logs: a
        caller that stopped sending it) is named as unmeasured, never taken for one without
        drift. Without a signature, an all-features signal watches the profiled features the
        window logs (see :func:`watched_features`), and fails when it logs none of them.
        The rows each version answered (as each prediction records it) are measured against
        the profile of that version's own training data (see :meth:`_versions_drift`)."""
        metric, _, feature = signal.metric.partition(":")
        if metric not in DRIFT_METRICS:
            raise ValidationError(f"drift signal {signal.name!r} measures one of {DRIFT_METRICS}")
        _refuse_stored_window(spec, signal, self._monitor_id)
        if feature == PREDICTION:
            _refuse_unmeasurable(signal, {PREDICTION: "numeric"}, PREDICTION_SOURCE)
            return self._prediction_drift(spec, signal, metric, now, scored, samples)
        serving = self.platform.serving.get_endpoint(spec.endpoint)
        logged = [
            r
            for r in self.window_predictions(spec.endpoint, signal.window, now)
            if isinstance(r["inputs"], dict)
        ]
        if not logged:
            return Measurement(None)
        return self._versions_drift(signal, serving, logged)

    def _versions_drift(
        self, signal: Signal, serving: Endpoint, logged: Sequence[Mapping[str, Any]]
    ) -> Measurement:
        """Each version's rows against the training-data profile of that version (see
        :meth:`version_traffic`; after a redeploy within the window, or during a canary, more
        than one version answered), the largest value over the versions. A version without a
        profile, or whose drift cannot be measured, is named with why (by route and version
        when the window holds the rows of more than one), never measured against another
        version's profile."""
        groups = self.version_traffic(serving, logged)
        measured, note = enough_rows([g for g in groups if g.reference is not None])
        if len(groups) == 1 and measured and measured[0].reference is not None:
            found = self._drift_against(signal, measured[0].reference, measured[0].rows)
            return replace(found, note=found.note or note)
        values: list[float] = []
        unmeasured: list[str] = []
        notes = [note] if note else []
        for group in groups:
            if group.reference is not None and not any(group is m for m in measured):
                continue
            found = self._version_drift(signal, group)
            if found.value is not None:
                values.append(found.value)
            if found.unmeasured is not None:
                unmeasured.append(f"{group.name}: {found.unmeasured}")
            if found.note is not None:
                notes.append(f"{group.name}: {found.note}")
        why = None
        if unmeasured:
            why = f"drift signal {signal.name!r}: " + "; ".join(unmeasured)
        return Measurement(max(values, default=None), why, "; ".join(notes) or None)

    def _version_drift(self, signal: Signal, group: VersionTraffic) -> Measurement:
        """``signal``'s drift of ``group``'s rows against its version's profile, a failure to
        measure it read as the value ``None`` and why (without the signal's name, which the
        caller puts before the reasons of every version)."""
        if group.reference is None:
            return Measurement(None, NO_PROFILE)
        try:
            found = self._drift_against(signal, group.reference, group.rows)
        except ValidationError as exc:
            return Measurement(None, _unnamed(signal, str(exc)))
        if found.unmeasured is None:
            return found
        return Measurement(found.value, _unnamed(signal, found.unmeasured))

    def _drift_against(
        self, signal: Signal, reference: Reference, rows: list[dict[str, Any]]
    ) -> Measurement:
        """``signal``'s drift statistic of ``rows`` (logged inputs) against ``reference``. A
        feature with some values in ``rows``, but fewer than its profile needs (see
        :func:`~mintaka.monitoring.statistics.min_values`: a feature logged in few rows, or of
        many categories), is left out and named in the note, as a group of too few rows is:
        its statistic would be noise, which alerts on healthy traffic."""
        from mintaka.monitoring.profiles import DatasetProfile
        from mintaka.monitoring.statistics import drift

        metric, _, feature = signal.metric.partition(":")
        source = f"the training data {reference.dataset_id}"
        profile = DatasetProfile.from_json(reference.profile)
        if feature:
            features = [feature]
            kinds: dict[str, str] = {
                f: profile.features[f].kind for f in features if f in profile.features
            }
        else:
            kinds, source = _logged_features(signal, reference, rows, source)
            features = list(kinds)
        _refuse_unmeasurable(signal, kinds, source)
        report = drift(profile, rows, features=features)
        few = {
            name: why
            for name, why in report.too_few().items()
            if metric in STATISTICS[report.features[name].kind]
        }
        values = [report.value(f, metric) for f in features if f not in few]
        value = max((v for v in values if v is not None), default=None)
        logged = set().union(*rows)
        unmeasured = {
            name: why_unmeasured(name, why, logged)
            for name, why in report.unmeasured(metric).items()
            if name not in few
        }
        note = None
        if few:
            named = "; ".join(f"{name!r} ({why})" for name, why in few.items())
            note = f"too few values to judge: {named}; a longer window measures them"
        if not unmeasured:
            return Measurement(value, note=note)
        why = "; ".join(f"{name!r} ({reason})" for name, reason in unmeasured.items())
        return Measurement(
            value,
            f"drift signal {signal.name!r}: no {metric} against {reference.dataset_id} for {why}",
            note,
        )

    def version_scores(
        self, found: ModelVersion, samples: SampleCache | None = None
    ) -> TrainingScores | None:
        """The profile of ``found``'s own predictions on its training data: the reference for
        drift of the prediction itself. Scores a seeded uniform sample of at most
        ``SAMPLE_ROWS`` training rows (read as a stream, the same sample on every run) with the
        verified artifact, from the dataset input drift is measured against (see
        :meth:`training_dataset`); ``None`` when the version names none. Only rows holding
        every model input are sampled, each input typed as the signature declares it (else as
        the profile found it): the rows skipped are counted. The file must still hold the
        dataset version the model was registered with: a ``ValidationError`` naming it when it
        is gone or was rewritten, never a score of other data, and so is any failure of the
        model to score it. ``samples`` shares the file's check and sample with the other
        versions scored in the same pass of the runner."""
        from mintaka.flavors.loader import load_predictor
        from mintaka.monitoring.profiles import profile
        from mintaka.monitoring.training_data import SampleCache

        dataset = self.training_dataset(found)
        if dataset is None:
            return None
        samples = SampleCache(self.platform.home) if samples is None else samples
        stored = self.platform.artifacts.verify(found.artifact_digest)
        predictor = load_predictor(
            stored.content, found.flavor, features=tuple(found.signature.inputs)
        )
        named = f"dataset {dataset.id} ({dataset.name})"
        kinds = _input_kinds(found, predictor.features, dataset)
        sample = samples.feature_sample(dataset, kinds)
        if not sample.rows:
            raise ValidationError(
                f"none of the {sample.read} rows of {named} holds every input of "
                f"{found.name}:{found.version} as a number where one is declared, so its "
                "model has nothing to score"
            )
        try:
            scores = [predicted_score(output) for output in predictor.predict(sample.rows)]
        except Exception as exc:  # the model's own code, whatever it raises
            raise ValidationError(
                f"{found.name}:{found.version} could not score {named}: {exc}"
            ) from None
        return TrainingScores(profile({PREDICTION: scores}), named, sample.skipped, sample.read)

    def _prediction_drift(
        self,
        spec: MonitorSpec,
        signal: Signal,
        metric: str,
        now: datetime,
        scored: Scored,
        samples: SampleCache,
    ) -> Measurement:
        """The drift of the window's logged scores, each version's against that version's own
        scores on its training data (each scored once a run, in ``scored``), the largest value
        over the versions; each version is its own group (the version that answered each row, as
        :meth:`version_traffic` tells them apart, but never merged with another version of the
        same training data, whose scores differ), and a version of too few rows is left out (see
        :func:`enough_rows`). A version with no training data to score fails the signal, named
        by route and version."""
        serving = self.platform.serving.get_endpoint(spec.endpoint)
        logged = [
            r
            for r in self.window_predictions(spec.endpoint, signal.window, now)
            if r["output"] is not None
        ]
        grouped = self._version_rows(serving, logged, idle=False, column="output")
        groups = [
            VersionOutputs(route, *key, found) for key, (route, found) in sorted(grouped.items())
        ]
        for group in groups:
            key = (group.model, group.version)
            if key not in scored:
                scored[key] = self._scores_or_why(group.model, group.version, samples)
        measured, note = enough_rows(
            [g for g in groups if not isinstance(scored[(g.model, g.version)], str)]
        )
        notes = [note] if note else []
        for group in measured:
            reference = scored[(group.model, group.version)]
            if isinstance(reference, TrainingScores) and reference.skipped:
                notes.append(f"{group.name}: {reference.skipped_note()}")
        values: list[float] = []
        unmeasured: list[str] = []
        for group in groups:
            reference = scored[(group.model, group.version)]
            if isinstance(reference, str):
                unmeasured.append(f"{group.name}: {reference}")
            elif any(group is m for m in measured):
                value, few = _scores_drift(reference.profile, group, metric)
                values.extend([] if value is None else [value])
                if few is not None:
                    notes.append(
                        f"{group.name}: too few scores to judge ({few}); a longer window "
                        "measures it"
                    )
        why = None
        if unmeasured:
            why = f"drift signal {signal.name!r}: " + "; ".join(unmeasured)
        return Measurement(max(values, default=None), why, "; ".join(notes) or None)

    def _scores_or_why(
        self, model: str, version: int, samples: SampleCache
    ) -> TrainingScores | str:
        """``model:version``'s scores on its training data (see :meth:`version_scores`), or
        why it has none."""
        try:
            found = self.version_scores(self.platform.get_model_version(model, version), samples)
        except ValidationError as exc:
            return str(exc)
        return NO_SCORES if found is None else found

    def window_predictions(self, endpoint: str, window: str, now: datetime) -> list[dict[str, Any]]:
        """The live (not shadow), successful predictions logged for ``endpoint`` in the
        ``window`` up to ``now``, oldest first, as ``{"id", "at", "inputs", "output", "route",
        "model", "version"}``.

        A time window (``"1h"``) takes every prediction since ``now - 1h``; a count window
        (``"5000n"``) takes the latest 5,000 up to ``now``.
        """
        spec = parse_window(window)
        query = select(
            predictions.c.id,
            predictions.c.at,
            predictions.c.inputs,
            predictions.c.output,
            predictions.c.route,
            predictions.c.model,
            predictions.c.version,
        ).where(
            predictions.c.endpoint == endpoint,
            predictions.c.shadow == 0,
            predictions.c.status == "ok",
            predictions.c.at <= now.isoformat(),
        )
        if isinstance(spec, int):
            query = query.order_by(predictions.c.at.desc(), predictions.c.id.desc()).limit(spec)
        else:
            query = query.where(predictions.c.at >= (now - spec).isoformat()).order_by(
                predictions.c.at, predictions.c.id
            )
        with self.platform.store.read() as conn:
            rows = [row._asdict() for row in conn.execute(query)]
        return rows[::-1] if isinstance(spec, int) else rows

    def _labelled(self, rows: Sequence[Mapping[str, Any]]) -> Joined:
        """``rows`` (see :meth:`window_predictions`) paired with the labels they have."""
        from mintaka.monitoring.metrics import join_labels

        ids = [r["id"] for r in rows]
        found: dict[str, Any] = {}
        with self.platform.store.read() as conn:
            for start in range(0, len(ids), 500):
                query = select(labels.c.prediction_id, labels.c.label).where(
                    labels.c.prediction_id.in_(ids[start : start + 500])
                )
                found.update({pid: label for pid, label in conn.execute(query)})
        return join_labels(rows, found)

    def _performance(self, signal: Signal, rows: list[dict[str, Any]]) -> float | None:
        """``signal.metric`` over the window's predictions ``rows`` that have labels; nothing
        while none has. The window is over prediction time, so it should be wide enough for
        labels to arrive (``"7d"`` for labels a few days late)."""
        from mintaka.monitoring.metrics import (
            accuracy,
            binary_positive,
            expected_calibration_error,
            rmse,
            roc_auc,
            single_class,
        )

        joined = self._labelled(rows)
        if not joined.records:
            return None
        truth = [r.label for r in joined.records]
        if signal.metric == "accuracy":
            return accuracy(
                truth, predicted_classes([r.output for r in joined.records], "accuracy")
            )
        if signal.metric == "rmse":
            return rmse(truth, [predicted_label(r.output) for r in joined.records])
        scores = [predicted_score(r.output) for r in joined.records]
        if signal.metric == "roc_auc":
            if single_class(truth, signal.positive):
                return None  # undefined until both classes have been labelled
            return roc_auc(truth, scores, positive=signal.positive)
        if binary_positive(truth, signal.positive) is None:
            return None  # one class other than 0/1: not measurable until the signal declares it
        return expected_calibration_error(truth, scores, positive=signal.positive)

    def _fairness(self, signal: Signal, rows: list[dict[str, Any]]) -> float | None:
        """Demographic parity difference over the window's predictions ``rows``, or equalized
        odds difference over those with labels, across the groups of a logged input column. Classes
        other than 0/1 need the signal's ``positive``: without it the signal fails instead of
        reporting 0 (see :func:`~mintaka.monitoring.metrics.positive_class`). A prediction
        whose attribute is missing (not logged, None or NaN) is in no group and left out."""
        from mintaka.monitoring.metrics import (
            demographic_parity_difference,
            equalized_odds_difference,
            has_group,
        )

        metric, _, attribute = signal.metric.partition(":")
        if metric == "demographic_parity":
            grouped = [
                r
                for r in rows
                if isinstance(r["inputs"], dict) and has_group(r["inputs"], attribute)
            ]
            if not grouped:
                return None
            return demographic_parity_difference(
                predicted_classes([r["output"] for r in grouped], metric),
                [r["inputs"][attribute] for r in grouped],
                positive=signal.positive,
                attribute=attribute,
            )
        records = [
            r
            for r in self._labelled(rows).records
            if isinstance(r.inputs, Mapping) and has_group(r.inputs, attribute)
        ]
        if not records:
            return None
        return equalized_odds_difference(
            [r.label for r in records],
            predicted_classes([r.output for r in records], metric),
            [r.inputs[attribute] for r in records if r.inputs is not None],
            positive=signal.positive,
            attribute=attribute,
        )

    # -- labels -------------------------------------------------------------------------------

    def string_classes(self, ids: Sequence[str]) -> set[str]:
        """The prediction ids among ``ids`` made by a model whose classes are strings: the class
        logged for the prediction is a string or, when it logged no class (a bare score
        mapping), its version's signature declares only string outputs. A class logged as a
        number or boolean decides the other way, whatever the signature says (an ``object``
        output holds numbers as well). A label read from text for one of them stays text:
        ``"True"`` is a class of such a model, and reading it as the boolean would never equal
        what the model predicts (see :func:`~mintaka.monitoring.metrics.classes`). Unknown ids
        are left out."""
        found: set[str] = set()
        signatures: dict[tuple[str, int], bool] = {}
        with self.platform.store.read() as conn:
            rows = [
                row
                for start in range(0, len(ids), LABEL_CHUNK)
                for row in conn.execute(
                    select(
                        predictions.c.id,
                        predictions.c.output,
                        predictions.c.model,
                        predictions.c.version,
                    ).where(predictions.c.id.in_(ids[start : start + LABEL_CHUNK]))
                )
            ]
        for row in rows:
            logged = predicted_label(row.output)
            if logged is not None:
                if isinstance(logged, str):
                    found.add(row.id)
                continue
            if row.model is None or row.version is None:
                continue
            key = (row.model, row.version)
            if key not in signatures:
                signatures[key] = self._string_outputs(row.model, row.version)
            if signatures[key]:
                found.add(row.id)
        return found

    def _string_outputs(self, model: str, version: int) -> bool:
        """Whether the signature of ``model:version`` declares outputs, every one a string."""
        try:
            outputs = self.platform.get_model_version(model, version).signature.outputs
        except NotFound:
            return False
        return bool(outputs) and all(
            dtype.strip().lower() in STRING_DTYPES for dtype in outputs.values()
        )

    def record_labels(self, found: Mapping[str, Any]) -> int:
        """Store the ground truth for logged predictions, keyed by prediction id.

        Every id must name a logged prediction: one unknown id refuses the whole batch with
        ``NotFound`` before anything is written. A label for an id that already has one replaces
        it, and the replacement is audited with the previous value. Returns how many were stored.
        The labels are read under the audit chain's lock, so of two processes replacing one at
        once on a server database the second audits the first one's value as the previous.
        """
        if not found:
            return 0
        missing = [pid for pid, label in found.items() if _no_label(label)]
        if missing:
            raise ValidationError(
                f"labels must not be empty or NaN: {sorted(missing)[:5]} (leave a prediction "
                "out until its label is known)"
            )
        ids = list(found)
        now = self.platform._now().isoformat()
        with self.platform.store.write() as conn:
            self.platform.audit.lock(conn)
            known: set[str] = set()
            previous: dict[str, Any] = {}
            for i in range(0, len(ids), LABEL_CHUNK):
                chunk = ids[i : i + LABEL_CHUNK]
                known.update(
                    conn.execute(
                        select(predictions.c.id).where(predictions.c.id.in_(chunk))
                    ).scalars()
                )
                for pid, label in conn.execute(
                    select(labels.c.prediction_id, labels.c.label).where(
                        labels.c.prediction_id.in_(chunk)
                    )
                ):
                    previous[pid] = label
            unknown = [pid for pid in ids if pid not in known]
            if unknown:
                raise NotFound(
                    f"{len(unknown)} label(s) name no logged prediction, e.g. {unknown[:5]}"
                )
            fresh = [
                {
                    "prediction_id": pid,
                    "label": found[pid],
                    "received_at": now,
                    "sent_by": self.platform.actor,
                }
                for pid in ids
                if pid not in previous
            ]
            if fresh:
                conn.execute(labels.insert(), fresh)
            events = []
            for pid in ids:
                if pid not in previous:
                    continue
                conn.execute(
                    update(labels)
                    .where(labels.c.prediction_id == pid)
                    .values(label=found[pid], received_at=now, sent_by=self.platform.actor)
                )
                events.append(
                    self.platform._audit(
                        conn, "label.replace", pid, previous=previous[pid], label=found[pid]
                    )
                )
            events.append(
                self.platform._audit(
                    conn, "labels.record", "labels", count=len(ids), replaced=len(previous)
                )
            )
        self.platform._after_commit(events)
        return len(ids)


def _subjects_on_duty(conn: Connection) -> set[str]:
    """The signals ("endpoint:signal") of the monitors not removed, as ``conn`` reads them now:
    a monitor another process removed during a pass has its failure and stretch ended, and
    recording either again would open them for a signal no one watches."""
    rows = conn.execute(
        select(monitors.c.endpoint, monitors.c.spec).where(monitors.c.removed_at.is_(None))
    )
    return {f"{row.endpoint}:{name}" for row in rows for name in _stored_signal_names(row.spec)}


def _ended_stretches(
    state: Mapping[str, Unmeasured],
    on_duty_since: Mapping[str, OnDuty],
    moved_on: Mapping[str, str],
) -> dict[str, str]:
    """The unmeasured stretches in ``state`` that are no longer their signal's, each with why:
    those of a monitor whose endpoint moved on to another model (``moved_on``), and those that
    began before the signal went on duty as it is now (see
    :meth:`MonitoringService._on_duty_since`). A stretch of a signal off duty (a deleted
    endpoint's) is left as it is, its ticket for its owner; a removed monitor's ended with it."""
    ended: dict[str, str] = {}
    for subject, found in state.items():
        duty = on_duty_since.get(subject)
        if subject in moved_on:
            ended[subject] = moved_on[subject]
        elif duty is not None and found.since < duty.since:
            ended[subject] = f"{duty.why} at {duty.since.isoformat()}, after it began"
    return ended


def _failures_not_on_duty(
    failing: Mapping[str, Failing], on_duty_since: Mapping[str, OnDuty], serving: Container[str]
) -> list[tuple[str, str]]:
    """The open failures in ``failing`` of signals on duty (``serving``) that were audited
    before the signal went on duty as it is now, each with why it is no longer the signal's:
    an earlier incarnation's, from before its endpoint was created again or released from its
    kill switch, or its monitor added again."""
    ended = []
    for subject, found in sorted(failing.items()):
        duty = on_duty_since.get(subject)
        if subject in serving and duty is not None and found.at < duty.since:
            ended.append((subject, f"{duty.why} at {duty.since.isoformat()}, after it began"))
    return ended


def _same_monitor(conn: Connection, spec: MonitorSpec) -> str | None:
    """The id of the monitor on duty that is ``spec`` itself, if any. A signal name another
    monitor of the endpoint uses (one of an endpoint since deleted too: its monitors stay on
    record and watch the endpoint again once it is recorded again) is a Conflict: an endpoint's
    alerts are ticketed by signal name. Removed monitors are neither (see
    :func:`_refuse_removed_tickets` for the names they used)."""
    rows = conn.execute(
        select(monitors.c.id, monitors.c.spec)
        .where(monitors.c.endpoint == spec.endpoint, monitors.c.removed_at.is_(None))
        .order_by(monitors.c.created_at, monitors.c.id)
    ).all()
    taken: dict[str, str] = {}
    for row in rows:
        if _is_stored(row.spec, spec):
            return str(row.id)
        taken.update(dict.fromkeys(_stored_signal_names(row.spec), str(row.id)))
    clashes = sorted({s.name for s in spec.signals} & set(taken))
    if clashes:
        raise Conflict(
            f"endpoint {spec.endpoint} already has signal(s) {clashes} (monitor "
            f"{taken[clashes[0]]}): give each signal on an endpoint its own name"
        )
    _refuse_removed_tickets(conn, spec)
    return None


def _refuse_removed_tickets(conn: Connection, spec: MonitorSpec) -> None:
    """Refuse a signal name a removed monitor of the endpoint used while a ticket of that
    signal (its alerts, or its going unmeasured) is still open: the endpoint has one open
    ticket per signal name, so the new signal's alerts would be counted on the removed one's
    ticket, under its owner and escalation. Resolving those tickets frees the name."""
    removed = conn.execute(
        select(monitors.c.spec).where(
            monitors.c.endpoint == spec.endpoint, monitors.c.removed_at.is_not(None)
        )
    ).scalars()
    used = {name for raw in removed for name in _stored_signal_names(raw)}
    reused = sorted({s.name for s in spec.signals} & used)
    subjects = [f"{spec.endpoint}:{name}" for name in reused]
    if not subjects:
        return
    still_open = conn.execute(
        select(tickets.c.id)
        .where(
            tickets.c.endpoint == spec.endpoint,
            tickets.c.signal.in_([*subjects, *(f"{s}:{UNMEASURED}" for s in subjects)]),
            tickets.c.status != TicketStatus.RESOLVED.value,
        )
        .order_by(tickets.c.id)
    ).scalars()
    found = list(still_open)
    if found:
        raise Conflict(
            f"signal(s) {reused} of a removed monitor of {spec.endpoint} still have open "
            f"ticket(s) {found}: resolve them first (mintaka tickets resolve TICKET_ID), so "
            "the new signal's alerts are not counted on them"
        )


SINK_FAILED = "failed: "  # the reference of a sink that raised, before the error's name
SINKS_HOOK = "mintaka_ticket_sinks"  # where a ticket records its sinks failing all at once


def _serves(endpoint: Endpoint, model: str) -> bool:
    """Whether a route of ``endpoint`` (live, shadow or waiting for traffic) serves ``model``."""
    return any(route.model == model for route in endpoint.routes)


def _measures(spec: MonitorSpec, recorded: Mapping[str, Endpoint]) -> bool:
    """Whether the runner measures monitor ``spec``: its endpoint is ``recorded`` (a deleted
    one's monitors rest) and still serves its model (one that moved on fails every signal).
    What :meth:`MonitoringService.coverage` and :meth:`MonitoringService.watching` count."""
    return spec.endpoint in recorded and _serves(recorded[spec.endpoint], spec.model)


def _served(endpoint: Endpoint) -> str:
    """The versions ``endpoint``'s routes serve, as an error names them."""
    return ", ".join(f"{r.model}:{r.version}" for r in endpoint.routes) or "nothing"


def _unreadable(
    endpoint: str,
    raw: Mapping[str, Any],
    why: ValidationError,
    recorded: Mapping[str, Endpoint],
) -> list[SignalFailure]:
    """The failures of the signals of a stored monitor of ``endpoint`` (its row's, which
    :meth:`MonitoringService.remove_monitor` also goes by, whatever its stored spec holds) this
    release cannot read (``why``): each fails every pass, reported and audited, until the
    monitor is removed or stored again. One of an endpoint not ``recorded`` rests, as a deleted
    endpoint's monitors do."""
    if endpoint not in recorded:
        return []
    return [SignalFailure(endpoint, name, str(why)) for name in _stored_signal_names(raw)]


def _not_served(monitor_id: str, spec: MonitorSpec, endpoint: Endpoint) -> str:
    """Why monitor ``monitor_id`` measures nothing now: its endpoint moved on to another model."""
    return (
        f"monitor {monitor_id} watches {spec.model!r}, but endpoint {spec.endpoint!r} now serves "
        f"{_served(endpoint)}: its signals are not measured on another model's traffic, nor is "
        f"{spec.model!r} retrained on it; remove it (mintaka monitor remove {monitor_id} "
        "--reason ...) and monitor the model served"
    )


def _sample_key(model: str, version: int, reference: Reference | None) -> tuple[str, ...]:
    """What tells drift groups apart: the reference's training dataset and declared inputs
    (which decide the features watched), or the version itself when it has no reference."""
    if reference is None:
        return ("version", model, str(version))
    return ("profile", reference.dataset_id, *sorted(reference.version.signature.inputs))


def _refuse_unmeasurable_window(signal: Signal) -> None:
    """Refuse a drift signal whose count window holds fewer records than a drift group needs
    (see :func:`enough_rows`): it would never be measured, silent whatever the traffic does."""
    if signal.kind is not SignalKind.DRIFT:
        return
    count = parse_window(signal.window)
    if isinstance(count, int) and count < MIN_GROUP_ROWS:
        raise ValidationError(
            f"drift signal {signal.name!r} has a window of {count} records, fewer than the "
            f"{MIN_GROUP_ROWS} drift needs to measure anything: give it at least "
            f'{MIN_GROUP_ROWS} records ("{MIN_GROUP_ROWS}n") or a time window'
        )


def _refuse_stored_window(
    spec: MonitorSpec, signal: Signal, monitor_id: Callable[[MonitorSpec], str | None]
) -> None:
    """Fail a drift signal of a monitor stored before :func:`_refuse_unmeasurable_window`
    refused its count window: it would never be measured, however much traffic there is, and
    the monitor stays on record as it is until it is removed (``monitor_id`` finds its id,
    looked up only then, for the command that removes it)."""
    try:
        _refuse_unmeasurable_window(signal)
    except ValidationError as exc:
        found = monitor_id(spec) or "MONITOR_ID"
        raise ValidationError(
            f"monitor {found} of {spec.endpoint} (model {spec.model}) was stored before such "
            f"windows were refused: {exc}; remove it (mintaka monitor remove {found} --reason "
            "TEXT) and add one with such a window to watch it"
        ) from None


def _input_kinds(
    found: ModelVersion, features: Sequence[str], dataset: DatasetVersion
) -> dict[str, str]:
    """How each model input of ``found`` is read from its training file: ``"float"`` or
    ``"int"`` as its signature declares it, text for any other declared type, and, undeclared,
    a number when the dataset's profile found one, else text. The inputs are the predictor's
    ``features`` (its signature's, else the model's own names), else every profiled column."""
    from mintaka.monitoring.profiles import DatasetProfile

    profiled = DatasetProfile.from_json(dataset.profile or {}).features
    kinds: dict[str, str] = {}
    for feature in features or tuple(profiled):
        dtype = str(found.signature.inputs.get(feature, "")).lower()
        if dtype.startswith(_FLOAT_TYPES):
            kinds[feature] = "float"
        elif dtype.startswith(_INTEGER_TYPES):
            kinds[feature] = "int"
        elif dtype:
            kinds[feature] = "text"
        elif feature in profiled and profiled[feature].kind == "numeric":
            kinds[feature] = "float"
        else:
            kinds[feature] = "text"
    return kinds


def _scores_drift(
    reference: DatasetProfile, group: VersionOutputs, metric: str
) -> tuple[float | None, str | None]:
    """``metric`` of ``group``'s logged scores against its version's own training scores, or
    ``None`` and why when they are fewer than the profile needs (see
    :meth:`~mintaka.monitoring.statistics.FeatureDrift.too_few`)."""
    from mintaka.monitoring.statistics import drift

    current = [predicted_score(output) for output in group.rows]
    found = drift(reference, {PREDICTION: current})
    few = found.features[PREDICTION].too_few()
    return (None, few) if few is not None else (found.value(PREDICTION, metric), None)


def enough_rows(groups: list[GroupT]) -> tuple[list[GroupT], str | None]:
    """The drift groups measured, and a note naming those left out: a group of fewer than
    ``MIN_GROUP_ROWS`` rows is no sample (its statistic is noise: one ordinary row against a
    profile of ten bins reads as a PSI of 8, and no feature is judged on so few values), so it
    is left out, which is no failure and no
    alert. That holds for the only group of a window too: a window none of whose groups has
    that many rows is not measured. The groups given are those that can be measured at all (a
    version without a reference fails the signal whatever its rows)."""
    measured = [g for g in groups if len(g.rows) >= MIN_GROUP_ROWS]
    few = [g for g in groups if len(g.rows) < MIN_GROUP_ROWS]
    if not few:
        return groups, None
    return measured, "; ".join(too_few(g) for g in few)


def too_few(group: _Group) -> str:
    """Why ``group`` is left out of a drift measurement: too few rows in the window."""
    return (
        f"{len(group.rows)} rows of {group.name}, fewer than the {MIN_GROUP_ROWS} drift needs; "
        "a longer window measures it"
    )


def _refuse_unmeasurable(signal: Signal, kinds: Mapping[str, str], source: str) -> None:
    """Refuse a drift signal whose statistic no watched feature (name -> kind, in ``source``)
    has: a chi-square of numeric features would never measure anything, and a signal that
    measures nothing stays silent whatever the traffic does."""
    metric = signal.metric.partition(":")[0]
    if not kinds or any(metric in STATISTICS.get(kind, ()) for kind in kinds.values()):
        return
    have = " or ".join(kinds_with(metric))
    if len(kinds) == 1:
        [(name, kind)] = kinds.items()
        what = f"{name!r} of {source} is a {kind} feature"
    else:
        what = f"{source} profiles no {have} feature (only {sorted(set(kinds.values()))})"
    raise ValidationError(
        f"drift signal {signal.name!r} measures {metric}, which only {have} features have, and "
        f"{what}: nothing could be measured"
    )


def _has_values(feature: Mapping[str, Any]) -> bool:
    """Whether a stored feature profile holds a value: a training column left empty has no
    distribution for traffic to drift from."""
    return int(feature.get("count", 0)) > int(feature.get("missing", 0))


def watched_features(reference: Reference, rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The profiled features an all-features drift signal watches in a window whose logged
    inputs are ``rows``, name -> kind: the inputs the serving version's signature declares (a
    training dataset also holds the label, and columns the model never takes); when it declares
    none, the profiled features the window logs (every one while it logs nothing). A column
    without values in the training data is left out. The monitor report shows these too."""
    inputs = reference.version.signature.inputs
    profiled = reference.profile.get("features", {})
    watched = {
        name: str(found.get("kind"))
        for name, found in profiled.items()
        if (not inputs or name in inputs) and _has_values(found)
    }
    if inputs or not rows:
        return watched
    logged = set().union(*rows)
    return {name: kind for name, kind in watched.items() if name in logged}


def _watched_features(signal: Signal, reference: Reference, source: str) -> dict[str, str]:
    """The profiled features an all-features drift signal may watch (see
    :func:`watched_features`); a signal left with nothing to watch is refused."""
    watched = watched_features(reference, ())
    if watched:
        return watched
    inputs = reference.version.signature.inputs
    among = f"the inputs {list(inputs)} of {reference.version.ref}" if inputs else "its columns"
    raise ValidationError(
        f"drift signal {signal.name!r} watches every input feature, but {source} profiles none "
        f"of {among} with values: nothing could be measured"
    )


def _logged_features(
    signal: Signal, reference: Reference, rows: Sequence[Mapping[str, Any]], source: str
) -> tuple[dict[str, str], str]:
    """The features an all-features drift signal watches in a window with traffic (see
    :func:`watched_features`), and ``source`` narrowed to those when the window left some out.
    Without a signature, a window none of whose rows logs a profiled feature fails the signal:
    callers that renamed or stopped sending every input make no quiet window."""
    profiled = _watched_features(signal, reference, source)
    watched = watched_features(reference, rows)
    if not watched:
        raise ValidationError(
            f"drift signal {signal.name!r}: no prediction in the window logs any of the features "
            f"{sorted(profiled)} that {source} profiles: nothing could be measured (declare the "
            "serving version's inputs to have each one the callers stopped sending named)"
        )
    if watched == profiled:
        return watched, source
    return watched, f"{source} (among the features the window logs)"


def _unnamed(signal: Signal, why: str) -> str:
    """``why`` without the ``drift signal 'NAME': `` it starts with, when it does."""
    return why.removeprefix(f"drift signal {signal.name!r}: ")


def why_unmeasured(feature: str, why: str, logged: Container[str]) -> str:
    """Why ``feature`` could not be measured in a window whose rows log the features ``logged``:
    ``why``, as the drift statistics say it, except for a feature no row logs at all: an input
    the caller no longer sends is a change of schema, which its reason should name rather than
    describe as values that are all missing."""
    return why if feature in logged else "not logged in the window"


def _no_label(label: Any) -> bool:
    """None, a blank string or a non-finite number: no ground truth to score against."""
    if label is None:
        return True
    if isinstance(label, str):
        return not label.strip()
    return isinstance(label, float) and not math.isfinite(label)


def _kept_reference(stored: Any, ref: str) -> bool:
    """Whether a sink's reference ``stored`` on a ticket stays as it is, given the sink's
    answer ``ref`` now: it is that answer, or a reference the sink gave before that a failure
    of the sink now (``failed: ERROR``) does not replace."""
    if stored == ref:
        return True
    return (
        ref.startswith(SINK_FAILED)
        and isinstance(stored, str)
        and bool(stored)
        and not stored.startswith(SINK_FAILED)
    )


UNREADABLE_STEP = "unreadable: "  # the owner of a step that is no mapping, before it as JSON


def _ticket(row: Any) -> Ticket:
    """A stored ticket as it is listed, acknowledged and resolved, whatever release stored it:
    its escalation steps as stored (a step written before steps were capped still loads; one
    that is not a mapping at all is kept as a step with no delay, owned by ``unreadable: `` and
    the step as JSON), and a severity or status no release of this one knows kept as stored
    text. Only for showing and moving it: :func:`_escalated_ticket` reads one to escalate."""
    steps = row.escalation if isinstance(row.escalation, list) else [row.escalation]
    return Ticket.model_construct(
        id=row.id,
        alert_id=row.alert_id,
        signal=row.signal,
        endpoint=row.endpoint,
        owner=row.owner,
        severity=_known(Severity, row.severity),
        status=_known(TicketStatus, row.status),
        runbook_url=row.runbook_url,
        escalation=tuple(_stored_ticket_step(step) for step in steps),
        escalation_level=row.escalation_level,
        alerts=row.alerts,
        opened_at=_instant(row.opened_at),
        updated_at=_instant(row.updated_at),
        acked_by=row.acked_by,
        sinks={name: sink_reference(ref) for name, ref in row.sinks.items()},
    )


def _escalated_ticket(row: Any) -> Ticket:
    """A stored open ticket read to be escalated: a ``ValidationError`` naming it when its
    severity or an escalation step is in a form this release cannot read (a step that is not a
    mapping, a severity of a later release), as it could be sent to its sinks or handed on
    only as something it is not."""
    found = _ticket(row)
    steps = row.escalation if isinstance(row.escalation, list) else [row.escalation]
    unread = [
        f"escalation step {index} {step!r}"
        for index, step in enumerate(steps, start=1)
        if not isinstance(step, Mapping)
    ]
    if not isinstance(found.severity, Severity):
        unread.insert(0, f"severity {row.severity!r}")
    if unread:
        raise ValidationError(
            f"ticket {row.id} is stored in a form this release cannot read ({', '.join(unread)}):"
            " it is not escalated; list it and resolve it (mintaka tickets resolve TICKET_ID)"
        )
    return found


StoredT = TypeVar("StoredT", Severity, TicketStatus)


def _known(kind: type[StoredT], stored: Any) -> Any:
    """``stored`` as a member of ``kind``, or as stored when no member of this release is it."""
    try:
        return kind(stored)
    except ValueError:
        return stored


def _stored_ticket_step(step: Any) -> Escalation:
    """A ticket's escalation step as stored; one that is not a mapping as :func:`_ticket`
    says."""
    if isinstance(step, Mapping):
        return Escalation.model_construct(**step)
    marked: dict[str, Any] = {"after_minutes": None, "to": UNREADABLE_STEP + json.dumps(step)}
    return Escalation.model_construct(**marked)


def _captured_rows(payload: Any, answer: Any) -> tuple[list[Any], list[Any]]:
    """The rows of a captured request body and one output per row from its answer: Mintaka's
    invocation shape (``{"inputs": row or [rows]}`` answered by ``{"predictions": [...]}``, each
    prediction a value or ``{"id", "output"}``) or bare rows and outputs."""
    if isinstance(payload, Mapping) and "inputs" in payload:
        payload = payload["inputs"]
    rows = list(payload) if isinstance(payload, list) else [payload or {}]
    if isinstance(answer, Mapping) and "predictions" in answer:
        answer = answer["predictions"]
    outputs = list(answer) if isinstance(answer, list) else [answer]
    outputs = [o["output"] if isinstance(o, Mapping) and "output" in o else o for o in outputs]
    if len(outputs) != len(rows):
        outputs = [None] * len(rows)
    return rows, outputs


def _captured_id(event_id: str, index: int) -> str:
    """The prediction id of row ``index`` of captured request ``event_id``: ``<event id>-<index>``
    when that fits the 64 characters of a prediction id, else a digest of the event id with the
    index, so that every row of a request keeps an id of its own (a cut would drop the index)."""
    import hashlib

    joined = f"{event_id}-{index}"
    if len(joined) <= 64:
        return joined
    return f"{hashlib.sha256(event_id.encode()).hexdigest()[:40]}-{index}"
