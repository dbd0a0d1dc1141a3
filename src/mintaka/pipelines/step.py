"""Run one pipeline step in this process: ``python -m mintaka.pipelines.step ENTRYPOINT ...``.

The local executor starts each computing step this way, in a sub-process of its own, and a cloud
pipeline's container runs the same command. Inputs come from ``--inputs FILE`` (JSON) and from any
``--NAME VALUE`` pairs; the outputs are written as JSON to ``--outputs FILE`` (atomically), or
printed when no file is given (a metric that is NaN or infinite as the constant ``NaN`` or
``Infinity``). A failing step exits non-zero with its traceback on stderr, and so does a step
whose metrics are no measurement (NaN, infinite, ``None``, text), once its outputs are written:
a ``ValidationError`` naming them, the one the local executor fails such a step with.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mintaka.files import write_atomic
from mintaka.pipelines.contract import (
    StepContext,
    StepContract,
    load_step,
    refuse_unmeasured_metrics,
)


def _arguments(argv: list[str]) -> tuple[str, dict[str, str], dict[str, Any]]:
    if not argv:
        raise SystemExit("usage: python -m mintaka.pipelines.step ENTRYPOINT [--inputs F] ...")
    entrypoint, rest = argv[0], argv[1:]
    options: dict[str, str] = {}
    extra: dict[str, Any] = {}
    if len(rest) % 2:
        raise SystemExit(f"expected --NAME VALUE pairs, got {rest}")
    for flag, value in zip(rest[::2], rest[1::2], strict=True):
        if not flag.startswith("--"):
            raise SystemExit(f"expected --NAME, got {flag!r}")
        key = flag[2:]
        if key in {"inputs", "outputs", "workdir", "run-id", "pipeline", "step"}:
            options[key] = value
        else:
            extra[key.replace("-", "_")] = value
    return entrypoint, options, extra


def run_step(
    contract: StepContract,
    values: dict[str, Any],
    *,
    pipeline: str,
    step: str,
    run_id: str = "",
    workdir: Path = Path("."),
) -> BaseModel:
    """Run one computing step in this process on its input ``values`` and return its outputs,
    validated as its output model: what every process that runs a step (this module, a cloud
    job's runner) does the same way."""
    inputs = contract.input_model.model_validate(values)
    workdir.mkdir(parents=True, exist_ok=True)
    if contract.takes_context:
        context = StepContext(pipeline=pipeline, run_id=run_id, step=step, workdir=workdir)
        outputs = contract.fn(inputs, context)
    else:
        outputs = contract.fn(inputs)
    return contract.output_model.model_validate(outputs)


def outputs_json(result: BaseModel) -> str:
    """A step's outputs as JSON, its metrics as measured: a NaN or infinite metric is written as
    the constant ``NaN`` or ``Infinity`` (which JSON lacks, and Python and pydantic read), not as
    the ``null`` pydantic makes of it, so the executor tells a metric that was not measured and
    fails the step naming it."""
    metrics = result.model_dump().get("metrics")
    if not isinstance(metrics, dict) or not any(
        isinstance(v, float) and not math.isfinite(v) for v in metrics.values()
    ):
        return result.model_dump_json()
    produced = result.model_dump(mode="json")
    produced["metrics"] = {
        name: metrics[name]
        if isinstance(metrics[name], float) and not math.isfinite(metrics[name])
        else value
        for name, value in produced["metrics"].items()
    }
    return json.dumps(produced, ensure_ascii=False)


def main(argv: list[str] | None = None) -> int:
    entrypoint, options, extra = _arguments(list(sys.argv[1:] if argv is None else argv))
    contract = load_step(entrypoint)
    values: dict[str, Any] = {}
    if "inputs" in options:
        values.update(json.loads(Path(options["inputs"]).read_text()))
    values.update(extra)
    step = options.get("step", os.environ.get("MINTAKA_STEP", ""))
    result = run_step(
        contract,
        values,
        pipeline=options.get("pipeline", os.environ.get("MINTAKA_PIPELINE", "")),
        step=step,
        run_id=options.get("run-id", ""),
        workdir=Path(options.get("workdir", ".")),
    )
    text = outputs_json(result)
    if "outputs" in options:
        write_atomic(Path(options["outputs"]), text, durable=False)
    else:
        print(text)
    # After the outputs are written, so the local executor reads what the step reported; a
    # cloud's job (SageMaker's Processing step) fails here, as the local executor fails the step.
    refuse_unmeasured_metrics(step, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
