"""Drift statistics: how far current traffic has moved from a reference profile, per feature.

The statistics, each equal to its reference implementation on the same inputs (the tests compare
them to 1e-9):

- **PSI**, the population stability index, ``sum((q - p) * ln(q / p))`` over bin (or category)
  proportions ``p`` (reference) and ``q`` (current). A proportion of exactly zero is replaced by
  :data:`PSI_EPSILON` (1e-4) before the sum, without renormalising, which is also what Evidently
  does; without it one empty bin makes PSI infinite.
- **Two-sample Kolmogorov-Smirnov** statistic and p-value, as ``scipy.stats.ks_2samp``
  (two-sided, ``method="auto"``: exact when both samples have at most 10,000 values, otherwise
  Smirnov's asymptotic distribution), against the profile's sample of the reference.
- **Chi-square** test of homogeneity for categorical features: the 2 x K contingency table of
  reference and current category counts, as ``scipy.stats.chi2_contingency(table,
  correction=False)``. Categories of the current data that the reference never saw (or that fell
  beyond its category cap) are pooled into one "unseen" column, paired with the reference's
  ``other`` count; a column that is empty on both sides is dropped. A new category therefore
  shows up as drift instead of breaking the test (expected count zero) or being ignored.
- **Jensen-Shannon distance** between the two binned distributions, as
  ``scipy.spatial.distance.jensenshannon`` (natural logarithm unless ``base`` is given).
- **Wasserstein distance** (earth mover's, p = 1) between the reference sample and the current
  values, as ``scipy.stats.wasserstein_distance``.

Numeric features are binned on the profile's fixed edges (see :mod:`mintaka.monitoring.profiles`),
so PSI and Jensen-Shannon compare the full reference with the current data; KS and Wasserstein
compare the current finite values with the profile's sample (the whole reference when it is no
larger than the sample size). Infinite current values count in the outer bins only. A statistic
that is undefined (no values on one side) is ``None``, and so is one that does not apply to the
feature's kind (:data:`mintaka.monitoring.kinds.STATISTICS`); :meth:`DriftReport.unmeasured`
tells the two apart, naming the features whose statistic applies but could not be computed, and
why.

Everything is vectorised: each current column is sorted once, and that one sorted array gives the
histogram (``searchsorted`` on the edges) and, merged with the sorted reference sample, both
empirical CDFs at once for KS and Wasserstein.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt
from pydantic import Field

from mintaka.domain.base import Record
from mintaka.errors import ValidationError
from mintaka.monitoring.kinds import MIN_VALUES, STATISTICS
from mintaka.monitoring.profiles import (
    DEFAULT_SAMPLE_SIZE,
    CategoricalProfile,
    ColumnsLike,
    DatasetProfile,
    FloatArray,
    NumericProfile,
    as_columns,
    category_key,
    each_feature,
    histogram,
    profile,
    to_categories,
    to_numeric_lenient,
)

PSI_EPSILON = 1e-4
KS_EXACT_MAX_N = 10_000  # scipy's "auto": exact when both samples are at most this large
# The fewest current values a feature's drift is judged on (see :func:`min_values`). Without
# drift, PSI is about a chi-square of (bins - 1) degrees of freedom over the number of values,
# so twenty values a bin keep its mean near 0.05; a bin holding a share ``p`` of the reference
# that no current value falls in adds ``p * ln(p / PSI_EPSILON)`` on its own (0.3 for 5 %), so
# a bin whose loss would add more than ``NOTABLE_BIN_LOSS`` expects ten values (missing with
# chance e^-10). Below either, healthy traffic crosses the usual thresholds by chance.
VALUES_PER_BIN = 20
VALUES_EXPECTED_PER_BIN = 10
NOTABLE_BIN_LOSS = 0.05

Counts = Sequence[float] | npt.NDArray[Any]


class KSResult(NamedTuple):
    statistic: float
    pvalue: float


class ChiSquareResult(NamedTuple):
    statistic: float
    pvalue: float
    dof: int


# --- the statistics on arrays --------------------------------------------------------------------


def _proportions(counts: Counts, what: str) -> FloatArray:
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    if not total > 0:
        raise ValidationError(f"{what} counts are empty")
    return np.asarray(c / total, dtype=np.float64)


def psi(
    reference: Counts, current: Counts, *, epsilon: float | tuple[float, float] = PSI_EPSILON
) -> float:
    """Population stability index of two aligned count (or proportion) vectors.

    ``epsilon`` replaces a zero proportion; a pair gives one value per side (reference, current).
    """
    p = _proportions(reference, "reference")
    q = _proportions(current, "current")
    if p.shape != q.shape:
        raise ValidationError(f"bins differ: {p.shape} and {q.shape}")
    ref_eps, cur_eps = epsilon if isinstance(epsilon, tuple) else (epsilon, epsilon)
    p[p == 0] = ref_eps
    q[q == 0] = cur_eps
    return float(np.sum((q - p) * np.log(q / p)))


def jensen_shannon(reference: Counts, current: Counts, *, base: float | None = None) -> float:
    """Jensen-Shannon distance (the square root of the divergence) of two aligned count vectors."""
    p = _proportions(reference, "reference")
    q = _proportions(current, "current")
    if p.shape != q.shape:
        raise ValidationError(f"bins differ: {p.shape} and {q.shape}")
    m = (p + q) / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        left = np.where(p > 0, p * np.log(p / m), 0.0)
        right = np.where(q > 0, q * np.log(q / m), 0.0)
    js = np.sum(left) + np.sum(right)
    if base is not None:
        js /= np.log(base)
    return float(np.sqrt(max(js, 0.0) / 2.0))


class _Merged(NamedTuple):
    values: FloatArray  # both samples, ascending
    cdf_difference: FloatArray  # F_reference - F_current just after each value


def _merge(reference: FloatArray, current: FloatArray) -> _Merged:
    """Both empirical CDFs on the merged, sorted samples (each input already ascending).

    A stable argsort of two concatenated sorted runs is a linear merge (timsort), and the running
    count of reference values gives ``F_reference`` as integers divided once, exactly as
    ``searchsorted(..., side="right") / n`` does in scipy.
    """
    n1, n2 = len(reference), len(current)
    both = np.concatenate((reference, current))
    order = np.argsort(both, kind="stable")
    values = both[order]
    from_reference = np.cumsum(order < n1)
    from_current = np.arange(1, n1 + n2 + 1) - from_reference
    return _Merged(values, from_reference / n1 - from_current / n2)


def _ks_from_merged(merged: _Merged) -> float:
    values, diff = merged
    last_of_ties = np.empty(len(values), dtype=bool)
    np.not_equal(values[1:], values[:-1], out=last_of_ties[:-1])
    last_of_ties[-1] = True
    at = diff[last_of_ties]
    max_s = float(at.max())
    min_s = float(np.clip(-at.min(), 0.0, 1.0))
    return min_s if min_s > max_s else max_s


def _ks_pvalue(d: float, n1: int, n2: int, method: str) -> float | None:
    """The asymptotic p-value, or ``None`` when scipy would compute the exact one."""
    if method == "exact" or (method == "auto" and max(n1, n2) <= KS_EXACT_MAX_N):
        return None
    from scipy.stats import kstwo

    m, n = sorted([float(n1), float(n2)], reverse=True)
    en = m * n / (m + n)
    return float(np.clip(kstwo.sf(d, np.round(en)), 0.0, 1.0))


def _wasserstein_from_merged(merged: _Merged) -> float:
    values, diff = merged
    return float(np.sum(np.multiply(np.abs(diff[:-1]), np.diff(values))))


def _sorted_finite(values: Counts, what: str) -> FloatArray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or not np.all(np.isfinite(x)):
        raise ValidationError(f"{what} sample must be 1-d and finite")
    if len(x) == 0:
        raise ValidationError(f"{what} sample is empty")
    return np.sort(x)


def ks_2samp(
    reference: Counts,
    current: Counts,
    *,
    method: Literal["auto", "exact", "asymp"] = "auto",
    assume_sorted: bool = False,
) -> KSResult:
    """Two-sided two-sample Kolmogorov-Smirnov test, as ``scipy.stats.ks_2samp``."""
    a = np.asarray(reference, np.float64) if assume_sorted else _sorted_finite(reference, "ref")
    b = np.asarray(current, np.float64) if assume_sorted else _sorted_finite(current, "current")
    return _ks(a, b, _merge(a, b), method)


def _ks(a: FloatArray, b: FloatArray, merged: _Merged, method: str) -> KSResult:
    d = _ks_from_merged(merged)
    pvalue = _ks_pvalue(d, len(a), len(b), method)
    if pvalue is None:  # the exact distribution: scipy's own (small samples only)
        from scipy.stats import ks_2samp as scipy_ks_2samp

        result = scipy_ks_2samp(a, b, method=method)
        return KSResult(float(result.statistic), float(result.pvalue))
    return KSResult(d, pvalue)


def wasserstein(reference: Counts, current: Counts) -> float:
    """First Wasserstein distance between two samples, as ``scipy.stats.wasserstein_distance``."""
    a = _sorted_finite(reference, "reference")
    b = _sorted_finite(current, "current")
    return _wasserstein_from_merged(_merge(a, b))


def chi_square(reference: Counts, current: Counts) -> ChiSquareResult:
    """Chi-square test of homogeneity on aligned category counts (no continuity correction)."""
    table = np.vstack(
        (np.asarray(reference, dtype=np.float64), np.asarray(current, dtype=np.float64))
    )
    table = table[:, table.sum(axis=0) > 0]
    rows = table.sum(axis=1)
    if not (rows > 0).all():
        raise ValidationError("both sides need at least one counted value")
    cols = table.sum(axis=0)
    expected = np.multiply.outer(rows, cols) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    dof = table.shape[1] - 1
    if dof == 0:
        return ChiSquareResult(0.0, 1.0, 0)
    from scipy.stats import chi2

    return ChiSquareResult(statistic, float(chi2.sf(statistic, dof)), dof)


def min_values(reference_bins: Counts) -> int:
    """The fewest current values a feature whose reference fills ``reference_bins`` (its
    histogram, or its category counts and the unseen bin) is judged on: ``MIN_VALUES``, and
    ``VALUES_PER_BIN`` for each bin the reference fills, and ``VALUES_EXPECTED_PER_BIN`` in each
    bin whose emptiness alone would add ``NOTABLE_BIN_LOSS`` to PSI. With fewer, the statistics
    of traffic that has not drifted at all cross the usual thresholds (PSI 0.2) by chance: a
    categorical feature of thirty levels reads as a PSI above 1 on fifty values."""
    counts = np.asarray(reference_bins, dtype=np.float64)
    total = counts.sum()
    if not total > 0:
        return MIN_VALUES
    shares = counts[counts > 0] / total
    notable = shares[shares * np.log(shares / PSI_EPSILON) >= NOTABLE_BIN_LOSS]
    expected = math.ceil(VALUES_EXPECTED_PER_BIN / float(notable.min())) if len(notable) else 0
    return max(MIN_VALUES, VALUES_PER_BIN * len(shares), expected)


# --- per feature against a profile ---------------------------------------------------------------


class FeatureDrift(Record):
    """Every drift statistic of one feature; ``None`` where a statistic does not apply."""

    feature: str
    kind: Literal["numeric", "categorical"]
    reference_count: int = Field(description="non-missing reference values")
    current_count: int = Field(description="non-missing current values")
    reference_missing_rate: float
    current_missing_rate: float
    psi: float | None = None
    jensen_shannon: float | None = None
    ks_statistic: float | None = None
    ks_pvalue: float | None = None
    wasserstein: float | None = None
    chi2_statistic: float | None = None
    chi2_pvalue: float | None = None
    chi2_dof: int | None = None
    reference_bins: list[int] = Field(default_factory=list)
    current_bins: list[int] = Field(default_factory=list)

    def unmeasured(self, metric: str) -> str | None:
        """Why ``metric``, a statistic of this feature's kind, could not be computed; ``None``
        when it was, or when the kind has no such statistic (a chi-square of a numeric one)."""
        if metric not in STATISTICS[self.kind] or getattr(self, metric) is not None:
            return None
        if self.reference_count == 0:
            return "no reference values"
        if self.current_count == 0:
            return "no current values: each is missing or, for a numeric feature, not a number"
        return "no finite values on one side"

    @property
    def min_values(self) -> int:
        """The fewest current values this feature's drift is judged on (:func:`min_values`)."""
        return min_values(self.reference_bins)

    def too_few(self) -> str | None:
        """Why this feature's drift is not judged: it has some current values, but fewer than
        :attr:`min_values`, so its statistics are noise; ``None`` when it has enough (or none,
        which :meth:`unmeasured` names)."""
        if 0 < self.current_count < self.min_values:
            return (
                f"{self.current_count} values, fewer than the {self.min_values} its "
                f"{self.reference_bin_count} reference bins need"
            )
        return None

    @property
    def reference_bin_count(self) -> int:
        """How many bins hold reference values."""
        return sum(1 for count in self.reference_bins if count > 0)


