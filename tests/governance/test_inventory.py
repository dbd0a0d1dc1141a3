from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from artifact_kit import MakeArtifact
from cli_kit import cli
from governance_kit import APPROVERS, CARD
from sqlalchemy import event

from mintaka import ManualClock, Platform, ValidationError
from mintaka.governance.inventory import inventory, parse_instant, production_at

ALL = 'allowed_strategies = ["direct", "canary", "blue_green", "shadow"]'
DAY0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def home(governed_home: Callable[[str], Path]) -> Path:
    home = governed_home(APPROVERS)
    policy = home / "policy.toml"
    # Adding a route at weight 0 is judged as a direct rollout; let the high tier do that.
    text = policy.read_text().replace(
        'allowed_strategies = ["canary", "blue_green", "shadow"]', ALL, 1
    )
    policy.write_text(text)
    return home


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(DAY0)


def _approved(as_: Callable[[str], Platform], ref: str) -> None:
    as_("dana").governance.set_model_card(ref, **CARD)
    for approver in ("rita", "raj"):
        as_(approver).governance.approve(ref)


@pytest.fixture
def history(
    as_: Callable[[str], Platform], clock: ManualClock, make_servable: MakeArtifact
) -> Platform:
    """credit:1 live from day 0, a 10% canary of credit:2 on day 10, credit:2 alone on day 20;
    churn:1 (low tier) registered and never deployed."""
    dana = as_("dana")
    v1 = dana.register_model(
        "credit", make_servable(b"v1"), flavor="pyfunc", tier="high", metrics={"auc": 0.91}
    )
    _approved(as_, v1.ref)
    dana.serving.create_endpoint("scoring", v1.ref, route="blue")
    dana.set_alias("credit", "champion", 1)
    dana.register_model("churn", make_servable(b"c1"), flavor="pyfunc", tier="low", owner="omar")
    clock.advance(days=10)
    v2 = dana.register_model("credit", make_servable(b"v2"), flavor="pyfunc", metrics={"auc": 0.93})
    _approved(as_, v2.ref)
    dana.serving.deploy("scoring", v2.ref, route="green")
    dana.serving._set_traffic("scoring", {"blue": 90, "green": 10}, strategy="canary")
    clock.advance(days=10)
    dana.serving._set_traffic("scoring", {"blue": 0, "green": 100}, strategy="canary")
    dana.set_alias("credit", "champion", 2)
    return dana


def test_inventory_lists_every_version_with_tier_stage_owner_and_traffic(
    history: Platform,
) -> None:
    entries = {e.ref: e for e in inventory(history)}
    assert list(entries) == ["churn:1", "credit:1", "credit:2"]
    v1, v2, churn = entries["credit:1"], entries["credit:2"], entries["churn:1"]
    assert (v2.tier.value, v2.stage.value, v2.owner, v2.backend) == (
        "high",
        "none",
        "dana",
        "local",
    )
    assert v2.aliases == ("champion",)
    assert v2.production_aliases == ("champion",)
    assert v2.live
    assert v2.endpoints == ["scoring"]
    assert not v1.live
    assert v1.endpoints == []
    assert [s.route for s in v1.serving] == ["blue"]
    assert v2.approvals == 2
    assert v2.approved_at == DAY0 + timedelta(days=10)
    assert v2.revalidation_due == DAY0 + timedelta(days=190)
    assert not churn.in_use
    assert churn.approved_at is None
    assert not churn.overdue


def test_inventory_filters(history: Platform) -> None:
    assert [e.ref for e in inventory(history, tier="low")] == ["churn:1"]
    assert [e.ref for e in inventory(history, owner="omar")] == ["churn:1"]
    assert [e.ref for e in inventory(history, backend="local")] == [
        "churn:1",
        "credit:1",
        "credit:2",
    ]
    assert inventory(history, backend="sagemaker") == []
    assert inventory(history, stage="production") == []
    with pytest.raises(ValidationError, match="risk tier"):
        inventory(history, tier="extreme")


def test_revalidation_is_overdue_only_for_versions_in_use(
    history: Platform, clock: ManualClock
) -> None:
    assert inventory(history, overdue=True) == []
    clock.advance(days=171)  # credit:2 was approved 191 days ago; the high tier allows 180
    assert [e.ref for e in inventory(history, overdue=True)] == ["credit:2"]


