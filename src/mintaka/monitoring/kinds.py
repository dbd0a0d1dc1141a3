"""Which drift statistics each kind of profiled feature has, the profiles' bin count, and the
fewest values a feature's drift is judged on.

Plain data without numpy, so that the monitoring service can check a drift signal against a
stored profile when the monitor is added, and size its drift groups, without loading the
numeric stack.
"""

from __future__ import annotations

DEFAULT_BINS = 10
"""Bins of a numeric feature's profile (quantile edges over the training data)."""

MIN_VALUES = 100
"""The fewest current values any feature's drift is judged on; most need more, twenty a bin of
their profile (see :func:`mintaka.monitoring.statistics.min_values`)."""

# The statistics each kind of feature has; any other is None by definition, not unmeasured.
STATISTICS: dict[str, tuple[str, ...]] = {
    "numeric": ("psi", "jensen_shannon", "ks_statistic", "ks_pvalue", "wasserstein"),
    "categorical": ("psi", "jensen_shannon", "chi2_statistic", "chi2_pvalue", "chi2_dof"),
}


def kinds_with(metric: str) -> list[str]:
    """The kinds of feature that have the drift statistic ``metric``."""
    return [kind for kind, found in STATISTICS.items() if metric in found]
