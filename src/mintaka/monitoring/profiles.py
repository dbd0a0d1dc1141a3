"""Reference profiles: what a training dataset looked like, kept so later traffic can be compared.

A :class:`DatasetProfile` holds, per feature, everything the drift statistics need without the
training data itself: counts and missing values; for a numeric feature its quantiles, a histogram
on fixed bin edges and a seeded sample of the values; for a categorical feature its category
frequencies and a seeded sample. It is a pydantic record, JSON-serialisable and identical for the
same data and seed, meant to be stored as ``DatasetVersion.profile`` (via ``to_json()``).

Input (:data:`ColumnsLike`) is one of: a mapping of column name to a sequence or 1-d array (the
fast path), a sequence of row mappings (what :func:`mintaka.serving.batch.read_rows` and the
prediction log give), or a numpy structured array.

Values, as documented and tested:

- *Missing* are ``None``, NaN and the empty string (an empty CSV cell). They count in
  ``missing`` and are excluded from every statistic.
- A column is *numeric* when every non-missing value is a real number (int or float, or a string
  that parses as one, as CSV gives); booleans and anything else make it *categorical*. A feature
  named in ``categorical=`` is categorical regardless.
- ``+inf`` and ``-inf`` are values, not missing: they are counted in ``infinite`` and land in the
  histogram's open-ended outer bins, but quantiles, moments and the sample use finite values only
  (so the profile stays valid JSON and the sample-based distances stay finite). An integer beyond
  the float range (JSON allows any) is one of them, as its string would parse.
- Categories are keyed by ``str(value)``, except booleans and the strings ``true``/``false`` in
  any case, keyed ``"true"``/``"false"``, and floats with an integral value and strings that
  write one (``1.0``, ``"1.0"``), keyed as the integer (``"1"``): a CSV and a JSON log spell them
  differently. At most ``max_categories`` of the most frequent are kept, the rest are summed in
  ``other``.

Histogram layout (see :func:`histogram`): the inner edges are the distinct reference quantiles at
0, 1/B, ..., 1 (B = ``bins``), so the inner bins are roughly equally populated; around them sit
two open-ended bins, ``(-inf, min)`` and ``(max, +inf)``, which are empty in the reference and
catch every current value outside its range. Inner bins are ``[e_i, e_{i+1})``, the last one
closed ``[e_{m-2}, e_{m-1}]``. A value holding at least 1/B of the reference (the zeros of a
zero-inflated feature, a cap, the levels of a feature with few levels) gets an inner bin of its
own, one float wide, and the other values are binned on their own quantiles (see
:func:`bin_edges`): otherwise the coinciding quantiles would leave that value and the range next to
it in one bin, and PSI and Jensen-Shannon would miss a shift of the rest of the distribution. A
constant feature has the single edge ``c`` and the bins ``(-inf, c)``, ``[c, c]``, ``(c, +inf)``;
a feature without finite values has one bin.

Profiles record the ``format`` that built them. Format 1 profiles (bins on the distinct quantiles
only) are still read and compared on their own edges and counts; format 2 adds the bins of their
own for dominant values. Drift is always measured on the edges stored with the profile.
"""

from __future__ import annotations

import math
import os
import re
import zlib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from typing import Annotated, Any, Literal, TypeAlias, TypeVar

import numpy as np
import numpy.typing as npt
from pydantic import Field

from mintaka.domain.base import JSONDict, Record
from mintaka.errors import ValidationError
from mintaka.monitoring.kinds import DEFAULT_BINS
from mintaka.numbers import as_float

T = TypeVar("T")
FloatArray: TypeAlias = npt.NDArray[np.float64]
ColumnsLike: TypeAlias = (
    Mapping[str, "Sequence[Any] | npt.NDArray[Any]"] | Sequence[Mapping[str, Any]] | np.ndarray
)

PROFILE_FORMAT = 2  # 2: a dominant value gets a bin of its own (1: distinct quantiles only)
DEFAULT_SAMPLE_SIZE = 10_000
DEFAULT_MAX_CATEGORIES = 1_000
QUANTILE_PROBABILITIES: tuple[float, ...] = (
    0.0,
    0.01,
    0.05,
    0.1,
    0.25,
    0.5,
    0.75,
    0.9,
    0.95,
    0.99,
    1.0,
)


