"""Registry edges: refused run changes reach no backend, lineage of datasets named only at
registration, references that look like dataset ids, odd artifact paths, non-finite metrics,
and changes that are already in force."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from artifact_kit import MakeArtifact
from cli_kit import cli, init_home

from mintaka import Conflict, Platform, ValidationError


def test_a_refused_change_to_an_ended_run_reaches_neither_backend_nor_store(
    platform: Platform,
) -> None:
    run = platform.start_run("exp")
    platform.log_metrics(run.id, {"auc": 0.9})
    platform.end_run(run.id)
    backend_before = platform.backend.get_run(run.id)  # type: ignore[attr-defined]
    for change in (
        lambda: platform.log_metrics(run.id, {"auc": 0.1}),
        lambda: platform.log_params(run.id, {"x": "1"}),
        lambda: platform.end_run(run.id, "failed"),
    ):
        with pytest.raises(Conflict, match="has ended"):
            change()
    assert platform.backend.get_run(run.id) == backend_before  # type: ignore[attr-defined]
    stored = platform.get_run(run.id)
    assert (stored.status.value, stored.metrics, stored.params) == ("finished", {"auc": 0.9}, {})


def test_a_dataset_named_at_registration_belongs_to_that_version_not_its_run(
    platform: Platform, make_artifact: MakeArtifact, tmp_path: Path
) -> None:
    (tmp_path / "d1.csv").write_text("a\n1\n")
    (tmp_path / "d2.csv").write_text("a\n2\n")
    d1 = platform.register_dataset("d1", tmp_path / "d1.csv")
    d2 = platform.register_dataset("d2", tmp_path / "d2.csv")
    run = platform.start_run("exp", dataset_ids=[d1.id])
    platform.register_model("m", make_artifact(b"a"), run_id=run.id, dataset_ids=[d2.id, d2.id])
    second = platform.register_model("m", make_artifact(b"b"), run_id=run.id)
    assert platform.get_model_version("m", 1).dataset_ids == (d1.id, d2.id)  # once each
    assert second.dataset_ids == (d1.id,)

    def datasets_upstream(ref: str) -> list[str]:
        graph = platform.lineage_upstream(ref)
        return sorted(n.attrs["name"] for n in graph.nodes if n.kind.value == "dataset")

    assert datasets_upstream("m:1") == ["d1", "d2"]
    assert datasets_upstream("m:2") == ["d1"]
    made_from_d2 = platform.lineage_downstream("d2")
    assert sorted(n.label for n in made_from_d2.nodes if n.kind.value == "model_version") == ["m:1"]


def test_a_model_named_like_a_dataset_id_is_found_by_its_reference(
    platform: Platform, make_artifact: MakeArtifact
) -> None:
    version = platform.register_model("ds-model", make_artifact(b"a"))
    platform.set_alias("ds-model", "champion", 1)
    for ref in ("ds-model:1", "ds-model@champion", "ds-model"):
        graph = platform.lineage_upstream(ref)
        assert [n.key for n in graph.nodes if n.kind.value == "model_version"] == [version.id]


def test_an_artifact_file_name_that_is_not_utf8_is_a_validation_error(
    platform: Platform, tmp_path: Path
) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    try:
        (folder / os.fsdecode(b"caf\xe9.bin")).write_bytes(b"x")
    except (OSError, UnicodeEncodeError):
        pytest.skip("this file system refuses names that are not UTF-8")
    with pytest.raises(ValidationError, match="not valid UTF-8"):
        platform.register_model("m", folder)
    assert platform.list_models() == []


def test_an_empty_artifact_path_or_one_around_the_home_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "f.txt").write_text("hi")
    monkeypatch.chdir(work)
    init_home(capsys, work / ".mintaka")
    home = ["--home", str(work / ".mintaka")]
    for given, said in (("", "an artifact path is needed"), (".", "holds Mintaka's home")):
        code, _, err = cli(capsys, *home, "models", "register", "m", "--artifact", given)
        assert code == 1
        assert said in " ".join(err.split())
    code, out, _ = cli(capsys, *home, "models", "list", "--json")
    assert (code, out.strip()) == (0, "[]")


@pytest.mark.parametrize(
    "value",
    [float("nan"), float("inf"), float("-inf"), 10**400, -(10**400)],
    ids=["nan", "inf", "-inf", "huge", "-huge"],
)
def test_a_metric_that_is_not_finite_is_refused(
    platform: Platform, make_artifact: MakeArtifact, value: float
) -> None:
    """NaN, infinity and integers too large for a float (which float() cannot even convert)."""
    run = platform.start_run("exp")
    with pytest.raises(ValidationError, match="finite"):
        platform.log_metrics(run.id, {"loss": value})
    with pytest.raises(ValidationError, match="finite"):
        platform.register_model("m", make_artifact(b"a"), metrics={"auc": value})
    assert platform.get_run(run.id).metrics == {}
    assert platform.list_models() == []


def test_an_alias_stage_or_tags_already_in_force_change_and_record_nothing(
    platform: Platform, make_artifact: MakeArtifact
) -> None:
    platform.register_model("m", make_artifact(b"a"))
    platform.set_alias("m", "candidate", 1)
    platform.set_stage("m", 1, "staging")
    platform.set_tags("m", 1, {"k": "v"})
    events = len(platform.audit.events())
    again = [
        platform.set_alias("m", "candidate", 1),
        platform.set_stage("m", 1, "staging"),
        platform.set_tags("m", 1, {"k": "v"}),
    ]
    assert len(platform.audit.events()) == events
    assert all(v == platform.get_model_version("m", 1) for v in again)
    platform.set_tags("m", 1, {"k": "w"})  # a change is still a change
    assert len(platform.audit.events()) == events + 1


def test_setting_again_what_the_record_holds_puts_it_back_in_the_cloud(
    platform: Platform, make_artifact: MakeArtifact
) -> None:
    from mintaka.domain.registry import Stage

    for content in (b"a", b"b"):
        platform.register_model("m", make_artifact(content))
    platform.set_alias("m", "candidate", 2)
    platform.set_stage("m", 2, "staging")
    platform.set_tags("m", 2, {"k": "v"})
    platform.archive_version("m", 1)
    backend = platform.backend
    # changed in the cloud, outside Mintaka
    backend.set_alias("m", "candidate", 1)  # type: ignore[attr-defined]
    backend.set_stage("m", 2, Stage.PRODUCTION)  # type: ignore[attr-defined]
    backend.set_tags("m", 2, {"k": "x"})  # type: ignore[attr-defined]
    backend.set_stage("m", 1, Stage.NONE)  # type: ignore[attr-defined]
    assert len(platform.sync()) == 4
    events = len(platform.audit.events())
    platform.set_alias("m", "candidate", 2)
    platform.set_stage("m", 2, "staging")
    platform.set_tags("m", 2, {"k": "v"})
    platform.archive_version("m", 1)
    assert [e.action for e in platform.audit.events()[events:]] == []  # the record is unchanged
    assert platform.sync() == []


@pytest.mark.parametrize("limit", ["0", "-1", "99999999999999999999"])
def test_audit_log_limit_out_of_range_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, limit: str
) -> None:
    init_home(capsys, tmp_path / "h")
    code, _, err = cli(capsys, "--home", str(tmp_path / "h"), "audit", "log", "--limit", limit)
    assert code == 2
    assert "--limit" in err


def test_an_empty_home_is_a_usage_error_not_the_working_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = cli(capsys, "--home", "", "init")
    assert code == 2
    assert "--home" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("blank", ["", " \t"], ids=["empty", "spaces"])
def test_a_blank_run_id_is_refused_not_taken_for_no_run(
    platform: Platform, make_artifact: MakeArtifact, blank: str
) -> None:
    """An unset ``$RUN_ID`` in a CI script must not register a version without its lineage."""
    with pytest.raises(ValidationError, match="run id is blank"):
        platform.register_model("m", make_artifact(b"a"), run_id=blank)
    assert platform.list_models() == []


def test_models_register_with_an_empty_run_fails(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    (tmp_path / "model.bin").write_bytes(b"weights")
    home = ["--home", str(init_home(capsys, tmp_path / "h"))]
    args = ("models", "register", "m", "--artifact", str(tmp_path / "model.bin"), "--run", "")
    code, _, err = cli(capsys, *home, *args)
    assert code == 1
    assert "run id is blank" in " ".join(err.split())
    code, out, _ = cli(capsys, *home, "models", "list", "--json")
    assert (code, out.strip()) == (0, "[]")


def test_an_alias_already_gone_from_the_backend_blocks_neither_archiving_nor_its_deletion(
    platform: Platform, make_artifact: MakeArtifact
) -> None:
    for content in (b"a", b"b"):
        platform.register_model("m", make_artifact(content))
    platform.set_alias("m", "champion", 1)
    platform.set_alias("m", "candidate", 2)
    for alias in ("champion", "candidate"):  # removed in the cloud, outside Mintaka
        platform.backend.delete_alias("m", alias)  # type: ignore[attr-defined]
    events = len(platform.audit.events())
    archived = platform.archive_version("m", 1)
    platform.delete_alias("m", "candidate")
    assert (archived.stage.value, archived.aliases) == ("archived", ())
    assert platform.get_model_version("m", 2).aliases == ()
    actions = [e.action for e in platform.audit.events()[events:]]
    assert actions == ["model.archive", "model.alias.delete"]
    assert platform.sync() == []
