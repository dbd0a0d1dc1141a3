"""The step runner each Databricks pipeline task runs as a notebook: its parameters are the ones
``compile`` emits, it runs the step through Mintaka's step machinery, publishes the outputs as
task values and as the notebook's result, and fails the task when a gate did not pass."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from databricks_support import databricks_backend
from mintaka_conformance.fakes.databricks import FakeDatabricks
from mintaka_databricks import step_runner
from mintaka_databricks.backend import DatabricksBackend
from mintaka_databricks.step_runner import (
    MARKER,
    PREFIX,
    GateHeld,
    TaskArguments,
    main,
    read_outputs,
    read_result,
)

from mintaka.domain.pipelines import PipelineSpec, PipelineStatus, StepSpec
from mintaka.errors import ValidationError

pytest_plugins = ["mintaka_conformance.fakes.databricks_fixtures"]


class NotebookExit(Exception):
    """What ``dbutils.notebook.exit`` raises to end the notebook."""


class StubTaskValues:
    """``dbutils.jobs.taskValues`` as a task sees it: what was set, by key; as documented, a
    value must be JSON of at most 48 KiB (UTF-8, as Databricks stores it)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def set(self, key: str, value: Any) -> None:
        if len(json.dumps(value, ensure_ascii=False).encode()) > 48 * 1024:
            raise ValueError(f"the value of task value {key!r} exceeds 48 KiB")
        self.values[key] = value


class StubWidgets:
    def __init__(self, parameters: dict[str, str]) -> None:
        self.parameters = parameters

    def get(self, name: str) -> str:
        if name not in self.parameters:
            raise RuntimeError(f"InputWidgetNotDefined: {name}")
        return self.parameters[name]


class StubNotebook:
    def __init__(self) -> None:
        self.result: str | None = None

    def exit(self, value: str) -> None:
        self.result = value
        raise NotebookExit(value)


class StubJobs:
    def __init__(self) -> None:
        self.taskValues = StubTaskValues()


class StubDbUtils:
    """The ``dbutils`` of a notebook task whose parameters are ``parameters``."""

    def __init__(self, parameters: dict[str, str]) -> None:
        self.widgets = StubWidgets(parameters)
        self.jobs = StubJobs()
        self.notebook = StubNotebook()


def fit_parameters(exports: tuple[str, ...] = (), **inputs: str) -> dict[str, str]:
    return TaskArguments(
        pipeline="train",
        step="fit",
        entrypoint="databricks_steps:fit",
        run_id="881",
        parameters={"depth": "5"},
        inputs=inputs,
        exports=exports,
    ).base_parameters()


def test_arguments_round_trip_through_base_parameters() -> None:
    arguments = TaskArguments(
        pipeline="train",
        step="evaluate",
        entrypoint="pkg.steps:evaluate",
        gate="evaluation",
        run_id="{{job.run_id}}",
        parameters={"depth": "{{job.parameters.depth}}"},
        inputs={"query": "a=b", "auc": "{{tasks.fit.values.auc}}"},
        exports=("passed",),
    )
    rendered = arguments.base_parameters()
    assert all(name.startswith(PREFIX) for name in rendered)
    assert all(isinstance(value, str) for value in rendered.values())
    assert rendered[PREFIX + "input_auc"] == "{{tasks.fit.values.auc}}"
    assert TaskArguments.from_base_parameters(rendered) == arguments
    plain = TaskArguments(pipeline="p", step="s", entrypoint="m:f")
    assert TaskArguments.from_base_parameters(plain.base_parameters()) == plain


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({PREFIX + "entrypoint": ""}, "needs mintaka_entrypoint"),
        ({PREFIX + "inputs": '["depth", "features"]'}, "needs the mintaka_input_features"),
        ({PREFIX + "params": "depth"}, "JSON list of names"),
        ({PREFIX + "exports": '"auc"'}, "mintaka_exports must be a JSON list of names"),
        ({PREFIX + "format": "3"}, "compiled for step runner form '3'"),
    ],
)
def test_parameters_compile_never_emits_are_refused(change: dict[str, str], problem: str) -> None:
    parameters = fit_parameters(depth="7") | change
    with pytest.raises(ValidationError, match=problem):
        TaskArguments.from_base_parameters(parameters)
    with pytest.raises(ValidationError, match="needs the mintaka_pipeline parameter"):
        TaskArguments.from_widgets(StubWidgets({}).get)


