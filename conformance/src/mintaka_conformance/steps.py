"""Step callables named by the pipeline the conformance suite compiles and submits.

They are typed steps (pydantic inputs and outputs), so a backend that runs the pipeline for real,
like the local one, carries them out; every input has a default, so the suite's spec wires none.
"""

from __future__ import annotations

from pydantic import BaseModel


class TrainInputs(BaseModel):
    max_depth: int = 4


class TrainOutputs(BaseModel):
    auc: float


class EvaluateInputs(BaseModel):
    auc: float = 0.0


class EvaluateOutputs(BaseModel):
    passed: bool


def train(inputs: TrainInputs) -> TrainOutputs:
    return TrainOutputs(auc=0.5 + inputs.max_depth / 100)


def evaluate(inputs: EvaluateInputs) -> EvaluateOutputs:
    return EvaluateOutputs(passed=inputs.auc >= 0.5)
