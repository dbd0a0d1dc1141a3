"""Run one pipeline step as a Databricks Jobs task: the file ``submit`` uploads to ``step_runner``.

Each task of a compiled pipeline is a ``spark_python_task`` running this file with the arguments
:meth:`TaskArguments.render` gives (the one definition of that format, read back by
:meth:`TaskArguments.parse`)::

    --pipeline P --step S --entrypoint E [--gate=KIND] [--run-id=R]
    --param=NAME=VALUE ... --input=FIELD=VALUE ...

Job parameters and upstream outputs arrive as dynamic value references that Databricks has
replaced by text; each input is passed as that text when its field accepts it, else as the JSON it
holds (a list, a mapping). The step runs through Mintaka's own step machinery
(:func:`mintaka.pipelines.step.run_step`). Its outputs become task values (what
``{{tasks.<step>.values.<field>}}`` reads downstream) and one last line on stdout,
``MINTAKA_STEP_OUTPUTS <json>``, which the backend reads back from the task's logs. A gate whose
outcome did not pass ends the task non-zero, so the steps after it do not run.

The file needs only ``mintaka`` and the standard library (plus ``databricks.sdk.runtime`` for
``dbutils``, which the Databricks runtime provides), so the job's environment installs ``mintaka``
alone: run it as ``python run_step.py ARGUMENTS``.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from mintaka.domain.pipelines import GateOutcome
from mintaka.errors import GateFailed, ValidationError
from mintaka.pipelines.contract import load_step
from mintaka.pipelines.step import run_step

MARKER = "MINTAKA_STEP_OUTPUTS"
"""The start of the stdout line that carries a step's outputs as JSON."""

_NAMED = ("pipeline", "step", "entrypoint")
_OPTIONAL = ("gate", "run-id")
_PAIRS = {"param": "parameters", "input": "inputs"}


class TaskValues(Protocol):
    """``dbutils.jobs.taskValues``: where a task leaves values for the tasks after it."""

    def set(self, key: str, value: Any) -> None: ...


@dataclass(frozen=True)
class TaskArguments:
    """What one task is told: which step of which pipeline to run, and on what."""

    pipeline: str
    step: str
    entrypoint: str
    gate: str | None = None
    run_id: str = ""
    parameters: dict[str, str] = field(default_factory=dict)
    inputs: dict[str, str] = field(default_factory=dict)

    def render(self) -> list[str]:
        """The task's ``spark_python_task.parameters``."""
        rendered = ["--pipeline", self.pipeline, "--step", self.step]
        rendered += ["--entrypoint", self.entrypoint]
        if self.gate is not None:
            rendered.append(f"--gate={self.gate}")
        if self.run_id:
            rendered.append(f"--run-id={self.run_id}")
        rendered += [f"--param={key}={value}" for key, value in self.parameters.items()]
        rendered += [f"--input={key}={value}" for key, value in self.inputs.items()]
        return rendered

    @classmethod
    def parse(cls, argv: Sequence[str]) -> TaskArguments:
        """The arguments :meth:`render` gave; anything else is a ``ValidationError``."""
        named: dict[str, str] = {}
        pairs: dict[str, dict[str, str]] = {"parameters": {}, "inputs": {}}
        rest = list(argv)
        while rest:
            flag = rest.pop(0)
            name, equals, value = flag.removeprefix("--").partition("=")
            if not flag.startswith("--") or name not in (*_NAMED, *_OPTIONAL, *_PAIRS):
                raise ValidationError(f"unexpected step runner argument {flag!r}")
            if name not in _PAIRS and not equals:
                if not rest:
                    raise ValidationError(f"step runner argument {flag} needs a value")
                value = rest.pop(0)
            if name in _PAIRS:
                key, equals, value = value.partition("=")
                if not key or not equals:
                    raise ValidationError(f"expected {flag.split('=')[0]}=NAME=VALUE, got {flag!r}")
                pairs[_PAIRS[name]][key] = value
            else:
                named[name] = value
        missing = [f"--{name}" for name in _NAMED if not named.get(name)]
        if missing:
            raise ValidationError(f"the step runner needs {', '.join(missing)}")
        return cls(
            pipeline=named["pipeline"],
            step=named["step"],
            entrypoint=named["entrypoint"],
            gate=named.get("gate"),
            run_id=named.get("run-id", ""),
            parameters=pairs["parameters"],
            inputs=pairs["inputs"],
        )


def gate_refusal(step: str, kind: str | None, outcome: GateOutcome) -> str:
    """Why gate ``step`` stopped its pipeline, worded as the local executor words it."""
    return str(GateFailed(step, kind or "gate", outcome.failures()))


def outputs_line(outputs: dict[str, Any]) -> str:
    """The stdout line that carries ``outputs`` (JSON on one line)."""
    return f"{MARKER} {json.dumps(outputs, separators=(',', ':'), sort_keys=True)}"


def read_outputs(logs: str | None) -> dict[str, Any]:
    """The outputs the last marker line of a task's ``logs`` carries; ``{}`` when there is none
    (or the logs were cut through it)."""
    for line in reversed((logs or "").splitlines()):
        if not line.startswith(MARKER + " "):
            continue
        try:
            found = json.loads(line[len(MARKER) + 1 :])
        except ValueError:
            return {}
        return found if isinstance(found, dict) else {}
    return {}


def _decoded(model: type[BaseModel], texts: dict[str, str]) -> dict[str, Any]:
    """Each input's text as its field takes it: the text itself, else the JSON it holds."""
    values: dict[str, Any] = {}
    for name, text in texts.items():
        info = model.model_fields.get(name)
        values[name] = text
        if info is None or info.annotation is None:
            continue
        try:
            TypeAdapter(info.annotation).validate_python(text)
        except PydanticValidationError:
            with contextlib.suppress(ValueError):
                values[name] = json.loads(text)
    return values


def _dbutils_task_values() -> TaskValues:
    from databricks.sdk.runtime import dbutils

    task_values: TaskValues = dbutils.jobs.taskValues
    return task_values


def main(argv: Sequence[str] | None = None, task_values: TaskValues | None = None) -> int:
    """Run the step the arguments name, publish its outputs, and fail on a gate that held."""
    try:
        arguments = TaskArguments.parse(sys.argv[1:] if argv is None else argv)
    except ValidationError as exc:
        print(f"mintaka step runner: {exc}", file=sys.stderr)
        return 2
    contract = load_step(arguments.entrypoint)
    result = run_step(
        contract,
        _decoded(contract.input_model, arguments.inputs),
        pipeline=arguments.pipeline,
        step=arguments.step,
        run_id=arguments.run_id,
        workdir=Path(tempfile.mkdtemp(prefix=f"mintaka-{arguments.step}-")),
    )
    outputs = result.model_dump(mode="json")
    values = _dbutils_task_values() if task_values is None else task_values
    for key, value in outputs.items():
        values.set(key, value)
    print(outputs_line(outputs), flush=True)
    if isinstance(result, GateOutcome) and not result.passed:
        print(gate_refusal(arguments.step, arguments.gate, result), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
