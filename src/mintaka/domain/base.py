"""Shared base classes for domain models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamps must be timezone-aware (UTC)")
    return value


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]
JSONDict = dict[str, Any]


class Record(BaseModel):
    """An immutable record: what happened, or what a resource looked like at a moment."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Spec(BaseModel):
    """A request or a declaration: validated on construction, mutable until used."""

    model_config = ConfigDict(extra="forbid")
