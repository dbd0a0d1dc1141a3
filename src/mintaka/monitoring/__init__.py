"""Monitoring maths, vendor-neutral: reference profiles, drift, performance and fairness.

How the pieces are meant to be wired (the store queries, monitor specs, alerts and tickets are
separate and come on top of these pure functions):

1. When a training dataset is registered, :func:`profiles.profile` summarises it and
   ``DatasetProfile.to_json()`` is stored as ``DatasetVersion.profile``.
2. A monitor (``MonitorSpec``) reads an endpoint's records from the ``predictions`` table for a
   period, slices them with :func:`windows.windows` using each ``Signal.window`` (``"1h"``,
   ``"5000n"``), and turns each window into columns with :func:`windows.prediction_columns`
   (inputs plus the prediction itself).
3. :func:`statistics.drift` compares those columns with the stored profile;
   ``DriftReport.value(feature, signal.metric)`` is what a ``Signal`` of kind ``drift`` checks
   against its threshold.
4. When labels arrive, :func:`metrics.join_labels` pairs them with the logged predictions by id;
   :func:`metrics.performance` and :func:`metrics.fairness` give the values for ``performance``
   and ``fairness`` signals, per window.
5. A value past its threshold becomes an ``Alert``, which opens a ``Ticket`` for the signal's
   owner; that part lives with the control plane, not here.

Nothing here touches a backend or the store: the same numbers come out whichever cloud served
the predictions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mintaka._lazy import lazy_names

# Imported now: its function `windows` must shadow the module of that name, and it needs no numpy.
from mintaka.monitoring.windows import (
    Window,
    parse_window,
    prediction_columns,
    windows,
    windows_by_count,
    windows_by_time,
)

if TYPE_CHECKING:
    from mintaka.monitoring.metrics import (
        Fairness,
        Joined,
        LabelledPrediction,
        Performance,
        accuracy,
        demographic_parity_difference,
        equalized_odds_difference,
        expected_calibration_error,
        fairness,
        join_labels,
        performance,
        rmse,
        roc_auc,
    )
    from mintaka.monitoring.profiles import (
        CategoricalProfile,
        DatasetProfile,
        NumericProfile,
        profile,
    )
    from mintaka.monitoring.statistics import (
        PSI_EPSILON,
        ChiSquareResult,
        DriftReport,
        FeatureDrift,
        KSResult,
        chi_square,
        compare,
        drift,
        jensen_shannon,
        ks_2samp,
        psi,
        wasserstein,
    )

# Imported on first use, by the module that defines them: the maths needs numpy, which the
# monitoring service and the ticket commands do not.
_LAZY_FROM: dict[str, tuple[str, ...]] = {
    "mintaka.monitoring.statistics": (
        "PSI_EPSILON",
        "ChiSquareResult",
        "DriftReport",
        "FeatureDrift",
        "KSResult",
        "chi_square",
        "compare",
        "drift",
        "jensen_shannon",
        "ks_2samp",
        "psi",
        "wasserstein",
    ),
    "mintaka.monitoring.metrics": (
        "Fairness",
        "Joined",
        "LabelledPrediction",
        "Performance",
        "accuracy",
        "demographic_parity_difference",
        "equalized_odds_difference",
        "expected_calibration_error",
        "fairness",
        "join_labels",
        "performance",
        "rmse",
        "roc_auc",
    ),
    "mintaka.monitoring.profiles": (
        "CategoricalProfile",
        "DatasetProfile",
        "NumericProfile",
        "profile",
    ),
}
if not TYPE_CHECKING:  # mypy reads the imports above; a module __getattr__ would hide typos
    __getattr__, __dir__ = lazy_names(__name__, globals(), _LAZY_FROM)

__all__ = [
    "PSI_EPSILON",
    "CategoricalProfile",
    "ChiSquareResult",
    "DatasetProfile",
    "DriftReport",
    "Fairness",
    "FeatureDrift",
    "Joined",
    "KSResult",
    "LabelledPrediction",
    "NumericProfile",
    "Performance",
    "Window",
    "accuracy",
    "chi_square",
    "compare",
    "demographic_parity_difference",
    "drift",
    "equalized_odds_difference",
    "expected_calibration_error",
    "fairness",
    "jensen_shannon",
    "join_labels",
    "ks_2samp",
    "parse_window",
    "performance",
    "prediction_columns",
    "profile",
    "psi",
    "rmse",
    "roc_auc",
    "wasserstein",
    "windows",
    "windows_by_count",
    "windows_by_time",
]
