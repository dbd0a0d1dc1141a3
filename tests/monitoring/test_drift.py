"""Drift statistics equal scipy's and the textbook formulas on fixed data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from mintaka.errors import ValidationError
from mintaka.monitoring import (
    DatasetProfile,
    NumericProfile,
    chi_square,
    compare,
    drift,
    jensen_shannon,
    ks_2samp,
    profile,
    psi,
)
from mintaka.monitoring import wasserstein as wasserstein_distance


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


@pytest.mark.parametrize(("n1", "n2"), [(40, 65), (3000, 3000), (12000, 15000)])
def test_ks_and_wasserstein_equal_scipy(n1: int, n2: int) -> None:
    rng = np.random.default_rng(n1)
    a = np.round(rng.normal(size=n1), 2)  # rounded: many ties
    b = np.round(rng.normal(0.05, 1.1, size=n2), 2)
    ours, theirs = ks_2samp(a, b), stats.ks_2samp(a, b)
    assert close(ours.statistic, theirs.statistic)
    assert close(ours.pvalue, theirs.pvalue)
    assert close(wasserstein_distance(a, b), stats.wasserstein_distance(a, b))


def test_psi_textbook_formula_and_epsilon() -> None:
    ref, cur = np.array([10, 20, 30, 0]), np.array([15, 15, 20, 10])
    p, q = ref / ref.sum(), cur / cur.sum()
    p = np.where(p == 0, 1e-4, p)
    expected = sum((qi - pi) * math.log(qi / pi) for pi, qi in zip(p, q, strict=True))
    assert close(psi(ref, cur), expected)
    assert psi(ref, ref) == 0.0


def test_jensen_shannon_equals_scipy() -> None:
    ref, cur = np.array([10, 20, 0, 5]), np.array([3, 0, 7, 9])
    assert close(jensen_shannon(ref, cur), float(jensenshannon(ref, cur)))
    assert close(jensen_shannon(ref, cur, base=2), float(jensenshannon(ref, cur, base=2)))


def test_chi_square_equals_contingency_without_correction() -> None:
    ref, cur = np.array([120, 80, 40, 0]), np.array([50, 60, 20, 0])
    ours = chi_square(ref, cur)
    theirs = stats.chi2_contingency(np.vstack([ref[:3], cur[:3]]), correction=False)
    assert close(ours.statistic, theirs.statistic)
    assert close(ours.pvalue, theirs.pvalue)
    assert ours.dof == theirs.dof == 2


def test_unseen_category_is_pooled_and_shows_as_drift() -> None:
    ref = profile({"c": ["a"] * 60 + ["b"] * 40})
    report = drift(ref, {"c": ["a"] * 30 + ["b"] * 20 + ["new"] * 10 + ["newer"] * 5})
    found = report.features["c"]
    assert found.reference_bins == [60, 40, 0]
    assert found.current_bins == [30, 20, 15]
    theirs = stats.chi2_contingency(np.array([[60, 40, 0], [30, 20, 15]]), correction=False)
    assert found.chi2_statistic is not None
    assert close(found.chi2_statistic, theirs.statistic)
    assert found.chi2_pvalue is not None
    assert found.chi2_pvalue < 1e-4


def test_drift_against_profile_uses_full_reference_when_small() -> None:
    rng = np.random.default_rng(3)
    ref = rng.normal(size=5000)
    cur = rng.normal(0.3, 1, size=4000)
    report = compare({"x": ref}, {"x": cur})
    found = report.features["x"]
    assert found.ks_pvalue is not None
    assert found.wasserstein is not None
    assert close(found.ks_pvalue, stats.ks_2samp(ref, cur).pvalue)
    assert close(found.wasserstein, stats.wasserstein_distance(ref, cur))
    # a 0.3 sd shift at these sizes: the p-value is astronomically small, far below 1e-6
    assert found.ks_pvalue < 1e-6
    assert found.psi is not None
    assert found.psi > 0.05


def test_a_shift_of_a_zero_inflated_feature_shows_in_psi_and_jensen_shannon() -> None:
    rng = np.random.default_rng(0)
    ref = np.r_[np.zeros(9500), rng.uniform(1, 10, 500)]
    cur = np.r_[np.zeros(1000), rng.uniform(1, 9.9, 9000)]
    found = compare({"x": ref}, {"x": cur}).features["x"]
    assert found.psi is not None
    assert found.jensen_shannon is not None
    # the zeros' bin alone: (0.1 - 0.95) * ln(0.1 / 0.95) = 1.91
    assert found.psi > 1.9
    assert found.jensen_shannon > 0.5
    assert close(found.psi, psi(found.reference_bins, found.current_bins))
    assert close(
        found.jensen_shannon, float(jensenshannon(found.reference_bins, found.current_bins))
    )
    # another sample of the reference's own distribution stays calm (PSI about 0.002)
    same = np.r_[np.zeros(9500), rng.uniform(1, 10, 500)]
    calm = compare({"x": ref}, {"x": same}).features["x"]
    assert calm.psi is not None
    assert calm.psi < 0.05


def test_no_drift_between_samples_of_one_distribution() -> None:
    rng = np.random.default_rng(11)
    report = compare({"x": rng.normal(size=20000)}, {"x": rng.normal(size=20000)})
    found = report.features["x"]
    # D > 0.05 has probability far below 1e-6 for n = m = 20000 under the null
    assert found.ks_statistic is not None
    assert found.ks_statistic < 0.05
    assert found.psi is not None
    assert found.psi < 0.01


def test_threads_do_not_change_results() -> None:
    rng = np.random.default_rng(5)
    data = {f"f{i}": rng.normal(size=2000) for i in range(6)}
    current = {f"f{i}": rng.normal(0.1, 1, size=1500) for i in range(6)}
    assert compare(data, current, workers=1) == compare(data, current, workers=4)


def test_missing_and_infinite_current_values() -> None:
    ref = profile({"x": [1.0, 2.0, 3.0, 4.0]})
    report = drift(ref, {"x": [math.nan, None, "oops", math.inf, -math.inf, 2.5]})
    found = report.features["x"]
    assert found.current_missing_rate == 0.5  # NaN, None and a non-number
    assert found.current_count == 3
    assert found.current_bins[0] == 1  # -inf below the reference
    assert found.current_bins[-1] == 1  # +inf above it
    assert found.ks_statistic is not None  # on the one finite value


def test_an_integer_beyond_the_float_range_is_infinite_not_an_error() -> None:
    ref = profile({"x": [1.0, 2.0, 3.0, 4.0]})
    for column in ([10**400, -(10**400), 2.5], [10**400, -(10**400), "oops", 2.5]):
        found = drift(ref, {"x": column}).features["x"]
        assert (found.current_bins[0], found.current_bins[-1]) == (1, 1)
        assert found.ks_statistic is not None
    reference = profile([{"x": v} for v in [1, 2, 3, 10**400]]).features["x"]
    assert isinstance(reference, NumericProfile)
    assert (reference.infinite, reference.max) == (1, 3.0)


def test_booleans_from_a_csv_and_from_a_json_log_are_one_category() -> None:
    ref = profile([{"member": v} for v in ["true", "false"] * 50])
    found = drift(ref, [{"member": v} for v in [True, False] * 50]).features["member"]
    assert found.psi == pytest.approx(0.0)
    assert found.current_bins[-1] == 0  # nothing unseen
    mixed = profile({"member": ["TRUE", True, "False", np.bool_(False)]}).features["member"]
    assert mixed.model_dump()["frequencies"] == {"false": 2, "true": 2}
    stored = ref.to_json()  # a profile stored when booleans were keyed "True" and "False"
    stored["features"]["member"]["frequencies"] = {"False": 50, "True": 50}
    old = drift(DatasetProfile.from_json(stored), {"member": ["true", "false"] * 50})
    assert old.features["member"].psi == pytest.approx(0.0)


def test_an_integer_coded_category_logged_as_floats_is_the_same_category() -> None:
    grades = [1, 2, 3] * 100
    ref = profile({"grade": [str(g) for g in grades]}, categorical=["grade"])  # as a CSV reads
    as_ints = drift(ref, [{"grade": g} for g in grades]).features["grade"]
    for floats in ([float(g) for g in grades], np.asarray(grades, dtype=np.float64)):
        as_floats = drift(ref, {"grade": floats}).features["grade"]
        assert (as_floats.psi, as_floats.current_bins) == (as_ints.psi, as_ints.current_bins)
    assert as_ints.psi == pytest.approx(0.0)
    strings = drift(ref, {"grade": [f"{g}.0" for g in grades]}).features["grade"]
    assert strings.current_bins == as_ints.current_bins
    stored = profile({"grade": [float(g) for g in grades]}, categorical=["grade"])
    assert stored.model_dump()["features"]["grade"]["frequencies"] == {"1": 100, "2": 100, "3": 100}
    old = stored.to_json()  # a profile stored when floats were keyed "1.0"
    old["features"]["grade"]["frequencies"] = {"1.0": 100, "2.0": 100, "3.0": 100}
    found = drift(DatasetProfile.from_json(old), {"grade": grades}).features["grade"]
    assert found.current_bins == as_ints.current_bins
    kept = drift(ref, {"grade": [1.5, 2.0]}).features["grade"]
    assert kept.current_bins[-1] == 1  # 1.5 is no grade the reference knows


def test_empty_current_window_gives_no_statistics() -> None:
    report = drift(profile({"x": [1.0, 2.0]}), {"x": []})
    assert report.features["x"].psi is None
    assert report.features["x"].ks_pvalue is None


def test_a_statistic_that_cannot_be_computed_is_unmeasured_not_one_the_kind_lacks() -> None:
    reference = {"x": [1.0, 2.0, 3.0], "y": [1.0, 2.0, 3.0], "c": ["a", "b", "a"], "m": [None] * 3}
    current = {"x": [1.5, 2.5], "y": ["n/a", None], "c": [None, None], "m": [1.0, 2.0]}
    report = compare(reference, current, categorical=["c"])
    assert report.unmeasured("psi") == {
        "y": "no current values: each is missing or, for a numeric feature, not a number",
        "c": "no current values: each is missing or, for a numeric feature, not a number",
        "m": "no reference values",
    }
    assert set(report.unmeasured("chi2_statistic")) == {"c"}  # numeric features have none
    assert set(report.unmeasured("ks_statistic")) == {"y", "m"}
    infinite = drift(profile({"x": [1.0, 2.0]}), {"x": [math.inf]})
    assert infinite.unmeasured("psi") == {}
    assert infinite.unmeasured("wasserstein") == {"x": "no finite values on one side"}


def test_empty_counts_are_refused() -> None:
    with pytest.raises(ValidationError):
        psi([0, 0], [1, 2])
