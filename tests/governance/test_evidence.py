from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import pytest
from artifact_kit import MakeArtifact
from forgery_kit import forge_approval
from governance_kit import APPROVERS, CARD
from sqlalchemy import event as sa_event

from mintaka import IdFactory, ManualClock, Platform, hookimpl
from mintaka.cli.app import main
from mintaka.errors import BackendError
from mintaka.governance.evidence import (
    EVIDENCE_KINDS,
    build_pack,
    export_evidence,
    lineage_png,
    load_control_map,
)
from mintaka.governance.redaction import REDACTED, Redactor, redact_logging
from mintaka.local.backend import LocalBackend, LocalSettings
from mintaka.plugins import BackendRegistry, PluginManager
from mintaka.store.schema import approvals, audit_events

SECRET = "sk-test-7Qm2vX9pL4rT8wZ1yB6nK3"


class VaultedSettings(LocalSettings):
    api_token: str = ""


class VaultedLocal(LocalBackend):
    """The local backend with a credential in its settings and a URL with a password in its
    description, as a cloud backend would have."""

    name = "vaulted"
    settings_model: ClassVar[type[LocalSettings]] = VaultedSettings

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "tracking_uri": f"postgresql://svc:{SECRET}@db:5432/ml"}


class Plugin:
    @hookimpl
    def mintaka_register_backends(self, registry: BackendRegistry) -> None:
        registry.add(VaultedLocal)


@pytest.fixture
def home(governed_home: Callable[[str], Path]) -> Path:
    return governed_home(APPROVERS)


@pytest.fixture
def as_(home: Path) -> Iterator[Callable[[str], Platform]]:
    clock = ManualClock()
    opened: dict[str, Platform] = {}
    plugins = PluginManager(load_entry_points=False, extra=[Plugin()])

    def open_as(actor: str) -> Platform:
        if actor not in opened:
            opened[actor] = Platform(
                home,
                actor=actor,
                clock=clock,
                ids=IdFactory(len(opened) + 7),
                backend="vaulted",
                backend_settings={"api_token": SECRET},
                plugins=plugins,
            )
        return opened[actor]

    yield open_as
    for plat in opened.values():
        plat.close()


@pytest.fixture
def governed(
    as_: Callable[[str], Platform], tmp_path: Path, make_servable: MakeArtifact
) -> Platform:
    """A high-tier model trained in a run on a dataset, documented, approved twice, served and
    promoted; then a second version (unapproved) that is refused production."""
    dana = as_("dana")
    data = tmp_path / "train.csv"
    data.write_text("x,y\n1,0\n2,1\n")
    dataset = dana.register_dataset("applications", data)
    run = dana.start_run("credit", params={"C": 0.5}, dataset_ids=[dataset.id], code_commit_="abc")
    dana.log_metrics(run.id, {"auc": 0.91})
    dana.end_run(run.id)
    v1 = dana.register_model(
        "credit", make_servable(b"v1"), flavor="pyfunc", run_id=run.id, tier="high"
    )
    dana.governance.set_model_card(v1.ref, **CARD)
    for approver in ("rita", "raj"):
        as_(approver).governance.approve(v1.ref, comment="validated")
    dana.serving.create_endpoint("scoring", v1.ref, route="blue")
    dana.set_alias("credit", "champion", 1)
    return dana


def _export(plat: Platform, out: Path) -> tuple[bytes, bytes]:
    written = export_evidence(plat, "credit:1", out)
    return written.json_path.read_bytes(), written.html_path.read_bytes()


def test_re_export_is_byte_identical(governed: Platform, tmp_path: Path) -> None:
    first = _export(governed, tmp_path / "a")
    second = _export(governed, tmp_path / "b")
    assert first == second
    governed.clock.advance(days=30)  # type: ignore[attr-defined]  # a ManualClock
    assert _export(governed, tmp_path / "c") == first  # no time of export anywhere
    pack = json.loads(first[0])
    assert lineage_png(pack) == lineage_png(pack)
    assert re.search(rb"data:image/png;base64,[A-Za-z0-9+/=]{100,}", first[1])
    assert b"base64" not in first[0]  # the picture lives in the HTML only


