from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from artifact_kit import MakeArtifact
from cli_kit import cli, init_home
from sqlalchemy import text

from mintaka.errors import ValidationError
from mintaka.store import Store


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.bin").write_bytes(b"weights")
    return folder


def test_init_writes_config_and_store(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = cli(capsys, "--home", str(tmp_path / "h"), "init")
    assert code == 0
    assert "synchronous=NORMAL" in out
    assert (tmp_path / "h" / "config.toml").read_text() == 'backend = "local"\n'
    assert (tmp_path / "h" / "store.db").exists()


def test_init_with_unknown_backend_names_installed_ones(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = cli(capsys, "--home", str(tmp_path / "h"), "init", "--backend", "nope")
    assert code == 1
    assert "no backend named 'nope'" in err
    assert "local" in err


@pytest.mark.parametrize("name", ["sagemaker", "databricks"])
def test_init_with_a_shipped_backend_not_installed_says_what_to_install(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv("MINTAKA_PLUGINS", "local")
    code, _, err = cli(capsys, "--home", str(tmp_path / "h"), "init", "--backend", name)
    assert code == 1
    said = " ".join(err.split())
    assert f"no backend named '{name}' (installed: local)" in said
    assert f"pip install 'mintaka[{name}]'" in said
    assert f"uv sync --extra {name}" in said


def test_register_records_metrics_the_evaluation_gate_reads(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mintaka.governance.policy import DEFAULT_POLICY

    monkeypatch.setenv("MINTAKA_POLICY", str(DEFAULT_POLICY))
    init_home(capsys, tmp_path / "h")
    home = ["--home", str(tmp_path / "h"), "--as", "bob"]
    register = [*home, "models", "register", "credit", "--artifact", str(model_dir)]
    code, _, err = cli(capsys, *register, "--tier", "high")
    assert code == 0, err
    code, _, err = cli(capsys, *home, "models", "alias", "credit:1", "champion")
    assert code == 1
    said = " ".join(err.split())
    assert "auc not measured" in said
    assert "models register --metric KEY=VALUE" in said

    code, _, err = cli(capsys, *register, "--metric", "auc=high")
    assert code == 2
    assert "KEY=NUMBER" in err
    code, _, err = cli(capsys, *register, "--metric", "auc=0.8", "--metric", "auc=0.3")
    assert code == 2
    assert "'auc' is given twice" in err
    (model_dir / "model.bin").write_bytes(b"weights, measured")
    code, _, err = cli(capsys, *register, "--tier", "high", "--metric", "auc=0.81")
    assert code == 0, err
    code, out, _ = cli(capsys, *home, "models", "show", "credit:2", "--json")
    assert json.loads(out)["metrics"] == {"auc": 0.81}
    code, _, err = cli(capsys, *home, "models", "alias", "credit:2", "champion")
    assert code == 1
    assert "auc" not in err  # approvals and the model card are still missing, not the metric


def test_register_list_show_alias_and_json(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, model_dir: Path
) -> None:
    init_home(capsys, tmp_path / "h")
    home = ["--home", str(tmp_path / "h"), "--as", "bob"]
    code, out, err = cli(
        capsys,
        *home,
        "models",
        "register",
        "credit",
        "--artifact",
        str(model_dir),
        "--tier",
        "high",
        "--tag",
        "team=risk",
    )
    assert code == 0, err
    assert "registered credit:1" in out
    code, out, _ = cli(capsys, *home, "models", "alias", "credit:1", "champion")
    assert code == 0
    code, out, _ = cli(capsys, *home, "models", "show", "credit@champion", "--json")
    shown = json.loads(out)
    assert shown["version"] == 1
    assert shown["aliases"] == ["champion"]
    assert shown["owner"] == "bob"
    assert shown["tags"] == {"team": "risk"}
    code, out, _ = cli(capsys, *home, "models", "list", "--json")
    assert [m["name"] for m in json.loads(out)] == ["credit"]
    code, out, _ = cli(capsys, *home, "models", "list", "credit", "--json")
    assert [v["version"] for v in json.loads(out)] == [1]
    code, out, _ = cli(capsys, *home, "models", "list")
    assert "credit" in out
    code, out, _ = cli(capsys, *home, "models", "stage", "credit:1", "staging")
    assert "staging" in out
    code, out, _ = cli(capsys, *home, "models", "archive", "credit:1", "--reason", "old")
    assert code == 0
    code, out, _ = cli(capsys, *home, "audit", "log", "--json")
    assert [e["action"] for e in json.loads(out)] == [
        "policy.activate",
        "model.register",
        "model.alias.set",
        "model.stage.set",
        "model.archive",
    ]
    code, out, _ = cli(capsys, *home, "audit", "log", "--limit", "2")
    assert "the first 2 events; --limit N shows more" in out
    code, out, _ = cli(capsys, *home, "audit", "log", "--limit", "5")  # all there is
    assert "shows more" not in out
    assert "model.archive" in out
    code, out, _ = cli(capsys, *home, "audit", "log", "--last", "2", "--json")
    assert [e["action"] for e in json.loads(out)] == ["model.stage.set", "model.archive"]
    code, out, _ = cli(capsys, *home, "audit", "log", "--last", "2")
    assert "the last 2 events; --last N shows more" in out
    code, out, _ = cli(capsys, *home, "audit", "log", "--last", "5")  # all there is
    assert "shows more" not in out
    assert out.index("policy.activate") < out.index("model.archive")  # oldest first
    code, out, _ = cli(capsys, *home, "audit", "log", "--last", "1", "--subject", "credit:1")
    assert "model.archive" in out
    assert "model.stage.set" not in out
    code, _, err = cli(capsys, *home, "audit", "log", "--last", "2", "--limit", "2")
    assert code == 1
    assert "--last and --limit" in err


def test_alias_delete_with_a_version_removes_the_alias_only_while_it_points_there(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, model_dir: Path
) -> None:
    home = ["--home", str(init_home(capsys, tmp_path / "h"))]
    for weights in (b"one", b"two"):
        (model_dir / "model.bin").write_bytes(weights)
        cli(capsys, *home, "models", "register", "credit", "--artifact", str(model_dir))
    cli(capsys, *home, "models", "alias", "credit:2", "champion")
    code, _, err = cli(capsys, *home, "models", "alias", "credit:1", "champion", "--delete")
    assert code == 1
    assert "credit@champion points at credit:2, not credit:1; nothing removed" in err
    code, out, _ = cli(capsys, *home, "models", "show", "credit@champion", "--json")
    assert json.loads(out)["version"] == 2
    code, out, err = cli(capsys, *home, "models", "alias", "credit:2", "champion", "--delete")
    assert (code, out.strip()) == (0, "removed alias credit@champion"), err
    cli(capsys, *home, "models", "alias", "credit:1", "champion")
    code, out, err = cli(capsys, *home, "models", "alias", "credit", "champion", "--delete")
    assert code == 0, err
    code, _, err = cli(capsys, *home, "models", "show", "credit@champion")
    assert code == 1
    assert "champion" in err


def test_tag_stage_and_archive_take_a_version_or_an_alias_never_a_bare_name(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, model_dir: Path
) -> None:
    home = ["--home", str(init_home(capsys, tmp_path / "h"))]
    cli(capsys, *home, "models", "register", "credit", "--artifact", str(model_dir))
    cli(capsys, *home, "models", "alias", "credit:1", "champion")
    code, out, err = cli(capsys, *home, "models", "tag", "credit@champion", "team=risk")
    assert (code, out.strip()) == (0, "credit:1 tags: {'team': 'risk'}"), err
    code, out, err = cli(capsys, *home, "models", "stage", "credit@champion", "staging")
    assert code == 0, err
    assert "credit:1 is now in stage staging" in out
    for command in (
        ("tag", "credit", "a=b"),
        ("stage", "credit", "staging"),
        ("archive", "credit"),
    ):
        code, _, err = cli(capsys, *home, "models", *command)
        assert code == 1
        assert "give NAME:VERSION or NAME@ALIAS, not 'credit' alone" in err
    code, out, err = cli(capsys, *home, "models", "archive", "credit@champion")
    assert (code, out.strip()) == (0, "archived credit:1"), err


def test_approving_a_version_of_a_tier_without_approver_roles_says_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, model_dir: Path
) -> None:
    home = ["--home", str(init_home(capsys, tmp_path / "h"))]
    cli(capsys, *home, "--as", "dev", "models", "register", "credit", "--artifact", str(model_dir))
    code, _, err = cli(capsys, *home, "--as", "ann", "approve", "credit:1")
    assert code == 1
    assert "ann holds no role; the medium tier defines no approver role" in err


def test_bad_name_is_one_clear_error_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, model_dir: Path
) -> None:
    init_home(capsys, tmp_path / "h")
    code, out, err = cli(
        capsys,
        "--home",
        str(tmp_path / "h"),
        "models",
        "register",
        "Bad_Name",
        "--artifact",
        str(model_dir),
    )
    assert code == 1
    assert "invalid model name 'Bad_Name'" in err
    assert "Traceback" not in err + out


def test_text_that_is_not_utf8_is_refused_before_any_command_runs(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    model_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = init_home(capsys, tmp_path / "h")
    code, out, err = cli(
        capsys, "--home", str(home), "models", "register", "credit", "--artifact", str(model_dir)
    )
    assert code == 0, err
    code, out, err = cli(
        capsys, "--home", str(home), "models", "archive", "credit:1", "--reason", "old\udcff"
    )
    assert code == 1
    assert "b'old\\xff' is not valid UTF-8 text" in err
    assert "Traceback" not in err + out
    monkeypatch.setenv("MINTAKA_ACTOR", "al\udcffce")
    code, out, err = cli(capsys, "--home", str(home), "models", "archive", "credit:1")
    assert code == 1
    assert "MINTAKA_ACTOR b'al\\xffce' is not valid UTF-8 text" in err
    monkeypatch.delenv("MINTAKA_ACTOR")
    code, out, _ = cli(capsys, "--home", str(home), "models", "show", "credit:1", "--json")
    assert json.loads(out)["stage"] != "archived"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["nosuch"], "No such command 'nosuch'"),
        (["models", "list", "--bogus"], "No such option: --bogus"),
        (["models", "show"], "Missing argument"),
        (["rollout", "api", "--to", "g", "--strategy", "bogus"], "'bogus' is not one of"),
        (["rollout", "api", "--to", "g", "--bake", "-1"], "--bake"),
        (["rollout", "api", "--to", "g", "--max-error-rate", "2"], "--max-error-rate"),
        (["rollout", "api", "--to", "g", "--min-requests", "-1"], "--min-requests"),
        (["rollout", "api", "--to", "g", "--p99-ms", "0"], "--p99-ms"),
        (["rollout", "api", "--to", "g", "--p99-ms", "nan"], "--p99-ms"),
        (["rollout", "api", "--to", "g", "--p99-ms", "inf"], "--p99-ms"),
        (["rollout", "api", "--to", "g", "--max-error-rate", "nan"], "--max-error-rate"),
        (["rollout", "api", "--to", "g", "--bake", "nan"], "--bake"),
        (["serve", "--max-body-mib", "nan"], "--max-body-mib"),
        (["serve", "--stop-grace", "nan"], "--stop-grace"),
    ],
)
def test_a_usage_error_is_a_message_and_exit_status_2_not_a_traceback(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: list[str], says: str
) -> None:
    code, out, err = cli(capsys, "--home", str(tmp_path / "h"), *args)
    assert code == 2
    assert says in err
    assert "Try 'mintaka" in err
    assert "Traceback" not in out + err


