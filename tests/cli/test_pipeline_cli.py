"""``mintaka pipeline ...``, ``mintaka retrain`` and ``lineage downstream --stage``."""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

import pytest
from cli_kit import cli, init_home
from hypothesis import given
from hypothesis import strategies as st

from mintaka.cli.pipelines import _parameters

SPEC = """
name = "cli-pipeline"
parameters = {n = 2, limit = 10.0}

[[steps]]
name = "produce"
entrypoint = "pipeline_steps:produce"
inputs = {n = "params.n"}

[[steps]]
name = "check"
entrypoint = "pipeline_steps:at_most"
gate = "evaluation"
inputs = {value = "produce.total", limit = "params.limit"}
"""


@pytest.fixture
def spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "pipelines"))
    path = tmp_path / "pipeline.toml"
    path.write_text(SPEC)
    return path


def test_run_show_and_rerun_from_the_cache(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, spec: Path
) -> None:
    init_home(capsys, tmp_path / "h")
    home = ["--home", str(tmp_path / "h")]
    code, out, err = cli(capsys, *home, "pipeline", "run", str(spec), "--inline")
    assert code == 0, err
    assert "produce: ok" in out
    assert "succeeded" in out
    args = ("pipeline", "run", str(spec), "--inline", "-p", "n=2", "-p", "limit=10.0")
    code, out, _ = cli(capsys, *home, *args)
    assert "produce: cached" in out
    code, out, _ = cli(capsys, *home, "pipeline", "runs", "--json")
    runs = json.loads(out)
    assert [r["status"] for r in runs] == ["succeeded", "succeeded"]
    # -p values are read as in the spec's TOML: recorded with the types the spec gives them
    assert [r["parameters"] for r in runs] == [{"n": 2, "limit": 10.0}] * 2
    code, out, _ = cli(capsys, *home, "pipeline", "show", runs[0]["id"])
    assert "value: 4 (limit 10)" in out
    code, out, _ = cli(capsys, *home, "pipeline", "runs")
    assert "trigger" in out
    assert out.count("manual") == 2  # what started each run
    assert "2/2 (0 cached)" in out
    assert "2/2 (2 cached)" in out


def test_a_refusing_gate_exits_1_with_its_numbers_and_resumes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, spec: Path
) -> None:
    init_home(capsys, tmp_path / "h")
    home = ["--home", str(tmp_path / "h")]
    code, out, _ = cli(capsys, *home, "pipeline", "run", str(spec), "--inline", "-p", "n=9")
    assert code == 1
    assert "gate 'check' (evaluation) refused the run" in out
    assert "value: 18 (limit 10)" in out
    run_id = out.split("pipeline resume ")[1].split()[0]
    code, out, _ = cli(capsys, *home, "pipeline", "resume", run_id)
    assert code == 1  # the same inputs meet the same gate
    code, _, err = cli(capsys, *home, "pipeline", "run", str(spec), "-p", "nope")
    assert code == 1
    assert "NAME=VALUE" in err


