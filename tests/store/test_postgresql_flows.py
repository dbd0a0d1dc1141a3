"""Governance, serving, monitoring and pipelines against a real PostgreSQL server (opt-in).

Skipped unless ``MINTAKA_TEST_POSTGRES_URL`` names a server database, as the core flows of
``test_postgresql_store.py`` are; each test works in a fresh schema of it, dropped afterwards.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, Self

import httpx
import numpy as np
import pytest
from artifact_kit import MakeArtifact
from sqlalchemy import event, make_url, select, update

import mintaka.platform as platform_module
from mintaka import IdFactory, ManualClock, NotFound, Platform, PolicyViolation
from mintaka.artifacts import store as artifacts_store
from mintaka.domain.monitoring import (
    Escalation,
    MonitorSpec,
    Severity,
    Signal,
    SignalKind,
    TicketStatus,
)
from mintaka.domain.pipelines import PipelineSpec, PipelineStatus, StepSpec
from mintaka.governance.evidence import build_pack
from mintaka.governance.inventory import inventory
from mintaka.governance.records import check_records
from mintaka.governance.service import GovernanceService
from mintaka.local.server import InferenceServer
from mintaka.monitoring import service
from mintaka.serving.predlog import Prediction
from mintaka.store import Store
from mintaka.store.schema import audit_events, monitors, predictions

pytestmark = pytest.mark.skipif(
    not os.environ.get("MINTAKA_TEST_POSTGRES_URL"),
    reason="MINTAKA_TEST_POSTGRES_URL is not set: no PostgreSQL server to test against",
)

ROLES = '[roles]\n"rita" = ["model-risk"]\n"raj" = ["model-risk"]\n"ivy" = ["incident-commander"]\n'
CARD = {
    "intended_use": "rank applicants",
    "limitations": "synthetic data",
    "training_data": "applications v1",
    "evaluation": "AUC 0.9",
    "owner": "dana",
}
FEATURES = ("income", "debt")


@pytest.fixture
def as_(
    pg_url: str, governed_home: Callable[[str], Path], clock: ManualClock
) -> Iterator[Callable[[str], Platform]]:
    """Open a home governed by the default policy, its store on the server, as an identity."""
    home = governed_home(ROLES)
    opened: dict[str, Platform] = {}

    def open_as(actor: str) -> Platform:
        if actor not in opened:
            opened[actor] = Platform(
                home, store_url=pg_url, actor=actor, clock=clock, ids=IdFactory(len(opened) + 11)
            )
        return opened[actor]

    yield open_as
    for plat in opened.values():
        plat.close()


@pytest.fixture
def pg_served(pg_platform: Platform, make_servable: MakeArtifact) -> Platform:
    """Model ``credit`` version 1, owned by dana, served on endpoint ``scoring`` (``blue``)."""
    pg_platform.register_model("credit", make_servable(b"v1"), flavor="pyfunc", owner="dana")
    pg_platform.serving.create_endpoint("scoring", "credit:1", route="blue")
    return pg_platform


def test_governance_approvals_exceptions_gate_inventory_and_evidence(
    as_: Callable[[str], Platform], make_servable: MakeArtifact, clock: ManualClock
) -> None:
    dana = as_("dana")
    v1 = dana.register_model(
        "credit", make_servable(b"v1"), flavor="pyfunc", tier="high", metrics={"auc": 0.91}
    )
    with pytest.raises(PolicyViolation, match="approver-is-not-developer"):
        dana.governance.approve(v1.ref)
    with pytest.raises(PolicyViolation, match="approvals: blue: 0 of 2"):
        dana.serving.create_endpoint("scoring", v1.ref, route="blue")
    dana.governance.set_model_card(v1.ref, **CARD)
    first = as_("rita").governance.approve(v1.ref, comment="validated")
    clock.advance(1)
    assert as_("rita").governance.approve(v1.ref) == first  # one approval per person
    second = as_("raj").governance.approve(v1.ref)
    assert [a.id for a in dana.governance.approvals(v1)] == [first.id, second.id]
    assert dana.governance.unrecorded_approvals(v1) == []
    dana.serving.create_endpoint("scoring", v1.ref, route="blue")
    assert dana.set_alias("credit", "champion", 1).aliases == ("champion",)

    v2 = dana.register_model(
        "credit", make_servable(b"v2"), flavor="pyfunc", tier="high", metrics={"auc": 0.93}
    )
    dana.governance.set_model_card(v2.ref, **CARD)
    with pytest.raises(PolicyViolation, match="approver-is-not-requester"):
        dana.governance.grant_exception(
            v2.ref,
            "approvals",
            requester="dana",
            justification="x",
            expires_at=clock.now() + timedelta(days=1),
        )
    granted = as_("rita").governance.grant_exception(
        v2.ref,
        "approvals",
        requester="dana",
        justification="regulator-approved pilot",
        expires_at=clock.now() + timedelta(days=7),
    )
    assert [e.id for e in dana.governance.exceptions(v2)] == [granted.id]
    assert dana.set_alias("credit", "pilot", 2).aliases == ("pilot",)

    entries = {e.ref: e for e in inventory(dana)}
    assert (entries["credit:1"].approvals, entries["credit:1"].live) == (2, True)
    assert entries["credit:1"].production_aliases == ("champion",)
    assert [e.ref for e in inventory(dana, with_exceptions=True)] == ["credit:2"]
    assert inventory(dana, overdue=True) == []

    pack = build_pack(dana, "credit:1")
    assert {a["approver"] for a in pack["approvals"]} == {"rita", "raj"}
    stored = {e.seq: e.hash for e in dana.audit.events()}
    for entry in pack["audit"]["events"]:
        recomputed = hashlib.sha256(
            entry["prev_hash"].encode("ascii") + entry["canonical"].encode("utf-8")
        ).hexdigest()
        assert entry["link_verifiable"]
        assert recomputed == entry["hash"] == stored[entry["seq"]]
    assert dana.verify_audit().ok


def test_serving_traffic_kill_unkill_and_the_prediction_log(
    pg_platform: Platform, make_servable: MakeArtifact
) -> None:
    plat = pg_platform
    plat.register_model("credit", make_servable(b"v1"), flavor="pyfunc")
    plat.register_model("credit", make_servable(b"v2"), flavor="pyfunc")
    plat.serving.create_endpoint("scoring", "credit:1", route="blue")
    killed = plat.serving.kill("scoring", reason="bad outputs")
    assert killed.status.value == "killed"
    assert plat.serving.get_endpoint("scoring").status.value == "killed"
    released = plat.serving.unkill("scoring")
    assert (released.status.value, released.traffic.weights) == ("in_service", {"blue": 100})
    plat.serving.deploy("scoring", "credit:2", route="green")
    moved = plat.serving.set_traffic("scoring", {"blue": 70, "green": 30})
    assert moved.traffic.weights == {"blue": 70, "green": 30}
    history = plat.serving.deployment_history("scoring")
    assert history[-1].traffic.weights == {"blue": 70, "green": 30}
    plat.serving.set_traffic("scoring", {"blue": 100, "green": 0})
    server = InferenceServer(plat, poll_interval=0.02)
    server.start()
    try:
        answer = plat.serving.invoke("scoring", [{"x": 1.0}])
        server.predlog.flush()
    finally:
        server.stop()
    prediction_id = answer["predictions"][0]["id"]
    assert plat.serving.prediction(prediction_id)["endpoint"] == "scoring"
    decision_id = plat.serving.record_decision(prediction_id, "loan approved")
    trace = plat.serving.trace(prediction_id)
    assert trace.version.ref == "credit:1"
    assert [d["decision"] for d in trace.decisions] == ["loan approved"]
    assert f"decision:{decision_id}" in {n.id for n in plat.lineage_downstream("credit:1").nodes}
    actions = [e.action for e in plat.audit.events()]
    assert {"endpoint.kill", "endpoint.unkill", "prediction.decision"} <= set(actions)
    assert plat.verify_audit().ok


def test_one_request_with_a_number_beyond_a_floats_range_loses_no_prediction(
    pg_served: Platform,
) -> None:
    """PostgreSQL's ``json`` type refuses ``Infinity``: such a request is refused, and a value
    JSON has no number for is logged as its text, so no batch of predictions is spilled."""
    plat = pg_served
    server = InferenceServer(plat, poll_interval=0.02)
    server.start()
    url = f"{server.url}/endpoints/scoring/invocations"
    try:
        server.predlog.interval = 5.0  # every prediction below in one batch
        good = [httpx.post(url, json={"inputs": {"x": float(i)}}) for i in range(5)]
        bad = httpx.post(url, content=b'{"inputs": {"x": 1e999}}')
        at = plat.clock.now()
        odd = Prediction(
            "pred-odd",
            "scoring",
            "blue",
            "credit",
            1,
            None,
            {"x": math.inf},
            True,
            math.nan,
            "ok",
            0,
            1.0,
            at,
        )
        server.predlog.append(odd)
        server.predlog.flush()
    finally:
        server.stop()
    assert [g.status_code for g in good] == [200] * 5
    assert bad.status_code == 400
    with plat.store.read() as conn:
        stored = dict(conn.execute(select(predictions.c.id, predictions.c.inputs)).all())
    assert len(stored) == 6
    assert stored["pred-odd"] == {"x": "inf"}
    assert list(plat.home.glob("predictions-spill*")) == []


def _rows(rng: np.random.Generator, n: int, shift: float = 0.0) -> list[dict[str, float]]:
    values = rng.normal(size=(n, len(FEATURES)))
    values[:, 0] += shift
    return [dict(zip(FEATURES, map(float, row), strict=True)) for row in values]


def _oncall_signal(
    name: str, kind: SignalKind, metric: str, threshold: float, window: str, **extra: Any
) -> Signal:
    """A signal owned by ``oncall``; ``extra`` sets its other fields."""
    return Signal(
        name=name,
        kind=kind,
        metric=metric,
        threshold=threshold,
        window=window,
        owner="oncall",
        **extra,
    )


def _log(plat: Platform, rows: list[dict[str, float]]) -> None:
    """Log ``rows`` as answered by route ``blue`` of ``scoring`` (``credit:1``), stamped now."""
    version = plat.get_model_version("credit", 1)
    at = plat.clock.now().isoformat()
    record: dict[str, Any] = {
        "endpoint": "scoring",
        "route": "blue",
        "model": "credit",
        "version": 1,
        "version_id": version.id,
        "input_digest": "sha256:" + "0" * 64,
        "output": 0.5,
        "status": "ok",
        "shadow": 0,
        "latency_ms": 1.0,
        "at": at,
    }
    with plat.store.write() as conn:
        conn.execute(
            predictions.insert(),
            [{**record, "id": plat.ids.new("pred"), "inputs": row} for row in rows],
        )


def test_monitoring_drift_alert_ticket_escalation_and_removal(
    pg_platform: Platform, make_servable: MakeArtifact, tmp_path: Path, clock: ManualClock
) -> None:
    plat = pg_platform
    train = tmp_path / "train.csv"
    with train.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(FEATURES))
        writer.writeheader()
        writer.writerows(_rows(np.random.default_rng(1), 3000))
    dataset = plat.register_dataset("applications", train)
    plat.register_model("credit", make_servable(b"v1"), flavor="pyfunc", dataset_ids=[dataset.id])
    plat.serving.create_endpoint("scoring", "credit:1", route="blue")
    signal = _oncall_signal(
        "income-drift",
        SignalKind.DRIFT,
        "psi:income",
        0.2,
        "1h",
        escalation=[Escalation(after_minutes=30, to="lead")],
        runbook_url="https://runbooks.example/drift",
    )
    monitor_id = plat.monitoring.add_monitor(
        MonitorSpec(endpoint="scoring", model="credit", signals=[signal])
    )
    assert [m.endpoint for m in plat.monitoring.monitors()] == ["scoring"]

    rng = np.random.default_rng(3)
    _log(plat, _rows(rng, 2000))
    clock.advance(minutes=5)
    calm = plat.monitoring.run_once()
    assert (calm.evaluated, calm.alerts) == (1, ())
    clock.advance(minutes=61)
    _log(plat, _rows(rng, 2000, shift=1.5))
    clock.advance(minutes=5)
    drifted = plat.monitoring.run_once()
    assert len(drifted.alerts) == 1
    assert drifted.alerts[0].value > 0.2
    [ticket] = plat.monitoring.tickets(TicketStatus.OPEN)
    assert (ticket.owner, ticket.runbook_url) == ("oncall", "https://runbooks.example/drift")
    clock.advance(minutes=5)
    plat.monitoring.run_once()  # still drifting: the same ticket, counted again
    assert [(t.id, t.alerts) for t in plat.monitoring.tickets()] == [(ticket.id, 2)]
    clock.advance(minutes=30)
    assert plat.monitoring.run_once().escalated == (ticket.id,)
    assert plat.monitoring.ticket(ticket.id).owner == "lead"
    acknowledged = plat.monitoring.acknowledge(ticket.id)
    assert acknowledged.status is TicketStatus.ACKNOWLEDGED
    assert [e.action for e in plat.audit.events()].count("alert.raise") == 3
    removed = plat.monitoring.remove_monitor(monitor_id, reason="retired")
    assert removed.endpoint == "scoring"
    assert plat.monitoring.monitors() == []
    assert plat.verify_audit().ok


def test_a_pipeline_run_records_its_steps(pg_platform: Platform) -> None:
    spec = PipelineSpec(
        name="two-steps",
        parameters={"n": 3},
        steps=[
            StepSpec(
                name="produce",
                entrypoint="postgresql_steps:produce",
                inputs={"n": "params.n"},
            ),
            StepSpec(
                name="consume",
                entrypoint="postgresql_steps:consume",
                inputs={"total": "produce.total"},
            ),
        ],
    )
    first = pg_platform.pipelines.run(spec, isolation="inline")
    assert first.status is PipelineStatus.SUCCEEDED
    assert first.steps[1].outputs == {"doubled": 12}
    again = pg_platform.pipelines.run(spec, isolation="inline")
    assert [s.cached for s in again.steps] == [True, True]
    statuses = {run.id: run.status for run in pg_platform.pipelines.runs()}
    assert statuses == {first.id: PipelineStatus.SUCCEEDED, again.id: PipelineStatus.SUCCEEDED}
    actions = [e.action for e in pg_platform.audit.events()]
    assert actions.count("pipeline.succeeded") == 2
    assert pg_platform.verify_audit().ok


def _edit_canonical(plat: Platform, action: str, field: str, value: str) -> None:
    """Rewrite by hand the ``field`` of the first ``action`` event's canonical bytes (on
    PostgreSQL the query columns are copies the edit leaves as they were)."""
    with plat.store.write() as conn:
        seq, canonical = conn.execute(
            select(audit_events.c.seq, audit_events.c.canonical)
            .where(audit_events.c.action == action)
            .order_by(audit_events.c.seq)
        ).one()
        body = json.loads(bytes(canonical))
        body[field] = value
        edited = json.dumps(body).encode()
        conn.execute(update(audit_events).where(audit_events.c.seq == seq).values(canonical=edited))


@pytest.mark.parametrize(("field", "value"), [("at", "yesterday"), ("actor", "raj")])
def test_an_approval_whose_event_bytes_were_edited_is_not_counted(
    as_: Callable[[str], Platform], make_servable: MakeArtifact, field: str, value: str
) -> None:
    dana = as_("dana")
    version = dana.register_model("credit", make_servable(b"v1"), flavor="pyfunc", tier="high")
    given = as_("rita").governance.approve(version.ref)
    _edit_canonical(dana, "model.approve", field, value)
    assert dana.governance.approvals(version) == []
    assert [a.id for a in dana.governance.unrecorded_approvals(version)] == [given.id]
    assert [r.id for r in check_records(dana.store).unrecorded] == [given.id]


def test_an_exception_whose_event_names_another_granter_waives_nothing(
    as_: Callable[[str], Platform], make_servable: MakeArtifact, clock: ManualClock
) -> None:
    dana = as_("dana")
    version = dana.register_model("credit", make_servable(b"v1"), flavor="pyfunc", tier="high")
    granted = as_("rita").governance.grant_exception(
        version.ref,
        "approvals",
        requester="dana",
        justification="pilot",
        expires_at=clock.now() + timedelta(days=7),
    )
    _edit_canonical(dana, "policy.exception", "actor", "raj")
    assert dana.governance.exceptions(version) == []
    assert [e.id for e in dana.governance.unrecorded_exceptions(version)] == [granted.id]
    assert [r.id for r in check_records(dana.store).unrecorded] == [granted.id]


class _Race:
    """Runs ``other`` in a thread the first time ``start`` is called, waiting up to 0.1 s for
    it: called between a read and the write that depends on it, a writer that locks the row it
    read keeps ``other`` waiting until it commits, one that does not lets ``other`` go first."""

    def __init__(self, other: Callable[[], object]) -> None:
        self.other = other
        self.racer: threading.Thread | None = None
        self.failed: list[BaseException] = []

    def _run(self) -> None:
        try:
            self.other()
        except BaseException as exc:  # raised again by finish
            self.failed.append(exc)

    def start(self) -> None:
        if self.racer is None:
            self.racer = threading.Thread(target=self._run)
            self.racer.start()
            self.racer.join(timeout=0.1)

    def finish(self) -> None:
        """Wait for ``other``; what it raised is raised here."""
        assert self.racer is not None
        self.racer.join()
        if self.failed:
            raise self.failed[0]


def _second_process(plat: Platform, pg_url: str) -> Platform:
    """Another process on ``plat``'s home and server database, as actor ``b``."""
    return Platform(plat.home, store_url=pg_url, clock=plat.clock, ids=IdFactory(seed=8), actor="b")