class NumericProfile(Record):
    """A numeric feature of the reference data."""

    kind: Literal["numeric"] = "numeric"
    count: int = Field(ge=0, description="rows, including missing values")
    missing: int = Field(ge=0)
    infinite: int = Field(default=0, ge=0)
    min: float | None = None
    max: float | None = None
    mean: float | None = None
    std: float | None = Field(default=None, description="population standard deviation")
    quantile_probabilities: list[float] = Field(default_factory=list)
    quantiles: list[float] = Field(default_factory=list)
    edges: list[float] = Field(default_factory=list)
    counts: list[int] = Field(default_factory=list, description="histogram over edges")
    sample: list[float] = Field(default_factory=list, description="finite values, ascending")

    @cached_property
    def sample_array(self) -> FloatArray:
        """``sample`` as an array, converted once per profile."""
        return np.asarray(self.sample, dtype=np.float64)

    @property
    def missing_rate(self) -> float:
        return self.missing / self.count if self.count else 0.0


class CategoricalProfile(Record):
    """A categorical feature of the reference data."""

    kind: Literal["categorical"] = "categorical"
    count: int = Field(ge=0, description="rows, including missing values")
    missing: int = Field(ge=0)
    frequencies: dict[str, int] = Field(default_factory=dict, description="by category, sorted")
    other: int = Field(default=0, ge=0, description="values of categories beyond the cap")
    sample: list[str] = Field(default_factory=list, description="non-missing values, sorted")

    @property
    def missing_rate(self) -> float:
        return self.missing / self.count if self.count else 0.0


FeatureProfile = Annotated[NumericProfile | CategoricalProfile, Field(discriminator="kind")]


class DatasetProfile(Record):
    """The reference profile of a dataset: one entry per feature, in column order."""

    format: int = PROFILE_FORMAT
    rows: int = Field(ge=0)
    bins: int = Field(ge=1)
    seed: int
    sample_size: int = Field(ge=0)
    features: dict[str, FeatureProfile]

    def to_json(self) -> JSONDict:
        """The JSON-ready dict to store as ``DatasetVersion.profile``."""
        return self.model_dump(mode="json")

    @classmethod
    def from_json(cls, data: JSONDict) -> DatasetProfile:
        return cls.model_validate(data)


# --- input normalisation -------------------------------------------------------------------------


def as_columns(data: ColumnsLike) -> dict[str, npt.NDArray[Any]]:
    """Column name -> 1-d array from any :data:`ColumnsLike` (row keys in first-seen order)."""
    if isinstance(data, np.ndarray):
        if data.dtype.names is None:
            raise ValidationError("a numpy input must be a structured array with named fields")
        return {name: np.asarray(data[name]) for name in data.dtype.names}
    if isinstance(data, Mapping):
        columns = {str(name): _as_array(str(name), values) for name, values in data.items()}
        lengths = {len(values) for values in columns.values()}
        if len(lengths) > 1:
            raise ValidationError(f"columns have different lengths: {sorted(lengths)}")
        return columns
    names: dict[str, None] = {}
    for row in data:
        if not isinstance(row, Mapping):
            raise ValidationError(f"rows must be mappings, got {type(row).__name__}")
        names.update(dict.fromkeys(row))
    return {
        str(name): _object_array([row.get(name) for row in data]) for name in names
    }  # a row without a key has that value missing


def _as_array(name: str, values: Any) -> npt.NDArray[Any]:
    """Column ``name`` as a 1-d array. A value that is not a column of values is refused: a
    number has no values to count, and a string (or bytes, or a mapping) would be read as a
    column of its characters (or keys)."""
    if isinstance(values, np.ndarray):
        if values.ndim != 1:
            raise ValidationError(f"columns must be 1-d, got shape {values.shape}")
        return values
    if isinstance(values, str | bytes | Mapping) or not isinstance(values, Iterable):
        raise ValidationError(
            f"column {name!r} must be a sequence of values, not {type(values).__name__} "
            f"{values!r:.40}"
        )
    return _object_array(list(values))


def _object_array(values: list[Any]) -> npt.NDArray[Any]:
    array = np.empty(len(values), dtype=object)
    array[:] = values
    return array


def _is_missing(value: Any) -> bool:
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


def to_numeric(values: npt.NDArray[Any]) -> FloatArray | None:
    """``values`` as float64 with NaN for missing, or ``None`` if some value is not a number."""
    kind = values.dtype.kind
    if kind in "fiu":
        return values.astype(np.float64, copy=False)
    if kind != "O" and kind not in "US":
        return None  # booleans, dates, ...
    out = np.empty(len(values), dtype=np.float64)
    for i, value in enumerate(values.tolist()):
        if _is_missing(value):
            out[i] = math.nan
        elif isinstance(value, bool):
            return None
        elif isinstance(value, int | float | np.integer | np.floating):
            out[i] = as_float(value)
        elif isinstance(value, str):
            try:
                out[i] = float(value)
            except ValueError:
                return None
        else:
            return None
    return out


