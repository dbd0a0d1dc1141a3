"""Route names of serving slots a cloud named, not Mintaka (SageMaker variants, Databricks
served entities)."""

from __future__ import annotations

import pytest

from mintaka.domain.names import route_name_of, route_names_of, validate_route_name
from mintaka.domain.serving import Route
from mintaka.errors import InvalidName


@pytest.mark.parametrize(
    ("variant", "route"),
    [
        ("blue", "blue"),  # every variant Mintaka makes: its route's own name
        ("AllTraffic", "alltraffic"),  # SageMaker's default
        ("Canary_2", "canary-2"),
        ("Prod--Main", "prod-main"),
        ("1st", "v-1st"),
        ("A", "a-slot"),
        ("x" * 40, "x" * 32),
        ("churn_model-1", "churn-model-1"),  # a Databricks served entity
    ],
)
def test_a_slot_reads_as_a_route_mintaka_can_name(variant: str, route: str) -> None:
    assert route_name_of(variant) == route


def test_two_slots_reading_as_one_route_are_refused() -> None:
    assert route_names_of(["AllTraffic", "blue"]) == {"alltraffic": "AllTraffic", "blue": "blue"}
    with pytest.raises(InvalidName, match="'AllTraffic'"):
        route_names_of(["AllTraffic", "alltraffic"])


def test_a_bad_route_name_is_reported_as_a_route_name() -> None:
    assert validate_route_name("blue") == "blue"
    with pytest.raises(
        InvalidName, match=r"^invalid route name 'v2': .*3-32 chars \(given as --route\)$"
    ):
        validate_route_name("v2", given_as="--route")
    with pytest.raises(ValueError, match="invalid route name 'Blue'"):
        Route(name="Blue", model="m", version=1)
