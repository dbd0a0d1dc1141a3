"""The step runner each Databricks pipeline task runs: its arguments are the ones ``compile``
emits, it runs the step through Mintaka's step machinery, publishes the outputs as task values and
as a marker line on stdout, and fails the task when a gate did not pass."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mintaka_databricks import step_runner
from mintaka_databricks.step_runner import MARKER, TaskArguments, main, read_outputs

from mintaka.errors import ValidationError


class StubTaskValues:
    """``dbutils.jobs.taskValues`` as a task sees it: what was set, by key."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def set(self, key: str, value: Any) -> None:
        json.dumps(value)  # only JSON values are accepted
        self.values[key] = value


def fit_arguments(**inputs: str) -> list[str]:
    return TaskArguments(
        pipeline="train",
        step="fit",
        entrypoint="databricks_steps:fit",
        run_id="881",
        parameters={"depth": "5"},
        inputs=inputs,
    ).render()


def test_arguments_round_trip_through_render_and_parse() -> None:
    arguments = TaskArguments(
        pipeline="train",
        step="evaluate",
        entrypoint="pkg.steps:evaluate",
        gate="evaluation",
        run_id="{{job.run_id}}",
        parameters={"depth": "{{job.parameters.depth}}"},
        inputs={"query": "a=b", "auc": "{{tasks.fit.values.auc}}"},
    )
    rendered = arguments.render()
    assert rendered[:6] == [
        "--pipeline",
        "train",
        "--step",
        "evaluate",
        "--entrypoint",
        "pkg.steps:evaluate",
    ]
    assert "--input=query=a=b" in rendered
    assert TaskArguments.parse(rendered) == arguments


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["--pipeline", "p", "--step", "s"], "needs --entrypoint"),
        (
            ["--pipeline", "p", "--step", "s", "--entrypoint", "m:f", "--input=novalue"],
            "NAME=VALUE",
        ),
        (["--pipeline", "p", "--step", "s", "--entrypoint", "m:f", "--debug"], "unexpected"),
        (["--pipeline", "p", "--step"], "needs a value"),
    ],
)
def test_arguments_compile_never_emits_are_refused(argv: list[str], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        TaskArguments.parse(argv)


def test_a_step_runs_and_its_outputs_become_task_values_and_a_marker_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    values = StubTaskValues()
    code = main(fit_arguments(depth="7", features='["age", "plan"]'), task_values=values)
    assert code == 0
    expected = {
        "model_uri": "runs:/881/train/fit/d7/churned",
        "auc": 0.7,
        "features": ["age", "plan"],
    }
    assert values.values == expected
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith(MARKER + " ")
    assert read_outputs(f"spark says hi\n{last}\n") == expected


def test_a_gate_that_did_not_pass_fails_the_task_with_its_checks(
    capsys: pytest.CaptureFixture[str],
) -> None:
    values = StubTaskValues()
    argv = TaskArguments(
        pipeline="train",
        step="evaluate",
        entrypoint="databricks_steps:auc_gate",
        gate="evaluation",
        inputs={"auc": "0.61"},
    ).render()
    assert main(argv, task_values=values) == 1
    captured = capsys.readouterr()
    assert "gate 'evaluate' (evaluation) failed: auc: 0.61 (limit 0.8)" in captured.err
    assert read_outputs(captured.out)["passed"] is False
    assert values.values["passed"] is False
    assert main([*argv[:-1], "--input=auc=0.91"], task_values=StubTaskValues()) == 0


def test_missing_or_cut_logs_hold_no_outputs() -> None:
    assert read_outputs(None) == {}
    assert read_outputs("a traceback\n") == {}
    assert read_outputs(f'{MARKER} {{"auc": 0.9') == {}
    assert read_outputs('"auc": 0.9}\n') == {}


def test_the_runner_runs_as_a_plain_script(tmp_path: Path) -> None:
    """The file ``submit`` uploads runs as ``python run_step.py ...`` with only ``mintaka``."""
    script = Path(step_runner.__file__)
    done = subprocess.run(
        [sys.executable, str(script), "--pipeline", "train", "--step", "fit"],
        check=False,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert "the step runner needs --entrypoint" in done.stderr