class DriftReport(Record):
    """Drift of current data against a reference profile, per feature."""

    reference_rows: int
    current_rows: int
    features: dict[str, FeatureDrift]

    def value(self, feature: str, metric: str) -> float | None:
        """One statistic by name (``"psi"``, ``"ks_pvalue"``, ...), as a monitor signal reads it."""
        found = getattr(self.features[feature], metric)
        return None if found is None else float(found)

    def unmeasured(self, metric: str) -> dict[str, str]:
        """The features whose ``metric`` could not be computed though their kind has it, each
        with why: drift that cannot be measured is no evidence that there is none."""
        found = {name: feature.unmeasured(metric) for name, feature in self.features.items()}
        return {name: why for name, why in found.items() if why is not None}

    def too_few(self) -> dict[str, str]:
        """The features with too few current values to judge their drift, each with why (see
        :meth:`FeatureDrift.too_few`)."""
        found = {name: feature.too_few() for name, feature in self.features.items()}
        return {name: why for name, why in found.items() if why is not None}


def numeric_drift(
    reference: NumericProfile,
    current: FloatArray,
    *,
    feature: str,
    epsilon: float = PSI_EPSILON,
    base: float | None = None,
    ks_method: Literal["auto", "exact", "asymp"] = "auto",
) -> FeatureDrift:
    """Drift of one numeric column (float64, NaN for missing) against its reference profile."""
    present = np.sort(current[~np.isnan(current)])
    lo = int(np.searchsorted(present, -np.inf, side="right"))
    hi = int(np.searchsorted(present, np.inf, side="left"))
    finite = present[lo:hi]
    ref_bins = np.asarray(reference.counts, dtype=np.int64)
    cur_bins = histogram(reference.edges, present, assume_sorted=True)
    found: dict[str, Any] = {}
    if ref_bins.sum() > 0 and len(present) > 0:
        found["psi"] = psi(ref_bins, cur_bins, epsilon=epsilon)
        found["jensen_shannon"] = jensen_shannon(ref_bins, cur_bins, base=base)
    sample = reference.sample_array
    if len(sample) and len(finite):
        merged = _merge(sample, finite)
        ks = _ks(sample, finite, merged, ks_method)
        found |= {
            "ks_statistic": ks.statistic,
            "ks_pvalue": ks.pvalue,
            "wasserstein": _wasserstein_from_merged(merged),
        }
    return FeatureDrift(
        feature=feature,
        kind="numeric",
        reference_count=reference.count - reference.missing,
        current_count=len(present),
        reference_missing_rate=reference.missing_rate,
        current_missing_rate=(len(current) - len(present)) / len(current) if len(current) else 0.0,
        reference_bins=ref_bins.tolist(),
        current_bins=cur_bins.tolist(),
        **found,
    )