def test_a_failed_step_names_the_run_to_resume(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    spec: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    init_home(capsys, tmp_path / "h")
    home = ["--home", str(tmp_path / "h")]
    failing = tmp_path / "failing.toml"
    failing.write_text(
        'name = "failing"\nparameters = {n = 2}\n\n[[steps]]\nname = "produce"\n'
        'entrypoint = "pipeline_steps:produce"\ninputs = {n = "params.n"}\n\n'
        '[[steps]]\nname = "consume"\nentrypoint = "pipeline_steps:consume"\n'
        'inputs = {file = "produce.file", total = "produce.total"}\n'
    )
    flag = tmp_path / "fail"
    flag.touch()
    monkeypatch.setenv("MINTAKA_TEST_FAIL_FLAG", str(flag))
    code, out, err = cli(capsys, *home, "pipeline", "run", str(failing), "--inline")
    assert code == 1
    assert "asked to fail by the flag file" in err
    [run] = json.loads(cli(capsys, *home, "pipeline", "runs", "--json")[1])
    assert (
        f"resume it with: {shlex.join(['mintaka', *home, 'pipeline', 'resume', run['id']])}" in out
    )
    flag.unlink()
    code, out, err = cli(capsys, *home, "pipeline", "resume", run["id"])
    assert code == 0, err


@pytest.mark.parametrize(
    ("entrypoint", "says"),
    [
        ("measures", "reported metrics that are not finite numbers"),
        ("undecodable_name", "holds text that is not Unicode"),
    ],
    ids=["nan-metric", "not-unicode"],
)
def test_a_step_failing_with_a_mintaka_error_names_the_run_to_resume(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    spec: Path,
    monkeypatch: pytest.MonkeyPatch,
    entrypoint: str,
    says: str,
) -> None:
    init_home(capsys, tmp_path / "h")
    home = ["--home", str(tmp_path / "h")]
    failing = tmp_path / "failing.toml"
    failing.write_text(
        f'name = "failing"\n\n[[steps]]\nname = "measure"\n'
        f'entrypoint = "pipeline_steps:{entrypoint}"\n'
    )
    flag = tmp_path / "fail"
    flag.touch()
    monkeypatch.setenv("MINTAKA_TEST_FAIL_FLAG", str(flag))
    code, out, err = cli(capsys, *home, "pipeline", "run", str(failing), "--inline")
    assert code == 1
    assert says in err
    [run] = json.loads(cli(capsys, *home, "pipeline", "runs", "--json")[1])
    assert (
        f"resume it with: {shlex.join(['mintaka', *home, 'pipeline', 'resume', run['id']])}" in out
    )


def test_show_prints_parameters_that_read_as_markup_as_they_are(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, spec: Path
) -> None:
    seeded = tmp_path / "seeded.toml"
    seeded.write_text(
        'name = "seeded"\nparameters = {random_state = "[/]"}\n\n[[steps]]\nname = "echo"\n'
        'entrypoint = "pipeline_steps:echo_tag"\ninputs = {tag = "params.random_state"}\n'
    )
    init_home(capsys, tmp_path / "h")
    home = ["--home", str(tmp_path / "h")]
    code, _, err = cli(capsys, *home, "pipeline", "run", str(seeded), "--inline")
    assert code == 0, err
    [run] = json.loads(cli(capsys, *home, "pipeline", "runs", "--json")[1])
    code, out, err = cli(capsys, *home, "pipeline", "show", run["id"])
    assert code == 0, err
    assert "seeds {'random_state': '[/]'}" in " ".join(out.split())


@given(st.one_of(st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False)))
def test_a_param_value_reads_as_its_toml_value(value: bool | int | float) -> None:
    text = str(value).lower() if isinstance(value, bool) else repr(value)
    assert _parameters([f"x={text}"]) == {"x": value}


@pytest.mark.parametrize(
    ("given_text", "read"),
    [
        ('"7"', "7"),
        ("high", "high"),
        ("", ""),
        ("2024-01-31", "2024-01-31"),
        ("[1, 2]", "[1, 2]"),
        ("nan", "nan"),
        ("7\nother = 1", "7\nother = 1"),
        ("a=b", "a=b"),
    ],
)
def test_a_param_value_that_is_no_toml_scalar_is_its_text(given_text: str, read: str) -> None:
    assert _parameters([f"x={given_text}"]) == {"x": read}


TAGGED = """
name = "tagged"
parameters = {tag = "v1", n = 2}

[[steps]]
name = "tag"
entrypoint = "pipeline_steps:echo_tag"
inputs = {tag = "params.tag"}
"""


def test_a_text_parameter_takes_its_value_as_given_however_it_reads(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, spec: Path
) -> None:
    tagged = tmp_path / "tagged.toml"
    tagged.write_text(TAGGED)
    init_home(capsys, tmp_path / "h")
    home = ["--home", str(tmp_path / "h")]
    for value in ("2024", "true", "1e3", '"quoted"'):
        code, _, err = cli(
            capsys, *home, "pipeline", "run", str(tagged), "--inline", "-p", f"tag={value}"
        )
        assert code == 0, err
    code, out, _ = cli(capsys, *home, "pipeline", "runs", "--json")
    assert [r["parameters"]["tag"] for r in json.loads(out)] == ["2024", "true", "1e3", '"quoted"']
    assert _parameters(["tag=2024", "n=3"], {"tag": "v1", "n": 2}) == {"tag": "2024", "n": 3}
    code, _, err = cli(capsys, *home, "pipeline", "bind", "tagger", str(tagged), "-p", "tag=7")
    assert code == 0, err
    code, out, err = cli(capsys, *home, "retrain", "tagger", "--reason", "r", "-p", "tag=2025")
    assert code == 0, err


def test_retrain_reads_a_param_as_the_pipeline_declares_it_whatever_the_binding_holds(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, spec: Path
) -> None:
    """A binding stored before values were coerced may hold a number for a text parameter: a
    ``-p`` value for it is still taken as given, as the spec declares it text."""
    tagged = tmp_path / "tagged.toml"
    tagged.write_text(TAGGED)
    init_home(capsys, tmp_path / "h")
    home = ["--home", str(tmp_path / "h")]
    code, _, err = cli(capsys, *home, "pipeline", "bind", "tagger", str(tagged), "-p", "tag=7")
    assert code == 0, err
    path = tmp_path / "h" / "pipelines" / "training" / "tagger.json"
    binding = json.loads(path.read_text())
    binding["parameters"] = {"tag": 2024}
    path.write_text(json.dumps(binding))
    for value in ("1e3", "0x1F", "true"):
        code, _, err = cli(
            capsys, *home, "retrain", "tagger", "--reason", "r", "-p", f"tag={value}"
        )
        assert code == 0, err
    code, out, _ = cli(capsys, *home, "pipeline", "runs", "--json")
    assert [r["parameters"]["tag"] for r in json.loads(out)] == ["1e3", "0x1F", "true"]


