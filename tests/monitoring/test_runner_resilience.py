"""A runner pass goes on whatever one stored record holds: a monitor stored by an earlier
release, or one removed while the pass runs."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from monitoring_kit import scoring_monitor
from sqlalchemy import select, update

from mintaka import ManualClock, Platform
from mintaka.domain.monitoring import (
    MAX_ESCALATION_MINUTES,
    Escalation,
    Signal,
    SignalKind,
    TicketStatus,
)
from mintaka.domain.serving import EndpointMetrics
from mintaka.monitoring.service import OnDuty, _failing_signals
from mintaka.store.schema import monitors


def errors_signal(**overrides: Any) -> Signal:
    values: dict[str, Any] = {
        "name": "errors",
        "kind": SignalKind.TELEMETRY,
        "metric": "error_rate",
        "threshold": 0.05,
        "window": "15m",
        "owner": "oncall-a",
        "escalation": [Escalation(after_minutes=30, to="lead-b")],
    }
    values.update(overrides)
    return Signal(**values)


def quiet_signal(**overrides: Any) -> Signal:
    """A latency signal over an hour's window, which the metrics below leave without traffic."""
    values: dict[str, Any] = {
        "name": "quiet",
        "metric": "p99_latency_ms",
        "threshold": 500.0,
        "window": "1h",
        "unmeasured_after": "1h",
    }
    return errors_signal(**(values | overrides))


def store_handlers(platform: Platform, monitor_id: str, owner: str, to: str = "lead-b") -> None:
    """Rewrite the monitor as an earlier release stored it, before owners and escalation steps
    were checked: its signals owned by ``owner``, escalating to ``to``."""
    with platform.store.write() as conn:
        spec = dict(
            conn.execute(select(monitors.c.spec).where(monitors.c.id == monitor_id)).scalar_one()
        )
        spec["signals"] = [
            dict(s, owner=owner, escalation=[{"after_minutes": 30, "to": to}])
            for s in spec["signals"]
        ]
        conn.execute(update(monitors).where(monitors.c.id == monitor_id).values(spec=spec))


def erroring(endpoint: str, start: datetime, end: datetime) -> EndpointMetrics:
    """9 % errors over the errors signal's 15 minutes; no traffic over a longer window."""
    if end - start > timedelta(minutes=15):
        return EndpointMetrics(endpoint=endpoint, start=start, end=end)
    return EndpointMetrics(
        endpoint=endpoint, start=start, end=end, requests={"blue": 100}, errors={"blue": 9}
    )


@pytest.mark.parametrize("owner", ["oncall-b ", "oncall\nb"])
def test_a_stored_monitor_whose_owner_is_now_refused_never_stops_a_pass(
    served: Platform, clock: ManualClock, monkeypatch: pytest.MonkeyPatch, owner: str
) -> None:
    served.monitoring.add_monitor(scoring_monitor(errors_signal()))
    quiet = served.monitoring.add_monitor(scoring_monitor(quiet_signal()))
    store_handlers(served, quiet, owner)
    monkeypatch.setattr(served.serving, "endpoint_metrics", erroring)
    served.monitoring.run_once()
    [ticket] = served.monitoring.tickets(TicketStatus.OPEN)
    clock.advance(hours=2)
    report = served.monitoring.run_once()
    assert report.escalated == (ticket.id,)
    unmeasured = [t for t in served.monitoring.tickets() if t.signal.endswith(":unmeasured")]
    failures = [(f.signal, "owner" in f.error) for f in report.failed]
    if owner.strip() == owner:  # still unprintable: that signal's failure, no ticket
        assert (unmeasured, failures) == ([], [("quiet", True)])
    else:  # stored blanks are dropped: ticketed for its owner as stored
        assert ([t.owner for t in unmeasured], failures) == (["oncall-b"], [])


