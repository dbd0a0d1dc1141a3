from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from artifact_kit import MakeArtifact
from sqlalchemy import func, select

from mintaka import (
    Conflict,
    InvalidName,
    NotFound,
    Platform,
    RiskTier,
    Stage,
    ValidationError,
)
from mintaka.clock import ManualClock
from mintaka.store import Store
from mintaka.store.schema import audit_events, model_aliases, model_versions, models


def test_register_records_digest_run_datasets_and_code(
    platform: Platform, make_artifact: MakeArtifact, tmp_path: Path
) -> None:
    data = tmp_path / "train.csv"
    data.write_text("x,y\n1,0\n")
    dataset = platform.register_dataset("train", data)
    run = platform.start_run("exp", params={"lr": 0.1}, dataset_ids=[dataset.id])
    platform.log_metrics(run.id, {"auc": 0.91})
    platform.end_run(run.id)

    version = platform.register_model(
        "credit", make_artifact(b"v1"), run_id=run.id, tier="high", tags={"team": "risk"}
    )

    assert version.version == 1
    assert version.artifact_digest.startswith("sha256:")
    assert version.run_id == run.id
    assert version.dataset_ids == (dataset.id,)
    assert version.params == {"lr": "0.1"}
    assert version.metrics == {"auc": 0.91}
    assert version.risk_tier is RiskTier.HIGH
    assert version.tags == {"team": "risk"}
    assert version.owner == "alice"
    assert platform.get_model_version("credit", 1) == version


def test_versions_are_numbered_and_latest_is_default(
    platform: Platform, make_artifact: MakeArtifact
) -> None:
    for content in (b"a", b"b", b"c"):
        platform.register_model("m", make_artifact(content))
    assert [v.version for v in platform.list_versions("m")] == [1, 2, 3]
    assert platform.get_model_version("m").version == 3
    assert platform.get_model_version("m:2").version == 2


def test_alias_moves_between_versions_and_resolves(
    platform: Platform, make_artifact: MakeArtifact
) -> None:
    platform.register_model("m", make_artifact(b"a"))
    platform.register_model("m", make_artifact(b"b"))
    platform.set_alias("m", "champion", 1)
    assert platform.get_model_version("m@champion").version == 1
    platform.set_alias("m", "champion", 2)
    assert platform.get_model_version("m", alias="champion").version == 2
    assert platform.get_model_version("m", 1).aliases == ()
    assert platform.backend.get_aliases("m") == {"champion": 2}  # type: ignore[attr-defined]
    platform.delete_alias("m", "champion")
    with pytest.raises(NotFound):
        platform.get_model_version("m@champion")


@pytest.mark.parametrize("alias", ["v2", "v10"])
def test_a_new_alias_that_reads_as_a_version_is_refused_before_any_write(
    platform: Platform, make_artifact: MakeArtifact, alias: str
) -> None:
    platform.register_model("m", make_artifact(b"a"))
    events = len(platform.audit.events())
    with pytest.raises(InvalidName, match="not v followed by digits"):
        platform.set_alias("m", alias, 1)
    assert platform.backend.get_aliases("m") == {}  # type: ignore[attr-defined]
    assert len(platform.audit.events()) == events
    platform.set_alias("m", "v2-candidate", 1)  # only the whole alias is refused


def test_an_alias_that_reads_as_a_version_and_exists_already_still_moves(
    platform: Platform, make_artifact: MakeArtifact
) -> None:
    platform.register_model("m", make_artifact(b"a"))
    platform.register_model("m", make_artifact(b"b"))
    with platform.store.write() as conn:  # as an earlier Mintaka recorded it
        conn.execute(model_aliases.insert().values(name="m", alias="v1", version=1))
    platform.backend.set_alias("m", "v1", 1)  # type: ignore[attr-defined]
    assert platform.set_alias("m", "v1", 2).aliases == ("v1",)
    assert platform.get_model_version("m@v1").version == 2


