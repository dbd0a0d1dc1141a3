"""Windows over prediction-log records, and the columns a window's drift is computed on.

A record is a row of the ``predictions`` table (a mapping with ``id``, ``inputs``, ``output`` and
``at``) or any object with those attributes (such as a labelled prediction); ``at`` is a
timezone-aware datetime or its ISO 8601 text, as the log stores it. These functions only slice
what they are given: the store query that fetches a window's records is separate.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from mintaka.errors import ValidationError

if TYPE_CHECKING:
    import numpy.typing as npt

R = TypeVar("R")

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
PREDICTION = "prediction"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_WINDOW = re.compile(r"^\s*(\d{1,9})\s*([smhdwn])\s*$")
MAX_WINDOW = timedelta(days=36_500)  # a century: "now - window" stays a date
MIN_UNMEASURED_AFTER = timedelta(minutes=1)
MAX_UNMEASURED_AFTER = timedelta(days=366)


@dataclass(frozen=True)
class Window(Generic[R]):
    """Records from ``start`` (inclusive) to ``end`` (exclusive for time windows)."""

    start: datetime
    end: datetime
    records: list[R]


def parse_window(text: str) -> timedelta | int:
    """``"15m"``, ``"1h"``, ``"7d"``, ``"2w"`` as a duration; ``"5000n"`` as a count of records."""
    match = _WINDOW.match(text)
    if match is None or int(match.group(1)) == 0:
        raise ValidationError(
            f"invalid window {text!r}: a positive whole number then s, m, h, d, w or n (records)"
        )
    amount, unit = int(match.group(1)), match.group(2)
    if unit == "n":
        return amount
    if amount * _UNITS[unit] > MAX_WINDOW.total_seconds():
        raise ValidationError(
            f"invalid window {text!r}: a time window reaches back at most {MAX_WINDOW.days} days"
        )
    return timedelta(seconds=amount * _UNITS[unit])


def parse_unmeasured_after(text: str) -> timedelta:
    """How long a signal may measure nothing before it is alerted on: written as a time window
    is (``"30m"``, ``"24h"``, ``"3d"``), from a minute (less would alert on a runner's every
    quiet pass) to a year (more is a signal no one watches)."""
    try:
        span = parse_window(text)
    except ValidationError:
        span = None
    if not isinstance(span, timedelta) or not (
        MIN_UNMEASURED_AFTER <= span <= MAX_UNMEASURED_AFTER
    ):
        raise ValidationError(
            f"invalid unmeasured_after {text!r}: a duration from 1m to "
            f"{MAX_UNMEASURED_AFTER.days}d, a positive whole number then s, m, h, d or w"
        )
    return span


def record_time(record: Any) -> datetime:
    """The ``at`` of a record (mapping or object), as an aware datetime."""
    value = record["at"] if isinstance(record, Mapping) else record.at
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(at, datetime) or at.tzinfo is None:
        raise ValidationError(f"record time must be timezone-aware, got {value!r}")
    return at


def windows_by_count(
    records: Iterable[R],
    size: int,
    *,
    at: Callable[[R], datetime] = record_time,
    keep_partial: bool = True,
) -> list[Window[R]]:
    """Consecutive windows of ``size`` records in time order (the last may be shorter)."""
    if size < 1:
        raise ValidationError("window size must be at least 1")
    timed = sorted(((at(r), r) for r in records), key=lambda pair: pair[0])
    out = []
    for i in range(0, len(timed), size):
        chunk = timed[i : i + size]
        if len(chunk) < size and not keep_partial:
            break
        out.append(Window(chunk[0][0], chunk[-1][0], [r for _, r in chunk]))
    return out


def windows_by_time(
    records: Iterable[R],
    width: timedelta,
    *,
    origin: datetime = EPOCH,
    at: Callable[[R], datetime] = record_time,
) -> list[Window[R]]:
    """Non-empty windows ``[origin + k*width, origin + (k+1)*width)``, in time order.

    Aligned on ``origin`` (the Unix epoch by default, so hourly windows start on the hour); a
    window without records is left out.
    """
    if width <= timedelta(0):
        raise ValidationError("window width must be positive")
    buckets: dict[int, list[R]] = {}
    for record, when in sorted(((r, at(r)) for r in records), key=lambda pair: pair[1]):
        buckets.setdefault((when - origin) // width, []).append(record)
    return [
        Window(origin + k * width, origin + (k + 1) * width, chunk)
        for k, chunk in sorted(buckets.items())
    ]


def windows(records: Iterable[R], window: str, **kwargs: Any) -> list[Window[R]]:
    """Windows as a monitor signal declares them (``Signal.window``, see :func:`parse_window`)."""
    spec = parse_window(window)
    if isinstance(spec, int):
        return windows_by_count(records, spec, **kwargs)
    return windows_by_time(records, spec, **kwargs)


def _field(record: Any, name: str) -> Any:
    return record.get(name) if isinstance(record, Mapping) else getattr(record, name, None)


def prediction_columns(
    records: Sequence[Any], *, prediction: str = PREDICTION
) -> dict[str, npt.NDArray[Any]]:
    """Input columns plus the prediction itself, to measure drift on both.

    A scalar output becomes the column ``prediction``; a mapping output one column per key
    (``prediction.<key>``); a one-element list its element. Records logged without inputs give
    missing input values.
    """
    names: dict[str, None] = {}
    for record in records:
        inputs = _field(record, "inputs")
        if isinstance(inputs, Mapping):
            names.update(dict.fromkeys(inputs))
    columns: dict[str, list[Any]] = {name: [] for name in names}
    outputs: dict[str, list[Any]] = {}
    for i, record in enumerate(records):
        inputs = _field(record, "inputs")
        inputs = inputs if isinstance(inputs, Mapping) else {}
        for name in names:
            columns[name].append(inputs.get(name))
        output = _field(record, "output")
        if isinstance(output, list) and len(output) == 1:
            output = output[0]
        flat = (
            {f"{prediction}.{k}": v for k, v in output.items()}
            if isinstance(output, Mapping)
            else {prediction: output}
        )
        for name, value in flat.items():
            outputs.setdefault(name, [None] * i).append(value)
        for values in outputs.values():
            if len(values) < i + 1:
                values.append(None)
    import numpy as np  # here, not at import: the control plane starts without numpy

    out: dict[str, npt.NDArray[Any]] = {}
    for name, values in (columns | outputs).items():
        array = np.empty(len(values), dtype=object)
        array[:] = values
        out[name] = array
    return out
