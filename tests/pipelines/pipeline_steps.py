"""Step callables for the pipeline tests (a uniquely named module, importable by the sub-process
steps through the parent's sys.path)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mintaka.domain.pipelines import GateCheck, GateOutcome
from mintaka.errors import ValidationError
from mintaka.pipelines.contract import StepContext, controller_step

FAIL_FLAG = "MINTAKA_TEST_FAIL_FLAG"


class ProduceInputs(BaseModel):
    n: int
    data: Path | None = None


class ProduceOutputs(BaseModel):
    total: int
    pid: int
    file: Path


def produce(inputs: ProduceInputs, ctx: StepContext) -> ProduceOutputs:
    extra = len(inputs.data.read_text()) if inputs.data is not None else 0
    total = inputs.n * 2 + extra
    out = ctx.workdir / "out.txt"
    out.write_text(str(total))
    return ProduceOutputs(total=total, pid=os.getpid(), file=out)


class ConsumeInputs(BaseModel):
    file: Path
    total: int


class ConsumeOutputs(BaseModel):
    doubled: int


def consume(inputs: ConsumeInputs) -> ConsumeOutputs:
    flag = os.environ.get(FAIL_FLAG)
    if flag and Path(flag).exists():
        raise RuntimeError("asked to fail by the flag file")
    return ConsumeOutputs(doubled=int(inputs.file.read_text()) + inputs.total)


class TextOutputs(BaseModel):
    text: str


class NoInputs(BaseModel):
    pass


def text(inputs: NoInputs) -> TextOutputs:
    return TextOutputs(text="seven")


def undecodable_name(inputs: NoInputs) -> TextOutputs:
    """A file name that is not UTF-8, as os.listdir reads it (with a lone surrogate)."""
    return TextOutputs(text=b"data-\xff.csv".decode("utf-8", "surrogateescape"))


class TagInputs(BaseModel):
    tag: str


def echo_tag(inputs: TagInputs) -> TextOutputs:
    """A text parameter handed back, whatever it looks like."""
    return TextOutputs(text=inputs.tag)


class LooseInputs(BaseModel):
    value: int | str


class LooseOutputs(BaseModel):
    kind: str


def kind_of(inputs: LooseInputs) -> LooseOutputs:
    """The type of a value a field that takes a number or a text was given."""
    return LooseOutputs(kind=type(inputs.value).__name__)


class LimitInputs(BaseModel):
    value: float
    limit: float


def at_most(inputs: LimitInputs) -> GateOutcome:
    passed = inputs.value <= inputs.limit
    check = GateCheck(name="value", passed=passed, value=inputs.value, limit=inputs.limit)
    return GateOutcome(passed=passed, checks=(check,))


def untyped(inputs, ctx):  # type: ignore[no-untyped-def]
    return {}


def refuses_itself(inputs: LimitInputs) -> TextOutputs:
    """A step whose own code refuses with GateFailed (an inline check, not a declared gate)."""
    from mintaka.errors import GateFailed

    check = GateCheck(name="value", passed=False, value=inputs.value, limit=inputs.limit)
    raise GateFailed("own-check", "evaluation", [check])


class MetricsOutputs(BaseModel):
    metrics: dict[str, float]


def measures(inputs: NoInputs) -> MetricsOutputs:
    """Metrics, one of which is NaN while the flag file exists (a metric that was not measured)."""
    flag = os.environ.get(FAIL_FLAG)
    auc = float("nan") if flag and Path(flag).exists() else 0.8
    return MetricsOutputs(metrics={"auc": auc, "loss": 0.3})


class EvaluateInputs(BaseModel):
    file: Path


def evaluates(inputs: EvaluateInputs) -> MetricsOutputs:
    """What an evaluation measures: one metric fewer once the model is retuned (the environment
    variable ``MINTAKA_TEST_RETUNED`` set)."""
    if os.environ.get("MINTAKA_TEST_RETUNED"):
        return MetricsOutputs(metrics={"auc": 0.7})
    return MetricsOutputs(metrics={"auc": 0.9, "recall": 0.6})


class CountsOutputs(BaseModel):
    metrics: dict[str, int]


def counts_too_many(inputs: NoInputs) -> CountsOutputs:
    """A count beyond a float's range: no metric the store can hold."""
    return CountsOutputs(metrics={"rows": 10**400, "files": 3})


class SignOffInputs(BaseModel):
    total: int


