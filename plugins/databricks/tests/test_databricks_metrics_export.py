"""The serving endpoint's metrics export read in either exposition format: counters split into
server errors (5xx) and refused requests (4xx), latency from a histogram or a summary."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st
from mintaka_databricks.exported import histogram_quantile, read_export

from mintaka.errors import BackendError

PROMETHEUS = """\
# HELP request_count_total Requests.
# TYPE request_count_total counter
request_count_total{endpoint_name="ep",served_entity_name="blue"} 10.0
request_count_total{served_entity_name="green",endpoint_name="ep"} 4.0
# TYPE request_4xx_count_total counter
request_4xx_count_total{endpoint_name="ep",served_entity_name="blue"} 3.0
# TYPE request_5xx_count_total counter
request_5xx_count_total{endpoint_name="ep",served_entity_name="blue"} 1.0
# HELP request_latency_ms Round-trip latency.
# TYPE request_latency_ms histogram
request_latency_ms_bucket{served_entity_name="blue",le="10.0"} 2.0
request_latency_ms_bucket{le="50.0",served_entity_name="blue"} 6.0
request_latency_ms_bucket{served_entity_name="blue",le="100.0"} 9.0
request_latency_ms_bucket{served_entity_name="blue",le="+Inf"} 10.0
request_latency_ms_sum{served_entity_name="blue"} 420.0
request_latency_ms_count{served_entity_name="blue"} 10.0
# TYPE model_latency_ms histogram
model_latency_ms_bucket{served_entity_name="blue",le="5.0"} 10.0
model_latency_ms_bucket{served_entity_name="blue",le="+Inf"} 10.0
# TYPE cpu_usage_percentage gauge
cpu_usage_percentage{endpoint_name="ep",served_entity_name="blue"} 12.5
"""


def test_4xx_are_read_as_refused_and_5xx_as_server_errors() -> None:
    found = read_export(PROMETHEUS)
    assert found.counters == {
        "requests": {"blue": 10, "green": 4},
        "5xx": {"blue": 1},
        "4xx": {"blue": 3},
    }


def test_latency_quantiles_come_from_the_round_trip_histogram() -> None:
    found = read_export(PROMETHEUS)
    # rank 5 of 10 falls in (10, 50] holding counts 2..6: 10 + 40 * 3/4
    assert found.p50 == {"blue": pytest.approx(40.0)}
    # rank 9.9 falls in (100, +Inf]: the highest finite bound
    assert found.p99 == {"blue": pytest.approx(100.0)}
    assert found.custom["model_latency_ms_p50/blue"] == pytest.approx(2.5)
    assert found.custom["cpu_usage_percentage/blue"] == 12.5
    assert not any("bucket" in name or "_sum" in name for name in found.custom)


def test_openmetrics_with_exemplars_and_escaped_labels_is_read() -> None:
    text = """\
# TYPE request_count counter
request_count_total{served_entity_name="a\\"b\\\\c"} 5.0
request_count_created{served_entity_name="a\\"b\\\\c"} 1.7e9
# TYPE request_latency_ms histogram
request_latency_ms_bucket{le="20.0",served_entity_name="a\\"b\\\\c"} 5.0 # {trace_id="x"} 3.0
request_latency_ms_bucket{served_entity_name="a\\"b\\\\c",le="+Inf"} 5.0
request_latency_ms_sum{served_entity_name="a\\"b\\\\c"} 40.0
request_latency_ms_count{served_entity_name="a\\"b\\\\c"} 5.0
# EOF
"""
    found = read_export(text)
    [route] = found.counters["requests"]
    assert found.counters["requests"][route] == 5
    assert found.p50 == {route: pytest.approx(10.0)}
    assert found.custom == {}


def test_a_summary_reads_its_quantiles_whatever_their_spelling() -> None:
    text = """\
# TYPE request_latency_seconds summary
request_latency_seconds{quantile="0.50",served_entity_name="blue"} 0.02
request_latency_seconds{served_entity_name="blue",quantile="0.99"} 0.3
request_latency_seconds_sum{served_entity_name="blue"} 4.0
request_latency_seconds_count{served_entity_name="blue"} 100.0
"""
    found = read_export(text)
    assert found.p50 == {"blue": pytest.approx(20.0)}
    assert found.p99 == {"blue": pytest.approx(300.0)}


def test_an_export_that_cannot_be_parsed_is_a_backend_error() -> None:
    with pytest.raises(BackendError, match="cannot be parsed"):
        read_export('request_count_total{served_entity_name="blue" 1.0\n')


@pytest.mark.parametrize("value", ["NaN", "+Inf", "-Inf"])
def test_a_request_count_that_is_no_number_is_a_backend_error(value: str) -> None:
    text = (
        "# TYPE request_4xx_count_total counter\n"
        f'request_4xx_count_total{{served_entity_name="blue"}} {value}\n'
    )
    with pytest.raises(BackendError, match="request_4xx_count_total of 'blue'"):
        read_export(text)


def test_a_histogram_that_counts_nothing_has_no_quantile() -> None:
    assert histogram_quantile(0.5, [(10.0, 0.0), (math.inf, 0.0)]) is None
    assert histogram_quantile(0.5, [(10.0, 3.0)]) is None  # no +Inf bucket


def test_a_torn_histogram_is_made_monotonic_before_its_total_is_taken() -> None:
    """+Inf counting fewer than a finite bucket (a torn export): as in Prometheus, the counts
    are raised to be monotonic first, so the total is 10 and the median rank 5 is at 10."""
    torn = [(10.0, 5.0), (20.0, 10.0), (math.inf, 8.0)]
    assert histogram_quantile(0.5, torn) == pytest.approx(10.0)
    assert histogram_quantile(0.99, torn) == pytest.approx(19.8)  # rank 9.9 in (10, 20]


@given(
    st.lists(st.floats(min_value=0.0, max_value=1000.0), min_size=1, max_size=200),
    st.sampled_from([0.5, 0.9, 0.99]),
)
def test_a_histogram_quantile_lies_in_the_bucket_holding_that_rank(
    values: list[float], q: float
) -> None:
    bounds = [1.0, 5.0, 25.0, 100.0, 500.0, math.inf]
    buckets = [(b, float(sum(v <= b for v in values))) for b in bounds]
    found = histogram_quantile(q, buckets)
    assert found is not None
    rank = q * len(values)
    holding = next(i for i, (_, count) in enumerate(buckets) if count >= rank)
    lower = 0.0 if holding == 0 else bounds[holding - 1]
    upper = bounds[holding] if holding < len(bounds) - 1 else bounds[-2]
    assert lower <= found <= upper
