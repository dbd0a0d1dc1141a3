from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from monitoring_kit import drift_signal, scoring_monitor
from sqlalchemy import update
from test_runner_resilience import erroring

from mintaka import Conflict, IdFactory, ManualClock, Platform, ValidationError, hookimpl
from mintaka.domain.monitoring import (
    Alert,
    Escalation,
    MonitorSpec,
    Signal,
    SignalKind,
    Ticket,
    TicketStatus,
)
from mintaka.domain.serving import EndpointMetrics
from mintaka.errors import PolicyViolation
from mintaka.monitoring.service import Coverage
from mintaka.monitoring.tickets import TicketSinks
from mintaka.store.schema import tickets


def latency_signal(**overrides: Any) -> Signal:
    values: dict[str, Any] = {
        "name": "errors",
        "kind": SignalKind.TELEMETRY,
        "metric": "error_rate",
        "threshold": 0.05,
        "window": "15m",
        "owner": "oncall-a",
        "escalation": [Escalation(after_minutes=30, to="lead-b")],
        "runbook_url": "https://runbooks.example/scoring-errors",
    }
    values.update(overrides)
    return Signal(**values)


def test_an_alert_opens_exactly_one_ticket_with_owner_and_runbook(served: Platform) -> None:
    monitoring = served.monitoring
    _, first = monitoring.raise_alert(
        "drift", "scoring", owner="oncall-a", runbook_url="https://runbooks.example/drift"
    )
    _, again = monitoring.raise_alert("drift", "scoring", owner="someone-else")
    assert again.id == first.id
    assert again.alerts == 2
    assert again.owner == "oncall-a"
    assert again.runbook_url == "https://runbooks.example/drift"
    assert [t.id for t in monitoring.tickets(TicketStatus.OPEN)] == [first.id]
    assert [e.action for e in served.audit.events()][-2:] == ["alert.raise", "alert.raise"]


@pytest.mark.parametrize(
    ("signal", "values", "message"),
    [
        ("drift", {"value": math.nan}, "value nan is not a finite number"),
        ("drift", {"value": math.inf}, "value inf is not a finite number"),
        ("drift", {"threshold": math.nan}, "threshold nan is not a finite number"),
        ("drift\nscoring:fine", {}, r"signal 'drift\nscoring:fine' must"),
        ("drift\x1b[2J", {}, r"signal 'drift\x1b[2J' must"),
        (" drift", {}, "signal ' drift' must"),
        ("", {}, "signal '' must"),
        ("drift", {"owner": "oncall\nlead"}, r"owner 'oncall\nlead' must"),
        (
            "drift",
            {"escalation": [Escalation(after_minutes=5, to="lead\r")]},
            r"escalation step 1 'lead\r' must",
        ),
        (
            "drift",
            {"runbook_url": "https://runbooks.example/drift\nowner: someone"},
            r"runbook_url 'https://runbooks.example/drift\nowner: someone' must",
        ),
        ("drift", {"runbook_url": "https://runbooks.example/\x1b[2J"}, "runbook_url"),
        ("drift", {"runbook_url": ""}, "runbook_url '' must"),
        ("drift", {"details": {"psi": {"income": math.nan}}}, "details of alert"),
        ("drift", {"details": {"seen": {1, 2}}}, "details of alert"),
        ("drift", {"details": {"note": "caf\udce9"}}, "details of alert"),
        ("drift", {"details": {"count": 2**60}}, "details of alert"),
        ("drift", {"details": {"psi": {"income": 2**53}}}, "details of alert"),
        ("drift", {"details": {"key": "x", 1: "y"}}, "details of alert"),
        ("drift", {"details": {"psi": {None: 0.1}}}, "details of alert"),
    ],
)
def test_an_alert_with_a_bad_value_or_name_is_refused_before_anything_is_written(
    served: Platform, signal: str, values: dict[str, Any], message: str
) -> None:
    before = len(served.audit.events())
    with pytest.raises(ValidationError, match=re.escape(message)):
        served.monitoring.raise_alert(signal, "scoring", **values)
    assert served.monitoring.tickets() == []
    assert len(served.audit.events()) == before


@pytest.mark.parametrize(
    ("signal", "endpoint", "values", "message"),
    [
        ("drift", "scoring", {"value": "0.3"}, "alert value '0.3' is not a real number"),
        ("drift", "scoring", {"value": None}, "alert value None is not a real number"),
        ("drift", "scoring", {"value": True}, "alert value True is not a real number"),
        ("drift", "scoring", {"threshold": [0.2]}, "alert threshold [0.2] is not a real number"),
        ("drift", "scoring", {"value": 1j}, "alert value 1j is not a real number"),
        ("drift", "scoring", {"value": 10**400}, "is not a finite number"),
        (None, "scoring", {}, "alert signal must be a string, not NoneType"),
        ("drift", 5, {}, "alert endpoint must be a string, not int"),
    ],
)
def test_an_alert_of_a_value_or_name_of_the_wrong_type_is_refused_before_anything_is_written(
    served: Platform, signal: Any, endpoint: Any, values: dict[str, Any], message: str
) -> None:
    before = len(served.audit.events())
    with pytest.raises(ValidationError, match=re.escape(message)):
        served.monitoring.raise_alert(signal, endpoint, **values)
    assert served.monitoring.tickets() == []
    assert len(served.audit.events()) == before


def test_an_alert_takes_an_integer_or_numpy_value() -> None:
    from mintaka.monitoring.checks import _check_alert

    _check_alert("drift", "scoring", 3, np.float64(0.2))
    _check_alert("drift", "scoring", np.int64(3), 0)


def test_a_more_severe_repeat_raises_the_tickets_severity(served: Platform) -> None:
    monitoring = served.monitoring
    _, ticket = monitoring.raise_alert("drift", "scoring", severity="warning")
    assert monitoring.raise_alert("drift", "scoring", severity="critical")[1].severity == "critical"
    _, milder = monitoring.raise_alert("drift", "scoring", severity="info")
    assert (milder.id, milder.severity, milder.alerts) == (ticket.id, "critical", 3)


