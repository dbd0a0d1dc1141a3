"""``mintaka monitor run`` and ``mintaka tickets`` as a script or a person runs them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from artifact_kit import MakeArtifact
from cli_kit import cli
from sqlalchemy import update

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
