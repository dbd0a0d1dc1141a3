"""Step callables of the PostgreSQL pipeline test (a uniquely named module, importable by name)."""

from __future__ import annotations

from pydantic import BaseModel


class ProduceInputs(BaseModel):
    n: int


class ProduceOutputs(BaseModel):
    total: int


def produce(inputs: ProduceInputs) -> ProduceOutputs:
    """Twice ``n``."""
    return ProduceOutputs(total=inputs.n * 2)


class ConsumeInputs(BaseModel):
    total: int


class ConsumeOutputs(BaseModel):
    doubled: int


def consume(inputs: ConsumeInputs) -> ConsumeOutputs:
    """Twice the total."""
    return ConsumeOutputs(doubled=inputs.total * 2)