def to_numeric_lenient(values: npt.NDArray[Any]) -> tuple[FloatArray, int]:
    """``values`` as float64; a value that is not a number becomes NaN (counted, and returned)."""
    numeric = to_numeric(values)
    if numeric is not None:
        return numeric, 0
    out = np.empty(len(values), dtype=np.float64)
    invalid = 0
    for i, value in enumerate(values.tolist()):
        if isinstance(value, bool) or _is_missing(value):
            number = math.nan
            invalid += isinstance(value, bool)
        else:
            try:
                number = as_float(value)
            except (TypeError, ValueError):
                number, invalid = math.nan, invalid + 1
        out[i] = number
    return out, invalid


_INTEGRAL = re.compile(r"([-+]?\d+)\.0*")  # "1.0": an integer written as a float


def category_key(value: Any) -> str:
    """The category of a value: ``str(value)``, except that a boolean and the strings ``true``
    and ``false`` in any case are ``"true"`` and ``"false"``, so that booleans logged as JSON
    and the same values read from a CSV are one category; and that a float with an integral
    value, or a string that writes one (``"1.0"``), is its integer (``"1"``), so that an
    integer-coded category read from a CSV and logged as a JSON number are one category."""
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    key = str(value)
    lowered = key.lower()
    if lowered in ("true", "false"):
        return lowered
    integral = _INTEGRAL.fullmatch(key)
    return key if integral is None else integral.group(1)


def _string_keys(strings: npt.NDArray[np.str_]) -> npt.NDArray[np.str_]:
    """:func:`category_key` of an array of strings, each distinct string keyed once."""
    distinct, inverse = np.unique(strings, return_inverse=True)
    keys = np.array([category_key(s) for s in distinct.tolist()], dtype=str)
    return keys[inverse] if len(keys) else strings


def to_categories(values: npt.NDArray[Any]) -> tuple[npt.NDArray[np.str_], int]:
    """The non-missing values as their :func:`category_key`, and how many were missing."""
    if values.dtype.kind in "US":
        strings = values.astype(str)
        keep = strings != ""
        return _string_keys(strings[keep]), int(len(strings) - keep.sum())
    if values.dtype.kind == "f":
        keep = ~np.isnan(values)
        keys = [category_key(v) for v in values[keep].tolist()]
        return np.array(keys, dtype=str), int((~keep).sum())
    kept = [category_key(v) for v in values.tolist() if not _is_missing(v)]
    return np.array(kept, dtype=str), len(values) - len(kept)


# --- histogram -----------------------------------------------------------------------------------


def bin_count(edges: Sequence[float] | FloatArray) -> int:
    """How many bins ``edges`` define (see the module docstring for the layout)."""
    m = len(edges)
    return 1 if m == 0 else 3 if m == 1 else m + 1


def histogram(
    edges: Sequence[float] | FloatArray, values: FloatArray, *, assume_sorted: bool = False
) -> npt.NDArray[np.int64]:
    """Counts of ``values`` (NaN ignored, +-inf in the outer bins) in the bins of ``edges``."""
    e = np.asarray(edges, dtype=np.float64)
    s = values if assume_sorted else np.sort(values[~np.isnan(values)])
    if assume_sorted and len(s) and np.isnan(s[-1]):
        s = s[: np.searchsorted(s, np.nan, side="left")]  # np.sort puts NaN last
    n = len(s)
    if len(e) == 0:
        return np.array([n], dtype=np.int64)
    lower = e[:-1] if len(e) > 1 else e
    inside = np.concatenate(
        (
            np.searchsorted(s, lower, side="left"),
            np.searchsorted(s, e[-1:], side="right"),
        )
    )
    return np.diff(np.concatenate(([0], inside, [n]))).astype(np.int64)


