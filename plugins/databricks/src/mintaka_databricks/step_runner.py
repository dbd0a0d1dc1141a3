# Databricks notebook source
"""Run one pipeline step as a Databricks Jobs task: the notebook ``submit`` uploads to
``step_runner``.

Each task of a compiled pipeline is a ``notebook_task`` running this file, uploaded as a Python
source notebook (the header above makes it one; as a module it is a comment). The task's
``base_parameters`` are the ones :meth:`TaskArguments.base_parameters` gives, the one definition
of their names, which the notebook reads back as widgets (:meth:`TaskArguments.from_widgets`).
Job parameters and upstream outputs arrive as dynamic value references that Databricks has
replaced by text. An upstream output (which the runner sets as its JSON text) and a parameter not
declared as text are JSON text, named in ``mintaka_json_inputs``, and are passed as the JSON they
hold, so a step is given what the local executor would give it (``None`` for an output of
``None``); any other input is passed as its text when its field accepts it, else as the JSON it
holds (a list, a mapping).

The step runs through Mintaka's own step machinery (:func:`mintaka.pipelines.step.run_step`). The
outputs later steps read (``mintaka_exports``) become task values, each its JSON as text (what
``{{tasks.<step>.values.<field>}}`` reads downstream; only a notebook can set them, and each holds
at most 48 KiB of JSON), and all of them the notebook's result (``dbutils.notebook.exit``, JSON),
which the backend reads back from ``runs/get-output``. A gate whose outcome did not pass raises
:class:`GateHeld` instead, so the task fails and the steps after it do not run; its message ends
with the line ``MINTAKA_STEP_OUTPUTS <json>``, so the outcome reads back from the task's error.

The notebook needs only ``mintaka`` and the standard library (plus ``dbutils``, which the
Databricks runtime provides), so the job's environment installs ``mintaka`` alone.
"""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

from pydantic import BaseModel, TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from mintaka.domain.pipelines import GateOutcome
from mintaka.errors import GateFailed, ValidationError
from mintaka.pipelines.contract import load_step, refuse_unmeasured_metrics
from mintaka.pipelines.step import run_step

MARKER = "MINTAKA_STEP_OUTPUTS"
"""The start of the line that carries a failed gate's outputs as JSON in the task's error."""

PREFIX = "mintaka_"
"""The start of every task parameter the runner reads: job parameters are passed to a notebook
as widgets too, and one of the same name would replace the task's own."""
RUNNER_FORMAT = "2"
"""The form of the task parameters this runner reads (``mintaka_format``): a task compiled for
another form is refused rather than run on inputs read the wrong way. A task without it was
compiled before the form was named, and is read as its parameters say."""
TASK_VALUE_BYTES = 48 * 1024
"""The most JSON one task value may hold, as Databricks documents it."""
_NAMED = ("pipeline", "step", "entrypoint")
_OPTIONAL = ("gate", "run_id")
_PAIRS = {"param": "parameters", "input": "inputs"}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class TaskValues(Protocol):
    """``dbutils.jobs.taskValues``: where a task leaves values for the tasks after it."""

    def set(self, key: str, value: Any) -> None: ...


class Widgets(Protocol):
    """``dbutils.widgets``: the notebook task's parameters."""

    def get(self, name: str) -> str: ...


class Notebook(Protocol):
    """``dbutils.notebook``: ``exit`` ends the notebook with its result."""

    def exit(self, value: str) -> None: ...


class JobsUtilities(Protocol):
    """``dbutils.jobs``."""

    @property
    def taskValues(self) -> TaskValues: ...


class DbUtils(Protocol):
    """The part of ``dbutils`` the runner uses."""

    @property
    def widgets(self) -> Widgets: ...

    @property
    def jobs(self) -> JobsUtilities: ...

    @property
    def notebook(self) -> Notebook: ...