def _accuracy_monitor() -> MonitorSpec:
    """A monitor of ``scoring`` with one daily accuracy signal, owned by oncall."""
    accuracy = _oncall_signal("accuracy", SignalKind.PERFORMANCE, "accuracy", 0.8, "1d")
    return MonitorSpec(endpoint="scoring", model="credit", signals=[accuracy])


def _race_before(monkeypatch: pytest.MonkeyPatch, name: str, race: _Race) -> None:
    """Make the service's function ``name`` start ``race`` before it reads its argument."""
    read = getattr(service, name)

    def race_then_read(*args: Any) -> Any:
        race.start()
        return read(*args)

    monkeypatch.setattr(service, name, race_then_read)


def _race_after(monkeypatch: pytest.MonkeyPatch, name: str, race: _Race) -> None:
    """Make the service's function ``name`` start ``race`` once it has read what it reads."""
    read = getattr(service, name)

    def read_then_race(*args: Any) -> Any:
        found = read(*args)
        race.start()
        return found

    monkeypatch.setattr(service, name, read_then_race)


class _RacingOrder(tuple[Severity, ...]):
    """The severity order, whose look-up (made by a runner between reading the open ticket and
    counting the alert on it) starts ``race``."""

    def __new__(cls, order: tuple[Severity, ...], race: _Race) -> Self:
        made = super().__new__(cls, order)
        made.race = race
        return made

    race: _Race

    def index(self, value: Severity, *args: Any) -> int:
        self.race.start()
        return super().index(value, *args)