def test_tags_stage_and_archive(platform: Platform, make_artifact: MakeArtifact) -> None:
    platform.register_model("m", make_artifact(b"a"))
    platform.set_alias("m", "champion", 1)
    assert platform.set_tags("m", 1, {"owner": "risk"}).tags == {"owner": "risk"}
    assert platform.set_stage("m", 1, "production").stage is Stage.PRODUCTION
    archived = platform.archive_version("m", 1, reason="superseded")
    assert archived.stage is Stage.ARCHIVED
    assert archived.aliases == ()
    with pytest.raises(Conflict):
        platform.set_stage("m", 1, "production")
    assert platform.list_versions("m", include_archived=False) == []
    events = len(platform.audit.events())
    assert platform.archive_version("m", 1, reason="again") == archived  # idempotent
    assert len(platform.audit.events()) == events


def test_an_archived_version_takes_no_alias(
    platform: Platform, make_artifact: MakeArtifact
) -> None:
    platform.register_model("m", make_artifact(b"a"))
    platform.archive_version("m", 1)
    events = len(platform.audit.events())
    with pytest.raises(Conflict, match="m:1 is archived"):
        platform.set_alias("m", "staging", 1)
    assert platform.get_model_version("m", 1).aliases == ()
    assert platform.backend.get_aliases("m") == {}  # type: ignore[attr-defined]
    assert len(platform.audit.events()) == events


def test_same_bytes_twice_is_a_conflict(platform: Platform, make_artifact: MakeArtifact) -> None:
    platform.register_model("m", make_artifact(b"same"))
    with pytest.raises(Conflict, match="m:1 already holds"):
        platform.register_model("m", make_artifact(b"same"))


