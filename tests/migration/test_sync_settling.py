"""What sync reports about an adopted endpoint changed outside Mintaka, and the next step it
advises settles it."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from cli_kit import cli
from test_adoption import legacy_endpoint, write_legacy

from mintaka import Platform, Stage
from mintaka.cli.migration import _next_step
from mintaka.domain.serving import TrafficMap


def _adopted(platform: Platform, tmp_path: Path) -> None:
    write_legacy(platform, tmp_path)
    legacy_endpoint(platform)
    platform.migration.adopt_model("churn", reason="inherited")
    platform.migration.adopt_endpoint("churn-api", reason="inherited")


def test_a_kill_switch_released_outside_mintaka_is_reported_and_pulled_again(
    platform: Platform, tmp_path: Path
) -> None:
    _adopted(platform, tmp_path)
    platform.serving.kill("churn-api", reason="bad predictions")
    platform.backend.unkill("churn-api")  # type: ignore[attr-defined]
    [difference] = platform.sync()
    assert (difference.kind, difference.recorded, difference.observed) == (
        "endpoint.killed",
        {"killed": True},
        {"killed": False},
    )
    assert _next_step(difference) == (
        "mintaka kill churn-api (pulls the recorded kill switch in the cloud again)"
    )
    events = len(platform.audit.events())
    platform.serving.kill("churn-api")
    assert [e.action for e in platform.audit.events()[events:]] == []
    assert platform.sync() == []


def test_the_traffic_sync_advises_puts_the_recorded_traffic_back(
    platform: Platform, tmp_path: Path
) -> None:
    _adopted(platform, tmp_path)
    platform.backend.set_traffic(  # type: ignore[attr-defined]
        "churn-api", TrafficMap(weights={"old": 50, "new": 50})
    )
    [difference] = platform.sync()
    step = _next_step(difference) or ""
    assert step.startswith("mintaka endpoints traffic churn-api new=20 old=80 ")
    platform.serving.set_traffic("churn-api", {"new": 20, "old": 80})  # what it says to run
    assert platform.sync() == []


def test_a_shadow_share_changed_outside_mintaka_is_reported(
    platform: Platform, tmp_path: Path
) -> None:
    _adopted(platform, tmp_path)
    platform.serving.set_traffic(
        "churn-api", {"old": 100, "new": 0}, shadow="new", shadow_percent=10
    )
    platform.backend.set_shadow("churn-api", "new", 100)  # type: ignore[attr-defined]
    [difference] = platform.sync()
    assert difference.kind == "endpoint.traffic"
    assert (difference.recorded["shadow_percent"], difference.observed["shadow_percent"]) == (
        10,
        100,
    )  # type: ignore[index]
    assert "--shadow new --shadow-percent 10" in (_next_step(difference) or "")


def test_adopting_an_endpoint_again_reports_its_recorded_known_good(
    platform: Platform, tmp_path: Path
) -> None:
    _adopted(platform, tmp_path)
    again = platform.migration.adopt_endpoint("churn-api", reason="inherited")
    [deployment] = platform.serving.deployment_history("churn-api")
    assert (again.adopted, again.known_good) == (False, deployment.known_good)
    assert deployment.known_good  # the open policy's gate passes


def test_a_version_in_the_production_stage_without_its_controls_is_a_finding(
    governed_home, clock, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    from mintaka import IdFactory

    home = governed_home('[roles]\nalice = ["ml-engineer"]\n')
    with Platform(home, clock=clock, ids=IdFactory(seed=7), actor="alice") as platform:
        write_legacy(platform, tmp_path)  # churn:2 is in the production stage
        with platform.backend.transactions.write() as conn:  # type: ignore[attr-defined]
            conn.exec_driver_sql("DELETE FROM local_aliases")
        adoption = platform.migration.adopt_model("churn", reason="inherited", tier="high")
        assert adoption.adopted[1].stage.value == "production"
        [finding] = [f for f in adoption.findings if f.startswith("churn:2 holds")]
        assert "the production stage but does not meet the production controls" in finding


def test_a_cloud_alias_moved_onto_a_newly_adopted_version_is_a_finding(
    platform: Platform, tmp_path: Path
) -> None:
    from mintaka.artifacts import manifest_of
    from mintaka.domain.registry import VersionRequest

    write_legacy(platform, tmp_path)
    platform.migration.adopt_model("churn", reason="inherited")  # champion -> churn:2
    three = tmp_path / "v3"
    three.mkdir()
    (three / "model.bin").write_bytes(b"legacy-weights-3")
    platform.backend.create_version(  # type: ignore[attr-defined]
        VersionRequest(
            name="churn",
            artifact_path=str(three),
            artifact_digest=manifest_of(three).digest,
            mintaka_id="",
            idempotency_key="legacy-3",
        )
    )
    platform.backend.set_alias("churn", "champion", 3)  # type: ignore[attr-defined]
    adoption = platform.migration.adopt_model("churn", reason="inherited", versions=[3])
    [finding] = [f for f in adoption.findings if "'champion'" in f]
    assert "points at churn:3, the record keeps it on churn:2" in finding
    assert platform.get_model_version("churn", alias="champion").version == 2


def test_a_version_rejected_in_the_cloud_is_a_finding_that_names_what_sync_reports(
    platform: Platform, tmp_path: Path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from test_adoption_guards import SIGN_OFF

    policy = tmp_path / "sign-off.toml"
    policy.write_text(SIGN_OFF)
    monkeypatch.setenv("MINTAKA_POLICY", str(policy))
    platform.governance.reload_policy()
    write_legacy(platform, tmp_path)
    with platform.backend.transactions.write() as conn:  # type: ignore[attr-defined]
        conn.exec_driver_sql("UPDATE local_versions SET approval = 'rejected' WHERE version = 1")
    adoption = platform.migration.adopt_model("churn", reason="inherited")
    [finding] = [f for f in adoption.findings if f.startswith("churn:1 is rejected in the cloud")]
    assert "sync reports the rejection until it is approved" in finding
    [reported] = [d for d in platform.sync() if d.kind == "version.approval"]
    assert (reported.subject, reported.observed) == ("churn:1", "rejected")


def test_the_advised_commands_settle_stage_tag_and_endpoint_differences(
    platform: Platform, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _adopted(platform, tmp_path)
    platform.set_tags("churn", 2, {"team": "crm", "owner": "risk team"})
    recorded_stage = platform.get_model_version("churn", 1).stage
    other = Stage.STAGING if recorded_stage is not Stage.STAGING else Stage.NONE
    platform.backend.set_stage("churn", 1, other)  # type: ignore[attr-defined]
    platform.backend.delete_tag("churn", 2, "team")  # type: ignore[attr-defined]
    platform.backend.delete_tag("churn", 2, "owner")  # type: ignore[attr-defined]
    platform.backend.delete_endpoint("churn-api")  # type: ignore[attr-defined]
    found = {d.kind: d for d in platform.sync()}
    assert set(found) == {"version.stage", "version.tags", "endpoint.missing"}
    steps = [_next_step(d) for d in found.values()]
    assert (
        f"mintaka models stage churn:1 {recorded_stage.value} (puts the recorded stage back)"
        in steps
    )
    assert (
        "mintaka models tag churn:2 'owner=risk team' team=crm (puts the recorded tags back)"
        in steps
    )
    assert (
        "mintaka endpoints delete churn-api (drops the record of the endpoint deleted in the cloud)"
        in steps
    )
    for step in steps:
        args = shlex.split((step or "").split(" (")[0])[1:]
        code, _, err = cli(capsys, "--home", str(platform.home), *args)
        assert code == 0, err
    assert platform.sync() == []


def test_no_alias_is_advised_onto_a_version_deleted_in_the_cloud(
    platform: Platform, tmp_path: Path
) -> None:
    _adopted(platform, tmp_path)
    platform.set_alias("churn", "challenger", 2)
    platform.backend.delete_version("churn", 2)  # type: ignore[attr-defined]
    found = platform.sync()
    kinds = {d.kind for d in found}
    assert {"version.missing", "alias"} <= kinds
    missing = frozenset(d.subject for d in found if d.kind == "version.missing")
    aliases = [d for d in found if d.kind == "alias"]
    assert aliases
    assert all(_next_step(d) for d in aliases)  # without knowing the version went
    assert [_next_step(d, missing) for d in aliases] == [None] * len(aliases)