def test_two_runners_counting_an_alert_on_one_ticket_at_once_lose_neither(
    pg_platform: Platform,
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, ticket = pg_platform.monitoring.raise_alert("drift", "scoring", owner="oncall")
    with _second_process(pg_platform, pg_url) as other:
        race = _Race(lambda: other.monitoring.raise_alert("drift", "scoring"))
        monkeypatch.setattr(service, "SEVERITY_ORDER", _RacingOrder(service.SEVERITY_ORDER, race))
        pg_platform.monitoring.raise_alert("drift", "scoring")
        race.finish()
    assert pg_platform.monitoring.ticket(ticket.id).alerts == 3


def test_a_ticket_resolved_while_it_is_acknowledged_stays_resolved(
    pg_platform: Platform,
    pg_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _, ticket = pg_platform.monitoring.raise_alert("drift", "scoring", owner="oncall")
    with _second_process(pg_platform, pg_url) as other:
        race = _Race(lambda: other.monitoring.resolve(ticket.id, "fixed"))
        _race_before(monkeypatch, "_ticket", race)
        pg_platform.monitoring.acknowledge(ticket.id)
        race.finish()
    assert pg_platform.monitoring.ticket(ticket.id).status is TicketStatus.RESOLVED
    actions = [e.action for e in pg_platform.audit.events()]
    assert actions[-2:] == ["ticket.ack", "ticket.resolve"]


def test_a_registrant_edited_out_of_the_register_events_column_still_may_not_approve(
    as_: Callable[[str], Platform], make_servable: MakeArtifact
) -> None:
    # On PostgreSQL the audit table's actor column is a copy of the canonical bytes' actor.
    rita = as_("rita")
    version = rita.register_model(
        "credit", make_servable(b"v1"), flavor="pyfunc", tier="high", owner="omar"
    )
    with rita.store.write() as conn:
        conn.execute(
            update(audit_events)
            .where(audit_events.c.action == "model.register")
            .values(actor="omar")
        )
    with pytest.raises(PolicyViolation, match="approver-is-not-developer"):
        rita.governance.approve(version.ref)


@pytest.mark.parametrize(
    "edit",
    [
        {"action": "model.note"},
        {"subject": "credit:999"},
        {"action": "model.note", "subject": "credit:999"},
    ],
)
def test_a_register_event_whose_action_or_subject_column_was_edited_still_names_its_registrant(
    as_: Callable[[str], Platform], make_servable: MakeArtifact, edit: dict[str, str]
) -> None:
    rita = as_("rita")
    version = rita.register_model(
        "credit", make_servable(b"v1"), flavor="pyfunc", tier="high", owner="omar"
    )
    with rita.store.write() as conn:
        conn.execute(
            update(audit_events).where(audit_events.c.action == "model.register").values(edit)
        )
    with pytest.raises(PolicyViolation, match="approver-is-not-developer"):
        rita.governance.approve(version.ref)


def test_writes_are_read_committed_and_reads_snapshots_whatever_the_servers_default(
    pg_url: str, tmp_path: Path, clock: ManualClock
) -> None:
    url = make_url(pg_url)
    options = f"{url.query['options']} -cdefault_transaction_isolation=repeatable\\ read"
    strict = url.update_query_dict({"options": options}).render_as_string(hide_password=False)
    with Platform(tmp_path / ".mintaka", store_url=strict, clock=clock, actor="a") as plat:
        with plat.store.engine.connect() as conn:
            default = conn.exec_driver_sql("SHOW default_transaction_isolation").scalar()
        with plat.store.write() as conn:
            writing = conn.exec_driver_sql("SHOW transaction_isolation").scalar()
        with plat.store.read() as conn:
            reading = conn.exec_driver_sql("SHOW transaction_isolation").scalar()
    assert (default, writing, reading) == ("repeatable read", "read committed", "repeatable read")


def test_two_runners_finding_a_signal_unmeasured_at_once_record_its_stretch_once(
    pg_served: Platform, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    plat = pg_served
    plat.monitoring.add_monitor(_accuracy_monitor())
    with _second_process(plat, pg_url) as other:
        race = _Race(other.monitoring.run_once)
        _race_after(monkeypatch, "_unmeasured_signals", race)
        plat.monitoring.run_once()  # no traffic, no labels: the signal is left unmeasured
        race.finish()
    actions = [e.action for e in plat.audit.events()]
    assert actions.count("monitor.signal.unmeasured") == 1
    assert list(plat.monitoring.unmeasured()) == ["scoring:accuracy"]


def test_two_runners_finding_a_signal_failing_at_once_record_its_failure_once(
    pg_served: Platform, pg_url: str, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    plat = pg_served
    narrow = _oncall_signal("narrow", SignalKind.DRIFT, "psi", 0.2, "20n")
    spec = MonitorSpec(endpoint="scoring", model="credit", signals=[narrow])
    with plat.store.write() as conn:  # a count window stored before such windows were refused
        conn.execute(
            monitors.insert().values(
                id="mon-old",
                endpoint="scoring",
                model="credit",
                spec=spec.model_dump(mode="json"),
                created_at=clock.now().isoformat(),
                created_by="dana",
            )
        )
    with _second_process(plat, pg_url) as other:
        race = _Race(other.monitoring.run_once)
        _race_after(monkeypatch, "_failures", race)
        assert [f.signal for f in plat.monitoring.run_once().failed] == ["narrow"]
        race.finish()
    actions = [e.action for e in plat.audit.events()]
    assert actions.count("monitor.signal.failed") == 1


def test_the_same_monitor_added_by_two_processes_at_once_is_stored_once(
    pg_served: Platform, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    plat = pg_served
    spec = _accuracy_monitor()
    with _second_process(plat, pg_url) as other:

        def record() -> None:
            with other.store.write() as conn:
                other.monitoring.record_monitor(conn, spec)

        race = _Race(record)
        plat.monitoring.check_monitor(spec)  # as add_monitor does, before its transaction
        _race_after(monkeypatch, "_same_monitor", race)
        with plat.store.write() as conn:
            added, _ = plat.monitoring.record_monitor(conn, spec)
        race.finish()
    assert [monitor_id for monitor_id, _ in plat.monitoring.monitor_records()] == [added]
    assert [e.action for e in plat.audit.events()].count("monitor.add") == 1


def test_a_label_replaced_by_two_processes_at_once_is_audited_as_replaced_in_turn(
    pg_served: Platform, pg_url: str
) -> None:
    plat = pg_served
    _log(plat, [{"income": 1.0, "debt": 0.0}])
    with plat.store.read() as conn:
        pid = conn.execute(select(predictions.c.id)).scalar_one()
    plat.monitoring.record_labels({pid: 1})
    with _second_process(plat, pg_url) as other:
        race = _Race(lambda: other.monitoring.record_labels({pid: 3}))

        def race_before_the_update(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            if statement.startswith("UPDATE labels"):
                race.start()

        event.listen(plat.store.engine, "before_cursor_execute", race_before_the_update)
        try:
            plat.monitoring.record_labels({pid: 2})
        finally:
            event.remove(plat.store.engine, "before_cursor_execute", race_before_the_update)
        race.finish()
    replaced = [
        (e.details["previous"], e.details["label"])
        for e in plat.audit.events()
        if e.action == "label.replace"
    ]
    assert replaced == [(1, 2), (2, 3)]


def test_an_approval_committed_while_the_records_are_cross_checked_is_not_tampering(
    as_: Callable[[str], Platform], make_servable: MakeArtifact
) -> None:
    dana = as_("dana")
    version = dana.register_model("credit", make_servable(b"v1"), flavor="pyfunc", tier="high")
    dana.governance.set_model_card(version.ref, **CARD)
    approved: list[str] = []

    def approve_after_reading_approvals(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM approvals" in statement and not approved:
            approved.append(as_("rita").governance.approve(version.ref).id)

    event.listen(dana.store.engine, "after_cursor_execute", approve_after_reading_approvals)
    try:
        report = check_records(dana.store)
    finally:
        event.remove(dana.store.engine, "after_cursor_execute", approve_after_reading_approvals)
    assert len(approved) == 1
    assert (report.ok, report.unrecorded, report.missing) == (True, [], [])
    assert check_records(dana.store).ok
    assert dana.verify_audit().ok


def test_the_same_person_approving_from_two_processes_at_once_is_recorded_once(
    as_: Callable[[str], Platform],
    pg_url: str,
    clock: ManualClock,
    make_servable: MakeArtifact,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dana, rita = as_("dana"), as_("rita")
    version = dana.register_model("credit", make_servable(b"v1"), flavor="pyfunc", tier="high")
    dana.governance.set_model_card(version.ref, **CARD)
    with Platform(
        rita.home, store_url=pg_url, clock=clock, ids=IdFactory(seed=99), actor="rita"
    ) as other:
        race = _Race(lambda: other.governance.approve(version.ref))
        standing = GovernanceService._standing

        def read_then_race(self: GovernanceService, *args: Any) -> Any:
            found = standing(self, *args)
            if self is rita.governance:
                race.start()
            return found

        monkeypatch.setattr(GovernanceService, "_standing", read_then_race)
        given = rita.governance.approve(version.ref)
        race.finish()
        monkeypatch.undo()
    assert [a.id for a in dana.governance.approvals(version)] == [given.id]
    assert [e.action for e in dana.audit.events()].count("model.approve") == 1
    assert check_records(dana.store).ok


def test_a_monitor_removed_by_two_processes_at_once_is_removed_once(
    pg_served: Platform, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    plat = pg_served
    monitor_id = plat.monitoring.add_monitor(_accuracy_monitor())
    with _second_process(plat, pg_url) as other:
        race = _Race(lambda: other.monitoring.remove_monitor(monitor_id, reason="twice"))
        _race_before(monkeypatch, "_stored_monitor", race)
        plat.monitoring.remove_monitor(monitor_id, reason="retired")
        with pytest.raises(NotFound, match="already removed"):
            race.finish()
    assert [e.action for e in plat.audit.events()].count("monitor.remove") == 1
    with plat.store.read() as conn:
        removed_by = conn.execute(select(monitors.c.removed_by)).scalar_one()
    assert removed_by == plat.actor


def _with_setting(pg_url: str, setting: str) -> str:
    """``pg_url`` whose connections also set the server parameter ``setting``."""
    url = make_url(pg_url)
    options = f"{url.query['options']} -c{setting}"
    return url.update_query_dict({"options": options}).render_as_string(hide_password=False)


def test_no_artifact_is_hashed_inside_a_transaction_the_server_ends_when_idle(
    pg_url: str,
    tmp_path: Path,
    clock: ManualClock,
    make_servable: MakeArtifact,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Hashing a large artifact takes longer than a server lets a session sit idle in a
    # transaction; here the server allows 50 ms and hashing takes 100 ms.
    home = tmp_path / ".mintaka"
    Store(pg_url).dispose()  # migrated first: migrating is not what is timed here
    strict = _with_setting(pg_url, "idle_in_transaction_session_timeout=50")
    slow_manifest = artifacts_store.manifest_of

    def hashing_slowly(path: Path) -> Any:
        time.sleep(0.1)
        return slow_manifest(path)

    monkeypatch.setattr(artifacts_store, "manifest_of", hashing_slowly)
    monkeypatch.setattr(platform_module, "manifest_of", hashing_slowly)
    with Platform(home, store_url=strict, clock=clock, actor="alice") as plat:
        version = plat.register_model("credit", make_servable(b"v1"), flavor="pyfunc", owner="dana")
        pack = build_pack(plat, version.ref)
    assert pack["subject"]["ref"] == version.ref
    assert pack["artifact"]["verified"] is True


def test_only_the_chain_scan_of_an_evidence_pack_streams_its_rows(
    pg_platform: Platform, make_servable: MakeArtifact
) -> None:
    version = pg_platform.register_model(
        "credit", make_servable(b"v1"), flavor="pyfunc", owner="dana"
    )
    streamed: list[str] = []
    statements: list[str] = []

    def spy(_conn: Any, _cursor: Any, statement: str, _p: Any, context: Any, _m: Any) -> None:
        statements.append(statement)
        if context.execution_options.get("yield_per"):
            streamed.append(statement)

    event.listen(pg_platform.store.engine, "before_cursor_execute", spy)
    try:
        build_pack(pg_platform, version.ref)
    finally:
        event.remove(pg_platform.store.engine, "before_cursor_execute", spy)
    assert len(statements) > 10
    assert len(streamed) == 1
    assert "FROM audit_events" in streamed[0]
    assert statements.index(streamed[0]) < len(statements) - 1


def test_a_versions_registrant_is_read_from_its_own_registering_events_only(
    pg_platform: Platform, make_servable: MakeArtifact
) -> None:
    version = pg_platform.register_model(
        "credit", make_servable(b"v1"), flavor="pyfunc", owner="dana"
    )
    pg_platform.register_model("other", make_servable(b"v2"), flavor="pyfunc", owner="bob")
    read: list[str] = []

    def spy(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM audit_events" in statement:
            read.append(statement)

    event.listen(pg_platform.store.engine, "before_cursor_execute", spy)
    try:
        registrants = pg_platform.governance._registered_by(version)
    finally:
        event.remove(pg_platform.store.engine, "before_cursor_execute", spy)
    assert registrants == {"alice", "dana"}
    assert len(read) == 1
    assert " OR " not in read[0].upper()
    assert " AND " in read[0].upper()
