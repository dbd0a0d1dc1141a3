"""What ``mintaka demo`` prints of the state it left."""

from __future__ import annotations

from datetime import UTC, datetime

from mintaka.cli.app import _ticket_line
from mintaka.domain.monitoring import Escalation, Severity, Ticket, TicketStatus


def _ticket(runbook_url: str | None) -> Ticket:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return Ticket(
        id="tkt-1",
        alert_id="alr-1",
        signal="income-drift",
        endpoint="credit-scoring",
        owner="credit-oncall",
        severity=Severity.CRITICAL,
        status=TicketStatus.OPEN,
        runbook_url=runbook_url,
        escalation=(Escalation(after_minutes=30, to="credit-lead"),),
        opened_at=at,
        updated_at=at,
    )


def test_a_ticket_line_names_its_runbook() -> None:
    line = _ticket_line(_ticket("https://runbooks.example/drift"))
    assert line.endswith("(escalates to credit-lead), runbook https://runbooks.example/drift")


def test_a_ticket_without_a_runbook_names_none() -> None:
    line = _ticket_line(_ticket(None))
    assert "runbook" not in line
    assert line.endswith("(escalates to credit-lead)")
