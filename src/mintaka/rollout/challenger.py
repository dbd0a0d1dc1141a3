"""Champion-challenger: a challenger is promoted only when it beats the champion on the model's
declared business metric over the same holdout, not merely on a technical score.

The business metric is declared once per model (:class:`CostMatrix`: the cost of each kind of
decision at a threshold, so "expected cost per decision" is what the business pays). AUC is
reported beside it as context, never as the deciding number.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field


class CostMatrix(BaseModel):
    """Expected cost per decision when scores at or above ``threshold`` mean "positive"."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = Field(default="cost_matrix", pattern="^cost_matrix$")
    threshold: float = Field(default=0.5, ge=0, le=1)
    true_positive: float = 0.0
    false_positive: float
    true_negative: float = 0.0
    false_negative: float

    def expected_cost(self, labels: Sequence[int], scores: Sequence[float]) -> float:
        if len(labels) != len(scores) or not labels:
            raise ValueError("labels and scores must be non-empty and of equal length")
        if not all(math.isfinite(score) for score in scores):
            # NaN compares false with the threshold: it would count as a "negative" decision
            raise ValueError("scores must be finite numbers")
        total = 0.0
        for label, score in zip(labels, scores, strict=True):
            positive = score >= self.threshold
            if positive:
                total += self.true_positive if label else self.false_positive
            else:
                total += self.false_negative if label else self.true_negative
        return total / len(labels)


class Comparison(BaseModel):
    """The evidence of one champion-challenger comparison."""

    model_config = ConfigDict(frozen=True)

    model: str
    champion: int
    challenger: int
    metric: CostMatrix
    holdout_rows: int
    champion_cost: float
    challenger_cost: float
    champion_auc: float | None
    challenger_auc: float | None

    @property
    def challenger_wins(self) -> bool:
        return self.challenger_cost < self.champion_cost


def auc(labels: Sequence[int], scores: Sequence[float]) -> float | None:
    """ROC AUC by the rank-sum formula; ``None`` when only one class is present."""
    from scipy.stats import rankdata

    positives = sum(1 for label in labels if label)
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return None
    ranks = rankdata(scores)
    rank_sum = sum(rank for rank, label in zip(ranks, labels, strict=True) if label)
    return float((rank_sum - positives * (positives + 1) / 2) / (positives * negatives))