def test_pack_holds_every_section(governed: Platform) -> None:
    pack = build_pack(governed, "credit@champion")
    assert pack["subject"]["ref"] == "credit:1"
    assert [f["field"] for f in pack["model_card"]["fields"]] == list(CARD)
    assert sorted((a["approver"], a["current"]) for a in pack["approvals"]) == [
        ("raj", True),
        ("rita", True),
    ]
    assert {d["action"] for d in pack["policy_decisions"]} >= {
        "model.approve",
        "model.promote",
        "endpoint.create",
    }
    assert pack["evaluations"]["metrics"]["values"] == {"auc": 0.91}
    assert [t["metric"] for t in pack["evaluations"]["thresholds"]] == ["auc"]
    [endpoint] = pack["deployments"]
    assert endpoint["endpoint"] == "scoring"
    assert endpoint["history"][0]["version_live"] is True
    assert pack["monitoring"]["status"] == "no monitors configured"
    assert pack["monitoring"]["monitors"] == []
    upstream = {n["kind"] for n in pack["lineage"]["upstream"]["nodes"]}
    assert upstream == {"dataset", "run", "model_version"}
    assert {n["kind"] for n in pack["lineage"]["downstream"]["nodes"]} == {
        "model_version",
        "deployment",
    }
    assert pack["audit"]["chain"]["verified"] is True
    actions = [e["action"] for e in pack["audit"]["events"]]
    assert "model.register" in actions
    assert "model.alias.set" in actions
    assert "endpoint.create" in actions


def test_every_audit_link_can_be_recomputed_from_the_pack(governed: Platform) -> None:
    pack = build_pack(governed, "credit:1")
    stored = {e.seq: e.hash for e in governed.audit.events()}
    for event in pack["audit"]["events"]:
        assert event["link_verifiable"]
        recomputed = hashlib.sha256(
            event["prev_hash"].encode("ascii") + event["canonical"].encode("utf-8")
        ).hexdigest()
        assert recomputed == event["hash"] == stored[event["seq"]]
        assert json.loads(event["canonical"])["seq"] == event["seq"]


def test_the_audit_chain_evidence_names_approval_rows_the_chain_does_not_record(
    governed: Platform, tmp_path: Path
) -> None:
    before = build_pack(governed, "credit:1")
    clean = before["audit"]["chain"]["records"]
    assert (clean["ok"], clean["unrecorded"], clean["missing"]) == (True, [], [])
    met = {r["control"]: r["status"] for r in before["controls"]["results"]}
    assert met["Art. 12"] == "met"
    version = governed.get_model_version("credit:1")
    raj = next(a for a in governed.governance.approvals(version) if a.approver.name == "raj")
    with governed.store.write() as conn:
        conn.execute(approvals.delete().where(approvals.c.id == raj.id))
    forge_approval(governed, version, "apr-forged", raj.at)
    pack = build_pack(governed, "credit:1")  # still built, the disagreement reported
    chain = pack["audit"]["chain"]
    assert chain["verified"] is True
    assert chain["records"]["ok"] is False
    assert [(r["table"], r["id"], r["subject"]) for r in chain["records"]["unrecorded"]] == [
        ("approvals", "apr-forged", "credit:1")
    ]
    assert [(m["table"], m["id"]) for m in chain["records"]["missing"]] == [("approvals", raj.id)]
    results = {r["control"]: r for r in pack["controls"]["results"]}
    assert results["Art. 12"]["status"] == "gap"
    [gap] = [m for m in results["Art. 12"]["missing"] if m.startswith("audit-chain:")]
    assert "approvals row 'apr-forged' of credit:1 is not recorded by the chain" in gap
    assert f"approvals row {raj.id!r} of credit:1 recorded by audit event" in gap
    written = export_evidence(governed, "credit:1", tmp_path)
    assert "apr-forged" in written.html_path.read_text("utf-8")


