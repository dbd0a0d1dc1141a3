"""What adoption refuses or leaves out, and what sync reports and advises about adopted things."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from artifact_kit import MakeArtifact
from cli_kit import cli
from test_adoption import legacy_endpoint, write_legacy

from mintaka import ManualClock, Platform
from mintaka.domain.registry import ApprovalStatus
from mintaka.errors import Conflict, PolicyViolation, ValidationError
from mintaka.governance.policy import OPEN_POLICY

MONITOR = (
    'endpoint = "churn-api"\nmodel = "churn"\n\n[[signals]]\nname = "errors"\n'
    'kind = "telemetry"\nmetric = "{metric}"\nthreshold = 0.05\nwindow = "15m"\nowner = "oncall"\n'
)


def test_a_tier_below_the_models_is_refused_before_the_cloud_is_read(
    platform: Platform, tmp_path: Path
) -> None:
    write_legacy(platform, tmp_path)
    platform.migration.adopt_model("churn", reason="inherited", tier="high", versions=[1])
    with pytest.raises(PolicyViolation, match="tier-not-below-model"):
        platform.migration.adopt_model("churn", reason="inherited", tier="low", versions=[2])
    assert [v.version for v in platform.list_versions("churn")] == [1]
    adoption = platform.migration.adopt_model("churn", reason="inherited", versions=[2])
    assert [v.risk_tier.value for v in adoption.adopted] == ["high"]  # the model's, by default


def test_an_adopted_models_owner_is_trimmed_and_one_no_identity_spells_is_refused(
    platform: Platform, tmp_path: Path
) -> None:
    write_legacy(platform, tmp_path)
    with pytest.raises(ValidationError, match="owner"):
        platform.migration.adopt_model("churn", reason="inherited", owner="dana\u2066")
    assert platform.list_models() == []
    adoption = platform.migration.adopt_model("churn", reason="inherited", owner="dana\n")
    assert {v.owner for v in adoption.adopted} == {"dana"}
    assert platform.get_model("churn").owner == "dana"


def test_a_cloud_alias_mintaka_cannot_use_is_left_out_and_reported(
    platform: Platform, tmp_path: Path
) -> None:
    write_legacy(platform, tmp_path)
    with platform.backend.transactions.write() as conn:  # type: ignore[attr-defined]
        conn.exec_driver_sql(
            "INSERT INTO local_aliases (name, alias, version) VALUES ('churn', 'Prod_1', 2)"
        )
    adoption = platform.migration.adopt_model("churn", reason="inherited")
    assert adoption.adopted[1].aliases == ("champion",)
    [finding] = [f for f in adoption.findings if "Prod_1" in f]
    assert "rename it in the cloud" in finding
    [difference] = platform.sync()
    assert (difference.kind, difference.subject) == ("alias", "churn@Prod_1")
    assert (difference.recorded, difference.observed) == (None, 2)
    # Every alias the store holds can be shown and deleted.
    platform.delete_alias("churn", "champion")


def legacy_served(platform: Platform, tmp_path: Path, **adopt: Any) -> None:
    """The legacy churn model adopted (``adopt``: more arguments to ``adopt_model``), with the
    endpoint another tool made to serve it, not adopted yet."""
    write_legacy(platform, tmp_path)
    legacy_endpoint(platform)
    platform.migration.adopt_model("churn", reason="inherited", **adopt)


@pytest.fixture
def alice(home: Path, clock: ManualClock) -> Callable[[], Platform]:
    """Open the home as alice, afresh each time as each command does (close it after use)."""
    return lambda: Platform(home, clock=clock, actor="alice")


@pytest.fixture
def adopt_with_monitor(
    capsys: pytest.CaptureFixture[str], home: Path, tmp_path: Path
) -> Callable[[str], tuple[int, str]]:
    """Run ``mintaka adopt endpoint churn-api --monitor SPEC`` with the given spec text; the
    exit status and stderr on one line."""
    spec = tmp_path / "monitor.toml"

    def run(text: str) -> tuple[int, str]:
        spec.write_text(text)
        base = ["--home", str(home), "--as", "alice", "adopt", "endpoint", "churn-api"]
        code, _, err = cli(capsys, *base, "--reason", "r", "--monitor", str(spec))
        return code, " ".join(err.split())

    return run


def no_endpoint_adopted(alice: Callable[[], Platform]) -> bool:
    with alice() as platform:
        return platform.serving.list_endpoints() == []


def test_the_monitor_is_checked_before_the_endpoint_is_adopted_and_added_once(
    alice: Callable[[], Platform],
    adopt_with_monitor: Callable[[str], tuple[int, str]],
    tmp_path: Path,
) -> None:
    with alice() as platform:
        legacy_served(platform, tmp_path)
    code, err = adopt_with_monitor(MONITOR.format(metric="nope"))
    assert code == 1
    assert "telemetry signal 'errors' measures one of" in err
    assert no_endpoint_adopted(alice)
    for _ in range(2):
        code, err = adopt_with_monitor(MONITOR.format(metric="error_rate"))
        assert code == 0, err
    with alice() as platform:
        assert len(platform.monitoring.monitors("churn-api")) == 1
        assert [e.action for e in platform.audit.events()].count("monitor.add") == 1


DRIFT = (
    'endpoint = "churn-api"\nmodel = "churn"\n\n[[signals]]\nname = "drift"\nkind = "drift"\n'
    'metric = "{metric}"\nthreshold = 10\nwindow = "1d"\nowner = "oncall"\n'
)


def test_a_drift_monitor_the_served_versions_profile_refuses_is_refused_before_adoption(
    alice: Callable[[], Platform],
    adopt_with_monitor: Callable[[str], tuple[int, str]],
    tmp_path: Path,
) -> None:
    data = tmp_path / "train.csv"
    data.write_text("tenure,spend\n" + "".join(f"{i},{i * 2.5}\n" for i in range(200)))
    with alice() as platform:
        dataset = platform.register_dataset("churn-train", data)
        legacy_served(platform, tmp_path, dataset_ids=[dataset.id])
    code, err = adopt_with_monitor(DRIFT.format(metric="chi2_statistic"))
    assert code == 1
    assert f"the training data of the model serving churn-api ({dataset.id}) profiles no" in err
    assert no_endpoint_adopted(alice)
    code, err = adopt_with_monitor(DRIFT.format(metric="psi:tenure"))
    assert code == 0, err
    with alice() as platform:
        assert len(platform.monitoring.monitors("churn-api")) == 1


def test_a_monitor_whose_signal_name_is_on_record_is_refused_before_adoption(
    alice: Callable[[], Platform],
    adopt_with_monitor: Callable[[str], tuple[int, str]],
    tmp_path: Path,
) -> None:
    with alice() as platform:
        legacy_served(platform, tmp_path)
    code, err = adopt_with_monitor(MONITOR.format(metric="error_rate"))
    assert code == 0, err
    with alice() as platform:
        platform.serving.delete_endpoint("churn-api", reason="retired")  # its monitor stays
        legacy_endpoint(platform)  # made again in the cloud
    code, err = adopt_with_monitor(MONITOR.format(metric="error_rate").replace("0.05", "0.1"))
    assert code == 1
    assert "endpoint churn-api already has signal(s) ['errors']" in err
    assert no_endpoint_adopted(alice)
    with alice() as platform:
        assert len(platform.monitoring.monitors("churn-api")) == 1


def test_adding_the_same_monitor_twice_keeps_one(platform: Platform, tmp_path: Path) -> None:
    from mintaka.cli.monitoring import read_monitor_spec

    legacy_served(platform, tmp_path)
    platform.migration.adopt_endpoint("churn-api", reason="inherited")
    path = tmp_path / "monitor.toml"
    path.write_text(MONITOR.format(metric="error_rate"))
    spec = read_monitor_spec(path)
    first = platform.monitoring.add_monitor(spec)
    assert platform.monitoring.add_monitor(spec) == first
    stricter = spec.signals[0].model_copy(update={"threshold": 0.1})
    with pytest.raises(Conflict, match="already has signal"):  # a signal name is one ticket
        platform.monitoring.add_monitor(spec.model_copy(update={"signals": [stricter]}))
    renamed = stricter.model_copy(update={"name": f"{stricter.name}-strict"})
    assert platform.monitoring.add_monitor(spec.model_copy(update={"signals": [renamed]})) != first
    assert len(platform.monitoring.monitors("churn-api")) == 2


SIGN_OFF = OPEN_POLICY.read_text().replace(
    "[tiers.medium]", '[tiers.medium]\napprover_roles = ["model-risk"]'
)


def test_no_approval_status_is_compared_where_no_one_can_approve(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_legacy(platform, tmp_path)
    with platform.backend.transactions.write() as conn:  # type: ignore[attr-defined]
        conn.exec_driver_sql("UPDATE local_versions SET approval = 'approved' WHERE version = 1")
    # The open policy names no approver role: approving through Mintaka is impossible, so
    # neither adoption nor sync asks for it.
    adoption = platform.migration.adopt_model("churn", reason="inherited")
    assert not [f for f in adoption.findings if "approve" in f]
    platform.backend.set_approval("churn", 2, ApprovalStatus.APPROVED)  # type: ignore[attr-defined]
    assert platform.sync() == []

    policy = tmp_path / "sign-off.toml"
    policy.write_text(SIGN_OFF)
    monkeypatch.setenv("MINTAKA_POLICY", str(policy))
    platform.governance.reload_policy()
    differences = [(d.kind, d.subject, d.recorded, d.observed) for d in platform.sync()]
    assert differences == [
        ("version.approval", "churn:1", "pending", "approved"),
        ("version.approval", "churn:2", "pending", "approved"),
    ]


def test_what_was_in_production_replays_adoptions(
    platform: Platform, tmp_path: Path, clock: ManualClock
) -> None:
    from mintaka.governance.inventory import production_at

    before = clock.now()
    clock.advance(minutes=1)
    write_legacy(platform, tmp_path)  # churn:2 is in the production stage, with @champion
    legacy_endpoint(platform)
    platform.backend.kill("churn-api")  # type: ignore[attr-defined]
    platform.migration.adopt_model("churn", reason="inherited")
    platform.migration.adopt_endpoint("churn-api", reason="inherited")

    def snapshot(at: datetime) -> tuple[dict[str, str], list[str], list[str]]:
        found = production_at(platform, at)
        return (
            {e.endpoint: e.status for e in found.endpoints},
            [f"{a.model}@{a.alias}={a.version}" for a in found.aliases],
            [f"{s.model}:{s.version}" for s in found.production_stage],
        )

    assert snapshot(before) == ({}, [], [])
    assert snapshot(clock.now()) == ({"churn-api": "killed"}, ["churn@champion=2"], ["churn:2"])
    assert production_at(platform, clock.now()).live_versions == []

    # Deleted through Mintaka, made again outside it, adopted again: in service again.
    clock.advance(minutes=1)
    platform.serving.unkill("churn-api", reason="restored")
    platform.serving.delete_endpoint("churn-api", reason="moved")
    deleted = clock.now()
    clock.advance(minutes=1)
    legacy_endpoint(platform)
    platform.migration.adopt_endpoint("churn-api", reason="back")
    assert snapshot(deleted)[0] == {"churn-api": "deleted"}
    assert snapshot(clock.now())[0] == {"churn-api": "in_service"}
    assert production_at(platform, clock.now()).live_versions == ["churn:1", "churn:2"]


def test_an_endpoint_changed_in_the_cloud_is_adopted_again_and_keeps_its_mirrored_shadow(
    platform: Platform,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_servable: MakeArtifact,
) -> None:
    from mintaka.capabilities import Capability
    from mintaka.domain.serving import Route, TrafficMap
    from mintaka.interfaces import Support

    write_legacy(platform, tmp_path)
    platform.migration.adopt_model("churn", reason="inherited")
    platform.register_model("churn", make_servable(b"v3"), flavor="pyfunc")
    platform.backend.create_endpoint(  # type: ignore[attr-defined]
        "churn-api",
        [
            Route(name="old", model="churn", version=1),
            Route(name="new", model="churn", version=3),
            Route(name="spare", model="churn", version=1),
        ],
        TrafficMap(weights={"old": 100, "new": 0, "spare": 0}),
    )
    platform.migration.adopt_endpoint("churn-api", reason="inherited")
    platform.serving.set_traffic("churn-api", {"old": 100}, shadow="new", shadow_percent=10)
    # As on a cloud whose shadow core mirrors: the cloud's endpoint shows no shadow.
    real = platform.backend.support
    monkeypatch.setattr(
        platform.backend,
        "support",
        lambda c: Support.EMULATED if c is Capability.SERVING_SHADOW else real(c),
    )
    assert not platform.migration.adopt_endpoint("churn-api", reason="same").adopted
    platform.backend.set_traffic(  # type: ignore[attr-defined]
        "churn-api", TrafficMap(weights={"old": 60, "spare": 40})
    )
    again = platform.migration.adopt_endpoint("churn-api", reason="changed in the cloud")
    assert again.adopted
    traffic = platform.serving.get_endpoint("churn-api").traffic
    assert (traffic.weights, traffic.shadow, traffic.shadow_percent) == (
        {"old": 60, "spare": 40},
        "new",
        10,
    )


def test_a_version_replaced_in_the_cloud_and_adopted_again_is_not_live_after(
    platform: Platform, tmp_path: Path, clock: ManualClock
) -> None:
    from mintaka.domain.monitoring import MonitorSpec, Signal, SignalKind
    from mintaka.domain.serving import Route, TrafficMap
    from mintaka.governance.evidence import build_pack

    write_legacy(platform, tmp_path)
    platform.backend.create_endpoint(  # type: ignore[attr-defined]
        "churn-api", [Route(name="old", model="churn", version=1)], TrafficMap(weights={"old": 100})
    )
    platform.migration.adopt_model("churn", reason="inherited")
    platform.migration.adopt_endpoint("churn-api", reason="inherited")
    clock.advance(hours=1)
    platform.backend.update_routes(  # type: ignore[attr-defined]
        "churn-api", [Route(name="new", model="churn", version=2)], TrafficMap(weights={"new": 100})
    )
    assert platform.migration.adopt_endpoint("churn-api", reason="changed in the cloud").adopted
    readopted = clock.now().isoformat()
    clock.advance(hours=1)
    signal = Signal(
        name="errors", kind=SignalKind.TELEMETRY, metric="error_rate", threshold=0.05, owner="ops"
    )
    platform.monitoring.add_monitor(
        MonitorSpec(endpoint="churn-api", model="churn", signals=[signal])
    )

    pack = build_pack(platform, "churn:1")
    [life] = pack["deployments"]  # the endpoint was never deleted: one incarnation
    assert [(d["event"], d["at"], d["version_live"]) for d in life["history"]][-1] == (
        "endpoint.adopt",
        readopted,
        False,
    )
    assert pack["monitoring"]["monitors"] == []
    watched = ("Art. 72", "MEASURE 2.4", "MANAGE 4.1", "V. Ongoing monitoring")
    results = [r for r in pack["controls"]["results"] if r["control"] in watched]
    assert [r["status"] for r in results] == ["gap"] * len(watched)
    later = build_pack(platform, "churn:2")
    assert [m["endpoint"] for m in later["monitoring"]["monitors"]] == ["churn-api"]


def test_whoever_adopted_a_version_cannot_approve_it(
    governed_home: Callable[[str], Path], clock: ManualClock, tmp_path: Path
) -> None:
    """Adopting brings a version under governance as registering does: the adopter, who
    attests to what the cloud holds, is not an independent approver of it."""
    home = governed_home('[roles]\n"rita" = ["model-risk"]\n"dana" = ["model-risk"]\n')
    with Platform(home, clock=clock, actor="dana") as dana:
        write_legacy(dana, tmp_path)
        [version, _] = dana.migration.adopt_model("churn", reason="inherited", owner="rita").adopted
        with pytest.raises(PolicyViolation, match="approver-is-not-developer"):
            dana.governance.approve(version.ref)
        assert dana.governance.approvals(version) == []


def test_a_readoption_overtaken_by_a_kill_records_nothing(
    platform: Platform, make_servable: MakeArtifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mintaka.domain.serving import TrafficMap

    for content in (b"v1", b"v2"):
        platform.register_model("m", make_servable(content), flavor="pyfunc")
    serving = platform.serving
    serving.create_endpoint("scoring", "m:1", route="blue")
    serving.deploy("scoring", "m:2", route="green")  # {blue: 100, green: 0}
    platform.backend.set_traffic("scoring", TrafficMap(weights={"blue": 0, "green": 100}))  # type: ignore[attr-defined]
    evaluate = platform.governance.evaluate
    pulled: list[Any] = []

    def kill_meanwhile(*args: Any, **kwargs: Any) -> Any:
        if args and args[0] == "endpoint.adopt" and not pulled:
            pulled.append(serving.kill("scoring", reason="green is bad"))
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(platform.governance, "evaluate", kill_meanwhile)
    with pytest.raises(Conflict, match="killed or changed while it was read"):
        platform.migration.adopt_endpoint("scoring", reason="drifted")
    [kill] = pulled
    assert serving.get_endpoint("scoring") == kill
    assert [e.action for e in platform.audit.events(subject="scoring")][-1] == "endpoint.kill"
