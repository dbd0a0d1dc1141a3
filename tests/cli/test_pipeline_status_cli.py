"""``mintaka pipeline status``: a submitted run's steps, the versions adopted, and exit codes
(the adoption itself is tested against SageMaker's fake, in the plugin's pipeline tests)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from cli_kit import cli

from mintaka.cli import pipelines as pipelines_cli
from mintaka.domain.pipelines import PipelineRun, PipelineStatus, StepRun
from mintaka.pipelines.service import SubmittedRun

AT = datetime(2026, 1, 1, tzinfo=UTC)


def submitted(status: PipelineStatus, problems: tuple[str, ...] = ()) -> SubmittedRun:
    run = PipelineRun(
        id="arn:run/1",
        pipeline="retrain",
        status=status,
        steps=(StepRun(name="register", status=status, started_at=AT),),
        started_at=AT,
        backend="sagemaker",
    )
    return SubmittedRun(run=run, problems=problems)


@pytest.fixture
def answer(monkeypatch: pytest.MonkeyPatch) -> dict[str, SubmittedRun]:
    box: dict[str, SubmittedRun] = {}

    def status(run_id: str) -> SubmittedRun:
        assert run_id == "arn:run/1"
        return box["run"]

    fake: Any = SimpleNamespace(pipelines=SimpleNamespace(status=status))
    monkeypatch.setattr(pipelines_cli, "platform", lambda _ctx: fake)
    return box


def test_a_succeeded_run_exits_0(
    capsys: pytest.CaptureFixture[str], answer: dict[str, SubmittedRun]
) -> None:
    answer["run"] = submitted(PipelineStatus.SUCCEEDED)
    code, out, _ = cli(capsys, "pipeline", "status", "arn:run/1")
    assert code == 0
    assert "succeeded" in out
    code, out, _ = cli(capsys, "pipeline", "status", "arn:run/1", "--json")
    assert json.loads(out)["run"]["status"] == "succeeded"


@pytest.mark.parametrize(
    "found",
    [
        submitted(PipelineStatus.FAILED),
        submitted(PipelineStatus.SUCCEEDED, ("churn:1 (step register) not adopted: gone",)),
    ],
)
def test_a_failed_run_or_an_unadopted_version_exits_1(
    capsys: pytest.CaptureFixture[str], answer: dict[str, SubmittedRun], found: SubmittedRun
) -> None:
    answer["run"] = found
    code, out, _ = cli(capsys, "pipeline", "status", "arn:run/1")
    assert code == 1
    for problem in found.problems:
        assert "not adopted" in out
        assert problem.split(":")[0] in out
