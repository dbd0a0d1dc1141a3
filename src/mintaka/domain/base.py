"""Shared base classes for domain models."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict

from mintaka.errors import ValidationError

E = TypeVar("E", bound=Enum)


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


def parse_enum(kind: type[E], value: object, what: str) -> E:
    """``value`` as a member of ``kind``, or a ``ValidationError`` naming the valid values."""
    try:
        return kind(value)
    except ValueError:
        options = ", ".join(str(member.value) for member in kind)
        raise ValidationError(f"invalid {what} {value!r}; expected one of: {options}") from None