@pytest.mark.parametrize("option", ["--p99-ms", "--max-error-rate", "--bake"])
def test_a_rollout_given_nan_is_refused_before_anything_changes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, make_servable: MakeArtifact, option: str
) -> None:
    """NaN compares false with every bound: without a check of its own, a rollout that could
    run failed with a traceback from the plan's validation."""
    home = init_home(capsys, tmp_path / "h")
    h = ["--home", str(home), "--as", "ops"]
    for content in (b"v1", b"v2"):
        path = str(make_servable(content))
        args = ("models", "register", "m", "--artifact", path, "--flavor", "pyfunc")
        assert cli(capsys, *h, *args)[0] == 0
    assert cli(capsys, *h, "endpoints", "create", "api", "m:1", "--route", "blue")[0] == 0
    assert cli(capsys, *h, "endpoints", "deploy", "api", "m:2", "--route", "green")[0] == 0
    code, out, err = cli(capsys, *h, "rollout", "api", "--to", "green", option, "nan")
    assert code == 2
    assert option in err
    assert "Traceback" not in out + err
    code, out, _ = cli(capsys, *h, "endpoints", "show", "api", "--json")
    assert json.loads(out)["traffic"]["weights"] == {"blue": 100, "green": 0}


def test_missing_model_is_reported(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    init_home(capsys, tmp_path / "h")
    code, _, err = cli(capsys, "--home", str(tmp_path / "h"), "models", "show", "ghost:1")
    assert code == 1
    assert "model 'ghost' not found" in err


def test_lineage_and_runs_commands(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from mintaka import Platform

    home = tmp_path / "h"
    data = tmp_path / "train.csv"
    data.write_text("a\n1\n")
    artifact = tmp_path / "m.bin"
    artifact.write_bytes(b"m")
    with Platform(home) as plat:
        ds = plat.register_dataset("train", data)
        run = plat.start_run("exp", dataset_ids=[ds.id])
        plat.register_model("m", artifact, run_id=run.id)
    code, out, _ = cli(capsys, "--home", str(home), "lineage", "upstream", "m:1", "--json")
    graph = json.loads(out)
    assert {n["kind"] for n in graph["nodes"]} == {"dataset", "run", "model_version"}
    code, out, _ = cli(capsys, "--home", str(home), "lineage", "downstream", "train")
    assert "model_version" in out
    assert "m:1" in out
    code, _, err = cli(capsys, "--home", str(home), "lineage", "downstream", "tarin")
    assert code != 0
    assert "no dataset or model named 'tarin'" in " ".join(err.split())
    code, out, _ = cli(capsys, "--home", str(home), "runs", "list", "--json")
    assert code == 0
    assert [r["id"] for r in json.loads(out)] == [run.id]
    _code, out, _ = cli(capsys, "--home", str(home), "runs", "show", run.id)
    assert "exp" in out


def test_datasets_list_and_show_give_the_ids_dataset_options_take(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, model_dir: Path
) -> None:
    from mintaka import IdFactory, ManualClock, Platform

    home = tmp_path / "h"
    data = tmp_path / "train.csv"
    clock = ManualClock()
    with Platform(home, clock=clock, ids=IdFactory(5)) as plat:
        data.write_text("a,b\n1,x\n2,y\n")
        first = plat.register_dataset("train", data)
        clock.advance(60)
        labels = plat.register_dataset("labels", model_dir, schema={"label": "int"}, rows=7)
        clock.advance(60)
        data.write_text("a,b\n3,z\n")
        second = plat.register_dataset("train", data)
    base = ("--home", str(home), "datasets")
    code, out, err = cli(capsys, *base, "list", "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert [d["id"] for d in listed] == [labels.id, first.id, second.id]  # by name, then age
    assert [d["profiled"] for d in listed] == [False, True, True]
    assert all("profile" not in d for d in listed)
    assert listed[0]["schema"] == {"label": "int"}
    code, out, _ = cli(capsys, *base, "list", "--name", "train", "--json")
    assert [d["id"] for d in json.loads(out)] == [first.id, second.id]
    code, out, _ = cli(capsys, *base, "list")
    assert code == 0
    assert first.id in out
    assert labels.id in out
    code, out, _ = cli(capsys, *base, "show", first.id)
    assert code == 0
    assert first.digest[:40] in out  # a digest is shown whole, folded to the terminal
    assert "a, b" in out  # the columns its profile found
    code, out, _ = cli(capsys, *base, "show", first.id, "--json")
    assert json.loads(out)["profile"]["rows"] == 2
    code, _, err = cli(capsys, *base, "show", "ds-nope")
    assert code == 1
    assert "no dataset has the id or name 'ds-nope'" in err
    code, out, err = cli(capsys, *base, "show", "train")  # a name: its latest version
    assert code == 0, err
    assert f"train: the latest of 2 versions, {second.id}" in out
    assert first.id not in out
    code, out, _ = cli(capsys, *base, "show", "labels", "--json")
    assert json.loads(out)["id"] == labels.id
    code, out, err = cli(
        capsys,
        "--home",
        str(home),
        "models",
        "register",
        "m",
        "--artifact",
        str(model_dir),
        "--dataset",
        listed[1]["id"],
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["dataset_ids"] == [first.id]


def test_datasets_register_records_a_profiled_version_whose_id_dataset_options_take(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, model_dir: Path
) -> None:
    home = ("--home", str(init_home(capsys, tmp_path / "h")))
    data = tmp_path / "train.csv"
    data.write_text("a,b\n1,7\n2,8\n")
    code, out, err = cli(
        capsys, *home, "datasets", "register", "train", str(data), "--categorical", "b", "--json"
    )
    assert code == 0, err
    record = json.loads(out)
    assert record["name"] == "train"
    assert record["uri"] == data.absolute().as_uri()
    assert record["profile"]["rows"] == 2
    assert record["profile"]["features"]["a"]["kind"] == "numeric"
    assert record["profile"]["features"]["b"]["kind"] == "categorical"
    code, out, _ = cli(capsys, *home, "datasets", "register", "train", str(data))
    assert code == 0
    assert f"dataset train is already recorded as {record['id']}" in out  # same bytes, same id
    data.write_text("a,b\n3,9\n")
    code, out, _ = cli(capsys, *home, "datasets", "register", "train", str(data))
    assert code == 0
    [second] = [d for d in _listed(capsys, *home) if d["id"] != record["id"]]
    assert f"recorded dataset train as {second['id']}" in out
    code, out, err = cli(
        capsys,
        *home,
        "models",
        "register",
        "m",
        "--artifact",
        str(model_dir),
        "--dataset",
        second["id"],
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["dataset_ids"] == [second["id"]]


def _listed(capsys: pytest.CaptureFixture[str], *home: str) -> list[dict[str, object]]:
    code, out, err = cli(capsys, *home, "datasets", "list", "--json")
    assert code == 0, err
    listed: list[dict[str, object]] = json.loads(out)
    return listed


@pytest.mark.parametrize(
    ("name", "path", "extra", "message"),
    [
        ("train", "missing.csv", (), "path does not exist"),
        (" train", "data.csv", (), "dataset name"),
        ("train", "data.csv", ("--categorical", "nope"), "categorical column(s) not in the data"),
        ("train", "notes.txt", ("--categorical", "a"), "only a CSV or Parquet file is profiled"),
        ("train", "data.csv", ("--categorical", "a", "--no-profile"), "--no-profile"),
    ],
)
def test_datasets_register_refuses_bad_input_in_one_line_and_records_nothing(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    name: str,
    path: str,
    extra: tuple[str, ...],
    message: str,
) -> None:
    home = ("--home", str(init_home(capsys, tmp_path / "h")))
    (tmp_path / "data.csv").write_text("a,b\n1,x\n")
    (tmp_path / "notes.txt").write_text("a,b\n1,x\n")
    code, out, err = cli(capsys, *home, "datasets", "register", name, str(tmp_path / path), *extra)
    assert code == 1
    assert message in err
    assert "Traceback" not in out + err
    assert _listed(capsys, *home) == []


def test_audit_verify_names_the_first_broken_sequence(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, model_dir: Path
) -> None:
    init_home(capsys, tmp_path / "h")
    home = tmp_path / "h"
    cli(capsys, "--home", str(home), "models", "register", "m", "--artifact", str(model_dir))
    cli(capsys, "--home", str(home), "models", "alias", "m:1", "champion")
    code, out, _ = cli(capsys, "--home", str(home), "audit", "verify")
    assert code == 0
    assert "3 events" in out  # the policy acted under, the registration, the alias
    store = Store(f"sqlite:///{home / 'store.db'}")
    with store.write() as conn:
        conn.execute(
            text(
                "UPDATE audit_events SET canonical = replace(canonical, 'm@champion', 'm@rogue') "
                "WHERE seq = 3"
            )
        )
    code, out, _ = cli(capsys, "--home", str(home), "audit", "verify")
    assert code == 1
    assert "broken at sequence 3" in out


def test_backends_table_lists_local(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "backends")
    assert code == 0
    assert "local" in out
    assert "registry.aliases" in out


def test_serving_commands_drive_endpoints_and_batch_scoring(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from sklearn.dummy import DummyClassifier

    from mintaka import Platform
    from mintaka.domain.registry import Signature
    from mintaka.flavors import sklearn as sklearn_flavor

    home = tmp_path / "h"
    x, y = [[0.0, 1.0], [1.0, 0.0]], [0, 1]
    with Platform(home) as plat:
        for strategy in ("prior", "most_frequent"):
            plat.register_model(
                "m",
                sklearn_flavor.save(
                    DummyClassifier(strategy=strategy).fit(x, y), tmp_path / strategy
                ),
                flavor="sklearn",
                signature=Signature(inputs={"x": "float", "y": "float"}),
            )
    h = ["--home", str(home), "--as", "ops"]
    assert cli(capsys, *h, "endpoints", "create", "api", "m:1", "--route", "blue")[0] == 0
    assert cli(capsys, *h, "endpoints", "deploy", "api", "m:2", "--route", "green")[0] == 0
    code, out, err = cli(capsys, *h, "endpoints", "traffic", "api", "blue=80", "green=20")
    assert code == 0, err
    assert "green=20" in out
    code, _, err = cli(capsys, *h, "endpoints", "traffic", "api", "blue=80", "green=30")
    assert code == 1
    assert "sum to 100" in err
    code, out, _ = cli(capsys, *h, "endpoints", "history", "api", "--json")
    assert [d["traffic"]["weights"] for d in json.loads(out)] == [
        {"blue": 100},
        {"blue": 100, "green": 0},
        {"blue": 80, "green": 20},
    ]
    assert cli(capsys, *h, "rollback", "api")[0] == 0
    code, out, _ = cli(capsys, *h, "endpoints", "show", "api", "--json")
    assert json.loads(out)["traffic"]["weights"] == {"blue": 100, "green": 0}
    assert cli(capsys, *h, "kill", "api", "--reason", "incident")[0] == 0
    code, out, _ = cli(capsys, *h, "endpoints", "list", "--json")
    assert json.loads(out)[0]["status"] == "killed"
    assert cli(capsys, *h, "unkill", "api")[0] == 0

    source = tmp_path / "in.csv"
    source.write_text("x,y\n0.5,0.5\n1.0,0.0\n")
    code, out, err = cli(
        capsys, *h, "score", "m:1", "--input", str(source), "--output", str(tmp_path / "o.csv")
    )
    assert code == 0, err
    assert "scored 2 rows" in out
    prediction_id = (tmp_path / "o.csv").read_text().splitlines()[1].split(",")[2]
    code, out, err = cli(capsys, *h, "lineage", "decide", prediction_id, "--decision", "approve")
    assert code == 0, err
    code, out, _ = cli(capsys, *h, "lineage", "trace", prediction_id, "--json")
    traced = json.loads(out)
    assert traced["version"]["version"] == 1
    assert [d["decision"] for d in traced["decisions"]] == ["approve"]


def test_monitor_and_ticket_commands(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, make_servable: MakeArtifact
) -> None:
    from mintaka import Platform

    home = tmp_path / "h"
    with Platform(home, actor="dana") as plat:
        plat.register_model("m", make_servable(b"m"), flavor="pyfunc")
        plat.serving.create_endpoint("api", "m:1", route="blue")
    h = ["--home", str(home), "--as", "ops"]
    code, out, _ = cli(capsys, *h, "monitor", "coverage", "--json")
    assert code == 1
    assert json.loads(out) == [
        {"endpoint": "api", "routes": ["blue"], "monitored": False, "killed": False}
    ]
    spec = tmp_path / "monitor.toml"
    spec.write_text(
        'endpoint = "api"\nmodel = "m"\n\n[[signals]]\nname = "errors"\nkind = "telemetry"\n'
        'metric = "error_rate"\nthreshold = 0.05\nwindow = "15m"\nowner = "oncall"\n'
        'runbook_url = "https://runbooks.example/api"\n'
    )
    assert cli(capsys, *h, "monitor", "add", str(spec))[0] == 0
    assert cli(capsys, *h, "monitor", "coverage")[0] == 0
    code, out, _ = cli(capsys, *h, "monitor", "run", "--once")
    assert code == 0
    assert "evaluated 0 signals" in out  # no traffic yet: nothing to judge
    with Platform(home, actor="ops") as plat:
        _, ticket = plat.monitoring.raise_alert("drift", "api", owner="oncall")
    code, out, _ = cli(capsys, *h, "tickets", "list", "--json")
    assert [t["id"] for t in json.loads(out)] == [ticket.id]
    assert cli(capsys, *h, "tickets", "ack", ticket.id)[0] == 0
    assert cli(capsys, *h, "tickets", "resolve", ticket.id, "--note", "fixed")[0] == 0
    code, out, _ = cli(capsys, *h, "tickets", "list", "--status", "resolved", "--json")
    assert json.loads(out)[0]["acked_by"] == "ops"


def test_an_unknown_ticket_status_is_a_one_line_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    init_home(capsys, tmp_path / "h")
    code, _, err = cli(capsys, "--home", str(tmp_path / "h"), "tickets", "list", "--status", "x")
    assert code == 1
    assert " ".join(err.split()) == (
        "error: invalid ticket status 'x'; expected one of: open, acknowledged, resolved"
    )


def test_audit_log_redacts_secrets_in_event_details(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import timedelta

    from mintaka import Platform
    from mintaka.governance.policy import DEFAULT_POLICY

    secret = "sk-test-0123456789abcdef0123456789abcdef"
    monkeypatch.setenv("MINTAKA_TEST_TOKEN", secret)
    monkeypatch.delenv("MINTAKA_POLICY")
    home = tmp_path / "h"
    home.mkdir()
    roles = '[roles]\n"rita" = ["model-risk"]\n'
    (home / "policy.toml").write_text(DEFAULT_POLICY.read_text().replace("[roles]\n", roles, 1))
    artifact = tmp_path / "m.bin"
    artifact.write_bytes(b"m")
    with Platform(home, actor="dana") as dana:
        version = dana.register_model("m", artifact, tier="high")
    with Platform(home, actor="rita") as rita:
        rita.governance.grant_exception(
            version.ref,
            "approvals",
            requester="dana",
            justification=f"pilot approved, token {secret}",
            expires_at=rita.clock.now() + timedelta(days=1),
        )
    code, out, _ = cli(capsys, "--home", str(home), "audit", "log", "--json")
    assert code == 0
    assert secret not in out
    assert "policy.exception" in out


@pytest.mark.parametrize("name", ["[bold]", "[/x]", "[sagemaker]"])
def test_an_error_message_is_printed_as_written(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str
) -> None:
    """Messages carry user input and backend prefixes in square brackets: not read as markup
    (dropped), nor crashing the error printer."""
    init_home(capsys, tmp_path / "h")
    code, _, err = cli(capsys, "--home", str(tmp_path / "h"), "models", "show", name)
    assert code == 1
    assert f"invalid model name '{name}'" in " ".join(err.split())


def test_paths_the_os_refuses_are_one_line_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a_file = tmp_path / "a.txt"
    a_file.write_text("x")
    code, out, err = cli(capsys, "--home", str(a_file), "models", "list")
    assert code == 1
    assert "Traceback" not in out + err
    assert str(a_file) in "".join(err.split())
    home = tmp_path / "h"
    assert cli(capsys, "--home", str(home), "init")[0] == 0
    code, out, err = cli(capsys, "--home", str(home), "audit", "keygen", "--out", str(a_file))
    assert code == 1
    assert "error" in err
    assert "Traceback" not in out + err
    monkeypatch.setenv("MINTAKA_POLICY", str(tmp_path))
    code, _, err = cli(
        capsys, "--home", str(home), "models", "register", "m", "--artifact", str(a_file)
    )
    assert code == 1
    assert f"policy {tmp_path} cannot be read" in " ".join(err.split())


def test_a_declared_flavor_the_files_do_not_hold_is_refused_at_registration(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """An sklearn model under another name than model.skops next to other files would be
    accepted, then fail on every load with a path inside the artifact store."""
    from sklearn.dummy import DummyClassifier

    from mintaka.flavors import sklearn as sklearn_flavor

    h = ["--home", str(init_home(capsys, tmp_path / "h")), "--as", "dana"]
    skops = sklearn_flavor.dumps(DummyClassifier().fit([[0.0, 1.0], [1.0, 0.0]], [0, 1]))
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "clf.skops").write_bytes(skops)
    (bundle / "notes.txt").write_text("trained on the spring data")
    register = ["models", "register", "credit", "--flavor", "sklearn", "--features", "a,b"]
    code, _, err = cli(capsys, *h, *register, "--artifact", str(bundle))
    assert code == 1
    assert "flavor 'sklearn' needs model.skops" in " ".join(err.split())
    assert not list((tmp_path / "h" / "artifacts").rglob("clf.skops"))  # nothing stored
    assert json.loads(cli(capsys, *h, "models", "list", "--json")[1]) == []

    single = tmp_path / "clf.skops"  # a single skops file is the model, whatever its name
    single.write_bytes(skops)
    code, _, err = cli(capsys, *h, *register, "--artifact", str(single))
    assert code == 0, err
    (tmp_path / "in.csv").write_text("a,b\n1,2\n")
    code, out, err = cli(
        capsys, *h, "score", "credit:1", "--input", str(tmp_path / "in.csv"),
        "--output", str(tmp_path / "out.csv"),
    )  # fmt: skip
    assert code == 0, err
    assert "scored 1 rows" in out


def test_conformance_matrix_refuses_an_unknown_backend_before_writing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    recorded = (Path(__file__).parents[2] / "docs/conformance-results.json").read_text()
    results = tmp_path / "results.json"
    results.write_text(recorded)
    page = tmp_path / "page.md"
    code, _, err = cli(
        capsys, "conformance", "matrix", "--backend", "locall",
        "--output", str(page), "--results", str(results),
    )  # fmt: skip
    assert code == 1
    assert "no backend named 'locall' (installed: " in " ".join(err.split())
    assert "local" in err
    assert not page.exists()
    assert results.read_text() == recorded


def test_conformance_matrix_checks_the_backend_before_the_kit_and_says_how_to_install_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mintaka_conformance", None)  # importing it fails
    page = tmp_path / "page.md"
    code, _, err = cli(
        capsys, "conformance", "matrix", "--backend", "locall", "--output", str(page)
    )
    assert code == 1
    assert "no backend named 'locall'" in " ".join(err.split())
    code, _, err = cli(capsys, "conformance", "matrix", "--no-run", "--output", str(page))
    assert code == 1
    said = " ".join(err.split())
    assert "pip install mintaka-conformance" in said
    assert "uv sync --all-packages" in said
    assert not page.exists()


def test_a_bad_route_is_reported_as_the_route_option(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from mintaka import Platform

    home = tmp_path / "h"
    artifact = tmp_path / "m.bin"
    artifact.write_bytes(b"m")
    with Platform(home, actor="dana") as plat:
        plat.register_model("m", artifact)
    h = ["--home", str(home), "--as", "ops"]
    for command in ("create", "deploy"):
        code, _, err = cli(capsys, *h, "endpoints", command, "scoring", "m:1", "--route", "v2")
        assert code == 1
        assert " ".join(err.split()).startswith("error: invalid route name 'v2'")
        assert "(given as --route)" in " ".join(err.split())
    with Platform(home, actor="ops") as plat, pytest.raises(ValidationError, match="route name"):
        plat.serving.create_endpoint("scoring", "m:1", route="v2")


def test_invalid_records_and_files_are_one_line_errors_without_pydantic_dumps(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    make_servable: MakeArtifact,
) -> None:
    from mintaka import Platform

    home = tmp_path / "h"
    artifact = make_servable(b"m")
    with Platform(home, actor="dana") as plat:
        plat.register_model("m", artifact, flavor="pyfunc")
        plat.serving.create_endpoint("scoring", "m:1", route="blue")
    h = ["--home", str(home), "--as", "ops"]

    def one_line(*args: str) -> str:
        code, _, err = cli(capsys, *h, *args)
        assert code == 1
        assert err.startswith("error: ")
        assert "errors.pydantic.dev" not in err
        assert "input_value" not in err
        assert err.count("\n") == 1, err
        return err

    traffic = ["endpoints", "traffic", "scoring", "blue=100", "--shadow", "blue"]
    assert "shadow_percent: Input should be less than or equal to 100" in one_line(
        *traffic, "--shadow-percent", "150"
    )
    (home / "config.toml").write_text('backend = "local"\n[backend_settings]\nsurge = 1\n')
    assert "surge: Extra inputs are not permitted" in one_line("models", "list")
    (home / "config.toml").write_text('backend = "local"\nsurge = 1\n')
    assert "surge: Extra inputs are not permitted" in one_line("models", "list")
    (home / "config.toml").write_text('backend = "local"\n')
    policy = tmp_path / "policy.toml"
    policy.write_text("surge = 1\n")
    monkeypatch.setenv("MINTAKA_POLICY", str(policy))
    assert "surge: Extra inputs are not permitted" in one_line(
        "models", "register", "m", "--artifact", str(artifact)
    )


@pytest.mark.parametrize("given", ["", "   ", "rita\nroot"])
def test_a_blank_or_multi_line_identity_is_refused_and_nothing_is_recorded(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, given: str
) -> None:
    home = ["--home", str(init_home(capsys, tmp_path / "h"))]
    (tmp_path / "a.bin").write_bytes(b"a")
    code, _, err = cli(
        capsys, *home, "--as", given, "models", "register", "m",
        "--artifact", str(tmp_path / "a.bin"),
    )  # fmt: skip
    assert code == 1
    assert "error: the identity given (--as or actor=)" in err
    assert json.loads(cli(capsys, *home, "models", "list", "--json")[1]) == []
    code, out, _ = cli(capsys, *home, "audit", "log", "--json")
    assert [e["action"] for e in json.loads(out) if e["action"].startswith("model.")] == []


def test_scoring_into_its_own_input_file_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from sklearn.dummy import DummyClassifier

    from mintaka import Platform
    from mintaka.domain.registry import Signature
    from mintaka.flavors import sklearn as sklearn_flavor

    home = tmp_path / "h"
    model = DummyClassifier().fit([[0.0, 1.0], [1.0, 0.0]], [0, 1])
    with Platform(home, actor="dana") as plat:
        plat.register_model(
            "m",
            sklearn_flavor.save(model, tmp_path / "model"),
            flavor="sklearn",
            signature=Signature(inputs={"x": "float", "y": "float"}),
        )
    source = tmp_path / "in.csv"
    source.write_text("x,y\n0.5,0.5\n")
    (tmp_path / "sub").mkdir()
    for output in (source, tmp_path / "sub" / ".." / "in.csv"):
        code, _, err = cli(
            capsys, "--home", str(home), "--as", "ops", "score", "m:1",
            "--input", str(source), "--output", str(output),
        )  # fmt: skip
        assert code == 1
        assert "is the input file" in " ".join(err.split())
        assert source.read_text() == "x,y\n0.5,0.5\n"


def test_a_report_on_an_unknown_endpoint_creates_no_output_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    home = ["--home", str(init_home(capsys, tmp_path / "h")), "--as", "ops"]
    out = tmp_path / "report"
    code, _, err = cli(capsys, *home, "monitor", "report", "nope", "--out", str(out))
    assert code == 1
    assert "nope" in err
    assert not out.exists()


def test_serve_on_a_busy_port_does_not_claim_to_be_serving(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import socket

    home = ["--home", str(init_home(capsys, tmp_path / "h"))]
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out, err = cli(capsys, *home, "serve", "--port", str(port))
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in err
    assert "choose another --port" in err
    assert "serving" not in out
    assert f"starting the inference server on 127.0.0.1:{port}" in out


def test_serve_on_port_zero_says_the_url_it_got_once_bound(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mintaka.local.server import InferenceServer

    start = InferenceServer.start

    def start_then_stop(server: InferenceServer, host: str, port: int) -> str:
        url = start(server, host, port)
        server._stop.set()  # as Ctrl-C would, right after the bind
        return url

    monkeypatch.setattr(InferenceServer, "start", start_then_stop)
    home = ["--home", str(init_home(capsys, tmp_path / "h"))]
    code, out, _ = cli(capsys, *home, "serve", "--port", "0")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("starting the inference server on 127.0.0.1:0 ")
    [serving] = [line for line in lines if line.startswith("serving on ")]
    port = int(serving.removeprefix("serving on http://127.0.0.1:").split()[0])
    assert port != 0


def test_a_lineage_reference_of_an_unknown_kind_names_both_readings(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    home = ["--home", str(init_home(capsys, tmp_path / "h"))]
    code, _, err = cli(capsys, *home, "lineage", "upstream", "bogus:thing")
    assert code == 1
    message = " ".join(err.split())
    assert "'bogus:thing' is neither a model version NAME:VERSION" in message
    assert "nor a lineage node KIND:KEY (kinds: dataset," in message


def test_lineage_trace_prints_stored_decision_text_as_recorded(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from sklearn.dummy import DummyClassifier

    from mintaka import Platform
    from mintaka.domain.registry import Signature
    from mintaka.flavors import sklearn as sklearn_flavor

    home = tmp_path / "h"
    with Platform(home) as plat:
        plat.register_model(
            "m",
            sklearn_flavor.save(
                DummyClassifier().fit([[0.0, 1.0], [1.0, 0.0]], [0, 1]), tmp_path / "m"
            ),
            flavor="sklearn",
            signature=Signature(inputs={"x": "float", "y": "float"}),
        )
    h = ["--home", str(home), "--as", "ops:audit"]
    source = tmp_path / "in.csv"
    source.write_text("x,y\n0.5,0.5\n1.0,0.0\n")
    scored = tmp_path / "o.csv"
    code, _, err = cli(capsys, *h, "score", "m:1", "--input", str(source), "--output", str(scored))
    assert code == 0, err
    first, second = (line.split(",")[2] for line in scored.read_text().splitlines()[1:])
    for prediction, said in (
        (first, "declined per [policy] :warning: manual"),
        (second, "declined [/]"),
    ):
        code, _, err = cli(capsys, *h, "lineage", "decide", prediction, "--decision", said)
        assert code == 0, err
        code, out, err = cli(capsys, *h, "lineage", "trace", prediction)
        assert code == 0, err
        assert f"{said} (ops:audit)" in " ".join(out.split())

    code, _, err = cli(capsys, *h, "lineage", "trace", "a:warning:b")
    assert code == 1
    assert "a:warning:b" in err


@pytest.mark.parametrize("once", [True, False])
def test_monitor_run_stopped_with_sigterm_is_a_clean_stop(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    once: bool,
) -> None:
    import signal

    from mintaka.monitoring.service import MonitoringService

    home = init_home(capsys, tmp_path / "home")
    cleaned: list[str] = []

    def terminated_mid_pass(_self: MonitoringService) -> None:
        try:
            signal.raise_signal(signal.SIGTERM)  # what a service manager sends
            raise AssertionError("SIGTERM did not stop the pass")
        finally:
            cleaned.append("pass unwound")

    monkeypatch.setattr(MonitoringService, "run_once", terminated_mid_pass)
    before = signal.getsignal(signal.SIGTERM)
    code, _, err = cli(
        capsys, "--home", str(home), "monitor", "run", *(["--once"] if once else ["--every", "1"])
    )
    assert (code, err.strip(), cleaned) == (0, "stopped", ["pass unwound"])
    assert signal.getsignal(signal.SIGTERM) == before


def _served_with_monitor(home: Path, make_servable: MakeArtifact) -> str:
    """A home serving endpoint ``api`` with one monitor added through the CLI; its id."""
    from mintaka import Platform
    from mintaka.domain.monitoring import MonitorSpec

    with Platform(home, actor="dana") as plat:
        plat.register_model("m", make_servable(b"m"), flavor="pyfunc")
        plat.serving.create_endpoint("api", "m:1", route="blue")
        spec = {
            "endpoint": "api",
            "model": "m",
            "signals": [
                {
                    "name": "errors",
                    "kind": "telemetry",
                    "metric": "error_rate",
                    "threshold": 0.05,
                    "window": "15m",
                    "owner": "oncall",
                }
            ],
        }
        return plat.monitoring.add_monitor(MonitorSpec.model_validate(spec))


def test_monitor_list_shows_a_monitor_this_release_cannot_read_with_why(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, make_servable: MakeArtifact
) -> None:
    from sqlalchemy import select, update

    from mintaka import Platform
    from mintaka.store.schema import monitors

    home = tmp_path / "h"
    good = _served_with_monitor(home, make_servable)
    with Platform(home, actor="dana") as plat:
        [spec] = plat.monitoring.monitors()
        late = spec.signals[0].model_copy(update={"name": "late"})
        bad = plat.monitoring.add_monitor(spec.model_copy(update={"signals": [late]}))
        with plat.store.write() as conn:
            spec = dict(
                conn.execute(select(monitors.c.spec).where(monitors.c.id == bad)).scalar_one()
            )
            spec["signals"] = [
                dict(s, escalation=[{"after_minutes": "soon", "to": "b"}]) for s in spec["signals"]
            ]
            conn.execute(update(monitors).where(monitors.c.id == bad).values(spec=spec))
    h = ["--home", str(home), "--as", "ops"]

    code, out, err = cli(capsys, *h, "monitor", "list", "--json")
    assert code == 0, err
    listed = json.loads(out)
    assert [row["id"] for row in listed] == [good, bad]
    assert listed[0]["endpoint"] == "api"
    assert listed[0]["unreadable"] is None
    assert set(listed[1]) == set(listed[0])
    assert {key: listed[1][key] for key in ("endpoint", "model", "signals")} == dict.fromkeys(
        ("endpoint", "model", "signals")
    )
    assert bad in listed[1]["unreadable"]
    assert "after_minutes" in listed[1]["unreadable"]

    code, out, err = cli(capsys, *h, "monitor", "list")
    assert code == 0, err
    flat = " ".join(out.split())
    assert good in flat
    assert bad in flat
    assert "monitors this release cannot read" in flat
    assert "after_minutes" in flat


def test_tickets_list_quotes_stored_values_that_could_forge_a_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, make_servable: MakeArtifact
) -> None:
    from sqlalchemy import update

    from mintaka import Platform
    from mintaka.store.schema import tickets

    home = tmp_path / "h"
    _served_with_monitor(home, make_servable)
    owner, runbook = "oncall\nFORGED open critical", "https://runbooks.example/a\x1b[2J"
    with Platform(home, actor="ops") as plat:
        _, ticket = plat.monitoring.raise_alert("drift", "api", owner="oncall")
        with plat.store.write() as conn:  # written before owners and runbook URLs were checked
            conn.execute(
                update(tickets)
                .where(tickets.c.id == ticket.id)
                .values(owner=owner, runbook_url=runbook)
            )
    h = ["--home", str(home), "--as", "ops"]

    code, out, err = cli(capsys, *h, "tickets", "list")
    assert code == 0, err
    assert "\x1b" not in out
    assert not any(line.lstrip().startswith("FORGED") for line in out.splitlines())
    flat = "".join(out.split())
    assert "".join(repr(owner).split()) in flat
    assert repr(runbook) in flat

    code, out, err = cli(capsys, *h, "tickets", "list", "--json")
    assert code == 0, err
    [listed] = json.loads(out)
    assert (listed["owner"], listed["runbook_url"]) == (owner, runbook)


def test_monitor_list_quotes_a_stored_owner_that_could_forge_a_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, make_servable: MakeArtifact
) -> None:
    from sqlalchemy import select, update

    from mintaka import Platform
    from mintaka.store.schema import monitors

    home = tmp_path / "h"
    watched = _served_with_monitor(home, make_servable)
    owner = "oncall\nFORGED api drift"
    with Platform(home, actor="dana") as plat, plat.store.write() as conn:
        # written before owners were checked: the monitor still loads, its signal fails alone
        spec = dict(conn.execute(select(monitors.c.spec).where(monitors.c.id == watched)).scalar())
        spec["signals"] = [dict(s, owner=owner) for s in spec["signals"]]
        conn.execute(update(monitors).where(monitors.c.id == watched).values(spec=spec))
    h = ["--home", str(home), "--as", "ops"]

    code, out, err = cli(capsys, *h, "monitor", "list")
    assert code == 0, err
    assert not any(line.lstrip().startswith("FORGED") for line in out.splitlines())
    assert "".join(repr(owner).split()) in "".join(out.split())