def test_a_step_runs_and_its_outputs_become_task_values_and_the_notebooks_result() -> None:
    """The outputs later steps read become task values; all of them the notebook's result."""
    parameters = fit_parameters(("auc", "model_uri"), depth="7", features='["age", "plan"]')
    dbutils = StubDbUtils(parameters)
    with pytest.raises(NotebookExit):
        main(dbutils)
    expected = {
        "model_uri": "runs:/881/train/fit/d7/churned",
        "auc": 0.7,
        "features": ["age", "plan"],
    }
    # each task value is the output's JSON text, which a later step's runner reads back
    values = dbutils.jobs.taskValues.values
    assert {k: json.loads(v) for k, v in values.items()} == {
        "auc": 0.7,
        "model_uri": expected["model_uri"],
    }
    assert read_result(dbutils.notebook.result) == expected


def test_an_output_over_48_kib_ends_the_step_unless_a_later_step_reads_it() -> None:
    """A task value holds at most 48 KiB of JSON: an output no later step reads may be larger
    (it is only in the notebook's result); one a later step reads fails the step, naming it."""
    features = json.dumps([f"feature_{i:05d}" for i in range(4000)])
    dbutils = StubDbUtils(fit_parameters(("auc",), depth="7", features=features))
    with pytest.raises(NotebookExit):
        main(dbutils)
    assert len(read_result(dbutils.notebook.result)["features"]) == 4000
    dbutils = StubDbUtils(fit_parameters(("auc", "features"), depth="7", features=features))
    with pytest.raises(ValidationError, match=r"output 'features' of step 'fit'.*48 KiB"):
        main(dbutils)
    assert dbutils.jobs.taskValues.values == {}
    assert dbutils.notebook.result is None
    # the limit holds for the task value as set: the output's JSON as text, quotes escaped
    fits_unencoded = json.dumps([f"feature_{i:05d}" for i in range(2700)])
    assert len(fits_unencoded) < 48 * 1024 < len(json.dumps(fits_unencoded))
    dbutils = StubDbUtils(fit_parameters(("features",), depth="7", features=fits_unencoded))
    with pytest.raises(ValidationError, match=r"output 'features' of step 'fit'.*48 KiB"):
        main(dbutils)
    dbutils = StubDbUtils(fit_parameters(("score",), depth="7", features="[]"))
    with pytest.raises(ValidationError, match="gave no output 'score'"):
        main(dbutils)


def test_a_non_ascii_output_is_measured_by_the_utf8_bytes_set_as_its_task_value() -> None:
    """A task value is the output's JSON text as UTF-8, not escaped to ASCII: 8,001 CJK
    characters are 24 KB of it and are set; three times as many are over 48 KiB."""
    text = "日本語" * 2667
    dbutils = StubDbUtils(fit_parameters(("features",), depth="7", features=json.dumps([text])))
    with pytest.raises(NotebookExit):
        main(dbutils)
    value = dbutils.jobs.taskValues.values["features"]
    assert json.loads(value) == [text]
    assert len(value.encode()) < 48 * 1024 // 2
    larger = json.dumps([text * 3])
    dbutils = StubDbUtils(fit_parameters(("features",), depth="7", features=larger))
    with pytest.raises(ValidationError, match=r"output 'features' of step 'fit'.*48 KiB"):
        main(dbutils)


def test_an_output_holding_text_that_is_not_unicode_is_refused_naming_it() -> None:
    """A file name that is not UTF-8, as ``os.listdir`` reads it, holds a lone surrogate: it
    has no UTF-8 JSON to set as a task value, so the step fails naming the output."""
    name = b"data-\xff.csv".decode("utf-8", "surrogateescape")
    dbutils = StubDbUtils(fit_parameters(("features",), depth="7", features=json.dumps([name])))
    with pytest.raises(ValidationError, match=r"output 'features' of step 'fit' holds text"):
        main(dbutils)
    assert dbutils.jobs.taskValues.values == {}
    assert dbutils.notebook.result is None


def test_a_metric_that_is_not_a_number_fails_the_task_as_the_local_executor_fails_the_step() -> (
    None
):
    parameters = TaskArguments(
        pipeline="train", step="measure", entrypoint="databricks_steps:measures_nan"
    ).base_parameters()
    dbutils = StubDbUtils(parameters)
    with pytest.raises(
        ValidationError,
        match=r"^step 'measure' reported metrics that are not finite numbers .*: \['auc'\]$",
    ):
        main(dbutils)
    assert dbutils.jobs.taskValues.values == {}
    assert dbutils.notebook.result is None