def test_a_stored_monitor_with_blanks_around_its_handlers_still_tickets_its_breaches(
    served: Platform, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monitor = served.monitoring.add_monitor(scoring_monitor(errors_signal()))
    store_handlers(served, monitor, " oncall-a ", to="lead-b\t")
    monkeypatch.setattr(served.serving, "endpoint_metrics", erroring)
    report = served.monitoring.run_once()
    assert (len(report.alerts), report.failed) == (1, ())
    clock.advance(hours=1)
    [escalated] = served.monitoring.run_once().escalated
    assert served.monitoring.ticket(escalated).owner == "lead-b"


def test_a_monitor_removed_while_a_pass_runs_keeps_no_open_failure_or_stretch(
    served: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing = served.monitoring.add_monitor(scoring_monitor(errors_signal()))
    quiet = served.monitoring.add_monitor(scoring_monitor(quiet_signal()))

    def metrics(endpoint: str, start: datetime, end: datetime) -> EndpointMetrics:
        if end - start > timedelta(minutes=15):
            return EndpointMetrics(endpoint=endpoint, start=start, end=end)
        raise RuntimeError("metrics backend down")

    monkeypatch.setattr(served.serving, "endpoint_metrics", metrics)
    on_duty_since = served.monitoring._on_duty_since
    to_remove = [failing, quiet]

    def removed_meanwhile() -> dict[str, OnDuty]:
        """Another process removes both monitors once this pass has measured them."""
        while to_remove:
            served.monitoring.remove_monitor(to_remove.pop(), reason="retired")
        return on_duty_since()

    monkeypatch.setattr(served.monitoring, "_on_duty_since", removed_meanwhile)
    report = served.monitoring.run_once()
    assert report.failed == ()  # no longer on duty: neither reported nor audited
    with served.store.read() as conn:
        still_failing = _failing_signals(conn)
    assert (still_failing, served.monitoring.unmeasured()) == ({}, {})
    actions = [e.action for e in served.audit.events()]
    assert actions[-2:] == ["monitor.remove", "monitor.remove"]


@pytest.mark.parametrize(
    ("stored", "alerts", "failures"),
    [
        (" https://runbooks.example/errors ", ["https://runbooks.example/errors"], []),
        (" ", [None], []),
        ("https://runbooks.example/errors\nowner: me", [], ["errors"]),
    ],
)
def test_a_stored_runbook_url_now_refused_never_stops_a_pass(
    served: Platform,
    monkeypatch: pytest.MonkeyPatch,
    stored: str,
    alerts: list[str | None],
    failures: list[str],
) -> None:
    monitor = served.monitoring.add_monitor(scoring_monitor(errors_signal()))
    with served.store.write() as conn:
        spec = dict(
            conn.execute(select(monitors.c.spec).where(monitors.c.id == monitor)).scalar_one()
        )
        spec["signals"] = [dict(s, runbook_url=stored) for s in spec["signals"]]
        conn.execute(update(monitors).where(monitors.c.id == monitor).values(spec=spec))
    monkeypatch.setattr(served.serving, "endpoint_metrics", erroring)
    report = served.monitoring.run_once()
    assert [t.runbook_url for t in served.monitoring.tickets()] == alerts
    assert [f.signal for f in report.failed] == failures


def store_step(platform: Platform, monitor_id: str, step: Any) -> None:
    """Rewrite the monitor's signals to escalate along ``step`` as stored, before steps were
    checked the way they are now."""
    with platform.store.write() as conn:
        spec = dict(
            conn.execute(select(monitors.c.spec).where(monitors.c.id == monitor_id)).scalar_one()
        )
        spec["signals"] = [dict(s, escalation=[step]) for s in spec["signals"]]
        conn.execute(update(monitors).where(monitors.c.id == monitor_id).values(spec=spec))


def test_a_monitor_stored_before_steps_were_capped_is_run_listed_added_beside_and_removed(
    served: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    late = served.monitoring.add_monitor(scoring_monitor(errors_signal(name="late")))
    store_step(served, late, {"after_minutes": 10**7, "to": "lead-b"})
    monkeypatch.setattr(served.serving, "endpoint_metrics", erroring)

    report = served.monitoring.run_once()

    assert [a.signal for a in report.alerts] == ["scoring:late"]
    [(listed, spec)] = served.monitoring.monitor_records()
    assert listed == late
    assert spec.signals[0].escalation[0].after_minutes == MAX_ESCALATION_MINUTES
    other = served.monitoring.add_monitor(scoring_monitor(errors_signal()))
    served.monitoring.remove_monitor(late, reason="stored by an earlier release")
    assert [i for i, _ in served.monitoring.monitor_records()] == [other]


def test_a_monitor_that_no_longer_reads_fails_its_own_signals_only(
    served: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = served.monitoring.add_monitor(scoring_monitor(errors_signal(name="bad")))
    store_step(served, bad, {"after_minutes": "soon", "to": "lead-b"})
    good = served.monitoring.add_monitor(scoring_monitor(errors_signal()))
    monkeypatch.setattr(served.serving, "endpoint_metrics", erroring)

    report = served.monitoring.run_once()

    assert [a.signal for a in report.alerts] == ["scoring:errors"]
    [failure] = report.failed
    assert (failure.signal, bad in failure.error) == ("bad", True)
    assert [i for i, _ in served.monitoring.monitor_records()] == [good]
    assert list(served.monitoring.unreadable_monitors()) == [bad]
    removed = served.monitoring.remove_monitor(bad, reason="stored by an earlier release")
    assert (removed.endpoint, [s.name for s in removed.signals]) == ("scoring", ["bad"])
    assert served.monitoring.unreadable_monitors() == {}
    [event] = [e for e in served.audit.events() if e.action == "monitor.remove"]
    assert event.details["spec"]["signals"][0]["escalation"][0]["after_minutes"] == "soon"
    assert served.monitoring.run_once().failed == ()


def test_a_failing_escalation_keeps_the_report_of_the_alerts_a_pass_raised(
    served: Platform, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    served.monitoring.add_monitor(scoring_monitor(errors_signal()))
    monkeypatch.setattr(served.serving, "endpoint_metrics", erroring)

    def unreadable(recorded: Any) -> set[str]:
        raise RuntimeError("stretches unreadable")

    monkeypatch.setattr(served.monitoring, "_stretches_not_on_duty", unreadable)

    report = served.monitoring.run_once()

    assert [a.signal for a in report.alerts] == ["scoring:errors"]
    assert report.escalated == ()
    assert "stretches unreadable" in caplog.text


def test_when_signals_went_on_duty_reads_only_each_endpoints_latest_release(
    served: Platform, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mintaka.monitoring import service

    served.monitoring.add_monitor(scoring_monitor(errors_signal()))
    releases = []
    for _ in range(4):
        clock.advance(minutes=5)
        served.serving.kill("scoring", reason="incident")
        clock.advance(minutes=5)
        served.serving.unkill("scoring", reason="fixed")
        releases.append(clock.now())
    read: list[datetime] = []

    def instant(stored: str) -> datetime:
        read.append(datetime.fromisoformat(stored))
        return original(stored)

    original = service._instant
    monkeypatch.setattr(service, "_instant", instant)
    since = served.monitoring._on_duty_since()

    assert since["scoring:errors"] == OnDuty(
        releases[-1], "the endpoint was released from its kill switch"
    )
    assert [at for at in read if at in releases[:-1]] == []  # the earlier releases are not read


def store_spec(platform: Platform, monitor_id: str, **changes: Any) -> None:
    """Rewrite the monitor's stored spec with ``changes`` (a field given ``...`` is left out),
    as a later release may have stored it."""
    with platform.store.write() as conn:
        spec = dict(
            conn.execute(select(monitors.c.spec).where(monitors.c.id == monitor_id)).scalar_one()
        )
        for key, value in changes.items():
            if value is ...:
                spec.pop(key)
            else:
                spec[key] = value
        conn.execute(update(monitors).where(monitors.c.id == monitor_id).values(spec=spec))


@pytest.mark.parametrize("signals", [[{"title": "bad"}], ["bad"], None, ...])
def test_a_monitor_stored_with_signals_no_release_names_never_stops_a_pass(
    served: Platform, monkeypatch: pytest.MonkeyPatch, signals: Any
) -> None:
    bad = served.monitoring.add_monitor(scoring_monitor(errors_signal(name="bad")))
    store_spec(served, bad, signals=signals)
    served.monitoring.add_monitor(scoring_monitor(errors_signal()))
    monkeypatch.setattr(served.serving, "endpoint_metrics", erroring)
    assert list(served.monitoring.unreadable_monitors()) == [bad]

    report = served.monitoring.run_once()

    assert ([a.signal for a in report.alerts], report.failed) == (["scoring:errors"], ())


def test_a_monitor_can_be_added_beside_and_after_one_stored_without_signal_names(
    served: Platform,
) -> None:
    bad = served.monitoring.add_monitor(scoring_monitor(errors_signal(name="bad")))
    store_spec(served, bad, signals=[{"title": "bad"}])
    beside = served.monitoring.add_monitor(scoring_monitor(errors_signal(name="beside")))
    removed = served.monitoring.remove_monitor(bad, reason="stored by a later release")
    after = served.monitoring.add_monitor(scoring_monitor(errors_signal(name="bad")))

    assert removed.signals == []
    assert [i for i, _ in served.monitoring.monitor_records()] == [beside, after]


def test_a_monitor_stored_without_its_endpoint_field_still_fails_each_pass(
    served: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = served.monitoring.add_monitor(scoring_monitor(errors_signal(name="bad")))
    store_spec(served, bad, endpoint=..., target="scoring")  # a field renamed by a later release
    monkeypatch.setattr(served.serving, "endpoint_metrics", erroring)
    assert list(served.monitoring.unreadable_monitors()) == [bad]

    report = served.monitoring.run_once()

    [failure] = report.failed
    assert (failure.endpoint, failure.signal, bad in failure.error) == ("scoring", "bad", True)