def test_bind_and_retrain_with_a_reason(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, spec: Path
) -> None:
    init_home(capsys, tmp_path / "h")
    home = ["--home", str(tmp_path / "h")]
    code, out, err = cli(capsys, *home, "pipeline", "bind", "scorer", str(spec), "--every", "7d")
    assert code == 0, err
    assert "every 7d" in out
    code, _, err = cli(capsys, *home, "retrain", "scorer")
    assert code == 1
    assert "--reason is required" in err
    code, out, err = cli(capsys, *home, "retrain", "scorer", "--reason", "labels arrived")
    assert code == 0, err
    assert "succeeded" in out
    code, out, _ = cli(capsys, *home, "retrain", "--due")
    assert (code, out) == (0, "nothing due\n")


def test_due_and_pending_try_every_model_and_exit_1_when_one_did_not_succeed(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, spec: Path
) -> None:
    from datetime import timedelta

    from mintaka import Platform
    from mintaka.pipelines.service import TrainingBinding

    home_dir = init_home(capsys, tmp_path / "h")
    home = ["--home", str(home_dir)]
    # "a-held" sorts first and its gate refuses (18 > 10); "b-fine" must still run
    for model, n in (("a-held", "9"), ("b-fine", "1")):
        code, _, err = cli(
            capsys, *home, "pipeline", "bind", model, str(spec), "-p", f"n={n}", "--every", "1d"
        )
        assert code == 0, err
        path = home_dir / "pipelines" / "training" / f"{model}.json"
        binding = TrainingBinding.model_validate_json(path.read_text())
        moved = binding.model_copy(update={"bound_at": binding.bound_at - timedelta(days=2)})
        path.write_text(moved.model_dump_json())
    code, out, _ = cli(capsys, *home, "retrain", "--due")
    assert code == 1
    assert "a-held: gate 'check' (evaluation)" in out
    assert "b-fine: prun-" in out
    assert "succeeded" in out
    with Platform(home_dir) as plat:
        plat.pipelines.request_retraining("a-held", "psi 0.5 > 0.2", trigger="drift")
        plat.pipelines.request_retraining("b-fine", "psi 0.5 > 0.2", trigger="drift")
    code, out, _ = cli(capsys, *home, "retrain", "--pending")
    assert code == 1
    assert "a-held (drift): waiting" in out
    assert "b-fine (drift): done prun-" in out
    code, out, _ = cli(capsys, *home, "retrain", "--pending")
    # nothing left to run: the waiting one waits for its resume
    assert (code, out) == (0, "no retraining request to run\n")


def test_retire_superseded_without_a_champion_says_nothing_is_superseded(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    init_home(capsys, tmp_path / "h")
    home = ["--home", str(tmp_path / "h")]
    artifact = tmp_path / "model"
    artifact.mkdir()
    (artifact / "model.bin").write_bytes(b"weights")
    code, _, err = cli(capsys, *home, "models", "register", "scorer", "--artifact", str(artifact))
    assert code == 0, err
    code, out, err = cli(capsys, *home, "retire-superseded", "scorer")
    assert code == 0, err
    assert out == "scorer has no champion alias: nothing is superseded\n"
    code, _, err = cli(capsys, *home, "retire-superseded", "nosuch")
    assert code == 1
    assert "nosuch" in err


def test_detach_submits_to_a_local_worker_and_status_follows_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, spec: Path
) -> None:
    init_home(capsys, tmp_path / "h")
    from mintaka import Platform
    from mintaka.domain.pipelines import PipelineStatus
    from mintaka.local.backend import LocalBackend

    home = ["--home", str(tmp_path / "h")]
    # In the foreground by default (this also fills the cache the detached run reads).
    code, out, err = cli(capsys, *home, "pipeline", "run", str(spec), "--inline", "-p", "n=3")
    assert code == 0, err
    assert "produce: ok" in out
    code, _, err = cli(capsys, *home, "pipeline", "run", str(spec), "--detach", "--inline")
    assert code == 1
    assert "--detach submits the run" in err
    code, _, err = cli(capsys, *home, "pipeline", "run", str(spec), "--detach", "-p", "m=1")
    assert code == 1
    assert "declares no parameters ['m']" in err
    code, out, err = cli(capsys, *home, "pipeline", "run", str(spec), "--detach", "-p", "n=3")
    assert code == 0, err
    assert "to local: pending" in out
    run_id = out.split("pipeline status ")[1].split()[0]
    assert f"follow it with: {shlex.join(['mintaka', *home, 'pipeline', 'status', run_id])}" in out
    with Platform(tmp_path / "h") as plat:
        backend = plat.backend
        assert isinstance(backend, LocalBackend)
        try:
            deadline = time.monotonic() + 60
            while backend.get_pipeline_run(run_id).status in (
                PipelineStatus.PENDING,
                PipelineStatus.RUNNING,
            ):
                assert time.monotonic() < deadline, "the detached run never ended"
                time.sleep(0.02)
        finally:
            backend.stop_pipeline_run(run_id)  # no worker outlives the test
    code, out, _ = cli(capsys, *home, "pipeline", "status", run_id, "--json")
    assert code == 0
    found = json.loads(out)["run"]
    assert (found["status"], found["parameters"]) == ("succeeded", {"n": "3", "limit": "10.0"})
    code, out, _ = cli(capsys, *home, "pipeline", "show", run_id)
    assert "value: 6 (limit 10)" in out
    code, out, _ = cli(capsys, *home, "pipeline", "runs", "--json")
    assert [r["id"] for r in json.loads(out)][-1] == run_id


