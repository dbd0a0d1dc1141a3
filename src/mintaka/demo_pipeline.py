"""The credit-default training pipeline of ``mintaka demo``, and its one computing step.

ingest -> validate-data (gate) -> train -> evaluate (gate) -> register -> challenge (gate) ->
approvals (gate) -> canary (gate) -> promote. ``train`` runs in a sub-process of its own; the rest
are controller steps of :mod:`mintaka.pipelines`.
"""

from __future__ import annotations

import csv
from pathlib import Path

from pydantic import BaseModel

from mintaka.domain.pipelines import GateKind, PipelineSpec, StepSpec
from mintaka.pipelines.contract import StepContext

FEATURES = ("income", "debt_ratio", "age", "late_payments", "utilisation", "tenure")
LABEL = "default"
SEGMENT = "segment"


class TrainInputs(BaseModel):
    data: Path
    label: str
    features: str
    c: float = 1.0
    max_iter: int = 500
    seed: int = 0
    test_size: float = 0.25


class TrainOutputs(BaseModel):
    model: Path
    holdout: Path
    train_rows: int


def train(inputs: TrainInputs, ctx: StepContext) -> TrainOutputs:
    """A logistic regression on a seeded split; the model is saved with skops (same inputs, same
    bytes) and the holdout (every feature column and the label) written beside it for the
    gates."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    from mintaka.flavors import sklearn as sklearn_flavor
    from mintaka.pipelines.gates import binary_label

    features = [f for f in inputs.features.split(",") if f]
    with inputs.data.open() as handle:
        rows = list(csv.DictReader(handle))
    y = [binary_label(row[inputs.label], inputs.label, inputs.data) for row in rows]
    train_rows, test_rows = train_test_split(
        rows, test_size=inputs.test_size, random_state=inputs.seed, stratify=y
    )
    model = LogisticRegression(C=inputs.c, max_iter=inputs.max_iter).fit(
        [[float(row[f]) for f in features] for row in train_rows],
        [binary_label(row[inputs.label], inputs.label, inputs.data) for row in train_rows],
    )
    directory = sklearn_flavor.save(model, ctx.workdir / "model")
    holdout = ctx.workdir / "holdout.csv"
    numeric = [c for c in rows[0] if c in FEATURES or c == inputs.label]
    with holdout.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=numeric, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(test_rows)
    return TrainOutputs(model=directory, holdout=holdout, train_rows=len(train_rows))


def _params(*names: str) -> dict[str, str]:
    """Step inputs read from the pipeline parameters of the same names."""
    return {name: f"params.{name}" for name in names}


# Parameters the pipeline declares only when given: each sets a limit that is otherwise not set.
OPTIONAL_PARAMETERS = ("max_expected_cost",)


def credit_pipeline(**overrides: str | int | float | bool) -> PipelineSpec:
    """The demo's pipeline; ``overrides`` change parameter defaults or give one of
    :data:`OPTIONAL_PARAMETERS` (``max_expected_cost``: the evaluation gate's limit on the
    expected business cost, none unless given)."""
    parameters: dict[str, str | int | float | bool] = {
        "data": "credit.csv",
        "dataset": "credit-applications",
        "model": "credit-default",
        "tier": "high",
        "owner": "dana.developer",
        "label": LABEL,
        "features": ",".join(FEATURES),
        "categorical": SEGMENT,
        "protected": SEGMENT,
        "c": 0.5,
        "max_iter": 500,
        "seed": 7,
        "min_rows": 500,
        "max_missing_rate": 0.0,
        "max_psi": 2.0,
        "min_group_ratio": 0.8,
        "min_auc": 0.7,
        "max_calibration_error": 0.1,
        "endpoint": "credit-scoring",
        "canary_steps": "10,50,100",
        "bake_seconds": 1.0,
        "min_requests": 10,
        "max_error_rate": 0.01,
        "p99_latency_ms": 1000.0,
    }
    unknown = sorted(set(overrides) - set(parameters) - set(OPTIONAL_PARAMETERS))
    if unknown:
        raise ValueError(f"the credit pipeline has no parameters {unknown}")
    parameters.update(overrides)
    builtin = "mintaka.pipelines.builtins"
    gates = "mintaka.pipelines.gates"
    return PipelineSpec(
        name="credit-default-training",
        parameters=parameters,
        steps=[
            StepSpec(
                name="ingest",
                entrypoint=f"{builtin}:register_dataset",
                inputs={
                    "path": "params.data",
                    "name": "params.dataset",
                    "categorical": "params.categorical",
                },
            ),
            StepSpec(
                name="validate-data",
                entrypoint=f"{gates}:validate_data",
                gate=GateKind.DATA_VALIDATION,
                inputs={
                    "dataset_id": "ingest.dataset_id",
                    **_params(
                        "label",
                        "min_rows",
                        "max_missing_rate",
                        "max_psi",
                        "protected",
                        "min_group_ratio",
                    ),
                },
            ),
            StepSpec(
                name="train",
                entrypoint="mintaka.demo_pipeline:train",
                depends_on=["validate-data"],
                inputs={
                    "data": "ingest.path",
                    **_params("label", "features", "c", "max_iter", "seed"),
                },
            ),
            StepSpec(
                name="evaluate",
                entrypoint=f"{gates}:evaluate_model",
                gate=GateKind.EVALUATION,
                inputs={
                    "model": "train.model",
                    "holdout": "train.holdout",
                    **_params("label", "tier", "features", "min_auc", "max_calibration_error"),
                    "name": "params.model",
                    "cost_model": "params.model",
                    **_params(*(p for p in OPTIONAL_PARAMETERS if p in parameters)),
                },
            ),
            StepSpec(
                name="register",
                entrypoint=f"{builtin}:register_model",
                inputs={
                    "name": "params.model",
                    "model": "train.model",
                    **_params("tier", "features", "owner"),
                    "metrics": "evaluate.metrics",
                },
            ),
            StepSpec(
                name="challenge",
                entrypoint=f"{gates}:beat_champion",
                gate=GateKind.EVALUATION,
                inputs={
                    "model": "register.ref",
                    "holdout": "train.holdout",
                    "label": "params.label",
                },
            ),
            StepSpec(
                name="approvals",
                entrypoint=f"{gates}:approvals",
                gate=GateKind.DEPLOYMENT,
                depends_on=["challenge"],
                inputs={"model": "register.ref"},
            ),
            StepSpec(
                name="canary",
                entrypoint=f"{builtin}:deploy_canary",
                gate=GateKind.DEPLOYMENT,
                depends_on=["approvals"],
                inputs={
                    "model": "register.ref",
                    "endpoint": "params.endpoint",
                    "steps": "params.canary_steps",
                    **_params("bake_seconds", "min_requests", "max_error_rate", "p99_latency_ms"),
                },
            ),
            StepSpec(
                name="promote",
                entrypoint=f"{builtin}:promote",
                depends_on=["canary"],
                inputs={"model": "register.ref", "endpoint": "params.endpoint"},
            ),
        ],
    )