def test_default_owner_is_the_model_owner(served: Platform) -> None:
    _, ticket = served.monitoring.raise_alert("latency", "scoring")
    assert ticket.owner == "dana"


def test_unacknowledged_ticket_escalates_and_acknowledged_one_does_not(
    served: Platform, clock: ManualClock
) -> None:
    monitoring = served.monitoring
    path = [Escalation(after_minutes=30, to="lead-b"), Escalation(after_minutes=60, to="head-c")]
    _, ticket = monitoring.raise_alert("drift", "scoring", owner="oncall-a", escalation=path)
    clock.advance(minutes=29)
    assert monitoring.escalate_due() == []
    clock.advance(minutes=2)
    assert monitoring.escalate_due() == [ticket.id]
    assert monitoring.escalate_due() == []  # idempotent until the next step is due
    assert monitoring.ticket(ticket.id).owner == "lead-b"
    clock.advance(minutes=60)
    assert monitoring.escalate_due() == [ticket.id]
    assert monitoring.ticket(ticket.id).owner == "head-c"
    _, other = monitoring.raise_alert("latency", "scoring", owner="x", escalation=path)
    monitoring.acknowledge(other.id)
    clock.advance(days=1)
    assert other.id not in monitoring.escalate_due()
    escalations = [e for e in served.audit.events() if e.action == "ticket.escalate"]
    assert [e.details["owner"] for e in escalations] == ["lead-b", "head-c"]


@pytest.mark.parametrize("minutes", [float("inf"), 1e300, 366 * 24 * 60 + 1])
def test_an_escalation_step_later_than_a_year_is_refused(served: Platform, minutes: float) -> None:
    with pytest.raises(ValueError, match="less than or equal to"):
        Escalation(after_minutes=minutes, to="lead-b")


def test_a_ticket_whose_stored_escalation_overflows_never_stops_the_others(
    served: Platform, clock: ManualClock
) -> None:
    from sqlalchemy import update

    from mintaka.store.schema import tickets

    monitoring = served.monitoring
    step = [Escalation(after_minutes=30, to="lead-b")]
    _, broken = monitoring.raise_alert("drift", "scoring", owner="a", escalation=step)
    _, fine = monitoring.raise_alert("latency", "scoring", owner="a", escalation=step)
    with served.store.write() as conn:  # written before steps were capped
        conn.execute(
            update(tickets)
            .where(tickets.c.id == broken.id)
            .values(escalation=[{"after_minutes": 1e300, "to": "lead-b"}])
        )
    clock.advance(minutes=31)
    assert monitoring.escalate_due() == [fine.id]


def test_a_pass_reports_a_ticket_whose_escalation_failed_and_escalates_the_others(
    served: Platform, clock: ManualClock
) -> None:
    monitoring = served.monitoring
    step = [Escalation(after_minutes=30, to="lead-b")]
    _, broken = monitoring.raise_alert("drift", "scoring", owner="a", escalation=step)
    _, fine = monitoring.raise_alert("latency", "scoring", owner="a", escalation=step)
    with served.store.write() as conn:  # a step no release reads as a number of minutes
        conn.execute(
            update(tickets)
            .where(tickets.c.id == broken.id)
            .values(escalation=[{"after_minutes": "soon", "to": "lead-b"}])
        )
    clock.advance(minutes=31)

    report = served.monitoring.run_once()
    assert report.escalated == (fine.id,)
    [failure] = report.escalation_failed
    assert failure.ticket == broken.id
    assert "TypeError" in failure.error
    assert monitoring.ticket(broken.id).owner == "a"