def test_a_param_not_of_its_declared_type_is_refused_before_it_is_submitted(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, spec: Path
) -> None:
    init_home(capsys, tmp_path / "h")
    home = ["--home", str(tmp_path / "h")]
    for value, says in (("n=abc", "'n' is declared as int"), ("limit=high", "'limit' is declared")):
        code, _, err = cli(capsys, *home, "pipeline", "run", str(spec), "--detach", "-p", value)
        assert code == 1
        assert says in err
    code, out, _ = cli(capsys, *home, "pipeline", "runs", "--json")
    assert json.loads(out) == []
    from mintaka import Platform

    with Platform(tmp_path / "h") as plat:
        assert plat.backend.list_pipeline_runs() == []  # type: ignore[attr-defined]


def test_compile_on_the_local_backend(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, spec: Path
) -> None:
    init_home(capsys, tmp_path / "h")
    code, out, _ = cli(capsys, "--home", str(tmp_path / "h"), "pipeline", "compile", str(spec))
    assert code == 0
    assert json.loads(out)["format"] == "mintaka-local/1"


def test_a_bad_spec_file_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('name = "Bad Name"\n')
    code, _, err = cli(capsys, "--home", str(tmp_path / "h"), "pipeline", "run", str(path))
    assert code == 1
    assert "pipeline spec" in err


def test_lineage_downstream_of_a_data_source_in_production(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from mintaka import Platform

    data = tmp_path / "x.csv"
    data.write_text("a\n1\n")
    artifact = tmp_path / "m"
    artifact.mkdir()
    (artifact / "w.bin").write_bytes(b"w")
    with Platform(tmp_path / "h") as plat:
        dataset = plat.register_dataset("source-x", data)
        run = plat.start_run("e", dataset_ids=[dataset.id])
        plat.register_model("served", artifact, run_id=run.id)
        plat.register_model("idle", artifact, run_id=run.id)
        plat.set_alias("served", "champion", 1)
    home = ["--home", str(tmp_path / "h")]
    code, out, _ = cli(
        capsys, *home, "lineage", "downstream", "source-x", "--stage", "production", "--json"
    )
    assert code == 0
    labels = {n["label"] for n in json.loads(out)["nodes"] if n["kind"] == "model_version"}
    assert labels == {"served:1"}
    code, out, _ = cli(capsys, *home, "lineage", "downstream", "source-x", "--stage", "production")
    assert "served:1" in out
    assert "idle:1" not in out


def test_unreadable_specs_and_impossible_schedules_are_one_line_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, spec: Path
) -> None:
    init_home(capsys, tmp_path / "h")
    home = ["--home", str(tmp_path / "h")]
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(SPEC.replace("cli-pipeline", "caf\u00e9").encode("latin-1"))
    for args, message in (
        (("pipeline", "run", str(latin1)), "is not UTF-8 text"),
        (("pipeline", "run", str(tmp_path / "missing.toml")), "does not exist"),
        (("pipeline", "bind", "m", str(spec), "--every", "99999999999999999999d"), "too long"),
    ):
        code, _, err = cli(capsys, *home, *args)
        assert code == 1
        assert err.startswith("error: ")
        assert message in " ".join(err.split())  # the console wraps long lines