def category_counts(
    reference: CategoricalProfile, current: npt.NDArray[Any]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], int]:
    """Reference and current counts aligned on the reference's categories plus one "unseen" bin.

    The last bin holds the reference's ``other`` count and every current value of a category
    the reference does not list. Returns both vectors and the number of missing current values.
    The reference's categories are keyed again with :func:`category_key`, for a profile stored
    before booleans, and integers written as floats (``"1.0"``), had one spelling.
    """
    strings, missing = to_categories(current)
    keys, counts = np.unique(strings, return_counts=True)
    frequencies: dict[str, int] = {}
    for key, count in reference.frequencies.items():
        canonical = category_key(key)
        frequencies[canonical] = frequencies.get(canonical, 0) + count
    ref_keys = np.array(list(frequencies), dtype=str)
    ref_counts = np.array(list(frequencies.values()), dtype=np.int64)
    order = np.argsort(ref_keys)
    ref_keys, ref_counts = ref_keys[order], ref_counts[order]
    k = len(ref_keys)
    idx = np.searchsorted(ref_keys, keys) if k else np.zeros(len(keys), dtype=np.intp)
    known = (idx < k) & (ref_keys[np.minimum(idx, max(k - 1, 0))] == keys) if k else idx < 0
    cur = np.bincount(idx[known], weights=counts[known], minlength=k).astype(np.int64)
    unseen = int(counts[~known].sum())
    return (
        np.append(ref_counts, reference.other),
        np.append(cur, unseen),
        missing,
    )