def test_a_pass_whose_escalations_cannot_be_walked_reports_one_failure(
    served: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreadable() -> list[object]:
        raise Conflict("the tickets table is locked")

    monkeypatch.setattr(served.monitoring, "_open_ticket_rows", unreadable)
    report = served.monitoring.run_once()
    assert report.escalated == ()
    [failure] = report.escalation_failed
    assert (failure.ticket, failure.error) == (None, "the tickets table is locked")


@pytest.mark.parametrize("to", ["lead\nFORGED", "lead\x1b[2J", " \t"])
def test_a_stored_step_to_an_owner_now_refused_is_not_taken_and_stops_no_other(
    served: Platform, clock: ManualClock, to: str
) -> None:
    monitoring = served.monitoring
    step = [Escalation(after_minutes=30, to="lead-b")]
    _, forged = monitoring.raise_alert("drift", "scoring", owner="a", escalation=step)
    _, fine = monitoring.raise_alert("latency", "scoring", owner="a", escalation=step)
    with served.store.write() as conn:  # written before steps were checked
        conn.execute(
            update(tickets)
            .where(tickets.c.id == forged.id)
            .values(escalation=[{"after_minutes": 30, "to": to}])
        )
    clock.advance(minutes=31)

    assert monitoring.escalate_due() == [fine.id]
    assert monitoring.ticket(forged.id).owner == "a"
    assert monitoring.ticket(fine.id).owner == "lead-b"


def test_a_refused_stored_step_is_skipped_once_and_the_ticket_goes_on_to_the_next(
    served: Platform, clock: ManualClock
) -> None:
    monitoring = served.monitoring
    path = [Escalation(after_minutes=30, to="lead-b"), Escalation(after_minutes=60, to="head-c")]
    _, ticket = monitoring.raise_alert("drift", "scoring", owner="a", escalation=path)
    with served.store.write() as conn:  # written before steps were checked
        conn.execute(
            update(tickets)
            .where(tickets.c.id == ticket.id)
            .values(
                escalation=[
                    {"after_minutes": 30, "to": "lead\nFORGED"},
                    {"after_minutes": 60, "to": "head-c"},
                ]
            )
        )
    clock.advance(minutes=31)

    first = monitoring.run_once()
    assert first.escalated == ()
    [failure] = first.escalation_failed
    assert failure.ticket == ticket.id
    assert "skipped" in failure.error
    assert "escalation step 1" in failure.error
    held = monitoring.ticket(ticket.id)
    assert (held.owner, held.escalation_level) == ("a", 1)
    assert monitoring.run_once().escalation_failed == ()  # skipped once, not on every pass
    [skip] = [e for e in served.audit.events() if e.action == "ticket.escalate.skip"]
    assert (skip.subject, skip.details["level"], skip.details["owner"]) == (ticket.id, 1, "a")

    clock.advance(minutes=60)  # the second step is due 90 minutes after the ticket opened
    assert monitoring.run_once().escalated == (ticket.id,)
    moved = monitoring.ticket(ticket.id)
    assert (moved.owner, moved.escalation_level) == ("head-c", 2)


def test_a_stored_step_with_blanks_around_its_owner_hands_the_ticket_to_that_owner(
    served: Platform, clock: ManualClock
) -> None:
    step = [Escalation(after_minutes=30, to="lead-b")]
    _, ticket = served.monitoring.raise_alert("drift", "scoring", owner="a", escalation=step)
    with served.store.write() as conn:  # written before steps were checked
        conn.execute(
            update(tickets)
            .where(tickets.c.id == ticket.id)
            .values(escalation=[{"after_minutes": 30, "to": "lead-b\t"}])
        )
    clock.advance(minutes=31)

    assert served.monitoring.escalate_due() == [ticket.id]
    owner = served.monitoring.ticket(ticket.id).owner
    assert owner == "lead-b"
    served.monitoring.raise_alert("check", "scoring", owner=owner)


def test_two_monitors_on_one_endpoint_cannot_share_a_signal_name(served: Platform) -> None:
    first = served.monitoring.add_monitor(scoring_monitor(latency_signal()))
    other = latency_signal(metric="p99_latency_ms", threshold=500.0, owner="oncall-z")
    with pytest.raises(
        Conflict, match=rf"already has signal\(s\) \['errors'\] \(monitor {first}\)"
    ):
        served.monitoring.add_monitor(scoring_monitor(other))
    assert len(served.monitoring.monitors("scoring")) == 1
    served.monitoring.add_monitor(scoring_monitor(other.model_copy(update={"name": "latency"})))
    assert len(served.monitoring.monitors("scoring")) == 2


def test_two_processes_adding_monitors_with_one_signal_name_store_one(
    served: Platform, home: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    check = served.monitoring.check_monitor
    raced: list[str] = []

    def check_then_race(spec: MonitorSpec, **kwargs: Any) -> None:
        check(spec, **kwargs)
        # the other process adds its monitor between this one's check and its write
        with Platform(home, clock=clock, ids=IdFactory(seed=99), actor="bob") as other:
            raced.append(other.monitoring.add_monitor(scoring_monitor(latency_signal())))

    monkeypatch.setattr(served.monitoring, "check_monitor", check_then_race)
    other = latency_signal(metric="p99_latency_ms", threshold=500.0)
    with pytest.raises(Conflict) as refused:
        served.monitoring.add_monitor(scoring_monitor(other))
    assert f"already has signal(s) ['errors'] (monitor {raced[0]})" in str(refused.value)
    assert [m.signals[0].metric for m in served.monitoring.monitors("scoring")] == ["error_rate"]
    assert [e.action for e in served.audit.events()].count("monitor.add") == 1


def test_acknowledging_twice_changes_and_records_nothing_the_second_time(
    served: Platform, home: Path
) -> None:
    monitoring = served.monitoring
    _, ticket = monitoring.raise_alert("drift", "scoring", owner="oncall-a")
    first = monitoring.acknowledge(ticket.id)
    with Platform(home, actor="someone-else") as other:
        again = other.monitoring.acknowledge(ticket.id)
    assert again == first
    assert again.acked_by == first.acked_by != "someone-else"
    assert [e.action for e in served.audit.events()].count("ticket.ack") == 1


def test_a_runner_that_was_down_catches_up_every_due_step_in_one_pass(
    served: Platform, clock: ManualClock
) -> None:
    monitoring = served.monitoring
    path = [
        Escalation(after_minutes=30, to="lead-b"),
        Escalation(after_minutes=60, to="head-c"),
        Escalation(after_minutes=600, to="vp-d"),
    ]
    _, ticket = monitoring.raise_alert("drift", "scoring", owner="oncall-a", escalation=path)
    clock.advance(minutes=120)  # both of the first two steps are due; the third is not
    assert monitoring.escalate_due() == [ticket.id]
    moved = monitoring.ticket(ticket.id)
    assert (moved.owner, moved.escalation_level) == ("head-c", 2)
    escalations = [e.details for e in served.audit.events() if e.action == "ticket.escalate"]
    assert [(e["previous_owner"], e["owner"]) for e in escalations] == [
        ("oncall-a", "lead-b"),
        ("lead-b", "head-c"),
    ]
    assert monitoring.escalate_due() == []


def test_an_unknown_ticket_status_or_severity_names_the_valid_ones(served: Platform) -> None:
    with pytest.raises(ValidationError, match="expected one of: open, acknowledged, resolved"):
        served.monitoring.tickets("bogus")
    with pytest.raises(ValidationError, match="expected one of: info, warning, critical"):
        served.monitoring.raise_alert("drift", "scoring", severity="bogus")
    assert served.monitoring.tickets("open") == []  # nothing was opened


def test_resolving_a_ticket_lets_the_next_alert_open_a_new_one(served: Platform) -> None:
    monitoring = served.monitoring
    _, first = monitoring.raise_alert("drift", "scoring")
    resolved = monitoring.resolve(first.id, note="retrained")
    assert resolved.status is TicketStatus.RESOLVED
    with pytest.raises(Conflict):
        monitoring.resolve(first.id)
    _, second = monitoring.raise_alert("drift", "scoring")
    assert second.id != first.id


class _Catcher(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Catcher.received.append(json.loads(body))
        self.send_response(201)
        self.send_header("Location", "/tickets/1")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


@pytest.fixture
def webhook(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    server = HTTPServer(("127.0.0.1", 0), _Catcher)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Catcher.received = []
    monkeypatch.setenv("MINTAKA_TICKET_WEBHOOK", f"http://127.0.0.1:{server.server_port}/hook")
    yield _Catcher.received
    server.shutdown()


def test_webhook_sink_receives_opened_and_escalated_tickets(
    served: Platform, webhook: list[dict[str, Any]], clock: ManualClock
) -> None:
    _, ticket = served.monitoring.raise_alert(
        "drift", "scoring", escalation=[Escalation(after_minutes=5, to="lead")]
    )
    assert served.monitoring.ticket(ticket.id).sinks == {"webhook": "/tickets/1"}
    clock.advance(minutes=6)
    served.monitoring.escalate_due()
    assert [r["event"] for r in webhook] == ["opened", "escalated"]
    assert webhook[-1]["ticket"]["owner"] == "lead"


def test_plugin_sinks_come_from_the_hook_and_a_failing_sink_loses_nothing(
    served: Platform,
) -> None:
    seen: list[str] = []

    class Recorder:
        name = "recorder"

        def open(self, ticket: Ticket, event: str) -> str:
            seen.append(f"{event}:{ticket.signal}")
            return "rec-1"

    class Broken:
        name = "broken"

        def open(self, ticket: Ticket, event: str) -> str:
            raise RuntimeError("pager is down")

    class Plugin:
        @hookimpl
        def mintaka_ticket_sinks(self, sinks: TicketSinks) -> None:
            sinks.add(Recorder())
            sinks.add(Broken())

    served.plugins.register(Plugin())
    _, ticket = served.monitoring.raise_alert("drift", "scoring")
    assert seen == ["opened:drift"]
    assert served.monitoring.ticket(ticket.id).sinks == {
        "recorder": "rec-1",
        "broken": "failed: RuntimeError",
    }


def test_a_sink_failing_on_an_update_keeps_the_reference_it_gave_on_open(
    served: Platform,
) -> None:
    answers: list[str | Exception] = ["INC-1", TimeoutError("incident tool slow"), "INC-1"]

    class Incident:
        name = "incident"

        def open(self, ticket: Ticket, event: str) -> str:
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

    class Plugin:
        @hookimpl
        def mintaka_ticket_sinks(self, sinks: TicketSinks) -> None:
            sinks.add(Incident())

    served.plugins.register(Plugin())
    _, ticket = served.monitoring.raise_alert("drift", "scoring")
    _, updated = served.monitoring.raise_alert("drift", "scoring")

    assert updated.sinks == {"incident": "INC-1"}
    assert served.monitoring.ticket(ticket.id).sinks == {"incident": "INC-1"}
    served.monitoring.raise_alert("drift", "scoring")
    assert served.monitoring.ticket(ticket.id).sinks == {"incident": "INC-1"}


def test_two_runners_sending_one_ticket_to_different_sinks_keep_both_references(
    served: Platform, home: Path, clock: ManualClock
) -> None:
    """A runner whose sink is slow keeps the reference another runner's sink recorded on the
    ticket meanwhile: each merges its own sinks' references into the row as it stands."""
    with Platform(home, clock=clock, ids=IdFactory(seed=99), actor="bob") as other:

        class Pager:
            name = "pager"

            def open(self, ticket: Ticket, event: str) -> str:
                return f"page-{ticket.alerts}"

        class Chat:
            """Another runner counts an alert on the ticket while this sink sends an update."""

            name = "chat"

            def open(self, ticket: Ticket, event: str) -> str:
                if event == "updated":
                    other.monitoring.raise_alert("drift", "scoring")
                return f"chat-{ticket.alerts}"

        class PagerPlugin:
            @hookimpl
            def mintaka_ticket_sinks(self, sinks: TicketSinks) -> None:
                sinks.add(Pager())

        class ChatPlugin:
            @hookimpl
            def mintaka_ticket_sinks(self, sinks: TicketSinks) -> None:
                sinks.add(Chat())

        other.plugins.register(PagerPlugin())
        served.plugins.register(ChatPlugin())
        _, ticket = served.monitoring.raise_alert("drift", "scoring")
        served.monitoring.raise_alert("drift", "scoring")
    stored = served.monitoring.ticket(ticket.id)
    assert (stored.alerts, stored.sinks) == (3, {"chat": "chat-2", "pager": "page-3"})


def test_a_sink_answering_with_no_text_reference_leaves_the_tickets_readable(
    served: Platform, clock: ManualClock
) -> None:
    """A sink that answers with no reference, or a number, is recorded as sent, or by the
    number's digits: every ticket stays readable, so listing and escalating them still works."""

    class Silent:
        name = "silent"

        def open(self, ticket: Ticket, event: str) -> Any:
            return None

    class Numbered:
        name = "numbered"

        def open(self, ticket: Ticket, event: str) -> Any:
            return 4711

    class Plugin:
        @hookimpl
        def mintaka_ticket_sinks(self, sinks: TicketSinks) -> None:
            sinks.add(Silent())
            sinks.add(Numbered())

    served.plugins.register(Plugin())
    _, ticket = served.monitoring.raise_alert(
        "drift", "scoring", escalation=[Escalation(after_minutes=5, to="lead")]
    )
    assert ticket.sinks == {"silent": "sent", "numbered": "4711"}
    [listed] = served.monitoring.tickets()
    assert listed.sinks == ticket.sinks
    clock.advance(minutes=6)
    assert served.monitoring.escalate_due() == [ticket.id]


def test_a_ticket_stored_with_a_sink_reference_that_is_no_text_still_reads(
    served: Platform,
) -> None:
    _, ticket = served.monitoring.raise_alert("drift", "scoring")
    with served.store.write() as conn:
        conn.execute(
            update(tickets)
            .where(tickets.c.id == ticket.id)
            .values(sinks={"silent": None, "numbered": 4711, "webhook": "/tickets/1"})
        )
    assert served.monitoring.ticket(ticket.id).sinks == {
        "silent": "sent",
        "numbered": "4711",
        "webhook": "/tickets/1",
    }


def test_coverage_lists_production_endpoints_without_monitors(served: Platform) -> None:
    [only] = served.monitoring.coverage()
    assert (only.endpoint, only.monitored) == ("scoring", False)
    served.monitoring.add_monitor(scoring_monitor(latency_signal()))
    assert [c.monitored for c in served.monitoring.coverage()] == [True]


@pytest.mark.parametrize(
    ("signal", "message"),
    [
        (latency_signal(window="soon"), "window"),
        (latency_signal(owner=" "), "needs an owner"),
        (latency_signal(owner="oncall-a\nlead"), r"'errors' owner 'oncall-a\\nlead' must"),
        (latency_signal(owner=" oncall-a"), r"'errors' owner ' oncall-a' must"),
        (
            latency_signal(escalation=[Escalation(after_minutes=5, to="lead\u202e")]),
            r"'errors' escalation step 1 'lead\\u202e' must",
        ),
        (
            latency_signal(escalation=[Escalation(after_minutes=5, to=" ")]),
            r"'errors' escalation step 1 ' ' must",
        ),
        (
            latency_signal(runbook_url="https://runbooks.example/errors\r"),
            r"'errors' runbook_url 'https://runbooks.example/errors\\r' must",
        ),
        (latency_signal(metric="accuracy"), "telemetry signal"),
        (latency_signal(retrain=True), "retrain = true applies to drift and performance"),
        (latency_signal(positive="approve"), "a telemetry signal has no classes"),
    ],
)
def test_bad_monitor_specs_are_refused(served: Platform, signal: Signal, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        served.monitoring.add_monitor(scoring_monitor(signal))


def test_a_monitor_must_name_a_model_its_endpoint_serves(
    served: Platform, make_servable: Any
) -> None:
    """Retraining on drift retrains the monitor's model, so it must be the one the endpoint
    serves: a monitor naming another model is refused, and nothing is stored."""
    served.register_model("other", make_servable(b"o1"), flavor="pyfunc", owner="dana")
    spec = MonitorSpec(endpoint="scoring", model="other", signals=[drift_signal(retrain=True)])
    with pytest.raises(ValidationError, match=r"'scoring' serves credit:1.*not 'other'"):
        served.monitoring.add_monitor(spec)
    assert served.monitoring.monitors() == []
    with pytest.raises(ValidationError, match="serves credit:1"):  # as adoption checks it
        served.monitoring.check_monitor(spec, endpoint_recorded=False)
    elsewhere = spec.model_copy(update={"endpoint": "not-in-the-cloud"})
    served.monitoring.check_monitor(elsewhere, endpoint_recorded=False)  # adoption refuses it


def test_a_killed_endpoint_or_one_with_a_shadow_route_keeps_its_models_monitorable(
    served: Platform, make_servable: Any
) -> None:
    served.register_model("other", make_servable(b"o1"), flavor="pyfunc", owner="dana")
    served.serving.deploy("scoring", "other:1", route="green")
    served.serving.set_traffic("scoring", {"blue": 100}, shadow="green", shadow_percent=10)
    served.serving.kill("scoring", reason="incident")
    served.monitoring.add_monitor(scoring_monitor(latency_signal()))
    shadowed = MonitorSpec(endpoint="scoring", model="other", signals=[latency_signal(name="s")])
    served.monitoring.add_monitor(shadowed)
    assert [m.model for m in served.monitoring.monitors()] == ["credit", "other"]


def test_runner_alerts_on_a_breached_telemetry_signal_once_per_ticket(
    served: Platform, monkeypatch: pytest.MonkeyPatch, clock: ManualClock
) -> None:
    served.monitoring.add_monitor(scoring_monitor(latency_signal()))
    windows: list[tuple[datetime, datetime]] = []

    def metrics(endpoint: str, start: datetime, end: datetime) -> EndpointMetrics:
        windows.append((start, end))
        return EndpointMetrics(
            endpoint=endpoint, start=start, end=end, requests={"blue": 100}, errors={"blue": 9}
        )

    monkeypatch.setattr(served.serving, "endpoint_metrics", metrics)
    first = served.monitoring.run_once()
    second = served.monitoring.run_once()
    assert (first.evaluated, len(first.alerts)) == (1, 1)
    assert first.alerts[0].value == pytest.approx(0.09)
    assert len(second.alerts) == 1
    [ticket] = served.monitoring.tickets(TicketStatus.OPEN)
    assert (ticket.alerts, ticket.owner) == (2, "oncall-a")
    assert windows[0][1] - windows[0][0] == timedelta(minutes=15)
    clock.advance(minutes=31)
    assert served.monitoring.run_once().escalated == (ticket.id,)


def test_runner_stays_quiet_when_the_signal_holds(
    served: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    served.monitoring.add_monitor(scoring_monitor(latency_signal()))

    def metrics(endpoint: str, start: datetime, end: datetime) -> EndpointMetrics:
        return EndpointMetrics(
            endpoint=endpoint, start=start, end=end, requests={"blue": 100}, errors={"blue": 1}
        )

    monkeypatch.setattr(served.serving, "endpoint_metrics", metrics)
    assert served.monitoring.run_once().alerts == ()
    assert served.monitoring.tickets() == []


def test_overlapping_runners_keep_one_ticket_per_signal(served: Platform, home: Path) -> None:
    """Two processes' runners raising the same alert at once end with one ticket, counted twice."""
    import threading

    served.monitoring.add_monitor(scoring_monitor(latency_signal()))
    errors: list[BaseException] = []

    def runner() -> None:
        try:
            with Platform(home, actor="runner") as other:
                other.monitoring.raise_alert("scoring:errors", "scoring", owner="oncall-a")
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=runner) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    [ticket] = served.monitoring.tickets()
    assert ticket.alerts == 4


def test_the_monitors_of_a_deleted_endpoint_rest_and_stay_on_record(served: Platform) -> None:
    served.monitoring.add_monitor(scoring_monitor(latency_signal()))
    served.serving.delete_endpoint("scoring")
    report = served.monitoring.run_once()
    assert (report.evaluated, report.failed) == (0, ())
    assert [m.endpoint for m in served.monitoring.monitors()] == ["scoring"]


MONITORS_REQUIRED = "\n".join(
    [
        'version = "monitors-required/1"',
        'production_aliases = ["champion"]',
        "[roles]",
        *(f"[tiers.{tier}]\nmonitors_required = true" for tier in ("low", "medium", "high")),
    ]
)


@pytest.fixture
def governed(
    served: Platform,
    home: Path,
    clock: ManualClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Platform]:
    """The home of ``served`` opened under a policy whose every tier requires a monitor of a
    version before it takes live traffic."""
    policy = tmp_path / "monitors-required.toml"
    policy.write_text(MONITORS_REQUIRED + "\n")
    monkeypatch.setenv("MINTAKA_POLICY", str(policy))
    with Platform(home, clock=clock, ids=IdFactory(seed=99), actor="dana") as plat:
        yield plat


def _monitors_met(platform: Platform, ref: str) -> bool:
    version = platform.get_model_version(ref)
    controls = platform.governance.production_controls(version)
    [met] = [c.met for c in controls if c.name == "monitors"]
    return met


def test_monitors_required_counts_no_monitor_of_a_deleted_endpoint(
    served: Platform, governed: Platform
) -> None:
    served.monitoring.add_monitor(scoring_monitor(latency_signal()))
    assert _monitors_met(governed, "credit:1")
    served.serving.delete_endpoint("scoring")
    assert not _monitors_met(governed, "credit:1")


def test_a_governed_model_reaches_an_existing_endpoint_through_a_route_without_traffic(
    served: Platform, governed: Platform, make_servable: Any
) -> None:
    """The documented path under ``monitors_required``: deploy the new model without traffic,
    monitor it there, then move traffic to it; moving traffic before the monitor is refused."""
    governed.monitoring.add_monitor(scoring_monitor(latency_signal()))
    governed.register_model("credit-v2", make_servable(b"v2"), flavor="pyfunc", owner="dana")
    governed.serving.deploy("scoring", "credit-v2:1", route="green")
    with pytest.raises(PolicyViolation, match="no monitor watches credit-v2"):
        governed.serving.set_traffic("scoring", {"blue": 0, "green": 100})
    signal = latency_signal(name="v2-errors")
    spec = MonitorSpec(endpoint="scoring", model="credit-v2", signals=[signal])
    governed.monitoring.add_monitor(spec)
    moved = governed.serving.set_traffic("scoring", {"blue": 0, "green": 100})
    assert moved.traffic.live_weights == {"green": 100}


def _fresh_monitor(**overrides: Any) -> MonitorSpec:
    """A monitor of ``credit-v2`` on endpoint ``fresh``, which the next tests create."""
    values: dict[str, Any] = {
        "endpoint": "fresh",
        "model": "credit-v2",
        "signals": [latency_signal()],
    }
    values.update(overrides)
    return MonitorSpec(**values)


@pytest.fixture
def unwatched(governed: Platform, make_servable: Any) -> Platform:
    """``governed`` with ``credit-v2:1`` registered and served nowhere, so no monitor watches
    it."""
    governed.register_model("credit-v2", make_servable(b"v2"), flavor="pyfunc", owner="dana")
    return governed


def test_a_governed_model_gets_a_new_endpoint_together_with_its_monitor(
    unwatched: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(PolicyViolation, match="no monitor watches credit-v2"):
        unwatched.serving.create_endpoint("fresh", "credit-v2:1", route="blue")
    spec = _fresh_monitor()
    created = unwatched.serving.create_endpoint(
        "fresh", "credit-v2:1", route="blue", reason="launch", monitor=spec
    )
    assert created.traffic.live_weights == {"blue": 100}
    assert unwatched.monitoring.monitors("fresh") == [spec]
    [added] = [e for e in unwatched.audit.events() if e.action == "monitor.add"]
    assert (added.subject, added.details["signals"]) == ("fresh", ["errors"])
    assert _monitors_met(unwatched, "credit-v2:1")
    assert [c for c in unwatched.monitoring.coverage() if c.endpoint == "fresh"] == [
        Coverage("fresh", ("blue",), monitored=True)
    ]

    def metrics(endpoint: str, start: datetime, end: datetime) -> EndpointMetrics:
        return EndpointMetrics(
            endpoint=endpoint, start=start, end=end, requests={"blue": 100}, errors={"blue": 9}
        )

    monkeypatch.setattr(unwatched.serving, "endpoint_metrics", metrics)
    report = unwatched.monitoring.run_once()
    assert (report.evaluated, [a.endpoint for a in report.alerts]) == (1, ["fresh"])


@pytest.mark.parametrize(
    ("overrides", "said"),
    [
        ({"endpoint": "scoring"}, "watches 'scoring', not 'fresh'"),
        ({"model": "credit"}, "serves credit-v2:1, not 'credit'"),
        ({"signals": [latency_signal(window="100n")]}, "needs a time window"),
    ],
)
def test_a_new_endpoints_monitor_it_would_not_record_is_refused_before_the_cloud_is_asked(
    unwatched: Platform, overrides: dict[str, Any], said: str
) -> None:
    before = unwatched.backend.list_endpoints()  # type: ignore[attr-defined]
    with pytest.raises(ValidationError, match=said):
        unwatched.serving.create_endpoint(
            "fresh", "credit-v2:1", route="blue", monitor=_fresh_monitor(**overrides)
        )
    assert unwatched.backend.list_endpoints() == before  # type: ignore[attr-defined]
    assert [m.endpoint for m in unwatched.monitoring.monitors()] == []
    assert "fresh" not in [e.name for e in unwatched.serving.list_endpoints()]


def test_a_new_endpoint_whose_monitor_fails_to_record_leaves_neither_behind(
    unwatched: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    audit = unwatched._audit

    def disk_full_on_monitors(conn: Any, action: str, subject: str, **details: Any) -> Any:
        if action == "monitor.add":
            raise OSError("disk full")
        return audit(conn, action, subject, **details)

    monkeypatch.setattr(unwatched, "_audit", disk_full_on_monitors)
    with pytest.raises(OSError, match="disk full"):
        unwatched.serving.create_endpoint(
            "fresh", "credit-v2:1", route="blue", monitor=_fresh_monitor()
        )
    backend = [e.name for e in unwatched.backend.list_endpoints()]  # type: ignore[attr-defined]
    assert backend == ["scoring"]
    assert [e.name for e in unwatched.serving.list_endpoints()] == ["scoring"]
    assert unwatched.monitoring.monitors() == []
    monkeypatch.setattr(unwatched, "_audit", audit)
    unwatched.serving.create_endpoint(
        "fresh", "credit-v2:1", route="blue", monitor=_fresh_monitor()
    )  # the retry starts clean
    assert unwatched.monitoring.monitors("fresh") == [_fresh_monitor()]


def test_a_new_endpoint_reached_through_a_short_monitors_exception(
    unwatched: Platform, home: Path, clock: ManualClock, tmp_path: Path
) -> None:
    """The other documented path: a ``monitors`` exception lets the endpoint be created, and
    its monitor, added before the exception expires, keeps the version watched after."""
    policy = tmp_path / "monitors-required.toml"
    granting = policy.read_text().replace("[roles]", '[roles]\n"rita" = ["model-risk"]')
    policy.write_text(
        granting.replace(
            "monitors_required = true", 'monitors_required = true\napprover_roles = ["model-risk"]'
        )
    )
    unwatched.governance.reload_policy()
    with Platform(home, clock=clock, ids=IdFactory(seed=7), actor="rita") as rita:
        rita.governance.grant_exception(
            "credit-v2:1",
            "monitors",
            requester="dana",
            justification="launch; monitor follows",
            expires_at=clock.now() + timedelta(hours=1),
        )
    unwatched.serving.create_endpoint("fresh", "credit-v2:1", route="blue")
    unwatched.monitoring.add_monitor(_fresh_monitor())
    clock.advance(hours=2)
    assert _monitors_met(unwatched, "credit-v2:1")
    moved = unwatched.serving.set_traffic("fresh", {"blue": 100}, reason="still watched")
    assert moved.traffic.live_weights == {"blue": 100}


def test_endpoints_create_with_a_monitor_file(
    unwatched: Platform, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli_kit import cli

    base = ("--home", str(home), "--as", "dana", "endpoints", "create", "fresh", "credit-v2:1")
    spec = tmp_path / "fresh-monitor.toml"
    spec.write_text(
        'endpoint = "other"\nmodel = "credit-v2"\n\n[[signals]]\nname = "errors"\n'
        'kind = "telemetry"\nmetric = "error_rate"\nthreshold = 0.05\nwindow = "15m"\n'
        'owner = "oncall"\n'
    )
    code, _, err = cli(capsys, *base)
    assert code != 0
    assert "no monitor watches credit-v2" in " ".join(err.replace("│", " ").split())
    code, _, err = cli(capsys, *base, "--monitor", str(spec))
    assert code == 1
    assert "watches 'other', not 'fresh'" in err
    assert [e.name for e in unwatched.backend.list_endpoints()] == ["scoring"]  # type: ignore[attr-defined]
    spec.write_text(spec.read_text().replace('"other"', '"fresh"'))
    code, out, err = cli(capsys, *base, "--route", "blue", "--monitor", str(spec))
    assert code == 0, err
    [(monitor_id, monitor)] = unwatched.monitoring.monitor_records("fresh")
    assert f"monitor {monitor_id} watches fresh" in out
    assert (monitor.model, [s.name for s in monitor.signals]) == ("credit-v2", ["errors"])
    code, out, _ = cli(capsys, "--home", str(home), "monitor", "coverage", "--json")
    assert {"endpoint": "fresh", "routes": ["blue"], "monitored": True, "killed": False} in (
        json.loads(out)
    )


@pytest.mark.parametrize("name", ["errors", "unmeasured"])
def test_a_killed_endpoints_alert_ticket_escalates_whatever_its_signal_is_called(
    served: Platform, clock: ManualClock, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """Only the tickets of signals left unmeasured wait while their endpoint is killed: a
    threshold alert's ticket escalates, even for a signal named like that kind of alert."""
    served.monitoring.add_monitor(scoring_monitor(latency_signal(name=name)))

    def metrics(endpoint: str, start: datetime, end: datetime) -> EndpointMetrics:
        return EndpointMetrics(
            endpoint=endpoint, start=start, end=end, requests={"blue": 100}, errors={"blue": 9}
        )

    monkeypatch.setattr(served.serving, "endpoint_metrics", metrics)
    served.monitoring.run_once()
    [ticket] = served.monitoring.tickets("open")
    served.serving.kill("scoring", reason="incident")
    clock.advance(hours=2)
    served.monitoring.escalate_due()
    assert served.monitoring.ticket(ticket.id).owner == "lead-b"


@pytest.mark.parametrize("name", ["p95:latency", "errors\nFORGED", " errors"])
def test_a_signal_name_that_could_pass_for_another_ticket_is_refused(
    served: Platform, name: str
) -> None:
    """Tickets are keyed ``ENDPOINT:SIGNAL`` (``ENDPOINT:SIGNAL:unmeasured`` for a signal left
    unmeasured), so a signal name holding a colon could pass for another signal's ticket."""
    with pytest.raises(ValidationError, match="signal name"):
        served.monitoring.add_monitor(scoring_monitor(latency_signal(name=name)))
    assert served.monitoring.monitors() == []


def test_a_pass_stopped_while_a_sink_sends_leaves_no_ticket_without_its_alert_event(
    served: Platform,
) -> None:
    from mintaka.cli.monitoring import _Terminated

    class Stopped:
        name = "stopped"
        stop = True

        def open(self, ticket: Ticket, event: str) -> str:
            if Stopped.stop:  # SIGTERM arrives while the sink sends
                Stopped.stop = False
                raise _Terminated
            return "sent"

    class Plugin:
        @hookimpl
        def mintaka_ticket_sinks(self, sinks: TicketSinks) -> None:
            sinks.add(Stopped())

    served.plugins.register(Plugin())
    with pytest.raises(_Terminated):
        served.monitoring.raise_alert("drift", "scoring")
    served.monitoring.raise_alert("drift", "scoring")

    [ticket] = served.monitoring.tickets()
    raised = [e for e in served.audit.events() if e.action == "alert.raise"]
    assert ticket.alerts == len(raised) == 2
    assert {e.details["ticket"] for e in raised} == {ticket.id}


def test_a_failing_alert_observer_leaves_the_alert_standing(
    served: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Pager:
        @hookimpl
        def mintaka_alert(self, alert: Alert) -> None:
            raise RuntimeError("pager down")

    served.plugins.register(Pager())
    served.monitoring.add_monitor(scoring_monitor(latency_signal()))
    monkeypatch.setattr(served.serving, "endpoint_metrics", erroring)

    report = served.monitoring.run_once()

    assert report.failed == ()
    assert [a.signal for a in report.alerts] == ["scoring:errors"]
    [ticket] = served.monitoring.tickets()
    assert ticket.alerts == 1


class MisconfiguredSinks:
    """A plugin whose ``mintaka_ticket_sinks`` raises: no sink can be collected."""

    @hookimpl
    def mintaka_ticket_sinks(self, sinks: TicketSinks) -> None:
        raise RuntimeError("sink plugin misconfigured")


def test_an_escalation_made_is_reported_made_when_its_sinks_cannot_be_collected(
    served: Platform, clock: ManualClock
) -> None:
    monitoring = served.monitoring
    path = [Escalation(after_minutes=30, to="lead-b"), Escalation(after_minutes=30, to="head-c")]
    _, ticket = monitoring.raise_alert("drift", "scoring", owner="a", escalation=path)

    served.plugins.register(MisconfiguredSinks())
    monitoring._sinks = None  # collected again, as by a runner started after the plugin
    clock.advance(minutes=61)  # both steps due

    report = monitoring.run_once()

    moved = monitoring.ticket(ticket.id)
    escalations = [
        e.details["owner"] for e in served.audit.events() if e.action == "ticket.escalate"
    ]
    assert (report.escalated, report.escalation_failed) == ((ticket.id,), ())
    assert (moved.owner, moved.escalation_level, escalations) == ("head-c", 2, ["lead-b", "head-c"])
    assert moved.sinks == {"mintaka_ticket_sinks": "failed: RuntimeError"}


def test_an_alert_counted_on_its_ticket_stands_when_its_sinks_cannot_be_collected(
    served: Platform,
) -> None:
    served.plugins.register(MisconfiguredSinks())

    _, ticket = served.monitoring.raise_alert("drift", "scoring")

    raised = [e.details["ticket"] for e in served.audit.events() if e.action == "alert.raise"]
    assert (raised, ticket.sinks) == ([ticket.id], {"mintaka_ticket_sinks": "failed: RuntimeError"})


def test_an_alert_on_a_ticket_of_a_severity_no_release_reads_is_counted_keeping_it(
    served: Platform,
) -> None:
    _, ticket = served.monitoring.raise_alert("drift", "scoring")
    with served.store.write() as conn:
        conn.execute(update(tickets).where(tickets.c.id == ticket.id).values(severity="page"))

    _, updated = served.monitoring.raise_alert("drift", "scoring", severity="critical")

    assert (updated.id, updated.alerts, updated.severity) == (ticket.id, 2, "page")


def test_error_rate_counts_server_errors_and_invalid_rate_the_refused_requests(
    served: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request refused as invalid (a 4xx) is no server error: ``error_rate`` leaves it out and
    ``invalid_rate`` measures it, so the clients' bad requests neither hide nor raise failures."""
    served.monitoring.add_monitor(
        MonitorSpec(
            endpoint="scoring",
            model="credit",
            signals=[
                latency_signal(name="errors", threshold=0.05),
                latency_signal(name="refused", metric="invalid_rate", threshold=0.05),
            ],
        )
    )

    def metrics(endpoint: str, start: datetime, end: datetime) -> EndpointMetrics:
        return EndpointMetrics(
            endpoint=endpoint,
            start=start,
            end=end,
            requests={"blue": 100},
            errors={"blue": 2},
            invalid={"blue": 30},
        )

    monkeypatch.setattr(served.serving, "endpoint_metrics", metrics)
    found = served.monitoring.run_once()
    assert [(a.signal, a.value) for a in found.alerts] == [("scoring:refused", pytest.approx(0.3))]


def test_a_latency_signal_over_a_window_without_requests_is_no_missing_latency(
    served: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A window with no request measures nothing, as any telemetry signal's: it is not noted as
    a latency the backend failed to give."""
    served.monitoring.add_monitor(
        scoring_monitor(latency_signal(name="slow", metric="p99_latency_ms", threshold=100.0))
    )

    def metrics(endpoint: str, start: datetime, end: datetime) -> EndpointMetrics:
        return EndpointMetrics(endpoint=endpoint, start=start, end=end)

    monkeypatch.setattr(served.serving, "endpoint_metrics", metrics)
    found = served.monitoring.run_once()
    assert (found.evaluated, found.alerts, found.failed, found.notes) == (0, (), (), ())


def test_a_latency_signal_without_latency_read_back_measures_nothing_instead_of_0_ms(
    served: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests were counted but no route's latency was read back: the signal is noted as not
    measured, never read as a latency of 0 ms that holds any threshold."""
    served.monitoring.add_monitor(
        scoring_monitor(latency_signal(name="slow", metric="p99_latency_ms", threshold=100.0))
    )

    def metrics(endpoint: str, start: datetime, end: datetime) -> EndpointMetrics:
        return EndpointMetrics(endpoint=endpoint, start=start, end=end, requests={"blue": 100})

    monkeypatch.setattr(served.serving, "endpoint_metrics", metrics)
    found = served.monitoring.run_once()
    assert (found.evaluated, found.alerts, found.failed) == (0, (), ())
    assert [n.note for n in found.notes] == [
        "the endpoint's metrics give no latency for the window: nothing to measure"
    ]