def test_an_ingested_artifact_registers_without_reading_its_bytes_again(
    platform: Platform, make_artifact: MakeArtifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = platform.artifacts.ingest(make_artifact(b"weights"))

    def unread(path: object) -> None:
        raise AssertionError(f"{path} was read again")

    monkeypatch.setattr("mintaka.platform.manifest_of", unread)
    version = platform.register_model("m", stored)
    assert (version.artifact_digest, version.artifact_uri) == (stored.digest, stored.uri)
    with pytest.raises(Conflict, match="m:1 already holds"):
        platform.register_model("m", stored)


def test_an_ingested_artifact_must_be_in_this_store(
    platform: Platform, make_artifact: MakeArtifact, tmp_path: Path
) -> None:
    from mintaka.artifacts import ArtifactStore

    elsewhere = ArtifactStore(tmp_path / "other").ingest(make_artifact(b"other bytes"))
    with pytest.raises(ValidationError, match="not one this store holds"):
        platform.register_model("m", elsewhere)
    stored = platform.artifacts.ingest(make_artifact(b"gone"))
    shutil.rmtree(stored.path)
    with pytest.raises(NotFound, match="not in the store"):
        platform.register_model("m", stored)
    assert platform.list_models() == []


def test_a_version_number_the_backend_hands_out_again_is_a_conflict_and_writes_nothing(
    platform: Platform, make_artifact: MakeArtifact
) -> None:
    platform.register_model("m", make_artifact(b"first"))
    # Behind Mintaka's back, the backend forgets version 1 and will issue the number again.
    local = sqlite3.connect(platform.backend.engine.url.database)
    with local:
        local.execute("DELETE FROM local_versions WHERE name = 'm' AND version = 1")
    local.close()
    with platform.store.read() as conn:
        events_before = conn.execute(select(func.count()).select_from(audit_events)).scalar()

    with pytest.raises(Conflict, match="m:1 is already recorded"):
        platform.register_model("m", make_artifact(b"second"))

    with platform.store.read() as conn:
        assert conn.execute(select(func.count()).select_from(model_versions)).scalar() == 1
        events = conn.execute(select(func.count()).select_from(audit_events)).scalar()
    assert events == events_before
    assert platform.verify_audit().ok
    # The local registry lives in the store: its version rolled back with the refused record.
    assert platform.backend.list_versions("m") == []


def test_local_registry_lives_in_the_store_and_creates_versions_in_its_transaction(
    platform: Platform, make_artifact: MakeArtifact, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = platform.backend
    assert registry.resides_in(platform.store.url)
    assert not (platform.home / "local" / "registry.db").exists()
    monkeypatch.setattr(registry, "create_version", lambda *a, **k: pytest.fail("own commit"))
    assert platform.register_model("m", make_artifact(b"joined")).version == 1
    assert [v.version for v in registry.list_versions("m")] == [1]


def test_the_local_registry_in_the_store_commits_as_durably_as_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MINTAKA_STORE_SYNC", "FULL")
    with (
        Platform(tmp_path / "home", backend="local") as platform,
        platform.backend.engine.connect() as conn,
    ):
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL


def test_a_local_registry_file_from_before_is_imported_into_the_store(tmp_path: Path) -> None:
    legacy = tmp_path / "home" / "local" / "registry.db"
    legacy.parent.mkdir(parents=True)
    sqlite3.connect(legacy).close()
    with Platform(tmp_path / "home", backend="local") as platform:
        assert platform.backend.resides_in(platform.store.url)
        artifact = tmp_path / "model.bin"
        artifact.write_bytes(b"in the store")
        assert platform.register_model("m", artifact).version == 1
        assert [v.version for v in platform.backend.list_versions("m")] == [1]
    assert not legacy.exists()
    (kept,) = legacy.parent.glob("registry.db.imported-*")
    with sqlite3.connect(kept) as conn:
        assert conn.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)
    conn.close()


def test_a_platform_whose_backend_fails_to_open_releases_its_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    disposed: list[Store] = []
    dispose = Store.dispose

    def record(store: Store) -> None:
        disposed.append(store)
        dispose(store)

    monkeypatch.setattr(Store, "dispose", record)
    with pytest.raises(ValidationError, match="invalid settings for backend 'local'"):
        Platform(tmp_path / "home", backend="local", backend_settings={"path": [1, 2]})
    assert len(disposed) == 1


def test_create_model_twice_is_a_conflict(platform: Platform) -> None:
    platform.create_model("m", tier="low")
    with pytest.raises(Conflict):
        platform.create_model("m")


@pytest.mark.parametrize(
    "call",
    [
        lambda p: p.get_model_version("missing", 1),
        lambda p: p.get_model_version("missing@champion"),
        lambda p: p.list_versions("missing"),
        lambda p: p.get_run("run-missing"),
        lambda p: p.get_dataset("ds-missing"),
    ],
)
def test_missing_things_are_not_found(
    platform: Platform, call: Callable[[Platform], object]
) -> None:
    with pytest.raises(NotFound):
        call(platform)


def test_missing_version_of_existing_model_is_not_found(
    platform: Platform, make_artifact: MakeArtifact
) -> None:
    platform.register_model("m", make_artifact(b"a"))
    with pytest.raises(NotFound, match="m:9"):
        platform.get_model_version("m", 9)
    with pytest.raises(NotFound):
        platform.set_alias("m", "champion", 9)


@pytest.mark.parametrize("name", ["Bad_Name", "1model", "a--b", "-a", "a-", "x" * 64, "", "ünï"])
def test_bad_model_name_is_refused_before_any_write(
    platform: Platform, artifact: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    for method in ("create_version", "create_version_in", "ensure_model"):
        monkeypatch.setattr(platform.backend, method, lambda *a, **k: calls.append("x"))
    with pytest.raises(InvalidName):
        platform.register_model(name, artifact)
    assert calls == []
    with platform.store.read() as conn:
        assert conn.execute(select(func.count()).select_from(models)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(model_versions)).scalar() == 0
        assert conn.execute(select(func.count()).select_from(audit_events)).scalar() == 0
    assert not (platform.home / "artifacts").exists()


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"tier": "extreme"}, ValidationError),
        ({"flavor": "tensorflow"}, ValidationError),
        ({"tags": {"bad key!": "v"}}, InvalidName),
        ({"tags": {"k": "x" * 300}}, InvalidName),
        ({"metrics": {"auc": "high"}}, ValidationError),
        ({"run_id": "run-nope"}, NotFound),
        ({"dataset_ids": ["ds-nope"]}, NotFound),
    ],
)
def test_bad_registration_input_gets_a_typed_error_and_writes_nothing(
    platform: Platform, artifact: Path, kwargs: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        platform.register_model("m", artifact, **kwargs)  # type: ignore[arg-type]
    with platform.store.read() as conn:
        assert conn.execute(select(func.count()).select_from(model_versions)).scalar() == 0
    assert platform.backend.list_models() == []  # type: ignore[attr-defined]


def test_missing_artifact_is_a_validation_error(platform: Platform, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="does not exist"):
        platform.register_model("m", tmp_path / "nope")


def test_every_state_change_is_audited(platform: Platform, make_artifact: MakeArtifact) -> None:
    platform.register_model("m", make_artifact(b"a"))
    platform.set_alias("m", "champion", 1)
    platform.set_tags("m", 1, {"k": "v"})
    platform.set_stage("m", 1, "staging")
    platform.archive_version("m", 1)
    actions = [e.action for e in platform.audit.events()]
    assert actions == [
        "policy.activate",
        "model.register",
        "model.alias.set",
        "model.tags.set",
        "model.stage.set",
        "model.archive",
    ]
    assert all(e.actor == "alice" for e in platform.audit.events())
    assert platform.verify_audit().ok


def test_run_lifecycle(platform: Platform) -> None:
    run = platform.start_run("exp", params={"a": 1}, code_commit_="abc123")
    assert run.code_commit == "abc123"
    assert "python" in run.environment
    platform.log_params(run.id, {"b": 2})
    with pytest.raises(Conflict):
        platform.log_params(run.id, {"a": 99})
    ended = platform.end_run(run.id, "failed")
    assert ended.status.value == "failed"
    assert ended.ended_at is not None
    with pytest.raises(Conflict):
        platform.log_metrics(run.id, {"x": 1.0})
    assert [r.id for r in platform.list_runs("exp")] == [run.id]
    assert platform.backend.get_run(run.id).params == {"a": "1", "b": "2"}  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "experiment",
    [
        "churn\nFORGED LINE: approved by rita",
        "exp\u202e",
        "a\u2028b",
        "bad\udcff",
        "",
        " exp",
        "exp ",
    ],
)
def test_an_experiment_name_that_could_forge_a_printed_line_is_refused_before_any_write(
    platform: Platform, experiment: str
) -> None:
    with pytest.raises(InvalidName, match="experiment name"):
        platform.start_run(experiment, code_commit_="abc123")
    assert platform.list_runs() == []
    assert platform.audit.events() == []


