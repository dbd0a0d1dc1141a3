"""Numbers as Mintaka reads them (no imports: the store, monitoring and step processes share it)."""

from __future__ import annotations

import math
from typing import Any


def as_float(value: Any) -> float:
    """``float(value)``, except that an integer beyond the float range is +-inf, as the string of
    such a number parses, instead of an ``OverflowError`` (JSON integers have no size limit)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf
