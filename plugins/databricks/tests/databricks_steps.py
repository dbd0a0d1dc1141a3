"""Pipeline steps the Databricks step runner's tests run: a plain step, one taking its context,
and a gate."""

from __future__ import annotations

from pydantic import BaseModel

from mintaka.domain.pipelines import GateCheck, GateOutcome
from mintaka.pipelines.contract import StepContext


class FitInputs(BaseModel):
    depth: int
    features: list[str]
    label: str = "churned"


class FitOutputs(BaseModel):
    model_uri: str
    auc: float
    features: list[str]


def fit(inputs: FitInputs, ctx: StepContext) -> FitOutputs:
    return FitOutputs(
        model_uri=f"runs:/{ctx.run_id}/{ctx.pipeline}/{ctx.step}/d{inputs.depth}/{inputs.label}",
        auc=inputs.depth / 10,
        features=inputs.features,
    )


class GateInputs(BaseModel):
    auc: float
    min_auc: float = 0.8


def auc_gate(inputs: GateInputs) -> GateOutcome:
    check = GateCheck(
        name="auc", passed=inputs.auc >= inputs.min_auc, value=inputs.auc, limit=inputs.min_auc
    )
    return GateOutcome(passed=check.passed, checks=(check,))


class NoInputs(BaseModel):
    pass


class LabelOutputs(BaseModel):
    label: str | None = None


def no_label(inputs: NoInputs) -> LabelOutputs:
    """A step whose output is ``None``."""
    return LabelOutputs()


class EchoInputs(BaseModel):
    label: str | None
    depth: int | str


def echo(inputs: EchoInputs) -> EchoInputs:
    """The inputs handed back, as the step was given them."""
    return inputs


class MetricsOutputs(BaseModel):
    metrics: dict[str, float]


def measures_nan(inputs: NoInputs) -> MetricsOutputs:
    """Metrics one of which is NaN: a metric that was not measured."""
    return MetricsOutputs(metrics={"auc": float("nan"), "loss": 0.3})