def bin_edges(finite: FloatArray, bins: int) -> FloatArray:
    """The histogram edges of a feature from its finite values, ascending (non-empty).

    The inner edges are the distinct quantiles at 0, 1/B, ..., 1. A value that holds at least
    1/B of the values (a spike: the zeros of a zero-inflated feature, a cap, each level of a
    feature with few levels) would swallow the bins around it, since quantiles that coincide
    collapse; such a value gets a bin of its own, ``[v, next float after v)`` (``[previous float,
    v]`` when it is the maximum, the last bin being closed), and the other values are binned on
    their own quantiles. An inner bin that holds no reference value is merged into a neighbour,
    never into a spike's bin; a constant feature keeps its single edge.
    """
    n = len(finite)
    quantiles = np.unique(even_quantiles(finite, bins))
    if len(quantiles) == 1:
        return quantiles
    # A run of at least n / B equal values covers one of the positions 0, step, 2*step, ...
    step = max(1, n // bins)
    candidates = np.unique(finite[::step])
    runs = np.searchsorted(finite, candidates, "right") - np.searchsorted(finite, candidates)
    spikes = candidates[runs * bins >= n]
    if len(spikes) == 0:
        return quantiles
    rest = finite[~np.isin(finite, spikes)]
    found = set(even_quantiles(rest, bins).tolist()) if len(rest) else set()
    found |= {float(finite[0]), float(finite[-1])}
    fixed: set[float] = set()
    top = float(finite[-1])
    for spike in spikes.tolist():
        bounds = (
            (spike, float(np.nextafter(spike, np.inf)))
            if spike < top
            else (float(np.nextafter(spike, -np.inf)), spike)
        )
        fixed.update(bounds)
    edges = sorted(found | fixed)
    return _without_empty_bins(np.asarray(edges, dtype=np.float64), finite, fixed)


def _without_empty_bins(edges: FloatArray, finite: FloatArray, fixed: set[float]) -> FloatArray:
    """``edges`` with every inner bin that holds none of ``finite`` merged into a neighbour: its
    upper edge goes (the bin joins the next one) unless that bounds a spike's bin, else its lower
    edge. The outer edges (the minimum and the maximum) stay."""
    kept = edges.tolist()
    while True:
        counts = histogram(kept, finite, assume_sorted=True)[1:-1]
        empty = [i for i, c in enumerate(counts.tolist()) if c == 0]
        if not empty:
            return np.asarray(kept, dtype=np.float64)
        i = empty[0]  # the bin [kept[i], kept[i + 1])
        upper, lower = kept[i + 1], kept[i]
        if i + 1 < len(kept) - 1 and upper not in fixed:
            del kept[i + 1]
        elif i > 0 and lower not in fixed:
            del kept[i]
        else:  # between two spikes: the lower one's bin reaches up to the next
            del kept[i]


def quantiles_of_sorted(s: FloatArray, probabilities: Sequence[float] | FloatArray) -> FloatArray:
    """Linear-interpolation quantiles (numpy's default method) of an ascending, non-empty array."""
    h = (len(s) - 1) * np.asarray(probabilities, dtype=np.float64)
    lo = np.floor(h).astype(np.intp)
    return _interpolate(s, lo, h - lo)


def even_quantiles(s: FloatArray, bins: int) -> FloatArray:
    """The quantiles at 0, 1/B, ..., 1 of an ascending, non-empty array, as
    :func:`quantiles_of_sorted` defines them but with each position ``k (n - 1) / B`` computed
    exactly: in floating point it can come out a hair above a whole number, and the quantile one
    float above a data value would leave that value out of the bin it starts."""
    lo, rest = np.divmod(np.arange(bins + 1, dtype=np.int64) * (len(s) - 1), bins)
    return _interpolate(s, lo.astype(np.intp), rest / bins)


def _interpolate(s: FloatArray, lo: npt.NDArray[np.intp], frac: FloatArray) -> FloatArray:
    """``s[lo]`` moved ``frac`` of the way to the next value (ascending, non-empty ``s``)."""
    hi = np.minimum(lo + 1, len(s) - 1)
    a, b = s[lo], s[hi]
    with np.errstate(over="ignore", invalid="ignore"):
        value = a + frac * (b - a)
        wide = ~np.isfinite(value)  # b - a overflows near the float limits
        value[wide] = (1 - frac[wide]) * a[wide] + frac[wide] * b[wide]
    return np.asarray(value, dtype=np.float64)


def _moments(finite: FloatArray) -> tuple[float, float]:
    """Mean and population standard deviation, scaled so that huge values cannot overflow."""
    scale = float(max(abs(finite[0]), abs(finite[-1])))
    if scale == 0.0:
        return 0.0, 0.0
    scaled = finite / scale
    return float(np.mean(scaled) * scale), float(np.std(scaled) * scale)


def sample_indices(n: int, size: int, seed: int, feature: str) -> npt.NDArray[np.intp] | None:
    """Ascending indices of a seeded uniform sample of ``size`` out of ``n``; ``None``: keep all.

    The generator is seeded by ``(seed, crc32(feature))``, so each feature's sample depends only
    on its own values and the seed.
    """
    if n <= size:
        return None
    rng = np.random.default_rng([seed, zlib.crc32(feature.encode())])
    return np.sort(rng.choice(n, size=size, replace=False))


def default_workers() -> int:
    return min(4, os.cpu_count() or 1)


def each_feature(fn: Callable[[str], T], names: Sequence[str], workers: int | None) -> list[T]:
    """``fn`` of every name, in order, on up to ``workers`` threads."""
    count = default_workers() if workers is None else workers
    if count <= 1 or len(names) <= 1:
        return [fn(name) for name in names]
    with ThreadPoolExecutor(max_workers=min(count, len(names))) as pool:
        return list(pool.map(fn, names))


# --- profiles ------------------------------------------------------------------------------------


def profile_numeric(
    values: FloatArray,
    *,
    feature: str,
    bins: int = DEFAULT_BINS,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    seed: int = 0,
) -> NumericProfile:
    """Profile one numeric column (float64, NaN for missing)."""
    count = len(values)
    present = np.sort(values[~np.isnan(values)])
    missing = count - len(present)
    lo = int(np.searchsorted(present, -np.inf, side="right"))
    hi = int(np.searchsorted(present, np.inf, side="left"))
    finite = present[lo:hi]
    if len(finite) == 0:
        return NumericProfile(
            count=count,
            missing=missing,
            infinite=len(present),
            counts=histogram([], present, assume_sorted=True).tolist(),
        )
    edges = bin_edges(finite, bins)
    mean, std = _moments(finite)
    indices = sample_indices(len(finite), sample_size, seed, feature)
    sample = finite if indices is None else finite[indices]
    return NumericProfile(
        count=count,
        missing=missing,
        infinite=len(present) - len(finite),
        min=float(finite[0]),
        max=float(finite[-1]),
        mean=mean,
        std=std,
        quantile_probabilities=list(QUANTILE_PROBABILITIES),
        quantiles=quantiles_of_sorted(finite, QUANTILE_PROBABILITIES).tolist(),
        edges=edges.tolist(),
        counts=histogram(edges, present, assume_sorted=True).tolist(),
        sample=sample.tolist(),
    )


def profile_categorical(
    values: npt.NDArray[Any],
    *,
    feature: str,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    seed: int = 0,
) -> CategoricalProfile:
    """Profile one categorical column (any values; keyed by :func:`category_key`)."""
    strings, missing = to_categories(values)
    keys, counts = np.unique(strings, return_counts=True)
    other = 0
    if len(keys) > max_categories:
        order = np.lexsort((keys, -counts))  # most frequent first, ties by key
        kept = np.sort(order[:max_categories])
        other = int(counts.sum() - counts[kept].sum())
        keys, counts = keys[kept], counts[kept]
    ordered = np.sort(strings)
    indices = sample_indices(len(ordered), sample_size, seed, feature)
    sample = ordered if indices is None else ordered[indices]
    return CategoricalProfile(
        count=len(values),
        missing=missing,
        frequencies=dict(zip(keys.tolist(), counts.tolist(), strict=True)),
        other=other,
        sample=sample.tolist(),
    )


def profile(
    data: ColumnsLike,
    *,
    features: Sequence[str] | None = None,
    categorical: Collection[str] = (),
    bins: int = DEFAULT_BINS,
    sample_size: int = DEFAULT_SAMPLE_SIZE,
    max_categories: int = DEFAULT_MAX_CATEGORIES,
    seed: int = 0,
    workers: int | None = None,
) -> DatasetProfile:
    """The reference profile of ``data`` (see the module docstring for what counts as what).

    Features are profiled on up to ``workers`` threads (numpy releases the GIL while sorting);
    the result does not depend on it.
    """
    if bins < 1:
        raise ValidationError("bins must be at least 1")
    if sample_size < 0:
        raise ValidationError("sample_size must not be negative")
    columns = as_columns(data)
    names = list(columns) if features is None else list(features)
    unknown = [name for name in names if name not in columns]
    if unknown:
        raise ValidationError(f"features not in the data: {unknown}")
    stray = sorted(set(categorical) - set(columns))
    if stray:
        raise ValidationError(f"categorical columns not in the data: {stray}")
    rows = len(next(iter(columns.values()))) if columns else 0

    def one(name: str) -> NumericProfile | CategoricalProfile:
        numeric = None if name in categorical else to_numeric(columns[name])
        if numeric is not None:
            return profile_numeric(
                numeric, feature=name, bins=bins, sample_size=sample_size, seed=seed
            )
        return profile_categorical(
            columns[name],
            feature=name,
            sample_size=sample_size,
            max_categories=max_categories,
            seed=seed,
        )

    out = dict(zip(names, each_feature(one, names, workers), strict=True))
    return DatasetProfile(rows=rows, bins=bins, seed=seed, sample_size=sample_size, features=out)
