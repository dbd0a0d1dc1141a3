"""Run one pipeline step in this process: ``python -m mintaka.pipelines.step ENTRYPOINT ...``.

The local executor starts each computing step this way, in a sub-process of its own, and a cloud
pipeline's container runs the same command. Inputs come from ``--inputs FILE`` (JSON) and from any
``--NAME VALUE`` pairs; the outputs are written as JSON to ``--outputs FILE`` (atomically), or
printed when no file is given. A failing step exits non-zero with its traceback on stderr.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mintaka.files import write_atomic
from mintaka.pipelines.contract import StepContext, StepContract, load_step


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


def main(argv: list[str] | None = None) -> int:
    entrypoint, options, extra = _arguments(list(sys.argv[1:] if argv is None else argv))
    contract = load_step(entrypoint)
    values: dict[str, Any] = {}
    if "inputs" in options:
        values.update(json.loads(Path(options["inputs"]).read_text()))
    values.update(extra)
    text = run_step(
        contract,
        values,
        pipeline=options.get("pipeline", os.environ.get("MINTAKA_PIPELINE", "")),
        step=options.get("step", os.environ.get("MINTAKA_STEP", "")),
        run_id=options.get("run-id", ""),
        workdir=Path(options.get("workdir", ".")),
    ).model_dump_json()
    if "outputs" in options:
        write_atomic(Path(options["outputs"]), text, durable=False)
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
