"""Route names for production variants.

Mintaka names each variant it creates after its route, so the two are one name. An endpoint made
outside Mintaka has variants named as its maker chose, most often SageMaker's default
``AllTraffic``, which Mintaka's route names (lower case, dashes) cannot hold. Such a variant is
the route ``alltraffic``: lower-cased, every run of other characters a dash, ``v-`` in front of
a leading digit, at most 32 characters. Reading maps variant to route; changing weights in place
maps the route back to the variant the endpoint has.
"""

from __future__ import annotations

import re

from mintaka.domain.names import validate_endpoint_name
from mintaka.errors import InvalidName

_OTHER = re.compile(r"[^a-z0-9]+")


def route_name(variant: str) -> str:
    """The Mintaka route name of production variant ``variant``."""
    try:
        return validate_endpoint_name(variant)
    except InvalidName:
        pass
    derived = _OTHER.sub("-", variant.lower()).strip("-")
    if not derived[:1].isalpha():
        derived = f"v-{derived}".rstrip("-")
    derived = derived[:32].rstrip("-")
    if len(derived) < 3:
        derived = f"{derived}-variant"
    return validate_endpoint_name(derived)


def variant_names(variants: list[str]) -> dict[str, str]:
    """Route name -> variant name for one endpoint's variants; two variants that would read as
    one route are refused rather than confused."""
    routes: dict[str, str] = {}
    for variant in variants:
        route = route_name(variant)
        if route in routes:
            raise InvalidName(
                "production variant",
                variant,
                f"reads as route {route!r}, as variant {routes[route]!r} does",
            )
        routes[route] = variant
    return routes