class GateHeld(GateFailed):
    """A gate step's outcome did not pass: the task fails with the gate's reason, its outputs on
    the message's last line."""

    def __init__(self, step: str, kind: str | None, outcome: GateOutcome) -> None:
        super().__init__(step, kind or "gate", outcome.failures())
        self.args = (f"{self.args[0]}\n{outputs_line(outcome.model_dump(mode='json'))}",)


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
    # The output fields later steps read, set as task values; None: a task compiled before
    # compile named them, whose step sets every output, as the runner then did.
    exports: tuple[str, ...] | None = ()
    # The inputs whose text is JSON (upstream outputs, parameters other than text); None: a task
    # compiled before task values were JSON text, whose inputs are read as text first.
    json_inputs: tuple[str, ...] | None = ()
    # The job parameters not declared as text, whether a step reads them or not, so that submit
    # checks each value against its declared type; None: a task compiled before they were named.
    json_parameters: tuple[str, ...] | None = ()
    # The form the task was compiled in (RUNNER_FORMAT); None: a task compiled before it was named.
    runner_format: str | None = RUNNER_FORMAT

    def base_parameters(self) -> dict[str, str]:
        """The task's ``notebook_task.base_parameters``: one per argument, each parameter and
        input under its own name (a reference replaced by text may hold any character), with the
        lists of those names and of the outputs to export."""
        rendered = {
            PREFIX + "pipeline": self.pipeline,
            PREFIX + "step": self.step,
            PREFIX + "entrypoint": self.entrypoint,
            PREFIX + "gate": self.gate or "",
            PREFIX + "run_id": self.run_id,
        }
        if self.runner_format is not None:
            rendered[PREFIX + "format"] = self.runner_format
        if self.exports is not None:
            rendered[PREFIX + "exports"] = json.dumps(list(self.exports))
        if self.json_inputs is not None:
            rendered[PREFIX + "json_inputs"] = json.dumps(list(self.json_inputs))
        if self.json_parameters is not None:
            rendered[PREFIX + "json_params"] = json.dumps(list(self.json_parameters))
        for kind, attribute in _PAIRS.items():
            values: dict[str, str] = getattr(self, attribute)
            rendered[f"{PREFIX}{kind}s"] = json.dumps(list(values))
            rendered |= {f"{PREFIX}{kind}_{key}": value for key, value in values.items()}
        return rendered

    @classmethod
    def from_widgets(cls, get: Callable[[str], str]) -> TaskArguments:
        """The arguments :meth:`base_parameters` gave, read through ``get`` (a widget's value);
        anything else is a ``ValidationError``."""

        def read(name: str) -> str:
            try:
                return str(get(PREFIX + name))
            except Exception:  # dbutils raises its own kinds for a missing widget
                needed = f"the step runner needs the {PREFIX}{name} parameter"
                raise ValidationError(needed) from None

        def present(name: str) -> bool:
            try:
                get(PREFIX + name)
            except Exception:  # dbutils raises its own kinds for a missing widget
                return False
            return True

        def names(name: str) -> list[str]:
            try:
                keys = json.loads(read(name))
            except ValueError:
                keys = None
            if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
                raise ValidationError(f"{PREFIX}{name} must be a JSON list of names")
            return keys

        runner_format = read("format") if present("format") else None
        if runner_format is not None and runner_format != RUNNER_FORMAT:
            raise ValidationError(
                f"this task was compiled for step runner form {runner_format!r}, but the step "
                f"runner at its notebook path reads form {RUNNER_FORMAT!r} (the notebook was "
                "replaced): submit the pipeline again"
            )
        named = {name: read(name) for name in (*_NAMED, *_OPTIONAL)}
        missing = [PREFIX + name for name in _NAMED if not named[name]]
        if missing:
            raise ValidationError(f"the step runner needs {', '.join(missing)}")
        pairs = {
            attribute: {key: read(f"{kind}_{key}") for key in names(f"{kind}s")}
            for kind, attribute in _PAIRS.items()
        }
        return cls(
            pipeline=named["pipeline"],
            step=named["step"],
            entrypoint=named["entrypoint"],
            gate=named["gate"] or None,
            run_id=named["run_id"],
            parameters=pairs["parameters"],
            inputs=pairs["inputs"],
            exports=tuple(names("exports")) if present("exports") else None,
            json_inputs=tuple(names("json_inputs")) if present("json_inputs") else None,
            json_parameters=tuple(names("json_params")) if present("json_params") else None,
            runner_format=runner_format,
        )

    @classmethod
    def from_base_parameters(cls, parameters: Mapping[str, str]) -> TaskArguments:
        """The arguments a task's ``base_parameters`` hold."""
        return cls.from_widgets(lambda name: parameters[name])


def gate_refusal(step: str, kind: str | None, outcome: GateOutcome) -> str:
    """Why gate ``step`` stopped its pipeline, worded as the local executor words it."""
    return str(GateFailed(step, kind or "gate", outcome.failures()))


def outputs_line(outputs: dict[str, Any]) -> str:
    """The line that carries ``outputs`` (JSON on one line)."""
    return f"{MARKER} {json.dumps(outputs, separators=(',', ':'), sort_keys=True)}"


def read_result(result: str | None) -> dict[str, Any]:
    """The outputs a notebook's result holds; ``{}`` when there is none (or it was cut)."""
    try:
        found = json.loads(result or "")
    except ValueError:
        return {}
    return found if isinstance(found, dict) else {}


def plain(text: str | None) -> str:
    """``text`` (a task's error or its trace) without its terminal colours."""
    return _ANSI.sub("", text or "")


def read_outputs(text: str | None) -> dict[str, Any]:
    """The outputs the last marker line in ``text`` (a task's error or its trace, colours and
    all) carries; ``{}`` when there is none (or it was cut through)."""
    for line in reversed(plain(text).splitlines()):
        at = line.find(MARKER + " ")
        if at < 0:
            continue
        try:
            found, _ = json.JSONDecoder().raw_decode(line[at + len(MARKER) + 1 :])
        except ValueError:
            return {}
        return found if isinstance(found, dict) else {}
    return {}