def test_the_audit_chain_gap_names_the_first_link_that_does_not_verify(
    governed: Platform,
) -> None:
    with governed.store.write() as conn:
        conn.execute(audit_events.update().where(audit_events.c.seq == 3).values(hash="0" * 64))
    pack = build_pack(governed, "credit:1")
    assert (pack["audit"]["chain"]["verified"], pack["audit"]["chain"]["first_bad_seq"]) == (
        False,
        3,
    )
    results = {r["control"]: r for r in pack["controls"]["results"]}
    [gap] = [m for m in results["Art. 12"]["missing"] if m.startswith("audit-chain:")]
    assert gap.startswith("audit-chain: the audit chain does not verify from event 3: ")


def test_controls_cite_records_in_the_pack_and_gaps_are_never_met(
    governed: Platform,
) -> None:
    pack = build_pack(governed, "credit:1")
    ids: set[str] = set()

    def collect(value: Any) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("id"), str):
                ids.add(value["id"])
            for item in value.values():
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    collect({k: v for k, v in pack.items() if k != "controls"})
    results = {r["control"]: r for r in pack["controls"]["results"]}
    for result in results.values():
        assert set(result["evidence"]) <= ids, result["control"]
        assert (result["status"] == "met") == (not result["missing"])
    assert results["Art. 14"]["status"] == "met"
    assert {a["id"] for a in pack["approvals"]} <= set(results["Art. 14"]["evidence"])
    assert results["Art. 12"]["status"] == "met"
    assert results["MANAGE 2.4"]["evidence"] == ["capability:serving.kill"]
    for monitored in ("Art. 72", "MEASURE 2.4", "V. Ongoing monitoring"):
        assert results[monitored]["status"] == "gap"
        assert results[monitored]["evidence"] == []
        assert results[monitored]["missing"] == ["monitors: no monitors configured"]
    assert results["V. Outcomes analysis"]["status"] == "gap"  # no comparison recorded
    assert pack["controls"]["gaps"] == sum(1 for r in results.values() if r["status"] == "gap")
    frameworks = {r["framework"] for r in results.values()}
    assert frameworks == {"eu-ai-act", "nist-ai-rmf", "sr-11-7"}


def test_unapproved_version_shows_gaps_not_met(
    governed: Platform, make_servable: MakeArtifact
) -> None:
    governed.register_model("credit", make_servable(b"v2"), flavor="pyfunc")
    pack = build_pack(governed, "credit:2")
    results = {r["control"]: r for r in pack["controls"]["results"]}
    assert results["Art. 14"]["status"] == "gap"
    assert results["Art. 13"]["status"] == "gap"
    assert pack["approvals"] == []
    assert pack["deployments"] == []


def test_control_map_names_only_known_evidence_kinds() -> None:
    mapping = load_control_map()
    used = {kind for c in mapping["controls"] for kind in c["evidence"]}
    assert used <= set(EVIDENCE_KINDS)
    assert "SR 26-2" in mapping["frameworks"]["sr-11-7"]["note"]