def test_exception_filter_shows_exceptions_in_force(
    history: Platform, as_: Callable[[str], Platform], clock: ManualClock
) -> None:
    granted = as_("rita").governance.grant_exception(
        "credit:1",
        "approvals",
        requester="dana",
        justification="pilot",
        expires_at=clock.now() + timedelta(days=3),
    )
    [entry] = inventory(history, with_exceptions=True)
    assert entry.ref == "credit:1"
    assert [(x.id, x.control) for x in entry.exceptions] == [(granted.id, "approvals")]
    clock.advance(days=4)
    assert inventory(history, with_exceptions=True) == []


def test_the_approvals_column_counts_only_approvals_the_promotion_gate_counts(
    history: Platform, home: Path, clock: ManualClock
) -> None:
    """raj loses the approver role: his sign-off stays on record (``approvals_total``) but no
    longer counts, so credit:2 shows one counting approval of the two its tier requires, as the
    gate would; approvals that grew older than ``revalidation_days`` stop counting too."""
    policy = home / "policy.toml"
    policy.write_text(policy.read_text().replace('"raj" = ["model-risk"]', '"raj" = []', 1))
    history.governance.reload_policy()
    [v2] = [e for e in inventory(history) if e.ref == "credit:2"]
    assert (v2.approvals, v2.approvals_total, v2.overdue) == (1, 2, True)
    unmet = [
        c
        for c in history.governance.production_controls(history.get_model_version("credit:2"))
        if not c.met
    ]
    assert [c.detail.split(" of ")[0] for c in unmet if c.name == "approvals"] == ["1"]
    clock.advance(days=181)
    [v2] = [e for e in inventory(history) if e.ref == "credit:2"]
    assert (v2.approvals, v2.approvals_total) == (0, 2)


def test_what_was_in_production_at_an_instant(history: Platform) -> None:
    assert production_at(history, DAY0 - timedelta(seconds=1)).endpoints == ()
    early = production_at(history, DAY0 + timedelta(days=5))
    assert early.live_versions == ["credit:1"]
    assert [(a.model, a.alias, a.version) for a in early.aliases] == [("credit", "champion", 1)]
    canary = production_at(history, DAY0 + timedelta(days=15))
    [scoring] = canary.endpoints
    assert {(v.model, v.version, v.weight) for v in scoring.live} == {
        ("credit", 1, 90),
        ("credit", 2, 10),
    }
    assert scoring.since == DAY0 + timedelta(days=10)
    late = production_at(history, DAY0 + timedelta(days=20))  # changes at the instant count
    assert late.live_versions == ["credit:2"]
    assert [a.version for a in late.aliases] == [2]


def test_kill_switch_and_deletion_take_versions_out_of_production(
    history: Platform, clock: ManualClock
) -> None:
    clock.advance(days=1)
    history.serving.kill("scoring", reason="bad outputs")  # back to the last approved map
    after_kill = production_at(history, clock.now())
    assert after_kill.live_versions == ["credit:1"]
    clock.advance(days=1)
    history.serving.delete_endpoint("scoring")
    gone = production_at(history, clock.now())
    assert [(e.endpoint, e.status, e.live) for e in gone.endpoints] == [("scoring", "deleted", ())]
    assert production_at(history, clock.now() - timedelta(days=1)).live_versions == ["credit:1"]


def test_archiving_removes_production_aliases_from_history(
    as_: Callable[[str], Platform], clock: ManualClock, make_servable: MakeArtifact
) -> None:
    dana = as_("dana")
    low = dana.register_model("churn", make_servable(b"c"), flavor="pyfunc", tier="low")
    dana.governance.set_model_card(low.ref, intended_use="x", owner="dana")
    dana.set_alias("churn", "production", 1)
    dana.set_stage("churn", 1, "production")
    held = production_at(dana, clock.now())
    assert [(a.model, a.alias) for a in held.aliases] == [("churn", "production")]
    assert [(s.model, s.version) for s in held.production_stage] == [("churn", 1)]
    clock.advance(hours=1)
    dana.archive_version("churn", 1)
    after = production_at(dana, clock.now())
    assert after.aliases == ()
    assert after.production_stage == ()