def step_inputs(model: type[BaseModel], arguments: TaskArguments) -> dict[str, Any]:
    """The step's input values from the texts its task was given: the JSON value of each input
    in ``json_inputs`` (an upstream output, a parameter other than text), so a ``None`` output
    arrives as ``None`` and a number as a number, as the local executor hands them on; any other
    input's text as its field takes it (:func:`_decoded`). A JSON input that holds no JSON is a
    ``ValidationError`` naming it."""
    encoded = set(arguments.json_inputs or ())
    values = _decoded(model, {k: v for k, v in arguments.inputs.items() if k not in encoded})
    for name, text in arguments.inputs.items():
        if name not in encoded:
            continue
        try:
            values[name] = json.loads(text)
        except ValueError:
            raise ValidationError(
                f"input {name!r} of step {arguments.step!r} should be JSON text, got "
                f"{text[:200]!r}: its dynamic value reference was not resolved, or a value was "
                "set by something other than Mintaka's step runner"
            ) from None
    return values


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


def task_values(arguments: TaskArguments, outputs: dict[str, Any]) -> dict[str, Any]:
    """The outputs of ``arguments``' step that later steps read, to be set as task values: each
    as its JSON text, which the step runner of a later step reads back as that JSON (a task of
    the older form, without ``json_inputs``, sets the values themselves). One a later step reads
    but the step did not give, or one whose task value is over the 48 KiB of JSON a task value
    may hold, is a ``ValidationError`` naming it (Databricks would refuse it, or hand on
    nothing). The size is that of the task value's JSON in UTF-8, text of other than ASCII
    written as it is, not as ``\\u`` escapes that would count six bytes a character. A task
    compiled without ``mintaka_exports`` (a run started before compile named them, meeting this
    runner) sets every output, as the runner then did, so that run ends as it would have."""
    exports = tuple(outputs) if arguments.exports is None else arguments.exports
    lacking = [key for key in exports if key not in outputs]
    if lacking:
        raise ValidationError(
            f"step {arguments.step!r} gave no output {', '.join(map(repr, lacking))}, "
            "which later steps read"
        )
    exported = {key: outputs[key] for key in exports}
    if arguments.json_inputs is not None:
        exported = {key: json.dumps(value, ensure_ascii=False) for key, value in exported.items()}
    for key, value in exported.items():
        size = len(_utf8_json(arguments.step, key, value))
        if size > TASK_VALUE_BYTES:
            raise ValidationError(
                f"output {key!r} of step {arguments.step!r}, which later steps read, is {size} "
                f"bytes of JSON as a task value: a Databricks task value holds at most 48 KiB "
                f"({TASK_VALUE_BYTES} bytes); pass it by reference instead (a file's URI)"
            )
    return exported


def _utf8_json(step: str, key: str, value: Any) -> bytes:
    """``value`` of output ``key`` as the UTF-8 JSON a task value holds; text that is not
    Unicode (a lone surrogate, as ``os.listdir`` reads a file name that is not UTF-8) has none,
    which is a ``ValidationError`` naming the output (as the local executor's)."""
    try:
        return json.dumps(value, ensure_ascii=False).encode()
    except UnicodeEncodeError as exc:
        raise ValidationError(
            f"output {key!r} of step {step!r} holds text that is not Unicode "
            f"({exc.object[exc.start : exc.end]!r}, as os.listdir reads a file name that is "
            "not UTF-8), which has no UTF-8 JSON to record: give it as text that is"
        ) from exc


def _runtime_dbutils() -> DbUtils:
    """The notebook's own ``dbutils``, else the one the Databricks runtime provides."""
    own = globals().get("dbutils")
    if own is not None:
        return cast("DbUtils", own)
    from databricks.sdk.runtime import dbutils

    return cast("DbUtils", dbutils)


def main(dbutils: DbUtils | None = None) -> dict[str, Any]:
    """Run the step the task's parameters name, publish the outputs later steps read as task
    values and all of them as the notebook's result, and raise :class:`GateHeld` on a gate that
    did not pass."""
    utils = _runtime_dbutils() if dbutils is None else dbutils
    arguments = TaskArguments.from_widgets(utils.widgets.get)
    contract = load_step(arguments.entrypoint)
    result = run_step(
        contract,
        step_inputs(contract.input_model, arguments),
        pipeline=arguments.pipeline,
        step=arguments.step,
        run_id=arguments.run_id,
        workdir=Path(tempfile.mkdtemp(prefix=f"mintaka-{arguments.step}-")),
    )
    refuse_unmeasured_metrics(arguments.step, result)  # as the local executor fails the step
    outputs: dict[str, Any] = result.model_dump(mode="json")
    for key, value in task_values(arguments, outputs).items():
        utils.jobs.taskValues.set(key, value)
    if isinstance(result, GateOutcome) and not result.passed:
        raise GateHeld(arguments.step, arguments.gate, result)
    utils.notebook.exit(json.dumps(outputs, separators=(",", ":"), sort_keys=True))
    return outputs


if __name__ == "__main__":
    main()