def test_a_gate_that_did_not_pass_fails_the_task_with_its_checks_and_outcome() -> None:
    parameters = TaskArguments(
        pipeline="train",
        step="evaluate",
        entrypoint="databricks_steps:auc_gate",
        gate="evaluation",
        inputs={"auc": "0.61"},
        exports=("passed",),
    ).base_parameters()
    dbutils = StubDbUtils(parameters)
    with pytest.raises(GateHeld) as held:
        main(dbutils)
    message = str(held.value)
    assert message.startswith("gate 'evaluate' (evaluation) failed: auc: 0.61 (limit 0.8)\n")
    assert read_outputs(f"\x1b[0;31mGateHeld\x1b[0m: {message}")["passed"] is False
    assert dbutils.jobs.taskValues.values["passed"] == "false"
    assert dbutils.notebook.result is None
    passing = StubDbUtils(parameters | {PREFIX + "input_auc": "0.91"})
    with pytest.raises(NotebookExit):
        main(passing)
    assert read_result(passing.notebook.result)["passed"] is True


def test_missing_or_cut_output_holds_no_outputs() -> None:
    assert read_outputs(None) == {}
    assert read_outputs("a traceback\n") == {}
    assert read_outputs(f'{MARKER} {{"auc": 0.9') == {}
    assert read_outputs('"auc": 0.9}\n') == {}
    assert read_result(None) == {}
    assert read_result('{"auc": 0.9') == {}
    assert read_result("[1]") == {}


def test_the_runner_is_a_python_source_notebook_that_runs_as_one() -> None:
    """The file ``submit`` uploads as a notebook: run top to bottom with the notebook's own
    ``dbutils``, it runs the step its widgets name."""
    source = Path(step_runner.__file__).read_text()
    assert source.splitlines()[0] == "# Databricks notebook source"
    dbutils = StubDbUtils(fit_parameters(depth="3", features="[]"))
    with pytest.raises(NotebookExit):
        exec(compile(source, "run_step", "exec"), {"__name__": "__main__", "dbutils": dbutils})
    assert read_result(dbutils.notebook.result)["auc"] == pytest.approx(0.3)


@pytest.fixture
def cloud(
    databricks_fake: FakeDatabricks, databricks_environment: Path, tmp_path: Path
) -> Iterator[DatabricksBackend]:
    backend = databricks_backend(DatabricksBackend, databricks_fake, tmp_path, seed=5)
    yield backend
    backend.close()


def test_a_step_gets_upstream_outputs_and_parameters_as_the_local_executor_gives_them(
    databricks_fake: FakeDatabricks, cloud: DatabricksBackend
) -> None:
    """Through the fake, which resolves references as Databricks does: an upstream ``None``
    reaches a ``str | None`` input as ``None`` (not the text ``"null"``), and an int parameter
    an ``int | str`` input as the int."""
    spec = PipelineSpec(
        name="loose",
        parameters={"depth": 3},
        steps=[
            StepSpec(name="prepare", entrypoint="databricks_steps:no_label"),
            StepSpec(
                name="fit",
                entrypoint="databricks_steps:echo",
                inputs={"label": "prepare.label", "depth": "params.depth"},
            ),
        ],
    )
    native = cloud.compile(spec)
    prepare = StubDbUtils(native.definition["tasks"][0]["notebook_task"]["base_parameters"])
    with pytest.raises(NotebookExit):
        main(prepare)
    jobs = databricks_fake.state.jobs
    jobs.script_task("prepare", "SUCCESS", task_values=prepare.jobs.taskValues.values)
    run = cloud.wait_for_pipeline_run(cloud.submit(native, {"depth": "5"}).id)
    assert run.status is PipelineStatus.SUCCEEDED
    resolved = jobs.runs[int(run.id)].tasks[1].resolved
    assert resolved is not None
    fit = StubDbUtils(resolved)
    with pytest.raises(NotebookExit):
        main(fit)
    assert read_result(fit.notebook.result) == {"label": None, "depth": 5}


def test_a_task_compiled_before_exports_were_named_still_runs_its_step() -> None:
    """A run in flight when a newer runner was uploaded: its tasks have neither
    ``mintaka_exports`` nor ``mintaka_json_inputs``, so the step sets every output as a task
    value, as the runner then did, and reads its inputs as text first."""
    parameters = fit_parameters(depth="7", features='["age"]')
    newer = (PREFIX + "exports", PREFIX + "json_inputs", PREFIX + "format")
    older = {k: v for k, v in parameters.items() if k not in newer}
    dbutils = StubDbUtils(older)
    with pytest.raises(NotebookExit):
        main(dbutils)
    assert dbutils.jobs.taskValues.values == {
        "model_uri": "runs:/881/train/fit/d7/churned",
        "auc": 0.7,
        "features": ["age"],
    }
