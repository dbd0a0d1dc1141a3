"""Drift benchmark: Mintaka's drift statistics against Evidently's data-drift preset.

Reference and current frames of 100,000 rows x 20 numeric features (seeded; 5 of the 20 features
drift in the current frame: shifted, rescaled, skewed). In one run:

- **Evidently** ``Report([DataDriftPreset(method=...)])`` on pandas frames, once with PSI and once
  with KS (each run computes one statistic per column).
- **Mintaka**: ``profile()`` of the reference, keeping every value (so KS runs against the
  whole reference, as Evidently's does), then ``drift()`` of the current frame against it, which
  computes PSI, Jensen-Shannon, KS (statistic and p-value) and Wasserstein for every feature in
  one pass. The figure compared is profile + drift; drift against an already stored profile is
  shown beside it.

Where the methods coincide the values are compared: the KS p-values directly, and PSI through
``mintaka.monitoring.psi`` on Evidently's own binning (Sturges bins over both frames, its
epsilon rule), since Mintaka's profile bins on the reference's deciles instead (a value holding a
tenth of the reference gets a bin of its own). Then Mintaka alone at 1,000,000 rows, to show how
its cost grows. Run with::

    uv run --isolated --with-editable . --with 'evidently==0.7.*' --with 'pandas<3' \\
        python benchmarks/drift.py

Evidently is installed only in that throw-away environment; ``--skip-evidently`` runs the
Mintaka side alone with plain ``uv run``.
"""

from __future__ import annotations

import argparse
import gc
import os
import platform as host
import re
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from mintaka.monitoring import drift, profile, psi
from mintaka.monitoring.profiles import DatasetProfile
from mintaka.monitoring.statistics import DriftReport

FEATURES = 20
DRIFTING = 5


def frames(rows: int, seed: int = 7) -> tuple[dict[str, Any], dict[str, Any]]:
    rng = np.random.default_rng(seed)
    names = [f"f{i:02d}" for i in range(FEATURES)]
    means = rng.uniform(-5, 5, FEATURES)
    scales = rng.uniform(0.5, 3, FEATURES)
    reference = {n: rng.normal(means[i], scales[i], rows) for i, n in enumerate(names)}
    current = {n: rng.normal(means[i], scales[i], rows) for i, n in enumerate(names)}
    current[names[0]] = current[names[0]] + 0.1 * scales[0]  # small shift
    current[names[1]] = current[names[1]] + 0.5 * scales[1]  # large shift
    current[names[2]] = means[2] + (current[names[2]] - means[2]) * 1.5  # wider
    current[names[3]] = rng.gamma(2.0, scales[3], rows) + means[3]  # skewed
    current[names[4]] = np.round(current[names[4]])  # coarser measurement
    assert DRIFTING == 5
    return reference, current


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, list[float], Any]:
    times, result = [], None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), times, result


def mintaka_side(
    reference: dict[str, Any], current: dict[str, Any], repeat: int
) -> tuple[float, float, float, DriftReport]:
    rows = len(next(iter(reference.values())))
    t_profile, _, ref = best_of(repeat, lambda: profile(reference, sample_size=rows))
    assert isinstance(ref, DatasetProfile)
    t_drift, _, report = best_of(repeat, lambda: drift(ref, current))

    def both() -> DriftReport:
        return drift(profile(reference, sample_size=rows), current)

    t_total, _, _ = best_of(repeat, both)
    return t_profile, t_drift, t_total, report


def evidently_side(
    reference: dict[str, Any], current: dict[str, Any], method: str, repeat: int
) -> tuple[float, dict[str, float]]:
    import pandas as pd
    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    ref_df, cur_df = pd.DataFrame(reference), pd.DataFrame(current)
    definition = DataDefinition(numerical_columns=list(reference))

    def run() -> Any:
        report = Report([DataDriftPreset(method=method)])
        return report.run(
            current_data=Dataset.from_pandas(cur_df, data_definition=definition),
            reference_data=Dataset.from_pandas(ref_df, data_definition=definition),
        )

    best, _, snapshot = best_of(repeat, run)
    values = {}
    for metric in snapshot.dict()["metrics"]:
        found = re.match(r"ValueDrift\(column=([^,]+),method=", metric["metric_name"])
        if found:
            values[found.group(1)] = float(metric["value"])
    return best, values


def evidently_binned_psi(ref: np.ndarray, cur: np.ndarray) -> float:
    """Mintaka's ``psi`` on Evidently 0.7's binning and epsilon rule (numeric, > 20 values)."""
    edges = np.histogram_bin_edges(np.concatenate((ref, cur)), bins="sturges")
    p = np.histogram(ref, edges)[0] / len(ref)
    q = np.histogram(cur, edges)[0] / len(cur)

    def eps(x: np.ndarray) -> float:
        low = float(x[x != 0].min())
        return low / 10**6 if low <= 0.0001 else 0.0001

    return psi(p, q, epsilon=(eps(p), eps(q)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--large-rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-evidently", action="store_true")
    args = parser.parse_args()

    print(
        f"machine: {host.platform()}, {os.cpu_count()} CPUs, Python {host.python_version()}, "
        f"numpy {np.__version__}"
    )
    reference, current = frames(args.rows)
    print(f"{args.rows:,} rows x {FEATURES} numeric features, {DRIFTING} drifting\n")

    t_profile, t_drift, t_total, report = mintaka_side(reference, current, args.repeat)
    print(
        f"Mintaka   profile {t_profile:7.3f} s   drift {t_drift:7.3f} s   "
        f"profile+drift {t_total:7.3f} s   (PSI, JS, KS, Wasserstein together)"
    )

    if not args.skip_evidently:
        import evidently

        print(f"Evidently {evidently.__version__}")
        for method in ("psi", "ks"):
            t_ev, values = evidently_side(reference, current, method, args.repeat)
            if method == "ks":
                ours = {n: report.value(n, "ks_pvalue") or 0.0 for n in values}
            else:
                ours = {n: evidently_binned_psi(reference[n], current[n]) for n in values}
            diff = max(abs(ours[n] - values[n]) for n in values)
            print(
                f"Evidently {method:3}  {t_ev:7.3f} s   ratio to Mintaka profile+drift "
                f"{t_ev / t_total:5.1f}x, to drift alone {t_ev / t_drift:5.1f}x   "
                f"max |diff| {diff:.2e} over {len(values)} features"
            )
        print("\nper-feature (Mintaka profile bins)  psi  ks_pvalue")
        for name, found in report.features.items():
            print(f"  {name}  {found.psi:.4f}  {found.ks_pvalue:.3g}")

    if args.large_rows:
        big_ref, big_cur = frames(args.large_rows)
        b_profile, b_drift, b_total, _ = mintaka_side(big_ref, big_cur, max(1, args.repeat - 1))
        print(
            f"\nMintaka at {args.large_rows:,} rows: profile {b_profile:.3f} s   drift "
            f"{b_drift:.3f} s   profile+drift {b_total:.3f} s"
        )
        scale = args.large_rows / args.rows
        print(
            f"growth for {scale:.0f}x the rows: profile+drift {b_total / t_total:.1f}x, "
            f"drift {b_drift / t_drift:.1f}x (linear = {scale:.0f}x)"
        )
    _ = statistics  # kept for ad-hoc medians when investigating


if __name__ == "__main__":
    main()
