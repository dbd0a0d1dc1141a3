"""Route names of production variants Mintaka did not name, and the captured records they carry."""

from __future__ import annotations

import json

import pytest
from mintaka_sagemaker.monitoring import parse_capture_line
from mintaka_sagemaker.variants import route_name, variant_names

from mintaka.errors import InvalidName


@pytest.mark.parametrize(
    ("variant", "route"),
    [
        ("blue", "blue"),  # every variant Mintaka makes: its route's own name
        ("AllTraffic", "alltraffic"),  # SageMaker's default
        ("Canary_2", "canary-2"),
        ("Prod--Main", "prod-main"),
        ("1st", "v-1st"),
        ("A", "a-variant"),
        ("x" * 40, "x" * 32),
    ],
)
def test_a_variant_reads_as_a_route_mintaka_can_name(variant: str, route: str) -> None:
    assert route_name(variant) == route


def test_two_variants_reading_as_one_route_are_refused() -> None:
    assert variant_names(["AllTraffic", "blue"]) == {"alltraffic": "AllTraffic", "blue": "blue"}
    with pytest.raises(InvalidName, match="'AllTraffic'"):
        variant_names(["AllTraffic", "alltraffic"])


def test_a_captured_record_names_the_variants_route() -> None:
    line = json.dumps(
        {
            "captureData": {
                "endpointInput": {"mode": "INPUT", "encoding": "JSON", "data": '{"x": 1}'},
                "endpointOutput": {"mode": "OUTPUT", "encoding": "JSON", "data": "[0.5]"},
            },
            "eventMetadata": {"eventId": "e-1", "inferenceTime": "2026-01-01T00:00:00Z"},
            "eventVersion": "0",
        }
    )
    record = parse_capture_line("churn-api", "AllTraffic", line)
    assert record is not None
    assert record.route == "alltraffic"
