"""``mintaka monitor run`` and ``mintaka tickets`` as a script or a person runs them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from artifact_kit import MakeArtifact
from cli_kit import cli
from sqlalchemy import select, update

from mintaka import ManualClock, Platform
from mintaka.domain.monitoring import Escalation
from mintaka.store.schema import tickets

# Tickets opened well before any clock the command reads, so their first step is due.
OPENED = datetime(2000, 1, 1, tzinfo=UTC)


def _tickets(home: Path, make_servable: MakeArtifact, steps: list[object]) -> list[str]:
    """A home serving endpoint ``api``, with one open ticket per stored escalation path in
    ``steps`` (as an earlier release may have stored it); their ids."""
    with Platform(home, clock=ManualClock(OPENED), actor="dana") as plat:
        plat.register_model("m", make_servable(b"m"), flavor="pyfunc")
        plat.serving.create_endpoint("api", "m:1", route="blue")
        step = [Escalation(after_minutes=30, to="lead-b")]
        ids = []
        for index, stored in enumerate(steps):
            _, ticket = plat.monitoring.raise_alert(
                f"signal{index}", "api", owner="oncall", escalation=step
            )
            with plat.store.write() as conn:
                conn.execute(
                    update(tickets).where(tickets.c.id == ticket.id).values(escalation=stored)
                )
            ids.append(ticket.id)
        return ids


def test_monitor_run_once_exits_1_when_an_escalation_failed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, make_servable: MakeArtifact
) -> None:
    home = tmp_path / "h"
    broken, fine = _tickets(
        home,
        make_servable,
        [[{"after_minutes": "soon", "to": "lead-b"}], [{"after_minutes": 30, "to": "lead-b"}]],
    )
    h = ["--home", str(home), "--as", "ops"]

    code, out, err = cli(capsys, *h, "monitor", "run", "--once", "--json")
    assert code == 1
    report = json.loads(out)
    assert report["escalated"] == [fine]
    assert [f["ticket"] for f in report["escalation_failed"]] == [broken]
    assert f"escalation of {broken!r} failed" in " ".join(err.split())


def test_monitor_run_once_counts_failed_escalations_in_its_summary(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, make_servable: MakeArtifact
) -> None:
    home = tmp_path / "h"
    _tickets(home, make_servable, [[{"after_minutes": "soon", "to": "lead-b"}]])

    code, out, _ = cli(capsys, "--home", str(home), "--as", "ops", "monitor", "run", "--once")
    assert code == 1
    assert "0 escalations, 1 escalations failed" in out


def test_monitor_run_once_exits_0_when_every_due_escalation_is_made(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, make_servable: MakeArtifact
) -> None:
    home = tmp_path / "h"
    [ticket] = _tickets(home, make_servable, [[{"after_minutes": 30, "to": "lead-b"}]])

    code, out, err = cli(capsys, "--home", str(home), "--as", "ops", "monitor", "run", "--once")
    assert (code, err) == (0, "")
    assert "1 escalations" in out
    with Platform(home, actor="ops") as plat:
        assert plat.monitoring.ticket(ticket).owner == "lead-b"


@pytest.mark.parametrize("step", ["lead-b", [30, "lead-b"], None])
def test_one_ticket_with_a_step_no_release_reads_stops_no_other_escalation(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, make_servable: MakeArtifact, step: object
) -> None:
    home = tmp_path / "h"
    broken, fine = _tickets(home, make_servable, [[step], [{"after_minutes": 30, "to": "lead-b"}]])
    h = ["--home", str(home), "--as", "ops"]

    code, out, err = cli(capsys, *h, "monitor", "run", "--once", "--json")

    report = json.loads(out)
    assert code == 1
    assert report["escalated"] == [fine]
    assert [f["ticket"] for f in report["escalation_failed"]] == [broken]
    assert f"escalation of {broken!r} failed" in " ".join(err.split())


def _store_severity(home: Path, ticket: str, severity: str) -> None:
    with Platform(home, actor="dana") as plat, plat.store.write() as conn:
        conn.execute(update(tickets).where(tickets.c.id == ticket).values(severity=severity))


def test_one_ticket_of_a_severity_no_release_reads_stops_no_other_escalation(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, make_servable: MakeArtifact
) -> None:
    home = tmp_path / "h"
    step = [{"after_minutes": 30, "to": "lead-b"}]
    broken, fine = _tickets(home, make_servable, [step, step])
    _store_severity(home, broken, "page")

    code, out, _ = cli(
        capsys, "--home", str(home), "--as", "ops", "monitor", "run", "--once", "--json"
    )

    report = json.loads(out)
    assert (code, report["escalated"]) == (1, [fine])
    [failure] = report["escalation_failed"]
    assert (failure["ticket"], "'page'" in failure["error"]) == (broken, True)


def test_a_ticket_stored_in_a_form_no_release_reads_can_be_listed_acknowledged_and_resolved(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, make_servable: MakeArtifact
) -> None:
    home = tmp_path / "h"
    broken, odd = _tickets(home, make_servable, [["lead-b"], [[30, "lead-b"]]])
    _store_severity(home, odd, "page")
    h = ["--home", str(home), "--as", "ops"]

    code, out, err = cli(capsys, *h, "tickets", "list", "--json")
    assert code == 0, err
    listed = {t["id"]: t for t in json.loads(out)}
    assert listed[broken]["escalation"] == [{"after_minutes": None, "to": 'unreadable: "lead-b"'}]
    assert (listed[odd]["severity"], listed[odd]["escalation"][0]["to"]) == (
        "page",
        'unreadable: [30, "lead-b"]',
    )
    code, out, err = cli(capsys, *h, "tickets", "list")
    assert (code, "page" in out) == (0, True), err
    code, _, err = cli(capsys, *h, "tickets", "ack", odd)
    assert code == 0, err
    for ticket in (broken, odd):
        code, _, err = cli(capsys, *h, "tickets", "resolve", ticket, "--note", "stored by hand")
        assert code == 0, err
    with Platform(home, actor="ops") as plat:
        assert [t.id for t in plat.monitoring.tickets("resolved")] == [broken, odd]
        with plat.store.read() as conn:
            stored = conn.execute(select(tickets.c.escalation, tickets.c.severity)).all()
    assert sorted(map(tuple, stored), key=str) == sorted(
        [(["lead-b"], "warning"), ([[30, "lead-b"]], "page")], key=str
    )