def categorical_drift(
    reference: CategoricalProfile,
    current: npt.NDArray[Any],
    *,
    feature: str,
    epsilon: float = PSI_EPSILON,
    base: float | None = None,
) -> FeatureDrift:
    """Drift of one categorical column against its reference profile."""
    ref_bins, cur_bins, missing = category_counts(reference, current)
    found: dict[str, Any] = {}
    if ref_bins.sum() > 0 and cur_bins.sum() > 0:
        used = (ref_bins + cur_bins) > 0
        found["psi"] = psi(ref_bins[used], cur_bins[used], epsilon=epsilon)
        found["jensen_shannon"] = jensen_shannon(ref_bins, cur_bins, base=base)
        chi = chi_square(ref_bins, cur_bins)
        found |= {"chi2_statistic": chi.statistic, "chi2_pvalue": chi.pvalue, "chi2_dof": chi.dof}
    return FeatureDrift(
        feature=feature,
        kind="categorical",
        reference_count=reference.count - reference.missing,
        current_count=int(cur_bins.sum()),
        reference_missing_rate=reference.missing_rate,
        current_missing_rate=missing / len(current) if len(current) else 0.0,
        reference_bins=ref_bins.tolist(),
        current_bins=cur_bins.tolist(),
        **found,
    )


def drift(
    reference: DatasetProfile,
    current: ColumnsLike,
    *,
    features: Sequence[str] | None = None,
    epsilon: float = PSI_EPSILON,
    base: float | None = None,
    ks_method: Literal["auto", "exact", "asymp"] = "auto",
    workers: int | None = None,
) -> DriftReport:
    """Drift of ``current`` against the ``reference`` profile, for every profiled feature.

    A profiled feature absent from ``current`` counts as entirely missing; a numeric feature's
    current values that are not numbers count as missing too. Features are measured on up to
    ``workers`` threads; the result does not depend on it.
    """
    columns = as_columns(current)
    rows = len(next(iter(columns.values()))) if columns else 0
    names = list(reference.features) if features is None else list(features)
    unknown = [name for name in names if name not in reference.features]
    if unknown:
        raise ValidationError(f"features not in the reference profile: {unknown}")

    def one(name: str) -> FeatureDrift:
        ref = reference.features[name]
        values = columns.get(name)
        if isinstance(ref, NumericProfile):
            numeric = np.full(rows, math.nan) if values is None else to_numeric_lenient(values)[0]
            return numeric_drift(
                ref, numeric, feature=name, epsilon=epsilon, base=base, ks_method=ks_method
            )
        categories = np.full(rows, None, dtype=object) if values is None else values
        return categorical_drift(ref, categories, feature=name, epsilon=epsilon, base=base)

    import scipy.stats  # noqa: F401  (import once here rather than racing in every thread)

    out = dict(zip(names, each_feature(one, names, workers), strict=True))
    return DriftReport(reference_rows=reference.rows, current_rows=rows, features=out)


def compare(
    reference: ColumnsLike,
    current: ColumnsLike,
    *,
    categorical: Sequence[str] = (),
    bins: int = 10,
    sample_size: int | None = None,
    seed: int = 0,
    ks_method: Literal["auto", "exact", "asymp"] = "auto",
    workers: int | None = None,
) -> DriftReport:
    """Profile ``reference`` and measure the drift of ``current`` against it in one call.

    ``sample_size=None`` keeps every reference value (exact two-sample tests against the whole
    reference); give a number to cap it as a stored profile would.
    """
    columns = as_columns(reference)
    rows = len(next(iter(columns.values()))) if columns else 0
    size = max(rows, DEFAULT_SAMPLE_SIZE) if sample_size is None else sample_size
    ref = profile(
        columns, categorical=categorical, bins=bins, sample_size=size, seed=seed, workers=workers
    )
    return drift(ref, current, ks_method=ks_method, workers=workers)