def test_no_secret_reaches_any_output(
    as_: Callable[[str], Platform],
    governed: Platform,
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MINTAKA_TEST_TOKEN", SECRET)
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="sqlalchemy.engine")  # echoes statement parameters
    log_file = tmp_path / "debug.log"
    file_handler = logging.FileHandler(log_file)
    file_handler.setLevel(logging.DEBUG)
    logging.getLogger().addHandler(file_handler)
    try:
        redact_logging(Redactor.from_environment())
        rita = as_("rita")
        rita.governance.grant_exception(
            "credit:1",
            "documentation",
            requester="dana",
            justification=f"vendor outage; temporary key {SECRET} rotates Friday",
            expires_at=rita.clock.now() + timedelta(days=7),
        )
        try:
            raise BackendError(f"401 from the registry with token {SECRET}", "vaulted")
        except BackendError:
            logging.getLogger("mintaka.test").exception("backend call failed")
        written = export_evidence(governed, "credit:1", tmp_path / "pack")
        cli_outputs = []
        for args in (
            ["exceptions", "list", "credit:1"],
            ["exceptions", "list", "credit:1", "--json"],
            ["evidence", "export", "credit:1", "--out", str(tmp_path / "cli-pack"), "--json"],
            ["decisions", "list", "--json"],
            ["inventory", "--json"],
        ):
            code = 0
            try:
                main(["--home", str(home), "--as", "rita", *args])
            except SystemExit as exc:
                code = int(exc.code or 0)
            cli_outputs.append(capsys.readouterr())
            assert code == 0, cli_outputs[-1].err
    finally:
        logging.getLogger().removeHandler(file_handler)
        file_handler.close()

    pack_json = written.json_path.read_text()
    html = written.html_path.read_text()
    cli_pack = (tmp_path / "cli-pack" / "credit-v1.evidence.json").read_text()
    outputs = {
        "json": pack_json,
        "html": html,
        "cli pack": cli_pack,
        "log file": log_file.read_text(),
        "caplog": caplog.text,
        "records": "\n".join(r.getMessage() for r in caplog.records),
        "cli": "\n".join(o.out + o.err for o in cli_outputs),
    }
    for where, text in outputs.items():
        assert SECRET not in text, where
        assert SECRET[8:] not in text, where
    assert "backend call failed" in caplog.text
    assert "401 from the registry" in caplog.text
    inserts = [m for m in (r.getMessage() for r in caplog.records) if "INSERT INTO policy_exc" in m]
    assert inserts
    assert all(REDACTED in m for m in inserts[1:])
    pack = json.loads(pack_json)
    environment = pack["environment"]
    assert environment["backend_settings"] == {"api_token": REDACTED}
    assert environment["backend_description"]["tracking_uri"] == "postgresql://svc:***@db:5432/ml"
    [exception] = pack["exceptions"]
    assert exception["justification"] == f"vendor outage; temporary key {REDACTED} rotates Friday"
    redacted = [e for e in pack["audit"]["events"] if not e["link_verifiable"]]
    assert [e["action"] for e in redacted] == ["policy.exception"]
    png = base64.b64decode(re.search(r"base64,([A-Za-z0-9+/=]+)", html).group(1))  # type: ignore[union-attr]
    assert png.startswith(b"\x89PNG")


def test_redactor_rules() -> None:
    redactor = Redactor(["hunter2-long-enough"])
    assert redactor.url("postgresql+psycopg://mintaka:pa55@db/mintaka") == (
        "postgresql+psycopg://mintaka:***@db/mintaka"
    )
    assert redactor.text("password=pa55 and more") == f"password={REDACTED} and more"
    assert redactor.text("said hunter2-long-enough twice") == f"said {REDACTED} twice"
    assert redactor.text("AKIAABCDEFGHIJKLMNOP") == REDACTED
    assert redactor.value({"client_secret": "x", "region": "eu", "nested": {"api_key": "y"}}) == {
        "client_secret": REDACTED,
        "region": "eu",
        "nested": {"api_key": REDACTED},
    }
    kept = "model-risk approver-holds-role sha256:0123abcd risk-tier-is-high-enough-here"
    assert redactor.text(kept) == kept
    assert redactor.value({"key": "dataset:ds-1"}) == {"key": "dataset:ds-1"}


def test_a_monitor_on_the_model_turns_the_monitoring_gaps_into_met_controls(
    governed: Platform, make_servable: MakeArtifact
) -> None:
    from mintaka.domain.monitoring import MonitorSpec, Signal, SignalKind

    monitor_id = governed.monitoring.add_monitor(
        MonitorSpec(
            endpoint="scoring",
            model="credit",
            signals=[
                Signal(
                    name="errors",
                    kind=SignalKind.TELEMETRY,
                    metric="error_rate",
                    threshold=0.05,
                    owner="oncall",
                    runbook_url="https://runbooks.example/scoring",
                )
            ],
        )
    )
    pack = build_pack(governed, "credit:1")
    assert pack["monitoring"]["status"] == "monitored"
    assert [m["id"] for m in pack["monitoring"]["monitors"]] == [monitor_id]
    results = {r["control"]: r for r in pack["controls"]["results"]}
    for monitored in ("Art. 72", "MEASURE 2.4", "V. Ongoing monitoring"):
        assert results[monitored]["status"] == "met"
        assert results[monitored]["evidence"] == [monitor_id]

    # The monitor watches the endpoint serving v1, not a version that never served there.
    v2 = governed.register_model("credit", make_servable(b"v2"), flavor="pyfunc", tier="high")
    other = build_pack(governed, v2.ref)
    assert other["monitoring"]["status"] == "no monitors configured"
    assert other["monitoring"]["monitors"] == []
    results = {r["control"]: r for r in other["controls"]["results"]}
    assert results["Art. 72"]["status"] == "gap"