def test_instants_parse_as_iso_8601() -> None:
    assert parse_instant("2026-03-31") == datetime(2026, 3, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert parse_instant("2026-03-31T12:00Z") == datetime(2026, 3, 31, 12, tzinfo=UTC)
    assert parse_instant("2026-03-31T12:00") == datetime(2026, 3, 31, 12, tzinfo=UTC)
    with pytest.raises(ValidationError, match="ISO 8601"):
        parse_instant("last tuesday")


def test_inventory_cli_table_json_filters_and_at(
    history: Platform, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--home", str(home), "--as", "dana"]
    code, out, err = cli(capsys, *base, "inventory", "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert [e["ref"] for e in listed] == ["churn:1", "credit:1", "credit:2"]
    assert listed[2]["live"] is True
    code, out, _ = cli(capsys, *base, "inventory", "--tier", "high", "--json")
    assert [e["ref"] for e in json.loads(out)] == ["credit:1", "credit:2"]
    code, out, _ = cli(capsys, *base, "inventory")
    assert code == 0
    assert "credit:2" in out
    assert "approvals" in out
    assert [(e["approvals"], e["approvals_total"]) for e in listed[1:]] == [(0, 2), (0, 2)]
    assert out.count("0 (2 not counted)") == 2
    assert "churn:1" in out
    code, out, _ = cli(capsys, *base, "inventory", "--at", "2026-01-15", "--json")
    snapshot = json.loads(out)
    assert {(v["model"], v["version"]) for v in snapshot["endpoints"][0]["live"]} == {
        ("credit", 1),
        ("credit", 2),
    }
    code, out, _ = cli(capsys, *base, "inventory", "--at", "2026-01-15")
    assert code == 0
    assert "scoring" in out
    assert "10%" in out
    code, _, err = cli(capsys, *base, "inventory", "--at", "soon")
    assert code == 1
    assert "ISO 8601" in err


def test_governance_cli_commands(
    as_: Callable[[str], Platform],
    home: Path,
    make_servable: MakeArtifact,
    capsys: pytest.CaptureFixture[str],
) -> None:
    as_("dana").register_model(
        "credit", make_servable(b"v1"), flavor="pyfunc", tier="high", metrics={"auc": 0.9}
    )
    dana = ["--home", str(home), "--as", "dana"]
    code, out, err = cli(
        capsys, *dana, "card", "set", "credit:1", "intended_use=rank", "limitations=none known"
    )
    assert code == 0, err
    code, out, _ = cli(capsys, *dana, "card", "show", "credit:1", "--json")
    assert json.loads(out) == {"intended_use": "rank", "limitations": "none known"}
    for unknown in ("colour=blue", "model=other"):  # `model` names no field either
        code, out, err = cli(capsys, *dana, "card", "set", "credit:1", unknown)
        assert code == 1
        assert "unknown model-card fields" in err
        assert "Traceback" not in out + err
    code, _, err = cli(capsys, *dana, "approve", "credit:1")
    assert code == 1
    assert "approver-is-not-developer" in err
    code, out, err = cli(
        capsys, "--home", str(home), "--as", "rita", "approve", "credit:1", "--comment", "ok"
    )
    assert code == 0, err
    assert "approved credit:1 as rita (model-risk)" in out
    rita = ["--home", str(home), "--as", "rita"]
    code, out, err = cli(
        capsys,
        *rita,
        "exceptions",
        "grant",
        "credit:1",
        "documentation",
        "--requester",
        "dana",
        "--justification",
        "pilot RISK-12",
        "--expires",
        "2099-01-01T00:00:00+00:00",
        "--json",
    )
    assert code == 0, err
    granted = json.loads(out)
    assert granted["control"] == "documentation"
    code, out, _ = cli(capsys, *rita, "exceptions", "list", "credit:1", "--json")
    assert [e["id"] for e in json.loads(out)] == [granted["id"]]
    code, out, _ = cli(capsys, *rita, "exceptions", "list", "credit:1")
    assert granted["id"] in out
    code, _, err = cli(
        capsys,
        *rita,
        "exceptions",
        "grant",
        "credit:1",
        "approvals",
        "--requester",
        "dana",
        "--justification",
        "x",
        "--expires",
        "2099-01-01",
    )
    assert code == 1
    assert "time zone" in err
    code, out, _ = cli(capsys, *rita, "policy", "show", "--json")
    shown = json.loads(out)
    assert shown["version"] == "mintaka-default/1"
    assert shown["digest"].startswith("sha256:")
    code, out, _ = cli(capsys, *rita, "policy", "show")
    assert "mintaka-default/1" in out
    assert "medium" in out
    code, out, _ = cli(capsys, *rita, "decisions", "list", "credit:1", "--json")
    actions = [(d["action"], d["allowed"]) for d in json.loads(out)]
    assert ("model.approve", False) in actions
    assert ("model.approve", True) in actions
    code, out, _ = cli(capsys, *rita, "decisions", "list")
    assert code == 0
    assert "DENY" in out


def _production_aliases(home: Path, aliases: str) -> None:
    """Rewrite the home's policy with ``aliases`` (TOML list items) as its production aliases."""
    policy = home / "policy.toml"
    lines = policy.read_text().splitlines(keepends=True)
    [at] = [i for i, line in enumerate(lines) if line.startswith("production_aliases =")]
    lines[at] = f"production_aliases = [{aliases}]\n"
    policy.write_text("".join(lines))


@pytest.fixture
def policy_changed(
    as_: Callable[[str], Platform], home: Path, clock: ManualClock, make_servable: MakeArtifact
) -> Platform:
    """``prod`` is a production alias from day 0, when churn:1 takes it, until day 10, when the
    policy drops it and Mintaka next acts under the new policy."""
    _production_aliases(home, '"champion", "prod"')
    dana = as_("dana")
    low = dana.register_model("churn", make_servable(b"c"), flavor="pyfunc", tier="low")
    dana.governance.set_model_card(low.ref, intended_use="x", owner="dana")
    dana.set_alias("churn", "prod", 1)
    clock.advance(days=10)
    _production_aliases(home, '"champion"')
    today = as_("dana")
    today.register_model("fraud", make_servable(b"f"), flavor="pyfunc", tier="low")
    return today


def test_each_instant_is_judged_by_the_production_aliases_of_the_policy_then(
    policy_changed: Platform,
) -> None:
    march = production_at(policy_changed, DAY0 + timedelta(days=5))
    assert [(a.model, a.alias, a.version) for a in march.aliases] == [("churn", "prod", 1)]
    assert march.production_aliases == ("champion", "prod")
    now = production_at(policy_changed, DAY0 + timedelta(days=15))
    assert now.production_aliases == ("champion",)
    assert now.policy == policy_changed.governance.policy.digest
    assert now.aliases == ()
    assert march.policy != now.policy
    # Before the first recorded policy, the earliest recorded one judges.
    before = production_at(policy_changed, DAY0 - timedelta(days=1))
    assert before.policy == march.policy


def test_inventory_at_reports_the_production_aliases_of_the_policy_then(
    policy_changed: Platform, home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--home", str(home), "--as", "dana", "inventory", "--at"]
    code, out, err = cli(capsys, *base, "2026-01-05", "--json")
    assert code == 0, err
    snapshot = json.loads(out)
    assert [(a["model"], a["alias"]) for a in snapshot["aliases"]] == [("churn", "prod")]
    assert snapshot["production_aliases"] == ["champion", "prod"]
    code, out, err = cli(capsys, *base, "2026-01-05")
    assert code == 0, err
    assert "production aliases then: champion, prod" in out
    code, out, _ = cli(capsys, *base, "2026-01-15", "--json")
    assert json.loads(out)["aliases"] == []


def test_a_store_without_recorded_policies_is_judged_by_the_policy_in_force(
    as_: Callable[[str], Platform], clock: ManualClock
) -> None:
    dana = as_("dana")
    with dana.store.write() as conn:  # an alias move recorded before policies were recorded
        dana.audit.append(
            conn,
            at=clock.now(),
            actor="dana",
            action="model.alias.set",
            subject="credit@champion",
            details={"version": 1, "previous": None},
        )
    snapshot = production_at(dana, clock.now())
    assert [(a.model, a.alias, a.version) for a in snapshot.aliases] == [("credit", "champion", 1)]
    assert snapshot.policy == dana.governance.policy.digest
    assert snapshot.production_aliases == ("champion", "production")


def test_an_alias_moved_after_the_policy_dropped_it_is_judged_by_the_new_policy(
    as_: Callable[[str], Platform], home: Path, clock: ManualClock, make_servable: MakeArtifact
) -> None:
    """Moving an alias the new policy does not count takes no decision, yet it is an act under
    that policy: the instant is judged by it, not by the last policy a decision named."""
    from mintaka.governance.evidence import build_pack

    _production_aliases(home, '"champion", "prod"')
    dana = as_("dana")
    dana.register_model("churn", make_servable(b"c1"), flavor="pyfunc", tier="low")
    dana.register_model("churn", make_servable(b"c2"), flavor="pyfunc", tier="low")
    dana.governance.set_model_card("churn:1", intended_use="x", owner="dana")
    dana.set_alias("churn", "prod", 1)
    clock.advance(days=10)
    _production_aliases(home, '"champion"')
    today = as_("dana")
    today.set_alias("churn", "prod", 2)  # no decision: "prod" no longer counts
    snapshot = production_at(today, clock.now())
    assert [e.in_use for e in inventory(today)] == [False, False]
    assert snapshot.production_aliases == ("champion",)
    assert snapshot.aliases == ()
    assert build_pack(today, "churn:2")["inventory"]["in_use"] is False
    clock.advance(days=1)
    _production_aliases(home, '"champion", "prod"')
    as_("dana").delete_alias("churn", "prod")  # deleting one is an act under the policy too
    assert production_at(today, clock.now()).production_aliases == ("champion", "prod")


def test_approved_at_is_the_latest_approval_the_gate_counts(
    history: Platform,
    home: Path,
    as_: Callable[[str], Platform],
    clock: ManualClock,
    make_servable: MakeArtifact,
) -> None:
    """ulla signs credit:2 off a day after rita and raj, then loses the approver role: her
    sign-off stays in ``approvals_total`` but no longer moves ``approved_at``, in the inventory
    nor in the evidence pack's inventory entry."""
    from mintaka.governance.evidence import build_pack

    policy = home / "policy.toml"
    clock.advance(days=1)
    policy.write_text(policy.read_text().replace("[roles]\n", '[roles]\n"ulla" = ["model-risk"]\n'))
    as_("ulla").governance.approve("credit:2")
    [v2] = [e for e in inventory(as_("dana")) if e.ref == "credit:2"]
    assert (v2.approvals, v2.approved_at) == (3, clock.now())
    policy.write_text(policy.read_text().replace('"ulla" = ["model-risk"]', '"ulla" = []', 1))
    history.governance.reload_policy()
    history.register_model(
        "churn", make_servable(b"c2"), flavor="pyfunc", tier="low"
    )  # acts under it
    [v2] = [e for e in inventory(history) if e.ref == "credit:2"]
    assert (v2.approvals, v2.approvals_total) == (2, 3)
    assert v2.approved_at == DAY0 + timedelta(days=10)
    packed = build_pack(history, "credit:2")["inventory"]
    assert (packed["approvals"], packed["approvals_total"]) == (2, 3)
    assert datetime.fromisoformat(packed["approved_at"]) == DAY0 + timedelta(days=10)
    clock.advance(days=200)  # past revalidation: the time stays, the due date tells it lapsed
    [v2] = [e for e in inventory(history) if e.ref == "credit:2"]
    assert (v2.approvals, v2.approved_at, v2.overdue) == (0, DAY0 + timedelta(days=10), True)


@pytest.mark.parametrize("versions", [2, 6])
def test_inventory_reads_the_audit_events_a_fixed_number_of_times(
    as_: Callable[[str], Platform], make_artifact: MakeArtifact, versions: int
) -> None:
    dana, rita = as_("dana"), as_("rita")
    for i in range(versions):
        version = dana.register_model(
            "credit", make_artifact(f"v{i}".encode()), tier="high", metrics={"auc": 0.91}
        )
        rita.governance.approve(version.ref)
    statements: list[str] = []

    def note(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(dana.store.engine, "before_cursor_execute", note)
    try:
        entries = inventory(dana)
    finally:
        event.remove(dana.store.engine, "before_cursor_execute", note)
    assert [e.approvals for e in entries] == [1] * versions
    assert sum("audit_events" in s for s in statements) <= 4


def test_exceptions_list_prints_a_justification_with_control_characters_escaped(
    home: Path,
    as_: Callable[[str], Platform],
    clock: ManualClock,
    make_servable: MakeArtifact,
    capsys: pytest.CaptureFixture[str],
) -> None:
    version = as_("dana").register_model("credit", make_servable(b"v1"), flavor="pyfunc")
    as_("rita").governance.grant_exception(
        version.ref,
        "documentation",
        requester="dana",
        justification="ok\x1b[2J\nexc-forged",
        expires_at=clock.now() + timedelta(days=7),
    )
    code, out, err = cli(
        capsys, "--home", str(home), "--as", "rita", "exceptions", "list", "credit:1"
    )
    assert code == 0, err
    assert "'ok\\x1b[2J\\nexc-forged'" in out
    assert "\x1b" not in out
    assert not any(line.strip(" │┃|").startswith("exc-forged") for line in out.splitlines())