def signed_off(inputs: SignOffInputs) -> GateOutcome:
    """A gate that holds while the flag file exists (someone's sign-off still outstanding)."""
    flag = os.environ.get(FAIL_FLAG)
    passed = not (flag and Path(flag).exists())
    check = GateCheck(name="sign-off", passed=passed, value=int(passed), limit=1)
    return GateOutcome(passed=passed, checks=(check,))


class BundleInputs(BaseModel):
    source: Path


class BundleOutputs(BaseModel):
    files: list[Path]
    named: dict[str, Path]


def bundle(inputs: BundleInputs) -> BundleOutputs:
    """The text files of a directory, as a list and by name."""
    files = sorted(inputs.source.glob("*.txt"))
    return BundleOutputs(files=files, named={f.stem: f for f in files})


class MeasureInputs(BaseModel):
    files: list[Path]
    named: dict[str, Path] = {}


class MeasureOutputs(BaseModel):
    sizes: list[int]
    named: dict[str, int]


def measure(inputs: MeasureInputs) -> MeasureOutputs:
    return MeasureOutputs(
        sizes=[len(f.read_text()) for f in inputs.files],
        named={name: len(f.read_text()) for name, f in inputs.named.items()},
    )


class UnorderedInputs(BaseModel):
    files: set[Path] = set()


def unordered(inputs: UnorderedInputs) -> TextOutputs:
    return TextOutputs(text=str(len(inputs.files)))


@controller_step
def announce(inputs: NoInputs, ctx: StepContext) -> TextOutputs:
    """A user's own controller step: it reads the platform, so only the controller can run it."""
    return TextOutputs(text=type(ctx.require_platform()).__name__)


def trains(inputs: NoInputs) -> MetricsOutputs:
    """What a training step measures: the metrics a registered model version carries."""
    return MetricsOutputs(metrics={"auc": 0.9, "loss": 0.2})


class RowsInputs(BaseModel):
    rows: int


class RowsOutputs(BaseModel):
    csv: Path


def writes_rows(inputs: RowsInputs, ctx: StepContext) -> RowsOutputs:
    """Prepare a data file to ingest: a step that computes before any dataset is recorded."""
    out = ctx.workdir / "data.csv"
    out.write_text("x,label\n" + "".join(f"{i},{i % 2}\n" for i in range(inputs.rows)))
    return RowsOutputs(csv=out)


def refreshes_rows(inputs: RowsInputs, ctx: StepContext) -> RowsOutputs:
    """The data file ``writes_rows`` writes, ten rows longer once the data is refreshed (the
    environment variable ``MINTAKA_TEST_RETUNED`` set)."""
    rows = inputs.rows + (10 if os.environ.get("MINTAKA_TEST_RETUNED") else 0)
    return writes_rows(RowsInputs(rows=rows), ctx)


class LooseMetricsOutputs(BaseModel):
    metrics: dict[str, Any]


def loosely_measures(inputs: NoInputs) -> LooseMetricsOutputs:
    """Metrics under an untyped field, one of them NaN (a metric that was not measured)."""
    return LooseMetricsOutputs(metrics={"auc": float("nan"), "loss": 0.3})


def measures_none(inputs: NoInputs) -> LooseMetricsOutputs:
    """Metrics under an untyped field, one of them None (a metric that was not measured)."""
    return LooseMetricsOutputs(metrics={"auc": None, "loss": 0.3})


def measures_text(inputs: NoInputs) -> LooseMetricsOutputs:
    """Metrics under an untyped field, one of them text that reads as NaN (no measurement)."""
    return LooseMetricsOutputs(metrics={"auc": "NaN", "loss": 0.3})


def measures_a_list(inputs: NoInputs) -> LooseMetricsOutputs:
    """Metrics under an untyped field, one of them a list (no one measurement)."""
    return LooseMetricsOutputs(metrics={"auc": [0.5], "loss": 0.3})


def loosely_trains(inputs: NoInputs) -> LooseMetricsOutputs:
    """What a training step measures, under an untyped field."""
    return LooseMetricsOutputs(metrics={"auc": 0.9, "loss": 0.2})


class NumberInputs(BaseModel):
    n: int = 0


REFUSED = ValidationError("the quota is exceeded")  # one instance, raised by every call


def refuses(inputs: NumberInputs) -> LooseMetricsOutputs:
    """Fails with the same exception object every time it runs."""
    raise REFUSED
