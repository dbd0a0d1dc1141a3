"""Reference profiles: deterministic, JSON-ready, and every value lands in exactly one bin."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mintaka.errors import ValidationError
from mintaka.monitoring import DatasetProfile, NumericProfile, drift, profile
from mintaka.monitoring.profiles import bin_count, histogram

values = st.lists(
    st.one_of(
        st.floats(allow_nan=True, allow_infinity=True, width=64),
        st.none(),
        st.sampled_from([0.0, 1.0, 1.0, 2.5]),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(values, st.integers(min_value=1, max_value=12))
def test_every_value_lands_in_one_bin(column: list[float | None], bins: int) -> None:
    found = profile({"x": column}, bins=bins).features["x"]
    assert isinstance(found, NumericProfile)
    present = [v for v in column if v is not None and not math.isnan(v)]
    assert found.count == len(column)
    assert found.missing == len(column) - len(present)
    assert sum(found.counts) == len(present)
    assert len(found.counts) == bin_count(found.edges)
    assert found.infinite == sum(1 for v in present if math.isinf(v))
    assert all(math.isfinite(v) for v in found.sample + found.edges + found.quantiles)
    assert found.edges == sorted(set(found.edges))
    assert found.counts[0] == 0 or len(found.edges) == 0 or any(v == -math.inf for v in present)
    assert 0 not in found.counts[1:-1]  # every inner bin holds reference values
    json.dumps(found.model_dump(mode="json"), allow_nan=False)  # valid JSON, no NaN/inf


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=40),
    st.lists(st.floats(allow_nan=False), max_size=40),
)
def test_current_values_always_binned(reference: list[float], current: list[float]) -> None:
    found = profile({"x": reference}).features["x"]
    assert isinstance(found, NumericProfile)
    counts = histogram(found.edges, np.asarray(current, dtype=np.float64))
    assert counts.sum() == len(current)
    assert len(counts) == bin_count(found.edges)


def test_constant_feature_has_three_bins() -> None:
    found = profile({"x": [3.0] * 10}).features["x"]
    assert isinstance(found, NumericProfile)
    assert found.edges == [3.0]
    assert found.counts == [0, 10, 0]
    assert histogram(found.edges, np.array([1.0, 3.0, 3.0, 9.0])).tolist() == [1, 2, 1]


def test_a_dominant_value_gets_a_bin_of_its_own() -> None:
    rng = np.random.default_rng(1)
    zeros = profile({"x": np.r_[np.zeros(9500), rng.uniform(1, 10, 500)]}).features["x"]
    assert isinstance(zeros, NumericProfile)
    assert zeros.edges[:2] == [0.0, math.nextafter(0.0, math.inf)]
    assert zeros.counts[1] == 9500  # exactly the zeros
    rest = zeros.counts[2:-1]  # the other 500 values, still on their own deciles
    assert (len(rest), sum(rest), max(rest)) == (10, 500, 50)
    capped = profile({"x": np.r_[rng.uniform(0, 100, 500), np.full(9500, 100.0)]}).features["x"]
    assert isinstance(capped, NumericProfile)
    assert capped.edges[-2:] == [math.nextafter(100.0, -math.inf), 100.0]
    assert capped.counts[-2] == 9500  # the last bin is closed: the cap, alone
    levels = rng.choice([0.0, 1.0, 2.0], size=3000, p=[0.5, 0.3, 0.2])
    few = profile({"x": levels}).features["x"]
    assert isinstance(few, NumericProfile)
    assert few.counts == [0, *(int((levels == v).sum()) for v in (0.0, 1.0, 2.0)), 0]


# Written by the first profile format: the zeros and the tail share the one inner bin [0, 7].
FIRST_FORMAT = {
    "format": 1,
    "rows": 21,
    "bins": 10,
    "seed": 0,
    "sample_size": 10000,
    "features": {
        "x": {
            "kind": "numeric",
            "count": 21,
            "missing": 0,
            "infinite": 0,
            "min": 0.0,
            "max": 7.0,
            "mean": 0.4761904761904762,
            "std": 1.5922146187905226,
            "quantile_probabilities": [0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1],
            "quantiles": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 3.0, 6.200000000000003, 7.0],
            "edges": [0.0, 7.0],
            "counts": [0, 21, 0],
            "sample": [0.0] * 19 + [3.0, 7.0],
        }
    },
}


def test_a_stored_profile_of_the_first_format_is_compared_on_its_own_edges() -> None:
    old = DatasetProfile.from_json(json.loads(json.dumps(FIRST_FORMAT)))
    assert old.format == 1
    found = drift(old, {"x": [0.0, 3.0, 5.0, 7.0, 9.0]}).features["x"]
    assert (found.reference_bins, found.current_bins) == ([0, 21, 0], [0, 4, 1])
    rebuilt = profile({"x": [0.0] * 19 + [3.0, 7.0]})
    assert rebuilt.format == 2
    assert rebuilt.features["x"].edges != old.features["x"].edges  # type: ignore[union-attr]


def test_all_missing_and_empty() -> None:
    missing = profile({"x": [None, math.nan, ""]}).features["x"]
    assert missing.missing == 3
    assert missing.missing_rate == 1.0
    empty = profile({"x": np.array([], dtype=np.float64)})
    assert empty.rows == 0
    assert empty.features["x"].count == 0


def test_inner_bins_are_deciles_with_open_outer_bins() -> None:
    found = profile({"x": np.arange(1000, dtype=np.float64)}).features["x"]
    assert isinstance(found, NumericProfile)
    assert len(found.edges) == 11
    assert found.counts[0] == found.counts[-1] == 0
    assert found.counts[1:-1] == [100] * 9 + [100]


def test_no_inner_bin_is_left_empty_by_an_edge_a_float_above_a_value() -> None:
    # the positions k (n - 1) / B are whole numbers here; in floating point 3 and 6 of them come
    # out a hair above, and their quantiles one float above the value that starts their bin
    values = np.random.default_rng(5).normal(size=11)
    found = profile({"x": values}).features["x"]
    assert isinstance(found, NumericProfile)
    assert found.edges == np.sort(values).tolist()
    assert found.counts == [0, *[1] * 9, 2, 0]
    steps = profile({"x": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]}, bins=5).features["x"]
    assert isinstance(steps, NumericProfile)
    assert (steps.edges, steps.counts) == ([0.0, 1.0, 2.0, 3.0, 4.0, 5.0], [0, 1, 1, 1, 1, 2, 0])


def test_deterministic_and_round_trips_through_json() -> None:
    rng = np.random.default_rng(0)
    data = {"x": rng.normal(size=30000), "c": rng.choice(["a", "b", "c"], size=30000)}
    first = profile(data, seed=7)
    assert first.to_json() == profile(data, seed=7).to_json()
    assert first.to_json() != profile(data, seed=8).to_json()
    stored = json.loads(json.dumps(first.to_json()))
    assert DatasetProfile.from_json(stored) == first
    assert len(first.features["x"].sample) == 10_000
    assert first.features["c"].kind == "categorical"


def test_rows_structured_arrays_and_csv_strings_agree() -> None:
    rows = [{"x": "1.5", "c": "a"}, {"x": "", "c": "b"}, {"x": "2", "c": None}]
    from_rows = profile(rows)
    assert from_rows.features["x"].kind == "numeric"
    assert from_rows.features["x"].missing == 1
    assert from_rows.features["c"].missing == 1
    structured = np.array([(1.5, "a"), (math.nan, "b")], dtype=[("x", "f8"), ("c", "U1")])
    assert profile(structured).features["x"].missing == 1


def test_category_cap_sums_the_rest_in_other() -> None:
    found = profile({"c": ["a"] * 5 + ["b"] * 3 + ["c", "d"]}, max_categories=2).features["c"]
    assert found.frequencies == {"a": 5, "b": 3}
    assert found.other == 2


@pytest.mark.parametrize(
    "column", [5, 2.5, None, "abc", b"abc", {"a": 1}], ids=lambda c: type(c).__name__
)
def test_a_column_that_is_no_sequence_of_values_is_refused(column: object) -> None:
    """A number is no column, and a string is one value, not a column of its characters."""
    reference = profile({"x": [1.0, 2.0, 3.0]})
    with pytest.raises(ValidationError, match="column 'x' must be a sequence of values"):
        profile({"x": column})
    with pytest.raises(ValidationError, match="column 'x' must be a sequence of values"):
        drift(reference, {"x": column})


def test_a_column_may_be_any_iterable_of_values() -> None:
    found = profile({"x": (v for v in [1.0, 2.0]), "y": range(2), "z": np.array([1, 2])})
    assert [f.count for f in found.features.values()] == [2, 2, 2]
