"""Step callables named by the pipeline the conformance suite compiles and submits."""

from __future__ import annotations


def train(max_depth: int = 4) -> dict[str, float]:
    return {"auc": 0.5 + max_depth / 100}


def evaluate(auc: float = 0.0) -> dict[str, bool]:
    return {"passed": auc >= 0.5}