def test_production_aliases_are_judged_by_the_policy_in_force_at_each_instant(
    governed: Platform, home: Path
) -> None:
    first = governed.governance.policy.digest
    governed.clock.advance(days=1)  # type: ignore[attr-defined]  # a ManualClock
    policy = home / "policy.toml"
    policy.write_text(
        policy.read_text().replace(
            'production_aliases = ["champion", "production"]', 'production_aliases = ["production"]'
        )
    )
    governed.governance.reload_policy()
    # Nothing was done under the new policy yet: at the pack's instant the old one was in force.
    before = build_pack(governed, "credit:1")
    assert before["policy"]["production_aliases"] == ["champion", "production"]
    assert before["policy"]["production_aliases_policy"] == first
    assert before["inventory"]["production_aliases"] == ["champion"]

    governed.set_alias("credit", "production", 1)
    pack = build_pack(governed, "credit:1")
    second = governed.governance.policy.digest
    assert pack["policy"]["production_aliases"] == ["production"]
    assert pack["policy"]["production_aliases_policy"] == second
    assert pack["inventory"]["production_aliases"] == ["production"]
    assert [(a["digest"], a["production_aliases"]) for a in pack["policy"]["activations"]] == [
        (first, ["champion", "production"]),
        (second, ["production"]),
    ]
    moves = {
        e["subject"]: e["production_alias"]
        for e in pack["audit"]["events"]
        if e["action"] == "model.alias.set"
    }
    assert moves == {"credit@champion": True, "credit@production": True}
    assert pack["audit"]["chain"]["verified"] is True


def _steps(pack: dict[str, Any]) -> list[tuple[int, str, str, bool]]:
    return [
        (e["incarnation"], d["event"], d["status"], d["version_live"])
        for e in pack["deployments"]
        for d in e["history"]
    ]


def test_a_killed_endpoint_is_not_live_until_it_is_released(
    governed: Platform, as_: Callable[[str], Platform]
) -> None:
    governed.clock.advance(days=1)  # type: ignore[attr-defined]  # a ManualClock
    governed.serving.kill("scoring")  # nothing older to go back to: the switch is pulled
    assert _steps(build_pack(governed, "credit:1")) == [
        (1, "endpoint.create", "in_service", True),
        (1, "endpoint.kill", "killed", False),
    ]
    as_("rita").serving.unkill("scoring")
    pack = build_pack(governed, "credit:1")
    assert _steps(pack)[-1] == (1, "endpoint.unkill", "in_service", True)
    killed = pack["deployments"][0]["history"][1]["id"]
    assert killed not in {
        d["id"] for e in pack["deployments"] for d in e["history"] if d["version_live"]
    }


def test_the_serving_history_and_inventory_at_agree_on_each_status(
    governed: Platform, as_: Callable[[str], Platform]
) -> None:
    """The pack's serving history and ``inventory --at`` replay an endpoint's status alike."""
    from mintaka.governance.inventory import production_at

    for act in (
        lambda: governed.serving.kill("scoring"),
        lambda: as_("rita").serving.unkill("scoring"),
        lambda: governed.serving.delete_endpoint("scoring"),
    ):
        governed.clock.advance(days=1)  # type: ignore[attr-defined]  # a ManualClock
        act()
    [served] = build_pack(governed, "credit:1")["deployments"]
    steps = [(d["at"], d["status"]) for d in served["history"]]
    assert [status for _, status in steps] == ["in_service", "killed", "in_service", "deleted"]
    for at, status in steps:
        [state] = production_at(governed, datetime.fromisoformat(at)).endpoints
        assert state.status == status


