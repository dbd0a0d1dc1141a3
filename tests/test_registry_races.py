"""Registry changes racing another process's on the same home: what the store records is decided
under its write lock, and the backend is left as the store records it."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from artifact_kit import MakeArtifact

from mintaka import (
    BackendError,
    Conflict,
    IdFactory,
    ManualClock,
    NotFound,
    Platform,
    PolicyViolation,
)
from mintaka.domain.registry import RiskTier, Stage
from mintaka.domain.runs import RunStatus
from mintaka.local.backend import LocalBackend


@pytest.fixture
def other(platform: Platform, home: Path, clock: ManualClock) -> Iterator[Platform]:
    """A second process on ``platform``'s home, acting as another user."""
    with Platform(home, clock=clock, ids=IdFactory(seed=9), actor="bob") as plat:
        yield plat


def meanwhile(
    monkeypatch: pytest.MonkeyPatch,
    obj: object,
    attr: str,
    act: Callable[[], object],
    *,
    after: bool = False,
) -> None:
    """Have the first call of ``obj.attr`` run ``act``, another process's change, before it (or
    after it, with ``after``): a change committed while this process's call is under way."""
    real = getattr(obj, attr)
    pending = [act]

    def call(*args: Any) -> Any:
        if pending and not after:
            pending.pop()()
        result = real(*args)
        if pending and after:
            pending.pop()()
        return result

    monkeypatch.setattr(obj, attr, call)


def local(platform: Platform) -> LocalBackend:
    assert isinstance(platform.backend, LocalBackend)
    return platform.backend


def actions(platform: Platform, since: int) -> list[str]:
    return [e.action for e in platform.audit.events()[since:]]


# -- archiving is final ----------------------------------------------------------------------