def test_run_reads_git_commit(platform: Platform, tmp_path: Path) -> None:
    import subprocess

    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    (repo / "train.py").write_text("print('hi')\n")
    subprocess.run([*git, "-C", str(repo), "add", "."], check=True)
    subprocess.run([*git, "-C", str(repo), "commit", "-qm", "init"], check=True)
    head = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
    ).stdout.strip()
    assert platform.start_run("exp", source_dir=repo).code_commit == head
    (repo / "train.py").write_text("print('changed')\n")
    assert platform.start_run("exp", source_dir=repo).code_commit == head + "+dirty"


def test_dataset_registration_is_idempotent_per_digest(platform: Platform, tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text("a\n1\n")
    first = platform.register_dataset("d", data)
    assert platform.register_dataset("d", data) == first
    data.write_text("a\n2\n")
    second = platform.register_dataset("d", data)
    assert second.id != first.id
    assert second.digest != first.digest


def test_categorical_columns_must_name_columns_of_profiled_data(
    platform: Platform, tmp_path: Path
) -> None:
    """A misspelt categorical column would have the real one profiled as numbers, silently."""
    data = tmp_path / "d.csv"
    data.write_text("segment,income\n1,0.5\n2,0.7\n")
    blob = tmp_path / "d.bin"
    blob.write_bytes(b"weights")
    with pytest.raises(ValidationError, match=r"categorical column\(s\) not in the data: 'segmnt'"):
        platform.register_dataset("d", data, categorical=["segmnt"])
    with pytest.raises(ValidationError, match="only a CSV or Parquet file is profiled"):
        platform.register_dataset("b", blob, categorical=["segment"])
    with pytest.raises(ValidationError, match="cannot go with --no-profile"):
        platform.register_dataset("d", data, profile=False, categorical=["segment"])
    assert platform.find_datasets("d") == platform.find_datasets("b") == []
    profiled = platform.register_dataset("d", data, categorical=["segment"])
    assert profiled.profile is not None
    assert profiled.profile["features"]["segment"]["kind"] == "categorical"


def test_bytes_profiled_before_are_refused_categories_their_profile_does_not_have(
    platform: Platform, tmp_path: Path
) -> None:
    """A version's profile is what its gates and monitors compared with: registering its bytes
    again asking for other categories is refused, never answered with the old profile."""
    data = tmp_path / "d.csv"
    data.write_text("segment,income\n1,0.5\n2,0.7\n")
    first = platform.register_dataset("d", data)
    assert first.profile is not None
    assert first.profile["features"]["segment"]["kind"] == "numeric"
    with pytest.raises(Conflict, match=rf"{first.id} .*'segment' as numeric.*another name"):
        platform.register_dataset("d", data, categorical=["segment"])
    assert platform.get_dataset(first.id) == first
    assert [e.action for e in platform.audit.events(subject=first.id)] == ["dataset.register"]

    other = tmp_path / "e.csv"
    other.write_text("segment,income\n1,0.5\n2,0.8\n")
    chosen = platform.register_dataset("e", other, categorical=["segment"])
    assert platform.register_dataset("e", other, categorical=["segment"]) == chosen
    assert platform.register_dataset("e", other) == chosen  # no choice asked: the one recorded


def test_dataset_versions_are_listed_by_name_then_age(
    platform: Platform, clock: ManualClock, tmp_path: Path
) -> None:
    data = tmp_path / "d.csv"
    data.write_text("a\n1\n")
    z1 = platform.register_dataset("zeta", data)
    a1 = platform.register_dataset("alpha", data)
    clock.advance(seconds=1)
    data.write_text("a\n2\n")
    z2 = platform.register_dataset("zeta", data)
    assert [d.id for d in platform.list_datasets()] == [a1.id, z1.id, z2.id]
    assert platform.find_datasets("zeta") == [z1, z2]


def test_a_relative_sqlite_store_url_names_a_file_in_the_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make_artifact: MakeArtifact
) -> None:
    """Run from two directories, a home whose config names ``sqlite:///mystore.db`` opens one
    store, in the home, not one per working directory."""
    home = tmp_path / "h"
    home.mkdir()
    (home / "config.toml").write_text('store_url = "sqlite:///mystore.db"\n')
    for where in ("d1", "d2"):
        (tmp_path / where).mkdir()
        monkeypatch.chdir(tmp_path / where)
        with Platform(home) as plat:
            plat.register_model(f"m-{where}", make_artifact(where.encode()))
            assert plat.store.url == f"sqlite:///{home / 'mystore.db'}"
            assert len(plat.list_models()) == (1 if where == "d1" else 2)
    assert not (tmp_path / "d1" / "mystore.db").exists()