def test_an_endpoint_made_again_under_the_same_name_keeps_a_history_of_its_own(
    governed: Platform, as_: Callable[[str], Platform], make_servable: MakeArtifact
) -> None:
    governed.clock.advance(days=1)  # type: ignore[attr-defined]  # a ManualClock
    governed.serving.delete_endpoint("scoring")
    governed.clock.advance(days=1)  # type: ignore[attr-defined]
    v2 = governed.register_model(
        "credit", make_servable(b"v2"), flavor="pyfunc", metrics={"auc": 0.92}
    )
    governed.governance.set_model_card(v2.ref, **CARD)
    for approver in ("rita", "raj"):
        as_(approver).governance.approve(v2.ref)
    governed.serving.create_endpoint("scoring", v2.ref, route="blue")

    new = build_pack(governed, v2.ref)
    endpoint_events = [e for e in new["audit"]["events"] if e["subject"] == "scoring"]
    assert [e["action"] for e in endpoint_events] == ["endpoint.create"]
    assert endpoint_events[0]["details"]["routes"] == {"blue": "credit:2"}
    served = {e["details"]["decision"]["id"] for e in endpoint_events}
    assert {d["id"] for d in new["policy_decisions"] if d["subject"] == "scoring"} == served
    assert _steps(new) == [(2, "endpoint.create", "in_service", True)]
    old = build_pack(governed, "credit:1")
    assert "credit:2" not in json.dumps(old["deployments"])
    assert _steps(old) == [
        (1, "endpoint.create", "in_service", True),
        (1, "endpoint.delete", "deleted", False),
    ]


def test_controls_and_counted_approvals_follow_the_policy_in_force_at_the_pack(
    governed: Platform, home: Path, make_servable: MakeArtifact
) -> None:
    """Renaming the approvers' role and asking one approval more changes nothing of a pack
    stated as of an instant the old policy judged; once Mintaka acts under the new policy, the
    pack shows its controls and stops counting approvals given in the old role."""
    first = governed.governance.policy.digest
    governed.clock.advance(days=1)  # type: ignore[attr-defined]  # a ManualClock
    policy = home / "policy.toml"
    policy.write_text(
        policy.read_text()
        .replace('["model-risk"]', '["validation"]')
        .replace("approvals = 2", "approvals = 3", 1)
    )
    governed.governance.reload_policy()
    second = governed.governance.policy.digest

    before = build_pack(governed, "credit:1")
    assert before["policy"]["digest"] == first
    assert before["policy"]["controls"]["approvals"] == 2
    assert before["policy"]["controls"]["approver_roles"] == ["model-risk"]
    assert [a["counts"] for a in before["approvals"]] == [True, True]
    assert before["inventory"]["approvals"] == 2
    assert before["inventory"]["overdue"] is False
    results = {r["control"]: r["status"] for r in before["controls"]["results"]}
    assert results["Art. 14"] == "met"

    governed.register_model(
        "churn", make_servable(b"c1"), flavor="pyfunc", tier="low"
    )  # acts under the new one
    after = build_pack(governed, "credit:1")
    assert after["policy"]["digest"] == second
    assert after["policy"]["controls"]["approvals"] == 3
    assert [a["counts"] for a in after["approvals"]] == [False, False]
    assert (after["inventory"]["approvals"], after["inventory"]["approvals_total"]) == (0, 2)
    assert after["inventory"]["overdue"] is True


def test_approvals_before_the_head_in_the_chain_count_with_the_clock_stepped_back(
    governed: Platform,
) -> None:
    """Approvals recorded before the pack's head count as of it, even when the clock stepped
    back since and stamped the head earlier than they are."""
    governed.clock.advance(hours=-2)  # type: ignore[attr-defined]  # a ManualClock
    governed.set_alias("credit", "challenger", 1)  # the head, stamped before the approvals

    pack = build_pack(governed, "credit:1")
    assert pack["as_of"]["at"] < min(a["at"] for a in pack["approvals"])
    assert {a["approver"]: a["counts"] for a in pack["approvals"]} == {"rita": True, "raj": True}
    assert (pack["inventory"]["approvals"], pack["inventory"]["overdue"]) == (2, False)
    results = {r["control"]: r["status"] for r in pack["controls"]["results"]}
    assert results["Art. 14"] == "met"


T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def open_with(home: Path) -> Iterator[Callable[[str, ManualClock], Platform]]:
    """Open the home as a given identity with a clock of its own (hosts whose clocks differ
    sharing one store); closed at the end of the test."""
    opened: list[Platform] = []

    def open_as(actor: str, clock: ManualClock) -> Platform:
        opened.append(Platform(home, actor=actor, clock=clock, ids=IdFactory(len(opened) + 1)))
        return opened[-1]

    yield open_as
    for plat in opened:
        plat.close()