def test_a_stage_set_while_another_process_archives_the_version_is_refused_and_put_back(
    platform: Platform,
    other: Platform,
    make_artifact: MakeArtifact,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    platform.register_model("churn", make_artifact(b"one"))
    events = len(platform.audit.events())
    archive = partial(other.archive_version, "churn", 1, reason="retired")
    meanwhile(monkeypatch, platform.backend, "set_stage", archive)
    with pytest.raises(Conflict, match="churn:1 is archived, and archiving is final"):
        platform.set_stage("churn", 1, "staging")
    assert platform.get_model_version("churn", 1).stage is Stage.ARCHIVED
    assert local(platform).get_version("churn", 1).stage is Stage.ARCHIVED
    assert actions(platform, events) == ["model.archive"]
    assert platform.sync() == []


def test_a_change_the_backend_cannot_put_back_is_refused_saying_so(
    platform: Platform,
    other: Platform,
    make_artifact: MakeArtifact,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    platform.register_model("churn", make_artifact(b"one"))
    real = local(platform).set_stage
    calls: list[Stage] = []

    def set_stage(name: str, version: int, stage: Stage) -> None:
        calls.append(stage)
        if len(calls) > 1:
            raise BackendError("the registry is unreachable", "local")
        other.archive_version("churn", 1)
        real(name, version, stage)

    monkeypatch.setattr(platform.backend, "set_stage", set_stage)
    with pytest.raises(Conflict, match=r"putting it back failed: .*the registry is unreachable"):
        platform.set_stage("churn", 1, "staging")
    assert calls == [Stage.STAGING, Stage.ARCHIVED]
    assert platform.get_model_version("churn", 1).stage is Stage.ARCHIVED
    assert [(d.kind, d.observed) for d in platform.sync()] == [("version.stage", "staging")]


@pytest.mark.parametrize("held_by", [None, 2], ids=["new-alias", "moved-alias"])
def test_an_alias_set_while_another_process_archives_the_version_is_refused_and_put_back(
    platform: Platform,
    other: Platform,
    make_artifact: MakeArtifact,
    monkeypatch: pytest.MonkeyPatch,
    held_by: int | None,
) -> None:
    for content in (b"one", b"two"):
        platform.register_model("churn", make_artifact(content))
    if held_by is not None:
        platform.set_alias("churn", "champion", held_by)
    events = len(platform.audit.events())
    archive = partial(other.archive_version, "churn", 1)
    meanwhile(monkeypatch, platform.backend, "set_alias", archive)
    with pytest.raises(Conflict, match="churn:1 is archived"):
        platform.set_alias("churn", "champion", 1)
    assert platform.get_model_version("churn", 1).aliases == ()
    expected = {} if held_by is None else {"champion": held_by}
    assert local(platform).get_aliases("churn") == expected
    assert actions(platform, events) == ["model.archive"]
    assert platform.sync() == []


def test_an_alias_set_while_its_version_is_archived_leaves_the_backend_too(
    platform: Platform,
    other: Platform,
    make_artifact: MakeArtifact,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    platform.register_model("churn", make_artifact(b"one"))
    set_alias = partial(other.set_alias, "churn", "champion", 1)
    meanwhile(monkeypatch, platform.backend, "set_stage", set_alias)
    archived = platform.archive_version("churn", 1)
    assert (archived.stage, archived.aliases) == (Stage.ARCHIVED, ())
    assert local(platform).get_aliases("churn") == {}
    assert platform.audit.events()[-1].details["aliases"] == ["champion"]
    assert platform.sync() == []


def test_an_alias_moved_away_while_its_version_is_archived_stays_where_it_moved(
    platform: Platform,
    other: Platform,
    make_artifact: MakeArtifact,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for content in (b"one", b"two"):
        platform.register_model("churn", make_artifact(content))
    platform.set_alias("churn", "champion", 1)
    move = partial(other.set_alias, "churn", "champion", 2)
    meanwhile(monkeypatch, platform.backend, "delete_alias", move)
    platform.archive_version("churn", 1)
    assert platform.get_model_version("churn", alias="champion").version == 2
    assert local(platform).get_aliases("churn") == {"champion": 2}
    assert platform.audit.events()[-1].details["aliases"] == []
    assert platform.sync() == []


def test_a_stage_set_while_the_version_is_archived_is_archived_again_in_the_backend(
    platform: Platform,
    other: Platform,
    make_artifact: MakeArtifact,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    platform.register_model("churn", make_artifact(b"one"))
    stage = partial(other.set_stage, "churn", 1, "staging")
    meanwhile(monkeypatch, platform.backend, "set_stage", stage, after=True)
    platform.archive_version("churn", 1)
    assert platform.get_model_version("churn", 1).stage is Stage.ARCHIVED
    assert local(platform).get_version("churn", 1).stage is Stage.ARCHIVED
    assert platform.sync() == []


def test_a_version_two_processes_archive_at_once_is_archived_once(
    platform: Platform,
    other: Platform,
    make_artifact: MakeArtifact,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    platform.register_model("churn", make_artifact(b"one"))
    events = len(platform.audit.events())
    archive = partial(other.archive_version, "churn", 1, reason="theirs")
    meanwhile(monkeypatch, platform.backend, "set_stage", archive)
    assert platform.archive_version("churn", 1, reason="mine").stage is Stage.ARCHIVED
    assert actions(platform, events) == ["model.archive"]
    assert platform.audit.events()[-1].details["reason"] == "theirs"


def test_an_archive_whose_backend_settling_fails_says_it_is_recorded_and_settles_when_run_again(
    platform: Platform,
    other: Platform,
    make_artifact: MakeArtifact,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    platform.register_model("churn", make_artifact(b"one"))
    meanwhile(
        monkeypatch, platform.backend, "set_stage", partial(other.set_alias, "churn", "champion", 1)
    )

    def unreachable(name: str, alias: str) -> None:
        raise BackendError("the registry is unreachable", "local")

    monkeypatch.setattr(platform.backend, "delete_alias", unreachable)
    with pytest.raises(
        Conflict, match=r"churn:1 is archived.*backend still differs.*the registry is unreachable"
    ):
        platform.archive_version("churn", 1)
    assert platform.get_model_version("churn", 1).stage is Stage.ARCHIVED
    assert local(platform).get_aliases("churn") == {"champion": 1}
    monkeypatch.undo()
    platform.archive_version("churn", 1)
    assert local(platform).get_aliases("churn") == {}
    assert platform.sync() == []


# -- runs ------------------------------------------------------------------------------------


def test_metrics_two_processes_log_at_once_are_all_kept(
    platform: Platform, other: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = platform.start_run("exp")
    theirs = partial(other.log_metrics, run.id, {"loss": 0.1})
    meanwhile(monkeypatch, platform.backend, "log_metrics", theirs, after=True)
    assert platform.log_metrics(run.id, {"auc": 0.9}).metrics == {"auc": 0.9, "loss": 0.1}
    assert platform.get_run(run.id).metrics == {"auc": 0.9, "loss": 0.1}
    assert local(platform).get_run(run.id).metrics == {"auc": 0.9, "loss": 0.1}


def test_params_two_processes_log_at_once_are_all_kept(
    platform: Platform, other: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = platform.start_run("exp")
    theirs = partial(other.log_params, run.id, {"depth": 6})
    meanwhile(monkeypatch, platform.backend, "log_params", theirs, after=True)
    platform.log_params(run.id, {"lr": 0.1})
    assert platform.get_run(run.id).params == {"depth": "6", "lr": "0.1"}
    assert local(platform).get_run(run.id).params == {"depth": "6", "lr": "0.1"}


def test_a_run_two_processes_end_at_once_ends_once_with_the_status_recorded_first(
    platform: Platform, other: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = platform.start_run("exp")
    events = len(platform.audit.events())
    meanwhile(monkeypatch, platform.backend, "end_run", partial(other.end_run, run.id, "finished"))
    with pytest.raises(Conflict, match="has ended"):
        platform.end_run(run.id, "failed")
    assert platform.get_run(run.id).status.value == "finished"
    assert local(platform).get_run(run.id).status.value == "finished"
    assert actions(platform, events) == ["run.end"]


def test_a_run_ended_meanwhile_whose_backend_cannot_be_put_back_is_a_conflict_saying_so(
    platform: Platform, other: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = platform.start_run("exp")
    real = local(platform).end_run
    calls: list[RunStatus] = []

    def end_run(run_id: str, status: RunStatus) -> None:
        calls.append(status)
        if len(calls) > 1:
            raise BackendError("the tracking server is unreachable", "local")
        other.end_run(run.id, "finished")
        real(run_id, status)

    monkeypatch.setattr(platform.backend, "end_run", end_run)
    with pytest.raises(
        Conflict, match=r"has ended.*putting it back failed: .*the tracking server is unreachable"
    ):
        platform.end_run(run.id, "failed")
    assert calls == [RunStatus.FAILED, RunStatus.FINISHED]
    assert platform.get_run(run.id).status is RunStatus.FINISHED


def test_metrics_logged_to_a_run_ended_meanwhile_are_put_back_in_the_backend(
    platform: Platform, other: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = platform.start_run("exp")
    platform.log_metrics(run.id, {"auc": 0.5})
    meanwhile(monkeypatch, platform.backend, "log_metrics", partial(other.end_run, run.id))
    with pytest.raises(Conflict, match=r"has ended \(finished\)$"):
        platform.log_metrics(run.id, {"auc": 0.9})
    assert local(platform).get_run(run.id).metrics == {"auc": 0.5}
    assert platform.get_run(run.id).metrics == {"auc": 0.5}


@pytest.mark.parametrize("kind", ["metrics", "parameters"])
def test_values_a_run_ended_meanwhile_leaves_in_the_backend_are_named_in_the_conflict(
    platform: Platform, other: Platform, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    run = platform.start_run("exp")
    platform.log_metrics(run.id, {"auc": 0.5})
    end = partial(other.end_run, run.id)
    if kind == "metrics":
        meanwhile(monkeypatch, platform.backend, "log_metrics", end)
        log = partial(platform.log_metrics, run.id, {"auc": 0.9, "loss": 0.1})
    else:
        meanwhile(monkeypatch, platform.backend, "log_params", end)
        log = partial(platform.log_params, run.id, {"lr": 0.1})
    kept = "['loss']" if kind == "metrics" else "['lr']"
    refusal = f"has ended (finished); the backend keeps the {kind} {kept}"
    with pytest.raises(Conflict, match=re.escape(refusal)):
        log()
    assert local(platform).get_run(run.id).metrics["auc"] == 0.5
    assert platform.get_run(run.id).metrics == {"auc": 0.5}
    assert platform.get_run(run.id).params == {}


# -- registration ----------------------------------------------------------------------------


def test_a_first_version_registered_while_the_model_is_created_takes_its_tier_and_owner(
    platform: Platform,
    other: Platform,
    make_artifact: MakeArtifact,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    create = partial(other.create_model, "fraud", tier="high", owner="risk-team")
    meanwhile(monkeypatch, platform.artifacts, "ingest", create)
    version = platform.register_model("fraud", make_artifact(b"w"))
    assert (version.risk_tier, version.owner) == (RiskTier.HIGH, "risk-team")
    assert platform.get_model_version("fraud", 1) == version
    assert platform.get_model("fraud").owner == "risk-team"


def test_a_first_version_below_the_tier_of_a_model_created_meanwhile_is_refused(
    platform: Platform,
    other: Platform,
    make_artifact: MakeArtifact,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    create = partial(other.create_model, "fraud", tier="high")
    meanwhile(monkeypatch, platform.artifacts, "ingest", create)
    with pytest.raises(PolicyViolation, match="fraud is a high-tier model"):
        platform.register_model("fraud", make_artifact(b"w"), tier="low")
    assert [e.action for e in platform.audit.events()][-1] == "policy.deny"
    assert platform.list_versions("fraud") == []
    assert local(platform).list_versions("fraud") == []
    assert platform.get_model("fraud").risk_tier is RiskTier.HIGH


@pytest.mark.parametrize("first", [True, False], ids=["first-version", "later-version"])
def test_the_same_bytes_two_processes_register_at_once_make_one_version(
    platform: Platform,
    other: Platform,
    make_artifact: MakeArtifact,
    monkeypatch: pytest.MonkeyPatch,
    first: bool,
) -> None:
    if not first:
        platform.register_model("churn", make_artifact(b"zero"))
    same = make_artifact(b"same")
    meanwhile(
        monkeypatch, platform.artifacts, "ingest", partial(other.register_model, "churn", same)
    )
    held_by = 1 if first else 2
    with pytest.raises(Conflict, match=f"churn:{held_by} already holds artifact sha256:"):
        platform.register_model("churn", same)
    assert [v.version for v in platform.list_versions("churn")] == [*range(1, held_by + 1)]
    assert [v.version for v in local(platform).list_versions("churn")] == [*range(1, held_by + 1)]


def test_the_same_bytes_refused_after_a_backend_outside_the_store_made_a_version_say_so(
    platform: Platform,
    other: Platform,
    make_artifact: MakeArtifact,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A backend whose registry is not in the store's database creates the version before the
    store's write lock is taken; the refusal names that version, which sync reports."""
    monkeypatch.setattr(platform.backend, "resides_in", lambda _url: False)
    same = make_artifact(b"same")
    meanwhile(
        monkeypatch, platform.artifacts, "ingest", partial(other.register_model, "churn", same)
    )
    unrecorded = "the backend's version 2, made for this registration, is not recorded"
    with pytest.raises(Conflict, match=f"churn:1 already holds artifact .*; {unrecorded}"):
        platform.register_model("churn", same)
    assert [v.version for v in platform.list_versions("churn")] == [1]
    assert [(d.kind, d.subject) for d in platform.sync()] == [("version.unrecorded", "churn:2")]


def test_a_first_version_refused_below_a_model_created_meanwhile_names_the_backends_version(
    platform: Platform,
    other: Platform,
    make_artifact: MakeArtifact,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A backend whose registry is not in the store's database made the version already."""
    monkeypatch.setattr(platform.backend, "resides_in", lambda _url: False)
    create = partial(other.create_model, "fraud", tier="high")
    meanwhile(monkeypatch, platform.artifacts, "ingest", create)
    unrecorded = "the backend's version 1, made for this registration, is not recorded"
    with pytest.raises(PolicyViolation, match=f"tier-not-below-model.*{unrecorded}"):
        platform.register_model("fraud", make_artifact(b"w"), tier="low")
    assert [(d.kind, d.subject) for d in platform.sync()] == [("version.unrecorded", "fraud:1")]


def test_a_first_version_of_a_model_recorded_meanwhile_for_another_backend_is_refused(
    platform: Platform,
    other: Platform,
    make_artifact: MakeArtifact,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The model's row, recorded by another process after this one read the store, is checked
    under the write lock too; a backend outside the store made the version already."""
    monkeypatch.setattr(platform.backend, "resides_in", lambda _url: False)

    def switched() -> None:
        other.create_model("fraud")
        with other.store.write() as conn:  # as a home switched from SageMaker holds it
            conn.exec_driver_sql("UPDATE models SET backend = 'sagemaker'")

    meanwhile(monkeypatch, platform.artifacts, "ingest", switched)
    elsewhere = "model 'fraud' is recorded for backend 'sagemaker', not 'local'"
    unrecorded = "the backend's version 1, made for this registration, is not recorded"
    with pytest.raises(Conflict, match=f"{elsewhere}; {unrecorded}"):
        platform.register_model("fraud", make_artifact(b"w"))
    assert platform.list_versions("fraud") == []
    assert actions(platform, 0)[-1] == "model.create"


def test_a_refused_version_of_a_model_recorded_for_another_backend_is_left_to_remove_by_hand(
    platform: Platform,
    other: Platform,
    make_artifact: MakeArtifact,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sync compares only the models recorded for this backend, so it never reports the
    version a backend outside the store made for the refused registration: the refusal says
    to delete it by hand, and discovery lists it."""
    monkeypatch.setattr(platform.backend, "resides_in", lambda _url: False)

    def switched() -> None:
        other.create_model("fraud")
        with other.store.write() as conn:  # as a home switched from SageMaker holds it
            conn.exec_driver_sql("UPDATE models SET backend = 'sagemaker'")

    meanwhile(monkeypatch, platform.artifacts, "ingest", switched)
    with pytest.raises(Conflict) as refused:
        platform.register_model("fraud", make_artifact(b"w"))
    message = str(refused.value)
    assert "sync reports it" not in message
    assert "the backend's version 1, made for this registration, is not recorded" in message
    assert "delete it from the backend by hand" in message
    assert "`mintaka discover --unrecorded` lists it" in message
    assert platform.sync() == []
    unrecorded = [c.name for c in platform.migration.discover() if not c.recorded]
    assert "fraud:1" in unrecorded


# -- aliases and stages ----------------------------------------------------------------------


def test_an_alias_two_processes_delete_at_once_is_deleted_once(
    platform: Platform,
    other: Platform,
    make_artifact: MakeArtifact,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    platform.register_model("churn", make_artifact(b"one"))
    platform.set_alias("churn", "champion", 1)
    events = len(platform.audit.events())
    theirs = partial(other.delete_alias, "churn", "champion")
    meanwhile(monkeypatch, platform.backend, "delete_alias", theirs)
    with pytest.raises(NotFound):
        platform.delete_alias("churn", "champion")
    assert actions(platform, events) == ["model.alias.delete"]
    assert local(platform).get_aliases("churn") == {}


def test_an_alias_moved_while_it_is_deleted_is_refused_and_put_back(
    platform: Platform,
    other: Platform,
    make_artifact: MakeArtifact,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for content in (b"one", b"two"):
        platform.register_model("churn", make_artifact(content))
    platform.set_alias("churn", "champion", 1)
    events = len(platform.audit.events())
    moved = partial(other.set_alias, "churn", "champion", 2)
    meanwhile(monkeypatch, platform.backend, "delete_alias", moved, after=True)
    with pytest.raises(Conflict, match="churn@champion was set to version 2 meanwhile"):
        platform.delete_alias("churn", "champion")
    assert platform.get_model_version("churn", alias="champion").version == 2
    assert local(platform).get_aliases("churn") == {"champion": 2}
    assert actions(platform, events) == ["model.alias.set"]
    assert platform.sync() == []


@pytest.mark.parametrize("kind", ["alias", "stage"])
def test_a_version_two_processes_change_at_once_leaves_the_backend_as_the_store(
    platform: Platform,
    other: Platform,
    make_artifact: MakeArtifact,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    for content in (b"one", b"two"):
        platform.register_model("churn", make_artifact(content))
    if kind == "alias":
        moved = partial(other.set_alias, "churn", "champion", 2)
        meanwhile(monkeypatch, platform.backend, "set_alias", moved, after=True)
        with pytest.raises(Conflict, match="churn@champion was set to version 2 meanwhile"):
            platform.set_alias("churn", "champion", 1)
        assert platform.get_model_version("churn", alias="champion").version == 2
    else:
        moved = partial(other.set_stage, "churn", 1, "production")
        meanwhile(monkeypatch, platform.backend, "set_stage", moved, after=True)
        with pytest.raises(Conflict, match="churn:1 was moved to production meanwhile"):
            platform.set_stage("churn", 1, "staging")
        assert platform.get_model_version("churn", 1).stage is Stage.PRODUCTION
    assert platform.sync() == []


@pytest.mark.parametrize("kind", ["set-alias", "delete-alias", "stage"])
def test_a_put_back_leaves_a_change_recorded_after_it_alone(
    platform: Platform,
    other: Platform,
    make_artifact: MakeArtifact,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    """A change refused because another process's overtook it is put back in the backend to the
    store's record read after the backend, and only where they differ: a later change, made and
    recorded by a process after this one's write lock was released, is left as it is."""
    for content in (b"one", b"two", b"three"):
        platform.register_model("churn", make_artifact(content))
    if kind == "delete-alias":
        platform.set_alias("churn", "champion", 1)
    if kind == "stage":
        first = partial(other.set_stage, "churn", 1, "production")
        later = partial(other.set_stage, "churn", 1, "none")
        meanwhile(monkeypatch, platform.backend, "set_stage", first, after=True)
        change = partial(platform.set_stage, "churn", 1, "staging")
        refusal = "churn:1 was moved to production meanwhile"
    else:
        first = partial(other.set_alias, "churn", "champion", 2)
        later = partial(other.set_alias, "churn", "champion", 3)
        attr = "set_alias" if kind == "set-alias" else "delete_alias"
        meanwhile(monkeypatch, platform.backend, attr, first, after=True)
        if kind == "set-alias":
            change = partial(platform.set_alias, "churn", "champion", 1)
        else:
            change = partial(platform.delete_alias, "churn", "champion")
        refusal = "churn@champion was set to version 2 meanwhile"
    refuse = platform._refuse_changed_meanwhile

    def after_the_lock(message: str, put_back: Callable[[], None]) -> None:
        later()  # another process's change, recorded before this one puts its own back
        refuse(message, put_back)

    monkeypatch.setattr(platform, "_refuse_changed_meanwhile", after_the_lock)
    with pytest.raises(Conflict, match=refusal):
        change()
    if kind == "stage":
        assert local(platform).get_version("churn", 1).stage is Stage.NONE
    else:
        assert local(platform).get_aliases("churn") == {"champion": 3}
    assert platform.sync() == []


def test_an_alias_an_archiving_dropped_meanwhile_is_put_back_as_the_store_records_it(
    platform: Platform,
    other: Platform,
    make_artifact: MakeArtifact,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The backend no longer shows this process's refused change, but not as the store records
    it either (archiving a version again drops every backend alias naming it): the put-back
    still writes the store's record."""
    for content in (b"one", b"two"):
        platform.register_model("churn", make_artifact(content))
    platform.set_alias("churn", "champion", 2)

    def archive_twice() -> None:  # a retried archiving: the second settles the backend
        other.archive_version("churn", 1)
        other.archive_version("churn", 1)

    meanwhile(monkeypatch, platform.backend, "set_alias", archive_twice, after=True)
    with pytest.raises(Conflict, match="churn:1 is archived"):
        platform.set_alias("churn", "champion", 1)
    assert local(platform).get_aliases("churn") == {"champion": 2}
    assert platform.sync() == []


def test_a_stage_changed_in_the_backend_before_the_put_back_is_put_back_as_recorded(
    platform: Platform,
    other: Platform,
    make_artifact: MakeArtifact,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A backend stage that is neither this process's refused change nor the store's record
    when the put-back reads it is put back to the record as well."""
    platform.register_model("churn", make_artifact(b"one"))
    moved = partial(other.set_stage, "churn", 1, "production")
    meanwhile(monkeypatch, platform.backend, "set_stage", moved, after=True)
    refuse = platform._refuse_changed_meanwhile

    def changed_in_the_cloud(message: str, put_back: Callable[[], None]) -> None:
        local(other).set_stage("churn", 1, Stage.NONE)  # behind Mintaka's back
        refuse(message, put_back)

    monkeypatch.setattr(platform, "_refuse_changed_meanwhile", changed_in_the_cloud)
    with pytest.raises(Conflict, match="churn:1 was moved to production meanwhile"):
        platform.set_stage("churn", 1, "staging")
    assert local(platform).get_version("churn", 1).stage is Stage.PRODUCTION
    assert platform.sync() == []


@pytest.mark.parametrize("kind", ["alias", "stage"])
def test_a_put_back_that_cannot_read_the_backend_says_so(
    platform: Platform,
    other: Platform,
    make_artifact: MakeArtifact,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
) -> None:
    """A put-back whose read of the backend fails has put nothing back and cannot say what the
    backend holds: the refusal says the read failed, not that the backend holds the change."""
    for content in (b"one", b"two"):
        platform.register_model("churn", make_artifact(content))

    def unreachable(*_args: object) -> None:
        raise BackendError("the registry is unreachable", "local")

    if kind == "alias":
        moved = partial(other.set_alias, "churn", "champion", 2)
        meanwhile(monkeypatch, platform.backend, "set_alias", moved, after=True)
        monkeypatch.setattr(platform.backend, "get_aliases", unreachable)
        change = partial(platform.set_alias, "churn", "champion", 1)
    else:
        moved = partial(other.set_stage, "churn", 1, "production")
        meanwhile(monkeypatch, platform.backend, "set_stage", moved, after=True)
        monkeypatch.setattr(platform.backend, "get_version", unreachable)
        change = partial(platform.set_stage, "churn", 1, "staging")
    with pytest.raises(Conflict) as refused:
        change()
    message = str(refused.value)
    assert "could not read the backend to put it back: [local] the registry is unreachable" in (
        message
    )
    assert "`mintaka sync` reports any difference" in message
    assert "still holds the change" not in message
    assert isinstance(refused.value.__cause__, BackendError)