def _narrow_production_aliases(home: Path) -> None:
    policy = home / "policy.toml"
    policy.write_text(policy.read_text().replace('["champion", "production"]', '["champion"]', 1))


def test_a_pack_and_its_alias_moves_follow_chain_order_not_skewed_clocks(
    home: Path,
    open_with: Callable[[str, ManualClock], Platform],
    make_servable: MakeArtifact,
) -> None:
    """A policy activated by a host whose clock runs ahead is in force for every later event
    of the chain, even one another host stamped earlier."""
    slow, fast = ManualClock(T0), ManualClock(T0 + timedelta(minutes=10))
    open_with("dana", slow).register_model(
        "credit", make_servable(b"v1"), flavor="pyfunc", tier="low"
    )
    _narrow_production_aliases(home)
    ops = open_with("ops", fast)
    ops.register_model("churn", make_servable(b"c1"), flavor="pyfunc", tier="low")
    narrowed = ops.governance.policy.digest
    slow.advance(seconds=5)
    lee = open_with("lee", slow)
    lee.set_alias("credit", "production", 1)  # no production alias under the narrowed policy

    pack = build_pack(lee, "credit:1")
    [move] = [e for e in pack["audit"]["events"] if e["action"] == "model.alias.set"]
    assert pack["policy"]["digest"] == narrowed
    assert pack["policy"]["production_aliases_policy"] == narrowed
    assert move["production_alias"] is False


def test_an_alias_move_is_judged_by_the_policy_it_was_made_under_at_a_shared_instant(
    home: Path,
    open_with: Callable[[str, ManualClock], Platform],
    make_servable: MakeArtifact,
) -> None:
    """A promotion and the activation of another policy right after it, at the same instant:
    the promotion was gated under the policy before, which made ``production`` a production
    alias."""
    clock = ManualClock(T0)
    dana = open_with("dana", clock)
    version = dana.register_model("credit", make_servable(b"v1"), flavor="pyfunc", tier="low")
    dana.governance.set_model_card(version.ref, **CARD)
    clock.advance(minutes=1)
    dana.set_alias("credit", "production", 1)
    _narrow_production_aliases(home)
    open_with("ops", clock).register_model(
        "churn", make_servable(b"c1"), flavor="pyfunc", tier="low"
    )

    pack = build_pack(dana, "credit:1")
    [move] = [e for e in pack["audit"]["events"] if e["action"] == "model.alias.set"]
    assert move["details"]["decision"]["allowed"] is True
    assert move["production_alias"] is True


def test_a_pack_says_when_the_policy_in_force_at_its_instant_cannot_be_read(
    governed: Platform, home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The policy recorded as in force at the pack's instant has a setting this Mintaka does
    not know: the pack is judged by today's policy and says so, naming the policy it could not
    read and why, in the JSON, on the rendered page and on the command line."""
    current = governed.governance.policy
    with governed.store.write() as conn:
        governed.audit.append(
            conn,
            at=governed._now(),
            actor="mintaka",
            action="policy.activate",
            subject="sha256:later",
            details={
                "digest": "sha256:later",
                "source": "policy.toml",
                "version": "later/1",
                "production_aliases": ["champion"],
                "policy": {"version": "later/1", "tiers": {}, "unknown": True},
            },
        )
    pack = build_pack(governed, "credit:1")
    assert pack["policy"]["digest"] == current.digest
    unread = pack["policy"]["unreadable"]
    assert (unread["digest"], unread["version"], unread["judged_by"]) == (
        "sha256:later",
        "later/1",
        current.digest,
    )
    assert "unknown" in unread["reason"]
    assert unread["id"] == pack["policy"]["activations"][-1]["id"]
    written = export_evidence(governed, "credit:1", tmp_path / "pack")
    page = written.html_path.read_text()
    assert "Policy not read" in page
    assert "later/1" in page
    assert written.unreadable_policy == unread["detail"]
    code = 0
    try:
        main(["--home", str(home), "evidence", "export", "credit:1", "--out", str(tmp_path)])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr().out
    assert code == 0
    assert "could not be read" in " ".join(out.split())


def test_a_pack_under_a_readable_recorded_policy_says_nothing_is_unread(
    governed: Platform, tmp_path: Path
) -> None:
    pack = build_pack(governed, "credit:1")
    assert pack["policy"]["unreadable"] is None
    assert [a["unreadable"] for a in pack["policy"]["activations"]] == [""]
    assert (
        "Policy not read"
        not in export_evidence(governed, "credit:1", tmp_path).html_path.read_text()
    )


KEYED_SECRETS = {
    "storage_key": "Zq7storagekeyvalue01",
    "authorization": "Basic dXNlcjpodW50ZXIyMjI=",
    "conn_str": "Server=x;Pwd=Zq7connpwd99;",
    "private_key": "Zq7privkeyvalue0000",
}


def test_secrets_under_secret_keys_are_redacted_in_the_canonical_bytes_too(
    as_: Callable[[str], Platform], tmp_path: Path, make_servable: MakeArtifact
) -> None:
    dana = as_("dana")
    v1 = dana.register_model(
        "credit", make_servable(b"v1"), flavor="pyfunc", tier="high", tags=KEYED_SECRETS
    )
    dana.governance.set_model_card(v1.ref, **CARD)
    dana.set_tags("credit", 1, {**KEYED_SECRETS, "storage_key": "Zq7storagekeyvalue02"})
    as_("rita").governance.approve(v1.ref, comment="ok")
    written = export_evidence(dana, "credit:1", tmp_path / "pack")
    text = written.json_path.read_text() + written.html_path.read_text()
    for leaked in ("Zq7storagekeyvalue0", "dXNlcjpodW50ZXIyMjI", "Zq7connpwd99", "Zq7privkey"):
        assert leaked not in text
    events = json.loads(written.json_path.read_text())["audit"]["events"]
    [tagged] = [e for e in events if e["action"] == "model.tags.set"]
    assert not tagged["link_verifiable"]
    assert json.loads(tagged["canonical"])["details"] == tagged["details"]
    assert set(tagged["details"]["tags"].values()) == {REDACTED}
    assert all(e["link_verifiable"] for e in events if e is not tagged)


def test_free_text_assignments_follow_the_secret_key_rule() -> None:
    redactor = Redactor()
    assert redactor.text("storage_key=Zq7storage01 region=eu") == (
        f"storage_key={REDACTED} region=eu"
    )
    assert redactor.text("conn_str: abc123 and private-key=pk0001") == (
        f"conn_str: {REDACTED} and private-key={REDACTED}"
    )
    assert redactor.text("Authorization: Basic dXNlcjpodW50ZXIy") == (
        f"Authorization: Basic {REDACTED}"
    )
    kept = "key=dataset:ds-1 storage_key_id=7 monkey=3"
    assert redactor.text(kept) == kept


def test_a_pack_is_read_from_one_snapshot_of_the_store(
    as_: Callable[[str], Platform], make_servable: MakeArtifact
) -> None:
    dana, rita = as_("dana"), as_("rita")
    version = dana.register_model("credit", make_servable(b"v1"), flavor="pyfunc", tier="high")
    dana.governance.set_model_card(version.ref, **CARD)
    approved: list[str] = []

    def approve_once_the_head_is_read(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "FROM audit_head" in statement and not approved:
            approved.append("racing")
            racer = threading.Thread(
                target=lambda: approved.append(rita.governance.approve(version.ref).id)
            )
            racer.start()
            racer.join()

    sa_event.listen(dana.store.engine, "after_cursor_execute", approve_once_the_head_is_read)
    try:
        pack = build_pack(dana, version.ref)
    finally:
        sa_event.remove(dana.store.engine, "after_cursor_execute", approve_once_the_head_is_read)
    assert len(approved) == 2  # rita's approval committed while the pack was read
    assert pack["approvals"] == []
    assert pack["inventory"]["approvals_total"] == 0
    assert max(e["seq"] for e in pack["audit"]["events"]) <= pack["as_of"]["audit_seq"]
    assert [a.id for a in dana.governance.approvals(version)] == approved[1:]
